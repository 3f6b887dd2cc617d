//! One timer heap per endpoint for all its connections: no OS timer per
//! connection. Entries are never removed; a stale entry (its connection's
//! deadline changed since) is skipped when popped.
//!
//! The live deadline of each connection sits in a vector indexed by its
//! handle (handles are dense slab indices), so `set`, the check of a popped
//! entry and `remove` are an index, not a hash lookup: `set` runs for every
//! connection on every flush.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use super::ConnectionHandle;

#[derive(Debug, Default)]
pub(crate) struct TimerHeap {
    heap: BinaryHeap<Reverse<(Instant, usize)>>,
    /// `current[h]`: the live deadline of connection `h`.
    current: Vec<Option<Instant>>,
    /// How many entries of `current` are `Some`.
    live: usize,
    /// Spare heap storage for rebuilds (no allocation per rebuild).
    spare: Vec<Reverse<(Instant, usize)>>,
}

impl TimerHeap {
    fn get(&self, h: usize) -> Option<Instant> {
        self.current.get(h).copied().flatten()
    }

    /// Sets (or clears) the deadline of `h`.
    pub(crate) fn set(&mut self, h: ConnectionHandle, deadline: Option<Instant>) {
        if h.0 >= self.current.len() {
            if deadline.is_none() {
                return;
            }
            self.current.resize(h.0 + 1, None);
        }
        let Some(slot) = self.current.get_mut(h.0) else { return };
        let old = std::mem::replace(slot, deadline);
        match (old, deadline) {
            (None, Some(_)) => self.live += 1,
            (Some(_), None) => self.live -= 1,
            _ => {}
        }
        if let Some(t) = deadline {
            if old != Some(t) {
                self.heap.push(Reverse((t, h.0)));
            }
        }
        // Bound the garbage: rebuild when stale entries dominate.
        if self.heap.len() > 64 && self.heap.len() > 4 * self.live {
            let mut v = std::mem::take(&mut self.spare);
            v.clear();
            v.extend(self.current.iter().enumerate().filter_map(|(h, t)| t.map(|t| Reverse((t, h)))));
            let old = std::mem::replace(&mut self.heap, BinaryHeap::from(v));
            self.spare = old.into_vec();
        }
    }

    /// The earliest live deadline.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((t, h))) = self.heap.peek().copied() {
            if self.get(h) == Some(t) {
                return Some(t);
            }
            self.heap.pop();
        }
        None
    }

    /// Pops a connection whose deadline is at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<ConnectionHandle> {
        loop {
            let Reverse((t, h)) = *self.heap.peek()?;
            if t > now {
                return None;
            }
            self.heap.pop();
            if self.get(h) == Some(t) {
                self.set(ConnectionHandle(h), None);
                return Some(ConnectionHandle(h));
            }
        }
    }

    pub(crate) fn remove(&mut self, h: ConnectionHandle) {
        self.set(h, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stale_entries_are_skipped() {
        let t0 = Instant::now();
        let mut t = TimerHeap::default();
        t.set(ConnectionHandle(1), Some(t0 + Duration::from_millis(5)));
        t.set(ConnectionHandle(2), Some(t0 + Duration::from_millis(3)));
        t.set(ConnectionHandle(1), Some(t0 + Duration::from_millis(1)));
        assert_eq!(t.next_deadline(), Some(t0 + Duration::from_millis(1)));
        assert_eq!(t.pop_due(t0 + Duration::from_millis(4)), Some(ConnectionHandle(1)));
        assert_eq!(t.pop_due(t0 + Duration::from_millis(4)), Some(ConnectionHandle(2)));
        // The stale 5 ms entry of connection 1 never fires.
        assert_eq!(t.pop_due(t0 + Duration::from_millis(10)), None);
        t.set(ConnectionHandle(3), Some(t0));
        t.remove(ConnectionHandle(3));
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn rebuild_keeps_live_deadlines_only() {
        let t0 = Instant::now();
        let mut t = TimerHeap::default();
        // Many moves of two deadlines: the heap is rebuilt on the way.
        for i in 0..1000u64 {
            t.set(ConnectionHandle(0), Some(t0 + Duration::from_micros(2000 + i)));
            t.set(ConnectionHandle(7), Some(t0 + Duration::from_micros(5000 - i)));
        }
        assert!(t.heap.len() <= 4 * 2 + 64, "heap {} entries", t.heap.len());
        assert_eq!(t.next_deadline(), Some(t0 + Duration::from_micros(2999)));
        let far = t0 + Duration::from_secs(1);
        assert_eq!(t.pop_due(far), Some(ConnectionHandle(0)));
        assert_eq!(t.pop_due(far), Some(ConnectionHandle(7)));
        assert_eq!(t.pop_due(far), None);
        assert_eq!(t.next_deadline(), None);
    }
}
