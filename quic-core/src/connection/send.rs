//! Sending: choosing frames, building and coalescing packets, padding,
//! sealing (RFC 9000 §12–§14, RFC 9001 §5).

use std::time::Instant;

use super::spaces::{Retransmit, SentFrames, StreamRange};
use super::{Connection, Side, State, Transmit};
use crate::codec::Writer;
use crate::frame::{AckFrame, CryptoFrameHeader, DatagramFrameHeader, Frame, StreamDir, StreamFrameHeader};
use crate::packet::header::{HeaderLayout, LongHeader, LongType, ShortHeader};
use crate::packet::{number, MIN_INITIAL_DATAGRAM_SIZE};
use crate::recovery::{SentPacket, SpaceId};
use crate::stream::Dir;

/// AEAD tag length of every QUIC v1/v2 cipher suite (RFC 9001 §5.3).
pub(super) const TAG_LEN: usize = 16;
/// How far below the maximum a datagram may end and still start a GSO batch.
pub(super) const GSO_SLACK: usize = 24;
/// Smallest room worth starting a packet in.
pub(super) const MIN_PACKET_ROOM: usize = 64;

/// A packet whose header is written and whose frames are being added.
pub(super) struct OpenPacket {
    space: SpaceId,
    zero_rtt: bool,
    start: usize,
    layout: HeaderLayout,
    pn: u64,
    /// Absolute end of the payload written so far.
    pub(super) end: usize,
    /// Absolute bound for the payload (leaving room for the tag).
    pub(super) limit: usize,
    frames: SentFrames,
    pub(super) ack_eliciting: bool,
    pub(super) padded: bool,
    /// Carries PATH_CHALLENGE or PATH_RESPONSE: the datagram is expanded
    /// to 1200 bytes within the amplification budget (RFC 9000 §8.2.1, §8.2.2).
    expand: bool,
    /// A PMTU probe: PING and PADDING to the size tried (RFC 9000 §14.4).
    mtu_probe: bool,
}

impl OpenPacket {
    fn room(&self) -> usize {
        self.limit.saturating_sub(self.end)
    }
}

impl Connection {
    /// Writes the next datagram(s) to send into `buf`; `None` when nothing is
    /// due (check `poll_timeout`). With GSO enabled, several equal-size
    /// datagrams may be written back to back.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        if matches!(self.state, State::Draining | State::Drained) {
            return None;
        }
        let peer_max = self.peer_params.as_ref().map_or(usize::MAX, |p| p.max_udp_payload_size as usize);
        let max_size = buf.len().min(self.mtu as usize).min(peer_max);
        // Probes and answers owed to another address than `remote` (path.rs).
        if let Some(t) = self.poll_path_transmit(now, &mut buf[..max_size]) {
            return Some(t);
        }
        // One ECN codepoint for the whole (GSO) transmit.
        self.tx_ecn = self.ecn.should_mark();
        if let Some(t) = self.poll_mtu_probe(now, buf) {
            return Some(t);
        }
        let first = self.build_datagram(now, &mut buf[..max_size], false)?;
        let mut total = first;
        let mut segments = 1;
        // GSO: keep adding datagrams of exactly `first` bytes while there is
        // full-size 1-RTT data to send (the last may be shorter).
        // A datagram filled with data (within a frame header of full) starts
        // a batch; later segments get exactly its size, and a shorter one
        // ends the batch (GSO needs equal segments but the last).
        let full = first + GSO_SLACK >= max_size && self.state == State::Established;
        // One 1-RTT packet (a short header first: nothing coalesced, so not
        // a padded handshake datagram) filling the datagram: data fills our
        // packets, which counts toward the search (`pmtud.rs`). When that
        // starts the search, the probe takes the next slot
        // rather than waiting behind a whole batch (and the window it may
        // fill): a larger size found early in slow start, not rounds later.
        let search_started = full && buf.first().is_some_and(|b| b & 0x80 == 0) && self.pmtud.on_full_packets(1);
        if full && !search_started && self.config.max_gso_segments > 1 {
            while segments < self.config.max_gso_segments && total + first <= buf.len() {
                let Some(n) = self.build_datagram(now, &mut buf[total..total + first], true) else { break };
                total += n;
                segments += 1;
                if n < first {
                    break;
                }
            }
            // The batch's other full segments count toward the search too.
            let _ = self.pmtud.on_full_packets(segments - 1);
        }
        Some(Transmit {
            destination: self.remote,
            ecn: self.tx_ecn.then_some(super::EcnCodepoint::Ect0),
            size: total,
            segment_size: (segments > 1).then_some(first),
        })
    }

    /// Builds one datagram in `buf`. With `fill_slack` (a GSO segment after
    /// the first), a 1-RTT packet that ends at most [`GSO_SLACK`] bytes short
    /// of `buf` is padded to fill it exactly, so that the batch goes on: a
    /// packet of stream data usually ends a few bytes short (the last frame
    /// header is smaller than its bound, or the room left is too small for
    /// another frame), and every such packet ended a batch after two
    /// segments (1 KB responses: 421,450 of 429,695 messages).
    fn build_datagram(&mut self, now: Instant, buf: &mut [u8], fill_slack: bool) -> Option<usize> {
        let mut budget = buf.len();
        if !self.address_validated {
            // RFC 9000 §8.1: at most three times what was received.
            let allowed = (3 * self.bytes_received).saturating_sub(self.bytes_sent) as usize;
            budget = budget.min(allowed);
        }
        if budget < MIN_PACKET_ROOM {
            return None;
        }
        if self.state == State::Closing {
            return self.build_close(now, &mut buf[..budget]);
        }
        self.maybe_initiate_key_update(now);
        let probing = self.spaces.iter().any(|s| s.probes > 0);
        let window_ok = self.recovery.can_send(budget as u64);
        if !probing && !window_ok && self.state == State::Established && self.has_frames_for(SpaceId::Data) {
            // The window, not the application, holds data back
            // (C.is_cwnd_limited for BBR's probing, `delivery.rs`).
            self.recovery.on_cwnd_limited();
        }
        let mut cc_ok = probing || window_ok;
        if cc_ok && !probing {
            if let Some(t) = self.recovery.pacing_deadline(now, budget as u64) {
                if t > now {
                    self.pacing_deadline = Some(t);
                    cc_ok = false;
                }
            }
        }
        let mut written = 0;
        let mut open: Option<OpenPacket> = None;
        let mut pad_datagram = false;
        for space in [SpaceId::Initial, SpaceId::Handshake, SpaceId::Data] {
            if !self.can_send_in(space) {
                continue;
            }
            let wants_ack = self.spaces[space.index()].ack.ack_due(now);
            let path_frames = space == SpaceId::Data && self.one_rtt.is_some() && (self.path.challenge_due() || !self.pending.path_responses.is_empty());
            let wants_data = (cc_ok && self.has_frames_for(space)) || path_frames;
            if !wants_ack && !wants_data {
                continue;
            }
            // No room for another packet behind the open one: keep it open
            // (it may still need padding) and end the datagram with it.
            if open.as_ref().is_some_and(|p| budget.saturating_sub(p.end + TAG_LEN) < MIN_PACKET_ROOM) {
                break;
            }
            // The open packet is built and sealed where it lies: it is a
            // few hundred bytes, and moving it by value cost as much as
            // copying the payload (perf of `quicpro serve` in bulk).
            if let Some(p) = open.as_mut() {
                let sealed = self.seal(now, buf, p);
                open = None;
                match sealed {
                    Some(w) => written = w,
                    None => break,
                }
            }
            if budget - written < MIN_PACKET_ROOM {
                break;
            }
            open = self.begin_packet(space, buf, written, budget);
            let Some(p) = open.as_mut() else { break };
            self.fill_packet(now, p, buf, cc_ok);
            if p.end == p.layout.header_len() {
                open = None;
                continue; // Nothing fit; the header is overwritten next.
            }
            if p.expand || (space == SpaceId::Initial && (self.side == Side::Client || p.ack_eliciting)) {
                // RFC 9000 §14.1: datagrams with a client Initial, or an
                // ack-eliciting server Initial, are at least 1200 bytes;
                // §8.2.1, §8.2.2: so are those with PATH_CHALLENGE or
                // PATH_RESPONSE (within the amplification budget).
                pad_datagram = true;
            }
        }
        // Packets already sealed are recorded as sent: the datagram that
        // holds them must go out even when nothing follows them (dropping
        // it lost their frames for good: a Handshake flight that never
        // left, so a peer's handshake stalled).
        let Some(p) = open.as_mut() else {
            if written == 0 && cc_ok && self.state == State::Established {
                // The window and the pacer allowed more but there was
                // nothing to send: rate samples from here until this
                // flight is delivered are application-limited
                // (draft-ietf-ccwg-bbr §4.1.2.6).
                self.recovery.on_app_limited();
            }
            return (written > 0).then(|| self.on_datagram_built(written));
        };
        // RFC 9000 §19.1: PADDING frames fill the rest; they count toward
        // bytes in flight (`padded`) like the datagram's other bytes.
        let want_end = budget.saturating_sub(TAG_LEN);
        if fill_slack && p.space == SpaceId::Data && p.end < want_end && want_end - p.end <= GSO_SLACK && want_end <= p.limit {
            if let Some(pad) = buf.get_mut(p.end..want_end) {
                pad.fill(0);
                p.end = want_end;
                p.padded = true;
            }
        }
        if pad_datagram {
            let target = MIN_INITIAL_DATAGRAM_SIZE.min(budget);
            let want_end = target.saturating_sub(TAG_LEN);
            if p.end < want_end && want_end <= p.limit {
                buf[p.end..want_end].fill(0);
                p.end = want_end;
                p.padded = true;
            }
        }
        let end = match self.seal(now, buf, p) {
            Some(end) => end,
            None if written > 0 => written,
            None => return None,
        };
        Some(self.on_datagram_built(end))
    }

    /// Accounts a datagram of `len` bytes about to go out.
    pub(super) fn on_datagram_built(&mut self, len: usize) -> usize {
        self.bytes_sent += len as u64;
        self.stats.bytes_sent += len as u64;
        if !self.address_validated && self.bytes_received > 0 {
            let ratio = self.bytes_sent * 100 / self.bytes_received;
            self.stats.max_amplification_x100 = self.stats.max_amplification_x100.max(ratio);
        }
        len
    }

    pub(super) fn can_send_in(&self, space: SpaceId) -> bool {
        if self.spaces.is_discarded(space.index()) {
            return false;
        }
        let s = &self.spaces[space.index()];
        match space {
            SpaceId::Initial | SpaceId::Handshake => s.keys.is_some(),
            SpaceId::Data => self.one_rtt.is_some() || (self.side == Side::Client && self.zero_rtt.is_some()),
        }
    }

    fn has_frames_for(&self, space: SpaceId) -> bool {
        let s = &self.spaces[space.index()];
        if s.probes > 0 || s.crypto_send.has_data_to_send() {
            return true;
        }
        if space != SpaceId::Data {
            return false;
        }
        let p = &self.pending;
        let one_rtt = self.one_rtt.is_some();
        (one_rtt
            && (p.handshake_done
                || p.max_data
                || p.max_streams.iter().any(|b| *b)
                // Streams reaped when the peer acknowledged their last
                // bytes free credit with no flag set: a peer that only
                // sends ACKs must still get MAX_STREAMS (RFC 9000 §4.6).
                || self.streams.limits.should_send_max_streams(Dir::Bi).is_some()
                || self.streams.limits.should_send_max_streams(Dir::Uni).is_some()
                || p.data_blocked.is_some()
                || p.streams_blocked.iter().any(|b| b.is_some())
                || !p.path_responses.is_empty()
                || self.path.challenge_due()
                || p.ping
                || p.new_token.is_some()
                || !self.streams.pending_max_stream_data.is_empty()
                || !self.streams.pending_reset.is_empty()
                || !self.streams.pending_stop_sending.is_empty()
                || !self.local_cids.pending_new.is_empty()
                || !self.remote_cids.pending_retire.is_empty()))
            || !self.datagrams_out.is_empty()
            || (!self.streams.send_queue.is_empty() && self.stream_data_sendable())
    }

    fn stream_data_sendable(&self) -> bool {
        // Retransmissions and FINs need no credit; new data needs connection credit.
        self.conn_send.available() > 0
            || self.streams.send_queue.iter().any(|id| self.streams.map.get(id).and_then(|s| s.send.as_ref()).is_some_and(|s| s.has_data_to_send()))
    }

    /// RFC 9001 §6.1: start a key update after `key_update_interval` packets,
    /// once the current phase is acknowledged and the handshake confirmed.
    fn maybe_initiate_key_update(&mut self, now: Instant) {
        let interval = self.config.key_update_interval;
        let pto = self.recovery.pto(SpaceId::Data, self.handshake_confirmed);
        if !self.handshake_confirmed {
            return;
        }
        if let Some(k) = &mut self.one_rtt {
            if k.sent_in_phase >= interval && k.phase_acked && !k.updating() {
                k.rotate(now, pto, false);
                self.stats.key_updates += 1;
            }
        }
    }

    /// Forces a key update at the next packet (for tests and operators).
    pub fn initiate_key_update(&mut self, now: Instant) -> bool {
        let pto = self.recovery.pto(SpaceId::Data, self.handshake_confirmed);
        match &mut self.one_rtt {
            Some(k) if self.handshake_confirmed && k.phase_acked && !k.updating() => {
                k.rotate(now, pto, false);
                self.stats.key_updates += 1;
                true
            }
            _ => false,
        }
    }

    pub(super) fn begin_packet(&mut self, space: SpaceId, buf: &mut [u8], start: usize, budget: usize) -> Option<OpenPacket> {
        let pn = self.spaces[space.index()].next_pn;
        let pn_len = number::encoded_len(pn, self.recovery.largest_acked(space));
        let dcid = self.probe_dcid.unwrap_or_else(|| self.remote_cids.active());
        let scid = self.local_cids.initial();
        let mut w = Writer::new(&mut buf[start..budget]);
        let zero_rtt = space == SpaceId::Data && self.one_rtt.is_none();
        let layout = match space {
            SpaceId::Data if !zero_rtt => {
                let key_phase = self.one_rtt.as_ref().is_some_and(|k| k.key_phase);
                ShortHeader { dcid: &dcid, spin: false, key_phase }.encode(&mut w, pn, pn_len).ok()?
            }
            _ => {
                let ty = match space {
                    SpaceId::Initial => LongType::Initial,
                    SpaceId::Handshake => LongType::Handshake,
                    SpaceId::Data => LongType::ZeroRtt,
                };
                let token: &[u8] = if ty == LongType::Initial && self.side == Side::Client { &self.token } else { &[] };
                let width = if budget < 16384 { 2 } else { 4 };
                LongHeader { ty, version: self.version, dcid: &dcid, scid: &scid, token }.encode(&mut w, pn, pn_len, width).ok()?
            }
        };
        let layout =
            HeaderLayout { pn_offset: start + layout.pn_offset, pn_len: layout.pn_len, length_field: layout.length_field.map(|(at, wdt)| (start + at, wdt)) };
        let end = layout.header_len();
        Some(OpenPacket {
            space,
            zero_rtt,
            start,
            layout,
            pn,
            end,
            limit: budget.checked_sub(TAG_LEN)?,
            frames: SentFrames::new(space),
            ack_eliciting: false,
            padded: false,
            expand: false,
            mtu_probe: false,
        })
    }

    /// Adds frames in priority order: ACK, control frames, CRYPTO, DATAGRAM,
    /// STREAM, then a PING if a probe is owed.
    fn fill_packet(&mut self, now: Instant, p: &mut OpenPacket, buf: &mut [u8], cc_ok: bool) {
        let space = p.space;
        // ACK (not in 0-RTT packets, RFC 9000 §12.4).
        if !p.zero_rtt && self.spaces[space.index()].ack.has_unsent() {
            let exp = self.config.ack_delay_exponent;
            let ack = &self.spaces[space.index()].ack;
            let delay = if space == SpaceId::Data { ack.ack_delay(now, exp) } else { 0 };
            let ecn = ack.ecn_counts();
            let largest = ack.largest();
            let mut w = Writer::new(&mut buf[p.end..p.limit]);
            if AckFrame::encode_from_ranges(&mut w, ack.ranges(), delay, ecn).is_ok() {
                p.end += w.len();
                p.frames.ack_largest = largest;
                self.spaces[space.index()].ack.on_ack_sent();
            }
        }
        if space == SpaceId::Data && !p.zero_rtt && self.one_rtt.is_some() {
            self.write_path_frames(now, p, buf);
        }
        if !cc_ok {
            return;
        }
        if space == SpaceId::Data && !p.zero_rtt {
            self.write_control_frames(now, p, buf);
        }
        // CRYPTO.
        {
            let s = &mut self.spaces[space.index()];
            'crypto: {
                if p.room() <= 8 {
                    break 'crypto;
                }
                let probe_room = p.room().saturating_sub(16);
                let Some(chunk) = s.crypto_send.next_chunk(probe_room, u64::MAX >> 2) else { break 'crypto };
                let Some(h) = CryptoFrameHeader::fit(chunk.offset, chunk.len, p.room()) else {
                    s.crypto_send.on_lost(chunk.offset, chunk.len, false);
                    break 'crypto;
                };
                if h.len < chunk.len {
                    // Return what does not fit; it goes in the next packet.
                    s.crypto_send.on_lost(chunk.offset + h.len as u64, chunk.len - h.len, false);
                }
                let mut w = Writer::new(&mut buf[p.end..p.limit]);
                if h.encode(&mut w).is_err() {
                    break 'crypto;
                }
                let hl = w.len();
                let at = p.end + hl;
                if !s.crypto_send.copy_chunk(chunk.offset, h.len, &mut buf[at..at + h.len]) {
                    break 'crypto;
                }
                p.end = at + h.len;
                p.frames.crypto = Some((chunk.offset, h.len as u32));
                p.ack_eliciting = true;
                // One CRYPTO frame per packet keeps the metadata small.
            }
        }
        if space == SpaceId::Data {
            self.write_datagram_frames(p, buf);
            self.write_stream_frames(p, buf);
        }
        let s = &mut self.spaces[space.index()];
        let ping_needed = (s.probes > 0 || (space == SpaceId::Data && self.pending.ping)) && !p.ack_eliciting;
        if ping_needed && p.room() >= 1 {
            buf[p.end] = 0x01;
            p.end += 1;
            p.ack_eliciting = true;
            if space == SpaceId::Data {
                self.pending.ping = false;
            }
        }
        if p.ack_eliciting && s.probes > 0 {
            s.probes -= 1;
            if s.probes > 0 && space != SpaceId::Data && !s.crypto_send.has_data_to_send() {
                // The next probe datagram carries the flight again rather
                // than a bare PING: in a handshake both probes are worth a
                // copy of the data the peer may lack (RFC 9002 §6.2.4).
                self.queue_probe_data(space);
            }
        }
    }

    fn push_frame(p: &mut OpenPacket, buf: &mut [u8], f: &Frame<'_>) -> bool {
        let mut w = Writer::new(&mut buf[p.end..p.limit]);
        if f.encode(&mut w).is_err() {
            return false;
        }
        p.end += w.len();
        p.ack_eliciting |= f.is_ack_eliciting();
        true
    }

    /// PATH_RESPONSE and PATH_CHALLENGE (RFC 9000 §8.2): written whatever
    /// the congestion window, like the probes they are, so that the first
    /// datagram on a new path carries its challenge even when the window
    /// is full of data sent on the old one.
    fn write_path_frames(&mut self, now: Instant, p: &mut OpenPacket, buf: &mut [u8]) {
        while let Some(data) = self.pending.path_responses.front().copied() {
            if !Self::push_frame(p, buf, &Frame::PathResponse { data }) {
                break;
            }
            p.expand = true;
            self.pending.path_responses.pop_front();
        }
        // One PATH_CHALLENGE per packet at most (RFC 9000 §8.2.1).
        if self.path.challenge_due() && p.room() >= 9 {
            // The datagram reaches 1200 bytes when the budget allows it.
            let expanded = p.limit + TAG_LEN >= super::path::PROBE_DATAGRAM_SIZE;
            if let Some(data) = self.take_path_challenge(now, expanded) {
                if Self::push_frame(p, buf, &Frame::PathChallenge { data }) {
                    p.expand = true;
                }
            }
        }
    }

    fn write_control_frames(&mut self, now: Instant, p: &mut OpenPacket, buf: &mut [u8]) {
        if self.pending.handshake_done && Self::push_frame(p, buf, &Frame::HandshakeDone) {
            self.pending.handshake_done = false;
            self.pending.handshake_done_unacked = true;
            p.frames.control.push(Retransmit::HandshakeDone);
        }
        let rtt = self.recovery.rtt().smoothed_rtt();
        if self.pending.max_data || self.conn_recv.should_send_max_data().is_some() {
            let max = self.conn_recv.should_send_max_data().unwrap_or(self.conn_recv.limit());
            if Self::push_frame(p, buf, &Frame::MaxData { max }) {
                self.conn_recv.on_max_data_sent(max, now, rtt);
                self.pending.max_data = false;
                p.frames.control.push(Retransmit::MaxData);
            }
        }
        for (i, dir) in [(0usize, Dir::Bi), (1, Dir::Uni)] {
            let due = self.streams.limits.should_send_max_streams(dir);
            if self.pending.max_streams[i] || due.is_some() {
                let max = due.unwrap_or(self.streams.limits.local_max_streams(dir));
                let sd = if dir == Dir::Bi { StreamDir::Bidi } else { StreamDir::Uni };
                if Self::push_frame(p, buf, &Frame::MaxStreams { dir: sd, max }) {
                    self.streams.limits.on_max_streams_sent(dir, max);
                    self.pending.max_streams[i] = false;
                    p.frames.control.push(if i == 0 { Retransmit::MaxStreamsBidi } else { Retransmit::MaxStreamsUni });
                }
            }
            if let Some(limit) = self.pending.streams_blocked[i] {
                let sd = if dir == Dir::Bi { StreamDir::Bidi } else { StreamDir::Uni };
                if Self::push_frame(p, buf, &Frame::StreamsBlocked { dir: sd, limit }) {
                    self.pending.streams_blocked[i] = None;
                }
            }
        }
        while let Some(id) = self.streams.pending_max_stream_data.last().copied() {
            let Some(r) = self.streams.map.get_mut(&id).and_then(|s| s.recv.as_mut()) else {
                self.streams.pending_max_stream_data.pop();
                continue;
            };
            let max = r.should_send_max_stream_data().unwrap_or(r.max_stream_data());
            if !Self::push_frame(p, buf, &Frame::MaxStreamData { id: id.0, max }) {
                break;
            }
            if let Some(r) = self.streams.map.get_mut(&id).and_then(|s| s.recv.as_mut()) {
                r.on_max_stream_data_sent(max, now, rtt);
            }
            self.streams.pending_max_stream_data.pop();
            p.frames.control.push(Retransmit::MaxStreamData(id.0));
        }
        while let Some(id) = self.streams.pending_reset.last().copied() {
            let frame = self.streams.map.get(&id).and_then(|s| s.send.as_ref()).and_then(|s| s.reset_frame());
            let Some((error_code, final_size)) = frame else {
                self.streams.pending_reset.pop();
                continue;
            };
            if !Self::push_frame(p, buf, &Frame::ResetStream { id: id.0, error_code, final_size }) {
                break;
            }
            self.streams.pending_reset.pop();
            p.frames.control.push(Retransmit::ResetStream(id.0));
        }
        while let Some((id, error_code)) = self.streams.pending_stop_sending.last().copied() {
            if !Self::push_frame(p, buf, &Frame::StopSending { id: id.0, error_code }) {
                break;
            }
            self.streams.pending_stop_sending.pop();
            p.frames.control.push(Retransmit::StopSending(id.0));
        }
        while let Some(seq) = self.local_cids.pending_new.front().copied() {
            let Some((cid, reset_token)) = self.local_cids.get(seq) else {
                self.local_cids.pending_new.pop_front();
                continue;
            };
            let f = Frame::NewConnectionId { sequence: seq, retire_prior_to: 0, cid, reset_token };
            if !Self::push_frame(p, buf, &f) {
                break;
            }
            self.local_cids.pending_new.pop_front();
            p.frames.control.push(Retransmit::NewConnectionId(seq));
        }
        while let Some(seq) = self.remote_cids.pending_retire.front().copied() {
            if !Self::push_frame(p, buf, &Frame::RetireConnectionId { sequence: seq }) {
                break;
            }
            self.remote_cids.pending_retire.pop_front();
            p.frames.control.push(Retransmit::RetireConnectionId(seq));
        }
        if let Some(limit) = self.conn_send.poll_blocked() {
            if Self::push_frame(p, buf, &Frame::DataBlocked { limit }) {
                p.frames.control.push(Retransmit::DataBlocked);
            }
        }
        if let Some(token) = self.pending.new_token.take() {
            if !Self::push_frame(p, buf, &Frame::NewToken { token: &token }) {
                self.pending.new_token = Some(token);
            } else {
                p.frames.control.push(Retransmit::NewToken);
            }
        }
    }

    fn write_datagram_frames(&mut self, p: &mut OpenPacket, buf: &mut [u8]) {
        while let Some(d) = self.datagrams_out.front() {
            let h = DatagramFrameHeader { len: d.len(), with_len: true };
            if h.encoded_len() + d.len() > p.room() {
                break;
            }
            let mut w = Writer::new(&mut buf[p.end..p.limit]);
            if h.encode(&mut w).is_err() || w.put(d).is_err() {
                break;
            }
            p.end += w.len();
            p.ack_eliciting = true;
            self.datagrams_out.pop_front();
        }
    }

    fn write_stream_frames(&mut self, p: &mut OpenPacket, buf: &mut [u8]) {
        let mut rounds = self.streams.send_queue.len();
        while rounds > 0 && p.room() > 8 {
            rounds -= 1;
            let Some(id) = self.streams.send_queue.pop_front() else { break };
            let credit = self.conn_send.available();
            let Some(st) = self.streams.map.get_mut(&id) else { continue };
            let Some(send) = st.send.as_mut() else {
                st.queued = false;
                continue;
            };
            // Frame header bound: type, id, offset (at most the write
            // offset) and a length varint sized for this packet's room.
            let len_field = if p.room() < 16384 { 2 } else { 4 };
            let overhead = 1 + crate::varint::size(id.0) + crate::varint::size(send.write_offset()) + len_field;
            let max_len = p.room().saturating_sub(overhead);
            let chunk = if max_len > 0 || send.has_data_to_send() { send.next_chunk(max_len, credit) } else { None };
            let Some(chunk) = chunk else {
                // Nothing sendable now (flow control); keep it queued if data waits.
                // Re-queued through `queue_send` (behind its priority peers)
                // so the queue stays in priority order, which its fast path
                // relies on.
                st.queued = false;
                if send.has_data_to_send() {
                    self.streams.queue_send(id);
                }
                continue;
            };
            let h = StreamFrameHeader { id: id.0, offset: chunk.offset, len: chunk.len, fin: chunk.fin, with_len: true };
            let mut w = Writer::new(&mut buf[p.end..p.limit]);
            if h.encode(&mut w).is_err() {
                send.on_lost(chunk.offset, chunk.len, chunk.fin);
                self.streams.send_queue.push_front(id);
                break;
            }
            let at = p.end + w.len();
            if !send.copy_chunk(chunk.offset, chunk.len, &mut buf[at..at + chunk.len]) {
                send.on_lost(chunk.offset, chunk.len, chunk.fin);
                self.streams.send_queue.push_front(id);
                break;
            }
            p.end = at + chunk.len;
            p.ack_eliciting = true;
            if !chunk.retransmission {
                let _ = self.conn_send.consume(chunk.len as u64);
                self.stats.stream_bytes_sent += chunk.len as u64;
            }
            p.frames.streams.push(StreamRange { id: id.0, offset: chunk.offset, len: chunk.len as u32, fin: chunk.fin });
            if send.has_data_to_send() {
                // Back in line behind its priority peers (round robin).
                st.queued = false;
                self.streams.queue_send(id);
            } else {
                st.queued = false;
            }
            if chunk.fin && !chunk.retransmission {
                self.streams.credit_early(id);
            }
        }
    }

    /// Seals the packet in place and records it; returns the datagram offset
    /// where the next packet may start.
    pub(super) fn seal(&mut self, now: Instant, buf: &mut [u8], p: &mut OpenPacket) -> Option<usize> {
        // RFC 9001 §5.4.2: the sample needs pn_len + payload >= 4 bytes.
        let header_len = p.layout.header_len();
        let min_end = p.layout.pn_offset + 4;
        if p.end < min_end {
            buf[p.end..min_end].fill(0);
            p.end = min_end;
        }
        let payload_len = p.end - header_len;
        // The layout holds datagram offsets; the Length field is filled
        // relative to the packet start.
        let rel = HeaderLayout {
            pn_offset: p.layout.pn_offset - p.start,
            pn_len: p.layout.pn_len,
            length_field: p.layout.length_field.map(|(a, w)| (a - p.start, w)),
        };
        rel.set_payload_len(&mut buf[p.start..], payload_len + TAG_LEN).ok()?;
        let (packet_key, hp): (&dyn rustls::quic::PacketKey, &dyn rustls::quic::HeaderProtectionKey) = match p.space {
            SpaceId::Initial | SpaceId::Handshake => {
                let k = self.spaces[p.space.index()].keys.as_ref()?;
                (&*k.local.packet, &*k.local.header)
            }
            SpaceId::Data if p.zero_rtt => {
                let k = self.zero_rtt.as_ref()?;
                (&*k.packet, &*k.header)
            }
            SpaceId::Data => {
                let k = self.one_rtt.as_ref()?;
                (&*k.local, &*k.local_hp)
            }
        };
        if let Some(q) = &mut self.qlog {
            let ty = match (p.space, p.zero_rtt) {
                (SpaceId::Initial, _) => crate::qlog::PacketType::Initial,
                (SpaceId::Handshake, _) => crate::qlog::PacketType::Handshake,
                (SpaceId::Data, true) => crate::qlog::PacketType::ZeroRtt,
                (SpaceId::Data, false) => crate::qlog::PacketType::OneRtt,
            };
            let dcid = self.remote_cids.active();
            let scid = self.local_cids.initial();
            let mut hdr = if ty == crate::qlog::PacketType::OneRtt {
                crate::qlog::PacketHeader::short(&dcid, p.pn)
            } else {
                crate::qlog::PacketHeader::long(ty, self.version, &dcid, &scid, p.pn)
            };
            hdr.packet_number_length = Some(p.layout.pn_len as u8);
            let mut ev = crate::qlog::PacketEvent::new(hdr);
            ev.raw = crate::qlog::RawInfo::length(p.end + TAG_LEN - p.start);
            ev.is_mtu_probe_packet = p.mtu_probe;
            q.event(now, &crate::qlog::QlogEvent::PacketSent { packet: &ev, payload: buf.get(header_len..p.end).unwrap_or_default() });
        }
        let pkt = &mut buf[p.start..p.end + TAG_LEN];
        let hl = header_len - p.start;
        let (header, rest) = pkt.split_at_mut(hl);
        let tag = packet_key.encrypt_in_place(p.pn, header, &mut rest[..payload_len]).ok()?;
        rest[payload_len..payload_len + TAG_LEN].copy_from_slice(tag.as_ref());
        let pn_rel = rel.pn_offset;
        let mut sample = [0u8; 16];
        sample.copy_from_slice(pkt.get(pn_rel + 4..pn_rel + 20)?);
        let (first, tail) = pkt.split_first_mut()?;
        hp.encrypt_in_place(&sample, first, &mut tail[pn_rel - 1..pn_rel - 1 + p.layout.pn_len]).ok()?;

        let size = p.end + TAG_LEN - p.start;
        let space = p.space;
        self.spaces[space.index()].next_pn = p.pn + 1;
        if space == SpaceId::Data {
            if let Some(k) = &mut self.one_rtt {
                if !p.zero_rtt {
                    k.sent_in_phase += 1;
                    k.phase_first_sent.get_or_insert(p.pn);
                }
            }
        }
        p.frames.ecn = self.tx_ecn;
        if self.tx_ecn {
            self.ecn.on_marked_sent();
        }
        let in_flight = p.ack_eliciting || p.padded;
        self.recovery.on_packet_sent(
            space,
            SentPacket {
                pn: p.pn,
                time_sent: now,
                size: size.min(u16::MAX as usize) as u16,
                ack_eliciting: p.ack_eliciting,
                in_flight,
                mtu_probe: p.mtu_probe,
                rate: Default::default(),
                payload: core::mem::replace(&mut p.frames, SentFrames::new(space)),
            },
        );
        self.stats.packets_sent += 1;
        if p.ack_eliciting && !self.ack_eliciting_sent_since_rx {
            // RFC 9000 §10.1: sending an ack-eliciting packet restarts the idle
            // timer if nothing was sent since the last receipt. Only then:
            // probes and keep-alive PINGs toward a silent peer must not keep
            // the connection alive forever.
            self.ack_eliciting_sent_since_rx = true;
            self.reset_idle(now);
        }
        if self.side == Side::Client && space == SpaceId::Handshake {
            // RFC 9001 §4.9.1: the client drops Initial keys when it first
            // sends a Handshake packet.
            self.discard_space(SpaceId::Initial);
        }
        Some(p.end + TAG_LEN)
    }

    /// A PMTU probe when one is due (RFC 9000 §14.4, `pmtud.rs`): a datagram
    /// of exactly the size tried, one 1-RTT packet of PING and PADDING,
    /// sent alone (never in a GSO batch: its size differs) and within the
    /// congestion window and pacing like any packet.
    fn poll_mtu_probe(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        let size = usize::from(self.pmtud.probe_size()?);
        if self.state != State::Established || !self.handshake_confirmed || self.spaces.iter().any(|s| s.probes > 0) || buf.len() < size {
            return None;
        }
        // A path still being validated (a migration, RFC 9000 §9.3) takes
        // no probes: it is held to three times what arrived on it (§8.1),
        // and full-size probes would spend that budget, leaving none for
        // the PATH_CHALLENGE retries that validate it.
        if !self.address_validated || self.path.validating() {
            return None;
        }
        if !self.recovery.can_send(size as u64) || self.recovery.pacing_deadline(now, size as u64).is_some_and(|t| t > now) {
            return None;
        }
        let buf = &mut buf[..size];
        let mut p = self.begin_packet(SpaceId::Data, buf, 0, size)?;
        p.mtu_probe = true;
        if !Self::push_frame(&mut p, buf, &Frame::Ping) {
            return None;
        }
        let want_end = size - TAG_LEN;
        if p.end < want_end && want_end <= p.limit {
            buf[p.end..want_end].fill(0);
            p.end = want_end;
            p.padded = true;
        }
        let end = self.seal(now, buf, &mut p)?;
        self.on_datagram_built(end);
        self.pmtud.on_probe_sent(end as u16);
        Some(Transmit { destination: self.remote, ecn: self.tx_ecn.then_some(super::EcnCodepoint::Ect0), size: end, segment_size: None })
    }

    /// One 1-RTT packet holding `frames`, expanded with PADDING to 1200
    /// bytes or `allowance`, whichever is smaller (RFC 9000 §8.2.1,
    /// §8.2.2), for a datagram to another address than `remote` (path.rs).
    /// Not counted toward `remote`'s amplification allowance.
    pub(super) fn build_probe_datagram(&mut self, now: Instant, buf: &mut [u8], frames: &[Frame<'_>], allowance: usize) -> Option<usize> {
        let budget = buf.len().min(allowance);
        if budget < MIN_PACKET_ROOM || !self.can_send_in(SpaceId::Data) || self.one_rtt.is_none() {
            return None;
        }
        let mut p = self.begin_packet(SpaceId::Data, buf, 0, budget)?;
        for frame in frames {
            if !Self::push_frame(&mut p, buf, frame) {
                return None;
            }
        }
        let want_end = super::path::PROBE_DATAGRAM_SIZE.min(budget).saturating_sub(TAG_LEN);
        if p.end < want_end && want_end <= p.limit {
            buf[p.end..want_end].fill(0);
            p.end = want_end;
            p.padded = true;
        }
        let end = self.seal(now, buf, &mut p)?;
        self.stats.bytes_sent += end as u64;
        Some(end)
    }

    /// Closing state: CONNECTION_CLOSE in every packet type the peer may
    /// be able to read (RFC 9000 §10.2.3): before the handshake is
    /// confirmed, the peer may lack the keys of our highest level (a client
    /// still waiting for the server's Handshake flight cannot read 1-RTT),
    /// so the close goes in Initial and Handshake packets too, coalesced;
    /// afterwards in 1-RTT only. An application close outside 1-RTT becomes
    /// APPLICATION_ERROR without a reason (§10.2.3).
    fn build_close(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        if !self.close_pending {
            return None;
        }
        self.close_pending = false;
        let close = self.close.clone()?;
        let spaces: &[SpaceId] = if self.handshake_confirmed { &[SpaceId::Data] } else { &[SpaceId::Initial, SpaceId::Handshake, SpaceId::Data] };
        let budget = buf.len();
        let mut written = 0;
        let mut pad = false;
        let mut last: Option<OpenPacket> = None;
        for &space in spaces {
            let usable = match space {
                SpaceId::Data => self.one_rtt.is_some() && !self.spaces[2].discarded,
                _ => self.can_send_in(space),
            };
            if !usable {
                continue;
            }
            if let Some(mut p) = last.take() {
                written = self.seal(now, buf, &mut p)?;
            }
            if budget.saturating_sub(written) < MIN_PACKET_ROOM {
                break;
            }
            let Some(mut p) = self.begin_packet(space, buf, written, budget) else { break };
            let frame = if close.application && space == SpaceId::Data {
                Frame::ApplicationClose { error_code: close.code, reason: &close.reason }
            } else if close.application {
                Frame::ConnectionClose { error_code: crate::TransportErrorCode::APPLICATION_ERROR, frame_type: 0, reason: &[] }
            } else {
                Frame::ConnectionClose { error_code: crate::TransportErrorCode(close.code), frame_type: close.frame_type, reason: &close.reason }
            };
            if !Self::push_frame(&mut p, buf, &frame) {
                let short = Frame::ConnectionClose { error_code: crate::TransportErrorCode(close.code), frame_type: 0, reason: &[] };
                Self::push_frame(&mut p, buf, &short);
            }
            p.ack_eliciting = false;
            // §14.1: a client's Initial travels in a datagram of 1200 bytes.
            pad |= space == SpaceId::Initial && self.side == Side::Client;
            last = Some(p);
        }
        let Some(mut p) = last else {
            return (written > 0).then(|| self.on_datagram_built(written));
        };
        if pad {
            let want_end = MIN_INITIAL_DATAGRAM_SIZE.min(budget).saturating_sub(TAG_LEN);
            if p.end < want_end && want_end <= p.limit {
                buf[p.end..want_end].fill(0);
                p.end = want_end;
            }
        }
        let end = self.seal(now, buf, &mut p)?;
        Some(self.on_datagram_built(end))
    }
}
