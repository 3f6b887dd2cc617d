//! The per-request hot path of a server answering small GETs, piece by
//! piece, with the allocations each piece makes.
//!
//! Groups (each reports operations/s, and prints allocations per operation
//! counted by this binary's global allocator):
//! - `response_section`: a response's QPACK field section (`:status` 200 and
//!   three fields), encoded the way `send_response` does it now
//!   (`encode_response_fields`: `:status` beside the caller's fields) and the
//!   way it did before (a merged field list with a `:status` string), on an
//!   encoder whose inserts are never acknowledged; then the same section
//!   repeated on an encoder whose inserts are acknowledged (a copy of the
//!   remembered indexed section) and on a server's encoder, which encodes
//!   small responses with the static table and literals only (a copy of the
//!   remembered literal section).
//! - `response_decode`: a client decoding the same literal response section
//!   again and again, with and without its decoder keeping the last one.
//! - `stream_response`: a send stream's life for a 1 KB response: HEADERS
//!   and DATA frame headers copied in, the body copied behind them or kept
//!   as its own `Bytes` segment, FIN, the data taken for a packet, and the
//!   ACK. The copy is what `H3Connection::send_data_bytes` does for bodies
//!   up to 1200 bytes.
//! - `stream_request`: a receive stream getting a whole request in one
//!   STREAM frame with FIN and the reader taking it.
//!
//! - `stream_bulk_copy`: a bulk response's send stream as `quicpro serve`
//!   fills it (256 KB body pieces, each behind its DATA frame header), and
//!   the data taken out for packets 1,200 bytes at a time, in order: the
//!   copy finds its segment from the last copy's instead of searching.
//!
//! quinn-proto and h3 keep their stream buffers and QPACK module private,
//! so there is no equivalent of theirs to run beside these.
//!
//! Running: `cargo bench -p quicpro-benches --bench request_path`;
//! `cargo test -p quicpro-benches --benches` runs each once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use h3_core::qpack::{DecodeResult, Decoder, DecoderConfig, Encoder, EncoderConfig, HeaderField};
use quic_core::stream::{RecvStream, RecvWindow, SendStream};
use quicpro_benches::CountingAlloc;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Allocations `f` makes per call, over `n` calls.
fn allocations_per_call(n: u64, mut f: impl FnMut()) -> f64 {
    let before = CountingAlloc::count();
    for _ in 0..n {
        f();
    }
    (CountingAlloc::count() - before) as f64 / n as f64
}

fn fields() -> [HeaderField; 3] {
    [
        HeaderField::new(Bytes::from_static(b"content-type"), Bytes::from_static(b"application/octet-stream")),
        HeaderField::new(Bytes::from_static(b"server"), Bytes::from_static(b"quicpro")),
        HeaderField::new(Bytes::from_static(b"content-length"), Bytes::from(1024.to_string())),
    ]
}

/// A connection's encoder as a server has it: dynamic table in use (the
/// peer's 4096-byte capacity). Every section goes on stream 0 and is
/// released right after, so the outstanding set stays small.
fn encoder() -> Encoder {
    Encoder::new(EncoderConfig::from_peer(4096, 100))
}

/// What the peer's decoder says after each section.
#[derive(Clone, Copy)]
enum Peer {
    /// A Stream Cancellation only: references released, inserts never
    /// acknowledged (every section is encoded afresh).
    Cancels,
    /// The cancellation and an Insert Count Increment for new inserts, as a
    /// decoder that has received them sends.
    AcknowledgesInserts,
}

/// One way of encoding a response section, measured: allocations per
/// section, then criterion's time. `encode` writes the section for stream
/// 0; a Stream Cancellation (RFC 9204 §4.4.2) then releases its references,
/// as an acknowledgment would.
fn section_variant(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    new_encoder: fn() -> Encoder,
    peer: Peer,
    mut encode: impl FnMut(&mut Encoder, &mut Vec<u8>, &mut Vec<u8>),
) {
    let (mut section, mut enc_stream) = (Vec::with_capacity(256), Vec::with_capacity(256));
    let mut once = |enc: &mut Encoder| {
        section.clear();
        enc_stream.clear();
        encode(enc, &mut section, &mut enc_stream);
        enc.feed_decoder_stream(&[0x40]).unwrap();
        let unacknowledged = enc.table().insert_count() - enc.known_received_count();
        if matches!(peer, Peer::AcknowledgesInserts) && unacknowledged > 0 {
            // RFC 9204 §4.4.3: 00 increment(6+); a response inserts at most
            // three entries.
            enc.feed_decoder_stream(&[unacknowledged as u8]).unwrap();
        }
        black_box(section.len());
    };
    let mut e = new_encoder();
    let per = allocations_per_call(10_000, || once(&mut e));
    eprintln!("response_section/{name}: {per:.2} allocations per section");
    g.bench_function(format!("quicpro/{name}"), |b| {
        let mut e = new_encoder();
        b.iter(|| once(&mut e))
    });
}

fn response_section(c: &mut Criterion) {
    let f = fields();
    let mut g = c.benchmark_group("response_section");
    g.throughput(Throughput::Elements(1));
    section_variant(&mut g, "encode_response_fields", encoder, Peer::Cancels, |enc, section, enc_stream| {
        enc.encode_response_fields(0, 200, &f, section, enc_stream);
    });
    section_variant(&mut g, "repeat_acknowledged_inserts", encoder, Peer::AcknowledgesInserts, |enc, section, enc_stream| {
        enc.encode_response_fields(0, 200, &f, section, enc_stream);
    });
    // A server's encoder (H3Config::qpack_response_static_max's default).
    let server = || Encoder::new(EncoderConfig { static_only_max: 256, ..EncoderConfig::from_peer(4096, 100) });
    section_variant(&mut g, "repeat_server_static_only", server, Peer::AcknowledgesInserts, |enc, section, enc_stream| {
        enc.encode_response_fields(0, 200, &f, section, enc_stream);
    });
    section_variant(&mut g, "merged_list", encoder, Peer::Cancels, |enc, section, enc_stream| {
        let mut all = Vec::with_capacity(f.len() + 1);
        all.push(HeaderField::new(&b":status"[..], 200u16.to_string().into_bytes()));
        all.extend_from_slice(&f);
        enc.encode_fields(0, &all, section, enc_stream);
    });
    g.finish();
}

/// A client decoding a server's response section (static table and
/// literals, as servers now encode small responses), the same bytes each
/// time, with and without the decoder keeping its last such section.
fn response_decode(c: &mut Criterion) {
    let f = fields();
    let mut enc = Encoder::new(EncoderConfig { static_only_max: 256, ..EncoderConfig::from_peer(4096, 100) });
    let (mut section, mut enc_stream) = (Vec::new(), Vec::new());
    enc.encode_response_fields(0, 200, &f, &mut section, &mut enc_stream);
    let mut g = c.benchmark_group("response_decode");
    g.throughput(Throughput::Elements(1));
    for keep in [false, true] {
        let name = if keep { "keep_last_static_section" } else { "decode_every_time" };
        let new_decoder = || Decoder::new(DecoderConfig { keep_last_static_section: keep, ..DecoderConfig::default() });
        let once = |d: &mut Decoder| match d.decode(0, &section) {
            Ok(DecodeResult::Decoded(fields)) => black_box(fields.len()),
            other => panic!("{other:?}"),
        };
        let mut d = new_decoder();
        let per = allocations_per_call(10_000, || {
            once(&mut d);
        });
        eprintln!("response_decode/{name}: {per:.2} allocations per section");
        g.bench_function(format!("quicpro/{name}"), |b| {
            let mut d = new_decoder();
            b.iter(|| once(&mut d))
        });
    }
    g.finish();
}

/// One response through a fresh send stream: write, send, acknowledge.
fn one_response(body: &Bytes, copy_body: bool, packet: &mut [u8]) {
    let mut s = SendStream::new(1 << 20, 1 << 20);
    let headers = [0x01u8; 28];
    let data_header = [0x00u8, 0x44, 0x00];
    s.write(&headers).unwrap();
    s.write(&data_header).unwrap();
    if copy_body {
        s.write(body).unwrap();
    } else {
        s.write_bytes(body.clone()).unwrap();
    }
    s.finish().unwrap();
    let chunk = s.next_chunk(packet.len(), u64::MAX).expect("data to send");
    assert!(s.copy_chunk(chunk.offset, chunk.len, &mut packet[..chunk.len]));
    s.on_ack(chunk.offset, chunk.len, chunk.fin);
    black_box(&s);
}

fn stream_response(c: &mut Criterion) {
    let body = Bytes::from(vec![0x5au8; 1024]);
    let mut packet = vec![0u8; 1400];
    let mut g = c.benchmark_group("stream_response");
    g.throughput(Throughput::Elements(1));
    for (name, copy) in [("body_copied", true), ("body_segment", false)] {
        let per = allocations_per_call(10_000, || one_response(&body, copy, &mut packet));
        eprintln!("stream_response/{name}: {per:.2} allocations per response");
        g.bench_function(format!("quicpro/{name}"), |b| b.iter(|| one_response(&body, copy, &mut packet)));
    }
    g.finish();
}

/// A whole request in one STREAM frame with FIN, then read.
fn one_request(frame: &[u8]) {
    let mut r = RecvStream::new(RecvWindow::new(1 << 20, 1 << 20));
    r.on_stream_frame(0, frame, true).unwrap();
    let c = r.read_chunk(usize::MAX).unwrap();
    assert!(c.fin && c.data.len() == frame.len());
    black_box(c);
}

fn stream_request(c: &mut Criterion) {
    let frame = [0x01u8; 60];
    let per = allocations_per_call(10_000, || one_request(&frame));
    eprintln!("stream_request/one_frame_with_fin: {per:.2} allocations per request");
    let mut g = c.benchmark_group("stream_request");
    g.throughput(Throughput::Elements(1));
    g.bench_function("quicpro/one_frame_with_fin", |b| b.iter(|| one_request(&frame)));
    g.finish();
}

fn stream_bulk_copy(c: &mut Criterion) {
    let piece = Bytes::from(vec![0xa5u8; 256 * 1024]);
    let mut s = SendStream::new(1 << 30, 1 << 30);
    for _ in 0..32 {
        s.write(&[0x00, 0x80, 0x04, 0x00, 0x00]).unwrap();
        s.write_bytes(piece.clone()).unwrap();
    }
    let total = s.next_chunk(usize::MAX, u64::MAX).expect("data").len as u64;
    let mut packet = [0u8; 1200];
    let mut g = c.benchmark_group("stream_bulk_copy");
    g.throughput(Throughput::Bytes(packet.len() as u64));
    g.bench_function("quicpro/in_order_1200", |b| {
        let mut off = 0u64;
        b.iter(|| {
            if off + 1200 > total {
                off = 0;
            }
            assert!(s.copy_chunk(off, 1200, &mut packet));
            off += 1200;
            black_box(&packet);
        })
    });
    g.finish();
}

/// A transfer's sender side per packet: take the next 1,200 bytes and, as
/// an in-order ACK would, acknowledge them (`SendStream::on_ack`'s in-order
/// path; quinn-proto's send buffer is private, so no peer beside it).
fn stream_ack(c: &mut Criterion) {
    let piece = Bytes::from(vec![0x5au8; 1 << 20]);
    // Stream credit for as many iterations as criterion asks (2^62 - 1,
    // the largest varint).
    let mut s = SendStream::new((1 << 62) - 1, 1 << 30);
    let mut g = c.benchmark_group("stream_ack");
    g.throughput(Throughput::Elements(1));
    g.bench_function("quicpro/in_order_1200", |b| {
        b.iter(|| {
            let chunk = match s.next_chunk(1200, u64::MAX) {
                Some(c) => c,
                None => {
                    s.write_bytes(piece.clone()).expect("room: everything sent is acknowledged");
                    s.next_chunk(1200, u64::MAX).expect("data")
                }
            };
            s.on_ack(chunk.offset, chunk.len, chunk.fin);
            black_box(s.acked_offset());
        })
    });
    g.finish();
}

criterion_group!(benches, response_section, response_decode, stream_response, stream_request, stream_bulk_copy, stream_ack);
criterion_main!(benches);
