//! A real browser against `quicpro serve`: Debian's Chromium, headless,
//! forced onto HTTP/3 for the server's origin (`--origin-to-force-quic-on`,
//! there is no TCP listener to fall back to), trusting our self-signed
//! certificate by its key hash. The page's DOM, as Chromium rendered it,
//! must contain the page's text, and the server must have accepted a QUIC
//! connection. Skipped with a message when Chromium is not installed
//! (`scripts/setup.sh` installs it).

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

fn chromium() -> Option<&'static str> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"].into_iter().find(|p| std::path::Path::new(p).exists())
}

/// Base64 of the SHA-256 of the certificate's public key (what
/// `--ignore-certificate-errors-spki-list` takes), via openssl.
fn spki_hash(cert: &std::path::Path) -> String {
    let cmd = format!("openssl x509 -in {} -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64", cert.display());
    let out = Command::new("sh").args(["-c", &cmd]).output().expect("openssl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn chromium_renders_a_page_over_http3() {
    let Some(browser) = chromium() else {
        eprintln!("SKIP: chromium is not installed (scripts/setup.sh installs it)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("quicpro-chromium-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("www")).unwrap();
    std::fs::create_dir_all(dir.join("certs")).unwrap();
    std::fs::write(
        dir.join("www/index.html"),
        "<!doctype html><html><head><title>q</title><script src=\"app.js\"></script></head><body><p id=\"t\">served by quicpro over HTTP/3</p></body></html>\n",
    )
    .unwrap();
    // A script the page runs: it must arrive with a JavaScript media type.
    std::fs::write(
        dir.join("www/app.js"),
        "document.addEventListener('DOMContentLoaded', () => { document.body.insertAdjacentHTML('beforeend', '<p id=\"js\">script ran</p>'); });\n",
    )
    .unwrap();
    let gen = Command::new(env!("CARGO_BIN_EXE_quicpro")).args(["gen-cert", "--dir"]).arg(dir.join("certs")).output().unwrap();
    assert!(gen.status.success());
    let cert = dir.join("certs/server.pem");
    let mut child = Command::new(env!("CARGO_BIN_EXE_quicpro"))
        .args(["serve", "--host", "127.0.0.1", "--port", "0", "--duration", "60", "--root"])
        .arg(dir.join("www"))
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(dir.join("certs/server.key"))
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let pid = child.id() as libc::pid_t;
    let _server = Guard(child);
    let mut lines = BufReader::new(stderr).lines();
    let mut port = 0u16;
    while let Some(Ok(l)) = lines.next() {
        if let Some(rest) = l.split("listening on ").nth(1) {
            port = rest.split_whitespace().next().and_then(|a| a.rsplit(':').next()).and_then(|p| p.parse().ok()).unwrap();
            break;
        }
    }
    assert_ne!(port, 0, "server address");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let profile = dir.join("profile");
    let origin = format!("localhost:{port}");
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--origin-to-force-quic-on={origin}"))
        .arg("--host-resolver-rules=MAP localhost 127.0.0.1")
        .arg(format!("--ignore-certificate-errors-spki-list={}", spki_hash(&cert)))
        .arg("--virtual-time-budget=5000")
        .arg("--dump-dom")
        .arg(format!("https://{origin}/"))
        .stderr(Stdio::null())
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(dom.contains("served by quicpro over HTTP/3"), "DOM: {dom}");
    assert!(dom.contains("script ran"), "the page's script loaded and ran: {dom}");
    // The server saw the browser's QUIC connection (there is no TCP
    // listener: a fallback would have failed the load).
    // SAFETY: SIGTERM to the server we started (graceful stop: it prints
    // its counters).
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let end = Instant::now() + Duration::from_secs(10);
    let mut stats = String::new();
    while Instant::now() < end {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(l) if l.contains("stopped:") => {
                stats = l;
                break;
            }
            Ok(_) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(_) => break,
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(stats.contains("connections accepted"), "server stop line: {stats:?}");
    assert!(!stats.contains("stopped: 0 connections"), "{stats}");
}
