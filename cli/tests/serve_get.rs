//! `quicpro serve` and `quicpro get` against each other on loopback.

use std::process::Command;

mod support;
use support::start_server;

fn get(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_quicpro")).arg("get").args(["-k", "--timeout", "30"]).args(args).output().expect("run quicpro get")
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

/// What a browser or a resuming download sees from `--root`: media types,
/// lengths, HEAD without a body, a byte range, validators and a conditional
/// request answered 304, a directory index, 405, and traversal refused.
#[test]
fn static_server_headers_ranges_and_conditionals() {
    let dir = std::env::temp_dir().join(format!("quicpro-static-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("www/sub")).unwrap();
    std::fs::write(dir.join("www/index.html"), b"<html><body><p id=t>quicpro static page</p></body></html>\n").unwrap();
    std::fs::write(dir.join("www/sub/index.html"), b"<p>sub</p>").unwrap();
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.join("www/big.bin"), &big).unwrap();
    std::fs::write(dir.join("secret.txt"), b"outside").unwrap();
    let root = dir.join("www");
    let (_server, port) = start_server(&["--root", root.to_str().unwrap()]);
    let base = format!("https://127.0.0.1:{port}");
    let header = |out: &std::process::Output, name: &str| -> Option<String> {
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        text.lines().find_map(|l| l.trim_start_matches("< ").strip_prefix(&format!("{name}: ")).map(str::to_owned))
    };

    // A page: text/html with its length; a directory gives its index.
    let out = get(&["-v", &format!("{base}/")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("quicpro static page"));
    assert_eq!(header(&out, "content-type").as_deref(), Some("text/html; charset=utf-8"));
    assert_eq!(header(&out, "content-length").as_deref(), Some("58"));
    let out = get(&[&format!("{base}/sub/")]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "<p>sub</p>");

    // HEAD: the headers GET would have, no content.
    let out = get(&["-I", &format!("{base}/big.bin")]);
    assert!(out.status.success());
    assert_eq!(header(&out, ":status").as_deref(), Some("200"));
    assert_eq!(header(&out, "content-length").as_deref(), Some("200000"));
    assert_eq!(header(&out, "accept-ranges").as_deref(), Some("bytes"));
    let etag = header(&out, "etag").expect("etag");
    let last_modified = header(&out, "last-modified").expect("last-modified");
    assert!(!String::from_utf8_lossy(&out.stdout).contains('\u{0}'), "no body bytes after the headers");

    // Resuming a download: the tail from an offset, with If-Range.
    let file = dir.join("tail.bin");
    let out = get(&["-v", "-H", "range: bytes=150000-", "-H", &format!("if-range: {etag}"), "-o", file.to_str().unwrap(), &format!("{base}/big.bin")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(header(&out, ":status").as_deref(), Some("206"));
    assert_eq!(header(&out, "content-range").as_deref(), Some("bytes 150000-199999/200000"));
    assert!(std::fs::read(&file).unwrap() == big[150_000..], "range content");
    let out = get(&["-v", "-H", "range: bytes=300000-", &format!("{base}/big.bin")]);
    assert_eq!(header(&out, ":status").as_deref(), Some("416"));
    assert_eq!(header(&out, "content-range").as_deref(), Some("bytes */200000"));

    // Revalidation: 304 with the validators, for an entity tag and a date.
    let out = get(&["-v", "-H", &format!("if-none-match: {etag}"), &format!("{base}/big.bin")]);
    assert!(out.status.success(), "304 to a conditional request counts as success");
    assert_eq!(header(&out, ":status").as_deref(), Some("304"));
    assert!(out.stdout.is_empty());
    let out = get(&["-v", "-H", &format!("if-modified-since: {last_modified}"), &format!("{base}/big.bin")]);
    assert_eq!(header(&out, ":status").as_deref(), Some("304"));

    // Refusals: traversal (plain, encoded, a symbolic link out), a method.
    std::os::unix::fs::symlink(dir.join("secret.txt"), root.join("link.txt")).unwrap();
    for p in ["/../secret.txt", "/%2e%2e/secret.txt", "/sub/%2E%2E%2F%2E%2E%2Fsecret.txt", "/link.txt"] {
        let out = get(&["-v", &format!("{base}{p}")]);
        assert_eq!(header(&out, ":status").as_deref(), Some("404"), "{p}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "not found\n", "{p}");
    }
    let upload = dir.join("up.txt");
    std::fs::write(&upload, b"x").unwrap();
    let out = get(&["-v", "--post", upload.to_str().unwrap(), &format!("{base}/big.bin")]);
    assert_eq!(header(&out, ":status").as_deref(), Some("405"));
    assert_eq!(header(&out, "allow").as_deref(), Some("GET, HEAD"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Regression (interop with quiche's hq client): an hq-interop response
/// larger than the stream's send buffer was cut off at the first full
/// buffer (a full buffer was taken for a closed stream) and never ended;
/// and many requests must be paced by the server's stream limit.
#[test]
fn hq_interop_large_body_and_many_requests() {
    let (_server, port) = start_server(&[]);
    let base = format!("https://127.0.0.1:{port}");
    let dir = std::env::temp_dir().join(format!("quicpro-hq-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = get(&["--hq", "--output-dir", dir.to_str().unwrap(), &format!("{base}/bytes/10000000")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let body = std::fs::read(dir.join("10000000")).unwrap();
    assert!(body == pattern(10_000_000), "hq body differs ({} bytes)", body.len());
    // 300 requests on one connection: beyond the server's initial stream
    // limit, so MAX_STREAMS must follow as responses complete.
    let urls: Vec<String> = (1..=300).map(|i| format!("{base}/bytes/{i}")).collect();
    let mut args = vec!["--hq", "--output-dir", dir.to_str().unwrap()];
    args.extend(urls.iter().map(String::as_str));
    let out = get(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for i in [1usize, 150, 300] {
        assert_eq!(std::fs::read(dir.join(i.to_string())).unwrap(), pattern(i), "file {i}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Compatible version negotiation end to end: a client starting in v1 and
/// preferring v2 is moved to v2 by the server (RFC 9368); one speaking
/// only v1 stays there.
#[test]
fn quic_v2_by_compatible_negotiation() {
    let (_server, port) = start_server(&[]);
    let url = format!("https://127.0.0.1:{port}/v");
    let out = get(&["-v", "--versions", "v2,v1", &url]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("QUIC v2 (from v1)"), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "echo from worker 0: /v\n");
    let out = get(&["-v", "--versions", "v1", &url]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("QUIC v1, RTT"), "{err}");
    let out = get(&["-v", "--quic-version", "v2", &url]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("QUIC v2, RTT"), "a v2 first Initial stays v2");
}

/// Incompatible version negotiation end to end (RFC 9368 §2.1): a server
/// offering only v1 answers a v2 Initial with Version Negotiation, and
/// `quicpro get` starts over in v1; a client speaking only v2 fails.
#[test]
fn version_negotiation_from_a_v1_only_server() {
    let (_server, port) = start_server(&["--versions", "v1"]);
    let url = format!("https://127.0.0.1:{port}/vn");
    let out = get(&["-v", "--quic-version", "v2", &url]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("QUIC v1 (Version Negotiation from v2)"), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "echo from worker 0: /vn\n");
    let out = get(&["--quic-version", "v2", "--versions", "v2", &url]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a v2-only client cannot connect: {err}");
    assert!(err.contains("no common QUIC version"), "{err}");
}

/// NEW_TOKEN carries over between the connections of one `quicpro get`
/// (RFC 9000 §8.1.3): against `--retry always`, the first connection is
/// validated by a Retry, the second presents the server's token and is
/// not; a separate `quicpro get` (no token yet) meets a Retry again. Told
/// from the server's qlog: a connection that went through a Retry
/// announces `retry_source_connection_id` in its transport parameters.
#[test]
fn a_new_token_spares_the_reconnection_its_retry() {
    let dir = std::env::temp_dir().join(format!("quicpro-new-token-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (_server, port) = start_server(&["--retry", "always", "--qlog-dir", dir.to_str().unwrap()]);
    let base = format!("https://127.0.0.1:{port}");
    let out = get(&["--reconnect", &format!("{base}/foo"), &format!("{base}/bar")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = get(&[&format!("{base}/baz")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The records reach the files once the server's connections end.
    let retried = |f: &std::path::Path| {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        let local = text.lines().find(|l| l.contains("\"quic:parameters_set\"") && l.contains("\"initiator\":\"local\""))?;
        Some(local.contains("retry_source_connection_id"))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let seen = loop {
        let files: Vec<_> = std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok().map(|e| e.path())).collect();
        let seen: Vec<_> = files.iter().filter_map(|f| retried(f)).collect();
        if seen.len() == 3 || std::time::Instant::now() > deadline {
            break seen;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(seen.len(), 3, "three server connections in the qlog: {seen:?}");
    assert_eq!(seen.iter().filter(|r| **r).count(), 2, "only the reconnection skipped the Retry: {seen:?}");
}

/// Path MTU discovery over loopback sockets (RFC 8899): `quicpro get`
/// reaches the 1472-byte bound after one probe; `--no-pmtud` keeps 1200;
/// a server accepting at most 1350 bytes (max_udp_payload_size) bounds it.
#[test]
fn path_mtu_discovery_on_loopback() {
    let mtu_of = |stderr: &str| -> u32 {
        let at = stderr.find(", MTU ").map(|i| i + 6).unwrap_or_else(|| panic!("no MTU in {stderr}"));
        stderr[at..].split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
    };
    let (_server, port) = start_server(&[]);
    let url = format!("https://127.0.0.1:{port}/bytes/2000000");
    let out = get(&["-v", "-o", "/dev/null", &url]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(mtu_of(&err), 1472, "{err}");
    let out = get(&["-v", "--no-pmtud", "-o", "/dev/null", &url]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(mtu_of(&err), 1200, "{err}");
    let (_small, port) = start_server(&["--max-udp-payload", "1350"]);
    let out = get(&["-v", "-o", "/dev/null", &format!("https://127.0.0.1:{port}/bytes/100000")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(mtu_of(&err), 1350, "{err}");
    // `-o /dev/null` writes to the device; it must not replace it with a
    // regular file (a download used to end with a rename onto the path).
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata("/dev/null").unwrap().file_type().is_char_device(), "/dev/null is still a device");
}

/// Active client migration end to end over loopback sockets (RFC 9000
/// §9.2): after 1 MB of a 6 MB download `quicpro get` rebinds to a new
/// port; the body arrives intact and the connection reports the move.
#[test]
fn active_migration_mid_download() {
    let (_server, port) = start_server(&[]);
    let dir = std::env::temp_dir().join(format!("quicpro-migrate-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let file = dir.join("body");
    let out = get(&["-v", "--migrate-after", "1000000", "-o", file.to_str().unwrap(), &format!("https://127.0.0.1:{port}/bytes/6000000")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("migrated to local address"), "{err}");
    assert!(err.contains("migrations 1"), "{err}");
    assert!(std::fs::read(&file).unwrap() == pattern(6_000_000), "body intact across the migration");
    let _ = std::fs::remove_dir_all(&dir);
}

/// preferred_address end to end (RFC 9000 §9.6): a server bound to
/// 0.0.0.0 announces 127.0.0.2 (its own port); `quicpro get` moves there
/// after the handshake, validates it, and the download completes there.
#[test]
fn the_client_moves_to_the_servers_preferred_address() {
    let (_server, port) = start_server(&["--host", "0.0.0.0", "--preferred-address", "127.0.0.2"]);
    let out = get(&["-v", "-o", "/dev/null", &format!("https://127.0.0.1:{port}/bytes/3000000")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains(&format!("migrations 1, peer 127.0.0.2:{port}")), "{err}");
}

/// QUIC-LB connection IDs end to end (draft-ietf-quic-load-balancers): a
/// server with `--server-id` and `--lb-key` issues encrypted IDs; a load
/// balancer holding the key recovers the server ID from the Source
/// Connection ID the client saw (read from the client's qlog); without the
/// key the ID shows nothing of it. Plaintext IDs carry it in the clear.
#[test]
fn quic_lb_server_ids_in_connection_ids() {
    use quic_core::quic_lb::LbConfig;
    let key_hex = "8f95f09245765f80256934e50c66207f";
    let key: [u8; 16] = (0..16).map(|i| u8::from_str_radix(&key_hex[2 * i..2 * i + 2], 16).unwrap()).collect::<Vec<_>>().try_into().unwrap();
    for (encrypted, rotation) in [(true, "2"), (false, "1")] {
        let dir = std::env::temp_dir().join(format!("quicpro-lb-{}-{encrypted}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut args = vec!["--server-id", "0a0b0c", "--lb-config-rotation", rotation];
        if encrypted {
            args.extend(["--lb-key", key_hex]);
        }
        let (_server, port) = start_server(&args);
        let out = get(&["--qlog-dir", dir.to_str().unwrap(), &format!("https://127.0.0.1:{port}/lb")]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text: String = std::fs::read_dir(&dir).unwrap().flatten().map(|e| std::fs::read_to_string(e.path()).unwrap_or_default()).collect();
        // The server's Source Connection IDs in the packets the client received.
        let scids: Vec<Vec<u8>> = text
            .lines()
            .filter(|l| l.contains("packet_received") && l.contains("\"scid\":\""))
            .filter_map(|l| {
                let at = l.find("\"scid\":\"")? + 8;
                let hex = &l[at..at + l[at..].find('"')?];
                (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok()).collect()
            })
            .collect();
        assert!(!scids.is_empty(), "no server SCID in the client's qlog");
        let config = if encrypted { LbConfig::new(2, 3, 13, Some(&key)).unwrap() } else { LbConfig::new(1, 3, 7, None).unwrap() };
        for scid in &scids {
            assert_eq!(scid.len(), config.cid_len(), "{scid:02x?}");
            assert_eq!(config.decode(scid).map(|s| s.as_slice().to_vec()), Some(vec![0x0a, 0x0b, 0x0c]), "{scid:02x?}");
            assert_eq!(scid[1..4] == [0x0a, 0x0b, 0x0c], !encrypted, "server ID visible only in plaintext IDs: {scid:02x?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// `--cc` and `--no-hystart` choose the controller on both sides; an
/// unknown name is refused before anything starts.
#[test]
fn congestion_controller_options() {
    let (_server, port) = start_server(&["--cc", "newreno", "--no-hystart"]);
    let url = format!("https://127.0.0.1:{port}/bytes/300000");
    let out = get(&["-v", "--cc", "newreno", &url]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(out.stdout, pattern(300_000));
    assert!(err.contains("congestion newreno (HyStart++ slow start)") || err.contains("congestion newreno (HyStart++ done)"), "{err}");
    let out = get(&["-v", "--cc", "cubic", "--no-hystart", &url]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("congestion cubic (HyStart++ off)"), "{err}");
    // BBR on the client (the -v line names its state) against NewReno.
    let out = get(&["-v", "--cc", "bbr", &url]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("congestion bbr (state "), "{err}");
    // And a server sending with BBR.
    let (_bbr_server, bbr_port) = start_server(&["--cc", "bbr"]);
    let out = get(&[&format!("https://127.0.0.1:{bbr_port}/bytes/300000")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, pattern(300_000));
    let out = get(&["--cc", "vegas", &url]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown congestion controller"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `--priority` gives each URL's request its RFC 9218 priority: of two
/// large responses requested together on one connection, the urgent
/// second one completes first (by default the first would).
#[test]
fn request_priorities_order_the_responses() {
    let (_server, port) = start_server(&[]);
    let base = format!("https://127.0.0.1:{port}");
    let dir = std::env::temp_dir().join(format!("quicpro-priority-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let order = |extra: &[&str]| -> Vec<String> {
        let (a, b) = (format!("{base}/bytes/3000000"), format!("{base}/bytes/3000001"));
        let mut args = vec!["-v", "--output-dir", dir.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.extend([a.as_str(), b.as_str()]);
        let out = get(&args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        err.lines().filter_map(|l| l.strip_prefix("* ")?.split(": complete").next().filter(|_| l.contains(": complete")).map(str::to_string)).collect()
    };
    assert_eq!(order(&[]), ["/bytes/3000000", "/bytes/3000001"]);
    assert_eq!(order(&["--priority", "u=5", "--priority", "u=0"]), ["/bytes/3000001", "/bytes/3000000"]);
    let _ = std::fs::remove_dir_all(&dir);
}
