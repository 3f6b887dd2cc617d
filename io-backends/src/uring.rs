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

use std::alloc::{self, Layout};
use std::fmt;
use std::io;
use std::mem::{offset_of, size_of};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use io_uring::types::{BufRingEntry, Fd, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring};
use socket2::Socket;

use crate::backend::{Backend, BackendError, BackendKind, BackendStats, Capabilities, Interest, Readiness, RecvBatch, RecvEntry, RecvMeta, Transmit};
use crate::udp::{open_udp_socket, parse_control, read_sockaddr, SendRing, Transport, UdpConfig, UdpSocketInfo, MAX_UDP_PAYLOAD, RECV_SPACE};

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

/// One descriptor of the provided-buffer ring, `struct io_uring_buf`: the
/// kernel reads them; the `resv` field of entry 0 is the ring's tail, which
/// only we write (`struct io_uring_buf_ring`).
#[repr(C)]
struct PbufEntry {
    addr: u64,
    len: u32,
    bid: u16,
    resv: u16,
}

// The layout the kernel (and the crate's own view of it) expects.
const _: () = assert!(size_of::<PbufEntry>() == size_of::<BufRingEntry>());
const _: () = assert!(size_of::<PbufEntry>() == 16);
const _: () = assert!(offset_of!(PbufEntry, resv) == 14);

/// The buffers a multishot receive fills and the ring that offers them.
struct ProvidedBuffers {
    /// `count` descriptors, page aligned (the kernel maps the ring's pages).
    ring: NonNull<PbufEntry>,
    ring_layout: Layout,
    /// `count` buffers of `buf_size` bytes.
    mem: NonNull<u8>,
    mem_layout: Layout,
    count: u16,
    buf_size: usize,
    /// Next descriptor slot to fill (free-running, wraps at 2^16 like the
    /// kernel's head).
    tail: u16,
    /// Buffers offered to the kernel and not yet handed back by a
    /// completion.
    in_kernel: u32,
    /// The kernel may still write into the buffers: never free them.
    leak: bool,
}

impl ProvidedBuffers {
    fn new(count: u16, buf_size: usize) -> io::Result<Self> {
        let nomem = || io::Error::from_raw_os_error(libc::ENOMEM);
        let ring_bytes = usize::from(count) * size_of::<PbufEntry>();
        let ring_layout = Layout::from_size_align(ring_bytes.max(4096), 4096).map_err(|_| nomem())?;
        let mem_bytes = usize::from(count).checked_mul(buf_size).ok_or_else(nomem)?;
        let mem_layout = Layout::from_size_align(mem_bytes.max(1), 4096).map_err(|_| nomem())?;
        // SAFETY: both layouts have a non-zero size.
        let ring = NonNull::new(unsafe { alloc::alloc_zeroed(ring_layout) }.cast::<PbufEntry>()).ok_or_else(nomem)?;
        // SAFETY: as above. Zeroed so every byte lent out is initialised
        // even if the kernel wrote fewer.
        let Some(mem) = NonNull::new(unsafe { alloc::alloc_zeroed(mem_layout) }) else {
            // SAFETY: `ring` was allocated just above with `ring_layout`.
            unsafe { alloc::dealloc(ring.as_ptr().cast(), ring_layout) };
            return Err(nomem());
        };
        Ok(ProvidedBuffers { ring, ring_layout, mem, mem_layout, count, buf_size, tail: 0, in_kernel: 0, leak: false })
    }

    /// Offers buffer `bid` to the kernel (visible after `publish`). The
    /// caller guarantees `bid` is not in the kernel's hands already.
    fn push(&mut self, bid: u16) {
        if bid >= self.count || self.in_kernel >= u32::from(self.count) {
            return;
        }
        let slot = usize::from(self.tail & (self.count - 1));
        let addr = self.mem.as_ptr() as u64 + (usize::from(bid) * self.buf_size) as u64;
        // SAFETY: `slot` < count, inside the ring allocation. The slot is
        // not one the kernel may read: fewer than `count` buffers are in
        // its hands and the tail has not been published past this slot.
        // Field writes through raw pointers leave `resv` (entry 0's is the
        // tail the kernel reads) untouched.
        unsafe {
            let e = self.ring.as_ptr().add(slot);
            ptr::addr_of_mut!((*e).addr).write(addr);
            ptr::addr_of_mut!((*e).len).write(u32::try_from(self.buf_size).unwrap_or(u32::MAX));
            ptr::addr_of_mut!((*e).bid).write(bid);
        }
        self.tail = self.tail.wrapping_add(1);
        self.in_kernel += 1;
    }

    /// Makes the pushed descriptors visible to the kernel.
    fn publish(&self) {
        // SAFETY: entry 0's `resv` is the ring tail (struct
        // io_uring_buf_ring); u16-aligned, inside the allocation, and the
        // kernel reads it concurrently, hence the atomic. Release orders
        // the descriptor writes before it.
        let tail = unsafe { &*ptr::addr_of!((*self.ring.as_ptr()).resv).cast::<AtomicU16>() };
        tail.store(self.tail, Ordering::Release);
    }

    /// Start of buffer `bid`.
    fn buffer(&self, bid: u16) -> Option<*mut u8> {
        (bid < self.count).then(|| self.mem.as_ptr().wrapping_add(usize::from(bid) * self.buf_size))
    }
}

impl Drop for ProvidedBuffers {
    fn drop(&mut self) {
        if self.leak {
            return;
        }
        // SAFETY: allocated in `new` with these layouts; the owner stopped
        // the kernel's use of both (see `Core::drop`).
        unsafe {
            alloc::dealloc(self.ring.as_ptr().cast(), self.ring_layout);
            alloc::dealloc(self.mem.as_ptr(), self.mem_layout);
        }
    }
}

/// Receive state.
struct Rx {
    bufs: ProvidedBuffers,
    /// A multishot receive is in the kernel.
    armed: bool,
    /// Filled buffers not yet lent: buffer id and what it holds.
    ready: Vec<(u16, RecvEntry)>,
    /// Buffers lent in the last batch.
    lent: Vec<u16>,
    /// The last batch's entries and buffers (`views[i]` is `lent[i]`'s whole
    /// buffer).
    entries: Vec<RecvEntry>,
    views: Vec<*mut [u8]>,
    /// An error the receive request ended with, for the next `recv`.
    error: Option<io::Error>,
    /// Free buffers not offered to the kernel (the window is full); a stack,
    /// so the most recently used, cache-warm ones go back first.
    spare: Vec<u16>,
    /// Most buffers offered to the kernel at once.
    window: u32,
    /// Batches lent and the largest of them since the last window change.
    period_batches: u32,
    period_peak: u32,
    calls: u64,
    buffers: u64,
    truncated: u64,
}

impl Rx {
    /// One completion of the multishot receive.
    fn on_cqe(&mut self, res: i32, flags: u32, stats: &mut UringStats) {
        if !cqueue::more(flags) {
            // The request is over; it is armed again once buffers are free.
            self.armed = false;
            match -res {
                libc::ENOBUFS => {
                    stats.recv_enobufs += 1;
                    // A burst outran the window: widen it.
                    self.set_window((self.window * 2).min(u32::from(self.bufs.count)), stats);
                }
                _ => stats.recv_other_ends += 1,
            }
        }
        let bid = cqueue::buffer_select(flags);
        if bid.is_some() {
            self.bufs.in_kernel = self.bufs.in_kernel.saturating_sub(1);
        }
        if res < 0 {
            if !matches!(-res, libc::ENOBUFS | libc::ECANCELED) {
                self.error = Some(io::Error::from_raw_os_error(-res));
            }
            if let Some(bid) = bid {
                self.recycle(bid);
            }
            return;
        }
        let Some(bid) = bid else { return };
        match self.parse(bid, res as usize) {
            Some(entry) => self.ready.push((bid, entry)),
            // Malformed or truncated: straight back.
            None => self.recycle(bid),
        }
    }

    /// Reads what the kernel wrote into buffer `bid` (`len` bytes):
    /// `io_uring_recvmsg_out`, the name, the control messages, the payload.
    fn parse(&mut self, bid: u16, len: usize) -> Option<RecvEntry> {
        let start = self.bufs.buffer(bid)?;
        let len = len.min(self.bufs.buf_size);
        // SAFETY: the completion handed buffer `bid` back to us, so the
        // kernel no longer writes into it; it is `buf_size` ≥ `len` bytes
        // of initialised (zeroed, then written) memory we own.
        let buf = unsafe { std::slice::from_raw_parts(start.cast_const(), len) };
        let u32_at = |at: usize| -> Option<usize> {
            let b: [u8; 4] = buf.get(at..at + 4)?.try_into().ok()?;
            usize::try_from(u32::from_ne_bytes(b)).ok()
        };
        let (namelen, controllen, payloadlen, msg_flags) = (u32_at(0)?, u32_at(4)?, u32_at(8)?, u32_at(12)?);
        if msg_flags & (libc::MSG_TRUNC as usize) != 0 {
            // Larger than a buffer: a partial datagram would fail
            // authentication anyway.
            self.truncated += 1;
            return None;
        }
        let name = buf.get(OUT_HDR..OUT_HDR + namelen.min(NAME_LEN))?;
        let mut storage = crate::udp::zeroed_storage();
        // SAFETY: `name.len()` ≤ NAME_LEN < size_of::<sockaddr_storage>(),
        // the source is a live slice and the destination a local we own;
        // they do not overlap.
        unsafe { ptr::copy_nonoverlapping(name.as_ptr(), ptr::addr_of_mut!(storage).cast::<u8>(), name.len()) };
        let source = read_sockaddr(&storage, libc::socklen_t::try_from(name.len()).ok()?)?;
        let ctrl_start = OUT_HDR + NAME_LEN;
        let ctrl = buf.get(ctrl_start..ctrl_start + controllen.min(CTRL_LEN))?;
        let payload = len.checked_sub(PAYLOAD_OFFSET)?.min(payloadlen);
        let mut meta = RecvMeta { source, destination: None, ifindex: 0, ecn: None, len: payload, segment_size: None };
        parse_control(ctrl, &mut meta);
        Some(RecvEntry { offset: PAYLOAD_OFFSET, meta })
    }

    fn set_window(&mut self, window: u32, stats: &mut UringStats) {
        self.window = window;
        self.period_batches = 0;
        self.period_peak = 0;
        stats.buffer_window = window;
    }

    /// A free buffer goes to the kernel if the window has room, else to the
    /// spares.
    fn recycle(&mut self, bid: u16) {
        if self.bufs.in_kernel < self.window {
            self.bufs.push(bid);
        } else {
            self.spare.push(bid);
        }
    }

    /// Accounts a batch of `n` buffers lent; shrinks the window when a whole
    /// period's batches stayed under a quarter of it.
    fn lent_batch(&mut self, n: u32, stats: &mut UringStats) {
        self.period_batches += 1;
        self.period_peak = self.period_peak.max(n);
        if self.period_batches < SHRINK_PERIOD {
            return;
        }
        let min = MIN_WINDOW.min(u32::from(self.bufs.count));
        if self.period_peak.saturating_mul(4) <= self.window && self.window / 2 >= min {
            self.set_window(self.window / 2, stats);
        } else {
            self.period_batches = 0;
            self.period_peak = 0;
        }
    }

    /// Returns the last batch's buffers, tops the kernel's ring up to the
    /// window from the spares, and publishes.
    fn give_back(&mut self) {
        for i in 0..self.lent.len() {
            if let Some(&bid) = self.lent.get(i) {
                self.recycle(bid);
            }
        }
        self.lent.clear();
        self.entries.clear();
        self.views.clear();
        while self.bufs.in_kernel < self.window {
            let Some(bid) = self.spare.pop() else { break };
            self.bufs.push(bid);
        }
        self.bufs.publish();
    }
}

/// The ring and everything the kernel may touch.
struct Core {
    ring: IoUring,
    /// The UDP socket (owned by the backend, which drops it after this).
    fd: RawFd,
    rx: Rx,
    /// The multishot request's header: the kernel reads `msg_namelen` and
    /// `msg_controllen` when the request is submitted, so it lives at a
    /// fixed address.
    recv_msghdr: Box<libc::msghdr>,
    /// Results of the send batch in flight, by message index (`None`: not
    /// completed).
    send_results: Vec<Option<i32>>,
    poll_out_armed: bool,
    writable: bool,
    /// A submission failed for good: requests may be stuck in the queue
    /// pointing at memory that is gone, so the ring is never entered again.
    broken: bool,
    stats: UringStats,
}

// SAFETY: the raw pointers (`rx.views`, the buffer memory, the msghdr) point
// into allocations this value owns exclusively; the kernel's access to them
// is tied to the ring, not to a thread. Moving the whole backend to another
// thread moves everything they refer to with it.
unsafe impl Send for Core {}

impl Core {
    fn check(&self) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::other("io_uring backend unusable after a failed submission"));
        }
        Ok(())
    }

    /// Processes every posted completion.
    fn reap(&mut self) {
        let Core { ring, rx, send_results, poll_out_armed, writable, stats, .. } = self;
        for cqe in ring.completion() {
            let (res, flags, tag) = (cqe.result(), cqe.flags(), cqe.user_data());
            match tag {
                RECV_TAG => rx.on_cqe(res, flags, stats),
                POLL_OUT_TAG => {
                    *poll_out_armed = false;
                    // An error (POLLERR) counts as writable too: the next
                    // send reports it.
                    *writable = true;
                }
                t if t & SEND_TAG != 0 => {
                    let i = (t & (SEND_TAG - 1)) as usize;
                    if let Some(slot) = send_results.get_mut(i) {
                        *slot = Some(res);
                    }
                }
                _ => {}
            }
        }
    }

    fn push(&mut self, sqe: &squeue::Entry) -> io::Result<()> {
        // SAFETY: every SQE pushed (by this module's callers only) points at
        // memory that outlives its request: the msghdr box and provided
        // buffers (owned by this Core, kept until the request ends, see
        // `drop`), or the send headers and caller bytes (`send` waits for
        // every completion before returning; if it cannot, the ring is
        // marked broken and never entered again).
        if unsafe { self.ring.submission().push(sqe) }.is_ok() {
            return Ok(());
        }
        self.flush()?;
        // SAFETY: as above.
        unsafe { self.ring.submission().push(sqe) }.map_err(|_| io::Error::other("io_uring submission queue full"))
    }

    /// Submits everything queued, without waiting.
    fn flush(&mut self) -> io::Result<()> {
        let mut stalls = 0;
        while !self.ring.submission().is_empty() {
            self.stats.enters += 1;
            let err = match self.ring.submit() {
                Ok(n) if n > 0 => continue,
                Ok(_) => io::Error::from_raw_os_error(libc::EAGAIN),
                Err(e) => e,
            };
            stalls += 1;
            let transient = matches!(err.raw_os_error(), Some(libc::EINTR) | Some(libc::EAGAIN) | Some(libc::EBUSY));
            if !transient || stalls > 1000 {
                // What stays queued may point at memory about to be
                // released: the ring must never be entered again.
                self.broken = true;
                return Err(err);
            }
            // EBUSY: completions overflowed; make room.
            self.reap();
        }
        Ok(())
    }

    /// Arms the multishot receive if it is not running and buffers are free.
    fn arm_recv(&mut self) -> io::Result<()> {
        if self.rx.armed || self.rx.bufs.in_kernel == 0 {
            return Ok(());
        }
        let sqe = opcode::RecvMsgMulti::new(Fd(self.fd), &*self.recv_msghdr, BUF_GROUP).build().user_data(RECV_TAG);
        self.push(&sqe)?;
        self.rx.armed = true;
        self.stats.recv_arms += 1;
        Ok(())
    }

    fn arm_poll_out(&mut self) -> io::Result<()> {
        if self.poll_out_armed {
            return Ok(());
        }
        let sqe = opcode::PollAdd::new(Fd(self.fd), libc::POLLOUT as u32).build().user_data(POLL_OUT_TAG);
        self.push(&sqe)?;
        self.poll_out_armed = true;
        Ok(())
    }

    fn readable(&self) -> bool {
        !self.rx.ready.is_empty() || self.rx.error.is_some()
    }

    /// Start of every entry point: the caller's batch is gone, so its
    /// buffers go back, and the receive runs again if it had stopped.
    fn turn(&mut self) -> io::Result<()> {
        self.check()?;
        self.rx.give_back();
        self.arm_recv()
    }
}

impl Transport for Core {
    /// The messages as linked SENDMSG requests (a failure cancels the rest,
    /// as sendmmsg stops at the first error), submitted together.
    fn send(&mut self, hdrs: &mut [libc::mmsghdr]) -> io::Result<usize> {
        self.check()?;
        let n = hdrs.len();
        if n == 0 {
            return Ok(0);
        }
        // Room for the whole batch, so it goes in one submission.
        let room = {
            let sq = self.ring.submission();
            sq.capacity() - sq.len()
        };
        if room < n {
            self.flush()?;
        }
        self.send_results.clear();
        self.send_results.resize(n, None);
        for (i, h) in hdrs.iter().enumerate() {
            // MSG_DONTWAIT: a full socket buffer fails the request (EAGAIN)
            // during the submission instead of parking it in the kernel
            // with pointers to bytes we only borrow.
            let mut sqe = opcode::SendMsg::new(Fd(self.fd), &h.msg_hdr).flags(libc::MSG_DONTWAIT as u32).build().user_data(SEND_TAG | i as u64);
            if i + 1 < n {
                sqe = sqe.flags(squeue::Flags::IO_LINK);
            }
            if let Err(e) = self.push(&sqe) {
                // Part of the chain is queued, pointing at the caller's
                // bytes: it must never be submitted.
                self.broken = true;
                return Err(e);
            }
        }
        self.flush()?;
        self.reap();
        if self.send_results.iter().any(Option::is_none) {
            self.stats.send_waits += 1;
        }
        // Never return while a request may still read the headers or the
        // caller's bytes.
        while self.send_results.iter().any(Option::is_none) {
            self.stats.enters += 1;
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR) | Some(libc::EBUSY)) => {}
                Err(e) => {
                    // Cannot tell whether the kernel is done with the
                    // caller's bytes: stop using the ring for good.
                    self.broken = true;
                    return Err(e);
                }
            }
            self.reap();
        }
        let sent = self.send_results.iter().take_while(|r| r.is_some_and(|r| r >= 0)).count();
        if sent > 0 {
            return Ok(sent);
        }
        let errno = self.send_results.first().copied().flatten().map_or(libc::EIO, |r| -r);
        Err(io::Error::from_raw_os_error(errno))
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        if self.broken {
            // Requests may be stuck pointing at the buffers: keep them.
            self.rx.bufs.leak = true;
            return;
        }
        // Stop the multishot receive and wait for its last completion: after
        // it the kernel writes into no buffer, and the memory can go.
        if self.rx.armed {
            let cancel = opcode::AsyncCancel::new(RECV_TAG).build().user_data(CANCEL_TAG);
            if self.push(&cancel).is_ok() {
                let ts = Timespec::from(Duration::from_millis(100));
                let args = SubmitArgs::new().timespec(&ts);
                for _ in 0..50 {
                    if !self.rx.armed {
                        break;
                    }
                    let _ = self.ring.submitter().submit_with_args(1, &args);
                    self.reap();
                }
            }
        }
        if self.rx.armed {
            self.rx.bufs.leak = true;
            return;
        }
        if self.ring.submitter().unregister_buf_ring(BUF_GROUP).is_err() {
            // Still registered: the ring's teardown releases it after the
            // memory would be gone.
            self.rx.bufs.leak = true;
        }
    }
}

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
