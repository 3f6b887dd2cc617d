//! The ring and everything the kernel may touch: submission, completion
//! handling, sends, and the teardown that waits for the kernel.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use io_uring::types::{Fd, SubmitArgs, Timespec};
use io_uring::{opcode, squeue, IoUring};

use super::*;
use crate::udp::Transport;

/// The ring and everything the kernel may touch.
pub(super) struct Core {
    pub(super) ring: IoUring,
    /// The UDP socket (owned by the backend, which drops it after this).
    pub(super) fd: RawFd,
    pub(super) rx: Rx,
    /// The multishot request's header: the kernel reads `msg_namelen` and
    /// `msg_controllen` when the request is submitted, so it lives at a
    /// fixed address.
    pub(super) recv_msghdr: Box<libc::msghdr>,
    /// Results of the send batch in flight, by message index (`None`: not
    /// completed).
    pub(super) send_results: Vec<Option<i32>>,
    pub(super) poll_out_armed: bool,
    pub(super) writable: bool,
    /// A submission failed for good: requests may be stuck in the queue
    /// pointing at memory that is gone, so the ring is never entered again.
    pub(super) broken: bool,
    pub(super) stats: UringStats,
}

// SAFETY: the raw pointers (`rx.views`, the buffer memory, the msghdr) point
// into allocations this value owns exclusively; the kernel's access to them
// is tied to the ring, not to a thread. Moving the whole backend to another
// thread moves everything they refer to with it.
unsafe impl Send for Core {}

impl Core {
    pub(super) fn check(&self) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::other("io_uring backend unusable after a failed submission"));
        }
        Ok(())
    }

    /// Processes every posted completion.
    pub(super) fn reap(&mut self) {
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

    pub(super) fn push(&mut self, sqe: &squeue::Entry) -> io::Result<()> {
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
    pub(super) fn flush(&mut self) -> io::Result<()> {
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
    pub(super) fn arm_recv(&mut self) -> io::Result<()> {
        if self.rx.armed || self.rx.bufs.in_kernel == 0 {
            return Ok(());
        }
        let sqe = opcode::RecvMsgMulti::new(Fd(self.fd), &*self.recv_msghdr, BUF_GROUP).build().user_data(RECV_TAG);
        self.push(&sqe)?;
        self.rx.armed = true;
        self.stats.recv_arms += 1;
        Ok(())
    }

    pub(super) fn arm_poll_out(&mut self) -> io::Result<()> {
        if self.poll_out_armed {
            return Ok(());
        }
        let sqe = opcode::PollAdd::new(Fd(self.fd), libc::POLLOUT as u32).build().user_data(POLL_OUT_TAG);
        self.push(&sqe)?;
        self.poll_out_armed = true;
        Ok(())
    }

    pub(super) fn readable(&self) -> bool {
        !self.rx.ready.is_empty() || self.rx.error.is_some()
    }

    /// Start of every entry point: the caller's batch is gone, so its
    /// buffers go back, and the receive runs again if it had stopped.
    pub(super) fn turn(&mut self) -> io::Result<()> {
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
