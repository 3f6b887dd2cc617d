//! Support of the tests against real peers and real sockets: the HTTP/3
//! test application and its UDP loops, the extended CONNECT echo server,
//! network namespaces, Python peers. Simulated-time harnesses live in
//! `quicpro-sim`, beside the cores.

#![allow(missing_debug_implementations)]
// Test support: a failed setup step should fail the test loudly.
#![allow(clippy::unwrap_used)]

pub mod certs;
pub mod conformance;
pub mod h3_app;
pub mod h3x_echo;
pub mod netns;
pub mod pypeer;
pub mod udp;
