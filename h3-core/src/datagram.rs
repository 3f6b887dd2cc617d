//! HTTP/3 Datagrams (RFC 9297 §2.1) carried in QUIC DATAGRAM frames (RFC 9221).
//!
//! The QUIC DATAGRAM payload is
//!
//! ```text
//! HTTP/3 Datagram {
//!   Quarter Stream ID (i),
//!   HTTP Datagram Payload (..),
//! }
//! ```
//!
//! where the Quarter Stream ID is the ID of the client-initiated
//! bidirectional request stream the datagram belongs to, divided by 4
//! (request streams have IDs 0, 4, 8...; RFC 9000 §2.1). This module is the
//! codec; [`crate::connection::H3Connection`] applies the connection rules.

use quic_core::stream::StreamId;
use quic_core::varint;

/// The largest Quarter Stream ID: stream IDs are below 2^62 (RFC 9000 §2.1),
/// so their quarter is below 2^60. RFC 9297 §2.1: a larger value is a
/// connection error of type H3_DATAGRAM_ERROR.
pub const MAX_QUARTER_STREAM_ID: u64 = (1 << 60) - 1;

/// Bytes of QUIC packet around a DATAGRAM frame in the worst case: a 1-RTT
/// short header (1 byte of flags, a connection ID of up to 20 bytes, a packet
/// number of up to 4 bytes, RFC 9000 §17.3.1) and the 16-byte AEAD tag
/// (RFC 9001 §5.3). A DATAGRAM frame cannot be split over packets
/// (RFC 9221 §5), so it must fit in what is left of one.
pub const PACKET_OVERHEAD: usize = 1 + 20 + 4 + 16;

/// Why an HTTP/3 datagram could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatagramParseError {
    /// The payload is empty or ends inside the Quarter Stream ID varint.
    Truncated,
    /// The Quarter Stream ID is above 2^60 - 1.
    QuarterStreamIdTooLarge,
}

/// Why [`crate::connection::H3Connection::send_datagram`] refused a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatagramError {
    /// One side did not send SETTINGS_H3_DATAGRAM = 1 (or its SETTINGS have
    /// not arrived yet), or the peer did not send the QUIC
    /// max_datagram_frame_size transport parameter (RFC 9297 §2.1.1).
    NotNegotiated,
    /// Not an open client-initiated bidirectional (request) stream.
    InvalidStream,
    /// Larger than the peer's max_datagram_frame_size or than one packet.
    TooLarge,
    /// The QUIC layer's datagram queue is full; retry after sending.
    Blocked,
    /// The connection is closing.
    Closed,
}

impl core::fmt::Display for DatagramError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            DatagramError::NotNegotiated => "HTTP datagrams not negotiated",
            DatagramError::InvalidStream => "not an open request stream",
            DatagramError::TooLarge => "datagram too large",
            DatagramError::Blocked => "datagram queue full",
            DatagramError::Closed => "connection closed",
        })
    }
}

impl std::error::Error for DatagramError {}

/// A request stream's Quarter Stream ID, or `None` for a stream that is not
/// client-initiated bidirectional (only those carry HTTP datagrams).
pub fn quarter_stream_id(stream: StreamId) -> Option<u64> {
    // Bits 0 and 1 of a stream ID: initiator and direction (RFC 9000 §2.1).
    (stream.0 & 0x3 == 0).then_some(stream.0 >> 2)
}

/// Bytes the Quarter Stream ID of `stream` takes on the wire.
pub fn header_len(stream: StreamId) -> usize {
    varint::size(stream.0 >> 2)
}

/// Writes the Quarter Stream ID of `stream` into `out` (at least 8 bytes);
/// returns how many bytes were written, or `None` for a stream that cannot
/// carry datagrams.
pub fn encode_header(stream: StreamId, out: &mut [u8]) -> Option<usize> {
    let q = quarter_stream_id(stream)?;
    varint::encode(q, out)
}

/// Splits an HTTP/3 datagram into its request stream and payload offset.
///
/// Returns the stream and the offset of the HTTP Datagram Payload in
/// `datagram`.
pub fn decode(datagram: &[u8]) -> Result<(StreamId, usize), DatagramParseError> {
    let (q, len) = varint::decode(datagram).ok_or(DatagramParseError::Truncated)?;
    if q > MAX_QUARTER_STREAM_ID {
        return Err(DatagramParseError::QuarterStreamIdTooLarge);
    }
    // q <= 2^60 - 1, so q * 4 <= 2^62 - 4: no overflow.
    Ok((StreamId(q << 2), len))
}

/// Size of the whole QUIC DATAGRAM frame (type 0x31 + Length varint +
/// content, RFC 9221 §4) for `content_len` bytes of content; this is what
/// max_datagram_frame_size bounds (RFC 9221 §3).
pub fn frame_size(content_len: usize) -> usize {
    1 + varint::size(content_len as u64) + content_len
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn encode(stream: u64, payload: &[u8]) -> Vec<u8> {
        let mut buf = [0u8; 8];
        let n = encode_header(StreamId(stream), &mut buf).unwrap();
        let mut v = buf[..n].to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn round_trip_over_varint_lengths() {
        // Quarter IDs at every varint length boundary (1, 2, 4, 8 bytes).
        for q in [0u64, 1, 63, 64, 16383, 16384, (1 << 30) - 1, 1 << 30, MAX_QUARTER_STREAM_ID] {
            let stream = q * 4;
            let wire = encode(stream, b"payload");
            assert_eq!(wire.len(), varint::size(q) + 7);
            assert_eq!(header_len(StreamId(stream)), varint::size(q));
            let (s, off) = decode(&wire).unwrap();
            assert_eq!(s, StreamId(stream));
            assert_eq!(&wire[off..], b"payload");
        }
    }

    #[test]
    fn known_encodings() {
        // Stream 0 -> quarter 0: one byte 0x00 (RFC 9297 §2.1).
        assert_eq!(encode(0, b"x"), [0x00, b'x']);
        // Stream 4 -> 1; stream 256 -> 64, which needs two bytes (0x40 0x40).
        assert_eq!(encode(4, b""), [0x01]);
        assert_eq!(encode(256, b""), [0x40, 0x40]);
        // An empty payload is allowed.
        assert_eq!(decode(&[0x01]).unwrap(), (StreamId(4), 1));
    }

    #[test]
    fn only_request_streams_have_a_quarter_id() {
        assert_eq!(quarter_stream_id(StreamId(8)), Some(2));
        for s in [1u64, 2, 3, 5, 6, 7] {
            assert_eq!(quarter_stream_id(StreamId(s)), None, "stream {s}");
            assert_eq!(encode_header(StreamId(s), &mut [0u8; 8]), None);
        }
    }

    #[test]
    fn malformed() {
        assert_eq!(decode(&[]), Err(DatagramParseError::Truncated));
        // A 2-, 4- and 8-byte varint cut short.
        assert_eq!(decode(&[0x40]), Err(DatagramParseError::Truncated));
        assert_eq!(decode(&[0x80, 0, 0]), Err(DatagramParseError::Truncated));
        assert_eq!(decode(&[0xc0, 0, 0, 0, 0, 0, 0]), Err(DatagramParseError::Truncated));
        // 2^60: one above the largest Quarter Stream ID.
        let mut wire = [0u8; 8];
        let n = varint::encode(1 << 60, &mut wire).unwrap();
        assert_eq!(decode(&wire[..n]), Err(DatagramParseError::QuarterStreamIdTooLarge));
        // The largest 8-byte varint.
        assert_eq!(decode(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1]), Err(DatagramParseError::QuarterStreamIdTooLarge));
    }

    #[test]
    fn frame_sizes() {
        assert_eq!(frame_size(0), 2);
        assert_eq!(frame_size(63), 65);
        assert_eq!(frame_size(64), 67);
        assert_eq!(frame_size(16384), 16384 + 5);
    }
}
