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

/// Random bytes drawn from another source in one call and handed out in
/// order, for a burst of draws known in advance: a server issuing its
/// connection IDs after a handshake made one `getrandom` system call per
/// ID. Nothing is kept past the burst (the buffer is on the stack of the
/// caller), so a forked process never replays it.
pub(crate) struct Prefetched<'a> {
    inner: &'a mut dyn RandomSource,
    buf: [u8; PREFETCH_MAX],
    pos: usize,
    len: usize,
}

/// Enough for eight 20-byte IDs with their 16-byte reset tokens.
pub(crate) const PREFETCH_MAX: usize = 8 * (20 + 16);

impl<'a> Prefetched<'a> {
    /// Draws `want` bytes (at most [`PREFETCH_MAX`]) from `inner` now.
    pub(crate) fn new(inner: &'a mut dyn RandomSource, want: usize) -> Self {
        let mut buf = [0u8; PREFETCH_MAX];
        let len = want.min(PREFETCH_MAX);
        if let Some(draw) = buf.get_mut(..len) {
            inner.fill(draw);
        }
        Self { inner, buf, pos: 0, len }
    }
}

impl RandomSource for Prefetched<'_> {
    fn fill(&mut self, out: &mut [u8]) {
        match self.buf.get(self.pos..self.len).and_then(|left| left.get(..out.len())) {
            Some(bytes) => {
                out.copy_from_slice(bytes);
                self.pos += out.len();
            }
            // More than was prefetched: straight from the source.
            None => self.inner.fill(out),
        }
    }

    fn fork(&mut self) -> Box<dyn RandomSource> {
        self.inner.fork()
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

    /// Counts the calls made to a seeded source.
    struct Counting(SeededRandom, usize);

    impl RandomSource for Counting {
        fn fill(&mut self, buf: &mut [u8]) {
            self.1 += 1;
            self.0.fill(buf);
        }
        fn fork(&mut self) -> Box<dyn RandomSource> {
            self.0.fork()
        }
    }

    #[test]
    fn prefetched_bytes_come_out_in_order_from_one_draw_then_straight_from_the_source() {
        let mut reference = SeededRandom::new(3);
        let mut expected = [0u8; 40];
        reference.fill(&mut expected);
        let mut src = Counting(SeededRandom::new(3), 0);
        let mut got = [0u8; 40];
        {
            let mut p = Prefetched::new(&mut src, 40);
            for chunk in got.chunks_mut(8) {
                p.fill(chunk);
            }
        }
        assert_eq!(got, expected, "the draw, handed out in order");
        assert_eq!(src.1, 1, "one call to the source for five draws");
        let mut more = [0u8; 8];
        {
            let mut p = Prefetched::new(&mut src, 4);
            p.fill(&mut more);
        }
        assert_ne!(more, [0u8; 8]);
        assert_eq!(src.1, 3, "a draw larger than what is left goes to the source");
        // A request beyond the buffer is capped, not a panic.
        let p = Prefetched::new(&mut src, PREFETCH_MAX + 1);
        assert_eq!(p.len, PREFETCH_MAX);
    }

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
