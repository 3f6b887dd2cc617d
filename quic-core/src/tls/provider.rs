//! The rustls crypto provider quicpro hands to TLS.
//!
//! rustls runs the TLS 1.3 handshake and derives the traffic secrets; the
//! QUIC packet keys it builds from them come from [`QuicAlgorithm`], which
//! constructs *our* ring-based packet and header protection keys
//! (`crate::crypto`). So every packet is protected by the code in this crate,
//! and rustls' QUIC API stays the single place secrets flow through.

use std::sync::{Arc, OnceLock};

use rustls::crypto::cipher::{AeadKey, Iv};
use rustls::crypto::CryptoProvider;
use rustls::quic;
use rustls::{SupportedCipherSuite, Tls13CipherSuite};

use crate::crypto::{CipherSuite, HeaderProtectionKey, PacketKey, SAMPLE_LEN, TAG_LEN};

/// Builds QUIC packet keys for one TLS 1.3 cipher suite.
#[derive(Debug)]
pub struct QuicAlgorithm {
    suite: CipherSuite,
}

pub static AES_128_GCM: QuicAlgorithm = QuicAlgorithm { suite: CipherSuite::Aes128Gcm };
pub static AES_256_GCM: QuicAlgorithm = QuicAlgorithm { suite: CipherSuite::Aes256Gcm };
pub static CHACHA20_POLY1305: QuicAlgorithm = QuicAlgorithm { suite: CipherSuite::ChaCha20Poly1305 };

impl quic::Algorithm for QuicAlgorithm {
    fn packet_key(&self, key: AeadKey, iv: Iv) -> Box<dyn quic::PacketKey> {
        match PacketKey::new(self.suite, key.as_ref(), iv.as_ref()) {
            Ok(k) => Box::new(RingPacketKey(k)),
            // rustls derives keys of `aead_key_len()` bytes, so this cannot
            // happen; a key that fails every operation is the safe answer.
            Err(_) => Box::new(FailedKey),
        }
    }

    fn header_protection_key(&self, key: AeadKey) -> Box<dyn quic::HeaderProtectionKey> {
        match HeaderProtectionKey::new(self.suite, key.as_ref()) {
            Ok(k) => Box::new(RingHeaderKey(k)),
            Err(_) => Box::new(FailedKey),
        }
    }

    fn aead_key_len(&self) -> usize {
        self.suite.key_len()
    }
}

/// Our AEAD packet key behind rustls' trait.
struct RingPacketKey(PacketKey);

impl quic::PacketKey for RingPacketKey {
    fn encrypt_in_place(&self, packet_number: u64, header: &[u8], payload: &mut [u8]) -> Result<quic::Tag, rustls::Error> {
        let tag = self.0.seal_in_place_separate_tag(packet_number, header, payload).map_err(|_| rustls::Error::EncryptError)?;
        Ok(quic::Tag::from(&tag[..]))
    }

    fn decrypt_in_place<'a>(&self, packet_number: u64, header: &[u8], payload: &'a mut [u8]) -> Result<&'a [u8], rustls::Error> {
        let n = self.0.open_in_place(packet_number, header, payload).map_err(|_| rustls::Error::DecryptError)?;
        Ok(&payload[..n])
    }

    fn tag_len(&self) -> usize {
        TAG_LEN
    }

    fn confidentiality_limit(&self) -> u64 {
        self.0.confidentiality_limit().unwrap_or(u64::MAX)
    }

    fn integrity_limit(&self) -> u64 {
        self.0.integrity_limit()
    }
}

/// Our header protection key behind rustls' trait (RFC 9001 §5.4.1).
struct RingHeaderKey(HeaderProtectionKey);

impl RingHeaderKey {
    fn xor(&self, sample: &[u8], first: &mut u8, pn: &mut [u8], unmasking: bool) -> Result<(), rustls::Error> {
        let mask = self.0.mask(sample).map_err(|_| rustls::Error::General("header protection sample too short".into()))?;
        if pn.len() > 4 {
            return Err(rustls::Error::General("packet number longer than 4 bytes".into()));
        }
        let bits = if *first & 0x80 != 0 { 0x0f } else { 0x1f };
        // The packet number length sits in the protected bits: read it after
        // unmasking when removing protection, before masking when adding it.
        let plain_first = if unmasking { *first ^ (mask[0] & bits) } else { *first };
        let pn_len = (plain_first & 0x03) as usize + 1;
        *first ^= mask[0] & bits;
        for (b, m) in pn.iter_mut().zip(&mask[1..]).take(pn_len) {
            *b ^= m;
        }
        Ok(())
    }
}

impl quic::HeaderProtectionKey for RingHeaderKey {
    fn encrypt_in_place(&self, sample: &[u8], first: &mut u8, packet_number: &mut [u8]) -> Result<(), rustls::Error> {
        self.xor(sample, first, packet_number, false)
    }

    fn decrypt_in_place(&self, sample: &[u8], first: &mut u8, packet_number: &mut [u8]) -> Result<(), rustls::Error> {
        self.xor(sample, first, packet_number, true)
    }

    fn sample_len(&self) -> usize {
        SAMPLE_LEN
    }
}

/// Stands in for a key that could not be built; every operation fails, so
/// packets are dropped instead of being protected with a wrong key.
struct FailedKey;

impl quic::PacketKey for FailedKey {
    fn encrypt_in_place(&self, _: u64, _: &[u8], _: &mut [u8]) -> Result<quic::Tag, rustls::Error> {
        Err(rustls::Error::EncryptError)
    }
    fn decrypt_in_place<'a>(&self, _: u64, _: &[u8], _: &'a mut [u8]) -> Result<&'a [u8], rustls::Error> {
        Err(rustls::Error::DecryptError)
    }
    fn tag_len(&self) -> usize {
        TAG_LEN
    }
    fn confidentiality_limit(&self) -> u64 {
        0
    }
    fn integrity_limit(&self) -> u64 {
        0
    }
}

impl quic::HeaderProtectionKey for FailedKey {
    fn encrypt_in_place(&self, _: &[u8], _: &mut u8, _: &mut [u8]) -> Result<(), rustls::Error> {
        Err(rustls::Error::EncryptError)
    }
    fn decrypt_in_place(&self, _: &[u8], _: &mut u8, _: &mut [u8]) -> Result<(), rustls::Error> {
        Err(rustls::Error::DecryptError)
    }
    fn sample_len(&self) -> usize {
        SAMPLE_LEN
    }
}

fn with_our_quic(base: SupportedCipherSuite, alg: &'static QuicAlgorithm) -> Option<SupportedCipherSuite> {
    let SupportedCipherSuite::Tls13(s) = base else { return None };
    let ours: &'static Tls13CipherSuite = Box::leak(Box::new(Tls13CipherSuite {
        common: rustls::crypto::CipherSuiteCommon {
            suite: s.common.suite,
            hash_provider: s.common.hash_provider,
            confidentiality_limit: s.common.confidentiality_limit,
        },
        // QUIC labels follow the negotiated version (versioned_hkdf.rs).
        hkdf_provider: Box::leak(Box::new(super::versioned_hkdf::VersionedHkdf(s.hkdf_provider))),
        aead_alg: s.aead_alg,
        quic: Some(alg),
    }));
    Some(SupportedCipherSuite::Tls13(ours))
}

/// ring's TLS provider restricted to the three TLS 1.3 suites QUIC uses
/// (RFC 9001 §5.3), with QUIC packet keys from this crate. Built once.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            use rustls::crypto::ring::cipher_suite as cs;
            let base = rustls::crypto::ring::default_provider();
            let cipher_suites = [
                (cs::TLS13_AES_128_GCM_SHA256, &AES_128_GCM),
                (cs::TLS13_AES_256_GCM_SHA384, &AES_256_GCM),
                (cs::TLS13_CHACHA20_POLY1305_SHA256, &CHACHA20_POLY1305),
            ]
            .into_iter()
            .filter_map(|(s, a)| with_our_quic(s, a))
            .collect();
            Arc::new(CryptoProvider { cipher_suites, ..base })
        })
        .clone()
}

/// The TLS 1.3 suite Initial packets use (RFC 9001 §5.2), paired with our
/// QUIC key construction.
pub fn initial_suite() -> quic::Suite {
    let provider = crypto_provider();
    let suite = provider.cipher_suites.iter().find_map(|s| match s {
        SupportedCipherSuite::Tls13(t) if t.common.suite == rustls::CipherSuite::TLS13_AES_128_GCM_SHA256 => Some(*t),
        _ => None,
    });
    match suite {
        Some(suite) => quic::Suite { suite, quic: &AES_128_GCM },
        // The provider above always contains AES-128-GCM.
        None => unreachable_suite(),
    }
}

#[cold]
fn unreachable_suite() -> quic::Suite {
    panic!("crypto provider lacks TLS13_AES_128_GCM_SHA256")
}

/// [`crypto_provider`] drawing every random byte from `rng` (the TLS
/// randoms, legacy session IDs, ticket nonces and the X25519 key shares),
/// so a simulation given the same seed replays byte for byte. Only key
/// exchange group: X25519. Never for production: the source is seeded.
///
/// ring's key exchange reads the OS CSPRNG with no way to pass a source,
/// so the X25519 shares come from x25519-dalek here.
#[cfg(feature = "sim")]
pub fn seeded_provider(rng: crate::rand::SharedRandom) -> Arc<CryptoProvider> {
    // rustls keeps `&'static` references; one provider per simulated pair.
    let random: &'static crate::rand::SharedRandom = Box::leak(Box::new(rng.clone()));
    let x25519: &'static SeededX25519 = Box::leak(Box::new(SeededX25519(rng)));
    Arc::new(CryptoProvider { secure_random: random, kx_groups: vec![x25519], ..(*crypto_provider()).clone() })
}

#[cfg(feature = "sim")]
#[derive(Debug)]
struct SeededX25519(crate::rand::SharedRandom);

#[cfg(feature = "sim")]
impl rustls::crypto::SupportedKxGroup for SeededX25519 {
    fn start(&self) -> Result<Box<dyn rustls::crypto::ActiveKeyExchange>, rustls::Error> {
        let mut sk = [0u8; 32];
        self.0.fill_shared(&mut sk);
        let secret = x25519_dalek::StaticSecret::from(sk);
        let public = x25519_dalek::PublicKey::from(&secret);
        Ok(Box::new(X25519Share { secret, public }))
    }

    fn name(&self) -> rustls::NamedGroup {
        rustls::NamedGroup::X25519
    }
}

#[cfg(feature = "sim")]
struct X25519Share {
    secret: x25519_dalek::StaticSecret,
    public: x25519_dalek::PublicKey,
}

#[cfg(feature = "sim")]
impl rustls::crypto::ActiveKeyExchange for X25519Share {
    fn complete(self: Box<Self>, peer_pub_key: &[u8]) -> Result<rustls::crypto::SharedSecret, rustls::Error> {
        let invalid = || rustls::Error::PeerMisbehaved(rustls::PeerMisbehaved::InvalidKeyShare);
        let peer: [u8; 32] = peer_pub_key.try_into().map_err(|_| invalid())?;
        let shared = self.secret.diffie_hellman(&x25519_dalek::PublicKey::from(peer));
        // RFC 8446 §7.4.2 / RFC 7748 §6.1: an all-zero shared secret (a
        // low-order peer share) is refused.
        if !shared.was_contributory() {
            return Err(invalid());
        }
        Ok(rustls::crypto::SharedSecret::from(&shared.as_bytes()[..]))
    }

    fn pub_key(&self) -> &[u8] {
        self.public.as_bytes()
    }

    fn group(&self) -> rustls::NamedGroup {
        rustls::NamedGroup::X25519
    }
}
