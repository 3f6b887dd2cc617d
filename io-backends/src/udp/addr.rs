//! `SocketAddr` ↔ `sockaddr_storage`, and IPv4-mapped addresses on
//! dual-stack sockets.

use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Writes `addr` as the socket family expects it: an IPv4 destination on an
/// IPv6 socket becomes `::ffff:a.b.c.d` (RFC 4291 §2.5.5.2), the form a
/// dual-stack socket sends to IPv4 peers with. Returns the length to pass as
/// `msg_namelen`, or `None` for an IPv6 destination on an IPv4 socket.
pub(crate) fn write_sockaddr(addr: SocketAddr, socket_v6: bool, out: &mut libc::sockaddr_storage) -> Option<libc::socklen_t> {
    let v6 = match (addr, socket_v6) {
        (SocketAddr::V4(a), false) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
                sin_zero: [0; 8],
            };
            let p = (out as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>();
            // SAFETY: sockaddr_storage is defined to be large enough and
            // aligned for every sockaddr type, and `p` comes from a live
            // `&mut`, so the write stays inside memory we own exclusively.
            unsafe { p.write(sin) };
            return Some(size_of::<libc::sockaddr_in>() as libc::socklen_t);
        }
        (SocketAddr::V4(a), true) => SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0),
        (SocketAddr::V6(a), true) => a,
        (SocketAddr::V6(_), false) => return None,
    };
    let sin6 = libc::sockaddr_in6 {
        sin6_family: libc::AF_INET6 as libc::sa_family_t,
        sin6_port: v6.port().to_be(),
        sin6_flowinfo: v6.flowinfo().to_be(),
        sin6_addr: libc::in6_addr { s6_addr: v6.ip().octets() },
        sin6_scope_id: v6.scope_id(),
    };
    let p = (out as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>();
    // SAFETY: as above, sockaddr_storage holds any sockaddr, sockaddr_in6
    // included, with the right alignment.
    unsafe { p.write(sin6) };
    Some(size_of::<libc::sockaddr_in6>() as libc::socklen_t)
}

/// Reads the address the kernel wrote into `storage` (`len` bytes valid).
/// IPv4-mapped IPv6 addresses come back as IPv4.
pub(crate) fn read_sockaddr(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match i32::from(storage.ss_family) {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            let p = (storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>();
            // SAFETY: the family says the kernel wrote a sockaddr_in, `len`
            // says all of it is initialised, and sockaddr_storage is large
            // and aligned enough to be read as one.
            let sin = unsafe { p.read() };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            let p = (storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>();
            // SAFETY: as above, for a sockaddr_in6.
            let sin6 = unsafe { p.read() };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            let port = u16::from_be(sin6.sin6_port);
            Some(match ip.to_ipv4_mapped() {
                Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, port)),
                None => SocketAddr::V6(SocketAddrV6::new(ip, port, u32::from_be(sin6.sin6_flowinfo), sin6.sin6_scope_id)),
            })
        }
        _ => None,
    }
}

/// A zeroed `sockaddr_storage` for preallocated name arrays.
pub(crate) fn zeroed_storage() -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain old data; all-zero bytes are a valid
    // value (family AF_UNSPEC).
    unsafe { std::mem::zeroed() }
}

/// IPv4-mapped IPv6 → IPv4, everything else unchanged.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}
