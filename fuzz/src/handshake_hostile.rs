//! Structure-aware endpoint fuzzing of the handshake, in both directions:
//! a real client and a real server in memory, one of them hostile. The
//! hostile side keeps its real TLS stack and keys, so what it sends is
//! properly protected and reaches the victim's handshake and frame code —
//! with hostile content: transport parameters of the input's choosing
//! inside its real ClientHello or EncryptedExtensions, and packets whose
//! payloads (frames) come from the input, sealed with its real Initial,
//! Handshake or 1-RTT keys (quic-core's `conformance` hooks), interleaved
//! with the real handshake flights; plus unprotected datagrams (Version
//! Negotiation, forged Retry, garbage) as they are.
//!
//! Input:
//! - byte 0 (mode): bit 0: the hostile side is the server (the client's
//!   code is under test), else the client; bit 1: the hostile transport
//!   parameters are appended to the real ones instead of replacing them;
//!   bits 2-3: the victim's transmit buffer (65536, 1500, 1200, 600);
//!   bit 4: the server sends Retry to every first Initial.
//! - byte 1: a length n, then n bytes: the hostile transport parameters.
//! - records `[ctl][len: u16 BE][len bytes]`: `ctl & 3` is the packet type
//!   (0 Initial, 1 Handshake, 2 1-RTT: sealed by the hostile side; 3: the
//!   bytes as a raw datagram); `ctl & 4`: let one real flight go each way
//!   first; `(ctl >> 3) & 3`: reserved header bits; `ctl >> 5`: time
//!   advance. A record for keys the hostile side does not have yet lets
//!   the real handshake run (a few flights) until it has them, or is
//!   skipped.
//!
//! Checks: nothing panics; the victim's transmits fit their buffer; a
//! server victim never sends an unvalidated address more than three times
//! what it received (RFC 9000 §8.1); stats only grow; once the input
//! stops, every connection ends (times out or closes) and no timer spins.
//!
//! `FUZZ_DEBUG=1` prints the victim's connections while they drain.

use crate::common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use quic_core::config::TransportConfig;
use quic_core::connection::{ConnectionStats, RawSpace};
use quic_core::endpoint::{ClientConfig, ConnectionHandle, DatagramEvent, Endpoint, EndpointConfig, RetryPolicy, ServerConfig};
use quic_core::rand::SeededRandom;
use quic_core::Version;

/// Transmits polled per flight at most. The endpoint's contract is to be
/// polled until it returns `None` (only then is a connection's timer
/// re-armed), so this bound is only a guard against a sender that never
/// stops, which is a bug the assertion reports.
const MAX_TRANSMITS: usize = 4096;
const MAX_DRAIN_STEPS: usize = 2000;
const ADVANCE_MS: [u64; 8] = [0, 1, 2, 5, 10, 50, 200, 1000];
/// Real flights run at most this often to reach a record's keys.
const MAX_CATCH_UP: usize = 4;

struct World {
    now: Instant,
    client: Endpoint,
    server: Endpoint,
    client_h: ConnectionHandle,
    server_h: Option<ConnectionHandle>,
    hostile_server: bool,
    /// The victim's transmit buffer; the hostile side gets a full one.
    victim_buf: Vec<u8>,
    buf: Vec<u8>,
    max_segments: usize,
    stats: HashMap<(bool, ConnectionHandle), ConnectionStats>,
}

impl World {
    fn victim_is_server(&self) -> bool {
        !self.hostile_server
    }

    /// Moves what one side has queued to the other; whether anything moved.
    fn flight(&mut self, from_client: bool) -> bool {
        let victim_sends = from_client != self.victim_is_server();
        let buf = if victim_sends { &mut self.victim_buf } else { &mut self.buf };
        let src = if from_client { &mut self.client } else { &mut self.server };
        let mut datagrams = Vec::new();
        let mut drained = false;
        for _ in 0..MAX_TRANSMITS {
            let Some(t) = src.poll_transmit(self.now, buf) else {
                drained = true;
                break;
            };
            if victim_sends {
                common::check_transmit(&t, buf.len(), self.max_segments);
            }
            let seg = t.segment_size.unwrap_or(t.size).max(1);
            datagrams.extend(buf[..t.size].chunks(seg).map(<[u8]>::to_vec));
        }
        assert!(drained, "{MAX_TRANSMITS} transmits in one flight and still more");
        let any = !datagrams.is_empty();
        for d in datagrams {
            self.deliver(!from_client, d);
        }
        self.check();
        any
    }

    /// Hands one datagram to the client (`to_client`) or the server.
    fn deliver(&mut self, to_client: bool, mut d: Vec<u8>) {
        if to_client {
            self.client.handle(self.now, common::server_addr(), None, &mut d);
        } else if let DatagramEvent::NewConnection(h) = self.server.handle(self.now, common::client_addr(), None, &mut d) {
            self.server_h = Some(h);
        }
        while self.server.accept().is_some() {}
    }

    fn exchange(&mut self) {
        self.flight(true);
        self.now += Duration::from_millis(1);
        self.flight(false);
        self.now += Duration::from_millis(1);
    }

    /// Seals `payload` as the hostile side's packet of `space`; `None` when
    /// it has no such keys (yet).
    fn seal(&mut self, space: RawSpace, payload: &[u8], reserved: u8) -> Option<Vec<u8>> {
        let conn = if self.hostile_server { self.server.connection(self.server_h?)? } else { self.client.connection(self.client_h)? };
        if !conn.conformance_can_send(space) {
            return None;
        }
        let t = conn.conformance_raw_packet(self.now, &mut self.buf, space, payload, reserved)?;
        Some(self.buf[..t.size].to_vec())
    }

    /// Per victim connection: stats only grow, amplification stays within
    /// three times (a server victim, RFC 9000 §8.1).
    fn check(&mut self) {
        for (is_server, ep) in [(true, &self.server), (false, &self.client)] {
            if is_server != self.victim_is_server() {
                continue;
            }
            for &h in ep.active() {
                let Some(conn) = ep.connection_ref(h) else { continue };
                let now_stats = conn.stats();
                if let Some(prev) = self.stats.get(&(is_server, h)) {
                    if now_stats.bytes_received >= prev.bytes_received {
                        common::check_stats_monotonic(prev, &now_stats);
                    }
                }
                if is_server {
                    assert!(now_stats.max_amplification_x100 <= 300, "amplification {}%", now_stats.max_amplification_x100);
                }
                self.stats.insert((is_server, h), now_stats);
            }
        }
        while self.server.poll_closed().is_some() {}
        while self.client.poll_closed().is_some() {}
    }
}

/// One fuzz input: what libFuzzer calls, and what the corpus replay test
/// (`tests/replay.rs`) calls without it.
pub fn run(data: &[u8]) {
    let [mode, n, rest @ ..] = data else { return };
    let n = usize::from(*n).min(rest.len());
    let (hostile_params, mut rest) = rest.split_at(n);
    let hostile_server = mode & 1 != 0;
    let append = mode & 2 != 0;
    let hostile = hostile_params.to_vec();
    let rewrite = move |real: Vec<u8>| if append { [real, hostile.clone()].concat() } else { hostile.clone() };

    let tls = common::tls();
    let now = common::base_time();
    let transport = Arc::new(TransportConfig::default());
    let max_segments = transport.max_gso_segments;
    let mut sc = ServerConfig::new(tls.server.clone(), b"fuzz token secret", 1_700_000_000);
    sc.transport = transport.clone();
    if mode & 16 != 0 {
        sc.retry = RetryPolicy::Always;
    }
    if hostile_server {
        sc.conformance_params = Some(Arc::new(rewrite.clone()));
    }
    let server = Endpoint::with_rng(EndpointConfig::new(b"server reset"), Some(sc), now, Box::new(SeededRandom::new(2)));
    let mut client = Endpoint::with_rng(EndpointConfig::new(b"client reset"), None, now, Box::new(SeededRandom::new(1)));
    let cc = ClientConfig { tls: tls.client.clone(), transport, version: Version::V1 };
    let client_h = if hostile_server {
        client.connect(now, &cc, common::server_addr(), "localhost", Bytes::new())
    } else {
        client.conformance_connect(now, &cc, common::server_addr(), "localhost", rewrite)
    };
    let Ok(client_h) = client_h else { return };
    let victim_buf = vec![0u8; common::BUFFER_SIZES[usize::from(mode >> 2) & 3]];
    let mut w = World { now, client, server, client_h, server_h: None, hostile_server, victim_buf, buf: vec![0u8; 65536], max_segments, stats: HashMap::new() };

    while rest.len() >= 3 {
        let ctl = rest[0];
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]])).min(rest.len() - 3);
        let payload = &rest[3..3 + len];
        rest = &rest[3 + len..];
        w.now += Duration::from_millis(ADVANCE_MS[usize::from(ctl >> 5)]);
        if ctl & 4 != 0 {
            w.exchange();
        }
        let datagram = match ctl & 3 {
            3 => Some(payload.to_vec()),
            kind => {
                let space = [RawSpace::Initial, RawSpace::Handshake, RawSpace::OneRtt][usize::from(kind)];
                let reserved = (ctl >> 3) & 3;
                let mut sealed = w.seal(space, payload, reserved);
                for _ in 0..MAX_CATCH_UP {
                    if sealed.is_some() {
                        break;
                    }
                    w.exchange();
                    sealed = w.seal(space, payload, reserved);
                }
                sealed
            }
        };
        if let Some(d) = datagram {
            // From the hostile side to the victim.
            w.deliver(hostile_server, d);
            w.check();
        }
        // The victim answers what it can.
        w.flight(!w.hostile_server);
    }

    // The input stopped: both sides run to the end, the victim's timers
    // checked for spinning.
    let debug = std::env::var_os("FUZZ_DEBUG").is_some();
    for step in 0..MAX_DRAIN_STEPS {
        w.exchange();
        let victim = if w.victim_is_server() { &mut w.server } else { &mut w.client };
        if debug && (step < 20 || step % 200 == 0) {
            let at = w.now - common::base_time();
            for &h in victim.active() {
                if let Some(c) = victim.connection_ref(h) {
                    eprintln!("drain {step} at {at:?}: {c:?} handshaking {} {}", c.is_handshaking(), c.fuzz_timers());
                }
            }
        }
        let Some(t) = victim.poll_timeout() else { break };
        w.now = w.now.max(t);
        w.client.handle_timeout(w.now);
        w.server.handle_timeout(w.now);
        let victim_is_server = w.victim_is_server();
        let sent = {
            let (ep, buf) = if victim_is_server { (&mut w.server, &mut w.victim_buf) } else { (&mut w.client, &mut w.victim_buf) };
            let mut sent = Vec::new();
            let mut drained = false;
            for _ in 0..MAX_TRANSMITS {
                let Some(t) = ep.poll_transmit(w.now, buf) else {
                    drained = true;
                    break;
                };
                common::check_transmit(&t, buf.len(), w.max_segments);
                let seg = t.segment_size.unwrap_or(t.size).max(1);
                sent.extend(buf[..t.size].chunks(seg).map(<[u8]>::to_vec));
            }
            assert!(drained, "{MAX_TRANSMITS} transmits at once and still more");
            if sent.is_empty() {
                if let Some(next) = ep.poll_timeout() {
                    assert!(next > w.now, "timer spins: {ep:?}");
                }
            }
            sent
        };
        for d in sent {
            w.deliver(!victim_is_server, d);
        }
        w.check();
    }
    let victim = if w.victim_is_server() { &w.server } else { &w.client };
    assert_eq!(victim.connection_count(), 0, "victim connections still alive after the input stopped");
}
