//! CONFORMANCE TESTING ONLY: compiled with the `conformance` cargo feature
//! and never in a normal build.
//!
//! A conformance client must put bytes on the wire that a correct endpoint
//! never sends — a frame in the wrong packet type, a reserved bit set, an
//! ACK of a packet never sent — and still protect them properly, so that
//! the peer's frame and packet checks (not its AEAD) are what reject them.
//! These hooks build such packets with the connection's real keys, packet
//! numbers and connection IDs; the rest of the connection runs as usual.

use std::time::Instant;

use super::send::TAG_LEN;
use super::{Connection, Side, Transmit};
use crate::packet::MIN_INITIAL_DATAGRAM_SIZE;
use crate::recovery::SpaceId;

/// The packet type a raw payload is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawSpace {
    Initial,
    Handshake,
    /// A short-header packet with the current 1-RTT keys.
    OneRtt,
}

impl Connection {
    /// CONFORMANCE TESTING ONLY: whether packets of `space` can be sealed
    /// now (its keys are installed and not discarded).
    pub fn conformance_can_send(&self, space: RawSpace) -> bool {
        match space {
            RawSpace::Initial => self.can_send_in(SpaceId::Initial),
            RawSpace::Handshake => self.can_send_in(SpaceId::Handshake),
            RawSpace::OneRtt => self.one_rtt.is_some() && self.can_send_in(SpaceId::Data),
        }
    }

    /// CONFORMANCE TESTING ONLY (feature `conformance`). Writes into `buf`
    /// one datagram holding one packet of type `space` whose payload is
    /// exactly `payload` (raw frame bytes, valid or not), sealed with the
    /// current keys of that space, and with `reserved_bits` (two bits)
    /// written into the header's reserved bits before protection
    /// (RFC 9000 §17.2, §17.3.1). A client's Initial is padded to 1200
    /// bytes with PADDING frames placed before the payload, so that the
    /// payload's last frame still ends the packet. `None` when the space
    /// has no keys or `buf` is too small.
    pub fn conformance_raw_packet(&mut self, now: Instant, buf: &mut [u8], space: RawSpace, payload: &[u8], reserved_bits: u8) -> Option<Transmit> {
        let id = match space {
            RawSpace::Initial => SpaceId::Initial,
            RawSpace::Handshake => SpaceId::Handshake,
            RawSpace::OneRtt => SpaceId::Data,
        };
        if !self.can_send_in(id) || (id == SpaceId::Data && self.one_rtt.is_none()) {
            return None;
        }
        let mut p = self.begin_packet(id, buf, 0, buf.len())?;
        let pad =
            if id == SpaceId::Initial && self.side == Side::Client { MIN_INITIAL_DATAGRAM_SIZE.saturating_sub(p.end + payload.len() + TAG_LEN) } else { 0 };
        let end = p.end + pad + payload.len();
        if end > p.limit {
            return None;
        }
        buf[p.end..p.end + pad].fill(0);
        buf[p.end + pad..end].copy_from_slice(payload);
        p.end = end;
        p.ack_eliciting = true;
        p.padded = pad > 0;
        // Long header: reserved bits 0x0c; short header: 0x18 (§17.2, §17.3.1).
        let shift = if id == SpaceId::Data { 3 } else { 2 };
        buf[0] |= (reserved_bits & 0x03) << shift;
        let end = self.seal(now, buf, &mut p)?;
        let size = self.on_datagram_built(end);
        Some(Transmit { destination: self.remote, ecn: None, size, segment_size: None })
    }
}
