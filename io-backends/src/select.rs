//! Which backend a worker runs, from the environment knobs of the product
//! documents:
//!
//! 1. `QUICPRO_BACKEND=epoll|io_uring|busy_poll` forces one.
//! 2. Else `QUICPRO_XDP=<ifname>` asks for AF_XDP on that interface.
//! 3. Else `QUICPRO_BUSY_POLL=<µs>` greater than 0 selects busy-poll.
//! 4. Else io_uring, with epoll as the fallback when io_uring cannot be set
//!    up (old kernel, seccomp, `kernel.io_uring_disabled`): the reason is
//!    logged once per process and shown in the start-up line.
//!
//! `QUICPRO_BACKEND=io_uring` never falls back: opening fails with the
//! reason. Neither does AF_XDP: an interface without XDP support, missing
//! privileges or a verifier rejection is an error naming the cause (and
//! saying to unset QUICPRO_XDP), not a silent switch to another path.
//!
//! AF_XDP binds the queue `BackendConfig::xdp_queue` (the server sets it to
//! its worker id) in native mode, or generic mode with
//! `QUICPRO_XDP_MODE=skb`; with `QUICPRO_BUSY_POLL` also set, the XSK
//! busy-polls.
//!
//! `QUICPRO_URING_SIMULATE_FAILURE=1` makes io_uring setup fail as if the
//! kernel refused it ([`UringConfig::simulate_setup_failure`]), so the
//! fallback can be tested end to end on hosts where io_uring works.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::backend::{Backend, BackendError, BackendKind};
use crate::busy_poll::{BusyPollBackend, BusyPollConfig, DEFAULT_BUSY_POLL_BUDGET};
use crate::epoll::EpollBackend;
use crate::udp::UdpConfig;
use crate::uring::{OpenError, UringBackend, UringConfig};
use crate::xdp::{AfXdpBackend, AfXdpConfig};
use bpf::xdp::XdpMode;

pub const ENV_BACKEND: &str = "QUICPRO_BACKEND";
pub const ENV_XDP: &str = "QUICPRO_XDP";
pub const ENV_BUSY_POLL: &str = "QUICPRO_BUSY_POLL";
pub const ENV_XDP_MODE: &str = "QUICPRO_XDP_MODE";
pub const ENV_URING_SIMULATE_FAILURE: &str = "QUICPRO_URING_SIMULATE_FAILURE";

/// Spin time when `QUICPRO_BACKEND=busy_poll` is given without
/// `QUICPRO_BUSY_POLL`.
pub const DEFAULT_BUSY_POLL_US: u32 = 50;

/// Longest busy-poll spin accepted (1 s): beyond that it is a typo, not a
/// latency setting.
pub const MAX_BUSY_POLL_US: u32 = 1_000_000;

const XDP_NEEDS_INTERFACE: &str = "af_xdp: needs QUICPRO_XDP=<interface>; unset it to use the kernel UDP path";

/// One fallback log line per process, however many workers open.
static URING_FALLBACK_LOGGED: AtomicBool = AtomicBool::new(false);

/// The knobs, parsed. Tests build it directly instead of touching the
/// process environment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BackendConfig {
    /// `QUICPRO_BACKEND`.
    pub forced: Option<BackendKind>,
    /// `QUICPRO_XDP`: interface for AF_XDP.
    pub xdp_interface: Option<String>,
    /// `QUICPRO_XDP_MODE=skb`: generic XDP instead of native (driver) mode.
    pub xdp_skb_mode: bool,
    /// NIC queue the AF_XDP socket binds (one worker per queue; the
    /// server sets its worker id here).
    pub xdp_queue: u32,
    /// `QUICPRO_BUSY_POLL` in µs; 0 is off.
    pub busy_poll_us: u32,
    /// SO_BUSY_POLL_BUDGET for busy-poll (default 64).
    pub busy_poll_budget: Option<u16>,
    /// Socket options and batch sizes.
    pub udp: UdpConfig,
    /// io_uring buffers (and the test switch that makes its setup fail).
    pub uring: UringConfig,
}

impl BackendConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, BackendError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the knobs through `lookup` (name → value); empty values count
    /// as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, BackendError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let forced = match get(ENV_BACKEND) {
            None => None,
            Some(v) => Some(match v.to_ascii_lowercase().as_str() {
                "epoll" => BackendKind::Epoll,
                "io_uring" | "iouring" | "io-uring" => BackendKind::IoUring,
                "busy_poll" | "busypoll" | "busy-poll" => BackendKind::BusyPoll,
                _ => return Err(BackendError::InvalidConfig { var: ENV_BACKEND, value: v, reason: "expected epoll, io_uring or busy_poll" }),
            }),
        };
        let xdp_interface = get(ENV_XDP);
        if let Some(name) = &xdp_interface {
            // IFNAMSIZ is 16 including the terminating NUL.
            if name.len() >= libc::IFNAMSIZ || name.contains(['/', ' ', '\0']) {
                return Err(BackendError::InvalidConfig { var: ENV_XDP, value: name.clone(), reason: "not a network interface name" });
            }
        }
        let xdp_skb_mode = match get(ENV_XDP_MODE).map(|v| v.to_ascii_lowercase()) {
            None => false,
            Some(v) if v == "native" || v == "drv" => false,
            Some(v) if v == "skb" || v == "generic" => true,
            Some(v) => return Err(BackendError::InvalidConfig { var: ENV_XDP_MODE, value: v, reason: "expected native or skb" }),
        };
        let busy_poll_us = match get(ENV_BUSY_POLL) {
            None => 0,
            Some(v) => match v.parse::<u32>() {
                Ok(us) if us <= MAX_BUSY_POLL_US => us,
                _ => return Err(BackendError::InvalidConfig { var: ENV_BUSY_POLL, value: v, reason: "expected microseconds, 0 to 1000000" }),
            },
        };
        let simulate_setup_failure = match get(ENV_URING_SIMULATE_FAILURE).as_deref() {
            None | Some("0") => false,
            Some("1") => true,
            Some(v) => return Err(BackendError::InvalidConfig { var: ENV_URING_SIMULATE_FAILURE, value: v.to_owned(), reason: "expected 0 or 1" }),
        };
        Ok(BackendConfig {
            forced,
            xdp_interface,
            xdp_skb_mode,
            xdp_queue: 0,
            busy_poll_us,
            busy_poll_budget: None,
            udp: UdpConfig::default(),
            uring: UringConfig { simulate_setup_failure, ..UringConfig::default() },
        })
    }
}

/// The decision, before any socket is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    pub kind: BackendKind,
    /// Busy-poll spin time (busy-poll only).
    pub busy_poll_us: u32,
    /// Why, for the start-up line.
    pub reason: &'static str,
}

/// Applies the selection rules. Errors when the chosen backend is not
/// available in this build.
pub fn choose(cfg: &BackendConfig) -> Result<Choice, BackendError> {
    match cfg.forced {
        Some(BackendKind::Epoll) => return Ok(Choice { kind: BackendKind::Epoll, busy_poll_us: 0, reason: "forced by QUICPRO_BACKEND" }),
        Some(BackendKind::BusyPoll) => {
            let (us, reason) = if cfg.busy_poll_us > 0 {
                (cfg.busy_poll_us, "forced by QUICPRO_BACKEND")
            } else {
                (DEFAULT_BUSY_POLL_US, "forced by QUICPRO_BACKEND, QUICPRO_BUSY_POLL unset: default spin")
            };
            return Ok(Choice { kind: BackendKind::BusyPoll, busy_poll_us: us, reason });
        }
        Some(BackendKind::IoUring) => return Ok(Choice { kind: BackendKind::IoUring, busy_poll_us: 0, reason: "forced by QUICPRO_BACKEND" }),
        Some(BackendKind::AfXdp) if cfg.xdp_interface.is_none() => return Err(BackendError::Unavailable(XDP_NEEDS_INTERFACE)),
        Some(BackendKind::AfXdp) | None => {}
    }
    if cfg.xdp_interface.is_some() {
        return Ok(Choice { kind: BackendKind::AfXdp, busy_poll_us: cfg.busy_poll_us, reason: "QUICPRO_XDP set" });
    }
    if cfg.busy_poll_us > 0 {
        return Ok(Choice { kind: BackendKind::BusyPoll, busy_poll_us: cfg.busy_poll_us, reason: "QUICPRO_BUSY_POLL set" });
    }
    Ok(Choice { kind: BackendKind::IoUring, busy_poll_us: 0, reason: "default" })
}

/// Chooses and opens the backend bound to `bind`. Returns it with the one
/// line to log at start-up. When the default io_uring cannot be set up, the
/// epoll backend is opened instead (the line says why, and so does one
/// stderr line per process); a forced io_uring fails with the reason.
pub fn open(cfg: &BackendConfig, bind: SocketAddr) -> Result<(Box<dyn Backend>, String), BackendError> {
    let choice = choose(cfg)?;
    match choice.kind {
        BackendKind::BusyPoll => {
            let mut bp = BusyPollConfig::new(choice.busy_poll_us);
            bp.budget = cfg.busy_poll_budget.unwrap_or(DEFAULT_BUSY_POLL_BUDGET);
            let b = BusyPollBackend::open(bind, &cfg.udp, bp)?;
            let line = describe(&b, choice.reason, &format!("{}; {}", b.socket_info(), b.report()));
            Ok((Box::new(b), line))
        }
        BackendKind::IoUring => match UringBackend::open_detailed(bind, &cfg.udp, &cfg.uring) {
            Ok(b) => {
                let details = format!("{}; {} provided buffers", b.socket_info(), b.buffer_count());
                let line = describe(&b, choice.reason, &details);
                Ok((Box::new(b), line))
            }
            Err(OpenError::Uring(why)) if cfg.forced.is_none() => {
                if !URING_FALLBACK_LOGGED.swap(true, Ordering::Relaxed) {
                    eprintln!("quicpro io: io_uring unavailable ({why}); using epoll");
                }
                let b = EpollBackend::open(bind, &cfg.udp)?;
                let reason = format!("io_uring unavailable: {why}; fallback");
                let line = describe(&b, &reason, &b.socket_info().to_string());
                Ok((Box::new(b), line))
            }
            Err(OpenError::Uring(e) | OpenError::Socket(e)) => Err(e),
        },
        BackendKind::AfXdp => {
            let ifname = cfg.xdp_interface.as_deref().ok_or(BackendError::Unavailable(XDP_NEEDS_INTERFACE))?;
            let mut x = AfXdpConfig::new(ifname, cfg.xdp_queue);
            x.mode = if cfg.xdp_skb_mode { XdpMode::Skb } else { XdpMode::Native };
            x.busy_poll_us = choice.busy_poll_us;
            x.busy_poll_budget = cfg.busy_poll_budget.unwrap_or(DEFAULT_BUSY_POLL_BUDGET);
            let b = AfXdpBackend::open(bind, &cfg.udp, &x).map_err(|e| BackendError::AfXdp(Box::new(e)))?;
            let line = describe(&b, choice.reason, &b.describe());
            Ok((Box::new(b), line))
        }
        _ => {
            let b = EpollBackend::open(bind, &cfg.udp)?;
            let line = describe(&b, choice.reason, &b.socket_info().to_string());
            Ok((Box::new(b), line))
        }
    }
}

fn describe(b: &dyn Backend, reason: &str, details: &str) -> String {
    let caps = b.capabilities();
    format!("io backend {} ({}): {}; batch {} × {} B", b.kind(), reason, details, caps.recv_batch, caps.recv_buffer_size)
}
