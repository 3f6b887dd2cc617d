//! Packet protection (RFC 9001 §5, RFC 9369 §3).
//!
//! Everything works in place on caller buffers and allocates nothing per
//! packet. Secrets come in as bytes (from the Initial derivation or from the
//! TLS stack), and keys are derived with the version's labels:
//!
//! - [`hkdf`]: HKDF-Extract and TLS 1.3 HKDF-Expand-Label (RFC 8446 §7.1).
//! - [`suite`]: cipher suites, their limits (RFC 9001 §6.6), and the v1/v2
//!   labels (RFC 9369 §3.3.2).
//! - [`packet_key`]: AEAD seal/open with the per-packet nonce (RFC 9001 §5.3).
//! - [`header`]: header protection on raw packet bytes (RFC 9001 §5.4).
//! - [`keys`]: per-direction and per-level key sets, whole-packet helpers.
//! - [`initial`]: Initial secrets (RFC 9001 §5.2, RFC 9369 §3.3.1).
//! - [`key_update`]: next-generation secrets (RFC 9001 §6).
//! - [`retry`]: the Retry Integrity Tag (RFC 9001 §5.8, RFC 9369 §3.3.3).
//! - [`secret`]: inline secrets wiped on drop, derived key material.

mod error;
pub mod header;
pub mod hkdf;
pub mod initial;
pub mod key_update;
pub mod keys;
pub mod packet_key;
pub mod retry;
pub mod secret;
pub mod suite;

pub use error::CryptoError;
pub use header::{HeaderProtectionKey, MASK_LEN, SAMPLE_LEN};
pub use hkdf::{hkdf_expand_label, hkdf_extract, HashAlg};
pub use initial::{initial_salt, initial_secret, initial_secrets, InitialSecrets, INITIAL_SUITE};
pub use key_update::{next_secret, TrafficSecret};
pub use keys::{DirectionalKeys, Keys, Unprotected};
pub use packet_key::PacketKey;
pub use retry::{retry_integrity_tag, verify_retry_integrity, MAX_RETRY_PACKET_LEN, RETRY_TAG_LEN};
pub use secret::{KeyMaterial, Secret, MAX_SECRET_LEN};
pub use suite::{CipherSuite, Labels, IV_LEN, TAG_LEN};
