//! Packets (RFC 9000 §17): headers, packet numbers, coalescing, and the glue
//! that protects and unprotects whole packets in place.

pub mod header;
pub mod number;

pub use header::{CoalescedPackets, HeaderError, HeaderLayout, LongHeader, LongType, PacketCursor, PacketType, ProtectedHeader, ShortHeader};

/// RFC 9000 §14.1: a client pads datagrams carrying Initial packets to at
/// least 1200 bytes; a server drops smaller ones.
pub const MIN_INITIAL_DATAGRAM_SIZE: usize = 1200;
