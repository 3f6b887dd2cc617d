//! Frame codec tests with bytes laid out by hand from RFC 9000 §19 and
//! RFC 9221 §4.
#![allow(clippy::unwrap_used)]

use super::*;

const FE: TransportErrorCode = TransportErrorCode::FRAME_ENCODING_ERROR;
const PV: TransportErrorCode = TransportErrorCode::PROTOCOL_VIOLATION;

/// Decodes exactly one frame that spans all of `bytes`.
fn one(bytes: &[u8]) -> Frame<'_> {
    let mut r = Reader::new(bytes);
    let f = Frame::decode(&mut r).unwrap();
    assert!(r.is_empty(), "{} bytes left after {f:?}", r.remaining());
    f
}

fn err(bytes: &[u8]) -> Error {
    let mut r = Reader::new(bytes);
    Frame::decode(&mut r).unwrap_err()
}

/// Asserts the exact error code and the frame type it names.
fn assert_err(bytes: &[u8], code: TransportErrorCode, ty: u64) {
    let e = err(bytes);
    assert_eq!(e.code, code, "{bytes:02x?}: {e:?}");
    assert_eq!(e.frame_type, Some(ty), "{bytes:02x?}: {e:?}");
}

fn encode(f: &Frame<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; f.encoded_len() + 8];
    let mut w = Writer::new(&mut buf);
    f.encode(&mut w).unwrap();
    assert_eq!(w.len(), f.encoded_len(), "{f:?}");
    let n = w.len();
    buf.truncate(n);
    buf
}

/// `bytes` decodes to `frame`, and `frame` encodes back to `bytes`.
fn canonical(bytes: &[u8], frame: Frame<'_>) {
    assert_eq!(one(bytes), frame);
    assert_eq!(encode(&frame), bytes, "{frame:?}");
}

const TOKEN16: [u8; 16] = [0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf];

#[test]
fn padding_run_is_one_frame() {
    canonical(&[0x00], Frame::Padding { len: 1 });
    canonical(&[0; 5], Frame::Padding { len: 5 });
    let payload = [0x00, 0x00, 0x00, 0x01, 0x00];
    let frames: Vec<_> = FrameIter::new(&payload).collect::<Result<_, _>>().unwrap();
    assert_eq!(frames, vec![Frame::Padding { len: 3 }, Frame::Ping, Frame::Padding { len: 1 }]);
}

#[test]
fn ping_and_handshake_done() {
    canonical(&[0x01], Frame::Ping);
    canonical(&[0x1e], Frame::HandshakeDone);
}

#[test]
fn ack_with_ranges() {
    // Largest 10, delay 5, 1 more range, first range 2 (8..=10),
    // gap 1 -> largest 8-1-2 = 5, length 0 (5..=5).
    let bytes = [0x02, 0x0a, 0x05, 0x01, 0x02, 0x01, 0x00];
    let Frame::Ack(ack) = one(&bytes) else { panic!("not an ACK") };
    assert_eq!(ack.largest(), 10);
    assert_eq!(ack.ack_delay(), 5);
    assert_eq!(ack.range_count(), 1);
    assert_eq!(ack.first_range(), 8..=10);
    assert_eq!(ack.smallest(), 5);
    assert_eq!(ack.ecn(), None);
    assert_eq!(ack.frame_type(), FrameType::ACK);
    assert_eq!(ack.iter().collect::<Vec<_>>(), vec![8..=10, 5..=5]);
    assert_eq!(ack.iter().size_hint(), (2, Some(2)));
    assert_eq!(encode(&Frame::Ack(ack)), bytes);
    assert!(!Frame::Ack(ack).is_ack_eliciting());
}

#[test]
fn ack_ranges_down_to_packet_zero() {
    // first range 5..=5 shrunk: largest 5, first range 3 -> 2..=5; gap 0
    // -> largest 2-0-2 = 0, length 0 -> 0..=0.
    let bytes = [0x02, 0x05, 0x00, 0x01, 0x03, 0x00, 0x00];
    let Frame::Ack(ack) = one(&bytes) else { panic!("not an ACK") };
    assert_eq!(ack.iter().collect::<Vec<_>>(), vec![2..=5, 0..=0]);
    assert_eq!(ack.smallest(), 0);
}

#[test]
fn ack_ecn() {
    let bytes = [0x03, 0x01, 0x00, 0x00, 0x01, 0x04, 0x05, 0x06];
    let Frame::Ack(ack) = one(&bytes) else { panic!("not an ACK") };
    assert_eq!(ack.ecn(), Some(EcnCounts { ect0: 4, ect1: 5, ce: 6 }));
    assert_eq!(ack.iter().collect::<Vec<_>>(), vec![0..=1]);
    assert_eq!(ack.frame_type(), FrameType::ACK_ECN);
    assert_eq!(encode(&Frame::Ack(ack)), bytes);
}

#[test]
fn ack_errors() {
    // First ACK Range larger than Largest Acknowledged.
    assert_err(&[0x02, 0x01, 0x00, 0x00, 0x02], FE, 0x02);
    // Gap below zero: smallest 2, gap 1 -> 2-1-2 < 0.
    assert_err(&[0x02, 0x05, 0x00, 0x01, 0x03, 0x01, 0x00], FE, 0x02);
    // Range below zero: largest 10-0-2 = 8, length 9.
    assert_err(&[0x02, 0x0a, 0x00, 0x01, 0x00, 0x00, 0x09], FE, 0x02);
    // Range count says 2, only one range present.
    assert_err(&[0x02, 0x0a, 0x00, 0x02, 0x00, 0x00, 0x00], FE, 0x02);
    // ECN counts cut short.
    assert_err(&[0x03, 0x01, 0x00, 0x00, 0x01, 0x04, 0x05], FE, 0x03);
    // A range count of 2^62-1 ends at the end of input, quickly.
    assert_err(&[0x02, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00], FE, 0x02);
    // Truncated in the fixed fields.
    assert_err(&[0x02, 0x0a], FE, 0x02);
}

#[test]
fn ack_equality_ignores_varint_spelling() {
    let minimal = [0x02, 0x0a, 0x05, 0x01, 0x02, 0x01, 0x00];
    // Same frame, gap written as a 2-byte varint.
    let padded = [0x02, 0x0a, 0x05, 0x01, 0x02, 0x40, 0x01, 0x00];
    assert_eq!(one(&minimal), one(&padded));
    let other = [0x02, 0x0a, 0x05, 0x01, 0x02, 0x02, 0x00];
    assert_ne!(one(&minimal), one(&other));
}

#[test]
fn ack_encode_from_ranges() {
    let ranges = [10..=12, 5..=7, 1..=1];
    let mut buf = [0u8; 32];
    let mut w = Writer::new(&mut buf);
    AckFrame::encode_from_ranges(&mut w, ranges.iter().cloned(), 3, None).unwrap();
    // largest 12, delay 3, count 2, first 2; gap 10-7-2 = 1, len 2;
    // gap 5-1-2 = 2, len 0.
    let expected = [0x02, 0x0c, 0x03, 0x02, 0x02, 0x01, 0x02, 0x02, 0x00];
    assert_eq!(w.written(), &expected);
    assert_eq!(AckFrame::encoded_len_from_ranges(ranges.iter().cloned(), 3, None), Some(expected.len()));
    let Frame::Ack(ack) = one(&expected) else { panic!("not an ACK") };
    assert_eq!(ack.iter().collect::<Vec<_>>(), ranges.to_vec());

    let ecn = Some(EcnCounts { ect0: 1, ect1: 0, ce: 300 });
    let mut w = Writer::new(&mut buf);
    AckFrame::encode_from_ranges(&mut w, core::iter::once(0..=0), 0, ecn).unwrap();
    assert_eq!(w.written(), &[0x03, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x41, 0x2c]);
}

#[test]
fn ack_encode_rejects_bad_ranges_without_writing() {
    let mut buf = [0u8; 32];
    let bad: [&[RangeInclusive<u64>]; 5] = [
        &[],
        &[10..=12, 8..=9],                     // adjacent: no gap packet between them
        &[10..=12, 11..=11],                   // not descending
        &[10..=12, RangeInclusive::new(7, 5)], // reversed range
        &[RangeInclusive::new(3, 2)],
    ];
    for ranges in bad {
        let mut w = Writer::new(&mut buf);
        assert_eq!(AckFrame::encode_from_ranges(&mut w, ranges.iter().cloned(), 0, None), Err(BufferTooShort));
        assert_eq!(w.len(), 0);
        assert_eq!(AckFrame::encoded_len_from_ranges(ranges.iter().cloned(), 0, None), None);
    }
    // Too small a buffer.
    let mut small = [0u8; 4];
    let mut w = Writer::new(&mut small);
    assert_eq!(AckFrame::encode_from_ranges(&mut w, [10..=12, 5..=7].into_iter(), 0, None), Err(BufferTooShort));
    assert_eq!(w.len(), 0);
}

use core::ops::RangeInclusive;

#[test]
fn reset_stream_and_stop_sending() {
    canonical(&[0x04, 0x01, 0x02, 0x43, 0xe8], Frame::ResetStream { id: 1, error_code: 2, final_size: 1000 });
    assert_err(&[0x04, 0x01, 0x02], FE, 0x04);
    canonical(&[0x05, 0x04, 0x0a], Frame::StopSending { id: 4, error_code: 10 });
    assert_err(&[0x05, 0x04], FE, 0x05);
}

#[test]
fn crypto() {
    canonical(&[0x06, 0x00, 0x03, b'a', b'b', b'c'], Frame::Crypto { offset: 0, data: b"abc" });
    canonical(&[0x06, 0x41, 0x00, 0x00], Frame::Crypto { offset: 256, data: b"" });
    // Length beyond the payload.
    assert_err(&[0x06, 0x00, 0x05, b'a'], FE, 0x06);
    // offset 2^62-1 with 0 bytes is the limit; 1 byte more is too far.
    let max = [0xff; 8];
    let mut at_limit = vec![0x06];
    at_limit.extend_from_slice(&max);
    at_limit.push(0x00);
    assert_eq!(one(&at_limit), Frame::Crypto { offset: MAX_STREAM_OFFSET, data: b"" });
    let mut over = vec![0x06];
    over.extend_from_slice(&max);
    over.extend_from_slice(&[0x01, b'x']);
    assert_err(&over, FE, 0x06);
}

#[test]
fn new_token() {
    canonical(&[0x07, 0x02, 0xde, 0xad], Frame::NewToken { token: &[0xde, 0xad] });
    // RFC 9000 §19.7: empty token.
    assert_err(&[0x07, 0x00], FE, 0x07);
    assert_err(&[0x07, 0x03, 0x01], FE, 0x07);
}

#[test]
fn stream_type_bits() {
    // 0x08: no OFF, no LEN, no FIN: data runs to the end.
    assert_eq!(one(&[0x08, 0x04, b'h', b'i']), Frame::Stream { id: 4, offset: 0, fin: false, data: b"hi" });
    // 0x09: FIN only; empty data is allowed.
    assert_eq!(one(&[0x09, 0x04]), Frame::Stream { id: 4, offset: 0, fin: true, data: b"" });
    // 0x0a: LEN, trailing bytes are the next frame.
    let payload = [0x0a, 0x00, 0x01, b'x', 0x01];
    let frames: Vec<_> = FrameIter::new(&payload).collect::<Result<_, _>>().unwrap();
    assert_eq!(frames, vec![Frame::Stream { id: 0, offset: 0, fin: false, data: b"x" }, Frame::Ping]);
    // 0x0c: OFF, no LEN.
    assert_eq!(one(&[0x0c, 0x01, 0x05, b'z']), Frame::Stream { id: 1, offset: 5, fin: false, data: b"z" });
    // 0x0d: OFF and FIN.
    assert_eq!(one(&[0x0d, 0x01, 0x05, b'z']), Frame::Stream { id: 1, offset: 5, fin: true, data: b"z" });
    // 0x0f: everything.
    canonical(&[0x0f, 0x04, 0x05, 0x02, b'a', b'b'], Frame::Stream { id: 4, offset: 5, fin: true, data: b"ab" });
    // Encoding picks LEN always and OFF only for a non-zero offset.
    canonical(&[0x0a, 0x04, 0x01, b'q'], Frame::Stream { id: 4, offset: 0, fin: false, data: b"q" });
    // OFF present with a zero offset decodes to the same frame.
    assert_eq!(one(&[0x0e, 0x04, 0x00, 0x01, b'q']), one(&[0x0a, 0x04, 0x01, b'q']));
}

#[test]
fn stream_errors() {
    // LEN beyond the payload.
    assert_err(&[0x0a, 0x00, 0x05, 0x01], FE, 0x0a);
    // Missing offset.
    assert_err(&[0x0e, 0x00], FE, 0x0e);
    // Missing stream ID.
    assert_err(&[0x0b], FE, 0x0b);
    // offset + length above 2^62-1 (RFC 9000 §19.8).
    let mut over = vec![0x0e, 0x00];
    over.extend_from_slice(&[0xff; 8]);
    over.extend_from_slice(&[0x01, b'x']);
    assert_err(&over, FE, 0x0e);
    let mut over_no_len = vec![0x0c, 0x00];
    over_no_len.extend_from_slice(&[0xff; 8]);
    over_no_len.push(b'x');
    assert_err(&over_no_len, FE, 0x0c);
}

#[test]
fn flow_control_frames() {
    canonical(&[0x10, 0x44, 0x00], Frame::MaxData { max: 1024 });
    canonical(&[0x11, 0x08, 0x10], Frame::MaxStreamData { id: 8, max: 16 });
    canonical(&[0x14, 0x05], Frame::DataBlocked { limit: 5 });
    canonical(&[0x15, 0x02, 0x07], Frame::StreamDataBlocked { id: 2, limit: 7 });
    assert_err(&[0x10], FE, 0x10);
    assert_err(&[0x11, 0x08], FE, 0x11);
    assert_err(&[0x14, 0x40], FE, 0x14);
    assert_err(&[0x15, 0x02], FE, 0x15);
}

#[test]
fn stream_count_frames() {
    canonical(&[0x12, 0x0a], Frame::MaxStreams { dir: StreamDir::Bidi, max: 10 });
    canonical(&[0x13, 0x0a], Frame::MaxStreams { dir: StreamDir::Uni, max: 10 });
    canonical(&[0x16, 0x03], Frame::StreamsBlocked { dir: StreamDir::Bidi, limit: 3 });
    canonical(&[0x17, 0x03], Frame::StreamsBlocked { dir: StreamDir::Uni, limit: 3 });
    // 2^60 is the largest allowed count.
    let two_60 = [0xd0, 0, 0, 0, 0, 0, 0, 0];
    let over = [0xd0, 0, 0, 0, 0, 0, 0, 1];
    for ty in [0x12u8, 0x13, 0x16, 0x17] {
        let mut ok = vec![ty];
        ok.extend_from_slice(&two_60);
        let f = one(&ok);
        assert!(matches!(f, Frame::MaxStreams { max: MAX_STREAM_COUNT, .. } | Frame::StreamsBlocked { limit: MAX_STREAM_COUNT, .. }));
        let mut bad = vec![ty];
        bad.extend_from_slice(&over);
        assert_err(&bad, FE, u64::from(ty));
        assert_err(&[ty], FE, u64::from(ty));
    }
}

fn new_cid_bytes(seq: u8, rpt: u8, len: u8, cid_bytes: &[u8]) -> Vec<u8> {
    let mut b = vec![0x18, seq, rpt, len];
    b.extend_from_slice(cid_bytes);
    b.extend_from_slice(&TOKEN16);
    b
}

#[test]
fn new_connection_id() {
    let bytes = new_cid_bytes(2, 1, 4, &[1, 2, 3, 4]);
    canonical(
        &bytes,
        Frame::NewConnectionId { sequence: 2, retire_prior_to: 1, cid: ConnectionId::new(&[1, 2, 3, 4]).unwrap(), reset_token: ResetToken(TOKEN16) },
    );
    let twenty = [7u8; 20];
    assert!(matches!(one(&new_cid_bytes(0, 0, 20, &twenty)), Frame::NewConnectionId { cid, .. } if cid.len() == 20));
    // Length 0 and 21 (RFC 9000 §19.15).
    assert_err(&new_cid_bytes(0, 0, 0, &[]), FE, 0x18);
    assert_err(&new_cid_bytes(0, 0, 21, &[7u8; 21]), FE, 0x18);
    // Retire Prior To above Sequence Number.
    assert_err(&new_cid_bytes(1, 2, 4, &[1, 2, 3, 4]), FE, 0x18);
    // Reset token cut short.
    let mut short = new_cid_bytes(2, 1, 4, &[1, 2, 3, 4]);
    short.pop();
    assert_err(&short, FE, 0x18);
    // CID cut short.
    assert_err(&[0x18, 0x01, 0x00, 0x08, 0x01, 0x02], FE, 0x18);
}

#[test]
fn retire_connection_id_and_path_frames() {
    canonical(&[0x19, 0x03], Frame::RetireConnectionId { sequence: 3 });
    assert_err(&[0x19], FE, 0x19);
    let data = [1, 2, 3, 4, 5, 6, 7, 8];
    let mut challenge = vec![0x1a];
    challenge.extend_from_slice(&data);
    canonical(&challenge, Frame::PathChallenge { data });
    let mut response = vec![0x1b];
    response.extend_from_slice(&data);
    canonical(&response, Frame::PathResponse { data });
    assert_err(&challenge[..8], FE, 0x1a);
    assert_err(&response[..1], FE, 0x1b);
}

#[test]
fn connection_close() {
    canonical(
        &[0x1c, 0x07, 0x06, 0x03, b'b', b'a', b'd'],
        Frame::ConnectionClose { error_code: TransportErrorCode::FRAME_ENCODING_ERROR, frame_type: 0x06, reason: b"bad" },
    );
    canonical(&[0x1d, 0x41, 0x00, 0x00], Frame::ApplicationClose { error_code: 0x100, reason: b"" });
    // Reason longer than the payload.
    assert_err(&[0x1c, 0x07, 0x06, 0x04, b'b', b'a', b'd'], FE, 0x1c);
    assert_err(&[0x1d, 0x00, 0x02, b'x'], FE, 0x1d);
    // Missing the frame type field of a transport close.
    assert_err(&[0x1c, 0x07], FE, 0x1c);
}

#[test]
fn datagram() {
    assert_eq!(one(&[0x30, b'a', b'b']), Frame::Datagram { data: b"ab" });
    assert_eq!(one(&[0x30]), Frame::Datagram { data: b"" });
    canonical(&[0x31, 0x02, b'a', b'b'], Frame::Datagram { data: b"ab" });
    let payload = [0x31, 0x01, b'a', 0x01];
    let frames: Vec<_> = FrameIter::new(&payload).collect::<Result<_, _>>().unwrap();
    assert_eq!(frames, vec![Frame::Datagram { data: b"a" }, Frame::Ping]);
    assert_err(&[0x31, 0x03, b'a'], FE, 0x31);
}

#[test]
fn unknown_and_non_minimal_types() {
    for ty in [0x1fu64, 0x20, 0x2f, 0x32, 0x3f] {
        assert_err(&[ty as u8], FE, ty);
    }
    // A two-byte type that needs two bytes but is not defined.
    assert_err(&[0x40, 0x40], FE, 0x40);
    // RFC 9000 §12.4: a longer encoding than needed is PROTOCOL_VIOLATION,
    // even for known types and PADDING.
    assert_err(&[0x40, 0x06, 0x00, 0x00], PV, 0x06);
    assert_err(&[0x40, 0x00], PV, 0x00);
    assert_err(&[0x80, 0x00, 0x00, 0x31, 0x00], PV, 0x31);
    // Nothing at all.
    assert_eq!(err(&[]).code, FE);
}

#[test]
fn iter_stops_after_first_error() {
    let payload = [0x01, 0x1f, 0x01];
    let mut it = FrameIter::new(&payload);
    assert_eq!(it.next(), Some(Ok(Frame::Ping)));
    let e = it.next().unwrap().unwrap_err();
    assert_eq!((e.code, e.frame_type), (FE, Some(0x1f)));
    assert_eq!(it.next(), None);
    assert_eq!(it.next(), None);
    assert_eq!(FrameIter::new(&[]).next(), None);
}

#[test]
fn iter_for_packet_checks_table_3() {
    // STREAM in an Initial packet.
    let payload = [0x06, 0x00, 0x00, 0x0a, 0x00, 0x00];
    let mut it = FrameIter::for_packet(&payload, FrameContext::Initial);
    assert!(matches!(it.next(), Some(Ok(Frame::Crypto { .. }))));
    let e = it.next().unwrap().unwrap_err();
    assert_eq!((e.code, e.frame_type), (PV, Some(0x0a)));
    assert_eq!(it.next(), None);
    assert_eq!(FrameIter::for_packet(&payload, FrameContext::OneRtt).count(), 2);

    // Application close in Handshake; transport close is fine.
    let e = FrameIter::for_packet(&[0x1d, 0x00, 0x00], FrameContext::Handshake).next().unwrap().unwrap_err();
    assert_eq!((e.code, e.frame_type), (PV, Some(0x1d)));
    let f = FrameIter::for_packet(&[0x1c, 0x00, 0x00, 0x00], FrameContext::Handshake).next().unwrap();
    assert!(f.is_ok());

    // ACK in 0-RTT.
    let e = FrameIter::for_packet(&[0x02, 0, 0, 0, 0], FrameContext::ZeroRtt).next().unwrap().unwrap_err();
    assert_eq!(e.code, PV);

    // Unknown types stay FRAME_ENCODING_ERROR.
    let e = FrameIter::for_packet(&[0x21], FrameContext::Initial).next().unwrap().unwrap_err();
    assert_eq!(e.code, FE);

    // RFC 9000 §12.4: no frames at all.
    let mut it = FrameIter::for_packet(&[], FrameContext::OneRtt);
    assert_eq!(it.next().unwrap().unwrap_err().code, PV);
    assert_eq!(it.next(), None);
}

#[test]
fn encode_refuses_short_buffer_without_writing() {
    let frames = [
        Frame::Ping,
        Frame::Padding { len: 3 },
        Frame::Stream { id: 1, offset: 2, fin: true, data: b"hello" },
        Frame::Crypto { offset: 0, data: b"hello" },
        Frame::NewToken { token: b"tok" },
        Frame::ConnectionClose { error_code: TransportErrorCode::NO_ERROR, frame_type: 0, reason: b"bye" },
        Frame::Datagram { data: b"d" },
    ];
    for f in frames {
        let n = f.encoded_len();
        let mut buf = vec![0xeeu8; n - 1];
        let mut w = Writer::new(&mut buf);
        assert_eq!(f.encode(&mut w), Err(BufferTooShort), "{f:?}");
        assert_eq!(w.len(), 0);
        assert!(buf.iter().all(|&b| b == 0xee));
    }
    let Frame::Ack(ack) = one(&[0x02, 0x0a, 0x05, 0x01, 0x02, 0x01, 0x00]) else { panic!("not an ACK") };
    let mut buf = [0u8; 6];
    let mut w = Writer::new(&mut buf);
    assert_eq!(ack.encode(&mut w), Err(BufferTooShort));
    assert_eq!(w.len(), 0);
}

#[test]
fn frame_classification() {
    assert!(Frame::Ping.is_ack_eliciting());
    assert!(!Frame::Padding { len: 1 }.is_ack_eliciting());
    assert!(!Frame::ApplicationClose { error_code: 0, reason: b"" }.is_ack_eliciting());
    assert!(Frame::PathChallenge { data: [0; 8] }.is_probing());
    assert!(!Frame::Stream { id: 0, offset: 0, fin: false, data: b"" }.is_probing());
    assert_eq!(Frame::Stream { id: 0, offset: 1, fin: true, data: b"" }.frame_type(), FrameType(0x0f));
    assert_eq!(Frame::Datagram { data: b"" }.frame_type(), FrameType::DATAGRAM_LEN);
}

#[test]
fn padding_runs_end_at_the_first_nonzero_byte_at_any_position() {
    // Runs of every length around the 16-byte blocks the scan takes, ended
    // by a PING or by the end of the packet.
    for len in 0..70usize {
        for end_with_ping in [false, true] {
            let mut bytes = vec![0u8; len + 1];
            if end_with_ping {
                bytes.push(0x01);
            }
            let mut r = Reader::new(&bytes);
            assert_eq!(Frame::decode(&mut r).unwrap(), Frame::Padding { len: len + 1 }, "run of {len}");
            assert_eq!(r.remaining(), usize::from(end_with_ping));
        }
    }
}
