//! HTTP/3 over the sans-I/O cores and plain `std::net::UdpSocket`s: a
//! server and a client in one process; the client sends `GET /hello`, the
//! server answers with a short text body, the client prints the status and
//! the body and closes.
//!
//! The QUIC side is driven as in quic-core's `udp_echo` example (datagrams
//! into `Endpoint::handle`, `handle_timeout`, `poll_transmit` until `None`).
//! On top, one `H3Connection` per QUIC connection: after the endpoint took
//! in a batch, `process` runs on every connection the endpoint lists as
//! `active`, and the application reads the HTTP/3 events it produced.
//!
//! Run: `cargo run -p h3-core --example h3_get`
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use h3_core::connection::{H3Config, H3Connection, H3Event};
use h3_core::qpack::HeaderField;
use quic_core::config::TransportConfig;
use quic_core::connection::Side;
use quic_core::endpoint::{ClientConfig, ConnectionHandle, Endpoint, EndpointConfig, ServerConfig};
use quic_core::tls::{ClientTlsOptions, ServerTlsOptions};

const BODY: &[u8] = b"hello from h3-core\n";

/// One endpoint, its socket and an HTTP/3 layer per connection.
struct Peer {
    side: Side,
    socket: UdpSocket,
    endpoint: Endpoint,
    h3: HashMap<ConnectionHandle, H3Connection>,
}

impl Peer {
    fn new(side: Side, server: Option<ServerConfig>) -> Peer {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let mut secret = [0u8; 32];
        quic_core::rand::RandomSource::fill(&mut quic_core::rand::SystemRandom::new(), &mut secret);
        let endpoint = Endpoint::new(EndpointConfig::new(&secret), server, Instant::now());
        Peer { side, socket, endpoint, h3: HashMap::new() }
    }

    /// Takes in what arrived, fires due timers, runs HTTP/3 on the active
    /// connections; returns their HTTP/3 events.
    fn receive(&mut self, buf: &mut [u8]) -> Vec<(ConnectionHandle, H3Event)> {
        let now = Instant::now();
        while let Ok((n, from)) = self.socket.recv_from(buf) {
            self.endpoint.handle(now, from, None, &mut buf[..n]);
        }
        self.endpoint.handle_timeout(now);
        while let Some(h) = self.endpoint.accept() {
            self.h3.insert(h, H3Connection::new(self.side, H3Config::default()));
        }
        let mut events = Vec::new();
        for h in self.endpoint.active().to_vec() {
            let (Some(conn), Some(h3)) = (self.endpoint.connection(h), self.h3.get_mut(&h)) else { continue };
            if let Err(e) = h3.process(conn, now) {
                eprintln!("{:?}: HTTP/3 error {e:?}", self.side);
            }
            while let Some(ev) = h3.poll_event() {
                events.push((h, ev));
            }
        }
        events
    }

    /// Sends everything queued; returns when the endpoint next has work.
    fn send(&mut self, buf: &mut [u8]) -> Option<Instant> {
        while let Some(t) = self.endpoint.poll_transmit(Instant::now(), buf) {
            let seg = t.segment_size.unwrap_or(t.size);
            for d in buf[..t.size].chunks(seg) {
                let _ = self.socket.send_to(d, t.destination);
            }
        }
        while let Some((h, _)) = self.endpoint.poll_closed() {
            self.h3.remove(&h);
        }
        self.endpoint.poll_timeout()
    }
}

fn field(name: &str, value: &str) -> HeaderField {
    HeaderField::new(name.as_bytes().to_vec(), value.as_bytes().to_vec())
}

fn main() {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = ck.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let alpn: &[&[u8]] = &[b"h3"];
    let server_tls = ServerTlsOptions::new(vec![cert.clone()], key, alpn).build().unwrap();
    let unix = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let mut server = Peer::new(Side::Server, Some(ServerConfig::new(server_tls, b"token secret of this server", unix)));
    let mut client = Peer::new(Side::Client, None);

    let mut tls = ClientTlsOptions::new(alpn);
    tls.extra_roots = vec![cert];
    let config = ClientConfig { tls: tls.build().unwrap(), transport: Arc::new(TransportConfig::default()), version: quic_core::Version::V1 };
    let server_addr = server.socket.local_addr().unwrap();
    let ch = client.endpoint.connect(Instant::now(), &config, server_addr, "localhost", bytes::Bytes::new()).unwrap();
    client.h3.insert(ch, H3Connection::new(Side::Client, H3Config::default()));

    let request = [field(":method", "GET"), field(":scheme", "https"), field(":authority", "localhost"), field(":path", "/hello")];
    let mut sent = false;
    let (mut status, mut body, mut done) = (None, Vec::new(), false);
    let mut buf = vec![0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !done {
        // Server: answer every request that arrives complete.
        for (h, ev) in server.receive(&mut buf) {
            if let H3Event::Headers { stream, headers, .. } = ev {
                let path = headers.iter().find(|f| &f.name[..] == b":path").map(|f| String::from_utf8_lossy(&f.value).into_owned());
                eprintln!("server: request for {}", path.unwrap_or_default());
                let (Some(conn), Some(h3)) = (server.endpoint.connection(h), server.h3.get_mut(&h)) else { continue };
                let len = BODY.len().to_string();
                h3.send_response(conn, stream, 200, &[field("content-type", "text/plain"), field("content-length", &len)], false).unwrap();
                h3.send_data(conn, stream, BODY, true).unwrap();
            }
        }

        // Client: send the request once the handshake is done, read the answer.
        let events = client.receive(&mut buf);
        let (Some(conn), Some(h3)) = (client.endpoint.connection(ch), client.h3.get_mut(&ch)) else { break };
        if !sent && conn.is_established() {
            h3.send_request(conn, &request, true).unwrap();
            sent = true;
        }
        for (_, ev) in events {
            match ev {
                H3Event::Headers { headers, .. } => {
                    status = headers.iter().find(|f| &f.name[..] == b":status").map(|f| String::from_utf8_lossy(&f.value).into_owned());
                }
                H3Event::Data { stream } => {
                    while let Some(chunk) = h3.recv_body(conn, stream, usize::MAX) {
                        body.extend_from_slice(&chunk);
                    }
                }
                H3Event::Finished { .. } => {
                    println!("client got {} with {:?}", status.as_deref().unwrap_or("?"), String::from_utf8_lossy(&body));
                    conn.close(Instant::now(), 0x100, b"");
                    done = true;
                }
                _ => {}
            }
        }

        let next = [server.send(&mut buf), client.send(&mut buf)].into_iter().flatten().min();
        let wait = next.map_or(Duration::from_millis(5), |t| t.saturating_duration_since(Instant::now())).min(Duration::from_millis(5));
        std::thread::sleep(wait);
    }
    assert_eq!(status.as_deref(), Some("200"), "no response");
    assert_eq!(body, BODY, "the body did not arrive intact");
}
