//! TLS helpers shared by the integration tests: certificates, configs built
//! with quic-core's `ServerTlsOptions`/`ClientTlsOptions`, and handshakes
//! driven over in-memory byte pipes or a Unix socket pair.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::sync::Arc;

use quic_core::tls::{ClientTlsOptions, ServerTlsOptions};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};

pub struct Certs {
    pub cert: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
}

pub fn certs(names: &[&str]) -> Certs {
    let ck = rcgen::generate_simple_self_signed(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    Certs { cert: ck.cert.der().clone(), key: PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into()) }
}

/// quicpro's server configuration (TLS 1.3 only, ALPN "h3", two tickets per
/// full handshake) with the given session store and ticketer.
pub fn server_config(
    c: &Certs,
    early_data: bool,
    storage: Option<Arc<dyn rustls::server::StoresServerSessions>>,
    ticketer: Option<Arc<dyn rustls::server::ProducesTickets>>,
) -> Arc<ServerConfig> {
    let mut o = ServerTlsOptions::new(vec![c.cert.clone()], c.key.clone_key(), &[b"h3"]);
    o.early_data = early_data;
    o.session_storage = storage;
    o.ticketer = ticketer;
    o.build().unwrap()
}

pub fn client_config(c: &Certs, early_data: bool) -> Arc<ClientConfig> {
    let mut o = ClientTlsOptions::new(&[b"h3"]);
    o.extra_roots.push(c.cert.clone());
    o.early_data = early_data;
    o.build().unwrap()
}

/// What one in-memory handshake showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub resumed: bool,
    pub early_data_accepted: bool,
}

/// Runs a complete handshake between `client` and `server` in this process,
/// sending `early` as 0-RTT data if the client may. Bounded by a round count.
pub fn handshake_in_memory(client_cfg: &Arc<ClientConfig>, server_cfg: &Arc<ServerConfig>, name: &str, early: &[u8]) -> Outcome {
    let mut client = ClientConnection::new(client_cfg.clone(), name.to_string().try_into().unwrap()).unwrap();
    let mut server = ServerConnection::new(server_cfg.clone()).unwrap();
    if let Some(mut ed) = client.early_data() {
        ed.write_all(early).unwrap();
    }
    let mut got_early = Vec::new();
    let mut buf = Vec::new();
    for _ in 0..32 {
        buf.clear();
        while client.wants_write() {
            client.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            server.read_tls(&mut rd).unwrap();
            server.process_new_packets().unwrap();
        }
        if let Some(mut ed) = server.early_data() {
            ed.read_to_end(&mut got_early).unwrap();
        }
        buf.clear();
        while server.wants_write() {
            server.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            client.read_tls(&mut rd).unwrap();
            client.process_new_packets().unwrap();
        }
        if !client.is_handshaking() && !server.is_handshaking() && !client.wants_write() && !server.wants_write() {
            let resumed = server.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
            let accepted = client.is_early_data_accepted();
            assert_eq!(accepted, !got_early.is_empty() && got_early == early);
            return Outcome { resumed, early_data_accepted: accepted };
        }
    }
    panic!("handshake did not finish in 32 rounds");
}

pub mod child;
