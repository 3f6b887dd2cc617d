//! Header protection removal and AEAD opening on arbitrary bytes must never
//! panic (RFC 9001 §5.4.2: short packets are discarded, not trusted), and a
//! packet we protected ourselves must always come back intact.
use quic_core::crypto::Keys;
use quic_core::Version;

/// One fuzz input: what libFuzzer calls, and what the corpus replay test
/// (`tests/replay.rs`) calls without it.
pub fn run(data: &[u8]) {
    // Layout: control byte, DCID length byte, DCID, 2-byte pn_offset, packet.
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let Some((&dcid_len, rest)) = rest.split_first() else {
        return;
    };
    let dcid_len = usize::from(dcid_len % 21);
    if rest.len() < dcid_len + 2 {
        return;
    }
    let (dcid, rest) = rest.split_at(dcid_len);
    let (offset_bytes, packet) = rest.split_at(2);
    let raw_offset = usize::from(u16::from_be_bytes([offset_bytes[0], offset_bytes[1]]));
    let version = if control & 1 == 0 { Version::V1 } else { Version::V2 };
    let is_server = control & 2 != 0;

    let keys = Keys::initial(version, dcid, is_server).expect("DCID <= 20 bytes is valid");
    let peer = Keys::initial(version, dcid, !is_server).expect("DCID <= 20 bytes is valid");

    // Offsets both wild (may point past the end) and near the packet's size.
    let near_offset = raw_offset % (packet.len() + 8);
    for pn_offset in [raw_offset, near_offset, usize::MAX - (raw_offset & 0x1f)] {
        // Step by step on the raw bytes.
        let mut buf = packet.to_vec();
        if let Ok(pn_len) = keys.remote.header.remove(&mut buf, pn_offset) {
            assert!((1..=4).contains(&pn_len));
            let header_len = pn_offset + pn_len;
            assert!(header_len + 16 <= buf.len(), "sample check implies room for pn and tag");
            let (header, payload) = buf.split_at_mut(header_len);
            let pn = header[pn_offset..].iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
            if let Ok(n) = keys.remote.packet.open_in_place(pn, header, payload) {
                assert!(n + 16 == payload.len());
            }
        }
        // The whole-packet helper.
        let mut buf = packet.to_vec();
        let _ = keys.remote.unprotect(&mut buf, pn_offset, |truncated, _| truncated);
    }

    // Round trip: the peer protects the input as a packet (first byte's low
    // bits give the packet number length), we must unprotect it exactly.
    if near_offset == 0 {
        return;
    }
    let Some(&first) = packet.first() else {
        return;
    };
    let pn_len = usize::from(first & 0x03) + 1;
    let pn = u64::from(control >> 2) << 8 | u64::from(dcid_len as u8);
    let truncated_mask = (1u64 << (8 * pn_len)) - 1;
    let mut original = packet.to_vec();
    let header_len = near_offset + pn_len;
    if original.len() < header_len {
        return;
    }
    // Write the truncated packet number into the header, as a sender would.
    for (i, byte) in original[near_offset..header_len].iter_mut().enumerate() {
        *byte = (pn >> (8 * (pn_len - 1 - i))) as u8;
    }
    let mut buf = original.clone();
    if peer.local.protect(pn, &mut buf, near_offset, pn_len).is_err() {
        return;
    }
    let out = keys
        .remote
        .unprotect(&mut buf, near_offset, |truncated, len| {
            assert_eq!(len, pn_len);
            assert_eq!(truncated, pn & truncated_mask);
            pn
        })
        .expect("our own protected packet must unprotect");
    assert_eq!(out.header_len, header_len);
    assert_eq!(&buf[..header_len], &original[..header_len]);
    assert_eq!(&buf[header_len..header_len + out.payload_len], &original[header_len..original.len() - 16]);
}
