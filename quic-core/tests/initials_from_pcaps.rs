//! The 37 real Initial packets captured from Chrome, Firefox, curl, quic-go
//! (v1 and v2, coalesced datagrams, tokens after Retry) go through the whole
//! receive path: coalesced-packet parsing, Initial key derivation, header
//! protection removal, AEAD open, packet number recovery, frame parsing.

use quic_core::crypto::Keys;
use quic_core::frame::{Frame, FrameContext, FrameIter};
use quic_core::packet::{number, CoalescedPackets, LongType, PacketType};
use quic_core::Version;
use quicpro_sim::data::{shared_data, unhex};
use serde_json::Value;

fn field<'a>(e: &'a Value, k: &str) -> &'a str {
    e[k].as_str().unwrap_or_else(|| panic!("entry lacks {k}"))
}

fn num(e: &Value, k: &str) -> u64 {
    e[k].as_u64().unwrap_or_else(|| panic!("entry lacks {k}"))
}

#[test]
fn every_captured_initial_unprotects_and_parses() {
    let path = shared_data().join("quic-initials-from-pcaps.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).expect("valid JSON");
    let entries = doc["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 37);

    let (mut v1, mut v2, mut coalesced, mut with_token, mut frames_total) = (0, 0, 0, 0, 0);
    let mut client_crypto_bytes = 0;
    for (i, e) in entries.iter().enumerate() {
        let ctx = format!("entry {i} ({} frame {})", field(e, "pcap"), num(e, "frame"));
        let mut datagram = unhex(field(e, "datagram_hex"));
        let version = Version(u32::from_str_radix(field(e, "version").trim_start_matches("0x"), 16).unwrap());
        let from_client = field(e, "direction").starts_with("client");
        let kd_dcid = unhex(field(e, "key_derivation_dcid"));

        let packets: Vec<_> = CoalescedPackets::new(&datagram, 0).collect();
        let (start, h) = packets[0].clone().unwrap_or_else(|err| panic!("{ctx}: {err:?}"));
        assert_eq!(start, 0, "{ctx}");
        assert_eq!(h.ty, PacketType::Long(LongType::Initial), "{ctx}");
        assert_eq!(h.version, Some(version), "{ctx}");
        assert_eq!(hex::encode(h.dcid.as_slice()), field(e, "dcid"), "{ctx}");
        assert_eq!(hex::encode(h.scid.as_slice()), field(e, "scid"), "{ctx}");
        assert_eq!(hex::encode(&datagram[h.token.clone()]), field(e, "token"), "{ctx}");
        assert_eq!(h.len as u64, num(e, "initial_packet_length"), "{ctx}");
        assert_eq!(datagram.len() as u64, num(e, "datagram_length"), "{ctx}");
        if num(e, "coalesced_trailing_bytes") > 0 && datagram[h.len..].iter().any(|&b| b != 0) {
            coalesced += 1;
            // The rest must parse as further long-header packets.
            assert!(packets.len() > 1, "{ctx}: coalesced packet not found");
        }
        if !h.token.is_empty() {
            with_token += 1;
        }
        match version {
            Version::V1 => v1 += 1,
            Version::V2 => v2 += 1,
            other => panic!("{ctx}: unexpected version {other:?}"),
        }

        // Decrypt as the receiving side: a server for client packets, a client for server packets.
        let keys = Keys::initial(version, &kd_dcid, from_client).expect("initial keys");
        let packet = &mut datagram[..h.len];
        let out = keys
            .remote
            .unprotect(packet, h.pn_offset, |t, len| number::decode(t, len as u32 * 8, None))
            .unwrap_or_else(|err| panic!("{ctx}: unprotect failed: {err:?}"));
        assert_eq!(out.packet_number, num(e, "packet_number"), "{ctx}");
        assert_eq!(out.pn_len as u64, num(e, "packet_number_length"), "{ctx}");
        assert_eq!(hex::encode(&packet[..out.header_len]), field(e, "unprotected_header_hex"), "{ctx}");
        let payload = &packet[out.header_len..out.header_len + out.payload_len];
        assert_eq!(hex::encode(payload), field(e, "plaintext_payload_hex"), "{ctx}");

        let mut n = 0;
        let mut crypto_bytes = 0;
        for f in FrameIter::for_packet(payload, FrameContext::Initial) {
            let f = f.unwrap_or_else(|err| panic!("{ctx}: frame error {err:?}"));
            if let Frame::Crypto { data, .. } = f {
                crypto_bytes += data.len();
            }
            n += 1;
        }
        assert!(n > 0, "{ctx}");
        if from_client {
            client_crypto_bytes += crypto_bytes;
        }
        frames_total += n;
    }
    assert!(client_crypto_bytes > 5_000, "client Initials carry their ClientHellos: {client_crypto_bytes}");
    assert!(v1 > 0 && v2 > 0, "both versions covered: v1 {v1}, v2 {v2}");
    assert!(coalesced > 0, "coalesced datagrams covered");
    assert!(with_token > 0, "Initials with tokens covered");
    eprintln!("initials: {v1} v1 + {v2} v2, {coalesced} coalesced, {with_token} with token, {frames_total} frames");
}
