//! The client role: downloads REQUESTS into DOWNLOADS over one or more
//! connections, each with its own UDP socket (so no two connections share
//! a 5-tuple).

use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use quiche::h3::NameValue;

use crate::common::{self, attach_logs, close_reason, flush, random_cid, recv_batch, ConfigOptions, ALPN_H3, ALPN_HQ, MAX_DATAGRAM};
use crate::url::{self, Url};
use crate::{ClientCase, ClientMode};

const H3_NO_ERROR: u64 = 0x100;
/// H3_INTERNAL_ERROR, used for any local failure when closing.
const APP_FAILURE: u64 = 0x102;

/// BoringSSL's ssl_early_data_accepted.
const EARLY_DATA_ACCEPTED: u32 = 2;

/// How long to linger after the last download for a session ticket, when
/// the next connection needs one.
const TICKET_WAIT: Duration = Duration::from_secs(2);
/// Upper bound on the closing/draining period before giving up on it.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Proto {
    Hq,
    H3,
}

pub fn run(case: ClientCase) -> Result<(), String> {
    let requests = std::env::var("REQUESTS").unwrap_or_default();
    let urls = requests.split_whitespace().map(url::parse).collect::<Result<Vec<Url>, String>>()?;
    if urls.is_empty() {
        return Err("REQUESTS is empty".into());
    }
    let downloads = PathBuf::from(std::env::var("DOWNLOADS").unwrap_or_else(|_| "/downloads".into()));
    std::fs::create_dir_all(&downloads).map_err(|e| format!("creating {}: {e}", downloads.display()))?;
    let server_name = std::env::var("SERVER_NAME").unwrap_or_else(|_| "localhost".into());

    let proto = choose_proto(case.mode, std::env::var("ALPN").ok().as_deref())?;
    let alpn = if proto == Proto::H3 { ALPN_H3 } else { ALPN_HQ };
    let mut config = common::make_config(&ConfigOptions {
        alpns: &[alpn],
        chacha_only: case.chacha_only,
        early_data: case.mode == ClientMode::ZeroRtt,
        cert_and_key: None,
    })?;

    let mut job = Job { config: &mut config, proto, server_name: &server_name, downloads: &downloads, reprioritize: case.mode == ClientMode::Priorities };

    match case.mode {
        ClientMode::Transfer | ClientMode::Http3 | ClientMode::Priorities => {
            job.fetch(&urls, None, false, false)?;
        }
        ClientMode::Multiconnect => {
            for u in &urls {
                job.fetch(std::slice::from_ref(u), None, false, false)?;
            }
        }
        ClientMode::Resumption | ClientMode::ZeroRtt => {
            let zero_rtt = case.mode == ClientMode::ZeroRtt;
            let first = job.fetch(&urls[..1], None, false, true)?;
            let session = first.session.ok_or("connection 1 ended without a session ticket; cannot resume")?;
            if urls.len() > 1 {
                let second = job.fetch(&urls[1..], Some(&session), zero_rtt, false)?;
                // The files arrived, but the point of the test did not
                // happen: report it rather than pass silently.
                if !second.resumed {
                    return Err("connection 2 did not resume the session".into());
                }
                if zero_rtt && second.early_data_reason != EARLY_DATA_ACCEPTED {
                    return Err(format!("server did not accept 0-RTT (BoringSSL early data reason {})", second.early_data_reason));
                }
            }
        }
    }
    Ok(())
}

/// HTTP/3 for the http3 case; otherwise hq-interop unless the optional
/// ALPN variable (set by quicpro's interop runner when the server only
/// speaks h3, e.g. ngtcp2's examples) asks for h3.
fn choose_proto(mode: ClientMode, alpn: Option<&str>) -> Result<Proto, String> {
    if matches!(mode, ClientMode::Http3 | ClientMode::Priorities) {
        return Ok(Proto::H3);
    }
    match alpn {
        None | Some("") | Some("hq-interop") => Ok(Proto::Hq),
        Some("h3") => Ok(Proto::H3),
        Some(other) => Err(format!("ALPN={other:?}: expected hq-interop or h3")),
    }
}

struct Job<'a> {
    config: &'a mut quiche::Config,
    proto: Proto,
    server_name: &'a str,
    downloads: &'a Path,
    /// The priorities case: see `ClientMode::Priorities`.
    reprioritize: bool,
}

struct Outcome {
    session: Option<Vec<u8>>,
    resumed: bool,
    early_data_reason: u32,
}

/// A request that has been given a stream.
struct InFlight {
    url: usize,
    body: Vec<u8>,
    /// HTTP/3 :status, once the headers arrive.
    status: Option<String>,
}

/// Per-connection download state.
struct Transfer<'u> {
    urls: &'u [Url],
    proto: Proto,
    downloads: &'u Path,
    /// Indexes into `urls` not yet requested.
    queue: VecDeque<usize>,
    inflight: HashMap<u64, InFlight>,
    /// HTTP/0.9 request bytes quiche did not take yet: (bytes, offset).
    unsent: HashMap<u64, (Vec<u8>, usize)>,
    next_sid: u64,
    done: usize,
    h3: Option<quiche::h3::Connection>,
    buf: Vec<u8>,
    /// Send PRIORITY_UPDATE u=0 for the last request once all are out;
    /// cleared once sent.
    reprioritize: bool,
    /// Print each completed file name to stdout (the priorities case, or
    /// PRINT_COMPLETIONS set).
    print_completions: bool,
}

impl Job<'_> {
    /// Downloads `urls` over one new connection. With `session` the
    /// connection resumes it, and with `early` it sends the requests as
    /// 0-RTT. With `want_session` it waits briefly for a session ticket.
    fn fetch(&mut self, urls: &[Url], session: Option<&[u8]>, early: bool, want_session: bool) -> Result<Outcome, String> {
        let peer = urls[0].addr;
        let bind: SocketAddr = if peer.is_ipv4() { SocketAddr::from(([0, 0, 0, 0], 0)) } else { SocketAddr::from(([0u16; 8], 0)) };
        let socket = UdpSocket::bind(bind).map_err(|e| format!("binding {bind}: {e}"))?;
        let local = socket.local_addr().map_err(|e| format!("local_addr: {e}"))?;

        let scid = random_cid()?;
        let mut conn = quiche::connect(Some(self.server_name), &scid, local, peer, self.config).map_err(|e| format!("connect: {e}"))?;
        attach_logs(&mut conn, "client");
        if let Some(s) = session {
            conn.set_session(s).map_err(|e| format!("set_session: {e}"))?;
        }
        log::info!(
            "{} connecting {local} -> {peer} for {} URL(s){}",
            conn.trace_id(),
            urls.len(),
            match (session.is_some(), early) {
                (true, true) => " (resumed, 0-RTT)",
                (true, false) => " (resumed)",
                _ => "",
            }
        );

        let mut t = Transfer {
            urls,
            proto: self.proto,
            downloads: self.downloads,
            queue: (0..urls.len()).collect(),
            inflight: HashMap::new(),
            unsent: HashMap::new(),
            next_sid: 0,
            done: 0,
            h3: None,
            buf: vec![0; MAX_DATAGRAM],
            reprioritize: self.reprioritize,
            print_completions: self.reprioritize || std::env::var_os("PRINT_COMPLETIONS").is_some(),
        };

        let mut rbuf = vec![0u8; MAX_DATAGRAM];
        let mut out = vec![0u8; MAX_DATAGRAM];
        let mut all_done_at: Option<Instant> = None;
        let mut closing_since: Option<Instant> = None;
        let mut failure: Option<String> = None;
        let mut outcome = Outcome { session: None, resumed: false, early_data_reason: 0 };
        let mut announced = false;

        loop {
            // Send first: the first call produces the ClientHello, after
            // which 0-RTT keys exist and step() can queue early requests
            // for the second call.
            if let Err(e) = flush(&socket, &mut conn, &mut out) {
                log::warn!("{e}");
            }
            if closing_since.is_none() && !conn.is_closed() {
                if !announced && conn.is_established() {
                    announced = true;
                    log::info!(
                        "{} handshake done: alpn={} resumed={} early_data_reason={}",
                        conn.trace_id(),
                        String::from_utf8_lossy(conn.application_proto()),
                        conn.is_resumed(),
                        conn.early_data_reason()
                    );
                }
                if let Err(e) = t.step(&mut conn, early) {
                    let code = if self.proto == Proto::H3 { APP_FAILURE } else { 1 };
                    let _ = conn.close(true, code, b"client failure");
                    closing_since = Some(Instant::now());
                    failure = Some(e);
                }
            }
            if let Err(e) = flush(&socket, &mut conn, &mut out) {
                log::warn!("{e}");
            }
            if conn.is_closed() {
                break;
            }

            if closing_since.is_none() && t.done == urls.len() {
                let since = *all_done_at.get_or_insert_with(Instant::now);
                if !want_session || conn.session().is_some() || since.elapsed() > TICKET_WAIT {
                    outcome.session = conn.session().map(<[u8]>::to_vec);
                    outcome.resumed = conn.is_resumed();
                    outcome.early_data_reason = conn.early_data_reason();
                    let code = if self.proto == Proto::H3 { H3_NO_ERROR } else { 0 };
                    let _ = conn.close(true, code, b"");
                    closing_since = Some(Instant::now());
                    continue;
                }
            }
            if closing_since.is_some_and(|c| c.elapsed() > CLOSE_WAIT) {
                break;
            }

            let mut wait = conn.timeout().unwrap_or(Duration::from_millis(100));
            if all_done_at.is_some() && closing_since.is_none() {
                // Waiting for a ticket has no timer of its own.
                wait = wait.min(Duration::from_millis(50));
            }
            recv_batch(&socket, wait, &mut rbuf, |pkt, from| match conn.recv(pkt, quiche::RecvInfo { from, to: local }) {
                Ok(_) | Err(quiche::Error::Done) => {}
                Err(e) => log::debug!("{} recv: {e}", conn.trace_id()),
            })
            .map_err(|e| format!("recv_from: {e}"))?;
            if conn.timeout_instant().is_some_and(|d| d <= Instant::now()) {
                conn.on_timeout();
            }
        }

        let s = conn.stats();
        log::info!(
            "{} finished {}/{}: {}; sent {} pkts, recv {} pkts, lost {}",
            conn.trace_id(),
            t.done,
            urls.len(),
            close_reason(&conn),
            s.sent,
            s.recv,
            s.lost
        );
        if let Some(e) = failure {
            return Err(e);
        }
        if t.done < urls.len() {
            return Err(format!("{} of {} downloads finished before the connection ended: {}", t.done, urls.len(), close_reason(&conn)));
        }
        Ok(outcome)
    }
}

impl Transfer<'_> {
    /// Issues what requests the stream limit allows and reads responses.
    fn step(&mut self, conn: &mut quiche::Connection, early: bool) -> Result<(), String> {
        if !(conn.is_established() || (early && conn.is_in_early_data())) {
            return Ok(());
        }
        if self.proto == Proto::H3 && self.h3.is_none() {
            let cfg = quiche::h3::Config::new().map_err(|e| format!("h3 config: {e}"))?;
            let h3 = quiche::h3::Connection::with_transport(conn, &cfg).map_err(|e| format!("HTTP/3 setup: {e}"))?;
            self.h3 = Some(h3);
        }
        self.send_requests(conn)?;
        if self.reprioritize && self.queue.is_empty() {
            self.send_priority_update(conn)?;
        }
        match self.proto {
            Proto::Hq => self.read_hq(conn),
            Proto::H3 => self.read_h3(conn),
        }
    }

    fn send_requests(&mut self, conn: &mut quiche::Connection) -> Result<(), String> {
        // Finish requests that did not fit earlier.
        let mut written = Vec::new();
        for (&sid, (req, off)) in self.unsent.iter_mut() {
            match conn.stream_send(sid, &req[*off..], true) {
                Ok(n) => *off += n,
                Err(quiche::Error::Done) => {}
                Err(e) => return Err(format!("stream {sid} send: {e}")),
            }
            if *off == req.len() {
                written.push(sid);
            }
        }
        for sid in written {
            self.unsent.remove(&sid);
        }

        // Open new streams while the server's MAX_STREAMS allows.
        while let Some(&idx) = self.queue.front() {
            if conn.peer_streams_left_bidi() == 0 {
                break;
            }
            let url = &self.urls[idx];
            let sid = match self.proto {
                Proto::Hq => {
                    let sid = self.next_sid;
                    let req = format!("GET {}\r\n", url.path).into_bytes();
                    match conn.stream_send(sid, &req, true) {
                        Ok(n) => {
                            self.next_sid += 4;
                            if n < req.len() {
                                self.unsent.insert(sid, (req, n));
                            }
                            sid
                        }
                        Err(quiche::Error::Done) | Err(quiche::Error::StreamLimit) => break,
                        Err(e) => return Err(format!("stream {sid} send: {e}")),
                    }
                }
                Proto::H3 => {
                    let Some(h3) = self.h3.as_mut() else {
                        return Err("HTTP/3 connection missing".into());
                    };
                    let headers = [
                        quiche::h3::Header::new(b":method", b"GET"),
                        quiche::h3::Header::new(b":scheme", b"https"),
                        quiche::h3::Header::new(b":authority", url.authority.as_bytes()),
                        quiche::h3::Header::new(b":path", url.path.as_bytes()),
                        quiche::h3::Header::new(b"user-agent", b"quiche-peer"),
                    ];
                    match h3.send_request(conn, &headers, true) {
                        Ok(sid) => sid,
                        Err(quiche::h3::Error::StreamBlocked)
                        | Err(quiche::h3::Error::Done)
                        | Err(quiche::h3::Error::TransportError(quiche::Error::StreamLimit)) => break,
                        Err(e) => return Err(format!("HTTP/3 request {}: {e}", url.path)),
                    }
                }
            };
            self.queue.pop_front();
            self.inflight.insert(sid, InFlight { url: idx, body: Vec::new(), status: None });
        }
        Ok(())
    }

    fn read_hq(&mut self, conn: &mut quiche::Connection) -> Result<(), String> {
        for sid in conn.readable() {
            loop {
                match conn.stream_recv(sid, &mut self.buf) {
                    Ok((n, fin)) => {
                        let Some(f) = self.inflight.get_mut(&sid) else {
                            // Not a stream we opened: ignore its data.
                            if fin {
                                break;
                            }
                            continue;
                        };
                        f.body.extend_from_slice(&self.buf[..n]);
                        if fin {
                            // The stream is gone once its FIN is read;
                            // reading again would be InvalidStreamState.
                            self.complete(sid)?;
                            break;
                        }
                    }
                    Err(quiche::Error::Done) => break,
                    Err(quiche::Error::StreamReset(code)) => return Err(format!("server reset stream {sid} ({}) with 0x{code:x}", self.describe(sid))),
                    Err(e) => return Err(format!("stream {sid} recv: {e}")),
                }
            }
        }
        Ok(())
    }

    fn read_h3(&mut self, conn: &mut quiche::Connection) -> Result<(), String> {
        // Taken out of self for the duration so complete() can borrow self.
        let Some(mut h3) = self.h3.take() else {
            return Ok(());
        };
        let result = self.poll_h3(&mut h3, conn);
        self.h3 = Some(h3);
        result
    }

    fn poll_h3(&mut self, h3: &mut quiche::h3::Connection, conn: &mut quiche::Connection) -> Result<(), String> {
        loop {
            match h3.poll(conn) {
                Ok((sid, quiche::h3::Event::Headers { list, .. })) => {
                    let status = list.iter().find(|h| h.name() == b":status").map(|h| String::from_utf8_lossy(h.value()).into_owned());
                    if let Some(f) = self.inflight.get_mut(&sid) {
                        f.status = status;
                    }
                }
                Ok((sid, quiche::h3::Event::Data)) => loop {
                    match h3.recv_body(conn, sid, &mut self.buf) {
                        Ok(n) => {
                            if let Some(f) = self.inflight.get_mut(&sid) {
                                f.body.extend_from_slice(&self.buf[..n]);
                            }
                        }
                        Err(quiche::h3::Error::Done) => break,
                        Err(e) => return Err(format!("stream {sid} body: {e}")),
                    }
                },
                Ok((sid, quiche::h3::Event::Finished)) => {
                    let status = self.inflight.get(&sid).and_then(|f| f.status.clone()).unwrap_or_default();
                    if status != "200" {
                        return Err(format!("{}: HTTP status {status:?}", self.describe(sid)));
                    }
                    self.complete(sid)?;
                }
                Ok((sid, quiche::h3::Event::Reset(code))) => return Err(format!("server reset stream {sid} ({}) with 0x{code:x}", self.describe(sid))),
                // A GOAWAY lets in-flight requests finish; nothing to do.
                Ok((_, quiche::h3::Event::GoAway)) | Ok((_, quiche::h3::Event::PriorityUpdate)) => {}
                Err(quiche::h3::Error::Done) => break,
                Err(e) => return Err(format!("HTTP/3: {e}")),
            }
        }
        Ok(())
    }

    /// RFC 9218 §7.2: PRIORITY_UPDATE for the last request, urgency 0,
    /// encoded by quiche on its control stream.
    fn send_priority_update(&mut self, conn: &mut quiche::Connection) -> Result<(), String> {
        let (Some(h3), Some(&last)) = (self.h3.as_mut(), self.inflight.keys().max()) else {
            return Ok(());
        };
        match h3.send_priority_update_for_request(conn, last, &quiche::h3::Priority::new(0, false)) {
            Ok(()) => {
                log::info!("PRIORITY_UPDATE u=0 for stream {last}");
                self.reprioritize = false;
                Ok(())
            }
            Err(quiche::h3::Error::StreamBlocked) | Err(quiche::h3::Error::Done) => Ok(()),
            Err(e) => Err(format!("PRIORITY_UPDATE: {e}")),
        }
    }

    fn describe(&self, sid: u64) -> String {
        self.inflight.get(&sid).map(|f| self.urls[f.url].path.clone()).unwrap_or_else(|| "unknown request".into())
    }

    fn complete(&mut self, sid: u64) -> Result<(), String> {
        let Some(f) = self.inflight.remove(&sid) else {
            return Ok(());
        };
        let url = &self.urls[f.url];
        let path = self.downloads.join(&url.file_name);
        std::fs::write(&path, &f.body).map_err(|e| format!("writing {}: {e}", path.display()))?;
        log::debug!("saved {} ({} B)", path.display(), f.body.len());
        if self.print_completions {
            println!("complete {}", url.file_name);
        }
        self.done += 1;
        Ok(())
    }
}
