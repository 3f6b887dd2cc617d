//! Transport settings of a connection: flow-control windows, stream limits,
//! timeouts, congestion control. Values that become transport parameters are
//! sent to the peer (RFC 9000 §18.2); the rest stay local policy.

use std::time::Duration;

use crate::version::Version;

impl TransportConfig {
    /// The preference list in effect for a connection whose first Initial
    /// is in `first` (see [`TransportConfig::versions`]).
    pub fn version_preference(&self, first: Version) -> Vec<Version> {
        let mut v: Vec<Version> = if self.versions.is_empty() { vec![first] } else { self.versions.clone() };
        for s in Version::SUPPORTED {
            if self.versions.is_empty() && !v.contains(s) {
                v.push(*s);
            }
        }
        if !v.contains(&first) {
            v.push(first);
        }
        v
    }
}

use crate::recovery::CongestionAlgorithm;

/// Per-connection transport settings. `Default` suits a server or client on
/// a fast network; every limit is finite so a peer cannot make us grow
/// without bound.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// RFC 9000 §10.1: max_idle_timeout; zero disables our side of it.
    pub max_idle_timeout: Duration,
    /// Servers: a connection whose handshake has not completed this long
    /// after it was created is discarded silently
    /// (`ConnectionError::HandshakeTimedOut`), however busy the peer keeps
    /// it: a client that opens a handshake and dribbles packets cannot hold
    /// a server's state for the whole idle timeout again and again. `None`
    /// waits as long as the idle timeout. Clients ignore it (their
    /// application decides how long to wait; the idle timeout bounds it).
    pub handshake_timeout: Option<Duration>,
    /// Connection-level receive window offered at start (initial_max_data)
    /// and the ceiling auto-tuning may grow it to.
    pub receive_window: u64,
    pub max_receive_window: u64,
    /// Per-stream receive window offered at start (initial_max_stream_data_*)
    /// and its auto-tuning ceiling.
    pub stream_receive_window: u64,
    pub max_stream_receive_window: u64,
    /// Bytes the application may queue on one stream before writes block.
    pub send_buffer_per_stream: u64,
    /// Concurrent streams the peer may open (initial_max_streams_*).
    pub max_concurrent_bidi_streams: u64,
    pub max_concurrent_uni_streams: u64,
    /// Largest UDP payload we accept (max_udp_payload_size) and the datagram
    /// size we send at; 1200 is always safe (RFC 9000 §14).
    pub max_udp_payload_size: u16,
    pub initial_mtu: u16,
    /// Path MTU discovery (RFC 8899, RFC 9000 §14.3): after the handshake,
    /// probe from 1,200 bytes up to `max_udp_payload_size` (and the
    /// peer's) and send at the largest size the path carries.
    pub mtu_discovery: bool,
    /// Client: move to the server's preferred_address once the handshake
    /// is confirmed (RFC 9000 §9.6.1).
    pub use_preferred_address: bool,
    /// RFC 9000 §18.2 ack_delay_exponent and max_ack_delay.
    pub ack_delay_exponent: u8,
    pub max_ack_delay: Duration,
    /// Ack-eliciting packets received before an ACK goes out immediately
    /// (RFC 9000 §13.2.2 recommends two).
    pub ack_eliciting_threshold: u32,
    /// active_connection_id_limit we advertise.
    pub active_connection_id_limit: u64,
    pub congestion: CongestionAlgorithm,
    /// A controller of the application's own, used instead of
    /// `congestion` when set.
    pub congestion_factory: Option<std::sync::Arc<dyn crate::recovery::ControllerFactory>>,
    /// HyStart++ (RFC 9406) ends the initial slow start when the RTT starts
    /// to climb, before the bottleneck's buffer overflows; on by default.
    pub hystart: bool,
    /// RFC 9002 §6.2.2 kInitialRtt.
    pub initial_rtt: Duration,
    /// Send PING when otherwise idle for this long (keeps NAT bindings and
    /// the idle timer alive).
    pub keep_alive_interval: Option<Duration>,
    /// Largest DATAGRAM frame we accept (RFC 9221); `None` disables DATAGRAM.
    pub max_datagram_frame_size: Option<u64>,
    /// Bound on out-of-order CRYPTO data buffered per packet number space;
    /// above it the connection closes with CRYPTO_BUFFER_EXCEEDED (RFC 9000 §7.5).
    pub crypto_buffer_size: u64,
    /// Initiate a key update after this many packets under one key phase.
    pub key_update_interval: u64,
    /// Send grease: a reserved transport parameter and the grease_quic_bit
    /// (RFC 9000 §18.1, RFC 9287).
    pub grease: bool,
    /// Use UDP GSO-style batching: `poll_transmit` may fill several
    /// equal-size datagrams in one buffer.
    pub max_gso_segments: usize,
    /// Mark packets ECT(0) and validate the path's ECN (RFC 9000 §13.4).
    pub ecn: bool,
    /// QUIC versions in order of preference (RFC 9368). A client lists them
    /// in version_information (its first Initial's version is added if
    /// missing) and follows a server that picks another of them; a server
    /// speaks these and moves a connection to the client's most preferred
    /// one among them that is compatible with the client's first version
    /// (v1 and v2 are, RFC 9369 §4). Empty: the first Initial's version,
    /// then the other supported ones (no upgrade is asked for).
    pub versions: Vec<Version>,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            max_idle_timeout: Duration::from_secs(30),
            handshake_timeout: Some(Duration::from_secs(10)),
            receive_window: 4 << 20,
            max_receive_window: 64 << 20,
            stream_receive_window: 1 << 20,
            max_stream_receive_window: 16 << 20,
            send_buffer_per_stream: 4 << 20,
            max_concurrent_bidi_streams: 100,
            max_concurrent_uni_streams: 100,
            max_udp_payload_size: 1472,
            initial_mtu: 1200,
            mtu_discovery: true,
            use_preferred_address: true,
            ack_delay_exponent: 3,
            max_ack_delay: Duration::from_millis(25),
            ack_eliciting_threshold: 2,
            active_connection_id_limit: 4,
            congestion: CongestionAlgorithm::Cubic,
            congestion_factory: None,
            hystart: true,
            initial_rtt: Duration::from_millis(333),
            keep_alive_interval: None,
            max_datagram_frame_size: Some(65535),
            crypto_buffer_size: 64 * 1024,
            key_update_interval: 1 << 20,
            grease: true,
            max_gso_segments: 10,
            ecn: true,
            versions: Vec::new(),
        }
    }
}
