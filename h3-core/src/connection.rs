//! The HTTP/3 connection (RFC 9114 §3–§7) over a quic-core [`Connection`].
//!
//! Sans-I/O like the transport: [`H3Connection::process`] drains the QUIC
//! connection's events, reads the streams that became readable, runs the
//! control and QPACK streams, and turns request streams into [`H3Event`]s.
//! The application answers with `send_*` calls. Bodies stream: at most
//! `max_buffered_body` bytes per stream are pulled out of QUIC before the
//! application reads them, so QUIC flow control keeps pushing back.
//!
//! Extensions negotiated by SETTINGS: Extended CONNECT (RFC 9220), HTTP
//! Datagrams over QUIC DATAGRAM frames (RFC 9297 §2, RFC 9221) and the
//! Capsule Protocol on a request stream's DATA (RFC 9297 §3).

use std::collections::VecDeque;

// Stream IDs are bounded by the stream limits we grant, so a peer cannot
// flood one bucket; SipHash cost more than the frame handling around it.
use quic_core::fast_hash::FastHashMap;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use quic_core::codec::Writer;
use quic_core::connection::{Connection, Event as QuicEvent, Side, StreamEvent};
use quic_core::stream::{Dir, StreamId, StreamReadError};
use quic_core::transport_params::Role;

use crate::capsule::{Capsule, CapsuleDecoder, CapsuleError};
use crate::datagram::{self, DatagramError, DatagramParseError};
use crate::error::{H3Error, H3ErrorCode};
use crate::frame::{Frame, FrameDecoder, FrameEvent, FrameLimits, FrameType, StreamKind};
use crate::message::{parse_request, parse_response, validate_trailers, ContentLengthTracker, Field, RequestOptions};
use crate::qpack::{DecodeResult, Decoder, DecoderConfig, Encoder, EncoderConfig, HeaderField, QpackError};
use crate::settings::Settings;
use crate::stream_type::{PeerUniStreams, StreamHeaderReader, StreamType};

impl Field for HeaderField {
    fn name(&self) -> &[u8] {
        &self.name
    }
    fn value(&self) -> &[u8] {
        &self.value
    }
}

/// Our HTTP/3 settings and local limits.
#[derive(Debug, Clone)]
pub struct H3Config {
    /// SETTINGS_MAX_FIELD_SECTION_SIZE we advertise and enforce.
    pub max_field_section_size: u64,
    /// SETTINGS_QPACK_MAX_TABLE_CAPACITY for our decoder.
    pub qpack_max_table_capacity: u64,
    /// SETTINGS_QPACK_BLOCKED_STREAMS for our decoder.
    pub qpack_blocked_streams: u64,
    /// RFC 9220 extended CONNECT.
    pub enable_connect_protocol: bool,
    /// RFC 9297 HTTP datagrams (needs QUIC DATAGRAM support too).
    pub enable_datagrams: bool,
    /// Send a reserved setting and a reserved frame type (RFC 9114 §7.2.4.1, §7.2.8).
    pub grease: bool,
    /// Body bytes read out of QUIC per stream before the application takes them.
    pub max_buffered_body: usize,
    /// Bound on the value of a capsule [`H3Connection::recv_capsule`]
    /// delivers (RFC 9297 §3.2 lets a receiver limit capsule sizes).
    pub max_capsule_len: usize,
}

impl Default for H3Config {
    fn default() -> Self {
        Self {
            max_field_section_size: 64 * 1024,
            qpack_max_table_capacity: 4096,
            qpack_blocked_streams: 16,
            enable_connect_protocol: false,
            enable_datagrams: false,
            grease: true,
            max_buffered_body: 256 * 1024,
            max_capsule_len: crate::capsule::DEFAULT_MAX_VALUE_LEN,
        }
    }
}

/// What the application learns from [`H3Connection::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum H3Event {
    /// Server: a request's header section. Client: a response's (final or
    /// interim 1xx) header section. `fin`: the stream ended right after it.
    Headers { stream: StreamId, headers: Vec<HeaderField>, fin: bool },
    /// Body bytes are buffered; take them with [`H3Connection::recv_body`].
    Data { stream: StreamId },
    /// A trailer section (RFC 9114 §4.1).
    Trailers { stream: StreamId, headers: Vec<HeaderField> },
    /// The peer's side of the message is complete and all of it was read.
    Finished { stream: StreamId },
    /// Send buffer space opened on a stream whose last send returned
    /// [`SendError::WouldBlock`]: send again now, no need to poll.
    Writable { stream: StreamId },
    /// Everything we sent on the stream, with its end, was acknowledged by
    /// the peer (e.g. a response fully delivered).
    Acknowledged { stream: StreamId },
    /// The stream was reset (by the peer, or by us for a malformed message).
    Reset { stream: StreamId, code: u64 },
    /// GOAWAY received (RFC 9114 §5.2): no new requests above `id`.
    GoAway { id: u64 },
    /// An HTTP datagram (RFC 9297 §2) for an open request stream. Server:
    /// never before that request's `Headers` event.
    Datagram { stream: StreamId, payload: Bytes },
    /// A transport event passed through (handshake, connection lost...).
    Transport(QuicEvent),
}

/// A failed send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// Not enough send buffer now; retry after the stream is writable.
    WouldBlock,
    /// The stream does not exist, is finished, or was reset.
    StreamClosed,
    /// No new requests: GOAWAY received, the connection is closing, or the
    /// peer's stream limit is reached.
    Refused,
    /// The header section is not a valid message.
    Invalid(H3Error),
    /// Extended CONNECT before the server's SETTINGS arrived (RFC 9220 §3):
    /// retry once [`H3Connection::peer_settings`] is known.
    AwaitingSettings,
    /// The peer did not enable the extension this needs (Extended CONNECT:
    /// SETTINGS_ENABLE_CONNECT_PROTOCOL was not 1).
    NotSupported,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the (first or next interim) header section.
    Headers,
    /// Final headers seen; DATA and trailers may follow.
    Body,
    /// Trailers seen; only the end of the stream may follow.
    Trailers,
}

#[derive(Debug)]
struct RequestStream {
    decoder: FrameDecoder,
    phase: Phase,
    body: VecDeque<Bytes>,
    body_len: usize,
    /// Bytes read from QUIC but not yet run through the frame decoder
    /// (kept while a header section waits for QPACK).
    pending: Option<Bytes>,
    pending_fin: bool,
    blocked_on_qpack: bool,
    fin: bool,
    finished_emitted: bool,
    length: ContentLengthTracker,
    /// Server: the request method, for response framing rules.
    method: Option<String>,
    local_fin: bool,
    /// Server: HTTP datagrams that arrived before the request's header
    /// section was decoded, delivered right after its `Headers` event.
    held_datagrams: VecDeque<Bytes>,
}

impl RequestStream {
    fn new(limits: FrameLimits) -> Self {
        Self {
            decoder: FrameDecoder::new(StreamKind::Request, limits),
            phase: Phase::Headers,
            body: VecDeque::new(),
            body_len: 0,
            pending: None,
            pending_fin: false,
            blocked_on_qpack: false,
            fin: false,
            finished_emitted: false,
            length: ContentLengthTracker::new(None),
            method: None,
            local_fin: false,
            held_datagrams: VecDeque::new(),
        }
    }
}

#[derive(Debug)]
enum UniState {
    /// Reading the stream type.
    Header(StreamHeaderReader),
    Control(Box<FrameDecoder>),
    QpackEncoder,
    QpackDecoder,
    /// Unknown, reserved or unwanted: read and dropped (RFC 9114 §6.2).
    Discard,
}

/// The HTTP/3 side of one QUIC connection.
#[derive(Debug)]
pub struct H3Connection {
    side: Side,
    config: H3Config,
    limits: FrameLimits,
    control_out: Option<StreamId>,
    encoder_out: Option<StreamId>,
    decoder_out: Option<StreamId>,
    peer_uni: PeerUniStreams,
    uni: FastHashMap<StreamId, UniState>,
    peer_settings: Option<Settings>,
    encoder: Encoder,
    decoder: Decoder,
    requests: FastHashMap<StreamId, RequestStream>,
    events: VecDeque<H3Event>,
    goaway_received: Option<u64>,
    goaway_sent: Option<u64>,
    /// Server: the highest request stream accepted, for GOAWAY. Client:
    /// the highest request stream opened.
    max_request_seen: Option<u64>,
    /// Server: MAX_PUSH_ID from the client (we never push).
    max_push_id: Option<u64>,
    closed: Option<H3Error>,
    scratch: Vec<u8>,
    enc_scratch: Vec<u8>,
    /// Server: HTTP datagrams for request streams not opened yet (they may
    /// overtake the stream's first STREAM frame), with their arrival time.
    early_datagrams: VecDeque<(Instant, StreamId, Bytes)>,
    /// Outgoing datagrams are built here and split off, so most datagrams
    /// share one allocation.
    dgram_out: BytesMut,
    datagrams_dropped: u64,
    /// Capsule parsing state per stream that used [`H3Connection::recv_capsule`].
    capsule_readers: FastHashMap<StreamId, CapsuleReader>,
}

/// Capsule decoder plus the part of a body chunk it has not consumed yet.
#[derive(Debug)]
struct CapsuleReader {
    dec: CapsuleDecoder,
    rest: Bytes,
}

/// Early datagrams kept at most (RFC 9297 §2.1 allows buffering "on the
/// order of a round trip"; beyond this they are dropped, oldest first).
const MAX_EARLY_DATAGRAMS: usize = 64;
/// Datagrams held per stream while its header section is pending.
const MAX_HELD_DATAGRAMS: usize = 32;
/// Arena size for outgoing datagrams.
const DGRAM_ARENA: usize = 64 * 1024;

/// Bytes of a QUIC stream read per call.
const READ_CHUNK: usize = 64 * 1024;

fn role(side: Side) -> Role {
    match side {
        Side::Client => Role::Client,
        Side::Server => Role::Server,
    }
}

/// A sub-slice of `whole` as `Bytes` without copying when it lies inside.
fn sub_bytes(whole: &Bytes, part: &[u8]) -> Bytes {
    let start = whole.as_ptr() as usize;
    let p = part.as_ptr() as usize;
    if p >= start && p + part.len() <= start + whole.len() {
        whole.slice(p - start..p - start + part.len())
    } else {
        Bytes::copy_from_slice(part)
    }
}

impl H3Connection {
    pub fn new(side: Side, config: H3Config) -> Self {
        let limits = FrameLimits { max_field_section_size: config.max_field_section_size as usize, ..FrameLimits::default() };
        let decoder = Decoder::new(DecoderConfig {
            max_table_capacity: config.qpack_max_table_capacity,
            max_blocked_streams: config.qpack_blocked_streams as usize,
            max_field_section_size: config.max_field_section_size,
        });
        Self {
            side,
            limits,
            control_out: None,
            encoder_out: None,
            decoder_out: None,
            peer_uni: PeerUniStreams::new(),
            uni: FastHashMap::default(),
            peer_settings: None,
            // Until the peer's SETTINGS arrive its table capacity is 0
            // (RFC 9204 §3.2.3), so the encoder starts without a table.
            encoder: Encoder::new(EncoderConfig::from_peer(0, 0)),
            decoder,
            requests: FastHashMap::default(),
            events: VecDeque::new(),
            goaway_received: None,
            goaway_sent: None,
            max_request_seen: None,
            max_push_id: None,
            closed: None,
            scratch: Vec::with_capacity(256),
            enc_scratch: Vec::with_capacity(256),
            early_datagrams: VecDeque::new(),
            dgram_out: BytesMut::new(),
            datagrams_dropped: 0,
            capsule_readers: FastHashMap::default(),
            config,
        }
    }

    pub fn peer_settings(&self) -> Option<&Settings> {
        self.peer_settings.as_ref()
    }

    pub fn poll_event(&mut self) -> Option<H3Event> {
        self.events.pop_front()
    }

    /// Drives HTTP/3: call after the QUIC connection handled input or timers.
    /// A connection error closes the QUIC connection with the H3 code and is
    /// returned.
    pub fn process(&mut self, conn: &mut Connection, now: Instant) -> Result<(), H3Error> {
        if let Some(e) = self.closed {
            return Err(e);
        }
        let res = self.process_inner(conn, now);
        if let Err(e) = res {
            if e.is_connection_error() {
                self.closed = Some(e);
                conn.close(now, e.code.0, e.reason.as_bytes());
            }
        }
        res
    }

    fn process_inner(&mut self, conn: &mut Connection, now: Instant) -> Result<(), H3Error> {
        self.open_local_streams(conn);
        while let Some(ev) = conn.poll_event() {
            match ev {
                QuicEvent::Stream(StreamEvent::Readable(id)) => self.on_readable(conn, id)?,
                QuicEvent::Stream(StreamEvent::Opened(_)) => {}
                QuicEvent::Stream(StreamEvent::Reset { id, error_code }) => self.on_reset(conn, id, error_code)?,
                QuicEvent::Stream(StreamEvent::Stopped { id, error_code }) => {
                    if self.is_critical_local(id) {
                        return Err(H3Error::closed_critical_stream("peer stopped a critical stream"));
                    }
                    self.on_stopped(id, error_code);
                }
                // Request streams only (every bidirectional stream is one,
                // RFC 9114 §6.1): the control and QPACK streams are ours.
                QuicEvent::Stream(StreamEvent::Writable(id)) if !id.is_uni() => self.events.push_back(H3Event::Writable { stream: id }),
                QuicEvent::Stream(StreamEvent::Finished(id)) if !id.is_uni() => self.events.push_back(H3Event::Acknowledged { stream: id }),
                QuicEvent::Stream(_) => {}
                QuicEvent::HandshakeCompleted => {
                    self.open_local_streams(conn);
                    self.events.push_back(H3Event::Transport(QuicEvent::HandshakeCompleted));
                }
                // The queue is drained below on every call: HTTP/3 owns
                // the connection's DATAGRAM frames (RFC 9297 §2.1).
                QuicEvent::DatagramReceived => {}
                other => self.events.push_back(H3Event::Transport(other)),
            }
        }
        self.accept_streams(conn)?;
        // After new streams are accepted, so a datagram that arrived in the
        // same packet as its request's first STREAM frame finds the stream.
        self.on_datagrams(conn, now)?;
        self.flush_decoder_stream(conn);
        Ok(())
    }

    fn is_critical_local(&self, id: StreamId) -> bool {
        Some(id) == self.control_out || Some(id) == self.encoder_out || Some(id) == self.decoder_out
    }

    /// RFC 9114 §6.2.1: each side opens a control stream with SETTINGS first;
    /// RFC 9204 §4.2: and the QPACK encoder and decoder streams.
    fn open_local_streams(&mut self, conn: &mut Connection) {
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

    fn accept_streams(&mut self, conn: &mut Connection) -> Result<(), H3Error> {
        while let Some(id) = conn.accept_stream(Dir::Uni) {
            self.uni.insert(id, UniState::Header(StreamHeaderReader::new()));
            self.on_readable(conn, id)?;
        }
        while let Some(id) = conn.accept_stream(Dir::Bi) {
            if self.side == Side::Client {
                // RFC 9114 §6.1: servers do not open bidirectional streams.
                return Err(H3Error::stream_creation("server opened a bidirectional stream"));
            }
            if let Some(g) = self.goaway_sent {
                if id.0 >= g {
                    // RFC 9114 §5.2: refuse requests past our GOAWAY.
                    conn.reset_stream(id, H3ErrorCode::H3_REQUEST_REJECTED.0);
                    conn.stop_sending(id, H3ErrorCode::H3_REQUEST_REJECTED.0);
                    continue;
                }
            }
            self.max_request_seen = Some(self.max_request_seen.map_or(id.0, |m| m.max(id.0)));
            self.requests.insert(id, RequestStream::new(self.limits));
            self.on_readable(conn, id)?;
        }
        Ok(())
    }

    fn on_readable(&mut self, conn: &mut Connection, id: StreamId) -> Result<(), H3Error> {
        if self.uni.contains_key(&id) {
            return self.read_uni(conn, id);
        }
        if self.requests.contains_key(&id) {
            return self.read_request(conn, id);
        }
        Ok(())
    }

    /// STOP_SENDING on a request stream: only our sending half is gone.
    fn on_stopped(&mut self, id: StreamId, code: u64) {
        if self.side == Side::Client {
            // RFC 9114 §4.1.1: a server may abort reading the request and
            // still send a complete response, and "clients MUST NOT discard
            // complete responses as a result of having their request
            // terminated abruptly". Keep reading; nothing more is sent.
            if let Some(st) = self.requests.get_mut(&id) {
                st.local_fin = true;
                if st.finished_emitted {
                    self.requests.remove(&id);
                }
            }
            return;
        }
        // Server: the client no longer wants the response.
        self.capsule_readers.remove(&id);
        if self.requests.remove(&id).is_some() {
            self.events.push_back(H3Event::Reset { stream: id, code });
        }
    }

    fn on_reset(&mut self, conn: &mut Connection, id: StreamId, code: u64) -> Result<(), H3Error> {
        if let Some(state) = self.uni.get(&id) {
            if matches!(state, UniState::Control(_) | UniState::QpackEncoder | UniState::QpackDecoder) {
                // RFC 9114 §6.2.1, RFC 9204 §4.2: critical streams never close.
                return Err(H3Error::closed_critical_stream("peer reset a critical stream"));
            }
            self.uni.remove(&id);
            return Ok(());
        }
        self.capsule_readers.remove(&id);
        if self.requests.remove(&id).is_some() {
            self.decoder.cancel_stream(id.0);
            conn.stop_sending(id, H3ErrorCode::H3_REQUEST_CANCELLED.0);
            self.events.push_back(H3Event::Reset { stream: id, code });
        }
        Ok(())
    }

    // ----- unidirectional streams -----

    fn read_uni(&mut self, conn: &mut Connection, id: StreamId) -> Result<(), H3Error> {
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
                        while let Some(ev) = dec.decode(&mut input)? {
                            match ev {
                                FrameEvent::Settings(s) => frames.push(ControlFrame::Settings(s)),
                                FrameEvent::Goaway(g) => frames.push(ControlFrame::Goaway(g)),
                                FrameEvent::MaxPushId(m) => frames.push(ControlFrame::MaxPushId(m)),
                                FrameEvent::CancelPush(c) => frames.push(ControlFrame::CancelPush(c)),
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

    fn on_control_frame(&mut self, f: ControlFrame, peer_dgram_tp: Option<bool>) -> Result<(), H3Error> {
        match f {
            ControlFrame::Settings(s) => {
                // RFC 9297 §2.1.1: SETTINGS_H3_DATAGRAM = 1 from a peer that
                // did not send the max_datagram_frame_size transport
                // parameter is a connection error of type H3_SETTINGS_ERROR.
                if s.h3_datagram && peer_dgram_tp == Some(false) {
                    return Err(H3Error::settings_error("H3_DATAGRAM without QUIC DATAGRAM support"));
                }
                // The frame decoder already rejects a second SETTINGS.
                self.encoder = Encoder::new(EncoderConfig::from_peer(s.qpack_max_table_capacity, s.qpack_blocked_streams as usize));
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

    // ----- request streams -----

    fn read_request(&mut self, conn: &mut Connection, id: StreamId) -> Result<(), H3Error> {
        let Some(mut st) = self.requests.remove(&id) else { return Ok(()) };
        let res = self.drive_request(conn, id, &mut st);
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
    fn drive_request(&mut self, conn: &mut Connection, id: StreamId, st: &mut RequestStream) -> Result<bool, H3Error> {
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
                        let section = section.to_vec();
                        match self.decoder.decode(id.0, &section).map_err(qpack_error)? {
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

    fn on_header_section(&mut self, id: StreamId, st: &mut RequestStream, fields: Vec<HeaderField>, at_end: bool) -> Result<(), H3Error> {
        match (self.side, st.phase) {
            (Side::Server, Phase::Headers) => {
                let opts = RequestOptions { extended_connect: self.config.enable_connect_protocol };
                let req = parse_request(&fields, opts)?;
                st.length = ContentLengthTracker::for_request(&req);
                st.method = Some(req.method.to_string());
                st.phase = Phase::Body;
                self.events.push_back(H3Event::Headers { stream: id, headers: fields, fin: at_end });
                while let Some(payload) = st.held_datagrams.pop_front() {
                    self.events.push_back(H3Event::Datagram { stream: id, payload });
                }
            }
            (Side::Client, Phase::Headers) => {
                let resp = parse_response(&fields)?;
                if !resp.is_informational() {
                    let method = st.method.as_deref().unwrap_or("GET");
                    st.length = ContentLengthTracker::for_response(method, &resp);
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

    fn resume_blocked(&mut self, conn: &mut Connection, id: StreamId) -> Result<(), H3Error> {
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

    fn flush_decoder_stream(&mut self, conn: &mut Connection) {
        if !self.decoder.has_decoder_stream_data() {
            return;
        }
        let Some(id) = self.decoder_out else { return };
        self.scratch.clear();
        self.decoder.write_decoder_stream(&mut self.scratch);
        let _ = conn.write(id, &self.scratch);
    }

    // ----- sending -----

    /// Client: starts a request. `headers` carry the pseudo-headers first.
    pub fn send_request(&mut self, conn: &mut Connection, headers: &[HeaderField], end_stream: bool) -> Result<StreamId, SendError> {
        if self.side != Side::Client || self.goaway_received.is_some() || self.closed.is_some() {
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
        let method = req.method.to_string();
        self.open_local_streams(conn);
        let id = conn.open_stream(Dir::Bi).ok_or(SendError::Refused)?;
        self.max_request_seen = Some(self.max_request_seen.map_or(id.0, |m| m.max(id.0)));
        let mut st = RequestStream::new(self.limits);
        st.method = Some(method);
        self.write_header_section(conn, id, headers)?;
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
        self.write_header_section(conn, stream, headers)?;
        if end_stream {
            self.finish(conn, stream)?;
        }
        Ok(())
    }

    /// Server convenience: `:status` plus fields.
    pub fn send_response(&mut self, conn: &mut Connection, stream: StreamId, status: u16, headers: &[HeaderField], end_stream: bool) -> Result<(), SendError> {
        let mut all = Vec::with_capacity(headers.len() + 1);
        all.push(HeaderField::new(&b":status"[..], status.to_string().into_bytes()));
        all.extend_from_slice(headers);
        self.send_headers(conn, stream, &all, end_stream)
    }

    fn write_header_section(&mut self, conn: &mut Connection, stream: StreamId, headers: &[HeaderField]) -> Result<(), SendError> {
        self.scratch.clear();
        self.enc_scratch.clear();
        self.encoder.encode_fields(stream.0, headers, &mut self.scratch, &mut self.enc_scratch);
        let frame = Frame::Headers(&self.scratch);
        let len = frame.encoded_len();
        if (conn.writable(stream) as usize) < len {
            return Err(SendError::WouldBlock);
        }
        let mut buf = vec![0u8; len];
        let mut w = Writer::new(&mut buf);
        if frame.encode(&mut w).is_err() {
            return Err(SendError::WouldBlock);
        }
        if !self.enc_scratch.is_empty() {
            if let Some(enc) = self.encoder_out {
                let _ = conn.write(enc, &self.enc_scratch);
            }
        }
        match conn.write(stream, &buf) {
            Ok(n) if n == len => Ok(()),
            Ok(_) | Err(_) => Err(SendError::StreamClosed),
        }
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
            let hl = w.len();
            conn.write(stream, &hdr[..hl]).map_err(|_| SendError::StreamClosed)?;
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
        if let Some(st) = self.requests.get_mut(&stream) {
            st.local_fin = true;
            if st.finished_emitted {
                self.requests.remove(&stream);
            }
        }
        Ok(())
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

    /// Server: graceful shutdown (RFC 9114 §5.2). Requests on streams below
    /// the returned ID are processed; later ones are refused.
    pub fn send_goaway(&mut self, conn: &mut Connection) -> Option<u64> {
        let id = match self.side {
            Side::Server => self.max_request_seen.map_or(0, |m| m + 4),
            Side::Client => 0,
        };
        let id = self.goaway_sent.map_or(id, |prev| prev.min(id));
        let control = self.control_out?;
        let mut buf = [0u8; 16];
        let mut w = Writer::new(&mut buf);
        Frame::Goaway(id).encode(&mut w).ok()?;
        let n = w.len();
        conn.write(control, &buf[..n]).ok()?;
        self.goaway_sent = Some(id);
        Some(id)
    }

    pub fn goaway_received(&self) -> Option<u64> {
        self.goaway_received
    }

    /// Requests still open in either direction.
    pub fn open_requests(&self) -> usize {
        self.requests.len()
    }

    // ----- extensions: Extended CONNECT, HTTP datagrams, capsules -----

    /// Whether the server sent SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 (RFC 9220
    /// §3); false until its SETTINGS arrive ([`H3Connection::peer_settings`]
    /// tells the two apart).
    pub fn peer_allows_extended_connect(&self) -> bool {
        self.peer_settings.as_ref().is_some_and(|s| s.enable_connect_protocol)
    }

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
        // content, RFC 9221 §4) fits, and that quic-core's own queueing rule
        // (content + 4 <= the peer's bound) accepts; a few steps at most.
        let mut content = frame_max.saturating_sub(2);
        while content > 0 && (datagram::frame_size(content as usize) as u64 > frame_max || content + 4 > peer_max) {
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

    fn on_datagrams(&mut self, conn: &mut Connection, now: Instant) -> Result<(), H3Error> {
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

    fn on_datagram(&mut self, conn: &Connection, now: Instant, d: Bytes) -> Result<(), H3Error> {
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

    fn deliver_datagram(&mut self, stream: StreamId, payload: Bytes, arrived: Instant) {
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

    pub fn qpack_encoder(&self) -> &Encoder {
        &self.encoder
    }
}

#[derive(Debug, Clone, Copy)]
enum ControlFrame {
    Settings(Settings),
    Goaway(u64),
    MaxPushId(u64),
    CancelPush(u64),
}

/// QPACK errors map onto H3 codes: encoder/decoder stream errors and most
/// decompression failures are connection errors (RFC 9204 §6); an oversized
/// section is a stream error.
fn qpack_error(e: QpackError) -> H3Error {
    let scope = if e.is_connection_error() { crate::error::ErrorScope::Connection } else { crate::error::ErrorScope::Stream };
    H3Error::new(H3ErrorCode(e.code()), scope, e.reason)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn settings(h3_datagram: bool) -> Settings {
        Settings { qpack_max_table_capacity: 0, max_field_section_size: None, qpack_blocked_streams: 0, enable_connect_protocol: true, h3_datagram }
    }

    /// RFC 9297 §2.1.1: H3_DATAGRAM = 1 without the QUIC
    /// max_datagram_frame_size transport parameter is H3_SETTINGS_ERROR.
    #[test]
    fn h3_datagram_needs_the_transport_parameter() {
        for side in [Side::Client, Side::Server] {
            let mut h = H3Connection::new(side, H3Config { enable_datagrams: true, ..H3Config::default() });
            let e = h.on_control_frame(ControlFrame::Settings(settings(true)), Some(false)).unwrap_err();
            assert_eq!(e.code, H3ErrorCode::H3_SETTINGS_ERROR);
            assert!(e.is_connection_error());
            assert!(h.peer_settings().is_none());

            // With the parameter, or when the setting is 0, all is well.
            let mut h = H3Connection::new(side, H3Config::default());
            h.on_control_frame(ControlFrame::Settings(settings(true)), Some(true)).unwrap();
            assert!(h.peer_settings().unwrap().h3_datagram);
            assert!(h.peer_allows_extended_connect());
            let mut h = H3Connection::new(side, H3Config::default());
            h.on_control_frame(ControlFrame::Settings(settings(false)), Some(false)).unwrap();
            assert!(!h.peer_settings().unwrap().h3_datagram);
        }
    }
}
