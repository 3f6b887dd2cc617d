//! Decodes arbitrary bytes as a decrypted packet payload, walking every
//! frame; each frame that decodes must re-encode (into exactly
//! `encoded_len` bytes) and decode again to an equal frame.
use quic_core::codec::{Reader, Writer};
use quic_core::frame::{Frame, FrameContext, FrameIter};

fn reencode(frame: &Frame<'_>) {
    let len = frame.encoded_len();
    let mut buf = vec![0u8; len];
    let mut w = Writer::new(&mut buf);
    frame.encode(&mut w).expect("encoded_len bytes are enough");
    assert_eq!(w.len(), len, "encoded_len is exact");
    let mut r = Reader::new(&buf);
    let again = Frame::decode(&mut r).expect("a re-encoded frame decodes");
    assert!(r.is_empty(), "the re-encoded frame is consumed entirely");
    assert_eq!(&again, frame);
    if len > 0 {
        let mut short = vec![0u8; len - 1];
        let mut w = Writer::new(&mut short);
        assert!(frame.encode(&mut w).is_err(), "one byte short must fail");
        assert_eq!(w.len(), 0, "a failed encode writes nothing");
    }
}

/// One fuzz input: what libFuzzer calls, and what the corpus replay test
/// (`tests/replay.rs`) calls without it.
pub fn run(data: &[u8]) {
    let mut errors = 0;
    for item in FrameIter::new(data) {
        assert_eq!(errors, 0, "FrameIter yields nothing after an error");
        match item {
            Ok(frame) => {
                if let Frame::Ack(ack) = &frame {
                    // Validated at decode: the ranges descend and never
                    // underflow.
                    let mut prev_start: Option<u64> = None;
                    for r in ack.iter() {
                        assert!(r.start() <= r.end());
                        if let Some(p) = prev_start {
                            assert!(*r.end() + 2 <= p);
                        }
                        prev_start = Some(*r.start());
                    }
                    assert_eq!(prev_start, Some(ack.smallest()));
                }
                reencode(&frame);
            }
            Err(_) => errors += 1,
        }
    }
    // With packet-type checks (RFC 9000 §12.4 Table 3), only allowed frames
    // come out. Table 3 treats every type of a kind alike (ACK/ACK_ECN,
    // the STREAM bits, both DATAGRAM types), so the type the frame would
    // be re-encoded with answers for the one received.
    for ctx in [FrameContext::Initial, FrameContext::Handshake, FrameContext::ZeroRtt, FrameContext::OneRtt] {
        for frame in FrameIter::for_packet(data, ctx).flatten() {
            assert!(frame.frame_type().is_allowed_in(ctx), "{frame:?} in {ctx:?}");
        }
    }
}
