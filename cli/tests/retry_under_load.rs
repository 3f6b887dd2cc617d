//! `quicpro serve --retry under-load=N`: a flood of client Initials from
//! many source ports pushes the server past N handshakes in progress, so it
//! answers further Initials with Retry (RFC 9000 §8.1.2), and a legitimate
//! client still completes its handshake (through the Retry) and a download.
//!
//! The flood is made of real client Initials (a quic-core client endpoint,
//! one connection per source socket) that never continue their handshakes,
//! so the server keeps them as handshakes in progress until they time out.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quic_core::endpoint::{ClientConfig, Endpoint, EndpointConfig};
use quic_core::tls::ClientTlsOptions;

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `quicpro serve` and returns it, its address and its stderr lines.
fn start_server(extra: &[&str]) -> (Guard, SocketAddr, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_quicpro"))
        .args(["serve", "--host", "127.0.0.1", "--port", "0", "--workers", "1", "--duration", "60", "--backend", "epoll"])
        .args(extra)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn quicpro serve");
    let stderr = child.stderr.take().expect("stderr");
    let guard = Guard(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else { continue };
        if let Some(rest) = line.split("listening on ").nth(1) {
            let addr = rest.split_whitespace().next().unwrap_or_default().parse().expect("address");
            return (guard, addr, rx);
        }
    }
    panic!("server did not report its address");
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n as u64).map(|i| (i.wrapping_mul(7).wrapping_add(i / 251)) as u8).collect()
}

/// Sends one real client Initial to `server` from each of `n` fresh sockets.
/// The sockets are returned so their ports stay taken while the server
/// holds the handshakes.
fn flood_initials(server: SocketAddr, n: usize) -> Vec<UdpSocket> {
    let mut tls = ClientTlsOptions::new(&[b"h3"]);
    tls.insecure_skip_verify = true;
    let config = ClientConfig {
        tls: tls.build().expect("client TLS"),
        transport: Arc::new(quic_core::config::TransportConfig::default()),
        version: quic_core::Version::V1,
    };
    let mut client = Endpoint::new(EndpointConfig::new(&[7u8; 32]), None, Instant::now());
    let mut sockets = Vec::with_capacity(n);
    let mut buf = vec![0u8; 65536];
    for _ in 0..n {
        let now = Instant::now();
        let h = client.connect(now, &config, server, "localhost", bytes::Bytes::new()).expect("connect");
        let conn = client.connection(h).expect("connection");
        let t = conn.poll_transmit(now, &mut buf).expect("a first Initial");
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind flood socket");
        let seg = t.segment_size.unwrap_or(t.size);
        for d in buf[..t.size].chunks(seg) {
            sock.send_to(d, server).expect("send Initial");
        }
        sockets.push(sock);
    }
    sockets
}

#[test]
fn retry_under_load_lets_a_real_client_through() {
    const THRESHOLD: usize = 8;
    const FLOOD: usize = 200;
    let (server, addr, lines) = start_server(&["--retry", &format!("under-load={THRESHOLD}")]);

    let flood = flood_initials(addr, FLOOD);
    // Let the server take them in (it answers each; we never reply).
    std::thread::sleep(Duration::from_millis(300));

    let file = std::env::temp_dir().join(format!("quicpro-retry-{}.bin", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_quicpro"))
        .args(["get", "-k", "--timeout", "30", "-o"])
        .arg(&file)
        .arg(format!("https://{addr}/bytes/2000000"))
        .output()
        .expect("run quicpro get");
    assert!(out.status.success(), "get failed under load: {}", String::from_utf8_lossy(&out.stderr));
    let body = std::fs::read(&file).expect("downloaded file");
    let _ = std::fs::remove_file(&file);
    assert!(body == pattern(2_000_000), "downloaded bytes differ ({} bytes)", body.len());
    drop(flood);

    // Graceful stop: the worker reports its endpoint counters.
    // SAFETY: kill(2) on our own child's PID.
    unsafe {
        libc::kill(server.0.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut stopped = None;
    while Instant::now() < deadline && stopped.is_none() {
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
            if line.contains("stopped:") {
                stopped = Some(line);
            }
        }
    }
    let stopped = stopped.expect("server printed its stop line");
    let count = |what: &str| -> u64 {
        let before = stopped.split(what).next().unwrap_or_default();
        before.split_whitespace().last().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no '{what}' in {stopped}"))
    };
    let retries = count(" retries");
    let accepted = count(" connections accepted");
    println!("[retry under load] {stopped}");
    // Past the threshold every further Initial (flood or client) is
    // answered with Retry: at least the flood beyond THRESHOLD, plus the
    // client's first Initial.
    assert!(retries > (FLOOD - THRESHOLD) as u64, "{stopped}");
    // The flood's first THRESHOLD Initials made connections; the client's
    // retried Initial (with a valid token) made one more.
    assert!(accepted > THRESHOLD as u64 && accepted <= THRESHOLD as u64 + 2, "{stopped}");
}
