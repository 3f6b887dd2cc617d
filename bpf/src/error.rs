//! Why steering could not be set up. Every message ends with how to carry on
//! without it: the kernel then spreads datagrams over the workers by its
//! 4-tuple hash, which works until a client changes address.

use std::fmt;

/// Appended to every message.
const FALLBACK: &str = "run without connection-ID steering (quicpro serve --steering off); \
the kernel then picks a worker by 4-tuple hash";

/// Errors of the eBPF loaders.
#[derive(Debug)]
pub enum BpfError {
    /// EPERM / EACCES from the kernel: loading SK_REUSEPORT programs and
    /// creating socket maps needs CAP_BPF and CAP_NET_ADMIN (or root);
    /// unprivileged BPF does not cover these types.
    PermissionDenied { op: &'static str, detail: String },
    /// The kernel lacks the program or map type (SK_REUSEPORT programs and
    /// REUSEPORT_SOCKARRAY maps need Linux ≥ 4.19), or the bpf() syscall is
    /// disabled.
    Unsupported { what: &'static str, detail: String },
    /// The verifier rejected the program; `log` is the verifier's output.
    Verifier { program: &'static str, detail: String, log: String },
    /// The embedded object could not be opened or is missing a part (a build
    /// problem, not a runtime one).
    Object { detail: String },
    /// A configuration value out of range.
    InvalidConfig { what: &'static str, value: u32, limit: u32 },
    /// `worker` is not below the group's worker count.
    WorkerOutOfRange { worker: u32, workers: u32 },
    /// The descriptor is not an open socket (EBADF / ENOTSOCK).
    BadSocket { op: &'static str, errno: i32 },
    /// The socket is not an IPv4/IPv6 UDP or TCP socket (ENOTSUPP).
    UnsupportedSocket { op: &'static str, errno: i32 },
    /// The socket is not bound, or was bound without SO_REUSEPORT (EINVAL):
    /// only members of a reuseport group can be steered to.
    NotInReuseportGroup { op: &'static str, errno: i32 },
    /// The socket is owned by another BPF user (sk_user_data set, EBUSY).
    SocketBusy { op: &'static str },
    /// Any other failure of a system call, with its errno.
    Os { op: &'static str, errno: i32 },
}

impl BpfError {
    /// Classifies a failed socket operation (map insert or attach) by errno.
    pub(crate) fn from_socket_errno(op: &'static str, errno: i32) -> Self {
        // ENOTSUPP (524) is kernel-internal and has no libc constant.
        const ENOTSUPP: i32 = 524;
        match errno {
            libc::EBADF | libc::ENOTSOCK => BpfError::BadSocket { op, errno },
            libc::EINVAL => BpfError::NotInReuseportGroup { op, errno },
            libc::EBUSY => BpfError::SocketBusy { op },
            libc::EOPNOTSUPP | ENOTSUPP | libc::EAFNOSUPPORT | libc::EPROTONOSUPPORT => BpfError::UnsupportedSocket { op, errno },
            libc::EPERM | libc::EACCES => BpfError::PermissionDenied { op, detail: errno_text(errno) },
            _ => BpfError::Os { op, errno },
        }
    }
}

pub(crate) fn errno_text(errno: i32) -> String {
    std::io::Error::from_raw_os_error(errno).to_string()
}

impl fmt::Display for BpfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BpfError::PermissionDenied { op, detail } => write!(
                f,
                "{op}: permission denied ({detail}); eBPF steering needs CAP_BPF and CAP_NET_ADMIN \
                 (run as root or grant them with setcap), or {FALLBACK}"
            ),
            BpfError::Unsupported { what, detail } => write!(
                f,
                "{what} is not supported by this kernel ({detail}); SO_REUSEPORT steering needs \
                 Linux 4.19 or later with CONFIG_BPF_SYSCALL; {FALLBACK}"
            ),
            BpfError::Verifier { program, detail, log } => {
                write!(f, "the kernel verifier rejected {program} ({detail}); {FALLBACK}")?;
                if !log.is_empty() {
                    write!(f, "\nverifier log:\n{log}")?;
                }
                Ok(())
            }
            BpfError::Object { detail } => {
                write!(f, "the embedded eBPF object is unusable ({detail}); this is a build problem; {FALLBACK}")
            }
            BpfError::InvalidConfig { what, value, limit } => {
                write!(f, "{what} {value} is out of range (limit {limit}); {FALLBACK}")
            }
            BpfError::WorkerOutOfRange { worker, workers } => {
                write!(f, "worker {worker} is outside the steering group of {workers} workers (0..{workers}); {FALLBACK}")
            }
            BpfError::BadSocket { op, errno } => {
                write!(f, "{op}: not an open socket ({}); {FALLBACK}", errno_text(*errno))
            }
            BpfError::UnsupportedSocket { op, errno } => {
                write!(f, "{op}: only IPv4/IPv6 UDP or TCP sockets can be steered ({}); {FALLBACK}", errno_text(*errno))
            }
            BpfError::NotInReuseportGroup { op, errno } => {
                write!(f, "{op}: the socket must be bound with SO_REUSEPORT before it joins a steering group ({}); {FALLBACK}", errno_text(*errno))
            }
            BpfError::SocketBusy { op } => {
                write!(f, "{op}: the socket is already used by another BPF program (sk_user_data set); {FALLBACK}")
            }
            BpfError::Os { op, errno } => write!(f, "{op}: {}; {FALLBACK}", errno_text(*errno)),
        }
    }
}

impl std::error::Error for BpfError {}
