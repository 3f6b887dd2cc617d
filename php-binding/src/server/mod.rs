//! `Quicpro\Server`, `Quicpro\Session` and `Quicpro\Stream`: an HTTP/3
//! server for PHP, with Fibers as the unit of concurrency.
//!
//! - [`core`]: the runtime and the state PHP sees; the loop turn and the
//!   Fiber-aware wait ([`core::wait_until`]): on the main stack it drives
//!   the loop itself, inside a Fiber it parks the Fiber with what it waits
//!   for and suspends, and whoever drives the loop next (normally
//!   `Server::accept`) resumes it when that has happened.
//! - [`scheduler`]: the ready queue and deadlines of parked Fibers.
//!
//! A client can never end a worker: every way a connection ends makes
//! `receiveRequest()` return `null`, the response methods report a gone
//! peer by returning `false` (they throw only for mistakes in the calling
//! code), and an exception escaping a Fiber the loop resumed is reported
//! as a warning, not propagated (ERROR_AND_EXCEPTION_REFERENCE.md).

pub mod core;
pub mod scheduler;

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ext_php_rs::prelude::*;
use ext_php_rs::types::{ZendClassObject, ZendHashTable, Zval};
use io_backends::runtime::server::ServerError;
use io_backends::runtime::{Server as RtServer, ServerOptions};
use io_backends::select::BackendConfig;
use quic_core::stream::StreamId;
use quic_core::tls::ServerTlsOptions;

use self::core::{turn, wait_until, CoreRef, Released, ServerCore, SessionId, StreamState, WaitFor};
use crate::config::{Config, ConfigData};
use crate::errors::{ErrorKind, QpError, QpResult};
use crate::{headers, signals, trace};

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

/// Binds the runtime server for `host:port` with the options of `cfg`.
fn bind_runtime(host: &str, port: i64, cfg: &ConfigData) -> QpResult<(RtServer, u8)> {
    let port = u16::try_from(port).map_err(|_| QpError::new(ErrorKind::Socket, format!("port {port} is out of range 0..=65535")))?;
    let addr = parse_bind(host, port)?;
    let (Some(key), false) = (cfg.key.as_ref(), cfg.cert_chain.is_empty()) else {
        return Err(QpError::new(ErrorKind::Config, "a server needs 'cert_file' (and 'key_file' unless the key is in the same file)"));
    };
    let alpn = cfg.alpn_refs();
    let mut tls = ServerTlsOptions::new(cfg.cert_chain.clone(), key.clone_key(), &alpn);
    tls.early_data = cfg.early_data;
    tls.key_log = cfg.keylog;
    tls.client_auth = cfg.client_auth().map_err(|e| QpError::new(ErrorKind::Config, format!("option 'client_ca_file': {e}")))?;
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
    opts.preferred_address = cfg.preferred_address;
    opts.cid_format = cfg.cid_format.clone();
    opts.max_connections = cfg.max_connections;
    opts.reset_secret = cfg.reset_secret;
    opts.token_secret = cfg.token_secret;
    opts.worker_id = worker_id;
    // qlog from each connection's first datagram on.
    opts.qlog_dir = cfg.qlog_dir.clone().or_else(trace::qlog_dir);
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
        ServerError::Qlog(e) => QpError::new(ErrorKind::Config, format!("qlog: {e}")),
        ServerError::CidFormat(e) => QpError::new(ErrorKind::Config, format!("option 'server_id': {e}")),
    })?;
    trace::event(&format!("worker {worker_id} listening on {} — {}", rt.local_addr(), rt.backend_description()));
    Ok((rt, worker_id))
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
        let (rt, worker_id) = bind_runtime(host, port, &config.data)?;
        signals::install();
        Ok(Self { core: Rc::new(RefCell::new(ServerCore::new(rt, config.data.clone(), worker_id))) })
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
                } else if let Some(id) = c.next_accepted() {
                    let released = c.released.clone();
                    return Ok(Some(Session { core: self.core.clone(), id, released }));
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

    /// The next session if one is waiting, after one turn that does not
    /// wait: `null` when there is none yet (or the server is stopped).
    /// For event loops that call it when `getStream()` is readable.
    pub fn try_accept(&self) -> PhpResult<Option<Session>> {
        if signals::stop_requested() {
            self.core.borrow_mut().begin_drain();
        }
        if self.core.borrow().stopped || self.core.borrow().draining_since.is_some() {
            return Ok(None);
        }
        turn(&self.core, Duration::ZERO)?;
        let mut c = self.core.borrow_mut();
        Ok(c.next_accepted().map(|id| Session { core: self.core.clone(), id, released: c.released.clone() }))
    }

    /// A read-only PHP stream readable whenever this server has work (a
    /// datagram, a timer, a Fiber to resume, a session to accept): watch
    /// it with `stream_select` or an event loop's `onReadable`, and call
    /// `tryAccept()` (or `poll(0)`) when it fires. (CLI only: PHP opens the
    /// descriptor through `php://fd`.)
    pub fn get_stream(&self) -> PhpResult<Zval> {
        let fd = {
            let mut c = self.core.borrow_mut();
            c.rt.notifier(Some(std::time::Instant::now())).map_err(|e| QpError::new(ErrorKind::Socket, format!("notifier: {e}")))?
        };
        crate::server::core::rearm_notifier(&self.core);
        Ok(crate::client::fd_stream(fd)?)
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

    /// Counters: connections, dropped datagrams by reason, sessions, and
    /// the loop's own work (`turns`; `turn_visits`: sessions, streams,
    /// events and Fibers the turns touched — it follows what happened, not
    /// how many sessions are held).
    pub fn stats(&self) -> HashMap<String, i64> {
        let c = self.core.borrow();
        let e = c.rt.endpoint_stats();
        let mut m = HashMap::new();
        m.insert("connections".into(), c.rt.connection_count() as i64);
        m.insert("sessions".into(), c.sessions.len() as i64);
        m.insert("waiting_fibers".into(), c.sched.parked() as i64);
        m.insert("turns".into(), c.turns as i64);
        m.insert("turn_visits".into(), (c.visits + c.sched.visits) as i64);
        m.insert("datagrams_received".into(), e.datagrams_received as i64);
        m.insert("connections_accepted".into(), e.connections_accepted as i64);
        m.insert(
            "dropped".into(),
            (e.dropped_unparseable + e.dropped_unknown_connection + e.dropped_initial_too_small + e.dropped_invalid_token + e.dropped_too_many) as i64,
        );
        m.insert("retries_sent".into(), e.retries_sent as i64);
        m.insert("version_negotiations_sent".into(), e.version_negotiations_sent as i64);
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
    id: SessionId,
    released: Released,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.released.borrow_mut().push((self.id, None));
    }
}

#[php_impl]
impl Session {
    /// The next request on this connection. Inside a Fiber, suspends it
    /// until one arrives; on the main stack, drives the server meanwhile.
    /// The first call on a session from `accept()` returns at once (a
    /// session is handed out with its first request). Returns `null` once
    /// the connection has ended — however it ended: closed by the client
    /// normally or with an error, idle timeout, stateless reset — or the
    /// server is draining, so `while ($req = $sess->receiveRequest())`
    /// never throws because of a client. `TimeoutException` only after an
    /// explicit `$timeout_ms`.
    pub fn receive_request(&self, timeout_ms: Option<i64>) -> PhpResult<Option<Stream>> {
        let deadline = timeout_ms.map(|ms| Instant::now() + Duration::from_millis(ms.max(0) as u64));
        wait_until(&self.core, WaitFor::Request(self.id), deadline)?;
        let mut c = self.core.borrow_mut();
        let Some(s) = c.sessions.get_mut(&self.id) else { return Ok(None) };
        let Some(sid) = s.requests.pop_front() else { return Ok(None) };
        c.hold(self.id, Some(sid));
        Ok(Some(Stream { core: self.core.clone(), session: self.id, id: sid, released: c.released.clone() }))
    }

    /// Graceful close: responses already queued are delivered (the close
    /// waits until the peer acknowledged them), then CONNECTION_CLOSE with
    /// H3_NO_ERROR. Returns at once; the server loop completes it.
    pub fn close(&self) {
        self.core.borrow_mut().request_close(self.id);
    }

    /// Whether the connection is still open.
    pub fn is_open(&self) -> bool {
        self.core.borrow().sessions.get(&self.id).is_some_and(|s| s.gone.is_none())
    }

    /// Why the connection ended (`null` while open), e.g. `"idle timeout"`.
    pub fn close_reason(&self) -> Option<String> {
        self.core.borrow().sessions.get(&self.id).and_then(|s| s.gone.clone())
    }

    /// The client's address, `"ip:port"`.
    pub fn remote_address(&self) -> PhpResult<String> {
        Ok(self.core.borrow().session(self.id)?.remote.to_string())
    }

    /// The subject of the certificate the client presented (RFC 4514
    /// form, e.g. `CN=alice, O=Example`), when the Config's
    /// `client_ca_file` asked for one; null without one.
    pub fn peer_certificate_subject(&self) -> Option<String> {
        let mut c = self.core.borrow_mut();
        if let Some(subject) = c.sessions.get(&self.id).and_then(|s| s.peer_subject.clone()) {
            return Some(subject);
        }
        // Read from the live connection (and kept, so it outlives it).
        let h = c.handle(self.id)?;
        let subject = c.rt.peer_certificate(h).and_then(self::core::certificate_subject)?;
        if let Some(s) = c.sessions.get_mut(&self.id) {
            s.peer_subject = Some(subject.clone());
        }
        Some(subject)
    }

    /// Whether the client resumed a TLS session (no certificate sent).
    pub fn is_resumed(&self) -> bool {
        let mut c = self.core.borrow_mut();
        let h = c.handle(self.id);
        h.is_some_and(|h| c.rt.is_resumed(h)) || c.sessions.get(&self.id).is_some_and(|s| s.resumed)
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
    session: SessionId,
    id: StreamId,
    released: Released,
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.released.borrow_mut().push((self.session, Some(self.id)));
    }
}

/// Whether a response can still reach the client.
enum Writable {
    Yes,
    /// The client went away or reset the stream: nothing to do.
    Gone,
}

impl Stream {
    fn with<R>(&self, f: impl FnOnce(&mut StreamState) -> R) -> QpResult<R> {
        let mut c = self.core.borrow_mut();
        Ok(f(c.stream_state(self.session, self.id)?))
    }

    fn header(&self, name: &str) -> QpResult<Option<String>> {
        self.with(|st| headers::get(&st.headers, name).map(|v| String::from_utf8_lossy(v).into_owned()))
    }

    /// `Gone` for what the peer did; an error only for what the calling
    /// code did (a response after the end of the response).
    fn writable(&self) -> QpResult<Writable> {
        let c = self.core.borrow();
        let Some(s) = c.sessions.get(&self.session) else { return Ok(Writable::Gone) };
        if s.gone.is_some() || s.handle.is_none() {
            return Ok(Writable::Gone);
        }
        let Some(st) = s.streams.get(&self.id) else { return Ok(Writable::Gone) };
        if st.reset.is_some() {
            return Ok(Writable::Gone);
        }
        if st.out_fin {
            return Err(QpError::new(ErrorKind::Stream, "the response is already finished"));
        }
        Ok(Writable::Yes)
    }

    /// Reads up to `max` request body bytes that have arrived.
    fn read_available(&self, max: usize) -> QpResult<Option<Bytes>> {
        let mut c = self.core.borrow_mut();
        let Some(h) = c.handle(self.session) else { return Ok(None) };
        let got = c.rt.recv_body(h, self.id, max);
        if got.as_ref().is_none_or(|b| b.is_empty()) {
            if let Ok(st) = c.stream_state(self.session, self.id) {
                st.data_ready = false;
            }
        }
        // recv_body may have completed the message: route its events.
        c.absorb();
        Ok(got)
    }

    fn aborted(&self) -> bool {
        let c = self.core.borrow();
        let Some(s) = c.sessions.get(&self.session) else { return true };
        s.streams.get(&self.id).is_none_or(|st| st.reset.is_some()) || (s.gone.is_some() && !s.streams.get(&self.id).is_some_and(|st| st.body_done))
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
    /// for it if none has arrived; `null` at the end of the body — or when
    /// the client aborted it (`isAborted()` tells which).
    #[php(defaults(max = 65536))]
    pub fn read(&self, max: i64) -> PhpResult<Option<ext_php_rs::binary::Binary<u8>>> {
        let max = max.clamp(1, 16 << 20) as usize;
        loop {
            if let Some(b) = self.read_available(max)? {
                if !b.is_empty() {
                    return Ok(Some(b.to_vec().into()));
                }
            }
            if self.aborted() {
                return Ok(None);
            }
            if self.with(|st| st.body_done).unwrap_or(true) {
                return Ok(None);
            }
            wait_until(&self.core, WaitFor::Body(self.session, self.id), None)?;
        }
    }

    /// The whole request body (bounded by the `max_body_size` option;
    /// beyond it a `StreamException`); `null` when the client aborted it.
    pub fn body(&self) -> PhpResult<Option<ext_php_rs::binary::Binary<u8>>> {
        let limit = self.core.borrow().cfg.max_body_size;
        let mut all = Vec::new();
        while let Some(chunk) = self.read(65536)? {
            let chunk: Vec<u8> = chunk.into();
            if all.len() + chunk.len() > limit {
                return Err(QpError::new(ErrorKind::Stream, format!("request body exceeds max_body_size ({limit} bytes)")).into());
            }
            all.extend_from_slice(&chunk);
        }
        if self.aborted() {
            return Ok(None);
        }
        Ok(Some(all.into()))
    }

    /// Whether the client aborted the request (reset the stream, or the
    /// connection ended before the body was complete).
    pub fn is_aborted(&self) -> bool {
        self.aborted()
    }

    /// Sends the response header section. Returns `false` when the client
    /// is gone (nothing is sent; the request's work can stop); throws
    /// `StreamException` for an invalid status or headers sent twice.
    pub fn respond(&self, status: i64, headers: Option<&ZendHashTable>) -> PhpResult<bool> {
        if !(100..=999).contains(&status) {
            return Err(QpError::new(ErrorKind::Stream, format!("status {status} is not a valid HTTP status")).into());
        }
        let fields = match headers {
            Some(h) => headers::from_php(h, ErrorKind::Stream)?,
            None => Vec::new(),
        };
        if let Writable::Gone = self.writable()? {
            return Ok(false);
        }
        let mut c = self.core.borrow_mut();
        if c.stream_state(self.session, self.id)?.responded && status >= 200 {
            return Err(QpError::new(ErrorKind::Stream, "the response headers were already sent").into());
        }
        let Some(h) = c.handle(self.session) else { return Ok(false) };
        // Queued; the loop's next flush sends it with everything else of
        // this turn (no system call per response).
        if c.rt.respond(h, self.id, status as u16, &fields, false).is_err() {
            // The stream or connection closed under the request (the
            // client's own protocol error may have closed it this turn):
            // the request is over, and every later call says so by
            // returning false rather than throwing at the script.
            if let Ok(st) = c.stream_state(self.session, self.id) {
                st.reset.get_or_insert(core::H3_REQUEST_CANCELLED);
            }
            return Ok(false);
        }
        if status >= 200 {
            c.stream_state(self.session, self.id)?.responded = true;
        }
        Ok(true)
    }

    /// Queues response body bytes; `fin: true` ends the response. Waits
    /// (suspending the Fiber) only when more than 4 MiB is queued for a
    /// slow client. Returns `false` when the client is gone.
    #[php(defaults(fin = false))]
    pub fn send_body(&self, data: ext_php_rs::binary::Binary<u8>, fin: bool) -> PhpResult<bool> {
        if let Writable::Gone = self.writable()? {
            return Ok(false);
        }
        let data: Vec<u8> = data.into();
        let over = {
            let mut c = self.core.borrow_mut();
            if !c.stream_state(self.session, self.id)?.responded {
                return Err(QpError::new(ErrorKind::Stream, "respond() must come before sendBody()").into());
            }
            c.queue_out(self.session, self.id, Bytes::from(data), fin);
            c.stream_state(self.session, self.id).is_ok_and(|st| st.out_len > core::OUT_HIGH_WATER)
        };
        if over {
            wait_until(&self.core, WaitFor::Drained(self.session, self.id), None)?;
        }
        Ok(!self.core.borrow().is_gone(self.session, self.id))
    }

    /// Ends the response with trailer fields (RFC 9114 §4.1). Returns
    /// `false` when the client is gone.
    pub fn send_trailers(&self, trailers: &ZendHashTable) -> PhpResult<bool> {
        let fields = headers::from_php(trailers, ErrorKind::Stream)?;
        if let Writable::Gone = self.writable()? {
            return Ok(false);
        }
        // Body bytes still queued must go first.
        loop {
            wait_until(&self.core, WaitFor::Drained(self.session, self.id), None)?;
            if let Writable::Gone = self.writable()? {
                return Ok(false);
            }
            if self.with(|st| st.out.is_empty())? {
                break;
            }
            turn(&self.core, Duration::from_millis(10))?;
        }
        let mut c = self.core.borrow_mut();
        let Some(h) = c.handle(self.session) else { return Ok(false) };
        if c.rt.send_trailers(h, self.id, &fields).is_err() {
            return Ok(false);
        }
        let st = c.stream_state(self.session, self.id)?;
        st.out_fin = true;
        st.fin_sent = true;
        Ok(true)
    }

    /// Ends the response (FIN) after what is queued; `false` when the
    /// client is gone.
    pub fn finish(&self) -> PhpResult<bool> {
        self.send_body(Vec::new().into(), true)
    }

    /// Abandons the stream (RESET_STREAM / STOP_SENDING with `$code`).
    // The attribute needs a literal: 0x10c is H3_REQUEST_CANCELLED.
    #[php(defaults(code = 0x10c))]
    pub fn reset(&self, code: i64) {
        self.core.borrow_mut().reset_stream(self.session, self.id, code as u64);
    }

    /// Whether the whole request body has arrived.
    pub fn is_body_complete(&self) -> bool {
        self.with(|st| st.body_done).unwrap_or(false)
    }
}
