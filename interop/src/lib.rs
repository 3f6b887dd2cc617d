//! The local interop runner (`cargo run --release -p quicpro-interop --bin interop`).
//!
//! - [`pcap`]: the trace format the relay writes and the analyzer reads
//!   (libpcap, raw IP, synthesized IPv4/IPv6 + UDP headers carrying ECN).
//! - [`relay`]: a user-space UDP relay between a client and a server that
//!   applies the interop runner's network scenarios (delay, bandwidth,
//!   queue, loss and corruption with burst caps, drop lists, blackholes,
//!   NAT rebinding) deterministically by seed, recording both sides.
//! - [`analyze`]: reads the two traces (and a TLS key log) and answers the
//!   runner's checks: handshakes, versions, Retry, ClientHellos, key
//!   phases, ECN, path validation, amplification.
//! - [`cases`], [`peers`], [`certs`], [`run`], [`judge`]: the test cases,
//!   the programs under test, their certificates, one run, its verdict.

pub mod analyze;
pub mod cases;
pub mod certs;
pub mod judge;
pub mod pcap;
pub mod peers;
pub mod relay;
pub mod relay_glue;
pub mod run;
