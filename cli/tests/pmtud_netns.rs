//! Path MTU discovery over real sockets on a veth whose MTU is known
//! (RFC 8899, RFC 9000 §14.3): `quicpro serve` in one namespace, `quicpro
//! get -v` in another, the link set to 1,400 bytes. Over IPv4 (28 bytes of
//! IP and UDP headers) the largest UDP payload is 1,372; over IPv6 (48)
//! 1,352: each side must find it within the search's 20-byte granularity,
//! having sent probes above it (EMSGSIZE locally, so lost) without
//! breaking the download. Root only; every namespace and link is removed at
//! the end, which the test asserts. Every wait has a deadline; children are
//! killed by PID when their guard drops.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use quicpro_tests::netns::{assert_gone, ip, VethPair, SERVER_V4, SERVER_V6};

const PORT: u16 = 4433;
const LINK_MTU: u32 = 1400;

/// Kills the child by PID unless it exited, then reaps it.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            // SAFETY: kill(2) on our own child, not yet reaped.
            unsafe {
                libc::kill(self.0.id() as libc::pid_t, libc::SIGKILL);
            }
        }
        let _ = self.0.wait();
    }
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn quicpro() -> &'static str {
    env!("CARGO_BIN_EXE_quicpro")
}

/// The MTU `quicpro get -v` reports for its connection.
fn reported_mtu(stderr: &str) -> Option<u32> {
    let at = stderr.find(", MTU ")? + 6;
    stderr[at..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// Per server qlog file, the `new` of its last finished search
/// (`quic:mtu_updated` with `done`).
fn server_results(dir: &std::path::Path) -> Vec<(PathBuf, u32)> {
    let mut out = Vec::new();
    for f in std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path()) {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        let mut last = text.lines().filter(|l| l.contains("quic:mtu_updated") && l.contains("\"done\":true")).filter_map(|line| {
            let at = line.find("\"new\":")? + 6;
            line[at..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
        });
        if let Some(v) = last.next_back() {
            out.push((f, v));
        }
    }
    out
}

#[test]
fn pmtud_finds_a_veth_links_mtu_over_ipv4_and_ipv6() {
    let dir = TempDir(std::env::temp_dir().join(format!("quicpro-pmtud-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(dir.0.join("www")).unwrap();
    let body: Vec<u8> = (0..4_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(dir.0.join("www/big"), &body).unwrap();
    let st = std::process::Command::new(quicpro()).args(["gen-cert", "--dir"]).arg(&dir.0).stdout(Stdio::null()).status().unwrap();
    assert!(st.success());
    let pair = VethPair::create("m", 1);
    let names = pair.names();
    {
        for (ns, ifname) in [(&pair.server_ns, &pair.server_if), (&pair.client_ns, &pair.client_if)] {
            ip(&["-n", ns, "link", "set", "dev", ifname, "mtu", &LINK_MTU.to_string()]);
        }
        let server = VethPair::exec(&pair.server_ns, quicpro())
            .args(["serve", "--host", "::", "--port", &PORT.to_string(), "--duration", "120", "--backend", "epoll", "--retry", "never"])
            .arg("--root")
            .arg(dir.0.join("www"))
            .arg("--cert")
            .arg(dir.0.join("server.pem"))
            .arg("--key")
            .arg(dir.0.join("server.key"))
            .arg("--qlog-dir")
            .arg(dir.0.join("qlog"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let _server = Guard(server);
        let mut seen: Vec<PathBuf> = Vec::new();
        for (ip_addr, overhead) in [(SERVER_V4.to_string(), 28), (format!("[{SERVER_V6}]"), 48)] {
            let limit = LINK_MTU - overhead;
            let url = format!("https://{ip_addr}:{PORT}/big");
            let out_file = dir.0.join("out");
            // The server may still be starting: retry within a deadline.
            let deadline = Instant::now() + Duration::from_secs(30);
            let out = loop {
                let out =
                    VethPair::exec(&pair.client_ns, quicpro()).args(["get", "-v", "-k", "--timeout", "30", "-o"]).arg(&out_file).arg(&url).output().unwrap();
                if out.status.success() || Instant::now() >= deadline {
                    break out;
                }
                std::thread::sleep(Duration::from_millis(200));
            };
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{url}: {err}");
            assert!(std::fs::read(&out_file).unwrap() == body, "{url}: body intact");
            let mtu = reported_mtu(&err).unwrap_or_else(|| panic!("no MTU in {err}"));
            assert!(mtu <= limit && limit - mtu <= 20, "{url}: found {mtu}, the path carries {limit}");
            // The server's search, from the qlog file of this connection
            // (written once the connection has ended).
            let deadline = Instant::now() + Duration::from_secs(15);
            let fresh = loop {
                let fresh: Vec<(PathBuf, u32)> = server_results(&dir.0.join("qlog")).into_iter().filter(|(f, _)| !seen.contains(f)).collect();
                if !fresh.is_empty() || Instant::now() >= deadline {
                    break fresh;
                }
                std::thread::sleep(Duration::from_millis(100));
            };
            assert!(!fresh.is_empty(), "{url}: no finished search in the server's qlog");
            for (f, server_mtu) in fresh {
                assert!(server_mtu <= limit && limit - server_mtu <= 20, "{url}: server found {server_mtu}, the path carries {limit}");
                eprintln!("{url}: server MTU {server_mtu} ({})", f.display());
                seen.push(f);
            }
            eprintln!("{url}: client MTU {mtu}, path limit {limit}");
        }
    }
    drop(pair);
    assert_gone(&names);
}
