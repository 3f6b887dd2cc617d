//! A deterministic simulated network for connection tests.
//!
//! Two endpoints, A and B, exchange opaque datagrams over two independent
//! one-way [`Link`]s (A→B and B→A). Time is simulated: a run captures one
//! base [`Instant`] and from then on only adds [`Duration`]s to it, so it
//! never depends on the wall clock and is replayed exactly from its seed.
//!
//! The same [`Link`] also drives the interop relay on real sockets
//! (`quicpro-interop`'s `relay`), with `Instant::now()` as its clock, so the
//! in-memory tests and the relay share one impairment model.
//!
//! Each link models, in this order:
//! 1. arrival at the link: the datagrams listed in
//!    [`LinkConfig::drop_list`] (1-based `send` count) and everything sent
//!    inside a [`LinkConfig::blackholes`] window are dropped
//!    ([`LinkStats::dropped_list`], [`LinkStats::dropped_blackhole`]);
//! 2. an MTU: larger datagrams are dropped ([`LinkStats::dropped_mtu`]);
//! 3. a bottleneck of `bandwidth_bps` with a FIFO in front of it, bounded in
//!    bytes and/or in packets: a datagram that does not fit is tail-dropped
//!    ([`LinkStats::dropped_queue`]), otherwise it waits for the datagrams
//!    ahead of it and then takes `len * 8 / bandwidth` to serialize;
//! 4. loss on the wire: independent random loss and a Gilbert–Elliott
//!    two-state burst-loss channel ([`LinkStats::dropped_loss`]), then the
//!    interop runner's burst-capped drop-rate model
//!    ([`LinkStats::dropped_rate`]). Lost datagrams still used the
//!    bottleneck;
//! 5. corruption: the runner's corrupt-rate model (one byte of the first 51
//!    replaced, [`LinkStats::corrupted_rate`]), then 1–3 distinct bits
//!    flipped ([`LinkStats::corrupted`]); duplication (an identical copy
//!    arrives right after the original);
//! 6. propagation: a fixed delay plus uniform jitter. Jitter alone never
//!    reorders (an arrival is never earlier than the previous in-order one);
//!    reordering is its own knob: a chosen datagram gets `reorder_delay`
//!    extra (or a uniform extra up to `reorder_delay_max`) so later
//!    datagrams overtake it.
//!
//! A knob that is off draws nothing from the random generator, so adding
//! knobs never changes the behaviour of an existing configuration and seed.
//!
//! [`Scenario`] names the quic-interop-runner's network scenarios
//! (`/work/shared/specs/INTEROP_TEST_CASES.md`, "Scenario semantics") as
//! pairs of link configurations and parses them from strings.
//!
//! [`crate::pair::Pair`] drives two quic-core endpoints across a pair of
//! links on simulated time.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::str::FromStr;
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

/// The interop runner's drop-rate / corrupt-rate selection (spec,
/// "Scenario semantics"): each datagram is picked with `probability`;
/// after `max_burst` consecutive picks the next datagram is forced through
/// (and the run starts again). `max_burst == 0` means no cap.
///
/// The spec states the cap as "after `burst` consecutive drops"; that is
/// what this implements. (The ns-3 code compares `dropped_in_a_row > burst`
/// before counting, which lets `burst + 1` through in a row; we follow the
/// stated semantics.)
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurstCapped {
    pub probability: f64,
    pub max_burst: u32,
}

impl BurstCapped {
    pub fn new(probability: f64, max_burst: u32) -> Self {
        Self { probability, max_burst }
    }

    /// The long-run share of datagrams picked. The run length is a Markov
    /// chain on 0..=max_burst with stationary weights p^k, and a pick
    /// happens from every state but the last: (p + … + p^b) / (1 + … + p^b).
    pub fn mean_rate(&self) -> f64 {
        let p = self.probability.clamp(0.0, 1.0);
        if self.max_burst == 0 {
            return p;
        }
        let (mut num, mut den, mut pk) = (0.0, 1.0, 1.0);
        for _ in 0..self.max_burst {
            pk *= p;
            num += pk;
            den += pk;
        }
        num / den
    }
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
    /// With a value above `reorder_delay`, a held-back datagram gets a
    /// uniform extra delay in `[reorder_delay, reorder_delay_max]` instead
    /// of exactly `reorder_delay`.
    pub reorder_delay_max: Option<Duration>,
    /// Probability that a datagram is delivered twice.
    pub duplicate: f64,
    /// Probability that 1–3 bits of a datagram are flipped.
    pub corrupt: f64,
    /// Datagrams longer than this are dropped.
    pub mtu: usize,
    /// Datagrams the bottleneck queue holds, counting the one being
    /// serialized; `None` is unbounded. Applies together with
    /// `queue_capacity` (whichever is hit first). The runner's base
    /// scenario is 26: an ns-3 DropTail device queue of 1 plus a 25-packet
    /// pfifo (spec, "Common rules").
    pub queue_packets: Option<usize>,
    /// The runner's drop-rate model, after the bottleneck (spec, "Scenario
    /// semantics", drop-rate).
    pub drop_rate: Option<BurstCapped>,
    /// The runner's corrupt-rate model: a picked datagram is delivered with
    /// one byte at a uniform offset in `[0, min(50, len - 1)]` replaced by a
    /// different uniform value. A QUIC Version Negotiation packet (long
    /// header, version 0) is never picked and ends a run of picks, as in
    /// ns-3 (spec, "Scenario semantics", corrupt-rate).
    pub corrupt_rate: Option<BurstCapped>,
    /// 1-based indices of the datagrams arriving at the link (every `send`
    /// call counts) that are dropped (spec, "Scenario semantics",
    /// droplist).
    pub drop_list: Vec<u64>,
    /// Windows `[start, end)`, relative to the link's epoch (see
    /// [`Link::set_epoch`]), during which every arriving datagram is
    /// dropped (spec, "Scenario semantics", blackhole).
    pub blackholes: Vec<(Duration, Duration)>,
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
            reorder_delay_max: None,
            duplicate: 0.0,
            corrupt: 0.0,
            mtu: MAX_UDP_PAYLOAD,
            queue_packets: None,
            drop_rate: None,
            corrupt_rate: None,
            drop_list: Vec::new(),
            blackholes: Vec::new(),
        }
    }
}

impl LinkConfig {
    /// A perfect link with a fixed one-way delay.
    pub fn new(delay: Duration) -> Self {
        Self { delay, ..Self::default() }
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
        self.reorder_delay_max = None;
        self
    }

    /// Reordering with a uniform extra delay in `[min_extra, max_extra]`.
    pub fn with_reorder_range(mut self, probability: f64, min_extra: Duration, max_extra: Duration) -> Self {
        self.reorder = probability;
        self.reorder_delay = min_extra;
        self.reorder_delay_max = Some(max_extra);
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

    pub fn with_queue_packets(mut self, packets: usize) -> Self {
        self.queue_packets = Some(packets);
        self
    }

    pub fn with_drop_rate(mut self, model: BurstCapped) -> Self {
        self.drop_rate = Some(model);
        self
    }

    pub fn with_corrupt_rate(mut self, model: BurstCapped) -> Self {
        self.corrupt_rate = Some(model);
        self
    }

    /// Drops the datagrams with these 1-based arrival indices.
    pub fn with_drop_list(mut self, indices: impl IntoIterator<Item = u64>) -> Self {
        self.drop_list = indices.into_iter().collect();
        self
    }

    /// Adds a blackhole window `[start, end)` relative to the link's epoch.
    pub fn with_blackhole(mut self, start: Duration, end: Duration) -> Self {
        self.blackholes.push((start, end));
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
    /// Random and Gilbert–Elliott loss.
    pub dropped_loss: u64,
    /// Tail drops at the bottleneck (byte or packet bound).
    pub dropped_queue: u64,
    pub dropped_mtu: u64,
    /// Dropped by the drop-rate model.
    pub dropped_rate: u64,
    /// Dropped because the index was in the drop list.
    pub dropped_list: u64,
    /// Dropped inside a blackhole window.
    pub dropped_blackhole: u64,
    pub duplicated: u64,
    /// Datagrams with 1–3 bits flipped (`LinkConfig::corrupt`).
    pub corrupted: u64,
    /// Datagrams with a byte replaced by the corrupt-rate model.
    pub corrupted_rate: u64,
    /// Version Negotiation packets the corrupt-rate model left alone.
    pub corrupt_rate_spared_vn: u64,
    pub reordered: u64,
    pub bytes_sent: u64,
    pub bytes_delivered: u64,
}

impl LinkStats {
    pub fn dropped(&self) -> u64 {
        self.dropped_loss + self.dropped_queue + self.dropped_mtu + self.dropped_rate + self.dropped_list + self.dropped_blackhole
    }
}

/// A datagram coming out of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Sequence number of the `send` call on this link, starting at 0
    /// (a duplicate carries its original's id).
    pub id: u64,
    /// The caller's value from [`Link::send_tagged`] (0 from
    /// [`Link::send`]), e.g. the relay's flow and ECN codepoint.
    pub tag: u64,
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
    /// The drop-rate model picked it.
    Rate,
    /// Its index was in the drop list.
    List,
    /// It arrived inside a blackhole window.
    Blackhole,
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
    /// Origin of the blackhole windows; the first `send` if not set.
    epoch: Option<Instant>,
    /// Consecutive picks of the drop-rate / corrupt-rate models.
    drop_rate_run: u32,
    corrupt_rate_run: u32,
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
            epoch: None,
            drop_rate_run: 0,
            corrupt_rate_run: 0,
        }
    }

    /// Sets the origin of the blackhole windows (by default the `now` of the
    /// first `send`). The relay sets it to its start, as ns-3 counts from
    /// the simulator's start.
    pub fn set_epoch(&mut self, epoch: Instant) {
        self.epoch = Some(epoch);
    }

    /// The origin of the blackhole windows, once known.
    pub fn epoch(&self) -> Option<Instant> {
        self.epoch
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
        chance(&mut self.rng, p)
    }

    /// Inside one of the blackhole windows at `now`?
    fn in_blackhole(&self, now: Instant) -> bool {
        let Some(since) = self.epoch.and_then(|epoch| now.checked_duration_since(epoch)) else {
            // Before the epoch: the windows are relative to it, so none has
            // started yet.
            return false;
        };
        self.config.blackholes.iter().any(|&(start, end)| start <= since && since < end)
    }

    /// Replaces one byte at a uniform offset in `[0, min(50, len - 1)]` by a
    /// different uniform value (spec, "Scenario semantics", corrupt-rate:
    /// the first bytes, so the QUIC header is hit often). False for an
    /// empty datagram.
    fn corrupt_byte(&mut self, data: &mut [u8]) -> bool {
        let Some(last) = data.len().checked_sub(1) else {
            return false;
        };
        let offset = self.rng.below(last.min(50) as u64 + 1) as usize;
        if let Some(byte) = data.get_mut(offset) {
            // XOR with 1..=255: uniform over the 255 other values.
            *byte ^= (1 + self.rng.below(255)) as u8;
            return true;
        }
        false
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
        let flip = if self.in_bad_state { ge.p_bad_to_good } else { ge.p_good_to_bad };
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
        self.send_tagged(now, data, 0)
    }

    /// Puts a datagram on the link at `now`; `tag` comes back with it (and
    /// with its duplicate) in [`Datagram::tag`].
    pub fn send_tagged(&mut self, now: Instant, data: Vec<u8>, tag: u64) -> Fate {
        let id = self.next_id;
        self.next_id += 1;
        self.stats.sent += 1;
        self.stats.bytes_sent += data.len() as u64;
        if self.epoch.is_none() {
            self.epoch = Some(now);
        }

        // Arrival at the link: the drop list counts every datagram that
        // arrives, whatever happens to it later.
        if !self.config.drop_list.is_empty() && self.config.drop_list.contains(&(id + 1)) {
            self.stats.dropped_list += 1;
            return Fate::Dropped(DropReason::List);
        }
        if self.in_blackhole(now) {
            self.stats.dropped_blackhole += 1;
            return Fate::Dropped(DropReason::Blackhole);
        }

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
                if let Some(cap) = self.config.queue_packets {
                    if self.queue.len() >= cap {
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

        // The runner's drop-rate model sees what reached the far end of the
        // wire.
        if let Some(model) = self.config.drop_rate {
            if burst_capped_pick(&mut self.rng, model, &mut self.drop_rate_run) {
                self.stats.dropped_rate += 1;
                return Fate::Dropped(DropReason::Rate);
            }
        }

        let mut data = data;
        if let Some(model) = self.config.corrupt_rate {
            if is_version_negotiation(&data) {
                // ns-3 never corrupts VN (a corrupted Initial version field
                // legitimately triggers one) and resets the run.
                self.corrupt_rate_run = 0;
                self.stats.corrupt_rate_spared_vn += 1;
            } else if burst_capped_pick(&mut self.rng, model, &mut self.corrupt_rate_run) && self.corrupt_byte(&mut data) {
                self.stats.corrupted_rate += 1;
            }
        }
        if self.chance(self.config.corrupt) && self.corrupt(&mut data) {
            self.stats.corrupted += 1;
        }

        let jitter = self.uniform(self.config.jitter);
        let mut arrival = on_wire + self.config.delay + jitter;
        if self.chance(self.config.reorder) {
            self.stats.reordered += 1;
            arrival += self.config.reorder_delay;
            if let Some(max) = self.config.reorder_delay_max {
                if let Some(spread) = max.checked_sub(self.config.reorder_delay) {
                    arrival += self.uniform(spread);
                }
            }
        } else {
            if let Some(last) = self.last_in_order_arrival {
                arrival = arrival.max(last);
            }
            self.last_in_order_arrival = Some(arrival);
        }

        let duplicate = self.chance(self.config.duplicate);
        let dgram = Datagram { id, tag, data, sent_at: now, arrives_at: arrival };
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

fn chance(rng: &mut SeededRandom, p: f64) -> bool {
    p > 0.0 && (p >= 1.0 || rng.unit() < p)
}

/// One step of a [`BurstCapped`] selection; `run` counts the consecutive
/// picks so far. A datagram forced through by the cap draws nothing.
fn burst_capped_pick(rng: &mut SeededRandom, model: BurstCapped, run: &mut u32) -> bool {
    if model.max_burst > 0 && *run >= model.max_burst {
        *run = 0;
        return false;
    }
    if chance(rng, model.probability) {
        *run = run.saturating_add(1);
        true
    } else {
        *run = 0;
        false
    }
}

/// A QUIC Version Negotiation packet: long header form bit set and a zero
/// version field (RFC 9000, section 17.2.1).
pub fn is_version_negotiation(data: &[u8]) -> bool {
    matches!(data, [first, 0, 0, 0, 0, ..] if first & 0x80 != 0)
}

// ---- Scenarios ------------------------------------------------------------

/// Which direction(s) a scenario parameter applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Both,
    ToServer,
    ToClient,
}

impl Direction {
    fn to_server(self) -> bool {
        matches!(self, Self::Both | Self::ToServer)
    }

    fn to_client(self) -> bool {
        matches!(self, Self::Both | Self::ToClient)
    }

    fn name(self) -> &'static str {
        match self {
            Self::Both => "both",
            Self::ToServer => "toserver",
            Self::ToClient => "toclient",
        }
    }
}

/// Why a scenario string was rejected. Each variant carries the offending
/// part of the string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScenarioError {
    /// The string (or one `+` part of it) is empty.
    Empty,
    /// The first part names no known scenario.
    UnknownScenario(String),
    /// A `+` part names no known modifier.
    UnknownModifier(String),
    /// A part has the wrong number of `:`-separated arguments.
    Arity { part: String, expected: &'static str, got: usize },
    /// Not a non-negative integer (a burst, a queue size, an MTU, a repeat
    /// count).
    BadNumber(String),
    /// Not a percentage in [0, 100].
    BadPercent(String),
    /// Not a duration with a unit (`ns`, `us`, `ms`, `s`).
    BadDuration(String),
    /// Not a bit rate (`50mbit`, `10Mbps`, `1gbit`, `inf`).
    BadRate(String),
    /// A range whose minimum exceeds its maximum.
    BadRange(String),
    /// Not `both`, `toserver` or `toclient`.
    BadDirection(String),
    /// A drop-list entry that is not an index ≥ 1.
    BadIndex(String),
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "empty scenario (or empty '+' part)"),
            Self::UnknownScenario(s) => write!(f, "unknown scenario {s:?} (base, long-rtt, delay, drop-rate, corrupt-rate, droplist, blackhole)"),
            Self::UnknownModifier(s) => write!(f, "unknown modifier {s:?} (reorder, loss, bw, queue, qbytes, delay, jitter, dup, mtu)"),
            Self::Arity { part, expected, got } => write!(f, "{part:?}: expected {expected} argument(s), got {got}"),
            Self::BadNumber(s) => write!(f, "{s:?} is not a non-negative integer"),
            Self::BadPercent(s) => write!(f, "{s:?} is not a percentage in [0, 100]"),
            Self::BadDuration(s) => {
                write!(f, "{s:?} is not a duration with a unit (ns, us, ms, s)")
            }
            Self::BadRate(s) => write!(f, "{s:?} is not a bit rate (e.g. 50mbit, 10Mbps, inf)"),
            Self::BadRange(s) => write!(f, "{s:?}: the minimum exceeds the maximum"),
            Self::BadDirection(s) => {
                write!(f, "{s:?} is not a direction (both, toserver, toclient)")
            }
            Self::BadIndex(s) => write!(f, "{s:?} is not a datagram index (1-based)"),
        }
    }
}

impl std::error::Error for ScenarioError {}

/// A named network scenario of the quic-interop-runner as the pair of link
/// configurations (client→server, server→client). Every scenario is the
/// base link plus its own impairment, as the runner passes
/// `--delay=15ms --bandwidth=10Mbps --queue=25` to each (spec, "Common
/// rules"; semantics in "Scenario semantics").
///
/// # Grammar ([`Scenario::parse`])
///
/// ```text
/// scenario  = head *( "+" modifier )
/// head      = "base"
///           | "long-rtt"                                  ; delay 750 ms
///           | "delay:" DUR                                ; base with this one-way delay
///           | "drop-rate:" PCT ":" PCT [ ":" N ":" N ]    ; to server, to client, bursts
///           | "corrupt-rate:" PCT ":" PCT [ ":" N ":" N ]
///           | "droplist:" [ LIST ] ":" [ LIST ]           ; to server, to client
///           | "blackhole:" DUR ":" DUR [ ":" DIR [ ":" N ] ] ; on, off, direction, repeat
/// modifier  = "reorder:" PCT ":" DUR [ "-" DUR ]          ; probability, extra delay (range)
///           | "loss:" PCT | "dup:" PCT                    ; independent loss / duplication
///           | "bw:" RATE                                  ; bottleneck rate
///           | "queue:" N                                  ; queue bound in packets
///           | "qbytes:" N                                 ; queue bound in bytes
///           | "delay:" DUR | "jitter:" DUR                ; one-way delay / uniform jitter
///           | "mtu:" N                                    ; largest UDP payload
/// PCT       = decimal [ "%" ]                             ; 0..=100
/// DUR       = decimal ( "ns" | "us" | "ms" | "s" )
/// RATE      = decimal [ "bit" | "kbit" | "mbit" | "gbit" | "bps" | "kbps" | "mbps" | "gbps" ] | "inf"
/// LIST      = index *( "," index )                        ; 1-based
/// DIR       = "both" | "toserver" | "toclient"            ; default both
/// ```
///
/// Names, units and directions are case-insensitive. A burst of 0 (or
/// none given) means no cap; blackhole windows are `[on + k·(on+off),
/// (k+1)·(on+off))` for k in 0..repeat (ns-3's enable/disable schedule),
/// repeat ≥ 1, default 1. Modifiers apply to both directions and *set*
/// the value (`+delay:10ms` replaces the base 15 ms), in order, so a later
/// one wins. Examples: `base`, `drop-rate:30:30:3:3`,
/// `corrupt-rate:2:2:3:3`, `droplist:2,3,4,5,6,7:`, `blackhole:5s:2s`,
/// `delay:750ms`, `base+reorder:10%:5ms-20ms+loss:1%+bw:50mbit+queue:80`.
///
/// The base scenario sets no MTU (the runner's docker links have 1500,
/// i.e. 1472 bytes of UDP payload over IPv4): add `+mtu:1472` for that.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// The scenario in the grammar above (parsing it gives this scenario
    /// back).
    pub name: String,
    pub to_server: LinkConfig,
    pub to_client: LinkConfig,
}

impl Scenario {
    /// Base one-way delay: 15 ms (a 30 ms RTT).
    pub const BASE_DELAY: Duration = Duration::from_millis(15);
    /// Base bottleneck: 10 Mbit/s each way.
    pub const BASE_BANDWIDTH_BPS: u64 = 10_000_000;
    /// Base queue: ns-3 DropTail device queue of 1 + pfifo of 25 packets.
    pub const BASE_QUEUE_PACKETS: usize = 26;
    /// The longrtt test's one-way delay (RTT 1.5 s).
    pub const LONG_RTT_DELAY: Duration = Duration::from_millis(750);

    fn base_link() -> LinkConfig {
        LinkConfig::new(Self::BASE_DELAY).with_bandwidth(Self::BASE_BANDWIDTH_BPS).with_queue_packets(Self::BASE_QUEUE_PACKETS)
    }

    fn symmetric(name: String, link: LinkConfig) -> Self {
        Self { name, to_server: link.clone(), to_client: link }
    }

    /// `simple-p2p --delay=15ms --bandwidth=10Mbps --queue=25`.
    pub fn base() -> Self {
        Self::symmetric("base".into(), Self::base_link())
    }

    /// The base link with another one-way delay.
    pub fn delay(one_way: Duration) -> Self {
        let mut link = Self::base_link();
        link.delay = one_way;
        Self::symmetric(format!("delay:{}", fmt_duration(one_way)), link)
    }

    /// The longrtt test: 750 ms one-way.
    pub fn long_rtt() -> Self {
        let mut s = Self::delay(Self::LONG_RTT_DELAY);
        s.name = "long-rtt".into();
        s
    }

    /// `drop-rate --rate_to_server --rate_to_client --burst_to_server
    /// --burst_to_client`; rates in percent, a burst of 0 is uncapped.
    pub fn drop_rate(to_server_pct: f64, to_client_pct: f64, burst_to_server: u32, burst_to_client: u32) -> Self {
        Self {
            name: format!("drop-rate:{to_server_pct}:{to_client_pct}:{burst_to_server}:{burst_to_client}"),
            to_server: Self::base_link().with_drop_rate(BurstCapped::new(to_server_pct / 100.0, burst_to_server)),
            to_client: Self::base_link().with_drop_rate(BurstCapped::new(to_client_pct / 100.0, burst_to_client)),
        }
    }

    /// `corrupt-rate`, same shape as [`Scenario::drop_rate`].
    pub fn corrupt_rate(to_server_pct: f64, to_client_pct: f64, burst_to_server: u32, burst_to_client: u32) -> Self {
        Self {
            name: format!("corrupt-rate:{to_server_pct}:{to_client_pct}:{burst_to_server}:{burst_to_client}"),
            to_server: Self::base_link().with_corrupt_rate(BurstCapped::new(to_server_pct / 100.0, burst_to_server)),
            to_client: Self::base_link().with_corrupt_rate(BurstCapped::new(to_client_pct / 100.0, burst_to_client)),
        }
    }

    /// `droplist --drops_to_server --drops_to_client` (1-based indices).
    pub fn droplist(to_server: Vec<u64>, to_client: Vec<u64>) -> Self {
        let list = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
        Self {
            name: format!("droplist:{}:{}", list(&to_server), list(&to_client)),
            to_server: Self::base_link().with_drop_list(to_server),
            to_client: Self::base_link().with_drop_list(to_client),
        }
    }

    /// `blackhole --on --off --direction`, once.
    pub fn blackhole(on: Duration, off: Duration, direction: Direction) -> Self {
        Self::blackhole_repeated(on, off, direction, 1)
    }

    /// `blackhole --on --off --direction --repeat`: windows
    /// `[on + k·(on+off), (k+1)·(on+off))` for k in 0..repeat (0 is taken
    /// as 1).
    pub fn blackhole_repeated(on: Duration, off: Duration, direction: Direction, repeat: u32) -> Self {
        let repeat = repeat.max(1);
        let period = on + off;
        let windows: Vec<_> = (0..repeat).map(|k| (on + period * k, period * (k + 1))).collect();
        let with = |apply: bool| {
            let mut link = Self::base_link();
            if apply {
                link.blackholes.clone_from(&windows);
            }
            link
        };
        let mut name = format!("blackhole:{}:{}", fmt_duration(on), fmt_duration(off));
        if direction != Direction::Both || repeat != 1 {
            name.push(':');
            name.push_str(direction.name());
        }
        if repeat != 1 {
            name.push_str(&format!(":{repeat}"));
        }
        Self { name, to_server: with(direction.to_server()), to_client: with(direction.to_client()) }
    }

    /// The (client→server, server→client) link configurations.
    pub fn links(&self) -> (LinkConfig, LinkConfig) {
        (self.to_server.clone(), self.to_client.clone())
    }

    /// Parses the grammar in the type's documentation.
    pub fn parse(s: &str) -> Result<Self, ScenarioError> {
        let s = s.trim();
        let mut parts = s.split('+');
        let head = parts.next().unwrap_or_default().trim();
        let mut scenario = Self::parse_head(head)?;
        for part in parts {
            apply_modifier(&mut scenario.to_server, part.trim())?;
            apply_modifier(&mut scenario.to_client, part.trim())?;
        }
        scenario.name = s.to_string();
        Ok(scenario)
    }

    fn parse_head(head: &str) -> Result<Self, ScenarioError> {
        if head.is_empty() {
            return Err(ScenarioError::Empty);
        }
        let (name, args) = split_part(head);
        let arity = |expected: &'static str, ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(ScenarioError::Arity { part: head.to_string(), expected, got: args.len() })
            }
        };
        match name.as_str() {
            "base" | "simple-p2p" => {
                arity("0", args.is_empty())?;
                Ok(Self::base())
            }
            "long-rtt" | "longrtt" => {
                arity("0", args.is_empty())?;
                Ok(Self::long_rtt())
            }
            "delay" => {
                arity("1", args.len() == 1)?;
                Ok(Self::delay(parse_duration(args[0])?))
            }
            "drop-rate" | "corrupt-rate" => {
                arity("2 or 4", args.len() == 2 || args.len() == 4)?;
                let to_server = parse_percent(args[0])?;
                let to_client = parse_percent(args[1])?;
                let (bs, bc) = if args.len() == 4 { (parse_u32(args[2])?, parse_u32(args[3])?) } else { (0, 0) };
                Ok(if name == "drop-rate" { Self::drop_rate(to_server, to_client, bs, bc) } else { Self::corrupt_rate(to_server, to_client, bs, bc) })
            }
            "droplist" => {
                arity("2", args.len() == 2)?;
                Ok(Self::droplist(parse_index_list(args[0])?, parse_index_list(args[1])?))
            }
            "blackhole" => {
                arity("2 to 4", (2..=4).contains(&args.len()))?;
                let on = parse_duration(args[0])?;
                let off = parse_duration(args[1])?;
                let direction = match args.get(2) {
                    Some(d) => parse_direction(d)?,
                    None => Direction::Both,
                };
                let repeat = match args.get(3) {
                    Some(r) => match parse_u32(r)? {
                        0 => return Err(ScenarioError::BadNumber((*r).to_string())),
                        n => n,
                    },
                    None => 1,
                };
                Ok(Self::blackhole_repeated(on, off, direction, repeat))
            }
            _ => Err(ScenarioError::UnknownScenario(head.to_string())),
        }
    }
}

impl FromStr for Scenario {
    type Err = ScenarioError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// Applies one `+` modifier to a link.
fn apply_modifier(link: &mut LinkConfig, part: &str) -> Result<(), ScenarioError> {
    if part.is_empty() {
        return Err(ScenarioError::Empty);
    }
    let (name, args) = split_part(part);
    let one = || {
        if args.len() == 1 {
            Ok(args[0])
        } else {
            Err(ScenarioError::Arity { part: part.to_string(), expected: "1", got: args.len() })
        }
    };
    match name.as_str() {
        "reorder" => {
            if args.len() != 2 {
                return Err(ScenarioError::Arity { part: part.to_string(), expected: "2", got: args.len() });
            }
            let p = parse_percent(args[0])? / 100.0;
            match args[1].split_once('-') {
                Some((lo, hi)) => {
                    let (lo, hi) = (parse_duration(lo)?, parse_duration(hi)?);
                    if lo > hi {
                        return Err(ScenarioError::BadRange(args[1].to_string()));
                    }
                    link.reorder = p;
                    link.reorder_delay = lo;
                    link.reorder_delay_max = Some(hi);
                }
                None => {
                    link.reorder = p;
                    link.reorder_delay = parse_duration(args[1])?;
                    link.reorder_delay_max = None;
                }
            }
        }
        "loss" => link.loss = parse_percent(one()?)? / 100.0,
        "dup" => link.duplicate = parse_percent(one()?)? / 100.0,
        "bw" => link.bandwidth_bps = parse_rate(one()?)?,
        "queue" => link.queue_packets = Some(parse_usize(one()?)?),
        "qbytes" => link.queue_capacity = Some(parse_usize(one()?)?),
        "delay" => link.delay = parse_duration(one()?)?,
        "jitter" => link.jitter = parse_duration(one()?)?,
        "mtu" => link.mtu = parse_usize(one()?)?,
        _ => return Err(ScenarioError::UnknownModifier(part.to_string())),
    }
    Ok(())
}

/// `name:arg:arg…` → lower-cased name and the raw (trimmed) arguments.
fn split_part(part: &str) -> (String, Vec<&str>) {
    let mut it = part.split(':');
    let name = it.next().unwrap_or_default().trim().to_ascii_lowercase();
    (name, it.map(str::trim).collect())
}

fn parse_u64(s: &str) -> Result<u64, ScenarioError> {
    let t = s.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ScenarioError::BadNumber(s.to_string()));
    }
    t.parse().map_err(|_| ScenarioError::BadNumber(s.to_string()))
}

fn parse_u32(s: &str) -> Result<u32, ScenarioError> {
    u32::try_from(parse_u64(s)?).map_err(|_| ScenarioError::BadNumber(s.to_string()))
}

fn parse_usize(s: &str) -> Result<usize, ScenarioError> {
    usize::try_from(parse_u64(s)?).map_err(|_| ScenarioError::BadNumber(s.to_string()))
}

/// A plain non-negative decimal ("2", "2.5"); no signs, exponents or
/// special values.
fn parse_decimal(s: &str) -> Option<f64> {
    let t = s.trim();
    let digits = t.bytes().filter(u8::is_ascii_digit).count();
    let dots = t.bytes().filter(|&b| b == b'.').count();
    if digits == 0 || dots > 1 || digits + dots != t.len() {
        return None;
    }
    t.parse().ok()
}

fn parse_percent(s: &str) -> Result<f64, ScenarioError> {
    let t = s.trim();
    let t = t.strip_suffix('%').unwrap_or(t);
    match parse_decimal(t) {
        Some(v) if (0.0..=100.0).contains(&v) => Ok(v),
        _ => Err(ScenarioError::BadPercent(s.to_string())),
    }
}

fn parse_duration(s: &str) -> Result<Duration, ScenarioError> {
    let bad = || ScenarioError::BadDuration(s.to_string());
    let t = s.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
    let (num, unit) = t.split_at(split);
    let nanos_per_unit: u64 = match unit {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        _ => return Err(bad()),
    };
    if !num.contains('.') {
        let n = parse_u64(num).map_err(|_| bad())?;
        return n.checked_mul(nanos_per_unit).map(Duration::from_nanos).ok_or_else(bad);
    }
    let v = parse_decimal(num).ok_or_else(bad)?;
    Duration::try_from_secs_f64(v * nanos_per_unit as f64 / 1e9).map_err(|_| bad())
}

/// Bits per second; `None` for `inf` (no bottleneck).
fn parse_rate(s: &str) -> Result<Option<u64>, ScenarioError> {
    let bad = || ScenarioError::BadRate(s.to_string());
    let t = s.trim().to_ascii_lowercase();
    if t == "inf" || t == "none" {
        return Ok(None);
    }
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let scale: f64 = match unit {
        "" | "bit" | "bps" => 1.0,
        "kbit" | "kbps" => 1e3,
        "mbit" | "mbps" => 1e6,
        "gbit" | "gbps" => 1e9,
        _ => return Err(bad()),
    };
    let v = parse_decimal(num).ok_or_else(bad)? * scale;
    if !(1.0..=1e15).contains(&v) {
        return Err(bad());
    }
    Ok(Some(v.round() as u64))
}

fn parse_direction(s: &str) -> Result<Direction, ScenarioError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "both" => Ok(Direction::Both),
        "toserver" | "to-server" | "to_server" => Ok(Direction::ToServer),
        "toclient" | "to-client" | "to_client" => Ok(Direction::ToClient),
        _ => Err(ScenarioError::BadDirection(s.to_string())),
    }
}

fn parse_index_list(s: &str) -> Result<Vec<u64>, ScenarioError> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|i| match parse_u64(i) {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(ScenarioError::BadIndex(i.to_string())),
        })
        .collect()
}

/// The shortest exact spelling of a duration in the grammar's units.
fn fmt_duration(d: Duration) -> String {
    let n = d.as_nanos();
    if n.is_multiple_of(1_000_000_000) {
        format!("{}s", n / 1_000_000_000)
    } else if n.is_multiple_of(1_000_000) {
        format!("{}ms", n / 1_000_000)
    } else if n.is_multiple_of(1_000) {
        format!("{}us", n / 1_000)
    } else {
        format!("{n}ns")
    }
}

// ----- ECN middleboxes ------------------------------------------------------

/// Rewrites the ECN codepoint of datagrams leaving a link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EcnMangle {
    /// Clears every codepoint to Not-ECT (a bleaching middlebox).
    Bleach,
    /// Marks an ECT(0)/ECT(1) datagram CE with this probability (an AQM
    /// signalling congestion).
    SetCe(f64),
    /// Rewrites any ECT codepoint to this one (0–3), e.g. ECT(0) → ECT(1).
    Remark(u8),
}

impl EcnMangle {
    /// The codepoint (two bits) after the middlebox.
    pub fn apply(self, ecn: u8, rng: &mut SeededRandom) -> u8 {
        let ect = ecn == 1 || ecn == 2;
        match self {
            Self::Bleach => 0,
            Self::SetCe(p) if ect && p > 0.0 && (p >= 1.0 || rng.unit() < p) => 3,
            Self::SetCe(_) => ecn,
            Self::Remark(to) if ect => to & 3,
            Self::Remark(_) => ecn,
        }
    }
}

/// A malformed [`EcnMangle`] string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadEcnMangle(pub String);

impl fmt::Display for BadEcnMangle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not an ECN mangling (bleach, ce:PROBABILITY, ect0, ect1, ce)", self.0)
    }
}

impl std::error::Error for BadEcnMangle {}

impl FromStr for EcnMangle {
    type Err = BadEcnMangle;

    /// `bleach`, `ce:0.05` (probability), `ect0`, `ect1`, `ce` (remark).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadEcnMangle(s.to_string());
        match s.trim().to_ascii_lowercase().as_str() {
            "bleach" => Ok(Self::Bleach),
            "ect0" => Ok(Self::Remark(2)),
            "ect1" => Ok(Self::Remark(1)),
            "ce" => Ok(Self::Remark(3)),
            other => {
                let p: f64 = other.strip_prefix("ce:").ok_or_else(bad)?.parse().map_err(|_| bad())?;
                if (0.0..=1.0).contains(&p) {
                    Ok(Self::SetCe(p))
                } else {
                    Err(bad())
                }
            }
        }
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
        assert_eq!(link.poll_deliver(t0 + 11 * MS - Duration::from_nanos(1)), None);
        let d0 = link.poll_deliver(t0 + 11 * MS).unwrap();
        assert_eq!((d0.id, d0.arrives_at, d0.sent_at), (0, t0 + 11 * MS, t0));
        // Back to back: each waits for the previous one's serialization.
        assert_eq!(link.next_delivery_time(), Some(t0 + 12 * MS));
        assert_eq!(link.poll_deliver(t0 + 11 * MS), None);
        let rest: Vec<_> = (0..2).map(|_| link.poll_deliver(t0 + 20 * MS).unwrap()).collect();
        assert_eq!(rest[0].arrives_at, t0 + 12 * MS);
        assert_eq!(rest[1].arrives_at, t0 + 13 * MS);
        assert_eq!(link.poll_deliver(t0 + 1000 * MS), None);
        assert_eq!(link.next_delivery_time(), None);

        // After the bottleneck went idle, a datagram only pays its own
        // serialization: 500 bytes = 0.5 ms.
        let t1 = t0 + 50 * MS;
        assert_eq!(link.send(t1, vec![0; 500]), Fate::Scheduled(t1 + 10 * MS + MS / 2));

        let s = link.stats();
        assert_eq!((s.sent, s.delivered, s.bytes_sent, s.bytes_delivered), (4, 3, 3500, 3000));
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
        assert!(got.iter().enumerate().all(|(i, d)| d.id == i as u64 && d.data[0] == i as u8));
    }

    #[test]
    fn jitter_stays_in_range_and_keeps_order() {
        let t0 = base();
        let mut link = Link::new(LinkConfig::new(10 * MS).with_jitter(5 * MS), 3);
        for i in 0..1000u32 {
            link.send(t0 + i * Duration::from_micros(100), i.to_be_bytes().to_vec());
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
        assert!(distinct_delays.len() > 500, "jitter varies: {}", distinct_delays.len());
    }

    // ---- Link: queue and MTU ---------------------------------------------

    #[test]
    fn queue_tail_drops_and_counts() {
        let t0 = base();
        let cfg = LinkConfig::new(10 * MS).with_bandwidth(8_000_000).with_queue(5000);
        let mut link = Link::new(cfg, 1);
        let fates: Vec<_> = (0..10).map(|_| link.send(t0, vec![0; 1000])).collect();
        assert!(fates[..5].iter().all(|f| matches!(f, Fate::Scheduled(_))));
        assert!(fates[5..].iter().all(|f| *f == Fate::Dropped(DropReason::Queue)));
        assert_eq!(link.stats().dropped_queue, 5);
        assert_eq!(link.queued_bytes(t0), 5000);

        // After 2 ms two datagrams have left the queue: room for two more.
        let t1 = t0 + 2 * MS;
        assert_eq!(link.queued_bytes(t1), 3000);
        assert_eq!(link.send(t1, vec![0; 1000]), Fate::Scheduled(t0 + 16 * MS));
        assert_eq!(link.send(t1, vec![0; 1000]), Fate::Scheduled(t0 + 17 * MS));
        assert_eq!(link.send(t1, vec![0; 1000]), Fate::Dropped(DropReason::Queue));
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
            assert!((lost - expected).abs() < band, "p={p}: lost {lost}, want {expected}±{band}");
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
        let ge = GilbertElliott { p_good_to_bad: 0.05, p_bad_to_good: 0.3, loss_in_bad: 1.0 };
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
        assert!((140..260).contains(&s.reordered), "reordered {}", s.reordered);
        // A held-back datagram arrives 15 ms after it was sent, after the
        // ones sent up to 5 ms later: count the overtaken pairs.
        let inversions = got.windows(2).filter(|w| w[0].id > w[1].id).count();
        assert!(inversions > 100, "inversions {inversions}");
        for d in &got {
            let delay = d.arrives_at - d.sent_at;
            assert!(delay == 10 * MS || delay == 15 * MS, "{delay:?}");
        }
        let late = got.iter().filter(|d| d.arrives_at - d.sent_at == 15 * MS).count();
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
        assert!((50..150).contains(&s.duplicated), "duplicated {}", s.duplicated);
        assert_eq!(got.len() as u64, 1000 + s.duplicated);
        assert_eq!(s.delivered, 1000 + s.duplicated);
        let mut seen = vec![0u32; 1000];
        for d in &got {
            assert_eq!(d.data, (d.id as u32).to_be_bytes().to_vec());
            seen[d.id as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n == 1 || n == 2));
        assert_eq!(seen.iter().filter(|&&n| n == 2).count() as u64, s.duplicated);
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
                link.send(t0 + i * Duration::from_micros(300), vec![(i % 251) as u8; 1000]);
            }
            let got: Vec<_> = drain_all(&mut link).into_iter().map(|d| (d.id, d.arrives_at, d.data)).collect();
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
}

/// The interop runner's scenario semantics (spec, "Scenario semantics") and
/// the scenario grammar.
#[cfg(test)]
mod scenario_tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const SEC: Duration = Duration::from_secs(1);

    fn drain_all(link: &mut Link) -> Vec<Datagram> {
        let mut out = Vec::new();
        while let Some(t) = link.next_delivery_time() {
            out.push(link.poll_deliver(t).unwrap());
        }
        out
    }

    /// Longest run of `true`.
    fn longest_run(picks: &[bool]) -> usize {
        let (mut best, mut cur) = (0, 0);
        for &p in picks {
            cur = if p { cur + 1 } else { 0 };
            best = best.max(cur);
        }
        best
    }

    // ---- drop-rate ---------------------------------------------------------

    #[test]
    fn drop_rate_caps_bursts_and_matches_the_mean_rate() {
        let t0 = Instant::now();
        const N: usize = 100_000;
        for (seed, p, burst) in [(1u64, 0.3, 3u32), (2, 0.02, 3), (3, 0.5, 0), (4, 0.9, 2)] {
            let model = BurstCapped::new(p, burst);
            let mut link = Link::new(LinkConfig::default().with_drop_rate(model), seed);
            let picks: Vec<bool> = (0..N).map(|_| link.send(t0, vec![0; 100]) == Fate::Dropped(DropReason::Rate)).collect();
            let dropped = picks.iter().filter(|&&d| d).count();
            let s = link.stats();
            assert_eq!(s.dropped_rate, dropped as u64);
            assert_eq!(s.dropped(), dropped as u64);
            assert_eq!(drain_all(&mut link).len(), N - dropped);

            let longest = longest_run(&picks);
            if burst > 0 {
                // The cap is reached but never exceeded.
                assert_eq!(longest, burst as usize, "p={p} burst={burst}");
            } else {
                assert!(longest > 10, "uncapped p=0.5 has long runs: {longest}");
            }
            let rate = dropped as f64 / N as f64;
            let want = model.mean_rate();
            assert!((rate - want).abs() < 0.01, "p={p} burst={burst}: rate {rate}, expected {want} ± 1 %");
        }
        // The formula itself: p=0.3, cap 3 → 0.417 / 1.417.
        let m = BurstCapped::new(0.3, 3).mean_rate();
        assert!((m - 0.417 / 1.417).abs() < 1e-12);
    }

    #[test]
    fn drop_rate_forces_the_datagram_after_a_full_burst_through() {
        let t0 = Instant::now();
        let mut link = Link::new(LinkConfig::default().with_drop_rate(BurstCapped::new(1.0, 3)), 9);
        let fates: Vec<bool> = (0..12).map(|_| matches!(link.send(t0, vec![1]), Fate::Scheduled(_))).collect();
        let pattern = [false, false, false, true];
        assert_eq!(fates, pattern.repeat(3));
    }

    // ---- corrupt-rate ------------------------------------------------------

    #[test]
    fn corrupt_rate_replaces_one_byte_within_the_first_51() {
        let t0 = Instant::now();
        let original: Vec<u8> = (0..200u8).collect();
        let mut link = Link::new(LinkConfig::new(MS).with_corrupt_rate(BurstCapped::new(1.0, 0)), 5);
        for _ in 0..5000 {
            link.send(t0, original.clone());
        }
        let got = drain_all(&mut link);
        assert_eq!(got.len(), 5000, "corrupted datagrams are delivered");
        let mut offsets = [0u32; 51];
        for d in &got {
            assert_eq!(d.data.len(), original.len());
            let diff: Vec<usize> = (0..original.len()).filter(|&i| d.data[i] != original[i]).collect();
            assert_eq!(diff.len(), 1, "exactly one byte differs");
            assert!(diff[0] <= 50, "offset {}", diff[0]);
            offsets[diff[0]] += 1;
        }
        // Uniform over all 51 offsets (expected ~98 each).
        assert!(offsets.iter().all(|&n| n > 40), "{offsets:?}");
        let s = link.stats();
        assert_eq!((s.corrupted_rate, s.corrupted, s.dropped()), (5000, 0, 0));

        // Short datagrams: the offset stays inside; a 1-byte datagram is
        // always hit at 0 and gets a different value.
        for len in [1usize, 2, 10, 51, 52] {
            let data = vec![0x5a; len];
            for _ in 0..200 {
                link.send(t0, data.clone());
            }
            for d in drain_all(&mut link) {
                let diff: Vec<usize> = (0..len).filter(|&i| d.data[i] != 0x5a).collect();
                assert_eq!(diff.len(), 1);
                assert!(diff[0] < len.min(51));
            }
        }
        // An empty datagram cannot be corrupted and is not counted.
        let before = link.stats().corrupted_rate;
        link.send(t0, Vec::new());
        assert_eq!(drain_all(&mut link)[0].data, Vec::<u8>::new());
        assert_eq!(link.stats().corrupted_rate, before);
    }

    #[test]
    fn corrupt_rate_caps_bursts_and_matches_the_mean_rate() {
        let t0 = Instant::now();
        const N: usize = 100_000;
        let model = BurstCapped::new(0.3, 3);
        let mut link = Link::new(LinkConfig::default().with_corrupt_rate(model), 21);
        let original = vec![0u8; 60];
        for _ in 0..N {
            link.send(t0, original.clone());
        }
        let picks: Vec<bool> = drain_all(&mut link).iter().map(|d| d.data != original).collect();
        assert_eq!(picks.len(), N);
        assert_eq!(longest_run(&picks), 3);
        let n = picks.iter().filter(|&&p| p).count();
        assert_eq!(link.stats().corrupted_rate, n as u64);
        let rate = n as f64 / N as f64;
        assert!((rate - model.mean_rate()).abs() < 0.01, "rate {rate}");
    }

    #[test]
    fn corrupt_rate_never_touches_version_negotiation() {
        let t0 = Instant::now();
        // A VN packet: long header, version 0, then CIDs and versions.
        let vn = [&[0xc5u8, 0, 0, 0, 0, 4][..], &[9; 4], &[4], &[8; 4], &[0, 0, 0, 1]].concat();
        assert!(is_version_negotiation(&vn));
        let initial = [&[0xc0u8, 0, 0, 0, 1][..], &[7; 60]].concat();
        // A short header whose next bytes happen to be zero is not VN.
        let short = [&[0x40u8, 0, 0, 0, 0][..], &[7; 60]].concat();
        assert!(!is_version_negotiation(&initial) && !is_version_negotiation(&short));
        assert!(!is_version_negotiation(&[0x80, 0, 0, 0]));

        let mut link = Link::new(LinkConfig::new(MS).with_corrupt_rate(BurstCapped::new(1.0, 3)), 4);
        // Picks 1, 2, then VN (untouched, ends the run), then 1, 2, 3, a
        // forced pass, and a pick again.
        let sends = [&initial, &short, &vn, &initial, &initial, &short, &initial, &short];
        for d in sends {
            link.send(t0, d.clone());
        }
        let changed: Vec<bool> = drain_all(&mut link).iter().zip(sends).map(|(got, sent)| got.data != *sent).collect();
        assert_eq!(changed, [true, true, false, true, true, true, false, true]);
        let s = link.stats();
        assert_eq!((s.corrupted_rate, s.corrupt_rate_spared_vn), (6, 1));

        // With certainty and no cap, 1000 VN packets all arrive intact.
        let mut link = Link::new(LinkConfig::new(MS).with_corrupt_rate(BurstCapped::new(1.0, 0)), 8);
        for _ in 0..1000 {
            link.send(t0, vn.clone());
        }
        assert!(drain_all(&mut link).iter().all(|d| d.data == vn));
        assert_eq!(link.stats().corrupted_rate, 0);
    }

    // ---- droplist and blackhole ---------------------------------------------

    #[test]
    fn drop_list_drops_exactly_the_listed_arrivals() {
        let t0 = Instant::now();
        let cfg = Scenario::droplist(vec![2, 3, 4, 5, 6, 7], vec![]).to_server;
        let mut link = Link::new(cfg, 1);
        let fates: Vec<Fate> = (0..20u8).map(|i| link.send(t0 + u32::from(i) * MS, vec![i; 100])).collect();
        for (i, f) in fates.iter().enumerate() {
            let listed = (2..=7).contains(&(i + 1));
            assert_eq!(*f == Fate::Dropped(DropReason::List), listed, "datagram {}", i + 1);
        }
        let got: Vec<u8> = drain_all(&mut link).iter().map(|d| d.data[0]).collect();
        let want: Vec<u8> = [0u8].into_iter().chain(7..20).collect();
        assert_eq!(got, want);
        let s = link.stats();
        assert_eq!((s.dropped_list, s.dropped(), s.delivered, s.sent), (6, 6, 14, 20));

        // Every arrival counts, including ones the queue then drops, and a
        // listed datagram takes no room in the queue: 2 packets at a slow
        // rate; #1 queued, #2 listed, #3 queued, #4 tail-dropped, #5 listed.
        let cfg = LinkConfig::new(MS).with_bandwidth(8_000).with_queue_packets(2).with_drop_list([2, 5]);
        let mut link = Link::new(cfg, 1);
        let fates: Vec<Fate> = (0..5).map(|_| link.send(t0, vec![0; 100])).collect();
        assert!(matches!(fates[0], Fate::Scheduled(_)));
        assert_eq!(fates[1], Fate::Dropped(DropReason::List));
        assert!(matches!(fates[2], Fate::Scheduled(_)));
        assert_eq!(fates[3], Fate::Dropped(DropReason::Queue));
        assert_eq!(fates[4], Fate::Dropped(DropReason::List));
    }

    #[test]
    fn blackhole_window_edges_are_half_open() {
        let t0 = Instant::now();
        let ns = Duration::from_nanos(1);
        let cfg = LinkConfig::new(MS).with_blackhole(SEC, 3 * SEC);
        let mut link = Link::new(cfg.clone(), 1);
        link.set_epoch(t0);
        let at = |link: &mut Link, t: Duration| link.send(t0 + t, vec![0; 10]);
        assert!(matches!(at(&mut link, Duration::ZERO), Fate::Scheduled(_)));
        assert!(matches!(at(&mut link, SEC - ns), Fate::Scheduled(_)));
        assert_eq!(at(&mut link, SEC), Fate::Dropped(DropReason::Blackhole));
        assert_eq!(at(&mut link, 2 * SEC), Fate::Dropped(DropReason::Blackhole));
        assert_eq!(at(&mut link, 3 * SEC - ns), Fate::Dropped(DropReason::Blackhole));
        assert!(matches!(at(&mut link, 3 * SEC), Fate::Scheduled(_)));
        assert_eq!(link.stats().dropped_blackhole, 3);
        assert_eq!(link.stats().dropped(), 3);

        // Without set_epoch the first send is the epoch.
        let mut link = Link::new(cfg.clone(), 1);
        let t1 = t0 + 100 * SEC;
        assert!(matches!(link.send(t1, vec![1]), Fate::Scheduled(_)));
        assert_eq!(link.epoch(), Some(t1));
        assert_eq!(link.send(t1 + SEC, vec![1]), Fate::Dropped(DropReason::Blackhole));

        // Before a later epoch no window has started.
        let mut link = Link::new(cfg, 1);
        link.set_epoch(t0 + 10 * SEC);
        assert!(matches!(link.send(t0 + 2 * SEC, vec![1]), Fate::Scheduled(_)));

        // The runner's schedule: off during [on + k(on+off), (k+1)(on+off)).
        let s = Scenario::blackhole_repeated(5 * SEC, 2 * SEC, Direction::ToServer, 2);
        assert_eq!(s.to_server.blackholes, vec![(5 * SEC, 7 * SEC), (12 * SEC, 14 * SEC)]);
        assert!(s.to_client.blackholes.is_empty());
        let mut link = Link::new(s.to_server, 1);
        link.set_epoch(t0);
        let dropped: Vec<u64> = (0..16).filter(|&sec| link.send(t0 + sec * SEC, vec![0]) == Fate::Dropped(DropReason::Blackhole)).map(u64::from).collect();
        assert_eq!(dropped, vec![5, 6, 12, 13]);
    }

    // ---- queue ---------------------------------------------------------------

    #[test]
    fn packet_bounded_queue_tail_drops() {
        let t0 = Instant::now();
        // The base link: 10 Mbit/s, 26 packets, 15 ms. 1250 bytes take 1 ms.
        let mut link = Link::new(Scenario::base().to_server, 1);
        let fates: Vec<Fate> = (0..30).map(|_| link.send(t0, vec![0; 1250])).collect();
        for (k, f) in fates[..26].iter().enumerate() {
            assert_eq!(*f, Fate::Scheduled(t0 + 15 * MS + (k as u32 + 1) * MS));
        }
        assert!(fates[26..].iter().all(|f| *f == Fate::Dropped(DropReason::Queue)));
        // Small datagrams do not help: the bound counts packets.
        assert_eq!(link.send(t0, vec![0; 1]), Fate::Dropped(DropReason::Queue));
        // One left the queue after 1 ms: room for exactly one more.
        assert!(matches!(link.send(t0 + MS, vec![0; 1250]), Fate::Scheduled(_)));
        assert_eq!(link.send(t0 + MS, vec![0; 1250]), Fate::Dropped(DropReason::Queue));
        let s = link.stats();
        assert_eq!((s.dropped_queue, s.sent), (6, 33));
        assert_eq!(drain_all(&mut link).len(), 27);

        // With both bounds the tighter one applies.
        let cfg = LinkConfig::new(MS).with_bandwidth(8_000_000).with_queue(10_000).with_queue_packets(4);
        let mut link = Link::new(cfg, 1);
        let small = (0..6).filter(|_| matches!(link.send(t0, vec![0; 100]), Fate::Scheduled(_))).count();
        assert_eq!(small, 4);
        let mut link = Link::new(link.config().clone(), 1);
        let big = (0..6).filter(|_| matches!(link.send(t0, vec![0; 4000]), Fate::Scheduled(_))).count();
        assert_eq!(big, 2);
    }

    // ---- reorder range, tags, determinism ------------------------------------

    #[test]
    fn reorder_range_delays_uniformly_within_the_range() {
        let t0 = Instant::now();
        let cfg = LinkConfig::new(10 * MS).with_reorder_range(0.3, 5 * MS, 20 * MS);
        let mut link = Link::new(cfg, 12);
        for i in 0..2000u32 {
            link.send(t0 + i * MS, vec![0; 10]);
        }
        let got = drain_all(&mut link);
        assert_eq!(got.len(), 2000);
        let extras: Vec<Duration> = got.iter().map(|d| d.arrives_at - d.sent_at - 10 * MS).filter(|e| !e.is_zero()).collect();
        assert_eq!(extras.len() as u64, link.stats().reordered);
        assert!((500..700).contains(&extras.len()), "{}", extras.len());
        assert!(extras.iter().all(|e| (5 * MS..=20 * MS).contains(e)));
        let mean = extras.iter().sum::<Duration>() / extras.len() as u32;
        assert!((11 * MS..14 * MS).contains(&mean), "mean {mean:?}");
        assert!(got.windows(2).filter(|w| w[0].id > w[1].id).count() > 100);
    }

    #[test]
    fn tags_come_back_with_their_datagram_and_its_duplicate() {
        let t0 = Instant::now();
        let mut link = Link::new(LinkConfig::new(MS).with_duplicate(1.0), 1);
        link.send_tagged(t0, vec![1], 77);
        link.send(t0, vec![2]);
        let got: Vec<(u64, u64)> = drain_all(&mut link).iter().map(|d| (d.id, d.tag)).collect();
        assert_eq!(got, vec![(0, 77), (0, 77), (1, 0), (1, 0)]);
    }

    #[test]
    fn every_datagram_is_delivered_or_dropped_for_one_reason() {
        let t0 = Instant::now();
        let s = Scenario::parse("drop-rate:10:10:3:3+loss:5%+queue:20+bw:20mbit").unwrap();
        let mut cfg = s.to_server;
        cfg.drop_list = vec![3, 30, 300];
        cfg.blackholes = vec![(100 * MS, 200 * MS)];
        cfg.corrupt_rate = Some(BurstCapped::new(0.1, 2));
        cfg.mtu = 1400;
        let run = |seed| {
            let mut link = Link::new(cfg.clone(), seed);
            link.set_epoch(t0);
            let fates: Vec<Fate> = (0..3000u32).map(|i| link.send(t0 + i * Duration::from_micros(200), vec![0; 1000 + (i as usize % 500)])).collect();
            let got = drain_all(&mut link);
            (fates, got, link.stats())
        };
        let (fates, got, s) = run(5);
        assert_eq!(s.sent, 3000);
        assert_eq!(s.delivered, got.len() as u64);
        assert_eq!(s.sent, s.delivered + s.dropped());
        assert!(s.dropped_list == 3 && s.dropped_blackhole > 0 && s.dropped_mtu > 0);
        assert!(s.dropped_queue > 0 && s.dropped_loss > 0 && s.dropped_rate > 0);
        assert!(s.corrupted_rate > 0);
        // Same seed, same run; another seed, another run.
        let (fates2, got2, s2) = run(5);
        assert_eq!((&fates, &got, s), (&fates2, &got2, s2));
        let (fates3, _, _) = run(6);
        assert_ne!(fates, fates3);
    }

    // ---- Scenario presets and parser -------------------------------------------

    #[test]
    fn presets_match_the_spec_table() {
        let base = Scenario::base();
        for link in [&base.to_server, &base.to_client] {
            assert_eq!(link.delay, 15 * MS);
            assert_eq!(link.bandwidth_bps, Some(10_000_000));
            assert_eq!(link.queue_packets, Some(26));
            assert_eq!(link.queue_capacity, None);
            assert_eq!(link.mtu, MAX_UDP_PAYLOAD);
        }
        assert_eq!(base.links(), (base.to_server.clone(), base.to_client.clone()));

        let lr = Scenario::long_rtt();
        assert_eq!((lr.to_server.delay, lr.to_client.delay), (750 * MS, 750 * MS));
        assert_eq!(lr.to_server.bandwidth_bps, Some(10_000_000));

        let dr = Scenario::drop_rate(30.0, 20.0, 3, 0);
        assert_eq!(dr.to_server.drop_rate, Some(BurstCapped::new(0.3, 3)));
        assert_eq!(dr.to_client.drop_rate, Some(BurstCapped::new(0.2, 0)));
        assert_eq!(dr.to_server.delay, 15 * MS);

        let cr = Scenario::corrupt_rate(2.0, 2.0, 3, 3);
        assert_eq!(cr.to_client.corrupt_rate, Some(BurstCapped::new(0.02, 3)));
        assert_eq!(cr.to_client.drop_rate, None);

        let dl = Scenario::droplist(vec![2, 3], vec![1]);
        assert_eq!((dl.to_server.drop_list.clone(), dl.to_client.drop_list.clone()), (vec![2, 3], vec![1]));

        let bh = Scenario::blackhole(5 * SEC, 2 * SEC, Direction::Both);
        assert_eq!(bh.to_server.blackholes, vec![(5 * SEC, 7 * SEC)]);
        assert_eq!(bh.to_client.blackholes, vec![(5 * SEC, 7 * SEC)]);
        let bh = Scenario::blackhole(5 * SEC, 2 * SEC, Direction::ToClient);
        assert!(bh.to_server.blackholes.is_empty());

        // Each constructor's name parses back to the same scenario.
        for s in [
            Scenario::base(),
            Scenario::long_rtt(),
            Scenario::delay(Duration::from_micros(1500)),
            Scenario::drop_rate(30.0, 30.0, 3, 3),
            Scenario::drop_rate(2.5, 0.0, 0, 0),
            Scenario::corrupt_rate(2.0, 2.0, 3, 3),
            Scenario::droplist(vec![2, 3, 4, 5, 6, 7], vec![]),
            Scenario::droplist(vec![], vec![1, 10]),
            Scenario::blackhole(5 * SEC, 2 * SEC, Direction::Both),
            Scenario::blackhole_repeated(SEC, 500 * MS, Direction::ToServer, 3),
        ] {
            assert_eq!(Scenario::parse(&s.name), Ok(s.clone()), "{}", s.name);
            assert_eq!(s.to_string(), s.name);
        }
    }

    #[test]
    fn parser_accepts_the_grammar() {
        let p = |s: &str| Scenario::parse(s).unwrap();
        assert_eq!(p("base").links(), Scenario::base().links());
        assert_eq!(p("  BASE ").links(), Scenario::base().links());
        assert_eq!(p("long-rtt").links(), Scenario::long_rtt().links());
        assert_eq!(p("delay:750ms").links(), Scenario::long_rtt().links());
        assert_eq!(p("drop-rate:30:30:3:3").links(), Scenario::drop_rate(30.0, 30.0, 3, 3).links());
        assert_eq!(p("drop-rate:2%:2%").links(), Scenario::drop_rate(2.0, 2.0, 0, 0).links());
        assert_eq!(p("corrupt-rate:2:2:3:3").links(), Scenario::corrupt_rate(2.0, 2.0, 3, 3).links());
        assert_eq!(p("droplist:2,3,4,5,6,7:").links(), Scenario::droplist(vec![2, 3, 4, 5, 6, 7], vec![]).links());
        assert_eq!(p("droplist::1").to_client.drop_list, vec![1]);
        assert_eq!(p("blackhole:5s:2s").links(), Scenario::blackhole(5 * SEC, 2 * SEC, Direction::Both).links());
        assert_eq!(p("blackhole:1.5s:250ms:TOCLIENT:2").links(), Scenario::blackhole_repeated(1500 * MS, 250 * MS, Direction::ToClient, 2).links());
        assert_eq!(p("delay:1500us").to_server.delay, Duration::from_micros(1500));
        assert_eq!(p("delay:20000ns").to_server.delay, Duration::from_micros(20));
        // The parsed name is the input.
        assert_eq!(p("drop-rate:2%:2%").name, "drop-rate:2%:2%");

        let s = p("base+reorder:10%:5ms-20ms+loss:1%+bw:50mbit+queue:80+delay:10ms+dup:1%");
        for link in [&s.to_server, &s.to_client] {
            assert_eq!(link.reorder, 0.1);
            assert_eq!((link.reorder_delay, link.reorder_delay_max), (5 * MS, Some(20 * MS)));
            assert_eq!(link.loss, 0.01);
            assert_eq!(link.bandwidth_bps, Some(50_000_000));
            assert_eq!(link.queue_packets, Some(80));
            assert_eq!(link.delay, 10 * MS);
            assert_eq!(link.duplicate, 0.01);
        }
        let s = p("drop-rate:5:0:3:3+reorder:2:4ms+bw:10Mbps+qbytes:30000+jitter:1ms+mtu:1472+bw:1.5gbit");
        assert_eq!(s.to_server.drop_rate, Some(BurstCapped::new(0.05, 3)));
        assert_eq!((s.to_server.reorder, s.to_server.reorder_delay, s.to_server.reorder_delay_max), (0.02, 4 * MS, None));
        // A later modifier wins.
        assert_eq!(s.to_client.bandwidth_bps, Some(1_500_000_000));
        assert_eq!(s.to_client.queue_capacity, Some(30_000));
        assert_eq!((s.to_client.jitter, s.to_client.mtu), (MS, 1472));
        assert_eq!(p("base+bw:inf").to_server.bandwidth_bps, None);
        assert_eq!(p("base+bw:64000").to_server.bandwidth_bps, Some(64_000));
        assert_eq!(p("base+bw:500kbit").to_server.bandwidth_bps, Some(500_000));
        // FromStr.
        let s: Scenario = "base+loss:0.5".parse().unwrap();
        assert_eq!(s.to_client.loss, 0.005);
    }

    #[test]
    fn parser_rejects_malformed_strings() {
        use ScenarioError as E;
        let e = |s: &str| Scenario::parse(s).unwrap_err();
        assert_eq!(e(""), E::Empty);
        assert_eq!(e("   "), E::Empty);
        assert_eq!(e("base+"), E::Empty);
        assert_eq!(e("+loss:1%"), E::Empty);
        assert_eq!(e("bsae"), E::UnknownScenario("bsae".into()));
        assert_eq!(e("loss:1%"), E::UnknownScenario("loss:1%".into()));
        assert_eq!(e("base+lose:1%"), E::UnknownModifier("lose:1%".into()));
        assert!(matches!(e("base:1"), E::Arity { got: 1, .. }));
        assert!(matches!(e("long-rtt:5s"), E::Arity { got: 1, .. }));
        assert!(matches!(e("drop-rate:30"), E::Arity { got: 1, .. }));
        assert!(matches!(e("drop-rate:30:30:3"), E::Arity { got: 3, .. }));
        assert!(matches!(e("droplist:2,3"), E::Arity { got: 1, .. }));
        assert!(matches!(e("blackhole:5s"), E::Arity { got: 1, .. }));
        assert!(matches!(e("blackhole:1s:1s:both:1:1"), E::Arity { got: 5, .. }));
        assert!(matches!(e("base+loss"), E::Arity { got: 0, .. }));
        assert!(matches!(e("base+loss:1:2"), E::Arity { got: 2, .. }));
        assert!(matches!(e("base+reorder:10%"), E::Arity { got: 1, .. }));
        assert_eq!(e("drop-rate:101:0"), E::BadPercent("101".into()));
        assert_eq!(e("drop-rate:-1:0"), E::BadPercent("-1".into()));
        assert_eq!(e("drop-rate:abc:0"), E::BadPercent("abc".into()));
        assert_eq!(e("drop-rate:1e1:0"), E::BadPercent("1e1".into()));
        assert_eq!(e("drop-rate:NaN:0"), E::BadPercent("NaN".into()));
        assert_eq!(e("base+loss:5%%"), E::BadPercent("5%%".into()));
        assert_eq!(e("drop-rate:1:1:x:3"), E::BadNumber("x".into()));
        assert_eq!(e("drop-rate:1:1:-3:3"), E::BadNumber("-3".into()));
        assert_eq!(e("delay:15"), E::BadDuration("15".into()));
        assert_eq!(e("delay:15 m"), E::BadDuration("15 m".into()));
        assert_eq!(e("delay:ms"), E::BadDuration("ms".into()));
        assert_eq!(e("delay:-5ms"), E::BadDuration("-5ms".into()));
        assert_eq!(e("blackhole:5s:2h"), E::BadDuration("2h".into()));
        assert_eq!(e("blackhole:5s:2s:sideways"), E::BadDirection("sideways".into()));
        assert_eq!(e("blackhole:5s:2s:both:0"), E::BadNumber("0".into()));
        assert_eq!(e("droplist:0,1:"), E::BadIndex("0".into()));
        assert_eq!(e("droplist:1,,2:"), E::BadIndex("".into()));
        assert_eq!(e("droplist:1:x"), E::BadIndex("x".into()));
        assert_eq!(e("base+bw:fast"), E::BadRate("fast".into()));
        assert_eq!(e("base+bw:10tbit"), E::BadRate("10tbit".into()));
        assert_eq!(e("base+bw:0"), E::BadRate("0".into()));
        assert_eq!(e("base+queue:-1"), E::BadNumber("-1".into()));
        assert_eq!(e("base+reorder:10%:20ms-5ms"), E::BadRange("20ms-5ms".into()));
        assert_eq!(e("base+reorder:10%:5ms-"), E::BadDuration("".into()));
        // Errors print something a user can act on.
        assert!(e("bsae").to_string().contains("drop-rate"));
    }
}
