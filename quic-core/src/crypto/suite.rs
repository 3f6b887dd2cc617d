//! TLS 1.3 cipher suites usable with QUIC and the version-specific HKDF labels.

use ring::aead;

use super::hkdf::HashAlg;
use super::CryptoError;
use crate::version::Version;

/// Every AEAD QUIC uses has a 16-byte tag (RFC 9001 §5.3).
pub const TAG_LEN: usize = 16;
/// AEAD nonce (and IV) length: 12 bytes for all three suites (RFC 9001 §5.1:
/// "quic iv" yields max(8, N_MIN) bytes, N_MIN = 12 here).
pub const IV_LEN: usize = 12;
/// The longest AEAD or header protection key (AES-256, ChaCha20).
pub const MAX_KEY_LEN: usize = 32;

/// A TLS 1.3 cipher suite that has a QUIC header protection scheme
/// (RFC 9001 §5.3; TLS_AES_128_CCM_8_SHA256 is excluded there and not
/// supported by ring's QUIC module, nor is AES-CCM).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CipherSuite {
    /// TLS_AES_128_GCM_SHA256 (0x1301). Also the Initial suite (RFC 9001 §5.2).
    Aes128Gcm,
    /// TLS_AES_256_GCM_SHA384 (0x1302).
    Aes256Gcm,
    /// TLS_CHACHA20_POLY1305_SHA256 (0x1303).
    ChaCha20Poly1305,
}

impl CipherSuite {
    /// The suite for a TLS 1.3 cipher suite code point (RFC 8446 §B.4).
    pub const fn from_tls_id(id: u16) -> Option<Self> {
        match id {
            0x1301 => Some(CipherSuite::Aes128Gcm),
            0x1302 => Some(CipherSuite::Aes256Gcm),
            0x1303 => Some(CipherSuite::ChaCha20Poly1305),
            _ => None,
        }
    }

    /// The TLS 1.3 cipher suite code point.
    pub const fn tls_id(self) -> u16 {
        match self {
            CipherSuite::Aes128Gcm => 0x1301,
            CipherSuite::Aes256Gcm => 0x1302,
            CipherSuite::ChaCha20Poly1305 => 0x1303,
        }
    }

    /// The suite's hash, used by HKDF-Expand-Label.
    pub const fn hash(self) -> HashAlg {
        match self {
            CipherSuite::Aes128Gcm | CipherSuite::ChaCha20Poly1305 => HashAlg::Sha256,
            CipherSuite::Aes256Gcm => HashAlg::Sha384,
        }
    }

    /// Length of a traffic secret of this suite (Hash.length).
    pub const fn secret_len(self) -> usize {
        self.hash().output_len()
    }

    /// AEAD key length; the header protection key has the same length
    /// (RFC 9001 §5.4.3, §5.4.4).
    pub const fn key_len(self) -> usize {
        match self {
            CipherSuite::Aes128Gcm => 16,
            CipherSuite::Aes256Gcm | CipherSuite::ChaCha20Poly1305 => 32,
        }
    }

    /// IV length (12 for every suite here).
    pub const fn iv_len(self) -> usize {
        IV_LEN
    }

    /// AEAD tag length (16 for every suite here).
    pub const fn tag_len(self) -> usize {
        TAG_LEN
    }

    /// RFC 9001 §6.6: packets that may be encrypted with one key. `None`
    /// for ChaCha20-Poly1305, whose limit exceeds the 2^62 packet numbers.
    pub const fn confidentiality_limit(self) -> Option<u64> {
        match self {
            CipherSuite::Aes128Gcm | CipherSuite::Aes256Gcm => Some(1 << 23),
            CipherSuite::ChaCha20Poly1305 => None,
        }
    }

    /// RFC 9001 §6.6: packets that may fail authentication over the life of
    /// a connection before it must close with AEAD_LIMIT_REACHED.
    pub const fn integrity_limit(self) -> u64 {
        match self {
            CipherSuite::Aes128Gcm | CipherSuite::Aes256Gcm => 1 << 52,
            CipherSuite::ChaCha20Poly1305 => 1 << 36,
        }
    }

    pub(crate) fn aead_algorithm(self) -> &'static aead::Algorithm {
        match self {
            CipherSuite::Aes128Gcm => &aead::AES_128_GCM,
            CipherSuite::Aes256Gcm => &aead::AES_256_GCM,
            CipherSuite::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
        }
    }

    /// RFC 9001 §5.4.3 (AES-ECB) and §5.4.4 (raw ChaCha20).
    pub(crate) fn header_protection_algorithm(self) -> &'static aead::quic::Algorithm {
        match self {
            CipherSuite::Aes128Gcm => &aead::quic::AES_128,
            CipherSuite::Aes256Gcm => &aead::quic::AES_256,
            CipherSuite::ChaCha20Poly1305 => &aead::quic::CHACHA20,
        }
    }

    /// The HKDF labels this suite uses under `version` (they depend only on
    /// the version).
    pub fn labels(self, version: Version) -> Result<&'static Labels, CryptoError> {
        Labels::for_version(version)
    }
}

/// The HKDF-Expand-Label labels of one QUIC version (without the "tls13 "
/// prefix, which `hkdf_expand_label` adds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Labels {
    /// AEAD key (RFC 9001 §5.1).
    pub key: &'static [u8],
    /// AEAD IV (RFC 9001 §5.1).
    pub iv: &'static [u8],
    /// Header protection key (RFC 9001 §5.4).
    pub hp: &'static [u8],
    /// Next-generation secret on key update (RFC 9001 §6.1).
    pub ku: &'static [u8],
}

/// RFC 9001 §5.1, §5.4, §6.1.
const V1_LABELS: Labels = Labels { key: b"quic key", iv: b"quic iv", hp: b"quic hp", ku: b"quic ku" };

/// RFC 9369 §3.3.2: v2 changes every "quic" label to "quicv2".
const V2_LABELS: Labels = Labels { key: b"quicv2 key", iv: b"quicv2 iv", hp: b"quicv2 hp", ku: b"quicv2 ku" };

impl Labels {
    /// The labels of `version`; `UnsupportedVersion` for anything but v1/v2.
    pub fn for_version(version: Version) -> Result<&'static Labels, CryptoError> {
        match version {
            Version::V1 => Ok(&V1_LABELS),
            Version::V2 => Ok(&V2_LABELS),
            _ => Err(CryptoError::UnsupportedVersion),
        }
    }
}
