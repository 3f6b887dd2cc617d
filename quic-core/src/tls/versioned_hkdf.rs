//! QUIC key labels for a version negotiated after the TLS session started.
//!
//! rustls derives QUIC packet keys from its traffic secrets with the labels
//! of the QUIC version the session was created for ("quic key" for v1,
//! "quicv2 key" for v2, RFC 9369 §3.3.2), and offers no way to change that
//! version later. Compatible version negotiation (RFC 9368) needs exactly
//! that on the client: it sends its ClientHello in v1 and learns from the
//! server's first Initial that the connection continues in v2, before any
//! handshake secret exists. So the cipher suites of our provider carry an
//! HKDF wrapper that, while a connection whose negotiated version is v2
//! calls into rustls ([`with_quic_version`]), rewrites the v1 QUIC labels of
//! HKDF-Expand-Label to their v2 form, and the other way round for a v2
//! session continuing in v1 (a client that sent v2 after a Version
//! Negotiation packet, RFC 9368 §2.1, and that the server moved to the v1
//! it prefers). TLS's own labels ("c hs traffic", "finished", ...) are
//! never touched.

use std::cell::Cell;

use rustls::crypto::tls13::{Hkdf, HkdfExpander, OkmBlock, OutputLengthError};
use rustls::crypto::{hmac, ActiveKeyExchange};

use crate::version::Version;

thread_local! {
    /// The QUIC version of the connection calling into rustls on this
    /// thread, while it does (set by [`with_quic_version`]).
    static CURRENT: Cell<Option<Version>> = const { Cell::new(None) };
}

/// Runs `f` (a call into rustls on behalf of a connection in `version`)
/// with that version's QUIC labels in effect.
pub fn with_quic_version<R>(version: Version, f: impl FnOnce() -> R) -> R {
    let prev = CURRENT.with(|c| c.replace(Some(version)));
    let r = f();
    CURRENT.with(|c| c.set(prev));
    r
}

/// The QUIC label of the version in effect, when the session was created
/// for the other one (RFC 9369 §3.3.2): v1 labels become v2 ones under v2
/// (a client that sent v1 and followed the server to v2) and v2 labels v1
/// ones under v1 (a client that sent v2, after a Version Negotiation
/// packet, and followed the server back to the v1 it prefers).
fn rewrite(label: &[u8]) -> Option<&'static [u8]> {
    match (CURRENT.with(Cell::get)?, label) {
        (Version::V2, b"quic key") => Some(b"quicv2 key"),
        (Version::V2, b"quic iv") => Some(b"quicv2 iv"),
        (Version::V2, b"quic hp") => Some(b"quicv2 hp"),
        (Version::V2, b"quic ku") => Some(b"quicv2 ku"),
        (Version::V1, b"quicv2 key") => Some(b"quic key"),
        (Version::V1, b"quicv2 iv") => Some(b"quic iv"),
        (Version::V1, b"quicv2 hp") => Some(b"quic hp"),
        (Version::V1, b"quicv2 ku") => Some(b"quic ku"),
        _ => None,
    }
}

/// An HKDF whose expanders may rewrite QUIC labels (see module docs).
pub struct VersionedHkdf(pub &'static dyn Hkdf);

impl core::fmt::Debug for VersionedHkdf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("VersionedHkdf")
    }
}

impl Hkdf for VersionedHkdf {
    fn extract_from_zero_ikm(&self, salt: Option<&[u8]>) -> Box<dyn HkdfExpander> {
        Box::new(Expander(self.0.extract_from_zero_ikm(salt)))
    }

    fn extract_from_secret(&self, salt: Option<&[u8]>, secret: &[u8]) -> Box<dyn HkdfExpander> {
        Box::new(Expander(self.0.extract_from_secret(salt, secret)))
    }

    fn extract_from_kx_shared_secret(
        &self,
        salt: Option<&[u8]>,
        kx: Box<dyn ActiveKeyExchange>,
        peer_pub_key: &[u8],
    ) -> Result<Box<dyn HkdfExpander>, rustls::Error> {
        Ok(Box::new(Expander(self.0.extract_from_kx_shared_secret(salt, kx, peer_pub_key)?)))
    }

    fn expander_for_okm(&self, okm: &OkmBlock) -> Box<dyn HkdfExpander> {
        Box::new(Expander(self.0.expander_for_okm(okm)))
    }

    fn hmac_sign(&self, key: &OkmBlock, message: &[u8]) -> hmac::Tag {
        self.0.hmac_sign(key, message)
    }

    fn fips(&self) -> bool {
        self.0.fips()
    }
}

struct Expander(Box<dyn HkdfExpander>);

/// rustls passes HKDF-Expand-Label's info as six parts (RFC 8446 §7.1):
/// length, label length, "tls13 ", label, context length, context.
const LABEL_PART: usize = 3;

impl Expander {
    fn with_info<R>(&self, info: &[&[u8]], f: impl FnOnce(&dyn HkdfExpander, &[&[u8]]) -> R) -> R {
        let new_label = (info.len() == 6 && info[2] == b"tls13 ").then(|| rewrite(info[LABEL_PART])).flatten();
        match new_label {
            None => f(&*self.0, info),
            Some(label) => {
                let label_len = [(6 + label.len()) as u8];
                let parts: [&[u8]; 6] = [info[0], &label_len, info[2], label, info[4], info[5]];
                f(&*self.0, &parts)
            }
        }
    }
}

impl HkdfExpander for Expander {
    fn expand_slice(&self, info: &[&[u8]], output: &mut [u8]) -> Result<(), OutputLengthError> {
        self.with_info(info, |e, i| e.expand_slice(i, output))
    }

    fn expand_block(&self, info: &[&[u8]]) -> OkmBlock {
        self.with_info(info, |e, i| e.expand_block(i))
    }

    fn hash_len(&self) -> usize {
        self.0.hash_len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expands "quic key" under v2 into exactly what "quicv2 key" gives.
    #[test]
    fn v1_labels_become_v2_labels_only_under_v2() {
        let base: &'static dyn Hkdf = rustls::crypto::ring::default_provider()
            .cipher_suites
            .iter()
            .find_map(|s| match s {
                rustls::SupportedCipherSuite::Tls13(t) => Some(t.hkdf_provider),
                _ => None,
            })
            .expect("a TLS 1.3 suite");
        let h = VersionedHkdf(base);
        let expand = |label: &[u8]| {
            let e = h.extract_from_secret(None, b"secret");
            let mut out = [0u8; 16];
            let len = 16u16.to_be_bytes();
            let ll = [(6 + label.len()) as u8];
            e.expand_slice(&[&len, &ll, b"tls13 ", label, &[0], &[]], &mut out).expect("expand");
            out
        };
        let v1_key = expand(b"quic key");
        let v2_key = expand(b"quicv2 key");
        assert_ne!(v1_key, v2_key);
        assert_eq!(with_quic_version(Version::V2, || expand(b"quic key")), v2_key);
        assert_eq!(with_quic_version(Version::V1, || expand(b"quic key")), v1_key);
        assert_eq!(with_quic_version(Version::V2, || expand(b"quicv2 key")), v2_key, "v2 labels untouched");
        assert_eq!(with_quic_version(Version::V1, || expand(b"quicv2 key")), v1_key, "a v2 session moved to v1");
        assert_eq!(with_quic_version(Version::V2, || expand(b"c hs traffic")), expand(b"c hs traffic"), "TLS labels untouched");
        assert_eq!(expand(b"quic key"), v1_key, "scope ended");
    }
}
