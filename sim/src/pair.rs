//! Two quic-core endpoints on simulated time, exchanging datagrams over a
//! pair of simulated [`Link`]s (one per direction): the one impairment
//! model of the tests and of the interop relay.
#![allow(clippy::unwrap_used, missing_debug_implementations)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quic_core::cid_gen::RandomCidGenerator;
use quic_core::config::TransportConfig;
use quic_core::connection::Connection;
use quic_core::endpoint::{ClientConfig, ConnectionHandle, Endpoint, EndpointConfig, ServerConfig};
use quic_core::rand::{RandomSource, SeededRandom, SharedRandom};
use quic_core::tls::{ClientTlsOptions, ServerTlsOptions};
use quic_core::Version;

use crate::link::{EcnMangle, Link, LinkConfig, LinkStats};

/// One-way delay of the links a pair starts with.
pub const DEFAULT_DELAY: Duration = Duration::from_millis(10);

/// One datagram a pair put on a link: when (since the pair started), from
/// which side, and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEntry {
    pub at: Duration,
    pub from_client: bool,
    pub data: Vec<u8>,
}

/// Where the endpoints' randomness comes from.
enum EndpointRandom {
    /// Seeded generators derived from the pair's seed.
    Seeded,
    /// The OS CSPRNG, as in production.
    System,
    /// Sources shared with each side's TLS stack (server, client).
    Shared(SharedRandom, SharedRandom),
}

pub struct Pair {
    pub now: Instant,
    pub server: Endpoint,
    pub client: Endpoint,
    pub server_addr: SocketAddr,
    pub client_addr: SocketAddr,
    pub client_conn: ConnectionHandle,
    pub client_config: ClientConfig,
    /// Drop every datagram from client to server while set.
    pub blackhole_client_to_server: bool,
    /// Drop every datagram from server to client while set.
    pub blackhole_server_to_client: bool,
    pub server_conn: Option<ConnectionHandle>,
    pub rng: SeededRandom,
    /// For a datagram crossing `links`, by link and send sequence number (a
    /// duplicate keeps its original's number): for a client datagram the
    /// source the server sees (the client's address when it was sent), for
    /// a server datagram its destination.
    link_addrs: [HashMap<u64, SocketAddr>; 2],
    link_sends: [u64; 2],
    /// Server datagrams to an address other than the client's current one
    /// are dropped (the old NAT mapping is gone); counted here.
    pub dropped_stale_destination: u64,
    /// Bytes the server sent, by destination address.
    pub server_sent_to: HashMap<SocketAddr, u64>,
    /// Bytes the client sent, by destination address.
    pub client_sent_to: HashMap<SocketAddr, u64>,
    /// While non-zero, client datagrams due at the server are held in
    /// `held` instead of delivered (one per unit).
    pub hold_client_datagrams: usize,
    pub held: Vec<(SocketAddr, Vec<u8>)>,
    /// The transmit buffer `collect` lends the endpoints: allocated and
    /// zeroed once, not per network step (that was most of a request's
    /// instructions in the `h3_requests` bench).
    tx_buf: Vec<u8>,
    /// Client→server and server→client.
    links: [Link; 2],
    pub delivered: u64,
    /// Datagrams dropped by the blackhole switches (the links count theirs).
    blackholed: u64,
    /// Bytes sent server→client before the server received anything beyond
    /// the first flight (for amplification checks).
    pub server_sent: u64,
    pub client_sent: u64,
    /// ECN middleboxes: [client→server, server→client].
    pub ecn_mangle: [Option<EcnMangle>; 2],
    /// Datagrams delivered with each ECN codepoint (two bits), by direction
    /// [client→server, server→client].
    pub ecn_delivered: [[u64; 4]; 2],
    start: Instant,
    /// Every datagram sent, once [`Pair::record_trace`] asked for it.
    pub trace: Option<Vec<TraceEntry>>,
}

pub struct Certs {
    pub cert: rustls::pki_types::CertificateDer<'static>,
    pub key: rustls::pki_types::PrivateKeyDer<'static>,
}

pub fn certs() -> Certs {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    Certs { cert: ck.cert.der().clone(), key: rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into()) }
}

pub fn server_tls(c: &Certs) -> ServerTlsOptions {
    ServerTlsOptions::new(vec![c.cert.clone()], c.key.clone_key(), &[b"test"])
}

pub fn client_tls(c: &Certs) -> ClientTlsOptions {
    let mut o = ClientTlsOptions::new(&[b"test"]);
    o.extra_roots.push(c.cert.clone());
    o
}

impl Pair {
    pub fn new(seed: u64, server_tls: ServerTlsOptions, client_tls: ClientTlsOptions, transport: TransportConfig) -> Self {
        Self::with(seed, server_tls, client_tls, transport, |_| {}, Version::V1)
    }

    pub fn with(
        seed: u64,
        server_tls: ServerTlsOptions,
        client_tls: ClientTlsOptions,
        transport: TransportConfig,
        tweak: impl FnOnce(&mut ServerConfig),
        version: Version,
    ) -> Self {
        Self::with_cid_lens(seed, server_tls, client_tls, transport, tweak, version, 8, 8)
    }

    /// As [`Pair::with`], with the connection ID lengths each endpoint
    /// issues (peers such as quic-go use 4-byte server IDs; datagram
    /// layouts, and so coalescing bugs, depend on them).
    #[allow(clippy::too_many_arguments)]
    pub fn with_cid_lens(
        seed: u64,
        server_tls: ServerTlsOptions,
        client_tls: ClientTlsOptions,
        transport: TransportConfig,
        tweak: impl FnOnce(&mut ServerConfig),
        version: Version,
        client_cid_len: usize,
        server_cid_len: usize,
    ) -> Self {
        Self::build(seed, server_tls, client_tls, transport, tweak, version, client_cid_len, server_cid_len, EndpointRandom::Seeded)
    }

    /// Like [`Pair::new`], but both endpoints use the operating system's
    /// CSPRNG, as production endpoints do (`Endpoint::new`): their
    /// connection IDs and tokens are not reproducible. The network model
    /// stays seeded.
    pub fn new_unseeded(seed: u64, server_tls: ServerTlsOptions, client_tls: ClientTlsOptions, transport: TransportConfig) -> Self {
        Self::build(seed, server_tls, client_tls, transport, |_| {}, Version::V1, 8, 8, EndpointRandom::System)
    }

    /// A pair in which `seed` fixes every byte on the wire: each endpoint
    /// and its TLS stack draw from one seeded source
    /// ([`crate::tls::deterministic_tls`]), rustls reads a fixed clock,
    /// and the links are seeded.
    pub fn deterministic(seed: u64, transport: TransportConfig) -> Self {
        let mut seeds = SeededRandom::new(seed ^ 0x7369_6d75_6c61_7465);
        let (server_rng, client_rng) = (SharedRandom::new(seeds.next_u64()), SharedRandom::new(seeds.next_u64()));
        let (s, c) = crate::tls::deterministic_tls(&server_rng, &client_rng);
        Self::build(seed, s, c, transport, |_| {}, Version::V1, 8, 8, EndpointRandom::Shared(server_rng, client_rng))
    }

    /// Records every datagram sent from now on in [`Pair::trace`].
    pub fn record_trace(&mut self) {
        self.trace.get_or_insert_with(Vec::new);
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        seed: u64,
        server_tls: ServerTlsOptions,
        client_tls: ClientTlsOptions,
        transport: TransportConfig,
        tweak: impl FnOnce(&mut ServerConfig),
        version: Version,
        client_cid_len: usize,
        server_cid_len: usize,
        endpoint_random: EndpointRandom,
    ) -> Self {
        let now = Instant::now();
        let transport = Arc::new(transport);
        let mut sc = ServerConfig::new(server_tls.build().unwrap(), b"token secret", crate::tls::SIM_UNIX_TIME);
        sc.transport = transport.clone();
        tweak(&mut sc);
        let mut rng = SeededRandom::new(seed);
        let mut server_ep = EndpointConfig::new(b"reset");
        server_ep.cid_generator = Arc::new(move || Box::new(RandomCidGenerator::new(server_cid_len)));
        let mut client_ep = EndpointConfig::new(b"creset");
        client_ep.cid_generator = Arc::new(move || Box::new(RandomCidGenerator::new(client_cid_len)));
        let (server, mut client) = match endpoint_random {
            EndpointRandom::Seeded => (
                Endpoint::with_rng(server_ep, Some(sc), now, Box::new(SeededRandom::new(rng.next_u64()))),
                Endpoint::with_rng(client_ep, None, now, Box::new(SeededRandom::new(rng.next_u64()))),
            ),
            EndpointRandom::System => (Endpoint::new(server_ep, Some(sc), now), Endpoint::new(client_ep, None, now)),
            EndpointRandom::Shared(s, c) => (Endpoint::with_rng(server_ep, Some(sc), now, Box::new(s)), Endpoint::with_rng(client_ep, None, now, Box::new(c))),
        };
        let cc = ClientConfig { tls: client_tls.build().unwrap(), transport, version };
        let server_addr: SocketAddr = "198.18.0.1:4433".parse().unwrap();
        let client_addr: SocketAddr = "198.18.0.2:50000".parse().unwrap();
        let client_conn = client.connect(now, &cc, server_addr, "localhost", bytes::Bytes::new()).unwrap();
        let client_config = cc;
        let links = [Link::new(LinkConfig::new(DEFAULT_DELAY), rng.next_u64()), Link::new(LinkConfig::new(DEFAULT_DELAY), rng.next_u64())];
        Self {
            now,
            server,
            client,
            server_addr,
            client_addr,
            client_conn,
            client_config,
            blackhole_client_to_server: false,
            blackhole_server_to_client: false,
            server_conn: None,
            rng,
            link_addrs: [HashMap::new(), HashMap::new()],
            link_sends: [0; 2],
            dropped_stale_destination: 0,
            server_sent_to: HashMap::new(),
            client_sent_to: HashMap::new(),
            hold_client_datagrams: 0,
            held: Vec::new(),
            tx_buf: vec![0u8; 65536],
            links,
            delivered: 0,
            blackholed: 0,
            server_sent: 0,
            client_sent: 0,
            ecn_mangle: [None, None],
            ecn_delivered: [[0; 4]; 2],
            start: now,
            trace: None,
        }
    }

    pub fn client(&mut self) -> &mut Connection {
        if self.client.connection_ref(self.client_conn).is_none() {
            let closed: Vec<_> = std::iter::from_fn(|| self.client.poll_closed()).collect();
            let sclosed: Vec<_> = std::iter::from_fn(|| self.server.poll_closed()).collect();
            panic!("client connection is gone: client {closed:?} server {sclosed:?}");
        }
        self.client.connection(self.client_conn).unwrap()
    }

    pub fn server(&mut self) -> &mut Connection {
        let h = self.server_conn.expect("server connection");
        if self.server.connection_ref(h).is_none() {
            let closed: Vec<_> = std::iter::from_fn(|| self.server.poll_closed()).collect();
            panic!("server connection is gone: {closed:?}; links {:?}", self.link_stats());
        }
        self.server.connection(h).unwrap()
    }

    /// Moves all pending transmits (the connections' and the endpoints'
    /// stateless replies) into flight.
    fn collect(&mut self) -> bool {
        let mut any = false;
        let mut buf = std::mem::take(&mut self.tx_buf);
        for from_client in [true, false] {
            let ep = if from_client { &mut self.client } else { &mut self.server };
            while let Some(t) = ep.poll_transmit(self.now, &mut buf) {
                any = true;
                let seg = t.segment_size.unwrap_or(t.size);
                let ecn = t.ecn.map_or(0, |e| e.bits());
                let addr = if from_client { self.client_addr } else { t.destination };
                for chunk in buf[..t.size].chunks(seg) {
                    if let Some(trace) = &mut self.trace {
                        trace.push(TraceEntry { at: self.now - self.start, from_client, data: chunk.to_vec() });
                    }
                    if from_client {
                        self.client_sent += chunk.len() as u64;
                        *self.client_sent_to.entry(t.destination).or_default() += chunk.len() as u64;
                    } else {
                        self.server_sent += chunk.len() as u64;
                        *self.server_sent_to.entry(addr).or_default() += chunk.len() as u64;
                    }
                    let i = usize::from(!from_client);
                    self.link_addrs[i].insert(self.link_sends[i], addr);
                    self.link_sends[i] += 1;
                    self.links[i].send_tagged(self.now, chunk.to_vec(), u64::from(ecn));
                }
            }
        }
        self.tx_buf = buf;
        any
    }

    fn deliver_due(&mut self) -> bool {
        let now = self.now;
        let mut due: Vec<_> = Vec::new();
        for (i, from_client) in [(0usize, true), (1, false)] {
            while let Some(d) = self.links[i].poll_deliver(now) {
                let a = self.link_addrs[i].get(&d.id).copied();
                let a = a.unwrap_or(if from_client { self.client_addr } else { self.server_addr });
                due.push((from_client, d.data, a, d.tag as u8));
            }
        }
        let any = !due.is_empty();
        for (from_client, mut d, addr, ecn) in due {
            let dir = usize::from(!from_client);
            let ecn = match self.ecn_mangle[dir] {
                Some(m) => m.apply(ecn, &mut self.rng),
                None => ecn,
            };
            let ecn_cp = quic_core::connection::EcnCodepoint::from_bits(ecn);
            if (from_client && self.blackhole_client_to_server) || (!from_client && self.blackhole_server_to_client) {
                self.blackholed += 1;
                continue;
            }
            if !from_client && addr != self.client_addr {
                self.dropped_stale_destination += 1;
                continue;
            }
            if from_client && self.hold_client_datagrams > 0 {
                self.hold_client_datagrams -= 1;
                self.held.push((addr, d));
                continue;
            }
            self.delivered += 1;
            if from_client {
                self.ecn_delivered[dir][usize::from(ecn & 3)] += 1;
                let ev = self.server.handle(now, addr, ecn_cp, &mut d);
                if let quic_core::endpoint::DatagramEvent::NewConnection(h) = ev {
                    self.server_conn.get_or_insert(h);
                }
            } else {
                self.ecn_delivered[dir][usize::from(ecn & 3)] += 1;
                self.client.handle(now, self.server_addr, ecn_cp, &mut d);
            }
        }
        any
    }

    fn next_event(&mut self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        for l in &self.links {
            if let Some(x) = l.next_delivery_time() {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        }
        for ep in [&mut self.client, &mut self.server] {
            if let Some(x) = ep.poll_timeout() {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        }
        t
    }

    fn fire_timers(&mut self) {
        self.client.handle_timeout(self.now);
        self.server.handle_timeout(self.now);
    }

    /// One step: send, deliver, fire timers, advance to the next event.
    /// Returns false when nothing is left to happen.
    pub fn step(&mut self) -> bool {
        self.advance(None)
    }

    /// Like [`Pair::step`], but simulated time never jumps past `limit`
    /// (to let a quiet connection sit for a while without its idle timer
    /// firing). Returns false once `limit` is reached with nothing to do.
    pub fn step_until(&mut self, limit: Instant) -> bool {
        self.advance(Some(limit))
    }

    /// Send, deliver, fire timers; with nothing else to do, move the clock
    /// to the next event (never past `limit`, up to it when idle).
    fn advance(&mut self, limit: Option<Instant>) -> bool {
        let sent = self.collect();
        let got = self.deliver_due();
        if sent || got {
            return true;
        }
        self.fire_timers();
        if self.collect() {
            return true;
        }
        match (self.next_event(), limit) {
            (Some(t), _) if t <= self.now => {
                self.fire_timers();
                true
            }
            (Some(t), None) => {
                self.now = t;
                true
            }
            (Some(t), Some(l)) if t <= l => {
                self.now = t;
                true
            }
            (_, Some(l)) if self.now < l => {
                self.now = l;
                true
            }
            _ => false,
        }
    }

    /// Steps until `cond` holds; panics after `limit` simulated time.
    pub fn run_until(&mut self, limit: Duration, mut cond: impl FnMut(&mut Self) -> bool) {
        let end = self.now + limit;
        let mut steps = 0u64;
        while !cond(self) {
            assert!(self.now < end, "condition not met within {limit:?} of simulated time");
            steps += 1;
            assert!(steps < 5_000_000, "too many steps");
            if !self.step() {
                assert!(cond(self), "network went idle before the condition held");
                return;
            }
        }
    }

    /// Delivers `data` to the server now as if sent from `from` (a held
    /// datagram, or a forged copy).
    pub fn inject_to_server(&mut self, from: SocketAddr, mut data: Vec<u8>) {
        self.server.handle(self.now, from, None, &mut data);
    }

    /// Gives the links new behaviour from now on (client→server,
    /// server→client); datagrams in flight keep their schedule.
    pub fn set_links(&mut self, client_to_server: LinkConfig, server_to_client: LinkConfig) {
        self.links[0].set_config(client_to_server);
        self.links[1].set_config(server_to_client);
    }

    /// Random loss of each datagram with probability `loss`, both ways.
    pub fn set_loss(&mut self, loss: f64) {
        for l in &mut self.links {
            let mut c = l.config().clone();
            c.loss = loss;
            l.set_config(c);
        }
    }

    /// Every datagram gets a random extra delay in `[0, jitter]`, both
    /// ways, so later datagrams overtake earlier ones.
    pub fn set_jitter(&mut self, jitter: Duration) {
        for l in &mut self.links {
            let c = l.config().clone().with_reorder_range(1.0, Duration::ZERO, jitter);
            l.set_config(c);
        }
    }

    pub fn link_stats(&self) -> [LinkStats; 2] {
        [self.links[0].stats(), self.links[1].stats()]
    }

    /// Datagrams lost on the way, both directions: the links' drops and
    /// the blackhole switches'.
    pub fn dropped(&self) -> u64 {
        self.blackholed + self.links[0].stats().dropped() + self.links[1].stats().dropped()
    }

    /// Opens a second client connection to the same server with the same
    /// TLS configuration (so its session cache is shared).
    pub fn reconnect(&mut self) {
        let cc = self.client_config.clone();
        self.client_conn = self.client.connect(self.now, &cc, self.server_addr, "localhost", bytes::Bytes::new()).unwrap();
        self.server_conn = None;
    }

    pub fn handshake(&mut self) {
        self.run_until(Duration::from_secs(30), |p| p.server_conn.is_some() && !p.client().is_handshaking() && !p.server().is_handshaking());
    }
}
