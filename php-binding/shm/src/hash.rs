//! Keyed hashing for the index and the checksums.
//!
//! Every process sharing a region is a `fork()` of the one that created it,
//! so they all run the same code: `DefaultHasher::new()` (SipHash-1-3 with
//! fixed keys, documented to be identical for every instance) gives the same
//! answer in each of them. A per-region random seed is hashed first, which
//! keys the function: bucket placement is not predictable from outside and a
//! checksum written under one region's seed does not verify under another's.

use core::hash::Hasher;
use std::collections::hash_map::DefaultHasher;

/// Domain separation so an index hash can never pass as a checksum.
#[derive(Clone, Copy)]
#[repr(u8)]
pub(crate) enum Domain {
    Header = 0,
    Index = 1,
    Entry = 2,
    TicketKeys = 3,
}

pub(crate) fn keyed(seed: [u64; 2], domain: Domain, parts: &[&[u8]]) -> u64 {
    let mut h = DefaultHasher::new();
    h.write_u64(seed[0]);
    h.write_u64(seed[1]);
    h.write_u8(domain as u8);
    for p in parts {
        // Length first: ("ab","c") and ("a","bc") must differ.
        h.write_u64(p.len() as u64);
        h.write(p);
    }
    h.finish()
}
