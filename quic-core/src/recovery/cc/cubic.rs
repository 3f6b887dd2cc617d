//! CUBIC (RFC 9438) on QUIC's congestion signals (RFC 9002 §7).
//!
//! The window function is computed in floating point. RFC 9438 states it in
//! segments (SMSS = max_datagram_size here); this implementation keeps the
//! state in bytes and converts only where the formula needs segments (the
//! C * (t - K)^3 term and K), which gives the same curve.
//!
//! Implemented: the cubic window function (§4.2), the Reno-friendly region
//! (§4.3), the concave and convex regions (§4.4, §4.5), multiplicative
//! decrease with beta_cubic = 0.7 (§4.6), fast convergence (§4.7), the
//! timeout response mapped to QUIC's persistent congestion (§4.8), standard
//! slow start (§4.10) and no growth while application limited (§5.8).
//! Not implemented: undoing spurious congestion events (§4.9, optional) and
//! HyStart++.

use std::time::Instant;

use super::{initial_window, minimum_window, window_after_mtu_update, CongestionController, HyStart, SlowStartStep};
use crate::recovery::rtt::RttEstimator;

/// RFC 9438 §5.1: C = 0.4 (segments / s^3).
pub const C: f64 = 0.4;
/// RFC 9438 §4.6: beta_cubic = 0.7, the multiplicative decrease factor.
pub const BETA_CUBIC: f64 = 0.7;
/// RFC 9438 §4.3: alpha_cubic = 3 * (1 - beta_cubic) / (1 + beta_cubic), the
/// additive increase that makes W_est match Reno's average rate.
pub const ALPHA_CUBIC: f64 = 3.0 * (1.0 - BETA_CUBIC) / (1.0 + BETA_CUBIC);
/// beta_cubic as the exact ratio 7/10, for the integer window reduction.
const BETA_NUM: u64 = 7;
const BETA_DEN: u64 = 10;

/// `window * beta_cubic` in exact integer arithmetic (a float product such as
/// 84000.0 * 0.7 can land a hair below the integer and truncate wrongly).
fn beta_reduce(window: u64) -> u64 {
    window / BETA_DEN * BETA_NUM + window % BETA_DEN * BETA_NUM / BETA_DEN
}

/// RFC 9438 §4.2: the target may be at most 1.5 * cwnd, i.e. the window grows
/// by at most half of itself per RTT.
const MAX_TARGET_FACTOR: f64 = 1.5;

/// The CUBIC congestion controller.
#[derive(Debug, Clone)]
pub struct Cubic {
    max_datagram_size: u64,
    /// cwnd in bytes.
    window: u64,
    /// Slow start threshold; `u64::MAX` is infinite.
    ssthresh: u64,
    /// RFC 9002 §7.3.2 recovery period start (shared with NewReno).
    recovery_start: Option<Instant>,
    /// RFC 9438 §4.1.2 W_max, bytes: the window just before the last
    /// reduction (lowered by fast convergence, §4.7).
    w_max: f64,
    /// RFC 9438 §4.6 cwnd_prior, bytes: the window before the last
    /// reduction; W_est switches to Reno's slope once it reaches it (§4.3).
    cwnd_prior: f64,
    /// RFC 9438 §4.2 t_epoch: start of the current congestion avoidance
    /// stage, set on the first ACK in congestion avoidance.
    epoch_start: Option<Instant>,
    /// RFC 9438 §4.2 K, seconds.
    k: f64,
    /// RFC 9438 §4.3 W_est, bytes.
    w_est: f64,
    /// Fractional bytes of growth not yet added to the integer window.
    carry: f64,
    /// Start of an application-limited stretch in congestion avoidance; the
    /// stretch is excluded from t (RFC 9438 §5.8).
    app_limited_since: Option<Instant>,
    /// HyStart++ for the initial slow start (RFC 9406, RFC 9438 §4.10).
    hystart: HyStart,
}

impl Cubic {
    pub fn new(max_datagram_size: u64) -> Self {
        Self {
            max_datagram_size,
            window: initial_window(max_datagram_size),
            ssthresh: u64::MAX,
            recovery_start: None,
            w_max: 0.0,
            cwnd_prior: 0.0,
            epoch_start: None,
            k: 0.0,
            w_est: 0.0,
            carry: 0.0,
            app_limited_since: None,
            hystart: HyStart::new(),
        }
    }

    /// RFC 9438 W_max in bytes (0 before the first congestion event).
    pub fn w_max(&self) -> f64 {
        self.w_max
    }

    /// RFC 9438 K in seconds for the current epoch (0 before one starts).
    pub fn k(&self) -> f64 {
        self.k
    }

    /// RFC 9438 W_est in bytes for the current epoch.
    pub fn w_est(&self) -> f64 {
        self.w_est
    }

    fn mds(&self) -> f64 {
        // A zero datagram size would make every division meaningless.
        self.max_datagram_size.max(1) as f64
    }

    /// RFC 9438 §4.2 Figure 1: W_cubic(t) = C * (t - K)^3 + W_max, with the
    /// cubic term in segments and the result in bytes.
    pub fn w_cubic(&self, t_secs: f64) -> f64 {
        let d = t_secs - self.k;
        C * d * d * d * self.mds() + self.w_max
    }

    /// Start a congestion avoidance stage at `now` (RFC 9438 §4.2).
    fn start_epoch(&mut self, now: Instant) {
        let cwnd = self.window as f64;
        self.epoch_start = Some(now);
        self.carry = 0.0;
        // RFC 9438 §4.3: W_est starts from cwnd_epoch.
        self.w_est = cwnd;
        if self.w_max <= cwnd {
            // No reduction to climb back from (first stage after slow start,
            // or after a timeout, §4.8): W_max = cwnd_epoch and K = 0.
            self.w_max = cwnd;
            self.k = 0.0;
        } else {
            // RFC 9438 §4.2 Figure 2: K = cbrt((W_max - cwnd_epoch) / C),
            // in segments.
            self.k = ((self.w_max - cwnd) / self.mds() / C).cbrt();
        }
    }

    /// With (the default) or without HyStart++ in the initial slow start.
    pub fn with_hystart(mut self, on: bool) -> Self {
        self.hystart = if on { HyStart::new() } else { HyStart::disabled() };
        self
    }

    fn minimum_window(&self) -> u64 {
        minimum_window(self.max_datagram_size)
    }

    /// Grow the integer window towards `target` bytes, keeping fractions.
    fn grow_to(&mut self, target: f64) {
        let delta = target - self.window as f64 + self.carry;
        if delta > 0.0 {
            let whole = delta.floor();
            // Float-to-int `as` saturates; no overflow possible.
            self.window = self.window.saturating_add(whole as u64);
            self.carry = delta - whole;
        }
    }
}

impl CongestionController for Cubic {
    fn on_packet_sent(&mut self, _now: Instant, _bytes: u64) {}

    fn on_ack(&mut self, now: Instant, sent_time: Instant, bytes: u64, rtt: &RttEstimator, app_limited: bool) {
        // RFC 9002 §7.3.2: no growth for packets of the recovery period.
        if self.in_recovery(sent_time) {
            return;
        }
        let in_slow_start = self.window < self.ssthresh;
        if app_limited {
            // RFC 9438 §5.8 / RFC 9002 §7.8: an underused window must not
            // grow; remember when the stretch began so t can skip it.
            if !in_slow_start && self.epoch_start.is_some() && self.app_limited_since.is_none() {
                self.app_limited_since = Some(now);
            }
            return;
        }
        if let Some(since) = self.app_limited_since.take() {
            if let Some(epoch) = self.epoch_start {
                let idle = now.saturating_duration_since(since);
                self.epoch_start = Some(epoch.checked_add(idle).unwrap_or(epoch));
            }
        }

        if in_slow_start {
            // RFC 9438 §4.10: slow start, with HyStart++ (RFC 9406 §4.2).
            match self.hystart.on_ack(now, sent_time, rtt.latest_rtt()) {
                SlowStartStep::Grow { divisor } => self.window = self.window.saturating_add(bytes / divisor),
                SlowStartStep::EnterCongestionAvoidance => {
                    // RFC 9438 §4.10: leaving slow start without a
                    // congestion event, W_max and cwnd_prior are the window
                    // and K = 0 (`start_epoch` does that while W_max is 0).
                    self.ssthresh = self.window;
                    self.cwnd_prior = self.window as f64;
                }
            }
            return;
        }

        let epoch = match self.epoch_start {
            Some(e) => e,
            None => {
                self.start_epoch(now);
                now
            }
        };
        let cwnd = self.window as f64;
        let acked = bytes as f64;
        let t = now.saturating_duration_since(epoch).as_secs_f64();

        // RFC 9438 §4.3 Figure 4: W_est += alpha_cubic * segments_acked / cwnd
        // (in bytes: alpha * acked / cwnd * SMSS); alpha becomes 1 once W_est
        // reaches cwnd_prior.
        let alpha = if self.w_est >= self.cwnd_prior { 1.0 } else { ALPHA_CUBIC };
        self.w_est += alpha * acked / cwnd * self.mds();

        if self.w_cubic(t) < self.w_est {
            // RFC 9438 §4.3: Reno-friendly region, cwnd follows W_est.
            self.grow_to(self.w_est);
        } else {
            // RFC 9438 §4.2: target = W_cubic(t + RTT) bounded to
            // [cwnd, 1.5 * cwnd]; cwnd grows by (target - cwnd) / cwnd per
            // segment acked (concave §4.4 and convex §4.5 regions alike).
            let rtt = rtt.smoothed_rtt().as_secs_f64();
            let target = self.w_cubic(t + rtt).max(cwnd).min(MAX_TARGET_FACTOR * cwnd);
            self.grow_to(cwnd + (target - cwnd) * acked / cwnd);
        }
    }

    fn on_congestion_event(&mut self, now: Instant, sent_time: Instant, persistent_congestion: bool, _lost_bytes: u64) {
        self.hystart.on_congestion();
        if !self.in_recovery(sent_time) {
            self.recovery_start = Some(now);
            let cwnd = self.window as f64;
            // RFC 9438 §4.7 fast convergence: a loss below the previous W_max
            // means another flow is taking bandwidth; release some by
            // remembering a lower W_max.
            self.w_max = if cwnd < self.w_max { cwnd * (1.0 + BETA_CUBIC) / 2.0 } else { cwnd };
            // RFC 9438 §4.6: cwnd_prior = cwnd; ssthresh = cwnd * beta_cubic
            // (cwnd rather than flight size, as §4.6 permits); cwnd =
            // max(ssthresh, minimum window).
            self.cwnd_prior = cwnd;
            self.ssthresh = beta_reduce(self.window).max(self.minimum_window());
            self.window = self.ssthresh;
            // A new congestion avoidance stage starts with the next ACK.
            self.epoch_start = None;
            self.app_limited_since = None;
            self.carry = 0.0;
        }
        if persistent_congestion {
            self.on_persistent_congestion(now);
        }
    }

    fn on_persistent_congestion(&mut self, _now: Instant) {
        // RFC 9002 §7.6.2 collapses to the minimum window. RFC 9438 §4.8: the
        // first congestion avoidance stage after a timeout uses K = 0 and
        // W_max = cwnd at its start, which start_epoch does when W_max is 0.
        self.window = self.minimum_window();
        self.recovery_start = None;
        self.epoch_start = None;
        self.app_limited_since = None;
        self.w_max = 0.0;
        self.carry = 0.0;
    }

    fn window(&self) -> u64 {
        self.window
    }

    fn ssthresh(&self) -> u64 {
        self.ssthresh
    }

    fn in_recovery(&self, sent_time: Instant) -> bool {
        self.recovery_start.is_some_and(|start| sent_time <= start)
    }

    fn on_mtu_update(&mut self, max_datagram_size: u64) {
        self.window = window_after_mtu_update(self.window, self.ssthresh, self.recovery_start.is_some(), self.max_datagram_size, max_datagram_size);
        self.max_datagram_size = max_datagram_size;
        // K depends on the segment size: the epoch restarts with the next ACK.
        self.epoch_start = None;
    }

    fn max_datagram_size(&self) -> u64 {
        self.max_datagram_size
    }

    fn name(&self) -> &'static str {
        "cubic"
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

    fn rtt_of(d: Duration) -> RttEstimator {
        let mut rtt = RttEstimator::default();
        rtt.update(Instant::now(), d, Duration::ZERO, Duration::ZERO, true);
        rtt
    }

    fn segments(cc: &Cubic) -> f64 {
        cc.window() as f64 / MDS as f64
    }

    /// Slow start from 10 to 100 segments, then a loss at `t_loss`.
    fn cubic_after_loss_at_100_segments(t0: Instant, t_loss: Instant) -> Cubic {
        let rtt = rtt_of(ms(100));
        let mut cc = Cubic::new(MDS);
        for _ in 0..90 {
            cc.on_ack(t0, t0, MDS, &rtt, false);
        }
        assert_eq!(cc.window(), 100 * MDS);
        cc.on_congestion_event(t_loss, t_loss, false, MDS);
        cc
    }

    /// One RTT round: all of the window acked at `now`, for packets sent
    /// after the recovery period started.
    fn ack_round(cc: &mut Cubic, now: Instant, sent: Instant, rtt: &RttEstimator) {
        let n = cc.window() / MDS;
        for _ in 0..n {
            cc.on_ack(now, sent, MDS, rtt, false);
        }
    }

    #[test]
    fn multiplicative_decrease_and_k() {
        let t0 = Instant::now();
        let cc = cubic_after_loss_at_100_segments(t0, t0 + ms(10));
        // RFC 9438 §4.6: cwnd = 0.7 * 100 segments.
        assert_eq!(cc.window(), 70 * MDS);
        assert_eq!(cc.ssthresh(), 70 * MDS);
        assert_eq!(cc.w_max(), 120_000.0);
        assert!(!cc.in_slow_start());
        assert!(cc.in_recovery(t0 + ms(10)));
    }

    #[test]
    fn window_follows_cubic_curve() {
        let t0 = Instant::now();
        let t_loss = t0 + ms(10);
        let rtt = rtt_of(ms(100));
        let mut cc = cubic_after_loss_at_100_segments(t0, t_loss);
        // Round i acks at t_loss + 100 ms * (i + 1); the epoch starts at the
        // first one. Each round aims at W_cubic(t_i + RTT) with t_i = 0.1 * i
        // s, W_max = 100, K = cbrt(30 / 0.4) = 4.2172 s. Growing by
        // (target - cwnd) / cwnd per segment closes ~63% (1 - 1/e) of the gap
        // per round, so cwnd trails the curve from below by about
        // slope * RTT * 0.58: 0.72 segments at t = 1 s (slope 12.4 seg/s),
        // 0.2 at 2.5 s (3.5 seg/s), ~0 at K.
        let at = |i: u64, cc: &mut Cubic| {
            let now = t_loss + ms(100 * (i + 1));
            ack_round(cc, now, now - ms(99), &rtt);
        };
        at(0, &mut cc);
        assert!((cc.k() - 4.217_163).abs() < 1e-5, "K = {}", cc.k());
        for i in 1..10 {
            at(i, &mut cc);
        }
        // W_cubic(1.0) = 0.4 * (1 - 4.2172)^3 + 100 = 86.68 segments.
        let w = segments(&cc);
        assert!(w < 86.68 && w > 86.68 - 0.9, "cwnd {w} segments at t=1s");
        for i in 10..25 {
            at(i, &mut cc);
        }
        // W_cubic(2.5) = 0.4 * (2.5 - 4.2172)^3 + 100 = 97.97 segments.
        let w = segments(&cc);
        assert!(w < 97.97 && w > 97.97 - 0.3, "cwnd {w} segments at t=2.5s");
        for i in 25..42 {
            at(i, &mut cc);
        }
        // Plateau: W_cubic(4.2) = 100.00 segments (concave region ends at K).
        let w = segments(&cc);
        assert!(w <= 100.0 && w > 100.0 - 0.05, "cwnd {w} segments at t=4.2s");
    }

    #[test]
    fn reno_friendly_at_small_rtt() {
        let t0 = Instant::now();
        let t_loss = t0 + ms(10);
        let rtt = rtt_of(ms(1));
        let mut cc = cubic_after_loss_at_100_segments(t0, t_loss);
        // 20 rounds of 1 ms: W_cubic barely moves (70.44 segments at 21 ms)
        // but W_est grows by ~alpha_cubic = 0.529 segments per round:
        // 70 + 20 * 0.529 = 80.6.
        for i in 0..20u64 {
            let now = t_loss + Duration::from_micros(1000 * (i + 1));
            ack_round(&mut cc, now, now - Duration::from_micros(999), &rtt);
        }
        let w = segments(&cc);
        assert!((ALPHA_CUBIC - 0.529_411_76).abs() < 1e-6);
        assert!((w - 80.6).abs() < 0.4, "cwnd {w} segments");
        assert!((cc.w_est() / MDS as f64 - w).abs() < 1.0 / MDS as f64 + 1e-9);
        assert!(cc.w_cubic(0.021) / (MDS as f64) < 70.5);
    }

    #[test]
    fn fast_convergence_lowers_w_max() {
        let t0 = Instant::now();
        let mut cc = cubic_after_loss_at_100_segments(t0, t0 + ms(10));
        // Second loss at 70 segments < W_max = 100: W_max = 70 * 1.7 / 2.
        cc.on_congestion_event(t0 + ms(500), t0 + ms(400), false, MDS);
        assert!((cc.w_max() - 59.5 * MDS as f64).abs() < 1e-6);
        assert_eq!(cc.window(), 49 * MDS);
    }

    #[test]
    fn growth_per_rtt_bounded_by_half_window() {
        let t0 = Instant::now();
        let t_loss = t0 + ms(10);
        let rtt = rtt_of(ms(100));
        let mut cc = cubic_after_loss_at_100_segments(t0, t_loss);
        // Far in the convex region (t = 20 s) W_cubic is huge, but one RTT of
        // acks may only take 70 segments to at most 105.
        let now = t_loss + ms(100);
        ack_round(&mut cc, now, now - ms(99), &rtt);
        let before = cc.window();
        let later = t_loss + ms(20_000);
        ack_round(&mut cc, later, later - ms(99), &rtt);
        assert!(cc.window() <= before + before / 2 + MDS, "{} -> {}", before, cc.window());
        assert!(cc.window() > before + before / 3);
    }

    #[test]
    fn persistent_congestion_then_k_zero_epoch() {
        let t0 = Instant::now();
        let rtt = rtt_of(ms(100));
        let mut cc = cubic_after_loss_at_100_segments(t0, t0 + ms(10));
        cc.on_congestion_event(t0 + ms(3000), t0 + ms(2000), true, 10 * MDS);
        assert_eq!(cc.window(), 2 * MDS);
        assert!(cc.in_slow_start());
        // Slow start back to ssthresh (49 segments after the second
        // reduction), then the first epoch has K = 0 and W_max = cwnd.
        let now = t0 + ms(3100);
        while cc.in_slow_start() {
            cc.on_ack(now, now - ms(50), MDS, &rtt, false);
        }
        cc.on_ack(now, now - ms(50), MDS, &rtt, false);
        assert_eq!(cc.k(), 0.0);
        assert_eq!(cc.w_max(), 49.0 * MDS as f64);
    }

    #[test]
    fn app_limited_freezes_window() {
        let t0 = Instant::now();
        let rtt = rtt_of(ms(100));
        let mut cc = cubic_after_loss_at_100_segments(t0, t0 + ms(10));
        cc.on_ack(t0 + ms(200), t0 + ms(150), MDS, &rtt, false);
        let w = cc.window();
        for i in 0..100 {
            cc.on_ack(t0 + ms(300 + i), t0 + ms(250), MDS, &rtt, true);
        }
        assert_eq!(cc.window(), w);
    }
}
