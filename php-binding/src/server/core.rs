//! The state behind `Quicpro\Server`: the runtime (socket, endpoint,
//! HTTP/3), the sessions and streams PHP sees, and the loop turn.
//!
//! Sessions are known to PHP by a [`SessionId`] that is never reused (a
//! connection handle is, once the connection is gone: a `Session` object
//! outliving its connection must not reach the next one). Everything a
//! turn does follows from what happened in it: runtime events wake the
//! Fibers registered for them, released PHP objects free their state, and
//! ended connections release theirs; no turn walks the sessions held.

use std::collections::VecDeque;

// Keys are our own session numbers and stream IDs bounded by stream limits.
use quic_core::fast_hash::FastHashMap;
type FastHashSet<T> = std::collections::HashSet<T, quic_core::fast_hash::FastBuildHasher>;
use std::io::ErrorKind as IoErrorKind;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use h3_core::connection::{H3Event, SendError};
use h3_core::qpack::HeaderField;
use io_backends::runtime::{H3Handle, Server as RtServer};
use quic_core::connection::Event as QuicEvent;
use quic_core::stream::StreamId;

use super::scheduler::{Scheduler, WaiterId};
use crate::config::ConfigData;
use crate::errors::{ErrorKind, QpError, QpResult};
use crate::{fiber, signals, trace};

/// H3_NO_ERROR (RFC 9114 §8.1): a graceful close.
pub const H3_NO_ERROR: u64 = h3_core::error::H3ErrorCode::H3_NO_ERROR.0;
/// H3_REQUEST_CANCELLED: a stream the application abandons.
pub const H3_REQUEST_CANCELLED: u64 = h3_core::error::H3ErrorCode::H3_REQUEST_CANCELLED.0;
/// Queued response bytes above which `sendBody` waits for the peer.
pub const OUT_HIGH_WATER: usize = 4 * 1024 * 1024;
/// How long a `close()` waits for its responses to be acknowledged.
const CLOSE_LINGER: Duration = Duration::from_secs(10);
/// How long SIGTERM/SIGINT lets in-flight requests finish.
const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

/// A session as PHP knows it: unique for the life of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(u64);

/// One request stream as PHP sees it.
#[derive(Debug, Default)]
pub struct StreamState {
    pub headers: Vec<HeaderField>,
    pub trailers: Vec<HeaderField>,
    /// Request body fully received (FIN seen and read).
    pub body_done: bool,
    /// HTTP/3 has body bytes for `read()` (set by a Data event, cleared
    /// when a read finds nothing).
    pub data_ready: bool,
    pub reset: Option<u64>,
    pub responded: bool,
    pub out: VecDeque<Bytes>,
    pub out_len: usize,
    /// The application asked for FIN after `out`.
    pub out_fin: bool,
    pub fin_sent: bool,
    /// Live `Quicpro\Stream` objects for it.
    pub php_refs: usize,
    /// Fibers waiting for body bytes, or for the send queue to drain.
    body_waiters: Vec<WaiterId>,
    drain_waiters: Vec<WaiterId>,
}

impl StreamState {
    /// Nothing more can happen on it that PHP could observe.
    fn is_done(&self) -> bool {
        self.out.is_empty() && (self.fin_sent || self.reset.is_some())
    }
}

#[derive(Debug)]
pub struct SessionState {
    /// The connection while it lives.
    pub handle: Option<H3Handle>,
    pub remote: SocketAddr,
    /// Handed to PHP by `accept` (or queued for it).
    announced: bool,
    pub requests: VecDeque<StreamId>,
    pub streams: FastHashMap<StreamId, StreamState>,
    close_requested: Option<Instant>,
    /// Why the connection is gone, once it is.
    pub gone: Option<String>,
    /// It ended normally (H3_NO_ERROR from the peer, or our own close).
    pub gone_graceful: bool,
    /// Live `Quicpro\Session` and `Quicpro\Stream` objects for it.
    php_refs: usize,
    pub resumed: bool,
    /// Subject of the client certificate, when one was asked for and given.
    pub peer_subject: Option<String>,
    request_waiters: Vec<WaiterId>,
}

/// What a parked Fiber waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitFor {
    Request(SessionId),
    Body(SessionId, StreamId),
    Drained(SessionId, StreamId),
}

/// PHP objects freed since the last turn (pushed by their `Drop`, which
/// may run while the core is borrowed): (session, stream if a `Stream`).
pub type Released = Rc<std::cell::RefCell<Vec<(SessionId, Option<StreamId>)>>>;

pub struct ServerCore {
    pub rt: RtServer,
    pub cfg: Rc<ConfigData>,
    pub worker_id: u8,
    pub sessions: FastHashMap<SessionId, SessionState>,
    /// The session of each live connection.
    by_handle: FastHashMap<H3Handle, SessionId>,
    next_session: u64,
    pub accept_queue: VecDeque<SessionId>,
    pub released: Released,
    pub sched: Scheduler,
    /// Streams with queued response bytes.
    pending_out: FastHashSet<(SessionId, StreamId)>,
    closing: FastHashSet<SessionId>,
    pub stopped: bool,
    pub draining_since: Option<Instant>,
    /// Loop turns, and the state visited by them (sessions, streams,
    /// Fibers woken, events): the per-turn cost the stats expose.
    pub turns: u64,
    pub visits: u64,
}

impl core::fmt::Debug for ServerCore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ServerCore").field("sessions", &self.sessions.len()).field("worker", &self.worker_id).finish()
    }
}

/// A normal end of a connection: the client closed with H3_NO_ERROR
/// (RFC 9114 §8.1), or we closed it.
fn is_graceful(e: &quic_core::connection::ConnectionError) -> bool {
    use quic_core::connection::ConnectionError as E;
    matches!(e, E::LocallyClosed) || matches!(e, E::PeerApplicationClose { code, .. } if *code == H3_NO_ERROR)
}

impl ServerCore {
    pub fn new(rt: RtServer, cfg: Rc<ConfigData>, worker_id: u8) -> Self {
        Self {
            rt,
            cfg,
            worker_id,
            sessions: FastHashMap::default(),
            by_handle: FastHashMap::default(),
            next_session: 1,
            accept_queue: VecDeque::new(),
            released: Rc::new(std::cell::RefCell::new(Vec::new())),
            sched: Scheduler::default(),
            pending_out: FastHashSet::default(),
            closing: FastHashSet::default(),
            stopped: false,
            draining_since: None,
            turns: 0,
            visits: 0,
        }
    }

    /// One turn of the runtime, then everything it produced.
    pub fn step(&mut self, wait: Duration) -> QpResult<()> {
        match self.rt.step(wait) {
            Ok(()) => {}
            // A signal woke the wait: not an error, the caller checks the flag.
            Err(e) if e.kind() == IoErrorKind::Interrupted => {}
            Err(e) => return Err(QpError::new(ErrorKind::Socket, format!("socket: {e}"))),
        }
        self.turns += 1;
        self.absorb();
        Ok(())
    }

    /// Routes runtime events into session state (waking the Fibers they
    /// concern), pumps queued output, finishes graceful closes, and frees
    /// what PHP released.
    pub fn absorb(&mut self) {
        while let Some(h) = self.rt.accept() {
            self.visits += 1;
            let Some(remote) = self.rt.driver().endpoint.connection_ref(h.0).map(|c| c.remote_address()) else { continue };
            let id = SessionId(self.next_session);
            self.next_session += 1;
            self.by_handle.insert(h, id);
            self.sessions.insert(
                id,
                SessionState {
                    handle: Some(h),
                    remote,
                    announced: false,
                    requests: VecDeque::new(),
                    streams: FastHashMap::default(),
                    close_requested: None,
                    gone: None,
                    gone_graceful: false,
                    php_refs: 0,
                    resumed: false,
                    peer_subject: None,
                    request_waiters: Vec::new(),
                },
            );
        }
        while let Some((h, ev)) = self.rt.poll_event() {
            self.visits += 1;
            if let Some(&id) = self.by_handle.get(&h) {
                self.on_event(id, h, ev);
            }
        }
        while let Some((h, err)) = self.rt.poll_closed() {
            self.visits += 1;
            let Some(id) = self.by_handle.remove(&h) else { continue };
            self.closing.remove(&id);
            let graceful = err.as_ref().is_none_or(is_graceful);
            let why = err.map_or_else(|| "connection closed".to_string(), |e| e.to_string());
            self.on_gone(id, graceful, why);
        }
        self.pump_all();
        self.finish_closes();
        self.collect_released();
    }

    /// The connection of `id` ended: every Fiber waiting on it runs, and
    /// its state goes once PHP holds nothing of it.
    fn on_gone(&mut self, id: SessionId, graceful: bool, why: String) {
        let Some(s) = self.sessions.get_mut(&id) else { return };
        s.handle = None;
        if s.gone.is_none() {
            s.gone_graceful = graceful;
            s.gone = Some(why);
            if s.announced {
                trace::session_close(self.worker_id, s.gone_graceful);
            }
        }
        self.sched.wake_all(&mut s.request_waiters);
        for st in s.streams.values_mut() {
            self.sched.wake_all(&mut st.body_waiters);
            self.sched.wake_all(&mut st.drain_waiters);
            st.out.clear();
            st.out_len = 0;
        }
        let stream_ids: Vec<StreamId> = s.streams.keys().copied().collect();
        for sid in stream_ids {
            self.pending_out.remove(&(id, sid));
        }
        if !s.announced {
            // Never seen by PHP: forget it now.
            self.sessions.remove(&id);
            return;
        }
        self.maybe_free_session(id);
    }

    fn maybe_free_session(&mut self, id: SessionId) {
        if self.sessions.get(&id).is_some_and(|s| s.gone.is_some() && s.php_refs == 0) {
            self.sessions.remove(&id);
            self.closing.remove(&id);
        }
    }

    fn maybe_free_stream(&mut self, id: SessionId, sid: StreamId) {
        let Some(s) = self.sessions.get_mut(&id) else { return };
        if s.streams.get(&sid).is_some_and(|st| st.php_refs == 0 && st.is_done()) {
            s.streams.remove(&sid);
        }
    }

    /// PHP objects released since the last turn: their state goes when
    /// nothing else can happen to it.
    fn collect_released(&mut self) {
        let released: Vec<_> = self.released.borrow_mut().drain(..).collect();
        for (id, stream) in released {
            self.visits += 1;
            let Some(s) = self.sessions.get_mut(&id) else { continue };
            s.php_refs = s.php_refs.saturating_sub(1);
            if let Some(sid) = stream {
                if let Some(st) = s.streams.get_mut(&sid) {
                    st.php_refs = st.php_refs.saturating_sub(1);
                }
                self.maybe_free_stream(id, sid);
            }
            self.maybe_free_session(id);
        }
    }

    /// A new PHP object for session `id` (and stream `sid`).
    pub fn hold(&mut self, id: SessionId, sid: Option<StreamId>) {
        if let Some(s) = self.sessions.get_mut(&id) {
            s.php_refs += 1;
            if let Some(st) = sid.and_then(|i| s.streams.get_mut(&i)) {
                st.php_refs += 1;
            }
        }
    }

    fn announce(&mut self, id: SessionId) {
        if let Some(s) = self.sessions.get_mut(&id) {
            if !s.announced {
                s.announced = true;
                self.accept_queue.push_back(id);
            }
        }
    }

    fn on_event(&mut self, id: SessionId, h: H3Handle, ev: H3Event) {
        match ev {
            H3Event::Headers { stream, headers, fin } => {
                let Some(s) = self.sessions.get_mut(&id) else { return };
                if s.streams.contains_key(&stream) {
                    return;
                }
                s.streams.insert(stream, StreamState { headers, body_done: fin, ..Default::default() });
                s.requests.push_back(stream);
                self.sched.wake_all(&mut s.request_waiters);
                if !s.announced {
                    trace::session_accept(self.worker_id, stream.0);
                }
                self.announce(id);
            }
            H3Event::Trailers { stream, headers } => {
                if let Some(st) = self.sessions.get_mut(&id).and_then(|s| s.streams.get_mut(&stream)) {
                    st.trailers = headers;
                }
            }
            H3Event::Data { stream } => {
                if let Some(st) = self.sessions.get_mut(&id).and_then(|s| s.streams.get_mut(&stream)) {
                    st.data_ready = true;
                    self.sched.wake_all(&mut st.body_waiters);
                }
            }
            H3Event::Finished { stream } => {
                if let Some(st) = self.sessions.get_mut(&id).and_then(|s| s.streams.get_mut(&stream)) {
                    st.body_done = true;
                    self.sched.wake_all(&mut st.body_waiters);
                }
            }
            H3Event::Reset { stream, code } => {
                if let Some(st) = self.sessions.get_mut(&id).and_then(|s| s.streams.get_mut(&stream)) {
                    st.reset = Some(code);
                    st.out.clear();
                    st.out_len = 0;
                    self.sched.wake_all(&mut st.body_waiters);
                    self.sched.wake_all(&mut st.drain_waiters);
                }
                self.pending_out.remove(&(id, stream));
                self.maybe_free_stream(id, stream);
            }
            H3Event::Transport(QuicEvent::HandshakeCompleted) => {
                let resumed = self.rt.is_resumed(h);
                let subject = self.rt.peer_certificate(h).and_then(|c| certificate_subject(c));
                if let Some(s) = self.sessions.get_mut(&id) {
                    s.resumed = resumed;
                    s.peer_subject = subject;
                }
                trace::handshake_done(self.worker_id, resumed);
                if trace::enabled() {
                    trace::event(&format!("worker {} handshake done with {:?} resumed={resumed}", self.worker_id, self.sessions.get(&id).map(|s| s.remote)));
                }
                // Announced to `accept` with its first request, not before: a
                // session PHP receives always has a request waiting, so a
                // client that connects and leaves never reaches PHP code.
            }
            H3Event::Transport(QuicEvent::ConnectionLost(e)) => {
                let graceful = is_graceful(&e);
                self.on_gone(id, graceful, e.to_string());
            }
            _ => {}
        }
    }

    fn pump_all(&mut self) {
        if self.pending_out.is_empty() {
            return;
        }
        let keys: Vec<_> = self.pending_out.iter().copied().collect();
        for (id, sid) in keys {
            self.visits += 1;
            self.pump(id, sid);
        }
    }

    /// Hands queued response bytes to HTTP/3 as far as flow control allows.
    pub fn pump(&mut self, id: SessionId, sid: StreamId) {
        let Some(s) = self.sessions.get_mut(&id) else {
            self.pending_out.remove(&(id, sid));
            return;
        };
        let (Some(h), Some(st)) = (s.handle, s.streams.get_mut(&sid)) else {
            self.pending_out.remove(&(id, sid));
            return;
        };
        let mut blocked = false;
        while let Some(chunk) = st.out.pop_front() {
            let last = st.out.is_empty() && st.out_fin;
            let len = chunk.len();
            match self.rt.send_body(h, sid, chunk.clone(), last) {
                Ok(n) if n == len => {
                    st.out_len -= n;
                    if last {
                        st.fin_sent = true;
                    }
                }
                Ok(n) => {
                    st.out_len -= n;
                    st.out.push_front(chunk.slice(n..));
                    blocked = true;
                    break;
                }
                Err(SendError::WouldBlock) => {
                    st.out.push_front(chunk);
                    blocked = true;
                    break;
                }
                Err(_) => {
                    st.out.clear();
                    st.out_len = 0;
                    st.reset.get_or_insert(H3_REQUEST_CANCELLED);
                    break;
                }
            }
        }
        if st.out_len < OUT_HIGH_WATER / 2 || st.reset.is_some() {
            self.sched.wake_all(&mut st.drain_waiters);
        }
        if blocked {
            return;
        }
        if st.out_fin && !st.fin_sent && st.reset.is_none() {
            if self.rt.finish(h, sid).is_ok() {
                st.fin_sent = true;
            } else {
                return;
            }
        }
        self.pending_out.remove(&(id, sid));
        self.maybe_free_stream(id, sid);
    }

    /// Queues `data` (and FIN) on a stream's response.
    pub fn queue_out(&mut self, id: SessionId, sid: StreamId, data: Bytes, fin: bool) {
        if let Some(st) = self.sessions.get_mut(&id).and_then(|s| s.streams.get_mut(&sid)) {
            if !data.is_empty() {
                st.out_len += data.len();
                st.out.push_back(data);
            }
            st.out_fin |= fin;
            self.pending_out.insert((id, sid));
            self.pump(id, sid);
        }
    }

    /// Closes the sessions whose `close()` was called once every response
    /// they sent has been acknowledged (or the linger time is over).
    fn finish_closes(&mut self) {
        if self.closing.is_empty() {
            return;
        }
        let now = Instant::now();
        let ids: Vec<_> = self.closing.iter().copied().collect();
        for id in ids {
            self.visits += 1;
            let Some(s) = self.sessions.get_mut(&id) else {
                self.closing.remove(&id);
                continue;
            };
            let Some(h) = s.handle else {
                self.closing.remove(&id);
                continue;
            };
            // Responses that were started but never finished get their FIN.
            let unfinished: Vec<StreamId> = s.streams.iter().filter(|(_, st)| st.responded && !st.out_fin && st.reset.is_none()).map(|(sid, _)| *sid).collect();
            for sid in unfinished {
                if let Some(st) = s.streams.get_mut(&sid) {
                    st.out_fin = true;
                }
                self.pending_out.insert((id, sid));
            }
            let Some(s) = self.sessions.get(&id) else { continue };
            let flushed = s.streams.values().all(|st| st.out.is_empty() && (st.fin_sent || st.reset.is_some() || !st.responded));
            let linger_over = s.close_requested.is_some_and(|t| now.duration_since(t) > CLOSE_LINGER);
            // Every response stream of the connection, also those whose
            // PHP state is gone already: the QUIC connection knows.
            let acked = flushed && self.rt.driver().endpoint.connection_ref(h.0).is_none_or(|c| c.all_sends_acknowledged());
            if acked || linger_over {
                if let Some(c) = self.rt.driver().endpoint.connection(h.0) {
                    c.close(now, H3_NO_ERROR, b"");
                }
                self.closing.remove(&id);
            }
        }
        self.pump_all();
    }

    /// `Session::close()`: completes once the responses are acknowledged.
    pub fn request_close(&mut self, id: SessionId) {
        let Some(s) = self.sessions.get_mut(&id) else { return };
        if s.gone.is_none() && s.close_requested.is_none() {
            s.close_requested = Some(Instant::now());
            self.closing.insert(id);
            self.finish_closes();
        }
    }

    /// Whether the client went away from this stream (connection ended,
    /// or the stream reset).
    pub fn is_gone(&self, id: SessionId, sid: StreamId) -> bool {
        self.sessions.get(&id).is_none_or(|s| s.gone.is_some() || s.streams.get(&sid).is_none_or(|st| st.reset.is_some()))
    }

    /// `Stream::reset()`: RESET_STREAM and STOP_SENDING with `code`.
    pub fn reset_stream(&mut self, id: SessionId, sid: StreamId, code: u64) {
        if let Some(h) = self.handle(id) {
            if let Some(conn) = self.rt.driver().endpoint.connection(h.0) {
                conn.reset_stream(sid, code);
                conn.stop_sending(sid, code);
            }
        }
        if let Some(st) = self.sessions.get_mut(&id).and_then(|s| s.streams.get_mut(&sid)) {
            st.reset = Some(code);
            st.out.clear();
            st.out_len = 0;
            self.sched.wake_all(&mut st.body_waiters);
            self.sched.wake_all(&mut st.drain_waiters);
        }
        self.pending_out.remove(&(id, sid));
        self.maybe_free_stream(id, sid);
    }

    pub fn session(&self, id: SessionId) -> QpResult<&SessionState> {
        self.sessions.get(&id).ok_or_else(|| QpError::new(ErrorKind::Connection, "the session is closed"))
    }

    pub fn stream_state(&mut self, id: SessionId, sid: StreamId) -> QpResult<&mut StreamState> {
        let s = self.sessions.get_mut(&id).ok_or_else(|| QpError::new(ErrorKind::Connection, "the session is closed"))?;
        s.streams.get_mut(&sid).ok_or_else(|| QpError::new(ErrorKind::Stream, format!("stream {} is gone", sid.0)))
    }

    /// The live connection of a session.
    pub fn handle(&self, id: SessionId) -> Option<H3Handle> {
        self.sessions.get(&id).and_then(|s| s.handle)
    }

    pub fn is_satisfied(&self, what: WaitFor) -> bool {
        match what {
            // Draining (GOAWAY sent): no new request is waited for.
            WaitFor::Request(id) => self.draining_since.is_some() || self.sessions.get(&id).is_none_or(|s| !s.requests.is_empty() || s.gone.is_some()),
            WaitFor::Body(id, sid) => {
                let Some(s) = self.sessions.get(&id) else { return true };
                if s.gone.is_some() {
                    return true;
                }
                let Some(st) = s.streams.get(&sid) else { return true };
                st.body_done || st.reset.is_some() || st.data_ready
            }
            WaitFor::Drained(id, sid) => {
                let Some(s) = self.sessions.get(&id) else { return true };
                s.gone.is_some() || s.streams.get(&sid).is_none_or(|st| st.out_len < OUT_HIGH_WATER / 2 || st.reset.is_some())
            }
        }
    }

    /// Parks `fiber` for `what`; `false` when there is nothing to wait on
    /// (the caller re-checks and returns).
    pub fn park(&mut self, fiber: ext_php_rs::types::Zval, what: WaitFor, deadline: Option<Instant>) -> bool {
        let list = match what {
            WaitFor::Request(id) => self.sessions.get_mut(&id).map(|s| &mut s.request_waiters),
            WaitFor::Body(id, sid) => self.sessions.get_mut(&id).and_then(|s| s.streams.get_mut(&sid)).map(|st| &mut st.body_waiters),
            WaitFor::Drained(id, sid) => self.sessions.get_mut(&id).and_then(|s| s.streams.get_mut(&sid)).map(|st| &mut st.drain_waiters),
        };
        let Some(list) = list else { return false };
        // Ids of Fibers woken by their deadline linger until the next wake
        // of the list: drop them before the list grows.
        if list.len() >= 16 {
            let sched = &self.sched;
            list.retain(|w| sched.is_parked(*w));
        }
        let w = self.sched.park(fiber, deadline);
        list.push(w);
        true
    }

    /// GOAWAY on every connection, then the drain (RFC 9114 §5.2). Every
    /// Fiber waiting for a request runs (none will come).
    pub fn begin_drain(&mut self) {
        if self.draining_since.is_none() {
            self.draining_since = Some(Instant::now());
            self.rt.goaway_all();
            for s in self.sessions.values_mut() {
                self.sched.wake_all(&mut s.request_waiters);
            }
            trace::event(&format!("worker {} draining after signal {}", self.worker_id, signals::signal()));
        }
    }

    pub fn drain_done(&mut self) -> bool {
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

    /// Hands out the next session with a request waiting.
    pub fn next_accepted(&mut self) -> Option<SessionId> {
        let id = self.accept_queue.pop_front()?;
        self.hold(id, None);
        Some(id)
    }
}

pub type CoreRef = Rc<std::cell::RefCell<ServerCore>>;

/// One loop turn: wait at most `wait` for I/O (not at all when Fibers are
/// ready), then resume every Fiber that became ready or whose deadline
/// passed. The core is not borrowed while Fibers run (they call back into
/// it).
pub fn turn(core: &CoreRef, wait: Duration) -> QpResult<()> {
    let ready = {
        let mut c = core.borrow_mut();
        let mut w = if c.sched.has_ready() { Duration::ZERO } else { wait };
        if let Some(d) = c.sched.next_deadline() {
            w = w.min(d.saturating_duration_since(Instant::now()));
        }
        c.step(w)?;
        c.sched.expire(Instant::now());
        c.sched.take_ready()
    };
    for f in ready {
        fiber::resume(&f);
    }
    rearm_notifier(core);
    Ok(())
}

/// Re-arms the server's pollable descriptor (`Server::getStream`), once
/// one was asked for: readable at the next timer, parked Fiber's
/// deadline, or at once when work is waiting.
pub fn rearm_notifier(core: &CoreRef) {
    let mut c = core.borrow_mut();
    if !c.rt.has_notifier() {
        return;
    }
    let due = if c.sched.has_ready() || !c.accept_queue.is_empty() { Some(Instant::now()) } else { c.sched.next_deadline() };
    let _ = c.rt.notifier(due);
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
            if !core.borrow_mut().park(f, what, deadline) {
                return Ok(());
            }
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

/// The subject of a DER certificate in RFC 4514 string form.
pub(crate) fn certificate_subject(der: &rustls::pki_types::CertificateDer<'_>) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    Some(cert.subject().to_string())
}
