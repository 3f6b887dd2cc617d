//! Data flow control (RFC 9000 §4.1, §4.2), for one stream or a whole
//! connection: the same arithmetic serves MAX_STREAM_DATA and MAX_DATA.
//!
//! - [`RecvWindow`]: the limit we advertise to the peer, checks the peer stays
//!   below it, and decides when to raise it (with auto-tuning).
//! - [`SendCredit`]: the limit the peer advertised to us, how much of it is
//!   used, and when to say we are blocked.

use std::time::{Duration, Instant};

use crate::error::{Error, TransportErrorCode};
use crate::varint::VarInt;

/// Receive-side flow control: the limit advertised to the peer and how much of
/// it the peer used and the application consumed.
///
/// "Received" counts flow-control credit used by the peer (for a stream the
/// highest offset seen, for a connection the sum of those). "Consumed" counts
/// bytes the application has taken (or that were discarded), i.e. buffer
/// space that is free again. A new limit is `consumed + window`.
#[derive(Debug, Clone)]
pub struct RecvWindow {
    /// Credit granted beyond what was consumed; grows by auto-tuning.
    window: u64,
    max_window: u64,
    /// The largest limit advertised (initially the transport parameter).
    limit: u64,
    received: u64,
    consumed: u64,
    /// When the last MAX_DATA / MAX_STREAM_DATA was sent.
    last_update: Option<Instant>,
}

impl RecvWindow {
    /// `initial_window` is the limit announced in the transport parameters
    /// (initial_max_data / initial_max_stream_data_*); auto-tuning may grow
    /// the window up to `max_window`. Both are clamped to 2^62 - 1.
    pub fn new(initial_window: u64, max_window: u64) -> Self {
        let window = initial_window.min(VarInt::MAX.into_inner());
        let max_window = max_window.min(VarInt::MAX.into_inner()).max(window);
        Self { window, max_window, limit: window, received: 0, consumed: 0, last_update: None }
    }

    /// The limit the peer must respect (the largest value advertised).
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The current window (credit granted beyond consumed data).
    pub fn window(&self) -> u64 {
        self.window
    }

    pub fn max_window(&self) -> u64 {
        self.max_window
    }

    /// Credit the peer has used.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Bytes the application has consumed (or that were discarded).
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Whether `delta` more bytes of credit would stay within the limit.
    pub fn allows(&self, delta: u64) -> bool {
        self.received.checked_add(delta).is_some_and(|r| r <= self.limit)
    }

    /// The peer used `delta` more bytes of credit. RFC 9000 §4.1: exceeding
    /// the advertised limit is a FLOW_CONTROL_ERROR. Nothing changes on error.
    pub fn on_received(&mut self, delta: u64) -> Result<(), Error> {
        if !self.allows(delta) {
            return Err(Error::new(TransportErrorCode::FLOW_CONTROL_ERROR, "peer exceeded the advertised flow control limit"));
        }
        self.received += delta;
        Ok(())
    }

    /// The application consumed `n` bytes (read them or let them be
    /// discarded). Never counts beyond what was received.
    pub fn on_consumed(&mut self, n: u64) {
        self.consumed = self.consumed.saturating_add(n).min(self.received);
    }

    /// The new limit to advertise, if an update is due: once the credit left
    /// beyond consumed data falls below half the window, advertise
    /// `consumed + window` (RFC 9000 §4.2 leaves the policy open; half a window
    /// keeps the sender unblocked while limiting update frequency).
    pub fn should_send_max_data(&self) -> Option<u64> {
        let credit = self.limit.saturating_sub(self.consumed);
        if credit.saturating_mul(2) >= self.window {
            return None;
        }
        let new_limit = self.consumed.saturating_add(self.window).min(VarInt::MAX.into_inner());
        (new_limit > self.limit).then_some(new_limit)
    }

    /// Records that `max_data` (a value from
    /// [`should_send_max_data`](Self::should_send_max_data)) was sent at
    /// `now`. A value not above the current limit (a retransmission) changes
    /// nothing.
    ///
    /// Auto-tuning (RFC 9000 §4.2): updates are due every half window of
    /// consumption; if this one comes less than two round trips after the
    /// previous, the peer is consuming the window faster than the window allows
    /// per round trip, so the window is doubled (up to `max_window`) and the
    /// larger window takes effect from the next update.
    pub fn on_max_data_sent(&mut self, max_data: u64, now: Instant, rtt: Duration) {
        if max_data <= self.limit {
            return;
        }
        if let Some(prev) = self.last_update {
            let two_rtt = rtt.checked_mul(2).unwrap_or(Duration::MAX);
            if now.saturating_duration_since(prev) < two_rtt {
                self.window = self.window.saturating_mul(2).min(self.max_window);
            }
        }
        self.limit = max_data.min(VarInt::MAX.into_inner());
        self.last_update = Some(now);
    }
}

/// Send-side flow control against the peer's MAX_DATA (RFC 9000 §4.1); the
/// per-stream MAX_STREAM_DATA is kept by the send stream itself.
#[derive(Debug, Clone)]
pub struct SendCredit {
    limit: u64,
    used: u64,
    /// The limit at which DATA_BLOCKED was last reported.
    blocked_reported: Option<u64>,
}

impl SendCredit {
    /// `initial_limit` is the peer's initial_max_data transport parameter.
    pub fn new(initial_limit: u64) -> Self {
        Self { limit: initial_limit, used: 0, blocked_reported: None }
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    pub fn used(&self) -> u64 {
        self.used
    }

    /// New bytes that may still be sent.
    pub fn available(&self) -> u64 {
        self.limit.saturating_sub(self.used)
    }

    /// Uses `n` bytes of credit. Returns false, changing nothing, if `n`
    /// exceeds [`available`](Self::available).
    #[must_use]
    pub fn consume(&mut self, n: u64) -> bool {
        if n > self.available() {
            return false;
        }
        self.used += n;
        true
    }

    /// A MAX_DATA frame arrived. RFC 9000 §4.1: frames that do not increase
    /// the limit are ignored. Returns whether the limit grew.
    pub fn on_max_data(&mut self, max_data: u64) -> bool {
        if max_data > self.limit {
            self.limit = max_data;
            true
        } else {
            false
        }
    }

    pub fn is_blocked(&self) -> bool {
        self.available() == 0
    }

    /// Call when data was waiting but no credit was left: returns the limit
    /// to put in a DATA_BLOCKED frame (RFC 9000 §19.12), once per limit value.
    pub fn poll_blocked(&mut self) -> Option<u64> {
        if self.is_blocked() && self.blocked_reported != Some(self.limit) {
            self.blocked_reported = Some(self.limit);
            Some(self.limit)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const RTT: Duration = Duration::from_millis(100);

    #[test]
    fn flow_control_violation_is_detected_without_state_change() {
        let mut w = RecvWindow::new(1000, 1000);
        w.on_received(600).unwrap();
        w.on_received(400).unwrap();
        assert_eq!(w.received(), 1000);
        let err = w.on_received(1).unwrap_err();
        assert_eq!(err.code, TransportErrorCode::FLOW_CONTROL_ERROR);
        assert_eq!(w.received(), 1000);
        assert_eq!(w.on_received(u64::MAX).unwrap_err().code, TransportErrorCode::FLOW_CONTROL_ERROR);
        w.on_received(0).unwrap();
    }

    #[test]
    fn update_after_half_window_consumed() {
        let mut w = RecvWindow::new(1000, 1000);
        w.on_received(1000).unwrap();
        w.on_consumed(500);
        // credit = 1000 - 500 = 500, not below half (500).
        assert_eq!(w.should_send_max_data(), None);
        w.on_consumed(1);
        assert_eq!(w.should_send_max_data(), Some(1501));
        let t0 = Instant::now();
        w.on_max_data_sent(1501, t0, RTT);
        assert_eq!(w.limit(), 1501);
        assert_eq!(w.should_send_max_data(), None);
        // A retransmission of an older value changes nothing.
        w.on_max_data_sent(1400, t0, RTT);
        assert_eq!(w.limit(), 1501);
    }

    #[test]
    fn consumed_never_exceeds_received() {
        let mut w = RecvWindow::new(100, 100);
        w.on_received(10).unwrap();
        w.on_consumed(50);
        assert_eq!(w.consumed(), 10);
    }

    #[test]
    fn auto_tuning_doubles_under_fast_reads_up_to_max() {
        let mut w = RecvWindow::new(1000, 3000);
        let mut now = Instant::now();
        let mut windows = Vec::new();
        // The application reads everything as soon as it arrives and the peer
        // fills the window each time: updates come every 10 ms, far below 2 RTT.
        for _ in 0..6 {
            let delta = w.limit() - w.received();
            w.on_received(delta).unwrap();
            w.on_consumed(delta);
            let v = w.should_send_max_data().unwrap();
            w.on_max_data_sent(v, now, RTT);
            windows.push(w.window());
            now += Duration::from_millis(10);
        }
        // First update has no reference time; then doubling, capped at 3000.
        assert_eq!(windows, vec![1000, 2000, 3000, 3000, 3000, 3000]);
        // The doubled window is what the next update advertises.
        w.on_received(w.limit() - w.received()).unwrap();
        w.on_consumed(3000);
        assert_eq!(w.should_send_max_data(), Some(w.consumed() + 3000));
    }

    #[test]
    fn no_tuning_when_updates_are_slow() {
        let mut w = RecvWindow::new(1000, 8000);
        let mut now = Instant::now();
        for _ in 0..4 {
            let delta = w.limit() - w.received();
            w.on_received(delta).unwrap();
            w.on_consumed(delta);
            let v = w.should_send_max_data().unwrap();
            w.on_max_data_sent(v, now, RTT);
            now += Duration::from_millis(250); // > 2 RTT between updates
        }
        assert_eq!(w.window(), 1000);
        assert_eq!(w.limit(), 5000, "four updates of one window each");
    }

    #[test]
    fn windows_clamped_to_varint_range() {
        let w = RecvWindow::new(u64::MAX, u64::MAX);
        assert_eq!(w.limit(), VarInt::MAX.into_inner());
        assert_eq!(w.max_window(), VarInt::MAX.into_inner());
        let w = RecvWindow::new(5000, 10);
        assert_eq!(w.max_window(), 5000, "max window never below the initial one");
    }

    #[test]
    fn send_credit_consume_and_blocked_once_per_limit() {
        let mut c = SendCredit::new(100);
        assert_eq!(c.available(), 100);
        assert!(c.consume(60));
        assert!(!c.consume(41));
        assert_eq!(c.used(), 60);
        assert_eq!(c.poll_blocked(), None, "not blocked while credit remains");
        assert!(c.consume(40));
        assert!(c.is_blocked());
        assert_eq!(c.poll_blocked(), Some(100));
        assert_eq!(c.poll_blocked(), None, "once per limit");
        assert!(!c.on_max_data(90), "smaller limits are ignored");
        assert!(!c.on_max_data(100));
        assert!(c.on_max_data(150));
        assert_eq!(c.available(), 50);
        assert!(c.consume(50));
        assert_eq!(c.poll_blocked(), Some(150));
        assert_eq!(c.poll_blocked(), None);
    }
}
