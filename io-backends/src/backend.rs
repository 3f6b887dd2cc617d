//! The contract between a datagram backend and the sans-I/O core.
//!
//! A backend owns its receive memory (kernel socket buffers copied into a
//! reusable arena for the UDP backends, UMEM frames for AF_XDP) and lends it
//! to the caller one batch at a time as `&mut [u8]`, so packets are decrypted
//! in place. Sends borrow the caller's bytes (what `Connection::poll_transmit`
//! wrote) and never copy them on the kernel UDP path.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::slice::ChunksMut;
use std::time::Duration;

use quic_core::connection::EcnCodepoint;

/// Which driver moves the datagrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// `recvmmsg`/`sendmmsg` on a non-blocking UDP socket, `epoll_wait` to sleep.
    Epoll,
    /// As `Epoll`, but spins on non-blocking receives before sleeping.
    BusyPoll,
    /// io_uring: multishot receive into a provided-buffer ring, batched
    /// SENDMSG requests, one `io_uring_enter` per `wait`.
    IoUring,
    /// AF_XDP sockets on a UMEM, fed by an XDP program (`crate::xdp`).
    AfXdp,
}

impl BackendKind {
    /// The name used by `QUICPRO_BACKEND` and in the start-up log.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Epoll => "epoll",
            BackendKind::BusyPoll => "busy_poll",
            BackendKind::IoUring => "io_uring",
            BackendKind::AfXdp => "af_xdp",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything known about one received buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvMeta {
    /// The peer's address. IPv4-mapped IPv6 addresses of a dual-stack socket
    /// are given back as plain IPv4, so one peer has one address whatever
    /// socket it reached.
    pub source: SocketAddr,
    /// The local address the datagram was sent to (IP_PKTINFO /
    /// IPV6_PKTINFO), canonical like `source`. `None` if the kernel did not
    /// say (AF_XDP fills it from the IP header).
    pub destination: Option<IpAddr>,
    /// Interface the datagram arrived on (0 if unknown).
    pub ifindex: u32,
    /// ECN bits of the IP header (RFC 3168 §5; RFC 9000 §13.4 counts them).
    pub ecn: Option<EcnCodepoint>,
    /// Bytes in the buffer.
    pub len: usize,
    /// Set when the kernel coalesced several datagrams of the same flow (UDP
    /// GRO): every datagram is this long except possibly the last.
    pub segment_size: Option<usize>,
}

impl RecvMeta {
    /// The length of each datagram in the buffer (the whole buffer when it
    /// was not coalesced). Never zero, so it is safe for `chunks_mut`.
    pub fn stride(&self) -> usize {
        match self.segment_size {
            Some(s) if s > 0 && s < self.len => s,
            _ => self.len.max(1),
        }
    }

    /// How many datagrams the buffer holds.
    pub fn datagram_count(&self) -> usize {
        self.len.div_ceil(self.stride())
    }
}

/// Splits a received buffer into its datagrams (one unless GRO coalesced
/// several). Each goes to `Endpoint::handle` on its own.
pub fn datagrams<'b>(buf: &'b mut [u8], meta: &RecvMeta) -> ChunksMut<'b, u8> {
    buf.chunks_mut(meta.stride())
}

/// Where one received buffer lives in the backend's arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvEntry {
    /// Byte offset of the buffer in the arena.
    pub offset: usize,
    pub meta: RecvMeta,
}

/// One batch of received buffers, lent by the backend until the next `recv`.
///
/// The arena + entries shape fits both the kernel UDP path (fixed slots in
/// one allocation) and AF_XDP (frames at arbitrary offsets of the UMEM).
/// io_uring lends buffers one by one instead ([`RecvBatch::from_buffers`]):
/// the kernel may be writing into the other buffers of its ring meanwhile,
/// so no slice may cover them.
#[derive(Debug)]
pub struct RecvBatch<'a> {
    storage: Storage<'a>,
    entries: &'a [RecvEntry],
    next: usize,
}

#[derive(Debug)]
enum Storage<'a> {
    /// Every entry's offset is into this one arena.
    Arena(&'a mut [u8]),
    /// Entry `i`'s offset is into buffer `i`.
    Buffers(&'a mut [&'a mut [u8]]),
}

impl<'a> RecvBatch<'a> {
    /// For backends: `entries` must describe buffers inside `arena`; an entry
    /// that does not is skipped, never trusted.
    pub fn new(arena: &'a mut [u8], entries: &'a [RecvEntry]) -> Self {
        RecvBatch { storage: Storage::Arena(arena), entries, next: 0 }
    }

    /// For backends that lend separate buffers: entry `i` lies at
    /// `entries[i].offset` in `buffers[i]` (an entry without a buffer, or
    /// that does not fit in it, is skipped).
    pub fn from_buffers(buffers: &'a mut [&'a mut [u8]], entries: &'a [RecvEntry]) -> Self {
        RecvBatch { storage: Storage::Buffers(buffers), entries, next: 0 }
    }

    /// An empty batch (nothing was waiting).
    pub fn empty() -> Self {
        RecvBatch { storage: Storage::Arena(&mut []), entries: &[], next: 0 }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Metadata of every buffer, without touching the bytes.
    pub fn metas(&self) -> impl Iterator<Item = RecvMeta> + '_ {
        self.entries.iter().map(|e| e.meta)
    }

    /// Buffer `i` for in-place processing.
    pub fn get_mut(&mut self, i: usize) -> Option<(RecvMeta, &mut [u8])> {
        let entry = self.entries.get(i)?;
        let end = entry.offset.checked_add(entry.meta.len)?;
        let buf = match &mut self.storage {
            Storage::Arena(arena) => arena.get_mut(entry.offset..end)?,
            Storage::Buffers(bufs) => bufs.get_mut(i)?.get_mut(entry.offset..end)?,
        };
        Some((entry.meta, buf))
    }

    /// The next buffer of the batch (a lending iterator: the slice is valid
    /// until the following call). Use in `while let`.
    pub fn next_buffer(&mut self) -> Option<(RecvMeta, &mut [u8])> {
        while self.next < self.entries.len() {
            let i = self.next;
            self.next += 1;
            // Borrow-checker dance: probe first, then re-borrow for the return.
            if self.get_mut(i).is_some() {
                return self.get_mut(i);
            }
        }
        None
    }
}

/// One transmit: a datagram, or several equal-size datagrams back to back
/// (the last may be shorter) when `segment_size` is set, as
/// `Connection::poll_transmit` writes them for GSO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit<'a> {
    pub destination: SocketAddr,
    /// Local address to send from (IP_PKTINFO / IPV6_PKTINFO), e.g. the
    /// address the peer wrote to on a socket bound to a wildcard address.
    pub source: Option<IpAddr>,
    pub ecn: Option<EcnCodepoint>,
    /// Datagram size when `contents` holds several datagrams.
    pub segment_size: Option<usize>,
    pub contents: &'a [u8],
}

impl<'a> Transmit<'a> {
    /// Wraps what `Connection::poll_transmit` wrote into `buf`. Returns
    /// `None` if the reported size exceeds the buffer.
    pub fn from_core(t: &quic_core::connection::Transmit, buf: &'a [u8]) -> Option<Self> {
        Some(Transmit { destination: t.destination, source: None, ecn: t.ecn, segment_size: t.segment_size, contents: buf.get(..t.size)? })
    }
}

/// What `wait` should wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Interest {
    pub readable: bool,
    pub writable: bool,
}

impl Interest {
    pub const READABLE: Interest = Interest { readable: true, writable: false };
    pub const WRITABLE: Interest = Interest { readable: false, writable: true };
    pub const BOTH: Interest = Interest { readable: true, writable: true };
}

/// What `wait` found. Both false means the timeout passed (or a signal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Readiness {
    pub readable: bool,
    pub writable: bool,
}

/// What the backend can do now. `gso` may turn false at run time (fallback
/// after the kernel refused a segmented send).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Segmented sends (UDP_SEGMENT) are used.
    pub gso: bool,
    /// Received datagrams may arrive coalesced (UDP_GRO).
    pub gro: bool,
    /// Most datagrams put in one segmented send.
    pub max_gso_segments: usize,
    /// Buffers filled per `recv`.
    pub recv_batch: usize,
    /// Messages handed to the kernel per send system call.
    pub send_batch: usize,
    /// Size of each receive buffer.
    pub recv_buffer_size: usize,
    /// Received ECN bits are reported.
    pub recv_ecn: bool,
    /// The local address of received datagrams is reported.
    pub recv_destination: bool,
}

/// Counters since the backend was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BackendStats {
    pub recv_calls: u64,
    /// Buffers received (a GRO buffer counts once).
    pub recv_buffers: u64,
    /// Buffers dropped because they did not fit (MSG_TRUNC).
    pub recv_truncated: u64,
    pub send_calls: u64,
    /// Messages accepted by the kernel (a GSO message counts once).
    pub send_messages: u64,
    /// Messages the kernel refused for good (unreachable, too big...).
    pub send_dropped: u64,
    /// Times GSO was switched off after the kernel refused it.
    pub gso_fallbacks: u64,
    /// The errno of the last refused GSO send (0: none).
    pub gso_fallback_errno: i32,
}

/// A datagram backend.
///
/// Usage per loop turn: `recv` until empty and hand each datagram to the
/// endpoint; `send` what the connections produced; when `send` returns fewer
/// than given, keep the rest and `wait` with `writable`; then `wait` for
/// readability until the next timer.
pub trait Backend: AsRawFd + Send + fmt::Debug {
    fn kind(&self) -> BackendKind;

    /// The address the backend is bound to.
    fn local_addr(&self) -> SocketAddr;

    fn capabilities(&self) -> Capabilities;

    fn stats(&self) -> BackendStats;

    /// Receives what is waiting, without blocking: an empty batch when
    /// nothing is. The batch borrows the backend's buffers until dropped.
    fn recv(&mut self) -> io::Result<RecvBatch<'_>>;

    /// Sends `transmits` in order, without blocking. Returns how many were
    /// sent completely; `transmits[n..]` are still to send (retry after
    /// `wait` reports writable). If `transmits[n]` was sent in part (a
    /// segmented transmit split over several messages), its `contents` is
    /// advanced past the datagrams that left, so a retry sends no duplicate.
    /// Datagrams the kernel refuses for good (no route, too big) are counted
    /// in `stats().send_dropped` and skipped, as a lost packet would be.
    fn send(&mut self, transmits: &mut [Transmit<'_>]) -> io::Result<usize>;

    /// Blocks until one of `interest` holds or `timeout` passes (`None`:
    /// no limit).
    fn wait(&mut self, interest: Interest, timeout: Option<Duration>) -> io::Result<Readiness>;

    /// Backend-specific counters for the end-of-run log (AF_XDP: its rings
    /// and the XDP program's counters); `None` when the generic
    /// [`BackendStats`] say it all.
    fn report(&self) -> Option<String> {
        None
    }
}

/// Errors opening or selecting a backend.
#[derive(Debug)]
pub enum BackendError {
    /// The backend asked for does not exist in this build or on this host.
    Unavailable(&'static str),
    /// An environment knob has a value we cannot use.
    InvalidConfig { var: &'static str, value: String, reason: &'static str },
    /// A system call failed while opening.
    Io { context: &'static str, source: io::Error },
    /// AF_XDP could not be set up; the message names the cause
    /// (privileges, interface, driver, verifier) and the fallback.
    AfXdp(Box<crate::xdp::AfXdpError>),
}

impl BackendError {
    pub(crate) fn io(context: &'static str, source: io::Error) -> Self {
        BackendError::Io { context, source }
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendError::Unavailable(why) => f.write_str(why),
            BackendError::InvalidConfig { var, value, reason } => {
                write!(f, "{var}={value:?}: {reason}")
            }
            BackendError::Io { context, source } => write!(f, "{context}: {source}"),
            BackendError::AfXdp(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for BackendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BackendError::Io { source, .. } => Some(source),
            BackendError::AfXdp(e) => Some(e.as_ref()),
            _ => None,
        }
    }
}
