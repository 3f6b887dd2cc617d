//! The Capsule Protocol decoder (RFC 9297 §3) and the HTTP/3 datagram
//! header (RFC 9297 §2.1) on arbitrary input.
//!
//! Input: byte 0 picks the value bound (`b * 64` bytes) and whether type
//! 0x2843 is delivered too; byte 1 the chunk size the rest is fed in. The
//! decoder must never panic, never deliver a value above the bound, and the
//! capsules it delivers, encoded again and fed whole, must come out the
//! same. The whole input is also parsed as an HTTP/3 datagram: a Quarter
//! Stream ID that decodes must be at most 2^60 - 1 and re-encode to the
//! same bytes.

use h3_core::capsule::{self, Capsule, CapsuleDecoder};
use h3_core::datagram;

fn decode_all(dec: &mut CapsuleDecoder, data: &[u8], chunk: usize) -> (Vec<Capsule>, bool) {
    let mut out = Vec::new();
    for part in data.chunks(chunk.max(1)) {
        let mut input = part;
        loop {
            match dec.decode(&mut input) {
                Ok(Some(c)) => out.push(c),
                Ok(None) => break,
                Err(_) => return (out, false),
            }
        }
        assert!(input.is_empty(), "Ok(None) means the input was used up");
    }
    (out, true)
}

/// One fuzz input: what libFuzzer calls, and what the corpus replay test
/// (`tests/replay.rs`) calls without it.
pub fn run(data: &[u8]) {
    if let Ok((stream, off)) = datagram::decode(data) {
        assert!(stream.0 >> 2 <= datagram::MAX_QUARTER_STREAM_ID);
        let mut hdr = [0u8; 8];
        let n = datagram::encode_header(stream, &mut hdr).unwrap();
        // Non-minimal varints are legal on the wire, so compare values.
        assert!(n <= off && off <= data.len());
        assert_eq!(datagram::decode(&hdr[..n]).unwrap().0, stream);
    }

    let [a, b, rest @ ..] = data else { return };
    let max = usize::from(a & 0x7f) * 64;
    let extra = a & 0x80 != 0;
    let mut dec = CapsuleDecoder::new(max);
    if extra {
        dec.deliver_type(0x2843);
    }
    let (caps, ok) = decode_all(&mut dec, rest, usize::from(*b));
    for c in &caps {
        assert!(c.value.len() <= max);
        assert!(c.capsule_type == capsule::capsule_type::DATAGRAM || (extra && c.capsule_type == 0x2843));
    }
    if ok {
        // A clean end of input is either between capsules or truncated.
        assert_eq!(dec.finish().is_ok(), dec.is_idle());
    }
    let mut again = Vec::new();
    for c in &caps {
        capsule::encode(c.capsule_type, &c.value, &mut again).unwrap();
    }
    let mut dec2 = CapsuleDecoder::new(max);
    if extra {
        dec2.deliver_type(0x2843);
    }
    let (caps2, ok2) = decode_all(&mut dec2, &again, again.len().max(1));
    assert!(ok2 && dec2.is_idle());
    assert_eq!(caps, caps2);
}
