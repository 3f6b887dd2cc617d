//! Helpers shared by the loopback tests. Every wait is bounded.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use io_backends::{Backend, BackendError, EpollBackend, Interest, RecvMeta, UdpConfig, UdpSocketInfo, UringBackend, UringConfig};

/// What the shared tests need from a backend besides the trait.
pub trait TestBackend: Backend + Sized {
    fn open_with(bind: SocketAddr, cfg: &UdpConfig) -> Result<Self, BackendError>;
    fn info(&self) -> UdpSocketInfo;
}

impl TestBackend for EpollBackend {
    fn open_with(bind: SocketAddr, cfg: &UdpConfig) -> Result<Self, BackendError> {
        EpollBackend::open(bind, cfg)
    }
    fn info(&self) -> UdpSocketInfo {
        *self.socket_info()
    }
}

impl TestBackend for UringBackend {
    fn open_with(bind: SocketAddr, cfg: &UdpConfig) -> Result<Self, BackendError> {
        UringBackend::open(bind, cfg, &UringConfig::default())
    }
    fn info(&self) -> UdpSocketInfo {
        *self.socket_info()
    }
}

/// Runs each generic test `fn name<B: TestBackend>()` once per backend, as
/// `epoll::name` and `io_uring::name`.
#[macro_export]
macro_rules! for_each_backend {
    ($($name:ident),* $(,)?) => {
        mod epoll {
            $( #[test] fn $name() { super::$name::<io_backends::EpollBackend>() } )*
        }
        mod io_uring {
            $( #[test] fn $name() { super::$name::<io_backends::UringBackend>() } )*
        }
    };
}

pub const DEADLINE: Duration = Duration::from_secs(5);

/// A small configuration for tests: default options, 1 MiB buffers.
pub fn udp_config() -> UdpConfig {
    UdpConfig { recv_buffer: 1 << 20, send_buffer: 1 << 20, ..UdpConfig::default() }
}

/// One received buffer, copied out for assertions.
#[derive(Debug, Clone)]
pub struct Got {
    pub meta: RecvMeta,
    pub bytes: Vec<u8>,
}

impl Got {
    pub fn datagram_count(&self) -> usize {
        self.meta.datagram_count()
    }
}

/// Receives until `datagrams` datagrams (GRO buffers counted by their
/// segments) arrived or the deadline passed.
pub fn recv_datagrams(b: &mut dyn Backend, datagrams: usize, deadline: Duration) -> Vec<Got> {
    let start = Instant::now();
    let mut out = Vec::new();
    let mut count = 0;
    while count < datagrams {
        let left = deadline.saturating_sub(start.elapsed());
        if left.is_zero() {
            break;
        }
        let r = b.wait(Interest::READABLE, Some(left)).unwrap();
        if !r.readable {
            continue;
        }
        let mut batch = b.recv().unwrap();
        while let Some((meta, buf)) = batch.next_buffer() {
            count += meta.datagram_count();
            out.push(Got { meta, bytes: buf.to_vec() });
        }
    }
    out
}

/// Splits received buffers into datagrams.
pub fn flatten(got: &[Got]) -> Vec<Vec<u8>> {
    got.iter().flat_map(|g| g.bytes.chunks(g.meta.stride()).map(<[u8]>::to_vec)).collect()
}

/// Payload `i` of length `len`: index in the first two bytes, then a pattern.
pub fn payload(i: usize, len: usize) -> Vec<u8> {
    let mut v: Vec<u8> = (0..len).map(|k| (k * 7 + i * 13) as u8).collect();
    if len >= 2 {
        v[0] = (i >> 8) as u8;
        v[1] = i as u8;
    }
    v
}

/// A plain blocking socket with a read timeout.
pub fn plain_socket(addr: &str) -> UdpSocket {
    let s = UdpSocket::bind(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    s
}

/// Reads from a plain socket until `n` datagrams or a timeout.
pub fn plain_recv(s: &UdpSocket, n: usize) -> Vec<(Vec<u8>, SocketAddr)> {
    let start = Instant::now();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    while out.len() < n && start.elapsed() < DEADLINE {
        match s.recv_from(&mut buf) {
            Ok((len, from)) => out.push((buf[..len].to_vec(), from)),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("recv_from: {e}"),
        }
    }
    out
}

/// Sends everything, waiting for writability when the kernel pushes back.
pub fn send_all(b: &mut dyn Backend, transmits: &mut [io_backends::Transmit<'_>]) {
    let start = Instant::now();
    let mut done = 0;
    while done < transmits.len() {
        assert!(start.elapsed() < DEADLINE, "send did not finish");
        done += b.send(&mut transmits[done..]).unwrap();
        if done < transmits.len() {
            b.wait(Interest::WRITABLE, Some(Duration::from_millis(100))).unwrap();
        }
    }
}
