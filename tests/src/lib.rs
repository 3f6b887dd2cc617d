//! Helpers shared by the integration tests: locating `../shared/data`, hex.

#![allow(missing_debug_implementations)]
// Test support: a failed setup step should fail the test loudly.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

/// The shared test-data folder (`shared/data` beside the repository), or
/// `QUICPRO_SHARED_DATA` when set.
pub fn shared_data() -> PathBuf {
    if let Ok(p) = std::env::var("QUICPRO_SHARED_DATA") {
        return PathBuf::from(p);
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    repo.join("..").join("shared").join("data")
}

pub fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s.trim()).unwrap_or_else(|e| panic!("bad hex in test data: {e}"))
}

pub mod h3_app;
pub mod h3x_echo;
pub mod netns;
pub mod pair;
pub mod pypeer;
pub mod qlog_sink;
pub mod sim;
pub mod udp;
