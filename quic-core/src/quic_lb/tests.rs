//! The draft's test vectors (Appendix B and the §5.4.2 example), round
//! trips over every length, and a decoder that never panics.

use super::*;
use crate::rand::SeededRandom;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn key(s: &str) -> [u8; 16] {
    unhex(s).try_into().unwrap()
}

/// Encodes with the length self-encoded (as the vectors are) and checks
/// the decoder recovers the server ID.
fn check(cr: u8, sid: &str, nonce: &str, k: Option<&[u8; 16]>, expected: &str) {
    let (sid, nonce, expected) = (unhex(sid), unhex(nonce), unhex(expected));
    let c = LbConfig::new(cr, sid.len(), nonce.len(), k).unwrap();
    let mut out = vec![0u8; c.cid_len()];
    c.encode(&ServerId::new(&sid).unwrap(), &nonce, 0, &mut out).unwrap();
    assert_eq!(hex::encode(&out), hex::encode(&expected), "cr {cr} sid {}", hex::encode(&sid));
    assert_eq!(c.decode(&out).unwrap().as_slice(), &sid[..]);
}

#[test]
fn unencrypted_vector() {
    check(0, "c4605e", "4504cc4f", None, "07c4605e4504cc4f");
}

#[test]
fn four_pass_example_of_section_5_4_2() {
    check(0, "31441a", "9c69c275", Some(&key("fdf726a9893ec05c0632d3956680baf0")), "0767947d29be054a");
}

#[test]
fn encrypted_vectors() {
    let k = key("8f95f09245765f80256934e50c66207f");
    // Odd length (7 octets), four passes.
    check(0, "ed793a", "ee080dbf", Some(&k), "0720b1d07b359d3c");
    // 15 octets with a server ID longer than the nonce: four decryption passes.
    check(1, "ed793a51d49b8f5fab65", "ee080dbf48", Some(&k), "2fcc381bc74cb4fbad2823a3d1f8fed2");
    // 16 octets: single pass.
    check(2, "ed793a51d49b8f5f", "ee080dbf48c0d1e5", Some(&k), "504dd2d05a7b0de9b2b9907afb5ecf8cc3");
}

/// The last vector of Appendix B prints its first octet as 0x12 (config
/// rotation 0, length 18) although it is listed under config rotation 3;
/// the encrypted octets are what is checked, under both readings.
#[test]
fn encrypted_vector_eighteen_octets() {
    let k = key("8f95f09245765f80256934e50c66207f");
    let (sid, nonce) = (unhex("ed793a51d49b8f5fab"), unhex("ee080dbf48c0d1e55d"));
    for cr in [0u8, 3] {
        let c = LbConfig::new(cr, 9, 9, Some(&k)).unwrap();
        let mut out = [0u8; 19];
        c.encode(&ServerId::new(&sid).unwrap(), &nonce, 0, &mut out).unwrap();
        assert_eq!(out[0], (cr << 5) | 18);
        assert_eq!(hex::encode(&out[1..]), "5779c9cc86beb3a3a4a3ca96fce4bfe0cdbc");
        assert_eq!(c.decode(&out).unwrap().as_slice(), &sid[..]);
    }
}

#[test]
fn round_trips_over_every_length() {
    let mut rng = SeededRandom::new(7);
    let k = [0x5au8; 16];
    for sid_len in 1..=15 {
        for nonce_len in MIN_NONCE..=(MAX_PLAINTEXT - sid_len) {
            for key in [None, Some(&k)] {
                let c = LbConfig::new(5, sid_len, nonce_len, key).unwrap();
                let mut sid = vec![0u8; sid_len];
                rng.fill(&mut sid);
                let mut e = LbEncoder::new(c.clone(), &sid).unwrap();
                let a = e.generate(&mut rng);
                let b = e.generate(&mut rng);
                assert_eq!(a.len(), 1 + sid_len + nonce_len);
                assert_ne!(a, b, "nonces differ");
                assert_eq!(a[0] >> 5, 5);
                assert_eq!(usize::from(a[0] & 0x1f), sid_len + nonce_len, "length self-encoded");
                assert_eq!(c.decode(&a).unwrap().as_slice(), &sid[..], "sid {sid_len} nonce {nonce_len} key {}", key.is_some());
                assert!(e.validate(&b));
                if key.is_some() {
                    assert_ne!(&a[1..=sid_len], &sid[..], "encrypted: the server ID is not visible");
                }
            }
        }
    }
}

#[test]
fn configuration_limits() {
    assert_eq!(LbConfig::new(7, 3, 4, None).unwrap_err(), LbConfigError::ReservedRotation);
    assert_eq!(LbConfig::new(0, 0, 4, None).unwrap_err(), LbConfigError::EmptyServerId);
    assert_eq!(LbConfig::new(0, 3, 3, None).unwrap_err(), LbConfigError::ShortNonce);
    assert_eq!(LbConfig::new(0, 10, 10, None).unwrap_err(), LbConfigError::TooLong);
    let c = LbConfig::new(0, 3, 4, None).unwrap();
    assert_eq!(LbEncoder::new(c, &[1, 2]).unwrap_err(), LbConfigError::ServerIdLength);
}

/// §5.5: a load balancer routes the IDs of three servers sharing a
/// configuration (and a second configuration during a rotation), and
/// treats 0b111, unknown codepoints and short IDs as unroutable.
#[test]
fn a_load_balancer_routes_three_servers() {
    let k = key("8f95f09245765f80256934e50c66207f");
    let old = LbConfig::new(0, 2, 6, None).unwrap();
    let new = LbConfig::new(1, 3, 8, Some(&k)).unwrap();
    let mut lb = LbDecoder::new();
    lb.insert(old.clone());
    lb.insert(new.clone());
    let mut rng = SeededRandom::new(11);
    let servers: [&[u8]; 3] = [&[0x0a, 0x00, 0x01], &[0x0a, 0x00, 0x02], &[0x0b, 0x10, 0x07]];
    for (i, sid) in servers.iter().enumerate() {
        let mut enc = LbEncoder::new(new.clone(), sid).unwrap();
        let mut old_enc = LbEncoder::new(old.clone(), &sid[1..]).unwrap();
        for _ in 0..1000 {
            let cid = enc.generate(&mut rng);
            assert_eq!(lb.server_id(&cid).map(|s| s.as_slice().to_vec()), Some(sid.to_vec()), "server {i}");
            let cid = old_enc.generate(&mut rng);
            assert_eq!(lb.server_id(&cid).map(|s| s.as_slice().to_vec()), Some(sid[1..].to_vec()), "server {i}, old config");
        }
    }
    let mut unroutable = [0u8; 12];
    rng.fill(&mut unroutable);
    unroutable[0] |= 0b111 << 5;
    assert_eq!(lb.server_id(&unroutable), None, "0b111");
    unroutable[0] = 0b010 << 5;
    assert_eq!(lb.server_id(&unroutable), None, "no configuration at 2");
    assert_eq!(lb.server_id(&[0x20, 1, 2]), None, "too short for its configuration");
    assert_eq!(lb.server_id(&[]), None);
    lb.remove(1);
    let cid = LbEncoder::new(new, servers[0]).unwrap().generate(&mut rng);
    assert_eq!(lb.server_id(&cid), None, "configuration withdrawn");
}

#[test]
fn the_decoder_never_panics() {
    let mut lb = LbDecoder::new();
    lb.insert(LbConfig::new(0, 3, 4, None).unwrap());
    lb.insert(LbConfig::new(1, 8, 8, Some(&[1; 16])).unwrap());
    lb.insert(LbConfig::new(2, 4, 5, Some(&[2; 16])).unwrap());
    lb.insert(LbConfig::new(3, 15, 4, Some(&[3; 16])).unwrap());
    let mut rng = SeededRandom::new(3);
    let mut buf = [0u8; 21];
    for i in 0..20_000 {
        let len = i % 22;
        rng.fill(&mut buf[..len.min(21)]);
        let _ = lb.server_id(&buf[..len.min(21)]);
    }
}
