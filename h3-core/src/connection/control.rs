//! The control and QPACK streams (RFC 9114 §6.2, RFC 9204 §4.2): opening ours,
//! reading the peer's unidirectional streams, SETTINGS, GOAWAY, and the QPACK
//! decoder stream's instructions.

use quic_core::codec::Writer;
use quic_core::connection::{Connection, Side};
use quic_core::stream::{Dir, StreamId, StreamReadError};

use super::*;
use crate::error::{H3Error, H3ErrorCode};
use crate::frame::{Frame, FrameDecoder, FrameEvent, FrameType, StreamKind};
use crate::priority::Priority;
use crate::qpack::{Encoder, EncoderConfig};
use crate::settings::Settings;
use crate::stream_type::StreamType;

impl H3Connection {
    /// RFC 9114 §6.2.1: each side opens a control stream with SETTINGS first;
    /// RFC 9204 §4.2: and the QPACK encoder and decoder streams.
    pub(super) fn open_local_streams(&mut self, conn: &mut Connection) {
        if self.control_out.is_some() {
            return;
        }
        let Some(control) = conn.open_stream(Dir::Uni) else { return };
        let mut buf = [0u8; 128];
        let mut w = Writer::new(&mut buf);
        let settings = Settings {
            qpack_max_table_capacity: self.config.qpack_max_table_capacity,
            max_field_section_size: Some(self.config.max_field_section_size),
            qpack_blocked_streams: self.config.qpack_blocked_streams,
            enable_connect_protocol: self.config.enable_connect_protocol,
            h3_datagram: self.config.enable_datagrams,
        };
        let seed = control.0.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5bd1_e995;
        let ok = StreamType::Control.encode(&mut w).is_ok()
            && if self.config.grease { settings.encode_with_grease(seed, &mut w).is_ok() } else { settings.encode(&mut w).is_ok() };
        if ok && self.config.grease {
            // RFC 9114 §7.2.8: a reserved frame type the peer must ignore.
            let _ = Frame::Extension { frame_type: FrameType::grease(seed).0, payload: b"" }.encode(&mut w);
        }
        let n = w.len();
        let _ = conn.write(control, &buf[..n]);
        self.control_out = Some(control);
        for (slot, ty) in [(0, StreamType::QpackEncoder), (1, StreamType::QpackDecoder)] {
            if let Some(id) = conn.open_stream(Dir::Uni) {
                let mut b = [0u8; 8];
                let mut w = Writer::new(&mut b);
                if ty.encode(&mut w).is_ok() {
                    let n = w.len();
                    let _ = conn.write(id, &b[..n]);
                }
                if slot == 0 {
                    self.encoder_out = Some(id);
                } else {
                    self.decoder_out = Some(id);
                }
            }
        }
    }

    // ----- unidirectional streams -----

    pub(super) fn read_uni(&mut self, conn: &mut Connection, id: StreamId) -> Result<(), H3Error> {
        loop {
            let chunk = match conn.read_chunk(id, READ_CHUNK) {
                Ok(c) => c,
                Err(StreamReadError::Blocked) => return Ok(()),
                Err(StreamReadError::Reset(code)) => return self.on_reset(conn, id, code),
                Err(StreamReadError::Stopped) => return Ok(()),
            };
            let mut input: &[u8] = &chunk.data;
            while !input.is_empty() || chunk.fin {
                let Some(state) = self.uni.get_mut(&id) else { return Ok(()) };
                match state {
                    UniState::Header(reader) => {
                        let Some(h) = reader.read(&mut input) else {
                            if chunk.fin {
                                self.uni.remove(&id);
                            }
                            break;
                        };
                        self.peer_uni.on_stream(h.stream_type, role(self.side).peer())?;
                        let next = match h.stream_type {
                            StreamType::Control => UniState::Control(Box::new(FrameDecoder::new(StreamKind::Control, self.limits))),
                            StreamType::QpackEncoder => UniState::QpackEncoder,
                            StreamType::QpackDecoder => UniState::QpackDecoder,
                            StreamType::Push => {
                                // We never send MAX_PUSH_ID, so no push ID is valid (§4.6).
                                return Err(H3Error::new(H3ErrorCode::H3_ID_ERROR, crate::error::ErrorScope::Connection, "push stream without MAX_PUSH_ID"));
                            }
                            StreamType::Reserved(_) | StreamType::Unknown(_) => {
                                // RFC 9114 §6.2: abort reading unknown stream types.
                                conn.stop_sending(id, H3ErrorCode::H3_STREAM_CREATION_ERROR.0);
                                UniState::Discard
                            }
                        };
                        self.uni.insert(id, next);
                    }
                    UniState::Control(dec) => {
                        let mut frames = Vec::new();
                        let mut priorities = Vec::new();
                        while let Some(ev) = dec.decode(&mut input)? {
                            match ev {
                                FrameEvent::Settings(s) => frames.push(ControlFrame::Settings(s)),
                                FrameEvent::Goaway(g) => frames.push(ControlFrame::Goaway(g)),
                                FrameEvent::MaxPushId(m) => frames.push(ControlFrame::MaxPushId(m)),
                                FrameEvent::CancelPush(c) => frames.push(ControlFrame::CancelPush(c)),
                                FrameEvent::PriorityUpdate { push, element, value } => priorities.push((push, element, Priority::parse(value))),
                                _ => {}
                            }
                        }
                        if chunk.fin && input.is_empty() {
                            dec.finish()?;
                        }
                        // Unknown before the handshake gave us the peer's
                        // transport parameters; SETTINGS cannot come earlier
                        // than those anyway except with 0-RTT remembered ones.
                        let peer_dgram_tp = conn.peer_transport_parameters().map(|p| p.max_datagram_frame_size.is_some());
                        for f in frames {
                            self.on_control_frame(f, peer_dgram_tp)?;
                        }
                        for (push, element, p) in priorities {
                            self.on_priority_update(conn, push, element, p)?;
                        }
                        if input.is_empty() {
                            break;
                        }
                    }
                    UniState::QpackEncoder => {
                        let unblocked = self.decoder.feed_encoder_stream(input).map_err(qpack_error)?;
                        if chunk.fin {
                            return Err(H3Error::closed_critical_stream("QPACK encoder stream closed"));
                        }
                        for s in unblocked {
                            self.resume_blocked(conn, StreamId(s))?;
                        }
                        break;
                    }
                    UniState::QpackDecoder => {
                        self.encoder.feed_decoder_stream(input).map_err(qpack_error)?;
                        if chunk.fin {
                            return Err(H3Error::closed_critical_stream("QPACK decoder stream closed"));
                        }
                        break;
                    }
                    UniState::Discard => {
                        if chunk.fin {
                            self.uni.remove(&id);
                        }
                        break;
                    }
                }
            }
            if chunk.fin {
                return Ok(());
            }
        }
    }

    pub(super) fn on_control_frame(&mut self, f: ControlFrame, peer_dgram_tp: Option<bool>) -> Result<(), H3Error> {
        match f {
            ControlFrame::Settings(s) => {
                // RFC 9297 §2.1.1: SETTINGS_H3_DATAGRAM = 1 from a peer that
                // did not send the max_datagram_frame_size transport
                // parameter is a connection error of type H3_SETTINGS_ERROR.
                if s.h3_datagram && peer_dgram_tp == Some(false) {
                    return Err(H3Error::settings_error("H3_DATAGRAM without QUIC DATAGRAM support"));
                }
                // The frame decoder already rejects a second SETTINGS.
                let mut config = EncoderConfig::from_peer(s.qpack_max_table_capacity, s.qpack_blocked_streams as usize);
                if self.side == Side::Server {
                    config.static_only_max = self.config.qpack_response_static_max;
                }
                self.encoder = Encoder::new(config);
                self.peer_settings = Some(s);
            }
            ControlFrame::Goaway(id) => {
                // RFC 9114 §5.2: a client-initiated bidi ID from a server;
                // the value must not increase.
                if self.side == Side::Client && id % 4 != 0 {
                    return Err(H3Error::id_error("GOAWAY with a non-request stream ID"));
                }
                if self.goaway_received.is_some_and(|prev| id > prev) {
                    return Err(H3Error::id_error("GOAWAY ID increased"));
                }
                self.goaway_received = Some(id);
                self.events.push_back(H3Event::GoAway { id });
            }
            ControlFrame::MaxPushId(m) => {
                // RFC 9114 §7.2.7: only clients send it, and it never decreases.
                if self.side == Side::Client {
                    return Err(H3Error::frame_unexpected("MAX_PUSH_ID from a server"));
                }
                if self.max_push_id.is_some_and(|prev| m < prev) {
                    return Err(H3Error::id_error("MAX_PUSH_ID decreased"));
                }
                self.max_push_id = Some(m);
            }
            ControlFrame::CancelPush(p) => {
                // We never push: a server may only cancel IDs it was allowed
                // to use; a client's cancel of an ID above its limit is an error.
                if self.side == Side::Server && self.max_push_id.is_none_or(|m| p > m) {
                    return Err(H3Error::id_error("CANCEL_PUSH for an unknown push ID"));
                }
                if self.side == Side::Client {
                    return Err(H3Error::id_error("CANCEL_PUSH but no push was allowed"));
                }
            }
        }
        Ok(())
    }

    /// PRIORITY_UPDATE (RFC 9218 §7.1) from the peer's control stream.
    fn on_priority_update(&mut self, conn: &mut Connection, push: bool, element: u64, p: Priority) -> Result<(), H3Error> {
        // §7.1: only clients send it.
        if self.side == Side::Client {
            return Err(H3Error::frame_unexpected("PRIORITY_UPDATE from a server"));
        }
        // §7.1: we never push, so no push ID can be prioritized.
        if push {
            return Err(H3Error::id_error("PRIORITY_UPDATE for a push never promised"));
        }
        // §7.1: the element must be a client-initiated bidirectional
        // stream, and one the client may open.
        let id = StreamId(element);
        if !element.is_multiple_of(4) || element / 4 >= conn.peer_stream_limit(Dir::Bi) {
            return Err(H3Error::id_error("PRIORITY_UPDATE for a stream that is not a request stream"));
        }
        let awaiting_headers = self.requests.get(&id).is_some_and(|st| st.phase == Phase::Headers);
        let opened = self.max_request_seen.is_some_and(|m| element <= m);
        if opened && !awaiting_headers {
            // The response may be under way (or done: then nothing happens).
            conn.set_priority(id, p.quic_priority(id));
        } else if self.early_priorities.len() < MAX_EARLY_PRIORITIES || self.early_priorities.contains_key(&id) {
            // Its header section is still to come: this value wins over
            // the `priority` field it may carry.
            self.early_priorities.insert(id, p);
        }
        Ok(())
    }

    pub(super) fn flush_decoder_stream(&mut self, conn: &mut Connection) {
        if !self.decoder.has_decoder_stream_data() {
            return;
        }
        let Some(id) = self.decoder_out else { return };
        self.scratch.clear();
        self.decoder.write_decoder_stream(&mut self.scratch);
        let _ = conn.write(id, &self.scratch);
    }
}
