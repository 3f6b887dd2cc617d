//! The hash index and LRU list over the slots, operated on with the lock
//! held.
//!
//! Buckets hold the first slot of a chain (`SlotHead::hash_next`); used
//! slots also sit on a doubly linked LRU list (`lru_prev`/`lru_next`, head =
//! most recent); free slots form a singly linked list through `lru_next`.
//! Every operation is O(1) plus the chain length (load factor <= 1).
//!
//! Nothing read from shared memory is trusted for address arithmetic: every
//! link is range-checked against this process's own `Geometry` and every
//! walk is bounded by the slot count. A link that fails a check yields
//! [`Corrupt`], and the caller rebuilds the whole structure from the slots
//! themselves ([`Table::rebuild`]), keeping only entries whose checksum
//! verifies.

use core::ptr::addr_of_mut;
use core::sync::atomic::Ordering;

use crate::hash::{self, Domain};
use crate::layout::{Geometry, Header, SlotHead, TableState, NIL, SLOT_FREE, SLOT_HEADER_SIZE, SLOT_USED, SLOT_WRITING};

/// A link or state in shared memory that cannot be right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Corrupt;

/// Result of a lookup.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found {
    Hit(Vec<u8>),
    Miss,
    /// The key matched but the entry failed its checksum; it was removed.
    Dropped,
}

/// What a successful insert displaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Inserted {
    pub replaced: bool,
    pub evicted: bool,
}

/// Result of a full consistency walk (see `SharedSessionCache::check_consistency`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Consistency {
    /// The entry count the table keeps.
    pub len: usize,
    /// Entries reached by walking the LRU list from its head.
    pub lru_entries: usize,
    /// Entries reached by walking every hash chain.
    pub chained_entries: usize,
    /// Slots on the free list.
    pub free_slots: usize,
    /// Used slots whose checksum does not verify.
    pub bad_checksums: usize,
    /// Broken links (out of range, wrong back-pointer, cycles).
    pub bad_links: usize,
}

impl Consistency {
    /// Every count agrees and nothing is damaged.
    pub fn is_consistent(&self, slot_count: usize) -> bool {
        self.bad_checksums == 0
            && self.bad_links == 0
            && self.lru_entries == self.len
            && self.chained_entries == self.len
            && self.len + self.free_slots == slot_count
    }
}

/// A view of the table; exists only while the region's lock is held.
pub(crate) struct Table {
    base: *mut u8,
    geo: Geometry,
}

impl Table {
    /// # Safety
    /// `base` maps `geo.region_size` bytes laid out per `geo` (this process's
    /// own copy), and the caller holds the region lock for the Table's life.
    pub(crate) unsafe fn new(base: *mut u8, geo: Geometry) -> Self {
        Self { base, geo }
    }

    fn st(&self) -> *mut TableState {
        // SAFETY: the header is at offset 0 of the mapping.
        unsafe { addr_of_mut!((*self.base.cast::<Header>()).table) }
    }

    fn slot(&self, i: u32) -> Result<*mut SlotHead, Corrupt> {
        if i >= self.geo.slot_count {
            return Err(Corrupt);
        }
        let off = self.geo.slots_off as usize + i as usize * self.geo.slot_size as usize;
        // SAFETY: i < slot_count, and plan() placed slot_count slots of
        // slot_size bytes at slots_off inside the mapping.
        Ok(unsafe { self.base.add(off).cast::<SlotHead>() })
    }

    fn bucket(&self, hash: u64) -> *mut u32 {
        let idx = (hash as u32) & (self.geo.bucket_count - 1);
        // SAFETY: idx < bucket_count (a power of two) and the bucket array
        // of bucket_count u32s sits at buckets_off inside the mapping.
        unsafe { self.base.add(self.geo.buckets_off as usize + idx as usize * 4).cast::<u32>() }
    }

    fn data(s: *mut SlotHead) -> *mut u8 {
        // SAFETY: every slot is slot_size > SLOT_HEADER_SIZE bytes.
        unsafe { s.cast::<u8>().add(SLOT_HEADER_SIZE) }
    }

    fn cap(&self) -> usize {
        self.geo.slot_capacity()
    }

    pub(crate) fn index_hash(&self, key: &[u8]) -> u64 {
        hash::keyed(self.geo.seed, Domain::Index, &[key])
    }

    fn entry_checksum(&self, key_len: u16, val_len: u16, h: u64, key: &[u8], value: &[u8]) -> u64 {
        let mut meta = [0u8; 12];
        meta[..2].copy_from_slice(&key_len.to_le_bytes());
        meta[2..4].copy_from_slice(&val_len.to_le_bytes());
        meta[4..].copy_from_slice(&h.to_le_bytes());
        hash::keyed(self.geo.seed, Domain::Entry, &[&meta, key, value])
    }

    /// Key and value of a used slot, if its lengths fit the slot.
    ///
    /// # Safety
    /// `s` comes from `self.slot()`; the returned slices must not outlive
    /// the lock or overlap a write.
    unsafe fn parts<'a>(&self, s: *mut SlotHead) -> Option<(&'a [u8], &'a [u8])> {
        // SAFETY: per the contract, s is a slot inside the mapping.
        let (kl, vl) = unsafe { ((*s).key_len as usize, (*s).val_len as usize) };
        if kl + vl > self.cap() {
            return None;
        }
        let d = Self::data(s);
        // SAFETY: kl + vl <= capacity, so both ranges are inside the slot.
        unsafe { Some((core::slice::from_raw_parts(d, kl), core::slice::from_raw_parts(d.add(kl), vl))) }
    }

    /// Whether slot `s` is a used entry whose checksum verifies.
    fn verifies(&self, s: *mut SlotHead) -> bool {
        // SAFETY: s from self.slot(); lock held.
        unsafe {
            if (*s).state != SLOT_USED {
                return false;
            }
            let Some((k, v)) = self.parts(s) else { return false };
            (*s).hash == self.index_hash(k) && (*s).checksum == self.entry_checksum((*s).key_len, (*s).val_len, (*s).hash, k, v)
        }
    }

    fn set_dirty(&self, on: bool) {
        // SAFETY: lock held.
        unsafe { (*self.st()).dirty = u32::from(on) };
    }

    fn add_len(&self, delta: i32) {
        // SAFETY: lock held; the atomic lets stats() read without it.
        let len = unsafe { &(*self.st()).len };
        let v = len.load(Ordering::Relaxed).wrapping_add_signed(delta);
        len.store(v, Ordering::Relaxed);
    }

    pub(crate) fn len(&self) -> usize {
        // SAFETY: lock held.
        unsafe { (*self.st()).len.load(Ordering::Relaxed) as usize }
    }

    /// Finds the slot holding `key`.
    fn find(&self, key: &[u8], h: u64) -> Result<Option<u32>, Corrupt> {
        // SAFETY: bucket pointer is in range; lock held.
        let mut i = unsafe { *self.bucket(h) };
        let mut steps = 0u32;
        while i != NIL {
            steps += 1;
            if steps > self.geo.slot_count {
                return Err(Corrupt);
            }
            let s = self.slot(i)?;
            // SAFETY: s in range; lock held.
            unsafe {
                if (*s).state != SLOT_USED {
                    return Err(Corrupt);
                }
                // Lengths that overflow the slot cannot be right.
                let Some((k, _)) = self.parts(s) else { return Err(Corrupt) };
                if (*s).hash == h && k == key {
                    return Ok(Some(i));
                }
                i = (*s).hash_next;
            }
        }
        Ok(None)
    }

    fn unlink_hash(&self, i: u32) -> Result<(), Corrupt> {
        let s = self.slot(i)?;
        // SAFETY: pointers come from bucket()/slot(); lock held.
        unsafe {
            let mut link: *mut u32 = self.bucket((*s).hash);
            let mut steps = 0u32;
            while *link != NIL {
                if *link == i {
                    *link = (*s).hash_next;
                    (*s).hash_next = NIL;
                    return Ok(());
                }
                steps += 1;
                if steps > self.geo.slot_count {
                    return Err(Corrupt);
                }
                link = addr_of_mut!((*self.slot(*link)?).hash_next);
            }
        }
        Err(Corrupt)
    }

    fn lru_unlink(&self, i: u32) -> Result<(), Corrupt> {
        let s = self.slot(i)?;
        let st = self.st();
        // SAFETY: pointers from slot()/st(); lock held.
        unsafe {
            let (prev, next) = ((*s).lru_prev, (*s).lru_next);
            // Check both neighbours point back before changing anything, so
            // a damaged list is caught here rather than cut silently.
            if prev != NIL && (*self.slot(prev)?).lru_next != i {
                return Err(Corrupt);
            }
            if next != NIL && (*self.slot(next)?).lru_prev != i {
                return Err(Corrupt);
            }
            if prev == NIL {
                if (*st).lru_head != i {
                    return Err(Corrupt);
                }
                (*st).lru_head = next;
            } else {
                (*self.slot(prev)?).lru_next = next;
            }
            if next == NIL {
                if (*st).lru_tail != i {
                    return Err(Corrupt);
                }
                (*st).lru_tail = prev;
            } else {
                (*self.slot(next)?).lru_prev = prev;
            }
            (*s).lru_prev = NIL;
            (*s).lru_next = NIL;
        }
        Ok(())
    }

    fn lru_push_front(&self, i: u32) -> Result<(), Corrupt> {
        let s = self.slot(i)?;
        let st = self.st();
        // SAFETY: pointers from slot()/st(); lock held.
        unsafe {
            let head = (*st).lru_head;
            (*s).lru_prev = NIL;
            (*s).lru_next = head;
            if head == NIL {
                (*st).lru_tail = i;
            } else {
                (*self.slot(head)?).lru_prev = i;
            }
            (*st).lru_head = i;
            (*st).clock = (*st).clock.wrapping_add(1);
            (*s).stamp = (*st).clock;
        }
        Ok(())
    }

    fn touch(&self, i: u32) -> Result<(), Corrupt> {
        self.lru_unlink(i)?;
        self.lru_push_front(i)
    }

    fn release(&self, i: u32) -> Result<(), Corrupt> {
        let s = self.slot(i)?;
        let st = self.st();
        // SAFETY: pointers from slot()/st(); lock held.
        unsafe {
            (*s).state = SLOT_FREE;
            (*s).key_len = 0;
            (*s).val_len = 0;
            (*s).checksum = 0;
            (*s).hash_next = NIL;
            (*s).lru_prev = NIL;
            (*s).lru_next = (*st).free_head;
            (*st).free_head = i;
        }
        Ok(())
    }

    fn remove(&self, i: u32) -> Result<(), Corrupt> {
        self.unlink_hash(i)?;
        self.lru_unlink(i)?;
        self.add_len(-1);
        self.release(i)
    }

    /// A free slot, evicting the least recently used entry if none is free.
    fn alloc(&self) -> Result<(u32, bool), Corrupt> {
        let st = self.st();
        // SAFETY: pointers from slot()/st(); lock held.
        unsafe {
            let f = (*st).free_head;
            if f != NIL {
                let s = self.slot(f)?;
                if (*s).state != SLOT_FREE {
                    return Err(Corrupt);
                }
                (*st).free_head = (*s).lru_next;
                (*s).lru_next = NIL;
                return Ok((f, false));
            }
            let victim = (*st).lru_tail;
            let s = self.slot(victim)?;
            if (*s).state != SLOT_USED {
                return Err(Corrupt);
            }
            self.unlink_hash(victim)?;
            self.lru_unlink(victim)?;
            self.add_len(-1);
            (*s).state = SLOT_FREE;
            Ok((victim, true))
        }
    }

    /// Looks `key` up; on a hit returns a copy of the value and either
    /// removes the entry (`take`) or makes it the most recently used.
    pub(crate) fn lookup(&self, key: &[u8], take: bool) -> Result<Found, Corrupt> {
        let h = self.index_hash(key);
        self.set_dirty(true);
        let Some(i) = self.find(key, h)? else {
            self.set_dirty(false);
            return Ok(Found::Miss);
        };
        let s = self.slot(i)?;
        if !self.verifies(s) {
            self.remove(i)?;
            self.set_dirty(false);
            return Ok(Found::Dropped);
        }
        // SAFETY: verifies() checked the lengths; lock held.
        let value = match unsafe { self.parts(s) } {
            Some((_, v)) => v.to_vec(),
            None => return Err(Corrupt),
        };
        if take {
            self.remove(i)?;
        } else {
            self.touch(i)?;
        }
        self.set_dirty(false);
        Ok(Found::Hit(value))
    }

    /// Stores `key` -> `value` as the most recently used entry. The caller
    /// has checked that `key.len() + value.len()` fits a slot.
    pub(crate) fn insert(&self, key: &[u8], value: &[u8]) -> Result<Inserted, Corrupt> {
        if key.len() + value.len() > self.cap() {
            return Err(Corrupt);
        }
        let h = self.index_hash(key);
        self.set_dirty(true);
        let replaced = match self.find(key, h)? {
            Some(i) => {
                self.remove(i)?;
                true
            }
            None => false,
        };
        let (i, evicted) = self.alloc()?;
        let s = self.slot(i)?;
        let (kl, vl) = (key.len() as u16, value.len() as u16);
        // SAFETY: s from slot(); the key and value fit the slot's capacity
        // (checked above); lock held.
        unsafe {
            // A holder that dies between here and SLOT_USED leaves a
            // WRITING slot, which rebuild() discards.
            (*s).state = SLOT_WRITING;
            (*s).key_len = kl;
            (*s).val_len = vl;
            (*s).hash = h;
            let d = Self::data(s);
            core::ptr::copy_nonoverlapping(key.as_ptr(), d, key.len());
            core::ptr::copy_nonoverlapping(value.as_ptr(), d.add(key.len()), value.len());
            (*s).checksum = self.entry_checksum(kl, vl, h, key, value);
            (*s).state = SLOT_USED;
            let b = self.bucket(h);
            (*s).hash_next = *b;
            *b = i;
        }
        self.lru_push_front(i)?;
        self.add_len(1);
        self.set_dirty(false);
        Ok(Inserted { replaced, evicted })
    }

    /// Empties every bucket and the LRU list (slots untouched).
    fn clear_index(&self) {
        let st = self.st();
        // SAFETY: the bucket array lies inside the mapping per geo; lock held.
        unsafe {
            for b in 0..self.geo.bucket_count as usize {
                *self.base.add(self.geo.buckets_off as usize + b * 4).cast::<u32>() = NIL;
            }
            (*st).lru_head = NIL;
            (*st).lru_tail = NIL;
        }
    }

    /// Empties the table: every slot free, no entries.
    pub(crate) fn reset(&self) {
        self.clear_index();
        let st = self.st();
        // SAFETY: slots lie inside the mapping per geo; lock held.
        unsafe {
            let n = self.geo.slot_count;
            for i in 0..n {
                if let Ok(s) = self.slot(i) {
                    (*s).state = SLOT_FREE;
                    (*s).key_len = 0;
                    (*s).val_len = 0;
                    (*s).checksum = 0;
                    (*s).hash_next = NIL;
                    (*s).lru_prev = NIL;
                    (*s).lru_next = if i + 1 < n { i + 1 } else { NIL };
                    (*s).stamp = 0;
                }
            }
            (*st).free_head = 0;
            (*st).len.store(0, Ordering::Relaxed);
            (*st).dirty = 0;
        }
    }

    /// Rebuilds index, LRU list and free list from the slots alone, keeping
    /// only used slots whose checksum verifies (ordered by their stamps).
    /// Used after a holder died mid-operation or a link was found broken.
    /// O(slot_count); returns how many non-free slots were dropped.
    pub(crate) fn rebuild(&self) -> u64 {
        let n = self.geo.slot_count;
        let mut live: Vec<(u64, u32)> = Vec::new();
        let mut dropped = 0u64;
        // SAFETY: all slot pointers come from slot() with i < n; lock held.
        unsafe {
            for i in 0..n {
                let Ok(s) = self.slot(i) else { continue };
                if self.verifies(s) {
                    live.push(((*s).stamp, i));
                } else if (*s).state != SLOT_FREE {
                    dropped += 1;
                }
            }
        }
        self.clear_index();
        live.sort_unstable_by_key(|&(stamp, _)| core::cmp::Reverse(stamp));
        // Only damage can leave two slots with one key (insert removes the
        // old entry before writing the new one); keep the most recent so a
        // taken session can never reappear from a stale copy.
        let mut seen = std::collections::HashSet::new();
        live.retain(|&(_, i)| {
            let Ok(s) = self.slot(i) else { return false };
            // SAFETY: verified slot (lengths fit); lock held.
            let key = unsafe { self.parts(s) }.map(|(k, _)| k.to_vec());
            let keep = key.is_some_and(|k| seen.insert(k));
            if !keep {
                dropped += 1;
            }
            keep
        });
        let st = self.st();
        // SAFETY: as above.
        unsafe {
            let mut free_head = NIL;
            let mut is_live = vec![false; n as usize];
            for &(_, i) in &live {
                if let Some(f) = is_live.get_mut(i as usize) {
                    *f = true;
                }
            }
            for i in (0..n).rev() {
                if !is_live.get(i as usize).copied().unwrap_or(false) {
                    if let Ok(s) = self.slot(i) {
                        (*s).state = SLOT_FREE;
                        (*s).lru_next = free_head;
                        free_head = i;
                    }
                }
            }
            (*st).free_head = free_head;
            // Oldest first, each pushed to the front: the newest ends first.
            let mut max_stamp = 0;
            for &(stamp, i) in live.iter().rev() {
                let Ok(s) = self.slot(i) else { continue };
                (*s).state = SLOT_USED;
                let b = self.bucket((*s).hash);
                (*s).hash_next = *b;
                *b = i;
                let head = (*st).lru_head;
                (*s).lru_prev = NIL;
                (*s).lru_next = head;
                if head == NIL {
                    (*st).lru_tail = i;
                } else if let Ok(h) = self.slot(head) {
                    (*h).lru_prev = i;
                }
                (*st).lru_head = i;
                max_stamp = max_stamp.max(stamp);
            }
            (*st).clock = (*st).clock.max(max_stamp);
            (*st).len.store(live.len() as u32, Ordering::Relaxed);
            (*st).dirty = 0;
        }
        dropped
    }

    /// Whether the last holder left a mutation unfinished.
    pub(crate) fn is_dirty(&self) -> bool {
        // SAFETY: lock held.
        unsafe { (*self.st()).dirty != 0 }
    }

    /// Walks every structure and counts (read-only).
    pub(crate) fn check(&self) -> Consistency {
        let n = self.geo.slot_count;
        let mut c = Consistency { len: self.len(), ..Consistency::default() };
        let st = self.st();
        // SAFETY: pointers from slot()/bucket()/st(); lock held.
        unsafe {
            let mut prev = NIL;
            let mut i = (*st).lru_head;
            while i != NIL {
                let Ok(s) = self.slot(i) else {
                    c.bad_links += 1;
                    break;
                };
                if (*s).lru_prev != prev || c.lru_entries > n as usize {
                    c.bad_links += 1;
                    break;
                }
                if !self.verifies(s) {
                    c.bad_checksums += 1;
                }
                c.lru_entries += 1;
                prev = i;
                i = (*s).lru_next;
            }
            if (*st).lru_tail != prev {
                c.bad_links += 1;
            }
            for b in 0..self.geo.bucket_count as usize {
                let mut i = *self.base.add(self.geo.buckets_off as usize + b * 4).cast::<u32>();
                let mut steps = 0;
                while i != NIL {
                    let Ok(s) = self.slot(i) else {
                        c.bad_links += 1;
                        break;
                    };
                    steps += 1;
                    if steps > n || ((*s).hash as u32 & (self.geo.bucket_count - 1)) as usize != b {
                        c.bad_links += 1;
                        break;
                    }
                    c.chained_entries += 1;
                    i = (*s).hash_next;
                }
            }
            let mut i = (*st).free_head;
            while i != NIL {
                let Ok(s) = self.slot(i) else {
                    c.bad_links += 1;
                    break;
                };
                if (*s).state != SLOT_FREE || c.free_slots > n as usize {
                    c.bad_links += 1;
                    break;
                }
                c.free_slots += 1;
                i = (*s).lru_next;
            }
        }
        c
    }
}

impl Table {
    /// Test hook: starts an insert the way `insert` does and stops half way
    /// through writing the value, leaving the slot in the WRITING state and
    /// the table dirty, as a holder killed mid-write would.
    pub(crate) fn begin_torn_insert(&self, key: &[u8], value: &[u8]) -> Result<(), Corrupt> {
        if key.len() + value.len() > self.cap() {
            return Err(Corrupt);
        }
        self.set_dirty(true);
        let (i, _) = self.alloc()?;
        let s = self.slot(i)?;
        // SAFETY: as in insert().
        unsafe {
            (*s).state = SLOT_WRITING;
            (*s).key_len = key.len() as u16;
            (*s).val_len = value.len() as u16;
            (*s).hash = self.index_hash(key);
            let d = Self::data(s);
            core::ptr::copy_nonoverlapping(key.as_ptr(), d, key.len());
            core::ptr::copy_nonoverlapping(value.as_ptr(), d.add(key.len()), value.len() / 2);
        }
        Ok(())
    }
}
