//! HyStart++ (RFC 9406): leave the first slow start when the RTT starts to
//! climb, before the bottleneck's buffer overflows, through a Conservative
//! Slow Start (CSS) that resumes slow start if the climb was not real.
//!
//! NewReno and CUBIC consult it for every acknowledged packet while the
//! window is below ssthresh. Rounds are counted with send times instead of
//! sequence numbers (RFC 9406 §4.2 "windowEnd"): a round ends when a packet
//! sent after it began is acknowledged. We pace, so the per-ACK growth
//! limit L is infinite (§4.3) and slow start itself grows as before; CSS
//! grows by a quarter of that. Only the initial slow start uses HyStart++
//! (§4.3); once it ends — by CSS, a loss or an ECN mark — later slow starts
//! (after persistent congestion) are standard.

use std::time::{Duration, Instant};

/// RFC 9406 §4.3 MIN_RTT_THRESH.
pub const MIN_RTT_THRESH: Duration = Duration::from_millis(4);
/// RFC 9406 §4.3 MAX_RTT_THRESH.
pub const MAX_RTT_THRESH: Duration = Duration::from_millis(16);
/// RFC 9406 §4.3 MIN_RTT_DIVISOR.
pub const MIN_RTT_DIVISOR: u32 = 8;
/// RFC 9406 §4.3 N_RTT_SAMPLE.
pub const N_RTT_SAMPLE: u16 = 8;
/// RFC 9406 §4.3 CSS_GROWTH_DIVISOR.
pub const CSS_GROWTH_DIVISOR: u64 = 4;
/// RFC 9406 §4.3 CSS_ROUNDS.
pub const CSS_ROUNDS: u8 = 5;

/// "Infinity" for the RTTs kept in microseconds.
const NONE_US: u32 = u32::MAX;

/// Where the initial slow start stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HyStartPhase {
    /// Standard slow start, watching for a delay increase.
    SlowStart,
    /// Conservative Slow Start after a delay increase (§4.2).
    Css,
    /// HyStart++ is over: congestion avoidance was entered, or a loss or
    /// ECN mark ended the initial slow start.
    Done,
    /// Configured off: standard slow start throughout.
    Off,
}

impl HyStartPhase {
    pub const fn name(self) -> &'static str {
        match self {
            HyStartPhase::SlowStart => "slow start",
            HyStartPhase::Css => "conservative slow start",
            HyStartPhase::Done => "done",
            HyStartPhase::Off => "off",
        }
    }
}

/// What the controller does with an acknowledgment in slow start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlowStartStep {
    /// Grow the window by the bytes acknowledged divided by this (1 in slow
    /// start, [`CSS_GROWTH_DIVISOR`] in CSS).
    Grow { divisor: u64 },
    /// CSS lasted [`CSS_ROUNDS`] rounds: enter congestion avoidance with
    /// ssthresh = cwnd (§4.2).
    EnterCongestionAvoidance,
}

/// RFC 9406 §4.2 state, kept small: it lives in every connection's
/// controller. RTTs are in microseconds (an hour fits).
#[derive(Debug, Clone)]
pub struct HyStart {
    phase: HyStartPhase,
    /// lastRoundMinRTT, µs.
    last_round_min: u32,
    /// currentRoundMinRTT, µs.
    current_round_min: u32,
    /// cssBaselineMinRtt, µs.
    css_baseline: u32,
    /// rttSampleCount of the current round.
    samples: u16,
    /// Rounds of CSS completed, the partial first one included (§4.2).
    css_rounds: u8,
    /// windowEnd as a time: a packet sent at or after it ends the round.
    window_end: Option<Instant>,
}

impl Default for HyStart {
    fn default() -> Self {
        Self::new()
    }
}

impl HyStart {
    pub fn new() -> Self {
        Self {
            phase: HyStartPhase::SlowStart,
            last_round_min: NONE_US,
            current_round_min: NONE_US,
            css_baseline: NONE_US,
            samples: 0,
            css_rounds: 0,
            window_end: None,
        }
    }

    /// Standard slow start only: HyStart++ never acts.
    pub fn disabled() -> Self {
        Self { phase: HyStartPhase::Off, ..Self::new() }
    }

    pub fn phase(&self) -> HyStartPhase {
        self.phase
    }

    /// One packet sent at `sent_time` was acknowledged at `now` while the
    /// window is below ssthresh; `latest_rtt` is the connection's latest
    /// RTT sample (currRTT).
    pub fn on_ack(&mut self, now: Instant, sent_time: Instant, latest_rtt: Duration) -> SlowStartStep {
        if matches!(self.phase, HyStartPhase::Done | HyStartPhase::Off) {
            return SlowStartStep::Grow { divisor: 1 };
        }
        match self.window_end {
            None => self.window_end = Some(now),
            Some(end) if sent_time >= end => {
                // The round ended: a packet sent after it began is acked.
                self.last_round_min = self.current_round_min;
                self.current_round_min = NONE_US;
                self.samples = 0;
                self.window_end = Some(now);
                if self.phase == HyStartPhase::Css {
                    self.css_rounds += 1;
                    if self.css_rounds >= CSS_ROUNDS {
                        self.phase = HyStartPhase::Done;
                        return SlowStartStep::EnterCongestionAvoidance;
                    }
                }
            }
            Some(_) => {}
        }
        let rtt = u32::try_from(latest_rtt.as_micros()).unwrap_or(NONE_US - 1);
        self.current_round_min = self.current_round_min.min(rtt);
        self.samples = self.samples.saturating_add(1);
        if self.samples >= N_RTT_SAMPLE && self.current_round_min != NONE_US {
            match self.phase {
                HyStartPhase::SlowStart if self.last_round_min != NONE_US => {
                    let last = Duration::from_micros(u64::from(self.last_round_min));
                    let thresh = (last / MIN_RTT_DIVISOR).clamp(MIN_RTT_THRESH, MAX_RTT_THRESH);
                    if Duration::from_micros(u64::from(self.current_round_min)) >= last + thresh {
                        self.phase = HyStartPhase::Css;
                        self.css_baseline = self.current_round_min;
                        self.css_rounds = 0;
                    }
                }
                HyStartPhase::Css if self.current_round_min < self.css_baseline => {
                    // The RTT came back down: the exit was spurious (§4.2).
                    self.phase = HyStartPhase::SlowStart;
                    self.css_baseline = NONE_US;
                }
                _ => {}
            }
        }
        match self.phase {
            HyStartPhase::Css => SlowStartStep::Grow { divisor: CSS_GROWTH_DIVISOR },
            _ => SlowStartStep::Grow { divisor: 1 },
        }
    }

    /// A loss or an ECN mark: the initial slow start is over (§4.2), and
    /// later ones are standard (§4.3).
    pub fn on_congestion(&mut self) {
        if self.phase != HyStartPhase::Off {
            self.phase = HyStartPhase::Done;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// Acks of one round: `n` packets sent after the round began, each
    /// with `rtt`; returns the steps.
    fn round(h: &mut HyStart, t: &mut Instant, n: usize, rtt: Duration) -> Vec<SlowStartStep> {
        let sent = *t;
        *t += rtt;
        (0..n).map(|_| h.on_ack(*t, sent, rtt)).collect()
    }

    #[test]
    fn steady_rtt_stays_in_slow_start() {
        let mut h = HyStart::new();
        let mut t = Instant::now();
        for _ in 0..10 {
            assert!(round(&mut h, &mut t, 10, ms(50)).iter().all(|s| *s == SlowStartStep::Grow { divisor: 1 }));
        }
        assert_eq!(h.phase(), HyStartPhase::SlowStart);
    }

    #[test]
    fn delay_increase_enters_css_after_enough_samples() {
        let mut h = HyStart::new();
        let mut t = Instant::now();
        round(&mut h, &mut t, 10, ms(40));
        round(&mut h, &mut t, 10, ms(40));
        // lastRoundMinRTT = 40 ms: RttThresh = max(4, min(40 / 8, 16)) = 5 ms.
        // 44 ms is below 45: no exit.
        round(&mut h, &mut t, 10, ms(44));
        assert_eq!(h.phase(), HyStartPhase::SlowStart);
        // Against 44 ms the threshold is 5.5 ms: 50 ms >= 49.5 ms exits, at
        // the eighth sample, not before.
        let steps = round(&mut h, &mut t, 10, ms(50));
        assert!(steps[..7].iter().all(|s| *s == SlowStartStep::Grow { divisor: 1 }), "{steps:?}");
        assert_eq!(steps[7], SlowStartStep::Grow { divisor: CSS_GROWTH_DIVISOR });
        assert_eq!(h.phase(), HyStartPhase::Css);
    }

    #[test]
    fn threshold_is_clamped_to_4_and_16_ms() {
        // 8 ms RTT: 8 / 8 = 1 ms, clamped up to 4 ms; 11 ms does not exit, 12 ms does.
        let mut h = HyStart::new();
        let mut t = Instant::now();
        round(&mut h, &mut t, 8, ms(8));
        round(&mut h, &mut t, 8, ms(11));
        assert_eq!(h.phase(), HyStartPhase::SlowStart);
        let mut h = HyStart::new();
        round(&mut h, &mut t, 8, ms(8));
        round(&mut h, &mut t, 8, ms(12));
        assert_eq!(h.phase(), HyStartPhase::Css);
        // 400 ms RTT: 400 / 8 = 50 ms, clamped down to 16 ms.
        let mut h = HyStart::new();
        round(&mut h, &mut t, 8, ms(400));
        round(&mut h, &mut t, 8, ms(416));
        assert_eq!(h.phase(), HyStartPhase::Css);
    }

    #[test]
    fn css_ends_in_congestion_avoidance_after_five_rounds() {
        let mut h = HyStart::new();
        let mut t = Instant::now();
        round(&mut h, &mut t, 8, ms(40));
        round(&mut h, &mut t, 8, ms(60));
        assert_eq!(h.phase(), HyStartPhase::Css);
        // The partial round counted; four more full rounds of CSS growth,
        // then the first ack of the round after them enters avoidance.
        for _ in 0..4 {
            let steps = round(&mut h, &mut t, 8, ms(60));
            assert!(steps.iter().all(|s| *s == SlowStartStep::Grow { divisor: CSS_GROWTH_DIVISOR }), "{steps:?}");
        }
        let steps = round(&mut h, &mut t, 8, ms(60));
        assert_eq!(steps[0], SlowStartStep::EnterCongestionAvoidance);
        assert_eq!(h.phase(), HyStartPhase::Done);
        assert!(steps[1..].iter().all(|s| *s == SlowStartStep::Grow { divisor: 1 }));
    }

    #[test]
    fn rtt_back_below_the_baseline_resumes_slow_start() {
        let mut h = HyStart::new();
        let mut t = Instant::now();
        round(&mut h, &mut t, 8, ms(40));
        round(&mut h, &mut t, 8, ms(60));
        assert_eq!(h.phase(), HyStartPhase::Css);
        // Baseline 60 ms; a round whose minimum is 45 ms was no congestion.
        let steps = round(&mut h, &mut t, 8, ms(45));
        assert_eq!(steps[7], SlowStartStep::Grow { divisor: 1 });
        assert_eq!(h.phase(), HyStartPhase::SlowStart);
    }

    #[test]
    fn congestion_ends_it_for_good() {
        let mut h = HyStart::new();
        let mut t = Instant::now();
        round(&mut h, &mut t, 8, ms(40));
        h.on_congestion();
        assert_eq!(h.phase(), HyStartPhase::Done);
        // Whatever the RTT does afterwards, slow start stays standard.
        round(&mut h, &mut t, 8, ms(40));
        assert!(round(&mut h, &mut t, 8, ms(100)).iter().all(|s| *s == SlowStartStep::Grow { divisor: 1 }));
    }
}
