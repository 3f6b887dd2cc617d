#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use super::json::*;
use super::*;
use std::io;

use crate::cid::ConnectionId;
use crate::cid::ResetToken;
use crate::codec::{Reader, Writer};
use crate::error::TransportErrorCode;
use crate::frame::{AckFrame, EcnCounts, FrameIter};
use crate::frame::{Frame, StreamDir};
use crate::packet::{LongType, PacketType as WirePacketType};
use crate::transport_params::{PreferredAddress, TransportParameters};
use crate::version::Version;
use std::time::{Duration, Instant};

/// A `Vec<u8>` sink the test can read while the writer owns a handle.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }

    /// Splits the JSON-SEQ stream, checking RFC 7464 framing, and parses
    /// every record.
    fn records(&self) -> Vec<Value> {
        let bytes = self.bytes();
        assert_eq!(bytes.first(), Some(&RECORD_SEPARATOR), "stream starts with RS");
        let mut parts = bytes.split(|&b| b == RECORD_SEPARATOR);
        assert_eq!(parts.next(), Some(&[][..]));
        parts
            .map(|rec| {
                assert_eq!(rec.last(), Some(&b'\n'), "record ends with LF");
                // One line per record: raw control characters are escaped.
                assert!(!rec[..rec.len() - 1].contains(&b'\n'));
                serde_json::from_slice(rec).unwrap()
            })
            .collect()
    }
}

fn writer(vp: VantagePointType) -> (QlogWriter, Shared, Instant) {
    let sink = Shared::default();
    let t0 = Instant::now();
    let w = QlogWriter::new(Box::new(sink.clone()), t0, &TraceInfo::new(vp));
    (w, sink, t0)
}

const MS: Duration = Duration::from_millis(1);

/// An ACK frame of `ranges` (highest first), decoded from its encoding
/// into `buf`.
fn ack<'b>(buf: &'b mut [u8], ranges: &[core::ops::RangeInclusive<u64>], delay: u64, ecn: Option<EcnCounts>) -> Frame<'b> {
    let mut w = Writer::new(buf);
    AckFrame::encode_from_ranges(&mut w, ranges.iter().cloned(), delay, ecn).unwrap();
    let n = w.len();
    Frame::decode(&mut Reader::new(&buf[..n])).unwrap()
}

#[test]
fn header_record_follows_the_main_schema() {
    let sink = Shared::default();
    let info = TraceInfo {
        vantage_point_name: Some("quicpro server"),
        title: Some("t"),
        group_id: Some("8394c8f03e515708"),
        wall_clock_time: Some("2026-01-02T03:04:05.000Z"),
        extra_event_schemas: &["urn:ietf:params:qlog:events:http3-13"],
        ..TraceInfo::new(VantagePointType::Server)
    };
    let w = QlogWriter::new(Box::new(sink.clone()), Instant::now(), &info);
    assert!(w.is_healthy());
    let bytes = sink.bytes();
    // Main schema §4: file_schema and serialization_format early on.
    let head = String::from_utf8_lossy(&bytes[..256.min(bytes.len())]).into_owned();
    assert!(head.contains(FILE_SCHEMA) && head.contains(SERIALIZATION_FORMAT), "{head}");
    let recs = sink.records();
    assert_eq!(recs.len(), 1);
    assert_eq!(
        recs[0],
        json!({
            "file_schema": "urn:ietf:params:qlog:file:sequential",
            "serialization_format": "application/qlog+json-seq",
            "title": "t",
            "trace": {
                "common_fields": {
                    "group_id": "8394c8f03e515708",
                    "time_format": "relative_to_epoch",
                    "reference_time": {
                        "clock_type": "monotonic",
                        "epoch": "unknown",
                        "wall_clock_time": "2026-01-02T03:04:05.000Z"
                    }
                },
                "vantage_point": {"name": "quicpro server", "type": "server"},
                "event_schemas": [
                    "urn:ietf:params:qlog:events:quic-13",
                    "urn:ietf:params:qlog:events:http3-13"
                ]
            }
        })
    );
    assert_eq!(w.events_written(), 0);

    let (_, sink, _) = writer(VantagePointType::Client);
    let rec = &sink.records()[0];
    assert_eq!(rec["trace"]["vantage_point"], json!({"type": "client"}));
    assert!(rec.get("title").is_none());
    assert!(rec["trace"]["common_fields"].get("group_id").is_none());
}

#[test]
fn a_handshake_trace_parses_with_names_times_and_fields() {
    let (mut w, sink, t0) = writer(VantagePointType::Client);
    let dcid = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];
    let scid = [0xaa, 0xbb];

    w.version_information(t0, &[], &[Version::V1, Version::V2], Some(Version::V1));
    w.alpn_information(t0, None, Some(&[b"h3", b"\xff\x00"]), None);
    w.connection_started(
        t0,
        &TupleEndpoint { addr: Some("10.0.0.1:4433".parse().unwrap()), connection_ids: &[ConnectionId::new(&scid).unwrap()] },
        &TupleEndpoint { addr: Some("[2001:db8::1]:443".parse().unwrap()), connection_ids: &[] },
    );
    w.connection_state_updated(t0, None, ConnectionState::Attempted);

    let crypto_data = [0u8; 300];
    let header = PacketHeader { length: Some(1162), token: Some(&[]), ..PacketHeader::long(PacketType::Initial, Version::V1, &dcid, &scid, 0) };
    let mut sent = PacketEvent::new(header);
    sent.raw = RawInfo { length: Some(1200), payload_length: Some(1160) };
    sent.datagram_id = Some(7);
    w.packet_sent(t0 + MS / 2, &sent, &[Frame::Crypto { offset: 0, data: &crypto_data }, Frame::Padding { len: 840 }]);

    let mut ack_buf = [0u8; 64];
    let ack_frame = ack(&mut ack_buf, &[8..=10, 2..=2], 1000, None);
    let cid = ConnectionId::new(&[1, 2, 3, 4]).unwrap();
    let frames = [
        ack_frame,
        Frame::Stream { id: 4, offset: 10, fin: true, data: b"hello" },
        Frame::MaxData { max: 1 << 20 },
        Frame::MaxStreams { dir: StreamDir::Uni, max: 100 },
        Frame::NewConnectionId { sequence: 2, retire_prior_to: 1, cid, reset_token: ResetToken([0x11; 16]) },
        Frame::PathChallenge { data: [1, 2, 3, 4, 5, 6, 7, 8] },
        Frame::ResetStream { id: 8, error_code: 0x10c, final_size: 99 },
        Frame::HandshakeDone,
        Frame::Datagram { data: &[9; 12] },
        Frame::Ping,
    ];
    let mut rx = PacketEvent::new(PacketHeader { key_phase_bit: Some(false), ..PacketHeader::short(&scid, 1_000_000) });
    rx.raw = RawInfo::length(1252);
    w.packet_received(t0 + 21 * MS + Duration::from_micros(18), &rx, frames.iter());

    w.key_updated(t0 + 22 * MS, KeyType::Client1RttSecret, Some(1), Some(KeyUpdateTrigger::LocalUpdate));
    w.recovery_metrics_updated(
        t0 + 22 * MS,
        &RecoveryMetrics { smoothed_rtt: Some(Duration::from_micros(21_018)), congestion_window: Some(12_000), ..Default::default() },
    );
    w.congestion_state_updated(t0 + 23 * MS, Some("slow_start"), "recovery", Some("loss"));
    w.packet_lost(t0 + 24 * MS, &PacketHeader::short(&dcid, 5), core::iter::empty::<Frame<'_>>(), Some(PacketLostTrigger::TimeThreshold));
    w.packet_dropped(
        t0 + 25 * MS,
        Some(&PacketHeader::new(PacketType::Handshake)),
        RawInfo::length(50),
        None,
        Some(PacketDroppedTrigger::KeyUnavailable),
        Some("no handshake keys"),
    );
    w.connection_closed(
        t0 + 30 * MS,
        &ConnectionClosed {
            initiator: Some(Initiator::Local),
            error: Some(CloseError::Transport(TransportErrorCode::PROTOCOL_VIOLATION)),
            reason: Some("bad frame"),
            trigger: Some(CloseTrigger::Error),
            ..Default::default()
        },
    );
    assert_eq!(w.events_written(), 12);
    assert_eq!(w.failed_writes(), 0);

    let recs = sink.records();
    assert_eq!(recs.len(), 13);
    let events = &recs[1..];
    let names: Vec<&str> = events.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "quic:version_information",
            "quic:alpn_information",
            "quic:connection_started",
            "quic:connection_state_updated",
            "quic:packet_sent",
            "quic:packet_received",
            "quic:key_updated",
            "quic:recovery_metrics_updated",
            "quic:congestion_state_updated",
            "quic:packet_lost",
            "quic:packet_dropped",
            "quic:connection_closed",
        ]
    );
    let times: Vec<f64> = events.iter().map(|e| e["time"].as_f64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert_eq!(times[0], 0.0);
    assert_eq!(times[4], 0.5);
    assert_eq!(times[5], 21.018);
    assert_eq!(times[11], 30.0);
    for e in events {
        assert_eq!(e.as_object().unwrap().len(), 3, "time, name, data only: {e}");
        assert!(e["data"].is_object());
    }

    assert_eq!(events[0]["data"], json!({"client_versions": ["00000001", "6b3343cf"], "chosen_version": "00000001"}));
    assert_eq!(events[1]["data"], json!({"client_alpns": [{"byte_value": "6833", "string_value": "h3"}, {"byte_value": "ff00"}]}));
    assert_eq!(
        events[2]["data"],
        json!({
            "local": {"ip_v4": "10.0.0.1", "port_v4": 4433, "connection_ids": ["aabb"]},
            "remote": {"ip_v6": "2001:db8::1", "port_v6": 443}
        })
    );
    assert_eq!(events[3]["data"], json!({"new": "attempted"}));

    // packet_sent: header fields, frames, raw, datagram_id.
    let d = &events[4]["data"];
    assert_eq!(
        d["header"],
        json!({
            "packet_type": "initial",
            "packet_number": 0,
            "token": {"raw": {"length": 0, "data": ""}},
            "length": 1162,
            "version": "00000001",
            "scil": 2,
            "scid": "aabb",
            "dcil": 8,
            "dcid": "8394c8f03e515708"
        })
    );
    assert_eq!(
        d["frames"],
        json!([
            {"frame_type": "crypto", "offset": 0, "raw": {"length": 300}},
            {"frame_type": "padding", "raw": {"length": 840, "payload_length": 840}}
        ])
    );
    assert_eq!(d["raw"], json!({"length": 1200, "payload_length": 1160}));
    assert_eq!(d["datagram_id"], 7);

    // packet_received: every frame kind in qlog form.
    let d = &events[5]["data"];
    assert_eq!(d["header"], json!({"packet_type": "1RTT", "key_phase_bit": false, "packet_number": 1_000_000, "dcil": 2, "dcid": "aabb"}));
    assert_eq!(d["raw"], json!({"length": 1252}));
    let f = d["frames"].as_array().unwrap();
    assert_eq!(f.len(), frames.len());
    // ACK Delay 1000 with the default exponent 3: 8000 µs.
    assert_eq!(f[0], json!({"frame_type": "ack", "ack_delay": 8.0, "acked_ranges": [[8, 10], [2]]}));
    assert_eq!(f[1], json!({"frame_type": "stream", "stream_id": 4, "offset": 10, "fin": true, "raw": {"length": 5}}));
    assert_eq!(f[2], json!({"frame_type": "max_data", "maximum": 1048576}));
    assert_eq!(f[3], json!({"frame_type": "max_streams", "stream_type": "unidirectional", "maximum": 100}));
    assert_eq!(
        f[4],
        json!({
            "frame_type": "new_connection_id",
            "sequence_number": 2,
            "retire_prior_to": 1,
            "connection_id_length": 4,
            "connection_id": "01020304",
            "stateless_reset_token": "11111111111111111111111111111111"
        })
    );
    assert_eq!(f[5], json!({"frame_type": "path_challenge", "data": "0102030405060708"}));
    assert_eq!(f[6], json!({"frame_type": "reset_stream", "stream_id": 8, "error": "unknown", "error_code": 0x10c, "final_size": 99}));
    assert_eq!(f[7], json!({"frame_type": "handshake_done"}));
    assert_eq!(f[8], json!({"frame_type": "datagram", "raw": {"length": 12}}));
    assert_eq!(f[9], json!({"frame_type": "ping"}));

    assert_eq!(events[6]["data"], json!({"key_type": "client_1rtt_secret", "key_phase": 1, "trigger": "local_update"}));
    assert_eq!(events[7]["data"], json!({"smoothed_rtt": 21.018, "congestion_window": 12000}));
    assert_eq!(events[8]["data"], json!({"old": "slow_start", "new": "recovery", "trigger": "loss"}));
    assert_eq!(
        events[9]["data"],
        json!({"header": {"packet_type": "1RTT", "packet_number": 5, "dcil": 8, "dcid": "8394c8f03e515708"}, "trigger": "time_threshold"})
    );
    assert_eq!(
        events[10]["data"],
        json!({
            "header": {"packet_type": "handshake"},
            "raw": {"length": 50},
            "details": {"reason": "no handshake keys"},
            "trigger": "key_unavailable"
        })
    );
    assert_eq!(events[11]["data"], json!({"initiator": "local", "connection_error": "protocol_violation", "reason": "bad frame", "trigger": "error"}));
}

#[test]
fn frames_from_a_parsed_payload_can_be_logged_directly() {
    let (mut w, sink, t0) = writer(VantagePointType::Server);
    // PING, PADDING x3, MAX_STREAM_DATA(id 4, max 1000), STREAMS_BLOCKED bidi 7,
    // RETIRE_CONNECTION_ID 3, DATA_BLOCKED 5, STREAM_DATA_BLOCKED(0, 6).
    let payload = [0x01, 0x00, 0x00, 0x00, 0x11, 0x04, 0x43, 0xe8, 0x16, 0x07, 0x19, 0x03, 0x14, 0x05, 0x15, 0x00, 0x06];
    let frames = FrameIter::new(&payload).map_while(Result::ok);
    w.packet_received(t0, &PacketEvent::new(PacketHeader::short(&[], 3)), frames);
    let recs = sink.records();
    assert_eq!(
        recs[1]["data"]["frames"],
        json!([
            {"frame_type": "ping"},
            {"frame_type": "padding", "raw": {"length": 3, "payload_length": 3}},
            {"frame_type": "max_stream_data", "stream_id": 4, "maximum": 1000},
            {"frame_type": "streams_blocked", "stream_type": "bidirectional", "limit": 7},
            {"frame_type": "retire_connection_id", "sequence_number": 3},
            {"frame_type": "data_blocked", "limit": 5},
            {"frame_type": "stream_data_blocked", "stream_id": 0, "limit": 6}
        ])
    );
    // An empty DCID is logged as an empty hexstring.
    assert_eq!(recs[1]["data"]["header"]["dcid"], "");
}

#[test]
fn escaping_handles_quotes_backslashes_and_control_characters() {
    let (mut w, sink, t0) = writer(VantagePointType::Client);
    let nasty = "he said \"no\"\\ \n\r\t\u{8}\u{c}\u{0}\u{1e}\u{1f} é ✓ \u{7f}";
    w.packet_sent(
        t0,
        &PacketEvent::new(PacketHeader::short(&[1], 0)),
        &[Frame::ConnectionClose { error_code: TransportErrorCode::INTERNAL_ERROR, frame_type: 0x08, reason: nasty.as_bytes() }],
    );
    w.connection_closed(t0, &ConnectionClosed { reason: Some(nasty), ..Default::default() });
    w.custom_event(t0, "quicpro:note", |d| {
        d.str("text\"key", nasty);
    });
    let text = String::from_utf8(sink.bytes()).unwrap();
    assert!(text.contains(r#"he said \"no\"\\ \n\r\t\b\f\u0000\u001e\u001f é ✓"#), "{text}");
    // The only RS bytes are the record separators (header + 3 events).
    assert_eq!(sink.bytes().iter().filter(|&&b| b == RECORD_SEPARATOR).count(), 4);
    let recs = sink.records();
    let close = &recs[1]["data"]["frames"][0];
    assert_eq!(close["reason"], nasty);
    assert_eq!(close["error"], "internal_error");
    assert_eq!(close["error_space"], "transport");
    assert_eq!(close["trigger_frame_type"], 8);
    assert_eq!(recs[2]["data"]["reason"], nasty);
    assert_eq!(recs[3]["data"]["text\"key"], nasty);
}

#[test]
fn error_codes_map_to_qlog_strings() {
    let (mut w, sink, t0) = writer(VantagePointType::Client);
    let frames = [
        Frame::ConnectionClose { error_code: TransportErrorCode::crypto(0x28), frame_type: 6, reason: b"" },
        Frame::ConnectionClose { error_code: TransportErrorCode(0x1234), frame_type: 0, reason: b"\xff\xfe" },
        Frame::ConnectionClose { error_code: TransportErrorCode::NO_VIABLE_PATH, frame_type: 0, reason: b"x" },
        Frame::ApplicationClose { error_code: 0x100, reason: b"H3_NO_ERROR" },
    ];
    w.packet_sent(t0, &PacketEvent::new(PacketHeader::short(&[], 1)), &frames);
    w.connection_closed(t0, &ConnectionClosed { error: Some(CloseError::Transport(TransportErrorCode::crypto(0x2a))), ..Default::default() });
    w.connection_closed(t0, &ConnectionClosed { error: Some(CloseError::Transport(TransportErrorCode(0x99))), ..Default::default() });
    w.connection_closed(
        t0,
        &ConnectionClosed {
            initiator: Some(Initiator::Remote),
            error: Some(CloseError::Application(0x10c)),
            trigger: Some(CloseTrigger::Application),
            ..Default::default()
        },
    );
    w.connection_closed(t0, &ConnectionClosed { trigger: Some(CloseTrigger::IdleTimeout), ..Default::default() });
    let recs = sink.records();
    let f = &recs[1]["data"]["frames"];
    assert_eq!(
        f[0],
        json!({"frame_type": "connection_close", "error_space": "transport", "error": "crypto_error_0x128", "reason": "", "trigger_frame_type": 6})
    );
    assert_eq!(
        f[1],
        json!({"frame_type": "connection_close", "error_space": "transport", "error": "unknown", "error_code": 0x1234, "reason_bytes": "fffe", "trigger_frame_type": 0})
    );
    assert_eq!(f[2]["error"], "no_viable_path");
    assert_eq!(f[3], json!({"frame_type": "connection_close", "error_space": "application", "error": "unknown", "error_code": 256, "reason": "H3_NO_ERROR"}));
    assert_eq!(recs[2]["data"], json!({"connection_error": "crypto_error_0x12a"}));
    assert_eq!(recs[3]["data"], json!({"connection_error": "unknown", "error_code": 0x99}));
    assert_eq!(recs[4]["data"], json!({"initiator": "remote", "application_error": "unknown", "error_code": 0x10c, "trigger": "application"}));
    assert_eq!(recs[5]["data"], json!({"trigger": "idle_timeout"}));
}

#[test]
fn ack_delay_uses_the_senders_exponent() {
    let (mut w, sink, t0) = writer(VantagePointType::Client);
    let mut tp = TransportParameters { ack_delay_exponent: 10, ..Default::default() };
    w.parameters_set(t0, &ParametersSet::from_transport_parameters(Initiator::Remote, &tp));
    tp.ack_delay_exponent = 0;
    w.parameters_set(t0, &ParametersSet::from_transport_parameters(Initiator::Local, &tp));
    assert_eq!(w.ack_delay_exponents(), (0, 10));

    let mut buf = [0u8; 64];
    let ecn = EcnCounts { ect0: 5, ect1: 1, ce: 2 };
    let a = ack(&mut buf, &[3..=3], 500, Some(ecn));
    let header = PacketHeader::short(&[], 9);
    w.packet_received(t0, &PacketEvent::new(header), [a]);
    w.packet_sent(t0, &PacketEvent::new(header), [a]);
    w.custom_event(t0, "quic:frames_processed", |d| {
        d.set_ack_delay_exponent(1).frames("frames", [a]).u64_array("packet_numbers", &[9]);
    });
    let recs = sink.records();
    assert_eq!(recs[1]["data"]["ack_delay_exponent"], 10);
    assert_eq!(recs[1]["data"]["initiator"], "remote");
    // 500 * 2^10 µs = 512 ms received; 500 µs sent; 1 ms with exponent 1.
    assert_eq!(recs[3]["data"]["frames"][0], json!({"frame_type": "ack", "ack_delay": 512.0, "acked_ranges": [[3]], "ect1": 1, "ect0": 5, "ce": 2}));
    assert_eq!(recs[4]["data"]["frames"][0]["ack_delay"], 0.5);
    assert_eq!(
        recs[5]["data"],
        json!({"frames": [{"frame_type": "ack", "ack_delay": 1.0, "acked_ranges": [[3]], "ect1": 1, "ect0": 5, "ce": 2}], "packet_numbers": [9]})
    );
}

#[test]
fn parameters_set_writes_transport_parameters() {
    let (mut w, sink, t0) = writer(VantagePointType::Server);
    let tp = TransportParameters {
        original_destination_connection_id: Some(ConnectionId::new(&[0xde, 0xad]).unwrap()),
        initial_source_connection_id: Some(ConnectionId::new(&[0x01]).unwrap()),
        stateless_reset_token: Some(ResetToken([0xab; 16])),
        max_idle_timeout: 30_000,
        initial_max_data: 1 << 20,
        initial_max_streams_bidi: 100,
        max_datagram_frame_size: Some(1200),
        preferred_address: Some(PreferredAddress {
            ipv4: "192.0.2.1:443".parse().unwrap(),
            ipv6: "[2001:db8::2]:443".parse().unwrap(),
            connection_id: ConnectionId::new(&[7; 8]).unwrap(),
            stateless_reset_token: ResetToken([0xcd; 16]),
        }),
        ..Default::default()
    };
    let mut p = ParametersSet::from_transport_parameters(Initiator::Local, &tp);
    p.tls_cipher = Some("AES_128_GCM_SHA256");
    w.parameters_set(t0, &p);
    let d = &sink.records()[1]["data"];
    assert_eq!(d["initiator"], "local");
    assert_eq!(d["tls_cipher"], "AES_128_GCM_SHA256");
    assert_eq!(d["original_destination_connection_id"], "dead");
    assert_eq!(d["initial_source_connection_id"], "01");
    assert!(d.get("retry_source_connection_id").is_none());
    assert_eq!(d["stateless_reset_token"], "ab".repeat(16));
    assert_eq!(d["max_idle_timeout"], 30_000);
    assert_eq!(d["max_udp_payload_size"], tp.max_udp_payload_size);
    assert_eq!(d["ack_delay_exponent"], 3);
    assert_eq!(d["max_ack_delay"], 25);
    assert_eq!(d["initial_max_data"], 1 << 20);
    assert_eq!(d["initial_max_streams_bidi"], 100);
    assert_eq!(d["disable_active_migration"], false);
    assert_eq!(d["max_datagram_frame_size"], 1200);
    assert_eq!(d["grease_quic_bit"], false);
    assert_eq!(
        d["preferred_address"],
        json!({
            "ip_v4": "192.0.2.1", "port_v4": 443, "ip_v6": "2001:db8::2", "port_v6": 443,
            "connection_id": "0707070707070707", "stateless_reset_token": "cd".repeat(16)
        })
    );
}

#[test]
fn recovery_metrics_log_only_changes() {
    let (mut w, sink, t0) = writer(VantagePointType::Client);
    let mut m = RecoveryMetrics {
        min_rtt: Some(10 * MS),
        smoothed_rtt: Some(12 * MS),
        latest_rtt: Some(Duration::from_micros(11_500)),
        rtt_variance: Some(3 * MS),
        pto_count: Some(0),
        congestion_window: Some(14_720),
        bytes_in_flight: Some(0),
        ssthresh: Some(u64::MAX),
        packets_in_flight: Some(0),
        pacing_rate: Some(10_000_000),
    };
    w.recovery_metrics_updated(t0, &m);
    w.recovery_metrics_updated(t0 + MS, &m);
    m.congestion_window = Some(20_000);
    m.bytes_in_flight = Some(1200);
    w.recovery_metrics_updated(t0 + 2 * MS, &m);
    // Unknown (None) metrics are not changes.
    w.recovery_metrics_updated(t0 + 3 * MS, &RecoveryMetrics { congestion_window: Some(20_000), ..Default::default() });
    assert_eq!(w.events_written(), 2);
    let recs = sink.records();
    assert_eq!(
        recs[1]["data"],
        json!({
            "min_rtt": 10.0, "smoothed_rtt": 12.0, "latest_rtt": 11.5, "rtt_variance": 3.0,
            "pto_count": 0, "congestion_window": 14720, "bytes_in_flight": 0,
            "ssthresh": u64::MAX, "packets_in_flight": 0, "pacing_rate": 10_000_000
        })
    );
    assert_eq!(recs[2]["time"], 2.0);
    assert_eq!(recs[2]["data"], json!({"congestion_window": 20000, "bytes_in_flight": 1200}));

    w.recovery_parameters_set(
        t0 + 3 * MS,
        &RecoveryParameters {
            reordering_threshold: Some(3),
            time_threshold: Some(1.125),
            timer_granularity: MS,
            initial_rtt: Some(333 * MS),
            max_datagram_size: Some(1200),
            ..Default::default()
        },
    );
    assert_eq!(
        sink.records()[3]["data"],
        json!({"reordering_threshold": 3, "time_threshold": 1.125, "timer_granularity": 1, "initial_rtt": 333.0, "max_datagram_size": 1200})
    );
}

#[test]
fn times_are_relative_to_the_reference_instant() {
    let (mut w, sink, t0) = writer(VantagePointType::Client);
    w.connection_state_updated(t0 + Duration::from_nanos(1_500), None, ConnectionState::Attempted);
    w.connection_state_updated(t0 + Duration::from_secs(3600), Some(ConnectionState::HandshakeConfirmed), ConnectionState::Closing);
    // An instant before the reference cannot go negative.
    w.connection_id_updated(t0.checked_sub(MS).unwrap_or(t0), Initiator::Remote, Some(&[1]), Some(&[2, 3]));
    assert_eq!(w.reference_time(), t0);
    let recs = sink.records();
    assert_eq!(recs[1]["time"], 0.0015);
    assert_eq!(recs[2]["time"], 3_600_000.0);
    assert_eq!(recs[2]["data"], json!({"old": "handshake_confirmed", "new": "closing"}));
    assert_eq!(recs[3]["time"], 0.0);
    assert_eq!(recs[3]["data"], json!({"initiator": "remote", "old": "01", "new": "0203"}));
}

/// Accepts `ok` writes, then fails every write and flush.
struct Failing {
    ok: usize,
    writes: Arc<Mutex<usize>>,
}

impl io::Write for Failing {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut n = self.writes.lock().unwrap();
        *n += 1;
        if *n > self.ok {
            return Err(io::Error::other("disk full"));
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Err(io::Error::other("flush failed"))
    }
}

#[test]
fn sink_errors_are_swallowed_and_counted() {
    let writes = Arc::new(Mutex::new(0));
    let t0 = Instant::now();
    let sink = Failing { ok: 3, writes: writes.clone() };
    let mut w = QlogWriter::new(Box::new(sink), t0, &TraceInfo::new(VantagePointType::Client));
    for i in 0..10u32 {
        w.connection_state_updated(t0 + i * MS, None, ConnectionState::Attempted);
    }
    // Header + 2 events made it; the 3rd event failed; 7 more skipped.
    assert_eq!(w.events_written(), 2);
    assert_eq!(w.failed_writes(), 8);
    assert!(!w.is_healthy());
    assert_eq!(w.first_error().unwrap().to_string(), "disk full");
    // After the failure the sink is not touched again.
    assert_eq!(*writes.lock().unwrap(), 4);
    w.flush();
    assert_eq!(w.first_error().unwrap().to_string(), "disk full");
    drop(w);

    // A sink failing from the start: the header is the first failure.
    let writes = Arc::new(Mutex::new(0));
    let mut w = QlogWriter::new(Box::new(Failing { ok: 0, writes: writes.clone() }), t0, &TraceInfo::new(VantagePointType::Server));
    w.packet_sent(t0, &PacketEvent::new(PacketHeader::short(&[], 0)), &[Frame::Ping]);
    w.recovery_metrics_updated(t0, &RecoveryMetrics { pto_count: Some(1), ..Default::default() });
    assert_eq!((w.events_written(), w.failed_writes()), (0, 3));
    assert_eq!(*writes.lock().unwrap(), 1);

    // A healthy sink whose flush fails stops logging too, without panic.
    let writes = Arc::new(Mutex::new(0));
    let mut w = QlogWriter::new(Box::new(Failing { ok: 100, writes }), t0, &TraceInfo::new(VantagePointType::Server));
    w.flush();
    w.connection_state_updated(t0, None, ConnectionState::Closed);
    assert_eq!((w.events_written(), w.failed_writes()), (0, 1));
    assert_eq!(w.first_error().unwrap().to_string(), "flush failed");
}

#[test]
fn json_numbers_stay_valid() {
    let mut j = Json::default();
    j.begin_array();
    j.f64(f64::NAN);
    j.f64(f64::INFINITY);
    j.f64(1e300);
    j.f64(1e-9);
    j.u64(u64::MAX);
    j.f64(-0.25);
    j.f64(8.0);
    j.end_array();
    assert!(j.s.ends_with(",-0.25,8.0]"), "{}", j.s);
    let v: Value = serde_json::from_str(&j.s).unwrap();
    assert_eq!(v[0], Value::Null);
    assert_eq!(v[1], Value::Null);
    assert_eq!(v[2].as_f64(), Some(1e300));
    assert_eq!(v[3].as_f64(), Some(1e-9));
    assert_eq!(v[4].as_u64(), Some(u64::MAX));
    assert_eq!(v[5].as_f64(), Some(-0.25));
}

#[test]
fn packet_types_map_from_the_wire() {
    assert_eq!(PacketType::from(WirePacketType::Long(LongType::Initial)).as_str(), "initial");
    assert_eq!(PacketType::from(WirePacketType::Long(LongType::ZeroRtt)).as_str(), "0RTT");
    assert_eq!(PacketType::from(WirePacketType::Long(LongType::Handshake)).as_str(), "handshake");
    assert_eq!(PacketType::from(WirePacketType::Long(LongType::Retry)).as_str(), "retry");
    assert_eq!(PacketType::from(WirePacketType::Short).as_str(), "1RTT");
    assert_eq!(PacketType::from(WirePacketType::VersionNegotiation).as_str(), "version_negotiation");
    assert_eq!(PacketType::StatelessReset.as_str(), "stateless_reset");
}
