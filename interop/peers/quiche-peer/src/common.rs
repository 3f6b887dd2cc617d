//! Pieces shared by the client and the server: quiche configuration, key
//! and qlog files, connection IDs and the UDP receive/send helpers.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

pub const ALPN_HQ: &[u8] = b"hq-interop";
pub const ALPN_H3: &[u8] = b"h3";

/// Our source connection IDs all have this length, so a short-header packet
/// can be parsed without per-connection state.
pub const CID_LEN: usize = 16;

/// Large enough for any UDP datagram.
pub const MAX_DATAGRAM: usize = 65535;

/// Bytes per packet we send. quiche defaults to 1200; the runner's links
/// have a 1500-byte MTU, so 1350 leaves room for IPv6 and UDP headers.
const MAX_SEND_PAYLOAD: usize = 1350;

const MB: u64 = 1024 * 1024;

/// Settings that change the quiche Config between roles and test cases.
pub struct ConfigOptions<'a> {
    pub alpns: &'a [&'a [u8]],
    pub chacha_only: bool,
    pub early_data: bool,
    /// (cert.pem, priv.key) for the server.
    pub cert_and_key: Option<(String, String)>,
}

pub fn make_config(opts: &ConfigOptions) -> Result<quiche::Config, String> {
    let mut config =
        if opts.chacha_only { chacha_only_config()? } else { quiche::Config::new(quiche::PROTOCOL_VERSION).map_err(|e| format!("quiche config: {e}"))? };

    if let Some((cert, key)) = &opts.cert_and_key {
        config.load_cert_chain_from_pem_file(cert).map_err(|e| format!("loading certificate chain {cert}: {e}"))?;
        config.load_priv_key_from_pem_file(key).map_err(|e| format!("loading private key {key}: {e}"))?;
    }

    // The runner's clients do not check the server certificate (it is
    // signed by a throw-away CA), and neither do we.
    config.verify_peer(false);

    config.set_application_protos(opts.alpns).map_err(|e| format!("ALPN: {e}"))?;

    config.set_max_idle_timeout(30_000);
    config.set_max_send_udp_payload_size(MAX_SEND_PAYLOAD);

    // Generous limits so flow control never is the bottleneck in a test;
    // the windows let quiche's auto-tuning grow up to the same sizes.
    config.set_initial_max_data(25 * MB);
    config.set_initial_max_stream_data_bidi_local(10 * MB);
    config.set_initial_max_stream_data_bidi_remote(10 * MB);
    config.set_initial_max_stream_data_uni(MB);
    config.set_max_connection_window(25 * MB);
    config.set_max_stream_window(16 * MB);
    // The multiplexing test requires the server to advertise <= 1000.
    config.set_initial_max_streams_bidi(1000);
    // HTTP/3 needs three unidirectional streams per side (control, QPACK
    // encoder and decoder) plus any GREASE streams.
    config.set_initial_max_streams_uni(100);

    if opts.early_data {
        config.enable_early_data();
    }

    if std::env::var_os("SSLKEYLOGFILE").is_some() {
        config.log_keys();
    }

    Ok(config)
}

/// Builds a Config whose TLS context offers TLS_CHACHA20_POLY1305_SHA256
/// only.
///
/// BoringSSL ignores the TLS 1.2 cipher string for TLS 1.3, but the version
/// vendored by boring-sys 5 has SSL_CTX_set1_tls13_ciphers, which replaces
/// the built-in TLS 1.3 list. The `boring` crate does not wrap it, so it is
/// called through boring-sys on the builder we then hand to quiche.
fn chacha_only_config() -> Result<quiche::Config, String> {
    use boring::ssl::{SslContextBuilder, SslMethod};

    const TLS_CHACHA20_POLY1305_SHA256: u16 = 0x1303;

    let builder = SslContextBuilder::new(SslMethod::tls()).map_err(|e| format!("SSL_CTX_new: {e}"))?;
    let ciphers = [TLS_CHACHA20_POLY1305_SHA256];
    // SAFETY: builder.as_ptr() is a live SSL_CTX owned by `builder`; the
    // cipher array outlives the call (BoringSSL copies it), and a null
    // flags pointer is documented as allowed.
    let rc = unsafe { boring_sys::SSL_CTX_set1_tls13_ciphers(builder.as_ptr(), ciphers.as_ptr(), std::ptr::null(), ciphers.len()) };
    if rc != 1 {
        return Err("SSL_CTX_set1_tls13_ciphers rejected 0x1303".into());
    }
    quiche::Config::with_boring_ssl_ctx_builder(quiche::PROTOCOL_VERSION, builder).map_err(|e| format!("quiche config from SSL_CTX: {e}"))
}

/// Attaches SSLKEYLOGFILE and QLOGDIR output to a new connection.
///
/// Each connection gets its own append-mode handle on the key log: quiche
/// writes one whole line per write(), and O_APPEND keeps lines from
/// different connections from overwriting each other.
pub fn attach_logs(conn: &mut quiche::Connection, role: &str) {
    if let Some(path) = std::env::var_os("SSLKEYLOGFILE") {
        match OpenOptions::new().create(true).append(true).open(&path) {
            Ok(f) => conn.set_keylog(Box::new(f)),
            Err(e) => log::warn!("cannot open SSLKEYLOGFILE {path:?}: {e}"),
        }
    }

    if let Some(dir) = std::env::var_os("QLOGDIR") {
        let mut path = PathBuf::from(dir);
        if let Err(e) = std::fs::create_dir_all(&path) {
            log::warn!("cannot create QLOGDIR {path:?}: {e}");
            return;
        }
        path.push(format!("{role}-{}.sqlog", conn.trace_id()));
        match File::create(&path) {
            Ok(f) => conn.set_qlog(Box::new(BufWriter::new(f)), format!("quiche-peer {role}"), format!("quiche-peer {role} {}", conn.trace_id())),
            Err(e) => log::warn!("cannot create qlog {path:?}: {e}"),
        }
    }
}

pub fn random_bytes(buf: &mut [u8]) -> Result<(), String> {
    boring::rand::rand_bytes(buf).map_err(|e| format!("RAND_bytes: {e}"))
}

pub fn random_cid() -> Result<quiche::ConnectionId<'static>, String> {
    let mut cid = vec![0u8; CID_LEN];
    random_bytes(&mut cid)?;
    Ok(quiche::ConnectionId::from_vec(cid))
}

pub fn random_u128() -> Result<u128, String> {
    let mut b = [0u8; 16];
    random_bytes(&mut b)?;
    Ok(u128::from_be_bytes(b))
}

/// Waits up to `wait` for a datagram, then drains whatever else is already
/// queued without blocking, handing each datagram to `handle`.
///
/// Returns the number of datagrams read.
pub fn recv_batch(socket: &UdpSocket, wait: Duration, buf: &mut [u8], mut handle: impl FnMut(&mut [u8], SocketAddr)) -> io::Result<usize> {
    // set_read_timeout rejects zero; a zero wait means "just drain".
    let mut count = 0;
    if !wait.is_zero() {
        socket.set_read_timeout(Some(wait))?;
        match socket.recv_from(buf) {
            Ok((len, from)) => {
                handle(&mut buf[..len], from);
                count += 1;
            }
            Err(e) if is_timeout(&e) => return Ok(0),
            Err(e) => return Err(e),
        }
    }

    socket.set_nonblocking(true)?;
    let result = loop {
        match socket.recv_from(buf) {
            Ok((len, from)) => {
                handle(&mut buf[..len], from);
                count += 1;
            }
            Err(e) if is_timeout(&e) => break Ok(count),
            Err(e) => break Err(e),
        }
    };
    socket.set_nonblocking(false)?;
    result
}

fn is_timeout(e: &io::Error) -> bool {
    // Interrupted: a signal (SIGTERM for the server) cut the wait short;
    // the caller's loop checks for it.
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted)
}

/// Sends everything quiche has queued for `conn`.
///
/// Pacing hints (SendInfo::at) are ignored: this peer uses plain sockets,
/// as quiche's own examples do without GSO/SO_TXTIME.
pub fn flush(socket: &UdpSocket, conn: &mut quiche::Connection, out: &mut [u8]) -> Result<(), String> {
    loop {
        let (len, info) = match conn.send(out) {
            Ok(v) => v,
            Err(quiche::Error::Done) => return Ok(()),
            Err(e) => {
                // quiche has already decided to close; make it explicit so
                // the peer learns why.
                let _ = conn.close(false, 0x1, b"send failed");
                return Err(format!("{} send: {e}", conn.trace_id()));
            }
        };
        if let Err(e) = socket.send_to(&out[..len], info.to) {
            // A lost datagram is something QUIC recovers from; log it.
            log::debug!("{} send_to {}: {e}", conn.trace_id(), info.to);
        }
    }
}

/// Describes why a connection ended, for error messages.
pub fn close_reason(conn: &quiche::Connection) -> String {
    fn fmt(kind: &str, e: &quiche::ConnectionError) -> String {
        format!("{kind} {} error 0x{:x} reason {:?}", if e.is_app { "application" } else { "transport" }, e.error_code, String::from_utf8_lossy(&e.reason))
    }
    if let Some(e) = conn.peer_error() {
        fmt("peer closed with", e)
    } else if let Some(e) = conn.local_error() {
        fmt("we closed with", e)
    } else if conn.is_timed_out() {
        "idle timeout".into()
    } else {
        "closed without error".into()
    }
}
