//! `UdpConfig::after_bind`: run once on the bound socket; its error aborts
//! the open.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use io_backends::udp::SocketHook;
use io_backends::{Backend, EpollBackend, UdpConfig};

#[test]
fn hook_sees_the_bound_socket_and_can_refuse() {
    let seen: Arc<Mutex<Vec<(i32, SocketAddr)>>> = Arc::default();
    let log = seen.clone();
    let cfg = UdpConfig {
        after_bind: Some(SocketHook::new("record", move |fd, local| {
            log.lock().expect("lock").push((fd.as_raw_fd(), local));
            Ok(())
        })),
        ..UdpConfig::default()
    };
    assert_eq!(cfg.clone(), cfg, "a cloned config compares equal");
    let b = EpollBackend::open("127.0.0.1:0".parse().expect("addr"), &cfg).expect("open");
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen, vec![(b.as_raw_fd(), b.local_addr())]);
    assert_ne!(b.local_addr().port(), 0, "called after bind");

    let refuse = UdpConfig { after_bind: Some(SocketHook::new("refuse", |_, _| Err(std::io::Error::other("no steering today")))), ..UdpConfig::default() };
    let e = EpollBackend::open("127.0.0.1:0".parse().expect("addr"), &refuse).expect_err("hook error");
    assert!(e.to_string().contains("after-bind hook: no steering today"), "{e}");
}
