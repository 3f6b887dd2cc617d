//! Variable-length integers (RFC 9000 §16).
//!
//! The two most significant bits of the first byte give the length (1, 2, 4
//! or 8 bytes); the remaining bits hold the value in network byte order, so
//! the largest value is 2^62 - 1.

use core::fmt;

/// An integer below 2^62, the range a QUIC varint can carry.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct VarInt(u64);

/// A value at or above 2^62 cannot be a varint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VarIntOverflow;

impl fmt::Display for VarIntOverflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("value exceeds 2^62 - 1")
    }
}

impl std::error::Error for VarIntOverflow {}

impl VarInt {
    /// RFC 9000 §16: 2^62 - 1.
    pub const MAX: VarInt = VarInt((1 << 62) - 1);
    pub const ZERO: VarInt = VarInt(0);

    pub const fn from_u32(v: u32) -> Self {
        VarInt(v as u64)
    }

    pub const fn new(v: u64) -> Result<Self, VarIntOverflow> {
        if v <= Self::MAX.0 {
            Ok(VarInt(v))
        } else {
            Err(VarIntOverflow)
        }
    }

    /// Saturates at [`VarInt::MAX`]; for values that are limits, where a larger
    /// request means "as much as possible".
    pub const fn saturating(v: u64) -> Self {
        if v <= Self::MAX.0 {
            VarInt(v)
        } else {
            Self::MAX
        }
    }

    pub const fn into_inner(self) -> u64 {
        self.0
    }

    /// Bytes needed on the wire (the minimal encoding, RFC 9000 §16).
    pub const fn size(self) -> usize {
        size(self.0)
    }
}

impl From<VarInt> for u64 {
    fn from(v: VarInt) -> u64 {
        v.0
    }
}
impl From<u32> for VarInt {
    fn from(v: u32) -> Self {
        VarInt(v as u64)
    }
}
impl From<u16> for VarInt {
    fn from(v: u16) -> Self {
        VarInt(v as u64)
    }
}
impl From<u8> for VarInt {
    fn from(v: u8) -> Self {
        VarInt(v as u64)
    }
}
impl TryFrom<u64> for VarInt {
    type Error = VarIntOverflow;
    fn try_from(v: u64) -> Result<Self, VarIntOverflow> {
        VarInt::new(v)
    }
}
impl TryFrom<usize> for VarInt {
    type Error = VarIntOverflow;
    fn try_from(v: usize) -> Result<Self, VarIntOverflow> {
        VarInt::new(v as u64)
    }
}
impl fmt::Debug for VarInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
impl fmt::Display for VarInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Bytes the minimal varint encoding of `v` takes; `v` must be below 2^62.
#[inline]
pub const fn size(v: u64) -> usize {
    if v < (1 << 6) {
        1
    } else if v < (1 << 14) {
        2
    } else if v < (1 << 30) {
        4
    } else {
        8
    }
}

/// Length of a varint from its first byte (RFC 9000 §16, Table 4).
#[inline]
pub const fn len_from_first_byte(b: u8) -> usize {
    1 << (b >> 6)
}

/// Decodes one varint from the front of `buf`, returning the value and the
/// bytes it took. `None` when `buf` is shorter than the encoding.
#[inline]
pub fn decode(buf: &[u8]) -> Option<(u64, usize)> {
    let first = *buf.first()?;
    let len = len_from_first_byte(first);
    let bytes = buf.get(..len)?;
    let mut v = (first & 0x3f) as u64;
    for b in &bytes[1..] {
        v = (v << 8) | *b as u64;
    }
    Some((v, len))
}

/// Encodes `v` minimally at the front of `out`, returning the bytes written,
/// or `None` when `out` is too short or `v` is not below 2^62.
#[inline]
pub fn encode(v: u64, out: &mut [u8]) -> Option<usize> {
    // One ladder picks the length and the store (RFC 9000 §16, Table 4).
    if v < 1 << 6 {
        put(out, [v as u8]).then_some(1)
    } else if v < 1 << 14 {
        put(out, (v as u16 | 0x4000).to_be_bytes()).then_some(2)
    } else if v < 1 << 30 {
        put(out, (v as u32 | 0x8000_0000).to_be_bytes()).then_some(4)
    } else if v < 1 << 62 {
        put(out, (v | 0xc000_0000_0000_0000).to_be_bytes()).then_some(8)
    } else {
        None
    }
}

/// Encodes `v` in exactly `len` bytes (1, 2, 4 or 8), as needed when a length
/// field is reserved before its value is known. Returns false when `v` does
/// not fit in `len` bytes or `out` is too short.
#[inline]
pub fn encode_with_len(v: u64, len: usize, out: &mut [u8]) -> bool {
    // RFC 9000 §16: the two high bits of the first byte give the length.
    // A store of constant size per length: copying a slice of variable
    // length was a `memcpy` call per varint (1 % of a bulk sender, perf).
    match len {
        1 if v < 1 << 6 => put(out, [v as u8]),
        2 if v < 1 << 14 => put(out, (v as u16 | 0x4000).to_be_bytes()),
        4 if v < 1 << 30 => put(out, (v as u32 | 0x8000_0000).to_be_bytes()),
        8 if v < 1 << 62 => put(out, (v | 0xc000_0000_0000_0000).to_be_bytes()),
        _ => false,
    }
}

#[inline(always)]
fn put<const N: usize>(out: &mut [u8], bytes: [u8; N]) -> bool {
    match out.get_mut(..N) {
        Some(dst) => {
            dst.copy_from_slice(&bytes);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 9000 Appendix A.1 examples.
    #[test]
    fn rfc_examples() {
        let cases: &[(&str, u64)] = &[("c2197c5eff14e88c", 151_288_809_941_952_652), ("9d7f3e7d", 494_878_333), ("7bbd", 15_293), ("25", 37), ("4025", 37)];
        for (hex, v) in cases {
            let bytes: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
            assert_eq!(decode(&bytes), Some((*v, bytes.len())), "{hex}");
        }
        let mut out = [0u8; 8];
        assert_eq!(encode(37, &mut out), Some(1));
        assert_eq!(out[0], 0x25);
        assert_eq!(encode(15_293, &mut out), Some(2));
        assert_eq!(&out[..2], &[0x7b, 0xbd]);
    }

    #[test]
    fn bounds() {
        let mut out = [0u8; 8];
        assert_eq!(encode(VarInt::MAX.into_inner(), &mut out), Some(8));
        assert_eq!(decode(&out), Some((VarInt::MAX.into_inner(), 8)));
        assert_eq!(encode(1 << 62, &mut out), None);
        assert!(VarInt::new(1 << 62).is_err());
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&[0x40]), None);
        assert_eq!(encode(300, &mut out[..1]), None);
        assert!(!encode_with_len(64, 1, &mut out));
        assert!(encode_with_len(5, 4, &mut out));
        assert_eq!(decode(&out), Some((5, 4)));
    }

    #[test]
    fn every_length_round_trips_up_to_its_limit_and_refuses_beyond() {
        for (len, limit) in [(1usize, 1u64 << 6), (2, 1 << 14), (4, 1 << 30), (8, 1 << 62)] {
            for v in [0, 1, limit / 2, limit - 1] {
                let mut out = [0xffu8; 9];
                assert!(encode_with_len(v, len, &mut out), "{v} in {len}");
                assert_eq!(decode(&out), Some((v, len)), "{v} in {len}");
                assert_eq!(out[len], 0xff, "nothing written past {len} bytes");
            }
            let mut out = [0u8; 8];
            assert!(!encode_with_len(limit, len, &mut out), "{limit} does not fit in {len}");
            assert!(!encode_with_len(0, len, &mut out[..len - 1]), "buffer shorter than {len}");
        }
        assert!(!encode_with_len(0, 3, &mut [0u8; 8]), "3 bytes is no varint length");
    }
}
