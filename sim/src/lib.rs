//! Test support that depends only on the sans-I/O cores, so `cargo test -p
//! quic-core` and `-p h3-core` run whole connections:
//!
//! - [`link`]: a one-way simulated link (delay, jitter, bandwidth and queue,
//!   random and burst loss, reordering, duplication, corruption, MTU,
//!   blackholes) and the interop runner's scenarios built from it — the one
//!   impairment model, shared with the interop relay on real sockets;
//! - [`pair`]: a client and a server endpoint on simulated time across two
//!   links, driven through the endpoints' own `handle` / `handle_timeout` /
//!   `poll_transmit` / `poll_timeout`;
//! - [`h3_pair`]: the HTTP/3 layers of both sides on top of a pair;
//! - [`tls`]: TLS whose randomness and clock are injected, for runs that
//!   replay byte for byte;
//! - [`qlog_sink`]: a qlog destination a test reads back;
//! - [`data`]: the shared test data folder.

#![allow(missing_debug_implementations)]
// Test support: a failed setup step should fail the test loudly.
#![allow(clippy::unwrap_used)]

pub mod data;
pub mod h3_pair;
pub mod link;
pub mod pair;
pub mod qlog_sink;
pub mod tls;
