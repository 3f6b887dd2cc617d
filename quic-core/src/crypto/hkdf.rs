//! HKDF-Extract and TLS 1.3 HKDF-Expand-Label over raw secret bytes.
//!
//! The TLS stack hands QUIC its traffic secrets as bytes (RFC 9001 §5.1), so
//! every function here takes `&[u8]` secrets and writes into caller buffers.
//! Nothing allocates: the HkdfLabel structure is passed to ring as a list of
//! slices.

use ring::{hkdf, hmac};

use super::CryptoError;

/// The longest hash output we use (SHA-384).
pub const MAX_HASH_LEN: usize = 48;

/// RFC 8446 §7.1: every label is prefixed with "tls13 ".
const LABEL_PREFIX: &[u8] = b"tls13 ";

/// The hash function of a TLS 1.3 cipher suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlg {
    Sha256,
    Sha384,
}

impl HashAlg {
    /// Hash.length in RFC 8446 terms; also the length of a traffic secret.
    pub const fn output_len(self) -> usize {
        match self {
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
        }
    }

    fn hkdf(self) -> hkdf::Algorithm {
        match self {
            HashAlg::Sha256 => hkdf::HKDF_SHA256,
            HashAlg::Sha384 => hkdf::HKDF_SHA384,
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            HashAlg::Sha256 => hmac::HMAC_SHA256,
            HashAlg::Sha384 => hmac::HMAC_SHA384,
        }
    }
}

/// HKDF-Extract (RFC 5869 §2.2): PRK = HMAC-Hash(salt, IKM).
///
/// Writes the PRK into `out`, which must be exactly `hash.output_len()` bytes.
/// We compute the HMAC directly rather than through `ring::hkdf::Salt` because
/// ring keeps the PRK opaque, and the Initial secret is itself a test vector
/// (RFC 9001 Appendix A.1).
pub fn hkdf_extract(hash: HashAlg, salt: &[u8], ikm: &[u8], out: &mut [u8]) -> Result<(), CryptoError> {
    if out.len() != hash.output_len() {
        return Err(CryptoError::BadKeyLength);
    }
    let key = hmac::Key::new(hash.hmac(), salt);
    let tag = hmac::sign(&key, ikm);
    out.copy_from_slice(tag.as_ref());
    Ok(())
}

/// An output length for ring's HKDF-Expand.
struct OutLen(usize);

impl hkdf::KeyType for OutLen {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand-Label (RFC 8446 §7.1) with `secret` used directly as the PRK.
///
/// ```text
/// struct {
///     uint16 length = Length;
///     opaque label<7..255> = "tls13 " + Label;
///     opaque context<0..255> = Context;
/// } HkdfLabel;
/// ```
///
/// `out.len()` is the Length. Fails with `BadKeyLength` if the secret is not
/// `hash.output_len()` bytes (every TLS 1.3 secret is Hash.length long), and
/// with `InvalidHkdfInput` if the label or context do not fit their length
/// prefixes or the output is longer than HKDF allows (255 * Hash.length).
pub fn hkdf_expand_label(secret: &[u8], hash: HashAlg, label: &[u8], context: &[u8], out: &mut [u8]) -> Result<(), CryptoError> {
    if secret.len() != hash.output_len() {
        return Err(CryptoError::BadKeyLength);
    }
    // RFC 8446 §7.1: opaque label<7..255>, so the full label including the
    // prefix must be 7..=255 bytes; the context is at most 255 bytes.
    let full_label_len = LABEL_PREFIX.len() + label.len();
    let label_len = u8::try_from(full_label_len).map_err(|_| CryptoError::InvalidHkdfInput)?;
    if label.is_empty() {
        return Err(CryptoError::InvalidHkdfInput);
    }
    let context_len = u8::try_from(context.len()).map_err(|_| CryptoError::InvalidHkdfInput)?;
    let out_len = u16::try_from(out.len()).map_err(|_| CryptoError::InvalidHkdfInput)?;

    let length_bytes = out_len.to_be_bytes();
    let label_len_byte = [label_len];
    let context_len_byte = [context_len];
    let info: [&[u8]; 6] = [&length_bytes, &label_len_byte, LABEL_PREFIX, label, &context_len_byte, context];

    let prk = hkdf::Prk::new_less_safe(hash.hkdf(), secret);
    let okm = prk.expand(&info, OutLen(out.len())).map_err(|_| CryptoError::InvalidHkdfInput)?;
    okm.fill(out).map_err(|_| CryptoError::InvalidHkdfInput)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_wrong_secret_length_and_oversized_inputs() {
        let secret = [7u8; 32];
        let mut out = [0u8; 16];
        assert_eq!(hkdf_expand_label(&secret[..31], HashAlg::Sha256, b"quic key", b"", &mut out), Err(CryptoError::BadKeyLength));
        assert_eq!(hkdf_expand_label(&secret, HashAlg::Sha384, b"quic key", b"", &mut out), Err(CryptoError::BadKeyLength));
        let long_label = [b'a'; 250];
        assert_eq!(hkdf_expand_label(&secret, HashAlg::Sha256, &long_label, b"", &mut out), Err(CryptoError::InvalidHkdfInput));
        let long_context = [0u8; 256];
        assert_eq!(hkdf_expand_label(&secret, HashAlg::Sha256, b"x", &long_context, &mut out), Err(CryptoError::InvalidHkdfInput));
        let mut huge = vec![0u8; 255 * 32 + 1];
        assert_eq!(hkdf_expand_label(&secret, HashAlg::Sha256, b"x", b"", &mut huge), Err(CryptoError::InvalidHkdfInput));
        // Different context, different output.
        let mut a = [0u8; 16];
        let mut b = [0u8; 16];
        assert!(hkdf_expand_label(&secret, HashAlg::Sha256, b"x", b"", &mut a).is_ok());
        assert!(hkdf_expand_label(&secret, HashAlg::Sha256, b"x", b"c", &mut b).is_ok());
        assert_ne!(a, b);
    }
}
