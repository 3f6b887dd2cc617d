//! `load`: end-to-end HTTP/3 load benchmark — quicpro against quinn + h3,
//! and PHP on quicpro against Caddy + PHP-FPM.
//!
//! ```text
//! cargo run --release -p quicpro-benches --bin load -- [--quick]
//!     [--servers epoll,io_uring,busy_poll,quinn,php,php-demo,caddy-fpm]
//!     [--phases bulk,rps,hs,lat,idle,idlerps,soak] [--target ADDR]
//! cargo run --release -p quicpro-benches --bin load -- --help
//! ```
//!
//! Each server runs in its own process(es) pinned to CPU 0 (`quicpro serve
//! --backend X`, this binary with `--serve-quinn`, the PHP servers, Caddy
//! and its PHP-FPM pool); the generator (see `gen`) runs here pinned to
//! CPU 1. Every phase starts a fresh server and has a time limit:
//!
//! 1. bulk: one connection, `GET /bytes/<1 GiB>`, goodput of verified bytes;
//! 2. rps: 16 connections × 100 concurrent `GET /bytes/1024`, closed loop;
//! 3. hs: new connections, each a full handshake (no resumption) plus one
//!    `GET /bytes/1024`, then closed; 32 in progress at once;
//! 4. lat: open loop at half of phase 2's rate over 16 connections; latency
//!    from the request's scheduled time to its last byte (so queueing in
//!    the generator counts against the server, not hidden);
//! 5. idle: server RSS growth over N idle connections (10,000), / N;
//! 6. idlerps: phase 2 with 10 and then 10,000 idle connections held open
//!    (each after one request): does the rate depend on what is held?
//! 7. soak: 50,000 connections cycled (connect, 2 requests, close); server
//!    RSS after the first 5,000 and at the end.
//!
//! `--quick` shrinks everything to a few seconds per phase (smoke test).
//! `--target ADDR` drives an already running server instead (profiling);
//! the memory phases then need `--target-pid`.

mod gen;
mod pattern;
mod quinn_server;
mod servers;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use io_backends::runtime::H3Handle;
use io_backends::select::BackendConfig;

use gen::Generator;

/// The generator allocates per response like the server does; mimalloc
/// keeps that off its critical path (the server uses it too).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use servers::{ServerKind, ServerProcess};

#[derive(Debug, Clone)]
struct Params {
    bulk_bytes: u64,
    bulk_limit: Duration,
    warmup: Duration,
    measure: Duration,
    rps_conns: usize,
    rps_streams: usize,
    hs_window: usize,
    idle_conns: usize,
    idle_limit: Duration,
    soak_conns: usize,
    phases: Vec<String>,
    gen_backend: BackendConfig,
    /// `--lat-rate`: the latency phase's offered rate, if not half of peak.
    lat_rate: Option<f64>,
}

#[derive(Debug, Default, Clone)]
struct Row {
    label: String,
    bulk: Option<f64>,
    bulk_nogso: Option<f64>,
    /// Mean size of the server's packets in the bulk phase, bytes.
    bulk_packet: Option<f64>,
    rps: Option<f64>,
    hs: Option<f64>,
    p50: Option<f64>,
    p99: Option<f64>,
    lat_rate: Option<f64>,
    /// Generator turns longer than 1 ms while the latency phase measured:
    /// requests due then waited for the generator, whatever the server did.
    lat_stalls: Option<f64>,
    mem: Option<f64>,
    /// Requests/s with 10 and with many idle connections held.
    rps_idle: Option<(f64, f64)>,
    /// Soak: server RSS (KiB) after the first tenth and at the end, and
    /// the connections cycled.
    soak: Option<(u64, u64, usize)>,
    /// Server CPU use (fraction of one core) per phase.
    cpu: Vec<(String, CpuUse)>,
    failures: u64,
    notes: Vec<String>,
    /// On a row that is the median of several runs: the median of each
    /// phase's per-CPU figure (the ratio of two medians would not be one).
    per_cpu_median: Vec<(String, f64)>,
}

impl Row {
    /// `value` (a rate over wall time) divided by the server's share of a
    /// core in that phase: the rate per second of server CPU.
    fn per_cpu(&self, phase: &str, value: Option<f64>) -> Option<f64> {
        if let Some((_, v)) = self.per_cpu_median.iter().find(|(n, _)| n == phase) {
            return Some(*v);
        }
        let c = self.cpu.iter().find(|(n, _)| n == phase)?.1;
        let v = value?;
        (c.server.is_finite() && c.server > 0.0).then(|| v / c.server)
    }

    /// Whether the generator used more than [`GENERATOR_LIMIT`] of its core
    /// in `phase`: the phase's wall-clock figure is then (at least partly)
    /// the generator's limit, not the server's.
    fn generator_bound(&self, phase: &str) -> bool {
        if phase == "lat" {
            // The latency generator spins on its core by design (sleeping
            // would add timer slack to every latency), so its CPU share
            // says nothing there; its own long turns do.
            return self.lat_stalls.is_some_and(|n| n > 0.0);
        }
        self.cpu.iter().any(|(n, c)| n == phase && c.generator > GENERATOR_LIMIT)
    }
}

/// Generator CPU share above which a wall-clock figure is marked.
const GENERATOR_LIMIT: f64 = 0.90;

/// Where the server is, and the processes when we started them (killed
/// when the target is dropped).
struct Target {
    addr: SocketAddr,
    _proc: Option<ServerProcess>,
    /// Processes whose trees are the server (CPU and memory).
    pids: Vec<u32>,
    /// Check bodies against the pattern (else status only).
    pattern: bool,
}

impl Target {
    fn cpu(&self) -> Option<f64> {
        (!self.pids.is_empty()).then(|| servers::tree_cpu_seconds(&self.pids)).flatten()
    }
    fn rss(&self) -> Option<u64> {
        (!self.pids.is_empty()).then(|| servers::tree_rss(&self.pids)).flatten()
    }
    fn generator(&self, p: &Params) -> Result<Generator, String> {
        let mut g = Generator::new(self.addr, p.gen_backend.clone())?;
        g.verify_pattern = self.pattern;
        Ok(g)
    }
}

/// The servers `--servers` can name.
const SERVER_NAMES: [&str; 7] = ["epoll", "io_uring", "busy_poll", "quinn", "php", "php-demo", "caddy-fpm"];

#[derive(Debug, clap::Parser)]
#[command(name = "load", about = "HTTP/3 load benchmark: quicpro against quinn+h3, PHP on quicpro against Caddy+PHP-FPM (every response verified)")]
struct Cli {
    /// A few seconds per phase (smoke test).
    #[arg(long)]
    quick: bool,
    /// Servers to measure, in order: epoll, io_uring, busy_poll (quicpro
    /// serve with that backend), quinn, php (the keep-alive PHP server on
    /// the extension), php-demo (the seed demo, one worker), caddy-fpm.
    #[arg(long, value_delimiter = ',', default_value = "epoll,io_uring,busy_poll,quinn")]
    servers: Vec<String>,
    /// Deprecated spelling of the quicpro part of --servers.
    #[arg(long, value_delimiter = ',')]
    backends: Option<Vec<String>>,
    /// Leave quinn out (with --backends).
    #[arg(long)]
    no_quinn: bool,
    /// Phases: bulk, rps, hs, lat, idle, idlerps, soak.
    #[arg(long, value_delimiter = ',', default_value = "bulk,rps,hs,lat,idle")]
    phases: Vec<String>,
    /// Drive a server already running at this address instead.
    #[arg(long)]
    target: Option<SocketAddr>,
    /// With --target: the server's PID (CPU and memory figures).
    #[arg(long)]
    target_pid: Option<u32>,
    /// With --target: responses are not the /bytes pattern (check status only).
    #[arg(long)]
    target_any_body: bool,
    /// The generator's backend: epoll or io_uring.
    #[arg(long, default_value = "epoll")]
    gen_backend: String,
    /// Pin the largest UDP payload of every server and the generator (1200:
    /// no path MTU discovery anywhere), for a comparison at equal packet
    /// size. Unset: each side's default (ours discovers up to 1472, quinn
    /// up to 1452).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1200..=65527))]
    max_udp_payload: Option<u16>,
    /// Run every server this many times, taking turns, and report the
    /// median of each figure: on a shared machine single runs differ by
    /// tens of percent.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=20))]
    repeat: u64,
    /// Offer this many requests/s in the latency phase instead of half of
    /// the server's measured peak (to compare servers at the same rate, or
    /// to trace the latency curve); the peak is then measured only if `rps`
    /// is among the phases.
    #[arg(long)]
    lat_rate: Option<f64>,
    /// Internal: run the quinn server (CERT.der KEY.der gso|no-gso).
    #[arg(long, hide = true, num_args = 3, value_names = ["CERT", "KEY", "GSO"])]
    serve_quinn: Option<Vec<String>>,
}

fn main() {
    use clap::Parser;
    let cli = Cli::parse();
    if let Some(a) = &cli.serve_quinn {
        let read = |i: usize| a.get(i).and_then(|p| std::fs::read(p).ok()).unwrap_or_default();
        let q = quinn_server::QuinnArgs { cert_der: read(0), key_der: read(1), gso: a.get(2).map(String::as_str) != Some("no-gso") };
        if let Err(e) = quinn_server::run(q) {
            eprintln!("quinn server: {e}");
            std::process::exit(1);
        }
        return;
    }
    if let Err(e) = run(&cli) {
        eprintln!("load: {e}");
        std::process::exit(1);
    }
}

fn run(cli: &Cli) -> Result<(), String> {
    let quick = cli.quick;
    if let Some(n) = cli.max_udp_payload {
        let _ = servers::MAX_UDP_PAYLOAD.set(n);
    }
    for ph in &cli.phases {
        if !["bulk", "rps", "hs", "lat", "idle", "idlerps", "soak"].contains(&ph.as_str()) {
            return Err(format!("unknown phase {ph:?} (bulk, rps, hs, lat, idle, idlerps, soak)"));
        }
    }
    let mut names: Vec<String> = cli.servers.clone();
    if let Some(b) = &cli.backends {
        names = b.clone();
        if !cli.no_quinn {
            names.push("quinn".into());
        }
    } else if cli.no_quinn {
        names.retain(|n| n != "quinn");
    }
    for n in &names {
        if !SERVER_NAMES.contains(&n.as_str()) {
            return Err(format!("unknown server {n:?} ({})", SERVER_NAMES.join(", ")));
        }
    }
    let gen_backend = BackendConfig {
        forced: Some(match cli.gen_backend.as_str() {
            "io_uring" => io_backends::BackendKind::IoUring,
            "epoll" => io_backends::BackendKind::Epoll,
            other => return Err(format!("--gen-backend {other:?}: epoll or io_uring")),
        }),
        ..BackendConfig::default()
    };
    let p = Params {
        bulk_bytes: if quick { 128 << 20 } else { 1 << 30 },
        bulk_limit: Duration::from_secs(if quick { 10 } else { 30 }),
        warmup: Duration::from_millis(if quick { 300 } else { 1000 }),
        measure: Duration::from_secs(if quick { 2 } else { 5 }),
        rps_conns: 16,
        rps_streams: 100,
        hs_window: 32,
        idle_conns: if quick { 1000 } else { 10_000 },
        idle_limit: Duration::from_secs(if quick { 15 } else { 60 }),
        soak_conns: if quick { 5_000 } else { 50_000 },
        phases: cli.phases.clone(),
        gen_backend,
        lat_rate: cli.lat_rate,
    };
    servers::pin_to_cpu(1).map_err(|e| format!("pin generator to CPU 1: {e}"))?;

    if let Some(addr) = cli.target {
        let mut row = Row { label: format!("server at {addr}"), ..Row::default() };
        let pids: Vec<u32> = cli.target_pid.into_iter().collect();
        let pattern = !cli.target_any_body;
        let mut start = || Ok(Target { addr, _proc: None, pids: pids.clone(), pattern });
        run_phases(&p, &mut row, &mut start, &|_| true)?;
        print_table(&[row], None);
        return Ok(());
    }

    servers::build_quicpro();
    let dir = std::env::temp_dir().join(format!("quicpro-load-{}", std::process::id()));
    let files = servers::write_certs(&dir)?;
    let kinds: Vec<ServerKind> = names
        .iter()
        .map(|n| match n.as_str() {
            "quinn" => ServerKind::Quinn { gso: true },
            "php" => ServerKind::PhpKeepAlive,
            "php-demo" => ServerKind::PhpDemo,
            "caddy-fpm" => ServerKind::CaddyFpm,
            b => ServerKind::Ours { backend: SERVER_NAMES.iter().find(|x| **x == b).copied().unwrap_or("epoll"), gso: true },
        })
        .collect();
    let first_ours = kinds.iter().find_map(|k| if let ServerKind::Ours { backend, .. } = k { Some(*backend) } else { None });
    let mut runs: Vec<Vec<Row>> = vec![Vec::new(); kinds.len()];
    for rep in 0..cli.repeat {
        if cli.repeat > 1 {
            eprintln!("=== run {} of {}", rep + 1, cli.repeat);
        }
        for (i, kind) in kinds.iter().enumerate() {
            runs[i].push(run_server(&p, kind, &files, first_ours)?);
        }
    }
    let mut rows: Vec<Row> = runs.iter().map(|r| median_row(r)).collect();
    if cli.repeat > 1 {
        println!("(each figure: the median of {} runs, the servers taking turns)", cli.repeat);
    }
    let _ = std::fs::remove_dir_all(&dir);

    // Ratios against quinn when it ran; in a PHP comparison, against
    // `quicpro serve` (the target the PHP path is measured against).
    let php = kinds.iter().any(|k| matches!(k, ServerKind::PhpKeepAlive | ServerKind::PhpDemo | ServerKind::CaddyFpm));
    let reference = if php { rows.iter().position(|r| r.label.starts_with("quicpro")) } else { rows.iter().position(|r| r.label.starts_with("quinn")) };
    let reference = reference.map(|i| rows.remove(i));
    print_table(&rows, reference.as_ref());
    if let (Some(php), Some(caddy)) = (rows.iter().find(|r| r.label == "PHP keep-alive"), rows.iter().find(|r| r.label == "Caddy+PHP-FPM")) {
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
            _ => "-".into(),
        };
        println!(
            "PHP keep-alive / Caddy+PHP-FPM: requests/s {}, handshakes/s {}, p99 {} (lower is better)",
            ratio(php.rps, caddy.rps),
            ratio(php.hs, caddy.hs),
            ratio(php.p99, caddy.p99)
        );
    }
    Ok(())
}

/// Every phase against one server (fresh processes per phase), plus bulk
/// without GSO on the first server of ours and on quinn.
fn run_server(p: &Params, kind: &ServerKind, files: &servers::Files, first_ours: Option<&'static str>) -> Result<Row, String> {
    eprintln!("== {}", kind.label());
    let mut row = Row { label: kind.label(), ..Row::default() };
    let mut start = || {
        let s = ServerProcess::start(kind, files, 0)?;
        Ok(Target { addr: s.addr, pids: s.pids(), pattern: kind.serves_pattern(), _proc: Some(s) })
    };
    if let Err(e) = run_phases(p, &mut row, &mut start, &|ph| kind.supports(ph)) {
        row.notes.push(e);
    }
    // Bulk without GSO, on the first backend of ours and on quinn.
    let nogso = match kind {
        ServerKind::Ours { backend, .. } if Some(*backend) == first_ours => Some(ServerKind::Ours { backend, gso: false }),
        ServerKind::Quinn { .. } => Some(ServerKind::Quinn { gso: false }),
        _ => None,
    };
    if let (Some(k), true) = (nogso, p.phases.iter().any(|x| x == "bulk")) {
        eprintln!("== {}", k.label());
        let s = ServerProcess::start(&k, files, 0)?;
        let t = Target { addr: s.addr, pids: s.pids(), pattern: true, _proc: Some(s) };
        match bulk(p, &t) {
            Ok(b) => {
                row.bulk_nogso = Some(b.mbps);
                row.cpu.push(("bulk-nogso".into(), b.cpu));
            }
            Err(e) => row.notes.push(format!("bulk without GSO: {e}")),
        }
    }
    Ok(row)
}

/// The median of each figure over runs of one server (a shared machine
/// varies by tens of percent from run to run; a single run's ratio says
/// little). Per-CPU figures are the medians of each run's own figure.
fn median_row(runs: &[Row]) -> Row {
    if runs.len() == 1 {
        return runs[0].clone();
    }
    let med = |get: &dyn Fn(&Row) -> Option<f64>| -> Option<f64> {
        let mut v: Vec<f64> = runs.iter().filter_map(get).filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => None,
            n if n % 2 == 1 => Some(v[n / 2]),
            n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
        }
    };
    let mut r = Row { label: runs[0].label.clone(), ..Row::default() };
    r.bulk = med(&|x| x.bulk);
    r.bulk_nogso = med(&|x| x.bulk_nogso);
    r.bulk_packet = med(&|x| x.bulk_packet);
    r.rps = med(&|x| x.rps);
    r.hs = med(&|x| x.hs);
    r.p50 = med(&|x| x.p50);
    r.p99 = med(&|x| x.p99);
    r.lat_rate = med(&|x| x.lat_rate);
    r.lat_stalls = med(&|x| x.lat_stalls);
    r.mem = med(&|x| x.mem);
    r.rps_idle = med(&|x| x.rps_idle.map(|v| v.0)).zip(med(&|x| x.rps_idle.map(|v| v.1)));
    r.soak = runs.iter().find_map(|x| x.soak);
    let mut phases: Vec<String> = Vec::new();
    for x in runs {
        for (n, _) in &x.cpu {
            if !phases.contains(n) {
                phases.push(n.clone());
            }
        }
    }
    for ph in phases {
        let share = |f: fn(&CpuUse) -> f64| med(&|x: &Row| x.cpu.iter().find(|(n, _)| *n == ph).map(|(_, c)| f(c)));
        let cpu = CpuUse {
            server: share(|c| c.server).unwrap_or(f64::NAN),
            generator: share(|c| c.generator).unwrap_or(f64::NAN),
            server_secs: share(|c| c.server_secs).unwrap_or(f64::NAN),
        };
        r.cpu.push((ph.clone(), cpu));
    }
    for (ph, get) in [("bulk", (|x: &Row| x.bulk) as fn(&Row) -> Option<f64>), ("rps", |x: &Row| x.rps), ("hs", |x: &Row| x.hs)] {
        if let Some(v) = med(&|x| x.per_cpu(ph, get(x))) {
            r.per_cpu_median.push((ph.to_string(), v));
        }
    }
    r.failures = runs.iter().map(|x| x.failures).sum();
    for (i, x) in runs.iter().enumerate() {
        r.notes.extend(x.notes.iter().map(|n| format!("run {}: {n}", i + 1)));
    }
    r
}

fn run_phases(p: &Params, row: &mut Row, start: &mut dyn FnMut() -> Result<Target, String>, supports: &dyn Fn(&str) -> bool) -> Result<(), String> {
    let has = |n: &str| p.phases.iter().any(|x| x == n) && supports(n);
    if has("bulk") {
        match bulk(p, &start()?) {
            Ok(b) => {
                row.bulk = Some(b.mbps);
                row.bulk_packet = b.packet;
                row.cpu.push(("bulk".into(), b.cpu));
            }
            Err(e) => row.notes.push(format!("bulk: {e}")),
        }
    }
    // The latency phase needs the peak only to offer half of it.
    if has("rps") || (has("lat") && p.lat_rate.is_none()) {
        let t = start()?;
        match rps(p, &t) {
            Ok((r, cpu, f)) => {
                row.rps = Some(r);
                row.cpu.push(("rps".into(), cpu));
                row.failures += f;
            }
            Err(e) => row.notes.push(format!("rps: {e}")),
        }
    }
    if has("hs") {
        match handshakes(p, &start()?) {
            Ok((r, cpu, f)) => {
                row.hs = Some(r);
                row.cpu.push(("hs".into(), cpu));
                row.failures += f;
            }
            Err(e) => row.notes.push(format!("handshakes: {e}")),
        }
    }
    if has("lat") {
        if let Some(rate) = p.lat_rate.or(row.rps.map(|peak| peak / 2.0)) {
            match latency(p, &start()?, rate) {
                Ok((p50, p99, achieved, cpu, f, stalls)) => {
                    row.p50 = Some(p50);
                    row.p99 = Some(p99);
                    row.lat_rate = Some(achieved);
                    row.lat_stalls = Some(f64::from(stalls));
                    row.cpu.push(("lat".into(), cpu));
                    row.failures += f;
                }
                Err(e) => row.notes.push(format!("latency: {e}")),
            }
        }
    }
    if has("idle") {
        match idle(p, &start()?) {
            Ok(m) => row.mem = Some(m),
            Err(e) => row.notes.push(format!("idle: {e}")),
        }
    }
    if has("idlerps") {
        match idle_rps(p, &start()?) {
            Ok((r10, r_many, f)) => {
                row.rps_idle = Some((r10, r_many));
                row.failures += f;
            }
            Err(e) => row.notes.push(format!("idlerps: {e}")),
        }
    }
    if has("soak") {
        match soak(p, &start()?) {
            Ok(m) => row.soak = Some(m),
            Err(e) => row.notes.push(format!("soak: {e}")),
        }
    }
    Ok(())
}

/// Phase 6: 1 KB requests/s with 10 idle connections held open, then with
/// `idle_conns` (each did one request first, so a session server holds a
/// session, and a PHP server a Fiber, for each). Closed loop on 16 active
/// connections as in phase 2, with 10 streams each.
fn idle_rps(p: &Params, t: &Target) -> Result<(f64, f64, u64), String> {
    let mut g = t.generator(p)?;
    let mut failures = 0;
    let measure = |g: &mut Generator, label: &str| -> Result<f64, String> {
        let n = g.open_connections(p.rps_conns, p.rps_conns, Instant::now() + Duration::from_secs(10))?;
        if n != p.rps_conns {
            return Err(format!("only {n} of {} active connections", p.rps_conns));
        }
        let conns: Vec<H3Handle> = g.connected.split_off(g.connected.len() - p.rps_conns);
        let mut owed: HashMap<H3Handle, usize> = conns.iter().map(|h| (*h, 10)).collect();
        let start = Instant::now();
        let (m0, m1) = (start + p.warmup, start + p.warmup + p.measure);
        let mut counted = 0u64;
        while Instant::now() < m1 {
            for (h, k) in owed.iter_mut() {
                while *k > 0 && g.get(*h, 1024, Instant::now()) {
                    *k -= 1;
                }
            }
            g.step(Duration::from_millis(1))?;
            for d in g.take_done().collect::<Vec<_>>() {
                if d.ok && d.t1 >= m0 && d.t1 < m1 {
                    counted += 1;
                }
                if let Some(k) = owed.get_mut(&d.conn) {
                    *k += 1;
                }
            }
            check_failures(g, "idlerps")?;
        }
        // Let the requests still open finish before closing: a close with
        // requests open fails them (and the generator counts each).
        let drain_end = Instant::now() + Duration::from_secs(5);
        while g.in_flight() > 0 && Instant::now() < drain_end {
            g.step(Duration::from_millis(1))?;
            let _ = g.take_done().count();
        }
        for h in conns {
            g.close(h);
        }
        let r = counted as f64 / p.measure.as_secs_f64();
        eprintln!("  idlerps: {r:.0} req/s with {label} idle connections");
        Ok(r)
    };
    let hold = |g: &mut Generator, n: usize| -> Result<(), String> {
        let up = g.open_connections(n, 64, Instant::now() + p.idle_limit)?;
        if up < n {
            eprintln!("  idlerps: {up} of {n} idle connections came up; ended: {:?}", g.lost_reasons);
            // A handful short of the count does not change what is
            // measured (requests/s with ~n sessions held); more does.
            if up < n - n / 100 {
                return Err(format!("only {up} of {n} idle connections came up ({:?})", g.lost_reasons));
            }
        }
        // One request each, so the server holds a session for it.
        let idle: Vec<H3Handle> = g.connected.drain(..).collect();
        for h in &idle {
            g.get(*h, 16, Instant::now());
        }
        let end = Instant::now() + p.idle_limit;
        while g.in_flight() > 0 && Instant::now() < end {
            g.step(Duration::from_millis(1))?;
            let _ = g.take_done().count();
        }
        Ok(())
    };
    hold(&mut g, 10)?;
    let r10 = measure(&mut g, "10")?;
    hold(&mut g, p.idle_conns.saturating_sub(10))?;
    let many = measure(&mut g, &p.idle_conns.to_string())?;
    failures += g.failures;
    Ok((r10, many, failures))
}

/// Phase 7: `soak_conns` connections cycled through the server (connect,
/// two 1 KB requests, close), 32 at a time. Server RSS after the first
/// tenth and at the end (KiB).
fn soak(p: &Params, t: &Target) -> Result<(u64, u64, usize), String> {
    let mut g = t.generator(p)?;
    let first = p.soak_conns / 10;
    let mut done_conns = 0usize;
    let mut active: HashMap<H3Handle, u8> = HashMap::new();
    let mut rss_first = None;
    let end = Instant::now() + Duration::from_secs(if p.soak_conns > 10_000 { 600 } else { 120 });
    let mut started = 0usize;
    let (mut last_done, mut last_progress) = (0usize, Instant::now());
    // Connections whose handshake is still under way count towards the 32
    // (without them the loop started every connection at once), and one
    // that fails there counts as done, or the phase could never end.
    let mut handshaking: std::collections::HashSet<H3Handle> = std::collections::HashSet::new();
    let mut failed_handshakes = 0usize;
    while done_conns < p.soak_conns && Instant::now() < end {
        while active.len() + handshaking.len() + g.connected.len() < 32 && started < p.soak_conns {
            handshaking.insert(g.connect()?);
            started += 1;
        }
        g.step(Duration::from_millis(1))?;
        for h in &g.connected {
            handshaking.remove(h);
        }
        for h in g.connected.drain(..).collect::<Vec<_>>() {
            if g.get(h, 1024, Instant::now()) {
                active.insert(h, 1);
            } else {
                g.close(h);
                done_conns += 1;
            }
        }
        for d in g.take_done().collect::<Vec<_>>() {
            match active.get_mut(&d.conn) {
                Some(n) if *n < 2 && g.get(d.conn, 1024, Instant::now()) => *n += 1,
                _ => {
                    active.remove(&d.conn);
                    g.close(d.conn);
                    done_conns += 1;
                    if done_conns == first {
                        // Let closes settle before the baseline.
                        let settle = Instant::now() + Duration::from_millis(500);
                        while Instant::now() < settle {
                            g.step(Duration::from_millis(5))?;
                        }
                        rss_first = t.rss();
                    }
                }
            }
        }
        let lost = g.lost.len();
        if lost > 0 {
            for h in g.lost.drain(..) {
                if active.remove(&h).is_some() {
                    done_conns += 1;
                } else if handshaking.remove(&h) {
                    done_conns += 1;
                    failed_handshakes += 1;
                }
            }
        }
        check_failures(&g, "soak")?;
        if done_conns != last_done {
            last_done = done_conns;
            last_progress = Instant::now();
        } else if last_progress.elapsed() > Duration::from_secs(3) && std::env::var_os("QUICPRO_LOAD_DEBUG").is_some() {
            eprintln!("  soak stalled at {done_conns} done, {} active, {} connected, {} in flight:", active.len(), g.connected.len(), g.in_flight());
            for h in active.keys() {
                eprintln!("    {}", g.describe(*h));
            }
            last_progress = Instant::now();
        }
    }
    let settle = Instant::now() + Duration::from_secs(1);
    while Instant::now() < settle {
        g.step(Duration::from_millis(5))?;
    }
    let rss_end = t.rss().ok_or("no RSS for the server")?;
    let rss_first = rss_first.ok_or("no RSS after the first tenth")?;
    if failed_handshakes > 0 {
        return Err(format!("soak: {failed_handshakes} handshakes failed"));
    }
    eprintln!(
        "  soak: {done_conns} connections cycled; server RSS {} KiB after {first}, {} KiB at the end ({:+.1} %)",
        rss_first / 1024,
        rss_end / 1024,
        (rss_end as f64 / rss_first as f64 - 1.0) * 100.0
    );
    Ok((rss_first / 1024, rss_end / 1024, done_conns))
}

/// CPU time (user + system) of this process, the generator, in seconds.
fn self_cpu() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// CPU use of the server and of the generator over a measured window.
#[derive(Debug, Clone, Copy)]
struct Meter {
    server0: Option<f64>,
    gen0: f64,
    t0: Instant,
}

/// What a [`Meter`] saw: fractions of one core, and server CPU seconds.
#[derive(Debug, Clone, Copy, Default)]
struct CpuUse {
    server: f64,
    generator: f64,
    server_secs: f64,
}

impl Meter {
    fn start(t: &Target) -> Self {
        Meter { server0: t.cpu(), gen0: self_cpu(), t0: Instant::now() }
    }
    fn stop(&self, t: &Target) -> CpuUse {
        let wall = self.t0.elapsed().as_secs_f64().max(1e-9);
        let server_secs = match (self.server0, t.cpu()) {
            (Some(b), Some(a)) => a - b,
            _ => f64::NAN,
        };
        CpuUse { server: server_secs / wall, generator: (self_cpu() - self.gen0) / wall, server_secs }
    }
}

impl std::fmt::Display for CpuUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "server CPU {:.0} %, generator CPU {:.0} %", self.server * 100.0, self.generator * 100.0)
    }
}

fn check_failures(g: &Generator, what: &str) -> Result<(), String> {
    if g.failures > 0 {
        return Err(format!("{what}: {} failed responses: {:?}", g.failures, g.failure_notes));
    }
    Ok(())
}

/// Phase 1: one connection, one big verified response. MB/s (10^6).
/// A bulk download's result.
#[derive(Debug, Clone, Copy)]
struct BulkResult {
    mbps: f64,
    cpu: CpuUse,
    /// Mean size of the server's packets (see `Generator::received_packet_size`).
    packet: Option<f64>,
}

fn bulk(p: &Params, t: &Target) -> Result<BulkResult, String> {
    let mut g = t.generator(p)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    if g.open_connections(1, 1, deadline)? != 1 {
        return Err("handshake did not complete".into());
    }
    let h = g.connected[0];
    let meter = Meter::start(t);
    let t0 = Instant::now();
    if !g.get(h, p.bulk_bytes, t0) {
        return Err("request refused".into());
    }
    let end = t0 + p.bulk_limit;
    let mut got = None;
    while got.is_none() && Instant::now() < end {
        g.step(Duration::from_millis(5))?;
        if let Some(d) = g.take_done().next() {
            got = Some(d);
        }
        check_failures(&g, "bulk")?;
    }
    let cpu = meter.stop(t);
    let packet = g.received_packet_size(h);
    match got {
        Some(d) if d.ok => {
            let secs = (d.t1 - d.t0).as_secs_f64();
            let mbps = d.bytes as f64 / 1e6 / secs;
            eprintln!(
                "  bulk: {} bytes verified in {secs:.2} s = {mbps:.0} MB/s ({cpu}; {:.0} MB per server CPU-second; server packets {} B on average)",
                d.bytes,
                d.bytes as f64 / 1e6 / cpu.server_secs,
                packet.map_or("?".into(), |p| format!("{p:.0}"))
            );
            Ok(BulkResult { mbps, cpu, packet })
        }
        Some(_) => Err(format!("response failed verification: {:?}", g.failure_notes)),
        None => Err(format!("not done within {:?} ({} bytes so far)", p.bulk_limit, g.pending_bytes())),
    }
}

/// Phase 2: closed loop, `rps_conns` × `rps_streams` outstanding requests.
fn rps(p: &Params, t: &Target) -> Result<(f64, CpuUse, u64), String> {
    let mut g = t.generator(p)?;
    let n = g.open_connections(p.rps_conns, p.rps_conns, Instant::now() + Duration::from_secs(10))?;
    if n != p.rps_conns {
        return Err(format!("only {n} of {} connections", p.rps_conns));
    }
    let conns = g.connected.clone();
    // Requests the stack refused for now (stream limit): retried next turn.
    let mut owed: HashMap<H3Handle, usize> = conns.iter().map(|h| (*h, p.rps_streams)).collect();
    let start = Instant::now();
    let (m0, m1) = (start + p.warmup, start + p.warmup + p.measure);
    let mut counted = 0u64;
    let mut meter = None;
    while Instant::now() < m1 {
        for (h, k) in owed.iter_mut() {
            while *k > 0 && g.get(*h, 1024, Instant::now()) {
                *k -= 1;
            }
        }
        g.step(Duration::from_millis(1))?;
        let now = Instant::now();
        if meter.is_none() && now >= m0 {
            meter = Some(Meter::start(t));
        }
        let done: Vec<_> = g.take_done().collect();
        for d in done {
            if d.ok && d.t1 >= m0 && d.t1 < m1 {
                counted += 1;
            }
            *owed.entry(d.conn).or_default() += 1;
        }
        check_failures(&g, "rps")?;
    }
    let cpu = meter.map(|m| m.stop(t)).unwrap_or_default();
    let r = counted as f64 / p.measure.as_secs_f64();
    eprintln!(
        "  rps: {counted} verified 1 KB responses in {:?} = {r:.0} req/s ({cpu}; {:.0} per server CPU-second)",
        p.measure,
        counted as f64 / cpu.server_secs
    );
    Ok((r, cpu, g.failures))
}

/// Phase 3: full handshakes + one request each, `hs_window` in progress.
fn handshakes(p: &Params, t: &Target) -> Result<(f64, CpuUse, u64), String> {
    let mut g = t.generator(p)?;
    let start = Instant::now();
    let (m0, m1) = (start + p.warmup, start + p.warmup + p.measure);
    let mut active = 0usize;
    let mut counted = 0u64;
    let mut lost_seen = 0usize;
    let mut meter = None;
    while Instant::now() < m1 {
        while active < p.hs_window {
            g.connect()?;
            active += 1;
        }
        g.step(Duration::from_millis(1))?;
        let now = Instant::now();
        if meter.is_none() && now >= m0 {
            meter = Some(Meter::start(t));
        }
        let fresh: Vec<_> = g.connected.drain(..).collect();
        for h in fresh {
            if !g.get(h, 1024, now) {
                g.close(h);
                active -= 1;
            }
        }
        let done: Vec<_> = g.take_done().collect();
        for d in done {
            if d.ok && d.t1 >= m0 && d.t1 < m1 {
                counted += 1;
            }
            g.close(d.conn);
            active = active.saturating_sub(1);
        }
        // Handshakes that failed outright free their slot too.
        let lost = g.lost.len();
        active = active.saturating_sub(lost - lost_seen);
        lost_seen = lost;
        check_failures(&g, "handshakes")?;
    }
    let cpu = meter.map(|m| m.stop(t)).unwrap_or_default();
    let r = counted as f64 / p.measure.as_secs_f64();
    eprintln!(
        "  handshakes: {counted} connections (full handshake + 1 KB GET) in {:?} = {r:.0}/s ({cpu}; {:.0} per server CPU-second)",
        p.measure,
        counted as f64 / cpu.server_secs
    );
    Ok((r, cpu, g.failures))
}

/// Phase 4: open loop at `rate`; p50/p99 in µs from scheduled time to done.
/// Open-loop latency at `rate`: p50, p99, the completed rate, CPU use,
/// failed responses and the generator's own turns over 1 ms.
fn latency(p: &Params, t: &Target, rate: f64) -> Result<(f64, f64, f64, CpuUse, u64, u32), String> {
    let mut g = t.generator(p)?;
    let n = g.open_connections(p.rps_conns, p.rps_conns, Instant::now() + Duration::from_secs(10))?;
    if n != p.rps_conns || rate < 1.0 {
        return Err(format!("only {n} of {} connections (rate {rate:.0})", p.rps_conns));
    }
    let conns = g.connected.clone();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut in_flight: HashMap<H3Handle, usize> = conns.iter().map(|h| (*h, 0)).collect();
    let mut backlog: std::collections::VecDeque<Instant> = std::collections::VecDeque::new();
    let start = Instant::now();
    let (m0, m1) = (start + p.warmup, start + p.warmup + p.measure);
    let mut next_due = start;
    let mut rr = 0usize;
    let mut lat: Vec<u32> = Vec::with_capacity((rate * p.measure.as_secs_f64() * 1.2) as usize);
    let mut meter = None;
    // The generator's own stalls (a loop turn longer than 1 ms: descheduled,
    // or its own work), reported beside the percentiles: a request due
    // during one waits for the generator, whatever the server does.
    let (mut stalls, mut worst, mut last) = (0u32, Duration::ZERO, Instant::now());
    // Requests due but not handed to any connection (every connection at
    // its stream limit, or out of stream credit): the largest such backlog
    // and the turns that ended with one, reported beside the percentiles.
    let (mut max_backlog, mut backlog_turns) = (0usize, 0u32);
    while Instant::now() < m1 {
        let now = Instant::now();
        let gap = now - last;
        last = now;
        if now >= m0 && gap > Duration::from_millis(1) {
            stalls += 1;
            worst = worst.max(gap);
        }
        while next_due <= now && next_due < m1 {
            backlog.push_back(next_due);
            next_due += interval;
        }
        // Hand due requests to connections with a free stream, round robin.
        let mut tries = 0;
        while let Some(due) = backlog.front().copied() {
            if tries >= conns.len() {
                break;
            }
            let h = conns[rr % conns.len()];
            rr += 1;
            let f = in_flight.entry(h).or_default();
            if *f < p.rps_streams && g.get(h, 1024, due) {
                *f += 1;
                backlog.pop_front();
                tries = 0;
            } else {
                tries += 1;
            }
        }
        if now >= m0 && !backlog.is_empty() {
            max_backlog = max_backlog.max(backlog.len());
            backlog_turns += 1;
        }
        // Spin: the generator owns its core, and sleeping would add the
        // timer slack to every latency.
        g.step(Duration::ZERO)?;
        if meter.is_none() && Instant::now() >= m0 {
            meter = Some(Meter::start(t));
        }
        let done: Vec<_> = g.take_done().collect();
        for d in done {
            if let Some(f) = in_flight.get_mut(&d.conn) {
                *f = f.saturating_sub(1);
            }
            if d.ok && d.t0 >= m0 {
                lat.push((d.t1 - d.t0).as_micros().min(u32::MAX as u128) as u32);
            }
        }
        check_failures(&g, "latency")?;
    }
    let cpu = meter.map(|m| m.stop(t)).unwrap_or_default();
    if lat.is_empty() {
        return Err("no responses".into());
    }
    lat.sort_unstable();
    let pct = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize] as f64;
    let achieved = lat.len() as f64 / p.measure.as_secs_f64();
    eprintln!(
        "  latency at {rate:.0} req/s offered ({achieved:.0} completed/s): p50 {:.0} µs, p99 {:.0} µs ({cpu}); generator turns over 1 ms: {stalls} (longest {:.1} ms); turns ending with requests waiting for a stream: {backlog_turns} (most waiting {max_backlog}); p99.9 {:.0} µs, max {:.0} µs; packets the generator declared lost: {}",
        pct(0.5),
        pct(0.99),
        worst.as_secs_f64() * 1e3,
        pct(0.999),
        pct(1.0),
        g.packets_lost()
    );
    Ok((pct(0.5), pct(0.99), achieved, cpu, g.failures, stalls))
}

/// Phase 5: RSS growth per idle connection.
fn idle(p: &Params, t: &Target) -> Result<f64, String> {
    let mut g = t.generator(p)?;
    // Warm-up: one connection with a request, so lazily built server state
    // (TLS, tables) is in the baseline.
    if g.open_connections(1, 1, Instant::now() + Duration::from_secs(10))? != 1 {
        return Err("warm-up handshake failed".into());
    }
    let h = g.connected[0];
    g.get(h, 1024, Instant::now());
    let end = Instant::now() + Duration::from_secs(5);
    while g.in_flight() > 0 && Instant::now() < end {
        g.step(Duration::from_millis(1))?;
    }
    let settle = |g: &mut Generator, d: Duration| -> Result<(), String> {
        let end = Instant::now() + d;
        while Instant::now() < end {
            g.step(Duration::from_millis(5))?;
        }
        Ok(())
    };
    settle(&mut g, Duration::from_millis(300))?;
    let rss0 = t.rss().ok_or("no RSS for the server")?;
    let up = g.open_connections(p.idle_conns, 64, Instant::now() + p.idle_limit)?;
    settle(&mut g, Duration::from_secs(1))?;
    let rss1 = t.rss().ok_or("no RSS for the server")?;
    if up < p.idle_conns {
        return Err(format!("only {up} of {} connections came up", p.idle_conns));
    }
    let per = (rss1 as f64 - rss0 as f64) / up as f64;
    eprintln!("  idle: {up} connections, server RSS {} → {} KiB = {per:.0} B per connection", rss0 / 1024, rss1 / 1024);
    Ok(per)
}

fn fmt_opt(v: Option<f64>) -> String {
    match v {
        Some(x) if x >= 100.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.1}"),
        None => "-".into(),
    }
}

fn print_table(rows: &[Row], reference: Option<&Row>) {
    let quinn = reference;
    type Get = fn(&Row) -> Option<f64>;
    // (name, value, the phase whose generator share marks a wall-clock
    // figure, whether a ratio to the reference means anything)
    let metrics: [(&str, Get, Option<&str>, bool); 11] = [
        ("bulk 1 GiB goodput, MB/s", |r| r.bulk, Some("bulk"), true),
        ("bulk, GSO off, MB/s", |r| r.bulk_nogso, Some("bulk-nogso"), true),
        ("bulk: mean server packet, B", |r| r.bulk_packet, None, false),
        ("1 KB requests/s (16 conns × 100 streams)", |r| r.rps, Some("rps"), true),
        ("handshakes/s (full, + one 1 KB GET)", |r| r.hs, Some("hs"), true),
        ("bulk MB per server CPU-second", |r| r.per_cpu("bulk", r.bulk), None, true),
        ("requests per server CPU-second", |r| r.per_cpu("rps", r.rps), None, true),
        ("handshakes per server CPU-second", |r| r.per_cpu("hs", r.hs), None, true),
        ("p50 latency at ½ peak, µs", |r| r.p50, Some("lat"), true),
        ("p99 latency at ½ peak, µs", |r| r.p99, Some("lat"), true),
        ("memory per idle connection, B", |r| r.mem, None, true),
    ];
    let mut header = format!("| {:<42} |", "metric");
    for r in rows {
        header += &format!(" {:<24} |", r.label);
    }
    if let Some(q) = quinn {
        header += &format!(" {:<16} |", q.label);
    }
    println!("{header}");
    println!("|{}|", header.split('|').skip(1).filter(|s| !s.is_empty()).map(|s| "-".repeat(s.len())).collect::<Vec<_>>().join("|"));
    let mark = |r: &Row, phase: Option<&str>| if phase.is_some_and(|ph| r.generator_bound(ph)) { " †" } else { "" };
    let mut marked = false;
    for (name, get, phase, ratio) in metrics {
        let mut line = format!("| {name:<42} |");
        let qv = quinn.and_then(get);
        for r in rows {
            let v = get(r);
            let cell = match (v, qv) {
                (Some(a), Some(b)) if ratio && b > 0.0 => format!("{} ({:.2}×)", fmt_opt(Some(a)), a / b),
                _ => fmt_opt(v),
            };
            let m = if v.is_some() { mark(r, phase) } else { "" };
            marked |= !m.is_empty();
            line += &format!(" {:<24} |", cell + m);
        }
        if let Some(q) = quinn {
            let m = if qv.is_some() { mark(q, phase) } else { "" };
            marked |= !m.is_empty();
            line += &format!(" {:<16} |", fmt_opt(qv) + m);
        }
        println!("{line}");
    }
    if marked {
        println!(
            "(† the generator used more than {:.0} % of its core in that phase, or, for latency (its generator spins), had turns longer than 1 ms (median of the runs): the figure is at least partly the generator's limit)",
            GENERATOR_LIMIT * 100.0
        );
    }
    if let Some(q) = quinn {
        println!("(ratios: each / {}; for latency and memory lower is better)", q.label);
    }
    for r in rows.iter().chain(quinn) {
        let cpu: Vec<String> = r.cpu.iter().map(|(n, c)| format!("{n} {:.0}/{:.0} %", c.server * 100.0, c.generator * 100.0)).collect();
        println!("{}: CPU server/generator per phase: {}; failed responses {}", r.label, cpu.join(", "), r.failures);
        if let Some(rate) = r.lat_rate {
            println!("  latency phase completed {rate:.0} req/s");
        }
        if let Some((a, b)) = r.rps_idle {
            println!("  1 KB requests/s with 10 idle connections held: {a:.0}; with many: {b:.0} ({:.0} %)", b / a.max(1e-9) * 100.0);
        }
        if let Some((first, end, n)) = r.soak {
            println!(
                "  soak: {n} connections cycled; RSS {first} KiB after the first tenth, {end} KiB at the end ({:+.1} %)",
                (end as f64 / first.max(1) as f64 - 1.0) * 100.0
            );
        }
        for n in &r.notes {
            println!("  note: {n}");
        }
    }
}
