//! Server limits (issue 15): a cap on live connections, answered with
//! CONNECTION_REFUSED (RFC 9000 §5.2.2) without keeping state, and a
//! handshake timeout that discards a connection whose handshake a peer keeps
//! alive without finishing it.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use quic_core::config::TransportConfig;
use quic_core::connection::ConnectionError;
use quic_core::{TransportErrorCode, Version};
use quicpro_sim::pair::*;

#[test]
fn a_client_beyond_max_connections_is_refused_at_once() {
    let c = certs();
    let mut p = Pair::with(21, server_tls(&c), client_tls(&c), TransportConfig::default(), |sc| sc.max_connections = 1, Version::V1);
    p.handshake();
    let first = p.client_conn;
    let first_server = p.server_conn.unwrap();

    p.reconnect();
    let second = p.client_conn;
    let start = p.now;
    p.run_until(Duration::from_secs(5), |p| p.client.connection_ref(second).is_none_or(|c| c.error().is_some()));
    let err = p.client.connection_ref(second).and_then(|c| c.error().cloned());
    match err {
        Some(ConnectionError::PeerTransportClose { code, .. }) => assert_eq!(code, TransportErrorCode::CONNECTION_REFUSED),
        other => panic!("expected CONNECTION_REFUSED, got {other:?}"),
    }
    // One round trip (20 ms on this link), not a handshake timeout.
    assert!(p.now - start < Duration::from_millis(100), "refusal took {:?}", p.now - start);
    let stats = p.server.stats();
    assert_eq!(stats.refused_connections, 1);
    assert_eq!(p.server.connection_count(), 1, "no state kept for the refused client");
    assert!(p.server_conn.is_none(), "the refused client never became a server connection");

    // The connection already admitted is untouched.
    assert!(p.client.connection_ref(first).is_some_and(|c| c.error().is_none() && c.is_established()));

    // Once it ends, there is room again.
    let now = p.now;
    p.client.connection(first).unwrap().close(now, 0, b"bye");
    p.run_until(Duration::from_secs(10), |p| p.server.connection_ref(first_server).is_none());
    assert_eq!(p.server.connection_count(), 0);
    p.reconnect();
    p.handshake();
    assert_eq!(p.server.stats().refused_connections, 1);
    assert_eq!(p.server.stats().connections_accepted, 2);
}

/// A client whose handshake never completes, because everything the server
/// sends is lost, while its own probes keep arriving (so the idle timer
/// never fires on the server).
fn stalled_handshake(server_limit: Option<Duration>) -> Pair {
    let c = certs();
    let patient = TransportConfig { handshake_timeout: None, max_idle_timeout: Duration::from_secs(300), ..TransportConfig::default() };
    let server_transport = Arc::new(TransportConfig { handshake_timeout: server_limit, ..patient.clone() });
    let mut p = Pair::with(22, server_tls(&c), client_tls(&c), patient, |sc| sc.transport = server_transport, Version::V1);
    p.blackhole_server_to_client = true;
    p.run_until(Duration::from_secs(1), |p| p.server_conn.is_some());
    p
}

#[test]
fn an_unfinished_handshake_is_discarded_after_handshake_timeout() {
    let mut p = stalled_handshake(Some(Duration::from_secs(10)));
    let h = p.server_conn.unwrap();
    let start = p.now;
    // Simulated time never jumps past these instants.
    let before = start + Duration::from_millis(9_900);
    while p.step_until(before) {}
    assert!(p.server.connection_ref(h).is_some_and(|c| c.is_handshaking()), "gone before the limit");
    let after = start + Duration::from_millis(10_100);
    while p.step_until(after) {}
    assert!(p.server.connection_ref(h).is_none(), "still there after the limit");
    let closed: Vec<_> = std::iter::from_fn(|| p.server.poll_closed()).collect();
    assert_eq!(closed, vec![(h, Some(ConnectionError::HandshakeTimedOut))]);
    // The client was still probing: the idle timeout did not do this.
    assert!(p.client.connection_ref(p.client_conn).is_some_and(|c| c.error().is_none()));
}

#[test]
fn without_a_handshake_timeout_the_stalled_handshake_lives_on() {
    let mut p = stalled_handshake(None);
    let h = p.server_conn.unwrap();
    let until = p.now + Duration::from_secs(30);
    while p.step_until(until) {}
    assert!(p.server.connection_ref(h).is_some_and(|c| c.error().is_none() && c.is_handshaking()));
}
