//! ACK frames (RFC 9000 §19.3) without allocation.
//!
//! A decoded [`AckFrame`] keeps the ACK Range fields as the raw bytes of the
//! packet. They are validated once, at decode time, so that walking them
//! later with [`AckFrame::iter`] can neither fail nor underflow.

use core::fmt;
use core::iter::FusedIterator;
use core::ops::RangeInclusive;

use super::{Fields, FrameType};
use crate::codec::{Reader, Writer};
use crate::error::{BufferTooShort, Error};
use crate::varint;

/// RFC 9000 §19.3.2: the three cumulative ECN counts of an ACK_ECN frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct EcnCounts {
    pub ect0: u64,
    pub ect1: u64,
    pub ce: u64,
}

impl EcnCounts {
    fn encoded_len(&self) -> usize {
        varint::size(self.ect0) + varint::size(self.ect1) + varint::size(self.ce)
    }

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferTooShort> {
        w.varint(self.ect0)?;
        w.varint(self.ect1)?;
        w.varint(self.ce)
    }
}

/// A decoded ACK or ACK_ECN frame, borrowing its ACK Range fields.
///
/// Only [`AckFrame`]'s decoder builds one, which is what makes the range
/// arithmetic in [`AckRangeIter`] safe. Equality compares what the frame
/// acknowledges (largest, delay, ranges, ECN counts), not how the varints
/// were spelled.
#[derive(Clone, Copy)]
pub struct AckFrame<'a> {
    largest: u64,
    ack_delay: u64,
    first_range: u64,
    range_count: u64,
    /// The `range_count` (Gap, ACK Range Length) pairs exactly as received.
    ranges: &'a [u8],
    smallest: u64,
    ecn: Option<EcnCounts>,
}

impl<'a> AckFrame<'a> {
    /// Largest Acknowledged.
    pub fn largest(&self) -> u64 {
        self.largest
    }

    /// The ACK Delay field as sent: the caller scales it by
    /// 2^ack_delay_exponent of the peer (RFC 9000 §19.3).
    pub fn ack_delay(&self) -> u64 {
        self.ack_delay
    }

    /// The packet numbers acknowledged by the First ACK Range.
    pub fn first_range(&self) -> RangeInclusive<u64> {
        // Checked at decode time: first_range <= largest.
        self.largest.saturating_sub(self.first_range)..=self.largest
    }

    /// The ACK Range Count field: ranges after the first one.
    pub fn range_count(&self) -> u64 {
        self.range_count
    }

    /// The smallest packet number this frame acknowledges.
    pub fn smallest(&self) -> u64 {
        self.smallest
    }

    /// ECN counts, present for type 0x03 only.
    pub fn ecn(&self) -> Option<EcnCounts> {
        self.ecn
    }

    /// ACK (0x02) or ACK_ECN (0x03).
    pub fn frame_type(&self) -> FrameType {
        if self.ecn.is_some() {
            FrameType::ACK_ECN
        } else {
            FrameType::ACK
        }
    }

    /// The acknowledged ranges, highest first.
    pub fn iter(&self) -> AckRangeIter<'a> {
        AckRangeIter { next: Some(self.first_range()), r: Reader::new(self.ranges), remaining: self.range_count }
    }

    /// Reads the fields after the Frame Type and checks every range
    /// (RFC 9000 §19.3.1: a computed packet number below zero is a
    /// FRAME_ENCODING_ERROR). The loop consumes at least two bytes per
    /// range, so an absurd ACK Range Count ends in a truncation error, not a
    /// long loop.
    pub(super) fn decode_fields(ty: FrameType, f: &mut Fields<'_, 'a>) -> Result<Self, Error> {
        let largest = f.varint()?;
        let ack_delay = f.varint()?;
        let range_count = f.varint()?;
        let first_range = f.varint()?;
        let mut smallest = largest.checked_sub(first_range).ok_or_else(|| f.error("ACK first range below 0"))?;
        let ranges_start = f.position();
        let ranges_input = f.peek_rest();
        for _ in 0..range_count {
            let gap = f.varint()?;
            let len = f.varint()?;
            // largest = previous_smallest - gap - 2; smallest = largest - len.
            let range_largest = smallest.checked_sub(gap).and_then(|v| v.checked_sub(2)).ok_or_else(|| f.error("ACK gap below 0"))?;
            smallest = range_largest.checked_sub(len).ok_or_else(|| f.error("ACK range below 0"))?;
        }
        let ranges = ranges_input.get(..f.position() - ranges_start).ok_or_else(|| f.truncated())?;
        let ecn = if ty == FrameType::ACK_ECN { Some(EcnCounts { ect0: f.varint()?, ect1: f.varint()?, ce: f.varint()? }) } else { None };
        Ok(Self { largest, ack_delay, first_range, range_count, ranges, smallest, ecn })
    }

    /// Exactly the bytes [`AckFrame::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        1 + varint::size(self.largest)
            + varint::size(self.ack_delay)
            + varint::size(self.range_count)
            + varint::size(self.first_range)
            + self.ranges.len()
            + self.ecn.map_or(0, |e| e.encoded_len())
    }

    /// Re-encodes the frame; the ACK Range fields are copied as received
    /// (they were validated), the other fields are written minimally.
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferTooShort> {
        if w.remaining() < self.encoded_len() {
            return Err(BufferTooShort);
        }
        w.varint(self.frame_type().0)?;
        w.varint(self.largest)?;
        w.varint(self.ack_delay)?;
        w.varint(self.range_count)?;
        w.varint(self.first_range)?;
        w.put(self.ranges)?;
        match &self.ecn {
            Some(e) => e.encode(w),
            None => Ok(()),
        }
    }

    /// The size of the ACK frame [`AckFrame::encode_from_ranges`] would write,
    /// or `None` when `ranges` is empty or not descending, disjoint and
    /// non-adjacent.
    pub fn encoded_len_from_ranges<I>(ranges: I, ack_delay: u64, ecn: Option<EcnCounts>) -> Option<usize>
    where
        I: Iterator<Item = RangeInclusive<u64>>,
    {
        Some(Layout::of(ranges)?.frame_len(ack_delay, ecn))
    }

    /// Writes an ACK (or ACK_ECN when `ecn` is given) frame acknowledging
    /// `ranges`, which must be non-empty, highest first, disjoint and not
    /// adjacent (at least one unacknowledged packet between two ranges, as
    /// RFC 9000 §19.3.1's Gap encoding requires). `ack_delay` is the already
    /// scaled field value.
    ///
    /// The iterator is walked twice (once to size the ACK Range Count, once
    /// to write), hence `Clone`. To bound the frame size, pass
    /// `ranges.take(n)`. Ranges that break the rules above are a caller bug,
    /// reported as [`BufferTooShort`] before anything is written, like a
    /// too-small buffer.
    pub fn encode_from_ranges<I>(w: &mut Writer<'_>, ranges: I, ack_delay: u64, ecn: Option<EcnCounts>) -> Result<(), BufferTooShort>
    where
        I: Iterator<Item = RangeInclusive<u64>> + Clone,
    {
        let layout = Layout::of(ranges.clone()).ok_or(BufferTooShort)?;
        if w.remaining() < layout.frame_len(ack_delay, ecn) || layout.largest > varint::VarInt::MAX.into_inner() {
            return Err(BufferTooShort);
        }
        w.varint(if ecn.is_some() { FrameType::ACK_ECN.0 } else { FrameType::ACK.0 })?;
        w.varint(layout.largest)?;
        w.varint(ack_delay)?;
        w.varint(layout.count)?;
        w.varint(layout.first_range)?;
        let mut prev_smallest = layout.first_smallest;
        for r in ranges.skip(1) {
            // Layout::of checked these subtractions.
            let (gap, len) = gap_and_len(prev_smallest, &r).ok_or(BufferTooShort)?;
            w.varint(gap)?;
            w.varint(len)?;
            prev_smallest = *r.start();
        }
        match ecn {
            Some(e) => e.encode(w),
            None => Ok(()),
        }
    }
}

/// The (Gap, ACK Range Length) pair for `r` following a range whose smallest
/// packet number is `prev_smallest` (RFC 9000 §19.3.1):
/// gap = prev_smallest - largest - 2, length = largest - smallest.
fn gap_and_len(prev_smallest: u64, r: &RangeInclusive<u64>) -> Option<(u64, u64)> {
    let gap = prev_smallest.checked_sub(*r.end())?.checked_sub(2)?;
    let len = r.end().checked_sub(*r.start())?;
    Some((gap, len))
}

/// What encoding an ACK frame from ranges needs to know before writing.
struct Layout {
    largest: u64,
    first_range: u64,
    first_smallest: u64,
    count: u64,
    ranges_len: usize,
}

impl Layout {
    fn of<I: Iterator<Item = RangeInclusive<u64>>>(mut ranges: I) -> Option<Self> {
        let first = ranges.next()?;
        let first_range = first.end().checked_sub(*first.start())?;
        let mut layout = Layout { largest: *first.end(), first_range, first_smallest: *first.start(), count: 0, ranges_len: 0 };
        let mut prev_smallest = *first.start();
        for r in ranges {
            let (gap, len) = gap_and_len(prev_smallest, &r)?;
            layout.count += 1;
            layout.ranges_len += varint::size(gap) + varint::size(len);
            prev_smallest = *r.start();
        }
        Some(layout)
    }

    fn frame_len(&self, ack_delay: u64, ecn: Option<EcnCounts>) -> usize {
        1 + varint::size(self.largest)
            + varint::size(ack_delay)
            + varint::size(self.count)
            + varint::size(self.first_range)
            + self.ranges_len
            + ecn.map_or(0, |e| e.encoded_len())
    }
}

/// The ranges of an [`AckFrame`], highest first. Cannot fail: the frame
/// was validated when decoded.
#[derive(Debug, Clone)]
pub struct AckRangeIter<'a> {
    next: Option<RangeInclusive<u64>>,
    r: Reader<'a>,
    remaining: u64,
}

impl Iterator for AckRangeIter<'_> {
    type Item = RangeInclusive<u64>;

    fn next(&mut self) -> Option<RangeInclusive<u64>> {
        let current = self.next.take()?;
        if self.remaining > 0 {
            self.remaining -= 1;
            // Validated at decode time; the checked forms only keep this
            // free of panics, a failure just ends the iteration.
            self.next = (|| {
                let gap = self.r.varint().ok()?;
                let len = self.r.varint().ok()?;
                let largest = current.start().checked_sub(gap)?.checked_sub(2)?;
                Some(largest.checked_sub(len)?..=largest)
            })();
        }
        Some(current)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.next.is_none() {
            return (0, Some(0));
        }
        let n = usize::try_from(self.remaining).unwrap_or(usize::MAX).saturating_add(1);
        (n, Some(n))
    }
}

impl FusedIterator for AckRangeIter<'_> {}

impl PartialEq for AckFrame<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.largest == other.largest
            && self.ack_delay == other.ack_delay
            && self.first_range == other.first_range
            && self.range_count == other.range_count
            && self.ecn == other.ecn
            && (self.ranges == other.ranges || self.iter().eq(other.iter()))
    }
}

impl Eq for AckFrame<'_> {}

impl fmt::Debug for AckFrame<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AckFrame").field("ack_delay", &self.ack_delay).field("ranges", &DebugRanges(self)).field("ecn", &self.ecn).finish()
    }
}

struct DebugRanges<'r, 'a>(&'r AckFrame<'a>);

impl fmt::Debug for DebugRanges<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}
