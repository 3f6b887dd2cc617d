//! Segmentation offload on loopback: GSO sends, GRO receives, the fallback
//! when the kernel refuses a segmented send.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;

use common::*;
use io_backends::{Transmit, UdpConfig};

fn gso_transmit(dest: SocketAddr, bytes: &[u8], seg: usize) -> Transmit<'_> {
    Transmit { destination: dest, source: None, ecn: None, segment_size: Some(seg), contents: bytes }
}

/// `n` datagrams of `seg` bytes back to back (the last `last` bytes if set).
fn burst(n: usize, seg: usize, last: Option<usize>) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut parts: Vec<Vec<u8>> = (0..n).map(|i| payload(i, seg)).collect();
    if let (Some(l), Some(p)) = (last, parts.last_mut()) {
        p.truncate(l);
    }
    (parts.concat(), parts)
}

fn gso_send_arrives_as_separate_datagrams_at_a_plain_socket<B: TestBackend>() {
    let mut tx = B::open_with("127.0.0.1:0".parse().unwrap(), &udp_config()).unwrap();
    assert!(tx.capabilities().gso, "Linux 6.x has UDP_SEGMENT");
    let rx = plain_socket("127.0.0.1:0");
    let (bytes, parts) = burst(10, 1200, None);
    let mut t = [gso_transmit(rx.local_addr().unwrap(), &bytes, 1200)];
    send_all(&mut tx, &mut t);
    // One message, one system call, ten datagrams on the wire.
    assert_eq!((tx.stats().send_calls, tx.stats().send_messages), (1, 1));
    let got = plain_recv(&rx, 10);
    let got: Vec<Vec<u8>> = got.into_iter().map(|(b, _)| b).collect();
    assert_eq!(got, parts);
    assert!(tx.capabilities().gso, "no fallback on loopback");
}

fn gro_receives_a_gso_burst_coalesced<B: TestBackend>() {
    let mut rx = B::open_with("127.0.0.1:0".parse().unwrap(), &udp_config()).unwrap();
    let mut tx = B::open_with("127.0.0.1:0".parse().unwrap(), &udp_config()).unwrap();
    let gro = rx.capabilities().gro;
    eprintln!("UDP_GRO accepted: {gro}");
    // Nine full segments and a short tenth.
    let (bytes, parts) = burst(10, 1200, Some(500));
    assert_eq!(bytes.len(), 11_300);
    let mut t = [gso_transmit(rx.local_addr(), &bytes, 1200)];
    send_all(&mut tx, &mut t);
    let got = recv_datagrams(&mut rx, 10, DEADLINE);
    eprintln!("GRO on lo: {} buffer(s): {:?}", got.len(), got.iter().map(|g| (g.meta.len, g.meta.segment_size)).collect::<Vec<_>>());
    assert_eq!(flatten(&got), parts, "every datagram arrives intact and in order");
    if gro {
        // Loopback hands the unsegmented GSO packet to a socket with
        // UDP_GRO on: one buffer, with the segment size in the cmsg.
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].meta.len, 11_300);
        assert_eq!(got[0].meta.segment_size, Some(1200));
        assert_eq!(got[0].meta.datagram_count(), 10);
    }
}

fn without_gro_a_gso_burst_arrives_split<B: TestBackend>() {
    let cfg = UdpConfig { gro: false, ..udp_config() };
    let mut rx = B::open_with("127.0.0.1:0".parse().unwrap(), &cfg).unwrap();
    assert!(!rx.capabilities().gro);
    let mut tx = B::open_with("127.0.0.1:0".parse().unwrap(), &udp_config()).unwrap();
    let (bytes, parts) = burst(10, 1200, None);
    let mut t = [gso_transmit(rx.local_addr(), &bytes, 1200)];
    send_all(&mut tx, &mut t);
    let got = recv_datagrams(&mut rx, 10, DEADLINE);
    assert_eq!(got.len(), 10);
    assert!(got.iter().all(|g| g.meta.segment_size.is_none() && g.meta.len == 1200));
    assert_eq!(flatten(&got), parts);
}

fn big_transmits_are_split_into_several_gso_messages<B: TestBackend>() {
    // 100 × 1200 B exceeds one IP packet (64 KiB): the backend cuts it in
    // messages of at most 54 segments (65507 / 1200).
    let mut tx = B::open_with("127.0.0.1:0".parse().unwrap(), &udp_config()).unwrap();
    let cfg = UdpConfig { gro: false, ..udp_config() };
    let mut rx = B::open_with("127.0.0.1:0".parse().unwrap(), &cfg).unwrap();
    let (bytes, parts) = burst(100, 1200, None);
    let mut t = [gso_transmit(rx.local_addr(), &bytes, 1200)];
    send_all(&mut tx, &mut t);
    assert_eq!(tx.stats().send_messages, 2);
    let got = recv_datagrams(&mut rx, 100, DEADLINE);
    assert_eq!(flatten(&got), parts);
}

fn kernel_refusing_gso_falls_back_to_plain_datagrams<B: TestBackend>() {
    // A real kernel refusal: more segments in one UDP_SEGMENT send than the
    // kernel's UDP_MAX_SEGMENTS (64, or 128 since Linux 6.9) gets EINVAL
    // from udp_send_skb. Allow 200 so the backend asks for 150.
    let cfg = UdpConfig { gso_max_segments: 200, ..udp_config() };
    let mut tx = B::open_with("127.0.0.1:0".parse().unwrap(), &cfg).unwrap();
    assert!(tx.capabilities().gso);
    let rx_cfg = UdpConfig { gro: false, ..udp_config() };
    let mut rx = B::open_with("127.0.0.1:0".parse().unwrap(), &rx_cfg).unwrap();
    let (bytes, parts) = burst(150, 100, None);
    let mut t = [gso_transmit(rx.local_addr(), &bytes, 100)];
    send_all(&mut tx, &mut t);
    let stats = tx.stats();
    eprintln!("after refused GSO send: {stats:?}");
    assert_eq!(stats.gso_fallbacks, 1);
    assert_eq!(stats.gso_fallback_errno, libc_einval(), "udp_send_skb: too many segments is EINVAL");
    assert!(!tx.capabilities().gso, "GSO stays off for the socket");
    assert_eq!(stats.send_messages, 150, "resent one datagram per message");
    assert_eq!(stats.send_dropped, 0);
    let got = recv_datagrams(&mut rx, 150, DEADLINE);
    assert_eq!(flatten(&got), parts, "every datagram arrives once, in order");

    // Later segmented transmits go out as plain datagrams straight away.
    let (bytes, parts) = burst(5, 1200, None);
    let mut t = [gso_transmit(rx.local_addr(), &bytes, 1200)];
    send_all(&mut tx, &mut t);
    assert_eq!(tx.stats().gso_fallbacks, 1);
    assert_eq!(tx.stats().send_messages, 155);
    assert_eq!(flatten(&recv_datagrams(&mut rx, 5, DEADLINE)), parts);
}

fn unsendable_transmit_is_dropped_without_turning_gso_off<B: TestBackend>() {
    // Port 0 is EINVAL in udp_sendmsg, segmented or not: the backend must
    // tell that apart from a refused segmentation, drop the transmit and
    // keep GSO for the others.
    let mut tx = B::open_with("127.0.0.1:0".parse().unwrap(), &udp_config()).unwrap();
    let cfg = UdpConfig { gro: false, ..udp_config() };
    let mut rx = B::open_with("127.0.0.1:0".parse().unwrap(), &cfg).unwrap();
    let port_zero: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let (bytes, parts) = burst(4, 1200, None);
    let lone = payload(1, 300);
    let mut t = [
        gso_transmit(port_zero, &bytes, 1200),
        gso_transmit(rx.local_addr(), &bytes, 1200),
        Transmit { destination: port_zero, source: None, ecn: None, segment_size: None, contents: &lone },
        Transmit { destination: rx.local_addr(), source: None, ecn: None, segment_size: None, contents: &lone },
    ];
    let sent = tx.send(&mut t).unwrap();
    assert_eq!(sent, 4, "dropped transmits count as done");
    let stats = tx.stats();
    assert_eq!(stats.send_dropped, 2);
    assert_eq!(stats.gso_fallbacks, 0);
    assert!(tx.capabilities().gso);
    let mut want = parts;
    want.push(lone.clone());
    assert_eq!(flatten(&recv_datagrams(&mut rx, 5, DEADLINE)), want);
}

/// EINVAL's value on Linux (asm-generic/errno-base.h).
fn libc_einval() -> i32 {
    22
}

fn mixed_batch_of_plain_and_segmented_transmits<B: TestBackend>() {
    let mut tx = B::open_with("127.0.0.1:0".parse().unwrap(), &udp_config()).unwrap();
    let cfg = UdpConfig { gro: false, ..udp_config() };
    let mut rx = B::open_with("127.0.0.1:0".parse().unwrap(), &cfg).unwrap();
    let dest = rx.local_addr();
    let (a, a_parts) = burst(3, 1200, Some(77));
    let single = payload(999, 321);
    let (c, c_parts) = burst(4, 1000, None);
    let mut t = [
        gso_transmit(dest, &a, 1200),
        Transmit { destination: dest, source: None, ecn: None, segment_size: None, contents: &single },
        // A segment size not smaller than the contents means one datagram.
        gso_transmit(dest, &single, 5000),
        gso_transmit(dest, &c, 1000),
    ];
    send_all(&mut tx, &mut t);
    let mut want = a_parts;
    want.push(single.clone());
    want.push(single.clone());
    want.extend(c_parts);
    let got = recv_datagrams(&mut rx, want.len(), DEADLINE);
    assert_eq!(flatten(&got), want);
}

for_each_backend!(
    gso_send_arrives_as_separate_datagrams_at_a_plain_socket,
    gro_receives_a_gso_burst_coalesced,
    without_gro_a_gso_burst_arrives_split,
    big_transmits_are_split_into_several_gso_messages,
    kernel_refusing_gso_falls_back_to_plain_datagrams,
    unsendable_transmit_is_dropped_without_turning_gso_off,
    mixed_batch_of_plain_and_segmented_transmits,
);
