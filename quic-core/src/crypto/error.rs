//! Errors of packet protection.
//!
//! A failure here never closes a connection by itself: RFC 9001 §5.5 says a
//! packet that fails to unprotect is discarded. The connection layer counts
//! authentication failures against the integrity limit (RFC 9001 §6.6) and
//! decides when that turns into AEAD_LIMIT_REACHED.

use core::fmt;

/// Why a packet protection operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CryptoError {
    /// The AEAD tag did not verify (RFC 9001 §5.5): discard the packet.
    DecryptFailed,
    /// The AEAD refused to encrypt (the input exceeds what the AEAD allows).
    EncryptFailed,
    /// The packet is too short to hold the header protection sample
    /// (RFC 9001 §5.4.2) or the AEAD tag: discard it.
    PacketTooShort,
    /// A caller-provided buffer has no room for the AEAD tag.
    BufferTooShort,
    /// A key, IV or secret does not have the length its algorithm needs.
    BadKeyLength,
    /// The packet number length is not 1..=4, disagrees with the first byte,
    /// or the packet number offset is 0 (it would overlap the first byte).
    BadPacketNumberLength,
    /// A connection ID is longer than 20 bytes (RFC 9000 §17.2).
    ConnectionIdTooLong,
    /// A Retry packet is longer than [`super::retry::MAX_RETRY_PACKET_LEN`].
    RetryTooLong,
    /// An HKDF label, context or output length outside what RFC 8446 §7.1
    /// and RFC 5869 permit.
    InvalidHkdfInput,
    /// The QUIC version has no packet protection defined here (only v1 and v2).
    UnsupportedVersion,
}

impl CryptoError {
    fn describe(self) -> &'static str {
        match self {
            CryptoError::DecryptFailed => "packet authentication failed",
            CryptoError::EncryptFailed => "packet encryption failed",
            CryptoError::PacketTooShort => "packet too short for header protection sample or tag",
            CryptoError::BufferTooShort => "buffer has no room for the authentication tag",
            CryptoError::BadKeyLength => "key, IV or secret has the wrong length",
            CryptoError::BadPacketNumberLength => "invalid packet number length or offset",
            CryptoError::ConnectionIdTooLong => "connection ID longer than 20 bytes",
            CryptoError::RetryTooLong => "Retry packet too long",
            CryptoError::InvalidHkdfInput => "invalid HKDF label, context or output length",
            CryptoError::UnsupportedVersion => "no packet protection for this QUIC version",
        }
    }
}

impl fmt::Display for CryptoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

impl std::error::Error for CryptoError {}
