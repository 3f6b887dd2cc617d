//! A user-space UDP relay between a QUIC client and a QUIC server that
//! applies the quic-interop-runner's network scenarios
//! (`/work/shared/specs/INTEROP_TEST_CASES.md`, "Scenario semantics" and
//! "Reproducing locally", step 3) and records what each side sees.
//!
//! ```text
//!  client ──▶ listen ──[to_server Link]──▶ flow upstream socket ──▶ server
//!  client ◀── listen ◀──[to_client Link]── flow upstream socket ◀── server
//! ```
//!
//! - **Links**: the two directions are `quicpro_sim::link::Link`s, the same
//!   impairment model as the in-memory tests, driven by real time: a
//!   datagram goes into `Link::send_tagged` at the time the kernel received
//!   it (`SO_TIMESTAMPNS`), and is written out once `Link::poll_deliver`
//!   hands it back. The kernel's time, not the time the relay got to read
//!   it, keeps a paced sender paced on the link when the relay thread is
//!   scheduled late on a busy machine (otherwise a backlog read at once is
//!   a burst that overflows the 25-packet queue). One link per
//!   direction is shared by all flows, as the ns-3 point-to-point link is.
//!   Drop and corruption decisions depend only on the seed and the order of
//!   datagrams; timing is real, so it varies by the scheduler's latency.
//! - **NAT**: like the runner's rebind scenario (spec, "Scenario
//!   semantics", rebind), each client source address gets a flow with its
//!   own upstream socket on an ephemeral port, connected to the server, so
//!   the server sees one address per client. At a rebind every flow gets a
//!   new upstream socket (new port; with `change_addr` and an IPv4 server
//!   also a new address 127.0.0.x, x = 2, 3, …) and the old one is closed
//!   at once: the server's packets to the old binding are lost. Those still
//!   queued on the old socket are counted (`RelayStats::dead_binding`) and
//!   recorded in the server-side trace. A datagram still on the
//!   client→server link at a rebind leaves from the new binding.
//! - **ECN**: the codepoint of each received datagram is read from the
//!   `IP_TOS` / `IPV6_TCLASS` control message and set again on the way out,
//!   optionally mangled ([`EcnMangle`]).
//! - **Traces**: the client-side pcap holds the client's datagrams as sent
//!   (before impairment; client → listen address) and the server's as
//!   delivered to the client (listen address → client). The server-side
//!   pcap holds the client's datagrams as delivered to the server (upstream
//!   address → server) and the server's as sent. A received datagram's
//!   timestamp is the kernel's receive time (as the link sees it), a
//!   delivered one's the wall clock just before the relay sent it (so an
//!   answer always sorts after what provoked it); records are
//!   in the relay's processing order, and a record read late may carry a
//!   time a little before the one written just earlier. The spec's checks run on
//!   the same two vantage points (spec, "Common rules", Checks).
//! - **Blackholes** count from the relay's start (ns-3 counts from the
//!   simulator's start), or from the first datagram with
//!   [`Epoch::FirstDatagram`]; rebinds always count from the start.
//!
//! The relay runs on its own thread with non-blocking sockets and
//! `ppoll(2)`, sleeping until the next delivery, rebind or socket event.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use quic_core::rand::SeededRandom;
use quicpro_sim::link::{Link, LinkConfig, LinkStats, Scenario};

use crate::pcap;

/// Flows kept at most; the least recently active one is evicted beyond.
pub const DEFAULT_MAX_FLOWS: usize = 4096;

/// Datagrams one link may hold in flight. A link with a bandwidth and a
/// bounded queue never gets near this; it bounds memory for links without
/// a queue (e.g. a long delay at infinite bandwidth). Excess datagrams are
/// dropped before the link and counted in [`DirectionStats::overflow`].
pub const MAX_IN_FLIGHT: usize = 1 << 16;

/// Largest UDP payload read (IPv4 limit, also the jumbo-less IPv6 limit).
const RECV_BUF: usize = 65_535;

/// Datagrams read from one socket per loop turn, so that one busy socket
/// cannot starve deliveries.
const RECV_BUDGET: usize = 256;
/// The oldest kernel receive time believed: an older stamp means the wall
/// clock stepped, and the datagram is taken as received now minus this.
const MAX_STAMP_AGE: Duration = Duration::from_secs(1);

/// How long `rebind_now` waits for the relay thread to confirm.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the traces are flushed while running.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// NAT rebinding (spec, "Scenario semantics", rebind: `--first-rebind`,
/// `--rebind-freq`, `--rebind-addr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rebind {
    /// First rebind, after the relay's start.
    pub first: Duration,
    /// Interval between rebinds; zero rebinds only once.
    pub every: Duration,
    /// Also change the source address (IPv4 servers only: 127.0.0.x).
    pub change_addr: bool,
}

pub use quicpro_sim::link::{BadEcnMangle, EcnMangle};

/// Where the blackhole windows count from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Epoch {
    /// The relay's start, as ns-3 counts from the simulator's start.
    #[default]
    RelayStart,
    /// Each direction's first datagram.
    FirstDatagram,
}

/// What the relay does.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Where clients send to (port 0 picks one; IPv4 or IPv6).
    pub listen: SocketAddr,
    /// The server's address.
    pub server: SocketAddr,
    /// Client → server link.
    pub to_server: LinkConfig,
    /// Server → client link.
    pub to_client: LinkConfig,
    pub seed: u64,
    /// Client-side trace.
    pub client_pcap: Option<PathBuf>,
    /// Server-side trace.
    pub server_pcap: Option<PathBuf>,
    pub rebind: Option<Rebind>,
    /// ECN rewriting on the client → server direction.
    pub ecn_mangle_to_server: Option<EcnMangle>,
    /// ECN rewriting on the server → client direction.
    pub ecn_mangle_to_client: Option<EcnMangle>,
    pub max_flows: usize,
    pub epoch: Epoch,
    /// A second address clients may send to (the server's preferred
    /// address in the connectionmigration case, RFC 9000 §9.6): datagrams
    /// to it take their own flows to the server, and answers on those
    /// flows leave from it.
    pub second_listen: Option<SocketAddr>,
}

impl RelayConfig {
    /// A relay with perfect links (no delay, no impairment).
    pub fn new(listen: SocketAddr, server: SocketAddr) -> Self {
        Self {
            listen,
            server,
            to_server: LinkConfig::default(),
            to_client: LinkConfig::default(),
            seed: 0,
            client_pcap: None,
            server_pcap: None,
            rebind: None,
            ecn_mangle_to_server: None,
            ecn_mangle_to_client: None,
            max_flows: DEFAULT_MAX_FLOWS,
            epoch: Epoch::RelayStart,
            second_listen: None,
        }
    }

    pub fn with_second_listen(mut self, addr: SocketAddr) -> Self {
        self.second_listen = Some(addr);
        self
    }

    pub fn with_scenario(self, scenario: &Scenario) -> Self {
        let (to_server, to_client) = scenario.links();
        self.with_links(to_server, to_client)
    }

    pub fn with_links(mut self, to_server: LinkConfig, to_client: LinkConfig) -> Self {
        self.to_server = to_server;
        self.to_client = to_client;
        self
    }

    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    pub fn with_client_pcap(mut self, path: impl Into<PathBuf>) -> Self {
        self.client_pcap = Some(path.into());
        self
    }

    pub fn with_server_pcap(mut self, path: impl Into<PathBuf>) -> Self {
        self.server_pcap = Some(path.into());
        self
    }

    pub fn with_rebind(mut self, rebind: Rebind) -> Self {
        self.rebind = Some(rebind);
        self
    }

    /// The same ECN rewriting both ways.
    pub fn with_ecn_mangle(mut self, mangle: EcnMangle) -> Self {
        self.ecn_mangle_to_server = Some(mangle);
        self.ecn_mangle_to_client = Some(mangle);
        self
    }

    pub fn with_max_flows(mut self, max_flows: usize) -> Self {
        self.max_flows = max_flows;
        self
    }

    pub fn with_epoch(mut self, epoch: Epoch) -> Self {
        self.epoch = epoch;
        self
    }
}

/// Counters of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectionStats {
    /// Datagrams read from the sending side's socket.
    pub received: u64,
    pub received_bytes: u64,
    /// Datagrams written to the receiving side (duplicates included).
    pub delivered: u64,
    pub delivered_bytes: u64,
    /// The link's own counters: sends, each drop reason, corruption,
    /// duplication, reordering.
    pub link: LinkStats,
    /// Dropped before the link because [`MAX_IN_FLIGHT`] was reached.
    pub overflow: u64,
    /// Out of the link, but its flow was evicted meanwhile.
    pub flow_gone: u64,
    /// Writing out failed (e.g. a full socket buffer).
    pub send_errors: u64,
    /// Received datagrams by ECN codepoint (Not-ECT, ECT(1), ECT(0), CE).
    pub ecn_received: [u64; 4],
    /// Delivered datagrams whose codepoint the mangling changed.
    pub ecn_mangled: u64,
}

/// Why the relay thread stopped on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayFailure {
    /// `ppoll` failed with this error.
    Poll(io::ErrorKind),
    /// The relay thread panicked.
    Panicked,
}

/// Counters of the whole relay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayStats {
    pub to_server: DirectionStats,
    pub to_client: DirectionStats,
    /// Flows now.
    pub flows: usize,
    pub flows_created: u64,
    /// Flows dropped to stay within `max_flows`.
    pub flows_evicted: u64,
    /// Upstream sockets that could not be opened (new flows or rebinds).
    pub upstream_errors: u64,
    /// Rebind events (each rebinds every flow).
    pub rebinds: u64,
    /// Server datagrams to a binding that a rebind closed (those still
    /// queued on the old socket).
    pub dead_binding: u64,
    /// Datagrams larger than the receive buffer (dropped).
    pub truncated: u64,
    /// Trace records that could not be written.
    pub pcap_errors: u64,
    pub failure: Option<RelayFailure>,
}

impl fmt::Display for RelayStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, d) in [("to_server", &self.to_server), ("to_client", &self.to_client)] {
            let l = &d.link;
            writeln!(
                f,
                "{name}: received {} ({} B), delivered {} ({} B), dropped {} \
                 (rate {}, list {}, blackhole {}, queue {}, loss {}, mtu {}, overflow {}, flow gone {}), \
                 corrupted-rate {} (VN spared {}), bit-flipped {}, duplicated {}, reordered {}, \
                 send errors {}, ecn received [not-ect {}, ect1 {}, ect0 {}, ce {}], ecn mangled {}",
                d.received,
                d.received_bytes,
                d.delivered,
                d.delivered_bytes,
                l.dropped() + d.overflow + d.flow_gone,
                l.dropped_rate,
                l.dropped_list,
                l.dropped_blackhole,
                l.dropped_queue,
                l.dropped_loss,
                l.dropped_mtu,
                d.overflow,
                d.flow_gone,
                l.corrupted_rate,
                l.corrupt_rate_spared_vn,
                l.corrupted,
                l.duplicated,
                l.reordered,
                d.send_errors,
                d.ecn_received[0],
                d.ecn_received[1],
                d.ecn_received[2],
                d.ecn_received[3],
                d.ecn_mangled,
            )?;
        }
        write!(
            f,
            "flows: {} now, {} created, {} evicted, {} upstream errors; rebinds {}, dead binding {}; \
             truncated {}, pcap errors {}",
            self.flows, self.flows_created, self.flows_evicted, self.upstream_errors, self.rebinds, self.dead_binding, self.truncated, self.pcap_errors,
        )?;
        if let Some(failure) = self.failure {
            write!(f, "\nfailure: {failure:?}")?;
        }
        Ok(())
    }
}

/// The relay; see the module documentation.
#[derive(Debug)]
pub struct Relay;

impl Relay {
    /// Binds the listen socket, opens the traces and starts the relay
    /// thread.
    pub fn start(config: RelayConfig) -> io::Result<RelayHandle> {
        if config.server.ip().is_unspecified() || config.server.port() == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("server address {} is not a destination", config.server)));
        }
        let listen = UdpSocket::bind(config.listen)?;
        listen.set_nonblocking(true)?;
        enable_recv_meta(&listen, config.listen.is_ipv4());
        let listen_addr = listen.local_addr()?;
        let second = match config.second_listen {
            Some(a) => {
                let s = UdpSocket::bind(a)?;
                s.set_nonblocking(true)?;
                enable_recv_meta(&s, a.is_ipv4());
                let addr = s.local_addr()?;
                Some((s, addr))
            }
            None => None,
        };
        let second_addr = second.as_ref().map(|(_, a)| *a);
        let open = |p: &Option<PathBuf>| p.as_deref().map(pcap::Writer::create).transpose();
        let client_pcap = open(&config.client_pcap)?;
        let server_pcap = open(&config.server_pcap)?;
        let (wake_tx, wake_rx) = UnixDatagram::pair()?;
        wake_tx.set_nonblocking(true)?;
        wake_rx.set_nonblocking(true)?;
        let (cmd_tx, cmd_rx) = mpsc::channel();
        let shared = Arc::new(Mutex::new(RelayStats::default()));

        let start = Instant::now();
        let mut to_server = Link::new(config.to_server.clone(), config.seed);
        // Distinct, unrelated streams per direction, as sim::Network does.
        let mut to_client = Link::new(config.to_client.clone(), config.seed ^ 0xa5a5_5a5a_c3c3_3c3c);
        if config.epoch == Epoch::RelayStart {
            to_server.set_epoch(start);
            to_client.set_epoch(start);
        }
        let engine = Engine {
            listen,
            listen_addr,
            second,
            server: config.server,
            links: [to_server, to_client],
            last_arrival: [None; 2],
            mangle: [config.ecn_mangle_to_server, config.ecn_mangle_to_client],
            mangle_rng: SeededRandom::new(config.seed ^ 0x3c3c_c3c3_5a5a_a5a5),
            flows: HashMap::new(),
            by_client: HashMap::new(),
            next_flow_id: 1,
            max_flows: config.max_flows.max(1),
            client_pcap,
            server_pcap,
            rebind: config.rebind,
            next_rebind: config.rebind.map(|r| start + r.first),
            stats: RelayStats::default(),
            buf: vec![0; RECV_BUF],
            shared: Arc::clone(&shared),
            commands: cmd_rx,
            wake: wake_rx,
        };
        let thread = std::thread::Builder::new().name("quicpro-relay".into()).spawn(move || engine.run())?;
        Ok(RelayHandle { addr: listen_addr, second_addr, shared, commands: cmd_tx, wake: wake_tx, thread: Some(thread) })
    }
}

enum Command {
    Rebind(mpsc::Sender<()>),
    Stop,
}

/// A running relay. Dropping it stops the relay too.
#[derive(Debug)]
pub struct RelayHandle {
    addr: SocketAddr,
    second_addr: Option<SocketAddr>,
    shared: Arc<Mutex<RelayStats>>,
    commands: mpsc::Sender<Command>,
    wake: UnixDatagram,
    thread: Option<JoinHandle<RelayStats>>,
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Rebind(_) => "Rebind",
            Self::Stop => "Stop",
        })
    }
}

impl RelayHandle {
    /// The address clients send to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The second listen address, if configured.
    pub fn second_addr(&self) -> Option<SocketAddr> {
        self.second_addr
    }

    /// The counters now (updated by the relay thread every loop turn).
    pub fn stats(&self) -> RelayStats {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Rebinds every flow now (as a timed rebind does) and returns once the
    /// relay thread has done it.
    pub fn rebind_now(&self) -> io::Result<()> {
        let (tx, rx) = mpsc::channel();
        self.send(Command::Rebind(tx))?;
        rx.recv_timeout(COMMAND_TIMEOUT).map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "relay thread did not rebind"))
    }

    fn send(&self, cmd: Command) -> io::Result<()> {
        self.commands.send(cmd).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "relay thread has stopped"))?;
        match self.wake.send(&[1]) {
            // A full wake socket already has a wake-up pending.
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
            _ => Ok(()),
        }
    }

    /// Stops the relay, flushes the traces and returns the final counters.
    pub fn stop(mut self) -> RelayStats {
        self.shutdown()
    }

    fn shutdown(&mut self) -> RelayStats {
        // The thread may already be gone (failure); the join tells.
        let _ = self.send(Command::Stop);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(stats)) => stats,
            Some(Err(_)) => {
                let mut stats = self.stats();
                stats.failure = Some(RelayFailure::Panicked);
                stats
            }
            None => self.stats(),
        }
    }
}

impl Drop for RelayHandle {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shutdown();
        }
    }
}

// ---- the relay thread ------------------------------------------------------

const TO_SERVER: usize = 0;
const TO_CLIENT: usize = 1;

/// One client's NAT binding.
#[derive(Debug)]
struct Flow {
    client: SocketAddr,
    /// Which listen socket the client sends to (0: the first, 1: the second).
    via: usize,
    upstream: UdpSocket,
    /// The upstream socket's address as the server sees it.
    upstream_addr: SocketAddr,
    last_active: Instant,
}

struct Engine {
    listen: UdpSocket,
    listen_addr: SocketAddr,
    /// `RelayConfig::second_listen`, bound.
    second: Option<(UdpSocket, SocketAddr)>,
    server: SocketAddr,
    /// `[TO_SERVER, TO_CLIENT]`.
    links: [Link; 2],
    /// The link time of the last datagram put on each link.
    last_arrival: [Option<Instant>; 2],
    mangle: [Option<EcnMangle>; 2],
    mangle_rng: SeededRandom,
    flows: HashMap<u64, Flow>,
    /// By client address and listen socket.
    by_client: HashMap<(SocketAddr, usize), u64>,
    /// Flow ids are never reused, so a datagram in flight for an evicted
    /// flow cannot reach a newer one.
    next_flow_id: u64,
    max_flows: usize,
    client_pcap: Option<pcap::Writer>,
    server_pcap: Option<pcap::Writer>,
    rebind: Option<Rebind>,
    next_rebind: Option<Instant>,
    stats: RelayStats,
    buf: Vec<u8>,
    shared: Arc<Mutex<RelayStats>>,
    commands: mpsc::Receiver<Command>,
    wake: UnixDatagram,
}

/// A link tag: the flow id and the ECN codepoint as received.
fn tag(flow: u64, ecn: u8) -> u64 {
    flow << 2 | u64::from(ecn & 3)
}

fn untag(tag: u64) -> (u64, u8) {
    (tag >> 2, (tag & 3) as u8)
}

impl Engine {
    fn run(mut self) -> RelayStats {
        let mut pollfds: Vec<libc::pollfd> = Vec::new();
        let mut polled_flows: Vec<u64> = Vec::new();
        let mut next_flush = Instant::now() + FLUSH_EVERY;
        'run: loop {
            let now = Instant::now();
            self.deliver_due(now);
            if let (Some(at), Some(rebind)) = (self.next_rebind, self.rebind) {
                if now >= at {
                    self.rebind_all();
                    self.next_rebind = (!rebind.every.is_zero()).then(|| {
                        // Catch up without a burst of rebinds if we slept long.
                        let mut next = at + rebind.every;
                        while next <= now {
                            next += rebind.every;
                        }
                        next
                    });
                }
            }
            if now >= next_flush {
                self.flush();
                next_flush = now + FLUSH_EVERY;
            }
            self.publish();

            let wake_at = [self.links[TO_SERVER].next_delivery_time(), self.links[TO_CLIENT].next_delivery_time(), self.next_rebind, Some(next_flush)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(next_flush);
            let timeout = wake_at.saturating_duration_since(Instant::now());

            pollfds.clear();
            polled_flows.clear();
            let entry = |fd: RawFd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
            pollfds.push(entry(self.wake.as_raw_fd()));
            pollfds.push(entry(self.listen.as_raw_fd()));
            if let Some((s, _)) = &self.second {
                pollfds.push(entry(s.as_raw_fd()));
            }
            let first_flow = pollfds.len();
            for (&id, flow) in &self.flows {
                polled_flows.push(id);
                pollfds.push(entry(flow.upstream.as_raw_fd()));
            }
            if let Err(e) = ppoll(&mut pollfds, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.stats.failure = Some(RelayFailure::Poll(e.kind()));
                    break 'run;
                }
                continue;
            }
            let ready = |p: &libc::pollfd| p.revents != 0;

            if pollfds.first().is_some_and(ready) {
                let mut byte = [0u8; 16];
                while self.wake.recv(&mut byte).is_ok() {}
                while let Ok(cmd) = self.commands.try_recv() {
                    match cmd {
                        Command::Stop => break 'run,
                        Command::Rebind(done) => {
                            self.rebind_all();
                            let _ = done.send(());
                        }
                    }
                }
            }
            if pollfds.get(1).is_some_and(ready) {
                self.read_clients(0);
            }
            if self.second.is_some() && pollfds.get(2).is_some_and(ready) {
                self.read_clients(1);
            }
            for (i, id) in polled_flows.iter().enumerate() {
                if pollfds.get(i + first_flow).is_some_and(ready) {
                    self.read_server(*id);
                }
            }
        }
        self.flush();
        self.publish();
        self.stats_snapshot()
    }

    fn stats_snapshot(&self) -> RelayStats {
        let mut s = self.stats.clone();
        s.to_server.link = self.links[TO_SERVER].stats();
        s.to_client.link = self.links[TO_CLIENT].stats();
        s.flows = self.flows.len();
        s
    }

    fn publish(&self) {
        let snapshot = self.stats_snapshot();
        *self.shared.lock().unwrap_or_else(PoisonError::into_inner) = snapshot;
    }

    fn flush(&mut self) {
        for w in [&mut self.client_pcap, &mut self.server_pcap].into_iter().flatten() {
            if w.flush().is_err() {
                self.stats.pcap_errors += 1;
            }
        }
    }

    /// Writes one record; `time` is the kernel's receive time of a received
    /// datagram (the time the link model uses too), now if `None`.
    fn record(writer: &mut Option<pcap::Writer>, errors: &mut u64, src: SocketAddr, dst: SocketAddr, ecn: u8, payload: &[u8], time: Option<SystemTime>) {
        if let Some(w) = writer {
            let rec = pcap::Record { time: time.unwrap_or_else(SystemTime::now), src, dst, ecn, payload: payload.to_vec() };
            if w.write(&rec).is_err() {
                *errors += 1;
            }
        }
    }

    /// Puts a received datagram on a link at the kernel's receive time.
    fn enqueue(&mut self, dir: usize, flow: u64, ecn: u8, len: usize, stamp: Option<SystemTime>) {
        let now = self.arrival(dir, stamp);
        let data = self.buf.get(..len).unwrap_or_default().to_vec();
        let stats = self.dir_stats(dir);
        stats.received += 1;
        stats.received_bytes += len as u64;
        if let Some(n) = stats.ecn_received.get_mut(usize::from(ecn & 3)) {
            *n += 1;
        }
        if self.links[dir].in_flight() >= MAX_IN_FLIGHT {
            self.dir_stats(dir).overflow += 1;
            return;
        }
        self.links[dir].send_tagged(now, data, tag(flow, ecn));
    }

    /// The link time of a datagram the kernel stamped `stamp`: as long ago
    /// as the stamp is old (at most `MAX_STAMP_AGE`, against clock steps),
    /// and never before the previous datagram on the same link, which
    /// takes them in order.
    fn arrival(&mut self, dir: usize, stamp: Option<SystemTime>) -> Instant {
        let now = Instant::now();
        let age = stamp.and_then(|s| SystemTime::now().duration_since(s).ok()).unwrap_or_default().min(MAX_STAMP_AGE);
        let at = now.checked_sub(age).unwrap_or(now);
        let at = self.last_arrival[dir].map_or(at, |last| last.max(at));
        self.last_arrival[dir] = Some(at);
        at
    }

    fn dir_stats(&mut self, dir: usize) -> &mut DirectionStats {
        if dir == TO_SERVER {
            &mut self.stats.to_server
        } else {
            &mut self.stats.to_client
        }
    }

    /// Reads the clients' datagrams from listen socket `via`.
    fn read_clients(&mut self, via: usize) {
        for _ in 0..RECV_BUDGET {
            let (socket, listen_addr) = listen_socket(&self.listen, self.listen_addr, &self.second, via);
            let r = match recv_ecn(socket, &mut self.buf) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // ICMP errors and the like: nothing to relay, keep reading.
                Err(_) => continue,
            };
            if r.truncated {
                self.stats.truncated += 1;
                continue;
            }
            let payload = self.buf.get(..r.len).unwrap_or_default();
            Self::record(&mut self.client_pcap, &mut self.stats.pcap_errors, r.src, listen_addr, r.ecn, payload, r.stamp);
            let Some(flow) = self.flow_for(r.src, via) else {
                continue;
            };
            self.enqueue(TO_SERVER, flow, r.ecn, r.len, r.stamp);
        }
    }

    /// Reads the server's datagrams to one flow's upstream socket.
    fn read_server(&mut self, id: u64) {
        for _ in 0..RECV_BUDGET {
            let Some(flow) = self.flows.get_mut(&id) else {
                return;
            };
            let r = match recv_ecn(&flow.upstream, &mut self.buf) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // ECONNREFUSED while the server is not up yet, and the like.
                Err(_) => continue,
            };
            let upstream_addr = flow.upstream_addr;
            flow.last_active = Instant::now();
            if r.truncated {
                self.stats.truncated += 1;
                continue;
            }
            let payload = self.buf.get(..r.len).unwrap_or_default();
            Self::record(&mut self.server_pcap, &mut self.stats.pcap_errors, r.src, upstream_addr, r.ecn, payload, r.stamp);
            self.enqueue(TO_CLIENT, id, r.ecn, r.len, r.stamp);
        }
    }

    /// The flow of a client address, created (evicting the least recently
    /// active one beyond the cap) if new.
    fn flow_for(&mut self, client: SocketAddr, via: usize) -> Option<u64> {
        let now = Instant::now();
        if let Some(&id) = self.by_client.get(&(client, via)) {
            if let Some(flow) = self.flows.get_mut(&id) {
                flow.last_active = now;
                return Some(id);
            }
        }
        if self.flows.len() >= self.max_flows {
            let oldest = self.flows.iter().min_by_key(|(_, f)| f.last_active).map(|(&id, _)| id);
            if let Some(id) = oldest {
                if let Some(old) = self.flows.remove(&id) {
                    self.by_client.remove(&(old.client, old.via));
                    self.stats.flows_evicted += 1;
                }
            }
        }
        let (upstream, upstream_addr) = match open_upstream(self.server, None) {
            Ok(s) => s,
            Err(_) => {
                self.stats.upstream_errors += 1;
                return None;
            }
        };
        let id = self.next_flow_id;
        self.next_flow_id += 1;
        self.flows.insert(id, Flow { client, via, upstream, upstream_addr, last_active: now });
        self.by_client.insert((client, via), id);
        self.stats.flows_created += 1;
        Some(id)
    }

    /// Gives every flow a new upstream socket and closes the old one (spec,
    /// "Scenario semantics", rebind).
    fn rebind_all(&mut self) {
        self.stats.rebinds += 1;
        let change_addr = self.rebind.is_some_and(|r| r.change_addr);
        let bind_ip = match self.server.ip() {
            IpAddr::V4(_) if change_addr => {
                // 127.0.0.2, .3, … .254, then around again: all of 127/8 is
                // loopback on Linux.
                let x = 2 + ((self.stats.rebinds - 1) % 253) as u8;
                Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, x)))
            }
            _ => None,
        };
        let ids: Vec<u64> = self.flows.keys().copied().collect();
        for id in ids {
            let (socket, addr) = match open_upstream(self.server, bind_ip) {
                Ok(s) => s,
                Err(_) => {
                    // Keep the old binding rather than lose the flow.
                    self.stats.upstream_errors += 1;
                    continue;
                }
            };
            let Some(flow) = self.flows.get_mut(&id) else {
                continue;
            };
            let old = mem::replace(&mut flow.upstream, socket);
            let old_addr = mem::replace(&mut flow.upstream_addr, addr);
            // What the server already sent to the old binding is lost:
            // count it and keep it in the server-side trace (it was sent).
            loop {
                match recv_ecn(&old, &mut self.buf) {
                    Ok(r) => {
                        self.stats.dead_binding += 1;
                        let payload = self.buf.get(..r.len).unwrap_or_default();
                        Self::record(&mut self.server_pcap, &mut self.stats.pcap_errors, r.src, old_addr, r.ecn, payload, r.stamp);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {}
                }
            }
            drop(old);
        }
    }

    /// Writes out every datagram the links hand back by `now`.
    fn deliver_due(&mut self, now: Instant) {
        for dir in [TO_SERVER, TO_CLIENT] {
            while let Some(d) = self.links[dir].poll_deliver(now) {
                let (flow_id, received_ecn) = untag(d.tag);
                let mut ecn = received_ecn;
                if let Some(m) = self.mangle[dir] {
                    ecn = m.apply(ecn, &mut self.mangle_rng);
                    if ecn != received_ecn {
                        self.dir_stats(dir).ecn_mangled += 1;
                    }
                }
                let Some(flow) = self.flows.get(&flow_id) else {
                    self.dir_stats(dir).flow_gone += 1;
                    continue;
                };
                // Stamped before it leaves: the answer it provokes carries a
                // kernel receive time, and must sort after it even when
                // this thread is descheduled between sending and recording.
                let at = Some(SystemTime::now());
                let sent = if dir == TO_SERVER {
                    let r = send_ecn(&flow.upstream, &d.data, None, ecn, ecn_uses_ip_level(self.server));
                    Self::record(&mut self.server_pcap, &mut self.stats.pcap_errors, flow.upstream_addr, self.server, ecn, &d.data, at);
                    r
                } else {
                    let client = flow.client;
                    let (socket, listen_addr) = listen_socket(&self.listen, self.listen_addr, &self.second, flow.via);
                    let r = send_ecn(socket, &d.data, Some(client), ecn, ecn_uses_ip_level(client));
                    Self::record(&mut self.client_pcap, &mut self.stats.pcap_errors, listen_addr, client, ecn, &d.data, at);
                    r
                };
                let stats = self.dir_stats(dir);
                match sent {
                    Ok(_) => {
                        stats.delivered += 1;
                        stats.delivered_bytes += d.data.len() as u64;
                    }
                    Err(_) => stats.send_errors += 1,
                }
            }
        }
    }
}

// ---- sockets -----------------------------------------------------------------

/// Listen socket `via` (0: the first, 1: the second) and its address.
fn listen_socket<'a>(listen: &'a UdpSocket, listen_addr: SocketAddr, second: &'a Option<(UdpSocket, SocketAddr)>, via: usize) -> (&'a UdpSocket, SocketAddr) {
    match (second, via) {
        (Some((s, a)), 1) => (s, *a),
        _ => (listen, listen_addr),
    }
}

/// An upstream socket connected to `server`, bound to `ip` (or the
/// unspecified address of the server's family) on an ephemeral port, with
/// the address the server will see.
fn open_upstream(server: SocketAddr, ip: Option<IpAddr>) -> io::Result<(UdpSocket, SocketAddr)> {
    let ip = ip.unwrap_or(match server {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    });
    let socket = UdpSocket::bind(SocketAddr::new(ip, 0))?;
    // Connected: only the server's datagrams come in (the NAT's filtering),
    // and the local address becomes concrete for the trace.
    socket.connect(server)?;
    socket.set_nonblocking(true)?;
    enable_recv_meta(&socket, server.is_ipv4());
    let addr = socket.local_addr()?;
    Ok((socket, addr))
}

/// Whether the ECN codepoint for datagrams to `dst` goes in an `IP_TOS`
/// control message (IPv4 and IPv4-mapped destinations) rather than
/// `IPV6_TCLASS`.
fn ecn_uses_ip_level(dst: SocketAddr) -> bool {
    match dst {
        SocketAddr::V4(_) => true,
        SocketAddr::V6(a) => a.ip().to_ipv4_mapped().is_some(),
    }
}

fn setsockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: the option value is a live c_int of the size passed.
    let rc = unsafe { libc::setsockopt(fd, level, name, (&value as *const libc::c_int).cast(), mem::size_of::<libc::c_int>() as libc::socklen_t) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Asks for the ECN bits and the receive time of received datagrams as
/// control messages. On an IPv6 socket both ECN options: IPv4-mapped
/// traffic reports `IP_TOS`. Failures only mean the codepoint reads as
/// Not-ECT and the time as the relay's reading time.
fn enable_recv_meta(socket: &UdpSocket, ipv4: bool) {
    let fd = socket.as_raw_fd();
    let _ = setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_RECVTOS, 1);
    if !ipv4 {
        let _ = setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVTCLASS, 1);
    }
    // Receive timestamps (see the module docs, Links); without them the
    // relay falls back to the time it reads a datagram.
    let _ = setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1);
}

/// One received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Received {
    len: usize,
    src: SocketAddr,
    ecn: u8,
    truncated: bool,
    /// The kernel's receive time (`SCM_TIMESTAMPNS`), if it gave one.
    stamp: Option<SystemTime>,
}

/// 8-byte aligned room for control messages: `IP_TOS`, `IPV6_TCLASS` and
/// a timestamp (24 + 24 + 32 bytes).
type CmsgBuf = [u64; 16];

/// `recvmsg` with the ECN codepoint from the control messages.
fn recv_ecn(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<Received> {
    // SAFETY: all-zero is a valid sockaddr_storage and msghdr.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut control: CmsgBuf = [0; 16];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_name = (&mut storage as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = mem::size_of::<CmsgBuf>() as _;
    // SAFETY: every pointer in msg refers to a live local buffer of the
    // stated length.
    let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut ecn = 0u8;
    let mut stamp = None;
    // SAFETY: the kernel filled msg_control up to msg_controllen; the CMSG
    // macros stay within it, and each data read matches its header's type.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let (level, kind) = ((*cmsg).cmsg_level, (*cmsg).cmsg_type);
            let data = libc::CMSG_DATA(cmsg);
            if level == libc::IPPROTO_IP && kind == libc::IP_TOS {
                ecn = *data & 3;
            } else if level == libc::IPPROTO_IPV6 && kind == libc::IPV6_TCLASS {
                let tclass = std::ptr::read_unaligned(data.cast::<libc::c_int>());
                ecn = (tclass & 3) as u8;
            } else if level == libc::SOL_SOCKET && kind == libc::SCM_TIMESTAMPNS {
                let ts = std::ptr::read_unaligned(data.cast::<libc::timespec>());
                if let (Ok(secs), Ok(nanos)) = (u64::try_from(ts.tv_sec), u32::try_from(ts.tv_nsec)) {
                    stamp = SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, nanos));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    let src = sockaddr_to_std(&storage).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "datagram from an unknown address family"))?;
    Ok(Received { len: n as usize, src, ecn, truncated: msg.msg_flags & libc::MSG_TRUNC != 0, stamp })
}

/// `sendmsg` with the ECN codepoint as a control message (`IP_TOS` when
/// `ip_level`, else `IPV6_TCLASS`); `dst` is `None` on a connected socket.
/// If the kernel refuses the control message the datagram goes out
/// unmarked rather than not at all.
fn send_ecn(socket: &UdpSocket, data: &[u8], dst: Option<SocketAddr>, ecn: u8, ip_level: bool) -> io::Result<usize> {
    match send_ecn_once(socket, data, dst, ecn & 3, ip_level) {
        Err(e) if ecn & 3 != 0 && e.raw_os_error() == Some(libc::EINVAL) => send_ecn_once(socket, data, dst, 0, ip_level),
        r => r,
    }
}

fn send_ecn_once(socket: &UdpSocket, data: &[u8], dst: Option<SocketAddr>, ecn: u8, ip_level: bool) -> io::Result<usize> {
    let mut iov = libc::iovec { iov_base: data.as_ptr() as *mut libc::c_void, iov_len: data.len() };
    // SAFETY: all-zero is a valid msghdr.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    let mut name = dst.map(std_to_sockaddr);
    if let Some((storage, len)) = name.as_mut() {
        msg.msg_name = (storage as *mut libc::sockaddr_storage).cast();
        msg.msg_namelen = *len;
    }
    let mut control: CmsgBuf = [0; 16];
    if ecn != 0 {
        msg.msg_control = control.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE/CMSG_LEN are pure arithmetic; the first header
        // and its c_int of data fit in the 64-byte aligned buffer.
        unsafe {
            msg.msg_controllen = libc::CMSG_SPACE(mem::size_of::<libc::c_int>() as u32) as _;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            if cmsg.is_null() {
                return Err(io::Error::other("no room for the ECN control message"));
            }
            (*cmsg).cmsg_level = if ip_level { libc::IPPROTO_IP } else { libc::IPPROTO_IPV6 };
            (*cmsg).cmsg_type = if ip_level { libc::IP_TOS } else { libc::IPV6_TCLASS };
            (*cmsg).cmsg_len = libc::CMSG_LEN(mem::size_of::<libc::c_int>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), libc::c_int::from(ecn));
        }
    }
    // SAFETY: every pointer in msg refers to a live local buffer of the
    // stated length; the kernel only reads them.
    let n = unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn std_to_sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for
            // sockaddr_in.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for
            // sockaddr_in6.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

fn sockaddr_to_std(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin: libc::sockaddr_in = unsafe { std::ptr::read((storage as *const libc::sockaddr_storage).cast()) };
            Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()), u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6: libc::sockaddr_in6 = unsafe { std::ptr::read((storage as *const libc::sockaddr_storage).cast()) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// `ppoll(2)` with a nanosecond timeout (plain `poll` rounds to
/// milliseconds, which would deliver up to 1 ms late).
fn ppoll(fds: &mut [libc::pollfd], timeout: Duration) -> io::Result<usize> {
    let ts = libc::timespec { tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t, tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32) };
    // SAFETY: fds is a live slice of pollfd of the given length; ts lives
    // across the call; a null sigmask keeps the current one.
    let n = unsafe { libc::ppoll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, &ts, std::ptr::null()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use quicpro_sim::link::BurstCapped;

    const MS: Duration = Duration::from_millis(1);

    fn local() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    fn udp(addr: SocketAddr) -> UdpSocket {
        let s = UdpSocket::bind(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s
    }

    /// Reads datagrams until `quiet` passes without one.
    fn recv_all(s: &UdpSocket, quiet: Duration) -> Vec<(Vec<u8>, SocketAddr)> {
        s.set_read_timeout(Some(quiet)).unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            out.push((buf[..n].to_vec(), from));
        }
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        out
    }

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("quicpro-relay-{}-{name}.pcap", std::process::id()))
    }

    /// The second listen address (the server's preferred address in the
    /// connectionmigration case): a client moving there gets its own flow
    /// to the server (a new address as the server sees it), and answers
    /// come back from the second address.
    #[test]
    fn a_second_listen_address_has_its_own_flows() {
        let server = udp(local());
        let cfg = RelayConfig::new(local(), server.local_addr().unwrap()).with_second_listen(local());
        let relay = Relay::start(cfg).unwrap();
        let second = relay.second_addr().unwrap();
        assert_ne!(second, relay.addr());
        let client = udp(local());
        let mut buf = [0u8; 2048];
        let mut seen_from = Vec::new();
        for (i, to) in [relay.addr(), second].into_iter().enumerate() {
            client.send_to(&[i as u8; 100], to).unwrap();
            let (n, from) = server.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], &[i as u8; 100]);
            seen_from.push(from);
            server.send_to(&buf[..n], from).unwrap();
            let (n, back_from) = client.recv_from(&mut buf).unwrap();
            assert_eq!((n, back_from), (100, to), "the answer leaves from the address the client used");
        }
        assert_ne!(seen_from[0], seen_from[1], "one flow per listen address");
        let s = relay.stop();
        assert_eq!(s.flows_created, 2);
        assert_eq!(s.failure, None);
    }

    #[test]
    fn echo_through_the_base_scenario_takes_at_least_the_rtt() {
        let server = udp(local());
        let cfg = RelayConfig::new(local(), server.local_addr().unwrap()).with_scenario(&Scenario::base());
        let relay = Relay::start(cfg).unwrap();
        let (a, b) = (udp(local()), udp(local()));
        let mut buf = [0u8; 2048];
        let mut upstream_ports = Vec::new();
        for (i, client) in [&a, &b, &a].into_iter().enumerate() {
            let t = Instant::now();
            client.send_to(&[i as u8; 1200], relay.addr()).unwrap();
            let (n, from) = server.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], &[i as u8; 1200]);
            assert_eq!(from.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
            assert_ne!(from, client.local_addr().unwrap(), "the server sees the relay");
            upstream_ports.push(from.port());
            server.send_to(&buf[..n], from).unwrap();
            let (n, back_from) = client.recv_from(&mut buf).unwrap();
            let rtt = t.elapsed();
            assert_eq!((n, back_from), (1200, relay.addr()));
            // 2 × 15 ms + 2 × ~1 ms serialization at 10 Mbit/s.
            assert!(rtt >= 30 * MS, "rtt {rtt:?}");
            assert!(rtt < Duration::from_secs(1), "rtt {rtt:?}");
        }
        // One binding per client, kept across datagrams.
        assert_ne!(upstream_ports[0], upstream_ports[1]);
        assert_eq!(upstream_ports[0], upstream_ports[2]);
        let s = relay.stop();
        assert_eq!((s.to_server.received, s.to_server.delivered), (3, 3));
        assert_eq!((s.to_client.received, s.to_client.delivered), (3, 3));
        assert_eq!((s.to_server.received_bytes, s.to_client.delivered_bytes), (3600, 3600));
        assert_eq!((s.flows, s.flows_created), (2, 2));
        assert_eq!(s.to_server.link.dropped() + s.to_client.link.dropped(), 0);
        assert_eq!(s.failure, None);
    }

    #[test]
    fn droplist_drops_exactly_the_listed_datagrams() {
        let server = udp(local());
        let scenario = Scenario::parse("droplist:2,3,5:1+delay:1ms").unwrap();
        let cfg = RelayConfig::new(local(), server.local_addr().unwrap()).with_scenario(&scenario);
        let relay = Relay::start(cfg).unwrap();
        let client = udp(local());
        for i in 1..=8u8 {
            client.send_to(&[i], relay.addr()).unwrap();
        }
        let got = recv_all(&server, 300 * MS);
        let seen: Vec<u8> = got.iter().map(|(d, _)| d[0]).collect();
        assert_eq!(seen, vec![1, 4, 6, 7, 8]);
        let upstream = got[0].1;
        for i in 1..=3u8 {
            server.send_to(&[100 + i], upstream).unwrap();
        }
        let back: Vec<u8> = recv_all(&client, 300 * MS).iter().map(|(d, _)| d[0]).collect();
        assert_eq!(back, vec![102, 103]);
        let s = relay.stop();
        assert_eq!((s.to_server.link.dropped_list, s.to_client.link.dropped_list), (3, 1));
        assert_eq!((s.to_server.delivered, s.to_client.delivered), (5, 2));
    }

    #[test]
    fn corruption_replaces_a_byte_among_the_first_51() {
        let server = udp(local());
        let link = LinkConfig::default().with_corrupt_rate(BurstCapped::new(1.0, 0));
        let cfg = RelayConfig::new(local(), server.local_addr().unwrap()).with_links(link, LinkConfig::default()).with_seed(3);
        let relay = Relay::start(cfg).unwrap();
        let client = udp(local());
        let original = vec![0u8; 300];
        for _ in 0..20 {
            client.send_to(&original, relay.addr()).unwrap();
        }
        let got = recv_all(&server, 300 * MS);
        assert_eq!(got.len(), 20, "corrupted datagrams are delivered");
        for (d, _) in &got {
            let diff: Vec<usize> = (0..d.len()).filter(|&i| d[i] != 0).collect();
            assert_eq!(diff.len(), 1);
            assert!(diff[0] <= 50);
        }
        // The other direction is untouched.
        server.send_to(&original, got[0].1).unwrap();
        assert_eq!(recv_all(&client, 200 * MS)[0].0, original);
        let s = relay.stop();
        assert_eq!((s.to_server.link.corrupted_rate, s.to_client.link.corrupted_rate), (20, 0));
    }

    #[test]
    fn rebind_changes_the_binding_and_the_old_one_is_dead() {
        let server = udp(local());
        let rebind = Rebind { first: Duration::from_secs(3600), every: Duration::ZERO, change_addr: false };
        let cfg = RelayConfig::new(local(), server.local_addr().unwrap()).with_rebind(rebind);
        let relay = Relay::start(cfg).unwrap();
        let client = udp(local());
        let mut buf = [0u8; 64];

        client.send_to(b"a", relay.addr()).unwrap();
        let (_, old) = server.recv_from(&mut buf).unwrap();
        relay.rebind_now().unwrap();
        // The server answers the old binding: that is lost.
        server.send_to(b"to-old", old).unwrap();
        client.send_to(b"b", relay.addr()).unwrap();
        let (n, new) = server.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"b");
        assert_eq!(new.ip(), old.ip());
        assert_ne!(new.port(), old.port(), "a new source port after the rebind");
        server.send_to(b"to-new", new).unwrap();
        let back: Vec<Vec<u8>> = recv_all(&client, 300 * MS).into_iter().map(|(d, _)| d).collect();
        assert_eq!(back, vec![b"to-new".to_vec()]);
        let s = relay.stop();
        assert_eq!((s.rebinds, s.flows), (1, 1));
        assert_eq!(s.to_client.received, 1);
    }

    #[test]
    fn timed_rebinds_with_a_new_address() {
        let server = udp(local());
        let rebind = Rebind { first: 100 * MS, every: 100 * MS, change_addr: true };
        let cfg = RelayConfig::new(local(), server.local_addr().unwrap()).with_rebind(rebind);
        let relay = Relay::start(cfg).unwrap();
        let client = udp(local());
        let mut buf = [0u8; 64];
        let mut sources = Vec::new();
        for _ in 0..4 {
            client.send_to(b"x", relay.addr()).unwrap();
            sources.push(server.recv_from(&mut buf).unwrap().1);
            std::thread::sleep(150 * MS);
        }
        let s = relay.stop();
        assert!((3..=8).contains(&s.rebinds), "rebinds {}", s.rebinds);
        // The first datagram came before any rebind, from 127.0.0.1; each
        // later one from a new 127.0.0.x (x ≥ 2).
        assert_eq!(sources[0].ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        for w in sources.windows(2) {
            assert_ne!(w[0], w[1]);
        }
        for src in &sources[1..] {
            let IpAddr::V4(ip) = src.ip() else { panic!("{src}") };
            assert_eq!(ip.octets()[..3], [127, 0, 0]);
            assert!(ip.octets()[3] >= 2, "{ip}");
        }
    }

    #[test]
    fn pcaps_record_both_vantage_points() {
        let (cpath, spath) = (temp("client"), temp("server"));
        let server = udp(local());
        let server_addr = server.local_addr().unwrap();
        let cfg = RelayConfig::new(local(), server_addr).with_scenario(&Scenario::base()).with_client_pcap(&cpath).with_server_pcap(&spath);
        let relay = Relay::start(cfg).unwrap();
        let relay_addr = relay.addr();
        let client = udp(local());
        let client_addr = client.local_addr().unwrap();
        let mut buf = [0u8; 2048];
        let mut upstream = None;
        for i in 0..3u8 {
            client.send_to(&[i; 100], relay_addr).unwrap();
            let (n, from) = server.recv_from(&mut buf).unwrap();
            upstream = Some(from);
            server.send_to(&[buf[0] + 10; 50][..n.min(50)], from).unwrap();
            client.recv_from(&mut buf).unwrap();
        }
        let upstream = upstream.unwrap();
        relay.stop();
        let c = pcap::read(&cpath).unwrap();
        let s = pcap::read(&spath).unwrap();
        let _ = std::fs::remove_file(&cpath);
        let _ = std::fs::remove_file(&spath);
        assert_eq!((c.len(), s.len()), (6, 6));
        for i in 0..3 {
            let (sent, back) = (&c[2 * i], &c[2 * i + 1]);
            assert_eq!((sent.src, sent.dst, &sent.payload), (client_addr, relay_addr, &vec![i as u8; 100]));
            assert_eq!((back.src, back.dst, &back.payload), (relay_addr, client_addr, &vec![i as u8 + 10; 50]));
            // The client side sees the whole round trip (≥ 30 ms).
            let rtt = back.time.duration_since(sent.time).unwrap();
            assert!(rtt >= 30 * MS, "{rtt:?}");
            let (arrived, answer) = (&s[2 * i], &s[2 * i + 1]);
            assert_eq!((arrived.src, arrived.dst, &arrived.payload), (upstream, server_addr, &vec![i as u8; 100]));
            assert_eq!((answer.src, answer.dst, &answer.payload), (server_addr, upstream, &vec![i as u8 + 10; 50]));
            // The server side sees it 15 ms later and answers at once.
            assert!(arrived.time.duration_since(sent.time).unwrap() >= 15 * MS);
            assert!(c.iter().chain(&s).all(|r| r.ecn == 0));
        }
    }

    /// A datagram read late carries the time the kernel received it, which
    /// is what the link sees (module docs, Links).
    #[test]
    fn a_datagram_read_late_keeps_its_kernel_receive_time() {
        let server = udp(local());
        enable_recv_meta(&server, true);
        let client = udp(local());
        // The kernel turns receive timestamping on for the whole stack
        // asynchronously (a deferred static key) when the first socket asks
        // for it: until then a datagram is stamped when it is read. So the
        // first tries may see the read time; once it is on, a late read
        // keeps the arrival time.
        let mut tries = Vec::new();
        for _ in 0..20 {
            let sent = SystemTime::now();
            client.send_to(&[7], server.local_addr().unwrap()).unwrap();
            std::thread::sleep(50 * MS);
            let mut buf = [0u8; 16];
            let r = recv_ecn(&server, &mut buf).unwrap();
            let read = SystemTime::now();
            let stamp = r.stamp.expect("SO_TIMESTAMPNS stamp");
            let (after_send, before_read) = (stamp.duration_since(sent).unwrap_or_default(), read.duration_since(stamp).unwrap_or_default());
            if after_send < 40 * MS && before_read >= 50 * MS {
                return;
            }
            tries.push((after_send, before_read));
        }
        panic!("no datagram kept its receive time (stamp after send, before read): {tries:?}");
    }

    fn set_tos(s: &UdpSocket, tos: libc::c_int) {
        setsockopt_int(s.as_raw_fd(), libc::IPPROTO_IP, libc::IP_TOS, tos).unwrap();
    }

    #[test]
    fn ecn_codepoints_pass_through_and_can_be_mangled() {
        let server = udp(local());
        server.set_nonblocking(false).unwrap();
        enable_recv_meta(&server, true);
        let cpath = temp("ecn");
        let cfg = RelayConfig::new(local(), server.local_addr().unwrap()).with_client_pcap(&cpath);
        let cfg = RelayConfig { ecn_mangle_to_client: Some(EcnMangle::SetCe(1.0)), ..cfg };
        let relay = Relay::start(cfg).unwrap();
        let client = udp(local());
        enable_recv_meta(&client, true);
        let mut buf = [0u8; 64];
        let mut upstream = None;
        for ecn in [2u8, 1, 0, 3] {
            set_tos(&client, libc::c_int::from(ecn));
            client.send_to(&[ecn], relay.addr()).unwrap();
            let r = recv_ecn(&server, &mut buf).unwrap();
            assert_eq!((buf[0], r.ecn), (ecn, ecn), "passed through");
            upstream = Some(r.src);
        }
        // Server → client: ECT becomes CE, Not-ECT stays.
        for (sent, want) in [(2u8, 3u8), (1, 3), (0, 0)] {
            set_tos(&server, libc::c_int::from(sent));
            server.send_to(&[sent], upstream.unwrap()).unwrap();
            client.set_nonblocking(false).unwrap();
            let r = recv_ecn(&client, &mut buf).unwrap();
            assert_eq!((buf[0], r.ecn), (sent, want));
        }
        let s = relay.stop();
        assert_eq!(s.to_server.ecn_received, [1, 1, 1, 1]);
        assert_eq!(s.to_client.ecn_received, [1, 1, 1, 0]);
        assert_eq!((s.to_server.ecn_mangled, s.to_client.ecn_mangled), (0, 2));
        let recs = pcap::read(&cpath).unwrap();
        let _ = std::fs::remove_file(&cpath);
        let ecns: Vec<u8> = recs.iter().map(|r| r.ecn).collect();
        assert_eq!(ecns, vec![2, 1, 0, 3, 3, 3, 0]);

        // Bleaching and remarking.
        let mut rng = SeededRandom::new(1);
        assert_eq!(EcnMangle::Bleach.apply(2, &mut rng), 0);
        assert_eq!(EcnMangle::Remark(1).apply(2, &mut rng), 1);
        assert_eq!(EcnMangle::Remark(1).apply(0, &mut rng), 0);
        assert_eq!("ce:0.5".parse::<EcnMangle>(), Ok(EcnMangle::SetCe(0.5)));
        assert_eq!("ect1".parse::<EcnMangle>(), Ok(EcnMangle::Remark(1)));
        assert!("ce:2".parse::<EcnMangle>().is_err());
    }

    #[test]
    fn ipv6_loopback_works() {
        let Ok(server) = UdpSocket::bind("[::1]:0") else {
            eprintln!("no IPv6 loopback here; skipped");
            return;
        };
        server.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let cfg = RelayConfig::new("[::1]:0".parse().unwrap(), server.local_addr().unwrap()).with_links(LinkConfig::new(5 * MS), LinkConfig::new(5 * MS));
        let relay = Relay::start(cfg).unwrap();
        let client = udp("[::1]:0".parse().unwrap());
        client.send_to(b"six", relay.addr()).unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = server.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"six");
        assert!(from.is_ipv6());
        server.send_to(b"back", from).unwrap();
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"back"[..], relay.addr()));
        relay.stop();
    }

    #[test]
    fn flows_are_capped_and_stop_is_prompt() {
        let server = udp(local());
        let cfg = RelayConfig::new(local(), server.local_addr().unwrap()).with_max_flows(2);
        let relay = Relay::start(cfg).unwrap();
        let clients: Vec<UdpSocket> = (0..3).map(|_| udp(local())).collect();
        let mut buf = [0u8; 16];
        for c in &clients {
            c.send_to(b"hi", relay.addr()).unwrap();
            server.recv_from(&mut buf).unwrap();
        }
        // The counters are published once per loop turn, right after the
        // datagram went out: wait for them.
        let deadline = Instant::now() + Duration::from_secs(2);
        while relay.stats().flows_created < 3 && Instant::now() < deadline {
            std::thread::sleep(MS);
        }
        assert_eq!(relay.stats().flows, 2);
        let t = Instant::now();
        let s = relay.stop();
        assert!(t.elapsed() < Duration::from_secs(1));
        assert_eq!((s.flows, s.flows_created, s.flows_evicted), (2, 3, 1));
        assert!(s.to_string().contains("3 created"));

        // A bad server address is refused up front.
        let err = Relay::start(RelayConfig::new(local(), "0.0.0.0:443".parse().unwrap())).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
