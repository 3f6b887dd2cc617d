//! A minimal blocking UDP loop around a quic-core `Endpoint`, for interop
//! tests against real peers on loopback (the I/O backends come later).

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use quic_core::endpoint::{ConnectionHandle, DatagramEvent, Endpoint};

pub struct UdpDriver {
    pub socket: UdpSocket,
    pub endpoint: Endpoint,
    pub accepted: Vec<ConnectionHandle>,
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl UdpDriver {
    pub fn new(socket: UdpSocket, endpoint: Endpoint) -> Self {
        Self { socket, endpoint, accepted: Vec::new(), buf: vec![0u8; 65536], out: vec![0u8; 65536] }
    }

    pub fn bind(addr: &str, endpoint: Endpoint) -> std::io::Result<Self> {
        let socket = UdpSocket::bind(addr)?;
        Ok(Self::new(socket, endpoint))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap_or_else(|e| panic!("local_addr: {e}"))
    }

    /// Sends everything the endpoint has queued.
    pub fn flush(&mut self) {
        let now = Instant::now();
        while let Some(t) = self.endpoint.poll_transmit(now, &mut self.out) {
            let seg = t.segment_size.unwrap_or(t.size);
            for chunk in self.out[..t.size].chunks(seg) {
                let _ = self.socket.send_to(chunk, t.destination);
            }
        }
    }

    /// One turn: send, wait for input (at most `max_wait` or the next
    /// timer), process all input, fire due timers, send again.
    pub fn turn(&mut self, max_wait: Duration) {
        self.flush();
        let now = Instant::now();
        let wait = self.endpoint.poll_timeout().map_or(max_wait, |t| t.saturating_duration_since(now).min(max_wait));
        let wait = wait.max(Duration::from_micros(100));
        let _ = self.socket.set_nonblocking(false);
        let _ = self.socket.set_read_timeout(Some(wait));
        let mut first = true;
        while let Ok((n, from)) = self.socket.recv_from(&mut self.buf) {
            let now = Instant::now();
            let ev = self.endpoint.handle(now, from, None, &mut self.buf[..n]);
            if let DatagramEvent::NewConnection(h) = ev {
                self.accepted.push(h);
            }
            if first {
                first = false;
                let _ = self.socket.set_nonblocking(true);
            }
        }
        self.endpoint.handle_timeout(Instant::now());
        self.flush();
    }

    /// Turns until `cond` holds or `limit` passes; returns whether it held.
    pub fn run_until(&mut self, limit: Duration, mut cond: impl FnMut(&mut Self) -> bool) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if cond(self) {
                return true;
            }
            self.turn(Duration::from_millis(20));
        }
        cond(self)
    }
}
