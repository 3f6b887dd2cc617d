//! Property test: the shared index + LRU behaves exactly like a simple
//! model (a BTreeMap plus a recency list) for random operation sequences.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, VecDeque};

use proptest::prelude::*;
use quicpro_shm::{SharedSessionCache, ShmRegion, DEFAULT_SLOT_SIZE};

#[derive(Debug, Clone)]
enum Op {
    Put(u8, u8),
    Get(u8),
    Take(u8),
}

fn op() -> impl Strategy<Value = Op> {
    // 48 keys over a 16-entry cache: plenty of hits, misses and evictions.
    // Value lengths up to 255 cover the oversized case (slot holds 208).
    prop_oneof![
        3 => (0u8..48, any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
        2 => (0u8..48).prop_map(Op::Get),
        1 => (0u8..48).prop_map(Op::Take),
    ]
}

/// The reference: entries plus recency order (front = most recent).
struct Model {
    cap: usize,
    max_entry: usize,
    map: BTreeMap<Vec<u8>, Vec<u8>>,
    recency: VecDeque<Vec<u8>>,
    evictions: u64,
}

impl Model {
    fn touch(&mut self, k: &[u8]) {
        self.recency.retain(|x| x != k);
        self.recency.push_front(k.to_vec());
    }

    fn put(&mut self, k: Vec<u8>, v: Vec<u8>) -> bool {
        if k.len() + v.len() > self.max_entry {
            return false;
        }
        if !self.map.contains_key(&k) && self.map.len() == self.cap {
            let victim = self.recency.pop_back().unwrap();
            self.map.remove(&victim);
            self.evictions += 1;
        }
        self.touch(&k);
        self.map.insert(k, v);
        true
    }

    fn get(&mut self, k: &[u8]) -> Option<Vec<u8>> {
        let v = self.map.get(k).cloned();
        if v.is_some() {
            self.touch(k);
        }
        v
    }

    fn take(&mut self, k: &[u8]) -> Option<Vec<u8>> {
        let v = self.map.remove(k);
        self.recency.retain(|x| x != k);
        v
    }
}

fn key(k: u8) -> Vec<u8> {
    // Variable key lengths exercise the length comparisons.
    vec![k; 1 + (k as usize % 40)]
}

fn val(k: u8, v: u8) -> Vec<u8> {
    let len = (v as usize * 3) % 256;
    (0..len).map(|i| k ^ v ^ i as u8).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn matches_model(ops in proptest::collection::vec(op(), 1..400)) {
        let region = ShmRegion::create(ShmRegion::min_size(DEFAULT_SLOT_SIZE)).unwrap();
        let c = SharedSessionCache::new(&region);
        let mut m = Model {
            cap: c.capacity(),
            max_entry: c.max_entry_len(),
            map: BTreeMap::new(),
            recency: VecDeque::new(),
            evictions: 0,
        };
        for o in &ops {
            match *o {
                Op::Put(k, v) => prop_assert_eq!(c.insert(&key(k), &val(k, v)), m.put(key(k), val(k, v))),
                Op::Get(k) => prop_assert_eq!(c.lookup(&key(k)), m.get(&key(k))),
                Op::Take(k) => prop_assert_eq!(c.remove(&key(k)), m.take(&key(k))),
            }
            prop_assert_eq!(c.len(), m.map.len());
        }
        prop_assert_eq!(c.stats().evictions, m.evictions);
        let cons = c.check_consistency().unwrap();
        prop_assert!(cons.is_consistent(c.capacity()), "{:?}", cons);
        // Same contents (eviction order was checked along the way: every
        // lookup after an eviction compares with the model).
        for k in m.recency.clone().iter().rev() {
            prop_assert_eq!(c.lookup(k), m.get(k));
        }
        prop_assert_eq!(c.len(), m.map.len());
    }
}
