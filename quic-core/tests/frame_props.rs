//! Property tests for the frame codec: every variant round-trips through
//! encode/decode with `encoded_len` exact, and no byte string makes the
//! decoder panic.
#![allow(clippy::unwrap_used)]

use std::ops::RangeInclusive;

use proptest::prelude::*;
use quic_core::codec::{Reader, Writer};
use quic_core::frame::{
    AckFrame, CryptoFrameHeader, EcnCounts, Frame, FrameContext, FrameIter, StreamDir, StreamFrameHeader, MAX_STREAM_COUNT, MAX_STREAM_OFFSET,
};
use quic_core::{ConnectionId, ResetToken, TransportErrorCode};

const VARINT_MAX: u64 = (1 << 62) - 1;

/// A frame with owned data, from which a borrowed [`Frame`] is made.
#[derive(Debug, Clone)]
enum Owned {
    Padding(usize),
    Ping,
    /// The ranges and the ACK frame bytes `encode_from_ranges` made of them.
    Ack {
        ranges: Vec<RangeInclusive<u64>>,
        bytes: Vec<u8>,
    },
    ResetStream(u64, u64, u64),
    StopSending(u64, u64),
    Crypto(u64, Vec<u8>),
    NewToken(Vec<u8>),
    Stream(u64, u64, bool, Vec<u8>),
    MaxData(u64),
    MaxStreamData(u64, u64),
    MaxStreams(StreamDir, u64),
    DataBlocked(u64),
    StreamDataBlocked(u64, u64),
    StreamsBlocked(StreamDir, u64),
    NewConnectionId(u64, u64, Vec<u8>, [u8; 16]),
    RetireConnectionId(u64),
    PathChallenge([u8; 8]),
    PathResponse([u8; 8]),
    ConnectionClose(u64, u64, Vec<u8>),
    ApplicationClose(u64, Vec<u8>),
    HandshakeDone,
    Datagram(Vec<u8>),
}

impl Owned {
    fn frame(&self) -> Frame<'_> {
        match self {
            Owned::Padding(len) => Frame::Padding { len: *len },
            Owned::Ping => Frame::Ping,
            Owned::Ack { bytes, .. } => Frame::decode(&mut Reader::new(bytes)).unwrap(),
            Owned::ResetStream(id, error_code, final_size) => Frame::ResetStream { id: *id, error_code: *error_code, final_size: *final_size },
            Owned::StopSending(id, error_code) => Frame::StopSending { id: *id, error_code: *error_code },
            Owned::Crypto(offset, data) => Frame::Crypto { offset: *offset, data },
            Owned::NewToken(token) => Frame::NewToken { token },
            Owned::Stream(id, offset, fin, data) => Frame::Stream { id: *id, offset: *offset, fin: *fin, data },
            Owned::MaxData(max) => Frame::MaxData { max: *max },
            Owned::MaxStreamData(id, max) => Frame::MaxStreamData { id: *id, max: *max },
            Owned::MaxStreams(dir, max) => Frame::MaxStreams { dir: *dir, max: *max },
            Owned::DataBlocked(limit) => Frame::DataBlocked { limit: *limit },
            Owned::StreamDataBlocked(id, limit) => Frame::StreamDataBlocked { id: *id, limit: *limit },
            Owned::StreamsBlocked(dir, limit) => Frame::StreamsBlocked { dir: *dir, limit: *limit },
            Owned::NewConnectionId(sequence, retire_prior_to, cid, token) => Frame::NewConnectionId {
                sequence: *sequence,
                retire_prior_to: *retire_prior_to,
                cid: ConnectionId::new(cid).unwrap(),
                reset_token: ResetToken(*token),
            },
            Owned::RetireConnectionId(sequence) => Frame::RetireConnectionId { sequence: *sequence },
            Owned::PathChallenge(data) => Frame::PathChallenge { data: *data },
            Owned::PathResponse(data) => Frame::PathResponse { data: *data },
            Owned::ConnectionClose(code, frame_type, reason) => {
                Frame::ConnectionClose { error_code: TransportErrorCode(*code), frame_type: *frame_type, reason }
            }
            Owned::ApplicationClose(error_code, reason) => Frame::ApplicationClose { error_code: *error_code, reason },
            Owned::HandshakeDone => Frame::HandshakeDone,
            Owned::Datagram(data) => Frame::Datagram { data },
        }
    }
}

/// Varints spread over all four encoded widths.
fn varint() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..64, 64u64..16_384, 16_384u64..(1 << 30), (1u64 << 30)..=VARINT_MAX]
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..=max)
}

fn dir() -> impl Strategy<Value = StreamDir> {
    prop_oneof![Just(StreamDir::Bidi), Just(StreamDir::Uni)]
}

/// Valid ACK ranges: highest first, disjoint, non-adjacent, all >= 0.
fn ack_ranges() -> impl Strategy<Value = Vec<RangeInclusive<u64>>> {
    let step = prop_oneof![0u64..4, 0u64..300, varint()];
    (varint(), step.clone(), prop::collection::vec((step.clone(), step), 0..24)).prop_map(|(largest, first_len, rest)| {
        let mut ranges = vec![largest.saturating_sub(first_len)..=largest];
        let mut smallest = largest.saturating_sub(first_len);
        for (gap, len) in rest {
            let Some(end) = smallest.checked_sub(gap).and_then(|v| v.checked_sub(2)) else {
                break;
            };
            let start = end.saturating_sub(len);
            ranges.push(start..=end);
            smallest = start;
        }
        ranges
    })
}

fn ecn() -> impl Strategy<Value = Option<EcnCounts>> {
    prop::option::of((varint(), varint(), varint()).prop_map(|(ect0, ect1, ce)| EcnCounts { ect0, ect1, ce }))
}

fn ack() -> impl Strategy<Value = Owned> {
    (ack_ranges(), varint(), ecn()).prop_map(|(ranges, delay, ecn)| {
        let len = AckFrame::encoded_len_from_ranges(ranges.iter().cloned(), delay, ecn).unwrap();
        let mut bytes = vec![0u8; len];
        let mut w = Writer::new(&mut bytes);
        AckFrame::encode_from_ranges(&mut w, ranges.iter().cloned(), delay, ecn).unwrap();
        assert_eq!(w.len(), len);
        Owned::Ack { ranges, bytes }
    })
}

/// An offset that leaves room for `len` bytes below 2^62.
fn fit_offset(offset: u64, len: usize) -> u64 {
    offset.min(MAX_STREAM_OFFSET - len as u64)
}

fn owned_frame() -> impl Strategy<Value = Owned> {
    prop_oneof![
        (1usize..1500).prop_map(Owned::Padding),
        Just(Owned::Ping),
        ack(),
        (varint(), varint(), varint()).prop_map(|(a, b, c)| Owned::ResetStream(a, b, c)),
        (varint(), varint()).prop_map(|(a, b)| Owned::StopSending(a, b)),
        (varint(), bytes(300)).prop_map(|(o, d)| Owned::Crypto(fit_offset(o, d.len()), d)),
        prop::collection::vec(any::<u8>(), 1..100).prop_map(Owned::NewToken),
        (varint(), prop_oneof![Just(0u64), varint()], any::<bool>(), bytes(300)).prop_map(|(id, o, fin, d)| Owned::Stream(id, fit_offset(o, d.len()), fin, d)),
        varint().prop_map(Owned::MaxData),
        (varint(), varint()).prop_map(|(a, b)| Owned::MaxStreamData(a, b)),
        (dir(), 0..=MAX_STREAM_COUNT).prop_map(|(d, m)| Owned::MaxStreams(d, m)),
        varint().prop_map(Owned::DataBlocked),
        (varint(), varint()).prop_map(|(a, b)| Owned::StreamDataBlocked(a, b)),
        (dir(), 0..=MAX_STREAM_COUNT).prop_map(|(d, m)| Owned::StreamsBlocked(d, m)),
        (varint(), varint(), prop::collection::vec(any::<u8>(), 1..=20), any::<[u8; 16]>()).prop_map(|(seq, rpt, cid, tok)| Owned::NewConnectionId(
            seq,
            rpt % (seq + 1),
            cid,
            tok
        )),
        varint().prop_map(Owned::RetireConnectionId),
        any::<[u8; 8]>().prop_map(Owned::PathChallenge),
        any::<[u8; 8]>().prop_map(Owned::PathResponse),
        (varint(), varint(), bytes(64)).prop_map(|(c, t, r)| Owned::ConnectionClose(c, t, r)),
        (varint(), bytes(64)).prop_map(|(c, r)| Owned::ApplicationClose(c, r)),
        Just(Owned::HandshakeDone),
        bytes(300).prop_map(Owned::Datagram),
    ]
}

/// Encodes into a buffer with slack, checking the bytes written equal
/// `encoded_len`.
fn encode(f: &Frame<'_>) -> Vec<u8> {
    let len = f.encoded_len();
    let mut buf = vec![0u8; len + 16];
    let mut w = Writer::new(&mut buf);
    f.encode(&mut w).unwrap();
    assert_eq!(w.len(), len, "encoded_len of {f:?}");
    buf.truncate(len);
    buf
}

/// For a decoded frame: re-encode, decode again, same frame.
fn reencode_roundtrip(f: &Frame<'_>) {
    let bytes = encode(f);
    let mut r = Reader::new(&bytes);
    let again = Frame::decode(&mut r).unwrap();
    assert!(r.is_empty());
    assert_eq!(&again, f);
}

/// Adjacent PADDING frames decode as one run.
fn merge_padding<'a>(frames: impl Iterator<Item = Frame<'a>>) -> Vec<Frame<'a>> {
    let mut out: Vec<Frame<'a>> = Vec::new();
    for f in frames {
        if let (Some(Frame::Padding { len: prev }), Frame::Padding { len }) = (out.last_mut(), &f) {
            *prev += len;
            continue;
        }
        out.push(f);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn roundtrip_every_variant(owned in owned_frame()) {
        let frame = owned.frame();
        let bytes = encode(&frame);
        let mut r = Reader::new(&bytes);
        let decoded = Frame::decode(&mut r).unwrap();
        prop_assert!(r.is_empty());
        prop_assert_eq!(&decoded, &frame);
        prop_assert_eq!(decoded.frame_type(), frame.frame_type());
        // One byte less is refused without a partial write.
        if !bytes.is_empty() {
            let mut short = vec![0u8; bytes.len() - 1];
            let mut w = Writer::new(&mut short);
            prop_assert!(frame.encode(&mut w).is_err());
            prop_assert_eq!(w.len(), 0);
        }
        if let (Owned::Ack { ranges, .. }, Frame::Ack(ack)) = (&owned, &decoded) {
            prop_assert_eq!(&ack.iter().collect::<Vec<_>>(), ranges);
            prop_assert_eq!(ack.largest(), *ranges[0].end());
            prop_assert_eq!(ack.smallest(), *ranges[ranges.len() - 1].start());
            prop_assert_eq!(ack.range_count() as usize, ranges.len() - 1);
        }
    }

    #[test]
    fn payload_of_many_frames_iterates_back(owned in prop::collection::vec(owned_frame(), 1..12)) {
        let frames: Vec<Frame<'_>> = owned.iter().map(Owned::frame).collect();
        let mut payload = Vec::new();
        for f in &frames {
            payload.extend_from_slice(&encode(f));
        }
        let decoded: Vec<Frame<'_>> = FrameIter::new(&payload).collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(decoded, merge_padding(frames.into_iter()));
    }

    #[test]
    fn stream_header_fit(
        id in varint(),
        offset in prop_oneof![Just(0u64), 0u64..1_000_000],
        available in 0usize..3000,
        fin in any::<bool>(),
        space in 0usize..1500,
    ) {
        let data = vec![0x5a; available];
        if let Some(h) = StreamFrameHeader::fit(id, offset, available, fin, space) {
            prop_assert!(h.len <= available);
            prop_assert!(h.encoded_len() + h.len <= space);
            prop_assert_eq!(h.fin, fin && h.len == available);
            // Without LEN the frame ends the packet: decode exactly header+data.
            let mut buf = vec![0u8; h.encoded_len() + h.len];
            let mut w = Writer::new(&mut buf);
            h.encode(&mut w).unwrap();
            prop_assert_eq!(w.len(), h.encoded_len());
            w.put(&data[..h.len]).unwrap();
            let f = Frame::decode(&mut Reader::new(&buf)).unwrap();
            prop_assert_eq!(f, Frame::Stream { id, offset, fin: h.fin, data: &data[..h.len] });
        } else {
            // Nothing fit: not even a one-byte frame without LEN.
            let min = StreamFrameHeader { id, offset, len: 1, fin: false, with_len: false }.encoded_len();
            prop_assert!((available == 0 && !fin) || space < min + usize::from(available > 0));
        }
    }

    #[test]
    fn crypto_header_fit(offset in varint(), available in 0usize..100_000, space in 0usize..70_000) {
        if let Some(h) = CryptoFrameHeader::fit(offset, available, space) {
            prop_assert!(h.len >= 1 && h.len <= available);
            prop_assert!(h.encoded_len() + h.len <= space);
            let bigger = CryptoFrameHeader { offset, len: h.len + 1 };
            prop_assert!(h.len == available || bigger.encoded_len() + bigger.len > space);
        } else {
            prop_assert!(available == 0 || space < 1 + quic_core::varint::size(offset) + 2);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5000))]

    /// Arbitrary bytes: iteration never panics, ends after the first
    /// error, and every frame it yields re-encodes to itself.
    #[test]
    fn decode_never_panics(payload in prop::collection::vec(any::<u8>(), 0..2000)) {
        for ctx in [None, Some(FrameContext::Initial), Some(FrameContext::ZeroRtt), Some(FrameContext::OneRtt)] {
            let iter = match ctx {
                None => FrameIter::new(&payload),
                Some(ctx) => FrameIter::for_packet(&payload, ctx),
            };
            let mut seen_error = false;
            for item in iter {
                prop_assert!(!seen_error, "item after an error");
                match item {
                    Ok(f) => reencode_roundtrip(&f),
                    Err(_) => seen_error = true,
                }
            }
        }
    }

    /// Valid payloads, then cut or with a byte flipped: still no panic, and
    /// whatever decodes re-encodes to itself.
    #[test]
    fn mutated_payloads_never_panic(
        owned in prop::collection::vec(owned_frame(), 1..6),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let mut payload = Vec::new();
        for o in &owned {
            payload.extend_from_slice(&encode(&o.frame()));
        }
        if payload.is_empty() {
            return Ok(());
        }
        let mut flipped = payload.clone();
        flipped[flip.index(payload.len())] ^= xor;
        let truncated = &payload[..cut.index(payload.len())];
        for p in [&flipped[..], truncated] {
            for item in FrameIter::new(p) {
                match item {
                    Ok(f) => reencode_roundtrip(&f),
                    Err(e) => prop_assert!(
                        e.code == TransportErrorCode::FRAME_ENCODING_ERROR
                            || e.code == TransportErrorCode::PROTOCOL_VIOLATION
                    ),
                }
            }
        }
    }
}
