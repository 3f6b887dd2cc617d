//! The client side: `Quicpro\ClientSession` and the procedural
//! `quicpro_connect` / `quicpro_send_request` / `quicpro_receive_response` /
//! `quicpro_poll` / `quicpro_close` functions of the documents.
//!
//! Every client connection of a process shares one TLS session store, so a
//! second `quicpro_connect` to the same host resumes (and may send its
//! requests as 0-RTT). Under PHP-FPM a worker process serves many requests,
//! so the store carries tickets from one request to the next.

use std::cell::RefCell;
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
use io_backends::runtime::{Client, ClientOptions};
use io_backends::select::BackendConfig;
use quic_core::connection::{ConnectionError, Event as QuicEvent};
use quic_core::stream::StreamId;
use quic_core::tls::ClientTlsOptions;

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

#[derive(Debug)]
struct ClientCore {
    client: Client,
    cfg: Rc<ConfigData>,
    authority: String,
    responses: HashMap<StreamId, Response>,
    closed: Option<(ErrorKind, String)>,
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

impl ClientCore {
    fn connect(host: &str, port: i64, cfg: Rc<ConfigData>) -> QpResult<Self> {
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
        let mut backend = BackendConfig::from_env().map_err(|e| QpError::new(ErrorKind::Socket, e.to_string()))?;
        // One socket per client connection: an io_uring instance each would
        // be costly for many short connections; epoll unless forced.
        if backend.forced.is_none() && backend.busy_poll_us == 0 && backend.xdp_interface.is_none() {
            backend.forced = Some(BackendKind::Epoll);
        }
        backend.xdp_interface = None;
        opts.backend = backend;
        let server_name = cfg.server_name.clone().unwrap_or_else(|| host_bare.to_string());
        let built = tls_config(&opts.tls)?;
        let client = Client::connect_with_tls(&opts, built, addr, &server_name, Bytes::new()).map_err(client_error)?;
        let authority = if port == 443 { host.to_string() } else { format!("{host}:{port}") };
        let mut core = Self { client, cfg, authority, responses: HashMap::new(), closed: None };
        core.wait_ready()?;
        Ok(core)
    }

    /// Until the handshake is done, or 0-RTT keys let requests go now.
    fn wait_ready(&mut self) -> QpResult<()> {
        let end = Instant::now() + self.cfg.handshake_timeout;
        loop {
            match self.client.connection() {
                Some(c) if !c.is_handshaking() || c.has_zero_rtt() => return Ok(()),
                Some(_) => {}
                None => return Err(self.closed_error()),
            }
            if Instant::now() >= end {
                return Err(QpError::new(ErrorKind::Timeout, format!("handshake with {} timed out", self.authority)));
            }
            self.step(Duration::from_millis(20))?;
        }
    }

    fn closed_error(&self) -> QpError {
        match &self.closed {
            Some((k, m)) => QpError::new(*k, m.clone()),
            None => QpError::new(ErrorKind::Connection, "the connection is closed"),
        }
    }

    fn step(&mut self, wait: Duration) -> QpResult<()> {
        if self.closed.is_some() {
            return Err(self.closed_error());
        }
        if let Err(e) = self.client.step(wait) {
            if let ClientError::Io(io) = &e {
                if io.kind() == std::io::ErrorKind::Interrupted {
                    return Ok(());
                }
            }
            let err = client_error(e);
            self.closed = Some((err.kind, err.message.clone()));
        }
        self.absorb();
        Ok(())
    }

    fn absorb(&mut self) {
        while let Some(ev) = self.client.poll_event() {
            match ev {
                H3Event::Headers { stream, headers, fin } => {
                    let status = headers::get(&headers, ":status").and_then(|v| std::str::from_utf8(v).ok()).and_then(|s| s.parse::<u16>().ok());
                    let r = self.responses.entry(stream).or_default();
                    // RFC 9114 §4.1: interim 1xx responses precede the final one.
                    if status.is_some_and(|s| s >= 200) || r.status.is_none() && status.is_none() {
                        r.status = status;
                        r.headers = headers;
                    }
                    if fin {
                        r.done = true;
                    }
                }
                H3Event::Data { stream } => self.read_body(stream),
                H3Event::Trailers { stream, headers } => {
                    self.responses.entry(stream).or_default().trailers = headers;
                }
                H3Event::Finished { stream } => {
                    self.read_body(stream);
                    self.responses.entry(stream).or_default().done = true;
                }
                H3Event::Reset { stream, code } => {
                    let r = self.responses.entry(stream).or_default();
                    r.reset = Some(code);
                    r.done = true;
                }
                H3Event::Transport(QuicEvent::ConnectionLost(e)) => {
                    self.closed = Some((classify(&e), format!("connection lost: {e}")));
                }
                _ => {}
            }
        }
    }

    fn read_body(&mut self, stream: StreamId) {
        let limit = self.cfg.max_body_size;
        while let Some(chunk) = self.client.recv_body(stream, 256 * 1024) {
            if chunk.is_empty() {
                break;
            }
            let r = self.responses.entry(stream).or_default();
            if r.body.len() + chunk.len() > limit {
                r.too_big = true;
                continue;
            }
            r.body.extend_from_slice(&chunk);
        }
    }

    fn request(&mut self, path: &str, extra: &[HeaderField], body: Option<Vec<u8>>, method: Option<&str>) -> QpResult<StreamId> {
        if self.closed.is_some() {
            return Err(self.closed_error());
        }
        let method = method.map_or_else(|| if body.is_some() { "POST".to_string() } else { "GET".to_string() }, str::to_ascii_uppercase);
        let path = if path.is_empty() { "/" } else { path };
        let mut fields = vec![
            HeaderField::new(Bytes::from_static(b":method"), Bytes::from(method)),
            HeaderField::new(Bytes::from_static(b":scheme"), Bytes::from_static(b"https")),
            HeaderField::new(Bytes::from_static(b":authority"), Bytes::from(self.authority.clone())),
            HeaderField::new(Bytes::from_static(b":path"), Bytes::from(path.to_string())),
        ];
        fields.extend(extra.iter().filter(|f| !f.name.starts_with(b":")).cloned());
        if let Some(b) = &body {
            if !extra.iter().any(|f| f.name.as_ref() == b"content-length") {
                fields.push(HeaderField::new(Bytes::from_static(b"content-length"), Bytes::from(b.len().to_string())));
            }
        }
        let id = self.client.request(&fields, body.is_none()).map_err(|e| QpError::new(ErrorKind::Client, format!("request refused: {e:?}")))?;
        self.responses.insert(id, Response::default());
        if let Some(b) = body {
            let mut data = Bytes::from(b);
            let end = Instant::now() + self.cfg.max_idle;
            loop {
                let len = data.len();
                match self.client.send_body(id, data.clone(), true) {
                    Ok(n) if n == len => break,
                    Ok(n) => data = data.slice(n..),
                    Err(SendError::WouldBlock) => {}
                    Err(e) => return Err(QpError::new(ErrorKind::Stream, format!("request body: {e:?}"))),
                }
                if Instant::now() >= end {
                    return Err(QpError::new(ErrorKind::Timeout, "request body not accepted in time"));
                }
                self.step(Duration::from_millis(10))?;
            }
        }
        self.step(Duration::ZERO)?;
        Ok(id)
    }

    /// The response as a PHP array once complete; `None` before.
    fn take_response(&mut self, id: StreamId) -> QpResult<Option<Zval>> {
        self.absorb();
        let Some(r) = self.responses.get(&id) else {
            return Err(QpError::new(ErrorKind::Stream, format!("no request with stream id {}", id.0)));
        };
        if !r.done {
            if self.closed.is_some() {
                self.responses.remove(&id);
                return Err(self.closed_error());
            }
            return Ok(None);
        }
        let Some(r) = self.responses.remove(&id) else { return Ok(None) };
        if let Some(code) = r.reset {
            return Err(QpError::new(ErrorKind::Stream, format!("the server reset the request (code {code:#x})")));
        }
        if r.too_big {
            return Err(QpError::new(ErrorKind::Stream, format!("response body exceeds max_body_size ({} bytes)", self.cfg.max_body_size)));
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
}

/// `Quicpro\ClientSession`: what `quicpro_connect` returns.
#[php_class]
#[php(name = "Quicpro\\ClientSession")]
#[derive(Debug)]
pub struct ClientSession {
    core: RefCell<Option<ClientCore>>,
}

impl ClientSession {
    fn with<R>(&self, f: impl FnOnce(&mut ClientCore) -> QpResult<R>) -> QpResult<R> {
        let mut g = self.core.borrow_mut();
        let c = g.as_mut().ok_or_else(|| QpError::new(ErrorKind::Connection, "the session is closed"))?;
        f(c)
    }
}

#[php_impl]
impl ClientSession {
    /// Connects (see `quicpro_connect`).
    pub fn __construct(host: &str, port: i64, config: Option<&ZendClassObject<Config>>) -> PhpResult<Self> {
        let cfg = config.map_or_else(default_config, |c| c.data.clone());
        Ok(Self { core: RefCell::new(Some(ClientCore::connect(host, port, cfg)?)) })
    }

    /// Sends a request; returns its stream id.
    pub fn request(&self, path: &str, headers: Option<&ZendHashTable>, body: Option<Binary<u8>>, method: Option<String>) -> PhpResult<i64> {
        let extra = match headers {
            Some(h) => headers::from_php(h, ErrorKind::Client)?,
            None => Vec::new(),
        };
        Ok(self.with(|c| c.request(path, &extra, body.map(Into::into), method.as_deref()))?.0 as i64)
    }

    /// The response of `$id` once complete (`status`, `headers`, `body`,
    /// `trailers`), else false.
    pub fn response(&self, id: i64) -> PhpResult<Zval> {
        let got = self.with(|c| c.take_response(StreamId(id.max(0) as u64)))?;
        Ok(got.unwrap_or_else(|| {
            let mut z = Zval::new();
            z.set_bool(false);
            z
        }))
    }

    /// Active migration (RFC 9000 §9.2): moves the connection to a new
    /// local port; returns the new local address. Waits (bounded) for the
    /// server's spare connection ID when none has arrived yet.
    pub fn migrate(&self) -> PhpResult<String> {
        Ok(self.with(|c| {
            let end = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                match c.client.migrate() {
                    Ok(local) => return Ok(local.to_string()),
                    Err(ClientError::Migrate(quic_core::connection::MigrateError::NoSpareConnectionId)) if std::time::Instant::now() < end => {
                        c.step(Duration::from_millis(10))?;
                    }
                    Err(e) => return Err(client_error(e)),
                }
            }
        })?)
    }

    /// Connection migrations so far (RFC 9000 §9).
    pub fn migrations(&self) -> i64 {
        self.with(|c| Ok(c.client.connection().map_or(0, |x| x.stats().migrations as i64))).unwrap_or(0)
    }

    /// Drives the connection for at most `$timeout_ms`.
    #[php(defaults(timeout_ms = 0))]
    pub fn poll(&self, timeout_ms: i64) -> PhpResult<bool> {
        self.with(|c| c.step(Duration::from_millis(timeout_ms.clamp(0, 60_000) as u64)))?;
        Ok(true)
    }

    /// Sends a request and waits for its whole response.
    pub fn fetch(&self, path: &str) -> PhpResult<Zval> {
        let id = self.with(|c| c.request(path, &[], None, None))?;
        loop {
            if let Some(z) = self.with(|c| c.take_response(id))? {
                return Ok(z);
            }
            self.with(|c| c.step(Duration::from_millis(20)))?;
        }
    }

    /// Whether the TLS session was resumed from an earlier connection.
    pub fn is_resumed(&self) -> bool {
        self.with(|c| Ok(c.client.connection().is_some_and(|x| x.is_resumed()))).unwrap_or(false)
    }

    /// Whether 0-RTT was accepted (null when none was attempted).
    pub fn zero_rtt_accepted(&self) -> Option<bool> {
        self.with(|c| Ok(c.client.connection().and_then(|x| x.zero_rtt_accepted()))).ok().flatten()
    }

    /// Closes the connection (CONNECTION_CLOSE with H3_NO_ERROR). A
    /// connection that has not yet received a session ticket waits for one
    /// for up to about three round trips (at most 100 ms), so the next
    /// connection to this server resumes: short-lived scripts (FPM) that
    /// connect, fetch and close would otherwise never hold a ticket.
    pub fn close(&self) {
        if let Some(mut c) = self.core.borrow_mut().take() {
            let rtt = c.client.connection().map_or(Duration::ZERO, |x| x.rtt());
            let end = Instant::now() + (rtt * 3 + Duration::from_millis(10)).min(Duration::from_millis(100));
            while Instant::now() < end && c.closed.is_none() {
                let waiting = c.client.connection().is_some_and(|x| !x.is_handshaking() && x.tls().tickets_received() == 0);
                if !waiting {
                    break;
                }
                let _ = c.step(Duration::from_millis(5));
            }
            c.client.close();
        }
    }

    pub fn is_open(&self) -> bool {
        self.core.borrow().as_ref().is_some_and(|c| c.closed.is_none())
    }
}
