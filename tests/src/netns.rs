//! Two network namespaces joined by a veth pair, for the AF_XDP tests.
//!
//! Addresses: 198.18.0.1/24 and 2001:2::1/64 on the server side,
//! 198.18.0.2/24 and 2001:2::2/64 on the client side (RFC 2544 / RFC 5180
//! benchmarking ranges). Everything is deleted when the guard drops, even
//! if the test panicked: deleting a namespace deletes its veth end, and
//! the peer goes with it.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::{Command, Output};

pub const SERVER_V4: &str = "198.18.0.1";
pub const CLIENT_V4: &str = "198.18.0.2";
pub const SERVER_V6: &str = "2001:2::1";
pub const CLIENT_V6: &str = "2001:2::2";

/// Runs `ip ARGS`, panicking with its stderr on failure.
pub fn ip(args: &[&str]) -> Output {
    let out = Command::new("ip").args(args).output().unwrap_or_else(|e| panic!("running ip {args:?}: {e}"));
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Fails (never skips) when not root: CI runs as root, and these tests
/// must not pass by doing nothing.
pub fn require_root() {
    // SAFETY: plain getter.
    let uid = unsafe { libc::geteuid() };
    assert_eq!(uid, 0, "the AF_XDP namespace tests need root (CAP_NET_ADMIN, CAP_BPF, CAP_SYS_ADMIN)");
}

fn mac_string(ns: &str, ifname: &str) -> String {
    let text = String::from_utf8_lossy(&ip(&["-n", ns, "link", "show", ifname]).stdout).into_owned();
    text.split_whitespace().skip_while(|w| *w != "link/ether").nth(1).unwrap_or_else(|| panic!("no MAC in {text}")).to_string()
}

/// The namespaces and the veth pair.
pub struct VethPair {
    pub server_ns: String,
    pub client_ns: String,
    /// veth end in the server namespace (the XDP interface).
    pub server_if: String,
    pub client_if: String,
}

impl VethPair {
    /// Creates `qx<tag><pid>{s,c}` namespaces and interfaces with `queues`
    /// RX/TX queues on each end, addressed and up.
    pub fn create(tag: &str, queues: u32) -> Self {
        require_root();
        let id = format!("qx{tag}{}", std::process::id() % 1_000_000);
        assert!(id.len() < 15, "interface name too long: {id}");
        let pair = VethPair { server_ns: format!("{id}s"), client_ns: format!("{id}c"), server_if: format!("{id}s"), client_if: format!("{id}c") };
        // From here on, Drop cleans up whatever was made.
        ip(&["netns", "add", &pair.server_ns]);
        ip(&["netns", "add", &pair.client_ns]);
        let q = queues.to_string();
        ip(&[
            "-n",
            &pair.server_ns,
            "link",
            "add",
            &pair.server_if,
            "numrxqueues",
            &q,
            "numtxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            &pair.client_if,
            "netns",
            &pair.client_ns,
            "numrxqueues",
            &q,
            "numtxqueues",
            &q,
        ]);
        for (ns, ifname, v4, v6) in [(&pair.server_ns, &pair.server_if, SERVER_V4, SERVER_V6), (&pair.client_ns, &pair.client_if, CLIENT_V4, CLIENT_V6)] {
            ip(&["-n", ns, "addr", "add", &format!("{v4}/24"), "dev", ifname]);
            ip(&["-n", ns, "-6", "addr", "add", &format!("{v6}/64"), "dev", ifname, "nodad"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "link", "set", ifname, "up"]);
        }
        // Permanent neighbour entries: no ARP/ND round trip, so the first
        // datagrams are not parked in the neighbour queue (and sent later
        // from another context) while the tests count packets.
        let server_mac = mac_string(&pair.server_ns, &pair.server_if);
        let client_mac = mac_string(&pair.client_ns, &pair.client_if);
        for (ns, ifname, peer4, peer6, mac) in
            [(&pair.server_ns, &pair.server_if, CLIENT_V4, CLIENT_V6, &client_mac), (&pair.client_ns, &pair.client_if, SERVER_V4, SERVER_V6, &server_mac)]
        {
            ip(&["-n", ns, "neigh", "replace", peer4, "lladdr", mac, "dev", ifname, "nud", "permanent"]);
            ip(&["-n", ns, "-6", "neigh", "replace", peer6, "lladdr", mac, "dev", ifname, "nud", "permanent"]);
        }
        pair
    }

    /// `ip netns exec NS PROGRAM`, to be completed by the caller.
    pub fn exec(ns: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]);
        c
    }

    /// `ip -n NS link show IF` output (shows `prog/xdp` while one is attached).
    pub fn link_show(ns: &str, ifname: &str) -> String {
        String::from_utf8_lossy(&ip(&["-n", ns, "-d", "link", "show", ifname]).stdout).into_owned()
    }

    /// The XDP program attached to the server interface (name), if any.
    pub fn server_xdp_program(&self) -> Option<String> {
        let text = Self::link_show(&self.server_ns, &self.server_if);
        let at = text.find("prog/xdp")?;
        let rest = text.get(at..)?;
        let name = rest.split_whitespace().skip_while(|w| *w != "name").nth(1)?;
        Some(name.to_string())
    }

    /// The server interface's MAC address.
    pub fn server_mac(&self) -> [u8; 6] {
        let mac = mac_string(&self.server_ns, &self.server_if);
        let mut out = [0u8; 6];
        for (o, part) in out.iter_mut().zip(mac.split(':')) {
            *o = u8::from_str_radix(part, 16).unwrap_or_else(|e| panic!("MAC {mac}: {e}"));
        }
        out
    }

    /// Moves the calling thread into namespace `ns` (network namespaces
    /// are per thread): sockets it opens afterwards live there.
    pub fn enter(ns: &str) {
        let f = File::open(format!("/var/run/netns/{ns}")).unwrap_or_else(|e| panic!("open netns {ns}: {e}"));
        // SAFETY: a valid namespace fd; affects only this thread.
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
    }

    /// Names that must be gone after the guard dropped.
    pub fn names(&self) -> [String; 4] {
        [self.server_ns.clone(), self.client_ns.clone(), self.server_if.clone(), self.client_if.clone()]
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        for ns in [&self.server_ns, &self.client_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Asserts no namespace or link of these names is left in the root
/// namespace's view.
pub fn assert_gone(names: &[String]) {
    let netns = String::from_utf8_lossy(&ip(&["netns", "list"]).stdout).into_owned();
    let links = String::from_utf8_lossy(&ip(&["link", "show"]).stdout).into_owned();
    for n in names {
        assert!(!netns.split_whitespace().any(|w| w == n), "namespace {n} left behind: {netns}");
        assert!(!links.contains(&format!(" {n}:")) && !links.contains(&format!(" {n}@")), "link {n} left behind: {links}");
    }
}
