//! The public types of qlog events (quic-events draft 13): vantage points,
//! packet headers and events, triggers, closes, parameters, recovery.

use std::net::SocketAddr;
use std::time::Duration;

use crate::cid::ConnectionId;
use crate::error::TransportErrorCode;
use crate::packet::{LongType, PacketType as WirePacketType};
use crate::transport_params::{PreferredAddress, TransportParameters};
use crate::version::Version;

/// Main schema §6: who produced the trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VantagePointType {
    Client,
    Server,
    Network,
    Unknown,
}

impl VantagePointType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Server => "server",
            Self::Network => "network",
            Self::Unknown => "unknown",
        }
    }
}

/// What the header record says about the trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceInfo<'a> {
    pub vantage_point: VantagePointType,
    /// `vantage_point.name`, e.g. "quicpro client".
    pub vantage_point_name: Option<&'a str>,
    pub title: Option<&'a str>,
    pub description: Option<&'a str>,
    /// `common_fields.group_id`, e.g. the original destination CID in hex
    /// (main schema §7.3).
    pub group_id: Option<&'a str>,
    /// `reference_time.wall_clock_time`: RFC 3339 date-time of the reference
    /// instant, if the caller knows it.
    pub wall_clock_time: Option<&'a str>,
    /// Event schemas in use besides [`QUIC_EVENT_SCHEMA`] (e.g. HTTP/3).
    pub extra_event_schemas: &'a [&'a str],
}

impl<'a> TraceInfo<'a> {
    pub fn new(vantage_point: VantagePointType) -> Self {
        Self { vantage_point, vantage_point_name: None, title: None, description: None, group_id: None, wall_clock_time: None, extra_event_schemas: &[] }
    }
}

/// quic-events §9.3 `Initiator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Initiator {
    Local,
    Remote,
}

impl Initiator {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Remote => "remote",
        }
    }
}

/// quic-events §9.6 `PacketType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    Initial,
    Handshake,
    ZeroRtt,
    OneRtt,
    Retry,
    VersionNegotiation,
    StatelessReset,
    Unknown,
}

impl PacketType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initial => "initial",
            Self::Handshake => "handshake",
            Self::ZeroRtt => "0RTT",
            Self::OneRtt => "1RTT",
            Self::Retry => "retry",
            Self::VersionNegotiation => "version_negotiation",
            Self::StatelessReset => "stateless_reset",
            Self::Unknown => "unknown",
        }
    }
}

impl From<WirePacketType> for PacketType {
    fn from(t: WirePacketType) -> Self {
        match t {
            WirePacketType::Long(LongType::Initial) => Self::Initial,
            WirePacketType::Long(LongType::ZeroRtt) => Self::ZeroRtt,
            WirePacketType::Long(LongType::Handshake) => Self::Handshake,
            WirePacketType::Long(LongType::Retry) => Self::Retry,
            WirePacketType::Short => Self::OneRtt,
            WirePacketType::VersionNegotiation => Self::VersionNegotiation,
        }
    }
}

/// quic-events §9.8 `PacketHeader`. Absent fields are omitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketHeader<'a> {
    pub packet_type: PacketType,
    pub packet_number: Option<u64>,
    pub packet_number_length: Option<u8>,
    pub version: Option<Version>,
    pub dcid: Option<&'a [u8]>,
    pub scid: Option<&'a [u8]>,
    /// Initial / Retry token; logged as `token.raw` (length and bytes).
    pub token: Option<&'a [u8]>,
    /// The long header Length field: packet number plus payload.
    pub length: Option<u64>,
    pub spin_bit: Option<bool>,
    pub key_phase: Option<u64>,
    pub key_phase_bit: Option<bool>,
}

impl<'a> PacketHeader<'a> {
    /// Only the packet type; fill in the rest with struct update syntax.
    pub fn new(packet_type: PacketType) -> Self {
        Self {
            packet_type,
            packet_number: None,
            packet_number_length: None,
            version: None,
            dcid: None,
            scid: None,
            token: None,
            length: None,
            spin_bit: None,
            key_phase: None,
            key_phase_bit: None,
        }
    }

    /// An Initial, Handshake or 0-RTT header.
    pub fn long(packet_type: PacketType, version: Version, dcid: &'a [u8], scid: &'a [u8], packet_number: u64) -> Self {
        Self { version: Some(version), dcid: Some(dcid), scid: Some(scid), packet_number: Some(packet_number), ..Self::new(packet_type) }
    }

    /// A 1-RTT header.
    pub fn short(dcid: &'a [u8], packet_number: u64) -> Self {
        Self { dcid: Some(dcid), packet_number: Some(packet_number), ..Self::new(PacketType::OneRtt) }
    }
}

/// Main schema §10 `RawInfo`, without the bytes themselves (packet
/// contents are never logged).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawInfo {
    /// Full length of the entity, headers (and AEAD tag) included.
    pub length: Option<u64>,
    pub payload_length: Option<u64>,
}

impl RawInfo {
    pub fn length(length: usize) -> Self {
        Self { length: Some(length as u64), payload_length: None }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.length.is_none() && self.payload_length.is_none()
    }
}

/// The `trigger` of packet_sent / packet_received (quic-events §5.6, §5.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketTrigger {
    /// RFC 9002 §6.1.1.
    RetransmitReordered,
    /// RFC 9002 §6.1.2.
    RetransmitTimeout,
    /// RFC 9002 §6.2.4.
    PtoProbe,
    /// RFC 9002 §6.2.3.
    RetransmitCrypto,
    CcBandwidthProbe,
    /// Received: the packet had been buffered until its keys arrived.
    KeysAvailable,
}

impl PacketTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RetransmitReordered => "retransmit_reordered",
            Self::RetransmitTimeout => "retransmit_timeout",
            Self::PtoProbe => "pto_probe",
            Self::RetransmitCrypto => "retransmit_crypto",
            Self::CcBandwidthProbe => "cc_bandwidth_probe",
            Self::KeysAvailable => "keys_available",
        }
    }
}

/// Everything of a packet_sent / packet_received event but its frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketEvent<'a> {
    pub header: PacketHeader<'a>,
    pub raw: RawInfo,
    /// Packets coalesced in one UDP datagram share it (quic-events §10).
    pub datagram_id: Option<u32>,
    pub trigger: Option<PacketTrigger>,
    /// Sent packets only; written when true.
    pub is_mtu_probe_packet: bool,
}

impl<'a> PacketEvent<'a> {
    pub fn new(header: PacketHeader<'a>) -> Self {
        Self { header, raw: RawInfo::default(), datagram_id: None, trigger: None, is_mtu_probe_packet: false }
    }
}

/// quic-events §5.8 packet_dropped `trigger`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketDroppedTrigger {
    InternalError,
    Rejected,
    Unsupported,
    Invalid,
    Duplicate,
    ConnectionUnknown,
    DecryptionFailure,
    KeyUnavailable,
    General,
}

impl PacketDroppedTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InternalError => "internal_error",
            Self::Rejected => "rejected",
            Self::Unsupported => "unsupported",
            Self::Invalid => "invalid",
            Self::Duplicate => "duplicate",
            Self::ConnectionUnknown => "connection_unknown",
            Self::DecryptionFailure => "decryption_failure",
            Self::KeyUnavailable => "key_unavailable",
            Self::General => "general",
        }
    }
}

/// quic-events §7.6 packet_lost `trigger`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketLostTrigger {
    ReorderingThreshold,
    TimeThreshold,
    PtoExpired,
}

impl PacketLostTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReorderingThreshold => "reordering_threshold",
            Self::TimeThreshold => "time_threshold",
            Self::PtoExpired => "pto_expired",
        }
    }
}

/// quic-events §4.6 connection states: the base ones and the granular ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    Attempted,
    HandshakeStarted,
    HandshakeComplete,
    Closed,
    PeerValidated,
    EarlyWrite,
    HandshakeConfirmed,
    Closing,
    Draining,
}

impl ConnectionState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Attempted => "attempted",
            Self::HandshakeStarted => "handshake_started",
            Self::HandshakeComplete => "handshake_complete",
            Self::Closed => "closed",
            Self::PeerValidated => "peer_validated",
            Self::EarlyWrite => "early_write",
            Self::HandshakeConfirmed => "handshake_confirmed",
            Self::Closing => "closing",
            Self::Draining => "draining",
        }
    }
}

/// The error a connection closed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseError {
    /// A transport error code, including CRYPTO_ERROR (0x100..=0x1ff).
    Transport(TransportErrorCode),
    /// An application protocol error code.
    Application(u64),
}

/// quic-events §4.3 connection_closed `trigger`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseTrigger {
    IdleTimeout,
    Application,
    Error,
    VersionMismatch,
    StatelessReset,
    Aborted,
    Unspecified,
}

impl CloseTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IdleTimeout => "idle_timeout",
            Self::Application => "application",
            Self::Error => "error",
            Self::VersionMismatch => "version_mismatch",
            Self::StatelessReset => "stateless_reset",
            Self::Aborted => "aborted",
            Self::Unspecified => "unspecified",
        }
    }
}

/// quic-events §4.3 `QUICConnectionClosed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnectionClosed<'a> {
    pub initiator: Option<Initiator>,
    pub error: Option<CloseError>,
    pub internal_code: Option<u64>,
    pub reason: Option<&'a str>,
    pub trigger: Option<CloseTrigger>,
}

/// quic-events §9.4 `TupleEndpointInfo`: one half of the four-tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TupleEndpoint<'a> {
    pub addr: Option<SocketAddr>,
    pub connection_ids: &'a [ConnectionId],
}

/// quic-events §5.3 `QUICParametersSet`. Absent fields are omitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ParametersSet<'a> {
    pub initiator: Option<Initiator>,
    pub resumption_allowed: Option<bool>,
    pub early_data_enabled: Option<bool>,
    /// e.g. "AES_128_GCM_SHA256".
    pub tls_cipher: Option<&'a str>,
    pub original_destination_connection_id: Option<&'a [u8]>,
    pub initial_source_connection_id: Option<&'a [u8]>,
    pub retry_source_connection_id: Option<&'a [u8]>,
    pub stateless_reset_token: Option<&'a [u8; 16]>,
    pub disable_active_migration: Option<bool>,
    pub max_idle_timeout: Option<u64>,
    pub max_udp_payload_size: Option<u64>,
    pub ack_delay_exponent: Option<u64>,
    pub max_ack_delay: Option<u64>,
    pub active_connection_id_limit: Option<u64>,
    pub initial_max_data: Option<u64>,
    pub initial_max_stream_data_bidi_local: Option<u64>,
    pub initial_max_stream_data_bidi_remote: Option<u64>,
    pub initial_max_stream_data_uni: Option<u64>,
    pub initial_max_streams_bidi: Option<u64>,
    pub initial_max_streams_uni: Option<u64>,
    pub preferred_address: Option<&'a PreferredAddress>,
    pub max_datagram_frame_size: Option<u64>,
    pub grease_quic_bit: Option<bool>,
}

impl<'a> ParametersSet<'a> {
    /// Every RFC 9000 / 9221 / 9287 transport parameter of `tp`, as sent
    /// (`Local`) or received (`Remote`).
    pub fn from_transport_parameters(initiator: Initiator, tp: &'a TransportParameters) -> Self {
        Self {
            initiator: Some(initiator),
            original_destination_connection_id: tp.original_destination_connection_id.as_ref().map(ConnectionId::as_slice),
            initial_source_connection_id: tp.initial_source_connection_id.as_ref().map(ConnectionId::as_slice),
            retry_source_connection_id: tp.retry_source_connection_id.as_ref().map(ConnectionId::as_slice),
            stateless_reset_token: tp.stateless_reset_token.as_ref().map(|t| &t.0),
            disable_active_migration: Some(tp.disable_active_migration),
            max_idle_timeout: Some(tp.max_idle_timeout),
            max_udp_payload_size: Some(tp.max_udp_payload_size),
            ack_delay_exponent: Some(tp.ack_delay_exponent),
            max_ack_delay: Some(tp.max_ack_delay),
            active_connection_id_limit: Some(tp.active_connection_id_limit),
            initial_max_data: Some(tp.initial_max_data),
            initial_max_stream_data_bidi_local: Some(tp.initial_max_stream_data_bidi_local),
            initial_max_stream_data_bidi_remote: Some(tp.initial_max_stream_data_bidi_remote),
            initial_max_stream_data_uni: Some(tp.initial_max_stream_data_uni),
            initial_max_streams_bidi: Some(tp.initial_max_streams_bidi),
            initial_max_streams_uni: Some(tp.initial_max_streams_uni),
            preferred_address: tp.preferred_address.as_ref(),
            max_datagram_frame_size: tp.max_datagram_frame_size,
            grease_quic_bit: Some(tp.grease_quic_bit),
            ..Self::default()
        }
    }
}

/// quic-events §6 `KeyType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    ServerInitialSecret,
    ClientInitialSecret,
    ServerHandshakeSecret,
    ClientHandshakeSecret,
    Server0RttSecret,
    Client0RttSecret,
    Server1RttSecret,
    Client1RttSecret,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ServerInitialSecret => "server_initial_secret",
            Self::ClientInitialSecret => "client_initial_secret",
            Self::ServerHandshakeSecret => "server_handshake_secret",
            Self::ClientHandshakeSecret => "client_handshake_secret",
            Self::Server0RttSecret => "server_0rtt_secret",
            Self::Client0RttSecret => "client_0rtt_secret",
            Self::Server1RttSecret => "server_1rtt_secret",
            Self::Client1RttSecret => "client_1rtt_secret",
        }
    }
}

/// quic-events §6.1 key_updated / key_discarded `trigger`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyUpdateTrigger {
    Tls,
    RemoteUpdate,
    LocalUpdate,
}

impl KeyUpdateTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tls => "tls",
            Self::RemoteUpdate => "remote_update",
            Self::LocalUpdate => "local_update",
        }
    }
}

/// quic-events §7.2 `QUICRecoveryMetricsUpdated`. Durations are logged in
/// milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecoveryMetrics {
    pub min_rtt: Option<Duration>,
    pub smoothed_rtt: Option<Duration>,
    pub latest_rtt: Option<Duration>,
    pub rtt_variance: Option<Duration>,
    pub pto_count: Option<u16>,
    pub congestion_window: Option<u64>,
    pub bytes_in_flight: Option<u64>,
    pub ssthresh: Option<u64>,
    pub packets_in_flight: Option<u64>,
    /// Bits per second.
    pub pacing_rate: Option<u64>,
}

/// quic-events §7.1 `QUICRecoveryParametersSet`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RecoveryParameters {
    pub reordering_threshold: Option<u16>,
    pub time_threshold: Option<f32>,
    /// Logged in whole milliseconds, as the draft's uint16 asks.
    pub timer_granularity: Duration,
    pub initial_rtt: Option<Duration>,
    pub max_datagram_size: Option<u32>,
    pub initial_congestion_window: Option<u64>,
    pub minimum_congestion_window: Option<u64>,
    pub loss_reduction_factor: Option<f32>,
    pub persistent_congestion_threshold: Option<u16>,
}
