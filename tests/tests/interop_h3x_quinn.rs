//! Extended CONNECT (RFC 9220) and HTTP Datagrams (RFC 9297) with the `h3`
//! crate 0.0.8 over `h3-quinn` 0.0.10 (quinn 0.11, rustls on ring), on
//! 127.0.0.1, ALPN "h3", in both roles.
//!
//! The h3 crate negotiates Extended CONNECT (`enable_extended_connect`,
//! `h3::ext::Protocol`) and SETTINGS_H3_DATAGRAM (`enable_datagram`), but
//! sending and receiving HTTP datagrams lives in the separate `h3-datagram`
//! crate, which is not in this build's registry cache. So the peer's
//! datagrams go through quinn's own QUIC DATAGRAM API
//! (`Connection::send_datagram` / `read_datagram`, RFC 9221) with the
//! RFC 9297 §2.1 framing (Quarter Stream ID varint + payload) written and
//! parsed in this file, independently of h3-core's codec. The capsules on
//! the CONNECT stream's DATA are likewise encoded and parsed here.
//!
//! * h3 client → our server (`h3x_echo::OurServer`, io-backends runtime):
//!   CONNECT `:protocol webtransport`, datagrams echoed, capsules echoed.
//! * our client (`h3x_echo::client_exchange`) → h3 server, which answers
//!   200, echoes the tunnel's DATA and (a task on the quinn connection)
//!   every datagram.
//!
//! Every wait has a deadline; datagrams lost on loopback are sent again by
//! the sender (counted and printed, not asserted).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use h3::ext::Protocol;
use io_backends::runtime::{Client, ClientOptions};
use quic_core::tls::{ClientTlsOptions, ServerTlsOptions};
use quicpro_tests::h3x_echo::{capsule_value, client_exchange, dgram, h3x, OurServer, RESEND_AFTER, WINDOW};

const DATAGRAMS: u32 = 500;
const CAPSULES: usize = 30;
const DEADLINE: Duration = Duration::from_secs(60);
const H3_NO_ERROR: u32 = 0x100;

use quicpro_tests::certs::shared as certs;

fn ring_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn quinn_client_config() -> quinn::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certs().cert.clone()).unwrap();
    let mut tls = rustls::ClientConfig::builder_with_provider(ring_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    quinn::ClientConfig::new(Arc::new(quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap()))
}

fn quinn_server_config() -> quinn::ServerConfig {
    let c = certs();
    let mut tls = rustls::ServerConfig::builder_with_provider(ring_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![c.cert.clone()], c.key.clone_key())
        .unwrap();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    quinn::ServerConfig::with_crypto(Arc::new(quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap()))
}

// ---------------------------------------------------------------- RFC 9297 framing, written here

fn put_varint(v: u64, out: &mut Vec<u8>) {
    match v {
        0..=63 => out.push(v as u8),
        64..=16383 => out.extend_from_slice(&((v as u16) | 0x4000).to_be_bytes()),
        16384..=1_073_741_823 => out.extend_from_slice(&((v as u32) | 0x8000_0000).to_be_bytes()),
        _ => out.extend_from_slice(&(v | 0xc000_0000_0000_0000).to_be_bytes()),
    }
}

/// (value, length) of the varint at the front of `b`.
fn get_varint(b: &[u8]) -> Option<(u64, usize)> {
    let first = *b.first()?;
    let len = 1usize << (first >> 6);
    let bytes = b.get(..len)?;
    let mut v = u64::from(first & 0x3f);
    for x in &bytes[1..] {
        v = (v << 8) | u64::from(*x);
    }
    Some((v, len))
}

/// An HTTP/3 datagram: Quarter Stream ID, then the payload (RFC 9297 §2.1).
fn h3_datagram(stream: u64, payload: &[u8]) -> Bytes {
    let mut v = Vec::with_capacity(payload.len() + 8);
    put_varint(stream / 4, &mut v);
    v.extend_from_slice(payload);
    Bytes::from(v)
}

fn capsule(ty: u64, value: &[u8], out: &mut Vec<u8>) {
    put_varint(ty, out);
    put_varint(value.len() as u64, out);
    out.extend_from_slice(value);
}

/// Complete capsules at the front of `buf`, removed from it.
fn take_capsules(buf: &mut BytesMut) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    loop {
        let Some((ty, a)) = get_varint(buf) else { return out };
        let Some((len, b)) = get_varint(&buf[a..]) else { return out };
        let end = a + b + len as usize;
        if buf.len() < end {
            return out;
        }
        out.push((ty, buf[a + b..end].to_vec()));
        let _ = buf.split_to(end);
    }
}

// ---------------------------------------------------------------- h3 client → our server

#[test]
fn h3_client_extended_connect_datagrams_to_our_server() {
    let start = Instant::now();
    let c = certs();
    let server = OurServer::start(ServerTlsOptions::new(vec![c.cert.clone()], c.key.clone_key(), &[b"h3"]), DEADLINE + Duration::from_secs(20));
    let addr = server.addr;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (resends, dgram_secs) = rt.block_on(async {
        tokio::time::timeout(DEADLINE, async {
            let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
            endpoint.set_default_client_config(quinn_client_config());
            let conn = endpoint.connect(addr, "localhost").unwrap().await.expect("QUIC handshake with our server");
            assert!(conn.max_datagram_size().is_some(), "our server sent max_datagram_frame_size");
            let (mut driver, mut send) = h3::client::builder()
                .enable_extended_connect(true)
                .enable_datagram(true)
                .build::<_, _, Bytes>(h3_quinn::Connection::new(conn.clone()))
                .await
                .expect("h3 client setup");
            let drive = tokio::spawn(async move { std::future::poll_fn(|cx| driver.poll_close(cx)).await });
            let req = http::Request::builder()
                .method(http::Method::CONNECT)
                .uri(format!("https://localhost:{}/h3x", addr.port()))
                .extension(Protocol::WEB_TRANSPORT)
                .body(())
                .unwrap();
            let mut stream = send.send_request(req).await.expect("send CONNECT");
            let resp = stream.recv_response().await.expect("CONNECT response");
            assert_eq!(resp.status(), http::StatusCode::OK);
            let sid = stream.id().into_inner();
            assert_eq!(sid % 4, 0);

            // Datagrams in windows; missing echoes are sent again.
            let t0 = Instant::now();
            let mut got = HashSet::new();
            let mut resends = 0u64;
            let mut next = 0u32;
            while next < DATAGRAMS {
                let mut missing: HashSet<u32> = (next..(next + WINDOW as u32).min(DATAGRAMS)).collect();
                next = (next + WINDOW as u32).min(DATAGRAMS);
                for attempt in 0..20 {
                    for &s in &missing {
                        conn.send_datagram(h3_datagram(sid, &dgram(b'h', s))).expect("quinn send_datagram");
                        if attempt > 0 {
                            resends += 1;
                        }
                    }
                    let end = tokio::time::Instant::now() + RESEND_AFTER;
                    while !missing.is_empty() {
                        match tokio::time::timeout_at(end, conn.read_datagram()).await {
                            Ok(Ok(d)) => {
                                let (q, n) = get_varint(&d).expect("Quarter Stream ID");
                                assert_eq!(q * 4, sid, "echo on the CONNECT stream");
                                let p = &d[n..];
                                let seq = u32::from_be_bytes(p[1..5].try_into().unwrap());
                                assert_eq!(p, &dgram(b'h', seq)[..], "echo of datagram {seq}");
                                missing.remove(&seq);
                                got.insert(seq);
                            }
                            Ok(Err(e)) => panic!("read_datagram: {e}"),
                            Err(_) => break,
                        }
                    }
                    if missing.is_empty() {
                        break;
                    }
                }
                assert!(missing.is_empty(), "datagrams never echoed: {missing:?}");
            }
            assert_eq!(got.len(), DATAGRAMS as usize);
            let dgram_secs = t0.elapsed().as_secs_f64();

            // Capsules in DATA (one of an unknown type in the middle).
            let mut data = Vec::new();
            for i in 0..CAPSULES {
                if i == CAPSULES / 2 {
                    capsule(0x2843, b"not for you", &mut data);
                }
                capsule(0, &capsule_value(i), &mut data);
            }
            stream.send_data(Bytes::from(data)).await.expect("send capsules");
            let mut buf = BytesMut::new();
            let mut back = Vec::new();
            while back.len() < CAPSULES {
                let Some(mut chunk) = stream.recv_data().await.expect("recv tunnel data") else { panic!("tunnel ended early") };
                while chunk.has_remaining() {
                    let c = chunk.chunk();
                    buf.extend_from_slice(c);
                    let n = c.len();
                    chunk.advance(n);
                }
                back.extend(take_capsules(&mut buf));
            }
            for (i, (ty, v)) in back.iter().enumerate() {
                assert_eq!(*ty, 0, "capsule {i} type");
                assert_eq!(v, &capsule_value(i), "capsule {i}");
            }
            // End the tunnel; our server ends its side.
            stream.finish().await.expect("finish");
            assert!(stream.recv_data().await.expect("end of tunnel").is_none());
            drop(send);
            conn.close(H3_NO_ERROR.into(), b"done");
            let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
            drive.abort();
            (resends, dgram_secs)
        })
        .await
        .expect("h3 client part within the deadline")
    });
    let r = server.wait(Duration::from_secs(10), |r| r.closed.is_some());
    assert_eq!(r.protocol.as_deref(), Some("webtransport"), "{r:#?}");
    assert_eq!(r.path.as_deref(), Some("/h3x"));
    assert!(r.datagrams >= u64::from(DATAGRAMS));
    assert_eq!(r.capsules, CAPSULES as u64, "unknown capsule skipped: {r:#?}");
    assert!(r.tunnel_finished && r.errors.is_empty(), "{r:#?}");
    println!(
        "[h3x quinn interop] h3 client -> our server: {DATAGRAMS} datagrams echoed in {dgram_secs:.2} s ({resends} resent), {CAPSULES} capsules; total {:.2} s",
        start.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------- our client → h3 server

#[derive(Debug, Default)]
struct PeerLog {
    method: Option<String>,
    protocol: Option<String>,
    datagrams: u64,
    stray: u64,
    tunnel_bytes: u64,
    errors: Vec<String>,
    done: bool,
}

/// An h3 server (extended CONNECT and H3_DATAGRAM enabled) in its own tokio
/// runtime; shut down on drop.
struct PeerServer {
    addr: SocketAddr,
    endpoint: quinn::Endpoint,
    log: Arc<Mutex<PeerLog>>,
    rt: Option<tokio::runtime::Runtime>,
}

impl PeerServer {
    fn start() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let endpoint = {
            let _g = rt.enter();
            quinn::Endpoint::server(quinn_server_config(), "127.0.0.1:0".parse().unwrap()).unwrap()
        };
        let addr = endpoint.local_addr().unwrap();
        let log = Arc::new(Mutex::new(PeerLog::default()));
        rt.spawn({
            let (endpoint, log) = (endpoint.clone(), log.clone());
            async move {
                if let Some(incoming) = endpoint.accept().await {
                    if let Err(e) = serve(incoming, log.clone()).await {
                        log.lock().unwrap().errors.push(e);
                    }
                    log.lock().unwrap().done = true;
                }
            }
        });
        Self { addr, endpoint, log, rt: Some(rt) }
    }
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        self.endpoint.close(0u32.into(), b"server done");
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

async fn serve(incoming: quinn::Incoming, log: Arc<Mutex<PeerLog>>) -> Result<(), String> {
    let conn = incoming.await.map_err(|e| format!("handshake: {e}"))?;
    // Datagram echo beside the h3 connection, on the same QUIC connection.
    let requests: Arc<Mutex<HashSet<u64>>> = Arc::default();
    let echo = tokio::spawn({
        let (conn, log, requests) = (conn.clone(), log.clone(), requests.clone());
        async move {
            while let Ok(d) = conn.read_datagram().await {
                let Some((q, _)) = get_varint(&d) else {
                    log.lock().unwrap().errors.push("datagram without a Quarter Stream ID".into());
                    continue;
                };
                {
                    let mut l = log.lock().unwrap();
                    l.datagrams += 1;
                    if !requests.lock().unwrap().contains(&(q * 4)) {
                        l.stray += 1;
                    }
                }
                let _ = conn.send_datagram(d);
            }
        }
    });
    let mut h3c: h3::server::Connection<h3_quinn::Connection, Bytes> = h3::server::builder()
        .enable_extended_connect(true)
        .enable_datagram(true)
        .build(h3_quinn::Connection::new(conn))
        .await
        .map_err(|e| format!("h3 setup: {e}"))?;
    let res = loop {
        match h3c.accept().await {
            Ok(Some(resolver)) => {
                let (req, mut stream) = resolver.resolve_request().await.map_err(|e| format!("resolve_request: {e}"))?;
                let proto = req.extensions().get::<Protocol>().copied();
                {
                    let mut l = log.lock().unwrap();
                    l.method = Some(req.method().to_string());
                    l.protocol = proto.map(|p| p.as_str().to_string());
                }
                if req.method() != http::Method::CONNECT || proto.is_none() {
                    break Err("not an extended CONNECT".to_string());
                }
                requests.lock().unwrap().insert(stream.id().into_inner());
                let resp = http::Response::builder().status(200).body(()).unwrap();
                stream.send_response(resp).await.map_err(|e| format!("send_response: {e}"))?;
                // Tunnel echo until the client ends its side.
                while let Some(mut b) = stream.recv_data().await.map_err(|e| format!("recv_data: {e}"))? {
                    let bytes = b.copy_to_bytes(b.remaining());
                    log.lock().unwrap().tunnel_bytes += bytes.len() as u64;
                    stream.send_data(bytes).await.map_err(|e| format!("send_data: {e}"))?;
                }
                stream.finish().await.map_err(|e| format!("finish: {e}"))?;
            }
            Ok(None) => break Ok(()),
            Err(e) if e.is_h3_no_error() => break Ok(()),
            Err(e) => break Err(format!("h3 connection: {e:?}")),
        }
    };
    echo.abort();
    res
}

#[test]
fn our_client_extended_connect_datagrams_to_h3_server() {
    let start = Instant::now();
    let peer = PeerServer::start();
    let mut tls = ClientTlsOptions::new(&[b"h3"]);
    tls.extra_roots.push(certs().cert.clone());
    let mut opts = ClientOptions::new(tls);
    opts.h3 = h3x();
    let mut client = Client::connect(&opts, peer.addr, "localhost", Bytes::new()).unwrap();
    let log = peer.log.clone();
    let diag = move || format!("h3 server: {:?}", log.lock().unwrap());
    client.wait_connected(Duration::from_secs(10)).unwrap_or_else(|e| panic!("connect: {e}\n{}", diag()));
    let x = client_exchange(&mut client, peer.addr, DATAGRAMS, CAPSULES, &diag);
    client.close();
    let end = Instant::now() + Duration::from_secs(10);
    while !peer.log.lock().unwrap().done && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    let l = peer.log.lock().unwrap();
    assert!(l.done, "h3 server connection ended: {l:?}");
    assert!(l.errors.is_empty(), "{l:?}");
    assert_eq!(l.method.as_deref(), Some("CONNECT"));
    assert_eq!(l.protocol.as_deref(), Some("webtransport"));
    assert!(l.datagrams >= u64::from(DATAGRAMS), "{l:?}");
    assert_eq!(l.stray, 0, "every datagram named the CONNECT stream {}", x.stream.0);
    assert!(l.tunnel_bytes > 0);
    println!(
        "[h3x quinn interop] our client -> h3 server: {DATAGRAMS} datagrams echoed in {:.2} s ({} resent), {CAPSULES} capsules; total {:.2} s",
        x.datagram_time.as_secs_f64(),
        x.resends,
        start.elapsed().as_secs_f64()
    );
}
