//! BBR version 3 (draft-ietf-ccwg-bbr-06): a model-based controller. From
//! the delivery-rate samples of `delivery.rs` it estimates the bottleneck
//! bandwidth (BBR.max_bw, a max over two ProbeBW cycles) and the
//! propagation delay (BBR.min_rtt, a 10 s min), paces at the bandwidth times
//! a gain, and bounds the data in flight near the bandwidth-delay product.
//!
//! The state machine (§4.3): Startup (pacing gain 2.77, until the bandwidth
//! stops growing 25 % per round for three rounds, or losses are high),
//! Drain (gain 0.5, until in flight ≤ BDP), then ProbeBW cycles of DOWN
//! (0.9), CRUISE (1.0), REFILL (1.0, one round) and UP (1.25), and ProbeRTT
//! (in flight cut to half a BDP for 200 ms and one round) when min_rtt has
//! not been refreshed for 5 s.
//!
//! Loss (and ECN-CE) shapes the model at two time scales (§4.5.10): in a
//! bandwidth probe, a loss rate above 2 % in a round sets the long-term
//! inflight bound (BBR.inflight_longterm) and ends the probe; outside
//! probes, once per round with loss the short-term bounds (BBR.bw_shortterm,
//! BBR.inflight_shortterm) shrink by β = 0.7.
//!
//! Arithmetic is integer: bandwidth in bytes per second, gains in percent.
//! Departures from the draft, deliberate:
//! - The draft leaves the ECN response open (§2.10); here an ECN-CE
//!   increase counts as a loss in the round (the short-term bounds shrink
//!   once per round) and ends a ProbeBW_UP probe, as a loss above the
//!   threshold would.
//! - Spurious-loss undo (§4.5.10.6) is not wired: the loss response here
//!   does not cut the window at once, so `reorder.rs`'s undo of window
//!   reductions does not apply.
//! - The random choices of PickProbeWait come from a small generator seeded
//!   from the first RTT sample, so flows desynchronize while a simulated
//!   run stays reproducible.

use core::time::Duration;
use std::time::Instant;

use super::{initial_window, minimum_window, CongestionController};
use crate::recovery::delivery::{RateSample, RateSnapshot};
use crate::recovery::rtt::RttEstimator;

/// §2.5 BBR.StartupPacingGain: 4 ln 2 ≈ 2.77.
const STARTUP_PACING_GAIN: u64 = 277;
/// §2.5 BBR.DrainPacingGain.
const DRAIN_PACING_GAIN: u64 = 50;
/// §4.3.3 ProbeBW_DOWN's pacing gain.
const PROBE_DOWN_PACING_GAIN: u64 = 90;
/// §4.3.3 ProbeBW_UP's pacing gain.
const PROBE_UP_PACING_GAIN: u64 = 125;
/// §2.6 BBR.DefaultCwndGain.
const DEFAULT_CWND_GAIN: u64 = 200;
/// §4.3.3 ProbeBW_UP's cwnd gain.
const PROBE_UP_CWND_GAIN: u64 = 225;
/// §2.14.2 BBR.ProbeRTTCwndGain.
const PROBE_RTT_CWND_GAIN: u64 = 50;
/// §2.5 BBR.PacingMarginPercent.
const PACING_MARGIN_PERCENT: u64 = 1;
/// §2.8 BBR.LossThresh: 2 %.
const LOSS_THRESH_PERCENT: u64 = 2;
/// §2.8 BBR.Beta: 0.7.
const BETA_PERCENT: u64 = 70;
/// §2.8 BBR.Headroom: 0.15.
const HEADROOM_PERCENT: u64 = 15;
/// §2.14.1 BBR.MinRTTFilterLen.
const MIN_RTT_FILTER_LEN: Duration = Duration::from_secs(10);
/// §2.14.2 BBR.ProbeRTTDuration.
const PROBE_RTT_DURATION: Duration = Duration::from_millis(200);
/// §2.14.2 BBR.ProbeRTTInterval.
const PROBE_RTT_INTERVAL: Duration = Duration::from_secs(5);
/// §2.11 BBR.ExtraAckedFilterLen, in rounds.
const EXTRA_ACKED_FILTER_LEN: u64 = 10;
/// §4.3.1.2 BBRStartupFullLossCnt: loss events in a round that may end
/// Startup.
const STARTUP_FULL_LOSS_COUNT: u32 = 6;
/// §4.3.3.5: the most rounds between probes (Reno coexistence).
const MAX_PROBE_ROUNDS: u64 = 63;
/// §4.6.1 InitPacingRate's RTT when there is no sample yet.
const NO_RTT_PACING_BASE: Duration = Duration::from_millis(1);

/// BBR's states (§4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BbrState {
    Startup,
    Drain,
    ProbeBwDown,
    ProbeBwCruise,
    ProbeBwRefill,
    ProbeBwUp,
    ProbeRtt,
}

impl BbrState {
    /// The name qlog shows.
    pub const fn name(self) -> &'static str {
        match self {
            BbrState::Startup => "startup",
            BbrState::Drain => "drain",
            BbrState::ProbeBwDown => "probe_bw_down",
            BbrState::ProbeBwCruise => "probe_bw_cruise",
            BbrState::ProbeBwRefill => "probe_bw_refill",
            BbrState::ProbeBwUp => "probe_bw_up",
            BbrState::ProbeRtt => "probe_rtt",
        }
    }

    fn is_probe_bw(self) -> bool {
        matches!(self, BbrState::ProbeBwDown | BbrState::ProbeBwCruise | BbrState::ProbeBwRefill | BbrState::ProbeBwUp)
    }

    /// §4.3.3.6 IsProbingBW.
    fn is_probing_bw(self) -> bool {
        matches!(self, BbrState::Startup | BbrState::ProbeBwRefill | BbrState::ProbeBwUp)
    }
}

/// §2.9 BBR.ack_phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AckPhase {
    Init,
    Refilling,
    ProbeStarting,
    ProbeFeedback,
    ProbeStopping,
}

/// A windowed max over two slots, advanced by an external clock (cycles
/// for max_bw, rounds for extra_acked): the max of the current and the
/// previous slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct TwoSlotMax {
    slots: [u64; 2],
    current: usize,
}

impl TwoSlotMax {
    fn update(&mut self, v: u64) {
        self.slots[self.current] = self.slots[self.current].max(v);
    }

    fn advance(&mut self) {
        self.current ^= 1;
        self.slots[self.current] = 0;
    }

    fn get(&self) -> u64 {
        self.slots[0].max(self.slots[1])
    }
}

/// The BBRv3 controller.
#[derive(Debug, Clone)]
pub struct Bbr {
    mds: u64,
    state: BbrState,
    cwnd: u64,
    pacing_rate: u64,
    pacing_gain: u64,
    cwnd_gain: u64,

    // Round counting (§4.5.1).
    round_count: u64,
    round_start: bool,
    next_round_delivered: u64,
    delivered: u64,

    // Bandwidth model (§4.5.2).
    max_bw_filter: TwoSlotMax,
    cycle_count: u64,
    max_bw: u64,
    bw_shortterm: u64,
    bw: u64,
    bw_latest: u64,
    inflight_latest: u64,
    inflight_longterm: u64,
    inflight_shortterm: u64,

    // min_rtt (§4.5.3) and ProbeRTT (§4.3.4).
    min_rtt: Option<Duration>,
    min_rtt_stamp: Option<Instant>,
    probe_rtt_min_delay: Option<Duration>,
    probe_rtt_min_stamp: Option<Instant>,
    probe_rtt_expired: bool,
    probe_rtt_done_stamp: Option<Instant>,
    probe_rtt_round_done: bool,
    prior_cwnd: u64,
    idle_restart: bool,

    // Aggregation (§4.5.5).
    extra_acked_filter: TwoSlotMax,
    extra_acked_rounds: u64,
    extra_acked_interval_start: Option<Instant>,
    extra_acked_delivered: u64,
    extra_acked: u64,

    // Startup (§4.3.1).
    full_bw_reached: bool,
    full_bw_now: bool,
    full_bw: u64,
    full_bw_count: u32,
    drain_start_round: u64,

    // ProbeBW (§4.3.3).
    ack_phase: AckPhase,
    is_bw_probe_sample: bool,
    bw_probe_up_acked: u64,
    probe_up_acked_per_inc: u64,
    bw_probe_up_rounds: u32,
    rounds_since_probe_up: u64,
    bw_probe_wait: Duration,
    cycle_stamp: Option<Instant>,
    prev_probe_too_high: bool,
    prev_probe_precautionary: bool,

    // Congestion signals (§4.5.10).
    is_loss_in_round: bool,
    loss_round_delivered: u64,
    loss_round_start: bool,
    loss_events_in_round: u32,
    /// The newly lost bytes seen since the last rate sample.
    lost_since_sample: u64,

    // Loss recovery (§4.6.4.4): when the current recovery period began.
    recovery_start: Option<Instant>,
    /// The pacing rate was set from the first RTT sample (§4.6.1).
    has_seen_rtt: bool,

    /// The inflight after the newest ACK (C.inflight).
    inflight: u64,
    /// PickProbeWait's generator.
    rng: u64,
}

impl Bbr {
    /// §5.1 OnInit, for a path of `max_datagram_size`.
    pub fn new(max_datagram_size: u64) -> Self {
        let mds = max_datagram_size.max(1);
        let cwnd = initial_window(mds);
        let mut b = Self {
            mds,
            state: BbrState::Startup,
            cwnd,
            pacing_rate: 0,
            pacing_gain: STARTUP_PACING_GAIN,
            cwnd_gain: DEFAULT_CWND_GAIN,
            round_count: 0,
            round_start: false,
            next_round_delivered: 0,
            delivered: 0,
            max_bw_filter: TwoSlotMax::default(),
            cycle_count: 0,
            max_bw: 0,
            bw_shortterm: u64::MAX,
            bw: 0,
            bw_latest: 0,
            inflight_latest: 0,
            inflight_longterm: u64::MAX,
            inflight_shortterm: u64::MAX,
            min_rtt: None,
            min_rtt_stamp: None,
            probe_rtt_min_delay: None,
            probe_rtt_min_stamp: None,
            probe_rtt_expired: false,
            probe_rtt_done_stamp: None,
            probe_rtt_round_done: false,
            prior_cwnd: 0,
            idle_restart: false,
            extra_acked_filter: TwoSlotMax::default(),
            extra_acked_rounds: 0,
            extra_acked_interval_start: None,
            extra_acked_delivered: 0,
            extra_acked: 0,
            full_bw_reached: false,
            full_bw_now: false,
            full_bw: 0,
            full_bw_count: 0,
            drain_start_round: 0,
            ack_phase: AckPhase::Init,
            is_bw_probe_sample: false,
            bw_probe_up_acked: 0,
            probe_up_acked_per_inc: u64::MAX,
            bw_probe_up_rounds: 0,
            rounds_since_probe_up: 0,
            bw_probe_wait: Duration::ZERO,
            cycle_stamp: None,
            prev_probe_too_high: false,
            prev_probe_precautionary: false,
            is_loss_in_round: false,
            loss_round_delivered: 0,
            loss_round_start: false,
            loss_events_in_round: 0,
            lost_since_sample: 0,
            recovery_start: None,
            has_seen_rtt: false,
            inflight: 0,
            rng: 0,
        };
        b.init_pacing_rate(None);
        b
    }

    /// The current state.
    pub fn state(&self) -> BbrState {
        self.state
    }

    /// BBR.max_bw in bytes per second.
    pub fn max_bw(&self) -> u64 {
        self.max_bw
    }

    /// BBR.bw (max_bw bounded by the short-term model).
    pub fn bw(&self) -> u64 {
        self.bw
    }

    /// BBR.min_rtt.
    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt
    }

    /// BBR.inflight_longterm (`u64::MAX` while unset).
    pub fn inflight_longterm(&self) -> u64 {
        self.inflight_longterm
    }

    /// BBR.full_bw_reached.
    pub fn full_bw_reached(&self) -> bool {
        self.full_bw_reached
    }

    fn min_pipe_cwnd(&self) -> u64 {
        4 * self.mds
    }

    // ----- helpers ----------------------------------------------------------

    fn next_random(&mut self) -> u64 {
        // xorshift64*; the seed is never zero once set.
        if self.rng == 0 {
            self.rng = 0x9e37_79b9_7f4a_7c15;
        }
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// BBR.bdp for `bw` times `gain` percent, or the initial window without
    /// an RTT sample (§4.6.4.2 BDPMultiple).
    fn bdp_multiple(&self, bw: u64, gain: u64) -> u64 {
        let Some(min_rtt) = self.min_rtt else {
            return initial_window(self.mds);
        };
        let bdp = u128::from(bw) * min_rtt.as_nanos() / 1_000_000_000;
        u64::try_from(bdp * u128::from(gain) / 100).unwrap_or(u64::MAX)
    }

    fn bdp(&self) -> u64 {
        self.bdp_multiple(self.bw, 100)
    }

    /// §4.6.2 send quantum: 1 ms at the pacing rate, within 2 datagrams and
    /// 64 KB. QUIC's offload budget is one quantum (§4.5.4.2).
    fn offload_budget(&self) -> u64 {
        (self.pacing_rate / 1000).clamp(2 * self.mds, 64 * 1024)
    }

    /// §4.6.4.2 QuantizationBudget.
    fn quantization_budget(&self, cap: u64) -> u64 {
        let mut cap = cap.max(self.offload_budget()).max(self.min_pipe_cwnd());
        if self.state == BbrState::ProbeBwUp {
            cap = cap.saturating_add(2 * self.mds);
        }
        cap
    }

    /// §4.6.4.2 Inflight(bw, gain).
    fn inflight_for(&self, bw: u64, gain: u64) -> u64 {
        self.quantization_budget(self.bdp_multiple(bw, gain))
    }

    /// §4.3.3.6 InflightWithHeadroom.
    fn inflight_with_headroom(&self) -> u64 {
        if self.inflight_longterm == u64::MAX {
            return u64::MAX;
        }
        let headroom = (self.inflight_longterm / 100 * HEADROOM_PERCENT).max(self.mds);
        self.inflight_longterm.saturating_sub(headroom).max(self.min_pipe_cwnd())
    }

    /// §4.3.3.5 TargetInflight.
    fn target_inflight(&self) -> u64 {
        self.bdp().min(self.cwnd)
    }

    fn in_loss_recovery(&self) -> bool {
        self.recovery_start.is_some()
    }

    // ----- states -------------------------------------------------------------

    fn enter_startup(&mut self) {
        self.state = BbrState::Startup;
        self.pacing_gain = STARTUP_PACING_GAIN;
        self.cwnd_gain = DEFAULT_CWND_GAIN;
    }

    fn enter_drain(&mut self) {
        self.state = BbrState::Drain;
        self.pacing_gain = DRAIN_PACING_GAIN;
        self.cwnd_gain = DEFAULT_CWND_GAIN;
        self.drain_start_round = self.round_count;
    }

    fn enter_probe_bw(&mut self, now: Instant) {
        self.cwnd_gain = DEFAULT_CWND_GAIN;
        self.start_probe_bw_down(now);
    }

    fn start_round(&mut self) {
        self.next_round_delivered = self.delivered;
    }

    fn reset_congestion_signals(&mut self) {
        self.is_loss_in_round = false;
        self.bw_latest = 0;
        self.inflight_latest = 0;
    }

    fn reset_short_term_model(&mut self) {
        self.bw_shortterm = u64::MAX;
        self.inflight_shortterm = u64::MAX;
    }

    fn reset_full_bw(&mut self) {
        self.full_bw = 0;
        self.full_bw_count = 0;
        self.full_bw_now = false;
    }

    fn pick_probe_wait(&mut self) {
        let r = self.next_random();
        self.rounds_since_probe_up = r & 1;
        // 2 s plus up to 1 s, in milliseconds.
        self.bw_probe_wait = Duration::from_millis(2000 + (r >> 1) % 1001);
    }

    fn start_probe_bw_down(&mut self, now: Instant) {
        self.reset_congestion_signals();
        self.probe_up_acked_per_inc = u64::MAX;
        self.pick_probe_wait();
        self.cycle_stamp = Some(now);
        self.ack_phase = AckPhase::ProbeStopping;
        self.start_round();
        self.state = BbrState::ProbeBwDown;
        self.pacing_gain = PROBE_DOWN_PACING_GAIN;
        self.cwnd_gain = DEFAULT_CWND_GAIN;
    }

    fn start_probe_bw_cruise(&mut self) {
        self.state = BbrState::ProbeBwCruise;
        self.pacing_gain = 100;
        self.cwnd_gain = DEFAULT_CWND_GAIN;
    }

    fn start_probe_bw_refill(&mut self) {
        self.reset_short_term_model();
        self.bw_probe_up_rounds = 0;
        self.bw_probe_up_acked = 0;
        self.prev_probe_precautionary = false;
        self.ack_phase = AckPhase::Refilling;
        self.start_round();
        self.state = BbrState::ProbeBwRefill;
        self.pacing_gain = 100;
        self.cwnd_gain = DEFAULT_CWND_GAIN;
    }

    fn start_probe_bw_up(&mut self, rs: &RateSample) {
        self.ack_phase = AckPhase::ProbeStarting;
        self.start_round();
        self.reset_full_bw();
        self.full_bw = rs.delivery_rate;
        self.state = BbrState::ProbeBwUp;
        self.pacing_gain = PROBE_UP_PACING_GAIN;
        self.cwnd_gain = PROBE_UP_CWND_GAIN;
        self.raise_inflight_longterm_slope();
    }

    fn enter_probe_rtt(&mut self) {
        self.state = BbrState::ProbeRtt;
        self.pacing_gain = 100;
        self.cwnd_gain = PROBE_RTT_CWND_GAIN;
    }

    fn exit_probe_rtt(&mut self, now: Instant) {
        self.reset_short_term_model();
        if self.full_bw_reached {
            self.start_probe_bw_down(now);
            self.start_probe_bw_cruise();
        } else {
            self.enter_startup();
        }
    }

    // ----- per-ACK model updates (§4.5) -------------------------------------------

    /// §4.5.1 UpdateRound.
    fn update_round(&mut self, rs: &RateSample) {
        if rs.prior_delivered >= self.next_round_delivered {
            self.start_round();
            self.round_count += 1;
            self.rounds_since_probe_up += 1;
            self.round_start = true;
        } else {
            self.round_start = false;
        }
    }

    /// §4.5.2.4 UpdateMaxBw.
    fn update_max_bw(&mut self, rs: &RateSample) {
        self.update_round(rs);
        if rs.delivery_rate > 0 && (rs.delivery_rate >= self.max_bw || !rs.app_limited) {
            self.max_bw_filter.update(rs.delivery_rate);
            self.max_bw = self.max_bw_filter.get();
        }
    }

    /// §4.5.2.4 AdvanceMaxBwFilter.
    fn advance_max_bw_filter(&mut self) {
        self.cycle_count += 1;
        self.max_bw_filter.advance();
        self.max_bw = self.max_bw_filter.get();
    }

    /// §4.5.10.3 UpdateLatestDeliverySignals.
    fn update_latest_delivery_signals(&mut self, rs: &RateSample) {
        self.loss_round_start = false;
        self.bw_latest = self.bw_latest.max(rs.delivery_rate);
        self.inflight_latest = self.inflight_latest.max(rs.delivered);
        if rs.prior_delivered >= self.loss_round_delivered {
            self.loss_round_delivered = self.delivered;
            self.loss_round_start = true;
        }
    }

    /// §4.5.10.3 AdvanceLatestDeliverySignals.
    fn advance_latest_delivery_signals(&mut self, rs: &RateSample) {
        if self.loss_round_start {
            self.bw_latest = rs.delivery_rate;
            self.inflight_latest = rs.delivered;
        }
    }

    /// §4.5.10.3 UpdateCongestionSignals, with the loss-event count Startup's
    /// high-loss exit reads.
    fn update_congestion_signals(&mut self, rs: &RateSample) {
        self.update_max_bw(rs);
        if self.lost_since_sample > 0 {
            self.loss_events_in_round = self.loss_events_in_round.saturating_add(1);
        }
        if !self.loss_round_start {
            return;
        }
        self.adapt_lower_bounds_from_congestion();
        self.is_loss_in_round = false;
    }

    fn adapt_lower_bounds_from_congestion(&mut self) {
        if self.state.is_probing_bw() {
            return;
        }
        if self.is_loss_in_round {
            // InitLowerBounds.
            if self.bw_shortterm == u64::MAX {
                self.bw_shortterm = self.max_bw;
            }
            if self.inflight_shortterm == u64::MAX {
                self.inflight_shortterm = self.cwnd;
            }
            // LossLowerBounds.
            self.bw_shortterm = self.bw_latest.max(self.bw_shortterm / 100 * BETA_PERCENT);
            self.inflight_shortterm = self.inflight_latest.max(self.inflight_shortterm / 100 * BETA_PERCENT);
        }
    }

    /// §4.5.5 UpdateACKAggregation.
    fn update_ack_aggregation(&mut self, now: Instant, rs: &RateSample) {
        let start = *self.extra_acked_interval_start.get_or_insert(now);
        let interval = now.saturating_duration_since(start);
        let mut expected = u64::try_from(u128::from(self.bw) * interval.as_nanos() / 1_000_000_000).unwrap_or(u64::MAX);
        if self.extra_acked_delivered <= expected {
            self.extra_acked_delivered = 0;
            self.extra_acked_interval_start = Some(now);
            expected = 0;
        }
        self.extra_acked_delivered = self.extra_acked_delivered.saturating_add(rs.newly_acked);
        let extra = self.extra_acked_delivered.saturating_sub(expected).min(self.cwnd);
        // A max over the last ExtraAckedFilterLen rounds (one in Startup),
        // kept as two slots of half the length each.
        let half = if self.full_bw_reached { EXTRA_ACKED_FILTER_LEN / 2 } else { 1 };
        if self.round_start {
            self.extra_acked_rounds += 1;
            if self.extra_acked_rounds >= half {
                self.extra_acked_rounds = 0;
                self.extra_acked_filter.advance();
            }
        }
        self.extra_acked_filter.update(extra);
        self.extra_acked = self.extra_acked_filter.get();
    }

    /// §4.3.1.1 CheckFullBWReached.
    fn check_full_bw_reached(&mut self, rs: &RateSample) {
        if self.full_bw_now || !self.round_start || rs.app_limited {
            return;
        }
        if rs.delivery_rate >= self.full_bw.saturating_add(self.full_bw / 4) {
            self.reset_full_bw();
            self.full_bw = rs.delivery_rate;
            return;
        }
        self.full_bw_count += 1;
        self.full_bw_now = self.full_bw_count >= 3;
        if self.full_bw_now {
            self.full_bw_reached = true;
        }
    }

    /// §4.5.10.2 IsInflightTooHigh.
    fn is_inflight_too_high(lost: u64, tx_in_flight: u64) -> bool {
        u128::from(lost) * 100 > u128::from(tx_in_flight) * u128::from(LOSS_THRESH_PERCENT)
    }

    /// §4.3.1.2 CheckStartupHighLoss: in recovery for a round, six loss
    /// events in the round and a loss rate above the threshold.
    fn check_startup_high_loss(&mut self, rs: &RateSample) {
        if self.full_bw_reached {
            return;
        }
        if self.loss_round_start
            && self.in_loss_recovery()
            && self.loss_events_in_round >= STARTUP_FULL_LOSS_COUNT
            && Self::is_inflight_too_high(rs.lost, rs.tx_in_flight)
        {
            self.full_bw_reached = true;
            self.inflight_longterm = self.bdp().max(self.inflight_latest);
        }
        if self.loss_round_start {
            self.loss_events_in_round = 0;
        }
    }

    /// §4.3.1 CheckStartupDone.
    fn check_startup_done(&mut self, rs: &RateSample) {
        self.check_startup_high_loss(rs);
        if self.state == BbrState::Startup && self.full_bw_reached {
            self.enter_drain();
        }
    }

    /// §4.3.2 CheckDrainDone.
    fn check_drain_done(&mut self, now: Instant) {
        if self.state == BbrState::Drain && (self.inflight <= self.inflight_for(self.bw, 100) || self.round_count > self.drain_start_round + 3) {
            self.enter_probe_bw(now);
        }
    }

    fn has_elapsed_in_phase(&self, now: Instant, interval: Duration) -> bool {
        self.cycle_stamp.is_some_and(|s| now > s + interval)
    }

    /// §4.3.3.5 IsRenoCoexistenceProbeTime.
    fn is_reno_coexistence_probe_time(&self) -> bool {
        let reno_rounds = self.target_inflight() / self.mds;
        self.rounds_since_probe_up >= reno_rounds.min(MAX_PROBE_ROUNDS)
    }

    /// §4.3.3.5 IsTimeToProbeBW.
    fn is_time_to_probe_bw(&mut self, now: Instant) -> bool {
        if self.has_elapsed_in_phase(now, self.bw_probe_wait) || self.is_reno_coexistence_probe_time() {
            self.start_probe_bw_refill();
            return true;
        }
        false
    }

    /// §4.3.3.6 IsTimeToCruise.
    fn is_time_to_cruise(&self) -> bool {
        self.inflight <= self.inflight_with_headroom() && self.inflight <= self.inflight_for(self.max_bw, 100)
    }

    /// §4.3.3.6 IsTimeToGoDown.
    fn is_time_to_go_down(&mut self, rs: &RateSample) -> bool {
        if self.prev_probe_too_high && self.inflight >= self.inflight_longterm {
            self.prev_probe_precautionary = true;
            return true;
        }
        if rs.cwnd_limited && self.cwnd >= self.inflight_longterm {
            self.reset_full_bw();
            self.full_bw = rs.delivery_rate;
        } else if self.full_bw_now {
            return true;
        }
        false
    }

    /// §4.3.3.6 RaiseInflightLongtermSlope.
    fn raise_inflight_longterm_slope(&mut self) {
        let growth = 1u64 << self.bw_probe_up_rounds.min(30);
        self.bw_probe_up_rounds = (self.bw_probe_up_rounds + 1).min(30);
        self.probe_up_acked_per_inc = (self.cwnd / growth).max(self.mds);
    }

    /// §4.3.3.6 ProbeInflightLongtermUpward.
    fn probe_inflight_longterm_upward(&mut self, rs: &RateSample) {
        if !rs.cwnd_limited || self.cwnd < self.inflight_longterm {
            return;
        }
        self.bw_probe_up_acked = self.bw_probe_up_acked.saturating_add(rs.newly_acked);
        if self.bw_probe_up_acked >= self.probe_up_acked_per_inc {
            let delta = self.bw_probe_up_acked / self.probe_up_acked_per_inc;
            self.bw_probe_up_acked -= delta * self.probe_up_acked_per_inc;
            self.inflight_longterm = self.inflight_longterm.saturating_add(delta.saturating_mul(self.mds));
        }
        if self.round_start {
            self.raise_inflight_longterm_slope();
        }
    }

    /// §4.3.3.6 AdaptLongTermModel; true if it decided a state transition.
    fn adapt_long_term_model(&mut self, rs: &RateSample) -> bool {
        if self.ack_phase == AckPhase::ProbeStarting && self.round_start {
            self.ack_phase = AckPhase::ProbeFeedback;
        }
        if self.ack_phase == AckPhase::ProbeStopping && self.round_start {
            self.is_bw_probe_sample = false;
            self.ack_phase = AckPhase::Init;
            if self.state.is_probe_bw() && !rs.app_limited {
                self.advance_max_bw_filter();
            }
            if self.state.is_probe_bw() && self.prev_probe_precautionary && !self.prev_probe_too_high {
                self.start_probe_bw_refill();
                return true;
            }
        }
        if !Self::is_inflight_too_high(rs.lost, rs.tx_in_flight) {
            if self.inflight_longterm == u64::MAX {
                return false;
            }
            if rs.tx_in_flight > self.inflight_longterm {
                self.inflight_longterm = rs.tx_in_flight;
            }
            if self.state == BbrState::ProbeBwUp {
                self.probe_inflight_longterm_upward(rs);
            }
        }
        false
    }

    /// §4.3.3.6 UpdateProbeBWCyclePhase.
    fn update_probe_bw_cycle_phase(&mut self, now: Instant, rs: &RateSample) {
        if !self.full_bw_reached || self.adapt_long_term_model(rs) || !self.state.is_probe_bw() {
            return;
        }
        let state = self.state;
        match state {
            BbrState::ProbeBwDown => {
                if self.is_time_to_probe_bw(now) {
                    return;
                }
                if self.is_time_to_cruise() {
                    self.start_probe_bw_cruise();
                }
            }
            BbrState::ProbeBwCruise => {
                self.is_time_to_probe_bw(now);
            }
            // After one round of REFILL, UP.
            BbrState::ProbeBwRefill if self.round_start => {
                self.is_bw_probe_sample = true;
                self.start_probe_bw_up(rs);
            }
            BbrState::ProbeBwUp if self.is_time_to_go_down(rs) => {
                self.prev_probe_too_high = false;
                self.start_probe_bw_down(now);
            }
            _ => {}
        }
    }

    /// §4.5.3 UpdateMinRTT.
    fn update_min_rtt(&mut self, now: Instant, rs: &RateSample) {
        self.probe_rtt_expired = self.probe_rtt_min_stamp.is_some_and(|s| now > s + PROBE_RTT_INTERVAL);
        if let Some(rtt) = rs.rtt {
            if self.probe_rtt_min_delay.is_none_or(|d| rtt < d) || self.probe_rtt_expired {
                self.probe_rtt_min_delay = Some(rtt);
                self.probe_rtt_min_stamp = Some(now);
            }
        }
        let min_rtt_expired = self.min_rtt_stamp.is_some_and(|s| now > s + MIN_RTT_FILTER_LEN);
        if let Some(d) = self.probe_rtt_min_delay {
            if self.min_rtt.is_none_or(|m| d < m) || min_rtt_expired {
                if self.min_rtt.is_none() {
                    // The first sample seeds PickProbeWait's generator.
                    self.rng = (d.as_nanos() as u64) | 1;
                }
                self.min_rtt = Some(d);
                self.min_rtt_stamp = self.probe_rtt_min_stamp;
            }
        }
    }

    /// §4.3.4.4 ProbeRTTCwnd.
    fn probe_rtt_cwnd(&self) -> u64 {
        self.bdp_multiple(self.bw, PROBE_RTT_CWND_GAIN).max(self.min_pipe_cwnd())
    }

    /// §4.6.4.4 SaveCwnd.
    fn save_cwnd(&mut self) {
        if !self.in_loss_recovery() && self.state != BbrState::ProbeRtt {
            self.prior_cwnd = self.cwnd;
        } else {
            self.prior_cwnd = self.prior_cwnd.max(self.cwnd);
        }
    }

    /// §4.6.4.4 RestoreCwnd.
    fn restore_cwnd(&mut self) {
        self.cwnd = self.cwnd.max(self.prior_cwnd);
    }

    /// §4.3.4.4 CheckProbeRTTDone.
    fn check_probe_rtt_done(&mut self, now: Instant) {
        if self.probe_rtt_done_stamp.is_some_and(|d| now > d) {
            // Schedules the next ProbeRTT.
            self.probe_rtt_min_stamp = Some(now);
            self.restore_cwnd();
            self.exit_probe_rtt(now);
        }
    }

    /// §4.3.4.4 HandleProbeRTT.
    fn handle_probe_rtt(&mut self, now: Instant) {
        if self.probe_rtt_done_stamp.is_none() && self.inflight <= self.probe_rtt_cwnd() {
            self.probe_rtt_done_stamp = Some(now + PROBE_RTT_DURATION);
            self.probe_rtt_round_done = false;
            self.start_round();
        } else if self.probe_rtt_done_stamp.is_some() {
            if self.round_start {
                self.probe_rtt_round_done = true;
            }
            if self.probe_rtt_round_done {
                self.check_probe_rtt_done(now);
            }
        }
    }

    /// §4.3.4.4 CheckProbeRTT.
    fn check_probe_rtt(&mut self, now: Instant, rs: &RateSample) {
        if self.state != BbrState::ProbeRtt && self.probe_rtt_expired && !self.idle_restart {
            self.enter_probe_rtt();
            self.save_cwnd();
            self.probe_rtt_done_stamp = None;
            self.ack_phase = AckPhase::ProbeStopping;
            self.start_round();
        }
        if self.state == BbrState::ProbeRtt {
            self.handle_probe_rtt(now);
        }
        if rs.delivered > 0 {
            self.idle_restart = false;
        }
    }

    // ----- control parameters (§4.6) ------------------------------------------------

    /// §4.6.1 InitPacingRate.
    fn init_pacing_rate(&mut self, srtt: Option<Duration>) {
        let base = srtt.filter(|d| !d.is_zero()).unwrap_or(NO_RTT_PACING_BASE);
        let nominal = u128::from(initial_window(self.mds)) * 1_000_000_000 / base.as_nanos().max(1);
        self.pacing_rate = u64::try_from(nominal * u128::from(STARTUP_PACING_GAIN) / 100).unwrap_or(u64::MAX);
    }

    /// §4.6.1 SetPacingRateWithGain.
    fn set_pacing_rate_with_gain(&mut self, gain: u64) {
        let rate = u64::try_from(u128::from(self.bw) * u128::from(gain) / 100 * u128::from(100 - PACING_MARGIN_PERCENT) / 100).unwrap_or(u64::MAX);
        if rate > 0 && (self.full_bw_reached || rate > self.pacing_rate) {
            self.pacing_rate = rate;
        }
    }

    /// §4.6.4.6 SetCwnd with UpdateMaxInflight and the bounds.
    fn set_cwnd(&mut self, rs: &RateSample) {
        let cap = self.bdp_multiple(self.bw, self.cwnd_gain).saturating_add(self.extra_acked);
        let max_inflight = self.quantization_budget(cap);
        if self.full_bw_reached {
            self.cwnd = self.cwnd.saturating_add(rs.newly_acked).min(max_inflight);
        } else if self.cwnd < max_inflight || self.delivered < initial_window(self.mds) {
            self.cwnd = self.cwnd.saturating_add(rs.newly_acked);
        }
        self.cwnd = self.cwnd.max(self.min_pipe_cwnd());
        if self.state == BbrState::ProbeRtt {
            self.cwnd = self.cwnd.min(self.probe_rtt_cwnd());
        }
        self.bound_cwnd_for_model();
    }

    /// §4.6.4.7 BoundCwndForModel.
    fn bound_cwnd_for_model(&mut self) {
        let mut cap = u64::MAX;
        if self.state.is_probe_bw() && self.state != BbrState::ProbeBwCruise {
            cap = self.inflight_longterm;
        } else if matches!(self.state, BbrState::ProbeRtt | BbrState::ProbeBwCruise) {
            cap = self.inflight_with_headroom();
        }
        cap = cap.min(self.inflight_shortterm).max(self.min_pipe_cwnd());
        self.cwnd = self.cwnd.min(cap);
    }

    /// §4.5.10.2 HandleInflightTooHigh.
    fn handle_inflight_too_high(&mut self, now: Instant, tx_in_flight: u64, app_limited: bool) {
        self.prev_probe_too_high = true;
        self.is_bw_probe_sample = false;
        if !app_limited {
            self.inflight_longterm = tx_in_flight.max(self.target_inflight() / 100 * BETA_PERCENT);
        }
        if self.state == BbrState::ProbeBwUp {
            self.start_probe_bw_down(now);
        }
    }

    /// §4.5.10.5 SaveStateUponLoss, reduced to what is kept here.
    fn note_loss(&mut self) {
        if !self.is_loss_in_round {
            self.loss_round_delivered = self.delivered;
        }
        self.is_loss_in_round = true;
    }
}

impl CongestionController for Bbr {
    fn on_packet_sent(&mut self, _now: Instant, _bytes: u64) {}

    /// §4.3.5 HandleRestartFromIdle.
    fn on_transmit(&mut self, now: Instant, in_flight_before: u64, app_limited: bool) {
        if in_flight_before == 0 && app_limited {
            self.idle_restart = true;
            self.extra_acked_interval_start = Some(now);
            if self.state.is_probe_bw() {
                self.set_pacing_rate_with_gain(100);
            } else if self.state == BbrState::ProbeRtt {
                self.check_probe_rtt_done(now);
            }
        }
    }

    fn on_ack(&mut self, _now: Instant, sent_time: Instant, _bytes: u64, _rtt: &RttEstimator, _app_limited: bool) {
        // §4.6.4.4: an acknowledgment of a packet sent after recovery began
        // ends it, and the window comes back to its last good value.
        if self.recovery_start.is_some_and(|start| sent_time > start) {
            self.recovery_start = None;
            self.restore_cwnd();
        }
    }

    /// §4.5.10.2 HandleLostPacket.
    fn on_packet_lost(&mut self, now: Instant, size: u64, sent: &RateSnapshot, total_lost: u64) {
        self.note_loss();
        self.lost_since_sample = self.lost_since_sample.saturating_add(size);
        if !self.is_bw_probe_sample {
            return;
        }
        let lost = total_lost.saturating_sub(sent.lost);
        let tx_in_flight = sent.tx_in_flight();
        if Self::is_inflight_too_high(lost, tx_in_flight) {
            // InflightAtLoss: where in this packet the loss rate crossed
            // the threshold.
            let inflight_prev = tx_in_flight.saturating_sub(size);
            let lost_prev = lost.saturating_sub(size);
            let lost_prefix = (u128::from(inflight_prev) * u128::from(LOSS_THRESH_PERCENT)).saturating_sub(u128::from(lost_prev) * 100)
                / u128::from(100 - LOSS_THRESH_PERCENT);
            let at_loss = inflight_prev.saturating_add(u64::try_from(lost_prefix).unwrap_or(u64::MAX));
            self.handle_inflight_too_high(now, at_loss, sent.app_limited);
        }
    }

    /// §4.6.4.4 OnEnterFastRecovery (the first loss of a recovery period)
    /// and OnEnterRTO for persistent congestion.
    fn on_congestion_event(&mut self, now: Instant, sent_time: Instant, persistent_congestion: bool, _lost_bytes: u64) {
        if !self.in_recovery(sent_time) {
            self.save_cwnd();
            self.recovery_start = Some(now);
        }
        if persistent_congestion {
            self.on_persistent_congestion(now);
        }
    }

    fn on_persistent_congestion(&mut self, now: Instant) {
        self.save_cwnd();
        self.recovery_start = Some(now);
        // RFC 9002 §7.6.2: the minimum window.
        self.cwnd = minimum_window(self.mds);
    }

    fn on_ecn_ce(&mut self, now: Instant, _sent_time: Instant) {
        // See the module docs: a loss in the round, and the end of a probe.
        self.note_loss();
        if self.state == BbrState::ProbeBwUp {
            let tx = self.inflight.max(self.cwnd);
            self.handle_inflight_too_high(now, tx, false);
        }
    }

    /// §5.1 UpdateOnACK: UpdateModelAndState, then UpdateControlParameters.
    fn on_rate_sample(&mut self, now: Instant, rs: &RateSample, rtt: &RttEstimator) {
        self.inflight = rs.bytes_in_flight;
        self.delivered = rs.total_delivered;
        if !rs.has_data() {
            return;
        }
        if !self.has_seen_rtt && rtt.has_sample() {
            // §4.6.1: the initial rate again, now from a measured RTT.
            self.has_seen_rtt = true;
            self.init_pacing_rate(Some(rtt.smoothed_rtt()));
        }
        self.update_latest_delivery_signals(rs);
        self.update_congestion_signals(rs);
        self.lost_since_sample = 0;
        self.update_ack_aggregation(now, rs);
        self.check_full_bw_reached(rs);
        self.check_startup_done(rs);
        self.check_drain_done(now);
        self.update_probe_bw_cycle_phase(now, rs);
        self.update_min_rtt(now, rs);
        self.check_probe_rtt(now, rs);
        self.advance_latest_delivery_signals(rs);
        self.bw = self.max_bw.min(self.bw_shortterm);
        self.set_pacing_rate_with_gain(self.pacing_gain);
        self.set_cwnd(rs);
    }

    fn window(&self) -> u64 {
        self.cwnd
    }

    fn ssthresh(&self) -> u64 {
        // Startup is BBR's slow start.
        if self.state == BbrState::Startup {
            u64::MAX
        } else {
            self.cwnd
        }
    }

    fn in_recovery(&self, sent_time: Instant) -> bool {
        self.recovery_start.is_some_and(|start| sent_time <= start)
    }

    fn on_mtu_update(&mut self, max_datagram_size: u64) {
        let untouched = self.delivered == 0 && self.cwnd == initial_window(self.mds);
        self.mds = max_datagram_size.max(1);
        if untouched {
            self.cwnd = initial_window(self.mds);
        }
        self.cwnd = self.cwnd.max(minimum_window(self.mds));
    }

    fn max_datagram_size(&self) -> u64 {
        self.mds
    }

    fn name(&self) -> &'static str {
        "bbr"
    }

    fn clone_box(&self) -> Box<dyn CongestionController> {
        Box::new(self.clone())
    }

    fn pacing_rate(&self) -> Option<u64> {
        Some(self.pacing_rate)
    }

    fn wants_app_limited(&self) -> bool {
        // §4.3.4.4 HandleProbeRTT: ProbeRTT's low rates are no signal.
        self.state == BbrState::ProbeRtt
    }

    fn model_state(&self) -> Option<&'static str> {
        Some(self.state.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MDS: u64 = 1200;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// A sample of `rate` bytes/s delivering `acked` bytes, at round
    /// boundary `prior_delivered`.
    fn sample(b: &Bbr, rate: u64, acked: u64, rtt: Duration) -> RateSample {
        RateSample {
            delivery_rate: rate,
            delivered: acked,
            interval: rtt,
            prior_delivered: b.delivered,
            app_limited: false,
            tx_in_flight: b.cwnd,
            lost: 0,
            newly_acked: acked,
            newly_lost: 0,
            total_delivered: b.delivered + acked,
            bytes_in_flight: 0,
            rtt: Some(rtt),
            cwnd_limited: true,
        }
    }

    /// An RTT estimator with one 100 ms sample.
    fn rtt100() -> RttEstimator {
        let mut r = RttEstimator::default();
        r.update(Instant::now(), ms(100), Duration::ZERO, Duration::ZERO, true);
        r
    }

    /// Feeds one round per call: every sample starts a new round because
    /// its prior_delivered is the delivered count when the round began.
    fn round(b: &mut Bbr, now: Instant, rate: u64, inflight: u64) {
        let mut rs = sample(b, rate, 10 * MDS, ms(100));
        rs.bytes_in_flight = inflight;
        b.on_rate_sample(now, &rs, &rtt100());
    }

    #[test]
    fn starts_in_startup_with_the_initial_window_and_a_fast_pace() {
        let b = Bbr::new(MDS);
        assert_eq!(b.state(), BbrState::Startup);
        assert_eq!(b.window(), 12_000);
        // 2.77 × 12,000 bytes / 1 ms.
        assert_eq!(b.pacing_rate(), Some(33_240_000));
        assert!(b.in_slow_start());
        assert_eq!(b.model_state(), Some("startup"));
    }

    /// Bandwidth grows 2× per round, then stays flat: three flat rounds
    /// reach full bandwidth (§4.3.1.1), and Drain starts.
    #[test]
    fn a_bandwidth_plateau_ends_startup_after_three_rounds() {
        let t0 = Instant::now();
        let mut b = Bbr::new(MDS);
        let mut now = t0;
        for rate in [100_000, 200_000, 400_000, 800_000] {
            now += ms(100);
            round(&mut b, now, rate, 50_000);
            assert_eq!(b.state(), BbrState::Startup);
        }
        assert_eq!(b.max_bw(), 800_000);
        // Pacing at 2.77 × max_bw × 0.99.
        assert_eq!(b.pacing_rate(), Some(800_000 * 277 / 100 * 99 / 100));
        for i in 0..3 {
            now += ms(100);
            round(&mut b, now, 820_000, 200_000);
            assert_eq!(b.full_bw_reached(), i == 2, "round {i}");
        }
        // In flight (200 KB) is above the BDP (82 KB): drain first.
        assert_eq!(b.state(), BbrState::Drain);
        assert_eq!(b.model_state(), Some("drain"));
        // Drain paces at half the bandwidth.
        assert_eq!(b.pacing_rate(), Some(820_000 / 2 * 99 / 100));
        // Once in flight is down to the BDP, ProbeBW_DOWN, which the same
        // ACK leaves for CRUISE: in flight is within the BDP already.
        now += ms(100);
        round(&mut b, now, 820_000, 80_000);
        assert_eq!(b.state(), BbrState::ProbeBwCruise);
        assert_eq!(b.pacing_rate(), Some(820_000 * 99 / 100));
        // The window is bounded by 2 × BDP (+ aggregation) = about 164 KB.
        assert!(b.window() <= 2 * 82_000 + 20 * MDS, "{}", b.window());
    }

    fn to_probe_bw(now: &mut Instant) -> Bbr {
        let mut b = Bbr::new(MDS);
        for rate in [100_000, 200_000, 400_000, 800_000, 800_000, 800_000, 800_000] {
            *now += ms(100);
            round(&mut b, *now, rate, 50_000);
        }
        // Drained and through DOWN at once (in flight is within the BDP).
        assert_eq!(b.state(), BbrState::ProbeBwCruise);
        b
    }

    /// Through CRUISE and REFILL to the start of a ProbeBW_UP probe.
    fn to_probe_up(now: &mut Instant) -> Bbr {
        let mut b = to_probe_bw(now);
        for _ in 0..60 {
            *now += ms(100);
            round(&mut b, *now, 800_000, 40_000);
            if b.state() == BbrState::ProbeBwUp {
                break;
            }
        }
        assert_eq!(b.state(), BbrState::ProbeBwUp);
        b
    }

    /// CRUISE → REFILL after the
    /// probe wait (2–3 s), → UP one round later, → DOWN at the next
    /// plateau (§4.3.3).
    #[test]
    fn probe_bw_cycles_through_its_phases() {
        let mut now = Instant::now();
        let mut b = to_probe_bw(&mut now);
        let mut seen = vec![b.state()];
        for _ in 0..60 {
            now += ms(100);
            round(&mut b, now, 800_000, 40_000);
            if seen.last() != Some(&b.state()) {
                seen.push(b.state());
            }
        }
        assert!(seen.windows(4).any(|w| w == [BbrState::ProbeBwCruise, BbrState::ProbeBwRefill, BbrState::ProbeBwUp, BbrState::ProbeBwDown]), "{seen:?}");
    }

    /// A loss rate above 2 % during a bandwidth probe ends it and sets
    /// the long-term inflight bound (§4.5.10.2).
    #[test]
    fn high_loss_in_probe_up_sets_inflight_longterm_and_goes_down() {
        let mut now = Instant::now();
        let mut b = to_probe_up(&mut now);
        assert_eq!(b.inflight_longterm(), u64::MAX);
        // 100 KB in flight when the packet left; 5 KB lost since (5 %).
        let snap = RateSnapshot::default().with_tx_in_flight(100_000);
        b.on_packet_lost(now, MDS, &snap, 5_000);
        assert_eq!(b.state(), BbrState::ProbeBwDown);
        // InflightAtLoss: 98,800 in flight before it, 3,800 lost before
        // it; the 2 % crossing: (0.02 × 98,800 − 3,800) < 0, so at 98,800.
        assert_eq!(b.inflight_longterm(), 98_800);
    }

    /// Outside probes, a round with loss shrinks the short-term bounds by
    /// β = 0.7 (§4.5.10.3), but not below the latest delivery.
    #[test]
    fn loss_outside_a_probe_shrinks_the_short_term_model() {
        let mut now = Instant::now();
        let mut b = to_probe_bw(&mut now);
        assert_eq!(b.bw(), 800_000);
        let snap = RateSnapshot::default();
        b.on_packet_lost(now, MDS, &snap, MDS);
        now += ms(100);
        round(&mut b, now, 300_000, 40_000);
        // bw_shortterm = max(bw_latest (800,000 from the previous round's
        // samples), 0.7 × 800,000)
        assert_eq!(b.bw(), 800_000);
        b.on_packet_lost(now, MDS, &snap, 2 * MDS);
        now += ms(100);
        round(&mut b, now, 300_000, 40_000);
        assert_eq!(b.bw(), 560_000, "0.7 × 800,000");
    }

    /// min_rtt unrefreshed for 5 s: ProbeRTT cuts the window to half a BDP
    /// for 200 ms and a round, then returns to ProbeBW (§4.3.4).
    #[test]
    fn probe_rtt_every_five_seconds() {
        let mut now = Instant::now();
        let mut b = to_probe_bw(&mut now);
        let mut entered = None;
        for i in 0..80 {
            now += ms(100);
            // RTT samples above the minimum from now on.
            let mut rs = sample(&b, 800_000, 10 * MDS, ms(120));
            rs.bytes_in_flight = if b.state() == BbrState::ProbeRtt { 4 * MDS } else { 40_000 };
            b.on_rate_sample(now, &rs, &rtt100());
            if b.state() == BbrState::ProbeRtt && entered.is_none() {
                entered = Some(i);
                // Half of 800,000 B/s × 100 ms.
                assert_eq!(b.window(), 40_000);
                assert!(b.wants_app_limited());
            }
            if entered.is_some() && b.state() != BbrState::ProbeRtt {
                assert!(b.state().is_probe_bw());
                assert!(b.window() > 40_000);
                return;
            }
        }
        panic!("ProbeRTT entered at {entered:?} and never left");
    }

    /// High loss in Startup (six loss events in a round, above 2 %) ends
    /// it (§4.3.1.2).
    #[test]
    fn high_loss_ends_startup() {
        let t0 = Instant::now();
        let mut b = Bbr::new(MDS);
        let mut now = t0;
        round(&mut b, now, 100_000, 50_000);
        b.on_congestion_event(now, now, false, MDS);
        for i in 0..6u64 {
            b.on_packet_lost(now, MDS, &RateSnapshot::default(), (i + 1) * MDS);
            let mut rs = sample(&b, 200_000, MDS, ms(100));
            // Within the round: not a round start.
            rs.prior_delivered = 0;
            rs.lost = 10 * MDS;
            rs.tx_in_flight = 60_000;
            now += ms(10);
            b.on_rate_sample(now, &rs, &rtt100());
        }
        assert_eq!(b.state(), BbrState::Startup);
        now += ms(100);
        let mut rs = sample(&b, 200_000, MDS, ms(100));
        rs.lost = 10 * MDS;
        rs.tx_in_flight = 60_000;
        b.on_rate_sample(now, &rs, &rtt100());
        assert!(b.full_bw_reached());
        assert_ne!(b.state(), BbrState::Startup);
        assert_ne!(b.inflight_longterm(), u64::MAX);
    }

    /// ECN-CE (module docs): a probe ends as at high loss, and the round's
    /// short-term bounds shrink by β once the probe is over.
    #[test]
    fn ecn_ce_ends_a_probe_and_counts_as_loss_in_the_round() {
        let mut now = Instant::now();
        let mut b = to_probe_up(&mut now);
        b.on_ecn_ce(now, now);
        assert_eq!(b.state(), BbrState::ProbeBwDown);
        assert_ne!(b.inflight_longterm(), u64::MAX);
        b.on_ecn_ce(now, now);
        now += ms(100);
        round(&mut b, now, 800_000, 40_000);
        now += ms(100);
        round(&mut b, now, 300_000, 40_000);
        b.on_ecn_ce(now, now);
        now += ms(100);
        round(&mut b, now, 300_000, 40_000);
        assert!(b.bw() < b.max_bw(), "bw {} max_bw {}", b.bw(), b.max_bw());
    }

    #[test]
    fn recovery_saves_and_restores_the_window() {
        let t0 = Instant::now();
        let mut b = Bbr::new(MDS);
        let w = b.window();
        b.on_congestion_event(t0 + ms(10), t0, false, MDS);
        assert!(b.in_recovery(t0 + ms(5)));
        assert!(!b.in_recovery(t0 + ms(20)));
        b.on_persistent_congestion(t0 + ms(10));
        assert_eq!(b.window(), minimum_window(MDS));
        b.on_ack(t0 + ms(50), t0 + ms(20), MDS, &RttEstimator::default(), false);
        assert_eq!(b.window(), w, "restored on leaving recovery");
    }
}
