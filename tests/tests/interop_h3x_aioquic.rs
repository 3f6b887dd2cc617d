//! Extended CONNECT (RFC 9220), HTTP Datagrams (RFC 9297 §2) over QUIC
//! DATAGRAM frames (RFC 9221) and capsules (RFC 9297 §3) against aioquic
//! 1.7.2 (`H3Connection(enable_webtransport=True)`), over UDP on 127.0.0.1,
//! ALPN "h3", in both roles. Our side is the io-backends runtime
//! (`runtime::Server` / `runtime::Client`), so the datagram plumbing of the
//! driver is exercised too.
//!
//! * aioquic client → our server: `tests/interop/aioquic_h3x_peer.py client`
//!   opens `:protocol webtransport`, sends datagrams that our server echoes
//!   and checks each echo byte for byte; then DATAGRAM capsules (plus one of
//!   an unknown type) in DATA, which our server parses with `recv_capsule`
//!   and echoes with `send_capsule`.
//! * our client → aioquic server: `aioquic_h3x_peer.py server` answers the
//!   Extended CONNECT, echoes datagrams and the tunnel's DATA; our client
//!   checks the echoes.
//!
//! Datagrams are unreliable even on loopback: both sides keep a window of
//! unanswered ones and send one again if its echo does not come back in
//! 250 ms; the tests report how many were sent again. Our client's part is
//! `quicpro_tests::h3x_echo::client_exchange`, shared with the quinn test.
//!
//! The Python peer is killed by PID when its guard drops; our server thread
//! stops when its guard drops; every wait has a deadline.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use io_backends::runtime::{Client, ClientOptions};
use quic_core::tls::{ClientTlsOptions, ServerTlsOptions};
use quicpro_tests::h3x_echo::{client_exchange, h3x, OurServer};
use quicpro_tests::pypeer::{flag, num, parse_kv, require_python_module, PyPeer};

/// Datagrams each way, and capsules each way.
const DATAGRAMS: u32 = 500;
const CAPSULES: usize = 30;
const DEADLINE: u64 = 60;

fn peer_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop").join("aioquic_h3x_peer.py")
}

fn spawn_peer(args: &[String]) -> PyPeer {
    require_python_module("import aioquic.h3.connection, aioquic; print(aioquic.__version__)", "aioquic extended CONNECT interop tests");
    PyPeer::spawn(&peer_script(), args)
}

fn deadline(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

/// A self-signed "localhost" certificate as PEM files (for Python) in a
/// fresh temporary folder removed on drop, and as DER (for us).
use quicpro_tests::certs::PemDir as Certs;

#[test]
fn aioquic_client_extended_connect_datagrams_and_capsules() {
    let start = Instant::now();
    let certs = Certs::new("c");
    let server = OurServer::start(ServerTlsOptions::new(vec![certs.cert.clone()], certs.key.clone_key(), &[b"h3"]), Duration::from_secs(DEADLINE + 20));
    let args: Vec<String> = [
        "client",
        "--port",
        &server.addr.port().to_string(),
        "--cafile",
        certs.cert_pem.to_str().unwrap(),
        "--count",
        &DATAGRAMS.to_string(),
        "--capsules",
        &CAPSULES.to_string(),
        "--protocol",
        "webtransport",
        "--deadline",
        &DEADLINE.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut peer = spawn_peer(&args);
    let status =
        peer.wait_exit(deadline(DEADLINE + 10)).unwrap_or_else(|e| panic!("aioquic client: {e}\nour server: {:#?}\n{}", server.report(), peer.diagnostics()));
    let res = peer.result_with("role").unwrap_or_else(|| panic!("no RESULT line\n{}", peer.diagnostics()));
    assert!(status.success() && flag(&res, "ok"), "aioquic client failed: {status}\nour server: {:#?}\n{}", server.report(), peer.diagnostics());
    // What aioquic saw: our SETTINGS, our 200, every datagram echoed intact
    // (it compares bytes), the capsules back in order.
    assert_eq!(num(&res, "peer_connect_protocol"), 1);
    assert_eq!(num(&res, "peer_h3_datagram"), 1);
    assert_eq!(res.get("status").map(String::as_str), Some("200"));
    assert_eq!(num(&res, "datagrams_echoed"), u64::from(DATAGRAMS));
    assert_eq!(num(&res, "capsules_back"), CAPSULES as u64);
    // What our server saw.
    let r = server.wait(Duration::from_secs(10), |r| r.closed.is_some());
    assert_eq!(r.protocol.as_deref(), Some("webtransport"));
    assert_eq!(r.scheme.as_deref(), Some("https"));
    assert_eq!(r.path.as_deref(), Some("/h3x"));
    assert!(r.datagrams >= u64::from(DATAGRAMS), "{r:#?}");
    assert_eq!(r.capsules, CAPSULES as u64, "the unknown capsule was skipped: {r:#?}");
    assert!(r.tunnel_finished, "{r:#?}");
    assert!(r.errors.is_empty(), "{r:#?}");
    println!(
        "[h3x aioquic interop] aioquic client -> our server: {DATAGRAMS} datagrams echoed ({} resent by aioquic), {CAPSULES} capsules, in {:.2} s",
        num(&res, "resends"),
        start.elapsed().as_secs_f64()
    );
}

// ------------------------------------------------------------ our client → aioquic server

fn start_aioquic_server(certs: &Certs) -> (PyPeer, SocketAddr) {
    let args: Vec<String> =
        ["server", "--port", "0", "--cert", certs.cert_pem.to_str().unwrap(), "--key", certs.key_pem.to_str().unwrap(), "--deadline", &DEADLINE.to_string()]
            .iter()
            .map(|s| s.to_string())
            .collect();
    let mut peer = spawn_peer(&args);
    let line = peer.wait_line("LISTENING", deadline(20)).unwrap_or_else(|e| panic!("aioquic server: {e}\n{}", peer.diagnostics()));
    let port: u16 = parse_kv(&line)["port"].parse().unwrap();
    (peer, SocketAddr::from(([127, 0, 0, 1], port)))
}

#[test]
fn our_client_extended_connect_datagrams_to_aioquic_server() {
    let start = Instant::now();
    let certs = Certs::new("s");
    let (mut peer, addr) = start_aioquic_server(&certs);
    let mut tls = ClientTlsOptions::new(&[b"h3"]);
    tls.extra_roots.push(certs.cert.clone());
    let mut opts = ClientOptions::new(tls);
    opts.h3 = h3x();
    let mut client = Client::connect(&opts, addr, "localhost", Bytes::new()).unwrap();
    client.wait_connected(Duration::from_secs(10)).unwrap_or_else(|e| panic!("connect: {e}\n{}", peer.diagnostics()));
    let x = client_exchange(&mut client, addr, DATAGRAMS, CAPSULES, &|| peer.diagnostics());
    client.close();
    let status = peer.wait_exit(deadline(15)).unwrap_or_else(|e| panic!("aioquic server: {e}\n{}", peer.diagnostics()));
    let res = peer.result_with("role").unwrap_or_else(|| panic!("no RESULT\n{}", peer.diagnostics()));
    assert!(status.success() && flag(&res, "ok"), "aioquic server: {status}\n{}", peer.diagnostics());
    assert_eq!(res.get("protocol").map(String::as_str), Some("webtransport"));
    assert_eq!(res.get("method").map(String::as_str), Some("CONNECT"));
    assert!(num(&res, "datagrams") >= u64::from(DATAGRAMS));
    assert_eq!(num(&res, "stray"), 0);
    assert_eq!(num(&res, "close_code"), 0x100);
    println!(
        "[h3x aioquic interop] our client -> aioquic server: {DATAGRAMS} datagrams echoed in {:.2} s ({} resent), {CAPSULES} capsules; total {:.2} s",
        x.datagram_time.as_secs_f64(),
        x.resends,
        start.elapsed().as_secs_f64()
    );
}
