//! Frame decoding throughput over decrypted 1-RTT payloads (RFC 9000 §19).
//!
//! Each iteration walks a whole payload of a 1200-byte packet with
//! [`FrameIter::for_packet`] (so the RFC 9000 §12.4 packet-type check is
//! included) and touches every frame: STREAM ids/offsets/lengths are summed,
//! ACK ranges are walked, as the connection would when acting on them.
//!
//! - `stream`: 10 STREAM frames of 110 bytes with a Length field + PADDING.
//! - `ack31-ranges+stream`: one ACK with 31 ranges (ACK Range Count 30),
//!   then 110-byte STREAM frames + PADDING.
//!
//! `frame_decode_1200B_packets` uses `Throughput::Elements(1)`: elem/s are
//! packets/s. `frame_decode_bytes` reports the same work as payload bytes/s.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use quic_core::frame::{Frame, FrameContext, FrameIter};
use quicpro_benches::{ack_payload, stream_payload, ONE_RTT_PAYLOAD_LEN};

/// Decodes every frame of `payload` and folds what it carries into a sum so
/// nothing can be optimised away. Returns (frames, sum).
fn decode_and_touch(payload: &[u8]) -> (usize, u64) {
    let mut frames = 0;
    let mut sum = 0u64;
    for f in FrameIter::for_packet(payload, FrameContext::OneRtt) {
        match f.expect("fixture payloads are valid") {
            Frame::Stream { id, offset, fin, data } => {
                sum = sum.wrapping_add(id ^ offset).wrapping_add(data.len() as u64 + u64::from(fin));
            }
            Frame::Ack(ack) => {
                for r in ack.iter() {
                    sum = sum.wrapping_add(r.end() - r.start() + 1);
                }
                sum = sum.wrapping_add(ack.ack_delay());
            }
            Frame::Padding { len } => sum = sum.wrapping_add(len as u64),
            _ => sum = sum.wrapping_add(1),
        }
        frames += 1;
    }
    (frames, sum)
}

fn payloads() -> [(&'static str, Vec<u8>, usize); 2] {
    let stream = stream_payload().expect("stream payload fits");
    let ack = ack_payload().expect("ack payload fits");
    let (sf, _) = decode_and_touch(&stream);
    let (af, _) = decode_and_touch(&ack);
    // 10 STREAM + one PADDING run; ACK + STREAM frames (+ PADDING).
    assert_eq!(sf, 11);
    assert!(af >= 9, "{af}");
    [("stream", stream, sf), ("ack31-ranges+stream", ack, af)]
}

fn bench_frames(c: &mut Criterion) {
    let payloads = payloads();
    let mut group = c.benchmark_group("frame_decode_1200B_packets");
    group.throughput(Throughput::Elements(1));
    for (name, payload, frames) in &payloads {
        group.bench_function(*name, |b| {
            b.iter(|| {
                let (n, sum) = decode_and_touch(black_box(payload));
                debug_assert_eq!(n, *frames);
                black_box(sum)
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("frame_decode_bytes");
    group.throughput(Throughput::Bytes(ONE_RTT_PAYLOAD_LEN as u64));
    for (name, payload, _) in &payloads {
        group.bench_function(*name, |b| b.iter(|| black_box(decode_and_touch(black_box(payload)))));
    }
    group.finish();
}

criterion_group!(benches, bench_frames);
criterion_main!(benches);
