//! Counters kept in the shared region and the per-lookup trace hook.

use core::fmt;
use core::sync::atomic::Ordering;

use crate::layout::StatsBlock;

/// A snapshot of the shared counters (totals over every process).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Entries stored now.
    pub entries: u64,
    /// Entries the region can hold.
    pub capacity: u64,
    /// Successful `put`s (including replacements).
    pub inserts: u64,
    /// `put`s that overwrote an entry with the same key.
    pub replaced: u64,
    /// `get`/`take` calls that returned a value.
    pub hits: u64,
    /// `get`/`take` calls that returned nothing (absent, corrupt, or the
    /// region unavailable).
    pub misses: u64,
    /// Successful `take`s (a subset of `hits`).
    pub takes: u64,
    /// Entries pushed out as least recently used.
    pub evictions: u64,
    /// `put`s refused because key + value exceed a slot.
    pub oversized: u64,
    /// Entries dropped because their checksum failed or a dead lock holder
    /// left them half written.
    pub corrupt_entries: u64,
    /// Times the lock was taken over from a process that died holding it.
    pub lock_recoveries: u64,
    /// Operations that gave up waiting for the lock (timeout or error).
    pub lock_failures: u64,
    /// Times an operation found the header damaged.
    pub header_corruptions: u64,
    /// Times the region (or its ticket keys) was re-initialised after damage.
    pub reinits: u64,
    /// Times the index was rebuilt from the slots.
    pub rebuilds: u64,
    /// Tickets encrypted by `SharedTicketer`.
    pub tickets_issued: u64,
    /// Tickets that decrypted.
    pub tickets_accepted: u64,
    /// Tickets that did not (unknown key, expired key, forged, truncated).
    pub tickets_rejected: u64,
    /// Ticket key rotations.
    pub key_rotations: u64,
}

impl CacheStats {
    pub(crate) fn read(b: &StatsBlock, entries: u64, capacity: u64) -> Self {
        let r = |a: &core::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        CacheStats {
            entries,
            capacity,
            inserts: r(&b.inserts),
            replaced: r(&b.replaced),
            hits: r(&b.hits),
            misses: r(&b.misses),
            takes: r(&b.takes),
            evictions: r(&b.evictions),
            oversized: r(&b.oversized),
            corrupt_entries: r(&b.corrupt_entries),
            lock_recoveries: r(&b.lock_recoveries),
            lock_failures: r(&b.lock_failures),
            header_corruptions: r(&b.header_corruptions),
            reinits: r(&b.reinits),
            rebuilds: r(&b.rebuilds),
            tickets_issued: r(&b.tickets_issued),
            tickets_accepted: r(&b.tickets_accepted),
            tickets_rejected: r(&b.tickets_rejected),
            key_rotations: r(&b.key_rotations),
        }
    }
}

/// Which cache operation a [`TraceEvent`] describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceOp {
    Get,
    Take,
    Put,
}

/// What came of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceOutcome {
    Hit,
    Miss,
    /// The entry matched but failed its checksum and was dropped (a miss).
    Corrupt,
    /// The lock could not be taken or the header was damaged (a miss, or a
    /// refused put).
    Unavailable,
    Stored,
    /// A put refused as larger than a slot.
    Oversized,
}

/// One cache operation, for the PHP side's `QP_TRACE` output. Carries only
/// the first bytes of the key: session ids are bearer secrets for
/// resumption and do not belong in logs whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceEvent {
    pub op: TraceOp,
    pub outcome: TraceOutcome,
    pub key_len: usize,
    key_prefix: [u8; 8],
    key_prefix_len: u8,
}

impl TraceEvent {
    pub(crate) fn new(op: TraceOp, outcome: TraceOutcome, key: &[u8]) -> Self {
        let mut key_prefix = [0u8; 8];
        let n = key.len().min(8);
        key_prefix[..n].copy_from_slice(&key[..n]);
        TraceEvent { op, outcome, key_len: key.len(), key_prefix, key_prefix_len: n as u8 }
    }

    /// Up to the first 8 bytes of the key.
    pub fn key_prefix(&self) -> &[u8] {
        &self.key_prefix[..self.key_prefix_len as usize]
    }

    /// The key prefix as lowercase hex (allocates; tracing only).
    pub fn key_prefix_hex(&self) -> String {
        self.key_prefix().iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {:?} key={}.. ({} bytes)", self.op, self.outcome, self.key_prefix_hex(), self.key_len)
    }
}
