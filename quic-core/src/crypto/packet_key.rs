//! AEAD packet protection (RFC 9001 §5.3), in place.

use core::fmt;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey};

use super::hkdf::hkdf_expand_label;
use super::secret::wipe;
use super::suite::{CipherSuite, Labels, IV_LEN, MAX_KEY_LEN, TAG_LEN};
use super::CryptoError;
use crate::version::Version;

/// The AEAD key and IV of one direction and one key generation.
pub struct PacketKey {
    suite: CipherSuite,
    key: LessSafeKey,
    iv: [u8; IV_LEN],
}

impl PacketKey {
    /// Builds a key from raw bytes: `key` must be `suite.key_len()` bytes and
    /// `iv` 12 bytes.
    pub fn new(suite: CipherSuite, key: &[u8], iv: &[u8]) -> Result<Self, CryptoError> {
        if key.len() != suite.key_len() {
            return Err(CryptoError::BadKeyLength);
        }
        let iv: [u8; IV_LEN] = iv.try_into().map_err(|_| CryptoError::BadKeyLength)?;
        let unbound = UnboundKey::new(suite.aead_algorithm(), key).map_err(|_| CryptoError::BadKeyLength)?;
        Ok(Self { suite, key: LessSafeKey::new(unbound), iv })
    }

    /// Derives the key ("quic key") and IV ("quic iv") from a traffic secret
    /// (RFC 9001 §5.1; "quicv2 key"/"quicv2 iv" for v2, RFC 9369 §3.3.2).
    pub fn from_secret(suite: CipherSuite, version: Version, secret: &[u8]) -> Result<Self, CryptoError> {
        let labels = Labels::for_version(version)?;
        let mut key = [0u8; MAX_KEY_LEN];
        let mut iv = [0u8; IV_LEN];
        let result = match key.get_mut(..suite.key_len()) {
            Some(key) => hkdf_expand_label(secret, suite.hash(), labels.key, b"", key)
                .and_then(|()| hkdf_expand_label(secret, suite.hash(), labels.iv, b"", &mut iv))
                .and_then(|()| Self::new(suite, key, &iv)),
            None => Err(CryptoError::BadKeyLength),
        };
        // The ring key keeps its own copy; wipe ours.
        wipe(&mut key);
        wipe(&mut iv);
        result
    }

    pub fn suite(&self) -> CipherSuite {
        self.suite
    }

    /// Bytes the AEAD adds to a payload: 16.
    pub fn tag_len(&self) -> usize {
        TAG_LEN
    }

    /// RFC 9001 §6.6 confidentiality limit of this key's AEAD.
    pub fn confidentiality_limit(&self) -> Option<u64> {
        self.suite.confidentiality_limit()
    }

    /// RFC 9001 §6.6 integrity limit of this key's AEAD.
    pub fn integrity_limit(&self) -> u64 {
        self.suite.integrity_limit()
    }

    /// RFC 9001 §5.3: the packet number in network byte order, left-padded
    /// with zeros to the IV length, XORed with the IV.
    pub fn nonce(&self, packet_number: u64) -> [u8; IV_LEN] {
        let mut nonce = self.iv;
        let pn = packet_number.to_be_bytes();
        for (n, p) in nonce.iter_mut().skip(IV_LEN - pn.len()).zip(pn) {
            *n ^= p;
        }
        nonce
    }

    /// Encrypts `payload_and_tag[..len - 16]` in place and writes the tag
    /// into its last 16 bytes. `header` is the unprotected header up to and
    /// including the packet number (the AEAD associated data, RFC 9001 §5.3).
    pub fn seal_in_place(&self, packet_number: u64, header: &[u8], payload_and_tag: &mut [u8]) -> Result<(), CryptoError> {
        let payload_len = payload_and_tag.len().checked_sub(TAG_LEN).ok_or(CryptoError::BufferTooShort)?;
        let (payload, tag_space) = payload_and_tag.split_at_mut(payload_len);
        let tag = self.seal_in_place_separate_tag(packet_number, header, payload)?;
        tag_space.copy_from_slice(&tag);
        Ok(())
    }

    /// Encrypts `payload` in place and returns the tag for the caller to
    /// place after it.
    pub fn seal_in_place_separate_tag(&self, packet_number: u64, header: &[u8], payload: &mut [u8]) -> Result<[u8; TAG_LEN], CryptoError> {
        let nonce = Nonce::assume_unique_for_key(self.nonce(packet_number));
        let tag = self.key.seal_in_place_separate_tag(nonce, Aad::from(header), payload).map_err(|_| CryptoError::EncryptFailed)?;
        let mut out = [0u8; TAG_LEN];
        // Every suite here has a 16-byte tag; a mismatch would be a ring bug.
        let tag_bytes = tag.as_ref();
        if tag_bytes.len() != TAG_LEN {
            return Err(CryptoError::EncryptFailed);
        }
        out.copy_from_slice(tag_bytes);
        Ok(out)
    }

    /// Decrypts `payload_with_tag` (ciphertext followed by the 16-byte tag)
    /// in place and returns the plaintext length; the plaintext is then
    /// `payload_with_tag[..len]`. On failure the buffer's contents are
    /// unspecified and the packet must be discarded (RFC 9001 §5.5).
    pub fn open_in_place(&self, packet_number: u64, header: &[u8], payload_with_tag: &mut [u8]) -> Result<usize, CryptoError> {
        if payload_with_tag.len() < TAG_LEN {
            return Err(CryptoError::PacketTooShort);
        }
        let nonce = Nonce::assume_unique_for_key(self.nonce(packet_number));
        let plaintext = self.key.open_in_place(nonce, Aad::from(header), payload_with_tag).map_err(|_| CryptoError::DecryptFailed)?;
        Ok(plaintext.len())
    }
}

impl Drop for PacketKey {
    fn drop(&mut self) {
        wipe(&mut self.iv);
    }
}

impl fmt::Debug for PacketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PacketKey").field("suite", &self.suite).finish_non_exhaustive()
    }
}
