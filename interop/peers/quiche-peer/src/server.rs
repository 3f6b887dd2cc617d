//! The server role: one UDP socket, many quiche connections keyed by the
//! destination connection ID of incoming packets.

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quiche::h3::NameValue;
use quiche::ConnectionId;

use crate::common::{self, attach_logs, close_reason, flush, random_cid, random_u128, recv_batch, ConfigOptions, ALPN_H3, ALPN_HQ, CID_LEN, MAX_DATAGRAM};
use crate::token::TokenKey;
use crate::ServerCase;

/// How often the loop wakes up to notice SIGTERM/SIGINT when no connection
/// timer is due sooner.
const SIGNAL_POLL: Duration = Duration::from_millis(200);

/// HTTP/0.9 requests are one short line; anything longer is not a request.
const MAX_HQ_REQUEST: usize = 8192;

/// H3_REQUEST_REJECTED, reused for HTTP/0.9 where there is no status code:
/// the stream is reset with it when the file cannot be served.
const HQ_REJECT: u64 = 0x10b;
const H3_NO_ERROR: u64 = 0x100;

/// Spare connection IDs handed to each client, so it can change paths.
const EXTRA_SCIDS: usize = 3;

pub fn run(case: ServerCase) -> Result<(), String> {
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "[::]:443".into());
    let www = PathBuf::from(std::env::var("WWW").unwrap_or_else(|_| "/www".into()));
    let certs = PathBuf::from(std::env::var("CERTS").unwrap_or_else(|_| "/certs".into()));

    let cert = certs.join("cert.pem").to_string_lossy().into_owned();
    let key = certs.join("priv.key").to_string_lossy().into_owned();
    let config = common::make_config(&ConfigOptions {
        // Offer both; clients offer one of them and get it.
        alpns: &[ALPN_HQ, ALPN_H3],
        chacha_only: false,
        // Accepting 0-RTT is harmless outside zerortt and needed there.
        early_data: true,
        cert_and_key: Some((cert, key)),
    })?;

    let socket = UdpSocket::bind(&listen).map_err(|e| format!("binding UDP {listen}: {e}"))?;
    let local = socket.local_addr().map_err(|e| format!("local_addr: {e}"))?;

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(|e| format!("installing signal handler: {e}"))?;
    }

    let mut srv = Server {
        config,
        h3_config: quiche::h3::Config::new().map_err(|e| format!("h3 config: {e}"))?,
        local,
        www,
        retry: if case.retry { Some(TokenKey::random()?) } else { None },
        conns: HashMap::new(),
        by_cid: HashMap::new(),
        next_id: 0,
        out: vec![0; MAX_DATAGRAM],
        scratch: vec![0; MAX_DATAGRAM],
    };

    log::info!("server listening on {local}, serving {:?}, retry={}", srv.www, case.retry);

    let mut buf = vec![0u8; MAX_DATAGRAM];
    while !stop.load(Ordering::Relaxed) {
        let wait = srv.next_timeout().min(SIGNAL_POLL);
        if let Err(e) = recv_batch(&socket, wait, &mut buf, |pkt, from| srv.on_datagram(&socket, pkt, from)) {
            // Not fatal: a UDP socket error concerns one datagram.
            log::warn!("recv_from: {e}");
            std::thread::sleep(Duration::from_millis(10));
        }
        srv.on_timeouts();
        srv.serve();
        srv.flush_all(&socket);
        srv.collect_closed();
    }

    log::info!("signal received, closing {} connection(s)", srv.conns.len());
    srv.shutdown(&socket);
    Ok(())
}

struct Server {
    config: quiche::Config,
    h3_config: quiche::h3::Config,
    local: SocketAddr,
    www: PathBuf,
    /// Present in the retry test case.
    retry: Option<TokenKey>,
    conns: HashMap<u64, Peer>,
    /// Every connection ID a client may address us with.
    by_cid: HashMap<ConnectionId<'static>, u64>,
    next_id: u64,
    out: Vec<u8>,
    scratch: Vec<u8>,
}

struct Peer {
    conn: quiche::Connection,
    h3: Option<quiche::h3::Connection>,
    /// HTTP/0.9 request bytes read so far, per stream.
    hq_requests: HashMap<u64, Vec<u8>>,
    /// HTTP/0.9 streams already answered (later bytes are discarded).
    hq_answered: HashSet<u64>,
    responses: HashMap<u64, Response>,
    /// The IDs registered in Server::by_cid for this connection.
    cids: Vec<ConnectionId<'static>>,
    extra_scids: usize,
    announced: bool,
}

struct Response {
    body: Vec<u8>,
    off: usize,
    /// HTTP/3 response headers not yet accepted by quiche.
    h3_headers: Option<Vec<quiche::h3::Header>>,
}

impl Server {
    fn next_timeout(&self) -> Duration {
        self.conns.values().filter_map(|p| p.conn.timeout()).min().unwrap_or(SIGNAL_POLL)
    }

    fn on_datagram(&mut self, socket: &UdpSocket, pkt: &mut [u8], from: SocketAddr) {
        let hdr = match quiche::Header::from_slice(pkt, CID_LEN) {
            Ok(h) => h,
            Err(e) => {
                log::debug!("unparsable datagram from {from}: {e}");
                return;
            }
        };
        let dcid = hdr.dcid.clone().into_owned();

        let id = match self.by_cid.get(&dcid) {
            Some(id) => *id,
            None => match self.new_connection(socket, &hdr, pkt.len(), from) {
                Some(id) => id,
                None => return,
            },
        };
        let Some(peer) = self.conns.get_mut(&id) else {
            return;
        };
        let info = quiche::RecvInfo { from, to: self.local };
        match peer.conn.recv(pkt, info) {
            Ok(_) | Err(quiche::Error::Done) => {}
            // quiche closes the connection itself when the error is fatal.
            Err(e) => log::debug!("{} recv: {e}", peer.conn.trace_id()),
        }
    }

    /// Handles a packet for an unknown DCID: version negotiation, Retry, or
    /// a new connection. Returns the new connection's key.
    fn new_connection(&mut self, socket: &UdpSocket, hdr: &quiche::Header, len: usize, from: SocketAddr) -> Option<u64> {
        if hdr.ty != quiche::Type::Initial {
            log::debug!("{:?} from {from} for unknown DCID {:?}", hdr.ty, hdr.dcid);
            return None;
        }

        if !quiche::version_is_supported(hdr.version) {
            match quiche::negotiate_version(&hdr.scid, &hdr.dcid, &mut self.out) {
                Ok(n) => {
                    log::info!("version negotiation for 0x{:08x} from {from}", hdr.version);
                    send_logged(socket, &self.out[..n], from);
                }
                Err(e) => log::debug!("negotiate_version: {e}"),
            }
            return None;
        }

        // RFC 9000 14.1: a server MUST discard an Initial in a datagram
        // smaller than 1200 bytes.
        if len < quiche::MIN_CLIENT_INITIAL_LEN {
            log::debug!("short Initial ({len} bytes) from {from}");
            return None;
        }

        let (scid, odcid) = match &self.retry {
            Some(key) => {
                let token = hdr.token.as_deref().unwrap_or(&[]);
                if token.is_empty() {
                    self.send_retry(socket, key, hdr, from);
                    return None;
                }
                match key.validate(token, from, &hdr.dcid) {
                    // The client now addresses us by the Retry SCID; keep
                    // it as our SCID, as quiche expects (it is also the
                    // retry_source_connection_id).
                    Ok(odcid) => (hdr.dcid.clone().into_owned(), Some(ConnectionId::from_vec(odcid))),
                    Err(why) => {
                        log::info!("dropping Initial from {from}: invalid token ({why})");
                        return None;
                    }
                }
            }
            None => match random_cid() {
                Ok(c) => (c, None),
                Err(e) => {
                    log::error!("{e}");
                    return None;
                }
            },
        };

        let mut conn = match quiche::accept(&scid, odcid.as_ref(), self.local, from, &mut self.config) {
            Ok(c) => c,
            Err(e) => {
                log::info!("accept from {from} failed: {e}");
                return None;
            }
        };
        attach_logs(&mut conn, "server");
        log::info!("{} new connection from {from}", conn.trace_id());

        let id = self.next_id;
        self.next_id += 1;

        // Until it hears from us the client keeps using the DCID it chose
        // (retransmitted Initials, 0-RTT), so that one maps here too.
        let mut cids = vec![scid.clone()];
        let client_dcid = hdr.dcid.clone().into_owned();
        if client_dcid != scid {
            cids.push(client_dcid);
        }
        for c in &cids {
            self.by_cid.insert(c.clone(), id);
        }

        self.conns.insert(
            id,
            Peer {
                conn,
                h3: None,
                hq_requests: HashMap::new(),
                hq_answered: HashSet::new(),
                responses: HashMap::new(),
                cids,
                extra_scids: 0,
                announced: false,
            },
        );
        Some(id)
    }

    fn send_retry(&self, socket: &UdpSocket, key: &TokenKey, hdr: &quiche::Header, from: SocketAddr) {
        let new_scid = match random_cid() {
            Ok(c) => c,
            Err(e) => {
                log::error!("{e}");
                return;
            }
        };
        let token = match key.mint(from, &hdr.dcid, &new_scid) {
            Ok(t) => t,
            Err(e) => {
                log::error!("minting token: {e}");
                return;
            }
        };
        // A local buffer: self.out is borrowed immutably through `self`.
        let mut out = [0u8; 1500];
        match quiche::retry(&hdr.scid, &hdr.dcid, &new_scid, &token, hdr.version, &mut out) {
            Ok(n) => {
                log::info!("sent Retry to {from}");
                send_logged(socket, &out[..n], from);
            }
            Err(e) => log::warn!("building Retry: {e}"),
        }
    }

    fn on_timeouts(&mut self) {
        let now = Instant::now();
        for p in self.conns.values_mut() {
            if p.conn.timeout_instant().is_some_and(|t| t <= now) {
                p.conn.on_timeout();
            }
        }
    }

    /// Runs the application protocol on every connection that can carry
    /// data (established, or in 0-RTT).
    fn serve(&mut self) {
        let Server { conns, by_cid, h3_config, www, scratch, .. } = self;
        for (&id, p) in conns.iter_mut() {
            p.housekeeping(id, by_cid);

            if !(p.conn.is_established() || p.conn.is_in_early_data()) {
                continue;
            }
            if !p.announced && p.conn.is_established() {
                p.announced = true;
                log::info!(
                    "{} handshake done: alpn={} resumed={} early_data_reason={}",
                    p.conn.trace_id(),
                    String::from_utf8_lossy(p.conn.application_proto()),
                    p.conn.is_resumed(),
                    p.conn.early_data_reason(),
                );
            }
            match p.conn.application_proto() {
                ALPN_H3 => p.serve_h3(h3_config, www, scratch),
                ALPN_HQ => p.serve_hq(www, scratch),
                // Not negotiated yet (cannot happen once keys exist).
                _ => continue,
            }
            p.push_responses();
        }
    }

    fn flush_all(&mut self, socket: &UdpSocket) {
        for p in self.conns.values_mut() {
            if let Err(e) = flush(socket, &mut p.conn, &mut self.out) {
                log::warn!("{e}");
            }
        }
    }

    fn collect_closed(&mut self) {
        let closed: Vec<u64> = self.conns.iter().filter(|(_, p)| p.conn.is_closed()).map(|(id, _)| *id).collect();
        for id in closed {
            let Some(p) = self.conns.remove(&id) else {
                continue;
            };
            for c in &p.cids {
                self.by_cid.remove(c);
            }
            let s = p.conn.stats();
            log::info!(
                "{} closed: {}; sent {} pkts / {} B, recv {} pkts, lost {}",
                p.conn.trace_id(),
                close_reason(&p.conn),
                s.sent,
                s.sent_bytes,
                s.recv,
                s.lost
            );
        }
    }

    fn shutdown(&mut self, socket: &UdpSocket) {
        for p in self.conns.values_mut() {
            let code = if p.h3.is_some() { H3_NO_ERROR } else { 0 };
            let _ = p.conn.close(true, code, b"server shutting down");
            let _ = flush(socket, &mut p.conn, &mut self.out);
        }
    }
}

impl Peer {
    /// Connection-ID and path bookkeeping that quiche leaves to the
    /// application.
    fn housekeeping(&mut self, id: u64, by_cid: &mut HashMap<ConnectionId<'static>, u64>) {
        while let Some(ev) = self.conn.path_event_next() {
            log::info!("{} path event: {ev:?}", self.conn.trace_id());
        }
        while let Some(cid) = self.conn.retired_scid_next() {
            by_cid.remove(&cid);
            self.cids.retain(|c| *c != cid);
        }
        if !self.conn.is_established() {
            return;
        }
        while self.extra_scids < EXTRA_SCIDS && self.conn.scids_left() > 0 {
            let (cid, reset) = match (random_cid(), random_u128()) {
                (Ok(c), Ok(r)) => (c, r),
                _ => break,
            };
            if self.conn.new_scid(&cid, reset, false).is_err() {
                break;
            }
            by_cid.insert(cid.clone(), id);
            self.cids.push(cid);
            self.extra_scids += 1;
        }
    }

    fn serve_hq(&mut self, www: &Path, buf: &mut [u8]) {
        for sid in self.conn.readable() {
            loop {
                let (n, fin) = match self.conn.stream_recv(sid, buf) {
                    Ok(v) => v,
                    Err(quiche::Error::Done) => break,
                    Err(e) => {
                        log::debug!("{} stream {sid} recv: {e}", self.conn.trace_id());
                        self.hq_requests.remove(&sid);
                        self.hq_answered.remove(&sid);
                        break;
                    }
                };
                // Requests only come on client-initiated bidi streams, and
                // only until we have answered.
                if sid % 4 != 0 || self.hq_answered.contains(&sid) {
                    if fin {
                        // Nothing more can be read after the FIN.
                        self.hq_answered.remove(&sid);
                        break;
                    }
                    continue;
                }
                let req = self.hq_requests.entry(sid).or_default();
                req.extend_from_slice(&buf[..n]);
                if req.len() > MAX_HQ_REQUEST {
                    log::info!("{} stream {sid}: oversized request", self.conn.trace_id());
                    self.hq_requests.remove(&sid);
                    let _ = self.conn.stream_shutdown(sid, quiche::Shutdown::Write, HQ_REJECT);
                    let _ = self.conn.stream_shutdown(sid, quiche::Shutdown::Read, HQ_REJECT);
                    break;
                }
                // Answer at the end of the line or at FIN, whichever first:
                // the request is complete either way.
                if fin || req.contains(&b'\n') {
                    let req = self.hq_requests.remove(&sid).unwrap_or_default();
                    if !fin {
                        self.hq_answered.insert(sid);
                    }
                    self.answer_hq(sid, &req, www);
                    if fin {
                        break;
                    }
                }
            }
        }
    }

    fn answer_hq(&mut self, sid: u64, req: &[u8], www: &Path) {
        let text = String::from_utf8_lossy(req);
        let line = text.lines().next().unwrap_or("").trim();
        let body = line.strip_prefix("GET ").map(str::trim).ok_or_else(|| format!("not a GET request: {line:?}")).and_then(|path| read_file(www, path));
        match body {
            Ok(body) => {
                log::debug!("{} stream {sid}: {line} -> {} B", self.conn.trace_id(), body.len());
                self.responses.insert(sid, Response { body, off: 0, h3_headers: None });
            }
            Err(why) => {
                log::info!("{} stream {sid}: {why}; resetting", self.conn.trace_id());
                let _ = self.conn.stream_shutdown(sid, quiche::Shutdown::Write, HQ_REJECT);
            }
        }
    }

    fn serve_h3(&mut self, cfg: &quiche::h3::Config, www: &Path, buf: &mut [u8]) {
        if self.h3.is_none() {
            match quiche::h3::Connection::with_transport(&mut self.conn, cfg) {
                Ok(h) => self.h3 = Some(h),
                Err(e) => {
                    // with_transport has already closed the connection if
                    // the failure was fatal.
                    log::warn!("{} HTTP/3 setup: {e}", self.conn.trace_id());
                    return;
                }
            }
        }
        let Some(h3) = self.h3.as_mut() else {
            return;
        };
        loop {
            match h3.poll(&mut self.conn) {
                Ok((sid, quiche::h3::Event::Headers { list, .. })) => {
                    let resp = h3_response(&list, www);
                    log::debug!("{} stream {sid}: {} B", self.conn.trace_id(), resp.body.len());
                    self.responses.insert(sid, resp);
                }
                Ok((sid, quiche::h3::Event::Data)) => {
                    // GET has no body; drain anything sent anyway.
                    while h3.recv_body(&mut self.conn, sid, buf).is_ok() {}
                }
                Ok((sid, quiche::h3::Event::Reset(code))) => {
                    log::info!("{} stream {sid} reset by client (0x{code:x})", self.conn.trace_id());
                    self.responses.remove(&sid);
                }
                Ok((_, quiche::h3::Event::Finished)) | Ok((_, quiche::h3::Event::PriorityUpdate)) | Ok((_, quiche::h3::Event::GoAway)) => {}
                Err(quiche::h3::Error::Done) => break,
                Err(e) => {
                    log::info!("{} HTTP/3 error: {e}", self.conn.trace_id());
                    break;
                }
            }
        }
    }

    /// Writes as much of each pending response as flow and congestion
    /// control allow; the rest waits for the next round.
    fn push_responses(&mut self) {
        let mut finished = Vec::new();
        for (&sid, r) in self.responses.iter_mut() {
            match self.h3.as_mut() {
                Some(h3) => {
                    if let Some(headers) = &r.h3_headers {
                        let fin = r.body.is_empty();
                        match h3.send_response(&mut self.conn, sid, headers, fin) {
                            Ok(()) => r.h3_headers = None,
                            Err(quiche::h3::Error::StreamBlocked) | Err(quiche::h3::Error::Done) => continue,
                            Err(e) => {
                                log::info!("{} stream {sid} send_response: {e}", self.conn.trace_id());
                                finished.push(sid);
                                continue;
                            }
                        }
                        if fin {
                            finished.push(sid);
                            continue;
                        }
                    }
                    match h3.send_body(&mut self.conn, sid, &r.body[r.off..], true) {
                        Ok(n) => r.off += n,
                        Err(quiche::h3::Error::Done) => {}
                        Err(e) => {
                            log::info!("{} stream {sid} send_body: {e}", self.conn.trace_id());
                            finished.push(sid);
                            continue;
                        }
                    }
                }
                None => match self.conn.stream_send(sid, &r.body[r.off..], true) {
                    Ok(n) => r.off += n,
                    Err(quiche::Error::Done) => {}
                    Err(e) => {
                        log::info!("{} stream {sid} send: {e}", self.conn.trace_id());
                        finished.push(sid);
                        continue;
                    }
                },
            }
            // A write that took everything also carried the FIN.
            if r.off == r.body.len() {
                finished.push(sid);
            }
        }
        for sid in finished {
            self.responses.remove(&sid);
        }
    }
}

fn h3_response(list: &[quiche::h3::Header], www: &Path) -> Response {
    let mut method = None;
    let mut path = None;
    for h in list {
        match h.name() {
            b":method" => method = Some(h.value().to_vec()),
            b":path" => path = Some(String::from_utf8_lossy(h.value()).into_owned()),
            _ => {}
        }
    }
    let (status, body) = match (method.as_deref(), path) {
        (Some(b"GET"), Some(p)) => match read_file(www, &p) {
            Ok(body) => ("200", body),
            Err(why) => {
                log::info!("HTTP/3 GET {p}: {why}");
                ("404", Vec::new())
            }
        },
        (Some(b"GET"), None) => ("400", Vec::new()),
        _ => ("405", Vec::new()),
    };
    let headers = vec![
        quiche::h3::Header::new(b":status", status.as_bytes()),
        quiche::h3::Header::new(b"server", b"quiche-peer"),
        quiche::h3::Header::new(b"content-length", body.len().to_string().as_bytes()),
    ];
    Response { body, off: 0, h3_headers: Some(headers) }
}

/// Maps a request path onto a file under `www`, refusing anything that
/// would leave it.
fn read_file(www: &Path, path: &str) -> Result<Vec<u8>, String> {
    let clean = path.split(['?', '#']).next().unwrap_or("");
    let rel = Path::new(clean.trim_start_matches('/'));
    if rel.as_os_str().is_empty() {
        return Err(format!("{path}: no file name"));
    }
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(format!("{path}: refusing path outside the web root"));
    }
    let full = www.join(rel);
    std::fs::read(&full).map_err(|e| format!("{}: {e}", full.display()))
}

fn send_logged(socket: &UdpSocket, data: &[u8], to: SocketAddr) {
    if let Err(e) = socket.send_to(data, to) {
        log::debug!("send_to {to}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_file_stays_inside_root() {
        let dir = std::env::temp_dir().join(format!("qp-www-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/f"), b"x").unwrap();
        assert_eq!(read_file(&dir, "/sub/f").unwrap(), b"x");
        assert_eq!(read_file(&dir, "/sub/f?q=1").unwrap(), b"x");
        assert!(read_file(&dir, "/../etc/passwd").is_err());
        assert!(read_file(&dir, "/sub/../sub/f").is_err());
        assert!(read_file(&dir, "/").is_err());
        assert!(read_file(&dir, "/missing").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
