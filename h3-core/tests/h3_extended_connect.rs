//! Extended CONNECT (RFC 9220), HTTP Datagrams (RFC 9297 §2) over QUIC
//! DATAGRAM frames (RFC 9221) and the Capsule Protocol (RFC 9297 §3), over
//! two in-memory QUIC endpoints.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use h3_core::capsule::{self, Capsule};
use h3_core::connection::{H3Config, H3Event, SendError};
use h3_core::datagram::DatagramError;
use h3_core::error::H3ErrorCode;
use h3_core::frame::Frame;
use h3_core::qpack::{Encoder, EncoderConfig, HeaderField};
use quic_core::codec::Writer;
use quic_core::config::TransportConfig;
use quic_core::connection::{Connection, ConnectionError};
use quic_core::stream::{Dir, StreamId, StreamReadError};
use quicpro_sim::h3_pair::H3Pair;
use quicpro_sim::link::LinkConfig;

fn hf(n: &str, v: &str) -> HeaderField {
    HeaderField::new(n.as_bytes().to_vec(), v.as_bytes().to_vec())
}

fn field(fields: &[HeaderField], name: &str) -> Option<String> {
    fields.iter().find(|f| f.name[..] == *name.as_bytes()).map(|f| String::from_utf8_lossy(&f.value).to_string())
}

/// An Extended CONNECT request (RFC 9220 §3: all four pseudo-headers plus :protocol).
fn ext_connect(protocol: &str) -> Vec<HeaderField> {
    vec![
        hf(":method", "CONNECT"),
        hf(":protocol", protocol),
        hf(":scheme", "https"),
        hf(":authority", "localhost"),
        hf(":path", "/tunnel"),
        hf("capsule-protocol", "?1"),
    ]
}

fn h3x() -> H3Config {
    H3Config { enable_connect_protocol: true, enable_datagrams: true, ..H3Config::default() }
}

/// The shared HTTP/3 pair, with this file's helpers (`XExt`).
type X = H3Pair;

trait XExt {
    fn default_transport() -> TransportConfig;
    fn ready(seed: u64) -> Self;
    fn cconn(&mut self) -> &mut Connection;
    fn send_request(&mut self, headers: &[HeaderField], fin: bool) -> Result<StreamId, SendError>;
    fn open_tunnel(&mut self, protocol: &str) -> StreamId;
    fn take_datagrams(events: &mut Vec<H3Event>, out: &mut Vec<(StreamId, Bytes)>);
    fn client_close_code(&mut self) -> u64;
}

impl XExt for H3Pair {
    fn default_transport() -> TransportConfig {
        TransportConfig { max_concurrent_bidi_streams: 100, ..TransportConfig::default() }
    }

    /// Both sides negotiated: SETTINGS exchanged.
    fn ready(seed: u64) -> Self {
        let mut x = Self::new(seed, h3x(), h3x(), Self::default_transport());
        x.run(Duration::from_secs(5), |x| x.client.peer_settings().is_some() && x.server.peer_settings().is_some());
        x
    }

    fn cconn(&mut self) -> &mut Connection {
        self.p.client.connection(self.p.client_conn).unwrap()
    }

    fn send_request(&mut self, headers: &[HeaderField], fin: bool) -> Result<StreamId, SendError> {
        let conn = self.p.client.connection(self.p.client_conn).unwrap();
        self.client.send_request(conn, headers, fin)
    }

    /// Client opens an Extended CONNECT tunnel; the server answers 200.
    fn open_tunnel(&mut self, protocol: &str) -> StreamId {
        let id = self.send_request(&ext_connect(protocol), false).unwrap();
        self.run(Duration::from_secs(5), |x| x.server_events.iter().any(|e| matches!(e, H3Event::Headers { stream, .. } if *stream == id)));
        let headers = self.server_events.iter().find_map(|e| match e {
            H3Event::Headers { stream, headers, fin } if *stream == id => Some((headers.clone(), *fin)),
            _ => None,
        });
        let (headers, fin) = headers.unwrap();
        assert!(!fin, "a CONNECT request does not end at its headers");
        assert_eq!(field(&headers, ":protocol").as_deref(), Some(protocol));
        assert_eq!(field(&headers, ":method").as_deref(), Some("CONNECT"));
        let sh = self.p.server_conn.unwrap();
        let conn = self.p.server.connection(sh).unwrap();
        self.server.send_response(conn, id, 200, &[hf("capsule-protocol", "?1")], false).unwrap();
        self.run(Duration::from_secs(5), |x| x.client_events.iter().any(|e| matches!(e, H3Event::Headers { stream, .. } if *stream == id)));
        let status = self.client_events.iter().find_map(|e| match e {
            H3Event::Headers { stream, headers, fin } if *stream == id => {
                assert!(!fin, "a 2xx response to CONNECT opens the tunnel");
                field(headers, ":status")
            }
            _ => None,
        });
        assert_eq!(status.as_deref(), Some("200"));
        id
    }

    fn take_datagrams(events: &mut Vec<H3Event>, out: &mut Vec<(StreamId, Bytes)>) {
        events.retain(|e| match e {
            H3Event::Datagram { stream, payload } => {
                out.push((*stream, payload.clone()));
                false
            }
            _ => true,
        });
    }

    fn client_close_code(&mut self) -> u64 {
        self.run(Duration::from_secs(10), |x| x.p.client.connection_ref(x.p.client_conn).is_none_or(|c| c.is_closed()));
        let err =
            self.p.client.connection_ref(self.p.client_conn).and_then(|c| c.error().cloned()).or_else(|| self.p.client.poll_closed().and_then(|(_, e)| e));
        match err {
            Some(ConnectionError::PeerApplicationClose { code, .. }) => code,
            other => panic!("expected an application close, got {other:?}"),
        }
    }
}

/// A datagram payload that names its sender, sequence number and length,
/// and whose content is a function of them: corruption or mix-ups show.
fn dgram(tag: u8, seq: u32) -> Vec<u8> {
    let len = 8 + (seq as usize * 37) % 1000;
    let mut v = Vec::with_capacity(len);
    v.push(tag);
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&(len as u16).to_be_bytes());
    while v.len() < len {
        let i = v.len();
        v.push((i as u32).wrapping_mul(31).wrapping_add(seq).wrapping_add(u32::from(tag)) as u8);
    }
    v
}

/// Checks a received payload against `dgram`; returns its sequence number.
fn check_dgram(tag: u8, payload: &[u8]) -> u32 {
    assert!(payload.len() >= 7, "short datagram");
    assert_eq!(payload[0], tag, "datagram from the wrong side");
    let seq = u32::from_be_bytes(payload[1..5].try_into().unwrap());
    assert_eq!(payload, &dgram(tag, seq)[..], "datagram {seq} content");
    seq
}

#[test]
fn extended_connect_accepted_when_negotiated() {
    let mut x = X::ready(1);
    assert!(x.client.peer_allows_extended_connect());
    assert!(x.server.peer_settings().unwrap().h3_datagram);
    let id = x.open_tunnel("webtransport");
    // The tunnel stays open both ways: DATA in each direction, no Finished.
    let conn = x.p.client.connection(x.p.client_conn).unwrap();
    assert_eq!(x.client.send_data(conn, id, b"ping from client", false).unwrap(), 16);
    let sconn = x.p.server.connection(x.p.server_conn.unwrap()).unwrap();
    assert_eq!(x.server.send_data(sconn, id, b"pong from server", false).unwrap(), 16);
    let (mut got_c, mut got_s) = (Vec::new(), Vec::new());
    x.run(Duration::from_secs(5), |x| {
        let conn = x.p.client.connection(x.p.client_conn).unwrap();
        while let Some(b) = x.client.recv_body(conn, id, usize::MAX) {
            got_c.extend_from_slice(&b);
        }
        let sh = x.p.server_conn.unwrap();
        let conn = x.p.server.connection(sh).unwrap();
        while let Some(b) = x.server.recv_body(conn, id, usize::MAX) {
            got_s.extend_from_slice(&b);
        }
        got_c.len() == 16 && got_s.len() == 16
    });
    assert_eq!(got_c, b"pong from server");
    assert_eq!(got_s, b"ping from client");
    x.pump();
    for e in x.client_events.iter().chain(&x.server_events) {
        assert!(!matches!(e, H3Event::Finished { .. } | H3Event::Reset { .. }), "tunnel ended early: {e:?}");
    }
    // Either side may end its half; the other half keeps working.
    let conn = x.p.client.connection(x.p.client_conn).unwrap();
    x.client.finish(conn, id).unwrap();
    x.run(Duration::from_secs(5), |x| x.server_events.iter().any(|e| matches!(e, H3Event::Finished { stream } if *stream == id)));
    let sconn = x.p.server.connection(x.p.server_conn.unwrap()).unwrap();
    assert_eq!(x.server.send_data(sconn, id, b"still open", true).unwrap(), 10);
    let mut tail = Vec::new();
    x.run(Duration::from_secs(5), |x| {
        let conn = x.p.client.connection(x.p.client_conn).unwrap();
        while let Some(b) = x.client.recv_body(conn, id, usize::MAX) {
            tail.extend_from_slice(&b);
        }
        x.client_events.iter().any(|e| matches!(e, H3Event::Finished { stream } if *stream == id))
    });
    assert_eq!(tail, b"still open");
    assert!(x.client_err.is_none() && x.server_err.is_none());
}

#[test]
fn client_waits_for_settings_before_extended_connect() {
    let mut x = X::new(2, h3x(), h3x(), X::default_transport());
    // Nothing processed yet: the server's SETTINGS are unknown.
    assert!(x.client.peer_settings().is_none());
    assert!(!x.client.peer_allows_extended_connect());
    assert_eq!(x.send_request(&ext_connect("webtransport"), false), Err(SendError::AwaitingSettings));
    // Ordinary requests need no SETTINGS.
    let get = [hf(":method", "GET"), hf(":scheme", "https"), hf(":authority", "localhost"), hf(":path", "/")];
    let g = x.send_request(&get, true).unwrap();
    assert_eq!(g, StreamId(0));
    // Wait on the SETTINGS, then it works (and nothing was sent before).
    x.run(Duration::from_secs(5), |x| x.client.peer_settings().is_some());
    assert!(x.client.peer_allows_extended_connect());
    let id = x.send_request(&ext_connect("webtransport"), false).unwrap();
    assert_eq!(id, StreamId(4), "the refused attempt opened no stream");
    x.run(Duration::from_secs(5), |x| x.server_events.iter().any(|e| matches!(e, H3Event::Headers { stream, .. } if *stream == id)));
}

#[test]
fn extended_connect_refused_when_not_advertised() {
    let server_cfg = H3Config { enable_connect_protocol: false, enable_datagrams: true, ..H3Config::default() };
    let mut x = X::new(3, h3x(), server_cfg, X::default_transport());
    x.run(Duration::from_secs(5), |x| x.client.peer_settings().is_some() && x.server.peer_settings().is_some());
    // Our client knows better than to send it.
    assert!(!x.client.peer_allows_extended_connect());
    assert_eq!(x.send_request(&ext_connect("websocket"), false), Err(SendError::NotSupported));
    // A client that sends it anyway: raw HEADERS with :protocol on a new
    // stream. RFC 9220 §3: without the setting, :protocol makes the request
    // malformed, a stream error of type H3_MESSAGE_ERROR (RFC 9114 §4.1.2).
    let mut section = Vec::new();
    let mut enc_stream = Vec::new();
    let mut enc = Encoder::new(EncoderConfig::from_peer(0, 0));
    let conn = x.p.client.connection(x.p.client_conn).unwrap();
    let id = conn.open_stream(Dir::Bi).unwrap();
    enc.encode_fields(id.0, &ext_connect("websocket"), &mut section, &mut enc_stream);
    assert!(enc_stream.is_empty(), "static table only");
    let frame = Frame::Headers(&section);
    let mut buf = vec![0u8; frame.encoded_len()];
    let mut w = Writer::new(&mut buf);
    frame.encode(&mut w).unwrap();
    conn.write(id, &buf).unwrap();
    x.run(Duration::from_secs(5), |x| x.server_events.iter().any(|e| matches!(e, H3Event::Reset { stream, .. } if *stream == id)));
    let code = x.server_events.iter().find_map(|e| match e {
        H3Event::Reset { stream, code } if *stream == id => Some(*code),
        _ => None,
    });
    assert_eq!(code, Some(H3ErrorCode::H3_MESSAGE_ERROR.0));
    assert!(!x.server_events.iter().any(|e| matches!(e, H3Event::Headers { .. })), "the request never reached the application");
    // The client's QUIC stream sees the reset with that code.
    x.run(Duration::from_secs(5), |x| {
        let conn = x.p.client.connection(x.p.client_conn).unwrap();
        matches!(conn.read_chunk(id, 1024), Err(StreamReadError::Reset(c)) if c == H3ErrorCode::H3_MESSAGE_ERROR.0)
    });
    assert!(x.server_err.is_none(), "a stream error, not a connection error");
}

#[test]
fn classic_connect_validates_per_rfc9114() {
    let mut x = X::ready(4);
    // RFC 9114 §4.4: CONNECT has :authority and no :scheme or :path.
    let bad = [hf(":method", "CONNECT"), hf(":authority", "proxy.example:443"), hf(":path", "/")];
    match x.send_request(&bad, false) {
        Err(SendError::Invalid(e)) => assert_eq!(e.code, H3ErrorCode::H3_MESSAGE_ERROR),
        other => panic!("CONNECT with :path accepted: {other:?}"),
    }
    let no_authority = [hf(":method", "CONNECT")];
    assert!(matches!(x.send_request(&no_authority, false), Err(SendError::Invalid(_))));
    let good = [hf(":method", "CONNECT"), hf(":authority", "proxy.example:443")];
    let id = x.send_request(&good, false).unwrap();
    x.run(Duration::from_secs(5), |x| x.server_events.iter().any(|e| matches!(e, H3Event::Headers { stream, .. } if *stream == id)));
    let headers = x.server_events.iter().find_map(|e| match e {
        H3Event::Headers { stream, headers, fin: false } if *stream == id => Some(headers.clone()),
        _ => None,
    });
    let headers = headers.unwrap();
    assert_eq!(field(&headers, ":authority").as_deref(), Some("proxy.example:443"));
    assert_eq!(field(&headers, ":scheme"), None);
    assert_eq!(field(&headers, ":protocol"), None);
    // Tunnel data after 200, with a Content-Length the tunnel ignores (§4.4).
    let sconn = x.p.server.connection(x.p.server_conn.unwrap()).unwrap();
    x.server.send_response(sconn, id, 200, &[], false).unwrap();
    x.server.send_data(sconn, id, &[7u8; 3000], false).unwrap();
    let mut got = 0;
    x.run(Duration::from_secs(5), |x| {
        let conn = x.p.client.connection(x.p.client_conn).unwrap();
        while let Some(b) = x.client.recv_body(conn, id, usize::MAX) {
            assert!(b.iter().all(|&v| v == 7));
            got += b.len();
        }
        got == 3000
    });
}

#[test]
fn thousand_datagrams_each_way_lossless() {
    let mut x = X::ready(5);
    let id = x.open_tunnel("webtransport");
    let conn = x.p.client.connection_ref(x.p.client_conn).unwrap();
    assert!(x.client.datagrams_negotiated(conn));
    assert!(x.client.max_datagram_payload(conn, id).unwrap() >= 1007, "largest test datagram fits");
    const N: u32 = 1000;
    const BATCH: u32 = 50;
    let (mut at_server, mut at_client) = (Vec::new(), Vec::new());
    let mut next = 0;
    while next < N {
        let end = (next + BATCH).min(N);
        for seq in next..end {
            let conn = x.p.client.connection(x.p.client_conn).unwrap();
            x.client.send_datagram(conn, id, &dgram(b'c', seq)).unwrap();
            let sh = x.p.server_conn.unwrap();
            let conn = x.p.server.connection(sh).unwrap();
            x.server.send_datagram(conn, id, &dgram(b's', seq)).unwrap();
        }
        next = end;
        x.run(Duration::from_secs(5), |x| {
            X::take_datagrams(&mut x.server_events, &mut at_server);
            X::take_datagrams(&mut x.client_events, &mut at_client);
            at_server.len() == next as usize && at_client.len() == next as usize
        });
    }
    // Every datagram arrived once, intact, on the tunnel's stream; over a
    // lossless link without reordering they even arrive in order.
    for (side, tag, got) in [("server", b'c', &at_server), ("client", b's', &at_client)] {
        let seqs: Vec<u32> = got
            .iter()
            .map(|(s, p)| {
                assert_eq!(*s, id, "{side}: datagram on the wrong stream");
                check_dgram(tag, p)
            })
            .collect();
        assert_eq!(seqs, (0..N).collect::<Vec<_>>(), "{side}: all, in order");
    }
    assert_eq!(x.client.datagrams_dropped(), 0);
    assert_eq!(x.server.datagrams_dropped(), 0);
}

#[test]
fn datagrams_over_a_lossy_link_are_intact_and_not_retransmitted() {
    let mut x = X::ready(6);
    let id = x.open_tunnel("webtransport");
    let link = LinkConfig { delay: Duration::from_millis(10), loss: 0.15, ..LinkConfig::default() };
    x.p.set_links(link.clone(), link);
    const N: u32 = 400;
    let (mut at_server, mut at_client) = (Vec::new(), Vec::new());
    for batch in 0..(N / 20) {
        for seq in batch * 20..(batch + 1) * 20 {
            let conn = x.p.client.connection(x.p.client_conn).unwrap();
            x.client.send_datagram(conn, id, &dgram(b'c', seq)).unwrap();
            let sh = x.p.server_conn.unwrap();
            let conn = x.p.server.connection(sh).unwrap();
            x.server.send_datagram(conn, id, &dgram(b's', seq)).unwrap();
        }
        x.run_for(Duration::from_millis(40));
        X::take_datagrams(&mut x.server_events, &mut at_server);
        X::take_datagrams(&mut x.client_events, &mut at_client);
    }
    // Long enough for any retransmission (many PTOs) to have happened.
    x.run_for(Duration::from_secs(3));
    X::take_datagrams(&mut x.server_events, &mut at_server);
    X::take_datagrams(&mut x.client_events, &mut at_client);
    let stats = x.p.link_stats();
    assert!(stats[0].dropped_loss > 0 && stats[1].dropped_loss > 0, "the link lost packets: {stats:?}");
    for (side, tag, got) in [("server", b'c', &at_server), ("client", b's', &at_client)] {
        let mut seen = HashSet::new();
        for (s, p) in got.iter() {
            assert_eq!(*s, id);
            let seq = check_dgram(tag, p);
            assert!(seq < N);
            // Each arrives at most once: lost ones are not sent again.
            assert!(seen.insert(seq), "{side}: datagram {seq} delivered twice");
        }
        assert!(seen.len() < N as usize, "{side}: some datagrams were lost ({} of {N} arrived)", seen.len());
        assert!(seen.len() > N as usize / 2, "{side}: most datagrams arrive ({} of {N})", seen.len());
        eprintln!("{side}: {} of {N} datagrams arrived over 15% loss", seen.len());
    }
    assert!(x.client_err.is_none() && x.server_err.is_none());
}

#[test]
fn send_datagram_errors() {
    // Not negotiated: the server did not send H3_DATAGRAM = 1.
    let server_cfg = H3Config { enable_connect_protocol: true, enable_datagrams: false, ..H3Config::default() };
    let mut x = X::new(7, h3x(), server_cfg, X::default_transport());
    x.run(Duration::from_secs(5), |x| x.client.peer_settings().is_some() && x.server.peer_settings().is_some());
    let id = x.open_tunnel("connect-udp");
    let conn = x.p.client.connection(x.p.client_conn).unwrap();
    assert!(!x.client.datagrams_negotiated(conn));
    assert_eq!(x.client.send_datagram(conn, id, b"x"), Err(DatagramError::NotNegotiated));
    let sconn = x.p.server.connection(x.p.server_conn.unwrap()).unwrap();
    assert_eq!(x.server.send_datagram(sconn, id, b"x"), Err(DatagramError::NotNegotiated));

    let mut x = X::ready(8);
    let id = x.open_tunnel("connect-udp");
    let conn = x.p.client.connection(x.p.client_conn).unwrap();
    // Not a request stream (a unidirectional stream ID), and an unknown one.
    assert_eq!(x.client.send_datagram(conn, StreamId(2), b"x"), Err(DatagramError::InvalidStream));
    assert_eq!(x.client.send_datagram(conn, StreamId(400), b"x"), Err(DatagramError::InvalidStream));
    // Too large for one packet (the path's MTU, 1200 bytes or what PMTU
    // discovery found) although below max_datagram_frame_size.
    let mtu = usize::from(conn.mtu());
    let max = x.client.max_datagram_payload(conn, id).unwrap();
    assert!(max < mtu && max > mtu - 100, "max payload {max} for MTU {mtu}");
    assert_eq!(x.client.send_datagram(conn, id, &vec![0u8; max + 1]), Err(DatagramError::TooLarge));
    x.client.send_datagram(conn, id, &vec![0xabu8; max]).unwrap();
    let mut got = Vec::new();
    x.run(Duration::from_secs(5), |x| {
        X::take_datagrams(&mut x.server_events, &mut got);
        !got.is_empty()
    });
    assert_eq!(got[0].1.len(), max);
    assert!(got[0].1.iter().all(|&b| b == 0xab));
    // After our side finished, no more datagrams on the stream.
    let conn = x.p.client.connection(x.p.client_conn).unwrap();
    x.client.finish(conn, id).unwrap();
    assert_eq!(x.client.send_datagram(conn, id, b"late"), Err(DatagramError::InvalidStream));
}

/// Writes a raw QUIC DATAGRAM from the client, bypassing its HTTP/3 layer.
fn raw_datagram_error(seed: u64, wire: &[u8]) -> u64 {
    let mut x = X::ready(seed);
    let _ = x.open_tunnel("webtransport");
    assert!(x.cconn().send_datagram(Bytes::copy_from_slice(wire)));
    x.run(Duration::from_secs(5), |x| x.server_err.is_some());
    let e = x.server_err.unwrap();
    assert!(e.is_connection_error());
    let code = x.client_close_code();
    assert_eq!(code, e.code.0, "the CONNECTION_CLOSE carries the H3 code");
    code
}

#[test]
fn datagram_with_invalid_quarter_stream_id_is_h3_datagram_error() {
    // RFC 9297 §2.1: Quarter Stream ID 2^60 (an 8-byte varint) is above the
    // largest permitted value 2^60 - 1.
    let mut wire = vec![0xd0, 0, 0, 0, 0, 0, 0, 0];
    wire.extend_from_slice(b"payload");
    assert_eq!(raw_datagram_error(9, &wire), H3ErrorCode::H3_DATAGRAM_ERROR.0);
    // A datagram that ends inside its Quarter Stream ID.
    assert_eq!(raw_datagram_error(10, &[0x80, 0x00]), H3ErrorCode::H3_DATAGRAM_ERROR.0);
    // Within 2^60 but beyond the stream limit the server advertised (100
    // bidirectional streams): RFC 9297 §2.1 SHOULD, H3_ID_ERROR.
    assert_eq!(raw_datagram_error(11, &[0x40, 0xc8, b'x']), H3ErrorCode::H3_ID_ERROR.0);
}

#[test]
fn h3_datagram_setting_without_quic_datagrams_is_settings_error() {
    // The client sends SETTINGS_H3_DATAGRAM = 1 but neither side sends the
    // max_datagram_frame_size transport parameter (RFC 9297 §2.1.1).
    let t = TransportConfig { max_datagram_frame_size: None, ..X::default_transport() };
    let client_cfg = H3Config { enable_datagrams: true, ..H3Config::default() };
    let mut x = X::new(12, client_cfg, H3Config::default(), t);
    x.run(Duration::from_secs(5), |x| x.server_err.is_some());
    assert_eq!(x.server_err.unwrap().code, H3ErrorCode::H3_SETTINGS_ERROR);
    assert_eq!(x.client_close_code(), H3ErrorCode::H3_SETTINGS_ERROR.0);

    // Same transport, but nobody claims HTTP datagrams: all is well.
    let mut x = X::new(13, H3Config::default(), H3Config::default(), TransportConfig { max_datagram_frame_size: None, ..X::default_transport() });
    x.run(Duration::from_secs(5), |x| x.client.peer_settings().is_some() && x.server.peer_settings().is_some());
    assert!(x.client_err.is_none() && x.server_err.is_none());
}

#[test]
fn capsules_on_the_connect_stream_arrive_in_order() {
    let mut x = X::ready(14);
    let id = x.open_tunnel("webtransport");
    const N: usize = 300;
    // Interleave DATAGRAM capsules with an unknown type, which is skipped.
    let payload = |i: usize| -> Vec<u8> { (0..(i * 13) % 700).map(|j| (i + j) as u8).collect() };
    let mut sent = 0;
    let mut got: Vec<Capsule> = Vec::new();
    let mut back: Vec<Capsule> = Vec::new();
    x.run(Duration::from_secs(20), |x| {
        while sent < N {
            let conn = x.p.client.connection(x.p.client_conn).unwrap();
            let r = if sent % 3 == 1 { x.client.send_capsule(conn, id, 0x0028_4321, b"unknown capsule type") } else { Ok(()) };
            match r.and_then(|_| x.client.send_datagram_capsule(conn, id, &payload(sent))) {
                Ok(()) => sent += 1,
                Err(SendError::WouldBlock) => break,
                Err(e) => panic!("send_capsule: {e:?}"),
            }
        }
        let sh = x.p.server_conn.unwrap();
        let conn = x.p.server.connection(sh).unwrap();
        while let Some(c) = x.server.recv_capsule(conn, id).unwrap() {
            // Echo each back as a capsule of the same content.
            x.server.send_datagram_capsule(conn, id, &c.value).unwrap();
            got.push(c);
        }
        let conn = x.p.client.connection(x.p.client_conn).unwrap();
        while let Some(c) = x.client.recv_capsule(conn, id).unwrap() {
            back.push(c);
        }
        back.len() == N
    });
    assert_eq!(got.len(), N, "unknown capsules were skipped, the rest delivered");
    for (i, (a, b)) in got.iter().zip(&back).enumerate() {
        assert!(a.is_datagram() && b.is_datagram());
        assert_eq!(a.value, payload(i), "capsule {i} at the server");
        assert_eq!(b.value, payload(i), "capsule {i} back at the client");
    }
    // A stream that ends inside a capsule: H3_DATAGRAM_ERROR on that stream.
    let conn = x.p.client.connection(x.p.client_conn).unwrap();
    let mut partial = Vec::new();
    capsule::encode(0, b"cut short", &mut partial).unwrap();
    x.client.send_data(conn, id, &partial[..5], true).unwrap();
    let mut err = None;
    x.run(Duration::from_secs(5), |x| {
        let sh = x.p.server_conn.unwrap();
        let conn = x.p.server.connection(sh).unwrap();
        match x.server.recv_capsule(conn, id) {
            Ok(Some(c)) => panic!("capsule from a truncated stream: {c:?}"),
            Ok(None) => false,
            Err(e) => {
                err = Some(e);
                true
            }
        }
    });
    assert_eq!(err.unwrap().code, H3ErrorCode::H3_DATAGRAM_ERROR);
    x.run(Duration::from_secs(5), |x| {
        let conn = x.p.client.connection(x.p.client_conn).unwrap();
        let _ = x.client.recv_body(conn, id, usize::MAX);
        x.client_events.iter().any(|e| matches!(e, H3Event::Reset { stream, code } if *stream == id && *code == H3ErrorCode::H3_DATAGRAM_ERROR.0))
            || matches!(conn.read_chunk(id, 1), Err(StreamReadError::Reset(c)) if c == H3ErrorCode::H3_DATAGRAM_ERROR.0)
    });
    assert!(x.server_err.is_none(), "a stream error only");
}

#[test]
fn datagram_before_its_request_is_buffered_briefly() {
    // RFC 9297 §2.1: a datagram for a stream not created yet may be dropped
    // or buffered about a round trip. We buffer (bounded, see H3Connection):
    // send the datagram for stream 0 one link delay before the request.
    let mut x = X::ready(15);
    assert!(x.cconn().send_datagram(Bytes::from_static(b"\x00early bird")));
    x.run_for(Duration::from_millis(12));
    assert!(!x.server_events.iter().any(|e| matches!(e, H3Event::Datagram { .. })), "no stream yet, nothing delivered");
    let id = x.send_request(&ext_connect("webtransport"), false).unwrap();
    assert_eq!(id, StreamId(0));
    let mut order = Vec::new();
    x.run(Duration::from_secs(5), |x| {
        for e in x.server_events.drain(..) {
            match e {
                H3Event::Headers { stream, .. } => order.push(format!("headers {}", stream.0)),
                H3Event::Datagram { stream, payload } => order.push(format!("datagram {} {}", stream.0, String::from_utf8_lossy(&payload))),
                _ => {}
            }
        }
        order.len() == 2
    });
    assert_eq!(order, ["headers 0", "datagram 0 early bird"]);
    assert_eq!(x.server.datagrams_dropped(), 0);

    // Far older than a round trip when the request comes: dropped.
    assert!(x.cconn().send_datagram(Bytes::from_static(b"\x01stale")));
    x.run_for(Duration::from_millis(500));
    let id = x.send_request(&ext_connect("webtransport"), false).unwrap();
    assert_eq!(id, StreamId(4));
    x.run(Duration::from_secs(5), |x| x.server_events.iter().any(|e| matches!(e, H3Event::Headers { stream, .. } if *stream == id)));
    x.run_for(Duration::from_millis(100));
    assert!(!x.server_events.iter().any(|e| matches!(e, H3Event::Datagram { .. })), "stale datagram delivered");
    assert_eq!(x.server.datagrams_dropped(), 1);

    // For a stream that was closed: dropped silently (it may be reordered).
    let sconn = x.p.server.connection(x.p.server_conn.unwrap()).unwrap();
    x.server.cancel(sconn, id, H3ErrorCode::H3_REQUEST_CANCELLED);
    assert!(x.cconn().send_datagram(Bytes::from_static(b"\x01after close")));
    x.run_for(Duration::from_millis(100));
    assert_eq!(x.server.datagrams_dropped(), 2);
    assert!(x.server_err.is_none());
}
