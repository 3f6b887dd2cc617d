//! Varint decode/encode: decoding arbitrary bytes never panics, and whatever
//! decodes re-encodes minimally to at most as many bytes and decodes back.
use quic_core::codec::Reader;
use quic_core::varint;

/// One fuzz input: what libFuzzer calls, and what the corpus replay test
/// (`tests/replay.rs`) calls without it.
pub fn run(data: &[u8]) {
    let mut r = Reader::new(data);
    while let Ok(v) = r.varint() {
        let mut out = [0u8; 8];
        let n = varint::encode(v, &mut out).expect("decoded varint must re-encode");
        assert_eq!(varint::decode(&out[..n]), Some((v, n)));
        assert_eq!(n, varint::size(v));
    }
    if let Some((v, len)) = varint::decode(data) {
        assert!(len <= data.len());
        assert!(v <= quic_core::VarInt::MAX.into_inner());
        let mut out = [0u8; 8];
        assert!(varint::encode_with_len(v, len, &mut out));
        assert_eq!(&out[..len], &data[..len]);
    }
    let mut r = Reader::new(data);
    let _ = r.varint_prefixed();
}
