//! A QUIC connection as a deterministic state machine (RFC 9000).
//!
//! Inputs are `handle_datagram` and `handle_timeout`, outputs `poll_transmit`,
//! `poll_timeout` and `poll_event`; `now` comes in with every call. The
//! application reads and writes streams through the methods below. Nothing
//! here touches a socket or a clock.
//!
//! - [`spaces`]: packet number spaces, ACK tracking, sent-frame metadata.
//! - [`streams`]: the stream map and stream events.
//! - `recv`: packet unprotection and frame processing.
//! - `send`: packet assembly, coalescing, padding, sealing.
//! - `keys`: TLS driving and the 1-RTT key phases (RFC 9001 §6).
//! - `cids`: connection IDs we issue and those the peer gave us.
//! - `path`: the peer's address, migration and path validation (RFC 9000 §8.2, §9).

mod cids;
#[cfg(feature = "conformance")]
mod conformance;
pub mod ecn;
#[cfg(feature = "conformance")]
pub use conformance::RawSpace;
#[cfg(feature = "fuzzing")]
mod fuzzing;
mod keys;
mod path;
pub use path::MigrateError;
pub mod pmtud;
mod recv;
mod send;
mod spaces;
mod streams;
mod version_negotiation;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use smallvec::SmallVec;

use crate::cid::ConnectionId;
use crate::cid_gen::{ConnectionIdGenerator, ResetTokenKey};
use crate::config::TransportConfig;
use crate::error::{Error, TransportErrorCode};
use crate::rand::RandomSource;
use crate::recovery::{AckOutcome, Recovery, RecoveryConfig, SpaceId};
use crate::stream::{Dir, Initiator, RecvWindow, SendCredit, StreamId, StreamReadError, WriteError};
use crate::tls::TlsSession;
use crate::transport_params::{Role, TransportParameters, VersionInformation};
use crate::version::Version;

// The connection's parts stay inside the crate: a driver and an
// application see the `Connection`, its events and its errors.
pub(crate) use cids::{CidEvent, LocalCids, RemoteCids};
pub(crate) use keys::OneRttKeys;
pub use spaces::EcnCodepoint;
use spaces::Retransmit;
pub(crate) use spaces::SentFrames;
pub use streams::StreamEvent;
pub(crate) use streams::Streams;

/// Which end of the connection we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

impl Side {
    pub fn is_server(self) -> bool {
        self == Side::Server
    }
    fn initiator(self) -> Initiator {
        match self {
            Side::Client => Initiator::Client,
            Side::Server => Initiator::Server,
        }
    }
    fn role(self) -> Role {
        match self {
            Side::Client => Role::Client,
            Side::Server => Role::Server,
        }
    }
}

/// A datagram ready to go out, written at the front of the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    pub destination: SocketAddr,
    pub ecn: Option<EcnCodepoint>,
    /// Total bytes written.
    pub size: usize,
    /// When several datagrams were written back to back (GSO), the size of
    /// each but possibly the last.
    pub segment_size: Option<usize>,
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionError {
    /// We detected a protocol error and closed with this code.
    TransportError(Error),
    /// The peer closed with a transport error code (CONNECTION_CLOSE 0x1c).
    PeerTransportClose { code: TransportErrorCode, frame_type: u64, reason: Vec<u8> },
    /// The peer's application closed (CONNECTION_CLOSE 0x1d).
    PeerApplicationClose { code: u64, reason: Vec<u8> },
    /// Our application called `close`.
    LocallyClosed,
    /// No packet within the idle timeout (RFC 9000 §10.1).
    TimedOut,
    /// The handshake did not complete within `TransportConfig::handshake_timeout`.
    HandshakeTimedOut,
    /// The peer sent a stateless reset (RFC 9000 §10.3).
    Reset,
    /// The server speaks none of our versions (RFC 9000 §6.2).
    VersionMismatch,
}

impl core::fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ConnectionError::TransportError(e) => write!(f, "closed by us: {e}"),
            ConnectionError::PeerTransportClose { code, reason, .. } => {
                write!(f, "closed by peer: {code} {}", String::from_utf8_lossy(reason))
            }
            ConnectionError::PeerApplicationClose { code, reason } => {
                write!(f, "closed by peer application: {code:#x} {}", String::from_utf8_lossy(reason))
            }
            ConnectionError::LocallyClosed => f.write_str("closed locally"),
            ConnectionError::TimedOut => f.write_str("idle timeout"),
            ConnectionError::HandshakeTimedOut => f.write_str("handshake timeout"),
            ConnectionError::Reset => f.write_str("stateless reset"),
            ConnectionError::VersionMismatch => f.write_str("no common QUIC version"),
        }
    }
}

impl std::error::Error for ConnectionError {}

/// What the application learns from `poll_event`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// TLS finished; streams may be used with 1-RTT keys.
    HandshakeCompleted,
    /// RFC 9001 §4.1.2: the handshake is confirmed.
    HandshakeConfirmed,
    Stream(StreamEvent),
    /// A DATAGRAM frame arrived (RFC 9221); take it with `recv_datagram`.
    DatagramReceived,
    /// The server refused our 0-RTT data; it is being resent as 1-RTT.
    ZeroRttRejected,
    /// The connection is closed (or draining); no more data flows.
    ConnectionLost(ConnectionError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Handshake,
    Established,
    /// We sent CONNECTION_CLOSE and answer further packets with it (§10.2.1).
    Closing,
    /// The peer closed; we send nothing more (§10.2.2).
    Draining,
    /// Everything is over; the endpoint may forget the connection.
    Drained,
}

/// The CONNECTION_CLOSE we send while closing.
#[derive(Debug, Clone)]
struct CloseFrame {
    application: bool,
    code: u64,
    frame_type: u64,
    reason: Bytes,
}

/// Per-connection counters for tests, logs and the runtime's metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct ConnectionStats {
    pub packets_sent: u64,
    pub packets_received: u64,
    pub packets_lost: u64,
    /// Packets declared lost and acknowledged later: the path reordered
    /// them (RFC 9002 §6.1; `recovery/reorder.rs` adapts to it).
    pub spurious_losses: u64,
    pub packets_dropped: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub stream_bytes_sent: u64,
    pub stream_bytes_received: u64,
    pub key_updates: u64,
    /// Largest number of bytes sent before the peer's address was validated
    /// divided by bytes received, x100 (RFC 9000 §8.1 caps it at 300).
    pub max_amplification_x100: u64,
    /// Times the peer's address changed under us (RFC 9000 §9.3: NAT
    /// rebinding or migration, including moves back).
    pub migrations: u64,
    /// New peer addresses proven by a PATH_RESPONSE (RFC 9000 §8.2.3).
    pub path_validations: u64,
    /// Validations abandoned on their timer, each followed by a return to
    /// the last validated address (RFC 9000 §8.2.4, §9.3.2).
    pub path_validation_failures: u64,
    /// PMTU probes sent and lost, and black holes detected (RFC 8899).
    pub mtu_probes_sent: u64,
    pub mtu_probes_lost: u64,
    pub mtu_black_holes: u64,
    /// Times we moved to a new connection ID of the peer because it
    /// migrated with a new one (RFC 9000 §9.5).
    pub cid_rotations: u64,
}

/// Frames queued for sending that belong to the connection rather than a stream.
#[derive(Debug, Default)]
struct Pending {
    handshake_done: bool,
    /// HANDSHAKE_DONE was sent and is not acknowledged yet: probes repeat
    /// it (RFC 9000 §13.3 retransmits it until acknowledged).
    handshake_done_unacked: bool,
    max_data: bool,
    max_streams: [bool; 2],
    data_blocked: Option<u64>,
    streams_blocked: [Option<u64>; 2],
    path_responses: VecDeque<[u8; 8]>,
    ping: bool,
    new_token: Option<Bytes>,
}

/// Everything needed to start a connection besides the TLS session.
pub struct ConnectionParams {
    pub side: Side,
    pub version: Version,
    pub config: Arc<TransportConfig>,
    pub remote: SocketAddr,
    /// Our first Source Connection ID.
    pub local_cid: ConnectionId,
    /// The Destination Connection ID we address the peer with at first.
    pub remote_cid: ConnectionId,
    /// Client: the DCID of its first Initial; server: the DCID the client
    /// chose (after Retry: the one before Retry).
    pub original_dcid: ConnectionId,
    /// Server after a Retry: the Retry packet's SCID.
    pub retry_scid: Option<ConnectionId>,
    /// Client: the token to put in Initial packets (from NEW_TOKEN).
    pub token: Bytes,
    pub cid_generator: Box<dyn ConnectionIdGenerator>,
    pub reset_key: Option<ResetTokenKey>,
    pub rng: Box<dyn RandomSource>,
    /// Server: the client's address was already validated by a token.
    pub address_validated: bool,
}

impl core::fmt::Debug for ConnectionParams {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ConnectionParams").field("side", &self.side).field("remote", &self.remote).finish()
    }
}

pub struct Connection {
    side: Side,
    version: Version,
    state: State,
    config: Arc<TransportConfig>,
    tls: TlsSession,
    spaces: spaces::Spaces,
    /// Client: keys to send 0-RTT; server: keys to read it.
    zero_rtt: Option<rustls::quic::DirectionalKeys>,
    zero_rtt_enabled: bool,
    one_rtt: Option<OneRttKeys>,
    handshake_complete: bool,
    handshake_confirmed: bool,
    local_cids: LocalCids,
    remote_cids: RemoteCids,
    original_dcid: ConnectionId,
    /// Client: the DCID Initial keys derive from (changes after Retry).
    initial_dcid: ConnectionId,
    retry_scid: Option<ConnectionId>,
    token: Bytes,
    remote: SocketAddr,
    /// Validation of `remote` after it changed (RFC 9000 §8.2, §9).
    path: path::PathState,
    /// Server: the client's address is validated (RFC 9000 §8.1), or the
    /// address it moved to was (§8.2).
    address_validated: bool,
    /// Client: something from the server was processed (ends Retry/VN acceptance).
    received_any: bool,
    bytes_received: u64,
    bytes_sent: u64,
    recovery: Recovery<SentFrames>,
    ack_outcome: AckOutcome<SentFrames>,
    streams: Streams,
    conn_recv: RecvWindow,
    conn_send: SendCredit,
    pending: Pending,
    local_params: TransportParameters,
    peer_params: Option<TransportParameters>,
    idle_timeout: Option<Duration>,
    /// When the idle timer last restarted (RFC 9000 §10.1: on receiving a
    /// packet, on sending the first ack-eliciting packet after one). The
    /// deadline is worked out from it when timers are polled
    /// ([`Connection::idle_deadline`]), not at every restart: a restart
    /// happens for every packet, a poll once per turn.
    idle_restarted: Option<Instant>,
    /// When an incomplete handshake is given up (`handshake_timeout`).
    handshake_deadline: Option<Instant>,
    /// An ack-eliciting packet went out since the last packet received: the
    /// next one does not restart the idle timer (RFC 9000 §10.1).
    ack_eliciting_sent_since_rx: bool,
    close_deadline: Option<Instant>,
    keep_alive_deadline: Option<Instant>,
    close: Option<CloseFrame>,
    /// Closing: answer the next packet with CONNECTION_CLOSE.
    close_pending: bool,
    error: Option<ConnectionError>,
    events: VecDeque<Event>,
    rng: Box<dyn RandomSource>,
    datagrams_in: VecDeque<Bytes>,
    datagrams_out: VecDeque<Bytes>,
    mtu: u16,
    pacing_deadline: Option<Instant>,
    stats: ConnectionStats,
    /// Client: the server's first SCID was adopted as our DCID (RFC 9000 §7.2).
    remote_scid_locked: bool,
    /// Client: the newest NEW_TOKEN from the server, for the next connection.
    received_token: Option<Bytes>,
    /// qlog trace of this connection, when enabled.
    qlog: Option<Box<dyn crate::qlog::QlogSubscriber>>,
    new_token_queued: bool,
    /// The version of the connection's first Initial, when compatible
    /// version negotiation moved it to another (RFC 9368).
    original_version: Option<Version>,
    /// Client: the version of the attempt a Version Negotiation packet
    /// ended; the new attempt ignores further ones (RFC 9368 §4).
    negotiated_from: Option<Version>,
    /// Server after an upgrade: Initial keys of the original version, to
    /// read the client's Initials sent before it followed.
    legacy_initial_keys: Option<rustls::quic::Keys>,
    /// Server: ClientHello bytes held back until complete, so the version
    /// can be chosen before TLS reads them (None once decided).
    client_hello: Option<Vec<u8>>,
    /// ECN marking and validation of the current path (RFC 9000 §13.4).
    ecn: ecn::EcnValidator,
    /// Path MTU discovery of the current path (RFC 8899).
    pmtud: pmtud::Pmtud,
    /// The Destination Connection ID of the probe being built, when it is
    /// not the active one (a client's answer on a path it left, §9.5).
    probe_dcid: Option<ConnectionId>,
    /// The datagram being built is marked ECT(0).
    tx_ecn: bool,
    /// The congestion state last reported to qlog.
    qlog_cc_state: Option<&'static str>,
    /// The packet being processed carried CRYPTO data not seen before.
    rx_new_crypto: bool,
    /// The packet being processed carried a CRYPTO frame (new or not): TLS
    /// must be driven even after the handshake.
    rx_crypto: bool,
    /// Flights resent early because the peer's probe showed it lacks them
    /// (RFC 9002 §6.2.3), bounded per connection.
    early_retransmits: u8,
}

impl core::fmt::Debug for Connection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Connection")
            .field("side", &self.side)
            .field("state", &self.state)
            .field("remote", &self.remote)
            .field("local_cid", &self.local_cids.initial())
            .finish()
    }
}

/// Bound on queued incoming DATAGRAM frames the application has not read.
const MAX_QUEUED_DATAGRAMS: usize = 256;
/// Bound on PATH_RESPONSE frames owed (one per challenge).
const MAX_PATH_RESPONSES: usize = 8;
/// Longest delay a timer is set to. A backed-off PTO saturates at
/// `Duration::MAX` and a peer's max_idle_timeout can be 2^62 ms; `Instant`
/// plus either overflows (a panic), so deadlines are clamped to this.
const MAX_TIMER_DELAY: Duration = Duration::from_secs(365 * 24 * 3600);

/// `now + d`, clamped to [`MAX_TIMER_DELAY`] so it cannot overflow.
fn deadline_after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d.min(MAX_TIMER_DELAY)).unwrap_or(now)
}

impl Connection {
    /// Creates a client connection and queues its first flight. The TLS
    /// session must have been created with `local_transport_parameters`'
    /// encoding (see [`Connection::client_transport_parameters`]).
    pub fn new(params: ConnectionParams, tls: TlsSession, local_params: TransportParameters, now: Instant) -> Result<Self, Error> {
        let cfg = params.config.clone();
        let side = params.side;
        let mut recovery_cfg = RecoveryConfig::new(side.is_server());
        recovery_cfg.initial_rtt = cfg.initial_rtt;
        recovery_cfg.max_datagram_size = u64::from(cfg.initial_mtu.max(1200));
        recovery_cfg.congestion = cfg.congestion;
        recovery_cfg.hystart = cfg.hystart;
        // Let one full GSO batch leave per pacing burst (see `Pacer::with_burst`).
        recovery_cfg.pacing_burst = cfg.max_gso_segments as u64;
        let rng = params.rng;
        let local_cids = LocalCids::new(params.local_cid, params.cid_generator, params.reset_key);
        let mut conn = Connection {
            side,
            version: params.version,
            state: State::Handshake,
            tls,
            spaces: spaces::Spaces::new(cfg.crypto_buffer_size),
            zero_rtt: None,
            zero_rtt_enabled: false,
            one_rtt: None,
            handshake_complete: false,
            handshake_confirmed: false,
            local_cids,
            remote_cids: RemoteCids::new(params.remote_cid, cfg.active_connection_id_limit),
            original_dcid: params.original_dcid,
            initial_dcid: if side.is_server() { params.original_dcid } else { params.remote_cid },
            retry_scid: params.retry_scid,
            token: params.token,
            remote: params.remote,
            path: path::PathState::new(params.remote),
            address_validated: params.address_validated || !side.is_server(),
            received_any: false,
            bytes_received: 0,
            bytes_sent: 0,
            recovery: match &cfg.congestion_factory {
                Some(f) => Recovery::with_congestion_controller(recovery_cfg, f.build(recovery_cfg.max_datagram_size, cfg.hystart)),
                None => Recovery::new(recovery_cfg),
            },
            ack_outcome: AckOutcome::new(),
            streams: Streams::new(side.initiator(), &cfg),
            conn_recv: RecvWindow::new(cfg.receive_window, cfg.max_receive_window),
            conn_send: SendCredit::new(0),
            pending: Pending::default(),
            local_params,
            peer_params: None,
            idle_timeout: None,
            idle_restarted: None,
            // Servers only: the limit protects a server's state from
            // clients that never finish. A client's handshake may take long
            // on a bad path (30 % corruption, PTO backoff) while it still
            // progresses; how long to wait is its application's choice, and
            // the idle timeout bounds it.
            handshake_deadline: cfg.handshake_timeout.filter(|_| side == Side::Server).map(|t| deadline_after(now, t)),
            ack_eliciting_sent_since_rx: false,
            close_deadline: None,
            keep_alive_deadline: None,
            close: None,
            close_pending: false,
            error: None,
            events: VecDeque::new(),
            rng,
            datagrams_in: VecDeque::new(),
            datagrams_out: VecDeque::new(),
            mtu: cfg.initial_mtu.max(1200),
            pacing_deadline: None,
            stats: ConnectionStats::default(),
            remote_scid_locked: false,
            received_token: None,
            qlog: None,
            new_token_queued: false,
            original_version: None,
            negotiated_from: None,
            legacy_initial_keys: None,
            client_hello: side.is_server().then(Vec::new),
            ecn: ecn::EcnValidator::new(cfg.ecn),
            pmtud: pmtud::Pmtud::new(cfg.mtu_discovery, cfg.max_udp_payload_size),
            probe_dcid: None,
            tx_ecn: false,
            qlog_cc_state: None,
            rx_new_crypto: false,
            rx_crypto: false,
            early_retransmits: 0,
            config: cfg,
        };
        // Initial keys come from the client's first DCID (RFC 9001 §5.2).
        conn.spaces[0].keys = Some(keys::initial_keys(&conn.initial_dcid, side, conn.version));
        conn.idle_timeout = (!conn.config.max_idle_timeout.is_zero()).then_some(conn.config.max_idle_timeout);
        conn.reset_idle(now);
        if !side.is_server() {
            conn.drive_tls(now)?;
            // With a ticket that allows it, 0-RTT keys exist right away.
            if let Some(keys) = conn.tls.zero_rtt_keys() {
                conn.zero_rtt = Some(keys);
                conn.zero_rtt_enabled = true;
                conn.apply_remembered_params();
            }
        }
        Ok(conn)
    }

    /// Our transport parameters as a client or server sends them
    /// (RFC 9000 §18.2, §7.3).
    pub fn local_transport_parameters(
        side: Side,
        cfg: &TransportConfig,
        local_cid: &ConnectionId,
        original_dcid: Option<&ConnectionId>,
        retry_scid: Option<&ConnectionId>,
        reset_token: Option<crate::cid::ResetToken>,
        version: Version,
    ) -> TransportParameters {
        let mut p = TransportParameters {
            max_idle_timeout: cfg.max_idle_timeout.as_millis() as u64,
            max_udp_payload_size: u64::from(cfg.max_udp_payload_size.max(1200)),
            initial_max_data: cfg.receive_window,
            initial_max_stream_data_bidi_local: cfg.stream_receive_window,
            initial_max_stream_data_bidi_remote: cfg.stream_receive_window,
            initial_max_stream_data_uni: cfg.stream_receive_window,
            initial_max_streams_bidi: cfg.max_concurrent_bidi_streams,
            initial_max_streams_uni: cfg.max_concurrent_uni_streams,
            ack_delay_exponent: u64::from(cfg.ack_delay_exponent),
            max_ack_delay: cfg.max_ack_delay.as_millis() as u64,
            active_connection_id_limit: cfg.active_connection_id_limit.max(2),
            initial_source_connection_id: Some(*local_cid),
            max_datagram_frame_size: cfg.max_datagram_frame_size,
            grease_quic_bit: false,
            version_information: Some(VersionInformation::new(version, &cfg.version_preference(version))),
            ..TransportParameters::default()
        };
        if side.is_server() {
            p.original_destination_connection_id = original_dcid.copied();
            p.retry_source_connection_id = retry_scid.copied();
            p.stateless_reset_token = reset_token;
        }
        p
    }

    /// Encodes transport parameters for the TLS extension.
    pub fn encode_transport_parameters(p: &TransportParameters, side: Side, grease: Option<u64>) -> Vec<u8> {
        let len = match grease {
            Some(seed) => p.encoded_len_with_grease(side.role(), seed),
            None => p.encoded_len(side.role()),
        };
        let mut buf = vec![0u8; len];
        let mut w = crate::codec::Writer::new(&mut buf);
        let ok = match grease {
            Some(seed) => p.encode_with_grease(&mut w, side.role(), seed).is_ok(),
            None => p.encode(&mut w, side.role()).is_ok(),
        };
        let n = if ok { w.len() } else { 0 };
        buf.truncate(n);
        buf
    }

    /// Server: the DCID of the Initial that created the connection derives
    /// the Initial keys (after a Retry it differs from the original DCID).
    pub fn set_initial_dcid_for_keys(&mut self, dcid: ConnectionId) {
        if self.initial_dcid == dcid {
            return;
        }
        self.initial_dcid = dcid;
        self.spaces[0].keys = Some(keys::initial_keys(&dcid, Side::Server, self.version));
    }

    /// Starts a qlog trace (draft-ietf-quic-qlog, JSON-SEQ) into `sink`
    /// through a [`crate::qlog::QlogWriter`]. The caller opens the file
    /// (and should hand over a sink that does not block, as the runtime's
    /// `qlog_spool` does); quic-core only writes.
    pub fn enable_qlog(&mut self, sink: Box<dyn std::io::Write + Send>, now: Instant) {
        use crate::qlog::{QlogWriter, TraceInfo, VantagePointType};
        let vp = if self.side.is_server() { VantagePointType::Server } else { VantagePointType::Client };
        let odcid = format!("{:?}", self.original_dcid);
        let mut trace = TraceInfo::new(vp);
        trace.group_id = Some(&odcid);
        self.set_qlog_subscriber(Box::new(QlogWriter::new(sink, now, &trace)), now);
    }

    /// Reports this connection's qlog events to `subscriber` from now on,
    /// starting with our transport parameters.
    pub fn set_qlog_subscriber(&mut self, mut subscriber: Box<dyn crate::qlog::QlogSubscriber>, now: Instant) {
        use crate::qlog::{Initiator, ParametersSet, QlogEvent};
        subscriber.event(now, &QlogEvent::ParametersSet(&ParametersSet::from_transport_parameters(Initiator::Local, &self.local_params)));
        self.qlog = Some(subscriber);
    }

    fn qlog_metrics(&mut self, now: Instant) {
        self.qlog_cc_state(now);
        let Some(q) = &mut self.qlog else { return };
        let rtt = self.recovery.rtt();
        q.event(
            now,
            &crate::qlog::QlogEvent::RecoveryMetricsUpdated(&crate::qlog::RecoveryMetrics {
                min_rtt: Some(rtt.min_rtt()),
                smoothed_rtt: Some(rtt.smoothed_rtt()),
                latest_rtt: Some(rtt.latest_rtt()),
                rtt_variance: Some(rtt.rttvar()),
                pto_count: Some(self.recovery.pto_count().min(u16::MAX as u32) as u16),
                congestion_window: Some(self.recovery.congestion_window()),
                bytes_in_flight: Some(self.recovery.bytes_in_flight()),
                ssthresh: None,
                packets_in_flight: None,
                // qlog counts bits per second.
                pacing_rate: self.recovery.congestion_controller().pacing_rate().map(|r| r.saturating_mul(8)),
            }),
        );
    }

    /// `quic:congestion_state_updated` when the controller's state changed
    /// since the last report: slow start, HyStart++'s conservative slow
    /// start (RFC 9406), or congestion avoidance; a model-based controller
    /// names its own states (BBR: startup, drain, probe_bw_*, probe_rtt).
    fn qlog_cc_state(&mut self, now: Instant) {
        if self.qlog.is_none() {
            return;
        }
        let cc = self.recovery.congestion_controller();
        let state = if let Some(name) = cc.model_state() {
            name
        } else if cc.window() >= cc.ssthresh() {
            "congestion_avoidance"
        } else if cc.hystart_phase() == Some(crate::recovery::cc::HyStartPhase::Css) {
            "conservative_slow_start"
        } else {
            "slow_start"
        };
        if Some(state) == self.qlog_cc_state {
            return;
        }
        let old = self.qlog_cc_state.replace(state);
        if let Some(q) = &mut self.qlog {
            q.event(now, &crate::qlog::QlogEvent::CongestionStateUpdated { old, new: state });
        }
    }

    pub fn side(&self) -> Side {
        self.side
    }

    pub fn version(&self) -> Version {
        self.version
    }

    pub fn remote_address(&self) -> SocketAddr {
        self.remote
    }

    pub fn stats(&self) -> ConnectionStats {
        let (sent, lost, black_holes) = self.pmtud.counters();
        ConnectionStats { mtu_probes_sent: sent, mtu_probes_lost: lost, mtu_black_holes: black_holes, ..self.stats }
    }

    /// Where path MTU discovery is (RFC 8899).
    pub fn pmtud_phase(&self) -> pmtud::PmtudPhase {
        self.pmtud.phase()
    }

    pub fn rtt(&self) -> Duration {
        self.recovery.rtt().smoothed_rtt()
    }

    /// The smallest RTT seen (RFC 9002 §5.2).
    pub fn min_rtt(&self) -> Duration {
        self.recovery.rtt().min_rtt()
    }

    pub fn congestion_window(&self) -> u64 {
        self.recovery.congestion_window()
    }

    /// The congestion controller's name ("cubic", "newreno", "bbr").
    pub fn congestion_controller(&self) -> &'static str {
        self.recovery.congestion_controller().name()
    }

    /// The state of a model-based controller (BBR: "startup", "drain",
    /// "probe_bw_cruise", ...); `None` for loss-based ones.
    pub fn congestion_model_state(&self) -> Option<&'static str> {
        self.recovery.congestion_controller().model_state()
    }

    /// Where the controller's HyStart++ stands, if it uses it (RFC 9406).
    pub fn hystart_phase(&self) -> Option<crate::recovery::cc::HyStartPhase> {
        self.recovery.congestion_controller().hystart_phase()
    }

    pub fn bytes_in_flight(&self) -> u64 {
        self.recovery.bytes_in_flight()
    }

    pub fn is_handshaking(&self) -> bool {
        !self.handshake_complete
    }

    /// RFC 9001 §4.1.2: the handshake is confirmed (the server on
    /// completing it, the client on HANDSHAKE_DONE or an acknowledged
    /// 1-RTT packet).
    pub fn is_handshake_confirmed(&self) -> bool {
        self.handshake_confirmed
    }

    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closing | State::Draining | State::Drained)
    }

    /// The endpoint may forget this connection.
    pub fn is_drained(&self) -> bool {
        self.state == State::Drained
    }

    pub fn error(&self) -> Option<&ConnectionError> {
        self.error.as_ref()
    }

    /// Whether TLS resumed a session (no Certificate message in the handshake).
    pub fn is_resumed(&self) -> bool {
        self.tls.is_resumed()
    }

    /// The certificate chain the peer presented (end entity first): the
    /// server's for a client, a client certificate for a server that asked
    /// for one (`ServerTlsOptions::client_auth`). `None` before the peer's
    /// Certificate message and after a resumption.
    pub fn peer_certificates(&self) -> Option<&[rustls::pki_types::CertificateDer<'static>]> {
        self.tls.peer_certificates()
    }

    pub fn tls(&self) -> &TlsSession {
        &self.tls
    }

    /// Whether what only the handshake needs is gone: the Initial and
    /// Handshake spaces (both discarded, RFC 9001 §4.9) and, on a server,
    /// rustls' state (a client keeps it for session tickets).
    pub fn handshake_state_released(&self) -> bool {
        !self.spaces.holds_early() && (self.side == Side::Client || self.tls.is_retired())
    }

    pub fn alpn(&self) -> Option<&[u8]> {
        self.tls.alpn()
    }

    /// Client: whether 0-RTT was attempted and accepted.
    pub fn zero_rtt_accepted(&self) -> Option<bool> {
        if !self.zero_rtt_enabled && self.side == Side::Client {
            return None;
        }
        self.tls.early_data_accepted()
    }

    /// Whether 0-RTT keys are in use (client before the handshake ends,
    /// server when it accepted early data).
    pub fn has_zero_rtt(&self) -> bool {
        self.zero_rtt.is_some()
    }

    pub fn peer_transport_parameters(&self) -> Option<&TransportParameters> {
        self.peer_params.as_ref()
    }

    /// The Destination Connection ID of the client's first Initial (of its
    /// current attempt, after Version Negotiation); the server's Original
    /// Destination Connection ID (RFC 9000 §7.3).
    pub fn original_dcid(&self) -> ConnectionId {
        self.original_dcid
    }

    pub fn local_cid(&self) -> ConnectionId {
        self.local_cids.initial()
    }

    /// Connection IDs that were issued or retired since the last call, for
    /// the endpoint's routing table.
    pub fn poll_cid_event(&mut self) -> Option<CidEvent> {
        self.local_cids.poll_event()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        if let Some(e) = self.events.pop_front() {
            return Some(e);
        }
        self.streams.events.pop_front().map(Event::Stream)
    }

    // ----- streams -----

    /// Opens a stream of ours; `None` while the peer's MAX_STREAMS forbids it
    /// (a STREAMS_BLOCKED frame is then queued, RFC 9000 §4.6).
    pub fn open_stream(&mut self, dir: Dir) -> Option<StreamId> {
        if !self.may_open_streams() {
            return None;
        }
        let id = self.streams.open(dir);
        if id.is_none() {
            let i = if dir == Dir::Bi { 0 } else { 1 };
            self.pending.streams_blocked[i] = self.streams.limits.poll_streams_blocked(dir);
        }
        id
    }

    /// Whether [`open_stream`](Self::open_stream) would succeed now: a
    /// caller with work to do before opening (an HTTP/3 client validating
    /// its request) can learn it is out of stream credit first.
    pub fn can_open_stream(&self, dir: Dir) -> bool {
        self.may_open_streams() && self.streams.limits.can_open(dir)
    }

    /// Open, and the peer's stream limits are known (its transport
    /// parameters, or remembered ones for 0-RTT).
    fn may_open_streams(&self) -> bool {
        !self.is_closed() && (self.handshake_complete || self.zero_rtt.is_some() || self.peer_params.is_some())
    }

    /// A stream the peer opened, in order of arrival.
    pub fn accept_stream(&mut self, dir: Dir) -> Option<StreamId> {
        self.streams.accept(dir)
    }

    pub fn set_priority(&mut self, id: StreamId, priority: i32) {
        if let Some(s) = self.streams.map.get_mut(&id) {
            s.priority = priority;
        }
    }

    /// Queues bytes on a stream; returns how many were taken (fewer when the
    /// send buffer is full: wait for `StreamEvent::Writable`).
    pub fn write(&mut self, id: StreamId, data: &[u8]) -> Result<usize, WriteError> {
        let s = self.streams.map.get_mut(&id).and_then(|s| s.send.as_mut()).ok_or(WriteError::Finished)?;
        let n = s.write(data)?;
        self.on_written(id, n);
        Ok(n)
    }

    /// Writes all of `parts` to `id` (copied) and, with `fin`, ends the
    /// stream, or nothing if they do not all fit (`Err(Blocked)`): a frame
    /// and its header in one lookup and one queueing, not one per piece.
    pub fn write_parts(&mut self, id: StreamId, parts: &[&[u8]], fin: bool) -> Result<(), WriteError> {
        let s = self.streams.map.get_mut(&id).and_then(|s| s.send.as_mut()).ok_or(WriteError::Finished)?;
        let n = s.write_parts(parts, fin)?;
        if n == 0 && fin {
            // A FIN alone is due to send too (`on_written` skips nothing written).
            self.streams.queue_send(id);
        }
        self.on_written(id, n);
        Ok(())
    }

    /// Zero-copy variant of [`Connection::write`].
    pub fn write_bytes(&mut self, id: StreamId, data: Bytes) -> Result<usize, WriteError> {
        let s = self.streams.map.get_mut(&id).and_then(|s| s.send.as_mut()).ok_or(WriteError::Finished)?;
        let n = s.write_bytes(data)?;
        self.on_written(id, n);
        Ok(n)
    }

    /// `n` bytes were queued on `id`: the stream is due to send, and
    /// packets' worth at once is bulk data, for which a larger packet size
    /// pays (the probe then leaves ahead of it, `pmtud.rs`).
    fn on_written(&mut self, id: StreamId, n: usize) {
        if n == 0 {
            return;
        }
        self.streams.queue_send(id);
        if n >= usize::from(self.mtu) {
            let _ = self.pmtud.on_full_packets(n / usize::from(self.mtu));
        }
    }

    /// Marks the end of the stream's data (a FIN goes out after the data).
    pub fn finish(&mut self, id: StreamId) -> Result<(), WriteError> {
        let s = self.streams.map.get_mut(&id).and_then(|s| s.send.as_mut()).ok_or(WriteError::Finished)?;
        s.finish()?;
        self.streams.queue_send(id);
        Ok(())
    }

    /// Abandons sending on a stream (RESET_STREAM, RFC 9000 §19.4).
    pub fn reset_stream(&mut self, id: StreamId, error_code: u64) {
        if let Some(s) = self.streams.map.get_mut(&id).and_then(|s| s.send.as_mut()) {
            if s.reset(error_code).is_some() {
                self.streams.pending_reset.push(id);
            }
        }
    }

    /// Asks the peer to stop sending on a stream (STOP_SENDING, §19.5).
    pub fn stop_sending(&mut self, id: StreamId, error_code: u64) {
        if let Some(r) = self.streams.map.get_mut(&id).and_then(|s| s.recv.as_mut()) {
            if r.stop(error_code) {
                self.streams.pending_stop_sending.push((id, error_code));
            }
            let released = r.take_released();
            self.conn_recv.on_consumed(released);
        }
    }

    /// Reads stream data in order into `out`.
    pub fn read(&mut self, id: StreamId, out: &mut [u8]) -> Result<crate::stream::ReadOutcome, StreamReadError> {
        let r = self.streams.map.get_mut(&id).and_then(|s| s.recv.as_mut()).ok_or(StreamReadError::Blocked)?;
        let res = r.read(out);
        let released = r.take_released();
        let wants_update = r.should_send_max_stream_data().is_some();
        self.after_read(id, released, wants_update);
        res
    }

    /// Zero-copy read of the next contiguous chunk (at most `max` bytes).
    pub fn read_chunk(&mut self, id: StreamId, max: usize) -> Result<crate::stream::ReadChunk, StreamReadError> {
        let r = self.streams.map.get_mut(&id).and_then(|s| s.recv.as_mut()).ok_or(StreamReadError::Blocked)?;
        let res = r.read_chunk(max);
        let released = r.take_released();
        let wants_update = r.should_send_max_stream_data().is_some();
        self.after_read(id, released, wants_update);
        res
    }

    fn after_read(&mut self, id: StreamId, released: u64, wants_update: bool) {
        self.conn_recv.on_consumed(released);
        if wants_update && !self.streams.pending_max_stream_data.contains(&id) {
            self.streams.pending_max_stream_data.push(id);
        }
        if self.conn_recv.should_send_max_data().is_some() {
            self.pending.max_data = true;
        }
        self.streams.credit_early(id);
        self.streams.reap(id);
    }

    /// Bytes ready to read on a stream without blocking.
    pub fn readable(&self, id: StreamId) -> u64 {
        self.streams.map.get(&id).and_then(|s| s.recv.as_ref()).map_or(0, |r| r.readable_len())
    }

    /// Whether everything written on the stream's send side (and its FIN or
    /// reset) has been acknowledged by the peer, or the stream is gone. A
    /// server that closes a connection right after a response waits for this,
    /// so the close cannot overtake data still in flight (RFC 9000 §3.1:
    /// only "Data Recvd" means the peer has it).
    pub fn send_acknowledged(&self, id: StreamId) -> bool {
        self.streams.map.get(&id).and_then(|s| s.send.as_ref()).is_none_or(|s| s.is_closed())
    }

    /// Whether every stream's send side — data and FIN, or reset — has
    /// been acknowledged by the peer: a graceful close after this cannot
    /// cut off a response (RFC 9000 §3.1, "Data Recvd").
    pub fn all_sends_acknowledged(&self) -> bool {
        self.streams.map.values().all(|s| s.send.as_ref().is_none_or(|s| s.is_closed()))
    }

    /// Bytes a write on this stream would accept now.
    pub fn writable(&self, id: StreamId) -> u64 {
        self.streams.map.get(&id).and_then(|s| s.send.as_ref()).map_or(0, |s| s.writable())
    }

    /// Queues a DATAGRAM frame (RFC 9221); dropped if the peer does not
    /// accept them, or not this large: its max_datagram_frame_size bounds
    /// the whole frame as we send it (type 0x31, Length, payload; §3, §4).
    pub fn send_datagram(&mut self, data: Bytes) -> bool {
        let max = self.peer_params.as_ref().and_then(|p| p.max_datagram_frame_size).unwrap_or(0);
        let frame = 1 + crate::varint::size(data.len() as u64) as u64 + data.len() as u64;
        if frame > max || self.datagrams_out.len() >= MAX_QUEUED_DATAGRAMS {
            return false;
        }
        self.datagrams_out.push_back(data);
        true
    }

    /// Server: the handshake is confirmed and no NEW_TOKEN was queued yet
    /// (RFC 9000 §8.1.3); the endpoint then calls [`Connection::queue_new_token`].
    pub fn wants_new_token(&self) -> bool {
        self.side.is_server() && self.handshake_confirmed && !self.new_token_queued
    }

    pub fn queue_new_token(&mut self, token: Bytes) {
        self.new_token_queued = true;
        self.pending.new_token = Some(token);
    }

    /// Client: a token from NEW_TOKEN to present on the next connection to
    /// this server (RFC 9000 §8.1.3).
    pub fn take_new_token(&mut self) -> Option<Bytes> {
        self.received_token.take()
    }

    /// Client: whether a NEW_TOKEN token waits for `take_new_token`.
    pub fn has_new_token(&self) -> bool {
        self.received_token.is_some()
    }

    /// The largest UDP payload this connection sends (no path MTU
    /// discovery: the configured initial MTU, at least 1200).
    pub fn mtu(&self) -> u16 {
        self.mtu
    }

    /// The stream count limit we advertised for peer-initiated streams of
    /// `dir` (RFC 9000 §4.6): peer stream IDs at or above it are invalid.
    pub fn peer_stream_limit(&self, dir: Dir) -> u64 {
        self.streams.limits.local_max_streams(dir)
    }

    pub fn recv_datagram(&mut self) -> Option<Bytes> {
        self.datagrams_in.pop_front()
    }

    /// Closes the connection with an application error code (RFC 9000 §10.2).
    pub fn close(&mut self, now: Instant, error_code: u64, reason: &[u8]) {
        if self.is_closed() {
            return;
        }
        self.close = Some(CloseFrame { application: true, code: error_code, frame_type: 0, reason: Bytes::copy_from_slice(reason) });
        self.enter_closing(now, ConnectionError::LocallyClosed);
    }

    /// Closes because of a protocol error we detected.
    fn close_with_error(&mut self, now: Instant, err: Error) {
        if self.is_closed() {
            return;
        }
        self.close = Some(CloseFrame {
            application: false,
            code: err.code.0,
            frame_type: err.frame_type.unwrap_or(0),
            reason: Bytes::from_static(err.reason.as_bytes()),
        });
        self.enter_closing(now, ConnectionError::TransportError(err));
    }

    fn enter_closing(&mut self, now: Instant, err: ConnectionError) {
        self.state = State::Closing;
        self.close_pending = true;
        // RFC 9000 §10.2: linger three PTOs so a lost CONNECTION_CLOSE can be
        // repeated when the peer keeps sending.
        self.close_deadline = Some(deadline_after(now, self.recovery.pto(SpaceId::Data, self.handshake_confirmed).saturating_mul(3)));
        self.set_error(now, err);
    }

    fn enter_draining(&mut self, now: Instant, err: ConnectionError) {
        if matches!(self.state, State::Draining | State::Drained) {
            return;
        }
        self.state = State::Draining;
        self.close_pending = false;
        self.close_deadline = Some(deadline_after(now, self.recovery.pto(SpaceId::Data, self.handshake_confirmed).saturating_mul(3)));
        self.set_error(now, err);
    }

    fn set_error(&mut self, now: Instant, err: ConnectionError) {
        if self.error.is_none() {
            if let Some(q) = &mut self.qlog {
                use crate::qlog::{CloseError, CloseTrigger, ConnectionClosed, Initiator};
                let (initiator, error, trigger) = match &err {
                    ConnectionError::TransportError(e) => (Initiator::Local, Some(CloseError::Transport(e.code)), CloseTrigger::Error),
                    ConnectionError::PeerTransportClose { code, .. } => (Initiator::Remote, Some(CloseError::Transport(*code)), CloseTrigger::Error),
                    ConnectionError::PeerApplicationClose { code, .. } => (Initiator::Remote, Some(CloseError::Application(*code)), CloseTrigger::Application),
                    ConnectionError::LocallyClosed => (Initiator::Local, None, CloseTrigger::Application),
                    ConnectionError::TimedOut => (Initiator::Local, None, CloseTrigger::IdleTimeout),
                    ConnectionError::HandshakeTimedOut => (Initiator::Local, None, CloseTrigger::Aborted),
                    ConnectionError::Reset => (Initiator::Remote, None, CloseTrigger::StatelessReset),
                    ConnectionError::VersionMismatch => (Initiator::Remote, None, CloseTrigger::VersionMismatch),
                };
                let reason = err.to_string();
                let closed = ConnectionClosed { initiator: Some(initiator), error, internal_code: None, reason: Some(&reason), trigger: Some(trigger) };
                q.event(now, &crate::qlog::QlogEvent::ConnectionClosed(&closed));
                q.flush();
            }
            self.error = Some(err.clone());
            self.events.push_back(Event::ConnectionLost(err));
        }
    }

    // ----- timers -----

    fn reset_idle(&mut self, now: Instant) {
        self.idle_restarted = Some(now);
        if let Some(k) = self.config.keep_alive_interval {
            self.keep_alive_deadline = Some(now + k);
        }
    }

    /// When the connection times out if nothing arrives: the last restart
    /// plus the effective idle timeout (RFC 9000 §10.1).
    fn idle_deadline(&self) -> Option<Instant> {
        let since = self.idle_restarted?;
        Some(deadline_after(since, self.effective_idle_timeout()?))
    }

    /// RFC 9000 §10.1: the smaller of both sides' timeouts, but at least
    /// three PTOs so a slow path does not time out spuriously ("this allows
    /// for multiple PTOs to expire"). The PTO period without backoff: with
    /// it, every unanswered probe would double the idle timeout too, and a
    /// connection whose peer vanished would never time out.
    fn effective_idle_timeout(&self) -> Option<Duration> {
        let peer = self.peer_params.as_ref().and_then(|p| p.max_idle_timeout_duration());
        let t = match (self.idle_timeout, peer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }?;
        Some(t.max(self.recovery.pto_period(SpaceId::Data, self.handshake_confirmed).saturating_mul(3)))
    }

    fn timer_ctx(&self) -> crate::recovery::TimerContext {
        crate::recovery::TimerContext {
            handshake_confirmed: self.handshake_confirmed,
            has_handshake_keys: self.spaces[1].keys.is_some(),
            amplification_blocked: self.amplification_blocked(),
        }
    }

    /// RFC 9000 §8.1: blocked once what is left of three times the bytes
    /// received cannot hold a packet (the bound `build_datagram` applies).
    fn amplification_blocked(&self) -> bool {
        let allowance = self.bytes_received.saturating_mul(3).saturating_sub(self.bytes_sent);
        !self.address_validated && allowance < send::MIN_PACKET_ROOM as u64
    }

    /// The earliest instant at which `handle_timeout` has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Drained {
            return None;
        }
        if let Some(d) = self.close_deadline {
            return Some(d);
        }
        let mut t = self.idle_deadline();
        let mut take = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t: Instant| t.min(x)));
            }
        };
        if !self.handshake_complete {
            take(self.handshake_deadline);
        }
        take(self.recovery.loss_detection_timer(self.timer_ctx()));
        // Only deadlines `handle_timeout` and `poll_transmit` can act on: one
        // left in the past makes the caller's event loop spin. An ACK that
        // the amplification limit holds back waits for the peer's next
        // datagram; keep-alive PINGs start once the handshake is complete.
        if !self.amplification_blocked() {
            for s in self.spaces.iter() {
                if !s.discarded {
                    take(s.ack.deadline());
                }
            }
        }
        if self.handshake_complete {
            take(self.keep_alive_deadline);
        }
        take(self.pmtud.deadline());
        take(self.pacing_deadline);
        take(self.path.timeout());
        if let Some(k) = &self.one_rtt {
            take(k.prev_discard_deadline());
        }
        t
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(d) = self.close_deadline {
            if now >= d {
                self.state = State::Drained;
                self.close_deadline = None;
            }
            return;
        }
        if self.idle_deadline().is_some_and(|d| now >= d) {
            // RFC 9000 §10.1: silently close.
            self.set_error(now, ConnectionError::TimedOut);
            self.state = State::Drained;
            return;
        }
        if !self.handshake_complete && self.handshake_deadline.is_some_and(|d| now >= d) {
            // Discarded like an idle connection: the peer either never
            // finishes or cannot reach us; a close would only feed it.
            self.set_error(now, ConnectionError::HandshakeTimedOut);
            self.state = State::Drained;
            return;
        }
        if self.keep_alive_deadline.is_some_and(|d| now >= d) && self.handshake_complete {
            self.pending.ping = true;
            self.keep_alive_deadline = self.config.keep_alive_interval.map(|k| now + k);
        }
        if self.pacing_deadline.is_some_and(|d| now >= d) {
            self.pacing_deadline = None;
        }
        if let Some(k) = &mut self.one_rtt {
            k.discard_prev_if_due(now);
        }
        self.pmtud.on_timeout(now);
        self.on_path_timeout(now);
        if self.state == State::Drained {
            return;
        }
        // RFC 9002 A.9: a time-threshold loss re-arms the timer, and the PTO
        // it falls back to may already be due (its anchor is the last
        // ack-eliciting packet, long before `now` after a quiet spell).
        // Fire that too, so that the call leaves probes to send rather
        // than a deadline in the past for the caller's loop to spin on.
        for _ in 0..2 {
            if self.recovery.loss_detection_timer(self.timer_ctx()).is_none_or(|d| now < d) {
                break;
            }
            let ctx = self.timer_ctx();
            let mut out = core::mem::take(&mut self.ack_outcome);
            let action = self.recovery.on_loss_detection_timeout(now, ctx, &mut out);
            let mut ecn_change = None;
            for p in out.lost.drain(..) {
                ecn_change = ecn_change.or(self.on_packet_lost(now, p));
            }
            self.on_ecn_change(now, ecn_change);
            self.ack_outcome = out;
            if let crate::recovery::TimeoutAction::Probe { space, probes } = action {
                self.on_probe_timeout(space, probes);
                // Nothing acknowledged for several PTOs: perhaps packets
                // above the base no longer pass (RFC 8899 §4.3).
                let change = self.pmtud.on_pto(self.recovery.pto_count());
                self.apply_mtu_change(now, change);
                break;
            }
        }
    }

    /// RFC 9002 §6.2.4: a PTO expired in `space`. Its probes carry new data
    /// if there is any, else data still unacknowledged (for the handshake:
    /// the CRYPTO data in flight, so a lost flight, or lost ACKs of it, are
    /// repaired by the probe itself rather than waiting for loss detection
    /// that a PING-only probe may never trigger), and only when there is
    /// nothing at all, a PING. Before the handshake is confirmed the other
    /// spaces with data in flight are probed too, coalesced: the peer may
    /// hold keys for only one of them.
    fn on_probe_timeout(&mut self, space: SpaceId, probes: u8) {
        let mut targets = [false; 3];
        targets[space.index()] = true;
        if !self.handshake_confirmed {
            for s in [SpaceId::Initial, SpaceId::Handshake, SpaceId::Data] {
                if !self.spaces[s.index()].discarded && self.recovery.has_ack_eliciting_in_flight(s) {
                    targets[s.index()] = true;
                }
            }
        }
        for s in [SpaceId::Initial, SpaceId::Handshake, SpaceId::Data] {
            if !targets[s.index()] || self.spaces[s.index()].discarded {
                continue;
            }
            let sp = &mut self.spaces[s.index()];
            // Every probed space gets as many probes as the expired one:
            // each probe datagram then carries the whole unacknowledged
            // flight (Initial and Handshake CRYPTO together). A server
            // under the anti-amplification limit may have only these two
            // datagrams before the client speaks again; one with the
            // ServerHello alone and padding would waste one.
            sp.probes = sp.probes.max(probes);
            self.queue_probe_data(s);
        }
    }

    /// Queues old data for a probe in `space` when no new data waits.
    pub(super) fn queue_probe_data(&mut self, space: SpaceId) {
        if self.has_new_data_for(space) {
            return;
        }
        match space {
            SpaceId::Initial | SpaceId::Handshake => {
                // The handshake flight is small: resend all of it that is
                // not acknowledged (acknowledged parts are skipped).
                let ranges: SmallVec<[(u64, u32); 4]> =
                    self.recovery.sent_packets(space).iter().filter(|p| p.ack_eliciting).filter_map(|p| p.payload.crypto).collect();
                let cs = &mut self.spaces[space.index()].crypto_send;
                for (off, len) in ranges {
                    cs.on_lost(off, len as usize, false);
                }
            }
            SpaceId::Data => {
                // The frames of the oldest packets still carrying any,
                // about two datagrams' worth (§6.2.4 sends up to two
                // probes). The probe takes them over: the old packets keep
                // none, so the next probe moves on to the packets after
                // them instead of repeating the oldest forever while the
                // data behind it waits for an ACK that may not come. An ACK
                // of the old packet then acknowledges nothing; the probe's
                // does. HANDSHAKE_DONE costs nothing here: it is repeated
                // below wherever it is.
                // Data an earlier probe took over and could not send yet
                // goes first: taking more would only queue it behind that.
                let retransmission_waits =
                    self.streams.send_queue.iter().any(|id| self.streams.map.get(id).and_then(|st| st.send.as_ref()).is_some_and(|st| st.has_data_to_send()));
                const BUDGET: u64 = 2 * 1200;
                let mut spent = if retransmission_waits { BUDGET } else { 0 };
                let mut picked: SmallVec<[SentFrames; 4]> = SmallVec::new();
                for p in self.recovery.sent_packets_mut(space).iter_mut() {
                    if spent >= BUDGET {
                        break;
                    }
                    let f = &mut p.payload;
                    let cost = f.streams.iter().map(|r| u64::from(r.len).max(1)).sum::<u64>()
                        + 32 * f.control.iter().filter(|c| **c != Retransmit::HandshakeDone).count() as u64;
                    if p.ack_eliciting && cost > 0 {
                        spent += cost;
                        let mut taken = SentFrames::new(space);
                        taken.streams = core::mem::take(&mut f.streams);
                        taken.control = core::mem::take(&mut f.control);
                        picked.push(taken);
                    }
                }
                for frames in &picked {
                    self.on_frames_lost(frames);
                }
                if self.pending.handshake_done_unacked {
                    self.pending.handshake_done = true;
                }
            }
        }
    }

    /// RFC 9002 §6.2.3: an ack-eliciting Initial or Handshake packet with no
    /// new CRYPTO data is the peer probing, or repeating its flight, because
    /// it lacks ours: resend our unacknowledged handshake data now rather
    /// than at our own PTO (a few times per connection; a server stays
    /// within the anti-amplification limit as always).
    pub(super) fn on_peer_handshake_probe(&mut self) {
        const MAX_EARLY_RETRANSMITS: u8 = 8;
        if self.early_retransmits >= MAX_EARLY_RETRANSMITS || self.handshake_confirmed {
            return;
        }
        let mut any = false;
        for s in [SpaceId::Initial, SpaceId::Handshake] {
            if !self.spaces[s.index()].discarded && self.recovery.sent_packets(s).iter().any(|p| p.payload.crypto.is_some()) {
                self.queue_probe_data(s);
                any = true;
            }
        }
        if any {
            self.early_retransmits += 1;
        }
    }

    /// Whether `space` has data never sent before (RFC 9002 §6.2.4 prefers
    /// it in probes).
    fn has_new_data_for(&self, space: SpaceId) -> bool {
        let s = &self.spaces[space.index()];
        if s.crypto_send.has_unsent_data() {
            return true;
        }
        space == SpaceId::Data
            && self.one_rtt.is_some()
            && self.conn_send.available() > 0
            && self.streams.send_queue.iter().any(|id| self.streams.map.get(id).and_then(|st| st.send.as_ref()).is_some_and(|st| st.has_unsent_data()))
    }

    /// ECN validation changed state: logged to qlog.
    pub(super) fn on_ecn_change(&mut self, now: Instant, state: Option<ecn::EcnState>) {
        let Some(state) = state else { return };
        let failure = self.ecn.failure();
        if let Some(q) = &mut self.qlog {
            // quic-events: ecn_state_updated.
            let new = match state {
                ecn::EcnState::Testing => "testing",
                ecn::EcnState::Unknown => "unknown",
                ecn::EcnState::Capable => "capable",
                ecn::EcnState::Failed => "failed",
            };
            let trigger = failure.map(|f| format!("{f:?}"));
            q.event(now, &crate::qlog::QlogEvent::EcnStateUpdated { new, trigger: trigger.as_deref() });
        }
    }

    /// Where ECN validation of the current path stands.
    pub fn ecn_state(&self) -> ecn::EcnState {
        self.ecn.state()
    }

    /// Why ECN validation failed, if it did.
    pub fn ecn_failure(&self) -> Option<ecn::EcnFailure> {
        self.ecn.failure()
    }

    fn on_established(&mut self) {
        if self.state == State::Handshake {
            self.state = State::Established;
        }
    }
}
