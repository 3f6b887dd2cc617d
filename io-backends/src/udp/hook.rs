//! A caller-supplied step run on a server socket right after it is bound,
//! before the first receive: how a worker's socket joins something set up
//! outside this crate, e.g. the connection-ID steering group of
//! `quicpro-bpf` (which must see the socket bound with SO_REUSEPORT).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::BorrowedFd;
use std::sync::Arc;

type HookFn = dyn Fn(BorrowedFd<'_>, SocketAddr) -> io::Result<()> + Send + Sync;

/// Called with the bound socket and its local address. An error aborts the
/// open (the backend reports it as `after-bind hook: ...`); a hook that
/// wants to carry on without its feature logs and returns `Ok`.
#[derive(Clone)]
pub struct SocketHook {
    name: &'static str,
    f: Arc<HookFn>,
}

impl SocketHook {
    /// `name` shows in debug output.
    pub fn new(name: &'static str, f: impl Fn(BorrowedFd<'_>, SocketAddr) -> io::Result<()> + Send + Sync + 'static) -> Self {
        Self { name, f: Arc::new(f) }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub(crate) fn call(&self, fd: BorrowedFd<'_>, local: SocketAddr) -> io::Result<()> {
        (self.f)(fd, local)
    }
}

impl fmt::Debug for SocketHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SocketHook({})", self.name)
    }
}

/// Two hooks are equal when they are the same closure (configs compare
/// equal after a clone).
impl PartialEq for SocketHook {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.f, &other.f)
    }
}

impl Eq for SocketHook {}
