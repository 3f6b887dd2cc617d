//! A fast hasher for maps keyed by integers we assign (stream IDs): the
//! standard SipHash costs more per lookup than the rest of frame handling.
//! Not for keys an attacker chooses freely (peer-chosen connection IDs stay
//! on the keyed default hasher, which resists collision flooding).

use core::hash::{BuildHasherDefault, Hasher};

/// Multiply-rotate hashing of 64-bit words (the scheme of Firefox's FxHash).
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(SEED);
    }

    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
}

pub type FastBuildHasher = BuildHasherDefault<FastHasher>;
pub type FastHashMap<K, V> = std::collections::HashMap<K, V, FastBuildHasher>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_stream_ids() {
        let mut m: FastHashMap<u64, u64> = FastHashMap::default();
        for i in 0..10_000u64 {
            m.insert(i * 4, i);
        }
        assert_eq!(m.len(), 10_000);
        assert_eq!(m.get(&(4 * 777)), Some(&777));
    }
}
