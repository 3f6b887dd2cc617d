//! The io_uring path: one multishot `recvmsg` request fills buffers of a
//! provided-buffer ring as datagrams arrive, sends are batches of linked
//! `SENDMSG` requests (one `io_uring_enter` per batch), and `wait` submits
//! what is queued and sleeps in a single `io_uring_enter`.
//!
//! The multishot request ends when the ring has no free buffer (ENOBUFS:
//! it takes its next buffer before looking for data, so a ring emptied
//! exactly ends it too) and is armed again by the next call that returns
//! buffers; datagrams wait in the socket buffer meanwhile, none is lost.
//! [`UringStats`] counts these ends.
//!
//! `as_raw_fd` is the ring's fd, pollable: readable when completions wait.
//! The backend may move to another thread: the ring is not single-issuer
//! (a DEFER_TASKRUN ring would be, and its fd would not wake a poller).
//!
//! Memory protocol. Every provided buffer is, at any time, in exactly one
//! place: in the kernel's ring (the kernel may write into it at any moment
//! and no Rust reference may cover it), in `ready` (handed back by a
//! completion, not yet lent), or in `lent` (borrowed by the caller's
//! [`RecvBatch`], which borrows the backend mutably). Lent buffers go back to
//! the kernel at the next `recv`, `send` or `wait`, when the batch borrow has
//! necessarily ended.
//!
//! Send requests point at the caller's bytes, borrowed only for the `send`
//! call: they carry MSG_DONTWAIT, so the kernel completes them during the
//! submission instead of parking them, and `send` does not return before
//! every one of them has completed.

use std::fmt;
use std::io;
use std::mem::size_of;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::ptr::{self};
use std::time::Duration;

use io_uring::types::{SubmitArgs, Timespec};
use io_uring::IoUring;
use socket2::Socket;

use crate::backend::{Backend, BackendError, BackendKind, BackendStats, Capabilities, Interest, Readiness, RecvBatch, Transmit};
use crate::udp::{open_udp_socket, SendRing, UdpConfig, UdpSocketInfo, MAX_UDP_PAYLOAD, RECV_SPACE};

mod buffers;
mod kernel;
mod rx;

use self::buffers::ProvidedBuffers;
use self::kernel::Core;
use self::rx::Rx;

/// Provided buffers when none are asked for. Each holds a whole GRO buffer
/// (64 KiB) when UDP_GRO is on: 256 of them is 16.5 MiB of address space,
/// of which only the pages datagrams touch become resident. They are not
/// pinned (only the 4 KiB ring of descriptors is), so RLIMIT_MEMLOCK does
/// not bound them.
pub const DEFAULT_URING_BUFFERS: u16 = 256;

/// Most buffers one ring may have (the kernel's limit for a provided-buffer
/// ring, 2^15).
pub const MAX_URING_BUFFERS: u16 = 1 << 15;

/// io_uring parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UringConfig {
    /// Provided receive buffers (rounded up to a power of two, as the kernel
    /// requires; at most [`MAX_URING_BUFFERS`]). When all of them are full
    /// the multishot receive stops (ENOBUFS) and is re-armed once buffers
    /// come back; datagrams wait in the socket buffer meanwhile.
    ///
    /// The kernel takes buffers in ring (FIFO) order, so every buffer
    /// offered is cycled through the cache even when traffic needs few: with
    /// GRO filling 64 KiB buffers, 256 of them cost a third of the loopback
    /// throughput against 16. So not all are offered at all times: the
    /// window starts at all of them, halves (down to 16) while the largest
    /// batches stay under a quarter of it, and doubles at each ENOBUFS.
    pub buffers: u16,
    /// For tests of the fallback: make opening fail as if the kernel had
    /// refused io_uring.
    pub simulate_setup_failure: bool,
}

impl Default for UringConfig {
    fn default() -> Self {
        UringConfig { buffers: DEFAULT_URING_BUFFERS, simulate_setup_failure: false }
    }
}

/// io_uring-specific counters since the backend was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UringStats {
    /// Multishot receive requests submitted (the first one and re-arms).
    pub recv_arms: u64,
    /// Multishot receives ended because every provided buffer was full
    /// (ENOBUFS): the datagrams stayed in the socket buffer until re-arm.
    pub recv_enobufs: u64,
    /// Multishot receives ended for another reason (error, cancel).
    pub recv_other_ends: u64,
    /// Most buffers handed out by one `recv` (how deep the ring was
    /// drained between two calls).
    pub max_batch: u32,
    /// Buffers offered to the kernel now (see [`UringConfig::buffers`]).
    pub buffer_window: u32,
    /// `io_uring_enter` calls.
    pub enters: u64,
    /// Send batches whose completions were not all posted by the submission
    /// itself, so `send` had to wait for them.
    pub send_waits: u64,
}

/// What opening failed on: io_uring itself (fall back to epoll), or the
/// socket (epoll would fail the same way).
#[derive(Debug)]
pub(crate) enum OpenError {
    Uring(BackendError),
    Socket(BackendError),
}

impl OpenError {
    fn into_inner(self) -> BackendError {
        match self {
            OpenError::Uring(e) | OpenError::Socket(e) => e,
        }
    }
}

const SIMULATED_FAILURE: &str = "io_uring: setup failure simulated (UringConfig::simulate_setup_failure)";
const NO_EXT_ARG: &str = "io_uring: the kernel lacks IORING_FEAT_EXT_ARG (Linux 5.11)";
const NO_MULTISHOT: &str = "io_uring: the kernel refused a multishot recvmsg with provided buffers (Linux 6.0)";

// Completion tags (user_data).
const RECV_TAG: u64 = 1;
const POLL_OUT_TAG: u64 = 2;
const CANCEL_TAG: u64 = 3;
/// Send requests: the tag plus the message index in the batch.
const SEND_TAG: u64 = 1 << 32;

/// Buffer group id of the provided-buffer ring (one ring per io_uring).
const BUF_GROUP: u16 = 0;

/// Fewest buffers offered to the kernel (unless the ring has fewer).
const MIN_WINDOW: u32 = 16;
/// Batches lent between two decisions to shrink the window.
const SHRINK_PERIOD: u32 = 1024;

/// `struct io_uring_recvmsg_out` (include/uapi/linux/io_uring.h): namelen,
/// controllen, payloadlen, flags, each a u32, at the start of every buffer a
/// multishot recvmsg fills.
const OUT_HDR: usize = 16;
/// Name space reserved in each buffer: a sockaddr_in6 (the largest family a
/// UDP socket reports).
const NAME_LEN: usize = size_of::<libc::sockaddr_in6>();
/// Where the payload starts: header, name and control space, with the
/// control space padded so payloads begin on a cache line.
const PAYLOAD_OFFSET: usize = 320;
const CTRL_LEN: usize = PAYLOAD_OFFSET - OUT_HDR - NAME_LEN;
const _: () = assert!(CTRL_LEN >= RECV_SPACE);

/// The io_uring backend.
pub struct UringBackend {
    core: Core,
    send: SendRing,
    socket: Socket,
    info: UdpSocketInfo,
}

impl fmt::Debug for UringBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UringBackend")
            .field("local_addr", &self.info.local_addr)
            .field("ring_fd", &self.core.ring.as_raw_fd())
            .field("buffers", &self.core.rx.bufs.count)
            .field("buffer_size", &self.core.rx.bufs.buf_size)
            .field("send", &self.send)
            .field("stats", &self.core.stats)
            .finish_non_exhaustive()
    }
}

impl UringBackend {
    /// Opens the socket, sets up the ring, registers the provided buffers
    /// and arms the multishot receive. Fails when the kernel refuses
    /// io_uring (seccomp, `kernel.io_uring_disabled`, a kernel older than
    /// 6.0) with an error naming the step.
    pub fn open(bind: SocketAddr, udp: &UdpConfig, cfg: &UringConfig) -> Result<Self, BackendError> {
        Self::open_detailed(bind, udp, cfg).map_err(OpenError::into_inner)
    }

    pub(crate) fn open_detailed(bind: SocketAddr, udp: &UdpConfig, cfg: &UringConfig) -> Result<Self, OpenError> {
        if cfg.simulate_setup_failure {
            return Err(OpenError::Uring(BackendError::Unavailable(SIMULATED_FAILURE)));
        }
        let count = cfg.buffers.clamp(1, MAX_URING_BUFFERS).checked_next_power_of_two().unwrap_or(MAX_URING_BUFFERS);
        let send = SendRing::new(udp.batch, bind.is_ipv6(), false, udp.gso_max_segments);
        let send_batch = send.batch();
        let ring = build_ring(count, send_batch).map_err(OpenError::Uring)?;

        let (socket, info) = open_udp_socket(bind, udp).map_err(OpenError::Socket)?;
        let send = SendRing::new(udp.batch, bind.is_ipv6(), info.gso, udp.gso_max_segments);
        let capacity = if info.gro { udp.recv_buffer_size.max(MAX_UDP_PAYLOAD) } else { udp.recv_buffer_size.max(1) };
        // Whole cache lines, so every payload starts on one.
        let buf_size = (PAYLOAD_OFFSET + capacity).next_multiple_of(64);
        let bufs = ProvidedBuffers::new(count, buf_size).map_err(|e| OpenError::Uring(BackendError::io("io_uring provided buffers", e)))?;
        // SAFETY: the descriptor ring is `count` entries of page-aligned
        // memory owned by `bufs`, which outlives the registration: Core's
        // drop unregisters it (or leaks the memory if it cannot).
        let reg = unsafe { ring.submitter().register_buf_ring_with_flags(bufs.ring.as_ptr() as u64, count, BUF_GROUP, 0) };
        let mut msghdr: Box<libc::msghdr> = Box::new(
            // SAFETY: msghdr is plain old data; all-zero is valid (no name,
            // no iovec: the provided buffer replaces them).
            unsafe { std::mem::zeroed() },
        );
        msghdr.msg_namelen = NAME_LEN as libc::socklen_t;
        msghdr.msg_controllen = CTRL_LEN as _;
        let mut core = Core {
            ring,
            fd: socket.as_raw_fd(),
            rx: Rx {
                bufs,
                armed: false,
                ready: Vec::with_capacity(usize::from(count)),
                lent: Vec::with_capacity(usize::from(count)),
                entries: Vec::with_capacity(usize::from(count)),
                views: Vec::with_capacity(usize::from(count)),
                error: None,
                spare: Vec::with_capacity(usize::from(count)),
                window: u32::from(count),
                period_batches: 0,
                period_peak: 0,
                calls: 0,
                buffers: 0,
                truncated: 0,
            },
            recv_msghdr: msghdr,
            send_results: Vec::with_capacity(send_batch),
            poll_out_armed: false,
            writable: false,
            broken: false,
            stats: UringStats { buffer_window: u32::from(count), ..UringStats::default() },
        };
        if let Err(e) = reg {
            // Not registered: nothing to cancel or unregister.
            return Err(OpenError::Uring(BackendError::io("io_uring register provided-buffer ring", e)));
        }
        for bid in 0..count {
            core.rx.bufs.push(bid);
        }
        core.rx.bufs.publish();
        let armed = core.arm_recv().and_then(|()| core.flush());
        if let Err(e) = armed {
            return Err(OpenError::Uring(BackendError::io("io_uring submit", e)));
        }
        // A kernel without multishot recvmsg fails the request at once.
        core.reap();
        if let Some(e) = core.rx.error.take() {
            if e.raw_os_error() == Some(libc::EINVAL) {
                return Err(OpenError::Uring(BackendError::Unavailable(NO_MULTISHOT)));
            }
            core.rx.error = Some(e);
        }
        Ok(UringBackend { core, send, socket, info })
    }

    /// What the kernel granted for the socket.
    pub fn socket_info(&self) -> &UdpSocketInfo {
        &self.info
    }

    /// The UDP socket (as opposed to [`AsRawFd::as_raw_fd`], the ring).
    pub fn socket_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// io_uring counters: re-arms, ENOBUFS, buffer low-water mark.
    pub fn uring_stats(&self) -> UringStats {
        self.core.stats
    }

    /// Provided buffers in the ring.
    pub fn buffer_count(&self) -> usize {
        usize::from(self.core.rx.bufs.count)
    }
}

/// Creates the ring: SQ room for a send batch plus the receive, poll and
/// cancel requests; CQ room for a completion per buffer and per message
/// (more would wait in the kernel's overflow list, not be lost). The rings
/// count against RLIMIT_MEMLOCK unless the process has CAP_IPC_LOCK: about
/// 16 KiB with 256 buffers.
fn build_ring(buffers: u16, send_batch: usize) -> Result<IoUring, BackendError> {
    let sq = u32::try_from(send_batch + 8).unwrap_or(4096).next_power_of_two().min(4096);
    let cq = u32::try_from(usize::from(buffers) + send_batch + 8).unwrap_or(65536).next_power_of_two().clamp(sq, 65536);
    // COOP_TASKRUN: completions are processed when this thread enters the
    // kernel, not by interrupting it; TASKRUN_FLAG tells `recv` when such
    // work waits; SUBMIT_ALL: one bad request does not stop the batch.
    let ring = IoUring::builder().setup_coop_taskrun().setup_taskrun_flag().setup_submit_all().setup_cqsize(cq).build(sq);
    let ring = match ring {
        Ok(r) => r,
        // Older kernel: the optimisation flags are unknown.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => IoUring::builder().setup_cqsize(cq).build(sq).map_err(|e| BackendError::io("io_uring_setup", e))?,
        Err(e) => return Err(BackendError::io("io_uring_setup", e)),
    };
    if !ring.params().is_feature_ext_arg() {
        return Err(BackendError::Unavailable(NO_EXT_ARG));
    }
    Ok(ring)
}

/// The ring's file descriptor. It polls readable (POLLIN) when completions
/// are waiting, so an outer event loop may watch it and call
/// [`Backend::recv`] / [`Backend::wait`] then. The UDP socket is
/// [`UringBackend::socket_fd`]: never read it directly, the multishot
/// receive owns its queue.
impl AsRawFd for UringBackend {
    fn as_raw_fd(&self) -> RawFd {
        self.core.ring.as_raw_fd()
    }
}

impl Backend for UringBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::IoUring
    }

    fn local_addr(&self) -> SocketAddr {
        self.info.local_addr
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            gso: self.send.gso(),
            gro: self.info.gro,
            max_gso_segments: self.send.gso_max_segments(),
            recv_batch: usize::from(self.core.rx.bufs.count),
            send_batch: self.send.batch(),
            recv_buffer_size: self.core.rx.bufs.buf_size - PAYLOAD_OFFSET,
            recv_ecn: true,
            recv_destination: true,
        }
    }

    /// `recv_calls` counts the batches handed out (a receive costs no
    /// system call of its own).
    fn stats(&self) -> BackendStats {
        BackendStats {
            recv_calls: self.core.rx.calls,
            recv_buffers: self.core.rx.buffers,
            recv_truncated: self.core.rx.truncated,
            send_calls: self.send.calls,
            send_messages: self.send.messages,
            send_dropped: self.send.dropped,
            gso_fallbacks: self.send.gso_fallbacks,
            gso_fallback_errno: self.send.gso_fallback_errno,
        }
    }

    /// Hands out every buffer the kernel filled since the last call. No
    /// system call unless completions are pending in the kernel (then one
    /// non-blocking `io_uring_enter` runs them).
    fn recv(&mut self) -> io::Result<RecvBatch<'_>> {
        let core = &mut self.core;
        core.turn()?;
        core.reap();
        if core.rx.ready.is_empty() {
            let (queued, kernel_work) = {
                let sq = core.ring.submission();
                (!sq.is_empty(), sq.taskrun() || sq.cq_overflow())
            };
            if queued {
                core.flush()?;
            } else if kernel_work {
                // Task work (the copies into buffers) or overflowed
                // completions wait for this thread to enter the kernel: an
                // enter without waiting runs them.
                core.stats.enters += 1;
                let _ = core.ring.submit();
            }
            core.reap();
        }
        let rx = &mut core.rx;
        if rx.ready.is_empty() {
            return match rx.error.take() {
                Some(e) => Err(e),
                None => Ok(RecvBatch::empty()),
            };
        }
        for (bid, entry) in rx.ready.drain(..) {
            let Some(start) = rx.bufs.buffer(bid) else {
                continue;
            };
            rx.lent.push(bid);
            rx.entries.push(entry);
            rx.views.push(ptr::slice_from_raw_parts_mut(start, rx.bufs.buf_size));
        }
        rx.calls += 1;
        rx.buffers += rx.entries.len() as u64;
        let n = u32::try_from(rx.entries.len()).unwrap_or(u32::MAX);
        core.stats.max_batch = core.stats.max_batch.max(n);
        rx.lent_batch(n, &mut core.stats);
        // SAFETY: `*mut [u8]` and `&mut [u8]` have the same layout. Each
        // view is a whole buffer of `buf_size` initialised bytes that a
        // completion handed back (so the kernel no longer writes into it)
        // and that is not in the kernel's ring again until the next
        // `recv`/`send`/`wait`, which need `&mut self` and so end this
        // borrow first. Buffers do not overlap, so the slices are disjoint.
        let views: &mut [&mut [u8]] = unsafe { std::slice::from_raw_parts_mut(rx.views.as_mut_ptr().cast::<&mut [u8]>(), rx.views.len()) };
        Ok(RecvBatch::from_buffers(views, &rx.entries))
    }

    fn send(&mut self, transmits: &mut [Transmit<'_>]) -> io::Result<usize> {
        self.core.turn()?;
        self.send.send_via(&mut self.core, transmits)
    }

    /// Submits what is queued (a re-armed receive, a writability poll) and
    /// waits for a completion or the timeout, in one `io_uring_enter`.
    /// Datagrams arriving report `readable` even when only `writable` was
    /// asked.
    fn wait(&mut self, interest: Interest, timeout: Option<Duration>) -> io::Result<Readiness> {
        let core = &mut self.core;
        core.turn()?;
        if interest.writable && !core.writable {
            core.arm_poll_out()?;
        }
        core.reap();
        let ready_now = core.readable() || (interest.writable && core.writable);
        if ready_now {
            core.flush()?;
            core.reap();
        } else {
            core.stats.enters += 1;
            let rc = match timeout {
                None => core.ring.submit_and_wait(1),
                Some(d) => {
                    let ts = Timespec::from(d);
                    let args = SubmitArgs::new().timespec(&ts);
                    core.ring.submitter().submit_with_args(1, &args)
                }
            };
            if let Err(e) = rc {
                match e.raw_os_error() {
                    Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY) => {}
                    _ => return Err(e),
                }
            }
            // Anything still queued (the enter can stop early) goes now.
            core.flush()?;
            core.reap();
        }
        let writable = interest.writable && core.writable;
        if writable {
            core.writable = false;
        }
        Ok(Readiness { readable: core.readable(), writable })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const F_BUFFER: u32 = 1;
    const F_MORE: u32 = 2;

    fn new_rx(count: u16, buf_size: usize) -> Rx {
        let mut bufs = ProvidedBuffers::new(count, buf_size).unwrap();
        for bid in 0..count {
            bufs.push(bid);
        }
        Rx {
            bufs,
            armed: true,
            ready: Vec::new(),
            lent: Vec::new(),
            entries: Vec::new(),
            views: Vec::new(),
            error: None,
            spare: Vec::new(),
            window: u32::from(count),
            period_batches: 0,
            period_peak: 0,
            calls: 0,
            buffers: 0,
            truncated: 0,
        }
    }

    /// Writes what a multishot recvmsg would into buffer `bid`.
    fn fill(rx: &Rx, bid: u16, hdr: [u32; 4], name: &[u8], ctrl: &[u8], payload: &[u8]) -> usize {
        let mut bytes = vec![0u8; PAYLOAD_OFFSET + payload.len()];
        for (i, v) in hdr.iter().enumerate() {
            bytes[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
        }
        bytes[OUT_HDR..OUT_HDR + name.len()].copy_from_slice(name);
        let c = OUT_HDR + NAME_LEN;
        bytes[c..c + ctrl.len()].copy_from_slice(ctrl);
        bytes[PAYLOAD_OFFSET..].copy_from_slice(payload);
        let n = bytes.len().min(rx.bufs.buf_size);
        // SAFETY: test-only; buffer `bid` is `buf_size` bytes and no kernel
        // uses this memory (it was never registered).
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), rx.bufs.buffer(bid).unwrap(), n) };
        bytes.len()
    }

    fn v4_name(port: u16) -> Vec<u8> {
        let mut n = vec![0u8; 16];
        n[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        n[2..4].copy_from_slice(&port.to_be_bytes());
        n[4..8].copy_from_slice(&[10, 0, 0, 7]);
        n
    }

    fn flags(bid: u16) -> u32 {
        F_BUFFER | F_MORE | (u32::from(bid) << 16)
    }

    #[test]
    fn a_well_formed_buffer_becomes_an_entry() {
        let mut rx = new_rx(4, 2048);
        let tos = {
            let mut w = [0u8; 64];
            let mut c = crate::udp::CmsgWriter::new(&mut w);
            c.push_int(libc::IPPROTO_IP, libc::IP_TOS, 2).unwrap();
            let n = c.len();
            w[..n].to_vec()
        };
        let name = v4_name(4433);
        let len = fill(&rx, 2, [16, tos.len() as u32, 5, 0], &name, &tos, b"hello");
        let mut stats = UringStats::default();
        rx.on_cqe(len as i32, flags(2), &mut stats);
        assert_eq!(rx.ready.len(), 1);
        let (bid, e) = rx.ready[0];
        assert_eq!(bid, 2);
        assert_eq!(e.offset, PAYLOAD_OFFSET);
        assert_eq!(e.meta.len, 5);
        assert_eq!(e.meta.source, "10.0.0.7:4433".parse().unwrap());
        assert_eq!(e.meta.ecn, Some(quic_core::connection::EcnCodepoint::Ect0));
        assert_eq!(rx.bufs.in_kernel, 3);
        assert!(rx.armed);
    }

    #[test]
    fn hostile_headers_never_panic_and_return_the_buffer() {
        let mut stats = UringStats::default();
        let name = v4_name(1);
        // (header, cqe length) pairs that must not yield an entry.
        let cases: [([u32; 4], Option<usize>); 4] = [
            // Unknown address family (name all zero).
            ([u32::MAX, u32::MAX, u32::MAX, 0], None),
            // Shorter than the payload offset.
            ([16, 0, 5, 0], Some(PAYLOAD_OFFSET - 1)),
            // Too short for the header itself.
            ([16, 0, 5, 0], Some(3)),
            // Truncated datagram.
            ([16, 0, 5, libc::MSG_TRUNC as u32], None),
        ];
        for (i, (hdr, res)) in cases.into_iter().enumerate() {
            let mut rx = new_rx(2, 1024);
            let n = if i == 0 { &[][..] } else { &name[..] };
            let len = fill(&rx, 0, hdr, n, &[], b"hello");
            rx.on_cqe(res.unwrap_or(len) as i32, flags(0), &mut stats);
            assert!(rx.ready.is_empty(), "case {i}");
            assert_eq!(rx.bufs.in_kernel, 2, "case {i}: buffer back in the ring");
        }
        // Lengths beyond the buffer are clamped, never trusted.
        let mut rx = new_rx(2, 1024);
        fill(&rx, 1, [16, 9999, u32::MAX, 0], &name, &[], b"abc");
        rx.on_cqe(i32::MAX, flags(1), &mut stats);
        assert_eq!(rx.ready.len(), 1);
        assert_eq!(rx.ready[0].1.meta.len, 1024 - PAYLOAD_OFFSET);
        // A buffer id the ring does not have.
        let mut rx = new_rx(2, 1024);
        rx.on_cqe(400, flags(7), &mut stats);
        assert!(rx.ready.is_empty());
    }

    #[test]
    fn ends_of_the_multishot_request_are_told_apart() {
        let mut stats = UringStats::default();
        let mut rx = new_rx(2, 1024);
        rx.on_cqe(-libc::ENOBUFS, 0, &mut stats);
        assert!(!rx.armed);
        assert_eq!(stats.recv_enobufs, 1);
        assert!(rx.error.is_none(), "ENOBUFS is not an error for the caller");
        rx.armed = true;
        rx.on_cqe(-libc::ECONNREFUSED, 0, &mut stats);
        assert!(!rx.armed);
        assert_eq!(stats.recv_other_ends, 1);
        assert_eq!(rx.error.take().unwrap().raw_os_error(), Some(libc::ECONNREFUSED));
        // A completion without a buffer and without error carries nothing.
        rx.armed = true;
        rx.on_cqe(0, F_MORE, &mut stats);
        assert!(rx.armed && rx.ready.is_empty());
    }

    #[test]
    fn descriptors_wrap_and_the_tail_is_published() {
        let mut b = ProvidedBuffers::new(4, 128).unwrap();
        for bid in 0..4 {
            b.push(bid);
        }
        // Full: a fifth push is refused rather than overwrite a descriptor
        // the kernel may read.
        b.push(0);
        assert_eq!((b.tail, b.in_kernel), (4, 4));
        b.in_kernel = 1; // three came back
        for bid in [3, 1, 0] {
            b.push(bid);
        }
        b.publish();
        assert_eq!(b.tail, 7);
        // SAFETY: test-only reads of the descriptor ring we own.
        let (tail, slot2) = unsafe {
            let e0 = b.ring.as_ptr();
            ((*e0).resv, &*e0.add(2))
        };
        assert_eq!(tail, 7);
        assert_eq!(slot2.bid, 0, "slots 4, 5, 6 wrap to 0, 1, 2");
        assert_eq!(slot2.addr, b.buffer(0).unwrap() as u64);
        assert_eq!(slot2.len, 128);
    }

    #[test]
    fn the_window_shrinks_while_batches_stay_small_and_grows_at_enobufs() {
        let mut stats = UringStats::default();
        let mut rx = new_rx(64, 512);
        assert_eq!((rx.window, rx.bufs.in_kernel), (64, 64));
        let lend_round = |rx: &mut Rx, stats: &mut UringStats, n: u16| {
            for _ in 0..SHRINK_PERIOD {
                rx.lent_batch(u32::from(n), stats);
            }
        };
        // Batches of 2: 64 → 32 → 16, never below 16.
        lend_round(&mut rx, &mut stats, 2);
        assert_eq!((rx.window, stats.buffer_window), (32, 32));
        lend_round(&mut rx, &mut stats, 2);
        lend_round(&mut rx, &mut stats, 2);
        assert_eq!(rx.window, 16);
        // Batches of 5 with a window of 16: more than a quarter, it stays.
        rx.set_window(16, &mut stats);
        lend_round(&mut rx, &mut stats, 5);
        assert_eq!(rx.window, 16);

        // The kernel holds 64 (offered before the shrink): returned buffers
        // beyond the window wait as spares, the most recent on top.
        rx.bufs.in_kernel = 16;
        rx.lent.extend([7, 8, 9]);
        rx.give_back();
        assert_eq!(rx.bufs.in_kernel, 16);
        assert_eq!(rx.spare, [7, 8, 9]);
        // ENOBUFS: the window doubles and the spares go in, warmest first.
        rx.on_cqe(-libc::ENOBUFS, 0, &mut stats);
        assert_eq!((rx.window, stats.recv_enobufs), (32, 1));
        let tail = rx.bufs.tail;
        rx.give_back();
        assert_eq!(rx.bufs.in_kernel, 19);
        assert!(rx.spare.is_empty());
        // SAFETY: test-only read of a descriptor we wrote.
        let first = unsafe { (*rx.bufs.ring.as_ptr().add(usize::from(tail & 63))).bid };
        assert_eq!(first, 9);
        // Never wider than the ring.
        for _ in 0..10 {
            rx.on_cqe(-libc::ENOBUFS, 0, &mut stats);
        }
        assert_eq!(rx.window, 64);
    }
}
