//! `quicpro serve`: an HTTP/3 server on N worker threads sharing one UDP
//! port (SO_REUSEPORT), each with its own endpoint and backend.
//!
//! Routes: `GET /echo/...` answers with the path; `POST /echo` answers with
//! the body's length and SHA-256; `GET /bytes/<n>` streams n deterministic
//! bytes (byte i = (i*7 + i/251) mod 256); anything else is a file under
//! `--root` (no `..`), or 404.

use std::fs::File;
use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use h3_core::connection::H3Event;
use h3_core::qpack::HeaderField;
use io_backends::runtime::{H3Handle, Server, ServerOptions};
use io_backends::select::BackendConfig;
use quic_core::endpoint::RetryPolicy;
use quic_core::fast_hash::FastHashMap;
use quic_core::stream::StreamId;
use quic_core::tls::ServerTlsOptions;
use quicpro_bpf::ReuseportGroup;
use smallvec::SmallVec;

use crate::static_files;
use crate::steering::{self, SteeringMode};

pub static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// SIGINT/SIGTERM start a graceful shutdown (RFC 9114 §5.2 GOAWAY).
pub fn install_signal_handlers() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub bind: SocketAddr,
    pub root: Option<PathBuf>,
    pub tls: ServerTlsOptions,
    pub workers: usize,
    pub backend: BackendConfig,
    pub qlog_dir: Option<PathBuf>,
    /// Stop after this long (for tests and benchmarks); `None` runs until a signal.
    pub duration: Option<Duration>,
    /// How long in-flight requests may finish after GOAWAY.
    pub drain: Duration,
    /// SO_REUSEPORT steering by connection ID (`--steering`).
    pub steering: SteeringMode,
    /// When to demand address validation with Retry (RFC 9000 §8.1.2).
    pub retry: RetryPolicy,
    /// `TransportConfig::max_gso_segments` for every connection.
    pub gso_segments: usize,
    /// `--max-udp-payload`, `--no-pmtud`.
    pub path: crate::path_opts::PathOptions,
    /// `--cc`, `--no-hystart`.
    pub cc: crate::cc_opts::CcOptions,
    /// `--preferred-address` (RFC 9000 §9.6).
    pub preferred_address: Option<quic_core::endpoint::PreferredAddresses>,
    /// `--server-id`, `--lb-key`, `--lb-config-rotation` (QUIC-LB).
    pub cid_format: quic_core::quic_lb::ServerCidFormat,
    /// `TransportConfig::versions` (empty: every supported version).
    pub versions: Vec<quic_core::Version>,
    /// `ServerConfig::max_connections` per worker.
    pub max_connections: usize,
    /// `TransportConfig::handshake_timeout`.
    pub handshake_timeout: Option<Duration>,
}

/// Datagrams per GSO batch by default: as many full-size ones as one
/// 64 KiB UDP_SEGMENT send carries (44 × 1472 B); fewer, larger system
/// calls and, towards a GRO receiver on loopback, fewer packets to handle.
pub const DEFAULT_GSO_SEGMENTS: usize = 44;

/// Handshakes in progress above which `--retry under-load` sends Retry:
/// below it a flood of spoofed Initials costs only handshake state, above
/// it every new client pays one round trip to prove its address.
pub const DEFAULT_RETRY_THRESHOLD: usize = 1024;

/// Parses `--retry never|always|under-load[=N]`.
pub fn parse_retry(s: &str) -> Result<RetryPolicy, String> {
    match s {
        "never" => Ok(RetryPolicy::Never),
        "always" => Ok(RetryPolicy::Always),
        "under-load" => Ok(RetryPolicy::UnderLoad { max_handshakes: DEFAULT_RETRY_THRESHOLD }),
        _ => match s.strip_prefix("under-load=").map(str::parse::<usize>) {
            Some(Ok(n)) => Ok(RetryPolicy::UnderLoad { max_handshakes: n }),
            _ => Err(format!("{s:?}: expected never, always, under-load or under-load=N")),
        },
    }
}

/// A self-signed certificate for `localhost` (and the given names), made on the fly.
pub fn self_signed(names: &[String]) -> Result<(rustls::pki_types::CertificateDer<'static>, rustls::pki_types::PrivateKeyDer<'static>), String> {
    let mut all = vec!["localhost".to_string()];
    all.extend(names.iter().cloned());
    let ck = rcgen::generate_simple_self_signed(all).map_err(|e| e.to_string())?;
    Ok((ck.cert.der().clone(), rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into())))
}

/// The `/bytes/<n>` pattern repeats every 251 × 256 bytes: (i + P)·7 ≡ i·7
/// (mod 256) because 256 divides P, and (i + P)/251 = i/251 + 256.
const PATTERN_PERIOD: u64 = 251 * 256;

/// Largest chunk [`pattern_chunk`] hands out.
const PATTERN_MAX_CHUNK: usize = 256 * 1024;

/// `len` bytes (at most 256 KiB) of the pattern at `offset`: a slice of one
/// buffer built once per process, so streaming a large body neither
/// computes nor copies bytes per chunk. The buffer lives as long as the
/// process (`'static`): a static `Bytes` is cloned and dropped without the
/// atomic reference count a shared one pays per response.
pub fn pattern_chunk(offset: u64, len: usize) -> Bytes {
    static BUF: std::sync::OnceLock<&'static [u8]> = std::sync::OnceLock::new();
    let buf = BUF.get_or_init(|| {
        let n = PATTERN_PERIOD + PATTERN_MAX_CHUNK as u64;
        Box::leak((0..n).map(|i| (i.wrapping_mul(7).wrapping_add(i / 251)) as u8).collect::<Vec<u8>>().into_boxed_slice())
    });
    let start = (offset % PATTERN_PERIOD) as usize;
    Bytes::from_static(buf.get(start..start + len.min(PATTERN_MAX_CHUNK)).unwrap_or_default())
}

enum BodySource {
    /// Headers only (HEAD, 304, empty files).
    Empty,
    Bytes(Bytes),
    Pattern {
        next: u64,
        end: u64,
    },
    /// `left` more bytes of the file, from its current position.
    File {
        file: File,
        left: u64,
    },
}

struct Pending {
    source: BodySource,
    /// Bytes read from the source but not yet accepted by the stream.
    carry: Option<Bytes>,
}

enum Incoming {
    /// POST /echo: hashing the body as it arrives.
    /// Boxed: the hash state is large beside the other variant.
    Echo {
        ctx: Box<ring::digest::Context>,
        len: u64,
    },
    Ignore,
}

/// A header field from constants: no allocation.
fn static_field(n: &'static str, v: &'static str) -> HeaderField {
    HeaderField::new(Bytes::from_static(n.as_bytes()), Bytes::from_static(v.as_bytes()))
}

/// Runs one worker until STOP (or the duration) and the drain are over.
/// `group`: the connection-ID steering group the worker's socket joins
/// right after bind.
pub fn run_worker(cfg: &ServeConfig, worker_id: u8, secrets: ([u8; 32], [u8; 32]), quiet: bool, group: Option<&Arc<ReuseportGroup>>) -> Result<(), String> {
    let mut opts = ServerOptions::new(cfg.bind, cfg.tls.clone());
    opts.backend = cfg.backend.clone();
    if let Some(g) = group {
        opts.backend.udp.after_bind = Some(steering::hook(g, worker_id, cfg.steering == SteeringMode::On));
    }
    opts.worker_id = worker_id;
    opts.reset_secret = secrets.0;
    opts.token_secret = secrets.1;
    opts.retry = cfg.retry;
    opts.transport.max_gso_segments = cfg.gso_segments.max(1);
    cfg.path.apply(&mut opts.transport);
    cfg.cc.apply(&mut opts.transport);
    opts.preferred_address = cfg.preferred_address;
    opts.cid_format = cfg.cid_format.clone();
    opts.transport.versions = cfg.versions.clone();
    opts.transport.handshake_timeout = cfg.handshake_timeout;
    opts.max_connections = cfg.max_connections;
    // qlog from each connection's first datagram (the endpoint opens it).
    opts.qlog_dir = cfg.qlog_dir.clone();
    let mut server = Server::bind(opts).map_err(|e| e.to_string())?;
    // This loop answers every event of a turn at once (file bodies are read
    // in bounded chunks): the turn's own transmits can wait for the answers.
    server.driver().set_flush_after_app(true);
    if !quiet {
        eprintln!("[worker {worker_id}] listening on {} — {}", server.local_addr(), server.backend_description());
    }
    let start = Instant::now();
    // Keyed by our handle and a stream ID within the peer's stream limit:
    // a fast hash (quic-core's stream maps do the same), not SipHash.
    let mut pending: FastHashMap<(H3Handle, StreamId), Pending> = FastHashMap::default();
    let mut incoming: FastHashMap<(H3Handle, StreamId), Incoming> = FastHashMap::default();
    let mut shutdown_at: Option<Instant> = None;
    let mut hq = crate::hq::HqRequests::default();
    let mut lengths = LengthFields::default();
    loop {
        let stop = STOP.load(Ordering::SeqCst) || cfg.duration.is_some_and(|d| start.elapsed() >= d);
        if stop && shutdown_at.is_none() {
            server.goaway_all();
            shutdown_at = Some(Instant::now() + cfg.drain);
        }
        if let Some(t) = shutdown_at {
            if server.open_requests() == 0 || Instant::now() >= t {
                server.close_all(h3_core::error::H3ErrorCode::H3_NO_ERROR.0);
                // Let the CONNECTION_CLOSE frames go out.
                for _ in 0..3 {
                    let _ = server.step(Duration::from_millis(5));
                }
                break;
            }
        }
        server.step(Duration::from_millis(if pending.is_empty() { 50 } else { 1 })).map_err(|e| e.to_string())?;
        while server.accept().is_some() {}
        while let Some((h, ev)) = server.poll_event() {
            match ev {
                H3Event::Headers { stream, headers, fin } => {
                    // Borrowed (no copy) unless the bytes are not UTF-8.
                    let get = |n: &str| headers.iter().find(|f| &f.name[..] == n.as_bytes()).map(|f| String::from_utf8_lossy(&f.value));
                    let method = get(":method").unwrap_or_default();
                    let path = get(":path").unwrap_or(std::borrow::Cow::Borrowed("/"));
                    if method == "POST" && path.starts_with("/echo") {
                        incoming.insert((h, stream), Incoming::Echo { ctx: Box::new(ring::digest::Context::new(&ring::digest::SHA256)), len: 0 });
                        if fin {
                            finish_echo(&mut server, &mut incoming, &mut pending, h, stream);
                        }
                        continue;
                    }
                    if !fin {
                        incoming.insert((h, stream), Incoming::Ignore);
                    }
                    let reply = route(cfg, &method, &path, &headers, worker_id, &mut lengths);
                    let end = matches!(reply.source, BodySource::Empty);
                    if server.respond(h, stream, reply.status, &reply.headers, end).is_ok() && !end {
                        // Most bodies fit in the stream's buffer at once: no
                        // trip through the pending map for them.
                        let mut p = Pending { source: reply.source, carry: None };
                        if !pump_one(&mut server, h, stream, &mut p) {
                            pending.insert((h, stream), p);
                        }
                    }
                }
                H3Event::Data { stream } => {
                    while let Some(b) = server.recv_body(h, stream, usize::MAX) {
                        if let Some(Incoming::Echo { ctx, len }) = incoming.get_mut(&(h, stream)) {
                            ctx.update(&b);
                            *len += b.len() as u64;
                        }
                    }
                }
                H3Event::Finished { stream } => finish_echo(&mut server, &mut incoming, &mut pending, h, stream),
                H3Event::Reset { stream, .. } => {
                    pending.remove(&(h, stream));
                    incoming.remove(&(h, stream));
                }
                H3Event::Transport(ev) if server.is_raw(h) => {
                    // hq-interop (HTTP/0.9): the same routes, body only.
                    for (stream, path) in hq.on_event(&mut server, h, &ev) {
                        let reply = route(cfg, "GET", &path, &[], worker_id, &mut lengths);
                        let mut p = Pending { source: reply.source, carry: None };
                        if !pump_one(&mut server, h, stream, &mut p) {
                            pending.insert((h, stream), p);
                        }
                    }
                }
                _ => {}
            }
        }
        while let Some((h, _)) = server.poll_closed() {
            hq.forget(h);
            pending.retain(|(ph, _), _| *ph != h);
            incoming.retain(|(ph, _), _| *ph != h);
        }
        pump_bodies(&mut server, &mut pending);
    }
    if !quiet {
        let s = server.endpoint_stats();
        eprintln!(
            "[worker {worker_id}] stopped: {} connections accepted, {} datagrams, dropped: {} unparseable, {} unknown CID, {} small Initials, {} invalid tokens, {} over the connection limit; sent: {} version negotiations, {} stateless resets, {} retries",
            s.connections_accepted,
            s.datagrams_received,
            s.dropped_unparseable,
            s.dropped_unknown_connection,
            s.dropped_initial_too_small,
            s.dropped_invalid_token,
            s.dropped_too_many,
            s.version_negotiations_sent,
            s.stateless_resets_sent,
            s.retries_sent
        );
        // Loss recovery over the connections still open: a latency tail
        // with losses in it is recovery time, one without is queueing.
        let ep = &server.driver().endpoint;
        let (mut sent, mut lost, mut spurious) = (0u64, 0u64, 0u64);
        for c in ep.handles().filter_map(|h| ep.connection_ref(h)) {
            let st = c.stats();
            (sent, lost, spurious) = (sent + st.packets_sent, lost + st.packets_lost, spurious + st.spurious_losses);
        }
        eprintln!("[worker {worker_id}] open connections: {sent} packets sent, {lost} declared lost, {spurious} of them spuriously");
        // Backend-specific counters (AF_XDP rings and XDP program).
        if let Some(r) = server.driver().backend.report() {
            eprintln!("[worker {worker_id}] io: {r}");
        }
        let b = server.backend_stats();
        eprintln!(
            "[worker {worker_id}] backend: {} send calls, {} messages, {} dropped, {} GSO fallbacks; {} receive calls, {} buffers",
            b.send_calls, b.send_messages, b.send_dropped, b.gso_fallbacks, b.recv_calls, b.recv_buffers
        );
    }
    Ok(())
}

fn finish_echo(
    server: &mut Server,
    incoming: &mut FastHashMap<(H3Handle, StreamId), Incoming>,
    pending: &mut FastHashMap<(H3Handle, StreamId), Pending>,
    h: H3Handle,
    stream: StreamId,
) {
    if let Some(Incoming::Echo { ctx, len }) = incoming.remove(&(h, stream)) {
        let digest = (*ctx).finish();
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        let body = Bytes::from(format!("{len} {hex}\n"));
        if server.respond(h, stream, 200, &[static_field("content-type", "text/plain")], false).is_ok() {
            pending.insert((h, stream), Pending { source: BodySource::Bytes(body), carry: None });
        }
    }
}

/// A response's header fields: a few, so kept inline.
type Fields = SmallVec<[HeaderField; 4]>;

/// A response chosen by [`route`]: status, header fields, body.
struct Reply {
    status: u16,
    headers: Fields,
    source: BodySource,
}

impl Reply {
    /// A generated body of known length; `head` keeps the headers only.
    fn bytes(status: u16, ctype: &'static str, body: Bytes, head: bool, lengths: &mut LengthFields) -> Self {
        let headers = SmallVec::from_iter([static_field("content-type", ctype), static_field("server", "quicpro"), lengths.field(body.len() as u64)]);
        Reply { status, headers, source: if head { BodySource::Empty } else { BodySource::Bytes(body) } }
    }
}

/// `content-length` fields of recent lengths: a server answering many
/// requests of one size formats and allocates its value once, not per
/// response (a clone of the shared value only counts a reference).
#[derive(Default)]
struct LengthFields {
    recent: FastHashMap<u64, Bytes>,
}

impl LengthFields {
    /// Lengths remembered at most; past that the memory starts over.
    const MAX: usize = 64;

    fn field(&mut self, n: u64) -> HeaderField {
        if self.recent.len() >= Self::MAX && !self.recent.contains_key(&n) {
            self.recent.clear();
        }
        let value = self.recent.entry(n).or_insert_with(|| Bytes::copy_from_slice(n.to_string().as_bytes()));
        HeaderField::new(Bytes::from_static(b"content-length"), value.clone())
    }
}

fn route(cfg: &ServeConfig, method: &str, path: &str, headers: &[HeaderField], worker_id: u8, lengths: &mut LengthFields) -> Reply {
    let head = method == "HEAD";
    let clean = path.split('?').next().unwrap_or("/");
    let generated = clean.starts_with("/bytes/") || clean.starts_with("/echo") || cfg.root.is_none();
    if generated && method != "GET" && !head {
        let mut r = Reply::bytes(405, "text/plain; charset=utf-8", Bytes::from_static(b"method not allowed\n"), false, lengths);
        r.headers.push(static_field("allow", "GET, HEAD"));
        return r;
    }
    if let Some(rest) = clean.strip_prefix("/bytes/") {
        if let Ok(n) = rest.parse::<u64>() {
            let headers = SmallVec::from_iter([static_field("content-type", "application/octet-stream"), static_field("server", "quicpro"), lengths.field(n)]);
            let source = if head || n == 0 { BodySource::Empty } else { BodySource::Pattern { next: 0, end: n } };
            return Reply { status: 200, headers, source };
        }
    }
    let Some(root) = cfg.root.as_deref().filter(|_| !clean.starts_with("/echo")) else {
        let body = format!("echo from worker {worker_id}: {clean}\n");
        return Reply::bytes(200, "text/plain", Bytes::from(body), head, lengths);
    };
    let get = |n: &str| headers.iter().find(|f| &f.name[..] == n.as_bytes()).and_then(|f| std::str::from_utf8(&f.value).ok());
    let req = static_files::FileRequest {
        method,
        path,
        range: get("range"),
        if_range: get("if-range"),
        if_match: get("if-match"),
        if_none_match: get("if-none-match"),
        if_modified_since: get("if-modified-since"),
        if_unmodified_since: get("if-unmodified-since"),
    };
    let resp = static_files::respond(root, &req);
    let mut fields = Fields::with_capacity(resp.headers.len() + 1);
    fields.push(static_field("server", "quicpro"));
    fields.extend(resp.headers.iter().map(|(n, v)| HeaderField::new(Bytes::from_static(n.as_bytes()), Bytes::from(v.clone()))));
    let source = match resp.body {
        static_files::FileBody::Empty => BodySource::Empty,
        static_files::FileBody::Text(b) => BodySource::Bytes(b),
        static_files::FileBody::File { file, len } => BodySource::File { file, left: len },
    };
    Reply { status: resp.status, headers: fields, source }
}

/// Moves response bodies into the streams as far as their buffers allow.
fn pump_bodies(server: &mut Server, pending: &mut FastHashMap<(H3Handle, StreamId), Pending>) {
    pending.retain(|&(h, stream), p| !pump_one(server, h, stream, p));
}

/// Feeds one response body; `true` when it is complete (or the stream is
/// gone) and the entry can be dropped.
fn pump_one(server: &mut Server, h: H3Handle, stream: StreamId, p: &mut Pending) -> bool {
    // hq-interop connections carry the body bare on the stream.
    let raw = server.is_raw(h);
    for _ in 0..64 {
        let chunk = match p.carry.take() {
            Some(c) => c,
            None => match &mut p.source {
                BodySource::Bytes(b) => std::mem::take(b),
                BodySource::Pattern { next, end } => {
                    let n = (*end - *next).min(256 * 1024) as usize;
                    let c = pattern_chunk(*next, n);
                    *next += n as u64;
                    c
                }
                BodySource::Empty => Bytes::new(),
                BodySource::File { file, left } => {
                    let mut buf = vec![0u8; (*left).min(256 * 1024) as usize];
                    match file.read(&mut buf) {
                        Ok(n) => {
                            buf.truncate(n);
                            *left -= n as u64;
                            Bytes::from(buf)
                        }
                        Err(_) => Bytes::new(),
                    }
                }
            },
        };
        let last = chunk.is_empty()
            || match &p.source {
                BodySource::Empty => true,
                BodySource::Bytes(b) => b.is_empty(),
                BodySource::Pattern { next, end } => next >= end,
                BodySource::File { left, .. } => *left == 0,
            };
        if chunk.is_empty() {
            if raw {
                let _ = server.send_raw(h, stream, Bytes::new(), true);
            } else {
                let _ = server.finish(h, stream);
            }
            return true;
        }
        let sent = if raw { server.send_raw(h, stream, chunk.clone(), last) } else { server.send_body(h, stream, chunk.clone(), last) };
        match sent {
            Ok(n) if n == chunk.len() => {
                if last {
                    return true;
                }
            }
            Ok(n) => {
                p.carry = Some(chunk.slice(n..));
                return false;
            }
            Err(_) => return true,
        }
    }
    false
}

/// Starts `workers` threads on one port and waits for them.
pub fn serve(cfg: ServeConfig) -> Result<(), String> {
    install_signal_handlers();
    let mut rng = quic_core::rand::SystemRandom::new();
    let mut reset = [0u8; 32];
    let mut token = [0u8; 32];
    quic_core::rand::RandomSource::fill(&mut rng, &mut reset);
    quic_core::rand::RandomSource::fill(&mut rng, &mut token);
    let mut cfg = cfg;
    if let Some(root) = &cfg.root {
        // Containment checks compare against the resolved root.
        cfg.root = Some(static_files::canonical_root(root).map_err(|e| format!("--root {}: {e}", root.display()))?);
    }
    // One session store for all workers: a ticket issued by one worker
    // resumes (and admits 0-RTT once) on any other.
    if cfg.tls.session_storage.is_none() {
        cfg.tls.session_storage = Some(rustls::server::ServerSessionMemoryCache::new(16 * 1024));
    }
    let workers = cfg.workers.max(1);
    if workers > 256 {
        return Err(format!("--workers {workers}: at most 256 (the worker ID is one byte of the connection ID)"));
    }
    if cfg.bind.port() == 0 && workers > 1 {
        // Every worker must bind the same port; pick a free one first.
        let probe = std::net::UdpSocket::bind(cfg.bind).map_err(|e| format!("bind {}: {e}", cfg.bind))?;
        let port = probe.local_addr().map_err(|e| e.to_string())?.port();
        cfg.bind.set_port(port);
    }
    let group = steering::setup(cfg.steering, workers, &cfg.cid_format)?;
    let cfg = Arc::new(cfg);
    let mut threads = Vec::new();
    for i in 0..workers {
        let cfg = cfg.clone();
        let group = group.clone();
        threads.push(std::thread::spawn(move || run_worker(&cfg, i as u8, (reset, token), false, group.as_ref())));
    }
    let mut result = Ok(());
    for t in threads {
        match t.join() {
            Ok(Err(e)) => result = Err(e),
            Err(_) => result = Err("worker panicked".into()),
            Ok(Ok(())) => {}
        }
    }
    if let Some(g) = &group {
        match g.counters() {
            Ok(c) => eprintln!("quicpro serve: {}", steering::describe(&c)),
            Err(e) => eprintln!("quicpro serve: steering counters unavailable: {e}"),
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_values_are_shared_and_the_memory_is_bounded() {
        let mut lengths = LengthFields::default();
        let a = lengths.field(1024);
        let b = lengths.field(1024);
        assert_eq!(&a.name[..], b"content-length");
        assert_eq!(&a.value[..], b"1024");
        // The second response's value is the first one's bytes, not a copy.
        assert_eq!(a.value.as_ptr(), b.value.as_ptr());
        for n in 0..(LengthFields::MAX as u64 * 3) {
            assert_eq!(lengths.field(n).value, n.to_string().as_bytes());
            assert!(lengths.recent.len() <= LengthFields::MAX);
        }
    }
}
