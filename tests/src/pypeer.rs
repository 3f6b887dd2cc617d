//! A Python interop peer (aioquic scripts under `tests/interop/`) run as a
//! child process: line-oriented `RESULT key=value ...` output, deadlines on
//! every wait, killed by PID when dropped.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Fails (never skips) when python3 cannot run `import_check` (e.g.
/// `import aioquic`): the interop tests must not pass silently.
pub fn require_python_module(import_check: &str, what: &str) {
    static CHECKS: OnceLock<Mutex<HashMap<String, Result<String, String>>>> = OnceLock::new();
    let map = CHECKS.get_or_init(|| Mutex::new(HashMap::new()));
    let r = map
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(import_check.to_string())
        .or_insert_with(|| match Command::new("python3").args(["-c", import_check]).output() {
            Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).trim().to_string()),
            Ok(o) => Err(String::from_utf8_lossy(&o.stderr).into_owned()),
            Err(e) => Err(format!("cannot run python3: {e}")),
        })
        .clone();
    if let Err(e) = r {
        panic!(
            "aioquic is not installed for python3, so the {what} cannot run.\n\
             Run `make test` (scripts/setup.sh pip-installs aioquic and pylsqpack).\n{e}"
        );
    }
}

/// A running Python peer script; killed by PID when dropped.
pub struct PyPeer {
    child: Child,
    lines: Receiver<String>,
    stdout: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl PyPeer {
    /// Starts `python3 -u SCRIPT ARGS...`, reading its stdout by line and
    /// its stderr into a buffer kept for diagnostics.
    pub fn spawn(script: &Path, args: &[String]) -> Self {
        let mut child = Command::new("python3")
            .arg("-u")
            .arg(script)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning python3 {}: {e}", script.display()));
        let out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Self { child, lines, stdout: Vec::new(), stderr }
    }

    /// Waits for a stdout line starting with `prefix`.
    pub fn wait_line(&mut self, prefix: &str, deadline: Instant) -> Result<String, String> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.stdout.push(line.clone());
                    if line.starts_with(prefix) {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => return Err(format!("no `{prefix}` line in time")),
                Err(RecvTimeoutError::Disconnected) => return Err(format!("peer exited before a `{prefix}` line")),
            }
        }
    }

    /// Waits for the process to exit and collects the rest of its output.
    pub fn wait_exit(&mut self, deadline: Instant) -> Result<ExitStatus, String> {
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    // Output already written is in the pipe: drain it (bounded).
                    let end = Instant::now() + Duration::from_secs(2);
                    while let Ok(line) = self.lines.recv_timeout(end.saturating_duration_since(Instant::now())) {
                        self.stdout.push(line);
                    }
                    return Ok(status);
                }
                Ok(None) => {}
                Err(e) => return Err(format!("try_wait: {e}")),
            }
            while let Ok(line) = self.lines.try_recv() {
                self.stdout.push(line);
            }
            if Instant::now() >= deadline {
                return Err("peer did not exit before the deadline".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The parsed `RESULT` lines seen so far.
    pub fn results(&self) -> Vec<HashMap<String, String>> {
        self.stdout.iter().filter_map(|l| l.strip_prefix("RESULT ")).map(parse_kv).collect()
    }

    /// The `RESULT` line that has `key`.
    pub fn result_with(&self, key: &str) -> Option<HashMap<String, String>> {
        self.results().into_iter().rev().find(|r| r.contains_key(key))
    }

    pub fn diagnostics(&self) -> String {
        let err = self.stderr.lock().unwrap();
        let tail: String = err.chars().rev().take(4000).collect::<Vec<_>>().into_iter().rev().collect();
        format!("--- peer stdout ---\n{}\n--- peer stderr (tail) ---\n{tail}", self.stdout.join("\n"))
    }
}

impl Drop for PyPeer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // Child::kill sends SIGKILL to this child's PID only.
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

pub fn parse_kv(s: &str) -> HashMap<String, String> {
    s.split_whitespace().filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

pub fn flag(r: &HashMap<String, String>, k: &str) -> bool {
    r.get(k).is_some_and(|v| v == "1")
}

pub fn num(r: &HashMap<String, String>, k: &str) -> u64 {
    r.get(k).and_then(|v| v.parse().ok()).unwrap_or(0)
}
