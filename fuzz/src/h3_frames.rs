//! HTTP/3 frames (RFC 9114 §7), SETTINGS, unidirectional stream headers and
//! message validation on arbitrary bytes.
//!
//! The first byte picks chunk sizes; the rest is decoded as the contents of a
//! control, request and push stream. Decoding must not panic, must give the
//! same events and error whether fed whole or in chunks, and `Ok(None)` must
//! mean the chunk was used up. Whatever SETTINGS payload decodes must
//! re-encode and decode to the same settings. The same bytes, cut into
//! field lines, go through request, response and trailer validation, which
//! must fail only with H3_MESSAGE_ERROR.

use h3_core::error::{H3Error, H3ErrorCode};
use h3_core::frame::{FrameDecoder, FrameEvent, FrameLimits, StreamKind};
use h3_core::message::{parse_request, parse_response, validate_trailers, RequestOptions};
use h3_core::settings::Settings;
use h3_core::stream_type::StreamHeaderReader;
use quic_core::codec::Writer;

/// An owned summary of an event; DATA pieces are merged.
#[derive(Debug, PartialEq, Eq)]
enum Ev {
    Header(u64),
    Data(Vec<u8>),
    Other(String),
}

fn decode(kind: StreamKind, bytes: &[u8], chunk: usize, limits: FrameLimits) -> (Vec<Ev>, Option<H3Error>) {
    let mut dec = FrameDecoder::new(kind, limits);
    let mut out: Vec<Ev> = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        let mut input = piece;
        loop {
            match dec.decode(&mut input) {
                Ok(Some(FrameEvent::DataChunk(d))) => match out.last_mut() {
                    Some(Ev::Data(acc)) => acc.extend_from_slice(d),
                    _ => out.push(Ev::Data(d.to_vec())),
                },
                Ok(Some(FrameEvent::DataHeader { len })) => out.push(Ev::Header(len)),
                Ok(Some(ev)) => out.push(Ev::Other(format!("{ev:?}"))),
                Ok(None) => {
                    assert!(input.is_empty());
                    break;
                }
                Err(e) => {
                    assert_eq!(dec.error(), Some(e));
                    return (out, Some(e));
                }
            }
        }
    }
    (out, dec.finish().err())
}

fn settings_round_trip(payload: &[u8], seed: u64) {
    let Ok(s) = Settings::decode(payload) else { return };
    let mut buf = vec![0u8; s.encoded_len_with_grease(seed)];
    s.encode_with_grease(seed, &mut Writer::new(&mut buf)).expect("sized buffer");
    let mut dec = FrameDecoder::new(StreamKind::Control, FrameLimits::default());
    let mut input = &buf[..];
    match dec.decode(&mut input) {
        Ok(Some(FrameEvent::Settings(again))) => assert_eq!(again, s),
        other => panic!("own SETTINGS did not decode: {other:?}"),
    }
    assert!(input.is_empty());
}

/// One fuzz input: what libFuzzer calls, and what the corpus replay test
/// (`tests/replay.rs`) calls without it.
pub fn run(data: &[u8]) {
    let Some((&knob, rest)) = data.split_first() else { return };
    let chunk = usize::from(knob % 17) + 1;
    // Small limits so the limit paths are reached too.
    let limits = if knob & 0x80 != 0 { FrameLimits { max_field_section_size: 40, max_control_frame_size: 24 } } else { FrameLimits::default() };
    for kind in [StreamKind::Control, StreamKind::Request, StreamKind::Push] {
        let whole = decode(kind, rest, rest.len(), limits);
        let split = decode(kind, rest, chunk, limits);
        assert_eq!(whole, split, "chunking changed the result");
    }

    if let Err(e) = Settings::decode(rest) {
        assert!(e.code == H3ErrorCode::H3_FRAME_ERROR || e.code == H3ErrorCode::H3_SETTINGS_ERROR);
    }
    settings_round_trip(rest, u64::from(knob).wrapping_mul(0x9e37_79b9_7f4a_7c15));

    let mut reader = StreamHeaderReader::new();
    for piece in rest.chunks(chunk) {
        let mut input = piece;
        if reader.read(&mut input).is_some() {
            break;
        }
        assert!(input.is_empty());
    }

    // Field lines: NUL-separated name/value pairs.
    let parts: Vec<&[u8]> = rest.split(|&b| b == 0).collect();
    let fields: Vec<(&[u8], &[u8])> = parts.chunks(2).map(|p| (p[0], *p.get(1).unwrap_or(&&b""[..]))).collect();
    for ext in [false, true] {
        if let Err(e) = parse_request(&fields, RequestOptions { extended_connect: ext }) {
            assert_eq!(e.code, H3ErrorCode::H3_MESSAGE_ERROR);
        }
    }
    if let Err(e) = parse_response(&fields) {
        assert_eq!(e.code, H3ErrorCode::H3_MESSAGE_ERROR);
    }
    if let Err(e) = validate_trailers(&fields) {
        assert_eq!(e.code, H3ErrorCode::H3_MESSAGE_ERROR);
    }
}
