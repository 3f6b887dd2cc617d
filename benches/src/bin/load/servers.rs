//! Server child processes: ours (`quicpro serve`) and quinn (`load
//! --serve-quinn`), each pinned to CPU 0, killed by PID when dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// Which server, and how it is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerKind {
    /// `quicpro serve` with this backend.
    Ours { backend: &'static str, gso: bool },
    Quinn { gso: bool },
}

impl ServerKind {
    pub fn label(&self) -> String {
        match self {
            ServerKind::Ours { backend, gso } => format!("quicpro {backend}{}", if *gso { "" } else { " (GSO off)" }),
            ServerKind::Quinn { gso } => format!("quinn+h3{}", if *gso { "" } else { " (GSO off)" }),
        }
    }
}

pub struct Files {
    pub quicpro: PathBuf,
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
    pub cert_der: PathBuf,
    pub key_der: PathBuf,
}

/// A running server; the process is killed (by PID) and reaped on drop.
pub struct ServerProcess {
    child: Child,
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

impl ServerProcess {
    pub fn start(kind: &ServerKind, files: &Files, cpu: usize) -> Result<Self, String> {
        let mut cmd = match kind {
            ServerKind::Ours { backend, gso } => {
                let mut c = Command::new(&files.quicpro);
                c.args(["serve", "--host", "127.0.0.1", "--port", "0", "--backend", backend, "--retry", "never"]);
                c.arg("--cert").arg(&files.cert_pem).arg("--key").arg(&files.key_pem);
                if !gso {
                    c.arg("--no-gso");
                }
                c
            }
            ServerKind::Quinn { gso } => {
                let mut c = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
                c.arg("--serve-quinn").arg(&files.cert_der).arg(&files.key_der).arg(if *gso { "gso" } else { "no-gso" });
                c
            }
        };
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
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
        let mut child = cmd.spawn().map_err(|e| format!("{}: {e}", kind.label()))?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<SocketAddr>();
        // Ours says "listening on <addr> —" on stderr, quinn "listening <addr>"
        // on stdout; both streams are drained to the end so no pipe fills.
        for stream in [child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>), child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>)].into_iter().flatten() {
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
        let mut me = ServerProcess { child, addr: "127.0.0.1:0".parse().map_err(|_| "addr")?, log };
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(a) => me.addr = a,
            Err(_) => return Err(format!("{} did not start: {:?}", kind.label(), me.log_lines())),
        }
        Ok(me)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

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
        let _ = self.child.kill();
        let _ = self.child.wait();
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
            let run_only = (name.starts_with("CARGO_") && !KEEP_CARGO_VARS.iter().any(|p| name.starts_with(p)))
                || matches!(name.as_ref(), "OUT_DIR" | "CARGO");
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
