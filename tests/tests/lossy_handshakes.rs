//! Handshakes over hostile links (issue: "a lossy handshake can stall"):
//! 1,000 seeded handshakes at 30 % loss and 1,000 at 30 % corruption, both
//! directions, on the simulated link with the interop runner's base path
//! (15 ms one way, 10 Mbit/s). Every one must complete; the distribution
//! of handshake times is printed (`--nocapture`).
//!
//! What made some fail before: probe timeouts sent only PING frames, so
//! when the flight a PING's ACK would have exposed as lost was never
//! declared lost (its ACKs lost too, or the flight arrived corrupted), the
//! handshake waited for the peer's timeout. Probes now carry the
//! unacknowledged CRYPTO data (RFC 9002 §6.2.4).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use quic_core::config::TransportConfig;
use quicpro_tests::pair::*;
use quicpro_tests::sim::{BurstCapped, LinkConfig};

/// Simulated time allowed per handshake: far beyond what any completed
/// one needed, below the 30 s idle timeout that would end it.
const LIMIT: Duration = Duration::from_secs(25);

fn base() -> LinkConfig {
    LinkConfig::new(Duration::from_millis(15)).with_bandwidth(10_000_000).with_queue_packets(26)
}

/// Runs one handshake; the simulated time it took, or why it failed.
fn handshake(seed: u64, link: &LinkConfig, certs: &Certs) -> Result<Duration, String> {
    let mut p = Pair::new(seed, server_tls(certs), client_tls(certs), TransportConfig::default());
    p.set_links(link.clone(), link.clone());
    let start = p.now;
    let end = start + LIMIT;
    loop {
        let client_done = p.client.connection_ref(p.client_conn).is_some_and(|c| c.is_established());
        let server_done = p.server_conn.and_then(|h| p.server.connection_ref(h)).is_some_and(|c| c.is_established());
        if client_done && server_done {
            return Ok(p.now - start);
        }
        if p.client.connection_ref(p.client_conn).is_none() {
            return Err(format!("client connection ended: {:?}", p.client.poll_closed()));
        }
        if p.now >= end {
            return Err(format!("not complete after {LIMIT:?} (client {client_done}, server {server_done})"));
        }
        if !p.step_until(end) {
            return Err("network idle before completion".into());
        }
    }
}

fn campaign(name: &str, link: LinkConfig, seeds: std::ops::Range<u64>) {
    let certs = certs();
    let t0 = Instant::now();
    let mut times = Vec::new();
    let mut failures = Vec::new();
    for seed in seeds {
        match handshake(seed, &link, &certs) {
            Ok(t) => times.push(t),
            Err(e) => failures.push(format!("seed {seed}: {e}")),
        }
    }
    times.sort();
    let pct = |q: f64| times.get(((times.len().saturating_sub(1)) as f64 * q) as usize).copied().unwrap_or_default();
    eprintln!(
        "{name}: {} of {} handshakes complete; simulated time p50 {:?} p90 {:?} p99 {:?} max {:?} ({:.1} s wall)",
        times.len(),
        times.len() + failures.len(),
        pct(0.5),
        pct(0.9),
        pct(0.99),
        times.last().copied().unwrap_or_default(),
        t0.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{name}: {} failed: {:?}", failures.len(), &failures[..failures.len().min(10)]);
}

#[test]
fn thousand_handshakes_at_thirty_percent_loss() {
    campaign("30 % loss", base().with_loss(0.30), 0..1000);
}

#[test]
fn thousand_handshakes_at_thirty_percent_corruption() {
    // The runner's corrupt-rate: one byte among the first 51 of the UDP
    // payload replaced, no burst cap; the packet is delivered.
    campaign("30 % corruption", base().with_corrupt_rate(BurstCapped::new(0.30, 0)), 10_000..11_000);
}
