//! `quicpro serve` and `quicpro get` against each other on loopback.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a one-worker server on an ephemeral port; returns it and the port.
fn start_server(extra: &[&str]) -> (Guard, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_quicpro"))
        .args(["serve", "--host", "127.0.0.1", "--port", "0", "--workers", "1", "--duration", "60"])
        .args(extra)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn quicpro serve");
    let stderr = child.stderr.take().expect("stderr");
    let guard = Guard(child);
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(rest) = line.split("listening on ").nth(1) {
            let addr = rest.split_whitespace().next().unwrap_or_default();
            let port = addr.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
            // Keep draining stderr so the server never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            return (guard, port);
        }
    }
    panic!("server did not report its address");
}

fn get(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_quicpro"))
        .arg("get")
        .args(["-k", "--timeout", "30"])
        .args(args)
        .output()
        .expect("run quicpro get")
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n as u64).map(|i| (i.wrapping_mul(7).wrapping_add(i / 251)) as u8).collect()
}

#[test]
fn echo_download_and_resumption() {
    let (_server, port) = start_server(&[]);
    let base = format!("https://127.0.0.1:{port}");
    let out = get(&[&format!("{base}/foo")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "echo from worker 0: /foo\n");

    let file = std::env::temp_dir().join(format!("quicpro-get-{}.bin", std::process::id()));
    let out = get(&["-o", file.to_str().unwrap(), &format!("{base}/bytes/3000000")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let body = std::fs::read(&file).unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(body == pattern(3_000_000), "downloaded bytes differ ({} bytes)", body.len());

    let out = get(&["-v", "--reconnect", &format!("{base}/foo"), &format!("{base}/bar")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("connection 1: full TLS handshake"), "{err}");
    assert!(err.contains("connection 2: TLS session resumed (0-RTT accepted)"), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "echo from worker 0: /foo\necho from worker 0: /bar\n");
}

#[test]
fn parallel_requests_and_upload() {
    let (_server, port) = start_server(&[]);
    let base = format!("https://127.0.0.1:{port}");
    let urls: Vec<String> = (0..20).map(|i| format!("{base}/echo/{i}")).collect();
    let args: Vec<&str> = urls.iter().map(|s| s.as_str()).collect();
    let out = get(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    for i in 0..20 {
        assert!(text.contains(&format!("echo from worker 0: /echo/{i}\n")), "missing {i}: {text}");
    }
    let file = std::env::temp_dir().join(format!("quicpro-post-{}.bin", std::process::id()));
    std::fs::write(&file, pattern(1_000_000)).unwrap();
    let out = get(&["--post", file.to_str().unwrap(), &format!("{base}/echo")]);
    let _ = std::fs::remove_file(&file);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let digest = ring::digest::digest(&ring::digest::SHA256, &pattern(1_000_000));
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("1000000 {hex}\n"));
}

#[test]
fn static_files_and_404() {
    let dir = std::env::temp_dir().join(format!("quicpro-root-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hello.txt"), b"hello file\n").unwrap();
    let (_server, port) = start_server(&["--root", dir.to_str().unwrap()]);
    let base = format!("https://127.0.0.1:{port}");
    let out = get(&[&format!("{base}/hello.txt")]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello file\n");
    let out = get(&[&format!("{base}/../../etc/passwd")]);
    assert!(!out.status.success(), "path traversal refused");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "not found\n");
    let _ = std::fs::remove_dir_all(&dir);
}
