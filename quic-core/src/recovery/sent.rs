//! Sent-packet bookkeeping for one packet number space (RFC 9002 A.1).
//!
//! Storage: a `VecDeque` of slots indexed by `pn - base`. Packet numbers are
//! handed out in increasing order (RFC 9000 §12.3), so sending is a
//! `push_back`, finding a packet is one subtraction, and an acknowledged
//! range is a walk over exactly the slots it covers, clamped to what is
//! stored, so a peer's range that reaches 2^62 costs nothing extra.
//! Acknowledged and lost packets leave a marker behind until they reach
//! either end of the deque, where they are popped; in steady state the deque
//! is about one congestion window long and never reallocates. A `BTreeMap`
//! would give the same asymptotics for range removal but allocates a node
//! per few packets and chases pointers on every lookup.
//!
//! The markers also carry information loss detection needs: a skipped packet
//! number (never sent) makes an acknowledgment of it a PROTOCOL_VIOLATION
//! (RFC 9000 §13.1, §21.4), and an acknowledged packet between two lost ones
//! breaks a persistent congestion period (RFC 9002 §7.6.2).

use core::ops::RangeInclusive;
use core::time::Duration;
use std::collections::VecDeque;
use std::time::Instant;

use crate::error::Error;

/// A packet that was sent and is tracked until acknowledged, declared lost or
/// discarded (RFC 9002 A.1.1). `payload` is whatever the connection needs to
/// retransmit the packet's frames or to learn which of its ACK frames were
/// received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentPacket<T> {
    /// The packet number.
    pub pn: u64,
    /// When the packet was sent.
    pub time_sent: Instant,
    /// Bytes sent in the packet, including the QUIC header and AEAD
    /// overhead but not UDP or IP (RFC 9002 A.1.1 sent_bytes).
    pub size: u16,
    /// The packet contains ack-eliciting frames (RFC 9002 §2).
    pub ack_eliciting: bool,
    /// The packet counts toward bytes in flight: it is ack-eliciting or
    /// contains PADDING (RFC 9002 §2).
    pub in_flight: bool,
    /// A path MTU probe (RFC 9000 §14.4): its loss is no congestion signal.
    pub mtu_probe: bool,
    /// The delivery-rate state when it left (`delivery.rs`); filled in by
    /// [`Recovery::on_packet_sent`](super::Recovery::on_packet_sent).
    pub rate: super::delivery::RateSnapshot,
    /// Connection metadata, e.g. the frames to retransmit.
    pub payload: T,
}

#[derive(Debug, Clone)]
enum Slot<T> {
    /// The packet number was skipped by the sender and never used.
    Skipped,
    /// Acknowledged by the peer.
    Acked,
    /// Declared lost or taken out for retransmission.
    Lost,
    /// Sent and awaiting acknowledgment.
    Sent(SentPacket<T>),
}

/// The largest jump between consecutive packet numbers [`SentPackets`]
/// accepts while packets are outstanding: skipped numbers occupy slots, and a
/// connection skips one number now and then (RFC 9000 §21.4), never
/// thousands.
pub const MAX_PN_GAP: u64 = 1 << 16;

/// Why a packet could not be recorded: its packet number does not follow the
/// ones already sent (RFC 9000 §12.3), or jumps by more than [`MAX_PN_GAP`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidPacketNumber;

impl core::fmt::Display for InvalidPacketNumber {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("packet number does not follow the packets already sent")
    }
}

impl std::error::Error for InvalidPacketNumber {}

/// Slot capacity kept when nothing is outstanding (see `compact`).
const QUIET_SLOTS: usize = 4;

/// The packets sent in one packet number space that are neither acknowledged
/// nor declared lost, plus the counters recovery needs about them.
#[derive(Debug, Clone)]
pub struct SentPackets<T> {
    slots: VecDeque<Slot<T>>,
    /// Packet number of `slots[0]`.
    base: u64,
    largest_sent: Option<u64>,
    /// Number of `Slot::Sent` entries.
    unacked: usize,
    /// Unacknowledged packets that are both ack-eliciting and in flight.
    ack_eliciting_in_flight: usize,
    /// Sum of `size` over unacknowledged in-flight packets.
    bytes_in_flight: u64,
}

impl<T> Default for SentPackets<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Inputs of one loss detection pass (RFC 9002 A.10).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LossCriteria {
    pub largest_acked: u64,
    /// Packets acknowledged after one before it is lost: kPacketThreshold
    /// (3), raised by observed reordering (`reorder.rs`).
    pub packet_threshold: u64,
    /// Packets sent at or before this time are lost; `None` if the loss
    /// delay reaches back before the clock's origin.
    pub lost_send_time: Option<Instant>,
    pub loss_delay: Duration,
    /// `None` until there is an RTT sample (RFC 9002 §7.6.2).
    pub persistent: Option<PersistentCriteria>,
}

/// RFC 9002 §7.6.2 parameters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PersistentCriteria {
    /// Only packets sent after the first RTT sample count.
    pub first_rtt_sample: Instant,
    /// The persistent congestion duration (§7.6.1).
    pub duration: Duration,
}

/// Result of one loss detection pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LossScan {
    /// RFC 9002 A.10 loss_time: when the oldest packet not yet lost will be.
    pub loss_time: Option<Instant>,
    /// Bytes of the in-flight packets declared lost.
    pub lost_bytes: u64,
    /// Send time of the newest in-flight packet declared lost.
    pub largest_lost_sent: Option<Instant>,
    pub persistent_congestion: bool,
}

impl<T> SentPackets<T> {
    pub fn new() -> Self {
        Self { slots: VecDeque::new(), base: 0, largest_sent: None, unacked: 0, ack_eliciting_in_flight: 0, bytes_in_flight: 0 }
    }

    /// The largest packet number ever sent in this space (kept when the
    /// space is discarded or drained, since packet numbers never repeat).
    pub fn largest_sent(&self) -> Option<u64> {
        self.largest_sent
    }

    /// Number of packets awaiting acknowledgment.
    pub fn len(&self) -> usize {
        self.unacked
    }

    pub fn is_empty(&self) -> bool {
        self.unacked == 0
    }

    /// Bytes of unacknowledged in-flight packets.
    pub fn bytes_in_flight(&self) -> u64 {
        self.bytes_in_flight
    }

    /// Number of unacknowledged packets that are ack-eliciting and in flight.
    pub fn ack_eliciting_in_flight(&self) -> usize {
        self.ack_eliciting_in_flight
    }

    /// The unacknowledged packet `pn`, if tracked.
    pub fn get(&self, pn: u64) -> Option<&SentPacket<T>> {
        match self.slot_index(pn).and_then(|i| self.slots.get(i)) {
            Some(Slot::Sent(p)) => Some(p),
            _ => None,
        }
    }

    /// Unacknowledged packets in increasing packet number order.
    /// The packets in flight, oldest first, with their payloads mutable
    /// (a probe takes over the frames it repeats).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut SentPacket<T>> + '_ {
        self.slots.iter_mut().filter_map(|s| match s {
            Slot::Sent(p) => Some(p),
            _ => None,
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = &SentPacket<T>> + '_ {
        self.slots.iter().filter_map(|s| match s {
            Slot::Sent(p) => Some(p),
            _ => None,
        })
    }

    fn slot_index(&self, pn: u64) -> Option<usize> {
        let offset = pn.checked_sub(self.base)?;
        let idx = usize::try_from(offset).ok()?;
        (idx < self.slots.len()).then_some(idx)
    }

    /// Slot indices covering `lo..=hi` intersected with what is stored.
    fn clamp(&self, lo: u64, hi: u64) -> Option<(usize, usize)> {
        let len = u64::try_from(self.slots.len()).ok()?;
        let last = self.base.checked_add(len.checked_sub(1)?)?;
        let lo = lo.max(self.base);
        let hi = hi.min(last);
        if lo > hi {
            return None;
        }
        let a = usize::try_from(lo - self.base).ok()?;
        let b = usize::try_from(hi - self.base).ok()?;
        Some((a, b))
    }

    /// Record a sent packet. Packet numbers must increase; numbers skipped
    /// between two sent packets are remembered as never sent.
    pub fn insert(&mut self, packet: SentPacket<T>) -> Result<(), InvalidPacketNumber> {
        let pn = packet.pn;
        if self.largest_sent.is_some_and(|l| pn <= l) {
            return Err(InvalidPacketNumber);
        }
        if self.slots.is_empty() {
            // Nothing outstanding: start the window at this packet; numbers
            // skipped before it are not tracked.
            self.base = pn;
        } else {
            let len = u64::try_from(self.slots.len()).map_err(|_| InvalidPacketNumber)?;
            let next = self.base.checked_add(len).ok_or(InvalidPacketNumber)?;
            // `compact` may have popped resolved packets off the back, so the
            // slots can end before the largest packet sent: those numbers were
            // really used (acked or lost), and only the numbers after the
            // largest sent are skipped.
            let first_unused = self.largest_sent.map_or(next, |l| l + 1).max(next);
            let resolved = first_unused - next;
            let gap = pn.checked_sub(first_unused).ok_or(InvalidPacketNumber)?;
            if gap > MAX_PN_GAP || resolved > MAX_PN_GAP {
                return Err(InvalidPacketNumber);
            }
            for _ in 0..resolved {
                self.slots.push_back(Slot::Lost);
            }
            for _ in 0..gap {
                self.slots.push_back(Slot::Skipped);
            }
        }
        if packet.in_flight {
            self.bytes_in_flight = self.bytes_in_flight.saturating_add(u64::from(packet.size));
            if packet.ack_eliciting {
                self.ack_eliciting_in_flight += 1;
            }
        }
        self.unacked += 1;
        self.largest_sent = Some(pn);
        self.slots.push_back(Slot::Sent(packet));
        Ok(())
    }

    /// Check an ACK frame's ranges before anything is changed (RFC 9000
    /// §13.1, §19.3.1): ranges must be well formed and descending, must not
    /// reach above the largest packet number sent, and must not cover a
    /// number the sender skipped. Returns the largest acknowledged packet
    /// number, or `None` if there are no ranges.
    pub fn validate_ack<I>(&self, ranges: I) -> Result<Option<u64>, Error>
    where
        I: Iterator<Item = RangeInclusive<u64>>,
    {
        let mut largest = None;
        let mut prev_smallest: Option<u64> = None;
        for range in ranges {
            let (lo, hi) = (*range.start(), *range.end());
            if lo > hi {
                return Err(Error::frame_encoding("ACK range with start above end"));
            }
            match prev_smallest {
                None => {
                    // RFC 9000 §13.1: acknowledging a packet that was never
                    // sent is a PROTOCOL_VIOLATION.
                    if self.largest_sent.is_none_or(|sent| hi > sent) {
                        return Err(Error::protocol_violation("ACK of a packet number never sent"));
                    }
                    largest = Some(hi);
                }
                Some(prev) if hi >= prev => {
                    return Err(Error::frame_encoding("ACK ranges not in descending order"));
                }
                Some(_) => {}
            }
            if let Some((a, b)) = self.clamp(lo, hi) {
                if self.slots.range(a..=b).any(|s| matches!(s, Slot::Skipped)) {
                    return Err(Error::protocol_violation("ACK of a skipped packet number"));
                }
            }
            prev_smallest = Some(lo);
        }
        Ok(largest)
    }

    /// Remove the unacknowledged packets in `range`, appending them to `out`
    /// in decreasing packet number order. Only stored slots are visited.
    pub(crate) fn remove_acked(&mut self, range: RangeInclusive<u64>, out: &mut Vec<SentPacket<T>>) {
        let Some((a, b)) = self.clamp(*range.start(), *range.end()) else {
            return;
        };
        for idx in (a..=b).rev() {
            let Some(slot) = self.slots.get_mut(idx) else {
                continue;
            };
            if !matches!(slot, Slot::Sent(_)) {
                continue;
            }
            if let Slot::Sent(p) = core::mem::replace(slot, Slot::Acked) {
                self.forget(&p);
                out.push(p);
            }
        }
    }

    /// RFC 9002 A.10 DetectAndRemoveLostPackets for this space, plus the
    /// persistent congestion check of §7.6.2 over the packets it declares
    /// lost. Lost packets are appended to `out` in increasing packet number
    /// order.
    pub(crate) fn detect_lost(&mut self, c: &LossCriteria, out: &mut Vec<SentPacket<T>>) -> LossScan {
        let mut scan = LossScan::default();
        // Earliest eligible ack-eliciting lost packet of the current run of
        // packets with no acknowledgment between them.
        let mut run_start: Option<Instant> = None;
        let mut idx = 0;
        while idx < self.slots.len() {
            let pn = self.base.saturating_add(idx as u64);
            if pn > c.largest_acked {
                break;
            }
            let Some(slot) = self.slots.get_mut(idx) else {
                break;
            };
            idx += 1;
            let packet = match slot {
                // RFC 9002 §7.6.2: an acknowledged packet sent in between
                // means the path delivered something; start over.
                Slot::Acked => {
                    run_start = None;
                    continue;
                }
                Slot::Skipped | Slot::Lost => continue,
                Slot::Sent(p) => p,
            };
            // RFC 9002 §6.1: lost if kPacketThreshold packets before an
            // acknowledged one, or sent longer than the loss delay ago.
            let by_time = c.lost_send_time.is_some_and(|t| packet.time_sent <= t);
            let by_count = c.largest_acked >= pn.saturating_add(c.packet_threshold);
            if !(by_time || by_count) {
                // Packet numbers follow send order, so every later packet is
                // newer: this one sets the loss timer (A.10) and nothing after
                // it can be lost yet.
                scan.loss_time = packet.time_sent.checked_add(c.loss_delay);
                break;
            }
            let Slot::Sent(p) = core::mem::replace(slot, Slot::Lost) else {
                continue;
            };
            self.forget(&p);
            // RFC 9000 §14.4: a lost PMTU probe is no sign of congestion.
            if p.in_flight && !p.mtu_probe {
                scan.lost_bytes = scan.lost_bytes.saturating_add(u64::from(p.size));
                scan.largest_lost_sent = Some(match scan.largest_lost_sent {
                    Some(t) => t.max(p.time_sent),
                    None => p.time_sent,
                });
            }
            // RFC 9002 §7.6.2: two ack-eliciting lost packets, both sent after
            // the first RTT sample, further apart than the duration.
            if let Some(pc) = c.persistent.filter(|_| !p.mtu_probe) {
                if p.ack_eliciting && p.time_sent > pc.first_rtt_sample {
                    match run_start {
                        None => run_start = Some(p.time_sent),
                        Some(start) => {
                            if p.time_sent.saturating_duration_since(start) > pc.duration {
                                scan.persistent_congestion = true;
                            }
                        }
                    }
                }
            }
            out.push(p);
        }
        self.compact();
        scan
    }

    /// Take every unacknowledged packet out, in increasing packet number
    /// order (for retransmission after a Retry or a 0-RTT rejection).
    pub(crate) fn drain_into(&mut self, out: &mut Vec<SentPacket<T>>) {
        for slot in self.slots.drain(..) {
            if let Slot::Sent(p) = slot {
                out.push(p);
            }
        }
        self.reset_counters();
    }

    /// Drop every unacknowledged packet (keys discarded, RFC 9002 §6.4).
    pub(crate) fn clear(&mut self) {
        // Also the capacity: a discarded space never sends again.
        self.slots = VecDeque::new();
        self.reset_counters();
    }

    fn reset_counters(&mut self) {
        self.unacked = 0;
        self.ack_eliciting_in_flight = 0;
        self.bytes_in_flight = 0;
    }

    /// Update the counters for a packet leaving the Sent state.
    fn forget(&mut self, p: &SentPacket<T>) {
        self.unacked = self.unacked.saturating_sub(1);
        if p.in_flight {
            self.bytes_in_flight = self.bytes_in_flight.saturating_sub(u64::from(p.size));
            if p.ack_eliciting {
                self.ack_eliciting_in_flight = self.ack_eliciting_in_flight.saturating_sub(1);
            }
        }
    }

    /// Pop markers from both ends so the deque only spans outstanding
    /// packets.
    pub(crate) fn compact(&mut self) {
        while matches!(self.slots.front(), Some(s) if !matches!(s, Slot::Sent(_))) {
            self.slots.pop_front();
            self.base = self.base.saturating_add(1);
        }
        while matches!(self.slots.back(), Some(s) if !matches!(s, Slot::Sent(_))) {
            self.slots.pop_back();
        }
        // Little outstanding (an ACK-only packet stays until acknowledged,
        // which may be never): give back what a burst grew (a handshake
        // flight, a transfer), so a quiet connection holds no history. The
        // threshold is well above the kept size so that traffic hovering
        // near it does not reallocate every time.
        if self.slots.len() <= QUIET_SLOTS && self.slots.capacity() > 4 * QUIET_SLOTS {
            self.slots.shrink_to(QUIET_SLOTS);
        }
    }

    /// Slots currently held (outstanding span), for tests and diagnostics.
    pub fn span(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::PACKET_THRESHOLD;
    use super::*;
    use crate::error::TransportErrorCode;

    fn pkt(pn: u64, t: Instant) -> SentPacket<u64> {
        SentPacket { pn, time_sent: t, size: 1000, ack_eliciting: true, in_flight: true, mtu_probe: false, rate: Default::default(), payload: pn }
    }

    fn sent(pns: &[u64]) -> (SentPackets<u64>, Instant) {
        let t0 = Instant::now();
        let mut s = SentPackets::new();
        for &pn in pns {
            s.insert(pkt(pn, t0 + Duration::from_millis(pn))).unwrap();
        }
        (s, t0)
    }

    #[test]
    fn insert_tracks_counters_and_rejects_non_increasing() {
        let (mut s, t0) = sent(&[0, 1, 2]);
        assert_eq!(s.len(), 3);
        assert_eq!(s.bytes_in_flight(), 3000);
        assert_eq!(s.ack_eliciting_in_flight(), 3);
        assert_eq!(s.largest_sent(), Some(2));
        assert_eq!(s.insert(pkt(2, t0)), Err(InvalidPacketNumber));
        assert_eq!(s.insert(pkt(1, t0)), Err(InvalidPacketNumber));
        assert_eq!(s.insert(pkt(3 + MAX_PN_GAP + 1, t0)), Err(InvalidPacketNumber));
        let mut ack_only = pkt(5, t0);
        ack_only.ack_eliciting = false;
        ack_only.in_flight = false;
        s.insert(ack_only).unwrap();
        // 3 and 4 were skipped.
        assert_eq!(s.span(), 6);
        assert_eq!(s.len(), 4);
        assert_eq!(s.bytes_in_flight(), 3000);
        assert_eq!(s.iter().map(|p| p.pn).collect::<Vec<_>>(), vec![0, 1, 2, 5]);
        assert_eq!(s.get(4), None);
        assert_eq!(s.get(5).map(|p| p.payload), Some(5));
    }

    #[test]
    fn late_ack_of_resolved_tail_is_not_a_skip() {
        // 0..=3 sent; 2 and 3 resolved (popped from the back by compact);
        // then 4 sent; a late ACK covering 3 must be accepted.
        let t = Instant::now();
        let mut s: SentPackets<()> = SentPackets::new();
        for pn in 0..4 {
            s.insert(SentPacket { pn, time_sent: t, size: 100, ack_eliciting: true, in_flight: true, mtu_probe: false, rate: Default::default(), payload: () })
                .unwrap();
        }
        let mut out = Vec::new();
        s.remove_acked(2..=3, &mut out);
        s.compact();
        s.insert(SentPacket { pn: 4, time_sent: t, size: 100, ack_eliciting: true, in_flight: true, mtu_probe: false, rate: Default::default(), payload: () })
            .unwrap();
        assert!(s.validate_ack([3..=4].into_iter()).is_ok());
        // A real skip is still caught: 5 is never sent.
        s.insert(SentPacket { pn: 6, time_sent: t, size: 100, ack_eliciting: true, in_flight: true, mtu_probe: false, rate: Default::default(), payload: () })
            .unwrap();
        assert!(s.validate_ack([5..=6].into_iter()).is_err());
    }

    #[test]
    fn validate_rejects_unsent_skipped_and_malformed() {
        let (s, _) = sent(&[0, 1, 2, 4]);
        assert_eq!(s.validate_ack([4..=4, 0..=2].into_iter()), Ok(Some(4)));
        assert_eq!(s.validate_ack(core::iter::empty()), Ok(None));
        let e = s.validate_ack([5..=5].into_iter()).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::PROTOCOL_VIOLATION);
        let e = s.validate_ack([0..=u64::MAX].into_iter()).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::PROTOCOL_VIOLATION);
        // 3 was skipped.
        let e = s.validate_ack([2..=4].into_iter()).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::PROTOCOL_VIOLATION);
        let e = s.validate_ack([0..=1, 2..=2].into_iter()).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::FRAME_ENCODING_ERROR);
        #[allow(clippy::reversed_empty_ranges)]
        let e = s.validate_ack([2..=1].into_iter()).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::FRAME_ENCODING_ERROR);
        let empty: SentPackets<u64> = SentPackets::new();
        let e = empty.validate_ack([0..=0].into_iter()).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::PROTOCOL_VIOLATION);
    }

    #[test]
    fn remove_acked_clamps_and_compacts() {
        let (mut s, _) = sent(&[10, 11, 12, 13, 14]);
        let mut out = Vec::new();
        s.remove_acked(12..=u64::MAX, &mut out);
        assert_eq!(out.iter().map(|p| p.pn).collect::<Vec<_>>(), vec![14, 13, 12]);
        s.compact();
        assert_eq!(s.span(), 2);
        assert_eq!(s.len(), 2);
        assert_eq!(s.bytes_in_flight(), 2000);
        out.clear();
        s.remove_acked(0..=10, &mut out);
        s.compact();
        assert_eq!(out.iter().map(|p| p.pn).collect::<Vec<_>>(), vec![10]);
        assert_eq!(s.span(), 1);
        assert_eq!(s.iter().map(|p| p.pn).collect::<Vec<_>>(), vec![11]);
        // Acking again is harmless.
        out.clear();
        s.remove_acked(10..=10, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn detect_lost_by_count_and_time_sets_loss_time() {
        let (mut s, t0) = sent(&[1, 2, 3, 4, 5]);
        let mut acked = Vec::new();
        s.remove_acked(5..=5, &mut acked);
        let mut lost = Vec::new();
        let c = LossCriteria {
            largest_acked: 5,
            packet_threshold: PACKET_THRESHOLD,
            lost_send_time: None,
            loss_delay: Duration::from_millis(100),
            persistent: None,
        };
        let scan = s.detect_lost(&c, &mut lost);
        assert_eq!(lost.iter().map(|p| p.pn).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(scan.lost_bytes, 2000);
        assert_eq!(scan.largest_lost_sent, Some(t0 + Duration::from_millis(2)));
        assert_eq!(scan.loss_time, Some(t0 + Duration::from_millis(103)));
        assert!(!scan.persistent_congestion);
        // By time: everything sent at or before t0 + 3 ms.
        lost.clear();
        let c = LossCriteria { lost_send_time: Some(t0 + Duration::from_millis(3)), ..c };
        let scan = s.detect_lost(&c, &mut lost);
        assert_eq!(lost.iter().map(|p| p.pn).collect::<Vec<_>>(), vec![3]);
        assert_eq!(scan.loss_time, Some(t0 + Duration::from_millis(104)));
        assert_eq!(s.len(), 1);
        assert_eq!(s.span(), 1);
    }

    #[test]
    fn drain_and_clear_reset_counters() {
        let (mut s, _) = sent(&[0, 1, 2]);
        let mut out = Vec::new();
        s.drain_into(&mut out);
        assert_eq!(out.len(), 3);
        assert_eq!((s.len(), s.bytes_in_flight(), s.ack_eliciting_in_flight()), (0, 0, 0));
        assert_eq!(s.largest_sent(), Some(2));
        let (mut s, _) = sent(&[0, 1, 2]);
        s.clear();
        assert_eq!((s.len(), s.bytes_in_flight(), s.span()), (0, 0, 0));
    }
}
