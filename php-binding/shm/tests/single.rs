//! One-process behaviour of the shared cache: semantics, LRU, limits,
//! statistics, tracing, corruption handling and the ticketer.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use quicpro_shm::{
    CacheStats, Corruption, SharedSessionCache, SharedTicketer, ShmError, ShmRegion, TraceEvent, TraceOp, TraceOutcome, DEFAULT_SHM_SIZE, DEFAULT_SLOT_SIZE,
    MIN_ENTRIES,
};
use rustls::server::{ProducesTickets, StoresServerSessions};

fn key(i: usize) -> Vec<u8> {
    let mut k = vec![0u8; 32];
    k[..8].copy_from_slice(&(i as u64).to_be_bytes());
    k[8] = 0xAB;
    k
}

fn value(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 31 + j) as u8).collect()
}

fn cache(size: usize) -> SharedSessionCache {
    SharedSessionCache::new(&ShmRegion::create(size).unwrap())
}

#[test]
fn sizing() {
    assert_eq!(ShmRegion::entries_for(DEFAULT_SHM_SIZE, DEFAULT_SLOT_SIZE).unwrap(), 249);
    assert_eq!(ShmRegion::entries_for(1 << 20, DEFAULT_SLOT_SIZE).unwrap(), 4029);
    assert_eq!(ShmRegion::entries_for(16 << 20, DEFAULT_SLOT_SIZE).unwrap(), 64509);
    let r = ShmRegion::create(DEFAULT_SHM_SIZE).unwrap();
    let l = r.layout();
    assert_eq!(l.slot_count, 249);
    assert_eq!(l.header_size, 576);
    assert_eq!(l.max_entry_len, DEFAULT_SLOT_SIZE - quicpro_shm::SLOT_HEADER_SIZE);
    assert!(l.slots_offset + l.slot_count * l.slot_size <= l.region_size);
    assert!(l.bucket_count >= l.slot_count && l.bucket_count.is_power_of_two());

    let min = ShmRegion::min_size(DEFAULT_SLOT_SIZE);
    assert_eq!(ShmRegion::create(min).unwrap().layout().slot_count, MIN_ENTRIES);
    match ShmRegion::create(min - 1) {
        Err(ShmError::TooSmall { size, min: m, min_entries }) => {
            assert_eq!((size, m, min_entries), (min - 1, min, MIN_ENTRIES));
        }
        other => panic!("expected TooSmall, got {other:?}"),
    }
    assert!(matches!(ShmRegion::create(100), Err(ShmError::TooSmall { .. })));
    assert!(matches!(ShmRegion::create_with_slot_size(1 << 16, 100), Err(ShmError::BadSlotSize { .. })));
    assert!(matches!(ShmRegion::create_with_slot_size(1 << 16, 260), Err(ShmError::BadSlotSize { .. })));
    assert!(ShmError::TooSmall { size: 1, min: 2, min_entries: 16 }.to_string().contains("too small"));
    // A slot size that fits the longest SNI (253 bytes -> 328-byte value).
    let big = ShmRegion::create_with_slot_size(DEFAULT_SHM_SIZE, 416).unwrap();
    assert!(big.layout().max_entry_len >= 32 + 328);
}

#[test]
fn put_get_take() {
    let c = cache(DEFAULT_SHM_SIZE);
    assert!(c.can_cache());
    assert_eq!(c.get(&key(1)), None);
    assert!(c.put(key(1), value(1, 80)));
    assert!(c.put(key(2), value(2, 80)));
    assert_eq!(c.len(), 2);
    // get does not consume.
    assert_eq!(c.get(&key(1)), Some(value(1, 80)));
    assert_eq!(c.get(&key(1)), Some(value(1, 80)));
    // take does.
    assert_eq!(c.take(&key(1)), Some(value(1, 80)));
    assert_eq!(c.take(&key(1)), None);
    assert_eq!(c.get(&key(1)), None);
    assert_eq!(c.len(), 1);
    // put overwrites.
    assert!(c.put(key(2), value(9, 10)));
    assert_eq!(c.get(&key(2)), Some(value(9, 10)));
    assert_eq!(c.len(), 1);
    // Empty key and empty value are legal.
    assert!(c.put(Vec::new(), Vec::new()));
    assert_eq!(c.get(&[]), Some(Vec::new()));
    // A clone is the same cache.
    let c2 = c.clone();
    assert_eq!(c2.take(&key(2)), Some(value(9, 10)));
    assert_eq!(c.get(&key(2)), None);
    assert!(c.check_consistency().unwrap().is_consistent(c.capacity()));
}

#[test]
fn lru_evicts_least_recently_used() {
    let c = cache(DEFAULT_SHM_SIZE);
    let cap = c.capacity();
    for i in 0..cap {
        assert!(c.put(key(i), value(i, 64)));
    }
    assert_eq!(c.len(), cap);
    assert_eq!(c.stats().evictions, 0);
    // Touch key 0: key 1 is now the least recently used.
    assert!(c.get(&key(0)).is_some());
    assert!(c.put(key(cap), value(cap, 64)));
    assert_eq!(c.len(), cap);
    assert_eq!(c.stats().evictions, 1);
    assert_eq!(c.get(&key(1)), None);
    assert_eq!(c.get(&key(0)), Some(value(0, 64)));
    assert_eq!(c.get(&key(cap)), Some(value(cap, 64)));
    // Next victims in insertion order: 2, 3, ...
    for j in 0..10 {
        assert!(c.put(key(cap + 1 + j), value(0, 8)));
        assert_eq!(c.get(&key(2 + j)), None, "key {} should be evicted", 2 + j);
    }
    assert!(c.get(&key(12)).is_some());
    // A take frees a slot: the next put evicts nothing.
    let ev = c.stats().evictions;
    assert!(c.take(&key(12)).is_some());
    assert!(c.put(key(10_000), value(1, 1)));
    assert_eq!(c.stats().evictions, ev);
    assert!(c.check_consistency().unwrap().is_consistent(cap));
}

#[test]
fn oversized_refused() {
    let c = cache(DEFAULT_SHM_SIZE);
    let max = c.max_entry_len();
    assert!(c.put(key(1), value(1, max - 32)));
    assert_eq!(c.get(&key(1)).unwrap().len(), max - 32);
    assert!(!c.put(key(2), value(2, max - 31)));
    assert!(!c.put(vec![7; max + 1], Vec::new()));
    // A refused put leaves an existing entry alone.
    assert!(!c.put(key(1), value(3, 4096)));
    assert_eq!(c.get(&key(1)).unwrap(), value(1, max - 32));
    let s = c.stats();
    assert_eq!(s.oversized, 3);
    assert_eq!(s.inserts, 1);
}

#[test]
fn stats_count_every_operation() {
    let c = cache(ShmRegion::min_size(DEFAULT_SLOT_SIZE));
    let cap = c.capacity();
    for i in 0..cap + 5 {
        assert!(c.put(key(i), value(i, 40)));
    }
    assert!(c.put(key(cap + 4), value(1, 40))); // replace
    assert!(c.get(&key(0)).is_none()); // evicted
    assert!(c.get(&key(cap)).is_some());
    assert!(c.take(&key(cap + 1)).is_some());
    assert!(c.take(&key(cap + 1)).is_none());
    assert!(!c.put(key(1), vec![0; 4096]));
    let s = c.stats();
    assert_eq!(
        s,
        CacheStats {
            entries: cap as u64 - 1,
            capacity: cap as u64,
            inserts: cap as u64 + 6,
            replaced: 1,
            hits: 2,
            misses: 2,
            takes: 1,
            evictions: 5,
            oversized: 1,
            ..CacheStats::default()
        }
    );
    // entries = inserts - replaced - evictions - takes
    assert_eq!(s.entries, s.inserts - s.replaced - s.evictions - s.takes);
}

#[test]
fn trace_hook_sees_every_lookup() {
    let mut c = cache(DEFAULT_SHM_SIZE);
    let seen: Arc<Mutex<Vec<TraceEvent>>> = Arc::default();
    let s2 = seen.clone();
    c.set_trace(move |e: &TraceEvent| s2.lock().unwrap().push(*e));
    let k = vec![0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7];
    assert!(c.get(&k).is_none());
    assert!(c.put(k.clone(), b"v".to_vec()));
    assert!(c.get(&k).is_some());
    assert!(c.take(&k).is_some());
    assert!(c.take(&k).is_none());
    assert!(!c.put(k.clone(), vec![0; 1000]));
    let ev = seen.lock().unwrap().clone();
    let ops: Vec<(TraceOp, TraceOutcome)> = ev.iter().map(|e| (e.op, e.outcome)).collect();
    assert_eq!(
        ops,
        vec![
            (TraceOp::Get, TraceOutcome::Miss),
            (TraceOp::Put, TraceOutcome::Stored),
            (TraceOp::Get, TraceOutcome::Hit),
            (TraceOp::Take, TraceOutcome::Hit),
            (TraceOp::Take, TraceOutcome::Miss),
            (TraceOp::Put, TraceOutcome::Oversized),
        ]
    );
    assert!(ev.iter().all(|e| e.key_prefix_hex() == "deadbeef01020304" && e.key_len == 11));
    assert!(ev[0].to_string().contains("deadbeef01020304"));
    c.clear_trace();
    assert!(c.get(&k).is_none());
    assert_eq!(seen.lock().unwrap().len(), 6);
}

/// Overwrites `bytes` at `off` in the region.
fn scribble(r: &ShmRegion, off: usize, bytes: &[u8]) {
    assert!(off + bytes.len() <= r.layout().region_size);
    // SAFETY: in bounds (checked); corrupting the region is the point.
    unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), r.as_mut_ptr().add(off), bytes.len()) };
}

#[test]
fn header_corruption_is_detected_and_repaired() {
    // (offset in the header, bytes, expected finding)
    let cases: [(usize, &[u8], Corruption); 4] = [
        (0, b"XXXXXXXX", Corruption::BadMagic),
        (8, &[9, 0, 0, 0], Corruption::BadVersion(9)),
        (16, &[1, 2, 3], Corruption::BadGeometry), // region size
        (64, &[0x55], Corruption::BadChecksum),    // the checksum itself
    ];
    for (off, bytes, want) in cases {
        let r = ShmRegion::create(DEFAULT_SHM_SIZE).unwrap();
        let c = SharedSessionCache::new(&r);
        for i in 0..10 {
            assert!(c.put(key(i), value(i, 50)));
        }
        assert_eq!(r.validate(), Ok(()));
        scribble(&r, off, bytes);
        assert_eq!(r.validate(), Err(want));
        // The damaged region is not trusted: a miss, counted, and the
        // region re-initialised under the lock.
        assert_eq!(c.get(&key(3)), None);
        let s = c.stats();
        assert_eq!((s.header_corruptions, s.reinits, s.misses), (1, 1, 1));
        assert_eq!(r.validate(), Ok(()));
        assert_eq!(c.len(), 0);
        assert!(c.put(key(3), value(3, 50)));
        assert_eq!(c.get(&key(3)), Some(value(3, 50)));
        assert!(c.check_consistency().unwrap().is_consistent(c.capacity()));
    }
}

#[test]
fn corrupt_entry_is_dropped_not_returned() {
    let r = ShmRegion::create(DEFAULT_SHM_SIZE).unwrap();
    let c = SharedSessionCache::new(&r);
    assert!(c.put(key(1), value(1, 100)));
    assert!(c.put(key(2), value(2, 100)));
    let l = r.layout();
    // Slot 0 holds key 1 (first allocation); flip a value byte.
    let off = l.slots_offset + quicpro_shm::SLOT_HEADER_SIZE + 32 + 10;
    // SAFETY: reading inside the mapping.
    let old = unsafe { *r.as_mut_ptr().add(off) };
    scribble(&r, off, &[old ^ 0x01]);
    assert_eq!(c.get(&key(1)), None);
    assert_eq!(c.get(&key(1)), None);
    assert_eq!(c.get(&key(2)), Some(value(2, 100)));
    let s = c.stats();
    assert_eq!(s.corrupt_entries, 1);
    assert_eq!(s.entries, 1);
    assert!(c.check_consistency().unwrap().is_consistent(c.capacity()));
    // A damaged length cannot make a lookup read beyond the slot.
    let len_off = l.slots_offset + l.slot_size + 6; // slot 1, val_len
    scribble(&r, len_off, &[0xff, 0xff]);
    assert_eq!(c.get(&key(2)), None);
    assert_eq!(c.stats().corrupt_entries, 2);
}

#[test]
fn broken_links_trigger_a_rebuild() {
    let r = ShmRegion::create(DEFAULT_SHM_SIZE).unwrap();
    let c = SharedSessionCache::new(&r);
    for i in 0..50 {
        assert!(c.put(key(i), value(i, 60)));
    }
    let l = r.layout();
    // Point slot 7's LRU links and hash link out of range.
    let slot7 = l.slots_offset + 7 * l.slot_size;
    scribble(&r, slot7 + 16, &[0xee, 0xee, 0x00, 0x00]); // hash_next
    scribble(&r, slot7 + 20, &[0x10, 0x27, 0x00, 0x00]); // lru_prev = 10000
                                                         // Keep using the cache: every answer is either absent or right.
    for i in 0..60 {
        if let Some(v) = c.get(&key(i)) {
            assert_eq!(v, value(i, 60));
        }
        assert!(c.put(key(100 + i), value(100 + i, 60)));
    }
    assert!(c.stats().rebuilds >= 1);
    assert!(c.check_consistency().unwrap().is_consistent(c.capacity()));
    for i in 100..160 {
        assert_eq!(c.get(&key(i)), Some(value(i, 60)));
    }
}

#[test]
fn random_scribbles_never_yield_wrong_values() {
    // Deterministic xorshift so failures reproduce.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let r = ShmRegion::create(DEFAULT_SHM_SIZE).unwrap();
    let c = SharedSessionCache::new(&r);
    let l = r.layout();
    let table_start = l.buckets_offset;
    for round in 0..200 {
        for _ in 0..20 {
            let i = (next() % 400) as usize;
            match next() % 3 {
                0 => {
                    c.put(key(i), value(i, 20 + i % 100));
                }
                1 => {
                    if let Some(v) = c.get(&key(i)) {
                        assert_eq!(v, value(i, 20 + i % 100), "round {round}");
                    }
                }
                _ => {
                    if let Some(v) = c.take(&key(i)) {
                        assert_eq!(v, value(i, 20 + i % 100), "round {round}");
                    }
                }
            }
        }
        // Scribble 1-8 random bytes over the index or the slots.
        let n = 1 + (next() % 8) as usize;
        let off = table_start + (next() as usize % (l.region_size - table_start - n));
        let junk: Vec<u8> = (0..n).map(|_| next() as u8).collect();
        scribble(&r, off, &junk);
    }
    let s = c.stats();
    assert!(s.corrupt_entries + s.rebuilds > 0, "{s:?}");
    let _ = c.check_consistency().unwrap();
}

#[test]
fn lock_wait_is_bounded() {
    let r = ShmRegion::create(DEFAULT_SHM_SIZE).unwrap();
    let c = SharedSessionCache::new(&r);
    assert!(c.put(key(1), value(1, 10)));
    r.set_lock_timeout(Duration::from_millis(20));
    let mut inner = None;
    // Locking again from the holder cannot succeed (deadlock or timeout
    // error): the lookup must give up and count it.
    assert!(r.debug_hold_lock(|| inner = Some((c.get(&key(1)), c.put(key(2), value(2, 1))))));
    assert_eq!(inner, Some((None, false)));
    let s = c.stats();
    assert_eq!(s.lock_failures, 2);
    // The hold set the dirty flag and cleared it; the table is intact.
    assert_eq!(c.get(&key(1)), Some(value(1, 10)));
}

#[test]
fn ticketer_round_trip_rotation_and_forgery() {
    let r = ShmRegion::create(DEFAULT_SHM_SIZE).unwrap();
    let t = SharedTicketer::new(&r);
    let c = SharedSessionCache::new(&r);
    assert!(t.enabled());
    assert_eq!(t.lifetime(), 6 * 3600);
    let plain = b"session state".to_vec();
    let t1 = t.encrypt(&plain).unwrap();
    assert_eq!(t1.len(), 1 + 12 + plain.len() + 16);
    assert_eq!(t.decrypt(&t1), Some(plain.clone()));
    // Random nonce: same plaintext, different tickets.
    let t1b = t.encrypt(&plain).unwrap();
    assert_ne!(t1, t1b);
    // A second ticketer on the same region shares the keys.
    assert_eq!(SharedTicketer::new(&r).decrypt(&t1b), Some(plain.clone()));
    // Tampering anywhere fails; short input fails without panicking.
    for i in 0..t1.len() {
        let mut bad = t1.clone();
        bad[i] ^= 0x80;
        assert_eq!(t.decrypt(&bad), None, "byte {i}");
    }
    for n in 0..29 {
        assert_eq!(t.decrypt(&t1[..n.min(t1.len())]), None);
    }
    // One rotation: old tickets still open (previous key), new ones use
    // the new key id.
    assert!(t.debug_rotate_now());
    let t2 = t.encrypt(&plain).unwrap();
    assert_ne!(t2[0], t1[0]);
    assert_eq!(t.decrypt(&t1), Some(plain.clone()));
    assert_eq!(t.decrypt(&t2), Some(plain.clone()));
    // Two rotations: the first key is erased.
    assert!(t.debug_rotate_now());
    assert_eq!(t.decrypt(&t1), None);
    assert_eq!(t.decrypt(&t2), Some(plain.clone()));
    let s = c.stats();
    assert_eq!(s.key_rotations, 2);
    assert_eq!(s.tickets_issued, 3);
    // Every tampered byte, every truncation, and t1 after its key was erased.
    assert_eq!(s.tickets_rejected, t1.len() as u64 + 29 + 1);
    assert_eq!(s.tickets_accepted, 5);
    // Damaged key block: replaced under the lock, old tickets no longer open.
    scribble(&r, r.layout().ticket_keys_offset, &[0; 4]);
    assert_eq!(t.decrypt(&t2), None);
    let t3 = t.encrypt(&plain).unwrap();
    assert_eq!(t.decrypt(&t3), Some(plain));
}

#[test]
fn duplicated_entry_cannot_resurrect_a_taken_session() {
    let r = ShmRegion::create(DEFAULT_SHM_SIZE).unwrap();
    let c = SharedSessionCache::new(&r);
    assert!(c.put(key(1), value(1, 90)));
    assert!(c.put(key(2), value(2, 90)));
    let l = r.layout();
    let slot = |i: usize| l.slots_offset + i * l.slot_size;
    // Copy slot 0 (key 1, a valid checksummed entry) over free slot 5.
    // SAFETY: both ranges lie inside the mapping.
    let bytes = unsafe { std::slice::from_raw_parts(r.as_mut_ptr().add(slot(0)), l.slot_size).to_vec() };
    scribble(&r, slot(5), &bytes);
    // Break slot 1's LRU back-link so the next operation rebuilds.
    scribble(&r, slot(1) + 20, &[0x34, 0x12, 0, 0]);
    assert_eq!(c.take(&key(2)), Some(value(2, 90)));
    let s = c.stats();
    assert!(s.rebuilds >= 1, "{s:?}");
    assert_eq!(s.corrupt_entries, 1, "the duplicate is dropped");
    assert_eq!(c.take(&key(1)), Some(value(1, 90)));
    assert_eq!(c.take(&key(1)), None);
    assert_eq!(c.len(), 0);
    assert!(c.check_consistency().unwrap().is_consistent(c.capacity()));
}

#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync + Clone>() {}
    check::<ShmRegion>();
    check::<SharedSessionCache>();
    fn check_nc<T: Send + Sync>() {}
    check_nc::<SharedTicketer>();
    // Usable from another thread of the same process.
    let c = cache(DEFAULT_SHM_SIZE);
    let c2 = c.clone();
    std::thread::spawn(move || assert!(c2.put(key(5), value(5, 5)))).join().unwrap();
    assert_eq!(c.get(&key(5)), Some(value(5, 5)));
}
