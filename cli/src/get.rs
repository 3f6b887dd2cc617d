//! `quicpro get`: a curl-like HTTP/3 (or `hq-interop`) client.
//!
//! All URLs must name the same server. How they map onto connections is a
//! [`Plan`]: all on one connection (in parallel, as far as the server's
//! stream limit lets us: the rest wait for MAX_STREAMS, RFC 9000 §4.6),
//! one connection each (`--reconnect`), or the first on one connection and
//! the rest on a second (`--resume-rest`). Later connections come from the
//! same process and TLS configuration, so they resume the session and send
//! their requests as 0-RTT, which makes the effect of tickets visible.
//!
//! The same client serves as our endpoint in the interop runner: bodies can
//! go to a directory (`--output-dir`, one file per URL, named after the
//! path's last segment), it can start a key update (`--key-update`) and
//! offer chosen cipher suites (`--ciphers`).

use std::collections::VecDeque;
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use h3_core::connection::{H3Event, SendError};
use h3_core::qpack::HeaderField;
use io_backends::runtime::{Client, ClientOptions};
use quic_core::connection::{Event as QuicEvent, StreamEvent};
use quic_core::stream::StreamId;
use quic_core::tls::ClientTlsOptions;

/// How URLs are spread over connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Every URL on one connection.
    One,
    /// A new (resumed) connection per URL.
    PerUrl,
    /// The first URL on connection 1, the others on a resumed connection 2.
    FirstThenRest,
}

/// Where response bodies go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Stdout,
    /// One URL only: written beside the target and renamed when complete.
    File(PathBuf),
    /// Each body as `DIR/<last path segment>`.
    Dir(PathBuf),
}

#[derive(Debug, Clone)]
pub struct GetConfig {
    pub urls: Vec<String>,
    pub output: Output,
    pub insecure: bool,
    pub cacert: Option<PathBuf>,
    /// Client certificate chain and key files (mutual TLS).
    pub client_cert: Option<(PathBuf, PathBuf)>,
    pub verbose: bool,
    pub plan: Plan,
    pub timeout: Duration,
    /// POST this file's bytes instead of GET.
    pub post: Option<PathBuf>,
    pub progress: bool,
    pub keylog: bool,
    /// `hq-interop` (HTTP/0.9) instead of HTTP/3.
    pub hq: bool,
    /// Extra request header fields (lowercase names).
    pub headers: Vec<(String, String)>,
    /// `--priority`: the RFC 9218 priority of each URL's request, in order
    /// (the last one for the URLs beyond).
    pub priorities: Vec<String>,
    /// HEAD: headers to stdout, no body.
    pub head: bool,
    /// Start a key update as soon as the handshake allows (RFC 9001 §6).
    pub key_update: bool,
    /// TLS 1.3 cipher suites to offer (empty: all).
    pub ciphers: Vec<rustls::CipherSuite>,
    /// One qlog file per connection in this directory.
    pub qlog_dir: Option<PathBuf>,
    /// The first Initial's version, and the preference list offered in
    /// version_information (RFC 9368; empty: the first version first).
    pub version: quic_core::Version,
    pub versions: Vec<quic_core::Version>,
    /// `--max-udp-payload`, `--no-pmtud`.
    pub path: crate::path_opts::PathOptions,
    /// `--cc`, `--no-hystart`.
    pub cc: crate::cc_opts::CcOptions,
    /// `--migrate-after BYTES`: once this much response body has arrived on
    /// a connection, move it to a new local port (RFC 9000 §9.2).
    pub migrate_after: Option<u64>,
}

/// Parses `-H "Name: value"` into a lowercase name (RFC 9114 §4.2) and the
/// trimmed value; pseudo-headers and connection-specific fields are refused.
pub fn parse_header(h: &str) -> Result<(String, String), String> {
    let (n, v) = h.split_once(':').filter(|(n, _)| !n.trim().is_empty()).ok_or_else(|| format!("-H {h:?}: expected \"name: value\""))?;
    let name = n.trim().to_ascii_lowercase();
    if name.bytes().any(|b| !(b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))) {
        return Err(format!("-H {h:?}: invalid field name"));
    }
    // RFC 9114 §4.2: no connection-specific fields in HTTP/3.
    if ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"].contains(&name.as_str()) {
        return Err(format!("-H {h:?}: {name} is not allowed in HTTP/3"));
    }
    let value = v.trim().to_string();
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(format!("-H {h:?}: invalid field value"));
    }
    Ok((name, value))
}

/// Parses `--ciphers` names (IANA or rustls spelling, with or without the
/// TLS13_ prefix).
pub fn parse_ciphers(list: &str) -> Result<Vec<rustls::CipherSuite>, String> {
    list.split(',')
        .map(|n| {
            let n = n.trim().to_ascii_uppercase();
            let n = n.trim_start_matches("TLS13_").trim_start_matches("TLS_");
            match n {
                "AES_128_GCM_SHA256" => Ok(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256),
                "AES_256_GCM_SHA384" => Ok(rustls::CipherSuite::TLS13_AES_256_GCM_SHA384),
                "CHACHA20_POLY1305_SHA256" => Ok(rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256),
                other => Err(format!("--ciphers: unknown TLS 1.3 suite {other:?}")),
            }
        })
        .collect()
}

struct Target {
    authority: String,
    host: String,
    addr: SocketAddr,
    path: String,
    /// The `priority` field sent with this URL's request (RFC 9218).
    priority: Option<String>,
}

fn parse_url(url: &str) -> Result<Target, String> {
    let rest = url.strip_prefix("https://").ok_or_else(|| format!("{url}: only https:// URLs"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = if let Some(h) = authority.strip_prefix('[') {
        let end = h.find(']').ok_or("bad IPv6 authority")?;
        let port = h[end + 1..].strip_prefix(':').map_or(Ok(443), |p| p.parse::<u16>()).map_err(|e| e.to_string())?;
        (h[..end].to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse::<u16>().map_err(|e| e.to_string())?),
            None => (authority.to_string(), 443),
        }
    };
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("{host}: {e}"))?
        // Prefer IPv4 loopback-style answers for "localhost".
        .min_by_key(|a| if a.is_ipv4() { 0 } else { 1 })
        .ok_or_else(|| format!("{host}: no address"))?;
    Ok(Target { authority: authority.to_string(), host, addr, path: path.to_string(), priority: None })
}

/// The file name a body is saved under in `--output-dir`: the path's last
/// segment without query, never empty, never a way out of the directory.
fn file_name(path: &str) -> String {
    let p = path.split(['?', '#']).next().unwrap_or("");
    let last = p.rsplit('/').next().unwrap_or("");
    if last.is_empty() || last == "." || last == ".." {
        "index.html".to_string()
    } else {
        last.to_string()
    }
}

/// `-o` names something other than a regular file that already exists (a
/// device such as /dev/null, a FIFO): the body goes straight there.
fn writes_in_place(p: &std::path::Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

fn hf(n: &str, v: &str) -> HeaderField {
    HeaderField::new(n.as_bytes().to_vec(), v.as_bytes().to_vec())
}

/// One request in flight and where its body goes.
struct Fetch {
    id: StreamId,
    path: String,
    status: Option<String>,
    body_len: u64,
    done: bool,
    /// Opened on the first body byte (thousands of requests may be issued;
    /// files are held only while their data flows).
    out: Option<Box<dyn Write>>,
}

/// Why a request could not be issued.
enum IssueError {
    /// No stream credit or send buffer now: try again after a step.
    Later,
    Fatal(String),
}

/// Raises the open-file limit to its hard maximum: with `--output-dir` and
/// a server allowing hundreds of concurrent streams, that many files are
/// open at once.
fn raise_file_limit() {
    // SAFETY: getrlimit/setrlimit read and write the struct we pass.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

struct Session<'a> {
    cfg: &'a GetConfig,
    client: Client,
    body: Option<Bytes>,
    started: Instant,
}

impl Session<'_> {
    /// Opens the request's stream and sends it; `Later` when the peer's
    /// stream limit is reached.
    fn issue(&mut self, t: &Target) -> Result<StreamId, IssueError> {
        if self.cfg.hq {
            if self.client.connection().is_none_or(|c| c.is_closed()) {
                return Err(IssueError::Fatal("connection closed".into()));
            }
            let line = format!("GET {}\r\n", t.path);
            return self.client.request_raw(line.as_bytes()).ok_or(IssueError::Later);
        }
        let method = if self.cfg.post.is_some() {
            "POST"
        } else if self.cfg.head {
            "HEAD"
        } else {
            "GET"
        };
        let mut headers =
            vec![hf(":method", method), hf(":scheme", "https"), hf(":authority", &t.authority), hf(":path", &t.path), hf("user-agent", "quicpro/0.1")];
        headers.extend(self.cfg.headers.iter().map(|(n, v)| hf(n, v)));
        if let Some(p) = &t.priority {
            headers.push(hf("priority", p));
        }
        let id = match self.client.request(&headers, self.body.is_none()) {
            Ok(id) => id,
            Err(SendError::Refused | SendError::WouldBlock) if self.client.connection().is_some_and(|c| !c.is_closed()) => return Err(IssueError::Later),
            Err(e) => return Err(IssueError::Fatal(format!("request: {e:?}"))),
        };
        if let Some(body) = self.body.clone() {
            let mut b = body;
            let end = Instant::now() + self.cfg.timeout;
            while !b.is_empty() && Instant::now() < end {
                let n = self.client.send_body(id, b.clone(), true).map_err(|e| IssueError::Fatal(format!("body: {e:?}")))?;
                b = b.slice(n..);
                if !b.is_empty() {
                    self.client.step(Duration::from_millis(5)).map_err(|e| IssueError::Fatal(e.to_string()))?;
                }
            }
        }
        Ok(id)
    }

    fn sink(&self, f: &Fetch, single: bool) -> Result<Box<dyn Write>, String> {
        let open = |p: &std::path::Path| -> Result<Box<dyn Write>, String> {
            Ok(Box::new(std::io::BufWriter::new(std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?)))
        };
        match &self.cfg.output {
            // A device or FIFO (`-o /dev/null`) is written in place: the
            // rename below would replace it with a regular file.
            Output::File(p) if single && writes_in_place(p) => open(p),
            // An interrupted download never leaves a half-written file.
            Output::File(p) if single => open(&p.with_extension("part")),
            Output::Dir(d) => open(&d.join(file_name(&f.path))),
            _ => Ok(Box::new(std::io::stdout())),
        }
    }

    fn on_body(&mut self, fetches: &mut [Fetch], id: StreamId, data: &[u8], single: bool) -> Result<(), String> {
        let Some(i) = fetches.iter().position(|f| f.id == id) else { return Ok(()) };
        if fetches[i].out.is_none() && !data.is_empty() {
            let w = self.sink(&fetches[i], single)?;
            fetches[i].out = Some(w);
        }
        let f = &mut fetches[i];
        f.body_len += data.len() as u64;
        if let Some(o) = &mut f.out {
            o.write_all(data).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn finish(&self, f: &mut Fetch, single: bool) -> Result<(), String> {
        f.done = true;
        if self.cfg.verbose {
            eprintln!("* {}: complete, {} bytes", f.path, f.body_len);
        }
        if f.out.is_none() && !matches!(self.cfg.output, Output::Stdout) {
            // An empty body still creates its file.
            f.out = Some(self.sink(f, single)?);
        }
        if let Some(mut o) = f.out.take() {
            o.flush().map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Handles what the last step produced.
    fn on_events(&mut self, fetches: &mut [Fetch], single: bool) -> Result<(), String> {
        let mut readable = false;
        while let Some(ev) = self.client.poll_event() {
            match ev {
                H3Event::Headers { stream, headers, fin } => {
                    let Some(i) = fetches.iter().position(|f| f.id == stream) else { continue };
                    fetches[i].status = headers.iter().find(|f| &f.name[..] == b":status").map(|f| String::from_utf8_lossy(&f.value).into_owned());
                    if self.cfg.verbose {
                        for f in &headers {
                            eprintln!("< {}: {}", String::from_utf8_lossy(&f.name), String::from_utf8_lossy(&f.value));
                        }
                    }
                    if self.cfg.head {
                        let mut text = Vec::new();
                        for f in &headers {
                            text.extend_from_slice(&f.name);
                            text.extend_from_slice(b": ");
                            text.extend_from_slice(&f.value);
                            text.push(b'\n');
                        }
                        self.on_body(fetches, stream, &text, single)?;
                    }
                    if fin {
                        self.finish(&mut fetches[i], single)?;
                    }
                }
                H3Event::Data { stream } => {
                    while let Some(b) = self.client.recv_body(stream, usize::MAX) {
                        self.on_body(fetches, stream, &b, single)?;
                    }
                }
                H3Event::Finished { stream } => {
                    if let Some(f) = fetches.iter_mut().find(|f| f.id == stream) {
                        self.finish(f, single)?;
                    }
                }
                H3Event::Reset { stream, code } => {
                    if let Some(f) = fetches.iter_mut().find(|f| f.id == stream) {
                        return Err(format!("{}: stream reset by the server ({code:#x})", f.path));
                    }
                }
                H3Event::Transport(QuicEvent::Stream(StreamEvent::Reset { id, error_code })) if self.cfg.hq => {
                    return Err(format!("stream {} reset ({error_code:#x})", id.0));
                }
                H3Event::Transport(QuicEvent::Stream(StreamEvent::Readable(_))) => readable = true,
                _ => {}
            }
        }
        if self.cfg.hq && readable {
            // HTTP/0.9: the stream carries the bare body.
            for i in 0..fetches.len() {
                if fetches[i].done {
                    continue;
                }
                let id = fetches[i].id;
                loop {
                    let Ok(chunk) = self.client.read_raw(id, 256 * 1024) else { break };
                    let (data, fin) = (chunk.data, chunk.fin);
                    self.on_body(fetches, id, &data, single)?;
                    if fin {
                        self.finish(&mut fetches[i], single)?;
                        break;
                    }
                    if data.is_empty() {
                        break;
                    }
                }
            }
        }
        Ok(())
    }
}

pub fn get(cfg: GetConfig) -> Result<bool, String> {
    let mut targets: Vec<Target> = cfg.urls.iter().map(|u| parse_url(u)).collect::<Result<_, _>>()?;
    // `--priority`: the nth value for the nth URL, the last for the rest.
    for (i, t) in targets.iter_mut().enumerate() {
        t.priority = cfg.priorities.get(i).or(cfg.priorities.last()).cloned();
    }
    let first = targets.first().ok_or("no URL given")?;
    if let Output::File(_) = cfg.output {
        if targets.len() != 1 {
            return Err("-o takes one URL; use --output-dir for several".into());
        }
    }
    if let Output::Dir(d) = &cfg.output {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        raise_file_limit();
    }
    let alpn: &[u8] = if cfg.hq { b"hq-interop" } else { b"h3" };
    let mut tls = ClientTlsOptions::new(&[alpn]);
    tls.insecure_skip_verify = cfg.insecure;
    tls.ca_file = cfg.cacert.clone();
    tls.key_log = cfg.keylog;
    tls.cipher_suites = cfg.ciphers.clone();
    if let Some((cert, key)) = &cfg.client_cert {
        tls = tls.with_client_cert_files(cert, key).map_err(|e| format!("--client-cert: {e}"))?;
    }
    let body = match &cfg.post {
        Some(p) => Some(Bytes::from(std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?)),
        None => None,
    };
    let mut opts = ClientOptions::new(tls);
    opts.version = cfg.version;
    opts.transport.versions = cfg.versions.clone();
    cfg.path.apply(&mut opts.transport);
    cfg.cc.apply(&mut opts.transport);
    // NEW_TOKEN tokens carry over to the next connection (--reconnect,
    // --resume-rest): a server demanding address validation skips its Retry.
    opts.tokens = Some(io_backends::runtime::TokenStore::new());
    // qlog records are written by the spool's thread, off the packet path
    // (declared before the session, so it outlives the connections).
    let qlog_spool = match &cfg.qlog_dir {
        Some(_) => Some(io_backends::qlog_spool::QlogSpool::start().map_err(|e| format!("qlog writer: {e}"))?),
        None => None,
    };
    let client = Client::connect(&opts, first.addr, &first.host, Bytes::new()).map_err(|e| e.to_string())?;
    let mut s = Session { cfg: &cfg, client, body, started: Instant::now() };
    let groups: Vec<Vec<&Target>> = match cfg.plan {
        Plan::One => vec![targets.iter().collect()],
        Plan::PerUrl => targets.iter().map(|t| vec![t]).collect(),
        Plan::FirstThenRest => {
            let mut g = vec![vec![first]];
            if targets.len() > 1 {
                g.push(targets[1..].iter().collect());
            }
            g
        }
    };
    let single = targets.len() == 1;
    let mut all_ok = true;
    for (gi, group) in groups.iter().enumerate() {
        if gi > 0 {
            // Let the session ticket of the previous connection arrive, then reconnect.
            let t0 = Instant::now();
            while s.client.connection().is_some_and(|c| c.tls().tickets_received() == 0) && t0.elapsed() < Duration::from_millis(500) {
                let _ = s.client.step(Duration::from_millis(10));
            }
            s.client.close();
            s.client.reconnect(group[0].addr, &group[0].host, Bytes::new()).map_err(|e| e.to_string())?;
        }
        if let (Some(dir), Some(spool)) = (&cfg.qlog_dir, &qlog_spool) {
            let name = format!("client-{}-conn{}.sqlog", std::process::id(), gi + 1);
            let now = Instant::now();
            if let Some(c) = s.client.connection_mut() {
                c.enable_qlog(Box::new(spool.sink(dir.join(name))), now);
            }
        }
        let zero_rtt = s.client.connection().is_some_and(|c| c.has_zero_rtt());
        if !zero_rtt {
            s.client.wait_connected(cfg.timeout).map_err(|e| e.to_string())?;
        }
        let mut queue: VecDeque<&Target> = group.iter().copied().collect();
        let mut fetches: Vec<Fetch> = Vec::with_capacity(group.len());
        let mut key_updated = !cfg.key_update;
        let mut migrated = cfg.migrate_after.is_none();
        let end = Instant::now() + cfg.timeout;
        let mut last_progress = Instant::now();
        loop {
            while let Some(t) = queue.front() {
                match s.issue(t) {
                    Ok(id) => {
                        fetches.push(Fetch { id, path: t.path.clone(), status: None, body_len: 0, done: false, out: None });
                        queue.pop_front();
                    }
                    Err(IssueError::Later) => break,
                    Err(IssueError::Fatal(e)) => return Err(e),
                }
            }
            if queue.is_empty() && fetches.iter().all(|f| f.done) {
                break;
            }
            if Instant::now() > end {
                let done = fetches.iter().filter(|f| f.done).count();
                return Err(format!("timed out: {done} of {} responses complete", group.len()));
            }
            s.client.step(Duration::from_millis(20)).map_err(|e| e.to_string())?;
            if !key_updated {
                // Possible once the handshake is confirmed and a packet of
                // the current phase was acknowledged (RFC 9001 §6.1).
                key_updated = s.client.connection_mut().is_some_and(|c| c.initiate_key_update(Instant::now()));
            }
            s.on_events(&mut fetches, single)?;
            if !migrated && fetches.iter().map(|f| f.body_len).sum::<u64>() >= cfg.migrate_after.unwrap_or(0) {
                // Waits for a spare connection ID of the server (§9.5)
                // rather than failing: it arrives soon after the handshake.
                match s.client.migrate() {
                    Ok(local) => {
                        migrated = true;
                        if cfg.verbose {
                            eprintln!("* connection {}: migrated to local address {local}", gi + 1);
                        }
                    }
                    Err(io_backends::runtime::ClientError::Migrate(quic_core::connection::MigrateError::NoSpareConnectionId))
                    | Err(io_backends::runtime::ClientError::Migrate(quic_core::connection::MigrateError::HandshakeNotConfirmed)) => {}
                    Err(e) => return Err(format!("--migrate-after: {e}")),
                }
            }
            if cfg.progress && last_progress.elapsed() > Duration::from_millis(250) {
                let total: u64 = fetches.iter().map(|f| f.body_len).sum();
                eprint!("\r{:>12} bytes  {:>8.1} MB/s", total, total as f64 / s.started.elapsed().as_secs_f64() / 1e6);
                last_progress = Instant::now();
            }
        }
        if cfg.progress {
            eprintln!();
        }
        // 2xx, and 304 when the request was conditional (the cached copy
        // is current: that is success for the caller). HTTP/0.9 has no
        // status: a complete stream is the answer.
        let conditional = cfg.headers.iter().any(|(n, _)| n.starts_with("if-"));
        for f in &fetches {
            all_ok &= cfg.hq || f.status.as_deref().is_some_and(|st| st.starts_with('2') || (conditional && st == "304"));
        }
        if let (Output::File(p), true) = (&cfg.output, single) {
            if !writes_in_place(p) && fetches.first().is_some_and(|f| f.body_len > 0 || f.done) {
                std::fs::rename(p.with_extension("part"), p).map_err(|e| e.to_string())?;
            }
        }
        if cfg.verbose {
            if let Some(c) = s.client.connection() {
                eprintln!(
                    "* connection {}: {} ({}), ALPN {}, QUIC {}, RTT {:?}, MTU {}, congestion {} ({}), migrations {}, peer {}{}",
                    gi + 1,
                    if c.is_resumed() { "TLS session resumed" } else { "full TLS handshake" },
                    match c.zero_rtt_accepted() {
                        Some(true) => "0-RTT accepted",
                        Some(false) => "0-RTT rejected",
                        None => "no 0-RTT",
                    },
                    c.alpn().map(|a| String::from_utf8_lossy(a).into_owned()).unwrap_or_default(),
                    match (c.negotiated_from(), c.original_version()) {
                        (Some(f), _) => format!("{} (Version Negotiation from {f})", c.version()),
                        (None, Some(o)) => format!("{} (from {o})", c.version()),
                        (None, None) => c.version().to_string(),
                    },
                    c.rtt(),
                    c.mtu(),
                    c.congestion_controller(),
                    match c.congestion_model_state() {
                        Some(state) => format!("state {state}"),
                        None => format!("HyStart++ {}", c.hystart_phase().map_or("n/a", |p| p.name())),
                    },
                    c.stats().migrations,
                    c.remote_address(),
                    if cfg.key_update { format!(", key updates {}", c.stats().key_updates) } else { String::new() },
                );
            }
        }
    }
    s.client.close();
    Ok(all_ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_dir_names_stay_inside() {
        assert_eq!(file_name("/a/b/file.bin"), "file.bin");
        assert_eq!(file_name("/file?x=1"), "file");
        assert_eq!(file_name("/"), "index.html");
        assert_eq!(file_name("/dir/.."), "index.html");
        assert_eq!(file_name("/dir/"), "index.html");
    }

    #[test]
    fn cipher_names() {
        assert_eq!(parse_ciphers("TLS_CHACHA20_POLY1305_SHA256"), Ok(vec![rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256]));
        assert_eq!(
            parse_ciphers("tls13_aes_128_gcm_sha256, AES_256_GCM_SHA384"),
            Ok(vec![rustls::CipherSuite::TLS13_AES_128_GCM_SHA256, rustls::CipherSuite::TLS13_AES_256_GCM_SHA384])
        );
        assert!(parse_ciphers("RC4").is_err());
    }

    #[test]
    fn header_option() {
        assert_eq!(parse_header("Range: bytes=0-1"), Ok(("range".into(), "bytes=0-1".into())));
        assert!(parse_header("nocolon").is_err());
        assert!(parse_header("connection: close").is_err());
        assert!(parse_header("bad name: x").is_err());
    }
}
