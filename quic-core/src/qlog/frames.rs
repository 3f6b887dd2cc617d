//! QUIC frames, headers and addresses in qlog form (quic-events §9.13).

use core::borrow::Borrow;
use std::net::SocketAddr;

use super::json::*;
use super::*;
use crate::error::TransportErrorCode;
use crate::frame::{Frame, StreamDir};
use crate::version::Version;

/// Writes `key: <error>` for a transport error: its name, a
/// `crypto_error_0x1NN` string (quic-events §9.13.3), or "unknown" with the
/// code in `code_key`.
pub(super) fn write_transport_error(j: &mut Json, key: &str, code_key: &str, code: TransportErrorCode) {
    if let Some(alert) = code.tls_alert() {
        j.key(key);
        j.str_fmt(format_args!("crypto_error_0x1{alert:02x}"));
    } else if let Some(name) = code.snake_name() {
        j.f_str(key, name);
    } else {
        j.f_str(key, "unknown");
        j.f_u64(code_key, code.0);
    }
}

/// A CONNECTION_CLOSE reason phrase is bytes (RFC 9000 §19.19): text when
/// it is UTF-8, hex otherwise (quic-events §9.13.20).
pub(super) fn write_reason(j: &mut Json, reason: &[u8]) {
    match core::str::from_utf8(reason) {
        Ok(text) => j.f_str("reason", text),
        Err(_) => j.f_hex("reason_bytes", reason),
    }
}

pub(super) fn stream_type(dir: StreamDir) -> &'static str {
    match dir {
        StreamDir::Bidi => "bidirectional",
        StreamDir::Uni => "unidirectional",
    }
}

/// `raw: {length}` with the frame's own Length field (quic-events §9.13.7,
/// §9.13.9, §9.13.23 ask for it there).
pub(super) fn raw_length(j: &mut Json, len: usize) {
    j.begin_object_field("raw");
    j.f_u64("length", len as u64);
    j.end_object();
}

/// One frame in qlog form (quic-events §9.13). `ack_delay_exponent` scales
/// ACK Delay to milliseconds: the sender's exponent applies (ours for ACKs
/// we send, the peer's for ACKs we receive; RFC 9000 §19.3).
pub(super) fn write_frame(j: &mut Json, frame: &Frame<'_>, ack_delay_exponent: u8) {
    j.begin_object();
    match *frame {
        Frame::Padding { len } => {
            // §9.13.1: one entry for the run, its size in raw.payload_length.
            j.f_str("frame_type", "padding");
            j.begin_object_field("raw");
            j.f_u64("length", len as u64);
            j.f_u64("payload_length", len as u64);
            j.end_object();
        }
        Frame::Ping => j.f_str("frame_type", "ping"),
        Frame::Ack(ack) => {
            j.f_str("frame_type", "ack");
            // RFC 9000 §19.3: ACK Delay is in units of 2^exponent µs.
            let shift = u32::from(ack_delay_exponent.min(MAX_ACK_DELAY_EXPONENT));
            let micros = ack.ack_delay().saturating_mul(1u64 << shift);
            j.f_f64("ack_delay", micros as f64 / 1000.0);
            j.begin_array_field("acked_ranges");
            for range in ack.iter() {
                // §9.13.3: [n] for a single packet, [from, to] otherwise.
                j.begin_array();
                j.u64(*range.start());
                if range.end() != range.start() {
                    j.u64(*range.end());
                }
                j.end_array();
            }
            j.end_array();
            if let Some(ecn) = ack.ecn() {
                j.f_u64("ect1", ecn.ect1);
                j.f_u64("ect0", ecn.ect0);
                j.f_u64("ce", ecn.ce);
            }
        }
        Frame::ResetStream { id, error_code, final_size } => {
            j.f_str("frame_type", "reset_stream");
            j.f_u64("stream_id", id);
            // Application error codes mean nothing at this layer.
            j.f_str("error", "unknown");
            j.f_u64("error_code", error_code);
            j.f_u64("final_size", final_size);
        }
        Frame::StopSending { id, error_code } => {
            j.f_str("frame_type", "stop_sending");
            j.f_u64("stream_id", id);
            j.f_str("error", "unknown");
            j.f_u64("error_code", error_code);
        }
        Frame::Crypto { offset, data } => {
            j.f_str("frame_type", "crypto");
            j.f_u64("offset", offset);
            raw_length(j, data.len());
        }
        Frame::NewToken { token } => {
            j.f_str("frame_type", "new_token");
            j.begin_object_field("token");
            j.begin_object_field("raw");
            j.f_u64("length", token.len() as u64);
            j.f_hex("data", token);
            j.end_object();
            j.end_object();
        }
        Frame::Stream { id, offset, fin, data } => {
            j.f_str("frame_type", "stream");
            j.f_u64("stream_id", id);
            j.f_u64("offset", offset);
            j.f_bool("fin", fin);
            raw_length(j, data.len());
        }
        Frame::MaxData { max } => {
            j.f_str("frame_type", "max_data");
            j.f_u64("maximum", max);
        }
        Frame::MaxStreamData { id, max } => {
            j.f_str("frame_type", "max_stream_data");
            j.f_u64("stream_id", id);
            j.f_u64("maximum", max);
        }
        Frame::MaxStreams { dir, max } => {
            j.f_str("frame_type", "max_streams");
            j.f_str("stream_type", stream_type(dir));
            j.f_u64("maximum", max);
        }
        Frame::DataBlocked { limit } => {
            j.f_str("frame_type", "data_blocked");
            j.f_u64("limit", limit);
        }
        Frame::StreamDataBlocked { id, limit } => {
            j.f_str("frame_type", "stream_data_blocked");
            j.f_u64("stream_id", id);
            j.f_u64("limit", limit);
        }
        Frame::StreamsBlocked { dir, limit } => {
            j.f_str("frame_type", "streams_blocked");
            j.f_str("stream_type", stream_type(dir));
            j.f_u64("limit", limit);
        }
        Frame::NewConnectionId { sequence, retire_prior_to, cid, reset_token } => {
            j.f_str("frame_type", "new_connection_id");
            j.f_u64("sequence_number", sequence);
            j.f_u64("retire_prior_to", retire_prior_to);
            j.f_u64("connection_id_length", cid.len() as u64);
            j.f_hex("connection_id", cid.as_slice());
            j.f_hex("stateless_reset_token", &reset_token.0);
        }
        Frame::RetireConnectionId { sequence } => {
            j.f_str("frame_type", "retire_connection_id");
            j.f_u64("sequence_number", sequence);
        }
        Frame::PathChallenge { data } => {
            j.f_str("frame_type", "path_challenge");
            j.f_hex("data", &data);
        }
        Frame::PathResponse { data } => {
            j.f_str("frame_type", "path_response");
            j.f_hex("data", &data);
        }
        Frame::ConnectionClose { error_code, frame_type, reason } => {
            j.f_str("frame_type", "connection_close");
            j.f_str("error_space", "transport");
            write_transport_error(j, "error", "error_code", error_code);
            write_reason(j, reason);
            j.f_u64("trigger_frame_type", frame_type);
        }
        Frame::ApplicationClose { error_code, reason } => {
            j.f_str("frame_type", "connection_close");
            j.f_str("error_space", "application");
            j.f_str("error", "unknown");
            j.f_u64("error_code", error_code);
            write_reason(j, reason);
        }
        Frame::HandshakeDone => j.f_str("frame_type", "handshake_done"),
        Frame::Datagram { data } => {
            j.f_str("frame_type", "datagram");
            raw_length(j, data.len());
        }
    }
    j.end_object();
}

pub(super) fn write_frames<'f, I>(j: &mut Json, key: &str, frames: I, ack_delay_exponent: u8)
where
    I: IntoIterator,
    I::Item: Borrow<Frame<'f>>,
{
    j.begin_array_field(key);
    for frame in frames {
        write_frame(j, frame.borrow(), ack_delay_exponent);
    }
    j.end_array();
}

pub(super) fn write_header(j: &mut Json, h: &PacketHeader<'_>) {
    j.begin_object_field("header");
    j.f_str("packet_type", h.packet_type.as_str());
    j.o_bool("spin_bit", h.spin_bit);
    j.o_u64("key_phase", h.key_phase);
    j.o_bool("key_phase_bit", h.key_phase_bit);
    j.o_u64("packet_number_length", h.packet_number_length.map(u64::from));
    j.o_u64("packet_number", h.packet_number);
    if let Some(token) = h.token {
        j.begin_object_field("token");
        j.begin_object_field("raw");
        j.f_u64("length", token.len() as u64);
        j.f_hex("data", token);
        j.end_object();
        j.end_object();
    }
    j.o_u64("length", h.length);
    if let Some(v) = h.version {
        write_version(j, "version", v);
    }
    if let Some(scid) = h.scid {
        j.f_u64("scil", scid.len() as u64);
        j.f_hex("scid", scid);
    }
    if let Some(dcid) = h.dcid {
        j.f_u64("dcil", dcid.len() as u64);
        j.f_hex("dcid", dcid);
    }
    j.end_object();
}

/// quic-events §9.1: a version is a hexstring; the four bytes, big-endian.
pub(super) fn write_version(j: &mut Json, key: &str, v: Version) {
    j.f_hex(key, &v.0.to_be_bytes());
}

pub(super) fn write_raw(j: &mut Json, raw: &RawInfo) {
    if raw.is_empty() {
        return;
    }
    j.begin_object_field("raw");
    j.o_u64("length", raw.length);
    j.o_u64("payload_length", raw.payload_length);
    j.end_object();
}

pub(super) fn write_tuple_endpoint(j: &mut Json, key: &str, ep: &TupleEndpoint<'_>) {
    j.begin_object_field(key);
    match ep.addr {
        Some(SocketAddr::V4(a)) => {
            j.key("ip_v4");
            j.str_fmt(format_args!("{}", a.ip()));
            j.f_u64("port_v4", u64::from(a.port()));
        }
        Some(SocketAddr::V6(a)) => {
            j.key("ip_v6");
            j.str_fmt(format_args!("{}", a.ip()));
            j.f_u64("port_v6", u64::from(a.port()));
        }
        None => {}
    }
    if !ep.connection_ids.is_empty() {
        j.begin_array_field("connection_ids");
        for cid in ep.connection_ids {
            j.hex(cid.as_slice());
        }
        j.end_array();
    }
    j.end_object();
}

/// quic-events §5.2 `ALPNIdentifier`: the bytes, and the text when UTF-8.
pub(super) fn write_alpn(j: &mut Json, alpn: &[u8]) {
    j.begin_object();
    j.f_hex("byte_value", alpn);
    if let Ok(text) = core::str::from_utf8(alpn) {
        j.f_str("string_value", text);
    }
    j.end_object();
}
