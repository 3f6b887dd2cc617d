//! RFC 9000 and RFC 9001 cases: stream states, flow control, stream and
//! connection ID limits, frame encoding and placement, reserved bits,
//! acknowledgements, TLS messages that must not appear.

use quic_core::connection::RawSpace;

use super::wire::*;
use super::{Case, Ctx, Expect, Phase, Step};

// RFC 9000 §20.1.
const FLOW_CONTROL_ERROR: u64 = 0x03;
const STREAM_LIMIT_ERROR: u64 = 0x04;
const STREAM_STATE_ERROR: u64 = 0x05;
const FINAL_SIZE_ERROR: u64 = 0x06;
const FRAME_ENCODING_ERROR: u64 = 0x07;
const CONNECTION_ID_LIMIT_ERROR: u64 = 0x09;
const PROTOCOL_VIOLATION: u64 = 0x0a;
const CRYPTO_BUFFER_EXCEEDED: u64 = 0x0d;
/// CRYPTO_ERROR carrying TLS alert unexpected_message (10), RFC 9001 §4.8.
const CRYPTO_UNEXPECTED_MESSAGE: u64 = 0x10a;

/// 2^60, the largest stream count (RFC 9000 §4.6).
const MAX_STREAM_COUNT: u64 = 1 << 60;
/// 2^62 - 1, the largest stream or CRYPTO offset (RFC 9000 §19.6, §19.8).
const MAX_OFFSET: u64 = (1 << 62) - 1;

/// One 1-RTT packet with `payload`, on a confirmed connection.
fn one_rtt(name: &'static str, section: &'static str, codes: &'static [u64], payload: impl Fn(&Ctx) -> Vec<u8> + Send + Sync + 'static) -> Case {
    Case::new(name, section, Phase::Confirmed, Expect::Transport(codes), move |ctx| vec![Step::one_rtt(payload(ctx))])
}

/// One packet of `space` with `payload`, in `phase`.
fn raw(name: &'static str, section: &'static str, phase: Phase, space: RawSpace, codes: &'static [u64], payload: Vec<u8>) -> Case {
    Case::new(name, section, phase, Expect::Transport(codes), move |_| vec![Step::Raw { space, payload: payload.clone(), reserved: 0 }])
}

fn params(ctx: &Ctx) -> quic_core::transport_params::TransportParameters {
    ctx.params.clone().unwrap_or_default()
}

pub fn cases() -> Vec<Case> {
    let ss = &[STREAM_STATE_ERROR][..];
    vec![
        // §3, §19.8: STREAM on the server's send-only stream, and on a
        // stream the server would initiate but has not.
        one_rtt("stream on the server's unidirectional stream", "RFC 9000 §19.8", ss, |_| stream(3, 0, b"x", false)),
        one_rtt("stream on an unopened server bidirectional stream", "RFC 9000 §19.8", ss, |_| stream(1, 0, b"x", false)),
        one_rtt("reset_stream on a send-only stream", "RFC 9000 §19.4", ss, |_| reset_stream(3, 0, 0)),
        one_rtt("stop_sending on a receive-only stream", "RFC 9000 §19.5", ss, |_| stop_sending(2, 0)),
        one_rtt("stop_sending on an unopened server stream", "RFC 9000 §19.5", ss, |_| stop_sending(1, 0)),
        one_rtt("max_stream_data on a receive-only stream", "RFC 9000 §19.10", ss, |_| max_stream_data(2, 1 << 20)),
        one_rtt("max_stream_data on an unopened server stream", "RFC 9000 §19.10", ss, |_| max_stream_data(1, 1 << 20)),
        one_rtt("max_stream_data on an unopened server unidirectional stream", "RFC 9000 §19.10", ss, |_| max_stream_data(403, 1 << 20)),
        one_rtt("stream_data_blocked on a send-only stream", "RFC 9000 §19.13", ss, |_| stream_data_blocked(3, 0)),
        // §4.5 final size.
        one_rtt("final size changed", "RFC 9000 §4.5", &[FINAL_SIZE_ERROR], |_| cat(&[&stream(0, 0, b"abcd", true), &stream(0, 0, b"abcdef", true)])),
        one_rtt("data beyond the final size", "RFC 9000 §4.5", &[FINAL_SIZE_ERROR], |_| cat(&[&stream(0, 0, b"abcd", true), &stream(0, 4, b"e", false)])),
        one_rtt("reset_stream below the data received", "RFC 9000 §4.5", &[FINAL_SIZE_ERROR], |_| {
            cat(&[&stream(0, 0, b"0123456789", false), &reset_stream(0, 0, 5)])
        }),
        // §4.1 flow control.
        one_rtt("stream data beyond the stream's window", "RFC 9000 §4.1", &[FLOW_CONTROL_ERROR], |ctx| {
            stream(0, params(ctx).initial_max_stream_data_bidi_remote, b"x", false)
        }),
        one_rtt("data beyond the connection's window", "RFC 9000 §4.1", &[FLOW_CONTROL_ERROR], |ctx| {
            // Each stream's highest offset counts toward the connection
            // total; enough streams, each filled to its window, pass it.
            let p = params(ctx);
            let per = p.initial_max_stream_data_bidi_remote.max(1);
            if per > p.initial_max_data {
                return stream(0, p.initial_max_data, b"x", false);
            }
            let n = p.initial_max_data / per + 1;
            (0..n.min(p.initial_max_streams_bidi)).flat_map(|i| stream(4 * i, per - 1, b"x", false)).collect()
        }),
        // §4.6 stream limits.
        one_rtt("bidirectional stream beyond the limit", "RFC 9000 §4.6", &[STREAM_LIMIT_ERROR], |ctx| {
            stream(4 * params(ctx).initial_max_streams_bidi, 0, b"x", false)
        }),
        one_rtt("unidirectional stream beyond the limit", "RFC 9000 §4.6", &[STREAM_LIMIT_ERROR], |ctx| {
            stream(4 * params(ctx).initial_max_streams_uni + 2, 0, b"x", false)
        }),
        one_rtt("max_streams above 2^60", "RFC 9000 §19.11", &[FRAME_ENCODING_ERROR], |_| cat(&[&[0x12], &vi(MAX_STREAM_COUNT + 1)])),
        one_rtt("streams_blocked above 2^60", "RFC 9000 §19.14", &[STREAM_LIMIT_ERROR, FRAME_ENCODING_ERROR], |_| cat(&[&[0x16], &vi(MAX_STREAM_COUNT + 1)])),
        // §19.15, §19.16, §5.1 connection IDs.
        one_rtt("new_connection_id retiring above its own sequence", "RFC 9000 §19.15", &[FRAME_ENCODING_ERROR], |_| {
            new_connection_id(5, 6, &[7; 8], [1; 16])
        }),
        one_rtt("new_connection_id of length 0", "RFC 9000 §19.15", &[FRAME_ENCODING_ERROR], |_| new_connection_id(5, 0, &[], [1; 16])),
        one_rtt("new_connection_id of length 21", "RFC 9000 §19.15", &[FRAME_ENCODING_ERROR], |_| new_connection_id(5, 0, &[7; 21], [1; 16])),
        one_rtt("more connection IDs than active_connection_id_limit", "RFC 9000 §5.1.1", &[CONNECTION_ID_LIMIT_ERROR], |ctx| {
            let limit = params(ctx).active_connection_id_limit.max(2);
            (0..=limit).flat_map(|i| new_connection_id(100 + i, 0, &[0x40 + i as u8; 8], [i as u8; 16])).collect()
        }),
        one_rtt("retire_connection_id of a sequence never issued", "RFC 9000 §19.16", &[PROTOCOL_VIOLATION], |_| cat(&[&[0x19], &vi(1000)])),
        // §19.7, §19.20: server-only frames from a client.
        one_rtt("new_token from a client", "RFC 9000 §19.7", &[PROTOCOL_VIOLATION], |_| cat(&[&[0x07, 0x04], b"tokn"])),
        one_rtt("handshake_done from a client", "RFC 9000 §19.20", &[PROTOCOL_VIOLATION], |_| vec![0x1e]),
        // §12.4, §19 frame encoding.
        one_rtt("unknown frame type", "RFC 9000 §12.4", &[FRAME_ENCODING_ERROR], |_| vec![0x3f, 0x00]),
        one_rtt("stream frame longer than the packet", "RFC 9000 §12.4", &[FRAME_ENCODING_ERROR], |_| cat(&[&[0x0e], &vi(0), &vi(0), &vi(100), b"abc"])),
        one_rtt("stream offset plus length above 2^62-1", "RFC 9000 §19.8", &[FRAME_ENCODING_ERROR, FLOW_CONTROL_ERROR], |_| {
            stream(0, MAX_OFFSET, b"xy", false)
        }),
        one_rtt("crypto offset plus length above 2^62-1", "RFC 9000 §19.6", &[FRAME_ENCODING_ERROR, CRYPTO_BUFFER_EXCEEDED], |_| crypto(MAX_OFFSET, b"xy")),
        one_rtt("path_challenge truncated", "RFC 9000 §19.17", &[FRAME_ENCODING_ERROR], |_| vec![0x1a, 1, 2, 3, 4]),
        one_rtt("max_data truncated", "RFC 9000 §19.9", &[FRAME_ENCODING_ERROR], |_| vec![0x10, 0x80, 0x01]),
        one_rtt("reset_stream truncated", "RFC 9000 §19.4", &[FRAME_ENCODING_ERROR], |_| vec![0x04, 0x00, 0x00]),
        // §19.3, §13.1 acknowledgements.
        one_rtt("ack of a packet never sent", "RFC 9000 §13.1", &[PROTOCOL_VIOLATION], |_| ack(1_000_000, 0)),
        one_rtt("ack range below packet 0", "RFC 9000 §19.3.1", &[FRAME_ENCODING_ERROR], |_| ack(5, 10)),
        one_rtt("ack gap below packet 0", "RFC 9000 §19.3.1", &[FRAME_ENCODING_ERROR], |_| cat(&[&[0x02], &vi(5), &vi(0), &vi(1), &vi(0), &vi(10), &vi(0)])),
        // §17 reserved bits, after header protection is removed.
        Case::new("reserved bits set in a short header", "RFC 9000 §17.3.1", Phase::Confirmed, Expect::Transport(&[PROTOCOL_VIOLATION]), |_| {
            vec![Step::Raw { space: RawSpace::OneRtt, payload: vec![0x01], reserved: 0b01 }]
        }),
        Case::new("reserved bits set in a long header", "RFC 9000 §17.2", Phase::HandshakeKeys, Expect::Transport(&[PROTOCOL_VIOLATION]), |_| {
            vec![Step::Raw { space: RawSpace::Handshake, payload: vec![0x01], reserved: 0b10 }]
        }),
        // §12.4 Table 3: frames outside the packet types that may carry them.
        raw("stream frame in an Initial packet", "RFC 9000 §12.4", Phase::Start, RawSpace::Initial, &[PROTOCOL_VIOLATION], stream(0, 0, b"x", false)),
        raw("max_data in an Initial packet", "RFC 9000 §12.4", Phase::Start, RawSpace::Initial, &[PROTOCOL_VIOLATION], vec![0x10, 0x10]),
        raw(
            "stream frame in a Handshake packet",
            "RFC 9000 §12.4",
            Phase::HandshakeKeys,
            RawSpace::Handshake,
            &[PROTOCOL_VIOLATION],
            stream(0, 0, b"x", false),
        ),
        raw("stop_sending in a Handshake packet", "RFC 9000 §12.4", Phase::HandshakeKeys, RawSpace::Handshake, &[PROTOCOL_VIOLATION], stop_sending(0, 0)),
        raw(
            "new_connection_id in a Handshake packet",
            "RFC 9000 §12.4",
            Phase::HandshakeKeys,
            RawSpace::Handshake,
            &[PROTOCOL_VIOLATION],
            new_connection_id(1, 0, &[9; 8], [2; 16]),
        ),
        // Packet number spaces (RFC 9000 §12.3): an ACK in the Initial
        // space of a number the server used only in another space, or not
        // at all, acknowledges a packet never sent.
        raw(
            "ack in Initial of a packet never sent in that space",
            "RFC 9000 §12.3",
            Phase::HandshakeKeys,
            RawSpace::Initial,
            &[PROTOCOL_VIOLATION],
            ack(50, 0),
        ),
        raw("handshake_done in a Handshake packet", "RFC 9000 §12.4", Phase::HandshakeKeys, RawSpace::Handshake, &[PROTOCOL_VIOLATION], vec![0x1e]),
        raw(
            "path_challenge in an Initial packet",
            "RFC 9000 §12.4",
            Phase::Start,
            RawSpace::Initial,
            &[PROTOCOL_VIOLATION],
            vec![0x1a, 1, 2, 3, 4, 5, 6, 7, 8],
        ),
        // RFC 9001 §8.1: no ALPN in common is the TLS alert
        // no_application_protocol (120) as CRYPTO_ERROR 0x178.
        {
            let mut c = Case::new("no application protocol in common", "RFC 9001 §8.1", Phase::Start, Expect::Transport(&[0x178]), |_| Vec::new());
            c.alpn = Some(b"not-h3");
            c
        },
        // RFC 9221 §3: DATAGRAM beyond what the server accepts.
        Case::new("datagram larger than max_datagram_frame_size", "RFC 9221 §3", Phase::Confirmed, Expect::Transport(&[PROTOCOL_VIOLATION]), |ctx| {
            // The limit counts the whole frame: a payload of `max` bytes
            // exceeds it. Not applicable when that does not fit a packet.
            let max = params(ctx).max_datagram_frame_size.unwrap_or(0);
            if max > 1100 {
                return vec![Step::NotApplicable("max_datagram_frame_size does not fit a packet")];
            }
            let len = max.max(1);
            vec![Step::one_rtt(cat(&[&[0x31], &vi(len), &vec![0u8; len as usize]]))]
        }),
        // RFC 9001 §6, §8.3: TLS messages QUIC forbids.
        one_rtt("TLS KeyUpdate message in CRYPTO", "RFC 9001 §6", &[CRYPTO_UNEXPECTED_MESSAGE], |_| crypto(0, &[0x18, 0x00, 0x00, 0x01, 0x00])),
        raw(
            "TLS EndOfEarlyData message in CRYPTO",
            "RFC 9001 §8.3",
            Phase::HandshakeKeys,
            RawSpace::Handshake,
            &[CRYPTO_UNEXPECTED_MESSAGE],
            crypto(0, &[0x05, 0x00, 0x00, 0x00]),
        ),
    ]
}
