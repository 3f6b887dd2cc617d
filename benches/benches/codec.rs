//! The small codecs every packet goes through, beside quinn-proto's where
//! it exposes one.
//!
//! - `varint_encode`: 1,024 varints of every length (1, 2, 4 and 8 bytes,
//!   RFC 9000 §16) written into a buffer; ours through
//!   `quic_core::codec::Writer::varint`, quinn-proto's through its public
//!   `coding::Codec` for `VarInt`. `Throughput::Elements`: varints/s.
//! - `initial_padding_decode`: the frames of a client Initial's payload (a
//!   300-byte CRYPTO frame, then PADDING to 1,162 bytes, RFC 9000 §14.1)
//!   walked with `FrameIter`. quinn-proto's frame decoder is private.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use quic_core::codec::Writer;
use quic_core::frame::{Frame, FrameContext, FrameIter};
use quinn_proto::coding::Codec;

const COUNT: usize = 1024;

/// Values of every varint length, in a fixed mix.
fn values() -> Vec<u64> {
    (0..COUNT as u64).map(|i| [i % 64, 64 + i * 13, 16_384 + i * 1_000_003, (1 << 30) + i * 0x1234_5678_9abc][i as usize % 4]).collect()
}

fn varint_encode(c: &mut Criterion) {
    let vals = values();
    let mut buf = vec![0u8; COUNT * 8];
    let mut g = c.benchmark_group("varint_encode");
    g.throughput(Throughput::Elements(COUNT as u64));
    g.bench_function("quicpro", |b| {
        b.iter(|| {
            let mut w = Writer::new(&mut buf);
            for &v in &vals {
                w.varint(black_box(v)).expect("room for every value");
            }
            black_box(w.len())
        })
    });
    let quinn_vals: Vec<quinn_proto::VarInt> = vals.iter().map(|&v| quinn_proto::VarInt::from_u64(v).expect("below 2^62")).collect();
    g.bench_function("quinn-proto", |b| {
        b.iter(|| {
            let mut out: &mut [u8] = &mut buf;
            for v in &quinn_vals {
                black_box(v).encode(&mut out);
            }
            black_box(out.len())
        })
    });
    g.finish();
}

fn initial_padding_decode(c: &mut Criterion) {
    let mut payload = vec![0u8; 1162];
    let crypto = Frame::Crypto { offset: 0, data: &[0x16; 300] };
    let mut w = Writer::new(&mut payload);
    crypto.encode(&mut w).expect("fits");
    let mut g = c.benchmark_group("initial_padding_decode");
    g.throughput(Throughput::Elements(1));
    g.bench_function("quicpro", |b| {
        b.iter(|| {
            let mut frames = 0usize;
            for f in FrameIter::for_packet(black_box(&payload), FrameContext::Initial) {
                match f.expect("a valid payload") {
                    Frame::Padding { len } => frames += len,
                    _ => frames += 1,
                }
            }
            black_box(frames)
        })
    });
    g.finish();
}

criterion_group!(benches, varint_encode, initial_padding_decode);
criterion_main!(benches);
