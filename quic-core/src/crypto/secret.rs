//! Secret bytes held inline and wiped on drop, and the key material derived
//! from a traffic secret (RFC 9001 §5.1).

use core::fmt;
use core::sync::atomic::{compiler_fence, Ordering};

use super::hkdf::{hkdf_expand_label, MAX_HASH_LEN};
use super::suite::{CipherSuite, Labels, IV_LEN, MAX_KEY_LEN};
use super::CryptoError;
use crate::version::Version;

/// The longest traffic secret: Hash.length of SHA-384.
pub const MAX_SECRET_LEN: usize = MAX_HASH_LEN;

/// Overwrite `buf` with zeros in a way the optimiser should not elide.
///
/// Best effort without `unsafe`: `black_box` makes the zeroed buffer
/// observable and the fence keeps the stores from being reordered past the
/// drop. Copies made by earlier moves are outside our reach.
pub(crate) fn wipe(buf: &mut [u8]) {
    buf.fill(0);
    core::hint::black_box(&mut *buf);
    compiler_fence(Ordering::SeqCst);
}

/// A traffic secret (up to 48 bytes) stored inline and wiped on drop.
#[derive(Clone)]
pub struct Secret {
    bytes: [u8; MAX_SECRET_LEN],
    len: u8,
}

impl Secret {
    /// Copies `bytes`; `BadKeyLength` if empty or longer than 48 bytes.
    pub fn new(bytes: &[u8]) -> Result<Self, CryptoError> {
        let mut secret = Self::zeroed(bytes.len())?;
        secret.as_mut_bytes().copy_from_slice(bytes);
        Ok(secret)
    }

    /// A zero secret of `len` bytes, to be filled by a derivation.
    pub(crate) fn zeroed(len: usize) -> Result<Self, CryptoError> {
        if len == 0 || len > MAX_SECRET_LEN {
            return Err(CryptoError::BadKeyLength);
        }
        // `len` <= 48 was just checked, so it fits a u8.
        let len = u8::try_from(len).map_err(|_| CryptoError::BadKeyLength)?;
        Ok(Self { bytes: [0; MAX_SECRET_LEN], len })
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }

    pub(crate) fn as_mut_bytes(&mut self) -> &mut [u8] {
        self.bytes.get_mut(..usize::from(self.len)).unwrap_or(&mut [])
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        wipe(&mut self.bytes);
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes, redacted)", self.len)
    }
}

/// The raw keys derived from one traffic secret: AEAD key, IV and header
/// protection key (RFC 9001 §5.1, §5.4). Wiped on drop.
///
/// Kept separate from the ring key objects because ring does not reveal key
/// bytes, and the derivation is what the test vectors pin down.
pub struct KeyMaterial {
    suite: CipherSuite,
    key: [u8; MAX_KEY_LEN],
    iv: [u8; IV_LEN],
    hp: [u8; MAX_KEY_LEN],
}

impl KeyMaterial {
    /// Derives key, IV and hp key from `secret` with the labels of `version`.
    /// `secret` must be `suite.secret_len()` bytes.
    pub fn derive(suite: CipherSuite, version: Version, secret: &[u8]) -> Result<Self, CryptoError> {
        let labels = Labels::for_version(version)?;
        let mut material = KeyMaterial { suite, key: [0; MAX_KEY_LEN], iv: [0; IV_LEN], hp: [0; MAX_KEY_LEN] };
        let key_len = suite.key_len();
        let hash = suite.hash();
        // RFC 9001 §5.1: all QUIC uses of HKDF-Expand-Label have an empty
        // context; key and hp lengths are the algorithm key sizes.
        let key = material.key.get_mut(..key_len).ok_or(CryptoError::BadKeyLength)?;
        hkdf_expand_label(secret, hash, labels.key, b"", key)?;
        hkdf_expand_label(secret, hash, labels.iv, b"", &mut material.iv)?;
        let hp = material.hp.get_mut(..key_len).ok_or(CryptoError::BadKeyLength)?;
        hkdf_expand_label(secret, hash, labels.hp, b"", hp)?;
        Ok(material)
    }

    pub fn suite(&self) -> CipherSuite {
        self.suite
    }

    /// The AEAD key (`suite.key_len()` bytes).
    pub fn key(&self) -> &[u8] {
        self.key.get(..self.suite.key_len()).unwrap_or(&[])
    }

    /// The AEAD IV.
    pub fn iv(&self) -> &[u8; IV_LEN] {
        &self.iv
    }

    /// The header protection key (`suite.key_len()` bytes).
    pub fn hp(&self) -> &[u8] {
        self.hp.get(..self.suite.key_len()).unwrap_or(&[])
    }
}

impl Drop for KeyMaterial {
    fn drop(&mut self) {
        wipe(&mut self.key);
        wipe(&mut self.iv);
        wipe(&mut self.hp);
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyMaterial").field("suite", &self.suite).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_length_bounds() {
        assert_eq!(Secret::new(&[]).err(), Some(CryptoError::BadKeyLength));
        assert_eq!(Secret::new(&[1; 49]).err(), Some(CryptoError::BadKeyLength));
        let s = Secret::new(&[9; 48]);
        assert_eq!(s.map(|s| s.as_bytes().to_vec()), Ok(vec![9; 48]));
    }

    #[test]
    fn wipe_zeroes() {
        let mut buf = [0xaa_u8; 48];
        wipe(&mut buf);
        assert_eq!(buf, [0; 48]);
    }

    #[test]
    fn debug_does_not_leak() {
        let s = Secret::new(&[0xab; 32]);
        let text = format!("{s:?}");
        assert!(!text.contains("ab") && !text.contains("171"), "{text}");
    }
}
