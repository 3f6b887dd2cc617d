//! The endpoints the runner tests: ours (`quicpro serve` / `quicpro get`)
//! and the peers a user meets — quic-go (Debian's Caddy), ngtcp2 (Debian's
//! `gtlsserver`/`gtlsclient`), aioquic, quiche (our small peer program on
//! the quiche crate), Chromium (headless, as a client). Each adapter turns
//! the interop runner's endpoint contract (TESTCASE, files, certificates,
//! key log) into that program's command line, and says when the program
//! cannot do what a case asks (unsupported, with the reason).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// ALPN a connection speaks: the runner's default HTTP/0.9 or HTTP/3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Hq,
    H3,
}

impl Proto {
    pub fn alpn(self) -> &'static str {
        match self {
            Proto::Hq => "hq-interop",
            Proto::H3 => "h3",
        }
    }
}

/// Which side of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Server,
    Client,
}

/// What a server is started with.
#[derive(Debug, Clone)]
pub struct ServerCtx {
    pub testcase: String,
    pub listen: SocketAddr,
    pub www: PathBuf,
    /// `cert.pem` (chain), `priv.key`, `ca.pem`.
    pub certs: PathBuf,
    pub keylog: PathBuf,
    pub qlog_dir: PathBuf,
    /// Scratch space (configuration files).
    pub work: PathBuf,
    pub log: PathBuf,
    pub proto: Proto,
    /// connectionmigration: the relay's second address, for the server to
    /// announce in preferred_address (RFC 9000 §9.6).
    pub preferred_address: Option<SocketAddr>,
}

/// What a client is started with.
#[derive(Debug, Clone)]
pub struct ClientCtx {
    /// The case's name (the runner's test, not the TESTCASE value).
    pub case: String,
    pub testcase: String,
    /// `https://<relay>/<name>` per file.
    pub urls: Vec<String>,
    pub downloads: PathBuf,
    pub certs: PathBuf,
    pub keylog: PathBuf,
    pub qlog_dir: PathBuf,
    pub work: PathBuf,
    pub log: PathBuf,
    pub proto: Proto,
}

/// A started program, or why none could be.
#[derive(Debug)]
pub enum Launch {
    /// Processes to wait for (clients) or to stop at the end (servers), in
    /// order: a client that runs once per connection is several runs.
    Started(Child),
    /// A sequence of commands to run one after the other (a client that
    /// makes one connection per process).
    Sequence(Vec<Command>),
    Unsupported(String),
}

/// One implementation under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Peer {
    Quicpro,
    QuicGo,
    Ngtcp2,
    Aioquic,
    Quiche,
    Chromium,
}

impl Peer {
    pub fn all() -> [Peer; 6] {
        [Peer::Quicpro, Peer::QuicGo, Peer::Ngtcp2, Peer::Aioquic, Peer::Quiche, Peer::Chromium]
    }

    pub fn name(self) -> &'static str {
        match self {
            Peer::Quicpro => "quicpro",
            Peer::QuicGo => "quic-go",
            Peer::Ngtcp2 => "ngtcp2",
            Peer::Aioquic => "aioquic",
            Peer::Quiche => "quiche",
            Peer::Chromium => "chromium",
        }
    }

    pub fn by_name(n: &str) -> Option<Peer> {
        Peer::all().into_iter().find(|p| p.name() == n)
    }

    /// What the program is, as shown in the matrix.
    pub fn describe(self) -> &'static str {
        match self {
            Peer::Quicpro => "this project (`quicpro serve`, `quicpro get`)",
            Peer::QuicGo => "quic-go through Debian's Caddy 2.6 (server only: HTTP/3 file server)",
            Peer::Ngtcp2 => "ngtcp2 0.12 with GnuTLS: Debian's `gtlsserver` / `gtlsclient` (HTTP/3 only)",
            Peer::Aioquic => "aioquic 1.7 (PyPI), `interop/peers/aioquic_peer.py`",
            Peer::Quiche => "quiche (crates.io) with BoringSSL, `interop/peers/quiche-peer`",
            Peer::Chromium => "Debian's Chromium, headless (client only: loads a page over HTTP/3)",
        }
    }

    /// The application protocols the program speaks in `role`.
    pub fn protocols(self, role: Role) -> &'static [Proto] {
        match (self, role) {
            (Peer::Quicpro | Peer::Aioquic | Peer::Quiche, _) => &[Proto::Hq, Proto::H3],
            (Peer::QuicGo, Role::Server) | (Peer::Ngtcp2, _) => &[Proto::H3],
            (Peer::Chromium, Role::Client) => &[Proto::H3],
            (Peer::QuicGo, Role::Client) | (Peer::Chromium, Role::Server) => &[],
        }
    }

    /// Why the peer cannot take `role` at all here, if it cannot.
    pub fn missing_role(self, role: Role) -> Option<&'static str> {
        match (self, role) {
            // Caddy 2.6's reverse_proxy with `versions 3` still dials its
            // upstream over TCP: Debian ships no quic-go client program.
            (Peer::QuicGo, Role::Client) => {
                Some("no quic-go client here: Debian's quic-go is inside Caddy 2.6, which has no HTTP/3 client (its reverse proxy dials upstreams over TCP)")
            }
            (Peer::Chromium, Role::Server) => Some("Chromium is a browser: no server role"),
            _ => None,
        }
    }

    /// Whether the program exists on this machine (the reason if not).
    pub fn available(self, root: &Path) -> Result<(), String> {
        let need = |bin: &str| -> Result<(), String> {
            if which(bin).is_some() {
                Ok(())
            } else {
                Err(format!("{bin} not installed"))
            }
        };
        match self {
            Peer::Quicpro => quicpro_bin(root).map(|_| ()),
            Peer::QuicGo => need("caddy"),
            Peer::Ngtcp2 => need("gtlsclient").and(need("gtlsserver")),
            Peer::Aioquic => {
                let ok = Command::new("python3").args(["-c", "import aioquic"]).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
                if ok {
                    Ok(())
                } else {
                    Err("python3 module aioquic not installed".into())
                }
            }
            Peer::Quiche => quiche_bin(root).map(|_| ()),
            Peer::Chromium => need("chromium"),
        }
    }

    pub fn start_server(self, root: &Path, c: &ServerCtx) -> Result<Launch, String> {
        match self {
            Peer::Quicpro => quicpro_server(root, c),
            Peer::QuicGo => caddy_server(c),
            Peer::Ngtcp2 => ngtcp2_server(c),
            Peer::Aioquic => contract_server(python(root.join("interop/peers/aioquic_peer.py")), c),
            Peer::Quiche => contract_server(Command::new(quiche_bin(root)?), c),
            Peer::Chromium => Ok(Launch::Unsupported("Chromium is a client only".into())),
        }
    }

    pub fn start_client(self, root: &Path, c: &ClientCtx) -> Result<Launch, String> {
        match self {
            Peer::Quicpro => quicpro_client(root, c),
            Peer::QuicGo => Ok(Launch::Unsupported("no quic-go client on this machine (Caddy is a server)".into())),
            Peer::Ngtcp2 => ngtcp2_client(c),
            Peer::Aioquic => contract_client(python(root.join("interop/peers/aioquic_peer.py")), c),
            Peer::Quiche => contract_client(Command::new(quiche_bin(root)?), c),
            Peer::Chromium => chromium_client(c),
        }
    }
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(bin)).find(|f| f.is_file()))
}

fn python(script: PathBuf) -> Command {
    let mut c = Command::new("python3");
    c.arg(script);
    c
}

/// The release `quicpro` binary (the runner builds it first).
pub fn quicpro_bin(root: &Path) -> Result<PathBuf, String> {
    let p = root.join("target/release/quicpro");
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!("{} missing: cargo build --release -p quicpro-cli", p.display()))
    }
}

/// The quiche peer, built by `interop/peers/quiche-peer`'s own cargo project.
pub fn quiche_bin(root: &Path) -> Result<PathBuf, String> {
    let p = root.join("interop/peers/quiche-peer/target/release/quiche-peer");
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!("{} missing: cargo build --release --manifest-path interop/peers/quiche-peer/Cargo.toml", p.display()))
    }
}

fn logged(mut cmd: Command, log: &Path) -> Result<Command, String> {
    let f = std::fs::OpenOptions::new().create(true).append(true).open(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let f2 = f.try_clone().map_err(|e| e.to_string())?;
    cmd.stdout(Stdio::from(f)).stderr(Stdio::from(f2)).stdin(Stdio::null());
    Ok(cmd)
}

fn spawn(cmd: Command, log: &Path) -> Result<Launch, String> {
    let mut cmd = logged(cmd, log)?;
    cmd.spawn().map(Launch::Started).map_err(|e| format!("{:?}: {e}", cmd.get_program()))
}

fn host_port(a: SocketAddr) -> (String, String) {
    (a.ip().to_string(), a.port().to_string())
}

// ----- ours ---------------------------------------------------------------

fn quicpro_server(root: &Path, c: &ServerCtx) -> Result<Launch, String> {
    let (host, port) = host_port(c.listen);
    let mut cmd = Command::new(quicpro_bin(root)?);
    cmd.args(["serve", "--host", &host, "--port", &port, "--workers", "1"]);
    cmd.arg("--root").arg(&c.www).arg("--cert").arg(c.certs.join("cert.pem")).arg("--key").arg(c.certs.join("priv.key"));
    cmd.arg("--qlog-dir").arg(&c.qlog_dir).arg("--keylog").env("SSLKEYLOGFILE", &c.keylog);
    // The contract: no Retry except in the retry case.
    cmd.args(["--retry", if c.testcase == "retry" { "always" } else { "never" }]);
    match c.testcase.as_str() {
        "handshake" | "transfer" | "retry" | "resumption" | "zerortt" | "http3" | "multiconnect" | "chacha20" | "keyupdate" | "ecn" | "v2" => {}
        "connectionmigration" => match c.preferred_address {
            Some(a) => {
                cmd.arg("--preferred-address").arg(a.to_string());
            }
            None => return Ok(Launch::Unsupported("no second relay address for preferred_address".into())),
        },
        other => return Ok(Launch::Unsupported(format!("quicpro serve: test case {other} (not implemented yet)"))),
    }
    spawn(cmd, &c.log)
}

fn quicpro_client(root: &Path, c: &ClientCtx) -> Result<Launch, String> {
    let mut cmd = Command::new(quicpro_bin(root)?);
    cmd.args(["get", "-k", "--timeout", "60"]).arg("--output-dir").arg(&c.downloads);
    cmd.arg("--qlog-dir").arg(&c.qlog_dir).arg("--keylog").env("SSLKEYLOGFILE", &c.keylog);
    if c.proto == Proto::Hq {
        cmd.arg("--hq");
    }
    match c.testcase.as_str() {
        "handshake" | "transfer" | "http3" | "retry" | "ecn" => {}
        "v2" => {
            // Start in v1, prefer v2 (RFC 9368): the server moves us.
            cmd.args(["--versions", "v2,v1"]);
        }
        "multiconnect" => {
            cmd.arg("--reconnect");
        }
        "resumption" | "zerortt" => {
            cmd.arg("--resume-rest");
        }
        "chacha20" => {
            cmd.args(["--ciphers", "TLS_CHACHA20_POLY1305_SHA256"]);
        }
        "keyupdate" => {
            cmd.arg("--key-update");
        }
        other => return Ok(Launch::Unsupported(format!("quicpro get: test case {other}"))),
    }
    cmd.args(&c.urls);
    spawn(cmd, &c.log)
}

// ----- programs following the runner's environment contract ---------------

fn contract_server(mut cmd: Command, c: &ServerCtx) -> Result<Launch, String> {
    cmd.env("ROLE", "server").env("TESTCASE", &c.testcase).env("LISTEN", c.listen.to_string());
    cmd.env("WWW", &c.www).env("CERTS", &c.certs).env("SSLKEYLOGFILE", &c.keylog).env("QLOGDIR", &c.qlog_dir);
    spawn(cmd, &c.log)
}

fn contract_client(mut cmd: Command, c: &ClientCtx) -> Result<Launch, String> {
    // http3 selects h3 by itself; other cases speak h3 when the server
    // lacks hq-interop.
    let testcase = if c.proto == Proto::H3 && c.testcase == "transfer" { "http3" } else { c.testcase.as_str() };
    cmd.env("ROLE", "client").env("TESTCASE", testcase).env("REQUESTS", c.urls.join(" ")).env("DOWNLOADS", &c.downloads);
    cmd.env("SERVER_NAME", "server4").env("SSLKEYLOGFILE", &c.keylog).env("QLOGDIR", &c.qlog_dir).env("ALPN", c.proto.alpn());
    spawn(cmd, &c.log)
}

// ----- quic-go (Caddy) -------------------------------------------------------

fn caddy_server(c: &ServerCtx) -> Result<Launch, String> {
    match c.testcase.as_str() {
        "handshake" | "transfer" | "http3" | "multiconnect" | "resumption" | "zerortt" | "keyupdate" | "chacha20" => {}
        "retry" => return Ok(Launch::Unsupported("Caddy has no option to make quic-go send Retry".into())),
        "v2" => return Ok(Launch::Unsupported("Caddy 2.6's quic-go offers QUIC v1 only".into())),
        "connectionmigration" => return Ok(Launch::Unsupported("quic-go sends no preferred_address".into())),
        other => return Ok(Launch::Unsupported(format!("test case {other}"))),
    }
    let host = match c.listen {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    };
    let conf = format!(
        // A client connecting to an IP address sends no SNI: default_sni
        // makes Caddy pick the certificate anyway.
        "{{\n  admin off\n  auto_https off\n  skip_install_trust\n  default_sni server4\n  storage file_system {storage}\n  servers {{\n    protocols h1 h2 h3\n  }}\n}}\nhttps://{host}:{port}, https://server4:{port}, https://localhost:{port} {{\n  bind {bind}\n  tls {cert} {key}\n  root * {www}\n  file_server\n}}\n",
        storage = c.work.join("caddy-data").display(),
        port = c.listen.port(),
        bind = c.listen.ip(),
        cert = c.certs.join("cert.pem").display(),
        key = c.certs.join("priv.key").display(),
        www = c.www.display(),
    );
    let file = c.work.join("Caddyfile");
    std::fs::write(&file, conf).map_err(|e| e.to_string())?;
    let mut cmd = Command::new("caddy");
    cmd.args(["run", "--adapter", "caddyfile", "--config"]).arg(&file);
    cmd.env("HOME", &c.work).env("XDG_DATA_HOME", c.work.join("xdg-data")).env("XDG_CONFIG_HOME", c.work.join("xdg-config"));
    spawn(cmd, &c.log)
}

// ----- ngtcp2 ----------------------------------------------------------------

fn ngtcp2_server(c: &ServerCtx) -> Result<Launch, String> {
    let (host, port) = host_port(c.listen);
    let mut cmd = Command::new("gtlsserver");
    cmd.arg("-q").arg("-d").arg(&c.www).arg("--qlog-dir").arg(&c.qlog_dir).env("SSLKEYLOGFILE", &c.keylog);
    match c.testcase.as_str() {
        "handshake" | "transfer" | "http3" | "multiconnect" | "resumption" | "zerortt" | "keyupdate" | "chacha20" | "ecn" => {}
        "retry" => {
            cmd.arg("-V");
        }
        "v2" => return Ok(Launch::Unsupported("ngtcp2 0.12 knows only the v2 draft (0x709a50c4), not QUIC v2 (RFC 9369)".into())),
        "connectionmigration" => {
            // A second address the client may move to: the same server on
            // another port is not possible with one process; ngtcp2 wants a
            // socket it listens on, so offer the runner's listen address.
            return Ok(Launch::Unsupported("gtlsserver listens on one address; preferred_address needs a second one".into()));
        }
        other => return Ok(Launch::Unsupported(format!("test case {other}"))),
    }
    cmd.arg(&host).arg(&port).arg(c.certs.join("priv.key")).arg(c.certs.join("cert.pem"));
    spawn(cmd, &c.log)
}

fn ngtcp2_client(c: &ClientCtx) -> Result<Launch, String> {
    let first = c.urls.first().ok_or("no URL")?;
    let authority = first.trim_start_matches("https://").split('/').next().unwrap_or_default().to_string();
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h.trim_matches(|ch| ch == '[' || ch == ']').to_string(), p.to_string()),
        None => return Err(format!("{first}: no port")),
    };
    let base = |urls: &[String], extra: &[String]| -> Result<Command, String> {
        let mut cmd = Command::new("gtlsclient");
        cmd.args(["-q", "--exit-on-all-streams-close", "--sni=server4", "--timeout=60s"]);
        cmd.arg(format!("--download={}", c.downloads.display())).arg("--qlog-dir").arg(&c.qlog_dir).env("SSLKEYLOGFILE", &c.keylog);
        cmd.args(extra).arg(&host).arg(&port).args(urls);
        logged(cmd, &c.log)
    };
    let session = c.work.join("ngtcp2.session").display().to_string();
    let tp = c.work.join("ngtcp2.tp").display().to_string();
    let cmds = match c.testcase.as_str() {
        "handshake" | "transfer" | "http3" | "retry" | "ecn" => vec![base(&c.urls, &[])?],
        "multiconnect" => c.urls.iter().map(|u| base(std::slice::from_ref(u), &[])).collect::<Result<_, _>>()?,
        "chacha20" => vec![base(&c.urls, &["--ciphers=NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+CHACHA20-POLY1305".into()])?],
        "keyupdate" => vec![base(&c.urls, &["--key-update=1ms".into()])?],
        "resumption" | "zerortt" => {
            let files = vec![format!("--session-file={session}"), format!("--tp-file={tp}")];
            let mut second = files.clone();
            if c.testcase == "resumption" {
                second.push("--disable-early-data".into());
            }
            vec![base(&c.urls[..1], &files)?, base(&c.urls[1..], &second)?]
        }
        "v2" => return Ok(Launch::Unsupported("ngtcp2 0.12 knows only the v2 draft, not QUIC v2 (RFC 9369)".into())),
        other => return Ok(Launch::Unsupported(format!("test case {other}"))),
    };
    Ok(Launch::Sequence(cmds))
}

// ----- Chromium -------------------------------------------------------------

fn chromium_client(c: &ClientCtx) -> Result<Launch, String> {
    // Chromium loads a page: the cases whose point is the connection
    // itself, not a client's scripted behaviour or a file set.
    match c.case.as_str() {
        "handshake" | "http3" | "longrtt" | "transferloss" | "transfercorruption" | "handshakeloss" | "handshakecorruption" | "blackhole" => {}
        _ => return Ok(Launch::Unsupported("Chromium loads one page; this case needs a scripted client (files, resumption, key update, migration)".into())),
    }
    let first = c.urls.first().ok_or("no URL")?;
    let origin = first.trim_start_matches("https://").split('/').next().unwrap_or_default().to_string();
    let spki = crate::certs::leaf_spki_sha256_base64(&c.certs)?;
    let mut cmd = Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]);
    cmd.arg(format!("--user-data-dir={}", c.work.join("chromium-profile").display()));
    cmd.arg(format!("--origin-to-force-quic-on={origin}"));
    cmd.arg(format!("--ignore-certificate-errors-spki-list={spki}"));
    cmd.arg("--dump-dom").arg(first);
    cmd.env("SSLKEYLOGFILE", &c.keylog);
    // The DOM goes to a file the runner checks for the page's text.
    let dom = std::fs::File::create(c.downloads.join("dom.html")).map_err(|e| e.to_string())?;
    let err = std::fs::OpenOptions::new().create(true).append(true).open(&c.log).map_err(|e| e.to_string())?;
    cmd.stdout(Stdio::from(dom)).stderr(Stdio::from(err)).stdin(Stdio::null());
    cmd.spawn().map(Launch::Started).map_err(|e| format!("chromium: {e}"))
}
