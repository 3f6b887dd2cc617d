//! QUIC-LB connection IDs (`quic_core::quic_lb`) checked from the outside
//! against draft-ietf-quic-load-balancers-21:
//!
//! - every vector of Appendix B ("Load Balancer Test Vectors") and the
//!   worked example of §5.4.2.4;
//! - an independent, step-by-step transcription of the four-pass Feistel
//!   network (§5.4.2.3) and of single-pass encryption (§5.4.1), which
//!   first reproduces every intermediate value of the §5.4.2.4 example
//!   and is then compared with the library on every server ID / nonce
//!   length pair, so odd and even lengths the appendix does not cover
//!   are checked too;
//! - the configuration limits of §5.3, the encoder's nonces (§9.6), the
//!   first octet (§3.1, §3.3);
//! - a load balancer routing the IDs of three servers (§3.1, §4.1, §5.5) and
//!   never panicking on arbitrary input.
//!
//! Section numbers follow the draft as numbered from its source
//! (/work/shared/specs): §3 First CID octet, §4 Unroutable CIDs, §5 Server
//! ID Encoding (§5.4.2.2 expand, §5.4.2.3 algorithm, §5.4.2.4 example),
//! §9.6 Connection ID Entropy, Appendix B Test Vectors.

use std::collections::HashSet;

use aes::cipher::{Array, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use aes::Aes128;
use quic_core::cid_gen::ConnectionIdGenerator;
use quic_core::quic_lb::{LbConfig, LbConfigError, LbDecoder, LbEncoder, ServerId};
use quic_core::rand::{RandomSource, SeededRandom};

/// Appendix B.2: "The key for all of these examples".
const APPENDIX_KEY: &str = "8f95f09245765f80256934e50c66207f";
/// §5.4.2.4: the key of the encryption example.
const EXAMPLE_KEY: &str = "fdf726a9893ec05c0632d3956680baf0";

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("test hex")
}

fn key16(s: &str) -> [u8; 16] {
    unhex(s).try_into().expect("a 16-octet key")
}

/// One line of Appendix B: config rotation, server ID, nonce, key, CID.
struct Vector {
    cr: u8,
    sid: &'static str,
    nonce: &'static str,
    key: Option<&'static str>,
    cid: &'static str,
}

/// Encodes a vector's server ID and nonce the way Appendix B says all of
/// them were made ("the server is configured to encode the CID length",
/// §3.3), returning the CID octets.
fn encode_vector(v: &Vector) -> (LbConfig, Vec<u8>) {
    let (sid, nonce) = (unhex(v.sid), unhex(v.nonce));
    let key = v.key.map(key16);
    let config = LbConfig::new(v.cr, sid.len(), nonce.len(), key.as_ref()).expect("vector config");
    let mut out = vec![0u8; config.cid_len()];
    config.encode(&ServerId::new(&sid).expect("vector sid"), &nonce, 0, &mut out).expect("encode");
    (config, out)
}

/// Asserts that encoding gives `v.cid` and that decoding it (with the
/// configuration and with a load balancer holding it) gives the server ID.
fn check_vector(v: &Vector) {
    let (config, out) = encode_vector(v);
    assert_eq!(hex::encode(&out), v.cid, "cr {} sid {}", v.cr, v.sid);
    let expected = unhex(v.sid);
    assert_eq!(config.decode(&unhex(v.cid)).map(|s| s.as_slice().to_vec()), Some(expected.clone()));
    let mut lb = LbDecoder::new();
    lb.insert(config);
    assert_eq!(lb.server_id(&unhex(v.cid)).map(|s| s.as_slice().to_vec()), Some(expected));
}

/// Appendix B.1, first line.
#[test]
fn appendix_b1_unencrypted_vector_0() {
    check_vector(&Vector { cr: 0, sid: "c4605e", nonce: "4504cc4f", key: None, cid: "07c4605e4504cc4f" });
}

/// Appendix B.1, second line, as printed: `1 350d28b420 3487d970b
/// 20a350d28b4203487d970b`. The nonce has nine hex digits and the CID's
/// first octet 0x20 has length bits 0 though the appendix says every CID
/// self-encodes its length, so the line cannot be reproduced verbatim.
/// The consistent reading checked here: a 5-octet nonce 0x03487d970b
/// (leading zero dropped when printed), cr 1 and length 10 → 0x2a, the
/// plaintext block copied unchanged after it (§5.4: no key, "the
/// Connection ID is complete").
#[test]
fn appendix_b1_unencrypted_vector_1_consistent_reading() {
    check_vector(&Vector { cr: 1, sid: "350d28b420", nonce: "03487d970b", key: None, cid: "2a350d28b42003487d970b" });
    // Same length as the printed CID (1 + 5 + 5 octets).
    assert_eq!(unhex("20a350d28b4203487d970b").len(), 11);
}

/// Appendix B.2, lines 1–3: a 7-octet plaintext (four passes, odd split),
/// a 15-octet one whose server ID is longer than its nonce (four
/// decryption passes needed), and a 16-octet one (single pass).
#[test]
fn appendix_b2_encrypted_vectors_0_to_2() {
    let k = Some(APPENDIX_KEY);
    check_vector(&Vector { cr: 0, sid: "ed793a", nonce: "ee080dbf", key: k, cid: "0720b1d07b359d3c" });
    check_vector(&Vector { cr: 1, sid: "ed793a51d49b8f5fab65", nonce: "ee080dbf48", key: k, cid: "2fcc381bc74cb4fbad2823a3d1f8fed2" });
    check_vector(&Vector { cr: 2, sid: "ed793a51d49b8f5f", nonce: "ee080dbf48c0d1e5", key: k, cid: "504dd2d05a7b0de9b2b9907afb5ecf8cc3" });
}

/// Appendix B.2, last line: listed under cr_bits 3, but its first octet
/// is printed as 0x12 (config rotation 0, length 18); under cr 3 it would
/// be 0x72. The 18 ciphertext octets do not depend on the first octet
/// (the rotation is not an input of §5.4.2), so they are checked under
/// both readings, and the printed octet exactly under cr 0.
#[test]
fn appendix_b2_encrypted_vector_3_eighteen_octets() {
    let printed = "125779c9cc86beb3a3a4a3ca96fce4bfe0cdbc";
    let v0 = Vector { cr: 0, sid: "ed793a51d49b8f5fab", nonce: "ee080dbf48c0d1e55d", key: Some(APPENDIX_KEY), cid: printed };
    check_vector(&v0);
    let v3 = Vector { cr: 3, cid: "725779c9cc86beb3a3a4a3ca96fce4bfe0cdbc", ..v0 };
    check_vector(&v3);
}

/// §5.4.2.4: the worked four-pass example.
#[test]
fn section_5_4_2_encryption_example() {
    check_vector(&Vector { cr: 0, sid: "31441a", nonce: "9c69c275", key: Some(EXAMPLE_KEY), cid: "0767947d29be054a" });
}

// ---------------------------------------------------------------------
// An independent transcription of §5.4, written step by step from the
// draft's text (not from the library), to cross-check every length.
// ---------------------------------------------------------------------

/// §5.4.2.2 expand(length, pass, input_bytes): the input in the most
/// significant octets, zero padding, then length and pass.
fn ref_expand(length: u8, pass: u8, input: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..input.len()].copy_from_slice(input);
    out[14] = length;
    out[15] = pass;
    out
}

fn ref_aes(key: &[u8; 16], block: [u8; 16]) -> [u8; 16] {
    let cipher = Aes128::new(&Array::from(*key));
    let mut b = Array::from(block);
    cipher.encrypt_block(&mut b);
    b.into()
}

fn ref_aes_decrypt(key: &[u8; 16], block: [u8; 16]) -> [u8; 16] {
    let cipher = Aes128::new(&Array::from(*key));
    let mut b = Array::from(block);
    cipher.decrypt_block(&mut b);
    b.into()
}

fn xor_into(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// The halves after each step of §5.4.2.3, for comparison with §5.4.2.4.
#[derive(Debug)]
struct Trace {
    left_0: Vec<u8>,
    right_0: Vec<u8>,
    right_1: Vec<u8>,
    left_1: Vec<u8>,
    right_2: Vec<u8>,
    left_2: Vec<u8>,
}

/// §5.4.2.3 steps 1–12, literally.
fn ref_four_pass(key: &[u8; 16], plaintext: &[u8]) -> (Vec<u8>, Trace) {
    let len = plaintext.len();
    let half_len = len.div_ceil(2);
    let odd = len % 2 == 1;
    let round = |pass: u8, input: &[u8]| ref_aes(key, ref_expand(len as u8, pass, input))[..half_len].to_vec();
    let clear_first_bits = |h: &mut Vec<u8>| {
        if odd {
            h[0] &= 0x0f;
        }
    };
    let clear_last_bits = |h: &mut Vec<u8>| {
        if odd {
            h[half_len - 1] &= 0xf0;
        }
    };
    // Step 2: equal halves; with an odd length the middle octet is in
    // both, its low nibble cleared on the left and high one on the right.
    let mut left_0 = plaintext[..half_len].to_vec();
    let mut right_0 = plaintext[len - half_len..].to_vec();
    clear_last_bits(&mut left_0);
    clear_first_bits(&mut right_0);
    // Steps 3–5.
    let mut right_1 = xor_into(&right_0, &round(1, &left_0));
    clear_first_bits(&mut right_1);
    // Steps 6–7.
    let mut left_1 = xor_into(&left_0, &round(2, &right_1));
    clear_last_bits(&mut left_1);
    // Steps 8–9.
    let mut right_2 = xor_into(&right_1, &round(3, &left_1));
    clear_first_bits(&mut right_2);
    // Steps 10–11.
    let mut left_2 = xor_into(&left_1, &round(4, &right_2));
    clear_last_bits(&mut left_2);
    // Step 12: concatenate, merging the two zeroed nibbles away.
    let mut out = left_2.clone();
    if odd {
        out[half_len - 1] |= right_2[0];
        out.extend_from_slice(&right_2[1..]);
    } else {
        out.extend_from_slice(&right_2);
    }
    let t = Trace { left_0, right_0, right_1, left_1, right_2, left_2 };
    (out, t)
}

/// §5.4.1 or §5.4.2 depending on the plaintext length.
fn ref_encrypt(key: &[u8; 16], plaintext: &[u8]) -> Vec<u8> {
    if plaintext.len() == 16 {
        ref_aes(key, plaintext.try_into().expect("16 octets")).to_vec()
    } else {
        ref_four_pass(key, plaintext).0
    }
}

/// §5.4.2.2's own examples of expand and truncate.
#[test]
fn reference_expand_matches_the_draft() {
    assert_eq!(hex::encode(ref_expand(0x06, 0x02, &unhex("aaba3c"))), "aaba3c00000000000000000000000602");
    assert_eq!(hex::encode(&unhex("2094842ca49256198c2deaa0ba53caa0")[..4]), "2094842c");
}

/// The reference reproduces every intermediate value printed in §5.4.2.4
/// (after the bit clearing of steps 5, 7, 9, 11).
#[test]
fn reference_reproduces_the_section_5_4_2_trace() {
    let (out, t) = ref_four_pass(&key16(EXAMPLE_KEY), &unhex("31441a9c69c275"));
    let h = |v: &Vec<u8>| hex::encode(v);
    assert_eq!((h(&t.left_0), h(&t.right_0)), ("31441a90".into(), "0c69c275".into()));
    assert_eq!(h(&t.right_1), "0e3c1ff9");
    assert_eq!(h(&t.left_1), "d4a04850");
    assert_eq!(h(&t.right_2), "09be054a");
    assert_eq!(h(&t.left_2), "67947d20");
    assert_eq!(hex::encode(out), "67947d29be054a");
    // §5.4.2.3 step 2's own split example.
    let (_, t) = ref_four_pass(&[0; 16], &unhex("7040b81b55ccf3"));
    assert_eq!((h(&t.left_0), h(&t.right_0)), ("7040b810".into(), "0b55ccf3".into()));
}

/// The library equals the reference for every server ID length (1..=15)
/// and nonce length (4..=19 − sid), i.e. every plaintext length 5..=19,
/// odd and even, single and four pass, and decodes its own output.
#[test]
fn library_matches_reference_on_every_length() {
    let mut rng = SeededRandom::new(0x5eed);
    let mut key = [0u8; 16];
    for sid_len in 1..=15usize {
        for nonce_len in 4..=(19 - sid_len) {
            for _ in 0..8 {
                rng.fill(&mut key);
                let mut pt = vec![0u8; sid_len + nonce_len];
                rng.fill(&mut pt);
                let cr = (rng.next_u64() % 7) as u8;
                let config = LbConfig::new(cr, sid_len, nonce_len, Some(&key)).unwrap();
                let mut out = vec![0u8; config.cid_len()];
                config.encode(&ServerId::new(&pt[..sid_len]).unwrap(), &pt[sid_len..], 0, &mut out).unwrap();
                assert_eq!(out[0], (cr << 5) | (sid_len + nonce_len) as u8, "first octet (§3.4)");
                assert_eq!(hex::encode(&out[1..]), hex::encode(ref_encrypt(&key, &pt)), "sid {sid_len} nonce {nonce_len}");
                assert_eq!(config.decode(&out).unwrap().as_slice(), &pt[..sid_len]);
            }
        }
    }
}

// ---------------------------------------------------------------------
// Configuration, encoder, decoder.
// ---------------------------------------------------------------------

/// §3.1 and §5.3 over the whole grid: rotation 0..=6, server ID ≥ 1,
/// nonce ≥ 4, sum ≤ 19; `cid_len` = 1 + server ID + nonce.
#[test]
fn configuration_limits_over_the_whole_grid() {
    for cr in 0..=7u8 {
        for sid in 0..=20usize {
            for nonce in 0..=20usize {
                let r = LbConfig::new(cr, sid, nonce, None);
                let expected = if cr == 7 {
                    Err(LbConfigError::ReservedRotation)
                } else if sid == 0 {
                    Err(LbConfigError::EmptyServerId)
                } else if nonce < 4 {
                    Err(LbConfigError::ShortNonce)
                } else if sid + nonce > 19 {
                    Err(LbConfigError::TooLong)
                } else {
                    Ok(1 + sid + nonce)
                };
                assert_eq!(r.map(|c| c.cid_len()), expected, "cr {cr} sid {sid} nonce {nonce}");
            }
        }
    }
    let c = LbConfig::new(0, 3, 4, None).unwrap();
    assert_eq!(LbEncoder::new(c, &[1, 2, 3, 4]).unwrap_err(), LbConfigError::ServerIdLength);
    assert!(ServerId::new(&[]).is_err());
    assert!(ServerId::new(&[0; 16]).is_err());
    assert_eq!(ServerId::new(&[7; 15]).unwrap().as_slice(), &[7; 15]);
}

/// Round trips through the generator for every length pair, plaintext and
/// encrypted, with the length self-encoded and with random low bits
/// (§3.3): the rotation is in the top three bits, the ID has the
/// configured length, validates, and decodes to the server ID.
#[test]
fn encoder_round_trips_in_both_first_octet_modes() {
    let mut rng = SeededRandom::new(21);
    let key = key16(APPENDIX_KEY);
    for sid_len in 1..=15usize {
        for nonce_len in 4..=(19 - sid_len) {
            for key in [None, Some(&key)] {
                for encode_length in [true, false] {
                    let mut config = LbConfig::new(4, sid_len, nonce_len, key).unwrap();
                    if !encode_length {
                        config = config.without_length_encoding();
                    }
                    let mut sid = vec![0u8; sid_len];
                    rng.fill(&mut sid);
                    let mut enc = LbEncoder::new(config.clone(), &sid).unwrap();
                    assert_eq!(enc.cid_len(), 1 + sid_len + nonce_len);
                    let mut low_bits = HashSet::new();
                    for _ in 0..16 {
                        let cid = enc.generate(&mut rng);
                        assert_eq!(cid.len(), enc.cid_len());
                        assert_eq!(cid[0] >> 5, 4);
                        low_bits.insert(cid[0] & 0x1f);
                        assert!(enc.validate(&cid));
                        assert_eq!(config.decode(&cid).unwrap().as_slice(), &sid[..]);
                    }
                    if encode_length {
                        assert_eq!(low_bits.into_iter().collect::<Vec<_>>(), vec![(sid_len + nonce_len) as u8]);
                    } else {
                        assert!(low_bits.len() > 1, "random low bits vary");
                    }
                }
            }
        }
    }
}

/// §9.6: with a key the nonce is a counter started at a random value, so
/// consecutive nonces (seen by decrypting a single-pass ID) differ by one
/// and no ID repeats; different seeds start at different values.
#[test]
fn encrypted_nonces_count_from_a_random_start() {
    let key = key16(APPENDIX_KEY);
    let config = LbConfig::new(0, 8, 8, Some(&key)).unwrap();
    let nonce_of = |cid: &[u8]| u64::from_be_bytes(ref_aes_decrypt(&key, cid[1..17].try_into().unwrap())[8..].try_into().unwrap());
    let mut starts = HashSet::new();
    for seed in 0..4 {
        let mut rng = SeededRandom::new(seed);
        let mut enc = LbEncoder::new(config.clone(), &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        let first = nonce_of(&enc.generate(&mut rng));
        starts.insert(first);
        for i in 1..100u64 {
            assert_eq!(nonce_of(&enc.generate(&mut rng)), first.wrapping_add(i));
        }
    }
    assert_eq!(starts.len(), 4);
    // A 4-octet nonce: 20 000 IDs, none repeated.
    let mut rng = SeededRandom::new(9);
    let mut enc = LbEncoder::new(LbConfig::new(0, 3, 4, Some(&key)).unwrap(), &[9, 9, 9]).unwrap();
    let ids: HashSet<_> = (0..20_000).map(|_| enc.generate(&mut rng)).collect();
    assert_eq!(ids.len(), 20_000);
}

/// §5.4: without a key, nonces must have "no observable relationship" to
/// earlier ones, so they are random rather than a counter.
#[test]
fn plaintext_nonces_are_not_a_counter() {
    let mut rng = SeededRandom::new(4);
    let mut enc = LbEncoder::new(LbConfig::new(0, 2, 8, None).unwrap(), &[0xab, 0xcd]).unwrap();
    let nonces: Vec<u64> = (0..100).map(|_| u64::from_be_bytes(enc.generate(&mut rng)[3..11].try_into().unwrap())).collect();
    assert!(nonces.windows(2).all(|w| w[1] != w[0].wrapping_add(1)));
    assert_eq!(nonces.iter().collect::<HashSet<_>>().len(), 100);
}

/// §3.1, §4.1, §5.5: three servers A, B, C share one configuration and key; the
/// load balancer maps each of their 1000 IDs to the right server, and
/// treats the same IDs under 0b111 or an unconfigured rotation as
/// unroutable. Run for an encrypted (four-pass), a single-pass and a
/// plaintext configuration.
#[test]
fn routes_cids_of_three_simulated_servers() {
    let key = key16(APPENDIX_KEY);
    let configs = [LbConfig::new(2, 3, 6, Some(&key)).unwrap(), LbConfig::new(2, 4, 12, Some(&key)).unwrap(), LbConfig::new(2, 3, 6, None).unwrap()];
    for config in configs {
        let sid_len = config.server_id_len();
        let servers: Vec<Vec<u8>> = [0xa0u8, 0xb0, 0xc0].iter().map(|&s| (0..sid_len as u8).map(|i| s + i).collect()).collect();
        let mut lb = LbDecoder::new();
        lb.insert(config.clone());
        let mut rng = SeededRandom::new(1234);
        let mut encoders: Vec<LbEncoder> = servers.iter().map(|s| LbEncoder::new(config.clone(), s).unwrap()).collect();
        for (i, enc) in encoders.iter_mut().enumerate() {
            for _ in 0..1000 {
                let cid = enc.generate(&mut rng);
                assert_eq!(lb.server_id(&cid).unwrap().as_slice(), &servers[i][..], "server {i}, {config:?}");
                for other in servers.iter().filter(|s| **s != servers[i]) {
                    let other_enc = LbEncoder::new(config.clone(), other).unwrap();
                    assert!(!other_enc.validate(&cid), "another server's ID");
                }
                let mut moved = cid.to_vec();
                moved[0] = (0b111 << 5) | (moved[0] & 0x1f);
                assert_eq!(lb.server_id(&moved), None, "0b111 is unroutable (§3.2)");
                moved[0] = (0b101 << 5) | (moved[0] & 0x1f);
                assert_eq!(lb.server_id(&moved), None, "no configuration at 5 (§4.1)");
                assert_eq!(lb.server_id(&cid[..cid.len() - 1]), None, "too short for its configuration (§4.1)");
            }
        }
    }
}

/// §5.4: a server MAY append octets after the plaintext block; the load
/// balancer still finds the server ID in the leading octets.
#[test]
fn appended_octets_do_not_change_routing() {
    let key = key16(APPENDIX_KEY);
    let config = LbConfig::new(1, 2, 5, Some(&key)).unwrap();
    let mut lb = LbDecoder::new();
    lb.insert(config.clone());
    let mut rng = SeededRandom::new(77);
    let cid = LbEncoder::new(config, &[0x12, 0x34]).unwrap().generate(&mut rng);
    let mut longer = cid.to_vec();
    longer.extend_from_slice(&[0xee; 4]);
    assert_eq!(lb.server_id(&longer).unwrap().as_slice(), &[0x12, 0x34]);
}

/// A load balancer with a configuration at every codepoint 0..=6 (plain,
/// single pass, four pass with odd and even lengths, long server IDs)
/// never panics on arbitrary octets of any length 0..=21, and whatever
/// it returns has the configured server ID length.
#[test]
fn decoder_never_panics_on_arbitrary_input() {
    let key = key16(APPENDIX_KEY);
    let layouts: [(usize, usize, bool); 7] = [(3, 4, false), (8, 8, true), (3, 4, true), (15, 4, true), (1, 18, true), (10, 9, false), (6, 6, true)];
    let mut lb = LbDecoder::new();
    for (cr, (sid, nonce, encrypted)) in layouts.iter().enumerate() {
        lb.insert(LbConfig::new(cr as u8, *sid, *nonce, encrypted.then_some(&key)).unwrap());
    }
    let mut rng = SeededRandom::new(0xdead);
    let mut buf = [0u8; 21];
    for i in 0..100_000usize {
        let len = i % 22;
        rng.fill(&mut buf[..len]);
        let input = &buf[..len];
        if let Some(sid) = lb.server_id(input) {
            let cr = usize::from(input[0] >> 5);
            assert_eq!(sid.as_slice().len(), layouts[cr].0);
            assert!(len > layouts[cr].0 + layouts[cr].1);
        }
    }
    for len in 0..=21 {
        for fill in [0x00u8, 0xff, 0xe0, 0x1f] {
            let _ = lb.server_id(&vec![fill; len]);
        }
    }
}
