//! The fuzz targets as plain functions.
//!
//! Each module's `run` is one target: `fuzz_targets/<name>.rs` hands it to
//! libFuzzer, and `tests/replay.rs` runs every committed corpus file and
//! every past crash input through it without libFuzzer, so `cargo test`
//! catches a regression on any input a campaign ever kept.

pub mod common;

pub mod client_after_handshake;
pub mod frames;
pub mod h3_capsules;
pub mod h3_frames;
pub mod h3_server_streams;
pub mod handshake_hostile;
pub mod header_protection;
pub mod packet_header;
pub mod pair_sequence;
pub mod qpack_decode;
pub mod server_endpoint;
pub mod transport_params;
pub mod varint;

/// One fuzz target: its cargo-fuzz name and its entry point.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

/// Every target, by the name `cargo fuzz list` gives it.
pub const TARGETS: &[Target] = &[
    Target { name: "client_after_handshake", run: client_after_handshake::run },
    Target { name: "frames", run: frames::run },
    Target { name: "h3_capsules", run: h3_capsules::run },
    Target { name: "h3_frames", run: h3_frames::run },
    Target { name: "h3_server_streams", run: h3_server_streams::run },
    Target { name: "handshake_hostile", run: handshake_hostile::run },
    Target { name: "header_protection", run: header_protection::run },
    Target { name: "packet_header", run: packet_header::run },
    Target { name: "pair_sequence", run: pair_sequence::run },
    Target { name: "qpack_decode", run: qpack_decode::run },
    Target { name: "server_endpoint", run: server_endpoint::run },
    Target { name: "transport_params", run: transport_params::run },
    Target { name: "varint", run: varint::run },
];
