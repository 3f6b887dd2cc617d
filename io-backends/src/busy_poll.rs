//! Busy-poll: trade a core for latency. `wait` spins on non-blocking
//! `recvmmsg` for a bounded time before sleeping in epoll, and the socket asks
//! the kernel to poll the device queue from the receive call itself
//! (SO_BUSY_POLL, SO_PREFER_BUSY_POLL, SO_BUSY_POLL_BUDGET, and the same for
//! epoll through EPIOCSPARAMS).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use crate::backend::{Backend, BackendError, BackendKind, BackendStats, Capabilities, Interest, Readiness, RecvBatch, Transmit};
use crate::epoll::{Epoll, UdpIo};
use crate::udp::{set_int, UdpConfig, UdpSocketInfo, SO_BUSY_POLL, SO_BUSY_POLL_BUDGET, SO_PREFER_BUSY_POLL};

/// Packets the kernel's busy-poll may process per poll when none is asked
/// for (the kernel's own default, BUSY_POLL_BUDGET, is 8).
pub const DEFAULT_BUSY_POLL_BUDGET: u16 = 64;

/// Busy-poll parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusyPollConfig {
    /// How long `wait` spins (and SO_BUSY_POLL's value), in µs.
    pub spin_us: u32,
    /// SO_BUSY_POLL_BUDGET.
    pub budget: u16,
    /// SO_PREFER_BUSY_POLL.
    pub prefer: bool,
}

impl BusyPollConfig {
    pub fn new(spin_us: u32) -> Self {
        BusyPollConfig { spin_us, budget: DEFAULT_BUSY_POLL_BUDGET, prefer: true }
    }
}

/// What the kernel made of one option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptOutcome {
    Accepted,
    /// Refused with this errno (EPERM without CAP_NET_ADMIN, ENOPROTOOPT on
    /// kernels without the option, EINVAL for values out of range).
    Rejected(i32),
    NotTried,
}

impl OptOutcome {
    fn of(r: io::Result<()>) -> Self {
        match r {
            Ok(()) => OptOutcome::Accepted,
            Err(e) => OptOutcome::Rejected(e.raw_os_error().unwrap_or(0)),
        }
    }

    pub fn accepted(self) -> bool {
        self == OptOutcome::Accepted
    }
}

impl fmt::Display for OptOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptOutcome::Accepted => f.write_str("accepted"),
            OptOutcome::Rejected(errno) => {
                write!(f, "rejected ({})", io::Error::from_raw_os_error(*errno))
            }
            OptOutcome::NotTried => f.write_str("not tried"),
        }
    }
}

/// Which busy-poll options the kernel took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusyPollReport {
    pub spin_us: u32,
    pub so_busy_poll: OptOutcome,
    pub so_prefer_busy_poll: OptOutcome,
    pub so_busy_poll_budget: OptOutcome,
    /// EPIOCSPARAMS on the epoll fd (Linux 6.9): busy-poll inside
    /// epoll_wait too.
    pub epoll_params: OptOutcome,
}

impl fmt::Display for BusyPollReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "busy-poll {} µs: SO_BUSY_POLL {}, SO_PREFER_BUSY_POLL {}, SO_BUSY_POLL_BUDGET {}, epoll params {}",
            self.spin_us, self.so_busy_poll, self.so_prefer_busy_poll, self.so_busy_poll_budget, self.epoll_params
        )
    }
}

/// The epoll backend with a spinning `wait`.
#[derive(Debug)]
pub struct BusyPollBackend {
    io: UdpIo,
    epoll: Epoll,
    spin: Duration,
    report: BusyPollReport,
    /// `wait` calls that found data while spinning.
    pub spin_hits: u64,
}

impl BusyPollBackend {
    pub fn open(bind: SocketAddr, udp: &UdpConfig, cfg: BusyPollConfig) -> Result<Self, BackendError> {
        let io = UdpIo::open(bind, udp)?;
        let epoll = Epoll::new(io.fd()).map_err(|e| BackendError::io("epoll", e))?;
        let fd = io.fd();
        let usecs = libc::c_int::try_from(cfg.spin_us).unwrap_or(libc::c_int::MAX);
        let so_busy_poll = OptOutcome::of(set_int(fd, libc::SOL_SOCKET, SO_BUSY_POLL, usecs));
        let so_prefer_busy_poll = OptOutcome::of(set_int(fd, libc::SOL_SOCKET, SO_PREFER_BUSY_POLL, libc::c_int::from(cfg.prefer)));
        let so_busy_poll_budget = OptOutcome::of(set_int(fd, libc::SOL_SOCKET, SO_BUSY_POLL_BUDGET, libc::c_int::from(cfg.budget)));
        let epoll_params = OptOutcome::of(set_epoll_params(epoll.fd(), cfg));
        let report = BusyPollReport { spin_us: cfg.spin_us, so_busy_poll, so_prefer_busy_poll, so_busy_poll_budget, epoll_params };
        Ok(BusyPollBackend { io, epoll, spin: Duration::from_micros(u64::from(cfg.spin_us)), report, spin_hits: 0 })
    }

    pub fn report(&self) -> &BusyPollReport {
        &self.report
    }

    pub fn socket_info(&self) -> &UdpSocketInfo {
        &self.io.info
    }
}

/// Per-epoll busy-poll settings (struct epoll_params, include/uapi/linux/
/// eventpoll.h).
fn set_epoll_params(epfd: RawFd, cfg: BusyPollConfig) -> io::Result<()> {
    let params = libc::epoll_params { busy_poll_usecs: cfg.spin_us, busy_poll_budget: cfg.budget, prefer_busy_poll: u8::from(cfg.prefer), __pad: 0 };
    // SAFETY: EPIOCSPARAMS reads one struct epoll_params from the pointer,
    // which points at a live, fully initialised value.
    let rc = unsafe { libc::ioctl(epfd, libc::EPIOCSPARAMS, &params as *const libc::epoll_params) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl AsRawFd for BusyPollBackend {
    fn as_raw_fd(&self) -> RawFd {
        self.io.fd()
    }
}

impl Backend for BusyPollBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::BusyPoll
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

    /// Spins up to the busy-poll time (never past `timeout`) receiving into
    /// the backend's buffers, so what arrives is handed out by the next
    /// `recv` without another system call; then sleeps in epoll.
    fn wait(&mut self, interest: Interest, timeout: Option<Duration>) -> io::Result<Readiness> {
        let start = Instant::now();
        let mut remaining = timeout;
        if interest.readable {
            let fd = self.io.fd();
            let spin = timeout.map_or(self.spin, |t| t.min(self.spin));
            loop {
                if self.io.recv.fill(fd)? > 0 {
                    self.spin_hits += 1;
                    return Ok(Readiness { readable: true, writable: false });
                }
                if interest.writable {
                    let r = self.epoll.wait(Interest::WRITABLE, Some(Duration::ZERO))?;
                    if r.writable {
                        return Ok(r);
                    }
                }
                if start.elapsed() >= spin {
                    break;
                }
                std::hint::spin_loop();
            }
            remaining = timeout.map(|t| t.saturating_sub(start.elapsed()));
        }
        self.epoll.wait(interest, remaining)
    }
}
