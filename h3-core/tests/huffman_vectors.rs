//! Every vector of shared/data/huffman/huffman-vectors.json (RFC 7541
//! Appendix B code): encodings match byte for byte, decodings round-trip,
//! and every `invalid` entry is rejected.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use h3_core::qpack::huffman;
use serde_json::Value;

fn vectors() -> Value {
    let dir = match std::env::var("QUICPRO_SHARED_DATA") {
        Ok(p) => PathBuf::from(p),
        Err(_) => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"),
    };
    let path = dir.join("huffman/huffman-vectors.json");
    serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn plain(v: &Value) -> Vec<u8> {
    match (v.get("plain"), v.get("plain_hex")) {
        (Some(Value::String(s)), _) => s.as_bytes().to_vec(),
        (_, Some(Value::String(h))) => hex::decode(h).unwrap(),
        _ => panic!("vector without plain text: {v}"),
    }
}

fn check_valid(group: &str, v: &Value) {
    let input = plain(v);
    let want = hex::decode(v["huffman_hex"].as_str().unwrap()).unwrap();
    let mut got = Vec::new();
    huffman::encode(&input, &mut got);
    assert_eq!(got, want, "{group}: encoding of {input:?}");
    assert_eq!(huffman::encoded_len(&input), want.len(), "{group}: encoded_len");
    if let Some(bits) = v.get("bit_length").and_then(Value::as_u64) {
        assert_eq!(want.len() as u64, bits.div_ceil(8));
    }
    assert_eq!(huffman::decode_to_vec(&want).unwrap(), input, "{group}: decoding");
}

#[test]
fn valid_vectors_encode_exactly_and_round_trip() {
    let v = vectors();
    let mut counts = Vec::new();
    for group in ["rfc_examples_and_edges", "single_symbols", "corpus"] {
        let list = v[group].as_array().unwrap();
        for item in list {
            check_valid(group, item);
        }
        counts.push((group, list.len()));
    }
    println!("valid Huffman vectors checked: {counts:?}");
    assert_eq!(counts, [("rfc_examples_and_edges", 14), ("single_symbols", 256), ("corpus", 1500)]);
}

#[test]
fn invalid_vectors_fail_to_decode() {
    let v = vectors();
    let list = v["invalid"].as_array().unwrap();
    assert_eq!(list.len(), 6);
    for item in list {
        let data = hex::decode(item["huffman_hex"].as_str().unwrap()).unwrap();
        let err = huffman::decode_to_vec(&data);
        assert!(err.is_err(), "{}: decoded to {:?}", item["reason"], err);
        println!("invalid {}: {:?} ({})", item["huffman_hex"], err.unwrap_err(), item["reason"]);
    }
}
