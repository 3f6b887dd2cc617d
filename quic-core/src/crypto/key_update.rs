//! Key update (RFC 9001 §6): each 1-RTT secret generation is derived from the
//! previous one; only the AEAD key and IV change, the header protection key
//! stays (RFC 9001 §5.4, §6).

use super::header::HeaderProtectionKey;
use super::hkdf::hkdf_expand_label;
use super::keys::DirectionalKeys;
use super::packet_key::PacketKey;
use super::secret::Secret;
use super::suite::{CipherSuite, Labels};
use super::CryptoError;
use crate::version::Version;

/// RFC 9001 §6.1: `secret_<n+1> = HKDF-Expand-Label(secret_<n>, "quic ku",
/// "", Hash.length)` ("quicv2 ku" for v2, RFC 9369 §3.3.2).
///
/// `secret` and `out` must both be `suite.secret_len()` bytes.
pub fn next_secret(suite: CipherSuite, version: Version, secret: &[u8], out: &mut [u8]) -> Result<(), CryptoError> {
    let labels = Labels::for_version(version)?;
    if out.len() != suite.secret_len() {
        return Err(CryptoError::BadKeyLength);
    }
    hkdf_expand_label(secret, suite.hash(), labels.ku, b"", out)
}

/// The traffic secret of one direction at the 1-RTT level, stepping through
/// key generations. Held inline (up to 48 bytes) and wiped on drop.
#[derive(Clone, Debug)]
pub struct TrafficSecret {
    suite: CipherSuite,
    version: Version,
    secret: Secret,
    /// Number of key updates applied since the TLS-provided secret.
    generation: u64,
}

impl TrafficSecret {
    /// Takes the secret TLS exported for this direction. It must be
    /// `suite.secret_len()` bytes, and `version` must be v1 or v2.
    pub fn new(suite: CipherSuite, version: Version, secret: &[u8]) -> Result<Self, CryptoError> {
        Labels::for_version(version)?;
        if secret.len() != suite.secret_len() {
            return Err(CryptoError::BadKeyLength);
        }
        Ok(Self { suite, version, secret: Secret::new(secret)?, generation: 0 })
    }

    pub fn suite(&self) -> CipherSuite {
        self.suite
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// Key updates applied so far; its low bit is the Key Phase
    /// (RFC 9001 §6: the bit toggles with every update).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The current secret bytes.
    pub fn secret(&self) -> &[u8] {
        self.secret.as_bytes()
    }

    /// AEAD key and IV of the current generation.
    pub fn packet_key(&self) -> Result<PacketKey, CryptoError> {
        PacketKey::from_secret(self.suite, self.version, self.secret.as_bytes())
    }

    /// Header protection key. Only meaningful for generation 0: the hp key
    /// of the first 1-RTT secret is kept for the whole connection.
    pub fn header_key(&self) -> Result<HeaderProtectionKey, CryptoError> {
        HeaderProtectionKey::from_secret(self.suite, self.version, self.secret.as_bytes())
    }

    /// Packet and header keys of the current generation.
    pub fn keys(&self) -> Result<DirectionalKeys, CryptoError> {
        DirectionalKeys::from_secret(self.suite, self.version, self.secret.as_bytes())
    }

    /// The following generation, leaving `self` unchanged; lets a receiver
    /// prepare next keys ahead of time (RFC 9001 §6.3).
    pub fn next(&self) -> Result<TrafficSecret, CryptoError> {
        let mut next = Secret::zeroed(self.suite.secret_len())?;
        next_secret(self.suite, self.version, self.secret.as_bytes(), next.as_mut_bytes())?;
        Ok(TrafficSecret { suite: self.suite, version: self.version, secret: next, generation: self.generation.wrapping_add(1) })
    }

    /// Moves to the next generation in place (the old secret is wiped).
    pub fn update(&mut self) -> Result<(), CryptoError> {
        *self = self.next()?;
        Ok(())
    }

    /// Moves to the next generation and returns its packet key.
    pub fn next_packet_key(&mut self) -> Result<PacketKey, CryptoError> {
        self.update()?;
        self.packet_key()
    }
}
