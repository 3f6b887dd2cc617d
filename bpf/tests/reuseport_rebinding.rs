//! End to end: two server workers (runtime `Server`, one thread each) share
//! a port through a connection-ID steering group; a client downloads 8 MB
//! through a UDP relay that changes its outbound source port four times
//! mid-transfer, so the server sees new 4-tuples carrying the same
//! connection IDs (a NAT rebinding, RFC 9000 §9.3). Every datagram must
//! reach the worker that owns the connection.
//!
//! Each switch is a true NAT rebinding: the relay closes the previous
//! outbound socket, so the old mapping is gone and server packets sent to
//! it are lost. The server must follow the client to the new port (RFC 9000
//! §9.3, path validation §8.2) for the download to finish; the steering
//! checks cover the server-bound direction, which SO_REUSEPORT decides.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use h3_core::connection::H3Event;
use h3_core::qpack::HeaderField;
use io_backends::runtime::{Client, ClientOptions, H3Handle, Server, ServerOptions};
use io_backends::udp::SocketHook;
use quic_core::cid_gen::{ConnectionIdGenerator, RoutableCidGenerator};
use quic_core::endpoint::EndpointStats;
use quic_core::stream::StreamId;
use quic_core::tls::{ClientTlsOptions, ServerTlsOptions};
use quicpro_bpf::{CidLayout, ReuseportGroup};

const BODY: u64 = 8_000_000;
const REBINDS: usize = 4;
const DEADLINE: Duration = Duration::from_secs(90);

fn pattern_byte(i: u64) -> u8 {
    (i.wrapping_mul(7).wrapping_add(i / 251)) as u8
}

fn pattern(offset: u64, len: usize) -> Bytes {
    Bytes::from((offset..offset + len as u64).map(pattern_byte).collect::<Vec<u8>>())
}

fn hf(n: &str, v: &str) -> HeaderField {
    HeaderField::new(n.as_bytes().to_vec(), v.as_bytes().to_vec())
}

fn tls() -> ServerTlsOptions {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    ServerTlsOptions::new(vec![ck.cert.der().clone()], key, &[b"h3"])
}

/// One worker: answers every request with BODY pattern bytes until `stop`.
fn worker(mut server: Server, stop: Arc<AtomicBool>) -> EndpointStats {
    let mut pending: HashMap<(H3Handle, StreamId), u64> = HashMap::new();
    let hard_stop = Instant::now() + DEADLINE + Duration::from_secs(10);
    while !stop.load(Ordering::Relaxed) && Instant::now() < hard_stop {
        server.step(Duration::from_millis(if pending.is_empty() { 10 } else { 1 })).expect("server step");
        while server.accept().is_some() {}
        while let Some((h, ev)) = server.poll_event() {
            if let H3Event::Headers { stream, .. } = ev {
                let fields = [hf("content-length", &BODY.to_string())];
                server.respond(h, stream, 200, &fields, false).expect("respond");
                pending.insert((h, stream), 0);
            }
        }
        pending.retain(|&(h, stream), sent| {
            for _ in 0..16 {
                let n = (BODY - *sent).min(64 * 1024) as usize;
                let last = *sent + n as u64 == BODY;
                match server.send_body(h, stream, pattern(*sent, n), last) {
                    Ok(0) => return true,
                    Ok(taken) => {
                        *sent += taken as u64;
                        if *sent == BODY {
                            return false;
                        }
                    }
                    Err(_) => return false,
                }
            }
            true
        });
    }
    server.endpoint_stats()
}

fn start_worker(
    id: u8,
    bind: SocketAddr,
    tls: &ServerTlsOptions,
    secrets: ([u8; 32], [u8; 32]),
    group: &Arc<ReuseportGroup>,
    stop: &Arc<AtomicBool>,
) -> (SocketAddr, JoinHandle<EndpointStats>) {
    let mut opts = ServerOptions::new(bind, tls.clone());
    opts.worker_id = id;
    opts.reset_secret = secrets.0;
    opts.token_secret = secrets.1;
    let g = group.clone();
    opts.backend.udp.after_bind = Some(SocketHook::new("steering", move |fd, _| g.join(u32::from(id), fd).map_err(std::io::Error::other)));
    let (tx, rx) = mpsc::channel();
    let stop = stop.clone();
    let t = std::thread::spawn(move || {
        let server = Server::bind(opts).expect("server bind + join steering group");
        tx.send(server.local_addr()).expect("report address");
        worker(server, stop)
    });
    let addr = rx.recv_timeout(Duration::from_secs(20)).expect("worker started");
    (addr, t)
}

#[derive(Debug, Default)]
struct RelayReport {
    /// Client→server datagrams sent from each outbound socket.
    forwarded_per_socket: Vec<u64>,
    to_client: u64,
    /// Outbound sockets closed at rebindings.
    closed_sockets: usize,
}

/// Client ↔ relay(front) ↔ relay(outbound socket k) ↔ server. Switches to
/// a new outbound socket (new source port) every BODY/(REBINDS+1) bytes
/// returned to the client.
fn relay(server: SocketAddr, stop: Arc<AtomicBool>) -> (SocketAddr, JoinHandle<RelayReport>) {
    let front = UdpSocket::bind("127.0.0.1:0").expect("relay front");
    front.set_nonblocking(true).expect("nonblocking");
    let addr = front.local_addr().expect("addr");
    let t = std::thread::spawn(move || {
        let mut back: Vec<Option<UdpSocket>> = (0..=REBINDS)
            .map(|_| {
                let s = UdpSocket::bind("127.0.0.1:0").expect("relay back");
                s.set_nonblocking(true).expect("nonblocking");
                Some(s)
            })
            .collect();
        let mut report = RelayReport { forwarded_per_socket: vec![0; back.len()], to_client: 0, closed_sockets: 0 };
        let mut client: Option<SocketAddr> = None;
        let mut current = 0usize;
        let mut bytes_to_client = 0u64;
        let step = BODY / (REBINDS as u64 + 1);
        let mut buf = vec![0u8; 65_536];
        let end = Instant::now() + DEADLINE;
        while !stop.load(Ordering::Relaxed) && Instant::now() < end {
            let mut idle = true;
            while let Ok((n, from)) = front.recv_from(&mut buf) {
                client = Some(from);
                idle = false;
                let Some(out) = &back[current] else { continue };
                if out.send_to(&buf[..n], server).is_ok() {
                    report.forwarded_per_socket[current] += 1;
                }
            }
            for s in back.iter().flatten() {
                while let Ok((n, _)) = s.recv_from(&mut buf) {
                    idle = false;
                    if let Some(c) = client {
                        if front.send_to(&buf[..n], c).is_ok() {
                            report.to_client += 1;
                            bytes_to_client += n as u64;
                        }
                    }
                }
            }
            // Rebind: the server sees the next datagram from a new port.
            let want = ((bytes_to_client / step) as usize).min(REBINDS);
            if want > current {
                // The old mapping disappears: its socket is closed, and
                // whatever the server still sends there is lost.
                for old in &mut back[..want] {
                    *old = None;
                }
                report.closed_sockets = want;
                current = want;
            }
            if idle {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        report
    });
    (addr, t)
}

#[test]
fn download_survives_source_port_changes_on_the_owning_worker() {
    let gen = RoutableCidGenerator::for_worker(0);
    let layout = CidLayout { worker_id_offset: gen.worker_id_offset() as u32, cid_len: gen.cid_len() as u32 };
    assert_eq!(layout, CidLayout::QUICPRO_DEFAULT);
    let group = Arc::new(ReuseportGroup::new(2, layout).expect("load steering program (needs root)"));
    let stop = Arc::new(AtomicBool::new(false));
    let tls = tls();
    let secrets = ([7u8; 32], [9u8; 32]);
    let (addr, w0) = start_worker(0, "127.0.0.1:0".parse().expect("addr"), &tls, secrets, &group, &stop);
    let (_, w1) = start_worker(1, addr, &tls, secrets, &group, &stop);
    let (relay_addr, relay_thread) = relay(addr, stop.clone());

    let mut ctls = ClientTlsOptions::new(&[b"h3"]);
    ctls.insecure_skip_verify = true;
    let copts = ClientOptions::new(ctls);
    let mut client = Client::connect(&copts, relay_addr, "localhost", Bytes::new()).expect("connect");
    client.wait_connected(Duration::from_secs(20)).expect("handshake");
    let req = [hf(":method", "GET"), hf(":scheme", "https"), hf(":authority", "localhost"), hf(":path", "/bytes")];
    let stream = client.request(&req, true).expect("request");
    let mut received = 0u64;
    let mut mismatch = None;
    let mut finished = false;
    let end = Instant::now() + DEADLINE;
    while !finished {
        assert!(Instant::now() < end, "download stalled at {received} of {BODY} bytes");
        client.step(Duration::from_millis(5)).expect("client step");
        while let Some(ev) = client.poll_event() {
            match ev {
                H3Event::Data { stream: s } if s == stream => {
                    while let Some(b) = client.recv_body(stream, usize::MAX) {
                        for (i, &byte) in b.iter().enumerate() {
                            if mismatch.is_none() && byte != pattern_byte(received + i as u64) {
                                mismatch = Some(received + i as u64);
                            }
                        }
                        received += b.len() as u64;
                    }
                }
                H3Event::Finished { stream: s } if s == stream => finished = true,
                H3Event::Reset { stream: s, code } if s == stream => panic!("stream reset with {code:#x}"),
                _ => {}
            }
        }
    }
    client.close();
    stop.store(true, Ordering::Relaxed);
    let s0 = w0.join().expect("worker 0");
    let s1 = w1.join().expect("worker 1");
    let report = relay_thread.join().expect("relay");
    let counters = group.counters().expect("counters");
    eprintln!("relay: {report:?}");
    eprintln!(
        "worker 0: {} accepted, {} datagrams; worker 1: {} accepted, {} datagrams",
        s0.connections_accepted, s0.datagrams_received, s1.connections_accepted, s1.datagrams_received
    );
    eprintln!("steering counters: {counters:?}");

    assert_eq!(received, BODY);
    assert_eq!(mismatch, None, "body differs");
    // The relay really sent from REBINDS+1 source ports.
    assert!(report.forwarded_per_socket.iter().all(|&n| n > 0), "every outbound port carried traffic: {report:?}");
    assert_eq!(report.closed_sockets, REBINDS, "each old mapping was closed: {report:?}");
    // One worker owns the connection and got every datagram; the other
    // none (without steering the kernel's 4-tuple hash would move some of
    // the new ports' traffic to it).
    let (owner, other) = if s0.connections_accepted == 1 { (&s0, &s1) } else { (&s1, &s0) };
    assert_eq!(owner.connections_accepted, 1);
    assert_eq!(other.connections_accepted, 0);
    assert_eq!(other.datagrams_received, 0, "datagrams reached the worker not owning the connection");
    assert_eq!(owner.dropped_unknown_connection, 0);
    assert_eq!(owner.stateless_resets_sent + other.stateless_resets_sent, 0);
    let forwarded: u64 = report.forwarded_per_socket.iter().sum();
    assert_eq!(owner.datagrams_received, forwarded, "every forwarded datagram arrived");
    assert_eq!(counters.fallbacks(), 0, "{counters:?}");
    assert_eq!(counters.total(), forwarded, "{counters:?}");
}
