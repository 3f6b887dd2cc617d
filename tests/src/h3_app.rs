//! The HTTP/3 application shared by the HTTP/3 interop tests
//! (`tests/interop_h3_aioquic.rs`, `tests/interop_h3_quinn.rs`): our server's
//! request handler, our client's request bookkeeping, and the UDP loops that
//! run them over h3-core + quic-core on 127.0.0.1.
//!
//! Routes of the test server (every peer's server implements the same):
//! - `GET /bytes/<n>` → 200 with n pattern bytes (`content-length: n`);
//! - `POST /sha256` → 200 with the lowercase sha256 hex of the request body;
//! - `GET /trailers` → 200 with [`TRAILERS_BODY`] then the trailer section
//!   `x-body-sha256: <hex of the body>`, `x-trailer-test: done`;
//! - anything else → 404.
//!
//! Body byte i is `(i*7 + i/251) & 0xff` (the interop pattern). It repeats
//! every [`PERIOD`] bytes, so bodies of any size are sent as zero-copy slices
//! of one ~1 MB block and checked chunk by chunk: nothing holds a whole
//! 100 MB body.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use h3_core::connection::{H3Config, H3Connection, H3Event, SendError};
use h3_core::qpack::HeaderField;
use quic_core::config::TransportConfig;
use quic_core::connection::{Connection, Event as QuicEvent, Side};
use quic_core::endpoint::{ClientConfig, ConnectionHandle, Endpoint, EndpointConfig, ServerConfig};
use quic_core::stream::StreamId;
use quic_core::Version;

use crate::udp::UdpDriver;

pub const ALPN_H3: &[u8] = b"h3";
/// Body of `GET /trailers`.
pub const TRAILERS_BODY: &[u8] = b"a small body followed by trailers\n";
/// Largest `/bytes/<n>` our server serves.
pub const MAX_BYTES_ROUTE: u64 = 1 << 30;
/// Bytes of each response body our client keeps for inspection.
pub const KEEP_BODY: usize = 64 * 1024;

// ------------------------------------------------------------------ pattern

/// The pattern repeats every 251*256 bytes: i*7 mod 256 has period 256 and
/// i/251 grows by 256 (≡ 0 mod 256) over 251*256 bytes.
pub const PERIOD: usize = 251 * 256;
/// Periods in the shared block (about 1 MB).
const BLOCK_PERIODS: usize = 16;

/// Pattern bytes 0..16*PERIOD; any offset is a slice of it.
fn block() -> &'static Bytes {
    static B: OnceLock<Bytes> = OnceLock::new();
    B.get_or_init(|| Bytes::from((0..PERIOD * BLOCK_PERIODS).map(|i| ((i * 7 + i / 251) & 0xff) as u8).collect::<Vec<u8>>()))
}

/// Up to `max` (at least 1 when `max > 0`) pattern bytes starting at stream
/// offset `offset`, as a zero-copy slice of the shared block.
pub fn pattern_bytes(offset: u64, max: usize) -> Bytes {
    let start = (offset % PERIOD as u64) as usize;
    let b = block();
    let len = max.min(b.len() - start);
    b.slice(start..start + len)
}

/// The first `n` pattern bytes in one buffer (small bodies only).
pub fn pattern_vec(n: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        let part = pattern_bytes(v.len() as u64, n - v.len());
        v.extend_from_slice(&part);
    }
    v
}

/// Whether `data`, found at stream offset `offset`, is the pattern.
pub fn is_pattern(offset: u64, data: &[u8]) -> bool {
    let mut at = offset;
    let mut rest = data;
    while !rest.is_empty() {
        let want = pattern_bytes(at, rest.len());
        let (head, tail) = rest.split_at(want.len());
        if head != &want[..] {
            return false;
        }
        at += head.len() as u64;
        rest = tail;
    }
    true
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, data))
}

/// sha256 hex of the first `n` pattern bytes (cached per n).
pub fn pattern_sha256(n: u64) -> String {
    static CACHE: OnceLock<Mutex<HashMap<u64, String>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(h) = cache.lock().ok().and_then(|c| c.get(&n).cloned()) {
        return h;
    }
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut off = 0u64;
    while off < n {
        let part = pattern_bytes(off, (n - off).min(1 << 20) as usize);
        ctx.update(&part);
        off += part.len() as u64;
    }
    let h = hex::encode(ctx.finish().as_ref());
    if let Ok(mut c) = cache.lock() {
        c.insert(n, h.clone());
    }
    h
}

/// A body checked as it streams in: length, sha256, whether it is the
/// pattern, and its first [`KEEP_BODY`] bytes.
#[derive(Clone)]
pub struct BodyCheck {
    hash: ring::digest::Context,
    pub len: u64,
    pub is_pattern: bool,
    pub head: Vec<u8>,
}

impl std::fmt::Debug for BodyCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyCheck").field("len", &self.len).field("is_pattern", &self.is_pattern).finish_non_exhaustive()
    }
}

impl Default for BodyCheck {
    fn default() -> Self {
        Self { hash: ring::digest::Context::new(&ring::digest::SHA256), len: 0, is_pattern: true, head: Vec::new() }
    }
}

impl BodyCheck {
    pub fn update(&mut self, data: &[u8]) {
        self.hash.update(data);
        if self.is_pattern && !is_pattern(self.len, data) {
            self.is_pattern = false;
        }
        if self.head.len() < KEEP_BODY {
            let k = (KEEP_BODY - self.head.len()).min(data.len());
            self.head.extend_from_slice(&data[..k]);
        }
        self.len += data.len() as u64;
    }

    pub fn sha256_hex(&self) -> String {
        hex::encode(self.hash.clone().finish().as_ref())
    }
}

// ------------------------------------------------------------------ headers

pub fn hf(name: &str, value: &str) -> HeaderField {
    HeaderField::new(name.as_bytes().to_vec(), value.as_bytes().to_vec())
}

/// The value of the first field called `name`, as text.
pub fn field<'a>(fields: &'a [HeaderField], name: &str) -> Option<&'a str> {
    fields.iter().find(|f| &f.name[..] == name.as_bytes()).and_then(|f| std::str::from_utf8(&f.value).ok())
}

pub fn fields_to_pairs(fields: &[HeaderField]) -> Vec<(String, String)> {
    fields.iter().map(|f| (String::from_utf8_lossy(&f.name).into_owned(), String::from_utf8_lossy(&f.value).into_owned())).collect()
}

/// What a test route answers, independent of the HTTP/3 stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /bytes/<n>`.
    Bytes(u64),
    /// `POST /sha256`: answered once the body is complete.
    Sha256,
    /// `GET /trailers`.
    Trailers,
    NotFound,
}

pub fn route(method: &str, path: &str) -> Route {
    match (method, path) {
        ("GET", "/trailers") => Route::Trailers,
        ("POST", "/sha256") => Route::Sha256,
        ("GET", p) => match p.strip_prefix("/bytes/").and_then(|n| n.parse::<u64>().ok()) {
            Some(n) if n <= MAX_BYTES_ROUTE => Route::Bytes(n),
            _ => Route::NotFound,
        },
        _ => Route::NotFound,
    }
}

/// The trailers `GET /trailers` ends with.
pub fn trailers_route_trailers() -> Vec<(String, String)> {
    vec![("x-body-sha256".into(), sha256_hex(TRAILERS_BODY)), ("x-trailer-test".into(), "done".into())]
}

// ------------------------------------------------------------------ our server

#[derive(Debug, Clone, Copy, Default)]
pub struct ServerOptions {
    /// Send GOAWAY once this many requests arrived on a connection (they
    /// are still answered).
    pub goaway_after_requests: Option<usize>,
}

/// What our server saw on one connection.
#[derive(Debug, Clone, Default)]
pub struct ServerReport {
    pub handshake_done: bool,
    pub alpn: Option<String>,
    /// Request header sections received.
    pub requests: usize,
    /// Responses sent completely (FIN queued).
    pub responses: usize,
    pub not_found: usize,
    pub body_bytes_sent: u64,
    pub body_bytes_received: u64,
    /// `POST /sha256` answers: (body length, hex).
    pub sha256_answers: Vec<(u64, String)>,
    /// Trailer sections on requests.
    pub request_trailers: Vec<Vec<(String, String)>>,
    /// The GOAWAY ID we sent and the requests received at that moment.
    pub goaway_sent: Option<(u64, usize)>,
    /// Response body bytes queued, and responses complete, when GOAWAY went out.
    pub body_bytes_sent_at_goaway: u64,
    pub responses_at_goaway: usize,
    /// Streams reset by the peer (id, code).
    pub resets: Vec<(u64, u64)>,
    pub errors: Vec<String>,
    pub closed: Option<String>,
    /// QUIC packets sent and declared lost (last seen).
    pub packets_sent: u64,
    pub packets_lost: u64,
}

#[derive(Debug)]
enum OutBody {
    Pattern { n: u64, sent: u64 },
    Fixed { data: Bytes, sent: usize },
}

/// A response being sent.
#[derive(Debug)]
struct Outgoing {
    /// Header section not sent yet (`send_response` would block).
    head: Option<(u16, Vec<HeaderField>)>,
    body: OutBody,
    trailers: Vec<HeaderField>,
}

#[derive(Debug)]
struct ServerStream {
    route: Route,
    /// `POST /sha256` body so far.
    upload: Option<BodyCheck>,
    out: Option<Outgoing>,
}

/// Our test server's HTTP/3 side of one connection.
#[derive(Debug)]
pub struct H3ServerApp {
    pub h3: H3Connection,
    opts: ServerOptions,
    streams: HashMap<StreamId, ServerStream>,
    pub report: ServerReport,
}

impl H3ServerApp {
    pub fn new(opts: ServerOptions) -> Self {
        Self { h3: H3Connection::new(Side::Server, H3Config::default()), opts, streams: HashMap::new(), report: ServerReport::default() }
    }

    /// Runs after every turn of the UDP loop: HTTP/3 processing, requests,
    /// then as much response body as the streams take.
    pub fn drive(&mut self, conn: &mut Connection, now: Instant) {
        if let Err(e) = self.h3.process(conn, now) {
            if self.report.errors.len() < 16 {
                self.report.errors.push(format!("h3 process: {e:?}"));
            }
        }
        while let Some(ev) = self.h3.poll_event() {
            self.on_event(conn, ev);
        }
        self.pump(conn);
        if self.report.alpn.is_none() {
            self.report.alpn = conn.alpn().map(|a| String::from_utf8_lossy(a).into_owned());
        }
        let stats = conn.stats();
        self.report.packets_sent = stats.packets_sent;
        self.report.packets_lost = stats.packets_lost;
    }

    fn on_event(&mut self, conn: &mut Connection, ev: H3Event) {
        match ev {
            H3Event::Headers { stream, headers, .. } => {
                self.report.requests += 1;
                let method = field(&headers, ":method").unwrap_or("").to_string();
                let path = field(&headers, ":path").unwrap_or("").to_string();
                let r = route(&method, &path);
                let mut st = ServerStream { route: r.clone(), upload: None, out: None };
                match r {
                    Route::Bytes(n) => {
                        st.out = Some(Outgoing {
                            head: Some((200, vec![hf("content-type", "application/octet-stream"), hf("content-length", &n.to_string())])),
                            body: OutBody::Pattern { n, sent: 0 },
                            trailers: Vec::new(),
                        });
                    }
                    Route::Trailers => {
                        st.out = Some(Outgoing {
                            head: Some((200, vec![hf("content-type", "text/plain")])),
                            body: OutBody::Fixed { data: Bytes::from_static(TRAILERS_BODY), sent: 0 },
                            trailers: trailers_route_trailers().iter().map(|(k, v)| hf(k, v)).collect(),
                        });
                    }
                    Route::Sha256 => st.upload = Some(BodyCheck::default()),
                    Route::NotFound => {
                        self.report.not_found += 1;
                        st.out = Some(Outgoing {
                            head: Some((404, vec![hf("content-type", "text/plain"), hf("content-length", "10")])),
                            body: OutBody::Fixed { data: Bytes::from_static(b"not found\n"), sent: 0 },
                            trailers: Vec::new(),
                        });
                    }
                }
                self.streams.insert(stream, st);
                if self.opts.goaway_after_requests == Some(self.report.requests) && self.report.goaway_sent.is_none() {
                    // RFC 9114 §5.2: requests up to this one are still served.
                    match self.h3.send_goaway(conn) {
                        Some(id) => {
                            self.report.goaway_sent = Some((id, self.report.requests));
                            self.report.body_bytes_sent_at_goaway = self.report.body_bytes_sent;
                            self.report.responses_at_goaway = self.report.responses;
                        }
                        None => self.report.errors.push("send_goaway failed".into()),
                    }
                }
            }
            H3Event::Data { stream } => {
                while let Some(b) = self.h3.recv_body(conn, stream, usize::MAX) {
                    self.report.body_bytes_received += b.len() as u64;
                    if let Some(up) = self.streams.get_mut(&stream).and_then(|s| s.upload.as_mut()) {
                        up.update(&b);
                    }
                }
            }
            H3Event::Trailers { headers, .. } => self.report.request_trailers.push(fields_to_pairs(&headers)),
            H3Event::Finished { stream } => {
                if let Some(st) = self.streams.get_mut(&stream) {
                    if st.route == Route::Sha256 && st.out.is_none() {
                        let body = st.upload.take().unwrap_or_default();
                        let hex = body.sha256_hex();
                        self.report.sha256_answers.push((body.len, hex.clone()));
                        st.out = Some(Outgoing {
                            head: Some((200, vec![hf("content-type", "text/plain"), hf("content-length", &hex.len().to_string())])),
                            body: OutBody::Fixed { data: Bytes::from(hex.into_bytes()), sent: 0 },
                            trailers: Vec::new(),
                        });
                    }
                }
            }
            H3Event::Reset { stream, code } => {
                self.report.resets.push((stream.0, code));
                self.streams.remove(&stream);
            }
            H3Event::GoAway { .. } | H3Event::Datagram { .. } | H3Event::Writable { .. } | H3Event::Acknowledged { .. } => {}
            H3Event::Transport(QuicEvent::HandshakeCompleted) => self.report.handshake_done = true,
            H3Event::Transport(QuicEvent::ConnectionLost(e)) => self.report.closed = Some(format!("{e:?}")),
            H3Event::Transport(_) => {}
        }
    }

    /// Moves every pending response forward as far as the streams allow.
    fn pump(&mut self, conn: &mut Connection) {
        let mut done = Vec::new();
        for (&id, st) in self.streams.iter_mut() {
            let Some(out) = st.out.as_mut() else { continue };
            match send_out(&mut self.h3, conn, id, out, &mut self.report.body_bytes_sent) {
                Ok(true) => done.push(id),
                Ok(false) => {}
                Err(e) => {
                    self.report.errors.push(format!("stream {}: {e}", id.0));
                    done.push(id);
                }
            }
        }
        for id in done {
            self.streams.remove(&id);
            self.report.responses += 1;
        }
    }
}

/// Sends what it can of `out`; `Ok(true)` once the whole response (and FIN)
/// is queued.
fn send_out(h3: &mut H3Connection, conn: &mut Connection, id: StreamId, out: &mut Outgoing, sent_total: &mut u64) -> Result<bool, String> {
    let has_trailers = !out.trailers.is_empty();
    if let Some((status, fields)) = out.head.take() {
        match h3.send_response(conn, id, status, &fields, false) {
            Ok(()) => {}
            Err(SendError::WouldBlock) => {
                out.head = Some((status, fields));
                return Ok(false);
            }
            Err(e) => return Err(format!("send_response: {e:?}")),
        }
    }
    loop {
        let (chunk, last) = match &out.body {
            OutBody::Pattern { n, sent } => {
                let left = n - sent;
                let c = pattern_bytes(*sent, left.min(1 << 20) as usize);
                let last = c.len() as u64 == left;
                (c, last)
            }
            OutBody::Fixed { data, sent } => (data.slice(*sent..), true),
        };
        let want = chunk.len();
        let n = h3.send_data_bytes(conn, id, chunk, last && !has_trailers).map_err(|e| format!("send_data: {e:?}"))?;
        *sent_total += n as u64;
        match &mut out.body {
            OutBody::Pattern { sent, .. } => *sent += n as u64,
            OutBody::Fixed { sent, .. } => *sent += n,
        }
        if n < want {
            return Ok(false);
        }
        if last {
            break;
        }
    }
    if has_trailers {
        match h3.send_headers(conn, id, &out.trailers, true) {
            Ok(()) => out.trailers.clear(),
            Err(SendError::WouldBlock) => return Ok(false),
            Err(e) => return Err(format!("send trailers: {e:?}")),
        }
    }
    Ok(true)
}

/// Our server on 127.0.0.1:0 in its own thread; stopped and joined on drop.
#[derive(Debug)]
pub struct OurH3Server {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    reports: Arc<Mutex<Vec<ServerReport>>>,
    thread: Option<JoinHandle<()>>,
}

impl OurH3Server {
    /// `tls` must offer ALPN "h3". The thread stops by itself after `limit`.
    pub fn start(tls: Arc<rustls::ServerConfig>, transport: TransportConfig, opts: ServerOptions, limit: Duration) -> Self {
        let mut sc = ServerConfig::new(tls, b"h3 interop token secret", unix_now());
        sc.transport = Arc::new(transport);
        let endpoint = Endpoint::new(EndpointConfig::new(b"h3 interop server reset"), Some(sc), Instant::now());
        let mut driver = UdpDriver::bind("127.0.0.1:0", endpoint).unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = driver.local_addr();
        let stop = Arc::new(AtomicBool::new(false));
        let reports = Arc::new(Mutex::new(Vec::new()));
        let (stop2, reports2) = (stop.clone(), reports.clone());
        let thread = std::thread::Builder::new()
            .name("our-h3-server".into())
            .spawn(move || {
                let end = Instant::now() + limit;
                let mut apps: HashMap<ConnectionHandle, (usize, H3ServerApp)> = HashMap::new();
                while !stop2.load(Ordering::Relaxed) && Instant::now() < end {
                    driver.turn(Duration::from_millis(5));
                    // Closed first: a freed handle may be reused.
                    while let Some((h, err)) = driver.endpoint.poll_closed() {
                        if let Some((i, mut app)) = apps.remove(&h) {
                            if app.report.closed.is_none() {
                                app.report.closed = Some(err.map_or_else(|| "none".to_string(), |e| format!("{e:?}")));
                            }
                            if let Ok(mut r) = reports2.lock() {
                                r[i] = app.report;
                            }
                        }
                    }
                    for h in driver.accepted.drain(..) {
                        let Ok(mut r) = reports2.lock() else { continue };
                        r.push(ServerReport::default());
                        apps.insert(h, (r.len() - 1, H3ServerApp::new(opts)));
                    }
                    let now = Instant::now();
                    for (h, (i, app)) in apps.iter_mut() {
                        if let Some(conn) = driver.endpoint.connection(*h) {
                            app.drive(conn, now);
                            if let Ok(mut r) = reports2.lock() {
                                r[*i] = app.report.clone();
                            }
                        }
                    }
                    // Send what the applications queued right away.
                    driver.flush();
                }
            })
            .unwrap_or_else(|e| panic!("spawn: {e}"));
        Self { addr, stop, reports, thread: Some(thread) }
    }

    pub fn reports(&self) -> Vec<ServerReport> {
        self.reports.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Waits (bounded) until report `i` satisfies `cond`.
    pub fn wait_report(&self, i: usize, limit: Duration, cond: impl Fn(&ServerReport) -> bool) -> Result<ServerReport, String> {
        let end = Instant::now() + limit;
        loop {
            let r = self.reports().get(i).cloned();
            match r {
                Some(r) if cond(&r) => return Ok(r),
                r if Instant::now() >= end => return Err(format!("server report {i} not as expected within {limit:?}: {r:#?}")),
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

impl Drop for OurH3Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

// ------------------------------------------------------------------ our client

/// A request our client makes.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    pub method: String,
    pub path: String,
    /// Upload this many pattern bytes as the body.
    pub upload: Option<u64>,
    /// Trailer section after the body.
    pub trailers: Vec<(String, String)>,
}

impl RequestSpec {
    pub fn get(path: &str) -> Self {
        Self { method: "GET".into(), path: path.into(), upload: None, trailers: Vec::new() }
    }

    pub fn post_sha256(n: u64) -> Self {
        Self { method: "POST".into(), path: "/sha256".into(), upload: Some(n), trailers: Vec::new() }
    }

    pub fn with_trailers(mut self, t: &[(&str, &str)]) -> Self {
        self.trailers = t.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self
    }

    fn headers(&self) -> Vec<HeaderField> {
        let mut h = vec![hf(":method", &self.method), hf(":scheme", "https"), hf(":authority", "localhost"), hf(":path", &self.path)];
        h.push(hf("user-agent", "quicpro-h3-interop"));
        if let Some(n) = self.upload {
            h.push(hf("content-length", &n.to_string()));
        }
        h
    }
}

/// Our client's view of one request.
#[derive(Debug, Clone, Default)]
pub struct ResponseRecord {
    pub stream: Option<u64>,
    pub status: Option<u16>,
    pub headers: Vec<(String, String)>,
    pub body: BodyCheck,
    pub trailers: Option<Vec<(String, String)>>,
    /// The response was read to its end.
    pub done: bool,
    pub reset: Option<u64>,
    /// Not sent: GOAWAY arrived first.
    pub refused: bool,
    pub error: Option<String>,
    pub uploaded: u64,
    pub started: Option<Instant>,
    pub finished: Option<Instant>,
}

impl ResponseRecord {
    /// Finished one way or another.
    pub fn settled(&self) -> bool {
        self.done || self.reset.is_some() || self.refused || self.error.is_some()
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body.head).into_owned()
    }
}

#[derive(Debug)]
struct Upload {
    index: usize,
    n: u64,
    sent: u64,
    trailers: Vec<HeaderField>,
}

/// Our test client's HTTP/3 side of one connection.
#[derive(Debug)]
pub struct H3ClientApp {
    pub h3: H3Connection,
    specs: Vec<RequestSpec>,
    queue: VecDeque<usize>,
    pub responses: Vec<ResponseRecord>,
    by_stream: HashMap<StreamId, usize>,
    uploads: HashMap<StreamId, Upload>,
    /// GOAWAY ID received, and how many responses were complete then.
    pub goaway: Option<(u64, usize)>,
    pub errors: Vec<String>,
    pub closed: Option<String>,
}

impl Default for H3ClientApp {
    fn default() -> Self {
        Self::new()
    }
}

impl H3ClientApp {
    pub fn new() -> Self {
        Self {
            h3: H3Connection::new(Side::Client, H3Config::default()),
            specs: Vec::new(),
            queue: VecDeque::new(),
            responses: Vec::new(),
            by_stream: HashMap::new(),
            uploads: HashMap::new(),
            goaway: None,
            errors: Vec::new(),
            closed: None,
        }
    }

    /// Queues a request; it goes out on the next `drive` the peer's stream
    /// limit allows. Returns its index in `responses`.
    pub fn request(&mut self, spec: RequestSpec) -> usize {
        self.specs.push(spec);
        self.responses.push(ResponseRecord::default());
        self.queue.push_back(self.specs.len() - 1);
        self.specs.len() - 1
    }

    pub fn has_queued(&self) -> bool {
        !self.queue.is_empty()
    }

    pub fn done_count(&self) -> usize {
        self.responses.iter().filter(|r| r.done).count()
    }

    pub fn all_settled(&self) -> bool {
        self.queue.is_empty() && self.responses.iter().all(ResponseRecord::settled)
    }

    pub fn drive(&mut self, conn: &mut Connection, now: Instant) {
        if let Err(e) = self.h3.process(conn, now) {
            if self.errors.len() < 16 {
                self.errors.push(format!("h3 process: {e:?}"));
            }
        }
        self.handle_events(conn);
        if !conn.is_handshaking() {
            self.open_queued(conn);
        }
        self.pump_uploads(conn);
        // Uploads may have freed flow-control credit or made events.
        self.handle_events(conn);
    }

    fn handle_events(&mut self, conn: &mut Connection) {
        while let Some(ev) = self.h3.poll_event() {
            match ev {
                H3Event::Headers { stream, headers, .. } => {
                    let Some(r) = self.by_stream.get(&stream).map(|&i| &mut self.responses[i]) else { continue };
                    let status = field(&headers, ":status").and_then(|s| s.parse::<u16>().ok());
                    if status.is_some_and(|s| (100..200).contains(&s)) {
                        continue;
                    }
                    r.status = status;
                    r.headers = fields_to_pairs(&headers);
                }
                H3Event::Data { stream } => {
                    while let Some(b) = self.h3.recv_body(conn, stream, usize::MAX) {
                        if let Some(&i) = self.by_stream.get(&stream) {
                            self.responses[i].body.update(&b);
                        }
                    }
                }
                H3Event::Trailers { stream, headers } => {
                    if let Some(&i) = self.by_stream.get(&stream) {
                        self.responses[i].trailers = Some(fields_to_pairs(&headers));
                    }
                }
                H3Event::Finished { stream } => {
                    if let Some(&i) = self.by_stream.get(&stream) {
                        self.responses[i].done = true;
                        self.responses[i].finished = Some(Instant::now());
                    }
                }
                H3Event::Reset { stream, code } => {
                    if let Some(&i) = self.by_stream.get(&stream) {
                        self.responses[i].reset = Some(code);
                    }
                    self.uploads.remove(&stream);
                }
                H3Event::GoAway { id } => {
                    let done = self.done_count();
                    self.goaway = Some((id, done));
                }
                H3Event::Transport(QuicEvent::ConnectionLost(e)) => self.closed = Some(format!("{e:?}")),
                H3Event::Transport(_) | H3Event::Datagram { .. } | H3Event::Writable { .. } | H3Event::Acknowledged { .. } => {}
            }
        }
    }

    fn open_queued(&mut self, conn: &mut Connection) {
        while let Some(&i) = self.queue.front() {
            let spec = &self.specs[i];
            let end = spec.upload.is_none() && spec.trailers.is_empty();
            match self.h3.send_request(conn, &spec.headers(), end) {
                Ok(id) => {
                    self.queue.pop_front();
                    self.by_stream.insert(id, i);
                    let r = &mut self.responses[i];
                    r.stream = Some(id.0);
                    r.started = Some(Instant::now());
                    if !end {
                        let trailers = spec.trailers.iter().map(|(k, v)| hf(k, v)).collect();
                        self.uploads.insert(id, Upload { index: i, n: spec.upload.unwrap_or(0), sent: 0, trailers });
                    }
                }
                Err(SendError::Refused) if self.h3.goaway_received().is_some() => {
                    // RFC 9114 §5.2: no new requests after GOAWAY.
                    self.queue.pop_front();
                    self.responses[i].refused = true;
                }
                // Refused (stream limit) or WouldBlock: try again next time.
                Err(SendError::Refused) | Err(SendError::WouldBlock) => break,
                Err(e) => {
                    self.queue.pop_front();
                    self.responses[i].error = Some(format!("send_request: {e:?}"));
                }
            }
        }
    }

    fn pump_uploads(&mut self, conn: &mut Connection) {
        let mut finished = Vec::new();
        for (&id, up) in self.uploads.iter_mut() {
            let res = pump_upload(&mut self.h3, conn, id, up);
            self.responses[up.index].uploaded = up.sent;
            match res {
                Ok(true) => finished.push(id),
                Ok(false) => {}
                Err(e) => {
                    self.responses[up.index].error = Some(e);
                    finished.push(id);
                }
            }
        }
        for id in finished {
            self.uploads.remove(&id);
        }
    }
}

/// Sends what it can of an upload; `Ok(true)` once body, trailers and FIN
/// are queued.
fn pump_upload(h3: &mut H3Connection, conn: &mut Connection, id: StreamId, up: &mut Upload) -> Result<bool, String> {
    let has_trailers = !up.trailers.is_empty();
    loop {
        let left = up.n - up.sent;
        let chunk = pattern_bytes(up.sent, left.min(1 << 20) as usize);
        let last = chunk.len() as u64 == left;
        let want = chunk.len();
        let n = h3.send_data_bytes(conn, id, chunk, last && !has_trailers).map_err(|e| format!("upload send_data: {e:?}"))?;
        up.sent += n as u64;
        if n < want {
            return Ok(false);
        }
        if last {
            break;
        }
    }
    if has_trailers {
        match h3.send_headers(conn, id, &up.trailers, true) {
            Ok(()) => {}
            Err(SendError::WouldBlock) => return Ok(false),
            Err(e) => return Err(format!("request trailers: {e:?}")),
        }
    }
    Ok(true)
}

/// Our client over UDP on 127.0.0.1, driven in the calling thread.
pub struct OurH3Client {
    pub driver: UdpDriver,
    pub handle: ConnectionHandle,
    pub app: H3ClientApp,
}

impl std::fmt::Debug for OurH3Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OurH3Client").field("handle", &self.handle).field("app", &self.app).finish_non_exhaustive()
    }
}

impl OurH3Client {
    /// Starts the connection (ALPN "h3" must be in `tls`).
    pub fn connect(server: SocketAddr, tls: Arc<rustls::ClientConfig>, transport: TransportConfig) -> Self {
        let endpoint = Endpoint::new(EndpointConfig::new(b"h3 interop client reset"), None, Instant::now());
        let mut driver = UdpDriver::bind("127.0.0.1:0", endpoint).unwrap_or_else(|e| panic!("bind: {e}"));
        let config = ClientConfig { tls, transport: Arc::new(transport), version: Version::V1 };
        let handle = driver.endpoint.connect(Instant::now(), &config, server, "localhost", Bytes::new()).unwrap_or_else(|e| panic!("connect: {e:?}"));
        Self { driver, handle, app: H3ClientApp::new() }
    }

    /// Turns the loop until `cond` holds (it may queue more requests), the
    /// connection closes, or `limit` passes.
    pub fn run_until(&mut self, limit: Duration, mut cond: impl FnMut(&mut H3ClientApp) -> bool) -> Result<(), String> {
        let end = Instant::now() + limit;
        loop {
            self.driver.turn(Duration::from_millis(5));
            let Some(conn) = self.driver.endpoint.connection(self.handle) else {
                let closed: Vec<_> = std::iter::from_fn(|| self.driver.endpoint.poll_closed()).collect();
                return Err(format!("our client connection is gone: {closed:?}; h3 errors {:?}", self.app.errors));
            };
            let now = Instant::now();
            self.app.drive(conn, now);
            if cond(&mut self.app) {
                return Ok(());
            }
            if self.app.has_queued() {
                self.app.drive(conn, now);
            }
            if let Some(e) = conn.error() {
                return Err(format!("connection closed: {e}; h3 errors {:?}", self.app.errors));
            }
            if Instant::now() >= end {
                let pending = self.app.responses.iter().filter(|r| !r.settled()).count();
                return Err(format!(
                    "not done within {limit:?}: {pending} requests pending, {} done, goaway {:?}, errors {:?}",
                    self.app.done_count(),
                    self.app.goaway,
                    self.app.errors
                ));
            }
        }
    }

    pub fn stats(&self) -> Option<quic_core::connection::ConnectionStats> {
        self.driver.endpoint.connection_ref(self.handle).map(Connection::stats)
    }

    /// Closes with H3_NO_ERROR and waits (bounded) for the close to go out.
    pub fn close(&mut self) {
        if let Some(c) = self.driver.endpoint.connection(self.handle) {
            c.close(Instant::now(), 0x100, b"done");
        }
        let end = Instant::now() + Duration::from_secs(2);
        while self.driver.endpoint.connection_ref(self.handle).is_some_and(|c| !c.is_drained()) && Instant::now() < end {
            self.driver.turn(Duration::from_millis(5));
        }
    }
}

/// Our client's TLS: ALPN "h3", trusting `root` only.
pub fn client_tls(root: rustls::pki_types::CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut tls = quic_core::tls::ClientTlsOptions::new(&[ALPN_H3]);
    tls.extra_roots.push(root);
    tls.build().unwrap_or_else(|e| panic!("client tls: {e:?}"))
}

/// Our server's TLS: ALPN "h3".
pub fn server_tls(chain: Vec<rustls::pki_types::CertificateDer<'static>>, key: rustls::pki_types::PrivateKeyDer<'static>) -> Arc<rustls::ServerConfig> {
    quic_core::tls::ServerTlsOptions::new(chain, key, &[ALPN_H3]).build().unwrap_or_else(|e| panic!("server tls: {e:?}"))
}

/// Transport settings for the HTTP/3 interop runs: room for 200+
/// concurrent requests and windows that let 100 MB bodies stream.
pub fn transport() -> TransportConfig {
    TransportConfig { max_concurrent_bidi_streams: 256, max_idle_timeout: Duration::from_secs(30), ..TransportConfig::default() }
}

/// Throughput in MiB/s.
pub fn mib_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1u64 << 20) as f64 / d.as_secs_f64().max(1e-9)
}
