//! RFC 9218 interop with quiche: its HTTP/3 client (our small peer program
//! on the quiche crate, `interop/peers/quiche-peer`) sends a PRIORITY_UPDATE
//! frame that quiche itself encodes, and `quicpro serve` reorders its
//! responses by it.
//!
//! The peer is built by `make peers` (part of `make test`); without it the
//! test fails and says how to build it.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

mod support;
use support::start_server;

fn quiche_peer() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../interop/peers/quiche-peer/target/release/quiche-peer");
    assert!(p.exists(), "{} is missing: `make peers` (or cargo build --release --manifest-path interop/peers/quiche-peer/Cargo.toml) builds it", p.display());
    p
}

/// Runs the quiche client for `testcase` on two 3 MB responses; returns
/// the file names in the order their responses completed.
fn completion_order(port: u16, testcase: &str) -> Vec<String> {
    let downloads = std::env::temp_dir().join(format!("quicpro-quiche-prio-{}-{testcase}", std::process::id()));
    std::fs::create_dir_all(&downloads).unwrap();
    let out = Command::new(quiche_peer())
        .env("ROLE", "client")
        .env("TESTCASE", testcase)
        .env("REQUESTS", format!("https://127.0.0.1:{port}/bytes/3000000 https://127.0.0.1:{port}/bytes/3000001"))
        .env("DOWNLOADS", &downloads)
        .env("PRINT_COMPLETIONS", "1")
        .output()
        .expect("run quiche-peer");
    let sizes: Vec<u64> = ["3000000", "3000001"].iter().map(|f| std::fs::metadata(downloads.join(f)).map_or(0, |m| m.len())).collect();
    let _ = std::fs::remove_dir_all(&downloads);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "quiche-peer {testcase}: {stderr}");
    assert_eq!(sizes, [3_000_000, 3_000_001], "{stderr}");
    let order: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.strip_prefix("complete ")).map(str::to_string).collect();
    if testcase == "priorities" {
        assert!(stderr.contains("PRIORITY_UPDATE u=0 for stream 4"), "{stderr}");
    }
    order
}

/// Two large responses requested together: by default ours go one after
/// the other in request order (RFC 9218 §10); quiche's PRIORITY_UPDATE
/// raising the second to urgency 0 makes it complete first.
#[test]
fn quiche_priority_update_reorders_responses() {
    let (_server, port) = start_server(&[]);
    assert_eq!(completion_order(port, "http3"), ["3000000", "3000001"], "without a PRIORITY_UPDATE");
    assert_eq!(completion_order(port, "priorities"), ["3000001", "3000000"], "after quiche's PRIORITY_UPDATE u=0 for the second");
}
