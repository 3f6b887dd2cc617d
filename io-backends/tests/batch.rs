//! Batched send and receive over loopback, IPv4, IPv6 and dual-stack.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use common::*;
use io_backends::Transmit;

fn round_trip<B: TestBackend>(bind_rx: &str, bind_tx: &str, dest_ip: IpAddr) {
    let mut rx = B::open_with(bind_rx.parse().unwrap(), &udp_config()).unwrap();
    let mut tx = B::open_with(bind_tx.parse().unwrap(), &udp_config()).unwrap();
    let dest = SocketAddr::new(dest_ip, rx.local_addr().port());

    // 50 datagrams of varied sizes: more than one batch of 32 each way.
    let payloads: Vec<Vec<u8>> = (0..50).map(|i| payload(i, 40 + i * 23)).collect();
    let mut transmits: Vec<Transmit<'_>> =
        payloads.iter().map(|p| Transmit { destination: dest, source: None, ecn: None, segment_size: None, contents: p }).collect();
    send_all(&mut tx, &mut transmits);
    assert_eq!(tx.stats().send_messages, 50);
    assert!(tx.stats().send_calls >= 2, "50 messages need two sendmmsg calls of 32");

    let got = recv_datagrams(&mut rx, 50, DEADLINE);
    let datagrams = flatten(&got);
    assert_eq!(datagrams.len(), 50);
    // Loopback keeps order.
    assert_eq!(datagrams, payloads);
    let tx_port = tx.local_addr().port();
    for g in &got {
        assert_eq!(g.meta.source.port(), tx_port);
        assert_eq!(g.meta.source.ip(), dest_ip, "loopback replies from the address it was sent to");
        assert_eq!(g.meta.destination, Some(dest_ip));
        assert_eq!(g.meta.ecn, None);
        assert_eq!(g.meta.segment_size, None, "plain sends are never coalesced");
    }
    assert!(rx.stats().recv_calls < 50, "batched: {} calls for 50 datagrams", rx.stats().recv_calls);
}

fn ipv4_batches<B: TestBackend>() {
    round_trip::<B>("127.0.0.1:0", "127.0.0.1:0", IpAddr::V4(Ipv4Addr::LOCALHOST));
}

fn ipv6_batches<B: TestBackend>() {
    round_trip::<B>("[::1]:0", "[::1]:0", IpAddr::V6(Ipv6Addr::LOCALHOST));
}

fn dual_stack_socket_serves_ipv4_with_plain_addresses<B: TestBackend>() {
    // An IPv4 peer reaching a [::] socket shows up as plain IPv4, and the
    // reply goes back through the same socket.
    let mut rx = B::open_with("[::]:0".parse().unwrap(), &udp_config()).unwrap();
    assert!(rx.info().dual_stack);
    let peer = plain_socket("127.0.0.1:0");
    let port = rx.local_addr().port();
    peer.send_to(b"hello over v4", ("127.0.0.1", port)).unwrap();
    let got = recv_datagrams(&mut rx, 1, DEADLINE);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].bytes, b"hello over v4");
    assert_eq!(got[0].meta.source, peer.local_addr().unwrap());
    assert_eq!(got[0].meta.destination, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));

    let reply = b"reply via mapped address";
    let mut t = [Transmit { destination: got[0].meta.source, source: None, ecn: None, segment_size: None, contents: reply }];
    send_all(&mut rx, &mut t);
    let back = plain_recv(&peer, 1);
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].0, reply);
    assert_eq!(back[0].1.port(), port);
}

fn recv_on_idle_socket_is_empty_not_blocking<B: TestBackend>() {
    let mut rx = B::open_with("127.0.0.1:0".parse().unwrap(), &udp_config()).unwrap();
    let start = std::time::Instant::now();
    assert!(rx.recv().unwrap().is_empty());
    let r = rx.wait(io_backends::Interest::READABLE, Some(std::time::Duration::from_millis(20))).unwrap();
    assert!(!r.readable);
    let waited = start.elapsed();
    assert!(waited >= std::time::Duration::from_millis(19) && waited < std::time::Duration::from_secs(2), "{waited:?}");
    let w = rx.wait(io_backends::Interest::WRITABLE, Some(std::time::Duration::from_millis(500))).unwrap();
    assert!(w.writable);
}

for_each_backend!(ipv4_batches, ipv6_batches, dual_stack_socket_serves_ipv4_with_plain_addresses, recv_on_idle_socket_is_empty_not_blocking,);
