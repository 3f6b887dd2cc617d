//! The response body both servers send for `/bytes/<n>`: byte i is
//! `(i*7 + i/251) mod 256`, the same formula as `quicpro serve`. It repeats
//! every 251 × 256 = 64,256 bytes, so one buffer of a period plus the
//! largest chunk serves any offset as a zero-copy slice, and the generator
//! checks every received byte with one `memcmp` per piece.

use std::sync::OnceLock;

use bytes::Bytes;

/// 251 × 256: (i + P)·7 ≡ i·7 (mod 256) since 256 | P·7, and
/// (i + P)/251 = i/251 + 256.
pub const PERIOD: u64 = 251 * 256;

/// Largest slice handed out at once.
pub const MAX_CHUNK: usize = 256 * 1024;

fn buffer() -> &'static Bytes {
    static BUF: OnceLock<Bytes> = OnceLock::new();
    BUF.get_or_init(|| {
        let len = PERIOD + MAX_CHUNK as u64;
        Bytes::from((0..len).map(|i| (i.wrapping_mul(7).wrapping_add(i / 251)) as u8).collect::<Vec<u8>>())
    })
}

/// `len` (at most [`MAX_CHUNK`]) body bytes starting at `offset`.
pub fn chunk(offset: u64, len: usize) -> Bytes {
    let start = (offset % PERIOD) as usize;
    buffer().slice(start..start + len.min(MAX_CHUNK))
}

/// Whether `data` is exactly the body bytes at `offset`.
pub fn matches(mut offset: u64, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        let n = data.len().min(MAX_CHUNK);
        let start = (offset % PERIOD) as usize;
        let Some(expected) = buffer().get(start..start + n) else { return false };
        if &data[..n] != expected {
            return false;
        }
        data = &data[n..];
        offset += n as u64;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn period_and_slices_agree_with_the_formula() {
        let f = |i: u64| (i.wrapping_mul(7).wrapping_add(i / 251)) as u8;
        for off in [0u64, 1, 250, 251, PERIOD - 1, PERIOD, 3 * PERIOD + 17, 1 << 30] {
            let c = chunk(off, 1000);
            for (k, b) in c.iter().enumerate() {
                assert_eq!(*b, f(off + k as u64), "offset {off} + {k}");
            }
            assert!(matches(off, &c));
        }
        assert!(!matches(1, &chunk(0, 100)));
    }
}
