//! Randomness, behind a trait so simulations can be replayed from a seed.
//!
//! Connection IDs, stateless-reset tokens and token nonces must be
//! unpredictable to observers (RFC 9000 §5.1, §10.3), so the default source is
//! the operating system's CSPRNG through ring. Tests use [`SeededRandom`] to
//! make whole connection runs reproducible.

use core::fmt;

pub trait RandomSource: Send {
    fn fill(&mut self, buf: &mut [u8]);

    /// A source for one connection of an endpoint using this one: the OS
    /// CSPRNG again for [`SystemRandom`]; for a seeded source, a seeded
    /// child (so a simulation stays reproducible).
    fn fork(&mut self) -> Box<dyn RandomSource>;

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill(&mut b);
        u64::from_le_bytes(b)
    }
}

/// The operating system's CSPRNG (getrandom) via ring.
pub struct SystemRandom(ring::rand::SystemRandom);

impl SystemRandom {
    pub fn new() -> Self {
        Self(ring::rand::SystemRandom::new())
    }
}

impl Default for SystemRandom {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for SystemRandom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SystemRandom")
    }
}

impl RandomSource for SystemRandom {
    fn fork(&mut self) -> Box<dyn RandomSource> {
        Box::new(SystemRandom::new())
    }

    fn fill(&mut self, buf: &mut [u8]) {
        use ring::rand::SecureRandom;
        // getrandom only fails if the kernel has no entropy source at all;
        // there is no meaningful fallback, and zeros would be a silent bug.
        if self.0.fill(buf).is_err() {
            panic!("operating system random source failed");
        }
    }
}

/// A deterministic generator (xoshiro256**) for tests and simulations. Not
/// for production: its output is predictable from earlier output, so it
/// exists only in test builds and with the `sim` feature (the test
/// harness, the interop relay, the fuzz targets), never in the CLI, the
/// runtime or the PHP extension.
#[cfg(any(test, feature = "sim"))]
#[derive(Debug, Clone)]
pub struct SeededRandom {
    s: [u64; 4],
}

#[cfg(any(test, feature = "sim"))]
impl SeededRandom {
    pub fn new(seed: u64) -> Self {
        // SplitMix64 expands the seed so that nearby seeds give unrelated states.
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Self { s: [next(), next(), next(), next()] }
    }

    pub fn gen_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform-enough value in `0..n` (n > 0) for simulations.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        ((self.gen_u64() as u128 * n as u128) >> 64) as u64
    }

    /// A float in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.gen_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(any(test, feature = "sim"))]
impl RandomSource for SeededRandom {
    fn fork(&mut self) -> Box<dyn RandomSource> {
        Box::new(SeededRandom::new(self.gen_u64()))
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.gen_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// One seeded source shared by an endpoint and its TLS stack, so that a
/// simulated run draws every random byte (connection IDs, tokens, the TLS
/// randoms and key shares) from one seed and replays exactly.
#[cfg(any(test, feature = "sim"))]
#[derive(Debug, Clone)]
pub struct SharedRandom(std::sync::Arc<std::sync::Mutex<SeededRandom>>);

#[cfg(any(test, feature = "sim"))]
impl SharedRandom {
    pub fn new(seed: u64) -> Self {
        Self(std::sync::Arc::new(std::sync::Mutex::new(SeededRandom::new(seed))))
    }

    /// Fills `buf` (a poisoned lock still holds a usable generator).
    pub fn fill_shared(&self, buf: &mut [u8]) {
        let mut g = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        g.fill(buf);
    }
}

#[cfg(any(test, feature = "sim"))]
impl RandomSource for SharedRandom {
    fn fill(&mut self, buf: &mut [u8]) {
        self.fill_shared(buf);
    }

    fn fork(&mut self) -> Box<dyn RandomSource> {
        let mut g = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        g.fork()
    }
}

#[cfg(any(test, feature = "sim"))]
impl rustls::crypto::SecureRandom for SharedRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), rustls::crypto::GetRandomFailed> {
        self.fill_shared(buf);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_is_reproducible_and_spread() {
        let mut a = SeededRandom::new(7);
        let mut b = SeededRandom::new(7);
        let mut c = SeededRandom::new(8);
        let (x, y, z) = (a.gen_u64(), b.gen_u64(), c.gen_u64());
        assert_eq!(x, y);
        assert_ne!(x, z);
        let mut counts = [0u32; 4];
        for _ in 0..4000 {
            counts[a.below(4) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (800..1200).contains(&c)), "{counts:?}");
    }

    #[test]
    fn system_random_fills() {
        let mut r = SystemRandom::new();
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        r.fill(&mut a);
        r.fill(&mut b);
        assert_ne!(a, b);
    }
}
