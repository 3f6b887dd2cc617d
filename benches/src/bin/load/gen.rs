//! The load generator, the same for both servers.
//!
//! Why our own stack and not quinn's client: the generator has one core
//! (CPU 1) and must outrun a server that we want to be ≥2× quinn. quinn's
//! client on one core tops out near quinn's own server rate, so it would cap
//! our server at ≈1× and hide any gain. Our sans-I/O stack driven by the
//! io-backends runtime `Driver` runs many connections on one UDP socket
//! with recvmmsg/GRO and sendmmsg/GSO, no task switching and no per-stream
//! futures. Both servers get the identical generator, and every response is
//! verified (status, length, and every body byte against the pattern) so a
//! broken server cannot look fast. The server's own CPU time is reported
//! next to each figure: a server below ~95 % of its core means the
//! generator (or something else) was the limit.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use h3_core::connection::{H3Config, H3Event};
use h3_core::qpack::HeaderField;
use io_backends::runtime::{Driver, H3Handle};
use io_backends::select::BackendConfig;
use quic_core::config::TransportConfig;
use quic_core::connection::{Event as QuicEvent, Side};
use quic_core::endpoint::{ClientConfig, Endpoint, EndpointConfig};
use quic_core::stream::StreamId;
use quic_core::tls::ClientTlsOptions;

use crate::pattern;

/// Keeps no tickets: every connection is a full handshake.
#[derive(Debug)]
struct NoResumption;

impl rustls::client::ClientSessionStore for NoResumption {
    fn set_kx_hint(&self, _: rustls::pki_types::ServerName<'static>, _: rustls::NamedGroup) {}
    fn kx_hint(&self, _: &rustls::pki_types::ServerName<'_>) -> Option<rustls::NamedGroup> {
        None
    }
    fn set_tls12_session(&self, _: rustls::pki_types::ServerName<'static>, _: rustls::client::Tls12ClientSessionValue) {}
    fn tls12_session(&self, _: &rustls::pki_types::ServerName<'_>) -> Option<rustls::client::Tls12ClientSessionValue> {
        None
    }
    fn remove_tls12_session(&self, _: &rustls::pki_types::ServerName<'static>) {}
    fn insert_tls13_ticket(&self, _: rustls::pki_types::ServerName<'static>, _: rustls::client::Tls13ClientSessionValue) {}
    fn take_tls13_ticket(&self, _: &rustls::pki_types::ServerName<'static>) -> Option<rustls::client::Tls13ClientSessionValue> {
        None
    }
}

/// One response being received.
#[derive(Debug)]
struct Pending {
    expected: u64,
    got: u64,
    status: u16,
    content_ok: bool,
    /// When the request was due (open loop) or sent (closed loop).
    t0: Instant,
}

/// A finished request.
#[derive(Debug, Clone, Copy)]
pub struct Done {
    pub conn: H3Handle,
    pub ok: bool,
    pub bytes: u64,
    pub t0: Instant,
    pub t1: Instant,
}

pub struct Generator {
    /// Check every body byte against the pattern (else status 200 only).
    pub verify_pattern: bool,
    driver: Driver,
    config: ClientConfig,
    server: SocketAddr,
    pending: HashMap<(H3Handle, StreamId), Pending>,
    /// Connections whose handshake completed and are still up.
    pub connected: Vec<H3Handle>,
    /// Connections that ended (error or close), drained from the driver.
    pub lost: Vec<H3Handle>,
    /// Every handshake completion, in order (`connected` loses entries as
    /// connections end; this log only grows until its reader clears it).
    came_up: Vec<H3Handle>,
    /// Why the first few connections ended that were not closed by us.
    pub lost_reasons: Vec<String>,
    pub failures: u64,
    /// First few failure descriptions, for the report.
    pub failure_notes: Vec<String>,
    done: Vec<Done>,
}

impl core::fmt::Debug for Generator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Generator").field("server", &self.server).finish_non_exhaustive()
    }
}

fn hf(n: &str, v: &str) -> HeaderField {
    HeaderField::new(n.as_bytes().to_vec(), v.as_bytes().to_vec())
}

impl Generator {
    pub fn new(server: SocketAddr, backend: BackendConfig) -> Result<Self, String> {
        let mut tls = ClientTlsOptions::new(&[b"h3"]);
        // Both servers present the same self-signed certificate; verifying it
        // would only spend generator CPU.
        tls.insecure_skip_verify = true;
        tls.early_data = false;
        tls.session_store = Some(Arc::new(NoResumption));
        // Large windows so flow control never limits the bulk phase.
        let transport = TransportConfig {
            stream_receive_window: 16 << 20,
            max_stream_receive_window: 64 << 20,
            receive_window: 32 << 20,
            max_receive_window: 128 << 20,
            max_idle_timeout: Duration::from_secs(60),
            max_udp_payload_size: crate::servers::MAX_UDP_PAYLOAD.get().copied().unwrap_or(TransportConfig::default().max_udp_payload_size),
            mtu_discovery: crate::servers::MAX_UDP_PAYLOAD.get().is_none_or(|n| *n > 1200),
            ..TransportConfig::default()
        };
        let config = ClientConfig { tls: tls.build().map_err(|e| e.to_string())?, transport: Arc::new(transport), version: quic_core::Version::V1 };
        let mut bcfg = backend;
        bcfg.udp.reuse_port = false;
        let (backend, _) = io_backends::select::open(&bcfg, "127.0.0.1:0".parse().map_err(|_| "addr")?).map_err(|e| e.to_string())?;
        let mut secret = [0u8; 32];
        quic_core::rand::RandomSource::fill(&mut quic_core::rand::SystemRandom::new(), &mut secret);
        let endpoint = Endpoint::new(EndpointConfig::new(&secret), None, Instant::now());
        Ok(Self {
            verify_pattern: true,
            driver: Driver::new(backend, endpoint, Side::Client, H3Config::default()),
            config,
            server,
            pending: HashMap::new(),
            connected: Vec::new(),
            lost: Vec::new(),
            lost_reasons: Vec::new(),
            came_up: Vec::new(),
            failures: 0,
            failure_notes: Vec::new(),
            done: Vec::new(),
        })
    }

    fn fail(&mut self, what: String) {
        self.failures += 1;
        if self.failure_notes.len() < 5 {
            self.failure_notes.push(what);
        }
    }

    pub fn connect(&mut self) -> Result<H3Handle, String> {
        let h = self.driver.endpoint.connect(Instant::now(), &self.config, self.server, "localhost", Bytes::new()).map_err(|e| e.to_string())?;
        self.driver.adopt(h);
        Ok(H3Handle(h))
    }

    pub fn close(&mut self, h: H3Handle) {
        if let Some(c) = self.driver.endpoint.connection(h.0) {
            c.close(Instant::now(), h3_core::error::H3ErrorCode::H3_NO_ERROR.0, b"");
        }
        self.connected.retain(|x| *x != h);
    }

    /// GET /bytes/<n>; `t0` is when the request counts as issued.
    pub fn get(&mut self, h: H3Handle, n: u64, t0: Instant) -> bool {
        let path = format!("/bytes/{n}");
        let headers = [hf(":method", "GET"), hf(":scheme", "https"), hf(":authority", "localhost"), hf(":path", &path)];
        match self.driver.with_conn(h, |h3, c| h3.send_request(c, &headers, true)) {
            Some(Ok(stream)) => {
                self.pending.insert((h, stream), Pending { expected: n, got: 0, status: 0, content_ok: true, t0 });
                true
            }
            _ => false,
        }
    }

    /// One line about a connection, for stall diagnostics.
    pub fn describe(&self, h: H3Handle) -> String {
        let open = self.pending.keys().filter(|(ph, _)| *ph == h).count();
        match self.driver.endpoint.connection_ref(h.0) {
            None => format!("{h:?}: gone, {open} requests tracked"),
            Some(c) => {
                let st = c.stats();
                let t = c.poll_timeout().map(|t| t.saturating_duration_since(Instant::now()));
                format!(
                    "{h:?}: handshaking={} error={:?} sent={} recv={} lost={} timeout_in={t:?} tracked={open}",
                    c.is_handshaking(),
                    c.error(),
                    st.packets_sent,
                    st.packets_received,
                    st.packets_lost
                )
            }
        }
    }

    /// Mean size of the QUIC packets received on `h` (bytes over packets,
    /// headers and AEAD tags included): in a bulk download, the size of
    /// the packets the server sends.
    pub fn received_packet_size(&self, h: H3Handle) -> Option<f64> {
        let st = self.driver.endpoint.connection_ref(h.0)?.stats();
        (st.packets_received > 0).then(|| st.bytes_received as f64 / st.packets_received as f64)
    }

    /// Packets this generator declared lost, summed over its open
    /// connections (RFC 9002 §6): a latency tail with losses is recovery
    /// time, one without is queueing.
    pub fn packets_lost(&self) -> u64 {
        self.connected.iter().filter_map(|h| self.driver.endpoint.connection_ref(h.0)).map(|c| c.stats().packets_lost).sum()
    }

    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// One loop turn, then hands every event to the trackers. Finished
    /// requests are returned through `take_done`.
    pub fn step(&mut self, max_wait: Duration) -> Result<(), String> {
        self.driver.step(max_wait).map_err(|e| e.to_string())?;
        while let Some((h, ev)) = self.driver.poll_event() {
            match ev {
                H3Event::Transport(QuicEvent::HandshakeCompleted) => {
                    self.connected.push(h);
                    // Drained every turn while someone reads it; bounded otherwise.
                    if self.came_up.len() < 1 << 16 {
                        self.came_up.push(h);
                    }
                }
                H3Event::Transport(QuicEvent::ConnectionLost(e)) => {
                    if !matches!(e, quic_core::connection::ConnectionError::LocallyClosed) && self.lost_reasons.len() < 5 {
                        self.lost_reasons.push(e.to_string());
                    }
                    self.connected.retain(|x| *x != h);
                    self.lost.push(h);
                    let stuck: Vec<_> = self.pending.keys().filter(|(ph, _)| *ph == h).copied().collect();
                    for k in stuck {
                        self.pending.remove(&k);
                        self.fail(format!("connection lost with a request open: {e:?}"));
                    }
                }
                H3Event::Headers { stream, headers, fin } => {
                    let status =
                        headers.iter().find(|f| &f.name[..] == b":status").and_then(|f| std::str::from_utf8(&f.value).ok()?.parse::<u16>().ok()).unwrap_or(0);
                    if let Some(p) = self.pending.get_mut(&(h, stream)) {
                        p.status = status;
                    }
                    if fin {
                        self.complete(h, stream);
                    }
                }
                H3Event::Data { stream } => {
                    while let Some(b) = self.driver.with_conn(h, |h3, c| h3.recv_body(c, stream, usize::MAX)).flatten() {
                        if let Some(p) = self.pending.get_mut(&(h, stream)) {
                            if self.verify_pattern && p.content_ok && !pattern::matches(p.got, &b) {
                                p.content_ok = false;
                            }
                            p.got += b.len() as u64;
                        }
                    }
                }
                H3Event::Finished { stream } => self.complete(h, stream),
                H3Event::Reset { stream, code } if self.pending.remove(&(h, stream)).is_some() => {
                    self.fail(format!("stream reset, code {code:#x}"));
                }
                _ => {}
            }
        }
        while let Some((h, _)) = self.driver.closed.pop_front() {
            self.connected.retain(|x| *x != h);
        }
        Ok(())
    }

    fn complete(&mut self, h: H3Handle, stream: StreamId) {
        let Some(p) = self.pending.remove(&(h, stream)) else { return };
        let ok = p.status == 200 && p.content_ok && (p.got == p.expected || !self.verify_pattern);
        if !ok {
            self.fail(format!("bad response: status {}, {} of {} bytes, content {}", p.status, p.got, p.expected, if p.content_ok { "ok" } else { "WRONG" }));
        }
        self.done.push(Done { conn: h, ok, bytes: p.got, t0: p.t0, t1: Instant::now() });
    }

    pub fn take_done(&mut self) -> std::vec::Drain<'_, Done> {
        self.done.drain(..)
    }

    /// Bytes received so far on the open requests (bulk progress).
    pub fn pending_bytes(&self) -> u64 {
        self.pending.values().map(|p| p.got).sum()
    }

    /// Opens `n` connections, at most `window` handshaking at once, until
    /// all completed or `deadline`. Returns how many are up.
    pub fn open_connections(&mut self, n: usize, window: usize, deadline: Instant) -> Result<usize, String> {
        // Only this call's connections count: others closed meanwhile (the
        // previous phase's, closed by us) must not end the wait early.
        let mut mine: std::collections::HashSet<H3Handle> = std::collections::HashSet::new();
        let (mut up, mut failed, mut started) = (0usize, 0usize, 0usize);
        self.came_up.clear();
        let mut seen_lost = self.lost.len();
        while up < n && Instant::now() < deadline {
            while started < n && started - up - failed < window {
                mine.insert(self.connect()?);
                started += 1;
            }
            if started >= n && up + failed >= n {
                break;
            }
            self.step(Duration::from_millis(1))?;
            // `mine` holds this call's connections still handshaking.
            up += self.came_up.drain(..).filter(|h| mine.remove(h)).count();
            failed += self.lost.get(seen_lost..).unwrap_or(&[]).iter().filter(|h| mine.remove(h)).count();
            seen_lost = self.lost.len();
        }
        Ok(up)
    }
}
