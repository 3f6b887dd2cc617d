//! A whole server endpoint fed arbitrary datagrams.
//!
//! Input: one byte choosing the Retry policy (low 2 bits) and the size of
//! the buffer connections write into (bits 2-3: 65536, 1500, 1200, 600),
//! then datagrams, each as a
//! 2-byte big-endian length (top bit: the datagram comes from a second
//! client address) followed by that many bytes (fewer at the end of the
//! input). Simulated time advances 3 ms per datagram; after each one every
//! connection is polled for transmits and its due timer fired. At the end
//! time runs on until every connection has drained.
//!
//! Checks: nothing panics; transmits fit their buffer; connection stats only
//! grow; a server never sends more than three times what it received to an
//! unvalidated address (RFC 9000 §8.1); a stateless reset is smaller than
//! the packet that provoked it (§10.3.3); Retry only under a policy that
//! asks for it; all connections drain once the input stops; a due timer,
//! once fired, leaves a deadline in the future unless there is something to
//! send (no busy loop).

use crate::common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use quic_core::config::TransportConfig;
use quic_core::connection::ConnectionStats;
use quic_core::endpoint::{ConnectionHandle, DatagramEvent, Endpoint, EndpointConfig, RetryPolicy, ServerConfig};
use quic_core::rand::SeededRandom;

const STEP: Duration = Duration::from_millis(3);
/// Transmits drained per connection per step, at most.
const MAX_TRANSMITS: usize = 32;
/// Timer firings allowed for all connections to drain after the input ends.
const MAX_DRAIN_STEPS: usize = 2000;

struct Harness {
    ep: Endpoint,
    now: std::time::Instant,
    buf: Vec<u8>,
    stats: HashMap<ConnectionHandle, ConnectionStats>,
    max_segments: usize,
}

impl Harness {
    fn drive_connections(&mut self) {
        self.ep.handle_timeout(self.now);
        let active: Vec<_> = self.ep.active().to_vec();
        for &h in &active {
            if let Some(conn) = self.ep.connection(h) {
                while conn.poll_event().is_some() {}
            }
        }
        let mut sent = 0;
        for _ in 0..MAX_TRANSMITS * active.len().max(1) {
            let Some(t) = self.ep.poll_transmit(self.now, &mut self.buf) else { break };
            common::check_transmit(&t, self.buf.len(), self.max_segments);
            sent += 1;
        }
        if sent == 0 {
            // Due timers were fired and nothing is left to send: the next
            // deadline must be in the future, or an event loop would spin.
            if let Some(t) = self.ep.poll_timeout() {
                assert!(t > self.now, "timer spins: {:?}", self.ep);
            }
        }
        for h in active {
            self.check_connection(h);
        }
        while self.ep.accept().is_some() {}
        while self.ep.poll_closed().is_some() {}
    }

    fn check_connection(&mut self, h: ConnectionHandle) {
        let Some(conn) = self.ep.connection_ref(h) else {
            self.stats.remove(&h);
            return;
        };
        let now_stats = conn.stats();
        // A freed handle may be reused by a new connection: compare only
        // while the same connection lives (its bytes never go down).
        if let Some(prev) = self.stats.get(&h) {
            if now_stats.bytes_received >= prev.bytes_received {
                common::check_stats_monotonic(prev, &now_stats);
            }
        }
        // RFC 9000 §8.1: three times the bytes received, at most.
        assert!(now_stats.max_amplification_x100 <= 300, "amplification {}%", now_stats.max_amplification_x100);
        self.stats.insert(h, now_stats);
    }
}

/// One fuzz input: what libFuzzer calls, and what the corpus replay test
/// (`tests/replay.rs`) calls without it.
pub fn run(data: &[u8]) {
    let Some((&policy, mut rest)) = data.split_first() else { return };
    let retry = match policy & 3 {
        0 | 3 => RetryPolicy::Never,
        1 => RetryPolicy::Always,
        _ => RetryPolicy::UnderLoad { max_handshakes: 1 },
    };
    let tls = common::tls();
    let now = common::base_time();
    let transport = TransportConfig::default();
    let max_segments = transport.max_gso_segments;
    let mut sc = ServerConfig::new(tls.server.clone(), b"fuzz token secret", 1_700_000_000);
    sc.retry = retry;
    sc.transport = Arc::new(transport);
    let ep = Endpoint::with_rng(EndpointConfig::new(b"fuzz reset secret"), Some(sc), now, Box::new(SeededRandom::new(1)));
    let buf = vec![0u8; common::BUFFER_SIZES[usize::from(policy >> 2) & 3]];
    let mut hx = Harness { ep, now, buf, stats: HashMap::new(), max_segments };
    let mut response = vec![0u8; 65536];

    while rest.len() >= 2 {
        let word = u16::from_be_bytes([rest[0], rest[1]]);
        let from = if word & 0x8000 != 0 { common::other_client_addr() } else { common::client_addr() };
        let len = usize::from(word & 0x7fff).min(rest.len() - 2);
        let mut datagram = rest[2..2 + len].to_vec();
        rest = &rest[2 + len..];

        hx.now += STEP;
        let retries_before = hx.ep.stats().retries_sent;
        let ev = hx.ep.handle(hx.now, from, None, &mut datagram);
        if ev == DatagramEvent::Response {
            let t = hx.ep.poll_transmit(hx.now, &mut response).expect("a Response event queues a response");
            assert!(t.size <= response.len());
            assert_eq!(t.destination, from);
            if response[0] & 0x80 == 0 {
                // RFC 9000 §10.3.3: smaller than the packet it answers.
                assert!(t.size < len, "stateless reset of {} bytes for {len}", t.size);
            }
        }
        if retry == RetryPolicy::Never {
            assert_eq!(hx.ep.stats().retries_sent, retries_before, "Retry sent with RetryPolicy::Never");
        }
        // The rest (more responses, the connections' packets) goes out
        // through the checks of `drive_connections`.
        hx.drive_connections();
    }

    // Nothing more arrives: every connection must time out or close.
    for _ in 0..MAX_DRAIN_STEPS {
        let next = hx.ep.poll_timeout();
        match next {
            Some(t) => hx.now = hx.now.max(t),
            None => break,
        }
        hx.drive_connections();
    }
    assert_eq!(hx.ep.connection_count(), 0, "connections still alive after the input stopped");
}
