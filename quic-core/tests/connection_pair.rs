//! Two endpoints in memory: handshake, streams, loss, close.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use quic_core::config::TransportConfig;
use quic_core::stream::Dir;

#[test]
fn handshake_completes() {
    let c = certs();
    let mut p = Pair::new(1, server_tls(&c), client_tls(&c), TransportConfig::default());
    p.handshake();
    assert_eq!(p.client().alpn(), Some(&b"test"[..]));
    assert!(!p.client().is_resumed());
    assert!(p.client().is_established());
    assert!(p.server().is_established());
}
