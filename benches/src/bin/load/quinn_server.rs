//! The comparison server: quinn 0.11 + h3 0.0.8 + h3-quinn 0.0.10 on a
//! current-thread tokio runtime (one core, like our worker), serving the
//! same routes the generator asks `quicpro serve` for:
//! `GET /bytes/<n>` (n pattern bytes, see `pattern`) and anything else a
//! short text. Runs in a child process of `load` (`load --serve-quinn`) so
//! its RSS is its own; exits when its stdin closes.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;

use crate::pattern;

/// Where the quinn server binds (default 127.0.0.1:0).
pub const QUINN_BIND_ENV: &str = "LOAD_QUINN_BIND";
/// An IPv4 address:port quinn announces in preferred_address.
pub const QUINN_PREFERRED_ADDRESS_ENV: &str = "LOAD_QUINN_PREFERRED_V4";

pub struct QuinnArgs {
    pub cert_der: Vec<u8>,
    pub key_der: Vec<u8>,
    pub gso: bool,
}

fn server_config(a: &QuinnArgs) -> Result<quinn::ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert = rustls::pki_types::CertificateDer::from(a.cert_der.clone());
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(a.key_der.clone().into());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .map_err(|e| e.to_string())?;
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| e.to_string())?;
    let mut sc = quinn::ServerConfig::with_crypto(Arc::new(quic));
    let mut t = quinn::TransportConfig::default();
    // Same stream limit as our server's default (100), stated explicitly.
    t.max_concurrent_bidi_streams(100u32.into());
    t.enable_segmentation_offload(a.gso);
    // `load --max-udp-payload`: the same bound as ours (1200: no discovery).
    if let Some(n) = std::env::var(crate::servers::QUINN_MAX_UDP_PAYLOAD_ENV).ok().and_then(|v| v.parse::<u16>().ok()) {
        if n <= 1200 {
            t.mtu_discovery_config(None);
        } else {
            let mut m = quinn::MtuDiscoveryConfig::default();
            m.upper_bound(n);
            t.mtu_discovery_config(Some(m));
        }
    }
    sc.transport_config(Arc::new(t));
    // Interop checks of our client (RFC 9000 §9.6): quinn announces this
    // address in preferred_address (reachable with a wildcard bind).
    if let Some(pa) = std::env::var(QUINN_PREFERRED_ADDRESS_ENV).ok().and_then(|v| v.parse().ok()) {
        sc.preferred_address_v4(Some(pa));
    }
    Ok(sc)
}

/// Runs until stdin closes. Prints `listening <addr>` on stdout first.
pub fn run(a: QuinnArgs) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let bind = std::env::var(QUINN_BIND_ENV).unwrap_or_else(|_| "127.0.0.1:0".into());
        let bind: SocketAddr = bind.parse().map_err(|e: std::net::AddrParseError| e.to_string())?;
        let endpoint = quinn::Endpoint::server(server_config(&a)?, bind).map_err(|e| e.to_string())?;
        let addr = endpoint.local_addr().map_err(|e| e.to_string())?;
        println!("listening {addr}");
        let _ = std::io::stdout().flush();
        // The parent closes our stdin (or dies): stop.
        std::thread::spawn(|| {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
            std::process::exit(0);
        });
        while let Some(incoming) = endpoint.accept().await {
            tokio::spawn(async move {
                let _ = serve_conn(incoming).await;
            });
        }
        Ok(())
    })
}

async fn serve_conn(incoming: quinn::Incoming) -> Result<(), String> {
    let conn = incoming.await.map_err(|e| e.to_string())?;
    let mut h3c: h3::server::Connection<h3_quinn::Connection, Bytes> =
        h3::server::builder().build(h3_quinn::Connection::new(conn)).await.map_err(|e| e.to_string())?;
    loop {
        match h3c.accept().await {
            Ok(Some(resolver)) => {
                tokio::spawn(async move {
                    let _ = serve_request(resolver).await;
                });
            }
            Ok(None) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        }
    }
}

async fn serve_request(resolver: h3::server::RequestResolver<h3_quinn::Connection, Bytes>) -> Result<(), String> {
    let (req, mut stream) = resolver.resolve_request().await.map_err(|e| e.to_string())?;
    let path = req.uri().path();
    let len = path.strip_prefix("/bytes/").and_then(|n| n.parse::<u64>().ok());
    match len {
        Some(n) => {
            let resp = http::Response::builder()
                .status(200)
                .header("content-type", "application/octet-stream")
                .header("content-length", n)
                .body(())
                .map_err(|e| e.to_string())?;
            stream.send_response(resp).await.map_err(|e| e.to_string())?;
            let mut off = 0u64;
            while off < n {
                // 64 KiB pieces: h3 frames each `send_data` as one DATA frame.
                let take = (n - off).min(64 * 1024) as usize;
                stream.send_data(pattern::chunk(off, take)).await.map_err(|e| e.to_string())?;
                off += take as u64;
            }
        }
        None => {
            let resp = http::Response::builder().status(200).header("content-type", "text/plain").body(()).map_err(|e| e.to_string())?;
            stream.send_response(resp).await.map_err(|e| e.to_string())?;
            stream.send_data(Bytes::from_static(b"quinn\n")).await.map_err(|e| e.to_string())?;
        }
    }
    stream.finish().await.map_err(|e| e.to_string())
}
