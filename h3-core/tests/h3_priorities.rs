//! Extensible Priorities (RFC 9218) end to end over an in-memory pair: the
//! `priority` header and PRIORITY_UPDATE reorder the server's responses.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use h3_core::connection::{H3Config, H3Event};
use h3_core::priority::Priority;
use h3_core::qpack::HeaderField;
use quic_core::config::TransportConfig;
use quic_core::stream::StreamId;
use quicpro_sim::h3_pair::H3Pair;

const BODY: usize = 600_000;

fn hf(n: &str, v: &str) -> HeaderField {
    HeaderField::new(n.as_bytes().to_vec(), v.as_bytes().to_vec())
}

fn get(path: &str, priority: Option<&str>) -> Vec<HeaderField> {
    let mut h = vec![hf(":method", "GET"), hf(":scheme", "https"), hf(":authority", "localhost"), hf(":path", path)];
    if let Some(p) = priority {
        h.push(hf("priority", p));
    }
    h
}

fn pair(seed: u64) -> H3Pair {
    // Windows large enough that flow control never decides the order.
    let t = TransportConfig { receive_window: 8 << 20, stream_receive_window: 4 << 20, ..TransportConfig::default() };
    let mut h = H3Pair::new(seed, H3Config::default(), H3Config::default(), t);
    h.pump();
    h
}

/// Answers every request with `BODY` bytes, all queued at once; a request
/// for `/urgent-response` gets a `priority: u=0` response field.
fn serve(h: &mut H3Pair) {
    let events: Vec<_> = h.server_events.drain(..).collect();
    let sh = h.p.server_conn.unwrap();
    for e in events {
        if let H3Event::Headers { stream, headers, .. } = e {
            let conn = h.p.server.connection(sh).unwrap();
            let mut fields = vec![hf("content-length", &BODY.to_string())];
            if headers.iter().any(|f| &f.name[..] == b":path" && &f.value[..] == b"/urgent-response") {
                fields.push(hf("priority", "u=0"));
            }
            h.server.send_response(conn, stream, 200, &fields, false).unwrap();
            let sent = h.server.send_data_bytes(conn, stream, Bytes::from(vec![7u8; BODY]), true).unwrap();
            assert_eq!(sent, BODY);
        }
    }
}

/// Reads the client's responses; returns the streams in the order their
/// responses completed.
fn collect(h: &mut H3Pair, got: &mut HashMap<StreamId, usize>, done: &mut Vec<StreamId>) {
    let events: Vec<_> = h.client_events.drain(..).collect();
    for e in events {
        match e {
            H3Event::Data { stream } => {
                let conn = h.p.client.connection(h.p.client_conn).unwrap();
                while let Some(b) = h.client.recv_body(conn, stream, usize::MAX) {
                    *got.entry(stream).or_default() += b.len();
                }
                while let Some(e) = h.client.poll_event() {
                    h.client_events.push(e);
                }
            }
            H3Event::Finished { stream } => done.push(stream),
            _ => {}
        }
    }
}

/// Sends `first`'s request and runs until 50 KB of its response arrived;
/// returns its stream and the progress records.
fn head_start(h: &mut H3Pair, headers: &[HeaderField]) -> (StreamId, HashMap<StreamId, usize>, Vec<StreamId>) {
    let conn = h.p.client.connection(h.p.client_conn).unwrap();
    let first = h.client.send_request(conn, headers, true).unwrap();
    let (mut got, mut done) = (HashMap::new(), Vec::new());
    h.run(Duration::from_secs(30), |h| {
        serve(h);
        collect(h, &mut got, &mut done);
        got.get(&first).is_some_and(|n| *n >= 50_000)
    });
    (first, got, done)
}

/// Runs until both responses are complete.
fn finish_both(h: &mut H3Pair, got: &mut HashMap<StreamId, usize>, done: &mut Vec<StreamId>) {
    h.run(Duration::from_secs(60), |h| {
        serve(h);
        collect(h, got, done);
        done.len() == 2
    });
}

/// A large request at low urgency starts first; once part of it has
/// arrived, a request of the same size at high urgency starts: it must
/// finish first (round robin, or first come first served, would finish
/// the earlier one first).
#[test]
fn a_later_urgent_request_finishes_first() {
    let mut h = pair(41);
    let (slow, mut got, mut done) = head_start(&mut h, &get("/slow", Some("u=6")));
    let conn = h.p.client.connection(h.p.client_conn).unwrap();
    let urgent = h.client.send_request(conn, &get("/urgent", Some("u=0")), true).unwrap();
    finish_both(&mut h, &mut got, &mut done);
    assert_eq!(done, [urgent, slow], "received so far: {got:?}");
}

/// The same with the default priority and a PRIORITY_UPDATE (RFC 9218 §7)
/// that lowers the first request's urgency while it is under way.
#[test]
fn priority_update_reorders_a_response_under_way() {
    let mut h = pair(42);
    let (first, mut got, mut done) = head_start(&mut h, &get("/first", None));
    let conn = h.p.client.connection(h.p.client_conn).unwrap();
    assert!(h.client.send_priority_update(conn, first, Priority::new(7, false)));
    let second = h.client.send_request(conn, &get("/second", None), true).unwrap();
    finish_both(&mut h, &mut got, &mut done);
    assert_eq!(done, [second, first], "received so far: {got:?}");
    assert!(h.server_err.is_none() && h.client_err.is_none());
}

/// Without priorities, default urgency and non-incremental: responses go
/// one after another in stream order (RFC 9218 §10), the first finishing
/// first.
#[test]
fn default_priorities_serve_in_stream_order() {
    let mut h = pair(43);
    let conn = h.p.client.connection(h.p.client_conn).unwrap();
    let a = h.client.send_request(conn, &get("/a", None), true).unwrap();
    let b = h.client.send_request(conn, &get("/b", None), true).unwrap();
    let (mut got, mut done) = (HashMap::new(), Vec::new());
    let mut overlap = false;
    h.run(Duration::from_secs(60), |h| {
        serve(h);
        collect(h, &mut got, &mut done);
        // Sequential: b gets nothing while a is incomplete.
        overlap |= got.get(&b).is_some_and(|n| *n > 0) && got.get(&a).is_some_and(|n| *n < BODY);
        done.len() == 2
    });
    assert_eq!(done, [a, b]);
    assert!(!overlap, "the second response interleaved with the first");
}

/// The server decides (RFC 9218 §8): a `priority` field in its response
/// sends that response at that priority, though the request asked none.
#[test]
fn the_server_response_priority_decides() {
    let mut h = pair(44);
    let (first, mut got, mut done) = head_start(&mut h, &get("/first", None));
    let conn = h.p.client.connection(h.p.client_conn).unwrap();
    let second = h.client.send_request(conn, &get("/urgent-response", None), true).unwrap();
    finish_both(&mut h, &mut got, &mut done);
    assert_eq!(done, [second, first], "received so far: {got:?}");
}
