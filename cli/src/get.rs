//! `quicpro get`: a curl-like HTTP/3 client.
//!
//! All URLs must name the same server; they are fetched in parallel on one
//! connection, or with `--reconnect` each on a new connection from the same
//! process, which resumes the TLS session (and sends the request as 0-RTT)
//! so the effect of session tickets can be seen.

use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use h3_core::connection::H3Event;
use h3_core::qpack::HeaderField;
use io_backends::runtime::{Client, ClientOptions};
use quic_core::stream::StreamId;
use quic_core::tls::ClientTlsOptions;

#[derive(Debug, Clone)]
pub struct GetConfig {
    pub urls: Vec<String>,
    pub output: Option<PathBuf>,
    pub insecure: bool,
    pub cacert: Option<PathBuf>,
    pub verbose: bool,
    pub reconnect: bool,
    pub timeout: Duration,
    /// POST this file's bytes instead of GET.
    pub post: Option<PathBuf>,
    pub progress: bool,
    pub keylog: bool,
    /// `hq-interop` (HTTP/0.9) instead of HTTP/3.
    pub hq: bool,
    /// Extra request header fields (lowercase names).
    pub headers: Vec<(String, String)>,
    /// HEAD: headers to stdout, no body.
    pub head: bool,
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

struct Target {
    authority: String,
    host: String,
    addr: SocketAddr,
    path: String,
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
    Ok(Target { authority: authority.to_string(), host, addr, path: path.to_string() })
}

fn hf(n: &str, v: &str) -> HeaderField {
    HeaderField::new(n.as_bytes().to_vec(), v.as_bytes().to_vec())
}

struct Response {
    status: Option<String>,
    body_len: u64,
    done: bool,
    out: Option<Box<dyn Write>>,
}

pub fn get(cfg: GetConfig) -> Result<bool, String> {
    let targets: Vec<Target> = cfg.urls.iter().map(|u| parse_url(u)).collect::<Result<_, _>>()?;
    let first = targets.first().ok_or("no URL given")?;
    let mut tls = ClientTlsOptions::new(&[b"h3"]);
    tls.insecure_skip_verify = cfg.insecure;
    tls.ca_file = cfg.cacert.clone();
    tls.key_log = cfg.keylog;
    if cfg.hq {
        let paths: Vec<String> = targets.iter().map(|t| t.path.clone()).collect();
        let (mut out, part): (Box<dyn Write>, Option<(PathBuf, PathBuf)>) = match &cfg.output {
            Some(p) => {
                // Written beside the target and renamed when complete.
                let tmp = p.with_extension("part");
                (Box::new(std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?), Some((tmp, p.clone())))
            }
            None => (Box::new(std::io::stdout()), None),
        };
        let ok = crate::hq::get_hq(tls, first.addr, &first.host, &paths, cfg.timeout, &mut out, cfg.verbose)?;
        drop(out);
        if let Some((tmp, dst)) = part {
            std::fs::rename(&tmp, &dst).map_err(|e| format!("{}: {e}", dst.display()))?;
        }
        return Ok(ok);
    }
    let opts = ClientOptions::new(tls);
    let started = Instant::now();
    let mut client = Client::connect(&opts, first.addr, &first.host, Bytes::new()).map_err(|e| e.to_string())?;
    let mut all_ok = true;
    let groups: Vec<Vec<&Target>> = if cfg.reconnect { targets.iter().map(|t| vec![t]).collect() } else { vec![targets.iter().collect()] };
    for (gi, group) in groups.iter().enumerate() {
        if gi > 0 {
            // Let the session ticket of the previous connection arrive, then reconnect.
            let t0 = Instant::now();
            while client.connection().is_some_and(|c| c.tls().tickets_received() == 0) && t0.elapsed() < Duration::from_millis(500) {
                let _ = client.step(Duration::from_millis(10));
            }
            client.close();
            client.reconnect(group[0].addr, &group[0].host, Bytes::new()).map_err(|e| e.to_string())?;
        }
        let zero_rtt = client.connection().is_some_and(|c| c.has_zero_rtt());
        if !zero_rtt {
            client.wait_connected(cfg.timeout).map_err(|e| e.to_string())?;
        }
        let mut streams: Vec<(StreamId, Response)> = Vec::new();
        for t in group {
            let method = if cfg.post.is_some() {
                "POST"
            } else if cfg.head {
                "HEAD"
            } else {
                "GET"
            };
            let mut headers = vec![hf(":method", method), hf(":scheme", "https"), hf(":authority", &t.authority), hf(":path", &t.path), hf("user-agent", "quicpro/0.1")];
            headers.extend(cfg.headers.iter().map(|(n, v)| hf(n, v)));
            let body = match &cfg.post {
                Some(p) => Some(Bytes::from(std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?)),
                None => None,
            };
            let id = client.request(&headers, body.is_none()).map_err(|e| format!("request: {e:?}"))?;
            if let Some(mut b) = body {
                let end = Instant::now() + cfg.timeout;
                while !b.is_empty() && Instant::now() < end {
                    let n = client.send_body(id, b.clone(), true).map_err(|e| format!("body: {e:?}"))?;
                    b = b.slice(n..);
                    if !b.is_empty() {
                        client.step(Duration::from_millis(5)).map_err(|e| e.to_string())?;
                    }
                }
            }
            let out: Option<Box<dyn Write>> = match &cfg.output {
                Some(p) if group.len() == 1 => {
                    // Write to a temporary file and rename at the end, so an
                    // interrupted download never leaves a half-written file.
                    let tmp = p.with_extension("part");
                    Some(Box::new(std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?)))
                }
                _ => Some(Box::new(std::io::stdout())),
            };
            streams.push((id, Response { status: None, body_len: 0, done: false, out }));
        }
        let end = Instant::now() + cfg.timeout;
        let mut last_progress = Instant::now();
        while !streams.iter().all(|(_, r)| r.done) {
            if Instant::now() > end {
                if std::env::var_os("QUICPRO_DEBUG").is_some() {
                    for (id, r) in &streams {
                        let c = client.connection();
                        eprintln!("stream {id:?}: status {:?} body {} done {} quic readable {:?} stats {:?}", r.status, r.body_len, r.done, c.map(|c| c.readable(*id)), c.map(|c| c.stats()));
                    }
                }
                return Err("timed out waiting for responses".into());
            }
            client.step(Duration::from_millis(20)).map_err(|e| e.to_string())?;
            while let Some(ev) = client.poll_event() {
                match ev {
                    H3Event::Headers { stream, headers, fin } => {
                        if let Some((_, r)) = streams.iter_mut().find(|(s, _)| *s == stream) {
                            r.status = headers.iter().find(|f| &f.name[..] == b":status").map(|f| String::from_utf8_lossy(&f.value).into_owned());
                            if cfg.verbose {
                                for f in &headers {
                                    eprintln!("< {}: {}", String::from_utf8_lossy(&f.name), String::from_utf8_lossy(&f.value));
                                }
                            }
                            if cfg.head {
                                if let Some(o) = &mut r.out {
                                    for f in &headers {
                                        writeln!(o, "{}: {}", String::from_utf8_lossy(&f.name), String::from_utf8_lossy(&f.value)).map_err(|e| e.to_string())?;
                                    }
                                }
                            }
                            r.done |= fin;
                        }
                    }
                    H3Event::Data { stream } => {
                        while let Some(b) = client.recv_body(stream, usize::MAX) {
                            if let Some((_, r)) = streams.iter_mut().find(|(s, _)| *s == stream) {
                                r.body_len += b.len() as u64;
                                if let Some(o) = &mut r.out {
                                    o.write_all(&b).map_err(|e| e.to_string())?;
                                }
                            }
                        }
                    }
                    H3Event::Finished { stream } | H3Event::Reset { stream, .. } => {
                        if let Some((_, r)) = streams.iter_mut().find(|(s, _)| *s == stream) {
                            r.done = true;
                        }
                    }
                    _ => {}
                }
            }
            if cfg.progress && last_progress.elapsed() > Duration::from_millis(250) {
                let total: u64 = streams.iter().map(|(_, r)| r.body_len).sum();
                eprint!("\r{:>12} bytes  {:>8.1} MB/s", total, total as f64 / started.elapsed().as_secs_f64() / 1e6);
                last_progress = Instant::now();
            }
        }
        if cfg.progress {
            eprintln!();
        }
        for (_, r) in &mut streams {
            if let Some(o) = &mut r.out {
                o.flush().map_err(|e| e.to_string())?;
            }
            // 2xx, and 304 when the request was conditional (the cached
            // copy is current: that is success for the caller).
            let conditional = cfg.headers.iter().any(|(n, _)| n.starts_with("if-"));
            all_ok &= r.status.as_deref().is_some_and(|s| s.starts_with('2') || (conditional && s == "304"));
        }
        if let (Some(p), 1) = (&cfg.output, group.len()) {
            drop(streams.pop());
            std::fs::rename(p.with_extension("part"), p).map_err(|e| e.to_string())?;
        }
        if cfg.verbose {
            if let Some(c) = client.connection() {
                let resumed = c.is_resumed();
                eprintln!(
                    "* connection {}: {} ({}), ALPN {}, RTT {:?}",
                    gi + 1,
                    if resumed { "TLS session resumed" } else { "full TLS handshake" },
                    match c.zero_rtt_accepted() {
                        Some(true) => "0-RTT accepted",
                        Some(false) => "0-RTT rejected",
                        None => "no 0-RTT",
                    },
                    c.alpn().map(|a| String::from_utf8_lossy(a).into_owned()).unwrap_or_default(),
                    c.rtt(),
                );
            }
        }
    }
    client.close();
    Ok(all_ok)
}
