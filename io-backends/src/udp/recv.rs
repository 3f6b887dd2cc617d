//! Batched receive with `recvmmsg(2)`: one arena of fixed-size slots, and the
//! names, iovecs, headers and control space for each slot, all allocated
//! once.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::RawFd;
use std::ptr;

use quic_core::connection::EcnCodepoint;

use super::addr::{canonical, read_sockaddr, zeroed_storage};
use super::cmsg::{CmsgIter, RECV_SPACE};
use crate::backend::{RecvBatch, RecvEntry, RecvMeta};

/// Receive state of one socket.
pub(crate) struct RecvRing {
    slot_size: usize,
    arena: Vec<u8>,
    control: Vec<u8>,
    names: Vec<libc::sockaddr_storage>,
    iovecs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    entries: Vec<RecvEntry>,
    /// Headers the kernel wrote into on the last call (it writes only the
    /// ones it filled): the ones whose lengths and flags need resetting.
    dirty: usize,
    /// `entries` hold a batch not yet handed out (busy-poll receives in
    /// `wait` and hands the batch out in the next `recv`).
    pending: bool,
    pub(crate) calls: u64,
    pub(crate) buffers: u64,
    pub(crate) truncated: u64,
}

// SAFETY: the raw pointers inside `iovecs` and `hdrs` only ever point into
// the heap buffers of vectors owned by this same struct, which are never
// resized (moving the struct does not move them); `fill` checks them before
// each recvmmsg and they are never dereferenced by Rust code, so moving the
// ring to another thread moves everything they refer to along with it.
unsafe impl Send for RecvRing {}

impl std::fmt::Debug for RecvRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvRing").field("batch", &self.hdrs.len()).field("slot_size", &self.slot_size).field("pending", &self.pending).finish_non_exhaustive()
    }
}

impl RecvRing {
    pub(crate) fn new(batch: usize, slot_size: usize) -> Self {
        let batch = batch.clamp(1, 1024);
        let slot_size = slot_size.max(1);
        let mut ring = RecvRing {
            slot_size,
            arena: vec![0u8; batch * slot_size],
            control: vec![0u8; batch * RECV_SPACE],
            names: vec![zeroed_storage(); batch],
            iovecs: vec![libc::iovec { iov_base: ptr::null_mut(), iov_len: 0 }; batch],
            // SAFETY: mmsghdr is plain old data (pointers and integers); the
            // zero value is valid and every field is set before use.
            hdrs: (0..batch).map(|_| unsafe { std::mem::zeroed::<libc::mmsghdr>() }).collect(),
            entries: Vec::with_capacity(batch),
            dirty: 0,
            pending: false,
            calls: 0,
            buffers: 0,
            truncated: 0,
        };
        ring.link();
        ring
    }

    /// Points every header at its slot, name and control space, with full
    /// lengths.
    fn link(&mut self) {
        for i in 0..self.hdrs.len() {
            let base = self.arena.as_mut_ptr().wrapping_add(i * self.slot_size);
            if let Some(iov) = self.iovecs.get_mut(i) {
                *iov = libc::iovec { iov_base: base.cast(), iov_len: self.slot_size };
            }
        }
        let iov_base = self.iovecs.as_mut_ptr();
        let name_base = self.names.as_mut_ptr();
        let ctrl_base = self.control.as_mut_ptr();
        for (i, h) in self.hdrs.iter_mut().enumerate() {
            h.msg_hdr.msg_name = name_base.wrapping_add(i).cast();
            h.msg_hdr.msg_iov = iov_base.wrapping_add(i);
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = ctrl_base.wrapping_add(i * RECV_SPACE).cast();
        }
        self.dirty = self.hdrs.len();
    }

    /// Whether the headers still point into this ring's buffers (they
    /// always do: the buffers are never resized; checked, not assumed,
    /// since the kernel writes through them).
    fn linked(&self) -> bool {
        let first = self.hdrs.first().zip(self.iovecs.first());
        first.is_none_or(|(h, v)| {
            ptr::eq(v.iov_base.cast::<u8>(), self.arena.as_ptr())
                && ptr::eq(h.msg_hdr.msg_iov.cast_const(), self.iovecs.as_ptr())
                && ptr::eq(h.msg_hdr.msg_name.cast::<libc::sockaddr_storage>().cast_const(), self.names.as_ptr())
                && ptr::eq(h.msg_hdr.msg_control.cast::<u8>().cast_const(), self.control.as_ptr())
        })
    }

    pub(crate) fn batch(&self) -> usize {
        self.hdrs.len()
    }

    pub(crate) fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// One non-blocking recvmmsg unless a batch is already waiting; returns
    /// how many buffers are waiting now.
    pub(crate) fn fill(&mut self, fd: RawFd) -> io::Result<usize> {
        if self.pending {
            return Ok(self.entries.len());
        }
        self.entries.clear();
        let batch = self.hdrs.len();
        if !self.linked() {
            self.link();
        }
        // The kernel wrote lengths and flags only into the headers it
        // filled last time: per call, work in the datagrams received, not
        // in the batch size (a lone request's turn reset 64 headers).
        for h in self.hdrs.iter_mut().take(self.dirty) {
            h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_hdr.msg_controllen = RECV_SPACE as _;
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
        }
        self.dirty = 0;
        self.calls += 1;
        let n = loop {
            // SAFETY: `hdrs` holds `batch` initialised headers whose name,
            // iovec and control pointers point into this ring's own buffers
            // with the lengths given (set just above); the kernel writes at
            // most those lengths. No timeout pointer: MSG_DONTWAIT returns
            // at once.
            let rc = unsafe { libc::recvmmsg(fd, self.hdrs.as_mut_ptr(), batch as libc::c_uint, libc::MSG_DONTWAIT, ptr::null_mut()) };
            if rc >= 0 {
                break rc as usize;
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Ok(0),
                _ => return Err(err),
            }
        };
        self.dirty = n.min(batch);
        for i in 0..n.min(batch) {
            let (Some(h), Some(name)) = (self.hdrs.get(i), self.names.get(i)) else {
                break;
            };
            if h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                // Larger than a slot: a partial datagram would fail
                // authentication anyway, drop it here.
                self.truncated += 1;
                continue;
            }
            let Some(source) = read_sockaddr(name, h.msg_hdr.msg_namelen) else {
                continue;
            };
            let len = (h.msg_len as usize).min(self.slot_size);
            // size_t on glibc, socklen_t on musl.
            #[allow(clippy::unnecessary_cast)]
            let ctrl_len = (h.msg_hdr.msg_controllen as usize).min(RECV_SPACE);
            let ctrl = self.control.get(i * RECV_SPACE..i * RECV_SPACE + ctrl_len).unwrap_or(&[]);
            let mut meta = RecvMeta { source, destination: None, ifindex: 0, ecn: None, len, segment_size: None };
            parse_control(ctrl, &mut meta);
            self.entries.push(RecvEntry { offset: i * self.slot_size, meta });
        }
        self.buffers += self.entries.len() as u64;
        self.pending = !self.entries.is_empty();
        Ok(self.entries.len())
    }

    /// Hands out the waiting batch (receiving first if none waits).
    pub(crate) fn recv(&mut self, fd: RawFd) -> io::Result<RecvBatch<'_>> {
        self.fill(fd)?;
        self.pending = false;
        Ok(RecvBatch::new(&mut self.arena, &self.entries))
    }
}

/// Fills destination, interface, ECN and GRO segment size from the control
/// messages the kernel attached.
pub(crate) fn parse_control(ctrl: &[u8], meta: &mut RecvMeta) {
    for c in CmsgIter::new(ctrl) {
        match (c.level, c.ty) {
            // struct in_pktinfo { int ipi_ifindex; in_addr ipi_spec_dst;
            // in_addr ipi_addr; }: ipi_addr is the header's destination.
            (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                if let (Some(ifx), Some(addr)) = (c.data.get(0..4), c.data.get(8..12)) {
                    let ifx: [u8; 4] = ifx.try_into().unwrap_or_default();
                    let addr: [u8; 4] = addr.try_into().unwrap_or_default();
                    meta.ifindex = u32::from_ne_bytes(ifx);
                    if meta.destination.is_none() {
                        meta.destination = Some(IpAddr::V4(Ipv4Addr::from(addr)));
                    }
                }
            }
            // struct in6_pktinfo { in6_addr ipi6_addr; unsigned ipi6_ifindex; }
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                if let (Some(addr), Some(ifx)) = (c.data.get(0..16), c.data.get(16..20)) {
                    let addr: [u8; 16] = addr.try_into().unwrap_or_default();
                    let ifx: [u8; 4] = ifx.try_into().unwrap_or_default();
                    meta.ifindex = u32::from_ne_bytes(ifx);
                    meta.destination = Some(canonical(IpAddr::V6(Ipv6Addr::from(addr))));
                }
            }
            // RFC 3168 §5: the ECN field is the low two bits of the TOS /
            // traffic class byte.
            (libc::IPPROTO_IP, libc::IP_TOS) | (libc::IPPROTO_IPV6, libc::IPV6_TCLASS) => {
                if let Some(tos) = c.int() {
                    meta.ecn = EcnCodepoint::from_bits((tos & 0x03) as u8);
                }
            }
            (libc::SOL_UDP, libc::UDP_GRO) => {
                if let Some(size) = c.int().and_then(|s| usize::try_from(s).ok()).filter(|s| *s > 0) {
                    meta.segment_size = Some(size);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    use super::*;

    /// Drains what has arrived, as (source port, bytes).
    fn drain(ring: &mut RecvRing, fd: RawFd) -> Vec<(u16, Vec<u8>)> {
        let mut out = Vec::new();
        let mut batch = ring.recv(fd).unwrap();
        while let Some((meta, buf)) = batch.next_buffer() {
            out.push((meta.source.port(), buf.to_vec()));
        }
        out
    }

    fn wait_readable(s: &UdpSocket) {
        s.set_nonblocking(false).unwrap();
        let mut b = [0u8; 1];
        let _ = s.peek_from(&mut b);
        s.set_nonblocking(true).unwrap();
    }

    #[test]
    fn successive_batches_of_any_size_read_their_own_lengths_and_sources() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        let (a, b) = (UdpSocket::bind("127.0.0.1:0").unwrap(), UdpSocket::bind("127.0.0.1:0").unwrap());
        let (pa, pb) = (a.local_addr().unwrap().port(), b.local_addr().unwrap().port());
        let mut ring = RecvRing::new(4, 64);
        // A full batch, with one datagram too large for a slot (dropped,
        // the headers after it still read right); then fewer than the
        // batch; then more than the batch, over two calls.
        let rounds: [&[(bool, usize)]; 3] =
            [&[(true, 10), (false, 64), (true, 65), (false, 1)], &[(false, 3)], &[(true, 5), (true, 6), (false, 7), (true, 8), (false, 9)]];
        for (r, round) in rounds.iter().enumerate() {
            for (i, (from_a, len)) in round.iter().enumerate() {
                let s = if *from_a { &a } else { &b };
                s.send_to(&vec![(r * 16 + i) as u8; *len], rx.local_addr().unwrap()).unwrap();
            }
            wait_readable(&rx);
            let mut got = Vec::new();
            let expected = round.iter().filter(|(_, l)| *l <= 64).count();
            for _ in 0..1000 {
                if got.len() >= expected {
                    break;
                }
                got.extend(drain(&mut ring, rx.as_raw_fd()));
            }
            let want: Vec<(u16, Vec<u8>)> = round
                .iter()
                .enumerate()
                .filter(|(_, (_, len))| *len <= 64)
                .map(|(i, (from_a, len))| (if *from_a { pa } else { pb }, vec![(r * 16 + i) as u8; *len]))
                .collect();
            assert_eq!(got, want, "round {r}");
        }
        assert_eq!(ring.truncated, 1);
        assert!(ring.linked());
    }
}
