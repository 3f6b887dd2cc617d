//! Batched send with `sendmmsg(2)`, UDP_SEGMENT (GSO) and the fallback to
//! plain datagrams when the kernel or the device refuses segmentation.
//!
//! Each transmit becomes one or more messages: one per group of segments
//! when GSO is on (bounded by the segment limit and the 64 KiB IP packet),
//! one per datagram when it is off. The iovecs point straight at the
//! caller's bytes: nothing is copied.

use std::io;
use std::net::IpAddr;
use std::os::fd::RawFd;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};

use super::addr::{canonical, write_sockaddr, zeroed_storage};
use super::cmsg::{CmsgWriter, SEND_SPACE};
use super::socket::MAX_UDP_PAYLOAD;
use crate::backend::Transmit;

/// Which part of which transmit a prepared message carries.
#[derive(Debug, Clone, Copy, Default)]
struct Piece {
    transmit: usize,
    /// End offset in the transmit's contents.
    end: usize,
    /// The message carries a UDP_SEGMENT cmsg.
    gso: bool,
}

/// Send state of one socket.
pub(crate) struct SendRing {
    socket_v6: bool,
    gso: bool,
    gso_max_segments: usize,
    names: Vec<libc::sockaddr_storage>,
    iovecs: Vec<libc::iovec>,
    control: Vec<u8>,
    hdrs: Vec<libc::mmsghdr>,
    pieces: Vec<Piece>,
    pub(crate) calls: u64,
    pub(crate) messages: u64,
    pub(crate) dropped: u64,
    pub(crate) gso_fallbacks: u64,
    pub(crate) gso_fallback_errno: i32,
}

// SAFETY: the raw pointers in `iovecs` and `hdrs` are written right before
// each sendmmsg (to this ring's buffers and to the caller's borrowed bytes
// for the duration of that call) and never dereferenced by Rust code; stale
// values left between calls are never used.
unsafe impl Send for SendRing {}

impl std::fmt::Debug for SendRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendRing")
            .field("batch", &self.hdrs.len())
            .field("gso", &self.gso)
            .field("gso_max_segments", &self.gso_max_segments)
            .finish_non_exhaustive()
    }
}

/// One log line per process, however many sockets fall back.
static GSO_FALLBACK_LOGGED: AtomicBool = AtomicBool::new(false);

/// What to do after sendmmsg failed on the first message of a call.
enum Failure {
    /// Socket buffer full: stop, the caller waits for writability.
    Full,
    /// Try the same call again.
    Retry,
    /// The kernel/device refused segmentation: resend without GSO.
    GsoRefused,
    /// This message cannot be sent (no route, too big...): skip it.
    DropOne,
    /// The socket itself is broken.
    Fatal(io::Error),
}

/// How prepared messages reach the kernel. The contract is sendmmsg(2)'s:
/// `Ok(k)` when the first `k` messages were sent and the others were not,
/// `Err` with the first message's error when it failed, `Ok(0)` when nothing
/// was taken. An implementation must not return while the kernel may still
/// read the headers or the bytes they point to: the caller's transmits are
/// borrowed only for the call.
pub(crate) trait Transport {
    fn send(&mut self, hdrs: &mut [libc::mmsghdr]) -> io::Result<usize>;
}

/// `sendmmsg(2)` on a socket: the epoll and busy-poll path.
struct Sendmmsg(RawFd);

impl Transport for Sendmmsg {
    fn send(&mut self, hdrs: &mut [libc::mmsghdr]) -> io::Result<usize> {
        let n = libc::c_uint::try_from(hdrs.len()).unwrap_or(libc::c_uint::MAX);
        // SAFETY: `hdrs` are initialised headers whose pointers (filled by
        // `SendRing::prepare`) point at live buffers of the given lengths;
        // the kernel only reads them, and only during this call; `n` does
        // not exceed the slice.
        let rc = unsafe { libc::sendmmsg(self.0, hdrs.as_mut_ptr(), n, 0) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(rc as usize)
    }
}

impl SendRing {
    pub(crate) fn new(batch: usize, socket_v6: bool, gso: bool, gso_max_segments: usize) -> Self {
        let batch = batch.clamp(1, 1024);
        SendRing {
            socket_v6,
            gso: gso && gso_max_segments > 1,
            gso_max_segments: gso_max_segments.max(1),
            names: vec![zeroed_storage(); batch],
            iovecs: vec![libc::iovec { iov_base: ptr::null_mut(), iov_len: 0 }; batch],
            control: vec![0u8; batch * SEND_SPACE],
            // SAFETY: mmsghdr is plain old data; zero is a valid value and
            // every field used is set before each call.
            hdrs: (0..batch).map(|_| unsafe { std::mem::zeroed::<libc::mmsghdr>() }).collect(),
            pieces: vec![Piece::default(); batch],
            calls: 0,
            messages: 0,
            dropped: 0,
            gso_fallbacks: 0,
            gso_fallback_errno: 0,
        }
    }

    pub(crate) fn gso(&self) -> bool {
        self.gso
    }

    pub(crate) fn gso_max_segments(&self) -> usize {
        if self.gso {
            self.gso_max_segments
        } else {
            1
        }
    }

    pub(crate) fn batch(&self) -> usize {
        self.hdrs.len()
    }

    /// See `Backend::send`: through `sendmmsg(2)` on `fd`.
    pub(crate) fn send(&mut self, fd: RawFd, transmits: &mut [Transmit<'_>]) -> io::Result<usize> {
        self.send_via(&mut Sendmmsg(fd), transmits)
    }

    /// See `Backend::send`, with the messages handed to the kernel by
    /// `transport` (sendmmsg, or io_uring SENDMSG requests).
    pub(crate) fn send_via(&mut self, transport: &mut impl Transport, transmits: &mut [Transmit<'_>]) -> io::Result<usize> {
        let mut done = 0;
        while done < transmits.len() {
            let built = self.prepare(transmits, done);
            if built == 0 {
                // Only reachable with an unsendable transmit (e.g. IPv6
                // destination on an IPv4 socket): skip it.
                self.dropped += 1;
                done += 1;
                continue;
            }
            self.calls += 1;
            // The first `built` headers were filled by `prepare`: names and
            // control point into this ring's buffers with their lengths,
            // iovecs point at `transmits`' contents, which are borrowed for
            // this whole function (and `Transport` never keeps them longer).
            let rc = match self.hdrs.get_mut(..built) {
                Some(hdrs) => transport.send(hdrs),
                None => Ok(0),
            };
            let err = match rc {
                Ok(0) => {
                    // Nothing taken and no error: treat as a full buffer.
                    break;
                }
                Ok(sent) => {
                    let sent = sent.min(built);
                    self.messages += sent as u64;
                    done = self.advance(transmits, sent);
                    continue;
                }
                Err(err) => err,
            };
            let errno = err.raw_os_error().unwrap_or(0);
            let first_gso = self.pieces.first().is_some_and(|p| p.gso);
            match classify(err, first_gso) {
                Failure::Full => break,
                Failure::Retry => continue,
                Failure::GsoRefused => match self.send_first_plain(transport, transmits, done) {
                    // The first datagram alone went out: segmentation was
                    // what the kernel refused. The rest follow unsegmented.
                    Ok(()) => {
                        self.disable_gso(errno);
                        self.messages += 1;
                        done = self.advance(transmits, 1);
                    }
                    Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::ENOBUFS)) => break,
                    // Refused without segmentation too: the transmit itself
                    // is unsendable (EINVAL also means port 0, a bad source
                    // address...). Drop it and keep GSO.
                    Err(_) => {
                        self.dropped += 1;
                        done += 1;
                    }
                },
                Failure::DropOne => {
                    self.dropped += 1;
                    done = self.advance(transmits, 1);
                }
                Failure::Fatal(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// Sends the first datagram of `transmits[first]` on its own, without
    /// UDP_SEGMENT, to learn whether segmentation or the transmit was at
    /// fault.
    fn send_first_plain(&mut self, transport: &mut impl Transport, transmits: &[Transmit<'_>], first: usize) -> io::Result<()> {
        let saved = self.gso;
        self.gso = false;
        let built = self.prepare(transmits, first);
        self.gso = saved;
        if built == 0 {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        loop {
            self.calls += 1;
            // Header 0 was just filled by `prepare` and points at this ring's
            // buffers and the borrowed contents.
            let rc = match self.hdrs.get_mut(..1) {
                Some(hdrs) => transport.send(hdrs),
                None => Ok(0),
            };
            match rc {
                Ok(1) => return Ok(()),
                Ok(_) => return Err(io::Error::from_raw_os_error(libc::EAGAIN)),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
    }

    /// Turns GSO off for this socket: the same datagrams are rebuilt as one
    /// message each on the next pass.
    fn disable_gso(&mut self, errno: i32) {
        self.gso = false;
        self.gso_fallbacks += 1;
        self.gso_fallback_errno = errno;
        if !GSO_FALLBACK_LOGGED.swap(true, Ordering::Relaxed) {
            eprintln!(
                "quicpro io: the kernel refused a UDP_SEGMENT (GSO) send ({}); GSO disabled on this socket, sending datagrams one by one",
                io::Error::from_raw_os_error(errno)
            );
        }
    }

    /// Marks the first `sent` prepared messages as gone and returns the index
    /// of the first transmit not completely sent (advancing its contents if
    /// part of it left).
    fn advance(&mut self, transmits: &mut [Transmit<'_>], sent: usize) -> usize {
        let Some(last) = sent.checked_sub(1).and_then(|i| self.pieces.get(i)).copied() else {
            return self.pieces.first().map_or(0, |p| p.transmit);
        };
        let Some(t) = transmits.get_mut(last.transmit) else {
            return transmits.len();
        };
        if last.end >= t.contents.len() {
            last.transmit + 1
        } else {
            t.contents = t.contents.get(last.end..).unwrap_or(&[]);
            last.transmit
        }
    }

    /// Fills headers for transmits from `first` on, as many messages as fit
    /// in one batch. Returns the number of messages prepared.
    fn prepare(&mut self, transmits: &[Transmit<'_>], first: usize) -> usize {
        let batch = self.hdrs.len();
        let mut n = 0;
        for (ti, t) in transmits.iter().enumerate().skip(first) {
            let len = t.contents.len();
            let stride = match t.segment_size {
                Some(s) if s > 0 && s < len => s,
                _ => len,
            };
            // Datagrams per message: as many as the kernel takes in one
            // UDP_SEGMENT send, never more than one IP packet's worth.
            let per_msg = if self.gso && stride < len { self.gso_max_segments.min((MAX_UDP_PAYLOAD / stride.max(1)).max(1)) } else { 1 };
            let chunk = stride.saturating_mul(per_msg).max(1);
            let mut start: usize = 0;
            loop {
                if n == batch {
                    return n;
                }
                let end = start.saturating_add(chunk).min(len);
                let bytes = t.contents.get(start..end).unwrap_or(&[]);
                let gso = bytes.len() > stride;
                if !self.fill_header(n, t, bytes, gso.then_some(stride)) {
                    // Unsendable on this socket; drop the whole transmit if
                    // nothing of it was prepared, else stop before it.
                    if n == 0 {
                        return 0;
                    }
                    return n;
                }
                if let Some(p) = self.pieces.get_mut(n) {
                    *p = Piece { transmit: ti, end, gso };
                }
                n += 1;
                start = end;
                if start >= len {
                    break;
                }
            }
        }
        n
    }

    /// Writes message `i`. Returns false if the destination does not fit the
    /// socket family.
    fn fill_header(&mut self, i: usize, t: &Transmit<'_>, bytes: &[u8], segment: Option<usize>) -> bool {
        let socket_v6 = self.socket_v6;
        let Some(name) = self.names.get_mut(i) else {
            return false;
        };
        let Some(namelen) = write_sockaddr(t.destination, socket_v6, name) else {
            return false;
        };
        let name_ptr: *mut libc::sockaddr_storage = name;

        let Some(ctrl) = self.control.get_mut(i * SEND_SPACE..(i + 1) * SEND_SPACE) else {
            return false;
        };
        let ctrl_ptr = ctrl.as_mut_ptr();
        let mut w = CmsgWriter::new(ctrl);
        // The IPv4 path (an IPv4 socket, or an IPv4-mapped destination on a
        // dual-stack socket) reads SOL_IP options; the IPv6 path SOL_IPV6.
        let v4_path = t.destination.is_ipv4();
        let mut ok = true;
        if let Some(ecn) = t.ecn {
            // RFC 3168 §5 / RFC 9000 §13.4.1: set the ECN codepoint in the
            // low two bits, DSCP left at 0.
            let tos = libc::c_int::from(ecn.bits());
            ok &=
                if v4_path { w.push_int(libc::IPPROTO_IP, libc::IP_TOS, tos).is_ok() } else { w.push_int(libc::IPPROTO_IPV6, libc::IPV6_TCLASS, tos).is_ok() };
        }
        match t.source.map(canonical) {
            Some(IpAddr::V4(src)) if v4_path => {
                // struct in_pktinfo: ifindex 0 (route decides), ipi_spec_dst
                // is the source address to use, ipi_addr unused on send.
                let mut info = [0u8; 12];
                info[4..8].copy_from_slice(&src.octets());
                ok &= w.push(libc::IPPROTO_IP, libc::IP_PKTINFO, &info).is_ok();
            }
            Some(IpAddr::V6(src)) if !v4_path => {
                let mut info = [0u8; 20];
                info[..16].copy_from_slice(&src.octets());
                ok &= w.push(libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &info).is_ok();
            }
            // A source of the other family cannot be used for this
            // destination: let the kernel pick.
            _ => {}
        }
        if let Some(seg) = segment {
            // UDP_SEGMENT takes a u16 (the kernel rejects other lengths).
            let seg = u16::try_from(seg).unwrap_or(u16::MAX);
            ok &= w.push(libc::SOL_UDP, libc::UDP_SEGMENT, &seg.to_ne_bytes()).is_ok();
        }
        let ctrl_len = w.len();
        if !ok {
            return false;
        }

        let Some(iov) = self.iovecs.get_mut(i) else {
            return false;
        };
        // The kernel never writes through a send iovec; the cast to *mut is
        // what the C struct's type requires.
        *iov = libc::iovec { iov_base: bytes.as_ptr().cast_mut().cast(), iov_len: bytes.len() };
        let iov_ptr: *mut libc::iovec = iov;
        let Some(h) = self.hdrs.get_mut(i) else {
            return false;
        };
        h.msg_hdr.msg_name = name_ptr.cast();
        h.msg_hdr.msg_namelen = namelen;
        h.msg_hdr.msg_iov = iov_ptr;
        h.msg_hdr.msg_iovlen = 1;
        h.msg_hdr.msg_control = if ctrl_len == 0 { ptr::null_mut() } else { ctrl_ptr.cast() };
        h.msg_hdr.msg_controllen = ctrl_len as _;
        h.msg_hdr.msg_flags = 0;
        h.msg_len = 0;
        true
    }
}

fn classify(err: io::Error, gso: bool) -> Failure {
    match err.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::ENOBUFS) => Failure::Full,
        Some(libc::EINTR) => Failure::Retry,
        // EIO: the egress device cannot checksum/segment (the well-known
        // UDP_SEGMENT failure on some NICs and tunnels); EINVAL: too many
        // segments or a segment size the path cannot take; EOPNOTSUPP: no
        // GSO on this socket type.
        Some(libc::EIO) | Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) if gso => Failure::GsoRefused,
        Some(libc::EBADF) | Some(libc::ENOTSOCK) | Some(libc::EFAULT) | Some(libc::ENOMEM) => Failure::Fatal(err),
        _ => Failure::DropOne,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn dest() -> SocketAddr {
        "127.0.0.1:4433".parse().unwrap()
    }

    fn t(bytes: &[u8], seg: Option<usize>) -> Transmit<'_> {
        Transmit { destination: dest(), source: None, ecn: None, segment_size: seg, contents: bytes }
    }

    #[test]
    fn segmented_transmit_becomes_one_message_per_group() {
        let mut ring = SendRing::new(32, false, true, 4);
        let data = [0u8; 1000];
        // 10 segments of 100 with at most 4 per message: 4 + 4 + 2.
        let n = ring.prepare(&[t(&data, Some(100))], 0);
        assert_eq!(n, 3);
        let ends: Vec<_> = ring.pieces[..3].iter().map(|p| (p.end, p.gso)).collect();
        assert_eq!(ends, [(400, true), (800, true), (1000, true)]);
        assert_eq!(ring.iovecs[2].iov_len, 200);
    }

    #[test]
    fn a_lone_last_segment_carries_no_udp_segment() {
        let mut ring = SendRing::new(32, false, true, 4);
        let data = [0u8; 450];
        let n = ring.prepare(&[t(&data, Some(100))], 0);
        assert_eq!(n, 2);
        assert_eq!((ring.pieces[1].end, ring.pieces[1].gso), (450, false), "50 bytes: one datagram");
    }

    #[test]
    fn without_gso_every_datagram_is_a_message_and_the_batch_bounds_them() {
        let mut ring = SendRing::new(4, false, false, 64);
        let a = [0u8; 350];
        let b = [0u8; 20];
        let n = ring.prepare(&[t(&a, Some(100)), t(&b, None)], 0);
        assert_eq!(n, 4, "batch of 4 filled by the first transmit's datagrams");
        assert!(ring.pieces[..4].iter().all(|p| p.transmit == 0 && !p.gso));
    }

    #[test]
    fn partial_send_advances_the_transmit_so_a_retry_sends_no_duplicate() {
        let mut ring = SendRing::new(4, false, false, 64);
        let a: Vec<u8> = (0..=255).collect();
        let b = [9u8; 10];
        let mut ts = [t(&a, Some(64)), t(&b, None)];
        assert_eq!(ring.prepare(&ts, 0), 4);
        // The kernel took 3 of the 4 datagrams of transmit 0.
        assert_eq!(ring.advance(&mut ts, 3), 0);
        assert_eq!(ts[0].contents, &a[192..]);
        assert_eq!(ts[0].segment_size, Some(64));
        // Rebuilt from there: the last datagram of 0, then transmit 1.
        assert_eq!(ring.prepare(&ts, 0), 2);
        assert_eq!(ring.advance(&mut ts, 2), 2);
    }

    #[test]
    fn ipv6_destination_on_ipv4_socket_is_not_prepared() {
        let mut ring = SendRing::new(4, false, true, 64);
        let mut tr = t(&[1, 2, 3], None);
        tr.destination = "[::1]:4433".parse().unwrap();
        assert_eq!(ring.prepare(&[tr], 0), 0);
    }
}
