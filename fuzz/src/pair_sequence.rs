//! A sequence of application calls and network events on a client/server
//! pair after a real handshake, checking the invariants a user relies on.
//!
//! Input: records of 3 bytes `[op][a][b]`. `op % 16` picks the action,
//! `op & 16` the side it happens on (client or server):
//! 0 open a bidirectional stream, 1 open a unidirectional one, 2 write
//! `b * 16` bytes on stream `a`, 3 finish stream `a`, 4 reset stream `a`'s
//! sending half, 5 STOP_SENDING on stream `a`, 6 read everything readable,
//! 7 initiate a key update, 8 deliver everything in flight, 9 drop the next
//! datagram toward that side, 10 duplicate it, 11 swap the next two,
//! 12 let `ADVANCE_MS[a % 8]` pass and fire timers, 13 send a DATAGRAM of
//! `b` bytes, 14 the client's address changes (NAT rebinding), 15 poll the
//! side's transmits into flight.
//!
//! Checks, with a network that only drops, duplicates and reorders: no
//! panic; no connection error at all (every call made is a valid one, so
//! any close — flow control, stream state, final size — is a bug); stream
//! bytes arrive in order, once, and equal to what was written (a pattern
//! by stream and offset); DATAGRAMs arrive at most once and intact; once
//! the input ends and the network is left alone, every finished stream
//! that was not reset or stopped is delivered completely.
//!
//! The congestion controller of both sides follows the number of records
//! (CUBIC, NewReno, BBR in turn), so every controller sees the sequences.
//!
//! `FUZZ_DEBUG=1` prints the streams when the input ends.

use crate::common;

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use quic_core::config::TransportConfig;
use quic_core::connection::Connection;
use quic_core::endpoint::{ClientConfig, ConnectionHandle, DatagramEvent, Endpoint, EndpointConfig, ServerConfig};
use quic_core::rand::SeededRandom;
use quic_core::recovery::CongestionAlgorithm;
use quic_core::stream::{Dir, StreamId, StreamReadError};
use quic_core::Version;

const ADVANCE_MS: [u64; 8] = [0, 1, 2, 5, 10, 50, 200, 1000];
/// Transmits polled at once at most: the endpoint is polled until `None`
/// (its contract; only then are timers re-armed), this only guards
/// against a sender that never stops.
const MAX_TRANSMITS: usize = 4096;
/// Streams the input may name (`a % MAX_STREAMS`).
const MAX_STREAMS: usize = 16;
/// Rounds of timers and delivery allowed to finish everything at the end.
const SETTLE_ROUNDS: usize = 3000;
/// Deliver-and-read passes per settle round, at most.
const SETTLE_READS: usize = 256;

fn pattern(id: u64, offset: u64) -> u8 {
    (offset.wrapping_mul(31) ^ id.wrapping_mul(7) ^ (offset >> 8)) as u8
}

/// One direction of one stream, as the harness sees it.
#[derive(Default)]
struct Half {
    written: u64,
    finished: bool,
    /// Reset by the writer, or stopped by the reader: completeness is not owed.
    abandoned: bool,
    read: u64,
    read_fin: bool,
}

struct StreamRec {
    id: StreamId,
    bidi: bool,
    opened_by_client: bool,
    /// [client → server, server → client]
    halves: [Half; 2],
}

impl StreamRec {
    /// The half `client` writes, if it may write on this stream.
    fn writable_half(&self, client: bool) -> Option<usize> {
        (self.bidi || self.opened_by_client == client).then_some(if client { 0 } else { 1 })
    }
}

struct World {
    now: Instant,
    client: Endpoint,
    server: Endpoint,
    client_h: ConnectionHandle,
    server_h: Option<ConnectionHandle>,
    client_addr: SocketAddr,
    /// Datagrams in flight toward the server [0] and toward the client [1].
    wire: [VecDeque<(SocketAddr, Vec<u8>)>; 2],
    streams: Vec<StreamRec>,
    buf: Vec<u8>,
    scratch: Vec<u8>,
    datagrams_sent: [HashSet<Vec<u8>>; 2],
    datagrams_seen: [HashSet<Vec<u8>>; 2],
    datagram_seq: u32,
}

impl World {
    fn conn(&mut self, client: bool) -> Option<&mut Connection> {
        common::side_conn(&mut self.client, &mut self.server, self.client_h, self.server_h, !client)
    }

    /// Polls one side's transmits onto the wire.
    fn poll(&mut self, client: bool) {
        let ep = if client { &mut self.client } else { &mut self.server };
        for _ in 0..MAX_TRANSMITS {
            let Some(t) = ep.poll_transmit(self.now, &mut self.buf) else { return };
            let seg = t.segment_size.unwrap_or(t.size).max(1);
            let from = if client { self.client_addr } else { common::server_addr() };
            for d in self.buf[..t.size].chunks(seg) {
                self.wire[usize::from(!client)].push_back((from, d.to_vec()));
            }
        }
        panic!("{MAX_TRANSMITS} transmits at once and still more");
    }

    fn deliver_one(&mut self, to_client: bool) -> bool {
        let Some((from, mut d)) = self.wire[usize::from(to_client)].pop_front() else { return false };
        if to_client {
            self.client.handle(self.now, from, None, &mut d);
        } else if let DatagramEvent::NewConnection(h) = self.server.handle(self.now, from, None, &mut d) {
            self.server_h = Some(h);
        }
        while self.server.accept().is_some() {}
        true
    }

    /// Sends and delivers until both sides are quiet.
    fn deliver_all(&mut self) {
        for _ in 0..64 {
            self.poll(true);
            self.poll(false);
            let mut any = false;
            while self.deliver_one(false) {
                any = true;
            }
            while self.deliver_one(true) {
                any = true;
            }
            if !any {
                return;
            }
        }
    }

    fn fire_timers(&mut self) {
        self.client.handle_timeout(self.now);
        self.server.handle_timeout(self.now);
    }

    /// Takes events and accepts streams the peer opened (the application
    /// keeps up), and reads what is readable on `client`'s side.
    fn read_side(&mut self, client: bool) {
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut seen = Vec::new();
        let mut datagrams = Vec::new();
        if let Some(conn) = self.conn(client) {
            while conn.poll_event().is_some() {}
            for dir in [Dir::Bi, Dir::Uni] {
                while let Some(id) = conn.accept_stream(dir) {
                    seen.push((id, dir == Dir::Bi));
                }
            }
            while let Some(d) = conn.recv_datagram() {
                datagrams.push(d);
            }
        }
        let side = usize::from(client);
        for d in datagrams {
            assert!(self.datagrams_sent[1 - side].contains(&d[..]), "a DATAGRAM arrived that was never sent");
            assert!(self.datagrams_seen[side].insert(d.to_vec()), "a DATAGRAM arrived twice");
        }
        for (id, bidi) in seen {
            if !self.streams.iter().any(|s| s.id == id) && self.streams.len() < 4 * MAX_STREAMS {
                self.streams.push(StreamRec { id, bidi, opened_by_client: !client, halves: [Half::default(), Half::default()] });
            }
        }
        // The half this side reads: the one the other side writes.
        let half = if client { 1 } else { 0 };
        for i in 0..self.streams.len() {
            let (id, readable) = {
                let s = &self.streams[i];
                (s.id, s.writable_half(!client) == Some(half))
            };
            if !readable || self.streams[i].halves[half].read_fin {
                continue;
            }
            let Some(conn) = common::side_conn(&mut self.client, &mut self.server, self.client_h, self.server_h, !client) else { break };
            loop {
                match conn.read(id, &mut scratch) {
                    Ok(o) => {
                        let h = &mut self.streams[i].halves[half];
                        assert!(!h.read_fin, "data after the end of stream {id:?}");
                        for (k, &b) in scratch[..o.bytes].iter().enumerate() {
                            assert_eq!(b, pattern(id.0, h.read + k as u64), "stream {id:?} byte {} differs", h.read + k as u64);
                        }
                        h.read += o.bytes as u64;
                        assert!(h.read <= h.written, "stream {id:?}: read {} of {} written", h.read, h.written);
                        if o.fin {
                            h.read_fin = true;
                            assert!(h.finished, "FIN on stream {id:?} that was not finished");
                            assert_eq!(h.read, h.written, "stream {id:?} ended early");
                        }
                        if o.bytes == 0 {
                            break;
                        }
                    }
                    Err(StreamReadError::Reset(_)) | Err(StreamReadError::Stopped) => {
                        self.streams[i].halves[half].abandoned = true;
                        break;
                    }
                    Err(StreamReadError::Blocked) => break,
                }
                if self.streams[i].halves[half].read_fin {
                    break;
                }
            }
        }
        self.scratch = scratch;
    }

    fn check_no_error(&mut self) {
        for client in [true, false] {
            if let Some(conn) = self.conn(client) {
                assert!(conn.error().is_none(), "{} connection closed: {:?}", if client { "client" } else { "server" }, conn.error());
            }
        }
    }
}

/// One fuzz input: what libFuzzer calls, and what the corpus replay test
/// (`tests/replay.rs`) calls without it.
pub fn run(data: &[u8]) {
    let tls = common::tls();
    let now = common::base_time();
    let controllers = [CongestionAlgorithm::Cubic, CongestionAlgorithm::NewReno, CongestionAlgorithm::Bbr];
    let transport = TransportConfig {
        congestion: controllers[data.len() / 3 % controllers.len()],
        // Small windows, so that flow control and its updates are exercised.
        receive_window: 16 * 1024,
        stream_receive_window: 4 * 1024,
        max_concurrent_bidi_streams: 8,
        max_concurrent_uni_streams: 8,
        max_idle_timeout: Duration::from_secs(600),
        ..TransportConfig::default()
    };
    let transport = Arc::new(transport);
    let mut sc = ServerConfig::new(tls.server.clone(), b"fuzz token secret", 1_700_000_000);
    sc.transport = transport.clone();
    let server = Endpoint::with_rng(EndpointConfig::new(b"server reset"), Some(sc), now, Box::new(SeededRandom::new(2)));
    let mut client = Endpoint::with_rng(EndpointConfig::new(b"client reset"), None, now, Box::new(SeededRandom::new(1)));
    let cc = ClientConfig { tls: tls.client.clone(), transport, version: Version::V1 };
    let Ok(client_h) = client.connect(now, &cc, common::server_addr(), "localhost", Bytes::new()) else { return };
    let mut w = World {
        now,
        client,
        server,
        client_h,
        server_h: None,
        client_addr: common::client_addr(),
        wire: [VecDeque::new(), VecDeque::new()],
        streams: Vec::new(),
        buf: vec![0u8; 65536],
        scratch: vec![0u8; 4096],
        datagrams_sent: [HashSet::new(), HashSet::new()],
        datagrams_seen: [HashSet::new(), HashSet::new()],
        datagram_seq: 0,
    };
    for _ in 0..8 {
        w.deliver_all();
        w.now += Duration::from_millis(5);
        w.fire_timers();
    }
    if !w.conn(true).is_some_and(|c| c.is_handshake_confirmed()) {
        return;
    }

    for rec in data.chunks_exact(3) {
        let (op, a, b) = (rec[0], rec[1], rec[2]);
        let client = op & 16 == 0;
        let stream = (!w.streams.is_empty()).then(|| usize::from(a) % w.streams.len().min(MAX_STREAMS));
        match op % 16 {
            0 | 1 => {
                let dir = if op % 16 == 0 { Dir::Bi } else { Dir::Uni };
                if w.streams.len() < 4 * MAX_STREAMS {
                    if let Some(id) = w.conn(client).and_then(|c| c.open_stream(dir)) {
                        w.streams.push(StreamRec { id, bidi: dir == Dir::Bi, opened_by_client: client, halves: [Half::default(), Half::default()] });
                    }
                }
            }
            2 => {
                let Some(i) = stream else { continue };
                let Some(half) = w.streams[i].writable_half(client) else { continue };
                let (id, start) = (w.streams[i].id, w.streams[i].halves[half].written);
                if w.streams[i].halves[half].finished || w.streams[i].halves[half].abandoned {
                    continue;
                }
                let data: Vec<u8> = (0..u64::from(b) * 16).map(|k| pattern(id.0, start + k)).collect();
                let Some(conn) = w.conn(client) else { continue };
                match conn.write(id, &data) {
                    Ok(n) => w.streams[i].halves[half].written += n as u64,
                    Err(_) => w.streams[i].halves[half].abandoned = true,
                }
            }
            3 => {
                let Some(i) = stream else { continue };
                let Some(half) = w.streams[i].writable_half(client) else { continue };
                let id = w.streams[i].id;
                if w.streams[i].halves[half].finished || w.streams[i].halves[half].abandoned {
                    continue;
                }
                let Some(conn) = w.conn(client) else { continue };
                match conn.finish(id) {
                    Ok(()) => w.streams[i].halves[half].finished = true,
                    Err(_) => w.streams[i].halves[half].abandoned = true,
                }
            }
            4 => {
                let Some(i) = stream else { continue };
                let Some(half) = w.streams[i].writable_half(client) else { continue };
                let id = w.streams[i].id;
                if let Some(conn) = w.conn(client) {
                    conn.reset_stream(id, u64::from(b));
                    w.streams[i].halves[half].abandoned = true;
                }
            }
            5 => {
                let Some(i) = stream else { continue };
                // The half this side reads.
                let half = if client { 1 } else { 0 };
                if w.streams[i].writable_half(!client) != Some(half) {
                    continue;
                }
                let id = w.streams[i].id;
                if let Some(conn) = w.conn(client) {
                    conn.stop_sending(id, u64::from(b));
                    w.streams[i].halves[half].abandoned = true;
                }
            }
            6 => w.read_side(client),
            7 => {
                let now = w.now;
                if let Some(conn) = w.conn(client) {
                    conn.initiate_key_update(now);
                }
            }
            8 => w.deliver_all(),
            9 => {
                w.wire[usize::from(client)].pop_front();
            }
            10 => {
                if let Some(d) = w.wire[usize::from(client)].front().cloned() {
                    w.wire[usize::from(client)].push_back(d);
                }
            }
            11 => {
                let q = &mut w.wire[usize::from(client)];
                if q.len() >= 2 {
                    q.swap(0, 1);
                }
            }
            12 => {
                w.now += Duration::from_millis(ADVANCE_MS[usize::from(a % 8)]);
                w.fire_timers();
            }
            13 => {
                w.datagram_seq += 1;
                let mut d = w.datagram_seq.to_be_bytes().to_vec();
                d.resize(4 + usize::from(b), b);
                if w.conn(client).is_some_and(|c| c.send_datagram(Bytes::from(d.clone()))) {
                    w.datagrams_sent[usize::from(client)].insert(d);
                }
            }
            14 => {
                w.client_addr = if w.client_addr == common::client_addr() { common::other_client_addr() } else { common::client_addr() };
            }
            _ => w.poll(client),
        }
        w.check_no_error();
    }

    // The network is left alone: everything finished must arrive.
    if std::env::var_os("FUZZ_DEBUG").is_some() {
        for st in &w.streams {
            let h: Vec<_> = st.halves.iter().map(|h| (h.written, h.finished, h.abandoned, h.read, h.read_fin)).collect();
            eprintln!("stream {:?}: (written, finished, abandoned, read, read_fin) {h:?}", st.id);
        }
    }
    for _ in 0..SETTLE_ROUNDS {
        // Deliver and read until nothing moves: reading opens flow-control
        // credit, and what that queues (MAX_DATA, MAX_STREAM_DATA) goes
        // out at once, as an event loop polls after every call —
        // `poll_timeout` does not announce it.
        // Each pass moves at most one stream window (4 KiB). The window
        // does not grow here: this wire delivers in no time, so the
        // measured RTT is zero and auto-tuning (updates closer than two
        // RTTs apart) never fires; 1 MiB takes 256 passes.
        let mut moving = true;
        for _ in 0..SETTLE_READS {
            let before: u64 = w.streams.iter().map(|s| s.halves[0].read + s.halves[1].read).sum();
            w.deliver_all();
            w.read_side(true);
            w.read_side(false);
            let after: u64 = w.streams.iter().map(|s| s.halves[0].read + s.halves[1].read).sum();
            if after == before {
                moving = false;
                break;
            }
        }
        w.check_no_error();
        let pending = w.streams.iter().any(|s| s.halves.iter().any(|h| h.finished && !h.abandoned && !h.read_fin));
        if !pending {
            return;
        }
        if moving {
            // Still moving when the round ended: what the last read queued
            // (MAX_STREAM_DATA) has not gone out yet, so time must not jump
            // to the next timer — that may be the idle timeout, which ends
            // the connection with the credit still unsent.
            continue;
        }
        let next = [w.client.poll_timeout(), w.server.poll_timeout()].into_iter().flatten().min();
        if std::env::var_os("FUZZ_DEBUG").is_some() {
            let halves: Vec<_> = w.streams.iter().map(|s| (s.id.0, s.halves[0].read, s.halves[1].read)).collect();
            let c = w.conn(true).map(|c| (c.stats(), c.bytes_in_flight(), c.congestion_window()));
            let s = w.conn(false).map(|c| (c.stats(), c.bytes_in_flight(), c.congestion_window(), c.remote_address()));
            eprintln!("settle: next {:?} reads {halves:?}\n  client {c:?}\n  server {s:?}", next.map(|t| t - common::base_time()));
        }
        match next {
            Some(t) => w.now = w.now.max(t),
            None => break,
        }
        w.fire_timers();
    }
    for s in &w.streams {
        for h in &s.halves {
            // A stream the peer never learned of (opened, nothing written)
            // is not owed; a finished one is.
            assert!(!h.finished || h.abandoned || h.read_fin, "stream {:?}: {} of {} bytes read, FIN never arrived", s.id, h.read, h.written);
        }
    }
}
