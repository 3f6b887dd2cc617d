//! The shared mapping, its header, and locked access to it.

use core::ptr::addr_of_mut;
use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};

use crate::error::{Corruption, ShmError};
use crate::layout::{self, Geometry, Header, StatsBlock, TicketKey, TicketKeys, DEFAULT_SLOT_SIZE, LAYOUT_VERSION, MAGIC};
use crate::lock::{self, Acquired, Guard, LockError};
use crate::table::Table;

/// How long an operation waits for the cross-process lock before it gives
/// up and acts as a miss. Holders keep the lock for microseconds; only a
/// stopped holder or a damaged mutex makes anyone wait this long.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_millis(100);

/// Where things are in a region (for `phpinfo()`-style reporting and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayoutInfo {
    pub region_size: usize,
    pub header_size: usize,
    pub slot_size: usize,
    /// Entries the region holds: the LRU capacity.
    pub slot_count: usize,
    /// Largest `key.len() + value.len()` an entry may have.
    pub max_entry_len: usize,
    pub bucket_count: usize,
    pub buckets_offset: usize,
    pub slots_offset: usize,
    /// Where the shared ticket keys are (inside the header).
    pub ticket_keys_offset: usize,
}

struct Mapping {
    base: *mut u8,
    /// This process's trusted copy of the layout (inherited through fork).
    geo: Geometry,
    lock_timeout_ns: AtomicU64,
}

// SAFETY: the mapping is plain shared memory. Everything that mutates it
// outside creation does so through the process-shared mutex or through
// atomics, and `base`/`geo` never change after creation, so the handle may
// be moved to and used from any thread.
unsafe impl Send for Mapping {}
// SAFETY: see `Send`.
unsafe impl Sync for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: base/len are exactly what mmap returned; after fork each
        // process unmaps only its own view.
        unsafe { libc::munmap(self.base.cast(), self.geo.region_size as usize) };
    }
}

/// A `MAP_SHARED | MAP_ANONYMOUS` region holding the session cache, its
/// lock, its statistics and the shared ticket keys.
///
/// **Fork assumption.** Create the region once in the parent (PHP module
/// startup) *before* the workers are forked: a child inherits the mapping at
/// the same address, so this handle (a pointer, a length and the layout)
/// stays valid in every process and all of them see the same bytes. A
/// region created after a fork is private to that process and its
/// descendants. The handle is `Send + Sync` and cheap to clone; the memory
/// is unmapped when the last clone in a process is dropped (other processes
/// keep their own views).
#[derive(Clone)]
pub struct ShmRegion {
    inner: Arc<Mapping>,
}

impl core::fmt::Debug for ShmRegion {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ShmRegion").field("layout", &self.layout()).finish()
    }
}

/// Why a locked section could not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unavailable {
    Lock(LockError),
    /// The header was damaged; the region has just been re-initialised and
    /// this operation acts as a miss.
    HeaderCorrupt(Corruption),
}

/// Access to the region with the lock held.
pub(crate) struct Locked<'a> {
    region: &'a ShmRegion,
    pub table: Table,
    _guard: Guard,
}

impl Locked<'_> {
    pub(crate) fn tickets(&self) -> *mut TicketKeys {
        self.region.tickets_ptr()
    }

    pub(crate) fn seed(&self) -> [u64; 2] {
        self.region.inner.geo.seed
    }
}

pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A fresh random ticket key.
pub(crate) fn fresh_key(rng: &SystemRandom, id: u8) -> Result<TicketKey, ShmError> {
    let mut key = [0u8; 32];
    rng.fill(&mut key).map_err(|_| ShmError::Random)?;
    Ok(TicketKey { key, created: now_secs(), id, live: 1, _pad: [0; 6] })
}

impl ShmRegion {
    /// A region of `size` bytes with [`DEFAULT_SLOT_SIZE`]-byte slots
    /// (65536 bytes hold 250 entries; see [`ShmRegion::entries_for`]).
    pub fn create(size: usize) -> Result<ShmRegion, ShmError> {
        Self::create_with_slot_size(size, DEFAULT_SLOT_SIZE)
    }

    /// A region of `size` bytes whose slots are `slot_size` bytes each
    /// (48 bytes of slot header, the rest for key + value).
    pub fn create_with_slot_size(size: usize, slot_size: usize) -> Result<ShmRegion, ShmError> {
        let rng = SystemRandom::new();
        let mut seed_bytes = [0u8; 16];
        rng.fill(&mut seed_bytes).map_err(|_| ShmError::Random)?;
        let mut s0 = [0u8; 8];
        let mut s1 = [0u8; 8];
        s0.copy_from_slice(&seed_bytes[..8]);
        s1.copy_from_slice(&seed_bytes[8..]);
        let geo = layout::plan(size, slot_size, [u64::from_le_bytes(s0), u64::from_le_bytes(s1)])?;
        let current = fresh_key(&rng, 1)?;

        // SAFETY: a fresh anonymous shared mapping; arguments are valid.
        let base = unsafe { libc::mmap(core::ptr::null_mut(), size, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1, 0) };
        if base == libc::MAP_FAILED {
            return Err(ShmError::Mmap(std::io::Error::last_os_error().raw_os_error().unwrap_or(0)));
        }
        let region = ShmRegion { inner: Arc::new(Mapping { base: base.cast(), geo, lock_timeout_ns: AtomicU64::new(DEFAULT_LOCK_TIMEOUT.as_nanos() as u64) }) };
        let hdr = region.header();
        // SAFETY: nobody else can see the mapping yet (no fork has happened
        // since it was made); it is zero-filled and large enough for the
        // header (plan() checked), and page-aligned.
        unsafe {
            core::ptr::write(addr_of_mut!((*hdr).geometry), geo);
            core::ptr::write(addr_of_mut!((*hdr).geometry_sum), geo.checksum());
            lock::init(addr_of_mut!((*hdr).lock.mutex)).map_err(ShmError::MutexInit)?;
            let keys = region.tickets_ptr();
            (*keys).current = current;
            (*keys).previous = TicketKey { key: [0; 32], created: 0, id: 0, live: 0, _pad: [0; 6] };
            (*keys).sum = (*keys).checksum(geo.seed);
            Table::new(region.inner.base, geo).reset();
        }
        Ok(region)
    }

    /// How many entries a region of `size` bytes with `slot_size`-byte
    /// slots holds, without creating it.
    pub fn entries_for(size: usize, slot_size: usize) -> Result<usize, ShmError> {
        layout::plan(size, slot_size, [0, 0]).map(|g| g.slot_count as usize)
    }

    /// Smallest accepted size for `slot_size`-byte slots.
    pub fn min_size(slot_size: usize) -> usize {
        layout::min_size(slot_size)
    }

    pub fn layout(&self) -> LayoutInfo {
        let g = &self.inner.geo;
        LayoutInfo {
            region_size: g.region_size as usize,
            header_size: layout::HEADER_SIZE,
            slot_size: g.slot_size as usize,
            slot_count: g.slot_count as usize,
            max_entry_len: g.slot_capacity(),
            bucket_count: g.bucket_count as usize,
            buckets_offset: g.buckets_off as usize,
            slots_offset: g.slots_off as usize,
            ticket_keys_offset: core::mem::offset_of!(Header, tickets),
        }
    }

    /// Changes how long *this process* waits for the lock (default
    /// [`DEFAULT_LOCK_TIMEOUT`]).
    pub fn set_lock_timeout(&self, timeout: Duration) {
        self.inner.lock_timeout_ns.store(timeout.as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    }

    /// Checks the shared header against this process's copy of the layout:
    /// magic, version, geometry and the header checksum. Reads without the
    /// lock (volatile), so a concurrent re-initialisation can make it report
    /// a transient error; every cache operation repeats the check under the
    /// lock before trusting the region.
    pub fn validate(&self) -> Result<(), Corruption> {
        let hdr = self.header();
        // SAFETY: the header lies inside the mapping; volatile because
        // other processes may write it.
        let (g, sum) = unsafe { (core::ptr::read_volatile(addr_of_mut!((*hdr).geometry)), core::ptr::read_volatile(addr_of_mut!((*hdr).geometry_sum))) };
        if g.magic != MAGIC {
            return Err(Corruption::BadMagic);
        }
        if g.version != LAYOUT_VERSION {
            return Err(Corruption::BadVersion(g.version));
        }
        if g != self.inner.geo {
            return Err(Corruption::BadGeometry);
        }
        if sum != g.checksum() {
            return Err(Corruption::BadChecksum);
        }
        Ok(())
    }

    /// The start of the mapping, for diagnostics and corruption tests.
    ///
    /// # Safety
    /// Writing through the pointer bypasses the lock and the checksums (that
    /// is what the corruption tests want); the pointer is valid for
    /// `layout().region_size` bytes while this handle lives.
    pub unsafe fn as_mut_ptr(&self) -> *mut u8 {
        self.inner.base
    }

    fn header(&self) -> *mut Header {
        self.inner.base.cast::<Header>()
    }

    fn tickets_ptr(&self) -> *mut TicketKeys {
        // SAFETY: the header is at offset 0 of the mapping.
        unsafe { addr_of_mut!((*self.header()).tickets) }
    }

    pub(crate) fn stats_block(&self) -> &StatsBlock {
        // SAFETY: the stats block lies inside the mapping, which outlives
        // &self, and holds only atomics.
        unsafe { &*addr_of_mut!((*self.header()).stats) }
    }

    /// Locks the region and makes it trustworthy: validates the header
    /// (re-initialising a damaged one and failing this call), and rebuilds
    /// the index if the previous holder died or left a mutation unfinished.
    pub(crate) fn locked(&self) -> Result<Locked<'_>, Unavailable> {
        let stats = self.stats_block();
        let timeout = Duration::from_nanos(self.inner.lock_timeout_ns.load(Ordering::Relaxed));
        // SAFETY: the mutex was initialised by create() and lives as long
        // as the mapping, which outlives the guard (borrowed from self).
        let (guard, how) = match unsafe { lock::lock(addr_of_mut!((*self.header()).lock.mutex), timeout) } {
            Ok(x) => x,
            Err(e) => {
                stats.lock_failures.fetch_add(1, Ordering::Relaxed);
                return Err(Unavailable::Lock(e));
            }
        };
        // SAFETY: we hold the lock; base/geo describe this mapping.
        let table = unsafe { Table::new(self.inner.base, self.inner.geo) };
        if how == Acquired::Recovered {
            stats.lock_recoveries.fetch_add(1, Ordering::Relaxed);
        }
        if let Err(c) = self.validate() {
            // We hold the lock and our own copy of the geometry is intact
            // (process-local memory), so rewriting the header and emptying
            // the table is safe; entries cannot be trusted once the header
            // was scribbled on, so none are kept.
            stats.header_corruptions.fetch_add(1, Ordering::Relaxed);
            self.reinit_locked(&table);
            stats.reinits.fetch_add(1, Ordering::Relaxed);
            return Err(Unavailable::HeaderCorrupt(c));
        }
        if how == Acquired::Recovered || table.is_dirty() {
            let dropped = table.rebuild();
            stats.rebuilds.fetch_add(1, Ordering::Relaxed);
            stats.corrupt_entries.fetch_add(dropped, Ordering::Relaxed);
        }
        Ok(Locked { region: self, table, _guard: guard })
    }

    fn reinit_locked(&self, table: &Table) {
        let hdr = self.header();
        let geo = self.inner.geo;
        // SAFETY: lock held; the header lies inside the mapping.
        unsafe {
            core::ptr::write_volatile(addr_of_mut!((*hdr).geometry), geo);
            core::ptr::write_volatile(addr_of_mut!((*hdr).geometry_sum), geo.checksum());
        }
        table.reset();
        // Ticket keys have their own checksum; SharedTicketer replaces them
        // under the lock if it fails.
    }

    /// Test hook: takes the lock, marks the table as mid-mutation, and runs
    /// `f` while holding it (a test child sleeps here until it is killed).
    /// Returns false if the lock could not be taken.
    #[doc(hidden)]
    pub fn debug_hold_lock(&self, f: impl FnOnce()) -> bool {
        let Ok(l) = self.locked() else { return false };
        // SAFETY: lock held.
        unsafe { (*addr_of_mut!((*self.header()).table)).dirty = 1 };
        f();
        // SAFETY: lock held.
        unsafe { (*addr_of_mut!((*self.header()).table)).dirty = 0 };
        drop(l);
        true
    }
}

impl ShmRegion {
    /// Entries stored now (atomic read, no lock).
    pub(crate) fn entries(&self) -> usize {
        // SAFETY: the field is an atomic inside the mapping, which outlives &self.
        unsafe { (*addr_of_mut!((*self.header()).table.len)).load(Ordering::Relaxed) as usize }
    }
}
