#![allow(clippy::unwrap_used)]

use super::*;
use quic_core::codec::Writer;
use quic_core::crypto::{retry_integrity_tag, Keys};
use quic_core::packet::header::{encode_retry_without_tag, encode_version_negotiation};
use quic_core::packet::{LongHeader, ShortHeader};

const ODCID: [u8; 8] = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];
const SERVER_CID: [u8; 4] = [0xaa, 0xbb, 0xcc, 0xdd];

/// An Initial packet of `len` bytes carrying CRYPTO(0, 100 bytes) + PADDING,
/// protected with `keys` (the sender's).
fn initial(keys: &DirectionalKeys, dcid: &[u8], scid: &[u8], pn: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    let mut w = Writer::new(&mut buf);
    let h = LongHeader { ty: LongType::Initial, version: Version::V1, dcid, scid, token: &[] };
    let layout = h.encode(&mut w, pn, 2, 2).unwrap();
    w.varint(0x06).unwrap();
    w.varint(0).unwrap();
    w.varint_prefixed(&[0x16; 100]).unwrap();
    let payload_len = len - layout.header_len();
    layout.set_payload_len(&mut buf, payload_len).unwrap();
    keys.protect(pn, &mut buf, layout.pn_offset, layout.pn_len).unwrap();
    buf
}

/// A Handshake packet with junk ciphertext: only its header is readable.
fn handshake(dcid: &[u8], len: usize) -> Vec<u8> {
    let mut buf = vec![0x5au8; len];
    let mut w = Writer::new(&mut buf);
    let h = LongHeader { ty: LongType::Handshake, version: Version::V1, dcid, scid: &SERVER_CID, token: &[] };
    let layout = h.encode(&mut w, 0, 1, 2).unwrap();
    layout.set_payload_len(&mut buf, len - layout.header_len()).unwrap();
    buf
}

fn short(dcid: &[u8], len: usize) -> Vec<u8> {
    let mut buf = vec![0x77u8; len];
    let mut w = Writer::new(&mut buf);
    ShortHeader { dcid, spin: true, key_phase: false }.encode(&mut w, 3, 1).unwrap();
    buf
}

fn client_keys() -> DirectionalKeys {
    Keys::initial(Version::V1, &ODCID, false).unwrap().local
}

fn server_keys() -> DirectionalKeys {
    Keys::initial(Version::V1, &ODCID, true).unwrap().local
}

fn opts(odcid: Option<&[u8]>) -> Options {
    Options { short_dcid_len: 4, odcid: odcid.map(<[u8]>::to_vec) }
}

fn run(datagram: &[u8], opts: &Options, hint: Option<KeySource<'_>>) -> (String, Stats) {
    let mut out = Vec::new();
    let mut stats = Stats::default();
    inspect_datagram(&mut out, datagram, opts, hint, &mut stats).unwrap();
    (String::from_utf8(out).unwrap(), stats)
}

/// A client's Initial + Handshake + 1-RTT in one datagram, all to the
/// server's CID (RFC 9000 §12.2), the Initial still keyed by the original
/// DCID (RFC 9001 §5.2).
fn coalesced_client_datagram() -> Vec<u8> {
    let mut d = initial(&client_keys(), &SERVER_CID, &[], 0, 400);
    d.extend(handshake(&SERVER_CID, 100));
    d.extend(short(&SERVER_CID, 60));
    d
}

#[test]
fn client_initial_decrypts_from_its_own_dcid() {
    let mut d = initial(&client_keys(), &ODCID, &[1, 2], 7, 1200);
    d.extend([0u8; 30]);
    let (out, stats) = run(&d, &opts(None), None);
    assert!(out.contains("packet 0 @0: Initial len=1200 version=0x00000001 (v1) dcid=8394c8f03e515708 scid=0102 token_len=0 length="), "{out}");
    assert!(out.contains("decrypted with client Initial keys from DCID 8394c8f03e515708 (packet's own DCID): pn=7 pn_len=2"), "{out}");
    assert!(out.contains("    CRYPTO off=0 len=100\n"), "{out}");
    assert!(out.contains("    PADDING x"), "{out}");
    assert!(out.contains("trailing padding: 30 zero bytes"), "{out}");
    assert_eq!(stats, Stats { datagrams: 1, packets: 1, decrypted: 1, frames: 2, errors: 0, initial_failures: 0 });
}

#[test]
fn coalesced_packets_are_all_listed() {
    let d = coalesced_client_datagram();
    let (out, stats) = run(&d, &Options { short_dcid_len: 20, odcid: Some(ODCID.to_vec()) }, None);
    assert!(out.contains("decrypted with client Initial keys from DCID 8394c8f03e515708 (--odcid)"), "{out}");
    assert!(out.contains("packet 1 @400: Handshake len=100"), "{out}");
    // Its DCID length comes from the coalesced long headers (RFC 9000 §12.2).
    assert!(out.contains("packet 2 @500: 1-RTT len=60 dcid=aabbccdd spin=1"), "{out}");
    assert_eq!(out.matches("(no keys)").count(), 2, "{out}");
    assert_eq!((stats.packets, stats.decrypted, stats.errors), (3, 1, 0));
}

#[test]
fn server_initial_needs_the_original_dcid() {
    let d = initial(&server_keys(), &[9, 9, 9, 9], &SERVER_CID, 0, 200);
    let (out, stats) = run(&d, &opts(None), None);
    assert!(out.contains("error: no Initial key opened this packet; for a server's Initial pass --odcid"), "{out}");
    assert_eq!((stats.errors, stats.initial_failures, stats.decrypted), (1, 1, 0));

    let (out, stats) = run(&d, &opts(Some(&ODCID)), None);
    assert!(out.contains("decrypted with server Initial keys from DCID 8394c8f03e515708 (--odcid)"), "{out}");
    assert_eq!((stats.errors, stats.decrypted), (0, 1));

    let hint = KeySource { dcid: &ODCID, origin: "key_derivation_dcid" };
    let (out, stats) = run(&d, &opts(None), Some(hint));
    assert!(out.contains("server Initial keys from DCID 8394c8f03e515708 (key_derivation_dcid)"), "{out}");
    assert_eq!(stats.errors, 0);
}

#[test]
fn retry_tag_is_checked_with_the_odcid() {
    let mut buf = [0u8; 200];
    let mut w = Writer::new(&mut buf);
    encode_retry_without_tag(&mut w, Version::V1, &[5; 8], &SERVER_CID, b"retry-token", 0).unwrap();
    let n = w.len();
    let tag = retry_integrity_tag(Version::V1, &ODCID, &buf[..n]).unwrap();
    let mut pkt = buf[..n].to_vec();
    pkt.extend_from_slice(&tag);

    let (out, stats) = run(&pkt, &opts(Some(&ODCID)), None);
    assert!(out.contains("Retry len="), "{out}");
    assert!(out.contains("retry_token_len=11"), "{out}");
    assert!(out.contains("integrity tag: valid for original DCID 8394c8f03e515708"), "{out}");
    assert_eq!(stats.errors, 0);

    let (out, stats) = run(&pkt, &opts(Some(&[1, 2, 3])), None);
    assert!(out.contains("integrity tag INVALID"), "{out}");
    assert_eq!(stats.errors, 1);

    let (out, _) = run(&pkt, &opts(None), None);
    assert!(out.contains("not checked (pass --odcid)"), "{out}");
}

#[test]
fn version_negotiation_lists_versions() {
    let mut buf = [0u8; 100];
    let mut w = Writer::new(&mut buf);
    encode_version_negotiation(&mut w, &ODCID, &[1], &[Version::V2, Version::V1, Version(0x0a1a2a3a)], 0x13).unwrap();
    let n = w.len();
    let (out, stats) = run(&buf[..n], &opts(None), None);
    assert!(out.contains("VersionNegotiation"), "{out}");
    assert!(out.contains("versions: 0x6b3343cf (v2), 0x00000001 (v1), 0x0a1a2a3a (reserved, RFC 9000 §15)"), "{out}");
    assert_eq!(stats.errors, 0);
}

#[test]
fn unsupported_version_and_bad_headers() {
    let mut pkt = vec![0xc0, 0xff, 0x00, 0x00, 0x1d, 2, 7, 7, 1, 9];
    pkt.extend([0u8; 50]);
    let (out, stats) = run(&pkt, &opts(None), None);
    assert!(out.contains("unsupported version 0xff00001d dcid=0707 scid=09"), "{out}");
    assert_eq!(stats.errors, 0);

    // Long header cut inside the DCID.
    let (out, stats) = run(&[0xc0, 0, 0, 0, 1, 8, 1, 2], &opts(None), None);
    assert!(out.contains("packet 0 @0: error: truncated header"), "{out}");
    assert_eq!(stats.errors, 1);

    // A good Initial followed by a truncated Handshake.
    let mut d = initial(&client_keys(), &ODCID, &[], 0, 300);
    d.extend(&handshake(&SERVER_CID, 100)[..40]);
    let (out, stats) = run(&d, &opts(None), None);
    assert!(out.contains("packet 1 @300: error: truncated header"), "{out}");
    assert_eq!((stats.decrypted, stats.errors), (1, 1));
}

/// Every truncation and every single-byte corruption of a coalesced
/// datagram is dissected without a panic, and a corrupted Initial is
/// reported rather than printed as decrypted.
#[test]
fn never_panics_on_damaged_datagrams() {
    let d = coalesced_client_datagram();
    for len in 0..=d.len() {
        let _ = run(&d[..len], &opts(Some(&ODCID)), None);
    }
    for i in 0..d.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut m = d.clone();
            m[i] ^= flip;
            let (out, stats) = run(&m, &opts(Some(&ODCID)), None);
            if i < 400 {
                // Every byte of the Initial is in the AEAD's associated data
                // or ciphertext (RFC 9001 §5.3): the tag must refuse it.
                assert_eq!(stats.decrypted, 0, "byte {i} flip {flip:#x}: {out}");
            }
        }
    }
    // Pseudo-random datagrams.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for len in [1usize, 2, 5, 7, 20, 21, 40, 100, 1200] {
        for _ in 0..50 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = run(&bytes, &opts(None), None);
        }
    }
}

#[test]
fn hex_parsing() {
    assert_eq!(parse_hex(" 0xC0ff\n").unwrap(), vec![0xc0, 0xff]);
    assert_eq!(parse_hex("c0:ff 00").unwrap(), vec![0xc0, 0xff, 0]);
    assert!(parse_hex("abc").is_err());
    assert!(parse_hex("zz").is_err());
    assert_eq!(parse_hex("").unwrap(), Vec::<u8>::new());
}
