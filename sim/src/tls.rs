//! TLS that replays: both sides' rustls draw their randomness from the same
//! seeded source as their endpoint (`quic_core::rand::SharedRandom`), read a
//! fixed clock, and use one Ed25519 certificate per process (Ed25519
//! signatures are deterministic; ECDSA's are not). With the seeded links of
//! a [`Pair`](crate::pair::Pair), a seed then fixes every byte on the wire.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use quic_core::rand::SharedRandom;
use quic_core::tls::provider::seeded_provider;
use quic_core::tls::{ClientTlsOptions, ServerTlsOptions};
use rustls::pki_types::UnixTime;

use crate::pair::{client_tls, server_tls, Certs};

/// The wall-clock time every simulated TLS stack reads (and the server
/// endpoint's `unix_time_at_start` in a pair).
pub const SIM_UNIX_TIME: u64 = 1_700_000_000;

/// A clock that always reads the same instant.
#[derive(Debug)]
pub struct FixedTime(pub UnixTime);

impl rustls::time_provider::TimeProvider for FixedTime {
    fn current_time(&self) -> Option<UnixTime> {
        Some(self.0)
    }
}

/// One self-signed Ed25519 certificate for `localhost`, made once per
/// process so runs compared with each other present the same bytes.
pub fn ed25519_certs() -> &'static Certs {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    CERTS.get_or_init(|| {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().self_signed(&key).unwrap();
        Certs { cert: cert.der().clone(), key: rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()) }
    })
}

/// Server and client TLS options whose randomness is `server` and `client`
/// (the sources their endpoints use too) and whose clock is fixed.
pub fn deterministic_tls(server: &SharedRandom, client: &SharedRandom) -> (ServerTlsOptions, ClientTlsOptions) {
    let c = ed25519_certs();
    let time = Arc::new(FixedTime(UnixTime::since_unix_epoch(Duration::from_secs(SIM_UNIX_TIME))));
    let mut s = server_tls(c);
    s.crypto = Some(seeded_provider(server.clone()));
    s.time = Some(time.clone());
    let mut cl = client_tls(c);
    cl.crypto = Some(seeded_provider(client.clone()));
    cl.time = Some(time);
    (s, cl)
}
