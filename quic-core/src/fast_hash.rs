//! A fast hasher for maps keyed by integers we assign (stream IDs): the
//! standard SipHash costs more per lookup than the rest of frame handling.
//! Not for keys an attacker chooses freely (peer-chosen connection IDs stay
//! on the keyed default hasher, which resists collision flooding).

use core::hash::{BuildHasherDefault, Hasher};

/// `bytes` as little-endian 64-bit words, the last one zero-padded.
fn le_words(bytes: &[u8]) -> impl Iterator<Item = u64> + '_ {
    bytes.chunks(8).map(|chunk| {
        let mut b = [0u8; 8];
        for (d, s) in b.iter_mut().zip(chunk) {
            *d = *s;
        }
        u64::from_le_bytes(b)
    })
}

/// Multiply-rotate hashing of 64-bit words (the scheme of Firefox's FxHash).
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for w in le_words(bytes) {
            self.write_u64(w);
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

/// A keyed hasher for byte-string keys we issue but peers send back to be
/// looked up (our connection IDs in the endpoint's routing table): each
/// 8-byte word goes through a 64×64→128-bit multiply whose halves are
/// folded together, so every input bit reaches the low bits hashbrown
/// indexes with. FxHash's plain multiply would not do: the low bits of a
/// product depend only on the low bits of the input, and connection IDs
/// with a fixed first octet and server ID (QUIC-LB) would all land in one
/// bucket group. Keyed per map from the CSPRNG, so a peer cannot aim
/// lookups at a bucket; not meant for maps whose *keys* a peer chooses
/// (those keep SipHash).
#[derive(Debug, Clone, Copy)]
pub struct KeyedBuildHasher {
    k0: u64,
    k1: u64,
}

/// Odd multiplier (the fractional part of π): spreads structured input.
const FOLD_MULT: u64 = 0x243f_6a88_85a3_08d3;

fn folded_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

impl KeyedBuildHasher {
    pub fn new(rng: &mut dyn crate::rand::RandomSource) -> Self {
        Self { k0: rng.next_u64(), k1: rng.next_u64() | 1 }
    }
}

impl core::hash::BuildHasher for KeyedBuildHasher {
    type Hasher = KeyedHasher;
    fn build_hasher(&self) -> KeyedHasher {
        KeyedHasher { h: self.k0, k: self.k1 }
    }
}

/// See [`KeyedBuildHasher`].
#[derive(Debug, Clone, Copy)]
pub struct KeyedHasher {
    h: u64,
    k: u64,
}

impl Hasher for KeyedHasher {
    fn finish(&self) -> u64 {
        folded_mul(self.h, self.k)
    }

    fn write(&mut self, bytes: &[u8]) {
        // The length first: "ab" and "ab\0" pad to the same word.
        self.h = folded_mul(self.h ^ bytes.len() as u64, FOLD_MULT);
        for w in le_words(bytes) {
            self.write_u64(w);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.h = folded_mul(self.h ^ v, self.k ^ FOLD_MULT);
    }

    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
}

pub type KeyedHashMap<K, V> = std::collections::HashMap<K, V, KeyedBuildHasher>;

#[cfg(test)]
mod tests {
    use super::*;
    use core::hash::BuildHasher;

    /// Keys that differ only in their high bytes (a fixed prefix, like a
    /// QUIC-LB first octet and server ID, then a counter) still spread
    /// over the low bits a hash table indexes with.
    #[test]
    fn keyed_hash_spreads_keys_with_a_fixed_prefix() {
        let b = KeyedBuildHasher::new(&mut crate::rand::SeededRandom::new(7));
        let mut buckets = std::collections::HashSet::new();
        for i in 0..256u64 {
            let mut key = [0x40u8, 0x12, 0x34, 0, 0, 0, 0, 0];
            key[4..].copy_from_slice(&(i as u32).to_be_bytes());
            buckets.insert(b.hash_one(key) & 0xff);
        }
        // 256 keys into 256 buckets at random fill about 63 % of them.
        assert!(buckets.len() > 140, "{} of 256 low-byte values used", buckets.len());
        // FxHash puts them all in one place: the reason this hasher exists.
        let fx = FastBuildHasher::default();
        let fx_buckets: std::collections::HashSet<u64> = (0..256u64)
            .map(|i| {
                let mut key = [0x40u8, 0x12, 0x34, 0, 0, 0, 0, 0];
                key[4..].copy_from_slice(&(i as u32).to_be_bytes());
                fx.hash_one(u64::from_le_bytes(key)) & 0xff
            })
            .collect();
        assert!(fx_buckets.len() < 8, "{}", fx_buckets.len());
    }

    #[test]
    fn keyed_hash_depends_on_the_key_and_the_length() {
        let mut r = crate::rand::SeededRandom::new(1);
        let (a, b) = (KeyedBuildHasher::new(&mut r), KeyedBuildHasher::new(&mut r));
        assert_ne!(a.hash_one(b"connection-id"), b.hash_one(b"connection-id"));
        let h = |bytes: &[u8]| {
            let mut s = a.build_hasher();
            s.write(bytes);
            s.finish()
        };
        assert_ne!(h(b"ab"), h(b"ab\0"));
    }

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
