//! HTTP/3 over two in-memory QUIC endpoints: requests, bodies, trailers,
//! QPACK dynamic table use, GOAWAY, and the error cases of RFC 9114 §8.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use h3_core::connection::{H3Config, H3Connection, H3Event};
use h3_core::error::H3ErrorCode;
use h3_core::qpack::HeaderField;
use quic_core::config::TransportConfig;
use quic_core::connection::{ConnectionError, Side};
use quic_core::stream::{Dir, StreamId};
use quicpro_sim::h3_pair::H3Pair;
use quicpro_sim::pair::*;

fn hf(n: &str, v: &str) -> HeaderField {
    HeaderField::new(n.as_bytes().to_vec(), v.as_bytes().to_vec())
}

fn get(path: &str) -> Vec<HeaderField> {
    vec![
        hf(":method", "GET"),
        hf(":scheme", "https"),
        hf(":authority", "localhost"),
        hf(":path", path),
        hf("user-agent", "quicpro-test/1.0"),
        hf("accept", "*/*"),
    ]
}

/// Handshake done and both HTTP/3 layers run once (SETTINGS queued).
fn h3_pair(seed: u64) -> H3Pair {
    let t = TransportConfig { max_concurrent_bidi_streams: 300, ..TransportConfig::default() };
    let mut h = H3Pair::new(seed, H3Config::default(), H3Config::default(), t);
    h.pump();
    h
}

/// A server that answers GET /<n> with n bytes and echoes POST bodies' length.
fn serve(h: &mut H3Pair, bodies: &mut HashMap<StreamId, Vec<u8>>) {
    let events: Vec<_> = h.server_events.drain(..).collect();
    let sh = h.p.server_conn.unwrap();
    for e in events {
        match e {
            H3Event::Headers { stream, headers, fin } => {
                let path = headers.iter().find(|f| &f.name[..] == b":path").map(|f| String::from_utf8_lossy(&f.value).to_string()).unwrap();
                if fin {
                    let conn = h.p.server.connection(sh).unwrap();
                    respond(&mut h.server, conn, stream, &path, 0);
                } else {
                    bodies.insert(stream, Vec::new());
                }
            }
            H3Event::Data { stream } => {
                let conn = h.p.server.connection(sh).unwrap();
                while let Some(b) = h.server.recv_body(conn, stream, usize::MAX) {
                    bodies.entry(stream).or_default().extend_from_slice(&b);
                }
                while let Some(e) = h.server.poll_event() {
                    h.server_events.push(e);
                }
            }
            H3Event::Finished { stream } => {
                // Requests with a body are answered once it is complete.
                if let Some(b) = bodies.remove(&stream) {
                    let conn = h.p.server.connection(sh).unwrap();
                    respond(&mut h.server, conn, stream, "/echo", b.len());
                }
            }
            H3Event::Trailers { .. }
            | H3Event::Reset { .. }
            | H3Event::Transport(_)
            | H3Event::GoAway { .. }
            | H3Event::Datagram { .. }
            | H3Event::Writable { .. }
            | H3Event::Acknowledged { .. } => {}
        }
    }
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn respond(h3: &mut H3Connection, conn: &mut quic_core::connection::Connection, stream: StreamId, path: &str, body_len: usize) {
    if path == "/echo" {
        let body = format!("received {body_len} bytes");
        h3.send_response(conn, stream, 200, &[hf("content-type", "text/plain"), hf("content-length", &body.len().to_string())], false).unwrap();
        h3.send_data(conn, stream, body.as_bytes(), true).unwrap();
        return;
    }
    let n: usize = path.trim_start_matches('/').parse().unwrap_or(5);
    h3.send_response(conn, stream, 200, &[hf("content-type", "application/octet-stream"), hf("server", "quicpro")], false).unwrap();
    let body = Bytes::from(pattern(n));
    let sent = h3.send_data_bytes(conn, stream, body.clone(), true).unwrap();
    assert_eq!(sent, n, "test bodies fit in the send buffer");
}

/// Collects the client's view of each response.
#[derive(Default, Debug)]
struct Resp {
    status: Option<String>,
    body: Vec<u8>,
    done: bool,
    trailers: Option<Vec<HeaderField>>,
}

fn client_collect(h: &mut H3Pair, resps: &mut HashMap<StreamId, Resp>) {
    let events: Vec<_> = h.client_events.drain(..).collect();
    for e in events {
        match e {
            H3Event::Headers { stream, headers, .. } => {
                let st = headers.iter().find(|f| &f.name[..] == b":status").map(|f| String::from_utf8_lossy(&f.value).to_string());
                resps.entry(stream).or_default().status = st;
            }
            H3Event::Data { stream } => {
                let conn = h.p.client.connection(h.p.client_conn).unwrap();
                while let Some(b) = h.client.recv_body(conn, stream, usize::MAX) {
                    resps.entry(stream).or_default().body.extend_from_slice(&b);
                }
                while let Some(e) = h.client.poll_event() {
                    h.client_events.push(e);
                }
            }
            H3Event::Finished { stream } => resps.entry(stream).or_default().done = true,
            H3Event::Trailers { stream, headers } => resps.entry(stream).or_default().trailers = Some(headers),
            _ => {}
        }
    }
}

#[test]
fn get_request_and_response() {
    let mut h = h3_pair(1);
    let conn = h.p.client.connection(h.p.client_conn).unwrap();
    let id = h.client.send_request(conn, &get("/1000"), true).unwrap();
    let mut bodies = HashMap::new();
    let mut resps = HashMap::new();
    h.run(Duration::from_secs(10), |h| {
        serve(h, &mut bodies);
        client_collect(h, &mut resps);
        resps.get(&id).is_some_and(|r| r.done)
    });
    let r = &resps[&id];
    assert_eq!(r.status.as_deref(), Some("200"));
    assert_eq!(r.body, pattern(1000));
    assert!(h.server.peer_settings().is_some() && h.client.peer_settings().is_some());
}

/// A thousand GETs one after another over 50 paths; every response checked.
fn thousand_sequential_gets(h: &mut H3Pair) {
    let mut bodies = HashMap::new();
    let mut resps = HashMap::new();
    for i in 0..1000 {
        let conn = h.p.client.connection(h.p.client_conn).unwrap();
        let id = h.client.send_request(conn, &get(&format!("/{}", 10 + i % 50)), true).unwrap();
        h.run(Duration::from_secs(10), |h| {
            serve(h, &mut bodies);
            client_collect(h, &mut resps);
            resps.get(&id).is_some_and(|r| r.done)
        });
        assert_eq!(resps[&id].body.len(), 10 + i % 50);
    }
    assert_eq!(resps.values().filter(|r| r.done && r.status.as_deref() == Some("200")).count(), 1000);
}

/// With the server's responses allowed to use the dynamic table, both
/// sides insert and both sides' inserts are acknowledged.
#[test]
fn thousand_sequential_gets_use_the_dynamic_table() {
    let t = TransportConfig { max_concurrent_bidi_streams: 300, ..TransportConfig::default() };
    let server = H3Config { qpack_response_static_max: 0, ..H3Config::default() };
    let mut h = H3Pair::new(2, H3Config::default(), server, t);
    h.pump();
    thousand_sequential_gets(&mut h);
    assert!(h.client.qpack_encoder().known_received_count() > 0, "client's QPACK inserts were acknowledged");
    assert!(h.server.qpack_encoder().known_received_count() > 0, "server's QPACK inserts were acknowledged");
}

/// By default a server's small responses use the static table and
/// literals only (nothing for the client to acknowledge), while the
/// client's requests still use the dynamic table.
#[test]
fn thousand_sequential_gets_with_small_responses_outside_the_table() {
    let mut h = h3_pair(2);
    thousand_sequential_gets(&mut h);
    assert!(h.client.qpack_encoder().known_received_count() > 0, "client's QPACK inserts were acknowledged");
    assert_eq!(h.server.qpack_encoder().table().insert_count(), 0, "the server inserted nothing");
    assert_eq!(h.server.qpack_encoder().outstanding_sections(), 0);
}

#[test]
fn two_hundred_concurrent_requests() {
    let mut h = h3_pair(3);
    let mut ids = Vec::new();
    for i in 0..200 {
        let conn = h.p.client.connection(h.p.client_conn).unwrap();
        ids.push((h.client.send_request(conn, &get(&format!("/{}", 100 + i)), true).unwrap(), 100 + i));
    }
    let mut bodies = HashMap::new();
    let mut resps = HashMap::new();
    h.run(Duration::from_secs(30), |h| {
        serve(h, &mut bodies);
        client_collect(h, &mut resps);
        ids.iter().all(|(id, _)| resps.get(id).is_some_and(|r| r.done))
    });
    for (id, n) in ids {
        assert_eq!(resps[&id].body, pattern(n));
    }
}

#[test]
fn large_post_body_with_trailers() {
    let mut h = h3_pair(4);
    let size = 5 << 20;
    let body = Bytes::from(pattern(size));
    let headers =
        vec![hf(":method", "POST"), hf(":scheme", "https"), hf(":authority", "localhost"), hf(":path", "/upload"), hf("content-length", &size.to_string())];
    let conn = h.p.client.connection(h.p.client_conn).unwrap();
    let id = h.client.send_request(conn, &headers, false).unwrap();
    let mut off = 0;
    let mut trailers_sent = false;
    let mut bodies = HashMap::new();
    let mut resps = HashMap::new();
    let mut server_trailers = None;
    h.run(Duration::from_secs(120), |h| {
        if h.p.client.connection_ref(h.p.client_conn).is_none() {
            panic!("client closed: {:?} server: {:?}", h.p.client.poll_closed(), h.p.server.poll_closed());
        }
        let conn = h.p.client.connection(h.p.client_conn).unwrap();
        if off < size {
            off += h.client.send_data_bytes(conn, id, body.slice(off..), false).unwrap();
        } else if !trailers_sent {
            h.client.send_headers(conn, id, &[hf("x-checksum", "pattern")], true).unwrap();
            trailers_sent = true;
        }
        for e in &h.server_events {
            if let H3Event::Trailers { headers, .. } = e {
                server_trailers = Some(headers.clone());
            }
        }
        serve(h, &mut bodies);
        client_collect(h, &mut resps);
        if std::env::var("H3DEBUG").is_ok() {
            let sc = h.p.server_conn.and_then(|s| h.p.server.connection_ref(s)).map(|c| (c.stats().stream_bytes_received, c.readable(id)));
            eprintln!(
                "t={:?} off={off} trailers={trailers_sent} server_body={:?} srv={:?} open={}",
                h.p.now,
                bodies.get(&id).map(|b| b.len()),
                sc,
                h.server.open_requests()
            );
        }
        resps.get(&id).is_some_and(|r| r.done)
    });
    assert_eq!(String::from_utf8_lossy(&resps[&id].body), format!("received {size} bytes"));
    let t = server_trailers.expect("trailers reached the server");
    assert_eq!(&t[0].name[..], b"x-checksum");
}

#[test]
fn goaway_refuses_later_requests() {
    let mut h = h3_pair(5);
    let mut bodies = HashMap::new();
    let mut resps = HashMap::new();
    let conn = h.p.client.connection(h.p.client_conn).unwrap();
    let first = h.client.send_request(conn, &get("/10"), true).unwrap();
    h.run(Duration::from_secs(10), |h| {
        serve(h, &mut bodies);
        client_collect(h, &mut resps);
        resps.get(&first).is_some_and(|r| r.done)
    });
    let sh = h.p.server_conn.unwrap();
    let id = h.server.send_goaway(h.p.server.connection(sh).unwrap()).unwrap();
    assert_eq!(id, first.0 + 4);
    h.run(Duration::from_secs(10), |h| h.client.goaway_received().is_some());
    assert!(h.client_events.iter().any(|e| matches!(e, H3Event::GoAway { id: g } if *g == id)));
    let conn = h.p.client.connection(h.p.client_conn).unwrap();
    assert_eq!(h.client.send_request(conn, &get("/10"), true), Err(h3_core::connection::SendError::Refused));
}

/// A client at the server's stream limit is refused without a stream
/// being opened (and before its request is validated: an invalid one is
/// refused too), and sends again once the answered streams free credit.
#[test]
fn requests_beyond_the_stream_limit_are_refused_until_credit_returns() {
    let t = TransportConfig { max_concurrent_bidi_streams: 5, ..TransportConfig::default() };
    let mut h = H3Pair::new(21, H3Config::default(), H3Config::default(), t);
    h.pump();
    let conn = h.p.client.connection(h.p.client_conn).unwrap();
    let mut sent = Vec::new();
    while let Ok(id) = h.client.send_request(conn, &get("/10"), true) {
        sent.push(id);
    }
    assert_eq!(sent.len(), 5, "the server's initial_max_streams_bidi");
    assert!(!conn.can_open_stream(Dir::Bi));
    assert_eq!(h.client.send_request(conn, &get("/10"), true), Err(h3_core::connection::SendError::Refused));
    assert_eq!(h.client.send_request(conn, &[hf(":method", "GET")], true), Err(h3_core::connection::SendError::Refused));
    let (mut bodies, mut resps) = (HashMap::new(), HashMap::new());
    h.run(Duration::from_secs(10), |h| {
        serve(h, &mut bodies);
        client_collect(h, &mut resps);
        sent.iter().all(|id| resps.get(id).is_some_and(|r| r.done)) && h.p.client.connection_ref(h.p.client_conn).is_some_and(|c| c.can_open_stream(Dir::Bi))
    });
    let conn = h.p.client.connection(h.p.client_conn).unwrap();
    let next = h.client.send_request(conn, &get("/10"), true).expect("credit returned with MAX_STREAMS");
    assert_eq!(next.0, sent[4].0 + 4, "no stream was used up by the refusals");
    assert!(matches!(h.client.send_request(conn, &[hf(":method", "GET")], true), Err(h3_core::connection::SendError::Invalid(_))));
}

/// Writes raw bytes on a new client stream, bypassing the client H3 layer.
fn raw_client_stream(h: &mut H3Pair, dir: Dir, bytes: &[u8], fin: bool) -> StreamId {
    let conn = h.p.client.connection(h.p.client_conn).unwrap();
    let id = conn.open_stream(dir).unwrap();
    conn.write(id, bytes).unwrap();
    if fin {
        conn.finish(id).unwrap();
    }
    id
}

fn server_closed_with(h: &mut H3Pair, code: H3ErrorCode) {
    h.run(Duration::from_secs(10), |h| h.p.client.connection_ref(h.p.client_conn).is_none_or(|c| c.is_closed()));
    let err = h.p.client.connection_ref(h.p.client_conn).and_then(|c| c.error().cloned()).or_else(|| h.p.client.poll_closed().and_then(|(_, e)| e));
    match err {
        Some(ConnectionError::PeerApplicationClose { code: c, .. }) => assert_eq!(c, code.0, "expected {code:?}"),
        other => panic!("expected an application close with {code:?}, got {other:?}"),
    }
}

#[test]
fn data_before_headers_is_frame_unexpected() {
    let mut h = h3_pair(6);
    // DATA frame (type 0, length 3) as the first frame of a request.
    raw_client_stream(&mut h, Dir::Bi, &[0x00, 0x03, b'a', b'b', b'c'], true);
    server_closed_with(&mut h, H3ErrorCode::H3_FRAME_UNEXPECTED);
}

#[test]
fn second_control_stream_is_stream_creation_error() {
    let mut h = h3_pair(7);
    // Stream type 0x00 (control) followed by an empty SETTINGS frame.
    raw_client_stream(&mut h, Dir::Uni, &[0x00, 0x04, 0x00], false);
    server_closed_with(&mut h, H3ErrorCode::H3_STREAM_CREATION_ERROR);
}

#[test]
fn missing_pseudo_header_resets_the_stream() {
    let mut h = h3_pair(8);
    // A request without :path: a malformed message is a stream error (§4.1.2).
    let conn = h.p.client.connection(h.p.client_conn).unwrap();
    let _ = conn;
    let mut section = Vec::new();
    let mut enc_stream = Vec::new();
    let mut enc = h3_core::qpack::Encoder::new(h3_core::qpack::EncoderConfig::from_peer(0, 0));
    let conn = h.p.client.connection(h.p.client_conn).unwrap();
    let id = conn.open_stream(Dir::Bi).unwrap();
    enc.encode(id.0, &[(":method", "GET"), (":scheme", "https"), (":authority", "x")], &mut section, &mut enc_stream);
    let mut frame = vec![0x01, section.len() as u8];
    frame.extend_from_slice(&section);
    conn.write(id, &frame).unwrap();
    conn.finish(id).unwrap();
    h.run(Duration::from_secs(10), |h| h.server_events.iter().any(|e| matches!(e, H3Event::Reset { .. })));
    assert!(h.server_events.iter().any(|e| matches!(e, H3Event::Reset { stream, code } if *stream == id && *code == H3ErrorCode::H3_MESSAGE_ERROR.0)));
    // The connection survives and serves the next request.
    let conn = h.p.client.connection(h.p.client_conn).unwrap();
    let next = h.client.send_request(conn, &get("/7"), true).unwrap();
    let mut bodies = HashMap::new();
    let mut resps = HashMap::new();
    h.run(Duration::from_secs(10), |h| {
        serve(h, &mut bodies);
        client_collect(h, &mut resps);
        resps.get(&next).is_some_and(|r| r.done)
    });
}

#[test]
fn closing_the_control_stream_is_closed_critical_stream() {
    let mut h = h3_pair(9);
    raw_client_stream(&mut h, Dir::Uni, &[0x00, 0x04, 0x00], true);
    // The client's own control stream already exists, so this is a second
    // one: the first error wins. Use a fresh pair where the raw control
    // stream is the only one instead.
    let _ = h;
    let c = certs();
    let t = TransportConfig::default();
    let mut p = Pair::new(10, server_tls(&c), client_tls(&c), t);
    p.handshake();
    let mut server = H3Connection::new(Side::Server, H3Config::default());
    let conn = p.client.connection(p.client_conn).unwrap();
    let id = conn.open_stream(Dir::Uni).unwrap();
    conn.write(id, &[0x00, 0x04, 0x00]).unwrap();
    conn.finish(id).unwrap();
    let mut closed = false;
    let end = p.now + Duration::from_secs(10);
    while p.now < end && !closed {
        p.step();
        if let Some(sc) = p.server_conn.and_then(|s| p.server.connection(s)) {
            let now = p.now;
            if let Err(e) = server.process(sc, now) {
                assert_eq!(e.code, H3ErrorCode::H3_CLOSED_CRITICAL_STREAM);
                closed = true;
            }
        }
    }
    assert!(closed, "closing the control stream is a connection error");
}

#[test]
fn client_keeps_the_response_after_stop_sending() {
    // RFC 9114 §4.1.1: a server may stop reading the request (STOP_SENDING)
    // and still send a complete response, which the client must not discard.
    let mut h = h3_pair(11);
    let headers = vec![hf(":method", "POST"), hf(":scheme", "https"), hf(":authority", "localhost"), hf(":path", "/upload")];
    let conn = h.p.client.connection(h.p.client_conn).unwrap();
    let id = h.client.send_request(conn, &headers, false).unwrap();
    h.client.send_data(conn, id, b"a body the server does not need", false).unwrap();
    h.run(Duration::from_secs(10), |h| h.server_events.iter().any(|e| matches!(e, H3Event::Headers { .. })));
    let sh = h.p.server_conn.unwrap();
    let conn = h.p.server.connection(sh).unwrap();
    conn.stop_sending(id, H3ErrorCode::H3_NO_ERROR.0);
    h.server.send_response(conn, id, 200, &[hf("content-length", "5")], false).unwrap();
    h.server.send_data(conn, id, b"hello", true).unwrap();
    let mut resps = HashMap::new();
    let mut resets = 0;
    h.run(Duration::from_secs(10), |h| {
        resets += h.client_events.iter().filter(|e| matches!(e, H3Event::Reset { .. })).count();
        client_collect(h, &mut resps);
        resps.get(&id).is_some_and(|r| r.done)
    });
    assert_eq!(resets, 0, "the response was not dropped");
    assert_eq!(resps[&id].status.as_deref(), Some("200"));
    assert_eq!(resps[&id].body, b"hello");
    // Our request half is over: sending more is refused.
    let conn = h.p.client.connection(h.p.client_conn).unwrap();
    assert!(h.client.send_data(conn, id, b"more", true).is_err());
}

/// A pair whose client has no HTTP/3 layer: the raw streams written by
/// `write` are all the server sees. Runs until the server's HTTP/3 layer
/// fails, and returns its error code after checking that the client saw the
/// connection closed with the same code.
fn raw_only_server_error(seed: u64, write: impl FnOnce(&mut quic_core::connection::Connection)) -> H3ErrorCode {
    let c = certs();
    let mut p = Pair::new(seed, server_tls(&c), client_tls(&c), TransportConfig::default());
    p.handshake();
    let mut server = H3Connection::new(Side::Server, H3Config::default());
    write(p.client());
    let end = p.now + Duration::from_secs(10);
    let mut code = None;
    while p.now < end && code.is_none() {
        p.step();
        if let Some(sc) = p.server_conn.and_then(|s| p.server.connection(s)) {
            let now = p.now;
            if let Err(e) = server.process(sc, now) {
                code = Some(e.code);
            }
        }
    }
    let code = code.expect("the server's HTTP/3 layer failed");
    p.run_until(Duration::from_secs(10), |p| p.client.connection_ref(p.client_conn).is_none_or(|c| c.is_closed()));
    let err = p.client.connection_ref(p.client_conn).and_then(|c| c.error().cloned()).or_else(|| p.client.poll_closed().and_then(|(_, e)| e));
    match err {
        Some(ConnectionError::PeerApplicationClose { code: c, .. }) => assert_eq!(c, code.0, "the close carries the H3 error"),
        other => panic!("expected an application close with {code:?}, got {other:?}"),
    }
    code
}

fn raw_uni(conn: &mut quic_core::connection::Connection, bytes: &[u8]) {
    let id = conn.open_stream(Dir::Uni).unwrap();
    conn.write(id, bytes).unwrap();
}

#[test]
fn second_settings_frame_is_frame_unexpected() {
    // RFC 9114 §7.2.4: a second SETTINGS frame on the control stream is a
    // connection error of type H3_FRAME_UNEXPECTED.
    let code = raw_only_server_error(20, |c| raw_uni(c, &[0x00, 0x04, 0x00, 0x04, 0x00]));
    assert_eq!(code, H3ErrorCode::H3_FRAME_UNEXPECTED);
}

#[test]
fn control_stream_not_starting_with_settings_is_missing_settings() {
    // RFC 9114 §6.2.1: the first control frame must be SETTINGS; here it is
    // GOAWAY (type 0x07, length 1, ID 0).
    let code = raw_only_server_error(21, |c| raw_uni(c, &[0x00, 0x07, 0x01, 0x00]));
    assert_eq!(code, H3ErrorCode::H3_MISSING_SETTINGS);
}

#[test]
fn goaway_with_increasing_id_is_id_error() {
    // RFC 9114 §5.2: a GOAWAY ID larger than a previous one is H3_ID_ERROR.
    // From a client the IDs are push IDs: 0, then 4.
    let code = raw_only_server_error(22, |c| raw_uni(c, &[0x00, 0x04, 0x00, 0x07, 0x01, 0x00, 0x07, 0x01, 0x04]));
    assert_eq!(code, H3ErrorCode::H3_ID_ERROR);
}

#[test]
fn reference_to_missing_dynamic_entry_is_decompression_failed() {
    let mut h = h3_pair(23);
    // HEADERS with Required Insert Count 0, Base 0, then an Indexed Field
    // Line into the dynamic table (T=0, index 0): RFC 9204 §2.2.3 makes a
    // reference to an entry that cannot exist a QPACK_DECOMPRESSION_FAILED.
    raw_client_stream(&mut h, Dir::Bi, &[0x01, 0x03, 0x00, 0x00, 0x80], true);
    server_closed_with(&mut h, H3ErrorCode(h3_core::qpack::QPACK_DECOMPRESSION_FAILED));
}

#[test]
fn invalid_static_index_is_decompression_failed() {
    let mut h = h3_pair(24);
    // Indexed Field Line, static (T=1), index 99 = 63 + 36: the static table
    // ends at 98 (RFC 9204 Appendix A), so §3.1 makes this an error.
    raw_client_stream(&mut h, Dir::Bi, &[0x01, 0x04, 0x00, 0x00, 0xff, 0x24], true);
    server_closed_with(&mut h, H3ErrorCode(h3_core::qpack::QPACK_DECOMPRESSION_FAILED));
}

#[test]
fn too_many_blocked_streams_is_decompression_failed() {
    let mut h = h3_pair(25);
    let limit = H3Config::default().qpack_blocked_streams;
    // Each request's section needs insert 1, which never comes: Encoded
    // Required Insert Count 2 (RFC 9204 §4.5.1.1 with MaxEntries 4096/32 =
    // 128: 1 % 256 + 1), Delta Base 0, then dynamic index 0. One stream past
    // SETTINGS_QPACK_BLOCKED_STREAMS is a connection error (§2.1.2).
    for _ in 0..=limit {
        raw_client_stream(&mut h, Dir::Bi, &[0x01, 0x03, 0x02, 0x00, 0x80], true);
    }
    server_closed_with(&mut h, H3ErrorCode(h3_core::qpack::QPACK_DECOMPRESSION_FAILED));
}

#[test]
fn http2_only_frame_type_on_request_is_frame_unexpected() {
    let mut h = h3_pair(26);
    // Frame type 0x2 (HTTP/2 PRIORITY) is reserved (RFC 9114 §7.2.8, §11.2.1):
    // receiving it is H3_FRAME_UNEXPECTED.
    raw_client_stream(&mut h, Dir::Bi, &[0x02, 0x00], true);
    server_closed_with(&mut h, H3ErrorCode::H3_FRAME_UNEXPECTED);
}

#[test]
fn connection_specific_header_resets_the_stream() {
    let mut h = h3_pair(27);
    // RFC 9114 §4.2: `connection` makes the message malformed (§4.1.2): the
    // stream is reset with H3_MESSAGE_ERROR, the connection carries on.
    let mut section = Vec::new();
    let mut enc_stream = Vec::new();
    let mut enc = h3_core::qpack::Encoder::new(h3_core::qpack::EncoderConfig::from_peer(0, 0));
    let conn = h.p.client.connection(h.p.client_conn).unwrap();
    let id = conn.open_stream(Dir::Bi).unwrap();
    enc.encode(
        id.0,
        &[(":method", "GET"), (":scheme", "https"), (":authority", "localhost"), (":path", "/"), ("connection", "close")],
        &mut section,
        &mut enc_stream,
    );
    assert!(enc_stream.is_empty(), "no dynamic table");
    let mut frame = vec![0x01, section.len() as u8];
    frame.extend_from_slice(&section);
    conn.write(id, &frame).unwrap();
    conn.finish(id).unwrap();
    h.run(Duration::from_secs(10), |h| h.server_events.iter().any(|e| matches!(e, H3Event::Reset { .. })));
    assert!(h.server_events.iter().any(|e| matches!(e, H3Event::Reset { stream, code } if *stream == id && *code == H3ErrorCode::H3_MESSAGE_ERROR.0)));
    assert!(!h.server_events.iter().any(|e| matches!(e, H3Event::Headers { stream, .. } if *stream == id)), "the malformed request is not delivered");
    let conn = h.p.client.connection(h.p.client_conn).unwrap();
    let next = h.client.send_request(conn, &get("/9"), true).unwrap();
    let mut bodies = HashMap::new();
    let mut resps = HashMap::new();
    h.run(Duration::from_secs(10), |h| {
        serve(h, &mut bodies);
        client_collect(h, &mut resps);
        resps.get(&next).is_some_and(|r| r.done)
    });
    assert_eq!(resps[&next].body, pattern(9));
}

/// A sender told WouldBlock hears `Writable` when room opens, and
/// `Acknowledged` once the whole response (with its end) was acknowledged:
/// no polling after WouldBlock.
#[test]
fn writable_and_acknowledged_events_drive_a_blocked_sender() {
    let mut h = h3_pair(41);
    let conn = h.p.client.connection(h.p.client_conn).unwrap();
    let id = h.client.send_request(conn, &get("/big"), true).unwrap();
    h.run(Duration::from_secs(5), |h| h.server_events.iter().any(|e| matches!(e, H3Event::Headers { .. })));
    let sh = h.p.server_conn.unwrap();
    let conn = h.p.server.connection(sh).unwrap();
    h.server.send_response(conn, id, 200, &[], false).unwrap();
    // Fill the stream's send buffer until it refuses.
    let chunk = Bytes::from(vec![7u8; 64 * 1024]);
    let mut sent = 0usize;
    loop {
        match h.server.send_data_bytes(conn, id, chunk.clone(), false) {
            Ok(n) if n > 0 => sent += n,
            Ok(_) | Err(h3_core::connection::SendError::WouldBlock) => break,
            Err(e) => panic!("send: {e:?}"),
        }
        assert!(sent < 256 << 20, "the send buffer never filled");
    }
    h.server_events.clear();
    // Only the events bring the sender back: send the rest when told.
    let mut remaining = 3 * chunk.len();
    let mut writable_events = 0;
    h.run(Duration::from_secs(30), |h| {
        let evs: Vec<_> = h.server_events.drain(..).collect();
        let conn = h.p.server.connection(sh).unwrap();
        for e in evs {
            match e {
                H3Event::Writable { stream } if stream == id => {
                    writable_events += 1;
                    while remaining > 0 {
                        match h.server.send_data_bytes(conn, id, chunk.slice(..remaining.min(chunk.len())), false) {
                            Ok(n) if n > 0 => remaining -= n,
                            _ => break,
                        }
                    }
                    if remaining == 0 {
                        h.server.finish(conn, id).unwrap();
                        remaining = usize::MAX;
                    }
                }
                H3Event::Acknowledged { stream } if stream == id => return true,
                _ => {}
            }
        }
        // The client reads everything it is given.
        let cconn = h.p.client.connection(h.p.client_conn).unwrap();
        while h.client.recv_body(cconn, id, usize::MAX).is_some() {}
        false
    });
    assert!(writable_events >= 1, "no Writable event");
    assert_eq!(remaining, usize::MAX, "the rest of the body was sent on Writable events and finished");
}
