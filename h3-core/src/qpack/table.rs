//! The dynamic table (RFC 9204 §3.2), shared by encoder and decoder.
//!
//! Entries live in FIFO order and carry absolute indices (§3.2.4): the first
//! entry ever inserted is 0, and the oldest entry still present has index
//! `insert_count - len`. Size accounting follows §3.2.1 (name + value + 32).
//!
//! This type evicts whatever is oldest, as the decoder must (§3.2.2). The
//! encoder additionally asks [`DynamicTable::can_insert`] first with its own
//! rule about which entries may go (§2.1.1), and tracks per-entry reference
//! counts here. The encoder also enables a name/value index for lookups.

use std::collections::VecDeque;

use bytes::Bytes;
use quic_core::fast_hash::FastHashMap;

use super::ENTRY_OVERHEAD;

/// One dynamic table entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: Bytes,
    pub value: Bytes,
    /// Sum of the sizes of every entry inserted so far, this one included;
    /// differences give the bytes between two entries in O(1).
    cumulative: u64,
    /// Encoder only: unacknowledged field sections referencing this entry.
    refs: u32,
}

impl Entry {
    /// Entry size, RFC 9204 §3.2.1.
    pub fn size(&self) -> u64 {
        entry_size(self.name.len(), self.value.len())
    }

    /// Whether no unacknowledged section references this entry.
    pub fn refs_is_zero(&self) -> bool {
        self.refs == 0
    }
}

/// Size of an entry with these lengths (RFC 9204 §3.2.1).
pub fn entry_size(name_len: usize, value_len: usize) -> u64 {
    name_len as u64 + value_len as u64 + ENTRY_OVERHEAD
}

/// The entry does not fit even in an empty table (RFC 9204 §3.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryTooLarge;

/// Newest entries by name and by (name, value), for the encoder. A fast
/// hash: the table holds at most capacity / 32 entries (128 for 4 KiB), so
/// even keys a peer gets reflected into our headers cannot make a lookup
/// long, and SipHash was a few percent of a server answering requests.
#[derive(Debug, Default)]
struct Index {
    by_name: FastHashMap<Bytes, NameSlot>,
}

#[derive(Debug)]
struct NameSlot {
    /// Newest absolute index with this name.
    newest: u64,
    /// Newest absolute index for each value under this name.
    values: FastHashMap<Bytes, u64>,
}

/// The dynamic table.
#[derive(Debug, Default)]
pub struct DynamicTable {
    /// Oldest first.
    entries: VecDeque<Entry>,
    capacity: u64,
    size: u64,
    insert_count: u64,
    inserted_bytes: u64,
    index: Option<Index>,
}

impl DynamicTable {
    /// An empty table of capacity 0 (RFC 9204 §3.2.2: the initial capacity).
    pub fn new() -> Self {
        Self::default()
    }

    /// A table that also maintains name and (name, value) lookup maps.
    pub fn with_index() -> Self {
        Self { index: Some(Index::default()), ..Self::default() }
    }

    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Sum of entry sizes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Total number of insertions (and duplications) ever made.
    pub fn insert_count(&self) -> u64 {
        self.insert_count
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Absolute index of the oldest entry still present (= entries evicted).
    pub fn dropped_count(&self) -> u64 {
        self.insert_count - self.entries.len() as u64
    }

    /// The entry with absolute index `abs`, if still present.
    pub fn get(&self, abs: u64) -> Option<&Entry> {
        let pos = abs.checked_sub(self.dropped_count())?;
        self.entries.get(usize::try_from(pos).ok()?)
    }

    fn get_mut(&mut self, abs: u64) -> Option<&mut Entry> {
        let pos = abs.checked_sub(self.dropped_count())?;
        self.entries.get_mut(usize::try_from(pos).ok()?)
    }

    /// Absolute index for an encoder-instruction relative index (§3.2.5:
    /// 0 is the most recent insertion), if that entry is present.
    pub fn absolute_from_encoder_relative(&self, relative: u64) -> Option<u64> {
        let abs = self.insert_count.checked_sub(relative.checked_add(1)?)?;
        (abs >= self.dropped_count()).then_some(abs)
    }

    /// Sets the capacity, evicting oldest entries until the size fits
    /// (§3.2.2). The caller checks the maximum and, on the encoder side,
    /// evictability.
    pub fn set_capacity(&mut self, capacity: u64) {
        self.capacity = capacity;
        while self.size > self.capacity {
            self.evict_oldest();
        }
    }

    /// Inserts (name, value), evicting oldest entries to make room (§3.2.2),
    /// and returns its absolute index.
    pub fn insert(&mut self, name: Bytes, value: Bytes) -> Result<u64, EntryTooLarge> {
        let size = entry_size(name.len(), value.len());
        if size > self.capacity {
            return Err(EntryTooLarge);
        }
        while self.size + size > self.capacity {
            self.evict_oldest();
        }
        let abs = self.insert_count;
        if let Some(index) = &mut self.index {
            let slot = index.by_name.entry(name.clone()).or_insert_with(|| NameSlot { newest: abs, values: FastHashMap::default() });
            slot.newest = abs;
            slot.values.insert(value.clone(), abs);
        }
        self.inserted_bytes += size;
        self.entries.push_back(Entry { name, value, cumulative: self.inserted_bytes, refs: 0 });
        self.size += size;
        self.insert_count += 1;
        Ok(abs)
    }

    fn evict_oldest(&mut self) {
        let abs = self.dropped_count();
        let Some(e) = self.entries.pop_front() else {
            return;
        };
        self.size -= e.size();
        if let Some(index) = &mut self.index {
            // Maps point at the newest entry for a key; if that is the oldest
            // entry, no other entry has the key any more.
            if let Some(slot) = index.by_name.get_mut(&e.name) {
                if slot.values.get(&e.value) == Some(&abs) {
                    slot.values.remove(&e.value);
                }
                if slot.newest == abs {
                    index.by_name.remove(&e.name);
                }
            }
        }
    }

    /// Whether an entry of `new_size` bytes fits after evicting only entries
    /// for which `evictable(abs, entry)` holds, oldest first (§2.1.1: the
    /// encoder MUST NOT insert if it would evict a non-evictable entry).
    pub fn can_insert(&self, new_size: u64, evictable: impl Fn(u64, &Entry) -> bool) -> bool {
        if new_size > self.capacity {
            return false;
        }
        self.can_shrink_to(self.capacity - new_size, evictable)
    }

    /// Whether the size can be brought to `target` or less by evicting only
    /// entries for which `evictable` holds, oldest first.
    pub fn can_shrink_to(&self, target: u64, evictable: impl Fn(u64, &Entry) -> bool) -> bool {
        let mut size = self.size;
        for (abs, e) in (self.dropped_count()..).zip(self.entries.iter()) {
            if size <= target {
                return true;
            }
            if !evictable(abs, e) {
                return false;
            }
            size -= e.size();
        }
        size <= target
    }

    /// Bytes occupied by entries from the oldest up to and including `abs`
    /// (0 if `abs` is not present). Used for the encoder's draining index
    /// (§2.1.1.1).
    pub fn bytes_through(&self, abs: u64) -> u64 {
        match (self.entries.front(), self.get(abs)) {
            (Some(oldest), Some(e)) => e.cumulative - oldest.cumulative + oldest.size(),
            _ => 0,
        }
    }

    /// Newest entry with this name and value (needs [`Self::with_index`]).
    pub fn find(&self, name: &[u8], value: &[u8]) -> Option<u64> {
        self.index.as_ref()?.by_name.get(name)?.values.get(value).copied()
    }

    /// Newest entry with this name (needs [`Self::with_index`]).
    pub fn find_name(&self, name: &[u8]) -> Option<u64> {
        Some(self.index.as_ref()?.by_name.get(name)?.newest)
    }

    /// Outstanding references to `abs` (encoder bookkeeping).
    pub fn refs(&self, abs: u64) -> u32 {
        self.get(abs).map_or(0, |e| e.refs)
    }

    /// Records one more unacknowledged reference to `abs`.
    pub fn add_ref(&mut self, abs: u64) {
        if let Some(e) = self.get_mut(abs) {
            e.refs += 1;
        }
    }

    /// Drops one reference to `abs`.
    pub fn release_ref(&mut self, abs: u64) {
        if let Some(e) = self.get_mut(abs) {
            e.refs = e.refs.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn size_accounting_and_fifo_eviction() {
        let mut t = DynamicTable::with_index();
        t.set_capacity(100);
        assert_eq!(t.insert(b("ab"), b("cd")).unwrap(), 0); // 36
        assert_eq!(t.insert(b("ef"), b("gh")).unwrap(), 1); // 72
        assert_eq!(t.size(), 72);
        assert_eq!(t.insert(b("ij"), b("kl")).unwrap(), 2); // evicts 0
        assert_eq!(t.size(), 72);
        assert_eq!(t.dropped_count(), 1);
        assert!(t.get(0).is_none());
        assert_eq!(&t.get(2).unwrap().name[..], b"ij");
        assert_eq!(t.absolute_from_encoder_relative(0), Some(2));
        assert_eq!(t.absolute_from_encoder_relative(1), Some(1));
        assert_eq!(t.absolute_from_encoder_relative(2), None);
        assert_eq!(t.find(b"ab", b"cd"), None);
        assert_eq!(t.find(b"ef", b"gh"), Some(1));
        assert_eq!(t.insert(b("x"), Bytes::from(vec![0; 68])), Err(EntryTooLarge));
        // Exactly the capacity fits and empties the table.
        assert_eq!(t.insert(b("x"), Bytes::from(vec![0; 67])).unwrap(), 3);
        assert_eq!(t.len(), 1);
        assert_eq!(t.find_name(b"ef"), None);
        t.set_capacity(0);
        assert!(t.is_empty());
        assert_eq!(t.insert_count(), 4);
    }

    #[test]
    fn index_tracks_newest_duplicate() {
        let mut t = DynamicTable::with_index();
        t.set_capacity(1000);
        t.insert(b("n"), b("v")).unwrap();
        t.insert(b("n"), b("w")).unwrap();
        t.insert(b("n"), b("v")).unwrap();
        assert_eq!(t.find(b"n", b"v"), Some(2));
        assert_eq!(t.find(b"n", b"w"), Some(1));
        assert_eq!(t.find_name(b"n"), Some(2));
        t.set_capacity(2 * 34);
        assert_eq!(t.find(b"n", b"v"), Some(2));
        assert_eq!(t.find(b"n", b"w"), Some(1));
        t.set_capacity(34);
        assert_eq!(t.find(b"n", b"w"), None);
        assert_eq!(t.find_name(b"n"), Some(2));
    }

    #[test]
    fn can_insert_respects_evictability() {
        let mut t = DynamicTable::new();
        t.set_capacity(100);
        t.insert(b("ab"), b("cd")).unwrap();
        t.insert(b("ef"), b("gh")).unwrap();
        t.add_ref(0);
        assert_eq!(t.refs(0), 1);
        assert!(t.can_insert(28, |_, e| e.refs == 0));
        assert!(!t.can_insert(36, |_, e| e.refs == 0));
        t.release_ref(0);
        assert!(t.can_insert(36, |_, e| e.refs == 0));
        assert!(!t.can_insert(101, |_, _| true));
        assert_eq!(t.bytes_through(0), 36);
        assert_eq!(t.bytes_through(1), 72);
        assert_eq!(t.bytes_through(7), 0);
    }
}
