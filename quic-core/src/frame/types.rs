//! Frame type values (RFC 9000 §12.4 Table 3, §19; RFC 9221 §4) and the
//! rules for which packet types may carry them.

use core::fmt;

use crate::codec::Reader;
use crate::error::Error;
use crate::varint;

/// A frame type as carried in the Frame Type field (RFC 9000 §12.4).
///
/// Some frame types carry flags in their low bits (ACK, STREAM, MAX_STREAMS,
/// STREAMS_BLOCKED, CONNECTION_CLOSE, DATAGRAM), so a frame kind spans several
/// values.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FrameType(pub u64);

/// The packet type a frame arrived in, for the RFC 9000 §12.4 Table 3 check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameContext {
    Initial,
    ZeroRtt,
    Handshake,
    OneRtt,
}

impl FrameType {
    pub const PADDING: Self = Self(0x00);
    pub const PING: Self = Self(0x01);
    pub const ACK: Self = Self(0x02);
    /// ACK with ECN counts (RFC 9000 §19.3.2).
    pub const ACK_ECN: Self = Self(0x03);
    pub const RESET_STREAM: Self = Self(0x04);
    pub const STOP_SENDING: Self = Self(0x05);
    pub const CRYPTO: Self = Self(0x06);
    pub const NEW_TOKEN: Self = Self(0x07);
    /// The lowest STREAM type (no flags); STREAM spans 0x08..=0x0f (§19.8).
    pub const STREAM: Self = Self(0x08);
    /// The highest STREAM type (OFF, LEN and FIN all set).
    pub const STREAM_MAX: Self = Self(0x0f);
    /// RFC 9000 §19.8: the OFF bit, an Offset field is present.
    pub const STREAM_OFF_BIT: u64 = 0x04;
    /// RFC 9000 §19.8: the LEN bit, a Length field is present.
    pub const STREAM_LEN_BIT: u64 = 0x02;
    /// RFC 9000 §19.8: the FIN bit, the frame ends the stream.
    pub const STREAM_FIN_BIT: u64 = 0x01;
    pub const MAX_DATA: Self = Self(0x10);
    pub const MAX_STREAM_DATA: Self = Self(0x11);
    pub const MAX_STREAMS_BIDI: Self = Self(0x12);
    pub const MAX_STREAMS_UNI: Self = Self(0x13);
    pub const DATA_BLOCKED: Self = Self(0x14);
    pub const STREAM_DATA_BLOCKED: Self = Self(0x15);
    pub const STREAMS_BLOCKED_BIDI: Self = Self(0x16);
    pub const STREAMS_BLOCKED_UNI: Self = Self(0x17);
    pub const NEW_CONNECTION_ID: Self = Self(0x18);
    pub const RETIRE_CONNECTION_ID: Self = Self(0x19);
    pub const PATH_CHALLENGE: Self = Self(0x1a);
    pub const PATH_RESPONSE: Self = Self(0x1b);
    /// CONNECTION_CLOSE signalling a QUIC transport error (§19.19).
    pub const CONNECTION_CLOSE: Self = Self(0x1c);
    /// CONNECTION_CLOSE signalling an application error (§19.19).
    pub const CONNECTION_CLOSE_APP: Self = Self(0x1d);
    pub const HANDSHAKE_DONE: Self = Self(0x1e);
    /// RFC 9221 §4: DATAGRAM without a Length field (runs to the packet end).
    pub const DATAGRAM: Self = Self(0x30);
    /// RFC 9221 §4: DATAGRAM with a Length field.
    pub const DATAGRAM_LEN: Self = Self(0x31);

    /// The STREAM type with the given flag bits (RFC 9000 §19.8).
    pub const fn stream(off: bool, len: bool, fin: bool) -> Self {
        let mut t = Self::STREAM.0;
        if off {
            t |= Self::STREAM_OFF_BIT;
        }
        if len {
            t |= Self::STREAM_LEN_BIT;
        }
        if fin {
            t |= Self::STREAM_FIN_BIT;
        }
        Self(t)
    }

    pub const fn is_stream(self) -> bool {
        self.0 >= Self::STREAM.0 && self.0 <= Self::STREAM_MAX.0
    }

    pub const fn is_ack(self) -> bool {
        self.0 == Self::ACK.0 || self.0 == Self::ACK_ECN.0
    }

    pub const fn is_datagram(self) -> bool {
        self.0 == Self::DATAGRAM.0 || self.0 == Self::DATAGRAM_LEN.0
    }

    /// A type defined by RFC 9000 §19 or RFC 9221 §4.
    pub const fn is_known(self) -> bool {
        self.0 <= Self::HANDSHAKE_DONE.0 || self.is_datagram()
    }

    /// RFC 9000 §12.4 Table 3, as tightened by the 0-RTT note that follows it.
    ///
    /// - Initial and Handshake: PADDING, PING, ACK, CRYPTO and
    ///   CONNECTION_CLOSE of type 0x1c only.
    /// - 0-RTT: everything except ACK, CRYPTO, HANDSHAKE_DONE, NEW_TOKEN,
    ///   PATH_RESPONSE and RETIRE_CONNECTION_ID (§12.5 says a server MAY
    ///   treat those as PROTOCOL_VIOLATION; we do). DATAGRAM is allowed in
    ///   0-RTT (RFC 9221 §4).
    /// - 1-RTT: every known type.
    ///
    /// Unknown types are never allowed (they are a FRAME_ENCODING_ERROR
    /// anyway, §12.4).
    pub const fn is_allowed_in(self, ctx: FrameContext) -> bool {
        if !self.is_known() {
            return false;
        }
        match ctx {
            FrameContext::Initial | FrameContext::Handshake => {
                matches!(self, Self::PADDING | Self::PING | Self::ACK | Self::ACK_ECN | Self::CRYPTO | Self::CONNECTION_CLOSE)
            }
            FrameContext::ZeroRtt => !matches!(
                self,
                Self::ACK | Self::ACK_ECN | Self::CRYPTO | Self::HANDSHAKE_DONE | Self::NEW_TOKEN | Self::PATH_RESPONSE | Self::RETIRE_CONNECTION_ID
            ),
            FrameContext::OneRtt => true,
        }
    }

    /// RFC 9000 §13.2.1 / RFC 9002 §2: every frame except ACK, PADDING and
    /// CONNECTION_CLOSE elicits an acknowledgment ("N" in Table 3).
    pub const fn is_ack_eliciting(self) -> bool {
        !matches!(self, Self::PADDING | Self::ACK | Self::ACK_ECN | Self::CONNECTION_CLOSE | Self::CONNECTION_CLOSE_APP)
    }

    /// RFC 9000 §9.1: probing frames ("P" in Table 3, plus PADDING).
    pub const fn is_probing(self) -> bool {
        matches!(self, Self::PADDING | Self::NEW_CONNECTION_ID | Self::PATH_CHALLENGE | Self::PATH_RESPONSE)
    }

    /// The RFC name of the frame type, for logs.
    pub const fn name(self) -> &'static str {
        match self.0 {
            0x00 => "PADDING",
            0x01 => "PING",
            0x02 | 0x03 => "ACK",
            0x04 => "RESET_STREAM",
            0x05 => "STOP_SENDING",
            0x06 => "CRYPTO",
            0x07 => "NEW_TOKEN",
            0x08..=0x0f => "STREAM",
            0x10 => "MAX_DATA",
            0x11 => "MAX_STREAM_DATA",
            0x12 | 0x13 => "MAX_STREAMS",
            0x14 => "DATA_BLOCKED",
            0x15 => "STREAM_DATA_BLOCKED",
            0x16 | 0x17 => "STREAMS_BLOCKED",
            0x18 => "NEW_CONNECTION_ID",
            0x19 => "RETIRE_CONNECTION_ID",
            0x1a => "PATH_CHALLENGE",
            0x1b => "PATH_RESPONSE",
            0x1c | 0x1d => "CONNECTION_CLOSE",
            0x1e => "HANDSHAKE_DONE",
            0x30 | 0x31 => "DATAGRAM",
            _ => "UNKNOWN",
        }
    }

    /// Reads a Frame Type field.
    ///
    /// RFC 9000 §12.4: a frame type MUST use the shortest encoding; a longer
    /// one is treated as PROTOCOL_VIOLATION (the RFC allows it, and accepting
    /// it would let two byte strings mean the same frame). A type cut short
    /// by the end of the payload is a FRAME_ENCODING_ERROR.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, Error> {
        let start = r.position();
        let v = r.varint().map_err(|_| Error::frame_encoding("truncated frame type"))?;
        if r.position() - start != varint::size(v) {
            return Err(Error::protocol_violation("frame type not minimally encoded").with_frame_type(v));
        }
        Ok(Self(v))
    }
}

impl fmt::Debug for FrameType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({:#x})", self.name(), self.0)
    }
}

impl fmt::Display for FrameType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl From<FrameType> for u64 {
    fn from(t: FrameType) -> u64 {
        t.0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::error::TransportErrorCode;

    const ALL_KNOWN: &[u64] = &[
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,
        0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x30, 0x31,
    ];

    #[test]
    fn initial_and_handshake_allow_only_handshake_frames() {
        let allowed = [0x00, 0x01, 0x02, 0x03, 0x06, 0x1c];
        for ctx in [FrameContext::Initial, FrameContext::Handshake] {
            for &t in ALL_KNOWN {
                assert_eq!(FrameType(t).is_allowed_in(ctx), allowed.contains(&t), "{t:#x} in {ctx:?}");
            }
        }
    }

    #[test]
    fn zero_rtt_excludes_the_listed_frames() {
        let forbidden = [0x02, 0x03, 0x06, 0x1e, 0x07, 0x1b, 0x19];
        for &t in ALL_KNOWN {
            assert_eq!(FrameType(t).is_allowed_in(FrameContext::ZeroRtt), !forbidden.contains(&t), "{t:#x}");
        }
        // The application CONNECTION_CLOSE and DATAGRAM are 0-RTT frames.
        assert!(FrameType::CONNECTION_CLOSE_APP.is_allowed_in(FrameContext::ZeroRtt));
        assert!(FrameType::DATAGRAM.is_allowed_in(FrameContext::ZeroRtt));
    }

    #[test]
    fn one_rtt_allows_every_known_type_and_no_unknown_one() {
        for &t in ALL_KNOWN {
            assert!(FrameType(t).is_allowed_in(FrameContext::OneRtt), "{t:#x}");
        }
        for t in [0x1f, 0x20, 0x2f, 0x32, 0x40, 0x4000] {
            assert!(!FrameType(t).is_allowed_in(FrameContext::OneRtt), "{t:#x}");
        }
    }

    #[test]
    fn stream_bits() {
        assert_eq!(FrameType::stream(false, false, false), FrameType::STREAM);
        assert_eq!(FrameType::stream(true, true, true), FrameType::STREAM_MAX);
        assert_eq!(FrameType::stream(true, false, true), FrameType(0x0d));
        assert!(FrameType(0x0b).is_stream());
        assert!(!FrameType(0x10).is_stream());
        assert_eq!(FrameType(0x0b).name(), "STREAM");
        assert_eq!(format!("{:?}", FrameType::CRYPTO), "CRYPTO(0x6)");
    }

    #[test]
    fn eliciting_and_probing() {
        assert!(!FrameType::ACK_ECN.is_ack_eliciting());
        assert!(!FrameType::PADDING.is_ack_eliciting());
        assert!(!FrameType::CONNECTION_CLOSE_APP.is_ack_eliciting());
        assert!(FrameType::PING.is_ack_eliciting());
        assert!(FrameType::DATAGRAM.is_ack_eliciting());
        assert!(FrameType::PATH_CHALLENGE.is_probing());
        assert!(!FrameType::PING.is_probing());
    }

    #[test]
    fn decode_requires_minimal_encoding() {
        let mut r = Reader::new(&[0x06]);
        assert_eq!(FrameType::decode(&mut r), Ok(FrameType::CRYPTO));
        // RFC 9000 §12.4's own example: 0x4001 is PING in two bytes.
        let mut r = Reader::new(&[0x40, 0x01]);
        let e = FrameType::decode(&mut r).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::PROTOCOL_VIOLATION);
        assert_eq!(e.frame_type, Some(1));
        let mut r = Reader::new(&[0x80, 0x00, 0x00, 0x30]);
        assert_eq!(FrameType::decode(&mut r).unwrap_err().code, TransportErrorCode::PROTOCOL_VIOLATION);
        // A two-byte type that needs two bytes is fine (and unknown).
        let mut r = Reader::new(&[0x40, 0x40]);
        assert_eq!(FrameType::decode(&mut r), Ok(FrameType(0x40)));
        let mut r = Reader::new(&[0x40]);
        assert_eq!(FrameType::decode(&mut r).unwrap_err().code, TransportErrorCode::FRAME_ENCODING_ERROR);
    }
}
