//! One-line, human-readable descriptions of frames and versions.
//!
//! The format is meant for eyes and for grep: the frame name as RFC 9000
//! §19 spells it, then `key=value` fields. Byte strings are summarised by
//! length (their content is rarely useful and may be long); short opaque
//! values (connection IDs, path challenge data) are printed in hex.

use core::fmt::Write as _;

use quic_core::frame::{Frame, StreamDir};
use quic_core::Version;

/// ACK ranges printed before the rest are summarised as "+N more".
const MAX_ACK_RANGES_SHOWN: usize = 8;
/// Characters of a CONNECTION_CLOSE reason phrase printed.
const MAX_REASON_CHARS: usize = 64;

/// `0x00000001 (v1)`, `0x6b3343cf (v2)`, or just the hex value.
pub fn version(v: Version) -> String {
    match v {
        Version::V1 => format!("{:#010x} (v1)", v.0),
        Version::V2 => format!("{:#010x} (v2)", v.0),
        Version::NEGOTIATION => format!("{:#010x} (version negotiation)", v.0),
        _ if v.is_reserved() => format!("{:#010x} (reserved, RFC 9000 §15)", v.0),
        _ => format!("{:#010x}", v.0),
    }
}

/// A connection ID or other short byte string in hex, `-` when empty.
pub fn cid(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        "-".to_owned()
    } else {
        hex::encode(bytes)
    }
}

fn dir(d: StreamDir) -> &'static str {
    match d {
        StreamDir::Bidi => "bidi",
        StreamDir::Uni => "uni",
    }
}

/// A reason phrase (RFC 9000 §19.19: should be UTF-8, but comes from the
/// network), escaped and cut so one frame stays one line.
fn reason(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text.chars().take(MAX_REASON_CHARS).flat_map(char::escape_default).collect();
    if text.chars().count() > MAX_REASON_CHARS {
        out.push_str("...");
    }
    out
}

/// The one-line description of a decoded frame.
pub fn frame(f: &Frame<'_>) -> String {
    match f {
        Frame::Padding { len } => format!("PADDING x{len}"),
        Frame::Ping => "PING".to_owned(),
        Frame::Ack(ack) => {
            let mut s = format!("ACK largest={} delay={} ranges=[", ack.largest(), ack.ack_delay());
            // Highest first, as the frame carries them (RFC 9000 §19.3.1).
            for (i, r) in ack.iter().enumerate() {
                if i == MAX_ACK_RANGES_SHOWN {
                    let more = ack.range_count().saturating_add(1).saturating_sub(i as u64);
                    let _ = write!(s, ", +{more} more");
                    break;
                }
                if i > 0 {
                    s.push_str(", ");
                }
                let _ = write!(s, "{}..={}", r.start(), r.end());
            }
            s.push(']');
            if let Some(e) = ack.ecn() {
                let _ = write!(s, " ecn=(ect0={} ect1={} ce={})", e.ect0, e.ect1, e.ce);
            }
            s
        }
        Frame::ResetStream { id, error_code, final_size } => {
            format!("RESET_STREAM id={id} error={error_code:#x} final_size={final_size}")
        }
        Frame::StopSending { id, error_code } => {
            format!("STOP_SENDING id={id} error={error_code:#x}")
        }
        Frame::Crypto { offset, data } => format!("CRYPTO off={offset} len={}", data.len()),
        Frame::NewToken { token } => format!("NEW_TOKEN len={}", token.len()),
        Frame::Stream { id, offset, fin, data } => {
            format!("STREAM id={id} off={offset} len={}{}", data.len(), if *fin { " fin" } else { "" })
        }
        Frame::MaxData { max } => format!("MAX_DATA max={max}"),
        Frame::MaxStreamData { id, max } => format!("MAX_STREAM_DATA id={id} max={max}"),
        Frame::MaxStreams { dir: d, max } => format!("MAX_STREAMS {} max={max}", dir(*d)),
        Frame::DataBlocked { limit } => format!("DATA_BLOCKED limit={limit}"),
        Frame::StreamDataBlocked { id, limit } => {
            format!("STREAM_DATA_BLOCKED id={id} limit={limit}")
        }
        Frame::StreamsBlocked { dir: d, limit } => {
            format!("STREAMS_BLOCKED {} limit={limit}", dir(*d))
        }
        Frame::NewConnectionId { sequence, retire_prior_to, cid: c, .. } => {
            format!("NEW_CONNECTION_ID seq={sequence} retire_prior_to={retire_prior_to} cid={}", cid(c))
        }
        Frame::RetireConnectionId { sequence } => format!("RETIRE_CONNECTION_ID seq={sequence}"),
        Frame::PathChallenge { data } => format!("PATH_CHALLENGE data={}", hex::encode(data)),
        Frame::PathResponse { data } => format!("PATH_RESPONSE data={}", hex::encode(data)),
        Frame::ConnectionClose { error_code, frame_type, reason: r } => {
            format!("CONNECTION_CLOSE error={:#x} ({}) frame_type={frame_type:#x} reason=\"{}\"", error_code.0, error_code.name(), reason(r))
        }
        Frame::ApplicationClose { error_code, reason: r } => {
            format!("CONNECTION_CLOSE(app) error={error_code:#x} reason=\"{}\"", reason(r))
        }
        Frame::HandshakeDone => "HANDSHAKE_DONE".to_owned(),
        Frame::Datagram { data } => format!("DATAGRAM len={}", data.len()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use quic_core::codec::Writer;
    use quic_core::frame::{AckFrame, FrameIter};
    use quic_core::TransportErrorCode;

    #[test]
    fn simple_frames() {
        assert_eq!(frame(&Frame::Padding { len: 108 }), "PADDING x108");
        assert_eq!(frame(&Frame::Ping), "PING");
        assert_eq!(frame(&Frame::Crypto { offset: 0, data: &[0; 277] }), "CRYPTO off=0 len=277");
        assert_eq!(frame(&Frame::Stream { id: 4, offset: 0, fin: true, data: &[1; 100] }), "STREAM id=4 off=0 len=100 fin");
        assert_eq!(frame(&Frame::Stream { id: 8, offset: 5, fin: false, data: &[] }), "STREAM id=8 off=5 len=0");
        assert_eq!(
            frame(&Frame::ConnectionClose { error_code: TransportErrorCode::PROTOCOL_VIOLATION, frame_type: 6, reason: b"bad\n\xff" }),
            "CONNECTION_CLOSE error=0xa (PROTOCOL_VIOLATION) frame_type=0x6 reason=\"bad\\n\\u{fffd}\""
        );
        assert_eq!(frame(&Frame::PathChallenge { data: [0xab; 8] }), "PATH_CHALLENGE data=abababababababab");
    }

    #[test]
    fn ack_ranges_highest_first_and_capped() {
        let mut buf = [0u8; 256];
        let mut w = Writer::new(&mut buf);
        AckFrame::encode_from_ranges(&mut w, [3..=3, 0..=1].into_iter(), 7, None).unwrap();
        let n = w.len();
        let f = FrameIter::new(&buf[..n]).next().unwrap().unwrap();
        assert_eq!(frame(&f), "ACK largest=3 delay=7 ranges=[3..=3, 0..=1]");

        let ranges = (0..20u64).map(|k| 200 - 3 * k..=200 - 3 * k);
        let mut w = Writer::new(&mut buf);
        AckFrame::encode_from_ranges(&mut w, ranges, 0, None).unwrap();
        let n = w.len();
        let f = FrameIter::new(&buf[..n]).next().unwrap().unwrap();
        let s = frame(&f);
        assert!(s.starts_with("ACK largest=200 delay=0 ranges=[200..=200, 197..=197,"), "{s}");
        assert!(s.ends_with(", +12 more]"), "{s}");
    }

    #[test]
    fn versions() {
        assert_eq!(version(Version::V1), "0x00000001 (v1)");
        assert_eq!(version(Version::V2), "0x6b3343cf (v2)");
        assert_eq!(version(Version(0x1a2a3a4a)), "0x1a2a3a4a (reserved, RFC 9000 §15)");
        assert_eq!(cid(&[]), "-");
    }
}
