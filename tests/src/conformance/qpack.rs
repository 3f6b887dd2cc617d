//! RFC 9204 cases: encoder and decoder stream instructions, field sections
//! the decoder must refuse, blocked-stream limits, the QPACK streams
//! themselves.

use super::wire::*;
use super::{Case, Ctx, Expect, Phase, Step};

// RFC 9204 §6; RFC 9114 §8.1.
const QPACK_DECOMPRESSION_FAILED: u64 = 0x200;
const QPACK_ENCODER_STREAM_ERROR: u64 = 0x201;
const QPACK_DECODER_STREAM_ERROR: u64 = 0x202;
const H3_STREAM_CREATION_ERROR: u64 = 0x103;
const H3_CLOSED_CRITICAL_STREAM: u64 = 0x104;

/// Our encoder stream (type 0x02) carrying `instructions`.
fn encoder(name: &'static str, section: &'static str, instructions: impl Fn(&Ctx) -> Vec<u8> + Send + Sync + 'static) -> Case {
    Case::new(name, section, Phase::H3, Expect::Application(&[QPACK_ENCODER_STREAM_ERROR]), move |ctx| {
        vec![Step::Uni { data: cat(&[&[0x02], &instructions(ctx)]), fin: false }]
    })
}

/// Our decoder stream (type 0x03) carrying `instructions`.
fn decoder(name: &'static str, section: &'static str, instructions: Vec<u8>) -> Case {
    Case::new(name, section, Phase::H3, Expect::Application(&[QPACK_DECODER_STREAM_ERROR]), move |_| {
        vec![Step::Uni { data: cat(&[&[0x03], &instructions]), fin: false }]
    })
}

/// A request whose HEADERS frame holds `section` (prefix included).
fn section_case(name: &'static str, section: &'static str, field_section: Vec<u8>) -> Case {
    Case::new(name, section, Phase::H3, Expect::Application(&[QPACK_DECOMPRESSION_FAILED]), move |_| {
        vec![Step::Bidi { data: h3_frame(0x01, &field_section), fin: true }]
    })
}

/// An authority line, so that sections are otherwise valid requests.
fn authority() -> Vec<u8> {
    cat(&[&[0x50], &prefix_int(0x00, 7, 9), b"localhost"])
}

fn streams(name: &'static str, section: &'static str, code: &'static [u64], ty: u8, second: bool) -> Case {
    Case::new(name, section, Phase::H3, Expect::Application(code), move |_| {
        if second {
            vec![Step::Uni { data: vec![ty], fin: false }, Step::Uni { data: vec![ty], fin: false }]
        } else {
            vec![Step::Uni { data: vec![ty], fin: true }]
        }
    })
}

pub fn cases() -> Vec<Case> {
    vec![
        // §4.3 encoder instructions.
        encoder("Set Dynamic Table Capacity above the maximum", "RFC 9204 §4.3.1", |_| prefix_int(0x20, 5, 1 << 30)),
        encoder("insert with a static name index out of range", "RFC 9204 §4.3.2", |_| cat(&[&prefix_int(0xc0, 6, 200), &[0x01], b"x"])),
        encoder("insert with a dynamic name reference to no entry", "RFC 9204 §4.3.2", |ctx| {
            // A table with room, so only the reference is wrong.
            let cap = ctx.settings.as_ref().map_or(0, |s| s.qpack_max_table_capacity);
            cat(&[&prefix_int(0x20, 5, cap), &prefix_int(0x80, 6, 5), &[0x01], b"x"])
        }),
        encoder("duplicate of an entry that does not exist", "RFC 9204 §4.3.4", |_| prefix_int(0x00, 5, 0)),
        encoder("insert larger than the table", "RFC 9204 §3.2.2", |ctx| {
            let cap = ctx.settings.as_ref().map_or(0, |s| s.qpack_max_table_capacity);
            let value = vec![b'v'; cap as usize + 1];
            cat(&[&prefix_int(0x20, 5, cap), &prefix_int(0x40, 5, 1), b"n", &prefix_int(0x00, 7, value.len() as u64), &value])
        }),
        // §4.4 decoder instructions.
        decoder("Section Acknowledgment with no section outstanding", "RFC 9204 §4.4.1", prefix_int(0x80, 7, 0)),
        decoder("Insert Count Increment of zero", "RFC 9204 §4.4.3", prefix_int(0x00, 6, 0)),
        decoder("Insert Count Increment beyond the inserts sent", "RFC 9204 §4.4.3", prefix_int(0x00, 6, 5)),
        // §4.5 field sections.
        section_case(
            "Required Insert Count beyond the table's range",
            "RFC 9204 §4.5.1.1",
            cat(&[&prefix_int(0x00, 8, 100_000), &[0x00], &static_indexed(17)]),
        ),
        // Required Insert Count 0 with the Sign bit and a Delta Base of 1:
        // a negative Base (RFC 9204 §4.5.1.2: invalid when the Required
        // Insert Count is not above the Delta Base).
        section_case("negative Base", "RFC 9204 §4.5.1.2", cat(&[&[0x00, 0x81], &static_indexed(17), &static_indexed(23), &static_indexed(1), &authority()])),
        section_case(
            "static index out of range",
            "RFC 9204 §4.5.2",
            cat(&[&[0x00, 0x00], &static_indexed(17), &static_indexed(23), &static_indexed(1), &authority(), &static_indexed(200)]),
        ),
        section_case(
            "dynamic reference with Required Insert Count 0",
            "RFC 9204 §4.5.2",
            cat(&[&[0x00, 0x00], &static_indexed(17), &static_indexed(23), &static_indexed(1), &authority(), &prefix_int(0x80, 6, 0)]),
        ),
        section_case("invalid Huffman string (EOS)", "RFC 9204 §4.1.2", {
            // A literal name, Huffman-coded as 32 one bits: EOS is 30 of them.
            cat(&[&[0x00, 0x00], &static_indexed(17), &static_indexed(23), &static_indexed(1), &authority(), &prefix_int(0x28, 3, 4), &[0xff; 4], &[0x00]])
        }),
        Case::new(
            "more blocked streams than SETTINGS_QPACK_BLOCKED_STREAMS",
            "RFC 9204 §2.1.2",
            Phase::H3,
            Expect::Application(&[QPACK_DECOMPRESSION_FAILED]),
            |ctx| {
                // Sections waiting for an insert that never comes: Required
                // Insert Count 1 (encoded 2 when the table holds an entry),
                // Base 0, one post-base reference.
                let blocked = ctx.settings.as_ref().map_or(0, |s| s.qpack_blocked_streams);
                let section = cat(&[&[0x02, 0x00], &prefix_int(0x10, 4, 0)]);
                (0..=blocked.min(100)).map(|_| Step::Bidi { data: h3_frame(0x01, &section), fin: false }).collect()
            },
        ),
        // §4.2 the QPACK streams.
        streams("a second encoder stream", "RFC 9204 §4.2", &[H3_STREAM_CREATION_ERROR], 0x02, true),
        streams("a second decoder stream", "RFC 9204 §4.2", &[H3_STREAM_CREATION_ERROR], 0x03, true),
        streams("encoder stream closed", "RFC 9204 §4.2", &[H3_CLOSED_CRITICAL_STREAM], 0x02, false),
        streams("decoder stream closed", "RFC 9204 §4.2", &[H3_CLOSED_CRITICAL_STREAM], 0x03, false),
    ]
}
