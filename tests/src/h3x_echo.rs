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
use h3_core::connection::{H3Config, H3Event};
use h3_core::datagram::DatagramError;
use h3_core::qpack::HeaderField;
use io_backends::runtime::{H3Handle, Server, ServerOptions};
use quic_core::stream::StreamId;
use quic_core::tls::ServerTlsOptions;

/// Both extensions on.
pub fn h3x() -> H3Config {
    H3Config { enable_connect_protocol: true, enable_datagrams: true, ..H3Config::default() }
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
                H3Event::Trailers { .. } | H3Event::GoAway { .. } | H3Event::Transport(_) => {}
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

