//! Loss detection and congestion control (RFC 9002).
//!
//! Sans-I/O building blocks a connection drives: every entry point takes the
//! current time as an argument and hands back deadlines instead of arming
//! timers.
//!
//! - [`rtt`]: the RTT estimator (RFC 9002 §5).
//! - [`cc`]: the [`CongestionController`] trait with NewReno (RFC 9002 §7,
//!   Appendix B) and CUBIC (RFC 9438), selected by [`CongestionAlgorithm`].
//! - [`pacer`]: a token-bucket pacer (RFC 9002 §7.7).
//! - [`sent`]: per packet-number-space bookkeeping of sent packets.
//! - [`loss`]: [`Recovery`], the loss detector and PTO logic (RFC 9002 §6,
//!   Appendix A) that owns all of the above.

pub mod cc;
pub mod delivery;
pub mod loss;
pub mod pacer;
pub mod reorder;
pub mod rtt;
pub mod sent;

use core::time::Duration;

pub use cc::{CongestionAlgorithm, CongestionController, ControllerFactory, UnknownCongestionAlgorithm};
pub use delivery::{AckSampler, DeliveryRate, RateSample, RateSnapshot};
pub use loss::{AckOutcome, Recovery, RecoveryConfig, TimeoutAction, TimerContext};
pub use pacer::Pacer;
pub use reorder::SpuriousOutcome;
pub use rtt::RttEstimator;
pub use sent::{SentPacket, SentPackets};

/// RFC 9002 §6.1.2 / A.2 kGranularity: the timer granularity, the floor of
/// every loss and probe timeout.
pub const GRANULARITY: Duration = Duration::from_millis(1);

/// RFC 9002 §6.1.1 / A.2 kPacketThreshold: reordering tolerated, in packets,
/// before an unacknowledged packet is declared lost.
pub const PACKET_THRESHOLD: u64 = 3;

/// RFC 9002 §6.1.2 / A.2 kTimeThreshold = 9/8, as numerator and denominator
/// so the loss delay is computed in integer nanoseconds.
pub const TIME_THRESHOLD_NUM: u32 = 9;
/// Denominator of kTimeThreshold (see [`TIME_THRESHOLD_NUM`]).
pub const TIME_THRESHOLD_DEN: u32 = 8;

/// RFC 9002 §7.6.1 / B.1 kPersistentCongestionThreshold, a PTO multiplier.
pub const PERSISTENT_CONGESTION_THRESHOLD: u32 = 3;

/// RFC 9002 §6.2.2 / A.2 kInitialRtt: the RTT assumed before any sample.
pub const INITIAL_RTT: Duration = Duration::from_millis(333);

/// RFC 9000 §18.2: max_ack_delay when the peer does not send the transport
/// parameter.
pub const DEFAULT_MAX_ACK_DELAY: Duration = Duration::from_millis(25);

/// RFC 9000 §14: the smallest maximum datagram size a QUIC path supports,
/// and the starting value before PMTU discovery (RFC 9002 B.2).
pub const MIN_MAX_DATAGRAM_SIZE: u64 = 1200;

/// A packet number space (RFC 9000 §12.3, RFC 9002 A.2 kPacketNumberSpace).
/// `Data` is the application data space shared by 0-RTT and 1-RTT packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SpaceId {
    Initial,
    Handshake,
    Data,
}

impl SpaceId {
    /// All spaces in the order RFC 9002 A.8 walks them.
    pub const ALL: [SpaceId; 3] = [SpaceId::Initial, SpaceId::Handshake, SpaceId::Data];

    /// A dense index (0, 1, 2) for per-space arrays.
    pub const fn index(self) -> usize {
        match self {
            SpaceId::Initial => 0,
            SpaceId::Handshake => 1,
            SpaceId::Data => 2,
        }
    }
}

/// RFC 9002 §6.1.2: max(kTimeThreshold * rtt, kGranularity), saturating.
#[cfg(test)]
pub(crate) fn time_threshold(rtt: Duration) -> Duration {
    time_threshold_eighths(rtt, TIME_THRESHOLD_NUM)
}

/// The loss delay with a time threshold of `eighths`/8 RTT (RFC 9002
/// §6.1.2 allows adapting it to the reordering seen), at least kGranularity.
pub(crate) fn time_threshold_eighths(rtt: Duration, eighths: u32) -> Duration {
    let scaled = rtt.saturating_mul(eighths) / TIME_THRESHOLD_DEN;
    scaled.max(GRANULARITY)
}

/// `d * 2^exp`, saturating at `Duration::MAX` instead of panicking (PTO
/// backoff can run for a long time without an acknowledgment).
pub(crate) fn backoff(d: Duration, exp: u32) -> Duration {
    match 1u32.checked_shl(exp) {
        Some(factor) => d.saturating_mul(factor),
        None if d.is_zero() => Duration::ZERO,
        None => Duration::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_indices_are_dense() {
        let idx: Vec<usize> = SpaceId::ALL.iter().map(|s| s.index()).collect();
        assert_eq!(idx, vec![0, 1, 2]);
    }

    #[test]
    fn time_threshold_is_nine_eighths_with_floor() {
        assert_eq!(time_threshold(Duration::from_millis(80)), Duration::from_millis(90));
        assert_eq!(time_threshold(Duration::from_micros(100)), GRANULARITY);
        assert_eq!(time_threshold(Duration::MAX), Duration::MAX / 8);
    }

    #[test]
    fn backoff_doubles_and_saturates() {
        let d = Duration::from_millis(999);
        assert_eq!(backoff(d, 0), d);
        assert_eq!(backoff(d, 1), Duration::from_millis(1998));
        assert_eq!(backoff(d, 3), Duration::from_millis(7992));
        assert_eq!(backoff(d, 40), Duration::MAX);
        assert_eq!(backoff(d, u32::MAX), Duration::MAX);
        assert_eq!(backoff(Duration::ZERO, 64), Duration::ZERO);
    }
}
