//! Packet header parsing over arbitrary datagrams: coalesced iteration never
//! panics, packets are contiguous and inside the datagram, and a parsed long
//! header re-encoded with our encoder parses back to the same fields.
use quic_core::codec::Writer;
use quic_core::packet::header::{peek_dcid, CoalescedPackets, LongHeader, LongType, PacketType};
use quic_core::packet::ProtectedHeader;

/// One fuzz input: what libFuzzer calls, and what the corpus replay test
/// (`tests/replay.rs`) calls without it.
pub fn run(data: &[u8]) {
    let Some((b, datagram)) = data.split_first() else { return };
    let short_len = (*b as usize) % 21;
    let _ = peek_dcid(datagram, short_len);
    let mut end = 0usize;
    for item in CoalescedPackets::new(datagram, short_len) {
        let Ok((start, h)) = item else { break };
        assert_eq!(start, end, "packets are contiguous");
        assert!(h.len > 0 && start + h.len <= datagram.len());
        assert!(h.pn_offset <= h.len && h.token.end <= h.len);
        end = start + h.len;
        let (PacketType::Long(ty @ (LongType::Initial | LongType::Handshake | LongType::ZeroRtt)), Some(version)) = (h.ty, h.version) else {
            continue;
        };
        let pkt = &datagram[start..end];
        let token = &pkt[h.token.clone()];
        let payload_len = h.len - h.pn_offset - 1;
        let hdr = LongHeader { ty, version, dcid: &h.dcid, scid: &h.scid, token };
        let mut buf = vec![0u8; pkt.len() + 16];
        let mut w = Writer::new(&mut buf);
        let layout = hdr.encode(&mut w, 0, 1, 8).expect("header fits");
        w.fill(0xab, payload_len).expect("payload fits");
        let n = w.len();
        layout.set_payload_len(&mut buf, payload_len).expect("length fits");
        let p = ProtectedHeader::parse(&buf[..n], short_len).expect("our encoding parses");
        assert_eq!((p.ty, p.version, p.dcid, p.scid), (h.ty, h.version, h.dcid, h.scid));
        assert_eq!(&buf[p.token.clone()], token);
        assert_eq!(p.len, n);
    }
}
