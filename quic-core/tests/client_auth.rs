//! Client certificates (mutual TLS, RFC 8446 §4.3.2) on the in-memory pair:
//! a server that requires them serves a client presenting one from its CA
//! and can read it (`Connection::peer_certificates`), and refuses a client
//! without one with CRYPTO_ERROR(certificate_required) — which the client
//! reads, since the close goes out at every level it may hold keys for.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use quic_core::config::TransportConfig;
use quic_core::connection::ConnectionError;
use quic_core::tls::config::ClientAuth;
use quic_core::{TransportErrorCode, Version};
use quicpro_sim::pair::*;

fn pair_with_client_auth(auth: ClientAuth, present: Option<&Certs>, seed: u64) -> Pair {
    let c = certs();
    let mut stls = server_tls(&c);
    stls.client_auth = auth;
    let mut ctls = client_tls(&c);
    if let Some(id) = present {
        ctls.client_cert = Some((vec![id.cert.clone()], Arc::new(id.key.clone_key())));
    }
    Pair::with(seed, stls, ctls, TransportConfig::default(), |_| {}, Version::V1)
}

#[test]
fn a_required_client_certificate_is_verified_and_visible_to_the_server() {
    let alice = certs();
    let mut p = pair_with_client_auth(ClientAuth::Required(vec![alice.cert.clone()]), Some(&alice), 31);
    p.handshake();
    let chain = p.server().peer_certificates().map(|c| c.to_vec()).unwrap();
    assert_eq!(chain.first(), Some(&alice.cert));
}

#[test]
fn a_client_without_a_certificate_is_refused_with_certificate_required() {
    let ca = certs();
    let mut p = pair_with_client_auth(ClientAuth::Required(vec![ca.cert.clone()]), None, 32);
    let h = p.client_conn;
    p.run_until(Duration::from_secs(5), |p| p.client.connection_ref(h).is_none_or(|c| c.error().is_some()));
    match p.client.connection_ref(h).and_then(|c| c.error().cloned()) {
        // certificate_required is alert 116 (RFC 8446 §6.2): 0x100 + 116.
        Some(ConnectionError::PeerTransportClose { code, .. }) => assert_eq!(code, TransportErrorCode::crypto(116)),
        other => panic!("expected CRYPTO_ERROR(certificate_required), got {other:?}"),
    }
}

#[test]
fn an_optional_client_certificate_may_be_absent() {
    let ca = certs();
    let mut p = pair_with_client_auth(ClientAuth::Optional(vec![ca.cert.clone()]), None, 33);
    p.handshake();
    assert!(p.server().peer_certificates().is_none_or(|c| c.is_empty()));
}
