//! Congestion control (RFC 9002 §7, Appendix B) behind a small trait, so the
//! connection can run NewReno, CUBIC or anything else without knowing which.
//!
//! Controllers see per-packet events only; bytes in flight, loss detection
//! and timers live in [`Recovery`](super::Recovery). Every window is in bytes.

pub mod bbr;
pub mod cubic;
pub mod hystart;
pub mod new_reno;

use core::fmt;
use core::str::FromStr;
use std::time::Instant;

use super::delivery::{RateSample, RateSnapshot};
use super::rtt::RttEstimator;

pub use bbr::{Bbr, BbrState};
pub use cubic::Cubic;
pub use hystart::{HyStart, HyStartPhase, SlowStartStep};
pub use new_reno::NewReno;

/// RFC 9002 §7.2 / B.1 kInitialWindow:
/// min(10 * max_datagram_size, max(14720, 2 * max_datagram_size)).
pub const fn initial_window(max_datagram_size: u64) -> u64 {
    let ten = max_datagram_size.saturating_mul(10);
    let two = max_datagram_size.saturating_mul(2);
    let cap = if two > 14_720 { two } else { 14_720 };
    if ten < cap {
        ten
    } else {
        cap
    }
}

/// RFC 9002 §7.2 / B.1 kMinimumWindow: 2 * max_datagram_size.
pub const fn minimum_window(max_datagram_size: u64) -> u64 {
    max_datagram_size.saturating_mul(2)
}

/// RFC 9002 §7.2: the window after the maximum datagram size changes. While
/// nothing has moved the window yet (no loss, still the initial window) it
/// becomes the initial window of the new size; it never falls below the new
/// minimum window.
pub(crate) fn window_after_mtu_update(window: u64, ssthresh: u64, in_recovery: bool, old_mds: u64, new_mds: u64) -> u64 {
    let untouched = ssthresh == u64::MAX && !in_recovery && window == initial_window(old_mds);
    let w = if untouched { initial_window(new_mds) } else { window };
    w.max(minimum_window(new_mds))
}

/// RFC 9002 §7.3.2 / B.1 kLossReductionFactor = 0.5 (NewReno).
pub const LOSS_REDUCTION_NUM: u64 = 1;
/// Denominator of kLossReductionFactor.
pub const LOSS_REDUCTION_DEN: u64 = 2;

/// A sender-side congestion controller (RFC 9002 §7).
///
/// [`Recovery`](super::Recovery) calls it in the order of RFC 9002 A.7: for
/// an ACK, first the congestion events (ECN-CE, losses), then one
/// [`on_ack`](Self::on_ack) per newly acknowledged in-flight packet, so acks
/// of packets sent before the recovery period started do not grow the window.
pub trait CongestionController: Send + fmt::Debug {
    /// An in-flight packet of `bytes` was sent at `now` (RFC 9002 B.4).
    fn on_packet_sent(&mut self, now: Instant, bytes: u64);

    /// One in-flight packet of `bytes`, sent at `sent_time`, was newly
    /// acknowledged at `now` (RFC 9002 B.5 OnPacketAcked). `app_limited`
    /// says the sender was not using its window (RFC 9002 §7.8), in which
    /// case the window must not grow.
    fn on_ack(&mut self, now: Instant, sent_time: Instant, bytes: u64, rtt: &RttEstimator, app_limited: bool);

    /// Packets were declared lost at `now` (RFC 9002 B.6 OnCongestionEvent /
    /// B.8 OnPacketsLost). `sent_time` is the send time of the newest lost
    /// in-flight packet: no second reduction happens for packets sent before
    /// the current recovery period began (RFC 9002 §7.3.2).
    /// `persistent_congestion` additionally collapses the window (§7.6.2).
    fn on_congestion_event(&mut self, now: Instant, sent_time: Instant, persistent_congestion: bool, lost_bytes: u64);

    /// RFC 9002 §7.6.2: collapse to the minimum window and leave recovery.
    fn on_persistent_congestion(&mut self, now: Instant);

    /// The peer's ECN-CE count increased (RFC 9002 §7.1, B.7); `sent_time` is
    /// the send time of the largest packet the ACK newly acknowledged. By
    /// default an ECN-CE increase is treated exactly like a loss.
    fn on_ecn_ce(&mut self, now: Instant, sent_time: Instant) {
        self.on_congestion_event(now, sent_time, false, 0);
    }

    /// The congestion window in bytes.
    fn window(&self) -> u64;

    /// The slow start threshold in bytes; `u64::MAX` stands for infinity
    /// (RFC 9002 B.3).
    fn ssthresh(&self) -> u64;

    /// RFC 9002 §7.3.1: slow start while window < ssthresh.
    fn in_slow_start(&self) -> bool {
        self.window() < self.ssthresh()
    }

    /// RFC 9002 B.5 InCongestionRecovery: a packet sent at `sent_time`
    /// belongs to the current recovery period.
    fn in_recovery(&self, sent_time: Instant) -> bool;

    /// The path's maximum datagram size changed (RFC 9002 §7.2).
    fn on_mtu_update(&mut self, max_datagram_size: u64);

    /// The maximum datagram size the windows are computed with.
    fn max_datagram_size(&self) -> u64;

    /// A short name for logs and qlog ("newreno", "cubic").
    fn name(&self) -> &'static str;

    /// Clone into a new box (trait objects cannot be `Clone`).
    fn clone_box(&self) -> Box<dyn CongestionController>;

    /// Where HyStart++ stands, for controllers that use it (RFC 9406).
    fn hystart_phase(&self) -> Option<HyStartPhase> {
        None
    }

    // ----- model-based controllers (BBR); loss-based ones ignore these ----

    /// An in-flight packet is about to leave with `in_flight_before` bytes
    /// already in flight; `app_limited`: the sender is in an
    /// application-limited phase (draft-ietf-ccwg-bbr §5.1 OnTransmit).
    fn on_transmit(&mut self, _now: Instant, _in_flight_before: u64, _app_limited: bool) {}

    /// One in-flight packet of `size` bytes was declared lost; `sent` is its
    /// delivery-rate snapshot and `total_lost` the bytes lost on the path so
    /// far, this packet included (draft-ietf-ccwg-bbr HandleLostPacket).
    /// Called before the congestion event of the same loss detection.
    fn on_packet_lost(&mut self, _now: Instant, _size: u64, _sent: &RateSnapshot, _total_lost: u64) {}

    /// The delivery-rate sample of one ACK, after its losses and per-packet
    /// acknowledgments (draft-ietf-ccwg-bbr §5.1 UpdateOnACK).
    fn on_rate_sample(&mut self, _now: Instant, _rs: &RateSample, _rtt: &RttEstimator) {}

    /// The pacing rate in bytes per second, if the controller sets one;
    /// `None` paces at RFC 9002 §7.7's 1.25 × window / smoothed RTT.
    fn pacing_rate(&self) -> Option<u64> {
        None
    }

    /// The controller wants the samples of the current round marked
    /// application-limited (BBR's ProbeRTT: its low rates are no signal).
    fn wants_app_limited(&self) -> bool {
        false
    }

    /// The controller's state for qlog's congestion_state_updated, when it
    /// has states of its own beyond slow start, recovery and avoidance.
    fn model_state(&self) -> Option<&'static str> {
        None
    }
}

impl Clone for Box<dyn CongestionController> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

/// Makes each connection's congestion controller: the built-in ones are
/// [`CongestionAlgorithm`]s (the factory's name table); an application can
/// plug in its own through `TransportConfig::congestion_factory`.
pub trait ControllerFactory: Send + Sync + fmt::Debug {
    /// The name qlog and `quicpro get -v` show.
    fn name(&self) -> &'static str;
    /// A fresh controller for a path with `max_datagram_size`; `hystart`:
    /// whether its first slow start may use HyStart++ (RFC 9406).
    fn build(&self, max_datagram_size: u64, hystart: bool) -> Box<dyn CongestionController>;
}

impl ControllerFactory for CongestionAlgorithm {
    fn name(&self) -> &'static str {
        CongestionAlgorithm::name(self)
    }

    fn build(&self, max_datagram_size: u64, hystart: bool) -> Box<dyn CongestionController> {
        CongestionAlgorithm::build(self, max_datagram_size, hystart)
    }
}

/// The built-in congestion controllers, chosen by configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CongestionAlgorithm {
    /// RFC 9002 §7 / Appendix B.
    NewReno,
    /// RFC 9438.
    #[default]
    Cubic,
    /// BBRv3, draft-ietf-ccwg-bbr.
    Bbr,
}

impl CongestionAlgorithm {
    /// A fresh controller of this kind for a path with `max_datagram_size`;
    /// `hystart`: its initial slow start uses HyStart++ (RFC 9406).
    pub fn build(&self, max_datagram_size: u64, hystart: bool) -> Box<dyn CongestionController> {
        match self {
            CongestionAlgorithm::NewReno => Box::new(NewReno::new(max_datagram_size).with_hystart(hystart)),
            CongestionAlgorithm::Cubic => Box::new(Cubic::new(max_datagram_size).with_hystart(hystart)),
            // BBR's Startup has its own exit (a bandwidth plateau or high
            // loss), so HyStart++ does not apply.
            CongestionAlgorithm::Bbr => Box::new(Bbr::new(max_datagram_size)),
        }
    }

    pub const fn name(&self) -> &'static str {
        match self {
            CongestionAlgorithm::NewReno => "newreno",
            CongestionAlgorithm::Cubic => "cubic",
            CongestionAlgorithm::Bbr => "bbr",
        }
    }
}

impl fmt::Display for CongestionAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A configuration string that names no known congestion controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownCongestionAlgorithm;

impl fmt::Display for UnknownCongestionAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown congestion control algorithm (expected \"newreno\", \"reno\", \"cubic\" or \"bbr\")")
    }
}

impl std::error::Error for UnknownCongestionAlgorithm {}

impl FromStr for CongestionAlgorithm {
    type Err = UnknownCongestionAlgorithm;

    /// Case-insensitive: "newreno", "new_reno", "new-reno", "reno", "cubic",
    /// "bbr", "bbr3", "bbrv3".
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if ["newreno", "new_reno", "new-reno", "reno"].iter().any(|n| s.eq_ignore_ascii_case(n)) {
            Ok(CongestionAlgorithm::NewReno)
        } else if s.eq_ignore_ascii_case("cubic") {
            Ok(CongestionAlgorithm::Cubic)
        } else if ["bbr", "bbr3", "bbrv3"].iter().any(|n| s.eq_ignore_ascii_case(n)) {
            Ok(CongestionAlgorithm::Bbr)
        } else {
            Err(UnknownCongestionAlgorithm)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn window_constants_follow_rfc9002_7_2() {
        assert_eq!(initial_window(1200), 12_000);
        // 10 * 1472 = 14720 exactly.
        assert_eq!(initial_window(1472), 14_720);
        // 10 * 1500 = 15000 > 14720: capped.
        assert_eq!(initial_window(1500), 14_720);
        // Jumbo: 2 * 9000 = 18000 > 14720.
        assert_eq!(initial_window(9000), 18_000);
        assert_eq!(minimum_window(1200), 2400);
        assert_eq!(initial_window(u64::MAX), u64::MAX);
    }

    #[test]
    fn algorithm_from_str() {
        assert_eq!("newreno".parse(), Ok(CongestionAlgorithm::NewReno));
        assert_eq!("Reno".parse(), Ok(CongestionAlgorithm::NewReno));
        assert_eq!("new-reno".parse(), Ok(CongestionAlgorithm::NewReno));
        assert_eq!(" CUBIC ".parse(), Ok(CongestionAlgorithm::Cubic));
        assert_eq!("BBR".parse(), Ok(CongestionAlgorithm::Bbr));
        assert_eq!("bbrv3".parse(), Ok(CongestionAlgorithm::Bbr));
        assert_eq!("bbr2".parse::<CongestionAlgorithm>(), Err(UnknownCongestionAlgorithm));
        assert_eq!("".parse::<CongestionAlgorithm>(), Err(UnknownCongestionAlgorithm));
        assert_eq!(CongestionAlgorithm::default(), CongestionAlgorithm::Cubic);
        assert_eq!(CongestionAlgorithm::NewReno.to_string(), "newreno");
    }

    proptest::proptest! {
        /// Any sequence of events keeps the window at or above the minimum
        /// and never panics, for every built-in controller; BBR also gets
        /// arbitrary rate samples and losses.
        #[test]
        fn arbitrary_events_keep_window_sane(
            events in proptest::collection::vec((0u8..8, 0u64..200, 0u64..400, 0u32..70_000), 1..300),
            alg in 0u8..3,
        ) {
            let alg = [CongestionAlgorithm::Cubic, CongestionAlgorithm::NewReno, CongestionAlgorithm::Bbr][usize::from(alg)];
            let mut cc = alg.build(1200, true);
            let mut rtt = RttEstimator::default();
            let t0 = Instant::now();
            let mut now = t0;
            let mut delivered = 0u64;
            for (kind, dt, back, n) in events {
                now += core::time::Duration::from_millis(dt);
                let sent = now.checked_sub(core::time::Duration::from_millis(back)).unwrap_or(t0).max(t0);
                let n64 = u64::from(n);
                match kind {
                    0 => cc.on_ack(now, sent, n64, &rtt, n % 7 == 0),
                    1 => cc.on_congestion_event(now, sent, n % 11 == 0, n64),
                    2 => cc.on_ecn_ce(now, sent),
                    3 => cc.on_mtu_update(1200 + u64::from(n % 8000)),
                    4 => rtt.update(now, core::time::Duration::from_micros(n64 + 1),
                        core::time::Duration::ZERO, core::time::Duration::ZERO, true),
                    5 => {
                        let rs = RateSample {
                            delivery_rate: n64 * back,
                            delivered: n64,
                            prior_delivered: delivered.saturating_sub(back * 100),
                            app_limited: n % 3 == 0,
                            tx_in_flight: n64 * 2,
                            lost: back * 10,
                            newly_acked: n64,
                            total_delivered: delivered + n64,
                            bytes_in_flight: back * 1000,
                            rtt: Some(core::time::Duration::from_micros(n64 + 1)),
                            cwnd_limited: n % 2 == 0,
                            ..RateSample::default()
                        };
                        delivered += n64;
                        cc.on_rate_sample(now, &rs, &rtt);
                    }
                    6 => cc.on_packet_lost(now, n64 % 1500, &RateSnapshot::default(), back * 1000),
                    _ => cc.on_transmit(now, back * 100, n % 2 == 0),
                }
                proptest::prop_assert!(cc.window() >= minimum_window(cc.max_datagram_size()));
            }
        }
    }

    #[test]
    fn build_gives_fresh_controllers() {
        for alg in [CongestionAlgorithm::NewReno, CongestionAlgorithm::Cubic, CongestionAlgorithm::Bbr] {
            let cc = alg.build(1200, true);
            assert_eq!(cc.window(), 12_000);
            assert_eq!(cc.ssthresh(), u64::MAX);
            assert!(cc.in_slow_start());
            assert_eq!(cc.name(), alg.name());
            assert_eq!(cc.max_datagram_size(), 1200);
            let copy = cc.clone();
            assert_eq!(copy.window(), 12_000);
        }
    }
}
