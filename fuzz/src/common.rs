//! Shared set-up of the whole-endpoint fuzz targets: one certificate and
//! TLS configurations per process, fixed addresses and a fixed time base.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use quic_core::connection::{ConnectionStats, Transmit};
use quic_core::tls::{ClientTlsOptions, ServerTlsOptions};

pub const ALPNS: &[&[u8]] = &[b"h3", b"h3-29", b"hq-interop", b"doq", b"echo", b"test"];

pub struct Tls {
    pub server: Arc<rustls::ServerConfig>,
    pub client: Arc<rustls::ClientConfig>,
}

/// Generated once: key generation and config building would dominate each
/// run otherwise.
pub fn tls() -> &'static Tls {
    static TLS: OnceLock<Tls> = OnceLock::new();
    TLS.get_or_init(|| {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
        let cert = ck.cert.der().clone();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
        let mut sopts = ServerTlsOptions::new(vec![cert.clone()], key, ALPNS);
        // Stateless tickets: with early data on, every handshake would add a
        // session to the shared server-side cache, and that growing state
        // makes libFuzzer run a leak check after every input.
        sopts.early_data = false;
        let server = sopts.build().expect("server TLS config");
        let mut copts = ClientTlsOptions::new(&[b"test"]);
        copts.extra_roots.push(cert);
        let client = copts.build().expect("client TLS config");
        // No resumption: every run must start from the same state, not
        // from a ticket an earlier run left in the shared session cache.
        let mut client = (*client).clone();
        client.resumption = rustls::client::Resumption::disabled();
        Tls { server, client: Arc::new(client) }
    })
}

/// A fixed time base, so every run sees the same instants relative to it.
pub fn base_time() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

pub fn server_addr() -> SocketAddr {
    SocketAddr::from(([198, 18, 0, 1], 4433))
}

pub fn client_addr() -> SocketAddr {
    SocketAddr::from(([198, 18, 0, 2], 50000))
}

pub fn other_client_addr() -> SocketAddr {
    SocketAddr::from(([203, 0, 113, 9], 443))
}

/// Buffer sizes handed to `poll_transmit`: room for GSO batches, a typical
/// MTU, the QUIC minimum, and less than that.
pub const BUFFER_SIZES: [usize; 4] = [65536, 1500, 1200, 600];

/// `poll_transmit` wrote within the buffer and described it consistently.
pub fn check_transmit(t: &Transmit, buf_len: usize, max_segments: usize) {
    assert!(t.size > 0, "empty transmit");
    assert!(t.size <= buf_len, "transmit of {} bytes into a {buf_len}-byte buffer", t.size);
    if let Some(seg) = t.segment_size {
        assert!(seg > 0 && seg <= t.size, "segment size {seg} for {} bytes", t.size);
        assert!(t.size.div_ceil(seg) <= max_segments.max(1), "more segments than allowed");
    }
}

/// Every counter only grows.
pub fn check_stats_monotonic(before: &ConnectionStats, after: &ConnectionStats) {
    let pairs = [
        ("packets_sent", before.packets_sent, after.packets_sent),
        ("packets_received", before.packets_received, after.packets_received),
        ("packets_lost", before.packets_lost, after.packets_lost),
        ("packets_dropped", before.packets_dropped, after.packets_dropped),
        ("bytes_sent", before.bytes_sent, after.bytes_sent),
        ("bytes_received", before.bytes_received, after.bytes_received),
        ("stream_bytes_sent", before.stream_bytes_sent, after.stream_bytes_sent),
        ("stream_bytes_received", before.stream_bytes_received, after.stream_bytes_received),
        ("key_updates", before.key_updates, after.key_updates),
        ("max_amplification_x100", before.max_amplification_x100, after.max_amplification_x100),
    ];
    for (name, b, a) in pairs {
        assert!(a >= b, "stats.{name} went from {b} to {a}");
    }
}

/// One side's connection of an in-memory client/server pair (the server's
/// once it exists), borrowing only the endpoints so that a harness's other
/// fields stay usable.
pub fn side_conn<'a>(
    client: &'a mut quic_core::endpoint::Endpoint,
    server: &'a mut quic_core::endpoint::Endpoint,
    client_h: quic_core::endpoint::ConnectionHandle,
    server_h: Option<quic_core::endpoint::ConnectionHandle>,
    server_side: bool,
) -> Option<&'a mut quic_core::connection::Connection> {
    if server_side {
        server.connection(server_h?)
    } else {
        client.connection(client_h)
    }
}
