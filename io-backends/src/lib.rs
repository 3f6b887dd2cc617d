//! The drivers that pump `quic-core` endpoints with real datagrams: epoll,
//! io_uring, busy-poll and AF_XDP, with GSO/GRO and batched syscalls, plus the
//! per-worker runtime loop.
//!
//! Not written yet: selection will follow `QUICPRO_XDP` (interface name) and
//! `QUICPRO_BUSY_POLL` (µs) as the product documents describe.
