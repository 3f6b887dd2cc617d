//! Connection IDs of one connection (RFC 9000 §5.1): the ones we issued to
//! the peer and the ones it issued to us.

use std::collections::VecDeque;

use crate::cid::{ConnectionId, ResetToken};
use crate::cid_gen::{ConnectionIdGenerator, ResetTokenKey};
use crate::error::{Error, TransportErrorCode};
use crate::rand::RandomSource;

/// Routing changes for the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CidEvent {
    /// Packets to this ID now belong to the connection.
    Issued(ConnectionId),
    /// The peer retired this ID; stop routing it.
    Retired(ConnectionId),
}

/// IDs we issued (sequence numbers start at 0 with the handshake SCID).
pub struct LocalCids {
    issued: VecDeque<(u64, ConnectionId, ResetToken)>,
    next_seq: u64,
    generator: Box<dyn ConnectionIdGenerator>,
    reset_key: Option<ResetTokenKey>,
    events: VecDeque<CidEvent>,
    /// NEW_CONNECTION_ID frames to (re)send, by sequence number.
    pub pending_new: VecDeque<u64>,
    initial: ConnectionId,
}

impl core::fmt::Debug for LocalCids {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LocalCids").field("issued", &self.issued.len()).field("next_seq", &self.next_seq).finish()
    }
}

impl LocalCids {
    pub fn new(initial: ConnectionId, generator: Box<dyn ConnectionIdGenerator>, reset_key: Option<ResetTokenKey>) -> Self {
        let token = reset_key.as_ref().map(|k| k.token(&initial)).unwrap_or_default();
        let mut issued = VecDeque::new();
        issued.push_back((0, initial, token));
        Self { issued, next_seq: 1, generator, reset_key, events: VecDeque::new(), pending_new: VecDeque::new(), initial }
    }

    pub fn initial(&self) -> ConnectionId {
        self.initial
    }

    /// Server: `cid` went to the client in preferred_address, as sequence
    /// number 1 (RFC 9000 §5.1.1); it is issued like any other (routed,
    /// retired) but no NEW_CONNECTION_ID carries it.
    pub fn adopt_preferred(&mut self, cid: ConnectionId) {
        if self.next_seq != 1 {
            return;
        }
        let token = self.reset_key.as_ref().map(|k| k.token(&cid)).unwrap_or_default();
        self.issued.push_back((1, cid, token));
        self.next_seq = 2;
        self.events.push_back(CidEvent::Issued(cid));
    }

    pub fn cid_len(&self) -> usize {
        self.generator.cid_len()
    }

    /// Issues IDs until the peer holds `limit` of ours (its
    /// active_connection_id_limit, RFC 9000 §5.1.1). Zero-length IDs cannot
    /// be rotated, so none are issued then.
    pub fn top_up(&mut self, limit: u64, rng: &mut dyn RandomSource) {
        if self.generator.cid_len() == 0 {
            return;
        }
        // Our own bound, whatever the peer allows.
        let limit = limit.min(8);
        let missing = (limit as usize).saturating_sub(self.issued.len());
        if missing == 0 {
            return;
        }
        // The IDs' random bytes (and tokens', without a reset key) in one
        // draw: one system call for the burst instead of one per ID.
        let per_id = self.generator.cid_len() + if self.reset_key.is_some() { 0 } else { 16 };
        let mut rng = crate::rand::Prefetched::new(rng, missing * per_id);
        let rng: &mut dyn RandomSource = &mut rng;
        while (self.issued.len() as u64) < limit {
            let cid = self.generator.generate(rng);
            let token = match &self.reset_key {
                Some(k) => k.token(&cid),
                None => {
                    let mut t = [0u8; 16];
                    rng.fill(&mut t);
                    ResetToken(t)
                }
            };
            let seq = self.next_seq;
            self.next_seq += 1;
            self.issued.push_back((seq, cid, token));
            self.pending_new.push_back(seq);
            self.events.push_back(CidEvent::Issued(cid));
        }
    }

    /// The sequence number of an ID we issued and the peer has not retired.
    pub fn seq_of(&self, cid: &ConnectionId) -> Option<u64> {
        self.issued.iter().find(|(_, c, _)| c == cid).map(|(s, _, _)| *s)
    }

    pub fn get(&self, seq: u64) -> Option<(ConnectionId, ResetToken)> {
        self.issued.iter().find(|(s, _, _)| *s == seq).map(|(_, c, t)| (*c, *t))
    }

    /// RFC 9000 §19.16: retiring an ID we never issued is PROTOCOL_VIOLATION;
    /// retiring the one the packet arrived on likewise.
    pub fn on_retire(&mut self, seq: u64, packet_dcid: &[u8]) -> Result<(), Error> {
        if seq >= self.next_seq {
            return Err(Error::protocol_violation("RETIRE_CONNECTION_ID for an unissued sequence number").with_frame_type(0x19));
        }
        if let Some(pos) = self.issued.iter().position(|(s, _, _)| *s == seq) {
            if self.issued[pos].1.as_slice() == packet_dcid {
                return Err(Error::protocol_violation("retired the connection ID in use").with_frame_type(0x19));
            }
            let (_, cid, _) = self.issued.remove(pos).unwrap_or((0, ConnectionId::EMPTY, ResetToken::default()));
            self.events.push_back(CidEvent::Retired(cid));
        }
        Ok(())
    }

    pub fn poll_event(&mut self) -> Option<CidEvent> {
        self.events.pop_front()
    }
}

/// RETIRE_CONNECTION_ID frames we may owe at once.
const MAX_PENDING_RETIRE: usize = 256;

/// IDs the peer issued to us.
#[derive(Debug)]
pub struct RemoteCids {
    active: (u64, ConnectionId, Option<ResetToken>),
    spare: VecDeque<(u64, ConnectionId, ResetToken)>,
    retire_prior_to: u64,
    limit: u64,
    /// RETIRE_CONNECTION_ID frames to send.
    pub pending_retire: VecDeque<u64>,
}

impl RemoteCids {
    pub fn new(initial: ConnectionId, limit: u64) -> Self {
        Self { active: (0, initial, None), spare: VecDeque::new(), retire_prior_to: 0, limit: limit.max(2), pending_retire: VecDeque::new() }
    }

    pub fn active(&self) -> ConnectionId {
        self.active.1
    }

    /// Client: the server's first SCID replaces the DCID we made up (RFC 9000 §7.2).
    pub fn set_initial(&mut self, cid: ConnectionId) {
        self.active = (0, cid, self.active.2);
    }

    /// The stateless reset token for the active ID (from the server's
    /// transport parameters for sequence 0).
    pub fn set_initial_reset_token(&mut self, token: ResetToken) {
        if self.active.0 == 0 {
            self.active.2 = Some(token);
        }
    }

    pub fn is_reset_token(&self, token: &[u8]) -> bool {
        self.active.2.is_some_and(|t| t.ct_eq(token)) || self.spare.iter().any(|(_, _, t)| t.ct_eq(token))
    }

    /// An unused ID from the peer, left unused (a one-off probe on another
    /// path, RFC 9000 §9.5).
    pub fn peek_spare(&self) -> Option<ConnectionId> {
        self.spare.front().map(|(_, c, _)| *c)
    }

    /// An unused ID from the peer is available for a new path.
    pub fn has_spare(&self) -> bool {
        !self.spare.is_empty()
    }

    /// Switches to the peer's unused ID of sequence `seq` (the one in
    /// preferred_address, RFC 9000 §9.6.1) and retires the current one.
    pub fn switch_to(&mut self, seq: u64) -> bool {
        let Some(i) = self.spare.iter().position(|(s, _, _)| *s == seq) else { return false };
        let Some((s, c, t)) = self.spare.remove(i) else { return false };
        self.pending_retire.push_back(self.active.0);
        self.active = (s, c, Some(t));
        true
    }

    /// Switches to an unused ID from the peer and retires the current one
    /// (RFC 9000 §9.5: a new ID for a new path). False when none is spare.
    pub fn rotate(&mut self) -> bool {
        let Some((s, c, t)) = self.spare.pop_front() else { return false };
        self.pending_retire.push_back(self.active.0);
        self.active = (s, c, Some(t));
        true
    }

    /// RFC 9000 §19.15 NEW_CONNECTION_ID.
    pub fn on_new_cid(&mut self, seq: u64, retire_prior_to: u64, cid: ConnectionId, token: ResetToken) -> Result<(), Error> {
        const FT: u64 = 0x18;
        // Same sequence with different contents is PROTOCOL_VIOLATION.
        if seq == self.active.0 && seq >= self.retire_prior_to {
            if self.active.1 != cid {
                return Err(Error::protocol_violation("NEW_CONNECTION_ID reuses a sequence number").with_frame_type(FT));
            }
        } else if let Some((_, c, _)) = self.spare.iter().find(|(s, _, _)| *s == seq) {
            if *c != cid {
                return Err(Error::protocol_violation("NEW_CONNECTION_ID reuses a sequence number").with_frame_type(FT));
            }
            return Ok(());
        }
        if seq < self.retire_prior_to {
            // Already retired: retire it again (§19.15).
            self.pending_retire.push_back(seq);
            return Ok(());
        }
        if seq != self.active.0 {
            self.spare.push_back((seq, cid, token));
        }
        if retire_prior_to > self.retire_prior_to {
            self.retire_prior_to = retire_prior_to;
            let rpt = retire_prior_to;
            let mut retired = Vec::new();
            self.spare.retain(|(s, _, _)| {
                if *s < rpt {
                    retired.push(*s);
                    false
                } else {
                    true
                }
            });
            self.pending_retire.extend(retired);
            if self.active.0 < rpt {
                self.pending_retire.push_back(self.active.0);
                match self.spare.pop_front() {
                    Some((s, c, t)) => self.active = (s, c, Some(t)),
                    None => return Err(Error::new(TransportErrorCode::PROTOCOL_VIOLATION, "all connection IDs retired").with_frame_type(FT)),
                }
            }
        }
        // RFC 9000 §5.1.2: bound the retirements we still owe.
        if self.pending_retire.len() > MAX_PENDING_RETIRE {
            return Err(Error::new(TransportErrorCode::CONNECTION_ID_LIMIT_ERROR, "too many connection IDs to retire").with_frame_type(FT));
        }
        // §5.1.1: more active IDs than our limit is CONNECTION_ID_LIMIT_ERROR.
        if self.spare.len() as u64 + 1 > self.limit {
            return Err(Error::new(TransportErrorCode::CONNECTION_ID_LIMIT_ERROR, "too many connection IDs").with_frame_type(FT));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rotate_moves_to_a_spare_id_and_retires_the_old_one() {
        let first = ConnectionId::new(&[1; 8]).unwrap();
        let mut r = RemoteCids::new(first, 4);
        // Nothing spare: the current ID stays (RFC 9000 §9.5 then allows
        // no switch).
        assert!(!r.rotate());
        assert_eq!(r.active(), first);
        let second = ConnectionId::new(&[2; 8]).unwrap();
        r.on_new_cid(1, 0, second, ResetToken([9; 16])).unwrap();
        assert!(r.rotate());
        assert_eq!(r.active(), second);
        assert_eq!(r.pending_retire.iter().copied().collect::<Vec<_>>(), vec![0]);
        assert!(r.is_reset_token(&[9; 16]));
        assert!(!r.rotate());
    }

    fn cid(b: u8) -> ConnectionId {
        ConnectionId::new(&[b; 8]).unwrap()
    }

    /// RFC 9000 §5.1.1: a peer that gives us more connection IDs than our
    /// active_connection_id_limit commits CONNECTION_ID_LIMIT_ERROR.
    #[test]
    fn more_ids_than_our_limit_is_connection_id_limit_error() {
        let mut r = RemoteCids::new(cid(0), 4);
        for seq in 1..4u8 {
            r.on_new_cid(u64::from(seq), 0, cid(seq), ResetToken([seq; 16])).unwrap();
        }
        // The fifth active ID (sequence numbers 0..=4) is one too many.
        let e = r.on_new_cid(4, 0, cid(4), ResetToken([4; 16])).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::CONNECTION_ID_LIMIT_ERROR);
        assert_eq!(e.frame_type, Some(0x18));
        // Retiring the older ones with Retire Prior To keeps the count
        // within the limit: not an error.
        let mut r = RemoteCids::new(cid(0), 2);
        for seq in 1..20u8 {
            r.on_new_cid(u64::from(seq), u64::from(seq), cid(seq), ResetToken([seq; 16])).unwrap();
            let _ = r.pending_retire.pop_front();
        }
    }

    /// RFC 9000 §5.1.2: retirements we owe are bounded; a peer that makes us
    /// owe more (a long run of Retire Prior To jumps we could not yet
    /// answer) gets CONNECTION_ID_LIMIT_ERROR instead of unbounded state.
    #[test]
    fn unanswered_retirements_are_bounded() {
        let mut r = RemoteCids::new(cid(0), 2);
        let mut result = Ok(());
        for seq in 1..=(MAX_PENDING_RETIRE as u64 + 2) {
            result = r.on_new_cid(seq, seq, cid(seq as u8), ResetToken([seq as u8; 16]));
            if result.is_err() {
                break;
            }
        }
        let e = result.unwrap_err();
        assert_eq!(e.code, TransportErrorCode::CONNECTION_ID_LIMIT_ERROR);
        assert!(r.pending_retire.len() > MAX_PENDING_RETIRE);
    }
}
