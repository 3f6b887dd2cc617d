//! Retry packet integrity (RFC 9001 §5.8; RFC 9369 §3.3.3 for v2).

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};

use super::suite::{IV_LEN, TAG_LEN};
use super::CryptoError;
use crate::cid::MAX_CID_SIZE;
use crate::version::Version;

/// Length of the Retry Integrity Tag.
pub const RETRY_TAG_LEN: usize = TAG_LEN;

/// Longest Retry packet (tag excluded) we build the pseudo-packet for. ring
/// takes the associated data as one slice, so the pseudo-packet is assembled
/// in a stack buffer; a Retry is a few dozen bytes plus a token, and nothing
/// on a 1500-byte MTU path is longer than this.
pub const MAX_RETRY_PACKET_LEN: usize = 1500;

/// ODCID Length (1) + ODCID (≤ 20) + Retry packet without tag.
const PSEUDO_PACKET_CAPACITY: usize = 1 + MAX_CID_SIZE + MAX_RETRY_PACKET_LEN;

/// RFC 9001 §5.8.
const V1_RETRY_KEY: [u8; 16] = [0xbe, 0x0c, 0x69, 0x0b, 0x9f, 0x66, 0x57, 0x5a, 0x1d, 0x76, 0x6b, 0x54, 0xe3, 0x68, 0xc8, 0x4e];
const V1_RETRY_NONCE: [u8; IV_LEN] = [0x46, 0x15, 0x99, 0xd3, 0x5d, 0x63, 0x2b, 0xf2, 0x23, 0x98, 0x25, 0xbb];

/// RFC 9369 §3.3.3.
const V2_RETRY_KEY: [u8; 16] = [0x8f, 0xb4, 0xb0, 0x1b, 0x56, 0xac, 0x48, 0xe2, 0x60, 0xfb, 0xcb, 0xce, 0xad, 0x7c, 0xcc, 0x92];
const V2_RETRY_NONCE: [u8; IV_LEN] = [0xd8, 0x69, 0x69, 0xbc, 0x2d, 0x7c, 0x6d, 0x99, 0x90, 0xef, 0xb0, 0x4a];

/// The fixed Retry key and nonce of `version`.
pub fn retry_key_and_nonce(version: Version) -> Result<(&'static [u8; 16], &'static [u8; IV_LEN]), CryptoError> {
    match version {
        Version::V1 => Ok((&V1_RETRY_KEY, &V1_RETRY_NONCE)),
        Version::V2 => Ok((&V2_RETRY_KEY, &V2_RETRY_NONCE)),
        _ => Err(CryptoError::UnsupportedVersion),
    }
}

/// The Retry Pseudo-Packet (RFC 9001 §5.8, Figure 8) in a stack buffer.
struct PseudoPacket {
    buf: [u8; PSEUDO_PACKET_CAPACITY],
    len: usize,
}

impl PseudoPacket {
    fn new(original_dcid: &[u8], retry_without_tag: &[u8]) -> Result<Self, CryptoError> {
        let odcid_len = u8::try_from(original_dcid.len()).ok().filter(|&l| usize::from(l) <= MAX_CID_SIZE).ok_or(CryptoError::ConnectionIdTooLong)?;
        if retry_without_tag.len() > MAX_RETRY_PACKET_LEN {
            return Err(CryptoError::RetryTooLong);
        }
        let mut buf = [0u8; PSEUDO_PACKET_CAPACITY];
        let odcid_end = 1 + original_dcid.len();
        let len = odcid_end + retry_without_tag.len();
        // Lengths were bounded above, so these ranges are within `buf`.
        let (len_byte, rest) = buf.split_at_mut(1);
        len_byte.copy_from_slice(&[odcid_len]);
        let (odcid, rest) = rest.split_at_mut(original_dcid.len());
        odcid.copy_from_slice(original_dcid);
        let retry = rest.get_mut(..retry_without_tag.len()).ok_or(CryptoError::RetryTooLong)?;
        retry.copy_from_slice(retry_without_tag);
        Ok(Self { buf, len })
    }

    fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
}

fn retry_aead(version: Version) -> Result<(LessSafeKey, Nonce), CryptoError> {
    let (key, nonce) = retry_key_and_nonce(version)?;
    let key = UnboundKey::new(&AES_128_GCM, key).map_err(|_| CryptoError::BadKeyLength)?;
    Ok((LessSafeKey::new(key), Nonce::assume_unique_for_key(*nonce)))
}

/// Computes the Retry Integrity Tag: AEAD_AES_128_GCM over an empty
/// plaintext with the Retry Pseudo-Packet as associated data.
///
/// `retry_without_tag` is the Retry packet up to (not including) the tag.
pub fn retry_integrity_tag(version: Version, original_dcid: &[u8], retry_without_tag: &[u8]) -> Result<[u8; RETRY_TAG_LEN], CryptoError> {
    let pseudo = PseudoPacket::new(original_dcid, retry_without_tag)?;
    let (key, nonce) = retry_aead(version)?;
    let tag = key.seal_in_place_separate_tag(nonce, Aad::from(pseudo.as_bytes()), &mut []).map_err(|_| CryptoError::EncryptFailed)?;
    let mut out = [0u8; RETRY_TAG_LEN];
    let tag_bytes = tag.as_ref();
    if tag_bytes.len() != RETRY_TAG_LEN {
        return Err(CryptoError::EncryptFailed);
    }
    out.copy_from_slice(tag_bytes);
    Ok(out)
}

/// Whether the last 16 bytes of `retry_packet` are a valid Retry Integrity
/// Tag for `original_dcid`. Any malformed input (too short, too long,
/// unsupported version) is simply invalid.
///
/// The check is an AEAD open of the tag over an empty ciphertext, so the
/// tag comparison is ring's constant-time one.
pub fn verify_retry_integrity(version: Version, original_dcid: &[u8], retry_packet: &[u8]) -> bool {
    let Some(split) = retry_packet.len().checked_sub(RETRY_TAG_LEN) else {
        return false;
    };
    let (without_tag, tag) = retry_packet.split_at(split);
    let Ok(pseudo) = PseudoPacket::new(original_dcid, without_tag) else {
        return false;
    };
    let Ok((key, nonce)) = retry_aead(version) else {
        return false;
    };
    let mut tag_buf = [0u8; RETRY_TAG_LEN];
    tag_buf.copy_from_slice(tag);
    key.open_in_place(nonce, Aad::from(pseudo.as_bytes()), &mut tag_buf).is_ok_and(|plaintext| plaintext.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{hkdf_expand_label, HashAlg};

    /// RFC 9001 §5.8 and RFC 9369 §3.3.3: the fixed key and nonce are
    /// HKDF-Expand-Label outputs of a published secret.
    #[test]
    fn retry_constants_derive_from_published_secrets() {
        type Case = (Version, [u8; 32], &'static [u8], &'static [u8]);
        let cases: [Case; 2] = [
            (Version::V1, hex32("d9c9943e6101fd200021506bcc02814c73030f25c79d71ce876eca876e6fca8e"), b"quic key", b"quic iv"),
            (Version::V2, hex32("c4dd2484d681aefa4ff4d69c2c20299984a765a5d3c31982f38fc74162155e9f"), b"quicv2 key", b"quicv2 iv"),
        ];
        for (version, secret, key_label, iv_label) in cases {
            let mut key = [0u8; 16];
            let mut nonce = [0u8; 12];
            assert!(hkdf_expand_label(&secret, HashAlg::Sha256, key_label, b"", &mut key).is_ok());
            assert!(hkdf_expand_label(&secret, HashAlg::Sha256, iv_label, b"", &mut nonce).is_ok());
            assert_eq!(retry_key_and_nonce(version), Ok((&key, &nonce)));
        }
    }

    #[test]
    fn bounds() {
        assert_eq!(retry_integrity_tag(Version::V1, &[0; 21], b"x"), Err(CryptoError::ConnectionIdTooLong));
        assert_eq!(retry_integrity_tag(Version::V1, &[0; 8], &[0; MAX_RETRY_PACKET_LEN + 1]), Err(CryptoError::RetryTooLong));
        assert!(retry_integrity_tag(Version::V1, &[0; 20], &[0; MAX_RETRY_PACKET_LEN]).is_ok());
        assert!(!verify_retry_integrity(Version::V1, &[0; 8], &[0; 15]));
        assert!(!verify_retry_integrity(Version(7), &[0; 8], &[0; 40]));
    }

    fn hex32(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap_or(0);
        }
        out
    }
}
