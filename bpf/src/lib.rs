//! eBPF programs that steer QUIC packets by connection ID, and their loaders.
//!
//! - [`reuseport`]: an `SK_REUSEPORT` program for the kernel-socket path.
//!   Workers bind one UDP socket each to the same port with SO_REUSEPORT;
//!   the program reads the worker ID our connection IDs carry
//!   (`quic_core::cid_gen`) and delivers each datagram to that worker's
//!   socket, so a client that changes address keeps reaching the worker
//!   owning its connection.
//! - [`xdp`]: the XDP program that hands QUIC packets to the AF_XDP socket
//!   of the worker bound to the queue they arrived on, and checks that their
//!   connection ID names that worker (the AF_XDP backend in io-backends).
//! - [`error`]: [`BpfError`], with the way to run without steering in every
//!   message.
//!
//! The C programs live in `src/bpf/*.bpf.c`; `build.rs` compiles each with
//! clang into `$OUT_DIR/<name>.bpf.o` and the loaders embed the objects.
//! Linux only; loading needs CAP_BPF and CAP_NET_ADMIN (or root).

pub mod error;
pub mod reuseport;
pub mod xdp;

pub use error::BpfError;
pub use reuseport::{CidLayout, ReuseportCounters, ReuseportGroup};
