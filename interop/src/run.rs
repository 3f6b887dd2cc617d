//! Running one test case: a server, the relay in front of it with the
//! case's network scenario, a client through the relay; then the files are
//! compared and the traces judged ([`crate::analyze`]).
//!
//! Every process the runner starts is stopped by its PID at the end (SIGTERM,
//! then SIGKILL after a grace period); nothing else is touched.

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::cases::{Case, ConnectionPlan};
use crate::peers::{ClientCtx, Launch, Peer, Proto, Role, ServerCtx};

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Pass,
    Fail(String),
    /// The peer cannot do what the case asks (its own limitation).
    Unsupported(String),
    /// Failed, and fails the same way when the peer meets another
    /// implementation instead of ours: the peer's limitation, with that
    /// evidence (see `interop` bin, cross-check).
    PeerLimitation {
        ours: String,
        evidence: String,
    },
}

/// The result of one (case, server, client) run.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub case: &'static str,
    pub server: Peer,
    pub client: Peer,
    pub outcome: Outcome,
    /// The application protocol used (h3 where a peer lacks hq-interop).
    pub proto: Option<Proto>,
    pub elapsed: Duration,
    /// Measurements: goodput in kbit/s per repetition.
    pub goodput_kbps: Vec<f64>,
    /// Checks passed and other facts, for the log.
    pub notes: Vec<String>,
    pub dir: PathBuf,
}

/// Settings of a whole runner invocation.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The repository root (binaries, peer scripts).
    pub root: PathBuf,
    /// Where each run gets its directory.
    pub work: PathBuf,
    pub seed: u64,
    /// Keep the directories of passing runs too.
    pub keep: bool,
}

/// A started process that is stopped (by PID) when dropped.
struct Proc {
    child: Child,
}

impl Proc {
    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // SAFETY: kill() on the PID of a child we spawned and have not reaped.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let end = Instant::now() + Duration::from_secs(3);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits until the process exits or `deadline`; `None` on timeout.
    fn wait_until(&mut self, deadline: Instant) -> Option<std::process::ExitStatus> {
        loop {
            match self.child.try_wait() {
                Ok(Some(s)) => return Some(s),
                Ok(None) if Instant::now() >= deadline => return None,
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(_) => return None,
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A deterministic byte stream for file contents and names (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
    fn name(&mut self, len: usize) -> String {
        (0..len).map(|_| char::from(b'a' + (self.next() % 26) as u8)).collect()
    }
}

/// Writes the case's files into `www`; returns their names.
fn make_files(case: &Case, www: &Path, seed: u64) -> std::io::Result<Vec<String>> {
    std::fs::create_dir_all(www)?;
    let mut rng = Rng(seed ^ 0x5eed);
    let mut names = Vec::with_capacity(case.files.sizes.len());
    for &size in &case.files.sizes {
        let name = rng.name(case.files.name_len);
        let mut f = std::io::BufWriter::new(std::fs::File::create(www.join(&name))?);
        let mut left = size;
        let mut buf = vec![0u8; 64 * 1024];
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            rng.fill(&mut buf[..n]);
            f.write_all(&buf[..n])?;
            left -= n as u64;
        }
        f.flush()?;
        names.push(name);
    }
    Ok(names)
}

/// A UDP port nobody is bound to right now on `ip`.
fn free_port(ip: std::net::IpAddr) -> std::io::Result<u16> {
    let s = UdpSocket::bind(SocketAddr::new(ip, 0))?;
    Ok(s.local_addr()?.port())
}

/// Whether some socket is bound to UDP `port` (from /proc/net/udp{,6}).
fn udp_bound(port: u16) -> bool {
    let want = format!(":{port:04X} ");
    ["/proc/net/udp", "/proc/net/udp6"].iter().any(|p| {
        std::fs::read_to_string(p).is_ok_and(|t| t.lines().skip(1).any(|l| l.split_whitespace().nth(1).is_some_and(|a| format!("{a} ").ends_with(&want))))
    })
}

/// The protocol two peers share for a case: h3 when the case says so,
/// else hq-interop if both speak it, else h3 (noted in the result).
fn choose_proto(case: &Case, server: Peer, client: Peer) -> Option<Proto> {
    let s = server.protocols(Role::Server);
    let c = client.protocols(Role::Client);
    let both = |p: Proto| s.contains(&p) && c.contains(&p);
    if case.http3 {
        return both(Proto::H3).then_some(Proto::H3);
    }
    if both(Proto::Hq) {
        Some(Proto::Hq)
    } else if both(Proto::H3) {
        Some(Proto::H3)
    } else {
        None
    }
}

fn last_lines(log: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// Compares the downloads with the originals: exactly the expected names,
/// byte for byte (the runner's "files" check).
fn check_files(www: &Path, downloads: &Path, names: &[String]) -> Result<(), String> {
    let mut got: Vec<String> =
        std::fs::read_dir(downloads).map_err(|e| e.to_string())?.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    got.sort();
    let mut want = names.to_vec();
    want.sort();
    if got != want {
        let missing = want.iter().filter(|n| !got.contains(n)).count();
        let extra = got.iter().filter(|n| !want.contains(n)).count();
        return Err(format!("downloads: {missing} missing, {extra} unexpected of {} files", want.len()));
    }
    for n in names {
        let a = std::fs::read(www.join(n)).map_err(|e| e.to_string())?;
        let b = std::fs::read(downloads.join(n)).map_err(|e| e.to_string())?;
        if a != b {
            return Err(format!("{}: {} bytes downloaded, {} expected, content differs", short(n), b.len(), a.len()));
        }
    }
    Ok(())
}

fn short(n: &str) -> String {
    if n.len() > 16 {
        format!("{}…", &n[..16])
    } else {
        n.to_string()
    }
}

/// Runs the client: one process, or a sequence of them sharing the time.
fn run_client(launch: Launch, deadline: Instant) -> Result<Option<i32>, String> {
    match launch {
        Launch::Unsupported(r) => Err(format!("unsupported: {r}")),
        Launch::Started(child) => {
            let mut p = Proc { child };
            match p.wait_until(deadline) {
                Some(s) => Ok(s.code()),
                None => Ok(None),
            }
        }
        Launch::Sequence(cmds) => {
            for mut cmd in cmds {
                let child = cmd.spawn().map_err(|e| e.to_string())?;
                let mut p = Proc { child };
                match p.wait_until(deadline) {
                    Some(s) if s.code() == Some(0) => continue,
                    Some(s) => return Ok(s.code()),
                    None => return Ok(None),
                }
            }
            Ok(Some(0))
        }
    }
}

/// Runs one case between `server` and `client`.
pub fn run_case(cfg: &RunConfig, case: &Case, server: Peer, client: Peer, rep: usize) -> CaseResult {
    let t0 = Instant::now();
    let dir = cfg.work.join(format!("{}-{}-{}{}", case.name, server.name(), client.name(), if rep > 0 { format!("-{rep}") } else { String::new() }));
    let mut res = CaseResult {
        case: case.name,
        server,
        client,
        outcome: Outcome::Pass,
        proto: None,
        elapsed: Duration::ZERO,
        goodput_kbps: Vec::new(),
        notes: Vec::new(),
        dir: dir.clone(),
    };
    let outcome = run_inner(cfg, case, server, client, &dir, &mut res);
    res.outcome = outcome;
    res.elapsed = t0.elapsed();
    if res.outcome == Outcome::Pass && !cfg.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    res
}

fn run_inner(cfg: &RunConfig, case: &Case, server: Peer, client: Peer, dir: &Path, res: &mut CaseResult) -> Outcome {
    if let Some(why) = server.missing_role(Role::Server).or(client.missing_role(Role::Client)) {
        return Outcome::Unsupported(why.to_string());
    }
    let Some(proto) = choose_proto(case, server, client) else {
        return Outcome::Unsupported(format!(
            "no common application protocol ({} server: {:?}, {} client: {:?})",
            server.name(),
            server.protocols(Role::Server),
            client.name(),
            client.protocols(Role::Client)
        ));
    };
    res.proto = Some(proto);
    for (p, role) in [(server, "server"), (client, "client")] {
        if let Err(e) = p.available(&cfg.root) {
            return Outcome::Unsupported(format!("{role} {}: {e}", p.name()));
        }
    }
    let _ = std::fs::remove_dir_all(dir);
    let sub = |n: &str| dir.join(n);
    for d in ["www", "downloads", "certs", "qlog-server", "qlog-client", "server", "client"] {
        if let Err(e) = std::fs::create_dir_all(sub(d)) {
            return Outcome::Fail(format!("setup: {e}"));
        }
    }
    let mut names = match make_files(case, &sub("www"), cfg.seed) {
        Ok(n) => n,
        Err(e) => return Outcome::Fail(format!("setup: {e}")),
    };
    let chromium = client == Peer::Chromium;
    const MARKER: &str = "quicpro interop page";
    if chromium {
        // Chromium loads one page; the DOM it renders is the download.
        let page = format!("<!doctype html><html><head><title>interop</title></head><body><p id=\"m\">{MARKER}</p></body></html>\n");
        if let Err(e) = std::fs::write(sub("www").join("index.html"), page) {
            return Outcome::Fail(format!("setup: {e}"));
        }
        names = vec!["index.html".into()];
    }
    if let Err(e) = crate::certs::write(&sub("certs"), case.chain_len, case.big_leaf) {
        return Outcome::Fail(format!("setup: {e}"));
    }
    let ip: std::net::IpAddr = if case.ipv6 { "::1".parse().unwrap_or(std::net::Ipv6Addr::LOCALHOST.into()) } else { std::net::Ipv4Addr::LOCALHOST.into() };
    let Ok(server_port) = free_port(ip) else { return Outcome::Fail("no free port".into()) };
    let server_addr = SocketAddr::new(ip, server_port);
    // connectionmigration: a second relay address stands for the server's
    // preferred address, so the move crosses the relay (and its traces).
    let preferred = if case.server_testcase == "connectionmigration" {
        let Ok(p) = free_port(ip) else { return Outcome::Fail("no free port".into()) };
        Some(SocketAddr::new(ip, p))
    } else {
        None
    };
    let sctx = ServerCtx {
        preferred_address: preferred,
        testcase: case.server_testcase.to_string(),
        listen: server_addr,
        www: sub("www"),
        certs: sub("certs"),
        keylog: sub("server-keys.log"),
        qlog_dir: sub("qlog-server"),
        work: sub("server"),
        log: sub("server.log"),
        proto,
    };
    let mut server_proc = match server.start_server(&cfg.root, &sctx) {
        Ok(Launch::Started(c)) => Proc { child: c },
        Ok(Launch::Unsupported(r)) => return Outcome::Unsupported(format!("{} server: {r}", server.name())),
        Ok(Launch::Sequence(_)) => return Outcome::Fail("a server cannot be a sequence".into()),
        Err(e) => return Outcome::Fail(format!("{} server: {e}", server.name())),
    };
    let ready_by = Instant::now() + Duration::from_secs(15);
    while !udp_bound(server_port) {
        if Instant::now() > ready_by {
            return Outcome::Fail(format!("{} server did not bind UDP {server_port}: {}", server.name(), last_lines(&sctx.log, 3)));
        }
        if let Ok(Some(st)) = server_proc.child.try_wait() {
            return if st.code() == Some(127) {
                Outcome::Unsupported(format!("{} server: {}", server.name(), last_lines(&sctx.log, 1)))
            } else {
                Outcome::Fail(format!("{} server exited ({st}): {}", server.name(), last_lines(&sctx.log, 3)))
            };
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let relay =
        match crate::relay_glue::start(case, cfg.seed, SocketAddr::new(ip, 0), preferred, server_addr, &sub("trace-client.pcap"), &sub("trace-server.pcap")) {
            Ok(r) => r,
            Err(e) => return Outcome::Fail(format!("relay: {e}")),
        };
    let front = relay.addr();
    let host = match front {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    };
    let urls: Vec<String> = names.iter().map(|n| format!("https://{host}:{}/{n}", front.port())).collect();
    let cctx = ClientCtx {
        case: case.name.to_string(),
        testcase: case.client_testcase.to_string(),
        urls,
        downloads: sub("downloads"),
        certs: sub("certs"),
        keylog: sub("client-keys.log"),
        qlog_dir: sub("qlog-client"),
        work: sub("client"),
        log: sub("client.log"),
        proto,
    };
    let launch = match client.start_client(&cfg.root, &cctx) {
        Ok(l) => l,
        Err(e) => return Outcome::Fail(format!("{} client: {e}", client.name())),
    };
    let started = Instant::now();
    // crosstraffic: a competing download shares the bottleneck the whole
    // time (the runner uses TCP CUBIC through iperf; ours is a second QUIC
    // flow, our client with CUBIC, fetching the same file over and over).
    let stop_cross = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cross = (case.name == "crosstraffic").then(|| {
        let stop = stop_cross.clone();
        let bin = crate::peers::quicpro_bin(&cfg.root);
        let url = cctx.urls[0].clone();
        let out = sub("client").join("cross.bin");
        let hq = proto == Proto::Hq;
        std::thread::spawn(move || {
            let Ok(bin) = bin else { return 0u32 };
            // Competing connections started (each one handshake).
            let mut runs = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut cmd = Command::new(&bin);
                cmd.args(["get", "-k", "--timeout", "120", "-o"]).arg(&out);
                if hq {
                    cmd.arg("--hq");
                }
                cmd.arg(&url).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
                let Ok(child) = cmd.spawn() else { return runs };
                runs += 1;
                let mut p = Proc { child };
                while p.child.try_wait().ok().flatten().is_none() {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        p.stop();
                        return runs;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            runs
        })
    });
    let code = run_client(launch, started + case.timeout);
    let client_time = started.elapsed();
    stop_cross.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut competing = 0usize;
    if let Some(t) = cross {
        competing = t.join().unwrap_or(0) as usize;
        res.notes.push(format!("competing downloads started during the measurement: {competing}"));
    }
    let stats = relay.stop();
    res.notes.push(format!("relay: {stats}"));
    server_proc.stop();
    let code = match code {
        Err(r) => return Outcome::Unsupported(format!("{} client: {}", client.name(), r.trim_start_matches("unsupported: "))),
        Ok(c) => c,
    };
    match code {
        None => return Outcome::Fail(format!("client timed out after {:?}: {}", case.timeout, last_lines(&cctx.log, 2))),
        Some(127) => return Outcome::Unsupported(format!("{} client: {}", client.name(), last_lines(&cctx.log, 1))),
        Some(0) => {}
        Some(c) => return Outcome::Fail(format!("client exited with {c}: {}", last_lines(&cctx.log, 2))),
    }
    if chromium {
        let dom = std::fs::read_to_string(sub("downloads").join("dom.html")).unwrap_or_default();
        if !dom.contains(MARKER) {
            return Outcome::Fail(format!("Chromium's DOM lacks the page text ({} bytes of DOM)", dom.len()));
        }
        res.notes.push("Chromium rendered the page (DOM contains its text)".into());
    } else if let Err(e) = check_files(&sub("www"), &sub("downloads"), &names) {
        return Outcome::Fail(e);
    }
    // One key log for the analyzer: the client's and the server's lines.
    let keylog = sub("keys.log");
    let mut all = std::fs::read(&sctx.keylog).unwrap_or_default();
    all.extend(std::fs::read(&cctx.keylog).unwrap_or_default());
    let have_keys = !all.is_empty() && std::fs::write(&keylog, &all).is_ok();
    // The competing downloads of crosstraffic are handshakes too (the last
    // one may have been stopped before its handshake).
    let expected = if chromium { 1 } else { case.expected_handshakes() + competing };
    match crate::judge::judge(case, &sub("trace-client.pcap"), &sub("trace-server.pcap"), have_keys.then_some(keylog.as_path()), expected, competing) {
        crate::judge::Judgement::Pass { notes, goodput_kbps } => {
            res.notes.extend(notes);
            let kbps = goodput_kbps.unwrap_or_else(|| case.files.sizes.iter().sum::<u64>() as f64 * 8.0 / 1000.0 / client_time.as_secs_f64());
            if case.repetitions > 1 {
                res.goodput_kbps.push(kbps);
            }
            Outcome::Pass
        }
        crate::judge::Judgement::Fail(r) => Outcome::Fail(r),
        crate::judge::Judgement::Unsupported(r) => Outcome::Unsupported(r),
    }
}

/// The connection plan a case implies, for reports.
pub fn plan_name(p: ConnectionPlan) -> &'static str {
    match p {
        ConnectionPlan::One => "one connection",
        ConnectionPlan::PerRequest => "a connection per file",
        ConnectionPlan::FirstThenRest => "resumed second connection",
    }
}

/// Builds the release binaries the runner starts (ours; the quiche peer
/// when asked).
pub fn build(root: &Path, quiche: bool) -> Result<(), String> {
    let st = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args(["build", "--release", "-p", "quicpro-cli"])
        .status()
        .map_err(|e| e.to_string())?;
    if !st.success() {
        return Err("cargo build --release -p quicpro-cli failed".into());
    }
    if quiche {
        let st = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root)
            .args(["build", "--release", "--manifest-path", "interop/peers/quiche-peer/Cargo.toml"])
            .status()
            .map_err(|e| e.to_string())?;
        if !st.success() {
            return Err("building the quiche peer failed".into());
        }
    }
    Ok(())
}
