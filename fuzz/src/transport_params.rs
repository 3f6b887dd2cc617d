//! Transport parameters (RFC 9000 §18): decode arbitrary bytes as a client's
//! and as a server's parameters. Decoding must not panic and must fail only
//! with TRANSPORT_PARAMETER_ERROR; whatever decodes must re-encode (never
//! longer than the input, as the encoding is minimal and drops defaults and
//! unknown ids), decode again and compare equal.
use quic_core::codec::Writer;
use quic_core::error::TransportErrorCode;
use quic_core::transport_params::{Role, TransportParameters};

fn check(data: &[u8], sender: Role) {
    let params = match TransportParameters::decode(data, sender) {
        Ok(p) => p,
        Err(e) => {
            assert_eq!(e.code, TransportErrorCode::TRANSPORT_PARAMETER_ERROR, "{e:?}");
            return;
        }
    };
    assert!(params.validate(sender).is_ok());
    let len = params.encoded_len(sender);
    assert!(len <= data.len(), "re-encoding grew: {len} > {}", data.len());
    let mut buf = vec![0u8; len];
    let mut w = Writer::new(&mut buf);
    params.encode(&mut w, sender).expect("encoded_len bytes are enough");
    assert_eq!(w.len(), len);
    let again = TransportParameters::decode(&buf, sender).expect("own encoding decodes");
    assert_eq!(again, params);

    // With a grease parameter (seeded from the input) the result is the same.
    let seed = data.iter().fold(0u64, |h, b| h.rotate_left(8) ^ u64::from(*b));
    let mut buf = vec![0u8; params.encoded_len_with_grease(sender, seed)];
    params.encode_with_grease(&mut Writer::new(&mut buf), sender, seed).expect("encoded_len_with_grease bytes are enough");
    assert_eq!(TransportParameters::decode(&buf, sender).expect("greased encoding decodes"), params);
}

/// One fuzz input: what libFuzzer calls, and what the corpus replay test
/// (`tests/replay.rs`) calls without it.
pub fn run(data: &[u8]) {
    check(data, Role::Client);
    check(data, Role::Server);
}
