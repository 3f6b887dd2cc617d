//! The loop shared by servers and clients.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::time::{Duration, Instant};

use h3_core::connection::{H3Config, H3Connection, H3Event};
use quic_core::connection::Side;
use quic_core::endpoint::{ConnectionHandle, Endpoint};

use super::timers::TimerHeap;
use crate::backend::{datagrams, Backend, Interest, Transmit};

/// A connection and its HTTP/3 layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct H3Handle(pub ConnectionHandle);

/// Bytes reserved per `poll_transmit` call: up to the GSO segment count of
/// full-size datagrams.
const SEND_BUF: usize = 64 * 1024;

pub struct Driver {
    pub backend: Box<dyn Backend>,
    pub endpoint: Endpoint,
    pub h3: HashMap<ConnectionHandle, H3Connection>,
    side: Side,
    h3_config: H3Config,
    timers: TimerHeap,
    dirty: HashSet<ConnectionHandle>,
    events: VecDeque<(H3Handle, H3Event)>,
    out: Vec<u8>,
    /// A datagram batch the socket refused (EAGAIN), sent before anything new.
    pending: Option<(quic_core::connection::Transmit, Vec<u8>)>,
    pub closed: VecDeque<(H3Handle, Option<quic_core::connection::ConnectionError>)>,
    pub accepted: VecDeque<H3Handle>,
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
            h3: HashMap::new(),
            side,
            h3_config,
            timers: TimerHeap::default(),
            dirty: HashSet::new(),
            events: VecDeque::new(),
            out: vec![0u8; SEND_BUF],
            pending: None,
            closed: VecDeque::new(),
            accepted: VecDeque::new(),
        }
    }

    /// Registers a connection the caller created (client `connect`).
    pub fn adopt(&mut self, h: ConnectionHandle) {
        self.h3.insert(h, H3Connection::new(self.side, self.h3_config.clone()));
        self.dirty.insert(h);
    }

    pub fn mark_dirty(&mut self, h: ConnectionHandle) {
        self.dirty.insert(h);
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
        if let Some(t) = self.timers.next() {
            wait = wait.min(t.saturating_duration_since(now));
        }
        if !self.events.is_empty() || !self.dirty.is_empty() {
            wait = Duration::ZERO;
        }
        let interest = if self.pending.is_some() { Interest::BOTH } else { Interest::READABLE };
        self.backend.wait(interest, Some(wait))?;
        self.receive()?;
        let now = Instant::now();
        while let Some(h) = self.timers.pop_due(now) {
            if let Some(c) = self.endpoint.connection(h) {
                c.handle_timeout(now);
            }
            self.dirty.insert(h);
        }
        self.process(now);
        self.flush();
        Ok(())
    }

    fn receive(&mut self) -> io::Result<()> {
        // Bounded so one busy socket cannot starve timers and sending.
        for _ in 0..16 {
            let now = Instant::now();
            let mut batch = self.backend.recv()?;
            if batch.is_empty() {
                break;
            }
            for i in 0..batch.len() {
                let Some((meta, buf)) = batch.get_mut(i) else { continue };
                for dgram in datagrams(buf, &meta) {
                    match self.endpoint.handle(now, meta.source, meta.ecn, dgram) {
                        quic_core::endpoint::DatagramEvent::Connection(h) => {
                            self.dirty.insert(h);
                        }
                        quic_core::endpoint::DatagramEvent::NewConnection(h) => {
                            self.h3.insert(h, H3Connection::new(self.side, self.h3_config.clone()));
                            self.accepted.push_back(H3Handle(h));
                            self.dirty.insert(h);
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(())
    }

    /// Runs HTTP/3 on every connection that saw activity.
    pub fn process(&mut self, now: Instant) {
        let dirty: Vec<_> = self.dirty.iter().copied().collect();
        for h in dirty {
            let Some(conn) = self.endpoint.connection(h) else {
                continue;
            };
            if let Some(h3) = self.h3.get_mut(&h) {
                let _ = h3.process(conn, now);
                while let Some(ev) = h3.poll_event() {
                    self.events.push_back((H3Handle(h), ev));
                }
            }
            self.endpoint.maintain(h);
        }
        while let Some((h, err)) = self.endpoint.poll_closed() {
            self.h3.remove(&h);
            self.timers.remove(h);
            self.dirty.remove(&h);
            self.closed.push_back((H3Handle(h), err));
        }
    }

    /// Sends everything the dirty connections have, and stateless replies.
    pub fn flush(&mut self) {
        if let Some((t, data)) = self.pending.take() {
            let mut tx = [match Transmit::from_core(&t, &data) {
                Some(x) => x,
                None => return,
            }];
            match self.backend.send(&mut tx) {
                Ok(1) => {}
                _ => {
                    self.pending = Some((t, data));
                    return;
                }
            }
        }
        let now = Instant::now();
        let dirty: Vec<_> = self.dirty.drain().collect();
        for (i, h) in dirty.iter().enumerate() {
            loop {
                let Some(conn) = self.endpoint.connection(*h) else { break };
                let Some(t) = conn.poll_transmit(now, &mut self.out) else { break };
                let Some(tx) = Transmit::from_core(&t, &self.out) else { break };
                let mut txs = [tx];
                match self.backend.send(&mut txs) {
                    Ok(1) => {}
                    _ => {
                        // Keep what was refused and the connections not yet flushed.
                        let remaining = txs[0].contents.to_vec();
                        let mut t2 = t;
                        t2.size = remaining.len();
                        self.pending = Some((t2, remaining));
                        for h in &dirty[i..] {
                            self.dirty.insert(*h);
                        }
                        return;
                    }
                }
            }
            let deadline = self.endpoint.connection_ref(*h).and_then(|c| c.poll_timeout());
            self.timers.set(*h, deadline);
            self.endpoint.maintain(*h);
        }
        while let Some(t) = self.endpoint.poll_transmit(&mut self.out) {
            if let Some(tx) = Transmit::from_core(&t, &self.out) {
                let _ = self.backend.send(&mut [tx]);
            }
        }
    }

    /// The HTTP/3 layer and QUIC connection of `h`, together.
    pub fn with_conn<R>(
        &mut self,
        h: H3Handle,
        f: impl FnOnce(&mut H3Connection, &mut quic_core::connection::Connection) -> R,
    ) -> Option<R> {
        let conn = self.endpoint.connection(h.0)?;
        let h3 = self.h3.get_mut(&h.0)?;
        let r = f(h3, conn);
        // Calls like `recv_body` can complete a message: surface its events
        // now rather than on the connection's next packet.
        while let Some(ev) = h3.poll_event() {
            self.events.push_back((h, ev));
        }
        self.dirty.insert(h.0);
        Some(r)
    }
}

