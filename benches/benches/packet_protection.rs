//! Packet protection throughput for a 1200-byte packet (RFC 9001 §5).
//!
//! - `protect_1200B_packets`: AEAD seal of the payload, then header
//!   protection (RFC 9001 §5.3, §5.4.1), in place on one reused buffer. As
//!   protection is in place, each iteration first restores the plaintext
//!   header (11 bytes for a short header); the payload bytes are whatever
//!   the previous iteration left, which costs the AEAD the same.
//! - `unprotect_1200B_packets`: header protection removal, packet number
//!   recovery, AEAD open (RFC 9001 §5.4.1, RFC 9000 §A.3). Each iteration
//!   copies the 1200-byte protected packet into the working buffer with
//!   `copy_from_slice` and that memcpy is INCLUDED in the time;
//!   `memcpy-only` measures it alone so it can be subtracted.
//!
//! Throughput is `Elements(1)` per iteration, so criterion's "elem/s" reads
//! as packets per second on one core.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use quic_core::crypto::DirectionalKeys;
use quic_core::packet::number;
use quicpro_benches::{client_initial_keys, initial_packet, one_rtt_keys, short_header_packet, stream_payload, PlainPacket, PACKET_LEN, SHORT_DCID, SUITES};

/// Everything one protect/unprotect bench needs, built before measuring.
struct Case {
    name: &'static str,
    keys: DirectionalKeys,
    plain: PlainPacket,
    protected: Vec<u8>,
}

fn cases() -> (Vec<(&'static str, Case)>, Case) {
    let payload = stream_payload().expect("payload fits");
    let plain = short_header_packet(&payload).expect("packet fits");
    let short = SUITES
        .iter()
        .map(|&(suite, name)| {
            let keys = one_rtt_keys(suite).expect("1-RTT keys");
            let protected = plain.protected(&keys).expect("protect");
            ("short-header", Case { name, keys, plain: plain.clone(), protected })
        })
        .collect();
    let keys = client_initial_keys(&SHORT_DCID).expect("Initial keys");
    let initial = initial_packet(&SHORT_DCID).expect("Initial fits");
    let protected = initial.protected(&keys).expect("protect Initial");
    let initial = Case { name: "AES-128-GCM", keys, plain: initial, protected };
    (short, initial)
}

fn bench_protect(c: &mut Criterion) {
    let (short, initial) = cases();
    let mut group = c.benchmark_group("protect_1200B_packets");
    group.throughput(Throughput::Elements(1));
    for (kind, case) in short.iter().map(|(k, c)| (*k, c)).chain([("initial-long-header", &initial)]) {
        let header = case.plain.header().to_vec();
        let (pn_offset, pn_len) = (case.plain.layout.pn_offset, case.plain.layout.pn_len);
        let pn = case.plain.packet_number;
        let mut buf = case.plain.bytes.clone();
        group.bench_function(BenchmarkId::new(kind, case.name), |b| {
            b.iter(|| {
                buf[..header.len()].copy_from_slice(&header);
                case.keys.protect(pn, black_box(&mut buf), pn_offset, pn_len).expect("protect");
            })
        });
        // What the loop produced must be what a receiver can open.
        let mut check = buf.clone();
        let out = case.keys.unprotect(&mut check, pn_offset, |t, l| number::decode(t, l as u32 * 8, None)).expect("opens");
        assert_eq!(out.packet_number, pn);
    }
    group.finish();
}

fn bench_unprotect(c: &mut Criterion) {
    let (short, initial) = cases();
    let mut group = c.benchmark_group("unprotect_1200B_packets");
    group.throughput(Throughput::Elements(1));
    for (kind, case) in short.iter().map(|(k, c)| (*k, c)).chain([("initial-long-header", &initial)]) {
        let pn_offset = case.plain.layout.pn_offset;
        // A receiver that has already seen the previous packet (RFC 9000 A.3).
        let largest = case.plain.packet_number.checked_sub(1);
        let payload_len = case.plain.bytes.len() - case.plain.layout.header_len() - 16;
        let mut buf = vec![0u8; PACKET_LEN];
        group.bench_function(BenchmarkId::new(kind, case.name), |b| {
            b.iter(|| {
                // Included in the measurement: see the module comment.
                buf.copy_from_slice(&case.protected);
                let out = case.keys.unprotect(black_box(&mut buf), pn_offset, |t, l| number::decode(t, l as u32 * 8, largest)).expect("unprotect");
                debug_assert_eq!(out.payload_len, payload_len);
                black_box(out.payload_len)
            })
        });
        assert_eq!(&buf[case.plain.layout.header_len()..][..payload_len], &case.plain.bytes[case.plain.layout.header_len()..][..payload_len]);
    }
    let src = short.first().map(|(_, c)| c.protected.clone()).unwrap_or_default();
    let mut buf = vec![0u8; src.len()];
    group.bench_function("memcpy-only/1200B", |b| {
        b.iter(|| {
            buf.copy_from_slice(black_box(&src));
            black_box(&mut buf);
        })
    });
    group.finish();
}

criterion_group!(benches, bench_protect, bench_unprotect);
criterion_main!(benches);
