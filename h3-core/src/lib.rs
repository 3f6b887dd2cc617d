//! Sans-I/O HTTP/3 (RFC 9114) and QPACK with the dynamic table (RFC 9204),
//! running over `quic-core`'s stream API.
//!
//! Not written yet: this crate will hold the H3 frame codec, QPACK (static
//! table, Huffman, dynamic table, encoder/decoder streams) and the client and
//! server connection state machines. See issue "h3-core".

pub mod error;
pub mod frame;
pub mod message;
pub mod settings;
pub mod stream_type;
pub mod qpack;
