//! The shared test data (`../shared/data` beside the repository): test
//! vectors, captured Initials, QPACK interop files.

use std::path::PathBuf;

/// The shared test-data folder, or `QUICPRO_SHARED_DATA` when set.
pub fn shared_data() -> PathBuf {
    if let Ok(p) = std::env::var("QUICPRO_SHARED_DATA") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("..").join("shared").join("data")
}

/// Bytes from hex test data; panics on malformed data (a broken fixture).
pub fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s.trim()).unwrap_or_else(|e| panic!("bad hex in test data: {e}"))
}
