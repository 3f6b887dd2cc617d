//! Stream identifiers (RFC 9000 §2.1).

use core::fmt;

/// Which endpoint opened a stream: the least significant bit of the stream ID
/// (RFC 9000 §2.1: 0 for the client, 1 for the server). Also used as "which side
/// are we".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Initiator {
    Client,
    Server,
}

impl Initiator {
    /// The other endpoint.
    pub const fn peer(self) -> Self {
        match self {
            Initiator::Client => Initiator::Server,
            Initiator::Server => Initiator::Client,
        }
    }

    const fn bit(self) -> u64 {
        match self {
            Initiator::Client => 0,
            Initiator::Server => 1,
        }
    }
}

/// Bidirectional or unidirectional: the second least significant bit of the
/// stream ID (RFC 9000 §2.1: 0 bidirectional, 1 unidirectional).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    Bi,
    Uni,
}

impl Dir {
    const fn bit(self) -> u64 {
        match self {
            Dir::Bi => 0,
            Dir::Uni => 0b10,
        }
    }
}

/// The number of streams of one type that can ever exist: stream IDs are
/// varints below 2^62 and two bits encode the type, so indices are below 2^60
/// (RFC 9000 §4.6, §19.11).
pub const MAX_STREAMS: u64 = 1 << 60;

/// A stream ID (RFC 9000 §2.1). Any value taken from a decoded varint
/// (< 2^62) is a valid ID; the accessors work for any `u64`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId(pub u64);

impl StreamId {
    /// The `index`-th stream (counting from 0) of the given type, or `None` if
    /// `index >= 2^60` (its ID would not fit in a varint).
    pub const fn new(initiator: Initiator, dir: Dir, index: u64) -> Option<Self> {
        if index >= MAX_STREAMS {
            return None;
        }
        // RFC 9000 §2.1: the type occupies the two low bits, the index the rest.
        Some(StreamId((index << 2) | dir.bit() | initiator.bit()))
    }

    pub const fn initiator(self) -> Initiator {
        if self.0 & 1 == 0 {
            Initiator::Client
        } else {
            Initiator::Server
        }
    }

    pub const fn dir(self) -> Dir {
        if self.0 & 0b10 == 0 {
            Dir::Bi
        } else {
            Dir::Uni
        }
    }

    /// Position among the streams of the same type: stream IDs of a type are
    /// created in increasing order (RFC 9000 §2.1), and the limits of §4.6 count
    /// them, so `index() < max_streams` is the limit check.
    pub const fn index(self) -> u64 {
        self.0 >> 2
    }

    pub const fn is_bidi(self) -> bool {
        matches!(self.dir(), Dir::Bi)
    }

    pub const fn is_uni(self) -> bool {
        matches!(self.dir(), Dir::Uni)
    }

    /// Whether an endpoint playing `local` can receive data on this stream:
    /// bidirectional, or unidirectional and opened by the peer (RFC 9000 §2.1).
    pub fn has_recv_part(self, local: Initiator) -> bool {
        self.is_bidi() || self.initiator() != local
    }

    /// Whether an endpoint playing `local` can send data on this stream:
    /// bidirectional, or unidirectional and opened by `local`.
    pub fn has_send_part(self, local: Initiator) -> bool {
        self.is_bidi() || self.initiator() == local
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamId({}: {:?} {:?} #{})", self.0, self.initiator(), self.dir(), self.index())
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn type_bits_match_rfc_table() {
        // RFC 9000 Table 1.
        assert_eq!(StreamId::new(Initiator::Client, Dir::Bi, 0), Some(StreamId(0)));
        assert_eq!(StreamId::new(Initiator::Server, Dir::Bi, 0), Some(StreamId(1)));
        assert_eq!(StreamId::new(Initiator::Client, Dir::Uni, 0), Some(StreamId(2)));
        assert_eq!(StreamId::new(Initiator::Server, Dir::Uni, 0), Some(StreamId(3)));
        // §19.11 example: a server with a uni limit of 3 may open 3, 7 and 11.
        assert_eq!(StreamId::new(Initiator::Server, Dir::Uni, 2), Some(StreamId(11)));
        assert_eq!(StreamId::new(Initiator::Server, Dir::Uni, 3), Some(StreamId(15)));
    }

    #[test]
    fn accessors_round_trip() {
        for &ini in &[Initiator::Client, Initiator::Server] {
            for &dir in &[Dir::Bi, Dir::Uni] {
                for &idx in &[0, 1, 7, 1000, MAX_STREAMS - 1] {
                    let id = StreamId::new(ini, dir, idx).unwrap();
                    assert_eq!(id.initiator(), ini);
                    assert_eq!(id.dir(), dir);
                    assert_eq!(id.index(), idx);
                }
            }
        }
        let top = StreamId::new(Initiator::Server, Dir::Uni, MAX_STREAMS - 1).unwrap();
        assert_eq!(top.0, (1 << 62) - 1, "largest ID is the largest varint");
        assert_eq!(StreamId::new(Initiator::Client, Dir::Bi, MAX_STREAMS), None);
    }

    #[test]
    fn parts_by_side() {
        let client_uni = StreamId(2);
        assert!(client_uni.has_send_part(Initiator::Client));
        assert!(!client_uni.has_recv_part(Initiator::Client));
        assert!(client_uni.has_recv_part(Initiator::Server));
        assert!(!client_uni.has_send_part(Initiator::Server));
        let server_bi = StreamId(1);
        assert!(server_bi.has_send_part(Initiator::Client));
        assert!(server_bi.has_recv_part(Initiator::Client));
        assert_eq!(Initiator::Client.peer(), Initiator::Server);
        assert_eq!(format!("{}", StreamId(14)), "14");
        assert_eq!(format!("{:?}", StreamId(14)), "StreamId(14: Client Uni #3)");
    }
}
