//! `Quicpro\Server`, `Quicpro\Session` and `Quicpro\Stream`: an HTTP/3
//! server for PHP, with Fibers as the unit of concurrency.
//!
//! One `ServerCore` per `Server` owns the runtime (socket, endpoint, HTTP/3)
//! and the per-session state PHP sees. Every blocking call goes through
//! [`wait_until`]: on the main stack it drives the loop itself; inside a
//! Fiber it parks the Fiber with what it waits for and suspends, and
//! whoever drives the loop next (normally `Server::accept`) resumes it when
//! that has happened. So `while ($s = $srv->accept(100)) (new Fiber(...))->start();`
//! serves thousands of sessions from one process.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::ErrorKind as IoErrorKind;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ext_php_rs::prelude::*;
use ext_php_rs::types::{ZendClassObject, ZendHashTable, Zval};
use h3_core::connection::{H3Event, SendError};
use h3_core::qpack::HeaderField;
use io_backends::runtime::{H3Handle, Server as RtServer, ServerOptions};
use io_backends::select::BackendConfig;
use io_backends::runtime::server::ServerError;
use quic_core::connection::Event as QuicEvent;
use quic_core::stream::StreamId;
use quic_core::tls::ServerTlsOptions;

use crate::config::{Config, ConfigData};
use crate::errors::{ErrorKind, QpError, QpResult};
use crate::{fiber, headers, signals, trace};

/// H3_NO_ERROR (RFC 9114 §8.1): a graceful close.
const H3_NO_ERROR: u64 = 0x100;
/// H3_REQUEST_CANCELLED: a stream the application abandons.
const H3_REQUEST_CANCELLED: u64 = 0x10c;
/// Queued response bytes above which `sendBody` waits for the peer.
const OUT_HIGH_WATER: usize = 4 * 1024 * 1024;
/// How long a `close()` waits for its responses to be acknowledged.
const CLOSE_LINGER: Duration = Duration::from_secs(10);
/// How long SIGTERM/SIGINT lets in-flight requests finish.
const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

/// One request stream as PHP sees it.
#[derive(Debug, Default)]
struct StreamState {
    headers: Vec<HeaderField>,
    trailers: Vec<HeaderField>,
    /// Request body fully received (FIN seen and read).
    body_done: bool,
    /// HTTP/3 has body bytes for `read()` (set by a Data event, cleared
    /// when a read finds nothing).
    data_ready: bool,
    reset: Option<u64>,
    responded: bool,
    out: VecDeque<Bytes>,
    out_len: usize,
    /// The application asked for FIN after `out`.
    out_fin: bool,
    fin_sent: bool,
    /// Live `Quicpro\Stream` objects for it; the state is dropped once
    /// none is left and the response is over.
    php_refs: usize,
}

impl StreamState {
    /// Nothing more can happen on it that PHP could observe.
    fn is_done(&self) -> bool {
        self.out.is_empty() && (self.fin_sent || self.reset.is_some())
    }
}

#[derive(Debug)]
struct SessionState {
    remote: SocketAddr,
    /// Handed to PHP by `accept` (or queued for it).
    announced: bool,
    requests: VecDeque<StreamId>,
    streams: HashMap<StreamId, StreamState>,
    close_requested: Option<Instant>,
    /// Why the connection is gone, once it is.
    gone: Option<String>,
    /// It ended normally (H3_NO_ERROR from the peer, or our own close).
    gone_graceful: bool,
    /// Live `Quicpro\Session` and `Quicpro\Stream` objects for it; the
    /// state is dropped once none is left and the connection is gone.
    php_refs: usize,
    resumed: bool,
}

/// What a parked Fiber waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitFor {
    Request(H3Handle),
    Body(H3Handle, StreamId),
    Drained(H3Handle, StreamId),
}

struct Waiter {
    fiber: Zval,
    what: WaitFor,
    deadline: Option<Instant>,
}

pub struct ServerCore {
    rt: RtServer,
    cfg: Rc<ConfigData>,
    worker_id: u8,
    sessions: HashMap<H3Handle, SessionState>,
    accept_queue: VecDeque<H3Handle>,
    /// PHP objects freed since the last turn (pushed by their `Drop`, which
    /// may run while the core is borrowed).
    released: Released,
    waiters: Vec<Waiter>,
    /// Streams with queued response bytes.
    pending_out: HashSet<(H3Handle, StreamId)>,
    closing: HashSet<H3Handle>,
    qlog_dir: Option<std::path::PathBuf>,
    stopped: bool,
    draining_since: Option<Instant>,
}

impl core::fmt::Debug for ServerCore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ServerCore").field("sessions", &self.sessions.len()).field("worker", &self.worker_id).finish()
    }
}

pub type CoreRef = Rc<RefCell<ServerCore>>;

/// PHP objects freed since the last turn: (session, stream if a `Stream`).
type Released = Rc<RefCell<Vec<(H3Handle, Option<StreamId>)>>>;

/// A normal end of a connection: the client closed with H3_NO_ERROR
/// (RFC 9114 §8.1), or we closed it.
fn is_graceful(e: &quic_core::connection::ConnectionError) -> bool {
    use quic_core::connection::ConnectionError as E;
    matches!(e, E::LocallyClosed) || matches!(e, E::PeerApplicationClose { code, .. } if *code == H3_NO_ERROR)
}

fn parse_bind(host: &str, port: u16) -> QpResult<SocketAddr> {
    let h = host.trim();
    let h = h.strip_prefix('[').and_then(|x| x.strip_suffix(']')).unwrap_or(h);
    let h = if h.is_empty() || h == "*" { "::" } else { h };
    if let Ok(ip) = h.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (h, port)
        .to_socket_addrs()
        .map_err(|e| QpError::new(ErrorKind::Socket, format!("cannot resolve '{host}': {e}")))?
        .next()
        .ok_or_else(|| QpError::new(ErrorKind::Socket, format!("'{host}' has no address")))
}

impl ServerCore {
    fn bind(host: &str, port: i64, cfg: Rc<ConfigData>) -> QpResult<Self> {
        let port = u16::try_from(port).map_err(|_| QpError::new(ErrorKind::Socket, format!("port {port} is out of range 0..=65535")))?;
        let addr = parse_bind(host, port)?;
        let (Some(key), false) = (cfg.key.as_ref(), cfg.cert_chain.is_empty()) else {
            return Err(QpError::new(ErrorKind::Config, "a server needs 'cert_file' (and 'key_file' unless the key is in the same file)"));
        };
        let alpn = cfg.alpn_refs();
        let mut tls = ServerTlsOptions::new(cfg.cert_chain.clone(), key.clone_key(), &alpn);
        tls.early_data = cfg.early_data;
        tls.key_log = cfg.keylog;
        if cfg.session_cache {
            // The shared-memory LRU mapped at module startup, before any
            // fork: a session stored by one worker resumes on every other.
            tls.session_storage = crate::shm::session_store();
            tls.ticketer = crate::shm::ticketer();
        }
        let worker_id = crate::shm::next_worker_id();
        let mut opts = ServerOptions::new(addr, tls);
        opts.transport = cfg.transport();
        opts.h3 = cfg.h3();
        opts.retry = cfg.retry;
        opts.reset_secret = cfg.reset_secret;
        opts.token_secret = cfg.token_secret;
        opts.worker_id = worker_id;
        let mut backend = BackendConfig::from_env().map_err(|e| QpError::new(ErrorKind::Socket, e.to_string()))?;
        backend.udp.reuse_port = cfg.reuse_port;
        if let (Some(group), true) = (cfg.steering.clone(), cfg.reuse_port) {
            // Joins this worker's socket to the group made before the fork:
            // packets whose connection ID names this worker reach it, also
            // after the client's address changes. Best effort: a worker that
            // cannot join takes the kernel's hash, as without steering.
            backend.udp.after_bind = Some(io_backends::udp::SocketHook::new("quicpro reuseport steering", move |fd, _| {
                let w = u32::from(worker_id);
                match group.join(w, fd) {
                    Ok(()) => {
                        let _ = group.set_hash_workers((w + 1).max(1));
                        trace::event(&format!("worker {w} joined connection-ID steering"));
                    }
                    Err(e) => trace::event(&format!("worker {w}: connection-ID steering not joined: {e}")),
                }
                Ok(())
            }));
        } else if let Some(e) = &cfg.steering_error {
            trace::event(&format!("connection-ID steering off: {e}"));
        }
        opts.backend = backend;
        let rt = RtServer::bind(opts).map_err(|e| match e {
            ServerError::Backend(e) => QpError::new(ErrorKind::Socket, format!("cannot listen on {addr}: {e}")),
            ServerError::Tls(e) => QpError::new(ErrorKind::Config, format!("TLS configuration: {e}")),
        })?;
        trace::event(&format!("worker {worker_id} listening on {} — {}", rt.local_addr(), rt.backend_description()));
        let qlog_dir = cfg.qlog_dir.clone().or_else(trace::qlog_dir);
        Ok(Self {
            rt,
            cfg,
            worker_id,
            sessions: HashMap::new(),
            accept_queue: VecDeque::new(),
            released: Rc::new(RefCell::new(Vec::new())),
            waiters: Vec::new(),
            pending_out: HashSet::new(),
            closing: HashSet::new(),
            qlog_dir,
            stopped: false,
            draining_since: None,
        })
    }

    /// One turn of the runtime, then everything it produced.
    fn step(&mut self, wait: Duration) -> QpResult<()> {
        match self.rt.step(wait) {
            Ok(()) => {}
            // A signal woke the wait: not an error, the caller checks the flag.
            Err(e) if e.kind() == IoErrorKind::Interrupted => {}
            Err(e) => return Err(QpError::new(ErrorKind::Socket, format!("socket: {e}"))),
        }
        self.absorb();
        Ok(())
    }

    /// Routes runtime events into session state, pumps queued output and
    /// finishes graceful closes.
    fn absorb(&mut self) {
        while let Some(h) = self.rt.accept() {
            let remote = self.rt.driver().endpoint.connection_ref(h.0).map(|c| c.remote_address());
            let Some(remote) = remote else { continue };
            if let Some(dir) = &self.qlog_dir {
                let path = dir.join(format!("worker{}-{}-{}.sqlog", self.worker_id, std::process::id(), h.0 .0));
                if let Ok(f) = std::fs::File::create(path) {
                    if let Some(c) = self.rt.driver().endpoint.connection(h.0) {
                        c.enable_qlog(Box::new(std::io::BufWriter::new(f)), Instant::now());
                    }
                }
            }
            self.sessions.insert(
                h,
                SessionState {
                    remote,
                    announced: false,
                    requests: VecDeque::new(),
                    streams: HashMap::new(),
                    close_requested: None,
                    gone: None,
                    gone_graceful: false,
                    php_refs: 0,
                    resumed: false,
                },
            );
        }
        while let Some((h, ev)) = self.rt.poll_event() {
            self.on_event(h, ev);
        }
        while let Some((h, err)) = self.rt.poll_closed() {
            self.closing.remove(&h);
            self.pending_out.retain(|(x, _)| *x != h);
            let Some(s) = self.sessions.get_mut(&h) else { continue };
            if !s.announced {
                // Never seen by PHP: forget it.
                self.sessions.remove(&h);
                self.accept_queue.retain(|x| *x != h);
                continue;
            }
            s.gone_graceful = err.as_ref().is_none_or(is_graceful);
            trace::session_close(self.worker_id, s.gone_graceful);
            s.gone = Some(err.map_or_else(|| "connection closed".to_string(), |e| e.to_string()));
        }
        self.pump_all();
        self.finish_closes();
        self.collect_garbage();
    }

    /// Drops the state PHP can no longer reach: streams whose objects are
    /// gone and whose response is over, sessions whose objects are gone and
    /// whose connection ended. Keeps a long-running server's memory flat.
    fn collect_garbage(&mut self) {
        let released: Vec<_> = self.released.borrow_mut().drain(..).collect();
        for (h, stream) in released {
            let Some(s) = self.sessions.get_mut(&h) else { continue };
            s.php_refs = s.php_refs.saturating_sub(1);
            if let Some(id) = stream {
                if let Some(st) = s.streams.get_mut(&id) {
                    st.php_refs = st.php_refs.saturating_sub(1);
                }
            }
        }
        for s in self.sessions.values_mut() {
            s.streams.retain(|_, st| st.php_refs > 0 || !st.is_done());
        }
        let dead: Vec<H3Handle> =
            self.sessions.iter().filter(|(_, s)| s.announced && s.gone.is_some() && s.php_refs == 0).map(|(h, _)| *h).collect();
        for h in dead {
            self.sessions.remove(&h);
            self.closing.remove(&h);
            self.pending_out.retain(|(x, _)| *x != h);
        }
    }

    /// A new PHP object for session `h` (and stream `id`).
    fn hold(&mut self, h: H3Handle, id: Option<StreamId>) {
        if let Some(s) = self.sessions.get_mut(&h) {
            s.php_refs += 1;
            if let Some(st) = id.and_then(|i| s.streams.get_mut(&i)) {
                st.php_refs += 1;
            }
        }
    }

    fn announce(&mut self, h: H3Handle) {
        if let Some(s) = self.sessions.get_mut(&h) {
            if !s.announced {
                s.announced = true;
                self.accept_queue.push_back(h);
            }
        }
    }

    fn on_event(&mut self, h: H3Handle, ev: H3Event) {
        match ev {
            H3Event::Headers { stream, headers, fin } => {
                let Some(s) = self.sessions.get_mut(&h) else { return };
                if s.streams.contains_key(&stream) {
                    return;
                }
                s.streams.insert(stream, StreamState { headers, body_done: fin, ..Default::default() });
                s.requests.push_back(stream);
                if !s.announced {
                    trace::session_accept(self.worker_id, stream.0);
                }
                self.announce(h);
            }
            H3Event::Trailers { stream, headers } => {
                if let Some(st) = self.sessions.get_mut(&h).and_then(|s| s.streams.get_mut(&stream)) {
                    st.trailers = headers;
                }
            }
            H3Event::Data { stream } => {
                if let Some(st) = self.sessions.get_mut(&h).and_then(|s| s.streams.get_mut(&stream)) {
                    st.data_ready = true;
                }
            }
            H3Event::Finished { stream } => {
                if let Some(st) = self.sessions.get_mut(&h).and_then(|s| s.streams.get_mut(&stream)) {
                    st.body_done = true;
                }
            }
            H3Event::Reset { stream, code } => {
                if let Some(st) = self.sessions.get_mut(&h).and_then(|s| s.streams.get_mut(&stream)) {
                    st.reset = Some(code);
                    st.out.clear();
                    st.out_len = 0;
                }
                self.pending_out.remove(&(h, stream));
            }
            H3Event::Transport(QuicEvent::HandshakeCompleted) => {
                let resumed = self.rt.is_resumed(h);
                if let Some(s) = self.sessions.get_mut(&h) {
                    s.resumed = resumed;
                }
                trace::handshake_done(self.worker_id, resumed);
                trace::event(&format!("worker {} handshake done with {:?} resumed={resumed}", self.worker_id, self.sessions.get(&h).map(|s| s.remote)));
                // Announced to `accept` with its first request, not before: a
                // session PHP receives always has a request waiting, so a
                // client that connects and leaves never reaches PHP code.
            }
            H3Event::Transport(QuicEvent::ConnectionLost(e)) => {
                if let Some(s) = self.sessions.get_mut(&h) {
                    if s.gone.is_none() {
                        s.gone_graceful = is_graceful(&e);
                        s.gone = Some(e.to_string());
                    }
                }
            }
            _ => {}
        }
    }

    fn pump_all(&mut self) {
        if self.pending_out.is_empty() {
            return;
        }
        let keys: Vec<_> = self.pending_out.iter().copied().collect();
        for (h, s) in keys {
            self.pump(h, s);
        }
    }

    /// Hands queued response bytes to HTTP/3 as far as flow control allows.
    fn pump(&mut self, h: H3Handle, id: StreamId) {
        let Some(st) = self.sessions.get_mut(&h).and_then(|s| s.streams.get_mut(&id)) else {
            self.pending_out.remove(&(h, id));
            return;
        };
        while let Some(chunk) = st.out.pop_front() {
            let last = st.out.is_empty() && st.out_fin;
            let len = chunk.len();
            match self.rt.send_body(h, id, chunk.clone(), last) {
                Ok(n) if n == len => {
                    st.out_len -= n;
                    if last {
                        st.fin_sent = true;
                    }
                }
                Ok(n) => {
                    st.out_len -= n;
                    st.out.push_front(chunk.slice(n..));
                    return;
                }
                Err(SendError::WouldBlock) => {
                    st.out.push_front(chunk);
                    return;
                }
                Err(_) => {
                    st.out.clear();
                    st.out_len = 0;
                    st.reset.get_or_insert(H3_REQUEST_CANCELLED);
                    break;
                }
            }
        }
        if st.out_fin && !st.fin_sent && st.reset.is_none() {
            if self.rt.finish(h, id).is_ok() {
                st.fin_sent = true;
            } else {
                return;
            }
        }
        self.pending_out.remove(&(h, id));
    }

    /// Closes the sessions whose `close()` was called once every response
    /// they sent has been acknowledged (or the linger time is over).
    fn finish_closes(&mut self) {
        if self.closing.is_empty() {
            return;
        }
        let now = Instant::now();
        let handles: Vec<_> = self.closing.iter().copied().collect();
        for h in handles {
            let Some(s) = self.sessions.get_mut(&h) else {
                self.closing.remove(&h);
                continue;
            };
            // Responses that were started but never finished get their FIN.
            let unfinished: Vec<StreamId> =
                s.streams.iter().filter(|(_, st)| st.responded && !st.out_fin && st.reset.is_none()).map(|(id, _)| *id).collect();
            for id in unfinished {
                if let Some(st) = s.streams.get_mut(&id) {
                    st.out_fin = true;
                }
                self.pending_out.insert((h, id));
            }
            let flushed = s.streams.iter().all(|(_, st)| st.out.is_empty() && (st.fin_sent || st.reset.is_some() || !st.responded));
            let ids: Vec<StreamId> = s.streams.keys().copied().collect();
            let linger_over = s.close_requested.is_some_and(|t| now.duration_since(t) > CLOSE_LINGER);
            let acked = flushed
                && match self.rt.driver().endpoint.connection_ref(h.0) {
                    Some(c) => ids.iter().all(|id| c.send_acknowledged(*id)),
                    None => true,
                };
            if acked || linger_over {
                if let Some(c) = self.rt.driver().endpoint.connection(h.0) {
                    c.close(now, H3_NO_ERROR, b"");
                }
                self.rt.driver().mark_dirty(h.0);
                self.closing.remove(&h);
            }
        }
        self.pump_all();
    }

    fn session(&self, h: H3Handle) -> QpResult<&SessionState> {
        self.sessions.get(&h).ok_or_else(|| QpError::new(ErrorKind::Connection, "the session is closed"))
    }

    fn stream_state(&mut self, h: H3Handle, id: StreamId) -> QpResult<&mut StreamState> {
        let s = self.sessions.get_mut(&h).ok_or_else(|| QpError::new(ErrorKind::Connection, "the session is closed"))?;
        s.streams.get_mut(&id).ok_or_else(|| QpError::new(ErrorKind::Stream, format!("stream {} is gone", id.0)))
    }

    fn is_satisfied(&self, what: WaitFor) -> bool {
        match what {
            // Draining (GOAWAY sent): no new request is waited for.
            WaitFor::Request(h) => {
                self.draining_since.is_some() || self.sessions.get(&h).is_none_or(|s| !s.requests.is_empty() || s.gone.is_some())
            }
            WaitFor::Body(h, id) => {
                let Some(s) = self.sessions.get(&h) else { return true };
                if s.gone.is_some() {
                    return true;
                }
                let Some(st) = s.streams.get(&id) else { return true };
                st.body_done || st.reset.is_some() || st.data_ready
            }
            WaitFor::Drained(h, id) => {
                let Some(s) = self.sessions.get(&h) else { return true };
                s.gone.is_some() || s.streams.get(&id).is_none_or(|st| st.out_len < OUT_HIGH_WATER / 2 || st.reset.is_some())
            }
        }
    }


    /// Parked Fibers whose condition holds (or whose deadline passed),
    /// taken out of the list.
    fn take_ready(&mut self) -> Vec<Zval> {
        let now = Instant::now();
        let mut ready = Vec::new();
        let mut i = 0;
        while i < self.waiters.len() {
            let w = &self.waiters[i];
            if self.is_satisfied(w.what) || w.deadline.is_some_and(|d| now >= d) {
                ready.push(self.waiters.swap_remove(i).fiber);
            } else {
                i += 1;
            }
        }
        ready
    }

    fn has_ready(&self) -> bool {
        let now = Instant::now();
        self.waiters.iter().any(|w| self.is_satisfied(w.what) || w.deadline.is_some_and(|d| now >= d))
    }

    fn next_waiter_deadline(&self) -> Option<Instant> {
        self.waiters.iter().filter_map(|w| w.deadline).min()
    }

    /// GOAWAY on every connection, then the drain (RFC 9114 §5.2).
    fn begin_drain(&mut self) {
        if self.draining_since.is_none() {
            self.draining_since = Some(Instant::now());
            self.rt.goaway_all();
            trace::event(&format!("worker {} draining after signal {}", self.worker_id, signals::signal()));
        }
    }

    fn drain_done(&mut self) -> bool {
        let Some(since) = self.draining_since else { return false };
        let idle = self.rt.open_requests() == 0 && self.pending_out.is_empty();
        if idle || since.elapsed() > DRAIN_DEADLINE {
            self.rt.close_all(H3_NO_ERROR);
            let _ = self.rt.step(Duration::ZERO);
            self.stopped = true;
            return true;
        }
        false
    }
}

/// One loop turn: wait at most `wait` for I/O, then resume every parked
/// Fiber that can go on. The core is not borrowed while Fibers run (they
/// call back into it).
pub fn turn(core: &CoreRef, wait: Duration) -> QpResult<()> {
    let ready = {
        let mut c = core.borrow_mut();
        let mut w = if c.has_ready() { Duration::ZERO } else { wait };
        if let Some(d) = c.next_waiter_deadline() {
            w = w.min(d.saturating_duration_since(Instant::now()));
        }
        c.step(w)?;
        c.take_ready()
    };
    for f in ready {
        fiber::resume(&f);
    }
    Ok(())
}

/// Waits for `what`: suspends the running Fiber, or drives the loop on the
/// main stack. Returns when the condition holds, the session is gone, or
/// the deadline passes (`TimeoutException`).
pub fn wait_until(core: &CoreRef, what: WaitFor, deadline: Option<Instant>) -> QpResult<()> {
    loop {
        if core.borrow().is_satisfied(what) {
            return Ok(());
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(QpError::new(ErrorKind::Timeout, "timed out"));
        }
        if let Some(f) = fiber::current() {
            core.borrow_mut().waiters.push(Waiter { fiber: f, what, deadline });
            if fiber::suspend().is_err() {
                // The Fiber is being destroyed or the engine refused: the
                // pending exception propagates.
                return Err(QpError::new(ErrorKind::Server, "fiber switch failed"));
            }
        } else {
            // SIGTERM/SIGINT while a handler blocks on the main stack: start
            // the drain here too, so the worker stops without waiting for a
            // client that never speaks again.
            if signals::stop_requested() {
                core.borrow_mut().begin_drain();
            }
            let wait = deadline.map_or(Duration::from_millis(100), |d| d.saturating_duration_since(Instant::now()).min(Duration::from_millis(100)));
            turn(core, wait)?;
        }
    }
}

/// `Quicpro\Server`: listens on a UDP port (SO_REUSEPORT by default, so
/// forked workers share it) and hands out sessions.
#[php_class]
#[php(name = "Quicpro\\Server")]
#[derive(Debug)]
pub struct Server {
    core: CoreRef,
}

#[php_impl]
impl Server {
    /// Binds `host:port` (`'[::]'` is dual-stack IPv4+IPv6, `'0.0.0.0'`
    /// IPv4 only). Throws `SocketException` if the port cannot be bound,
    /// `ConfigException` without a certificate.
    pub fn __construct(host: &str, port: i64, config: &ZendClassObject<Config>) -> PhpResult<Self> {
        let core = ServerCore::bind(host, port, config.data.clone())?;
        signals::install();
        Ok(Self { core: Rc::new(RefCell::new(core)) })
    }

    /// The next session. Waits as long as needed, waking every
    /// `$timeout_ms` to run timers and resume Fibers whose request, body
    /// or send window arrived; returns `null` only once the server is
    /// stopped (`stop()`, or SIGTERM/SIGINT after draining).
    #[php(defaults(timeout_ms = 100))]
    pub fn accept(&self, timeout_ms: i64) -> PhpResult<Option<Session>> {
        let tick = Duration::from_millis(timeout_ms.clamp(0, 60_000) as u64);
        loop {
            {
                let mut c = self.core.borrow_mut();
                if c.stopped {
                    return Ok(None);
                }
                if signals::stop_requested() {
                    c.begin_drain();
                }
                if c.draining_since.is_some() {
                    if c.drain_done() {
                        return Ok(None);
                    }
                } else if let Some(h) = c.accept_queue.pop_front() {
                    c.hold(h, None);
                    let released = c.released.clone();
                    return Ok(Some(Session { core: self.core.clone(), h, released }));
                }
            }
            turn(&self.core, tick)?;
        }
    }

    /// Drives the loop for at most `$timeout_ms` without accepting:
    /// resumes ready Fibers. Returns false once the server is stopped.
    #[php(defaults(timeout_ms = 0))]
    pub fn poll(&self, timeout_ms: i64) -> PhpResult<bool> {
        if self.core.borrow().stopped {
            return Ok(false);
        }
        turn(&self.core, Duration::from_millis(timeout_ms.clamp(0, 60_000) as u64))?;
        Ok(true)
    }

    /// Graceful stop: GOAWAY, in-flight requests get a few seconds, then
    /// every connection is closed and `accept()` returns null.
    pub fn stop(&self) -> PhpResult<()> {
        self.core.borrow_mut().begin_drain();
        loop {
            if self.core.borrow_mut().drain_done() {
                return Ok(());
            }
            turn(&self.core, Duration::from_millis(20))?;
        }
    }

    /// The bound address, e.g. `"[::]:4433"`.
    pub fn local_address(&self) -> String {
        self.core.borrow().rt.local_addr().to_string()
    }

    /// The bound port (useful with port 0).
    pub fn port(&self) -> i64 {
        i64::from(self.core.borrow().rt.local_addr().port())
    }

    /// The worker id encoded in this server's connection IDs.
    pub fn worker_id(&self) -> i64 {
        i64::from(self.core.borrow().worker_id)
    }

    /// The I/O backend in use (epoll, io_uring, busy_poll).
    pub fn backend(&self) -> String {
        self.core.borrow().rt.backend_description().to_string()
    }

    /// Counters: connections, dropped datagrams by reason, sessions.
    pub fn stats(&self) -> HashMap<String, i64> {
        let c = self.core.borrow();
        let e = c.rt.endpoint_stats();
        let mut m = HashMap::new();
        m.insert("connections".into(), c.rt.connection_count() as i64);
        m.insert("sessions".into(), c.sessions.len() as i64);
        m.insert("waiting_fibers".into(), c.waiters.len() as i64);
        m.insert("datagrams_received".into(), e.datagrams_received as i64);
        m.insert("connections_accepted".into(), e.connections_accepted as i64);
        m.insert(
            "dropped".into(),
            (e.dropped_unparseable + e.dropped_unknown_connection + e.dropped_initial_too_small + e.dropped_invalid_token + e.dropped_too_many) as i64,
        );
        m.insert("retries_sent".into(), e.retries_sent as i64);
        // Connection-ID steering (shared by every worker of the group).
        if let Some(Ok(sc)) = c.cfg.steering.as_ref().map(|g| g.counters()) {
            m.insert("steered_by_cid".into(), sc.steered_by_cid as i64);
            m.insert("steered_by_hash".into(), sc.steered_by_hash as i64);
            m.insert("steering_fallbacks".into(), sc.fallbacks() as i64);
        }
        m
    }
}

/// `Quicpro\Session`: one client connection.
#[php_class]
#[php(name = "Quicpro\\Session")]
#[derive(Debug)]
pub struct Session {
    core: CoreRef,
    h: H3Handle,
    released: Released,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.released.borrow_mut().push((self.h, None));
    }
}

#[php_impl]
impl Session {
    /// The next request on this connection. Inside a Fiber, suspends it
    /// until one arrives; on the main stack, drives the server meanwhile.
    /// The first call on a session from `accept()` returns at once (a
    /// session is handed out with its first request). Returns `null` when
    /// the client closed the connection normally, so
    /// `while ($req = $sess->receiveRequest())` serves every request of a
    /// connection; throws `ConnectionException` when it was lost (idle
    /// timeout, protocol error) and `TimeoutException` after `$timeout_ms`.
    pub fn receive_request(&self, timeout_ms: Option<i64>) -> PhpResult<Option<Stream>> {
        let deadline = timeout_ms.map(|ms| Instant::now() + Duration::from_millis(ms.max(0) as u64));
        wait_until(&self.core, WaitFor::Request(self.h), deadline)?;
        let mut c = self.core.borrow_mut();
        let s = c.sessions.get_mut(&self.h).ok_or_else(|| QpError::new(ErrorKind::Connection, "the session is closed"))?;
        let next = s.requests.pop_front();
        let (gone, graceful) = (s.gone.clone(), s.gone_graceful);
        let draining = c.draining_since.is_some();
        match next {
            Some(id) => {
                c.hold(self.h, Some(id));
                Ok(Some(Stream { core: self.core.clone(), h: self.h, id, released: c.released.clone() }))
            }
            None if graceful || draining => Ok(None),
            None => {
                let why = gone.unwrap_or_else(|| "connection closed".into());
                Err(QpError::new(ErrorKind::Connection, format!("no request: {why}")).into())
            }
        }
    }

    /// Graceful close: responses already queued are delivered (the close
    /// waits until the peer acknowledged them), then CONNECTION_CLOSE with
    /// H3_NO_ERROR. Returns at once; the server loop completes it.
    pub fn close(&self) -> PhpResult<()> {
        let mut c = self.core.borrow_mut();
        let Some(s) = c.sessions.get_mut(&self.h) else { return Ok(()) };
        if s.gone.is_none() && s.close_requested.is_none() {
            s.close_requested = Some(Instant::now());
            c.closing.insert(self.h);
            c.finish_closes();
            let _ = c.rt.step(Duration::ZERO);
            c.absorb();
        }
        Ok(())
    }

    /// Whether the connection is still open.
    pub fn is_open(&self) -> bool {
        self.core.borrow().sessions.get(&self.h).is_some_and(|s| s.gone.is_none())
    }

    /// The client's address, `"ip:port"`.
    pub fn remote_address(&self) -> PhpResult<String> {
        Ok(self.core.borrow().session(self.h)?.remote.to_string())
    }

    /// Whether the client resumed a TLS session (no certificate sent).
    pub fn is_resumed(&self) -> bool {
        let mut c = self.core.borrow_mut();
        c.rt.is_resumed(self.h) || c.sessions.get(&self.h).is_some_and(|s| s.resumed)
    }

    /// The worker (server) that owns this connection.
    pub fn worker_id(&self) -> i64 {
        i64::from(self.core.borrow().worker_id)
    }
}

/// `Quicpro\Stream`: a request and its response. `receiveRequest()`
/// returns it; `stream()` returns the same object, so both styles of the
/// documentation work.
#[php_class]
#[php(name = "Quicpro\\Stream")]
#[derive(Debug)]
pub struct Stream {
    core: CoreRef,
    h: H3Handle,
    id: StreamId,
    released: Released,
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.released.borrow_mut().push((self.h, Some(self.id)));
    }
}

impl Stream {
    fn with<R>(&self, f: impl FnOnce(&mut StreamState) -> R) -> QpResult<R> {
        let mut c = self.core.borrow_mut();
        Ok(f(c.stream_state(self.h, self.id)?))
    }

    fn header(&self, name: &str) -> QpResult<Option<String>> {
        self.with(|st| headers::get(&st.headers, name).map(|v| String::from_utf8_lossy(v).into_owned()))
    }

    fn check_writable(&self) -> QpResult<()> {
        let c = self.core.borrow();
        let s = c.session(self.h)?;
        if let Some(why) = &s.gone {
            return Err(QpError::new(ErrorKind::Connection, format!("the connection is closed: {why}")));
        }
        let st = s.streams.get(&self.id).ok_or_else(|| QpError::new(ErrorKind::Stream, "stream is gone"))?;
        if let Some(code) = st.reset {
            return Err(QpError::new(ErrorKind::Stream, format!("stream was reset (code {code:#x})")));
        }
        if st.out_fin {
            return Err(QpError::new(ErrorKind::Stream, "the response is already finished"));
        }
        Ok(())
    }

    /// Reads up to `max` request body bytes that have arrived.
    fn read_available(&self, max: usize) -> QpResult<Option<Bytes>> {
        let mut c = self.core.borrow_mut();
        let got = c.rt.recv_body(self.h, self.id, max);
        if got.as_ref().is_none_or(|b| b.is_empty()) {
            c.stream_state(self.h, self.id)?.data_ready = false;
        }
        // recv_body may have completed the message: route its events.
        c.absorb();
        Ok(got)
    }
}

#[php_impl]
impl Stream {
    /// The stream itself (the documents call `$req->stream()`).
    #[allow(clippy::self_named_constructors)] // PHP API name from the documents.
    pub fn stream(self_: &mut ZendClassObject<Stream>) -> &mut ZendClassObject<Stream> {
        self_
    }

    /// The request header fields, pseudo-headers (`:method`, `:path`,
    /// `:authority`, `:scheme`) included.
    pub fn headers(&self) -> PhpResult<Zval> {
        let ht = self.with(|st| headers::to_php(&st.headers))?;
        let mut z = Zval::new();
        z.set_hashtable(ht);
        Ok(z)
    }

    pub fn method(&self) -> PhpResult<String> {
        Ok(self.header(":method")?.unwrap_or_default())
    }

    pub fn path(&self) -> PhpResult<String> {
        Ok(self.header(":path")?.unwrap_or_default())
    }

    pub fn authority(&self) -> PhpResult<String> {
        Ok(self.header(":authority")?.unwrap_or_default())
    }

    /// The QUIC stream id.
    pub fn id(&self) -> i64 {
        self.id.0 as i64
    }

    /// The request trailers (after the body was read).
    pub fn trailers(&self) -> PhpResult<Zval> {
        let ht = self.with(|st| headers::to_php(&st.trailers))?;
        let mut z = Zval::new();
        z.set_hashtable(ht);
        Ok(z)
    }

    /// The next piece of the request body (at most `$max` bytes), waiting
    /// for it if none has arrived; `null` at the end of the body.
    #[php(defaults(max = 65536))]
    pub fn read(&self, max: i64) -> PhpResult<Option<ext_php_rs::binary::Binary<u8>>> {
        let max = max.clamp(1, 16 << 20) as usize;
        loop {
            if let Some(b) = self.read_available(max)? {
                if !b.is_empty() {
                    return Ok(Some(b.to_vec().into()));
                }
            }
            let (done, reset) = self.with(|st| (st.body_done, st.reset))?;
            if let Some(code) = reset {
                return Err(QpError::new(ErrorKind::Stream, format!("request stream reset by the client (code {code:#x})")).into());
            }
            if done {
                return Ok(None);
            }
            wait_until(&self.core, WaitFor::Body(self.h, self.id), None)?;
            let gone = self.core.borrow().session(self.h).map(|s| s.gone.clone()).unwrap_or(Some("closed".into()));
            if let Some(why) = gone {
                return Err(QpError::new(ErrorKind::Connection, format!("connection closed while reading the body: {why}")).into());
            }
        }
    }

    /// The whole request body (bounded by the `max_body_size` option).
    pub fn body(&self) -> PhpResult<ext_php_rs::binary::Binary<u8>> {
        let limit = self.core.borrow().cfg.max_body_size;
        let mut all = Vec::new();
        while let Some(chunk) = self.read(65536)? {
            let chunk: Vec<u8> = chunk.into();
            if all.len() + chunk.len() > limit {
                return Err(QpError::new(ErrorKind::Stream, format!("request body exceeds max_body_size ({limit} bytes)")).into());
            }
            all.extend_from_slice(&chunk);
        }
        Ok(all.into())
    }

    /// Sends the response header section.
    pub fn respond(&self, status: i64, headers: Option<&ZendHashTable>) -> PhpResult<()> {
        if !(100..=999).contains(&status) {
            return Err(QpError::new(ErrorKind::Stream, format!("status {status} is not a valid HTTP status")).into());
        }
        self.check_writable()?;
        let fields = match headers {
            Some(h) => headers::from_php(h, ErrorKind::Stream)?,
            None => Vec::new(),
        };
        let mut c = self.core.borrow_mut();
        if c.stream_state(self.h, self.id)?.responded && status >= 200 {
            return Err(QpError::new(ErrorKind::Stream, "the response headers were already sent").into());
        }
        c.rt.respond(self.h, self.id, status as u16, &fields, false)
            .map_err(|e| QpError::new(ErrorKind::Stream, format!("cannot send the response: {e:?}")))?;
        if status >= 200 {
            c.stream_state(self.h, self.id)?.responded = true;
        }
        let _ = c.rt.step(Duration::ZERO);
        c.absorb();
        Ok(())
    }

    /// Queues response body bytes; `fin: true` ends the response. Waits
    /// (suspending the Fiber) only when more than 4 MiB is queued for a
    /// slow client.
    #[php(defaults(fin = false))]
    pub fn send_body(&self, data: ext_php_rs::binary::Binary<u8>, fin: bool) -> PhpResult<()> {
        self.check_writable()?;
        let data: Vec<u8> = data.into();
        {
            let mut c = self.core.borrow_mut();
            let st = c.stream_state(self.h, self.id)?;
            if !st.responded {
                return Err(QpError::new(ErrorKind::Stream, "respond() must come before sendBody()").into());
            }
            if !data.is_empty() {
                st.out_len += data.len();
                st.out.push_back(Bytes::from(data));
            }
            st.out_fin |= fin;
            let over = st.out_len > OUT_HIGH_WATER;
            c.pending_out.insert((self.h, self.id));
            c.pump(self.h, self.id);
            let _ = c.rt.step(Duration::ZERO);
            c.absorb();
            if !over {
                return Ok(());
            }
        }
        wait_until(&self.core, WaitFor::Drained(self.h, self.id), None)?;
        Ok(())
    }

    /// Ends the response with trailer fields (RFC 9114 §4.1).
    pub fn send_trailers(&self, trailers: &ZendHashTable) -> PhpResult<()> {
        self.check_writable()?;
        let fields = headers::from_php(trailers, ErrorKind::Stream)?;
        // Body bytes still queued must go first.
        wait_until(&self.core, WaitFor::Drained(self.h, self.id), None)?;
        loop {
            let empty = self.with(|st| st.out.is_empty())?;
            if empty {
                break;
            }
            turn(&self.core, Duration::from_millis(10))?;
        }
        let mut c = self.core.borrow_mut();
        c.rt.send_trailers(self.h, self.id, &fields)
            .map_err(|e| QpError::new(ErrorKind::Stream, format!("cannot send trailers: {e:?}")))?;
        let st = c.stream_state(self.h, self.id)?;
        st.out_fin = true;
        st.fin_sent = true;
        Ok(())
    }

    /// Ends the response (FIN) after what is queued.
    pub fn finish(&self) -> PhpResult<()> {
        self.send_body(Vec::new().into(), true)
    }

    /// Abandons the stream (RESET_STREAM / STOP_SENDING with `$code`).
    #[php(defaults(code = 0x10c))]
    pub fn reset(&self, code: i64) -> PhpResult<()> {
        let mut c = self.core.borrow_mut();
        let h = self.h;
        let id = self.id;
        if let Some(conn) = c.rt.driver().endpoint.connection(h.0) {
            conn.reset_stream(id, code as u64);
            conn.stop_sending(id, code as u64);
        }
        c.rt.driver().mark_dirty(h.0);
        if let Ok(st) = c.stream_state(h, id) {
            st.reset = Some(code as u64);
            st.out.clear();
            st.out_len = 0;
        }
        c.pending_out.remove(&(h, id));
        Ok(())
    }

    /// Whether the whole request body has arrived.
    pub fn is_body_complete(&self) -> PhpResult<bool> {
        Ok(self.with(|st| st.body_done)?)
    }
}
