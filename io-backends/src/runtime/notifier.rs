//! One file descriptor that becomes readable whenever a runtime has work:
//! a datagram on its socket, or its next timer due (a timerfd armed at the
//! endpoint's deadline, or at once while events wait for the
//! application). Event loops that only know file descriptors (PHP's
//! `stream_select`, amphp's `onReadable`) watch it and call the runtime's
//! non-blocking step when it fires.
//!
//! It is an epoll instance holding the socket and the timerfd: an epoll fd
//! is itself pollable, readable while one of its members is.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Notifier {
    epfd: OwnedFd,
    timer: OwnedFd,
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

impl Notifier {
    /// Watches `socket` (readable) and a timer of its own.
    pub fn new(socket: RawFd) -> io::Result<Self> {
        // SAFETY: plain syscalls; each returned fd is owned at once.
        let epfd = unsafe { OwnedFd::from_raw_fd(check(libc::epoll_create1(libc::EPOLL_CLOEXEC))?) };
        // SAFETY: as above.
        let timer = unsafe { OwnedFd::from_raw_fd(check(libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC))?) };
        for fd in [socket, timer.as_raw_fd()] {
            let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: fd as u64 };
            // SAFETY: `ev` lives across the call; both fds are open.
            check(unsafe { libc::epoll_ctl(epfd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) })?;
        }
        Ok(Self { epfd, timer })
    }

    /// The descriptor to watch for readability.
    pub fn fd(&self) -> RawFd {
        self.epfd.as_raw_fd()
    }

    /// Clears a fired timer and arms it for `deadline` (`None`: disarmed);
    /// a deadline already past makes the descriptor readable at once.
    pub fn arm(&self, deadline: Option<Instant>) -> io::Result<()> {
        let mut expirations = 0u64;
        // SAFETY: reads at most 8 bytes into `expirations`; EAGAIN (not
        // fired) is fine and ignored.
        unsafe { libc::read(self.timer.as_raw_fd(), (&mut expirations as *mut u64).cast(), 8) };
        let after = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        // it_value zero disarms; a due deadline gets the smallest delay.
        let value = match after {
            None => Duration::ZERO,
            Some(d) if d.is_zero() => Duration::from_nanos(1),
            Some(d) => d,
        };
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec {
                tv_sec: libc::time_t::try_from(value.as_secs()).unwrap_or(libc::time_t::MAX),
                tv_nsec: value.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: `spec` lives across the call; no old value is asked for.
        check(unsafe { libc::timerfd_settime(self.timer.as_raw_fd(), 0, &spec, std::ptr::null_mut()) })?;
        Ok(())
    }

    /// Whether the descriptor is readable now (a zero-timeout poll).
    pub fn is_ready(&self) -> bool {
        let mut p = libc::pollfd { fd: self.fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut p, 1, 0) > 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn readable_on_a_datagram_and_on_the_timer() {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_nonblocking(true).unwrap();
        let n = Notifier::new(s.as_raw_fd()).unwrap();
        n.arm(None).unwrap();
        assert!(!n.is_ready());
        // A datagram makes it readable until it is read.
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.send_to(b"x", s.local_addr().unwrap()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert!(n.is_ready());
        let mut buf = [0u8; 8];
        s.recv(&mut buf).unwrap();
        assert!(!n.is_ready());
        // A deadline far out: not yet. One already past: at once; re-arming
        // clears it.
        n.arm(Some(Instant::now() + Duration::from_secs(30))).unwrap();
        assert!(!n.is_ready());
        n.arm(Some(Instant::now())).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(n.is_ready());
        n.arm(None).unwrap();
        assert!(!n.is_ready());
    }
}
