//! Pacing (RFC 9002 §7.7) as a token bucket that returns deadlines.
//!
//! The bucket holds up to [`BURST_DATAGRAMS`] full datagrams and refills at
//! rate = N * congestion_window / smoothed_rtt with N = 5/4. It starts full,
//! so the initial window (at most ten datagrams, RFC 9002 §7.2) goes out as
//! one burst. All arithmetic is integer nanoseconds and bytes, so results are
//! exact and deterministic. Packets carrying only ACK frames should bypass the
//! pacer (RFC 9002 §7.7).

use core::time::Duration;
use std::time::Instant;

/// Burst size in datagrams; 10 covers the largest initial window of RFC 9002
/// §7.2 (min(10 * max_datagram_size, ...)).
pub const BURST_DATAGRAMS: u64 = 10;

/// RFC 9002 §7.7: N = 1.25, as a ratio.
const N_NUM: u128 = 5;
const N_DEN: u128 = 4;

/// A token-bucket pacer. It owns no timer: [`delay_until`](Self::delay_until)
/// says when the next packet may leave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pacer {
    /// Datagrams per burst (at least [`BURST_DATAGRAMS`]).
    burst: u64,
    capacity: u64,
    tokens: u64,
    /// When tokens were last added; `None` until first used.
    last_refill: Option<Instant>,
}

impl Pacer {
    pub fn new(max_datagram_size: u64) -> Self {
        Self::with_burst(max_datagram_size, BURST_DATAGRAMS)
    }

    /// A pacer whose bucket holds `burst` full datagrams (never fewer than
    /// [`BURST_DATAGRAMS`]). A sender that hands the kernel GSO batches of
    /// N datagrams sets N here: a batch leaves back to back anyway, and a
    /// smaller bucket would cut every batch short and cost one wake-up and
    /// one system call per ten datagrams.
    pub fn with_burst(max_datagram_size: u64, burst: u64) -> Self {
        let burst = burst.max(BURST_DATAGRAMS);
        let capacity = max_datagram_size.saturating_mul(burst);
        Self { burst, capacity, tokens: capacity, last_refill: None }
    }

    /// Datagrams per burst.
    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// The path's maximum datagram size changed: resize the burst.
    pub fn set_max_datagram_size(&mut self, max_datagram_size: u64) {
        self.capacity = max_datagram_size.saturating_mul(self.burst);
        self.tokens = self.tokens.min(self.capacity);
    }

    /// Bytes that may be sent right now without waiting (as of the last
    /// refill).
    pub fn tokens(&self) -> u64 {
        self.tokens
    }

    /// The burst size in bytes.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// When a packet of `bytes_to_send` may be sent: `None` means now, else
    /// the deadline to wait for. `cwnd` and `srtt` give the rate (RFC 9002
    /// §7.7); without a usable rate (zero window or RTT) nothing is paced.
    pub fn delay_until(&mut self, now: Instant, bytes_to_send: u64, cwnd: u64, srtt: Duration) -> Option<Instant> {
        // rate = N * cwnd / srtt bytes per nanosecond.
        let rate = Rate { bytes: u128::from(cwnd).saturating_mul(N_NUM), per_ns: srtt.as_nanos().saturating_mul(N_DEN) };
        self.delay_at(now, bytes_to_send, rate)
    }

    /// As [`delay_until`](Self::delay_until) at a rate the congestion
    /// controller chose, in bytes per second (BBR's pacing rate).
    pub fn delay_until_rate(&mut self, now: Instant, bytes_to_send: u64, bytes_per_second: u64) -> Option<Instant> {
        self.delay_at(now, bytes_to_send, Rate { bytes: u128::from(bytes_per_second), per_ns: 1_000_000_000 })
    }

    fn delay_at(&mut self, now: Instant, bytes_to_send: u64, rate: Rate) -> Option<Instant> {
        if rate.bytes == 0 || rate.per_ns == 0 {
            self.tokens = self.capacity;
            self.last_refill = Some(now);
            return None;
        }
        self.refill(now, rate);

        // A packet larger than the bucket only waits for a full bucket.
        let needed = bytes_to_send.min(self.capacity);
        if self.tokens >= needed {
            return None;
        }
        let deficit = u128::from(needed - self.tokens);
        // interval = deficit / rate, rounded up.
        let wait_ns = mul_div(deficit, rate.per_ns, rate.bytes, true);
        let wait = Duration::from_nanos(u64::try_from(wait_ns).unwrap_or(u64::MAX));
        // A deadline the clock cannot represent (absurd RTT) degrades to
        // "send now" rather than panicking.
        now.checked_add(wait)
    }

    /// A paced packet of `bytes` was sent at `now`.
    pub fn on_sent(&mut self, now: Instant, bytes: u64) {
        if self.last_refill.is_none() {
            self.last_refill = Some(now);
        }
        self.tokens = self.tokens.saturating_sub(bytes);
    }

    fn refill(&mut self, now: Instant, rate: Rate) {
        let Some(last) = self.last_refill else {
            self.last_refill = Some(now);
            return;
        };
        if self.tokens >= self.capacity {
            // A full bucket does not bank idle time.
            self.last_refill = Some(now);
            return;
        }
        let elapsed = now.saturating_duration_since(last).as_nanos();
        let room = u128::from(self.capacity.saturating_sub(self.tokens));
        // Enough time passed to fill the bucket: floor(elapsed * bytes /
        // per_ns) >= room exactly when elapsed * bytes >= room * per_ns, so
        // the common case (a fast path refills between two packets) needs
        // two multiplications and no division.
        if elapsed.saturating_mul(rate.bytes) >= room.saturating_mul(rate.per_ns) {
            self.tokens = self.capacity;
            self.last_refill = Some(now);
            return;
        }
        let added = mul_div(elapsed, rate.bytes, rate.per_ns, false);
        if added == 0 {
            // Keep `last_refill`: sub-byte amounts accumulate instead of
            // being lost on every call.
            return;
        }
        // `added < room <= u64::MAX`, so this conversion cannot fail.
        self.tokens += u64::try_from(added).unwrap_or(0);
        // Advance only by the time those whole bytes took (rounded down), so
        // the fraction of a byte already earned is carried to the next call.
        let used_ns = mul_div(added, rate.per_ns, rate.bytes, false);
        let used = Duration::from_nanos(u64::try_from(used_ns).unwrap_or(u64::MAX));
        self.last_refill = Some(last.checked_add(used).unwrap_or(now).min(now));
    }
}

/// `a * b / c` (saturating; rounded up if `up`), `c` not zero. In 64-bit
/// arithmetic when the product fits, as it does for every realistic rate
/// and interval: a 128-bit division is a library call of tens of cycles,
/// and this runs for every packet built.
fn mul_div(a: u128, b: u128, c: u128, up: bool) -> u128 {
    if let (Ok(a), Ok(b), Ok(c)) = (u64::try_from(a), u64::try_from(b), u64::try_from(c)) {
        if let Some(p) = a.checked_mul(b) {
            return u128::from(if up { p.div_ceil(c) } else { p / c });
        }
    }
    let p = a.saturating_mul(b);
    if up {
        p.div_ceil(c)
    } else {
        p / c
    }
}

/// A sending rate as the exact fraction `bytes / per_ns` bytes per
/// nanosecond.
#[derive(Debug, Clone, Copy)]
struct Rate {
    bytes: u128,
    per_ns: u128,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mul_div_matches_128_bit_arithmetic() {
        let big = u128::from(u64::MAX);
        for (a, b, c) in [(0, 5, 3), (7, 3, 2), (1_200, 1_000_000_000, 150_000), (big, 3, 7), (big, big, big - 1), (u128::MAX, 2, 3)] {
            assert_eq!(mul_div(a, b, c, false), a.saturating_mul(b) / c, "{a} * {b} / {c}");
            assert_eq!(mul_div(a, b, c, true), a.saturating_mul(b).div_ceil(c), "{a} * {b} / {c} up");
        }
    }

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn initial_burst_then_spaced_packets() {
        let t0 = Instant::now();
        let mut p = Pacer::new(1200);
        assert_eq!(p.capacity(), 12_000);
        // cwnd 12000 B, srtt 100 ms: rate = 1.25 * 12000 / 0.1 s = 150 B/ms,
        // so one 1200-byte datagram every 8 ms after the burst.
        for _ in 0..10 {
            assert_eq!(p.delay_until(t0, 1200, 12_000, ms(100)), None);
            p.on_sent(t0, 1200);
        }
        assert_eq!(p.tokens(), 0);
        assert_eq!(p.delay_until(t0, 1200, 12_000, ms(100)), Some(t0 + ms(8)));
        // Half way: 600 bytes earned, 4 ms still to wait.
        assert_eq!(p.delay_until(t0 + ms(4), 1200, 12_000, ms(100)), Some(t0 + ms(8)));
        assert_eq!(p.tokens(), 600);
        assert_eq!(p.delay_until(t0 + ms(8), 1200, 12_000, ms(100)), None);
        p.on_sent(t0 + ms(8), 1200);
        assert_eq!(p.delay_until(t0 + ms(8), 1200, 12_000, ms(100)), Some(t0 + ms(16)));
    }

    #[test]
    fn an_explicit_rate_spaces_packets_by_size_over_rate() {
        let t0 = Instant::now();
        let mut p = Pacer::new(1200);
        for _ in 0..10 {
            p.on_sent(t0, 1200);
        }
        // 150,000 B/s: 1,200 bytes every 8 ms, as the RFC 9002 rate above.
        assert_eq!(p.delay_until_rate(t0, 1200, 150_000), Some(t0 + ms(8)));
        assert_eq!(p.delay_until_rate(t0 + ms(8), 1200, 150_000), None);
        p.on_sent(t0 + ms(8), 1200);
        assert_eq!(p.delay_until_rate(t0 + ms(8), 1200, 300_000), Some(t0 + ms(12)));
        // No rate: nothing is paced.
        assert_eq!(p.delay_until_rate(t0 + ms(8), 1200, 0), None);
    }

    #[test]
    fn rate_scales_with_window_and_rtt() {
        let t0 = Instant::now();
        let mut p = Pacer::new(1200);
        p.on_sent(t0, 12_000);
        // Twice the window: 4 ms per datagram.
        assert_eq!(p.delay_until(t0, 1200, 24_000, ms(100)), Some(t0 + ms(4)));
        // 10 ms RTT, 12000 B window: 1200 B per 0.8 ms.
        assert_eq!(p.delay_until(t0, 1200, 12_000, ms(10)), Some(t0 + Duration::from_micros(800)));
        // Odd values round the wait up: 1 byte at 1.25 * 3 B / 1 s = 266.67 ms.
        assert_eq!(p.delay_until(t0, 1, 3, Duration::from_secs(1)), Some(t0 + Duration::from_nanos(266_666_667)));
    }

    #[test]
    fn refill_is_exact_on_both_sides_of_a_full_bucket() {
        // 12,000 bytes per millisecond: an empty 12,000-byte bucket fills in
        // exactly 1 ms. One nanosecond short leaves it a byte short (the
        // division path), at or past 1 ms it is full (the multiplication
        // path), and the fraction carried over stays exact.
        let t0 = Instant::now();
        for (elapsed_ns, want) in [(1_000u64, 12u64), (999_999, 11_999), (1_000_000, 12_000), (1_000_001, 12_000), (5_000_000, 12_000), (500_000, 6_000)] {
            let mut p = Pacer::with_burst(1_200, 10);
            p.on_sent(t0, 12_000);
            assert_eq!(p.tokens(), 0);
            let at = t0 + Duration::from_nanos(elapsed_ns);
            let _ = p.delay_until_rate(at, 1, 12_000_000);
            assert_eq!(p.tokens(), want, "after {elapsed_ns} ns");
        }
    }

    #[test]
    fn idle_time_refills_only_to_burst() {
        let t0 = Instant::now();
        let mut p = Pacer::new(1200);
        p.on_sent(t0, 12_000);
        assert_eq!(p.delay_until(t0 + ms(10_000), 1200, 12_000, ms(100)), None);
        assert_eq!(p.tokens(), 12_000);
        // Oversized request waits only for a full bucket.
        p.on_sent(t0 + ms(10_000), 6000);
        assert_eq!(p.delay_until(t0 + ms(10_000), 50_000, 12_000, ms(100)), Some(t0 + ms(10_040)));
    }

    #[test]
    fn tiny_steps_accumulate() {
        let t0 = Instant::now();
        let mut p = Pacer::new(1200);
        p.on_sent(t0, 12_000);
        // 150 B/ms = 0.00015 B/ns: 1 µs steps add < 1 byte each, but the
        // elapsed time is kept until whole bytes are earned.
        let mut now = t0;
        for _ in 0..8000 {
            now += Duration::from_micros(1);
            let _ = p.delay_until(now, 1200, 12_000, ms(100));
        }
        assert_eq!(p.tokens(), 1200);
    }

    #[test]
    fn degenerate_inputs_do_not_pace_or_panic() {
        let t0 = Instant::now();
        let mut p = Pacer::new(1200);
        p.on_sent(t0, 12_000);
        assert_eq!(p.delay_until(t0, 1200, 0, ms(100)), None);
        p.on_sent(t0, 12_000);
        assert_eq!(p.delay_until(t0, 1200, 12_000, Duration::ZERO), None);
        p.on_sent(t0, u64::MAX);
        assert_eq!(p.tokens(), 0);
        // An absurd RTT saturates the wait instead of overflowing.
        let far = p.delay_until(t0, 1200, 1, Duration::MAX);
        assert!(far.is_none_or(|t| t > t0 + Duration::from_secs(365 * 24 * 3600)));
        p.set_max_datagram_size(1500);
        assert_eq!(p.capacity(), 15_000);
    }
}
