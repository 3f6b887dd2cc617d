//! A set of disjoint u64 ranges.
//!
//! Used for stream reassembly (which byte offsets have arrived), the send
//! side's acknowledged and lost byte ranges, and the ACK tracker (which packet
//! numbers were received, RFC 9000 §19.3).
//!
//! Ranges are **half-open** (`start..end`, `end` excluded): offsets and lengths
//! compose without `+ 1`/`- 1` arithmetic, and every quantity this crate tracks
//! (stream offsets, packet numbers) is below 2^62, so `end` never needs to
//! represent `u64::MAX + 1`. The value `u64::MAX` itself cannot be stored. An ACK
//! frame encoder turns `start..end` into its inclusive form with `end - 1`.
//!
//! The ranges are kept sorted, disjoint and non-adjacent (`0..3` and `3..5` are
//! merged into `0..5`), so the set has exactly one representation.
//!
//! Storage choice: a sorted array searched with binary search, not a
//! `BTreeMap`. Thousands of these sets exist (a few per stream plus one per
//! packet number space), nearly all with one or two ranges; a B-tree would
//! allocate a node for every non-empty set and chase pointers for every lookup.
//! The array keeps up to [`INLINE_RANGES`] ranges inline (no allocation at
//! all) and spills to a `Vec` beyond that. Inserting into the middle of a large
//! set shifts elements, but the set size is capped by the owner
//! (`max_ranges`), so the shift is bounded and cache-friendly.

use core::fmt;
use core::ops::Range;

/// Ranges stored without a heap allocation.
pub const INLINE_RANGES: usize = 2;

/// `(start, end)`, half-open. A tuple rather than `Range<u64>` because it is
/// `Copy`, which keeps the inline storage simple.
type Pair = (u64, u64);

/// An insert was refused because it would have created a new range beyond the
/// set's `max_ranges`. The set is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeSetFull;

impl fmt::Display for RangeSetFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("range set is at its maximum number of ranges")
    }
}

impl std::error::Error for RangeSetFull {}

/// Small-vector storage: inline for up to [`INLINE_RANGES`] ranges.
#[derive(Clone)]
enum Storage {
    Inline { len: u8, items: [Pair; INLINE_RANGES] },
    Heap(Vec<Pair>),
}

impl Storage {
    const EMPTY: Storage = Storage::Inline { len: 0, items: [(0, 0); INLINE_RANGES] };

    fn as_slice(&self) -> &[Pair] {
        match self {
            Storage::Inline { len, items } => items.get(..usize::from(*len)).unwrap_or(&[]),
            Storage::Heap(v) => v,
        }
    }

    fn as_mut_slice(&mut self) -> &mut [Pair] {
        match self {
            Storage::Inline { len, items } => items.get_mut(..usize::from(*len)).unwrap_or(&mut []),
            Storage::Heap(v) => v,
        }
    }

    /// Replaces the elements `lo..hi` by the single element `item`
    /// (`lo == hi` inserts). Out-of-range indices are clamped, so a logic
    /// error can corrupt order but never panic.
    fn splice_one(&mut self, lo: usize, hi: usize, item: Pair) {
        match self {
            Storage::Heap(v) => {
                let hi = hi.min(v.len());
                let lo = lo.min(hi);
                v.splice(lo..hi, core::iter::once(item));
            }
            Storage::Inline { len, items } => {
                let old = usize::from(*len).min(INLINE_RANGES);
                let hi = hi.min(old);
                let lo = lo.min(hi);
                let kept_head = items.iter().take(lo);
                let kept_tail = items.iter().take(old).skip(hi);
                let mut buf = [(0u64, 0u64); INLINE_RANGES + 1];
                let mut n = 0;
                for (slot, p) in buf.iter_mut().zip(kept_head.chain(core::iter::once(&item)).chain(kept_tail)) {
                    *slot = *p;
                    n += 1;
                }
                if n <= INLINE_RANGES {
                    for (dst, src) in items.iter_mut().zip(buf.iter()) {
                        *dst = *src;
                    }
                    // n <= INLINE_RANGES, which fits in u8.
                    *len = n as u8;
                } else {
                    // Spill: room to grow a little before reallocating.
                    let mut v = Vec::with_capacity(2 * INLINE_RANGES + 2);
                    v.extend_from_slice(buf.get(..n).unwrap_or(&[]));
                    *self = Storage::Heap(v);
                }
            }
        }
    }

    /// Removes the first `n` elements.
    fn remove_front(&mut self, n: usize) {
        match self {
            Storage::Heap(v) => {
                let n = n.min(v.len());
                v.drain(..n);
                // Give the allocation back once the set is small again.
                if v.len() <= 1 {
                    let mut inline = Storage::EMPTY;
                    if let Some(p) = v.first() {
                        inline.splice_one(0, 0, *p);
                    }
                    *self = inline;
                }
            }
            Storage::Inline { len, items } => {
                let old = usize::from(*len).min(INLINE_RANGES);
                let n = n.min(old);
                items.copy_within(n..old, 0);
                *len = (old - n) as u8;
            }
        }
    }
}

/// A sorted set of disjoint, non-adjacent half-open `u64` ranges with a hard cap
/// on the number of ranges.
#[derive(Clone)]
pub struct RangeSet {
    ranges: Storage,
    max_ranges: usize,
}

impl RangeSet {
    /// An empty set that will hold at most `max_ranges` disjoint ranges.
    /// Owners fed by the network pick a small cap; owners whose range count is
    /// bounded by their own behaviour may pass `usize::MAX`.
    pub const fn new(max_ranges: usize) -> Self {
        Self { ranges: Storage::EMPTY, max_ranges }
    }

    pub fn max_ranges(&self) -> usize {
        self.max_ranges
    }

    /// Number of disjoint ranges (not the number of values).
    pub fn len(&self) -> usize {
        self.ranges.as_slice().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&mut self) {
        self.ranges = Storage::EMPTY;
    }

    /// Where `range` would go: `lo..hi` are the existing ranges it overlaps or
    /// touches (merging them all into one).
    fn locate(&self, start: u64, end: u64) -> (usize, usize) {
        let s = self.ranges.as_slice();
        // First range that ends at or after `start` (touching counts).
        let lo = s.partition_point(|r| r.1 < start);
        // One past the last range that starts at or before `end`. Every range
        // before `lo` ends before `start`, hence also starts before `end`, so
        // hi >= lo.
        let hi = s.partition_point(|r| r.0 <= end);
        (lo, hi.max(lo))
    }

    /// Whether [`insert`](Self::insert) of `range` would succeed.
    pub fn can_insert(&self, range: Range<u64>) -> bool {
        if range.start >= range.end {
            return true;
        }
        let (lo, hi) = self.locate(range.start, range.end);
        lo != hi || self.len() < self.max_ranges
    }

    /// Adds `range`. Returns `Ok(true)` if at least one value was not already
    /// present, `Ok(false)` if the set already covered it (or it was empty), and
    /// `Err(RangeSetFull)` without changing anything if it would need a new
    /// range beyond `max_ranges`. Merging never needs a new range, so an insert
    /// that overlaps or touches an existing range always succeeds.
    pub fn insert(&mut self, range: Range<u64>) -> Result<bool, RangeSetFull> {
        let (start, end) = (range.start, range.end);
        if start >= end {
            return Ok(false);
        }
        let (lo, hi) = self.locate(start, end);
        let s = self.ranges.as_slice();
        if lo == hi {
            if s.len() >= self.max_ranges {
                return Err(RangeSetFull);
            }
            self.ranges.splice_one(lo, lo, (start, end));
            return Ok(true);
        }
        let (Some(&first), Some(&last)) = (s.get(lo), s.get(hi - 1)) else {
            return Ok(false);
        };
        if hi - lo == 1 && first.0 <= start && first.1 >= end {
            return Ok(false);
        }
        let merged = (start.min(first.0), end.max(last.1));
        if hi - lo == 1 {
            // The common case (in-order stream data, the next packet number
            // received): one range grows. Rewrite it where it lies rather
            // than rebuild the storage around it.
            if let Some(slot) = self.ranges.as_mut_slice().get_mut(lo) {
                *slot = merged;
            }
        } else {
            self.ranges.splice_one(lo, hi, merged);
        }
        Ok(true)
    }

    /// Adds the single value `v` (an ACK tracker's packet number). `u64::MAX`
    /// cannot be represented and is ignored (`Ok(false)`).
    pub fn insert_one(&mut self, v: u64) -> Result<bool, RangeSetFull> {
        match v.checked_add(1) {
            Some(end) => self.insert(v..end),
            None => Ok(false),
        }
    }

    pub fn contains(&self, v: u64) -> bool {
        let s = self.ranges.as_slice();
        let idx = s.partition_point(|r| r.1 <= v);
        s.get(idx).is_some_and(|r| r.0 <= v)
    }

    /// Whether every value of `range` is in the set (true for an empty range).
    pub fn contains_range(&self, range: Range<u64>) -> bool {
        range.start >= range.end || self.first_gap_above(range.start) >= range.end
    }

    /// The smallest value `>= start` that is *not* in the set. For reassembly:
    /// `first_gap_above(read_offset)` is the end of the contiguous data that
    /// can be delivered.
    pub fn first_gap_above(&self, start: u64) -> u64 {
        let s = self.ranges.as_slice();
        let idx = s.partition_point(|r| r.1 <= start);
        match s.get(idx) {
            Some(r) if r.0 <= start => r.1,
            _ => start,
        }
    }

    /// The sub-ranges of `range` that are not in the set, ascending.
    pub fn gaps(&self, range: Range<u64>) -> Gaps<'_> {
        let s = self.ranges.as_slice();
        let idx = s.partition_point(|r| r.1 <= range.start);
        Gaps { ranges: s.get(idx..).unwrap_or(&[]), cursor: range.start, end: range.end }
    }

    /// Removes every value below `v` (the lowest range may be shortened).
    pub fn remove_below(&mut self, v: u64) {
        let idx = self.ranges.as_slice().partition_point(|r| r.1 <= v);
        if idx > 0 {
            self.ranges.remove_front(idx);
        }
        if let Some(first) = self.ranges.as_mut_slice().first_mut() {
            if first.0 < v {
                first.0 = v;
            }
        }
    }

    /// Removes and returns the lowest range. The ACK tracker drops its oldest
    /// range this way when the set is full.
    pub fn pop_min(&mut self) -> Option<Range<u64>> {
        let first = *self.ranges.as_slice().first()?;
        self.ranges.remove_front(1);
        Some(first.0..first.1)
    }

    /// The lowest range.
    pub fn first(&self) -> Option<Range<u64>> {
        self.ranges.as_slice().first().map(|r| r.0..r.1)
    }

    /// The highest range.
    pub fn last(&self) -> Option<Range<u64>> {
        self.ranges.as_slice().last().map(|r| r.0..r.1)
    }

    /// The smallest value in the set.
    pub fn min(&self) -> Option<u64> {
        self.ranges.as_slice().first().map(|r| r.0)
    }

    /// The largest value in the set.
    pub fn max(&self) -> Option<u64> {
        // Stored ranges are never empty, so end >= 1.
        self.ranges.as_slice().last().map(|r| r.1.saturating_sub(1))
    }

    /// Ranges in ascending order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Range<u64>> + ExactSizeIterator + Clone + '_ {
        self.ranges.as_slice().iter().map(|r| r.0..r.1)
    }

    /// Ranges in descending order, the order an ACK frame lists them in
    /// (RFC 9000 §19.3.1).
    pub fn iter_rev(&self) -> impl ExactSizeIterator<Item = Range<u64>> + Clone + '_ {
        self.iter().rev()
    }
}

impl Default for RangeSet {
    /// Unbounded; for owners whose range count is bounded by their own actions.
    fn default() -> Self {
        Self::new(usize::MAX)
    }
}

impl PartialEq for RangeSet {
    /// Equal when they hold the same values (the caps are not compared).
    fn eq(&self, other: &Self) -> bool {
        self.ranges.as_slice() == other.ranges.as_slice()
    }
}

impl Eq for RangeSet {}

impl fmt::Debug for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// Iterator over the uncovered parts of a range; see [`RangeSet::gaps`].
#[derive(Debug, Clone)]
pub struct Gaps<'a> {
    /// Remaining stored ranges, none of which ends at or before the first
    /// value the iterator has not yet decided on.
    ranges: &'a [Pair],
    cursor: u64,
    end: u64,
}

impl Iterator for Gaps<'_> {
    type Item = Range<u64>;

    fn next(&mut self) -> Option<Range<u64>> {
        while self.cursor < self.end {
            let Some((&(rs, re), rest)) = self.ranges.split_first() else {
                let gap = self.cursor..self.end;
                self.cursor = self.end;
                return Some(gap);
            };
            if rs <= self.cursor {
                // Covered up to `re`.
                self.cursor = self.cursor.max(re);
                self.ranges = rest;
                continue;
            }
            let gap_end = rs.min(self.end);
            let gap = self.cursor..gap_end;
            self.cursor = re.max(gap_end);
            self.ranges = rest;
            return Some(gap);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn set(ranges: &[Range<u64>]) -> RangeSet {
        let mut s = RangeSet::new(usize::MAX);
        for r in ranges {
            s.insert(r.clone()).unwrap();
        }
        s
    }

    fn ranges(s: &RangeSet) -> Vec<Range<u64>> {
        s.iter().collect()
    }

    #[test]
    fn insert_merges_overlapping_and_adjacent() {
        let mut s = RangeSet::new(8);
        assert!(s.insert(10..20).unwrap());
        assert!(s.insert(30..40).unwrap());
        assert_eq!(ranges(&s), vec![10..20, 30..40]);
        // Adjacent on the left: merged.
        assert!(s.insert(5..10).unwrap());
        assert_eq!(ranges(&s), vec![5..20, 30..40]);
        // Bridges the gap exactly: one range.
        assert!(s.insert(20..30).unwrap());
        assert_eq!(ranges(&s), vec![5..40]);
        assert_eq!(s.len(), 1);
        // Already covered.
        assert!(!s.insert(7..39).unwrap());
        assert!(!s.insert(5..40).unwrap());
        // Empty ranges are no-ops.
        assert!(!s.insert(50..50).unwrap());
        assert_eq!(ranges(&s), vec![5..40]);
    }

    #[test]
    fn growing_one_range_rewrites_it_in_place_inline_and_on_the_heap() {
        // Inline (two ranges) and spilled (five): growing the first, a middle
        // and the last range, on either side, leaves the others untouched.
        for base in [vec![10..20, 40..50], vec![10..20, 40..50, 70..80, 100..110, 130..140]] {
            let mut s = set(&base);
            let mut want = base.clone();
            for (ins, idx, grown) in [(20..25, 0, 10..25), (5..12, 0, 5..25), (35..40, 1, 35..50), (48..60, 1, 35..60)] {
                assert!(s.insert(ins).unwrap());
                want[idx] = grown;
                assert_eq!(ranges(&s), want);
            }
            let last = want.len() - 1;
            let end = want[last].end;
            assert!(s.insert(end..end + 7).unwrap());
            want[last].end = end + 7;
            assert_eq!(ranges(&s), want);
            assert_eq!(s.len(), want.len());
        }
    }

    #[test]
    fn insert_spanning_many_ranges() {
        let mut s = set(&[0..2, 4..6, 8..10, 12..14, 20..22]);
        assert_eq!(s.len(), 5);
        assert!(s.insert(1..13).unwrap());
        assert_eq!(ranges(&s), vec![0..14, 20..22]);
        assert!(s.insert(15..16).unwrap());
        assert_eq!(ranges(&s), vec![0..14, 15..16, 20..22]);
        assert!(s.insert(14..15).unwrap());
        assert_eq!(ranges(&s), vec![0..16, 20..22]);
    }

    #[test]
    fn cap_refuses_new_range_but_allows_merges() {
        let mut s = RangeSet::new(2);
        s.insert(0..5).unwrap();
        s.insert(10..15).unwrap();
        assert!(!s.can_insert(20..25));
        assert_eq!(s.insert(20..25), Err(RangeSetFull));
        assert_eq!(ranges(&s), vec![0..5, 10..15], "unchanged after refusal");
        // Touching an existing range needs no new range.
        assert!(s.can_insert(15..25));
        assert!(s.insert(15..25).unwrap());
        assert!(s.insert(5..10).unwrap());
        assert_eq!(ranges(&s), vec![0..25]);
        assert!(s.insert(30..31).unwrap());
        assert_eq!(s.len(), 2);
        // The ACK tracker's strategy: drop the lowest range, then insert.
        assert_eq!(s.insert(40..41), Err(RangeSetFull));
        assert_eq!(s.pop_min(), Some(0..25));
        assert!(s.insert(40..41).unwrap());
        assert_eq!(ranges(&s), vec![30..31, 40..41]);
    }

    #[test]
    fn zero_cap_holds_nothing() {
        let mut s = RangeSet::new(0);
        assert_eq!(s.insert(1..2), Err(RangeSetFull));
        assert!(s.is_empty());
    }

    #[test]
    fn contains_min_max() {
        let s = set(&[3..5, 9..10]);
        assert!(!s.contains(2));
        assert!(s.contains(3));
        assert!(s.contains(4));
        assert!(!s.contains(5));
        assert!(s.contains(9));
        assert!(!s.contains(10));
        assert_eq!(s.min(), Some(3));
        assert_eq!(s.max(), Some(9));
        assert_eq!(s.first(), Some(3..5));
        assert_eq!(s.last(), Some(9..10));
        assert!(s.contains_range(3..5));
        assert!(!s.contains_range(3..6));
        assert!(s.contains_range(7..7));
        let e = RangeSet::new(4);
        assert_eq!(e.min(), None);
        assert_eq!(e.max(), None);
        assert!(!e.contains(0));
    }

    #[test]
    fn remove_below_trims_and_drops() {
        let mut s = set(&[0..5, 10..20, 30..40, 50..60]);
        s.remove_below(3);
        assert_eq!(ranges(&s), vec![3..5, 10..20, 30..40, 50..60]);
        s.remove_below(5);
        assert_eq!(ranges(&s), vec![10..20, 30..40, 50..60]);
        s.remove_below(35);
        assert_eq!(ranges(&s), vec![35..40, 50..60]);
        s.remove_below(100);
        assert!(s.is_empty());
        assert_eq!(s.min(), None);
    }

    #[test]
    fn iteration_orders() {
        let s = set(&[20..21, 0..1, 10..12]);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0..1, 10..12, 20..21]);
        assert_eq!(s.iter_rev().collect::<Vec<_>>(), vec![20..21, 10..12, 0..1]);
        assert_eq!(s.iter().len(), 3);
    }

    #[test]
    fn first_gap_and_gaps() {
        let s = set(&[0..5, 8..10, 12..15]);
        assert_eq!(s.first_gap_above(0), 5);
        assert_eq!(s.first_gap_above(4), 5);
        assert_eq!(s.first_gap_above(5), 5);
        assert_eq!(s.first_gap_above(8), 10);
        assert_eq!(s.first_gap_above(100), 100);
        assert_eq!(s.gaps(0..20).collect::<Vec<_>>(), vec![5..8, 10..12, 15..20]);
        assert_eq!(s.gaps(3..13).collect::<Vec<_>>(), vec![5..8, 10..12]);
        assert_eq!(s.gaps(9..11).collect::<Vec<_>>(), vec![10..11]);
        assert_eq!(s.gaps(0..5).count(), 0);
        assert_eq!(s.gaps(6..7).collect::<Vec<_>>(), vec![6..7]);
        assert_eq!(s.gaps(7..7).count(), 0);
        assert_eq!(RangeSet::new(1).gaps(2..4).collect::<Vec<_>>(), vec![2..4]);
    }

    #[test]
    fn spill_to_heap_and_back() {
        let mut s = RangeSet::new(100);
        for i in 0..10u64 {
            s.insert(i * 10..i * 10 + 1).unwrap();
        }
        assert!(matches!(s.ranges, Storage::Heap(_)));
        assert_eq!(s.len(), 10);
        assert_eq!(s.iter().nth(9), Some(90..91));
        s.remove_below(90);
        assert!(matches!(s.ranges, Storage::Inline { .. }), "small again: inline");
        assert_eq!(ranges(&s), vec![90..91]);
        // Inline middle insertion and replacement.
        let mut t = RangeSet::new(10);
        t.insert(10..11).unwrap();
        t.insert(0..1).unwrap();
        assert_eq!(ranges(&t), vec![0..1, 10..11]);
        t.insert(5..6).unwrap();
        assert_eq!(ranges(&t), vec![0..1, 5..6, 10..11]);
        assert_eq!(t.pop_min(), Some(0..1));
        assert_eq!(t.pop_min(), Some(5..6));
        assert_eq!(t.pop_min(), Some(10..11));
        assert_eq!(t.pop_min(), None);
    }

    #[test]
    fn insert_one_and_extremes() {
        let mut s = RangeSet::new(4);
        assert!(s.insert_one(7).unwrap());
        assert!(s.insert_one(8).unwrap());
        assert!(!s.insert_one(8).unwrap());
        assert_eq!(ranges(&s), vec![7..9]);
        assert!(!s.insert_one(u64::MAX).unwrap());
        assert!(s.insert(u64::MAX - 1..u64::MAX).unwrap());
        assert_eq!(s.max(), Some(u64::MAX - 1));
        assert_eq!(s.first_gap_above(u64::MAX - 1), u64::MAX);
    }

    #[test]
    fn equality_ignores_storage() {
        let mut a = RangeSet::new(100);
        for i in 0..5u64 {
            a.insert(i * 3..i * 3 + 1).unwrap();
        }
        a.remove_below(12);
        let mut b = RangeSet::new(1);
        b.insert(12..13).unwrap();
        assert_eq!(a, b);
        assert_eq!(format!("{b:?}"), "{12..13}");
    }
}
