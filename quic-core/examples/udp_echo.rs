//! Driving the sans-I/O core over plain `std::net::UdpSocket`s: a server
//! and a client endpoint in one process; the client opens a stream, sends a
//! line, the server echoes it back, the client prints it and closes.
//!
//! The core never reads a clock or touches a socket. A driver's whole job:
//! - give every received datagram to `Endpoint::handle` (with `now`),
//! - send what `Endpoint::poll_transmit` (stateless replies) and each
//!   connection's `poll_transmit` produce,
//! - call `handle_timeout` once `poll_timeout`'s instant has passed,
//! - call `Endpoint::maintain` after working on a connection outside
//!   `handle` (it updates routing and frees ended connections),
//! - read events (`poll_event`) and streams.
//!
//! Run: `cargo run -p quic-core --example udp_echo`
#![allow(clippy::unwrap_used)]

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use quic_core::config::TransportConfig;
use quic_core::connection::{Event, StreamEvent};
use quic_core::endpoint::{ClientConfig, ConnectionHandle, Endpoint, EndpointConfig, ServerConfig};
use quic_core::stream::Dir;
use quic_core::tls::{ClientTlsOptions, ServerTlsOptions};

/// One endpoint and its socket.
struct Peer {
    socket: UdpSocket,
    endpoint: Endpoint,
}

impl Peer {
    fn new(server: Option<ServerConfig>) -> Peer {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let mut secret = [0u8; 32];
        quic_core::rand::RandomSource::fill(&mut quic_core::rand::SystemRandom::new(), &mut secret);
        let endpoint = Endpoint::new(EndpointConfig::new(&secret), server, Instant::now());
        Peer { socket, endpoint }
    }

    /// Receives what arrived, fires due timers, sends what is ready.
    /// Returns the earliest deadline of its connections.
    fn turn(&mut self, buf: &mut [u8]) -> Option<Instant> {
        let now = Instant::now();
        while let Ok((n, from)) = self.socket.recv_from(buf) {
            // Decrypted in place: the buffer is the core's to modify.
            self.endpoint.handle(now, from, None, &mut buf[..n]);
        }
        while let Some(t) = self.endpoint.poll_transmit(buf) {
            let _ = self.socket.send_to(&buf[..t.size], t.destination);
        }
        let handles: Vec<ConnectionHandle> = self.endpoint.handles().collect();
        let mut next: Option<Instant> = None;
        for h in handles {
            let Some(conn) = self.endpoint.connection(h) else { continue };
            if conn.poll_timeout().is_some_and(|t| t <= now) {
                conn.handle_timeout(now);
            }
            while let Some(t) = conn.poll_transmit(now, buf) {
                // Several datagrams may be written back to back (GSO).
                let seg = t.segment_size.unwrap_or(t.size);
                for d in buf[..t.size].chunks(seg) {
                    let _ = self.socket.send_to(d, t.destination);
                }
            }
            if let Some(t) = conn.poll_timeout() {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
            self.endpoint.maintain(h);
        }
        while self.endpoint.poll_closed().is_some() {}
        next
    }
}

fn main() {
    // A self-signed certificate the client is told to trust.
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = ck.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let alpn: &[&[u8]] = &[b"echo"];

    let server_tls = ServerTlsOptions::new(vec![cert.clone()], key, alpn).build().unwrap();
    let unix = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let mut server = Peer::new(Some(ServerConfig::new(server_tls, b"token secret of this server", unix)));
    let mut client = Peer::new(None);

    let mut tls = ClientTlsOptions::new(alpn);
    tls.extra_roots = vec![cert];
    let config = ClientConfig { tls: tls.build().unwrap(), transport: Arc::new(TransportConfig::default()), version: quic_core::Version::V1 };
    let server_addr = server.socket.local_addr().unwrap();
    let h = client.endpoint.connect(Instant::now(), &config, server_addr, "localhost", bytes::Bytes::new()).unwrap();

    let message = b"hello over QUIC\n";
    let mut stream = None;
    let mut echoed = Vec::new();
    let mut buf = vec![0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let next = [server.turn(&mut buf), client.turn(&mut buf)].into_iter().flatten().min();

        // Server: accept connections and echo every stream back.
        while let Some(sh) = server.endpoint.accept() {
            eprintln!("server: accepted connection {sh:?}");
        }
        let handles: Vec<ConnectionHandle> = server.endpoint.handles().collect();
        for sh in handles {
            let Some(conn) = server.endpoint.connection(sh) else { continue };
            while let Some(ev) = conn.poll_event() {
                if let Event::Stream(StreamEvent::Opened(dir)) = ev {
                    while let Some(id) = conn.accept_stream(dir) {
                        eprintln!("server: stream {id:?} opened");
                    }
                }
                if let Event::Stream(StreamEvent::Readable(id)) = ev {
                    let mut data = [0u8; 4096];
                    while let Ok(r) = conn.read(id, &mut data) {
                        if r.bytes > 0 {
                            let _ = conn.write(id, &data[..r.bytes]);
                        }
                        if r.fin {
                            let _ = conn.finish(id);
                        }
                        if r.bytes == 0 || r.fin {
                            break;
                        }
                    }
                }
            }
        }

        // Client: once connected, send the message; then read the echo.
        let Some(conn) = client.endpoint.connection(h) else { break };
        while let Some(ev) = conn.poll_event() {
            match ev {
                Event::HandshakeCompleted => {
                    let id = conn.open_stream(Dir::Bi).unwrap();
                    conn.write(id, message).unwrap();
                    conn.finish(id).unwrap();
                    stream = Some(id);
                }
                Event::Stream(StreamEvent::Readable(id)) if Some(id) == stream => {
                    let mut data = [0u8; 4096];
                    while let Ok(r) = conn.read(id, &mut data) {
                        echoed.extend_from_slice(&data[..r.bytes]);
                        if r.fin {
                            print!("client got back: {}", String::from_utf8_lossy(&echoed));
                            conn.close(Instant::now(), 0, b"done");
                        }
                        if r.bytes == 0 || r.fin {
                            break;
                        }
                    }
                }
                Event::ConnectionLost(e) => eprintln!("client: connection ended: {e}"),
                _ => {}
            }
        }
        if conn.is_drained() || (conn.is_closed() && echoed == message) {
            break;
        }
        // Sleep until the next deadline or a short while (a real driver
        // waits on the sockets with epoll or poll instead).
        let wait = next.map_or(Duration::from_millis(5), |t| t.saturating_duration_since(Instant::now())).min(Duration::from_millis(5));
        std::thread::sleep(wait);
    }
    assert_eq!(echoed, message, "the echo did not come back");
}
