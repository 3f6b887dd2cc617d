//! Byte layout of the shared region (see the crate docs for the picture).
//!
//! Everything is `#[repr(C)]` with fixed-width fields so that every process
//! (all forks of one binary) agrees on offsets. Indices are `u32` with
//! [`NIL`] as the null link.

use core::mem::size_of;
use core::sync::atomic::{AtomicU32, AtomicU64};

use crate::error::ShmError;
use crate::hash::{self, Domain};

/// "QPSHMLRU".
pub const MAGIC: u64 = u64::from_be_bytes(*b"QPSHMLRU");
/// Bumped whenever any `#[repr(C)]` struct here changes.
pub const LAYOUT_VERSION: u32 = 1;
/// Null slot/bucket link.
pub(crate) const NIL: u32 = u32::MAX;

/// Default bytes per slot (48-byte slot header + 208 bytes of key + value).
///
/// rustls 0.23 with quicpro's server configuration (`ServerTlsOptions`,
/// TLS 1.3, ALPN "h3") stores a 32-byte session id as the key and a value of
/// 59 bytes + the SNI length with a SHA-256 suite (measured: 68 bytes for
/// "localhost", 82 for a 23-byte name, 312 for a 253-byte name), 16 more
/// with AES-256-GCM/SHA-384. 208 bytes therefore hold every session whose
/// server name is at most 101 bytes with any suite; longer names need
/// [`ShmRegion::create_with_slot_size`](crate::ShmRegion::create_with_slot_size)
/// (416 fits the 253-byte maximum) or are refused and counted as oversized.
pub const DEFAULT_SLOT_SIZE: usize = 256;
/// Smallest slot: room for a 32-byte key and a 48-byte value.
pub const MIN_SLOT_SIZE: usize = 128;
/// Largest slot (lengths are stored as `u16`).
pub const MAX_SLOT_SIZE: usize = 32 * 1024;
/// A region must hold at least this many entries.
pub const MIN_ENTRIES: usize = 16;
/// Largest region (4 GiB - 1): slot indices stay far below `u32::MAX`, and
/// the constant is valid on 32-bit targets too.
pub const MAX_REGION_SIZE: usize = u32::MAX as usize;
/// Bytes of the per-slot header in front of key and value.
pub const SLOT_HEADER_SIZE: usize = size_of::<SlotHead>();

/// The fixed description of a region, written once at creation. Every
/// process keeps its own copy (inherited through `fork`) and trusts only
/// that copy for address arithmetic; the shared one is compared against it.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub magic: u64,
    pub version: u32,
    pub slot_size: u32,
    pub region_size: u64,
    pub slot_count: u32,
    /// A power of two.
    pub bucket_count: u32,
    pub buckets_off: u64,
    pub slots_off: u64,
    /// Keys the index hash and the checksums (see `hash`).
    pub seed: [u64; 2],
}

impl Geometry {
    pub(crate) fn as_bytes(&self) -> [u8; size_of::<Geometry>()] {
        let mut out = [0u8; size_of::<Geometry>()];
        let mut at = 0;
        let mut put = |b: &[u8]| {
            if let Some(dst) = out.get_mut(at..at + b.len()) {
                dst.copy_from_slice(b);
            }
            at += b.len();
        };
        put(&self.magic.to_le_bytes());
        put(&self.version.to_le_bytes());
        put(&self.slot_size.to_le_bytes());
        put(&self.region_size.to_le_bytes());
        put(&self.slot_count.to_le_bytes());
        put(&self.bucket_count.to_le_bytes());
        put(&self.buckets_off.to_le_bytes());
        put(&self.slots_off.to_le_bytes());
        put(&self.seed[0].to_le_bytes());
        put(&self.seed[1].to_le_bytes());
        out
    }

    /// Unkeyed (zero seed) so a region can be checked without knowing it.
    pub(crate) fn checksum(&self) -> u64 {
        hash::keyed([0, 0], Domain::Header, &[&self.as_bytes()])
    }

    pub(crate) fn slot_capacity(&self) -> usize {
        self.slot_size as usize - SLOT_HEADER_SIZE
    }
}

/// The mutex gets a cache line of its own.
#[repr(C, align(64))]
pub(crate) struct LockLine {
    pub mutex: libc::pthread_mutex_t,
}

/// Index and LRU heads; only touched with the lock held.
#[repr(C, align(64))]
pub(crate) struct TableState {
    /// Most recently used entry.
    pub lru_head: u32,
    /// Least recently used entry: the next eviction victim.
    pub lru_tail: u32,
    /// Singly linked through `SlotHead::lru_next`.
    pub free_head: u32,
    /// Non-zero while a holder is mutating; a holder that dies leaves it set.
    pub dirty: u32,
    /// Entries in use (atomic only so `stats()` can read it without the lock).
    pub len: AtomicU32,
    pub _pad: u32,
    /// Monotonic use counter; `SlotHead::stamp` orders a rebuilt LRU list.
    pub clock: u64,
}

/// Shared counters, updated with relaxed atomics.
#[repr(C, align(64))]
pub(crate) struct StatsBlock {
    pub inserts: AtomicU64,
    pub replaced: AtomicU64,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub takes: AtomicU64,
    pub evictions: AtomicU64,
    pub oversized: AtomicU64,
    pub corrupt_entries: AtomicU64,
    pub lock_recoveries: AtomicU64,
    pub lock_failures: AtomicU64,
    pub header_corruptions: AtomicU64,
    pub reinits: AtomicU64,
    pub rebuilds: AtomicU64,
    pub tickets_issued: AtomicU64,
    pub tickets_accepted: AtomicU64,
    pub tickets_rejected: AtomicU64,
    pub key_rotations: AtomicU64,
}

/// One ticket-encryption key.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct TicketKey {
    pub key: [u8; 32],
    /// UNIX seconds when this key became current.
    pub created: u64,
    /// Written into each ticket so decryption picks the right key.
    pub id: u8,
    /// 0 = no key in this slot.
    pub live: u8,
    pub _pad: [u8; 6],
}

/// Shared ticket keys; only touched with the lock held.
#[repr(C, align(64))]
pub(crate) struct TicketKeys {
    pub current: TicketKey,
    pub previous: TicketKey,
    /// Keyed checksum over both keys.
    pub sum: u64,
}

impl TicketKeys {
    pub(crate) fn checksum(&self, seed: [u64; 2]) -> u64 {
        let enc = |k: &TicketKey| {
            let mut b = [0u8; 42];
            b[..32].copy_from_slice(&k.key);
            b[32..40].copy_from_slice(&k.created.to_le_bytes());
            b[40] = k.id;
            b[41] = k.live;
            b
        };
        hash::keyed(seed, Domain::TicketKeys, &[&enc(&self.current), &enc(&self.previous)])
    }
}

/// The region header at offset 0.
#[repr(C, align(64))]
pub(crate) struct Header {
    pub geometry: Geometry,
    pub geometry_sum: u64,
    pub lock: LockLine,
    pub table: TableState,
    pub stats: StatsBlock,
    pub tickets: TicketKeys,
}

pub(crate) const HEADER_SIZE: usize = size_of::<Header>();

/// Slot states.
pub(crate) const SLOT_FREE: u32 = 0;
pub(crate) const SLOT_USED: u32 = 0x5553_4544; // "USED"
pub(crate) const SLOT_WRITING: u32 = 0x5752_4954; // "WRIT"

/// Fixed part of each slot; key then value bytes follow.
#[repr(C)]
pub(crate) struct SlotHead {
    pub state: u32,
    pub key_len: u16,
    pub val_len: u16,
    /// Index hash of the key (also chooses the bucket).
    pub hash: u64,
    pub hash_next: u32,
    pub lru_prev: u32,
    /// Also the free-list link.
    pub lru_next: u32,
    pub _pad: u32,
    /// `TableState::clock` at last use (not covered by the checksum: it
    /// changes on every hit).
    pub stamp: u64,
    /// Keyed checksum over lengths, hash, key and value.
    pub checksum: u64,
}

const fn round_up(x: usize, to: usize) -> usize {
    x.div_ceil(to) * to
}

/// How a region of `size` bytes is carved up, or why it cannot be.
pub(crate) fn plan(size: usize, slot_size: usize, seed: [u64; 2]) -> Result<Geometry, ShmError> {
    if !(MIN_SLOT_SIZE..=MAX_SLOT_SIZE).contains(&slot_size) || !slot_size.is_multiple_of(8) {
        return Err(ShmError::BadSlotSize { slot_size, min: MIN_SLOT_SIZE, max: MAX_SLOT_SIZE });
    }
    if size > MAX_REGION_SIZE {
        return Err(ShmError::TooLarge { size, max: MAX_REGION_SIZE });
    }
    let min = min_size(slot_size);
    let too_small = ShmError::TooSmall { size, min, min_entries: MIN_ENTRIES };
    let buckets_off = round_up(HEADER_SIZE, 64);
    let avail = size.checked_sub(buckets_off).ok_or(too_small.clone())?;
    // First guess ignoring the index, then size the index for a load factor
    // of at most 1 and fit as many slots as remain.
    let guess = avail / (slot_size + 4);
    let bucket_count = guess.max(1).next_power_of_two();
    let slots_off = round_up(buckets_off + bucket_count * 4, 64);
    let slot_count = size.saturating_sub(slots_off) / slot_size;
    if slot_count < MIN_ENTRIES {
        return Err(too_small);
    }
    Ok(Geometry {
        magic: MAGIC,
        version: LAYOUT_VERSION,
        slot_size: slot_size as u32,
        region_size: size as u64,
        slot_count: slot_count as u32,
        bucket_count: bucket_count as u32,
        buckets_off: buckets_off as u64,
        slots_off: slots_off as u64,
        seed,
    })
}

/// Smallest region size that holds [`MIN_ENTRIES`] slots of `slot_size`.
pub const fn min_size(slot_size: usize) -> usize {
    let buckets_off = round_up(HEADER_SIZE, 64);
    let slots_off = round_up(buckets_off + MIN_ENTRIES.next_power_of_two() * 4, 64);
    slots_off + MIN_ENTRIES * slot_size
}
