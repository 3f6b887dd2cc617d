//! String literals (RFC 7541 §5.2 as extended by RFC 9204 §4.1.2).
//!
//! An "N-bit prefix string literal" starts mid-byte: bit `N-1` of the first
//! byte is the Huffman flag 'H', and the encoded length follows as an
//! (N-1)-bit prefix integer, then the bytes.

use bytes::Bytes;

use super::huffman::{self, HuffmanError};
use super::prefix_int::{self, IntError};

/// Why a string literal could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringError {
    /// The input ends inside the literal; more bytes may complete it.
    Incomplete,
    /// The length does not fit in 62 bits or uses too many bytes.
    IntegerOverflow,
    /// The (decoded) string is longer than the caller's limit.
    TooLong,
    /// Invalid Huffman data.
    Huffman(HuffmanError),
}

impl From<IntError> for StringError {
    fn from(e: IntError) -> Self {
        match e {
            IntError::Incomplete => StringError::Incomplete,
            IntError::Overflow => StringError::IntegerOverflow,
        }
    }
}

/// Whether `data` is shorter Huffman-coded; ties stay raw (cheaper to
/// decode).
pub fn prefer_huffman(data: &[u8]) -> bool {
    huffman::encoded_len(data) < data.len()
}

/// Bytes `write` produces for `data`.
pub fn encoded_len(data: &[u8], prefix_bits: u8, allow_huffman: bool) -> usize {
    let body = if allow_huffman && prefer_huffman(data) { huffman::encoded_len(data) } else { data.len() };
    prefix_int::encoded_len(body as u64, prefix_bits - 1) + body
}

/// Appends `data` as an N-bit prefix string literal (`prefix_bits` = N, 2..=8,
/// counting the H bit). `flags` are the high `8 - N` bits of the first byte.
/// Huffman coding is used when allowed and shorter.
pub fn write(data: &[u8], prefix_bits: u8, flags: u8, allow_huffman: bool, out: &mut Vec<u8>) {
    debug_assert!((2..=8).contains(&prefix_bits));
    let h_bit = 1u8 << (prefix_bits - 1);
    if allow_huffman && prefer_huffman(data) {
        let len = huffman::encoded_len(data);
        prefix_int::encode(len as u64, prefix_bits - 1, flags | h_bit, out);
        huffman::encode(data, out);
    } else {
        prefix_int::encode(data.len() as u64, prefix_bits - 1, flags, out);
        out.extend_from_slice(data);
    }
}

/// Reads an N-bit prefix string literal at the start of `buf`. Returns the
/// decoded string and the number of bytes consumed.
///
/// `max_len` bounds the decoded length; it is checked before anything is
/// allocated (for Huffman data, against the shortest possible decoding,
/// 8 bits per 30-bit code), so a peer cannot make us allocate more than
/// `max_len` bytes, or more than `buf` holds.
pub fn read(buf: &[u8], prefix_bits: u8, max_len: usize) -> Result<(Bytes, usize), StringError> {
    debug_assert!((2..=8).contains(&prefix_bits));
    let end = literal_len(buf, prefix_bits, max_len)?;
    // literal_len succeeded, so the first byte and the length are present.
    let huffman_coded = buf.first().is_some_and(|b| b & (1u8 << (prefix_bits - 1)) != 0);
    let int_len = prefix_int::decode(buf, prefix_bits - 1)?.1;
    let data = buf.get(int_len..end).ok_or(StringError::Incomplete)?;
    let s = if huffman_coded {
        let mut out = Vec::new();
        huffman::decode(data, &mut out).map_err(StringError::Huffman)?;
        if out.len() > max_len {
            return Err(StringError::TooLong);
        }
        // `Bytes::from` a Vec with spare capacity allocates a second block
        // for the shared count; the decoder reserved 8/5 of the input, so
        // the shrink is in place for the allocator.
        out.shrink_to_fit();
        Bytes::from(out)
    } else {
        Bytes::copy_from_slice(data)
    };
    Ok((s, end))
}

/// Total length of the N-bit prefix string literal at the start of `buf`
/// without decoding it, after the same length check as [`read`]. Returns
/// `Incomplete` only while the length itself is incomplete. Lets incremental
/// parsers wait for a whole instruction cheaply.
pub fn literal_len(buf: &[u8], prefix_bits: u8, max_len: usize) -> Result<usize, StringError> {
    let first = *buf.first().ok_or(StringError::Incomplete)?;
    let huffman_coded = first & (1u8 << (prefix_bits - 1)) != 0;
    let (len, int_len) = prefix_int::decode(buf, prefix_bits - 1)?;
    let len = usize::try_from(len).map_err(|_| StringError::TooLong)?;
    let min_decoded = if huffman_coded { len.saturating_mul(8) / 30 } else { len };
    if min_decoded > max_len {
        return Err(StringError::TooLong);
    }
    int_len.checked_add(len).ok_or(StringError::TooLong)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trip_each_prefix() {
        for n in 2..=8u8 {
            for s in [&b""[..], b"a", b"custom-key", &[0xff; 200][..], b"www.example.com"] {
                for huff in [false, true] {
                    // Set every bit outside the literal: read must ignore them.
                    let flags = !(((1u16 << n) - 1) as u8);
                    let mut out = Vec::new();
                    write(s, n, flags, huff, &mut out);
                    assert_eq!(out.len(), encoded_len(s, n, huff));
                    let (got, used) = read(&out, n, 1000).unwrap();
                    assert_eq!(&got[..], s);
                    assert_eq!(used, out.len());
                    assert_eq!(literal_len(&out, n, 1000).unwrap(), out.len());
                    for cut in 0..out.len() {
                        assert_eq!(read(&out[..cut], n, 1000), Err(StringError::Incomplete));
                    }
                }
            }
        }
    }

    #[test]
    fn huffman_flag_and_length() {
        // RFC 7541 C.4.1: "www.example.com" with H=1, length 12.
        let mut out = Vec::new();
        write(b"www.example.com", 8, 0, true, &mut out);
        assert_eq!(out[0], 0x8c);
        let mut out = Vec::new();
        write(b"www.example.com", 8, 0, false, &mut out);
        assert_eq!(out[0], 0x0f);
    }

    #[test]
    fn limits_checked_before_allocation() {
        // Claims 2^40 raw bytes: rejected as too long, not incomplete.
        let mut buf = Vec::new();
        prefix_int::encode(1 << 40, 7, 0, &mut buf);
        assert_eq!(read(&buf, 8, 1 << 20), Err(StringError::TooLong));
        // 10 raw bytes with a limit of 9.
        let mut buf = Vec::new();
        write(b"0123456789", 8, 0, false, &mut buf);
        assert_eq!(read(&buf, 8, 9), Err(StringError::TooLong));
        // Huffman string decoding to more than the limit.
        let mut buf = Vec::new();
        write(b"aaaaaaaaaaaaaaaaaaaa", 8, 0, true, &mut buf);
        assert_eq!(read(&buf, 8, 19), Err(StringError::TooLong));
        assert_eq!(read(&buf, 8, 20).unwrap().0.len(), 20);
        // Bad Huffman.
        assert_eq!(read(&[0x81, 0x00], 8, 100), Err(StringError::Huffman(HuffmanError::InvalidPadding)));
    }
}
