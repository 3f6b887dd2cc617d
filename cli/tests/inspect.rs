//! Runs the built `quicpro` binary: `inspect --json` over the 37 captured
//! Initials, single datagrams, and inputs it must refuse without panicking.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

/// shared/data beside the repository, or `QUICPRO_SHARED_DATA`.
fn shared_data() -> PathBuf {
    if let Ok(p) = std::env::var("QUICPRO_SHARED_DATA") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("..").join("shared").join("data")
}

fn capture_path() -> PathBuf {
    shared_data().join("quic-initials-from-pcaps.json")
}

fn quicpro(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_quicpro")).args(args).output().unwrap();
    // Whatever the input, the process must end by itself, not by a panic.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn entries() -> Vec<Value> {
    let text = std::fs::read_to_string(capture_path()).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc["entries"].as_array().unwrap().clone()
}

#[test]
fn json_capture_decrypts_every_initial() {
    let path = capture_path();
    let o = quicpro(&["inspect", "--json", path.to_str().unwrap()]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", String::from_utf8_lossy(&o.stderr));
    let summary = out.lines().last().unwrap();
    assert!(summary.starts_with("inspected 37 datagrams: "), "{summary}");
    assert!(summary.ends_with(" frames, 0 errors"), "{summary}");

    // The first entry is Chrome's first client Initial.
    assert!(out.contains("== [1/37] chromium-115.0.5790.110-api-cirrus-com.pcap frame 1 client->server (1250 bytes)\n"), "{out}");
    assert!(out.contains("packet 0 @0: Initial len=1250 version=0x00000001 (v1) dcid=95412c47018cdfe8 scid=- token_len=70 length=1161"), "{out}");

    // Each entry's section shows its packet number and the CRYPTO, PADDING
    // and PING frames recorded by the tool that built the file.
    let sections: Vec<&str> = out.split("== [").skip(1).collect();
    let entries = entries();
    assert_eq!(sections.len(), entries.len());
    for (i, (section, e)) in sections.iter().zip(&entries).enumerate() {
        assert_eq!(section.matches("decrypted with ").count(), 1, "entry {i}: {section}");
        let pn = e["packet_number"].as_u64().unwrap();
        assert!(section.contains(&format!(": pn={pn} ")), "entry {i}: {section}");
        let frame_lines: Vec<&str> = section.lines().map(str::trim).collect();
        for f in e["frames"].as_array().unwrap() {
            let f = f.as_str().unwrap();
            if f.starts_with("CRYPTO") || f.starts_with("PADDING") || f == "PING" {
                assert!(frame_lines.contains(&f), "entry {i}: {f} missing in\n{section}");
            }
        }
        let is_client = e["direction"].as_str().unwrap().starts_with("client");
        let sender = if is_client { "client" } else { "server" };
        assert!(section.contains(&format!("decrypted with {sender} Initial keys")), "entry {i}: {section}");
    }
    // v2 entries are recognised as such.
    assert!(out.contains("version=0x6b3343cf (v2)"), "{out}");
}

#[test]
fn server_initial_from_hex_needs_odcid() {
    let e = entries().into_iter().find(|e| e["direction"].as_str().unwrap().starts_with("server")).unwrap();
    let hex = e["datagram_hex"].as_str().unwrap();
    let odcid = e["key_derivation_dcid"].as_str().unwrap();

    let o = quicpro(&["inspect", "--odcid", odcid, hex]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains(&format!("decrypted with server Initial keys from DCID {odcid} (--odcid)")), "{out}");
    assert!(out.contains("    ACK largest="), "{out}");
    assert!(out.ends_with(" 0 errors\n"), "{out}");

    let o = quicpro(&["inspect", hex]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("error: no Initial key opened this packet; for a server's Initial pass --odcid"), "{out}");
    assert!(out.ends_with("inspected 1 datagrams: 0 packets decrypted, 0 frames, 1 errors\n"), "{out}");
}

#[test]
fn bad_inputs_are_refused_with_exit_code_2() {
    for (args, msg) in [
        (&["inspect", "abc"][..], "datagram 1: invalid hex"),
        (&["inspect", "c0zz"][..], "datagram 1: invalid hex"),
        (&["inspect", ""][..], "datagram 1 is empty"),
        (&["inspect"][..], "nothing to inspect"),
        (&["inspect", "--odcid", "123", "c0"][..], "--odcid: invalid hex"),
        (&["inspect", "--json", "/nonexistent/capture.json"][..], "/nonexistent/capture.json"),
    ] {
        let o = quicpro(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(msg), "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?}");
    }
    // clap's own usage errors use 2 as well.
    assert_eq!(quicpro(&["inspect", "--short-dcid-len", "21", "40"]).status.code(), Some(2));
    assert_eq!(quicpro(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn truncated_long_header_is_reported() {
    // Initial, v1, DCID length 8 but only 2 DCID bytes present.
    let o = quicpro(&["inspect", "c0000000010811 22"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("packet 0 @0: error: truncated header"), "{out}");
    assert!(out.ends_with("inspected 1 datagrams: 0 packets decrypted, 0 frames, 1 errors\n"), "{out}");

    // A short header needs --short-dcid-len bytes of DCID.
    let o = quicpro(&["inspect", "--short-dcid-len", "8", "4001020304"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("error: truncated header"));

    // A 1-RTT packet is listed without keys and is not an error.
    let o = quicpro(&["inspect", "--short-dcid-len", "4", "40aabbccdd0102030405060708090a0b0c0d0e0f101112131415"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("1-RTT len=26 dcid=aabbccdd (assumed 4-byte dcid) spin=0"), "{out}");
    assert!(out.contains("(no keys)"), "{out}");
}

#[test]
fn corrupt_capture_file_is_refused() {
    let dir = std::env::temp_dir().join(format!("quicpro-inspect-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{\"entries\": [{\"datagram_hex\": 5}]}").unwrap();
    let o = quicpro(&["inspect", "--json", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a capture file"));

    // Well-formed JSON whose entry holds odd hex: reported, counted, exit 1.
    let odd = dir.join("odd.json");
    std::fs::write(&odd, "{\"entries\": [{\"pcap\": \"x.pcap\", \"direction\": \"client->server\", \"datagram_hex\": \"abc\"}]}").unwrap();
    let o = quicpro(&["inspect", "--json", odd.to_str().unwrap()]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("== [1/1] x.pcap client->server: error: bad datagram_hex"), "{out}");
    assert!(out.ends_with("inspected 0 datagrams: 0 packets decrypted, 0 frames, 1 errors\n"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
