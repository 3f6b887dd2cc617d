//! The drivers that move datagrams between sockets and the sans-I/O
//! `quic-core` endpoints, fast: batched system calls, GSO/GRO, ECN and
//! local-address ancillary data, busy polling.
//!
//! - [`backend`]: the [`Backend`] trait every driver implements (epoll,
//!   busy-poll, io_uring and AF_XDP) and its types.
//! - [`udp`]: kernel UDP socket setup, cmsg building/parsing, recvmmsg and
//!   sendmmsg batches.
//! - [`epoll`], [`busy_poll`], [`uring`]: the kernel-UDP drivers.
//! - [`xdp`]: the AF_XDP driver and the XDP program that feeds it.
//! - [`select`]: which driver a worker runs, from `QUICPRO_BACKEND`,
//!   `QUICPRO_XDP` and `QUICPRO_BUSY_POLL`.
//! - [`qlog_spool`]: qlog files written by a thread of their own, off the
//!   packet path.
//! - [`runtime`]: the per-worker loop (endpoint, HTTP/3 layers, backend).
//!
//! Linux only: the options used (UDP_SEGMENT, UDP_GRO, IP_PKTINFO,
//! SO_BUSY_POLL, epoll, io_uring) have no portable equivalent.

pub mod backend;
pub mod busy_poll;
pub mod epoll;
pub mod qlog_spool;
pub mod select;
pub mod udp;
pub mod uring;
pub mod xdp;

pub use backend::{datagrams, Backend, BackendError, BackendKind, BackendStats, Capabilities, Interest, Readiness, RecvBatch, RecvEntry, RecvMeta, Transmit};
pub use busy_poll::{BusyPollBackend, BusyPollConfig, BusyPollReport, OptOutcome};
pub use epoll::EpollBackend;
pub use select::{choose, open, BackendConfig, Choice};
pub use udp::{UdpConfig, UdpSocketInfo};
pub use uring::{UringBackend, UringConfig, UringStats};
pub mod runtime;
