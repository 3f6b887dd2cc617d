//! Initial secrets (RFC 9001 §5.2; RFC 9369 §3.3.1 for the v2 salt).

use super::hkdf::{hkdf_expand_label, hkdf_extract, HashAlg};
use super::secret::Secret;
use super::suite::CipherSuite;
use super::CryptoError;
use crate::cid::MAX_CID_SIZE;
use crate::version::Version;

/// RFC 9001 §5.2: Initial packets always use AEAD_AES_128_GCM with SHA-256.
pub const INITIAL_SUITE: CipherSuite = CipherSuite::Aes128Gcm;

/// Length of an Initial secret: Hash.length of SHA-256.
pub const INITIAL_SECRET_LEN: usize = 32;

/// RFC 9001 §5.2.
const V1_INITIAL_SALT: [u8; 20] = [0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a];

/// RFC 9369 §3.3.1.
const V2_INITIAL_SALT: [u8; 20] = [0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb, 0xf9, 0xbd, 0x2e, 0xd9];

/// RFC 9001 §5.2 labels; RFC 9369 keeps them for v2.
const CLIENT_INITIAL_LABEL: &[u8] = b"client in";
const SERVER_INITIAL_LABEL: &[u8] = b"server in";

/// The Initial salt of `version`.
pub fn initial_salt(version: Version) -> Result<&'static [u8; 20], CryptoError> {
    match version {
        Version::V1 => Ok(&V1_INITIAL_SALT),
        Version::V2 => Ok(&V2_INITIAL_SALT),
        _ => Err(CryptoError::UnsupportedVersion),
    }
}

/// initial_secret = HKDF-Extract(initial_salt, client_dst_connection_id).
///
/// `dcid` is the Destination Connection ID of the client's first Initial
/// (or the one chosen by a Retry); at most 20 bytes, possibly empty.
pub fn initial_secret(version: Version, dcid: &[u8]) -> Result<Secret, CryptoError> {
    if dcid.len() > MAX_CID_SIZE {
        return Err(CryptoError::ConnectionIdTooLong);
    }
    let salt = initial_salt(version)?;
    let mut secret = Secret::zeroed(INITIAL_SECRET_LEN)?;
    hkdf_extract(HashAlg::Sha256, salt, dcid, secret.as_mut_bytes())?;
    Ok(secret)
}

/// The client and server Initial secrets of a connection.
#[derive(Debug)]
pub struct InitialSecrets {
    pub client: Secret,
    pub server: Secret,
}

/// client_initial_secret / server_initial_secret =
/// HKDF-Expand-Label(initial_secret, "client in" / "server in", "", 32).
pub fn initial_secrets(version: Version, dcid: &[u8]) -> Result<InitialSecrets, CryptoError> {
    let initial = initial_secret(version, dcid)?;
    let mut client = Secret::zeroed(INITIAL_SECRET_LEN)?;
    let mut server = Secret::zeroed(INITIAL_SECRET_LEN)?;
    hkdf_expand_label(initial.as_bytes(), HashAlg::Sha256, CLIENT_INITIAL_LABEL, b"", client.as_mut_bytes())?;
    hkdf_expand_label(initial.as_bytes(), HashAlg::Sha256, SERVER_INITIAL_LABEL, b"", server.as_mut_bytes())?;
    Ok(InitialSecrets { client, server })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_long_dcid_and_unknown_version() {
        assert_eq!(initial_secret(Version::V1, &[0; 21]).err(), Some(CryptoError::ConnectionIdTooLong));
        assert_eq!(initial_secret(Version(0xff00_001d), &[0; 8]).err(), Some(CryptoError::UnsupportedVersion));
        // RFC 9001 §5.2 note: a zero-length DCID is possible after a Retry.
        assert!(initial_secret(Version::V1, &[]).is_ok());
        // Different versions, different secrets.
        let v1 = initial_secrets(Version::V1, &[1; 8]).map(|s| s.client.as_bytes().to_vec());
        let v2 = initial_secrets(Version::V2, &[1; 8]).map(|s| s.client.as_bytes().to_vec());
        assert!(v1.is_ok() && v2.is_ok());
        assert_ne!(v1, v2);
    }
}
