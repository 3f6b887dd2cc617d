//! SO_REUSEPORT: one port, one socket per worker, the kernel spreading flows.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use io_backends::{BackendError, Interest, UdpConfig};

fn two_sockets_share_a_port_and_split_the_flows<B: TestBackend>() {
    let mut a = B::open_with("127.0.0.1:0".parse().unwrap(), &udp_config()).unwrap();
    let addr = a.local_addr();
    let mut b = B::open_with(addr, &udp_config()).unwrap();
    assert_eq!(b.local_addr(), addr);
    assert!(a.info().reuse_port && b.info().reuse_port);

    // 32 flows (distinct source ports); the reuseport hash sends each flow
    // to one socket. All 32 landing on one of the two has probability 2^-31.
    let peers: Vec<_> = (0..32).map(|_| plain_socket("127.0.0.1:0")).collect();
    for (i, p) in peers.iter().enumerate() {
        p.send_to(&payload(i, 64), addr).unwrap();
    }
    let (mut na, mut nb) = (0usize, 0usize);
    let start = Instant::now();
    while na + nb < 32 && start.elapsed() < DEADLINE {
        for (s, n) in [(&mut a, &mut na), (&mut b, &mut nb)] {
            s.wait(Interest::READABLE, Some(Duration::from_millis(10))).unwrap();
            *n += s.recv().unwrap().len();
        }
    }
    assert_eq!(na + nb, 32, "every datagram delivered exactly once");
    assert!(na > 0 && nb > 0, "both workers got flows: {na} / {nb}");

    // A flow sticks to its socket.
    let before = (a.stats().recv_buffers, b.stats().recv_buffers);
    for _ in 0..5 {
        peers[0].send_to(b"same flow", addr).unwrap();
    }
    let got_a = recv_datagrams(&mut a, 5, Duration::from_millis(300)).len();
    let got_b = recv_datagrams(&mut b, 5, Duration::from_millis(300)).len();
    assert!((got_a, got_b) == (5, 0) || (got_a, got_b) == (0, 5), "{got_a} / {got_b}, before {before:?}");
}

fn without_reuseport_the_second_bind_fails<B: TestBackend>() {
    let cfg = UdpConfig { reuse_port: false, ..udp_config() };
    let a = B::open_with("127.0.0.1:0".parse().unwrap(), &cfg).unwrap();
    match B::open_with(a.local_addr(), &cfg) {
        Err(BackendError::Io { context: "bind", source }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse)
        }
        other => panic!("expected EADDRINUSE, got {other:?}"),
    }
}

for_each_backend!(two_sockets_share_a_port_and_split_the_flows, without_reuseport_the_second_bind_fails,);
