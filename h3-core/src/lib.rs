//! Sans-I/O HTTP/3 (RFC 9114) and QPACK with the dynamic table (RFC 9204),
//! running over `quic-core`'s stream API.
//!
//! - [`frame`]: incremental HTTP/3 frame decoding (DATA streams through
//!   without buffering) and encoding; [`settings`]; [`stream_type`].
//! - [`message`]: request/response validation (RFC 9114 §4).
//! - [`qpack`]: QPACK encoder and decoder with the dynamic table, Huffman,
//!   blocked streams, and bounds against decompression bombs.
//! - [`error`]: H3 and QPACK error codes.
//! - [`datagram`]: HTTP/3 datagrams (RFC 9297 §2); [`capsule`]: the Capsule
//!   Protocol (RFC 9297 §3).
//! - [`connection`]: the HTTP/3 connection over a quic-core connection:
//!   control and QPACK streams, request streams, GOAWAY, extended CONNECT,
//!   datagrams and capsules.
//!
//! `examples/h3_get.rs` serves and fetches a page over plain UDP sockets;
//! `tests/h3_pair.rs` and `tests/h3_extended_connect.rs` run both layers
//! over simulated connections (the `quicpro-sim` crate).

// The protocol core handles untrusted input and needs no unsafe code.
#![forbid(unsafe_code)]

pub mod capsule;
pub mod connection;
pub mod datagram;
pub mod error;
pub mod frame;
pub mod message;
pub mod priority;
pub mod qpack;
pub mod settings;
pub mod stream_type;
