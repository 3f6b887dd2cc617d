//! Which parked Fiber runs next: a ready queue fed by events, and a timer
//! heap for the deadlines of waits that have one.
//!
//! A Fiber that waits is *parked* here under a [`WaiterId`] and registered
//! with what it waits for (a session's request list, a stream's body or
//! send window: see `core.rs`). When an event makes that possible, the
//! core *wakes* the ids registered there: the Fiber moves to the ready
//! queue. A loop turn resumes the ready queue and the Fibers whose
//! deadline passed. Nothing here scans the Fibers parked: a turn costs
//! what it wakes.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Instant;

use ext_php_rs::types::Zval;

/// A parked Fiber (index and generation: an id stays unique after its
/// slot is reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WaiterId {
    index: u32,
    gen: u32,
}

#[derive(Debug, Default)]
struct Slot {
    gen: u32,
    fiber: Option<Zval>,
    deadline: Option<Instant>,
}

/// Parked Fibers, the ready queue and the deadlines.
#[derive(Debug, Default)]
pub struct Scheduler {
    slots: Vec<Slot>,
    free: Vec<u32>,
    parked: usize,
    ready: VecDeque<Zval>,
    /// Deadlines of parked Fibers; entries of Fibers woken earlier stay
    /// until they come up (or a compaction drops them).
    timers: BinaryHeap<Reverse<(Instant, WaiterId)>>,
    with_deadline: usize,
    /// Work done (wakes, timer entries looked at), for the per-turn cost
    /// check in `Server::stats()`.
    pub visits: u64,
}

impl Scheduler {
    /// Parks `fiber` until woken or `deadline`.
    pub fn park(&mut self, fiber: Zval, deadline: Option<Instant>) -> WaiterId {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot::default());
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.gen = slot.gen.wrapping_add(1);
        slot.fiber = Some(fiber);
        slot.deadline = deadline;
        let id = WaiterId { index, gen: slot.gen };
        self.parked += 1;
        if let Some(d) = deadline {
            self.with_deadline += 1;
            self.timers.push(Reverse((d, id)));
            self.compact_timers();
        }
        id
    }

    /// Moves the Fiber parked as `id` to the ready queue (nothing if it was
    /// woken already).
    pub fn wake(&mut self, id: WaiterId) {
        self.visits += 1;
        let Some(slot) = self.slots.get_mut(id.index as usize) else { return };
        if slot.gen != id.gen {
            return;
        }
        let Some(fiber) = slot.fiber.take() else { return };
        if slot.deadline.take().is_some() {
            self.with_deadline -= 1;
        }
        self.parked -= 1;
        self.free.push(id.index);
        self.ready.push_back(fiber);
    }

    /// Wakes every id in `ids` (emptying it).
    pub fn wake_all(&mut self, ids: &mut Vec<WaiterId>) {
        for id in ids.drain(..) {
            self.wake(id);
        }
    }

    /// Wakes the Fibers whose deadline is `now` or earlier.
    pub fn expire(&mut self, now: Instant) {
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            self.wake(id);
        }
    }

    /// The earliest deadline still pending (maybe of a Fiber woken
    /// already: the loop then wakes up early once, harmlessly).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// The ready Fibers, in the order they became ready.
    pub fn take_ready(&mut self) -> VecDeque<Zval> {
        std::mem::take(&mut self.ready)
    }

    /// Whether `id` is still parked.
    pub fn is_parked(&self, id: WaiterId) -> bool {
        self.slots.get(id.index as usize).is_some_and(|s| s.gen == id.gen && s.fiber.is_some())
    }

    /// Fibers parked (not yet woken).
    pub fn parked(&self) -> usize {
        self.parked
    }

    /// Keeps the heap within a constant factor of the live deadlines.
    fn compact_timers(&mut self) {
        if self.timers.len() <= 2 * self.with_deadline + 64 {
            return;
        }
        let slots = &self.slots;
        let live = |id: &WaiterId| slots.get(id.index as usize).is_some_and(|s| s.gen == id.gen && s.fiber.is_some());
        self.timers = self.timers.drain().filter(|Reverse((_, id))| live(id)).collect();
    }
}
