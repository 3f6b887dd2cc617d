//! Timer regressions found by the `client_after_handshake` fuzz target.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use quic_core::config::TransportConfig;
use quic_core::connection::ConnectionError;
use quic_core::stream::Dir;
use quicpro_sim::pair::{certs, client_tls, server_tls, Pair};

/// The peer vanishes after the handshake while we have data in flight:
/// PTO probes back off, and the idle timeout (RFC 9000 §10.1: at least three
/// PTOs) must not grow with that backoff, or the connection never times out
/// and the backed-off PTO finally overflows `3 * pto` (a panic).
#[test]
fn vanished_peer_times_out_despite_pto_backoff() {
    let c = certs();
    let mut p = Pair::new(21, server_tls(&c), client_tls(&c), TransportConfig::default());
    p.handshake();
    p.blackhole_client_to_server = true;
    let id = p.client().open_stream(Dir::Bi).unwrap();
    p.client().write(id, &[7u8; 5000]).unwrap();
    let start = p.now;
    p.run_until(Duration::from_secs(300), |p| p.client.connection_count() == 0);
    let (_, e) = p.client.poll_closed().unwrap();
    assert_eq!(e, Some(ConnectionError::TimedOut));
    // Probes at 1, 2, 4, 8, 16 s... each restart the 30 s idle timer, so the
    // timeout comes once a backed-off probe interval exceeds 30 s.
    let lived = p.now - start;
    assert!(lived >= Duration::from_secs(30), "timed out after {lived:?}");
    assert!(lived <= Duration::from_secs(120), "timed out only after {lived:?}");
}

/// RFC 9000 §10.1: sending restarts the idle timer only for the first
/// ack-eliciting packet since the last receipt. Keep-alive PINGs toward a
/// peer that went silent must not keep the connection alive.
#[test]
fn keep_alive_does_not_defeat_idle_timeout() {
    let c = certs();
    let t = TransportConfig { max_idle_timeout: Duration::from_secs(5), keep_alive_interval: Some(Duration::from_secs(1)), ..TransportConfig::default() };
    let mut p = Pair::new(22, server_tls(&c), client_tls(&c), t);
    p.handshake();
    // The server stops hearing the client; its PINGs still get through.
    p.blackhole_client_to_server = true;
    let start = p.now;
    p.run_until(Duration::from_secs(120), |p| p.server.connection_count() == 0);
    let lived = p.now - start;
    let (_, e) = p.server.poll_closed().unwrap();
    assert_eq!(e, Some(ConnectionError::TimedOut));
    assert!(lived <= Duration::from_secs(7), "server timed out only after {lived:?}");
}

/// Every deadline `poll_timeout` reports must be one `handle_timeout` or
/// `poll_transmit` acts on. The keep-alive deadline is only re-armed once
/// the handshake is complete, so before that it stayed in the past and an
/// event loop calling `poll_timeout` spun until the handshake ended.
#[test]
fn keep_alive_deadline_does_not_spin_during_handshake() {
    let c = certs();
    let t = TransportConfig { keep_alive_interval: Some(Duration::from_millis(100)), ..TransportConfig::default() };
    let mut p = Pair::new(23, server_tls(&c), client_tls(&c), t);
    // The server never hears the client: the handshake cannot progress.
    p.blackhole_client_to_server = true;
    let mut now = p.now;
    let client = p.client();
    let mut buf = vec![0u8; 65536];
    let mut fired = 0;
    while let Some(t) = client.poll_timeout() {
        fired += 1;
        assert!(fired < 1000, "timers never end");
        now = now.max(t);
        client.handle_timeout(now);
        let mut sent = false;
        while client.poll_transmit(now, &mut buf).is_some() {
            sent = true;
        }
        if !sent {
            if let Some(next) = client.poll_timeout() {
                assert!(next > now, "deadline {next:?} not after {now:?} with nothing to send");
            }
        }
    }
    // A client has no handshake limit of its own: the idle timeout ends it.
    assert!(client.is_drained(), "the client gives up by the idle timeout");
    assert_eq!(client.error(), Some(&ConnectionError::TimedOut));
}
