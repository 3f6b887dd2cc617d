//! `quicpro serve --workers 2` with connection-ID steering (needs root, as
//! CI has): the start-up line says it is on, downloads work, and the
//! counters printed at shutdown show every datagram steered, none left to
//! the kernel's hash.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(lines: &Arc<Mutex<Vec<String>>>, what: &str, deadline: Instant) -> String {
    loop {
        if let Some(l) = lines.lock().expect("lines").iter().find(|l| l.contains(what)) {
            return l.clone();
        }
        assert!(Instant::now() < deadline, "server never printed {what:?}: {:?}", lines.lock().expect("lines"));
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn number_before(line: &str, label: &str) -> u64 {
    let head = line.split(label).next().expect("label present");
    head.split_whitespace().last().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no number before {label:?} in {line}"))
}

#[test]
fn two_workers_with_steering_serve_and_count() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_quicpro"))
        .args(["serve", "--host", "127.0.0.1", "--port", "0", "--workers", "2", "--steering", "on", "--duration", "60"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn quicpro serve");
    let stderr = child.stderr.take().expect("stderr");
    let guard = Guard(child);
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().expect("lines").push(l);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let on = wait_for(&lines, "connection-ID steering on", deadline);
    assert!(on.contains("2 workers"), "{on}");
    let w0 = wait_for(&lines, "[worker 0] listening on ", deadline);
    let w1 = wait_for(&lines, "[worker 1] listening on ", deadline);
    let addr = |l: &str| l.split("listening on ").nth(1).and_then(|r| r.split_whitespace().next()).expect("addr").to_string();
    assert_eq!(addr(&w0), addr(&w1), "both workers on one port");
    let port = addr(&w0).rsplit(':').next().expect("port").to_string();

    for i in 0..4 {
        let out = Command::new(env!("CARGO_BIN_EXE_quicpro"))
            .args(["get", "-k", "--timeout", "30", &format!("https://127.0.0.1:{port}/bytes/{}", 500_000 + i)])
            .output()
            .expect("run quicpro get");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.stdout.len(), 500_000 + i);
    }

    // SIGTERM: graceful stop, then the counters line.
    // SAFETY: plain kill(2) on the child we started.
    assert_eq!(unsafe { libc::kill(guard.0.id() as libc::pid_t, libc::SIGTERM) }, 0);
    let line = wait_for(&lines, "steering: ", Instant::now() + Duration::from_secs(30));
    eprintln!("{line}");
    let by_cid = number_before(&line, " by CID");
    let empty = number_before(&line, " empty slot");
    let out_of_range = number_before(&line, " worker out of range");
    let malformed = number_before(&line, " malformed");
    let errors = number_before(&line, " select errors");
    assert!(by_cid > 0, "{line}");
    assert_eq!(empty + out_of_range + malformed + errors, 0, "{line}");
    // Each worker reports how many datagrams it took in. The program runs
    // once per received buffer, and on loopback a client's GSO batch stays
    // one buffer until the server's GRO socket splits it, so the program
    // may count fewer than the workers.
    let total: u64 = ["[worker 0] stopped", "[worker 1] stopped"]
        .iter()
        .map(|w| number_before(&wait_for(&lines, w, Instant::now() + Duration::from_secs(10)), " datagrams,"))
        .sum();
    let by_hash = number_before(&line, " by DCID hash");
    assert!(by_cid + by_hash <= total && total > 0, "{line}; workers took {total}");
    drop(guard);
}

/// Runs `quicpro serve` as uid/gid 65534 (no capabilities): `auto` logs why
/// steering is off and serves anyway; `on` refuses to start, saying how to
/// run without it.
#[test]
fn without_privileges_auto_falls_back_and_on_fails() {
    use std::os::unix::process::CommandExt;
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "this test drops root privileges, so it must start as root (as CI does)");
    let run = |mode: &str| {
        let child = Command::new(env!("CARGO_BIN_EXE_quicpro"))
            .args(["serve", "--host", "127.0.0.1", "--port", "0", "--workers", "2", "--steering", mode, "--duration", "0.3"])
            .uid(65534)
            .gid(65534)
            .current_dir("/")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn quicpro serve as nobody");
        let mut guard = Guard(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = guard.0.try_wait().expect("wait") {
                break s;
            }
            assert!(Instant::now() < deadline, "quicpro serve --steering {mode} did not exit");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(guard.0.stderr.as_mut().expect("stderr"), &mut err).expect("read stderr");
        (status, err)
    };
    let (status, err) = run("auto");
    assert!(status.success(), "{err}");
    assert!(err.contains("connection-ID steering off: load steering program: permission denied"), "{err}");
    assert!(err.contains("--steering off"), "{err}");
    assert!(err.contains("[worker 1] listening on"), "{err}");

    let (status, err) = run("on");
    assert!(!status.success(), "{err}");
    assert!(err.contains("permission denied") && err.contains("CAP_BPF"), "{err}");
    assert!(!err.contains("listening on"), "{err}");
}
