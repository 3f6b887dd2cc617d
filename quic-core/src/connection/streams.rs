//! The connection's streams: the map from stream ID to its send and receive
//! halves, the queue of streams with data to send, and stream-level events.

use std::collections::VecDeque;

use crate::config::TransportConfig;
use crate::error::Error;
use crate::stream::{Dir, Initiator, RecvStream, RecvWindow, SendStream, StreamId, StreamLimits, StreamPart};
use crate::transport_params::TransportParameters;

/// Both halves of one stream; a unidirectional stream has only one.
#[derive(Debug)]
pub struct Stream {
    // Boxed halves: a map entry is a few words, a unidirectional stream
    // (the HTTP/3 control and QPACK streams every connection holds) pays
    // only for the half it has, and a map that grew for a burst of
    // requests keeps small empty buckets.
    pub send: Option<Box<SendStream>>,
    pub recv: Option<Box<RecvStream>>,
    /// Lower sends first (RFC 9000 §2.3 leaves priorities to the application).
    pub priority: i32,
    /// Already in `send_queue`.
    pub queued: bool,
    /// A peer's stream whose credit went back before it was reaped (see
    /// `Streams::credit_early`).
    pub credited: bool,
}

impl Stream {
    fn is_closed(&self) -> bool {
        self.send.as_ref().is_none_or(|s| s.is_closed()) && self.recv.as_ref().is_none_or(|r| r.is_closed())
    }
}

/// Stream-level notifications for the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEvent {
    /// The peer opened streams of this direction; take them with `accept`.
    Opened(Dir),
    Readable(StreamId),
    Writable(StreamId),
    /// All data we sent on the stream (and the FIN) was acknowledged.
    Finished(StreamId),
    /// The peer sent STOP_SENDING.
    Stopped {
        id: StreamId,
        error_code: u64,
    },
    /// The peer reset its sending half.
    Reset {
        id: StreamId,
        error_code: u64,
    },
}

#[derive(Debug)]
pub struct Streams {
    pub local: Initiator,
    pub map: crate::fast_hash::FastHashMap<StreamId, Stream>,
    pub limits: StreamLimits,
    /// Streams with data (or a FIN/reset) waiting to be sent, round robin.
    pub send_queue: VecDeque<StreamId>,
    pub accept_queue: [VecDeque<StreamId>; 2],
    pub events: VecDeque<StreamEvent>,
    /// Streams whose MAX_STREAM_DATA should be sent.
    pub pending_max_stream_data: Vec<StreamId>,
    pub pending_stop_sending: Vec<(StreamId, u64)>,
    pub pending_reset: Vec<StreamId>,
    // Limits learned from the peer's transport parameters (RFC 9000 §18.2).
    peer_bidi_local: u64,
    peer_bidi_remote: u64,
    peer_uni: u64,
    config: StreamConfig,
    /// Peer streams per direction whose credit went back early and that
    /// are not reaped yet: at most the initial window of them.
    early_credited: [u64; 2],
}

#[derive(Debug, Clone, Copy)]
struct StreamConfig {
    window: u64,
    max_window: u64,
    send_buffer: u64,
}

fn dir_index(d: Dir) -> usize {
    match d {
        Dir::Bi => 0,
        Dir::Uni => 1,
    }
}

impl Streams {
    pub fn new(local: Initiator, cfg: &TransportConfig) -> Self {
        Self {
            local,
            map: Default::default(),
            limits: StreamLimits::new(local, cfg.max_concurrent_bidi_streams, cfg.max_concurrent_uni_streams),
            send_queue: VecDeque::new(),
            accept_queue: [VecDeque::new(), VecDeque::new()],
            events: VecDeque::new(),
            pending_max_stream_data: Vec::new(),
            pending_stop_sending: Vec::new(),
            pending_reset: Vec::new(),
            early_credited: [0; 2],
            peer_bidi_local: 0,
            peer_bidi_remote: 0,
            peer_uni: 0,
            config: StreamConfig { window: cfg.stream_receive_window, max_window: cfg.max_stream_receive_window, send_buffer: cfg.send_buffer_per_stream },
        }
    }

    /// Applies the peer's stream limits (initial or remembered for 0-RTT).
    pub fn set_peer_params(&mut self, p: &TransportParameters) -> Result<(), Error> {
        self.limits.set_peer_initial_max_streams(Dir::Bi, p.initial_max_streams_bidi)?;
        self.limits.set_peer_initial_max_streams(Dir::Uni, p.initial_max_streams_uni)?;
        // The peer's "bidi_remote" limit applies to streams we open; its
        // "bidi_local" to streams it opens (RFC 9000 §18.2).
        self.peer_bidi_local = p.initial_max_stream_data_bidi_local;
        self.peer_bidi_remote = p.initial_max_stream_data_bidi_remote;
        self.peer_uni = p.initial_max_stream_data_uni;
        for (id, s) in self.map.iter_mut() {
            if let Some(send) = &mut s.send {
                let limit = if id.initiator() == self.local {
                    if id.is_bidi() {
                        self.peer_bidi_remote
                    } else {
                        self.peer_uni
                    }
                } else {
                    self.peer_bidi_local
                };
                send.on_max_stream_data(limit);
            }
        }
        Ok(())
    }

    fn new_stream(&self, id: StreamId) -> Stream {
        let local_init = id.initiator() == self.local;
        let send = id.has_send_part(self.local).then(|| {
            let limit = if local_init {
                if id.is_bidi() {
                    self.peer_bidi_remote
                } else {
                    self.peer_uni
                }
            } else {
                self.peer_bidi_local
            };
            in_place(|| SendStream::new(limit, self.config.send_buffer))
        });
        let recv = id.has_recv_part(self.local).then(|| in_place(|| RecvStream::new(RecvWindow::new(self.config.window, self.config.max_window))));
        Stream { send, recv, priority: 0, queued: false, credited: false }
    }

    /// Opens a stream of ours, if the peer's MAX_STREAMS allows.
    pub fn open(&mut self, dir: Dir) -> Option<StreamId> {
        let id = self.limits.try_open(dir)?;
        let s = self.new_stream(id);
        self.map.insert(id, s);
        Some(id)
    }

    /// Looks up the stream a peer frame addresses, opening it (and every
    /// lower stream of its type) if the peer is starting it (RFC 9000 §3.2).
    /// `Ok(None)`: the stream existed and is closed; the frame is ignored.
    pub fn get_for_peer_frame(&mut self, id: StreamId, part: StreamPart) -> Result<Option<&mut Stream>, Error> {
        let opened = self.limits.on_peer_frame(id, part)?;
        if !opened.is_empty() {
            for new_id in opened.iter() {
                let s = self.new_stream(new_id);
                self.map.insert(new_id, s);
                self.accept_queue[dir_index(new_id.dir())].push_back(new_id);
            }
            self.events.push_back(StreamEvent::Opened(id.dir()));
        }
        Ok(self.map.get_mut(&id))
    }

    pub fn accept(&mut self, dir: Dir) -> Option<StreamId> {
        self.accept_queue[dir_index(dir)].pop_front()
    }

    /// Queues a stream with something to send: behind every stream of the
    /// same or more urgent (lower) priority, so equal priorities share
    /// bandwidth round robin and lower values go first.
    pub fn queue_send(&mut self, id: StreamId) {
        let Some(s) = self.map.get_mut(&id) else { return };
        if s.queued {
            return;
        }
        s.queued = true;
        let prio = s.priority;
        let map = &self.map;
        // Fast path: the queue is in priority order, so when its last stream
        // is not less urgent than this one the place is the end. With equal
        // priorities (the common case: 100 responses on one connection) this
        // avoids a scan with a map lookup per queued stream on every call.
        let last_prio = self.send_queue.back().map(|b| map.get(b).map_or(i32::MIN, |o| o.priority));
        if last_prio.is_none_or(|lp| lp <= prio) {
            self.send_queue.push_back(id);
            return;
        }
        let pos = self.send_queue.iter().position(|other| map.get(other).is_some_and(|o| o.priority > prio)).unwrap_or(self.send_queue.len());
        self.send_queue.insert(pos, id);
    }

    /// Removes streams whose both halves are done, returning credit for new
    /// peer streams (RFC 9000 §4.6).
    pub fn reap(&mut self, id: StreamId) {
        let closed = self.map.get(&id).is_some_and(|s| s.is_closed() && !s.queued);
        if closed {
            let credited = self.map.remove(&id).is_some_and(|s| s.credited);
            if credited {
                let n = &mut self.early_credited[dir_index(id.dir())];
                *n = n.saturating_sub(1);
            } else if id.initiator() != self.local {
                self.limits.on_peer_stream_closed(id.dir());
            }
        }
    }

    /// Returns a peer stream's credit (MAX_STREAMS, RFC 9000 §4.6, which
    /// leaves the policy to us) once we read all it sent and sent all we
    /// had, FIN included, without waiting for that to be acknowledged: a
    /// client keeping as many requests in flight as we allow otherwise
    /// waits a round trip per slot (the load benchmark's request rate was
    /// bound by that). The stream stays until reaped, so at most the
    /// initial window of such streams is held per direction; past that,
    /// credit waits for the acknowledgment as before.
    pub fn credit_early(&mut self, id: StreamId) {
        if id.initiator() == self.local {
            return;
        }
        let k = dir_index(id.dir());
        if self.early_credited[k] >= self.limits.window(id.dir()) {
            return;
        }
        let Some(s) = self.map.get_mut(&id) else { return };
        let done = !s.credited && s.send.as_ref().is_none_or(|x| x.all_sent()) && s.recv.as_ref().is_none_or(|r| r.is_closed());
        if done {
            s.credited = true;
            self.early_credited[k] += 1;
            self.limits.on_peer_stream_closed(id.dir());
        }
    }
}

/// Boxes a value built by `make` after the allocation, so that it can be
/// built in the heap memory: `Box::new(value)` built the 280- and 200-byte
/// stream halves on the stack and copied them over (1 % of a server's CPU
/// in the load command's request phase, perf).
#[inline(always)]
fn in_place<T>(make: impl FnOnce() -> T) -> Box<T> {
    Box::write(Box::new_uninit(), make())
}
