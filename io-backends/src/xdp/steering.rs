//! One XDP program per interface, shared by the worker threads of a process
//! and by forked worker processes (`XdpSteering::attach_shared`): the first
//! worker attaches it (replacing a stale one of ours left by a crash), each
//! registers its own queue, and the last one to close detaches it.

use std::sync::{Arc, Mutex, Weak};

use bpf::xdp::{XdpError, XdpMode, XdpOptions, XdpSteering};

static ATTACHED: Mutex<Vec<(String, Weak<XdpSteering>)>> = Mutex::new(Vec::new());

/// The program on `ifname`, attached for `port` if no worker of this
/// process did yet. Workers must agree on the port and the mode.
pub fn shared(ifname: &str, port: u16, mode: XdpMode) -> Result<Arc<XdpSteering>, XdpError> {
    let mut list = ATTACHED.lock().unwrap_or_else(|p| p.into_inner());
    list.retain(|(_, w)| w.strong_count() > 0);
    if let Some(s) = list.iter().find(|(n, _)| n == ifname).and_then(|(_, w)| w.upgrade()) {
        if s.mode() != mode {
            return Err(XdpError::InvalidOptions("workers asked for different XDP modes"));
        }
        return Ok(s);
    }
    let s = Arc::new(XdpSteering::attach_shared(ifname, &XdpOptions { ports: vec![port], mode })?);
    list.push((ifname.to_owned(), Arc::downgrade(&s)));
    Ok(s)
}
