//! Encoder instructions (RFC 9204 §4.3) and decoder instructions (§4.4):
//! writers and incremental parsers.
//!
//! Parsers return `Ok(None)` when the input ends inside an instruction, so
//! stream data can arrive in arbitrary chunks; the caller keeps the tail.

use bytes::Bytes;

use super::error::QpackError;
use super::prefix_int::{self, IntError};
use super::static_table;
use super::string::{self, StringError};

/// An instruction on the encoder stream (RFC 9204 §4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncoderInstruction {
    /// §4.3.1: `001` + capacity (5+).
    SetDynamicTableCapacity(u64),
    /// §4.3.2: `1T` + name index (6+) + value. `is_static` is T; otherwise the
    /// index is relative to the insertion point (§3.2.5).
    InsertWithNameRef { is_static: bool, name_index: u64, value: Bytes },
    /// §4.3.3: `01H` + name (5+) + value.
    InsertWithLiteralName { name: Bytes, value: Bytes },
    /// §4.3.4: `000` + relative index (5+).
    Duplicate { relative_index: u64 },
}

/// Appends Set Dynamic Table Capacity (§4.3.1).
pub fn write_set_capacity(capacity: u64, out: &mut Vec<u8>) {
    prefix_int::encode(capacity, 5, 0x20, out);
}

/// Appends Insert with Name Reference (§4.3.2).
pub fn write_insert_with_name_ref(is_static: bool, name_index: u64, value: &[u8], huffman: bool, out: &mut Vec<u8>) {
    prefix_int::encode(name_index, 6, if is_static { 0xc0 } else { 0x80 }, out);
    string::write(value, 8, 0, huffman, out);
}

/// Appends Insert with Literal Name (§4.3.3).
pub fn write_insert_with_literal_name(name: &[u8], value: &[u8], huffman: bool, out: &mut Vec<u8>) {
    string::write(name, 6, 0x40, huffman, out);
    string::write(value, 8, 0, huffman, out);
}

/// Appends Duplicate (§4.3.4).
pub fn write_duplicate(relative_index: u64, out: &mut Vec<u8>) {
    prefix_int::encode(relative_index, 5, 0x00, out);
}

fn enc_err(e: IntError) -> Option<QpackError> {
    match e {
        IntError::Incomplete => None,
        IntError::Overflow => Some(QpackError::encoder_stream("integer overflow")),
    }
}

fn enc_str_err(e: StringError) -> Option<QpackError> {
    match e {
        StringError::Incomplete => None,
        StringError::IntegerOverflow => Some(QpackError::encoder_stream("string length overflow")),
        StringError::TooLong => Some(QpackError::encoder_stream("string literal too long")),
        StringError::Huffman(_) => Some(QpackError::encoder_stream("invalid Huffman string")),
    }
}

/// `Ok(None)` for incomplete input, `Err` for a real error.
macro_rules! try_enc {
    ($e:expr, $map:ident) => {
        match $e {
            Ok(v) => v,
            Err(e) => return $map(e).map_or(Ok(None), Err),
        }
    };
}

impl EncoderInstruction {
    /// Appends this instruction; strings are Huffman coded if `huffman` and
    /// shorter that way.
    pub fn encode(&self, huffman: bool, out: &mut Vec<u8>) {
        match self {
            Self::SetDynamicTableCapacity(c) => write_set_capacity(*c, out),
            Self::InsertWithNameRef { is_static, name_index, value } => write_insert_with_name_ref(*is_static, *name_index, value, huffman, out),
            Self::InsertWithLiteralName { name, value } => write_insert_with_literal_name(name, value, huffman, out),
            Self::Duplicate { relative_index } => write_duplicate(*relative_index, out),
        }
    }

    /// Parses one instruction from the start of `buf`. Returns the
    /// instruction and its length, `Ok(None)` if `buf` ends inside it, or a
    /// QPACK_ENCODER_STREAM_ERROR. Strings longer than `max_string_len`
    /// (decoded) are rejected from their length alone, before waiting for
    /// or allocating their bytes.
    pub fn parse(buf: &[u8], max_string_len: usize) -> Result<Option<(Self, usize)>, QpackError> {
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        if first & 0x80 != 0 {
            // §4.3.2 Insert with Name Reference.
            let (name_index, n) = try_enc!(prefix_int::decode(buf, 6), enc_err);
            let is_static = first & 0x40 != 0;
            // RFC 9204 §3.1: an invalid static index is an error; say so now
            // rather than wait for a value that may never come.
            if is_static && name_index >= static_table::LEN {
                return Err(QpackError::encoder_stream("invalid static table index"));
            }
            let rest = buf.get(n..).unwrap_or_default();
            let (value, m) = try_enc!(string::read(rest, 8, max_string_len), enc_str_err);
            Ok(Some((Self::InsertWithNameRef { is_static, name_index, value }, n + m)))
        } else if first & 0x40 != 0 {
            // §4.3.3 Insert with Literal Name. Measure both strings before
            // decoding either, so a partial instruction costs no Huffman work.
            let name_len = try_enc!(string::literal_len(buf, 6, max_string_len), enc_str_err);
            let rest = buf.get(name_len..).unwrap_or_default();
            let value_len = try_enc!(string::literal_len(rest, 8, max_string_len), enc_str_err);
            if buf.len() < name_len + value_len {
                return Ok(None);
            }
            let (name, _) = try_enc!(string::read(buf, 6, max_string_len), enc_str_err);
            let (value, _) = try_enc!(string::read(rest, 8, max_string_len), enc_str_err);
            Ok(Some((Self::InsertWithLiteralName { name, value }, name_len + value_len)))
        } else if first & 0x20 != 0 {
            // §4.3.1 Set Dynamic Table Capacity.
            let (c, n) = try_enc!(prefix_int::decode(buf, 5), enc_err);
            Ok(Some((Self::SetDynamicTableCapacity(c), n)))
        } else {
            // §4.3.4 Duplicate.
            let (i, n) = try_enc!(prefix_int::decode(buf, 5), enc_err);
            Ok(Some((Self::Duplicate { relative_index: i }, n)))
        }
    }
}

/// An instruction on the decoder stream (RFC 9204 §4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecoderInstruction {
    /// §4.4.1: `1` + stream ID (7+).
    SectionAcknowledgment { stream_id: u64 },
    /// §4.4.2: `01` + stream ID (6+).
    StreamCancellation { stream_id: u64 },
    /// §4.4.3: `00` + increment (6+).
    InsertCountIncrement { increment: u64 },
}

impl DecoderInstruction {
    /// Appends this instruction.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            Self::SectionAcknowledgment { stream_id } => prefix_int::encode(stream_id, 7, 0x80, out),
            Self::StreamCancellation { stream_id } => prefix_int::encode(stream_id, 6, 0x40, out),
            Self::InsertCountIncrement { increment } => prefix_int::encode(increment, 6, 0x00, out),
        }
    }

    /// Parses one instruction; `Ok(None)` if `buf` ends inside it; errors
    /// are QPACK_DECODER_STREAM_ERROR.
    pub fn parse(buf: &[u8]) -> Result<Option<(Self, usize)>, QpackError> {
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        let (prefix, make): (u8, fn(u64) -> Self) = if first & 0x80 != 0 {
            (7, |stream_id| Self::SectionAcknowledgment { stream_id })
        } else if first & 0x40 != 0 {
            (6, |stream_id| Self::StreamCancellation { stream_id })
        } else {
            (6, |increment| Self::InsertCountIncrement { increment })
        };
        match prefix_int::decode(buf, prefix) {
            Ok((v, n)) => Ok(Some((make(v), n))),
            Err(IntError::Incomplete) => Ok(None),
            Err(IntError::Overflow) => Err(QpackError::decoder_stream("integer overflow")),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn round_trip(i: EncoderInstruction, huffman: bool, expect: Option<&[u8]>) {
        let mut out = Vec::new();
        i.encode(huffman, &mut out);
        if let Some(e) = expect {
            assert_eq!(out, e);
        }
        assert_eq!(EncoderInstruction::parse(&out, 1 << 16).unwrap(), Some((i.clone(), out.len())));
        for cut in 0..out.len() {
            assert_eq!(EncoderInstruction::parse(&out[..cut], 1 << 16).unwrap(), None);
        }
    }

    #[test]
    fn encoder_instructions_rfc9204_appendix_b() {
        // B.2: Set Dynamic Table Capacity=220.
        round_trip(EncoderInstruction::SetDynamicTableCapacity(220), false, Some(&[0x3f, 0xbd, 0x01]));
        // B.2: Insert With Name Reference, static 0, www.example.com.
        let mut e = vec![0xc0, 0x0f];
        e.extend_from_slice(b"www.example.com");
        round_trip(EncoderInstruction::InsertWithNameRef { is_static: true, name_index: 0, value: Bytes::from_static(b"www.example.com") }, false, Some(&e));
        // B.3: Insert With Literal Name custom-key=custom-value.
        let mut e = vec![0x4a];
        e.extend_from_slice(b"custom-key");
        e.push(0x0c);
        e.extend_from_slice(b"custom-value");
        round_trip(
            EncoderInstruction::InsertWithLiteralName { name: Bytes::from_static(b"custom-key"), value: Bytes::from_static(b"custom-value") },
            false,
            Some(&e),
        );
        // B.4: Duplicate relative 2.
        round_trip(EncoderInstruction::Duplicate { relative_index: 2 }, false, Some(&[0x02]));
        // B.5: Insert With Name Reference, dynamic relative 1.
        let mut e = vec![0x81, 0x0d];
        e.extend_from_slice(b"custom-value2");
        round_trip(EncoderInstruction::InsertWithNameRef { is_static: false, name_index: 1, value: Bytes::from_static(b"custom-value2") }, false, Some(&e));
        // Huffman-coded variants round-trip too.
        round_trip(
            EncoderInstruction::InsertWithLiteralName { name: Bytes::from_static(b"custom-key"), value: Bytes::from_static(b"custom-value") },
            true,
            None,
        );
    }

    #[test]
    fn encoder_instruction_errors() {
        // Huffman-coded name with invalid padding (H=1, length 1, 0x00).
        let err = EncoderInstruction::parse(&[0x61, 0x00, 0x00], 100).unwrap_err();
        assert_eq!(err.code(), super::super::QPACK_ENCODER_STREAM_ERROR);
        // A value length over the limit is refused before its bytes arrive.
        let err = EncoderInstruction::parse(&[0xc0, 0x7f, 0xff, 0x7f], 100).unwrap_err();
        assert_eq!(err.reason, "string literal too long");
        // Overlong integer.
        let mut b = vec![0x3f];
        b.extend([0xff; 12]);
        assert!(EncoderInstruction::parse(&b, 100).is_err());
    }

    #[test]
    fn decoder_instructions() {
        for (i, bytes) in [
            (DecoderInstruction::SectionAcknowledgment { stream_id: 4 }, &[0x84][..]),
            (DecoderInstruction::StreamCancellation { stream_id: 8 }, &[0x48][..]),
            (DecoderInstruction::InsertCountIncrement { increment: 1 }, &[0x01][..]),
            (DecoderInstruction::SectionAcknowledgment { stream_id: 200 }, &[0xff, 0x49][..]),
        ] {
            let mut out = Vec::new();
            i.encode(&mut out);
            assert_eq!(out, bytes);
            assert_eq!(DecoderInstruction::parse(bytes).unwrap(), Some((i, bytes.len())));
            assert_eq!(DecoderInstruction::parse(&bytes[..bytes.len() - 1]).unwrap(), None);
        }
        let mut b = vec![0xff];
        b.extend([0xff; 12]);
        assert_eq!(DecoderInstruction::parse(&b).unwrap_err().code(), super::super::QPACK_DECODER_STREAM_ERROR);
    }
}
