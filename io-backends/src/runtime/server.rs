//! A worker's HTTP/3 server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use h3_core::capsule::Capsule;
use h3_core::connection::{H3Config, H3Event, SendError};
use h3_core::datagram::DatagramError;
use h3_core::error::H3Error;
use h3_core::qpack::HeaderField;
use quic_core::cid_gen::RoutableCidGenerator;
use quic_core::config::TransportConfig;
use quic_core::connection::Side;
use quic_core::endpoint::{Endpoint, EndpointConfig, EndpointStats, RetryPolicy, ServerConfig};
use quic_core::stream::StreamId;
use quic_core::tls::ServerTlsOptions;

use super::driver::{Driver, H3Handle};
use crate::backend::BackendError;
use crate::select::{open, BackendConfig};

/// Everything a server worker needs.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub bind: SocketAddr,
    pub tls: ServerTlsOptions,
    pub transport: TransportConfig,
    pub h3: H3Config,
    pub backend: BackendConfig,
    pub retry: RetryPolicy,
    /// Live connections at most; more are refused with CONNECTION_REFUSED
    /// (`ServerConfig::max_connections`).
    pub max_connections: usize,
    /// Encoded in every connection ID this worker issues, so packets can be
    /// steered to it (see `quic_core::cid_gen`).
    pub worker_id: u8,
    /// Shared by all workers: stateless reset and address-token keys.
    pub reset_secret: [u8; 32],
    pub token_secret: [u8; 32],
    /// One qlog file per connection in this directory, from the first
    /// datagram on (`<worker>-<original DCID>.sqlog`).
    pub qlog_dir: Option<std::path::PathBuf>,
    /// Announced in preferred_address (RFC 9000 §9.6); a port of 0 means
    /// the port this server is bound to. Packets to these addresses must
    /// reach this socket (a wildcard bind, or a route or DNAT to it).
    pub preferred_address: Option<quic_core::endpoint::PreferredAddresses>,
    /// How this worker's connection IDs are made (QUIC-LB server ID,
    /// plaintext or encrypted; by default the worker byte only).
    pub cid_format: quic_core::quic_lb::ServerCidFormat,
}

impl ServerOptions {
    pub fn new(bind: SocketAddr, tls: ServerTlsOptions) -> Self {
        let mut reset_secret = [0u8; 32];
        let mut token_secret = [0u8; 32];
        let mut rng = quic_core::rand::SystemRandom::new();
        quic_core::rand::RandomSource::fill(&mut rng, &mut reset_secret);
        quic_core::rand::RandomSource::fill(&mut rng, &mut token_secret);
        Self {
            bind,
            tls,
            transport: TransportConfig::default(),
            h3: H3Config::default(),
            backend: BackendConfig::default(),
            retry: RetryPolicy::UnderLoad { max_handshakes: 1024 },
            max_connections: 100_000,
            worker_id: 0,
            reset_secret,
            token_secret,
            qlog_dir: None,
            preferred_address: None,
            cid_format: quic_core::quic_lb::ServerCidFormat::Workers,
        }
    }
}

#[derive(Debug)]
pub enum ServerError {
    Backend(BackendError),
    Tls(quic_core::tls::TlsConfigError),
    /// The qlog writer thread could not start.
    Qlog(std::io::Error),
    /// The QUIC-LB connection ID configuration is invalid.
    CidFormat(quic_core::quic_lb::LbConfigError),
}

impl core::fmt::Display for ServerError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ServerError::Backend(e) => write!(f, "{e}"),
            ServerError::Tls(e) => write!(f, "{e}"),
            ServerError::Qlog(e) => write!(f, "qlog writer: {e}"),
            ServerError::CidFormat(e) => write!(f, "connection ID format: {e}"),
        }
    }
}

impl std::error::Error for ServerError {}

fn hex_cid(c: &quic_core::cid::ConnectionId) -> String {
    c.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The ALPN of the QUIC interop runner's HTTP/0.9 test protocol.
pub const HQ_INTEROP: &[u8] = b"hq-interop";

pub struct Server {
    driver: Driver,
    description: String,
    local: SocketAddr,
    /// Made on first use by [`Server::notifier`].
    notifier: Option<super::notifier::Notifier>,
}

impl core::fmt::Debug for Server {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Server").field("local", &self.local).field("backend", &self.description).finish()
    }
}

impl Server {
    pub fn bind(mut opts: ServerOptions) -> Result<Self, ServerError> {
        // AF_XDP: the worker on queue q issues CIDs carrying q (below).
        opts.backend.xdp_queue = u32::from(opts.worker_id);
        let (backend, description) = open(&opts.backend, opts.bind).map_err(ServerError::Backend)?;
        let local = backend.local_addr();
        let tls = opts.tls.build().map_err(ServerError::Tls)?;
        let unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut sc = ServerConfig::new(tls, &opts.token_secret, unix);
        sc.transport = Arc::new(opts.transport.clone());
        sc.retry = opts.retry;
        sc.max_connections = opts.max_connections;
        sc.preferred_address = opts.preferred_address.map(|mut pa| {
            if let Some(a) = pa.v4.as_mut().filter(|a| a.port() == 0) {
                a.set_port(local.port());
            }
            if let Some(a) = pa.v6.as_mut().filter(|a| a.port() == 0) {
                a.set_port(local.port());
            }
            pa
        });
        if let Some(dir) = opts.qlog_dir.clone() {
            let worker = opts.worker_id;
            // Files are created and written by the spool's thread: nothing
            // on the packet path waits for the disk.
            let spool = Arc::new(crate::qlog_spool::QlogSpool::start().map_err(ServerError::Qlog)?);
            sc.qlog = Some(Arc::new(move |odcid: &quic_core::cid::ConnectionId| {
                let name = format!("worker{worker}-{}.sqlog", hex_cid(odcid));
                Some(Box::new(spool.sink(dir.join(name))) as Box<dyn std::io::Write + Send>)
            }));
        }
        let mut ec = EndpointConfig::new(&opts.reset_secret);
        let worker = opts.worker_id;
        // Checked once here, so the factory below cannot fail.
        opts.cid_format.generator(worker).map_err(ServerError::CidFormat)?;
        let format = opts.cid_format.clone();
        ec.cid_generator = Arc::new(move || format.generator(worker).unwrap_or_else(|_| Box::new(RoutableCidGenerator::for_worker(worker))));
        let endpoint = Endpoint::new(ec, Some(sc), std::time::Instant::now());
        let mut driver = Driver::new(backend, endpoint, Side::Server, opts.h3);
        // The interop runner's HTTP/0.9 (`hq-interop`): those connections
        // get no HTTP/3 layer; the caller serves their streams directly.
        if opts.tls.alpn.iter().any(|a| a.as_slice() == HQ_INTEROP) {
            driver.set_raw_alpn(Some(HQ_INTEROP.to_vec()));
        }
        Ok(Self { driver, description, local, notifier: None })
    }

    /// The one-line description of the chosen backend, for the start-up log.
    pub fn backend_description(&self) -> &str {
        &self.description
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn step(&mut self, max_wait: Duration) -> std::io::Result<()> {
        self.driver.step(max_wait)
    }

    /// A descriptor readable whenever the server has work (see
    /// `notifier.rs`): a datagram (or, with io_uring or AF_XDP, a
    /// completion on its ring), its next timer, events not yet taken, or
    /// `deadline` (the caller's own, e.g. a parked Fiber's). Re-armed by
    /// every call: call it after each turn.
    pub fn notifier(&mut self, deadline: Option<std::time::Instant>) -> std::io::Result<std::os::fd::RawFd> {
        if self.notifier.is_none() {
            self.notifier = Some(super::notifier::Notifier::new(self.driver.backend.as_raw_fd())?);
        }
        let now = std::time::Instant::now();
        let pending = self.driver.has_events() || !self.driver.accepted.is_empty() || !self.driver.endpoint.active().is_empty();
        let due = if pending { Some(now) } else { [deadline, self.driver.endpoint.poll_timeout()].into_iter().flatten().min() };
        let n = self.notifier.as_ref().ok_or_else(|| std::io::Error::other("no notifier"))?;
        n.arm(due)?;
        Ok(n.fd())
    }

    /// Whether [`notifier`](Self::notifier) was asked for.
    pub fn has_notifier(&self) -> bool {
        self.notifier.is_some()
    }

    /// New connections, in order of arrival.
    pub fn accept(&mut self) -> Option<H3Handle> {
        self.driver.accepted.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<(H3Handle, H3Event)> {
        self.driver.poll_event()
    }

    pub fn poll_closed(&mut self) -> Option<(H3Handle, Option<quic_core::connection::ConnectionError>)> {
        self.driver.closed.pop_front()
    }

    pub fn respond(&mut self, h: H3Handle, stream: StreamId, status: u16, headers: &[HeaderField], end: bool) -> Result<(), SendError> {
        self.driver.with_conn(h, |h3, c| h3.send_response(c, stream, status, headers, end)).unwrap_or(Err(SendError::StreamClosed))
    }

    pub fn send_trailers(&mut self, h: H3Handle, stream: StreamId, trailers: &[HeaderField]) -> Result<(), SendError> {
        self.driver.with_conn(h, |h3, c| h3.send_headers(c, stream, trailers, true)).unwrap_or(Err(SendError::StreamClosed))
    }

    /// Queues body bytes; returns how many were taken (0 = stream buffer full).
    pub fn send_body(&mut self, h: H3Handle, stream: StreamId, data: Bytes, fin: bool) -> Result<usize, SendError> {
        self.driver.with_conn(h, |h3, c| h3.send_data_bytes(c, stream, data, fin)).unwrap_or(Err(SendError::StreamClosed))
    }

    pub fn finish(&mut self, h: H3Handle, stream: StreamId) -> Result<(), SendError> {
        self.driver.with_conn(h, |h3, c| h3.finish(c, stream)).unwrap_or(Err(SendError::StreamClosed))
    }

    pub fn recv_body(&mut self, h: H3Handle, stream: StreamId, max: usize) -> Option<Bytes> {
        self.driver.with_conn(h, |h3, c| h3.recv_body(c, stream, max)).flatten()
    }

    /// Sends an HTTP datagram (RFC 9297) on request stream `stream`; received
    /// ones arrive from [`Server::poll_event`] as `H3Event::Datagram`.
    pub fn send_datagram(&mut self, h: H3Handle, stream: StreamId, payload: &[u8]) -> Result<(), DatagramError> {
        self.driver.with_conn(h, |h3, c| h3.send_datagram(c, stream, payload)).unwrap_or(Err(DatagramError::Closed))
    }

    /// Sends one capsule (RFC 9297 §3) on a stream using the Capsule Protocol.
    pub fn send_capsule(&mut self, h: H3Handle, stream: StreamId, capsule_type: u64, value: &[u8]) -> Result<(), SendError> {
        self.driver.with_conn(h, |h3, c| h3.send_capsule(c, stream, capsule_type, value)).unwrap_or(Err(SendError::StreamClosed))
    }

    /// The next capsule from `stream`'s DATA (call on `H3Event::Data`).
    pub fn recv_capsule(&mut self, h: H3Handle, stream: StreamId) -> Result<Option<Capsule>, H3Error> {
        self.driver.with_conn(h, |h3, c| h3.recv_capsule(c, stream)).unwrap_or(Ok(None))
    }

    /// Whether HTTP datagrams are usable on this connection (both sides sent
    /// SETTINGS_H3_DATAGRAM = 1 and the client accepts QUIC DATAGRAM frames).
    pub fn datagrams_negotiated(&mut self, h: H3Handle) -> bool {
        self.driver.with_conn(h, |h3, c| h3.datagrams_negotiated(c)).unwrap_or(false)
    }

    /// Whether `h` speaks `hq-interop` (no HTTP/3; use `send_raw`).
    pub fn is_raw(&self, h: H3Handle) -> bool {
        self.driver.is_raw(h.0)
    }

    /// `hq-interop`: queues bytes on a stream of a raw connection; returns
    /// how many were taken.
    pub fn send_raw(&mut self, h: H3Handle, stream: StreamId, data: Bytes, fin: bool) -> Result<usize, SendError> {
        let conn = self.driver.endpoint.connection(h.0).ok_or(SendError::StreamClosed)?;
        let len = data.len();
        // A full send buffer takes nothing now (the caller retries after
        // acknowledgments free space); only a finished or reset stream is gone.
        let n = match if len == 0 { Ok(0) } else { conn.write_bytes(stream, data) } {
            Ok(n) => n,
            Err(quic_core::stream::WriteError::Blocked) => 0,
            Err(_) => return Err(SendError::StreamClosed),
        };
        if fin && n == len {
            conn.finish(stream).map_err(|_| SendError::StreamClosed)?;
        }
        Ok(n)
    }

    /// Whether the connection is resumed (TLS session resumption).
    pub fn is_resumed(&mut self, h: H3Handle) -> bool {
        self.driver.endpoint.connection_ref(h.0).is_some_and(|c| c.is_resumed())
    }

    /// The client's certificate (end entity), when the server asked for one
    /// and the client presented it.
    pub fn peer_certificate(&self, h: H3Handle) -> Option<&rustls::pki_types::CertificateDer<'static>> {
        self.driver.endpoint.connection_ref(h.0)?.peer_certificates()?.first()
    }

    /// Graceful shutdown: GOAWAY on every connection (RFC 9114 §5.2).
    pub fn goaway_all(&mut self) {
        let handles: Vec<_> = self.driver.h3.keys().copied().collect();
        for h in handles {
            self.driver.with_conn(H3Handle(h), |h3, c| h3.send_goaway(c));
        }
    }

    /// Closes every connection (after GOAWAY and the drain deadline).
    pub fn close_all(&mut self, code: u64) {
        let now = std::time::Instant::now();
        let handles: Vec<_> = self.driver.h3.keys().copied().collect();
        for h in handles {
            if let Some(c) = self.driver.endpoint.connection(h) {
                c.close(now, code, b"server shutting down");
            }
        }
    }

    pub fn connection_count(&self) -> usize {
        self.driver.endpoint.connection_count()
    }

    pub fn open_requests(&self) -> usize {
        self.driver.h3.values().map(|h| h.open_requests()).sum()
    }

    pub fn endpoint_stats(&self) -> EndpointStats {
        self.driver.endpoint.stats()
    }

    pub fn backend_stats(&self) -> crate::backend::BackendStats {
        self.driver.backend.stats()
    }

    /// Direct access for callers that need more (qlog, raw QUIC).
    pub fn driver(&mut self) -> &mut Driver {
        &mut self.driver
    }
}
