//! Sans-I/O QUIC: RFC 9000 (transport), RFC 9001 (TLS), RFC 9002 (recovery),
//! RFC 9369 (QUIC v2), RFC 9221 (datagrams).
//!
//! Nothing in this crate touches a socket, reads a clock or spawns a thread:
//! bytes and time come in as arguments, bytes and deadlines go out. Decoding
//! borrows from the input; encoding writes into buffers the caller owns.
//!
//! Layout:
//! - [`varint`], [`codec`]: variable-length integers and the read/write cursors.
//! - [`packet`]: packet headers (long, short, Retry, Version Negotiation),
//!   packet numbers, coalesced datagrams.
//! - [`frame`]: every frame of RFC 9000 §19 plus DATAGRAM.
//! - [`transport_params`]: RFC 9000 §18 transport parameters.
//! - [`crypto`]: Initial secrets, AEAD packet protection, header protection,
//!   key update, Retry integrity (ring, in place).
//! - [`error`]: the error type and the transport error codes it maps to.

pub mod cid;
pub mod codec;
pub mod crypto;
pub mod error;
pub mod frame;
pub mod packet;
pub mod transport_params;
pub mod varint;
pub mod version;

pub use cid::{ConnectionId, ResetToken, MAX_CID_SIZE};
pub use error::{Error, TransportErrorCode};
pub use varint::VarInt;
pub use version::Version;
pub mod range_set;
pub mod recovery;
pub mod stream;
pub mod cid_gen;
pub mod qlog;
pub mod rand;
pub mod token;
pub mod tls;
pub mod connection;
pub mod config;
pub mod endpoint;
pub mod fast_hash;
