//! Backend selection rules with configurations built in the test.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use io_backends::{choose, open, BackendConfig, BackendError, BackendKind};

fn cfg(vars: &[(&str, &str)]) -> Result<BackendConfig, BackendError> {
    let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    BackendConfig::from_lookup(|k| map.get(k).cloned())
}

fn failing_uring(vars: &[(&str, &str)]) -> BackendConfig {
    let mut c = cfg(vars).unwrap();
    c.uring.simulate_setup_failure = true;
    c
}

#[test]
fn default_is_io_uring() {
    let c = choose(&cfg(&[]).unwrap()).unwrap();
    assert_eq!(c.kind, BackendKind::IoUring);
    assert_eq!(c.reason, "default");
}

#[test]
fn xdp_interface_selects_af_xdp() {
    let c = choose(&cfg(&[("QUICPRO_XDP", "eth0")]).unwrap()).unwrap();
    assert_eq!(c.kind, BackendKind::AfXdp);
    assert_eq!(c.reason, "QUICPRO_XDP set");
    // XDP wins over busy-poll, which then busy-polls the AF_XDP socket.
    let both = cfg(&[("QUICPRO_XDP", "eth0"), ("QUICPRO_BUSY_POLL", "50")]).unwrap();
    let c = choose(&both).unwrap();
    assert_eq!((c.kind, c.busy_poll_us), (BackendKind::AfXdp, 50));
    // The XDP mode knob.
    assert!(cfg(&[("QUICPRO_XDP", "eth0"), ("QUICPRO_XDP_MODE", "skb")]).unwrap().xdp_skb_mode);
    assert!(matches!(cfg(&[("QUICPRO_XDP_MODE", "offload")]), Err(BackendError::InvalidConfig { .. })));
    // Not an interface name.
    assert!(matches!(cfg(&[("QUICPRO_XDP", "a-name-far-too-long")]), Err(BackendError::InvalidConfig { .. })));
    // Empty means unset.
    assert_eq!(choose(&cfg(&[("QUICPRO_XDP", "")]).unwrap()).unwrap().kind, BackendKind::IoUring);
}

#[test]
fn busy_poll_above_zero_selects_busy_poll() {
    let c = choose(&cfg(&[("QUICPRO_BUSY_POLL", "75")]).unwrap()).unwrap();
    assert_eq!((c.kind, c.busy_poll_us), (BackendKind::BusyPoll, 75));
    let c = choose(&cfg(&[("QUICPRO_BUSY_POLL", "0")]).unwrap()).unwrap();
    assert_eq!(c.kind, BackendKind::IoUring);
}

#[test]
fn quicpro_backend_forces() {
    let c = choose(&cfg(&[("QUICPRO_BACKEND", "epoll"), ("QUICPRO_BUSY_POLL", "75")]).unwrap()).unwrap();
    assert_eq!(c.kind, BackendKind::Epoll);
    // Forcing beats QUICPRO_XDP too.
    let c = choose(&cfg(&[("QUICPRO_BACKEND", "epoll"), ("QUICPRO_XDP", "eth0")]).unwrap()).unwrap();
    assert_eq!(c.kind, BackendKind::Epoll);
    let c = choose(&cfg(&[("QUICPRO_BACKEND", "busy_poll")]).unwrap()).unwrap();
    assert_eq!((c.kind, c.busy_poll_us), (BackendKind::BusyPoll, 50), "default spin when unset");
    let c = choose(&cfg(&[("QUICPRO_BACKEND", "BUSY_POLL"), ("QUICPRO_BUSY_POLL", "20")]).unwrap()).unwrap();
    assert_eq!((c.kind, c.busy_poll_us), (BackendKind::BusyPoll, 20));
    // io_uring forced beats QUICPRO_BUSY_POLL.
    let c = choose(&cfg(&[("QUICPRO_BACKEND", "io_uring"), ("QUICPRO_BUSY_POLL", "20")]).unwrap()).unwrap();
    assert_eq!((c.kind, c.reason), (BackendKind::IoUring, "forced by QUICPRO_BACKEND"));
    match cfg(&[("QUICPRO_BACKEND", "kqueue")]) {
        Err(BackendError::InvalidConfig { var: "QUICPRO_BACKEND", value, .. }) => assert_eq!(value, "kqueue"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn open_returns_the_backend_and_a_startup_line() {
    let (b, line) = open(&cfg(&[]).unwrap(), "127.0.0.1:0".parse().unwrap()).unwrap();
    eprintln!("{line}");
    assert_eq!(b.kind(), BackendKind::IoUring);
    assert!(line.starts_with("io backend io_uring (default): udp 127.0.0.1:"), "{line}");
    assert!(line.contains("gso on") && line.contains("gro on"), "{line}");
    assert!(line.contains("256 provided buffers"), "{line}");
    assert!(!line.contains('\n'));

    let (b, line) = open(&cfg(&[("QUICPRO_BACKEND", "epoll")]).unwrap(), "127.0.0.1:0".parse().unwrap()).unwrap();
    assert_eq!(b.kind(), BackendKind::Epoll);
    assert!(line.starts_with("io backend epoll (forced by QUICPRO_BACKEND): udp 127.0.0.1:"), "{line}");

    let (b, line) = open(&cfg(&[("QUICPRO_BUSY_POLL", "30")]).unwrap(), "[::]:0".parse().unwrap()).unwrap();
    eprintln!("{line}");
    assert_eq!(b.kind(), BackendKind::BusyPoll);
    assert!(line.contains("dual-stack") && line.contains("busy-poll 30 µs"), "{line}");

    // AF_XDP on an interface that does not exist: the error names the
    // cause and the fallback.
    let err = open(&cfg(&[("QUICPRO_XDP", "qp-absent0")]).unwrap(), "127.0.0.1:0".parse().unwrap()).unwrap_err();
    assert!(matches!(err, BackendError::AfXdp(_)), "{err:?}");
    assert_eq!(err.to_string(), "af_xdp: no network interface \"qp-absent0\"; unset QUICPRO_XDP to use the kernel UDP path");
}

#[test]
fn io_uring_setup_failure_falls_back_to_epoll_by_default() {
    let c = failing_uring(&[]);
    assert_eq!(choose(&c).unwrap().kind, BackendKind::IoUring);
    let (mut b, line) = open(&c, "127.0.0.1:0".parse().unwrap()).unwrap();
    eprintln!("{line}");
    assert_eq!(b.kind(), BackendKind::Epoll);
    assert!(
        line.starts_with(
            "io backend epoll (io_uring unavailable: io_uring: setup failure simulated (UringConfig::simulate_setup_failure); fallback): udp 127.0.0.1:"
        ),
        "{line}"
    );
    // The fallback works: a datagram goes through it.
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.send_to(b"via epoll", b.local_addr()).unwrap();
    let mut got = Vec::new();
    for _ in 0..100 {
        b.wait(io_backends::Interest::READABLE, Some(std::time::Duration::from_millis(50))).unwrap();
        let mut batch = b.recv().unwrap();
        while let Some((_, buf)) = batch.next_buffer() {
            got.push(buf.to_vec());
        }
        if !got.is_empty() {
            break;
        }
    }
    assert_eq!(got, [b"via epoll".to_vec()]);
}

#[test]
fn forced_io_uring_fails_with_the_reason_instead_of_falling_back() {
    let c = failing_uring(&[("QUICPRO_BACKEND", "io_uring")]);
    let err = open(&c, "127.0.0.1:0".parse().unwrap()).unwrap_err();
    assert_eq!(err.to_string(), "io_uring: setup failure simulated (UringConfig::simulate_setup_failure)");
    // Without the simulated failure the forced backend opens.
    let c = cfg(&[("QUICPRO_BACKEND", "io_uring")]).unwrap();
    let (b, line) = open(&c, "[::1]:0".parse().unwrap()).unwrap();
    assert_eq!(b.kind(), BackendKind::IoUring);
    assert!(line.starts_with("io backend io_uring (forced by QUICPRO_BACKEND): udp [::1]:"), "{line}");
}

#[test]
fn socket_errors_are_not_hidden_by_the_fallback() {
    // A bind failure is not an io_uring problem: epoll would fail the same
    // way, so the error comes back as is.
    let mut c = cfg(&[]).unwrap();
    c.udp.reuse_port = false;
    let (a, _) = open(&c, "127.0.0.1:0".parse().unwrap()).unwrap();
    match open(&c, a.local_addr()) {
        Err(BackendError::Io { context: "bind", .. }) => {}
        Err(e) => panic!("expected the bind error, got {e}"),
        Ok((b, line)) => panic!("expected the bind error, got {:?}: {line}", b.kind()),
    }
}
