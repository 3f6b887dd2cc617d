//! Packet number encoding and decoding (RFC 9000 §17.1, Appendix A.2–A.3).
//!
//! Packet numbers are integers in 0..2^62 sent truncated to 1–4 bytes; the
//! receiver reconstructs the full value from the largest number it has
//! successfully processed in the same space.

/// Largest packet number (RFC 9000 §12.3).
pub const MAX_PACKET_NUMBER: u64 = (1 << 62) - 1;

/// Bytes needed to send `full_pn` so that a receiver who has seen
/// `largest_acked` (our view of what it has acknowledged) can recover it.
///
/// RFC 9000 §17.1: the sender uses a size able to represent more than twice
/// the range between the largest acknowledged packet and the one being sent.
pub fn encoded_len(full_pn: u64, largest_acked: Option<u64>) -> usize {
    let num_unacked = match largest_acked {
        Some(la) => full_pn.saturating_sub(la),
        None => full_pn.saturating_add(1),
    };
    // Twice the range, plus one bit for the sign of the window: A.2 computes
    // min_bits = log2(num_unacked) + 1 and rounds up to bytes.
    let min_bits = 64 - num_unacked.leading_zeros() + 1;
    (min_bits.div_ceil(8) as usize).clamp(1, 4)
}

/// Writes the low `len` bytes of `full_pn`, big-endian, into `out`.
/// Returns false when `len` is not 1..=4 or `out` is too short.
pub fn write_truncated(full_pn: u64, len: usize, out: &mut [u8]) -> bool {
    if !(1..=4).contains(&len) {
        return false;
    }
    let Some(dst) = out.get_mut(..len) else {
        return false;
    };
    let be = full_pn.to_be_bytes();
    dst.copy_from_slice(&be[8 - len..]);
    true
}

/// Reads a truncated packet number of `bytes.len()` (1..=4) bytes.
pub fn read_truncated(bytes: &[u8]) -> u64 {
    bytes.iter().take(4).fold(0u64, |acc, b| (acc << 8) | *b as u64)
}

/// Recovers the full packet number from its truncated form (RFC 9000 A.3).
///
/// `largest_pn` is the largest packet number successfully processed in this
/// space, `None` before the first one.
pub fn decode(truncated_pn: u64, pn_nbits: u32, largest_pn: Option<u64>) -> u64 {
    let expected_pn = largest_pn.map_or(0, |l| l.saturating_add(1));
    let pn_win = 1u64 << pn_nbits;
    let pn_hwin = pn_win / 2;
    let pn_mask = pn_win - 1;
    // The candidate is the value closest to expected_pn whose low bits match.
    let candidate_pn = (expected_pn & !pn_mask) | truncated_pn;
    if candidate_pn.saturating_add(pn_hwin) <= expected_pn && candidate_pn < (1u64 << 62).saturating_sub(pn_win) {
        return candidate_pn + pn_win;
    }
    if candidate_pn > expected_pn.saturating_add(pn_hwin) && candidate_pn >= pn_win {
        return candidate_pn - pn_win;
    }
    candidate_pn
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_a2_example() {
        // RFC 9000 A.2: largest acked 0xabe8b3, sending 0xac5c02 needs 16 bits;
        // sending 0xace8fe needs 24 bits.
        assert_eq!(encoded_len(0xac5c02, Some(0xabe8b3)), 2);
        assert_eq!(encoded_len(0xace8fe, Some(0xabe8b3)), 3);
        assert_eq!(encoded_len(0, None), 1);
        assert_eq!(encoded_len(MAX_PACKET_NUMBER, None), 4);
    }

    #[test]
    fn rfc_a3_example() {
        // RFC 9000 A.3: largest 0xa82f30ea, 16-bit truncated 0x9b32 -> 0xa82f9b32.
        assert_eq!(decode(0x9b32, 16, Some(0xa82f30ea)), 0xa82f9b32);
    }

    #[test]
    fn round_trips_near_window_edges() {
        for largest in [0u64, 1, 200, 255, 256, 65_535, 1 << 31, 0x12_3456_789a] {
            for delta in [1u64, 2, 100, 127, 128, 1000, 32_767] {
                let pn = largest + delta;
                let len = encoded_len(pn, Some(largest));
                let mut buf = [0u8; 4];
                assert!(write_truncated(pn, len, &mut buf));
                let t = read_truncated(&buf[..len]);
                assert_eq!(decode(t, len as u32 * 8, Some(largest)), pn, "largest {largest} pn {pn}");
            }
        }
    }

    #[test]
    fn decode_never_overflows() {
        for largest in [None, Some(0), Some(MAX_PACKET_NUMBER - 1), Some(u64::MAX - 1)] {
            for bits in [8, 16, 24, 32] {
                for t in [0u64, 1, (1 << bits) - 1] {
                    let _ = decode(t, bits, largest);
                }
            }
        }
    }
}
