//! Busy-poll: configuration and receiving while spinning.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use io_backends::{Backend, BackendConfig, BackendKind, BusyPollBackend, BusyPollConfig, Interest, OptOutcome};

#[test]
fn busy_poll_knob_parses() {
    let cfg = BackendConfig::from_lookup(|k| (k == "QUICPRO_BUSY_POLL").then(|| "50".to_string())).unwrap();
    assert_eq!(cfg.busy_poll_us, 50);
    let cfg = BackendConfig::from_lookup(|k| (k == "QUICPRO_BUSY_POLL").then(|| " 0 ".to_string())).unwrap();
    assert_eq!(cfg.busy_poll_us, 0);
    let cfg = BackendConfig::from_lookup(|k| (k == "QUICPRO_BUSY_POLL").then(String::new)).unwrap();
    assert_eq!(cfg.busy_poll_us, 0, "empty is unset");
    for bad in ["-5", "fast", "1.5", "2000000"] {
        let e = BackendConfig::from_lookup(|k| (k == "QUICPRO_BUSY_POLL").then(|| bad.to_string())).unwrap_err();
        assert!(e.to_string().starts_with("QUICPRO_BUSY_POLL="), "{e}");
    }
}

#[test]
fn kernel_busy_poll_options_are_reported() {
    let b = BusyPollBackend::open("127.0.0.1:0".parse().unwrap(), &udp_config(), BusyPollConfig::new(50)).unwrap();
    let r = *b.report();
    eprintln!("{r}");
    assert_eq!(r.spin_us, 50);
    // Root (CAP_NET_ADMIN) on Linux ≥ 6.9: the kernel takes all of them.
    let root = is_root();
    if root {
        assert_eq!(r.so_busy_poll, OptOutcome::Accepted);
        assert_eq!(r.so_prefer_busy_poll, OptOutcome::Accepted);
        assert_eq!(r.so_busy_poll_budget, OptOutcome::Accepted);
    }
    assert_ne!(r.epoll_params, OptOutcome::NotTried);
}

/// Root check without unsafe: /proc/self/status lists the effective uid.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

#[test]
fn receives_while_spinning() {
    // Spin up to 1 s so a sender slowed by a loaded machine still lands
    // inside the spin.
    let mut rx = BusyPollBackend::open("127.0.0.1:0".parse().unwrap(), &udp_config(), BusyPollConfig::new(1_000_000)).unwrap();
    assert_eq!(rx.kind(), BackendKind::BusyPoll);
    let addr = rx.local_addr();
    let peer = plain_socket("127.0.0.1:0");

    // Data sent from another thread 20 ms into the spin is found by the
    // spin, not by epoll: `wait` returns readable and `recv` hands out the
    // batch received during the spin.
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        for i in 0..3 {
            peer.send_to(&payload(i, 1200), addr).unwrap();
        }
    });
    let start = Instant::now();
    let r = rx.wait(Interest::READABLE, Some(Duration::from_secs(3))).unwrap();
    let waited = start.elapsed();
    sender.join().unwrap();
    assert!(r.readable);
    assert!(waited < Duration::from_secs(1), "returned when the data came, not at the end of the spin: {waited:?}");
    assert_eq!(rx.spin_hits, 1);
    let calls_after_wait = rx.stats().recv_calls;
    let mut n = rx.recv().unwrap().len();
    assert!(n >= 1);
    assert_eq!(rx.stats().recv_calls, calls_after_wait, "the spun batch is handed out without a new system call");
    n += recv_datagrams(&mut rx, 3 - n, DEADLINE).len();
    assert_eq!(n, 3);

    // Nothing arriving: the spin ends and epoll sleeps out the timeout.
    let start = Instant::now();
    let r = rx.wait(Interest::READABLE, Some(Duration::from_millis(30))).unwrap();
    assert!(!r.readable);
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(29) && waited < Duration::from_secs(2), "{waited:?}");
}

#[test]
fn short_spin_then_sleep_still_wakes_on_data() {
    let mut rx = BusyPollBackend::open("127.0.0.1:0".parse().unwrap(), &udp_config(), BusyPollConfig::new(10)).unwrap();
    let addr = rx.local_addr();
    let peer = plain_socket("127.0.0.1:0");
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        peer.send_to(b"late", addr).unwrap();
    });
    let r = rx.wait(Interest::READABLE, Some(Duration::from_secs(3))).unwrap();
    sender.join().unwrap();
    assert!(r.readable);
    assert_eq!(rx.spin_hits, 0, "10 µs spin ended long before the data");
    let got = recv_datagrams(&mut rx, 1, DEADLINE);
    assert_eq!(got[0].bytes, b"late");
}
