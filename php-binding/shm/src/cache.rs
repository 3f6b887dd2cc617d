//! `SharedSessionCache`: rustls' server session store over the region.

use core::fmt;
use core::sync::atomic::Ordering;
use std::sync::Arc;

use crate::region::{Locked, ShmRegion, Unavailable};
use crate::stats::{CacheStats, TraceEvent, TraceOp, TraceOutcome};
use crate::table::{Consistency, Corrupt, Found, Table};

/// Called for every cache operation (outside the lock).
pub type TraceHook = Arc<dyn Fn(&TraceEvent) + Send + Sync>;

/// An LRU session store shared by every process that inherited the region.
///
/// Cloning is cheap (an `Arc` to the mapping plus the optional trace hook);
/// every clone, in every forked process, sees the same entries. `take` is
/// atomic across processes: of any number of concurrent `take`s of one key,
/// exactly one returns the value.
#[derive(Clone)]
pub struct SharedSessionCache {
    region: ShmRegion,
    trace: Option<TraceHook>,
}

impl fmt::Debug for SharedSessionCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedSessionCache").field("region", &self.region).field("trace", &self.trace.is_some()).finish()
    }
}

impl SharedSessionCache {
    pub fn new(region: &ShmRegion) -> Self {
        SharedSessionCache { region: region.clone(), trace: None }
    }

    pub fn region(&self) -> &ShmRegion {
        &self.region
    }

    /// Installs a hook called after every get/take/put in this process.
    pub fn set_trace(&mut self, hook: impl Fn(&TraceEvent) + Send + Sync + 'static) {
        self.trace = Some(Arc::new(hook));
    }

    pub fn clear_trace(&mut self) {
        self.trace = None;
    }

    /// Entries the region holds when full.
    pub fn capacity(&self) -> usize {
        self.region.layout().slot_count
    }

    /// Largest `key.len() + value.len()` accepted.
    pub fn max_entry_len(&self) -> usize {
        self.region.layout().max_entry_len
    }

    /// Entries stored now (read without the lock).
    pub fn len(&self) -> usize {
        self.region.entries()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats::read(self.region.stats_block(), self.len() as u64, self.capacity() as u64)
    }

    fn emit(&self, op: TraceOp, outcome: TraceOutcome, key: &[u8]) {
        if let Some(t) = &self.trace {
            t(&TraceEvent::new(op, outcome, key));
        }
    }

    /// Runs `op` on the table; a broken link found on the way triggers a
    /// rebuild from the checksummed slots and one retry.
    fn run<T>(&self, l: &Locked<'_>, op: impl Fn(&Table) -> Result<T, Corrupt>) -> Option<T> {
        match op(&l.table) {
            Ok(v) => Some(v),
            Err(Corrupt) => {
                let s = self.region.stats_block();
                let dropped = l.table.rebuild();
                s.rebuilds.fetch_add(1, Ordering::Relaxed);
                s.corrupt_entries.fetch_add(dropped, Ordering::Relaxed);
                op(&l.table).ok()
            }
        }
    }

    /// Stores `value` under `key` as the most recently used entry, evicting
    /// the least recently used one if the region is full. Refuses (false)
    /// entries larger than a slot, and when the region is unavailable.
    pub fn insert(&self, key: &[u8], value: &[u8]) -> bool {
        let s = self.region.stats_block();
        if key.len() + value.len() > self.max_entry_len() {
            s.oversized.fetch_add(1, Ordering::Relaxed);
            self.emit(TraceOp::Put, TraceOutcome::Oversized, key);
            return false;
        }
        let done = match self.region.locked() {
            Ok(l) => self.run(&l, |t| t.insert(key, value)),
            Err(_) => None,
        };
        let outcome = match done {
            Some(ins) => {
                s.inserts.fetch_add(1, Ordering::Relaxed);
                if ins.replaced {
                    s.replaced.fetch_add(1, Ordering::Relaxed);
                }
                if ins.evicted {
                    s.evictions.fetch_add(1, Ordering::Relaxed);
                }
                TraceOutcome::Stored
            }
            None => TraceOutcome::Unavailable,
        };
        self.emit(TraceOp::Put, outcome, key);
        done.is_some()
    }

    fn find(&self, key: &[u8], take: bool) -> Option<Vec<u8>> {
        let s = self.region.stats_block();
        let found = match self.region.locked() {
            Ok(l) => self.run(&l, |t| t.lookup(key, take)),
            Err(Unavailable::Lock(_)) | Err(Unavailable::HeaderCorrupt(_)) => None,
        };
        let op = if take { TraceOp::Take } else { TraceOp::Get };
        let (outcome, value) = match found {
            Some(Found::Hit(v)) => {
                s.hits.fetch_add(1, Ordering::Relaxed);
                if take {
                    s.takes.fetch_add(1, Ordering::Relaxed);
                }
                (TraceOutcome::Hit, Some(v))
            }
            Some(Found::Miss) => {
                s.misses.fetch_add(1, Ordering::Relaxed);
                (TraceOutcome::Miss, None)
            }
            Some(Found::Dropped) => {
                s.misses.fetch_add(1, Ordering::Relaxed);
                s.corrupt_entries.fetch_add(1, Ordering::Relaxed);
                (TraceOutcome::Corrupt, None)
            }
            None => {
                s.misses.fetch_add(1, Ordering::Relaxed);
                (TraceOutcome::Unavailable, None)
            }
        };
        self.emit(op, outcome, key);
        value
    }

    /// A copy of the value under `key`, which becomes the most recently used.
    pub fn lookup(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.find(key, false)
    }

    /// Removes and returns the value under `key`; atomic across processes.
    pub fn remove(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.find(key, true)
    }

    /// Walks the whole table under the lock and reports what it found
    /// (`None` if the lock could not be taken). O(capacity): for tests and
    /// diagnostics, not for the request path.
    pub fn check_consistency(&self) -> Option<Consistency> {
        let l = self.region.locked().ok()?;
        Some(l.table.check())
    }

    /// Test hook: begins an insert of `key`/`value` under the lock, stops
    /// with the value half written, and runs `f` (a test child is killed
    /// there). Returns false if the lock could not be taken.
    #[doc(hidden)]
    pub fn debug_torn_put(&self, key: &[u8], value: &[u8], f: impl FnOnce()) -> bool {
        let Ok(l) = self.region.locked() else { return false };
        if l.table.begin_torn_insert(key, value).is_err() {
            return false;
        }
        f();
        // Reached only if the caller was not killed: let the next holder
        // clean up exactly as after a crash.
        drop(l);
        true
    }
}

impl rustls::server::StoresServerSessions for SharedSessionCache {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.insert(&key, &value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.lookup(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.remove(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}
