//! HTTP/3 datagrams (RFC 9297 §2) and the Capsule Protocol (§3) on a
//! request stream.

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use quic_core::connection::{Connection, Side};
use quic_core::stream::{Dir, StreamId};

use super::*;
use crate::capsule::{Capsule, CapsuleDecoder, CapsuleError};
use crate::datagram::{self, DatagramError, DatagramParseError};
use crate::error::{H3Error, H3ErrorCode};

impl H3Connection {
    /// HTTP datagrams may be sent: both sides sent SETTINGS_H3_DATAGRAM = 1
    /// and the peer accepts QUIC DATAGRAM frames (RFC 9297 §2.1.1).
    pub fn datagrams_negotiated(&self, conn: &Connection) -> bool {
        self.config.enable_datagrams
            && self.peer_settings.as_ref().is_some_and(|s| s.h3_datagram)
            && conn.peer_transport_parameters().is_some_and(|p| p.max_datagram_frame_size.is_some())
    }

    /// The largest HTTP datagram payload [`H3Connection::send_datagram`]
    /// accepts on `stream` now: bounded by the peer's max_datagram_frame_size
    /// and by one packet (a DATAGRAM frame is never split, RFC 9221 §5).
    pub fn max_datagram_payload(&self, conn: &Connection, stream: StreamId) -> Option<usize> {
        let peer_max = conn.peer_transport_parameters()?.max_datagram_frame_size?;
        let packet_room = usize::from(conn.mtu()).saturating_sub(datagram::PACKET_OVERHEAD) as u64;
        let frame_max = peer_max.min(packet_room);
        // The largest content whose whole frame (type + length varint +
        // content, RFC 9221 §4) fits — quic-core's own queueing rule — a
        // few steps at most.
        let mut content = frame_max.saturating_sub(2);
        while content > 0 && datagram::frame_size(content as usize) as u64 > frame_max {
            content -= 1;
        }
        let hdr = datagram::header_len(stream);
        (content as usize).checked_sub(hdr)
    }

    /// Sends an HTTP datagram (RFC 9297 §2.1) for request stream `stream`.
    /// Unreliable: it may be lost and is never retransmitted.
    pub fn send_datagram(&mut self, conn: &mut Connection, stream: StreamId, payload: &[u8]) -> Result<(), DatagramError> {
        if self.closed.is_some() || conn.is_closed() {
            return Err(DatagramError::Closed);
        }
        if !self.datagrams_negotiated(conn) {
            return Err(DatagramError::NotNegotiated);
        }
        // Only while our side of the request stream is open.
        let open = self.requests.get(&stream).is_some_and(|st| !st.local_fin);
        if datagram::quarter_stream_id(stream).is_none() || !open {
            return Err(DatagramError::InvalidStream);
        }
        let max = self.max_datagram_payload(conn, stream).ok_or(DatagramError::NotNegotiated)?;
        if payload.len() > max {
            return Err(DatagramError::TooLarge);
        }
        let hdr = datagram::header_len(stream);
        if self.dgram_out.capacity() < hdr + payload.len() {
            // A fresh arena: the split-off datagrams keep the old one alive.
            self.dgram_out = BytesMut::with_capacity(DGRAM_ARENA.max(hdr + payload.len()));
        }
        let mut q = [0u8; 8];
        let n = datagram::encode_header(stream, &mut q).ok_or(DatagramError::InvalidStream)?;
        self.dgram_out.put_slice(q.get(..n).ok_or(DatagramError::InvalidStream)?);
        self.dgram_out.put_slice(payload);
        let d = self.dgram_out.split().freeze();
        if conn.send_datagram(d) {
            Ok(())
        } else {
            Err(DatagramError::Blocked)
        }
    }

    /// HTTP datagrams dropped on receipt: for closed or unknown streams,
    /// beyond the early buffer, or not negotiated.
    pub fn datagrams_dropped(&self) -> u64 {
        self.datagrams_dropped
    }

    pub(super) fn on_datagrams(&mut self, conn: &mut Connection, now: Instant) -> Result<(), H3Error> {
        if !self.early_datagrams.is_empty() {
            // Retry the early ones now that more streams may exist; drop
            // those older than about a round trip (RFC 9297 §2.1).
            let max_age = (conn.rtt() * 2).max(Duration::from_millis(5));
            let early = core::mem::take(&mut self.early_datagrams);
            for (at, stream, payload) in early {
                if now.saturating_duration_since(at) > max_age {
                    self.datagrams_dropped += 1;
                } else {
                    self.deliver_datagram(stream, payload, at);
                }
            }
        }
        while let Some(d) = conn.recv_datagram() {
            self.on_datagram(conn, now, d)?;
        }
        Ok(())
    }

    pub(super) fn on_datagram(&mut self, conn: &Connection, now: Instant, d: Bytes) -> Result<(), H3Error> {
        if !self.config.enable_datagrams {
            // We never sent SETTINGS_H3_DATAGRAM = 1, so the peer must not
            // send any (RFC 9297 §2.1.1); nothing can use them.
            self.datagrams_dropped += 1;
            return Ok(());
        }
        let (stream, offset) = datagram::decode(&d).map_err(|e| match e {
            // RFC 9297 §2.1: a Quarter Stream ID above 2^60 - 1 MUST be a
            // connection error of type H3_DATAGRAM_ERROR; so is a datagram
            // too short to hold one (§5.2: malformed HTTP datagram).
            DatagramParseError::QuarterStreamIdTooLarge => H3Error::connection(H3ErrorCode::H3_DATAGRAM_ERROR, "Quarter Stream ID above 2^60 - 1"),
            DatagramParseError::Truncated => H3Error::connection(H3ErrorCode::H3_DATAGRAM_ERROR, "HTTP datagram without a Quarter Stream ID"),
        })?;
        // RFC 9297 §2.1: a Quarter Stream ID that maps to a stream that
        // cannot be created because of client-initiated bidirectional stream
        // limits SHOULD be a connection error of type H3_ID_ERROR.
        let beyond = match self.side {
            Side::Server => (stream.0 >> 2) >= conn.peer_stream_limit(Dir::Bi),
            // The server can only name streams this client opened.
            Side::Client => self.max_request_seen.is_none_or(|m| stream.0 > m),
        };
        if beyond {
            return Err(H3Error::id_error("HTTP datagram for a stream beyond the stream limit"));
        }
        self.deliver_datagram(stream, d.slice(offset..), now);
        Ok(())
    }

    pub(super) fn deliver_datagram(&mut self, stream: StreamId, payload: Bytes, arrived: Instant) {
        if let Some(st) = self.requests.get_mut(&stream) {
            if self.side == Side::Server && st.phase == Phase::Headers {
                if st.held_datagrams.len() < MAX_HELD_DATAGRAMS {
                    st.held_datagrams.push_back(payload);
                } else {
                    self.datagrams_dropped += 1;
                }
                return;
            }
            self.events.push_back(H3Event::Datagram { stream, payload });
            return;
        }
        let not_opened_yet = self.side == Side::Server && self.max_request_seen.is_none_or(|m| stream.0 > m);
        if not_opened_yet {
            // RFC 9297 §2.1: a datagram for a stream not yet created is
            // dropped or buffered briefly; we keep a bounded few.
            if self.early_datagrams.len() >= MAX_EARLY_DATAGRAMS {
                self.early_datagrams.pop_front();
                self.datagrams_dropped += 1;
            }
            self.early_datagrams.push_back((arrived, stream, payload));
            return;
        }
        // RFC 9297 §2.1: datagrams for a closed stream are silently dropped
        // (they may arrive after it closed, reordered).
        self.datagrams_dropped += 1;
    }

    /// Sends one capsule (RFC 9297 §3) in one DATA frame on `stream`;
    /// all or nothing: `WouldBlock` when the stream's buffer lacks room.
    pub fn send_capsule(&mut self, conn: &mut Connection, stream: StreamId, capsule_type: u64, value: &[u8]) -> Result<(), SendError> {
        if self.requests.get(&stream).is_none_or(|st| st.local_fin) {
            return Err(SendError::StreamClosed);
        }
        let mut buf = Vec::with_capacity(crate::capsule::header_len(capsule_type, value.len()) + value.len());
        crate::capsule::encode(capsule_type, value, &mut buf)
            .map_err(|_| SendError::Invalid(H3Error::stream(H3ErrorCode::H3_DATAGRAM_ERROR, "capsule not encodable")))?;
        // DATA frame header: type (1) + length varint (at most 8).
        if (conn.writable(stream) as usize) < buf.len() + 9 {
            return Err(SendError::WouldBlock);
        }
        let len = buf.len();
        match self.send_data_bytes(conn, stream, Bytes::from(buf), false)? {
            n if n == len => Ok(()),
            _ => Err(SendError::StreamClosed),
        }
    }

    /// Sends an HTTP datagram as a DATAGRAM capsule on the stream (RFC 9297
    /// §3.5), the reliable alternative to [`H3Connection::send_datagram`].
    pub fn send_datagram_capsule(&mut self, conn: &mut Connection, stream: StreamId, payload: &[u8]) -> Result<(), SendError> {
        self.send_capsule(conn, stream, crate::capsule::capsule_type::DATAGRAM, payload)
    }

    /// Lets [`H3Connection::recv_capsule`] deliver capsules of
    /// `capsule_type` on `stream` (DATAGRAM capsules always are; other
    /// types are skipped, RFC 9297 §3.2).
    pub fn deliver_capsule_type(&mut self, stream: StreamId, capsule_type: u64) {
        let max = self.config.max_capsule_len;
        self.capsule_readers
            .entry(stream)
            .or_insert_with(|| CapsuleReader { dec: CapsuleDecoder::new(max), rest: Bytes::new() })
            .dec
            .deliver_type(capsule_type);
    }

    /// Reads the next capsule from `stream`'s DATA, for a request that uses
    /// the Capsule Protocol (call on `H3Event::Data` until `Ok(None)`). A
    /// malformed or oversized capsule, or a stream that ends inside one,
    /// resets the stream with H3_DATAGRAM_ERROR (RFC 9297 §3.3, §5.2) and
    /// is returned as that stream error.
    pub fn recv_capsule(&mut self, conn: &mut Connection, stream: StreamId) -> Result<Option<Capsule>, H3Error> {
        let max = self.config.max_capsule_len;
        let mut r = self.capsule_readers.remove(&stream).unwrap_or_else(|| CapsuleReader { dec: CapsuleDecoder::new(max), rest: Bytes::new() });
        let res: Result<Option<Capsule>, CapsuleError> = loop {
            if !r.rest.is_empty() {
                let mut input: &[u8] = &r.rest;
                match r.dec.decode(&mut input) {
                    Ok(Some(c)) => {
                        let used = r.rest.len() - input.len();
                        r.rest = r.rest.slice(used..);
                        break Ok(Some(c));
                    }
                    Ok(None) => r.rest = Bytes::new(),
                    Err(e) => break Err(e),
                }
            }
            match self.recv_body(conn, stream, usize::MAX) {
                Some(b) => r.rest = b,
                None => {
                    let ended = self.requests.get(&stream).is_none_or(|st| st.fin && st.body_len == 0);
                    if ended {
                        if let Err(e) = r.dec.finish() {
                            break Err(e);
                        }
                        // The stream is done: forget its reader.
                        return Ok(None);
                    }
                    break Ok(None);
                }
            }
        };
        match res {
            Ok(c) => {
                self.capsule_readers.insert(stream, r);
                Ok(c)
            }
            Err(e) => {
                let reason = match e {
                    CapsuleError::Truncated => "stream ended inside a capsule",
                    CapsuleError::TooLarge { .. } => "capsule exceeds the length bound",
                    CapsuleError::Unencodable | CapsuleError::Malformed => "malformed capsule",
                };
                let err = H3Error::stream(H3ErrorCode::H3_DATAGRAM_ERROR, reason);
                let tracked = self.requests.contains_key(&stream);
                self.cancel(conn, stream, H3ErrorCode::H3_DATAGRAM_ERROR);
                if tracked {
                    self.events.push_back(H3Event::Reset { stream, code: H3ErrorCode::H3_DATAGRAM_ERROR.0 });
                }
                Err(err)
            }
        }
    }
}
