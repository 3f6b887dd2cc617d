//! QPACK decoder fuzzing.
//!
//! 1. The whole input as one field section, decoder without a dynamic
//!    table (the shape of the quiche seed corpus).
//! 2. The input as a script for a decoder with a dynamic table: the first
//!    byte picks the settings, then records `tag | len | bytes`, where an
//!    even tag feeds the encoder stream and an odd tag is a field section on
//!    stream `tag >> 1`.
//!
//! Any error is fine; panics, hangs and unbounded allocation are not.
//! Whatever decodes must survive re-encoding by our encoder and decoding
//! again unchanged.
use h3_core::qpack::{DecodeResult, Decoder, DecoderConfig, Encoder, EncoderConfig, HeaderField};

fn check_reencode(fields: &[HeaderField], capacity: u64) {
    let mut enc = Encoder::new(EncoderConfig::from_peer(capacity, 1));
    let mut dec =
        Decoder::new(DecoderConfig { max_table_capacity: capacity, max_blocked_streams: 1, max_field_section_size: u64::MAX, keep_last_static_section: true });
    let (mut section, mut es) = (Vec::new(), Vec::new());
    enc.encode_fields(0, fields, &mut section, &mut es);
    if dec.feed_encoder_stream(&es).is_err() {
        panic!("our encoder stream rejected by our decoder");
    }
    match dec.decode(0, &section) {
        Ok(DecodeResult::Decoded(again)) => {
            assert_eq!(again.len(), fields.len());
            for (a, f) in again.iter().zip(fields) {
                assert_eq!((&a.name, &a.value), (&f.name, &f.value));
                // Never-indexed stays never-indexed (our encoder may add the
                // flag for fields it deems sensitive, never drop it).
                assert!(a.never_index || !f.never_index);
            }
        }
        other => panic!("re-encoded section did not decode: {other:?}"),
    }
}

/// One fuzz input: what libFuzzer calls, and what the corpus replay test
/// (`tests/replay.rs`) calls without it.
pub fn run(data: &[u8]) {
    // 1. Static-only decoder.
    let mut dec =
        Decoder::new(DecoderConfig { max_table_capacity: 0, max_blocked_streams: 0, max_field_section_size: 1 << 16, keep_last_static_section: true });
    if let Ok(DecodeResult::Decoded(fields)) = dec.decode(0, data) {
        check_reencode(&fields, 0);
        check_reencode(&fields, 4096);
    }

    // 2. Scripted decoder with a dynamic table.
    let Some((&settings, mut rest)) = data.split_first() else {
        return;
    };
    let capacity = [0u64, 64, 220, 4096][usize::from(settings & 3)];
    let blocked = usize::from((settings >> 2) & 3);
    let mut dec = Decoder::new(DecoderConfig {
        max_table_capacity: capacity,
        max_blocked_streams: blocked,
        max_field_section_size: 1 << 16,
        keep_last_static_section: true,
    });
    while let [tag, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (chunk, after) = tail.split_at(n);
        rest = after;
        if tag & 1 == 0 {
            match dec.feed_encoder_stream(chunk) {
                Ok(unblocked) => {
                    for s in unblocked {
                        if let Ok(Some(fields)) = dec.resume(s) {
                            check_reencode(&fields, capacity);
                        }
                    }
                }
                Err(_) => return,
            }
        } else if let Ok(DecodeResult::Decoded(fields)) = dec.decode(u64::from(tag >> 1), chunk) {
            check_reencode(&fields, capacity);
        }
        let mut out = Vec::new();
        dec.write_decoder_stream(&mut out);
        if tag & 0x80 != 0 {
            dec.cancel_stream(u64::from(tag >> 1));
        }
    }
}
