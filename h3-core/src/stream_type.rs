//! Unidirectional stream types (RFC 9114 §6.2, RFC 9204 §4.2).
//!
//! A unidirectional stream starts with its type as a varint; a push stream
//! then carries its push ID (§6.2.2). Both may arrive split across chunks,
//! so [`StreamHeaderReader`] reads them incrementally. [`PeerUniStreams`]
//! applies the rules on how many streams of each type a peer may open.

use quic_core::codec::Writer;
use quic_core::error::BufferTooShort;
use quic_core::transport_params::Role;
use quic_core::varint::{self, VarInt};

use crate::error::{self, H3Error};
use crate::frame::PartialVarint;

/// The type of a unidirectional stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamType {
    /// 0x00, RFC 9114 §6.2.1.
    Control,
    /// 0x01, RFC 9114 §6.2.2; followed by a push ID.
    Push,
    /// 0x02, RFC 9204 §4.2.
    QpackEncoder,
    /// 0x03, RFC 9204 §4.2.
    QpackDecoder,
    /// `0x1f * N + 0x21`, RFC 9114 §6.2.3: no meaning, to be discarded.
    Reserved(u64),
    /// Any other type: RFC 9114 §6.2 says to abort reading or discard it, and
    /// never to treat it as a connection error.
    Unknown(u64),
}

impl StreamType {
    pub const CONTROL: u64 = 0x00;
    pub const PUSH: u64 = 0x01;
    pub const QPACK_ENCODER: u64 = 0x02;
    pub const QPACK_DECODER: u64 = 0x03;

    pub const fn from_u64(v: u64) -> Self {
        match v {
            Self::CONTROL => Self::Control,
            Self::PUSH => Self::Push,
            Self::QPACK_ENCODER => Self::QpackEncoder,
            Self::QPACK_DECODER => Self::QpackDecoder,
            v if error::is_grease(v) => Self::Reserved(v),
            v => Self::Unknown(v),
        }
    }

    /// The value on the wire.
    pub const fn value(self) -> u64 {
        match self {
            Self::Control => Self::CONTROL,
            Self::Push => Self::PUSH,
            Self::QpackEncoder => Self::QPACK_ENCODER,
            Self::QpackDecoder => Self::QPACK_DECODER,
            Self::Reserved(v) | Self::Unknown(v) => v,
        }
    }

    /// A reserved type chosen by `seed`, to open a grease stream (§6.2.3).
    pub const fn grease(seed: u64) -> Self {
        Self::Reserved(error::grease(seed))
    }

    /// Whether the stream has meaning to this crate. Streams of other types
    /// are discarded (RFC 9114 §6.2, §9).
    pub const fn is_known(self) -> bool {
        !matches!(self, Self::Reserved(_) | Self::Unknown(_))
    }

    /// Bytes of the type varint.
    pub const fn encoded_len(self) -> usize {
        varint::size(self.value())
    }

    /// Writes the stream type. For a push stream use
    /// [`encode_push_stream_header`], which adds the push ID.
    pub fn encode(self, w: &mut Writer<'_>) -> Result<(), BufferTooShort> {
        w.varint(self.value())
    }
}

/// Writes a push stream header: type 0x01 and the push ID (RFC 9114 §6.2.2).
/// Leaves `w` untouched on failure.
pub fn encode_push_stream_header(push_id: u64, w: &mut Writer<'_>) -> Result<(), BufferTooShort> {
    if push_id > VarInt::MAX.into_inner() || 1 + varint::size(push_id) > w.remaining() {
        return Err(BufferTooShort);
    }
    w.varint(StreamType::PUSH)?;
    w.varint(push_id)
}

/// A complete unidirectional stream header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamHeader {
    pub stream_type: StreamType,
    /// The push ID, for [`StreamType::Push`] only.
    pub push_id: Option<u64>,
}

/// Reads the header of a unidirectional stream from chunks of its bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamHeaderReader {
    varint: PartialVarint,
    /// Set once the type is read; for a push stream the push ID follows.
    stream_type: Option<StreamType>,
    done: Option<StreamHeader>,
}

impl StreamHeaderReader {
    pub const fn new() -> Self {
        Self { varint: PartialVarint::new(), stream_type: None, done: None }
    }

    /// Consumes header bytes from the front of `input`. Returns the header
    /// once complete; what is left of `input` is the stream's content. Returns
    /// `None` after consuming all of `input` without completing it. Once
    /// complete, later calls return the same header and consume nothing.
    ///
    /// There is no error case: any varint is a valid type, and RFC 9114 §6.2
    /// requires tolerating a stream that ends before its header (so the
    /// caller just drops the reader on FIN).
    pub fn read(&mut self, input: &mut &[u8]) -> Option<StreamHeader> {
        if let Some(h) = self.done {
            return Some(h);
        }
        let stream_type = match self.stream_type {
            Some(t) => t,
            None => {
                let t = StreamType::from_u64(self.varint.feed(input)?);
                self.stream_type = Some(t);
                t
            }
        };
        let push_id = match stream_type {
            StreamType::Push => Some(self.varint.feed(input)?),
            _ => None,
        };
        let h = StreamHeader { stream_type, push_id };
        self.done = Some(h);
        Some(h)
    }

    /// The type, once read (possibly before a push ID is complete).
    pub fn stream_type(&self) -> Option<StreamType> {
        self.stream_type
    }

    /// Whether the header is complete.
    pub fn is_done(&self) -> bool {
        self.done.is_some()
    }
}

/// The peer's critical unidirectional streams seen so far, to enforce that
/// each is opened at most once and only by the right endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerUniStreams {
    pub control: bool,
    pub qpack_encoder: bool,
    pub qpack_decoder: bool,
}

impl PeerUniStreams {
    pub const fn new() -> Self {
        Self { control: false, qpack_encoder: false, qpack_decoder: false }
    }

    /// Records a new stream of type `t` opened by the peer, whose role is
    /// `peer`. Errors (connection errors of type H3_STREAM_CREATION_ERROR):
    /// - a second control stream (RFC 9114 §6.2.1);
    /// - a second QPACK encoder or decoder stream (RFC 9204 §4.2);
    /// - a push stream opened by a client (RFC 9114 §6.2.2).
    ///
    /// Reserved and unknown types are always accepted (and to be discarded).
    pub fn on_stream(&mut self, t: StreamType, peer: Role) -> Result<(), H3Error> {
        let seen = match t {
            StreamType::Control => &mut self.control,
            StreamType::QpackEncoder => &mut self.qpack_encoder,
            StreamType::QpackDecoder => &mut self.qpack_decoder,
            StreamType::Push if peer == Role::Client => {
                return Err(H3Error::stream_creation("client opened a push stream"));
            }
            StreamType::Push | StreamType::Reserved(_) | StreamType::Unknown(_) => return Ok(()),
        };
        if *seen {
            return Err(H3Error::stream_creation("second critical stream of the same type"));
        }
        *seen = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::error::H3ErrorCode;

    #[test]
    fn types_round_trip() {
        for (v, t) in [
            (0x00, StreamType::Control),
            (0x01, StreamType::Push),
            (0x02, StreamType::QpackEncoder),
            (0x03, StreamType::QpackDecoder),
            (0x21, StreamType::Reserved(0x21)),
            (0x40, StreamType::Reserved(0x40)),
            (0x04, StreamType::Unknown(0x04)),
            (0x54, StreamType::Unknown(0x54)),
        ] {
            assert_eq!(StreamType::from_u64(v), t);
            assert_eq!(t.value(), v);
            assert_eq!(t.is_known(), v < 4);
        }
        for seed in 0..100u64 {
            let g = StreamType::grease(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            assert!(matches!(StreamType::from_u64(g.value()), StreamType::Reserved(_)));
        }
    }

    fn read_split(bytes: &[u8], step: usize) -> (Option<StreamHeader>, Vec<u8>) {
        let mut r = StreamHeaderReader::new();
        let mut rest = Vec::new();
        let mut header = None;
        for chunk in bytes.chunks(step) {
            let mut input = chunk;
            if header.is_none() {
                header = r.read(&mut input);
                if header.is_none() {
                    assert!(input.is_empty());
                }
            }
            rest.extend_from_slice(input);
        }
        (header, rest)
    }

    #[test]
    fn reads_headers_in_any_chunking() {
        let mut buf = [0u8; 32];
        let mut w = Writer::new(&mut buf);
        encode_push_stream_header(1 << 33, &mut w).unwrap();
        w.put(b"frames").unwrap();
        let push = w.written().to_vec();
        assert_eq!(&push[..9], [0x01, 0xc0, 0, 0, 0x02, 0, 0, 0, 0]);

        let mut buf = [0u8; 32];
        let mut w = Writer::new(&mut buf);
        StreamType::Reserved(0x3fff_ffff_ffff_fffe).encode(&mut w).unwrap();
        w.put(b"junk").unwrap();
        let grease = w.written().to_vec();

        for step in 1..=push.len() {
            let (h, rest) = read_split(&push, step);
            assert_eq!(h, Some(StreamHeader { stream_type: StreamType::Push, push_id: Some(1 << 33) }));
            assert_eq!(rest, b"frames");
            let (h, rest) = read_split(&grease, step);
            assert_eq!(h, Some(StreamHeader { stream_type: StreamType::Reserved(0x3fff_ffff_ffff_fffe), push_id: None }));
            assert_eq!(rest, b"junk");
        }
        for (t, byte) in [(StreamType::Control, 0x00u8), (StreamType::QpackEncoder, 0x02)] {
            let (h, rest) = read_split(&[byte, 0x04, 0x00], 1);
            assert_eq!(h, Some(StreamHeader { stream_type: t, push_id: None }));
            assert_eq!(rest, [0x04, 0x00]);
        }
    }

    #[test]
    fn partial_header_then_done() {
        let mut r = StreamHeaderReader::new();
        assert_eq!(r.read(&mut &[][..]), None);
        assert_eq!(r.read(&mut &[0x01][..]), None);
        assert_eq!(r.stream_type(), Some(StreamType::Push));
        assert!(!r.is_done());
        assert_eq!(r.read(&mut &[0x40][..]), None);
        let mut input = &[0x05, 0xaa][..];
        let h = r.read(&mut input).unwrap();
        assert_eq!(h.push_id, Some(5));
        assert_eq!(input, [0xaa]);
        // Done: nothing more is consumed.
        assert_eq!(r.read(&mut input), Some(h));
        assert_eq!(input, [0xaa]);
    }

    #[test]
    fn encode_failures() {
        let mut buf = [0u8; 2];
        let mut w = Writer::new(&mut buf);
        assert_eq!(encode_push_stream_header(64, &mut w), Err(BufferTooShort));
        assert_eq!(encode_push_stream_header(1 << 62, &mut w), Err(BufferTooShort));
        assert_eq!(w.len(), 0);
        encode_push_stream_header(63, &mut w).unwrap();
        assert_eq!(w.written(), [0x01, 0x3f]);
        assert_eq!(StreamType::Unknown(1 << 20).encoded_len(), 4);
    }

    #[test]
    fn peer_stream_rules() {
        let mut p = PeerUniStreams::new();
        for t in [StreamType::Control, StreamType::QpackEncoder, StreamType::QpackDecoder] {
            p.on_stream(t, Role::Client).unwrap();
            let e = p.on_stream(t, Role::Client).unwrap_err();
            assert_eq!(e.code, H3ErrorCode::H3_STREAM_CREATION_ERROR);
            assert!(e.is_connection_error());
        }
        // Only servers push.
        let e = p.on_stream(StreamType::Push, Role::Client).unwrap_err();
        assert_eq!(e.code, H3ErrorCode::H3_STREAM_CREATION_ERROR);
        let mut s = PeerUniStreams::new();
        s.on_stream(StreamType::Push, Role::Server).unwrap();
        s.on_stream(StreamType::Push, Role::Server).unwrap();
        // Unknown and reserved streams never cause a connection error.
        for _ in 0..3 {
            s.on_stream(StreamType::Unknown(0x54), Role::Server).unwrap();
            s.on_stream(StreamType::Reserved(0x21), Role::Client).unwrap();
        }
    }
}
