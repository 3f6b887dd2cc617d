//! ECN validation for one path (RFC 9000 §13.4.2, Appendix A.4).
//!
//! We mark outgoing packets ECT(0) while *testing* (the first
//! [`TESTING_PACKETS`] packets of a path), then stop marking until an
//! acknowledgment shows how the path treated the marks: counts that grew by
//! at least the number of newly acknowledged marked packets make the path
//! *capable* (every packet marked from then on); a peer that acknowledges
//! marked packets without ECN counts, counts that go down, ECT(0) remarked
//! as ECT(1) or bleached to Not-ECT, or every testing packet lost, make it
//! *failed* (no more marks on this path). A new path starts over.

use crate::recovery::SpaceId;

/// Packets marked before validation is decided (RFC 9000 A.4 suggests 10).
pub const TESTING_PACKETS: u32 = 10;

/// Where validation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcnState {
    /// Marking the first packets of the path.
    Testing,
    /// The testing packets are out; waiting for their acknowledgment
    /// without marking more.
    Unknown,
    Capable,
    Failed,
}

/// Why validation failed (for qlog and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcnFailure {
    /// Marked packets were acknowledged by a frame without ECN counts.
    NoCounts,
    /// A count went down.
    CountsDecreased,
    /// Fewer ECT(0) + CE increments than newly acknowledged marked packets:
    /// the marks were bleached (RFC 9000 §13.4.2.1).
    Bleached,
    /// ECT(1) was reported though we send only ECT(0): remarked.
    Remarked,
    /// Every packet marked while testing was lost: ECN-marked packets may
    /// be dropped on this path.
    TestingLost,
}

/// The ECN counts of one packet number space as last reported.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    ect0: u64,
    ect1: u64,
    ce: u64,
}

/// ECN state of the current path.
#[derive(Debug, Clone)]
pub struct EcnValidator {
    enabled: bool,
    state: EcnState,
    testing_sent: u32,
    testing_lost: u32,
    /// Highest counts seen per packet number space (RFC 9000 §13.4.1:
    /// counts are per space).
    counts: [Counts; 3],
    failure: Option<EcnFailure>,
}

impl EcnValidator {
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            state: if enabled { EcnState::Testing } else { EcnState::Failed },
            testing_sent: 0,
            testing_lost: 0,
            counts: [Counts::default(); 3],
            failure: None,
        }
    }

    pub fn state(&self) -> EcnState {
        self.state
    }

    pub fn failure(&self) -> Option<EcnFailure> {
        self.failure
    }

    /// Whether the next datagram is marked ECT(0).
    pub fn should_mark(&self) -> bool {
        matches!(self.state, EcnState::Testing | EcnState::Capable)
    }

    /// A marked packet was sent.
    pub fn on_marked_sent(&mut self) {
        if self.state == EcnState::Testing {
            self.testing_sent += 1;
            if self.testing_sent >= TESTING_PACKETS {
                self.state = EcnState::Unknown;
            }
        }
    }

    /// A marked packet was declared lost. Returns a state change.
    pub fn on_marked_lost(&mut self) -> Option<EcnState> {
        if matches!(self.state, EcnState::Testing | EcnState::Unknown) {
            self.testing_lost += 1;
            if self.testing_sent >= TESTING_PACKETS && self.testing_lost >= self.testing_sent {
                return self.fail(EcnFailure::TestingLost);
            }
        }
        None
    }

    fn fail(&mut self, why: EcnFailure) -> Option<EcnState> {
        if self.state == EcnState::Failed {
            return None;
        }
        self.state = EcnState::Failed;
        self.failure = Some(why);
        Some(EcnState::Failed)
    }

    /// An ACK frame in `space` newly acknowledged `newly_marked` packets we
    /// had marked ECT(0); `counts` are its (ECT0, ECT1, CE) counts, if it
    /// carried them. Returns a state change, if any (RFC 9000 §13.4.2.1).
    pub fn on_ack(&mut self, space: SpaceId, newly_marked: u64, counts: Option<(u64, u64, u64)>) -> Option<EcnState> {
        if self.state == EcnState::Failed || !self.enabled {
            return None;
        }
        let prev = self.counts[space.index()];
        let Some((ect0, ect1, ce)) = counts else {
            return if newly_marked > 0 { self.fail(EcnFailure::NoCounts) } else { None };
        };
        if ect0 < prev.ect0 || ect1 < prev.ect1 || ce < prev.ce {
            return self.fail(EcnFailure::CountsDecreased);
        }
        self.counts[space.index()] = Counts { ect0, ect1, ce };
        if ect1 > prev.ect1 {
            return self.fail(EcnFailure::Remarked);
        }
        if newly_marked == 0 {
            return None;
        }
        if (ect0 - prev.ect0) + (ce - prev.ce) < newly_marked {
            return self.fail(EcnFailure::Bleached);
        }
        if self.state != EcnState::Capable {
            self.state = EcnState::Capable;
            return Some(EcnState::Capable);
        }
        None
    }

    /// A new path: validation starts over (RFC 9000 §13.4.2: per path).
    pub fn on_new_path(&mut self) {
        *self = Self::new(self.enabled);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(v: &mut EcnValidator, n: u32) {
        for _ in 0..n {
            assert!(v.should_mark());
            v.on_marked_sent();
        }
    }

    #[test]
    fn testing_then_capable() {
        let mut v = EcnValidator::new(true);
        sent(&mut v, TESTING_PACKETS);
        assert_eq!(v.state(), EcnState::Unknown);
        assert!(!v.should_mark(), "no marks while unknown");
        assert_eq!(v.on_ack(SpaceId::Data, 3, Some((3, 0, 0))), Some(EcnState::Capable));
        assert!(v.should_mark());
        // CE counts as a delivered mark too.
        assert_eq!(v.on_ack(SpaceId::Data, 2, Some((4, 0, 1))), None);
        assert_eq!(v.state(), EcnState::Capable);
    }

    #[test]
    fn failures() {
        type Case = (u64, Option<(u64, u64, u64)>, EcnFailure);
        let cases: [Case; 3] = [(2, None, EcnFailure::NoCounts), (2, Some((1, 0, 0)), EcnFailure::Bleached), (2, Some((0, 2, 0)), EcnFailure::Remarked)];
        for (newly, counts, why) in cases {
            let mut v = EcnValidator::new(true);
            sent(&mut v, 2);
            assert_eq!(v.on_ack(SpaceId::Initial, newly, counts), Some(EcnState::Failed), "{why:?}");
            assert_eq!(v.failure(), Some(why));
            assert!(!v.should_mark());
        }
        let mut v = EcnValidator::new(true);
        sent(&mut v, 2);
        v.on_ack(SpaceId::Data, 2, Some((2, 0, 0)));
        assert_eq!(v.on_ack(SpaceId::Data, 1, Some((1, 0, 0))), Some(EcnState::Failed));
        assert_eq!(v.failure(), Some(EcnFailure::CountsDecreased));
    }

    #[test]
    fn spaces_count_separately_and_acks_without_marked_packets_are_neutral() {
        let mut v = EcnValidator::new(true);
        sent(&mut v, 4);
        assert_eq!(v.on_ack(SpaceId::Initial, 1, Some((1, 0, 0))), Some(EcnState::Capable));
        // A lower count in another space is not a decrease.
        assert_eq!(v.on_ack(SpaceId::Handshake, 0, Some((0, 0, 0))), None);
        assert_eq!(v.on_ack(SpaceId::Data, 0, None), None, "ACK of unmarked packets needs no counts");
        assert_eq!(v.state(), EcnState::Capable);
    }

    #[test]
    fn all_testing_packets_lost() {
        let mut v = EcnValidator::new(true);
        sent(&mut v, TESTING_PACKETS);
        for i in 0..TESTING_PACKETS {
            let change = v.on_marked_lost();
            assert_eq!(change.is_some(), i == TESTING_PACKETS - 1);
        }
        assert_eq!(v.failure(), Some(EcnFailure::TestingLost));
    }

    #[test]
    fn disabled_and_new_path() {
        let v = EcnValidator::new(false);
        assert!(!v.should_mark());
        let mut v = EcnValidator::new(true);
        sent(&mut v, 2);
        v.on_ack(SpaceId::Data, 2, None);
        assert_eq!(v.state(), EcnState::Failed);
        v.on_new_path();
        assert_eq!(v.state(), EcnState::Testing);
    }
}
