//! eBPF programs (XDP steering of QUIC packets by connection ID to per-core
//! AF_XDP queues; SO_REUSEPORT steering by connection ID) and their loader.
//!
//! Not written yet: the C programs will live in `bpf/src/*.bpf.c`, built with
//! clang at compile time and loaded with libbpf-rs.
