//! Packet protection against RFC 9001 Appendix A and RFC 9369 Appendix A,
//! from `shared/data/quic-packet-protection-test-vectors.json`.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use quic_core::crypto::{
    hkdf_expand_label, initial_secret, initial_secrets, next_secret, retry_integrity_tag, verify_retry_integrity, CipherSuite, CryptoError, DirectionalKeys,
    HashAlg, HeaderProtectionKey, KeyMaterial, Keys, PacketKey, TrafficSecret, INITIAL_SUITE, SAMPLE_LEN, TAG_LEN,
};
use quic_core::Version;
use serde_json::Value;

fn data_dir() -> PathBuf {
    match std::env::var_os("QUICPRO_SHARED_DATA") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"),
    }
}

/// One entry of `vectors`, with typed accessors.
struct Vector(Value);

impl Vector {
    fn hex(&self, path: &str) -> Vec<u8> {
        hex::decode(self.str(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn str(&self, path: &str) -> &str {
        self.get(path).as_str().unwrap_or_else(|| panic!("{path} is not a string"))
    }

    fn u64(&self, path: &str) -> u64 {
        self.get(path).as_u64().unwrap_or_else(|| panic!("{path} is not an integer"))
    }

    fn get(&self, path: &str) -> &Value {
        path.split('.').fold(&self.0, |v, k| v.get(k).unwrap_or_else(|| panic!("missing {path}")))
    }

    fn version(&self) -> Version {
        let v = self.str("quic_version").trim_start_matches("0x");
        Version(u32::from_str_radix(v, 16).unwrap())
    }
}

fn vectors() -> Vec<Vector> {
    let path = data_dir().join("quic-packet-protection-test-vectors.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json: Value = serde_json::from_str(&text).unwrap();
    let list = json["vectors"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2, "expected the v1 and v2 vectors");
    let vectors: Vec<Vector> = list.into_iter().map(Vector).collect();
    assert!(vectors.iter().all(|v| v.get("verified").as_bool() == Some(true)));
    assert_eq!(vectors[0].version(), Version::V1);
    assert_eq!(vectors[1].version(), Version::V2);
    vectors
}

/// RFC 9000 §17.2: the Packet Number Length bits give the length - 1; the
/// packet number is the last thing in the unprotected header.
fn pn_offset_and_len(unprotected_header: &[u8]) -> (usize, usize) {
    let pn_len = usize::from(unprotected_header[0] & 0x03) + 1;
    (unprotected_header.len() - pn_len, pn_len)
}

fn initial_payload(v: &Vector, side: &str) -> Vec<u8> {
    if side == "client_initial" {
        // The CRYPTO frame padded with PADDING frames (0x00) to 1162 bytes.
        let mut payload = v.hex("client_initial.crypto_frame");
        assert!(v.str("client_initial.payload_note").contains("1162"));
        payload.resize(1162, 0);
        payload
    } else {
        v.hex("server_initial.payload")
    }
}

#[test]
fn initial_secrets_and_keys() {
    for v in vectors() {
        let version = v.version();
        let dcid = v.hex("client_dcid");
        assert_eq!(quic_core::crypto::initial_salt(version).unwrap().as_slice(), v.hex("initial_salt").as_slice());
        assert_eq!(initial_secret(version, &dcid).unwrap().as_bytes(), v.hex("initial_secret").as_slice(), "{version}");
        let secrets = initial_secrets(version, &dcid).unwrap();
        for (side, secret) in [("client_initial", &secrets.client), ("server_initial", &secrets.server)] {
            assert_eq!(secret.as_bytes(), v.hex(&format!("{side}.secret")).as_slice(), "{version} {side}");
            let material = KeyMaterial::derive(INITIAL_SUITE, version, secret.as_bytes()).unwrap();
            assert_eq!(material.key(), v.hex(&format!("{side}.key")).as_slice(), "{version} {side} key");
            assert_eq!(material.iv().as_slice(), v.hex(&format!("{side}.iv")).as_slice(), "{version} {side} iv");
            assert_eq!(material.hp(), v.hex(&format!("{side}.hp")).as_slice(), "{version} {side} hp");
        }
        // The labels used are the version's (RFC 9369 §3.3.2): recompute
        // the client key by hand from the label string.
        let prefix = v.str("hkdf_label_prefix");
        let mut key = [0u8; 16];
        hkdf_expand_label(secrets.client.as_bytes(), HashAlg::Sha256, format!("{prefix} key").as_bytes(), b"", &mut key).unwrap();
        assert_eq!(key.as_slice(), v.hex("client_initial.key").as_slice());
    }
}

/// Protects the unprotected Initial and compares byte for byte with the RFC
/// packet, then removes protection and gets the plaintext back.
#[test]
fn initial_packets_protect_and_unprotect() {
    for v in vectors() {
        let version = v.version();
        let dcid = v.hex("client_dcid");
        let client = Keys::initial(version, &dcid, false).unwrap();
        let server = Keys::initial(version, &dcid, true).unwrap();

        for (side, sender, receiver, other_direction) in
            [("client_initial", &client.local, &server.remote, &server.local), ("server_initial", &server.local, &client.remote, &client.local)]
        {
            let header = v.hex(&format!("{side}.unprotected_header"));
            let payload = initial_payload(&v, side);
            let expected = v.hex(&format!("{side}.protected_packet"));
            let pn = v.u64(&format!("{side}.packet_number"));
            let (pn_offset, pn_len) = pn_offset_and_len(&header);
            assert_eq!(pn_len as u64, v.u64(&format!("{side}.packet_number_length")));

            // Step by step: AEAD, then header protection.
            let mut packet = [header.as_slice(), payload.as_slice(), &[0u8; TAG_LEN]].concat();
            assert_eq!(packet.len(), expected.len(), "{version} {side}");
            {
                let (h, rest) = packet.split_at_mut(header.len());
                sender.packet.seal_in_place(pn, h, rest).unwrap();
            }
            let sample = &packet[pn_offset + 4..pn_offset + 4 + SAMPLE_LEN];
            assert_eq!(sample, v.hex(&format!("{side}.sample")).as_slice(), "{version} {side} sample");
            assert_eq!(sender.header.mask(sample).unwrap().as_slice(), v.hex(&format!("{side}.mask")).as_slice(), "{version} {side} mask");
            sender.header.apply(&mut packet, pn_offset, pn_len).unwrap();
            assert_eq!(&packet[..header.len()], v.hex(&format!("{side}.protected_header")).as_slice());
            assert_eq!(hex::encode(&packet), hex::encode(&expected), "{version} {side}");

            // The whole-packet helper gives the same bytes.
            let mut packet2 = [header.as_slice(), payload.as_slice(), &[0u8; TAG_LEN]].concat();
            sender.protect(pn, &mut packet2, pn_offset, pn_len).unwrap();
            assert_eq!(packet2, expected);

            // Receiver: remove header protection, then open.
            let mut received = expected.clone();
            let got_pn_len = receiver.header.remove(&mut received, pn_offset).unwrap();
            assert_eq!(got_pn_len, pn_len);
            assert_eq!(&received[..header.len()], header.as_slice());
            let (h, rest) = received.split_at_mut(header.len());
            let n = receiver.packet.open_in_place(pn, h, rest).unwrap();
            assert_eq!(n, payload.len());
            assert_eq!(&rest[..n], payload.as_slice());

            // And the whole-packet helper.
            let mut received = expected.clone();
            let out = receiver
                .unprotect(&mut received, pn_offset, |truncated, len| {
                    assert_eq!(len, pn_len);
                    truncated // the vectors' packet numbers are small
                })
                .unwrap();
            assert_eq!(out.packet_number, pn);
            assert_eq!(out.header_len, header.len());
            assert_eq!(&received[out.header_len..out.header_len + out.payload_len], payload.as_slice());

            // The keys of the other direction must not open it (client and
            // server Initial secrets differ, RFC 9001 §5.2).
            let mut wrong = expected.clone();
            let r = other_direction.unprotect(&mut wrong, pn_offset, |t, _| t);
            assert!(r.is_err(), "{version} {side}");
            // Nor the other version's keys for the same DCID (RFC 9369 §3.3.1).
            let other_version = if version == Version::V1 { Version::V2 } else { Version::V1 };
            let other = Keys::initial(other_version, &dcid, side == "client_initial").unwrap();
            let mut wrong = expected.clone();
            assert!(other.remote.unprotect(&mut wrong, pn_offset, |t, _| t).is_err());
        }
    }
}

#[test]
fn retry_integrity_tags() {
    for v in vectors() {
        let version = v.version();
        let odcid = v.hex("retry.original_dcid");
        let packet = v.hex("retry.packet");
        let tag = v.hex("retry.integrity_tag");
        let (without_tag, packet_tag) = packet.split_at(packet.len() - 16);
        assert_eq!(packet_tag, tag.as_slice());
        assert_eq!(retry_integrity_tag(version, &odcid, without_tag).unwrap().as_slice(), tag.as_slice(), "{version}");
        assert!(verify_retry_integrity(version, &odcid, &packet));

        // Wrong version, wrong ODCID, any flipped bit: invalid.
        let other = if version == Version::V1 { Version::V2 } else { Version::V1 };
        assert!(!verify_retry_integrity(other, &odcid, &packet));
        let mut bad_odcid = odcid.clone();
        bad_odcid[0] ^= 1;
        assert!(!verify_retry_integrity(version, &bad_odcid, &packet));
        assert!(!verify_retry_integrity(version, &odcid[..odcid.len() - 1], &packet));
        for bit in 0..packet.len() * 8 {
            let mut p = packet.clone();
            p[bit / 8] ^= 1 << (bit % 8);
            assert!(!verify_retry_integrity(version, &odcid, &p), "{version} bit {bit}");
        }
        // Truncations never verify and never panic.
        for len in 0..packet.len() {
            assert!(!verify_retry_integrity(version, &odcid, &packet[..len]));
        }
    }
}

#[test]
fn chacha20_short_header_packet() {
    for v in vectors() {
        let version = v.version();
        let suite = CipherSuite::ChaCha20Poly1305;
        let secret = v.hex("chacha20_short_header.secret");
        let material = KeyMaterial::derive(suite, version, &secret).unwrap();
        assert_eq!(material.key(), v.hex("chacha20_short_header.key").as_slice(), "{version}");
        assert_eq!(material.iv().as_slice(), v.hex("chacha20_short_header.iv").as_slice());
        assert_eq!(material.hp(), v.hex("chacha20_short_header.hp").as_slice());

        let mut ku = [0u8; 32];
        next_secret(suite, version, &secret, &mut ku).unwrap();
        assert_eq!(ku.as_slice(), v.hex("chacha20_short_header.ku").as_slice(), "{version} ku");

        let keys = DirectionalKeys::from_secret(suite, version, &secret).unwrap();
        let pn = v.u64("chacha20_short_header.packet_number");
        assert_eq!(keys.packet.nonce(pn).as_slice(), v.hex("chacha20_short_header.nonce").as_slice());

        let header = v.hex("chacha20_short_header.unprotected_header");
        let plaintext = v.hex("chacha20_short_header.payload_plaintext");
        let expected = v.hex("chacha20_short_header.protected_packet");
        let (pn_offset, pn_len) = pn_offset_and_len(&header);
        // Short header with an empty DCID: pn_offset = 1 (RFC 9001 §5.4.2).
        assert_eq!(pn_offset, 1 + v.hex("chacha20_short_header.dcid").len());
        assert_eq!(pn_len as u64, v.u64("chacha20_short_header.packet_number_length"));

        let mut packet = [header.as_slice(), plaintext.as_slice(), &[0u8; TAG_LEN]].concat();
        {
            let (h, rest) = packet.split_at_mut(header.len());
            keys.packet.seal_in_place(pn, h, rest).unwrap();
            assert_eq!(hex::encode(&rest), v.str("chacha20_short_header.payload_ciphertext"));
        }
        let sample = &packet[pn_offset + 4..pn_offset + 4 + SAMPLE_LEN];
        assert_eq!(sample, v.hex("chacha20_short_header.sample").as_slice());
        assert_eq!(keys.header.mask(sample).unwrap().as_slice(), v.hex("chacha20_short_header.mask").as_slice());
        keys.header.apply(&mut packet, pn_offset, pn_len).unwrap();
        assert_eq!(hex::encode(&packet), hex::encode(&expected), "{version}");

        let mut packet2 = [header.as_slice(), plaintext.as_slice(), &[0u8; TAG_LEN]].concat();
        keys.protect(pn, &mut packet2, pn_offset, pn_len).unwrap();
        assert_eq!(packet2, expected);

        // Unprotect. The packet carries only the low 3 bytes of the packet
        // number; the decoder gets them and returns the full value.
        let mut received = expected.clone();
        let out = keys
            .unprotect(&mut received, pn_offset, |truncated, len| {
                assert_eq!(len, 3);
                assert_eq!(truncated, pn & 0xff_ffff);
                pn
            })
            .unwrap();
        assert_eq!(out.packet_number, pn);
        assert_eq!(&received[..out.header_len], header.as_slice());
        assert_eq!(&received[out.header_len..out.header_len + out.payload_len], plaintext.as_slice());
    }
}

/// RFC 9001 §6: the next generation uses the "ku" secret; the header
/// protection key is unchanged.
#[test]
fn key_update_generations() {
    for v in vectors() {
        let version = v.version();
        let suite = CipherSuite::ChaCha20Poly1305;
        let secret = v.hex("chacha20_short_header.secret");
        let ku = v.hex("chacha20_short_header.ku");

        let mut ts = TrafficSecret::new(suite, version, &secret).unwrap();
        assert_eq!(ts.generation(), 0);
        let gen0 = ts.packet_key().unwrap();
        let hp = ts.header_key().unwrap();
        let peeked = ts.next().unwrap();
        assert_eq!(peeked.secret(), ku.as_slice());
        assert_eq!(ts.secret(), secret.as_slice(), "next() leaves self unchanged");

        let gen1 = ts.next_packet_key().unwrap();
        assert_eq!(ts.generation(), 1);
        assert_eq!(ts.secret(), ku.as_slice());
        let from_ku = PacketKey::from_secret(suite, version, &ku).unwrap();
        assert_eq!(gen1.nonce(0), from_ku.nonce(0));
        assert_ne!(gen1.nonce(0), gen0.nonce(0));

        // Seal with generation 1, open with an independently derived key;
        // generation 0 fails.
        let header = [0x40u8, 0x01];
        let mut buf = [b"hello key update".as_slice(), &[0u8; 16]].concat();
        gen1.seal_in_place(1, &header, &mut buf).unwrap();
        let mut copy = buf.clone();
        assert_eq!(from_ku.open_in_place(1, &header, &mut copy), Ok(16));
        assert_eq!(&copy[..16], b"hello key update");
        let mut copy = buf.clone();
        assert_eq!(gen0.open_in_place(1, &header, &mut copy), Err(CryptoError::DecryptFailed));

        // Header protection is the generation-0 key throughout: same mask.
        let fresh_hp = HeaderProtectionKey::from_secret(suite, version, &secret).unwrap();
        let sample = [7u8; SAMPLE_LEN];
        assert_eq!(hp.mask(&sample), fresh_hp.mask(&sample));
        // ... and the generation-1 secret would give a different one.
        assert_ne!(ts.header_key().unwrap().mask(&sample), hp.mask(&sample));

        // Second update chains from the first.
        let mut ku2 = [0u8; 32];
        next_secret(suite, version, &ku, &mut ku2).unwrap();
        ts.update().unwrap();
        assert_eq!(ts.secret(), ku2.as_slice());
        assert_eq!(ts.generation(), 2);

        // Wrong lengths are errors, not panics.
        assert_eq!(next_secret(suite, version, &secret, &mut [0u8; 31]), Err(CryptoError::BadKeyLength));
        assert_eq!(TrafficSecret::new(CipherSuite::Aes256Gcm, version, &secret).err(), Some(CryptoError::BadKeyLength));
    }
}

/// Every suite: derive from a secret of its hash length, round-trip, and
/// the SHA-384 suite needs a 48-byte secret.
#[test]
fn all_suites_round_trip() {
    for version in [Version::V1, Version::V2] {
        for suite in [CipherSuite::Aes128Gcm, CipherSuite::Aes256Gcm, CipherSuite::ChaCha20Poly1305] {
            assert_eq!(CipherSuite::from_tls_id(suite.tls_id()), Some(suite));
            let secret = vec![0x5a; suite.secret_len()];
            let keys = DirectionalKeys::from_secret(suite, version, &secret).unwrap();
            assert_eq!(keys.suite(), suite);
            assert_eq!(keys.packet.tag_len(), 16);
            let header = [0x43u8, 0xaa, 0xbb, 0x00, 0x00, 0x00, 0x2a];
            let payload = [0x01u8; 40];
            let mut packet = [header.as_slice(), &payload, &[0u8; 16]].concat();
            keys.protect(42, &mut packet, 3, 4).unwrap();
            assert_ne!(&packet[3..7], &header[3..7]);
            let out = keys.unprotect(&mut packet, 3, |t, _| t).unwrap();
            assert_eq!(out.packet_number, 42);
            assert_eq!(&packet[..7], header.as_slice());
            assert_eq!(&packet[7..7 + out.payload_len], payload.as_slice());
        }
    }
    assert_eq!(DirectionalKeys::from_secret(CipherSuite::Aes256Gcm, Version::V1, &[0u8; 32]).err().map(|_| ()), Some(()));
    assert_eq!(CipherSuite::Aes128Gcm.confidentiality_limit(), Some(1 << 23));
    assert_eq!(CipherSuite::Aes256Gcm.integrity_limit(), 1 << 52);
    assert_eq!(CipherSuite::ChaCha20Poly1305.confidentiality_limit(), None);
    assert_eq!(CipherSuite::ChaCha20Poly1305.integrity_limit(), 1 << 36);
    assert_eq!(Keys::initial(Version(0x0a0a_0a0a), &[1; 8], false).err().map(|e| e.to_string()), Some(CryptoError::UnsupportedVersion.to_string()));
}

/// Flipping any single bit of a protected packet makes unprotection fail:
/// either the header changes (associated data or nonce) or the ciphertext
/// or tag does (RFC 9001 §5.3).
#[test]
fn any_flipped_bit_fails_to_open() {
    for v in vectors() {
        let version = v.version();
        let keys = Keys::initial(version, &v.hex("client_dcid"), true).unwrap();
        for side in ["client_initial", "server_initial"] {
            // The server receives the client Initial with keys.remote; use
            // the client's keys for the server packet.
            let client_keys = Keys::initial(version, &v.hex("client_dcid"), false).unwrap();
            let receiver = if side == "client_initial" { &keys.remote } else { &client_keys.remote };
            let header = v.hex(&format!("{side}.unprotected_header"));
            let (pn_offset, _) = pn_offset_and_len(&header);
            let pn = v.u64(&format!("{side}.packet_number"));
            let packet = v.hex(&format!("{side}.protected_packet"));

            let mut ok = packet.clone();
            assert!(receiver.unprotect(&mut ok, pn_offset, |_, _| pn).is_ok());

            for bit in 0..packet.len() * 8 {
                let mut p = packet.clone();
                p[bit / 8] ^= 1 << (bit % 8);
                let r = receiver.unprotect(&mut p, pn_offset, |_, _| pn);
                assert!(r.is_err(), "{version} {side}: flipping bit {bit} went unnoticed");

                // Directly: open_in_place on the correctly unmasked header.
                if bit / 8 >= header.len() {
                    let mut p = packet.clone();
                    p[bit / 8] ^= 1 << (bit % 8);
                    let (h, rest) = p.split_at_mut(header.len());
                    h.copy_from_slice(&header);
                    assert_eq!(receiver.packet.open_in_place(pn, h, rest), Err(CryptoError::DecryptFailed), "{version} {side} bit {bit}");
                }
            }
        }
    }
}

/// RFC 9001 §5.4.2: packets too short for a complete sample are discarded,
/// with an error and no panic, and nothing is modified.
#[test]
fn short_packets_are_errors_not_panics() {
    let v = &vectors()[0];
    let keys = Keys::initial(Version::V1, &v.hex("client_dcid"), true).unwrap();
    let header = v.hex("client_initial.unprotected_header");
    let (pn_offset, pn_len) = pn_offset_and_len(&header);
    let packet = v.hex("client_initial.protected_packet");
    let needed = pn_offset + 4 + SAMPLE_LEN;

    for len in 0..needed {
        let mut p = packet[..len].to_vec();
        assert_eq!(keys.remote.header.remove(&mut p, pn_offset), Err(CryptoError::PacketTooShort), "len {len}");
        assert_eq!(p, &packet[..len], "remove must not modify a rejected packet");
        assert_eq!(keys.remote.unprotect(&mut p, pn_offset, |t, _| t).err(), Some(CryptoError::PacketTooShort));
        let mut u = [header.as_slice(), &[0u8; 64]].concat();
        u.truncate(len);
        let before = u.clone();
        assert_eq!(keys.local.header.apply(&mut u, pn_offset, pn_len), Err(CryptoError::PacketTooShort), "len {len}");
        assert_eq!(u, before);
        assert_eq!(keys.local.protect(0, &mut u, pn_offset, pn_len), Err(CryptoError::PacketTooShort));
        assert_eq!(u, before);
    }
    // The exact minimum works.
    let mut p = packet[..needed].to_vec();
    assert_eq!(keys.remote.header.remove(&mut p, pn_offset), Ok(pn_len));

    // Extreme offsets must not overflow.
    let mut p = packet.clone();
    assert_eq!(keys.remote.header.remove(&mut p, usize::MAX), Err(CryptoError::PacketTooShort));
    assert_eq!(keys.remote.header.remove(&mut p, usize::MAX - 4), Err(CryptoError::PacketTooShort));
    assert_eq!(keys.remote.header.remove(&mut p, 0), Err(CryptoError::BadPacketNumberLength));

    // AEAD: fewer than 16 bytes after the header cannot hold the tag.
    for len in 0..TAG_LEN {
        let mut buf = vec![0u8; len];
        assert_eq!(keys.remote.packet.open_in_place(0, &header, &mut buf), Err(CryptoError::PacketTooShort));
        assert_eq!(keys.local.packet.seal_in_place(0, &header, &mut buf), Err(CryptoError::BufferTooShort));
    }
    // Exactly a tag: empty plaintext round-trips.
    let mut buf = [0u8; TAG_LEN];
    keys.local.packet.seal_in_place(9, &header, &mut buf).unwrap();
    assert_eq!(keys.remote.packet.open_in_place(9, &header, &mut buf), Err(CryptoError::DecryptFailed));
    let client = Keys::initial(Version::V1, &v.hex("client_dcid"), false).unwrap();
    assert_eq!(client.remote.packet.open_in_place(9, &header, &mut buf), Ok(0));

    // Bad parameters to apply are errors.
    let mut p = [header.as_slice(), &[0u8; 40]].concat();
    assert_eq!(keys.local.header.apply(&mut p, pn_offset, 0), Err(CryptoError::BadPacketNumberLength));
    assert_eq!(keys.local.header.apply(&mut p, pn_offset, 5), Err(CryptoError::BadPacketNumberLength));
    assert_eq!(keys.local.header.apply(&mut p, pn_offset, 2), Err(CryptoError::BadPacketNumberLength));
    assert_eq!(keys.local.header.mask(&[0u8; 15]), Err(CryptoError::PacketTooShort));
}

mod never_panics {
    //! The property the `header_protection` fuzz target checks, run here on
    //! random inputs so it is covered by `cargo test` too.
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn unprotect_arbitrary_bytes(
            dcid in proptest::collection::vec(any::<u8>(), 0..=20),
            packet in proptest::collection::vec(any::<u8>(), 0..200),
            offset in any::<usize>(),
            v2 in any::<bool>(),
        ) {
            let version = if v2 { Version::V2 } else { Version::V1 };
            let keys = Keys::initial(version, &dcid, true).unwrap();
            for pn_offset in [offset, offset % (packet.len() + 8)] {
                let mut buf = packet.clone();
                match keys.remote.header.remove(&mut buf, pn_offset) {
                    Ok(pn_len) => {
                        prop_assert!((1..=4).contains(&pn_len));
                        prop_assert!(pn_offset + 20 <= buf.len());
                        let (h, p) = buf.split_at_mut(pn_offset + pn_len);
                        // Random bytes essentially never authenticate.
                        prop_assert_eq!(
                            keys.remote.packet.open_in_place(0, h, p),
                            Err(CryptoError::DecryptFailed)
                        );
                    }
                    Err(e) => {
                        prop_assert!(matches!(
                            e,
                            CryptoError::PacketTooShort | CryptoError::BadPacketNumberLength
                        ));
                        prop_assert_eq!(&buf, &packet);
                    }
                }
                let mut buf = packet.clone();
                prop_assert!(keys.remote.unprotect(&mut buf, pn_offset, |t, _| t).is_err());
            }
        }

        #[test]
        fn protect_then_unprotect_round_trips(
            dcid in proptest::collection::vec(any::<u8>(), 0..=20),
            first in any::<u8>(),
            middle in proptest::collection::vec(any::<u8>(), 0..30),
            payload in proptest::collection::vec(any::<u8>(), 0..100),
            pn in 0u64..(1 << 62),
        ) {
            let client = Keys::initial(Version::V1, &dcid, false).unwrap();
            let server = Keys::initial(Version::V1, &dcid, true).unwrap();
            let pn_len = usize::from(first & 0x03) + 1;
            let pn_offset = 1 + middle.len();
            let pn_bytes = &pn.to_be_bytes()[8 - pn_len..];
            let original = [&[first][..], &middle, pn_bytes, &payload, &[0u8; TAG_LEN]].concat();
            let mut buf = original.clone();
            match client.local.protect(pn, &mut buf, pn_offset, pn_len) {
                Ok(()) => {
                    let out = server.remote.unprotect(&mut buf, pn_offset, |_, _| pn).unwrap();
                    prop_assert_eq!(out.header_len, pn_offset + pn_len);
                    prop_assert_eq!(&buf[..out.header_len + out.payload_len], &original[..original.len() - TAG_LEN]);
                }
                Err(e) => {
                    // Only when the payload is too short for the sample.
                    prop_assert_eq!(e, CryptoError::PacketTooShort);
                    prop_assert!(pn_offset + 4 + SAMPLE_LEN > original.len());
                    prop_assert_eq!(&buf, &original);
                }
            }
        }
    }
}
