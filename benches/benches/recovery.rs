//! ACK processing in `quic_core::recovery::Recovery` (RFC 9002 A.7).
//!
//! - `in_order_ack`: the common case. 64 packets in flight; an ACK every
//!   second packet, each newly acknowledging two.
//! - `ack_500_ranges_512_losses`: the case a hostile peer can build. 512
//!   packets were declared lost and are remembered for spurious-loss undo;
//!   the ACK has 500 ranges. Before this session each remembered loss was
//!   checked against every range, about 256,000 steps per ACK (found by
//!   `cli/tests/dos.rs`). It is now a binary search per range.
//!
//! - `pacer_per_packet`: the pacer's question before each packet of a bulk
//!   sender (`Pacer::delay_until` then `on_sent`), 1,472-byte packets with
//!   the clock advancing 1 µs each, a 1 MB window over a 1 ms RTT. Its
//!   rate arithmetic runs in 64 bits where the product fits (it was 128-bit
//!   divisions, about 1.5 % of `quicpro serve` in bulk under `perf`).
//!
//! The groups report ACK frames (packets, for the pacer) processed per
//! second. quinn-proto's recovery state and pacer are private to its
//! `Connection`, so there is no equivalent to measure beside them.

use std::hint::black_box;
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use quic_core::recovery::sent::SentPacket;
use quic_core::recovery::SpaceId;
use quic_core::recovery::{AckOutcome, Pacer, Recovery, RecoveryConfig};

fn sent(pn: u64, t: Instant) -> SentPacket<()> {
    SentPacket { pn, time_sent: t, size: 1200, ack_eliciting: true, in_flight: true, mtu_probe: false, rate: Default::default(), payload: () }
}

/// A sender with `n` packets in flight, one per millisecond from `t0`.
fn with_in_flight(n: u64, t0: Instant) -> Recovery<()> {
    let mut r = Recovery::new(RecoveryConfig::new(true));
    for pn in 0..n {
        r.on_packet_sent(SpaceId::Data, sent(pn, t0 + Duration::from_millis(pn)));
    }
    r
}

fn ack(r: &mut Recovery<()>, ranges: &[RangeInclusive<u64>], now: Instant, out: &mut AckOutcome<()>) {
    r.on_ack_received(SpaceId::Data, ranges.iter().cloned(), Duration::ZERO, None, now, true, out).expect("valid ACK");
}

fn bench_recovery(c: &mut Criterion) {
    let t0 = Instant::now();
    let mut group = c.benchmark_group("recovery_ack");
    group.throughput(Throughput::Elements(32));
    group.bench_function("in_order_ack", |b| {
        b.iter_batched(
            || with_in_flight(64, t0),
            |mut r| {
                let mut out = AckOutcome::default();
                for i in 0..32u64 {
                    ack(&mut r, &[0..=2 * i + 1], t0 + Duration::from_millis(100 + i), &mut out);
                }
                black_box(r.bytes_in_flight())
            },
            BatchSize::SmallInput,
        )
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("ack_500_ranges_512_losses", |b| {
        b.iter_batched(
            || {
                // 2,000 sent; every even one acknowledged, so the odd ones
                // are declared lost by packet threshold and remembered.
                let mut r = with_in_flight(2000, t0);
                let mut out = AckOutcome::default();
                let evens: Vec<RangeInclusive<u64>> = (0..1000u64).rev().map(|i| 2 * i..=2 * i).collect();
                for chunk in evens.chunks(250) {
                    ack(&mut r, chunk, t0 + Duration::from_secs(3), &mut out);
                }
                // The hostile ACK: the same 500 top odd packets, one range each.
                let odd: Vec<RangeInclusive<u64>> = (500..1000u64).rev().map(|i| 2 * i + 1..=2 * i + 1).collect();
                (r, odd)
            },
            |(mut r, odd)| {
                let mut out = AckOutcome::default();
                ack(&mut r, &odd, t0 + Duration::from_secs(4), &mut out);
                black_box(out.spurious)
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();

    let mut group = c.benchmark_group("pacer");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("pacer_per_packet", |b| {
        let mut p = Pacer::new(1472);
        let mut now = t0;
        b.iter(|| {
            for _ in 0..1000 {
                now += Duration::from_micros(1);
                if p.delay_until(now, 1472, 1_000_000, Duration::from_millis(1)).is_none() {
                    p.on_sent(now, 1472);
                }
            }
            black_box(p.tokens())
        })
    });
    group.finish();
}

criterion_group!(benches, bench_recovery);
criterion_main!(benches);
