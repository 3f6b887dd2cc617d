//! What several CLI tests share: a `quicpro serve` child that is always
//! stopped (by its PID, when the guard drops) and whose port is read from
//! its "listening on" line.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a one-worker `quicpro serve` on an ephemeral loopback port (or
/// the `--host` among `extra`) with these extra arguments; returns it and
/// the port.
pub fn start_server(extra: &[&str]) -> (Guard, u16) {
    let host: &[&str] = if extra.contains(&"--host") { &[] } else { &["--host", "127.0.0.1"] };
    let mut child = Command::new(env!("CARGO_BIN_EXE_quicpro"))
        .arg("serve")
        .args(host)
        .args(["--port", "0", "--workers", "1", "--duration", "60"])
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
