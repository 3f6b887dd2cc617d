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
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use quic_core::codec::Writer;
use quic_core::connection::{Connection, Event as QuicEvent, Side, StreamEvent};
use quic_core::stream::{Dir, StreamId};
use quic_core::transport_params::Role;

use crate::capsule::CapsuleDecoder;
use crate::error::{H3Error, H3ErrorCode};
use crate::frame::{Frame, FrameDecoder, FrameLimits, StreamKind};
use crate::message::{ContentLengthTracker, Field, MethodClass};
use crate::priority::Priority;
use crate::qpack::{Decoder, DecoderConfig, Encoder, EncoderConfig, HeaderField, QpackError};
use crate::settings::Settings;
use crate::stream_type::{PeerUniStreams, StreamHeaderReader};

mod control;
mod datagrams;
mod request;

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
    /// A server's responses whose fields total at most this many bytes
    /// are encoded without the dynamic table, so that the client need not
    /// acknowledge them ([`crate::qpack::EncoderConfig::static_only_max`]).
    /// Requests always may use it: their acknowledgments travel with the
    /// response. 0: every section may use the table.
    pub qpack_response_static_max: u64,
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
            qpack_response_static_max: 256,
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
    /// Client: the request's method, for the response's framing rules.
    method: MethodClass,
    local_fin: bool,
    /// Server: HTTP datagrams that arrived before the request's header
    /// section was decoded, delivered right after its `Headers` event.
    held_datagrams: VecDeque<Bytes>,
    /// Server: a priority to hand to QUIC's scheduler (RFC 9218), set when
    /// the header section arrives.
    apply_priority: Option<Priority>,
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
            method: MethodClass::Other,
            local_fin: false,
            held_datagrams: VecDeque::new(),
            apply_priority: None,
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
    /// Boxed: a request's state is taken out of the map and put back
    /// around every read, and is removed when it ends; moving a pointer
    /// instead of the 232-byte state was 3 % of a server's CPU in the
    /// load command's request phase (perf).
    requests: FastHashMap<StreamId, Box<RequestStream>>,
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
    /// Server: PRIORITY_UPDATE values (RFC 9218 §7) for request streams
    /// whose header section has not arrived yet; they take precedence over
    /// its `priority` field. Bounded by [`MAX_EARLY_PRIORITIES`].
    early_priorities: FastHashMap<StreamId, Priority>,
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

/// PRIORITY_UPDATEs kept for request streams not open yet (RFC 9218 §7.1
/// lets a server bound them; beyond this the update is ignored).
const MAX_EARLY_PRIORITIES: usize = 64;

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
            keep_last_static_section: side == Side::Client,
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
            scratch: Vec::new(),
            enc_scratch: Vec::new(),
            early_datagrams: VecDeque::new(),
            dgram_out: BytesMut::new(),
            datagrams_dropped: 0,
            capsule_readers: FastHashMap::default(),
            early_priorities: FastHashMap::default(),
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
            self.requests.insert(id, Box::new(RequestStream::new(self.limits)));
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

    /// Server: graceful shutdown (RFC 9114 §5.2). Requests on streams below
    /// the returned ID are processed; later ones are refused.
    /// Client: asks the server to send `stream`'s response with priority
    /// `p` from now on (a PRIORITY_UPDATE frame on our control stream, RFC
    /// 9218 §7). `false` when there is no control stream yet or it has no
    /// room (the update is not sent).
    pub fn send_priority_update(&mut self, conn: &mut Connection, stream: StreamId, p: Priority) -> bool {
        let Some(control) = self.control_out.filter(|_| self.side == Side::Client) else { return false };
        let value = p.to_field_value();
        let frame = Frame::PriorityUpdate { element: stream.0, value: value.as_bytes() };
        let mut buf = vec![0u8; frame.encoded_len()];
        if frame.encode(&mut Writer::new(&mut buf)).is_err() {
            return false;
        }
        // All or nothing: a partial frame would corrupt the control stream.
        if conn.writable(control) < buf.len() as u64 {
            return false;
        }
        conn.write(control, &buf).is_ok_and(|w| w == buf.len())
    }

    /// Server: sends `stream`'s response with priority `p` from now on,
    /// whatever the request asked (RFC 9218 §8: the server decides).
    pub fn set_priority(&mut self, conn: &mut Connection, stream: StreamId, p: Priority) {
        if self.side == Side::Server {
            conn.set_priority(stream, p.quic_priority(stream));
        }
    }

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
