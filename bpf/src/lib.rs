//! eBPF programs and their loaders.
//!
//! - [`xdp`]: the XDP program that hands QUIC packets to the AF_XDP socket
//!   of the worker bound to the queue they arrived on, and checks that their
//!   connection ID names that worker.

pub mod xdp;
