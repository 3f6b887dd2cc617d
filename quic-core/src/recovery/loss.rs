//! Loss detection and the probe timeout (RFC 9002 §6, Appendix A), tied to
//! the RTT estimator, the congestion controller and the pacer.
//!
//! [`Recovery`] never reads a clock or arms a timer: the connection passes
//! `now` into every event and asks [`Recovery::loss_detection_timer`] for the
//! single deadline of RFC 9002 A.8, then calls
//! [`Recovery::on_loss_detection_timeout`] once it has passed.
//!
//! Departures from the pseudocode, all deliberate:
//! - Persistent congestion is judged over the packets lost in the space the
//!   acknowledgment (or timeout) is for, as RFC 9002 §7.6.2 permits.
//! - A client that has not had its address validated by the server keeps an
//!   anti-deadlock PTO armed even when only 0-RTT packets are in flight
//!   before handshake confirmation (RFC 9002 §6.2.2.1 "MUST set the PTO
//!   timer ... even if there are no packets in flight"); the anti-deadlock
//!   period counts from the last event that would re-arm the timer in A.8.
//! - The ACK Delay of acknowledgments in Initial packets is ignored
//!   (RFC 9002 §5.3 MAY).

use core::ops::RangeInclusive;
use core::time::Duration;
use std::time::Instant;

use super::cc::{CongestionAlgorithm, CongestionController};
use super::pacer::Pacer;
use super::rtt::RttEstimator;
use super::sent::{LossCriteria, PersistentCriteria, SentPacket, SentPackets};
use super::{backoff, SpaceId, DEFAULT_MAX_ACK_DELAY, INITIAL_RTT, MIN_MAX_DATAGRAM_SIZE, PERSISTENT_CONGESTION_THRESHOLD};
use crate::error::Error;

/// How to build a [`Recovery`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryConfig {
    /// Servers always consider the peer's address validated for PTO purposes
    /// (RFC 9002 A.6 PeerCompletedAddressValidation).
    pub is_server: bool,
    /// kInitialRtt (RFC 9002 §6.2.2).
    pub initial_rtt: Duration,
    /// The peer's max_ack_delay transport parameter (RFC 9000 §18.2); can be
    /// changed once the parameters arrive with
    /// [`Recovery::set_max_ack_delay`].
    pub max_ack_delay: Duration,
    /// The path's maximum datagram size (RFC 9002 B.2, at least 1200).
    pub max_datagram_size: u64,
    pub congestion: CongestionAlgorithm,
    /// HyStart++ in the initial slow start (RFC 9406).
    pub hystart: bool,
    /// Datagrams the pacer lets leave in one burst (RFC 9002 §7.7 leaves the
    /// burst size to the sender; at least 10, the initial window).
    pub pacing_burst: u64,
}

impl RecoveryConfig {
    /// Defaults for a client (`is_server == false`) or a server.
    pub fn new(is_server: bool) -> Self {
        Self {
            is_server,
            initial_rtt: INITIAL_RTT,
            max_ack_delay: DEFAULT_MAX_ACK_DELAY,
            max_datagram_size: MIN_MAX_DATAGRAM_SIZE,
            congestion: CongestionAlgorithm::default(),
            hystart: true,
            pacing_burst: super::pacer::BURST_DATAGRAMS,
        }
    }
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        Self::new(false)
    }
}

/// Connection state the loss detection timer depends on (RFC 9002 A.6, A.8).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimerContext {
    /// RFC 9001 §4.1.2. No PTO for application data before it (RFC 9002
    /// §6.2.1), and max_ack_delay only counts after it.
    pub handshake_confirmed: bool,
    /// Handshake keys are available: a client's anti-deadlock probe is a
    /// Handshake packet, otherwise a padded Initial (RFC 9002 §6.2.2.1).
    pub has_handshake_keys: bool,
    /// Server at its anti-amplification limit (RFC 9000 §8.1): no PTO may be
    /// armed (RFC 9002 §6.2.2.1). When a datagram arrives and lifts the
    /// limit, ask for the timer again; if it is already in the past, run
    /// the timeout at once (RFC 9002 A.6).
    pub amplification_blocked: bool,
}

/// What an ACK or a timeout did. The connection keeps one and passes it
/// every time, so the vectors keep their capacity and steady state does not
/// allocate. Every call that takes it clears it first.
#[derive(Debug)]
pub struct AckOutcome<T> {
    /// Newly acknowledged packets, largest packet number first: the order
    /// an ACK frame lists its ranges in (RFC 9000 §19.3.1). Iterate with
    /// `.rev()` for increasing order; records are not moved to reverse
    /// them (a bulk sender acknowledges thousands a second).
    pub acked: Vec<SentPacket<T>>,
    /// Packets declared lost, increasing packet number order. Their
    /// retransmittable frames must be sent again (RFC 9000 §13.3).
    pub lost: Vec<SentPacket<T>>,
    /// An RTT sample was taken (RFC 9002 §5.1).
    pub rtt_updated: bool,
    /// The peer's ECN-CE count increased (RFC 9002 §7.1).
    pub ecn_ce_increased: bool,
    /// Persistent congestion was established (RFC 9002 §7.6).
    pub persistent_congestion: bool,
    /// Earlier losses this ACK showed to be spurious (`reorder.rs`).
    pub spurious: super::reorder::SpuriousOutcome,
}

impl<T> AckOutcome<T> {
    pub fn new() -> Self {
        Self {
            acked: Vec::new(),
            lost: Vec::new(),
            rtt_updated: false,
            ecn_ce_increased: false,
            persistent_congestion: false,
            spurious: super::reorder::SpuriousOutcome::default(),
        }
    }

    /// Frees the buffers once they are empty; the caller does it when
    /// nothing is in flight, so a quiet connection holds none and a
    /// transfer does not reallocate per ACK.
    pub fn release(&mut self) {
        if self.acked.is_empty() {
            self.acked = Vec::new();
        }
        if self.lost.is_empty() {
            self.lost = Vec::new();
        }
    }

    pub fn clear(&mut self) {
        self.acked.clear();
        self.lost.clear();
        self.rtt_updated = false;
        self.ecn_ce_increased = false;
        self.persistent_congestion = false;
        self.spurious = super::reorder::SpuriousOutcome::default();
    }
}

impl<T> Default for AckOutcome<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`Recovery::on_loss_detection_timeout`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutAction {
    /// No timer is armed, or it has not expired yet: nothing happened.
    NotDue,
    /// Time threshold loss detection declared packets of `space` lost; they
    /// are in the outcome's `lost` (RFC 9002 §6.1.2).
    LossDetected { space: SpaceId },
    /// A probe timeout fired (RFC 9002 §6.2.4): send `probes` ack-eliciting
    /// packets in `space`, ignoring the congestion window (RFC 9002 §7.5).
    /// `probes` is 1 for a client's anti-deadlock probe and 2 otherwise.
    Probe { space: SpaceId, probes: u8 },
}

/// Per packet number space state (RFC 9002 A.3).
#[derive(Debug, Clone)]
struct PacketSpace<T> {
    sent: SentPackets<T>,
    /// largest_acked_packet; `None` is "infinite" in A.4.
    largest_acked: Option<u64>,
    /// loss_time; `None` is "0".
    loss_time: Option<Instant>,
    /// time_of_last_ack_eliciting_packet; `None` is "0".
    time_of_last_ack_eliciting: Option<Instant>,
    /// ecn_ce_counters (RFC 9002 B.2): the highest ECN-CE count reported.
    ecn_ce: u64,
}

impl<T> PacketSpace<T> {
    fn new() -> Self {
        Self { sent: SentPackets::new(), largest_acked: None, loss_time: None, time_of_last_ack_eliciting: None, ecn_ce: 0 }
    }
}

/// Where the PTO of RFC 9002 A.8 GetPtoTimeAndSpace points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PtoTarget {
    at: Instant,
    space: SpaceId,
    /// Nothing ack-eliciting to probe for: a client's anti-deadlock probe.
    anti_deadlock: bool,
}

/// Loss detection and congestion control state for one path (RFC 9002).
#[derive(Debug, Clone)]
pub struct Recovery<T> {
    is_server: bool,
    rtt: RttEstimator,
    cc: Box<dyn CongestionController>,
    /// A fresh copy of the controller, to restart from after a Retry.
    pristine_cc: Box<dyn CongestionController>,
    pacer: Pacer,
    spaces: [PacketSpace<T>; 3],
    /// RFC 9002 A.3 pto_count.
    pto_count: u32,
    /// The peer's max_ack_delay.
    max_ack_delay: Duration,
    /// RFC 9002 A.6: a client knows the server validated its address once an
    /// ACK arrives in a Handshake packet.
    handshake_ack_received: bool,
    /// The sender is not using its window (RFC 9002 §7.8).
    app_limited: bool,
    /// Last time A.8 SetLossDetectionTimer would have run (packet sent, ACK
    /// received, timeout): the base of the anti-deadlock PTO, which A.8
    /// computes from "now" at that moment.
    timer_anchor: Option<Instant>,
    /// Reordering tolerance and the undo of spurious reductions.
    reorder: super::reorder::ReorderState,
    /// Delivery-rate sampling for model-based controllers (`delivery.rs`).
    delivery: super::delivery::DeliveryRate,
}

impl<T> Recovery<T> {
    /// Recovery state with the configured congestion controller.
    pub fn new(config: RecoveryConfig) -> Self {
        let cc = config.congestion.build(config.max_datagram_size, config.hystart);
        Self::with_congestion_controller(config, cc)
    }

    /// Recovery state with a caller-supplied controller (`config.congestion`
    /// is ignored).
    pub fn with_congestion_controller(config: RecoveryConfig, cc: Box<dyn CongestionController>) -> Self {
        Self {
            is_server: config.is_server,
            rtt: RttEstimator::new(config.initial_rtt),
            pristine_cc: cc.clone_box(),
            cc,
            pacer: Pacer::with_burst(config.max_datagram_size, config.pacing_burst),
            spaces: [PacketSpace::new(), PacketSpace::new(), PacketSpace::new()],
            pto_count: 0,
            max_ack_delay: config.max_ack_delay,
            handshake_ack_received: false,
            app_limited: false,
            timer_anchor: None,
            reorder: super::reorder::ReorderState::default(),
            delivery: super::delivery::DeliveryRate::default(),
        }
    }

    // ----- accessors -------------------------------------------------------

    pub fn rtt(&self) -> &RttEstimator {
        &self.rtt
    }

    /// For seeding the initial RTT (e.g. from a Retry, RFC 9002 §6.3, or a
    /// previous connection, §6.2.2).
    /// Reordering tolerance in effect and spurious-loss counters.
    pub fn reorder(&self) -> &super::reorder::ReorderState {
        &self.reorder
    }

    pub fn rtt_mut(&mut self) -> &mut RttEstimator {
        &mut self.rtt
    }

    pub fn congestion_controller(&self) -> &dyn CongestionController {
        self.cc.as_ref()
    }

    /// The congestion window in bytes.
    pub fn congestion_window(&self) -> u64 {
        self.cc.window()
    }

    /// RFC 9002 B.2 bytes_in_flight, across all packet number spaces.
    pub fn bytes_in_flight(&self) -> u64 {
        self.spaces.iter().fold(0u64, |acc, s| acc.saturating_add(s.sent.bytes_in_flight()))
    }

    /// RFC 9002 §7: a packet of `bytes` may be sent without exceeding the
    /// congestion window. (PTO probes are exempt, §7.5.)
    pub fn can_send(&self, bytes: u64) -> bool {
        self.bytes_in_flight().saturating_add(bytes) <= self.cc.window()
    }

    /// Bytes the congestion window still allows in flight.
    pub fn window_available(&self) -> u64 {
        self.cc.window().saturating_sub(self.bytes_in_flight())
    }

    /// RFC 9002 A.3 pto_count: consecutive PTOs without an acknowledgment.
    pub fn pto_count(&self) -> u32 {
        self.pto_count
    }

    pub fn max_ack_delay(&self) -> Duration {
        self.max_ack_delay
    }

    /// Set the peer's max_ack_delay transport parameter.
    pub fn set_max_ack_delay(&mut self, max_ack_delay: Duration) {
        self.max_ack_delay = max_ack_delay;
    }

    /// Tell recovery whether the sender is application or flow-control
    /// limited (RFC 9002 §7.8): set it when there was window left but
    /// nothing to send, clear it when the window fills. The window does not
    /// grow while it is set.
    pub fn set_app_limited(&mut self, app_limited: bool) {
        self.app_limited = app_limited;
    }

    pub fn app_limited(&self) -> bool {
        self.app_limited
    }

    /// The largest packet number the peer acknowledged in `space`.
    pub fn largest_acked(&self, space: SpaceId) -> Option<u64> {
        self.space(space).largest_acked
    }

    /// The unacknowledged packets of `space` (e.g. to pick data for a PTO
    /// probe, RFC 9002 §6.2.4).
    pub fn sent_packets(&self, space: SpaceId) -> &SentPackets<T> {
        &self.space(space).sent
    }

    /// The packets of `space` in flight, payloads mutable.
    pub fn sent_packets_mut(&mut self, space: SpaceId) -> &mut SentPackets<T> {
        &mut self.space_mut(space).sent
    }

    /// Some ack-eliciting packet of `space` is in flight.
    pub fn has_ack_eliciting_in_flight(&self, space: SpaceId) -> bool {
        self.space(space).sent.ack_eliciting_in_flight() > 0
    }

    /// RFC 9002 A.6 PeerCompletedAddressValidation: always for a server; for
    /// a client once a Handshake ACK arrived or the handshake is confirmed.
    pub fn peer_completed_address_validation(&self, handshake_confirmed: bool) -> bool {
        self.is_server || self.handshake_ack_received || handshake_confirmed
    }

    fn space(&self, space: SpaceId) -> &PacketSpace<T> {
        &self.spaces[space.index()]
    }

    fn space_mut(&mut self, space: SpaceId) -> &mut PacketSpace<T> {
        &mut self.spaces[space.index()]
    }

    // ----- durations -------------------------------------------------------

    /// The PTO period for `space` including backoff (RFC 9002 §6.2.1):
    /// (smoothed_rtt + max(4 * rttvar, kGranularity) [+ max_ack_delay for
    /// application data once the handshake is confirmed]) * 2^pto_count.
    pub fn pto(&self, space: SpaceId, handshake_confirmed: bool) -> Duration {
        backoff(self.pto_period(space, handshake_confirmed), self.pto_count)
    }

    /// The PTO period for `space` without the exponential backoff (RFC 9002
    /// §6.2.1 before the 2^pto_count factor). It stays bounded by the RTT
    /// estimate while probes go unanswered, unlike [`Recovery::pto`].
    pub fn pto_period(&self, space: SpaceId, handshake_confirmed: bool) -> Duration {
        let base = self.rtt.pto_base();
        if space == SpaceId::Data && handshake_confirmed {
            base.saturating_add(self.max_ack_delay)
        } else {
            base
        }
    }

    /// RFC 9002 §7.6.1: (smoothed_rtt + max(4 * rttvar, kGranularity) +
    /// max_ack_delay) * kPersistentCongestionThreshold, regardless of space.
    pub fn persistent_congestion_duration(&self) -> Duration {
        self.rtt.pto_base().saturating_add(self.max_ack_delay).saturating_mul(PERSISTENT_CONGESTION_THRESHOLD)
    }

    // ----- sending ---------------------------------------------------------

    /// RFC 9002 A.5 OnPacketSent. `packet.time_sent` is the send time.
    /// Packet numbers must increase within a space (RFC 9000 §12.3); a packet
    /// that breaks this is a local bug and is not recorded.
    pub fn on_packet_sent(&mut self, space: SpaceId, mut packet: SentPacket<T>) {
        let t = packet.time_sent;
        let size = u64::from(packet.size);
        let (in_flight, ack_eliciting) = (packet.in_flight, packet.ack_eliciting);
        if in_flight {
            let before = self.bytes_in_flight();
            self.cc.on_transmit(t, before, self.delivery.app_limited());
            packet.rate = self.delivery.on_sent(t, size, before);
        }
        let s = self.space_mut(space);
        let recorded = s.sent.insert(packet).is_ok();
        debug_assert!(recorded, "packet numbers must increase within a space");
        if !recorded {
            return;
        }
        if in_flight {
            if ack_eliciting {
                s.time_of_last_ack_eliciting = Some(t);
            }
            self.cc.on_packet_sent(t, size);
            self.pacer.on_sent(t, size);
            self.timer_anchor = Some(t);
        }
    }

    /// When the pacer lets a packet of `bytes` leave (RFC 9002 §7.7): `None`
    /// means now. ACK-only packets should not be paced.
    pub fn pacing_deadline(&mut self, now: Instant, bytes: u64) -> Option<Instant> {
        match self.cc.pacing_rate() {
            // A model-based controller paces at its own rate (BBR).
            Some(rate) => self.pacer.delay_until_rate(now, bytes, rate),
            None => self.pacer.delay_until(now, bytes, self.cc.window(), self.rtt.smoothed_rtt()),
        }
    }

    /// The sender had nothing to send while the window and the pacer
    /// allowed more: an application-limited phase starts (draft-ietf-ccwg-bbr
    /// §4.1.2.6), whose rate samples do not lower the model.
    pub fn on_app_limited(&mut self) {
        let in_flight = self.bytes_in_flight();
        self.delivery.mark_app_limited(in_flight);
    }

    /// The congestion window refused a send (C.is_cwnd_limited).
    pub fn on_cwnd_limited(&mut self) {
        self.delivery.note_cwnd_limited();
    }

    /// The delivery-rate sampler's state.
    pub fn delivery(&self) -> &super::delivery::DeliveryRate {
        &self.delivery
    }

    // ----- acknowledgments -------------------------------------------------

    /// RFC 9002 A.7 OnAckReceived for an ACK frame received in `space`.
    ///
    /// `ranges` are the acknowledged ranges, largest first, as decoded from
    /// the frame (RFC 9000 §19.3.1); they are walked twice, once to validate
    /// and once to apply, so on `Err` nothing has changed. `ack_delay` is the
    /// decoded ACK Delay, `ecn` the (ECT0, ECT1, ECN-CE) counts if the frame
    /// carried them (validating them is the connection's job, RFC 9000
    /// §13.4.2.1).
    ///
    /// Errors: PROTOCOL_VIOLATION for a packet number that was never sent
    /// (RFC 9000 §13.1), FRAME_ENCODING_ERROR for ranges that are not
    /// descending.
    #[allow(clippy::too_many_arguments)]
    pub fn on_ack_received<I>(
        &mut self,
        space: SpaceId,
        ranges: I,
        ack_delay: Duration,
        ecn: Option<(u64, u64, u64)>,
        now: Instant,
        handshake_confirmed: bool,
        out: &mut AckOutcome<T>,
    ) -> Result<(), Error>
    where
        I: Iterator<Item = RangeInclusive<u64>> + Clone,
    {
        out.clear();
        let Some(largest) = self.space(space).sent.validate_ack(ranges.clone())? else {
            return Ok(());
        };
        if space == SpaceId::Handshake {
            self.handshake_ack_received = true;
        }

        // Packets declared lost earlier and acknowledged now were reordered,
        // not lost (RFC 9002 §6.1): adapt, and undo a spurious reduction.
        out.spurious = self.reorder.on_ack(space, largest, ranges.clone(), &mut self.cc);
        let mut sampler = self.delivery.begin_ack();
        let s = self.space_mut(space);
        s.largest_acked = Some(s.largest_acked.map_or(largest, |l| l.max(largest)));
        // A.7 DetectAndRemoveAckedPackets; `acked` comes out largest first.
        for range in ranges {
            s.sent.remove_acked(range, &mut out.acked);
        }
        s.sent.compact();
        let Some(newest) = out.acked.first() else {
            // Nothing newly acknowledged: nothing else to do (A.7).
            return Ok(());
        };
        let (newest_pn, newest_sent) = (newest.pn, newest.time_sent);
        for p in out.acked.iter().filter(|p| p.in_flight) {
            self.delivery.on_acked(&mut sampler, now, p.pn, p.time_sent, u64::from(p.size), &p.rate);
        }
        let mut rtt_sample = None;

        // RFC 9002 §5.1: sample only if the largest acknowledged is newly
        // acknowledged and something ack-eliciting was newly acknowledged.
        if newest_pn == largest && out.acked.iter().any(|p| p.ack_eliciting) {
            let latest_rtt = now.saturating_duration_since(newest_sent);
            // RFC 9002 §5.3: MAY ignore the ACK delay for Initial packets,
            // which the peer does not delay (RFC 9000 §13.2.1).
            let ack_delay = if space == SpaceId::Initial { Duration::ZERO } else { ack_delay };
            self.rtt.update(now, latest_rtt, ack_delay, self.max_ack_delay, handshake_confirmed);
            out.rtt_updated = true;
            rtt_sample = Some(latest_rtt);
        }

        // RFC 9002 §7.1 / B.7 ProcessECN: an increased ECN-CE count is a
        // congestion event for the largest newly acknowledged packet.
        if let Some((_, _, ce)) = ecn {
            let s = self.space_mut(space);
            if ce > s.ecn_ce {
                s.ecn_ce = ce;
                self.cc.on_ecn_ce(now, newest_sent);
                out.ecn_ce_increased = true;
            }
        }

        // A.7: losses before acks, so acks of packets sent before a new
        // recovery period do not grow the window (B.5).
        self.detect_and_remove_lost(space, now, out);
        for p in &out.acked {
            if p.in_flight {
                self.cc.on_ack(now, p.time_sent, u64::from(p.size), &self.rtt, self.app_limited);
            }
        }
        // draft-ietf-ccwg-bbr §5.1 UpdateOnACK: the ACK's rate sample.
        let min_rtt = self.rtt.has_sample().then(|| self.rtt.min_rtt());
        let in_flight = self.bytes_in_flight();
        let rs = self.delivery.finish_ack(sampler, min_rtt, rtt_sample, in_flight);
        self.cc.on_rate_sample(now, &rs, &self.rtt);
        if self.cc.wants_app_limited() {
            self.delivery.mark_app_limited(in_flight);
        }

        // RFC 9002 §6.2.1 / A.7: reset the backoff, except at a client still
        // unsure the server validated its address.
        if self.peer_completed_address_validation(handshake_confirmed) {
            self.pto_count = 0;
        }
        self.timer_anchor = Some(now);
        Ok(())
    }

    /// RFC 9002 A.10 DetectAndRemoveLostPackets + B.8 OnPacketsLost.
    fn detect_and_remove_lost(&mut self, space: SpaceId, now: Instant, out: &mut AckOutcome<T>) {
        // kTimeThreshold, adapted to the reordering seen (RFC 9002 §6.1.2).
        let eighths = self.reorder.time_eighths();
        let loss_delay = super::time_threshold_eighths(self.rtt.loss_rtt(), eighths);
        let lost_before = out.lost.len();
        let persistent =
            self.rtt.first_sample_time().map(|first| PersistentCriteria { first_rtt_sample: first, duration: self.persistent_congestion_duration() });
        let s = &mut self.spaces[space.index()];
        let Some(largest_acked) = s.largest_acked else {
            s.loss_time = None;
            return;
        };
        let criteria = LossCriteria {
            largest_acked,
            packet_threshold: self.reorder.packet_threshold(),
            lost_send_time: now.checked_sub(loss_delay),
            loss_delay,
            persistent,
        };
        let scan = s.sent.detect_lost(&criteria, &mut out.lost);
        s.loss_time = scan.loss_time;

        // B.8: one congestion event for the newest lost in-flight packet.
        // The controller's state from before is kept while the event may
        // still prove spurious (RFC 9438 §4.9 undo, `reorder.rs`).
        match scan.largest_lost_sent {
            Some(sent) => {
                let (snapshot, window) = (self.cc.clone_box(), self.cc.window());
                // draft-ietf-ccwg-bbr §5.1 per-loss steps, one per packet.
                for p in out.lost.iter().skip(lost_before).filter(|p| p.in_flight && !p.mtu_probe) {
                    let size = u64::from(p.size);
                    self.delivery.on_lost(size);
                    self.cc.on_packet_lost(now, size, &p.rate, self.delivery.lost());
                }
                self.cc.on_congestion_event(now, sent, scan.persistent_congestion, scan.lost_bytes);
                if self.cc.window() < window {
                    self.reorder.on_reduction(snapshot);
                }
            }
            None if scan.persistent_congestion => self.cc.on_persistent_congestion(now),
            None => {}
        }
        for p in &out.lost[lost_before..] {
            self.reorder.on_lost(space, p.pn);
        }
        if scan.persistent_congestion {
            self.reorder.forget_undo();
            // RFC 9002 §5.2: min_rtt restarts from the newest sample.
            self.rtt.on_persistent_congestion();
            out.persistent_congestion = true;
        }
    }

    // ----- timers ----------------------------------------------------------

    /// RFC 9002 A.8 GetLossTimeAndSpace: the earliest loss_time.
    fn earliest_loss_time(&self) -> Option<(Instant, SpaceId)> {
        let mut best: Option<(Instant, SpaceId)> = None;
        for space in SpaceId::ALL {
            if let Some(t) = self.space(space).loss_time {
                if best.is_none_or(|(b, _)| t < b) {
                    best = Some((t, space));
                }
            }
        }
        best
    }

    /// FUZZING ONLY: the loss times and the PTO target, for a target's
    /// report of a spinning timer.
    #[cfg(feature = "fuzzing")]
    pub fn fuzz_describe(&self, ctx: TimerContext) -> String {
        let loss: Vec<_> = SpaceId::ALL.iter().map(|&s| self.space(s).loss_time).collect();
        let pto = self.pto_target(ctx).map(|p| (p.at, p.space, p.anti_deadlock));
        format!("loss_time {loss:?} pto {pto:?} pto_count {} anchor {:?}", self.pto_count, self.timer_anchor)
    }

    /// RFC 9002 A.8 GetPtoTimeAndSpace, with SetLossDetectionTimer's "nothing
    /// in flight" rule folded in.
    fn pto_target(&self, ctx: TimerContext) -> Option<PtoTarget> {
        let confirmed = ctx.handshake_confirmed;
        let mut best: Option<PtoTarget> = None;
        for space in SpaceId::ALL {
            if !self.has_ack_eliciting_in_flight(space) {
                continue;
            }
            // RFC 9002 §6.2.1: no PTO for application data until the
            // handshake is confirmed.
            if space == SpaceId::Data && !confirmed {
                break;
            }
            let Some(last) = self.space(space).time_of_last_ack_eliciting else {
                continue;
            };
            let Some(at) = last.checked_add(self.pto(space, confirmed)) else {
                continue;
            };
            if best.is_none_or(|b| at < b.at) {
                best = Some(PtoTarget { at, space, anti_deadlock: false });
            }
        }
        if best.is_some() || self.peer_completed_address_validation(confirmed) {
            return best;
        }
        // RFC 9002 §6.2.2.1: a client the server may still be limiting keeps
        // a PTO armed with nothing (probe-able) in flight, so the server gets
        // datagrams to unblock it. Handshake if it can, else Initial.
        let space = if ctx.has_handshake_keys { SpaceId::Handshake } else { SpaceId::Initial };
        let at = self.timer_anchor?.checked_add(backoff(self.rtt.pto_base(), self.pto_count))?;
        Some(PtoTarget { at, space, anti_deadlock: true })
    }

    /// RFC 9002 A.8 SetLossDetectionTimer: when the loss detection timer
    /// should fire, or `None` for no timer. Ask again after every event that
    /// changes recovery state; a deadline in the past fires at once.
    pub fn loss_detection_timer(&self, ctx: TimerContext) -> Option<Instant> {
        // Time threshold loss detection takes precedence over the PTO.
        if let Some((t, _)) = self.earliest_loss_time() {
            return Some(t);
        }
        // RFC 9002 §6.2.2.1: a server that cannot send arms no PTO.
        if ctx.amplification_blocked {
            return None;
        }
        self.pto_target(ctx).map(|p| p.at)
    }

    /// RFC 9002 A.9 OnLossDetectionTimeout. Does nothing
    /// ([`TimeoutAction::NotDue`]) unless the timer of
    /// [`loss_detection_timer`](Self::loss_detection_timer) has expired at
    /// `now`. Lost packets go to `out.lost`; after a PTO the caller sends the
    /// probes and records them with [`on_packet_sent`](Self::on_packet_sent).
    pub fn on_loss_detection_timeout(&mut self, now: Instant, ctx: TimerContext, out: &mut AckOutcome<T>) -> TimeoutAction {
        out.clear();
        match self.loss_detection_timer(ctx) {
            Some(deadline) if deadline <= now => {}
            _ => return TimeoutAction::NotDue,
        }
        if let Some((_, space)) = self.earliest_loss_time() {
            // Time threshold loss detection (RFC 9002 §6.1.2).
            self.detect_and_remove_lost(space, now, out);
            return TimeoutAction::LossDetected { space };
        }
        let Some(target) = self.pto_target(ctx) else {
            return TimeoutAction::NotDue;
        };
        // RFC 9002 §6.2.1: each expiry doubles the next period.
        self.pto_count = self.pto_count.saturating_add(1);
        self.timer_anchor = Some(now);
        // RFC 9002 §6.2.4: at least one, up to two ack-eliciting datagrams;
        // two make a single lost probe less costly. The anti-deadlock probe
        // of §6.2.2.1 is a single packet.
        let probes = if target.anti_deadlock { 1 } else { 2 };
        TimeoutAction::Probe { space: target.space, probes }
    }

    // ----- discarding state -------------------------------------------------

    /// RFC 9002 §6.4 / A.11 OnPacketNumberSpaceDiscarded: Initial or Handshake
    /// keys were discarded. Its packets leave bytes in flight without any
    /// congestion reaction, its timers reset, and the PTO backoff restarts.
    pub fn discard_space(&mut self, space: SpaceId) {
        let s = self.space_mut(space);
        s.sent.clear();
        s.time_of_last_ack_eliciting = None;
        s.loss_time = None;
        self.pto_count = 0;
    }

    /// Take every unacknowledged packet of `space` out of recovery, without
    /// a congestion reaction, appending them to `out` in packet number order
    /// for retransmission: for 0-RTT packets when 0-RTT is rejected (RFC 9002
    /// §6.4) or for Initial packets after a Retry.
    pub fn take_unacked(&mut self, space: SpaceId, out: &mut Vec<SentPacket<T>>) {
        let s = self.space_mut(space);
        s.sent.drain_into(out);
        s.time_of_last_ack_eliciting = None;
        s.loss_time = None;
    }

    /// RFC 9002 §6.3: a client received a Retry. All unacknowledged packets
    /// (Initial and 0-RTT) are taken out into `out` for sending again, and
    /// congestion control and loss recovery restart from scratch. Packet
    /// numbers keep increasing (RFC 9000 §17.2.5.3).
    pub fn on_retry(&mut self, out: &mut Vec<SentPacket<T>>) {
        for space in SpaceId::ALL {
            self.take_unacked(space, out);
            let s = self.space_mut(space);
            s.largest_acked = None;
            s.ecn_ce = 0;
        }
        let mds = self.cc.max_datagram_size();
        self.cc = self.pristine_cc.clone_box();
        self.cc.on_mtu_update(mds);
        self.pacer = Pacer::with_burst(mds, self.pacer.burst());
        self.rtt.reset();
        self.pto_count = 0;
        self.handshake_ack_received = false;
        self.timer_anchor = None;
    }

    /// The peer moved to a new IP address and proved it owns it: the
    /// congestion controller and RTT estimator start again from their
    /// initial values (RFC 9000 §9.4; RFC 9002 A.3, B.3). Packets in flight
    /// stay tracked so their ACKs or losses are still processed.
    pub fn reset_for_new_path(&mut self) {
        let mds = self.cc.max_datagram_size();
        self.cc = self.pristine_cc.clone_box();
        self.cc.on_mtu_update(mds);
        self.pacer = Pacer::new(mds);
        self.rtt.reset();
        self.pto_count = 0;
        self.reorder.reset();
    }

    /// The path's maximum datagram size changed (RFC 9002 §7.2, B.2).
    pub fn on_mtu_update(&mut self, max_datagram_size: u64) {
        self.cc.on_mtu_update(max_datagram_size);
        self.pacer.set_max_datagram_size(max_datagram_size);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::error::TransportErrorCode;

    const SIZE: u16 = 1200;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn us(v: u64) -> Duration {
        Duration::from_micros(v)
    }

    fn pkt(pn: u64, t: Instant) -> SentPacket<u64> {
        SentPacket { pn, time_sent: t, size: SIZE, ack_eliciting: true, in_flight: true, mtu_probe: false, rate: Default::default(), payload: pn }
    }

    fn config(is_server: bool) -> RecoveryConfig {
        RecoveryConfig { congestion: CongestionAlgorithm::NewReno, ..RecoveryConfig::new(is_server) }
    }

    fn confirmed() -> TimerContext {
        TimerContext { handshake_confirmed: true, ..TimerContext::default() }
    }

    fn pns(v: &[SentPacket<u64>]) -> Vec<u64> {
        v.iter().map(|p| p.pn).collect()
    }

    /// The newly acknowledged packet numbers in increasing order (the
    /// outcome lists them largest first).
    fn acked_pns(out: &AckOutcome<u64>) -> Vec<u64> {
        out.acked.iter().rev().map(|p| p.pn).collect()
    }

    /// Ack `ranges` (largest first) in `space` with no ACK delay or ECN.
    fn ack(r: &mut Recovery<u64>, space: SpaceId, ranges: &[RangeInclusive<u64>], now: Instant, out: &mut AckOutcome<u64>) -> Result<(), Error> {
        r.on_ack_received(space, ranges.iter().cloned(), Duration::ZERO, None, now, true, out)
    }

    #[test]
    fn in_order_acks() {
        let t0 = Instant::now();
        let mut r = Recovery::new(config(true));
        let mut out = AckOutcome::new();
        for pn in 0..4 {
            r.on_packet_sent(SpaceId::Data, pkt(pn, t0 + ms(pn)));
        }
        assert_eq!(r.bytes_in_flight(), 4800);
        assert!(r.can_send(12_000 - 4800));
        assert!(!r.can_send(12_000 - 4800 + 1));
        assert_eq!(r.window_available(), 7200);

        ack(&mut r, SpaceId::Data, &[0..=3], t0 + ms(53), &mut out).unwrap();
        assert_eq!(acked_pns(&out), vec![0, 1, 2, 3]);
        assert!(out.lost.is_empty());
        assert!(out.rtt_updated);
        assert!(!out.persistent_congestion);
        // Sample from the largest: 53 - 3 = 50 ms.
        assert_eq!(r.rtt().latest_rtt(), ms(50));
        assert_eq!(r.rtt().smoothed_rtt(), ms(50));
        assert_eq!(r.bytes_in_flight(), 0);
        assert_eq!(r.largest_acked(SpaceId::Data), Some(3));
        // Slow start: 12000 + 4 * 1200.
        assert_eq!(r.congestion_window(), 16_800);
        assert!(r.sent_packets(SpaceId::Data).is_empty());
        // Nothing in flight at a server: no timer.
        assert_eq!(r.loss_detection_timer(confirmed()), None);

        // A duplicate ACK changes nothing.
        ack(&mut r, SpaceId::Data, &[0..=3], t0 + ms(60), &mut out).unwrap();
        assert!(out.acked.is_empty());
        assert!(!out.rtt_updated);
        assert_eq!(r.congestion_window(), 16_800);
    }

    #[test]
    fn packet_threshold_then_time_threshold_via_timer() {
        let t0 = Instant::now();
        let mut r = Recovery::new(config(true));
        let mut out = AckOutcome::new();
        for pn in 1..=5 {
            r.on_packet_sent(SpaceId::Data, pkt(pn, t0 + ms(pn)));
        }
        ack(&mut r, SpaceId::Data, &[5..=5], t0 + ms(50), &mut out).unwrap();
        assert_eq!(acked_pns(&out), vec![5]);
        // 5 >= pn + 3 for pn 1 and 2; 3 and 4 are within the threshold.
        assert_eq!(pns(&out.lost), vec![1, 2]);
        assert_eq!(r.bytes_in_flight(), 2400);
        assert_eq!(pns(&r.sent_packets(SpaceId::Data).iter().cloned().collect::<Vec<_>>()), vec![3, 4]);
        // One congestion event: 12000 / 2; the ack of pn 5 (sent before the
        // recovery period began) does not grow it.
        assert_eq!(r.congestion_window(), 6000);
        assert_eq!(r.congestion_controller().ssthresh(), 6000);

        // RTT 45 ms: loss delay = 9/8 * 45 = 50.625 ms; pn 3 was sent at 3 ms.
        let loss_at = t0 + ms(3) + us(50_625);
        assert_eq!(r.loss_detection_timer(confirmed()), Some(loss_at));
        assert_eq!(r.on_loss_detection_timeout(loss_at - us(1), confirmed(), &mut out), TimeoutAction::NotDue);
        assert!(out.lost.is_empty());
        assert_eq!(r.on_loss_detection_timeout(loss_at, confirmed(), &mut out), TimeoutAction::LossDetected { space: SpaceId::Data });
        assert_eq!(pns(&out.lost), vec![3]);
        assert_eq!(r.bytes_in_flight(), 1200);
        // Same recovery period: no second reduction.
        assert_eq!(r.congestion_window(), 6000);
        // The timer now waits for pn 4; no PTO backoff was taken.
        assert_eq!(r.loss_detection_timer(confirmed()), Some(t0 + ms(4) + us(50_625)));
        assert_eq!(r.pto_count(), 0);
    }

    #[test]
    fn pto_fires_and_backs_off() {
        let t0 = Instant::now();
        let mut r = Recovery::new(config(true));
        let mut out = AckOutcome::new();
        let ctx = TimerContext::default();
        r.on_packet_sent(SpaceId::Initial, pkt(0, t0));
        // No sample: PTO = 333 + 4 * 166.5 = 999 ms, no max_ack_delay.
        assert_eq!(r.pto(SpaceId::Initial, false), ms(999));
        assert_eq!(r.loss_detection_timer(ctx), Some(t0 + ms(999)));
        assert_eq!(r.on_loss_detection_timeout(t0 + ms(998), ctx, &mut out), TimeoutAction::NotDue);
        assert_eq!(r.pto_count(), 0);

        assert_eq!(r.on_loss_detection_timeout(t0 + ms(999), ctx, &mut out), TimeoutAction::Probe { space: SpaceId::Initial, probes: 2 });
        assert!(out.lost.is_empty(), "a PTO declares nothing lost");
        assert_eq!(r.pto_count(), 1);
        assert_eq!(r.pto(SpaceId::Initial, false), ms(1998));
        assert_eq!(r.loss_detection_timer(ctx), Some(t0 + ms(1998)));

        // The probe restarts the timer from its own send time.
        r.on_packet_sent(SpaceId::Initial, pkt(1, t0 + ms(999)));
        assert_eq!(r.loss_detection_timer(ctx), Some(t0 + ms(2997)));
        assert_eq!(r.on_loss_detection_timeout(t0 + ms(2997), ctx, &mut out), TimeoutAction::Probe { space: SpaceId::Initial, probes: 2 });
        assert_eq!(r.pto_count(), 2);
        assert_eq!(r.loss_detection_timer(ctx), Some(t0 + ms(999) + ms(3996)));
        // Nothing was lost or collapsed by the PTOs.
        assert_eq!(r.bytes_in_flight(), 2400);
        assert_eq!(r.congestion_window(), 12_000);

        // An acknowledgment resets the backoff (server).
        r.on_ack_received(SpaceId::Initial, [1..=1].into_iter(), ms(5), None, t0 + ms(1099), false, &mut out).unwrap();
        assert_eq!(r.pto_count(), 0);
        // Initial ACK delay ignored: the sample is exactly 100 ms.
        assert_eq!(r.rtt().smoothed_rtt(), ms(100));
        // pn 0 is 1 packet below: not lost by count; sent 1099 ms ago > 112.5.
        assert_eq!(pns(&out.lost), vec![0]);
    }

    #[test]
    fn application_pto_waits_for_confirmation_and_adds_max_ack_delay() {
        let t0 = Instant::now();
        let mut r = Recovery::new(config(true));
        r.on_packet_sent(SpaceId::Data, pkt(0, t0));
        assert_eq!(r.loss_detection_timer(TimerContext::default()), None);
        assert_eq!(r.pto(SpaceId::Data, false), ms(999));
        assert_eq!(r.pto(SpaceId::Data, true), ms(1024));
        assert_eq!(r.loss_detection_timer(confirmed()), Some(t0 + ms(1024)));
        r.set_max_ack_delay(ms(100));
        assert_eq!(r.loss_detection_timer(confirmed()), Some(t0 + ms(1099)));
        // With Handshake data in flight too, the earlier one wins (§6.2.1).
        r.on_packet_sent(SpaceId::Handshake, pkt(0, t0 + ms(50)));
        assert_eq!(r.loss_detection_timer(confirmed()), Some(t0 + ms(1049)));
        let mut out = AckOutcome::new();
        assert_eq!(r.on_loss_detection_timeout(t0 + ms(1049), confirmed(), &mut out), TimeoutAction::Probe { space: SpaceId::Handshake, probes: 2 });
    }

    #[test]
    fn client_anti_deadlock_pto() {
        let t0 = Instant::now();
        let mut r = Recovery::new(config(false));
        let mut out = AckOutcome::new();
        r.on_packet_sent(SpaceId::Initial, pkt(0, t0));
        r.on_ack_received(SpaceId::Initial, [0..=0].into_iter(), ms(0), None, t0 + ms(100), false, &mut out).unwrap();
        assert_eq!(r.bytes_in_flight(), 0);
        assert!(!r.peer_completed_address_validation(false));
        // Nothing in flight, but the server may be blocked: PTO from the ACK,
        // 100 + 4 * 50 = 300 ms.
        let ctx = TimerContext::default();
        assert_eq!(r.loss_detection_timer(ctx), Some(t0 + ms(400)));
        assert_eq!(r.on_loss_detection_timeout(t0 + ms(400), ctx, &mut out), TimeoutAction::Probe { space: SpaceId::Initial, probes: 1 });
        assert_eq!(r.pto_count(), 1);
        // Backed off from the timeout: 400 + 600.
        let with_keys = TimerContext { has_handshake_keys: true, ..ctx };
        assert_eq!(r.loss_detection_timer(with_keys), Some(t0 + ms(1000)));
        assert_eq!(r.on_loss_detection_timeout(t0 + ms(1000), with_keys, &mut out), TimeoutAction::Probe { space: SpaceId::Handshake, probes: 1 });
        assert_eq!(r.pto_count(), 2);

        // A client does not reset the backoff on Initial ACKs...
        r.on_packet_sent(SpaceId::Initial, pkt(1, t0 + ms(1000)));
        r.on_ack_received(SpaceId::Initial, [1..=1].into_iter(), ms(0), None, t0 + ms(1100), false, &mut out).unwrap();
        assert_eq!(r.pto_count(), 2);
        // ...but does on a Handshake ACK, and then needs no anti-deadlock timer.
        r.on_packet_sent(SpaceId::Handshake, pkt(0, t0 + ms(1100)));
        r.on_ack_received(SpaceId::Handshake, [0..=0].into_iter(), ms(0), None, t0 + ms(1200), false, &mut out).unwrap();
        assert_eq!(r.pto_count(), 0);
        assert!(r.peer_completed_address_validation(false));
        assert_eq!(r.loss_detection_timer(with_keys), None);
    }

    #[test]
    fn amplification_blocked_server_arms_no_pto() {
        let t0 = Instant::now();
        let mut r = Recovery::new(config(true));
        let mut out = AckOutcome::new();
        r.on_packet_sent(SpaceId::Initial, pkt(0, t0));
        let blocked = TimerContext { amplification_blocked: true, ..TimerContext::default() };
        assert_eq!(r.loss_detection_timer(blocked), None);
        assert_eq!(r.on_loss_detection_timeout(t0 + ms(5000), blocked, &mut out), TimeoutAction::NotDue);
        // Unblocked later: the deadline is in the past and fires at once.
        let ctx = TimerContext::default();
        assert_eq!(r.loss_detection_timer(ctx), Some(t0 + ms(999)));
        assert_eq!(r.on_loss_detection_timeout(t0 + ms(5000), ctx, &mut out), TimeoutAction::Probe { space: SpaceId::Initial, probes: 2 });
    }

    /// pn 0 acked at 100 ms gives the first sample (srtt 100, rttvar 50);
    /// pn 1..=6 are then sent at 200, 500, 800, 1100, 1300, 1400 ms.
    fn persistent_setup(t0: Instant) -> (Recovery<u64>, AckOutcome<u64>) {
        let mut r = Recovery::new(config(true));
        let mut out = AckOutcome::new();
        r.on_packet_sent(SpaceId::Data, pkt(0, t0));
        ack(&mut r, SpaceId::Data, &[0..=0], t0 + ms(100), &mut out).unwrap();
        assert_eq!(r.congestion_window(), 13_200);
        for (pn, at) in [(1, 200), (2, 500), (3, 800), (4, 1100), (5, 1300), (6, 1400)] {
            r.on_packet_sent(SpaceId::Data, pkt(pn, t0 + ms(at)));
        }
        (r, out)
    }

    #[test]
    fn persistent_congestion_detected() {
        let t0 = Instant::now();
        let (mut r, mut out) = persistent_setup(t0);
        ack(&mut r, SpaceId::Data, &[6..=6], t0 + ms(1500), &mut out).unwrap();
        // Second sample 100 ms: srtt 100, rttvar 37.5, so the duration is
        // (100 + 150 + 25) * 3 = 825 ms.
        assert_eq!(r.persistent_congestion_duration(), ms(825));
        // 1..=3 by count, 4 and 5 by time (sent before 1500 - 112.5 ms).
        assert_eq!(pns(&out.lost), vec![1, 2, 3, 4, 5]);
        // Lost from 200 to 1300 ms: 1100 > 825.
        assert!(out.persistent_congestion);
        // 13200 -> 6600 (loss) -> 2400 (persistent congestion); recovery
        // ended, so the ack of pn 6 grows it again in slow start.
        assert_eq!(r.congestion_controller().ssthresh(), 6600);
        assert_eq!(r.congestion_window(), 3600);
        assert_eq!(r.bytes_in_flight(), 0);
        assert_eq!(r.rtt().min_rtt(), ms(100));
    }

    #[test]
    fn no_persistent_congestion_across_an_acknowledged_packet() {
        let t0 = Instant::now();
        let (mut r, mut out) = persistent_setup(t0);
        // pn 3 (sent at 800 ms) arrives: the lost packets form two periods,
        // 200..500 and 1100..1300 ms, both shorter than 825 ms.
        ack(&mut r, SpaceId::Data, &[6..=6, 3..=3], t0 + ms(1500), &mut out).unwrap();
        assert_eq!(acked_pns(&out), vec![3, 6]);
        assert_eq!(pns(&out.lost), vec![1, 2, 4, 5]);
        assert!(!out.persistent_congestion);
        assert_eq!(r.congestion_window(), 6600);
    }

    #[test]
    fn no_persistent_congestion_without_prior_rtt_sample() {
        let t0 = Instant::now();
        let mut r = Recovery::new(config(true));
        let mut out = AckOutcome::new();
        for (pn, at) in [(0, 0), (1, 1000), (2, 2000), (3, 3000), (4, 3100)] {
            r.on_packet_sent(SpaceId::Data, pkt(pn, t0 + ms(at)));
        }
        ack(&mut r, SpaceId::Data, &[4..=4], t0 + ms(3200), &mut out).unwrap();
        // The first sample is taken by this very ACK: all lost packets were
        // sent before it, so they cannot establish persistent congestion.
        assert_eq!(pns(&out.lost), vec![0, 1, 2, 3]);
        assert!(!out.persistent_congestion);
        assert_eq!(r.congestion_window(), 6000);
    }

    #[test]
    fn ack_of_unsent_packet_is_protocol_violation() {
        let t0 = Instant::now();
        let mut r = Recovery::new(config(true));
        let mut out = AckOutcome::new();
        let e = ack(&mut r, SpaceId::Data, &[0..=0], t0, &mut out).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::PROTOCOL_VIOLATION);
        for pn in 0..3 {
            r.on_packet_sent(SpaceId::Data, pkt(pn, t0));
        }
        // Skip pn 3.
        r.on_packet_sent(SpaceId::Data, pkt(4, t0));
        for bad in [vec![5..=5], vec![(1 << 62)..=(1 << 62)], vec![0..=u64::MAX], vec![3..=4]] {
            let e = ack(&mut r, SpaceId::Data, &bad, t0 + ms(10), &mut out).unwrap_err();
            assert_eq!(e.code, TransportErrorCode::PROTOCOL_VIOLATION, "{bad:?}");
        }
        // Rejected ACKs changed nothing.
        assert_eq!(r.bytes_in_flight(), 4800);
        assert_eq!(r.largest_acked(SpaceId::Data), None);
        assert!(!r.rtt().has_sample());
        // Another space has its own packet numbers.
        let e = ack(&mut r, SpaceId::Handshake, &[0..=0], t0, &mut out).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::PROTOCOL_VIOLATION);
        // Ranges below what is tracked are fine.
        ack(&mut r, SpaceId::Data, &[4..=4, 0..=2], t0 + ms(10), &mut out).unwrap();
        assert_eq!(acked_pns(&out), vec![0, 1, 2, 4]);
    }

    #[test]
    fn discarding_a_space() {
        let t0 = Instant::now();
        let mut r = Recovery::new(config(true));
        let mut out = AckOutcome::new();
        let ctx = TimerContext::default();
        for pn in 0..3 {
            r.on_packet_sent(SpaceId::Initial, pkt(pn, t0));
        }
        r.on_packet_sent(SpaceId::Handshake, pkt(0, t0 + ms(10)));
        assert_eq!(r.bytes_in_flight(), 4800);
        assert_eq!(r.on_loss_detection_timeout(t0 + ms(999), ctx, &mut out), TimeoutAction::Probe { space: SpaceId::Initial, probes: 2 });
        assert_eq!(r.pto_count(), 1);

        r.discard_space(SpaceId::Initial);
        assert_eq!(r.bytes_in_flight(), 1200);
        assert_eq!(r.pto_count(), 0);
        assert!(r.sent_packets(SpaceId::Initial).is_empty());
        // No congestion reaction, and the timer now follows Handshake.
        assert_eq!(r.congestion_window(), 12_000);
        assert_eq!(r.loss_detection_timer(ctx), Some(t0 + ms(1009)));
        // Packet numbers keep increasing after the discard.
        assert_eq!(r.sent_packets(SpaceId::Initial).largest_sent(), Some(2));
        r.discard_space(SpaceId::Handshake);
        assert_eq!(r.bytes_in_flight(), 0);
        assert_eq!(r.loss_detection_timer(ctx), None);
    }

    #[test]
    fn retry_and_zero_rtt_rejection_take_packets_out() {
        let t0 = Instant::now();
        let mut r = Recovery::new(config(false));
        let mut out = Vec::new();
        r.on_packet_sent(SpaceId::Initial, pkt(0, t0));
        r.on_packet_sent(SpaceId::Data, pkt(0, t0));
        r.on_packet_sent(SpaceId::Data, pkt(1, t0));
        r.take_unacked(SpaceId::Data, &mut out);
        assert_eq!(pns(&out), vec![0, 1]);
        assert_eq!(r.bytes_in_flight(), 1200);
        assert_eq!(r.congestion_window(), 12_000);

        out.clear();
        r.on_packet_sent(SpaceId::Data, pkt(2, t0));
        r.rtt_mut().update(t0, ms(40), Duration::ZERO, Duration::ZERO, false);
        r.on_retry(&mut out);
        assert_eq!(out.iter().map(|p| (p.pn, p.payload)).collect::<Vec<_>>(), vec![(0, 0), (2, 2)]);
        assert_eq!(r.bytes_in_flight(), 0);
        assert!(!r.rtt().has_sample());
        assert_eq!(r.rtt().smoothed_rtt(), ms(333));
        assert_eq!(r.largest_acked(SpaceId::Initial), None);
        // Packet numbers continue.
        r.on_packet_sent(SpaceId::Initial, pkt(1, t0 + ms(5)));
        assert_eq!(r.bytes_in_flight(), 1200);
    }

    #[test]
    fn ecn_ce_increase_is_a_congestion_event() {
        let t0 = Instant::now();
        let mut r = Recovery::new(config(true));
        let mut out = AckOutcome::new();
        for pn in 0..4 {
            r.on_packet_sent(SpaceId::Data, pkt(pn, t0 + ms(pn)));
        }
        r.on_ack_received(SpaceId::Data, [0..=1].into_iter(), ms(0), Some((2, 0, 0)), t0 + ms(50), true, &mut out).unwrap();
        assert!(!out.ecn_ce_increased);
        assert_eq!(r.congestion_window(), 14_400);
        r.on_ack_received(SpaceId::Data, [2..=2].into_iter(), ms(0), Some((2, 0, 1)), t0 + ms(60), true, &mut out).unwrap();
        assert!(out.ecn_ce_increased);
        assert!(out.lost.is_empty());
        // 14400 / 2; the ack of pn 2 (sent before recovery) adds nothing.
        assert_eq!(r.congestion_window(), 7200);
        // Same count again: no new event.
        r.on_ack_received(SpaceId::Data, [3..=3].into_iter(), ms(0), Some((3, 0, 1)), t0 + ms(70), true, &mut out).unwrap();
        assert!(!out.ecn_ce_increased);
        assert_eq!(r.congestion_window(), 7200);
    }

    #[test]
    fn non_ack_eliciting_packets_give_no_rtt_sample() {
        let t0 = Instant::now();
        let mut r = Recovery::new(config(true));
        let mut out = AckOutcome::new();
        let mut ack_only = pkt(0, t0);
        ack_only.ack_eliciting = false;
        ack_only.in_flight = false;
        r.on_packet_sent(SpaceId::Data, ack_only);
        assert_eq!(r.bytes_in_flight(), 0);
        assert_eq!(r.loss_detection_timer(confirmed()), None);
        ack(&mut r, SpaceId::Data, &[0..=0], t0 + ms(30), &mut out).unwrap();
        assert_eq!(acked_pns(&out), vec![0]);
        assert!(!out.rtt_updated);
        assert!(!r.rtt().has_sample());
        assert_eq!(r.congestion_window(), 12_000);
        // A sample needs the largest acknowledged to be newly acknowledged.
        r.on_packet_sent(SpaceId::Data, pkt(1, t0 + ms(40)));
        r.on_packet_sent(SpaceId::Data, pkt(2, t0 + ms(41)));
        ack(&mut r, SpaceId::Data, &[2..=2], t0 + ms(80), &mut out).unwrap();
        assert!(out.rtt_updated);
        ack(&mut r, SpaceId::Data, &[2..=2, 1..=1], t0 + ms(90), &mut out).unwrap();
        assert_eq!(acked_pns(&out), vec![1]);
        assert!(!out.rtt_updated);
        assert_eq!(r.rtt().latest_rtt(), ms(39));
    }

    #[test]
    fn cubic_recovery_end_to_end() {
        let t0 = Instant::now();
        let mut r = Recovery::new(RecoveryConfig::new(true));
        assert_eq!(r.congestion_controller().name(), "cubic");
        let mut out = AckOutcome::new();
        for pn in 0..10 {
            r.on_packet_sent(SpaceId::Data, pkt(pn, t0));
        }
        ack(&mut r, SpaceId::Data, &[9..=9], t0 + ms(100), &mut out).unwrap();
        assert_eq!(pns(&out.lost), (0..=6).collect::<Vec<_>>());
        // RFC 9438 §4.6: 12000 * 0.7.
        assert_eq!(r.congestion_window(), 8400);
    }

    #[test]
    fn pacing_through_recovery() {
        let t0 = Instant::now();
        let mut r = Recovery::new(config(true));
        for pn in 0..10 {
            assert_eq!(r.pacing_deadline(t0, 1200), None);
            r.on_packet_sent(SpaceId::Data, pkt(pn, t0));
        }
        // 1.25 * 12000 B / 333 ms: 1200 B take 26.64 ms.
        assert_eq!(r.pacing_deadline(t0, 1200), Some(t0 + us(26_640)));
    }

    #[test]
    fn recovery_is_send_and_clone() {
        fn assert_send<S: Send>(_: &S) {}
        let t0 = Instant::now();
        let mut r: Recovery<u64> = Recovery::new(config(true));
        r.on_packet_sent(SpaceId::Data, pkt(0, t0));
        assert_send(&r);
        let copy = r.clone();
        assert_eq!(copy.bytes_in_flight(), 1200);
        assert_eq!(copy.sent_packets(SpaceId::Data).get(0).map(|p| p.payload), Some(0));
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        fn check_invariants(r: &Recovery<u64>) {
            let mut total = 0u64;
            for space in SpaceId::ALL {
                let sum: u64 = r.sent_packets(space).iter().filter(|p| p.in_flight).map(|p| u64::from(p.size)).sum();
                assert_eq!(sum, r.sent_packets(space).bytes_in_flight());
                total += sum;
            }
            assert_eq!(total, r.bytes_in_flight());
            assert!(r.congestion_window() >= 2400);
        }

        proptest! {
            #[test]
            fn arbitrary_acks_never_panic(
                sends in proptest::collection::vec((0u64..4, 0u64..50, any::<bool>()), 1..60),
                acks in proptest::collection::vec(
                    (0usize..3, proptest::collection::vec((any::<u64>(), 0u64..40), 1..6), any::<u64>(), 0u64..4),
                    1..20,
                ),
            ) {
                let t0 = Instant::now();
                let mut r = Recovery::new(config(true));
                let mut out = AckOutcome::new();
                let mut now = t0;
                let mut next_pn = [0u64; 3];
                for (i, (gap, dt, eliciting)) in sends.iter().enumerate() {
                    now += ms(*dt);
                    let space = SpaceId::ALL[i % 3];
                    let pn = next_pn[space.index()] + gap;
                    next_pn[space.index()] = pn + 1;
                    let mut p = pkt(pn, now);
                    p.ack_eliciting = *eliciting;
                    r.on_packet_sent(space, p);
                }
                check_invariants(&r);
                for (space, raw, delay, mode) in acks {
                    now += ms(7);
                    let space = SpaceId::ALL[space];
                    // Mostly near what was sent, sometimes anywhere in u64.
                    let top = match mode {
                        0 => raw[0].0,
                        _ => next_pn[space.index()].saturating_sub(raw[0].0 % 8),
                    };
                    let mut ranges = Vec::new();
                    let mut hi = top;
                    for (j, (_, len)) in raw.iter().enumerate() {
                        let lo = hi.saturating_sub(*len);
                        ranges.push(lo..=hi);
                        if lo < 2 { break; }
                        hi = lo - 2 - (raw[j].0 % 3).min(lo - 2);
                    }
                    let before = r.bytes_in_flight();
                    let res = r.on_ack_received(
                        space, ranges.iter().cloned(), Duration::from_nanos(delay),
                        Some((0, 0, delay % 3)), now, mode % 2 == 0, &mut out,
                    );
                    if let Err(e) = res {
                        prop_assert!(
                            e.code == TransportErrorCode::PROTOCOL_VIOLATION
                                || e.code == TransportErrorCode::FRAME_ENCODING_ERROR
                        );
                        prop_assert_eq!(r.bytes_in_flight(), before);
                    }
                    check_invariants(&r);
                    let ctx = TimerContext { handshake_confirmed: mode % 2 == 0, ..TimerContext::default() };
                    if let Some(t) = r.loss_detection_timer(ctx) {
                        let later = t.max(now);
                        let _ = r.on_loss_detection_timeout(later, ctx, &mut out);
                        check_invariants(&r);
                    }
                }
            }
        }
    }
}
