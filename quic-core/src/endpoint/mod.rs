//! The endpoint: one per socket (or worker). Routes datagrams to connections
//! by Destination Connection ID, accepts new connections, and answers what
//! no connection owns: Version Negotiation (RFC 9000 §6), Retry (§8.1.2) and
//! stateless resets (§10.3). Like the connection, it never touches a socket
//! or a clock.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::cid::ConnectionId;
use crate::cid_gen::{ConnectionIdGenerator, RandomCidGenerator, ResetTokenKey};
use crate::codec::Writer;
use crate::config::TransportConfig;
use crate::connection::{CidEvent, Connection, ConnectionParams, EcnCodepoint, Side, Transmit};
use crate::fast_hash::{KeyedBuildHasher, KeyedHashMap};
use crate::packet::header::{encode_retry_without_tag, encode_version_negotiation, peek_dcid, HeaderError};
use crate::packet::{LongType, PacketType, ProtectedHeader, MIN_INITIAL_DATAGRAM_SIZE};
use crate::rand::{RandomSource, SystemRandom};
use crate::tls::TlsSession;
use crate::token::{TokenKey, TokenKind};
use crate::version::Version;

mod active;
mod refusal;
mod timers;

use active::ActiveSet;
use timers::TimerHeap;

/// Index of a connection inside its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionHandle(pub usize);

/// When the server demands address validation with a Retry (RFC 9000 §8.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryPolicy {
    Never,
    Always,
    /// Only while more than this many handshakes are in progress.
    UnderLoad {
        max_handshakes: usize,
    },
}

/// Makes a fresh connection ID generator for each connection.
pub type CidGeneratorFactory = Arc<dyn Fn() -> Box<dyn ConnectionIdGenerator> + Send + Sync>;

/// Settings shared by all connections of the endpoint.
#[derive(Clone)]
pub struct EndpointConfig {
    pub cid_generator: CidGeneratorFactory,
    /// Derives stateless reset tokens (RFC 9000 §10.3.2); share it between
    /// the workers of a server.
    pub reset_key: ResetTokenKey,
    /// Stateless resets sent per second at most (§10.3.3 asks for a limit).
    pub max_stateless_resets_per_sec: u32,
}

impl core::fmt::Debug for EndpointConfig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EndpointConfig").finish_non_exhaustive()
    }
}

impl EndpointConfig {
    pub fn new(reset_secret: &[u8]) -> Self {
        Self {
            cid_generator: Arc::new(|| Box::new(RandomCidGenerator::new(8))),
            reset_key: ResetTokenKey::new(reset_secret),
            max_stateless_resets_per_sec: 100,
        }
    }
}

/// What a server needs to accept connections.
#[derive(Clone)]
pub struct ServerConfig {
    pub tls: Arc<rustls::ServerConfig>,
    pub transport: Arc<TransportConfig>,
    pub retry: RetryPolicy,
    pub token_key: Arc<TokenKey>,
    pub retry_token_lifetime: Duration,
    pub new_token_lifetime: Duration,
    /// Connections not yet accepted by the application, at most.
    pub max_incoming: usize,
    /// Live connections at most; a new client beyond it is refused with
    /// CONNECTION_REFUSED (RFC 9000 §5.2.2) and counted in
    /// [`EndpointStats::refused_connections`].
    pub max_connections: usize,
    /// Wall-clock seconds at the instant passed as `now` when the endpoint
    /// was created; tokens carry wall-clock time so any worker can check them.
    pub unix_time_at_start: u64,
    /// Opens a qlog sink for a new connection (by its original DCID), called
    /// before the connection processes its first datagram, so a trace
    /// starts with the first Initial received and the first flight sent.
    pub qlog: Option<QlogFactory>,
    /// Addresses announced in the preferred_address transport parameter
    /// (RFC 9000 §9.6, §18.2): clients move there once the handshake is
    /// confirmed. Packets sent to them must reach this endpoint.
    pub preferred_address: Option<PreferredAddresses>,
    /// CONFORMANCE TESTING ONLY (feature `conformance`): rewrites the
    /// encoded transport parameters of every new connection, making a
    /// hostile server for client conformance tests and fuzzing.
    #[cfg(feature = "conformance")]
    pub conformance_params: Option<ParamsRewrite>,
}

/// The server's preferred addresses, one per family (RFC 9000 §18.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PreferredAddresses {
    pub v4: Option<std::net::SocketAddrV4>,
    pub v6: Option<std::net::SocketAddrV6>,
}

/// A qlog sink that holds the events in memory until [`DeferredQlog::open`]
/// hands it the real one (or `None`: no trace), then writes through.
#[derive(Clone, Default)]
struct DeferredQlog(Arc<std::sync::Mutex<DeferredState>>);

#[derive(Default)]
enum DeferredState {
    #[default]
    Buffering,
    Held(Vec<u8>),
    Open(Box<dyn std::io::Write + Send>),
    Discarded,
}

impl DeferredQlog {
    fn open(&self, sink: Option<Box<dyn std::io::Write + Send>>) {
        let Ok(mut st) = self.0.lock() else { return };
        let held = match core::mem::take(&mut *st) {
            DeferredState::Held(b) => b,
            _ => Vec::new(),
        };
        *st = match sink {
            Some(mut w) => {
                // A failing trace file must not disturb the connection.
                let _ = w.write_all(&held);
                DeferredState::Open(w)
            }
            None => DeferredState::Discarded,
        };
    }
}

impl std::io::Write for DeferredQlog {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let mut st = self.0.lock().map_err(|_| std::io::Error::other("qlog lock poisoned"))?;
        match &mut *st {
            DeferredState::Buffering => *st = DeferredState::Held(b.to_vec()),
            DeferredState::Held(buf) => buf.extend_from_slice(b),
            DeferredState::Open(w) => return w.write(b),
            DeferredState::Discarded => {}
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut *self.0.lock().map_err(|_| std::io::Error::other("qlog lock poisoned"))? {
            DeferredState::Open(w) => w.flush(),
            _ => Ok(()),
        }
    }
}

/// CONFORMANCE TESTING ONLY: rewrites encoded transport parameters.
#[cfg(feature = "conformance")]
pub type ParamsRewrite = Arc<dyn Fn(Vec<u8>) -> Vec<u8> + Send + Sync>;

/// Makes the qlog sink of a new server connection; `None` for no trace.
pub type QlogFactory = Arc<dyn Fn(&ConnectionId) -> Option<Box<dyn std::io::Write + Send>> + Send + Sync>;

impl core::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ServerConfig").field("retry", &self.retry).finish_non_exhaustive()
    }
}

impl ServerConfig {
    pub fn new(tls: Arc<rustls::ServerConfig>, token_secret: &[u8], unix_time_at_start: u64) -> Self {
        Self {
            tls,
            transport: Arc::new(TransportConfig::default()),
            retry: RetryPolicy::Never,
            token_key: Arc::new(TokenKey::new(token_secret)),
            retry_token_lifetime: Duration::from_secs(10),
            new_token_lifetime: Duration::from_secs(24 * 3600),
            max_incoming: 4096,
            max_connections: 100_000,
            unix_time_at_start,
            qlog: None,
            preferred_address: None,
            #[cfg(feature = "conformance")]
            conformance_params: None,
        }
    }
}

/// What a client needs to connect.
#[derive(Clone)]
pub struct ClientConfig {
    pub tls: Arc<rustls::ClientConfig>,
    pub transport: Arc<TransportConfig>,
    pub version: Version,
}

impl core::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ClientConfig").field("version", &self.version).finish_non_exhaustive()
    }
}

/// Why the endpoint dropped a datagram (counted in [`EndpointStats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    Unparseable,
    UnknownConnection,
    InitialTooSmall,
    NotAServer,
    InvalidToken,
    TooManyConnections,
    ConnectionSetupFailed,
}

/// What happened to a datagram given to [`Endpoint::handle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatagramEvent {
    /// Processed by an existing connection.
    Connection(ConnectionHandle),
    /// A new connection was created (server); it is also queued for `accept`.
    NewConnection(ConnectionHandle),
    /// Answered statelessly (Version Negotiation, Retry or stateless reset);
    /// fetch it with `poll_transmit`.
    Response,
    Dropped(DropReason),
}

#[derive(Debug, Default, Clone, Copy)]
pub struct EndpointStats {
    pub datagrams_received: u64,
    pub dropped_unparseable: u64,
    pub dropped_unknown_connection: u64,
    pub dropped_initial_too_small: u64,
    pub dropped_invalid_token: u64,
    pub dropped_too_many: u64,
    /// New connections refused at `max_connections`.
    pub refused_connections: u64,
    pub version_negotiations_sent: u64,
    pub retries_sent: u64,
    pub stateless_resets_sent: u64,
    pub connections_accepted: u64,
}

pub struct Endpoint {
    config: EndpointConfig,
    server: Option<ServerConfig>,
    /// Boxed: a `Connection` is several KiB, and an inline slab copied all
    /// of them on every growth (with 10,000 connections, tens of MiB of
    /// fresh pages to fault in and zero) and kept up to half its capacity
    /// as slack.
    connections: Vec<Option<Box<Connection>>>,
    free: Vec<usize>,
    /// Our own connection IDs (random, or QUIC-LB encoded), looked up for
    /// every datagram: a keyed fast hash (`fast_hash::KeyedBuildHasher`),
    /// SipHash costing more than the rest of the lookup.
    routes: KeyedHashMap<ConnectionId, ConnectionHandle>,
    /// What each slot put into the routing tables, so ending or finishing
    /// the handshake of one connection removes its entries directly instead
    /// of scanning the tables (work per event, not per connection held).
    slot_routes: Vec<SlotRoutes>,
    /// Client-chosen DCIDs of connections still in the handshake, so
    /// retransmitted Initials find their connection (RFC 9000 §7.2).
    initial_routes: HashMap<ConnectionId, ConnectionHandle>,
    incoming: VecDeque<ConnectionHandle>,
    /// Client connections by server address: a stateless reset carries no
    /// connection ID of ours, so it is matched by where it came from.
    client_remotes: HashMap<SocketAddr, ConnectionHandle>,
    responses: VecDeque<(SocketAddr, Vec<u8>)>,
    rng: Box<dyn RandomSource>,
    local_cid_len: usize,
    start: Instant,
    reset_budget: (Instant, u32),
    stats: EndpointStats,
    handshakes: usize,
    closed: VecDeque<(ConnectionHandle, Option<crate::connection::ConnectionError>)>,
    /// The latest `now` passed in; `maintain` has none of its own.
    last_now: Instant,
    /// Every connection's next deadline (`poll_timeout`, `handle_timeout`).
    timers: TimerHeap,
    /// Connections with work since their transmits were last drained.
    active: ActiveSet,
}

impl core::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Endpoint").field("connections", &self.routes.len()).field("stats", &self.stats).finish()
    }
}

/// The routing entries one connection slot owns.
#[derive(Debug, Default)]
struct SlotRoutes {
    /// Our connection IDs routed to it (issued and not retired).
    cids: smallvec::SmallVec<[ConnectionId; 4]>,
    /// The client's first DCID, while the handshake lasts (server).
    initial_dcid: Option<ConnectionId>,
    /// The server address a client connection is matched by for resets.
    client_remote: Option<SocketAddr>,
}

impl SlotRoutes {
    /// The routes of slot `h`. Slots and connections grow together in
    /// `insert`, so a handle of ours always has one; growing here only
    /// keeps a foreign handle from panicking.
    fn of(slots: &mut Vec<SlotRoutes>, h: ConnectionHandle) -> &mut SlotRoutes {
        if h.0 >= slots.len() {
            slots.resize_with(h.0 + 1, SlotRoutes::default);
        }
        &mut slots[h.0]
    }
}

/// Most stateless responses queued at once; more are dropped.
const MAX_QUEUED_RESPONSES: usize = 256;

impl Endpoint {
    pub fn new(config: EndpointConfig, server: Option<ServerConfig>, now: Instant) -> Self {
        Self::with_rng(config, server, now, Box::new(SystemRandom::new()))
    }

    /// With an explicit random source, for reproducible simulations.
    pub fn with_rng(config: EndpointConfig, server: Option<ServerConfig>, now: Instant, rng: Box<dyn RandomSource>) -> Self {
        let local_cid_len = (config.cid_generator)().cid_len();
        // The table's key comes from the OS, not `rng`: it changes no
        // observable behaviour (the table is never iterated), and drawing
        // it from `rng` would shift every seeded simulation.
        let route_hasher = KeyedBuildHasher::new(&mut SystemRandom::new());
        Self {
            config,
            server,
            connections: Vec::new(),
            free: Vec::new(),
            routes: KeyedHashMap::with_hasher(route_hasher),
            slot_routes: Vec::new(),
            initial_routes: HashMap::new(),
            incoming: VecDeque::new(),
            client_remotes: HashMap::new(),
            responses: VecDeque::new(),
            rng,
            local_cid_len,
            start: now,
            reset_budget: (now, 0),
            stats: EndpointStats::default(),
            handshakes: 0,
            closed: VecDeque::new(),
            last_now: now,
            timers: TimerHeap::default(),
            active: ActiveSet::default(),
        }
    }

    pub fn stats(&self) -> EndpointStats {
        self.stats
    }

    /// The connection `h`, to read events and streams or to write. It is
    /// marked active: the next `poll_transmit` sends what the caller queued
    /// and re-arms its timer.
    pub fn connection(&mut self, h: ConnectionHandle) -> Option<&mut Connection> {
        let conn = self.connections.get_mut(h.0).and_then(|c| c.as_deref_mut())?;
        self.active.mark(h);
        Some(conn)
    }

    /// Connections that saw a datagram, a timer or the application since
    /// their transmits were last drained, in that order: the ones whose
    /// events an application layer should read this turn.
    pub fn active(&self) -> &[ConnectionHandle] {
        self.active.as_slice()
    }

    pub fn connection_ref(&self, h: ConnectionHandle) -> Option<&Connection> {
        self.connections.get(h.0).and_then(|c| c.as_deref())
    }

    /// Handles of all live connections.
    pub fn handles(&self) -> impl Iterator<Item = ConnectionHandle> + '_ {
        self.connections.iter().enumerate().filter(|(_, c)| c.is_some()).map(|(i, _)| ConnectionHandle(i))
    }

    pub fn accept(&mut self) -> Option<ConnectionHandle> {
        self.incoming.pop_front()
    }

    /// Live connections (ended ones not yet reported by `poll_closed` hold
    /// their slot but are not counted).
    pub fn connection_count(&self) -> usize {
        self.connections.len() - self.free.len() - self.closed.len()
    }

    fn unix_now(&self, now: Instant) -> u64 {
        let base = self.server.as_ref().map_or(0, |s| s.unix_time_at_start);
        base + now.saturating_duration_since(self.start).as_secs()
    }

    fn add_route(&mut self, cid: ConnectionId, h: ConnectionHandle) {
        self.routes.insert(cid, h);
        self.slot(h).cids.push(cid);
    }

    fn slot(&mut self, h: ConnectionHandle) -> &mut SlotRoutes {
        SlotRoutes::of(&mut self.slot_routes, h)
    }

    fn insert(&mut self, conn: Connection) -> ConnectionHandle {
        let conn = Box::new(conn);
        let idx = match self.free.pop() {
            Some(i) => {
                self.connections[i] = Some(conn);
                *self.slot(ConnectionHandle(i)) = SlotRoutes::default();
                i
            }
            None => {
                self.connections.push(Some(conn));
                self.slot_routes.push(SlotRoutes::default());
                self.connections.len() - 1
            }
        };
        let h = ConnectionHandle(idx);
        self.active.mark(h);
        h
    }

    /// Starts a client connection to `remote`.
    pub fn connect(
        &mut self,
        now: Instant,
        config: &ClientConfig,
        remote: SocketAddr,
        server_name: &str,
        token: Bytes,
    ) -> Result<ConnectionHandle, crate::Error> {
        self.connect_rewriting(now, config, remote, server_name, token, |encoded| encoded)
    }

    /// CONFORMANCE TESTING ONLY (feature `conformance`): as
    /// [`Endpoint::connect`], but the encoded transport parameters pass
    /// through `rewrite` before TLS carries them, so that a test client can
    /// send parameters a correct client never would (RFC 9000 §7.4, §18.2).
    #[cfg(feature = "conformance")]
    pub fn conformance_connect(
        &mut self,
        now: Instant,
        config: &ClientConfig,
        remote: SocketAddr,
        server_name: &str,
        rewrite: impl FnOnce(Vec<u8>) -> Vec<u8>,
    ) -> Result<ConnectionHandle, crate::Error> {
        self.connect_rewriting(now, config, remote, server_name, Bytes::new(), rewrite)
    }

    fn connect_rewriting(
        &mut self,
        now: Instant,
        config: &ClientConfig,
        remote: SocketAddr,
        server_name: &str,
        token: Bytes,
        rewrite: impl FnOnce(Vec<u8>) -> Vec<u8>,
    ) -> Result<ConnectionHandle, crate::Error> {
        let mut gen = (self.config.cid_generator)();
        let local_cid = gen.generate(&mut *self.rng);
        // RFC 9000 §7.2: an unpredictable DCID of at least 8 bytes.
        let mut d = [0u8; 16];
        self.rng.fill(&mut d);
        let remote_cid = ConnectionId::new(&d).unwrap_or(ConnectionId::EMPTY);
        let params = Connection::local_transport_parameters(Side::Client, &config.transport, &local_cid, None, None, None, config.version);
        let grease = config.transport.grease.then(|| self.rng.next_u64());
        let encoded = rewrite(Connection::encode_transport_parameters(&params, Side::Client, grease));
        let tls = TlsSession::client(config.tls.clone(), server_name, config.version, encoded)?;
        let conn = Connection::new(
            ConnectionParams {
                side: Side::Client,
                version: config.version,
                config: config.transport.clone(),
                remote,
                local_cid,
                remote_cid,
                original_dcid: remote_cid,
                retry_scid: None,
                token,
                cid_generator: gen,
                reset_key: None,
                // The connection's own source: the OS CSPRNG in production
                // (its CIDs, reset tokens and PATH_CHALLENGE data must not be
                // predictable, RFC 9000 §5.1, §10.3, §8.2), a seeded child
                // only for an endpoint built with a seeded source.
                rng: self.rng.fork(),
                address_validated: true,
            },
            tls,
            params,
            now,
        )?;
        let h = self.insert(conn);
        self.add_route(local_cid, h);
        self.client_remotes.insert(remote, h);
        self.slot(h).client_remote = Some(remote);
        Ok(h)
    }

    /// Processes a datagram from `remote`. `data` is decrypted in place.
    pub fn handle(&mut self, now: Instant, remote: SocketAddr, ecn: Option<EcnCodepoint>, data: &mut [u8]) -> DatagramEvent {
        self.stats.datagrams_received += 1;
        self.last_now = self.last_now.max(now);
        let Some(dcid) = peek_dcid(data, self.local_cid_len) else {
            self.stats.dropped_unparseable += 1;
            return DatagramEvent::Dropped(DropReason::Unparseable);
        };
        if let Some(&h) = self.routes.get(&dcid).or_else(|| self.initial_routes.get(&dcid)) {
            if let Some(conn) = self.connections.get_mut(h.0).and_then(|c| c.as_deref_mut()) {
                conn.handle_datagram(now, remote, ecn, data);
                self.active.mark(h);
                self.maintain(h);
                return DatagramEvent::Connection(h);
            }
        }
        let long = data.first().is_some_and(|b| b & 0x80 != 0);
        if !long {
            // RFC 9000 §10.3.1: possibly a stateless reset for a client
            // connection; the connection checks the token.
            if let Some(&h) = self.client_remotes.get(&remote) {
                if let Some(conn) = self.connections.get_mut(h.0).and_then(|c| c.as_deref_mut()) {
                    conn.handle_datagram(now, remote, ecn, data);
                    self.active.mark(h);
                    self.maintain(h);
                    return DatagramEvent::Connection(h);
                }
            }
            return self.maybe_stateless_reset(now, remote, data, &dcid);
        }
        if self.server.is_none() {
            self.stats.dropped_unknown_connection += 1;
            return DatagramEvent::Dropped(DropReason::NotAServer);
        }
        let header = match ProtectedHeader::parse(data, self.local_cid_len) {
            Ok(h) => h,
            Err(HeaderError::UnsupportedVersion { dcid, scid, .. }) => {
                // RFC 9000 §6.1 / §14.1: only answer datagrams big enough to
                // have carried an Initial, which limits amplification.
                if data.len() < MIN_INITIAL_DATAGRAM_SIZE {
                    self.stats.dropped_initial_too_small += 1;
                    return DatagramEvent::Dropped(DropReason::InitialTooSmall);
                }
                let (d, s) = (data[dcid].to_vec(), data[scid].to_vec());
                return self.send_version_negotiation(remote, &d, &s);
            }
            Err(_) => {
                self.stats.dropped_unparseable += 1;
                return DatagramEvent::Dropped(DropReason::Unparseable);
            }
        };
        if header.ty != PacketType::Long(LongType::Initial) {
            // 0-RTT before its Initial, or Handshake for a forgotten connection.
            self.stats.dropped_unknown_connection += 1;
            return DatagramEvent::Dropped(DropReason::UnknownConnection);
        }
        if data.len() < MIN_INITIAL_DATAGRAM_SIZE {
            self.stats.dropped_initial_too_small += 1;
            return DatagramEvent::Dropped(DropReason::InitialTooSmall);
        }
        // A version we implement but this server was configured not to
        // offer: Version Negotiation listing the Offered Versions (RFC 9368
        // §2.1), so the client starts over in one of them.
        if header.version.is_some_and(|v| !self.offers(v)) {
            let (d, s) = (header.dcid, header.scid);
            return self.send_version_negotiation(remote, &d, &s);
        }
        self.accept_initial(now, remote, ecn, header, data)
    }

    fn accept_initial(&mut self, now: Instant, remote: SocketAddr, ecn: Option<EcnCodepoint>, header: ProtectedHeader, data: &mut [u8]) -> DatagramEvent {
        let Some(server) = self.server.clone() else {
            return DatagramEvent::Dropped(DropReason::NotAServer);
        };
        if self.incoming.len() >= server.max_incoming {
            self.stats.dropped_too_many += 1;
            return DatagramEvent::Dropped(DropReason::TooManyConnections);
        }
        if self.connection_count() >= server.max_connections {
            return self.refuse(remote, &header, data);
        }
        let version = header.version.unwrap_or(Version::V1);
        let token = &data[header.token.clone()];
        let unix_now = self.unix_now(now);
        let mut original_dcid = header.dcid;
        let mut retry_scid = None;
        let mut validated = false;
        if !token.is_empty() {
            let lifetime = server.retry_token_lifetime.max(server.new_token_lifetime);
            match server.token_key.validate(token, remote, unix_now, lifetime) {
                Ok(t) if t.kind == TokenKind::Retry => {
                    if unix_now.saturating_sub(t.issued_unix_secs) > server.retry_token_lifetime.as_secs() {
                        self.stats.dropped_invalid_token += 1;
                        return DatagramEvent::Dropped(DropReason::InvalidToken);
                    }
                    original_dcid = t.original_dcid;
                    retry_scid = Some(t.retry_scid);
                    validated = true;
                }
                Ok(_) => validated = true,
                Err(_) => {
                    // RFC 9000 §8.1.3: a bad NEW_TOKEN token is ignored; a bad
                    // Retry token cannot be told apart, so fall through to the
                    // policy (which may send a fresh Retry).
                }
            }
        }
        let must_retry = !validated
            && match server.retry {
                RetryPolicy::Never => false,
                RetryPolicy::Always => true,
                RetryPolicy::UnderLoad { max_handshakes } => self.handshakes >= max_handshakes,
            };
        if must_retry {
            return self.send_retry(now, remote, version, &header, &server);
        }
        let mut gen = (self.config.cid_generator)();
        let local_cid = gen.generate(&mut *self.rng);
        let reset_token = self.config.reset_key.token(&local_cid);
        let mut params = Connection::local_transport_parameters(
            Side::Server,
            &server.transport,
            &local_cid,
            Some(&original_dcid),
            retry_scid.as_ref(),
            Some(reset_token),
            version,
        );
        // RFC 9000 §5.1.1, §18.2: preferred_address carries the ID of
        // sequence number 1 (never empty) and its reset token.
        let preferred_cid = server.preferred_address.filter(|_| gen.cid_len() > 0).map(|pa| {
            let cid = gen.generate(&mut *self.rng);
            params.preferred_address = Some(crate::transport_params::PreferredAddress {
                ipv4: pa.v4.unwrap_or(std::net::SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0)),
                ipv6: pa.v6.unwrap_or(std::net::SocketAddrV6::new(std::net::Ipv6Addr::UNSPECIFIED, 0, 0, 0)),
                connection_id: cid,
                stateless_reset_token: self.config.reset_key.token(&cid),
            });
            cid
        });
        let grease = server.transport.grease.then(|| self.rng.next_u64());
        let encoded = Connection::encode_transport_parameters(&params, Side::Server, grease);
        #[cfg(feature = "conformance")]
        let encoded = match &server.conformance_params {
            Some(rewrite) => rewrite(encoded),
            None => encoded,
        };
        let Ok(tls) = TlsSession::server(server.tls.clone(), version, encoded) else {
            return DatagramEvent::Dropped(DropReason::ConnectionSetupFailed);
        };
        let conn = Connection::new(
            ConnectionParams {
                side: Side::Server,
                version,
                config: server.transport.clone(),
                remote,
                local_cid,
                remote_cid: header.scid,
                original_dcid: header.dcid,
                retry_scid,
                token: Bytes::new(),
                cid_generator: gen,
                reset_key: Some(self.config.reset_key.clone()),
                // The connection's own source: the OS CSPRNG in production
                // (its CIDs, reset tokens and PATH_CHALLENGE data must not be
                // predictable, RFC 9000 §5.1, §10.3, §8.2), a seeded child
                // only for an endpoint built with a seeded source.
                rng: self.rng.fork(),
                address_validated: validated,
            },
            tls,
            params,
            now,
        );
        let Ok(mut conn) = conn else {
            return DatagramEvent::Dropped(DropReason::ConnectionSetupFailed);
        };
        if let Some(cid) = preferred_cid {
            conn.adopt_preferred_cid(cid);
        }
        // Initial keys derive from the DCID of this Initial, which after a
        // Retry is the server's Retry SCID (RFC 9001 §5.2).
        conn.set_initial_dcid_for_keys(header.dcid);
        // The trace starts before the first datagram is processed, into
        // memory: the factory (a file, usually) is only called once a
        // packet authenticated, so forged or corrupted Initials leave no
        // trace files behind.
        let deferred = server.qlog.clone().map(|factory| {
            let d = DeferredQlog::default();
            conn.enable_qlog(Box::new(d.clone()), now);
            (d, factory)
        });
        conn.handle_datagram(now, remote, ecn, data);
        if let Some((d, factory)) = deferred.filter(|_| conn.stats().packets_received > 0) {
            d.open(factory(&original_dcid));
        }
        if conn.stats().packets_received == 0 {
            // Nothing authenticated (corrupted or forged Initial): keep no
            // state for it (RFC 9000 §5.2.2 lets servers drop such packets).
            self.stats.dropped_unparseable += 1;
            return DatagramEvent::Dropped(DropReason::Unparseable);
        }
        let h = self.insert(conn);
        self.add_route(local_cid, h);
        self.initial_routes.insert(header.dcid, h);
        self.slot(h).initial_dcid = Some(header.dcid);
        self.handshakes += 1;
        self.stats.connections_accepted += 1;
        self.incoming.push_back(h);
        self.maintain(h);
        DatagramEvent::NewConnection(h)
    }

    /// Answers an Initial with CONNECTION_REFUSED, keeping no state.
    fn refuse(&mut self, remote: SocketAddr, header: &ProtectedHeader, data: &mut [u8]) -> DatagramEvent {
        let version = header.version.unwrap_or(Version::V1);
        let scid = (self.config.cid_generator)().generate(&mut *self.rng);
        let Some(packet) = refusal::refuse_initial(version, header, data, &scid) else {
            self.stats.dropped_unparseable += 1;
            return DatagramEvent::Dropped(DropReason::Unparseable);
        };
        self.stats.refused_connections += 1;
        self.queue_response(remote, packet);
        DatagramEvent::Response
    }

    /// Whether this server accepts connections in `v` (its transport
    /// config's `versions`; empty: every version we implement).
    fn offers(&self, v: Version) -> bool {
        let configured = self.server.as_ref().map_or(&[][..], |s| s.transport.versions.as_slice());
        v.is_supported() && (configured.is_empty() || configured.contains(&v))
    }

    fn send_version_negotiation(&mut self, remote: SocketAddr, dcid: &[u8], scid: &[u8]) -> DatagramEvent {
        let mut buf = vec![0u8; 64 + dcid.len() + scid.len()];
        let unused = (self.rng.next_u64() & 0x7f) as u8;
        // RFC 9000 §6.3 / §15: include a reserved version to exercise the mechanism.
        let grease = Version::grease(self.rng.next_u64() as u32);
        let mut versions = [grease; 3];
        let mut n = 0;
        for v in Version::SUPPORTED.iter().copied().filter(|v| self.offers(*v)) {
            if let Some(slot) = versions.get_mut(n) {
                *slot = v;
                n += 1;
            }
        }
        let versions = versions.get(..n + 1).unwrap_or(&versions);
        let mut w = Writer::new(&mut buf);
        if encode_version_negotiation(&mut w, dcid, scid, versions, unused).is_err() {
            return DatagramEvent::Dropped(DropReason::Unparseable);
        }
        let n = w.len();
        buf.truncate(n);
        self.queue_response(remote, buf);
        self.stats.version_negotiations_sent += 1;
        DatagramEvent::Response
    }

    fn send_retry(&mut self, now: Instant, remote: SocketAddr, version: Version, header: &ProtectedHeader, server: &ServerConfig) -> DatagramEvent {
        let mut gen = (self.config.cid_generator)();
        let retry_scid = gen.generate(&mut *self.rng);
        let token = server.token_key.seal(TokenKind::Retry, remote, &header.dcid, &retry_scid, self.unix_now(now), &mut *self.rng);
        let mut buf = vec![0u8; 128 + token.as_bytes().len()];
        let unused = (self.rng.next_u64() & 0x0f) as u8;
        let mut w = Writer::new(&mut buf);
        if encode_retry_without_tag(&mut w, version, &header.scid, &retry_scid, token.as_bytes(), unused).is_err() {
            return DatagramEvent::Dropped(DropReason::Unparseable);
        }
        let n = w.len();
        let Ok(tag) = crate::crypto::retry_integrity_tag(version, &header.dcid, &buf[..n]) else {
            return DatagramEvent::Dropped(DropReason::Unparseable);
        };
        buf[n..n + 16].copy_from_slice(&tag);
        buf.truncate(n + 16);
        self.queue_response(remote, buf);
        self.stats.retries_sent += 1;
        DatagramEvent::Response
    }

    /// RFC 9000 §10.3: answer a short-header packet for an unknown
    /// connection with a stateless reset, smaller than what provoked it
    /// (§10.3.3, so two endpoints cannot loop), and rate-limited.
    fn maybe_stateless_reset(&mut self, now: Instant, remote: SocketAddr, data: &[u8], dcid: &ConnectionId) -> DatagramEvent {
        self.stats.dropped_unknown_connection += 1;
        const MIN_RESET: usize = 21;
        if data.len() <= MIN_RESET + 1 || dcid.len() != self.local_cid_len || self.local_cid_len == 0 {
            return DatagramEvent::Dropped(DropReason::UnknownConnection);
        }
        let (since, count) = self.reset_budget;
        if now.saturating_duration_since(since) >= Duration::from_secs(1) {
            self.reset_budget = (now, 0);
        } else if count >= self.config.max_stateless_resets_per_sec {
            return DatagramEvent::Dropped(DropReason::UnknownConnection);
        }
        self.reset_budget.1 += 1;
        let len = (data.len() - 1).clamp(MIN_RESET, 43);
        let mut buf = vec![0u8; len];
        self.rng.fill(&mut buf[..len - 16]);
        // Looks like a short header: form 0, fixed bit 1.
        buf[0] = 0x40 | (buf[0] & 0x3f);
        let token = self.config.reset_key.token(dcid);
        buf[len - 16..].copy_from_slice(&token.0);
        self.queue_response(remote, buf);
        self.stats.stateless_resets_sent += 1;
        DatagramEvent::Response
    }

    fn queue_response(&mut self, remote: SocketAddr, buf: Vec<u8>) {
        if self.responses.len() < MAX_QUEUED_RESPONSES {
            self.responses.push_back((remote, buf));
        }
    }

    /// The next datagram (or GSO batch) to send, written into `buf`:
    /// stateless responses first, then what the active connections have.
    /// A driver calls it until `None` after every batch of inputs; a
    /// connection whose transmits are drained has its routing updated and
    /// its timer re-armed here, and leaves the active set.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        if let Some((dest, data)) = self.responses.pop_front() {
            let n = data.len().min(buf.len());
            buf[..n].copy_from_slice(&data[..n]);
            return Some(Transmit { destination: dest, ecn: None, size: n, segment_size: None });
        }
        self.last_now = self.last_now.max(now);
        while let Some(h) = self.active.front() {
            if let Some(conn) = self.connections.get_mut(h.0).and_then(|c| c.as_deref_mut()) {
                if let Some(t) = conn.poll_transmit(now, buf) {
                    return Some(t);
                }
                let deadline = conn.poll_timeout();
                self.timers.set(h, deadline);
            }
            self.active.pop_front();
            self.maintain(h);
        }
        None
    }

    /// The earliest instant at which `handle_timeout` has work.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Fires the timers of every connection whose deadline is at or before
    /// `now` (loss detection, PTO, idle and draining timeouts, pacing,
    /// ACK delay); those connections become active.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = self.last_now.max(now);
        while let Some(h) = self.timers.pop_due(now) {
            let Some(conn) = self.connections.get_mut(h.0).and_then(|c| c.as_deref_mut()) else { continue };
            conn.handle_timeout(now);
            self.active.mark(h);
            self.maintain(h);
        }
    }

    /// Updates routing after a connection did work; frees drained ones.
    fn maintain(&mut self, h: ConnectionHandle) {
        let Some(conn) = self.connections.get_mut(h.0).and_then(|c| c.as_deref_mut()) else { return };
        while let Some(ev) = conn.poll_cid_event() {
            match ev {
                CidEvent::Issued(cid) => {
                    self.routes.insert(cid, h);
                    SlotRoutes::of(&mut self.slot_routes, h).cids.push(cid);
                }
                CidEvent::Retired(cid) => {
                    if self.routes.get(&cid) == Some(&h) {
                        self.routes.remove(&cid);
                    }
                    SlotRoutes::of(&mut self.slot_routes, h).cids.retain(|c| *c != cid);
                }
            }
        }
        if conn.wants_new_token() {
            if let Some(server) = &self.server {
                // RFC 9000 §8.1.3: a token for the client's next connection,
                // bound to its address (not port).
                let unix_now = server.unix_time_at_start + self.last_now.saturating_duration_since(self.start).as_secs();
                let remote = conn.remote_address();
                let t = server.token_key.seal(TokenKind::NewToken, remote, &ConnectionId::EMPTY, &ConnectionId::EMPTY, unix_now, &mut *self.rng);
                conn.queue_new_token(Bytes::copy_from_slice(t.as_bytes()));
            }
        }
        if !conn.is_handshaking() {
            if let Some(dcid) = SlotRoutes::of(&mut self.slot_routes, h).initial_dcid.take() {
                if self.initial_routes.get(&dcid) == Some(&h) {
                    self.initial_routes.remove(&dcid);
                }
                self.handshakes = self.handshakes.saturating_sub(1);
            }
        }
        if conn.is_drained() {
            self.remove(h);
        }
    }

    /// Discards connection `h` at once, sending nothing: for a client
    /// connection that never heard from its peer (a server that is not up),
    /// which has nothing to be told; RFC 9000 §10 lets an endpoint discard
    /// state silently. A CONNECTION_CLOSE would only provoke a Retry or a
    /// handshake from a server that comes up meanwhile. `poll_closed`
    /// reports it as for any ending.
    pub fn abandon(&mut self, h: ConnectionHandle) {
        self.remove(h);
    }

    fn remove(&mut self, h: ConnectionHandle) {
        let Some(conn) = self.connections.get_mut(h.0).and_then(|c| c.take()) else { return };
        self.timers.remove(h);
        let slot = core::mem::take(self.slot(h));
        if let Some(dcid) = slot.initial_dcid {
            if self.initial_routes.get(&dcid) == Some(&h) {
                self.initial_routes.remove(&dcid);
            }
            self.handshakes = self.handshakes.saturating_sub(1);
        }
        for cid in &slot.cids {
            if self.routes.get(cid) == Some(&h) {
                self.routes.remove(cid);
            }
        }
        if let Some(remote) = slot.client_remote {
            if self.client_remotes.get(&remote) == Some(&h) {
                self.client_remotes.remove(&remote);
            }
        }
        // Bounded by `max_incoming`; usually empty (the driver accepts at once).
        self.incoming.retain(|v| *v != h);
        // The slot is not free yet: a driver keeps its own state by handle
        // (the HTTP/3 layer, timers) and forgets it when `poll_closed`
        // reports the handle. Reusing the slot before that let a new
        // connection inherit, or lose, the old one's state: under
        // handshake load a fresh connection's control stream was read by a
        // stale HTTP/3 layer (its stream-type byte 0x00 taken for a DATA
        // frame, H3_FRAME_UNEXPECTED). One entry per slot, so the queue is
        // bounded by the slab.
        self.closed.push_back((h, conn.error().cloned()));
    }

    /// Connections that ended, with why they ended. Reporting a handle
    /// frees it: only then may a new connection get the same handle.
    pub fn poll_closed(&mut self) -> Option<(ConnectionHandle, Option<crate::connection::ConnectionError>)> {
        let (h, err) = self.closed.pop_front()?;
        self.free.push(h.0);
        Some((h, err))
    }
}
