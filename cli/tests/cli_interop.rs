//! The `quicpro` CLI against a foreign HTTP/3 stack (aioquic) in both roles,
//! and `quicpro serve` under a flood of garbage datagrams while serving a
//! real download.
//!
//! Everything runs as real processes on 127.0.0.1. Every wait is bounded,
//! and every child process is killed by PID when its guard drops.
//!
//! Peers: `cli/tests/peers/h3_client.py` (aioquic client speaking the
//! quicpro server's routes) and the server of
//! `tests/interop/aioquic_h3_peer.py`, whose `GET /bytes/<n>` route and byte
//! pattern are the same as quicpro's.

use std::io::{BufRead, BufReader, Read};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Kills the child by PID (SIGKILL) unless it already exited, then reaps it.
struct Guard(Child);

impl Guard {
    fn pid(&self) -> libc::pid_t {
        self.0.id() as libc::pid_t
    }

    /// Waits at most `limit` for the process to exit.
    fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + limit;
        loop {
            if let Ok(Some(st)) = self.0.try_wait() {
                return Some(st);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            // SAFETY: plain kill(2) on our own child's PID, not yet reaped.
            unsafe {
                libc::kill(self.pid(), libc::SIGKILL);
            }
        }
        let _ = self.0.wait();
    }
}

fn quicpro() -> Command {
    Command::new(env!("CARGO_BIN_EXE_quicpro"))
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let p = std::env::temp_dir().join(format!("quicpro-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `quicpro gen-cert` into `dir`: a self-signed certificate for localhost.
fn gen_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let out = quicpro().args(["gen-cert", "--dir"]).arg(dir).output().expect("run gen-cert");
    assert!(out.status.success(), "gen-cert: {}", String::from_utf8_lossy(&out.stderr));
    (dir.join("server.pem"), dir.join("server.key"))
}

/// Forwards every line of `r` to a channel and to a shared log, from a thread.
fn line_pump(r: impl Read + Send + 'static) -> (Receiver<String>, Arc<Mutex<Vec<String>>>) {
    let (tx, rx) = channel();
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if let Ok(mut l) = log2.lock() {
                l.push(line.clone());
            }
            let _ = tx.send(line);
        }
    });
    (rx, log)
}

/// The first line satisfying `f` within `limit`, through `f`'s answer.
fn wait_line<T>(rx: &Receiver<String>, limit: Duration, mut f: impl FnMut(&str) -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    loop {
        let left = end.checked_duration_since(Instant::now())?;
        let line = rx.recv_timeout(left).ok()?;
        if let Some(v) = f(&line) {
            return Some(v);
        }
    }
}

struct QuicproServer {
    guard: Guard,
    port: u16,
    stderr: Arc<Mutex<Vec<String>>>,
}

/// A one-worker `quicpro serve` on an ephemeral port with the given certificate.
fn start_quicpro_server(cert: &Path, key: &Path, duration_secs: u32) -> QuicproServer {
    start_quicpro_server_with(cert, key, duration_secs, &[])
}

/// As `start_quicpro_server`, with more `serve` arguments.
fn start_quicpro_server_with(cert: &Path, key: &Path, duration_secs: u32, extra: &[&std::ffi::OsStr]) -> QuicproServer {
    let child = quicpro()
        .args(["serve", "--host", "127.0.0.1", "--port", "0", "--workers", "1", "--duration", &duration_secs.to_string()])
        .args(extra)
        .arg("--cert")
        .arg(cert)
        .arg("--key")
        .arg(key)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn quicpro serve");
    let mut guard = Guard(child);
    let (rx, stderr) = line_pump(guard.0.stderr.take().expect("stderr"));
    let port = wait_line(&rx, Duration::from_secs(20), |line| {
        let rest = line.split("listening on ").nth(1)?;
        rest.split_whitespace().next()?.rsplit(':').next()?.parse::<u16>().ok()
    });
    let Some(port) = port else {
        panic!("quicpro serve did not report its address: {:?}", stderr.lock().map(|l| l.clone()));
    };
    QuicproServer { guard, port, stderr }
}

fn pattern_byte(i: u64) -> u8 {
    (i.wrapping_mul(7).wrapping_add(i / 251)) as u8
}

/// Streams `path` and checks it is exactly the first `n` pattern bytes.
fn check_pattern_file(path: &Path, n: u64) -> Result<(), String> {
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    loop {
        let got = f.read(&mut buf).map_err(|e| e.to_string())?;
        if got == 0 {
            break;
        }
        for (k, &b) in buf[..got].iter().enumerate() {
            let i = off + k as u64;
            if b != pattern_byte(i) {
                return Err(format!("byte {i} is {b:#04x}, expected {:#04x}", pattern_byte(i)));
            }
        }
        off += got as u64;
    }
    if off != n {
        return Err(format!("file has {off} bytes, expected {n}"));
    }
    Ok(())
}

/// `key=value` from a "RESULT ..." line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

// ------------------------------------------------------------ case 1

/// aioquic's HTTP/3 client fetches 10 MB (SHA-256 compared) and makes
/// GET and POST /echo requests against `quicpro serve`.
#[test]
fn aioquic_client_against_quicpro_serve() {
    let dir = TempDir::new("interop-c");
    let (cert, key) = gen_cert(&dir.0);
    let server = start_quicpro_server(&cert, &key, 120);
    let t0 = Instant::now();
    let child = Command::new("python3")
        .arg(repo_root().join("cli/tests/peers/h3_client.py"))
        .args(["--port", &server.port.to_string(), "--size", "10000000", "--echo-count", "5", "--deadline", "90"])
        .arg("--cafile")
        .arg(&cert)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3 h3_client.py");
    let mut client = Guard(child);
    let (out_rx, out_log) = line_pump(client.0.stdout.take().expect("stdout"));
    let (_err_rx, err_log) = line_pump(client.0.stderr.take().expect("stderr"));
    let result = wait_line(&out_rx, Duration::from_secs(100), |l| l.starts_with("RESULT ").then(|| l.to_string()));
    let status = client.wait_for(Duration::from_secs(10));
    eprintln!("aioquic client: {result:?} exit {status:?} in {:?}", t0.elapsed());
    let result = result.unwrap_or_else(|| {
        panic!(
            "no RESULT line; stdout {:?} stderr {:?} server {:?}",
            out_log.lock().map(|l| l.clone()),
            err_log.lock().map(|l| l.clone()),
            server.stderr.lock().map(|l| l.clone())
        )
    });
    assert_eq!(field(&result, "ok"), Some("1"), "{result}; stderr {:?}", err_log.lock().map(|l| l.clone()));
    assert_eq!(field(&result, "bytes"), Some("10000000"), "{result}");
    assert_eq!(field(&result, "echo_gets"), Some("5"), "{result}");
    assert_eq!(field(&result, "echo_posts"), Some("4"), "{result}");
    assert!(status.is_some_and(|s| s.success()), "client exit {status:?}");
}

// ------------------------------------------------------------ case 2

/// `quicpro get` downloads 10 MB from aioquic's HTTP/3 server into a file,
/// moving to a new local port after 2 MB (active migration, RFC 9000 §9.2:
/// a new connection ID of aioquic's, path validation both ways).
#[test]
fn quicpro_get_against_aioquic_server() {
    let dir = TempDir::new("interop-s");
    let (cert, key) = gen_cert(&dir.0);
    let child = Command::new("python3")
        .arg(repo_root().join("tests/interop/aioquic_h3_peer.py"))
        .args(["server", "--host", "127.0.0.1", "--port", "0", "--connections", "1", "--deadline", "90"])
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn aioquic server");
    let mut server = Guard(child);
    let (out_rx, out_log) = line_pump(server.0.stdout.take().expect("stdout"));
    let (_err_rx, err_log) = line_pump(server.0.stderr.take().expect("stderr"));
    let port = wait_line(&out_rx, Duration::from_secs(20), |l| field(l.strip_prefix("LISTENING")?, "port")?.parse::<u16>().ok());
    let port = port.unwrap_or_else(|| panic!("aioquic server did not listen: {:?} {:?}", out_log.lock().map(|l| l.clone()), err_log.lock().map(|l| l.clone())));

    const N: u64 = 10_000_000;
    let file = dir.0.join("download.bin");
    let t0 = Instant::now();
    let child = quicpro()
        .args(["get", "-k", "-v", "--migrate-after", "2000000", "--timeout", "60", "-o"])
        .arg(&file)
        .arg(format!("https://127.0.0.1:{port}/bytes/{N}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn quicpro get");
    let mut get = Guard(child);
    let (_rx, get_err) = line_pump(get.0.stderr.take().expect("stderr"));
    let status = get.wait_for(Duration::from_secs(90));
    let took = t0.elapsed();
    eprintln!("quicpro get from aioquic: exit {status:?} in {took:?}");
    assert!(status.is_some_and(|s| s.success()), "quicpro get exit {status:?}: {:?}", get_err.lock().map(|l| l.clone()));
    check_pattern_file(&file, N).unwrap();
    let log = get_err.lock().map(|l| l.join("\n")).unwrap_or_default();
    assert!(log.contains("migrated to local address") && log.contains("migrations 1"), "{log}");

    // The aioquic server exits after its one connection ended and reports
    // whether that connection closed cleanly (H3_NO_ERROR) and what it sent.
    let result = wait_line(&out_rx, Duration::from_secs(40), |l| (l.starts_with("RESULT ") && l.contains("conn=")).then(|| l.to_string()));
    eprintln!("aioquic server: {result:?}");
    let result = result.unwrap_or_else(|| panic!("aioquic server gave no connection RESULT: {:?}", err_log.lock().map(|l| l.clone())));
    assert_eq!(field(&result, "ok"), Some("1"), "{result}");
    assert_eq!(field(&result, "bytes_out"), Some(N.to_string().as_str()), "{result}");
    let status = server.wait_for(Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "aioquic server exit {status:?}");
}

// ------------------------------------------------------------ case 3

/// xorshift64*: enough randomness for garbage, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// One garbage datagram into `buf`; returns its length (1..=1500).
fn garbage(rng: &mut Rng, buf: &mut [u8; 1500]) -> usize {
    let len = 1 + rng.below(1500) as usize;
    rng.fill(&mut buf[..len]);
    match rng.below(5) {
        // Random bytes of random length.
        0 => len,
        // A long header truncated within its first bytes.
        1 => {
            buf[0] = 0xc0 | (buf[0] & 0x3f);
            1 + rng.below(8) as usize
        }
        // A short header with a random DCID (may draw a stateless reset).
        2 => {
            buf[0] = 0x40 | (buf[0] & 0x3f);
            len
        }
        // A well-formed-looking long header with an unknown version; the
        // large ones draw a version negotiation (RFC 9000 §6.1).
        3 => {
            let len = len.max(7 + 16);
            buf[0] = 0xc0 | (buf[0] & 0x3f);
            // Never 0 (that would be a Version Negotiation packet), 1 or 2.
            let v = 0x0a0a_0a0a_u32 ^ ((rng.next() as u32) & 0x7070_7070);
            buf[1..5].copy_from_slice(&v.to_be_bytes());
            buf[5] = 8;
            buf[14] = 8;
            len
        }
        // A v1 Handshake header for a connection that does not exist.
        _ => {
            let len = len.max(7 + 16);
            buf[0] = 0xe0 | (buf[0] & 0x0f);
            buf[1..5].copy_from_slice(&1u32.to_be_bytes());
            buf[5] = 8;
            buf[14] = 8;
            len
        }
    }
}

/// The number just before `label` in a "stopped:" line ("... 12 unparseable, ...").
fn count_before(line: &str, label: &str) -> u64 {
    let at = line.find(label).unwrap_or_else(|| panic!("no {label:?} in {line}"));
    let head = line[..at].trim_end();
    let num = head.rsplit(|c: char| !c.is_ascii_digit()).next().unwrap_or_default();
    num.parse().unwrap_or_else(|_| panic!("no count before {label:?} in {line}"))
}

/// A 100 MB download by `quicpro get` completes byte-identical while
/// another socket throws 100,000 garbage datagrams at the server port; the
/// server's counters then account for the garbage.
#[test]
fn download_survives_garbage_flood() {
    const N: u64 = 100_000_000;
    const FLOOD: u64 = 100_000;
    let dir = TempDir::new("flood");
    let (cert, key) = gen_cert(&dir.0);
    let mut server = start_quicpro_server(&cert, &key, 600);
    let port = server.port;
    let file = dir.0.join("flood-download.bin");

    let t0 = Instant::now();
    let child = quicpro()
        .args(["get", "-k", "--timeout", "240", "-o"])
        .arg(&file)
        .arg(format!("https://127.0.0.1:{port}/bytes/{N}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn quicpro get");
    let mut get = Guard(child);
    let (_rx, get_err) = line_pump(get.0.stderr.take().expect("stderr"));

    // Let the handshake happen, then flood while the body streams.
    std::thread::sleep(Duration::from_millis(300));
    // The flood must overlap the transfer, not follow it.
    assert!(matches!(get.0.try_wait(), Ok(None)), "download finished before the flood began");
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind flood socket");
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1) | 1;
    eprintln!("flood seed {seed:#x}");
    let mut rng = Rng(seed);
    let mut buf = [0u8; 1500];
    let flood_start = Instant::now();
    let mut sent = 0u64;
    let mut send_errors = 0u64;
    while sent < FLOOD && flood_start.elapsed() < Duration::from_secs(60) {
        let len = garbage(&mut rng, &mut buf);
        match sock.send_to(&buf[..len], ("127.0.0.1", port)) {
            Ok(_) => sent += 1,
            Err(_) => send_errors += 1,
        }
        // Brief pauses keep the flood from being only a test of the
        // kernel's receive-buffer size.
        if sent.is_multiple_of(256) {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let flood_time = flood_start.elapsed();
    let get_running_after_flood = matches!(get.0.try_wait(), Ok(None));
    eprintln!("flood: {sent} datagrams sent ({send_errors} send errors) in {flood_time:?}; download still running afterwards: {get_running_after_flood}");

    let status = get.wait_for(Duration::from_secs(300));
    let took = t0.elapsed();
    eprintln!("100 MB download under flood: exit {status:?} in {took:?}");
    assert!(status.is_some_and(|s| s.success()), "quicpro get exit {status:?}: {:?}", get_err.lock().map(|l| l.clone()));
    let t1 = Instant::now();
    check_pattern_file(&file, N).unwrap();
    eprintln!("file checked in {:?}", t1.elapsed());

    // SIGTERM: graceful stop, and the worker prints its counters.
    // SAFETY: kill(2) on our own, not yet reaped, child.
    unsafe {
        libc::kill(server.guard.pid(), libc::SIGTERM);
    }
    let st = server.guard.wait_for(Duration::from_secs(30));
    assert!(st.is_some(), "server did not exit after SIGTERM");
    // The stderr pump may lag the exit by a moment.
    let end = Instant::now() + Duration::from_secs(5);
    let stopped = loop {
        let found = server.stderr.lock().ok().and_then(|l| l.iter().find(|l| l.contains("stopped:")).cloned());
        if found.is_some() || Instant::now() >= end {
            break found;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stopped = stopped.unwrap_or_else(|| panic!("no stopped: line in {:?}", server.stderr.lock().map(|l| l.clone())));
    eprintln!("{stopped}");
    let datagrams = count_before(&stopped, "datagrams");
    let unparseable = count_before(&stopped, "unparseable");
    let unknown = count_before(&stopped, "unknown CID");
    let small = count_before(&stopped, "small Initials");
    let invalid_tokens = count_before(&stopped, "invalid tokens");
    let over_limit = count_before(&stopped, "over the connection limit");
    let vn = count_before(&stopped, "version negotiations");
    let resets = count_before(&stopped, "stateless resets");
    let accepted = count_before(&stopped, "connections accepted");
    let dropped = unparseable + unknown + small + invalid_tokens + over_limit + vn;
    eprintln!(
        "counters: {datagrams} datagrams, {accepted} accepted; {unparseable} unparseable + {unknown} unknown CID + {small} small Initials + \
         {invalid_tokens} invalid tokens + {over_limit} over limit + {vn} version negotiations = {dropped} of {sent} garbage; {resets} stateless resets sent"
    );
    assert_eq!(accepted, 1, "garbage must not create connections");
    // Loopback delivery can still lose some datagrams in the socket buffer.
    assert!(dropped >= FLOOD / 2, "only {dropped} of {sent} garbage datagrams were accounted for");
    assert!(dropped <= sent, "more drops ({dropped}) than garbage sent ({sent})");
    assert!(vn > 0 && unknown > 0 && unparseable > 0, "every kind of garbage is seen: {stopped}");
    // The real connection's datagrams are the rest.
    assert!(datagrams > dropped, "{datagrams} datagrams vs {dropped} dropped");
}

// ------------------------------------------------------------ hq-interop

/// Files of `dir` for the hq-interop cases: 1.5 MB of pattern bytes and a small text.
fn hq_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let big: Vec<u8> = (0..1_500_000u64).map(pattern_byte).collect();
    let files = vec![("big.bin".to_string(), big), ("small.txt".to_string(), b"hello, HTTP/0.9\n".to_vec())];
    for (name, data) in &files {
        std::fs::write(dir.join(name), data).expect("write test file");
    }
    files
}

fn sha256_hex(b: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, b).as_ref().iter().map(|x| format!("{x:02x}")).collect()
}

/// aioquic speaking hq-interop (HTTP/0.9) fetches two files from
/// `quicpro serve`, which offers h3 and hq-interop on the same port.
#[test]
fn aioquic_hq_interop_client_against_quicpro_serve() {
    let dir = TempDir::new("hq-c");
    let (cert, key) = gen_cert(&dir.0);
    let root = dir.0.join("www");
    std::fs::create_dir_all(&root).expect("root");
    let files = hq_files(&root);
    let server = start_quicpro_server_with(&cert, &key, 60, &["--root".as_ref(), root.as_os_str()]);
    let port = server.port;
    let out = Command::new("timeout")
        .args(["60", "python3"])
        .arg(repo_root().join("cli/tests/peers/hq_peer.py"))
        .args(["client", "--port", &port.to_string(), "--path", "/big.bin", "--path", "/small.txt", "--cafile"])
        .arg(&cert)
        .output()
        .expect("run hq_peer.py client");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("RESULT done=1"), "client: {text}\n{}", String::from_utf8_lossy(&out.stderr));
    for (name, data) in &files {
        let want = format!("path=/{name} len={} sha256={}", data.len(), sha256_hex(data));
        assert!(text.contains(&want), "missing {want} in {text}");
    }
}

/// `quicpro get --hq` fetches from aioquic's hq-interop server; the file
/// written with -o is byte-identical.
#[test]
fn quicpro_get_hq_against_aioquic_server() {
    let dir = TempDir::new("hq-s");
    let (cert, key) = gen_cert(&dir.0);
    let root = dir.0.join("www");
    std::fs::create_dir_all(&root).expect("root");
    let files = hq_files(&root);
    let child = Command::new("python3")
        .arg(repo_root().join("cli/tests/peers/hq_peer.py"))
        .args(["server", "--port", "0", "--connections", "1", "--deadline", "60", "--root"])
        .arg(&root)
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn hq_peer.py server");
    let mut server = Guard(child);
    let (rx, _log) = line_pump(server.0.stdout.take().expect("stdout"));
    let port = wait_line(&rx, Duration::from_secs(20), |l| l.strip_prefix("LISTENING port=")?.trim().parse::<u16>().ok()).expect("aioquic hq server port");
    let target = dir.0.join("big.out");
    let out = quicpro()
        .args(["get", "--hq", "-v", "--timeout", "30", "--cacert"])
        .arg(&cert)
        .arg("-o")
        .arg(&target)
        .arg(format!("https://localhost:{port}/big.bin"))
        .output()
        .expect("run quicpro get");
    assert!(out.status.success(), "quicpro get --hq: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ALPN hq-interop"), "{}", String::from_utf8_lossy(&out.stderr));
    let got = std::fs::read(&target).expect("output file");
    assert_eq!(got.len(), files[0].1.len());
    assert!(got == files[0].1, "body differs");
    assert!(server.wait_for(Duration::from_secs(10)).is_some(), "aioquic server did not see the connection end");
}
