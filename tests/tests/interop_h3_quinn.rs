//! HTTP/3 interop with the `h3` crate over `h3-quinn` (quinn 0.11, rustls on
//! ring) on 127.0.0.1, ALPN "h3", in both roles:
//!
//! * h3 client → our server: h3-core + quic-core under `UdpDriver` in a
//!   thread (`quicpro_tests::h3_app::OurH3Server`); the h3 client runs in a
//!   tokio runtime in the test thread.
//! * our client → h3 server: the h3 server runs in its own tokio runtime;
//!   our client (`OurH3Client`) runs in the test thread.
//!
//! Cases in each role: 1,000 sequential GETs on one connection, 200
//! concurrent requests, a 100 MiB response body, a 100 MiB request body
//! answered with its sha256, trailers on a response and on a request, and
//! GOAWAY from the server with requests in flight.
//!
//! Every wait has a deadline; timing lines go to stdout (`--nocapture`),
//! nothing is asserted about speed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use quicpro_tests::h3_app::*;

/// Bodies of the large-transfer cases.
const BIG: u64 = 100 << 20;
const GOAWAY_REQUESTS: usize = 10;
const GOAWAY_BODY: u64 = 1 << 20;
/// Bound on each test's tokio part.
const DEADLINE: Duration = Duration::from_secs(110);
const H3_NO_ERROR: u32 = 0x100;

// ---------------------------------------------------------------------------
// Certificates and configurations.

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
    tls.alpn_protocols = vec![ALPN_H3.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    quinn::ClientConfig::new(Arc::new(quic))
}

fn quinn_server_config() -> quinn::ServerConfig {
    let c = certs();
    let mut tls = rustls::ServerConfig::builder_with_provider(ring_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![c.cert.clone()], c.key.clone_key())
        .unwrap();
    tls.alpn_protocols = vec![ALPN_H3.to_vec()];
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap();
    let mut sc = quinn::ServerConfig::with_crypto(Arc::new(quic));
    let mut t = quinn::TransportConfig::default();
    // All 200 concurrent requests at once.
    t.max_concurrent_bidi_streams(256u32.into());
    sc.transport_config(Arc::new(t));
    sc
}

fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Runs `fut` on `rt`, failing the test after [`DEADLINE`].
fn with_deadline<T>(rt: &tokio::runtime::Runtime, what: &str, fut: impl Future<Output = T>) -> T {
    rt.block_on(async {
        match tokio::time::timeout(DEADLINE, fut).await {
            Ok(v) => v,
            Err(_) => panic!("{what}: not done within {DEADLINE:?}"),
        }
    })
}

fn report_case(name: &str, start: Instant) {
    println!("[h3 quinn interop] {name}: passed in {:.2} s", start.elapsed().as_secs_f64());
}

/// Adds a `Buf` (possibly in pieces) to a body check.
fn check_buf(check: &mut BodyCheck, mut b: impl Buf) {
    while b.has_remaining() {
        let c = b.chunk();
        let n = c.len();
        check.update(c);
        b.advance(n);
    }
}

fn trailer_pairs(t: &HeaderMap) -> Vec<(String, String)> {
    let mut v: Vec<_> = t.iter().map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("?").to_string())).collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------
// The h3 crate's client.

type H3Send = h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>;

struct H3Client {
    endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    send: H3Send,
    driver: tokio::task::JoinHandle<h3::error::ConnectionError>,
}

async fn h3_connect(addr: SocketAddr) -> H3Client {
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn_client_config());
    let conn = endpoint.connect(addr, "localhost").unwrap().await.expect("h3 client: QUIC handshake with our server");
    let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn.clone())).await.expect("h3 client setup");
    let driver = tokio::spawn(async move { std::future::poll_fn(|cx| driver.poll_close(cx)).await });
    H3Client { endpoint, conn, send, driver }
}

impl H3Client {
    /// Closes with H3_NO_ERROR and waits (bounded) for it to go out.
    async fn close(self) {
        drop(self.send);
        self.conn.close(H3_NO_ERROR.into(), b"done");
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
        self.driver.abort();
    }
}

#[derive(Debug)]
struct H3Response {
    status: StatusCode,
    body: BodyCheck,
    trailers: Option<HeaderMap>,
    secs: f64,
}

fn uri(path: &str) -> String {
    format!("https://localhost{path}")
}

/// One request with the h3 client: optional pattern upload and trailers.
async fn h3_request(send: &mut H3Send, method: &str, path: &str, upload: Option<u64>, trailers: Option<HeaderMap>) -> Result<H3Response, String> {
    let start = Instant::now();
    let mut req = Request::builder().method(method).uri(uri(path));
    if let Some(n) = upload {
        req = req.header("content-length", n.to_string());
    }
    let mut stream = send.send_request(req.body(()).unwrap()).await.map_err(|e| format!("send_request: {e}"))?;
    if let Some(n) = upload {
        let mut off = 0u64;
        while off < n {
            let chunk = pattern_bytes(off, (n - off).min(256 * 1024) as usize);
            off += chunk.len() as u64;
            stream.send_data(chunk).await.map_err(|e| format!("send_data: {e}"))?;
        }
    }
    if let Some(t) = trailers {
        stream.send_trailers(t).await.map_err(|e| format!("send_trailers: {e}"))?;
    }
    stream.finish().await.map_err(|e| format!("finish: {e}"))?;
    let resp: Response<()> = stream.recv_response().await.map_err(|e| format!("recv_response: {e}"))?;
    let mut body = BodyCheck::default();
    while let Some(chunk) = stream.recv_data().await.map_err(|e| format!("recv_data: {e}"))? {
        check_buf(&mut body, chunk);
    }
    let trailers = stream.recv_trailers().await.map_err(|e| format!("recv_trailers: {e}"))?;
    Ok(H3Response { status: resp.status(), body, trailers, secs: start.elapsed().as_secs_f64() })
}

async fn h3_get(send: &mut H3Send, path: &str) -> Result<H3Response, String> {
    h3_request(send, "GET", path, None, None).await
}

// ---------------------------------------------------------------------------
// h3 client → our server.

fn start_our_server(opts: ServerOptions) -> OurH3Server {
    let c = certs();
    OurH3Server::start(server_tls(vec![c.cert.clone()], c.key.clone_key()), transport(), opts, Duration::from_secs(200))
}

/// Our server's report once the connection closed cleanly.
fn closed_report(server: &OurH3Server) -> ServerReport {
    let r = server.wait_report(0, Duration::from_secs(10), |r| r.closed.is_some()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(server.reports().len(), 1, "one connection");
    assert!(r.handshake_done && r.alpn.as_deref() == Some("h3"), "{r:#?}");
    assert!(r.errors.is_empty(), "our server saw errors: {r:#?}");
    r
}

fn seq_size(i: usize) -> usize {
    1 + (i * 37) % 2000
}

#[test]
fn h3_client_1000_sequential_gets() {
    let start = Instant::now();
    let server = start_our_server(ServerOptions::default());
    let rt = current_thread_runtime();
    with_deadline(&rt, "h3 client sequential", async {
        let mut c = h3_connect(server.addr).await;
        for i in 0..1000 {
            let r = h3_get(&mut c.send, &format!("/bytes/{}", seq_size(i))).await.unwrap_or_else(|e| panic!("GET {i}: {e}"));
            assert_eq!(r.status, StatusCode::OK);
            assert_eq!(r.body.head, pattern_vec(seq_size(i)), "body of GET {i}");
        }
        println!("[h3 quinn interop] h3 client: 1000 sequential GETs at {:.0} requests/s", 1000.0 / start.elapsed().as_secs_f64());
        c.close().await;
    });
    let rep = closed_report(&server);
    assert_eq!((rep.requests, rep.responses), (1000, 1000), "{rep:#?}");
    report_case("h3 client -> our server: 1000 sequential GETs on one connection", start);
}

#[test]
fn h3_client_200_concurrent_requests() {
    let start = Instant::now();
    let server = start_our_server(ServerOptions::default());
    let rt = current_thread_runtime();
    with_deadline(&rt, "h3 client concurrent", async {
        let c = h3_connect(server.addr).await;
        let tasks: Vec<_> = (0..200usize)
            .map(|i| {
                let mut send = c.send.clone();
                tokio::spawn(async move { (i, h3_get(&mut send, &format!("/bytes/{}", 1000 + i * 13)).await) })
            })
            .collect();
        for t in tasks {
            let (i, r) = t.await.unwrap();
            let r = r.unwrap_or_else(|e| panic!("GET {i}: {e}"));
            assert_eq!(r.status, StatusCode::OK);
            assert_eq!(r.body.head, pattern_vec(1000 + i * 13), "body of GET {i}");
        }
        c.close().await;
    });
    let rep = closed_report(&server);
    assert_eq!((rep.requests, rep.responses), (200, 200), "{rep:#?}");
    report_case("h3 client -> our server: 200 concurrent requests", start);
}

#[test]
fn h3_client_downloads_100mib() {
    let start = Instant::now();
    let server = start_our_server(ServerOptions::default());
    let rt = current_thread_runtime();
    let r = with_deadline(&rt, "h3 client download", async {
        let mut c = h3_connect(server.addr).await;
        let r = h3_get(&mut c.send, &format!("/bytes/{BIG}")).await.unwrap_or_else(|e| panic!("GET: {e}"));
        c.close().await;
        r
    });
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.len, BIG);
    assert!(r.body.is_pattern);
    assert_eq!(r.body.sha256_hex(), pattern_sha256(BIG));
    let rep = closed_report(&server);
    println!(
        "[h3 quinn interop] our server -> h3 client: {BIG} bytes in {:.2} s = {:.1} MiB/s; our server sent {} packets, {} declared lost",
        r.secs,
        BIG as f64 / r.secs / 1048576.0,
        rep.packets_sent,
        rep.packets_lost
    );
    report_case("h3 client -> our server: 100 MiB response body", start);
}

#[test]
fn h3_client_uploads_100mib() {
    let start = Instant::now();
    let server = start_our_server(ServerOptions::default());
    let rt = current_thread_runtime();
    let r = with_deadline(&rt, "h3 client upload", async {
        let mut c = h3_connect(server.addr).await;
        let r = h3_request(&mut c.send, "POST", "/sha256", Some(BIG), None).await.unwrap_or_else(|e| panic!("POST: {e}"));
        c.close().await;
        r
    });
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(String::from_utf8_lossy(&r.body.head), pattern_sha256(BIG));
    let rep = closed_report(&server);
    assert_eq!(rep.sha256_answers, vec![(BIG, pattern_sha256(BIG))]);
    println!("[h3 quinn interop] h3 client -> our server: {BIG} bytes in {:.2} s = {:.1} MiB/s", r.secs, BIG as f64 / r.secs / 1048576.0);
    report_case("h3 client -> our server: 100 MiB request body, sha256 answered", start);
}

#[test]
fn h3_client_trailers_both_ways() {
    let start = Instant::now();
    let server = start_our_server(ServerOptions::default());
    let rt = current_thread_runtime();
    with_deadline(&rt, "h3 client trailers", async {
        let mut c = h3_connect(server.addr).await;
        let r = h3_get(&mut c.send, "/trailers").await.unwrap_or_else(|e| panic!("GET /trailers: {e}"));
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body.head, TRAILERS_BODY);
        let t = r.trailers.expect("h3 client received the response trailers");
        let mut want = trailers_route_trailers();
        want.sort();
        assert_eq!(trailer_pairs(&t), want);
        let mut rt = HeaderMap::new();
        rt.insert("x-request-trailer", HeaderValue::from_static("yes"));
        rt.insert("x-upload-sha256", HeaderValue::from_str(&pattern_sha256(10000)).unwrap());
        let p = h3_request(&mut c.send, "POST", "/sha256", Some(10000), Some(rt)).await.unwrap_or_else(|e| panic!("POST: {e}"));
        assert_eq!(String::from_utf8_lossy(&p.body.head), pattern_sha256(10000));
        c.close().await;
    });
    let rep = closed_report(&server);
    assert_eq!(rep.request_trailers.len(), 1, "{rep:#?}");
    let t = &rep.request_trailers[0];
    assert!(t.contains(&("x-request-trailer".to_string(), "yes".to_string())), "{t:?}");
    assert!(t.contains(&("x-upload-sha256".to_string(), pattern_sha256(10000))), "{t:?}");
    report_case("h3 client -> our server: response trailers and request trailers", start);
}

#[test]
fn h3_client_sees_goaway_and_in_flight_requests_complete() {
    let start = Instant::now();
    let server = start_our_server(ServerOptions { goaway_after_requests: Some(GOAWAY_REQUESTS) });
    let rt = current_thread_runtime();
    let refusal = with_deadline(&rt, "h3 client goaway", async {
        let mut c = h3_connect(server.addr).await;
        let tasks: Vec<_> = (0..GOAWAY_REQUESTS)
            .map(|i| {
                let mut send = c.send.clone();
                tokio::spawn(async move { (i, h3_get(&mut send, &format!("/bytes/{GOAWAY_BODY}")).await) })
            })
            .collect();
        for t in tasks {
            let (i, r) = t.await.unwrap();
            let r = r.unwrap_or_else(|e| panic!("in-flight GET {i} did not complete after GOAWAY: {e}"));
            assert_eq!(r.status, StatusCode::OK);
            assert_eq!(r.body.len, GOAWAY_BODY);
            assert!(r.body.is_pattern);
        }
        // The h3 client knows about the GOAWAY (its driver read it from our
        // control stream): new requests are refused locally.
        let end = Instant::now() + Duration::from_secs(5);
        let refusal = loop {
            match c.send.send_request(Request::get(uri("/bytes/10")).body(()).unwrap()).await {
                Err(e) => break format!("{e:?}"),
                Ok(mut s) => {
                    // Sent before the GOAWAY was processed: it must be rejected.
                    let _ = s.finish().await;
                    let r = s.recv_response().await;
                    assert!(r.is_err(), "a request above the GOAWAY ID was answered: {r:?}");
                    assert!(Instant::now() < end, "h3 client never noticed the GOAWAY");
                }
            }
        };
        c.close().await;
        refusal
    });
    assert!(refusal.contains("RemoteClosing"), "h3 refused the request because of the GOAWAY: {refusal}");
    let rep = closed_report(&server);
    let (id, at) = rep.goaway_sent.expect("our server sent GOAWAY");
    assert_eq!((id, at), (4 * GOAWAY_REQUESTS as u64, GOAWAY_REQUESTS));
    assert!(rep.responses_at_goaway < GOAWAY_REQUESTS, "requests were in flight at GOAWAY: {rep:#?}");
    assert_eq!(rep.responses, GOAWAY_REQUESTS, "{rep:#?}");
    println!(
        "[h3 quinn interop] our GOAWAY({id}) went out with {}/{GOAWAY_REQUESTS} responses queued; all completed; then h3 refused a new request: {refusal}",
        rep.responses_at_goaway
    );
    report_case("h3 client -> our server: GOAWAY with requests in flight", start);
}

// ---------------------------------------------------------------------------
// The h3 crate's server.

/// What the h3 server saw, shared with its tasks.
#[derive(Debug, Default)]
struct PeerState {
    requests: AtomicUsize,
    responses: AtomicUsize,
    request_trailers: Mutex<Vec<Vec<(String, String)>>>,
    sha256_answers: Mutex<Vec<(u64, String, f64)>>,
    /// Requests accepted when the server called `shutdown` (GOAWAY).
    goaway_after: Mutex<Option<usize>>,
    errors: Mutex<Vec<String>>,
    /// How each connection ended.
    closed: Mutex<Vec<String>>,
}

/// An h3 server on 127.0.0.1:0 in its own tokio runtime; shut down on drop.
struct PeerServer {
    addr: SocketAddr,
    endpoint: quinn::Endpoint,
    state: Arc<PeerState>,
    rt: Option<tokio::runtime::Runtime>,
}

impl PeerServer {
    fn start(goaway_after: Option<usize>) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).thread_name("h3-server").enable_all().build().unwrap();
        let endpoint = {
            let _guard = rt.enter();
            quinn::Endpoint::server(quinn_server_config(), "127.0.0.1:0".parse().unwrap()).unwrap()
        };
        let addr = endpoint.local_addr().unwrap();
        let state = Arc::new(PeerState::default());
        rt.spawn({
            let (endpoint, state) = (endpoint.clone(), state.clone());
            async move {
                while let Some(incoming) = endpoint.accept().await {
                    let state = state.clone();
                    tokio::spawn(async move {
                        let res = serve_h3_conn(incoming, goaway_after, state.clone()).await;
                        state.closed.lock().unwrap().push(match res {
                            Ok(how) => how,
                            Err(e) => {
                                state.errors.lock().unwrap().push(e.clone());
                                e
                            }
                        });
                    });
                }
            }
        });
        Self { addr, endpoint, state, rt: Some(rt) }
    }

    /// Waits (bounded) for the connection to end and returns its errors.
    fn wait_closed(&self) -> Vec<String> {
        let end = Instant::now() + Duration::from_secs(10);
        while self.state.closed.lock().unwrap().is_empty() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!self.state.closed.lock().unwrap().is_empty(), "h3 server connection did not end");
        self.state.errors.lock().unwrap().clone()
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

async fn serve_h3_conn(incoming: quinn::Incoming, goaway_after: Option<usize>, state: Arc<PeerState>) -> Result<String, String> {
    let conn = incoming.await.map_err(|e| format!("h3 server handshake: {e}"))?;
    let mut h3c: h3::server::Connection<h3_quinn::Connection, Bytes> =
        h3::server::builder().build(h3_quinn::Connection::new(conn)).await.map_err(|e| format!("h3 server setup: {e}"))?;
    let mut accepted = 0usize;
    loop {
        match h3c.accept().await {
            Ok(Some(resolver)) => {
                accepted += 1;
                if goaway_after == Some(accepted) {
                    // GOAWAY(last accepted + 4): every request so far is served.
                    h3c.shutdown(1).await.map_err(|e| format!("h3 server shutdown: {e}"))?;
                    *state.goaway_after.lock().unwrap() = Some(accepted);
                }
                let state = state.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve_h3_request(resolver, &state).await {
                        state.errors.lock().unwrap().push(e);
                    }
                });
            }
            Ok(None) => return Ok("accept: none".into()),
            Err(e) if e.is_h3_no_error() => return Ok("closed with H3_NO_ERROR".into()),
            Err(e) => return Err(format!("h3 server connection: {e:?}")),
        }
    }
}

async fn serve_h3_request(resolver: h3::server::RequestResolver<h3_quinn::Connection, Bytes>, state: &PeerState) -> Result<(), String> {
    let (req, mut stream) = resolver.resolve_request().await.map_err(|e| format!("resolve_request: {e}"))?;
    state.requests.fetch_add(1, Ordering::Relaxed);
    let ok = |len: Option<u64>| {
        let mut b = Response::builder().status(StatusCode::OK);
        if let Some(n) = len {
            b = b.header("content-length", n.to_string());
        }
        b.body(()).unwrap()
    };
    match route(req.method().as_str(), req.uri().path()) {
        Route::Bytes(n) => {
            stream.send_response(ok(Some(n))).await.map_err(|e| format!("send_response: {e}"))?;
            let mut off = 0u64;
            while off < n {
                let chunk = pattern_bytes(off, (n - off).min(256 * 1024) as usize);
                off += chunk.len() as u64;
                stream.send_data(chunk).await.map_err(|e| format!("send_data: {e}"))?;
            }
        }
        Route::Trailers => {
            stream.send_response(ok(None)).await.map_err(|e| format!("send_response: {e}"))?;
            stream.send_data(Bytes::from_static(TRAILERS_BODY)).await.map_err(|e| format!("send_data: {e}"))?;
            let mut t = HeaderMap::new();
            for (k, v) in trailers_route_trailers() {
                t.insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(&v).unwrap());
            }
            stream.send_trailers(t).await.map_err(|e| format!("send_trailers: {e}"))?;
        }
        Route::Sha256 => {
            let t0 = Instant::now();
            let mut body = BodyCheck::default();
            while let Some(chunk) = stream.recv_data().await.map_err(|e| format!("recv_data: {e}"))? {
                check_buf(&mut body, chunk);
            }
            if let Some(t) = stream.recv_trailers().await.map_err(|e| format!("recv_trailers: {e}"))? {
                state.request_trailers.lock().unwrap().push(trailer_pairs(&t));
            }
            let hex = body.sha256_hex();
            state.sha256_answers.lock().unwrap().push((body.len, hex.clone(), t0.elapsed().as_secs_f64()));
            stream.send_response(ok(Some(hex.len() as u64))).await.map_err(|e| format!("send_response: {e}"))?;
            stream.send_data(Bytes::from(hex.into_bytes())).await.map_err(|e| format!("send_data: {e}"))?;
        }
        Route::NotFound => {
            let resp = Response::builder().status(StatusCode::NOT_FOUND).body(()).unwrap();
            stream.send_response(resp).await.map_err(|e| format!("send_response: {e}"))?;
        }
    }
    stream.finish().await.map_err(|e| format!("finish: {e}"))?;
    state.responses.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

// ---------------------------------------------------------------------------
// our client → h3 server.

fn connect(addr: SocketAddr) -> OurH3Client {
    OurH3Client::connect(addr, client_tls(certs().cert.clone()), transport())
}

fn run(client: &mut OurH3Client, server: &PeerServer, secs: u64, cond: impl FnMut(&mut H3ClientApp) -> bool) {
    if let Err(e) = client.run_until(Duration::from_secs(secs), cond) {
        panic!("our client: {e}\nh3 server errors: {:?}", server.state.errors.lock().unwrap());
    }
}

fn check_ok(r: &ResponseRecord, what: &str) {
    assert!(r.done && r.error.is_none() && r.reset.is_none(), "{what}: {r:#?}");
    assert_eq!(r.status, Some(200), "{what}: {r:#?}");
}

/// Closes our client and checks the h3 server ended cleanly.
fn finish(mut client: OurH3Client, server: &PeerServer) {
    client.close();
    let errors = server.wait_closed();
    assert!(errors.is_empty(), "h3 server errors: {errors:?}");
}

#[test]
fn our_client_1000_sequential_gets() {
    let start = Instant::now();
    let server = PeerServer::start(None);
    let mut client = connect(server.addr);
    let mut next = 0usize;
    run(&mut client, &server, 90, |app| {
        if next == 0 || app.responses[next - 1].settled() {
            if next == 1000 {
                return true;
            }
            app.request(RequestSpec::get(&format!("/bytes/{}", seq_size(next))));
            next += 1;
        }
        false
    });
    for (i, r) in client.app.responses.iter().enumerate() {
        check_ok(r, &format!("GET {i}"));
        assert_eq!(r.body.head, pattern_vec(seq_size(i)), "body of GET {i}");
    }
    let streams: Vec<_> = client.app.responses.iter().filter_map(|r| r.stream).collect();
    assert!(streams.windows(2).all(|w| w[1] == w[0] + 4), "one connection, consecutive request streams");
    println!("[h3 quinn interop] our client: 1000 sequential GETs at {:.0} requests/s", 1000.0 / start.elapsed().as_secs_f64());
    finish(client, &server);
    assert_eq!(server.state.requests.load(Ordering::Relaxed), 1000);
    report_case("our client -> h3 server: 1000 sequential GETs on one connection", start);
}

#[test]
fn our_client_200_concurrent_requests() {
    let start = Instant::now();
    let server = PeerServer::start(None);
    let mut client = connect(server.addr);
    for i in 0..200 {
        client.app.request(RequestSpec::get(&format!("/bytes/{}", 1000 + i * 13)));
    }
    run(&mut client, &server, 90, |app| app.all_settled());
    for (i, r) in client.app.responses.iter().enumerate() {
        check_ok(r, &format!("GET {i}"));
        assert_eq!(r.body.head, pattern_vec(1000 + i * 13), "body of GET {i}");
    }
    finish(client, &server);
    assert_eq!(server.state.requests.load(Ordering::Relaxed), 200);
    report_case("our client -> h3 server: 200 concurrent requests", start);
}

#[test]
fn our_client_downloads_100mib() {
    let start = Instant::now();
    let server = PeerServer::start(None);
    let mut client = connect(server.addr);
    client.app.request(RequestSpec::get(&format!("/bytes/{BIG}")));
    run(&mut client, &server, 110, |app| app.all_settled());
    let r = &client.app.responses[0];
    check_ok(r, "GET 100 MiB");
    assert_eq!(r.body.len, BIG);
    assert!(r.body.is_pattern);
    assert_eq!(r.body.sha256_hex(), pattern_sha256(BIG));
    let secs = r.finished.unwrap() - r.started.unwrap();
    let st = client.stats().unwrap();
    println!(
        "[h3 quinn interop] h3 server -> our client: {BIG} bytes in {:.2} s = {:.1} MiB/s; our client received {} packets",
        secs.as_secs_f64(),
        mib_per_s(BIG, secs),
        st.packets_received
    );
    finish(client, &server);
    report_case("our client -> h3 server: 100 MiB response body", start);
}

#[test]
fn our_client_uploads_100mib() {
    let start = Instant::now();
    let server = PeerServer::start(None);
    let mut client = connect(server.addr);
    client.app.request(RequestSpec::post_sha256(BIG));
    run(&mut client, &server, 110, |app| app.all_settled());
    let r = &client.app.responses[0];
    check_ok(r, "POST 100 MiB");
    assert_eq!(r.uploaded, BIG);
    assert_eq!(r.body_text(), pattern_sha256(BIG), "h3 server's sha256 of our body");
    let secs = r.finished.unwrap() - r.started.unwrap();
    let st = client.stats().unwrap();
    println!(
        "[h3 quinn interop] our client -> h3 server: {BIG} bytes in {:.2} s = {:.1} MiB/s; our client sent {} packets, {} declared lost",
        secs.as_secs_f64(),
        mib_per_s(BIG, secs),
        st.packets_sent,
        st.packets_lost
    );
    finish(client, &server);
    let answers = server.state.sha256_answers.lock().unwrap().clone();
    assert_eq!(answers.len(), 1);
    assert_eq!((answers[0].0, answers[0].1.as_str()), (BIG, pattern_sha256(BIG).as_str()));
    report_case("our client -> h3 server: 100 MiB request body, sha256 answered", start);
}

#[test]
fn our_client_trailers_both_ways() {
    let start = Instant::now();
    let server = PeerServer::start(None);
    let mut client = connect(server.addr);
    client.app.request(RequestSpec::get("/trailers"));
    client.app.request(RequestSpec::post_sha256(10000).with_trailers(&[("x-request-trailer", "yes"), ("x-upload-sha256", &pattern_sha256(10000))]));
    run(&mut client, &server, 50, |app| app.all_settled());
    let r = &client.app.responses[0];
    check_ok(r, "GET /trailers");
    assert_eq!(r.body.head, TRAILERS_BODY);
    let mut t = r.trailers.clone().expect("response trailers");
    t.sort();
    let mut want = trailers_route_trailers();
    want.sort();
    assert_eq!(t, want);
    let p = &client.app.responses[1];
    check_ok(p, "POST with trailers");
    assert_eq!(p.body_text(), pattern_sha256(10000));
    finish(client, &server);
    let seen = server.state.request_trailers.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].contains(&("x-request-trailer".to_string(), "yes".to_string())), "{seen:?}");
    assert!(seen[0].contains(&("x-upload-sha256".to_string(), pattern_sha256(10000))), "{seen:?}");
    report_case("our client -> h3 server: response trailers and request trailers", start);
}

#[test]
fn our_client_sees_goaway_and_in_flight_requests_complete() {
    let start = Instant::now();
    let server = PeerServer::start(Some(GOAWAY_REQUESTS));
    let mut client = connect(server.addr);
    for _ in 0..GOAWAY_REQUESTS {
        client.app.request(RequestSpec::get(&format!("/bytes/{GOAWAY_BODY}")));
    }
    run(&mut client, &server, 50, |app| app.all_settled() && app.goaway.is_some());
    let (id, done_then) = client.app.goaway.expect("GOAWAY seen");
    assert_eq!(id, 4 * GOAWAY_REQUESTS as u64, "GOAWAY names the stream after the last request");
    assert!(done_then < GOAWAY_REQUESTS, "requests were in flight when GOAWAY arrived ({done_then} done)");
    for (i, r) in client.app.responses.iter().enumerate() {
        check_ok(r, &format!("GET {i}"));
        assert_eq!(r.body.len, GOAWAY_BODY);
        assert!(r.body.is_pattern);
    }
    // RFC 9114 §5.2: no new request after GOAWAY.
    let late = client.app.request(RequestSpec::get("/bytes/10"));
    run(&mut client, &server, 5, |app| app.responses[late].settled());
    assert!(client.app.responses[late].refused, "{:#?}", client.app.responses[late]);
    finish(client, &server);
    assert_eq!(*server.state.goaway_after.lock().unwrap(), Some(GOAWAY_REQUESTS));
    assert_eq!(server.state.responses.load(Ordering::Relaxed), GOAWAY_REQUESTS);
    println!("[h3 quinn interop] h3's GOAWAY({id}) reached our client with {done_then}/{GOAWAY_REQUESTS} responses complete; all completed");
    report_case("our client -> h3 server: GOAWAY with requests in flight", start);
}
