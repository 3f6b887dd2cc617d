//! Receiving: datagram → packets → unprotection → frames (RFC 9000 §12,
//! RFC 9001 §5).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::spaces::{EcnCodepoint, Retransmit, SentFrames};
use super::streams::StreamEvent;
use super::{Connection, ConnectionError, Event, Side, State, MAX_QUEUED_DATAGRAMS};
use crate::cid::ConnectionId;
use crate::error::{Error, TransportErrorCode};
use crate::frame::{AckFrame, Frame, FrameContext, FrameIter, StreamDir};
use crate::packet::header::{negotiation_versions, KEY_PHASE_BIT, LONG_RESERVED_BITS, SHORT_RESERVED_BITS};
use crate::packet::{number, LongType, PacketCursor, PacketType, ProtectedHeader};
use crate::recovery::SpaceId;
use crate::stream::{Dir, StreamId, StreamPart};

/// RFC 9001 §5.4.2: the header protection sample starts 4 bytes after the
/// packet number offset and is 16 bytes long.
const SAMPLE_LEN: usize = 16;

fn dir_of(d: StreamDir) -> Dir {
    match d {
        StreamDir::Bidi => Dir::Bi,
        StreamDir::Uni => Dir::Uni,
    }
}

/// Which key decrypted a 1-RTT packet.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PhaseKey {
    Current,
    Previous,
    Next,
}

impl Connection {
    /// Processes one received UDP datagram (possibly several coalesced
    /// packets). `data` is decrypted in place.
    pub fn handle_datagram(&mut self, now: Instant, remote: SocketAddr, ecn: Option<EcnCodepoint>, data: &mut [u8]) {
        if matches!(self.state, State::Drained | State::Draining) {
            return;
        }
        // Packets are accepted from any address: the connection ID routes
        // them (RFC 9000 §5.2). Where they came from matters for
        // migration and PATH_CHALLENGE answers (`path`), and only bytes from
        // the address we send to count toward its anti-amplification
        // allowance (§8.1, §9.3.1): an attacker's copies from elsewhere must
        // not raise what the current, maybe unvalidated, address gets.
        self.path.on_datagram(remote, data.len());
        if remote == self.remote {
            self.bytes_received += data.len() as u64;
        }
        self.stats.bytes_received += data.len() as u64;
        let cid_len = self.local_cids.cid_len();
        let total = data.len();
        let is_short = data.first().is_some_and(|b| b & 0x80 == 0);
        let mut first_dcid: Option<ConnectionId> = None;
        let mut decrypted_any = false;
        let mut packets = PacketCursor::new(cid_len);
        while let Some(next) = packets.next_in(data) {
            let Ok((start, header)) = next else {
                self.stats.packets_dropped += 1;
                break;
            };
            // RFC 9000 §12.2: ignore coalesced packets for another connection.
            match first_dcid {
                Some(d) if d != header.dcid => {
                    self.stats.packets_dropped += 1;
                    continue;
                }
                None => first_dcid = Some(header.dcid),
                _ => {}
            }
            let Some(packet) = data.get_mut(start..start + header.len) else { break };
            if self.handle_packet(now, ecn, &header, packet) {
                decrypted_any = true;
            }
            if matches!(self.state, State::Drained) {
                return;
            }
        }
        // RFC 9000 §10.3.1: a datagram we cannot decrypt whose last 16 bytes
        // are a reset token the peer gave us is a stateless reset.
        if !decrypted_any && is_short && total >= 21 && self.remote_cids.is_reset_token(&data[total - 16..]) {
            self.set_error(now, ConnectionError::Reset);
            self.state = State::Drained;
        }
    }

    /// Returns whether the packet decrypted.
    fn handle_packet(&mut self, now: Instant, ecn: Option<EcnCodepoint>, h: &ProtectedHeader, packet: &mut [u8]) -> bool {
        let space = match h.ty {
            PacketType::VersionNegotiation => {
                self.handle_version_negotiation(now, packet, h);
                return false;
            }
            PacketType::Long(LongType::Retry) => {
                self.handle_retry(now, packet, h);
                return false;
            }
            PacketType::Long(LongType::Initial) => SpaceId::Initial,
            PacketType::Long(LongType::Handshake) => SpaceId::Handshake,
            PacketType::Long(LongType::ZeroRtt) => {
                if self.side == Side::Client {
                    self.stats.packets_dropped += 1;
                    return false;
                }
                SpaceId::Data
            }
            PacketType::Short => SpaceId::Data,
        };
        if self.spaces[space.index()].discarded {
            self.stats.packets_dropped += 1;
            // A Handshake packet after the server discarded its Handshake
            // keys: the client still lacks HANDSHAKE_DONE (it drops its
            // keys on receiving it, RFC 9001 §4.9.2) and is repeating its
            // Finished. Send HANDSHAKE_DONE again now rather than at the
            // next PTO (unauthenticated, so it only repeats a frame owed).
            if space == SpaceId::Handshake && self.side.is_server() && self.pending.handshake_done_unacked {
                self.pending.handshake_done = true;
            }
            return false;
        }
        // RFC 9368 §2.3: another version than ours. A client follows the
        // server's first Initial into a version it offered; a server that
        // moved the connection still reads the client's Initials of the
        // original version. Anything else is dropped.
        let mut legacy = false;
        // Client: Initial keys this packet's version would use, kept
        // only if they open it (an unauthenticated long header must not
        // move the connection, RFC 9368 §4).
        let mut followed = None;
        if let Some(v) = h.version.filter(|v| *v != self.version) {
            let follows = self.side == Side::Client && space == SpaceId::Initial && self.may_follow_server_version(v);
            legacy = self.side.is_server() && space == SpaceId::Initial && Some(v) == self.original_version && self.legacy_initial_keys.is_some();
            if !follows && !legacy {
                self.stats.packets_dropped += 1;
                return false;
            }
            if follows {
                followed = Some((v, self.try_initial_keys(v)));
            }
        }
        let zero_rtt = h.ty == PacketType::Long(LongType::ZeroRtt);
        let Some((pn, header_len, payload_len, phase)) = self.unprotect(space, zero_rtt, legacy, h, packet) else {
            if let Some((_, ours)) = followed {
                self.spaces[SpaceId::Initial.index()].keys = ours;
            }
            self.stats.packets_dropped += 1;
            return false;
        };
        if let Some((v, _)) = followed {
            self.switch_initial_keys(v);
        }
        // Reserved bits must be zero once protection is off (RFC 9000 §17.2, §17.3.1).
        let reserved = if h.is_long() { LONG_RESERVED_BITS } else { SHORT_RESERVED_BITS };
        if packet[0] & reserved != 0 {
            self.close_with_error(now, Error::protocol_violation("reserved header bits set"));
            return true;
        }
        let sp = &self.spaces[space.index()];
        if sp.ack.is_duplicate(pn) {
            self.stats.packets_dropped += 1;
            return true;
        }
        if phase == Some(PhaseKey::Next) {
            // The peer started a key update (RFC 9001 §6.2); follow it.
            let pto = self.recovery.pto(SpaceId::Data, self.handshake_confirmed);
            if let Some(k) = &mut self.one_rtt {
                k.rotate(now, pto, true);
                self.stats.key_updates += 1;
                let gen = self.stats.key_updates;
                if let Some(q) = &mut self.qlog {
                    q.event(now, &crate::qlog::QlogEvent::KeyUpdated { generation: gen, trigger: crate::qlog::KeyUpdateTrigger::RemoteUpdate });
                }
            }
        }
        if let (Some(PhaseKey::Current | PhaseKey::Next), Some(k)) = (phase, &mut self.one_rtt) {
            if k.phase_first_received.is_none() {
                let pto = self.recovery.pto(SpaceId::Data, self.handshake_confirmed);
                k.on_new_phase_received(now, pto);
            }
            k.phase_first_received = Some(k.phase_first_received.map_or(pn, |f| f.min(pn)));
        }
        self.stats.packets_received += 1;
        self.received_any = true;
        if space == SpaceId::Data && phase.is_some() {
            // A peer sending authenticated 1-RTT packets holds the
            // handshake's secrets: it is making progress, which is not what
            // the handshake timeout is for (its Finished may just have been
            // lost, and a client that is not polled resends it late).
            self.handshake_deadline = None;
        }
        if self.side == Side::Client && space == SpaceId::Initial && !self.server_scid_known() {
            // RFC 9000 §7.2: the server's SCID becomes our DCID.
            self.remote_cids.set_initial(h.scid);
            self.set_server_scid_known();
        }
        if self.side.is_server() && space == SpaceId::Handshake {
            // RFC 9000 §8.1: a Handshake packet proves the client's address;
            // RFC 9001 §4.9.1: the server drops Initial keys now.
            self.address_validated = true;
            self.discard_space(SpaceId::Initial);
        }
        if self.state == State::Closing {
            // RFC 9000 §10.2.1: answer with CONNECTION_CLOSE, process nothing.
            self.close_pending = true;
            return true;
        }
        // The opened payload lies within the packet (the AEAD checked its
        // length); a bad bound drops the packet rather than panicking.
        let Some(payload) = packet.get(header_len..header_len + payload_len) else {
            self.stats.packets_dropped += 1;
            return false;
        };
        if h.ty == PacketType::Short {
            let largest_before = self.spaces[space.index()].largest_rx;
            if self.path.rx_from() != self.remote {
                // RFC 9000 §9.3: maybe a NAT rebinding or a migration;
                // decided before the frames run so replies use the new path.
                self.maybe_migrate(now, pn, largest_before, &h.dcid, payload);
            }
            if largest_before.is_none_or(|l| pn > l) {
                self.path.on_largest_packet(h.dcid);
            }
        }
        if let Some(q) = &mut self.qlog {
            let ty = match (space, zero_rtt) {
                (SpaceId::Initial, _) => crate::qlog::PacketType::Initial,
                (SpaceId::Handshake, _) => crate::qlog::PacketType::Handshake,
                (SpaceId::Data, true) => crate::qlog::PacketType::ZeroRtt,
                (SpaceId::Data, false) => crate::qlog::PacketType::OneRtt,
            };
            let mut hdr = match (h.version, ty) {
                (Some(v), _) => crate::qlog::PacketHeader::long(ty, v, &h.dcid, &h.scid, pn),
                (None, _) => crate::qlog::PacketHeader::short(&h.dcid, pn),
            };
            hdr.packet_number_length = Some((header_len - h.pn_offset) as u8);
            let mut ev = crate::qlog::PacketEvent::new(hdr);
            ev.raw = crate::qlog::RawInfo::length(packet.len());
            q.event(now, &crate::qlog::QlogEvent::PacketReceived { packet: &ev, payload });
        }
        self.rx_new_crypto = false;
        self.rx_crypto = false;
        let (ack_eliciting, padding) = match self.process_frames(now, space, zero_rtt, &h.dcid, pn, payload) {
            Ok(e) => e,
            Err(err) => {
                self.close_with_error(now, err);
                return true;
            }
        };
        // A 1-RTT packet as large as our packets, padding not counted (a
        // peer's PMTU probe says nothing about our traffic): the peer sends
        // full-size data, so the path's size is worth finding (`pmtud.rs`).
        if space == SpaceId::Data && packet.len().saturating_sub(padding) + super::send::GSO_SLACK >= usize::from(self.mtu) {
            let _ = self.pmtud.on_full_packets(1);
        }
        if ack_eliciting && space != SpaceId::Data && !self.rx_new_crypto {
            self.on_peer_handshake_probe();
        }
        let sp = &mut self.spaces[space.index()];
        sp.largest_rx = Some(sp.largest_rx.map_or(pn, |l| l.max(pn)));
        let threshold = self.config.ack_eliciting_threshold;
        // Before the handshake completes, acknowledge at once (RFC 9000
        // §13.2.1: Initial and Handshake packets are not delayed).
        let max_delay = if space == SpaceId::Data { self.config.max_ack_delay } else { Duration::ZERO };
        sp.ack.on_packet(pn, now, ack_eliciting, ecn, threshold, max_delay);
        self.ack_eliciting_sent_since_rx = false;
        self.reset_idle(now);
        // Once the handshake is complete TLS has nothing to say unless CRYPTO
        // data arrived (a NewSessionTicket): no need to ask it for every
        // packet of a transfer.
        if !self.handshake_complete || self.rx_crypto {
            if let Err(err) = self.drive_tls(now) {
                self.close_with_error(now, err);
            }
        }
        true
    }

    fn server_scid_known(&self) -> bool {
        self.remote_scid_locked
    }

    fn set_server_scid_known(&mut self) {
        self.remote_scid_locked = true;
    }

    /// Removes header and packet protection in place (RFC 9001 §5.4, §5.3).
    /// Returns (packet number, header length, payload length, 1-RTT key used).
    fn unprotect(
        &mut self,
        space: SpaceId,
        zero_rtt: bool,
        legacy: bool,
        h: &ProtectedHeader,
        packet: &mut [u8],
    ) -> Option<(u64, usize, usize, Option<PhaseKey>)> {
        let initial_keys = if legacy { self.legacy_initial_keys.as_ref() } else { self.spaces[0].keys.as_ref() };
        let pn_offset = h.pn_offset;
        let sample_at = pn_offset.checked_add(4)?;
        let sample: [u8; SAMPLE_LEN] = packet.get(sample_at..sample_at + SAMPLE_LEN)?.try_into().ok()?;
        {
            let hp: &dyn rustls::quic::HeaderProtectionKey = match space {
                SpaceId::Initial => &*initial_keys?.remote.header,
                SpaceId::Handshake => &*self.spaces[space.index()].keys.as_ref()?.remote.header,
                SpaceId::Data if zero_rtt => &*self.zero_rtt.as_ref()?.header,
                SpaceId::Data => &*self.one_rtt.as_ref()?.remote_hp,
            };
            let (first, rest) = packet.split_first_mut()?;
            let pn_bytes = rest.get_mut(pn_offset - 1..pn_offset + 3)?;
            hp.decrypt_in_place(&sample, first, pn_bytes).ok()?;
        }
        let pn_len = (packet[0] & 0x03) as usize + 1;
        let header_len = pn_offset + pn_len;
        let truncated = number::read_truncated(packet.get(pn_offset..header_len)?);
        let pn = number::decode(truncated, pn_len as u32 * 8, self.spaces[space.index()].largest_rx);
        let (header, payload) = packet.split_at_mut(header_len);
        let mut phase = None;
        let plain_len = match space {
            SpaceId::Initial => {
                let key = &*initial_keys?.remote.packet;
                key.decrypt_in_place(pn, header, payload).ok()?.len()
            }
            SpaceId::Handshake => {
                let key = &*self.spaces[space.index()].keys.as_ref()?.remote.packet;
                key.decrypt_in_place(pn, header, payload).ok()?.len()
            }
            SpaceId::Data if zero_rtt => {
                let key = &*self.zero_rtt.as_ref()?.packet;
                key.decrypt_in_place(pn, header, payload).ok()?.len()
            }
            SpaceId::Data => {
                let keys = self.one_rtt.as_mut()?;
                let kp = header[0] & KEY_PHASE_BIT != 0;
                let which = if kp == keys.key_phase {
                    PhaseKey::Current
                } else if keys.prev_remote().is_some() && keys.phase_first_received.is_none_or(|f| pn < f) {
                    PhaseKey::Previous
                } else {
                    PhaseKey::Next
                };
                phase = Some(which);
                let n = match which {
                    PhaseKey::Current => keys.remote.decrypt_in_place(pn, header, payload).ok()?.len(),
                    PhaseKey::Previous => keys.prev_remote()?.decrypt_in_place(pn, header, payload).ok()?.len(),
                    PhaseKey::Next => keys.next_remote().decrypt_in_place(pn, header, payload).ok()?.len(),
                };
                n
            }
        };
        Some((pn, header_len, plain_len, phase))
    }

    /// Client: a Version Negotiation packet (RFC 9000 §6.2, RFC 9368 §2.1).
    fn handle_version_negotiation(&mut self, now: Instant, packet: &[u8], h: &ProtectedHeader) {
        // RFC 9368 §4: after acting on one, later ones are ignored.
        if self.side.is_server() || self.received_any || self.negotiated_from.is_some() {
            return;
        }
        // It must echo our connection IDs (§6.2) and not list our version.
        if h.dcid != self.local_cids.initial() {
            return;
        }
        let versions = packet.get(h.pn_offset..).unwrap_or_default();
        if negotiation_versions(versions).any(|v| v == self.version) {
            return;
        }
        // Bounded: a datagram holds at most a few hundred versions.
        let offered: Vec<crate::Version> = negotiation_versions(versions).take(256).collect();
        match self.restart_after_version_negotiation(now, &offered) {
            Ok(true) => {}
            Ok(false) => {
                self.set_error(now, ConnectionError::VersionMismatch);
                self.state = State::Drained;
            }
            Err(e) => self.close_with_error(now, e),
        }
    }

    /// Client: a Retry packet (RFC 9000 §17.2.5.2).
    fn handle_retry(&mut self, _now: Instant, packet: &[u8], h: &ProtectedHeader) {
        if self.side.is_server() || self.received_any || self.retry_scid.is_some() {
            return;
        }
        if !crate::crypto::verify_retry_integrity(self.version, &self.original_dcid, packet) {
            return;
        }
        let token = packet.get(h.token.clone()).unwrap_or_default();
        if token.is_empty() || h.dcid != self.local_cids.initial() {
            return;
        }
        self.token = bytes::Bytes::copy_from_slice(token);
        self.retry_scid = Some(h.scid);
        self.remote_cids.set_initial(h.scid);
        self.initial_dcid = h.scid;
        // New Initial keys from the server's chosen ID (RFC 9001 §5.2).
        self.spaces[0].keys = Some(super::keys::initial_keys(&h.scid, Side::Client, self.version));
        // Everything sent so far is resent, with packet numbers continuing.
        let mut lost = Vec::new();
        self.recovery.on_retry(&mut lost);
        for p in lost {
            self.on_frames_lost(&p.payload);
        }
    }

    /// Handles the frames of one packet; returns whether it was ack-eliciting.
    pub(super) fn process_frames(
        &mut self,
        now: Instant,
        space: SpaceId,
        zero_rtt: bool,
        dcid: &ConnectionId,
        _pn: u64,
        payload: &[u8],
    ) -> Result<(bool, usize), Error> {
        let ctx = match space {
            SpaceId::Initial => FrameContext::Initial,
            SpaceId::Handshake => FrameContext::Handshake,
            SpaceId::Data if zero_rtt => FrameContext::ZeroRtt,
            SpaceId::Data => FrameContext::OneRtt,
        };
        let mut ack_eliciting = false;
        let mut padding = 0;
        for frame in FrameIter::for_packet(payload, ctx) {
            let frame = frame?;
            ack_eliciting |= frame.is_ack_eliciting();
            if let Frame::Padding { len } = frame {
                padding += len;
            }
            self.process_frame(now, space, dcid, frame)?;
            if matches!(self.state, State::Draining | State::Drained) {
                break;
            }
        }
        Ok((ack_eliciting, padding))
    }

    fn process_frame(&mut self, now: Instant, space: SpaceId, dcid: &ConnectionId, frame: Frame<'_>) -> Result<(), Error> {
        let ft = frame.frame_type().0;
        match frame {
            Frame::Padding { .. } | Frame::Ping => {}
            Frame::Ack(ack) => self.on_ack_frame(now, space, &ack)?,
            Frame::Crypto { offset, data } => {
                let s = &mut self.spaces[space.index()];
                let newly = s.crypto_recv.on_stream_frame(offset, data, false).map_err(|e| {
                    if e.code == TransportErrorCode::FLOW_CONTROL_ERROR {
                        Error::new(TransportErrorCode::CRYPTO_BUFFER_EXCEEDED, "CRYPTO data beyond the buffer").with_frame_type(ft)
                    } else {
                        e.with_frame_type(ft)
                    }
                })?;
                self.rx_new_crypto |= newly > 0;
                self.rx_crypto = true;
            }
            Frame::Stream { id, offset, fin, data } => {
                let sid = StreamId(id);
                let Some(s) = self.streams.get_for_peer_frame(sid, StreamPart::Recv).map_err(|e| e.with_frame_type(ft))? else {
                    return Ok(());
                };
                let Some(r) = s.recv.as_mut() else { return Ok(()) };
                let was_readable = r.is_readable();
                let newly = r.on_stream_frame(offset, data, fin).map_err(|e| e.with_frame_type(ft))?;
                let now_readable = r.is_readable();
                let released = r.take_released();
                self.conn_recv.on_received(newly).map_err(|e| e.with_frame_type(ft))?;
                self.conn_recv.on_consumed(released);
                self.stats.stream_bytes_received += newly;
                if now_readable && !was_readable {
                    self.streams.events.push_back(StreamEvent::Readable(sid));
                }
            }
            Frame::ResetStream { id, error_code, final_size } => {
                let sid = StreamId(id);
                let Some(s) = self.streams.get_for_peer_frame(sid, StreamPart::Recv).map_err(|e| e.with_frame_type(ft))? else {
                    return Ok(());
                };
                let Some(r) = s.recv.as_mut() else { return Ok(()) };
                let newly = r.on_reset(error_code, final_size).map_err(|e| e.with_frame_type(ft))?;
                let released = r.take_released();
                self.conn_recv.on_received(newly).map_err(|e| e.with_frame_type(ft))?;
                self.conn_recv.on_consumed(released);
                self.streams.events.push_back(StreamEvent::Reset { id: sid, error_code });
            }
            Frame::StopSending { id, error_code } => {
                let sid = StreamId(id);
                let Some(s) = self.streams.get_for_peer_frame(sid, StreamPart::Send).map_err(|e| e.with_frame_type(ft))? else {
                    return Ok(());
                };
                if let Some(send) = s.send.as_mut() {
                    // RFC 9000 §3.5: answer with RESET_STREAM.
                    if send.on_stop_sending(error_code).is_some() {
                        self.streams.pending_reset.push(sid);
                    }
                    self.streams.events.push_back(StreamEvent::Stopped { id: sid, error_code });
                }
            }
            Frame::MaxData { max } => {
                self.conn_send.on_max_data(max);
            }
            Frame::MaxStreamData { id, max } => {
                let sid = StreamId(id);
                let Some(s) = self.streams.get_for_peer_frame(sid, StreamPart::Send).map_err(|e| e.with_frame_type(ft))? else {
                    return Ok(());
                };
                if let Some(send) = s.send.as_mut() {
                    if send.on_max_stream_data(max) {
                        self.streams.queue_send(sid);
                        self.streams.events.push_back(StreamEvent::Writable(sid));
                    }
                }
            }
            Frame::MaxStreams { dir, max } => {
                self.streams.limits.on_max_streams(dir_of(dir), max)?;
            }
            Frame::DataBlocked { .. } => {
                // The peer wants more credit; make sure an update goes out.
                if self.conn_recv.should_send_max_data().is_some() {
                    self.pending.max_data = true;
                }
            }
            Frame::StreamDataBlocked { id, .. } => {
                let sid = StreamId(id);
                self.streams.get_for_peer_frame(sid, StreamPart::Recv).map_err(|e| e.with_frame_type(ft))?;
            }
            Frame::StreamsBlocked { dir, limit } => {
                self.streams.limits.on_streams_blocked(dir_of(dir), limit).map_err(|e| e.with_frame_type(ft))?;
            }
            Frame::NewConnectionId { sequence, retire_prior_to, cid, reset_token } => {
                if self.remote_cids.active().is_empty() {
                    // RFC 9000 §19.15: not allowed toward a zero-length ID user.
                    return Err(Error::protocol_violation("NEW_CONNECTION_ID to an endpoint using zero-length IDs").with_frame_type(ft));
                }
                self.remote_cids.on_new_cid(sequence, retire_prior_to, cid, reset_token)?;
            }
            Frame::RetireConnectionId { sequence } => {
                self.local_cids.on_retire(sequence, dcid)?;
                let limit = self.peer_params.as_ref().map_or(2, |p| p.active_connection_id_limit);
                if self.handshake_confirmed {
                    self.local_cids.top_up(limit, &mut *self.rng);
                }
            }
            Frame::PathChallenge { data } => self.on_path_challenge(data),
            Frame::PathResponse { data } => self.on_path_response(now, data),
            Frame::ConnectionClose { error_code, frame_type, reason } => {
                self.enter_draining(now, ConnectionError::PeerTransportClose { code: error_code, frame_type, reason: reason.to_vec() });
            }
            Frame::ApplicationClose { error_code, reason } => {
                self.enter_draining(now, ConnectionError::PeerApplicationClose { code: error_code, reason: reason.to_vec() });
            }
            Frame::HandshakeDone => {
                // RFC 9000 §19.20: only servers send it.
                if self.side.is_server() {
                    return Err(Error::protocol_violation("HANDSHAKE_DONE from a client").with_frame_type(ft));
                }
                self.confirm_handshake(now);
            }
            Frame::NewToken { token } => {
                if self.side.is_server() {
                    return Err(Error::protocol_violation("NEW_TOKEN from a client").with_frame_type(ft));
                }
                self.received_token = Some(bytes::Bytes::copy_from_slice(token));
            }
            Frame::Datagram { data } => {
                // RFC 9221 §4: DATAGRAM without having advertised support, or
                // larger than advertised, is PROTOCOL_VIOLATION. The limit is
                // on the whole frame — type, Length when present, payload
                // (§3) — not on the payload alone.
                let max = self.config.max_datagram_frame_size.unwrap_or(0);
                let len = data.len() as u64;
                let length_field = if ft & 1 == 1 { crate::varint::size(len) as u64 } else { 0 };
                let frame_size = crate::varint::size(ft) as u64 + length_field + len;
                if self.config.max_datagram_frame_size.is_none() || frame_size > max {
                    return Err(Error::protocol_violation("unexpected DATAGRAM frame").with_frame_type(ft));
                }
                if self.datagrams_in.len() >= MAX_QUEUED_DATAGRAMS {
                    self.datagrams_in.pop_front();
                }
                if self.datagrams_in.is_empty() {
                    // One event per empty→non-empty transition (bounded queue).
                    self.events.push_back(Event::DatagramReceived);
                }
                self.datagrams_in.push_back(bytes::Bytes::copy_from_slice(data));
            }
        }
        Ok(())
    }

    /// Losses an ACK proved spurious (the path reordered): counted, and
    /// logged with the loss thresholds they raised (RFC 9002 §6.1; qlog
    /// quic-events §7.1 recovery_parameters_set) and any undone reduction.
    fn on_spurious_losses(&mut self, now: Instant, space: SpaceId, s: crate::recovery::SpuriousOutcome) {
        if s.spurious == 0 {
            return;
        }
        self.stats.spurious_losses += u64::from(s.spurious);
        let Some(q) = &mut self.qlog else { return };
        let space_name = match space {
            SpaceId::Initial => "initial",
            SpaceId::Handshake => "handshake",
            SpaceId::Data => "application_data",
        };
        q.event(
            now,
            &crate::qlog::QlogEvent::SpuriousLosses { space: space_name, count: u64::from(s.spurious), congestion_reduction_undone: u64::from(s.undone) },
        );
        if let Some((packets, eighths)) = s.thresholds {
            let p = crate::qlog::RecoveryParameters {
                reordering_threshold: Some(packets.min(u64::from(u16::MAX)) as u16),
                time_threshold: Some(eighths as f32 / 8.0),
                timer_granularity: crate::recovery::GRANULARITY,
                ..Default::default()
            };
            q.event(now, &crate::qlog::QlogEvent::RecoveryParametersSet(&p));
        }
    }

    fn on_ack_frame(&mut self, now: Instant, space: SpaceId, ack: &AckFrame<'_>) -> Result<(), Error> {
        // RFC 9002 §5.3: the ACK delay of Initial and Handshake ACKs is ignored.
        let delay = if space == SpaceId::Data {
            let exp = self.peer_params.as_ref().map_or(3, |p| p.ack_delay_exponent) as u32;
            let micros = ack.ack_delay().checked_shl(exp).filter(|v| v >> exp == ack.ack_delay()).unwrap_or(u64::MAX);
            Duration::from_micros(micros.min(u64::MAX >> 12))
        } else {
            Duration::ZERO
        };
        let ecn = ack.ecn().map(|e| (e.ect0, e.ect1, e.ce));
        let mut out = core::mem::take(&mut self.ack_outcome);
        let res = self.recovery.on_ack_received(space, ack.iter(), delay, ecn, now, self.handshake_confirmed, &mut out);
        if let Err(e) = res {
            self.ack_outcome = out;
            return Err(e.with_frame_type(ack.frame_type().0));
        }
        let newly_marked = out.acked.iter().filter(|p| p.payload.ecn).count() as u64;
        let mut ecn_change = self.ecn.on_ack(space, newly_marked, ecn);
        // Oldest first, so each stream's acknowledged ranges grow at their
        // end; records are read where they lie, not moved out.
        for p in out.acked.iter().rev() {
            if let Some(k) = &mut self.one_rtt {
                if space == SpaceId::Data && k.phase_first_sent.is_some_and(|f| p.pn >= f) {
                    k.phase_acked = true;
                }
            }
            if space == SpaceId::Data {
                self.pmtud_on_acked(now, p.size, p.mtu_probe);
            }
            self.on_frames_acked(&p.payload);
        }
        out.acked.clear();
        for p in out.lost.drain(..) {
            ecn_change = ecn_change.or(self.on_packet_lost(now, p));
        }
        let rtt_updated = out.rtt_updated;
        let spurious = out.spurious;
        if self.recovery.bytes_in_flight() == 0 {
            out.release();
        }
        self.ack_outcome = out;
        self.on_spurious_losses(now, space, spurious);
        self.on_ecn_change(now, ecn_change);
        if rtt_updated {
            self.qlog_metrics(now);
        }
        Ok(())
    }

    /// A packet declared lost (by an ACK or the loss timer): qlog, ECN
    /// validation, PMTU discovery, and its frames queued again.
    pub(super) fn on_packet_lost(&mut self, now: Instant, p: crate::recovery::SentPacket<SentFrames>) -> Option<super::ecn::EcnState> {
        let space = p.payload.space;
        let ecn_change = if p.payload.ecn { self.ecn.on_marked_lost() } else { None };
        if let Some(q) = &mut self.qlog {
            let ty = match space {
                SpaceId::Initial => crate::qlog::PacketType::Initial,
                SpaceId::Handshake => crate::qlog::PacketType::Handshake,
                SpaceId::Data => crate::qlog::PacketType::OneRtt,
            };
            let hdr = crate::qlog::PacketHeader { packet_number: Some(p.pn), ..crate::qlog::PacketHeader::new(ty) };
            q.event(now, &crate::qlog::QlogEvent::PacketLost { header: &hdr });
        }
        if space == SpaceId::Data {
            self.pmtud_on_lost(now, p.size, p.mtu_probe);
        }
        // A lost probe held only PING and PADDING: nothing to resend, and
        // not a lost packet of the connection's data.
        if !p.mtu_probe {
            self.stats.packets_lost += 1;
            self.on_frames_lost(&p.payload);
        }
        ecn_change
    }

    pub(super) fn on_frames_acked(&mut self, f: &SentFrames) {
        let space = f.space;
        if let Some((off, len)) = f.crypto {
            self.spaces[space.index()].crypto_send.on_ack(off, len as usize, false);
        }
        for r in &f.streams {
            let id = StreamId(r.id);
            if let Some(s) = self.streams.map.get_mut(&id).and_then(|s| s.send.as_mut()) {
                let was_closed = s.is_closed();
                let was_blocked = s.writable() == 0;
                s.on_ack(r.offset, r.len as usize, r.fin);
                if !was_closed && s.is_closed() {
                    self.streams.events.push_back(StreamEvent::Finished(id));
                }
                // Only a stream whose buffer was full becomes writable again;
                // one event per transition keeps the queue bounded.
                if was_blocked && s.writable() > 0 && !s.is_finished() {
                    self.streams.events.push_back(StreamEvent::Writable(id));
                }
            }
            self.streams.reap(id);
        }
        if let Some(l) = f.ack_largest {
            self.spaces[space.index()].ack.on_ack_acked(l);
        }
        for c in &f.control {
            if *c == Retransmit::HandshakeDone {
                self.pending.handshake_done_unacked = false;
            }
            if let Retransmit::ResetStream(id) = c {
                let sid = StreamId(*id);
                if let Some(s) = self.streams.map.get_mut(&sid).and_then(|s| s.send.as_mut()) {
                    s.on_reset_acked();
                }
                self.streams.reap(sid);
            }
        }
    }

    pub(super) fn on_frames_lost(&mut self, f: &SentFrames) {
        let space = f.space;
        if let Some((off, len)) = f.crypto {
            if !self.spaces[space.index()].discarded {
                self.spaces[space.index()].crypto_send.on_lost(off, len as usize, false);
            }
        }
        for r in &f.streams {
            let id = StreamId(r.id);
            if let Some(s) = self.streams.map.get_mut(&id).and_then(|s| s.send.as_mut()) {
                s.on_lost(r.offset, r.len as usize, r.fin);
                self.streams.queue_send(id);
            }
        }
        for c in &f.control {
            match *c {
                Retransmit::HandshakeDone => self.pending.handshake_done = true,
                Retransmit::MaxData => self.pending.max_data = true,
                Retransmit::MaxStreamData(id) => {
                    let sid = StreamId(id);
                    if !self.streams.pending_max_stream_data.contains(&sid) {
                        self.streams.pending_max_stream_data.push(sid);
                    }
                }
                Retransmit::MaxStreamsBidi => self.pending.max_streams[0] = true,
                Retransmit::MaxStreamsUni => self.pending.max_streams[1] = true,
                Retransmit::ResetStream(id) => self.streams.pending_reset.push(StreamId(id)),
                Retransmit::StopSending(id) => {
                    let sid = StreamId(id);
                    if let Some(code) = self.streams.map.get(&sid).and_then(|s| s.recv.as_ref()).and_then(|r| r.stop_code()) {
                        self.streams.pending_stop_sending.push((sid, code));
                    }
                }
                Retransmit::NewConnectionId(seq) => {
                    if self.local_cids.get(seq).is_some() {
                        self.local_cids.pending_new.push_back(seq);
                    }
                }
                Retransmit::RetireConnectionId(seq) => self.remote_cids.pending_retire.push_back(seq),
                Retransmit::NewToken => {}
                Retransmit::DataBlocked => {}
            }
        }
    }
}
