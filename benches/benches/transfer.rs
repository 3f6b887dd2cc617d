//! Protocol cost of a bulk transfer: quic-core beside quinn-proto 0.11.
//!
//! Two endpoints of the same implementation talk in memory: no sockets, no
//! syscalls, no copies in the harness (quic-core decrypts each datagram in
//! place in the sender's transmit buffer; quinn-proto's transmit `Vec`
//! becomes the received `BytesMut` as is). A client opens one unidirectional
//! stream and writes `transfer_size()` bytes (one shared 1 MiB `Bytes`
//! chunk, handed over without copying); the server reads and discards
//! everything. Only the transfer is timed; creating the endpoints and the
//! handshake are setup (`iter_custom`).
//!
//! The simulated network is perfect: no loss, no delay. Each side takes
//! turns: the client's application writes, the client emits about
//! [`TURN_DATAGRAMS`] datagrams (in GSO batches, handed to the server one
//! segment at a time), the server's application reads, the server emits
//! (ACKs and flow-control updates) back. Simulated time only moves when
//! neither side has anything to send, and then straight to the earliest
//! timer of the two, so pacing and delayed-ACK timers never stall the loop
//! and the measurement is pure CPU.
//!
//! Both implementations get the same settings: a fixed 1452-byte UDP payload
//! (no path MTU discovery, which only quinn has), up to 10 GSO segments per
//! transmit, Cubic, 16 MiB stream and connection receive windows and send
//! buffers, no ECN, the same self-signed ECDSA certificate, and TLS through
//! rustls + ring with TLS_AES_128_GCM_SHA256 preferred on both sides.
//!
//! Running:
//! - `cargo bench -p quicpro-benches --bench transfer` runs criterion for
//!   both and then prints `transfer ratio quicpro/quinn-proto = N.NNx`
//!   (throughput of ours over theirs, > 1 means quic-core is faster, from
//!   five extra alternating transfers each, best run of each), and the same
//!   ratio from the thread's on-CPU time, which a loaded machine disturbs
//!   less than wall time.
//! - `cargo test -p quicpro-benches --benches` runs each benchmark once; in
//!   debug builds the transfer is 8 MiB instead of 100 MiB so that stays
//!   quick (unoptimised code is ~20x slower).
//! - `QUICPRO_BENCH_TRANSFER_MB=N` overrides the size;
//!   `QUICPRO_BENCH_PROFILE=quicpro|quinn` skips criterion and just runs
//!   `QUICPRO_BENCH_REPS` (default 3) transfers of one implementation (for
//!   `perf record` / `valgrind --tool=callgrind
//!   --toggle-collect='transfer::*::Pair::transfer'`);
//!   `QUICPRO_BENCH_TRANSFER_MB=0` with `--toggle-collect='transfer::*::Pair::handshake'`
//!   profiles full handshakes instead (connect to both sides complete,
//!   configurations built beforehand);
//!   `QUICPRO_BENCH_VERBOSE=1` prints packet and transmit counts after each
//!   transfer (to check both sides did comparable work).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, SamplingMode, Throughput};

/// UDP payload size both implementations send (no PMTUD).
const MTU: u16 = 1452;
/// Datagrams per GSO transmit (quic-core's `max_gso_segments`, quinn-proto's
/// `max_datagrams`).
const GSO_SEGMENTS: usize = 10;
/// Receive windows and send buffers.
const WINDOW: u64 = 16 << 20;
/// The application writes this buffer over and over.
const CHUNK: usize = 1 << 20;
/// Datagrams one side emits (whole GSO batches, so possibly a few more)
/// before the other side runs: about what one GRO/recvmmsg round delivers
/// on Linux, so the receiver acknowledges every few dozen packets as it
/// would on a real host. Counted in datagrams, not transmits, so the ACK
/// cadence is the same whether or not an implementation batches.
const TURN_DATAGRAMS: usize = 40;
/// Bound on timer-driven steps of one transfer; a healthy run needs a few.
const MAX_IDLE_STEPS: u32 = 100_000;

const CLIENT_ADDR: &str = "198.18.0.2:50000";
const SERVER_ADDR: &str = "198.18.0.1:4433";
const ALPN: &[u8] = b"bench";

fn transfer_size() -> u64 {
    if let Some(mb) = std::env::var("QUICPRO_BENCH_TRANSFER_MB").ok().and_then(|v| v.parse::<u64>().ok()) {
        return mb << 20;
    }
    // Unoptimised builds (`cargo test --benches`) use a smaller transfer.
    if cfg!(debug_assertions) {
        8 << 20
    } else {
        100 << 20
    }
}

/// The self-signed certificate both implementations present, made once.
struct Certs {
    cert: rustls::pki_types::CertificateDer<'static>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
}

impl Certs {
    fn generate() -> Self {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        Certs { cert: ck.cert.der().clone(), key: rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into()) }
    }
}

/// `QUICPRO_BENCH_VERBOSE=1`: print packet counts after each transfer.
fn verbose() -> bool {
    std::env::var_os("QUICPRO_BENCH_VERBOSE").is_some()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The next piece of the stream to hand to `write`: a slice of the shared
/// chunk, no copy.
fn next_piece(chunk: &Bytes, written: u64, size: u64) -> Bytes {
    let off = (written % CHUNK as u64) as usize;
    let len = (CHUNK - off).min((size - written) as usize);
    chunk.slice(off..off + len)
}

/// quic-core driven in memory.
mod quicpro {
    use super::*;
    use quic_core::config::TransportConfig;
    use quic_core::endpoint::{ClientConfig, ConnectionHandle, DatagramEvent, Endpoint, EndpointConfig, ServerConfig};
    use quic_core::stream::{Dir, StreamId, StreamReadError, WriteError};
    use quic_core::tls::{ClientTlsOptions, ServerTlsOptions};

    pub struct Pair {
        now: Instant,
        client: Endpoint,
        server: Endpoint,
        ch: ConnectionHandle,
        sh: Option<ConnectionHandle>,
        client_addr: SocketAddr,
        server_addr: SocketAddr,
        /// Transmit buffer, reused; datagrams are decrypted in place in it
        /// by the receiver (the sender is done with them).
        buf: Vec<u8>,
        /// Transmits (GSO batches) made by client and server.
        transmits: [u64; 2],
    }

    fn transport() -> TransportConfig {
        TransportConfig {
            receive_window: WINDOW,
            max_receive_window: WINDOW,
            stream_receive_window: WINDOW,
            max_stream_receive_window: WINDOW,
            send_buffer_per_stream: WINDOW,
            initial_mtu: MTU,
            max_udp_payload_size: MTU,
            max_gso_segments: GSO_SEGMENTS,
            congestion: quic_core::recovery::CongestionAlgorithm::Cubic,
            ..TransportConfig::default()
        }
    }

    impl Pair {
        /// Two endpoints with a completed handshake.
        pub fn new(certs: &Certs) -> Self {
            let now = Instant::now();
            let transport = Arc::new(transport());
            let stls = ServerTlsOptions::new(vec![certs.cert.clone()], certs.key.clone_key(), &[ALPN]).build().unwrap();
            let mut ctls = ClientTlsOptions::new(&[ALPN]);
            ctls.extra_roots.push(certs.cert.clone());
            let ctls = ctls.build().unwrap();
            let mut sc = ServerConfig::new(stls, b"bench token secret", 1_700_000_000);
            sc.transport = transport.clone();
            let server = Endpoint::new(EndpointConfig::new(b"bench server reset"), Some(sc), now);
            let client = Endpoint::new(EndpointConfig::new(b"bench client reset"), None, now);
            let cc = ClientConfig { tls: ctls, transport, version: quic_core::Version::V1 };
            let server_addr = addr(SERVER_ADDR);
            let mut p = Pair {
                now,
                client,
                server,
                ch: ConnectionHandle(usize::MAX),
                sh: None,
                client_addr: addr(CLIENT_ADDR),
                server_addr,
                buf: vec![0u8; GSO_SEGMENTS * MTU as usize],
                transmits: [0; 2],
            };
            p.handshake(&cc);
            p
        }

        /// Connects and runs the handshake to completion on both sides
        /// (configurations and endpoints exist already). Not inlined, so
        /// profiles can isolate it (`QUICPRO_BENCH_TRANSFER_MB=0`).
        #[inline(never)]
        pub fn handshake(&mut self, cc: &ClientConfig) {
            let p = self;
            p.ch = p.client.connect(p.now, cc, p.server_addr, "localhost", Bytes::new()).unwrap();
            let mut steps = 0;
            loop {
                let sent = p.client_turn(usize::MAX) + p.server_turn(usize::MAX);
                let done = p.sh.is_some()
                    && !p.client.connection_ref(p.ch).unwrap().is_handshaking()
                    && !p.server.connection_ref(p.sh.unwrap()).unwrap().is_handshaking();
                if done && sent == 0 {
                    break;
                }
                if sent == 0 {
                    p.advance();
                }
                steps += 1;
                assert!(steps < 10_000, "quic-core handshake did not finish");
            }
            p.drain_events();
        }

        /// Client connection's transmits go to the server until `limit`
        /// datagrams moved; returns how many did.
        fn client_turn(&mut self, limit: usize) -> usize {
            let mut n = 0;
            while n < limit {
                let Some(t) = self.client.poll_transmit(self.now, &mut self.buf) else { break };
                self.transmits[0] += 1;
                let seg = t.segment_size.unwrap_or(t.size);
                for d in self.buf[..t.size].chunks_mut(seg) {
                    n += 1;
                    if let DatagramEvent::NewConnection(h) = self.server.handle(self.now, self.client_addr, None, d) {
                        self.sh = Some(h);
                    }
                }
            }
            n
        }

        fn server_turn(&mut self, limit: usize) -> usize {
            let mut n = 0;
            while n < limit {
                let Some(t) = self.server.poll_transmit(self.now, &mut self.buf) else { break };
                self.transmits[1] += 1;
                let seg = t.segment_size.unwrap_or(t.size);
                for d in self.buf[..t.size].chunks_mut(seg) {
                    n += 1;
                    self.client.handle(self.now, self.server_addr, None, d);
                }
            }
            n
        }

        /// Nothing to send on either side: jump to the earliest timer.
        fn advance(&mut self) {
            let t = match (self.client.poll_timeout(), self.server.poll_timeout()) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => a.or(b).expect("quic-core: both sides idle without timers"),
            };
            self.now = self.now.max(t);
            self.client.handle_timeout(self.now);
            self.server.handle_timeout(self.now);
        }

        fn drain_events(&mut self) {
            if let Some(c) = self.client.connection(self.ch) {
                while c.poll_event().is_some() {}
            }
            if let Some(c) = self.sh.and_then(|h| self.server.connection(h)) {
                while c.poll_event().is_some() {}
            }
        }

        /// Sends `size` bytes client→server; returns the bytes the server read
        /// before the FIN. Not inlined, so profiles can isolate it.
        #[inline(never)]
        pub fn transfer(&mut self, chunk: &Bytes, size: u64) -> u64 {
            let sh = self.sh.expect("handshake done");
            let id: StreamId = self.client.connection(self.ch).unwrap().open_stream(Dir::Uni).expect("stream");
            let mut written = 0u64;
            let mut finished = false;
            let mut sid = None;
            let mut received = 0u64;
            let mut idle_steps = 0u32;
            let start = self.now;
            loop {
                // Client application: queue as much as the send buffer takes.
                let conn = self.client.connection(self.ch).expect("client connection gone");
                while written < size {
                    match conn.write_bytes(id, next_piece(chunk, written, size)) {
                        Ok(0) | Err(WriteError::Blocked) => break,
                        Ok(n) => written += n as u64,
                        Err(e) => panic!("quic-core write: {e}"),
                    }
                }
                if written == size && !finished {
                    conn.finish(id).unwrap();
                    finished = true;
                }
                while conn.poll_event().is_some() {}
                let sent = self.client_turn(TURN_DATAGRAMS);

                // Server application: read and discard.
                let conn = self.server.connection(sh).expect("server connection gone");
                if sid.is_none() {
                    sid = conn.accept_stream(Dir::Uni);
                }
                let mut fin = false;
                if let Some(s) = sid {
                    loop {
                        match conn.read_chunk(s, usize::MAX) {
                            Ok(c) => {
                                received += c.data.len() as u64;
                                if c.fin {
                                    fin = true;
                                    break;
                                }
                                if c.data.is_empty() {
                                    break;
                                }
                            }
                            Err(StreamReadError::Blocked) => break,
                            Err(e) => panic!("quic-core read: {e}"),
                        }
                    }
                }
                while conn.poll_event().is_some() {}
                if fin {
                    if verbose() {
                        let s = self.server.connection_ref(sh).unwrap().stats();
                        let c = self.client.connection_ref(self.ch).unwrap().stats();
                        eprintln!(
                            "quicpro: client sent {} packets ({} bytes) in {} transmits ({} lost), server sent {} packets in {} transmits; simulated time {:?}",
                            c.packets_sent,
                            c.bytes_sent,
                            self.transmits[0],
                            c.packets_lost,
                            s.packets_sent,
                            self.transmits[1],
                            self.now.saturating_duration_since(start)
                        );
                    }
                    return received;
                }
                let acked = self.server_turn(TURN_DATAGRAMS);
                if sent == 0 && acked == 0 {
                    idle_steps += 1;
                    assert!(idle_steps < MAX_IDLE_STEPS, "quic-core transfer stalled at {received} of {size} bytes");
                    self.advance();
                }
            }
        }
    }
}

/// quinn-proto 0.11 driven in memory the same way.
mod quinn {
    use super::*;
    use bytes::BytesMut;
    use quinn_proto::crypto::rustls::{QuicClientConfig, QuicServerConfig};
    use quinn_proto::{
        ClientConfig, Connection, ConnectionHandle, DatagramEvent, Dir, Endpoint, EndpointConfig, ReadError, ServerConfig, StreamId, TransportConfig, VarInt,
        WriteError,
    };

    pub struct Pair {
        now: Instant,
        client_ep: Endpoint,
        server_ep: Endpoint,
        /// Both are `Option` so either can be the receiving side of `pump`;
        /// the client's is always `Some`.
        client: Option<(ConnectionHandle, Connection)>,
        server: Option<(ConnectionHandle, Connection)>,
        client_addr: SocketAddr,
        server_addr: SocketAddr,
        /// Scratch for endpoint-level responses (none are expected).
        response: Vec<u8>,
    }

    fn transport() -> TransportConfig {
        let mut t = TransportConfig::default();
        t.stream_receive_window(VarInt::from_u64(WINDOW).unwrap())
            .receive_window(VarInt::from_u64(WINDOW).unwrap())
            .send_window(WINDOW)
            .initial_mtu(MTU)
            .min_mtu(MTU)
            .mtu_discovery_config(None)
            .enable_segmentation_offload(true)
            .congestion_controller_factory(Arc::new(quinn_proto::congestion::CubicConfig::default()));
        t
    }

    /// ring's provider with the suites in quic-core's order, so both
    /// negotiate TLS_AES_128_GCM_SHA256.
    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        use rustls::crypto::ring::cipher_suite as cs;
        let base = rustls::crypto::ring::default_provider();
        Arc::new(rustls::crypto::CryptoProvider {
            cipher_suites: vec![cs::TLS13_AES_128_GCM_SHA256, cs::TLS13_AES_256_GCM_SHA384, cs::TLS13_CHACHA20_POLY1305_SHA256],
            ..base
        })
    }

    impl Pair {
        pub fn new(certs: &Certs) -> Self {
            let now = Instant::now();
            let transport = Arc::new(transport());

            let mut stls = rustls::ServerConfig::builder_with_provider(provider())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![certs.cert.clone()], certs.key.clone_key())
                .unwrap();
            stls.alpn_protocols = vec![ALPN.to_vec()];
            stls.max_early_data_size = u32::MAX;
            let mut sc = ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(stls).unwrap()));
            sc.transport_config(transport.clone());

            let mut roots = rustls::RootCertStore::empty();
            roots.add(certs.cert.clone()).unwrap();
            let mut ctls = rustls::ClientConfig::builder_with_provider(provider())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
            ctls.alpn_protocols = vec![ALPN.to_vec()];
            let mut cc = ClientConfig::new(Arc::new(QuicClientConfig::try_from(ctls).unwrap()));
            cc.transport_config(transport);

            let server_ep = Endpoint::new(Arc::new(EndpointConfig::default()), Some(Arc::new(sc)), false, None);
            let client_ep = Endpoint::new(Arc::new(EndpointConfig::default()), None, false, None);
            let server_addr = addr(SERVER_ADDR);
            let mut p = Pair { now, client_ep, server_ep, client: None, server: None, client_addr: addr(CLIENT_ADDR), server_addr, response: Vec::new() };
            p.handshake(cc);
            p
        }

        /// As quic-core's `Pair::handshake`.
        #[inline(never)]
        pub fn handshake(&mut self, cc: ClientConfig) {
            let p = self;
            p.client = Some(p.client_ep.connect(p.now, cc, p.server_addr, "localhost").unwrap());
            let mut steps = 0;
            loop {
                let sent = p.client_turn(usize::MAX) + p.server_turn(usize::MAX);
                let done = p.server.as_ref().is_some_and(|s| !s.1.is_handshaking()) && !p.client().is_handshaking();
                if done && sent == 0 {
                    break;
                }
                if sent == 0 {
                    p.advance();
                }
                steps += 1;
                assert!(steps < 10_000, "quinn-proto handshake did not finish");
            }
            p.drain_events();
        }

        /// Passes a connection's endpoint events to its endpoint (CID
        /// issuance and retirement), as quinn's own driver does each turn.
        fn endpoint_events(ep: &mut Endpoint, (h, conn): &mut (ConnectionHandle, Connection)) {
            while let Some(ev) = conn.poll_endpoint_events() {
                if let Some(back) = ep.handle_event(*h, ev) {
                    conn.handle_event(back);
                }
            }
        }

        /// Polls transmits from `from` until `limit` datagrams moved and
        /// hands each datagram to `to_ep`; returns how many moved. The transmit's Vec becomes the datagrams' BytesMut
        /// without a copy (quinn keeps stream data as slices of it).
        fn pump(
            now: Instant,
            from: &mut Connection,
            from_addr: SocketAddr,
            to_ep: &mut Endpoint,
            to: &mut Option<(ConnectionHandle, Connection)>,
            response: &mut Vec<u8>,
            limit: usize,
        ) -> usize {
            let mut n = 0;
            while n < limit {
                let mut buf = Vec::new();
                let Some(t) = from.poll_transmit(now, GSO_SEGMENTS, &mut buf) else { break };
                let mut data = BytesMut::from(Bytes::from(buf));
                data.truncate(t.size);
                let seg = t.segment_size.unwrap_or(t.size);
                while !data.is_empty() {
                    n += 1;
                    let d = data.split_to(seg.min(data.len()));
                    response.clear();
                    match to_ep.handle(now, from_addr, None, None, d, response) {
                        Some(DatagramEvent::ConnectionEvent(h, ev)) => {
                            let (ch, conn) = to.as_mut().expect("event for an unknown connection");
                            assert_eq!(*ch, h);
                            conn.handle_event(ev);
                        }
                        Some(DatagramEvent::NewConnection(incoming)) => {
                            response.clear();
                            let c = to_ep.accept(incoming, now, response, None).map_err(|e| e.cause).unwrap();
                            *to = Some(c);
                        }
                        Some(DatagramEvent::Response(_)) => panic!("unexpected stateless response"),
                        None => {}
                    }
                }
            }
            n
        }

        fn client(&mut self) -> &mut Connection {
            &mut self.client.as_mut().expect("client connection").1
        }

        /// Endpoint events of both connections to their endpoints.
        fn all_endpoint_events(&mut self) {
            if let Some(c) = &mut self.client {
                Self::endpoint_events(&mut self.client_ep, c);
            }
            if let Some(s) = &mut self.server {
                Self::endpoint_events(&mut self.server_ep, s);
            }
        }

        fn client_turn(&mut self, limit: usize) -> usize {
            let from = &mut self.client.as_mut().expect("client connection").1;
            let n = Self::pump(self.now, from, self.client_addr, &mut self.server_ep, &mut self.server, &mut self.response, limit);
            self.all_endpoint_events();
            n
        }

        fn server_turn(&mut self, limit: usize) -> usize {
            let Some(server) = &mut self.server else { return 0 };
            let n = Self::pump(self.now, &mut server.1, self.server_addr, &mut self.client_ep, &mut self.client, &mut self.response, limit);
            self.all_endpoint_events();
            n
        }

        fn advance(&mut self) {
            let c = self.client().poll_timeout();
            let s = self.server.as_mut().and_then(|s| s.1.poll_timeout());
            let t = match (c, s) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => a.or(b).expect("quinn-proto: both sides idle without timers"),
            };
            self.now = self.now.max(t);
            let now = self.now;
            self.client().handle_timeout(now);
            if let Some(s) = &mut self.server {
                s.1.handle_timeout(now);
            }
            self.all_endpoint_events();
        }

        fn drain_events(&mut self) {
            while self.client().poll().is_some() {}
            if let Some(s) = &mut self.server {
                while s.1.poll().is_some() {}
            }
        }

        /// As `quicpro::Pair::transfer`.
        #[inline(never)]
        pub fn transfer(&mut self, chunk: &Bytes, size: u64) -> u64 {
            let id: StreamId = self.client().streams().open(Dir::Uni).expect("stream");
            let mut written = 0u64;
            let mut finished = false;
            let mut sid = None;
            let mut received = 0u64;
            let mut idle_steps = 0u32;
            let start = self.now;
            loop {
                // Client application.
                let conn = self.client();
                while written < size {
                    let mut piece = [next_piece(chunk, written, size)];
                    match conn.send_stream(id).write_chunks(&mut piece) {
                        Ok(w) if w.bytes == 0 => break,
                        Ok(w) => written += w.bytes as u64,
                        Err(WriteError::Blocked) => break,
                        Err(e) => panic!("quinn-proto write: {e}"),
                    }
                }
                if written == size && !finished {
                    conn.send_stream(id).finish().unwrap();
                    finished = true;
                }
                while conn.poll().is_some() {}
                let sent = self.client_turn(TURN_DATAGRAMS);

                // Server application.
                let conn = &mut self.server.as_mut().expect("handshake done").1;
                if sid.is_none() {
                    sid = conn.streams().accept(Dir::Uni);
                }
                let mut fin = false;
                if let Some(s) = sid {
                    let mut rs = conn.recv_stream(s);
                    let mut chunks = rs.read(true).expect("readable stream");
                    loop {
                        match chunks.next(usize::MAX) {
                            Ok(Some(c)) => received += c.bytes.len() as u64,
                            Ok(None) => {
                                fin = true;
                                break;
                            }
                            Err(ReadError::Blocked) => break,
                            Err(e) => panic!("quinn-proto read: {e}"),
                        }
                    }
                    let _ = chunks.finalize();
                }
                while conn.poll().is_some() {}
                if fin {
                    if verbose() {
                        let s = conn.stats();
                        let c = self.client().stats();
                        eprintln!(
                            "quinn-proto: client sent {} packets ({} bytes) in {} transmits ({} lost, mtu {}, cwnd {}), server sent {} packets ({} ACK frames); simulated time {:?}",
                            c.path.sent_packets,
                            c.udp_tx.bytes,
                            c.udp_tx.ios,
                            c.path.lost_packets,
                            c.path.current_mtu,
                            c.path.cwnd,
                            s.path.sent_packets,
                            s.frame_tx.acks,
                            self.now.saturating_duration_since(start)
                        );
                    }
                    return received;
                }
                let acked = self.server_turn(TURN_DATAGRAMS);
                if sent == 0 && acked == 0 {
                    idle_steps += 1;
                    assert!(idle_steps < MAX_IDLE_STEPS, "quinn-proto transfer stalled at {received} of {size} bytes");
                    self.advance();
                }
            }
        }
    }
}

/// One timed transfer; setup and teardown are outside the returned time.
trait Transfer {
    fn setup(certs: &Certs) -> Self;
    fn run(&mut self, chunk: &Bytes, size: u64) -> u64;
}

impl Transfer for quicpro::Pair {
    fn setup(certs: &Certs) -> Self {
        quicpro::Pair::new(certs)
    }
    fn run(&mut self, chunk: &Bytes, size: u64) -> u64 {
        self.transfer(chunk, size)
    }
}

impl Transfer for quinn::Pair {
    fn setup(certs: &Certs) -> Self {
        quinn::Pair::new(certs)
    }
    fn run(&mut self, chunk: &Bytes, size: u64) -> u64 {
        self.transfer(chunk, size)
    }
}

/// Time spent on a CPU by this thread (Linux schedstat, nanoseconds): unlike
/// wall time it does not count time the thread waited for a core, so it is
/// steadier on a loaded machine.
fn thread_cpu_time() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(Duration::from_nanos(s.split_whitespace().next()?.parse().ok()?))
}

/// One measured transfer.
#[derive(Clone, Copy)]
struct Sample {
    wall: Duration,
    cpu: Option<Duration>,
}

/// Sets up a pair, times one full transfer, checks the server got exactly
/// `size` bytes.
fn timed<T: Transfer>(name: &str, certs: &Certs, chunk: &Bytes, size: u64) -> Sample {
    let mut pair = T::setup(certs);
    let cpu0 = thread_cpu_time();
    let start = Instant::now();
    let got = pair.run(chunk, size);
    let wall = start.elapsed();
    let cpu = thread_cpu_time().zip(cpu0).map(|(b, a)| b.saturating_sub(a));
    assert_eq!(got, size, "{name}: server read {got} bytes, expected {size}");
    drop(pair);
    Sample { wall, cpu }
}

fn chunk() -> Bytes {
    Bytes::from((0..CHUNK).map(|i| (i * 7 + i / 251) as u8).collect::<Vec<u8>>())
}

fn bench_transfer(c: &mut Criterion, certs: &Certs) {
    let size = transfer_size();
    let chunk = chunk();
    let mut g = c.benchmark_group(format!("transfer_{}MiB", size >> 20));
    g.throughput(Throughput::Bytes(size));
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(2));
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("quicpro", |b| b.iter_custom(|iters| (0..iters).map(|_| timed::<quicpro::Pair>("quicpro", certs, &chunk, size).wall).sum()));
    g.bench_function("quinn-proto", |b| b.iter_custom(|iters| (0..iters).map(|_| timed::<quinn::Pair>("quinn-proto", certs, &chunk, size).wall).sum()));
    g.finish();
}

/// Times `reps` more transfers of each (alternating) and prints the
/// throughputs and their ratio (ours over theirs, > 1 means quic-core is
/// faster), taking each one's best run: the best run is the one least
/// disturbed by other processes.
fn print_ratio(certs: &Certs, reps: usize) {
    let size = transfer_size();
    let chunk = chunk();
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..reps {
        ours.push(timed::<quicpro::Pair>("quicpro", certs, &chunk, size));
        theirs.push(timed::<quinn::Pair>("quinn-proto", certs, &chunk, size));
    }
    let best_wall = |v: &[Sample]| v.iter().map(|s| s.wall).min().unwrap_or_default();
    let best_cpu = |v: &[Sample]| v.iter().map(|s| s.cpu).min().flatten();
    let mibps = |d: Duration| size as f64 / d.as_secs_f64() / (1 << 20) as f64;
    let (ow, tw) = (best_wall(&ours), best_wall(&theirs));
    eprintln!(
        "transfer {} MiB, best of {reps} (wall): quicpro {:.1} MiB/s ({:.1?}), quinn-proto {:.1} MiB/s ({:.1?})",
        size >> 20,
        mibps(ow),
        ow,
        mibps(tw),
        tw
    );
    eprintln!("transfer ratio quicpro/quinn-proto = {:.2}x", tw.as_secs_f64() / ow.as_secs_f64());
    if let (Some(oc), Some(tc)) = (best_cpu(&ours), best_cpu(&theirs)) {
        eprintln!("transfer ratio quicpro/quinn-proto (on-CPU time, best of {reps}: {:.1?} vs {:.1?}) = {:.2}x", oc, tc, tc.as_secs_f64() / oc.as_secs_f64());
    }
}

/// `QUICPRO_BENCH_PROFILE=quicpro|quinn`: only run transfers of one
/// implementation, for a profiler.
fn profile(which: &str, certs: &Certs) {
    let size = transfer_size();
    let chunk = chunk();
    let reps: usize = std::env::var("QUICPRO_BENCH_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    for _ in 0..reps {
        let d = match which {
            "quicpro" => timed::<quicpro::Pair>(which, certs, &chunk, size),
            "quinn" | "quinn-proto" => timed::<quinn::Pair>(which, certs, &chunk, size),
            other => panic!("QUICPRO_BENCH_PROFILE: unknown implementation {other:?}"),
        };
        eprintln!(
            "{which}: {} MiB in {:.1?} ({:.1} MiB/s), on CPU {:.1?}",
            size >> 20,
            d.wall,
            size as f64 / d.wall.as_secs_f64() / (1 << 20) as f64,
            d.cpu.unwrap_or_default()
        );
    }
}

fn main() {
    let certs = Certs::generate();
    if let Ok(which) = std::env::var("QUICPRO_BENCH_PROFILE") {
        profile(&which, &certs);
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    let mut c = Criterion::default().configure_from_args();
    bench_transfer(&mut c, &certs);
    c.final_summary();
    if !has("--list") {
        // `cargo bench` passes --bench; `cargo test --benches` does not.
        let reps = if has("--bench") && !has("--test") { 5 } else { 1 };
        print_ratio(&certs, reps);
    }
}
