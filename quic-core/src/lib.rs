//! Sans-I/O QUIC: RFC 9000 (transport), RFC 9001 (TLS), RFC 9002 (recovery),
//! RFC 9369 (QUIC v2), RFC 9221 (datagrams).
//!
//! Nothing in this crate touches a socket, reads a clock or spawns a thread:
//! bytes and time come in as arguments, bytes and deadlines go out. Decoding
//! borrows from the input; encoding writes into buffers the caller owns.
//!
//! Layout:
//! - [`endpoint`]: the one surface a driver uses: `handle` (a datagram),
//!   `handle_timeout` / `poll_timeout` (every connection's timers in one
//!   heap), `active` (connections with work this turn), `poll_transmit`
//!   (until `None`), `poll_closed`; it routes datagrams by connection ID
//!   and accepts new connections (Retry, tokens, version negotiation);
//!   [`config`] holds its settings. `examples/udp_echo.rs` drives it over a
//!   `std::net::UdpSocket`; `tests/` runs whole connections on simulated
//!   time (the `quicpro-sim` crate).
//! - [`connection`]: one QUIC connection (handshake, packet spaces and
//!   keys, receive and send paths, paths and migration, ECN, compatible
//!   version negotiation, close).
//! - [`stream`]: stream state, flow control and reassembly; [`range_set`].
//! - [`recovery`]: RFC 9002 loss detection, probes, reordering tolerance,
//!   congestion control (NewReno, CUBIC), pacing, RTT estimation.
//! - [`tls`]: rustls' QUIC API behind our packet keys, version-aware HKDF.
//! - [`crypto`]: Initial secrets, AEAD packet protection, header protection,
//!   key update, Retry integrity (ring, in place).
//! - [`packet`]: packet headers (long, short, Retry, Version Negotiation),
//!   packet numbers, coalesced datagrams; [`frame`]: every frame of
//!   RFC 9000 §19 plus DATAGRAM; [`transport_params`]: RFC 9000 §18.
//! - [`varint`], [`codec`]: variable-length integers and the read/write cursors.
//! - [`cid`], [`cid_gen`]: connection IDs and their generation; [`token`]:
//!   Retry and NEW_TOKEN tokens; [`rand`]: the randomness sources (the OS
//!   CSPRNG; a seeded generator only in tests and with the `sim` feature).
//! - [`qlog`]: qlog JSON-SEQ traces; [`version`]: QUIC versions;
//!   [`fast_hash`]: the hasher of the connection tables.
//! - [`error`]: the error type and the transport error codes it maps to.

// The protocol core handles untrusted input and needs no unsafe code.
#![forbid(unsafe_code)]

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
pub mod cid_gen;
pub mod config;
pub mod connection;
pub mod endpoint;
pub mod fast_hash;
pub mod qlog;
pub mod quic_lb;
pub mod rand;
pub mod range_set;
pub mod recovery;
pub mod stream;
pub mod tls;
pub mod token;
