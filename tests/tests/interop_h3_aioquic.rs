//! HTTP/3 interop with aioquic's `H3Connection` (Python) over UDP on
//! 127.0.0.1, ALPN "h3", in both roles:
//!
//! * aioquic client → our server: h3-core + quic-core under `UdpDriver` in a
//!   thread (`quicpro_tests::h3_app::OurH3Server`);
//!   `tests/interop/aioquic_h3_peer.py client --case CASE` makes the requests
//!   and checks the answers itself (its RESULT line says ok=1 or what failed).
//! * our client → aioquic server: `aioquic_h3_peer.py server` prints
//!   `LISTENING port=N`; our client (`OurH3Client`) runs in the test thread.
//!
//! Cases in each role: 1,000 sequential GETs on one connection, 200
//! concurrent requests, a 100 MiB response body, a 100 MiB request body
//! answered with its sha256, trailers on a response and on a request, and
//! GOAWAY from the server with requests in flight.
//!
//! The Python peer is killed by PID when its guard drops; every wait has a
//! deadline. Without aioquic the tests fail (never pass silently): `make
//! test` installs it through scripts/setup.sh.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use quicpro_tests::h3_app::*;
use quicpro_tests::pypeer::{flag, parse_kv, require_python_module, PyPeer};

/// Bodies of the large-transfer cases.
const BIG: u64 = 100 << 20;
/// Bound on a 100 MiB transfer: aioquic moves 2-6 MiB/s here (its Python
/// side is the bottleneck, more so on a loaded machine), so 100 MiB takes
/// 17-60 s; the bound leaves room without letting a hung peer hang CI.
const BIG_DEADLINE: u64 = 150;
/// Requests in the GOAWAY case, and the size of each response.
const GOAWAY_REQUESTS: usize = 10;
const GOAWAY_BODY: u64 = 1 << 20;

// ------------------------------------------------------------ environment

fn peer_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop").join("aioquic_h3_peer.py")
}

/// A self-signed certificate for "localhost": PEM files (for Python) in a
/// fresh temporary folder removed on drop, and DER (for us).
use quicpro_tests::certs::PemDir as Certs;

// ------------------------------------------------------------ python peer

/// Starts the peer script (failing the test if aioquic is missing).
fn spawn_peer(args: &[String]) -> PyPeer {
    require_python_module("import aioquic.h3.connection, aioquic; print(aioquic.__version__)", "aioquic HTTP/3 interop tests");
    PyPeer::spawn(&peer_script(), args)
}

fn deadline(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

fn report_case(name: &str, start: Instant) {
    println!("[h3 aioquic interop] {name}: passed in {:.2} s", start.elapsed().as_secs_f64());
}

// ------------------------------------------------------------ aioquic client → our server

fn start_our_server(certs: &Certs, opts: ServerOptions) -> OurH3Server {
    OurH3Server::start(server_tls(vec![certs.cert.clone()], certs.key.clone_key()), transport(), opts, Duration::from_secs(200))
}

/// Runs `aioquic_h3_peer.py client --case CASE` against our server; fails
/// the test unless it exits 0 with `ok=1`. Returns its final RESULT line.
fn run_aioquic_client(server: &OurH3Server, certs: &Certs, case: &str, extra: &[&str], secs: u64) -> HashMap<String, String> {
    let mut args: Vec<String> =
        ["client", "--port", &server.addr.port().to_string(), "--cafile", certs.cert_pem.to_str().unwrap()].iter().map(|s| s.to_string()).collect();
    for a in ["--case", case, "--deadline", &secs.to_string()].iter().chain(extra) {
        args.push(a.to_string());
    }
    let mut peer = spawn_peer(&args);
    let status = match peer.wait_exit(deadline(secs + 10)) {
        Ok(s) => s,
        Err(e) => panic!("aioquic client ({case}): {e}\nour server: {:#?}\n{}", server.reports(), peer.diagnostics()),
    };
    let res = peer.result_with("case");
    assert!(
        status.success() && res.as_ref().is_some_and(|r| flag(r, "ok")),
        "aioquic client ({case}) failed: {status}\nour server: {:#?}\n{}",
        server.reports(),
        peer.diagnostics()
    );
    eprintln!("{}", peer.diagnostics().lines().filter(|l| l.starts_with("RESULT") || l.starts_with("client:")).collect::<Vec<_>>().join("\n"));
    res.unwrap()
}

/// Our server's report once the connection closed cleanly.
fn closed_report(server: &OurH3Server) -> ServerReport {
    let r = server.wait_report(0, Duration::from_secs(10), |r| r.closed.is_some()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(server.reports().len(), 1, "one connection");
    assert!(r.handshake_done && r.alpn.as_deref() == Some("h3"), "{r:#?}");
    assert!(r.errors.is_empty(), "our server saw errors: {r:#?}");
    r
}

#[test]
fn aioquic_client_1000_sequential_gets() {
    let start = Instant::now();
    let certs = Certs::new("c-seq");
    let server = start_our_server(&certs, ServerOptions::default());
    let r = run_aioquic_client(&server, &certs, "sequential", &["--count", "1000"], 100);
    assert_eq!(r.get("alpn").map(String::as_str), Some("h3"));
    let rep = closed_report(&server);
    assert_eq!((rep.requests, rep.responses), (1000, 1000), "{rep:#?}");
    report_case("aioquic client -> our server: 1000 sequential GETs on one connection", start);
}

#[test]
fn aioquic_client_200_concurrent_requests() {
    let start = Instant::now();
    let certs = Certs::new("c-conc");
    let server = start_our_server(&certs, ServerOptions::default());
    run_aioquic_client(&server, &certs, "concurrent", &["--count", "200"], 100);
    let rep = closed_report(&server);
    assert_eq!((rep.requests, rep.responses), (200, 200), "{rep:#?}");
    report_case("aioquic client -> our server: 200 concurrent requests", start);
}

/// RFC 9218 with a peer nobody here wrote: aioquic sends the `priority`
/// header, and a PRIORITY_UPDATE frame (written by our peer script on
/// aioquic's control stream), and our server reorders its responses: a
/// second, urgent request completes before the first, which was lowered.
#[test]
fn aioquic_client_priorities_reorder_our_responses() {
    let start = Instant::now();
    let certs = Certs::new("c-prio");
    let server = start_our_server(&certs, ServerOptions::default());
    let r = run_aioquic_client(&server, &certs, "priorities", &["--size", "3000000"], 100);
    assert_eq!(r.get("completed_first").map(String::as_str), Some("second"), "{r:?}");
    let rep = closed_report(&server);
    assert_eq!((rep.requests, rep.responses), (2, 2), "{rep:#?}");
    report_case("aioquic client -> our server: priority header and PRIORITY_UPDATE", start);
}

#[test]
fn aioquic_client_downloads_100mib() {
    let start = Instant::now();
    let certs = Certs::new("c-down");
    let server = start_our_server(&certs, ServerOptions::default());
    let size = BIG.to_string();
    let r = run_aioquic_client(&server, &certs, "download", &["--size", &size], BIG_DEADLINE);
    assert_eq!(r["sha256"], pattern_sha256(BIG), "aioquic's sha256 of the body");
    let rep = closed_report(&server);
    assert_eq!(rep.body_bytes_sent, BIG);
    println!(
        "[h3 aioquic interop] our server -> aioquic client: {BIG} bytes in {} s = {} MiB/s (aioquic's clock); our server sent {} packets, {} declared lost",
        r["secs"], r["mib_s"], rep.packets_sent, rep.packets_lost
    );
    report_case("aioquic client -> our server: 100 MiB response body", start);
}

#[test]
fn aioquic_client_uploads_100mib() {
    let start = Instant::now();
    let certs = Certs::new("c-up");
    let server = start_our_server(&certs, ServerOptions::default());
    let size = BIG.to_string();
    let r = run_aioquic_client(&server, &certs, "upload", &["--size", &size], BIG_DEADLINE);
    assert_eq!(r["answer"], pattern_sha256(BIG));
    let rep = closed_report(&server);
    assert_eq!(rep.sha256_answers, vec![(BIG, pattern_sha256(BIG))]);
    println!(
        "[h3 aioquic interop] aioquic client -> our server: {BIG} bytes in {} s = {} MiB/s (aioquic's clock); our server sent {} packets",
        r["secs"], r["mib_s"], rep.packets_sent
    );
    report_case("aioquic client -> our server: 100 MiB request body, sha256 answered", start);
}

#[test]
fn aioquic_client_trailers_both_ways() {
    let start = Instant::now();
    let certs = Certs::new("c-trl");
    let server = start_our_server(&certs, ServerOptions::default());
    let r = run_aioquic_client(&server, &certs, "trailers", &[], 60);
    // aioquic checked the response trailers; it reports what it saw.
    assert!(r["response_trailers"].contains("x-trailer-test:done"), "{r:?}");
    let rep = closed_report(&server);
    assert_eq!(rep.request_trailers.len(), 1, "{rep:#?}");
    let t = &rep.request_trailers[0];
    assert!(t.contains(&("x-request-trailer".to_string(), "yes".to_string())), "{t:?}");
    assert!(t.contains(&("x-upload-sha256".to_string(), pattern_sha256(10000))), "{t:?}");
    assert_eq!(rep.sha256_answers, vec![(10000, pattern_sha256(10000))]);
    report_case("aioquic client -> our server: response trailers and request trailers", start);
}

#[test]
fn aioquic_client_sees_goaway_and_in_flight_requests_complete() {
    let start = Instant::now();
    let certs = Certs::new("c-goaway");
    let server = start_our_server(&certs, ServerOptions { goaway_after_requests: Some(GOAWAY_REQUESTS) });
    let (count, size) = (GOAWAY_REQUESTS.to_string(), GOAWAY_BODY.to_string());
    let r = run_aioquic_client(&server, &certs, "goaway", &["--count", &count, "--size", &size], 60);
    let rep = closed_report(&server);
    let (id, at) = rep.goaway_sent.expect("our server sent GOAWAY");
    assert_eq!(at, GOAWAY_REQUESTS);
    // Client streams 0, 4, .. 36: the GOAWAY ID is the next one.
    assert_eq!(id, 4 * GOAWAY_REQUESTS as u64);
    assert_eq!(r["goaway_id"], id.to_string(), "aioquic parsed our GOAWAY");
    let done_at_goaway: usize = r["goaway_at_done"].parse().unwrap();
    assert!(done_at_goaway < GOAWAY_REQUESTS, "requests were in flight when GOAWAY arrived: {r:?}");
    assert_eq!(rep.responses, GOAWAY_REQUESTS, "{rep:#?}");
    println!(
        "[h3 aioquic interop] GOAWAY({id}) sent after {} response body bytes were queued; it reached aioquic with {done_at_goaway}/{GOAWAY_REQUESTS} responses complete; all completed",
        rep.body_bytes_sent_at_goaway
    );
    report_case("aioquic client -> our server: GOAWAY with requests in flight", start);
}

// ------------------------------------------------------------ our client → aioquic server

/// Starts `aioquic_h3_peer.py server` and returns it with its address.
fn start_aioquic_server(certs: &Certs, extra: &[&str], secs: u64) -> (PyPeer, SocketAddr) {
    let mut args: Vec<String> =
        ["server", "--port", "0", "--cert", certs.cert_pem.to_str().unwrap(), "--key", certs.key_pem.to_str().unwrap()].iter().map(|s| s.to_string()).collect();
    args.push("--deadline".into());
    args.push(secs.to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut peer = spawn_peer(&args);
    let line = match peer.wait_line("LISTENING ", deadline(20)) {
        Ok(l) => l,
        Err(e) => panic!("aioquic server: {e}\n{}", peer.diagnostics()),
    };
    let port: u16 = parse_kv(line.strip_prefix("LISTENING ").unwrap())["port"].parse().unwrap();
    (peer, SocketAddr::from(([127, 0, 0, 1], port)))
}

fn connect(certs: &Certs, addr: SocketAddr) -> OurH3Client {
    OurH3Client::connect(addr, client_tls(certs.cert.clone()), transport())
}

/// Closes our client and waits for the aioquic server's clean exit; returns
/// its connection RESULT line.
fn finish(mut client: OurH3Client, mut peer: PyPeer) -> HashMap<String, String> {
    client.close();
    let status = match peer.wait_exit(deadline(15)) {
        Ok(s) => s,
        Err(e) => panic!("aioquic server: {e}\n{}", peer.diagnostics()),
    };
    let conn = peer.result_with("conn");
    assert!(status.success(), "aioquic server exited with {status}\n{}", peer.diagnostics());
    let conn = conn.unwrap_or_else(|| panic!("no connection RESULT\n{}", peer.diagnostics()));
    assert!(flag(&conn, "ok"), "aioquic server saw a problem: {conn:?}\n{}", peer.diagnostics());
    assert_eq!(conn.get("alpn").map(String::as_str), Some("h3"));
    conn
}

fn run(client: &mut OurH3Client, peer: &PyPeer, secs: u64, cond: impl FnMut(&mut H3ClientApp) -> bool) {
    if let Err(e) = client.run_until(Duration::from_secs(secs), cond) {
        panic!("our client: {e}\n{}", peer.diagnostics());
    }
}

fn check_ok(r: &ResponseRecord, what: &str) {
    assert!(r.done && r.error.is_none() && r.reset.is_none(), "{what}: {r:#?}");
    assert_eq!(r.status, Some(200), "{what}: {r:#?}");
}

#[test]
fn our_client_1000_sequential_gets() {
    let start = Instant::now();
    let certs = Certs::new("s-seq");
    let (peer, addr) = start_aioquic_server(&certs, &[], 100);
    let mut client = connect(&certs, addr);
    let size = |i: usize| 1 + (i * 37) % 2000;
    let mut next = 0usize;
    run(&mut client, &peer, 90, |app| {
        if next == 0 || app.responses[next - 1].settled() {
            if next == 1000 {
                return true;
            }
            app.request(RequestSpec::get(&format!("/bytes/{}", size(next))));
            next += 1;
        }
        false
    });
    for (i, r) in client.app.responses.iter().enumerate() {
        check_ok(r, &format!("GET {i}"));
        assert_eq!(r.body.head, pattern_vec(size(i)), "body of GET {i}");
    }
    let streams: Vec<_> = client.app.responses.iter().filter_map(|r| r.stream).collect();
    assert!(streams.windows(2).all(|w| w[1] == w[0] + 4), "one connection, consecutive request streams");
    let t = start.elapsed();
    let conn = finish(client, peer);
    assert_eq!(conn["requests"], "1000");
    println!("[h3 aioquic interop] 1000 sequential GETs: {:.0} requests/s", 1000.0 / t.as_secs_f64());
    report_case("our client -> aioquic server: 1000 sequential GETs on one connection", start);
}

#[test]
fn our_client_200_concurrent_requests() {
    let start = Instant::now();
    let certs = Certs::new("s-conc");
    let (peer, addr) = start_aioquic_server(&certs, &[], 100);
    let mut client = connect(&certs, addr);
    let size = |i: usize| 1000 + i * 13;
    for i in 0..200 {
        client.app.request(RequestSpec::get(&format!("/bytes/{}", size(i))));
    }
    run(&mut client, &peer, 90, |app| app.all_settled());
    for (i, r) in client.app.responses.iter().enumerate() {
        check_ok(r, &format!("GET {i}"));
        assert_eq!(r.body.head, pattern_vec(size(i)), "body of GET {i}");
    }
    // aioquic allows 128 concurrent streams: the rest waited for MAX_STREAMS.
    let conn = finish(client, peer);
    assert_eq!(conn["requests"], "200");
    report_case("our client -> aioquic server: 200 concurrent requests", start);
}

#[test]
fn our_client_downloads_100mib() {
    let start = Instant::now();
    let certs = Certs::new("s-down");
    let (peer, addr) = start_aioquic_server(&certs, &[], BIG_DEADLINE + 10);
    let mut client = connect(&certs, addr);
    client.app.request(RequestSpec::get(&format!("/bytes/{BIG}")));
    run(&mut client, &peer, BIG_DEADLINE, |app| app.all_settled());
    let r = &client.app.responses[0];
    check_ok(r, "GET 100 MiB");
    assert_eq!(r.body.len, BIG);
    assert!(r.body.is_pattern, "body is the pattern");
    assert_eq!(r.body.sha256_hex(), pattern_sha256(BIG));
    let secs = r.finished.unwrap() - r.started.unwrap();
    let st = client.stats().unwrap();
    println!(
        "[h3 aioquic interop] aioquic server -> our client: {BIG} bytes in {:.2} s = {:.1} MiB/s; our client received {} packets",
        secs.as_secs_f64(),
        mib_per_s(BIG, secs),
        st.packets_received
    );
    finish(client, peer);
    report_case("our client -> aioquic server: 100 MiB response body", start);
}

#[test]
fn our_client_uploads_100mib() {
    let start = Instant::now();
    let certs = Certs::new("s-up");
    let (peer, addr) = start_aioquic_server(&certs, &[], BIG_DEADLINE + 10);
    let mut client = connect(&certs, addr);
    client.app.request(RequestSpec::post_sha256(BIG));
    run(&mut client, &peer, BIG_DEADLINE, |app| app.all_settled());
    let r = &client.app.responses[0];
    check_ok(r, "POST 100 MiB");
    assert_eq!(r.uploaded, BIG);
    assert_eq!(r.body_text(), pattern_sha256(BIG), "aioquic's sha256 of our body");
    let secs = r.finished.unwrap() - r.started.unwrap();
    let st = client.stats().unwrap();
    let conn = finish(client, peer);
    println!(
        "[h3 aioquic interop] our client -> aioquic server: {BIG} bytes in {:.2} s = {:.1} MiB/s (aioquic measured {} MiB/s); our client sent {} packets, {} declared lost",
        secs.as_secs_f64(),
        mib_per_s(BIG, secs),
        conn["upload_mib_s"],
        st.packets_sent,
        st.packets_lost
    );
    report_case("our client -> aioquic server: 100 MiB request body, sha256 answered", start);
}

#[test]
fn our_client_trailers_both_ways() {
    let start = Instant::now();
    let certs = Certs::new("s-trl");
    let (peer, addr) = start_aioquic_server(&certs, &[], 60);
    let mut client = connect(&certs, addr);
    client.app.request(RequestSpec::get("/trailers"));
    client.app.request(RequestSpec::post_sha256(10000).with_trailers(&[("x-request-trailer", "yes"), ("x-upload-sha256", &pattern_sha256(10000))]));
    run(&mut client, &peer, 50, |app| app.all_settled());
    let r = &client.app.responses[0];
    check_ok(r, "GET /trailers");
    assert_eq!(r.body.head, TRAILERS_BODY);
    let t = r.trailers.clone().expect("response trailers");
    assert_eq!(t, trailers_route_trailers());
    let p = &client.app.responses[1];
    check_ok(p, "POST with trailers");
    assert_eq!(p.body_text(), pattern_sha256(10000));
    let conn = finish(client, peer);
    let seen = &conn["request_trailers"];
    assert!(seen.contains("x-request-trailer:yes") && seen.contains(&format!("x-upload-sha256:{}", pattern_sha256(10000))), "aioquic saw {seen}");
    report_case("our client -> aioquic server: response trailers and request trailers", start);
}

#[test]
fn our_client_sees_goaway_and_in_flight_requests_complete() {
    let start = Instant::now();
    let certs = Certs::new("s-goaway");
    let n = GOAWAY_REQUESTS.to_string();
    let (peer, addr) = start_aioquic_server(&certs, &["--goaway-after", &n], 60);
    let mut client = connect(&certs, addr);
    for _ in 0..GOAWAY_REQUESTS {
        client.app.request(RequestSpec::get(&format!("/bytes/{GOAWAY_BODY}")));
    }
    run(&mut client, &peer, 50, |app| app.all_settled() && app.goaway.is_some());
    let (id, done_then) = client.app.goaway.expect("GOAWAY seen");
    assert_eq!(id, 4 * GOAWAY_REQUESTS as u64, "GOAWAY names the stream after the last request");
    assert!(done_then < GOAWAY_REQUESTS, "requests were in flight when GOAWAY arrived ({done_then} done)");
    for (i, r) in client.app.responses.iter().enumerate() {
        check_ok(r, &format!("GET {i}"));
        assert_eq!(r.body.len, GOAWAY_BODY);
        assert!(r.body.is_pattern);
    }
    // RFC 9114 §5.2: no new request after GOAWAY.
    let late = client.app.request(RequestSpec::get("/bytes/10"));
    run(&mut client, &peer, 5, |app| app.responses[late].settled());
    assert!(client.app.responses[late].refused, "{:#?}", client.app.responses[late]);
    let conn = finish(client, peer);
    assert_eq!(conn["goaway_sent"], id.to_string());
    println!("[h3 aioquic interop] GOAWAY({id}) reached our client with {done_then}/{GOAWAY_REQUESTS} responses complete; all completed");
    report_case("our client -> aioquic server: GOAWAY with requests in flight", start);
}
