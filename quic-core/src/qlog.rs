//! qlog event logging, streamed as JSON Text Sequences.
//!
//! Implements the `QlogFileSeq` schema of draft-ietf-quic-qlog-main-schema-14
//! and the QUIC events of draft-ietf-quic-qlog-quic-events-13:
//!
//! - The file is a JSON-SEQ stream (RFC 7464): every record is an ASCII
//!   Record Separator (0x1E), one JSON object, and a line feed (main schema
//!   §11.2). The first record is the file header (`file_schema`,
//!   `serialization_format`, and one `trace` with `common_fields`,
//!   `vantage_point` and `event_schemas`, §5); each following record is one
//!   event with `time`, `name` and `data` (§7).
//! - This crate never reads a clock, so the trace uses a monotonic reference
//!   time with an unknown epoch (main schema §7.1): `time` is the number of
//!   milliseconds (f64, nanosecond resolution) since the [`Instant`] given to
//!   [`QlogWriter::new`]. A caller that knows the wall-clock time at that
//!   instant can record it in [`TraceInfo::wall_clock_time`].
//! - Event and field names are those of the quic-events draft; as that
//!   draft requires of implementations of a draft version, the event schema
//!   is identified as `urn:ietf:params:qlog:events:quic-13` (quic-events
//!   §2.1). Recovery events live in the `quic` namespace there
//!   (`quic:recovery_metrics_updated`, `quic:packet_lost`, ...).
//!
//! The writer owns a `Box<dyn Write + Send>` the caller opened (a file, a
//! buffer); quic-core never opens files. JSON is written by hand into a
//! buffer reused across events; each record reaches the sink in a single
//! `write_all`. A sink error never panics and never reaches the connection:
//! the first error is kept ([`QlogWriter::first_error`]), logging stops, and
//! every record not written from then on is counted
//! ([`QlogWriter::failed_writes`]).

use core::borrow::Borrow;
use core::fmt::{self, Write as _};
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::cid::ConnectionId;
use crate::error::TransportErrorCode;
use crate::frame::{Frame, StreamDir};
use crate::packet::{LongType, PacketType as WirePacketType};
use crate::transport_params::{PreferredAddress, TransportParameters};
use crate::version::Version;

/// RFC 7464 §2.1: every JSON text in a sequence starts with RS.
pub const RECORD_SEPARATOR: u8 = 0x1e;
/// Main schema §5: the JSON-SEQ (QlogFileSeq) file schema URI.
pub const FILE_SCHEMA: &str = "urn:ietf:params:qlog:file:sequential";
/// Main schema §11.2: the media type of qlog as JSON-SEQ.
pub const SERIALIZATION_FORMAT: &str = "application/qlog+json-seq";
/// quic-events §2.1: draft implementations append "-" and the draft number.
pub const QUIC_EVENT_SCHEMA: &str = "urn:ietf:params:qlog:events:quic-13";
/// RFC 9000 §18.2: ack_delay_exponent when the parameter is absent.
const DEFAULT_ACK_DELAY_EXPONENT: u8 = 3;
/// RFC 9000 §18.2: values above 20 are invalid.
const MAX_ACK_DELAY_EXPONENT: u8 = 20;

// ---------------------------------------------------------------------------
// JSON text building

/// A JSON text under construction. Tracks, per open object or array,
/// whether a comma is due before the next member, so callers only say what
/// to write.
#[derive(Debug, Default)]
struct Json {
    s: String,
    /// One entry per open container: "a member was already written".
    comma: Vec<bool>,
    /// A key was just written; its value takes no comma.
    after_key: bool,
}

impl Json {
    fn clear(&mut self) {
        self.s.clear();
        self.comma.clear();
        self.after_key = false;
    }

    fn sep(&mut self) {
        if self.after_key {
            self.after_key = false;
            return;
        }
        if let Some(c) = self.comma.last_mut() {
            if *c {
                self.s.push(',');
            }
            *c = true;
        }
    }

    fn key(&mut self, k: &str) {
        self.sep();
        escape_into(&mut self.s, k);
        self.s.push(':');
        self.after_key = true;
    }

    fn begin_object(&mut self) {
        self.sep();
        self.s.push('{');
        self.comma.push(false);
    }

    fn end_object(&mut self) {
        self.comma.pop();
        self.s.push('}');
    }

    fn begin_array(&mut self) {
        self.sep();
        self.s.push('[');
        self.comma.push(false);
    }

    fn end_array(&mut self) {
        self.comma.pop();
        self.s.push(']');
    }

    fn str(&mut self, v: &str) {
        self.sep();
        escape_into(&mut self.s, v);
    }

    /// A string value produced by `Display`, escaped on the way.
    fn str_fmt(&mut self, args: fmt::Arguments<'_>) {
        self.sep();
        self.s.push('"');
        // Writing to a String cannot fail.
        let _ = Escaper(&mut self.s).write_fmt(args);
        self.s.push('"');
    }

    fn u64(&mut self, v: u64) {
        self.sep();
        let _ = write!(self.s, "{v}");
    }

    /// RFC 8259 §6: NaN and infinities are not JSON numbers; they become
    /// null. Finite values use `Debug`, which always prints a fraction or an
    /// exponent ("8.0", "1e-9"), both valid JSON, so float fields read back
    /// as floats.
    fn f64(&mut self, v: f64) {
        self.sep();
        if v.is_finite() {
            let _ = write!(self.s, "{v:?}");
        } else {
            self.s.push_str("null");
        }
    }

    fn bool(&mut self, v: bool) {
        self.sep();
        self.s.push_str(if v { "true" } else { "false" });
    }

    /// qlog `hexstring`: lowercase hex, no prefix (main schema §1.2).
    fn hex(&mut self, bytes: &[u8]) {
        self.sep();
        self.s.reserve(bytes.len() * 2 + 2);
        self.s.push('"');
        push_hex(&mut self.s, bytes);
        self.s.push('"');
    }

    // Member shorthands.

    fn f_str(&mut self, k: &str, v: &str) {
        self.key(k);
        self.str(v);
    }

    fn f_u64(&mut self, k: &str, v: u64) {
        self.key(k);
        self.u64(v);
    }

    fn f_f64(&mut self, k: &str, v: f64) {
        self.key(k);
        self.f64(v);
    }

    fn f_bool(&mut self, k: &str, v: bool) {
        self.key(k);
        self.bool(v);
    }

    fn f_hex(&mut self, k: &str, v: &[u8]) {
        self.key(k);
        self.hex(v);
    }

    fn o_str(&mut self, k: &str, v: Option<&str>) {
        if let Some(v) = v {
            self.f_str(k, v);
        }
    }

    fn o_u64(&mut self, k: &str, v: Option<u64>) {
        if let Some(v) = v {
            self.f_u64(k, v);
        }
    }

    fn o_bool(&mut self, k: &str, v: Option<bool>) {
        if let Some(v) = v {
            self.f_bool(k, v);
        }
    }

    fn o_hex(&mut self, k: &str, v: Option<&[u8]>) {
        if let Some(v) = v {
            self.f_hex(k, v);
        }
    }

    fn o_ms(&mut self, k: &str, v: Option<Duration>) {
        if let Some(v) = v {
            self.f_f64(k, duration_ms(v));
        }
    }

    fn begin_object_field(&mut self, k: &str) {
        self.key(k);
        self.begin_object();
    }

    fn begin_array_field(&mut self, k: &str) {
        self.key(k);
        self.begin_array();
    }
}

/// RFC 8259 §7: quote, backslash and U+0000..U+001F must be escaped.
fn escape_into(out: &mut String, s: &str) {
    out.push('"');
    push_escaped(out, s);
    out.push('"');
}

fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

/// Escapes `Display` output as it is produced.
struct Escaper<'s>(&'s mut String);

impl fmt::Write for Escaper<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        push_escaped(self.0, s);
        Ok(())
    }
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

/// Milliseconds as f64 from whole nanoseconds, so that round values print
/// round (21.018, not 21.017999999999997).
fn duration_ms(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1e6
}

// ---------------------------------------------------------------------------
// Public types

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

    fn is_empty(&self) -> bool {
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

// ---------------------------------------------------------------------------
// Frames

/// Writes `key: <error>` for a transport error: its name, a
/// `crypto_error_0x1NN` string (quic-events §9.13.3), or "unknown" with the
/// code in `code_key`.
fn write_transport_error(j: &mut Json, key: &str, code_key: &str, code: TransportErrorCode) {
    if let Some(alert) = code.tls_alert() {
        j.key(key);
        j.str_fmt(format_args!("crypto_error_0x1{alert:02x}"));
    } else if let Some(name) = code.snake_name() {
        j.f_str(key, name);
    } else {
        j.f_str(key, "unknown");
        j.f_u64(code_key, code.0);
    }
}

/// A CONNECTION_CLOSE reason phrase is bytes (RFC 9000 §19.19): text when
/// it is UTF-8, hex otherwise (quic-events §9.13.20).
fn write_reason(j: &mut Json, reason: &[u8]) {
    match core::str::from_utf8(reason) {
        Ok(text) => j.f_str("reason", text),
        Err(_) => j.f_hex("reason_bytes", reason),
    }
}

fn stream_type(dir: StreamDir) -> &'static str {
    match dir {
        StreamDir::Bidi => "bidirectional",
        StreamDir::Uni => "unidirectional",
    }
}

/// `raw: {length}` with the frame's own Length field (quic-events §9.13.7,
/// §9.13.9, §9.13.23 ask for it there).
fn raw_length(j: &mut Json, len: usize) {
    j.begin_object_field("raw");
    j.f_u64("length", len as u64);
    j.end_object();
}

/// One frame in qlog form (quic-events §9.13). `ack_delay_exponent` scales
/// ACK Delay to milliseconds: the sender's exponent applies (ours for ACKs
/// we send, the peer's for ACKs we receive; RFC 9000 §19.3).
fn write_frame(j: &mut Json, frame: &Frame<'_>, ack_delay_exponent: u8) {
    j.begin_object();
    match *frame {
        Frame::Padding { len } => {
            // §9.13.1: one entry for the run, its size in raw.payload_length.
            j.f_str("frame_type", "padding");
            j.begin_object_field("raw");
            j.f_u64("length", len as u64);
            j.f_u64("payload_length", len as u64);
            j.end_object();
        }
        Frame::Ping => j.f_str("frame_type", "ping"),
        Frame::Ack(ack) => {
            j.f_str("frame_type", "ack");
            // RFC 9000 §19.3: ACK Delay is in units of 2^exponent µs.
            let shift = u32::from(ack_delay_exponent.min(MAX_ACK_DELAY_EXPONENT));
            let micros = ack.ack_delay().saturating_mul(1u64 << shift);
            j.f_f64("ack_delay", micros as f64 / 1000.0);
            j.begin_array_field("acked_ranges");
            for range in ack.iter() {
                // §9.13.3: [n] for a single packet, [from, to] otherwise.
                j.begin_array();
                j.u64(*range.start());
                if range.end() != range.start() {
                    j.u64(*range.end());
                }
                j.end_array();
            }
            j.end_array();
            if let Some(ecn) = ack.ecn() {
                j.f_u64("ect1", ecn.ect1);
                j.f_u64("ect0", ecn.ect0);
                j.f_u64("ce", ecn.ce);
            }
        }
        Frame::ResetStream { id, error_code, final_size } => {
            j.f_str("frame_type", "reset_stream");
            j.f_u64("stream_id", id);
            // Application error codes mean nothing at this layer.
            j.f_str("error", "unknown");
            j.f_u64("error_code", error_code);
            j.f_u64("final_size", final_size);
        }
        Frame::StopSending { id, error_code } => {
            j.f_str("frame_type", "stop_sending");
            j.f_u64("stream_id", id);
            j.f_str("error", "unknown");
            j.f_u64("error_code", error_code);
        }
        Frame::Crypto { offset, data } => {
            j.f_str("frame_type", "crypto");
            j.f_u64("offset", offset);
            raw_length(j, data.len());
        }
        Frame::NewToken { token } => {
            j.f_str("frame_type", "new_token");
            j.begin_object_field("token");
            j.begin_object_field("raw");
            j.f_u64("length", token.len() as u64);
            j.f_hex("data", token);
            j.end_object();
            j.end_object();
        }
        Frame::Stream { id, offset, fin, data } => {
            j.f_str("frame_type", "stream");
            j.f_u64("stream_id", id);
            j.f_u64("offset", offset);
            j.f_bool("fin", fin);
            raw_length(j, data.len());
        }
        Frame::MaxData { max } => {
            j.f_str("frame_type", "max_data");
            j.f_u64("maximum", max);
        }
        Frame::MaxStreamData { id, max } => {
            j.f_str("frame_type", "max_stream_data");
            j.f_u64("stream_id", id);
            j.f_u64("maximum", max);
        }
        Frame::MaxStreams { dir, max } => {
            j.f_str("frame_type", "max_streams");
            j.f_str("stream_type", stream_type(dir));
            j.f_u64("maximum", max);
        }
        Frame::DataBlocked { limit } => {
            j.f_str("frame_type", "data_blocked");
            j.f_u64("limit", limit);
        }
        Frame::StreamDataBlocked { id, limit } => {
            j.f_str("frame_type", "stream_data_blocked");
            j.f_u64("stream_id", id);
            j.f_u64("limit", limit);
        }
        Frame::StreamsBlocked { dir, limit } => {
            j.f_str("frame_type", "streams_blocked");
            j.f_str("stream_type", stream_type(dir));
            j.f_u64("limit", limit);
        }
        Frame::NewConnectionId { sequence, retire_prior_to, cid, reset_token } => {
            j.f_str("frame_type", "new_connection_id");
            j.f_u64("sequence_number", sequence);
            j.f_u64("retire_prior_to", retire_prior_to);
            j.f_u64("connection_id_length", cid.len() as u64);
            j.f_hex("connection_id", cid.as_slice());
            j.f_hex("stateless_reset_token", &reset_token.0);
        }
        Frame::RetireConnectionId { sequence } => {
            j.f_str("frame_type", "retire_connection_id");
            j.f_u64("sequence_number", sequence);
        }
        Frame::PathChallenge { data } => {
            j.f_str("frame_type", "path_challenge");
            j.f_hex("data", &data);
        }
        Frame::PathResponse { data } => {
            j.f_str("frame_type", "path_response");
            j.f_hex("data", &data);
        }
        Frame::ConnectionClose { error_code, frame_type, reason } => {
            j.f_str("frame_type", "connection_close");
            j.f_str("error_space", "transport");
            write_transport_error(j, "error", "error_code", error_code);
            write_reason(j, reason);
            j.f_u64("trigger_frame_type", frame_type);
        }
        Frame::ApplicationClose { error_code, reason } => {
            j.f_str("frame_type", "connection_close");
            j.f_str("error_space", "application");
            j.f_str("error", "unknown");
            j.f_u64("error_code", error_code);
            write_reason(j, reason);
        }
        Frame::HandshakeDone => j.f_str("frame_type", "handshake_done"),
        Frame::Datagram { data } => {
            j.f_str("frame_type", "datagram");
            raw_length(j, data.len());
        }
    }
    j.end_object();
}

fn write_frames<'f, I>(j: &mut Json, key: &str, frames: I, ack_delay_exponent: u8)
where
    I: IntoIterator,
    I::Item: Borrow<Frame<'f>>,
{
    j.begin_array_field(key);
    for frame in frames {
        write_frame(j, frame.borrow(), ack_delay_exponent);
    }
    j.end_array();
}

fn write_header(j: &mut Json, h: &PacketHeader<'_>) {
    j.begin_object_field("header");
    j.f_str("packet_type", h.packet_type.as_str());
    j.o_bool("spin_bit", h.spin_bit);
    j.o_u64("key_phase", h.key_phase);
    j.o_bool("key_phase_bit", h.key_phase_bit);
    j.o_u64("packet_number_length", h.packet_number_length.map(u64::from));
    j.o_u64("packet_number", h.packet_number);
    if let Some(token) = h.token {
        j.begin_object_field("token");
        j.begin_object_field("raw");
        j.f_u64("length", token.len() as u64);
        j.f_hex("data", token);
        j.end_object();
        j.end_object();
    }
    j.o_u64("length", h.length);
    if let Some(v) = h.version {
        write_version(j, "version", v);
    }
    if let Some(scid) = h.scid {
        j.f_u64("scil", scid.len() as u64);
        j.f_hex("scid", scid);
    }
    if let Some(dcid) = h.dcid {
        j.f_u64("dcil", dcid.len() as u64);
        j.f_hex("dcid", dcid);
    }
    j.end_object();
}

/// quic-events §9.1: a version is a hexstring; the four bytes, big-endian.
fn write_version(j: &mut Json, key: &str, v: Version) {
    j.f_hex(key, &v.0.to_be_bytes());
}

fn write_raw(j: &mut Json, raw: &RawInfo) {
    if raw.is_empty() {
        return;
    }
    j.begin_object_field("raw");
    j.o_u64("length", raw.length);
    j.o_u64("payload_length", raw.payload_length);
    j.end_object();
}

fn write_tuple_endpoint(j: &mut Json, key: &str, ep: &TupleEndpoint<'_>) {
    j.begin_object_field(key);
    match ep.addr {
        Some(SocketAddr::V4(a)) => {
            j.key("ip_v4");
            j.str_fmt(format_args!("{}", a.ip()));
            j.f_u64("port_v4", u64::from(a.port()));
        }
        Some(SocketAddr::V6(a)) => {
            j.key("ip_v6");
            j.str_fmt(format_args!("{}", a.ip()));
            j.f_u64("port_v6", u64::from(a.port()));
        }
        None => {}
    }
    if !ep.connection_ids.is_empty() {
        j.begin_array_field("connection_ids");
        for cid in ep.connection_ids {
            j.hex(cid.as_slice());
        }
        j.end_array();
    }
    j.end_object();
}

/// quic-events §5.2 `ALPNIdentifier`: the bytes, and the text when UTF-8.
fn write_alpn(j: &mut Json, alpn: &[u8]) {
    j.begin_object();
    j.f_hex("byte_value", alpn);
    if let Ok(text) = core::str::from_utf8(alpn) {
        j.f_str("string_value", text);
    }
    j.end_object();
}

// ---------------------------------------------------------------------------
// Custom event data

/// The `data` object of an event written with [`QlogWriter::custom_event`]:
/// for events this module has no typed helper for (other QUIC events,
/// HTTP/3 events). Every method appends one member.
pub struct EventData<'w> {
    json: &'w mut Json,
    ack_delay_exponent: u8,
}

impl fmt::Debug for EventData<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventData").finish_non_exhaustive()
    }
}

impl EventData<'_> {
    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.json.f_str(key, value);
        self
    }

    pub fn u64(&mut self, key: &str, value: u64) -> &mut Self {
        self.json.f_u64(key, value);
        self
    }

    pub fn f64(&mut self, key: &str, value: f64) -> &mut Self {
        self.json.f_f64(key, value);
        self
    }

    pub fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.json.f_bool(key, value);
        self
    }

    /// A qlog hexstring.
    pub fn hex(&mut self, key: &str, value: &[u8]) -> &mut Self {
        self.json.f_hex(key, value);
        self
    }

    pub fn u64_array(&mut self, key: &str, values: &[u64]) -> &mut Self {
        self.json.begin_array_field(key);
        for &v in values {
            self.json.u64(v);
        }
        self.json.end_array();
        self
    }

    /// A nested object filled by `f`.
    pub fn object(&mut self, key: &str, f: impl FnOnce(&mut EventData<'_>)) -> &mut Self {
        self.json.begin_object_field(key);
        f(&mut EventData { json: self.json, ack_delay_exponent: self.ack_delay_exponent });
        self.json.end_object();
        self
    }

    /// An array of QUIC frames in qlog form. ACK delays are scaled with the
    /// local ack_delay_exponent (right for frames this endpoint sent); for
    /// received frames call [`EventData::set_ack_delay_exponent`] first.
    pub fn frames<'f, I>(&mut self, key: &str, frames: I) -> &mut Self
    where
        I: IntoIterator,
        I::Item: Borrow<Frame<'f>>,
    {
        write_frames(self.json, key, frames, self.ack_delay_exponent);
        self
    }
}

impl EventData<'_> {
    /// Uses `exponent` for ACK frames written by [`EventData::frames`]
    /// (e.g. [`QlogWriter::ack_delay_exponents`]`().1` for received ones).
    pub fn set_ack_delay_exponent(&mut self, exponent: u8) -> &mut Self {
        self.ack_delay_exponent = exponent.min(MAX_ACK_DELAY_EXPONENT);
        self
    }
}

// ---------------------------------------------------------------------------
// The writer

/// Streams qlog records to a sink. See the module documentation.
pub struct QlogWriter {
    sink: Box<dyn io::Write + Send>,
    reference: Instant,
    json: Json,
    /// Bytes of the record being written: RS, JSON, LF.
    record: Vec<u8>,
    first_error: Option<io::Error>,
    failed_writes: u64,
    events_written: u64,
    local_ack_delay_exponent: u8,
    peer_ack_delay_exponent: u8,
    last_metrics: RecoveryMetrics,
}

impl fmt::Debug for QlogWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QlogWriter")
            .field("events_written", &self.events_written)
            .field("failed_writes", &self.failed_writes)
            .field("first_error", &self.first_error)
            .finish_non_exhaustive()
    }
}

impl QlogWriter {
    /// Writes the header record to `sink` at once. Event times are measured
    /// from `reference`.
    pub fn new(sink: Box<dyn io::Write + Send>, reference: Instant, trace: &TraceInfo<'_>) -> Self {
        let mut w = Self {
            sink,
            reference,
            json: Json::default(),
            record: Vec::new(),
            first_error: None,
            failed_writes: 0,
            events_written: 0,
            local_ack_delay_exponent: DEFAULT_ACK_DELAY_EXPONENT,
            peer_ack_delay_exponent: DEFAULT_ACK_DELAY_EXPONENT,
            last_metrics: RecoveryMetrics::default(),
        };
        w.write_file_header(trace);
        w
    }

    fn write_file_header(&mut self, trace: &TraceInfo<'_>) {
        let j = &mut self.json;
        j.clear();
        j.begin_object();
        // Main schema §4: these two SHOULD be in the first 256 bytes.
        j.f_str("file_schema", FILE_SCHEMA);
        j.f_str("serialization_format", SERIALIZATION_FORMAT);
        j.o_str("title", trace.title);
        j.o_str("description", trace.description);
        j.begin_object_field("trace");
        j.begin_object_field("common_fields");
        j.o_str("group_id", trace.group_id);
        j.f_str("time_format", "relative_to_epoch");
        // Main schema §7.1: a monotonic clock has epoch "unknown".
        j.begin_object_field("reference_time");
        j.f_str("clock_type", "monotonic");
        j.f_str("epoch", "unknown");
        j.o_str("wall_clock_time", trace.wall_clock_time);
        j.end_object();
        j.end_object();
        j.begin_object_field("vantage_point");
        j.o_str("name", trace.vantage_point_name);
        j.f_str("type", trace.vantage_point.as_str());
        j.end_object();
        j.begin_array_field("event_schemas");
        j.str(QUIC_EVENT_SCHEMA);
        for schema in trace.extra_event_schemas {
            j.str(schema);
        }
        j.end_array();
        j.end_object();
        j.end_object();
        self.emit();
    }

    /// The instant event times are measured from.
    pub fn reference_time(&self) -> Instant {
        self.reference
    }

    /// Event records written successfully (the header not counted).
    pub fn events_written(&self) -> u64 {
        self.events_written
    }

    /// Records (header or events) that did not reach the sink: the one that
    /// failed and every one after it.
    pub fn failed_writes(&self) -> u64 {
        self.failed_writes
    }

    /// The sink error that stopped logging, if any.
    pub fn first_error(&self) -> Option<&io::Error> {
        self.first_error.as_ref()
    }

    /// Whether records still reach the sink.
    pub fn is_healthy(&self) -> bool {
        self.first_error.is_none()
    }

    /// Sets the ack_delay_exponent used to turn ACK Delay into milliseconds:
    /// `local` for ACK frames this endpoint sends, `peer` for the ones it
    /// receives (RFC 9000 §18.2; both default to 3). Also learnt from
    /// [`QlogWriter::parameters_set`].
    pub fn set_ack_delay_exponents(&mut self, local: u8, peer: u8) {
        self.local_ack_delay_exponent = local.min(MAX_ACK_DELAY_EXPONENT);
        self.peer_ack_delay_exponent = peer.min(MAX_ACK_DELAY_EXPONENT);
    }

    /// The (local, peer) ack_delay_exponent in use.
    pub fn ack_delay_exponents(&self) -> (u8, u8) {
        (self.local_ack_delay_exponent, self.peer_ack_delay_exponent)
    }

    /// Flushes the sink. A failure stops logging like a failed record.
    pub fn flush(&mut self) {
        if self.first_error.is_some() {
            return;
        }
        if let Err(e) = self.sink.flush() {
            self.first_error = Some(e);
        }
    }

    /// Frames the JSON text as a JSON-SEQ record and writes it in one call.
    fn emit(&mut self) {
        if self.first_error.is_some() {
            self.failed_writes += 1;
            return;
        }
        self.record.clear();
        self.record.push(RECORD_SEPARATOR);
        self.record.extend_from_slice(self.json.s.as_bytes());
        self.record.push(b'\n');
        match self.sink.write_all(&self.record) {
            Ok(()) => {}
            Err(e) => {
                self.first_error = Some(e);
                self.failed_writes += 1;
            }
        }
    }

    /// Writes one event: `time`, `name`, then `data` filled by `f`. Once the
    /// sink has failed nothing is formatted, only counted.
    fn event(&mut self, now: Instant, name: &str, f: impl FnOnce(&mut Json)) {
        if self.first_error.is_some() {
            self.failed_writes += 1;
            return;
        }
        let j = &mut self.json;
        j.clear();
        j.begin_object();
        j.f_f64("time", duration_ms(now.saturating_duration_since(self.reference)));
        j.f_str("name", name);
        j.begin_object_field("data");
        f(j);
        j.end_object();
        j.end_object();
        self.emit();
        if self.first_error.is_none() {
            self.events_written += 1;
        }
    }

    /// Any event, its `data` written through [`EventData`]. `name` is the
    /// full `namespace:event_type`.
    pub fn custom_event(&mut self, now: Instant, name: &str, f: impl FnOnce(&mut EventData<'_>)) {
        let exponent = self.local_ack_delay_exponent;
        self.event(now, name, |j| f(&mut EventData { json: j, ack_delay_exponent: exponent }));
    }

    /// quic:connection_started (quic-events §4.2).
    pub fn connection_started(&mut self, now: Instant, local: &TupleEndpoint<'_>, remote: &TupleEndpoint<'_>) {
        self.event(now, "quic:connection_started", |j| {
            write_tuple_endpoint(j, "local", local);
            write_tuple_endpoint(j, "remote", remote);
        });
    }

    /// quic:connection_closed (quic-events §4.3).
    pub fn connection_closed(&mut self, now: Instant, closed: &ConnectionClosed<'_>) {
        self.event(now, "quic:connection_closed", |j| {
            if let Some(i) = closed.initiator {
                j.f_str("initiator", i.as_str());
            }
            match closed.error {
                Some(CloseError::Transport(code)) => {
                    write_transport_error(j, "connection_error", "error_code", code);
                }
                Some(CloseError::Application(code)) => {
                    j.f_str("application_error", "unknown");
                    j.f_u64("error_code", code);
                }
                None => {}
            }
            j.o_u64("internal_code", closed.internal_code);
            j.o_str("reason", closed.reason);
            if let Some(t) = closed.trigger {
                j.f_str("trigger", t.as_str());
            }
        });
    }

    /// quic:connection_id_updated (quic-events §4.4).
    pub fn connection_id_updated(&mut self, now: Instant, initiator: Initiator, old: Option<&[u8]>, new: Option<&[u8]>) {
        self.event(now, "quic:connection_id_updated", |j| {
            j.f_str("initiator", initiator.as_str());
            j.o_hex("old", old);
            j.o_hex("new", new);
        });
    }

    /// quic:connection_state_updated (quic-events §4.6).
    pub fn connection_state_updated(&mut self, now: Instant, old: Option<ConnectionState>, new: ConnectionState) {
        self.event(now, "quic:connection_state_updated", |j| {
            j.o_str("old", old.map(ConnectionState::as_str));
            j.f_str("new", new.as_str());
        });
    }

    /// quic:version_information (quic-events §5.1). Empty lists are omitted.
    pub fn version_information(&mut self, now: Instant, server_versions: &[Version], client_versions: &[Version], chosen_version: Option<Version>) {
        self.event(now, "quic:version_information", |j| {
            for (key, list) in [("server_versions", server_versions), ("client_versions", client_versions)] {
                if !list.is_empty() {
                    j.begin_array_field(key);
                    for v in list {
                        j.hex(&v.0.to_be_bytes());
                    }
                    j.end_array();
                }
            }
            if let Some(v) = chosen_version {
                write_version(j, "chosen_version", v);
            }
        });
    }

    /// quic:alpn_information (quic-events §5.2). `None` omits a field; an
    /// empty list is logged as such.
    pub fn alpn_information(&mut self, now: Instant, server_alpns: Option<&[&[u8]]>, client_alpns: Option<&[&[u8]]>, chosen_alpn: Option<&[u8]>) {
        self.event(now, "quic:alpn_information", |j| {
            for (key, list) in [("server_alpns", server_alpns), ("client_alpns", client_alpns)] {
                if let Some(list) = list {
                    j.begin_array_field(key);
                    for alpn in list {
                        write_alpn(j, alpn);
                    }
                    j.end_array();
                }
            }
            if let Some(alpn) = chosen_alpn {
                j.key("chosen_alpn");
                write_alpn(j, alpn);
            }
        });
    }

    /// quic:parameters_set (quic-events §5.3). An `ack_delay_exponent` in
    /// it also sets the exponent ACK frames are scaled with, for the side
    /// named by `initiator`.
    pub fn parameters_set(&mut self, now: Instant, p: &ParametersSet<'_>) {
        if let Some(exp) = p.ack_delay_exponent {
            let exp = u8::try_from(exp).unwrap_or(u8::MAX).min(MAX_ACK_DELAY_EXPONENT);
            match p.initiator {
                Some(Initiator::Local) => self.local_ack_delay_exponent = exp,
                Some(Initiator::Remote) => self.peer_ack_delay_exponent = exp,
                None => {}
            }
        }
        self.event(now, "quic:parameters_set", |j| {
            if let Some(i) = p.initiator {
                j.f_str("initiator", i.as_str());
            }
            j.o_bool("resumption_allowed", p.resumption_allowed);
            j.o_bool("early_data_enabled", p.early_data_enabled);
            j.o_str("tls_cipher", p.tls_cipher);
            j.o_hex("original_destination_connection_id", p.original_destination_connection_id);
            j.o_hex("initial_source_connection_id", p.initial_source_connection_id);
            j.o_hex("retry_source_connection_id", p.retry_source_connection_id);
            j.o_hex("stateless_reset_token", p.stateless_reset_token.map(|t| &t[..]));
            j.o_bool("disable_active_migration", p.disable_active_migration);
            j.o_u64("max_idle_timeout", p.max_idle_timeout);
            j.o_u64("max_udp_payload_size", p.max_udp_payload_size);
            j.o_u64("ack_delay_exponent", p.ack_delay_exponent);
            j.o_u64("max_ack_delay", p.max_ack_delay);
            j.o_u64("active_connection_id_limit", p.active_connection_id_limit);
            j.o_u64("initial_max_data", p.initial_max_data);
            j.o_u64("initial_max_stream_data_bidi_local", p.initial_max_stream_data_bidi_local);
            j.o_u64("initial_max_stream_data_bidi_remote", p.initial_max_stream_data_bidi_remote);
            j.o_u64("initial_max_stream_data_uni", p.initial_max_stream_data_uni);
            j.o_u64("initial_max_streams_bidi", p.initial_max_streams_bidi);
            j.o_u64("initial_max_streams_uni", p.initial_max_streams_uni);
            if let Some(pa) = p.preferred_address {
                j.begin_object_field("preferred_address");
                j.key("ip_v4");
                j.str_fmt(format_args!("{}", pa.ipv4.ip()));
                j.f_u64("port_v4", u64::from(pa.ipv4.port()));
                j.key("ip_v6");
                j.str_fmt(format_args!("{}", pa.ipv6.ip()));
                j.f_u64("port_v6", u64::from(pa.ipv6.port()));
                j.f_hex("connection_id", pa.connection_id.as_slice());
                j.f_hex("stateless_reset_token", &pa.stateless_reset_token.0);
                j.end_object();
            }
            j.o_u64("max_datagram_frame_size", p.max_datagram_frame_size);
            j.o_bool("grease_quic_bit", p.grease_quic_bit);
        });
    }

    fn packet_event<'f, I>(&mut self, now: Instant, name: &str, p: &PacketEvent<'_>, frames: I, exp: u8)
    where
        I: IntoIterator,
        I::Item: Borrow<Frame<'f>>,
    {
        self.event(now, name, |j| {
            write_header(j, &p.header);
            write_frames(j, "frames", frames, exp);
            write_raw(j, &p.raw);
            j.o_u64("datagram_id", p.datagram_id.map(u64::from));
            if p.is_mtu_probe_packet {
                j.f_bool("is_mtu_probe_packet", true);
            }
            if let Some(t) = p.trigger {
                j.f_str("trigger", t.as_str());
            }
        });
    }

    /// quic:packet_sent (quic-events §5.5). `frames` takes `&[Frame]`
    /// (`.iter()`) as well as any iterator of frames.
    pub fn packet_sent<'f, I>(&mut self, now: Instant, packet: &PacketEvent<'_>, frames: I)
    where
        I: IntoIterator,
        I::Item: Borrow<Frame<'f>>,
    {
        let exp = self.local_ack_delay_exponent;
        self.packet_event(now, "quic:packet_sent", packet, frames, exp);
    }

    /// quic:packet_received (quic-events §5.6). To log a payload as it is
    /// parsed: `FrameIter::new(payload).map_while(Result::ok)`.
    pub fn packet_received<'f, I>(&mut self, now: Instant, packet: &PacketEvent<'_>, frames: I)
    where
        I: IntoIterator,
        I::Item: Borrow<Frame<'f>>,
    {
        let exp = self.peer_ack_delay_exponent;
        self.packet_event(now, "quic:packet_received", packet, frames, exp);
    }

    /// quic:packet_dropped (quic-events §5.7). `details` becomes
    /// `details: {"reason": ...}`.
    pub fn packet_dropped(
        &mut self,
        now: Instant,
        header: Option<&PacketHeader<'_>>,
        raw: RawInfo,
        datagram_id: Option<u32>,
        trigger: Option<PacketDroppedTrigger>,
        details: Option<&str>,
    ) {
        self.event(now, "quic:packet_dropped", |j| {
            if let Some(h) = header {
                write_header(j, h);
            }
            write_raw(j, &raw);
            j.o_u64("datagram_id", datagram_id.map(u64::from));
            if let Some(reason) = details {
                j.begin_object_field("details");
                j.f_str("reason", reason);
                j.end_object();
            }
            if let Some(t) = trigger {
                j.f_str("trigger", t.as_str());
            }
        });
    }

    /// quic:key_updated (quic-events §6.1). Secrets are never logged.
    pub fn key_updated(&mut self, now: Instant, key_type: KeyType, key_phase: Option<u64>, trigger: Option<KeyUpdateTrigger>) {
        self.key_event(now, "quic:key_updated", key_type, key_phase, trigger);
    }

    /// quic:key_discarded (quic-events §6.2).
    pub fn key_discarded(&mut self, now: Instant, key_type: KeyType, key_phase: Option<u64>, trigger: Option<KeyUpdateTrigger>) {
        self.key_event(now, "quic:key_discarded", key_type, key_phase, trigger);
    }

    fn key_event(&mut self, now: Instant, name: &str, key_type: KeyType, key_phase: Option<u64>, trigger: Option<KeyUpdateTrigger>) {
        self.event(now, name, |j| {
            j.f_str("key_type", key_type.as_str());
            j.o_u64("key_phase", key_phase);
            if let Some(t) = trigger {
                j.f_str("trigger", t.as_str());
            }
        });
    }

    /// quic:recovery_parameters_set (quic-events §7.1).
    pub fn recovery_parameters_set(&mut self, now: Instant, p: &RecoveryParameters) {
        self.event(now, "quic:recovery_parameters_set", |j| {
            j.o_u64("reordering_threshold", p.reordering_threshold.map(u64::from));
            if let Some(t) = p.time_threshold {
                j.f_f64("time_threshold", f64::from(t));
            }
            j.f_u64("timer_granularity", p.timer_granularity.as_millis().min(u128::from(u16::MAX)) as u64);
            j.o_ms("initial_rtt", p.initial_rtt);
            j.o_u64("max_datagram_size", p.max_datagram_size.map(u64::from));
            j.o_u64("initial_congestion_window", p.initial_congestion_window);
            j.o_u64("minimum_congestion_window", p.minimum_congestion_window);
            if let Some(f) = p.loss_reduction_factor {
                j.f_f64("loss_reduction_factor", f64::from(f));
            }
            j.o_u64("persistent_congestion_threshold", p.persistent_congestion_threshold.map(u64::from));
        });
    }

    /// quic:recovery_metrics_updated (quic-events §7.2). Pass the current
    /// values of whatever metrics are known: only the ones that changed
    /// since the last call are logged, and nothing at all when none did (the
    /// draft asks to log actual updates only).
    pub fn recovery_metrics_updated(&mut self, now: Instant, m: &RecoveryMetrics) {
        let last = self.last_metrics;
        fn changed<T: PartialEq + Copy>(new: Option<T>, old: &mut Option<T>) -> Option<T> {
            match new {
                Some(v) if *old != Some(v) => {
                    *old = Some(v);
                    Some(v)
                }
                _ => None,
            }
        }
        let mut next = last;
        let delta = RecoveryMetrics {
            min_rtt: changed(m.min_rtt, &mut next.min_rtt),
            smoothed_rtt: changed(m.smoothed_rtt, &mut next.smoothed_rtt),
            latest_rtt: changed(m.latest_rtt, &mut next.latest_rtt),
            rtt_variance: changed(m.rtt_variance, &mut next.rtt_variance),
            pto_count: changed(m.pto_count, &mut next.pto_count),
            congestion_window: changed(m.congestion_window, &mut next.congestion_window),
            bytes_in_flight: changed(m.bytes_in_flight, &mut next.bytes_in_flight),
            ssthresh: changed(m.ssthresh, &mut next.ssthresh),
            packets_in_flight: changed(m.packets_in_flight, &mut next.packets_in_flight),
            pacing_rate: changed(m.pacing_rate, &mut next.pacing_rate),
        };
        if delta == RecoveryMetrics::default() {
            return;
        }
        self.last_metrics = next;
        self.event(now, "quic:recovery_metrics_updated", |j| {
            j.o_ms("min_rtt", delta.min_rtt);
            j.o_ms("smoothed_rtt", delta.smoothed_rtt);
            j.o_ms("latest_rtt", delta.latest_rtt);
            j.o_ms("rtt_variance", delta.rtt_variance);
            j.o_u64("pto_count", delta.pto_count.map(u64::from));
            j.o_u64("congestion_window", delta.congestion_window);
            j.o_u64("bytes_in_flight", delta.bytes_in_flight);
            j.o_u64("ssthresh", delta.ssthresh);
            j.o_u64("packets_in_flight", delta.packets_in_flight);
            j.o_u64("pacing_rate", delta.pacing_rate);
        });
    }

    /// quic:congestion_state_updated (quic-events §7.3); the state names
    /// are the congestion controller's own (e.g. "slow_start").
    pub fn congestion_state_updated(&mut self, now: Instant, old: Option<&str>, new: &str, trigger: Option<&str>) {
        self.event(now, "quic:congestion_state_updated", |j| {
            j.o_str("old", old);
            j.f_str("new", new);
            j.o_str("trigger", trigger);
        });
    }

    /// quic:packet_lost (quic-events §7.4). `frames` may be empty when the
    /// sent-packet record does not keep them (then no `frames` field).
    pub fn packet_lost<'f, I>(&mut self, now: Instant, header: &PacketHeader<'_>, frames: I, trigger: Option<PacketLostTrigger>)
    where
        I: IntoIterator,
        I::Item: Borrow<Frame<'f>>,
    {
        let exp = self.local_ack_delay_exponent;
        self.event(now, "quic:packet_lost", |j| {
            write_header(j, header);
            let mut frames = frames.into_iter().peekable();
            if frames.peek().is_some() {
                write_frames(j, "frames", frames, exp);
            }
            if let Some(t) = trigger {
                j.f_str("trigger", t.as_str());
            }
        });
    }
}

impl Drop for QlogWriter {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::{Arc, Mutex};

    use serde_json::{json, Value};

    use super::*;
    use crate::cid::ResetToken;
    use crate::codec::{Reader, Writer};
    use crate::frame::{AckFrame, EcnCounts, FrameIter};

    /// A `Vec<u8>` sink the test can read while the writer owns a handle.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn bytes(&self) -> Vec<u8> {
            self.0.lock().unwrap().clone()
        }

        /// Splits the JSON-SEQ stream, checking RFC 7464 framing, and parses
        /// every record.
        fn records(&self) -> Vec<Value> {
            let bytes = self.bytes();
            assert_eq!(bytes.first(), Some(&RECORD_SEPARATOR), "stream starts with RS");
            let mut parts = bytes.split(|&b| b == RECORD_SEPARATOR);
            assert_eq!(parts.next(), Some(&[][..]));
            parts
                .map(|rec| {
                    assert_eq!(rec.last(), Some(&b'\n'), "record ends with LF");
                    // One line per record: raw control characters are escaped.
                    assert!(!rec[..rec.len() - 1].contains(&b'\n'));
                    serde_json::from_slice(rec).unwrap()
                })
                .collect()
        }
    }

    fn writer(vp: VantagePointType) -> (QlogWriter, Shared, Instant) {
        let sink = Shared::default();
        let t0 = Instant::now();
        let w = QlogWriter::new(Box::new(sink.clone()), t0, &TraceInfo::new(vp));
        (w, sink, t0)
    }

    const MS: Duration = Duration::from_millis(1);

    /// An ACK frame of `ranges` (highest first), decoded from its encoding
    /// into `buf`.
    fn ack<'b>(buf: &'b mut [u8], ranges: &[core::ops::RangeInclusive<u64>], delay: u64, ecn: Option<EcnCounts>) -> Frame<'b> {
        let mut w = Writer::new(buf);
        AckFrame::encode_from_ranges(&mut w, ranges.iter().cloned(), delay, ecn).unwrap();
        let n = w.len();
        Frame::decode(&mut Reader::new(&buf[..n])).unwrap()
    }

    #[test]
    fn header_record_follows_the_main_schema() {
        let sink = Shared::default();
        let info = TraceInfo {
            vantage_point_name: Some("quicpro server"),
            title: Some("t"),
            group_id: Some("8394c8f03e515708"),
            wall_clock_time: Some("2026-01-02T03:04:05.000Z"),
            extra_event_schemas: &["urn:ietf:params:qlog:events:http3-13"],
            ..TraceInfo::new(VantagePointType::Server)
        };
        let w = QlogWriter::new(Box::new(sink.clone()), Instant::now(), &info);
        assert!(w.is_healthy());
        let bytes = sink.bytes();
        // Main schema §4: file_schema and serialization_format early on.
        let head = String::from_utf8_lossy(&bytes[..256.min(bytes.len())]).into_owned();
        assert!(head.contains(FILE_SCHEMA) && head.contains(SERIALIZATION_FORMAT), "{head}");
        let recs = sink.records();
        assert_eq!(recs.len(), 1);
        assert_eq!(
            recs[0],
            json!({
                "file_schema": "urn:ietf:params:qlog:file:sequential",
                "serialization_format": "application/qlog+json-seq",
                "title": "t",
                "trace": {
                    "common_fields": {
                        "group_id": "8394c8f03e515708",
                        "time_format": "relative_to_epoch",
                        "reference_time": {
                            "clock_type": "monotonic",
                            "epoch": "unknown",
                            "wall_clock_time": "2026-01-02T03:04:05.000Z"
                        }
                    },
                    "vantage_point": {"name": "quicpro server", "type": "server"},
                    "event_schemas": [
                        "urn:ietf:params:qlog:events:quic-13",
                        "urn:ietf:params:qlog:events:http3-13"
                    ]
                }
            })
        );
        assert_eq!(w.events_written(), 0);

        let (_, sink, _) = writer(VantagePointType::Client);
        let rec = &sink.records()[0];
        assert_eq!(rec["trace"]["vantage_point"], json!({"type": "client"}));
        assert!(rec.get("title").is_none());
        assert!(rec["trace"]["common_fields"].get("group_id").is_none());
    }

    #[test]
    fn a_handshake_trace_parses_with_names_times_and_fields() {
        let (mut w, sink, t0) = writer(VantagePointType::Client);
        let dcid = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];
        let scid = [0xaa, 0xbb];

        w.version_information(t0, &[], &[Version::V1, Version::V2], Some(Version::V1));
        w.alpn_information(t0, None, Some(&[b"h3", b"\xff\x00"]), None);
        w.connection_started(
            t0,
            &TupleEndpoint { addr: Some("10.0.0.1:4433".parse().unwrap()), connection_ids: &[ConnectionId::new(&scid).unwrap()] },
            &TupleEndpoint { addr: Some("[2001:db8::1]:443".parse().unwrap()), connection_ids: &[] },
        );
        w.connection_state_updated(t0, None, ConnectionState::Attempted);

        let crypto_data = [0u8; 300];
        let header = PacketHeader { length: Some(1162), token: Some(&[]), ..PacketHeader::long(PacketType::Initial, Version::V1, &dcid, &scid, 0) };
        let mut sent = PacketEvent::new(header);
        sent.raw = RawInfo { length: Some(1200), payload_length: Some(1160) };
        sent.datagram_id = Some(7);
        w.packet_sent(t0 + MS / 2, &sent, &[Frame::Crypto { offset: 0, data: &crypto_data }, Frame::Padding { len: 840 }]);

        let mut ack_buf = [0u8; 64];
        let ack_frame = ack(&mut ack_buf, &[8..=10, 2..=2], 1000, None);
        let cid = ConnectionId::new(&[1, 2, 3, 4]).unwrap();
        let frames = [
            ack_frame,
            Frame::Stream { id: 4, offset: 10, fin: true, data: b"hello" },
            Frame::MaxData { max: 1 << 20 },
            Frame::MaxStreams { dir: StreamDir::Uni, max: 100 },
            Frame::NewConnectionId { sequence: 2, retire_prior_to: 1, cid, reset_token: ResetToken([0x11; 16]) },
            Frame::PathChallenge { data: [1, 2, 3, 4, 5, 6, 7, 8] },
            Frame::ResetStream { id: 8, error_code: 0x10c, final_size: 99 },
            Frame::HandshakeDone,
            Frame::Datagram { data: &[9; 12] },
            Frame::Ping,
        ];
        let mut rx = PacketEvent::new(PacketHeader { key_phase_bit: Some(false), ..PacketHeader::short(&scid, 1_000_000) });
        rx.raw = RawInfo::length(1252);
        w.packet_received(t0 + 21 * MS + Duration::from_micros(18), &rx, frames.iter());

        w.key_updated(t0 + 22 * MS, KeyType::Client1RttSecret, Some(1), Some(KeyUpdateTrigger::LocalUpdate));
        w.recovery_metrics_updated(
            t0 + 22 * MS,
            &RecoveryMetrics { smoothed_rtt: Some(Duration::from_micros(21_018)), congestion_window: Some(12_000), ..Default::default() },
        );
        w.congestion_state_updated(t0 + 23 * MS, Some("slow_start"), "recovery", Some("loss"));
        w.packet_lost(t0 + 24 * MS, &PacketHeader::short(&dcid, 5), core::iter::empty::<Frame<'_>>(), Some(PacketLostTrigger::TimeThreshold));
        w.packet_dropped(
            t0 + 25 * MS,
            Some(&PacketHeader::new(PacketType::Handshake)),
            RawInfo::length(50),
            None,
            Some(PacketDroppedTrigger::KeyUnavailable),
            Some("no handshake keys"),
        );
        w.connection_closed(
            t0 + 30 * MS,
            &ConnectionClosed {
                initiator: Some(Initiator::Local),
                error: Some(CloseError::Transport(TransportErrorCode::PROTOCOL_VIOLATION)),
                reason: Some("bad frame"),
                trigger: Some(CloseTrigger::Error),
                ..Default::default()
            },
        );
        assert_eq!(w.events_written(), 12);
        assert_eq!(w.failed_writes(), 0);

        let recs = sink.records();
        assert_eq!(recs.len(), 13);
        let events = &recs[1..];
        let names: Vec<&str> = events.iter().map(|e| e["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "quic:version_information",
                "quic:alpn_information",
                "quic:connection_started",
                "quic:connection_state_updated",
                "quic:packet_sent",
                "quic:packet_received",
                "quic:key_updated",
                "quic:recovery_metrics_updated",
                "quic:congestion_state_updated",
                "quic:packet_lost",
                "quic:packet_dropped",
                "quic:connection_closed",
            ]
        );
        let times: Vec<f64> = events.iter().map(|e| e["time"].as_f64().unwrap()).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
        assert_eq!(times[0], 0.0);
        assert_eq!(times[4], 0.5);
        assert_eq!(times[5], 21.018);
        assert_eq!(times[11], 30.0);
        for e in events {
            assert_eq!(e.as_object().unwrap().len(), 3, "time, name, data only: {e}");
            assert!(e["data"].is_object());
        }

        assert_eq!(events[0]["data"], json!({"client_versions": ["00000001", "6b3343cf"], "chosen_version": "00000001"}));
        assert_eq!(events[1]["data"], json!({"client_alpns": [{"byte_value": "6833", "string_value": "h3"}, {"byte_value": "ff00"}]}));
        assert_eq!(
            events[2]["data"],
            json!({
                "local": {"ip_v4": "10.0.0.1", "port_v4": 4433, "connection_ids": ["aabb"]},
                "remote": {"ip_v6": "2001:db8::1", "port_v6": 443}
            })
        );
        assert_eq!(events[3]["data"], json!({"new": "attempted"}));

        // packet_sent: header fields, frames, raw, datagram_id.
        let d = &events[4]["data"];
        assert_eq!(
            d["header"],
            json!({
                "packet_type": "initial",
                "packet_number": 0,
                "token": {"raw": {"length": 0, "data": ""}},
                "length": 1162,
                "version": "00000001",
                "scil": 2,
                "scid": "aabb",
                "dcil": 8,
                "dcid": "8394c8f03e515708"
            })
        );
        assert_eq!(
            d["frames"],
            json!([
                {"frame_type": "crypto", "offset": 0, "raw": {"length": 300}},
                {"frame_type": "padding", "raw": {"length": 840, "payload_length": 840}}
            ])
        );
        assert_eq!(d["raw"], json!({"length": 1200, "payload_length": 1160}));
        assert_eq!(d["datagram_id"], 7);

        // packet_received: every frame kind in qlog form.
        let d = &events[5]["data"];
        assert_eq!(d["header"], json!({"packet_type": "1RTT", "key_phase_bit": false, "packet_number": 1_000_000, "dcil": 2, "dcid": "aabb"}));
        assert_eq!(d["raw"], json!({"length": 1252}));
        let f = d["frames"].as_array().unwrap();
        assert_eq!(f.len(), frames.len());
        // ACK Delay 1000 with the default exponent 3: 8000 µs.
        assert_eq!(f[0], json!({"frame_type": "ack", "ack_delay": 8.0, "acked_ranges": [[8, 10], [2]]}));
        assert_eq!(f[1], json!({"frame_type": "stream", "stream_id": 4, "offset": 10, "fin": true, "raw": {"length": 5}}));
        assert_eq!(f[2], json!({"frame_type": "max_data", "maximum": 1048576}));
        assert_eq!(f[3], json!({"frame_type": "max_streams", "stream_type": "unidirectional", "maximum": 100}));
        assert_eq!(
            f[4],
            json!({
                "frame_type": "new_connection_id",
                "sequence_number": 2,
                "retire_prior_to": 1,
                "connection_id_length": 4,
                "connection_id": "01020304",
                "stateless_reset_token": "11111111111111111111111111111111"
            })
        );
        assert_eq!(f[5], json!({"frame_type": "path_challenge", "data": "0102030405060708"}));
        assert_eq!(f[6], json!({"frame_type": "reset_stream", "stream_id": 8, "error": "unknown", "error_code": 0x10c, "final_size": 99}));
        assert_eq!(f[7], json!({"frame_type": "handshake_done"}));
        assert_eq!(f[8], json!({"frame_type": "datagram", "raw": {"length": 12}}));
        assert_eq!(f[9], json!({"frame_type": "ping"}));

        assert_eq!(events[6]["data"], json!({"key_type": "client_1rtt_secret", "key_phase": 1, "trigger": "local_update"}));
        assert_eq!(events[7]["data"], json!({"smoothed_rtt": 21.018, "congestion_window": 12000}));
        assert_eq!(events[8]["data"], json!({"old": "slow_start", "new": "recovery", "trigger": "loss"}));
        assert_eq!(
            events[9]["data"],
            json!({"header": {"packet_type": "1RTT", "packet_number": 5, "dcil": 8, "dcid": "8394c8f03e515708"}, "trigger": "time_threshold"})
        );
        assert_eq!(
            events[10]["data"],
            json!({
                "header": {"packet_type": "handshake"},
                "raw": {"length": 50},
                "details": {"reason": "no handshake keys"},
                "trigger": "key_unavailable"
            })
        );
        assert_eq!(events[11]["data"], json!({"initiator": "local", "connection_error": "protocol_violation", "reason": "bad frame", "trigger": "error"}));
    }

    #[test]
    fn frames_from_a_parsed_payload_can_be_logged_directly() {
        let (mut w, sink, t0) = writer(VantagePointType::Server);
        // PING, PADDING x3, MAX_STREAM_DATA(id 4, max 1000), STREAMS_BLOCKED bidi 7,
        // RETIRE_CONNECTION_ID 3, DATA_BLOCKED 5, STREAM_DATA_BLOCKED(0, 6).
        let payload = [0x01, 0x00, 0x00, 0x00, 0x11, 0x04, 0x43, 0xe8, 0x16, 0x07, 0x19, 0x03, 0x14, 0x05, 0x15, 0x00, 0x06];
        let frames = FrameIter::new(&payload).map_while(Result::ok);
        w.packet_received(t0, &PacketEvent::new(PacketHeader::short(&[], 3)), frames);
        let recs = sink.records();
        assert_eq!(
            recs[1]["data"]["frames"],
            json!([
                {"frame_type": "ping"},
                {"frame_type": "padding", "raw": {"length": 3, "payload_length": 3}},
                {"frame_type": "max_stream_data", "stream_id": 4, "maximum": 1000},
                {"frame_type": "streams_blocked", "stream_type": "bidirectional", "limit": 7},
                {"frame_type": "retire_connection_id", "sequence_number": 3},
                {"frame_type": "data_blocked", "limit": 5},
                {"frame_type": "stream_data_blocked", "stream_id": 0, "limit": 6}
            ])
        );
        // An empty DCID is logged as an empty hexstring.
        assert_eq!(recs[1]["data"]["header"]["dcid"], "");
    }

    #[test]
    fn escaping_handles_quotes_backslashes_and_control_characters() {
        let (mut w, sink, t0) = writer(VantagePointType::Client);
        let nasty = "he said \"no\"\\ \n\r\t\u{8}\u{c}\u{0}\u{1e}\u{1f} é ✓ \u{7f}";
        w.packet_sent(
            t0,
            &PacketEvent::new(PacketHeader::short(&[1], 0)),
            &[Frame::ConnectionClose { error_code: TransportErrorCode::INTERNAL_ERROR, frame_type: 0x08, reason: nasty.as_bytes() }],
        );
        w.connection_closed(t0, &ConnectionClosed { reason: Some(nasty), ..Default::default() });
        w.custom_event(t0, "quicpro:note", |d| {
            d.str("text\"key", nasty);
        });
        let text = String::from_utf8(sink.bytes()).unwrap();
        assert!(text.contains(r#"he said \"no\"\\ \n\r\t\b\f\u0000\u001e\u001f é ✓"#), "{text}");
        // The only RS bytes are the record separators (header + 3 events).
        assert_eq!(sink.bytes().iter().filter(|&&b| b == RECORD_SEPARATOR).count(), 4);
        let recs = sink.records();
        let close = &recs[1]["data"]["frames"][0];
        assert_eq!(close["reason"], nasty);
        assert_eq!(close["error"], "internal_error");
        assert_eq!(close["error_space"], "transport");
        assert_eq!(close["trigger_frame_type"], 8);
        assert_eq!(recs[2]["data"]["reason"], nasty);
        assert_eq!(recs[3]["data"]["text\"key"], nasty);
    }

    #[test]
    fn error_codes_map_to_qlog_strings() {
        let (mut w, sink, t0) = writer(VantagePointType::Client);
        let frames = [
            Frame::ConnectionClose { error_code: TransportErrorCode::crypto(0x28), frame_type: 6, reason: b"" },
            Frame::ConnectionClose { error_code: TransportErrorCode(0x1234), frame_type: 0, reason: b"\xff\xfe" },
            Frame::ConnectionClose { error_code: TransportErrorCode::NO_VIABLE_PATH, frame_type: 0, reason: b"x" },
            Frame::ApplicationClose { error_code: 0x100, reason: b"H3_NO_ERROR" },
        ];
        w.packet_sent(t0, &PacketEvent::new(PacketHeader::short(&[], 1)), &frames);
        w.connection_closed(t0, &ConnectionClosed { error: Some(CloseError::Transport(TransportErrorCode::crypto(0x2a))), ..Default::default() });
        w.connection_closed(t0, &ConnectionClosed { error: Some(CloseError::Transport(TransportErrorCode(0x99))), ..Default::default() });
        w.connection_closed(
            t0,
            &ConnectionClosed {
                initiator: Some(Initiator::Remote),
                error: Some(CloseError::Application(0x10c)),
                trigger: Some(CloseTrigger::Application),
                ..Default::default()
            },
        );
        w.connection_closed(t0, &ConnectionClosed { trigger: Some(CloseTrigger::IdleTimeout), ..Default::default() });
        let recs = sink.records();
        let f = &recs[1]["data"]["frames"];
        assert_eq!(
            f[0],
            json!({"frame_type": "connection_close", "error_space": "transport", "error": "crypto_error_0x128", "reason": "", "trigger_frame_type": 6})
        );
        assert_eq!(
            f[1],
            json!({"frame_type": "connection_close", "error_space": "transport", "error": "unknown", "error_code": 0x1234, "reason_bytes": "fffe", "trigger_frame_type": 0})
        );
        assert_eq!(f[2]["error"], "no_viable_path");
        assert_eq!(
            f[3],
            json!({"frame_type": "connection_close", "error_space": "application", "error": "unknown", "error_code": 256, "reason": "H3_NO_ERROR"})
        );
        assert_eq!(recs[2]["data"], json!({"connection_error": "crypto_error_0x12a"}));
        assert_eq!(recs[3]["data"], json!({"connection_error": "unknown", "error_code": 0x99}));
        assert_eq!(recs[4]["data"], json!({"initiator": "remote", "application_error": "unknown", "error_code": 0x10c, "trigger": "application"}));
        assert_eq!(recs[5]["data"], json!({"trigger": "idle_timeout"}));
    }

    #[test]
    fn ack_delay_uses_the_senders_exponent() {
        let (mut w, sink, t0) = writer(VantagePointType::Client);
        let mut tp = TransportParameters { ack_delay_exponent: 10, ..Default::default() };
        w.parameters_set(t0, &ParametersSet::from_transport_parameters(Initiator::Remote, &tp));
        tp.ack_delay_exponent = 0;
        w.parameters_set(t0, &ParametersSet::from_transport_parameters(Initiator::Local, &tp));
        assert_eq!(w.ack_delay_exponents(), (0, 10));

        let mut buf = [0u8; 64];
        let ecn = EcnCounts { ect0: 5, ect1: 1, ce: 2 };
        let a = ack(&mut buf, &[3..=3], 500, Some(ecn));
        let header = PacketHeader::short(&[], 9);
        w.packet_received(t0, &PacketEvent::new(header), [a]);
        w.packet_sent(t0, &PacketEvent::new(header), [a]);
        w.custom_event(t0, "quic:frames_processed", |d| {
            d.set_ack_delay_exponent(1).frames("frames", [a]).u64_array("packet_numbers", &[9]);
        });
        let recs = sink.records();
        assert_eq!(recs[1]["data"]["ack_delay_exponent"], 10);
        assert_eq!(recs[1]["data"]["initiator"], "remote");
        // 500 * 2^10 µs = 512 ms received; 500 µs sent; 1 ms with exponent 1.
        assert_eq!(recs[3]["data"]["frames"][0], json!({"frame_type": "ack", "ack_delay": 512.0, "acked_ranges": [[3]], "ect1": 1, "ect0": 5, "ce": 2}));
        assert_eq!(recs[4]["data"]["frames"][0]["ack_delay"], 0.5);
        assert_eq!(
            recs[5]["data"],
            json!({"frames": [{"frame_type": "ack", "ack_delay": 1.0, "acked_ranges": [[3]], "ect1": 1, "ect0": 5, "ce": 2}], "packet_numbers": [9]})
        );
    }

    #[test]
    fn parameters_set_writes_transport_parameters() {
        let (mut w, sink, t0) = writer(VantagePointType::Server);
        let tp = TransportParameters {
            original_destination_connection_id: Some(ConnectionId::new(&[0xde, 0xad]).unwrap()),
            initial_source_connection_id: Some(ConnectionId::new(&[0x01]).unwrap()),
            stateless_reset_token: Some(ResetToken([0xab; 16])),
            max_idle_timeout: 30_000,
            initial_max_data: 1 << 20,
            initial_max_streams_bidi: 100,
            max_datagram_frame_size: Some(1200),
            preferred_address: Some(PreferredAddress {
                ipv4: "192.0.2.1:443".parse().unwrap(),
                ipv6: "[2001:db8::2]:443".parse().unwrap(),
                connection_id: ConnectionId::new(&[7; 8]).unwrap(),
                stateless_reset_token: ResetToken([0xcd; 16]),
            }),
            ..Default::default()
        };
        let mut p = ParametersSet::from_transport_parameters(Initiator::Local, &tp);
        p.tls_cipher = Some("AES_128_GCM_SHA256");
        w.parameters_set(t0, &p);
        let d = &sink.records()[1]["data"];
        assert_eq!(d["initiator"], "local");
        assert_eq!(d["tls_cipher"], "AES_128_GCM_SHA256");
        assert_eq!(d["original_destination_connection_id"], "dead");
        assert_eq!(d["initial_source_connection_id"], "01");
        assert!(d.get("retry_source_connection_id").is_none());
        assert_eq!(d["stateless_reset_token"], "ab".repeat(16));
        assert_eq!(d["max_idle_timeout"], 30_000);
        assert_eq!(d["max_udp_payload_size"], tp.max_udp_payload_size);
        assert_eq!(d["ack_delay_exponent"], 3);
        assert_eq!(d["max_ack_delay"], 25);
        assert_eq!(d["initial_max_data"], 1 << 20);
        assert_eq!(d["initial_max_streams_bidi"], 100);
        assert_eq!(d["disable_active_migration"], false);
        assert_eq!(d["max_datagram_frame_size"], 1200);
        assert_eq!(d["grease_quic_bit"], false);
        assert_eq!(
            d["preferred_address"],
            json!({
                "ip_v4": "192.0.2.1", "port_v4": 443, "ip_v6": "2001:db8::2", "port_v6": 443,
                "connection_id": "0707070707070707", "stateless_reset_token": "cd".repeat(16)
            })
        );
    }

    #[test]
    fn recovery_metrics_log_only_changes() {
        let (mut w, sink, t0) = writer(VantagePointType::Client);
        let mut m = RecoveryMetrics {
            min_rtt: Some(10 * MS),
            smoothed_rtt: Some(12 * MS),
            latest_rtt: Some(Duration::from_micros(11_500)),
            rtt_variance: Some(3 * MS),
            pto_count: Some(0),
            congestion_window: Some(14_720),
            bytes_in_flight: Some(0),
            ssthresh: Some(u64::MAX),
            packets_in_flight: Some(0),
            pacing_rate: Some(10_000_000),
        };
        w.recovery_metrics_updated(t0, &m);
        w.recovery_metrics_updated(t0 + MS, &m);
        m.congestion_window = Some(20_000);
        m.bytes_in_flight = Some(1200);
        w.recovery_metrics_updated(t0 + 2 * MS, &m);
        // Unknown (None) metrics are not changes.
        w.recovery_metrics_updated(t0 + 3 * MS, &RecoveryMetrics { congestion_window: Some(20_000), ..Default::default() });
        assert_eq!(w.events_written(), 2);
        let recs = sink.records();
        assert_eq!(
            recs[1]["data"],
            json!({
                "min_rtt": 10.0, "smoothed_rtt": 12.0, "latest_rtt": 11.5, "rtt_variance": 3.0,
                "pto_count": 0, "congestion_window": 14720, "bytes_in_flight": 0,
                "ssthresh": u64::MAX, "packets_in_flight": 0, "pacing_rate": 10_000_000
            })
        );
        assert_eq!(recs[2]["time"], 2.0);
        assert_eq!(recs[2]["data"], json!({"congestion_window": 20000, "bytes_in_flight": 1200}));

        w.recovery_parameters_set(
            t0 + 3 * MS,
            &RecoveryParameters {
                reordering_threshold: Some(3),
                time_threshold: Some(1.125),
                timer_granularity: MS,
                initial_rtt: Some(333 * MS),
                max_datagram_size: Some(1200),
                ..Default::default()
            },
        );
        assert_eq!(
            sink.records()[3]["data"],
            json!({"reordering_threshold": 3, "time_threshold": 1.125, "timer_granularity": 1, "initial_rtt": 333.0, "max_datagram_size": 1200})
        );
    }

    #[test]
    fn times_are_relative_to_the_reference_instant() {
        let (mut w, sink, t0) = writer(VantagePointType::Client);
        w.connection_state_updated(t0 + Duration::from_nanos(1_500), None, ConnectionState::Attempted);
        w.connection_state_updated(t0 + Duration::from_secs(3600), Some(ConnectionState::HandshakeConfirmed), ConnectionState::Closing);
        // An instant before the reference cannot go negative.
        w.connection_id_updated(t0.checked_sub(MS).unwrap_or(t0), Initiator::Remote, Some(&[1]), Some(&[2, 3]));
        assert_eq!(w.reference_time(), t0);
        let recs = sink.records();
        assert_eq!(recs[1]["time"], 0.0015);
        assert_eq!(recs[2]["time"], 3_600_000.0);
        assert_eq!(recs[2]["data"], json!({"old": "handshake_confirmed", "new": "closing"}));
        assert_eq!(recs[3]["time"], 0.0);
        assert_eq!(recs[3]["data"], json!({"initiator": "remote", "old": "01", "new": "0203"}));
    }

    /// Accepts `ok` writes, then fails every write and flush.
    struct Failing {
        ok: usize,
        writes: Arc<Mutex<usize>>,
    }

    impl io::Write for Failing {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut n = self.writes.lock().unwrap();
            *n += 1;
            if *n > self.ok {
                return Err(io::Error::other("disk full"));
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::Error::other("flush failed"))
        }
    }

    #[test]
    fn sink_errors_are_swallowed_and_counted() {
        let writes = Arc::new(Mutex::new(0));
        let t0 = Instant::now();
        let sink = Failing { ok: 3, writes: writes.clone() };
        let mut w = QlogWriter::new(Box::new(sink), t0, &TraceInfo::new(VantagePointType::Client));
        for i in 0..10u32 {
            w.connection_state_updated(t0 + i * MS, None, ConnectionState::Attempted);
        }
        // Header + 2 events made it; the 3rd event failed; 7 more skipped.
        assert_eq!(w.events_written(), 2);
        assert_eq!(w.failed_writes(), 8);
        assert!(!w.is_healthy());
        assert_eq!(w.first_error().unwrap().to_string(), "disk full");
        // After the failure the sink is not touched again.
        assert_eq!(*writes.lock().unwrap(), 4);
        w.flush();
        assert_eq!(w.first_error().unwrap().to_string(), "disk full");
        drop(w);

        // A sink failing from the start: the header is the first failure.
        let writes = Arc::new(Mutex::new(0));
        let mut w = QlogWriter::new(Box::new(Failing { ok: 0, writes: writes.clone() }), t0, &TraceInfo::new(VantagePointType::Server));
        w.packet_sent(t0, &PacketEvent::new(PacketHeader::short(&[], 0)), &[Frame::Ping]);
        w.recovery_metrics_updated(t0, &RecoveryMetrics { pto_count: Some(1), ..Default::default() });
        assert_eq!((w.events_written(), w.failed_writes()), (0, 3));
        assert_eq!(*writes.lock().unwrap(), 1);

        // A healthy sink whose flush fails stops logging too, without panic.
        let writes = Arc::new(Mutex::new(0));
        let mut w = QlogWriter::new(Box::new(Failing { ok: 100, writes }), t0, &TraceInfo::new(VantagePointType::Server));
        w.flush();
        w.connection_state_updated(t0, None, ConnectionState::Closed);
        assert_eq!((w.events_written(), w.failed_writes()), (0, 1));
        assert_eq!(w.first_error().unwrap().to_string(), "flush failed");
    }

    #[test]
    fn json_numbers_stay_valid() {
        let mut j = Json::default();
        j.begin_array();
        j.f64(f64::NAN);
        j.f64(f64::INFINITY);
        j.f64(1e300);
        j.f64(1e-9);
        j.u64(u64::MAX);
        j.f64(-0.25);
        j.f64(8.0);
        j.end_array();
        assert!(j.s.ends_with(",-0.25,8.0]"), "{}", j.s);
        let v: Value = serde_json::from_str(&j.s).unwrap();
        assert_eq!(v[0], Value::Null);
        assert_eq!(v[1], Value::Null);
        assert_eq!(v[2].as_f64(), Some(1e300));
        assert_eq!(v[3].as_f64(), Some(1e-9));
        assert_eq!(v[4].as_u64(), Some(u64::MAX));
        assert_eq!(v[5].as_f64(), Some(-0.25));
    }

    #[test]
    fn packet_types_map_from_the_wire() {
        assert_eq!(PacketType::from(WirePacketType::Long(LongType::Initial)).as_str(), "initial");
        assert_eq!(PacketType::from(WirePacketType::Long(LongType::ZeroRtt)).as_str(), "0RTT");
        assert_eq!(PacketType::from(WirePacketType::Long(LongType::Handshake)).as_str(), "handshake");
        assert_eq!(PacketType::from(WirePacketType::Long(LongType::Retry)).as_str(), "retry");
        assert_eq!(PacketType::from(WirePacketType::Short).as_str(), "1RTT");
        assert_eq!(PacketType::from(WirePacketType::VersionNegotiation).as_str(), "version_negotiation");
        assert_eq!(PacketType::StatelessReset.as_str(), "stateless_reset");
    }
}
