//! QPACK: field compression for HTTP/3 (RFC 9204), sans-I/O.
//!
//! The [`Encoder`] and [`Decoder`] never touch a stream themselves. They
//! consume and produce bytes for three kinds of data, which the HTTP/3
//! connection moves:
//!
//! * encoded field sections (the payload of HEADERS frames);
//! * the encoder stream (unidirectional stream type 0x02, RFC 9204 §4.2),
//!   carrying [encoder instructions](crate::qpack::instructions) from encoder
//!   to decoder;
//! * the decoder stream (type 0x03), carrying decoder instructions back.
//!
//! Building blocks, usable on their own: [`prefix_int`] (RFC 7541 §5.1
//! integers), [`huffman`] (RFC 7541 Appendix B), [`static_table`]
//! (RFC 9204 Appendix A) and [`table`] (the dynamic table, RFC 9204 §3.2).

pub mod decoder;
pub mod encoder;
mod error;
mod field;
pub mod huffman;
pub mod instructions;
pub mod prefix_int;
mod section_cache;
pub mod static_table;
pub mod string;
pub mod table;

pub use decoder::{DecodeResult, Decoder, DecoderConfig};
pub use encoder::{Encoder, EncoderConfig, SetCapacityError};
pub use error::{QpackError, QpackErrorKind, QPACK_DECODER_STREAM_ERROR, QPACK_DECOMPRESSION_FAILED, QPACK_ENCODER_STREAM_ERROR};
pub use field::HeaderField;

#[cfg(test)]
mod tests;

/// Per-entry overhead in the dynamic table size (RFC 9204 §3.2.1).
pub const ENTRY_OVERHEAD: u64 = 32;
