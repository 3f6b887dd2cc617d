//! The portable kernel path: a non-blocking UDP socket driven with
//! `recvmmsg`/`sendmmsg`, sleeping in `epoll_pwait2` (`epoll_wait` where the
//! kernel or a tracer lacks it).

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use socket2::Socket;

use crate::backend::{Backend, BackendError, BackendKind, BackendStats, Capabilities, Interest, Readiness, RecvBatch, Transmit};
use crate::udp::{open_udp_socket, RecvRing, SendRing, UdpConfig, UdpSocketInfo};

/// An epoll instance watching one fd, level-triggered.
#[derive(Debug)]
pub(crate) struct Epoll {
    epfd: OwnedFd,
    target: RawFd,
    registered: Interest,
    /// The kernel (before Linux 5.11) or a tracer such as valgrind lacks
    /// `epoll_pwait2`: `epoll_wait` with the timeout rounded up to
    /// milliseconds instead.
    ms_only: bool,
}

impl Epoll {
    pub(crate) fn new(target: RawFd) -> io::Result<Self> {
        // SAFETY: plain system call with a flag argument.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by epoll_create1 and nothing else
        // owns it.
        let epfd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut ep = Epoll { epfd, target, registered: Interest::READABLE, ms_only: false };
        ep.ctl(libc::EPOLL_CTL_ADD, Interest::READABLE)?;
        Ok(ep)
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.epfd.as_raw_fd()
    }

    fn ctl(&mut self, op: libc::c_int, interest: Interest) -> io::Result<()> {
        let mut events = 0u32;
        if interest.readable {
            events |= libc::EPOLLIN as u32;
        }
        if interest.writable {
            events |= libc::EPOLLOUT as u32;
        }
        let mut ev = libc::epoll_event { events, u64: 0 };
        // SAFETY: both fds are open (the target is owned by the backend that
        // owns this Epoll); `ev` is valid for the call.
        let rc = unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), op, self.target, &mut ev) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        self.registered = interest;
        Ok(())
    }

    /// Waits for `interest` on the target; the registration changes only
    /// when the interest does. µs precision through epoll_pwait2 (Linux
    /// 5.11), so QUIC timers are not rounded up to milliseconds.
    pub(crate) fn wait(&mut self, interest: Interest, timeout: Option<Duration>) -> io::Result<Readiness> {
        if interest != self.registered {
            self.ctl(libc::EPOLL_CTL_MOD, interest)?;
        }
        let mut ev = [libc::epoll_event { events: 0, u64: 0 }; 1];
        let mut rc = -1;
        if !self.ms_only {
            let ts = timeout.map(|d| libc::timespec {
                tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
                tv_nsec: d.subsec_nanos() as libc::c_long,
            });
            let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
            // SAFETY: `ev` has room for the 1 event passed as maxevents; the
            // timespec (if any) lives across the call; no signal mask.
            rc = unsafe { libc::epoll_pwait2(self.epfd.as_raw_fd(), ev.as_mut_ptr(), 1, ts_ptr, std::ptr::null()) };
            if rc < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
                self.ms_only = true;
            }
        }
        if self.ms_only {
            // Rounded up: a timer must not fire early (a wake-up before the
            // deadline would find nothing due and spin).
            let ms = timeout.map_or(-1, |d| libc::c_int::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(libc::c_int::MAX));
            // SAFETY: `ev` has room for the 1 event passed as maxevents.
            rc = unsafe { libc::epoll_wait(self.epfd.as_raw_fd(), ev.as_mut_ptr(), 1, ms) };
        }
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                return Ok(Readiness::default());
            }
            return Err(err);
        }
        if rc == 0 {
            return Ok(Readiness::default());
        }
        let events = ev[0].events;
        // An error or hang-up is reported as readable so the next recv
        // surfaces it.
        let err = events & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0;
        Ok(Readiness { readable: events & libc::EPOLLIN as u32 != 0 || err, writable: events & libc::EPOLLOUT as u32 != 0 })
    }
}

/// The UDP socket with its batches: the part every kernel-UDP backend shares.
#[derive(Debug)]
pub(crate) struct UdpIo {
    pub(crate) socket: Socket,
    pub(crate) info: UdpSocketInfo,
    pub(crate) recv: RecvRing,
    pub(crate) send: SendRing,
}

impl UdpIo {
    pub(crate) fn open(bind: SocketAddr, cfg: &UdpConfig) -> Result<Self, BackendError> {
        let (socket, info) = open_udp_socket(bind, cfg)?;
        let slot = if info.gro { cfg.recv_buffer_size.max(crate::udp::MAX_UDP_PAYLOAD) } else { cfg.recv_buffer_size };
        Ok(UdpIo { recv: RecvRing::new(cfg.batch, slot), send: SendRing::new(cfg.batch, bind.is_ipv6(), info.gso, cfg.gso_max_segments), socket, info })
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    pub(crate) fn capabilities(&self) -> Capabilities {
        Capabilities {
            gso: self.send.gso(),
            gro: self.info.gro,
            max_gso_segments: self.send.gso_max_segments(),
            recv_batch: self.recv.batch(),
            send_batch: self.send.batch(),
            recv_buffer_size: self.recv.slot_size(),
            recv_ecn: true,
            recv_destination: true,
        }
    }

    pub(crate) fn stats(&self) -> BackendStats {
        BackendStats {
            recv_calls: self.recv.calls,
            recv_buffers: self.recv.buffers,
            recv_truncated: self.recv.truncated,
            send_calls: self.send.calls,
            send_messages: self.send.messages,
            send_dropped: self.send.dropped,
            gso_fallbacks: self.send.gso_fallbacks,
            gso_fallback_errno: self.send.gso_fallback_errno,
        }
    }
}

/// `recvmmsg`/`sendmmsg` batches, `epoll_pwait2` to sleep.
#[derive(Debug)]
pub struct EpollBackend {
    io: UdpIo,
    epoll: Epoll,
}

impl EpollBackend {
    pub fn open(bind: SocketAddr, cfg: &UdpConfig) -> Result<Self, BackendError> {
        let io = UdpIo::open(bind, cfg)?;
        let epoll = Epoll::new(io.fd()).map_err(|e| BackendError::io("epoll", e))?;
        Ok(EpollBackend { io, epoll })
    }

    /// What the kernel granted for the socket.
    pub fn socket_info(&self) -> &UdpSocketInfo {
        &self.io.info
    }
}

impl AsRawFd for EpollBackend {
    fn as_raw_fd(&self) -> RawFd {
        self.io.fd()
    }
}

impl Backend for EpollBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Epoll
    }

    fn local_addr(&self) -> SocketAddr {
        self.io.info.local_addr
    }

    fn capabilities(&self) -> Capabilities {
        self.io.capabilities()
    }

    fn stats(&self) -> BackendStats {
        self.io.stats()
    }

    fn recv(&mut self) -> io::Result<RecvBatch<'_>> {
        let fd = self.io.fd();
        self.io.recv.recv(fd)
    }

    fn send(&mut self, transmits: &mut [Transmit<'_>]) -> io::Result<usize> {
        let fd = self.io.fd();
        self.io.send.send(fd, transmits)
    }

    fn wait(&mut self, interest: Interest, timeout: Option<Duration>) -> io::Result<Readiness> {
        self.epoll.wait(interest, timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both waits — `epoll_pwait2` and the millisecond `epoll_wait` used
    /// where it is missing — time out with nothing to read and report a
    /// datagram once one is queued.
    #[test]
    fn both_waits_report_readiness() {
        for ms_only in [false, true] {
            let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let mut ep = Epoll::new(rx.as_raw_fd()).unwrap();
            ep.ms_only = ms_only;
            let idle = ep.wait(Interest::READABLE, Some(Duration::from_micros(300))).unwrap();
            assert!(!idle.readable, "nothing sent yet (ms_only {ms_only})");
            tx.send_to(b"x", rx.local_addr().unwrap()).unwrap();
            let ready = ep.wait(Interest::READABLE, Some(Duration::from_secs(5))).unwrap();
            assert!(ready.readable, "a datagram is queued (ms_only {ms_only})");
        }
    }
}
