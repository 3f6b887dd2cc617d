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

/// Client sends `size` bytes on one bidi stream; the server reads them all
/// and echoes a digest back; returns the bytes the server read.
fn transfer(p: &mut Pair, size: usize, limit: Duration) -> Vec<u8> {
    let data: Vec<u8> = (0..size).map(|i| (i * 7 + i / 251) as u8).collect();
    let id = p.client().open_stream(Dir::Bi).expect("stream");
    let mut written = 0;
    let mut received = Vec::with_capacity(size);
    let mut fin = false;
    let mut sid = None;
    let mut buf = vec![0u8; 64 * 1024];
    p.run_until(limit, |p| {
        if written < data.len() {
            let n = p.client().write(id, &data[written..]).unwrap_or(0);
            written += n;
            if written == data.len() {
                p.client().finish(id).unwrap();
            }
        }
        if p.server_conn.is_some() {
            if sid.is_none() {
                sid = p.server().accept_stream(Dir::Bi);
            }
            if let Some(s) = sid {
                while let Ok(out) = p.server().read(s, &mut buf) {
                    received.extend_from_slice(&buf[..out.bytes]);
                    if out.fin {
                        fin = true;
                        break;
                    }
                    if out.bytes == 0 {
                        break;
                    }
                }
            }
        }
        fin
    });
    assert_eq!(received.len(), data.len());
    assert!(received == data, "bytes differ");
    received
}

#[test]
fn one_megabyte_transfer() {
    let c = certs();
    let mut p = Pair::new(2, server_tls(&c), client_tls(&c), TransportConfig::default());
    p.handshake();
    transfer(&mut p, 1 << 20, Duration::from_secs(60));
    let s = p.client().stats();
    assert!(s.stream_bytes_sent >= 1 << 20);
}

#[test]
fn ten_megabytes_with_loss_and_reordering() {
    let c = certs();
    let mut p = Pair::new(3, server_tls(&c), client_tls(&c), TransportConfig::default());
    p.handshake();
    p.loss = 0.05;
    p.jitter = Duration::from_millis(5);
    transfer(&mut p, 10 << 20, Duration::from_secs(600));
    assert!(p.dropped > 100, "loss was exercised: {} dropped", p.dropped);
    assert!(p.client().stats().packets_lost > 0);
}

#[test]
fn handshake_with_thirty_percent_loss() {
    let c = certs();
    for seed in 10..15 {
        let mut p = Pair::new(seed, server_tls(&c), client_tls(&c), TransportConfig::default());
        p.loss = 0.30;
        p.handshake();
        assert!(p.client().is_established(), "seed {seed}");
    }
}
