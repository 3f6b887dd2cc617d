//! NewReno (RFC 9002 §7.3, Appendix B.2–B.8).

use std::time::Instant;

use super::{initial_window, minimum_window, window_after_mtu_update, CongestionController, HyStart, SlowStartStep, LOSS_REDUCTION_DEN, LOSS_REDUCTION_NUM};
use crate::recovery::rtt::RttEstimator;

/// The RFC 9002 congestion controller: slow start, a recovery period per
/// round trip with loss, and additive increase in congestion avoidance.
#[derive(Debug, Clone)]
pub struct NewReno {
    max_datagram_size: u64,
    /// RFC 9002 B.2 congestion_window, bytes.
    window: u64,
    /// RFC 9002 B.2 ssthresh; `u64::MAX` is infinite (B.3).
    ssthresh: u64,
    /// RFC 9002 B.2 congestion_recovery_start_time; `None` is "0" in B.3.
    recovery_start: Option<Instant>,
    /// Bytes acknowledged in congestion avoidance since the window last grew.
    /// RFC 9002 B.5 suggests RFC 3465 §2.1 byte counting for an integer
    /// window: grow by one max_datagram_size per window of bytes acked.
    bytes_acked: u64,
    /// HyStart++ for the initial slow start (RFC 9406).
    hystart: HyStart,
}

impl NewReno {
    /// RFC 9002 B.3: window = kInitialWindow, ssthresh = infinite, not in
    /// recovery.
    pub fn new(max_datagram_size: u64) -> Self {
        Self { max_datagram_size, window: initial_window(max_datagram_size), ssthresh: u64::MAX, recovery_start: None, bytes_acked: 0, hystart: HyStart::new() }
    }

    /// With (the default) or without HyStart++ in the initial slow start.
    pub fn with_hystart(mut self, on: bool) -> Self {
        self.hystart = if on { HyStart::new() } else { HyStart::disabled() };
        self
    }

    fn minimum_window(&self) -> u64 {
        minimum_window(self.max_datagram_size)
    }
}

impl CongestionController for NewReno {
    fn on_packet_sent(&mut self, _now: Instant, _bytes: u64) {
        // RFC 9002 B.4 only changes bytes_in_flight, which Recovery owns.
    }

    fn on_ack(&mut self, now: Instant, sent_time: Instant, bytes: u64, rtt: &RttEstimator, app_limited: bool) {
        // RFC 9002 §7.8 / B.5: no growth while the window is underused.
        if app_limited {
            return;
        }
        // RFC 9002 §7.3.2 / B.5: no growth for packets sent before the
        // recovery period began; acking a later one ends recovery.
        if self.in_recovery(sent_time) {
            return;
        }
        if self.window < self.ssthresh {
            // RFC 9002 §7.3.1: slow start grows by the bytes acknowledged;
            // HyStart++ slows that (CSS) or ends it (RFC 9406 §4.2).
            match self.hystart.on_ack(now, sent_time, rtt.latest_rtt()) {
                SlowStartStep::Grow { divisor } => self.window = self.window.saturating_add(bytes / divisor),
                SlowStartStep::EnterCongestionAvoidance => self.ssthresh = self.window,
            }
        } else {
            // RFC 9002 §7.3.3: at most one max_datagram_size per window
            // acknowledged (RFC 3465 §2.1 byte counting).
            self.bytes_acked = self.bytes_acked.saturating_add(bytes);
            if self.bytes_acked >= self.window {
                self.bytes_acked -= self.window;
                self.window = self.window.saturating_add(self.max_datagram_size);
            }
        }
    }

    fn on_congestion_event(&mut self, now: Instant, sent_time: Instant, persistent_congestion: bool, _lost_bytes: u64) {
        // RFC 9002 §7.3.2 / B.6: one reduction per recovery period.
        self.hystart.on_congestion();
        if !self.in_recovery(sent_time) {
            self.recovery_start = Some(now);
            // B.6: ssthresh = window * kLossReductionFactor;
            // window = max(ssthresh, kMinimumWindow).
            self.ssthresh = self.window / LOSS_REDUCTION_DEN * LOSS_REDUCTION_NUM;
            self.window = self.ssthresh.max(self.minimum_window());
            self.bytes_acked = 0;
        }
        if persistent_congestion {
            self.on_persistent_congestion(now);
        }
    }

    fn on_persistent_congestion(&mut self, _now: Instant) {
        // RFC 9002 §7.6.2 / B.8: window = kMinimumWindow and recovery ends,
        // so the sender slow-starts back up to ssthresh.
        self.window = self.minimum_window();
        self.recovery_start = None;
        self.bytes_acked = 0;
    }

    fn window(&self) -> u64 {
        self.window
    }

    fn ssthresh(&self) -> u64 {
        self.ssthresh
    }

    fn in_recovery(&self, sent_time: Instant) -> bool {
        // RFC 9002 B.5: sent_time <= congestion_recovery_start_time.
        self.recovery_start.is_some_and(|start| sent_time <= start)
    }

    fn on_mtu_update(&mut self, max_datagram_size: u64) {
        self.window = window_after_mtu_update(self.window, self.ssthresh, self.recovery_start.is_some(), self.max_datagram_size, max_datagram_size);
        self.max_datagram_size = max_datagram_size;
    }

    fn max_datagram_size(&self) -> u64 {
        self.max_datagram_size
    }

    fn name(&self) -> &'static str {
        "newreno"
    }

    fn hystart_phase(&self) -> Option<super::HyStartPhase> {
        Some(self.hystart.phase())
    }

    fn clone_box(&self) -> Box<dyn CongestionController> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;

    const MDS: u64 = 1200;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn slow_start_grows_by_bytes_acked() {
        let t0 = Instant::now();
        let rtt = RttEstimator::default();
        let mut cc = NewReno::new(MDS);
        assert_eq!(cc.window(), 12_000);
        for i in 0..10 {
            cc.on_ack(t0 + ms(100), t0 + ms(i), MDS, &rtt, false);
        }
        // One window acked doubles it.
        assert_eq!(cc.window(), 24_000);
        assert!(cc.in_slow_start());
        // App-limited acks do not grow the window (RFC 9002 §7.8).
        cc.on_ack(t0 + ms(200), t0 + ms(100), MDS, &rtt, true);
        assert_eq!(cc.window(), 24_000);
    }

    #[test]
    fn loss_halves_once_per_recovery_period() {
        let t0 = Instant::now();
        let rtt = RttEstimator::default();
        let mut cc = NewReno::new(MDS);
        // Loss of a packet sent at t0+10 detected at t0+100.
        cc.on_congestion_event(t0 + ms(100), t0 + ms(10), false, MDS);
        assert_eq!(cc.ssthresh(), 6000);
        assert_eq!(cc.window(), 6000);
        assert!(!cc.in_slow_start());
        assert!(cc.in_recovery(t0 + ms(100)));
        assert!(!cc.in_recovery(t0 + ms(101)));

        // A second loss of a packet sent before recovery began: no change.
        cc.on_congestion_event(t0 + ms(120), t0 + ms(50), false, MDS);
        assert_eq!(cc.window(), 6000);
        // ECN-CE for a packet sent before recovery: no change either.
        cc.on_ecn_ce(t0 + ms(130), t0 + ms(99));
        assert_eq!(cc.window(), 6000);

        // Acks of packets sent during recovery do not grow the window...
        cc.on_ack(t0 + ms(150), t0 + ms(60), MDS, &rtt, false);
        assert_eq!(cc.window(), 6000);
        // ...but a loss of a packet sent after recovery began starts a new
        // period: 6000 / 2 = 3000.
        cc.on_congestion_event(t0 + ms(300), t0 + ms(200), false, MDS);
        assert_eq!(cc.ssthresh(), 3000);
        assert_eq!(cc.window(), 3000);
        // And the floor is kMinimumWindow.
        cc.on_congestion_event(t0 + ms(500), t0 + ms(400), false, MDS);
        assert_eq!(cc.ssthresh(), 1500);
        assert_eq!(cc.window(), 2400);
    }

    #[test]
    fn congestion_avoidance_adds_one_datagram_per_window() {
        let t0 = Instant::now();
        let rtt = RttEstimator::default();
        let mut cc = NewReno::new(MDS);
        cc.on_congestion_event(t0 + ms(100), t0 + ms(10), false, MDS);
        assert_eq!(cc.window(), 6000);
        // 4 datagrams after recovery: 4800 < 6000, no growth yet.
        for _ in 0..4 {
            cc.on_ack(t0 + ms(300), t0 + ms(200), MDS, &rtt, false);
        }
        assert_eq!(cc.window(), 6000);
        // The fifth completes a window: 6000 + 1200.
        cc.on_ack(t0 + ms(300), t0 + ms(200), MDS, &rtt, false);
        assert_eq!(cc.window(), 7200);
        // Six more (7200 bytes) add one more.
        for _ in 0..6 {
            cc.on_ack(t0 + ms(400), t0 + ms(300), MDS, &rtt, false);
        }
        assert_eq!(cc.window(), 8400);
    }

    #[test]
    fn persistent_congestion_collapses_to_minimum_window() {
        let t0 = Instant::now();
        let rtt = RttEstimator::default();
        let mut cc = NewReno::new(MDS);
        for _ in 0..10 {
            cc.on_ack(t0 + ms(100), t0, MDS, &rtt, false);
        }
        assert_eq!(cc.window(), 24_000);
        cc.on_congestion_event(t0 + ms(2000), t0 + ms(1500), true, 5 * MDS);
        assert_eq!(cc.ssthresh(), 12_000);
        assert_eq!(cc.window(), 2400);
        // Recovery ended: back in slow start, acks of old packets grow it.
        assert!(cc.in_slow_start());
        assert!(!cc.in_recovery(t0));
        cc.on_ack(t0 + ms(2100), t0 + ms(1000), MDS, &rtt, false);
        assert_eq!(cc.window(), 3600);
    }

    #[test]
    fn mtu_update_recomputes_untouched_initial_window() {
        let t0 = Instant::now();
        let mut cc = NewReno::new(MDS);
        cc.on_mtu_update(1500);
        assert_eq!(cc.window(), 14_720);
        assert_eq!(cc.max_datagram_size(), 1500);
        cc.on_congestion_event(t0, t0, false, 1500);
        assert_eq!(cc.window(), 7360);
        cc.on_mtu_update(9000);
        // No longer the initial window, but the minimum is now 18000.
        assert_eq!(cc.window(), 18_000);
    }
}
