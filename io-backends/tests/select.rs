//! Backend selection rules with configurations built in the test.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use io_backends::{choose, open, BackendConfig, BackendError, BackendKind};

fn cfg(vars: &[(&str, &str)]) -> Result<BackendConfig, BackendError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    BackendConfig::from_lookup(|k| map.get(k).cloned())
}

fn unavailable(r: Result<io_backends::Choice, BackendError>) -> &'static str {
    match r {
        Err(BackendError::Unavailable(why)) => why,
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[test]
fn default_is_epoll_standing_in_for_io_uring() {
    let c = choose(&cfg(&[]).unwrap()).unwrap();
    assert_eq!(c.kind, BackendKind::Epoll);
    assert_eq!(c.reason, "io_uring backend not built, using epoll");
}

#[test]
fn xdp_interface_asks_for_af_xdp_which_is_not_built() {
    let why = unavailable(choose(&cfg(&[("QUICPRO_XDP", "eth0")]).unwrap()));
    assert_eq!(
        why,
        "af_xdp: not built yet; unset QUICPRO_XDP to use the kernel UDP path"
    );
    // XDP wins over busy-poll.
    let both = cfg(&[("QUICPRO_XDP", "eth0"), ("QUICPRO_BUSY_POLL", "50")]).unwrap();
    assert!(matches!(choose(&both), Err(BackendError::Unavailable(_))));
    // Not an interface name.
    assert!(matches!(
        cfg(&[("QUICPRO_XDP", "a-name-far-too-long")]),
        Err(BackendError::InvalidConfig { .. })
    ));
    // Empty means unset.
    assert_eq!(
        choose(&cfg(&[("QUICPRO_XDP", "")]).unwrap()).unwrap().kind,
        BackendKind::Epoll
    );
}

#[test]
fn busy_poll_above_zero_selects_busy_poll() {
    let c = choose(&cfg(&[("QUICPRO_BUSY_POLL", "75")]).unwrap()).unwrap();
    assert_eq!((c.kind, c.busy_poll_us), (BackendKind::BusyPoll, 75));
    let c = choose(&cfg(&[("QUICPRO_BUSY_POLL", "0")]).unwrap()).unwrap();
    assert_eq!(c.kind, BackendKind::Epoll);
}

#[test]
fn quicpro_backend_forces() {
    let c = choose(&cfg(&[("QUICPRO_BACKEND", "epoll"), ("QUICPRO_BUSY_POLL", "75")]).unwrap())
        .unwrap();
    assert_eq!(c.kind, BackendKind::Epoll);
    // Forcing beats QUICPRO_XDP too.
    let c =
        choose(&cfg(&[("QUICPRO_BACKEND", "epoll"), ("QUICPRO_XDP", "eth0")]).unwrap()).unwrap();
    assert_eq!(c.kind, BackendKind::Epoll);
    let c = choose(&cfg(&[("QUICPRO_BACKEND", "busy_poll")]).unwrap()).unwrap();
    assert_eq!(
        (c.kind, c.busy_poll_us),
        (BackendKind::BusyPoll, 50),
        "default spin when unset"
    );
    let c = choose(
        &cfg(&[
            ("QUICPRO_BACKEND", "BUSY_POLL"),
            ("QUICPRO_BUSY_POLL", "20"),
        ])
        .unwrap(),
    )
    .unwrap();
    assert_eq!((c.kind, c.busy_poll_us), (BackendKind::BusyPoll, 20));
    let why = unavailable(choose(&cfg(&[("QUICPRO_BACKEND", "io_uring")]).unwrap()));
    assert!(why.starts_with("io_uring: not built yet"), "{why}");
    match cfg(&[("QUICPRO_BACKEND", "kqueue")]) {
        Err(BackendError::InvalidConfig {
            var: "QUICPRO_BACKEND",
            value,
            ..
        }) => assert_eq!(value, "kqueue"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn open_returns_the_backend_and_a_startup_line() {
    let (b, line) = open(&cfg(&[]).unwrap(), "127.0.0.1:0".parse().unwrap()).unwrap();
    eprintln!("{line}");
    assert_eq!(b.kind(), BackendKind::Epoll);
    assert!(
        line.starts_with(
            "io backend epoll (io_uring backend not built, using epoll): udp 127.0.0.1:"
        ),
        "{line}"
    );
    assert!(line.contains("gso on") && line.contains("gro on"), "{line}");
    assert!(!line.contains('\n'));

    let (b, line) = open(
        &cfg(&[("QUICPRO_BUSY_POLL", "30")]).unwrap(),
        "[::]:0".parse().unwrap(),
    )
    .unwrap();
    eprintln!("{line}");
    assert_eq!(b.kind(), BackendKind::BusyPoll);
    assert!(
        line.contains("dual-stack") && line.contains("busy-poll 30 µs"),
        "{line}"
    );

    let err = open(
        &cfg(&[("QUICPRO_XDP", "eth0")]).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "af_xdp: not built yet; unset QUICPRO_XDP to use the kernel UDP path"
    );
}
