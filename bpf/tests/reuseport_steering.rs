//! SO_REUSEPORT steering on loopback: real sockets, real program, real
//! counters. Needs root (CAP_BPF + CAP_NET_ADMIN), as CI has.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use quicpro_bpf::{BpfError, CidLayout, ReuseportCounters, ReuseportGroup};
use socket2::{Domain, Protocol, Socket, Type};

const LAYOUT: CidLayout = CidLayout::QUICPRO_DEFAULT;
const DEADLINE: Duration = Duration::from_secs(20);

/// `n` UDP sockets on one 127.0.0.1 port, SO_REUSEPORT, non-blocking.
fn reuseport_sockets(n: usize) -> Vec<UdpSocket> {
    reuseport_sockets_on(n, "127.0.0.1:0".parse().expect("addr"))
}

/// `n` UDP sockets on one port of `addr` (port 0: the first picks it);
/// IPv6 sockets are dual-stack.
fn reuseport_sockets_on(n: usize, mut addr: SocketAddr) -> Vec<UdpSocket> {
    let mut out: Vec<UdpSocket> = Vec::new();
    for _ in 0..n {
        let domain = if addr.is_ipv6() { Domain::IPV6 } else { Domain::IPV4 };
        let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
        if addr.is_ipv6() {
            s.set_only_v6(false).expect("IPV6_V6ONLY off");
        }
        s.set_reuse_port(true).expect("SO_REUSEPORT");
        s.set_recv_buffer_size(4 << 20).expect("SO_RCVBUF");
        s.bind(&addr.into()).expect("bind");
        s.set_nonblocking(true).expect("nonblocking");
        let u: UdpSocket = s.into();
        addr = u.local_addr().expect("local addr");
        out.push(u);
    }
    out
}

fn senders(n: usize) -> Vec<UdpSocket> {
    (0..n).map(|_| UdpSocket::bind("127.0.0.1:0").expect("sender bind")).collect()
}

/// A short-header datagram (RFC 9000 §17.3.1) for an 8-byte DCID naming
/// `worker` at offset 1, with `seq` after the DCID so each is unique.
fn short_packet(worker: u8, seq: u32) -> Vec<u8> {
    let mut p = vec![0x40u8];
    let cid = [0x1d, worker, 0xa1, 0xa2, (seq >> 8) as u8, seq as u8, 0x77, 0x88];
    p.extend_from_slice(&cid);
    p.extend_from_slice(&seq.to_be_bytes());
    p.resize(64, 0xee);
    p
}

/// A long-header Initial-like datagram (RFC 9000 §17.2) with `dcid`,
/// padded to 1200 bytes as client Initials are (§14.1).
fn long_packet(dcid: &[u8], seq: u32) -> Vec<u8> {
    let mut p = vec![0xc0u8, 0, 0, 0, 1, dcid.len() as u8];
    p.extend_from_slice(dcid);
    p.push(0); // SCID length
    p.extend_from_slice(&seq.to_be_bytes());
    p.resize(1200, 0);
    p
}

/// Receives until `expected` datagrams arrived in total or the deadline;
/// returns per-socket payloads.
fn drain_until(sockets: &[UdpSocket], got: &mut [Vec<Vec<u8>>], expected: usize, deadline: Instant) {
    let mut buf = [0u8; 2048];
    loop {
        let mut progress = false;
        for (i, s) in sockets.iter().enumerate() {
            while let Ok(n) = s.recv(&mut buf) {
                got[i].push(buf[..n].to_vec());
                progress = true;
            }
        }
        let total: usize = got.iter().map(Vec::len).sum();
        if total >= expected {
            return;
        }
        assert!(Instant::now() < deadline, "only {total} of {expected} datagrams arrived before the deadline");
        if !progress {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

fn group_for(sockets: &[UdpSocket]) -> ReuseportGroup {
    let group = ReuseportGroup::new(sockets.len() as u32, LAYOUT).expect("load steering program (needs root)");
    for (i, s) in sockets.iter().enumerate() {
        group.add_socket(i as u32, s.as_fd()).expect("add socket");
    }
    group.attach(sockets[0].as_fd()).expect("attach");
    group
}

fn run_short_header_spread(n: usize) -> ReuseportCounters {
    const COUNT: u32 = 4000;
    let sockets = reuseport_sockets(n);
    let group = group_for(&sockets);
    let dest = sockets[0].local_addr().expect("addr");
    let tx = senders(40);
    let mut got = vec![Vec::new(); n];
    let deadline = Instant::now() + DEADLINE;
    for seq in 0..COUNT {
        let worker = (seq.wrapping_mul(2_654_435_761) >> 7) as usize % n;
        tx[seq as usize % tx.len()].send_to(&short_packet(worker as u8, seq), dest).expect("send");
        if seq % 200 == 199 {
            drain_until(&sockets, &mut got, seq as usize + 1, deadline);
        }
    }
    drain_until(&sockets, &mut got, COUNT as usize, deadline);
    let mut per_worker = vec![0usize; n];
    for (i, dgrams) in got.iter().enumerate() {
        for d in dgrams {
            assert_eq!(d[2] as usize, i, "datagram for worker {} reached socket {i}", d[2]);
        }
        per_worker[i] = dgrams.len();
    }
    assert!(per_worker.iter().all(|&c| c > 0), "every worker got traffic: {per_worker:?}");
    assert_eq!(per_worker.iter().sum::<usize>(), COUNT as usize);
    let c = group.counters().expect("counters");
    assert_eq!(c.steered_by_cid, u64::from(COUNT), "{c:?}");
    assert_eq!(c.fallbacks(), 0, "{c:?}");
    eprintln!("N={n}: per socket {per_worker:?}, counters {c:?}");
    c
}

#[test]
fn short_headers_reach_the_worker_named_in_the_dcid_two_workers() {
    run_short_header_spread(2);
}

#[test]
fn short_headers_reach_the_worker_named_in_the_dcid_four_workers() {
    run_short_header_spread(4);
}

#[test]
fn long_headers_with_one_dcid_stay_on_one_worker() {
    let n = 4;
    let sockets = reuseport_sockets(n);
    let group = group_for(&sockets);
    let dest = sockets[0].local_addr().expect("addr");
    let tx = senders(32);
    let deadline = Instant::now() + DEADLINE;
    // Client-chosen DCIDs (not our layout: worker byte 0xff, or another
    // length): hashed. Several DCIDs so that more than one worker is used.
    let dcids: Vec<Vec<u8>> =
        (0u8..12).map(|k| if k % 2 == 0 { vec![k, 0xff, 3, 4, 5, 6, 7, k] } else { (0..16).map(|j| j ^ k.wrapping_mul(37)).collect() }).collect();
    let mut got = vec![Vec::new(); n];
    let mut sent = 0;
    for (d, dcid) in dcids.iter().enumerate() {
        for (port, s) in tx.iter().enumerate() {
            s.send_to(&long_packet(dcid, (d * 1000 + port) as u32), dest).expect("send");
            sent += 1;
        }
        drain_until(&sockets, &mut got, sent, deadline);
    }
    let mut owner: HashMap<Vec<u8>, usize> = HashMap::new();
    for (i, dgrams) in got.iter().enumerate() {
        for p in dgrams {
            let len = p[5] as usize;
            let dcid = p[6..6 + len].to_vec();
            let prev = owner.insert(dcid.clone(), i);
            assert!(prev.is_none_or(|w| w == i), "DCID {dcid:02x?} reached sockets {prev:?} and {i}");
        }
    }
    assert_eq!(owner.len(), dcids.len());
    let used: std::collections::HashSet<_> = owner.values().collect();
    assert!(used.len() > 1, "hash spreads DCIDs over workers: {owner:?}");
    let c = group.counters().expect("counters");
    assert_eq!(c.steered_by_hash, sent as u64, "{c:?}");
    assert_eq!(c.total(), sent as u64, "{c:?}");

    // Long headers carrying one of our DCIDs (Handshake packets, Initials
    // after the server's first flight) go by the worker byte.
    let mut got = vec![Vec::new(); n];
    let mut sent2 = 0;
    for w in 0..n as u8 {
        for (port, s) in tx.iter().enumerate() {
            s.send_to(&long_packet(&[0x05, w, 1, 2, 3, 4, 5, 6], port as u32), dest).expect("send");
            sent2 += 1;
        }
    }
    drain_until(&sockets, &mut got, sent2, deadline);
    for (i, dgrams) in got.iter().enumerate() {
        assert_eq!(dgrams.len(), tx.len());
        assert!(dgrams.iter().all(|p| p[7] as usize == i));
    }
    let c2 = group.counters().expect("counters");
    assert_eq!(c2.steered_by_cid - c.steered_by_cid, sent2 as u64, "{c2:?}");
    eprintln!("long headers: counters {c2:?}");
}

#[test]
fn out_of_range_empty_slot_and_malformed_are_delivered_and_counted() {
    let n = 4;
    let sockets = reuseport_sockets(n);
    let group = ReuseportGroup::new(n as u32, LAYOUT).expect("load");
    // Worker 3's socket is in the reuseport group but not in the map.
    for (i, s) in sockets.iter().enumerate().take(3) {
        group.add_socket(i as u32, s.as_fd()).expect("add");
    }
    group.attach(sockets[0].as_fd()).expect("attach");
    let dest = sockets[0].local_addr().expect("addr");
    let tx = senders(16);
    let deadline = Instant::now() + DEADLINE;
    let mut got = vec![Vec::new(); n];
    let per_kind = 200u32;
    for seq in 0..per_kind {
        let s = &tx[seq as usize % tx.len()];
        s.send_to(&short_packet(9 + (seq % 200) as u8, seq), dest).expect("send"); // out of range
        s.send_to(&short_packet(3, seq), dest).expect("send"); // empty slot
        s.send_to(&[], dest).expect("send"); // empty datagram: malformed
        let mut bad = long_packet(&[1; 8], seq);
        bad[5] = 25; // DCID length over 20: malformed
        s.send_to(&bad, dest).expect("send");
        if seq % 25 == 24 {
            drain_until(&sockets, &mut got, 4 * (seq as usize + 1), deadline);
        }
    }
    drain_until(&sockets, &mut got, 4 * per_kind as usize, deadline);
    let total: usize = got.iter().map(Vec::len).sum();
    assert_eq!(total, 4 * per_kind as usize, "nothing dropped");
    let c = group.counters().expect("counters");
    assert_eq!(c.fallback_out_of_range, u64::from(per_kind), "{c:?}");
    assert_eq!(c.fallback_empty_slot, u64::from(per_kind), "{c:?}");
    assert_eq!(c.malformed, u64::from(2 * per_kind), "{c:?}");
    assert_eq!(c.steered_by_cid + c.steered_by_hash + c.fallback_select_error, 0, "{c:?}");
    eprintln!("fallbacks: per socket {:?}, counters {c:?}", got.iter().map(Vec::len).collect::<Vec<_>>());
}

#[test]
fn a_closed_socket_leaves_its_slot_and_its_packets_fall_back() {
    let mut sockets = reuseport_sockets(2);
    let group = group_for(&sockets);
    assert!(group.slot_cookie(1).expect("lookup").is_some());
    let closed = sockets.pop().expect("worker 1");
    drop(closed);
    // The kernel clears the slot when the socket leaves the group.
    assert_eq!(group.slot_cookie(1).expect("lookup"), None, "slot 1 emptied by close");
    assert!(group.slot_cookie(0).expect("lookup").is_some());
    let dest = sockets[0].local_addr().expect("addr");
    let tx = senders(8);
    let deadline = Instant::now() + DEADLINE;
    let mut got = vec![Vec::new(); 1];
    for seq in 0..400u32 {
        tx[seq as usize % tx.len()].send_to(&short_packet((seq % 2) as u8, seq), dest).expect("send");
    }
    drain_until(&sockets, &mut got, 400, deadline);
    assert_eq!(got[0].len(), 400, "worker 1's packets are not dropped");
    let c = group.counters().expect("counters");
    assert_eq!(c.steered_by_cid, 200, "{c:?}");
    assert_eq!(c.fallback_empty_slot, 200, "{c:?}");

    // A new group (a restarted set of workers) starts from a fresh map.
    let fresh = ReuseportGroup::new(2, LAYOUT).expect("load");
    assert_eq!(fresh.slot_cookie(0).expect("lookup"), None);
    assert_eq!(fresh.slot_cookie(1).expect("lookup"), None);
    assert_eq!(fresh.counters().expect("counters"), ReuseportCounters::default());
}

#[test]
fn wrong_sockets_give_typed_errors() {
    let group = ReuseportGroup::new(2, LAYOUT).expect("load");

    // Bound without SO_REUSEPORT: not in a reuseport group.
    let plain = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let e = group.add_socket(0, plain.as_fd()).expect_err("plain socket");
    assert!(matches!(e, BpfError::NotInReuseportGroup { .. }), "{e:?}");
    assert!(e.to_string().contains("--steering off"), "{e}");
    let e = group.attach(plain.as_fd()).expect_err("attach to a plain socket");
    assert!(matches!(e, BpfError::NotInReuseportGroup { .. }), "{e:?}");

    // SO_REUSEPORT but never bound.
    let unbound = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
    unbound.set_reuse_port(true).expect("SO_REUSEPORT");
    let e = group.add_socket(0, unbound.as_fd()).expect_err("unbound socket");
    assert!(matches!(e, BpfError::NotInReuseportGroup { .. }), "{e:?}");

    // Not a socket at all.
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors pipe writes.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: pipe just returned these descriptors; we own them.
    let (r, _w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let e = group.add_socket(0, r.as_fd()).expect_err("pipe");
    assert!(matches!(e, BpfError::BadSocket { .. }), "{e:?}");
    let e = group.attach(r.as_fd()).expect_err("pipe");
    assert!(matches!(e, BpfError::BadSocket { .. }), "{e:?}");

    // A Unix datagram socket is not an inet socket.
    let (ua, _ub) = std::os::unix::net::UnixDatagram::pair().expect("pair");
    let e = group.add_socket(0, ua.as_fd()).expect_err("unix socket");
    assert!(matches!(e, BpfError::UnsupportedSocket { .. }), "{e:?}");

    // Worker index outside the group.
    let ok = reuseport_sockets(1);
    let e = group.add_socket(2, ok[0].as_fd()).expect_err("worker 2 of 2");
    assert!(matches!(e, BpfError::WorkerOutOfRange { worker: 2, workers: 2 }), "{e:?}");

    // Bad configurations never reach the kernel.
    assert!(matches!(ReuseportGroup::new(0, LAYOUT), Err(BpfError::InvalidConfig { .. })));
    assert!(matches!(ReuseportGroup::new(257, LAYOUT), Err(BpfError::InvalidConfig { .. })));
    let bad = CidLayout { worker_id_offset: 8, cid_len: 8 };
    assert!(matches!(ReuseportGroup::new(2, bad), Err(BpfError::InvalidConfig { .. })));
    let _ = ok[0].as_raw_fd();
}

/// The program's offsets do not depend on the IP version: IPv6, and IPv4
/// arriving on dual-stack `[::]` sockets (how `quicpro serve` binds by
/// default), are steered the same way.
#[test]
fn ipv6_and_dual_stack_sockets_are_steered() {
    for (bind, from, to_v4) in [("[::1]:0", "[::1]:0", false), ("[::]:0", "127.0.0.1:0", true), ("[::]:0", "[::1]:0", false)] {
        let sockets = reuseport_sockets_on(2, bind.parse().expect("addr"));
        let group = group_for(&sockets);
        let port = sockets[0].local_addr().expect("addr").port();
        let dest: SocketAddr = if to_v4 { SocketAddr::from(([127, 0, 0, 1], port)) } else { format!("[::1]:{port}").parse().expect("addr") };
        let tx: Vec<UdpSocket> = (0..8).map(|_| UdpSocket::bind(from).expect("sender")).collect();
        let deadline = Instant::now() + DEADLINE;
        let mut got = vec![Vec::new(); 2];
        for seq in 0..400u32 {
            tx[seq as usize % tx.len()].send_to(&short_packet((seq % 2) as u8, seq), dest).expect("send");
        }
        drain_until(&sockets, &mut got, 400, deadline);
        for (i, dgrams) in got.iter().enumerate() {
            assert_eq!(dgrams.len(), 200, "bind {bind}, from {from}");
            assert!(dgrams.iter().all(|d| d[2] as usize == i), "bind {bind}, from {from}");
        }
        let c = group.counters().expect("counters");
        assert_eq!(c.steered_by_cid, 400, "bind {bind}, from {from}: {c:?}");
    }
}

#[test]
fn a_removed_socket_falls_back_until_added_again() {
    let sockets = reuseport_sockets(2);
    let group = group_for(&sockets);
    let dest = sockets[0].local_addr().expect("addr");
    let tx = senders(8);
    let deadline = Instant::now() + DEADLINE;
    group.remove_socket(1).expect("remove");
    group.remove_socket(1).expect("removing an empty slot is fine");
    assert_eq!(group.slot_cookie(1).expect("lookup"), None);
    let mut got = vec![Vec::new(); 2];
    for seq in 0..100u32 {
        tx[seq as usize % tx.len()].send_to(&short_packet(1, seq), dest).expect("send");
    }
    drain_until(&sockets, &mut got, 100, deadline);
    let c = group.counters().expect("counters");
    assert_eq!(c.fallback_empty_slot, 100, "{c:?}");
    group.add_socket(1, sockets[1].as_fd()).expect("add again");
    let mut got = vec![Vec::new(); 2];
    for seq in 0..100u32 {
        tx[seq as usize % tx.len()].send_to(&short_packet(1, seq), dest).expect("send");
    }
    drain_until(&sockets, &mut got, 100, deadline);
    assert_eq!(got[1].len(), 100, "all back on worker 1");
    assert_eq!(group.counters().expect("counters").steered_by_cid, 100);
}

#[test]
fn detach_returns_the_group_to_the_kernel_hash() {
    let sockets = reuseport_sockets(2);
    let group = group_for(&sockets);
    ReuseportGroup::detach(sockets[1].as_fd()).expect("detach");
    let dest = sockets[0].local_addr().expect("addr");
    let tx = senders(8);
    let mut got = vec![Vec::new(); 2];
    for seq in 0..100u32 {
        tx[seq as usize % tx.len()].send_to(&short_packet(1, seq), dest).expect("send");
    }
    drain_until(&sockets, &mut got, 100, Instant::now() + DEADLINE);
    assert_eq!(group.counters().expect("counters").total(), 0, "program no longer runs");
    // Detaching twice: nothing attached any more.
    let e = ReuseportGroup::detach(sockets[1].as_fd()).expect_err("nothing to detach");
    assert!(matches!(e, BpfError::Os { errno: libc::ENOENT, .. }), "{e:?}");
}
