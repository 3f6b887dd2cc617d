//! Packet number spaces (RFC 9000 §12.3): each has its own packet numbers,
//! acknowledgements, CRYPTO stream and (for Initial and Handshake) keys.

use std::time::{Duration, Instant};

use smallvec::SmallVec;

use crate::frame::EcnCounts;
use crate::range_set::RangeSet;
use crate::recovery::SpaceId;
use crate::stream::{RecvStream, RecvWindow, SendStream};

/// At most this many ACK ranges are remembered per space; older ranges are
/// forgotten first (RFC 9000 §13.2.3 lets a receiver limit them). Packets
/// below what we forgot are treated as duplicates.
pub const MAX_ACK_RANGES: usize = 64;

/// What we received and still have to acknowledge in one space.
#[derive(Debug)]
pub struct AckTracker {
    received: RangeSet,
    /// Packet numbers below this are considered already received.
    ignore_below: u64,
    largest: Option<(u64, Instant)>,
    /// Ack-eliciting packets received since our last ACK (RFC 9000 §13.2.2).
    unacked_eliciting: u32,
    /// An ACK should go out as soon as possible (threshold reached, reordering).
    immediate: bool,
    /// Delayed-ACK deadline, set by the first unacknowledged ack-eliciting packet.
    deadline: Option<Instant>,
    /// Something new arrived since the last ACK we sent.
    dirty: bool,
    pub ecn: EcnCounts,
    ecn_seen: bool,
}

impl Default for AckTracker {
    fn default() -> Self {
        Self {
            received: RangeSet::new(MAX_ACK_RANGES),
            ignore_below: 0,
            largest: None,
            unacked_eliciting: 0,
            immediate: false,
            deadline: None,
            dirty: false,
            ecn: EcnCounts::default(),
            ecn_seen: false,
        }
    }
}

/// ECN codepoint of a received datagram (RFC 3168 / RFC 9000 §13.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcnCodepoint {
    Ect0,
    Ect1,
    Ce,
}

impl EcnCodepoint {
    /// From the two ECN bits of the IP TOS / traffic class byte.
    pub fn from_bits(bits: u8) -> Option<Self> {
        match bits & 0x03 {
            0b10 => Some(EcnCodepoint::Ect0),
            0b01 => Some(EcnCodepoint::Ect1),
            0b11 => Some(EcnCodepoint::Ce),
            _ => None,
        }
    }

    pub fn bits(self) -> u8 {
        match self {
            EcnCodepoint::Ect0 => 0b10,
            EcnCodepoint::Ect1 => 0b01,
            EcnCodepoint::Ce => 0b11,
        }
    }
}

impl AckTracker {
    /// True if `pn` was already received (or is too old to tell).
    pub fn is_duplicate(&self, pn: u64) -> bool {
        pn < self.ignore_below || self.received.contains(pn)
    }

    /// Records a successfully processed packet. RFC 9000 §13.2.1: ACK
    /// immediately when packets arrive out of order, after the threshold of
    /// ack-eliciting packets, or at max_ack_delay otherwise.
    pub fn on_packet(&mut self, pn: u64, now: Instant, ack_eliciting: bool, ecn: Option<EcnCodepoint>, threshold: u32, max_ack_delay: Duration) {
        let out_of_order = self.largest.is_some_and(|(l, _)| pn < l) || self.received.max().is_some_and(|m| pn > m + 1);
        if self.received.insert_one(pn).is_err() {
            // Forget the oldest range to make room (bounded state).
            if let Some(r) = self.received.pop_min() {
                self.ignore_below = self.ignore_below.max(r.end);
            }
            let _ = self.received.insert_one(pn);
        }
        if self.largest.is_none_or(|(l, _)| pn > l) {
            self.largest = Some((pn, now));
        }
        match ecn {
            Some(EcnCodepoint::Ect0) => self.ecn.ect0 += 1,
            Some(EcnCodepoint::Ect1) => self.ecn.ect1 += 1,
            Some(EcnCodepoint::Ce) => {
                self.ecn.ce += 1;
                // RFC 9000 §13.2.1: CE-marked packets are acknowledged at once.
                self.immediate = ack_eliciting || self.immediate;
            }
            None => {}
        }
        self.ecn_seen |= ecn.is_some();
        self.dirty = true;
        if ack_eliciting {
            self.unacked_eliciting += 1;
            if out_of_order || self.unacked_eliciting >= threshold {
                self.immediate = true;
            }
            if self.deadline.is_none() {
                self.deadline = Some(now + max_ack_delay);
            }
        }
    }

    /// Whether an ACK frame should be sent now.
    pub fn ack_due(&self, now: Instant) -> bool {
        self.dirty && (self.immediate || self.deadline.is_some_and(|d| d <= now))
    }

    /// Whether there is anything an ACK would report (it may ride along with
    /// other frames even when not due).
    pub fn has_unsent(&self) -> bool {
        self.dirty && !self.received.is_empty()
    }

    pub fn deadline(&self) -> Option<Instant> {
        if self.dirty && !self.immediate {
            self.deadline
        } else {
            None
        }
    }

    pub fn ranges(&self) -> impl Iterator<Item = core::ops::RangeInclusive<u64>> + Clone + '_ {
        self.received.iter_rev().map(|r| r.start..=r.end - 1)
    }

    pub fn largest(&self) -> Option<u64> {
        self.received.max()
    }

    /// Encoded ACK Delay for an ACK sent at `now` (RFC 9000 §19.3).
    pub fn ack_delay(&self, now: Instant, exponent: u8) -> u64 {
        self.largest.map(|(_, t)| (now.saturating_duration_since(t).as_micros() as u64) >> exponent).unwrap_or(0)
    }

    pub fn ecn_counts(&self) -> Option<EcnCounts> {
        self.ecn_seen.then_some(self.ecn)
    }

    pub fn on_ack_sent(&mut self) {
        self.unacked_eliciting = 0;
        self.immediate = false;
        self.deadline = None;
        self.dirty = false;
    }

    /// The peer acknowledged a packet of ours carrying an ACK up to `largest`:
    /// it knows about everything up to there, so stop repeating it
    /// (RFC 9000 §13.2.4).
    pub fn on_ack_acked(&mut self, largest: u64) {
        // Keep the largest range so duplicate detection stays exact near the
        // front; drop everything fully below it.
        if self.received.max().is_some_and(|m| largest < m) {
            self.received.remove_below(largest + 1);
            self.ignore_below = self.ignore_below.max(largest + 1);
        }
    }
}

/// Control information carried by a sent packet, kept until it is
/// acknowledged or declared lost so lost frames can be sent again
/// (RFC 9000 §13.3: retransmit information, not packets).
#[derive(Debug, Clone)]
pub struct SentFrames {
    pub space: SpaceId,
    pub crypto: Option<(u64, u32)>,
    pub streams: SmallVec<[StreamRange; 2]>,
    pub ack_largest: Option<u64>,
    pub control: SmallVec<[Retransmit; 2]>,
    /// Sent in a datagram marked ECT(0) (ECN validation counts these).
    pub ecn: bool,
}

impl SentFrames {
    pub fn new(space: SpaceId) -> Self {
        Self { space, crypto: None, streams: SmallVec::new(), ack_largest: None, control: SmallVec::new(), ecn: false }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct StreamRange {
    pub id: u64,
    pub offset: u64,
    pub len: u32,
    pub fin: bool,
}

/// Frames that must reach the peer; on loss the current value is queued
/// again (for limits, the newest value, not the lost one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retransmit {
    HandshakeDone,
    MaxData,
    MaxStreamData(u64),
    MaxStreamsBidi,
    MaxStreamsUni,
    DataBlocked,
    ResetStream(u64),
    StopSending(u64),
    NewConnectionId(u64),
    RetireConnectionId(u64),
    NewToken,
}

/// One packet number space.
pub struct PacketSpace {
    pub id: SpaceId,
    /// Initial and Handshake keys; Data keys live in the connection's 1-RTT state.
    pub keys: Option<rustls::quic::Keys>,
    pub crypto_send: SendStream,
    pub crypto_recv: RecvStream,
    pub next_pn: u64,
    pub largest_rx: Option<u64>,
    pub ack: AckTracker,
    /// PTO probes still to send in this space (RFC 9002 §6.2.4).
    pub probes: u8,
    /// Keys dropped and state cleared (RFC 9001 §4.9).
    pub discarded: bool,
}

impl core::fmt::Debug for PacketSpace {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PacketSpace")
            .field("id", &self.id)
            .field("has_keys", &self.keys.is_some())
            .field("next_pn", &self.next_pn)
            .field("largest_rx", &self.largest_rx)
            .field("discarded", &self.discarded)
            .finish()
    }
}

impl PacketSpace {
    pub fn new(id: SpaceId, crypto_buffer: u64) -> Self {
        Self {
            id,
            keys: None,
            // CRYPTO has no flow control (RFC 9000 §7.5); the send side is
            // bounded by what TLS produces.
            crypto_send: SendStream::new(u64::MAX >> 2, u64::MAX >> 2),
            crypto_recv: RecvStream::new(RecvWindow::new(crypto_buffer, crypto_buffer)),
            next_pn: 0,
            largest_rx: None,
            ack: AckTracker::default(),
            probes: 0,
            discarded: false,
        }
    }

    /// A space whose keys and state are gone.
    fn discarded(id: SpaceId) -> Self {
        let mut s = Self::new(id, 0);
        s.discarded = true;
        s
    }
}

/// The three packet number spaces (RFC 9000 §12.3), indexed by
/// [`SpaceId::index`]. Initial and Handshake live on the heap until both are
/// discarded (RFC 9001 §4.9), so an established connection carries only the
/// application data space.
pub struct Spaces {
    early: Option<Box<[PacketSpace; 2]>>,
    data: PacketSpace,
}

/// What a discarded Initial or Handshake space reads as once freed.
static DISCARDED: std::sync::LazyLock<[PacketSpace; 2]> = std::sync::LazyLock::new(discarded_early);

/// Initial and Handshake, both discarded.
fn discarded_early() -> [PacketSpace; 2] {
    [PacketSpace::discarded(SpaceId::Initial), PacketSpace::discarded(SpaceId::Handshake)]
}

impl Spaces {
    pub fn new(crypto_buffer: u64) -> Self {
        Self {
            early: Some(Box::new([PacketSpace::new(SpaceId::Initial, crypto_buffer), PacketSpace::new(SpaceId::Handshake, crypto_buffer)])),
            data: PacketSpace::new(SpaceId::Data, crypto_buffer),
        }
    }

    /// Frees Initial and Handshake once both are discarded.
    pub fn release_discarded(&mut self) {
        if self.early.as_ref().is_some_and(|e| e.iter().all(|s| s.discarded)) {
            self.early = None;
        }
    }

    /// Whether Initial and Handshake state is still held.
    pub fn holds_early(&self) -> bool {
        self.early.is_some()
    }

    /// The spaces still held, in order: Initial and Handshake until
    /// [`release_discarded`](Self::release_discarded) frees them, then
    /// Data alone. A released space is discarded and holds nothing, so it
    /// has nothing to contribute to any question asked this way (probes,
    /// deadlines, bytes in flight); skipping it keeps per-packet checks
    /// off the shared placeholder (a lazily initialised static read on
    /// every packet of a transfer, about 1 % of `quicpro serve` in bulk).
    pub fn iter(&self) -> impl Iterator<Item = &PacketSpace> + '_ {
        self.early.iter().flat_map(|e| e.iter()).chain(core::iter::once(&self.data))
    }

    /// Whether space `i` is discarded, without touching the placeholder
    /// of released spaces.
    #[inline]
    pub fn is_discarded(&self, i: usize) -> bool {
        if i >= 2 {
            return self.data.discarded;
        }
        self.early.as_ref().and_then(|e| e.get(i)).is_none_or(|s| s.discarded)
    }
}

impl Spaces {
    /// Index 0 or 1 once the early spaces are gone: a fresh discarded
    /// state (nothing does that today: every such path checks `discarded`
    /// or the keys first; `release_discarded` frees it again).
    #[cold]
    fn revive_early(&mut self) -> &mut [PacketSpace; 2] {
        self.early.get_or_insert_with(|| Box::new(discarded_early()))
    }
}

impl core::ops::Index<usize> for Spaces {
    type Output = PacketSpace;
    #[inline]
    fn index(&self, i: usize) -> &PacketSpace {
        if i >= 2 {
            return &self.data;
        }
        match &self.early {
            Some(e) => &e[i],
            None => &DISCARDED[i],
        }
    }
}

impl core::ops::IndexMut<usize> for Spaces {
    #[inline]
    fn index_mut(&mut self, i: usize) -> &mut PacketSpace {
        if i >= 2 {
            return &mut self.data;
        }
        match self.early {
            Some(ref mut e) => &mut e[i],
            None => &mut self.revive_early()[i],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_tracker_thresholds_and_duplicates() {
        let t0 = Instant::now();
        let mut a = AckTracker::default();
        let d = Duration::from_millis(25);
        a.on_packet(0, t0, true, None, 2, d);
        assert!(!a.ack_due(t0));
        assert_eq!(a.deadline(), Some(t0 + d));
        assert!(a.ack_due(t0 + d));
        a.on_packet(1, t0, true, Some(EcnCodepoint::Ect0), 2, d);
        assert!(a.ack_due(t0), "second ack-eliciting packet triggers an ACK");
        assert!(a.is_duplicate(1));
        assert!(!a.is_duplicate(2));
        a.on_ack_sent();
        assert!(!a.ack_due(t0 + d * 4));
        // Out of order (gap) triggers an immediate ACK.
        a.on_packet(5, t0, true, None, 10, d);
        assert!(a.ack_due(t0));
        let ranges: Vec<_> = a.ranges().collect();
        assert_eq!(ranges, vec![5..=5, 0..=1]);
        assert_eq!(a.ecn_counts().map(|e| e.ect0), Some(1));
        a.on_ack_acked(1);
        assert!(a.is_duplicate(0));
        assert_eq!(a.ranges().collect::<Vec<_>>(), vec![5..=5]);
    }

    #[test]
    fn released_early_spaces_are_discarded_and_left_out_of_iteration() {
        let mut sp = Spaces::new(1 << 16);
        assert_eq!(sp.iter().count(), 3);
        assert!((0..3).all(|i| !sp.is_discarded(i)));
        // Discarding one early space releases nothing yet.
        sp[0].discarded = true;
        sp.release_discarded();
        assert!(sp.holds_early());
        assert_eq!(sp.iter().count(), 3);
        assert!(sp.is_discarded(0) && !sp.is_discarded(1));
        sp[1].discarded = true;
        sp.release_discarded();
        assert!(!sp.holds_early());
        // Data alone is iterated; the released spaces read as discarded,
        // through `is_discarded` and through the placeholder alike.
        assert_eq!(sp.iter().map(|s| s.id).collect::<Vec<_>>(), vec![SpaceId::Data]);
        assert!(sp.is_discarded(0) && sp.is_discarded(1) && !sp.is_discarded(2));
        assert!(sp[0].discarded && sp[1].discarded);
    }

    #[test]
    fn ack_ranges_are_bounded() {
        let t0 = Instant::now();
        let mut a = AckTracker::default();
        for i in 0..(MAX_ACK_RANGES as u64 * 3) {
            a.on_packet(i * 2, t0, false, None, 2, Duration::ZERO);
        }
        assert!(a.ranges().count() <= MAX_ACK_RANGES);
        assert!(a.is_duplicate(0), "forgotten ranges count as received");
        assert!(!a.ack_due(t0), "non-ack-eliciting packets alone do not trigger an ACK");
    }
}
