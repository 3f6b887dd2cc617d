//! Byte builders for the cases: QUIC varints and frames (RFC 9000 §16,
//! §19), HTTP/3 frames (RFC 9114 §7), QPACK field lines (RFC 9204 §4.5),
//! transport parameter TLVs (RFC 9000 §18).

/// A QUIC variable-length integer in its shortest form (RFC 9000 §16).
pub fn vi(v: u64) -> Vec<u8> {
    let mut out = [0u8; 8];
    let n = quic_core::varint::encode(v, &mut out).expect("value below 2^62");
    out[..n].to_vec()
}

/// A varint in exactly `len` bytes (1, 2, 4 or 8), longer than needed if
/// the value is small.
pub fn vi_len(v: u64, len: usize) -> Vec<u8> {
    let mut out = [0u8; 8];
    assert!(quic_core::varint::encode_with_len(v, len, &mut out), "{v} in {len} bytes");
    out[..len].to_vec()
}

/// Concatenates pieces.
pub fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

// ---------------------------------------------------------------- QUIC frames

/// STREAM frame with offset, length and optional FIN (type 0x0e/0x0f).
pub fn stream(id: u64, offset: u64, data: &[u8], fin: bool) -> Vec<u8> {
    cat(&[&vi(0x0e | u64::from(fin)), &vi(id), &vi(offset), &vi(data.len() as u64), data])
}

/// RESET_STREAM (0x04).
pub fn reset_stream(id: u64, code: u64, final_size: u64) -> Vec<u8> {
    cat(&[&[0x04], &vi(id), &vi(code), &vi(final_size)])
}

/// STOP_SENDING (0x05).
pub fn stop_sending(id: u64, code: u64) -> Vec<u8> {
    cat(&[&[0x05], &vi(id), &vi(code)])
}

/// MAX_STREAM_DATA (0x11).
pub fn max_stream_data(id: u64, max: u64) -> Vec<u8> {
    cat(&[&[0x11], &vi(id), &vi(max)])
}

/// STREAM_DATA_BLOCKED (0x15).
pub fn stream_data_blocked(id: u64, limit: u64) -> Vec<u8> {
    cat(&[&[0x15], &vi(id), &vi(limit)])
}

/// ACK (0x02) with one range: `largest` and the `first_range` packets below it.
pub fn ack(largest: u64, first_range: u64) -> Vec<u8> {
    cat(&[&[0x02], &vi(largest), &vi(0), &vi(0), &vi(first_range)])
}

/// CRYPTO (0x06).
pub fn crypto(offset: u64, data: &[u8]) -> Vec<u8> {
    cat(&[&[0x06], &vi(offset), &vi(data.len() as u64), data])
}

/// NEW_CONNECTION_ID (0x18).
pub fn new_connection_id(seq: u64, retire_prior_to: u64, cid: &[u8], token: [u8; 16]) -> Vec<u8> {
    cat(&[&[0x18], &vi(seq), &vi(retire_prior_to), &[cid.len() as u8], cid, &token])
}

// ------------------------------------------------------------- HTTP/3 frames

/// Any HTTP/3 frame: type, length, payload (RFC 9114 §7.1).
pub fn h3_frame(ty: u64, payload: &[u8]) -> Vec<u8> {
    cat(&[&vi(ty), &vi(payload.len() as u64), payload])
}

/// A SETTINGS frame from (identifier, value) pairs.
pub fn settings(pairs: &[(u64, u64)]) -> Vec<u8> {
    let payload: Vec<u8> = pairs.iter().flat_map(|&(k, v)| cat(&[&vi(k), &vi(v)])).collect();
    h3_frame(0x04, &payload)
}

/// A control stream: its type (0x00) and an empty SETTINGS frame.
pub fn control_stream() -> Vec<u8> {
    cat(&[&[0x00], &settings(&[])])
}

// ---------------------------------------------------------------- QPACK

/// An HPACK/QPACK prefixed integer (RFC 7541 §5.1) with `prefix` bits,
/// OR-ed into `flags` in the first byte.
pub fn prefix_int(flags: u8, prefix: u32, v: u64) -> Vec<u8> {
    let max = (1u64 << prefix) - 1;
    if v < max {
        return vec![flags | v as u8];
    }
    let mut out = vec![flags | max as u8];
    let mut rest = v - max;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
    out
}

/// An indexed field line referring to the static table (§4.5.2).
pub fn static_indexed(index: u64) -> Vec<u8> {
    prefix_int(0xc0, 6, index)
}

/// A literal field line with a literal name, no Huffman (§4.5.6).
pub fn literal(name: &str, value: &str) -> Vec<u8> {
    cat(&[&prefix_int(0x20, 3, name.len() as u64), name.as_bytes(), &prefix_int(0x00, 7, value.len() as u64), value.as_bytes()])
}

/// A field section with Required Insert Count 0 and Base 0, from field lines.
pub fn field_section(lines: &[Vec<u8>]) -> Vec<u8> {
    cat(&[&[0x00, 0x00], &lines.concat()])
}

/// The field lines of a valid `GET https://localhost/`.
pub fn get_lines() -> Vec<Vec<u8>> {
    // Static table (RFC 9204 Appendix A): 17 `:method GET`, 23 `:scheme
    // https`, 1 `:path /`; `:authority` (0) with a literal value.
    vec![static_indexed(17), static_indexed(23), static_indexed(1), cat(&[&[0x50], &prefix_int(0x00, 7, 9), b"localhost"])]
}

/// A HEADERS frame holding `lines` (Required Insert Count 0).
pub fn headers(lines: &[Vec<u8>]) -> Vec<u8> {
    h3_frame(0x01, &field_section(lines))
}

/// A HEADERS frame with a valid GET.
pub fn get_request() -> Vec<u8> {
    headers(&get_lines())
}

/// A DATA frame.
pub fn data(payload: &[u8]) -> Vec<u8> {
    h3_frame(0x00, payload)
}

// ------------------------------------------------------- transport parameters

/// One transport parameter TLV (RFC 9000 §18).
pub fn tp(id: u64, value: &[u8]) -> Vec<u8> {
    cat(&[&vi(id), &vi(value.len() as u64), value])
}

/// The parameters of an encoded list, as (id, value) pairs in order.
pub fn tp_parse(mut b: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let Some((id, n)) = quic_core::varint::decode(b) else { break };
        b = &b[n..];
        let Some((len, n)) = quic_core::varint::decode(b) else { break };
        b = &b[n..];
        let len = (len as usize).min(b.len());
        out.push((id, b[..len].to_vec()));
        b = &b[len..];
    }
    out
}

/// Re-encodes parsed parameters.
pub fn tp_encode(params: &[(u64, Vec<u8>)]) -> Vec<u8> {
    params.iter().flat_map(|(id, v)| tp(*id, v)).collect()
}

/// `encoded` with parameter `id` removed.
pub fn tp_without(encoded: &[u8], id: u64) -> Vec<u8> {
    let params: Vec<_> = tp_parse(encoded).into_iter().filter(|(i, _)| *i != id).collect();
    tp_encode(&params)
}

/// `encoded` with parameter `id`'s value replaced (appended if absent).
pub fn tp_with(encoded: &[u8], id: u64, value: &[u8]) -> Vec<u8> {
    let mut v = tp_without(encoded, id);
    v.extend(tp(id, value));
    v
}
