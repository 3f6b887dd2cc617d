//! Unit tests across the QPACK modules: RFC 9204 Appendix B, blocked
//! streams, eviction protection, and every error with its code.
#![allow(clippy::unwrap_used)]

use super::instructions::{self, EncoderInstruction};
use super::*;
use crate::qpack::encoder::SetCapacityError;

fn hexb(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn pairs(fields: &[HeaderField]) -> Vec<(&[u8], &[u8])> {
    fields.iter().map(|f| (&f.name[..], &f.value[..])).collect()
}

fn decoded(r: DecodeResult) -> Vec<HeaderField> {
    match r {
        DecodeResult::Decoded(f) => f,
        DecodeResult::Blocked => panic!("unexpectedly blocked"),
    }
}

fn dec(cap: u64, blocked: usize) -> Decoder {
    Decoder::new(DecoderConfig { max_table_capacity: cap, max_blocked_streams: blocked, max_field_section_size: 1 << 16, keep_last_static_section: false })
}

fn drain(d: &mut Decoder) -> Vec<u8> {
    let mut v = Vec::new();
    d.write_decoder_stream(&mut v);
    v
}

// ---------------------------------------------------------------------------
// RFC 9204 Appendix B, byte for byte.

#[test]
fn appendix_b_walkthrough() {
    let mut d = dec(220, 100);

    // B.1 Literal Field Line with Name Reference.
    let f = decoded(d.decode(0, &hexb("0000 510b 2f69 6e64 6578 2e68 746d 6c")).unwrap());
    assert_eq!(pairs(&f), [(&b":path"[..], &b"/index.html"[..])]);
    assert!(drain(&mut d).is_empty());

    // B.2 Dynamic Table.
    let es = hexb("3fbd01 c00f 7777 772e 6578 616d 706c 652e 636f 6d c10c 2f73 616d 706c 652f 7061 7468");
    assert!(d.feed_encoder_stream(&es).unwrap().is_empty());
    assert_eq!(d.table().size(), 106);
    assert_eq!(d.table().capacity(), 220);
    let f = decoded(d.decode(4, &hexb("0381 10 11")).unwrap());
    assert_eq!(pairs(&f), [(&b":authority"[..], &b"www.example.com"[..]), (&b":path"[..], &b"/sample/path"[..])]);
    // Section Acknowledgment (stream=4); it covers both inserts, so no
    // Insert Count Increment follows.
    assert_eq!(drain(&mut d), hexb("84"));

    // B.3 Speculative Insert.
    let es = hexb("4a63 7573 746f 6d2d 6b65 790c 6375 7374 6f6d 2d76 616c 7565");
    d.feed_encoder_stream(&es).unwrap();
    assert_eq!(d.table().size(), 160);
    assert_eq!(drain(&mut d), hexb("01")); // Insert Count Increment (1)

    // B.4 Duplicate Instruction, Stream Cancellation: the section arrives
    // before the Duplicate, so it blocks; the stream is then cancelled.
    assert_eq!(d.decode(8, &hexb("0500 80 c1 81")).unwrap(), DecodeResult::Blocked);
    assert_eq!(d.blocked_streams(), 1);
    d.cancel_stream(8);
    assert_eq!(d.blocked_streams(), 0);
    assert_eq!(drain(&mut d), hexb("48")); // Stream Cancellation (Stream=8)
    assert!(d.feed_encoder_stream(&hexb("02")).unwrap().is_empty());
    assert_eq!(d.table().size(), 217);
    let dup = d.table().get(3).unwrap();
    assert_eq!((&dup.name[..], &dup.value[..]), (&b":authority"[..], &b"www.example.com"[..]));

    // B.5 Dynamic Table Insert, Eviction.
    d.feed_encoder_stream(&hexb("810d 6375 7374 6f6d 2d76 616c 7565 32")).unwrap();
    assert_eq!(d.table().size(), 215);
    assert_eq!(d.table().dropped_count(), 1);
    assert_eq!(d.insert_count(), 5);
    let e = d.table().get(4).unwrap();
    assert_eq!((&e.name[..], &e.value[..]), (&b"custom-key"[..], &b"custom-value2"[..]));
    assert!(d.table().get(0).is_none());
}

#[test]
fn appendix_b4_section_decodes_when_not_cancelled() {
    let mut d = dec(220, 100);
    d.feed_encoder_stream(&hexb(
        "3fbd01 c00f 7777 772e 6578 616d 706c 652e 636f 6d c10c 2f73 616d 706c 652f 7061 7468 \
         4a63 7573 746f 6d2d 6b65 790c 6375 7374 6f6d 2d76 616c 7565",
    ))
    .unwrap();
    assert_eq!(d.decode(8, &hexb("0500 80 c1 81")).unwrap(), DecodeResult::Blocked);
    // The Duplicate arrives in two chunks: an empty one, then the byte.
    assert!(d.feed_encoder_stream(&[]).unwrap().is_empty());
    assert_eq!(d.feed_encoder_stream(&hexb("02")).unwrap(), [8]);
    let f = d.resume(8).unwrap().unwrap();
    assert_eq!(pairs(&f), [(&b":authority"[..], &b"www.example.com"[..]), (&b":path"[..], &b"/"[..]), (&b"custom-key"[..], &b"custom-value"[..]),]);
    assert_eq!(d.resume(8).unwrap(), None);
    // Ack for stream 8 (RIC 4 = all inserts): no increment needed.
    assert_eq!(drain(&mut d), hexb("88"));
}

#[test]
fn encoder_produces_appendix_b1() {
    let mut e = Encoder::new(EncoderConfig { use_huffman: false, ..EncoderConfig::from_peer(0, 0) });
    let (mut section, mut es) = (Vec::new(), Vec::new());
    e.encode(0, &[(":path", "/index.html")], &mut section, &mut es);
    assert_eq!(section, hexb("0000 510b 2f69 6e64 6578 2e68 746d 6c"));
    assert!(es.is_empty(), "no encoder stream data with a zero-capacity peer");
    // With Huffman the value is shorter (8 bytes instead of 11).
    let mut e = Encoder::new(EncoderConfig::from_peer(0, 0));
    let (mut section, mut es) = (Vec::new(), Vec::new());
    e.encode(0, &[(":path", "/index.html")], &mut section, &mut es);
    assert_eq!(&section[..4], &hexb("0000 5188")[..]);
    assert_eq!(section.len(), 12);
}

#[test]
fn encoder_uses_dynamic_table_like_appendix_b2() {
    // Capacity 220 as in B.2. The 57-byte entry is large for so small a
    // table, so its first occurrence is only a literal (no insert)...
    let mut e = Encoder::new(EncoderConfig { use_huffman: false, table_capacity: 220, ..EncoderConfig::from_peer(220, 100) });
    let (mut section, mut es) = (Vec::new(), Vec::new());
    e.encode(0, &[(":authority", "www.example.com")], &mut section, &mut es);
    assert_eq!(section, hexb("0000 500f 7777 772e 6578 616d 706c 652e 636f 6d"));
    assert_eq!(es, hexb("3fbd01"), "capacity announced, nothing inserted");
    // ...and on its repetition it is inserted with a static name reference
    // and referenced post-base in the same (blocking) section.
    let (mut section, mut es) = (Vec::new(), Vec::new());
    e.encode(4, &[(":authority", "www.example.com")], &mut section, &mut es);
    assert_eq!(es, hexb("c00f 7777 772e 6578 616d 706c 652e 636f 6d"));
    // RIC = 1 (encoded 2), Base 0 (sign 1, delta 0), post-base index 0.
    assert_eq!(section, hexb("0280 10"));
    assert_eq!(e.blocking_streams(), 1);
    e.feed_decoder_stream(&hexb("84")).unwrap();
    assert_eq!(e.blocking_streams(), 0);
    assert_eq!(e.known_received_count(), 1);
    // The next section references the acknowledged entry: relative index 0.
    let (mut section, mut es) = (Vec::new(), Vec::new());
    e.encode(8, &[(":authority", "www.example.com")], &mut section, &mut es);
    assert!(es.is_empty());
    assert_eq!(section, hexb("0200 80"));
}

// ---------------------------------------------------------------------------
// Each encoder instruction applied by the decoder.

#[test]
fn decoder_applies_each_encoder_instruction() {
    let mut d = dec(300, 0);
    let mut es = Vec::new();
    EncoderInstruction::SetDynamicTableCapacity(300).encode(true, &mut es);
    instructions::write_insert_with_name_ref(true, 31, b"gzip", true, &mut es); // accept-encoding
    instructions::write_insert_with_literal_name(b"x-a", b"b", true, &mut es);
    instructions::write_insert_with_name_ref(false, 1, b"br", false, &mut es); // accept-encoding
    instructions::write_duplicate(1, &mut es); // x-a: b
                                               // Delivered one byte at a time.
    for b in &es {
        d.feed_encoder_stream(std::slice::from_ref(b)).unwrap();
    }
    assert_eq!(d.buffered_encoder_bytes(), 0);
    let got: Vec<_> = (0..4).map(|i| d.table().get(i).unwrap()).map(|e| (e.name.to_vec(), e.value.to_vec())).collect();
    assert_eq!(
        got,
        [
            (b"accept-encoding".to_vec(), b"gzip".to_vec()),
            (b"x-a".to_vec(), b"b".to_vec()),
            (b"accept-encoding".to_vec(), b"br".to_vec()),
            (b"x-a".to_vec(), b"b".to_vec()),
        ]
    );
    assert_eq!(drain(&mut d), hexb("04"));
    // Lowering the capacity evicts the oldest entries.
    d.feed_encoder_stream(&hexb("3f21")).unwrap(); // capacity 64
    assert_eq!(d.table().capacity(), 64);
    assert_eq!(d.table().len(), 1);
    assert_eq!(d.table().dropped_count(), 3);
}

#[test]
fn every_field_line_representation() {
    // Table: abs 0 = (x-a, 1), abs 1 = (x-b, 2). Section with RIC 2, Base 1:
    // relative index 0 -> abs 0, post-base 0 -> abs 1.
    let mut d = dec(4096, 0);
    let mut es = Vec::new();
    instructions::write_set_capacity(4096, &mut es);
    instructions::write_insert_with_literal_name(b"x-a", b"1", false, &mut es);
    instructions::write_insert_with_literal_name(b"x-b", b"2", false, &mut es);
    d.feed_encoder_stream(&es).unwrap();
    let mut s = hexb("03 80"); // RIC 2 (encoded 3), sign 1 delta 0 -> Base 1
    s.push(0xc0 | 17); // indexed static 17 (:method GET)
    s.push(0x80); // indexed dynamic relative 0 -> abs 0
    s.push(0x10); // indexed post-base 0 -> abs 1
    s.extend(hexb("5f1d 03 616263")); // literal static name 0x0f+0x1d=44 (content-type) "abc"
    s.extend(hexb("7f1d 01 78")); // same with N=1, "x"
    s.extend(hexb("40 01 7a")); // literal dynamic name relative 0 (x-a) "z"
    s.extend(hexb("00 01 79")); // literal post-base name 0 (x-b) "y"
    s.extend(hexb("08 01 77")); // same with N=1, "w"
    s.extend(hexb("23 6e616d 01 76")); // literal name "nam" "v"
    s.extend(hexb("33 6e616d 01 75")); // N=1
    let f = decoded(d.decode(4, &s).unwrap());
    let want: Vec<(&[u8], &[u8], bool)> = vec![
        (b":method", b"GET", false),
        (b"x-a", b"1", false),
        (b"x-b", b"2", false),
        (b"content-type", b"abc", false),
        (b"content-type", b"x", true),
        (b"x-a", b"z", false),
        (b"x-b", b"y", false),
        (b"x-b", b"w", true),
        (b"nam", b"v", false),
        (b"nam", b"u", true),
    ];
    let got: Vec<_> = f.iter().map(|f| (&f.name[..], &f.value[..], f.never_index)).collect();
    assert_eq!(got, want);
    assert_eq!(drain(&mut d), hexb("84")); // RIC 2 = insert count: no increment
}

#[test]
fn required_insert_count_wraps() {
    // RFC 9204 §4.5.1.1 example: 100-byte table -> MaxEntries 3, modulo 6;
    // after 10 inserts, encoded 4 means RIC 9.
    let mut d = dec(100, 1);
    let mut es = hexb("3f45"); // capacity 100
    for i in 0..10u8 {
        instructions::write_insert_with_literal_name(b"", &[b'a' + i], false, &mut es);
    }
    d.feed_encoder_stream(&es).unwrap();
    assert_eq!(d.insert_count(), 10);
    // RIC 9, Base 9, relative 0 -> abs 8 ("i").
    let f = decoded(d.decode(4, &hexb("04 00 80")).unwrap());
    assert_eq!(&f[0].value[..], b"i");
    // Encoded 5 -> RIC 10 (abs 9 = "j" at relative 0 of Base 10).
    let f = decoded(d.decode(8, &hexb("05 00 80")).unwrap());
    assert_eq!(&f[0].value[..], b"j");
    // Encoded 1 -> RIC 12 (0 mod 6, within MaxEntries of the insert
    // count): two inserts ahead, so the section blocks.
    assert_eq!(d.decode(12, &hexb("01 00 80")).unwrap(), DecodeResult::Blocked);
    // Encoded 0 is RIC 0; encoded 7 > 2 * MaxEntries is invalid.
    assert_eq!(d.decode(16, &hexb("07 00")).unwrap_err().code(), QPACK_DECOMPRESSION_FAILED);
}

// ---------------------------------------------------------------------------
// Blocked streams.

#[test]
fn blocked_streams_limit_and_resume_order() {
    let mut d = dec(4096, 2);
    // Sections needing 1 and 2 inserts.
    assert_eq!(d.decode(4, &hexb("02 80 10")).unwrap(), DecodeResult::Blocked);
    assert_eq!(d.decode(8, &hexb("03 81 11")).unwrap(), DecodeResult::Blocked);
    // A third blocked stream exceeds SETTINGS_QPACK_BLOCKED_STREAMS.
    let e = d.decode(12, &hexb("02 80 10")).unwrap_err();
    assert_eq!(e.kind, QpackErrorKind::DecompressionFailed);
    assert_eq!(e.code(), QPACK_DECOMPRESSION_FAILED);
    // A second section on a blocked stream is refused too.
    assert!(d.decode(4, &hexb("0000")).is_err());
    // Non-blocking sections still decode meanwhile.
    assert_eq!(pairs(&decoded(d.decode(16, &hexb("0000 d1")).unwrap())), [(&b":method"[..], &b"GET"[..])]);

    let mut es = hexb("3fe11f"); // capacity 4096
    instructions::write_insert_with_literal_name(b"k1", b"v1", false, &mut es);
    let split = es.len() - 2;
    // First chunk ends inside the insert: nothing unblocks yet.
    assert!(d.feed_encoder_stream(&es[..split]).unwrap().is_empty());
    assert_eq!(d.buffered_encoder_bytes(), 4); // 6-byte insert minus 2
    assert_eq!(d.resume(4).unwrap(), None);
    assert_eq!(d.feed_encoder_stream(&es[split..]).unwrap(), [4]);
    assert_eq!(d.blocked_streams(), 1);
    assert_eq!(pairs(&d.resume(4).unwrap().unwrap()), [(&b"k1"[..], &b"v1"[..])]);
    let mut es = Vec::new();
    instructions::write_insert_with_literal_name(b"k2", b"v2", false, &mut es);
    assert_eq!(d.feed_encoder_stream(&es).unwrap(), [8]);
    assert_eq!(pairs(&d.resume(8).unwrap().unwrap()), [(&b"k2"[..], &b"v2"[..])]);
    assert_eq!(d.blocked_streams(), 0);
    // Acks for 4 then 8; the last ack covers every insert.
    assert_eq!(drain(&mut d), hexb("84 88"));
}

#[test]
fn zero_blocked_streams_means_no_blocking() {
    let mut d = dec(4096, 0);
    let e = d.decode(4, &hexb("02 80 10")).unwrap_err();
    assert_eq!(e.code(), QPACK_DECOMPRESSION_FAILED);
}

// ---------------------------------------------------------------------------
// Encoder: eviction protection, blocking budget, acknowledgments.

/// Encodes on `e`, decodes on `d` (encoder stream first), returns the
/// decoder-stream bytes without feeding them back.
fn round(e: &mut Encoder, d: &mut Decoder, sid: u64, h: &[(&str, &str)]) -> Vec<u8> {
    let (mut s, mut es) = (Vec::new(), Vec::new());
    e.encode(sid, h, &mut s, &mut es);
    d.feed_encoder_stream(&es).unwrap();
    let f = decoded(d.decode(sid, &s).unwrap());
    let want: Vec<(&[u8], &[u8])> = h.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())).collect();
    assert_eq!(pairs(&f), want);
    drain(d)
}

#[test]
fn encoder_never_evicts_unacknowledged_references() {
    // Room for three 50-byte entries.
    let cfg = EncoderConfig { table_capacity: 160, ..EncoderConfig::from_peer(160, 10) };
    let mut e = Encoder::new(cfg);
    let mut d = dec(160, 10);
    // Stream 4 references its own insert; its acknowledgment is withheld.
    let held = round(&mut e, &mut d, 4, &[("x-0", "aaaaaaaaaaaaaaa")]);
    assert_eq!(held, hexb("84"));
    assert_eq!(e.table().refs(0), 1);
    // Many more distinct fields: none may evict abs 0.
    let mut acks = Vec::new();
    for i in 1..20 {
        let name = format!("x-{i}");
        acks.extend(round(&mut e, &mut d, 4 * i + 4, &[(name.as_str(), "aaaaaaaaaaaaaaa")]));
        assert!(e.table().get(0).is_some(), "referenced entry evicted at step {i}");
        assert!(d.table().get(0).is_some());
    }
    // Once stream 4 is acknowledged the entry may go.
    e.feed_decoder_stream(&held).unwrap();
    e.feed_decoder_stream(&acks).unwrap();
    assert_eq!(e.table().refs(0), 0);
    round(&mut e, &mut d, 1000, &[("x-new", "aaaaaaaaaaaaaaa")]);
    assert!(e.table().get(0).is_none());
    assert!(d.table().get(0).is_none());
    // Unacknowledged *inserts* are protected too: never evicted before the
    // decoder confirms them (checked above: the table only ever grew while
    // acknowledgments were withheld).
}

/// `:path` and `content-length` are "volatile": a stream of one-off values
/// stays literal and never touches the table, but the same line sent again
/// is inserted and then indexed: a section of one byte per field instead of
/// a Huffman-coded literal each time.
#[test]
fn volatile_values_are_inserted_only_when_they_repeat() {
    let mut e = Encoder::new(EncoderConfig::from_peer(4096, 16));
    let mut d = dec(4096, 16);
    for i in 0..50u64 {
        let (path, len) = (format!("/item/{i}"), format!("{}", 5000 + i));
        let acks = round(&mut e, &mut d, 4 * i, &[(":path", path.as_str()), ("content-length", len.as_str())]);
        e.feed_decoder_stream(&acks).unwrap();
    }
    assert_eq!(e.table().insert_count(), 0, "one-off values never enter the table");
    let repeated = [(":path", "/bytes/1024"), ("content-length", "1024")];
    let first = round(&mut e, &mut d, 400, &repeated);
    e.feed_decoder_stream(&first).unwrap();
    assert_eq!(e.table().insert_count(), 0, "the first occurrence is only remembered");
    let second = round(&mut e, &mut d, 404, &repeated);
    e.feed_decoder_stream(&second).unwrap();
    assert_eq!(e.table().insert_count(), 2, "the repeat is inserted");
    let (mut s, mut es) = (Vec::new(), Vec::new());
    e.encode(408, &repeated, &mut s, &mut es);
    assert!(es.is_empty(), "nothing more to insert");
    // Prefix (2 bytes) and one indexed line (1 byte) per field.
    assert_eq!(s.len(), 4, "both lines indexed: {s:02x?}");
    d.feed_encoder_stream(&es).unwrap();
    let f = decoded(d.decode(408, &s).unwrap());
    assert_eq!(pairs(&f), [(&b":path"[..], &b"/bytes/1024"[..]), (&b"content-length"[..], &b"1024"[..])]);
}

#[test]
fn encoder_respects_blocked_streams_budget() {
    let mut e = Encoder::new(EncoderConfig::from_peer(4096, 1));
    let (mut s1, mut es1) = (Vec::new(), Vec::new());
    e.encode(4, &[("x-a", "1")], &mut s1, &mut es1);
    assert_eq!(e.blocking_streams(), 1);
    // Stream 8 may not block: its new insert is not referenced.
    let (mut s2, mut es2) = (Vec::new(), Vec::new());
    e.encode(8, &[("x-b", "2")], &mut s2, &mut es2);
    assert_eq!(&s2[..2], &[0, 0], "stream 8 must not depend on unacknowledged inserts");
    assert_eq!(e.blocking_streams(), 1);
    // Stream 4 is already blocking, so it may reference more.
    let (mut s3, mut es3) = (Vec::new(), Vec::new());
    e.encode(4, &[("x-b", "2")], &mut s3, &mut es3);
    assert_ne!(s3[0], 0);
    // A decoder with one blocked stream accepts all of it out of order.
    let mut d = dec(4096, 1);
    assert_eq!(d.decode(4, &s1).unwrap(), DecodeResult::Blocked);
    assert_eq!(pairs(&decoded(d.decode(8, &s2).unwrap())), [(&b"x-b"[..], &b"2"[..])]);
    d.feed_encoder_stream(&es1).unwrap();
    d.feed_encoder_stream(&es2).unwrap();
    d.feed_encoder_stream(&es3).unwrap();
    assert_eq!(pairs(&d.resume(4).unwrap().unwrap()), [(&b"x-a"[..], &b"1"[..])]);
    // Stream 4's second section (e.g. trailers).
    assert_eq!(pairs(&decoded(d.decode(4, &s3).unwrap())), [(&b"x-b"[..], &b"2"[..])]);
    let ds = drain(&mut d);
    assert_eq!(ds, hexb("84 84"));
    e.feed_decoder_stream(&ds).unwrap();
    assert_eq!(e.outstanding_sections(), 0);
    assert_eq!(e.known_received_count(), 2);
}

#[test]
fn encoder_duplicates_draining_entries() {
    let cfg = EncoderConfig { table_capacity: 256, ..EncoderConfig::from_peer(256, 10) };
    let mut e = Encoder::new(cfg);
    let mut d = dec(256, 10);
    let feed = |e: &mut Encoder, d: &mut Decoder, sid, h: &[(&str, &str)]| {
        let ack = round(e, d, sid, h);
        e.feed_decoder_stream(&ack).unwrap();
    };
    feed(&mut e, &mut d, 0, &[("x-a", "1")]); // 36 bytes
    for i in 1..=4 {
        let n = format!("f{i}");
        feed(&mut e, &mut d, 4 * i, &[(n.as_str(), "01234567890123456789")]); // 54 bytes each
    }
    assert_eq!(e.table().size(), 252);
    // x-a is now in the draining region: it is duplicated, not referenced.
    let (mut s, mut es) = (Vec::new(), Vec::new());
    e.encode(100, &[("x-a", "1")], &mut s, &mut es);
    assert_eq!(es, [0x04], "Duplicate (relative index 4)");
    assert_eq!(e.table().get(5).map(|x| &x.name[..]), Some(&b"x-a"[..]));
    d.feed_encoder_stream(&es).unwrap();
    assert_eq!(pairs(&decoded(d.decode(100, &s).unwrap())), [(&b"x-a"[..], &b"1"[..])]);
}

#[test]
fn sensitive_fields_are_never_indexed() {
    let mut e = Encoder::new(EncoderConfig::from_peer(4096, 100));
    let mut d = dec(4096, 100);
    let fields = [
        HeaderField::new("authorization", "Bearer very-secret-token-value"),
        HeaderField::new("cookie", "id=42"),
        HeaderField::new("cookie", "session=0123456789abcdef0123"),
        HeaderField::sensitive("x-api-key", "k"),
        HeaderField::sensitive(":method", "GET"),
    ];
    let (mut s, mut es) = (Vec::new(), Vec::new());
    e.encode_fields(4, &fields, &mut s, &mut es);
    d.feed_encoder_stream(&es).unwrap();
    let f = decoded(d.decode(4, &s).unwrap());
    let got: Vec<_> = f.iter().map(|f| (&f.name[..], &f.value[..], f.never_index)).collect();
    assert_eq!(
        got,
        [
            (&b"authorization"[..], &b"Bearer very-secret-token-value"[..], true),
            (&b"cookie"[..], &b"id=42"[..], true),
            (&b"cookie"[..], &b"session=0123456789abcdef0123"[..], false),
            (&b"x-api-key"[..], &b"k"[..], true),
            (&b":method"[..], &b"GET"[..], true),
        ]
    );
    // Only the long cookie went into the table.
    assert_eq!(e.table().len(), 1);
    assert_eq!(&e.table().get(0).unwrap().name[..], b"cookie");
    assert!(encoder::is_sensitive(b"proxy-authorization", b""));
    assert!(!encoder::is_sensitive(b"user-agent", b"x"));
}

#[test]
fn set_capacity_rules() {
    let mut e = Encoder::new(EncoderConfig::from_peer(1000, 10));
    let mut es = Vec::new();
    assert_eq!(e.set_capacity(1001, &mut es), Err(SetCapacityError::AboveMaximum));
    assert!(es.is_empty());
    e.set_capacity(500, &mut es).unwrap();
    assert_eq!(es, hexb("3fd503"));
    let (mut s, mut es2) = (Vec::new(), Vec::new());
    e.encode(4, &[("x-a", "1")], &mut s, &mut es2);
    assert!(!es2.starts_with(&[0x3f]), "capacity already announced");
    // The unacknowledged entry blocks shrinking to zero.
    assert_eq!(e.set_capacity(0, &mut es), Err(SetCapacityError::WouldEvictReferenced));
    e.feed_decoder_stream(&hexb("84")).unwrap();
    e.set_capacity(0, &mut es).unwrap();
    assert!(e.table().is_empty());
}

// ---------------------------------------------------------------------------
// Errors and their codes.

#[test]
fn encoder_stream_errors() {
    let cases: &[(&str, &str)] = &[
        ("3fe21f", "capacity over the maximum (4097 > 4096)"),
        ("3fe11f ff24 00", "static index 99 does not exist"),
        ("3fe11f 80 00", "dynamic name reference into an empty table"),
        ("3fe11f 00", "duplicate of a missing entry"),
        ("3f01 41 61 00", "capacity 32, entry a=\"\" needs 33"),
        ("3fe11f 61 00 00", "invalid Huffman name"),
        ("3fe11f 3fffffffffffffffffffffff", "integer overflow"),
    ];
    for (bytes, why) in cases {
        let mut d = dec(4096, 0);
        let e = d.feed_encoder_stream(&hexb(bytes)).unwrap_err();
        assert_eq!(e.kind, QpackErrorKind::EncoderStream, "{why}");
        assert_eq!(e.code(), QPACK_ENCODER_STREAM_ERROR, "{why}");
        assert!(e.is_connection_error());
    }
    // An incomplete instruction longer than any valid one.
    let mut d = dec(100, 0);
    let mut data = hexb("3f45 5f"); // literal name, length 31+...
    data.extend(hexb("80 03")); // name length 31 + 384 = 415 > capacity: refused at once
    assert_eq!(d.feed_encoder_stream(&data).unwrap_err().code(), QPACK_ENCODER_STREAM_ERROR);
    // Endless zero-padded integer is cut off at 10 continuation bytes.
    let mut d = dec(100, 0);
    let mut data = hexb("3f");
    data.extend([0x80; 20]);
    assert_eq!(d.feed_encoder_stream(&data).unwrap_err().code(), QPACK_ENCODER_STREAM_ERROR);
}

#[test]
fn field_section_errors() {
    // Decoder with capacity 4096 (MaxEntries 128) and one entry, abs 0.
    let fresh = || {
        let mut d = dec(4096, 1);
        let mut es = hexb("3fe11f");
        instructions::write_insert_with_literal_name(b"x-a", b"1", false, &mut es);
        d.feed_encoder_stream(&es).unwrap();
        d
    };
    let cases: &[(&str, &str)] = &[
        ("", "empty section"),
        ("00", "missing Base"),
        ("ff", "truncated RIC"),
        ("ff ff ff ff ff ff ff ff ff ff ff ff 00", "RIC integer overflow"),
        ("ff80 01 00", "encoded RIC over 2*MaxEntries"),
        ("0081", "sign bit with RIC 0 (negative Base)"),
        ("0000 ff24", "static index 99"),
        ("0000 80", "dynamic reference with RIC 0"),
        ("0200 81", "relative index before abs 0"),
        ("0280 11", "post-base index at RIC"),
        ("0200 41 00", "literal dynamic name, relative 1"),
        ("0280 01 00", "literal post-base name 1 >= RIC"),
        ("0000 5f", "truncated name index"),
        ("0000 51 05 61", "truncated value"),
        ("0000 51 81 00", "invalid Huffman value"),
        ("0000 51 81 ff", "Huffman padding > 7 bits"),
        ("0000 28 61", "literal name: truncated"),
        ("0000 51 7f ff ff ff ff ff ff ff ff ff ff ff 00", "string length overflow"),
    ];
    for (bytes, why) in cases {
        let mut d = fresh();
        let e = d.decode(4, &hexb(bytes)).unwrap_err();
        assert_eq!(e.kind, QpackErrorKind::DecompressionFailed, "{why}: {e}");
        assert_eq!(e.code(), QPACK_DECOMPRESSION_FAILED, "{why}");
        assert!(e.is_connection_error(), "{why}");
    }
    // RIC 1 decodes fine in the same decoder (sanity for the cases above).
    let mut d = fresh();
    assert_eq!(pairs(&decoded(d.decode(4, &hexb("0200 80")).unwrap())), [(&b"x-a"[..], &b"1"[..])]);
    // A reference to an evicted entry.
    let mut d = fresh();
    let mut es = hexb("3f01"); // capacity 32 evicts abs 0
    instructions::write_insert_with_literal_name(b"", b"", false, &mut es);
    d.feed_encoder_stream(&es).unwrap();
    let e = d.decode(4, &hexb("0200 80")).unwrap_err(); // RIC 1 -> abs 0
    assert_eq!(e.reason, "reference to an evicted entry");
    // Any non-zero RIC when our capacity is 0.
    let mut d = dec(0, 0);
    assert_eq!(d.decode(4, &hexb("0100")).unwrap_err().code(), QPACK_DECOMPRESSION_FAILED);
}

#[test]
fn field_section_size_limit_is_a_stream_error() {
    let mut d = Decoder::new(DecoderConfig { max_table_capacity: 4096, max_blocked_streams: 0, max_field_section_size: 100, keep_last_static_section: false });
    // 2 lines of ":method GET" = 2 * (7 + 3 + 32) = 84: fits.
    assert_eq!(decoded(d.decode(0, &hexb("0000 d1 d1")).unwrap()).len(), 2);
    // A third line makes 126 > 100.
    let e = d.decode(0, &hexb("0000 d1 d1 d1")).unwrap_err();
    assert_eq!(e.kind, QpackErrorKind::FieldSectionTooLarge);
    assert_eq!(e.code(), QPACK_DECOMPRESSION_FAILED);
    assert!(!e.is_connection_error());
    // A literal claiming 1 MB is refused from its length, before any bytes.
    let mut s = hexb("0000 51");
    super::prefix_int::encode(1 << 20, 7, 0, &mut s);
    assert_eq!(d.decode(0, &s).unwrap_err().kind, QpackErrorKind::FieldSectionTooLarge);
    // With a dynamic reference, rejecting the section queues a Stream
    // Cancellation so the encoder releases its references.
    let mut es = hexb("3fe11f");
    instructions::write_insert_with_literal_name(b"x-big", &[b'v'; 80], false, &mut es);
    d.feed_encoder_stream(&es).unwrap();
    drain(&mut d);
    let e = d.decode(8, &hexb("0200 80")).unwrap_err();
    assert_eq!(e.kind, QpackErrorKind::FieldSectionTooLarge);
    assert_eq!(drain(&mut d), hexb("48"));
}

#[test]
fn decoder_stream_errors() {
    let mk = || {
        let mut e = Encoder::new(EncoderConfig::from_peer(4096, 10));
        let (mut s, mut es) = (Vec::new(), Vec::new());
        e.encode(4, &[("x-a", "1")], &mut s, &mut es); // one insert, one section
        e
    };
    let cases: &[(&str, &str)] = &[
        ("88", "ack for a stream with no outstanding section"),
        ("84 84", "second ack for the same stream"),
        ("00", "Insert Count Increment of zero"),
        ("02", "increment beyond the inserts sent"),
        ("ff ff ff ff ff ff ff ff ff ff ff ff 00", "integer overflow"),
    ];
    for (bytes, why) in cases {
        let mut e = mk();
        let err = e.feed_decoder_stream(&hexb(bytes)).unwrap_err();
        assert_eq!(err.kind, QpackErrorKind::DecoderStream, "{why}");
        assert_eq!(err.code(), QPACK_DECODER_STREAM_ERROR, "{why}");
    }
    // Valid: cancellation of an unknown stream is harmless; an increment
    // of 1 is fine; chunked input works.
    let mut e = mk();
    e.feed_decoder_stream(&hexb("7f")).unwrap();
    e.feed_decoder_stream(&hexb("01")).unwrap(); // cancel stream 64
    e.feed_decoder_stream(&hexb("01")).unwrap(); // increment 1
    assert_eq!(e.known_received_count(), 1);
    e.feed_decoder_stream(&hexb("44")).unwrap(); // cancel stream 4
    assert_eq!(e.outstanding_sections(), 0);
    assert_eq!(e.table().refs(0), 0);
}
