//! Property tests: Encoder -> Decoder round trips under random settings,
//! random chunking and reordering of the encoder and decoder streams, and
//! decoding of arbitrary bytes never panics.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use h3_core::qpack::{huffman, prefix_int, DecodeResult, Decoder, DecoderConfig, Encoder, EncoderConfig, HeaderField};
use proptest::prelude::*;

/// Small deterministic RNG for scheduling decisions (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Delivers a random prefix of `pending` (all of it if `all`) in random
/// chunks to `sink`, removing what was delivered.
fn deliver<E: std::fmt::Debug>(rng: &mut Rng, pending: &mut Vec<u8>, all: bool, mut sink: impl FnMut(&[u8]) -> Result<(), E>) {
    let n = if all { pending.len() } else { rng.below(pending.len() + 1) };
    let mut sent = 0;
    while sent < n {
        let chunk = 1 + rng.below((n - sent).min(17));
        sink(&pending[sent..sent + chunk]).unwrap();
        sent += chunk;
    }
    pending.drain(..n);
}

type Field = (Vec<u8>, Vec<u8>);

fn field() -> impl Strategy<Value = Field> {
    let name = prop_oneof![
        // Static-table names and full static entries.
        Just(b":method".to_vec()),
        Just(b":path".to_vec()),
        Just(b":status".to_vec()),
        Just(b"content-type".to_vec()),
        Just(b"cookie".to_vec()),
        Just(b"authorization".to_vec()),
        // A small pool that repeats, so the dynamic table gets used.
        (0u8..6).prop_map(|i| format!("x-custom-{i}").into_bytes()),
        // Anything, including empty and non-ASCII.
        proptest::collection::vec(any::<u8>(), 0..12),
    ];
    let value = prop_oneof![
        Just(b"GET".to_vec()),
        Just(b"200".to_vec()),
        Just(b"".to_vec()),
        (0u8..4).prop_map(|i| format!("value-{i}").into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..40),
        proptest::collection::vec(any::<u8>(), 100..300),
    ];
    (name, value)
}

fn sections() -> impl Strategy<Value = Vec<Vec<Field>>> {
    proptest::collection::vec(proptest::collection::vec(field(), 0..10), 1..16)
}

fn pairs(fields: &[HeaderField]) -> Vec<Field> {
    fields.iter().map(|f| (f.name.to_vec(), f.value.to_vec())).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn encoder_decoder_round_trip(
        sets in sections(),
        max_capacity in prop_oneof![Just(0u64), 0u64..600, Just(4096u64)],
        capacity_fraction in 0u64..=4,
        blocked in 0usize..4,
        use_huffman in any::<bool>(),
        static_only_max in prop_oneof![Just(0u64), 0u64..300],
        keep_last_static_section in any::<bool>(),
        seed in 1u64..,
    ) {
        let mut rng = Rng(seed);
        let table_capacity = max_capacity * capacity_fraction / 4;
        let mut enc = Encoder::new(EncoderConfig {
            table_capacity,
            use_huffman,
            static_only_max,
            ..EncoderConfig::from_peer(max_capacity, blocked)
        });
        let mut dec = Decoder::new(DecoderConfig {
            max_table_capacity: max_capacity,
            max_blocked_streams: blocked,
            max_field_section_size: u64::MAX,
            keep_last_static_section,
        });
        // Each list sent one to three times in a row, as a server answers
        // the same resource: repeats go through both sides' section memory.
        let sets: Vec<Vec<Field>> = sets.iter().flat_map(|s| std::iter::repeat_n(s.clone(), 1 + rng.below(3))).collect();
        let mut encoder_stream = Vec::new();
        let mut decoder_stream = Vec::new();
        let mut waiting: HashMap<u64, Vec<Field>> = HashMap::new();
        let mut done = 0;

        for (i, set) in sets.iter().enumerate() {
            let sid = 4 * i as u64;
            let mut section = Vec::new();
            enc.encode(sid, set, &mut section, &mut encoder_stream);
            // Some of the encoder stream may arrive before the section.
            let mut unblocked = Vec::new();
            deliver(&mut rng, &mut encoder_stream, false, |c| {
                dec.feed_encoder_stream(c).map(|u| unblocked.extend(u))
            });
            match dec.decode(sid, &section).unwrap() {
                DecodeResult::Decoded(f) => {
                    prop_assert_eq!(&pairs(&f), set);
                    done += 1;
                }
                DecodeResult::Blocked => {
                    prop_assert!(blocked > 0);
                    prop_assert!(dec.blocked_streams() <= blocked);
                    waiting.insert(sid, set.clone());
                }
            }
            for s in unblocked {
                let f = dec.resume(s).unwrap().unwrap();
                prop_assert_eq!(&pairs(&f), &waiting.remove(&s).unwrap());
                done += 1;
            }
            // Acknowledgments flow back, partly, in random chunks.
            dec.write_decoder_stream(&mut decoder_stream);
            deliver(&mut rng, &mut decoder_stream, false, |c| enc.feed_decoder_stream(c));
        }
        // Flush everything.
        let mut unblocked = Vec::new();
        deliver(&mut rng, &mut encoder_stream, true, |c| {
            dec.feed_encoder_stream(c).map(|u| unblocked.extend(u))
        });
        for s in unblocked {
            let f = dec.resume(s).unwrap().unwrap();
            prop_assert_eq!(&pairs(&f), &waiting.remove(&s).unwrap());
            done += 1;
        }
        prop_assert!(waiting.is_empty());
        prop_assert_eq!(done, sets.len());
        prop_assert_eq!(dec.blocked_streams(), 0);
        prop_assert_eq!(dec.buffered_encoder_bytes(), 0);
        dec.write_decoder_stream(&mut decoder_stream);
        deliver(&mut rng, &mut decoder_stream, true, |c| enc.feed_decoder_stream(c));
        prop_assert_eq!(enc.outstanding_sections(), 0);
        prop_assert_eq!(enc.known_received_count(), dec.insert_count());
        prop_assert_eq!(enc.table().insert_count(), dec.insert_count());
        prop_assert!(enc.table().size() <= max_capacity);
        // Both tables hold the same entries.
        for abs in dec.table().dropped_count()..dec.insert_count() {
            let (a, b) = (enc.table().get(abs), dec.table().get(abs));
            prop_assert_eq!(a.map(|e| (&e.name, &e.value)), b.map(|e| (&e.name, &e.value)));
        }
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(
        encoder_stream in proptest::collection::vec(any::<u8>(), 0..200),
        sections in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..60), 0..6),
        max_capacity in prop_oneof![Just(0u64), Just(64u64), Just(4096u64)],
        blocked in 0usize..3,
        chunk in 1usize..20,
    ) {
        let mut dec = Decoder::new(DecoderConfig {
            max_table_capacity: max_capacity,
            max_blocked_streams: blocked,
            max_field_section_size: 4096,
            keep_last_static_section: true,
        });
        for c in encoder_stream.chunks(chunk) {
            if let Ok(unblocked) = dec.feed_encoder_stream(c) {
                for s in unblocked {
                    let _ = dec.resume(s);
                }
            } else {
                break;
            }
        }
        for (i, s) in sections.iter().enumerate() {
            let _ = dec.decode(i as u64, s);
        }
        let mut out = Vec::new();
        dec.write_decoder_stream(&mut out);
    }

    #[test]
    fn corrupted_encodings_never_panic(
        sets in sections(),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        seed in 1u64..,
    ) {
        let mut rng = Rng(seed);
        let mut enc = Encoder::new(EncoderConfig::from_peer(1024, 4));
        let mut dec = Decoder::new(DecoderConfig {
            max_table_capacity: 1024,
            max_blocked_streams: 4,
            max_field_section_size: 1 << 16,
            keep_last_static_section: true,
        });
        for (i, set) in sets.iter().enumerate() {
            let (mut section, mut es) = (Vec::new(), Vec::new());
            enc.encode(i as u64, set, &mut section, &mut es);
            let target = if rng.below(2) == 0 || es.is_empty() { &mut section } else { &mut es };
            if !target.is_empty() {
                for &(pos, x) in &flips {
                    let len = target.len();
                    target[pos % len] ^= x;
                }
            }
            if dec.feed_encoder_stream(&es).is_err() {
                break;
            }
            let _ = dec.decode(i as u64, &section);
        }
    }

    #[test]
    fn huffman_round_trips(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut enc = Vec::new();
        huffman::encode(&data, &mut enc);
        prop_assert_eq!(enc.len(), huffman::encoded_len(&data));
        prop_assert_eq!(huffman::decode_to_vec(&enc).unwrap(), data);
    }

    #[test]
    fn huffman_decode_arbitrary_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(out) = huffman::decode_to_vec(&data) {
            // Whatever decodes re-encodes to the same bytes (the code is
            // canonical and padding is forced to ones).
            let mut again = Vec::new();
            huffman::encode(&out, &mut again);
            prop_assert_eq!(again, data);
        }
    }

    #[test]
    fn prefix_int_round_trips(v in 0u64..=prefix_int::MAX_VALUE, n in 1u8..=8, flags in any::<u8>()) {
        let flags = flags & !(((1u16 << n) - 1) as u8);
        let mut out = Vec::new();
        prefix_int::encode(v, n, flags, &mut out);
        prop_assert_eq!(out[0] & flags, flags);
        prop_assert_eq!(prefix_int::decode(&out, n).unwrap(), (v, out.len()));
    }
}
