//! Prefixed integers (RFC 7541 §5.1, used unmodified by RFC 9204 §4.1.1).
//!
//! An integer starts in the low `N` bits of a byte whose high `8 - N` bits
//! belong to the enclosing representation. If it does not fit in the prefix,
//! the prefix is all ones and the remainder follows in 7-bit groups, least
//! significant first, with the high bit of each byte meaning "more follows".
//!
//! These are not QUIC variable-length integers.

/// Largest value accepted: RFC 9204 §4.1.1 requires decoding integers of up
/// to 62 bits, and nothing in QPACK or HTTP/3 needs more.
pub const MAX_VALUE: u64 = (1 << 62) - 1;

/// At most this many continuation bytes are read. Nine carry 63 bits, so ten
/// leave room for one redundant zero byte from a lax encoder and no more;
/// beyond that a peer is only trying to make us spin.
pub const MAX_CONTINUATION_BYTES: usize = 10;

/// Why an integer could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntError {
    /// The input ends inside the integer; more bytes may complete it.
    Incomplete,
    /// Larger than [`MAX_VALUE`] or longer than [`MAX_CONTINUATION_BYTES`].
    Overflow,
}

/// Mask of the low `prefix_bits` bits. `prefix_bits` must be 1..=8.
#[inline]
const fn prefix_mask(prefix_bits: u8) -> u8 {
    // 1..=8 bits: (1 << 8) - 1 would overflow u8, so compute in u16.
    ((1u16 << prefix_bits) - 1) as u8
}

/// Number of bytes `encode` writes for `value` with an N-bit prefix.
pub fn encoded_len(value: u64, prefix_bits: u8) -> usize {
    debug_assert!((1..=8).contains(&prefix_bits));
    let mask = u64::from(prefix_mask(prefix_bits));
    if value < mask {
        return 1;
    }
    let mut rest = value - mask;
    let mut n = 2;
    while rest >= 0x80 {
        rest >>= 7;
        n += 1;
    }
    n
}

/// Appends `value` with an N-bit prefix. `flags` supplies the high
/// `8 - prefix_bits` bits of the first byte (its low bits must be zero).
///
/// Values above [`MAX_VALUE`] are never produced by this crate; they are
/// still encoded correctly (a peer may reject them).
pub fn encode(value: u64, prefix_bits: u8, flags: u8, out: &mut Vec<u8>) {
    debug_assert!((1..=8).contains(&prefix_bits));
    let mask = prefix_mask(prefix_bits);
    debug_assert_eq!(flags & mask, 0, "flags overlap the integer prefix");
    // RFC 7541 §5.1: if the value fits in the prefix, it is the prefix.
    if value < u64::from(mask) {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | mask);
    let mut rest = value - u64::from(mask);
    while rest >= 0x80 {
        out.push(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    out.push(rest as u8);
}

/// Decodes an integer with an N-bit prefix from the start of `buf` (the high
/// bits of the first byte are ignored). Returns the value and the number of
/// bytes consumed.
pub fn decode(buf: &[u8], prefix_bits: u8) -> Result<(u64, usize), IntError> {
    debug_assert!((1..=8).contains(&prefix_bits));
    let mask = prefix_mask(prefix_bits);
    let first = *buf.first().ok_or(IntError::Incomplete)?;
    let mut value = u64::from(first & mask);
    if value < u64::from(mask) {
        return Ok((value, 1));
    }
    let mut shift = 0u32;
    for i in 0..MAX_CONTINUATION_BYTES {
        let byte = *buf.get(1 + i).ok_or(IntError::Incomplete)?;
        let bits = u64::from(byte & 0x7f);
        if bits != 0 {
            // The group must land entirely below bit 62.
            if shift >= 62 || (bits << shift) >> shift != bits {
                return Err(IntError::Overflow);
            }
            value = value.checked_add(bits << shift).ok_or(IntError::Overflow)?;
            if value > MAX_VALUE {
                return Err(IntError::Overflow);
            }
        }
        if byte & 0x80 == 0 {
            return Ok((value, 2 + i));
        }
        shift += 7;
    }
    Err(IntError::Overflow)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn enc(v: u64, n: u8, flags: u8) -> Vec<u8> {
        let mut out = Vec::new();
        encode(v, n, flags, &mut out);
        assert_eq!(out.len(), encoded_len(v, n));
        out
    }

    #[test]
    fn rfc7541_c1_examples() {
        // C.1.1: 10 with a 5-bit prefix.
        assert_eq!(enc(10, 5, 0), [0x0a]);
        assert_eq!(decode(&[0x0a], 5).unwrap(), (10, 1));
        // C.1.2: 1337 with a 5-bit prefix.
        assert_eq!(enc(1337, 5, 0), [0x1f, 0x9a, 0x0a]);
        assert_eq!(decode(&[0x1f, 0x9a, 0x0a], 5).unwrap(), (1337, 3));
        // C.1.3: 42 at an octet boundary.
        assert_eq!(enc(42, 8, 0), [0x2a]);
        assert_eq!(decode(&[0x2a], 8).unwrap(), (42, 1));
    }

    #[test]
    fn flags_are_kept_and_ignored_on_decode() {
        assert_eq!(enc(3, 6, 0xc0), [0xc3]);
        assert_eq!(decode(&[0xc3], 6).unwrap(), (3, 1));
        // Exactly the prefix maximum needs a zero continuation byte.
        assert_eq!(enc(63, 6, 0x80), [0xbf, 0x00]);
        assert_eq!(decode(&[0xbf, 0x00], 6).unwrap(), (63, 2));
    }

    #[test]
    fn round_trip_all_prefixes() {
        for n in 1..=8u8 {
            for v in [0, 1, 2, 126, 127, 128, 254, 255, 256, 16_383, 1 << 20, MAX_VALUE] {
                let b = enc(v, n, 0);
                assert_eq!(decode(&b, n).unwrap(), (v, b.len()), "v={v} n={n}");
                // Every strict prefix is incomplete, never an error.
                for cut in 0..b.len() {
                    assert_eq!(decode(&b[..cut], n), Err(IntError::Incomplete));
                }
            }
        }
    }

    #[test]
    fn rejects_values_over_62_bits() {
        let mut b = Vec::new();
        encode(MAX_VALUE + 1, 5, 0, &mut b);
        assert_eq!(decode(&b, 5), Err(IntError::Overflow));
        let mut b = Vec::new();
        encode(u64::MAX, 8, 0, &mut b);
        assert_eq!(decode(&b, 8), Err(IntError::Overflow));
    }

    #[test]
    fn rejects_too_many_continuation_bytes() {
        // Ten redundant zero groups are tolerated...
        let mut b = vec![0x1f];
        b.extend([0x80; 9]);
        b.push(0x00);
        assert_eq!(decode(&b, 5).unwrap(), (31, 11));
        // ...an eleventh is not, even if the value is small.
        let mut b = vec![0x1f];
        b.extend([0x80; 10]);
        b.push(0x00);
        assert_eq!(decode(&b, 5), Err(IntError::Overflow));
        // Endless continuation is cut off after the limit.
        assert_eq!(decode(&[0xff; 64], 8), Err(IntError::Overflow));
    }
}
