//! Stream count limits (RFC 9000 §4.6) and the stream-ID rules for frames
//! that reference a stream (§2.1, §3.2, §19.4–§19.13).
//!
//! Two directions per stream type:
//! - *incoming*: how many streams the peer may open (we advertise it with
//!   initial_max_streams_* and MAX_STREAMS, re-issuing credit as streams
//!   close);
//! - *outgoing*: how many we may open (the peer's limit; STREAMS_BLOCKED when
//!   we hit it).

use core::ops::Range;

use super::id::{Dir, Initiator, StreamId, MAX_STREAMS};
use crate::error::{Error, TransportErrorCode};

/// RFC 9000 §19.11 / §19.14 frame types, for error reporting.
const MAX_STREAMS_BIDI: u64 = 0x12;
const MAX_STREAMS_UNI: u64 = 0x13;
const STREAMS_BLOCKED_BIDI: u64 = 0x16;
const STREAMS_BLOCKED_UNI: u64 = 0x17;

/// Which part of a stream a received frame addresses, from our point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamPart {
    /// Our receiving part: STREAM, RESET_STREAM, STREAM_DATA_BLOCKED.
    Recv,
    /// Our sending part: MAX_STREAM_DATA, STOP_SENDING.
    Send,
}

/// Streams of one type opened implicitly by a peer's frame (RFC 9000 §3.2:
/// opening a stream opens every lower-numbered stream of its type). A range,
/// so a frame opening a million streams costs nothing until the caller
/// creates them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewStreams {
    pub initiator: Initiator,
    pub dir: Dir,
    /// Stream indices (see [`StreamId::index`]), ascending.
    pub indices: Range<u64>,
}

impl NewStreams {
    fn none(initiator: Initiator, dir: Dir) -> Self {
        Self { initiator, dir, indices: 0..0 }
    }

    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    pub fn len(&self) -> u64 {
        self.indices.end.saturating_sub(self.indices.start)
    }

    /// The new stream IDs, ascending.
    pub fn iter(&self) -> impl Iterator<Item = StreamId> + '_ {
        self.indices.clone().filter_map(move |i| StreamId::new(self.initiator, self.dir, i))
    }
}

/// Streams the peer may open, of one type.
#[derive(Debug, Clone)]
struct Incoming {
    /// The limit we advertised (a count of streams).
    advertised: u64,
    /// Concurrency target: the initial limit; credit is topped back up to
    /// `closed + window` as streams close.
    window: u64,
    /// Indices below this were opened (explicitly or implicitly).
    opened: u64,
    closed: u64,
}

/// Streams we may open, of one type.
#[derive(Debug, Clone)]
struct Outgoing {
    /// The peer's limit.
    limit: u64,
    opened: u64,
    /// The limit at which STREAMS_BLOCKED was last reported.
    blocked_reported: Option<u64>,
}

/// Stream count limits for both types and both directions.
#[derive(Debug, Clone)]
pub struct StreamLimits {
    local: Initiator,
    incoming: [Incoming; 2],
    outgoing: [Outgoing; 2],
}

const fn slot(dir: Dir) -> usize {
    match dir {
        Dir::Bi => 0,
        Dir::Uni => 1,
    }
}

impl StreamLimits {
    /// `local` is our role. `max_peer_bidi` / `max_peer_uni` are the
    /// initial_max_streams_bidi / _uni we advertise (clamped to 2^60); they
    /// also set how many peer streams may be open at once as credit is
    /// re-issued. The peer's limits for us start at 0 until its transport
    /// parameters arrive.
    pub fn new(local: Initiator, max_peer_bidi: u64, max_peer_uni: u64) -> Self {
        let incoming = |max: u64| {
            let max = max.min(MAX_STREAMS);
            Incoming { advertised: max, window: max, opened: 0, closed: 0 }
        };
        let outgoing = || Outgoing { limit: 0, opened: 0, blocked_reported: None };
        Self { local, incoming: [incoming(max_peer_bidi), incoming(max_peer_uni)], outgoing: [outgoing(), outgoing()] }
    }

    pub fn local(&self) -> Initiator {
        self.local
    }

    fn incoming(&self, dir: Dir) -> &Incoming {
        &self.incoming[slot(dir)]
    }

    fn incoming_mut(&mut self, dir: Dir) -> &mut Incoming {
        &mut self.incoming[slot(dir)]
    }

    fn outgoing(&self, dir: Dir) -> &Outgoing {
        &self.outgoing[slot(dir)]
    }

    fn outgoing_mut(&mut self, dir: Dir) -> &mut Outgoing {
        &mut self.outgoing[slot(dir)]
    }

    // ---- Streams we open -------------------------------------------------

    /// The peer's initial_max_streams_bidi / _uni transport parameter.
    /// RFC 9000 §4.6: a value above 2^60 is a TRANSPORT_PARAMETER_ERROR.
    pub fn set_peer_initial_max_streams(&mut self, dir: Dir, max_streams: u64) -> Result<(), Error> {
        if max_streams > MAX_STREAMS {
            return Err(Error::transport_parameter("initial_max_streams above 2^60"));
        }
        let out = self.outgoing_mut(dir);
        out.limit = out.limit.max(max_streams);
        Ok(())
    }

    /// A MAX_STREAMS frame arrived. RFC 9000 §19.11: above 2^60 is a
    /// FRAME_ENCODING_ERROR; a value that does not increase the limit is
    /// ignored. Returns whether the limit grew.
    pub fn on_max_streams(&mut self, dir: Dir, max_streams: u64) -> Result<bool, Error> {
        if max_streams > MAX_STREAMS {
            let frame_type = match dir {
                Dir::Bi => MAX_STREAMS_BIDI,
                Dir::Uni => MAX_STREAMS_UNI,
            };
            return Err(Error::frame_encoding("MAX_STREAMS above 2^60").with_frame_type(frame_type));
        }
        let out = self.outgoing_mut(dir);
        if max_streams > out.limit {
            out.limit = max_streams;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// The peer's current limit on streams we open.
    pub fn peer_max_streams(&self, dir: Dir) -> u64 {
        self.outgoing(dir).limit
    }

    /// Streams of this type we opened so far.
    pub fn opened_local(&self, dir: Dir) -> u64 {
        self.outgoing(dir).opened
    }

    pub fn can_open(&self, dir: Dir) -> bool {
        let out = self.outgoing(dir);
        out.opened < out.limit
    }

    /// Opens our next stream of this type, if the peer's limit allows.
    pub fn try_open(&mut self, dir: Dir) -> Option<StreamId> {
        let local = self.local;
        let out = self.outgoing_mut(dir);
        if out.opened >= out.limit {
            return None;
        }
        let id = StreamId::new(local, dir, out.opened)?;
        out.opened += 1;
        Some(id)
    }

    /// When we are at the peer's limit: the value for a STREAMS_BLOCKED frame
    /// (RFC 9000 §19.14), once per limit value.
    pub fn poll_streams_blocked(&mut self, dir: Dir) -> Option<u64> {
        let out = self.outgoing_mut(dir);
        if out.opened < out.limit || out.blocked_reported == Some(out.limit) {
            return None;
        }
        out.blocked_reported = Some(out.limit);
        Some(out.limit)
    }

    // ---- Streams the peer opens ----------------------------------------

    /// Validates a received frame that references stream `id` and addresses
    /// our `part` of it, opening peer streams as needed.
    ///
    /// Returns the peer-initiated streams this frame opens: `id` and every
    /// lower-numbered stream of its type not opened before (RFC 9000 §3.2);
    /// empty if `id` was already open (or closed), or is ours.
    ///
    /// Errors:
    /// - STREAM_STATE_ERROR: the part does not exist — data-carrying frames
    ///   (STREAM, RESET_STREAM, STREAM_DATA_BLOCKED) for a unidirectional
    ///   stream we opened, or MAX_STREAM_DATA / STOP_SENDING for a
    ///   unidirectional stream the peer opened (§19.4, §19.5, §19.8, §19.10,
    ///   §19.13); or a frame for a stream of ours we have not opened yet;
    /// - STREAM_LIMIT_ERROR: a peer stream at or beyond the limit we
    ///   advertised (§4.6).
    pub fn on_peer_frame(&mut self, id: StreamId, part: StreamPart) -> Result<NewStreams, Error> {
        let local = self.local;
        let exists = match part {
            StreamPart::Recv => id.has_recv_part(local),
            StreamPart::Send => id.has_send_part(local),
        };
        if !exists {
            return Err(Error::new(
                TransportErrorCode::STREAM_STATE_ERROR,
                match part {
                    StreamPart::Recv => "frame carrying data for a send-only stream",
                    StreamPart::Send => "frame for the sending part of a receive-only stream",
                },
            ));
        }
        let dir = id.dir();
        if id.initiator() == local {
            if id.index() >= self.outgoing(dir).opened {
                return Err(Error::new(TransportErrorCode::STREAM_STATE_ERROR, "frame for a locally initiated stream not yet created"));
            }
            return Ok(NewStreams::none(local, dir));
        }
        let peer = local.peer();
        let inc = self.incoming_mut(dir);
        if id.index() >= inc.advertised {
            return Err(Error::new(TransportErrorCode::STREAM_LIMIT_ERROR, "peer opened a stream beyond the advertised MAX_STREAMS"));
        }
        if id.index() < inc.opened {
            return Ok(NewStreams::none(peer, dir));
        }
        // index < advertised <= 2^60, so index + 1 cannot overflow.
        let indices = inc.opened..id.index() + 1;
        inc.opened = id.index() + 1;
        Ok(NewStreams { initiator: peer, dir, indices })
    }

    /// A STREAMS_BLOCKED frame arrived. RFC 9000 §19.14: a value above 2^60
    /// is an error (FRAME_ENCODING_ERROR here). Otherwise informational.
    pub fn on_streams_blocked(&self, dir: Dir, max_streams: u64) -> Result<(), Error> {
        if max_streams > MAX_STREAMS {
            let frame_type = match dir {
                Dir::Bi => STREAMS_BLOCKED_BIDI,
                Dir::Uni => STREAMS_BLOCKED_UNI,
            };
            return Err(Error::frame_encoding("STREAMS_BLOCKED above 2^60").with_frame_type(frame_type));
        }
        Ok(())
    }

    /// A peer-initiated stream of this type is fully closed and forgotten:
    /// its slot can be given back to the peer.
    pub fn on_peer_stream_closed(&mut self, dir: Dir) {
        let inc = self.incoming_mut(dir);
        if inc.closed < inc.opened {
            inc.closed += 1;
        }
    }

    /// The concurrency target for peer streams of this type (the initial
    /// limit).
    pub fn window(&self, dir: Dir) -> u64 {
        self.incoming(dir).window
    }

    /// The limit we advertised for peer streams of this type.
    pub fn local_max_streams(&self, dir: Dir) -> u64 {
        self.incoming(dir).advertised
    }

    /// Peer streams of this type opened so far (explicitly or implicitly).
    pub fn opened_remote(&self, dir: Dir) -> u64 {
        self.incoming(dir).opened
    }

    /// The MAX_STREAMS value to send, if one is due: keeps up to the initial
    /// limit's worth of peer streams open, re-issuing credit in batches of
    /// an eighth of it (at least one) as streams close (RFC 9000 §4.6
    /// leaves the policy open). Half-window batches left a client that
    /// keeps 100 requests in flight waiting with up to 50 slots idle: the
    /// load benchmark's request rate was bound by that wait, not by CPU.
    pub fn should_send_max_streams(&self, dir: Dir) -> Option<u64> {
        let inc = self.incoming(dir);
        let target = inc.closed.saturating_add(inc.window).min(MAX_STREAMS);
        let batch = (inc.window / 8).max(1);
        (target > inc.advertised && target - inc.advertised >= batch).then_some(target)
    }

    /// Records that MAX_STREAMS `max_streams` was sent.
    pub fn on_max_streams_sent(&mut self, dir: Dir, max_streams: u64) {
        let inc = self.incoming_mut(dir);
        inc.advertised = inc.advertised.max(max_streams.min(MAX_STREAMS));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn id(initiator: Initiator, dir: Dir, index: u64) -> StreamId {
        StreamId::new(initiator, dir, index).unwrap()
    }

    #[test]
    fn implicit_opening_returns_new_range() {
        // We are the client; the server opens unidirectional streams.
        let mut l = StreamLimits::new(Initiator::Client, 10, 10);
        let n = l.on_peer_frame(id(Initiator::Server, Dir::Uni, 5), StreamPart::Recv).unwrap();
        assert_eq!(n.indices, 0..6);
        assert_eq!(n.len(), 6);
        assert_eq!(n.iter().map(|s| s.0).collect::<Vec<_>>(), vec![3, 7, 11, 15, 19, 23]);
        let n = l.on_peer_frame(id(Initiator::Server, Dir::Uni, 3), StreamPart::Recv).unwrap();
        assert!(n.is_empty(), "already open");
        let n = l.on_peer_frame(id(Initiator::Server, Dir::Uni, 7), StreamPart::Recv).unwrap();
        assert_eq!(n.indices, 6..8);
        assert_eq!(l.opened_remote(Dir::Uni), 8);
        // Bidirectional streams are counted separately; MAX_STREAM_DATA for
        // a peer bidi stream opens it too.
        let n = l.on_peer_frame(id(Initiator::Server, Dir::Bi, 0), StreamPart::Send).unwrap();
        assert_eq!(n, NewStreams { initiator: Initiator::Server, dir: Dir::Bi, indices: 0..1 });
    }

    #[test]
    fn stream_limit_error() {
        let mut l = StreamLimits::new(Initiator::Server, 3, 0);
        l.on_peer_frame(id(Initiator::Client, Dir::Bi, 2), StreamPart::Recv).unwrap();
        let e = l.on_peer_frame(id(Initiator::Client, Dir::Bi, 3), StreamPart::Recv).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::STREAM_LIMIT_ERROR);
        assert_eq!(e.code.0, 0x04);
        let e = l.on_peer_frame(id(Initiator::Client, Dir::Uni, 0), StreamPart::Recv).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::STREAM_LIMIT_ERROR, "uni limit is 0");
        // Largest possible ID: beyond any limit, no overflow.
        let e = l.on_peer_frame(StreamId((1 << 62) - 4), StreamPart::Recv).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::STREAM_LIMIT_ERROR);
    }

    #[test]
    fn stream_state_errors() {
        let mut l = StreamLimits::new(Initiator::Client, 10, 10);
        l.set_peer_initial_max_streams(Dir::Uni, 5).unwrap();
        l.set_peer_initial_max_streams(Dir::Bi, 5).unwrap();
        let ours_uni = l.try_open(Dir::Uni).unwrap();
        assert_eq!(ours_uni, StreamId(2));
        // STREAM / RESET_STREAM on our send-only stream.
        let e = l.on_peer_frame(ours_uni, StreamPart::Recv).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::STREAM_STATE_ERROR);
        assert_eq!(e.code.0, 0x05);
        // MAX_STREAM_DATA / STOP_SENDING on our own uni stream is fine.
        assert!(l.on_peer_frame(ours_uni, StreamPart::Send).unwrap().is_empty());
        // MAX_STREAM_DATA / STOP_SENDING on the peer's receive-only... i.e. its uni stream.
        let e = l.on_peer_frame(id(Initiator::Server, Dir::Uni, 0), StreamPart::Send).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::STREAM_STATE_ERROR);
        // A stream of ours we have not opened yet.
        let e = l.on_peer_frame(id(Initiator::Client, Dir::Bi, 0), StreamPart::Send).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::STREAM_STATE_ERROR);
        let ours_bi = l.try_open(Dir::Bi).unwrap();
        assert!(l.on_peer_frame(ours_bi, StreamPart::Recv).unwrap().is_empty());
        let e = l.on_peer_frame(id(Initiator::Client, Dir::Uni, 1), StreamPart::Send).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::STREAM_STATE_ERROR);
    }

    #[test]
    fn opening_our_streams_and_streams_blocked() {
        let mut l = StreamLimits::new(Initiator::Client, 0, 0);
        assert_eq!(l.try_open(Dir::Bi), None, "no limit from the peer yet");
        l.set_peer_initial_max_streams(Dir::Bi, 2).unwrap();
        assert_eq!(l.try_open(Dir::Bi), Some(StreamId(0)));
        assert_eq!(l.poll_streams_blocked(Dir::Bi), None);
        assert_eq!(l.try_open(Dir::Bi), Some(StreamId(4)));
        assert!(!l.can_open(Dir::Bi));
        assert_eq!(l.try_open(Dir::Bi), None);
        assert_eq!(l.poll_streams_blocked(Dir::Bi), Some(2));
        assert_eq!(l.poll_streams_blocked(Dir::Bi), None, "once per limit");
        assert!(!l.on_max_streams(Dir::Bi, 1).unwrap(), "smaller limits are ignored");
        assert!(l.on_max_streams(Dir::Bi, 3).unwrap());
        assert_eq!(l.try_open(Dir::Bi), Some(StreamId(8)));
        assert_eq!(l.poll_streams_blocked(Dir::Bi), Some(3));
        assert_eq!(l.opened_local(Dir::Bi), 3);
        let mut s = StreamLimits::new(Initiator::Server, 0, 0);
        s.set_peer_initial_max_streams(Dir::Uni, 3).unwrap();
        // §19.11 example: a server with a uni limit of 3 opens 3, 7 and 11.
        let ids: Vec<u64> = core::iter::from_fn(|| s.try_open(Dir::Uni)).map(|i| i.0).collect();
        assert_eq!(ids, vec![3, 7, 11]);
    }

    #[test]
    fn max_streams_above_2_pow_60() {
        let mut l = StreamLimits::new(Initiator::Client, 0, 0);
        let e = l.on_max_streams(Dir::Bi, MAX_STREAMS + 1).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::FRAME_ENCODING_ERROR);
        assert_eq!(e.frame_type, Some(0x12));
        let e = l.on_max_streams(Dir::Uni, u64::MAX).unwrap_err();
        assert_eq!(e.frame_type, Some(0x13));
        assert!(l.on_max_streams(Dir::Uni, MAX_STREAMS).unwrap(), "2^60 itself is allowed");
        let e = l.set_peer_initial_max_streams(Dir::Bi, MAX_STREAMS + 1).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::TRANSPORT_PARAMETER_ERROR);
        let e = l.on_streams_blocked(Dir::Uni, MAX_STREAMS + 1).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::FRAME_ENCODING_ERROR);
        assert_eq!(e.frame_type, Some(0x17));
        l.on_streams_blocked(Dir::Uni, MAX_STREAMS).unwrap();
        // With the full 2^60 limit, the last ID is the largest varint.
        for _ in 0..3 {
            l.try_open(Dir::Uni).unwrap();
        }
        assert_eq!(l.opened_local(Dir::Uni), 3);
        let l = StreamLimits::new(Initiator::Client, u64::MAX, 0);
        assert_eq!(l.local_max_streams(Dir::Bi), MAX_STREAMS, "our own limit is clamped");
    }

    #[test]
    fn max_streams_reissued_as_streams_close() {
        let mut l = StreamLimits::new(Initiator::Server, 16, 1);
        l.on_peer_frame(id(Initiator::Client, Dir::Bi, 3), StreamPart::Recv).unwrap();
        assert_eq!(l.should_send_max_streams(Dir::Bi), None);
        l.on_peer_stream_closed(Dir::Bi);
        assert_eq!(l.should_send_max_streams(Dir::Bi), None, "batch of 2 (an eighth of 16)");
        l.on_peer_stream_closed(Dir::Bi);
        assert_eq!(l.should_send_max_streams(Dir::Bi), Some(18));
        l.on_max_streams_sent(Dir::Bi, 18);
        assert_eq!(l.local_max_streams(Dir::Bi), 18);
        assert_eq!(l.should_send_max_streams(Dir::Bi), None);
        assert_eq!(l.on_peer_frame(id(Initiator::Client, Dir::Bi, 5), StreamPart::Recv).unwrap().indices, 4..6);
        // Closing more streams than were opened does not mint credit.
        for _ in 0..10 {
            l.on_peer_stream_closed(Dir::Bi);
        }
        assert_eq!(l.should_send_max_streams(Dir::Bi), Some(22), "6 closed + window 16");
        // A window of 1 re-issues on every close.
        l.on_peer_frame(id(Initiator::Client, Dir::Uni, 0), StreamPart::Recv).unwrap();
        l.on_peer_stream_closed(Dir::Uni);
        assert_eq!(l.should_send_max_streams(Dir::Uni), Some(2));
    }
}
