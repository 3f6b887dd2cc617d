//! The Capsule Protocol (RFC 9297 §3): typed, length-prefixed messages
//! carried in the DATA of a stream whose HTTP request opted in (for example
//! an Extended CONNECT tunnel, RFC 9220).
//!
//! ```text
//! Capsule {
//!   Capsule Type (i),
//!   Capsule Length (i),
//!   Capsule Value (..),
//! }
//! ```
//!
//! [`CapsuleDecoder`] is incremental: input arrives in DATA chunks of any
//! size. It buffers the value only of the capsule types it delivers, bounded
//! by `max_value_len`; capsules of other types are skipped byte by byte
//! without buffering, whatever their length (RFC 9297 §3.2: unknown capsule
//! types are silently ignored).

use bytes::Bytes;
use quic_core::varint;

/// Registered capsule types the crate knows about.
pub mod capsule_type {
    /// RFC 9297 §3.5: an HTTP datagram sent over the stream.
    pub const DATAGRAM: u64 = 0x00;
}

/// The largest Capsule Type plus Capsule Length prefix: two 8-byte varints.
const MAX_HEADER: usize = 16;

/// The default bound on a delivered capsule's value.
pub const DEFAULT_MAX_VALUE_LEN: usize = 64 * 1024;

/// One complete capsule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capsule {
    pub capsule_type: u64,
    pub value: Bytes,
}

impl Capsule {
    /// A DATAGRAM capsule (RFC 9297 §3.5) carrying `payload`.
    pub fn datagram(payload: Bytes) -> Self {
        Self { capsule_type: capsule_type::DATAGRAM, value: payload }
    }

    pub fn is_datagram(&self) -> bool {
        self.capsule_type == capsule_type::DATAGRAM
    }
}

/// A capsule that cannot be encoded or decoded. RFC 9297 §5.2 registers
/// H3_DATAGRAM_ERROR for malformed capsules; the connection layer resets the
/// stream with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapsuleError {
    /// The stream ended inside a capsule (RFC 9297 §3.3: the stream is then
    /// malformed).
    Truncated,
    /// A delivered capsule type announced a value longer than the bound.
    TooLarge { len: u64, max: usize },
    /// Encoding: a type or length of 2^62 or more.
    Unencodable,
    /// The header bytes could not be gathered (an internal bound broke;
    /// treated like any malformed capsule, never a panic).
    Malformed,
}

impl core::fmt::Display for CapsuleError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CapsuleError::Truncated => f.write_str("stream ended inside a capsule"),
            CapsuleError::TooLarge { len, max } => write!(f, "capsule of {len} bytes exceeds the bound of {max}"),
            CapsuleError::Unencodable => f.write_str("capsule type or length not encodable"),
            CapsuleError::Malformed => f.write_str("malformed capsule header"),
        }
    }
}

impl std::error::Error for CapsuleError {}

/// Bytes the header of a capsule of `capsule_type` with `len` bytes of value
/// takes.
pub fn header_len(capsule_type: u64, len: usize) -> usize {
    varint::size(capsule_type) + varint::size(len as u64)
}

/// Appends the Capsule Type and Capsule Length of a capsule to `out`.
pub fn encode_header(capsule_type: u64, len: usize, out: &mut Vec<u8>) -> Result<(), CapsuleError> {
    let mut buf = [0u8; MAX_HEADER];
    let a = varint::encode(capsule_type, &mut buf).ok_or(CapsuleError::Unencodable)?;
    let b = buf.get_mut(a..).and_then(|rest| varint::encode(len as u64, rest)).ok_or(CapsuleError::Unencodable)?;
    out.extend_from_slice(buf.get(..a + b).ok_or(CapsuleError::Unencodable)?);
    Ok(())
}

/// Appends a whole capsule to `out`.
pub fn encode(capsule_type: u64, value: &[u8], out: &mut Vec<u8>) -> Result<(), CapsuleError> {
    encode_header(capsule_type, value.len(), out)?;
    out.extend_from_slice(value);
    Ok(())
}

#[derive(Debug)]
enum State {
    /// Collecting the type and length varints (`hdr[..hdr_len]`).
    Header,
    /// Collecting `need` more bytes of a delivered capsule's value.
    Value { capsule_type: u64, need: usize, buf: Vec<u8> },
    /// Dropping `remaining` more bytes of an ignored capsule.
    Skip { remaining: u64 },
}

/// Incremental capsule parser for one stream.
#[derive(Debug)]
pub struct CapsuleDecoder {
    max_value_len: usize,
    /// Types delivered besides DATAGRAM; all others are skipped.
    extra_types: Vec<u64>,
    hdr: [u8; MAX_HEADER],
    hdr_len: usize,
    state: State,
    skipped: u64,
}

impl Default for CapsuleDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_VALUE_LEN)
    }
}

impl CapsuleDecoder {
    /// Delivers DATAGRAM capsules with values of at most `max_value_len`.
    pub fn new(max_value_len: usize) -> Self {
        Self { max_value_len, extra_types: Vec::new(), hdr: [0; MAX_HEADER], hdr_len: 0, state: State::Header, skipped: 0 }
    }

    /// Also delivers capsules of `capsule_type` (an extension the
    /// application implements, e.g. a WebTransport session capsule).
    pub fn deliver_type(&mut self, capsule_type: u64) {
        if !self.extra_types.contains(&capsule_type) {
            self.extra_types.push(capsule_type);
        }
    }

    fn delivers(&self, capsule_type: u64) -> bool {
        capsule_type == capsule_type::DATAGRAM || self.extra_types.contains(&capsule_type)
    }

    /// Capsules skipped so far because their type is not delivered.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Whether the decoder is between capsules (a stream may end here).
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Header) && self.hdr_len == 0
    }

    /// Consumes bytes from the front of `input` until one capsule is
    /// complete (returned) or the input is used up (`Ok(None)`).
    pub fn decode(&mut self, input: &mut &[u8]) -> Result<Option<Capsule>, CapsuleError> {
        loop {
            match &mut self.state {
                State::Header => {
                    if input.is_empty() {
                        return Ok(None);
                    }
                    // hdr_len < MAX_HEADER: 16 buffered bytes always hold a header.
                    let take = MAX_HEADER.saturating_sub(self.hdr_len).min(input.len());
                    let mut tmp = [0u8; MAX_HEADER];
                    let avail = self.hdr_len + take;
                    let (Some(dst_old), Some(src_old)) = (tmp.get_mut(..self.hdr_len), self.hdr.get(..self.hdr_len)) else {
                        return Err(CapsuleError::Malformed);
                    };
                    dst_old.copy_from_slice(src_old);
                    let (Some(dst_new), Some(src_new)) = (tmp.get_mut(self.hdr_len..avail), input.get(..take)) else {
                        return Err(CapsuleError::Malformed);
                    };
                    dst_new.copy_from_slice(src_new);
                    let Some((capsule_type, len, used)) = tmp.get(..avail).and_then(parse_header) else {
                        // Not enough yet: keep what we have (less than 16
                        // bytes, since 16 always hold a header).
                        self.hdr = tmp;
                        self.hdr_len = avail;
                        *input = input.get(take..).unwrap_or(&[]);
                        return Ok(None);
                    };
                    // `used` > hdr_len: the bytes buffered before did not
                    // hold a whole header.
                    *input = input.get(used.saturating_sub(self.hdr_len)..).unwrap_or(&[]);
                    self.hdr_len = 0;
                    if self.delivers(capsule_type) {
                        if len > self.max_value_len as u64 {
                            return Err(CapsuleError::TooLarge { len, max: self.max_value_len });
                        }
                        let need = len as usize;
                        if need == 0 {
                            return Ok(Some(Capsule { capsule_type, value: Bytes::new() }));
                        }
                        self.state = State::Value { capsule_type, need, buf: Vec::with_capacity(need) };
                    } else {
                        self.skipped += 1;
                        self.state = State::Skip { remaining: len };
                    }
                }
                State::Value { capsule_type, need, buf } => {
                    let n = (*need).min(input.len());
                    let (now, rest) = input.split_at(n);
                    buf.extend_from_slice(now);
                    *input = rest;
                    *need -= n;
                    if *need > 0 {
                        return Ok(None);
                    }
                    let capsule = Capsule { capsule_type: *capsule_type, value: Bytes::from(core::mem::take(buf)) };
                    self.state = State::Header;
                    return Ok(Some(capsule));
                }
                State::Skip { remaining } => {
                    let n = (*remaining).min(input.len() as u64) as usize;
                    *input = input.get(n..).unwrap_or(&[]);
                    *remaining -= n as u64;
                    if *remaining > 0 {
                        return Ok(None);
                    }
                    self.state = State::Header;
                }
            }
        }
    }

    /// At the end of the stream: a partial capsule is an error.
    pub fn finish(&self) -> Result<(), CapsuleError> {
        if self.is_idle() {
            Ok(())
        } else {
            Err(CapsuleError::Truncated)
        }
    }
}

/// Type, length and header size, or `None` if `buf` ends inside the header.
fn parse_header(buf: &[u8]) -> Option<(u64, u64, usize)> {
    let (capsule_type, a) = varint::decode(buf)?;
    let (len, b) = varint::decode(buf.get(a..)?)?;
    Some((capsule_type, len, a + b))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn wire(capsules: &[(u64, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (t, v) in capsules {
            encode(*t, v, &mut out).unwrap();
        }
        out
    }

    /// Feeds `data` in chunks of `chunk` bytes; returns the capsules.
    fn feed(dec: &mut CapsuleDecoder, data: &[u8], chunk: usize) -> Result<Vec<Capsule>, CapsuleError> {
        let mut out = Vec::new();
        for part in data.chunks(chunk.max(1)) {
            let mut input = part;
            while let Some(c) = dec.decode(&mut input)? {
                out.push(c);
            }
            assert!(input.is_empty());
        }
        Ok(out)
    }

    #[test]
    fn known_encoding() {
        // DATAGRAM capsule, 3-byte value: 0x00 0x03 'a' 'b' 'c'.
        assert_eq!(wire(&[(0, b"abc")]), [0x00, 0x03, b'a', b'b', b'c']);
        // 0x2843 needs a 2-byte varint: 0x4000 | 0x2843.
        assert_eq!(wire(&[(0x2843, b"")]), [0x68, 0x43, 0x00]);
        assert_eq!(header_len(0x2843, 70), 2 + 2);
    }

    #[test]
    fn round_trip_every_chunking() {
        let big = vec![0x5a; 3000];
        let caps: Vec<(u64, &[u8])> = vec![(0, b"first"), (0, b""), (0, &big), (0, b"last")];
        let data = wire(&caps);
        for chunk in [1, 2, 3, 7, 16, 17, 100, data.len()] {
            let mut dec = CapsuleDecoder::default();
            let got = feed(&mut dec, &data, chunk).unwrap();
            assert_eq!(got.len(), 4, "chunk {chunk}");
            for (g, (t, v)) in got.iter().zip(&caps) {
                assert_eq!(g.capsule_type, *t);
                assert_eq!(&g.value[..], *v);
                assert!(g.is_datagram());
            }
            assert!(dec.is_idle());
            dec.finish().unwrap();
        }
    }

    #[test]
    fn truncated() {
        let data = wire(&[(0, b"hello world")]);
        // Every strict prefix leaves the decoder mid-capsule.
        for cut in 1..data.len() {
            let mut dec = CapsuleDecoder::default();
            let got = feed(&mut dec, &data[..cut], 4).unwrap();
            assert!(got.is_empty(), "cut {cut}");
            assert!(!dec.is_idle());
            assert_eq!(dec.finish(), Err(CapsuleError::Truncated), "cut {cut}");
        }
        // A truncated unknown capsule is just as incomplete.
        let data = wire(&[(0x77, b"skip me")]);
        let mut dec = CapsuleDecoder::default();
        feed(&mut dec, &data[..4], 1).unwrap();
        assert_eq!(dec.finish(), Err(CapsuleError::Truncated));
    }

    #[test]
    fn oversized_length() {
        let mut dec = CapsuleDecoder::new(100);
        let mut data = Vec::new();
        encode_header(0, 101, &mut data).unwrap();
        // Rejected from the header alone, before any value byte arrives.
        assert_eq!(feed(&mut dec, &data, 1), Err(CapsuleError::TooLarge { len: 101, max: 100 }));
        // At the bound is fine.
        let mut dec = CapsuleDecoder::new(100);
        let ok = wire(&[(0, &[7u8; 100])]);
        assert_eq!(feed(&mut dec, &ok, 9).unwrap()[0].value.len(), 100);
        // The largest varint length.
        let mut dec = CapsuleDecoder::new(100);
        let huge = [0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(feed(&mut dec, &huge, 3), Err(CapsuleError::TooLarge { .. })));
    }

    #[test]
    fn unknown_types_skipped() {
        // Unknown types of any length (even above the bound) are skipped
        // without buffering; the capsules around them still arrive.
        let big = vec![1u8; 5000];
        let data = wire(&[(0x21, b"grease"), (0, b"one"), (0x2843, &big), (0x3fff_ffff_ffff_ffff, b""), (0, b"two")]);
        for chunk in [1, 5, 64, data.len()] {
            let mut dec = CapsuleDecoder::new(16);
            let got = feed(&mut dec, &data, chunk).unwrap();
            let values: Vec<&[u8]> = got.iter().map(|c| &c.value[..]).collect();
            assert_eq!(values, [&b"one"[..], &b"two"[..]], "chunk {chunk}");
            assert_eq!(dec.skipped(), 3);
            dec.finish().unwrap();
        }
        // An application can opt in to a type.
        let mut dec = CapsuleDecoder::new(16);
        dec.deliver_type(0x21);
        let got = feed(&mut dec, &wire(&[(0x21, b"grease"), (0, b"x")]), 2).unwrap();
        assert_eq!(got[0], Capsule { capsule_type: 0x21, value: Bytes::from_static(b"grease") });
        assert_eq!(got[1], Capsule::datagram(Bytes::from_static(b"x")));
    }

    #[test]
    fn unencodable() {
        let mut out = Vec::new();
        assert_eq!(encode(1 << 62, b"", &mut out), Err(CapsuleError::Unencodable));
        assert!(out.is_empty());
    }
}
