//! Connection-ID routing lookups: the endpoint's table maps every
//! connection ID it issued to its connection, and every datagram costs a
//! lookup (issue 16 replaced SipHash there by `fast_hash::KeyedBuildHasher`).
//!
//! 10,000 connections with 8-byte IDs shaped like QUIC-LB IDs: a fixed
//! first octet and a two-byte server ID, then random bytes. Each iteration
//! looks up 1,024 IDs in turn (hits). Groups report lookups/s:
//! - `keyed_fold`: `HashMap` with `KeyedBuildHasher` (the endpoint's).
//! - `siphash`: std's `HashMap` with its default SipHash-1-3 (before).
//!
//! quinn-proto keeps its connection-ID table private, so it is not measured
//! beside these.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use quic_core::fast_hash::KeyedBuildHasher;
use quic_core::rand::{RandomSource, SystemRandom};
use quic_core::ConnectionId;

const CONNECTIONS: usize = 10_000;
const LOOKUPS: usize = 1024;

fn ids(rng: &mut SystemRandom) -> Vec<ConnectionId> {
    (0..CONNECTIONS)
        .map(|_| {
            let mut b = [0u8; 8];
            rng.fill(&mut b);
            // QUIC-LB: config rotation bits and a server ID up front.
            b[0] = 0x40;
            b[1] = 0x12;
            b[2] = 0x34;
            ConnectionId::new(&b).expect("8 bytes")
        })
        .collect()
}

fn bench_routing(c: &mut Criterion) {
    let mut rng = SystemRandom::new();
    let ids = ids(&mut rng);
    let probe: Vec<ConnectionId> = (0..LOOKUPS).map(|i| ids[(i * 7919) % CONNECTIONS]).collect();

    let mut keyed: HashMap<ConnectionId, u32, KeyedBuildHasher> = HashMap::with_hasher(KeyedBuildHasher::new(&mut rng));
    let mut sip: HashMap<ConnectionId, u32> = HashMap::new();
    for (i, id) in ids.iter().enumerate() {
        keyed.insert(*id, i as u32);
        sip.insert(*id, i as u32);
    }

    let mut group = c.benchmark_group("cid_routing_lookup");
    group.throughput(Throughput::Elements(LOOKUPS as u64));
    group.bench_function("keyed_fold", |b| b.iter(|| probe.iter().map(|id| u64::from(*keyed.get(black_box(id)).expect("hit"))).sum::<u64>()));
    group.bench_function("siphash", |b| b.iter(|| probe.iter().map(|id| u64::from(*sip.get(black_box(id)).expect("hit"))).sum::<u64>()));
    group.finish();
}

criterion_group!(benches, bench_routing);
criterion_main!(benches);
