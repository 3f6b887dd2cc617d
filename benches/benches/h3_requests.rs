//! Whole requests through HTTP/3 and QUIC in memory: the load command's
//! request phase without sockets, so that its cost can be counted exactly.
//!
//! A client and a server (`quicpro_sim::H3Pair`: real TLS keys, packet
//! protection, QPACK with the dynamic table, a perfect simulated link) take
//! turns. A round is [`WINDOW`] requests as the load generator sends them
//! (`GET /bytes/1024`, the same four fields) and their answers as `quicpro
//! serve` gives them (`:status` 200, content-type, server, content-length;
//! a 1,024-byte body slice of one shared buffer), read by the client to the
//! end. Both sides are counted: the client runs the same h3-core and
//! quic-core code as the server.
//!
//! Running:
//! - `cargo bench -p quicpro-benches --bench h3_requests`: criterion time per
//!   round, then the allocations per request of both sides together (this
//!   binary's global allocator counts them).
//! - `QUICPRO_BENCH_PROFILE=1 valgrind --tool=callgrind
//!   --toggle-collect='h3_requests::rounds' target/release/deps/h3_requests-*`:
//!   instructions for [`PROFILE_ROUNDS`] rounds, stable on a shared machine
//!   (divide by the requests: the program prints how many).
//!
//! quinn-proto has no HTTP/3 layer and the h3 crate runs only over an async
//! transport, so nothing of theirs runs beside this.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use h3_core::connection::{H3Config, H3Event};
use h3_core::qpack::HeaderField;
use quic_core::config::TransportConfig;
use quicpro_benches::CountingAlloc;
use quicpro_sim::h3_pair::H3Pair;

/// Requests per round: the load generator keeps 100 in flight per
/// connection (the default stream credit).
const WINDOW: usize = 100;
/// Rounds in the callgrind profile.
const PROFILE_ROUNDS: usize = 20;
/// The response body's length.
const BODY: usize = 1024;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn field(n: &'static str, v: &'static str) -> HeaderField {
    HeaderField::new(Bytes::from_static(n.as_bytes()), Bytes::from_static(v.as_bytes()))
}

/// The generator's request and the server's answer.
struct Script {
    request: [HeaderField; 4],
    response: [HeaderField; 3],
    body: Bytes,
}

impl Script {
    fn new() -> Self {
        Self {
            request: [field(":method", "GET"), field(":scheme", "https"), field(":authority", "localhost"), field(":path", "/bytes/1024")],
            response: [field("content-type", "application/octet-stream"), field("server", "quicpro"), field("content-length", "1024")],
            body: Bytes::from(vec![7u8; 64 * 1024]),
        }
    }
}

/// A pair with its HTTP/3 layers set up (SETTINGS exchanged) and a few
/// rounds run, so the QPACK tables hold what a long-running connection's do.
fn warm_pair(script: &Script) -> H3Pair {
    let mut h = H3Pair::new(11, H3Config::default(), H3Config::default(), TransportConfig::default());
    h.run_for(Duration::from_millis(50));
    for _ in 0..3 {
        round(&mut h, script);
    }
    h
}

/// One round: [`WINDOW`] requests sent, answered and read whole. Returns
/// the body bytes the client read.
fn round(h: &mut H3Pair, s: &Script) -> usize {
    let cc = h.p.client_conn;
    let (mut sent, mut answered, mut finished, mut read) = (0, 0, 0, 0);
    h.run(Duration::from_secs(10), |h| {
        // As many as the stream credit allows; the rest as MAX_STREAMS
        // arrives (the previous round's credit may still be on its way).
        while sent < WINDOW {
            let conn = h.p.client.connection(cc).expect("client connection");
            if h.client.send_request(conn, &s.request, true).is_err() {
                break;
            }
            sent += 1;
        }
        let sh = h.p.server_conn.expect("server connection");
        for e in h.server_events.drain(..) {
            if let H3Event::Headers { stream, .. } = e {
                let conn = h.p.server.connection(sh).expect("server connection");
                h.server.send_response(conn, stream, 200, &s.response, false).expect("response headers");
                let sent = h.server.send_data_bytes(conn, stream, s.body.slice(..BODY), true).expect("response body");
                assert_eq!(sent, BODY, "a 1 KB body fits the stream at once");
                answered += 1;
            }
        }
        for e in h.client_events.drain(..) {
            match e {
                H3Event::Data { stream } => {
                    let conn = h.p.client.connection(cc).expect("client connection");
                    while let Some(b) = h.client.recv_body(conn, stream, usize::MAX) {
                        read += b.len();
                    }
                }
                H3Event::Finished { .. } => finished += 1,
                _ => {}
            }
        }
        answered == WINDOW && finished == WINDOW
    });
    assert!(h.client_err.is_none() && h.server_err.is_none(), "{:?} {:?}", h.client_err, h.server_err);
    assert_eq!(read, WINDOW * BODY, "every body arrived whole");
    read
}

/// The profiled span: `n` rounds.
#[inline(never)]
fn rounds(h: &mut H3Pair, s: &Script, n: usize) -> usize {
    (0..n).map(|_| round(h, s)).sum()
}

fn main() {
    let script = Script::new();
    if std::env::var_os("QUICPRO_BENCH_PROFILE").is_some() {
        let mut h = warm_pair(&script);
        let bytes = rounds(&mut h, &script, black_box(PROFILE_ROUNDS));
        println!("{} requests, {} body bytes", PROFILE_ROUNDS * WINDOW, bytes);
        return;
    }
    let listing = std::env::args().any(|a| a == "--list");
    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("h3_requests");
    g.throughput(Throughput::Elements(WINDOW as u64));
    let mut h = warm_pair(&script);
    g.bench_function("quicpro/pair_round_of_100", |b| b.iter(|| round(&mut h, &script)));
    g.finish();
    c.final_summary();
    if listing {
        return;
    }
    let mut h = warm_pair(&script);
    let before = CountingAlloc::count();
    let n = 10;
    rounds(&mut h, &script, n);
    let per = (CountingAlloc::count() - before) as f64 / (n * WINDOW) as f64;
    println!("h3_requests: {per:.2} allocations per request, client and server together");
}
