//! The peer's address and its validation: NAT rebinding and client
//! migration as seen by a server (RFC 9000 §9), path validation with
//! PATH_CHALLENGE / PATH_RESPONSE (§8.2), and PATH_RESPONSEs owed to other
//! addresses than the one we send to.
//!
//! There is one path at a time: `Connection::remote` is where packets go.
//! A server moves it when a non-probing 1-RTT packet carrying the largest
//! packet number so far arrives from another address (§9.3), limits what it
//! sends there to three times what it received from there until a
//! PATH_RESPONSE proves the peer owns the address (§9.3.1, §8.1 — the
//! connection's `address_validated` / `bytes_received` / `bytes_sent` are
//! reused for that), and falls back to the last validated address when
//! validation fails (§9.3.2). A client moves when its application asks
//! ([`Connection::migrate`], §9.2 active migration: the application has
//! bound a new local address); it then uses a new connection ID of the
//! server (§9.5), validates the path (§8.2, §9.2) and starts congestion
//! control, RTT estimation, ECN validation and path MTU discovery over
//! (§9.4, §13.4.2, §14.3).
//!
//! The connection ID does not change on a rebinding: §9.5 allows to keep
//! using the current one "with the new remote address while still sending
//! from the same local address" when the peer did not change it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use super::{Connection, State, Transmit};
use crate::cid::ConnectionId;
use crate::frame::{Frame, FrameContext, FrameIter};
use crate::recovery::SpaceId;

/// PATH_CHALLENGE frames sent for one validation at most (§8.2.1: several
/// guard against loss; each carries new unpredictable data).
const MAX_CHALLENGES: usize = 4;
/// PATH_RESPONSEs owed to other addresses, at most (one per challenge).
const MAX_OFF_PATH_RESPONSES: usize = 8;
/// §8.2.1, §8.2.2: datagrams with PATH_CHALLENGE or PATH_RESPONSE are
/// expanded to the smallest allowed maximum datagram size.
pub(super) const PROBE_DATAGRAM_SIZE: usize = 1200;

/// A validation of the current remote address under way (§8.2).
#[derive(Debug)]
struct Challenge {
    addr: SocketAddr,
    /// Data of every PATH_CHALLENGE sent so far, and whether its datagram
    /// was expanded to 1200 bytes; a response matching any of them
    /// validates (§8.2.3).
    sent: [([u8; 8], bool); MAX_CHALLENGES],
    count: usize,
    /// A PATH_CHALLENGE is owed (first one or a retry).
    due: bool,
    /// When the next retry is owed.
    retry_at: Option<Instant>,
    /// §8.2.4: validation is abandoned at this instant.
    abandon_at: Instant,
    /// The IP (not only the port) differs from the last validated address
    /// (§9.4 decides congestion state on that).
    ip_changed: bool,
    /// The address is validated already; this second validation only
    /// checks the path carries 1200-byte datagrams (§8.2.1: required when
    /// the first challenge could not be expanded).
    mtu_only: bool,
}

/// A PATH_RESPONSE owed to an address we do not send to (§8.2.2: it goes
/// back on the path the challenge came from).
#[derive(Debug, Clone, Copy)]
struct OffPathResponse {
    to: SocketAddr,
    data: [u8; 8],
    /// §8.2.2: the datagram is not expanded beyond the anti-amplification
    /// limit: three times the datagram that carried the challenge.
    allowance: usize,
}

/// Path state of a connection.
#[derive(Debug)]
pub(super) struct PathState {
    /// Source and size of the datagram being processed.
    rx_from: SocketAddr,
    rx_len: u64,
    /// The last peer address validated: the handshake address at first
    /// (§8.1), where a failed validation reverts to (§9.3.2).
    validated: SocketAddr,
    challenge: Option<Challenge>,
    /// §9.3.3: after an apparent migration, the previous path is validated
    /// too ("endpoints MUST validate the previously active path"); this is
    /// the challenge owed to it, sent once in its own datagram.
    old_path_challenge: Option<SocketAddr>,
    /// Data of the last challenge sent on the old path (its response is
    /// recognised and needs no action).
    old_path_data: Option<[u8; 8]>,
    off_path_responses: VecDeque<OffPathResponse>,
    /// Destination Connection ID of the highest-numbered 1-RTT packet: a
    /// migrating peer that changes it asks for a new one back (§9.5).
    peer_dcid: Option<ConnectionId>,
}

impl PathState {
    pub(super) fn new(remote: SocketAddr) -> Self {
        Self {
            rx_from: remote,
            rx_len: 0,
            validated: remote,
            challenge: None,
            old_path_challenge: None,
            old_path_data: None,
            off_path_responses: VecDeque::new(),
            peer_dcid: None,
        }
    }

    /// Records where the datagram being processed came from.
    pub(super) fn on_datagram(&mut self, from: SocketAddr, len: usize) {
        self.rx_from = from;
        self.rx_len = len as u64;
    }

    pub(super) fn rx_from(&self) -> SocketAddr {
        self.rx_from
    }

    /// A 1-RTT packet numbered above all before it arrived on `dcid`.
    pub(super) fn on_largest_packet(&mut self, dcid: ConnectionId) {
        self.peer_dcid = Some(dcid);
    }

    /// A path validation is under way (RFC 9000 §8.2).
    pub(super) fn validating(&self) -> bool {
        self.challenge.is_some()
    }

    /// A PATH_CHALLENGE should go out in the next 1-RTT packet.
    pub(super) fn challenge_due(&self) -> bool {
        self.challenge.as_ref().is_some_and(|c| c.due)
    }

    pub(super) fn timeout(&self) -> Option<Instant> {
        let c = self.challenge.as_ref()?;
        Some(c.retry_at.map_or(c.abandon_at, |r| r.min(c.abandon_at)))
    }
}

/// Why a client cannot migrate now (RFC 9000 §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrateError {
    /// Only clients initiate migrations (§9).
    NotClient,
    /// §9: "An endpoint MUST NOT initiate connection migration before the
    /// handshake is confirmed".
    HandshakeNotConfirmed,
    /// The server sent disable_active_migration (§18.2).
    PeerDisabledMigration,
    /// §9.5: a new path needs an unused connection ID of the server, and it
    /// has not given us one (yet).
    NoSpareConnectionId,
    /// The connection is closing.
    Closed,
}

impl core::fmt::Display for MigrateError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            MigrateError::NotClient => "only a client migrates",
            MigrateError::HandshakeNotConfirmed => "the handshake is not confirmed yet",
            MigrateError::PeerDisabledMigration => "the server disabled active migration",
            MigrateError::NoSpareConnectionId => "the server has given no spare connection ID",
            MigrateError::Closed => "the connection is closed",
        })
    }
}

impl std::error::Error for MigrateError {}

impl Connection {
    /// Client, RFC 9000 §9.2: the application now sends from a new local
    /// address (it rebound its socket). The connection switches to an
    /// unused connection ID of the server (§9.5: no ID on two paths, so the
    /// paths cannot be linked), validates the new path with PATH_CHALLENGE
    /// (§8.2; data keeps flowing meanwhile, §9.2 allows non-probing packets
    /// at once), and starts congestion control, RTT estimation (§9.4), ECN
    /// validation (§13.4.2) and path MTU discovery (§14.3) over.
    pub fn migrate(&mut self, now: Instant) -> Result<(), MigrateError> {
        self.can_migrate()?;
        if !self.remote_cids.rotate() {
            return Err(MigrateError::NoSpareConnectionId);
        }
        self.stats.cid_rotations += 1;
        self.stats.migrations += 1;
        self.recovery.reset_for_new_path();
        self.ecn.on_new_path();
        let change = self.pmtud.on_new_path();
        self.apply_mtu_change(now, change);
        // The server's address is the same; the path (our end) is new. The
        // congestion state was reset above, so the response need not.
        let remote = self.remote;
        self.start_challenge(now, remote, false, false);
        self.qlog_migration(now, "migration_started");
        Ok(())
    }

    /// Whether [`Connection::migrate`] would succeed now (an application
    /// checks before it rebinds its socket).
    pub fn can_migrate(&self) -> Result<(), MigrateError> {
        if self.side.is_server() {
            return Err(MigrateError::NotClient);
        }
        if self.is_closed() {
            return Err(MigrateError::Closed);
        }
        if !self.handshake_confirmed {
            return Err(MigrateError::HandshakeNotConfirmed);
        }
        if self.peer_params.as_ref().is_some_and(|p| p.disable_active_migration) {
            return Err(MigrateError::PeerDisabledMigration);
        }
        if !self.remote_cids.has_spare() {
            return Err(MigrateError::NoSpareConnectionId);
        }
        Ok(())
    }

    /// Server: `cid` is the connection ID announced in preferred_address.
    pub(crate) fn adopt_preferred_cid(&mut self, cid: ConnectionId) {
        self.local_cids.adopt_preferred(cid);
    }

    /// Client, once the handshake is confirmed (RFC 9000 §9.6.1): when the
    /// server announced a preferred address of the family we use, send to
    /// it with the connection ID that came with it, validate it, and stay
    /// there once a PATH_RESPONSE arrives; if validation fails, packets go
    /// back to the original address (`on_path_timeout`). Turned off with
    /// `TransportConfig::use_preferred_address`.
    pub(super) fn move_to_preferred_address(&mut self, now: Instant) {
        if self.side.is_server() || !self.config.use_preferred_address || self.peer_params.as_ref().is_some_and(|p| p.disable_active_migration) {
            return;
        }
        let Some(pa) = self.peer_params.as_ref().and_then(|p| p.preferred_address) else { return };
        let to = match self.remote {
            SocketAddr::V4(_) => pa.ipv4_addr().map(SocketAddr::V4),
            SocketAddr::V6(_) => pa.ipv6_addr().map(SocketAddr::V6),
        };
        let Some(to) = to.filter(|t| *t != self.remote) else { return };
        if !self.remote_cids.switch_to(1) {
            return;
        }
        self.stats.cid_rotations += 1;
        self.stats.migrations += 1;
        self.remote = to;
        let ip_changed = to.ip() != self.path.validated.ip();
        if ip_changed {
            self.recovery.reset_for_new_path();
            self.ecn.on_new_path();
            let change = self.pmtud.on_new_path();
            self.apply_mtu_change(now, change);
        }
        self.start_challenge(now, to, false, false);
        self.qlog_migration(now, "migration_started");
    }

    /// qlog `quic:migration_state_updated` (quic-events §5.x), with the
    /// address packets now go to.
    fn qlog_migration(&mut self, now: Instant, state: &str) {
        let remote = self.remote;
        if let Some(q) = &mut self.qlog {
            q.event(now, &crate::qlog::QlogEvent::MigrationStateUpdated { new: state, remote });
        }
    }

    /// RFC 9000 §9.3: called for a decrypted 1-RTT packet from an address
    /// other than the current remote, before its frames are processed (so a
    /// PATH_CHALLENGE in it is answered on the new path). `largest_before`
    /// is the largest packet number received before this one.
    pub(super) fn maybe_migrate(&mut self, now: Instant, pn: u64, largest_before: Option<u64>, dcid: &ConnectionId, payload: &[u8]) {
        let from = self.path.rx_from;
        // §9: clients initiate all migrations, and only once the handshake
        // is confirmed; a server never moves before that (the handshake
        // relies on stable addresses) and a client never moves at all.
        if !self.side.is_server() || !self.handshake_confirmed || from == self.remote {
            return;
        }
        // §9.3: "An endpoint only changes the address to which it sends
        // packets in response to the highest-numbered non-probing packet":
        // a reordered older packet (or a copy of one) does not move the path.
        if largest_before.is_some_and(|l| pn <= l) {
            return;
        }
        // §9.1: a packet of probing frames only (PATH_CHALLENGE,
        // PATH_RESPONSE, NEW_CONNECTION_ID, PADDING) is not a migration.
        // Scanned only here (rare), not for every packet.
        let non_probing = FrameIter::for_packet(payload, FrameContext::OneRtt).any(|f| f.is_ok_and(|f| !f.is_probing()));
        if !non_probing {
            return;
        }
        // §9.3.3: "a change in connection ID is more likely to indicate an
        // intentional migration". A peer that moved on purpose with a newer
        // ID of ours and still answers our challenge on the path it left
        // (with the older ID it used there) is not moving back: only a
        // packet with the current or a newer ID moves the path.
        if let (Some(seq), Some(current)) = (self.local_cids.seq_of(dcid), self.path.peer_dcid.and_then(|d| self.local_cids.seq_of(&d))) {
            if seq < current {
                return;
            }
        }
        // §9: the peer's disable_active_migration does not matter here: it
        // forbids *us* to send from another local address, and a NAT
        // rebinding is not something the peer chose. Had we sent it, §9
        // still lets us "proceed with path validation and allow the peer to
        // migrate" rather than drop the packets.
        // §9.5: "an endpoint MUST NOT reuse a connection ID when sending to
        // more than one destination address", except that after a change
        // "outside the control of its peer" (a NAT rebinding: the peer kept
        // its Destination Connection ID) it "MAY continue to use the current
        // connection ID". A peer that switched IDs migrated on purpose, so
        // we switch too when it gave us a spare one.
        let new_id = self.path.peer_dcid.is_some_and(|d| d != *dcid);
        if new_id && self.remote_cids.rotate() {
            self.stats.cid_rotations += 1;
        }
        self.migrate_to(now, from, new_id);
    }

    /// `intentional`: the peer moved with a new connection ID of ours.
    fn migrate_to(&mut self, now: Instant, to: SocketAddr, intentional: bool) {
        let previous = self.remote;
        self.stats.migrations += 1;
        self.remote = to;
        if to == self.path.validated {
            // §9.3.2: a packet with a higher number from the legitimate
            // address moves us back and abandons the spurious validation;
            // §9.3 lets us skip validating an address validated before. The
            // congestion state was not touched (see `on_path_response`), so
            // there is nothing to restore.
            self.path.challenge = None;
            self.address_validated = true;
            self.qlog_migration(now, "migration_complete");
            return;
        }
        // §9.3.1 / §8.1: until validated, at most three times what came from
        // the new address goes to it. The datagram that moved us counts.
        self.address_validated = false;
        self.bytes_received = self.path.rx_len;
        self.bytes_sent = 0;
        let ip_changed = to.ip() != self.path.validated.ip();
        self.start_challenge(now, to, ip_changed, false);
        self.qlog_migration(now, "migration_started");
        // §9.3.3: validate the previously active path as well; the real
        // peer, if still there, answers with a non-probing packet that moves
        // us back when the migration was a forwarded copy. That defends
        // against copies of genuine packets, which keep their connection
        // ID; a peer that moved with a new one chose the path ("a change in
        // connection ID is more likely to indicate an intentional
        // migration"), and may have closed the old one.
        if previous == self.path.validated && !intentional {
            self.path.old_path_challenge = Some(previous);
        }
    }

    fn start_challenge(&mut self, now: Instant, addr: SocketAddr, ip_changed: bool, mtu_only: bool) {
        // §8.2.4: abandon after three times the larger of the current PTO
        // and the PTO computed from kInitialRtt (initial_rtt * 3 +
        // max_ack_delay: smoothed = initial, rttvar = initial / 2).
        let pto = self.recovery.pto_period(SpaceId::Data, true);
        let initial_pto = self.config.initial_rtt.saturating_mul(3).saturating_add(self.recovery.max_ack_delay());
        let abandon = pto.max(initial_pto).saturating_mul(3);
        self.path.challenge = Some(Challenge {
            addr,
            sent: [([0; 8], false); MAX_CHALLENGES],
            count: 0,
            due: true,
            retry_at: None,
            abandon_at: super::deadline_after(now, abandon),
            ip_changed,
            mtu_only,
        });
    }

    /// Fresh unpredictable data for a PATH_CHALLENGE being written now
    /// (§8.2.1 "MUST use unpredictable data in every PATH_CHALLENGE"), and
    /// the retry timer: one PTO, doubled for each retry (§9.4: "set as
    /// described in Section 6.2.1 of QUIC-RECOVERY and MUST NOT be more
    /// aggressive"). `expanded`: the datagram will reach 1200 bytes.
    pub(super) fn take_path_challenge(&mut self, now: Instant, expanded: bool) -> Option<[u8; 8]> {
        let pto = self.recovery.pto_period(SpaceId::Data, self.handshake_confirmed);
        let c = self.path.challenge.as_mut().filter(|c| c.due)?;
        let mut data = [0u8; 8];
        self.rng.fill(&mut data);
        let slot = c.sent.get_mut(c.count)?;
        *slot = (data, expanded);
        let backoff = 1u32 << c.count.min(8);
        c.count += 1;
        c.due = false;
        c.retry_at = (c.count < MAX_CHALLENGES).then(|| super::deadline_after(now, pto.saturating_mul(backoff)));
        Some(data)
    }

    /// A PATH_CHALLENGE arrived (§8.2.2): the response goes back on the path
    /// it came from.
    pub(super) fn on_path_challenge(&mut self, data: [u8; 8]) {
        let from = self.path.rx_from;
        if from == self.remote {
            if self.pending.path_responses.len() < super::MAX_PATH_RESPONSES {
                self.pending.path_responses.push_back(data);
            }
            // §9.3.3: "An endpoint that receives a PATH_CHALLENGE on an
            // active path SHOULD send a non-probing packet in response", so
            // that a server misled by a forwarded copy moves back to us.
            self.pending.ping = true;
            return;
        }
        if self.path.off_path_responses.len() < MAX_OFF_PATH_RESPONSES {
            let allowance = usize::try_from(self.path.rx_len.saturating_mul(3)).unwrap_or(usize::MAX);
            self.path.off_path_responses.push_back(OffPathResponse { to: from, data, allowance });
        }
    }

    /// A PATH_RESPONSE arrived. §8.2.3: one "received on any network path
    /// validates the path on which the PATH_CHALLENGE was sent" when its
    /// data matches; anything else is ignored (§19.18 only allows, not
    /// requires, a PROTOCOL_VIOLATION, and a late answer to an abandoned
    /// challenge is no error).
    pub(super) fn on_path_response(&mut self, now: Instant, data: [u8; 8]) {
        if self.path.old_path_data == Some(data) {
            // The previous path answered (§9.3.3); it stays the fallback.
            self.path.old_path_data = None;
            return;
        }
        let Some(c) = &self.path.challenge else { return };
        let Some(&(_, expanded)) = c.sent.iter().take(c.count).find(|(d, _)| *d == data) else { return };
        if c.addr != self.remote {
            return;
        }
        let (ip_changed, mtu_only) = (c.ip_changed, c.mtu_only);
        self.path.challenge = None;
        if mtu_only {
            return;
        }
        self.path.validated = self.remote;
        self.address_validated = true;
        self.stats.path_validations += 1;
        self.qlog_migration(now, "migration_complete");
        // §9.4: "On confirming a peer's ownership of its new address, an
        // endpoint MUST immediately reset the congestion controller and
        // round-trip time estimator ... unless the only change in the peer's
        // address is its port number" — for a port change (the common NAT
        // rebinding) we keep them, as the section allows. One congestion
        // and recovery context serves both paths (§9.4 says it "could be
        // adequate").
        if ip_changed {
            self.recovery.reset_for_new_path();
            // RFC 9000 §13.4.2: ECN is validated per path.
            self.ecn.on_new_path();
            // RFC 9000 §14.3: a new path's MTU is found again from the base.
            let change = self.pmtud.on_new_path();
            self.apply_mtu_change(now, change);
        }
        // §9.3: "After verifying a new client address, the server SHOULD
        // send new address validation tokens"; the endpoint issues one when
        // `wants_new_token` says so.
        self.new_token_queued = false;
        if !expanded {
            // §8.2.1: the answered challenge was not in a 1200-byte datagram
            // (amplification limit), so the path MTU is not validated: "the
            // endpoint MUST perform a second path validation" with one.
            let addr = self.remote;
            self.start_challenge(now, addr, false, true);
        }
    }

    /// Path timers: retry the challenge, or give up on the new address.
    pub(super) fn on_path_timeout(&mut self, now: Instant) {
        let Some(c) = &mut self.path.challenge else { return };
        if now >= c.abandon_at {
            let mtu_only = c.mtu_only;
            self.path.challenge = None;
            if mtu_only {
                // The address is proven; only 1200-byte datagrams went
                // unanswered. We keep the path (our datagrams do not exceed
                // the configured MTU, which the handshake path carried).
                return;
            }
            self.stats.path_validation_failures += 1;
            self.qlog_migration(now, "migration_abandoned");
            // §9.3.2: "an endpoint MUST revert to using the last validated
            // peer address when validation of a new peer address fails"; a
            // client whose server's preferred address did not answer goes
            // back to the original one (§9.6.1). A client's own new local
            // path has nothing to revert to (its old socket is gone): it
            // keeps sending there and the idle timeout ends a dead path.
            self.remote = self.path.validated;
            if self.side.is_server() {
                self.address_validated = true;
            }
            return;
        }
        if c.retry_at.is_some_and(|r| now >= r) {
            c.retry_at = None;
            c.due = true;
        }
    }

    /// A datagram for another address than the current remote: a
    /// PATH_RESPONSE owed there (§8.2.2) or the challenge of the previous
    /// path (§9.3.3). Each is one 1-RTT packet, expanded to 1200 bytes when
    /// the anti-amplification limit allows.
    pub(super) fn poll_path_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        if self.one_rtt.is_none() || self.state != State::Established {
            return None;
        }
        if let Some(to) = self.path.old_path_challenge.take() {
            let mut data = [0u8; 8];
            self.rng.fill(&mut data);
            // The old address was validated: no amplification limit.
            if let Some(size) = self.build_probe_datagram(now, buf, &[Frame::PathChallenge { data }], PROBE_DATAGRAM_SIZE) {
                self.path.old_path_data = Some(data);
                return Some(Transmit { destination: to, ecn: None, size, segment_size: None });
            }
        }
        while let Some(r) = self.path.off_path_responses.pop_front() {
            // §9.5: no connection ID on two paths. A client answering on an
            // address it left (the server validating the old path after
            // the client moved to its preferred address, §9.3.3) uses an
            // unused ID of the server's, or does not answer.
            if !self.side.is_server() {
                let Some(dcid) = self.remote_cids.peek_spare() else { continue };
                self.probe_dcid = Some(dcid);
            }
            // A server answering a peer that probes a new path (§9.1)
            // challenges that path in the same datagram, so the path is
            // on its way to validation before the peer moves to it.
            let mut challenge = [0u8; 8];
            self.rng.fill(&mut challenge);
            let response = [Frame::PathResponse { data: r.data }];
            let with_challenge = [Frame::PathResponse { data: r.data }, Frame::PathChallenge { data: challenge }];
            let frames: &[Frame<'_>] = if self.side.is_server() { &with_challenge } else { &response };
            let built = self.build_probe_datagram(now, buf, frames, r.allowance);
            self.probe_dcid = None;
            if let Some(size) = built {
                return Some(Transmit { destination: r.to, ecn: None, size, segment_size: None });
            }
        }
        None
    }
}
