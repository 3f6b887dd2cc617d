//! Loader for `xdp.bpf.c`: attaches the steering program to an interface,
//! registers AF_XDP sockets per queue, reads the counters, and detaches.
//!
//! An XDP program attached through netlink outlives the process that
//! attached it. So [`XdpSteering`] detaches in `Drop` (only if the attached
//! program is still ours), and [`XdpSteering::attach`] first replaces a
//! stale program of ours left by a crashed run (recognised by its name,
//! [`PROGRAM_NAME`]); a foreign program is never touched.
//!
//! Fork-per-core workers are separate processes on one interface, one
//! queue each: [`XdpSteering::attach_shared`] lets them share one program.
//! Every process using the program holds a shared `flock` on a per-interface
//! users file (the kernel drops it when the process dies, crash included);
//! under a second, exclusive lock the first process finds no users, treats
//! any program of ours as stale, replaces it and attaches; later ones find
//! live users and adopt the attached program (its maps opened by id from
//! the program's info), adding their port; the last one to leave detaches.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

use libbpf_rs::libbpf_sys;
use libbpf_rs::{MapCore, ObjectBuilder, PrintLevel};

/// The compiled program (bpf/build.rs).
static XDP_OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/xdp.bpf.o"));

/// Name of the program function, which is also the kernel's program name
/// (at most 15 bytes): how a stale program of ours is recognised.
pub const PROGRAM_NAME: &str = "quicpro_xdp";

/// Queues the XSKMAP has room for (`MAX_QUEUES` in the C program).
pub const MAX_QUEUES: u32 = 64;
/// Ports the port set has room for (`MAX_PORTS`).
pub const MAX_PORTS: usize = 16;

const FALLBACK: &str = "unset QUICPRO_XDP to use the kernel UDP path";

/// XDP attach mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    /// In the driver (XDP_FLAGS_DRV_MODE): needed for per-queue delivery.
    Native,
    /// Generic, after the SKB is built (XDP_FLAGS_SKB_MODE): works on every
    /// device, but many drivers (veth among them) then report every packet
    /// on queue 0.
    Skb,
}

impl XdpMode {
    fn flags(self) -> u32 {
        match self {
            XdpMode::Native => libbpf_sys::XDP_FLAGS_DRV_MODE,
            XdpMode::Skb => libbpf_sys::XDP_FLAGS_SKB_MODE,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            XdpMode::Native => "native",
            XdpMode::Skb => "skb",
        }
    }
}

/// How to attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdpOptions {
    /// UDP destination ports to steer (at most [`MAX_PORTS`]).
    pub ports: Vec<u16>,
    pub mode: XdpMode,
}

/// Errors, each naming its cause and the fallback.
#[derive(Debug)]
pub enum XdpError {
    /// EPERM: loading BPF and attaching XDP need CAP_BPF and CAP_NET_ADMIN.
    PermissionDenied {
        op: &'static str,
    },
    NoSuchInterface(String),
    /// The driver refused this attach mode (EOPNOTSUPP, EINVAL...).
    Unsupported {
        ifname: String,
        mode: XdpMode,
        source: io::Error,
    },
    /// The verifier rejected the program; `log` is what libbpf reported.
    Verifier {
        source: String,
        log: String,
    },
    /// Another (not quicpro's) XDP program is attached to the interface.
    Busy {
        ifname: String,
        prog_id: u32,
    },
    InvalidOptions(&'static str),
    /// Any other failing call.
    Io {
        op: &'static str,
        source: io::Error,
    },
}

impl fmt::Display for XdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XdpError::PermissionDenied { op } => write!(f, "af_xdp: {op}: permission denied (needs CAP_NET_ADMIN and CAP_BPF, e.g. root); {FALLBACK}"),
            XdpError::NoSuchInterface(name) => {
                write!(f, "af_xdp: no network interface {name:?}; {FALLBACK}")
            }
            XdpError::Unsupported { ifname, mode, source } => write!(f, "af_xdp: {ifname} does not support XDP in {} mode ({source}); {FALLBACK}", mode.name()),
            XdpError::Verifier { source, log } => write!(f, "af_xdp: the kernel verifier rejected the XDP program ({source}); {FALLBACK}\n{log}"),
            XdpError::Busy { ifname, prog_id } => write!(f, "af_xdp: {ifname} already runs another XDP program (id {prog_id}); detach it or {FALLBACK}"),
            XdpError::InvalidOptions(why) => write!(f, "af_xdp: {why}; {FALLBACK}"),
            XdpError::Io { op, source } => write!(f, "af_xdp: {op}: {source}; {FALLBACK}"),
        }
    }
}

impl std::error::Error for XdpError {}

impl XdpError {
    fn from_errno(op: &'static str, errno: i32) -> Self {
        if errno == libc::EPERM {
            XdpError::PermissionDenied { op }
        } else {
            XdpError::Io { op, source: io::Error::from_raw_os_error(errno) }
        }
    }
}

/// Counter slots (enum counter in xdp.bpf.c).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
enum Counter {
    SteeredShort = 0,
    SteeredLong,
    CidMismatch,
    PassedNotQuic,
    PassedOtherPort,
    MalformedEth,
    MalformedIp,
    UnsupportedIp,
    MalformedUdp,
    MalformedQuic,
    NoSocket,
}
const COUNTER_SLOTS: u32 = 11;

/// The program's counters, summed over CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct XdpCounters {
    /// Short-header packets whose CID names this queue's worker, redirected.
    pub steered_short: u64,
    /// Long-header packets redirected to the queue's socket.
    pub steered_long: u64,
    /// Short-header packets naming another worker: passed to the kernel.
    pub cid_mismatch: u64,
    /// Not UDP over IPv4/IPv6 (ARP, ICMP, TCP...): passed.
    pub passed_not_quic: u64,
    /// UDP to a port not in the set: passed.
    pub passed_other_port: u64,
    pub malformed_eth: u64,
    pub malformed_ip: u64,
    /// IPv4 options or fragments, IPv6 extension headers: passed.
    pub unsupported_ip: u64,
    pub malformed_udp: u64,
    /// Empty UDP payload or a short header too short for our CID.
    pub malformed_quic: u64,
    /// No AF_XDP socket registered on the packet's queue: passed.
    pub no_socket: u64,
}

impl XdpCounters {
    pub fn steered(&self) -> u64 {
        self.steered_short + self.steered_long
    }

    pub fn malformed(&self) -> u64 {
        self.malformed_eth + self.malformed_ip + self.malformed_udp + self.malformed_quic
    }
}

impl fmt::Display for XdpCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "xdp: steered {} short + {} long, cid_mismatch {}, no_socket {}, passed: {} not quic, {} other port, {} unsupported ip; malformed: {} eth, {} ip, {} udp, {} quic",
            self.steered_short,
            self.steered_long,
            self.cid_mismatch,
            self.no_socket,
            self.passed_not_quic,
            self.passed_other_port,
            self.unsupported_ip,
            self.malformed_eth,
            self.malformed_ip,
            self.malformed_udp,
            self.malformed_quic
        )
    }
}

/// The program attached to one interface, with its maps. Plain fds, so it
/// can be shared by the worker threads (`Send + Sync`).
#[derive(Debug)]
pub struct XdpSteering {
    ifname: String,
    ifindex: i32,
    mode: XdpMode,
    prog_id: u32,
    prog: OwnedFd,
    xsks: OwnedFd,
    counters: OwnedFd,
    /// Serialises detach against concurrent (un)registration.
    detached: Mutex<bool>,
    /// `attach_shared`: the users file this process holds a shared lock on.
    users: Option<SharedUse>,
}

/// The two lock files of [`XdpSteering::attach_shared`].
#[derive(Debug)]
struct SharedUse {
    /// Held shared while this process uses the program.
    users: std::fs::File,
    /// Taken exclusively around attach/adopt/detach decisions.
    mutex_path: std::path::PathBuf,
}

/// Lock files live in /run (shared by every network namespace of the host),
/// named after the network namespace and the interface index, which
/// together identify an interface. The namespace is the calling thread's
/// (`/proc/thread-self`): a thread may have entered another one with setns.
fn lock_paths(ifindex: i32) -> Result<(std::path::PathBuf, std::path::PathBuf), XdpError> {
    use std::os::unix::fs::MetadataExt;
    let ns = std::fs::metadata("/proc/thread-self/ns/net").map_err(|e| XdpError::Io { op: "read network namespace", source: e })?.ino();
    let dir = std::path::PathBuf::from("/run/quicpro");
    std::fs::create_dir_all(&dir).map_err(|e| XdpError::Io { op: "create /run/quicpro", source: e })?;
    Ok((dir.join(format!("xdp-{ns}-{ifindex}.users")), dir.join(format!("xdp-{ns}-{ifindex}.mutex"))))
}

fn open_lock(path: &std::path::Path) -> Result<std::fs::File, XdpError> {
    std::fs::OpenOptions::new().create(true).truncate(false).read(true).write(true).open(path).map_err(|e| XdpError::Io { op: "open XDP lock file", source: e })
}

fn flock(f: &std::fs::File, op: libc::c_int) -> io::Result<()> {
    loop {
        // SAFETY: flock on an open file.
        if unsafe { libc::flock(f.as_raw_fd(), op) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Holds the exclusive decision lock until dropped.
struct DecisionLock(std::fs::File);

impl DecisionLock {
    fn take(path: &std::path::Path) -> Result<Self, XdpError> {
        let f = open_lock(path)?;
        flock(&f, libc::LOCK_EX).map_err(|e| XdpError::Io { op: "lock XDP attach", source: e })?;
        Ok(Self(f))
    }
}

impl Drop for DecisionLock {
    fn drop(&mut self) {
        let _ = flock(&self.0, libc::LOCK_UN);
    }
}

/// Opens the maps of an attached program by the ids in its info.
fn maps_of(prog: &OwnedFd) -> Result<Vec<(String, OwnedFd)>, XdpError> {
    let mut info = libbpf_sys::bpf_prog_info::default();
    let mut len = std::mem::size_of::<libbpf_sys::bpf_prog_info>() as u32;
    // SAFETY: `info` has room for `len` bytes; the fd is open.
    let rc = unsafe { libbpf_sys::bpf_prog_get_info_by_fd(prog.as_raw_fd(), &mut info, &mut len) };
    if rc < 0 {
        return Err(XdpError::from_errno("read program info", -rc));
    }
    let n = info.nr_map_ids.min(16) as usize;
    let mut ids = vec![0u32; n];
    let mut info2 = libbpf_sys::bpf_prog_info { nr_map_ids: n as u32, map_ids: ids.as_mut_ptr() as u64, ..Default::default() };
    let mut len2 = std::mem::size_of::<libbpf_sys::bpf_prog_info>() as u32;
    // SAFETY: `map_ids` points at `n` u32s, the size the kernel is told.
    let rc = unsafe { libbpf_sys::bpf_prog_get_info_by_fd(prog.as_raw_fd(), &mut info2, &mut len2) };
    if rc < 0 {
        return Err(XdpError::from_errno("read program maps", -rc));
    }
    let mut out = Vec::new();
    for id in ids.into_iter().take(info2.nr_map_ids.min(n as u32) as usize) {
        // SAFETY: plain system call wrapper.
        let fd = unsafe { libbpf_sys::bpf_map_get_fd_by_id(id) };
        if fd < 0 {
            return Err(XdpError::from_errno("open map by id", -fd));
        }
        // SAFETY: a fresh fd owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut minfo = libbpf_sys::bpf_map_info::default();
        let mut mlen = std::mem::size_of::<libbpf_sys::bpf_map_info>() as u32;
        // SAFETY: `minfo` has room for `mlen` bytes; the fd is open.
        let rc = unsafe { libbpf_sys::bpf_map_get_info_by_fd(fd.as_raw_fd(), &mut minfo, &mut mlen) };
        if rc < 0 {
            return Err(XdpError::from_errno("read map info", -rc));
        }
        let name: Vec<u8> = minfo.name.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
        out.push((String::from_utf8_lossy(&name).into_owned(), fd));
    }
    Ok(out)
}

/// The interface index of `ifname`.
pub fn ifindex(ifname: &str) -> Result<i32, XdpError> {
    let c = CString::new(ifname).map_err(|_| XdpError::NoSuchInterface(ifname.to_owned()))?;
    // SAFETY: `c` is a valid NUL-terminated string for the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        return Err(XdpError::NoSuchInterface(ifname.to_owned()));
    }
    i32::try_from(idx).map_err(|_| XdpError::NoSuchInterface(ifname.to_owned()))
}

/// The XDP program attached to `ifname` (any mode): its id and name.
pub fn attached_program(ifname: &str) -> Result<Option<(u32, String)>, XdpError> {
    let idx = ifindex(ifname)?;
    let id = query_id(idx)?;
    if id == 0 {
        return Ok(None);
    }
    let name = prog_name(id)?;
    Ok(Some((id, name)))
}

/// Detaches a program named [`PROGRAM_NAME`] left on `ifname` by an earlier
/// run; returns its id. A foreign program is left alone.
pub fn detach_stale(ifname: &str) -> Result<Option<u32>, XdpError> {
    let idx = ifindex(ifname)?;
    let opts = query(idx)?;
    for (id, mode) in [(opts.drv_prog_id, XdpMode::Native), (opts.skb_prog_id, XdpMode::Skb)] {
        if id == 0 {
            continue;
        }
        if prog_name(id)? == PROGRAM_NAME {
            let fd = prog_fd_by_id(id)?;
            detach_exact(idx, mode, fd.as_raw_fd())?;
            return Ok(Some(id));
        }
    }
    Ok(None)
}

fn query(ifindex: i32) -> Result<libbpf_sys::bpf_xdp_query_opts, XdpError> {
    let mut opts = libbpf_sys::bpf_xdp_query_opts { sz: std::mem::size_of::<libbpf_sys::bpf_xdp_query_opts>() as libbpf_sys::size_t, ..Default::default() };
    // SAFETY: `opts` is a valid, sized options struct for the call.
    let rc = unsafe { libbpf_sys::bpf_xdp_query(ifindex, 0, &mut opts) };
    if rc < 0 {
        return Err(XdpError::from_errno("query XDP program", -rc));
    }
    Ok(opts)
}

fn query_id(ifindex: i32) -> Result<u32, XdpError> {
    let opts = query(ifindex)?;
    Ok(if opts.prog_id != 0 { opts.prog_id } else { opts.drv_prog_id.max(opts.skb_prog_id).max(opts.hw_prog_id) })
}

fn prog_fd_by_id(id: u32) -> Result<OwnedFd, XdpError> {
    // SAFETY: plain system call wrapper.
    let fd = unsafe { libbpf_sys::bpf_prog_get_fd_by_id(id) };
    if fd < 0 {
        return Err(XdpError::from_errno("open program by id", -fd));
    }
    // SAFETY: a fresh fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn prog_name(id: u32) -> Result<String, XdpError> {
    let fd = prog_fd_by_id(id)?;
    let mut info = libbpf_sys::bpf_prog_info::default();
    let mut len = std::mem::size_of::<libbpf_sys::bpf_prog_info>() as u32;
    // SAFETY: `info` has room for `len` bytes; the fd is open.
    let rc = unsafe { libbpf_sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) };
    if rc < 0 {
        return Err(XdpError::from_errno("read program info", -rc));
    }
    let bytes: Vec<u8> = info.name.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Detaches `prog_fd` from `ifindex` only if it is still the attached
/// program (XDP_FLAGS_REPLACE with a -1 new program).
fn detach_exact(ifindex: i32, mode: XdpMode, prog_fd: RawFd) -> Result<(), XdpError> {
    let opts = libbpf_sys::bpf_xdp_attach_opts {
        sz: std::mem::size_of::<libbpf_sys::bpf_xdp_attach_opts>() as libbpf_sys::size_t,
        old_prog_fd: prog_fd,
        ..Default::default()
    };
    // SAFETY: `opts` is valid for the call.
    let rc = unsafe { libbpf_sys::bpf_xdp_attach(ifindex, -1, libbpf_sys::XDP_FLAGS_REPLACE | mode.flags(), &opts) };
    if rc < 0 {
        return Err(XdpError::from_errno("detach XDP program", -rc));
    }
    Ok(())
}

/// Serialises loads, which swap libbpf's process-wide print callback.
static LOAD_LOCK: Mutex<()> = Mutex::new(());

/// libbpf's messages while loading, for the verifier log.
static LOAD_LOG: Mutex<String> = Mutex::new(String::new());

fn capture_log(_level: PrintLevel, msg: String) {
    if let Ok(mut log) = LOAD_LOG.lock() {
        // Bounded: the verifier log can be megabytes.
        if log.len() < 64 * 1024 {
            log.push_str(&msg);
        }
    }
}

fn dup_fd(fd: impl AsFd) -> Result<OwnedFd, XdpError> {
    fd.as_fd().try_clone_to_owned().map_err(|e| XdpError::Io { op: "dup", source: e })
}

impl XdpSteering {
    /// Loads the program, fills the port set, replaces a stale program of
    /// ours and attaches in `opts.mode`.
    pub fn attach(ifname: &str, opts: &XdpOptions) -> Result<Self, XdpError> {
        if opts.ports.is_empty() || opts.ports.len() > MAX_PORTS {
            return Err(XdpError::InvalidOptions("between 1 and 16 UDP ports"));
        }
        let idx = ifindex(ifname)?;
        detach_stale(ifname)?;

        let (prog, xsks, counters, ports) = load()?;
        for port in &opts.ports {
            set_elem(ports.as_raw_fd(), &port.to_ne_bytes(), &[1u8])?;
        }
        let attach_opts =
            libbpf_sys::bpf_xdp_attach_opts { sz: std::mem::size_of::<libbpf_sys::bpf_xdp_attach_opts>() as libbpf_sys::size_t, ..Default::default() };
        // SAFETY: valid fd and options for the call.
        let rc = unsafe { libbpf_sys::bpf_xdp_attach(idx, prog.as_raw_fd(), libbpf_sys::XDP_FLAGS_UPDATE_IF_NOEXIST | opts.mode.flags(), &attach_opts) };
        if rc < 0 {
            let errno = -rc;
            return Err(match errno {
                libc::EPERM => XdpError::PermissionDenied { op: "attach XDP program" },
                libc::EBUSY | libc::EEXIST => XdpError::Busy { ifname: ifname.to_owned(), prog_id: query_id(idx).unwrap_or(0) },
                libc::ENODEV => XdpError::NoSuchInterface(ifname.to_owned()),
                _ => XdpError::Unsupported { ifname: ifname.to_owned(), mode: opts.mode, source: io::Error::from_raw_os_error(errno) },
            });
        }
        let prog_id = prog_id_of(prog.as_raw_fd())?;
        Ok(XdpSteering { ifname: ifname.to_owned(), ifindex: idx, mode: opts.mode, prog_id, prog, xsks, counters, detached: Mutex::new(false), users: None })
    }

    /// As [`XdpSteering::attach`], but shared with the other processes
    /// that use the interface (see the module docs): adopts the program a
    /// live process attached, adding `opts.ports` to its port set.
    pub fn attach_shared(ifname: &str, opts: &XdpOptions) -> Result<Self, XdpError> {
        let idx = ifindex(ifname)?;
        let (users_path, mutex_path) = lock_paths(idx)?;
        let _decide = DecisionLock::take(&mutex_path)?;
        let users = open_lock(&users_path)?;
        let alone = flock(&users, libc::LOCK_EX | libc::LOCK_NB).is_ok();
        let mut me = if alone {
            // No live user: whatever of ours is attached is stale.
            let s = Self::attach(ifname, opts)?;
            flock(&users, libc::LOCK_SH).map_err(|e| XdpError::Io { op: "lock XDP users", source: e })?;
            s
        } else {
            flock(&users, libc::LOCK_SH).map_err(|e| XdpError::Io { op: "lock XDP users", source: e })?;
            Self::adopt(ifname, idx, opts)?
        };
        me.users = Some(SharedUse { users, mutex_path });
        Ok(me)
    }

    /// Opens the program of ours a live process attached to `ifname`.
    fn adopt(ifname: &str, idx: i32, opts: &XdpOptions) -> Result<Self, XdpError> {
        let q = query(idx)?;
        let id = match opts.mode {
            XdpMode::Native => q.drv_prog_id,
            XdpMode::Skb => q.skb_prog_id,
        };
        if id == 0 || prog_name(id)? != PROGRAM_NAME {
            // Users without a program (it was detached under them) or a
            // foreign program: attach our own, as the first user would.
            return Self::attach(ifname, opts);
        }
        let prog = prog_fd_by_id(id)?;
        let (mut xsks, mut counters, mut ports) = (None, None, None);
        for (name, fd) in maps_of(&prog)? {
            match name.as_str() {
                "xsks_map" => xsks = Some(fd),
                "counters" => counters = Some(fd),
                "quic_ports" => ports = Some(fd),
                _ => {}
            }
        }
        let missing = || XdpError::InvalidOptions("the attached program lacks its maps");
        let (xsks, counters, ports) = (xsks.ok_or_else(missing)?, counters.ok_or_else(missing)?, ports.ok_or_else(missing)?);
        for port in &opts.ports {
            set_elem(ports.as_raw_fd(), &port.to_ne_bytes(), &[1u8])?;
        }
        Ok(XdpSteering {
            ifname: ifname.to_owned(),
            ifindex: idx,
            mode: opts.mode,
            prog_id: id,
            prog,
            xsks,
            counters,
            detached: Mutex::new(false),
            users: None,
        })
    }

    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    pub fn ifindex(&self) -> i32 {
        self.ifindex
    }

    pub fn mode(&self) -> XdpMode {
        self.mode
    }

    /// The kernel's id of the attached program.
    pub fn prog_id(&self) -> u32 {
        self.prog_id
    }

    /// Packets arriving on `queue` go to the AF_XDP socket `xsk_fd` (bound
    /// to this interface and queue).
    pub fn register_socket(&self, queue: u32, xsk_fd: RawFd) -> Result<(), XdpError> {
        if queue >= MAX_QUEUES {
            return Err(XdpError::InvalidOptions("queue index above 63"));
        }
        let fd = u32::try_from(xsk_fd).map_err(|_| XdpError::InvalidOptions("bad socket fd"))?;
        set_elem(self.xsks.as_raw_fd(), &queue.to_ne_bytes(), &fd.to_ne_bytes())
    }

    /// Packets on `queue` go to the kernel again.
    pub fn unregister_socket(&self, queue: u32) -> Result<(), XdpError> {
        let key = queue.to_ne_bytes();
        // SAFETY: key points at 4 readable bytes, the map's key size.
        let rc = unsafe { libbpf_sys::bpf_map_delete_elem(self.xsks.as_raw_fd(), key.as_ptr().cast()) };
        if rc < 0 && -rc != libc::ENOENT {
            return Err(XdpError::from_errno("remove socket from XSKMAP", -rc));
        }
        Ok(())
    }

    /// The counters summed over CPUs.
    pub fn counters(&self) -> Result<XdpCounters, XdpError> {
        let cpus = libbpf_rs::num_possible_cpus().map_err(|e| XdpError::Io { op: "count CPUs", source: io::Error::other(e.to_string()) })?;
        // Per-CPU values are 8-byte aligned, 8 bytes each for a u64.
        let mut values = vec![0u64; cpus];
        let mut sums = [0u64; COUNTER_SLOTS as usize];
        for (slot, sum) in (0..COUNTER_SLOTS).zip(sums.iter_mut()) {
            let key = slot.to_ne_bytes();
            // SAFETY: key is 4 bytes; `values` has room for one u64 per
            // possible CPU, what a per-CPU array lookup writes.
            let rc = unsafe { libbpf_sys::bpf_map_lookup_elem(self.counters.as_raw_fd(), key.as_ptr().cast(), values.as_mut_ptr().cast()) };
            if rc < 0 {
                return Err(XdpError::from_errno("read counters", -rc));
            }
            *sum = values.iter().copied().fold(0u64, u64::wrapping_add);
        }
        let get = |c: Counter| sums.get(c as usize).copied().unwrap_or(0);
        Ok(XdpCounters {
            steered_short: get(Counter::SteeredShort),
            steered_long: get(Counter::SteeredLong),
            cid_mismatch: get(Counter::CidMismatch),
            passed_not_quic: get(Counter::PassedNotQuic),
            passed_other_port: get(Counter::PassedOtherPort),
            malformed_eth: get(Counter::MalformedEth),
            malformed_ip: get(Counter::MalformedIp),
            unsupported_ip: get(Counter::UnsupportedIp),
            malformed_udp: get(Counter::MalformedUdp),
            malformed_quic: get(Counter::MalformedQuic),
            no_socket: get(Counter::NoSocket),
        })
    }

    /// Detaches now (also done by `Drop`); only if the attached program is
    /// still this one.
    pub fn detach(&self) -> Result<(), XdpError> {
        let mut done = self.detached.lock().unwrap_or_else(|p| p.into_inner());
        if *done {
            return Ok(());
        }
        *done = true;
        if let Some(shared) = &self.users {
            // Only the last process using the program detaches it.
            let _decide = DecisionLock::take(&shared.mutex_path)?;
            let _ = flock(&shared.users, libc::LOCK_UN);
            if flock(&shared.users, libc::LOCK_EX | libc::LOCK_NB).is_err() {
                return Ok(());
            }
            let r = detach_exact(self.ifindex, self.mode, self.prog.as_raw_fd());
            let _ = flock(&shared.users, libc::LOCK_UN);
            return r;
        }
        detach_exact(self.ifindex, self.mode, self.prog.as_raw_fd())
    }
}

impl Drop for XdpSteering {
    fn drop(&mut self) {
        // The interface may be gone already (namespace deleted): nothing to do then.
        let _ = self.detach();
    }
}

fn prog_id_of(fd: RawFd) -> Result<u32, XdpError> {
    let mut info = libbpf_sys::bpf_prog_info::default();
    let mut len = std::mem::size_of::<libbpf_sys::bpf_prog_info>() as u32;
    // SAFETY: `info` has room for `len` bytes; the fd is open.
    let rc = unsafe { libbpf_sys::bpf_prog_get_info_by_fd(fd, &mut info, &mut len) };
    if rc < 0 {
        return Err(XdpError::from_errno("read program info", -rc));
    }
    Ok(info.id)
}

fn set_elem(map_fd: RawFd, key: &[u8], value: &[u8]) -> Result<(), XdpError> {
    // SAFETY: key and value point at the map's key and value sizes (the
    // callers pass the types the C program declares).
    let rc = unsafe { libbpf_sys::bpf_map_update_elem(map_fd, key.as_ptr().cast(), value.as_ptr().cast(), u64::from(libbpf_sys::BPF_ANY)) };
    if rc < 0 {
        return Err(XdpError::from_errno("update map", -rc));
    }
    Ok(())
}

/// Opens and loads the object; returns duplicated fds of the program and
/// of the xsks, counters and ports maps (the object itself is dropped: the
/// fds keep the kernel objects alive).
fn load() -> Result<(OwnedFd, OwnedFd, OwnedFd, OwnedFd), XdpError> {
    let mut builder = ObjectBuilder::default();
    let open = builder.open_memory(XDP_OBJECT).map_err(|e| XdpError::Io { op: "open BPF object", source: io::Error::other(e.to_string()) })?;
    // Capture libbpf's output (the verifier log on failure) for the error.
    // libbpf's print callback is process-wide: one load at a time.
    let _one_at_a_time = LOAD_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let previous = libbpf_rs::get_print();
    if let Ok(mut log) = LOAD_LOG.lock() {
        log.clear();
    }
    libbpf_rs::set_print(Some((PrintLevel::Debug, capture_log)));
    let loaded = open.load();
    libbpf_rs::set_print(previous);
    let obj = match loaded {
        Ok(obj) => obj,
        Err(e) => {
            let log = LOAD_LOG.lock().map(|l| l.clone()).unwrap_or_default();
            if e.kind() == libbpf_rs::ErrorKind::PermissionDenied && !log.contains("processed") {
                return Err(XdpError::PermissionDenied { op: "load BPF program" });
            }
            return Err(XdpError::Verifier { source: e.to_string(), log: tail(&log) });
        }
    };
    let mut prog = None;
    for p in obj.progs() {
        if p.name() == PROGRAM_NAME {
            prog = Some(dup_fd(p.as_fd())?);
        }
    }
    let (mut xsks, mut counters, mut ports) = (None, None, None);
    for m in obj.maps() {
        let slot = match m.name().to_str() {
            Some("xsks_map") => &mut xsks,
            Some("counters") => &mut counters,
            Some("quic_ports") => &mut ports,
            _ => continue,
        };
        *slot = Some(dup_fd(m.as_fd())?);
    }
    let missing = || XdpError::InvalidOptions("BPF object lacks a program or map");
    Ok((prog.ok_or_else(missing)?, xsks.ok_or_else(missing)?, counters.ok_or_else(missing)?, ports.ok_or_else(missing)?))
}

/// The last lines of a verifier log (where the rejection is explained).
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let from = lines.len().saturating_sub(40);
    lines.get(from..).unwrap_or(&[]).join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_is_embedded_and_named() {
        // An ELF file for eBPF (EM_BPF = 247) holding our program.
        assert_eq!(XDP_OBJECT.get(..4), Some(&b"\x7fELF"[..]));
        assert_eq!(XDP_OBJECT.get(18..20), Some(&247u16.to_le_bytes()[..]));
        assert!(XDP_OBJECT.windows(PROGRAM_NAME.len()).any(|w| w == PROGRAM_NAME.as_bytes()));
    }

    #[test]
    fn unknown_interface_is_named() {
        let e = XdpSteering::attach("qp-nosuch0", &XdpOptions { ports: vec![4433], mode: XdpMode::Native }).expect_err("no such interface");
        assert!(matches!(e, XdpError::NoSuchInterface(_)), "{e}");
        assert!(e.to_string().contains("unset QUICPRO_XDP"));
    }

    #[test]
    fn port_set_is_bounded() {
        let e = XdpSteering::attach("lo", &XdpOptions { ports: vec![], mode: XdpMode::Skb }).expect_err("no ports");
        assert!(matches!(e, XdpError::InvalidOptions(_)), "{e}");
    }
}
