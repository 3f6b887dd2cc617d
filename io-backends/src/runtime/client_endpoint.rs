//! Many HTTP/3 client connections on one socket: a process's client
//! endpoint. Where [`Client`](super::Client) is one connection on its own
//! socket, this keeps one quic-core `Endpoint` and one backend for every
//! connection a process opens, so one wait covers them all and a
//! scheduler can interleave requests of many sessions (the PHP binding's
//! concurrent client Fibers).
//!
//! Events are sorted per connection as they arrive: each connection's
//! owner takes only its own ([`ClientEndpoint::poll_event`]).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use h3_core::connection::{H3Event, SendError};
use h3_core::qpack::HeaderField;
use quic_core::connection::{Connection, ConnectionError, Side};
use quic_core::endpoint::{ClientConfig, Endpoint, EndpointConfig};
use quic_core::stream::StreamId;

use super::client::{ClientError, ClientOptions};
use super::driver::{Driver, H3Handle};
use super::notifier::Notifier;
use super::tokens::TokenStore;
use crate::select::{open, BackendConfig};

/// What the endpoint keeps per connection beside quic-core's state.
#[derive(Debug)]
struct Meta {
    /// In `ready` already.
    queued: bool,
    server_name: String,
    server_port: u16,
    tokens: Option<TokenStore>,
    events: VecDeque<H3Event>,
    /// Set once the connection is gone: why (`None`: closed locally).
    closed: Option<Option<ConnectionError>>,
}

pub struct ClientEndpoint {
    driver: Driver,
    conns: HashMap<H3Handle, Meta>,
    /// Connections with events (or an end) their owner has not seen, each
    /// once: what the owner's scheduler looks at, so a turn's work follows
    /// the events rather than the number of connections.
    ready: VecDeque<H3Handle>,
    notifier: Option<Notifier>,
    /// How the socket was opened, to open another on migration.
    backend_cfg: BackendConfig,
    bind: SocketAddr,
}

impl core::fmt::Debug for ClientEndpoint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ClientEndpoint").field("driver", &self.driver).field("connections", &self.conns.len()).finish()
    }
}

impl ClientEndpoint {
    /// Opens the socket (an ephemeral port of the wildcard address of the
    /// family of `ipv6`).
    pub fn open(backend: &BackendConfig, ipv6: bool) -> Result<Self, ClientError> {
        let bind: SocketAddr = if ipv6 { "[::]:0" } else { "0.0.0.0:0" }.parse().map_err(|_| ClientError::TimedOut)?;
        let mut cfg = backend.clone();
        cfg.udp.reuse_port = false;
        let (backend, _) = open(&cfg, bind).map_err(ClientError::Backend)?;
        let mut secret = [0u8; 32];
        quic_core::rand::RandomSource::fill(&mut quic_core::rand::SystemRandom::new(), &mut secret);
        let endpoint = Endpoint::new(EndpointConfig::new(&secret), None, Instant::now());
        let driver = Driver::new(backend, endpoint, Side::Client, h3_core::connection::H3Config::default());
        Ok(Self { driver, conns: HashMap::new(), ready: VecDeque::new(), notifier: None, backend_cfg: cfg, bind })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.driver.backend.local_addr()
    }

    /// Starts a connection with `opts` (its own TLS, transport and HTTP/3
    /// settings) and the already built rustls config `tls` (one per set of
    /// options, so sessions resume: see `Client::connect_with_tls`).
    pub fn connect(
        &mut self,
        opts: &ClientOptions,
        tls: Arc<rustls::ClientConfig>,
        server: SocketAddr,
        server_name: &str,
        token: Bytes,
    ) -> Result<H3Handle, ClientError> {
        let config = ClientConfig { tls, transport: Arc::new(opts.transport.clone()), version: opts.version };
        let token = super::client::pick_token(&opts.tokens, server_name, server.port(), token);
        let h = self.driver.endpoint.connect(Instant::now(), &config, server, server_name, token).map_err(ClientError::Connect)?;
        self.driver.adopt_with(h, opts.h3.clone());
        let meta = Meta {
            queued: false,
            server_name: server_name.to_string(),
            server_port: server.port(),
            tokens: opts.tokens.clone(),
            events: VecDeque::new(),
            closed: None,
        };
        self.conns.insert(H3Handle(h), meta);
        // The first flight leaves at the next `step`, so the caller may
        // still attach a qlog sink that sees it.
        Ok(H3Handle(h))
    }

    /// One turn for every connection: waits at most `max_wait` (none when
    /// an owner has events to take), receives, fires timers, runs HTTP/3,
    /// sends; then sorts the events to their connections.
    pub fn step(&mut self, max_wait: Duration) -> Result<(), ClientError> {
        let pending = !self.ready.is_empty();
        self.driver.step(if pending { Duration::ZERO } else { max_wait }).map_err(ClientError::Io)?;
        self.sort_events();
        Ok(())
    }

    fn sort_events(&mut self) {
        while let Some((h, ev)) = self.driver.poll_event() {
            if let Some(m) = self.conns.get_mut(&h) {
                m.events.push_back(ev);
                if !std::mem::replace(&mut m.queued, true) {
                    self.ready.push_back(h);
                    self.store_token(h);
                }
            }
        }
        while let Some((h, err)) = self.driver.closed.pop_front() {
            if let Some(m) = self.conns.get_mut(&h) {
                m.closed = Some(err);
                if !std::mem::replace(&mut m.queued, true) {
                    self.ready.push_back(h);
                }
            }
        }
    }

    /// Files a NEW_TOKEN `h` received in the store (RFC 9000 §8.1.3).
    /// Looked for when `h` has events and when it closes: the work follows
    /// the connections that had news. Checked without touching the
    /// connection (`connection()` would mark it active).
    fn store_token(&mut self, h: H3Handle) {
        let Some(m) = self.conns.get(&h) else { return };
        let Some(store) = &m.tokens else { return };
        if !self.driver.endpoint.connection_ref(h.0).is_some_and(Connection::has_new_token) {
            return;
        }
        if let Some(t) = self.driver.endpoint.connection(h.0).and_then(|c| c.take_new_token()) {
            store.insert(&m.server_name, m.server_port, t);
        }
    }

    /// The next connection with news (events, or its end) since it was
    /// last returned here; take its events with `poll_event`.
    pub fn next_ready(&mut self) -> Option<H3Handle> {
        while let Some(h) = self.ready.pop_front() {
            if let Some(m) = self.conns.get_mut(&h) {
                m.queued = false;
                return Some(h);
            }
        }
        None
    }

    /// The next event of connection `h`.
    pub fn poll_event(&mut self, h: H3Handle) -> Option<H3Event> {
        self.conns.get_mut(&h)?.events.pop_front()
    }

    pub fn connection(&self, h: H3Handle) -> Option<&Connection> {
        self.driver.endpoint.connection_ref(h.0)
    }

    pub fn connection_mut(&mut self, h: H3Handle) -> Option<&mut Connection> {
        self.driver.endpoint.connection(h.0)
    }

    /// Why `h` is gone, once it is: the error, or `LocallyClosed`.
    pub fn closed(&self, h: H3Handle) -> Option<ClientError> {
        let m = self.conns.get(&h)?;
        let gone = m.closed.clone().or_else(|| self.driver.endpoint.connection_ref(h.0).is_none().then_some(None))?;
        Some(ClientError::Connection(gone.unwrap_or(ConnectionError::LocallyClosed)))
    }

    pub fn request(&mut self, h: H3Handle, headers: &[HeaderField], end: bool) -> Result<StreamId, SendError> {
        self.driver.with_conn(h, |h3, c| h3.send_request(c, headers, end)).unwrap_or(Err(SendError::Refused))
    }

    pub fn send_body(&mut self, h: H3Handle, stream: StreamId, data: Bytes, fin: bool) -> Result<usize, SendError> {
        self.driver.with_conn(h, |h3, c| h3.send_data_bytes(c, stream, data, fin)).unwrap_or(Err(SendError::StreamClosed))
    }

    /// Body bytes of `stream`, at most `max`; events `recv_body` completes
    /// (Finished) are sorted at once.
    pub fn recv_body(&mut self, h: H3Handle, stream: StreamId, max: usize) -> Option<Bytes> {
        let got = self.driver.with_conn(h, |h3, c| h3.recv_body(c, stream, max)).flatten();
        self.sort_events();
        got
    }

    /// Sends CONNECTION_CLOSE (H3_NO_ERROR) on `h`; its state is kept
    /// until [`forget`](Self::forget). A connection that never received a
    /// packet is dropped silently instead (`Endpoint::abandon`): its server
    /// has no state to end, and a late close would only draw a Retry or a
    /// handshake from a server that just came up.
    pub fn close(&mut self, h: H3Handle) {
        self.store_token(h);
        let now = Instant::now();
        let heard = self.driver.endpoint.connection_ref(h.0).is_some_and(|c| c.stats().packets_received > 0);
        if !heard {
            self.driver.endpoint.abandon(h.0);
        } else if let Some(c) = self.driver.endpoint.connection(h.0) {
            c.close(now, h3_core::error::H3ErrorCode::H3_NO_ERROR.0, b"");
        }
        self.driver.flush();
        self.sort_events();
    }

    /// Drops what the endpoint keeps for `h` (after `close`, or once it is
    /// gone); quic-core frees the connection after its closing period.
    pub fn forget(&mut self, h: H3Handle) {
        self.conns.remove(&h);
    }

    /// Connections the endpoint keeps for their owners.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Active migration (RFC 9000 §9.2) of the whole endpoint: a new
    /// socket on another local port replaces the old one, and every
    /// connection that can moves to it (a new server connection ID, path
    /// validation); one that cannot (no spare ID) just sees its address
    /// change, as a NAT rebinding. `h` must be able to migrate: its refusal
    /// leaves everything as it was. Returns the new local address.
    pub fn migrate(&mut self, h: H3Handle) -> Result<SocketAddr, ClientError> {
        let now = Instant::now();
        self.driver.endpoint.connection(h.0).ok_or(ClientError::TimedOut)?.can_migrate().map_err(ClientError::Migrate)?;
        let (backend, _) = open(&self.backend_cfg, self.bind).map_err(ClientError::Backend)?;
        let local = backend.local_addr();
        self.driver.backend = backend;
        let handles: Vec<H3Handle> = self.conns.keys().copied().collect();
        for other in handles {
            if let Some(c) = self.driver.endpoint.connection(other.0) {
                if c.can_migrate().is_ok() {
                    let _ = c.migrate(now);
                }
            }
        }
        if self.notifier.is_some() {
            // It watched the old socket.
            self.notifier = Some(Notifier::new(self.driver.backend.as_raw_fd()).map_err(ClientError::Io)?);
        }
        self.driver.flush();
        Ok(local)
    }

    /// Whether [`notifier`](Self::notifier) was asked for.
    pub fn has_notifier(&self) -> bool {
        self.notifier.is_some()
    }

    /// The endpoint's next timer.
    pub fn next_timeout(&mut self) -> Option<Instant> {
        self.driver.endpoint.poll_timeout()
    }

    /// A descriptor readable whenever the endpoint has work (a datagram, a
    /// timer due, or events waiting for an owner), re-armed by every call:
    /// call it after each `step` (see `notifier.rs`).
    pub fn notifier(&mut self) -> Result<std::os::fd::RawFd, ClientError> {
        if self.notifier.is_none() {
            self.notifier = Some(Notifier::new(self.driver.backend.as_raw_fd()).map_err(ClientError::Io)?);
        }
        let pending = !self.ready.is_empty() || !self.driver.endpoint.active().is_empty();
        let deadline = if pending { Some(Instant::now()) } else { self.driver.endpoint.poll_timeout() };
        let n = self.notifier.as_ref().ok_or(ClientError::TimedOut)?;
        n.arm(deadline).map_err(ClientError::Io)?;
        Ok(n.fd())
    }
}
