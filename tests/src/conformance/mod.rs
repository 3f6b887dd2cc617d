//! A conformance suite: every error the RFCs make a receiver detect,
//! injected into a real connection and checked against the code the peer
//! answers with (RFC 9000, RFC 9001, RFC 9114, RFC 9204).
//!
//! Each [`Case`] names the section it comes from, the moment it acts
//! ([`Phase`]: before the first Initial, once Handshake keys exist, or on a
//! confirmed connection), what our client sends ([`Step`]s: raw frames
//! sealed with the connection's real keys, raw stream bytes, rewritten
//! transport parameters) and what must come back ([`Expect`]). The same
//! table runs against a server on simulated time ([`SimNet`], in
//! `cargo test`) and against any server over UDP ([`UdpNet`]: `quicpro
//! serve`, the PHP server).

mod client;
mod http3;
mod net;
mod params;
mod qpack;
mod transport;
pub mod wire;

pub use client::{run_case, Client, Limits, Observed, Outcome};
pub use net::{Net, SimNet, UdpNet};

use h3_core::settings::Settings;
use quic_core::connection::RawSpace;
use quic_core::transport_params::TransportParameters;

/// When a case's steps run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The connection exists but nothing was sent: the first datagram the
    /// server sees is the case's (or, with rewritten transport parameters,
    /// the client's own first flight).
    Start,
    /// The client has just derived Handshake keys from the server's first
    /// flight and has not answered yet.
    HandshakeKeys,
    /// The handshake is confirmed (HANDSHAKE_DONE arrived).
    Confirmed,
    /// Confirmed, the server's HTTP/3 SETTINGS arrived, and our control
    /// stream (type 0x00 with an empty SETTINGS) is open unless the case
    /// opens control streams itself.
    H3,
    /// As [`Phase::H3`], without our control stream.
    H3Bare,
}

/// One action of the client.
#[derive(Debug, Clone)]
pub enum Step {
    /// One packet of `space` with exactly this payload, the reserved header
    /// bits set to `reserved` (RFC 9000 §17).
    Raw { space: RawSpace, payload: Vec<u8>, reserved: u8 },
    /// A new unidirectional stream carrying `data`, finished if `fin`.
    Uni { data: Vec<u8>, fin: bool },
    /// A new bidirectional (request) stream carrying `data`.
    Bidi { data: Vec<u8>, fin: bool },
    /// More bytes on the `n`th unidirectional stream this case opened.
    MoreUni { n: usize, data: Vec<u8>, fin: bool },
    /// The case does not apply to this server (the reason says why).
    NotApplicable(&'static str),
}

impl Step {
    pub fn one_rtt(payload: Vec<u8>) -> Self {
        Step::Raw { space: RawSpace::OneRtt, payload, reserved: 0 }
    }
}

/// What the server must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// CONNECTION_CLOSE of type 0x1c with one of these codes.
    Transport(&'static [u64]),
    /// CONNECTION_CLOSE of type 0x1d (an HTTP/3 or QPACK error) with one of
    /// these codes.
    Application(&'static [u64]),
    /// RESET_STREAM or STOP_SENDING with this code on the last request
    /// stream the case opened, while the connection stays open.
    StreamError(u64),
}

/// What the peer's state looks like when a case's steps are built.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    /// The server's transport parameters (after the handshake).
    pub params: Option<TransportParameters>,
    /// The server's HTTP/3 SETTINGS (H3 phases).
    pub settings: Option<Settings>,
}

/// Builds a case's steps from what the peer announced.
pub type StepsFn = Box<dyn Fn(&Ctx) -> Vec<Step> + Send + Sync>;

/// Rewrites the client's encoded transport parameters (RFC 9000 §18).
pub type ParamsRewrite = fn(Vec<u8>) -> Vec<u8>;

/// One conformance case.
pub struct Case {
    pub name: &'static str,
    /// The RFC section that makes the receiver detect this.
    pub section: &'static str,
    pub phase: Phase,
    pub params: Option<ParamsRewrite>,
    /// The ALPN the client offers instead of `h3`.
    pub alpn: Option<&'static [u8]>,
    pub steps: StepsFn,
    pub expect: Expect,
}

impl Case {
    fn new(name: &'static str, section: &'static str, phase: Phase, expect: Expect, steps: impl Fn(&Ctx) -> Vec<Step> + Send + Sync + 'static) -> Self {
        Case { name, section, phase, params: None, alpn: None, steps: Box::new(steps), expect }
    }
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name, self.section)
    }
}

/// Every case: transport (RFC 9000, 9001), transport parameters, HTTP/3
/// (RFC 9114), QPACK (RFC 9204).
pub fn cases() -> Vec<Case> {
    let mut all = transport::cases();
    all.extend(params::cases());
    all.extend(http3::cases());
    all.extend(qpack::cases());
    all
}

/// Whether `observed` is what `expect` asks for; `Err` says what differed.
pub fn check(expect: Expect, observed: &Observed) -> Result<(), String> {
    let ok = match expect {
        Expect::Transport(codes) => observed.peer_close.is_some_and(|(app, code)| !app && codes.contains(&code)),
        Expect::Application(codes) => observed.peer_close.is_some_and(|(app, code)| app && codes.contains(&code)),
        Expect::StreamError(code) => {
            observed.peer_close.is_none() && observed.last_bidi.is_some_and(|id| observed.stream_errors.iter().any(|&(s, c)| s == id && c == code))
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!("expected {expect:x?}, observed {observed:x?}"))
    }
}
