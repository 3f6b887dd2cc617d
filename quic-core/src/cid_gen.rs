//! Connection ID generation (RFC 9000 §5.1) with room for routing.
//!
//! A server with several workers on one port, and later a load balancer in
//! front of several servers, must be able to tell from a packet's destination
//! connection ID which worker owns the connection. The layout follows the
//! plaintext form of QUIC-LB (draft-ietf-quic-load-balancers §3, §5.2):
//!
//! ```text
//! octet 0        config rotation (3 bits) | random (5 bits)
//! octets 1..=s   server ID (s = server_id_len, may be 0)
//! octet 1+s      worker ID  (QUIC-LB §9.2 "server process demultiplexing":
//!                 the process ID appended to the server ID)
//! rest           random nonce (at least 4 octets)
//! ```
//!
//! The eBPF steering programs read the worker ID at offset `1 + s`; the
//! offset is exported as [`RoutableCidGenerator::worker_id_offset`].

use crate::cid::{ConnectionId, ResetToken, MAX_CID_SIZE};
use crate::rand::RandomSource;

/// Produces the connection IDs an endpoint issues and tells which are its own.
pub trait ConnectionIdGenerator: Send + core::fmt::Debug {
    /// A fresh connection ID. Every ID this generator makes has the same length.
    fn generate(&mut self, rng: &mut dyn RandomSource) -> ConnectionId;

    /// Length of the generated IDs; short headers do not carry it (RFC 9000 §17.3.1).
    fn cid_len(&self) -> usize;

    /// Whether `cid` could have been produced by this generator (e.g. it
    /// names this worker); used to drop packets for other workers quickly.
    fn validate(&self, cid: &[u8]) -> bool {
        cid.len() == self.cid_len()
    }
}

/// Random IDs of a fixed length with no structure: for clients and for
/// single-process servers.
#[derive(Debug, Clone)]
pub struct RandomCidGenerator {
    len: usize,
}

impl RandomCidGenerator {
    /// `len` is clamped to 0..=20.
    pub fn new(len: usize) -> Self {
        Self { len: len.min(MAX_CID_SIZE) }
    }
}

impl ConnectionIdGenerator for RandomCidGenerator {
    fn generate(&mut self, rng: &mut dyn RandomSource) -> ConnectionId {
        let mut buf = [0u8; MAX_CID_SIZE];
        rng.fill(&mut buf[..self.len]);
        ConnectionId::new(&buf[..self.len]).unwrap_or(ConnectionId::EMPTY)
    }
    fn cid_len(&self) -> usize {
        self.len
    }
}

/// Structured IDs carrying a server ID and a worker ID (see module docs).
#[derive(Debug, Clone)]
pub struct RoutableCidGenerator {
    config_rotation: u8,
    server_id: [u8; 8],
    server_id_len: usize,
    worker_id: u8,
    len: usize,
}

/// The requested layout does not fit in a 20-byte connection ID with a
/// 4-byte nonce, or the config rotation is the reserved 0b111.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidCidLayout;

impl RoutableCidGenerator {
    /// QUIC-LB §5.2: at least 4 octets of nonce.
    pub const MIN_NONCE_LEN: usize = 4;

    pub fn new(config_rotation: u8, server_id: &[u8], worker_id: u8, len: usize) -> Result<Self, InvalidCidLayout> {
        // QUIC-LB §3.1: 0b111 marks unroutable IDs and is not a configuration.
        if config_rotation > 6 || server_id.len() > 8 {
            return Err(InvalidCidLayout);
        }
        let fixed = 1 + server_id.len() + 1;
        if len > MAX_CID_SIZE || len < fixed + Self::MIN_NONCE_LEN {
            return Err(InvalidCidLayout);
        }
        let mut sid = [0u8; 8];
        sid[..server_id.len()].copy_from_slice(server_id);
        Ok(Self { config_rotation, server_id: sid, server_id_len: server_id.len(), worker_id, len })
    }

    /// A generator for worker `worker_id` of a single server: 8-byte IDs, no
    /// server ID, config rotation 0.
    pub fn for_worker(worker_id: u8) -> Self {
        Self { config_rotation: 0, server_id: [0; 8], server_id_len: 0, worker_id, len: 8 }
    }

    /// Offset of the worker ID byte inside every generated ID.
    pub fn worker_id_offset(&self) -> usize {
        1 + self.server_id_len
    }

    pub fn worker_id(&self) -> u8 {
        self.worker_id
    }

    /// Reads the worker ID from an ID made with the same layout.
    pub fn worker_of(&self, cid: &[u8]) -> Option<u8> {
        if cid.len() != self.len || cid.first()? >> 5 != self.config_rotation {
            return None;
        }
        cid.get(self.worker_id_offset()).copied()
    }
}

impl ConnectionIdGenerator for RoutableCidGenerator {
    fn generate(&mut self, rng: &mut dyn RandomSource) -> ConnectionId {
        let mut buf = [0u8; MAX_CID_SIZE];
        rng.fill(&mut buf[..self.len]);
        buf[0] = (self.config_rotation << 5) | (buf[0] & 0x1f);
        buf[1..1 + self.server_id_len].copy_from_slice(&self.server_id[..self.server_id_len]);
        buf[1 + self.server_id_len] = self.worker_id;
        ConnectionId::new(&buf[..self.len]).unwrap_or(ConnectionId::EMPTY)
    }

    fn cid_len(&self) -> usize {
        self.len
    }

    fn validate(&self, cid: &[u8]) -> bool {
        self.worker_of(cid) == Some(self.worker_id) && cid.get(1..1 + self.server_id_len) == Some(&self.server_id[..self.server_id_len])
    }
}

/// Derives stateless reset tokens from a static key (RFC 9000 §10.3.2), so
/// that a server which lost its state (or another worker) can still produce
/// the token for a connection ID: HMAC-SHA256(key, cid), truncated.
#[derive(Clone)]
pub struct ResetTokenKey(ring::hmac::Key);

impl core::fmt::Debug for ResetTokenKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ResetTokenKey(..)")
    }
}

impl ResetTokenKey {
    pub fn new(secret: &[u8]) -> Self {
        Self(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret))
    }

    pub fn token(&self, cid: &[u8]) -> ResetToken {
        let tag = ring::hmac::sign(&self.0, cid);
        let mut t = [0u8; 16];
        t.copy_from_slice(&tag.as_ref()[..16]);
        ResetToken(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rand::SeededRandom;

    #[test]
    fn routable_layout() {
        let mut rng = SeededRandom::new(1);
        let mut g = RoutableCidGenerator::new(2, &[0xab, 0xcd], 7, 12).unwrap();
        for _ in 0..100 {
            let cid = g.generate(&mut rng);
            assert_eq!(cid.len(), 12);
            assert_eq!(cid[0] >> 5, 2);
            assert_eq!(&cid[1..3], &[0xab, 0xcd]);
            assert_eq!(cid[g.worker_id_offset()], 7);
            assert!(g.validate(&cid));
            assert_eq!(g.worker_of(&cid), Some(7));
        }
        let other = RoutableCidGenerator::new(2, &[0xab, 0xcd], 8, 12).unwrap();
        let cid = g.generate(&mut rng);
        assert!(!other.validate(&cid));
        assert_eq!(RoutableCidGenerator::new(7, &[], 0, 8).unwrap_err(), InvalidCidLayout);
        assert!(RoutableCidGenerator::new(0, &[1; 8], 0, 13).is_err());
        assert!(RoutableCidGenerator::new(0, &[1; 8], 0, 14).is_ok());
    }

    #[test]
    fn ids_differ_and_reset_tokens_are_stable() {
        let mut rng = SeededRandom::new(2);
        let mut g = RoutableCidGenerator::for_worker(3);
        let a = g.generate(&mut rng);
        let b = g.generate(&mut rng);
        assert_ne!(a, b);
        let k = ResetTokenKey::new(b"static key");
        assert_eq!(k.token(&a), k.token(&a));
        assert_ne!(k.token(&a), k.token(&b));
        assert_ne!(k.token(&a), ResetTokenKey::new(b"other key").token(&a));
        let mut r = RandomCidGenerator::new(0);
        assert!(r.generate(&mut rng).is_empty());
    }
}
