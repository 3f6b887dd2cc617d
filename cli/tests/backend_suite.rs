//! The same end-to-end suite on every I/O backend: `quicpro serve` with
//! `--backend epoll|io_uring|busy_poll`, over IPv4 and IPv6 loopback, with
//! GSO on and off (`--no-gso`), answering HTTP/3 GETs from `quicpro get`
//! (several requests in parallel on one connection) and one large
//! download, every byte checked against the `/bytes/<n>` pattern. Plus the
//! io_uring fallback: when io_uring cannot be set up (simulated with
//! `QUICPRO_URING_SIMULATE_FAILURE=1`) the default selection serves on
//! epoll and says so in its log.
//!
//! Cost: with debug builds a 100 MB download took 2–3 s per case here
//! (each case prints its timing), so every combination downloads 100 MB.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const SIZE: u64 = 100_000_000;

/// The pattern repeats every 251 × 256 bytes: one period plus a read
/// buffer's worth lets each chunk be compared with one slice comparison.
const PERIOD: u64 = 251 * 256;
const CHUNK: usize = 1 << 20;

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a server; returns it, its port and its first log lines (up to
/// and including the "listening on" line).
fn start_server(host: &str, args: &[&str], env: &[(&str, &str)]) -> (Guard, u16, Vec<String>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quicpro"));
    cmd.args(["serve", "--host", host, "--port", "0", "--workers", "1", "--duration", "120"])
        .args(args)
        .env_remove("QUICPRO_BACKEND")
        .env_remove("QUICPRO_BUSY_POLL")
        .env_remove("QUICPRO_XDP")
        .stderr(Stdio::piped())
        .stdout(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn quicpro serve");
    let stderr = child.stderr.take().expect("stderr");
    let guard = Guard(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else { continue };
        seen.push(line.clone());
        if let Some(rest) = line.split("listening on ").nth(1) {
            let addr = rest.split_whitespace().next().unwrap_or_default();
            let port = addr.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
            return (guard, port, seen);
        }
    }
    panic!("server did not report its address: {seen:?}");
}

fn get(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_quicpro"))
        .arg("get")
        .args(["-k", "--timeout", "60"])
        .args(args)
        .env_remove("QUICPRO_BACKEND")
        .output()
        .expect("run quicpro get")
}

/// Whether `file` holds exactly the first `n` pattern bytes, read in chunks.
fn file_matches_pattern(file: &std::path::Path, n: u64) -> Result<(), String> {
    let reference: Vec<u8> = (0..PERIOD + CHUNK as u64).map(|i| (i.wrapping_mul(7).wrapping_add(i / 251)) as u8).collect();
    let mut f = std::fs::File::open(file).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; CHUNK];
    let mut off = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(|e| e.to_string())?;
        if k == 0 {
            break;
        }
        let start = (off % PERIOD) as usize;
        if buf[..k] != reference[start..start + k] {
            return Err(format!("bytes {off}..{} differ", off + k as u64));
        }
        off += k as u64;
    }
    if off != n {
        return Err(format!("{off} bytes, expected {n}"));
    }
    Ok(())
}

/// One combination: GETs in parallel, then a download of `size` bytes.
fn case(backend: &str, v6: bool, gso: bool, size: u64) {
    let start = Instant::now();
    let host = if v6 { "::1" } else { "127.0.0.1" };
    let mut args = vec!["--backend", backend];
    if !gso {
        args.push("--no-gso");
    }
    let (_server, port, log) = start_server(host, &args, &[]);
    let listening = log.last().cloned().unwrap_or_default();
    assert!(listening.contains(&format!("io backend {backend} ")), "{listening}");
    assert!(listening.contains(if gso { "gso on" } else { "gso off" }), "{listening}");
    let base = if v6 { format!("https://[::1]:{port}") } else { format!("https://127.0.0.1:{port}") };

    let urls: Vec<String> = (0..4).map(|i| format!("{base}/echo/{i}")).collect();
    let url_refs: Vec<&str> = urls.iter().map(String::as_str).collect();
    let out = get(&url_refs);
    assert!(out.status.success(), "{backend} v6={v6} gso={gso}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    for i in 0..4 {
        assert!(text.contains(&format!("echo from worker 0: /echo/{i}\n")), "{text}");
    }

    let file = std::env::temp_dir().join(format!("quicpro-suite-{}-{backend}-{v6}-{gso}.bin", std::process::id()));
    let t = Instant::now();
    let out = get(&["-o", file.to_str().expect("utf-8 path"), &format!("{base}/bytes/{size}")]);
    let secs = t.elapsed().as_secs_f64();
    let checked = file_matches_pattern(&file, size);
    let _ = std::fs::remove_file(&file);
    assert!(out.status.success(), "{backend} v6={v6} gso={gso}: {}", String::from_utf8_lossy(&out.stderr));
    if let Err(e) = checked {
        panic!("{backend} v6={v6} gso={gso}: download of {size} bytes: {e}");
    }
    println!(
        "[backend suite] {backend} {} gso {}: {size} bytes in {secs:.2} s; case {:.2} s",
        if v6 { "IPv6" } else { "IPv4" },
        if gso { "on" } else { "off" },
        start.elapsed().as_secs_f64()
    );
}

fn suite(backend: &str) {
    for v6 in [false, true] {
        for gso in [true, false] {
            case(backend, v6, gso, SIZE);
        }
    }
}

#[test]
fn epoll_suite() {
    suite("epoll");
}

#[test]
fn io_uring_suite() {
    suite("io_uring");
}

#[test]
fn busy_poll_suite() {
    suite("busy_poll");
}

#[test]
fn io_uring_failure_falls_back_to_epoll_with_a_log_line() {
    let (_server, port, log) = start_server("127.0.0.1", &[], &[("QUICPRO_URING_SIMULATE_FAILURE", "1")]);
    let all = log.join("\n");
    assert!(all.contains("quicpro io: io_uring unavailable (io_uring: setup failure simulated"), "{all}");
    let listening = log.last().cloned().unwrap_or_default();
    assert!(listening.contains("io backend epoll (io_uring unavailable:"), "{listening}");
    assert!(listening.contains("fallback)"), "{listening}");
    let out = get(&[&format!("https://127.0.0.1:{port}/echo/fallback")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "echo from worker 0: /echo/fallback\n");

    // A forced io_uring does not fall back: the server refuses to start.
    let out = Command::new(env!("CARGO_BIN_EXE_quicpro"))
        .args(["serve", "--host", "127.0.0.1", "--port", "0", "--backend", "io_uring", "--duration", "5"])
        .env("QUICPRO_URING_SIMULATE_FAILURE", "1")
        .output()
        .expect("run quicpro serve");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("setup failure simulated"), "{}", String::from_utf8_lossy(&out.stderr));
}
