//! The static Huffman code of RFC 7541 Appendix B (reused unchanged by
//! RFC 9204 §4.1.2).
//!
//! Encoding packs codes MSB-first and pads the last byte with the most
//! significant bits of EOS, i.e. with ones (RFC 7541 §5.2).
//!
//! Decoding runs a 4-bit state machine. States are the internal nodes of the
//! code tree; the transition table for every (state, nibble) pair is computed
//! at compile time by a `const fn` from the code table below. Since no code is
//! shorter than 5 bits, one nibble emits at most one symbol.

/// Why a Huffman string could not be decoded (RFC 7541 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HuffmanError {
    /// The EOS symbol appears in the string.
    EosInString,
    /// The final padding is longer than 7 bits or is not a prefix of EOS
    /// (all ones).
    InvalidPadding,
}

/// (code, bit length) for symbols 0..=255 and EOS (256), RFC 7541 Appendix B.
/// Codes are right-aligned in the `u32`.
const CODES: [(u32, u8); 257] = [
    (0x1ff8, 13),
    (0x7fffd8, 23),
    (0xfffffe2, 28),
    (0xfffffe3, 28),
    (0xfffffe4, 28),
    (0xfffffe5, 28),
    (0xfffffe6, 28),
    (0xfffffe7, 28),
    (0xfffffe8, 28),
    (0xffffea, 24),
    (0x3ffffffc, 30),
    (0xfffffe9, 28),
    (0xfffffea, 28),
    (0x3ffffffd, 30),
    (0xfffffeb, 28),
    (0xfffffec, 28),
    (0xfffffed, 28),
    (0xfffffee, 28),
    (0xfffffef, 28),
    (0xffffff0, 28),
    (0xffffff1, 28),
    (0xffffff2, 28),
    (0x3ffffffe, 30),
    (0xffffff3, 28),
    (0xffffff4, 28),
    (0xffffff5, 28),
    (0xffffff6, 28),
    (0xffffff7, 28),
    (0xffffff8, 28),
    (0xffffff9, 28),
    (0xffffffa, 28),
    (0xffffffb, 28),
    (0x14, 6),
    (0x3f8, 10),
    (0x3f9, 10),
    (0xffa, 12),
    (0x1ff9, 13),
    (0x15, 6),
    (0xf8, 8),
    (0x7fa, 11),
    (0x3fa, 10),
    (0x3fb, 10),
    (0xf9, 8),
    (0x7fb, 11),
    (0xfa, 8),
    (0x16, 6),
    (0x17, 6),
    (0x18, 6),
    (0x0, 5),
    (0x1, 5),
    (0x2, 5),
    (0x19, 6),
    (0x1a, 6),
    (0x1b, 6),
    (0x1c, 6),
    (0x1d, 6),
    (0x1e, 6),
    (0x1f, 6),
    (0x5c, 7),
    (0xfb, 8),
    (0x7ffc, 15),
    (0x20, 6),
    (0xffb, 12),
    (0x3fc, 10),
    (0x1ffa, 13),
    (0x21, 6),
    (0x5d, 7),
    (0x5e, 7),
    (0x5f, 7),
    (0x60, 7),
    (0x61, 7),
    (0x62, 7),
    (0x63, 7),
    (0x64, 7),
    (0x65, 7),
    (0x66, 7),
    (0x67, 7),
    (0x68, 7),
    (0x69, 7),
    (0x6a, 7),
    (0x6b, 7),
    (0x6c, 7),
    (0x6d, 7),
    (0x6e, 7),
    (0x6f, 7),
    (0x70, 7),
    (0x71, 7),
    (0x72, 7),
    (0xfc, 8),
    (0x73, 7),
    (0xfd, 8),
    (0x1ffb, 13),
    (0x7fff0, 19),
    (0x1ffc, 13),
    (0x3ffc, 14),
    (0x22, 6),
    (0x7ffd, 15),
    (0x3, 5),
    (0x23, 6),
    (0x4, 5),
    (0x24, 6),
    (0x5, 5),
    (0x25, 6),
    (0x26, 6),
    (0x27, 6),
    (0x6, 5),
    (0x74, 7),
    (0x75, 7),
    (0x28, 6),
    (0x29, 6),
    (0x2a, 6),
    (0x7, 5),
    (0x2b, 6),
    (0x76, 7),
    (0x2c, 6),
    (0x8, 5),
    (0x9, 5),
    (0x2d, 6),
    (0x77, 7),
    (0x78, 7),
    (0x79, 7),
    (0x7a, 7),
    (0x7b, 7),
    (0x7ffe, 15),
    (0x7fc, 11),
    (0x3ffd, 14),
    (0x1ffd, 13),
    (0xffffffc, 28),
    (0xfffe6, 20),
    (0x3fffd2, 22),
    (0xfffe7, 20),
    (0xfffe8, 20),
    (0x3fffd3, 22),
    (0x3fffd4, 22),
    (0x3fffd5, 22),
    (0x7fffd9, 23),
    (0x3fffd6, 22),
    (0x7fffda, 23),
    (0x7fffdb, 23),
    (0x7fffdc, 23),
    (0x7fffdd, 23),
    (0x7fffde, 23),
    (0xffffeb, 24),
    (0x7fffdf, 23),
    (0xffffec, 24),
    (0xffffed, 24),
    (0x3fffd7, 22),
    (0x7fffe0, 23),
    (0xffffee, 24),
    (0x7fffe1, 23),
    (0x7fffe2, 23),
    (0x7fffe3, 23),
    (0x7fffe4, 23),
    (0x1fffdc, 21),
    (0x3fffd8, 22),
    (0x7fffe5, 23),
    (0x3fffd9, 22),
    (0x7fffe6, 23),
    (0x7fffe7, 23),
    (0xffffef, 24),
    (0x3fffda, 22),
    (0x1fffdd, 21),
    (0xfffe9, 20),
    (0x3fffdb, 22),
    (0x3fffdc, 22),
    (0x7fffe8, 23),
    (0x7fffe9, 23),
    (0x1fffde, 21),
    (0x7fffea, 23),
    (0x3fffdd, 22),
    (0x3fffde, 22),
    (0xfffff0, 24),
    (0x1fffdf, 21),
    (0x3fffdf, 22),
    (0x7fffeb, 23),
    (0x7fffec, 23),
    (0x1fffe0, 21),
    (0x1fffe1, 21),
    (0x3fffe0, 22),
    (0x1fffe2, 21),
    (0x7fffed, 23),
    (0x3fffe1, 22),
    (0x7fffee, 23),
    (0x7fffef, 23),
    (0xfffea, 20),
    (0x3fffe2, 22),
    (0x3fffe3, 22),
    (0x3fffe4, 22),
    (0x7ffff0, 23),
    (0x3fffe5, 22),
    (0x3fffe6, 22),
    (0x7ffff1, 23),
    (0x3ffffe0, 26),
    (0x3ffffe1, 26),
    (0xfffeb, 20),
    (0x7fff1, 19),
    (0x3fffe7, 22),
    (0x7ffff2, 23),
    (0x3fffe8, 22),
    (0x1ffffec, 25),
    (0x3ffffe2, 26),
    (0x3ffffe3, 26),
    (0x3ffffe4, 26),
    (0x7ffffde, 27),
    (0x7ffffdf, 27),
    (0x3ffffe5, 26),
    (0xfffff1, 24),
    (0x1ffffed, 25),
    (0x7fff2, 19),
    (0x1fffe3, 21),
    (0x3ffffe6, 26),
    (0x7ffffe0, 27),
    (0x7ffffe1, 27),
    (0x3ffffe7, 26),
    (0x7ffffe2, 27),
    (0xfffff2, 24),
    (0x1fffe4, 21),
    (0x1fffe5, 21),
    (0x3ffffe8, 26),
    (0x3ffffe9, 26),
    (0xffffffd, 28),
    (0x7ffffe3, 27),
    (0x7ffffe4, 27),
    (0x7ffffe5, 27),
    (0xfffec, 20),
    (0xfffff3, 24),
    (0xfffed, 20),
    (0x1fffe6, 21),
    (0x3fffe9, 22),
    (0x1fffe7, 21),
    (0x1fffe8, 21),
    (0x7ffff3, 23),
    (0x3fffea, 22),
    (0x3fffeb, 22),
    (0x1ffffee, 25),
    (0x1ffffef, 25),
    (0xfffff4, 24),
    (0xfffff5, 24),
    (0x3ffffea, 26),
    (0x7ffff4, 23),
    (0x3ffffeb, 26),
    (0x7ffffe6, 27),
    (0x3ffffec, 26),
    (0x3ffffed, 26),
    (0x7ffffe7, 27),
    (0x7ffffe8, 27),
    (0x7ffffe9, 27),
    (0x7ffffea, 27),
    (0x7ffffeb, 27),
    (0xffffffe, 28),
    (0x7ffffec, 27),
    (0x7ffffed, 27),
    (0x7ffffee, 27),
    (0x7ffffef, 27),
    (0x7fffff0, 27),
    (0x3ffffee, 26),
    (0x3fffffff, 30),
];

const EOS: u16 = 256;

/// Number of bytes the Huffman encoding of `src` takes.
pub fn encoded_len(src: &[u8]) -> usize {
    let bits: u64 = src.iter().map(|&b| u64::from(CODES[usize::from(b)].1)).sum();
    // Whole bytes; the remainder is padded (RFC 7541 §5.2).
    bits.div_ceil(8) as usize
}

/// Appends the Huffman encoding of `src` to `out`.
pub fn encode(src: &[u8], out: &mut Vec<u8>) {
    out.reserve(encoded_len(src));
    // Bits accumulate in the low end of `acc`; at most 7 + 30 are pending.
    let mut acc: u64 = 0;
    let mut pending: u32 = 0;
    for &b in src {
        let (code, len) = CODES[usize::from(b)];
        acc = (acc << len) | u64::from(code);
        pending += u32::from(len);
        while pending >= 8 {
            pending -= 8;
            out.push((acc >> pending) as u8);
        }
        // Drop bits already written so `acc` never overflows.
        acc &= (1u64 << pending) - 1;
    }
    if pending > 0 {
        // Pad with the high bits of EOS: ones.
        let pad = 8 - pending;
        out.push(((acc << pad) | ((1u64 << pad) - 1)) as u8);
    }
}

/// One entry of the decoding state machine.
#[derive(Clone, Copy)]
struct Transition {
    /// Next state (internal node of the code tree; 0 is the root).
    next: u8,
    /// Symbol emitted while consuming this nibble, if `flags & EMIT`.
    sym: u8,
    flags: u8,
}

/// A symbol was completed within the nibble.
const EMIT: u8 = 1;
/// The nibble completes EOS: a decoding error.
const FAIL: u8 = 2;
/// After this nibble the bits since the last symbol are all ones and at most
/// 7 long, so the string may end here.
const ACCEPT: u8 = 4;

/// Number of internal nodes in a full binary tree with 257 leaves.
const NODES: usize = 256;
/// Child slot marking a leaf; the symbol is in the low bits.
const LEAF: u16 = 0x8000;

struct Tables {
    trans: [[Transition; 16]; NODES],
}

/// Builds the code tree, then walks every nibble from every internal node.
const fn build_tables() -> Tables {
    // children[node][bit] = internal node index, or LEAF | symbol; 0 = unset
    // (the root is never anyone's child, so 0 is free as a marker).
    let mut children = [[0u16; 2]; NODES];
    // For each node: depth and whether the path from the root is all ones.
    let mut depth = [0u8; NODES];
    let mut all_ones = [false; NODES];
    all_ones[0] = true;
    let mut next_free = 1usize;

    let mut sym = 0usize;
    while sym < 257 {
        let (code, len) = CODES[sym];
        let mut node = 0usize;
        let mut i = len;
        while i > 0 {
            i -= 1;
            let bit = ((code >> i) & 1) as usize;
            if i == 0 {
                children[node][bit] = LEAF | sym as u16;
            } else {
                if children[node][bit] == 0 {
                    children[node][bit] = next_free as u16;
                    depth[next_free] = depth[node] + 1;
                    all_ones[next_free] = all_ones[node] && bit == 1;
                    next_free += 1;
                }
                node = children[node][bit] as usize;
            }
        }
        sym += 1;
    }
    // A prefix-free complete code with 257 leaves has exactly 256 internal
    // nodes; anything else means the table above is wrong.
    assert!(next_free == NODES);

    let mut trans = [[Transition { next: 0, sym: 0, flags: 0 }; 16]; NODES];
    let mut state = 0usize;
    while state < NODES {
        let mut nibble = 0usize;
        while nibble < 16 {
            let mut node = state;
            let mut t = Transition { next: 0, sym: 0, flags: 0 };
            let mut b = 4;
            while b > 0 {
                b -= 1;
                let bit = (nibble >> b) & 1;
                let child = children[node][bit];
                if child & LEAF != 0 {
                    let s = child & !LEAF;
                    if s == EOS {
                        t.flags |= FAIL;
                    } else {
                        t.flags |= EMIT;
                        t.sym = s as u8;
                    }
                    node = 0;
                } else {
                    node = child as usize;
                }
            }
            t.next = node as u8;
            // RFC 7541 §5.2: padding is the high bits of EOS (ones), < 8 bits.
            if node == 0 || (all_ones[node] && depth[node] <= 7) {
                t.flags |= ACCEPT;
            }
            trans[state][nibble] = t;
            nibble += 1;
        }
        state += 1;
    }
    Tables { trans }
}

static TABLES: Tables = build_tables();

/// Appends the decoding of the Huffman string `src` to `out`.
///
/// On error `out` may hold a partial decoding.
pub fn decode(src: &[u8], out: &mut Vec<u8>) -> Result<(), HuffmanError> {
    // Each symbol takes at least 5 bits.
    out.reserve(src.len() * 8 / 5);
    let mut state = 0u8;
    // An empty string is valid and decodes to nothing.
    let mut accept = true;
    for &byte in src {
        for nibble in [byte >> 4, byte & 0x0f] {
            let t = TABLES.trans[usize::from(state)][usize::from(nibble)];
            if t.flags & FAIL != 0 {
                return Err(HuffmanError::EosInString);
            }
            if t.flags & EMIT != 0 {
                out.push(t.sym);
            }
            state = t.next;
            accept = t.flags & ACCEPT != 0;
        }
    }
    if accept {
        Ok(())
    } else {
        Err(HuffmanError::InvalidPadding)
    }
}

/// Decodes into a new vector.
pub fn decode_to_vec(src: &[u8]) -> Result<Vec<u8>, HuffmanError> {
    let mut out = Vec::new();
    decode(src, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rfc7541_c4_1() {
        let mut out = Vec::new();
        encode(b"www.example.com", &mut out);
        assert_eq!(out, [0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff]);
        assert_eq!(encoded_len(b"www.example.com"), 12);
        assert_eq!(decode_to_vec(&out).unwrap(), b"www.example.com");
    }

    #[test]
    fn every_single_byte_round_trips() {
        for b in 0..=255u8 {
            let mut out = Vec::new();
            encode(&[b], &mut out);
            assert_eq!(out.len(), encoded_len(&[b]));
            assert_eq!(decode_to_vec(&out).unwrap(), [b]);
        }
    }

    #[test]
    fn rejects_eos_and_bad_padding() {
        // 30 ones = EOS.
        assert_eq!(decode_to_vec(&[0xff, 0xff, 0xff, 0xff]), Err(HuffmanError::EosInString));
        // 'a' (00011) then 11 one-bits of padding.
        assert_eq!(decode_to_vec(&[0x1f, 0xff]), Err(HuffmanError::InvalidPadding));
        // 'a' then "000" padding (not ones).
        assert_eq!(decode_to_vec(&[0x18]), Err(HuffmanError::InvalidPadding));
        // 'a' then "111" is fine.
        assert_eq!(decode_to_vec(&[0x1f]).unwrap(), b"a");
        // A full byte of ones alone is padding of 8 bits.
        assert_eq!(decode_to_vec(&[0xff]), Err(HuffmanError::InvalidPadding));
    }
}
