//! The quicpro PHP extension (ext-php-rs): HTTP/3 servers and clients for
//! plain PHP programs.
//!
//! - [`config`]: `Quicpro\Config` (validated options).
//! - [`server`]: `Quicpro\Server`, `Quicpro\Session`, `Quicpro\Stream` and
//!   the Fiber-aware wait that lets one process serve thousands of sessions.
//! - [`client`]: `Quicpro\ClientSession` and the `quicpro_*` functions.
//! - [`errors`]: the exception tree under `Quicpro\Exception\QuicproException`.
//! - [`shm`]: the shared-memory TLS session LRU, mapped at module startup
//!   (INI `quicpro.shm_size`) before any `pcntl_fork`.
//! - [`signals`], [`trace`], [`fiber`], [`headers`]: the plumbing.
//!
//! Network input never reaches PHP unvalidated: everything below the PHP
//! objects is the same quic-core/h3-core stack the CLI runs.

/// mimalloc for the extension's Rust allocations (PHP's own memory stays on
/// the Zend allocator): glibc's bins (`_int_malloc`, `_int_free`,
/// `unlink_chunk`, `malloc_consolidate`) took 15 % of a keep-alive PHP
/// server's CPU under the load benchmark. Every allocation is freed by the
/// side that made it, so the two allocators never see each other's blocks.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use ext_php_rs::binary::Binary;
use ext_php_rs::flags::IniEntryPermission;
use ext_php_rs::prelude::*;
use ext_php_rs::types::{ZendClassObject, ZendHashTable, Zval};
use ext_php_rs::zend::{ExecutorGlobals, IniEntryDef, IniEntryDefs, ModuleEntry};
use ext_php_rs::{info_table_end, info_table_row, info_table_start};

extern "C" {
    /// php-src main/php_ini.c: prints a module's INI entries in phpinfo().
    fn display_ini_entries(module: *mut ModuleEntry);
}

pub mod client;
pub mod client_loop;
pub mod config;
pub mod errors;
pub mod fiber;
pub mod headers;
pub mod server;
pub mod shm;
pub mod signals;
pub mod trace;

/// Default of `quicpro.shm_size`, as the tuning table of the documents says.
const DEFAULT_SHM_SIZE: usize = 65536;

static INI_ENTRIES: IniEntryDefs<2> = IniEntryDefs::new([
    // System-level: the region is mapped once at startup, before workers fork.
    IniEntryDef::new(c"quicpro.shm_size", c"65536", IniEntryPermission::System),
    IniEntryDef::end(),
]);

fn shm_size_setting() -> usize {
    ExecutorGlobals::get().ini_values().get("quicpro.shm_size").and_then(|v| v.as_deref()).and_then(parse_size).unwrap_or(DEFAULT_SHM_SIZE)
}

/// `65536`, `64K`, `16M`, `1G` (the shorthand php.ini uses).
fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1024),
        'm' | 'M' => (&s[..s.len() - 1], 1024 * 1024),
        'g' | 'G' => (&s[..s.len() - 1], 1024 * 1024 * 1024),
        _ => (s, 1),
    };
    num.trim().parse::<usize>().ok()?.checked_mul(mult)
}

fn startup(_ty: i32, mod_num: i32) -> i32 {
    IniEntryDef::register(INI_ENTRIES.as_slice(), mod_num);
    shm::init(shm_size_setting());
    if let Err(e) = errors::register_classes() {
        eprintln!("quicpro: cannot register exception classes: {e}");
        return 1; // FAILURE
    }
    0
}

/// `php -i` / `phpinfo()`. Called by the engine with its module entry.
#[allow(clippy::not_unsafe_ptr_arg_deref)] // an engine callback: the pointer is the engine's own
pub extern "C" fn php_module_info(_module: *mut ModuleEntry) {
    info_table_start!();
    info_table_row!("quicpro", "enabled");
    info_table_row!("version", env!("CARGO_PKG_VERSION"));
    info_table_row!("HTTP/3 / QUIC", "RFC 9114 / RFC 9000, v1 and v2");
    let size = shm_size_setting().to_string();
    info_table_row!("shared ticket cache size (quicpro.shm_size)", size.as_str());
    match shm::error() {
        None => {
            let cap = shm::capacity().to_string();
            info_table_row!("shared ticket cache entries", cap.as_str());
            if let Some(s) = shm::stats() {
                let line = format!("{} stored, {} hits, {} misses, {} evictions", s.entries, s.hits, s.misses, s.evictions);
                info_table_row!("shared ticket cache use", line.as_str());
            }
        }
        Some(e) => info_table_row!("shared ticket cache", e.as_str()),
    }
    let backend = std::env::var("QUICPRO_BACKEND").unwrap_or_else(|_| "auto (io_uring, epoll fallback)".into());
    info_table_row!("I/O backend (QUICPRO_BACKEND)", backend.as_str());
    info_table_end!();
    // SAFETY: the engine's own INI table printer, given the module entry
    // the engine passed us.
    unsafe { display_ini_entries(_module) };
}

/// The message of the last error (exception or failed call) in this
/// process, `""` if none.
#[php_function]
pub fn quicpro_get_last_error() -> String {
    errors::last_error().1
}

/// The `QUICPRO_ERR_*` code of the last error, 0 if none.
#[php_function]
pub fn quicpro_get_last_error_code() -> i64 {
    errors::last_error().0
}

/// Forgets the last error.
#[php_function]
pub fn quicpro_clear_last_error() {
    errors::clear_last_error();
}

/// The extension version.
#[php_function]
pub fn quicpro_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// Shared ticket cache counters (entries, hits, misses, takes, evictions,
/// oversized, corrupt_entries, lock_recoveries); empty if unavailable.
#[php_function]
pub fn quicpro_shm_stats() -> std::collections::HashMap<String, i64> {
    let mut m = std::collections::HashMap::new();
    if let Some(s) = shm::stats() {
        for (k, v) in [
            ("entries", s.entries),
            ("capacity", s.capacity),
            ("inserts", s.inserts),
            ("hits", s.hits),
            ("misses", s.misses),
            ("takes", s.takes),
            ("evictions", s.evictions),
            ("oversized", s.oversized),
            ("corrupt_entries", s.corrupt_entries),
            ("lock_recoveries", s.lock_recoveries),
            ("tickets_issued", s.tickets_issued),
            ("tickets_accepted", s.tickets_accepted),
        ] {
            m.insert(k.to_string(), v as i64);
        }
    }
    m
}

// ---- the procedural client API of the documents ----

/// Opens an HTTP/3 connection to `$host:$port` (TLS certificate checked
/// against `ca_file`, `SSL_CERT_FILE` or the system roots unless
/// `verify_peer` is false). Returns once requests can be sent.
#[php_function]
pub fn quicpro_connect(host: &str, port: i64, config: Option<&ZendClassObject<config::Config>>) -> PhpResult<client::ClientSession> {
    client::ClientSession::__construct(host, port, config)
}

/// Sends a request on `$s`; returns the stream id for
/// `quicpro_receive_response`. A body makes it a POST unless `$method` says
/// otherwise.
#[php_function]
pub fn quicpro_send_request(
    s: &ZendClassObject<client::ClientSession>,
    path: &str,
    headers: Option<&ZendHashTable>,
    body: Option<Binary<u8>>,
    method: Option<String>,
) -> PhpResult<i64> {
    s.request(path, headers, body, method)
}

/// The response of request `$id` as an array (`status`, `headers`,
/// `body`, `trailers`) once it is complete, else false. Call
/// `quicpro_poll` between tries.
#[php_function]
pub fn quicpro_receive_response(s: &ZendClassObject<client::ClientSession>, id: i64) -> PhpResult<Zval> {
    s.response(id)
}

/// Drives `$s` for at most `$timeout_ms` milliseconds (inside a
/// `Quicpro\Loop` Fiber: suspends the Fiber until `$s` has news or the
/// time is up).
#[php_function]
pub fn quicpro_poll(s: &ZendClassObject<client::ClientSession>, timeout_ms: i64) -> PhpResult<bool> {
    s.poll(timeout_ms)
}

/// Waits for the whole response of request `$id` and returns it (the
/// array of `quicpro_receive_response`). Inside a `Quicpro\Loop` Fiber the
/// Fiber is suspended meanwhile and other Fibers run.
#[php_function]
pub fn quicpro_await(s: &ZendClassObject<client::ClientSession>, id: i64) -> PhpResult<Zval> {
    s.await_(id)
}

/// One turn of the process's client endpoint, waiting at most
/// `$timeout_ms` (0: only what is due); returns how many sessions had
/// news. What an event loop calls when `quicpro_stream()` is readable.
#[php_function]
pub fn quicpro_client_poll(timeout_ms: Option<i64>) -> PhpResult<i64> {
    let wait = std::time::Duration::from_millis(timeout_ms.unwrap_or(0).clamp(0, 60_000) as u64);
    Ok(client::with_hub(|h| h.poll_all(wait))? as i64)
}

/// A read-only PHP stream that is readable whenever the process's client
/// endpoint (IPv4, or IPv6 with `$ipv6`) has work: a datagram, a timer
/// due, or news for a session. Watch it with `stream_select` or an event
/// loop's `onReadable`, and call `quicpro_client_poll(0)` when it fires.
/// (CLI only: PHP opens the descriptor through `php://fd`.)
#[php_function]
pub fn quicpro_stream(ipv6: Option<bool>) -> PhpResult<Zval> {
    let fd = client::with_hub(|h| h.notifier(usize::from(ipv6.unwrap_or(false))))?;
    Ok(client::fd_stream(fd)?)
}

/// Closes `$s`.
#[php_function]
pub fn quicpro_close(s: &ZendClassObject<client::ClientSession>) -> bool {
    s.close();
    true
}

/// Whether `$s` resumed an earlier TLS session (what `curl -v` shows as
/// "TLS session resumed").
#[php_function]
pub fn quicpro_is_resumed(s: &ZendClassObject<client::ClientSession>) -> bool {
    s.is_resumed()
}

/// Moves `$s` to a new local port (active migration, RFC 9000 §9.2);
/// returns the new local address.
#[php_function]
pub fn quicpro_migrate(s: &ZendClassObject<client::ClientSession>) -> PhpResult<String> {
    s.migrate()
}

#[php_module]
#[php(startup = startup)]
pub fn get_module(module: ModuleBuilder<'_>) -> ModuleBuilder<'_> {
    let mut m = module
        .info_function(php_module_info)
        .class::<config::Config>()
        .class::<server::Server>()
        .class::<server::Session>()
        .class::<server::Stream>()
        .class::<client::ClientSession>()
        .class::<client_loop::Loop>()
        .function(wrap_function!(quicpro_version))
        .function(wrap_function!(quicpro_get_last_error))
        .function(wrap_function!(quicpro_get_last_error_code))
        .function(wrap_function!(quicpro_clear_last_error))
        .function(wrap_function!(quicpro_shm_stats))
        .function(wrap_function!(quicpro_connect))
        .function(wrap_function!(quicpro_send_request))
        .function(wrap_function!(quicpro_receive_response))
        .function(wrap_function!(quicpro_poll))
        .function(wrap_function!(quicpro_await))
        .function(wrap_function!(quicpro_client_poll))
        .function(wrap_function!(quicpro_stream))
        .function(wrap_function!(quicpro_close))
        .function(wrap_function!(quicpro_is_resumed))
        .function(wrap_function!(quicpro_migrate));
    for kind in errors::ErrorKind::ALL {
        m = m.constant((kind.constant_name(), kind.code(), &[]));
    }
    m
}
