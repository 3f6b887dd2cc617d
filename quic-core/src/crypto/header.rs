//! Header protection (RFC 9001 §5.4), applied to and removed from raw packet
//! bytes in place.

use core::fmt;

use ring::aead::quic;

use super::hkdf::hkdf_expand_label;
use super::secret::wipe;
use super::suite::{CipherSuite, Labels, MAX_KEY_LEN};
use super::CryptoError;
use crate::version::Version;

/// Bytes of ciphertext sampled for the mask (RFC 9001 §5.4.2: 16 for every
/// suite with a header protection scheme).
pub const SAMPLE_LEN: usize = 16;
/// Length of the mask: one byte for the first byte, four for the packet number.
pub const MASK_LEN: usize = 5;
/// RFC 9001 §5.4.2: the sample starts 4 bytes after the start of the Packet
/// Number field, as if the packet number were always 4 bytes long.
pub const SAMPLE_OFFSET_FROM_PN: usize = 4;
/// The longest packet number encoding (RFC 9000 §17.1).
pub const MAX_PN_LEN: usize = 4;

/// RFC 9000 §17.2: the Header Form bit; set for long headers.
const LONG_HEADER_FORM: u8 = 0x80;
/// RFC 9001 §5.4.1: four low bits protected in a long header (reserved bits
/// and packet number length)...
const LONG_HEADER_PROTECTED_BITS: u8 = 0x0f;
/// ...five in a short header (adds the Key Phase bit).
const SHORT_HEADER_PROTECTED_BITS: u8 = 0x1f;
/// RFC 9000 §17.2 / §17.3.1: the Packet Number Length field, encoded length - 1.
const PN_LEN_BITS: u8 = 0x03;

/// The header protection key of one direction. It does not change on key
/// update (RFC 9001 §5.4, §6).
pub struct HeaderProtectionKey {
    suite: CipherSuite,
    key: quic::HeaderProtectionKey,
}

impl HeaderProtectionKey {
    /// Builds a key from raw bytes (`suite.key_len()` bytes).
    pub fn new(suite: CipherSuite, key: &[u8]) -> Result<Self, CryptoError> {
        if key.len() != suite.key_len() {
            return Err(CryptoError::BadKeyLength);
        }
        let key = quic::HeaderProtectionKey::new(suite.header_protection_algorithm(), key).map_err(|_| CryptoError::BadKeyLength)?;
        Ok(Self { suite, key })
    }

    /// Derives the key with the "quic hp" label (RFC 9001 §5.4; "quicv2 hp"
    /// for v2, RFC 9369 §3.3.2).
    pub fn from_secret(suite: CipherSuite, version: Version, secret: &[u8]) -> Result<Self, CryptoError> {
        let labels = Labels::for_version(version)?;
        let mut hp = [0u8; MAX_KEY_LEN];
        let result = match hp.get_mut(..suite.key_len()) {
            Some(hp) => hkdf_expand_label(secret, suite.hash(), labels.hp, b"", hp).and_then(|()| Self::new(suite, hp)),
            None => Err(CryptoError::BadKeyLength),
        };
        wipe(&mut hp);
        result
    }

    pub fn suite(&self) -> CipherSuite {
        self.suite
    }

    /// The 5-byte mask for a ciphertext sample (RFC 9001 §5.4.3 AES-ECB,
    /// §5.4.4 ChaCha20). Uses the first [`SAMPLE_LEN`] bytes of `sample`;
    /// `PacketTooShort` if there are fewer.
    pub fn mask(&self, sample: &[u8]) -> Result<[u8; MASK_LEN], CryptoError> {
        let sample = sample.get(..SAMPLE_LEN).ok_or(CryptoError::PacketTooShort)?;
        self.key.new_mask(sample).map_err(|_| CryptoError::PacketTooShort)
    }

    /// The mask for `packet` whose Packet Number field starts at `pn_offset`.
    fn mask_for(&self, packet: &[u8], pn_offset: usize) -> Result<[u8; MASK_LEN], CryptoError> {
        // RFC 9001 §5.4.2: sample_offset = pn_offset + 4. A packet too short
        // for a complete sample MUST be discarded.
        let start = pn_offset.checked_add(SAMPLE_OFFSET_FROM_PN).ok_or(CryptoError::PacketTooShort)?;
        let end = start.checked_add(SAMPLE_LEN).ok_or(CryptoError::PacketTooShort)?;
        let sample = packet.get(start..end).ok_or(CryptoError::PacketTooShort)?;
        self.mask(sample)
    }

    /// Applies header protection (sender side, after AEAD sealing; RFC 9001
    /// §5.4.1). `packet` starts at the first header byte and holds at least
    /// the sample; `pn_len` must match the Packet Number Length bits of the
    /// (still unprotected) first byte.
    pub fn apply(&self, packet: &mut [u8], pn_offset: usize, pn_len: usize) -> Result<(), CryptoError> {
        if pn_offset == 0 || !(1..=MAX_PN_LEN).contains(&pn_len) {
            return Err(CryptoError::BadPacketNumberLength);
        }
        let mask = self.mask_for(packet, pn_offset)?;
        let first = packet.first_mut().ok_or(CryptoError::PacketTooShort)?;
        if usize::from(*first & PN_LEN_BITS) + 1 != pn_len {
            return Err(CryptoError::BadPacketNumberLength);
        }
        *first ^= mask[0] & protected_bits(*first);
        xor_packet_number(packet, pn_offset, pn_len, &mask)
    }

    /// Removes header protection (receiver side, RFC 9001 §5.4.1) and
    /// returns the packet number length read from the unmasked first byte.
    /// Nothing is modified if the packet is too short for the sample.
    pub fn remove(&self, packet: &mut [u8], pn_offset: usize) -> Result<usize, CryptoError> {
        if pn_offset == 0 {
            return Err(CryptoError::BadPacketNumberLength);
        }
        let mask = self.mask_for(packet, pn_offset)?;
        let first = packet.first_mut().ok_or(CryptoError::PacketTooShort)?;
        // The Header Form bit is never protected, so the same bit choice
        // is made on both sides.
        *first ^= mask[0] & protected_bits(*first);
        let pn_len = usize::from(*first & PN_LEN_BITS) + 1;
        xor_packet_number(packet, pn_offset, pn_len, &mask)?;
        Ok(pn_len)
    }
}

/// RFC 9001 §5.4.1: which first-byte bits the mask covers.
fn protected_bits(first: u8) -> u8 {
    if first & LONG_HEADER_FORM != 0 {
        LONG_HEADER_PROTECTED_BITS
    } else {
        SHORT_HEADER_PROTECTED_BITS
    }
}

/// XORs the packet number bytes with `mask[1..1 + pn_len]`.
fn xor_packet_number(packet: &mut [u8], pn_offset: usize, pn_len: usize, mask: &[u8; MASK_LEN]) -> Result<(), CryptoError> {
    let end = pn_offset.checked_add(pn_len).ok_or(CryptoError::PacketTooShort)?;
    let pn = packet.get_mut(pn_offset..end).ok_or(CryptoError::PacketTooShort)?;
    for (byte, m) in pn.iter_mut().zip(mask.iter().skip(1)) {
        *byte ^= m;
    }
    Ok(())
}

impl fmt::Debug for HeaderProtectionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeaderProtectionKey").field("suite", &self.suite).finish_non_exhaustive()
    }
}
