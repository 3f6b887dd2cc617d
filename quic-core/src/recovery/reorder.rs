//! Spurious losses and reordering (RFC 9002 §6.1, §6.2.4 and RFC 9438 §4.9).
//!
//! A packet declared lost that the peer acknowledges later was not lost:
//! the path reordered it. Each such *spurious loss* makes loss detection
//! more tolerant, as RFC 9002 §6.1.1 and §6.1.2 allow ("implementations
//! SHOULD NOT use a packet threshold less than 3"; "an implementation MAY
//! ... use an adaptive time threshold"): the packet threshold rises to the
//! reordering distance observed, and the time threshold from 9/8 of the
//! RTT by 1/8 per event, up to 2. When every packet of the loss event that
//! reduced the congestion window turns out spurious, the reduction is
//! undone (the controller's state before it is restored, RFC 9438 §4.9).

use std::collections::VecDeque;
use std::ops::RangeInclusive;

use super::cc::CongestionController;
use super::PACKET_THRESHOLD;
use crate::recovery::SpaceId;

/// Lost packet numbers remembered per space to recognise spurious losses.
const REMEMBERED_LOSSES: usize = 512;
/// Largest packet threshold reordering may raise it to: beyond this the
/// time threshold alone decides (a path reordering by thousands of packets
/// is better served by time).
pub const MAX_PACKET_THRESHOLD: u64 = 1024;
/// Time threshold, in eighths of an RTT: 9/8 (RFC 9002 §6.1.2) up to 2.
pub const MIN_TIME_EIGHTHS: u32 = 9;
pub const MAX_TIME_EIGHTHS: u32 = 16;

/// The controller before a reduction, and the losses that caused it.
#[derive(Debug)]
struct Undo {
    before: Box<dyn CongestionController>,
    /// (space, packet number) of the packets lost in that event and in the
    /// recovery period it started; all must prove spurious.
    pending: Vec<(SpaceId, u64)>,
}

impl Clone for Undo {
    fn clone(&self) -> Self {
        Self { before: self.before.clone_box(), pending: self.pending.clone() }
    }
}

/// What an acknowledgment revealed about earlier losses.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SpuriousOutcome {
    /// Packets declared lost that this ACK acknowledged.
    pub spurious: u32,
    /// The loss thresholds changed (packet threshold, time in eighths).
    pub thresholds: Option<(u64, u32)>,
    /// A window reduction was undone.
    pub undone: bool,
}

/// Reordering tolerance and the undo record of one path.
#[derive(Debug, Clone)]
pub struct ReorderState {
    packet_threshold: u64,
    time_eighths: u32,
    lost: [VecDeque<u64>; 3],
    undo: Option<Undo>,
    /// Totals for stats and tests.
    pub spurious_total: u64,
    pub undone_total: u64,
}

impl Default for ReorderState {
    fn default() -> Self {
        Self {
            packet_threshold: PACKET_THRESHOLD,
            time_eighths: MIN_TIME_EIGHTHS,
            lost: [VecDeque::new(), VecDeque::new(), VecDeque::new()],
            undo: None,
            spurious_total: 0,
            undone_total: 0,
        }
    }
}

impl ReorderState {
    pub fn packet_threshold(&self) -> u64 {
        self.packet_threshold
    }

    pub fn time_eighths(&self) -> u32 {
        self.time_eighths
    }

    /// `pn` in `space` was declared lost.
    pub fn on_lost(&mut self, space: SpaceId, pn: u64) {
        let q = &mut self.lost[space.index()];
        // Kept in increasing order (losses are declared oldest first, so
        // this is an append), for `on_ack`'s binary searches.
        let at = q.partition_point(|&p| p < pn);
        if q.get(at) == Some(&pn) {
            return;
        }
        if q.len() >= REMEMBERED_LOSSES {
            if at == 0 {
                return;
            }
            q.pop_front();
            q.insert(at - 1, pn);
        } else {
            q.insert(at, pn);
        }
        if let Some(u) = &mut self.undo {
            u.pending.push((space, pn));
        }
    }

    /// The controller reduced its window (a new congestion event): keep
    /// its state from `before` the reduction; the losses that caused it
    /// follow through [`ReorderState::on_lost`].
    pub fn on_reduction(&mut self, before: Box<dyn CongestionController>) {
        self.undo = Some(Undo { before, pending: Vec::new() });
    }

    /// A loss that cannot be spurious ended (persistent congestion): no undo.
    pub fn forget_undo(&mut self) {
        self.undo = None;
    }

    /// An ACK of `space` whose largest acknowledged is `largest` covers
    /// `ranges`. Returns the spurious losses it revealed and restores `cc`
    /// when a whole reduction proved spurious. The work is a binary search
    /// per range plus the losses found: an ACK of hundreds of ranges meets
    /// hundreds of remembered losses without their product (a peer could
    /// otherwise make every ACK cost ranges × losses).
    pub fn on_ack(
        &mut self,
        space: SpaceId,
        largest: u64,
        ranges: impl Iterator<Item = RangeInclusive<u64>>,
        cc: &mut Box<dyn CongestionController>,
    ) -> SpuriousOutcome {
        let mut out = SpuriousOutcome::default();
        let q = &mut self.lost[space.index()];
        let Some(&lowest_lost) = q.front() else { return out };
        // Collect first (the queue is searched unchanged), then remove in
        // one pass and settle the undo bookkeeping in one pass: removing
        // from the middle per range, or scanning the pending list per
        // loss, would make a hostile ACK quadratic again. The list is
        // allocated only when an ACK reveals spurious losses.
        let mut found: Vec<u64> = Vec::new();
        for range in ranges {
            if *range.end() < lowest_lost {
                // Ranges descend: none further down can hold a loss.
                break;
            }
            let a = q.partition_point(|&pn| pn < *range.start());
            let b = q.partition_point(|&pn| pn <= *range.end());
            found.extend(q.range(a..b).copied());
        }
        if found.is_empty() {
            return out;
        }
        found.sort_unstable();
        q.retain(|pn| found.binary_search(pn).is_err());
        out.spurious = found.len() as u32;
        // Each arrived while `largest` was acknowledged: that many packets
        // overtook the oldest of them.
        let max_distance = largest.saturating_sub(found[0]) + 1;
        if let Some(u) = &mut self.undo {
            u.pending.retain(|&(s, p)| !(s == space && found.binary_search(&p).is_ok()));
        }
        self.spurious_total += u64::from(out.spurious);
        let packet = self.packet_threshold.max(max_distance.min(MAX_PACKET_THRESHOLD));
        let time = (self.time_eighths + 1).min(MAX_TIME_EIGHTHS);
        if (packet, time) != (self.packet_threshold, self.time_eighths) {
            self.packet_threshold = packet;
            self.time_eighths = time;
            out.thresholds = Some((packet, time));
        }
        if self.undo.as_ref().is_some_and(|u| u.pending.is_empty()) {
            if let Some(u) = self.undo.take() {
                *cc = u.before;
                out.undone = true;
                self.undone_total += 1;
            }
        }
        out
    }

    /// A new path: its reordering is not known yet.
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recovery::cc::NewReno;
    use std::time::{Duration, Instant};

    #[test]
    fn spurious_loss_raises_thresholds_and_undoes_the_reduction() {
        let mut r = ReorderState::default();
        let mut cc: Box<dyn CongestionController> = Box::new(NewReno::new(1200));
        let t0 = Instant::now();
        cc.on_packet_sent(t0, 1200);
        let before = cc.window();
        // Packet 10 declared lost (packet 13 acknowledged): the controller
        // halves its window.
        r.on_reduction(cc.clone_box());
        r.on_lost(SpaceId::Data, 10);
        cc.on_congestion_event(t0 + Duration::from_millis(5), t0, false, 1200);
        assert!(cc.window() < before);
        // The ACK of packet 10 arrives while 30 is the largest acknowledged.
        let out = r.on_ack(SpaceId::Data, 30, [10..=10].into_iter(), &mut cc);
        assert_eq!(out.spurious, 1);
        assert_eq!(out.thresholds, Some((21, 10)));
        assert!(out.undone);
        assert_eq!(cc.window(), before, "the reduction was undone");
        assert_eq!((r.packet_threshold(), r.time_eighths()), (21, 10));
    }

    #[test]
    fn real_losses_keep_the_reduction_and_thresholds_are_bounded() {
        let mut r = ReorderState::default();
        let mut cc: Box<dyn CongestionController> = Box::new(NewReno::new(1200));
        let t0 = Instant::now();
        r.on_reduction(cc.clone_box());
        r.on_lost(SpaceId::Data, 5);
        r.on_lost(SpaceId::Data, 6);
        cc.on_congestion_event(t0, t0, false, 2400);
        let reduced = cc.window();
        // Only 5 comes back: 6 was really lost, the reduction stays.
        let out = r.on_ack(SpaceId::Data, 9, [5..=5].into_iter(), &mut cc);
        assert_eq!(out.spurious, 1);
        assert!(!out.undone);
        assert_eq!(cc.window(), reduced);
        for i in 0..20u64 {
            r.on_lost(SpaceId::Data, 100 + i);
            r.on_ack(SpaceId::Data, 100_000, [100 + i..=100 + i].into_iter(), &mut cc);
        }
        assert_eq!(r.packet_threshold(), MAX_PACKET_THRESHOLD);
        assert_eq!(r.time_eighths(), MAX_TIME_EIGHTHS);
        // Another space's ACK does not touch Data's losses.
        r.on_lost(SpaceId::Data, 500);
        assert_eq!(r.on_ack(SpaceId::Handshake, 600, [500..=500].into_iter(), &mut cc).spurious, 0);
    }

    /// Many ranges against many remembered losses (out of order too): the
    /// losses inside the ranges, and only those, count as spurious.
    #[test]
    fn ranges_find_exactly_the_losses_they_cover() {
        let mut r = ReorderState::default();
        let mut cc: Box<dyn CongestionController> = Box::new(NewReno::new(1200));
        // Losses 1, 3, 5, ... 999, declared in a scrambled order.
        let mut lost: Vec<u64> = (0..500).map(|i| 2 * i + 1).collect();
        lost.sort_by_key(|&pn| (pn * 7919) % 1009);
        for &pn in &lost {
            r.on_lost(SpaceId::Data, pn);
        }
        r.on_lost(SpaceId::Data, 3); // a duplicate is remembered once
                                     // Descending ranges [990, 999], [900, 909], ..., [0, 9].
        let ranges: Vec<RangeInclusive<u64>> = (0..100u64).rev().filter(|i| i % 9 == 0).map(|i| 10 * i..=10 * i + 9).collect();
        let covered = lost.iter().filter(|&&pn| ranges.iter().any(|x| x.contains(&pn))).count() as u32;
        let out = r.on_ack(SpaceId::Data, 2000, ranges.iter().cloned(), &mut cc);
        assert_eq!(out.spurious, covered);
        // The same ACK again finds nothing left; the other losses remain.
        assert_eq!(r.on_ack(SpaceId::Data, 2000, ranges.iter().cloned(), &mut cc).spurious, 0);
        assert_eq!(r.on_ack(SpaceId::Data, 2000, [0..=1000].into_iter(), &mut cc).spurious, 500 - covered);
    }
}
