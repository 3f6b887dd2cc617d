//! Round-trip time estimation (RFC 9002 §5, Appendix A.7 UpdateRtt).
//!
//! All arithmetic is on [`Duration`] with saturating operations: an ACK Delay
//! from the peer can decode to an absurd value and must not overflow.

use core::time::Duration;
use std::time::Instant;

use super::{GRANULARITY, INITIAL_RTT};

/// The path's RTT statistics: latest_rtt, smoothed_rtt, rttvar and min_rtt
/// (RFC 9002 §5, A.3 variables).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RttEstimator {
    /// kInitialRtt for this path (RFC 9002 §6.2.2: 333 ms unless a previous
    /// connection or a Retry gives a better value).
    initial_rtt: Duration,
    latest_rtt: Duration,
    smoothed_rtt: Duration,
    rttvar: Duration,
    min_rtt: Duration,
    /// RFC 9002 A.3 first_rtt_sample: when the first sample was taken; `None`
    /// until then. Persistent congestion only considers packets sent after it
    /// (RFC 9002 §7.6.2).
    first_sample: Option<Instant>,
}

impl Default for RttEstimator {
    fn default() -> Self {
        Self::new(INITIAL_RTT)
    }
}

impl RttEstimator {
    /// A fresh estimator (RFC 9002 §5.3, A.4): smoothed_rtt = initial_rtt,
    /// rttvar = initial_rtt / 2, no sample yet.
    pub fn new(initial_rtt: Duration) -> Self {
        Self { initial_rtt, latest_rtt: Duration::ZERO, smoothed_rtt: initial_rtt, rttvar: initial_rtt / 2, min_rtt: Duration::ZERO, first_sample: None }
    }

    /// Forget every sample and start again from the initial RTT, e.g. on
    /// connection migration (RFC 9000 §9.4) or after a Retry (RFC 9002 §6.3).
    pub fn reset(&mut self) {
        *self = Self::new(self.initial_rtt);
    }

    /// Forget every sample and start again from `initial_rtt`, e.g. a value
    /// measured between the first Initial and a Retry (RFC 9002 §6.3).
    pub fn reset_with_initial_rtt(&mut self, initial_rtt: Duration) {
        *self = Self::new(initial_rtt);
    }

    pub fn initial_rtt(&self) -> Duration {
        self.initial_rtt
    }

    /// The most recent sample, `ZERO` before the first one.
    pub fn latest_rtt(&self) -> Duration {
        self.latest_rtt
    }

    pub fn smoothed_rtt(&self) -> Duration {
        self.smoothed_rtt
    }

    pub fn rttvar(&self) -> Duration {
        self.rttvar
    }

    /// The minimum sample seen (ack delay not subtracted, RFC 9002 §5.2);
    /// `ZERO` before the first sample.
    pub fn min_rtt(&self) -> Duration {
        self.min_rtt
    }

    /// When the first RTT sample was taken, if any (RFC 9002 A.3
    /// first_rtt_sample).
    pub fn first_sample_time(&self) -> Option<Instant> {
        self.first_sample
    }

    pub fn has_sample(&self) -> bool {
        self.first_sample.is_some()
    }

    /// Feed one RTT sample (RFC 9002 §5.1–§5.3, A.7 UpdateRtt).
    ///
    /// `latest_rtt` is ack time minus the send time of the largest newly
    /// acknowledged packet; the caller only calls this when RFC 9002 §5.1's
    /// two conditions hold. `ack_delay` is the peer-reported delay decoded
    /// from the ACK frame, `max_ack_delay` the peer's transport parameter.
    pub fn update(&mut self, now: Instant, latest_rtt: Duration, ack_delay: Duration, max_ack_delay: Duration, handshake_confirmed: bool) {
        self.latest_rtt = latest_rtt;
        if self.first_sample.is_none() {
            // RFC 9002 §5.3: the first sample resets the estimator so it keeps
            // no history of the initial RTT; §5.2: min_rtt = first sample.
            self.first_sample = Some(now);
            self.min_rtt = latest_rtt;
            self.smoothed_rtt = latest_rtt;
            self.rttvar = latest_rtt / 2;
            return;
        }

        // RFC 9002 §5.2: min_rtt ignores the acknowledgment delay.
        self.min_rtt = self.min_rtt.min(latest_rtt);

        // RFC 9002 §5.3: before handshake confirmation the peer may exceed its
        // max_ack_delay legitimately, so only clamp once confirmed.
        let ack_delay = if handshake_confirmed { ack_delay.min(max_ack_delay) } else { ack_delay };

        // RFC 9002 §5.3: MUST NOT subtract the ack delay if that would take
        // the sample below min_rtt.
        let adjusted = match self.min_rtt.checked_add(ack_delay) {
            Some(floor) if latest_rtt >= floor => latest_rtt - ack_delay,
            _ => latest_rtt,
        };

        // RFC 9002 A.7 (and RFC 6298 §2.3): rttvar is updated first, against
        // the previous smoothed_rtt; then smoothed_rtt.
        let deviation = self.smoothed_rtt.abs_diff(adjusted);
        self.rttvar = (self.rttvar.saturating_mul(3).saturating_add(deviation)) / 4;
        self.smoothed_rtt = (self.smoothed_rtt.saturating_mul(7).saturating_add(adjusted)) / 8;
    }

    /// RFC 9002 §5.2: after persistent congestion, min_rtt SHOULD be set to
    /// the newest sample so it can follow an RTT increase.
    pub fn on_persistent_congestion(&mut self) {
        if self.first_sample.is_some() {
            self.min_rtt = self.latest_rtt;
        }
    }

    /// RFC 9002 §6.2.1: smoothed_rtt + max(4 * rttvar, kGranularity), the PTO
    /// period without max_ack_delay and without backoff.
    pub fn pto_base(&self) -> Duration {
        self.smoothed_rtt.saturating_add(self.rttvar.saturating_mul(4).max(GRANULARITY))
    }

    /// RFC 9002 §6.1.2: the RTT the time threshold multiplies,
    /// max(smoothed_rtt, latest_rtt).
    pub fn loss_rtt(&self) -> Duration {
        self.smoothed_rtt.max(self.latest_rtt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn initial_state_uses_initial_rtt() {
        let rtt = RttEstimator::default();
        assert_eq!(rtt.smoothed_rtt(), ms(333));
        assert_eq!(rtt.rttvar(), Duration::from_micros(166_500));
        assert_eq!(rtt.min_rtt(), Duration::ZERO);
        assert_eq!(rtt.latest_rtt(), Duration::ZERO);
        assert!(!rtt.has_sample());
        // RFC 9002 §6.2.2: 333 ms initial RTT gives a 999 ms first PTO.
        assert_eq!(rtt.pto_base(), ms(999));

        let custom = RttEstimator::new(ms(100));
        assert_eq!(custom.smoothed_rtt(), ms(100));
        assert_eq!(custom.rttvar(), ms(50));
        assert_eq!(custom.pto_base(), ms(300));
    }

    #[test]
    fn first_sample_resets_estimator_and_ignores_ack_delay() {
        let now = Instant::now();
        let mut rtt = RttEstimator::default();
        rtt.update(now, ms(100), ms(10), ms(25), true);
        assert_eq!(rtt.latest_rtt(), ms(100));
        assert_eq!(rtt.smoothed_rtt(), ms(100));
        assert_eq!(rtt.rttvar(), ms(50));
        assert_eq!(rtt.min_rtt(), ms(100));
        assert_eq!(rtt.first_sample_time(), Some(now));
        assert_eq!(rtt.pto_base(), ms(300));
    }

    #[test]
    fn ack_delay_clamped_by_max_ack_delay_after_confirmation() {
        let now = Instant::now();
        let mut rtt = RttEstimator::default();
        rtt.update(now, ms(100), Duration::ZERO, ms(25), true);
        // ack_delay 30 clamped to 25; 150 >= 100 + 25 so adjusted = 125.
        rtt.update(now, ms(150), ms(30), ms(25), true);
        // rttvar = 3/4 * 50 + 1/4 * |100 - 125| = 37.5 + 6.25
        assert_eq!(rtt.rttvar(), Duration::from_micros(43_750));
        // smoothed = 7/8 * 100 + 1/8 * 125 = 87.5 + 15.625
        assert_eq!(rtt.smoothed_rtt(), Duration::from_micros(103_125));
        assert_eq!(rtt.min_rtt(), ms(100));
        assert_eq!(rtt.latest_rtt(), ms(150));
        // 103.125 + 4 * 43.75
        assert_eq!(rtt.pto_base(), Duration::from_micros(278_125));
    }

    #[test]
    fn ack_delay_not_clamped_before_confirmation() {
        let now = Instant::now();
        let mut rtt = RttEstimator::default();
        rtt.update(now, ms(100), Duration::ZERO, ms(25), false);
        // Unclamped 30: adjusted = 120.
        rtt.update(now, ms(150), ms(30), ms(25), false);
        assert_eq!(rtt.rttvar(), Duration::from_micros(42_500));
        assert_eq!(rtt.smoothed_rtt(), Duration::from_micros(102_500));
    }

    #[test]
    fn ack_delay_never_takes_sample_below_min_rtt() {
        let now = Instant::now();
        let mut rtt = RttEstimator::default();
        rtt.update(now, ms(100), Duration::ZERO, ms(25), true);
        // 110 < 100 + 20: the delay is ignored, adjusted = 110.
        rtt.update(now, ms(110), ms(20), ms(25), true);
        // rttvar = 37.5 + 2.5, smoothed = 87.5 + 13.75
        assert_eq!(rtt.rttvar(), ms(40));
        assert_eq!(rtt.smoothed_rtt(), Duration::from_micros(101_250));
        // A lower sample moves min_rtt first, then is compared against it.
        rtt.update(now, ms(80), ms(10), ms(25), true);
        assert_eq!(rtt.min_rtt(), ms(80));
        // adjusted = 80: rttvar = 30 + |101.25 - 80| / 4 = 30 + 5.3125
        assert_eq!(rtt.rttvar(), Duration::from_nanos(35_312_500));
        // smoothed = 7/8 * 101.25 + 10 = 88.59375 + 10
        assert_eq!(rtt.smoothed_rtt(), Duration::from_nanos(98_593_750));
    }

    #[test]
    fn huge_ack_delay_does_not_overflow() {
        let now = Instant::now();
        let mut rtt = RttEstimator::default();
        rtt.update(now, ms(100), Duration::MAX, ms(25), false);
        rtt.update(now, ms(100), Duration::MAX, ms(25), false);
        assert_eq!(rtt.smoothed_rtt(), ms(100));
        assert_eq!(rtt.rttvar(), Duration::from_micros(37_500));
    }

    #[test]
    fn persistent_congestion_resets_min_rtt_to_latest() {
        let now = Instant::now();
        let mut rtt = RttEstimator::default();
        rtt.update(now, ms(50), Duration::ZERO, ms(25), true);
        rtt.update(now, ms(200), Duration::ZERO, ms(25), true);
        assert_eq!(rtt.min_rtt(), ms(50));
        rtt.on_persistent_congestion();
        assert_eq!(rtt.min_rtt(), ms(200));
        rtt.reset();
        assert_eq!(rtt, RttEstimator::default());
    }
}
