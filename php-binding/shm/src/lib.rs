//! Shared-memory TLS session cache for fork-per-core PHP workers.
//!
//! The PHP extension creates one [`ShmRegion`] at module startup, *before*
//! `pcntl_fork`, sized by the INI setting `quicpro.shm_size` (default 65536).
//! Every forked worker inherits the mapping and builds its rustls server
//! configuration with a [`SharedSessionCache`] as `session_storage` (0-RTT
//! on: stateful tickets) or a [`SharedTicketer`] as `ticketer` (0-RTT off:
//! stateless tickets). Either way a client that got a ticket from one worker
//! resumes on any other, which is what keeps resumption and 0-RTT working
//! when `SO_REUSEPORT` spreads a client's connections over the workers.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use quicpro_shm::{SharedSessionCache, SharedTicketer, ShmRegion, DEFAULT_SHM_SIZE};
//!
//! // Module startup, before pcntl_fork (size from `quicpro.shm_size`):
//! let region = ShmRegion::create(DEFAULT_SHM_SIZE)?;
//!
//! // In each worker, when building the server's TLS configuration:
//! # let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
//! # let cert = ck.cert.der().clone();
//! # let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
//! let mut tls = quic_core::tls::ServerTlsOptions::new(vec![cert], key, &[b"h3"]);
//! if tls.early_data {
//!     tls.session_storage = Some(Arc::new(SharedSessionCache::new(&region)));
//! } else {
//!     tls.ticketer = Some(Arc::new(SharedTicketer::new(&region)));
//! }
//! let server_config = tls.build()?;
//! # let _ = server_config;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! ```text
//! offset 0      Header (576 bytes, repr(C), cache-line aligned parts)
//!               ├ Geometry: magic "QPSHMLRU", layout version, region size,
//!               │           slot size, slot count, bucket count, offsets,
//!               │           128-bit hash seed          + checksum of those
//!               ├ robust process-shared pthread mutex   (own cache line)
//!               ├ table state: LRU head/tail, free list head, dirty flag,
//!               │              entry count, use clock
//!               ├ stats: atomic counters (see CacheStats)
//!               └ ticket keys: current + previous (id, created, 32-byte
//!                              key) + keyed checksum
//! buckets_off   [u32; bucket_count]   hash index heads (power of two,
//!                                     load factor <= 1)
//! slots_off     slot_count x slot_size bytes:
//!               48-byte slot header (state, key/value lengths, key hash,
//!               hash-chain link, LRU prev/next, use stamp, checksum)
//!               followed by key bytes then value bytes
//! ```
//!
//! # Capacity
//!
//! Slots are [`DEFAULT_SLOT_SIZE`] = 256 bytes: 208 bytes for key + value.
//! rustls 0.23 with quicpro's `ServerTlsOptions` (TLS 1.3, ALPN "h3") stores
//! a 32-byte key and a value of 59 + SNI-length bytes (SHA-256 suites;
//! measured 68 bytes for "localhost") or 16 more with SHA-384, so every
//! session whose server name is up to 101 bytes fits. Longer values are
//! refused (`put` returns false, counted in [`CacheStats::oversized`]);
//! [`ShmRegion::create_with_slot_size`] with 416 fits the longest legal DNS
//! name. A region holds `(size - 576 - index) / slot_size` entries, where
//! the index costs 4 bytes per bucket:
//!
//! | `quicpro.shm_size` | entries |
//! |--------------------|---------|
//! | 65536 (default)    | 249     |
//! | 1 MiB              | 4 029   |
//! | 16 MiB             | 64 509  |
//!
//! ([`ShmRegion::entries_for`] computes it; a full handshake stores two
//! tickets, so 64 KiB remembers the last ~124 clients.) Sizes that cannot
//! hold the header, the index and [`MIN_ENTRIES`] slots are rejected with
//! [`ShmError::TooSmall`].
//!
//! # Guarantees
//!
//! * **One lock, every operation.** A robust, process-shared pthread mutex
//!   (`PTHREAD_PROCESS_SHARED` + `PTHREAD_MUTEX_ROBUST`) guards the index,
//!   the LRU list, the slots and the ticket keys. Lookups also move the
//!   entry to the LRU head, so they take it too. Waiting is bounded
//!   ([`DEFAULT_LOCK_TIMEOUT`], per process via
//!   [`ShmRegion::set_lock_timeout`]); on timeout the operation is a miss (or
//!   a refused put) and counts in [`CacheStats::lock_failures`].
//! * **A dead holder does not wedge the others.** If a worker dies holding
//!   the lock, the kernel hands it to the next locker with `EOWNERDEAD`; that
//!   locker calls `pthread_mutex_consistent`, counts a lock recovery, and
//!   treats everything the dead holder might have touched as suspect: it
//!   rebuilds the hash index, the LRU order (from per-slot use stamps) and
//!   the free list from the slots alone, keeping only slots marked used
//!   whose checksum verifies. A slot the holder was writing is in the
//!   WRITING state or fails its checksum, so it is dropped and counted in
//!   [`CacheStats::corrupt_entries`]. The same rebuild runs when a holder
//!   left the dirty flag set or any operation meets a link that cannot be
//!   right (out of range, wrong back-pointer, a walk longer than the table).
//! * **Entries are never returned damaged.** Each entry carries a keyed
//!   checksum over its lengths, key hash, key and value, verified on every
//!   hit; a mismatch drops the entry and the lookup is a miss.
//! * **A damaged header is not trusted.** Every operation first compares the
//!   shared header with the geometry this process recorded at creation
//!   (inherited through fork, so it cannot have been scribbled on through
//!   the mapping) and checks its checksum ([`ShmRegion::validate`] does the
//!   same without the lock). If they differ, the operation is a miss, the
//!   event is counted, and — since it holds the lock and knows the true
//!   geometry — it rewrites the header and empties the table (entries in a
//!   region whose header was overwritten are not worth the risk). Address
//!   arithmetic never uses values read from the region: indices are range
//!   checked against the process-local geometry. The one thing that cannot
//!   be validated is the mutex word itself; a damaged mutex shows up as lock
//!   timeouts or errors, i.e. misses, never as a hang.
//! * **`take` is single use across processes.** Removal happens under the
//!   lock, so of concurrent `take`s of one key in any number of workers
//!   exactly one gets the session. rustls' TLS 1.3 server uses `take` to
//!   redeem stateful tickets, which is what limits 0-RTT replay: RFC 8446
//!   §8 (and §8.1, single-use tickets) requires that early data is accepted
//!   at most once per ticket, and with per-worker caches a replayed
//!   ClientHello sent to a different worker would be accepted again.
//!
//! # Processes and threads
//!
//! The handle types are `Send + Sync`; any thread of any process that
//! inherited the mapping may use them. Everything in the region is either
//! guarded by the mutex or atomic. The index hash and checksums are keyed
//! with a random per-region seed and computed with the standard library's
//! SipHash, which is identical in all processes because they are forks of
//! one binary (do not share a region across different builds or `exec`).

mod cache;
mod error;
mod hash;
mod layout;
mod lock;
mod region;
mod stats;
mod table;
mod ticketer;

pub use cache::{SharedSessionCache, TraceHook};
pub use error::{Corruption, ShmError};
pub use layout::{DEFAULT_SLOT_SIZE, LAYOUT_VERSION, MAGIC, MAX_REGION_SIZE, MAX_SLOT_SIZE, MIN_ENTRIES, MIN_SLOT_SIZE, SLOT_HEADER_SIZE};
pub use region::{LayoutInfo, ShmRegion, DEFAULT_LOCK_TIMEOUT};
pub use stats::{CacheStats, TraceEvent, TraceOp, TraceOutcome};
pub use table::Consistency;
pub use ticketer::{SharedTicketer, KEY_RETIRE_SECS, ROTATE_AFTER_SECS, TICKET_LIFETIME_SECS};

/// The `quicpro.shm_size` default.
pub const DEFAULT_SHM_SIZE: usize = 65536;
