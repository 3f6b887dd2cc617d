//! `quicpro`: the command-line face of the stack.
//!
//! - `inspect` dissects QUIC datagrams with quic-core's parsers and Initial
//!   packet protection.
//! - `serve` runs an HTTP/3 server (worker threads on one port).
//! - `get` fetches URLs over HTTP/3.
//!
//! Exit codes: 0 when everything was understood, 1 when some packet could
//! not be parsed or decrypted (the output says which), 2 for bad usage or
//! input that is not a datagram at all (odd hex, missing file).

mod cc_opts;
mod describe;
mod get;
mod hq;
mod inspect;
mod path_opts;
mod serve;
mod static_files;
mod steering;

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::inspect::{Options, Stats};

/// mimalloc instead of glibc malloc: under load the runtime allocates and
/// frees many small objects per request (stream state, header fields),
/// and glibc's bins (`_int_malloc`, `_int_free`, `unlink_chunk`) took about
/// a fifth of the server's CPU in `perf` profiles of the load benchmark.
/// The `system-alloc` feature leaves it out for heap profilers.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "quicpro", version, about = "QUIC + HTTP/3 toolkit")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Dissect QUIC datagrams: headers of every coalesced packet, and the
    /// frames of Initial packets (whose keys are public, RFC 9001 §5.2).
    Inspect(InspectArgs),
    /// Serve HTTP/3: files from --root, /echo, /bytes/<n>.
    Serve(ServeArgs),
    /// Fetch URLs over HTTP/3 (curl-like).
    Get(GetArgs),
    /// Write a self-signed certificate and key (PEM) for localhost.
    GenCert(GenCertArgs),
}

#[derive(Debug, Args)]
struct GenCertArgs {
    /// Directory for server.pem and server.key.
    #[arg(long, default_value = "certs")]
    dir: PathBuf,
    /// Extra DNS names besides localhost.
    #[arg(long)]
    name: Vec<String>,
}

fn run_gen_cert(a: &GenCertArgs) -> ExitCode {
    let mut names = vec!["localhost".to_string()];
    names.extend(a.name.iter().cloned());
    let ck = match rcgen::generate_simple_self_signed(names) {
        Ok(ck) => ck,
        Err(e) => {
            eprintln!("quicpro gen-cert: {e}");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = std::fs::create_dir_all(&a.dir) {
        eprintln!("quicpro gen-cert: {}: {e}", a.dir.display());
        return ExitCode::from(1);
    }
    let cert = a.dir.join("server.pem");
    let key = a.dir.join("server.key");
    let written = std::fs::write(&cert, ck.cert.pem()).and_then(|_| std::fs::write(&key, ck.signing_key.serialize_pem()));
    match written {
        Ok(()) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600));
            }
            println!("wrote {} and {}", cert.display(), key.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("quicpro gen-cert: {e}");
            ExitCode::from(1)
        }
    }
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    path: path_opts::PathOptions,
    #[command(flatten)]
    cc: cc_opts::CcOptions,
    /// Announce this address in preferred_address (RFC 9000 §9.6), once per
    /// family (IPv4 and/or IPv6): clients move there after the handshake.
    /// IP or IP:PORT (no port: the server's). Packets to it must reach this
    /// server, e.g. an address it is bound to with the default --host ::.
    #[arg(long, value_name = "ADDR", value_parser = parse_preferred_address)]
    preferred_address: Vec<std::net::SocketAddr>,
    /// QUIC-LB server ID (draft-ietf-quic-load-balancers), 1..=15 octets in
    /// hex: every connection ID carries it (after the config rotation bits)
    /// so a QUIC-LB load balancer routes the connection here.
    #[arg(long, value_name = "HEX")]
    server_id: Option<String>,
    /// QUIC-LB key (16 octets in hex): connection IDs are encrypted (one
    /// AES pass or four, by length); needs --server-id. The worker is then
    /// invisible, so connection-ID steering is off.
    #[arg(long, value_name = "HEX", requires = "server_id")]
    lb_key: Option<String>,
    /// QUIC-LB config rotation codepoint (0..=6) of the IDs.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=6))]
    lb_config_rotation: u8,
    #[arg(long, default_value = "::")]
    host: String,
    #[arg(long, default_value_t = 4433)]
    port: u16,
    /// Directory of static files.
    #[arg(long)]
    root: Option<PathBuf>,
    /// PEM certificate chain; without it a self-signed one is generated.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Worker threads sharing the port (SO_REUSEPORT).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// epoll | io_uring | busy_poll (default: the QUICPRO_* environment).
    #[arg(long)]
    backend: Option<String>,
    /// Write a qlog file per connection into this directory.
    #[arg(long)]
    qlog_dir: Option<PathBuf>,
    /// Write TLS secrets to $SSLKEYLOGFILE.
    #[arg(long)]
    keylog: bool,
    /// Stop after this many seconds (default: run until SIGINT/SIGTERM).
    #[arg(long)]
    duration: Option<f64>,
    /// Steer datagrams to the worker named in their connection ID (SO_REUSEPORT
    /// eBPF; needs root or CAP_BPF + CAP_NET_ADMIN). auto: on when it loads.
    #[arg(long, value_enum, default_value_t = steering::SteeringMode::Auto)]
    steering: steering::SteeringMode,
    /// Address validation with Retry (RFC 9000 §8.1.2): never, always, or
    /// under-load[=N] (only while more than N handshakes are in progress;
    /// N defaults to 1024).
    #[arg(long, default_value = "under-load", value_parser = serve::parse_retry)]
    retry: quic_core::endpoint::RetryPolicy,
    /// Send one datagram per message (no UDP_SEGMENT), e.g. to measure GSO.
    #[arg(long)]
    no_gso: bool,
    /// Most datagrams a connection writes per segmented send (GSO batch);
    /// capped by the 64 KiB a single UDP_SEGMENT send may carry.
    #[arg(long, default_value_t = serve::DEFAULT_GSO_SEGMENTS)]
    gso_segments: usize,
    /// QUIC versions this server speaks (default: v1,v2). A client's Initial
    /// in one of them is answered in the client's most preferred one it
    /// offers (compatible version negotiation, RFC 9368).
    #[arg(long, value_parser = parse_versions)]
    versions: Option<Versions>,
    /// Live connections per worker at most; a new client beyond it gets
    /// CONNECTION_REFUSED at once (RFC 9000 §5.2.2).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: u64,
    /// Seconds a handshake may take before the connection is discarded
    /// (0: only the idle timeout applies).
    #[arg(long, default_value_t = 10.0)]
    handshake_timeout: f64,
    /// Ask clients for a certificate chaining to these CAs (PEM; mutual
    /// TLS); a client without one is refused unless --client-cert-optional.
    #[arg(long)]
    client_ca: Option<PathBuf>,
    /// With --client-ca: serve clients that present no certificate too.
    #[arg(long, requires = "client_ca")]
    client_cert_optional: bool,
}

#[derive(Debug, Args)]
struct GetArgs {
    #[command(flatten)]
    path: path_opts::PathOptions,
    #[command(flatten)]
    cc: cc_opts::CcOptions,
    /// https:// URLs, all on the same server.
    #[arg(required = true)]
    urls: Vec<String>,
    /// Write the body here instead of stdout (one URL only).
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    /// Do not verify the server certificate.
    #[arg(short = 'k', long)]
    insecure: bool,
    /// Trust these CA certificates (PEM) instead of the system roots.
    #[arg(long)]
    cacert: Option<PathBuf>,
    /// Present this client certificate (PEM chain) when the server asks.
    #[arg(long, requires = "client_key")]
    client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, requires = "client_cert")]
    client_key: Option<PathBuf>,
    /// Print response headers and the handshake outcome to stderr.
    #[arg(short = 'v', long)]
    verbose: bool,
    /// Fetch each URL on a new connection (resumes the TLS session, uses 0-RTT).
    #[arg(long)]
    reconnect: bool,
    /// POST this file as the request body.
    #[arg(long)]
    post: Option<PathBuf>,
    /// Seconds to wait for the server.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// Show a progress line on stderr.
    #[arg(long)]
    progress: bool,
    /// Write TLS secrets to $SSLKEYLOGFILE.
    #[arg(long)]
    keylog: bool,
    /// Speak the interop runner's `hq-interop` (HTTP/0.9 over QUIC)
    /// instead of HTTP/3.
    #[arg(long)]
    hq: bool,
    /// RFC 9218 priority of the requests, e.g. "u=1, i": the first value
    /// for the first URL, the second for the second…, the last for the rest.
    #[arg(long = "priority", value_name = "u=N[, i]")]
    priorities: Vec<String>,
    /// Extra request header, "name: value" (repeatable), e.g. -H "range: bytes=0-99".
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// Send HEAD instead of GET and print the response headers to stdout.
    #[arg(short = 'I', long)]
    head: bool,
    /// Save each body as DIR/<last path segment> (several URLs).
    #[arg(long, value_name = "DIR", conflicts_with = "output")]
    output_dir: Option<PathBuf>,
    /// Fetch the first URL on one connection and the others on a second,
    /// resumed connection (0-RTT).
    #[arg(long, conflicts_with = "reconnect")]
    resume_rest: bool,
    /// Start a TLS key update as soon as the handshake allows (RFC 9001 §6).
    #[arg(long)]
    key_update: bool,
    /// TLS 1.3 cipher suites to offer, comma separated, e.g. TLS_CHACHA20_POLY1305_SHA256.
    #[arg(long, value_name = "LIST")]
    ciphers: Option<String>,
    /// Write a qlog file per connection into this directory.
    #[arg(long)]
    qlog_dir: Option<PathBuf>,
    /// Once this many response body bytes have arrived on a connection,
    /// move it to a new local port (active migration, RFC 9000 §9.2).
    #[arg(long, value_name = "BYTES")]
    migrate_after: Option<u64>,
    /// QUIC version of the first Initial: v1 or v2. A server that does
    /// not speak it answers with Version Negotiation and the client starts
    /// over in a version both speak, which RFC 9368 §4 lets complete only
    /// if the server sends version_information (Caddy 2.6's quic-go does
    /// not). To prefer v2 where offered, start in v1 with --versions v2,v1.
    #[arg(long, default_value = "v1", value_parser = parse_version)]
    quic_version: quic_core::Version,
    /// Versions in order of preference, offered in version_information
    /// (RFC 9368): e.g. v2,v1 asks a server to move a v1 connection to v2.
    #[arg(long, value_parser = parse_versions)]
    versions: Option<Versions>,
}

/// A list of QUIC versions (a newtype, so clap takes it as one value).
#[derive(Debug, Clone)]
struct Versions(Vec<quic_core::Version>);

fn parse_version(s: &str) -> Result<quic_core::Version, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "v1" | "1" | "0x00000001" => Ok(quic_core::Version::V1),
        "v2" | "0x6b3343cf" => Ok(quic_core::Version::V2),
        other => Err(format!("{other:?}: QUIC versions are v1 and v2")),
    }
}

fn unhex(s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim().trim_start_matches("0x");
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{s:?} is not an even number of hex digits"));
    }
    Ok((0..s.len()).step_by(2).filter_map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect())
}

/// `--server-id`, `--lb-key`, `--lb-config-rotation` as a connection ID format.
fn cid_format(a: &ServeArgs) -> Result<quic_core::quic_lb::ServerCidFormat, String> {
    use quic_core::quic_lb::ServerCidFormat;
    let Some(sid) = &a.server_id else { return Ok(ServerCidFormat::Workers) };
    let sid = unhex(sid).map_err(|e| format!("--server-id: {e}"))?;
    match &a.lb_key {
        None => ServerCidFormat::plaintext(a.lb_config_rotation, &sid).map_err(|e| format!("--server-id: {e}")),
        Some(k) => {
            let key: [u8; 16] = unhex(k).map_err(|e| format!("--lb-key: {e}"))?.try_into().map_err(|_| "--lb-key: 16 octets (32 hex digits)".to_string())?;
            ServerCidFormat::encrypted(a.lb_config_rotation, &sid, &key).map_err(|e| format!("--server-id/--lb-key: {e}"))
        }
    }
}

/// `IP` or `IP:PORT` (port 0: the server's own).
fn parse_preferred_address(s: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(a) = s.parse::<std::net::SocketAddr>() {
        return Ok(a);
    }
    let ip: std::net::IpAddr = s.trim_start_matches('[').trim_end_matches(']').parse().map_err(|e| format!("{s:?}: {e}"))?;
    Ok(std::net::SocketAddr::new(ip, 0))
}

fn preferred_addresses(list: &[std::net::SocketAddr]) -> Option<quic_core::endpoint::PreferredAddresses> {
    let mut pa = quic_core::endpoint::PreferredAddresses::default();
    for a in list {
        match a {
            std::net::SocketAddr::V4(v4) => pa.v4 = Some(*v4),
            std::net::SocketAddr::V6(v6) => pa.v6 = Some(*v6),
        }
    }
    (pa.v4.is_some() || pa.v6.is_some()).then_some(pa)
}

fn parse_versions(s: &str) -> Result<Versions, String> {
    s.split(',').map(parse_version).collect::<Result<Vec<_>, _>>().map(Versions)
}

fn run_serve(a: &ServeArgs) -> ExitCode {
    let bind = match format!("{}:{}", if a.host.contains(':') { format!("[{}]", a.host) } else { a.host.clone() }, a.port).parse() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("quicpro serve: bad --host/--port: {e}");
            return ExitCode::from(2);
        }
    };
    let tls = match (&a.cert, &a.key) {
        (Some(c), Some(k)) => quic_core::tls::ServerTlsOptions::from_pem_files(c, k, &[b"h3", b"hq-interop"]),
        _ => match serve::self_signed(&[]) {
            Ok((cert, key)) => {
                eprintln!("quicpro serve: no --cert given, using a generated self-signed certificate for localhost");
                Ok(quic_core::tls::ServerTlsOptions::new(vec![cert], key, &[b"h3", b"hq-interop"]))
            }
            Err(e) => {
                eprintln!("quicpro serve: {e}");
                return ExitCode::from(1);
            }
        },
    };
    let mut tls = match tls {
        Ok(t) => t,
        Err(e) => {
            eprintln!("quicpro serve: {e}");
            return ExitCode::from(2);
        }
    };
    tls.key_log = a.keylog;
    if let Some(ca) = &a.client_ca {
        match quic_core::tls::config::ClientAuth::from_ca_file(ca, !a.client_cert_optional) {
            Ok(auth) => tls.client_auth = auth,
            Err(e) => {
                eprintln!("quicpro serve: --client-ca: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let mut backend = match io_backends::select::BackendConfig::from_env() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("quicpro serve: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(b) = &a.backend {
        match io_backends::select::BackendConfig::from_lookup(|n| if n == "QUICPRO_BACKEND" { Some(b.clone()) } else { std::env::var(n).ok() }) {
            Ok(c) => backend = c,
            Err(e) => {
                eprintln!("quicpro serve: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if a.no_gso {
        backend.udp.gso = false;
    }
    if let Some(d) = &a.qlog_dir {
        let _ = std::fs::create_dir_all(d);
    }
    let cfg = serve::ServeConfig {
        bind,
        root: a.root.clone(),
        tls,
        workers: a.workers,
        backend,
        qlog_dir: a.qlog_dir.clone(),
        duration: a.duration.map(std::time::Duration::from_secs_f64),
        drain: std::time::Duration::from_secs(5),
        steering: a.steering,
        retry: a.retry,
        gso_segments: a.gso_segments,
        path: a.path,
        cc: a.cc,
        preferred_address: preferred_addresses(&a.preferred_address),
        cid_format: match cid_format(a) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("quicpro serve: {e}");
                return ExitCode::from(2);
            }
        },
        versions: a.versions.clone().map(|v| v.0).unwrap_or_default(),
        max_connections: a.max_connections as usize,
        handshake_timeout: handshake_timeout(a.handshake_timeout),
    };
    match serve::serve(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quicpro serve: {e}");
            ExitCode::from(1)
        }
    }
}

/// `--handshake-timeout` seconds: 0 (or anything not a positive finite
/// number) turns the limit off.
fn handshake_timeout(secs: f64) -> Option<std::time::Duration> {
    (secs.is_finite() && secs > 0.0).then(|| std::time::Duration::from_secs_f64(secs.min(86_400.0)))
}

fn run_get(a: &GetArgs) -> ExitCode {
    if let Some(d) = &a.qlog_dir {
        let _ = std::fs::create_dir_all(d);
    }
    let cfg = get::GetConfig {
        urls: a.urls.clone(),
        output: match (&a.output, &a.output_dir) {
            (Some(f), _) => get::Output::File(f.clone()),
            (None, Some(d)) => get::Output::Dir(d.clone()),
            (None, None) => get::Output::Stdout,
        },
        insecure: a.insecure,
        cacert: a.cacert.clone(),
        client_cert: a.client_cert.clone().zip(a.client_key.clone()),
        verbose: a.verbose,
        plan: if a.reconnect {
            get::Plan::PerUrl
        } else if a.resume_rest {
            get::Plan::FirstThenRest
        } else {
            get::Plan::One
        },
        timeout: std::time::Duration::from_secs_f64(a.timeout),
        post: a.post.clone(),
        progress: a.progress,
        keylog: a.keylog,
        hq: a.hq,
        priorities: a.priorities.clone(),
        headers: match a.headers.iter().map(|h| get::parse_header(h)).collect::<Result<Vec<_>, _>>() {
            Ok(h) => h,
            Err(e) => {
                eprintln!("quicpro get: {e}");
                return ExitCode::from(2);
            }
        },
        head: a.head,
        key_update: a.key_update,
        ciphers: match a.ciphers.as_deref().map(get::parse_ciphers).transpose() {
            Ok(c) => c.unwrap_or_default(),
            Err(e) => {
                eprintln!("quicpro get: {e}");
                return ExitCode::from(2);
            }
        },
        qlog_dir: a.qlog_dir.clone(),
        version: a.quic_version,
        versions: a.versions.clone().map(|v| v.0).unwrap_or_default(),
        path: a.path,
        cc: a.cc,
        migrate_after: a.migrate_after,
    };
    match get::get(cfg) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("quicpro get: {e}");
            ExitCode::from(1)
        }
    }
}

#[derive(Debug, Args)]
struct InspectArgs {
    /// A capture file in the format of shared/data/quic-initials-from-pcaps.json;
    /// every entry is dissected.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// The client's original Destination Connection ID (hex): derives the
    /// Initial keys of server packets and checks Retry integrity tags.
    #[arg(long, value_name = "HEX")]
    odcid: Option<String>,

    /// Length of the DCID in short-header packets, which do not encode it.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u8).range(0..=20))]
    short_dcid_len: u8,

    /// Datagrams as hex (whitespace, ':' separators and a 0x prefix are accepted).
    #[arg(value_name = "HEX_DATAGRAM")]
    datagrams: Vec<String>,
}

/// A problem with what the user gave us, before any dissection.
fn usage_error(msg: &str) -> ExitCode {
    eprintln!("quicpro inspect: error: {msg}");
    ExitCode::from(2)
}

fn run_inspect(args: &InspectArgs) -> ExitCode {
    let odcid = match args.odcid.as_deref().map(inspect::parse_hex) {
        None => None,
        Some(Ok(d)) if d.len() <= quic_core::MAX_CID_SIZE => Some(d),
        Some(Ok(d)) => return usage_error(&format!("--odcid is {} bytes; connection IDs are at most 20", d.len())),
        Some(Err(e)) => return usage_error(&format!("--odcid: invalid hex: {e}")),
    };
    // Validate every input before printing anything.
    let mut datagrams = Vec::with_capacity(args.datagrams.len());
    for (i, h) in args.datagrams.iter().enumerate() {
        match inspect::parse_hex(h) {
            Ok(d) if d.is_empty() => return usage_error(&format!("datagram {} is empty", i + 1)),
            Ok(d) => datagrams.push(d),
            Err(e) => return usage_error(&format!("datagram {}: invalid hex: {e}", i + 1)),
        }
    }
    let entries = match &args.json {
        Some(path) => match inspect::load_capture(path) {
            Ok(e) => e,
            Err(e) => return usage_error(&e),
        },
        None => Vec::new(),
    };
    if args.json.is_none() && datagrams.is_empty() {
        return usage_error("nothing to inspect: give hex datagrams or --json FILE");
    }

    let opts = Options { short_dcid_len: usize::from(args.short_dcid_len), odcid };
    let mut stats = Stats::default();
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = (|| -> io::Result<()> {
        inspect::inspect_capture(&mut out, &entries, &opts, &mut stats)?;
        for (i, d) in datagrams.iter().enumerate() {
            writeln!(out, "== datagram {} ({} bytes)", i + 1, d.len())?;
            inspect::inspect_datagram(&mut out, d, &opts, None, &mut stats)?;
        }
        writeln!(out, "{}", stats.summary())?;
        out.flush()
    })();
    match result {
        // A closed pipe (`| head`) is the reader's choice, not a failure.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quicpro inspect: error writing output: {e}");
            ExitCode::from(2)
        }
        Ok(()) if stats.errors > 0 => ExitCode::from(1),
        Ok(()) => ExitCode::SUCCESS,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Inspect(args) => run_inspect(args),
        Command::Serve(args) => run_serve(args),
        Command::Get(args) => run_get(args),
        Command::GenCert(args) => run_gen_cert(args),
    }
}
