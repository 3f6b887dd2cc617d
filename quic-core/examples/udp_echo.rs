//! Driving the sans-I/O core over plain `std::net::UdpSocket`s: a server
//! and a client endpoint in one process; the client opens a stream, sends a
//! line, the server echoes it back, the client prints it and closes.
//!
//! The core never reads a clock or touches a socket. A driver's whole job,
//! all through the `Endpoint`:
//! - give every received datagram to `handle` (with `now`),
//! - call `handle_timeout(now)`; `poll_timeout` says when it next has work,
//! - read events (`poll_event`) and streams of the connections `active`
//!   lists (those a datagram, a timer or the application touched),
//! - send what `poll_transmit` produces until it returns `None` (every
//!   connection's packets and the stateless replies), then wait for the
//!   socket or the next timeout,
//! - forget connections `poll_closed` reports.
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

    /// Takes in what arrived and fires due timers.
    fn receive(&mut self, buf: &mut [u8]) {
        let now = Instant::now();
        while let Ok((n, from)) = self.socket.recv_from(buf) {
            // Decrypted in place: the buffer is the core's to modify.
            self.endpoint.handle(now, from, None, &mut buf[..n]);
        }
        self.endpoint.handle_timeout(now);
    }

    /// Sends everything queued; returns when the endpoint next has work.
    fn send(&mut self, buf: &mut [u8]) -> Option<Instant> {
        while let Some(t) = self.endpoint.poll_transmit(Instant::now(), buf) {
            // Several datagrams may be written back to back (GSO).
            let seg = t.segment_size.unwrap_or(t.size);
            for d in buf[..t.size].chunks(seg) {
                let _ = self.socket.send_to(d, t.destination);
            }
        }
        while self.endpoint.poll_closed().is_some() {}
        self.endpoint.poll_timeout()
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
        server.receive(&mut buf);
        client.receive(&mut buf);

        // Server: accept connections and echo every stream back.
        while let Some(sh) = server.endpoint.accept() {
            eprintln!("server: accepted connection {sh:?}");
        }
        let active: Vec<ConnectionHandle> = server.endpoint.active().to_vec();
        for sh in active {
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
        let done = conn.is_drained() || (conn.is_closed() && echoed == message);
        // Sending after the application's writes carries them (and the
        // client's CONNECTION_CLOSE) out this turn.
        let next = [server.send(&mut buf), client.send(&mut buf)].into_iter().flatten().min();
        if done {
            break;
        }
        // Sleep until the next deadline or a short while (a real driver
        // waits on the sockets with epoll or poll instead).
        let wait = next.map_or(Duration::from_millis(5), |t| t.saturating_duration_since(Instant::now())).min(Duration::from_millis(5));
        std::thread::sleep(wait);
    }
    assert_eq!(echoed, message, "the echo did not come back");
}
