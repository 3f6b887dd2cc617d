//! QPACK (RFC 9204) encode and decode throughput over real header sets.
//!
//! Header sets come from the QPACK offline-interop QIF files `fb-req.qif`
//! (Facebook requests) and `netbsd.qif` (netbsd.org responses) in the
//! shared data directory. The QIF format is one `name<TAB>value` line per
//! field, a blank line between header sets, `#` for comments.
//!
//! Each header set is one field section on its own request stream. Encoder
//! and decoder run in lockstep, as over a real connection with no loss:
//! encoder-stream bytes reach the decoder before the section they support,
//! and the decoder's Section Acknowledgments / Insert Count Increments go
//! back to the encoder before the next set, so with a table capacity of
//! 4096 the dynamic table is really used (capacity 0 means static table and
//! literals only).
//!
//! Groups, each reporting header sets/s (`Throughput::Elements(sets)`):
//! - `qpack_encode`: the encoder alone; the decoder-stream bytes it needs are
//!   recorded once beforehand and replayed at the same points.
//! - `qpack_decode`: the decoder alone, replaying the recorded encoder stream
//!   and sections.
//! - `qpack_roundtrip`: both in lockstep.
//!
//! The `h3` crate (0.0.8, used by the interop tests) declares its QPACK
//! module private (`mod qpack;` in its lib.rs, under every feature set), so
//! its encoder/decoder cannot be benched beside ours from outside the crate.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use h3_core::qpack::{DecodeResult, Decoder, DecoderConfig, Encoder, EncoderConfig};

type HeaderSet = Vec<(Vec<u8>, Vec<u8>)>;

/// Locates `/work/shared/data` like the tests crate does.
fn shared_data() -> PathBuf {
    if let Ok(p) = std::env::var("QUICPRO_SHARED_DATA") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("..").join("shared").join("data")
}

/// Parses a QIF file into header sets.
fn parse_qif(text: &str) -> Vec<HeaderSet> {
    let mut sets = Vec::new();
    let mut cur: HeaderSet = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        if line.is_empty() {
            if !cur.is_empty() {
                sets.push(std::mem::take(&mut cur));
            }
            continue;
        }
        let (n, v) = line.split_once('\t').unwrap_or((line, ""));
        cur.push((n.as_bytes().to_vec(), v.as_bytes().to_vec()));
    }
    if !cur.is_empty() {
        sets.push(cur);
    }
    sets
}

fn load(name: &str) -> Vec<HeaderSet> {
    let path = shared_data().join("qpack-qifs").join("qifs").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let sets = parse_qif(&text);
    assert!(!sets.is_empty(), "{name} holds no header sets");
    sets
}

const BLOCKED_STREAMS: usize = 16;

fn encoder(cap: u64) -> Encoder {
    let mut c = EncoderConfig::from_peer(cap, BLOCKED_STREAMS);
    c.table_capacity = cap;
    Encoder::new(c)
}

fn decoder(cap: u64) -> Decoder {
    Decoder::new(DecoderConfig {
        max_table_capacity: cap,
        max_blocked_streams: BLOCKED_STREAMS,
        max_field_section_size: u64::MAX,
        keep_last_static_section: false,
    })
}

/// What one lockstep run exchanged, per header set.
struct Step {
    stream: u64,
    encoder_stream: Vec<u8>,
    section: Vec<u8>,
    decoder_stream: Vec<u8>,
}

/// Runs encoder and decoder in lockstep over `sets`; returns the exchange
/// and the number of dynamic-table inserts, checking every set round-trips.
fn lockstep(sets: &[HeaderSet], cap: u64) -> (Vec<Step>, u64) {
    let mut enc = encoder(cap);
    let mut dec = decoder(cap);
    let mut steps = Vec::with_capacity(sets.len());
    for (i, set) in sets.iter().enumerate() {
        let stream = 4 * i as u64;
        let (mut section, mut es, mut ds) = (Vec::new(), Vec::new(), Vec::new());
        enc.encode(stream, set, &mut section, &mut es);
        dec.feed_encoder_stream(&es).expect("valid encoder stream");
        match dec.decode(stream, &section).expect("valid section") {
            DecodeResult::Decoded(fields) => {
                assert_eq!(fields.len(), set.len());
                for (f, (n, v)) in fields.iter().zip(set) {
                    assert_eq!((&f.name[..], &f.value[..]), (&n[..], &v[..]));
                }
            }
            DecodeResult::Blocked => panic!("blocked although the inserts arrived first"),
        }
        dec.write_decoder_stream(&mut ds);
        enc.feed_decoder_stream(&ds).expect("valid decoder stream");
        steps.push(Step { stream, encoder_stream: es, section, decoder_stream: ds });
    }
    (steps, dec.insert_count())
}

fn bench_file(c: &mut Criterion, file: &str) {
    let sets = load(file);
    let n = sets.len() as u64;
    for cap in [0u64, 4096] {
        let (steps, inserts) = lockstep(&sets, cap);
        let sec: usize = steps.iter().map(|s| s.section.len()).sum();
        let es: usize = steps.iter().map(|s| s.encoder_stream.len()).sum();
        eprintln!("{file} cap {cap}: {n} sets, {inserts} inserts, {sec} section bytes + {es} encoder-stream bytes");
        let id = format!("{file}/cap{cap}");

        let mut g = c.benchmark_group("qpack_encode");
        g.throughput(Throughput::Elements(n));
        g.bench_function(format!("quicpro/{id}"), |b| {
            let (mut section, mut es) = (Vec::with_capacity(4096), Vec::with_capacity(4096));
            b.iter(|| {
                let mut enc = encoder(cap);
                let mut total = 0usize;
                for (set, st) in sets.iter().zip(&steps) {
                    section.clear();
                    es.clear();
                    enc.encode(st.stream, set, &mut section, &mut es);
                    total += section.len() + es.len();
                    enc.feed_decoder_stream(&st.decoder_stream).expect("recorded acks");
                }
                black_box(total)
            })
        });
        g.finish();

        let mut g = c.benchmark_group("qpack_decode");
        g.throughput(Throughput::Elements(n));
        g.bench_function(format!("quicpro/{id}"), |b| {
            let mut ds = Vec::with_capacity(256);
            b.iter(|| {
                let mut dec = decoder(cap);
                let mut total = 0usize;
                for st in &steps {
                    dec.feed_encoder_stream(&st.encoder_stream).expect("recorded");
                    if let DecodeResult::Decoded(f) = dec.decode(st.stream, &st.section).expect("recorded") {
                        total += f.len();
                    }
                    ds.clear();
                    dec.write_decoder_stream(&mut ds);
                }
                black_box(total)
            })
        });
        g.finish();

        let mut g = c.benchmark_group("qpack_roundtrip");
        g.throughput(Throughput::Elements(n));
        g.bench_function(format!("quicpro/{id}"), |b| {
            let (mut section, mut es, mut ds) = (Vec::new(), Vec::new(), Vec::new());
            b.iter(|| {
                let mut enc = encoder(cap);
                let mut dec = decoder(cap);
                let mut total = 0usize;
                for (i, set) in sets.iter().enumerate() {
                    let stream = 4 * i as u64;
                    section.clear();
                    es.clear();
                    ds.clear();
                    enc.encode(stream, set, &mut section, &mut es);
                    dec.feed_encoder_stream(&es).expect("valid");
                    if let DecodeResult::Decoded(f) = dec.decode(stream, &section).expect("valid") {
                        total += f.len();
                    }
                    dec.write_decoder_stream(&mut ds);
                    enc.feed_decoder_stream(&ds).expect("valid");
                }
                black_box(total)
            })
        });
        g.finish();
    }
}

fn qpack(c: &mut Criterion) {
    bench_file(c, "fb-req.qif");
    bench_file(c, "netbsd.qif");
}

criterion_group!(benches, qpack);
criterion_main!(benches);
