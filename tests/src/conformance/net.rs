//! Where the conformance client's datagrams go: a server on simulated time
//! in this process, or a real server over UDP.

use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quic_core::config::TransportConfig;
use quic_core::endpoint::{ConnectionHandle, DatagramEvent, Endpoint, EndpointConfig, ServerConfig};
use quic_core::rand::SeededRandom;
use quic_core::tls::ServerTlsOptions;

use crate::h3_app::{H3ServerApp, ServerOptions};

/// The client's view of the network.
pub trait Net {
    /// The current time (simulated or real).
    fn now(&self) -> Instant;
    fn server_addr(&self) -> SocketAddr;
    /// Sends one datagram to the server.
    fn send(&mut self, datagram: &[u8]);
    /// The next datagram from the server into `out`, waiting until
    /// `deadline` at most (simulated time advances to it when nothing
    /// happens first). False when none came.
    fn recv(&mut self, deadline: Instant, out: &mut Vec<u8>) -> bool;
}

/// Our server (quic-core endpoint and the HTTP/3 test application) on
/// simulated time, with no delay or loss between it and the client.
pub struct SimNet {
    now: Instant,
    server: Endpoint,
    apps: HashMap<ConnectionHandle, H3ServerApp>,
    queue: VecDeque<Vec<u8>>,
    out: Vec<u8>,
}

impl SimNet {
    pub const SERVER: &'static str = "198.18.0.1:4433";
    pub const CLIENT: &'static str = "198.18.0.2:50000";

    /// A server with the test certificate, ALPN h3 and default transport
    /// settings but one: DATAGRAM frames up to 1,000 bytes (the default
    /// 65,535 leaves no room to exceed it in a packet, so the RFC 9221
    /// case could not apply); `seed` fixes its randomness.
    pub fn new(seed: u64) -> Self {
        let cert = crate::certs::shared();
        let tls = ServerTlsOptions::new(vec![cert.cert.clone()], cert.key.clone_key(), &[b"h3"]).build().unwrap();
        let now = Instant::now();
        let mut sc = ServerConfig::new(tls, b"conformance token secret", 1_700_000_000);
        sc.transport = Arc::new(TransportConfig { max_datagram_frame_size: Some(1000), ..TransportConfig::default() });
        let server = Endpoint::with_rng(EndpointConfig::new(b"conformance reset"), Some(sc), now, Box::new(SeededRandom::new(seed)));
        SimNet { now, server, apps: HashMap::new(), queue: VecDeque::new(), out: vec![0u8; 65536] }
    }

    /// Runs the HTTP/3 layer of every connection, then queues what the
    /// endpoint sends.
    fn turn(&mut self) {
        for h in self.server.handles().collect::<Vec<_>>() {
            let now = self.now;
            let app = self.apps.entry(h).or_insert_with(|| H3ServerApp::new(ServerOptions::default()));
            if let Some(conn) = self.server.connection(h) {
                if conn.is_established() {
                    app.drive(conn, now);
                }
            }
        }
        while let Some(t) = self.server.poll_transmit(self.now, &mut self.out) {
            let seg = t.segment_size.unwrap_or(t.size);
            for d in self.out[..t.size].chunks(seg) {
                self.queue.push_back(d.to_vec());
            }
        }
        while self.server.poll_closed().is_some() {}
    }
}

impl Net for SimNet {
    fn now(&self) -> Instant {
        self.now
    }

    fn server_addr(&self) -> SocketAddr {
        Self::SERVER.parse().unwrap()
    }

    fn send(&mut self, datagram: &[u8]) {
        let mut d = datagram.to_vec();
        let from: SocketAddr = Self::CLIENT.parse().unwrap();
        if let DatagramEvent::NewConnection(h) = self.server.handle(self.now, from, None, &mut d) {
            self.server.accept();
            self.apps.insert(h, H3ServerApp::new(ServerOptions::default()));
        }
        self.turn();
    }

    fn recv(&mut self, deadline: Instant, out: &mut Vec<u8>) -> bool {
        loop {
            if let Some(d) = self.queue.pop_front() {
                *out = d;
                return true;
            }
            match self.server.poll_timeout() {
                Some(t) if t <= deadline => {
                    self.now = self.now.max(t);
                    self.server.handle_timeout(self.now);
                    self.turn();
                }
                _ => {
                    self.now = self.now.max(deadline);
                    return false;
                }
            }
        }
    }
}

/// A real server over UDP.
pub struct UdpNet {
    socket: UdpSocket,
    server: SocketAddr,
    buf: Vec<u8>,
}

impl UdpNet {
    pub fn new(server: SocketAddr) -> std::io::Result<Self> {
        let bind = if server.is_ipv4() { "127.0.0.1:0" } else { "[::1]:0" };
        let socket = UdpSocket::bind(bind)?;
        Ok(UdpNet { socket, server, buf: vec![0u8; 65536] })
    }
}

impl Net for UdpNet {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn server_addr(&self) -> SocketAddr {
        self.server
    }

    fn send(&mut self, datagram: &[u8]) {
        let _ = self.socket.send_to(datagram, self.server);
    }

    fn recv(&mut self, deadline: Instant, out: &mut Vec<u8>) -> bool {
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            if wait.is_zero() {
                return false;
            }
            let _ = self.socket.set_read_timeout(Some(wait.max(Duration::from_micros(100))));
            match self.socket.recv_from(&mut self.buf) {
                Ok((n, from)) if from == self.server => {
                    out.clear();
                    out.extend_from_slice(&self.buf[..n]);
                    return true;
                }
                Ok(_) => continue,
                Err(_) => return false,
            }
        }
    }
}
