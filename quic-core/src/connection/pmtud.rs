//! Datagram Packetization Layer Path MTU Discovery (RFC 8899 with RFC 9000
//! §14.3): the largest UDP payload a path carries, found by probing.
//!
//! Every connection starts at the base of 1,200 bytes, which QUIC requires
//! every path to carry (RFC 9000 §14). The search starts once the handshake
//! is confirmed and the connection has carried [`SEARCH_AFTER_PACKETS`]
//! full packets' worth of data: 1-RTT datagrams of the full current size
//! sent or received, or a single write of that many packets. A connection
//! that moves a few kilobytes (a handshake, HANDSHAKE_DONE and tickets and
//! a small response, ACKs, a quiet connection) gains nothing from a larger
//! size, and its probes would be a full-size datagram each way for nothing
//! (RFC 8899 leaves when to leave DISABLED to the packetization layer,
//! §5.2). Once started it sends probes — a 1-RTT packet holding PING and
//! PADDING, of exactly the size tried (RFC 9000 §14.4) — first at the upper
//! bound (most paths carry it), then, after [`MAX_PROBES`] losses at a size,
//! by binary search between the largest size acknowledged and the smallest
//! that failed. An
//! acknowledged probe raises the packet size; a lost one says nothing about
//! congestion (§14.4), so the recovery code keeps it out of the congestion
//! controller.
//!
//! The upper bound is our `max_udp_payload_size` and the peer's (RFC 9000
//! §18.2). A search ends within [`SEARCH_GRANULARITY`] bytes of the path's
//! limit and starts again after [`RAISE_INTERVAL`] if it ended below the
//! bound (RFC 8899 §5.1.1 PMTU_RAISE_TIMER). A black hole — packets larger
//! than the base lost where they used to arrive — returns the connection to
//! the base and searches again below the size that stopped working (RFC
//! 8899 §4.3, §5.2 "black hole detection").

use std::time::{Duration, Instant};

/// RFC 8899 BASE_PLPMTU for QUIC: every path carries 1,200 bytes.
pub const BASE_PLPMTU: u16 = 1200;
/// Full packets of data (sent, received or written at once) before the
/// search starts: more than a handshake's first 1-RTT flight with a small
/// response fills (one or two), few enough that a bulk transfer probes
/// within its first round trip.
pub const SEARCH_AFTER_PACKETS: u8 = 4;
/// RFC 8899 §5.1.2 MAX_PROBES: losses at one size before it counts as failed.
pub const MAX_PROBES: u8 = 3;
/// The search stops when the largest size known to work is this close to
/// the smallest known (or assumed) to fail.
pub const SEARCH_GRANULARITY: u16 = 20;
/// RFC 8899 §5.1.1 PMTU_RAISE_TIMER: how long a search that ended below the
/// bound waits before probing upward again.
pub const RAISE_INTERVAL: Duration = Duration::from_secs(600);
/// Losses of packets above the base, with none acknowledged in between,
/// that count as a black hole.
pub const BLACK_HOLE_LOSSES: u8 = 4;
/// Consecutive PTOs with packets above the base in flight that count as a
/// black hole: nothing at all is acknowledged, so losses are never declared.
pub const BLACK_HOLE_PTOS: u32 = 3;

/// Where the search is (RFC 8899 §5.2 states, without BASE: the handshake
/// already showed the path carries 1,200 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PmtudPhase {
    /// Discovery is off, the handshake is not confirmed yet, or the
    /// connection has not carried enough data to need a larger size.
    Disabled,
    /// Probing for a larger size.
    Searching,
    /// Done: [`Pmtud::current`] is the path's size (until a black hole, or
    /// until the raise timer if below the bound).
    Complete,
}

/// A change of the connection's packet size for the caller to apply (the
/// congestion controller's datagram size, qlog `mtu_updated`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MtuChange {
    pub old: u16,
    pub new: u16,
    /// The search ended with this change (qlog `done`).
    pub done: bool,
    /// The size fell back to the base after a black hole.
    pub black_hole: bool,
}

/// One path's DPLPMTUD state.
#[derive(Debug, Clone)]
pub struct Pmtud {
    enabled: bool,
    /// The handshake is confirmed ([`Pmtud::start`]).
    confirmed: bool,
    /// Full packets of data seen, up to [`SEARCH_AFTER_PACKETS`]
    /// ([`Pmtud::on_full_packets`]).
    full_packets: u8,
    phase: PmtudPhase,
    /// Our max_udp_payload_size.
    local_max: u16,
    /// min(ours, the peer's max_udp_payload_size).
    max: u16,
    /// The packet size in use: confirmed by an acknowledged probe (or the base).
    current: u16,
    /// Smallest size that failed (or one above the bound).
    failed: u16,
    /// The size of the probe in flight.
    in_flight: Option<u16>,
    /// Losses of probes at the size tried now.
    losses: u8,
    /// When a finished search starts again.
    raise_at: Option<Instant>,
    /// Packets above the base lost since one was last acknowledged.
    large_losses: u8,
    probes_sent: u64,
    probes_lost: u64,
    black_holes: u64,
}

impl Pmtud {
    /// `local_max`: our max_udp_payload_size; `enabled`: the connection
    /// searches once its handshake is confirmed.
    pub fn new(enabled: bool, local_max: u16) -> Self {
        let local_max = local_max.max(BASE_PLPMTU);
        Self {
            enabled,
            confirmed: false,
            full_packets: 0,
            phase: PmtudPhase::Disabled,
            local_max,
            max: local_max,
            current: BASE_PLPMTU,
            failed: local_max.saturating_add(1),
            in_flight: None,
            losses: 0,
            raise_at: None,
            large_losses: 0,
            probes_sent: 0,
            probes_lost: 0,
            black_holes: 0,
        }
    }

    pub fn phase(&self) -> PmtudPhase {
        self.phase
    }

    /// The packet size in use.
    pub fn current(&self) -> u16 {
        self.current
    }

    /// The peer's max_udp_payload_size bounds the search (RFC 9000 §18.2).
    pub fn set_peer_max(&mut self, peer: u64) {
        let peer = u16::try_from(peer).unwrap_or(u16::MAX).max(BASE_PLPMTU);
        self.max = self.local_max.min(peer);
        self.failed = self.failed.min(self.max.saturating_add(1));
    }

    /// The handshake is confirmed: the search may start (RFC 9000 §14.3
    /// probes need 1-RTT packets the peer acknowledges) once the connection
    /// has carried enough data ([`Pmtud::on_full_packets`]).
    pub fn start(&mut self) {
        self.confirmed = true;
        self.maybe_begin();
    }

    /// `n` full packets' worth of data: a 1-RTT datagram of the full size
    /// sent or received (1), or a write of `n` packets (called each time:
    /// once the count is reached, one branch). Returns whether the search
    /// started with it.
    #[inline]
    pub fn on_full_packets(&mut self, n: usize) -> bool {
        if self.full_packets >= SEARCH_AFTER_PACKETS {
            return false;
        }
        self.full_packets = u8::try_from(n).unwrap_or(u8::MAX).saturating_add(self.full_packets).min(SEARCH_AFTER_PACKETS);
        self.maybe_begin();
        self.phase == PmtudPhase::Searching
    }

    fn maybe_begin(&mut self) {
        if self.enabled && self.confirmed && self.full_packets >= SEARCH_AFTER_PACKETS && self.phase == PmtudPhase::Disabled {
            self.begin_search(self.max.saturating_add(1));
        }
    }

    /// The path changed (RFC 9000 §9.4, §14.3: a new path starts over from
    /// the base). Returns the change if the size was above it.
    pub fn on_new_path(&mut self) -> Option<MtuChange> {
        let old = self.current;
        self.current = BASE_PLPMTU;
        self.large_losses = 0;
        self.raise_at = None;
        if self.phase != PmtudPhase::Disabled {
            self.begin_search(self.max.saturating_add(1));
        }
        (old != BASE_PLPMTU).then_some(MtuChange { old, new: BASE_PLPMTU, done: false, black_hole: false })
    }

    fn begin_search(&mut self, failed: u16) {
        self.phase = PmtudPhase::Searching;
        self.failed = failed.min(self.max.saturating_add(1));
        self.in_flight = None;
        self.losses = 0;
        self.raise_at = None;
        if self.search_done() {
            self.phase = PmtudPhase::Complete;
        }
    }

    fn search_done(&self) -> bool {
        self.current >= self.max || self.failed.saturating_sub(self.current) <= SEARCH_GRANULARITY
    }

    /// The size of the next probe, when one is due: the bound first, then
    /// the middle of what is left.
    pub fn probe_size(&self) -> Option<u16> {
        if self.phase != PmtudPhase::Searching || self.in_flight.is_some() {
            return None;
        }
        let size = if self.failed > self.max { self.max } else { self.current.saturating_add(self.failed.saturating_sub(self.current) / 2) };
        (size > self.current).then_some(size)
    }

    /// A probe of `size` bytes left.
    pub fn on_probe_sent(&mut self, size: u16) {
        self.in_flight = Some(size);
        self.probes_sent += 1;
    }

    /// The probe was acknowledged: the path carries `size`.
    pub fn on_probe_acked(&mut self, now: Instant, size: u16) -> Option<MtuChange> {
        if self.in_flight == Some(size) {
            self.in_flight = None;
        }
        if self.phase == PmtudPhase::Disabled || size <= self.current {
            return None;
        }
        let old = self.current;
        self.current = size.min(self.max);
        self.losses = 0;
        self.large_losses = 0;
        let done = self.finish_if_done(now);
        Some(MtuChange { old, new: self.current, done, black_hole: false })
    }

    /// The probe was declared lost (not a congestion signal, §14.4).
    pub fn on_probe_lost(&mut self, now: Instant, size: u16) -> Option<MtuChange> {
        if self.in_flight == Some(size) {
            self.in_flight = None;
        }
        self.probes_lost += 1;
        if self.phase != PmtudPhase::Searching || size <= self.current || size >= self.failed {
            return None;
        }
        self.losses += 1;
        if self.losses < MAX_PROBES {
            return None;
        }
        self.losses = 0;
        self.failed = size;
        let done = self.finish_if_done(now);
        done.then_some(MtuChange { old: self.current, new: self.current, done, black_hole: false })
    }

    fn finish_if_done(&mut self, now: Instant) -> bool {
        if self.phase == PmtudPhase::Searching && self.search_done() {
            self.phase = PmtudPhase::Complete;
            // Below the bound: a larger size may work later (a route change).
            self.raise_at = (self.current < self.max).then(|| now + RAISE_INTERVAL);
            return true;
        }
        false
    }

    /// A packet of `size` bytes other than a probe was acknowledged.
    pub fn on_packet_acked(&mut self, size: u16) {
        if size > BASE_PLPMTU {
            self.large_losses = 0;
        }
    }

    /// A packet of `size` bytes other than a probe was declared lost.
    pub fn on_packet_lost(&mut self, size: u16) -> Option<MtuChange> {
        if size <= BASE_PLPMTU || self.current <= BASE_PLPMTU {
            return None;
        }
        self.large_losses = self.large_losses.saturating_add(1);
        (self.large_losses >= BLACK_HOLE_LOSSES).then(|| self.black_hole())
    }

    /// A PTO expired; `pto_count` consecutive ones so far.
    pub fn on_pto(&mut self, pto_count: u32) -> Option<MtuChange> {
        (pto_count >= BLACK_HOLE_PTOS && self.current > BASE_PLPMTU).then(|| self.black_hole())
    }

    /// RFC 8899 §5.2: back to the base, then search below the size that
    /// stopped working.
    fn black_hole(&mut self) -> MtuChange {
        let old = self.current;
        self.current = BASE_PLPMTU;
        self.large_losses = 0;
        self.black_holes += 1;
        self.begin_search(old);
        MtuChange { old, new: BASE_PLPMTU, done: false, black_hole: true }
    }

    /// When [`Pmtud::on_timeout`] wants to run.
    pub fn deadline(&self) -> Option<Instant> {
        self.raise_at
    }

    /// The raise timer: search upward again from the current size.
    pub fn on_timeout(&mut self, now: Instant) {
        if self.raise_at.is_some_and(|t| now >= t) {
            self.raise_at = None;
            self.begin_search(self.max.saturating_add(1));
        }
    }

    /// Probes sent, probes lost and black holes detected.
    pub fn counters(&self) -> (u64, u64, u64) {
        (self.probes_sent, self.probes_lost, self.black_holes)
    }
}

impl super::Connection {
    /// Applies a packet size change: the size datagrams are built at, the
    /// congestion controller's datagram size (RFC 9002 §7.2), qlog
    /// `mtu_updated`.
    pub(super) fn apply_mtu_change(&mut self, now: Instant, change: Option<MtuChange>) {
        let Some(c) = change else { return };
        if c.new != self.mtu {
            self.mtu = c.new;
            self.recovery.on_mtu_update(u64::from(c.new));
        }
        if let Some(q) = &mut self.qlog {
            q.event(now, &crate::qlog::QlogEvent::MtuUpdated { old: c.old, new: c.new, done: c.done });
        }
    }

    /// Acknowledged packet of `size` bytes.
    pub(super) fn pmtud_on_acked(&mut self, now: Instant, size: u16, probe: bool) {
        if probe {
            let change = self.pmtud.on_probe_acked(now, size);
            self.apply_mtu_change(now, change);
        } else {
            self.pmtud.on_packet_acked(size);
        }
    }

    /// Packet of `size` bytes declared lost.
    pub(super) fn pmtud_on_lost(&mut self, now: Instant, size: u16, probe: bool) {
        let change = if probe { self.pmtud.on_probe_lost(now, size) } else { self.pmtud.on_packet_lost(size) };
        self.apply_mtu_change(now, change);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn searching(max: u16) -> Pmtud {
        let mut p = Pmtud::new(true, max);
        p.start();
        let _ = p.on_full_packets(usize::from(SEARCH_AFTER_PACKETS));
        p
    }

    /// Runs a search against a path carrying `limit` bytes; returns the
    /// probe sizes tried.
    fn run(p: &mut Pmtud, now: Instant, limit: u16) -> Vec<u16> {
        let mut tried = Vec::new();
        while let Some(size) = p.probe_size() {
            tried.push(size);
            p.on_probe_sent(size);
            if size <= limit {
                p.on_probe_acked(now, size);
            } else {
                p.on_probe_lost(now, size);
            }
            assert!(tried.len() < 64, "the search ends");
        }
        tried
    }

    #[test]
    fn disabled_until_confirmed_and_enough_data_and_when_off() {
        let mut p = Pmtud::new(true, 1472);
        let _ = p.on_full_packets(usize::from(SEARCH_AFTER_PACKETS));
        assert_eq!(p.probe_size(), None, "not before the handshake is confirmed");
        p.start();
        assert_eq!(p.probe_size(), Some(1472));
        // Confirmed first, then full packets up to the threshold.
        let mut q = Pmtud::new(true, 1472);
        q.start();
        assert_eq!(q.phase(), PmtudPhase::Disabled);
        assert_eq!(q.probe_size(), None, "no datagram has needed more than the base");
        for _ in 1..SEARCH_AFTER_PACKETS {
            assert!(!q.on_full_packets(1));
        }
        assert_eq!(q.probe_size(), None, "fewer full packets than the threshold");
        assert!(q.on_full_packets(1), "the last one starts the search");
        assert!(!q.on_full_packets(1), "and only once");
        assert_eq!(q.probe_size(), Some(1472));
        let mut off = Pmtud::new(false, 1472);
        off.start();
        let _ = off.on_full_packets(usize::from(SEARCH_AFTER_PACKETS));
        assert_eq!(off.phase(), PmtudPhase::Disabled);
        assert_eq!(off.probe_size(), None);
    }

    #[test]
    fn a_path_carrying_the_bound_takes_one_probe() {
        let now = Instant::now();
        let mut p = searching(1472);
        assert_eq!(run(&mut p, now, 1500), vec![1472]);
        assert_eq!(p.current(), 1472);
        assert_eq!(p.phase(), PmtudPhase::Complete);
        assert_eq!(p.deadline(), None, "at the bound: nothing to raise");
    }

    #[test]
    fn binary_search_ends_within_the_granularity() {
        let now = Instant::now();
        let mut p = searching(1472);
        let tried = run(&mut p, now, 1372);
        // The bound fails three times, then halving: 1336 works, 1404 not...
        assert_eq!(&tried[..3], &[1472, 1472, 1472]);
        assert_eq!(tried[3], 1336);
        assert!(p.current() <= 1372 && 1372 - p.current() <= SEARCH_GRANULARITY, "found {} for 1372", p.current());
        assert_eq!(p.phase(), PmtudPhase::Complete);
        assert_eq!(p.deadline(), Some(now + RAISE_INTERVAL));
        // The raise timer starts an upward search again.
        p.on_timeout(now + RAISE_INTERVAL);
        assert_eq!(p.probe_size(), Some(1472));
    }

    #[test]
    fn the_peer_limit_bounds_the_search() {
        let now = Instant::now();
        let mut p = Pmtud::new(true, 1472);
        p.set_peer_max(1350);
        p.start();
        let _ = p.on_full_packets(usize::from(SEARCH_AFTER_PACKETS));
        assert_eq!(run(&mut p, now, 9000), vec![1350]);
        assert_eq!(p.current(), 1350);
        let mut q = Pmtud::new(true, 1472);
        q.set_peer_max(1200);
        q.start();
        let _ = q.on_full_packets(usize::from(SEARCH_AFTER_PACKETS));
        assert_eq!(q.probe_size(), None, "nothing above the base to find");
        assert_eq!(q.phase(), PmtudPhase::Complete);
    }

    #[test]
    fn a_lost_probe_alone_does_not_fail_a_size() {
        let now = Instant::now();
        let mut p = searching(1472);
        p.on_probe_sent(1472);
        assert_eq!(p.on_probe_lost(now, 1472), None);
        assert_eq!(p.probe_size(), Some(1472), "tried again");
        p.on_probe_sent(1472);
        let c = p.on_probe_acked(now, 1472).unwrap();
        assert_eq!((c.old, c.new, c.done), (1200, 1472, true));
    }

    #[test]
    fn black_hole_by_losses_falls_back_and_searches_below() {
        let now = Instant::now();
        let mut p = searching(1472);
        run(&mut p, now, 1500);
        assert_eq!(p.current(), 1472);
        // Losses interleaved with acknowledgments are not a black hole.
        for _ in 0..10 {
            assert_eq!(p.on_packet_lost(1472), None);
            p.on_packet_acked(1472);
        }
        // Small packets lost say nothing.
        for _ in 0..10 {
            assert_eq!(p.on_packet_lost(1100), None);
        }
        for _ in 0..BLACK_HOLE_LOSSES - 1 {
            assert_eq!(p.on_packet_lost(1472), None);
        }
        let c = p.on_packet_lost(1472).unwrap();
        assert!(c.black_hole);
        assert_eq!((c.old, c.new), (1472, BASE_PLPMTU));
        assert_eq!(p.current(), BASE_PLPMTU);
        // The new search stays below the size that stopped working.
        let tried = run(&mut p, now, 1300);
        assert!(tried.iter().all(|s| *s < 1472), "{tried:?}");
        assert!(p.current() <= 1300 && p.current() > 1280, "{}", p.current());
        assert_eq!(p.counters().2, 1);
    }

    #[test]
    fn black_hole_by_ptos() {
        let now = Instant::now();
        let mut p = searching(1472);
        run(&mut p, now, 1500);
        assert_eq!(p.on_pto(1), None);
        assert_eq!(p.on_pto(2), None);
        assert!(p.on_pto(BLACK_HOLE_PTOS).is_some_and(|c| c.black_hole && c.new == BASE_PLPMTU));
        assert_eq!(p.on_pto(BLACK_HOLE_PTOS + 1), None, "already at the base");
    }

    #[test]
    fn a_new_path_starts_over() {
        let now = Instant::now();
        let mut p = searching(1472);
        run(&mut p, now, 1500);
        let c = p.on_new_path().unwrap();
        assert_eq!((c.old, c.new), (1472, BASE_PLPMTU));
        assert_eq!(p.probe_size(), Some(1472));
    }
}
