//! ECN bits and local addresses through ancillary data.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use common::*;
use io_backends::Transmit;
use quic_core::connection::EcnCodepoint;

fn ecn_round_trip<B: TestBackend>(bind: &str, dest_ip: IpAddr) {
    let mut rx = B::open_with(bind.parse().unwrap(), &udp_config()).unwrap();
    let mut tx = B::open_with(bind.parse().unwrap(), &udp_config()).unwrap();
    let dest = SocketAddr::new(dest_ip, rx.local_addr().port());
    let codepoints = [Some(EcnCodepoint::Ect0), Some(EcnCodepoint::Ect1), Some(EcnCodepoint::Ce), None];
    let bytes = [0x5au8; 100];
    let mut t: Vec<Transmit<'_>> =
        codepoints.iter().map(|&ecn| Transmit { destination: dest, source: None, ecn, segment_size: None, contents: &bytes }).collect();
    send_all(&mut tx, &mut t);
    let got = recv_datagrams(&mut rx, 4, DEADLINE);
    let seen: Vec<_> = got.iter().map(|g| g.meta.ecn).collect();
    assert_eq!(seen, codepoints);
}

fn ecn_round_trip_ipv4<B: TestBackend>() {
    ecn_round_trip::<B>("127.0.0.1:0", IpAddr::V4(Ipv4Addr::LOCALHOST));
}

fn ecn_round_trip_ipv6<B: TestBackend>() {
    ecn_round_trip::<B>("[::1]:0", IpAddr::V6(Ipv6Addr::LOCALHOST));
}

fn ecn_round_trip_ipv4_through_dual_stack_sockets<B: TestBackend>() {
    // IPv4-mapped destinations take the SOL_IP path (IP_TOS) on send, and
    // the receiver needs IP_RECVTOS besides IPV6_RECVTCLASS.
    ecn_round_trip::<B>("[::]:0", IpAddr::V4(Ipv4Addr::LOCALHOST));
}

fn ecn_set_on_every_segment_of_a_gso_send<B: TestBackend>() {
    let mut tx = B::open_with("127.0.0.1:0".parse().unwrap(), &udp_config()).unwrap();
    let cfg = io_backends::UdpConfig { gro: false, ..udp_config() };
    let mut rx = B::open_with("127.0.0.1:0".parse().unwrap(), &cfg).unwrap();
    let bytes = vec![7u8; 1200 * 4];
    let mut t = [Transmit { destination: rx.local_addr(), source: None, ecn: Some(EcnCodepoint::Ect0), segment_size: Some(1200), contents: &bytes }];
    send_all(&mut tx, &mut t);
    let got = recv_datagrams(&mut rx, 4, DEADLINE);
    assert_eq!(got.len(), 4);
    assert!(got.iter().all(|g| g.meta.ecn == Some(EcnCodepoint::Ect0)));
}

fn pktinfo_reports_the_address_a_wildcard_socket_was_reached_at<B: TestBackend>() {
    // All of 127.0.0.0/8 is local: send to 127.0.0.2 and 127.0.0.3.
    let mut rx = B::open_with("0.0.0.0:0".parse().unwrap(), &udp_config()).unwrap();
    let port = rx.local_addr().port();
    let peer = plain_socket("127.0.0.1:0");
    peer.send_to(b"to .2", ("127.0.0.2", port)).unwrap();
    let got = recv_datagrams(&mut rx, 1, DEADLINE);
    assert_eq!(got[0].meta.destination, Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))));
    assert!(got[0].meta.ifindex > 0, "loopback's interface index");
    peer.send_to(b"to .3", ("127.0.0.3", port)).unwrap();
    let got = recv_datagrams(&mut rx, 1, DEADLINE);
    assert_eq!(got[0].meta.destination, Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3))));
}

fn pktinfo_on_ipv6_wildcard<B: TestBackend>() {
    let mut rx = B::open_with("[::]:0".parse().unwrap(), &udp_config()).unwrap();
    let peer = plain_socket("[::1]:0");
    peer.send_to(b"v6", ("::1", rx.local_addr().port())).unwrap();
    let got = recv_datagrams(&mut rx, 1, DEADLINE);
    assert_eq!(got[0].meta.destination, Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
    assert_eq!(got[0].meta.source, peer.local_addr().unwrap());
}

fn source_address_is_chosen_per_send<B: TestBackend>() {
    // A wildcard-bound server answers from the address the client used.
    let mut tx = B::open_with("0.0.0.0:0".parse().unwrap(), &udp_config()).unwrap();
    let peer = plain_socket("127.0.0.1:0");
    let dest = peer.local_addr().unwrap();
    for src in [Ipv4Addr::new(127, 0, 0, 5), Ipv4Addr::new(127, 0, 0, 9)] {
        let mut t = [Transmit {
            destination: dest,
            source: Some(IpAddr::V4(src)),
            ecn: Some(EcnCodepoint::Ect0),
            segment_size: None,
            contents: b"from a chosen address",
        }];
        send_all(&mut tx, &mut t);
        let got = plain_recv(&peer, 1);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, SocketAddr::new(IpAddr::V4(src), tx.local_addr().port()));
    }
}

fn source_address_on_dual_stack_socket_for_ipv4_peer<B: TestBackend>() {
    let mut tx = B::open_with("[::]:0".parse().unwrap(), &udp_config()).unwrap();
    let peer = plain_socket("127.0.0.1:0");
    let src = Ipv4Addr::new(127, 0, 0, 7);
    let mut t = [Transmit { destination: peer.local_addr().unwrap(), source: Some(IpAddr::V4(src)), ecn: None, segment_size: None, contents: b"mapped" }];
    send_all(&mut tx, &mut t);
    let got = plain_recv(&peer, 1);
    assert_eq!(got[0].1, SocketAddr::new(IpAddr::V4(src), tx.local_addr().port()));
}

for_each_backend!(
    ecn_round_trip_ipv4,
    ecn_round_trip_ipv6,
    ecn_round_trip_ipv4_through_dual_stack_sockets,
    ecn_set_on_every_segment_of_a_gso_send,
    pktinfo_reports_the_address_a_wildcard_socket_was_reached_at,
    pktinfo_on_ipv6_wildcard,
    source_address_is_chosen_per_send,
    source_address_on_dual_stack_socket_for_ipv4_peer,
);
