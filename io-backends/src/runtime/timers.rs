//! One timer heap per worker for all its connections: no OS timer per
//! connection. Entries are never removed; a stale entry (its connection's
//! deadline changed since) is skipped when popped.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

use quic_core::endpoint::ConnectionHandle;

#[derive(Debug, Default)]
pub struct TimerHeap {
    heap: BinaryHeap<Reverse<(Instant, usize)>>,
    current: HashMap<usize, Instant>,
}

impl TimerHeap {
    /// Sets (or clears) the deadline of `h`.
    pub fn set(&mut self, h: ConnectionHandle, deadline: Option<Instant>) {
        match deadline {
            Some(t) => {
                if self.current.insert(h.0, t) != Some(t) {
                    self.heap.push(Reverse((t, h.0)));
                }
            }
            None => {
                self.current.remove(&h.0);
            }
        }
        // Bound the garbage: rebuild when stale entries dominate.
        if self.heap.len() > 64 && self.heap.len() > 4 * self.current.len() {
            self.heap = self.current.iter().map(|(h, t)| Reverse((*t, *h))).collect();
        }
    }

    /// The earliest live deadline.
    pub fn next(&mut self) -> Option<Instant> {
        while let Some(Reverse((t, h))) = self.heap.peek().copied() {
            if self.current.get(&h) == Some(&t) {
                return Some(t);
            }
            self.heap.pop();
        }
        None
    }

    /// Pops a connection whose deadline is at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<ConnectionHandle> {
        loop {
            let Reverse((t, h)) = *self.heap.peek()?;
            if t > now {
                return None;
            }
            self.heap.pop();
            if self.current.get(&h) == Some(&t) {
                self.current.remove(&h);
                return Some(ConnectionHandle(h));
            }
        }
    }

    pub fn remove(&mut self, h: ConnectionHandle) {
        self.current.remove(&h.0);
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
        assert_eq!(t.next(), Some(t0 + Duration::from_millis(1)));
        assert_eq!(t.pop_due(t0 + Duration::from_millis(4)), Some(ConnectionHandle(1)));
        assert_eq!(t.pop_due(t0 + Duration::from_millis(4)), Some(ConnectionHandle(2)));
        // The stale 5 ms entry of connection 1 never fires.
        assert_eq!(t.pop_due(t0 + Duration::from_millis(10)), None);
        t.set(ConnectionHandle(3), Some(t0));
        t.remove(ConnectionHandle(3));
        assert_eq!(t.next(), None);
    }
}
