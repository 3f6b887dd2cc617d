//! Interop with aioquic (Python), raw QUIC with ALPN `quicpro-interop`, in
//! both roles:
//!
//! * aioquic client → our server: our `Endpoint` runs under `UdpDriver` in a
//!   thread on 127.0.0.1:0; `tests/interop/aioquic_peer.py client` connects.
//! * our client → aioquic server: `aioquic_peer.py server` prints
//!   `LISTENING port=N`; our client drives the requests in the test thread.
//!
//! Each direction covers: handshake + ALPN, 10 MiB download and 10 MiB
//! upload over several parallel streams (sha256-checked), resumption, 0-RTT
//! and key updates mid-transfer. The protocol is the one of every interop
//! peer: `GET <n>\n` → n pattern bytes; `PUT <n>\n` + n bytes → `OK <n> <sha256>\n`.
//!
//! Python peers are killed by PID when their guard drops; every wait has a
//! deadline. Without aioquic the tests fail (never pass silently): `make test`
//! installs it through scripts/setup.sh.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use quic_core::config::TransportConfig;
use quic_core::connection::Connection;
use quic_core::endpoint::{ClientConfig, ConnectionHandle, Endpoint, EndpointConfig, ServerConfig};
use quic_core::stream::{Dir, StreamId, StreamReadError, WriteError};
use quic_core::tls::{ClientTlsOptions, ServerTlsOptions};
use quic_core::Version;
use quicpro_tests::pypeer::{flag, num, parse_kv, require_python_module, PyPeer};
use quicpro_tests::udp::UdpDriver;

const ALPN: &[u8] = b"quicpro-interop";
const MIB: u64 = 1024 * 1024;
/// Total bytes each way in the transfer cases (never less than 10 MiB).
const TRANSFER: u64 = 10 * MIB;
/// GET streams and PUT streams each, in parallel.
const STREAMS: u64 = 4;
const MAX_REQUEST_LINE: usize = 64;
/// Our server refuses requests above this (a peer cannot make it send forever).
const MAX_REQUEST_SIZE: u64 = 1 << 30;

// ------------------------------------------------------------ pattern

/// Byte i of every body is `(i*7 + i/251) & 0xff`; it repeats every 251*256
/// bytes (i*7 mod 256 has period 256, i/251 gains 256 ≡ 0 per period).
const PERIOD: usize = 251 * 256;

fn period_table() -> &'static [u8] {
    static T: OnceLock<Vec<u8>> = OnceLock::new();
    T.get_or_init(|| (0..PERIOD).map(|i| ((i * 7 + i / 251) & 0xff) as u8).collect())
}

/// Fills `out` with the pattern starting at `offset`.
fn pattern_at(offset: u64, out: &mut [u8]) {
    let t = period_table();
    let mut pos = (offset % PERIOD as u64) as usize;
    let mut done = 0;
    while done < out.len() {
        let k = (PERIOD - pos).min(out.len() - done);
        out[done..done + k].copy_from_slice(&t[pos..pos + k]);
        done += k;
        pos = 0;
    }
}

/// Index of the first byte of `data` (at stream offset `offset`) that
/// differs from the pattern.
fn first_mismatch(offset: u64, data: &[u8]) -> Option<u64> {
    let t = period_table();
    data.iter().enumerate().find_map(|(i, b)| {
        let at = offset + i as u64;
        (t[(at % PERIOD as u64) as usize] != *b).then_some(at)
    })
}

fn pattern_sha256(n: u64) -> String {
    static CACHE: OnceLock<Mutex<HashMap<u64, String>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(h) = cache.lock().unwrap().get(&n) {
        return h.clone();
    }
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; PERIOD];
    let mut off = 0u64;
    while off < n {
        let k = (n - off).min(PERIOD as u64) as usize;
        pattern_at(off, &mut buf[..k]);
        ctx.update(&buf[..k]);
        off += k as u64;
    }
    let h = hex::encode(ctx.finish().as_ref());
    cache.lock().unwrap().insert(n, h.clone());
    h
}

fn split(total: u64, parts: u64) -> Vec<u64> {
    (0..parts).map(|i| total / parts + u64::from(i < total % parts)).collect()
}

// ------------------------------------------------------------ environment

fn peer_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop").join("aioquic_peer.py")
}

/// A self-signed certificate for "localhost" as PEM files in a fresh
/// temporary folder, removed on drop.
use quicpro_tests::certs::PemDir as CertDir;

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

// ------------------------------------------------------------ python peer

/// Starts the peer script (failing the test if aioquic is missing).
fn spawn_peer(args: &[String]) -> PyPeer {
    require_python_module("import aioquic; print(aioquic.__version__)", "aioquic interop tests");
    PyPeer::spawn(&peer_script(), args)
}

// ------------------------------------------------------------ our server

#[derive(Debug, Clone, Copy, Default)]
struct ServerOptions {
    /// Initiate a key update once this many stream bytes were sent.
    key_update_after_sent: Option<u64>,
}

/// What our server saw on one connection.
#[derive(Debug, Clone, Default)]
struct ServerConnReport {
    alpn: Option<String>,
    handshake_done: bool,
    resumed: bool,
    /// `has_zero_rtt()` was seen true (0-RTT keys installed: early data accepted).
    saw_zero_rtt: bool,
    /// `zero_rtt_accepted()` as last seen (defined for clients; `None` here).
    zero_rtt_accepted: Option<bool>,
    /// Request lines read while the handshake was still in progress (0-RTT).
    early_requests: u32,
    gets: u32,
    puts: u32,
    key_updates: u64,
    /// Stream bytes sent when our own key update went through.
    initiated_key_update_at: Option<u64>,
    stream_bytes_sent: u64,
    stream_bytes_received: u64,
    packets_sent: u64,
    packets_lost: u64,
    errors: Vec<String>,
    closed: Option<String>,
}

enum ServerStream {
    Request(Vec<u8>),
    Get { total: u64, sent: u64, recv_fin: bool, finished: bool },
    Put { expect: u64, got: u64, hash: Box<ring::digest::Context> },
    Reply { data: Vec<u8>, sent: usize },
    Done,
}

#[derive(Default)]
struct ServerConnApp {
    streams: HashMap<StreamId, ServerStream>,
    report: ServerConnReport,
}

enum Request {
    Get(u64),
    Put(u64),
}

fn parse_request(line: &[u8]) -> Option<Request> {
    let s = std::str::from_utf8(line).ok()?;
    let (verb, n) = s.split_once(' ')?;
    let n: u64 = n.parse().ok()?;
    if n > MAX_REQUEST_SIZE {
        return None;
    }
    match verb {
        "GET" => Some(Request::Get(n)),
        "PUT" => Some(Request::Put(n)),
        _ => None,
    }
}

impl ServerConnApp {
    fn fail(&mut self, conn: &mut Connection, id: StreamId, why: String) {
        self.report.errors.push(why);
        conn.reset_stream(id, 1);
        conn.stop_sending(id, 1);
    }

    fn process(&mut self, conn: &mut Connection, opts: &ServerOptions, now: Instant, scratch: &mut [u8]) {
        let r = &mut self.report;
        r.handshake_done |= !conn.is_handshaking();
        r.saw_zero_rtt |= conn.has_zero_rtt();
        r.zero_rtt_accepted = conn.zero_rtt_accepted();
        r.resumed = conn.is_resumed();
        if r.alpn.is_none() {
            r.alpn = conn.alpn().map(|a| String::from_utf8_lossy(a).into_owned());
        }
        while let Some(id) = conn.accept_stream(Dir::Bi) {
            self.streams.insert(id, ServerStream::Request(Vec::new()));
        }
        let ids: Vec<StreamId> = self.streams.keys().copied().collect();
        for id in ids {
            let mut st = self.streams.remove(&id).unwrap();
            // A stream may pass through several states in one call.
            for _ in 0..4 {
                let before = std::mem::discriminant(&st);
                st = self.step(conn, id, st, scratch);
                if std::mem::discriminant(&st) == before {
                    break;
                }
            }
            if !matches!(st, ServerStream::Done) {
                self.streams.insert(id, st);
            }
        }
        let s = conn.stats();
        let r = &mut self.report;
        r.key_updates = s.key_updates;
        r.stream_bytes_sent = s.stream_bytes_sent;
        r.stream_bytes_received = s.stream_bytes_received;
        r.packets_sent = s.packets_sent;
        r.packets_lost = s.packets_lost;
        if let Some(th) = opts.key_update_after_sent {
            // RFC 9001 §6.1: refused until the current phase is acknowledged;
            // retried every turn until it goes through.
            if r.initiated_key_update_at.is_none() && s.stream_bytes_sent >= th && conn.initiate_key_update(now) {
                r.initiated_key_update_at = Some(s.stream_bytes_sent);
            }
        }
    }

    fn step(&mut self, conn: &mut Connection, id: StreamId, st: ServerStream, scratch: &mut [u8]) -> ServerStream {
        match st {
            ServerStream::Request(mut line) => {
                let out = match conn.read(id, scratch) {
                    Ok(o) => o,
                    Err(StreamReadError::Blocked) => return ServerStream::Request(line),
                    Err(e) => {
                        self.fail(conn, id, format!("{id:?}: read request: {e}"));
                        return ServerStream::Done;
                    }
                };
                line.extend_from_slice(&scratch[..out.bytes]);
                let Some(nl) = line.iter().position(|b| *b == b'\n') else {
                    if line.len() > MAX_REQUEST_LINE || out.fin {
                        self.fail(conn, id, format!("{id:?}: no request line"));
                        return ServerStream::Done;
                    }
                    return ServerStream::Request(line);
                };
                if nl > MAX_REQUEST_LINE {
                    self.fail(conn, id, format!("{id:?}: request line too long"));
                    return ServerStream::Done;
                }
                if conn.is_handshaking() {
                    self.report.early_requests += 1;
                }
                match parse_request(&line[..nl]) {
                    Some(Request::Get(n)) => {
                        self.report.gets += 1;
                        ServerStream::Get { total: n, sent: 0, recv_fin: out.fin, finished: false }
                    }
                    Some(Request::Put(n)) => {
                        self.report.puts += 1;
                        let mut hash = Box::new(ring::digest::Context::new(&ring::digest::SHA256));
                        let body = &line[nl + 1..];
                        hash.update(body);
                        let got = body.len() as u64;
                        if out.fin {
                            self.reply_put(n, got, hash)
                        } else {
                            ServerStream::Put { expect: n, got, hash }
                        }
                    }
                    None => {
                        let l = String::from_utf8_lossy(&line[..nl]).into_owned();
                        self.fail(conn, id, format!("{id:?}: bad request {l:?}"));
                        ServerStream::Done
                    }
                }
            }
            ServerStream::Get { total, mut sent, mut recv_fin, mut finished } => {
                // Consume the request side's FIN so the stream can be freed.
                while !recv_fin {
                    match conn.read(id, scratch) {
                        Ok(o) if o.fin => recv_fin = true,
                        Ok(o) if o.bytes > 0 => {}
                        _ => break,
                    }
                }
                while sent < total {
                    let k = (total - sent).min(scratch.len() as u64) as usize;
                    pattern_at(sent, &mut scratch[..k]);
                    match conn.write(id, &scratch[..k]) {
                        Ok(n) => {
                            sent += n as u64;
                            if n < k {
                                break;
                            }
                        }
                        Err(WriteError::Blocked) => break,
                        Err(e) => {
                            self.fail(conn, id, format!("{id:?}: write: {e:?}"));
                            return ServerStream::Done;
                        }
                    }
                }
                if sent == total && !finished {
                    if let Err(e) = conn.finish(id) {
                        self.fail(conn, id, format!("{id:?}: finish: {e:?}"));
                        return ServerStream::Done;
                    }
                    finished = true;
                }
                if finished && recv_fin {
                    return ServerStream::Done;
                }
                ServerStream::Get { total, sent, recv_fin, finished }
            }
            ServerStream::Put { expect, mut got, mut hash } => loop {
                match conn.read(id, scratch) {
                    Ok(o) => {
                        hash.update(&scratch[..o.bytes]);
                        got += o.bytes as u64;
                        if got > expect {
                            self.fail(conn, id, format!("{id:?}: PUT body longer than {expect}"));
                            return ServerStream::Done;
                        }
                        if o.fin {
                            return self.reply_put(expect, got, hash);
                        }
                        if o.bytes == 0 {
                            return ServerStream::Put { expect, got, hash };
                        }
                    }
                    Err(StreamReadError::Blocked) => return ServerStream::Put { expect, got, hash },
                    Err(e) => {
                        self.fail(conn, id, format!("{id:?}: read body: {e}"));
                        return ServerStream::Done;
                    }
                }
            },
            ServerStream::Reply { data, mut sent } => {
                while sent < data.len() {
                    match conn.write(id, &data[sent..]) {
                        Ok(0) | Err(WriteError::Blocked) => return ServerStream::Reply { data, sent },
                        Ok(n) => sent += n,
                        Err(e) => {
                            self.fail(conn, id, format!("{id:?}: write reply: {e:?}"));
                            return ServerStream::Done;
                        }
                    }
                }
                if let Err(e) = conn.finish(id) {
                    self.fail(conn, id, format!("{id:?}: finish reply: {e:?}"));
                }
                ServerStream::Done
            }
            ServerStream::Done => ServerStream::Done,
        }
    }

    fn reply_put(&mut self, expect: u64, got: u64, hash: Box<ring::digest::Context>) -> ServerStream {
        if got != expect {
            self.report.errors.push(format!("PUT announced {expect} bytes, got {got}"));
        }
        let data = format!("OK {got} {}\n", hex::encode(hash.finish().as_ref())).into_bytes();
        ServerStream::Reply { data, sent: 0 }
    }
}

/// Our server on 127.0.0.1:0, in its own thread; stopped and joined on drop.
struct OurServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    reports: Arc<Mutex<BTreeMap<u64, ServerConnReport>>>,
    thread: Option<JoinHandle<()>>,
}

impl OurServer {
    fn start(certs: &CertDir, opts: ServerOptions) -> Self {
        let tls = ServerTlsOptions::from_pem_files(&certs.cert_pem, &certs.key_pem, &[ALPN]).unwrap().build().unwrap();
        let sc = ServerConfig::new(tls, b"aioquic interop token secret", unix_now());
        let endpoint = Endpoint::new(EndpointConfig::new(b"aioquic interop reset"), Some(sc), Instant::now());
        let mut driver = UdpDriver::bind("127.0.0.1:0", endpoint).unwrap();
        let addr = driver.local_addr();
        let stop = Arc::new(AtomicBool::new(false));
        let reports = Arc::new(Mutex::new(BTreeMap::new()));
        let (stop2, reports2) = (stop.clone(), reports.clone());
        let thread = std::thread::spawn(move || {
            // Hard bound even if the test forgets to stop us.
            let end = Instant::now() + Duration::from_secs(180);
            let mut apps: HashMap<ConnectionHandle, (u64, ServerConnApp)> = HashMap::new();
            let mut next_seq = 0u64;
            let mut scratch = vec![0u8; 64 * 1024];
            while !stop2.load(Ordering::Relaxed) && Instant::now() < end {
                driver.turn(Duration::from_millis(5));
                // Closed first: a freed handle may be reused by a new connection.
                while let Some((h, err)) = driver.endpoint.poll_closed() {
                    if let Some((seq, mut app)) = apps.remove(&h) {
                        app.report.closed = Some(err.map_or_else(|| "none".to_string(), |e| format!("{e:?}")));
                        reports2.lock().unwrap().insert(seq, app.report);
                    }
                }
                for h in driver.accepted.drain(..) {
                    next_seq += 1;
                    apps.insert(h, (next_seq, ServerConnApp::default()));
                }
                let now = Instant::now();
                for (h, (seq, app)) in apps.iter_mut() {
                    if let Some(conn) = driver.endpoint.connection(*h) {
                        app.process(conn, &opts, now, &mut scratch);
                        reports2.lock().unwrap().insert(*seq, app.report.clone());
                    }
                }
            }
        });
        Self { addr, stop, reports, thread: Some(thread) }
    }

    fn reports(&self) -> Vec<ServerConnReport> {
        self.reports.lock().unwrap().values().cloned().collect()
    }

    /// Waits until `cond` holds on the reports (or the deadline passes).
    fn wait_for(&self, deadline: Instant, cond: impl Fn(&[ServerConnReport]) -> bool) -> Vec<ServerConnReport> {
        loop {
            let r = self.reports();
            if cond(&r) || Instant::now() >= deadline {
                return r;
            }
            std::thread::sleep(Duration::from_millis(20));
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

// ------------------------------------------------------------ our client

enum ClientReq {
    Get { n: u64, got: u64, hash: Box<ring::digest::Context>, mismatch: Option<u64>, done: Option<String> },
    Put { n: u64, sent: u64, finished: bool, answer: Vec<u8>, done: Option<String> },
}

impl ClientReq {
    fn done(&self) -> bool {
        match self {
            ClientReq::Get { done, .. } | ClientReq::Put { done, .. } => done.is_some(),
        }
    }
}

#[derive(Debug, Default)]
struct ClientOutcome {
    /// One line per request: "GET n ok sha256=..." or what went wrong.
    lines: Vec<String>,
    all_ok: bool,
    downloaded: u64,
    elapsed: Duration,
}

/// Our client endpoint on 127.0.0.1:0.
struct OurClient {
    driver: UdpDriver,
    config: ClientConfig,
}

impl OurClient {
    fn new(certs: &CertDir) -> Self {
        let mut tls = ClientTlsOptions::new(&[ALPN]);
        tls.ca_file = Some(certs.cert_pem.clone());
        let config = ClientConfig { tls: tls.build().unwrap(), transport: Arc::new(TransportConfig::default()), version: Version::V1 };
        let endpoint = Endpoint::new(EndpointConfig::new(b"aioquic interop client reset"), None, Instant::now());
        Self { driver: UdpDriver::bind("127.0.0.1:0", endpoint).unwrap(), config }
    }

    /// Starts a connection; the same `config` (and so the same rustls
    /// session cache) is used every time, which is what resumption needs.
    fn connect(&mut self, server: SocketAddr) -> ConnectionHandle {
        let cc = self.config.clone();
        self.driver.endpoint.connect(Instant::now(), &cc, server, "localhost", bytes::Bytes::new()).unwrap()
    }

    fn conn(&mut self, h: ConnectionHandle) -> Result<&mut Connection, String> {
        if self.driver.endpoint.connection_ref(h).is_none() {
            let closed: Vec<_> = std::iter::from_fn(|| self.driver.endpoint.poll_closed()).collect();
            return Err(format!("our client connection is gone: {closed:?}"));
        }
        Ok(self.driver.endpoint.connection(h).unwrap())
    }

    fn handshake(&mut self, h: ConnectionHandle, limit: Duration) -> Result<(), String> {
        let end = Instant::now() + limit;
        loop {
            let c = self.conn(h)?;
            if !c.is_handshaking() {
                return Ok(());
            }
            if let Some(e) = c.error() {
                return Err(format!("handshake failed: {e}"));
            }
            if Instant::now() >= end {
                return Err("handshake did not complete in time".into());
            }
            self.driver.turn(Duration::from_millis(5));
        }
    }

    /// Opens the GETs and PUTs at once (in 0-RTT when the connection has
    /// 0-RTT keys) and drives them to completion. `hook` runs every turn
    /// with the bytes downloaded so far.
    fn run_requests(
        &mut self,
        h: ConnectionHandle,
        gets: &[u64],
        puts: &[u64],
        limit: Duration,
        mut hook: impl FnMut(&mut Connection, u64),
    ) -> Result<ClientOutcome, String> {
        let start = Instant::now();
        let end = start + limit;
        let mut reqs: Vec<(StreamId, ClientReq)> = Vec::new();
        let mut to_open: Vec<ClientReq> = gets
            .iter()
            .map(|&n| ClientReq::Get { n, got: 0, hash: Box::new(ring::digest::Context::new(&ring::digest::SHA256)), mismatch: None, done: None })
            .chain(puts.iter().map(|&n| ClientReq::Put { n, sent: 0, finished: false, answer: Vec::new(), done: None }))
            .collect();
        to_open.reverse();
        let mut scratch = vec![0u8; 64 * 1024];
        let mut downloaded = 0u64;
        loop {
            let conn = self.conn(h)?;
            if let Some(e) = conn.error() {
                return Err(format!("connection failed during requests: {e}"));
            }
            while let Some(req) = to_open.pop() {
                let Some(id) = conn.open_stream(Dir::Bi) else {
                    to_open.push(req);
                    break;
                };
                let header = match &req {
                    ClientReq::Get { n, .. } => format!("GET {n}\n"),
                    ClientReq::Put { n, .. } => format!("PUT {n}\n"),
                };
                let w = conn.write(id, header.as_bytes()).map_err(|e| format!("write request: {e:?}"))?;
                assert_eq!(w, header.len(), "a fresh stream takes a whole request line");
                if matches!(req, ClientReq::Get { .. }) {
                    conn.finish(id).map_err(|e| format!("finish GET: {e:?}"))?;
                }
                reqs.push((id, req));
            }
            for (id, req) in reqs.iter_mut() {
                let id = *id;
                match req {
                    ClientReq::Get { n, got, hash, mismatch, done } if done.is_none() => loop {
                        match conn.read(id, &mut scratch) {
                            Ok(o) => {
                                let data = &scratch[..o.bytes];
                                if mismatch.is_none() {
                                    *mismatch = first_mismatch(*got, data);
                                }
                                hash.update(data);
                                *got += o.bytes as u64;
                                downloaded += o.bytes as u64;
                                if o.fin {
                                    let sha = hex::encode(hash.as_ref().clone().finish().as_ref());
                                    let ok = *got == *n && mismatch.is_none() && sha == pattern_sha256(*n);
                                    *done = Some(format!("GET {n} {} got={got} sha256={sha} first_mismatch={mismatch:?}", if ok { "ok" } else { "BAD" }));
                                    break;
                                }
                                if o.bytes == 0 {
                                    break;
                                }
                            }
                            Err(StreamReadError::Blocked) => break,
                            Err(e) => {
                                *done = Some(format!("GET {n} BAD read error {e}"));
                                break;
                            }
                        }
                    },
                    ClientReq::Put { n, sent, finished, answer, done } if done.is_none() => {
                        while *sent < *n {
                            let k = (*n - *sent).min(scratch.len() as u64) as usize;
                            pattern_at(*sent, &mut scratch[..k]);
                            match conn.write(id, &scratch[..k]) {
                                Ok(w) => {
                                    *sent += w as u64;
                                    if w < k {
                                        break;
                                    }
                                }
                                Err(WriteError::Blocked) => break,
                                Err(e) => {
                                    *done = Some(format!("PUT {n} BAD write error {e:?}"));
                                    break;
                                }
                            }
                        }
                        if *sent == *n && !*finished && done.is_none() {
                            conn.finish(id).map_err(|e| format!("finish PUT: {e:?}"))?;
                            *finished = true;
                        }
                        loop {
                            match conn.read(id, &mut scratch) {
                                Ok(o) => {
                                    answer.extend_from_slice(&scratch[..o.bytes]);
                                    if answer.len() > 200 {
                                        *done = Some(format!("PUT {n} BAD answer too long"));
                                        break;
                                    }
                                    if o.fin {
                                        let a = String::from_utf8_lossy(answer).into_owned();
                                        let want = format!("OK {n} {}\n", pattern_sha256(*n));
                                        let ok = a == want;
                                        *done = Some(format!("PUT {n} {} answer={:?}", if ok { "ok" } else { "BAD" }, a.trim_end()));
                                        break;
                                    }
                                    if o.bytes == 0 {
                                        break;
                                    }
                                }
                                Err(StreamReadError::Blocked) => break,
                                Err(e) => {
                                    *done = Some(format!("PUT {n} BAD read error {e}"));
                                    break;
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
            hook(conn, downloaded);
            if to_open.is_empty() && reqs.iter().all(|(_, r)| r.done()) {
                break;
            }
            if Instant::now() >= end {
                let progress: Vec<String> = reqs
                    .iter()
                    .map(|(id, r)| match r {
                        ClientReq::Get { n, got, done, .. } => format!("{id:?} GET {n}: got {got}, done {done:?}"),
                        ClientReq::Put { n, sent, answer, done, .. } => {
                            format!("{id:?} PUT {n}: sent {sent}, answer {:?}, done {done:?}", String::from_utf8_lossy(answer))
                        }
                    })
                    .collect();
                return Err(format!("requests not done within {limit:?}: {progress:#?}"));
            }
            self.driver.turn(Duration::from_millis(5));
        }
        let lines: Vec<String> = reqs
            .iter()
            .map(|(_, r)| match r {
                ClientReq::Get { done, .. } | ClientReq::Put { done, .. } => done.clone().unwrap_or_default(),
            })
            .collect();
        let all_ok = lines.iter().all(|l| l.contains(" ok "));
        Ok(ClientOutcome { lines, all_ok, downloaded, elapsed: start.elapsed() })
    }

    /// Closes with code 0 and turns until the connection is freed (bounded).
    fn close(&mut self, h: ConnectionHandle) {
        if let Some(c) = self.driver.endpoint.connection(h) {
            c.close(Instant::now(), 0, b"done");
        }
        let end = Instant::now() + Duration::from_secs(3);
        while self.driver.endpoint.connection_ref(h).is_some() && Instant::now() < end {
            self.driver.turn(Duration::from_millis(5));
        }
    }
}

// ------------------------------------------------------------ cases: aioquic client → our server

fn deadline(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

/// Runs `aioquic_peer.py client --case CASE` against `server` and returns
/// its final RESULT line; fails the test when it exits non-zero.
fn run_aioquic_client(server: &OurServer, certs: &CertDir, case: &str, extra: &[&str], secs: u64) -> (PyPeer, HashMap<String, String>) {
    let mut args: Vec<String> =
        ["client", "--port", &server.addr.port().to_string(), "--cafile", certs.cert_pem.to_str().unwrap(), "--case", case, "--deadline", &secs.to_string()]
            .iter()
            .map(|s| s.to_string())
            .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut peer = spawn_peer(&args);
    let status = match peer.wait_exit(deadline(secs + 10)) {
        Ok(s) => s,
        Err(e) => panic!("aioquic client ({case}): {e}\nour server: {:#?}\n{}", server.reports(), peer.diagnostics()),
    };
    let res = peer.result_with("case");
    assert!(
        status.success() && res.as_ref().is_some_and(|r| flag(r, "ok")),
        "aioquic client ({case}) failed: {status}\nour server: {:#?}\n{}",
        server.reports(),
        peer.diagnostics()
    );
    (peer, res.unwrap())
}

fn report_case(name: &str, start: Instant) {
    println!("[aioquic interop] {name}: passed in {:.2} s", start.elapsed().as_secs_f64());
}

#[test]
fn aioquic_client_handshake() {
    let start = Instant::now();
    let certs = CertDir::new("c-hs");
    let server = OurServer::start(&certs, ServerOptions::default());
    let (_peer, r) = run_aioquic_client(&server, &certs, "handshake", &[], 30);
    assert_eq!(r.get("alpn").map(String::as_str), Some("quicpro-interop"));
    assert!(!flag(&r, "resumed"));
    let reports = server.wait_for(deadline(5), |r| r.len() == 1 && r[0].closed.is_some());
    assert_eq!(reports.len(), 1, "{reports:#?}");
    let c = &reports[0];
    assert_eq!(c.alpn.as_deref(), Some("quicpro-interop"));
    assert!(c.handshake_done && !c.resumed && c.errors.is_empty(), "{c:#?}");
    assert_eq!((c.gets, c.puts), (1, 1));
    report_case("aioquic client -> our server: handshake + ALPN", start);
}

#[test]
fn aioquic_client_transfer_10mib_each_way() {
    let start = Instant::now();
    let certs = CertDir::new("c-xfer");
    let server = OurServer::start(&certs, ServerOptions::default());
    let total = TRANSFER.to_string();
    let streams = STREAMS.to_string();
    let (peer, r) = run_aioquic_client(&server, &certs, "transfer", &["--download", &total, "--upload", &total, "--streams", &streams], 90);
    // Every stream checked by sha256 on the aioquic side.
    let streams_ok = peer.results().iter().filter(|r| r.contains_key("stream") && flag(r, "ok")).count();
    assert_eq!(streams_ok as u64, 2 * STREAMS, "{}", peer.diagnostics());
    let reports = server.wait_for(deadline(5), |r| r.len() == 1 && r[0].closed.is_some());
    let c = &reports[0];
    assert!(c.errors.is_empty(), "{c:#?}");
    assert_eq!((u64::from(c.gets), u64::from(c.puts)), (STREAMS, STREAMS));
    assert!(c.stream_bytes_sent >= TRANSFER && c.stream_bytes_received >= TRANSFER, "{c:#?}");
    println!(
        "[aioquic interop] aioquic client <-> our server: {} Mbit/s over {} ms; our server sent {} packets, {} declared lost",
        r["mbps"], r["transfer_ms"], c.packets_sent, c.packets_lost
    );
    report_case("aioquic client -> our server: 10 MiB down + 10 MiB up over 4+4 streams", start);
}

#[test]
fn aioquic_client_resumption() {
    let start = Instant::now();
    let certs = CertDir::new("c-res");
    let server = OurServer::start(&certs, ServerOptions::default());
    let (_peer, r) = run_aioquic_client(&server, &certs, "resume", &[], 40);
    assert!(num(&r, "tickets") >= 1);
    assert!(flag(&r, "tls_resumed"), "aioquic tls.session_resumed: {r:?}");
    let reports = server.wait_for(deadline(5), |r| r.len() == 2 && r.iter().all(|c| c.closed.is_some()));
    assert_eq!(reports.len(), 2, "{reports:#?}");
    assert!(!reports[0].resumed && reports[1].resumed, "{reports:#?}");
    assert!(reports.iter().all(|c| c.errors.is_empty()), "{reports:#?}");
    report_case("aioquic client -> our server: resumption", start);
}

#[test]
fn aioquic_client_zero_rtt() {
    let start = Instant::now();
    let certs = CertDir::new("c-0rtt");
    let server = OurServer::start(&certs, ServerOptions::default());
    let (_peer, r) = run_aioquic_client(&server, &certs, "zerortt", &[], 40);
    assert!(flag(&r, "ticket_early_data"), "our ticket allows early data: {r:?}");
    assert!(flag(&r, "sent_0rtt"), "aioquic had 0-RTT keys when sending the request: {r:?}");
    assert!(flag(&r, "tls_early_data_accepted"), "aioquic tls.early_data_accepted: {r:?}");
    assert!(flag(&r, "tls_resumed"));
    let reports = server.wait_for(deadline(5), |r| r.len() == 2 && r.iter().all(|c| c.closed.is_some()));
    assert_eq!(reports.len(), 2, "{reports:#?}");
    let second = &reports[1];
    assert!(second.resumed, "{second:#?}");
    assert!(second.saw_zero_rtt, "our server installed 0-RTT keys (has_zero_rtt): {second:#?}");
    assert!(second.early_requests >= 1, "the GET was read before the handshake completed: {second:#?}");
    assert_eq!(second.zero_rtt_accepted, None, "zero_rtt_accepted() is a client-side notion");
    assert!(!reports[0].saw_zero_rtt);
    assert!(reports.iter().all(|c| c.errors.is_empty()), "{reports:#?}");
    println!(
        "[aioquic interop] aioquic: sent_0rtt={} tls.early_data_accepted={} tls.session_resumed={}; our server: has_zero_rtt={} early_requests={}",
        r["sent_0rtt"], r["tls_early_data_accepted"], r["tls_resumed"], second.saw_zero_rtt, second.early_requests
    );
    report_case("aioquic client -> our server: 0-RTT", start);
}

#[test]
fn aioquic_client_key_updates_both_ways() {
    let start = Instant::now();
    let certs = CertDir::new("c-ku");
    // aioquic requests an update after 2 MiB downloaded; our server starts
    // its own once 6 MiB went out (later, so the two do not collide).
    let server = OurServer::start(&certs, ServerOptions { key_update_after_sent: Some(6 * MIB) });
    let total = TRANSFER.to_string();
    let streams = STREAMS.to_string();
    let ku = (2 * MIB).to_string();
    let (_peer, r) = run_aioquic_client(
        &server,
        &certs,
        "keyupdate",
        &["--download", &total, "--upload", &total, "--streams", &streams, "--key-update-after", &ku, "--expect-remote-key-update"],
        90,
    );
    assert!(num(&r, "key_updates_local") >= 1, "aioquic initiated: {r:?}");
    assert!(num(&r, "key_updates_remote") >= 1, "aioquic followed ours: {r:?}");
    let reports = server.wait_for(deadline(5), |r| r.len() == 1 && r[0].closed.is_some());
    let c = &reports[0];
    assert!(c.errors.is_empty(), "{c:#?}");
    assert!(c.initiated_key_update_at.is_some_and(|at| at < TRANSFER), "our update went out mid-transfer: {c:#?}");
    assert!(c.key_updates >= 2, "one followed, one initiated: {c:#?}");
    println!(
        "[aioquic interop] aioquic key updates local={} remote={}; our server key_updates={} (own one at {:?} bytes sent)",
        r["key_updates_local"], r["key_updates_remote"], c.key_updates, c.initiated_key_update_at
    );
    report_case("aioquic client -> our server: key updates (aioquic- and server-initiated) during 10+10 MiB", start);
}

// ------------------------------------------------------------ cases: our client → aioquic server

/// Starts `aioquic_peer.py server` expecting `connections` connections and
/// returns it with its address.
fn start_aioquic_server(certs: &CertDir, connections: u32, secs: u64) -> (PyPeer, SocketAddr) {
    let args: Vec<String> = [
        "server",
        "--port",
        "0",
        "--cert",
        certs.cert_pem.to_str().unwrap(),
        "--key",
        certs.key_pem.to_str().unwrap(),
        "--connections",
        &connections.to_string(),
        "--deadline",
        &secs.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut peer = spawn_peer(&args);
    let line = match peer.wait_line("LISTENING ", deadline(20)) {
        Ok(l) => l,
        Err(e) => panic!("aioquic server: {e}\n{}", peer.diagnostics()),
    };
    let port: u16 = parse_kv(line.strip_prefix("LISTENING ").unwrap())["port"].parse().unwrap();
    (peer, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Waits for the aioquic server to exit cleanly and returns its
/// per-connection RESULT lines.
fn finish_aioquic_server(mut peer: PyPeer, connections: usize) -> Vec<HashMap<String, String>> {
    let status = match peer.wait_exit(deadline(15)) {
        Ok(s) => s,
        Err(e) => panic!("aioquic server: {e}\n{}", peer.diagnostics()),
    };
    let conns: Vec<_> = peer.results().into_iter().filter(|r| r.contains_key("conn")).collect();
    assert!(status.success(), "aioquic server exited with {status}\n{}", peer.diagnostics());
    assert_eq!(conns.len(), connections, "{}", peer.diagnostics());
    for c in &conns {
        assert!(flag(c, "ok"), "aioquic server saw a problem: {c:?}\n{}", peer.diagnostics());
    }
    conns
}

fn check_outcome(what: &str, o: &Result<ClientOutcome, String>, peer: &PyPeer) {
    match o {
        Ok(o) if o.all_ok => {}
        Ok(o) => panic!("{what}: {:#?}\n{}", o.lines, peer.diagnostics()),
        Err(e) => panic!("{what}: {e}\n{}", peer.diagnostics()),
    }
}

#[test]
fn aioquic_server_handshake() {
    let start = Instant::now();
    let certs = CertDir::new("s-hs");
    let (peer, addr) = start_aioquic_server(&certs, 1, 30);
    let mut client = OurClient::new(&certs);
    let h = client.connect(addr);
    if let Err(e) = client.handshake(h, Duration::from_secs(10)) {
        panic!("{e}\n{}", peer.diagnostics());
    }
    let c = client.conn(h).unwrap();
    assert_eq!(c.alpn(), Some(ALPN));
    assert!(!c.is_resumed());
    let o = client.run_requests(h, &[1000], &[1000], Duration::from_secs(10), |_, _| {});
    check_outcome("small GET + PUT", &o, &peer);
    client.close(h);
    let conns = finish_aioquic_server(peer, 1);
    assert_eq!(conns[0]["alpn"], "quicpro-interop");
    assert_eq!(num(&conns[0], "requests"), 2);
    report_case("our client -> aioquic server: handshake + ALPN", start);
}

#[test]
fn aioquic_server_transfer_10mib_each_way() {
    let start = Instant::now();
    let certs = CertDir::new("s-xfer");
    let (peer, addr) = start_aioquic_server(&certs, 1, 100);
    let mut client = OurClient::new(&certs);
    let h = client.connect(addr);
    if let Err(e) = client.handshake(h, Duration::from_secs(10)) {
        panic!("{e}\n{}", peer.diagnostics());
    }
    let parts = split(TRANSFER, STREAMS);
    let o = client.run_requests(h, &parts, &parts, Duration::from_secs(80), |_, _| {});
    check_outcome("10 MiB down + 10 MiB up", &o, &peer);
    let o = o.unwrap();
    assert_eq!(o.downloaded, TRANSFER);
    let mbps = (2 * TRANSFER * 8) as f64 / o.elapsed.as_secs_f64() / 1e6;
    let s = client.conn(h).unwrap().stats();
    println!(
        "[aioquic interop] our client <-> aioquic server: {mbps:.1} Mbit/s over {} ms; our client sent {} packets, {} declared lost",
        o.elapsed.as_millis(),
        s.packets_sent,
        s.packets_lost
    );
    client.close(h);
    let conns = finish_aioquic_server(peer, 1);
    assert_eq!(num(&conns[0], "bytes_out"), TRANSFER);
    assert!(num(&conns[0], "bytes_in") >= TRANSFER);
    report_case("our client -> aioquic server: 10 MiB down + 10 MiB up over 4+4 streams", start);
}

/// First connection of the resumption cases: handshake, one small request,
/// and wait for a NewSessionTicket before closing.
fn first_connection_for_ticket(client: &mut OurClient, addr: SocketAddr, peer: &PyPeer) {
    let h = client.connect(addr);
    if let Err(e) = client.handshake(h, Duration::from_secs(10)) {
        panic!("{e}\n{}", peer.diagnostics());
    }
    let o = client.run_requests(h, &[1000], &[], Duration::from_secs(10), |_, _| {});
    check_outcome("first connection", &o, peer);
    let end = deadline(5);
    while client.conn(h).unwrap().tls().tickets_received() == 0 && Instant::now() < end {
        client.driver.turn(Duration::from_millis(5));
    }
    let c = client.conn(h).unwrap();
    assert!(c.tls().tickets_received() > 0, "aioquic sent no session ticket\n{}", peer.diagnostics());
    assert!(!c.is_resumed());
    client.close(h);
}

#[test]
fn aioquic_server_resumption() {
    let start = Instant::now();
    let certs = CertDir::new("s-res");
    let (peer, addr) = start_aioquic_server(&certs, 2, 40);
    let mut client = OurClient::new(&certs);
    first_connection_for_ticket(&mut client, addr, &peer);
    let h = client.connect(addr);
    if let Err(e) = client.handshake(h, Duration::from_secs(10)) {
        panic!("{e}\n{}", peer.diagnostics());
    }
    assert!(client.conn(h).unwrap().is_resumed(), "second connection resumed\n{}", peer.diagnostics());
    let o = client.run_requests(h, &[50_000], &[50_000], Duration::from_secs(10), |_, _| {});
    check_outcome("resumed connection", &o, &peer);
    client.close(h);
    let conns = finish_aioquic_server(peer, 2);
    assert!(!flag(&conns[0], "resumed") && flag(&conns[1], "resumed"), "{conns:?}");
    report_case("our client -> aioquic server: resumption", start);
}

#[test]
fn aioquic_server_zero_rtt() {
    let start = Instant::now();
    let certs = CertDir::new("s-0rtt");
    let (peer, addr) = start_aioquic_server(&certs, 2, 40);
    let mut client = OurClient::new(&certs);
    first_connection_for_ticket(&mut client, addr, &peer);
    let h = client.connect(addr);
    assert!(client.conn(h).unwrap().has_zero_rtt(), "client has 0-RTT keys from aioquic's ticket");
    // The request streams open before any packet was exchanged: 0-RTT.
    let o = client.run_requests(h, &[100_000], &[20_000], Duration::from_secs(15), |_, _| {});
    check_outcome("0-RTT requests", &o, &peer);
    let c = client.conn(h).unwrap();
    assert!(c.is_resumed());
    assert_eq!(c.zero_rtt_accepted(), Some(true), "aioquic accepted our early data\n{}", peer.diagnostics());
    client.close(h);
    let conns = finish_aioquic_server(peer, 2);
    assert!(flag(&conns[1], "early_data_accepted"), "{conns:?}");
    assert!(num(&conns[1], "early_requests") >= 1, "aioquic read a request before the handshake completed: {conns:?}");
    report_case("our client -> aioquic server: 0-RTT", start);
}

#[test]
fn aioquic_server_key_update() {
    let start = Instant::now();
    let certs = CertDir::new("s-ku");
    let (peer, addr) = start_aioquic_server(&certs, 1, 100);
    let mut client = OurClient::new(&certs);
    let h = client.connect(addr);
    if let Err(e) = client.handshake(h, Duration::from_secs(10)) {
        panic!("{e}\n{}", peer.diagnostics());
    }
    let parts = split(TRANSFER, STREAMS);
    let mut initiated_at = None;
    let o = client.run_requests(h, &parts, &parts, Duration::from_secs(80), |c, downloaded| {
        // Mid-transfer, retried until the current phase is acknowledged.
        if initiated_at.is_none() && downloaded >= 2 * MIB && c.initiate_key_update(Instant::now()) {
            initiated_at = Some(downloaded);
        }
    });
    check_outcome("10 MiB each way with a key update", &o, &peer);
    assert!(initiated_at.is_some_and(|d| d < TRANSFER), "key update happened mid-transfer: {initiated_at:?}");
    let ku = client.conn(h).unwrap().stats().key_updates;
    assert!(ku >= 1);
    client.close(h);
    let conns = finish_aioquic_server(peer, 1);
    assert!(num(&conns[0], "key_updates_remote") >= 1, "aioquic followed our key update: {conns:?}");
    println!(
        "[aioquic interop] our client key_updates={ku} (initiated after {initiated_at:?} bytes downloaded); aioquic server remote={}",
        conns[0]["key_updates_remote"]
    );
    report_case("our client -> aioquic server: key update during 10+10 MiB", start);
}
