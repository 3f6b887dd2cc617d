//! Offline analysis of QUIC traces: the quic-interop-runner's pass/fail
//! checks, answered from the two pcaps our relay writes ([`crate::pcap`]),
//! so any peer can be judged from the outside as the runner does with
//! tshark.
//!
//! Pipeline:
//!
//! 1. [`Trace::load`] reads the client-side and the server-side pcap and
//!    gives every datagram a [`Direction`]. The first datagram of each
//!    trace is the client's (a server never speaks first, RFC 9000 §7), so
//!    its source is a client address and its destination a server address;
//!    later datagrams are classified by those address sets, which grow as
//!    the client's address changes (NAT rebinding, RFC 9000 §9.3) or the
//!    client moves to a preferred address (§9.6).
//! 2. Each trace is analyzed on its own (a *vantage*): datagrams are split
//!    into coalesced packets (§12.2); long headers give type, version and
//!    connection IDs; packets are grouped into connections by connection
//!    ID (§5.2), starting from the client's first Initial DCID.
//! 3. Initial packets are decrypted without keys (RFC 9001 §5.2; RFC 9369
//!    §3.3.1 for v2); the CRYPTO stream yields the ClientHello and the
//!    ServerHello (RFC 8446 §4.1.2, §4.1.3).
//! 4. With an NSS key log, Handshake, 0-RTT and 1-RTT packets are decrypted
//!    too (RFC 9001 §5.1), following key updates (§6), which gives the
//!    server's EncryptedExtensions and Certificate, the frames of every
//!    packet (PATH_CHALLENGE, ACK with ECN counts, NEW_CONNECTION_ID, ...)
//!    and the Key Phase bits.
//! 5. [`Report`] summarizes per connection and per trace; [`checks`] has
//!    one function per interop test case.
//!
//! Facts that need keys are `None` when no key log was given (or it has no
//! secrets for a connection): unknown, never guessed. Malformed or
//! corrupted packets never panic; they fail to parse or to authenticate and
//! are counted.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use quic_core::crypto::{verify_retry_integrity, CipherSuite, DirectionalKeys, HeaderProtectionKey, Keys, PacketKey, TrafficSecret};
use quic_core::frame::{Frame, FrameIter, PATH_DATA_LEN};
use quic_core::packet::header::KEY_PHASE_BIT;
use quic_core::packet::{number, CoalescedPackets, HeaderError, LongType, PacketType, ProtectedHeader};
use quic_core::transport_params::{Role, TransportParameters};
use quic_core::{ConnectionId, Version};

use crate::pcap::{self, Record};

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why a trace could not be loaded. Malformed *content* is never an error:
/// it is counted in the report.
#[derive(Debug)]
pub enum AnalyzeError {
    /// A pcap file could not be read, or is not a raw-IP pcap.
    Pcap { path: PathBuf, source: io::Error },
    /// The key log file could not be read.
    KeyLog { path: PathBuf, source: io::Error },
}

impl fmt::Display for AnalyzeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnalyzeError::Pcap { path, source } => write!(f, "{}: {source}", path.display()),
            AnalyzeError::KeyLog { path, source } => write!(f, "key log {}: {source}", path.display()),
        }
    }
}

impl std::error::Error for AnalyzeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AnalyzeError::Pcap { source, .. } | AnalyzeError::KeyLog { source, .. } => Some(source),
        }
    }
}

// ---------------------------------------------------------------------------
// Key log
// ---------------------------------------------------------------------------

/// The TLS 1.3 secrets of one handshake, from an NSS key log. QUIC uses
/// them as its packet protection secrets (RFC 9001 §5.1): handshake
/// secrets for Handshake packets, the first application traffic secrets
/// for 1-RTT, the early traffic secret for 0-RTT.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TlsSecrets {
    /// `CLIENT_EARLY_TRAFFIC_SECRET` (0-RTT).
    pub client_early: Option<Vec<u8>>,
    /// `CLIENT_HANDSHAKE_TRAFFIC_SECRET`.
    pub client_handshake: Option<Vec<u8>>,
    /// `SERVER_HANDSHAKE_TRAFFIC_SECRET`.
    pub server_handshake: Option<Vec<u8>>,
    /// `CLIENT_TRAFFIC_SECRET_0` (1-RTT, generation 0).
    pub client_traffic: Option<Vec<u8>>,
    /// `SERVER_TRAFFIC_SECRET_0`.
    pub server_traffic: Option<Vec<u8>>,
}

impl TlsSecrets {
    fn handshake(&self, sender: Peer) -> Option<&[u8]> {
        match sender {
            Peer::Client => self.client_handshake.as_deref(),
            Peer::Server => self.server_handshake.as_deref(),
        }
    }

    fn traffic(&self, sender: Peer) -> Option<&[u8]> {
        match sender {
            Peer::Client => self.client_traffic.as_deref(),
            Peer::Server => self.server_traffic.as_deref(),
        }
    }
}

impl fmt::Debug for TlsSecrets {
    /// Says which secrets are present, never their bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSecrets")
            .field("client_early", &self.client_early.is_some())
            .field("client_handshake", &self.client_handshake.is_some())
            .field("server_handshake", &self.server_handshake.is_some())
            .field("client_traffic", &self.client_traffic.is_some())
            .field("server_traffic", &self.server_traffic.is_some())
            .finish()
    }
}

/// An NSS key log (the `SSLKEYLOGFILE` format): lines
/// `LABEL <client_random hex> <secret hex>`, matched to connections by the
/// ClientHello's random (RFC 8446 §4.1.2). Both endpoints may write the
/// same lines; the first occurrence of a label wins.
#[derive(Clone, Default)]
pub struct KeyLog {
    by_random: HashMap<[u8; 32], TlsSecrets>,
    malformed_lines: usize,
}

impl fmt::Debug for KeyLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyLog").field("handshakes", &self.by_random.len()).field("malformed_lines", &self.malformed_lines).finish()
    }
}

impl KeyLog {
    /// Parses key log text. Unknown labels (`EXPORTER_SECRET`, TLS 1.2's
    /// `CLIENT_RANDOM`) and comments are skipped; lines that do not parse
    /// are counted in [`KeyLog::malformed_lines`].
    pub fn parse(text: &str) -> KeyLog {
        let mut log = KeyLog::default();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (Some(label), Some(random), Some(secret), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
                log.malformed_lines += 1;
                continue;
            };
            let parsed = hex::decode(random).ok().and_then(|r| <[u8; 32]>::try_from(r).ok()).zip(hex::decode(secret).ok().filter(|s| !s.is_empty()));
            let Some((random, secret)) = parsed else {
                log.malformed_lines += 1;
                continue;
            };
            let entry = log.by_random.entry(random).or_default();
            let slot = match label {
                "CLIENT_EARLY_TRAFFIC_SECRET" => &mut entry.client_early,
                "CLIENT_HANDSHAKE_TRAFFIC_SECRET" => &mut entry.client_handshake,
                "SERVER_HANDSHAKE_TRAFFIC_SECRET" => &mut entry.server_handshake,
                "CLIENT_TRAFFIC_SECRET_0" => &mut entry.client_traffic,
                "SERVER_TRAFFIC_SECRET_0" => &mut entry.server_traffic,
                _ => continue,
            };
            slot.get_or_insert(secret);
        }
        log.by_random.retain(|_, s| *s != TlsSecrets::default());
        log
    }

    /// Reads and parses a key log file.
    pub fn load(path: &Path) -> Result<KeyLog, AnalyzeError> {
        std::fs::read(path).map(|b| KeyLog::parse(&String::from_utf8_lossy(&b))).map_err(|source| AnalyzeError::KeyLog { path: path.into(), source })
    }

    /// The secrets logged for the handshake with this ClientHello random.
    pub fn secrets(&self, client_random: &[u8; 32]) -> Option<&TlsSecrets> {
        self.by_random.get(client_random)
    }

    /// Whether any `SERVER_HANDSHAKE_TRAFFIC_SECRET` is present: the
    /// runner's test for a usable key log (see the spec's "[keys]").
    pub fn has_server_handshake_secret(&self) -> bool {
        self.by_random.values().any(|s| s.server_handshake.is_some())
    }

    /// Handshakes with at least one secret.
    pub fn len(&self) -> usize {
        self.by_random.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_random.is_empty()
    }

    /// Lines that were neither comments nor `LABEL random secret`.
    pub fn malformed_lines(&self) -> usize {
        self.malformed_lines
    }
}

// ---------------------------------------------------------------------------
// Traces
// ---------------------------------------------------------------------------

/// One of the two endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Peer {
    Client,
    Server,
}

impl Peer {
    fn idx(self) -> usize {
        match self {
            Peer::Client => 0,
            Peer::Server => 1,
        }
    }
}

/// Which way a datagram went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    ClientToServer,
    ServerToClient,
}

impl Direction {
    /// The endpoint that sent datagrams going this way.
    pub fn sender(self) -> Peer {
        match self {
            Direction::ClientToServer => Peer::Client,
            Direction::ServerToClient => Peer::Server,
        }
    }
}

/// Where a trace was recorded: at the client's or at the server's side of
/// the relay. Datagrams a side *sends* are complete in its own trace;
/// datagrams it *receives* are what survived the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Vantage {
    Client,
    Server,
}

/// A UDP datagram of a trace, with its direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    pub time: SystemTime,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// The two ECN bits of the IP header (0 Not-ECT, 1 ECT(1), 2 ECT(0), 3 CE).
    pub ecn: u8,
    pub payload: Vec<u8>,
    pub direction: Direction,
}

/// The two traces of one test run, classified, plus the key log.
#[derive(Debug, Clone)]
pub struct Trace {
    /// Recorded at the client's side, sorted by time.
    pub client_side: Vec<Datagram>,
    /// Recorded at the server's side, sorted by time.
    pub server_side: Vec<Datagram>,
    /// Datagrams of each side (client, server) whose direction could not
    /// be told (neither address nor port known); they are left out.
    pub unclassified: [usize; 2],
    pub keylog: Option<KeyLog>,
}

impl Trace {
    /// Reads both pcaps (and the key log, if any) and classifies every
    /// datagram.
    pub fn load(client_pcap: &Path, server_pcap: &Path, keylog: Option<&Path>) -> Result<Trace, AnalyzeError> {
        let read = |p: &Path| pcap::read(p).map_err(|source| AnalyzeError::Pcap { path: p.into(), source });
        let client = read(client_pcap)?;
        let server = read(server_pcap)?;
        let keylog = keylog.map(KeyLog::load).transpose()?;
        Ok(Trace::from_records(client, server, keylog))
    }

    /// As [`Trace::load`], from records already in memory.
    pub fn from_records(client_side: Vec<Record>, server_side: Vec<Record>, keylog: Option<KeyLog>) -> Trace {
        let (client_side, uc) = classify(client_side);
        let (server_side, us) = classify(server_side);
        Trace { client_side, server_side, unclassified: [uc, us], keylog }
    }

    /// Analyzes both traces.
    pub fn report(&self) -> Report {
        let keylog = self.keylog.as_ref();
        let client = analyze_vantage(Vantage::Client, &self.client_side, keylog, self.unclassified[0]);
        let server = analyze_vantage(Vantage::Server, &self.server_side, keylog, self.unclassified[1]);
        build_report(keylog, client, server)
    }
}

/// Sorts records by time and gives each a direction (see the module
/// documentation). Returns the datagrams and how many were left out.
fn classify(mut records: Vec<Record>) -> (Vec<Datagram>, usize) {
    records.sort_by_key(|r| r.time);
    let mut clients: HashSet<SocketAddr> = HashSet::new();
    let mut servers: HashSet<SocketAddr> = HashSet::new();
    let mut server_ports: HashSet<u16> = HashSet::new();
    if let Some(first) = records.first() {
        clients.insert(first.src);
        servers.insert(first.dst);
        server_ports.insert(first.dst.port());
    }
    let mut out = Vec::with_capacity(records.len());
    let mut unclassified = 0;
    for r in records {
        let direction = if clients.contains(&r.src) || servers.contains(&r.dst) {
            Direction::ClientToServer
        } else if servers.contains(&r.src) || clients.contains(&r.dst) {
            Direction::ServerToClient
        } else if server_ports.contains(&r.dst.port()) {
            Direction::ClientToServer
        } else if server_ports.contains(&r.src.port()) {
            Direction::ServerToClient
        } else {
            unclassified += 1;
            continue;
        };
        match direction {
            Direction::ClientToServer => {
                clients.insert(r.src);
                servers.insert(r.dst);
            }
            Direction::ServerToClient => {
                servers.insert(r.src);
                clients.insert(r.dst);
            }
        }
        out.push(Datagram { time: r.time, src: r.src, dst: r.dst, ecn: r.ecn, payload: r.payload, direction });
    }
    (out, unclassified)
}

// ---------------------------------------------------------------------------
// Report types
// ---------------------------------------------------------------------------

/// A parsed ClientHello (RFC 8446 §4.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHelloInfo {
    pub random: [u8; 32],
    /// Offered cipher suites in order, GREASE values (RFC 8701) included.
    pub cipher_suites: Vec<u16>,
    /// The quic_transport_parameters extension (0x39, RFC 9001 §8.2),
    /// decoded; `version_information` (RFC 9368 §3) is in it.
    pub transport_params: Option<TransportParameters>,
    /// Why the extension did not decode, when present but invalid.
    pub transport_params_error: Option<String>,
    /// ALPN protocols offered (RFC 7301).
    pub alpn: Vec<Vec<u8>>,
    /// server_name (RFC 6066 §3), when a host name.
    pub server_name: Option<String>,
    /// A pre_shared_key extension: the client tries to resume (RFC 8446 §4.2.11).
    pub offers_psk: bool,
    /// An early_data extension: the client sends 0-RTT (RFC 8446 §4.2.10).
    pub offers_early_data: bool,
}

/// A parsed ServerHello (RFC 8446 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerHelloInfo {
    pub cipher_suite: u16,
    /// The server accepted a PSK (pre_shared_key in the ServerHello): a
    /// resumed handshake.
    pub psk_accepted: bool,
}

/// Retry facts of one connection (RFC 9000 §8.1.2, §17.2.5).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RetryReport {
    /// Retry packets seen for this connection.
    pub count: usize,
    /// Their tokens.
    pub tokens: Vec<Vec<u8>>,
    /// Whether every Retry's integrity tag verified (RFC 9001 §5.8).
    pub integrity_ok: bool,
    /// A later client Initial carried one of the tokens.
    pub token_echoed: bool,
    /// Highest client Initial packet number before the first Retry.
    pub highest_client_pn_before: Option<u64>,
    /// Packet number of the first client Initial carrying a Retry token.
    /// RFC 9000 §17.2.5.3: the client must not reset its packet numbers,
    /// so this exceeds `highest_client_pn_before`.
    pub first_client_pn_with_token: Option<u64>,
}

/// Key Phase bits of one endpoint's authenticated 1-RTT packets
/// (RFC 9001 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyPhases {
    pub phase0_packets: u64,
    pub phase1_packets: u64,
    /// Key updates the sender went through (generation of its newest keys).
    pub max_generation: u64,
}

/// Facts about one QUIC connection seen from one vantage point.
///
/// "Client" and "server" fields are about what that endpoint sent. Fields
/// that need the key log are `None` when it lacks this connection's
/// secrets.
#[derive(Debug, Clone)]
pub struct ConnectionReport {
    /// DCID of the client's first Initial (RFC 9000 §7.2): the connection's name.
    pub odcid: ConnectionId,
    /// SCID of the client's first Initial.
    pub client_scid: ConnectionId,
    /// SCIDs of the server's authenticated Initial packets.
    pub server_scids: Vec<ConnectionId>,
    pub first_seen: SystemTime,
    /// Long-header versions seen per packet type and sender.
    pub client_initial_versions: Vec<Version>,
    pub server_initial_versions: Vec<Version>,
    pub client_handshake_versions: Vec<Version>,
    pub server_handshake_versions: Vec<Version>,
    pub zero_rtt_versions: Vec<Version>,
    pub retry: Option<RetryReport>,
    /// Client Initial packets that carry the start of a ClientHello, as the
    /// runner counts them for longrtt (retransmissions included).
    pub client_hello_packets: usize,
    /// Every distinct ClientHello message of the connection (two after a
    /// HelloRetryRequest).
    pub client_hellos: Vec<ClientHelloInfo>,
    pub server_hello: Option<ServerHelloInfo>,
    /// The server sent a HelloRetryRequest (RFC 8446 §4.1.4).
    pub hello_retry_request: bool,
    /// The key log has secrets for this connection's client random.
    pub keys_in_keylog: bool,
    /// Some(true): the server sent a Certificate message (TLS type 11);
    /// Some(false): its Handshake flight reached Finished without one (a
    /// resumed handshake); None: unknown (no keys, or flight incomplete).
    pub server_certificate: Option<bool>,
    /// From the server's EncryptedExtensions (RFC 9001 §8.2).
    pub server_transport_params: Option<TransportParameters>,
    pub server_transport_params_error: Option<String>,
    /// The server accepted 0-RTT (early_data in EncryptedExtensions).
    pub server_accepted_early_data: Option<bool>,
    /// Highest offset + length of the server's Handshake CRYPTO frames.
    pub server_handshake_crypto_bytes: Option<u64>,
    pub client_0rtt_packets: u64,
    /// Sum of the client's 0-RTT payload sizes: decrypted plaintext when
    /// `client_0rtt_decrypted`, else the Length fields (packet number,
    /// payload and tag; what the runner falls back to).
    pub client_0rtt_bytes: u64,
    pub client_0rtt_decrypted: bool,
    pub client_1rtt_packets: u64,
    /// Decrypted 1-RTT payload bytes the client sent; None unless every
    /// client 1-RTT packet of the connection was decrypted.
    pub client_1rtt_bytes: Option<u64>,
    pub server_1rtt_packets: u64,
    pub server_1rtt_bytes: Option<u64>,
    /// STREAM frame data bytes (decrypted packets only), client and server.
    pub client_stream_bytes: u64,
    pub server_stream_bytes: u64,
    /// Key phases of the authenticated 1-RTT packets each side sent; None
    /// if none of them was decrypted.
    pub client_key_phases: Option<KeyPhases>,
    pub server_key_phases: Option<KeyPhases>,
    /// An ACK frame with ECN counts (type 0x03, RFC 9000 §19.3.2) was sent.
    pub client_sent_ack_ecn: bool,
    pub server_sent_ack_ecn: bool,
    /// PATH_CHALLENGE / PATH_RESPONSE data each side sent (RFC 9000 §8.2).
    pub client_path_challenges: Vec<[u8; PATH_DATA_LEN]>,
    pub server_path_challenges: Vec<[u8; PATH_DATA_LEN]>,
    pub client_path_responses: Vec<[u8; PATH_DATA_LEN]>,
    pub server_path_responses: Vec<[u8; PATH_DATA_LEN]>,
    /// NEW_CONNECTION_ID frames each side sent.
    pub client_new_cids: Vec<ConnectionId>,
    pub server_new_cids: Vec<ConnectionId>,
    /// HANDSHAKE_DONE seen (RFC 9000 §19.20).
    pub handshake_confirmed: bool,
    /// First CONNECTION_CLOSE seen: (sender, error code, reason).
    pub close: Option<(Peer, u64, String)>,
    /// Packets of this connection whose protection did not verify (a
    /// corrupted packet, or wrong keys).
    pub undecryptable_packets: u64,
    /// Packets of this connection that could not be tried for want of keys.
    pub packets_without_keys: u64,
    /// Decrypted payloads with a malformed frame.
    pub frame_errors: u64,
}

/// Datagram counts by ECN codepoint (RFC 3168 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EcnMarks {
    pub not_ect: u64,
    pub ect0: u64,
    pub ect1: u64,
    pub ce: u64,
}

impl EcnMarks {
    fn add(&mut self, bits: u8) {
        match bits & 3 {
            0 => self.not_ect += 1,
            1 => self.ect1 += 1,
            2 => self.ect0 += 1,
            _ => self.ce += 1,
        }
    }
}

/// What one trace shows.
#[derive(Debug, Clone)]
pub struct VantageReport {
    pub vantage: Vantage,
    pub client_to_server_datagrams: usize,
    pub server_to_client_datagrams: usize,
    /// See [`Trace::unclassified`].
    pub unclassified_datagrams: usize,
    pub packets: u64,
    /// Datagrams whose packets could not be parsed (from that point on).
    pub unparseable_packets: u64,
    /// Long headers of a version other than v1/v2.
    pub unknown_version_packets: u64,
    pub version_negotiation_packets: u64,
    pub retry_packets: u64,
    /// Protected packets whose protection did not verify (corruption).
    pub undecryptable_packets: u64,
    /// Packets not tried for want of keys, by sender (client, server).
    pub packets_without_keys: [u64; 2],
    /// Packets no connection could be found for.
    pub unattributed_packets: u64,
    /// Distinct SCIDs of all server Initial packets, in order of
    /// appearance (the runner's handshake count: it looks at the header
    /// only).
    pub server_initial_scids: Vec<ConnectionId>,
    /// Versions of all long headers, by packet type and sender.
    pub client_initial_versions: Vec<Version>,
    pub server_initial_versions: Vec<Version>,
    pub client_handshake_versions: Vec<Version>,
    pub server_handshake_versions: Vec<Version>,
    pub zero_rtt_versions: Vec<Version>,
    /// Retry tokens of all Retry packets.
    pub retry_tokens: Vec<Vec<u8>>,
    /// 1-RTT (short header) packets each side sent (client, server).
    pub one_rtt_packets: [u64; 2],
    /// Bytes of the client's 1-RTT packets, headers and tags included: an
    /// upper bound of their payload that needs no keys.
    pub client_1rtt_packet_bytes: u64,
    /// Decrypted payload of the client's 1-RTT packets; None unless all
    /// of them were decrypted.
    pub client_1rtt_payload_bytes: Option<u64>,
    /// ECN marks of datagrams per direction.
    pub client_to_server_ecn: EcnMarks,
    pub server_to_client_ecn: EcnMarks,
    /// Datagrams sent over IPv4 per direction.
    pub client_to_server_ipv4: usize,
    pub server_to_client_ipv4: usize,
    /// Time of the first and the last server 1-RTT packet.
    pub server_1rtt_first: Option<SystemTime>,
    pub server_1rtt_last: Option<SystemTime>,
    pub connections: Vec<ConnectionReport>,
}

/// The first server datagram to a destination other than the previous
/// server datagram's (the runner's notion of a new path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathChange {
    pub time: SystemTime,
    pub from: SocketAddr,
    pub to: SocketAddr,
    /// The server never sent to `to` before.
    pub new_address: bool,
    /// Some(true): the datagram carries a PATH_CHALLENGE; Some(false): all
    /// its packets were decrypted and none does; None: unknown.
    pub path_challenge: Option<bool>,
}

/// The first client datagram on a new 4-tuple, at the client side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientPathChange {
    pub time: SystemTime,
    /// (source, destination) before and after.
    pub from: (SocketAddr, SocketAddr),
    pub to: (SocketAddr, SocketAddr),
    /// DCID of the first packet of the previous client datagram and of
    /// this one (None if it could not be told).
    pub previous_dcid: Option<ConnectionId>,
    pub dcid: Option<ConnectionId>,
}

/// A PATH_CHALLENGE the server sent (RFC 9000 §8.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeSent {
    pub data: [u8; PATH_DATA_LEN],
    pub to: SocketAddr,
    pub time: SystemTime,
}

/// Address changes and path validation (RFC 9000 §8.2, §9).
#[derive(Debug, Clone, Default)]
pub struct PathReport {
    /// Every client address seen at the server side, in order.
    pub client_addresses_at_server: Vec<SocketAddr>,
    /// Distinct destination ports / IPs of the server's datagrams.
    pub client_ports: Vec<u16>,
    pub client_ips: Vec<std::net::IpAddr>,
    /// Server side: each change of the server's destination.
    pub server_path_changes: Vec<PathChange>,
    /// Distinct PATH_CHALLENGEs the server sent (server side), with the
    /// destination of the first datagram carrying each.
    pub server_challenges: Vec<ChallengeSent>,
    /// Distinct PATH_RESPONSE data the client sent (client side).
    pub client_responses: Vec<[u8; PATH_DATA_LEN]>,
    /// Whether every 1-RTT packet the challenges and responses could be in
    /// was decrypted (server side for challenges, client side for
    /// responses); without it the lists may be incomplete.
    pub challenges_complete: bool,
    pub responses_complete: bool,
    /// Client side: each change of the client's 4-tuple.
    pub client_path_changes: Vec<ClientPathChange>,
}

/// The server's anti-amplification limit before address validation
/// (RFC 9000 §8.1) over the server-side trace: up to the first client
/// datagram carrying a Handshake packet (which validates the address,
/// §8.1), each server datagram is compared with the client datagrams
/// starting with an Initial received so far, by UDP payload bytes as the
/// runner counts them. (The runner ends the budget only at a datagram whose
/// *first* packet is a Handshake packet; a client coalescing its Initial
/// ACK in front of its only Handshake packets never gives it one.)
#[derive(Debug, Clone, Default)]
pub struct AmplificationReport {
    /// A client datagram carrying a Handshake packet reached the server.
    pub client_handshake_seen: bool,
    /// Client Initial datagram bytes (UDP payload) received before it.
    pub client_initial_bytes: u64,
    /// Server datagram bytes sent before it.
    pub server_bytes: u64,
    /// Highest ratio (server bytes so far) / (client Initial bytes so far),
    /// taken after each server datagram; infinite if the server sent before
    /// receiving an Initial. None if the server sent nothing.
    pub max_factor: Option<f64>,
    /// Server datagrams that took the total above 3× (the runner warns).
    pub datagrams_over_3x: usize,
    /// Server datagrams that took the total to 4× or more (the runner fails).
    pub datagrams_over_4x: usize,
    /// A Version Negotiation packet was seen (the runner fails).
    pub version_negotiation: bool,
    /// Datagrams whose first packet could not be parsed (the runner fails).
    pub undetermined_datagrams: usize,
    /// Highest server Handshake CRYPTO offset + length (server side, all
    /// connections); None without keys.
    pub server_handshake_crypto_bytes: Option<u64>,
}

/// Whether keys were available.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyStatus {
    /// A key log was given.
    pub given: bool,
    /// It holds a `SERVER_HANDSHAKE_TRAFFIC_SECRET`: the runner's [keys]
    /// checks run only then.
    pub usable: bool,
}

/// Everything the checks need, from both traces.
///
/// Trace-level fields take the vantage point the interop runner uses for
/// the check they serve (noted per field).
#[derive(Debug, Clone)]
pub struct Report {
    pub keys: KeyStatus,
    pub client_side: VantageReport,
    pub server_side: VantageReport,
    /// Distinct SCIDs of the server's Initial packets (server side).
    pub handshakes: usize,
    /// Versions of the server's Initials (server side).
    pub server_initial_versions: Vec<Version>,
    /// Versions of the client's Initials (client side).
    pub client_initial_versions: Vec<Version>,
    /// Versions of the client's Handshake packets (client side).
    pub client_handshake_versions: Vec<Version>,
    /// Versions of the server's Handshake packets (server side).
    pub server_handshake_versions: Vec<Version>,
    /// Retry packets (client side).
    pub retries: u64,
    /// ECN marks as sent: client→server at the client side,
    /// server→client at the server side.
    pub client_to_server_ecn: EcnMarks,
    pub server_to_client_ecn: EcnMarks,
    /// Some(true) if the client (client side) / the server (server side)
    /// sent an ACK frame with ECN counts; Some(false) if all its packets
    /// were decrypted and none did; None if unknown.
    pub client_sent_ack_ecn: Option<bool>,
    pub server_sent_ack_ecn: Option<bool>,
    pub paths: PathReport,
    pub amplification: AmplificationReport,
    /// Server datagrams sent over IPv4 (server side).
    pub server_ipv4_datagrams: usize,
    /// Time between the first and the last server 1-RTT packet at the
    /// client side (the runner's goodput measurement).
    pub server_1rtt_span: Option<Duration>,
}

impl Report {
    /// Goodput in kbit/s for `bytes` of file data, as the runner computes
    /// it: 8 × bytes ÷ [`Report::server_1rtt_span`].
    pub fn goodput_kbps(&self, bytes: u64) -> Option<f64> {
        let secs = self.server_1rtt_span?.as_secs_f64();
        (secs > 0.0).then(|| 8.0 * bytes as f64 / secs / 1000.0)
    }
}

// ---------------------------------------------------------------------------
// TLS handshake parsing (RFC 8446 §4)
// ---------------------------------------------------------------------------

/// TLS handshake message types (RFC 8446 §4).
mod hs {
    pub const CLIENT_HELLO: u8 = 1;
    pub const SERVER_HELLO: u8 = 2;
    pub const ENCRYPTED_EXTENSIONS: u8 = 8;
    pub const CERTIFICATE: u8 = 11;
    pub const FINISHED: u8 = 20;
}

/// TLS extension types (RFC 8446 §4.2, RFC 9001 §8.2).
mod ext {
    pub const SERVER_NAME: u16 = 0;
    pub const ALPN: u16 = 16;
    pub const PRE_SHARED_KEY: u16 = 41;
    pub const EARLY_DATA: u16 = 42;
    pub const QUIC_TRANSPORT_PARAMETERS: u16 = 0x39;
}

/// RFC 8446 §4.1.3: a ServerHello with this random is a HelloRetryRequest
/// (SHA-256 of "HelloRetryRequest").
const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91, 0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e,
    0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// A bounds-checked reader over TLS structures; every accessor returns
/// None past the end.
struct TlsReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> TlsReader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    fn u8(&mut self) -> Option<u8> {
        self.bytes(1)?.first().copied()
    }

    fn u16(&mut self) -> Option<u16> {
        let b = self.bytes(2)?;
        Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
    }

    /// `opaque x<0..2^8-1>`.
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = usize::from(self.u8()?);
        self.bytes(n)
    }

    /// `opaque x<0..2^16-1>`.
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = usize::from(self.u16()?);
        self.bytes(n)
    }

    fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }
}

/// The (type, data) pairs of an extensions block (RFC 8446 §4.2); stops at
/// the first malformed entry.
fn extensions(block: &[u8]) -> Vec<(u16, &[u8])> {
    let mut r = TlsReader::new(block);
    let mut out = Vec::new();
    while !r.is_empty() {
        let Some(ty) = r.u16() else { break };
        let Some(data) = r.vec16() else { break };
        out.push((ty, data));
    }
    out
}

fn decode_params(data: &[u8], sender: Role) -> (Option<TransportParameters>, Option<String>) {
    match TransportParameters::decode(data, sender) {
        Ok(p) => (Some(p), None),
        Err(e) => (None, Some(e.to_string())),
    }
}

fn parse_client_hello(body: &[u8]) -> Option<ClientHelloInfo> {
    let mut r = TlsReader::new(body);
    r.u16()?; // legacy_version
    let random: [u8; 32] = r.bytes(32)?.try_into().ok()?;
    r.vec8()?; // legacy_session_id
    let suites = r.vec16()?;
    r.vec8()?; // legacy_compression_methods
    let mut info = ClientHelloInfo {
        random,
        cipher_suites: suites.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect(),
        transport_params: None,
        transport_params_error: None,
        alpn: Vec::new(),
        server_name: None,
        offers_psk: false,
        offers_early_data: false,
    };
    let exts = if r.is_empty() { &[][..] } else { r.vec16()? };
    for (ty, data) in extensions(exts) {
        match ty {
            ext::QUIC_TRANSPORT_PARAMETERS => {
                (info.transport_params, info.transport_params_error) = decode_params(data, Role::Client);
            }
            ext::ALPN => {
                // RFC 7301 §3.1: ProtocolName protocol_name_list<2..2^16-1>.
                let mut list = TlsReader::new(data);
                if let Some(names) = list.vec16() {
                    let mut names = TlsReader::new(names);
                    while let Some(name) = names.vec8() {
                        info.alpn.push(name.to_vec());
                    }
                }
            }
            ext::SERVER_NAME => {
                // RFC 6066 §3: ServerNameList; type 0 is host_name.
                let mut list = TlsReader::new(data);
                if let Some(names) = list.vec16() {
                    let mut names = TlsReader::new(names);
                    while let (Some(kind), Some(name)) = (names.u8(), names.vec16()) {
                        if kind == 0 {
                            info.server_name = Some(String::from_utf8_lossy(name).into_owned());
                        }
                    }
                }
            }
            ext::PRE_SHARED_KEY => info.offers_psk = true,
            ext::EARLY_DATA => info.offers_early_data = true,
            _ => {}
        }
    }
    Some(info)
}

/// Parses a ServerHello; the flag says whether it is a HelloRetryRequest.
fn parse_server_hello(body: &[u8]) -> Option<(ServerHelloInfo, bool)> {
    let mut r = TlsReader::new(body);
    r.u16()?;
    let random = r.bytes(32)?;
    r.vec8()?;
    let cipher_suite = r.u16()?;
    r.u8()?;
    let exts = if r.is_empty() { &[][..] } else { r.vec16()? };
    let psk_accepted = extensions(exts).iter().any(|(ty, _)| *ty == ext::PRE_SHARED_KEY);
    Some((ServerHelloInfo { cipher_suite, psk_accepted }, random == HRR_RANDOM))
}

/// Reassembles one CRYPTO stream (RFC 9000 §19.6) and cuts it into TLS
/// handshake messages (RFC 8446 §4: type, 24-bit length, body).
#[derive(Default)]
struct CryptoStream {
    buf: Vec<u8>,
    /// Received byte ranges, sorted and merged.
    ranges: Vec<(u64, u64)>,
    /// Where the next unparsed message starts.
    parsed_to: u64,
    /// Highest offset + length seen (frames past the cap included).
    max_end: u64,
}

/// Handshake flights are a few tens of kilobytes at most (the
/// amplificationlimit test's 9-certificate chain included); data beyond
/// this offset is counted but not buffered, which bounds what a hostile
/// trace can make us allocate per connection.
const MAX_CRYPTO_STREAM: u64 = 256 << 10;

impl CryptoStream {
    /// Adds a CRYPTO frame; returns the handshake messages completed by it
    /// as (stream offset, type, body).
    fn insert(&mut self, offset: u64, data: &[u8]) -> Vec<(u64, u8, Vec<u8>)> {
        let end = offset.saturating_add(data.len() as u64);
        self.max_end = self.max_end.max(end);
        if end > MAX_CRYPTO_STREAM || data.is_empty() {
            return Vec::new();
        }
        let (start, stop) = (offset as usize, end as usize);
        if self.buf.len() < stop {
            self.buf.resize(stop, 0);
        }
        if let Some(dst) = self.buf.get_mut(start..stop) {
            dst.copy_from_slice(data);
        }
        self.add_range(offset, end);
        self.parse()
    }

    fn add_range(&mut self, start: u64, end: u64) {
        self.ranges.push((start, end));
        self.ranges.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(self.ranges.len());
        for &(s, e) in &self.ranges {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        self.ranges = merged;
    }

    /// Bytes available from offset 0 without a gap.
    fn contiguous(&self) -> u64 {
        match self.ranges.first() {
            Some(&(0, e)) => e,
            _ => 0,
        }
    }

    fn parse(&mut self) -> Vec<(u64, u8, Vec<u8>)> {
        let avail = self.contiguous() as usize;
        let mut out = Vec::new();
        loop {
            let at = self.parsed_to as usize;
            let Some(end_of_header) = at.checked_add(4).filter(|&e| e <= avail) else { break };
            let Some(&[ty, a, b, c]) = self.buf.get(at..end_of_header) else { break };
            let len = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
            let end = end_of_header + len;
            if end > avail {
                break;
            }
            let Some(body) = self.buf.get(end_of_header..end) else { break };
            out.push((self.parsed_to, ty, body.to_vec()));
            self.parsed_to = end as u64;
        }
        out
    }
}

// ---------------------------------------------------------------------------
// Packet protection helpers
// ---------------------------------------------------------------------------

/// Outcome of an attempt to remove packet protection.
enum Open<T> {
    Ok(T),
    /// Keys were tried and did not verify (RFC 9001 §5.5: discard).
    Failed,
    /// No keys to try.
    NoKeys,
}

/// Suites whose hash yields secrets of `len` bytes, the known one first.
fn candidate_suites(known: Option<CipherSuite>, len: usize) -> Vec<CipherSuite> {
    let all = [CipherSuite::Aes128Gcm, CipherSuite::ChaCha20Poly1305, CipherSuite::Aes256Gcm];
    match known {
        Some(s) if s.secret_len() == len => vec![s],
        _ => all.into_iter().filter(|s| s.secret_len() == len).collect(),
    }
}

/// Removes header and packet protection from a long-header packet
/// (RFC 9001 §5.3, §5.4) on a copy; returns the packet number and the
/// plaintext payload.
fn open_long(keys: &DirectionalKeys, pkt: &[u8], pn_offset: usize, largest: Option<u64>) -> Option<(u64, Vec<u8>)> {
    let mut buf = pkt.to_vec();
    let u = keys.unprotect(&mut buf, pn_offset, |t, len| number::decode(t, (len * 8) as u32, largest)).ok()?;
    let end = u.header_len.checked_add(u.payload_len)?;
    Some((u.packet_number, buf.get(u.header_len..end)?.to_vec()))
}

/// The 1-RTT keys of one direction: the header protection key, fixed for
/// the connection, and the AEAD keys of every generation reached so far
/// (RFC 9001 §6: each key update derives the next secret with "quic ku",
/// "quicv2 ku" for v2, which [`TrafficSecret::next`] does).
struct OneRtt {
    hp: HeaderProtectionKey,
    latest: TrafficSecret,
    keys: Vec<PacketKey>,
    /// Newest generation that opened a packet.
    current: u64,
}

impl OneRtt {
    fn new(suite: CipherSuite, version: Version, secret: &[u8]) -> Option<Self> {
        let latest = TrafficSecret::new(suite, version, secret).ok()?;
        let hp = latest.header_key().ok()?;
        let first = latest.packet_key().ok()?;
        Some(Self { hp, latest, keys: vec![first], current: 0 })
    }

    fn key(&mut self, generation: u64) -> Option<&PacketKey> {
        while (self.keys.len() as u64) <= generation {
            let next = self.latest.next().ok()?;
            self.keys.push(next.packet_key().ok()?);
            self.latest = next;
        }
        self.keys.get(usize::try_from(generation).ok()?)
    }
}

/// A decrypted 1-RTT packet.
struct ShortOpened {
    pn: u64,
    key_phase: bool,
    generation: u64,
    payload: Vec<u8>,
}

/// Opens a short-header packet: header protection first (it hides the Key
/// Phase bit, RFC 9001 §5.4.1), then the AEAD with the generation the bit
/// points to: the current one, the next (the peer updated, §6.3) or the
/// previous (a reordered packet, §6.5).
fn open_short(k: &mut OneRtt, pkt: &[u8], pn_offset: usize, largest: Option<u64>) -> Option<ShortOpened> {
    let mut buf = pkt.to_vec();
    let pn_len = k.hp.remove(&mut buf, pn_offset).ok()?;
    let key_phase = buf.first()? & KEY_PHASE_BIT != 0;
    let header_len = pn_offset.checked_add(pn_len)?;
    let truncated = number::read_truncated(buf.get(pn_offset..header_len)?);
    let pn = number::decode(truncated, (pn_len * 8) as u32, largest);
    let cur = k.current;
    let candidates = if (cur & 1 == 1) == key_phase { [Some(cur), cur.checked_sub(2)] } else { [Some(cur + 1), cur.checked_sub(1)] };
    for generation in candidates.into_iter().flatten() {
        let key = k.key(generation)?;
        let mut attempt = buf.clone();
        if header_len > attempt.len() {
            return None;
        }
        let (header, rest) = attempt.split_at_mut(header_len);
        if let Ok(n) = key.open_in_place(pn, header, rest) {
            k.current = k.current.max(generation);
            let payload = rest.get(..n)?.to_vec();
            return Some(ShortOpened { pn, key_phase, generation, payload });
        }
    }
    None
}

// ---------------------------------------------------------------------------
// Per-vantage analysis
// ---------------------------------------------------------------------------

/// Packet number spaces (RFC 9000 §12.3); 0-RTT and 1-RTT share one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Space {
    Initial,
    Handshake,
    App,
}

impl Space {
    fn idx(self) -> usize {
        match self {
            Space::Initial => 0,
            Space::Handshake => 1,
            Space::App => 2,
        }
    }
}

/// The kind of the first packet of a datagram (what the runner's
/// amplification check looks at).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FirstKind {
    Initial,
    ZeroRtt,
    Handshake,
    Retry,
    VersionNegotiation,
    Short,
    Invalid,
}

/// Per-datagram facts kept for the trace-level checks.
struct DgramInfo {
    time: SystemTime,
    src: SocketAddr,
    dst: SocketAddr,
    direction: Direction,
    size: usize,
    first: FirstKind,
    has_vn: bool,
    has_short: bool,
    /// Carries a Handshake packet (in any position).
    has_handshake: bool,
    /// Every protected packet of the datagram was decrypted.
    all_decrypted: bool,
    challenges: Vec<[u8; PATH_DATA_LEN]>,
    responses: Vec<[u8; PATH_DATA_LEN]>,
    first_dcid: Option<ConnectionId>,
}

type LevelKeys = Vec<(CipherSuite, DirectionalKeys)>;

/// Tracking and key state of one connection.
struct Conn {
    report: ConnectionReport,
    /// DCIDs the Initial keys may derive from: the ODCID, then each Retry
    /// SCID (RFC 9001 §5.2).
    key_dcids: Vec<ConnectionId>,
    /// Largest packet number by sender and space, for decoding (RFC 9000 §A.3).
    largest_pn: [[Option<u64>; 3]; 2],
    /// CRYPTO streams by sender, Initial and Handshake.
    crypto: [[CryptoStream; 2]; 2],
    /// CRYPTO ranges of each client Initial packet that had any.
    client_initial_crypto: Vec<Vec<(u64, u64)>>,
    /// Offsets of ClientHello messages in the client's Initial stream.
    client_hello_offsets: Vec<u64>,
    client_random: Option<[u8; 32]>,
    /// Cipher suite of the handshake (ServerHello, or the one that worked).
    suite: Option<CipherSuite>,
    /// Version of the Handshake packets: the negotiated one (RFC 9368 §2).
    negotiated: Option<Version>,
    hs_keys: HashMap<(Peer, Version), LevelKeys>,
    zero_rtt_keys: HashMap<Version, LevelKeys>,
    zero_rtt_suite: Option<CipherSuite>,
    /// 1-RTT key candidates by sender; one once a packet opened.
    one_rtt: [Option<Vec<OneRtt>>; 2],
    /// Lengths of the CIDs each side issued (used as DCIDs by the other).
    cid_lens: [BTreeSet<usize>; 2],
    client_initial_max_pn: Option<u64>,
    server_cert_seen: bool,
    /// 1-RTT / 0-RTT packets that could not be decrypted, by sender.
    one_rtt_undecrypted: [u64; 2],
    one_rtt_payload: [u64; 2],
    zero_rtt_undecrypted: u64,
    zero_rtt_plain: u64,
    zero_rtt_lengths: u64,
    /// Server Handshake packets decrypted.
    server_hs_decrypted: bool,
}

impl Conn {
    fn new(odcid: ConnectionId, client_scid: ConnectionId, time: SystemTime) -> Self {
        let mut cid_lens: [BTreeSet<usize>; 2] = Default::default();
        cid_lens[0].insert(client_scid.len());
        Conn {
            report: ConnectionReport {
                odcid,
                client_scid,
                server_scids: Vec::new(),
                first_seen: time,
                client_initial_versions: Vec::new(),
                server_initial_versions: Vec::new(),
                client_handshake_versions: Vec::new(),
                server_handshake_versions: Vec::new(),
                zero_rtt_versions: Vec::new(),
                retry: None,
                client_hello_packets: 0,
                client_hellos: Vec::new(),
                server_hello: None,
                hello_retry_request: false,
                keys_in_keylog: false,
                server_certificate: None,
                server_transport_params: None,
                server_transport_params_error: None,
                server_accepted_early_data: None,
                server_handshake_crypto_bytes: None,
                client_0rtt_packets: 0,
                client_0rtt_bytes: 0,
                client_0rtt_decrypted: true,
                client_1rtt_packets: 0,
                client_1rtt_bytes: None,
                server_1rtt_packets: 0,
                server_1rtt_bytes: None,
                client_stream_bytes: 0,
                server_stream_bytes: 0,
                client_key_phases: None,
                server_key_phases: None,
                client_sent_ack_ecn: false,
                server_sent_ack_ecn: false,
                client_path_challenges: Vec::new(),
                server_path_challenges: Vec::new(),
                client_path_responses: Vec::new(),
                server_path_responses: Vec::new(),
                client_new_cids: Vec::new(),
                server_new_cids: Vec::new(),
                handshake_confirmed: false,
                close: None,
                undecryptable_packets: 0,
                packets_without_keys: 0,
                frame_errors: 0,
            },
            key_dcids: vec![odcid],
            largest_pn: [[None; 3]; 2],
            crypto: Default::default(),
            client_initial_crypto: Vec::new(),
            client_hello_offsets: Vec::new(),
            client_random: None,
            suite: None,
            negotiated: None,
            hs_keys: HashMap::new(),
            zero_rtt_keys: HashMap::new(),
            zero_rtt_suite: None,
            one_rtt: [None, None],
            cid_lens,
            client_initial_max_pn: None,
            server_cert_seen: false,
            one_rtt_undecrypted: [0; 2],
            one_rtt_payload: [0; 2],
            zero_rtt_undecrypted: 0,
            zero_rtt_plain: 0,
            zero_rtt_lengths: 0,
            server_hs_decrypted: false,
        }
    }

    fn note_pn(&mut self, sender: Peer, space: Space, pn: u64) {
        let slot = &mut self.largest_pn[sender.idx()][space.idx()];
        *slot = Some(slot.map_or(pn, |l| l.max(pn)));
    }

    fn secrets<'k>(&self, keylog: Option<&'k KeyLog>) -> Option<&'k TlsSecrets> {
        keylog?.secrets(self.client_random.as_ref()?)
    }
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

/// Frame facts gathered while walking one datagram.
#[derive(Default)]
struct DgramAcc {
    all_decrypted: bool,
    challenges: Vec<[u8; PATH_DATA_LEN]>,
    responses: Vec<[u8; PATH_DATA_LEN]>,
    first_dcid: Option<ConnectionId>,
    has_short: bool,
}

/// Analysis state of one trace.
struct Engine<'k> {
    keylog: Option<&'k KeyLog>,
    conns: Vec<Conn>,
    /// DCIDs of client→server packets (server-issued CIDs, and each
    /// connection's ODCID) → connection.
    to_server: HashMap<ConnectionId, usize>,
    /// DCIDs of server→client packets (client-issued CIDs) → connection.
    to_client: HashMap<ConnectionId, usize>,
    /// Connections whose client uses a zero-length CID, by (client, server)
    /// address: server→client packets then carry no CID at all.
    empty_client_cid: HashMap<(SocketAddr, SocketAddr), usize>,
    /// CID lengths issued by each side, over all connections.
    lens: [BTreeSet<usize>; 2],
    /// Initial keys by (version, DCID); None when they cannot be derived.
    initial_keys: HashMap<(Version, ConnectionId), Option<Keys>>,
    dgrams: Vec<DgramInfo>,
    v: VantageCounters,
}

#[derive(Default)]
struct VantageCounters {
    packets: u64,
    unparseable: u64,
    unknown_version: u64,
    vn: u64,
    retries: u64,
    undecryptable: u64,
    without_keys: [u64; 2],
    unattributed: u64,
    server_initial_scids: Vec<ConnectionId>,
    versions: [Vec<Version>; 5],
    retry_tokens: Vec<Vec<u8>>,
    one_rtt_packets: [u64; 2],
    client_1rtt_packet_bytes: u64,
}

/// Indexes into `VantageCounters::versions`.
const V_CLIENT_INITIAL: usize = 0;
const V_SERVER_INITIAL: usize = 1;
const V_CLIENT_HANDSHAKE: usize = 2;
const V_SERVER_HANDSHAKE: usize = 3;
const V_ZERO_RTT: usize = 4;

impl<'k> Engine<'k> {
    fn new(keylog: Option<&'k KeyLog>) -> Self {
        Engine {
            keylog,
            conns: Vec::new(),
            to_server: HashMap::new(),
            to_client: HashMap::new(),
            empty_client_cid: HashMap::new(),
            lens: Default::default(),
            initial_keys: HashMap::new(),
            dgrams: Vec::new(),
            v: VantageCounters::default(),
        }
    }

    fn datagram(&mut self, d: &Datagram) {
        let mut acc = DgramAcc { all_decrypted: true, ..DgramAcc::default() };
        let mut first = None;
        let mut has_vn = false;
        let mut has_handshake = false;
        for item in CoalescedPackets::new(&d.payload, 0) {
            self.v.packets += 1;
            let (start, h) = match item {
                Ok(x) => x,
                Err(e) => {
                    if matches!(e, HeaderError::UnsupportedVersion { .. }) {
                        self.v.unknown_version += 1;
                    } else {
                        self.v.unparseable += 1;
                    }
                    first.get_or_insert(FirstKind::Invalid);
                    break;
                }
            };
            let Some(pkt) = start.checked_add(h.len).and_then(|end| d.payload.get(start..end)) else {
                self.v.unparseable += 1;
                break;
            };
            let kind = match h.ty {
                PacketType::VersionNegotiation => {
                    self.v.vn += 1;
                    has_vn = true;
                    FirstKind::VersionNegotiation
                }
                PacketType::Long(LongType::Retry) => {
                    self.retry(d, pkt, &h);
                    FirstKind::Retry
                }
                PacketType::Long(ty) => {
                    if acc.first_dcid.is_none() {
                        acc.first_dcid = Some(h.dcid);
                    }
                    has_handshake |= ty == LongType::Handshake;
                    self.long(d, pkt, &h, ty, &mut acc);
                    match ty {
                        LongType::Initial => FirstKind::Initial,
                        LongType::ZeroRtt => FirstKind::ZeroRtt,
                        _ => FirstKind::Handshake,
                    }
                }
                PacketType::Short => {
                    acc.has_short = true;
                    self.short(d, pkt, &mut acc);
                    FirstKind::Short
                }
            };
            first.get_or_insert(kind);
        }
        self.dgrams.push(DgramInfo {
            time: d.time,
            src: d.src,
            dst: d.dst,
            direction: d.direction,
            size: d.payload.len(),
            first: first.unwrap_or(FirstKind::Invalid),
            has_vn,
            has_short: acc.has_short,
            has_handshake,
            all_decrypted: acc.all_decrypted,
            challenges: acc.challenges,
            responses: acc.responses,
            first_dcid: acc.first_dcid,
        });
    }

    /// The connection a long-header packet belongs to, by its DCID.
    fn lookup_long(&self, d: &Datagram, dcid: &ConnectionId) -> Option<usize> {
        match d.direction {
            Direction::ClientToServer => self.to_server.get(dcid).copied(),
            Direction::ServerToClient if dcid.is_empty() => self.empty_client_cid.get(&(d.dst, d.src)).copied(),
            Direction::ServerToClient => self.to_client.get(dcid).copied(),
        }
    }

    fn initial_keys(map: &mut HashMap<(Version, ConnectionId), Option<Keys>>, version: Version, dcid: ConnectionId) -> Option<&Keys> {
        map.entry((version, dcid)).or_insert_with(|| Keys::initial(version, &dcid, false).ok()).as_ref()
    }

    /// Opens an Initial packet with the keys of each candidate DCID,
    /// newest first (RFC 9001 §5.2; after a Retry, §17.2.5.2 of RFC 9000).
    fn open_initial(
        &mut self,
        dcids: &[ConnectionId],
        sender: Peer,
        version: Version,
        pkt: &[u8],
        pn_offset: usize,
        largest: Option<u64>,
    ) -> Option<(u64, Vec<u8>)> {
        for dcid in dcids.iter().rev() {
            let Some(keys) = Self::initial_keys(&mut self.initial_keys, version, *dcid) else { continue };
            // Keys::initial(.., is_server = false): local = client, remote = server.
            let k = match sender {
                Peer::Client => &keys.local,
                Peer::Server => &keys.remote,
            };
            if let Some(r) = open_long(k, pkt, pn_offset, largest) {
                return Some(r);
            }
        }
        None
    }

    /// Opens a Handshake or 0-RTT packet with key-log secrets, trying each
    /// cipher suite the secret's length allows until one works.
    fn open_secret_level(&mut self, ci: usize, sender: Peer, space: Space, version: Version, pkt: &[u8], pn_offset: usize) -> Open<(u64, Vec<u8>)> {
        let keylog = self.keylog;
        let Some(conn) = self.conns.get_mut(ci) else { return Open::NoKeys };
        let zero_rtt = space == Space::App;
        let secret = conn.secrets(keylog).and_then(|s| if zero_rtt { s.client_early.as_deref() } else { s.handshake(sender) });
        let Some(secret) = secret else { return Open::NoKeys };
        let largest = conn.largest_pn[sender.idx()][space.idx()];
        let known = if zero_rtt { conn.zero_rtt_suite } else { conn.suite };
        let build = || -> LevelKeys {
            candidate_suites(known, secret.len()).into_iter().filter_map(|s| DirectionalKeys::from_secret(s, version, secret).ok().map(|k| (s, k))).collect()
        };
        let keys = if zero_rtt { conn.zero_rtt_keys.entry(version).or_insert_with(build) } else { conn.hs_keys.entry((sender, version)).or_insert_with(build) };
        let mut found = None;
        for (suite, k) in keys.iter() {
            if known.is_some_and(|s| s != *suite) {
                continue;
            }
            if let Some(r) = open_long(k, pkt, pn_offset, largest) {
                found = Some((*suite, r));
                break;
            }
        }
        match found {
            Some((suite, r)) => {
                if zero_rtt {
                    conn.zero_rtt_suite = Some(suite);
                } else {
                    conn.suite = Some(suite);
                }
                Open::Ok(r)
            }
            None => Open::Failed,
        }
    }

    fn long(&mut self, d: &Datagram, pkt: &[u8], h: &ProtectedHeader, ty: LongType, acc: &mut DgramAcc) {
        let Some(version) = h.version else { return };
        let sender = d.direction.sender();
        let (space, vidx) = match (ty, sender) {
            (LongType::Initial, Peer::Client) => (Space::Initial, V_CLIENT_INITIAL),
            (LongType::Initial, Peer::Server) => (Space::Initial, V_SERVER_INITIAL),
            (LongType::Handshake, Peer::Client) => (Space::Handshake, V_CLIENT_HANDSHAKE),
            (LongType::Handshake, Peer::Server) => (Space::Handshake, V_SERVER_HANDSHAKE),
            _ => (Space::App, V_ZERO_RTT),
        };
        if let Some(list) = self.v.versions.get_mut(vidx) {
            push_unique(list, version);
        }
        if ty == LongType::Initial && sender == Peer::Server {
            push_unique(&mut self.v.server_initial_scids, h.scid);
        }
        let token = pkt.get(h.token.clone()).unwrap_or(&[]).to_vec();

        // Find the connection, or start one with a client Initial whose own
        // DCID derives keys that open it (a corrupted DCID cannot).
        let (ci, opened) = match self.lookup_long(d, &h.dcid) {
            Some(ci) => (ci, None),
            None if ty == LongType::Initial && sender == Peer::Client => match self.open_initial(&[h.dcid], sender, version, pkt, h.pn_offset, None) {
                Some(r) => (self.new_conn(d, h), Some(r)),
                None => {
                    self.v.undecryptable += 1;
                    acc.all_decrypted = false;
                    return;
                }
            },
            None => {
                self.v.unattributed += 1;
                acc.all_decrypted = false;
                return;
            }
        };
        let Some(conn) = self.conns.get_mut(ci) else { return };
        let list = match vidx {
            V_CLIENT_INITIAL => &mut conn.report.client_initial_versions,
            V_SERVER_INITIAL => &mut conn.report.server_initial_versions,
            V_CLIENT_HANDSHAKE => &mut conn.report.client_handshake_versions,
            V_SERVER_HANDSHAKE => &mut conn.report.server_handshake_versions,
            _ => &mut conn.report.zero_rtt_versions,
        };
        push_unique(list, version);
        if ty == LongType::ZeroRtt {
            conn.report.client_0rtt_packets += 1;
            // Length covers packet number, payload and tag (RFC 9000 §17.2).
            conn.zero_rtt_lengths += (pkt.len() - h.pn_offset.min(pkt.len())) as u64;
        }
        let largest = conn.largest_pn[sender.idx()][space.idx()];
        let key_dcids = conn.key_dcids.clone();

        let result = match (opened, ty) {
            (Some(r), _) => Open::Ok(r),
            (None, LongType::Initial) => match self.open_initial(&key_dcids, sender, version, pkt, h.pn_offset, largest) {
                Some(r) => Open::Ok(r),
                None => Open::Failed,
            },
            (None, _) => self.open_secret_level(ci, sender, space, version, pkt, h.pn_offset),
        };
        let (pn, payload) = match result {
            Open::Ok(r) => r,
            Open::Failed => {
                self.v.undecryptable += 1;
                acc.all_decrypted = false;
                if let Some(c) = self.conns.get_mut(ci) {
                    c.report.undecryptable_packets += 1;
                    if ty == LongType::ZeroRtt {
                        c.zero_rtt_undecrypted += 1;
                    }
                }
                return;
            }
            Open::NoKeys => {
                self.v.without_keys[sender.idx()] += 1;
                acc.all_decrypted = false;
                if let Some(c) = self.conns.get_mut(ci) {
                    c.report.packets_without_keys += 1;
                    if ty == LongType::ZeroRtt {
                        c.zero_rtt_undecrypted += 1;
                    }
                }
                return;
            }
        };

        // Authenticated: the header's CIDs and version are genuine.
        if let Some(conn) = self.conns.get_mut(ci) {
            conn.note_pn(sender, space, pn);
            match (ty, sender) {
                (LongType::Initial, Peer::Client) => {
                    if let Some(retry) = conn.report.retry.as_mut() {
                        if !token.is_empty() && retry.tokens.contains(&token) {
                            retry.token_echoed = true;
                            retry.first_client_pn_with_token.get_or_insert(pn);
                        }
                    }
                    conn.client_initial_max_pn = Some(conn.client_initial_max_pn.map_or(pn, |m| m.max(pn)));
                }
                (LongType::Handshake, _) => {
                    conn.negotiated.get_or_insert(version);
                    if sender == Peer::Server {
                        conn.server_hs_decrypted = true;
                    }
                }
                (LongType::ZeroRtt, _) => conn.zero_rtt_plain += payload.len() as u64,
                _ => {}
            }
        }
        if sender == Peer::Server && ty != LongType::ZeroRtt {
            self.register_server_scid(ci, h.scid, ty == LongType::Initial);
        }
        self.frames(ci, sender, space, &payload, acc);
    }

    fn new_conn(&mut self, d: &Datagram, h: &ProtectedHeader) -> usize {
        let ci = self.conns.len();
        self.conns.push(Conn::new(h.dcid, h.scid, d.time));
        self.to_server.insert(h.dcid, ci);
        if h.scid.is_empty() {
            self.empty_client_cid.insert((d.src, d.dst), ci);
        } else {
            self.to_client.insert(h.scid, ci);
        }
        self.lens[Peer::Client.idx()].insert(h.scid.len());
        ci
    }

    /// A server SCID from an authenticated Initial or Handshake packet:
    /// the client's DCID from then on (RFC 9000 §7.2).
    fn register_server_scid(&mut self, ci: usize, scid: ConnectionId, initial: bool) {
        if let Some(conn) = self.conns.get_mut(ci) {
            if initial {
                push_unique(&mut conn.report.server_scids, scid);
            }
            conn.cid_lens[Peer::Server.idx()].insert(scid.len());
        }
        self.to_server.entry(scid).or_insert(ci);
        self.lens[Peer::Server.idx()].insert(scid.len());
    }

    fn retry(&mut self, d: &Datagram, pkt: &[u8], h: &ProtectedHeader) {
        self.v.retries += 1;
        let token = pkt.get(h.token.clone()).unwrap_or(&[]).to_vec();
        self.v.retry_tokens.push(token.clone());
        if d.direction != Direction::ServerToClient {
            self.v.unattributed += 1;
            return;
        }
        let Some(ci) = self.lookup_long(d, &h.dcid) else {
            self.v.unattributed += 1;
            return;
        };
        let Some(version) = h.version else { return };
        let Some(conn) = self.conns.get_mut(ci) else { return };
        // RFC 9001 §5.8: the tag covers the client's original DCID.
        let integrity = verify_retry_integrity(version, &conn.report.odcid, pkt);
        let highest = conn.client_initial_max_pn;
        let retry = conn.report.retry.get_or_insert_with(|| RetryReport { integrity_ok: true, highest_client_pn_before: highest, ..RetryReport::default() });
        retry.count += 1;
        retry.integrity_ok &= integrity;
        retry.tokens.push(token);
        if integrity {
            // RFC 9000 §17.2.5.2: the client's next Initial goes to the
            // Retry's SCID, and its keys derive from it.
            conn.key_dcids.push(h.scid);
            conn.cid_lens[Peer::Server.idx()].insert(h.scid.len());
            self.to_server.insert(h.scid, ci);
            self.lens[Peer::Server.idx()].insert(h.scid.len());
        }
    }

    fn short(&mut self, d: &Datagram, pkt: &[u8], acc: &mut DgramAcc) {
        let sender = d.direction.sender();
        let issuer = match sender {
            Peer::Client => Peer::Server,
            Peer::Server => Peer::Client,
        };
        self.v.one_rtt_packets[sender.idx()] += 1;
        if sender == Peer::Client {
            self.v.client_1rtt_packet_bytes += pkt.len() as u64;
        }
        // The DCID has no length field (RFC 9000 §17.3.1): try the lengths
        // the issuer used, longest first.
        let mut hit = None;
        for &len in self.lens[issuer.idx()].iter().rev() {
            let Some(cid) = pkt.get(1..1 + len).and_then(|b| ConnectionId::new(b).ok()) else { continue };
            let found = if len == 0 {
                match sender {
                    Peer::Server => self.empty_client_cid.get(&(d.dst, d.src)).copied(),
                    Peer::Client => self.to_server.get(&cid).copied(),
                }
            } else {
                match sender {
                    Peer::Client => self.to_server.get(&cid).copied(),
                    Peer::Server => self.to_client.get(&cid).copied(),
                }
            };
            if let Some(ci) = found {
                hit = Some((ci, cid));
                break;
            }
        }
        let result = match hit {
            Some((ci, cid)) => {
                if acc.first_dcid.is_none() {
                    acc.first_dcid = Some(cid);
                }
                (ci, self.open_1rtt(ci, sender, pkt, cid.len()))
            }
            None => match self.trial_1rtt(sender, issuer, pkt) {
                Some((ci, cid, opened)) => {
                    if acc.first_dcid.is_none() {
                        acc.first_dcid = Some(cid);
                    }
                    // Remember the new CID (issued in a frame we could not see).
                    match sender {
                        Peer::Client => self.to_server.insert(cid, ci),
                        Peer::Server => self.to_client.insert(cid, ci),
                    };
                    (ci, Open::Ok(opened))
                }
                None => {
                    acc.all_decrypted = false;
                    let any_keys = self.conns.iter().any(|c| c.secrets(self.keylog).and_then(|s| s.traffic(sender)).is_some());
                    if any_keys {
                        self.v.undecryptable += 1;
                    } else {
                        self.v.without_keys[sender.idx()] += 1;
                    }
                    self.v.unattributed += 1;
                    return;
                }
            },
        };
        let (ci, opened) = result;
        let Some(conn) = self.conns.get_mut(ci) else { return };
        match sender {
            Peer::Client => conn.report.client_1rtt_packets += 1,
            Peer::Server => conn.report.server_1rtt_packets += 1,
        }
        let o = match opened {
            Open::Ok(o) => o,
            Open::Failed => {
                conn.one_rtt_undecrypted[sender.idx()] += 1;
                conn.report.undecryptable_packets += 1;
                self.v.undecryptable += 1;
                acc.all_decrypted = false;
                return;
            }
            Open::NoKeys => {
                conn.one_rtt_undecrypted[sender.idx()] += 1;
                conn.report.packets_without_keys += 1;
                self.v.without_keys[sender.idx()] += 1;
                acc.all_decrypted = false;
                return;
            }
        };
        conn.note_pn(sender, Space::App, o.pn);
        conn.one_rtt_payload[sender.idx()] += o.payload.len() as u64;
        let phases = match sender {
            Peer::Client => &mut conn.report.client_key_phases,
            Peer::Server => &mut conn.report.server_key_phases,
        };
        let p = phases.get_or_insert_with(KeyPhases::default);
        if o.key_phase {
            p.phase1_packets += 1;
        } else {
            p.phase0_packets += 1;
        }
        p.max_generation = p.max_generation.max(o.generation);
        self.frames(ci, sender, Space::App, &o.payload, acc);
    }

    /// Builds the 1-RTT key candidates of a direction on first use: the
    /// suite from the ServerHello (or each the secret length allows) and
    /// the negotiated version first, then the other one.
    fn one_rtt_keys<'c>(conn: &'c mut Conn, keylog: Option<&KeyLog>, sender: Peer) -> Option<&'c mut Vec<OneRtt>> {
        let slot_empty = conn.one_rtt.get(sender.idx()).is_some_and(Option::is_none);
        if slot_empty {
            let secret = conn.secrets(keylog)?.traffic(sender)?.to_vec();
            let first = conn.negotiated.or_else(|| conn.report.server_initial_versions.first().copied()).unwrap_or(Version::V1);
            let mut versions = vec![first];
            for v in Version::SUPPORTED {
                push_unique(&mut versions, *v);
            }
            let mut cands = Vec::new();
            for v in versions {
                for s in candidate_suites(conn.suite, secret.len()) {
                    if let Some(k) = OneRtt::new(s, v, &secret) {
                        cands.push(k);
                    }
                }
            }
            if let Some(slot) = conn.one_rtt.get_mut(sender.idx()) {
                *slot = Some(cands);
            }
        }
        conn.one_rtt.get_mut(sender.idx())?.as_mut()
    }

    fn open_1rtt(&mut self, ci: usize, sender: Peer, pkt: &[u8], dcid_len: usize) -> Open<ShortOpened> {
        let keylog = self.keylog;
        let Some(conn) = self.conns.get_mut(ci) else { return Open::NoKeys };
        let largest = conn.largest_pn[sender.idx()][Space::App.idx()];
        let Some(cands) = Self::one_rtt_keys(conn, keylog, sender) else { return Open::NoKeys };
        if cands.is_empty() {
            return Open::NoKeys;
        }
        for i in 0..cands.len() {
            let Some(k) = cands.get_mut(i) else { break };
            if let Some(o) = open_short(k, pkt, 1 + dcid_len, largest) {
                if cands.len() > 1 {
                    let chosen = cands.swap_remove(i);
                    *cands = vec![chosen];
                }
                return Open::Ok(o);
            }
        }
        Open::Failed
    }

    /// A short header whose DCID maps to no connection (a CID issued in a
    /// frame we could not decrypt, or a corrupted one): try every
    /// connection's 1-RTT keys with each CID length it uses.
    fn trial_1rtt(&mut self, sender: Peer, issuer: Peer, pkt: &[u8]) -> Option<(usize, ConnectionId, ShortOpened)> {
        for ci in (0..self.conns.len()).rev() {
            let lens: Vec<usize> = self.conns.get(ci)?.cid_lens[issuer.idx()].iter().copied().collect();
            for len in lens {
                let Some(cid) = pkt.get(1..1 + len).and_then(|b| ConnectionId::new(b).ok()) else { continue };
                if let Open::Ok(o) = self.open_1rtt(ci, sender, pkt, len) {
                    return Some((ci, cid, o));
                }
            }
        }
        None
    }

    fn frames(&mut self, ci: usize, sender: Peer, space: Space, payload: &[u8], acc: &mut DgramAcc) {
        let mut crypto_ranges = Vec::new();
        for frame in FrameIter::new(payload) {
            let frame = match frame {
                Ok(f) => f,
                Err(_) => {
                    if let Some(c) = self.conns.get_mut(ci) {
                        c.report.frame_errors += 1;
                    }
                    break;
                }
            };
            match frame {
                Frame::Crypto { offset, data } => {
                    crypto_ranges.push((offset, offset.saturating_add(data.len() as u64)));
                    if space != Space::App {
                        self.crypto(ci, sender, space, offset, data);
                    }
                }
                Frame::Ack(ack) if ack.ecn().is_some() => {
                    if let Some(c) = self.conns.get_mut(ci) {
                        match sender {
                            Peer::Client => c.report.client_sent_ack_ecn = true,
                            Peer::Server => c.report.server_sent_ack_ecn = true,
                        }
                    }
                }
                Frame::PathChallenge { data } => {
                    acc.challenges.push(data);
                    if let Some(c) = self.conns.get_mut(ci) {
                        match sender {
                            Peer::Client => c.report.client_path_challenges.push(data),
                            Peer::Server => c.report.server_path_challenges.push(data),
                        }
                    }
                }
                Frame::PathResponse { data } => {
                    acc.responses.push(data);
                    if let Some(c) = self.conns.get_mut(ci) {
                        match sender {
                            Peer::Client => c.report.client_path_responses.push(data),
                            Peer::Server => c.report.server_path_responses.push(data),
                        }
                    }
                }
                Frame::NewConnectionId { cid, .. } => {
                    // RFC 9000 §19.15: the sender will accept packets to `cid`.
                    self.register_cid(ci, sender, cid);
                    if let Some(c) = self.conns.get_mut(ci) {
                        match sender {
                            Peer::Client => push_unique(&mut c.report.client_new_cids, cid),
                            Peer::Server => push_unique(&mut c.report.server_new_cids, cid),
                        }
                    }
                }
                Frame::Stream { data, .. } => {
                    if let Some(c) = self.conns.get_mut(ci) {
                        match sender {
                            Peer::Client => c.report.client_stream_bytes += data.len() as u64,
                            Peer::Server => c.report.server_stream_bytes += data.len() as u64,
                        }
                    }
                }
                Frame::HandshakeDone => {
                    if let Some(c) = self.conns.get_mut(ci) {
                        c.report.handshake_confirmed = true;
                    }
                }
                Frame::ConnectionClose { error_code, reason, .. } => {
                    if let Some(c) = self.conns.get_mut(ci) {
                        c.report.close.get_or_insert((sender, error_code.0, String::from_utf8_lossy(reason).into_owned()));
                    }
                }
                Frame::ApplicationClose { error_code, reason } => {
                    if let Some(c) = self.conns.get_mut(ci) {
                        c.report.close.get_or_insert((sender, error_code, String::from_utf8_lossy(reason).into_owned()));
                    }
                }
                _ => {}
            }
        }
        if space == Space::Initial && sender == Peer::Client && !crypto_ranges.is_empty() {
            if let Some(c) = self.conns.get_mut(ci) {
                c.client_initial_crypto.push(crypto_ranges);
            }
        }
    }

    /// A CID `issuer` will accept as a DCID from now on.
    fn register_cid(&mut self, ci: usize, issuer: Peer, cid: ConnectionId) {
        match issuer {
            Peer::Server => self.to_server.insert(cid, ci),
            Peer::Client => self.to_client.insert(cid, ci),
        };
        self.lens[issuer.idx()].insert(cid.len());
        if let Some(c) = self.conns.get_mut(ci) {
            c.cid_lens[issuer.idx()].insert(cid.len());
        }
    }

    fn crypto(&mut self, ci: usize, sender: Peer, space: Space, offset: u64, data: &[u8]) {
        let Some(conn) = self.conns.get_mut(ci) else { return };
        let level = usize::from(space == Space::Handshake);
        let Some(stream) = conn.crypto.get_mut(sender.idx()).and_then(|s| s.get_mut(level)) else { return };
        let messages = stream.insert(offset, data);
        let max_end = stream.max_end;
        if sender == Peer::Server && space == Space::Handshake {
            conn.report.server_handshake_crypto_bytes = Some(max_end);
        }
        for (at, ty, body) in messages {
            self.tls_message(ci, sender, space, at, ty, &body);
        }
    }

    fn tls_message(&mut self, ci: usize, sender: Peer, space: Space, at: u64, ty: u8, body: &[u8]) {
        let keylog = self.keylog;
        let mut preferred_cid = None;
        let Some(conn) = self.conns.get_mut(ci) else { return };
        match (sender, space, ty) {
            (Peer::Client, Space::Initial, hs::CLIENT_HELLO) => {
                conn.client_hello_offsets.push(at);
                if let Some(ch) = parse_client_hello(body) {
                    if conn.client_random.is_none() {
                        conn.client_random = Some(ch.random);
                        conn.report.keys_in_keylog = conn.secrets(keylog).is_some();
                    }
                    push_unique(&mut conn.report.client_hellos, ch);
                }
            }
            (Peer::Server, Space::Initial, hs::SERVER_HELLO) => {
                if let Some((sh, hrr)) = parse_server_hello(body) {
                    if hrr {
                        conn.report.hello_retry_request = true;
                    } else {
                        conn.suite = CipherSuite::from_tls_id(sh.cipher_suite);
                        conn.report.server_hello = Some(sh);
                    }
                }
            }
            (Peer::Server, Space::Handshake, hs::ENCRYPTED_EXTENSIONS) => {
                let mut r = TlsReader::new(body);
                let exts = r.vec16().map(extensions).unwrap_or_default();
                conn.report.server_accepted_early_data = Some(exts.iter().any(|(t, _)| *t == ext::EARLY_DATA));
                for (t, data) in exts {
                    if t == ext::QUIC_TRANSPORT_PARAMETERS {
                        let (p, e) = decode_params(data, Role::Server);
                        // RFC 9000 §9.6: the preferred address comes with
                        // the CID the client uses there.
                        preferred_cid = p.as_ref().and_then(|p| p.preferred_address).map(|pa| pa.connection_id);
                        conn.report.server_transport_params = p;
                        conn.report.server_transport_params_error = e;
                    }
                }
            }
            (Peer::Server, Space::Handshake, hs::CERTIFICATE) => {
                conn.server_cert_seen = true;
                conn.report.server_certificate = Some(true);
            }
            (Peer::Server, Space::Handshake, hs::FINISHED) => {
                conn.report.server_certificate = Some(conn.server_cert_seen);
            }
            _ => {}
        }
        if let Some(cid) = preferred_cid {
            self.register_cid(ci, Peer::Server, cid);
        }
    }

    fn finish(mut self, vantage: Vantage, datagrams: &[Datagram], unclassified: usize) -> (VantageReport, Vec<DgramInfo>) {
        let mut connections = Vec::with_capacity(self.conns.len());
        for mut c in std::mem::take(&mut self.conns) {
            let offsets = if c.client_hello_offsets.is_empty() { vec![0] } else { c.client_hello_offsets.clone() };
            c.report.client_hello_packets =
                c.client_initial_crypto.iter().filter(|ranges| ranges.iter().any(|&(s, e)| offsets.iter().any(|&o| s <= o && o < e))).count();
            c.report.client_0rtt_decrypted = c.zero_rtt_undecrypted == 0;
            c.report.client_0rtt_bytes = if c.report.client_0rtt_decrypted { c.zero_rtt_plain } else { c.zero_rtt_lengths };
            c.report.client_1rtt_bytes = (c.one_rtt_undecrypted[0] == 0).then_some(c.one_rtt_payload[0]);
            c.report.server_1rtt_bytes = (c.one_rtt_undecrypted[1] == 0).then_some(c.one_rtt_payload[1]);
            if !c.server_hs_decrypted {
                c.report.server_handshake_crypto_bytes = None;
            }
            connections.push(c.report);
        }
        let client_1rtt_payload_bytes = {
            let attributed: u64 = connections.iter().map(|c| c.client_1rtt_packets).sum();
            let all: Option<u64> = connections.iter().map(|c| c.client_1rtt_bytes).sum();
            all.filter(|_| attributed == self.v.one_rtt_packets[0])
        };
        let mut r = VantageReport {
            vantage,
            client_to_server_datagrams: 0,
            server_to_client_datagrams: 0,
            unclassified_datagrams: unclassified,
            packets: self.v.packets,
            unparseable_packets: self.v.unparseable,
            unknown_version_packets: self.v.unknown_version,
            version_negotiation_packets: self.v.vn,
            retry_packets: self.v.retries,
            undecryptable_packets: self.v.undecryptable,
            packets_without_keys: self.v.without_keys,
            unattributed_packets: self.v.unattributed,
            server_initial_scids: self.v.server_initial_scids,
            client_initial_versions: sorted(&self.v.versions[V_CLIENT_INITIAL]),
            server_initial_versions: sorted(&self.v.versions[V_SERVER_INITIAL]),
            client_handshake_versions: sorted(&self.v.versions[V_CLIENT_HANDSHAKE]),
            server_handshake_versions: sorted(&self.v.versions[V_SERVER_HANDSHAKE]),
            zero_rtt_versions: sorted(&self.v.versions[V_ZERO_RTT]),
            retry_tokens: self.v.retry_tokens,
            one_rtt_packets: self.v.one_rtt_packets,
            client_1rtt_packet_bytes: self.v.client_1rtt_packet_bytes,
            client_1rtt_payload_bytes,
            client_to_server_ecn: EcnMarks::default(),
            server_to_client_ecn: EcnMarks::default(),
            client_to_server_ipv4: 0,
            server_to_client_ipv4: 0,
            server_1rtt_first: None,
            server_1rtt_last: None,
            connections,
        };
        for d in datagrams {
            let v4 = d.src.is_ipv4() || d.dst.is_ipv4();
            match d.direction {
                Direction::ClientToServer => {
                    r.client_to_server_datagrams += 1;
                    r.client_to_server_ecn.add(d.ecn);
                    r.client_to_server_ipv4 += usize::from(v4);
                }
                Direction::ServerToClient => {
                    r.server_to_client_datagrams += 1;
                    r.server_to_client_ecn.add(d.ecn);
                    r.server_to_client_ipv4 += usize::from(v4);
                }
            }
        }
        for g in &self.dgrams {
            if g.direction == Direction::ServerToClient && g.has_short {
                r.server_1rtt_first.get_or_insert(g.time);
                r.server_1rtt_last = Some(g.time);
            }
        }
        (r, self.dgrams)
    }
}

fn sorted(v: &[Version]) -> Vec<Version> {
    let mut v = v.to_vec();
    v.sort();
    v.dedup();
    v
}

fn analyze_vantage(vantage: Vantage, datagrams: &[Datagram], keylog: Option<&KeyLog>, unclassified: usize) -> (VantageReport, Vec<DgramInfo>) {
    let mut e = Engine::new(keylog);
    for d in datagrams {
        e.datagram(d);
    }
    e.finish(vantage, datagrams, unclassified)
}

// ---------------------------------------------------------------------------
// Trace-level report
// ---------------------------------------------------------------------------

fn build_report(keylog: Option<&KeyLog>, client: (VantageReport, Vec<DgramInfo>), server: (VantageReport, Vec<DgramInfo>)) -> Report {
    let (client_side, client_dgrams) = client;
    let (server_side, server_dgrams) = server;
    let keys = KeyStatus { given: keylog.is_some(), usable: keylog.is_some_and(KeyLog::has_server_handshake_secret) };

    let ack_ecn = |side: &VantageReport, sender: Peer| -> Option<bool> {
        let sent = side.connections.iter().any(|c| match sender {
            Peer::Client => c.client_sent_ack_ecn,
            Peer::Server => c.server_sent_ack_ecn,
        });
        if sent {
            Some(true)
        } else if side.packets_without_keys[sender.idx()] == 0 && keys.given {
            Some(false)
        } else {
            None
        }
    };

    let paths = path_report(&client_dgrams, &server_dgrams, &client_side, &server_side);
    let mut amplification = amplification_report(&server_dgrams);
    amplification.server_handshake_crypto_bytes = server_side.connections.iter().filter_map(|c| c.server_handshake_crypto_bytes).max();

    let server_1rtt_span = match (client_side.server_1rtt_first, client_side.server_1rtt_last) {
        (Some(a), Some(b)) => b.duration_since(a).ok(),
        _ => None,
    };
    Report {
        keys,
        handshakes: server_side.server_initial_scids.len(),
        server_initial_versions: server_side.server_initial_versions.clone(),
        client_initial_versions: client_side.client_initial_versions.clone(),
        client_handshake_versions: client_side.client_handshake_versions.clone(),
        server_handshake_versions: server_side.server_handshake_versions.clone(),
        retries: client_side.retry_packets,
        client_to_server_ecn: client_side.client_to_server_ecn,
        server_to_client_ecn: server_side.server_to_client_ecn,
        client_sent_ack_ecn: ack_ecn(&client_side, Peer::Client),
        server_sent_ack_ecn: ack_ecn(&server_side, Peer::Server),
        paths,
        amplification,
        server_ipv4_datagrams: server_side.server_to_client_ipv4,
        server_1rtt_span,
        client_side,
        server_side,
    }
}

fn path_report(client: &[DgramInfo], server: &[DgramInfo], client_side: &VantageReport, server_side: &VantageReport) -> PathReport {
    let mut p = PathReport {
        challenges_complete: server_side.packets_without_keys[Peer::Server.idx()] == 0,
        responses_complete: client_side.packets_without_keys[Peer::Client.idx()] == 0,
        ..PathReport::default()
    };
    let mut last: Option<SocketAddr> = None;
    let mut sent_to: HashSet<SocketAddr> = HashSet::new();
    for g in server {
        match g.direction {
            Direction::ClientToServer => push_unique(&mut p.client_addresses_at_server, g.src),
            Direction::ServerToClient => {
                push_unique(&mut p.client_addresses_at_server, g.dst);
                push_unique(&mut p.client_ports, g.dst.port());
                push_unique(&mut p.client_ips, g.dst.ip());
                for c in &g.challenges {
                    if !p.server_challenges.iter().any(|s| s.data == *c) {
                        p.server_challenges.push(ChallengeSent { data: *c, to: g.dst, time: g.time });
                    }
                }
                if let Some(prev) = last.filter(|prev| *prev != g.dst) {
                    let path_challenge = if !g.challenges.is_empty() {
                        Some(true)
                    } else if g.all_decrypted {
                        Some(false)
                    } else {
                        None
                    };
                    p.server_path_changes.push(PathChange { time: g.time, from: prev, to: g.dst, new_address: !sent_to.contains(&g.dst), path_challenge });
                }
                sent_to.insert(g.dst);
                last = Some(g.dst);
            }
        }
    }
    let mut last: Option<((SocketAddr, SocketAddr), Option<ConnectionId>)> = None;
    for g in client.iter().filter(|g| g.direction == Direction::ClientToServer) {
        for r in &g.responses {
            push_unique(&mut p.client_responses, *r);
        }
        let tuple = (g.src, g.dst);
        if let Some((prev, prev_dcid)) = last {
            if prev != tuple {
                p.client_path_changes.push(ClientPathChange { time: g.time, from: prev, to: tuple, previous_dcid: prev_dcid, dcid: g.first_dcid });
            }
        }
        last = Some((tuple, g.first_dcid));
    }
    p
}

fn amplification_report(server: &[DgramInfo]) -> AmplificationReport {
    let mut a = AmplificationReport::default();
    for g in server {
        if g.has_vn {
            a.version_negotiation = true;
        }
        if g.first == FirstKind::Invalid {
            a.undetermined_datagrams += 1;
        }
        match g.direction {
            Direction::ClientToServer if g.has_handshake => {
                a.client_handshake_seen = true;
                break;
            }
            Direction::ClientToServer => {
                if g.first == FirstKind::Initial {
                    a.client_initial_bytes += g.size as u64;
                }
            }
            Direction::ServerToClient => {
                a.server_bytes += g.size as u64;
                let factor = if a.client_initial_bytes == 0 { f64::INFINITY } else { a.server_bytes as f64 / a.client_initial_bytes as f64 };
                a.max_factor = Some(a.max_factor.map_or(factor, |m: f64| m.max(factor)));
                if a.server_bytes >= 4 * a.client_initial_bytes {
                    a.datagrams_over_4x += 1;
                } else if a.server_bytes > 3 * a.client_initial_bytes {
                    a.datagrams_over_3x += 1;
                }
            }
        }
    }
    a
}

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------

/// One check function per quic-interop-runner test case (the spec's
/// "Test cases" table), excluding the "files" check, which the runner does
/// itself. Each follows the pass criteria of the spec and, where the spec
/// summarizes, the runner's code (noted per function).
pub mod checks {
    use super::{Peer, Report, Version};

    /// A check's result. `unsupported_reason` is set (and `passed` false)
    /// when the check cannot run: a [keys] check without a usable key log.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Verdict {
        pub passed: bool,
        pub unsupported_reason: Option<String>,
        /// What was checked, passed or not, in order.
        pub details: Vec<String>,
    }

    impl Verdict {
        pub fn is_unsupported(&self) -> bool {
            self.unsupported_reason.is_some()
        }
    }

    /// Parameters that vary per run.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct CheckParams {
        /// Handshakes expected by handshakeloss / handshakecorruption (one
        /// per file of the multiconnect client; 50 in the runner).
        pub expected_handshakes: usize,
        /// zerortt: the most 1-RTT payload the client may send
        /// (0.5 × 250-character names × 40 files = 5000 in the runner).
        pub zerortt_max_1rtt_bytes: u64,
        /// amplificationlimit: the least Handshake CRYPTO data the server
        /// must send (its 9-certificate chain).
        pub min_server_handshake_crypto: u64,
    }

    impl Default for CheckParams {
        fn default() -> Self {
            Self { expected_handshakes: 50, zerortt_max_1rtt_bytes: 5000, min_server_handshake_crypto: 7500 }
        }
    }

    /// The test case names, in the runner's order.
    pub const CASES: &[&str] = &[
        "handshake",
        "transfer",
        "longrtt",
        "chacha20",
        "multiplexing",
        "retry",
        "resumption",
        "zerortt",
        "http3",
        "blackhole",
        "keyupdate",
        "ecn",
        "amplificationlimit",
        "handshakeloss",
        "transferloss",
        "handshakecorruption",
        "transfercorruption",
        "ipv6",
        "v2",
        "rebind-port",
        "rebind-addr",
        "connectionmigration",
    ];

    /// Runs the check of test case `case`; None for an unknown name.
    pub fn check(case: &str, r: &Report, params: &CheckParams) -> Option<Verdict> {
        Some(match case {
            "handshake" => handshake(r),
            "transfer" => transfer(r),
            "longrtt" => longrtt(r),
            "chacha20" => chacha20(r),
            "multiplexing" => multiplexing(r),
            "retry" => retry(r),
            "resumption" => resumption(r),
            "zerortt" => zerortt(r, params.zerortt_max_1rtt_bytes),
            "http3" => http3(r),
            "blackhole" => blackhole(r),
            "keyupdate" => keyupdate(r),
            "ecn" => ecn(r),
            "amplificationlimit" => amplificationlimit(r, params.min_server_handshake_crypto),
            "handshakeloss" => handshakeloss(r, params.expected_handshakes),
            "transferloss" => transferloss(r),
            "handshakecorruption" => handshakecorruption(r, params.expected_handshakes),
            "transfercorruption" => transfercorruption(r),
            "ipv6" => ipv6(r),
            "v2" => v2(r),
            "rebind-port" => rebind_port(r),
            "rebind-addr" => rebind_addr(r),
            "connectionmigration" => connectionmigration(r),
            _ => return None,
        })
    }

    /// Collects conditions; the verdict passes when all hold.
    struct Checker {
        ok: bool,
        details: Vec<String>,
    }

    impl Checker {
        fn new() -> Self {
            Self { ok: true, details: Vec::new() }
        }

        fn require(&mut self, cond: bool, what: String) -> bool {
            self.details.push(format!("{} {what}", if cond { "ok:" } else { "FAIL:" }));
            self.ok &= cond;
            cond
        }

        fn note(&mut self, what: String) {
            self.details.push(format!("note: {what}"));
        }

        fn done(self) -> Verdict {
            Verdict { passed: self.ok, unsupported_reason: None, details: self.details }
        }

        /// The spec's "1 handshake" (N in general): distinct SCIDs of the
        /// server's Initials in the server-side trace.
        fn handshakes(&mut self, r: &Report, n: usize) {
            self.require(
                r.handshakes == n,
                format!("{} handshake(s), expected {n} (server Initial SCIDs {:?})", r.handshakes, r.server_side.server_initial_scids),
            );
        }

        /// The spec's "version": the server's Initials show exactly one
        /// version, 0x1.
        fn version_v1(&mut self, r: &Report) {
            self.require(r.server_initial_versions == [Version::V1], format!("server Initial versions {:?}, expected exactly [v1]", r.server_initial_versions));
        }
    }

    fn needs_keys(r: &Report) -> Option<Verdict> {
        if r.keys.usable {
            return None;
        }
        let reason = if r.keys.given { "the key log has no SERVER_HANDSHAKE_TRAFFIC_SECRET line" } else { "this check needs a TLS key log (SSLKEYLOGFILE)" };
        Some(Verdict { passed: false, unsupported_reason: Some(reason.into()), details: Vec::new() })
    }

    fn basic(r: &Report, handshakes: usize) -> Checker {
        let mut c = Checker::new();
        c.handshakes(r, handshakes);
        c.version_v1(r);
        if r.keys.given {
            let conns = &r.client_side.connections;
            let missing = conns.iter().filter(|c| !c.keys_in_keylog).count();
            if missing > 0 {
                c.note(format!("the key log has no secrets for {missing} of {} connection(s)", conns.len()));
            }
        }
        c
    }

    /// handshake: v1 only, no Retry, exactly 1 handshake.
    pub fn handshake(r: &Report) -> Verdict {
        handshake_checker(r).done()
    }

    fn handshake_checker(r: &Report) -> Checker {
        let mut c = basic(r, 1);
        c.require(r.retries == 0, format!("{} Retry packet(s) at the client side, expected none", r.retries));
        c
    }

    /// transfer: 1 handshake, v1.
    pub fn transfer(r: &Report) -> Verdict {
        basic(r, 1).done()
    }

    /// longrtt: 1 handshake, v1, and ≥ 2 ClientHellos from the client
    /// (client side): its initial PTO is below the 1.5 s RTT.
    pub fn longrtt(r: &Report) -> Verdict {
        let mut c = basic(r, 1);
        if r.retries > 0 {
            c.note(format!("{} Retry packet(s): a server must not send Retry in this test", r.retries));
        }
        let n: usize = r.client_side.connections.iter().map(|c| c.client_hello_packets).sum();
        c.require(n >= 2, format!("{n} ClientHello packet(s) from the client, expected ≥ 2"));
        c.done()
    }

    /// GREASE cipher suites (RFC 8701) are ignored: they are not an offer.
    fn is_grease(v: u16) -> bool {
        v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
    }

    /// chacha20: 1 handshake, v1, every ClientHello (client side) offers
    /// only TLS_CHACHA20_POLY1305_SHA256 (0x1303).
    pub fn chacha20(r: &Report) -> Verdict {
        let mut c = basic(r, 1);
        let hellos: Vec<_> = r.client_side.connections.iter().flat_map(|c| c.client_hellos.iter()).collect();
        c.require(!hellos.is_empty(), format!("{} ClientHello(s) parsed", hellos.len()));
        for h in hellos {
            let offered: Vec<u16> = h.cipher_suites.iter().copied().filter(|s| !is_grease(*s)).collect();
            c.require(offered == [0x1303], format!("ClientHello offers {offered:04x?}, expected only [1303]"));
        }
        c.done()
    }

    /// multiplexing [keys]: 1 handshake, v1, the server's
    /// initial_max_streams_bidi ≤ 1000.
    pub fn multiplexing(r: &Report) -> Verdict {
        if let Some(v) = needs_keys(r) {
            return v;
        }
        let mut c = basic(r, 1);
        let params: Vec<u64> = r
            .client_side
            .connections
            .iter()
            .chain(r.server_side.connections.iter())
            .filter_map(|c| c.server_transport_params.as_ref().map(|p| p.initial_max_streams_bidi))
            .collect();
        if c.require(!params.is_empty(), "server transport parameters found".into()) {
            for p in params {
                c.require(p <= 1000, format!("server initial_max_streams_bidi = {p}, expected ≤ 1000"));
            }
        }
        c.done()
    }

    /// retry: 1 handshake, v1, ≥ 1 Retry with a token (client side); a
    /// later client Initial carries that token; the client's packet numbers
    /// continue past the highest one before the Retry.
    pub fn retry(r: &Report) -> Verdict {
        let mut c = basic(r, 1);
        let retried: Vec<_> = r.client_side.connections.iter().filter_map(|c| c.retry.as_ref()).collect();
        c.require(r.client_side.retry_tokens.iter().any(|t| !t.is_empty()), format!("{} Retry packet(s) with a token", r.retries));
        if c.require(!retried.is_empty(), "a connection was retried".into()) {
            for rt in retried {
                if !rt.integrity_ok {
                    c.note("a Retry integrity tag does not verify (RFC 9001 §5.8): clients discard such a Retry".into());
                }
                c.require(rt.token_echoed, "a later client Initial carries the Retry token".into());
                let continues = match (rt.highest_client_pn_before, rt.first_client_pn_with_token) {
                    (Some(before), Some(after)) => after > before,
                    (None, Some(_)) => true,
                    _ => false,
                };
                c.require(
                    continues,
                    format!(
                        "client packet numbers not reset (highest before Retry {:?}, first with token {:?})",
                        rt.highest_client_pn_before, rt.first_client_pn_with_token
                    ),
                );
            }
        }
        c.done()
    }

    /// resumption [keys]: exactly 2 handshakes, v1; the first handshake
    /// has a Certificate message, the second none (client side, as the
    /// runner).
    pub fn resumption(r: &Report) -> Verdict {
        if let Some(v) = needs_keys(r) {
            return v;
        }
        let mut c = basic(r, 2);
        resumption_certificates(r, &mut c);
        c.done()
    }

    fn resumption_certificates(r: &Report, c: &mut Checker) {
        let hs: Vec<_> = r.client_side.connections.iter().filter(|c| !c.server_handshake_versions.is_empty()).collect();
        if !c.require(hs.len() == 2, format!("{} connection(s) with server Handshake packets at the client side, expected 2", hs.len())) {
            return;
        }
        if let (Some(first), Some(second)) = (hs.first(), hs.last()) {
            c.require(first.server_certificate == Some(true), format!("1st handshake Certificate: {:?}, expected Some(true)", first.server_certificate));
            c.require(second.server_certificate == Some(false), format!("2nd handshake Certificate: {:?}, expected Some(false)", second.server_certificate));
        }
    }

    /// zerortt: 2 handshakes, v1, the client sent 0-RTT payload, and at
    /// most `max_1rtt_bytes` of 1-RTT payload (client side, whole trace as
    /// the runner sums it). Without keys the 1-RTT payload is bounded by
    /// the packet sizes: a pass is certain below the limit, otherwise the
    /// check is unsupported.
    pub fn zerortt(r: &Report, max_1rtt_bytes: u64) -> Verdict {
        let mut c = basic(r, 2);
        let conns = &r.client_side.connections;
        let zero: u64 = conns.iter().map(|c| c.client_0rtt_bytes).sum();
        let exact = conns.iter().all(|c| c.client_0rtt_decrypted);
        c.require(zero > 0, format!("client 0-RTT payload {zero} bytes ({}), expected > 0", if exact { "decrypted" } else { "Length fields" }));
        match r.client_side.client_1rtt_payload_bytes {
            Some(one) => {
                c.require(one <= max_1rtt_bytes, format!("client 1-RTT payload {one} bytes, expected ≤ {max_1rtt_bytes}"));
            }
            None => {
                let bound = r.client_side.client_1rtt_packet_bytes;
                if bound > max_1rtt_bytes {
                    return Verdict {
                        passed: false,
                        unsupported_reason: Some(format!("client 1-RTT packets total {bound} bytes (> {max_1rtt_bytes}) and their payload needs the key log")),
                        details: c.details,
                    };
                }
                c.require(true, format!("client 1-RTT packets total {bound} bytes (upper bound), expected ≤ {max_1rtt_bytes}"));
            }
        }
        c.done()
    }

    /// http3: 1 handshake, v1.
    pub fn http3(r: &Report) -> Verdict {
        transfer(r)
    }

    /// blackhole: 1 handshake, v1.
    pub fn blackhole(r: &Report) -> Verdict {
        transfer(r)
    }

    /// keyupdate [keys]: 1 handshake, v1; the client (client side) and the
    /// server (server side) each sent ≥ 1 1-RTT packet with Key Phase = 1.
    pub fn keyupdate(r: &Report) -> Verdict {
        if let Some(v) = needs_keys(r) {
            return v;
        }
        let mut c = basic(r, 1);
        let sum = |side: &super::VantageReport, who: Peer| -> (u64, u64) {
            side.connections
                .iter()
                .filter_map(|c| match who {
                    Peer::Client => c.client_key_phases,
                    Peer::Server => c.server_key_phases,
                })
                .fold((0, 0), |(a, b), k| (a + k.phase0_packets, b + k.phase1_packets))
        };
        let (c0, c1) = sum(&r.client_side, Peer::Client);
        let (s0, s1) = sum(&r.server_side, Peer::Server);
        c.require(c1 > 0, format!("client sent {c0} key phase 0 and {c1} key phase 1 packets"));
        c.require(s1 > 0, format!("server sent {s0} key phase 0 and {s1} key phase 1 packets"));
        c.done()
    }

    /// ecn [keys]: the handshake checks; in each direction ≥ 1 datagram
    /// marked ECT(0)/ECT(1) and none CE (as sent: client→server at the
    /// client side, server→client at the server side); both sides sent an
    /// ACK frame with ECN counts.
    pub fn ecn(r: &Report) -> Verdict {
        if let Some(v) = needs_keys(r) {
            return v;
        }
        let mut c = handshake_checker(r);
        for (name, m) in [("client→server", r.client_to_server_ecn), ("server→client", r.server_to_client_ecn)] {
            c.require(m.ect0 + m.ect1 > 0, format!("{name}: {} ECT(0), {} ECT(1) datagrams, expected some", m.ect0, m.ect1));
            c.require(m.ce == 0, format!("{name}: {} CE datagrams, expected none", m.ce));
            if m.not_ect > 0 || (m.ect0 > 0 && m.ect1 > 0) {
                c.note(format!("{name}: not consistently marked ({} Not-ECT, {} ECT(0), {} ECT(1))", m.not_ect, m.ect0, m.ect1));
            }
        }
        c.require(r.client_sent_ack_ecn == Some(true), format!("client sent ACK with ECN counts: {:?}", r.client_sent_ack_ecn));
        c.require(r.server_sent_ack_ecn == Some(true), format!("server sent ACK with ECN counts: {:?}", r.server_sent_ack_ecn));
        c.done()
    }

    /// amplificationlimit [keys]: 1 handshake, v1; the server sent ≥
    /// `min_crypto` bytes of Handshake CRYPTO; before the first client
    /// Handshake datagram no server datagram took its total to 4× the
    /// client's Initial bytes (3–4× passes with a note); no Version
    /// Negotiation; every datagram's type determined (runner semantics).
    pub fn amplificationlimit(r: &Report, min_crypto: u64) -> Verdict {
        if let Some(v) = needs_keys(r) {
            return v;
        }
        let mut c = basic(r, 1);
        let a = &r.amplification;
        let crypto = a.server_handshake_crypto_bytes;
        c.require(crypto.is_some_and(|b| b >= min_crypto), format!("server Handshake CRYPTO bytes {crypto:?}, expected ≥ {min_crypto}"));
        c.require(!a.version_negotiation, "no Version Negotiation packet".into());
        c.require(a.undetermined_datagrams == 0, format!("{} datagram(s) of undetermined type", a.undetermined_datagrams));
        c.require(a.client_handshake_seen, "a client Handshake packet reached the server".into());
        c.require(
            a.datagrams_over_4x == 0,
            format!(
                "server within 4× before address validation: {} B sent for {} B of client Initials (max factor {:?})",
                a.server_bytes, a.client_initial_bytes, a.max_factor
            ),
        );
        if a.datagrams_over_3x > 0 {
            c.note(format!("{} server datagram(s) between 3× and 4× the client's bytes", a.datagrams_over_3x));
        }
        c.done()
    }

    /// handshakeloss: exactly `expected` handshakes, v1.
    pub fn handshakeloss(r: &Report, expected: usize) -> Verdict {
        basic(r, expected).done()
    }

    /// transferloss: 1 handshake, v1.
    pub fn transferloss(r: &Report) -> Verdict {
        transfer(r)
    }

    /// handshakecorruption: exactly `expected` handshakes, v1.
    pub fn handshakecorruption(r: &Report, expected: usize) -> Verdict {
        basic(r, expected).done()
    }

    /// transfercorruption: 1 handshake, v1.
    pub fn transfercorruption(r: &Report) -> Verdict {
        transfer(r)
    }

    /// ipv6: the transfer checks, and no server datagram over IPv4
    /// (server side).
    pub fn ipv6(r: &Report) -> Verdict {
        let mut c = basic(r, 1);
        c.require(r.server_ipv4_datagrams == 0, format!("{} server datagram(s) over IPv4, expected none", r.server_ipv4_datagrams));
        c.done()
    }

    /// v2: client Initials (client side) include v1; server Initials
    /// (server side) include v2; client and server Handshake packets use
    /// only v2 (compatible version negotiation, RFC 9368 §2.3).
    pub fn v2(r: &Report) -> Verdict {
        let mut c = Checker::new();
        c.require(r.client_initial_versions.contains(&Version::V1), format!("client Initial versions {:?} include v1", r.client_initial_versions));
        c.require(r.server_initial_versions.contains(&Version::V2), format!("server Initial versions {:?} include v2", r.server_initial_versions));
        c.require(r.client_handshake_versions == [Version::V2], format!("client Handshake versions {:?}, expected only v2", r.client_handshake_versions));
        c.require(r.server_handshake_versions == [Version::V2], format!("server Handshake versions {:?}, expected only v2", r.server_handshake_versions));
        c.done()
    }

    /// The rebind-port checks after the transfer checks (the runner's
    /// TestCasePortRebinding): more than one client port seen by the
    /// server; the first server datagram after each change of destination
    /// carries a PATH_CHALLENGE; at least as many distinct challenges as
    /// changes; each challenge answered by a client PATH_RESPONSE.
    fn rebinding(r: &Report, c: &mut Checker) {
        let p = &r.paths;
        c.require(p.client_ports.len() > 1, format!("server sent to client ports {:?}, expected more than one", p.client_ports));
        // "The first server packet on each new path contains PATH_CHALLENGE"
        // (spec): a new path is an address the server had not sent to; a
        // datagram back to an address it used before (after answering a
        // probe elsewhere, or moving back, RFC 9000 §9.3.2) is not one.
        let new_paths: Vec<&super::PathChange> = p.server_path_changes.iter().filter(|ch| ch.new_address).collect();
        for change in &new_paths {
            c.require(
                change.path_challenge == Some(true),
                format!("first server datagram to {} (from {}) carries PATH_CHALLENGE: {:?}", change.to, change.from, change.path_challenge),
            );
        }
        let n = new_paths.len();
        c.require(p.server_challenges.len() >= n, format!("{n} path change(s), {} distinct PATH_CHALLENGE(s)", p.server_challenges.len()));
        let unanswered: Vec<String> = p
            .server_challenges
            .iter()
            .filter(|ch| !p.client_responses.contains(&ch.data))
            .map(|ch| format!("{} (sent to {})", hex::encode(ch.data), ch.to))
            .collect();
        c.require(unanswered.is_empty(), format!("PATH_CHALLENGEs without a client PATH_RESPONSE: {unanswered:?}"));
        if !p.challenges_complete || !p.responses_complete {
            c.note("some 1-RTT packets could not be decrypted; challenge lists may be incomplete".into());
        }
    }

    /// rebind-port [keys]: the transfer checks and path validation on every
    /// new path.
    pub fn rebind_port(r: &Report) -> Verdict {
        if let Some(v) = needs_keys(r) {
            return v;
        }
        let mut c = basic(r, 1);
        rebinding(r, &mut c);
        c.done()
    }

    /// rebind-addr [keys]: the server saw more than one client IP, then
    /// the rebind-port checks.
    pub fn rebind_addr(r: &Report) -> Verdict {
        if let Some(v) = needs_keys(r) {
            return v;
        }
        let mut c = basic(r, 1);
        c.require(r.paths.client_ips.len() > 1, format!("server sent to client IPs {:?}, expected more than one", r.paths.client_ips));
        rebinding(r, &mut c);
        c.done()
    }

    /// connectionmigration [keys]: the rebind-port checks, and the client's
    /// first packet on each new 4-tuple (client side) uses a new DCID
    /// (RFC 9000 §9.5).
    pub fn connectionmigration(r: &Report) -> Verdict {
        if let Some(v) = needs_keys(r) {
            return v;
        }
        let mut c = basic(r, 1);
        rebinding(r, &mut c);
        let changes = &r.paths.client_path_changes;
        c.require(!changes.is_empty(), format!("{} client path change(s), expected ≥ 1", changes.len()));
        for ch in changes {
            let fresh = ch.dcid.is_some() && ch.dcid != ch.previous_dcid;
            c.require(fresh, format!("client's first packet on {:?} uses DCID {:?} (before: {:?}), expected a new one", ch.to, ch.dcid, ch.previous_dcid));
        }
        c.done()
    }
}

pub use checks::{CheckParams, Verdict};

#[cfg(test)]
mod tests {
    use super::checks::{self, CheckParams};
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::{Instant, UNIX_EPOCH};

    use quic_core::config::TransportConfig;
    use quic_core::connection::EcnCodepoint;
    use quic_core::endpoint::{ClientConfig, ConnectionHandle, Endpoint, EndpointConfig, RetryPolicy, ServerConfig};
    use quic_core::rand::SeededRandom;
    use quic_core::stream::{Dir, StreamId};
    use quicpro_sim::pair::{certs, client_tls, server_tls};

    /// Collects both endpoints' TLS secrets in NSS key log format.
    #[derive(Debug, Default)]
    struct MemKeyLog(Mutex<String>);

    impl rustls::KeyLog for MemKeyLog {
        fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
            let line = format!("{label} {} {}\n", hex::encode(client_random), hex::encode(secret));
            self.0.lock().unwrap().push_str(&line);
        }
    }

    struct Opts {
        version: Version,
        retry: bool,
        /// ECN bits put on every datagram (and reported to the receiver).
        ecn: u8,
        seed: u64,
        /// One-way delay.
        delay: Duration,
        /// The client offers only TLS_CHACHA20_POLY1305_SHA256.
        chacha_only: bool,
        /// Certificates the server sends (copies of its one certificate).
        chain_len: usize,
    }

    impl Default for Opts {
        fn default() -> Self {
            Opts { version: Version::V1, retry: false, ecn: 0, seed: 1, delay: Duration::from_millis(10), chacha_only: false, chain_len: 1 }
        }
    }

    #[derive(Default)]
    struct ServerStream {
        request: Vec<u8>,
        /// Response bytes still to write, once the request is complete.
        left: Option<usize>,
        finished: bool,
    }

    /// Two endpoints over an in-memory network with a fixed one-way delay,
    /// recording every datagram as a relay would: at the client's side
    /// (client sends, server datagrams arriving) and at the server's side.
    /// `nat_addr` is the client's address as the server sees it; changing
    /// it is a NAT rebinding (server datagrams to an old mapping are lost).
    struct Sim {
        t0: Instant,
        now: Instant,
        client: Endpoint,
        server: Endpoint,
        client_cfg: ClientConfig,
        client_addr: SocketAddr,
        nat_addr: SocketAddr,
        server_addr: SocketAddr,
        ecn: u8,
        delay: Duration,
        flight: Vec<(Instant, bool, Vec<u8>, SocketAddr)>,
        client_side: Vec<Record>,
        server_side: Vec<Record>,
        keylog: Arc<MemKeyLog>,
        server_streams: HashMap<(ConnectionHandle, StreamId), ServerStream>,
        client_streams: HashMap<(ConnectionHandle, StreamId), (usize, bool)>,
        /// Client datagrams (1-based, in sending order) the network drops
        /// before the server's side (the runner's droplist scenario).
        drop_to_server: Vec<usize>,
        sent_to_server: usize,
    }

    impl Sim {
        fn new(o: Opts) -> Sim {
            let c = certs();
            let keylog = Arc::new(MemKeyLog::default());
            let mut so = server_tls(&c);
            so.cert_chain = vec![c.cert.clone(); o.chain_len.max(1)];
            let mut stls = (*so.build().unwrap()).clone();
            stls.key_log = keylog.clone();
            let mut ctls = if o.chacha_only {
                let base = quic_core::tls::provider::crypto_provider();
                let suites = base.cipher_suites.iter().filter(|s| s.suite() == rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256).copied().collect();
                let provider = Arc::new(rustls::crypto::CryptoProvider { cipher_suites: suites, ..(*base).clone() });
                let mut roots = rustls::RootCertStore::empty();
                roots.add(c.cert.clone()).unwrap();
                let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
                    .with_protocol_versions(&[&rustls::version::TLS13])
                    .unwrap()
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                cfg.alpn_protocols = vec![b"test".to_vec()];
                cfg
            } else {
                (*client_tls(&c).build().unwrap()).clone()
            };
            ctls.key_log = keylog.clone();
            let now = Instant::now();
            let transport = Arc::new(TransportConfig::default());
            let mut sc = ServerConfig::new(Arc::new(stls), b"token secret", 1_700_000_000);
            sc.transport = transport.clone();
            if o.retry {
                sc.retry = RetryPolicy::Always;
            }
            let server = Endpoint::with_rng(EndpointConfig::new(b"reset"), Some(sc), now, Box::new(SeededRandom::new(o.seed)));
            let client = Endpoint::with_rng(EndpointConfig::new(b"creset"), None, now, Box::new(SeededRandom::new(o.seed + 1)));
            let client_addr: SocketAddr = "10.0.0.2:50000".parse().unwrap();
            Sim {
                t0: now,
                now,
                client,
                server,
                client_cfg: ClientConfig { tls: Arc::new(ctls), transport, version: o.version },
                client_addr,
                nat_addr: client_addr,
                server_addr: "10.0.1.1:443".parse().unwrap(),
                ecn: o.ecn,
                delay: o.delay,
                flight: Vec::new(),
                client_side: Vec::new(),
                server_side: Vec::new(),
                keylog,
                server_streams: HashMap::new(),
                client_streams: HashMap::new(),
                drop_to_server: Vec::new(),
                sent_to_server: 0,
            }
        }

        fn wall(&self) -> SystemTime {
            UNIX_EPOCH + Duration::from_secs(1_800_000_000) + (self.now - self.t0)
        }

        fn connect(&mut self) -> ConnectionHandle {
            self.client.connect(self.now, &self.client_cfg, self.server_addr, "localhost", Default::default()).unwrap()
        }

        /// Opens a stream asking the server for `resp_len` bytes.
        fn request(&mut self, h: ConnectionHandle, req_len: usize, resp_len: u64) -> StreamId {
            let conn = self.client.connection(h).unwrap();
            let id = conn.open_stream(Dir::Bi).expect("stream");
            let mut req = resp_len.to_be_bytes().to_vec();
            req.resize(req_len.max(8), b'r');
            assert_eq!(conn.write(id, &req).unwrap(), req.len());
            conn.finish(id).unwrap();
            self.client_streams.insert((h, id), (0, false));
            id
        }

        fn received(&self, h: ConnectionHandle, id: StreamId) -> (usize, bool) {
            self.client_streams.get(&(h, id)).copied().unwrap_or_default()
        }

        fn handshaken(&self, h: ConnectionHandle) -> bool {
            self.client.connection_ref(h).is_some_and(|c| !c.is_handshaking())
        }

        fn send(&mut self, from_client: bool, data: Vec<u8>, dest: SocketAddr) {
            let time = self.wall();
            if from_client {
                self.client_side.push(Record { time, src: self.client_addr, dst: self.server_addr, ecn: self.ecn, payload: data.clone() });
                self.sent_to_server += 1;
                if !self.drop_to_server.contains(&self.sent_to_server) {
                    self.flight.push((self.now + self.delay, true, data, self.nat_addr));
                }
            } else {
                self.server_side.push(Record { time, src: self.server_addr, dst: dest, ecn: self.ecn, payload: data.clone() });
                self.flight.push((self.now + self.delay, false, data, dest));
            }
        }

        fn collect(&mut self) -> bool {
            let mut out = Vec::new();
            let mut buf = vec![0u8; 65536];
            let now = self.now;
            for (from_client, ep) in [(true, &mut self.client), (false, &mut self.server)] {
                while let Some(t) = ep.poll_transmit(now, &mut buf) {
                    let seg = t.segment_size.unwrap_or(t.size).max(1);
                    for chunk in buf[..t.size].chunks(seg) {
                        out.push((from_client, chunk.to_vec(), t.destination));
                    }
                }
            }
            let any = !out.is_empty();
            for (from_client, data, dest) in out {
                self.send(from_client, data, dest);
            }
            any
        }

        fn deliver(&mut self) -> bool {
            let now = self.now;
            let (due, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.flight).into_iter().partition(|f| f.0 <= now);
            self.flight = rest;
            let ecn = EcnCodepoint::from_bits(self.ecn);
            let any = !due.is_empty();
            for (_, from_client, mut data, addr) in due {
                let time = self.wall();
                if from_client {
                    self.server_side.push(Record { time, src: addr, dst: self.server_addr, ecn: self.ecn, payload: data.clone() });
                    self.server.handle(now, addr, ecn, &mut data);
                } else if addr == self.nat_addr {
                    self.client_side.push(Record { time, src: self.server_addr, dst: self.client_addr, ecn: self.ecn, payload: data.clone() });
                    self.client.handle(now, self.server_addr, ecn, &mut data);
                }
            }
            any
        }

        fn app(&mut self) {
            let mut buf = vec![0u8; 65536];
            let handles: Vec<_> = self.server.handles().collect();
            for h in handles {
                let Some(conn) = self.server.connection(h) else { continue };
                while let Some(id) = conn.accept_stream(Dir::Bi) {
                    self.server_streams.entry((h, id)).or_default();
                }
                for ((_, id), s) in self.server_streams.iter_mut().filter(|((hh, _), _)| *hh == h) {
                    while s.left.is_none() {
                        let Ok(o) = conn.read(*id, &mut buf) else { break };
                        s.request.extend_from_slice(&buf[..o.bytes]);
                        if o.fin {
                            let n = u64::from_be_bytes(s.request[..8].try_into().unwrap());
                            s.left = Some(n as usize);
                        } else if o.bytes == 0 {
                            break;
                        }
                    }
                    if let Some(left) = s.left.as_mut() {
                        while *left > 0 {
                            let chunk = vec![0x5a; (*left).min(16384)];
                            match conn.write(*id, &chunk) {
                                Ok(n) if n > 0 => *left -= n,
                                _ => break,
                            }
                        }
                        if *left == 0 && !s.finished {
                            conn.finish(*id).unwrap();
                            s.finished = true;
                        }
                    }
                }
            }
            for ((h, id), (got, fin)) in self.client_streams.iter_mut() {
                let Some(conn) = self.client.connection(*h) else { continue };
                while !*fin {
                    let Ok(o) = conn.read(*id, &mut buf) else { break };
                    *got += o.bytes;
                    *fin = o.fin;
                    if o.bytes == 0 {
                        break;
                    }
                }
            }
        }

        fn timers(&mut self) {
            self.client.handle_timeout(self.now);
            self.server.handle_timeout(self.now);
        }

        fn next_event(&mut self) -> Option<Instant> {
            let mut t = self.flight.iter().map(|f| f.0).min();
            for ep in [&mut self.client, &mut self.server] {
                if let Some(x) = ep.poll_timeout() {
                    t = Some(t.map_or(x, |t| t.min(x)));
                }
            }
            t
        }

        fn step(&mut self) -> bool {
            let sent = self.collect();
            let got = self.deliver();
            self.app();
            if sent || got {
                return true;
            }
            self.timers();
            if self.collect() {
                return true;
            }
            match self.next_event() {
                Some(t) if t > self.now => {
                    self.now = t;
                    true
                }
                Some(_) => {
                    self.timers();
                    true
                }
                None => false,
            }
        }

        fn run_until(&mut self, limit: Duration, mut cond: impl FnMut(&mut Sim) -> bool) {
            let end = self.now + limit;
            while !cond(self) {
                assert!(self.now < end, "condition not met within {limit:?}");
                assert!(self.step(), "network went idle");
            }
        }

        fn fetch(&mut self, h: ConnectionHandle, resp_len: u64) {
            self.run_until(Duration::from_secs(10), |s| s.handshaken(h));
            let id = self.request(h, 100, resp_len);
            self.run_until(Duration::from_secs(30), |s| s.received(h, id).1);
            assert_eq!(self.received(h, id).0 as u64, resp_len);
        }

        fn keylog_text(&self) -> String {
            self.keylog.0.lock().unwrap().clone()
        }

        /// Writes both pcaps and the key log to the temp directory when
        /// QUICPRO_ANALYZE_KEEP is set (to compare with tshark or try
        /// `quic-trace`).
        fn save(&self, name: &str) {
            if std::env::var_os("QUICPRO_ANALYZE_KEEP").is_none() {
                return;
            }
            for (side, recs) in [("client", &self.client_side), ("server", &self.server_side)] {
                let mut w = pcap::Writer::create(&tmp(&format!("{name}-{side}.pcap"))).unwrap();
                for r in recs {
                    w.write(r).unwrap();
                }
                w.flush().unwrap();
            }
            std::fs::write(tmp(&format!("{name}-keys.log")), self.keylog_text()).unwrap();
        }

        fn trace(&self, keys: bool) -> Trace {
            let keylog = keys.then(|| KeyLog::parse(&self.keylog_text()));
            Trace::from_records(self.client_side.clone(), self.server_side.clone(), keylog)
        }
    }

    fn failures(v: &Verdict) -> Vec<&String> {
        v.details.iter().filter(|d| d.starts_with("FAIL")).collect()
    }

    fn assert_pass(name: &str, v: &Verdict) {
        assert!(v.passed && v.unsupported_reason.is_none(), "{name}: {v:#?}");
    }

    fn assert_fail(name: &str, v: &Verdict) {
        assert!(!v.passed && v.unsupported_reason.is_none(), "{name} should fail: {v:#?}");
    }

    fn tmp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("quicpro-analyze-{}-{name}", std::process::id()))
    }

    /// A v1 handshake and a download with every datagram marked ECT(0),
    /// analyzed from pcap and key log files, then again without keys.
    #[test]
    fn v1_transfer_with_and_without_keys() {
        let mut s = Sim::new(Opts { ecn: 2, ..Opts::default() });
        let h = s.connect();
        s.fetch(h, 50_000);

        let (cp, sp, kp) = (tmp("v1-client.pcap"), tmp("v1-server.pcap"), tmp("v1-keys.log"));
        for (path, recs) in [(&cp, &s.client_side), (&sp, &s.server_side)] {
            let mut w = pcap::Writer::create(path).unwrap();
            for r in recs {
                w.write(r).unwrap();
            }
            w.flush().unwrap();
        }
        std::fs::write(&kp, s.keylog_text()).unwrap();
        let trace = Trace::load(&cp, &sp, Some(&kp)).unwrap();
        let keyless = Trace::load(&cp, &sp, None).unwrap();
        // QUICPRO_ANALYZE_KEEP=1 keeps the files (to try `quic-trace` on them).
        if std::env::var_os("QUICPRO_ANALYZE_KEEP").is_none() {
            for p in [&cp, &sp, &kp] {
                let _ = std::fs::remove_file(p);
            }
        }
        assert_eq!(trace.unclassified, [0, 0]);
        assert!(trace.client_side.iter().any(|d| d.direction == Direction::ServerToClient));

        let r = trace.report();
        assert!(r.keys.given && r.keys.usable);
        assert_eq!(r.handshakes, 1);
        assert_eq!(r.server_initial_versions, [Version::V1]);
        assert_eq!(r.client_initial_versions, [Version::V1]);
        assert_eq!(r.client_handshake_versions, [Version::V1]);
        assert_eq!(r.server_handshake_versions, [Version::V1]);
        assert_eq!(r.retries, 0);
        for side in [&r.client_side, &r.server_side] {
            assert_eq!(side.connections.len(), 1, "{:?}", side.vantage);
            assert_eq!(side.undecryptable_packets, 0, "{:?}", side.vantage);
            assert_eq!(side.packets_without_keys, [0, 0], "{:?}", side.vantage);
            assert_eq!(side.unattributed_packets, 0, "{:?}", side.vantage);
            assert_eq!(side.unparseable_packets, 0, "{:?}", side.vantage);
            let c = &side.connections[0];
            assert!(c.keys_in_keylog);
            assert_eq!(c.client_hello_packets, 1);
            assert_eq!(c.client_hellos.len(), 1);
            let ch = &c.client_hellos[0];
            assert!(ch.cipher_suites.contains(&0x1301), "{:x?}", ch.cipher_suites);
            assert_eq!(ch.alpn, [b"test".to_vec()]);
            assert_eq!(ch.server_name.as_deref(), Some("localhost"));
            let vi = ch.transport_params.as_ref().and_then(|p| p.version_information).expect("version_information");
            assert_eq!(vi.chosen_version, Version::V1);
            assert_eq!(c.server_hello.as_ref().map(|h| h.psk_accepted), Some(false));
            assert_eq!(c.server_certificate, Some(true));
            let tp = c.server_transport_params.as_ref().expect("server transport parameters");
            assert_eq!(tp.initial_max_streams_bidi, 100);
            assert_eq!(tp.original_destination_connection_id, Some(c.odcid));
            assert!(c.server_handshake_crypto_bytes.is_some_and(|b| b > 200));
            assert!(c.handshake_confirmed);
            assert!(c.client_1rtt_bytes.is_some_and(|b| b >= 100));
            assert!(c.server_stream_bytes >= 50_000);
            assert_eq!(c.client_key_phases.map(|k| k.phase1_packets), Some(0));
            assert!(c.server_key_phases.is_some_and(|k| k.phase0_packets > 30 && k.max_generation == 0));
            assert!(c.client_sent_ack_ecn && c.server_sent_ack_ecn);
            assert_eq!(c.client_0rtt_packets, 0);
            assert!(!c.server_new_cids.is_empty());
        }
        assert!(r.client_to_server_ecn.ect0 > 0 && r.client_to_server_ecn.ce == 0);
        assert!(r.server_to_client_ecn.ect0 > 0 && r.server_to_client_ecn.not_ect == 0);
        assert_eq!((r.client_sent_ack_ecn, r.server_sent_ack_ecn), (Some(true), Some(true)));
        let a = &r.amplification;
        assert!(a.client_handshake_seen && !a.version_negotiation);
        assert!(a.max_factor.is_some_and(|f| f <= 3.0), "{a:?}");
        assert_eq!(a.datagrams_over_4x + a.datagrams_over_3x, 0);
        assert!(r.server_1rtt_span.is_some_and(|d| d > Duration::ZERO));
        assert!(r.goodput_kbps(50_000).is_some_and(|g| g > 0.0));
        assert_eq!(r.paths.client_addresses_at_server, [s.client_addr]);
        assert!(r.paths.server_path_changes.is_empty());
        assert_eq!(r.server_ipv4_datagrams, r.server_side.server_to_client_datagrams);

        let p = CheckParams::default();
        for case in ["handshake", "transfer", "http3", "blackhole", "transferloss", "transfercorruption", "multiplexing", "ecn"] {
            assert_pass(case, &checks::check(case, &r, &p).unwrap());
        }
        assert_pass("handshakeloss(1)", &checks::handshakeloss(&r, 1));
        for case in ["longrtt", "chacha20", "retry", "resumption", "keyupdate", "ipv6", "v2", "rebind-port", "rebind-addr", "connectionmigration"] {
            assert_fail(case, &checks::check(case, &r, &p).unwrap());
        }
        // A small certificate: everything but the CRYPTO volume holds.
        let amp = checks::amplificationlimit(&r, 7500);
        assert_eq!(failures(&amp).len(), 1, "{amp:#?}");
        assert_pass("amplificationlimit(100)", &checks::amplificationlimit(&r, 100));
        assert!(checks::check("nosuchcase", &r, &p).is_none());

        // Without keys: Initials still decrypt; nothing that needs keys is guessed.
        let k = keyless.report();
        assert!(!k.keys.given && !k.keys.usable);
        assert_eq!(k.handshakes, 1);
        for side in [&k.client_side, &k.server_side] {
            let c = &side.connections[0];
            assert_eq!(c.client_hello_packets, 1);
            assert!(c.server_hello.is_some());
            assert_eq!(c.server_certificate, None);
            assert_eq!(c.server_transport_params, None);
            assert_eq!(c.server_handshake_crypto_bytes, None);
            assert_eq!(c.client_1rtt_bytes, None);
            assert_eq!((c.client_key_phases, c.server_key_phases), (None, None));
            assert!(side.packets_without_keys[0] > 0 && side.packets_without_keys[1] > 0);
            assert_eq!(side.undecryptable_packets, 0);
        }
        // The Initial-space ACKs already carry ECN counts: known without keys.
        assert_eq!((k.client_sent_ack_ecn, k.server_sent_ack_ecn), (Some(true), Some(true)));
        assert!(k.server_1rtt_span.is_some());
        assert_pass("handshake (keyless)", &checks::handshake(&k));
        for case in ["multiplexing", "keyupdate", "ecn", "amplificationlimit", "resumption", "rebind-port"] {
            let v = checks::check(case, &k, &p).unwrap();
            assert!(!v.passed && v.is_unsupported(), "{case}: {v:?}");
        }
    }

    /// RFC 9001 §6: after the client initiates a key update both sides send
    /// with Key Phase 1, followed through the generations.
    #[test]
    fn key_update_seen_on_both_sides() {
        let mut s = Sim::new(Opts { seed: 2, ..Opts::default() });
        let h = s.connect();
        s.fetch(h, 10_000);
        let now = s.now;
        assert!(s.client.connection(h).unwrap().initiate_key_update(now));
        s.fetch(h, 30_000);
        s.save("keyupdate");
        let r = s.trace(true).report();
        for side in [&r.client_side, &r.server_side] {
            assert_eq!(side.undecryptable_packets, 0);
            let c = &side.connections[0];
            let (ck, sk) = (c.client_key_phases.unwrap(), c.server_key_phases.unwrap());
            assert!(ck.phase0_packets > 0 && ck.phase1_packets > 0 && ck.max_generation == 1, "{ck:?}");
            assert!(sk.phase0_packets > 0 && sk.phase1_packets > 0 && sk.max_generation == 1, "{sk:?}");
            assert!(c.client_1rtt_bytes.is_some());
        }
        assert_pass("keyupdate", &checks::keyupdate(&r));
        assert_pass("handshake", &checks::handshake(&r));
        // Nothing was ECN-marked.
        assert_eq!(r.client_to_server_ecn.not_ect, r.client_side.client_to_server_datagrams as u64);
        assert_eq!(r.client_sent_ack_ecn, Some(false));
        assert_fail("ecn", &checks::ecn(&r));
    }

    /// RFC 9000 §8.1.2: a Retry, its token echoed, packet numbers continued;
    /// the Initial keys switch to the Retry's SCID.
    #[test]
    fn retry_token_echoed_and_packet_numbers_continue() {
        let mut s = Sim::new(Opts { retry: true, seed: 3, ..Opts::default() });
        let h = s.connect();
        s.fetch(h, 5_000);
        s.save("retry");
        let r = s.trace(false).report();
        assert_eq!(r.retries, 1);
        assert_eq!(r.handshakes, 1);
        for side in [&r.client_side, &r.server_side] {
            assert_eq!(side.retry_packets, 1);
            assert_eq!(side.undecryptable_packets, 0, "{:?}", side.vantage);
            assert_eq!(side.connections.len(), 1, "the retried Initials stay one connection");
            let c = &side.connections[0];
            let rt = c.retry.as_ref().expect("retry");
            assert_eq!(rt.count, 1);
            assert!(rt.integrity_ok && rt.token_echoed);
            assert_eq!(rt.tokens.len(), 1);
            assert!(!rt.tokens[0].is_empty());
            assert_eq!(rt.highest_client_pn_before, Some(0));
            assert!(rt.first_client_pn_with_token.is_some_and(|pn| pn > 0), "{rt:?}");
            // Both ClientHello packets (before and after the Retry) count.
            assert_eq!(c.client_hello_packets, 2);
            assert!(c.server_hello.is_some());
        }
        assert_pass("retry", &checks::retry(&r));
        let v = checks::handshake(&r);
        assert_fail("handshake", &v);
        assert_eq!(failures(&v).len(), 1);
        assert_fail("transfer", &checks::transfer(&Sim::new(Opts::default()).trace(false).report()));
    }

    /// QUIC v2 (RFC 9369): its salt, labels and packet types.
    #[test]
    fn v2_connection_decrypts() {
        let mut s = Sim::new(Opts { version: Version::V2, seed: 4, ..Opts::default() });
        let h = s.connect();
        s.fetch(h, 20_000);
        s.save("v2");
        let r = s.trace(true).report();
        assert_eq!(r.server_initial_versions, [Version::V2]);
        assert_eq!(r.client_initial_versions, [Version::V2]);
        assert_eq!(r.client_handshake_versions, [Version::V2]);
        assert_eq!(r.server_handshake_versions, [Version::V2]);
        for side in [&r.client_side, &r.server_side] {
            assert_eq!(side.undecryptable_packets, 0);
            assert_eq!(side.packets_without_keys, [0, 0]);
            let c = &side.connections[0];
            assert_eq!(c.server_certificate, Some(true));
            assert!(c.server_stream_bytes >= 20_000);
            assert!(c.client_1rtt_bytes.is_some());
        }
        // quic-core starts in v2 rather than negotiating from v1: the only
        // failure is the missing v1 in the client's Initials.
        let v = checks::v2(&r);
        assert_eq!(failures(&v).len(), 1, "{v:#?}");
        assert!(failures(&v)[0].contains("include v1"));
        assert_fail("handshake", &checks::handshake(&r));
    }

    /// longrtt: with a 1.5 s RTT the client's PTO fires before the
    /// server's answer arrives; quic-core's probe carries its ClientHello
    /// again (RFC 9002 §6.2.4: unacknowledged data in probes), so the
    /// runner's "≥ 2 ClientHellos" holds. Without the retransmission (the
    /// trace cut to the first ClientHello) the check fails.
    #[test]
    fn long_rtt_client_hello_count() {
        let mut s = Sim::new(Opts { delay: Duration::from_millis(750), seed: 9, ..Opts::default() });
        let h = s.connect();
        s.fetch(h, 1_024);
        let r = s.trace(false).report();
        let c = &r.client_side.connections[0];
        assert!(c.client_hello_packets >= 2, "the PTO probe resent the ClientHello: {}", c.client_hello_packets);
        assert_pass("longrtt", &checks::longrtt(&r));
        assert_pass("handshake", &checks::handshake(&r));
        // Only the first client datagram: one ClientHello, the check fails.
        let first: Vec<_> = s.client_side.iter().take(1).cloned().collect();
        let r1 = Trace::from_records(first, Vec::new(), None).report();
        assert_eq!(r1.client_side.connections[0].client_hello_packets, 1);
        assert_fail("longrtt", &checks::longrtt(&r1));
    }

    /// chacha20: ChaCha20-Poly1305 for Handshake and 1-RTT packets,
    /// including its header protection (RFC 9001 §5.4.4).
    #[test]
    fn chacha20_only_client() {
        let mut s = Sim::new(Opts { chacha_only: true, seed: 10, ..Opts::default() });
        let h = s.connect();
        s.fetch(h, 20_000);
        let now = s.now;
        assert!(s.client.connection(h).unwrap().initiate_key_update(now));
        s.fetch(h, 20_000);
        s.save("chacha");
        let r = s.trace(true).report();
        for side in [&r.client_side, &r.server_side] {
            let c = &side.connections[0];
            assert_eq!(c.client_hellos[0].cipher_suites, [0x1303]);
            assert_eq!(c.server_hello.as_ref().map(|h| h.cipher_suite), Some(0x1303));
            assert_eq!(side.undecryptable_packets, 0);
            assert_eq!(side.packets_without_keys, [0, 0]);
            assert!(c.server_stream_bytes >= 40_000);
        }
        assert_pass("chacha20", &checks::chacha20(&r));
        assert_pass("keyupdate", &checks::keyupdate(&r));
    }

    /// amplificationlimit: a 25-certificate flight, and the client's 2nd–7th
    /// datagrams lost (the runner's droplist): the server must wait for
    /// more client bytes before sending past 3× (RFC 9000 §8.1).
    #[test]
    fn amplification_limit_with_big_flight_and_drops() {
        let mut s = Sim::new(Opts { chain_len: 25, seed: 11, ..Opts::default() });
        s.drop_to_server = (2..=7).collect();
        let h = s.connect();
        s.fetch(h, 5_000);
        s.save("amp");
        let r = s.trace(true).report();
        let a = &r.amplification;
        assert!(a.server_handshake_crypto_bytes.is_some_and(|b| b >= 7500), "{a:?}");
        assert!(a.client_handshake_seen);
        assert!(a.server_bytes > 2 * a.client_initial_bytes, "the limit was what held the server back: {a:?}");
        assert!(a.max_factor.is_some_and(|f| f <= 3.0), "{a:?}");
        assert_eq!(r.server_side.client_to_server_datagrams + 6, r.client_side.client_to_server_datagrams);
        assert_pass("amplificationlimit", &checks::amplificationlimit(&r, 7500));
        assert_pass("handshake", &checks::handshake(&r));
    }

    /// A resumed second connection: no Certificate, 0-RTT requests.
    #[test]
    fn resumption_and_zero_rtt() {
        let mut s = Sim::new(Opts { seed: 5, ..Opts::default() });
        let h1 = s.connect();
        s.fetch(h1, 2_000);
        s.run_until(Duration::from_secs(5), |s| s.client.connection_ref(h1).is_some_and(|c| c.tls().tickets_received() > 0));
        let h2 = s.connect();
        assert!(s.client.connection_ref(h2).unwrap().has_zero_rtt());
        let ids: Vec<_> = (0..5).map(|_| s.request(h2, 260, 32)).collect();
        s.run_until(Duration::from_secs(10), |s| ids.iter().all(|id| s.received(h2, *id).1));
        s.save("zerortt");

        let r = s.trace(true).report();
        assert_eq!(r.handshakes, 2);
        let cs = &r.client_side.connections;
        assert_eq!(cs.len(), 2);
        assert_eq!(cs[0].server_certificate, Some(true));
        assert_eq!(cs[1].server_certificate, Some(false));
        let (ch, sh) = (&cs[1].client_hellos[0], cs[1].server_hello.as_ref().unwrap());
        assert!(ch.offers_psk && ch.offers_early_data && sh.psk_accepted);
        assert_eq!(cs[1].server_accepted_early_data, Some(true));
        assert_eq!(cs[0].client_0rtt_packets, 0);
        assert!(cs[1].client_0rtt_packets > 0 && cs[1].client_0rtt_decrypted);
        assert!(cs[1].client_0rtt_bytes >= 5 * 260, "{}", cs[1].client_0rtt_bytes);
        assert_eq!(r.client_side.zero_rtt_versions, [Version::V1]);
        assert_eq!(r.client_side.undecryptable_packets, 0);
        assert_eq!(r.server_side.undecryptable_packets, 0);
        assert_pass("resumption", &checks::resumption(&r));
        assert_pass("zerortt", &checks::zerortt(&r, 5000));
        assert_fail("zerortt (tiny limit)", &checks::zerortt(&r, 10));
        assert_fail("handshake", &checks::handshake(&r));

        // Without keys the 0-RTT volume falls back to the Length fields.
        let k = s.trace(false).report();
        let c = &k.client_side.connections[1];
        assert!(!c.client_0rtt_decrypted && c.client_0rtt_bytes > cs[1].client_0rtt_bytes);
        assert_eq!(c.server_certificate, None);
        assert!(checks::resumption(&k).is_unsupported());
    }

    /// Two connections multiplexed over one client socket are told apart
    /// by their connection IDs.
    #[test]
    fn multiplexed_connections_on_one_socket() {
        let mut s = Sim::new(Opts { seed: 6, ..Opts::default() });
        let (h1, h2) = (s.connect(), s.connect());
        s.run_until(Duration::from_secs(5), |s| s.handshaken(h1) && s.handshaken(h2));
        let (a, b) = (s.request(h1, 100, 3_000), s.request(h2, 100, 7_000));
        s.run_until(Duration::from_secs(10), |s| s.received(h1, a).1 && s.received(h2, b).1);
        let r = s.trace(true).report();
        assert_eq!(r.handshakes, 2);
        for side in [&r.client_side, &r.server_side] {
            assert_eq!(side.connections.len(), 2);
            assert_eq!(side.unattributed_packets, 0);
            let mut bytes: Vec<u64> = side.connections.iter().map(|c| c.server_stream_bytes).collect();
            bytes.sort_unstable();
            assert!(bytes[0] >= 3_000 && bytes[0] < 7_000 && bytes[1] >= 7_000, "{bytes:?}");
        }
        assert_pass("handshakeloss(2)", &checks::handshakeloss(&r, 2));
        assert_fail("handshakeloss(50)", &checks::handshakeloss(&r, 50));
    }

    /// NAT rebinding (RFC 9000 §9.3): first the port changes, then the IP;
    /// the server validates each new path.
    #[test]
    fn nat_rebinding_paths_validated() {
        let mut s = Sim::new(Opts { seed: 7, ..Opts::default() });
        let h = s.connect();
        s.fetch(h, 5_000);
        let new_port: SocketAddr = "10.0.0.2:50001".parse().unwrap();
        let new_ip: SocketAddr = "10.0.0.3:50002".parse().unwrap();
        let id = s.request(h, 100, 300_000);
        let mut stage = 0;
        s.run_until(Duration::from_secs(30), |s| {
            let got = s.received(h, id).0;
            if stage == 0 && got >= 60_000 {
                s.nat_addr = new_port;
                stage = 1;
            } else if stage == 1 && got >= 180_000 {
                s.nat_addr = new_ip;
                stage = 2;
            }
            s.received(h, id).1
        });
        assert_eq!(stage, 2);
        s.save("rebind");
        let r = s.trace(true).report();
        let p = &r.paths;
        assert_eq!(p.client_addresses_at_server, [s.client_addr, new_port, new_ip]);
        assert_eq!(p.client_ports.len(), 3);
        assert_eq!(p.client_ips.len(), 2);
        assert!(p.server_path_changes.len() >= 2, "{:?}", p.server_path_changes);
        assert!(p.server_path_changes.iter().any(|c| c.to == new_port && c.new_address));
        assert!(p.server_path_changes.iter().all(|c| c.path_challenge == Some(true)), "{:?}", p.server_path_changes);
        assert!(p.challenges_complete && p.responses_complete);
        assert!(p.client_path_changes.is_empty(), "the client itself never moved");
        assert_eq!(r.server_side.connections.len(), 1);
        assert_eq!(r.server_side.unattributed_packets, 0);
        // Every challenge on the path the server moved to was answered...
        for change in &p.server_path_changes {
            let first = p.server_challenges.iter().find(|c| c.to == change.to).expect("challenge on the new path");
            assert!(p.client_responses.contains(&first.data));
        }
        // ...but quic-core also validates the previous path (RFC 9000
        // §9.3.3), whose NAT binding is gone: those challenges are never
        // answered, which the runner's rebind checks fail.
        let unanswered: Vec<_> = p.server_challenges.iter().filter(|c| !p.client_responses.contains(&c.data)).collect();
        assert_eq!(unanswered.iter().map(|c| c.to).collect::<Vec<_>>(), [s.client_addr, new_port], "{:?}", p.server_challenges);
        for v in [checks::rebind_port(&r), checks::rebind_addr(&r)] {
            assert_fail("rebind", &v);
            assert_eq!(failures(&v).len(), 1, "{v:#?}");
            assert!(failures(&v)[0].contains("without a client PATH_RESPONSE"));
        }
        assert_fail("connectionmigration", &checks::connectionmigration(&r));
    }

    /// Corrupted and garbage datagrams are counted, never a panic, and do
    /// not disturb the rest.
    #[test]
    fn corrupted_and_garbage_input() {
        let mut s = Sim::new(Opts { seed: 8, ..Opts::default() });
        let h = s.connect();
        s.fetch(h, 20_000);
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        // The network corrupts one byte in the first 50 of every 4th
        // server datagram arriving at the client (as ns-3's corrupt-rate).
        let mut client_side = s.client_side.clone();
        let mut corrupted = 0;
        for (i, rec) in client_side.iter_mut().enumerate() {
            if rec.src == s.server_addr && i % 4 == 0 && rec.payload.len() > 60 {
                let at = (next() % 50) as usize;
                rec.payload[at] ^= 1 + (next() % 255) as u8;
                corrupted += 1;
            }
        }
        assert!(corrupted > 3);
        // Garbage: random bytes, truncated long headers, a zero-length
        // datagram, a CRYPTO-free Initial-looking header.
        let base = client_side[0].clone();
        let mut garbage = vec![Vec::new(), vec![0xc0], vec![0xc0, 0, 0, 0, 1, 21], vec![0x40; 3], vec![0xff; 40]];
        for n in [1usize, 7, 30, 200, 1200] {
            garbage.push((0..n).map(|_| next() as u8).collect());
        }
        let mut first = base.payload.clone();
        for _ in 0..200 {
            let at = (next() as usize) % first.len();
            first[at] = next() as u8;
            garbage.push(first.clone());
        }
        for g in garbage {
            client_side.push(Record { payload: g.clone(), ..base.clone() });
            let mut from_server = base.clone();
            std::mem::swap(&mut from_server.src, &mut from_server.dst);
            client_side.push(Record { payload: g, ..from_server });
        }
        let t = Trace::from_records(client_side, s.server_side.clone(), Some(KeyLog::parse(&s.keylog_text())));
        let r = t.report();
        assert!(r.client_side.undecryptable_packets + r.client_side.unparseable_packets + r.client_side.unattributed_packets > 0);
        assert!(r.client_side.undecryptable_packets > 0);
        assert_eq!(r.server_side.undecryptable_packets, 0);
        assert_eq!(r.client_side.connections.len(), 1, "garbage starts no connection");
        assert_eq!(r.handshakes, 1);
        assert_pass("transfer", &checks::transfer(&r));
        // Keyless too.
        let _ = Trace { keylog: None, ..t }.report();
    }

    #[test]
    fn keylog_parsing() {
        let r1 = "11".repeat(32);
        let r2 = "22".repeat(32);
        let text = format!(
            "# comment\n\nCLIENT_HANDSHAKE_TRAFFIC_SECRET {r1} {}\nSERVER_HANDSHAKE_TRAFFIC_SECRET {r1} {}\n\
             CLIENT_TRAFFIC_SECRET_0 {r1} {}\nCLIENT_TRAFFIC_SECRET_0 {r1} {}\nEXPORTER_SECRET {r1} {}\n\
             CLIENT_EARLY_TRAFFIC_SECRET {r2} {}\nSERVER_TRAFFIC_SECRET_0 zz {}\nSHORT line\nCLIENT_RANDOM {r2} {}\n",
            "aa".repeat(32),
            "bb".repeat(32),
            "cc".repeat(32),
            "dd".repeat(32),
            "ee".repeat(32),
            "ff".repeat(32),
            "00".repeat(32),
            "01".repeat(48),
        );
        let k = KeyLog::parse(&text);
        assert_eq!(k.len(), 2);
        assert_eq!(k.malformed_lines(), 2);
        assert!(k.has_server_handshake_secret());
        let s = k.secrets(&[0x11; 32]).unwrap();
        assert_eq!(s.client_handshake.as_deref(), Some(&[0xaa; 32][..]));
        assert_eq!(s.server_handshake.as_deref(), Some(&[0xbb; 32][..]));
        assert_eq!(s.client_traffic.as_deref(), Some(&[0xcc; 32][..]), "first line wins");
        assert_eq!(s.server_traffic, None);
        assert_eq!(k.secrets(&[0x22; 32]).unwrap().client_early.as_deref(), Some(&[0xff; 32][..]));
        assert!(!format!("{s:?}").contains("170"), "secrets are not printed");
        assert!(!KeyLog::parse("CLIENT_TRAFFIC_SECRET_0 {r1} 00").has_server_handshake_secret());
        assert!(matches!(KeyLog::load(Path::new("/nonexistent/keys.log")), Err(AnalyzeError::KeyLog { .. })));
        assert!(matches!(Trace::load(Path::new("/nonexistent/c.pcap"), Path::new("/nonexistent/s.pcap"), None), Err(AnalyzeError::Pcap { .. })));
    }

    #[test]
    fn directions_follow_address_changes() {
        let t = |ms: u64| UNIX_EPOCH + Duration::from_millis(ms);
        let a = |s: &str| -> SocketAddr { s.parse().unwrap() };
        let rec = |ms, src, dst| Record { time: t(ms), src: a(src), dst: a(dst), ecn: 0, payload: vec![0x40, 1, 2] };
        // Out of order on purpose: sorting puts the client's first datagram first.
        let records = vec![
            rec(2, "10.0.1.1:443", "10.0.0.2:5000"),
            rec(1, "10.0.0.2:5000", "10.0.1.1:443"),
            rec(3, "10.0.0.2:5001", "10.0.1.1:443"), // NAT rebinding: new port
            rec(4, "10.0.1.1:443", "10.0.0.2:5001"),
            rec(5, "10.0.0.9:7000", "10.0.1.1:443"), // new IP
            rec(6, "[fd00::1]:443", "[fd00::2]:9"),  // another server address, server port
            rec(7, "[fd00::3]:1", "[fd00::4]:2"),    // nothing known
        ];
        let (d, unclassified) = classify(records);
        let dirs: Vec<_> = d.iter().map(|d| d.direction).collect();
        use Direction::{ClientToServer as C, ServerToClient as S};
        assert_eq!(dirs, [C, S, C, S, C, S]);
        assert_eq!(unclassified, 1);
        assert_eq!(classify(Vec::new()), (Vec::new(), 0));
    }

    #[test]
    fn amplification_budget_as_the_runner_counts() {
        let g = |direction, first, size| DgramInfo {
            time: UNIX_EPOCH,
            src: "10.0.0.2:1".parse().unwrap(),
            dst: "10.0.1.1:443".parse().unwrap(),
            direction,
            size,
            first,
            has_vn: false,
            has_short: false,
            has_handshake: false,
            all_decrypted: true,
            challenges: Vec::new(),
            responses: Vec::new(),
            first_dcid: None,
        };
        use Direction::{ClientToServer as C, ServerToClient as S};
        let mut validated = g(C, FirstKind::Initial, 1200);
        validated.has_handshake = true;
        let ok = amplification_report(&[
            g(C, FirstKind::Initial, 1200),
            g(S, FirstKind::Initial, 1200),
            g(S, FirstKind::Handshake, 2400),
            validated,
            g(S, FirstKind::Short, 50_000),
        ]);
        assert!(ok.client_handshake_seen);
        assert_eq!((ok.client_initial_bytes, ok.server_bytes), (1200, 3600));
        assert_eq!(ok.max_factor, Some(3.0));
        assert_eq!((ok.datagrams_over_3x, ok.datagrams_over_4x), (0, 0));
        let warn = amplification_report(&[g(C, FirstKind::Initial, 1000), g(S, FirstKind::Initial, 3500)]);
        assert_eq!((warn.datagrams_over_3x, warn.datagrams_over_4x, warn.client_handshake_seen), (1, 0, false));
        let bad = amplification_report(&[g(C, FirstKind::Initial, 1000), g(S, FirstKind::Initial, 3000), g(S, FirstKind::Handshake, 1000)]);
        assert_eq!(bad.datagrams_over_4x, 1);
        let early = amplification_report(&[g(S, FirstKind::Initial, 10)]);
        assert_eq!(early.max_factor, Some(f64::INFINITY));
    }

    #[test]
    fn crypto_stream_reassembly() {
        let mut s = CryptoStream::default();
        // Two messages, delivered out of order and overlapping.
        let mut stream = vec![8, 0, 0, 3, 1, 2, 3, 11, 0, 0, 2, 9, 9];
        assert!(s.insert(5, &stream[5..]).is_empty());
        let got = s.insert(0, &stream[..7]);
        assert_eq!(got, vec![(0, 8, vec![1, 2, 3]), (7, 11, vec![9, 9])]);
        assert!(s.insert(0, &stream).is_empty(), "retransmissions parse nothing new");
        // Offsets past the cap are counted, not buffered.
        assert!(s.insert(MAX_CRYPTO_STREAM, &[1]).is_empty());
        assert_eq!(s.max_end, MAX_CRYPTO_STREAM + 1);
        stream.clear();
        assert!(parse_client_hello(&[3, 3]).is_none());
        assert!(parse_server_hello(&[]).is_none());
    }
}
