//! `QP_TRACE=1`: trace lines on stderr (connections, handshakes, ticket
//! cache lookups) and a qlog file per connection in `QP_QLOG_DIR`
//! (default `/tmp/quicpro-qlog`).
//!
//! Independently of `QP_TRACE`, the extension carries SystemTap SDT
//! tracepoints (provider `quicpro`) that cost a no-op when nobody listens:
//! `perf buildid-cache --add quicpro.so && perf list 'sdt_quicpro:*'`, then
//! `perf record -e sdt_quicpro:ticket_cache ...`.
//!
//! | probe | arguments |
//! |---|---|
//! | `ticket_cache` | op (0 put, 1 get, 2 take), hit (1/0), key length |
//! | `handshake_done` | worker id, resumed (1/0) |
//! | `session_accept` | worker id, QUIC stream id of the first request |
//! | `session_close` | worker id, graceful (1/0) |

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

/// A ticket-cache operation, for the `ticket_cache` tracepoint and QP_TRACE.
pub fn ticket_cache(ev: &quicpro_shm::TraceEvent) {
    let op: isize = match ev.op {
        quicpro_shm::TraceOp::Put => 0,
        quicpro_shm::TraceOp::Get => 1,
        _ => 2,
    };
    let hit: isize = matches!(ev.outcome, quicpro_shm::TraceOutcome::Hit | quicpro_shm::TraceOutcome::Stored) as isize;
    probe::probe!(quicpro, ticket_cache, op, hit, ev.key_len as isize);
    if enabled() {
        event(&format!("ticket cache {ev}"));
    }
}

pub fn handshake_done(worker: u8, resumed: bool) {
    probe::probe!(quicpro, handshake_done, worker as isize, resumed as isize);
}

pub fn session_accept(worker: u8, stream: u64) {
    probe::probe!(quicpro, session_accept, worker as isize, stream as isize);
}

pub fn session_close(worker: u8, graceful: bool) {
    probe::probe!(quicpro, session_close, worker as isize, graceful as isize);
}

/// A qlog file for a client connection (`qlog_dir`, or `QP_TRACE=1`):
/// `client-<pid>-<n>.sqlog` in `dir`, written by a spool thread of this
/// process (started on first use, again in a forked child).
pub fn enable_client_qlog(conn: &mut quic_core::connection::Connection, dir: &std::path::Path, n: usize) {
    use std::cell::RefCell;
    thread_local! {
        static SPOOL: RefCell<Option<(u32, io_backends::qlog_spool::QlogSpool)>> = const { RefCell::new(None) };
    }
    let pid = std::process::id();
    SPOOL.with(|s| {
        let mut s = s.borrow_mut();
        if s.as_ref().is_none_or(|(p, _)| *p != pid) {
            // A parent's spool thread does not exist in a forked child.
            if let Some((_, old)) = s.take() {
                std::mem::forget(old);
            }
            match io_backends::qlog_spool::QlogSpool::start() {
                Ok(spool) => *s = Some((pid, spool)),
                Err(e) => {
                    event(&format!("client qlog disabled: {e}"));
                    return;
                }
            }
        }
        if let Some((_, spool)) = s.as_ref() {
            let _ = std::fs::create_dir_all(dir);
            conn.enable_qlog(Box::new(spool.sink(dir.join(format!("client-{pid}-{n}.sqlog")))), std::time::Instant::now());
        }
    });
}
