//! Receive state: the multishot `recvmsg`, the buffers handed back by
//! completions and the ones lent to the caller's batch.

use std::io;
use std::ptr::{self};

use io_uring::cqueue;

use super::*;
use crate::backend::{RecvEntry, RecvMeta};
use crate::udp::{parse_control, read_sockaddr};

/// Receive state.
pub(super) struct Rx {
    pub(super) bufs: ProvidedBuffers,
    /// A multishot receive is in the kernel.
    pub(super) armed: bool,
    /// Filled buffers not yet lent: buffer id and what it holds.
    pub(super) ready: Vec<(u16, RecvEntry)>,
    /// Buffers lent in the last batch.
    pub(super) lent: Vec<u16>,
    /// The last batch's entries and buffers (`views[i]` is `lent[i]`'s whole
    /// buffer).
    pub(super) entries: Vec<RecvEntry>,
    pub(super) views: Vec<*mut [u8]>,
    /// An error the receive request ended with, for the next `recv`.
    pub(super) error: Option<io::Error>,
    /// Free buffers not offered to the kernel (the window is full); a stack,
    /// so the most recently used, cache-warm ones go back first.
    pub(super) spare: Vec<u16>,
    /// Most buffers offered to the kernel at once.
    pub(super) window: u32,
    /// Batches lent and the largest of them since the last window change.
    pub(super) period_batches: u32,
    pub(super) period_peak: u32,
    pub(super) calls: u64,
    pub(super) buffers: u64,
    pub(super) truncated: u64,
}

impl Rx {
    /// One completion of the multishot receive.
    pub(super) fn on_cqe(&mut self, res: i32, flags: u32, stats: &mut UringStats) {
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
    pub(super) fn parse(&mut self, bid: u16, len: usize) -> Option<RecvEntry> {
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

    pub(super) fn set_window(&mut self, window: u32, stats: &mut UringStats) {
        self.window = window;
        self.period_batches = 0;
        self.period_peak = 0;
        stats.buffer_window = window;
    }

    /// A free buffer goes to the kernel if the window has room, else to the
    /// spares.
    pub(super) fn recycle(&mut self, bid: u16) {
        if self.bufs.in_kernel < self.window {
            self.bufs.push(bid);
        } else {
            self.spare.push(bid);
        }
    }

    /// Accounts a batch of `n` buffers lent; shrinks the window when a whole
    /// period's batches stayed under a quarter of it.
    pub(super) fn lent_batch(&mut self, n: u32, stats: &mut UringStats) {
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
    pub(super) fn give_back(&mut self) {
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
