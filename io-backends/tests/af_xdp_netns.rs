//! The AF_XDP backend and the XDP program on a veth pair between two
//! network namespaces (root only; CI runs as root). Threads enter the
//! namespaces with setns, so backend and peers run in this process.
//!
//! - the kernel fact the design rests on: an XSKMAP redirect reaches only a
//!   socket bound to the queue the packet arrived on;
//! - malformed frames from a raw packet socket are passed to the kernel and
//!   counted by reason, and never reach (or crash) the backend.
#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::channel;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bpf::xdp::XdpCounters;
use io_backends::udp::UdpConfig;
use io_backends::xdp::{AfXdpBackend, AfXdpConfig};
use io_backends::Backend;
use quicpro_tests::netns::{assert_gone, VethPair, SERVER_V4, SERVER_V6};
use std::os::fd::AsRawFd;
use std::sync::Mutex;

/// Receives everything waiting on `b`; returns the datagrams' source addresses.
fn drain(b: &mut AfXdpBackend, sources: &mut Vec<SocketAddr>) {
    loop {
        let mut batch = b.recv().unwrap();
        if batch.is_empty() {
            break;
        }
        while let Some((meta, _buf)) = batch.next_buffer() {
            sources.push(meta.source);
        }
    }
}

/// A QUIC-looking long-header datagram (enough for the program to redirect).
fn long_header() -> Vec<u8> {
    let mut d = vec![0xc0, 0, 0, 0, 1, 8];
    d.extend_from_slice(&[0x11; 8]);
    d.extend_from_slice(&[0; 20]);
    d
}

/// Sends one datagram from each of `n` fresh sockets (so RSS spreads them
/// over the queues), from inside the client namespace.
fn send_from_many(client_ns: &str, to: SocketAddr, n: usize) {
    let ns = client_ns.to_string();
    std::thread::spawn(move || {
        VethPair::enter(&ns);
        let bind = if to.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" };
        for _ in 0..n {
            let s = UdpSocket::bind(bind).unwrap();
            s.send_to(&long_header(), to).unwrap();
        }
    })
    .join()
    .unwrap();
}

/// Verifies the kernel behaviour the steering design depends on: the XSKMAP
/// entry for queue 1 points at the socket bound to queue 0, and the packets
/// arriving on queue 1 are dropped by the kernel even though the program's
/// redirect succeeded. With one socket per queue, all arrive.
#[test]
fn xskmap_redirect_only_reaches_the_socket_of_the_arrival_queue() {
    let pair = VethPair::create("k", 2);
    let names = pair.names();
    let server_ns = pair.server_ns.clone();
    let ifname = pair.server_if.clone();
    let (to_server, cmd) = channel::<u32>();
    let (ready_tx, ready) = channel::<()>();
    let (to_test, result) = channel::<(usize, usize, XdpCounters)>();
    let server = std::thread::spawn(move || {
        VethPair::enter(&server_ns);
        let bind: SocketAddr = "0.0.0.0:4500".parse().unwrap();
        let mut q0 = AfXdpBackend::open(bind, &UdpConfig::default(), &AfXdpConfig::new(&ifname, 0)).unwrap();
        eprintln!("{}", q0.describe());
        // The wrong wiring: queue 1's entry is queue 0's socket.
        q0.steering().register_socket(1, q0.as_raw_fd()).unwrap();
        let mut q1: Option<AfXdpBackend> = None;
        ready_tx.send(()).unwrap();
        while let Ok(phase) = cmd.recv_timeout(Duration::from_secs(30)) {
            let deadline = Instant::now() + Duration::from_millis(1500);
            let mut got = Vec::new();
            while Instant::now() < deadline {
                drain(&mut q0, &mut got);
                if let Some(b) = q1.as_mut() {
                    drain(b, &mut got);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let counters = q0.steering().counters().unwrap();
            let via_kernel = q0.xdp_stats().udp_rx_buffers + q1.as_ref().map_or(0, |b| b.xdp_stats().udp_rx_buffers);
            if phase == 0 {
                // The right wiring: a socket bound to queue 1 takes its entry.
                q1 = Some(AfXdpBackend::open(bind, &UdpConfig::default(), &AfXdpConfig::new(&ifname, 1)).unwrap());
            }
            to_test.send((got.len(), via_kernel as usize, counters)).unwrap();
            if phase != 0 {
                break;
            }
        }
    });
    let to: SocketAddr = format!("{SERVER_V4}:4500").parse().unwrap();
    const N: usize = 64;
    ready.recv_timeout(Duration::from_secs(20)).unwrap();

    send_from_many(&pair.client_ns, to, N);
    to_server.send(0).unwrap();
    let (got, via_kernel, c) = result.recv_timeout(Duration::from_secs(20)).unwrap();
    eprintln!("wrong wiring: received {got} of {N} ({via_kernel} through the kernel socket); {c}");
    assert_eq!(via_kernel, 0, "XDP saw every datagram");
    // The program redirected all of them (a socket was in every entry)...
    assert_eq!(c.steered_long, N as u64, "{c}");
    // ...but only those that arrived on queue 0 were delivered.
    assert!(got > 0 && got < N, "received {got} of {N}: the kernel delivered across queues?");

    send_from_many(&pair.client_ns, to, N);
    to_server.send(1).unwrap();
    let (got2, via_kernel2, c2) = result.recv_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(via_kernel2, 0);
    eprintln!("one socket per queue: received {got2} of {N}; {c2}");
    assert_eq!(got2, N, "every datagram reaches the socket of its queue");
    assert_eq!(c2.steered_long, 2 * N as u64, "{c2}");
    assert_eq!(c2.no_socket, 0);
    server.join().unwrap();

    // The last backend closed: the program is detached.
    assert_eq!(pair.server_xdp_program(), None);
    drop(pair);
    assert_gone(&names);
}

// ---------------------------------------------------------------- bad input

fn frame(dst: [u8; 6], ethertype: u16, body: &[u8]) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x99]);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(body);
    f
}

fn ipv4(proto: u8, ihl: u8, frag: u16, total_extra: i32, l4: &[u8]) -> Vec<u8> {
    let hl = usize::from(ihl) * 4;
    let total = (hl + l4.len()) as i32 + total_extra;
    let mut h = vec![0x40 | ihl, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0, 198, 18, 0, 2, 198, 18, 0, 1];
    h[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    h[6..8].copy_from_slice(&frag.to_be_bytes());
    h.resize(hl.max(20), 0x01); // option bytes (NOP) for IHL > 5
    h.extend_from_slice(l4);
    h
}

fn udp(dport: u16, len_extra: i32, payload: &[u8]) -> Vec<u8> {
    let len = (8 + payload.len()) as i32 + len_extra;
    let mut u = vec![0xc3, 0x50];
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&(len as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

fn ipv6(next: u8, l4: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    h.push(next);
    h.push(64);
    let c: std::net::Ipv6Addr = "2001:2::2".parse().unwrap();
    let s: std::net::Ipv6Addr = SERVER_V6.parse().unwrap();
    h.extend_from_slice(&c.octets());
    h.extend_from_slice(&s.octets());
    h.extend_from_slice(l4);
    h
}

/// Sends raw Ethernet frames out of `ifname` from inside `ns`.
fn send_raw(ns: &str, ifname: &str, frames: Vec<Vec<u8>>) {
    let (ns, ifname) = (ns.to_string(), ifname.to_string());
    std::thread::spawn(move || {
        VethPair::enter(&ns);
        // SAFETY: plain socket(2); the fd is closed below.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        assert!(fd >= 0, "AF_PACKET socket: {}", std::io::Error::last_os_error());
        let c = std::ffi::CString::new(ifname).unwrap();
        // SAFETY: valid C string.
        let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
        assert!(idx > 0);
        for f in frames {
            // SAFETY: sockaddr_ll zero-initialised then filled; sizes match.
            let rc = unsafe {
                let mut sll: libc::sockaddr_ll = std::mem::zeroed();
                sll.sll_family = libc::AF_PACKET as u16;
                sll.sll_ifindex = idx as i32;
                sll.sll_halen = 6;
                libc::sendto(fd, f.as_ptr().cast(), f.len(), 0, (&sll as *const libc::sockaddr_ll).cast(), std::mem::size_of::<libc::sockaddr_ll>() as u32)
            };
            assert_eq!(rc, f.len() as isize, "raw send of {} bytes: {}", f.len(), std::io::Error::last_os_error());
        }
        // SAFETY: our fd.
        unsafe { libc::close(fd) };
    })
    .join()
    .unwrap();
}

#[test]
fn malformed_frames_are_passed_and_counted_never_delivered() {
    let pair = VethPair::create("m", 2);
    let names = pair.names();
    let mac = pair.server_mac();
    let server_ns = pair.server_ns.clone();
    let ifname = pair.server_if.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let (ready_tx, ready) = channel::<XdpCounters>();
    // The server thread's latest view: counters, delivered sources, unparsed frames.
    let state: Arc<Mutex<(XdpCounters, Vec<SocketAddr>, u64)>> = Arc::default();
    let state2 = state.clone();
    const PORT: u16 = 4501;
    let server = std::thread::spawn(move || {
        VethPair::enter(&server_ns);
        let bind: SocketAddr = format!("[::]:{PORT}").parse().unwrap();
        let mut backends: Vec<AfXdpBackend> = (0..2).map(|q| AfXdpBackend::open(bind, &UdpConfig::default(), &AfXdpConfig::new(&ifname, q)).unwrap()).collect();
        ready_tx.send(backends[0].steering().counters().unwrap()).unwrap();
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !stop2.load(Ordering::SeqCst) && Instant::now() < deadline {
            for b in backends.iter_mut() {
                drain(b, &mut got);
            }
            let unparsed: u64 = backends.iter().map(|b| b.xdp_stats().rx_unparsed).sum();
            *state2.lock().unwrap() = (backends[0].steering().counters().unwrap(), got.clone(), unparsed);
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let before = ready.recv_timeout(Duration::from_secs(20)).unwrap();

    let quic_short_trunc = [0x40u8, 1, 0];
    let frames = vec![
        // Ethernet: a VLAN tag cut short.
        frame(mac, 0x8100, &[0, 5]),
        // IPv4: header cut short; IHL 4.
        frame(mac, 0x0800, &[0x45, 0, 0, 20, 0, 0]),
        frame(mac, 0x0800, &ipv4(17, 4, 0, 0, &udp(PORT, 0, &long_header()))),
        // IPv4 options; a fragment: not parsed, passed.
        frame(mac, 0x0800, &ipv4(17, 6, 0, 0, &udp(PORT, 0, &long_header()))),
        frame(mac, 0x0800, &ipv4(17, 5, 0x2000, 0, &udp(PORT, 0, &long_header()))),
        // UDP: header cut short; length beyond the IP payload; length < 8.
        frame(mac, 0x0800, &ipv4(17, 5, 0, 0, &[0xc3, 0x50, 0x11])),
        frame(mac, 0x0800, &ipv4(17, 5, 0, 0, &udp(PORT, 100, &long_header()))),
        frame(mac, 0x0800, &ipv4(17, 5, 0, 0, &udp(PORT, -(long_header().len() as i32) - 4, &long_header()))),
        // QUIC: empty payload; short header shorter than our CID.
        frame(mac, 0x0800, &ipv4(17, 5, 0, 0, &udp(PORT, 0, &[]))),
        frame(mac, 0x0800, &ipv4(17, 5, 0, 0, &udp(PORT, 0, &quic_short_trunc))),
        frame(mac, 0x86dd, &ipv6(17, &udp(PORT, 0, &quic_short_trunc))),
        // IPv6: header cut short; a hop-by-hop extension header.
        frame(mac, 0x86dd, &[0x60, 0, 0, 0]),
        frame(mac, 0x86dd, &ipv6(0, &[17, 0, 0, 0, 0, 0, 0, 0])),
        // Not ours: another UDP port, TCP, an unknown EtherType.
        frame(mac, 0x0800, &ipv4(17, 5, 0, 0, &udp(9, 0, &long_header()))),
        frame(mac, 0x0800, &ipv4(6, 5, 0, 0, &[0; 20])),
        frame(mac, 0x88b5, &[0; 46]),
        // And one well-formed long header over IPv6, which is delivered.
        frame(mac, 0x86dd, &ipv6(17, &udp(PORT, 0, &long_header()))),
    ];
    send_raw(&pair.client_ns, &pair.client_if, frames);

    // Wait (bounded) until the well-formed datagram was delivered and every
    // malformed frame was counted; then check the exact figures.
    let expect: SocketAddr = "[2001:2::2]:50000".parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (c, got, _) = state.lock().unwrap().clone();
        let counted = c.malformed() - before.malformed() >= 10 && c.passed_other_port > before.passed_other_port;
        if (counted && got.contains(&expect)) || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::SeqCst);
    server.join().unwrap();
    let (after, got, unparsed) = state.lock().unwrap().clone();
    eprintln!("before: {before}\nafter:  {after}\ndelivered from {got:?}");
    let d = |a: u64, b: u64| a - b;
    assert_eq!(d(after.malformed_eth, before.malformed_eth), 1, "{after}");
    assert_eq!(d(after.malformed_ip, before.malformed_ip), 3, "{after}");
    assert!(d(after.unsupported_ip, before.unsupported_ip) >= 3, "{after}");
    assert_eq!(d(after.malformed_udp, before.malformed_udp), 3, "{after}");
    assert_eq!(d(after.malformed_quic, before.malformed_quic), 3, "{after}");
    assert_eq!(d(after.passed_other_port, before.passed_other_port), 1, "{after}");
    assert!(d(after.passed_not_quic, before.passed_not_quic) >= 2, "{after}");
    assert_eq!(d(after.steered_long, before.steered_long), 1, "{after}");
    // Only the well-formed datagram reached a worker: through its queue's
    // XSK, with the client's address parsed from the frame.
    assert_eq!(got, vec![expect]);
    assert_eq!(unparsed, 0);
    assert_eq!(pair.server_xdp_program(), None);
    drop(pair);
    assert_gone(&names);
}

// ------------------------------------------------------------ send path

/// Receives one datagram with its TOS / traffic class byte.
fn recv_with_tos(s: &UdpSocket) -> (Vec<u8>, u8) {
    let mut buf = [0u8; 2048];
    let mut ctrl = [0u8; 128];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: msghdr zeroed then pointed at live buffers; recvmsg writes
    // within their lengths; cmsg walking stays within `msg_controllen`.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = ctrl.as_mut_ptr().cast();
        msg.msg_controllen = ctrl.len();
        let n = libc::recvmsg(s.as_raw_fd(), &mut msg, 0);
        assert!(n >= 0, "recvmsg: {}", std::io::Error::last_os_error());
        let mut tos = 0xffu8;
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            let level = (*c).cmsg_level;
            let ty = (*c).cmsg_type;
            if level == libc::IPPROTO_IP && ty == libc::IP_TOS {
                tos = *libc::CMSG_DATA(c);
            } else if level == libc::IPPROTO_IPV6 && ty == libc::IPV6_TCLASS {
                tos = *(libc::CMSG_DATA(c) as *const i32) as u8;
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
        (buf[..n as usize].to_vec(), tos)
    }
}

fn set_opt(s: &UdpSocket, level: i32, name: i32, v: i32) {
    // SAFETY: setsockopt with a live int.
    let rc = unsafe { libc::setsockopt(s.as_raw_fd(), level, name, (&v as *const i32).cast(), std::mem::size_of::<i32>() as u32) };
    assert_eq!(rc, 0, "setsockopt {level}/{name}: {}", std::io::Error::last_os_error());
}

/// Frames built by the backend are accepted by the peer's kernel (IPv4
/// header and UDP checksums right, or it would drop them), carry the ECN
/// bits asked for, and a segmented transmit becomes one frame per
/// datagram. Received ECN bits are reported. Runs with busy-polling on.
#[test]
fn sent_frames_pass_the_peer_kernel_with_ecn_and_segments_busy_polling() {
    use io_backends::Transmit;
    use quic_core::connection::EcnCodepoint;

    let pair = VethPair::create("t", 2);
    let names = pair.names();
    let server_ns = pair.server_ns.clone();
    let ifname = pair.server_if.clone();
    let (ready_tx, ready) = channel::<String>();
    let (seen_tx, seen) = channel::<(SocketAddr, Option<EcnCodepoint>)>();
    const PORT: u16 = 4502;
    let server = std::thread::spawn(move || {
        VethPair::enter(&server_ns);
        let bind: SocketAddr = format!("[::]:{PORT}").parse().unwrap();
        let mut backends: Vec<AfXdpBackend> = (0..2)
            .map(|q| {
                let mut cfg = AfXdpConfig::new(&ifname, q);
                cfg.busy_poll_us = 50;
                AfXdpBackend::open(bind, &UdpConfig::default(), &cfg).unwrap()
            })
            .collect();
        ready_tx.send(backends[0].describe()).unwrap();
        // Answer the first two datagrams (one per family) with 250 bytes in
        // 100-byte segments, ECT(0).
        let payload: Vec<u8> = (0..250u32).map(|i| i as u8).collect();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut answered = 0;
        while answered < 2 && Instant::now() < deadline {
            for b in backends.iter_mut() {
                let _ = b.wait(io_backends::Interest::READABLE, Some(Duration::from_millis(5))).unwrap();
                let mut peers = Vec::new();
                {
                    let mut batch = b.recv().unwrap();
                    while let Some((meta, _)) = batch.next_buffer() {
                        peers.push((meta.source, meta.ecn));
                    }
                }
                for (peer, ecn) in peers {
                    seen_tx.send((peer, ecn)).unwrap();
                    let mut tx = [Transmit { destination: peer, source: None, ecn: Some(EcnCodepoint::Ect0), segment_size: Some(100), contents: &payload }];
                    assert_eq!(b.send(&mut tx).unwrap(), 1);
                    answered += 1;
                }
            }
        }
        let tx: u64 = backends.iter().map(|b| b.xdp_stats().tx_frames).sum();
        let via_udp: u64 = backends.iter().map(|b| b.xdp_stats().tx_via_udp).sum();
        (tx, via_udp)
    });
    let line = ready.recv_timeout(Duration::from_secs(20)).unwrap();
    eprintln!("{line}");
    assert!(line.contains("busy-poll accepted"), "{line}");

    let client_ns = pair.client_ns.clone();
    let client = std::thread::spawn(move || {
        VethPair::enter(&client_ns);
        let mut out = Vec::new();
        for (bind, to, v6) in [("0.0.0.0:0", SERVER_V4, false), ("[::]:0", SERVER_V6, true)] {
            let s = UdpSocket::bind(bind).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            if v6 {
                set_opt(&s, libc::IPPROTO_IPV6, libc::IPV6_RECVTCLASS, 1);
                set_opt(&s, libc::IPPROTO_IPV6, libc::IPV6_TCLASS, 3); // CE
            } else {
                set_opt(&s, libc::IPPROTO_IP, libc::IP_RECVTOS, 1);
                set_opt(&s, libc::IPPROTO_IP, libc::IP_TOS, 3); // CE
            }
            let to = SocketAddr::new(to.parse().unwrap(), PORT);
            s.send_to(&long_header(), to).unwrap();
            let got: Vec<(Vec<u8>, u8)> = (0..3).map(|_| recv_with_tos(&s)).collect();
            out.push((s.local_addr().unwrap().port(), got));
        }
        out
    });
    let replies = client.join().unwrap();
    let (tx_frames, via_udp) = server.join().unwrap();
    let seen: Vec<_> = seen.try_iter().collect();
    eprintln!("server saw {seen:?}; sent {tx_frames} frames, {via_udp} via udp");
    assert_eq!(seen.len(), 2);
    for (peer, ecn) in &seen {
        assert_eq!(*ecn, Some(EcnCodepoint::Ce), "ECN of {peer}");
    }
    assert_eq!(tx_frames, 6);
    assert_eq!(via_udp, 0);
    let payload: Vec<u8> = (0..250u32).map(|i| i as u8).collect();
    for (port, got) in replies {
        assert!(seen.iter().any(|(p, _)| p.port() == port));
        let sizes: Vec<usize> = got.iter().map(|(d, _)| d.len()).collect();
        assert_eq!(sizes, vec![100, 100, 50]);
        let joined: Vec<u8> = got.iter().flat_map(|(d, _)| d.clone()).collect();
        assert_eq!(joined, payload);
        assert!(got.iter().all(|(_, tos)| tos & 0x03 == 0b10), "ECT(0) on every datagram: {got:?}");
    }
    assert_eq!(pair.server_xdp_program(), None);
    drop(pair);
    assert_gone(&names);
}

// --------------------------------------------------------------- errors

/// Drops every capability of the calling thread (capabilities are per
/// thread in Linux; the raw syscall does not sync them across threads).
fn drop_thread_capabilities() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let hdr = Header { version: 0x2008_0522, pid: 0 }; // _LINUX_CAPABILITY_VERSION_3
    let data = [Data { effective: 0, permitted: 0, inheritable: 0 }; 2];
    // SAFETY: capset reads one header and two data structs.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &hdr as *const Header, data.as_ptr()) };
    assert_eq!(rc, 0, "capset: {}", std::io::Error::last_os_error());
}

fn open_err(vars: &[(&str, &str)], queue: u32) -> io_backends::BackendError {
    let map: std::collections::HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let mut cfg = io_backends::BackendConfig::from_lookup(|k| map.get(k).cloned()).unwrap();
    cfg.xdp_queue = queue;
    match io_backends::open(&cfg, "[::]:4503".parse().unwrap()) {
        Ok((b, line)) => panic!("opened {b:?}: {line}"),
        Err(e) => e,
    }
}

/// Each failure says what went wrong and how to fall back; none leaves a
/// program attached.
#[test]
fn open_errors_name_the_cause_and_leave_nothing_attached() {
    let pair = VethPair::create("e", 2);
    let names = pair.names();
    let (server_ns, veth) = (pair.server_ns.clone(), pair.server_if.clone());
    let messages = std::thread::spawn(move || {
        VethPair::enter(&server_ns);
        let mut m = Vec::new();
        // A driver without native XDP (loopback).
        m.push(open_err(&[("QUICPRO_XDP", "lo")], 0).to_string());
        // No such interface.
        m.push(open_err(&[("QUICPRO_XDP", "qxnosuch0")], 0).to_string());
        // A queue the interface does not have.
        m.push(open_err(&[("QUICPRO_XDP", &veth)], 5).to_string());
        // Without privileges (this thread only).
        let ns2 = server_ns.clone();
        let veth2 = veth.clone();
        m.push(
            std::thread::spawn(move || {
                VethPair::enter(&ns2);
                drop_thread_capabilities();
                open_err(&[("QUICPRO_XDP", &veth2)], 0).to_string()
            })
            .join()
            .unwrap(),
        );
        m
    })
    .join()
    .unwrap();
    for m in &messages {
        eprintln!("{m}");
        assert!(m.starts_with("af_xdp: ") && m.contains("unset QUICPRO_XDP"), "{m}");
    }
    assert!(messages[0].contains("does not support XDP in native mode"), "{}", messages[0]);
    assert!(messages[1].contains("no network interface \"qxnosuch0\""), "{}", messages[1]);
    assert!(messages[2].contains("socket on queue 5"), "{}", messages[2]);
    assert!(messages[3].contains("permission denied"), "{}", messages[3]);
    // The failed opens detached what they attached.
    assert_eq!(pair.server_xdp_program(), None);
    let lo = VethPair::link_show(&pair.server_ns, "lo");
    assert!(!lo.contains("prog/xdp"), "{lo}");
    drop(pair);
    assert_gone(&names);
}

/// Generic (SKB) mode, for drivers without native XDP: on a one-queue veth
/// every datagram reaches the queue-0 socket.
#[test]
fn generic_skb_mode_delivers_to_queue_zero() {
    let pair = VethPair::create("x", 1);
    let names = pair.names();
    let server_ns = pair.server_ns.clone();
    let ifname = pair.server_if.clone();
    let (ready_tx, ready) = channel::<String>();
    let server = std::thread::spawn(move || {
        VethPair::enter(&server_ns);
        let mut cfg = AfXdpConfig::new(&ifname, 0);
        cfg.mode = bpf::xdp::XdpMode::Skb;
        let mut b = AfXdpBackend::open("0.0.0.0:4504".parse().unwrap(), &UdpConfig::default(), &cfg).unwrap();
        ready_tx.send(b.describe()).unwrap();
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.len() < 16 && Instant::now() < deadline {
            let _ = b.wait(io_backends::Interest::READABLE, Some(Duration::from_millis(20))).unwrap();
            drain(&mut b, &mut got);
        }
        (got.len(), b.xdp_stats(), b.steering().counters().unwrap())
    });
    let line = ready.recv_timeout(Duration::from_secs(20)).unwrap();
    eprintln!("{line}");
    assert!(line.contains("xdp skb mode"), "{line}");
    send_from_many(&pair.client_ns, format!("{SERVER_V4}:4504").parse().unwrap(), 16);
    let (got, stats, c) = server.join().unwrap();
    eprintln!("{got} datagrams; {stats:?}; {c}");
    assert_eq!(got, 16);
    assert_eq!(stats.udp_rx_buffers, 0, "all through the XSK");
    assert_eq!(c.steered_long, 16, "{c}");
    assert_eq!(pair.server_xdp_program(), None);
    drop(pair);
    assert_gone(&names);
}
