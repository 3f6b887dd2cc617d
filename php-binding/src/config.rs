//! `Quicpro\Config`: validated options shared by servers and clients.
//!
//! Every key is checked when the object is made: an unknown key, a value of
//! the wrong type or out of range, or an unreadable certificate file throws
//! `ConfigException` naming the key, so a typo cannot silently fall back to a
//! default. The object is immutable and cheap to copy into forked workers.

use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use ext_php_rs::prelude::*;
use ext_php_rs::types::{ZendHashTable, Zval};
use quic_core::config::TransportConfig;
use quic_core::endpoint::RetryPolicy;
use quic_core::recovery::cc::CongestionAlgorithm;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::errors::{ErrorKind, QpError, QpResult};

/// Parsed options. Field docs name the PHP key.
#[derive(Debug)]
pub struct ConfigData {
    /// `cert_file` / `key_file` (the same file may hold both, PEM).
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub cert_chain: Vec<CertificateDer<'static>>,
    pub key: Option<PrivateKeyDer<'static>>,
    /// `alpn`: protocols in preference order (default `['h3']`).
    pub alpn: Vec<Vec<u8>>,
    /// `session_cache`: servers keep TLS sessions in the shared-memory LRU
    /// (`quicpro.shm_size`), so any forked worker resumes any client.
    pub session_cache: bool,
    /// `early_data`: accept (server) / send (client) 0-RTT; default true.
    pub early_data: bool,
    /// `max_idle_ms` (default 30000).
    pub max_idle: Duration,
    /// `handshake_timeout_ms` (default 10000): a client's connect gives up,
    /// a server discards a connection whose handshake takes longer.
    pub handshake_timeout: Duration,
    /// `max_connections` (server, per worker; default 100000): a new client
    /// beyond it is refused with CONNECTION_REFUSED.
    pub max_connections: usize,
    /// `ca_file` (client: extra trust anchors, PEM).
    pub ca_file: Option<PathBuf>,
    /// `client_ca_file` (server): ask clients for a certificate chaining to
    /// these CAs (mutual TLS); `client_cert_required` (default true) refuses
    /// clients without one.
    pub client_ca_file: Option<PathBuf>,
    pub client_cert_required: bool,
    /// `client_cert_file` / `client_key_file` (client): the certificate to
    /// present when a server asks (the key may be in the same file).
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    /// `verify_peer` (client; default true).
    pub verify_peer: bool,
    /// `server_name` (client SNI; default: the host passed to connect).
    pub server_name: Option<String>,
    /// `quic_version`: the version of a client's first Initial, `v1`
    /// (default) or `v2`.
    pub quic_version: quic_core::Version,
    /// `versions`: versions in order of preference (RFC 9368). A server
    /// speaks only these (others get Version Negotiation); a client offers
    /// them in version_information. Empty: v1 and v2.
    pub versions: Vec<quic_core::Version>,
    /// `max_udp_payload_size`: largest UDP payload accepted and the bound
    /// of path MTU discovery (default 1472).
    pub max_udp_payload: u16,
    /// `mtu_discovery`: probe for larger packets than 1200 bytes (RFC
    /// 8899; default true).
    pub mtu_discovery: bool,
    /// `preferred_address`: a server announces it (RFC 9000 §9.6); "IP" or
    /// "IP:PORT", or a list with one per family. A port of 0: the server's.
    pub preferred_address: Option<quic_core::endpoint::PreferredAddresses>,
    /// `server_id` (hex), `lb_key` (hex, 16 octets), `lb_config_rotation`:
    /// QUIC-LB connection IDs (draft-ietf-quic-load-balancers).
    pub cid_format: quic_core::quic_lb::ServerCidFormat,
    /// `congestion_control`: `cubic` (default), `newreno` or `bbr` (BBRv3).
    pub congestion: CongestionAlgorithm,
    /// `hystart`: HyStart++ in the first slow start (RFC 9406; default true).
    pub hystart: bool,
    /// `max_streams_bidi`, `max_streams_uni`.
    pub max_streams_bidi: u64,
    pub max_streams_uni: u64,
    /// `initial_max_data`, `initial_max_stream_data` (receive windows).
    pub max_data: u64,
    pub max_stream_data: u64,
    /// `retry`: `never`, `always` or `under_load` (default).
    pub retry: RetryPolicy,
    /// `reuse_port` (server; default true).
    pub reuse_port: bool,
    /// `max_body_size`: bound on a body buffered whole (`body()`,
    /// `quicpro_receive_response`); default 64 MiB.
    pub max_body_size: usize,
    /// `max_header_size`: SETTINGS_MAX_FIELD_SECTION_SIZE (default 64 KiB).
    pub max_header_size: u64,
    /// `qlog_dir`: a qlog file per connection (also `QP_TRACE=1`).
    pub qlog_dir: Option<PathBuf>,
    /// `keylog`: write TLS secrets to `SSLKEYLOGFILE`.
    pub keylog: bool,
    /// `persistent` (client; default false): `close()`, and the end of the
    /// PHP request, hand the open connection to the process's pool, and
    /// the next `quicpro_connect` to the same origin with the same options
    /// takes it instead of a new handshake (PHP-FPM workers).
    pub persistent: bool,
    /// `steering` (servers; default true): SO_REUSEPORT steering by
    /// connection ID. The eBPF group is made here, by the process that calls
    /// `Config::new` before forking, so every forked worker joins the same
    /// group; without the privileges it is simply off.
    pub steering: Option<std::sync::Arc<quicpro_bpf::ReuseportGroup>>,
    /// Why steering is off, when it was asked for.
    pub steering_error: Option<String>,
    /// Shared by every worker forked after `Config::new`: stateless-reset
    /// and address-validation token keys.
    pub reset_secret: [u8; 32],
    pub token_secret: [u8; 32],
}

const KEYS: &[&str] = &[
    "cert_file",
    "key_file",
    "alpn",
    "session_cache",
    "early_data",
    "max_idle_ms",
    "handshake_timeout_ms",
    "max_connections",
    "ca_file",
    "client_ca_file",
    "client_cert_required",
    "client_cert_file",
    "client_key_file",
    "verify_peer",
    "server_name",
    "congestion_control",
    "hystart",
    "quic_version",
    "versions",
    "max_udp_payload_size",
    "mtu_discovery",
    "preferred_address",
    "server_id",
    "lb_key",
    "lb_config_rotation",
    "max_streams_bidi",
    "max_streams_uni",
    "initial_max_data",
    "initial_max_stream_data",
    "retry",
    "reuse_port",
    "max_body_size",
    "max_header_size",
    "qlog_dir",
    "keylog",
    "steering",
    "persistent",
];

impl ConfigData {
    /// Every option at its default (what a client without a Config uses).
    pub fn defaults() -> Self {
        let mut reset_secret = [0u8; 32];
        let mut token_secret = [0u8; 32];
        let mut rng = quic_core::rand::SystemRandom::new();
        quic_core::rand::RandomSource::fill(&mut rng, &mut reset_secret);
        quic_core::rand::RandomSource::fill(&mut rng, &mut token_secret);
        Self {
            cert_file: None,
            key_file: None,
            cert_chain: Vec::new(),
            key: None,
            alpn: vec![b"h3".to_vec()],
            session_cache: false,
            early_data: true,
            max_idle: Duration::from_millis(30_000),
            handshake_timeout: Duration::from_millis(10_000),
            max_connections: 100_000,
            ca_file: None,
            client_ca_file: None,
            client_cert_required: true,
            client_cert_file: None,
            client_key_file: None,
            verify_peer: true,
            server_name: None,
            congestion: CongestionAlgorithm::Cubic,
            hystart: true,
            quic_version: quic_core::Version::V1,
            versions: Vec::new(),
            max_udp_payload: 1472,
            mtu_discovery: true,
            preferred_address: None,
            cid_format: quic_core::quic_lb::ServerCidFormat::Workers,
            max_streams_bidi: 100,
            max_streams_uni: 100,
            max_data: 16 * 1024 * 1024,
            max_stream_data: 1024 * 1024,
            retry: RetryPolicy::UnderLoad { max_handshakes: 1024 },
            reuse_port: true,
            max_body_size: 64 * 1024 * 1024,
            max_header_size: 64 * 1024,
            qlog_dir: None,
            keylog: false,
            steering: None,
            steering_error: None,
            persistent: false,
            reset_secret,
            token_secret,
        }
    }

    /// Parses a PHP options array.
    pub fn parse(options: &ZendHashTable) -> QpResult<Self> {
        let mut c = Self::defaults();
        let mut want_steering = true;
        let (mut server_id, mut lb_key, mut lb_rotation) = (None, None, 0u8);
        for (key, value) in options.iter() {
            let key = key.to_string();
            match key.as_str() {
                "cert_file" => c.cert_file = Some(path(&key, value)?),
                "key_file" => c.key_file = Some(path(&key, value)?),
                "alpn" => c.alpn = alpn(&key, value)?,
                "session_cache" => c.session_cache = boolean(&key, value)?,
                "early_data" => c.early_data = boolean(&key, value)?,
                "max_idle_ms" => c.max_idle = Duration::from_millis(int(&key, value, 1, 86_400_000)?),
                "handshake_timeout_ms" => c.handshake_timeout = Duration::from_millis(int(&key, value, 1, 600_000)?),
                "max_connections" => c.max_connections = int(&key, value, 1, 1 << 24)? as usize,
                "ca_file" => c.ca_file = Some(path(&key, value)?),
                "client_ca_file" => c.client_ca_file = Some(path(&key, value)?),
                "client_cert_required" => c.client_cert_required = boolean(&key, value)?,
                "client_cert_file" => c.client_cert_file = Some(path(&key, value)?),
                "client_key_file" => c.client_key_file = Some(path(&key, value)?),
                "verify_peer" => c.verify_peer = boolean(&key, value)?,
                "server_name" => c.server_name = Some(string(&key, value)?),
                "congestion_control" => {
                    let name = string(&key, value)?;
                    c.congestion = name
                        .parse::<CongestionAlgorithm>()
                        .map_err(|_| bad(&key, &format!("unknown congestion controller '{name}' (cubic, newreno or bbr)")))?;
                }
                "hystart" => c.hystart = boolean(&key, value)?,
                "quic_version" => c.quic_version = quic_version(&key, &string(&key, value)?)?,
                "versions" => c.versions = versions(&key, value)?,
                "max_udp_payload_size" => c.max_udp_payload = int(&key, value, 1200, 65527)? as u16,
                "mtu_discovery" => c.mtu_discovery = boolean(&key, value)?,
                "preferred_address" => c.preferred_address = Some(preferred_address(&key, value)?),
                "max_streams_bidi" => c.max_streams_bidi = int(&key, value, 1, 1 << 20)?,
                "max_streams_uni" => c.max_streams_uni = int(&key, value, 3, 1 << 20)?,
                "initial_max_data" => c.max_data = int(&key, value, 1024, 1 << 40)?,
                "initial_max_stream_data" => c.max_stream_data = int(&key, value, 1024, 1 << 40)?,
                "retry" => {
                    c.retry = match string(&key, value)?.to_ascii_lowercase().as_str() {
                        "never" => RetryPolicy::Never,
                        "always" => RetryPolicy::Always,
                        "under_load" | "under-load" => RetryPolicy::UnderLoad { max_handshakes: 1024 },
                        other => return Err(bad(&key, &format!("unknown retry policy '{other}' (never, always, under_load)"))),
                    }
                }
                "reuse_port" => c.reuse_port = boolean(&key, value)?,
                "max_body_size" => c.max_body_size = int(&key, value, 1, 1 << 40)? as usize,
                "max_header_size" => c.max_header_size = int(&key, value, 256, 16 << 20)?,
                "qlog_dir" => c.qlog_dir = Some(path(&key, value)?),
                "keylog" => c.keylog = boolean(&key, value)?,
                "persistent" => c.persistent = boolean(&key, value)?,
                "steering" => want_steering = boolean(&key, value)?,
                "server_id" => server_id = Some(hex(&key, &string(&key, value)?)?),
                "lb_key" => lb_key = Some(hex(&key, &string(&key, value)?)?),
                "lb_config_rotation" => lb_rotation = int(&key, value, 0, 6)? as u8,
                _ => return Err(QpError::new(ErrorKind::Config, format!("unknown option '{key}' (known: {})", KEYS.join(", ")))),
            }
        }
        c.load_files()?;
        c.cid_format = match (server_id, lb_key) {
            (None, None) => quic_core::quic_lb::ServerCidFormat::Workers,
            (None, Some(_)) => return Err(bad("lb_key", "needs server_id")),
            (Some(sid), None) => quic_core::quic_lb::ServerCidFormat::plaintext(lb_rotation, &sid).map_err(|e| bad("server_id", &e.to_string()))?,
            (Some(sid), Some(k)) => {
                let k: [u8; 16] = k.try_into().map_err(|_| bad("lb_key", "16 octets (32 hex digits)"))?;
                quic_core::quic_lb::ServerCidFormat::encrypted(lb_rotation, &sid, &k).map_err(|e| bad("server_id", &e.to_string()))?
            }
        };
        if want_steering && c.cert_file.is_some() {
            // Room for every worker id a CID can carry; long headers are
            // hashed over the workers that joined (see server.rs).
            // Encrypted QUIC-LB IDs hide the worker: no steering then.
            match c.cid_format.worker_layout() {
                Some((offset, len)) => {
                    let layout = quicpro_bpf::CidLayout { worker_id_offset: offset as u32, cid_len: len as u32 };
                    match quicpro_bpf::ReuseportGroup::new(quicpro_bpf::reuseport::MAX_WORKERS, layout) {
                        Ok(group) => c.steering = Some(std::sync::Arc::new(group)),
                        Err(e) => c.steering_error = Some(e.to_string()),
                    }
                }
                None => c.steering_error = Some("encrypted QUIC-LB connection IDs hide the worker".into()),
            }
        }
        Ok(c)
    }

    /// Reads the certificate and key now, so a missing file is reported by
    /// `Config::new` (naming the key) rather than by the first connection.
    fn load_files(&mut self) -> QpResult<()> {
        match (&self.cert_file, &self.key_file) {
            (Some(cert), key) => {
                let certs = quic_core::tls::config::load_certs(cert).map_err(|e| bad("cert_file", &e.to_string()))?;
                if certs.is_empty() {
                    return Err(bad("cert_file", &format!("{}: no certificate in the file", cert.display())));
                }
                let key_path = key.clone().unwrap_or_else(|| cert.clone());
                let key_name = if key.is_some() { "key_file" } else { "cert_file" };
                let k = quic_core::tls::config::load_key(&key_path).map_err(|e| match e {
                    // Already names the file.
                    quic_core::tls::TlsConfigError::File { .. } => bad(key_name, &e.to_string()),
                    other => bad(key_name, &format!("{}: {other}", key_path.display())),
                })?;
                self.cert_chain = certs;
                self.key = Some(k);
            }
            (None, Some(_)) => return Err(bad("key_file", "given without cert_file")),
            (None, None) => {}
        }
        if let Some(ca) = &self.ca_file {
            if let Err(e) = std::fs::metadata(ca) {
                return Err(bad("ca_file", &format!("{}: {e}", ca.display())));
            }
        }
        if let Some(ca) = &self.client_ca_file {
            // Parsed now so a bad file names its key at Config::new.
            self.client_auth().map_err(|e| bad("client_ca_file", &format!("{}: {e}", ca.display())))?;
        }
        match (&self.client_cert_file, &self.client_key_file) {
            (Some(_), _) => {
                self.client_tls_identity(quic_core::tls::ClientTlsOptions::new(&[]))?;
            }
            (None, Some(_)) => return Err(bad("client_key_file", "given without client_cert_file")),
            (None, None) => {}
        }
        Ok(())
    }

    /// The server's client-certificate policy from `client_ca_file`.
    pub fn client_auth(&self) -> Result<quic_core::tls::config::ClientAuth, quic_core::tls::TlsConfigError> {
        match &self.client_ca_file {
            Some(ca) => quic_core::tls::config::ClientAuth::from_ca_file(ca, self.client_cert_required),
            None => Ok(quic_core::tls::config::ClientAuth::None),
        }
    }

    /// Adds `client_cert_file` / `client_key_file` to a client's TLS options.
    pub fn client_tls_identity(&self, tls: quic_core::tls::ClientTlsOptions) -> QpResult<quic_core::tls::ClientTlsOptions> {
        let Some(cert) = &self.client_cert_file else { return Ok(tls) };
        let key = self.client_key_file.as_ref().unwrap_or(cert);
        tls.with_client_cert_files(cert, key).map_err(|e| bad("client_cert_file", &e.to_string()))
    }

    pub fn transport(&self) -> TransportConfig {
        let mut t = TransportConfig::default();
        t.max_idle_timeout = self.max_idle;
        t.handshake_timeout = Some(self.handshake_timeout);
        t.congestion = self.congestion;
        t.hystart = self.hystart;
        t.versions = self.versions.clone();
        t.max_udp_payload_size = self.max_udp_payload;
        t.mtu_discovery = self.mtu_discovery;
        t.max_concurrent_bidi_streams = self.max_streams_bidi;
        t.max_concurrent_uni_streams = self.max_streams_uni;
        t.receive_window = self.max_data;
        t.max_receive_window = t.max_receive_window.max(self.max_data);
        t.stream_receive_window = self.max_stream_data;
        t.max_stream_receive_window = t.max_stream_receive_window.max(self.max_stream_data);
        t
    }

    pub fn h3(&self) -> h3_core::connection::H3Config {
        h3_core::connection::H3Config { max_field_section_size: self.max_header_size, ..Default::default() }
    }

    /// What a pooled client connection must match to be reused, beside
    /// host and port: every option that shapes the connection.
    pub fn client_identity(&self) -> String {
        format!(
            "{:?}|{:?}|{}|{:?}|{:?}|{:?}|{}|{:?}|{:?}|{:?}|{}|{}|{}|{}|{}|{}|{}",
            self.alpn,
            self.ca_file,
            self.verify_peer,
            self.server_name,
            self.client_cert_file,
            self.client_key_file,
            self.early_data,
            self.quic_version,
            self.versions,
            self.congestion,
            self.hystart,
            self.max_udp_payload,
            self.mtu_discovery,
            self.max_streams_bidi,
            self.max_data,
            self.max_stream_data,
            self.max_header_size,
        )
    }

    pub fn alpn_refs(&self) -> Vec<&[u8]> {
        self.alpn.iter().map(|a| a.as_slice()).collect()
    }
}

fn bad(key: &str, why: &str) -> QpError {
    QpError::new(ErrorKind::Config, format!("option '{key}': {why}"))
}

fn type_name(v: &Zval) -> &'static str {
    if v.is_string() {
        "string"
    } else if v.is_long() {
        "int"
    } else if v.is_bool() {
        "bool"
    } else if v.is_array() {
        "array"
    } else if v.is_null() {
        "null"
    } else if v.is_double() {
        "float"
    } else if v.is_object() {
        "object"
    } else {
        "value"
    }
}

fn boolean(key: &str, v: &Zval) -> QpResult<bool> {
    v.bool().ok_or_else(|| bad(key, &format!("expected bool, got {}", type_name(v))))
}

fn int(key: &str, v: &Zval, min: u64, max: u64) -> QpResult<u64> {
    let n = v.long().ok_or_else(|| bad(key, &format!("expected int, got {}", type_name(v))))?;
    if n < 0 || (n as u64) < min || (n as u64) > max {
        return Err(bad(key, &format!("{n} is out of range {min}..={max}")));
    }
    Ok(n as u64)
}

fn string(key: &str, v: &Zval) -> QpResult<String> {
    match v.str() {
        Some(s) if !s.is_empty() => Ok(s.to_string()),
        Some(_) => Err(bad(key, "must not be empty")),
        None => Err(bad(key, &format!("expected string, got {}", type_name(v)))),
    }
}

fn path(key: &str, v: &Zval) -> QpResult<PathBuf> {
    Ok(PathBuf::from(string(key, v)?))
}

/// Octets written in hex.
fn hex(key: &str, s: &str) -> QpResult<Vec<u8>> {
    let s = s.trim().trim_start_matches("0x");
    if s.is_empty() || !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad(key, &format!("'{s}' is not an even number of hex digits")));
    }
    Ok((0..s.len()).step_by(2).filter_map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect())
}

/// One address or a list (at most one per family): "IP" or "IP:PORT".
fn preferred_address(key: &str, v: &Zval) -> QpResult<quic_core::endpoint::PreferredAddresses> {
    let items: Vec<String> = match (v.str(), v.array()) {
        (Some(s), _) => vec![s.to_owned()],
        (None, Some(arr)) => {
            arr.iter().map(|(_, i)| i.str().map(str::to_owned).ok_or_else(|| bad(key, "expected address strings"))).collect::<QpResult<_>>()?
        }
        (None, None) => return Err(bad(key, &format!("expected an address or a list of them, got {}", type_name(v)))),
    };
    let mut pa = quic_core::endpoint::PreferredAddresses::default();
    for it in items {
        let addr = it
            .parse::<std::net::SocketAddr>()
            .or_else(|_| it.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>().map(|ip| std::net::SocketAddr::new(ip, 0)));
        match addr {
            Ok(std::net::SocketAddr::V4(a)) => pa.v4 = Some(a),
            Ok(std::net::SocketAddr::V6(a)) => pa.v6 = Some(a),
            Err(_) => return Err(bad(key, &format!("'{it}' is not an IP address or IP:PORT"))),
        }
    }
    Ok(pa)
}

fn quic_version(key: &str, s: &str) -> QpResult<quic_core::Version> {
    match s.trim().to_ascii_lowercase().as_str() {
        "v1" | "1" => Ok(quic_core::Version::V1),
        "v2" | "2" => Ok(quic_core::Version::V2),
        other => Err(bad(key, &format!("unknown QUIC version '{other}' (v1 or v2)"))),
    }
}

/// A list of versions: an array of names or one comma-separated string.
fn versions(key: &str, v: &Zval) -> QpResult<Vec<quic_core::Version>> {
    let names: Vec<String> = match (v.str(), v.array()) {
        (Some(s), _) => s.split(',').map(str::to_owned).collect(),
        (None, Some(arr)) => arr
            .iter()
            .map(|(_, item)| item.str().map(str::to_owned).ok_or_else(|| bad(key, &format!("expected version names, found {}", type_name(item)))))
            .collect::<QpResult<_>>()?,
        (None, None) => return Err(bad(key, &format!("expected array of versions or a string, got {}", type_name(v)))),
    };
    let mut out = Vec::new();
    for n in names {
        let v = quic_version(key, &n)?;
        if !out.contains(&v) {
            out.push(v);
        }
    }
    if out.is_empty() {
        return Err(bad(key, "at least one version is needed"));
    }
    Ok(out)
}

fn alpn(key: &str, v: &Zval) -> QpResult<Vec<Vec<u8>>> {
    if let Some(s) = v.str() {
        if s.is_empty() || s.len() > 255 {
            return Err(bad(key, "a protocol name is 1..=255 bytes"));
        }
        return Ok(vec![s.as_bytes().to_vec()]);
    }
    let arr = v.array().ok_or_else(|| bad(key, &format!("expected array of strings, got {}", type_name(v))))?;
    let mut out = Vec::new();
    for (_, item) in arr.iter() {
        match item.str() {
            Some(s) if !s.is_empty() && s.len() <= 255 => out.push(s.as_bytes().to_vec()),
            Some(_) => return Err(bad(key, "a protocol name is 1..=255 bytes")),
            None => return Err(bad(key, &format!("expected array of strings, found {}", type_name(item)))),
        }
    }
    if out.is_empty() {
        return Err(bad(key, "at least one protocol is needed"));
    }
    Ok(out)
}

/// `Quicpro\Config`.
#[php_class]
#[php(name = "Quicpro\\Config")]
#[derive(Debug)]
pub struct Config {
    pub data: Rc<ConfigData>,
}

#[php_impl]
impl Config {
    /// Builds a configuration from an options array; throws
    /// `Quicpro\Exception\ConfigException` naming the first bad key.
    pub fn __construct(options: &ZendHashTable) -> PhpResult<Self> {
        Ok(Self { data: Rc::new(ConfigData::parse(options)?) })
    }

    /// The same as `new Config($options)`, in the style of the examples.
    pub fn new(options: &ZendHashTable) -> PhpResult<Self> {
        Self::__construct(options)
    }

    /// The ALPN protocols, in preference order.
    pub fn alpn(&self) -> Vec<String> {
        self.data.alpn.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect()
    }

    /// Whether servers share TLS sessions through the shared-memory cache.
    pub fn session_cache(&self) -> bool {
        self.data.session_cache
    }

    /// The idle timeout in milliseconds.
    pub fn max_idle_ms(&self) -> i64 {
        self.data.max_idle.as_millis() as i64
    }
}
