//! The client side: `Quicpro\ClientSession` and the procedural
//! `quicpro_connect` / `quicpro_send_request` / `quicpro_receive_response` /
//! `quicpro_await` / `quicpro_poll` / `quicpro_close` functions of the
//! documents.
//!
//! One client endpoint per process and address family (one UDP socket,
//! `io_backends::runtime::ClientEndpoint`) carries every session: one wait
//! drives them all, so sessions in different Fibers make progress together
//! (`client_loop.rs` suspends a waiting Fiber instead of blocking). The
//! endpoint's state lives in [`Hub`], keyed by session; a PHP
//! `ClientSession` holds only its key.
//!
//! Every client connection of a process shares one TLS session store, so a
//! second `quicpro_connect` to the same host resumes (and may send its
//! requests as 0-RTT). Under PHP-FPM a worker process serves many requests,
//! so the store carries tickets from one request to the next.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ext_php_rs::binary::Binary;
use ext_php_rs::prelude::*;
use ext_php_rs::types::{ZendClassObject, ZendHashTable, Zval};
use h3_core::connection::{H3Event, SendError};
use h3_core::qpack::HeaderField;
use io_backends::backend::BackendKind;
use io_backends::runtime::client::ClientError;
use io_backends::runtime::{ClientEndpoint, ClientOptions, H3Handle};
use io_backends::select::BackendConfig;
use quic_core::connection::{ConnectionError, Event as QuicEvent};
use quic_core::stream::StreamId;
use quic_core::tls::ClientTlsOptions;

use crate::client_loop;
use crate::config::{Config, ConfigData};
use crate::errors::{ErrorKind, QpError, QpResult};
use crate::headers;

/// The process's TLS client session store (tickets for resumption/0-RTT).
fn session_store() -> Arc<dyn rustls::client::ClientSessionStore> {
    static STORE: OnceLock<Arc<rustls::client::ClientSessionMemoryCache>> = OnceLock::new();
    STORE.get_or_init(|| Arc::new(rustls::client::ClientSessionMemoryCache::new(1024))).clone()
}

/// The process's NEW_TOKEN tokens (RFC 9000 §8.1.3): the next connection
/// to a server that sent one skips its Retry.
fn token_store() -> io_backends::runtime::TokenStore {
    static STORE: OnceLock<io_backends::runtime::TokenStore> = OnceLock::new();
    STORE.get_or_init(io_backends::runtime::TokenStore::new).clone()
}

/// One built rustls config per distinct set of TLS options, for the life
/// of the process: rustls resumes a session only under the verifier that
/// checked it, so every connection with the same options must share it.
fn tls_config(opts: &ClientTlsOptions) -> QpResult<Arc<rustls::ClientConfig>> {
    thread_local! {
        static BUILT: RefCell<HashMap<String, Arc<rustls::ClientConfig>>> = RefCell::new(HashMap::new());
    }
    // The client certificate by digest: configs differing only in it differ.
    let identity =
        opts.client_cert.as_ref().and_then(|(chain, _)| chain.first()).map(|c| ring::digest::digest(&ring::digest::SHA256, c.as_ref()).as_ref().to_vec());
    let key = format!("{:?}|{:?}|{}|{}|{}|{:?}", opts.alpn, opts.ca_file, opts.insecure_skip_verify, opts.early_data, opts.key_log, identity);
    if let Some(c) = BUILT.with(|b| b.borrow().get(&key).cloned()) {
        return Ok(c);
    }
    let c = opts.build().map_err(|e| QpError::new(ErrorKind::Config, format!("TLS configuration: {e}")))?;
    BUILT.with(|b| {
        let mut b = b.borrow_mut();
        // Bounded: configurations are few in practice.
        if b.len() >= 64 {
            b.clear();
        }
        b.insert(key, c.clone());
    });
    Ok(c)
}

/// A default configuration for `quicpro_connect($host, $port)` without one.
fn default_config() -> Rc<ConfigData> {
    thread_local! {
        static DEFAULT: RefCell<Option<Rc<ConfigData>>> = const { RefCell::new(None) };
    }
    DEFAULT.with(|d| d.borrow_mut().get_or_insert_with(|| Rc::new(ConfigData::defaults())).clone())
}

#[derive(Debug, Default)]
struct Response {
    status: Option<u16>,
    headers: Vec<HeaderField>,
    trailers: Vec<HeaderField>,
    body: Vec<u8>,
    done: bool,
    reset: Option<u64>,
    too_big: bool,
}

fn classify(e: &ConnectionError) -> ErrorKind {
    match e {
        // RFC 9001 §4.8: TLS alerts travel as CRYPTO_ERROR 0x0100-0x01ff.
        ConnectionError::TransportError(err) if (0x100..0x200).contains(&err.code.0) => ErrorKind::Tls,
        ConnectionError::PeerTransportClose { code, .. } if (0x100..0x200).contains(&code.0) => ErrorKind::Tls,
        ConnectionError::TimedOut | ConnectionError::HandshakeTimedOut => ErrorKind::Timeout,
        ConnectionError::TransportError(_) | ConnectionError::PeerTransportClose { .. } => ErrorKind::Transport,
        _ => ErrorKind::Connection,
    }
}

fn client_error(e: ClientError) -> QpError {
    match e {
        ClientError::Connection(c) => QpError::new(classify(&c), format!("connection failed: {c}")),
        ClientError::TimedOut => QpError::new(ErrorKind::Timeout, "handshake timed out"),
        ClientError::Tls(t) => QpError::new(ErrorKind::Config, format!("TLS configuration: {t}")),
        ClientError::Backend(b) => QpError::new(ErrorKind::Socket, b.to_string()),
        ClientError::Io(io) => QpError::new(ErrorKind::Socket, io.to_string()),
        ClientError::Connect(c) => QpError::new(ErrorKind::Client, format!("connect: {c}")),
        ClientError::Migrate(m) => QpError::new(ErrorKind::Client, format!("cannot migrate: {m}")),
    }
}

/// A session's key in the [`Hub`]: unique for the life of the process.
pub type SessionKey = u64;

/// The address families, one endpoint each.
const V4: usize = 0;
const V6: usize = 1;

/// What the hub keeps for one session.
#[derive(Debug)]
struct SessionState {
    family: usize,
    handle: H3Handle,
    cfg: Rc<ConfigData>,
    authority: String,
    responses: HashMap<StreamId, Response>,
    closed: Option<(ErrorKind, String)>,
    /// The pool key of a `persistent` session: origin and options.
    origin: Option<String>,
    /// Taken from the pool rather than connected anew.
    reused: bool,
}

/// Bounds of the persistent pool: idle connections per origin and in all.
const POOL_PER_ORIGIN: usize = 8;
const POOL_TOTAL: usize = 64;

impl SessionState {
    fn closed_error(&self) -> QpError {
        match &self.closed {
            Some((k, m)) => QpError::new(*k, m.clone()),
            None => QpError::new(ErrorKind::Connection, "the connection is closed"),
        }
    }
}

/// The process's client endpoints and every session on them.
#[derive(Debug, Default)]
pub(crate) struct Hub {
    /// The process the endpoints were opened in: a forked child starts
    /// afresh rather than share its parent's sockets.
    pid: u32,
    endpoints: [Option<ClientEndpoint>; 2],
    sessions: HashMap<SessionKey, SessionState>,
    by_handle: [HashMap<H3Handle, SessionKey>; 2],
    next_key: SessionKey,
    /// Sessions that got events since the loop last looked
    /// (`client_loop.rs` resumes the Fibers waiting on them).
    dirty: Vec<SessionKey>,
    /// Idle `persistent` sessions by pool key, with when they were
    /// pooled: the next connect to the same origin takes one.
    pool: HashMap<String, Vec<(SessionKey, Instant)>>,
    pooled: usize,
}

thread_local! {
    // Boxed: the extension's whole thread-local block must fit PHP's
    // static TLS room (mimalloc makes the module initial-exec TLS), so
    // thread-locals stay pointer-sized.
    static HUB: RefCell<Option<Box<Hub>>> = const { RefCell::new(None) };
}

/// Runs `f` on the process's hub (never across a Fiber switch).
pub(crate) fn with_hub<R>(f: impl FnOnce(&mut Hub) -> R) -> R {
    HUB.with(|h| {
        let mut slot = h.borrow_mut();
        let pid = std::process::id();
        if slot.as_ref().is_some_and(|hub| hub.pid != pid) {
            // A forked child: nothing inherited is ours; the parent's
            // sockets stay open for the parent.
            std::mem::forget(slot.take());
        }
        let hub = slot.get_or_insert_with(|| Box::new(Hub { pid, ..Hub::default() }));
        f(hub)
    })
}

fn backend_config() -> QpResult<BackendConfig> {
    let mut backend = BackendConfig::from_env().map_err(|e| QpError::new(ErrorKind::Socket, e.to_string()))?;
    // Client sockets carry few packets: epoll unless forced, and never the
    // server's AF_XDP.
    if backend.forced.is_none() && backend.busy_poll_us == 0 {
        backend.forced = Some(BackendKind::Epoll);
    }
    backend.xdp_interface = None;
    Ok(backend)
}

impl Hub {
    fn endpoint(&mut self, family: usize) -> QpResult<&mut ClientEndpoint> {
        if self.endpoints[family].is_none() {
            let ep = ClientEndpoint::open(&backend_config()?, family == V6).map_err(client_error)?;
            self.endpoints[family] = Some(ep);
        }
        self.endpoints[family].as_mut().ok_or_else(|| QpError::new(ErrorKind::Socket, "no client endpoint"))
    }

    fn session(&mut self, key: SessionKey) -> QpResult<&mut SessionState> {
        self.sessions.get_mut(&key).ok_or_else(|| QpError::new(ErrorKind::Connection, "the session is closed"))
    }

    fn connect(&mut self, host: &str, port: i64, cfg: Rc<ConfigData>) -> QpResult<SessionKey> {
        let origin = cfg.persistent.then(|| format!("{host}|{port}|{}", cfg.client_identity()));
        if let Some(o) = &origin {
            if let Some(key) = self.take_pooled(o, &cfg) {
                let s = self.session(key)?;
                s.cfg = cfg;
                s.reused = true;
                return Ok(key);
            }
        }
        let port = u16::try_from(port).map_err(|_| QpError::new(ErrorKind::Client, format!("port {port} is out of range")))?;
        let host_bare = host.trim_start_matches('[').trim_end_matches(']');
        let addr: SocketAddr = (host_bare, port)
            .to_socket_addrs()
            .map_err(|e| QpError::new(ErrorKind::Client, format!("cannot resolve '{host}': {e}")))?
            .next()
            .ok_or_else(|| QpError::new(ErrorKind::Client, format!("'{host}' has no address")))?;
        let alpn = cfg.alpn_refs();
        let mut tls = ClientTlsOptions::new(&alpn);
        // Trust anchors: the config's CA file, else SSL_CERT_FILE (the
        // OpenSSL convention curl and PHP's openssl honour), else the system.
        tls.ca_file = cfg.ca_file.clone().or_else(|| std::env::var_os("SSL_CERT_FILE").map(Into::into));
        tls.insecure_skip_verify = !cfg.verify_peer;
        tls.early_data = cfg.early_data;
        tls.key_log = cfg.keylog;
        tls.session_store = Some(session_store());
        let tls = cfg.client_tls_identity(tls)?;
        let mut opts = ClientOptions::new(tls);
        opts.transport = cfg.transport();
        opts.version = cfg.quic_version;
        opts.h3 = cfg.h3();
        opts.tokens = Some(token_store());
        let server_name = cfg.server_name.clone().unwrap_or_else(|| host_bare.to_string());
        let built = tls_config(&opts.tls)?;
        let family = if addr.is_ipv6() { V6 } else { V4 };
        let qlog_dir = cfg.qlog_dir.clone().or_else(crate::trace::qlog_dir);
        let ep = self.endpoint(family)?;
        let handle = ep.connect(&opts, built, addr, &server_name, Bytes::new()).map_err(client_error)?;
        if let (Some(dir), Some(conn)) = (qlog_dir, ep.connection_mut(handle)) {
            // One qlog file per connection, from its first packet on.
            crate::trace::enable_client_qlog(conn, &dir, handle.0 .0);
        }
        let authority = if port == 443 { host.to_string() } else { format!("{host}:{port}") };
        self.next_key += 1;
        let key = self.next_key;
        self.sessions.insert(key, SessionState { family, handle, cfg, authority, responses: HashMap::new(), closed: None, origin, reused: false });
        self.by_handle[family].insert(handle, key);
        Ok(key)
    }

    /// One turn of every endpoint: the first waits at most `wait`.
    pub(crate) fn step(&mut self, wait: Duration) -> QpResult<()> {
        if !client_loop::running() {
            // Only a loop reads which sessions had news.
            self.dirty.clear();
        }
        let mut wait = wait;
        for family in [V4, V6] {
            let Some(ep) = self.endpoints[family].as_mut() else { continue };
            match ep.step(wait) {
                Ok(()) => {}
                Err(ClientError::Io(io)) if io.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // The socket failed: every session on it ends.
                    let err = client_error(e);
                    for key in self.by_handle[family].values() {
                        if let Some(s) = self.sessions.get_mut(key) {
                            s.closed.get_or_insert((err.kind, err.message.clone()));
                            self.dirty.push(*key);
                        }
                    }
                }
            }
            wait = Duration::ZERO;
            self.absorb(family);
        }
        Ok(())
    }

    /// Moves the events of every session that has some into its state.
    fn absorb(&mut self, family: usize) {
        let Some(ep) = self.endpoints[family].as_mut() else { return };
        while let Some(handle) = ep.next_ready() {
            let Some(&key) = self.by_handle[family].get(&handle) else {
                // Nobody owns it any more: drop what it says.
                while ep.poll_event(handle).is_some() {}
                continue;
            };
            let Some(s) = self.sessions.get_mut(&key) else { continue };
            while let Some(ev) = ep.poll_event(handle) {
                absorb_event(ep, s, ev);
            }
            if s.closed.is_none() {
                if let Some(e) = ep.closed(handle) {
                    let e = client_error(e);
                    s.closed = Some((e.kind, e.message));
                }
            }
            self.dirty.push(key);
        }
    }

    /// The sessions that got events since the last call.
    pub(crate) fn take_dirty(&mut self) -> Vec<SessionKey> {
        std::mem::take(&mut self.dirty)
    }

    /// One non-blocking turn for `quicpro_client_poll`: how many sessions
    /// had news.
    pub(crate) fn poll_all(&mut self, wait: Duration) -> QpResult<usize> {
        self.dirty.clear();
        self.step(wait)?;
        self.rearm_notifiers();
        let mut news = std::mem::take(&mut self.dirty);
        news.sort_unstable();
        news.dedup();
        Ok(news.len())
    }

    /// The earliest timer of any endpoint.
    pub(crate) fn next_timeout(&mut self) -> Option<Instant> {
        self.endpoints.iter_mut().flatten().filter_map(ClientEndpoint::next_timeout).min()
    }

    /// The descriptor readable when the IPv4 endpoint (opened if needed)
    /// has work, re-armed for its next timer.
    pub(crate) fn notifier(&mut self, family: usize) -> QpResult<std::os::fd::RawFd> {
        self.endpoint(family)?.notifier().map_err(client_error)
    }

    fn rearm_notifiers(&mut self) {
        for ep in self.endpoints.iter_mut().flatten() {
            if ep.has_notifier() {
                let _ = ep.notifier();
            }
        }
    }

    /// Ready for requests: handshake done, or 0-RTT keys let requests go.
    fn is_ready(&mut self, key: SessionKey) -> QpResult<bool> {
        let s = self.session(key)?;
        let (family, handle) = (s.family, s.handle);
        let usable = self.endpoints[family].as_ref().and_then(|ep| ep.connection(handle)).map(|c| !c.is_handshaking() || c.has_zero_rtt());
        let s = self.session(key)?;
        match usable {
            Some(true) => Ok(true),
            Some(false) if s.closed.is_none() => Ok(false),
            _ => Err(s.closed_error()),
        }
    }

    fn request(&mut self, key: SessionKey, path: &str, extra: &[HeaderField], has_body: bool, method: Option<&str>, body_len: usize) -> QpResult<StreamId> {
        let s = self.session(key)?;
        if s.closed.is_some() {
            return Err(s.closed_error());
        }
        let method = method.map_or_else(|| if has_body { "POST".to_string() } else { "GET".to_string() }, str::to_ascii_uppercase);
        let path = if path.is_empty() { "/" } else { path };
        let mut fields = vec![
            HeaderField::new(Bytes::from_static(b":method"), Bytes::from(method)),
            HeaderField::new(Bytes::from_static(b":scheme"), Bytes::from_static(b"https")),
            HeaderField::new(Bytes::from_static(b":authority"), Bytes::from(s.authority.clone())),
            HeaderField::new(Bytes::from_static(b":path"), Bytes::from(path.to_string())),
        ];
        fields.extend(extra.iter().filter(|f| !f.name.starts_with(b":")).cloned());
        if has_body && !extra.iter().any(|f| f.name.as_ref() == b"content-length") {
            fields.push(HeaderField::new(Bytes::from_static(b"content-length"), Bytes::from(body_len.to_string())));
        }
        let (family, handle) = (s.family, s.handle);
        let ep = self.endpoint(family)?;
        let id = ep.request(handle, &fields, !has_body).map_err(|e| QpError::new(ErrorKind::Client, format!("request refused: {e:?}")))?;
        self.session(key)?.responses.insert(id, Response::default());
        Ok(id)
    }

    /// Hands body bytes to the connection; how many it took.
    fn send_body(&mut self, key: SessionKey, id: StreamId, data: Bytes) -> QpResult<usize> {
        let s = self.session(key)?;
        if s.closed.is_some() {
            return Err(s.closed_error());
        }
        let (family, handle) = (s.family, s.handle);
        match self.endpoint(family)?.send_body(handle, id, data, true) {
            Ok(n) => Ok(n),
            Err(SendError::WouldBlock) => Ok(0),
            Err(e) => Err(QpError::new(ErrorKind::Stream, format!("request body: {e:?}"))),
        }
    }

    /// Whether request `id` of `key` is complete (or the session ended).
    fn response_done(&mut self, key: SessionKey, id: StreamId) -> QpResult<bool> {
        let s = self.session(key)?;
        match s.responses.get(&id) {
            Some(r) => Ok(r.done || s.closed.is_some()),
            None => Err(QpError::new(ErrorKind::Stream, format!("no request with stream id {}", id.0))),
        }
    }

    /// The response as a PHP array once complete; `None` before.
    fn take_response(&mut self, key: SessionKey, id: StreamId) -> QpResult<Option<Zval>> {
        let s = self.session(key)?;
        let Some(r) = s.responses.get(&id) else {
            return Err(QpError::new(ErrorKind::Stream, format!("no request with stream id {}", id.0)));
        };
        if !r.done {
            if s.closed.is_some() {
                s.responses.remove(&id);
                return Err(s.closed_error());
            }
            return Ok(None);
        }
        let max_body = s.cfg.max_body_size;
        let Some(r) = s.responses.remove(&id) else { return Ok(None) };
        if let Some(code) = r.reset {
            return Err(QpError::new(ErrorKind::Stream, format!("the server reset the request (code {code:#x})")));
        }
        if r.too_big {
            return Err(QpError::new(ErrorKind::Stream, format!("response body exceeds max_body_size ({max_body} bytes)")));
        }
        let mut arr = ZendHashTable::new();
        let _ = arr.insert("status", i64::from(r.status.unwrap_or(0)));
        let mut h = Zval::new();
        h.set_hashtable(headers::to_php(&r.headers));
        let _ = arr.insert("headers", h);
        let mut b = Zval::new();
        b.set_binary(r.body);
        let _ = arr.insert("body", b);
        let mut t = Zval::new();
        t.set_hashtable(headers::to_php(&r.trailers));
        let _ = arr.insert("trailers", t);
        let mut z = Zval::new();
        z.set_hashtable(arr);
        Ok(Some(z))
    }

    fn connection(&self, key: SessionKey) -> Option<&quic_core::connection::Connection> {
        let s = self.sessions.get(&key)?;
        self.endpoints[s.family].as_ref()?.connection(s.handle)
    }

    /// An idle pooled session for `origin` that is still good to use:
    /// open (after taking in whatever arrived while it sat in the pool, a
    /// CONNECTION_CLOSE or GOAWAY included), established, nothing pending,
    /// and pooled for less than half the idle timeout, so the server has
    /// not forgotten it. Others met on the way are closed.
    fn take_pooled(&mut self, origin: &str, cfg: &ConfigData) -> Option<SessionKey> {
        if self.pooled == 0 {
            return None;
        }
        let _ = self.step(Duration::ZERO);
        self.expire_pool(cfg.max_idle / 2);
        while let Some((key, _)) = self.pool.get_mut(origin).and_then(Vec::pop) {
            self.pooled -= 1;
            if self.is_reusable(key) {
                return Some(key);
            }
            self.close(key);
        }
        None
    }

    fn is_reusable(&self, key: SessionKey) -> bool {
        let Some(s) = self.sessions.get(&key) else { return false };
        let open = self.connection(key).is_some_and(|c| c.is_established() && !c.is_closed());
        open && s.closed.is_none() && s.responses.is_empty()
    }

    /// Closes pooled sessions idle for `max_age` or more.
    fn expire_pool(&mut self, max_age: Duration) {
        let now = Instant::now();
        let mut stale = Vec::new();
        for list in self.pool.values_mut() {
            list.retain(|(key, since)| {
                let keep = now.saturating_duration_since(*since) < max_age;
                if !keep {
                    stale.push(*key);
                }
                keep
            });
        }
        self.pool.retain(|_, l| !l.is_empty());
        self.pooled -= stale.len();
        for key in stale {
            self.close(key);
        }
    }

    /// The end of a session's use: a healthy `persistent` one goes to the
    /// pool (within its bounds), any other is closed.
    fn release(&mut self, key: SessionKey) {
        let origin = self.sessions.get(&key).and_then(|s| s.origin.clone());
        let Some(origin) = origin else {
            self.close(key);
            return;
        };
        let _ = self.step(Duration::ZERO);
        let room = self.pooled < POOL_TOTAL && self.pool.get(&origin).is_none_or(|l| l.len() < POOL_PER_ORIGIN);
        if room && self.is_reusable(key) {
            self.pool.entry(origin).or_default().push((key, Instant::now()));
            self.pooled += 1;
        } else {
            self.close(key);
        }
    }

    /// Closes the session's connection and forgets the session.
    fn close(&mut self, key: SessionKey) {
        let Some(s) = self.sessions.remove(&key) else { return };
        self.by_handle[s.family].remove(&s.handle);
        if let Some(ep) = self.endpoints[s.family].as_mut() {
            ep.close(s.handle);
            ep.forget(s.handle);
        }
    }

    /// Active migration of the session's endpoint (every connection on it
    /// moves with the socket; see `ClientEndpoint::migrate`).
    fn migrate(&mut self, key: SessionKey) -> Result<SocketAddr, ClientError> {
        let Some(s) = self.sessions.get(&key) else { return Err(ClientError::TimedOut) };
        let (family, handle) = (s.family, s.handle);
        let ep = self.endpoints[family].as_mut().ok_or(ClientError::TimedOut)?;
        ep.migrate(handle)
    }
}

/// A PHP stream on (a duplicate of) descriptor `fd`, through PHP's own
/// `fopen("php://fd/N")`.
pub(crate) fn fd_stream(fd: std::os::fd::RawFd) -> QpResult<Zval> {
    let fopen = ext_php_rs::types::ZendCallable::try_from_name("fopen").map_err(|_| QpError::new(ErrorKind::Client, "fopen is missing"))?;
    let path = format!("php://fd/{fd}");
    let z = fopen.try_call(vec![&path, &"r"]).map_err(|_| QpError::new(ErrorKind::Client, "cannot open the descriptor as a stream"))?;
    if z.is_false() {
        return Err(QpError::new(ErrorKind::Client, format!("{path}: PHP refused it (php://fd needs the CLI)")));
    }
    Ok(z)
}

/// Applies one HTTP/3 event to its session's state.
fn absorb_event(ep: &mut ClientEndpoint, s: &mut SessionState, ev: H3Event) {
    match ev {
        H3Event::Headers { stream, headers, fin } => {
            let status = headers::get(&headers, ":status").and_then(|v| std::str::from_utf8(v).ok()).and_then(|s| s.parse::<u16>().ok());
            let r = s.responses.entry(stream).or_default();
            // RFC 9114 §4.1: interim 1xx responses precede the final one.
            if status.is_some_and(|s| s >= 200) || r.status.is_none() && status.is_none() {
                r.status = status;
                r.headers = headers;
            }
            if fin {
                r.done = true;
            }
        }
        H3Event::Data { stream } => read_body(ep, s, stream),
        H3Event::Trailers { stream, headers } => {
            s.responses.entry(stream).or_default().trailers = headers;
        }
        H3Event::Finished { stream } => {
            read_body(ep, s, stream);
            s.responses.entry(stream).or_default().done = true;
        }
        H3Event::Reset { stream, code } => {
            let r = s.responses.entry(stream).or_default();
            r.reset = Some(code);
            r.done = true;
        }
        H3Event::Transport(QuicEvent::ConnectionLost(e)) => {
            s.closed = Some((classify(&e), format!("connection lost: {e}")));
        }
        _ => {}
    }
}

fn read_body(ep: &mut ClientEndpoint, s: &mut SessionState, stream: StreamId) {
    let limit = s.cfg.max_body_size;
    while let Some(chunk) = ep.recv_body(s.handle, stream, 256 * 1024) {
        if chunk.is_empty() {
            break;
        }
        // Only responses to requests of this session are kept.
        let Some(r) = s.responses.get_mut(&stream) else { continue };
        if r.body.len() + chunk.len() > limit {
            r.too_big = true;
            continue;
        }
        r.body.extend_from_slice(&chunk);
    }
}

/// Waits until `done` holds for session `key` or `deadline` passes;
/// returns whether it held. Inside a `Quicpro\Loop` Fiber the Fiber is
/// suspended while it waits (the loop drives every session); elsewhere the
/// call blocks, driving the endpoints itself.
fn wait_for(key: SessionKey, deadline: Instant, mut done: impl FnMut(&mut Hub) -> QpResult<bool>) -> QpResult<bool> {
    loop {
        if with_hub(&mut done)? {
            return Ok(true);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        if client_loop::in_loop_fiber() {
            client_loop::suspend_on(Some(key), Some(deadline))?;
        } else {
            with_hub(|h| {
                let wait = deadline.saturating_duration_since(now).min(Duration::from_millis(20));
                h.step(wait)?;
                h.rearm_notifiers();
                Ok::<(), QpError>(())
            })?;
        }
    }
}

/// `Quicpro\ClientSession`: what `quicpro_connect` returns.
#[php_class]
#[php(name = "Quicpro\\ClientSession")]
#[derive(Debug)]
pub struct ClientSession {
    key: Cell<Option<SessionKey>>,
}

impl ClientSession {
    fn key(&self) -> QpResult<SessionKey> {
        self.key.get().ok_or_else(|| QpError::new(ErrorKind::Connection, "the session is closed"))
    }

    fn cfg(&self) -> QpResult<Rc<ConfigData>> {
        let key = self.key()?;
        with_hub(|h| Ok(h.session(key)?.cfg.clone()))
    }

    /// Sends a request with an optional body; its stream id.
    fn send(&self, path: &str, extra: &[HeaderField], body: Option<Vec<u8>>, method: Option<&str>) -> QpResult<StreamId> {
        let key = self.key()?;
        let len = body.as_ref().map_or(0, Vec::len);
        let id = with_hub(|h| h.request(key, path, extra, body.is_some(), method, len))?;
        if let Some(b) = body {
            let mut data = Bytes::from(b);
            let deadline = Instant::now() + self.cfg()?.max_idle;
            let sent = wait_for(key, deadline, |h| {
                let n = h.send_body(key, id, data.clone())?;
                data = data.slice(n..);
                Ok(data.is_empty())
            })?;
            if !sent {
                return Err(QpError::new(ErrorKind::Timeout, "request body not accepted in time"));
            }
        }
        with_hub(|h| {
            h.step(Duration::ZERO)?;
            h.rearm_notifiers();
            Ok::<(), QpError>(())
        })?;
        Ok(id)
    }

    /// Waits (suspending a loop Fiber) for the whole response of `id`.
    pub(crate) fn await_response(&self, id: i64) -> QpResult<Zval> {
        let key = self.key()?;
        let id = StreamId(id.max(0) as u64);
        let deadline = Instant::now() + self.cfg()?.max_idle;
        if !wait_for(key, deadline, |h| h.response_done(key, id))? {
            return Err(QpError::new(ErrorKind::Timeout, format!("no response to stream {} in time", id.0)));
        }
        with_hub(|h| h.take_response(key, id))?.ok_or_else(|| QpError::new(ErrorKind::Stream, "the response is not complete"))
    }
}

#[php_impl]
impl ClientSession {
    /// Connects (see `quicpro_connect`): returns once requests can be sent.
    /// Inside a `Quicpro\Loop` Fiber the handshake suspends the Fiber.
    pub fn __construct(host: &str, port: i64, config: Option<&ZendClassObject<Config>>) -> PhpResult<Self> {
        let cfg = config.map_or_else(default_config, |c| c.data.clone());
        let timeout = cfg.handshake_timeout;
        let key = with_hub(|h| h.connect(host, port, cfg))?;
        let session = Self { key: Cell::new(Some(key)) };
        let ready = wait_for(key, Instant::now() + timeout, |h| h.is_ready(key));
        match ready {
            Ok(true) => Ok(session),
            Ok(false) => {
                with_hub(|h| h.close(key));
                Err(QpError::new(ErrorKind::Timeout, format!("handshake with {host}:{port} timed out")).into())
            }
            Err(e) => {
                with_hub(|h| h.close(key));
                Err(e.into())
            }
        }
    }

    /// Sends a request; returns its stream id.
    pub fn request(&self, path: &str, headers: Option<&ZendHashTable>, body: Option<Binary<u8>>, method: Option<String>) -> PhpResult<i64> {
        let extra = match headers {
            Some(h) => headers::from_php(h, ErrorKind::Client)?,
            None => Vec::new(),
        };
        Ok(self.send(path, &extra, body.map(Into::into), method.as_deref())?.0 as i64)
    }

    /// The response of `$id` once complete (`status`, `headers`, `body`,
    /// `trailers`), else false.
    pub fn response(&self, id: i64) -> PhpResult<Zval> {
        let key = self.key()?;
        let got = with_hub(|h| h.take_response(key, StreamId(id.max(0) as u64)))?;
        Ok(got.unwrap_or_else(|| {
            let mut z = Zval::new();
            z.set_bool(false);
            z
        }))
    }

    /// Waits for the whole response of `$id` and returns it (see
    /// `quicpro_await`).
    #[php(name = "await")]
    pub fn await_(&self, id: i64) -> PhpResult<Zval> {
        Ok(self.await_response(id)?)
    }

    /// Active migration (RFC 9000 §9.2): moves the process's client socket
    /// to a new local port; returns the new local address. Waits (bounded)
    /// for the server's spare connection ID when none has arrived yet.
    pub fn migrate(&self) -> PhpResult<String> {
        let key = self.key()?;
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            match with_hub(|h| h.migrate(key)) {
                Ok(local) => return Ok(local.to_string()),
                Err(ClientError::Migrate(quic_core::connection::MigrateError::NoSpareConnectionId)) if Instant::now() < end => {
                    wait_for(key, Instant::now() + Duration::from_millis(10), |_| Ok(false))?;
                }
                Err(e) => return Err(client_error(e).into()),
            }
        }
    }

    /// Connection migrations so far (RFC 9000 §9).
    pub fn migrations(&self) -> i64 {
        let Ok(key) = self.key() else { return 0 };
        with_hub(|h| h.connection(key).map_or(0, |x| x.stats().migrations as i64))
    }

    /// Drives the connection for at most `$timeout_ms` (0: only what is
    /// due now). Inside a `Quicpro\Loop` Fiber it suspends the Fiber until
    /// this session has news or the time is up.
    #[php(defaults(timeout_ms = 0))]
    pub fn poll(&self, timeout_ms: i64) -> PhpResult<bool> {
        let key = self.key()?;
        let wait = Duration::from_millis(timeout_ms.clamp(0, 60_000) as u64);
        if client_loop::in_loop_fiber() {
            client_loop::suspend_on(Some(key), Some(Instant::now() + wait))?;
        } else {
            with_hub(|h| {
                h.step(wait)?;
                h.rearm_notifiers();
                Ok::<(), QpError>(())
            })?;
        }
        Ok(true)
    }

    /// Sends a request and waits for its whole response.
    pub fn fetch(&self, path: &str) -> PhpResult<Zval> {
        let id = self.send(path, &[], None, None)?;
        Ok(self.await_response(id.0 as i64)?)
    }

    /// Whether the TLS session was resumed from an earlier connection.
    pub fn is_resumed(&self) -> bool {
        let Ok(key) = self.key() else { return false };
        with_hub(|h| h.connection(key).is_some_and(|x| x.is_resumed()))
    }

    /// Whether 0-RTT was accepted (null when none was attempted).
    pub fn zero_rtt_accepted(&self) -> Option<bool> {
        let key = self.key().ok()?;
        with_hub(|h| h.connection(key).and_then(|x| x.zero_rtt_accepted()))
    }

    /// Closes the connection (CONNECTION_CLOSE with H3_NO_ERROR). A
    /// connection that has not yet received a session ticket waits for one
    /// for up to about three round trips (at most 100 ms), so the next
    /// connection to this server resumes: short-lived scripts (FPM) that
    /// connect, fetch and close would otherwise never hold a ticket.
    pub fn close(&self) {
        let Some(key) = self.key.take() else { return };
        if with_hub(|h| h.sessions.get(&key).is_some_and(|s| s.origin.is_some())) {
            // `persistent`: back to the pool, open.
            with_hub(|h| h.release(key));
            return;
        }
        let rtt = with_hub(|h| h.connection(key).map_or(Duration::ZERO, |x| x.rtt()));
        let end = Instant::now() + (rtt * 3 + Duration::from_millis(10)).min(Duration::from_millis(100));
        let _ = wait_for(key, end, |h| {
            let open = h.sessions.get(&key).is_some_and(|s| s.closed.is_none());
            let waiting = h.connection(key).is_some_and(|x| !x.is_handshaking() && x.tls().tickets_received() == 0);
            Ok(!(open && waiting))
        });
        with_hub(|h| h.close(key));
    }

    /// Whether this session's connection came from the process's pool of
    /// `persistent` connections (no handshake was made for it).
    pub fn is_reused(&self) -> bool {
        let Some(key) = self.key.get() else { return false };
        with_hub(|h| h.sessions.get(&key).is_some_and(|s| s.reused))
    }

    pub fn is_open(&self) -> bool {
        let Some(key) = self.key.get() else { return false };
        with_hub(|h| h.sessions.get(&key).is_some_and(|s| s.closed.is_none()))
    }
}

impl Drop for ClientSession {
    /// A session dropped without `close()` closes its connection: the
    /// process endpoint outlives it.
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let _ = HUB.try_with(|h| {
                if let Ok(mut slot) = h.try_borrow_mut() {
                    if let Some(hub) = slot.as_mut().filter(|hub| hub.pid == std::process::id()) {
                        hub.release(key);
                    }
                }
            });
        }
    }
}
