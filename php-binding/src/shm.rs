//! The process-shared state mapped at module startup, before any
//! `pcntl_fork`: the TLS session LRU (`quicpro_shm`, sized by the INI
//! setting `quicpro.shm_size`) and a small page with the worker-id
//! counter, so each forked worker's `Server` encodes a distinct id in its
//! connection IDs.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use quicpro_shm::{CacheStats, SharedSessionCache, SharedTicketer, ShmRegion, TraceEvent};

struct Shared {
    region: ShmRegion,
    cache: SharedSessionCache,
    ticketer: Arc<SharedTicketer>,
}

static SHARED: OnceLock<Result<Shared, String>> = OnceLock::new();
static COUNTER: OnceLock<usize> = OnceLock::new();

/// Module startup: map the region. An error is kept and reported by
/// `php -i` and by servers that ask for `session_cache` (they fall back to
/// a per-process cache with a warning).
pub fn init(size: usize) {
    let _ = SHARED.get_or_init(|| {
        let region = ShmRegion::create(size).map_err(|e| format!("quicpro.shm_size={size}: {e}"))?;
        let mut cache = SharedSessionCache::new(&region);
        cache.set_trace(|ev: &TraceEvent| crate::trace::ticket_cache(ev));
        let ticketer = Arc::new(SharedTicketer::new(&region));
        Ok(Shared { region, cache, ticketer })
    });
    let _ = COUNTER.get_or_init(|| {
        // SAFETY: a fresh anonymous shared mapping of one page; only ever
        // accessed as one AtomicU32 at its start.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), 4096, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1, 0) };
        if p == libc::MAP_FAILED {
            0
        } else {
            p as usize
        }
    });
}

/// The shared session store, if the region exists.
pub fn session_store() -> Option<Arc<dyn rustls::server::StoresServerSessions>> {
    match SHARED.get() {
        Some(Ok(s)) => Some(Arc::new(s.cache.clone())),
        _ => None,
    }
}

/// The ticketer whose keys live in the region (used when 0-RTT is off).
pub fn ticketer() -> Option<Arc<dyn rustls::server::ProducesTickets>> {
    match SHARED.get() {
        Some(Ok(s)) => Some(s.ticketer.clone()),
        _ => None,
    }
}

pub fn stats() -> Option<CacheStats> {
    match SHARED.get() {
        Some(Ok(s)) => Some(s.cache.stats()),
        _ => None,
    }
}

pub fn error() -> Option<String> {
    match SHARED.get() {
        Some(Err(e)) => Some(e.clone()),
        None => Some("not initialised".into()),
        _ => None,
    }
}

pub fn capacity() -> usize {
    match SHARED.get() {
        Some(Ok(s)) => s.region.layout().slot_count,
        _ => 0,
    }
}

/// A worker id unique among the processes forked from this one (wraps at
/// 256; the id only steers packets, it is not a security boundary).
pub fn next_worker_id() -> u8 {
    match COUNTER.get() {
        Some(&p) if p != 0 => {
            // SAFETY: `p` is the start of the page mapped in `init`, which
            // is never unmapped; AtomicU32 has the alignment of u32.
            let a = unsafe { &*(p as *const AtomicU32) };
            (a.fetch_add(1, Ordering::SeqCst) & 0xff) as u8
        }
        _ => (std::process::id() & 0xff) as u8,
    }
}
