//! Server child processes, each pinned to CPU 0 and killed by PID when
//! dropped: ours (`quicpro serve`), quinn (`load --serve-quinn`), a PHP
//! keep-alive server on the extension (`benches/php/keepalive_server.php`),
//! the seed demo (`examples/ticket_resumption_multiworker.php`, one
//! worker), and what PHP teams run today: Caddy (its HTTP/3 is quic-go)
//! with `php_fastcgi` to PHP-FPM. A server may be several processes (Caddy
//! and the FPM pool): its CPU is the sum over their process trees.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// `--max-udp-payload`: every server and the generator accept and send at
/// most this many bytes per datagram (1200: no path MTU discovery), so the
/// comparison is at equal packet size; unset, each uses its default.
pub static MAX_UDP_PAYLOAD: std::sync::OnceLock<u16> = std::sync::OnceLock::new();

/// The environment variable that carries the pin to the quinn child.
pub const QUINN_MAX_UDP_PAYLOAD_ENV: &str = "LOAD_MAX_UDP_PAYLOAD";

/// Which server, and how it is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerKind {
    /// `quicpro serve` with this backend.
    Ours {
        backend: &'static str,
        gso: bool,
    },
    Quinn {
        gso: bool,
    },
    /// One PHP process: Fibers per session, every request of a connection.
    PhpKeepAlive,
    /// The seed demo with one worker: one request per connection, fixed
    /// port 4433, an echo body (checked for status only).
    PhpDemo,
    /// Caddy + PHP-FPM (static pool), all pinned to the server core.
    CaddyFpm,
}

impl ServerKind {
    pub fn label(&self) -> String {
        match self {
            ServerKind::Ours { backend, gso } => format!("quicpro {backend}{}", if *gso { "" } else { " (GSO off)" }),
            ServerKind::Quinn { gso } => format!("quinn+h3{}", if *gso { "" } else { " (GSO off)" }),
            ServerKind::PhpKeepAlive => "PHP keep-alive".into(),
            ServerKind::PhpDemo => "PHP seed demo".into(),
            ServerKind::CaddyFpm => "Caddy+PHP-FPM".into(),
        }
    }

    /// Whether response bodies are the `/bytes/<n>` pattern (else only the
    /// status is checked).
    pub fn serves_pattern(&self) -> bool {
        !matches!(self, ServerKind::PhpDemo)
    }

    /// Phases this server can take part in: the demo answers one request
    /// per connection (handshakes only); Caddy+FPM is not a bulk server.
    pub fn supports(&self, phase: &str) -> bool {
        match self {
            ServerKind::PhpDemo => matches!(phase, "hs"),
            ServerKind::CaddyFpm => !matches!(phase, "bulk" | "idle" | "soak"),
            _ => true,
        }
    }
}

pub struct Files {
    pub dir: PathBuf,
    pub quicpro: PathBuf,
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
    pub cert_der: PathBuf,
    pub key_der: PathBuf,
}

/// A running server; its processes are killed (by PID) and reaped on drop.
pub struct ServerProcess {
    children: Vec<Child>,
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

/// Pins the calling thread (0 = this thread) to one CPU.
pub fn pin_to_cpu(cpu: usize) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A command pinned to `cpu` (children inherit the affinity).
fn pinned(mut cmd: Command, cpu: usize) -> Command {
    // SAFETY: only the async-signal-safe sched_setaffinity runs between
    // fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// Drains a child's output into `log` (bounded), reporting "listening"
/// lines' addresses on `tx`.
fn pump_output(child: &mut Child, log: &Arc<Mutex<Vec<String>>>, tx: &mpsc::Sender<SocketAddr>) {
    for stream in
        [child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>), child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>)]
            .into_iter()
            .flatten()
    {
        let (tx, log) = (tx.clone(), log.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if let Some(addr) = parse_listening(&line) {
                    let _ = tx.send(addr);
                }
                if let Ok(mut l) = log.lock() {
                    if l.len() < 200 {
                        l.push(line);
                    }
                }
            }
        });
    }
}

/// Whether some socket is bound to UDP `port` (from /proc/net/udp{,6}).
fn udp_bound(port: u16) -> bool {
    let want = format!(":{port:04X}");
    ["/proc/net/udp", "/proc/net/udp6"]
        .iter()
        .any(|p| std::fs::read_to_string(p).is_ok_and(|t| t.lines().skip(1).any(|l| l.split_whitespace().nth(1).is_some_and(|a| a.ends_with(&want)))))
}

fn free_udp_port() -> Result<u16, String> {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(s.local_addr().map_err(|e| e.to_string())?.port())
}

/// The release PHP extension beside this binary.
pub fn php_extension() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let p = exe.parent().ok_or("no parent directory")?.join("libquicpro.so");
    if p.exists() {
        Ok(p)
    } else {
        Err(format!("{} missing: cargo build --release -p quicpro", p.display()))
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

impl ServerProcess {
    pub fn start(kind: &ServerKind, files: &Files, cpu: usize) -> Result<Self, String> {
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<SocketAddr>();
        let mut me = ServerProcess { children: Vec::new(), addr: "127.0.0.1:0".parse().map_err(|_| "addr")?, log };
        let spawn = |me: &mut ServerProcess, cmd: Command| -> Result<(), String> {
            let mut cmd = pinned(cmd, cpu);
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
            let mut child = cmd.spawn().map_err(|e| format!("{}: {e}", kind.label()))?;
            pump_output(&mut child, &me.log, &tx);
            me.children.push(child);
            Ok(())
        };
        // Servers that print "listening on ADDR" (ours, quinn, the PHP
        // keep-alive server); the others are found by their bound port.
        let mut fixed_port: Option<u16> = None;
        match kind {
            ServerKind::Ours { backend, gso } => {
                let mut c = Command::new(&files.quicpro);
                c.args(["serve", "--host", "127.0.0.1", "--port", "0", "--backend", backend, "--retry", "never"]);
                c.arg("--cert").arg(&files.cert_pem).arg("--key").arg(&files.key_pem);
                if !gso {
                    c.arg("--no-gso");
                }
                if let Some(n) = MAX_UDP_PAYLOAD.get() {
                    c.arg("--max-udp-payload").arg(n.to_string());
                    if *n <= 1200 {
                        c.arg("--no-pmtud");
                    }
                }
                spawn(&mut me, c)?;
            }
            ServerKind::Quinn { gso } => {
                let mut c = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
                c.arg("--serve-quinn").arg(&files.cert_der).arg(&files.key_der).arg(if *gso { "gso" } else { "no-gso" });
                if let Some(n) = MAX_UDP_PAYLOAD.get() {
                    c.env(QUINN_MAX_UDP_PAYLOAD_ENV, n.to_string());
                }
                spawn(&mut me, c)?;
            }
            ServerKind::PhpKeepAlive => {
                let mut c = Command::new("php");
                c.arg("-d").arg(format!("extension={}", php_extension()?.display()));
                c.arg(repo_root().join("benches/php/keepalive_server.php")).arg("0").arg(&files.cert_pem).arg(&files.key_pem);
                spawn(&mut me, c)?;
            }
            ServerKind::PhpDemo => {
                if udp_bound(4433) {
                    return Err("UDP port 4433 is in use (the seed demo's fixed port)".into());
                }
                let mut c = Command::new("php");
                c.arg("-d").arg(format!("extension={}", php_extension()?.display()));
                c.arg(repo_root().join("examples/ticket_resumption_multiworker.php")).arg("1");
                c.env("CERT_FILE", &files.cert_pem).env("KEY_FILE", &files.key_pem);
                spawn(&mut me, c)?;
                fixed_port = Some(4433);
            }
            ServerKind::CaddyFpm => {
                let port = free_udp_port()?;
                let dir = files.dir.join("caddy-fpm");
                let www = dir.join("www");
                std::fs::create_dir_all(&www).map_err(|e| e.to_string())?;
                let write = |p: &Path, b: &[u8]| std::fs::write(p, b).map_err(|e| format!("{}: {e}", p.display()));
                write(&www.join("index.php"), &std::fs::read(repo_root().join("benches/php/fpm_index.php")).map_err(|e| e.to_string())?)?;
                write(&www.join("pattern.bin"), &crate::pattern::chunk(0, crate::pattern::MAX_CHUNK))?;
                let sock = dir.join("fpm.sock");
                let _ = std::fs::remove_file(&sock);
                // A static pool: as many PHP workers as a server core keeps
                // busy while Caddy waits on them.
                let fpm = format!(
                    "[global]\npid = {d}/fpm.pid\nerror_log = {d}/fpm.log\ndaemonize = no\n[bench]\nlisten = {s}\npm = static\npm.max_children = 8\nclear_env = no\n",
                    d = dir.display(),
                    s = sock.display()
                );
                write(&dir.join("php-fpm.conf"), fpm.as_bytes())?;
                let caddyfile = format!(
                    "{{\n  admin off\n  auto_https off\n  skip_install_trust\n  default_sni localhost\n  storage file_system {d}/caddy-data\n  servers {{\n    protocols h1 h2 h3\n  }}\n}}\nhttps://localhost:{port}, https://127.0.0.1:{port} {{\n  bind 127.0.0.1\n  tls {c} {k}\n  root * {w}\n  php_fastcgi unix/{s}\n}}\n",
                    d = dir.display(),
                    c = files.cert_pem.display(),
                    k = files.key_pem.display(),
                    w = www.display(),
                    s = sock.display()
                );
                write(&dir.join("Caddyfile"), caddyfile.as_bytes())?;
                let fpm_bin = ["php-fpm8.2", "php-fpm"].into_iter().find(|b| which(b)).ok_or("php-fpm not installed (apt-get install php8.2-fpm)")?;
                if !which("caddy") {
                    return Err("caddy not installed (apt-get install caddy)".into());
                }
                let mut c = Command::new(fpm_bin);
                c.args(["-F", "-R", "-y"]).arg(dir.join("php-fpm.conf"));
                spawn(&mut me, c)?;
                let end = std::time::Instant::now() + Duration::from_secs(10);
                while !sock.exists() && std::time::Instant::now() < end {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let mut c = Command::new("caddy");
                c.args(["run", "--adapter", "caddyfile", "--config"]).arg(dir.join("Caddyfile"));
                c.env("HOME", &dir).env("XDG_DATA_HOME", dir.join("xdg")).env("XDG_CONFIG_HOME", dir.join("xdg"));
                spawn(&mut me, c)?;
                fixed_port = Some(port);
            }
        }
        match fixed_port {
            None => match rx.recv_timeout(Duration::from_secs(20)) {
                Ok(a) => me.addr = a,
                Err(_) => return Err(format!("{} did not start: {:?}", kind.label(), me.log_lines())),
            },
            Some(port) => {
                let end = std::time::Instant::now() + Duration::from_secs(20);
                while !udp_bound(port) {
                    if std::time::Instant::now() > end {
                        return Err(format!("{} did not bind UDP {port}: {:?}", kind.label(), me.log_lines()));
                    }
                    std::thread::sleep(Duration::from_millis(25));
                }
                me.addr = SocketAddr::from(([127, 0, 0, 1], port));
            }
        }
        Ok(me)
    }

    /// The processes started (their descendants count too).
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

fn which(bin: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
}

/// `roots` and every process below them (from /proc, each call).
pub fn process_tree(roots: &[u32]) -> Vec<u32> {
    let mut parent: Vec<(u32, u32)> = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
            let Some(rest) = stat.rsplit_once(") ").map(|x| x.1) else { continue };
            if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) {
                parent.push((pid, ppid));
            }
        }
    }
    let mut all: Vec<u32> = roots.to_vec();
    let mut i = 0;
    while i < all.len() {
        let p = all[i];
        for (child, pp) in &parent {
            if *pp == p && !all.contains(child) {
                all.push(*child);
            }
        }
        i += 1;
    }
    all
}

/// CPU seconds of `roots` and their descendants.
pub fn tree_cpu_seconds(roots: &[u32]) -> Option<f64> {
    let tree = process_tree(roots);
    let mut total = 0.0;
    let mut any = false;
    for pid in tree {
        if let Some(c) = cpu_seconds(pid) {
            total += c;
            any = true;
        }
    }
    any.then_some(total)
}

/// Resident memory of `roots` and their descendants.
pub fn tree_rss(roots: &[u32]) -> Option<u64> {
    let v: Vec<u64> = process_tree(roots).into_iter().filter_map(read_rss).collect();
    (!v.is_empty()).then(|| v.iter().sum())
}

/// Total CPU time (user + system) of process `pid` so far, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name (which may contain spaces) start at ") ".
        let rest = s.rsplit_once(") ")?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let utime: f64 = f.get(11)?.parse().ok()?;
        let stime: f64 = f.get(12)?.parse().ok()?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        Some((utime + stime) / hz.max(1.0))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Descendants first (the demo's forked worker, FPM's pool), then
        // the processes we started; all by PID.
        let tree = process_tree(&self.pids());
        for pid in tree.iter().rev() {
            // SAFETY: kill(2) on PIDs of our own children and their
            // descendants, found just now.
            unsafe {
                libc::kill(*pid as libc::pid_t, libc::SIGKILL);
            }
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn parse_listening(line: &str) -> Option<SocketAddr> {
    let rest = line.split_once("listening on ").map(|x| x.1).or_else(|| line.strip_prefix("listening "))?;
    rest.split_whitespace().next()?.parse().ok()
}

pub fn read_rss(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `quicpro` next to this binary (same profile directory).
pub fn quicpro_path() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.join("quicpro");
    p.exists().then_some(p)
}

/// Cargo configuration variables a user may have set (kept for the
/// nested build); every other `CARGO_*` variable is set by `cargo run`.
const KEEP_CARGO_VARS: [&str; 8] =
    ["CARGO_HOME", "CARGO_TARGET_DIR", "CARGO_BUILD_", "CARGO_PROFILE_", "CARGO_NET_", "CARGO_REGISTRIES_", "CARGO_ENCODED_RUSTFLAGS", "CARGO_INCREMENTAL"];

/// Builds `quicpro` (release) when run under cargo, so `cargo run --release
/// -p quicpro-benches --bin load` is one command.
pub fn build_quicpro() {
    if let Some(cargo) = std::env::var_os("CARGO") {
        eprintln!("load: building quicpro (cargo build --release -p quicpro-cli)...");
        // Only the user's environment, not the variables `cargo run` set for
        // this binary (CARGO_PKG_*, CARGO_MANIFEST_DIR, ...): build scripts
        // such as ring's watch some of them, and a difference rebuilds the
        // shared dependencies here and again on the next `cargo run`.
        let mut cmd = Command::new(cargo);
        cmd.env_clear();
        for (k, v) in std::env::vars_os() {
            let name = k.to_string_lossy();
            let run_only = (name.starts_with("CARGO_") && !KEEP_CARGO_VARS.iter().any(|p| name.starts_with(p))) || matches!(name.as_ref(), "OUT_DIR" | "CARGO");
            if !run_only {
                cmd.env(&k, &v);
            }
        }
        let st = cmd.args(["build", "--release", "-p", "quicpro-cli", "-j", "1"]).status();
        if !st.is_ok_and(|s| s.success()) {
            eprintln!("load: building quicpro failed; using what is there");
        }
    }
}

pub fn write_certs(dir: &Path) -> Result<Files, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).map_err(|e| e.to_string())?;
    let files = Files {
        dir: dir.to_path_buf(),
        quicpro: quicpro_path().ok_or("quicpro binary not found next to the load binary")?,
        cert_pem: dir.join("cert.pem"),
        key_pem: dir.join("key.pem"),
        cert_der: dir.join("cert.der"),
        key_der: dir.join("key.der"),
    };
    let w = |p: &Path, b: &[u8]| std::fs::write(p, b).map_err(|e| format!("{}: {e}", p.display()));
    w(&files.cert_pem, ck.cert.pem().as_bytes())?;
    w(&files.key_pem, ck.signing_key.serialize_pem().as_bytes())?;
    w(&files.cert_der, ck.cert.der())?;
    w(&files.key_der, &ck.signing_key.serialize_der())?;
    Ok(files)
}
