//! SO_REUSEPORT steering by connection ID: the loader of
//! `src/bpf/reuseport.bpf.c`.
//!
//! A [`ReuseportGroup`] owns one loaded program and its three maps: the
//! configuration, the REUSEPORT_SOCKARRAY (slot `i` = worker `i`'s socket)
//! and per-CPU outcome counters. Use:
//!
//! 1. [`ReuseportGroup::new`] once, before the workers start.
//! 2. Each worker binds its UDP socket with SO_REUSEPORT, then calls
//!    [`ReuseportGroup::add_socket`] with its worker ID and
//!    [`ReuseportGroup::attach`] (attaching is per reuseport group, so one
//!    call is enough; repeating it replaces the program with itself).
//!
//! **Fork per core:** create the group in the parent before forking. The
//! map and program descriptors are inherited, so each child binds its
//! socket and calls `add_socket(worker_id, fd)` and `attach(fd)` on its
//! inherited copy; all children update the same kernel map.
//!
//! **Stale sockets:** when a socket closes the kernel clears its slot
//! (`bpf_sk_reuseport_detach`), so packets for that worker fall back to the
//! kernel's hash (counted as `fallback_empty_slot`) instead of being
//! dropped. A restarted set of workers creates a new group, hence a fresh
//! map: nothing from the previous generation steers. Attaching replaces the
//! program of the reuseport group; [`ReuseportGroup::detach`] removes it.

use std::ffi::c_void;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;

use libbpf_rs::{ErrorKind, MapCore, MapFlags, MapHandle, MapType, ObjectBuilder, PrintLevel, ProgramType};

use crate::error::BpfError;

static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/reuseport.bpf.o"));

const PROGRAM: &str = "steer_by_cid";
const MAP_CONFIG: &str = "steer_config";
const MAP_SOCKETS: &str = "worker_sockets";
const MAP_COUNTERS: &str = "steer_counters";

/// asm-generic/socket.h (x86, arm64); spelled out because libc exports
/// the detach option only for glibc targets.
const SO_ATTACH_REUSEPORT_EBPF: libc::c_int = 52;
const SO_DETACH_REUSEPORT_BPF: libc::c_int = 68;

/// Worker IDs are one byte of the connection ID.
pub const MAX_WORKERS: u32 = 256;
/// RFC 9000 §17.2: connection IDs are at most 20 bytes in QUIC version 1.
pub const MAX_CID_LEN: u32 = 20;

/// Where the worker ID sits in our connection IDs; see
/// `quic_core::cid_gen::RoutableCidGenerator::worker_id_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CidLayout {
    /// Offset of the worker-ID byte inside the connection ID.
    pub worker_id_offset: u32,
    /// Length of every connection ID the server issues. Long-header packets
    /// whose DCID has this length and an in-range worker byte are steered
    /// by it; other long headers by a hash of the DCID.
    pub cid_len: u32,
}

impl CidLayout {
    /// `RoutableCidGenerator::for_worker`: 8-byte IDs, worker byte at 1.
    pub const QUICPRO_DEFAULT: CidLayout = CidLayout { worker_id_offset: 1, cid_len: 8 };
}

/// Mirror of `struct steer_config` in the C program.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct SteerConfig {
    workers: u32,
    worker_id_offset: u32,
    cid_len: u32,
    /// Long headers are hashed over this many workers (0: all).
    hash_workers: u32,
}

impl SteerConfig {
    fn to_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0..4].copy_from_slice(&self.workers.to_ne_bytes());
        b[4..8].copy_from_slice(&self.worker_id_offset.to_ne_bytes());
        b[8..12].copy_from_slice(&self.cid_len.to_ne_bytes());
        b[12..16].copy_from_slice(&self.hash_workers.to_ne_bytes());
        b
    }
}

/// Indexes of the C program's counters array (`enum counter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
enum Counter {
    SteeredByCid = 0,
    SteeredByHash = 1,
    FallbackEmptySlot = 2,
    FallbackOutOfRange = 3,
    Malformed = 4,
    FallbackSelectError = 5,
}

/// What the program did with the datagrams it saw, summed over CPUs.
/// Every fallback still delivers the datagram (the kernel's hash picks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReuseportCounters {
    /// Delivered to the worker named in the DCID.
    pub steered_by_cid: u64,
    /// Long header with a DCID not of our layout: delivered to the worker
    /// `hash(DCID) % workers`.
    pub steered_by_hash: u64,
    /// The chosen worker's slot was empty (socket closed or never added).
    pub fallback_empty_slot: u64,
    /// The DCID named a worker ≥ the worker count.
    pub fallback_out_of_range: u64,
    /// Too short to read the header fields, or a DCID length over 20.
    pub malformed: u64,
    /// `bpf_sk_select_reuseport` failed for another reason (e.g. the
    /// socket in the slot belongs to another reuseport group).
    pub fallback_select_error: u64,
}

impl ReuseportCounters {
    /// Datagrams the program saw.
    pub fn total(&self) -> u64 {
        self.steered_by_cid + self.steered_by_hash + self.fallback_empty_slot + self.fallback_out_of_range + self.malformed + self.fallback_select_error
    }

    /// Datagrams left to the kernel's hash.
    pub fn fallbacks(&self) -> u64 {
        self.fallback_empty_slot + self.fallback_out_of_range + self.malformed + self.fallback_select_error
    }
}

/// One loaded steering program with its maps; see the module docs.
#[derive(Debug)]
pub struct ReuseportGroup {
    program: OwnedFd,
    config: MapHandle,
    sockets: MapHandle,
    counters: MapHandle,
    workers: u32,
    layout: CidLayout,
}

/// libbpf reports the verifier log through its print callback; while a
/// group loads, the callback collects it here. The mutex also serialises
/// loads, since the callback is process-wide.
static LOAD_LOG: Mutex<Option<String>> = Mutex::new(None);

fn collect_log(_level: PrintLevel, msg: String) {
    if let Ok(mut g) = LOAD_LOG.lock() {
        if let Some(log) = g.as_mut() {
            // Bounded: a verifier log can be megabytes; the tail names the
            // failing instruction, the head the program.
            if log.len() < 64 * 1024 {
                log.push_str(&msg);
            }
        }
    }
}

impl ReuseportGroup {
    /// Loads the program for `workers` workers (1..=256) with the given
    /// connection-ID layout. Needs CAP_BPF and CAP_NET_ADMIN.
    pub fn new(workers: u32, layout: CidLayout) -> Result<Self, BpfError> {
        if workers == 0 || workers > MAX_WORKERS {
            return Err(BpfError::InvalidConfig { what: "worker count", value: workers, limit: MAX_WORKERS });
        }
        if layout.cid_len == 0 || layout.cid_len > MAX_CID_LEN {
            return Err(BpfError::InvalidConfig { what: "connection ID length", value: layout.cid_len, limit: MAX_CID_LEN });
        }
        if layout.worker_id_offset >= layout.cid_len {
            return Err(BpfError::InvalidConfig { what: "worker ID offset", value: layout.worker_id_offset, limit: layout.cid_len - 1 });
        }

        let mut open = ObjectBuilder::default().open_memory(OBJECT).map_err(|e| BpfError::Object { detail: e.to_string() })?;
        let mut resized = false;
        for mut m in open.maps_mut() {
            if m.name() == MAP_SOCKETS {
                m.set_max_entries(workers).map_err(|e| BpfError::Object { detail: e.to_string() })?;
                resized = true;
            }
        }
        if !resized {
            return Err(BpfError::Object { detail: format!("map {MAP_SOCKETS} missing") });
        }

        let (loaded, log) = {
            let mut guard = LOAD_LOG.lock().unwrap_or_else(|p| p.into_inner());
            *guard = Some(String::new());
            drop(guard);
            let previous = libbpf_rs::set_print(Some((PrintLevel::Warn, collect_log)));
            let loaded = open.load();
            libbpf_rs::set_print(previous);
            let log = LOAD_LOG.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or_default();
            (loaded, log)
        };
        let object = loaded.map_err(|e| classify_load_error(&e, log))?;

        let find_map = |name: &str| -> Result<MapHandle, BpfError> {
            let m = object.maps().find(|m| m.name() == name).ok_or_else(|| BpfError::Object { detail: format!("map {name} missing") })?;
            MapHandle::try_from(&m).map_err(|e| BpfError::Object { detail: e.to_string() })
        };
        let config = find_map(MAP_CONFIG)?;
        let sockets = find_map(MAP_SOCKETS)?;
        let counters = find_map(MAP_COUNTERS)?;
        let program = object
            .progs()
            .find(|p| p.name() == PROGRAM)
            .ok_or_else(|| BpfError::Object { detail: format!("program {PROGRAM} missing") })?
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| BpfError::Os { op: "dup program fd", errno: e.raw_os_error().unwrap_or(0) })?;

        let cfg = SteerConfig { workers, worker_id_offset: layout.worker_id_offset, cid_len: layout.cid_len, hash_workers: 0 };
        config
            .update(&0u32.to_ne_bytes(), &cfg.to_bytes(), MapFlags::ANY)
            .map_err(|e| BpfError::Os { op: "write steering config", errno: kind_errno(e.kind()) })?;
        // `object` drops here; the duplicated descriptors keep the program
        // and maps alive.
        Ok(Self { program, config, sockets, counters, workers, layout })
    }

    pub fn workers(&self) -> u32 {
        self.workers
    }

    /// Sets how many workers long-header datagrams with a foreign DCID are
    /// hashed over (`hash(DCID) % n`), for groups made with room for more
    /// workers than start (fork-per-core PHP workers join one by one, each
    /// knowing only its own id). Short headers still go to any slot their
    /// worker byte names.
    pub fn set_hash_workers(&self, n: u32) -> Result<(), BpfError> {
        if n == 0 || n > self.workers {
            return Err(BpfError::InvalidConfig { what: "hashed worker count", value: n, limit: self.workers });
        }
        let cfg = SteerConfig { workers: self.workers, worker_id_offset: self.layout.worker_id_offset, cid_len: self.layout.cid_len, hash_workers: n };
        self.config
            .update(&0u32.to_ne_bytes(), &cfg.to_bytes(), MapFlags::ANY)
            .map_err(|e| BpfError::Os { op: "write steering config", errno: kind_errno(e.kind()) })
    }

    pub fn layout(&self) -> CidLayout {
        self.layout
    }

    /// Puts `socket` in worker `worker`'s slot, replacing what was there.
    /// The socket must already be bound with SO_REUSEPORT (an unbound or
    /// non-reuseport socket gives [`BpfError::NotInReuseportGroup`]).
    pub fn add_socket(&self, worker: u32, socket: BorrowedFd<'_>) -> Result<(), BpfError> {
        if worker >= self.workers {
            return Err(BpfError::WorkerOutOfRange { worker, workers: self.workers });
        }
        let key = worker;
        let value = socket.as_raw_fd() as u64;
        // Direct call for the errno: libbpf-rs folds it into an ErrorKind,
        // which cannot tell EBADF from EINVAL.
        // SAFETY: key and value point to live locals of the sizes the map
        // was created with (u32 key, u64 value).
        let rc = unsafe {
            libbpf_rs::libbpf_sys::bpf_map_update_elem(
                self.sockets.as_fd().as_raw_fd(),
                (&key as *const u32).cast::<c_void>(),
                (&value as *const u64).cast::<c_void>(),
                libbpf_rs::libbpf_sys::BPF_ANY.into(),
            )
        };
        if rc < 0 {
            return Err(BpfError::from_socket_errno("add socket to steering map", -rc));
        }
        Ok(())
    }

    /// Empties worker `worker`'s slot (its packets then fall back to the
    /// kernel's hash). Closing the socket does this by itself.
    pub fn remove_socket(&self, worker: u32) -> Result<(), BpfError> {
        if worker >= self.workers {
            return Err(BpfError::WorkerOutOfRange { worker, workers: self.workers });
        }
        match self.sockets.delete(&worker.to_ne_bytes()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(BpfError::Os { op: "remove socket from steering map", errno: kind_errno(e.kind()) }),
        }
    }

    /// The socket cookie in worker `worker`'s slot, or `None` when empty.
    pub fn slot_cookie(&self, worker: u32) -> Result<Option<u64>, BpfError> {
        if worker >= self.workers {
            return Err(BpfError::WorkerOutOfRange { worker, workers: self.workers });
        }
        match self.sockets.lookup(&worker.to_ne_bytes(), MapFlags::ANY) {
            Ok(Some(v)) => Ok(v.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_ne_bytes)),
            Ok(None) => Ok(None),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(BpfError::Os { op: "read steering map", errno: kind_errno(e.kind()) }),
        }
    }

    /// Attaches the program to the reuseport group `socket` belongs to
    /// (`setsockopt(SO_ATTACH_REUSEPORT_EBPF)`); every socket bound to the
    /// same address and port with SO_REUSEPORT shares it.
    pub fn attach(&self, socket: BorrowedFd<'_>) -> Result<(), BpfError> {
        let prog: libc::c_int = self.program.as_raw_fd();
        // SAFETY: the option value is a live c_int and its size is passed.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                SO_ATTACH_REUSEPORT_EBPF,
                (&prog as *const libc::c_int).cast::<c_void>(),
                core::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            return Err(BpfError::from_socket_errno("attach steering program (SO_ATTACH_REUSEPORT_EBPF)", errno));
        }
        Ok(())
    }

    /// Removes whatever program is attached to `socket`'s reuseport group
    /// (`SO_DETACH_REUSEPORT_BPF`): the kernel's 4-tuple hash decides again.
    /// Dropping a group does not detach: the kernel keeps an attached
    /// program (and its map) alive until every socket of the group closes.
    pub fn detach(socket: BorrowedFd<'_>) -> Result<(), BpfError> {
        let zero: libc::c_int = 0;
        // SAFETY: the option value is a live c_int and its size is passed.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                SO_DETACH_REUSEPORT_BPF,
                (&zero as *const libc::c_int).cast::<c_void>(),
                core::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            return Err(BpfError::from_socket_errno("detach steering program (SO_DETACH_REUSEPORT_BPF)", errno));
        }
        Ok(())
    }

    /// `add_socket` then `attach`: what each worker calls after binding.
    pub fn join(&self, worker: u32, socket: BorrowedFd<'_>) -> Result<(), BpfError> {
        self.add_socket(worker, socket)?;
        self.attach(socket)
    }

    /// The outcome counters, summed over CPUs.
    pub fn counters(&self) -> Result<ReuseportCounters, BpfError> {
        let read = |c: Counter| -> Result<u64, BpfError> {
            let per_cpu = self
                .counters
                .lookup_percpu(&(c as u32).to_ne_bytes(), MapFlags::ANY)
                .map_err(|e| BpfError::Os { op: "read steering counters", errno: kind_errno(e.kind()) })?
                .unwrap_or_default();
            Ok(per_cpu.iter().filter_map(|v| v.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_ne_bytes)).sum())
        };
        Ok(ReuseportCounters {
            steered_by_cid: read(Counter::SteeredByCid)?,
            steered_by_hash: read(Counter::SteeredByHash)?,
            fallback_empty_slot: read(Counter::FallbackEmptySlot)?,
            fallback_out_of_range: read(Counter::FallbackOutOfRange)?,
            malformed: read(Counter::Malformed)?,
            fallback_select_error: read(Counter::FallbackSelectError)?,
        })
    }
}

/// An errno for libbpf-rs errors, which only keep a kind.
fn kind_errno(kind: ErrorKind) -> i32 {
    match kind {
        ErrorKind::PermissionDenied => libc::EPERM,
        ErrorKind::NotFound => libc::ENOENT,
        ErrorKind::InvalidInput | ErrorKind::InvalidData => libc::EINVAL,
        ErrorKind::Unsupported => libc::EOPNOTSUPP,
        ErrorKind::OutOfMemory => libc::ENOMEM,
        _ => libc::EIO,
    }
}

fn classify_load_error(e: &libbpf_rs::Error, log: String) -> BpfError {
    let detail = e.to_string();
    if e.kind() == ErrorKind::PermissionDenied {
        return BpfError::PermissionDenied { op: "load steering program", detail };
    }
    // Tell a missing feature from a rejected program: probing needs no
    // privilege beyond what loading needed.
    if !ProgramType::SkReuseport.is_supported().unwrap_or(false) {
        return BpfError::Unsupported { what: "SK_REUSEPORT programs", detail };
    }
    if !MapType::ReuseportSockarray.is_supported().unwrap_or(false) {
        return BpfError::Unsupported { what: "REUSEPORT_SOCKARRAY maps", detail };
    }
    BpfError::Verifier { program: PROGRAM, detail, log }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_errors_are_classified() {
        let eperm = libbpf_rs::Error::from_raw_os_error(libc::EPERM);
        let e = classify_load_error(&eperm, String::new());
        assert!(matches!(e, BpfError::PermissionDenied { .. }), "{e:?}");
        assert!(e.to_string().contains("CAP_BPF") && e.to_string().contains("--steering off"), "{e}");

        // This kernel has both types (the loopback tests use them), so an
        // EINVAL from loading is the verifier's, and its log is kept.
        let einval = libbpf_rs::Error::from_raw_os_error(libc::EINVAL);
        let e = classify_load_error(&einval, "R1 invalid mem access 'scalar'\n".to_string());
        match &e {
            BpfError::Verifier { program, log, .. } => {
                assert_eq!(*program, PROGRAM);
                assert!(log.contains("invalid mem access"));
            }
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().contains("verifier log:\nR1 invalid mem access"), "{e}");
    }

    #[test]
    fn socket_errnos_map_to_variants() {
        let op = "test";
        assert!(matches!(BpfError::from_socket_errno(op, libc::EBADF), BpfError::BadSocket { .. }));
        assert!(matches!(BpfError::from_socket_errno(op, libc::ENOTSOCK), BpfError::BadSocket { .. }));
        assert!(matches!(BpfError::from_socket_errno(op, libc::EINVAL), BpfError::NotInReuseportGroup { .. }));
        assert!(matches!(BpfError::from_socket_errno(op, 524), BpfError::UnsupportedSocket { .. }));
        assert!(matches!(BpfError::from_socket_errno(op, libc::EBUSY), BpfError::SocketBusy { .. }));
        assert!(matches!(BpfError::from_socket_errno(op, libc::EPERM), BpfError::PermissionDenied { .. }));
        assert!(matches!(BpfError::from_socket_errno(op, libc::ENOMEM), BpfError::Os { errno: libc::ENOMEM, .. }));
    }

    #[test]
    fn config_bytes_match_the_c_struct() {
        let c = SteerConfig { workers: 4, worker_id_offset: 1, cid_len: 8, hash_workers: 0 };
        assert_eq!(core::mem::size_of::<SteerConfig>(), 16);
        let b = c.to_bytes();
        assert_eq!(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]), 4);
        assert_eq!(u32::from_ne_bytes([b[4], b[5], b[6], b[7]]), 1);
        assert_eq!(u32::from_ne_bytes([b[8], b[9], b[10], b[11]]), 8);
    }
}
