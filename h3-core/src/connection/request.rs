//! Request streams (RFC 9114 §4): reading header sections and bodies as
//! the application pulls them, blocked QPACK sections, and the `send_*`
//! calls that write requests and responses.

use bytes::Bytes;
use quic_core::codec::Writer;
use quic_core::connection::{Connection, Side};
use quic_core::stream::{Dir, StreamId, StreamReadError, WriteError};

use super::*;
use crate::error::{H3Error, H3ErrorCode};
use crate::frame::{FrameEvent, FrameType};
use crate::message::{parse_request, parse_response, validate_trailers, ContentLengthTracker, MethodClass, RequestOptions};
use crate::priority::Priority;
use crate::qpack::{DecodeResult, HeaderField};

/// DATA payloads up to this size are copied into the stream's buffer
/// rather than kept as their own `Bytes` segment.
const SMALL_BODY_COPY: usize = 1200;

/// A header section that did not fit waits (`WouldBlock`); any other
/// refusal means the stream cannot take it any more.
fn write_error(e: WriteError) -> SendError {
    match e {
        WriteError::Blocked => SendError::WouldBlock,
        _ => SendError::StreamClosed,
    }
}

impl H3Connection {
    // ----- request streams -----

    pub(super) fn read_request(&mut self, conn: &mut Connection, id: StreamId) -> Result<(), H3Error> {
        let Some(mut st) = self.requests.remove(&id) else { return Ok(()) };
        let res = self.drive_request(conn, id, &mut st);
        if let Some(p) = st.apply_priority.take() {
            conn.set_priority(id, p.quic_priority(id));
        }
        match res {
            Ok(keep) => {
                if keep {
                    self.requests.insert(id, st);
                }
                Ok(())
            }
            Err(e) if e.is_stream_error() => {
                // RFC 9114 §4.1.2: a malformed message is a stream error.
                conn.reset_stream(id, e.code.0);
                conn.stop_sending(id, e.code.0);
                self.decoder.cancel_stream(id.0);
                self.events.push_back(H3Event::Reset { stream: id, code: e.code.0 });
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Returns whether the stream stays tracked.
    pub(super) fn drive_request(&mut self, conn: &mut Connection, id: StreamId, st: &mut RequestStream) -> Result<bool, H3Error> {
        loop {
            if st.blocked_on_qpack {
                return Ok(true);
            }
            let (data, fin) = if let Some(p) = st.pending.take() {
                (p, st.pending_fin)
            } else {
                if st.fin || st.body_len >= self.config.max_buffered_body {
                    break;
                }
                match conn.read_chunk(id, READ_CHUNK) {
                    Ok(c) => (c.data, c.fin),
                    Err(StreamReadError::Blocked) => break,
                    Err(StreamReadError::Reset(code)) => {
                        self.decoder.cancel_stream(id.0);
                        self.events.push_back(H3Event::Reset { stream: id, code });
                        return Ok(false);
                    }
                    Err(StreamReadError::Stopped) => return Ok(false),
                }
            };
            let mut input: &[u8] = &data;
            let mut data_seen = false;
            while let Some(ev) = st.decoder.decode(&mut input)? {
                match ev {
                    FrameEvent::DataHeader { .. } => {
                        // RFC 9114 §4.1: DATA before the final headers or after trailers.
                        if st.phase != Phase::Body {
                            return Err(H3Error::frame_unexpected("DATA outside the message body"));
                        }
                    }
                    FrameEvent::DataChunk(part) => {
                        st.length.on_data(part.len() as u64)?;
                        if !part.is_empty() {
                            st.body_len += part.len();
                            st.body.push_back(sub_bytes(&data, part));
                            data_seen = true;
                        }
                    }
                    FrameEvent::Headers(section) => {
                        // The section borrows the frame decoder inside `st`,
                        // which the handling below needs: copied into the
                        // connection's scratch buffer, not a new one per request.
                        let mut copy = std::mem::take(&mut self.scratch);
                        copy.clear();
                        copy.extend_from_slice(section);
                        let decoded = self.decoder.decode(id.0, &copy).map_err(qpack_error);
                        self.scratch = copy;
                        match decoded? {
                            DecodeResult::Decoded(fields) => {
                                let at_end = input.is_empty() && fin;
                                self.on_header_section(id, st, fields, at_end)?;
                            }
                            DecodeResult::Blocked => {
                                // RFC 9204 §2.1.2: wait for the encoder stream.
                                st.blocked_on_qpack = true;
                                st.pending = Some(sub_bytes(&data, input));
                                st.pending_fin = fin;
                                if data_seen {
                                    // Body that preceded the blocked section is readable now.
                                    self.events.push_back(H3Event::Data { stream: id });
                                }
                                self.flush_decoder_stream(conn);
                                return Ok(true);
                            }
                        }
                    }
                    // RFC 9114 §7.2.5: a server treats any PUSH_PROMISE as
                    // H3_FRAME_UNEXPECTED; a client that never sent
                    // MAX_PUSH_ID gets a push ID above its limit (H3_ID_ERROR).
                    FrameEvent::PushPromise { .. } if self.side == Side::Server => {
                        return Err(H3Error::frame_unexpected("PUSH_PROMISE from a client"));
                    }
                    FrameEvent::PushPromise { .. } => {
                        return Err(H3Error::new(H3ErrorCode::H3_ID_ERROR, crate::error::ErrorScope::Connection, "PUSH_PROMISE without MAX_PUSH_ID"));
                    }
                    FrameEvent::Unknown { .. } => {}
                    _ => return Err(H3Error::frame_unexpected("control frame on a request stream")),
                }
            }
            if data_seen {
                self.events.push_back(H3Event::Data { stream: id });
            }
            if fin {
                st.decoder.finish()?;
                if st.phase == Phase::Headers {
                    // RFC 9114 §4.1: a message needs its final header section.
                    return Err(H3Error::message_error("stream ended before the header section"));
                }
                st.length.finish()?;
                st.fin = true;
                break;
            }
        }
        self.flush_decoder_stream(conn);
        if st.fin && st.body_len == 0 && !st.finished_emitted {
            st.finished_emitted = true;
            self.events.push_back(H3Event::Finished { stream: id });
        }
        Ok(!(st.finished_emitted && st.local_fin))
    }

    pub(super) fn on_header_section(&mut self, id: StreamId, st: &mut RequestStream, fields: Vec<HeaderField>, at_end: bool) -> Result<(), H3Error> {
        match (self.side, st.phase) {
            (Side::Server, Phase::Headers) => {
                let opts = RequestOptions { extended_connect: self.config.enable_connect_protocol };
                let req = parse_request(&fields, opts)?;
                // RFC 9218 §5, §7: the `priority` field, unless a
                // PRIORITY_UPDATE for the stream came first (it wins);
                // absent both, the defaults (urgency 3, not incremental).
                let header = fields.iter().find(|f| &f.name[..] == b"priority").map(|f| Priority::parse(&f.value));
                st.apply_priority = Some(self.early_priorities.remove(&id).or(header).unwrap_or_default());
                st.length = ContentLengthTracker::for_request(&req);
                st.phase = Phase::Body;
                self.events.push_back(H3Event::Headers { stream: id, headers: fields, fin: at_end });
                while let Some(payload) = st.held_datagrams.pop_front() {
                    self.events.push_back(H3Event::Datagram { stream: id, payload });
                }
            }
            (Side::Client, Phase::Headers) => {
                let resp = parse_response(&fields)?;
                if !resp.is_informational() {
                    st.length = ContentLengthTracker::for_response(st.method, &resp);
                    st.phase = Phase::Body;
                }
                self.events.push_back(H3Event::Headers { stream: id, headers: fields, fin: at_end });
            }
            (_, Phase::Body) => {
                validate_trailers(&fields)?;
                st.phase = Phase::Trailers;
                self.events.push_back(H3Event::Trailers { stream: id, headers: fields });
            }
            (_, Phase::Trailers) => return Err(H3Error::frame_unexpected("HEADERS after trailers")),
        }
        Ok(())
    }

    pub(super) fn resume_blocked(&mut self, conn: &mut Connection, id: StreamId) -> Result<(), H3Error> {
        let Some(mut st) = self.requests.remove(&id) else { return Ok(()) };
        let fields = self.decoder.resume(id.0).map_err(qpack_error)?;
        st.blocked_on_qpack = false;
        let res = match fields {
            Some(fields) => {
                let at_end = st.pending.as_ref().is_none_or(|p| p.is_empty()) && st.pending_fin;
                self.on_header_section(id, &mut st, fields, at_end)
            }
            None => Ok(()),
        };
        self.requests.insert(id, st);
        match res {
            Err(e) if e.is_stream_error() => {
                self.requests.remove(&id);
                conn.reset_stream(id, e.code.0);
                conn.stop_sending(id, e.code.0);
                self.events.push_back(H3Event::Reset { stream: id, code: e.code.0 });
                Ok(())
            }
            Err(e) => Err(e),
            Ok(()) => self.read_request(conn, id),
        }
    }

    // ----- sending -----

    /// Client: starts a request. `headers` carry the pseudo-headers first.
    pub fn send_request(&mut self, conn: &mut Connection, headers: &[HeaderField], end_stream: bool) -> Result<StreamId, SendError> {
        if self.side != Side::Client || self.goaway_received.is_some() || self.closed.is_some() {
            return Err(SendError::Refused);
        }
        if !conn.can_open_stream(Dir::Bi) {
            // Out of stream credit: refused before the request is
            // validated, as a client at its limit calls again and again.
            // `open_stream` queues the STREAMS_BLOCKED (RFC 9000 §4.6).
            let _ = conn.open_stream(Dir::Bi);
            return Err(SendError::Refused);
        }
        let req = parse_request(headers, RequestOptions { extended_connect: true }).map_err(SendError::Invalid)?;
        if req.is_extended_connect() {
            // RFC 9220 §3: a client sends :protocol only after it received
            // SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 from the server.
            match &self.peer_settings {
                None => return Err(SendError::AwaitingSettings),
                Some(s) if !s.enable_connect_protocol => return Err(SendError::NotSupported),
                Some(_) => {}
            }
        }
        let method = MethodClass::of(req.method);
        self.open_local_streams(conn);
        let id = conn.open_stream(Dir::Bi).ok_or(SendError::Refused)?;
        self.max_request_seen = Some(self.max_request_seen.map_or(id.0, |m| m.max(id.0)));
        let mut st = Box::new(RequestStream::new(self.limits));
        st.method = method;
        self.write_header_section(conn, id, None, headers)?;
        if end_stream {
            let _ = conn.finish(id);
            st.local_fin = true;
        }
        self.requests.insert(id, st);
        Ok(id)
    }

    /// Sends a header section on an existing request stream: the response
    /// (server), an interim 1xx response, or trailers.
    pub fn send_headers(&mut self, conn: &mut Connection, stream: StreamId, headers: &[HeaderField], end_stream: bool) -> Result<(), SendError> {
        if !self.requests.contains_key(&stream) {
            return Err(SendError::StreamClosed);
        }
        self.write_header_section(conn, stream, None, headers)?;
        if end_stream {
            self.finish(conn, stream)?;
        }
        Ok(())
    }

    /// Server convenience: `:status` plus fields.
    ///
    /// A `priority` field among `headers` (RFC 9218 §5) is also the
    /// server's scheduling decision for this response (§8): the response is
    /// sent at that priority, whatever the request asked.
    pub fn send_response(&mut self, conn: &mut Connection, stream: StreamId, status: u16, headers: &[HeaderField], end_stream: bool) -> Result<(), SendError> {
        if self.side == Side::Server {
            if let Some(f) = headers.iter().find(|f| f.name.eq_ignore_ascii_case(b"priority")) {
                conn.set_priority(stream, Priority::parse(&f.value).quic_priority(stream));
            }
        }
        if !self.requests.contains_key(&stream) {
            return Err(SendError::StreamClosed);
        }
        // `:status` goes to the encoder beside the caller's fields: no
        // merged field list and no status string per response.
        self.write_header_section(conn, stream, Some(status), headers)?;
        if end_stream {
            self.finish(conn, stream)?;
        }
        Ok(())
    }

    /// Encodes a header section (with a leading `:status` when given) and
    /// writes it as one HEADERS frame: the frame header from the stack, the
    /// field section from the connection's scratch buffer, so a response
    /// costs no allocation here.
    pub(super) fn write_header_section(
        &mut self,
        conn: &mut Connection,
        stream: StreamId,
        status: Option<u16>,
        headers: &[HeaderField],
    ) -> Result<(), SendError> {
        self.scratch.clear();
        self.enc_scratch.clear();
        match status {
            Some(code) => self.encoder.encode_response_fields(stream.0, code, headers, &mut self.scratch, &mut self.enc_scratch),
            None => self.encoder.encode_fields(stream.0, headers, &mut self.scratch, &mut self.enc_scratch),
        }
        let mut hdr = [0u8; 9];
        let mut w = Writer::new(&mut hdr);
        if crate::frame::encode_frame_header(FrameType::HEADERS.0, self.scratch.len() as u64, &mut w).is_err() {
            return Err(SendError::WouldBlock);
        }
        let head = w.written();
        if !self.enc_scratch.is_empty() {
            // The encoder instructions go out only with the section that
            // needs them (RFC 9204 §4.5.1: they precede its decoding).
            if (conn.writable(stream) as usize) < head.len() + self.scratch.len() {
                return Err(SendError::WouldBlock);
            }
            if let Some(enc) = self.encoder_out {
                let _ = conn.write(enc, &self.enc_scratch);
            }
        }
        // The frame header and the section in one write, all or nothing.
        conn.write_parts(stream, &[head, &self.scratch], false).map_err(write_error)
    }

    /// Sends body bytes in one DATA frame; returns how many were taken (may
    /// be fewer than `data.len()`, or 0 when the stream's buffer is full).
    pub fn send_data(&mut self, conn: &mut Connection, stream: StreamId, data: &[u8], end_stream: bool) -> Result<usize, SendError> {
        self.send_data_bytes(conn, stream, Bytes::copy_from_slice(data), end_stream)
    }

    /// Zero-copy variant of [`H3Connection::send_data`].
    pub fn send_data_bytes(&mut self, conn: &mut Connection, stream: StreamId, data: Bytes, end_stream: bool) -> Result<usize, SendError> {
        if !self.requests.contains_key(&stream) {
            return Err(SendError::StreamClosed);
        }
        let room = conn.writable(stream) as usize;
        // Frame header: type (1) + length varint (at most 8).
        let n = data.len().min(room.saturating_sub(9));
        if n > 0 {
            let mut hdr = [0u8; 9];
            let mut w = Writer::new(&mut hdr);
            if crate::frame::encode_frame_header(FrameType::DATA.0, n as u64, &mut w).is_err() {
                return Err(SendError::WouldBlock);
            }
            let head = w.written();
            if n <= SMALL_BODY_COPY {
                // A short body is copied behind its frame header, FIN
                // included: cheaper than a reference-counted segment of
                // its own, and one write instead of three.
                let body = data.get(..n).unwrap_or_default();
                let fin = end_stream && n == data.len();
                conn.write_parts(stream, &[head, body], fin).map_err(|_| SendError::StreamClosed)?;
                if fin {
                    self.on_local_fin(stream);
                }
                return Ok(n);
            }
            conn.write(stream, head).map_err(|_| SendError::StreamClosed)?;
            conn.write_bytes(stream, data.slice(..n)).map_err(|_| SendError::StreamClosed)?;
        }
        if end_stream && n == data.len() {
            self.finish(conn, stream)?;
        }
        Ok(n)
    }

    /// Ends our side of the message.
    pub fn finish(&mut self, conn: &mut Connection, stream: StreamId) -> Result<(), SendError> {
        conn.finish(stream).map_err(|_| SendError::StreamClosed)?;
        self.on_local_fin(stream);
        Ok(())
    }

    /// Our side of the message ended: the request's state goes once the
    /// peer's side has ended too.
    fn on_local_fin(&mut self, stream: StreamId) {
        if let Some(st) = self.requests.get_mut(&stream) {
            st.local_fin = true;
            if st.finished_emitted {
                self.requests.remove(&stream);
            }
        }
    }

    /// Abandons a message (RFC 9114 §4.1.1): reset our side, stop the peer's.
    pub fn cancel(&mut self, conn: &mut Connection, stream: StreamId, code: H3ErrorCode) {
        conn.reset_stream(stream, code.0);
        conn.stop_sending(stream, code.0);
        self.decoder.cancel_stream(stream.0);
        self.requests.remove(&stream);
        self.capsule_readers.remove(&stream);
    }

    /// Takes buffered body bytes (at most `max`); `None` when nothing is
    /// buffered right now.
    pub fn recv_body(&mut self, conn: &mut Connection, stream: StreamId, max: usize) -> Option<Bytes> {
        let st = self.requests.get_mut(&stream)?;
        let front = st.body.front_mut()?;
        let out = if front.len() <= max { st.body.pop_front()? } else { front.split_to(max) };
        st.body_len -= out.len();
        let drained = st.body_len == 0;
        let fin = st.fin;
        if drained && !fin {
            // Room again: pull more out of QUIC.
            let _ = self.read_request(conn, stream);
        }
        if let Some(st) = self.requests.get_mut(&stream) {
            if st.body_len == 0 && st.fin && !st.finished_emitted {
                st.finished_emitted = true;
                self.events.push_back(H3Event::Finished { stream });
                if st.local_fin {
                    self.requests.remove(&stream);
                }
            }
        }
        Some(out)
    }
}
