//! A deterministic simulated network for connection tests.
//!
//! Two endpoints, A and B, exchange opaque datagrams over two independent
//! one-way [`Link`]s (A→B and B→A). Time is simulated: the [`Network`]
//! captures one base [`Instant`] when it is created and from then on only
//! adds [`Duration`]s to it, so a run never depends on the wall clock and is
//! replayed exactly from its seed.
//!
//! Each link models, in this order:
//! 1. an MTU: larger datagrams are dropped ([`LinkStats::dropped_mtu`]);
//! 2. a bottleneck of `bandwidth_bps` with a byte-bounded FIFO in front of
//!    it: a datagram that does not fit is tail-dropped
//!    ([`LinkStats::dropped_queue`]), otherwise it waits for the datagrams
//!    ahead of it and then takes `len * 8 / bandwidth` to serialize;
//! 3. loss on the wire: independent random loss and a Gilbert–Elliott
//!    two-state burst-loss channel ([`LinkStats::dropped_loss`]). Lost
//!    datagrams still used the bottleneck;
//! 4. corruption (1–3 distinct bits flipped), duplication (an identical
//!    copy arrives right after the original);
//! 5. propagation: a fixed delay plus uniform jitter. Jitter alone never
//!    reorders (an arrival is never earlier than the previous in-order one);
//!    reordering is its own knob: a chosen datagram gets `reorder_delay`
//!    extra so later datagrams overtake it.
//!
//! The endpoints plug in through [`SimEndpoint`]; [`Network::run_until`]
//! drives both of them and always returns (condition met, idle, time limit or
//! step limit), never hangs.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use quic_core::rand::SeededRandom;

/// The largest UDP payload (65535 - 8 byte UDP header): the default MTU, so
/// that a default link never drops a datagram for its size.
pub const MAX_UDP_PAYLOAD: usize = 65_527;

/// Gilbert–Elliott burst loss: a two-state Markov chain evaluated once per
/// datagram. In the good state nothing is lost (independent loss is
/// [`LinkConfig::loss`]); in the bad state a datagram is lost with
/// `loss_in_bad`. The mean time spent in the bad state is
/// `1 / p_bad_to_good` datagrams, which makes losses come in bursts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GilbertElliott {
    pub p_good_to_bad: f64,
    pub p_bad_to_good: f64,
    pub loss_in_bad: f64,
}

/// The behaviour of one direction of the network. Probabilities are in
/// [0, 1] (values outside are clamped).
#[derive(Debug, Clone, PartialEq)]
pub struct LinkConfig {
    /// Fixed one-way propagation delay.
    pub delay: Duration,
    /// Extra delay drawn uniformly from `[0, jitter]` per datagram.
    pub jitter: Duration,
    /// Bottleneck rate in bits per second; `None` serializes instantly.
    pub bandwidth_bps: Option<u64>,
    /// Bytes the bottleneck queue holds, counting the datagram being
    /// serialized; `None` is unbounded. Only meaningful with a bandwidth.
    pub queue_capacity: Option<usize>,
    /// Independent loss probability per datagram.
    pub loss: f64,
    /// Burst loss on top of `loss`.
    pub burst_loss: Option<GilbertElliott>,
    /// Probability that a datagram is held back by `reorder_delay`.
    pub reorder: f64,
    pub reorder_delay: Duration,
    /// Probability that a datagram is delivered twice.
    pub duplicate: f64,
    /// Probability that 1–3 bits of a datagram are flipped.
    pub corrupt: f64,
    /// Datagrams longer than this are dropped.
    pub mtu: usize,
}

impl Default for LinkConfig {
    /// A perfect link: no delay, infinite bandwidth, no impairment.
    fn default() -> Self {
        Self {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            bandwidth_bps: None,
            queue_capacity: None,
            loss: 0.0,
            burst_loss: None,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
            duplicate: 0.0,
            corrupt: 0.0,
            mtu: MAX_UDP_PAYLOAD,
        }
    }
}

impl LinkConfig {
    /// A perfect link with a fixed one-way delay.
    pub fn new(delay: Duration) -> Self {
        Self {
            delay,
            ..Self::default()
        }
    }

    pub fn with_jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    pub fn with_bandwidth(mut self, bits_per_second: u64) -> Self {
        self.bandwidth_bps = Some(bits_per_second);
        self
    }

    pub fn with_queue(mut self, capacity_bytes: usize) -> Self {
        self.queue_capacity = Some(capacity_bytes);
        self
    }

    pub fn with_loss(mut self, probability: f64) -> Self {
        self.loss = probability;
        self
    }

    pub fn with_burst_loss(mut self, ge: GilbertElliott) -> Self {
        self.burst_loss = Some(ge);
        self
    }

    pub fn with_reorder(mut self, probability: f64, extra_delay: Duration) -> Self {
        self.reorder = probability;
        self.reorder_delay = extra_delay;
        self
    }

    pub fn with_duplicate(mut self, probability: f64) -> Self {
        self.duplicate = probability;
        self
    }

    pub fn with_corrupt(mut self, probability: f64) -> Self {
        self.corrupt = probability;
        self
    }

    pub fn with_mtu(mut self, mtu: usize) -> Self {
        self.mtu = mtu;
        self
    }
}

/// Counters of one link. `sent` counts every `send` call; each sent
/// datagram is then either dropped (exactly one of the `dropped_*`) or
/// delivered, plus `duplicated` extra deliveries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub sent: u64,
    pub delivered: u64,
    pub dropped_loss: u64,
    pub dropped_queue: u64,
    pub dropped_mtu: u64,
    pub duplicated: u64,
    pub corrupted: u64,
    pub reordered: u64,
    pub bytes_sent: u64,
    pub bytes_delivered: u64,
}

impl LinkStats {
    pub fn dropped(&self) -> u64 {
        self.dropped_loss + self.dropped_queue + self.dropped_mtu
    }
}

/// A datagram coming out of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Sequence number of the `send` call on this link, starting at 0
    /// (a duplicate carries its original's id).
    pub id: u64,
    pub data: Vec<u8>,
    pub sent_at: Instant,
    pub arrives_at: Instant,
}

/// Why a link dropped a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    Mtu,
    Queue,
    Loss,
}

/// What [`Link::send`] decided for a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Dropped(DropReason),
    /// Will be delivered at this time (a duplicate, if any, at the same time).
    Scheduled(Instant),
}

/// A datagram waiting in flight, ordered by arrival then by scheduling order
/// so that equal arrival times keep FIFO order.
struct InFlight {
    order: u64,
    dgram: Datagram,
}

impl InFlight {
    fn key(&self) -> (Instant, u64) {
        (self.dgram.arrives_at, self.order)
    }
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for InFlight {}

impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// One direction of the simulated network.
pub struct Link {
    config: LinkConfig,
    rng: SeededRandom,
    /// Gilbert–Elliott state.
    in_bad_state: bool,
    /// When the bottleneck finishes serializing everything accepted so far.
    busy_until: Option<Instant>,
    /// Datagrams accepted by the bottleneck and not yet fully serialized:
    /// (serialization end, bytes). Their sum is `queued_bytes`.
    queue: VecDeque<(Instant, usize)>,
    queued_bytes: usize,
    in_flight: BinaryHeap<Reverse<InFlight>>,
    /// Arrival of the last datagram that was not picked for reordering;
    /// jitter never makes a datagram arrive before it.
    last_in_order_arrival: Option<Instant>,
    next_id: u64,
    next_order: u64,
    stats: LinkStats,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("config", &self.config)
            .field("in_flight", &self.in_flight.len())
            .field("queued_bytes", &self.queued_bytes)
            .field("stats", &self.stats)
            .finish()
    }
}

impl Link {
    pub fn new(config: LinkConfig, seed: u64) -> Self {
        Self {
            config,
            rng: SeededRandom::new(seed),
            in_bad_state: false,
            busy_until: None,
            queue: VecDeque::new(),
            queued_bytes: 0,
            in_flight: BinaryHeap::new(),
            last_in_order_arrival: None,
            next_id: 0,
            next_order: 0,
            stats: LinkStats::default(),
        }
    }

    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// Changes the link's behaviour from now on (datagrams already in
    /// flight keep their schedule).
    pub fn set_config(&mut self, config: LinkConfig) {
        self.config = config;
    }

    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Datagrams scheduled for delivery and not yet polled.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Bytes in the bottleneck queue at `now`.
    pub fn queued_bytes(&mut self, now: Instant) -> usize {
        self.drain_queue(now);
        self.queued_bytes
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (p >= 1.0 || self.rng.unit() < p)
    }

    /// Uniform duration in `[0, max]`, nanosecond resolution.
    fn uniform(&mut self, max: Duration) -> Duration {
        let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.rng.below(nanos.saturating_add(1)))
    }

    fn drain_queue(&mut self, now: Instant) {
        while let Some(&(done, len)) = self.queue.front() {
            if done > now {
                break;
            }
            self.queue.pop_front();
            self.queued_bytes -= len;
        }
    }

    /// Serialization time of `len` bytes at `bps`, rounded up to the
    /// nanosecond (1000 bytes at 8 Mbit/s is exactly 1 ms).
    fn serialization_time(len: usize, bps: u64) -> Duration {
        let bits = len as u128 * 8;
        let bps = u128::from(bps.max(1));
        let nanos = (bits * 1_000_000_000).div_ceil(bps);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// One Gilbert–Elliott step: lose according to the current state, then
    /// move to the next state.
    fn burst_lost(&mut self) -> bool {
        let Some(ge) = self.config.burst_loss else {
            return false;
        };
        let lost = self.in_bad_state && self.chance(ge.loss_in_bad);
        let flip = if self.in_bad_state {
            ge.p_bad_to_good
        } else {
            ge.p_good_to_bad
        };
        if self.chance(flip) {
            self.in_bad_state = !self.in_bad_state;
        }
        lost
    }

    /// Flips 1–3 distinct bits; returns false for an empty datagram.
    fn corrupt(&mut self, data: &mut [u8]) -> bool {
        let bits = data.len() as u64 * 8;
        if bits == 0 {
            return false;
        }
        let want = (1 + self.rng.below(3)).min(bits);
        let mut flipped: [u64; 3] = [u64::MAX; 3];
        let mut n = 0;
        while n < want as usize {
            let bit = self.rng.below(bits);
            if flipped[..n].contains(&bit) {
                continue;
            }
            flipped[n] = bit;
            n += 1;
            if let Some(byte) = data.get_mut((bit / 8) as usize) {
                *byte ^= 1 << (bit % 8);
            }
        }
        true
    }

    /// Puts a datagram on the link at `now`.
    pub fn send(&mut self, now: Instant, data: Vec<u8>) -> Fate {
        let id = self.next_id;
        self.next_id += 1;
        self.stats.sent += 1;
        self.stats.bytes_sent += data.len() as u64;

        if data.len() > self.config.mtu {
            self.stats.dropped_mtu += 1;
            return Fate::Dropped(DropReason::Mtu);
        }

        // The bottleneck: FIFO, byte-bounded, tail drop.
        let on_wire = match self.config.bandwidth_bps {
            None => now,
            Some(bps) => {
                self.drain_queue(now);
                if let Some(cap) = self.config.queue_capacity {
                    if self.queued_bytes + data.len() > cap {
                        self.stats.dropped_queue += 1;
                        return Fate::Dropped(DropReason::Queue);
                    }
                }
                let start = self.busy_until.map_or(now, |busy| busy.max(now));
                let done = start + Self::serialization_time(data.len(), bps);
                self.busy_until = Some(done);
                self.queue.push_back((done, data.len()));
                self.queued_bytes += data.len();
                done
            }
        };

        // Loss on the wire: both models are stepped for every datagram so
        // the burst state evolves independently of the random losses.
        let random_loss = self.chance(self.config.loss);
        let burst_loss = self.burst_lost();
        if random_loss || burst_loss {
            self.stats.dropped_loss += 1;
            return Fate::Dropped(DropReason::Loss);
        }

        let mut data = data;
        if self.chance(self.config.corrupt) && self.corrupt(&mut data) {
            self.stats.corrupted += 1;
        }

        let jitter = self.uniform(self.config.jitter);
        let mut arrival = on_wire + self.config.delay + jitter;
        if self.chance(self.config.reorder) {
            self.stats.reordered += 1;
            arrival += self.config.reorder_delay;
        } else {
            if let Some(last) = self.last_in_order_arrival {
                arrival = arrival.max(last);
            }
            self.last_in_order_arrival = Some(arrival);
        }

        let duplicate = self.chance(self.config.duplicate);
        let dgram = Datagram {
            id,
            data,
            sent_at: now,
            arrives_at: arrival,
        };
        if duplicate {
            self.stats.duplicated += 1;
            self.schedule(dgram.clone());
        }
        self.schedule(dgram);
        Fate::Scheduled(arrival)
    }

    fn schedule(&mut self, dgram: Datagram) {
        let order = self.next_order;
        self.next_order += 1;
        self.in_flight.push(Reverse(InFlight { order, dgram }));
    }

    /// When the next datagram arrives, if any is in flight.
    pub fn next_delivery_time(&self) -> Option<Instant> {
        self.in_flight.peek().map(|Reverse(f)| f.dgram.arrives_at)
    }

    /// The next datagram that has arrived by `now`, in arrival order.
    pub fn poll_deliver(&mut self, now: Instant) -> Option<Datagram> {
        if self.next_delivery_time()? > now {
            return None;
        }
        let Reverse(f) = self.in_flight.pop()?;
        self.stats.delivered += 1;
        self.stats.bytes_delivered += f.dgram.data.len() as u64;
        Some(f.dgram)
    }
}

/// A protocol endpoint the network can drive: the sans-I/O shape of a QUIC
/// connection (datagrams in, datagrams and a deadline out).
pub trait SimEndpoint {
    fn handle_datagram(&mut self, now: Instant, data: &[u8]);
    /// The next datagram to send, or `None` when there is nothing to send
    /// right now.
    fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>>;
    /// The endpoint's next timer deadline.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Called once the deadline from `poll_timeout` has passed.
    fn handle_timeout(&mut self, now: Instant);
}

/// Which end of the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    A,
    B,
}

/// Why [`Network::run_until`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The condition returned true.
    Condition,
    /// Nothing left to do: no datagram in flight, no timer armed, nothing to
    /// send.
    Idle,
    /// The next event lies beyond `max_sim_time`; the clock stopped exactly
    /// at the limit.
    TimeLimit,
    /// `max_steps` steps ran without the condition becoming true.
    StepLimit,
}

/// The result of [`Network::run_until`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOutcome {
    pub reason: StopReason,
    /// Simulated time when the run stopped.
    pub now: Instant,
    /// Simulated time spent in this run.
    pub elapsed: Duration,
    /// Steps taken in this run (one step = transmit, deliver, fire timers
    /// at one instant).
    pub steps: usize,
}

impl RunOutcome {
    pub fn met(&self) -> bool {
        self.reason == StopReason::Condition
    }
}

/// How many datagrams one endpoint may hand over in a single step; an
/// endpoint that never stops transmitting then runs into the step limit
/// instead of hanging a step.
pub const MAX_TRANSMITS_PER_STEP: usize = 10_000;

/// Two links and a simulated clock.
#[derive(Debug)]
pub struct Network {
    base: Instant,
    now: Instant,
    a_to_b: Link,
    b_to_a: Link,
}

impl Network {
    /// Captures the base instant (the only clock read of the simulation).
    pub fn new(seed: u64, a_to_b: LinkConfig, b_to_a: LinkConfig) -> Self {
        Self::with_base(Instant::now(), seed, a_to_b, b_to_a)
    }

    /// The same link configuration both ways.
    pub fn symmetric(seed: u64, config: LinkConfig) -> Self {
        Self::new(seed, config.clone(), config)
    }

    /// A network whose clock starts at `base`.
    pub fn with_base(base: Instant, seed: u64, a_to_b: LinkConfig, b_to_a: LinkConfig) -> Self {
        // Distinct, unrelated streams for the two directions.
        let seed_b = seed ^ 0xa5a5_5a5a_c3c3_3c3c;
        Self {
            base,
            now: base,
            a_to_b: Link::new(a_to_b, seed),
            b_to_a: Link::new(b_to_a, seed_b),
        }
    }

    pub fn base(&self) -> Instant {
        self.base
    }

    pub fn now(&self) -> Instant {
        self.now
    }

    /// Simulated time since the base instant.
    pub fn elapsed(&self) -> Duration {
        self.now - self.base
    }

    /// Moves the clock forward to `t`; the clock never goes back.
    pub fn advance_to(&mut self, t: Instant) {
        self.now = self.now.max(t);
    }

    pub fn advance_by(&mut self, d: Duration) {
        self.now += d;
    }

    /// The link carrying datagrams sent by `from`.
    pub fn link(&self, from: Side) -> &Link {
        match from {
            Side::A => &self.a_to_b,
            Side::B => &self.b_to_a,
        }
    }

    pub fn link_mut(&mut self, from: Side) -> &mut Link {
        match from {
            Side::A => &mut self.a_to_b,
            Side::B => &mut self.b_to_a,
        }
    }

    /// Sends a datagram from `from` at the current time.
    pub fn send(&mut self, from: Side, data: Vec<u8>) -> Fate {
        let now = self.now;
        self.link_mut(from).send(now, data)
    }

    /// The next datagram for `to` that has arrived by now.
    pub fn poll_deliver(&mut self, to: Side) -> Option<Datagram> {
        let now = self.now;
        let from = match to {
            Side::A => Side::B,
            Side::B => Side::A,
        };
        self.link_mut(from).poll_deliver(now)
    }

    /// The earliest of the links' next deliveries and the given timer
    /// deadlines.
    pub fn next_event_time<I>(&self, timers: I) -> Option<Instant>
    where
        I: IntoIterator<Item = Option<Instant>>,
    {
        let links = [
            self.a_to_b.next_delivery_time(),
            self.b_to_a.next_delivery_time(),
        ];
        links.into_iter().chain(timers).flatten().min()
    }

    /// Drains `endpoint`'s transmits onto the link from `from`; returns how
    /// many it handed over.
    fn transmit<E: SimEndpoint>(&mut self, from: Side, endpoint: &mut E) -> usize {
        let now = self.now;
        let mut n = 0;
        while n < MAX_TRANSMITS_PER_STEP {
            let Some(data) = endpoint.poll_transmit(now) else {
                break;
            };
            self.link_mut(from).send(now, data);
            n += 1;
        }
        n
    }

    /// Hands every datagram that has arrived for `to` to `endpoint`.
    fn deliver<E: SimEndpoint>(&mut self, to: Side, endpoint: &mut E) -> usize {
        let now = self.now;
        let mut n = 0;
        while let Some(d) = self.poll_deliver(to) {
            endpoint.handle_datagram(now, &d.data);
            n += 1;
        }
        n
    }

    fn fire_timer<E: SimEndpoint>(now: Instant, endpoint: &mut E) -> bool {
        match endpoint.poll_timeout() {
            Some(t) if t <= now => {
                endpoint.handle_timeout(now);
                true
            }
            _ => false,
        }
    }

    /// Drives both endpoints until `cond` holds, nothing is left to happen,
    /// or a limit is reached.
    ///
    /// Each step, at the current instant: both endpoints' transmits go onto
    /// their links, datagrams due by now are delivered, expired timers fire.
    /// When a step did nothing, the clock jumps to the next event (the
    /// earliest delivery or timer). `cond` is checked before every step.
    pub fn run_until<A, B, F>(
        &mut self,
        a: &mut A,
        b: &mut B,
        mut cond: F,
        max_sim_time: Duration,
        max_steps: usize,
    ) -> RunOutcome
    where
        A: SimEndpoint,
        B: SimEndpoint,
        F: FnMut(&A, &B) -> bool,
    {
        let start = self.now;
        let deadline = start + max_sim_time;
        let mut steps = 0;
        let outcome = |net: &Self, reason, steps| RunOutcome {
            reason,
            now: net.now,
            elapsed: net.now - start,
            steps,
        };
        loop {
            if cond(a, b) {
                return outcome(self, StopReason::Condition, steps);
            }
            if steps >= max_steps {
                return outcome(self, StopReason::StepLimit, steps);
            }
            steps += 1;

            let mut progress = self.transmit(Side::A, a) + self.transmit(Side::B, b) > 0;
            progress |= self.deliver(Side::B, b) + self.deliver(Side::A, a) > 0;
            let now = self.now;
            progress |= Self::fire_timer(now, a);
            progress |= Self::fire_timer(now, b);
            if progress {
                // Handlers may have queued transmits or re-armed timers at
                // this same instant: look again before moving the clock.
                continue;
            }

            match self.next_event_time([a.poll_timeout(), b.poll_timeout()]) {
                None => return outcome(self, StopReason::Idle, steps),
                Some(t) if t > deadline => {
                    self.advance_to(deadline);
                    return outcome(self, StopReason::TimeLimit, steps);
                }
                Some(t) => self.advance_to(t),
            }
        }
    }

    /// Runs for `duration` of simulated time (or until idle).
    pub fn run_for<A: SimEndpoint, B: SimEndpoint>(
        &mut self,
        a: &mut A,
        b: &mut B,
        duration: Duration,
        max_steps: usize,
    ) -> RunOutcome {
        self.run_until(a, b, |_, _| false, duration, max_steps)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn base() -> Instant {
        Instant::now()
    }

    fn drain_all(link: &mut Link) -> Vec<Datagram> {
        let mut out = Vec::new();
        while let Some(t) = link.next_delivery_time() {
            out.push(link.poll_deliver(t).unwrap());
        }
        out
    }

    // ---- Link: timing ----------------------------------------------------

    #[test]
    fn delay_and_bandwidth_timing_is_exact() {
        let t0 = base();
        // 8 Mbit/s: 1000 bytes = 8000 bits take exactly 1 ms to serialize.
        let mut link = Link::new(LinkConfig::new(10 * MS).with_bandwidth(8_000_000), 1);
        for _ in 0..3 {
            link.send(t0, vec![0; 1000]);
        }
        assert_eq!(link.next_delivery_time(), Some(t0 + 11 * MS));
        assert_eq!(
            link.poll_deliver(t0 + 11 * MS - Duration::from_nanos(1)),
            None
        );
        let d0 = link.poll_deliver(t0 + 11 * MS).unwrap();
        assert_eq!((d0.id, d0.arrives_at, d0.sent_at), (0, t0 + 11 * MS, t0));
        // Back to back: each waits for the previous one's serialization.
        assert_eq!(link.next_delivery_time(), Some(t0 + 12 * MS));
        assert_eq!(link.poll_deliver(t0 + 11 * MS), None);
        let rest: Vec<_> = (0..2)
            .map(|_| link.poll_deliver(t0 + 20 * MS).unwrap())
            .collect();
        assert_eq!(rest[0].arrives_at, t0 + 12 * MS);
        assert_eq!(rest[1].arrives_at, t0 + 13 * MS);
        assert_eq!(link.poll_deliver(t0 + 1000 * MS), None);
        assert_eq!(link.next_delivery_time(), None);

        // After the bottleneck went idle, a datagram only pays its own
        // serialization: 500 bytes = 0.5 ms.
        let t1 = t0 + 50 * MS;
        assert_eq!(
            link.send(t1, vec![0; 500]),
            Fate::Scheduled(t1 + 10 * MS + MS / 2)
        );

        let s = link.stats();
        assert_eq!(
            (s.sent, s.delivered, s.bytes_sent, s.bytes_delivered),
            (4, 3, 3500, 3000)
        );
    }

    #[test]
    fn infinite_bandwidth_only_delays() {
        let t0 = base();
        let mut link = Link::new(LinkConfig::new(7 * MS), 1);
        for i in 0..100u8 {
            assert_eq!(link.send(t0, vec![i; 1200]), Fate::Scheduled(t0 + 7 * MS));
        }
        let got = drain_all(&mut link);
        assert_eq!(got.len(), 100);
        // FIFO among equal arrival times.
        assert!(got
            .iter()
            .enumerate()
            .all(|(i, d)| d.id == i as u64 && d.data[0] == i as u8));
    }

    #[test]
    fn jitter_stays_in_range_and_keeps_order() {
        let t0 = base();
        let mut link = Link::new(LinkConfig::new(10 * MS).with_jitter(5 * MS), 3);
        for i in 0..1000u32 {
            link.send(
                t0 + i * Duration::from_micros(100),
                i.to_be_bytes().to_vec(),
            );
        }
        let got = drain_all(&mut link);
        assert_eq!(got.len(), 1000);
        let mut distinct_delays = std::collections::HashSet::new();
        for (i, d) in got.iter().enumerate() {
            assert_eq!(d.id, i as u64, "jitter alone must not reorder");
            let delay = d.arrives_at - d.sent_at;
            // Holding a datagram back behind the previous arrival never
            // pushes it past delay + jitter: the previous one was sent
            // earlier with at most the same bound.
            assert!(delay >= 10 * MS && delay <= 15 * MS, "{delay:?}");
            distinct_delays.insert(delay);
        }
        assert!(
            distinct_delays.len() > 500,
            "jitter varies: {}",
            distinct_delays.len()
        );
    }

    // ---- Link: queue and MTU ---------------------------------------------

    #[test]
    fn queue_tail_drops_and_counts() {
        let t0 = base();
        let cfg = LinkConfig::new(10 * MS)
            .with_bandwidth(8_000_000)
            .with_queue(5000);
        let mut link = Link::new(cfg, 1);
        let fates: Vec<_> = (0..10).map(|_| link.send(t0, vec![0; 1000])).collect();
        assert!(fates[..5].iter().all(|f| matches!(f, Fate::Scheduled(_))));
        assert!(fates[5..]
            .iter()
            .all(|f| *f == Fate::Dropped(DropReason::Queue)));
        assert_eq!(link.stats().dropped_queue, 5);
        assert_eq!(link.queued_bytes(t0), 5000);

        // After 2 ms two datagrams have left the queue: room for two more.
        let t1 = t0 + 2 * MS;
        assert_eq!(link.queued_bytes(t1), 3000);
        assert_eq!(link.send(t1, vec![0; 1000]), Fate::Scheduled(t0 + 16 * MS));
        assert_eq!(link.send(t1, vec![0; 1000]), Fate::Scheduled(t0 + 17 * MS));
        assert_eq!(
            link.send(t1, vec![0; 1000]),
            Fate::Dropped(DropReason::Queue)
        );
        // The queue is full to the byte: not even one more byte fits.
        assert_eq!(link.send(t1, vec![0; 1]), Fate::Dropped(DropReason::Queue));

        let s = link.stats();
        assert_eq!((s.sent, s.dropped_queue, s.dropped()), (14, 7, 7));
        let got = drain_all(&mut link);
        assert_eq!(got.len(), 7);
        assert_eq!(link.stats().delivered, 7);
        assert_eq!(got.last().unwrap().arrives_at, t0 + 17 * MS);
    }

    #[test]
    fn mtu_drops_oversized_datagrams() {
        let t0 = base();
        let mut link = Link::new(LinkConfig::new(MS).with_mtu(1200), 1);
        assert_eq!(link.send(t0, vec![0; 1201]), Fate::Dropped(DropReason::Mtu));
        assert_eq!(link.send(t0, vec![0; 1200]), Fate::Scheduled(t0 + MS));
        assert_eq!(link.send(t0, vec![0; 9000]), Fate::Dropped(DropReason::Mtu));
        let s = link.stats();
        assert_eq!((s.dropped_mtu, s.sent), (2, 3));
        assert_eq!(drain_all(&mut link).len(), 1);
    }

    // ---- Link: random impairments ----------------------------------------

    #[test]
    fn loss_rate_matches_probability() {
        let t0 = base();
        for (seed, p) in [(1u64, 0.1f64), (2, 0.02), (3, 0.5)] {
            let mut link = Link::new(LinkConfig::new(MS).with_loss(p), seed);
            for i in 0..10_000u32 {
                link.send(t0 + i * MS / 10, vec![1; 100]);
            }
            let got = drain_all(&mut link);
            let s = link.stats();
            let expected = 10_000.0 * p;
            // 5 standard deviations of the binomial.
            let band = 5.0 * (10_000.0 * p * (1.0 - p)).sqrt();
            let lost = s.dropped_loss as f64;
            assert!(
                (lost - expected).abs() < band,
                "p={p}: lost {lost}, want {expected}±{band}"
            );
            assert_eq!(s.delivered + s.dropped_loss, 10_000);
            assert_eq!(got.len() as u64, s.delivered);
        }
    }

    /// Mean length of runs of consecutive lost ids among `0..sent`.
    fn mean_burst_length(delivered: &[Datagram], sent: u64) -> (f64, u64) {
        let mut got = vec![false; sent as usize];
        for d in delivered {
            got[d.id as usize] = true;
        }
        let (mut bursts, mut lost, mut in_burst) = (0u64, 0u64, false);
        for ok in got {
            if !ok {
                lost += 1;
                if !in_burst {
                    bursts += 1;
                }
            }
            in_burst = !ok;
        }
        (lost as f64 / bursts.max(1) as f64, lost)
    }

    #[test]
    fn gilbert_elliott_loses_in_bursts() {
        let t0 = base();
        let ge = GilbertElliott {
            p_good_to_bad: 0.05,
            p_bad_to_good: 0.3,
            loss_in_bad: 1.0,
        };
        let mut link = Link::new(LinkConfig::new(MS).with_burst_loss(ge), 11);
        for i in 0..10_000u32 {
            link.send(t0 + i * MS / 10, vec![0; 50]);
        }
        let got = drain_all(&mut link);
        let (burst, lost) = mean_burst_length(&got, 10_000);
        // Stationary bad-state share 0.05 / 0.35 ≈ 14 %; mean burst 1/0.3.
        assert!(burst > 1.5, "mean burst {burst}");
        assert!((2.5..4.5).contains(&burst), "mean burst {burst}");
        assert!((1000..1900).contains(&lost), "lost {lost}");
        assert_eq!(link.stats().dropped_loss, lost);

        // Independent loss at a similar rate has bursts close to 1.
        let mut iid = Link::new(LinkConfig::new(MS).with_loss(0.14), 11);
        for i in 0..10_000u32 {
            iid.send(t0 + i * MS / 10, vec![0; 50]);
        }
        let (burst_iid, _) = mean_burst_length(&drain_all(&mut iid), 10_000);
        assert!(burst_iid < 1.3, "iid burst {burst_iid}");
    }

    #[test]
    fn reordering_reorders() {
        let t0 = base();
        let mut link = Link::new(LinkConfig::new(10 * MS).with_reorder(0.2, 5 * MS), 5);
        for i in 0..1000u32 {
            link.send(t0 + i * MS, vec![0; 10]);
        }
        let got = drain_all(&mut link);
        assert_eq!(got.len(), 1000, "reordering loses nothing");
        let s = link.stats();
        assert!(
            (140..260).contains(&s.reordered),
            "reordered {}",
            s.reordered
        );
        // A held-back datagram arrives 15 ms after it was sent, after the
        // ones sent up to 5 ms later: count the overtaken pairs.
        let inversions = got.windows(2).filter(|w| w[0].id > w[1].id).count();
        assert!(inversions > 100, "inversions {inversions}");
        for d in &got {
            let delay = d.arrives_at - d.sent_at;
            assert!(delay == 10 * MS || delay == 15 * MS, "{delay:?}");
        }
        let late = got
            .iter()
            .filter(|d| d.arrives_at - d.sent_at == 15 * MS)
            .count();
        assert_eq!(late as u64, s.reordered);
        // Arrival order is by arrival time.
        assert!(got.windows(2).all(|w| w[0].arrives_at <= w[1].arrives_at));
    }

    #[test]
    fn duplication_duplicates() {
        let t0 = base();
        let mut link = Link::new(LinkConfig::new(MS).with_duplicate(0.1), 6);
        for i in 0..1000u32 {
            link.send(t0 + i * MS, i.to_be_bytes().to_vec());
        }
        let got = drain_all(&mut link);
        let s = link.stats();
        assert!(
            (50..150).contains(&s.duplicated),
            "duplicated {}",
            s.duplicated
        );
        assert_eq!(got.len() as u64, 1000 + s.duplicated);
        assert_eq!(s.delivered, 1000 + s.duplicated);
        let mut seen = vec![0u32; 1000];
        for d in &got {
            assert_eq!(d.data, (d.id as u32).to_be_bytes().to_vec());
            seen[d.id as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n == 1 || n == 2));
        assert_eq!(
            seen.iter().filter(|&&n| n == 2).count() as u64,
            s.duplicated
        );
    }

    fn hamming(a: &[u8], b: &[u8]) -> u32 {
        a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
    }

    #[test]
    fn corruption_flips_one_to_three_bits() {
        let t0 = base();
        let original: Vec<u8> = (0..200u8).collect();
        let mut link = Link::new(LinkConfig::new(MS).with_corrupt(1.0), 7);
        for _ in 0..500 {
            link.send(t0, original.clone());
        }
        let got = drain_all(&mut link);
        assert_eq!(got.len(), 500);
        assert_eq!(link.stats().corrupted, 500);
        let mut histogram = [0u32; 4];
        for d in &got {
            assert_eq!(d.data.len(), original.len());
            let h = hamming(&d.data, &original);
            assert!((1..=3).contains(&h), "{h} bits flipped");
            histogram[h as usize] += 1;
        }
        assert!(histogram[1..].iter().all(|&n| n > 100), "{histogram:?}");

        // Partial corruption: only the counted datagrams differ.
        let mut link = Link::new(LinkConfig::new(MS).with_corrupt(0.1), 8);
        for _ in 0..1000 {
            link.send(t0, original.clone());
        }
        let got = drain_all(&mut link);
        let changed = got.iter().filter(|d| d.data != original).count() as u64;
        assert_eq!(changed, link.stats().corrupted);
        assert!((50..150).contains(&changed), "corrupted {changed}");

        // An empty datagram cannot be corrupted and is not counted.
        let mut link = Link::new(LinkConfig::new(MS).with_corrupt(1.0), 9);
        link.send(t0, Vec::new());
        assert_eq!(drain_all(&mut link)[0].data, Vec::<u8>::new());
        assert_eq!(link.stats().corrupted, 0);
    }

    #[test]
    fn same_seed_same_link_behaviour() {
        let t0 = base();
        let cfg = LinkConfig::new(5 * MS)
            .with_jitter(2 * MS)
            .with_bandwidth(10_000_000)
            .with_queue(20_000)
            .with_loss(0.05)
            .with_reorder(0.05, 3 * MS)
            .with_duplicate(0.05)
            .with_corrupt(0.05);
        let run = |seed| {
            let mut link = Link::new(cfg.clone(), seed);
            for i in 0..2000u32 {
                link.send(
                    t0 + i * Duration::from_micros(300),
                    vec![(i % 251) as u8; 1000],
                );
            }
            let got: Vec<_> = drain_all(&mut link)
                .into_iter()
                .map(|d| (d.id, d.arrives_at, d.data))
                .collect();
            (got, link.stats())
        };
        let (a, sa) = run(42);
        let (b, sb) = run(42);
        let (c, sc) = run(43);
        assert_eq!(a, b);
        assert_eq!(sa, sb);
        assert_ne!(a, c);
        assert_ne!(sa, sc);
        assert!(sa.dropped_queue > 0 && sa.dropped_loss > 0 && sa.duplicated > 0);
    }

    // ---- Network and run_until with toy endpoints ------------------------

    /// FNV-1a, so the toy protocol can detect corruption.
    fn fnv(data: &[u8]) -> u32 {
        data.iter().fold(0x811c_9dc5u32, |h, &b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        })
    }

    const DATA: u8 = 1;
    const ACK: u8 = 2;

    /// `[kind][seq: u32][payload...][fnv32 of everything before]`.
    fn encode(kind: u8, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![kind];
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend_from_slice(payload);
        let sum = fnv(&v);
        v.extend_from_slice(&sum.to_be_bytes());
        v
    }

    fn decode(d: &[u8]) -> Option<(u8, u32, &[u8])> {
        let (body, sum) = d.split_at(d.len().checked_sub(4)?);
        if body.len() < 5 || fnv(body).to_be_bytes() != sum {
            return None;
        }
        let seq = u32::from_be_bytes(body[1..5].try_into().ok()?);
        Some((body[0], seq, &body[5..]))
    }

    /// Stop-and-wait sender: one DATA in flight, retransmitted on a fixed
    /// timeout until acknowledged.
    struct Sender {
        total: u32,
        next: u32,
        rto: Duration,
        timer: Option<Instant>,
        due: bool,
        retransmits: u32,
        rejected: u32,
        done_at: Option<Instant>,
    }

    impl Sender {
        fn new(total: u32, rto: Duration) -> Self {
            Self {
                total,
                next: 0,
                rto,
                timer: None,
                due: total > 0,
                retransmits: 0,
                rejected: 0,
                done_at: None,
            }
        }

        fn done(&self) -> bool {
            self.next == self.total
        }
    }

    impl SimEndpoint for Sender {
        fn handle_datagram(&mut self, now: Instant, data: &[u8]) {
            match decode(data) {
                Some((ACK, seq, _)) if seq == self.next && !self.done() => {
                    self.next += 1;
                    self.timer = None;
                    self.due = !self.done();
                    if self.done() {
                        self.done_at = Some(now);
                    }
                }
                Some(_) => {}
                None => self.rejected += 1,
            }
        }

        fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
            if !self.due {
                return None;
            }
            self.due = false;
            self.timer = Some(now + self.rto);
            Some(encode(DATA, self.next, &[0xab; 1000]))
        }

        fn poll_timeout(&self) -> Option<Instant> {
            self.timer
        }

        fn handle_timeout(&mut self, _now: Instant) {
            self.timer = None;
            self.due = true;
            self.retransmits += 1;
        }
    }

    /// Acknowledges every valid DATA; records the first arrival of each.
    #[derive(Default)]
    struct Receiver {
        log: Vec<(Duration, u32)>,
        base: Option<Instant>,
        acks: VecDeque<u32>,
        rejected: u32,
    }

    impl SimEndpoint for Receiver {
        fn handle_datagram(&mut self, now: Instant, data: &[u8]) {
            match decode(data) {
                Some((DATA, seq, payload)) => {
                    assert_eq!(payload.len(), 1000);
                    if seq as usize == self.log.len() {
                        let base = *self.base.get_or_insert(now);
                        self.log.push((now - base, seq));
                    }
                    self.acks.push_back(seq);
                }
                Some(_) => {}
                None => self.rejected += 1,
            }
        }

        fn poll_transmit(&mut self, _now: Instant) -> Option<Vec<u8>> {
            self.acks.pop_front().map(|seq| encode(ACK, seq, &[]))
        }

        fn poll_timeout(&self) -> Option<Instant> {
            None
        }

        fn handle_timeout(&mut self, _now: Instant) {}
    }

    #[test]
    fn stop_and_wait_round_trips_are_exact() {
        // 8 Mbit/s, 10 ms each way: DATA (1009 bytes) takes 1.009 ms to
        // serialize, ACK (9 bytes) 9 µs. One message per round trip.
        let cfg = LinkConfig::new(10 * MS).with_bandwidth(8_000_000);
        let mut net = Network::symmetric(1, cfg);
        let (mut s, mut r) = (Sender::new(5, 100 * MS), Receiver::default());
        let out = net.run_until(
            &mut s,
            &mut r,
            |s, _| s.done(),
            Duration::from_secs(10),
            10_000,
        );
        assert_eq!(out.reason, StopReason::Condition);
        assert!(out.met());
        let rtt = 20 * MS + Duration::from_micros(1009) + Duration::from_micros(9);
        assert_eq!(out.elapsed, 5 * rtt);
        assert_eq!(s.done_at, Some(net.base() + 5 * rtt));
        assert_eq!(net.now(), net.base() + 5 * rtt);
        let expected: Vec<_> = (0..5u32).map(|i| (i * rtt, i)).collect();
        assert_eq!(r.log, expected);
        assert_eq!(s.retransmits, 0);
        assert_eq!(net.link(Side::A).stats().delivered, 5);
        assert_eq!(net.link(Side::B).stats().delivered, 5);
    }

    fn lossy_run(seed: u64) -> (Vec<(Duration, u32)>, RunOutcome, u32, LinkStats, LinkStats) {
        let cfg = LinkConfig::new(10 * MS)
            .with_jitter(3 * MS)
            .with_bandwidth(20_000_000)
            .with_loss(0.2)
            .with_duplicate(0.05)
            .with_reorder(0.05, 4 * MS)
            .with_corrupt(0.05);
        let mut net = Network::symmetric(seed, cfg);
        let (mut s, mut r) = (Sender::new(50, 60 * MS), Receiver::default());
        let out = net.run_until(
            &mut s,
            &mut r,
            |s, _| s.done(),
            Duration::from_secs(60),
            1_000_000,
        );
        assert_eq!(out.reason, StopReason::Condition, "seed {seed}");
        assert_eq!(r.log.len(), 50);
        assert!(r
            .log
            .iter()
            .enumerate()
            .all(|(i, &(_, seq))| seq == i as u32));
        (
            r.log,
            out,
            s.retransmits,
            net.link(Side::A).stats(),
            net.link(Side::B).stats(),
        )
    }

    #[test]
    fn same_seed_identical_run_different_seed_different_run() {
        let a = lossy_run(7);
        let b = lossy_run(7);
        assert_eq!(a.0, b.0);
        assert_eq!((a.1.elapsed, a.1.steps), (b.1.elapsed, b.1.steps));
        assert_eq!((a.2, a.3, a.4), (b.2, b.3, b.4));
        // Losses happened and were recovered from.
        assert!(a.2 > 0 && a.3.dropped_loss > 0);

        let c = lossy_run(8);
        assert_ne!(a.0, c.0);
        assert_ne!(a.1.elapsed, c.1.elapsed);
    }

    #[test]
    fn corrupted_datagrams_reach_the_endpoint_and_are_rejected() {
        let mut net = Network::symmetric(3, LinkConfig::new(5 * MS).with_corrupt(0.3));
        let (mut s, mut r) = (Sender::new(40, 30 * MS), Receiver::default());
        // Run to idleness so that every corrupted datagram has arrived.
        let out = net.run_until(
            &mut s,
            &mut r,
            |_, _| false,
            Duration::from_secs(60),
            100_000,
        );
        assert_eq!(out.reason, StopReason::Idle);
        assert!(s.done());
        assert_eq!(r.log.len(), 40);
        let corrupted = net.link(Side::A).stats().corrupted + net.link(Side::B).stats().corrupted;
        assert!(corrupted > 5, "corrupted {corrupted}");
        // The checksum catches every flipped bit; each loss costs a timeout.
        assert_eq!(u64::from(s.rejected + r.rejected), corrupted);
        assert!(s.retransmits > 0);
    }

    /// Sends `count` pings at start; counts echoes. The echo side answers
    /// each datagram once. No timers: the run ends idle.
    struct Pinger {
        to_send: u32,
        echoes: Vec<Instant>,
    }

    impl SimEndpoint for Pinger {
        fn handle_datagram(&mut self, now: Instant, _data: &[u8]) {
            self.echoes.push(now);
        }
        fn poll_transmit(&mut self, _now: Instant) -> Option<Vec<u8>> {
            (self.to_send > 0).then(|| {
                self.to_send -= 1;
                vec![0; 1000]
            })
        }
        fn poll_timeout(&self) -> Option<Instant> {
            None
        }
        fn handle_timeout(&mut self, _now: Instant) {}
    }

    #[derive(Default)]
    struct Echo {
        pending: VecDeque<Vec<u8>>,
    }

    impl SimEndpoint for Echo {
        fn handle_datagram(&mut self, _now: Instant, data: &[u8]) {
            self.pending.push_back(data.to_vec());
        }
        fn poll_transmit(&mut self, _now: Instant) -> Option<Vec<u8>> {
            self.pending.pop_front()
        }
        fn poll_timeout(&self) -> Option<Instant> {
            None
        }
        fn handle_timeout(&mut self, _now: Instant) {}
    }

    #[test]
    fn run_until_stops_when_idle() {
        let cfg = LinkConfig::new(10 * MS).with_bandwidth(8_000_000);
        let mut net = Network::symmetric(1, cfg);
        let mut a = Pinger {
            to_send: 3,
            echoes: Vec::new(),
        };
        let mut b = Echo::default();
        let out = net.run_until(&mut a, &mut b, |_, _| false, Duration::from_secs(10), 1000);
        assert_eq!(out.reason, StopReason::Idle);
        // Pings leave at 1, 2, 3 ms (serialization) and arrive 10 ms later;
        // each echo leaves on arrival and pays 1 ms + 10 ms back.
        let t0 = net.base();
        assert_eq!(a.echoes, vec![t0 + 22 * MS, t0 + 23 * MS, t0 + 24 * MS]);
        assert_eq!(out.now, t0 + 24 * MS);
        assert_eq!(out.elapsed, 24 * MS);
        assert_eq!(net.next_event_time([None, None]), None);

        // Nothing at all to do: idle at once, clock untouched.
        let mut idle = Network::symmetric(1, LinkConfig::new(MS));
        let mut a = Pinger {
            to_send: 0,
            echoes: Vec::new(),
        };
        let out = idle.run_until(&mut a, &mut Echo::default(), |_, _| false, MS, 10);
        assert_eq!(
            (out.reason, out.elapsed, out.steps),
            (StopReason::Idle, Duration::ZERO, 1)
        );
    }

    /// Sends one datagram every `period`, forever.
    struct Heartbeat {
        period: Duration,
        next: Instant,
        due: bool,
        ticks: u32,
    }

    impl SimEndpoint for Heartbeat {
        fn handle_datagram(&mut self, _now: Instant, _data: &[u8]) {}
        fn poll_transmit(&mut self, _now: Instant) -> Option<Vec<u8>> {
            std::mem::take(&mut self.due).then(|| vec![1; 100])
        }
        fn poll_timeout(&self) -> Option<Instant> {
            Some(self.next)
        }
        fn handle_timeout(&mut self, now: Instant) {
            self.ticks += 1;
            self.due = true;
            self.next = now + self.period;
        }
    }

    /// Counts what it receives.
    #[derive(Default)]
    struct Sink {
        got: u32,
    }

    impl SimEndpoint for Sink {
        fn handle_datagram(&mut self, _now: Instant, _data: &[u8]) {
            self.got += 1;
        }
        fn poll_transmit(&mut self, _now: Instant) -> Option<Vec<u8>> {
            None
        }
        fn poll_timeout(&self) -> Option<Instant> {
            None
        }
        fn handle_timeout(&mut self, _now: Instant) {}
    }

    #[test]
    fn run_until_stops_on_time_and_step_limits() {
        let mut net = Network::symmetric(1, LinkConfig::new(5 * MS));
        let t0 = net.base();
        let mut hb = Heartbeat {
            period: 10 * MS,
            next: t0 + 10 * MS,
            due: false,
            ticks: 0,
        };
        let mut sink = Sink::default();
        let out = net.run_until(
            &mut hb,
            &mut sink,
            |_, _| false,
            Duration::from_secs(1),
            1_000_000,
        );
        assert_eq!(out.reason, StopReason::TimeLimit);
        assert_eq!(out.now, t0 + Duration::from_secs(1));
        assert_eq!(net.now(), t0 + Duration::from_secs(1));
        // Ticks at 10, 20, ..., 1000 ms; the datagram sent at 1000 ms is
        // still in flight.
        assert_eq!(hb.ticks, 100);
        assert_eq!(sink.got, 99);
        assert_eq!(net.link(Side::A).in_flight(), 1);

        // Continuing works from where the clock stopped.
        let out = net.run_until(
            &mut hb,
            &mut sink,
            |_, s| s.got == 150,
            Duration::from_secs(10),
            1_000_000,
        );
        assert!(out.met());
        assert_eq!(out.now, t0 + 1505 * MS);

        // Step limit: reported, with the steps counted.
        let out = net.run_until(
            &mut hb,
            &mut sink,
            |_, _| false,
            Duration::from_secs(100),
            7,
        );
        assert_eq!((out.reason, out.steps), (StopReason::StepLimit, 7));

        // An endpoint stuck with an expired timer it never clears cannot
        // hang the run either.
        struct Stuck(Instant);
        impl SimEndpoint for Stuck {
            fn handle_datagram(&mut self, _: Instant, _: &[u8]) {}
            fn poll_transmit(&mut self, _: Instant) -> Option<Vec<u8>> {
                None
            }
            fn poll_timeout(&self) -> Option<Instant> {
                Some(self.0)
            }
            fn handle_timeout(&mut self, _: Instant) {}
        }
        let mut stuck = Stuck(net.now());
        let out = net.run_until(
            &mut stuck,
            &mut Sink::default(),
            |_, _| false,
            Duration::from_secs(1),
            50,
        );
        assert_eq!(
            (out.reason, out.steps, out.elapsed),
            (StopReason::StepLimit, 50, Duration::ZERO)
        );
    }

    #[test]
    fn next_event_time_takes_the_earliest() {
        let t0 = base();
        let mut net = Network::with_base(t0, 1, LinkConfig::new(10 * MS), LinkConfig::new(20 * MS));
        assert_eq!(net.next_event_time([None, None]), None);
        assert_eq!(
            net.next_event_time([Some(t0 + 30 * MS), None]),
            Some(t0 + 30 * MS)
        );
        net.send(Side::B, vec![1]);
        net.send(Side::A, vec![2]);
        assert_eq!(
            net.next_event_time([Some(t0 + 30 * MS), None]),
            Some(t0 + 10 * MS)
        );
        assert_eq!(
            net.next_event_time([None, Some(t0 + 5 * MS)]),
            Some(t0 + 5 * MS)
        );
        net.advance_to(t0 + 10 * MS);
        assert_eq!(net.poll_deliver(Side::A), None);
        assert_eq!(net.poll_deliver(Side::B).unwrap().data, vec![2]);
        net.advance_by(10 * MS);
        assert_eq!(net.poll_deliver(Side::A).unwrap().data, vec![1]);
        // The clock never goes back.
        net.advance_to(t0);
        assert_eq!(net.elapsed(), 20 * MS);
    }
}
