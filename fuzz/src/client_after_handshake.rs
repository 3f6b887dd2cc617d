//! Frame handling of a connection after (or during) a real handshake.
//!
//! Each run performs an in-memory handshake between a client and a server
//! endpoint (seeded randomness, fixed time base), then feeds plaintext
//! packet payloads to one connection through the `fuzzing` feature's
//! `Connection::fuzz_process_payload` ("null cipher": packet protection is
//! skipped so the input reaches frame processing).
//!
//! Input: a mode byte, then chunks of `[control][length: u16 BE][payload]`
//! (the last payload may be shorter than its length).
//! - mode bit 0: feed the server connection instead of the client's;
//!   bits 1-2: how far the handshake goes first (1, 2 or 3 flights, or to
//!   completion); bit 3: small flow-control limits, no DATAGRAM support,
//!   and keep-alive PINGs; bits 4-5: the size of the buffer the fed
//!   connection's transmits are polled into (65536, 1500, 1200, 600).
//! - control bit 0: 1-RTT packet (else Handshake); bit 1: deliver what the
//!   fed connection sends to its peer, and the peer's answer back; bit 2:
//!   jump to the connection's next timer; bit 3: the application reads
//!   everything readable; bit 4: the application opens a stream, writes and
//!   finishes it, and sends a DATAGRAM; bits 5-7: time advance.
//!
//! Checks: nothing panics; a payload with a frame that does not decode, or
//! that is not allowed in its packet type, leaves the connection closed; a
//! transport error always comes with `is_closed()`, and a closed connection
//! stays closed; `poll_transmit` stays inside its buffer; stats only grow;
//! once the input stops, the connection drains; a timer that fired and sent
//! nothing has moved into the future (no busy loop).
//!
//! `FUZZ_DEBUG=1` prints the timers while the connection drains.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use quic_core::config::TransportConfig;
use quic_core::connection::{Connection, ConnectionError, ConnectionStats};
use quic_core::endpoint::{ClientConfig, ConnectionHandle, DatagramEvent, Endpoint, EndpointConfig, ServerConfig};
use quic_core::frame::{FrameContext, FrameIter};
use quic_core::rand::SeededRandom;
use quic_core::stream::Dir;
use quic_core::Version;

const MAX_TRANSMITS: usize = 32;
const MAX_DRAIN_STEPS: usize = 2000;
const ADVANCE_MS: [u64; 8] = [0, 1, 2, 5, 10, 50, 200, 1000];

struct World {
    now: Instant,
    client: Endpoint,
    server: Endpoint,
    client_h: ConnectionHandle,
    server_h: Option<ConnectionHandle>,
    buf: Vec<u8>,
    /// Buffer size for the fed connection's transmits.
    fed_buf_len: usize,
    max_segments: usize,
}

impl World {
    fn new(tight: bool, fed_buf_len: usize) -> Self {
        let tls = common::tls();
        let now = common::base_time();
        let mut transport = TransportConfig::default();
        if tight {
            transport.receive_window = 2000;
            transport.max_receive_window = 4000;
            transport.stream_receive_window = 1000;
            transport.max_stream_receive_window = 2000;
            transport.max_concurrent_bidi_streams = 2;
            transport.max_concurrent_uni_streams = 1;
            transport.active_connection_id_limit = 2;
            transport.max_datagram_frame_size = None;
            transport.crypto_buffer_size = 4096;
            transport.keep_alive_interval = Some(Duration::from_millis(300));
        }
        let max_segments = transport.max_gso_segments;
        let transport = Arc::new(transport);
        let mut sc = ServerConfig::new(tls.server.clone(), b"fuzz token secret", 1_700_000_000);
        sc.transport = transport.clone();
        let server = Endpoint::with_rng(EndpointConfig::new(b"server reset"), Some(sc), now, Box::new(SeededRandom::new(2)));
        let mut client = Endpoint::with_rng(EndpointConfig::new(b"client reset"), None, now, Box::new(SeededRandom::new(1)));
        let cc = ClientConfig { tls: tls.client.clone(), transport, version: Version::V1 };
        let client_h = client.connect(now, &cc, common::server_addr(), "localhost", Bytes::new()).expect("connect");
        Self { now, client, server, client_h, server_h: None, buf: vec![0u8; 65536], fed_buf_len, max_segments }
    }

    /// Sends everything one side has queued to the other; returns whether
    /// anything was sent.
    fn flight(&mut self, from_client: bool) -> bool {
        let mut datagrams = Vec::new();
        let (src, dst_addr) = if from_client { (&mut self.client, common::client_addr()) } else { (&mut self.server, common::server_addr()) };
        for _ in 0..MAX_TRANSMITS {
            let Some(t) = src.poll_transmit(self.now, &mut self.buf) else { break };
            common::check_transmit(&t, self.buf.len(), self.max_segments);
            let seg = t.segment_size.unwrap_or(t.size);
            datagrams.extend(self.buf[..t.size].chunks(seg).map(<[u8]>::to_vec));
        }
        let any = !datagrams.is_empty();
        let dst = if from_client { &mut self.server } else { &mut self.client };
        for mut d in datagrams {
            if let DatagramEvent::NewConnection(h) = dst.handle(self.now, dst_addr, None, &mut d) {
                self.server_h = Some(h);
            }
        }
        while self.server.accept().is_some() {}
        any
    }

    fn handshake(&mut self, flights: usize) {
        let mut from_client = true;
        let mut quiet = 0;
        for _ in 0..flights {
            if self.flight(from_client) {
                quiet = 0;
            } else {
                quiet += 1;
                if quiet == 2 {
                    break;
                }
            }
            from_client = !from_client;
            self.now += Duration::from_millis(5);
        }
    }

    fn fed(&mut self, server: bool) -> Option<&mut Connection> {
        Self::fed_in(&mut self.client, &mut self.server, self.client_h, self.server_h, server)
    }

    /// `fed` borrowing only the endpoints, so `now` and `buf` stay usable.
    fn fed_in<'a>(
        client: &'a mut Endpoint,
        server: &'a mut Endpoint,
        client_h: ConnectionHandle,
        server_h: Option<ConnectionHandle>,
        feed_server: bool,
    ) -> Option<&'a mut Connection> {
        common::side_conn(client, server, client_h, server_h, feed_server)
    }

    /// Drains the fed connection's transmits without delivering them;
    /// returns how many there were.
    fn discard_transmits(&mut self, feed_server: bool) -> usize {
        let ep = if feed_server { &mut self.server } else { &mut self.client };
        let mut n = 0;
        let buf = &mut self.buf[..self.fed_buf_len];
        for _ in 0..MAX_TRANSMITS {
            let Some(t) = ep.poll_transmit(self.now, buf) else { break };
            common::check_transmit(&t, buf.len(), self.max_segments);
            n += 1;
        }
        n
    }

    /// A timer that fired and produced nothing to send must have moved on:
    /// a deadline left at or before `now` makes an event loop spin.
    fn check_timer_progress(&mut self, feed_server: bool) {
        let now = self.now;
        let Some(conn) = self.fed(feed_server) else { return };
        if let Some(t) = conn.poll_timeout() {
            assert!(
                t > now,
                "timer spins: poll_timeout {:?} <= now {:?} after handle_timeout and poll_transmit did nothing ({conn:?}): {}",
                t - common::base_time(),
                now - common::base_time(),
                conn.fuzz_timers()
            );
        }
    }

    /// Jumps to the fed connection's next timer and fires it.
    fn fire_timer(&mut self, feed_server: bool) -> bool {
        let Some(conn) = Self::fed_in(&mut self.client, &mut self.server, self.client_h, self.server_h, feed_server) else {
            return false;
        };
        let Some(t) = conn.poll_timeout() else { return false };
        self.now = self.now.max(t);
        let debug = std::env::var_os("FUZZ_DEBUG").is_some();
        if debug {
            eprintln!("fire at {:?}: {}", self.now - common::base_time(), conn.fuzz_timers());
        }
        conn.handle_timeout(self.now);
        if debug {
            eprintln!("after: {}", conn.fuzz_timers());
        }
        true
    }
}

/// What a well-behaved application does with the connection.
fn app_read(conn: &mut Connection, scratch: &mut [u8]) {
    while conn.poll_event().is_some() {}
    for dir in [Dir::Bi, Dir::Uni] {
        while conn.accept_stream(dir).is_some() {}
    }
    while conn.recv_datagram().is_some() {}
    // Streams the peer opened are numbered densely; read the low ones.
    for kind in 0..4u64 {
        for i in 0..8u64 {
            let id = quic_core::stream::StreamId(i * 4 + kind);
            while conn.readable(id) > 0 {
                match conn.read(id, scratch) {
                    Ok(o) if o.bytes > 0 => {}
                    _ => break,
                }
            }
        }
    }
}

fn app_write(conn: &mut Connection, len: usize) {
    let data = vec![0x5a; len % 3000];
    if let Some(id) = conn.open_stream(Dir::Bi) {
        let _ = conn.write(id, &data);
        let _ = conn.finish(id);
    }
    conn.send_datagram(Bytes::from_static(b"fuzz datagram"));
}

struct Watch {
    stats: ConnectionStats,
    closed: bool,
}

impl Watch {
    fn check(&mut self, conn: &Connection) {
        let s = conn.stats();
        common::check_stats_monotonic(&self.stats, &s);
        self.stats = s;
        if matches!(conn.error(), Some(ConnectionError::TransportError(_))) {
            assert!(conn.is_closed(), "transport error {:?} but not closed", conn.error());
        }
        if self.closed {
            assert!(conn.is_closed(), "a closed connection reopened");
        }
        self.closed = conn.is_closed();
    }
}

/// One fuzz input: what libFuzzer calls, and what the corpus replay test
/// (`tests/replay.rs`) calls without it.
pub fn run(data: &[u8]) {
    let Some((&mode, mut rest)) = data.split_first() else { return };
    let feed_server = mode & 1 != 0;
    let flights = match (mode >> 1) & 3 {
        0 => 1,
        1 => 2,
        2 => 3,
        _ => 12,
    };
    let mut w = World::new(mode & 8 != 0, common::BUFFER_SIZES[usize::from(mode >> 4) & 3]);
    w.handshake(flights);
    let mut scratch = vec![0u8; 4096];
    let Some(conn) = w.fed(feed_server) else { return };
    let mut watch = Watch { stats: conn.stats(), closed: conn.is_closed() };
    watch.check(conn);

    while rest.len() >= 3 {
        let ctl = rest[0];
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]])).min(rest.len() - 3);
        let payload = &rest[3..3 + len];
        rest = &rest[3 + len..];
        let one_rtt = ctl & 1 != 0;
        let deliver = ctl & 2 != 0;
        let fire_timer = ctl & 4 != 0;
        w.now += Duration::from_millis(ADVANCE_MS[usize::from(ctl >> 5)]);
        let now = w.now;

        let Some(conn) = w.fed(feed_server) else { return };
        let was_closed = conn.is_closed();
        let dropped_before = conn.stats().packets_dropped;
        conn.fuzz_process_payload(now, one_rtt, payload);
        let processed = !was_closed && conn.stats().packets_dropped == dropped_before;
        if processed {
            // RFC 9000 §12.4, §19: a frame that does not decode, or is not
            // allowed in this packet type, is a connection error.
            let ctx = if one_rtt { FrameContext::OneRtt } else { FrameContext::Handshake };
            if FrameIter::for_packet(payload, ctx).any(|f| f.is_err()) {
                assert!(conn.is_closed(), "malformed payload left the connection open");
            }
        }
        watch.check(conn);

        if ctl & 8 != 0 {
            app_read(conn, &mut scratch);
        }
        if ctl & 16 != 0 {
            app_write(conn, len);
        }
        watch.check(conn);
        if fire_timer && w.fire_timer(feed_server) {
            if w.discard_transmits(feed_server) == 0 {
                w.check_timer_progress(feed_server);
            }
            let Some(conn) = w.fed(feed_server) else { return };
            watch.check(conn);
        }
        if deliver {
            w.flight(feed_server);
            w.now += Duration::from_millis(1);
            w.flight(!feed_server);
        } else {
            w.discard_transmits(feed_server);
        }
        let Some(conn) = w.fed(feed_server) else { return };
        watch.check(conn);
    }

    // Nothing more arrives: the connection must close by itself.
    let debug = std::env::var_os("FUZZ_DEBUG").is_some();
    for _ in 0..MAX_DRAIN_STEPS {
        if debug {
            let at = w.now - common::base_time();
            if let Some(c) = w.fed(feed_server) {
                eprintln!("{:?} timeout {:?} stats {:?}", at, c.poll_timeout().map(|t| t - common::base_time()), c.stats());
            }
        }
        if !w.fire_timer(feed_server) {
            break;
        }
        if w.discard_transmits(feed_server) == 0 {
            w.check_timer_progress(feed_server);
        }
        let Some(conn) = w.fed(feed_server) else { return };
        watch.check(conn);
    }
    if let Some(conn) = w.fed(feed_server) {
        panic!("connection still alive after the input stopped: {conn:?} timeout {:?}", conn.poll_timeout());
    }
}
