//! `quicpro serve` on AF_XDP (`QUICPRO_XDP`), two workers on a veth with
//! two queues, in its own network namespace; clients (`quicpro get`, and
//! aioquic through `cli/tests/peers/h3_fetch.py`) in another. Root only
//! (CI runs as root); every namespace, link and XDP program is removed at
//! the end, which the tests assert.
//!
//! Every wait has a deadline; every child is killed by PID when its guard
//! drops.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quicpro_tests::netns::{assert_gone, VethPair, SERVER_V4, SERVER_V6};

const PORT: u16 = 4433;

/// Kills the child by PID (SIGKILL) unless it exited, then reaps it.
struct Guard(Child);

impl Guard {
    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child's PID, not yet reaped.
        unsafe {
            libc::kill(self.0.id() as libc::pid_t, sig);
        }
    }

    fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + limit;
        loop {
            if let Ok(Some(st)) = self.0.try_wait() {
                return Some(st);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            self.signal(libc::SIGKILL);
        }
        let _ = self.0.wait();
    }
}

fn quicpro() -> &'static str {
    env!("CARGO_BIN_EXE_quicpro")
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("quicpro-xdp-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A file for --root: deterministic bytes that compress badly.
fn write_file(dir: &Path, name: &str, len: usize) -> String {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(dir.join(name), &data).unwrap();
    sha256_hex(&data)
}

/// Forwards every line of `r` to a channel and a shared log, from a thread.
fn line_pump(r: impl Read + Send + 'static) -> (Receiver<String>, Arc<Mutex<Vec<String>>>) {
    let (tx, rx) = channel();
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            log2.lock().unwrap().push(line.clone());
            let _ = tx.send(line);
        }
    });
    (rx, log)
}

struct Server {
    guard: Guard,
    lines: Receiver<String>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// `quicpro serve --workers 2` on AF_XDP inside the server namespace;
    /// returns once both workers listen.
    fn start(pair: &VethPair, root: &Path, cert: &Path, key: &Path) -> Server {
        let mut child = VethPair::exec(&pair.server_ns, quicpro())
            .args(["serve", "--port", &PORT.to_string(), "--workers", "2", "--duration", "120"])
            .arg("--root")
            .arg(root)
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key)
            .env("QUICPRO_XDP", &pair.server_if)
            .env_remove("QUICPRO_BACKEND")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn quicpro serve");
        let stderr = child.stderr.take().unwrap();
        let guard = Guard(child);
        let (lines, log) = line_pump(stderr);
        let server = Server { guard, lines, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut listening = 0;
        while listening < 2 {
            let left = deadline.saturating_duration_since(Instant::now());
            match server.lines.recv_timeout(left) {
                Ok(l) if l.contains("listening on") => {
                    assert!(l.contains("io backend af_xdp"), "{l}");
                    listening += 1;
                }
                Ok(_) => {}
                Err(_) => panic!("server did not start: {:?}", server.log.lock().unwrap()),
            }
        }
        server
    }

    /// SIGTERM, wait (bounded) for the exit, and return all stderr lines.
    fn stop(mut self) -> Vec<String> {
        self.guard.signal(libc::SIGTERM);
        let st = self.guard.wait_for(Duration::from_secs(30));
        assert!(st.is_some_and(|s| s.success()), "server exit {st:?}: {:?}", self.log.lock().unwrap());
        // The pump thread ends at EOF; give it a bounded moment.
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end && !self.log.lock().unwrap().iter().any(|l| l.contains("] io: ")) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let lines = self.log.lock().unwrap().clone();
        lines
    }
}

/// `quicpro get -k` inside the client namespace.
fn get(pair: &VethPair, args: &[&str]) -> Output {
    VethPair::exec(&pair.client_ns, quicpro()).args(["get", "-k", "--timeout", "30"]).args(args).output().expect("run quicpro get")
}

fn url(ip: &str, path: &str) -> String {
    let host = if ip.contains(':') { format!("[{ip}]") } else { ip.to_string() };
    format!("https://{host}:{PORT}{path}")
}

fn download(pair: &VethPair, dir: &Path, ip: &str, path: &str) -> String {
    let out_file = dir.join(format!("out-{}", ip.replace(':', "_")));
    let out = get(pair, &["-o", out_file.to_str().unwrap(), &url(ip, path)]);
    assert!(out.status.success(), "get {ip}: {}", String::from_utf8_lossy(&out.stderr));
    let body = std::fs::read(&out_file).unwrap();
    sha256_hex(&body)
}

/// aioquic fetches `path` from the server; returns (bytes, sha256).
fn aioquic_fetch(pair: &VethPair, ip: &str, path: &str, cafile: &Path) -> (String, String) {
    let child = VethPair::exec(&pair.client_ns, "python3")
        .arg(repo_root().join("cli/tests/peers/h3_fetch.py"))
        .args(["--host", ip, "--port", &PORT.to_string(), "--path", path, "--deadline", "60", "--cafile"])
        .arg(cafile)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3 h3_fetch.py");
    let mut g = Guard(child);
    let (out, out_log) = line_pump(g.0.stdout.take().unwrap());
    let (_e, err_log) = line_pump(g.0.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(70);
    let mut result = None;
    while result.is_none() && Instant::now() < deadline {
        match out.recv_timeout(Duration::from_millis(200)) {
            Ok(l) if l.starts_with("RESULT ") => result = Some(l),
            _ => {}
        }
    }
    let status = g.wait_for(Duration::from_secs(10));
    let result = result.unwrap_or_else(|| panic!("aioquic: no RESULT; stdout {:?} stderr {:?}", out_log.lock().unwrap(), err_log.lock().unwrap()));
    assert!(status.is_some_and(|s| s.success()), "aioquic exit {status:?}: {result}");
    let field = |k: &str| result.split_whitespace().find_map(|kv| kv.strip_prefix(&format!("{k}="))).unwrap_or_default().to_string();
    assert_eq!(field("ok"), "1", "{result}");
    (field("bytes"), field("sha256"))
}

/// Numbers after `label` in a log line, e.g. `number_after(l, "steered ")`.
fn number_after(line: &str, label: &str) -> Option<u64> {
    let rest = line.split(label).nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// The number just before the last `label`, e.g. `number_before(l, " eth,")`.
fn number_before(line: &str, label: &str) -> Option<u64> {
    let head = &line[..line.rfind(label)?];
    let digits: String = head.chars().rev().take_while(|c| c.is_ascii_digit()).collect();
    digits.chars().rev().collect::<String>().parse().ok()
}

/// Per worker: (datagrams, unknown CID drops, all drops) from the `stopped:` lines.
fn worker_stats(lines: &[String]) -> Vec<(u64, u64, u64)> {
    let mut v = Vec::new();
    for w in 0..2 {
        let l = lines.iter().find(|l| l.starts_with(&format!("[worker {w}] stopped:"))).unwrap_or_else(|| panic!("no stopped line for worker {w}: {lines:?}"));
        let datagrams = number_before(l, " datagrams").unwrap();
        let unknown = number_before(l, " unknown CID").unwrap();
        let drops: u64 =
            [" unparseable", " unknown CID", " small Initials", " invalid tokens", " over the connection"].iter().map(|k| number_before(l, k).unwrap()).sum();
        v.push((datagrams, unknown, drops));
    }
    v
}

/// The XDP counters part of a worker's io line (one program serves both
/// workers, so any line has them).
fn xdp_line(lines: &[String]) -> String {
    lines.iter().find_map(|l| l.find("xdp: steered").map(|at| l[at..].to_string())).unwrap_or_else(|| panic!("no io line: {lines:?}"))
}

fn gen_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let out = Command::new(quicpro()).args(["gen-cert", "--dir"]).arg(dir).output().expect("gen-cert");
    assert!(out.status.success(), "gen-cert: {}", String::from_utf8_lossy(&out.stderr));
    (dir.join("server.pem"), dir.join("server.key"))
}

#[test]
fn downloads_over_af_xdp_ipv4_ipv6_quicpro_and_aioquic_with_cid_steering() {
    let pair = VethPair::create("g", 2);
    let names = pair.names();
    let dir = TempDir::new("g");
    let root = dir.0.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let sum = write_file(&root, "data.bin", 3_000_000);
    let (cert, key) = gen_cert(&dir.0);
    let server = Server::start(&pair, &root, &cert, &key);

    // quicpro get over IPv4 and IPv6.
    assert_eq!(download(&pair, &dir.0, SERVER_V4, "/data.bin"), sum);
    assert_eq!(download(&pair, &dir.0, SERVER_V6, "/data.bin"), sum);
    // aioquic over IPv4 and IPv6.
    for ip in [SERVER_V4, SERVER_V6] {
        let (bytes, sha) = aioquic_fetch(&pair, ip, "/data.bin", &cert);
        assert_eq!((bytes.as_str(), sha.as_str()), ("3000000", sum.as_str()), "aioquic over {ip}");
    }
    // Many short connections, each from its own client socket: RSS spreads
    // them over both queues (P(all on one queue) = 2^-23).
    let mut workers_seen = [0u32; 2];
    for i in 0..24 {
        let ip = if i % 3 == 0 { SERVER_V6 } else { SERVER_V4 };
        let out = get(&pair, &[&url(ip, &format!("/echo/{i}"))]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        let w = number_after(&text, "echo from worker ").unwrap();
        assert!(text.ends_with(&format!(": /echo/{i}\n")), "{text}");
        workers_seen[w as usize] += 1;
    }

    let lines = server.stop();
    for l in lines.iter().filter(|l| l.contains("stopped:") || l.contains("] io:")) {
        eprintln!("{l}");
    }
    eprintln!("echo answered by worker 0: {}, worker 1: {}", workers_seen[0], workers_seen[1]);
    // Each connection is served by the worker of the queue its packets
    // arrive on, and both queues carried connections.
    assert!(workers_seen[0] > 0 && workers_seen[1] > 0, "{workers_seen:?}");
    let stats = worker_stats(&lines);
    assert!(stats.iter().all(|s| s.0 > 0), "both workers received datagrams: {stats:?}");
    let xdp = xdp_line(&lines);
    assert!(number_before(&xdp, " short").unwrap() > 0, "{xdp}");
    assert!(number_before(&xdp, " long").unwrap() > 0, "{xdp}");
    // Connections kept their 4-tuple: every short header named its queue's worker.
    assert_eq!(number_after(&xdp, "cid_mismatch ").unwrap(), 0, "{xdp}");
    // Nothing QUIC took the kernel path.
    for l in lines.iter().filter(|l| l.contains("] io: af_xdp")) {
        assert_eq!(number_after(l, "udp rx ").unwrap(), 0, "{l}");
    }

    // The program was detached at exit; then everything is deleted.
    assert_eq!(pair.server_xdp_program(), None);
    drop(pair);
    assert_gone(&names);
}

// ------------------------------------------------------------------ bad input

fn frame(dst: [u8; 6], ethertype: u16, body: &[u8]) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x98]);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(body);
    f
}

/// IPv4 + UDP to our port, client → server, with `payload`.
fn ipv4_udp(payload: &[u8], ihl: u8, udp_len_delta: i32) -> Vec<u8> {
    let hl = usize::from(ihl) * 4;
    let mut ip = vec![0x40 | ihl, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 198, 18, 0, 2, 198, 18, 0, 1];
    ip.resize(hl.max(20), 1);
    let udp_len = (8 + payload.len()) as i32 + udp_len_delta;
    let mut udp = vec![0xc3, 0x51];
    udp.extend_from_slice(&PORT.to_be_bytes());
    udp.extend_from_slice(&(udp_len as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let total = (ip.len() + udp.len()) as u16;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&udp);
    ip
}

/// Malformed frames through a raw packet socket in the client namespace.
fn send_raw_frames(pair: &VethPair, frames: Vec<Vec<u8>>) {
    let (ns, ifname) = (pair.client_ns.clone(), pair.client_if.clone());
    std::thread::spawn(move || {
        VethPair::enter(&ns);
        // SAFETY: plain socket(2); closed below.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        assert!(fd >= 0, "AF_PACKET: {}", std::io::Error::last_os_error());
        let c = std::ffi::CString::new(ifname).unwrap();
        // SAFETY: valid C string.
        let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
        for f in frames {
            // SAFETY: zeroed sockaddr_ll, then filled; lengths match.
            let rc = unsafe {
                let mut sll: libc::sockaddr_ll = std::mem::zeroed();
                sll.sll_family = libc::AF_PACKET as u16;
                sll.sll_ifindex = idx as i32;
                sll.sll_halen = 6;
                libc::sendto(fd, f.as_ptr().cast(), f.len(), 0, (&sll as *const libc::sockaddr_ll).cast(), std::mem::size_of::<libc::sockaddr_ll>() as u32)
            };
            assert_eq!(rc, f.len() as isize, "{}", std::io::Error::last_os_error());
        }
        // SAFETY: our fd.
        unsafe { libc::close(fd) };
    })
    .join()
    .unwrap();
}

/// Truncated QUIC headers and short headers for unknown CIDs, as UDP from
/// the client namespace (several sockets, so both queues get some).
fn send_bad_quic(pair: &VethPair) -> usize {
    let ns = pair.client_ns.clone();
    std::thread::spawn(move || {
        VethPair::enter(&ns);
        let mut sent = 0;
        for (k, to) in [SERVER_V4, SERVER_V6].iter().enumerate() {
            let to: SocketAddr = SocketAddr::new(to.parse().unwrap(), PORT);
            for s in 0..8u8 {
                let sock = UdpSocket::bind(if to.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }).unwrap();
                let truncated: [&[u8]; 4] = [&[0x40], &[0x40, 0, 1], &[0xc0, 0, 0], &[0xc0, 0, 0, 0, 1, 20, 1]];
                for t in truncated {
                    sock.send_to(t, to).unwrap();
                    sent += 1;
                }
                // Unknown CIDs naming worker 0 or 1, with a plausible body.
                let mut d = vec![0x41, 0x05, s % 2, 7, 7, 7, 7, 7, k as u8];
                d.extend_from_slice(&[0xaa; 40]);
                sock.send_to(&d, to).unwrap();
                sent += 1;
            }
        }
        sent
    })
    .join()
    .unwrap()
}

#[test]
fn bad_input_is_counted_and_a_crashed_servers_program_is_replaced() {
    let pair = VethPair::create("b", 2);
    let names = pair.names();
    let dir = TempDir::new("b");
    let root = dir.0.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let sum = write_file(&root, "f.bin", 500_000);
    let (cert, key) = gen_cert(&dir.0);

    // A server that dies without detaching: its program stays attached.
    let server = Server::start(&pair, &root, &cert, &key);
    assert_eq!(download(&pair, &dir.0, SERVER_V4, "/f.bin"), sum);
    let mut crashed = server.guard;
    crashed.signal(libc::SIGKILL);
    assert!(crashed.wait_for(Duration::from_secs(10)).is_some(), "server did not die");
    assert_eq!(pair.server_xdp_program().as_deref(), Some("quicpro_xdp"), "stale program left by the crash");

    // The next start replaces the stale program and serves.
    let server = Server::start(&pair, &root, &cert, &key);
    let mac = pair.server_mac();
    let bad_frames = vec![
        frame(mac, 0x8100, &[0, 1]),                        // VLAN tag cut short
        frame(mac, 0x0800, &[0x45, 0, 0]),                  // IPv4 header cut short
        frame(mac, 0x0800, &ipv4_udp(&[0xc0; 30], 4, 0)),   // IHL 4
        frame(mac, 0x0800, &ipv4_udp(&[0xc0; 30], 5, 200)), // UDP length past the packet
        frame(mac, 0x0800, &ipv4_udp(&[], 5, 0)),           // empty QUIC payload
        frame(mac, 0x0800, &ipv4_udp(&[0x40, 1, 2], 5, 0)), // short header, no room for a CID
        frame(mac, 0x86dd, &[0x60, 0, 0]),                  // IPv6 header cut short
        frame(mac, 0x0806, &[0; 28]),                       // ARP-sized garbage
    ];
    send_raw_frames(&pair, bad_frames);
    let bad_quic = send_bad_quic(&pair);
    // Still serving, over both families.
    assert_eq!(download(&pair, &dir.0, SERVER_V4, "/f.bin"), sum);
    assert_eq!(download(&pair, &dir.0, SERVER_V6, "/f.bin"), sum);

    let lines = server.stop();
    for l in lines.iter().filter(|l| l.contains("stopped:") || l.contains("] io:")) {
        eprintln!("{l}");
    }
    let xdp = xdp_line(&lines);
    // Frames the program could not parse were counted and passed on: the
    // raw frames, and the short headers too short for our CID (2 per socket).
    assert!(number_before(&xdp, " eth,").unwrap() >= 1, "{xdp}");
    assert!(number_before(&xdp, " ip, ").unwrap() >= 3, "{xdp}");
    assert!(number_before(&xdp, " udp,").unwrap() >= 1, "{xdp}");
    assert!(number_before(&xdp, " quic").unwrap() >= 2 + 32, "{xdp}");
    // The endpoints dropped every bad datagram they were handed (through
    // the XSK, or the kernel path for what XDP passed), without crashing:
    // 16 unknown CIDs, 64 truncated headers.
    let stats = worker_stats(&lines);
    let unknown: u64 = stats.iter().map(|s| s.1).sum();
    let drops: u64 = stats.iter().map(|s| s.2).sum();
    eprintln!("sent {bad_quic} bad QUIC datagrams; endpoints dropped {drops}, {unknown} for unknown CIDs");
    assert_eq!(bad_quic, 80);
    assert!(unknown >= 16, "{stats:?}");
    assert!(drops >= 80, "{stats:?}");

    assert_eq!(pair.server_xdp_program(), None, "detached at exit");
    drop(pair);
    assert_gone(&names);
}
