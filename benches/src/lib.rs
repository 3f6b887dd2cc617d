//! Shared fixtures for the criterion benches in `benches/benches/`: packets
//! and payloads built once, outside the measured loops, with quic-core's own
//! encoders so the benches measure exactly what a connection would see.
//!
//! Sizes follow the common case: a 1200-byte datagram (RFC 9000 §14: the
//! smallest size every QUIC path must carry) holding one short-header packet
//! with an 8-byte connection ID and a 2-byte packet number.

use core::ops::RangeInclusive;

use quic_core::codec::Writer;
use quic_core::crypto::{CipherSuite, CryptoError, DirectionalKeys, Keys, TAG_LEN};
use quic_core::error::BufferTooShort;
use quic_core::frame::{AckFrame, StreamFrameHeader};
use quic_core::packet::{HeaderLayout, LongHeader, LongType, ShortHeader};
use quic_core::Version;

/// Bytes of every benchmarked packet, header and AEAD tag included.
pub const PACKET_LEN: usize = 1200;
/// The Destination Connection ID of the short-header packets.
pub const SHORT_DCID: [u8; 8] = [0x5a, 0x37, 0x46, 0x3b, 0x0e, 0xb7, 0xcc, 0x5d];
/// Packet number length used by the fixtures (RFC 9000 §17.1: 2 bytes cover
/// a window of 32768 packets in flight, the usual choice).
pub const PN_LEN: usize = 2;
/// Packet number of the fixtures.
pub const PACKET_NUMBER: u64 = 0x1234;
/// Short header: first byte, DCID, packet number.
pub const SHORT_HEADER_LEN: usize = 1 + SHORT_DCID.len() + PN_LEN;
/// Plaintext bytes of a [`PACKET_LEN`] short-header packet.
pub const ONE_RTT_PAYLOAD_LEN: usize = PACKET_LEN - SHORT_HEADER_LEN - TAG_LEN;

/// The three AEADs of TLS 1.3 that QUIC uses (RFC 9001 §5.3), with a name
/// for benchmark ids.
pub const SUITES: [(CipherSuite, &str); 3] =
    [(CipherSuite::Aes128Gcm, "AES-128-GCM"), (CipherSuite::Aes256Gcm, "AES-256-GCM"), (CipherSuite::ChaCha20Poly1305, "ChaCha20-Poly1305")];

/// 1-RTT keys of one direction for `suite`, derived from a fixed traffic
/// secret of the suite's hash length (RFC 9001 §5.1).
pub fn one_rtt_keys(suite: CipherSuite) -> Result<DirectionalKeys, CryptoError> {
    let secret: Vec<u8> = (0..suite.secret_len()).map(|i| (i as u8).wrapping_mul(31).wrapping_add(7)).collect();
    DirectionalKeys::from_secret(suite, Version::V1, &secret)
}

/// A packet laid out for [`DirectionalKeys::protect`]: unprotected header,
/// plaintext payload, 16 bytes reserved for the tag.
#[derive(Debug, Clone)]
pub struct PlainPacket {
    pub bytes: Vec<u8>,
    pub layout: HeaderLayout,
    pub packet_number: u64,
}

impl PlainPacket {
    /// The unprotected header (first byte through packet number), which the
    /// protect benches restore before every iteration.
    pub fn header(&self) -> &[u8] {
        self.bytes.get(..self.layout.header_len()).unwrap_or(&[])
    }

    /// Protects a copy of this packet: the input of the unprotect benches.
    pub fn protected(&self, keys: &DirectionalKeys) -> Result<Vec<u8>, CryptoError> {
        let mut out = self.bytes.clone();
        keys.protect(self.packet_number, &mut out, self.layout.pn_offset, self.layout.pn_len)?;
        Ok(out)
    }
}

/// A [`PACKET_LEN`]-byte short-header (1-RTT) packet carrying `payload`,
/// which must be [`ONE_RTT_PAYLOAD_LEN`] bytes.
pub fn short_header_packet(payload: &[u8]) -> Result<PlainPacket, BufferTooShort> {
    if payload.len() != ONE_RTT_PAYLOAD_LEN {
        return Err(BufferTooShort);
    }
    let mut bytes = vec![0u8; PACKET_LEN];
    let mut w = Writer::new(&mut bytes);
    let h = ShortHeader { dcid: &SHORT_DCID, spin: false, key_phase: false };
    let layout = h.encode(&mut w, PACKET_NUMBER, PN_LEN)?;
    w.put(payload)?;
    // The last TAG_LEN bytes stay zero: room for the AEAD tag.
    Ok(PlainPacket { bytes, layout, packet_number: PACKET_NUMBER })
}

/// A [`PACKET_LEN`]-byte client Initial packet (RFC 9000 §17.2.2) with an
/// 8-byte DCID, no SCID and no token: one CRYPTO frame followed by PADDING,
/// as a client's first flight looks (RFC 9000 §14.1).
pub fn initial_packet(dcid: &[u8]) -> Result<PlainPacket, BufferTooShort> {
    let mut bytes = vec![0u8; PACKET_LEN];
    let mut w = Writer::new(&mut bytes);
    let h = LongHeader { ty: LongType::Initial, version: Version::V1, dcid, scid: &[], token: &[] };
    let layout = h.encode(&mut w, 0, PN_LEN, 2)?;
    let payload_len = PACKET_LEN - layout.header_len() - TAG_LEN;
    // CRYPTO (RFC 9000 §19.6) with a 300-byte stand-in ClientHello.
    let crypto = [0x16u8; 300];
    w.varint(0x06)?;
    w.varint(0)?;
    w.varint_prefixed(&crypto)?;
    let used = w.len() - layout.header_len();
    w.fill(0, payload_len.checked_sub(used).ok_or(BufferTooShort)?)?;
    layout.set_payload_len(&mut bytes, payload_len + TAG_LEN)?;
    Ok(PlainPacket { bytes, layout, packet_number: 0 })
}

/// Client Initial keys (the "client in" direction) for `dcid` (RFC 9001 §5.2).
pub fn client_initial_keys(dcid: &[u8]) -> Result<DirectionalKeys, CryptoError> {
    Ok(Keys::initial(Version::V1, dcid, false)?.local)
}

/// Number of STREAM frames in [`stream_payload`].
pub const STREAM_FRAMES: usize = 10;
/// Data bytes of each of those STREAM frames.
pub const STREAM_DATA_LEN: usize = 110;

/// Writes STREAM frames with a Length field (so they can be followed by
/// more frames, RFC 9000 §19.8) of `data_len` bytes each on stream 4 until
/// `count` frames are written or the next one does not fit.
fn write_stream_frames(w: &mut Writer<'_>, count: usize, data_len: usize) -> Result<usize, BufferTooShort> {
    let data = vec![0xabu8; data_len];
    let mut written = 0;
    let mut offset = 0u64;
    while written < count {
        let h = StreamFrameHeader { id: 4, offset, len: data_len, fin: false, with_len: true };
        if w.remaining() < h.encoded_len() + data_len {
            break;
        }
        h.encode(w)?;
        w.put(&data)?;
        offset += data_len as u64;
        written += 1;
    }
    Ok(written)
}

/// A [`ONE_RTT_PAYLOAD_LEN`]-byte payload: [`STREAM_FRAMES`] STREAM frames
/// of [`STREAM_DATA_LEN`] bytes, then PADDING to the end.
pub fn stream_payload() -> Result<Vec<u8>, BufferTooShort> {
    let mut buf = vec![0u8; ONE_RTT_PAYLOAD_LEN];
    let mut w = Writer::new(&mut buf);
    if write_stream_frames(&mut w, STREAM_FRAMES, STREAM_DATA_LEN)? != STREAM_FRAMES {
        return Err(BufferTooShort);
    }
    // The rest stays zero: PADDING (RFC 9000 §19.1).
    Ok(buf)
}

/// Acknowledged ranges in [`ack_payload`]: the first range plus this many
/// more (the ACK Range Count field).
pub const ACK_EXTRA_RANGES: usize = 30;
/// Largest Acknowledged of [`ack_payload`].
pub const ACK_LARGEST: u64 = 100_000;

/// The ranges of [`ack_payload`], highest first: 3 packets received, 2
/// lost, repeated, as on a lossy path.
pub fn ack_ranges() -> impl Iterator<Item = RangeInclusive<u64>> + Clone {
    (0..=ACK_EXTRA_RANGES as u64).map(|k| {
        let high = ACK_LARGEST - 5 * k;
        high - 2..=high
    })
}

/// A [`ONE_RTT_PAYLOAD_LEN`]-byte payload: one ACK frame with
/// `1 + ACK_EXTRA_RANGES` ranges, then as many 110-byte STREAM frames as
/// fit, then PADDING.
pub fn ack_payload() -> Result<Vec<u8>, BufferTooShort> {
    let mut buf = vec![0u8; ONE_RTT_PAYLOAD_LEN];
    let mut w = Writer::new(&mut buf);
    AckFrame::encode_from_ranges(&mut w, ack_ranges(), 25, None)?;
    write_stream_frames(&mut w, usize::MAX, STREAM_DATA_LEN)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use quic_core::frame::{Frame, FrameContext, FrameIter};
    use quic_core::packet::{number, CoalescedPackets, PacketType};

    #[test]
    fn stream_payload_has_ten_stream_frames() {
        let p = stream_payload().unwrap();
        assert_eq!(p.len(), ONE_RTT_PAYLOAD_LEN);
        let frames: Vec<_> = FrameIter::for_packet(&p, FrameContext::OneRtt).map(|f| f.unwrap()).collect();
        let streams: Vec<_> = frames
            .iter()
            .filter_map(|f| match f {
                Frame::Stream { id, offset, data, .. } => Some((*id, *offset, data.len())),
                _ => None,
            })
            .collect();
        assert_eq!(streams.len(), STREAM_FRAMES);
        assert_eq!(streams[3], (4, 3 * STREAM_DATA_LEN as u64, STREAM_DATA_LEN));
        assert!(matches!(frames.last(), Some(Frame::Padding { .. })));
    }

    #[test]
    fn ack_payload_has_31_ranges_and_streams() {
        let p = ack_payload().unwrap();
        let frames: Vec<_> = FrameIter::for_packet(&p, FrameContext::OneRtt).map(|f| f.unwrap()).collect();
        let Frame::Ack(ack) = frames[0] else { panic!("{:?}", frames[0]) };
        assert_eq!(ack.largest(), ACK_LARGEST);
        assert_eq!(ack.range_count(), ACK_EXTRA_RANGES as u64);
        assert!(ack.iter().eq(ack_ranges()));
        let streams = frames.iter().filter(|f| matches!(f, Frame::Stream { .. })).count();
        assert!(streams >= 8, "{streams}");
    }

    #[test]
    fn packets_round_trip_through_protection() {
        let payload = stream_payload().unwrap();
        let plain = short_header_packet(&payload).unwrap();
        for (suite, _) in SUITES {
            let keys = one_rtt_keys(suite).unwrap();
            let mut p = plain.protected(&keys).unwrap();
            assert_ne!(p, plain.bytes);
            let out = keys.unprotect(&mut p, plain.layout.pn_offset, |t, l| number::decode(t, l as u32 * 8, Some(PACKET_NUMBER - 1))).unwrap();
            assert_eq!(out.packet_number, PACKET_NUMBER);
            assert_eq!(&p[out.header_len..out.header_len + out.payload_len], &payload[..]);
        }
        let dcid = [7u8; 8];
        let initial = initial_packet(&dcid).unwrap();
        let keys = client_initial_keys(&dcid).unwrap();
        let p = initial.protected(&keys).unwrap();
        let pkts: Vec<_> = CoalescedPackets::new(&p, 8).map(|r| r.unwrap()).collect();
        assert_eq!(pkts.len(), 1);
        assert_eq!(pkts[0].1.ty, PacketType::Long(LongType::Initial));
        assert_eq!(pkts[0].1.len, PACKET_LEN);
    }
}

/// A global allocator that counts allocations (and reallocations, not frees)
/// of the whole process and forwards every call to the system allocator:
/// benches that report allocations per operation install it with
/// `#[global_allocator] static GLOBAL: CountingAlloc = CountingAlloc;`.
#[derive(Debug)]
pub struct CountingAlloc;

static ALLOCATIONS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

impl CountingAlloc {
    /// Allocations so far.
    pub fn count() -> u64 {
        ALLOCATIONS.load(core::sync::atomic::Ordering::Relaxed)
    }
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counter only records that it happened.
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}
