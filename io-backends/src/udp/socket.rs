//! Opening a UDP socket with the options a QUIC server wants, and reporting
//! what the kernel actually granted.

use std::fmt;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, RawFd};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::hook::SocketHook;
use super::sockopt::{self, SO_RCVBUFFORCE, SO_SNDBUFFORCE};
use crate::backend::BackendError;

/// Largest UDP payload in one IP packet (65535 − 8 UDP − 20 IPv4 header);
/// one GRO buffer never exceeds it.
pub const MAX_UDP_PAYLOAD: usize = 65_507;

/// Segments per UDP_SEGMENT send every GSO-capable kernel accepts
/// (UDP_MAX_SEGMENTS was 64 up to Linux 6.8; newer kernels allow 128).
pub const DEFAULT_GSO_SEGMENTS: usize = 64;

/// How to open the socket and size the batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpConfig {
    /// SO_REUSEPORT, so one worker per core can bind the same port.
    pub reuse_port: bool,
    /// IPV6_V6ONLY for sockets bound to an IPv6 address; off gives a
    /// dual-stack socket when bound to `[::]`.
    pub v6_only: bool,
    /// Wanted SO_RCVBUF / SO_SNDBUF in bytes.
    pub recv_buffer: usize,
    pub send_buffer: usize,
    /// Try UDP_GRO on receive.
    pub gro: bool,
    /// Use UDP_SEGMENT on send when the kernel has it.
    pub gso: bool,
    /// Most datagrams per segmented send. Above the kernel's
    /// UDP_MAX_SEGMENTS the kernel refuses the send with EINVAL (and the
    /// backend falls back to plain sends), which tests use on purpose.
    pub gso_max_segments: usize,
    /// Buffers per recvmmsg / messages per sendmmsg.
    pub batch: usize,
    /// Size of each receive buffer; 64 KiB holds any GRO-coalesced buffer.
    pub recv_buffer_size: usize,
    /// Run on the socket right after bind (e.g. joining a connection-ID
    /// steering group); `None` by default.
    pub after_bind: Option<SocketHook>,
}

impl Default for UdpConfig {
    fn default() -> Self {
        UdpConfig {
            reuse_port: true,
            v6_only: false,
            recv_buffer: 8 << 20,
            send_buffer: 8 << 20,
            gro: true,
            gso: true,
            gso_max_segments: DEFAULT_GSO_SEGMENTS,
            batch: 32,
            recv_buffer_size: MAX_UDP_PAYLOAD,
            after_bind: None,
        }
    }
}

/// A socket buffer size as asked and as granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferSize {
    pub requested: usize,
    /// What getsockopt reports afterwards (Linux doubles the value set to
    /// account for its bookkeeping overhead, see socket(7)).
    pub effective: usize,
    /// Set with SO_*BUFFORCE (CAP_NET_ADMIN), past net.core.*mem_max.
    pub forced: bool,
}

/// What the kernel accepted when the socket was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpSocketInfo {
    pub local_addr: SocketAddr,
    /// IPv6 socket that also carries IPv4 (IPV6_V6ONLY off).
    pub dual_stack: bool,
    pub reuse_port: bool,
    pub recv_buffer: BufferSize,
    pub send_buffer: BufferSize,
    /// UDP_GRO was accepted.
    pub gro: bool,
    /// UDP_SEGMENT is known to the kernel (and asked for).
    pub gso: bool,
    /// IP(V6)_MTU_DISCOVER = PMTUDISC_PROBE accepted: DF set, no
    /// fragmentation, the kernel's path-MTU cache ignored (DPLPMTUD probes
    /// its own sizes, RFC 9000 §14.3).
    pub pmtud_probe: bool,
}

impl fmt::Display for UdpSocketInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let on = |b: bool| if b { "on" } else { "off" };
        let buf = |b: BufferSize| (b.effective, if b.forced { " (forced)" } else { "" });
        let (rcv, rf) = buf(self.recv_buffer);
        let (snd, sf) = buf(self.send_buffer);
        write!(
            f,
            "udp {}{}; gso {}, gro {}, reuseport {}; rcvbuf {rcv} B{rf}, sndbuf {snd} B{sf}",
            self.local_addr,
            if self.dual_stack { " dual-stack" } else { "" },
            on(self.gso),
            on(self.gro),
            on(self.reuse_port),
        )
    }
}

/// Opens a non-blocking UDP socket bound to `bind` with every option of
/// `cfg`. Options that only speed things up (GRO, GSO, big buffers) degrade
/// quietly and show up in the returned info; the rest are errors.
pub fn open_udp_socket(bind: SocketAddr, cfg: &UdpConfig) -> Result<(Socket, UdpSocketInfo), BackendError> {
    let v6 = bind.is_ipv6();
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    let socket = Socket::new(domain, Type::DGRAM.nonblocking().cloexec(), Some(Protocol::UDP)).map_err(|e| BackendError::io("socket", e))?;
    let fd = socket.as_raw_fd();

    let mut dual_stack = false;
    if v6 {
        socket.set_only_v6(cfg.v6_only).map_err(|e| BackendError::io("IPV6_V6ONLY", e))?;
        dual_stack = !cfg.v6_only && bind.ip().is_unspecified();
    }
    if cfg.reuse_port {
        socket.set_reuse_port(true).map_err(|e| BackendError::io("SO_REUSEPORT", e))?;
    }

    let recv_buffer = size_buffer(fd, libc::SO_RCVBUF, SO_RCVBUFFORCE, cfg.recv_buffer);
    let send_buffer = size_buffer(fd, libc::SO_SNDBUF, SO_SNDBUFFORCE, cfg.send_buffer);

    // Local address and ECN bits of every received datagram are required:
    // QUIC needs the ECN counts (RFC 9000 §13.4) and a wildcard-bound server
    // must answer from the address it was reached at. A dual-stack socket
    // reports the address of IPv4 datagrams through IPV6_PKTINFO (as
    // ::ffff:a.b.c.d) but their TOS byte only through IP_RECVTOS.
    let required = |level, name, what| sockopt::set_int(fd, level, name, 1).map_err(|e| BackendError::io(what, e));
    let pmtud_probe = if v6 {
        required(libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, "IPV6_RECVPKTINFO")?;
        required(libc::IPPROTO_IPV6, libc::IPV6_RECVTCLASS, "IPV6_RECVTCLASS")?;
        let mut probe = sockopt::set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER, libc::IPV6_PMTUDISC_PROBE).is_ok();
        if dual_stack {
            required(libc::IPPROTO_IP, libc::IP_RECVTOS, "IP_RECVTOS")?;
            probe &= sockopt::set_int(fd, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, libc::IP_PMTUDISC_PROBE).is_ok();
        }
        probe
    } else {
        required(libc::IPPROTO_IP, libc::IP_PKTINFO, "IP_PKTINFO")?;
        required(libc::IPPROTO_IP, libc::IP_RECVTOS, "IP_RECVTOS")?;
        sockopt::set_int(fd, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, libc::IP_PMTUDISC_PROBE).is_ok()
    };

    // UDP_GRO: if the kernel refuses it, run without (every datagram then
    // comes in its own buffer).
    let gro = cfg.gro && sockopt::set_int(fd, libc::SOL_UDP, libc::UDP_GRO, 1).is_ok();
    // UDP_SEGMENT is known when reading it works (Linux ≥ 4.18); whether the
    // egress device can segment is learnt on the first send (EIO).
    let gso = cfg.gso && cfg.gso_max_segments > 1 && sockopt::get_int(fd, libc::SOL_UDP, libc::UDP_SEGMENT).is_ok();

    socket.bind(&SockAddr::from(bind)).map_err(|e| BackendError::io("bind", e))?;
    let local_addr =
        socket.local_addr().map_err(|e| BackendError::io("getsockname", e))?.as_socket().ok_or(BackendError::Unavailable("getsockname: not an IP address"))?;
    if let Some(hook) = &cfg.after_bind {
        hook.call(socket.as_fd(), local_addr).map_err(|e| BackendError::io("after-bind hook", e))?;
    }

    let info = UdpSocketInfo { local_addr, dual_stack, reuse_port: cfg.reuse_port, recv_buffer, send_buffer, gro, gso, pmtud_probe };
    Ok((socket, info))
}

/// Tries the forcing option first (root or CAP_NET_ADMIN may exceed
/// net.core.rmem_max / wmem_max), then the plain one, and reads back what
/// stuck.
fn size_buffer(fd: RawFd, plain: libc::c_int, force: libc::c_int, requested: usize) -> BufferSize {
    let want = libc::c_int::try_from(requested).unwrap_or(libc::c_int::MAX);
    let forced = sockopt::set_int(fd, libc::SOL_SOCKET, force, want).is_ok();
    if !forced {
        // Capped by the sysctl maximum; failing leaves the default, which
        // still works.
        let _ = sockopt::set_int(fd, libc::SOL_SOCKET, plain, want);
    }
    let effective = sockopt::get_int(fd, libc::SOL_SOCKET, plain).map_or(0, |v| usize::try_from(v).unwrap_or(0));
    BufferSize { requested, effective, forced }
}
