//! The loop shared by servers and clients.
//!
//! Per turn: receive a bounded number of batches and hand every datagram to
//! the endpoint (running HTTP/3 and flushing between batches), let it fire
//! due timers, run HTTP/3 on the connections it reports active, then flush.
//! The endpoint keeps the timers and the active set; this loop only moves
//! bytes. Flushing packs the endpoint's transmits
//! (every active connection's and its stateless replies) into one arena
//! and hands them to the backend in batches, so one `sendmmsg` (or one
//! io_uring submission) carries many connections' GSO batches instead of
//! one system call per `poll_transmit`. Nothing here allocates per turn:
//! the arena and the transmit array are reused.

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use h3_core::connection::{H3Config, H3Connection, H3Event};
use quic_core::connection::{EcnCodepoint, Side};
use quic_core::endpoint::{ConnectionHandle, Endpoint};

use crate::backend::{datagrams, Backend, Interest, Transmit};

/// A connection and its HTTP/3 layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct H3Handle(pub ConnectionHandle);

/// Bytes reserved per `poll_transmit` call: a connection fills its first
/// datagram up to `min(buffer, MTU)` and adds GSO segments while they fit,
/// so every call gets room for the largest segmented transmit.
const SEND_BUF: usize = 64 * 1024;

/// The send arena: enough for dozens of GSO batches (10 × 1472 B each with
/// the default segment limit) before the backend is called.
const ARENA: usize = 1024 * 1024 + SEND_BUF;

/// Receive batches read per turn at most (each answered before the next).
const RECV_ROUNDS: usize = 16;

/// Transmits handed to the backend per call at most.
const MAX_BATCH: usize = 64;

/// A map keyed by connection handle (slab indices we assign, never chosen
/// by a peer: the fast hasher is safe here).
pub type HandleMap<V> = quic_core::fast_hash::FastHashMap<ConnectionHandle, V>;

/// Where one queued transmit lies in the arena.
#[derive(Debug, Clone, Copy)]
struct Queued {
    destination: SocketAddr,
    ecn: Option<EcnCodepoint>,
    segment_size: Option<usize>,
    start: usize,
    len: usize,
}

const NO_ADDR: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
const EMPTY_TX: Transmit<'static> = Transmit { destination: NO_ADDR, source: None, ecn: None, segment_size: None, contents: &[] };

/// Transmits waiting for the backend, packed in one reusable buffer.
#[derive(Debug)]
struct SendQueue {
    arena: Vec<u8>,
    used: usize,
    queued: Vec<Queued>,
    /// Index of the first transmit not yet sent (after a partial send).
    head: usize,
}

impl SendQueue {
    fn new() -> Self {
        Self { arena: vec![0u8; ARENA], used: 0, queued: Vec::with_capacity(MAX_BATCH), head: 0 }
    }

    fn is_empty(&self) -> bool {
        self.head >= self.queued.len()
    }

    /// Room for another `poll_transmit`, or `None` when the batch is full.
    fn room(&mut self) -> Option<&mut [u8]> {
        if self.queued.len() >= MAX_BATCH || self.used + SEND_BUF > self.arena.len() {
            return None;
        }
        self.arena.get_mut(self.used..self.used + SEND_BUF)
    }

    fn push(&mut self, t: &quic_core::connection::Transmit) {
        let len = t.size.min(SEND_BUF);
        self.queued.push(Queued { destination: t.destination, ecn: t.ecn, segment_size: t.segment_size, start: self.used, len });
        self.used += len;
    }

    /// Sends what is queued. `true` when everything left; on a partial send
    /// the rest stays queued (advanced past what the kernel took) for the
    /// next try after the socket turns writable.
    fn send(&mut self, backend: &mut dyn Backend) -> bool {
        while !self.is_empty() {
            let mut txs = [EMPTY_TX; MAX_BATCH];
            let n = (self.queued.len() - self.head).min(MAX_BATCH);
            for (tx, q) in txs.iter_mut().zip(&self.queued[self.head..self.head + n]) {
                *tx = Transmit {
                    destination: q.destination,
                    source: None,
                    ecn: q.ecn,
                    segment_size: q.segment_size,
                    contents: self.arena.get(q.start..q.start + q.len).unwrap_or(&[]),
                };
            }
            let sent = match backend.send(&mut txs[..n]) {
                Ok(k) => k.min(n),
                Err(_) => 0,
            };
            if sent < n {
                // Keep the unsent part of a transmit split over messages.
                let left = txs[sent].contents.len();
                if let Some(q) = self.queued.get_mut(self.head + sent) {
                    q.start += q.len - left.min(q.len);
                    q.len = left.min(q.len);
                }
                self.head += sent;
                return false;
            }
            self.head += n;
        }
        self.queued.clear();
        self.used = 0;
        self.head = 0;
        true
    }
}

pub struct Driver {
    pub backend: Box<dyn Backend>,
    pub endpoint: Endpoint,
    /// Boxed so the map's growth moves pointers, not whole HTTP/3 states.
    pub h3: HandleMap<Box<H3Connection>>,
    side: Side,
    h3_config: H3Config,
    events: VecDeque<(H3Handle, H3Event)>,
    sendq: SendQueue,
    pub closed: VecDeque<(H3Handle, Option<quic_core::connection::ConnectionError>)>,
    pub accepted: VecDeque<H3Handle>,
    /// Connections whose ALPN is `raw_alpn` (the interop runner's
    /// `hq-interop`, HTTP/0.9): no HTTP/3 layer, their QUIC events are
    /// passed through as `H3Event::Transport` and the caller uses the
    /// streams directly. Indexed by handle.
    raw: Vec<bool>,
    raw_alpn: Option<Vec<u8>>,
    /// `lost_seen[h]`: the application was given `h`'s ConnectionLost. A
    /// connection the endpoint frees from inside `handle_timeout` (idle or
    /// handshake timeout, the end of draining) is gone before `process`
    /// could read that event from it; `process` then reports it from the
    /// endpoint's `poll_closed`, exactly once.
    lost_seen: Vec<bool>,
    /// The turn's last flush is left to the next `step`, which flushes
    /// first: for an application that answers its events at once (the CLI
    /// server, the load generator), so what a turn queued (ACKs, QPACK
    /// decoder instructions) leaves in the same packets as the answers
    /// instead of in packets of its own. Off by default: an application
    /// that may run long between turns (PHP) would hold them back.
    flush_after_app: bool,
}

impl core::fmt::Debug for Driver {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Driver").field("backend", &self.backend.kind()).field("connections", &self.h3.len()).finish()
    }
}

impl Driver {
    pub fn new(backend: Box<dyn Backend>, endpoint: Endpoint, side: Side, h3_config: H3Config) -> Self {
        Self {
            backend,
            endpoint,
            h3: HandleMap::default(),
            side,
            h3_config,
            events: VecDeque::new(),
            sendq: SendQueue::new(),
            closed: VecDeque::new(),
            accepted: VecDeque::new(),
            raw: Vec::new(),
            raw_alpn: None,
            lost_seen: Vec::new(),
            flush_after_app: false,
        }
    }

    /// See `flush_after_app`: the caller handles every event of a turn
    /// without blocking and calls `step` again right after.
    pub fn set_flush_after_app(&mut self, on: bool) {
        self.flush_after_app = on;
    }

    /// Connections that negotiate `alpn` get no HTTP/3 layer (see `raw`).
    pub fn set_raw_alpn(&mut self, alpn: Option<Vec<u8>>) {
        self.raw_alpn = alpn;
    }

    /// Whether `h` runs without HTTP/3 (its ALPN is the raw one).
    pub fn is_raw(&self, h: ConnectionHandle) -> bool {
        self.raw.get(h.0).copied().unwrap_or(false)
    }

    fn set_raw(&mut self, h: ConnectionHandle, raw: bool) {
        if h.0 >= self.raw.len() {
            self.raw.resize(h.0 + 1, false);
        }
        if let Some(r) = self.raw.get_mut(h.0) {
            *r = raw;
        }
    }

    /// Registers a client connection that speaks only the raw ALPN (the
    /// endpoint made it active when `connect` created it).
    pub fn adopt_raw(&mut self, h: ConnectionHandle) {
        self.set_raw(h, true);
    }

    /// Registers a connection the caller created (client `connect`).
    pub fn adopt(&mut self, h: ConnectionHandle) {
        self.h3.insert(h, Box::new(H3Connection::new(self.side, self.h3_config.clone())));
    }

    /// As [`adopt`](Self::adopt) with HTTP/3 settings of its own.
    pub fn adopt_with(&mut self, h: ConnectionHandle, config: H3Config) {
        self.h3.insert(h, Box::new(H3Connection::new(self.side, config)));
    }

    pub fn poll_event(&mut self) -> Option<(H3Handle, H3Event)> {
        self.events.pop_front()
    }

    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// One turn of the loop: wait at most `max_wait` (less if a timer is due
    /// sooner), then handle everything that arrived and is due, and send.
    pub fn step(&mut self, max_wait: Duration) -> io::Result<()> {
        self.flush();
        let now = Instant::now();
        let mut wait = max_wait;
        if let Some(t) = self.endpoint.poll_timeout() {
            wait = wait.min(t.saturating_duration_since(now));
        }
        if !self.events.is_empty() || !self.endpoint.active().is_empty() {
            wait = Duration::ZERO;
        }
        let interest = if self.sendq.is_empty() { Interest::READABLE } else { Interest::BOTH };
        self.backend.wait(interest, Some(wait))?;
        self.receive()?;
        let now = Instant::now();
        self.endpoint.handle_timeout(now);
        self.process(now);
        if !self.flush_after_app {
            self.flush();
        }
        Ok(())
    }

    fn receive(&mut self) -> io::Result<()> {
        // Bounded so one busy socket cannot starve timers and sending.
        let full = self.backend.capabilities().recv_batch;
        for round in 0..RECV_ROUNDS {
            if round > 0 {
                // What the last batch asked for (ACKs, handshake flights,
                // flow-control credit) leaves before the next batch is read,
                // so the peer works on it meanwhile. Answering only after
                // every batch made both sides take turns, each idle while the
                // other processed a whole round: handshakes/s rose by about
                // a third with this (`load --phases hs`).
                let now = Instant::now();
                self.process(now);
                self.flush();
            }
            let now = Instant::now();
            let mut batch = self.backend.recv()?;
            if batch.is_empty() {
                break;
            }
            // A short batch drained the socket: another read now would most
            // likely find nothing (a system call per turn at low load); what
            // arrives meanwhile wakes the next wait.
            let drained = batch.len() < full;
            for i in 0..batch.len() {
                let Some((meta, buf)) = batch.get_mut(i) else { continue };
                for dgram in datagrams(buf, &meta) {
                    if let quic_core::endpoint::DatagramEvent::NewConnection(h) = self.endpoint.handle(now, meta.source, meta.ecn, dgram) {
                        // Take it off the endpoint's incoming queue: that
                        // queue is bounded (`max_incoming`) and the driver
                        // keeps its own `accepted` list.
                        let _ = self.endpoint.accept();
                        if let Some(r) = self.raw.get_mut(h.0) {
                            *r = false;
                        }
                        if self.raw_alpn.is_none() {
                            self.h3.insert(h, Box::new(H3Connection::new(self.side, self.h3_config.clone())));
                        }
                        // Else the layer is chosen in `process` once the
                        // ALPN is known (the ClientHello may span Initials).
                        self.accepted.push_back(H3Handle(h));
                    }
                }
            }
            if drained {
                break;
            }
        }
        Ok(())
    }

    /// Runs HTTP/3 on every connection the endpoint reports active.
    pub fn process(&mut self, now: Instant) {
        // Indexing, not iterating: `connection(h)` of an active `h` leaves
        // the active list as it is.
        for i in 0..self.endpoint.active().len() {
            let Some(&h) = self.endpoint.active().get(i) else { break };
            let raw = self.raw.get(h.0).copied().unwrap_or(false);
            let Some(conn) = self.endpoint.connection(h) else {
                continue;
            };
            if raw {
                while let Some(ev) = conn.poll_event() {
                    push_event(&mut self.events, &mut self.lost_seen, H3Handle(h), H3Event::Transport(ev));
                }
            } else if let Some(h3) = self.h3.get_mut(&h) {
                let _ = h3.process(conn, now);
                while let Some(ev) = h3.poll_event() {
                    push_event(&mut self.events, &mut self.lost_seen, H3Handle(h), ev);
                }
            } else if let (Some(want), Some(alpn)) = (self.raw_alpn.as_deref(), conn.alpn()) {
                // ALPN now known: HTTP/3, or the raw protocol.
                if alpn == want {
                    if h.0 >= self.raw.len() {
                        self.raw.resize(h.0 + 1, false);
                    }
                    if let Some(r) = self.raw.get_mut(h.0) {
                        *r = true;
                    }
                    while let Some(ev) = conn.poll_event() {
                        push_event(&mut self.events, &mut self.lost_seen, H3Handle(h), H3Event::Transport(ev));
                    }
                } else {
                    let mut h3 = Box::new(H3Connection::new(self.side, self.h3_config.clone()));
                    let _ = h3.process(conn, now);
                    while let Some(ev) = h3.poll_event() {
                        push_event(&mut self.events, &mut self.lost_seen, H3Handle(h), ev);
                    }
                    self.h3.insert(h, h3);
                }
            }
        }
        while let Some((h, err)) = self.endpoint.poll_closed() {
            let seen = self.lost_seen.get_mut(h.0).map(std::mem::take).unwrap_or(false);
            if let (false, Some(e)) = (seen, err.clone()) {
                self.events.push_back((H3Handle(h), H3Event::Transport(quic_core::connection::Event::ConnectionLost(e))));
            }
            self.h3.remove(&h);
            self.set_raw(h, false);
            self.closed.push_back((H3Handle(h), err));
        }
    }

    /// Sends everything the active connections have, and stateless
    /// replies, batching transmits of many connections per backend call.
    pub fn flush(&mut self) {
        // What the socket refused last time goes first, in order.
        if !self.sendq.send(&mut *self.backend) {
            return;
        }
        let now = Instant::now();
        loop {
            let Some(room) = self.sendq.room() else {
                if self.sendq.send(&mut *self.backend) {
                    continue;
                }
                // The socket is full: the endpoint keeps the rest of its
                // active connections for the flush after it drains.
                return;
            };
            let Some(t) = self.endpoint.poll_transmit(now, room) else { break };
            self.sendq.push(&t);
        }
        let _ = self.sendq.send(&mut *self.backend);
    }

    /// The HTTP/3 layer and QUIC connection of `h`, together.
    pub fn with_conn<R>(&mut self, h: H3Handle, f: impl FnOnce(&mut H3Connection, &mut quic_core::connection::Connection) -> R) -> Option<R> {
        let conn = self.endpoint.connection(h.0)?;
        let h3 = self.h3.get_mut(&h.0)?;
        let r = f(h3, conn);
        // Calls like `recv_body` can complete a message: surface its events
        // now rather than on the connection's next packet.
        while let Some(ev) = h3.poll_event() {
            push_event(&mut self.events, &mut self.lost_seen, h, ev);
        }
        Some(r)
    }
}

/// Queues an application event, noting a ConnectionLost (see `lost_seen`).
fn push_event(events: &mut VecDeque<(H3Handle, H3Event)>, lost_seen: &mut Vec<bool>, h: H3Handle, ev: H3Event) {
    if matches!(ev, H3Event::Transport(quic_core::connection::Event::ConnectionLost(_))) {
        if h.0 .0 >= lost_seen.len() {
            lost_seen.resize(h.0 .0 + 1, false);
        }
        if let Some(s) = lost_seen.get_mut(h.0 .0) {
            *s = true;
        }
    }
    events.push_back((h, ev));
}
