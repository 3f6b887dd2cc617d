//! An HTTP/3 client connection on its own socket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use h3_core::capsule::Capsule;
use h3_core::connection::{H3Config, H3Event, SendError};
use h3_core::datagram::DatagramError;
use h3_core::error::H3Error;
use h3_core::qpack::HeaderField;
use quic_core::config::TransportConfig;
use quic_core::connection::{Connection, ConnectionError, Side};
use quic_core::endpoint::{ClientConfig, Endpoint, EndpointConfig};
use quic_core::stream::StreamId;
use quic_core::tls::ClientTlsOptions;
use quic_core::Version;

use super::driver::{Driver, H3Handle};
use super::tokens::TokenStore;
use crate::backend::BackendError;
use crate::select::{open, BackendConfig};

#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub tls: ClientTlsOptions,
    pub transport: TransportConfig,
    pub h3: H3Config,
    pub backend: BackendConfig,
    pub version: Version,
    /// NEW_TOKEN tokens kept from earlier connections and presented on the
    /// next one to the same server (RFC 9000 §8.1.3); share one store
    /// between the clients of a process. `None` keeps none.
    pub tokens: Option<TokenStore>,
}

impl ClientOptions {
    pub fn new(tls: ClientTlsOptions) -> Self {
        Self { tls, transport: TransportConfig::default(), h3: H3Config::default(), backend: BackendConfig::default(), version: Version::V1, tokens: None }
    }
}

#[derive(Debug)]
pub enum ClientError {
    Backend(BackendError),
    Tls(quic_core::tls::TlsConfigError),
    Connect(quic_core::Error),
    Connection(ConnectionError),
    /// The connection cannot migrate now (RFC 9000 §9).
    Migrate(quic_core::connection::MigrateError),
    TimedOut,
    Io(std::io::Error),
}

impl core::fmt::Display for ClientError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ClientError::Backend(e) => write!(f, "{e}"),
            ClientError::Tls(e) => write!(f, "{e}"),
            ClientError::Connect(e) => write!(f, "connect: {e}"),
            ClientError::Connection(e) => write!(f, "connection: {e}"),
            ClientError::Migrate(e) => write!(f, "migration: {e}"),
            ClientError::TimedOut => f.write_str("timed out"),
            ClientError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ClientError {}

pub struct Client {
    driver: Driver,
    config: ClientConfig,
    handle: H3Handle,
    /// Speaks only `hq-interop` (HTTP/0.9): no HTTP/3 layer.
    raw: bool,
    tokens: Option<TokenStore>,
    /// Where the current connection goes, for its NEW_TOKEN tokens.
    server_name: String,
    server_port: u16,
    /// How the socket was opened, to open another on migration.
    backend_cfg: BackendConfig,
    bind: SocketAddr,
}

impl core::fmt::Debug for Client {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Client").field("handle", &self.handle).finish()
    }
}

impl Client {
    /// Opens a socket and starts a connection; `token` is a NEW_TOKEN from
    /// an earlier connection, or empty to use one from `opts.tokens`.
    pub fn connect(opts: &ClientOptions, server: SocketAddr, server_name: &str, token: Bytes) -> Result<Self, ClientError> {
        let tls = opts.tls.build().map_err(ClientError::Tls)?;
        Self::connect_with_tls(opts, tls, server, server_name, token)
    }

    /// As [`Client::connect`] with an already built rustls config. Reusing
    /// one config across connections is what lets them resume: rustls only
    /// resumes a session under the certificate verifier that checked it.
    pub fn connect_with_tls(
        opts: &ClientOptions,
        tls: Arc<rustls::ClientConfig>,
        server: SocketAddr,
        server_name: &str,
        token: Bytes,
    ) -> Result<Self, ClientError> {
        let bind: SocketAddr = if server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().map_err(|_| ClientError::TimedOut)?;
        let mut backend_cfg = opts.backend.clone();
        backend_cfg.udp.reuse_port = false;
        let (backend, _) = open(&backend_cfg, bind).map_err(ClientError::Backend)?;
        let config = ClientConfig { tls, transport: Arc::new(opts.transport.clone()), version: opts.version };
        let mut secret = [0u8; 32];
        quic_core::rand::RandomSource::fill(&mut quic_core::rand::SystemRandom::new(), &mut secret);
        let endpoint = Endpoint::new(EndpointConfig::new(&secret), None, Instant::now());
        let mut driver = Driver::new(backend, endpoint, Side::Client, opts.h3.clone());
        let token = pick_token(&opts.tokens, server_name, server.port(), token);
        let h = driver.endpoint.connect(Instant::now(), &config, server, server_name, token).map_err(ClientError::Connect)?;
        let raw = opts.tls.alpn.len() == 1 && opts.tls.alpn[0].as_slice() == super::server::HQ_INTEROP;
        if raw {
            driver.adopt_raw(h);
        } else {
            driver.adopt(h);
        }
        Ok(Self {
            driver,
            config,
            handle: H3Handle(h),
            raw,
            tokens: opts.tokens.clone(),
            server_name: server_name.to_string(),
            server_port: server.port(),
            backend_cfg,
            bind,
        })
    }

    /// Active migration (RFC 9000 §9.2): opens a new socket on another
    /// local port, closes the old one, and moves the connection there (a
    /// new server connection ID, path validation, fresh congestion state;
    /// see `Connection::migrate`). Returns the new local address.
    pub fn migrate(&mut self) -> Result<SocketAddr, ClientError> {
        let now = Instant::now();
        let conn = self.driver.endpoint.connection(self.handle.0).ok_or(ClientError::TimedOut)?;
        // Checked before the socket changes: a refusal leaves all as it was.
        conn.can_migrate().map_err(ClientError::Migrate)?;
        let (backend, _) = open(&self.backend_cfg, self.bind).map_err(ClientError::Backend)?;
        let local = backend.local_addr();
        self.driver.backend = backend;
        let conn = self.driver.endpoint.connection(self.handle.0).ok_or(ClientError::TimedOut)?;
        conn.migrate(now).map_err(ClientError::Migrate)?;
        self.driver.flush();
        Ok(local)
    }

    /// A new connection to `server` from the same socket and TLS config, so
    /// the session cache resumes the earlier session (and may send 0-RTT).
    pub fn reconnect(&mut self, server: SocketAddr, server_name: &str, token: Bytes) -> Result<(), ClientError> {
        self.keep_new_token();
        let token = pick_token(&self.tokens, server_name, server.port(), token);
        let h = self.driver.endpoint.connect(Instant::now(), &self.config, server, server_name, token).map_err(ClientError::Connect)?;
        (self.server_name, self.server_port) = (server_name.to_string(), server.port());
        if self.raw {
            self.driver.adopt_raw(h);
        } else {
            self.driver.adopt(h);
        }
        self.handle = H3Handle(h);
        Ok(())
    }

    pub fn connection(&self) -> Option<&Connection> {
        self.driver.endpoint.connection_ref(self.handle.0)
    }

    pub fn connection_mut(&mut self) -> Option<&mut Connection> {
        self.driver.endpoint.connection(self.handle.0)
    }

    pub fn handle(&self) -> H3Handle {
        self.handle
    }

    /// Files a NEW_TOKEN the current connection received in the store.
    fn keep_new_token(&mut self) {
        let Some(store) = &self.tokens else { return };
        // Looked at without touching the connection: `connection()` would
        // mark it active and cost a `poll_transmit` visit every turn.
        if !self.driver.endpoint.connection_ref(self.handle.0).is_some_and(Connection::has_new_token) {
            return;
        }
        if let Some(t) = self.driver.endpoint.connection(self.handle.0).and_then(|c| c.take_new_token()) {
            store.insert(&self.server_name, self.server_port, t);
        }
    }

    pub fn step(&mut self, max_wait: Duration) -> Result<(), ClientError> {
        self.driver.step(max_wait).map_err(ClientError::Io)?;
        self.keep_new_token();
        if self.connection().is_none() {
            let err = self.driver.closed.iter().find(|(h, _)| *h == self.handle).and_then(|(_, e)| e.clone());
            return Err(match err {
                Some(e) => ClientError::Connection(e),
                None => ClientError::Connection(ConnectionError::LocallyClosed),
            });
        }
        Ok(())
    }

    /// Waits until the handshake completes (or 0-RTT keys allow requests).
    pub fn wait_connected(&mut self, timeout: Duration) -> Result<(), ClientError> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.connection().is_some_and(|c| !c.is_handshaking()) {
                return Ok(());
            }
            self.step(Duration::from_millis(20))?;
        }
        Err(ClientError::TimedOut)
    }

    pub fn request(&mut self, headers: &[HeaderField], end: bool) -> Result<StreamId, SendError> {
        self.driver.with_conn(self.handle, |h3, c| h3.send_request(c, headers, end)).unwrap_or(Err(SendError::Refused))
    }

    pub fn send_body(&mut self, stream: StreamId, data: Bytes, fin: bool) -> Result<usize, SendError> {
        self.driver.with_conn(self.handle, |h3, c| h3.send_data_bytes(c, stream, data, fin)).unwrap_or(Err(SendError::StreamClosed))
    }

    pub fn recv_body(&mut self, stream: StreamId, max: usize) -> Option<Bytes> {
        self.driver.with_conn(self.handle, |h3, c| h3.recv_body(c, stream, max)).flatten()
    }

    /// Sends an HTTP datagram (RFC 9297) on request stream `stream`; received
    /// ones arrive from [`Client::poll_event`] as `H3Event::Datagram`.
    pub fn send_datagram(&mut self, stream: StreamId, payload: &[u8]) -> Result<(), DatagramError> {
        self.driver.with_conn(self.handle, |h3, c| h3.send_datagram(c, stream, payload)).unwrap_or(Err(DatagramError::Closed))
    }

    /// Sends one capsule (RFC 9297 §3) on a stream using the Capsule Protocol.
    pub fn send_capsule(&mut self, stream: StreamId, capsule_type: u64, value: &[u8]) -> Result<(), SendError> {
        self.driver.with_conn(self.handle, |h3, c| h3.send_capsule(c, stream, capsule_type, value)).unwrap_or(Err(SendError::StreamClosed))
    }

    /// The next capsule from `stream`'s DATA (call on `H3Event::Data`).
    pub fn recv_capsule(&mut self, stream: StreamId) -> Result<Option<Capsule>, H3Error> {
        self.driver.with_conn(self.handle, |h3, c| h3.recv_capsule(c, stream)).unwrap_or(Ok(None))
    }

    /// `None` until the server's SETTINGS arrived; then whether it allows
    /// Extended CONNECT (RFC 9220). `request` with `:protocol` returns
    /// `SendError::AwaitingSettings` while this is `None`.
    pub fn peer_allows_extended_connect(&self) -> Option<bool> {
        let h3 = self.driver.h3.get(&self.handle.0)?;
        h3.peer_settings()?;
        Some(h3.peer_allows_extended_connect())
    }

    /// Whether HTTP datagrams are usable (both sides sent
    /// SETTINGS_H3_DATAGRAM = 1 and the server accepts QUIC DATAGRAM frames).
    pub fn datagrams_negotiated(&self) -> bool {
        match (self.driver.h3.get(&self.handle.0), self.connection()) {
            (Some(h3), Some(c)) => h3.datagrams_negotiated(c),
            _ => false,
        }
    }

    /// `hq-interop` (no HTTP/3 layer): reads the next chunk of a stream.
    /// Reading frees flow-control credit, so the connection is marked for
    /// sending: a MAX_STREAM_DATA owed to a sender that waits for it must
    /// not wait for some unrelated packet to go out.
    pub fn read_raw(&mut self, stream: StreamId, max: usize) -> Result<quic_core::stream::ReadChunk, quic_core::stream::StreamReadError> {
        let conn = self.driver.endpoint.connection(self.handle.0).ok_or(quic_core::stream::StreamReadError::Blocked)?;
        conn.read_chunk(stream, max)
    }

    /// `hq-interop`: opens a bidirectional stream and sends `data` with FIN
    /// (an HTTP/0.9 request); `None` when the peer's stream limit is reached.
    pub fn request_raw(&mut self, data: &[u8]) -> Option<StreamId> {
        let conn = self.driver.endpoint.connection(self.handle.0)?;
        let id = conn.open_stream(quic_core::stream::Dir::Bi)?;
        let _ = conn.write(id, data);
        let _ = conn.finish(id);
        Some(id)
    }

    pub fn poll_event(&mut self) -> Option<H3Event> {
        loop {
            let (h, ev) = self.driver.poll_event()?;
            if h == self.handle {
                return Some(ev);
            }
        }
    }

    pub fn close(&mut self) {
        self.keep_new_token();
        let now = Instant::now();
        if let Some(c) = self.connection_mut() {
            c.close(now, h3_core::error::H3ErrorCode::H3_NO_ERROR.0, b"");
        }
        self.driver.flush();
    }
}

impl Drop for Client {
    /// A token that arrived since the last step is still worth keeping.
    fn drop(&mut self) {
        self.keep_new_token();
    }
}

/// The token to present: the caller's, else one from the store.
pub(super) fn pick_token(store: &Option<TokenStore>, server_name: &str, port: u16, given: Bytes) -> Bytes {
    match store {
        Some(s) if given.is_empty() => s.take(server_name, port),
        _ => given,
    }
}
