//! Delivery rate sampling (draft-ietf-ccwg-bbr §4.1 "Delivery Rate
//! Samples", the algorithm of draft-cheng-iccrg-delivery-rate-estimation):
//! every in-flight packet remembers how much had been delivered when it
//! left; when it is acknowledged, the data delivered since, over the longer
//! of the send and ACK intervals, is a sample of the path's delivery rate.
//!
//! [`Recovery`](super::Recovery) keeps one [`DeliveryRate`] per path, stores
//! a [`RateSnapshot`] in every in-flight packet and hands the controller one
//! [`RateSample`] per ACK. Times inside a snapshot are kept as microseconds
//! before the packet's send time, so the snapshot is plain integers and a
//! sent packet grows by 32 bytes only.

use core::time::Duration;
use std::time::Instant;

/// The per-packet state (P in the draft §4.1.2.2) taken when the packet was
/// sent. 32 bytes: in-flight bytes fit 32 bits, and the two times are
/// microseconds before the send time (saturating at 71 minutes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateSnapshot {
    /// P.delivered: bytes delivered on the path when the packet left.
    pub delivered: u64,
    /// P.lost: bytes declared lost on the path when the packet left.
    pub lost: u64,
    /// P.tx_in_flight: bytes in flight right after the packet left,
    /// itself included.
    tx_in_flight: u32,
    /// P.delivered_time, as microseconds before the send time.
    delivered_ago_us: u32,
    /// P.first_send_time, as microseconds before the send time.
    first_sent_ago_us: u32,
    /// P.is_app_limited.
    pub app_limited: bool,
}

impl RateSnapshot {
    /// P.tx_in_flight.
    pub fn tx_in_flight(&self) -> u64 {
        u64::from(self.tx_in_flight)
    }

    /// A snapshot with `tx_in_flight` bytes in flight (tests, fuzzing).
    pub fn with_tx_in_flight(mut self, bytes: u64) -> Self {
        self.tx_in_flight = u32::try_from(bytes).unwrap_or(u32::MAX);
        self
    }
}

fn micros_before(later: Instant, earlier: Option<Instant>) -> u32 {
    let d = earlier.map_or(Duration::ZERO, |e| later.saturating_duration_since(e));
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// The per-ACK output (RS in the draft §4.1.2.3), with the few connection
/// facts a model-based controller reads beside it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateSample {
    /// RS.delivery_rate in bytes per second; 0 when the ACK gave no
    /// reliable sample (nothing newly delivered, or an interval shorter
    /// than min_rtt).
    pub delivery_rate: u64,
    /// RS.delivered: bytes delivered over the sampling interval.
    pub delivered: u64,
    /// RS.interval.
    pub interval: Duration,
    /// RS.prior_delivered: P.delivered of the newest packet acknowledged.
    pub prior_delivered: u64,
    /// RS.is_app_limited.
    pub app_limited: bool,
    /// RS.tx_in_flight: P.tx_in_flight of the newest packet acknowledged.
    pub tx_in_flight: u64,
    /// RS.lost: bytes declared lost since the newest acknowledged packet
    /// was sent.
    pub lost: u64,
    /// RS.newly_acked: in-flight bytes this ACK newly acknowledged.
    pub newly_acked: u64,
    /// Bytes newly declared lost while processing this ACK.
    pub newly_lost: u64,
    /// C.delivered after this ACK.
    pub total_delivered: u64,
    /// C.inflight after this ACK.
    pub bytes_in_flight: u64,
    /// The RTT sample this ACK produced (RS.rtt), if it produced one.
    pub rtt: Option<Duration>,
    /// The sender was limited by the congestion window since the previous
    /// ACK (C.is_cwnd_limited).
    pub cwnd_limited: bool,
}

impl RateSample {
    /// Something in flight was newly acknowledged.
    pub fn has_data(&self) -> bool {
        self.newly_acked > 0
    }
}

/// The per-connection state (C in the draft §4.1.2.1). Only what lasts
/// from one ACK to the next lives here (it sits in every connection, idle
/// ones too); one ACK's work is an [`AckSampler`] on the stack.
#[derive(Debug, Clone, Default)]
pub struct DeliveryRate {
    /// C.delivered: bytes acknowledged so far.
    delivered: u64,
    /// C.lost: bytes declared lost so far.
    lost: u64,
    /// C.delivered_time.
    delivered_time: Option<Instant>,
    /// C.first_send_time.
    first_send_time: Option<Instant>,
    /// C.app_limited: the delivered count that ends the current
    /// application-limited phase; 0 when not application-limited.
    app_limited_until: u64,
    /// A send was refused by the congestion window since the last sample.
    cwnd_limited: bool,
}

/// One ACK's sample in the making (InitRateSample .. GenerateRateSample).
#[derive(Debug, Clone, Copy)]
pub struct AckSampler {
    /// Send time and packet number of the newest packet acknowledged so
    /// far (IsNewestPacket).
    newest: Option<(Instant, u64)>,
    prior_delivered: u64,
    app_limited: bool,
    tx_in_flight: u64,
    lost_at_send: u64,
    send_elapsed: Duration,
    ack_elapsed: Duration,
    newly_acked: u64,
    /// C.lost when the ACK began.
    lost_before: u64,
}

impl DeliveryRate {
    /// C.delivered.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// C.lost.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// The sender is in an application-limited phase.
    pub fn app_limited(&self) -> bool {
        self.app_limited_until != 0
    }

    /// OnPacketSent (draft §4.1.2.4): the snapshot for a packet sent at
    /// `sent` when `in_flight_before` bytes were already in flight.
    pub fn on_sent(&mut self, sent: Instant, size: u64, in_flight_before: u64) -> RateSnapshot {
        if in_flight_before == 0 || self.delivered_time.is_none() {
            self.first_send_time = Some(sent);
            self.delivered_time = Some(sent);
        }
        RateSnapshot {
            delivered: self.delivered,
            lost: self.lost,
            tx_in_flight: u32::try_from(in_flight_before.saturating_add(size)).unwrap_or(u32::MAX),
            delivered_ago_us: micros_before(sent, self.delivered_time),
            first_sent_ago_us: micros_before(sent, self.first_send_time),
            app_limited: self.app_limited_until != 0,
        }
    }

    /// MarkConnectionAppLimited (draft §4.1.2.6): the sender had nothing to
    /// send while the window allowed more.
    pub fn mark_app_limited(&mut self, bytes_in_flight: u64) {
        self.app_limited_until = self.delivered.saturating_add(bytes_in_flight).max(1);
    }

    /// A send was refused by the congestion window.
    pub fn note_cwnd_limited(&mut self) {
        self.cwnd_limited = true;
    }

    /// InitRateSample, at the start of an ACK.
    pub fn begin_ack(&self) -> AckSampler {
        AckSampler {
            newest: None,
            prior_delivered: 0,
            app_limited: false,
            tx_in_flight: 0,
            lost_at_send: 0,
            send_elapsed: Duration::ZERO,
            ack_elapsed: Duration::ZERO,
            newly_acked: 0,
            lost_before: self.lost,
        }
    }

    /// UpdateRateSample (draft §4.1.2.5) for one newly acknowledged
    /// in-flight packet.
    pub fn on_acked(&mut self, acc: &mut AckSampler, now: Instant, pn: u64, sent: Instant, size: u64, snap: &RateSnapshot) {
        self.delivered = self.delivered.saturating_add(size);
        self.delivered_time = Some(now);
        acc.newly_acked = acc.newly_acked.saturating_add(size);
        let newest = match acc.newest {
            None => true,
            Some((t, n)) => sent > t || (sent == t && pn > n),
        };
        if newest {
            let delivered_ago = Duration::from_micros(u64::from(snap.delivered_ago_us));
            let delivered_time = sent.checked_sub(delivered_ago).unwrap_or(sent);
            acc.newest = Some((sent, pn));
            acc.prior_delivered = snap.delivered;
            acc.app_limited = snap.app_limited;
            acc.tx_in_flight = snap.tx_in_flight();
            acc.lost_at_send = snap.lost;
            acc.send_elapsed = Duration::from_micros(u64::from(snap.first_sent_ago_us));
            acc.ack_elapsed = now.saturating_duration_since(delivered_time);
            self.first_send_time = Some(sent);
        }
    }

    /// A packet of `size` bytes was declared lost.
    pub fn on_lost(&mut self, size: u64) {
        self.lost = self.lost.saturating_add(size);
    }

    /// GenerateRateSample (draft §4.1.2.5): the finished sample. `min_rtt`
    /// is the path's minimum RTT so far, if any.
    pub fn finish_ack(&mut self, acc: AckSampler, min_rtt: Option<Duration>, rtt: Option<Duration>, bytes_in_flight: u64) -> RateSample {
        if self.app_limited_until != 0 && self.delivered > self.app_limited_until {
            self.app_limited_until = 0;
        }
        let mut rs = RateSample {
            newly_acked: acc.newly_acked,
            newly_lost: self.lost.saturating_sub(acc.lost_before),
            total_delivered: self.delivered,
            bytes_in_flight,
            rtt,
            cwnd_limited: core::mem::take(&mut self.cwnd_limited),
            ..RateSample::default()
        };
        if acc.newest.is_none() {
            return rs;
        }
        rs.prior_delivered = acc.prior_delivered;
        rs.app_limited = acc.app_limited;
        rs.tx_in_flight = acc.tx_in_flight;
        rs.lost = self.lost.saturating_sub(acc.lost_at_send);
        rs.interval = acc.send_elapsed.max(acc.ack_elapsed);
        rs.delivered = self.delivered.saturating_sub(acc.prior_delivered);
        // An interval below min_rtt is not trusted (ACK compression).
        if min_rtt.is_some_and(|m| rs.interval < m) || rs.interval.is_zero() {
            return rs;
        }
        let ns = rs.interval.as_nanos().max(1);
        rs.delivery_rate = u64::try_from(u128::from(rs.delivered) * 1_000_000_000 / ns).unwrap_or(u64::MAX);
        rs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// Ten 1,000-byte packets sent 10 ms apart in one flight, each
    /// acknowledged 100 ms after it left. Every sample of the flight starts
    /// where the flight started (nothing was delivered before it).
    #[test]
    fn a_paced_flight_gives_the_bottleneck_rate() {
        let t0 = Instant::now();
        let mut d = DeliveryRate::default();
        // Sent 10 ms apart: 100 KB/s.
        let snaps: Vec<_> = (0..10u64).map(|i| d.on_sent(t0 + ms(10 * i), 1000, 1000 * i)).collect();
        assert_eq!(snaps[3].tx_in_flight(), 4000);
        let mut rates = Vec::new();
        for i in 0..10u64 {
            let now = t0 + ms(100 + 10 * i);
            let mut acc = d.begin_ack();
            d.on_acked(&mut acc, now, i, t0 + ms(10 * i), 1000, &snaps[i as usize]);
            let rs = d.finish_ack(acc, Some(ms(100)), Some(ms(100)), 1000 * (9 - i));
            assert_eq!(rs.newly_acked, 1000);
            rates.push(rs.delivery_rate);
        }
        // The first ACK: 1,000 bytes over the 100 ms since the flight
        // began; the last: 10,000 bytes over 190 ms.
        assert_eq!(rates[0], 10_000);
        assert_eq!(d.delivered(), 10_000);
        assert_eq!(rates[9], 10_000 * 1_000 / 190);
    }

    /// The second flight, sent after the first ACKs, is measured from
    /// those ACKs: its rate is its delivered bytes over the ACK interval.
    #[test]
    fn steady_state_rate_is_bytes_per_ack_interval() {
        let t0 = Instant::now();
        let mut d = DeliveryRate::default();
        let a = d.on_sent(t0, 1000, 0);
        let mut acc = d.begin_ack();
        d.on_acked(&mut acc, t0 + ms(50), 0, t0, 1000, &a);
        let rs = d.finish_ack(acc, None, Some(ms(50)), 0);
        assert_eq!(rs.delivery_rate, 20_000, "1,000 bytes in 50 ms");
        // Now 4 packets sent at +50 ms, acked together at +100 ms.
        let snaps: Vec<_> = (0..4u64).map(|i| d.on_sent(t0 + ms(50), 1000, 1000 * i)).collect();
        let mut acc = d.begin_ack();
        for (i, s) in snaps.iter().enumerate() {
            d.on_acked(&mut acc, t0 + ms(100), 1 + i as u64, t0 + ms(50), 1000, s);
        }
        let rs = d.finish_ack(acc, Some(ms(50)), Some(ms(50)), 0);
        assert_eq!((rs.delivered, rs.prior_delivered, rs.interval), (4000, 1000, ms(50)));
        assert_eq!(rs.delivery_rate, 80_000);
    }

    #[test]
    fn short_intervals_and_app_limited_phases() {
        let t0 = Instant::now();
        let mut d = DeliveryRate::default();
        let a = d.on_sent(t0, 1000, 0);
        let mut acc = d.begin_ack();
        d.on_acked(&mut acc, t0 + ms(10), 0, t0, 1000, &a);
        // 10 ms is below a 50 ms min_rtt: no rate.
        let rs = d.finish_ack(acc, Some(ms(50)), None, 0);
        assert_eq!((rs.delivery_rate, rs.delivered), (0, 1000));
        // Nothing to send: the next packets are app-limited until what is
        // in flight now has been delivered.
        d.mark_app_limited(0);
        assert!(d.app_limited());
        let b = d.on_sent(t0 + ms(20), 1000, 0);
        assert!(b.app_limited);
        let mut acc = d.begin_ack();
        d.on_acked(&mut acc, t0 + ms(80), 1, t0 + ms(20), 1000, &b);
        let rs = d.finish_ack(acc, Some(ms(50)), None, 0);
        assert!(rs.app_limited);
        assert!(!d.app_limited(), "the bubble was delivered");
        // An ACK of nothing in flight has no sample.
        let acc = d.begin_ack();
        let rs = d.finish_ack(acc, Some(ms(50)), None, 0);
        assert!(!rs.has_data());
        assert_eq!(rs.delivery_rate, 0);
    }

    #[test]
    fn losses_since_send_are_reported() {
        let t0 = Instant::now();
        let mut d = DeliveryRate::default();
        let a = d.on_sent(t0, 1000, 0);
        let b = d.on_sent(t0, 1000, 1000);
        let mut acc = d.begin_ack();
        d.on_lost(1000);
        d.on_acked(&mut acc, t0 + ms(60), 1, t0, 1000, &b);
        let rs = d.finish_ack(acc, Some(ms(50)), None, 0);
        assert_eq!((rs.lost, rs.newly_lost, rs.tx_in_flight), (1000, 1000, 2000));
        assert_eq!(a.lost, 0);
        assert_eq!(d.lost(), 1000);
    }
}
