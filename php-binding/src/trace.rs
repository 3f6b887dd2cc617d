//! `QP_TRACE=1`: trace lines on stderr (connections, handshakes, ticket
//! cache lookups) and a qlog file per connection in `QP_QLOG_DIR`
//! (default `/tmp/quicpro-qlog`).

use std::path::PathBuf;
use std::sync::OnceLock;

fn enabled_env() -> bool {
    matches!(std::env::var("QP_TRACE").as_deref(), Ok("1") | Ok("true") | Ok("yes"))
}

/// Read once per process: tracing is decided at start, not per call.
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(enabled_env)
}

pub fn event(msg: &str) {
    if enabled() {
        eprintln!("[quicpro pid {}] {msg}", std::process::id());
    }
}

/// Where qlog files go when tracing is on.
pub fn qlog_dir() -> Option<PathBuf> {
    if !enabled() {
        return None;
    }
    let dir = std::env::var_os("QP_QLOG_DIR").map_or_else(|| PathBuf::from("/tmp/quicpro-qlog"), PathBuf::from);
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir)
}
