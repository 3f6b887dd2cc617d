//! An Extended CONNECT echo server on the io-backends runtime, shared by the
//! extended CONNECT / HTTP datagram interop tests (aioquic, quinn's h3):
//! answers a CONNECT with `:protocol` with 200, echoes HTTP datagrams
//! (RFC 9297 §2) on the same stream and DATAGRAM capsules (RFC 9297 §3.5)
//! read with `recv_capsule`, and ends its side when the client does.
#![allow(clippy::unwrap_used, missing_debug_implementations)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use h3_core::capsule::capsule_type;
use h3_core::connection::SendError;
use h3_core::connection::{H3Config, H3Event};
use h3_core::datagram::DatagramError;
use h3_core::qpack::HeaderField;
use io_backends::runtime::{Client, H3Handle, Server, ServerOptions};
use quic_core::stream::StreamId;
use quic_core::tls::ServerTlsOptions;
use std::collections::{BTreeMap, HashSet};

/// Both extensions on.
pub fn h3x() -> H3Config {
    H3Config { enable_connect_protocol: true, enable_datagrams: true, ..H3Config::default() }
}

/// Unanswered datagrams at most, and when one is sent again.
pub const WINDOW: usize = 32;
pub const RESEND_AFTER: Duration = Duration::from_millis(250);

pub fn hf(n: &str, v: &str) -> HeaderField {
    HeaderField::new(n.as_bytes().to_vec(), v.as_bytes().to_vec())
}

pub fn field(fields: &[HeaderField], name: &str) -> Option<String> {
    fields.iter().find(|f| f.name[..] == *name.as_bytes()).map(|f| String::from_utf8_lossy(&f.value).to_string())
}

/// Datagram `seq` of side `tag`, the same function as the Python peer's.
pub fn dgram(tag: u8, seq: u32) -> Vec<u8> {
    let n = 8 + (seq as usize * 37) % 1000;
    let mut v = Vec::with_capacity(n);
    v.push(tag);
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&(n as u16).to_be_bytes());
    for j in 7..n {
        v.push(((j as u32) * 31 + seq + u32::from(tag)) as u8);
    }
    v
}

pub fn capsule_value(i: usize) -> Vec<u8> {
    (0..(i * 53) % 900).map(|j| (i * 7 + j) as u8).collect()
}

#[derive(Debug, Default, Clone)]
pub struct EchoReport {
    pub protocol: Option<String>,
    pub scheme: Option<String>,
    pub path: Option<String>,
    pub datagrams: u64,
    pub capsules: u64,
    pub tunnel_finished: bool,
    pub closed: Option<String>,
    pub errors: Vec<String>,
}

/// Our runtime server in a thread: Extended CONNECT → 200, echoes HTTP
/// datagrams and DATAGRAM capsules. Stopped and joined on drop.
pub struct OurServer {
    pub addr: SocketAddr,
    report: Arc<Mutex<EchoReport>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl OurServer {
    /// Binds 127.0.0.1:0 in a thread; `tls` must offer ALPN "h3".
    pub fn start(tls: ServerTlsOptions, limit: Duration) -> Self {
        let report = Arc::new(Mutex::new(EchoReport::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let (rep, st) = (report.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut opts = ServerOptions::new("127.0.0.1:0".parse().unwrap(), tls);
            opts.h3 = h3x();
            let mut server = Server::bind(opts).unwrap();
            tx.send(server.local_addr()).unwrap();
            serve_echo(&mut server, &rep, &st, Instant::now() + limit);
        });
        let addr = rx.recv_timeout(Duration::from_secs(10)).expect("server bound");
        Self { addr, report, stop, thread: Some(thread) }
    }

    pub fn report(&self) -> EchoReport {
        self.report.lock().unwrap().clone()
    }

    pub fn wait(&self, limit: Duration, cond: impl Fn(&EchoReport) -> bool) -> EchoReport {
        let end = Instant::now() + limit;
        loop {
            let r = self.report();
            if cond(&r) || Instant::now() >= end {
                return r;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for OurServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_echo(server: &mut Server, report: &Mutex<EchoReport>, stop: &AtomicBool, end: Instant) {
    let mut pending: VecDeque<(H3Handle, StreamId, Bytes)> = VecDeque::new();
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        if let Err(e) = server.step(Duration::from_millis(5)) {
            report.lock().unwrap().errors.push(format!("step: {e}"));
            return;
        }
        while let Some((h, ev)) = server.poll_event() {
            let mut r = report.lock().unwrap();
            match ev {
                H3Event::Headers { stream, headers, .. } => {
                    let extended = field(&headers, ":method").as_deref() == Some("CONNECT") && field(&headers, ":protocol").is_some();
                    r.protocol = field(&headers, ":protocol");
                    r.scheme = field(&headers, ":scheme");
                    r.path = field(&headers, ":path");
                    let (status, end) = if extended { (200, false) } else { (400, true) };
                    if let Err(e) = server.respond(h, stream, status, &[], end) {
                        r.errors.push(format!("respond: {e:?}"));
                    }
                }
                H3Event::Datagram { stream, payload } => {
                    r.datagrams += 1;
                    pending.push_back((h, stream, payload));
                }
                H3Event::Data { stream } => loop {
                    match server.recv_capsule(h, stream) {
                        Ok(Some(c)) => {
                            r.capsules += 1;
                            if let Err(e) = server.send_capsule(h, stream, c.capsule_type, &c.value) {
                                r.errors.push(format!("send_capsule: {e:?}"));
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            r.errors.push(format!("recv_capsule: {e}"));
                            break;
                        }
                    }
                },
                H3Event::Finished { stream } => {
                    r.tunnel_finished = true;
                    if let Err(e) = server.finish(h, stream) {
                        r.errors.push(format!("finish: {e:?}"));
                    }
                }
                H3Event::Reset { stream, code } => r.errors.push(format!("reset {} {code:#x}", stream.0)),
                H3Event::Trailers { .. } | H3Event::GoAway { .. } | H3Event::Transport(_) | H3Event::Writable { .. } | H3Event::Acknowledged { .. } => {}
            }
        }
        // Echo; a full QUIC datagram queue waits for the next turn.
        while let Some((h, stream, payload)) = pending.front().cloned() {
            match server.send_datagram(h, stream, &payload) {
                Ok(()) => {
                    pending.pop_front();
                }
                Err(DatagramError::Blocked) => break,
                Err(e) => {
                    report.lock().unwrap().errors.push(format!("send_datagram: {e}"));
                    pending.pop_front();
                }
            }
        }
        while let Some((_, err)) = server.poll_closed() {
            report.lock().unwrap().closed = Some(format!("{err:?}"));
        }
    }
}

/// What [`client_exchange`] measured.
#[derive(Debug)]
pub struct ExchangeReport {
    pub stream: StreamId,
    pub datagram_time: Duration,
    pub resends: u64,
}

/// Steps the client until `cond` holds; fails with `diag()` on the deadline.
pub fn run(client: &mut Client, diag: &dyn Fn() -> String, secs: u64, events: &mut Vec<H3Event>, mut cond: impl FnMut(&mut Client, &mut Vec<H3Event>) -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        while let Some(e) = client.poll_event() {
            events.push(e);
        }
        if cond(client, events) {
            return;
        }
        assert!(Instant::now() < end, "condition not met in {secs} s; events {events:?}\n{}", diag());
        if let Err(e) = client.step(Duration::from_millis(5)) {
            panic!("client: {e}\n{}", diag());
        }
    }
}

/// Our runtime client against an echoing peer: waits for the server's
/// SETTINGS (RFC 9220 §3), opens an Extended CONNECT `:protocol
/// webtransport` to `/h3x`, sends `datagrams` HTTP datagrams (a window of
/// WINDOW unanswered ones, sent again after RESEND_AFTER) and checks every
/// echo byte for byte, then `capsules` DATAGRAM capsules with one unknown
/// capsule in the middle (skipped by `recv_capsule`) and checks they come
/// back in order, then ends the tunnel and waits for the peer to end its
/// side. Panics (with `diag()`) on any mismatch or deadline.
pub fn client_exchange(client: &mut Client, addr: SocketAddr, datagrams: u32, capsules: usize, diag: &dyn Fn() -> String) -> ExchangeReport {
    let mut events = Vec::new();
    let connect = [
        hf(":method", "CONNECT"),
        hf(":protocol", "webtransport"),
        hf(":scheme", "https"),
        hf(":authority", &format!("localhost:{}", addr.port())),
        hf(":path", "/h3x"),
    ];
    // RFC 9220 §3: wait for the server's SETTINGS before Extended CONNECT.
    run(client, diag, 10, &mut events, |c, _| {
        if c.peer_allows_extended_connect().is_none() {
            assert_eq!(c.request(&connect, false), Err(SendError::AwaitingSettings));
            return false;
        }
        true
    });
    assert_eq!(client.peer_allows_extended_connect(), Some(true));
    assert!(client.datagrams_negotiated(), "aioquic sent H3_DATAGRAM=1 and max_datagram_frame_size");
    let id = client.request(&connect, false).unwrap();
    run(client, diag, 10, &mut events, |_, ev| ev.iter().any(|e| matches!(e, H3Event::Headers { stream, .. } if *stream == id)));
    let status = events.iter().find_map(|e| match e {
        H3Event::Headers { stream, headers, fin } if *stream == id => {
            assert!(!fin, "the tunnel stays open");
            field(headers, ":status")
        }
        _ => None,
    });
    assert_eq!(status.as_deref(), Some("200"));

    // Datagrams: a window of unanswered ones, echoes checked byte for byte.
    let mut sent_at: BTreeMap<u32, Instant> = BTreeMap::new();
    let mut got: HashSet<u32> = HashSet::new();
    let (mut next, mut resends) = (0u32, 0u64);
    let t0 = Instant::now();
    run(client, diag, 50, &mut events, |c, ev| {
        ev.retain(|e| match e {
            H3Event::Datagram { stream, payload } => {
                assert_eq!(*stream, id, "echo on the tunnel's stream");
                assert!(payload.len() >= 7 && payload[0] == b'q');
                let seq = u32::from_be_bytes(payload[1..5].try_into().unwrap());
                assert_eq!(&payload[..], &dgram(b'q', seq)[..], "echo of datagram {seq}");
                got.insert(seq);
                sent_at.remove(&seq);
                false
            }
            _ => true,
        });
        let now = Instant::now();
        while next < datagrams && sent_at.len() < WINDOW {
            match c.send_datagram(id, &dgram(b'q', next)) {
                Ok(()) => {
                    sent_at.insert(next, now);
                    next += 1;
                }
                Err(DatagramError::Blocked) => break,
                Err(e) => panic!("send_datagram: {e}"),
            }
        }
        let stale: Vec<u32> = sent_at.iter().filter(|(_, t)| now.duration_since(**t) > RESEND_AFTER).map(|(s, _)| *s).collect();
        for seq in stale {
            if c.send_datagram(id, &dgram(b'q', seq)).is_ok() {
                sent_at.insert(seq, now);
                resends += 1;
            }
        }
        got.len() == datagrams as usize
    });
    let dgram_time = t0.elapsed();

    // Capsules through aioquic's tunnel echo: DATAGRAM capsules, with one
    // unknown type in the middle that our reader skips.
    for i in 0..capsules {
        if i == capsules / 2 {
            client.send_capsule(id, 0x2843, b"unknown to everyone").unwrap();
        }
        client.send_capsule(id, capsule_type::DATAGRAM, &capsule_value(i)).unwrap();
    }
    let mut back = Vec::new();
    run(client, diag, 10, &mut events, |c, _| {
        while let Some(cap) = c.recv_capsule(id).unwrap() {
            back.push(cap);
        }
        back.len() == capsules
    });
    for (i, c) in back.iter().enumerate() {
        assert!(c.is_datagram());
        assert_eq!(c.value, capsule_value(i), "capsule {i}");
    }
    // End the tunnel; aioquic ends its side.
    client.send_body(id, Bytes::new(), true).unwrap();
    run(client, diag, 10, &mut events, |c, ev| {
        let _ = c.recv_capsule(id);
        ev.iter().any(|e| matches!(e, H3Event::Finished { stream } if *stream == id))
    });
    ExchangeReport { stream: id, datagram_time: dgram_time, resends }
}
