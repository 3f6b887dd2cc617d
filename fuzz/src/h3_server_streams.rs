//! An HTTP/3 server connection fed arbitrary client stream data, over a real
//! QUIC client/server pair that exchanges packets in memory.
//!
//! Per input a fresh pair (deterministic QUIC seeds) completes its handshake,
//! then the client opens streams with raw `Connection::open_stream`/`write`,
//! bypassing any client HTTP/3 layer, and the server's [`H3Connection`]
//! consumes them. Input layout:
//!
//! * byte 0, bit 0: the client first runs a real client `H3Connection`, so a
//!   valid control stream with SETTINGS and the QPACK streams exist and the
//!   raw streams are judged against a set-up peer; otherwise the raw
//!   streams are all the server sees.
//! * byte 0, bit 1: both sides enable Extended CONNECT and HTTP datagrams
//!   (RFC 9220, RFC 9297), and the server reads request bodies as capsules
//!   (`recv_capsule`, RFC 9297 §3) instead of raw bytes.
//! * byte 0, bit 2: the roles turn: a client `H3Connection` is fed, after it
//!   sent four GET requests, and the raw streams come from the server —
//!   op 0 writes the bytes as the response on the next of those request
//!   streams (in turn), ops 1–3 as below from the server's side (bit 0
//!   then runs a real server `H3Connection` first, which does not answer).
//! * then records `[op][len][len bytes]`: `op & 3` selects 0 = a new bidi
//!   (request) stream, 1 = a new uni stream (the bytes start with its type,
//!   e.g. 0x00 control, 0x02 QPACK encoder, 0x03 decoder, 0x01 push, or a
//!   reserved type), 2 = more bytes on the stream opened last, 3 = the bytes
//!   as one QUIC DATAGRAM frame (an HTTP/3 datagram: Quarter Stream ID and
//!   payload, RFC 9297 §2.1); `op & 4`
//!   finishes the stream after the bytes; `op & 8` lets the network run
//!   before the next record, so data arrives in several pieces.
//!
//! The server must never panic: it either keeps processing (delivering
//! events that are drained here, including request bodies) or returns an
//! HTTP/3 error, whose code must be one of the RFC 9114 / RFC 9204 codes or
//! H3_DATAGRAM_ERROR (RFC 9297 §5.2).
//!
//! `FUZZ_DEBUG=1` prints the events of the layer under test.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use h3_core::connection::{H3Config, H3Connection, H3Event};
use h3_core::qpack::HeaderField;
use quic_core::config::TransportConfig;
use quic_core::connection::{Connection, Side};
use quic_core::endpoint::{ClientConfig, ConnectionHandle, DatagramEvent, Endpoint, EndpointConfig, ServerConfig};
use quic_core::rand::SeededRandom;
use quic_core::stream::{Dir, StreamId};
use quic_core::tls::{ClientTlsOptions, ServerTlsOptions};
use quic_core::Version;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A self-signed P-256 certificate for `localhost` (the client skips
/// verification; any certificate would do) and its PKCS#8 key.
const CERT_HEX: &str = "308201963082013ba00302010202142249becaedddfd45f84b1393f79a24f6125383c6300a06082a8648ce3d04030230\
143112301006035504030c096c6f63616c686f73743020170d3236313132323231313035375a180f3231323631303239\
3231313035375a30143112301006035504030c096c6f63616c686f73743059301306072a8648ce3d020106082a8648ce\
3d0301070342000416d98533036203effef0ddfd9cca144e930356bddb856ca45de0e2e88d5644f2ccecb6a75944f880\
ba5fc722f9a778442d96eb889ab6060a8b4247a814b56e8fa3693067301d0603551d0e04160414502beb9ce853900d2e\
5cf53ccd1f8dc6a29d4580301f0603551d23041830168014502beb9ce853900d2e5cf53ccd1f8dc6a29d4580300f0603\
551d130101ff040530030101ff30140603551d11040d300b82096c6f63616c686f7374300a06082a8648ce3d04030203\
49003046022100a367ad018420ca4da133c5d80786f76634b49ef2e1389a0bfd04983b814e5d98022100885cb48d9a56\
ec7b6668146728a14e248c915a4e622569a7a0bfcf4c51c191df";
const KEY_HEX: &str = "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b02010104203064aad1b2c4b6b5eff26518\
efd641f2b2cd3cc1073057f4c6307ade1edd4239a1440342000416d98533036203effef0ddfd9cca144e930356bddb85\
6ca45de0e2e88d5644f2ccecb6a75944f880ba5fc722f9a778442d96eb889ab6060a8b4247a814b56e8f";

fn unhex(s: &str) -> Vec<u8> {
    s.as_bytes().chunks(2).map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap()).collect()
}

struct Tls {
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

fn tls() -> &'static Tls {
    static TLS: OnceLock<Tls> = OnceLock::new();
    TLS.get_or_init(|| {
        let cert = CertificateDer::from(unhex(CERT_HEX));
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(unhex(KEY_HEX)));
        let mut s = ServerTlsOptions::new(vec![cert], key, &[b"h3"]);
        s.early_data = false;
        s.tickets = 0;
        let mut c = ClientTlsOptions::new(&[b"h3"]);
        c.insecure_skip_verify = true;
        c.early_data = false;
        Tls { server: s.build().unwrap(), client: c.build().unwrap() }
    })
}

/// Two endpoints joined by a lossless, zero-delay link.
struct Net {
    now: Instant,
    client: Endpoint,
    server: Endpoint,
    client_conn: ConnectionHandle,
    server_conn: Option<ConnectionHandle>,
    buf: Vec<u8>,
}

const SERVER_ADDR: &str = "198.18.0.1:4433";
const CLIENT_ADDR: &str = "198.18.0.2:50000";

impl Net {
    fn new() -> Self {
        let now = Instant::now();
        let tls = tls();
        let transport = Arc::new(TransportConfig::default());
        let mut sc = ServerConfig::new(tls.server.clone(), b"token secret", 1_700_000_000);
        sc.transport = transport.clone();
        let server = Endpoint::with_rng(EndpointConfig::new(b"reset"), Some(sc), now, Box::new(SeededRandom::new(1)));
        let mut client = Endpoint::with_rng(EndpointConfig::new(b"creset"), None, now, Box::new(SeededRandom::new(2)));
        let cc = ClientConfig { tls: tls.client.clone(), transport, version: Version::V1 };
        let addr: SocketAddr = SERVER_ADDR.parse().unwrap();
        let client_conn = client.connect(now, &cc, addr, "localhost", bytes::Bytes::new()).unwrap();
        Self { now, client, server, client_conn, server_conn: None, buf: vec![0; 65536] }
    }

    fn client(&mut self) -> Option<&mut Connection> {
        self.client.connection(self.client_conn)
    }

    fn server(&mut self) -> Option<&mut Connection> {
        self.server_conn.and_then(|h| self.server.connection(h))
    }

    /// Moves every pending datagram across; returns whether any moved.
    fn exchange(&mut self) -> bool {
        let mut any = false;
        let client_addr: SocketAddr = CLIENT_ADDR.parse().unwrap();
        let server_addr: SocketAddr = SERVER_ADDR.parse().unwrap();
        for from_client in [true, false] {
            let mut out = Vec::new();
            let ep = if from_client { &mut self.client } else { &mut self.server };
            while let Some(t) = ep.poll_transmit(self.now, &mut self.buf) {
                let seg = t.segment_size.unwrap_or(t.size).max(1);
                out.extend(self.buf[..t.size].chunks(seg).map(<[u8]>::to_vec));
            }
            for mut d in out {
                any = true;
                if from_client {
                    if let DatagramEvent::NewConnection(h) = self.server.handle(self.now, client_addr, None, &mut d) {
                        self.server_conn.get_or_insert(h);
                    }
                } else {
                    self.client.handle(self.now, server_addr, None, &mut d);
                }
            }
        }
        any
    }

    /// Fires due timers, or jumps to the next one if nothing else moved.
    fn tick(&mut self) -> bool {
        if self.exchange() {
            return true;
        }
        let next = [self.client.poll_timeout(), self.server.poll_timeout()].into_iter().flatten().min();
        let Some(t) = next else { return false };
        // Keep to short jumps: idle timeouts would end the run early.
        if t > self.now + Duration::from_secs(1) {
            return false;
        }
        self.now = self.now.max(t);
        self.client.handle_timeout(self.now);
        self.server.handle_timeout(self.now);
        true
    }
}

/// The HTTP/3 layer under test (the server's, or the client's when the
/// roles turn); `done` once it has failed.
struct Server {
    h3: H3Connection,
    done: bool,
    capsules: bool,
    /// The victim is the client.
    client_side: bool,
}

impl Server {
    fn process(&mut self, net: &mut Net) {
        if self.done {
            return;
        }
        let now = net.now;
        let conn = if self.client_side { net.client() } else { net.server() };
        let Some(conn) = conn else { return };
        if let Err(e) = self.h3.process(conn, now) {
            // RFC 9114 §8.1 codes 0x100..=0x110, RFC 9204 §6 codes
            // 0x200..=0x202, RFC 9297 §5.2 H3_DATAGRAM_ERROR 0x33.
            let c = e.code.0;
            assert!((0x100..=0x110).contains(&c) || (0x200..=0x202).contains(&c) || c == 0x33, "unexpected H3 error code {c:#x}");
            self.done = true;
            return;
        }
        while let Some(ev) = self.h3.poll_event() {
            if std::env::var_os("FUZZ_DEBUG").is_some() {
                eprintln!("victim event: {ev:?}");
            }
            match ev {
                H3Event::Data { stream } if self.capsules => {
                    // Until the body is drained or the stream is reset with
                    // H3_DATAGRAM_ERROR for a malformed capsule.
                    while let Ok(Some(c)) = self.h3.recv_capsule(conn, stream) {
                        assert!(c.value.len() <= H3Config::default().max_capsule_len);
                    }
                }
                H3Event::Data { stream } => while self.h3.recv_body(conn, stream, usize::MAX).is_some() {},
                H3Event::Datagram { stream, .. } => {
                    // Only for client-initiated bidirectional streams.
                    assert_eq!(stream.0 % 4, 0);
                }
                _ => {}
            }
        }
    }
}

/// `client` is the real peer's `H3Connection` (on the server's side when
/// the roles turn).
fn run_rounds(net: &mut Net, server: &mut Server, client: &mut Option<H3Connection>, rounds: usize) {
    for _ in 0..rounds {
        if let Some(c) = client.as_mut() {
            let now = net.now;
            let conn = if server.client_side { net.server() } else { net.client() };
            if let Some(conn) = conn {
                let _ = c.process(conn, now);
                while c.poll_event().is_some() {}
            }
        }
        server.process(net);
        if !net.tick() {
            break;
        }
    }
}

/// One fuzz input: what libFuzzer calls, and what the corpus replay test
/// (`tests/replay.rs`) calls without it.
pub fn run(data: &[u8]) {
    let Some((&flags, mut rest)) = data.split_first() else { return };
    let mut net = Net::new();
    for _ in 0..200 {
        if net.server().is_some_and(|s| !s.is_handshaking()) && net.client().is_some_and(|c| !c.is_handshaking()) {
            break;
        }
        if !net.tick() {
            break;
        }
    }
    assert!(net.server().is_some_and(|s| !s.is_handshaking()), "in-memory handshake completes");
    let ext = flags & 2 != 0;
    let turned = flags & 4 != 0;
    let cfg = H3Config { enable_connect_protocol: ext, enable_datagrams: ext, ..H3Config::default() };
    let (victim_side, peer_side) = if turned { (Side::Client, Side::Server) } else { (Side::Server, Side::Client) };
    let mut server = Server { h3: H3Connection::new(victim_side, cfg.clone()), done: false, capsules: ext, client_side: turned };
    let mut client = (flags & 1 != 0).then(|| H3Connection::new(peer_side, cfg));
    run_rounds(&mut net, &mut server, &mut client, 20);
    // A client victim asks first: the hostile server answers on these.
    let mut requests = Vec::new();
    if turned {
        let now = net.now;
        if let Some(conn) = net.client() {
            let get = [
                HeaderField::new(&b":method"[..], &b"GET"[..]),
                HeaderField::new(&b":scheme"[..], &b"https"[..]),
                HeaderField::new(&b":authority"[..], &b"localhost"[..]),
                HeaderField::new(&b":path"[..], &b"/"[..]),
            ];
            for _ in 0..4 {
                if let Ok(id) = server.h3.send_request(conn, &get, true) {
                    requests.push(id);
                }
            }
            let _ = server.h3.process(conn, now);
        }
        run_rounds(&mut net, &mut server, &mut client, 20);
    }

    let mut last: Option<StreamId> = None;
    let mut next_request = 0;
    while let [op, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (bytes, after) = tail.split_at(n);
        rest = after;
        let conn = if turned { net.server() } else { net.client() };
        let Some(conn) = conn else { break };
        let id = match op & 3 {
            0 if turned => {
                next_request += 1;
                requests.get((next_request - 1) % requests.len().max(1)).copied()
            }
            0 => conn.open_stream(Dir::Bi),
            1 => conn.open_stream(Dir::Uni),
            2 => last,
            _ => {
                let _ = conn.send_datagram(bytes::Bytes::copy_from_slice(bytes));
                if op & 8 != 0 {
                    run_rounds(&mut net, &mut server, &mut client, 10);
                }
                continue;
            }
        };
        let Some(id) = id else { continue };
        last = Some(id);
        let _ = conn.write(id, bytes);
        if op & 4 != 0 {
            let _ = conn.finish(id);
        }
        if op & 8 != 0 {
            run_rounds(&mut net, &mut server, &mut client, 10);
        }
    }
    run_rounds(&mut net, &mut server, &mut client, 200);
}
