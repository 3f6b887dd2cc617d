//! quiche-peer: a quic-interop-runner style endpoint built on Cloudflare's
//! quiche, used as an independent reference peer for quicpro.
//!
//! The binary follows the runner's endpoint contract (ROLE, TESTCASE,
//! REQUESTS, ...) but takes paths and the listen address from the
//! environment so it can run on loopback without docker.

mod client;
mod common;
mod server;
mod token;
mod url;

use std::process::ExitCode;

/// Exit status the runner reads as "test case not supported".
const EXIT_UNSUPPORTED: u8 = 127;

/// What the client does for a test case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientMode {
    /// All URLs on one connection, HTTP/0.9, concurrent streams.
    Transfer,
    /// One new connection per URL, one after the other.
    Multiconnect,
    /// First URL on connection 1, the rest on a resumed connection 2.
    Resumption,
    /// As resumption, but connection 2 sends its requests as 0-RTT.
    ZeroRtt,
    /// All URLs on one connection over HTTP/3.
    Http3,
    /// As Http3, and once every request is out, a PRIORITY_UPDATE frame
    /// (RFC 9218 §7.2) gives the last one urgency 0; the order in which
    /// responses complete is printed to stdout ("complete <file>").
    Priorities,
}

/// Client-side settings derived from TESTCASE.
#[derive(Clone, Copy, Debug)]
pub struct ClientCase {
    pub mode: ClientMode,
    /// Offer only TLS_CHACHA20_POLY1305_SHA256.
    pub chacha_only: bool,
}

/// Server-side settings derived from TESTCASE.
#[derive(Clone, Copy, Debug)]
pub struct ServerCase {
    /// Send a Retry to every new client.
    pub retry: bool,
}

/// Why a test case cannot be run with quiche 0.30, or None if the name is
/// not a test case at all.
fn unsupported_reason(testcase: &str) -> Option<&'static str> {
    match testcase {
        "v2" => Some(
            "quiche 0.30 implements only QUIC v1 (version_is_supported() accepts \
             0x00000001 only) and has no version_information transport parameter",
        ),
        "ecn" => Some(
            "quiche 0.30 never marks packets ECT and sends no ECN counts in ACK \
             frames (its ACK writer hard-codes ecn_counts: None)",
        ),
        "connectionmigration" => Some(
            "quiche 0.30 can neither encode nor decode the preferred_address \
             transport parameter (both are TODO in transport_params.rs)",
        ),
        _ => None,
    }
}

fn client_case(testcase: &str) -> Result<ClientCase, (String, u8)> {
    let plain = |mode| Ok(ClientCase { mode, chacha_only: false });
    match testcase {
        // Everything the runner drives with TESTCASE=transfer or handshake,
        // plus the scenario names themselves so a local harness may pass them.
        "handshake" | "transfer" | "retry" | "longrtt" | "multiplexing" | "blackhole" | "transferloss" | "transfercorruption" | "amplificationlimit"
        | "ipv6" | "rebind-port" | "rebind-addr" | "goodput" | "crosstraffic" => plain(ClientMode::Transfer),
        "multiconnect" | "handshakeloss" | "handshakecorruption" => plain(ClientMode::Multiconnect),
        "resumption" => plain(ClientMode::Resumption),
        "zerortt" => plain(ClientMode::ZeroRtt),
        "http3" => plain(ClientMode::Http3),
        "priorities" => plain(ClientMode::Priorities),
        "chacha20" => Ok(ClientCase { mode: ClientMode::Transfer, chacha_only: true }),
        "keyupdate" => Err((
            "quiche 0.30 has no API to initiate a key update; it only answers \
             updates started by the peer"
                .into(),
            EXIT_UNSUPPORTED,
        )),
        other => match unsupported_reason(other) {
            Some(why) => Err((why.into(), EXIT_UNSUPPORTED)),
            None => Err((format!("unknown test case {other:?}"), EXIT_UNSUPPORTED)),
        },
    }
}

fn server_case(testcase: &str) -> Result<ServerCase, (String, u8)> {
    match testcase {
        "retry" => Ok(ServerCase { retry: true }),
        // The server side of all of these is "serve files, answer whatever
        // the client does". keyupdate is included because the runner gives
        // the server TESTCASE=transfer there and quiche does respond to a
        // peer-initiated key update.
        "handshake"
        | "transfer"
        | "multiconnect"
        | "chacha20"
        | "resumption"
        | "zerortt"
        | "http3"
        | "keyupdate"
        | "longrtt"
        | "multiplexing"
        | "blackhole"
        | "transferloss"
        | "transfercorruption"
        | "handshakeloss"
        | "handshakecorruption"
        | "amplificationlimit"
        | "ipv6"
        | "rebind-port"
        | "rebind-addr"
        | "goodput"
        | "crosstraffic" => Ok(ServerCase { retry: false }),
        other => match unsupported_reason(other) {
            Some(why) => Err((why.into(), EXIT_UNSUPPORTED)),
            None => Err((format!("unknown test case {other:?}"), EXIT_UNSUPPORTED)),
        },
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("quiche_peer=info")).init();

    let role = std::env::var("ROLE").unwrap_or_default();
    let testcase = std::env::var("TESTCASE").unwrap_or_default();

    let result = match role.as_str() {
        "client" => match client_case(&testcase) {
            Ok(case) => client::run(case).map_err(|e| (e, 1)),
            Err(e) => Err(e),
        },
        "server" => match server_case(&testcase) {
            Ok(case) => server::run(case).map_err(|e| (e, 1)),
            Err(e) => Err(e),
        },
        other => Err((format!("ROLE must be client or server, got {other:?}"), 1)),
    };

    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err((why, code)) => {
            if code == EXIT_UNSUPPORTED {
                eprintln!("quiche-peer: TESTCASE {testcase:?} not supported: {why}");
            } else {
                eprintln!("quiche-peer: {role} failed: {why}");
            }
            ExitCode::from(code)
        }
    }
}
