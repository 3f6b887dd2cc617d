//! The conformance client: a quic-core client endpoint with the
//! `conformance` hooks, driven over a [`Net`], recording what the server
//! answers.

use std::time::Duration;

use bytes::Bytes;
use h3_core::settings::Settings;
use quic_core::config::TransportConfig;
use quic_core::connection::{Connection, ConnectionError, Event, RawSpace, StreamEvent};
use quic_core::endpoint::{ClientConfig, ConnectionHandle, Endpoint, EndpointConfig};
use quic_core::rand::SeededRandom;
use quic_core::stream::{Dir, StreamId};
use quic_core::tls::ClientTlsOptions;
use quic_core::Version;

use super::{Case, Ctx, Net, Phase, Step};

/// What the server did, as the client saw it.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The server's CONNECTION_CLOSE: (application, code).
    pub peer_close: Option<(bool, u64)>,
    /// How the connection ended otherwise (timeout, our own error).
    pub other_end: Option<String>,
    /// RESET_STREAM and STOP_SENDING from the server: (stream, code).
    pub stream_errors: Vec<(u64, u64)>,
    /// The last request stream the case opened.
    pub last_bidi: Option<u64>,
}

/// How long a case may take to reach its phase, and to get its answer.
pub struct Limits {
    pub setup: Duration,
    pub answer: Duration,
}

pub struct Client<N: Net> {
    pub net: N,
    ep: Endpoint,
    h: ConnectionHandle,
    buf: Vec<u8>,
    rx: Vec<u8>,
    pub observed: Observed,
    server_settings: Option<Settings>,
    /// Bytes of the server's control stream read so far.
    control: Option<(StreamId, Vec<u8>)>,
    unis: Vec<StreamId>,
}

impl<N: Net> Client<N> {
    /// A client trusting `roots`, connecting to the net's server (its
    /// first flight not sent yet), with the case's transport parameter
    /// rewrite if it has one.
    pub fn new(net: N, roots: Vec<rustls::pki_types::CertificateDer<'static>>, seed: u64, case: &Case) -> Result<Self, String> {
        let mut tls = ClientTlsOptions::new(&[case.alpn.unwrap_or(b"h3")]);
        tls.extra_roots = roots;
        let tls = tls.build().map_err(|e| format!("client TLS: {e:?}"))?;
        let config = ClientConfig { tls, transport: std::sync::Arc::new(TransportConfig::default()), version: Version::V1 };
        let now = net.now();
        let mut ep = Endpoint::with_rng(EndpointConfig::new(b"conformance client"), None, now, Box::new(SeededRandom::new(seed)));
        let remote = net.server_addr();
        let h = match case.params {
            Some(rewrite) => ep.conformance_connect(now, &config, remote, "localhost", rewrite),
            None => ep.connect(now, &config, remote, "localhost", Bytes::new()),
        }
        .map_err(|e| format!("connect: {e:?}"))?;
        Ok(Client { net, ep, h, buf: vec![0u8; 65536], rx: Vec::new(), observed: Observed::default(), server_settings: None, control: None, unis: Vec::new() })
    }

    fn conn(&mut self) -> Option<&mut Connection> {
        self.ep.connection(self.h)
    }

    fn closed(&self) -> bool {
        self.observed.peer_close.is_some() || self.observed.other_end.is_some()
    }

    /// Sends what the client has queued.
    fn flush(&mut self) {
        let now = self.net.now();
        while let Some(t) = self.ep.poll_transmit(now, &mut self.buf) {
            let seg = t.segment_size.unwrap_or(t.size);
            for d in self.buf[..t.size].chunks(seg) {
                self.net.send(d);
            }
        }
    }

    /// Receives and handles one datagram (or fires a due timer), waiting
    /// until `deadline` at most, without sending. False when nothing
    /// happened before the deadline.
    fn receive_one(&mut self, deadline: std::time::Instant) -> bool {
        let wake = self.ep.poll_timeout().map_or(deadline, |t| t.min(deadline));
        let mut rx = std::mem::take(&mut self.rx);
        let got = self.net.recv(wake, &mut rx);
        let now = self.net.now();
        if got {
            let remote = self.net.server_addr();
            self.ep.handle(now, remote, None, &mut rx);
        }
        self.rx = rx;
        let fired = self.ep.poll_timeout().is_some_and(|t| t <= now);
        if fired {
            self.ep.handle_timeout(now);
        }
        self.collect_events();
        got || fired || now < deadline
    }

    /// Connection events: closes, stream errors, the server's SETTINGS.
    fn collect_events(&mut self) {
        let Some(conn) = self.ep.connection(self.h) else {
            if self.observed.peer_close.is_none() && self.observed.other_end.is_none() {
                self.observed.other_end = Some("connection gone".into());
            }
            return;
        };
        let mut events = Vec::new();
        while let Some(e) = conn.poll_event() {
            events.push(e);
        }
        if let Some(err) = conn.error().cloned() {
            self.record_end(err);
        }
        for e in events {
            match e {
                Event::ConnectionLost(err) => self.record_end(err),
                Event::Stream(StreamEvent::Reset { id, error_code } | StreamEvent::Stopped { id, error_code }) => {
                    self.observed.stream_errors.push((id.0, error_code));
                }
                Event::Stream(StreamEvent::Opened(Dir::Uni)) => {
                    while let Some(id) = self.ep.connection(self.h).and_then(|c| c.accept_stream(Dir::Uni)) {
                        if self.control.is_none() {
                            self.control = Some((id, Vec::new()));
                        }
                    }
                }
                _ => {}
            }
        }
        self.read_server_control();
    }

    fn record_end(&mut self, err: ConnectionError) {
        if self.observed.peer_close.is_some() || self.observed.other_end.is_some() {
            return;
        }
        match err {
            ConnectionError::PeerTransportClose { code, .. } => self.observed.peer_close = Some((false, code.0)),
            ConnectionError::PeerApplicationClose { code, .. } => self.observed.peer_close = Some((true, code)),
            other => self.observed.other_end = Some(format!("{other:?}")),
        }
    }

    /// Reads the server's first unidirectional streams until one turns out
    /// to be its control stream with SETTINGS (RFC 9114 §6.2.1).
    fn read_server_control(&mut self) {
        if self.server_settings.is_some() {
            return;
        }
        let Some((id, mut bytes)) = self.control.take() else { return };
        let mut chunk = [0u8; 4096];
        while let Some(conn) = self.ep.connection(self.h) {
            match conn.read(id, &mut chunk) {
                Ok(o) if o.bytes > 0 => bytes.extend_from_slice(&chunk[..o.bytes]),
                _ => break,
            }
        }
        if bytes.first() == Some(&0x00) {
            // Control stream: type 0x00, then SETTINGS (0x04, length, payload).
            let rest = &bytes[1..];
            if let (Some((0x04, a)), true) = (quic_core::varint::decode(rest), rest.len() > 1) {
                if let Some((len, b)) = quic_core::varint::decode(&rest[a..]) {
                    let start = a + b;
                    if rest.len() >= start + len as usize {
                        self.server_settings = Settings::decode(&rest[start..start + len as usize]).ok();
                    }
                }
            }
        } else if !bytes.is_empty() {
            // Another stream type came first (QPACK streams): look at the next.
            let next = self.ep.connection(self.h).and_then(|c| c.accept_stream(Dir::Uni));
            self.control = next.map(|id| (id, Vec::new()));
            return;
        }
        self.control = Some((id, bytes));
    }

    /// Runs (sending and receiving) until `cond` holds, the connection ends
    /// or `limit` passes; returns whether `cond` held.
    fn run_until(&mut self, limit: Duration, mut cond: impl FnMut(&mut Self) -> bool) -> bool {
        let deadline = self.net.now() + limit;
        loop {
            self.flush();
            if cond(self) {
                return true;
            }
            if self.closed() || self.net.now() >= deadline {
                return false;
            }
            self.receive_one(deadline);
        }
    }

    /// Brings the connection to `phase`; `Err` says why it could not.
    pub fn reach(&mut self, phase: Phase, limit: Duration) -> Result<(), String> {
        let ok = match phase {
            Phase::Start => true,
            Phase::HandshakeKeys => {
                // Send the first flight, then take datagrams one at a time
                // without answering until Handshake keys exist.
                self.flush();
                let deadline = self.net.now() + limit;
                loop {
                    if self.conn().is_some_and(|c| c.conformance_can_send(RawSpace::Handshake)) {
                        break true;
                    }
                    if self.closed() || self.net.now() >= deadline {
                        break false;
                    }
                    if !self.receive_one(deadline) {
                        self.flush();
                    }
                }
            }
            Phase::Confirmed => self.run_until(limit, |c| c.conn().is_some_and(|c| c.is_handshake_confirmed())),
            Phase::H3 | Phase::H3Bare => {
                let ok = self.run_until(limit, |c| c.conn().is_some_and(|c| c.is_handshake_confirmed()) && c.server_settings.is_some());
                if ok && phase == Phase::H3 {
                    self.exec(&Step::Uni { data: super::wire::control_stream(), fin: false })?;
                }
                ok
            }
        };
        if ok {
            Ok(())
        } else {
            Err(format!("could not reach {phase:?}: {:?}", self.observed))
        }
    }

    /// What the case's steps are built from.
    pub fn ctx(&mut self) -> Ctx {
        let params = self.conn().and_then(|c| c.peer_transport_parameters().cloned());
        Ctx { params, settings: self.server_settings }
    }

    /// Performs one step.
    pub fn exec(&mut self, step: &Step) -> Result<(), String> {
        let now = self.net.now();
        match step {
            Step::Raw { space, payload, reserved } => {
                let mut buf = vec![0u8; 65536];
                let conn = self.ep.connection(self.h).ok_or("no connection")?;
                let t = conn.conformance_raw_packet(now, &mut buf, *space, payload, *reserved).ok_or_else(|| format!("cannot send a {space:?} packet"))?;
                self.net.send(&buf[..t.size]);
            }
            Step::Uni { data, fin } | Step::Bidi { data, fin } => {
                let dir = if matches!(step, Step::Uni { .. }) { Dir::Uni } else { Dir::Bi };
                let conn = self.ep.connection(self.h).ok_or("no connection")?;
                let id = conn.open_stream(dir).ok_or("stream limit")?;
                write_all(conn, id, data, *fin)?;
                if dir == Dir::Uni {
                    self.unis.push(id);
                } else {
                    self.observed.last_bidi = Some(id.0);
                }
            }
            Step::MoreUni { n, data, fin } => {
                let id = *self.unis.get(*n).ok_or("no such stream")?;
                let conn = self.ep.connection(self.h).ok_or("no connection")?;
                write_all(conn, id, data, *fin)?;
            }
            Step::NotApplicable(why) => return Err(format!("not applicable: {why}")),
        }
        // Each step reaches the server before the next is made.
        self.flush();
        Ok(())
    }

    /// Waits for the server's answer: a close, or an error on the last
    /// request stream.
    pub fn await_answer(&mut self, limit: Duration) {
        self.run_until(limit, |c| {
            c.observed.peer_close.is_some() || c.observed.last_bidi.is_some_and(|id| c.observed.stream_errors.iter().any(|&(s, _)| s == id))
        });
    }
}

fn write_all(conn: &mut Connection, id: StreamId, data: &[u8], fin: bool) -> Result<(), String> {
    let n = conn.write(id, data).map_err(|e| format!("write: {e:?}"))?;
    if n < data.len() {
        return Err(format!("stream {id:?} took {n} of {} bytes", data.len()));
    }
    if fin {
        conn.finish(id).map_err(|e| format!("finish: {e:?}"))?;
    }
    Ok(())
}

/// How a case ran.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// What the server answered.
    Observed(Observed),
    /// The case does not apply to this server.
    NotApplicable(&'static str),
}

/// Runs one case from a fresh connection; the outcome, or why the case
/// could not be run.
pub fn run_case<N: Net>(net: N, roots: Vec<rustls::pki_types::CertificateDer<'static>>, seed: u64, case: &Case, limits: &Limits) -> Result<Outcome, String> {
    let mut c = Client::new(net, roots, seed, case)?;
    c.reach(case.phase, limits.setup)?;
    let ctx = c.ctx();
    let steps = (case.steps)(&ctx);
    if let Some(Step::NotApplicable(why)) = steps.iter().find(|s| matches!(s, Step::NotApplicable(_))) {
        return Ok(Outcome::NotApplicable(why));
    }
    for step in &steps {
        c.exec(step)?;
    }
    c.await_answer(limits.answer);
    Ok(Outcome::Observed(c.observed))
}
