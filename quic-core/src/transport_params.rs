//! Transport parameters (RFC 9000 §18).
//!
//! The parameters travel inside the TLS `quic_transport_parameters`
//! extension (RFC 9001 §8.2) as a sequence of (id, length, value) tuples
//! (RFC 9000 §18). This module decodes and validates that sequence into a
//! typed [`TransportParameters`] and encodes one back, besides the RFC 9000
//! parameters it knows:
//! - `version_information` (RFC 9368 §3),
//! - `max_datagram_frame_size` (RFC 9221 §3),
//! - `grease_quic_bit` (RFC 9287 §3),
//!
//! and it can emit one reserved "grease" parameter (RFC 9000 §18.1).
//!
//! Decoding never allocates: everything the struct holds is inline (connection
//! IDs are at most 20 bytes, the version list is capped at
//! [`MAX_AVAILABLE_VERSIONS`]). Every malformed or invalid input is an
//! [`Error`] with code TRANSPORT_PARAMETER_ERROR (RFC 9000 §7.4).

use core::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::time::Duration;

use crate::cid::{ConnectionId, ResetToken, MAX_CID_SIZE};
use crate::codec::{Reader, Writer};
use crate::error::{BufferTooShort, Error};
use crate::varint::{self, VarInt};
use crate::version::Version;

/// Which endpoint sent (or is about to send) a set of transport parameters.
///
/// Some parameters may only be sent by a server (RFC 9000 §18.2), so both
/// decoding and encoding need to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Client,
    Server,
}

impl Role {
    /// The other endpoint.
    pub fn peer(self) -> Role {
        match self {
            Role::Client => Role::Server,
            Role::Server => Role::Client,
        }
    }
}

/// Transport parameter identifiers (RFC 9000 §18.2 and §22.3, plus the
/// extensions named in the module documentation).
pub mod id {
    pub const ORIGINAL_DESTINATION_CONNECTION_ID: u64 = 0x00;
    pub const MAX_IDLE_TIMEOUT: u64 = 0x01;
    pub const STATELESS_RESET_TOKEN: u64 = 0x02;
    pub const MAX_UDP_PAYLOAD_SIZE: u64 = 0x03;
    pub const INITIAL_MAX_DATA: u64 = 0x04;
    pub const INITIAL_MAX_STREAM_DATA_BIDI_LOCAL: u64 = 0x05;
    pub const INITIAL_MAX_STREAM_DATA_BIDI_REMOTE: u64 = 0x06;
    pub const INITIAL_MAX_STREAM_DATA_UNI: u64 = 0x07;
    pub const INITIAL_MAX_STREAMS_BIDI: u64 = 0x08;
    pub const INITIAL_MAX_STREAMS_UNI: u64 = 0x09;
    pub const ACK_DELAY_EXPONENT: u64 = 0x0a;
    pub const MAX_ACK_DELAY: u64 = 0x0b;
    pub const DISABLE_ACTIVE_MIGRATION: u64 = 0x0c;
    pub const PREFERRED_ADDRESS: u64 = 0x0d;
    pub const ACTIVE_CONNECTION_ID_LIMIT: u64 = 0x0e;
    pub const INITIAL_SOURCE_CONNECTION_ID: u64 = 0x0f;
    pub const RETRY_SOURCE_CONNECTION_ID: u64 = 0x10;
    /// RFC 9368 §3.
    pub const VERSION_INFORMATION: u64 = 0x11;
    /// RFC 9221 §3.
    pub const MAX_DATAGRAM_FRAME_SIZE: u64 = 0x20;
    /// RFC 9287 §3.
    pub const GREASE_QUIC_BIT: u64 = 0x2ab2;

    /// RFC 9000 §18.1: identifiers of the form `31 * N + 27` are reserved to
    /// exercise the rule that unknown parameters are ignored.
    pub const fn is_reserved(id: u64) -> bool {
        id % 31 == 27
    }
}

/// RFC 9000 §18.2: the default max_udp_payload_size, the largest UDP payload.
pub const DEFAULT_MAX_UDP_PAYLOAD_SIZE: u64 = 65527;
/// RFC 9000 §18.2: values of max_udp_payload_size below 1200 are invalid.
pub const MIN_MAX_UDP_PAYLOAD_SIZE: u64 = 1200;
/// RFC 9000 §18.2: ack_delay_exponent defaults to 3.
pub const DEFAULT_ACK_DELAY_EXPONENT: u64 = 3;
/// RFC 9000 §18.2: values of ack_delay_exponent above 20 are invalid.
pub const MAX_ACK_DELAY_EXPONENT: u64 = 20;
/// RFC 9000 §18.2: max_ack_delay defaults to 25 ms.
pub const DEFAULT_MAX_ACK_DELAY: u64 = 25;
/// RFC 9000 §18.2: values of max_ack_delay of 2^14 ms or more are invalid.
pub const MAX_ACK_DELAY_LIMIT: u64 = 1 << 14;
/// RFC 9000 §18.2: active_connection_id_limit defaults to 2, and must be at
/// least 2.
pub const DEFAULT_ACTIVE_CONNECTION_ID_LIMIT: u64 = 2;
/// RFC 9000 §4.6: a stream count above 2^60 could not be turned into a
/// stream ID that fits in a varint.
pub const MAX_STREAMS_LIMIT: u64 = 1 << 60;
/// How many Available Versions of a version_information parameter are kept.
/// A peer may send more; they are still checked but not stored, so decoding
/// stays allocation-free.
pub const MAX_AVAILABLE_VERSIONS: usize = 16;

/// RFC 9000 §18.2: the value of a preferred_address parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PreferredAddress {
    /// 0.0.0.0:0 when the server offers no IPv4 address.
    pub ipv4: SocketAddrV4,
    /// \[::\]:0 when the server offers no IPv6 address. Flow info and scope
    /// id are not carried on the wire and decode as 0.
    pub ipv6: SocketAddrV6,
    /// The connection ID with sequence number 1 (RFC 9000 §5.1.1); never empty.
    pub connection_id: ConnectionId,
    pub stateless_reset_token: ResetToken,
}

impl PreferredAddress {
    /// Address, port, address, port, CID length, reset token (RFC 9000
    /// §18.2, "Preferred Address Format"), without the CID itself.
    const FIXED_LEN: usize = 4 + 2 + 16 + 2 + 1 + ResetToken::LEN;

    /// The IPv4 address, unless the server sent the all-zero address and port
    /// that RFC 9000 §18.2 uses to mean "no address of this family".
    pub fn ipv4_addr(&self) -> Option<SocketAddrV4> {
        (!(self.ipv4.ip().is_unspecified() && self.ipv4.port() == 0)).then_some(self.ipv4)
    }

    /// The IPv6 address, unless the server sent \[::\]:0 (RFC 9000 §18.2).
    pub fn ipv6_addr(&self) -> Option<SocketAddrV6> {
        (!(self.ipv6.ip().is_unspecified() && self.ipv6.port() == 0)).then_some(self.ipv6)
    }

    fn encoded_len(&self) -> usize {
        Self::FIXED_LEN + self.connection_id.len()
    }

    fn decode(value: &[u8]) -> Result<Self, Error> {
        let truncated = || Error::transport_parameter("truncated preferred_address");
        let mut r = Reader::new(value);
        let ipv4 = Ipv4Addr::from(r.array::<4>().map_err(|_| truncated())?);
        let ipv4_port = r.u16().map_err(|_| truncated())?;
        let ipv6 = Ipv6Addr::from(r.array::<16>().map_err(|_| truncated())?);
        let ipv6_port = r.u16().map_err(|_| truncated())?;
        let cid_len = r.u8().map_err(|_| truncated())? as usize;
        // RFC 9000 §18.2: the CID field is that of NEW_CONNECTION_ID (1 to 20
        // bytes), and a server MUST NOT send a zero-length one here.
        if cid_len == 0 {
            return Err(Error::transport_parameter("zero-length CID in preferred_address"));
        }
        if cid_len > MAX_CID_SIZE {
            return Err(Error::transport_parameter("CID longer than 20 bytes in preferred_address"));
        }
        let cid = r.bytes(cid_len).map_err(|_| truncated())?;
        let connection_id = ConnectionId::new(cid).map_err(|_| Error::transport_parameter("CID longer than 20 bytes in preferred_address"))?;
        let token = r.array::<{ ResetToken::LEN }>().map_err(|_| truncated())?;
        if !r.is_empty() {
            return Err(Error::transport_parameter("trailing bytes in preferred_address"));
        }
        Ok(Self {
            ipv4: SocketAddrV4::new(ipv4, ipv4_port),
            ipv6: SocketAddrV6::new(ipv6, ipv6_port, 0, 0),
            connection_id,
            stateless_reset_token: ResetToken(token),
        })
    }

    fn encode<S: Sink>(&self, s: &mut S) -> Result<(), BufferTooShort> {
        s.put(&self.ipv4.ip().octets())?;
        s.put(&self.ipv4.port().to_be_bytes())?;
        s.put(&self.ipv6.ip().octets())?;
        s.put(&self.ipv6.port().to_be_bytes())?;
        // `ConnectionId` holds at most 20 bytes, so the length fits in a u8.
        s.put(&[self.connection_id.len() as u8])?;
        s.put(self.connection_id.as_slice())?;
        s.put(&self.stateless_reset_token.0)
    }
}

/// RFC 9368 §3: the value of a version_information parameter. The version
/// the packets of this connection use, then the versions the sender would
/// accept, at most [`MAX_AVAILABLE_VERSIONS`] of which are kept.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct VersionInformation {
    pub chosen_version: Version,
    // Entries past `available_len` stay `Version(0)` so the derived equality
    // and hash only depend on the used prefix.
    available: [Version; MAX_AVAILABLE_VERSIONS],
    available_len: u8,
}

impl VersionInformation {
    /// Keeps the first [`MAX_AVAILABLE_VERSIONS`] of `available`.
    pub fn new(chosen_version: Version, available: &[Version]) -> Self {
        let mut info = Self { chosen_version, available: [Version(0); MAX_AVAILABLE_VERSIONS], available_len: 0 };
        for v in available.iter().take(MAX_AVAILABLE_VERSIONS) {
            info.push(*v);
        }
        info
    }

    /// The Available Versions, in the sender's order.
    pub fn available_versions(&self) -> &[Version] {
        self.available.get(..self.available_len as usize).unwrap_or(&[])
    }

    /// Appends when there is room; returns whether it was kept.
    fn push(&mut self, v: Version) -> bool {
        match self.available.get_mut(self.available_len as usize) {
            Some(slot) => {
                *slot = v;
                self.available_len += 1;
                true
            }
            None => false,
        }
    }

    fn encoded_len(&self) -> usize {
        4 * (1 + self.available_versions().len())
    }

    fn decode(value: &[u8]) -> Result<Self, Error> {
        // RFC 9368 §3: a Chosen Version followed by zero or more Available
        // Versions, 32 bits each; anything else fails to parse, which
        // RFC 9368 §4 makes a TRANSPORT_PARAMETER_ERROR.
        if value.is_empty() || !value.len().is_multiple_of(4) {
            return Err(Error::transport_parameter("version_information length not a positive multiple of 4"));
        }
        let mut r = Reader::new(value);
        let bad = |_| Error::transport_parameter("truncated version_information");
        let chosen = Version(r.u32().map_err(bad)?);
        // RFC 9368 §3: version 0 is reserved for Version Negotiation and is a
        // parsing failure in either field.
        if chosen.0 == 0 {
            return Err(Error::transport_parameter("version_information chosen version is 0"));
        }
        let mut info = Self::new(chosen, &[]);
        while !r.is_empty() {
            let v = Version(r.u32().map_err(bad)?);
            if v.0 == 0 {
                return Err(Error::transport_parameter("version_information available version is 0"));
            }
            // Beyond the inline capacity the rest is still validated above,
            // just not stored.
            info.push(v);
        }
        Ok(info)
    }

    fn encode<S: Sink>(&self, s: &mut S) -> Result<(), BufferTooShort> {
        s.put(&self.chosen_version.0.to_be_bytes())?;
        for v in self.available_versions() {
            s.put(&v.0.to_be_bytes())?;
        }
        Ok(())
    }
}

impl fmt::Debug for VersionInformation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VersionInformation").field("chosen_version", &self.chosen_version).field("available_versions", &self.available_versions()).finish()
    }
}

/// The transport parameters one endpoint declares (RFC 9000 §7.4, §18.2).
///
/// Every integer holds the value as it is on the wire (times in
/// milliseconds). [`Default`] gives the values an absent parameter takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportParameters {
    /// 0x00, server only: DCID of the client's first Initial (RFC 9000 §7.3).
    pub original_destination_connection_id: Option<ConnectionId>,
    /// 0x01, milliseconds; 0 means no idle timeout from this endpoint.
    pub max_idle_timeout: u64,
    /// 0x02, server only.
    pub stateless_reset_token: Option<ResetToken>,
    /// 0x03, default 65527, at least 1200.
    pub max_udp_payload_size: u64,
    /// 0x04.
    pub initial_max_data: u64,
    /// 0x05.
    pub initial_max_stream_data_bidi_local: u64,
    /// 0x06.
    pub initial_max_stream_data_bidi_remote: u64,
    /// 0x07.
    pub initial_max_stream_data_uni: u64,
    /// 0x08, at most 2^60.
    pub initial_max_streams_bidi: u64,
    /// 0x09, at most 2^60.
    pub initial_max_streams_uni: u64,
    /// 0x0a, default 3, at most 20.
    pub ack_delay_exponent: u64,
    /// 0x0b, milliseconds, default 25, below 2^14.
    pub max_ack_delay: u64,
    /// 0x0c, a zero-length value when present.
    pub disable_active_migration: bool,
    /// 0x0d, server only.
    pub preferred_address: Option<PreferredAddress>,
    /// 0x0e, default 2, at least 2.
    pub active_connection_id_limit: u64,
    /// 0x0f: SCID of the sender's first Initial (RFC 9000 §7.3).
    pub initial_source_connection_id: Option<ConnectionId>,
    /// 0x10, server only: SCID of the server's Retry (RFC 9000 §7.3).
    pub retry_source_connection_id: Option<ConnectionId>,
    /// 0x11 (RFC 9368).
    pub version_information: Option<VersionInformation>,
    /// 0x20 (RFC 9221): `None` when absent, which means the same as 0 (no
    /// DATAGRAM support) but is kept apart so a round trip is exact.
    pub max_datagram_frame_size: Option<u64>,
    /// 0x2ab2 (RFC 9287): the sender accepts packets with the QUIC Bit at 0.
    pub grease_quic_bit: bool,
}

impl Default for TransportParameters {
    fn default() -> Self {
        Self {
            original_destination_connection_id: None,
            max_idle_timeout: 0,
            stateless_reset_token: None,
            max_udp_payload_size: DEFAULT_MAX_UDP_PAYLOAD_SIZE,
            initial_max_data: 0,
            initial_max_stream_data_bidi_local: 0,
            initial_max_stream_data_bidi_remote: 0,
            initial_max_stream_data_uni: 0,
            initial_max_streams_bidi: 0,
            initial_max_streams_uni: 0,
            ack_delay_exponent: DEFAULT_ACK_DELAY_EXPONENT,
            max_ack_delay: DEFAULT_MAX_ACK_DELAY,
            disable_active_migration: false,
            preferred_address: None,
            active_connection_id_limit: DEFAULT_ACTIVE_CONNECTION_ID_LIMIT,
            initial_source_connection_id: None,
            retry_source_connection_id: None,
            version_information: None,
            max_datagram_frame_size: None,
            grease_quic_bit: false,
        }
    }
}

/// The known parameters, for duplicate detection: a bit per identifier.
fn known_bit(param: u64) -> Option<u32> {
    match param {
        id::ORIGINAL_DESTINATION_CONNECTION_ID..=id::VERSION_INFORMATION => Some(1 << param),
        id::MAX_DATAGRAM_FRAME_SIZE => Some(1 << 18),
        id::GREASE_QUIC_BIT => Some(1 << 19),
        _ => None,
    }
}

/// An integer-valued parameter: exactly one varint filling the value
/// (RFC 9000 §18.2: its length must match its content, §7.4).
fn decode_int(value: &[u8], reason: &'static str) -> Result<u64, Error> {
    match varint::decode(value) {
        Some((v, n)) if n == value.len() => Ok(v),
        _ => Err(Error::transport_parameter(reason)),
    }
}

fn decode_cid(value: &[u8], reason: &'static str) -> Result<ConnectionId, Error> {
    // RFC 9000 §17.2: a v1 connection ID is at most 20 bytes.
    ConnectionId::new(value).map_err(|_| Error::transport_parameter(reason))
}

fn decode_empty(value: &[u8], reason: &'static str) -> Result<bool, Error> {
    if value.is_empty() {
        Ok(true)
    } else {
        Err(Error::transport_parameter(reason))
    }
}

impl TransportParameters {
    /// Decodes and validates the parameters `sender` put in its
    /// quic_transport_parameters extension.
    ///
    /// Unknown and reserved identifiers are skipped (RFC 9000 §7.4.2, §18.1)
    /// but their value must still fit in the input. Duplicates of a known
    /// parameter are rejected (RFC 9000 §7.4 SHOULD); duplicates of an
    /// unknown one are not tracked, as that would need unbounded state.
    pub fn decode(bytes: &[u8], sender: Role) -> Result<Self, Error> {
        let mut params = Self::default();
        let mut seen = 0u32;
        let mut r = Reader::new(bytes);
        while !r.is_empty() {
            // RFC 9000 §18: Transport Parameter ID (i), Length (i), Value.
            let param = r.varint().map_err(|_| Error::transport_parameter("truncated transport parameter id"))?;
            let value = r.varint_prefixed().map_err(|_| Error::transport_parameter("transport parameter length exceeds input"))?;
            if let Some(bit) = known_bit(param) {
                if seen & bit != 0 {
                    return Err(Error::transport_parameter("duplicate transport parameter"));
                }
                seen |= bit;
            }
            params.decode_one(param, value)?;
        }
        params.validate(sender)?;
        Ok(params)
    }

    /// Stores one parameter; value ranges are checked later by `validate`.
    fn decode_one(&mut self, param: u64, value: &[u8]) -> Result<(), Error> {
        let int = |reason| decode_int(value, reason);
        match param {
            id::ORIGINAL_DESTINATION_CONNECTION_ID => {
                self.original_destination_connection_id = Some(decode_cid(value, "original_destination_connection_id longer than 20 bytes")?);
            }
            id::MAX_IDLE_TIMEOUT => self.max_idle_timeout = int("malformed max_idle_timeout")?,
            id::STATELESS_RESET_TOKEN => {
                // RFC 9000 §18.2: "a sequence of 16 bytes".
                let token: [u8; ResetToken::LEN] = value.try_into().map_err(|_| Error::transport_parameter("stateless_reset_token is not 16 bytes"))?;
                self.stateless_reset_token = Some(ResetToken(token));
            }
            id::MAX_UDP_PAYLOAD_SIZE => self.max_udp_payload_size = int("malformed max_udp_payload_size")?,
            id::INITIAL_MAX_DATA => self.initial_max_data = int("malformed initial_max_data")?,
            id::INITIAL_MAX_STREAM_DATA_BIDI_LOCAL => {
                self.initial_max_stream_data_bidi_local = int("malformed initial_max_stream_data_bidi_local")?;
            }
            id::INITIAL_MAX_STREAM_DATA_BIDI_REMOTE => {
                self.initial_max_stream_data_bidi_remote = int("malformed initial_max_stream_data_bidi_remote")?;
            }
            id::INITIAL_MAX_STREAM_DATA_UNI => {
                self.initial_max_stream_data_uni = int("malformed initial_max_stream_data_uni")?;
            }
            id::INITIAL_MAX_STREAMS_BIDI => self.initial_max_streams_bidi = int("malformed initial_max_streams_bidi")?,
            id::INITIAL_MAX_STREAMS_UNI => self.initial_max_streams_uni = int("malformed initial_max_streams_uni")?,
            id::ACK_DELAY_EXPONENT => self.ack_delay_exponent = int("malformed ack_delay_exponent")?,
            id::MAX_ACK_DELAY => self.max_ack_delay = int("malformed max_ack_delay")?,
            id::DISABLE_ACTIVE_MIGRATION => {
                // RFC 9000 §18.2: "This parameter is a zero-length value."
                self.disable_active_migration = decode_empty(value, "disable_active_migration has a value")?;
            }
            id::PREFERRED_ADDRESS => self.preferred_address = Some(PreferredAddress::decode(value)?),
            id::ACTIVE_CONNECTION_ID_LIMIT => {
                self.active_connection_id_limit = int("malformed active_connection_id_limit")?;
            }
            id::INITIAL_SOURCE_CONNECTION_ID => {
                self.initial_source_connection_id = Some(decode_cid(value, "initial_source_connection_id longer than 20 bytes")?);
            }
            id::RETRY_SOURCE_CONNECTION_ID => {
                self.retry_source_connection_id = Some(decode_cid(value, "retry_source_connection_id longer than 20 bytes")?);
            }
            id::VERSION_INFORMATION => self.version_information = Some(VersionInformation::decode(value)?),
            id::MAX_DATAGRAM_FRAME_SIZE => {
                self.max_datagram_frame_size = Some(int("malformed max_datagram_frame_size")?);
            }
            id::GREASE_QUIC_BIT => {
                // RFC 9287 §3: a non-empty value is a TRANSPORT_PARAMETER_ERROR.
                self.grease_quic_bit = decode_empty(value, "grease_quic_bit has a value")?;
            }
            // RFC 9000 §7.4.2: an endpoint MUST ignore parameters it does not
            // support; reserved ids (§18.1) exist to exercise exactly this.
            _ => {}
        }
        Ok(())
    }

    /// Checks the value rules of RFC 9000 §18.2 (and of the extensions) for
    /// parameters sent by `sender`. [`decode`](Self::decode) runs it; call it
    /// on locally configured parameters before sending them.
    pub fn validate(&self, sender: Role) -> Result<(), Error> {
        let err = Error::transport_parameter;
        // Integers travel as varints; only a local configuration can break this.
        let ints = [
            self.max_idle_timeout,
            self.max_udp_payload_size,
            self.initial_max_data,
            self.initial_max_stream_data_bidi_local,
            self.initial_max_stream_data_bidi_remote,
            self.initial_max_stream_data_uni,
            self.active_connection_id_limit,
            self.max_datagram_frame_size.unwrap_or(0),
        ];
        if ints.iter().any(|v| *v > VarInt::MAX.into_inner()) {
            return Err(err("transport parameter value exceeds 2^62 - 1"));
        }
        // RFC 9000 §18.2: "Values below 1200 are invalid."
        if self.max_udp_payload_size < MIN_MAX_UDP_PAYLOAD_SIZE {
            return Err(err("max_udp_payload_size below 1200"));
        }
        // RFC 9000 §4.6: stream limits above 2^60 are a TRANSPORT_PARAMETER_ERROR.
        if self.initial_max_streams_bidi > MAX_STREAMS_LIMIT {
            return Err(err("initial_max_streams_bidi exceeds 2^60"));
        }
        if self.initial_max_streams_uni > MAX_STREAMS_LIMIT {
            return Err(err("initial_max_streams_uni exceeds 2^60"));
        }
        // RFC 9000 §18.2: "Values above 20 are invalid."
        if self.ack_delay_exponent > MAX_ACK_DELAY_EXPONENT {
            return Err(err("ack_delay_exponent above 20"));
        }
        // RFC 9000 §18.2: "Values of 2^14 or greater are invalid."
        if self.max_ack_delay >= MAX_ACK_DELAY_LIMIT {
            return Err(err("max_ack_delay of 2^14 or more"));
        }
        // RFC 9000 §18.2: "MUST be at least 2".
        if self.active_connection_id_limit < DEFAULT_ACTIVE_CONNECTION_ID_LIMIT {
            return Err(err("active_connection_id_limit below 2"));
        }
        // RFC 9000 §18.2: a client MUST NOT send a server-only parameter and
        // a server MUST treat receipt of one as TRANSPORT_PARAMETER_ERROR.
        if sender == Role::Client {
            if self.original_destination_connection_id.is_some() {
                return Err(err("client sent original_destination_connection_id"));
            }
            if self.stateless_reset_token.is_some() {
                return Err(err("client sent stateless_reset_token"));
            }
            if self.preferred_address.is_some() {
                return Err(err("client sent preferred_address"));
            }
            if self.retry_source_connection_id.is_some() {
                return Err(err("client sent retry_source_connection_id"));
            }
        }
        if let Some(pa) = &self.preferred_address {
            // RFC 9000 §18.2: no zero-length CID in preferred_address, and a
            // server that chose a zero-length CID MUST NOT send one at all.
            if pa.connection_id.is_empty() {
                return Err(err("zero-length CID in preferred_address"));
            }
            if self.initial_source_connection_id.is_some_and(|c| c.is_empty()) {
                return Err(err("preferred_address with a zero-length connection ID"));
            }
        }
        if let Some(vi) = &self.version_information {
            // RFC 9368 §3: version 0 in either field is a parsing failure.
            if vi.chosen_version.0 == 0 || vi.available_versions().iter().any(|v| v.0 == 0) {
                return Err(err("version_information contains version 0"));
            }
        }
        Ok(())
    }

    /// RFC 9000 §7.3: checks the connection IDs the peer declared against
    /// those seen in Initial (and Retry) packets. `self` holds the peer's
    /// parameters and `sender` is the peer's role.
    ///
    /// - `expected_initial_scid`: the Source Connection ID of the first
    ///   Initial packet received from the peer.
    /// - `original_dcid`: when the peer is a server, the Destination
    ///   Connection ID of the first Initial this client sent (before any
    ///   Retry). Ignored when the peer is a client.
    /// - `retry_scid`: when the peer is a server, the Source Connection ID of
    ///   the Retry packet this client accepted, `None` if there was none.
    ///   Ignored when the peer is a client.
    ///
    /// Absence, unexpected presence and mismatch are all
    /// TRANSPORT_PARAMETER_ERROR (§7.3 allows it for every case).
    pub fn check_cids(
        &self,
        sender: Role,
        expected_initial_scid: &ConnectionId,
        original_dcid: Option<&ConnectionId>,
        retry_scid: Option<&ConnectionId>,
    ) -> Result<(), Error> {
        let err = Error::transport_parameter;
        // §7.3: absence of initial_source_connection_id from either endpoint.
        match &self.initial_source_connection_id {
            None => return Err(err("initial_source_connection_id missing")),
            Some(cid) if cid != expected_initial_scid => {
                return Err(err("initial_source_connection_id does not match Initial SCID"));
            }
            Some(_) => {}
        }
        match sender {
            Role::Client => {
                // A client cannot send these (§18.2); `decode` rejects them,
                // this covers parameters built by hand.
                if self.original_destination_connection_id.is_some() || self.retry_source_connection_id.is_some() {
                    return Err(err("client sent a server-only connection ID"));
                }
            }
            Role::Server => {
                // §7.3: absence of original_destination_connection_id from the server.
                match &self.original_destination_connection_id {
                    None => return Err(err("original_destination_connection_id missing")),
                    Some(cid) if Some(cid) != original_dcid => {
                        return Err(err("original_destination_connection_id does not match"));
                    }
                    Some(_) => {}
                }
                match (&self.retry_source_connection_id, retry_scid) {
                    (None, None) => {}
                    (None, Some(_)) => return Err(err("retry_source_connection_id missing after Retry")),
                    (Some(_), None) => return Err(err("retry_source_connection_id without a Retry")),
                    (Some(got), Some(want)) if got != want => {
                        return Err(err("retry_source_connection_id does not match Retry SCID"));
                    }
                    (Some(_), Some(_)) => {}
                }
            }
        }
        Ok(())
    }

    /// max_ack_delay as a duration.
    pub fn max_ack_delay_duration(&self) -> Duration {
        Duration::from_millis(self.max_ack_delay)
    }

    /// max_idle_timeout as a duration; `None` when 0, i.e. this endpoint
    /// does not impose an idle timeout (RFC 9000 §10.1).
    pub fn max_idle_timeout_duration(&self) -> Option<Duration> {
        (self.max_idle_timeout != 0).then(|| Duration::from_millis(self.max_idle_timeout))
    }

    /// Encodes the parameters `sender` would send: only values that differ
    /// from their default, and never a server-only parameter when `sender`
    /// is a client. Nothing is written when the buffer is too short.
    ///
    /// Integers must be below 2^62 ([`validate`](Self::validate) checks it);
    /// a larger one also fails with [`BufferTooShort`].
    pub fn encode(&self, w: &mut Writer<'_>, sender: Role) -> Result<(), BufferTooShort> {
        self.encode_inner(w, sender, None)
    }

    /// Like [`encode`](Self::encode), then appends one reserved parameter
    /// (RFC 9000 §18.1) whose id, length (0 to 8 bytes) and value derive from
    /// `seed`. The caller supplies a random seed per connection.
    pub fn encode_with_grease(&self, w: &mut Writer<'_>, sender: Role, seed: u64) -> Result<(), BufferTooShort> {
        self.encode_inner(w, sender, Some(seed))
    }

    /// Bytes [`encode`](Self::encode) writes.
    pub fn encoded_len(&self, sender: Role) -> usize {
        self.count(sender, None)
    }

    /// Bytes [`encode_with_grease`](Self::encode_with_grease) writes.
    pub fn encoded_len_with_grease(&self, sender: Role, seed: u64) -> usize {
        self.count(sender, Some(seed))
    }

    fn count(&self, sender: Role, grease: Option<u64>) -> usize {
        let mut c = Counter(0);
        // Counting never fails: `Counter` always accepts.
        let _always_ok = self.emit(&mut c, sender, grease);
        c.0
    }

    fn encode_inner(&self, w: &mut Writer<'_>, sender: Role, grease: Option<u64>) -> Result<(), BufferTooShort> {
        // Check first so a short buffer leaves the writer untouched.
        if self.count(sender, grease) > w.remaining() {
            return Err(BufferTooShort);
        }
        self.emit(w, sender, grease)
    }

    /// The one description of the wire format, run against a `Writer` to
    /// encode or a `Counter` to measure. Parameters go in id order.
    fn emit<S: Sink>(&self, s: &mut S, sender: Role, grease: Option<u64>) -> Result<(), BufferTooShort> {
        let server = sender == Role::Server;
        if server {
            if let Some(cid) = &self.original_destination_connection_id {
                bytes_param(s, id::ORIGINAL_DESTINATION_CONNECTION_ID, cid)?;
            }
        }
        int_param(s, id::MAX_IDLE_TIMEOUT, self.max_idle_timeout, 0)?;
        if server {
            if let Some(token) = &self.stateless_reset_token {
                bytes_param(s, id::STATELESS_RESET_TOKEN, &token.0)?;
            }
        }
        int_param(s, id::MAX_UDP_PAYLOAD_SIZE, self.max_udp_payload_size, DEFAULT_MAX_UDP_PAYLOAD_SIZE)?;
        int_param(s, id::INITIAL_MAX_DATA, self.initial_max_data, 0)?;
        int_param(s, id::INITIAL_MAX_STREAM_DATA_BIDI_LOCAL, self.initial_max_stream_data_bidi_local, 0)?;
        int_param(s, id::INITIAL_MAX_STREAM_DATA_BIDI_REMOTE, self.initial_max_stream_data_bidi_remote, 0)?;
        int_param(s, id::INITIAL_MAX_STREAM_DATA_UNI, self.initial_max_stream_data_uni, 0)?;
        int_param(s, id::INITIAL_MAX_STREAMS_BIDI, self.initial_max_streams_bidi, 0)?;
        int_param(s, id::INITIAL_MAX_STREAMS_UNI, self.initial_max_streams_uni, 0)?;
        int_param(s, id::ACK_DELAY_EXPONENT, self.ack_delay_exponent, DEFAULT_ACK_DELAY_EXPONENT)?;
        int_param(s, id::MAX_ACK_DELAY, self.max_ack_delay, DEFAULT_MAX_ACK_DELAY)?;
        if self.disable_active_migration {
            bytes_param(s, id::DISABLE_ACTIVE_MIGRATION, &[])?;
        }
        if server {
            if let Some(pa) = &self.preferred_address {
                s.varint(id::PREFERRED_ADDRESS)?;
                s.varint(pa.encoded_len() as u64)?;
                pa.encode(s)?;
            }
        }
        int_param(s, id::ACTIVE_CONNECTION_ID_LIMIT, self.active_connection_id_limit, DEFAULT_ACTIVE_CONNECTION_ID_LIMIT)?;
        if let Some(cid) = &self.initial_source_connection_id {
            bytes_param(s, id::INITIAL_SOURCE_CONNECTION_ID, cid)?;
        }
        if server {
            if let Some(cid) = &self.retry_source_connection_id {
                bytes_param(s, id::RETRY_SOURCE_CONNECTION_ID, cid)?;
            }
        }
        if let Some(vi) = &self.version_information {
            s.varint(id::VERSION_INFORMATION)?;
            s.varint(vi.encoded_len() as u64)?;
            vi.encode(s)?;
        }
        if let Some(size) = self.max_datagram_frame_size {
            // Written even when 0: `Some(0)` and `None` mean the same to the
            // peer, but keeping them apart makes decode(encode(x)) == x.
            s.varint(id::MAX_DATAGRAM_FRAME_SIZE)?;
            s.varint(varint::size(size) as u64)?;
            s.varint(size)?;
        }
        if self.grease_quic_bit {
            bytes_param(s, id::GREASE_QUIC_BIT, &[])?;
        }
        if let Some(seed) = grease {
            let g = GreaseParam::from_seed(seed);
            bytes_param(s, g.id, g.value())?;
        }
        Ok(())
    }
}

/// A reserved parameter (RFC 9000 §18.1) derived from a seed.
struct GreaseParam {
    id: u64,
    len: usize,
    bytes: [u8; 8],
}

impl GreaseParam {
    fn from_seed(seed: u64) -> Self {
        let a = mix64(seed);
        let b = mix64(a);
        // N below 2^16 keeps the id within a 4-byte varint; 31 * N + 27 is
        // never one of the ids this module knows (none is 27 mod 31).
        let n = a & 0xffff;
        Self { id: 31 * n + 27, len: ((a >> 16) % 9) as usize, bytes: b.to_be_bytes() }
    }

    fn value(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&[])
    }
}

/// A 64-bit finaliser (the SplitMix64 output function) so that nearby seeds
/// give unrelated-looking grease.
fn mix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Where `emit` sends its output.
trait Sink {
    fn varint(&mut self, v: u64) -> Result<(), BufferTooShort>;
    fn put(&mut self, bytes: &[u8]) -> Result<(), BufferTooShort>;
}

impl Sink for Writer<'_> {
    fn varint(&mut self, v: u64) -> Result<(), BufferTooShort> {
        Writer::varint(self, v)
    }
    fn put(&mut self, bytes: &[u8]) -> Result<(), BufferTooShort> {
        Writer::put(self, bytes)
    }
}

/// Counts bytes instead of writing them.
struct Counter(usize);

impl Sink for Counter {
    fn varint(&mut self, v: u64) -> Result<(), BufferTooShort> {
        self.0 = self.0.saturating_add(varint::size(v));
        Ok(())
    }
    fn put(&mut self, bytes: &[u8]) -> Result<(), BufferTooShort> {
        self.0 = self.0.saturating_add(bytes.len());
        Ok(())
    }
}

/// An integer parameter, omitted when it has its default value.
fn int_param<S: Sink>(s: &mut S, param: u64, v: u64, default: u64) -> Result<(), BufferTooShort> {
    if v == default {
        return Ok(());
    }
    s.varint(param)?;
    s.varint(varint::size(v) as u64)?;
    s.varint(v)
}

fn bytes_param<S: Sink>(s: &mut S, param: u64, value: &[u8]) -> Result<(), BufferTooShort> {
    s.varint(param)?;
    s.varint(value.len() as u64)?;
    s.put(value)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::error::TransportErrorCode;

    fn cid(bytes: &[u8]) -> ConnectionId {
        ConnectionId::new(bytes).unwrap()
    }

    fn encode_vec(p: &TransportParameters, sender: Role) -> Vec<u8> {
        let mut buf = vec![0u8; p.encoded_len(sender)];
        let mut w = Writer::new(&mut buf);
        p.encode(&mut w, sender).unwrap();
        assert_eq!(w.len(), buf.len(), "encoded_len matches what encode writes");
        buf
    }

    fn decode_err(bytes: &[u8], sender: Role) -> Error {
        let e = TransportParameters::decode(bytes, sender).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::TRANSPORT_PARAMETER_ERROR, "{e:?} for {bytes:02x?}");
        e
    }

    fn decode_ok(bytes: &[u8], sender: Role) -> TransportParameters {
        TransportParameters::decode(bytes, sender).unwrap_or_else(|e| panic!("{e:?} for {bytes:02x?}"))
    }

    #[test]
    fn defaults_are_the_rfc_values() {
        let d = TransportParameters::default();
        assert_eq!(d.max_udp_payload_size, 65527);
        assert_eq!(d.ack_delay_exponent, 3);
        assert_eq!(d.max_ack_delay, 25);
        assert_eq!(d.max_ack_delay_duration(), Duration::from_millis(25));
        assert_eq!(d.active_connection_id_limit, 2);
        assert_eq!(d.max_idle_timeout, 0);
        assert_eq!(d.max_idle_timeout_duration(), None);
        assert_eq!(d.initial_max_data, 0);
        assert_eq!(d.initial_max_streams_bidi, 0);
        assert_eq!(d.initial_max_streams_uni, 0);
        assert!(!d.disable_active_migration && !d.grease_quic_bit);
        assert!(d.original_destination_connection_id.is_none());
        assert!(d.preferred_address.is_none());
        assert!(d.max_datagram_frame_size.is_none());
        // An empty extension means every default, from either side.
        assert_eq!(decode_ok(&[], Role::Client), d);
        assert_eq!(decode_ok(&[], Role::Server), d);
        // Defaults are never written.
        assert_eq!(d.encoded_len(Role::Server), 0);
        assert!(encode_vec(&d, Role::Server).is_empty());
    }

    #[test]
    fn explicit_default_values_decode_and_are_not_reencoded() {
        // max_udp_payload_size = 65527 (4-byte varint), ack_delay_exponent = 3.
        let bytes = [0x03, 0x04, 0x80, 0x00, 0xff, 0xf7, 0x0a, 0x01, 0x03];
        let p = decode_ok(&bytes, Role::Client);
        assert_eq!(p, TransportParameters::default());
        assert!(encode_vec(&p, Role::Client).is_empty());
    }

    /// Each parameter on its own, bytes laid out by hand from RFC 9000 §18.
    #[test]
    fn each_parameter_by_hand() {
        type Check = fn(&TransportParameters) -> bool;
        let cases: &[(&[u8], Check)] = &[
            (&[0x00, 0x04, 1, 2, 3, 4], |p| p.original_destination_connection_id == Some(cid(&[1, 2, 3, 4]))),
            (&[0x00, 0x00], |p| p.original_destination_connection_id == Some(ConnectionId::EMPTY)),
            (&[0x01, 0x04, 0x80, 0x00, 0x75, 0x30], |p| p.max_idle_timeout == 30_000),
            (&[0x02, 0x10, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15], |p| {
                p.stateless_reset_token == Some(ResetToken([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]))
            }),
            (&[0x03, 0x02, 0x44, 0xb0], |p| p.max_udp_payload_size == 1200),
            (&[0x04, 0x04, 0x80, 0x10, 0x00, 0x00], |p| p.initial_max_data == 1 << 20),
            (&[0x05, 0x01, 0x07], |p| p.initial_max_stream_data_bidi_local == 7),
            (&[0x06, 0x02, 0x40, 0x40], |p| p.initial_max_stream_data_bidi_remote == 64),
            (&[0x07, 0x01, 0x3f], |p| p.initial_max_stream_data_uni == 63),
            (&[0x08, 0x01, 0x0a], |p| p.initial_max_streams_bidi == 10),
            (&[0x09, 0x08, 0xd0, 0, 0, 0, 0, 0, 0, 0], |p| p.initial_max_streams_uni == 1 << 60),
            (&[0x0a, 0x01, 0x14], |p| p.ack_delay_exponent == 20),
            (&[0x0b, 0x02, 0x7f, 0xff], |p| p.max_ack_delay == (1 << 14) - 1),
            (&[0x0c, 0x00], |p| p.disable_active_migration),
            (&[0x0e, 0x01, 0x08], |p| p.active_connection_id_limit == 8),
            (&[0x0f, 0x03, 9, 9, 9], |p| p.initial_source_connection_id == Some(cid(&[9, 9, 9]))),
            (&[0x0f, 0x00], |p| p.initial_source_connection_id == Some(ConnectionId::EMPTY)),
            (&[0x10, 0x02, 0xaa, 0xbb], |p| p.retry_source_connection_id == Some(cid(&[0xaa, 0xbb]))),
            (&[0x11, 0x08, 0x6b, 0x33, 0x43, 0xcf, 0, 0, 0, 1], |p| {
                p.version_information.is_some_and(|v| v.chosen_version == Version::V2 && v.available_versions() == [Version::V1])
            }),
            (&[0x11, 0x04, 0, 0, 0, 1], |p| p.version_information.is_some_and(|v| v.chosen_version == Version::V1 && v.available_versions().is_empty())),
            (&[0x20, 0x04, 0x80, 0x00, 0xff, 0xff], |p| p.max_datagram_frame_size == Some(65535)),
            (&[0x20, 0x01, 0x00], |p| p.max_datagram_frame_size == Some(0)),
            (&[0x80, 0x00, 0x2a, 0xb2, 0x00], |p| p.grease_quic_bit),
        ];
        for (bytes, check) in cases {
            let p = decode_ok(bytes, Role::Server);
            assert!(check(&p), "{bytes:02x?} decoded to {p:?}");
            // Only the one field moved away from its default: re-encoding and
            // decoding gives the same value.
            assert_eq!(decode_ok(&encode_vec(&p, Role::Server), Role::Server), p);
        }
    }

    #[test]
    fn preferred_address_by_hand() {
        let mut bytes = vec![0x0d, 41 + 4];
        bytes.extend_from_slice(&[192, 0, 2, 1, 0x11, 0x51]); // 192.0.2.1:4433
        bytes.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]); // 2001:db8::1
        bytes.extend_from_slice(&[0x01, 0xbb]); // 443
        bytes.extend_from_slice(&[4, 0xc1, 0xc2, 0xc3, 0xc4]);
        bytes.extend_from_slice(&[0x77; 16]);
        let p = decode_ok(&bytes, Role::Server);
        let pa = p.preferred_address.unwrap();
        assert_eq!(pa.ipv4, "192.0.2.1:4433".parse().unwrap());
        assert_eq!(pa.ipv6, "[2001:db8::1]:443".parse().unwrap());
        assert_eq!(pa.ipv4_addr(), Some(pa.ipv4));
        assert_eq!(pa.ipv6_addr(), Some(pa.ipv6));
        assert_eq!(pa.connection_id, cid(&[0xc1, 0xc2, 0xc3, 0xc4]));
        assert_eq!(pa.stateless_reset_token, ResetToken([0x77; 16]));
        assert_eq!(encode_vec(&p, Role::Server), bytes);

        // One family only: the other is all zeros (RFC 9000 §18.2).
        let mut v6_only = bytes.clone();
        v6_only[2..8].fill(0);
        let pa = decode_ok(&v6_only, Role::Server).preferred_address.unwrap();
        assert_eq!(pa.ipv4_addr(), None);
        assert!(pa.ipv6_addr().is_some());
    }

    /// A full server set, written in id order with minimal encodings, must
    /// decode to the expected struct and re-encode to the same bytes.
    #[test]
    fn full_server_set_round_trips_byte_exact() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&[0x00, 0x08, 0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08]);
        bytes.extend_from_slice(&[0x01, 0x04, 0x80, 0x00, 0x75, 0x30]);
        bytes.extend_from_slice(&[0x02, 0x10]);
        bytes.extend_from_slice(&[0xab; 16]);
        bytes.extend_from_slice(&[0x03, 0x02, 0x45, 0xc0]); // 1472
        bytes.extend_from_slice(&[0x04, 0x04, 0x80, 0x10, 0x00, 0x00]);
        bytes.extend_from_slice(&[0x05, 0x04, 0x80, 0x01, 0x00, 0x00]);
        bytes.extend_from_slice(&[0x06, 0x04, 0x80, 0x01, 0x00, 0x00]);
        bytes.extend_from_slice(&[0x07, 0x04, 0x80, 0x01, 0x00, 0x00]);
        bytes.extend_from_slice(&[0x08, 0x02, 0x40, 0x64]);
        bytes.extend_from_slice(&[0x09, 0x01, 0x03]);
        bytes.extend_from_slice(&[0x0a, 0x01, 0x02]);
        bytes.extend_from_slice(&[0x0b, 0x01, 0x0a]);
        bytes.extend_from_slice(&[0x0c, 0x00]);
        bytes.extend_from_slice(&[0x0d, 41 + 1, 10, 0, 0, 1, 0x01, 0xbb]);
        bytes.extend_from_slice(&[0; 16]);
        bytes.extend_from_slice(&[0, 0, 1, 0x55]);
        bytes.extend_from_slice(&[0xcd; 16]);
        bytes.extend_from_slice(&[0x0e, 0x01, 0x04]);
        bytes.extend_from_slice(&[0x0f, 0x02, 0xf0, 0x67]);
        bytes.extend_from_slice(&[0x10, 0x01, 0x5e]);
        bytes.extend_from_slice(&[0x11, 0x0c, 0, 0, 0, 1, 0, 0, 0, 1, 0x6b, 0x33, 0x43, 0xcf]);
        bytes.extend_from_slice(&[0x20, 0x04, 0x80, 0x00, 0xff, 0xff]);
        bytes.extend_from_slice(&[0x6a, 0xb2, 0x00]); // 0x2ab2 fits a 2-byte varint

        let p = decode_ok(&bytes, Role::Server);
        let expected = TransportParameters {
            original_destination_connection_id: Some(cid(&[0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08])),
            max_idle_timeout: 30_000,
            stateless_reset_token: Some(ResetToken([0xab; 16])),
            max_udp_payload_size: 1472,
            initial_max_data: 1 << 20,
            initial_max_stream_data_bidi_local: 1 << 16,
            initial_max_stream_data_bidi_remote: 1 << 16,
            initial_max_stream_data_uni: 1 << 16,
            initial_max_streams_bidi: 100,
            initial_max_streams_uni: 3,
            ack_delay_exponent: 2,
            max_ack_delay: 10,
            disable_active_migration: true,
            preferred_address: Some(PreferredAddress {
                ipv4: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 443),
                ipv6: SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 0, 0, 0),
                connection_id: cid(&[0x55]),
                stateless_reset_token: ResetToken([0xcd; 16]),
            }),
            active_connection_id_limit: 4,
            initial_source_connection_id: Some(cid(&[0xf0, 0x67])),
            retry_source_connection_id: Some(cid(&[0x5e])),
            version_information: Some(VersionInformation::new(Version::V1, &[Version::V1, Version::V2])),
            max_datagram_frame_size: Some(65535),
            grease_quic_bit: true,
        };
        assert_eq!(p, expected);
        assert_eq!(p.max_idle_timeout_duration(), Some(Duration::from_secs(30)));
        assert_eq!(encode_vec(&p, Role::Server), bytes);

        // As a client, the server-only parameters are left out, and a
        // server decoding the result accepts it.
        let as_client = encode_vec(&p, Role::Client);
        let back = decode_ok(&as_client, Role::Client);
        assert_eq!(back.original_destination_connection_id, None);
        assert_eq!(back.stateless_reset_token, None);
        assert_eq!(back.preferred_address, None);
        assert_eq!(back.retry_source_connection_id, None);
        assert_eq!(back.initial_max_data, p.initial_max_data);
        assert_eq!(back.initial_source_connection_id, p.initial_source_connection_id);
        assert_eq!(back.version_information, p.version_information);
        assert!(back.grease_quic_bit && back.disable_active_migration);

        // The full server set is rejected as a client's.
        decode_err(&bytes, Role::Client);
    }

    #[test]
    fn invalid_values() {
        let cases: &[(&[u8], Role, &str)] = &[
            (&[0x03, 0x02, 0x44, 0xaf], Role::Client, "max_udp_payload_size 1199"),
            (&[0x03, 0x01, 0x00], Role::Server, "max_udp_payload_size 0"),
            (&[0x0a, 0x01, 0x15], Role::Client, "ack_delay_exponent 21"),
            (&[0x0b, 0x04, 0x80, 0x00, 0x40, 0x00], Role::Client, "max_ack_delay 2^14"),
            (&[0x0e, 0x01, 0x01], Role::Client, "active_connection_id_limit 1"),
            (&[0x0e, 0x01, 0x00], Role::Server, "active_connection_id_limit 0"),
            (&[0x08, 0x08, 0xd0, 0, 0, 0, 0, 0, 0, 1], Role::Client, "initial_max_streams_bidi 2^60+1"),
            (&[0x09, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], Role::Server, "max_streams_uni max"),
            // Server-only parameters from a client.
            (&[0x00, 0x01, 0x01], Role::Client, "client original_destination_connection_id"),
            (&[0x00, 0x00], Role::Client, "client empty original_destination_connection_id"),
            (&[0x02, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], Role::Client, "client stateless_reset_token"),
            (&[0x10, 0x01, 0x01], Role::Client, "client retry_source_connection_id"),
            // Lengths that do not match the content.
            (&[0x02, 0x0f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], Role::Server, "15-byte reset token"),
            (&[0x02, 0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], Role::Server, "17-byte reset token"),
            (&[0x01, 0x00], Role::Client, "empty varint"),
            (&[0x01, 0x02, 0x05, 0x00], Role::Client, "varint shorter than its length"),
            (&[0x01, 0x01, 0x40], Role::Client, "varint longer than its length"),
            (&[0x04, 0x03, 0x80, 0x00, 0x01], Role::Client, "4-byte varint in 3"),
            (&[0x0c, 0x01, 0x00], Role::Client, "disable_active_migration with a value"),
            (&[0x80, 0x00, 0x2a, 0xb2, 0x01, 0x01], Role::Client, "grease_quic_bit with a value"),
            (&[0x20, 0x00], Role::Client, "empty max_datagram_frame_size"),
            // CIDs longer than 20 bytes.
            (&[0x0f, 21, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], Role::Client, "21-byte iscid"),
            (&[0x00, 21, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], Role::Server, "21-byte odcid"),
            (&[0x10, 21, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], Role::Server, "21-byte rscid"),
            // version_information.
            (&[0x11, 0x00], Role::Client, "empty version_information"),
            (&[0x11, 0x03, 0, 0, 1], Role::Client, "3-byte version_information"),
            (&[0x11, 0x06, 0, 0, 0, 1, 0, 0], Role::Client, "6-byte version_information"),
            (&[0x11, 0x04, 0, 0, 0, 0], Role::Client, "chosen version 0"),
            (&[0x11, 0x08, 0, 0, 0, 1, 0, 0, 0, 0], Role::Server, "available version 0"),
            // Framing.
            (&[0x01], Role::Client, "id without length"),
            (&[0x40], Role::Client, "truncated id"),
            (&[0x01, 0x40], Role::Client, "truncated length"),
            (&[0x01, 0x02, 0x05], Role::Client, "value past the end"),
            (&[0x1b, 0x05, 1, 2, 3, 4], Role::Client, "grease value past the end"),
            (&[0x7f, 0xff, 0xff, 0x01], Role::Client, "unknown value past the end"),
            // Duplicates.
            (&[0x04, 0x01, 0x01, 0x04, 0x01, 0x01], Role::Client, "initial_max_data twice"),
            (&[0x0c, 0x00, 0x0c, 0x00], Role::Client, "disable_active_migration twice"),
            (&[0x20, 0x01, 0x01, 0x20, 0x01, 0x02], Role::Client, "max_datagram_frame_size twice"),
            (&[0x80, 0x00, 0x2a, 0xb2, 0x00, 0x80, 0x00, 0x2a, 0xb2, 0x00], Role::Client, "grease_quic_bit twice"),
            (&[0x11, 0x04, 0, 0, 0, 1, 0x11, 0x04, 0, 0, 0, 1], Role::Client, "version_information twice"),
            // The same parameter with a non-minimal id encoding is still a duplicate.
            (&[0x0f, 0x00, 0x40, 0x0f, 0x00], Role::Client, "iscid twice, second id non-minimal"),
        ];
        for (bytes, sender, what) in cases {
            let e = TransportParameters::decode(bytes, *sender);
            match e {
                Err(e) => {
                    assert_eq!(e.code, TransportErrorCode::TRANSPORT_PARAMETER_ERROR, "{what}")
                }
                Ok(p) => panic!("{what}: accepted as {p:?}"),
            }
        }
    }

    fn preferred_address_bytes(cid_len: u8, cid_bytes: usize, token: usize) -> Vec<u8> {
        let mut v = vec![0u8; 4 + 2 + 16 + 2];
        v.push(cid_len);
        v.extend(std::iter::repeat_n(0x42, cid_bytes));
        v.extend(std::iter::repeat_n(0x99, token));
        let mut out = vec![0x0d];
        out.push(v.len() as u8);
        out.extend_from_slice(&v);
        out
    }

    #[test]
    fn invalid_preferred_address() {
        // Valid baseline, so the failures below are about the one change.
        decode_ok(&preferred_address_bytes(8, 8, 16), Role::Server);
        decode_ok(&preferred_address_bytes(20, 20, 16), Role::Server);
        // From a client.
        decode_err(&preferred_address_bytes(8, 8, 16), Role::Client);
        // RFC 9000 §18.2: zero-length CID.
        decode_err(&preferred_address_bytes(0, 0, 16), Role::Server);
        // CID longer than 20 bytes.
        decode_err(&preferred_address_bytes(21, 21, 16), Role::Server);
        // CID length pointing past the value, short token, trailing byte.
        decode_err(&preferred_address_bytes(9, 8, 16), Role::Server);
        decode_err(&preferred_address_bytes(8, 8, 15), Role::Server);
        decode_err(&preferred_address_bytes(8, 8, 17), Role::Server);
        decode_err(&[0x0d, 0x03, 1, 2, 3], Role::Server);
        decode_err(&[0x0d, 0x00], Role::Server);
        // RFC 9000 §18.2: a server using a zero-length CID MUST NOT send a
        // preferred address.
        let mut with_empty_iscid = preferred_address_bytes(8, 8, 16);
        with_empty_iscid.extend_from_slice(&[0x0f, 0x00]);
        decode_err(&with_empty_iscid, Role::Server);
        let mut with_iscid = preferred_address_bytes(8, 8, 16);
        with_iscid.extend_from_slice(&[0x0f, 0x01, 0x01]);
        decode_ok(&with_iscid, Role::Server);
    }

    #[test]
    fn error_reasons_name_the_problem() {
        assert_eq!(decode_err(&[0x0a, 0x01, 0x15], Role::Client).reason, "ack_delay_exponent above 20");
        assert_eq!(decode_err(&[0x00, 0x00], Role::Client).reason, "client sent original_destination_connection_id");
        assert_eq!(decode_err(&[0x04, 0x01, 0x01, 0x04, 0x01, 0x01], Role::Client).reason, "duplicate transport parameter");
        assert_eq!(decode_err(&[0x0e, 0x01, 0x01], Role::Client).reason, "active_connection_id_limit below 2");
    }

    #[test]
    fn boundary_values_accepted() {
        let p = decode_ok(&[0x03, 0x02, 0x44, 0xb0, 0x0a, 0x01, 0x14, 0x0b, 0x02, 0x7f, 0xff, 0x0e, 0x01, 0x02], Role::Client);
        assert_eq!(p.max_udp_payload_size, 1200);
        assert_eq!(p.ack_delay_exponent, 20);
        assert_eq!(p.max_ack_delay, 16383);
        assert_eq!(p.active_connection_id_limit, 2);
        let p = decode_ok(&[0x08, 0x08, 0xd0, 0, 0, 0, 0, 0, 0, 0, 0x09, 0x01, 0x00], Role::Client);
        assert_eq!(p.initial_max_streams_bidi, 1 << 60);
        assert_eq!(p.initial_max_streams_uni, 0);
        // Non-minimal varints are allowed (RFC 9000 §16) when the length says so.
        let p = decode_ok(&[0x01, 0x08, 0xc0, 0, 0, 0, 0, 0, 0, 0x05, 0x40, 0x04, 0x01, 0x07], Role::Client);
        assert_eq!(p.max_idle_timeout, 5);
        assert_eq!(p.initial_max_data, 7);
        // CID of exactly 20 bytes.
        let mut b = vec![0x0f, 20];
        b.extend_from_slice(&[0x11; 20]);
        assert_eq!(decode_ok(&b, Role::Client).initial_source_connection_id, Some(cid(&[0x11; 20])));
    }

    #[test]
    fn unknown_and_reserved_parameters_are_skipped() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&[0x1b, 0x03, 1, 2, 3]); // 31*0+27
        bytes.extend_from_slice(&[0x04, 0x01, 0x05]);
        bytes.extend_from_slice(&[0x3a, 0x00]); // 31*1+27
        bytes.extend_from_slice(&[0x80, 0x00, 0xff, 0xa5, 0x02, 0xaa, 0xbb]); // draft-era extension id, not ours
        bytes.extend_from_slice(&[0x40, 0x21, 0x01, 0xff]); // 0x21, unassigned here
        bytes.extend_from_slice(&[0xc0, 0, 0, 0, 0, 0, 0, 0x1b, 0x00]); // 27 with an 8-byte id
        bytes.extend_from_slice(&[0x1b, 0x01, 0x00]); // a reserved id repeated: ignored
        bytes.extend_from_slice(&[0x4f, 0xff, 0x04, 0xde, 0xad, 0xbe, 0xef]);
        let p = decode_ok(&bytes, Role::Client);
        assert_eq!(p, TransportParameters { initial_max_data: 5, ..Default::default() });
        assert!(id::is_reserved(27) && id::is_reserved(58) && id::is_reserved(31 * 1000 + 27));
        assert!(!id::is_reserved(id::GREASE_QUIC_BIT) && !id::is_reserved(id::MAX_DATAGRAM_FRAME_SIZE));
    }

    #[test]
    fn version_information_keeps_sixteen_and_validates_the_rest() {
        let mut value = vec![0, 0, 0, 1];
        for i in 1..=20u32 {
            value.extend_from_slice(&(0x0a0a_0a0a + i).to_be_bytes());
        }
        let mut bytes = vec![0x11, 0x40, value.len() as u8];
        bytes.extend_from_slice(&value);
        let vi = decode_ok(&bytes, Role::Client).version_information.unwrap();
        assert_eq!(vi.chosen_version, Version::V1);
        assert_eq!(vi.available_versions().len(), MAX_AVAILABLE_VERSIONS);
        assert_eq!(vi.available_versions()[15], Version(0x0a0a_0a0a + 16));
        let kept: Vec<Version> = (1..=16).map(|i| Version(0x0a0a_0a0a + i)).collect();
        assert_eq!(vi, VersionInformation::new(Version::V1, &kept));
        // A zero past the kept sixteen is still an error.
        let last = bytes.len() - 4;
        bytes[last..].fill(0);
        decode_err(&bytes, Role::Client);
        // `new` truncates the same way.
        let many: Vec<Version> = (1..40).map(Version).collect();
        assert_eq!(VersionInformation::new(Version::V2, &many).available_versions(), &many[..16]);
        assert!(format!("{vi:?}").contains("available_versions"));
    }

    #[test]
    fn encode_as_client_never_writes_server_only() {
        let p = TransportParameters {
            original_destination_connection_id: Some(cid(&[1])),
            stateless_reset_token: Some(ResetToken([1; 16])),
            preferred_address: Some(PreferredAddress {
                ipv4: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1),
                ipv6: SocketAddrV6::new(Ipv6Addr::LOCALHOST, 1, 0, 0),
                connection_id: cid(&[2]),
                stateless_reset_token: ResetToken([2; 16]),
            }),
            retry_source_connection_id: Some(cid(&[3])),
            ..Default::default()
        };
        assert!(encode_vec(&p, Role::Client).is_empty());
        let server = encode_vec(&p, Role::Server);
        assert_eq!(decode_ok(&server, Role::Server), p);
        // And `validate` says a client must not hold them.
        assert!(p.validate(Role::Client).is_err());
        assert!(p.validate(Role::Server).is_ok());
    }

    #[test]
    fn encode_fails_cleanly_on_short_buffer() {
        let p = TransportParameters { initial_max_data: 1 << 20, grease_quic_bit: true, ..Default::default() };
        let need = p.encoded_len(Role::Client);
        assert_eq!(need, 6 + 3);
        let mut buf = vec![0u8; need - 1];
        let mut w = Writer::new(&mut buf);
        assert_eq!(p.encode(&mut w, Role::Client), Err(BufferTooShort));
        assert_eq!(w.len(), 0, "nothing written on failure");
        // A value that is not a varint is reported, not panicked on.
        let bad = TransportParameters { max_idle_timeout: 1 << 62, ..Default::default() };
        assert!(bad.validate(Role::Client).is_err());
        let mut buf = [0u8; 64];
        let mut w = Writer::new(&mut buf);
        assert_eq!(bad.encode(&mut w, Role::Client), Err(BufferTooShort));
    }

    #[test]
    fn grease_parameter_is_reserved_and_ignored() {
        let p = TransportParameters { initial_max_data: 1000, initial_source_connection_id: Some(cid(&[7; 8])), ..Default::default() };
        let plain = encode_vec(&p, Role::Client);
        let mut ids = std::collections::BTreeSet::new();
        for seed in 0..200u64 {
            let len = p.encoded_len_with_grease(Role::Client, seed);
            let mut buf = vec![0u8; len];
            let mut w = Writer::new(&mut buf);
            p.encode_with_grease(&mut w, Role::Client, seed).unwrap();
            assert_eq!(w.len(), len);
            // The plain encoding comes first, then one reserved parameter.
            assert_eq!(&buf[..plain.len()], &plain[..]);
            let mut r = Reader::new(&buf[plain.len()..]);
            let gid = r.varint().unwrap();
            let gval = r.varint_prefixed().unwrap();
            assert!(r.is_empty());
            assert!(id::is_reserved(gid), "{gid} is not 31N+27");
            assert!(gval.len() <= 8);
            ids.insert(gid);
            assert_eq!(decode_ok(&buf, Role::Client), p);
            assert_eq!(decode_ok(&buf, Role::Server), p);
            // Same seed, same bytes.
            let mut again = vec![0u8; len];
            p.encode_with_grease(&mut Writer::new(&mut again), Role::Client, seed).unwrap();
            assert_eq!(again, buf);
        }
        assert!(ids.len() > 150, "grease ids vary with the seed: {}", ids.len());
    }

    fn server_params(odcid: &[u8], iscid: &[u8], rscid: Option<&[u8]>) -> TransportParameters {
        TransportParameters {
            original_destination_connection_id: Some(cid(odcid)),
            initial_source_connection_id: Some(cid(iscid)),
            retry_source_connection_id: rscid.map(cid),
            ..Default::default()
        }
    }

    #[test]
    fn check_cids_rfc9000_7_3() {
        // Names follow the figures of RFC 9000 §7.3: client picks S1 and C1, the
        // Retry carries S2, the server's Initial S3.
        let (s1, s2, s3, c1) = (cid(&[0x51; 8]), cid(&[0x52; 8]), cid(&[0x53; 8]), cid(&[0xc1; 8]));
        let code = |r: Result<(), Error>| r.unwrap_err().code;
        let tpe = TransportErrorCode::TRANSPORT_PARAMETER_ERROR;

        // The server checks the client's parameters.
        let client = TransportParameters { initial_source_connection_id: Some(c1), ..Default::default() };
        client.check_cids(Role::Client, &c1, None, None).unwrap();
        assert_eq!(code(client.check_cids(Role::Client, &s1, None, None)), tpe);
        assert_eq!(code(TransportParameters::default().check_cids(Role::Client, &c1, None, None)), tpe);
        let bad_client = TransportParameters { retry_source_connection_id: Some(s2), ..client.clone() };
        assert_eq!(code(bad_client.check_cids(Role::Client, &c1, None, None)), tpe);

        // The client checks the server's, without Retry.
        let server = server_params(&s1, &s3, None);
        server.check_cids(Role::Server, &s3, Some(&s1), None).unwrap();
        assert_eq!(code(server.check_cids(Role::Server, &s1, Some(&s1), None)), tpe, "wrong iscid");
        assert_eq!(code(server.check_cids(Role::Server, &s3, Some(&s2), None)), tpe, "wrong odcid");
        assert_eq!(code(server.check_cids(Role::Server, &s3, None, None)), tpe, "odcid unknown");
        assert_eq!(code(server.check_cids(Role::Server, &s3, Some(&s1), Some(&s2))), tpe, "rscid missing after Retry");
        let no_odcid = TransportParameters { original_destination_connection_id: None, ..server.clone() };
        assert_eq!(code(no_odcid.check_cids(Role::Server, &s3, Some(&s1), None)), tpe);
        let no_iscid = TransportParameters { initial_source_connection_id: None, ..server.clone() };
        assert_eq!(code(no_iscid.check_cids(Role::Server, &s3, Some(&s1), None)), tpe);

        // With Retry.
        let server = server_params(&s1, &s3, Some(&s2));
        server.check_cids(Role::Server, &s3, Some(&s1), Some(&s2)).unwrap();
        assert_eq!(code(server.check_cids(Role::Server, &s3, Some(&s1), None)), tpe, "rscid without Retry");
        assert_eq!(code(server.check_cids(Role::Server, &s3, Some(&s1), Some(&s3))), tpe, "rscid mismatch");
        assert_eq!(code(server.check_cids(Role::Server, &s3, Some(&s2), Some(&s2))), tpe, "odcid is the pre-Retry DCID");

        // Zero-length CIDs are values like any other (RFC 9000 §7.3).
        let empty = ConnectionId::EMPTY;
        let server = server_params(&s1, &[], None);
        server.check_cids(Role::Server, &empty, Some(&s1), None).unwrap();
        assert_eq!(code(server.check_cids(Role::Server, &s3, Some(&s1), None)), tpe);
    }

    #[test]
    fn role_peer() {
        assert_eq!(Role::Client.peer(), Role::Server);
        assert_eq!(Role::Server.peer(), Role::Client);
    }
}
