//! HTTP/3 frames (RFC 9114 §7): an incremental decoder for frames arriving
//! on a stream in arbitrary chunks, and encoders into a caller's buffer.
//!
//! Every frame is `Type (i), Length (i), Payload` (§7.1). A QUIC stream
//! delivers bytes in pieces that need not line up with frames, so
//! [`FrameDecoder`] keeps just enough state to resume anywhere:
//!
//! - DATA payloads are never buffered: the decoder reports the frame header
//!   ([`FrameEvent::DataHeader`]) and then hands out pieces of the caller's
//!   input as they arrive ([`FrameEvent::DataChunk`]).
//! - HEADERS and PUSH_PROMISE payloads (QPACK field sections) are delivered
//!   whole. They are borrowed from the input when a chunk holds the whole
//!   payload, and otherwise collected in a buffer bounded by
//!   [`FrameLimits::max_field_section_size`].
//! - Control frames (SETTINGS, GOAWAY, CANCEL_PUSH, MAX_PUSH_ID) are decoded
//!   whole, their size bounded by [`FrameLimits::max_control_frame_size`].
//! - Reserved and unknown frame types are reported once
//!   ([`FrameEvent::Unknown`]) and their payload is skipped without buffering
//!   (§9: "Implementations MUST ignore unknown or unsupported values").
//!
//! The decoder also enforces which frames each stream may carry (the table of
//! §7.2 and §6.2.1), since it is the first to learn a frame's type.

use quic_core::codec::{Reader, Writer};
use quic_core::error::BufferTooShort;
use quic_core::varint::{self, VarInt};

use crate::error::{self, H3Error};
use crate::settings::Settings;

/// An HTTP/3 frame type (RFC 9114 §7.2, §11.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FrameType(pub u64);

impl FrameType {
    pub const DATA: Self = Self(0x00);
    pub const HEADERS: Self = Self(0x01);
    pub const CANCEL_PUSH: Self = Self(0x03);
    pub const SETTINGS: Self = Self(0x04);
    pub const PUSH_PROMISE: Self = Self(0x05);
    pub const GOAWAY: Self = Self(0x07);
    pub const MAX_PUSH_ID: Self = Self(0x0d);
    /// RFC 9218 §7.1: PRIORITY_UPDATE for a request stream.
    pub const PRIORITY_UPDATE_REQUEST: Self = Self(0xf0700);
    /// RFC 9218 §7.1: PRIORITY_UPDATE for a push stream.
    pub const PRIORITY_UPDATE_PUSH: Self = Self(0xf0701);

    /// RFC 9114 §7.2.8: types `0x1f * N + 0x21` are reserved to exercise the
    /// rule that unknown types are ignored.
    pub const fn is_reserved(self) -> bool {
        error::is_grease(self.0)
    }

    /// RFC 9114 §7.2.8, §11.2.1: types used by HTTP/2 without an HTTP/3
    /// counterpart (PRIORITY 0x2, PING 0x6, WINDOW_UPDATE 0x8, CONTINUATION
    /// 0x9). Receiving one is a connection error of type H3_FRAME_UNEXPECTED.
    pub const fn is_http2_reserved(self) -> bool {
        matches!(self.0, 0x02 | 0x06 | 0x08 | 0x09)
    }

    /// Whether RFC 9114 defines this type.
    pub const fn is_known(self) -> bool {
        matches!(self.0, 0x00 | 0x01 | 0x03 | 0x04 | 0x05 | 0x07 | 0x0d)
    }

    /// A reserved type chosen by `seed` (see [`error::grease`]).
    pub const fn grease(seed: u64) -> Self {
        Self(error::grease(seed))
    }

    pub fn name(self) -> &'static str {
        match self.0 {
            0x00 => "DATA",
            0x01 => "HEADERS",
            0x03 => "CANCEL_PUSH",
            0x04 => "SETTINGS",
            0x05 => "PUSH_PROMISE",
            0x07 => "GOAWAY",
            0x0d => "MAX_PUSH_ID",
            0x02 | 0x06 | 0x08 | 0x09 => "HTTP2_RESERVED",
            v if error::is_grease(v) => "RESERVED",
            _ => "UNKNOWN",
        }
    }
}

/// The kind of stream frames are read from; it decides which frame types
/// are allowed (RFC 9114 §7.2, table "HTTP/3 Frames and Stream Type
/// Overview").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// A control stream (unidirectional, type 0x00), after its stream type.
    Control,
    /// A request stream (client-initiated bidirectional).
    Request,
    /// A push stream (unidirectional, type 0x01), after its push ID.
    Push,
}

/// Largest field section (encoded HEADERS / PUSH_PROMISE payload) the
/// decoder buffers by default.
pub const DEFAULT_MAX_FIELD_SECTION_SIZE: usize = 64 * 1024;
/// Largest SETTINGS payload the decoder buffers by default. A SETTINGS frame
/// of a few dozen settings is a few hundred bytes; 16 KiB leaves room for
/// extensions and grease while bounding memory per control stream.
pub const DEFAULT_MAX_CONTROL_FRAME_SIZE: usize = 16 * 1024;

/// Bounds on what the decoder buffers. DATA and unknown frames are never
/// buffered and have no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameLimits {
    /// Largest encoded HEADERS payload accepted (a PUSH_PROMISE may add its
    /// push ID, up to 8 bytes). This bounds the QPACK-encoded bytes; the QPACK
    /// decoder separately checks the decoded size against the
    /// SETTINGS_MAX_FIELD_SECTION_SIZE we announced (RFC 9114 §4.2.2).
    ///
    /// A larger frame is a *stream* error of type H3_MESSAGE_ERROR: RFC 9114
    /// §10.5.1 says a peer that sends a field section over the limit risks
    /// "having the request or response being treated as malformed", and a
    /// malformed message is a stream error of type H3_MESSAGE_ERROR
    /// (§4.1.2). The error is raised as soon as the frame header is read,
    /// before any of the payload is buffered; the connection survives. A
    /// server may prefer to answer 431 first (§4.2.2), which the caller can
    /// do on seeing this error.
    pub max_field_section_size: usize,
    /// Largest SETTINGS payload accepted. A larger one is a connection error
    /// of type H3_EXCESSIVE_LOAD (RFC 9114 §10.5: a peer that makes us commit
    /// unbounded memory to undefined settings is generating excessive load).
    /// GOAWAY, CANCEL_PUSH and MAX_PUSH_ID hold exactly one varint, so a
    /// length above 8 (or 0) is H3_FRAME_ERROR regardless of this limit.
    pub max_control_frame_size: usize,
}

impl Default for FrameLimits {
    fn default() -> Self {
        Self { max_field_section_size: DEFAULT_MAX_FIELD_SECTION_SIZE, max_control_frame_size: DEFAULT_MAX_CONTROL_FRAME_SIZE }
    }
}

/// The longest varint encoding (RFC 9000 §16).
const MAX_VARINT_LEN: usize = 8;

/// What the decoder found. Payload slices borrow from the input chunk, or
/// from the decoder's buffer when a field section spanned chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameEvent<'a> {
    /// A DATA frame starts; `len` payload bytes follow as
    /// [`DataChunk`](Self::DataChunk)s (none when `len` is 0).
    DataHeader { len: u64 },
    /// The next piece of the current DATA payload, in order. Pieces of one
    /// frame add up to its `len`.
    DataChunk(&'a [u8]),
    /// A complete HEADERS frame: the QPACK-encoded field section.
    Headers(&'a [u8]),
    /// A complete PUSH_PROMISE frame (RFC 9114 §7.2.5).
    PushPromise { push_id: u64, field_section: &'a [u8] },
    /// A SETTINGS frame (RFC 9114 §7.2.4).
    Settings(Settings),
    /// CANCEL_PUSH with its push ID (RFC 9114 §7.2.3).
    CancelPush(u64),
    /// GOAWAY with its stream ID or push ID (RFC 9114 §7.2.6).
    Goaway(u64),
    /// MAX_PUSH_ID (RFC 9114 §7.2.7).
    MaxPushId(u64),
    /// PRIORITY_UPDATE (RFC 9218 §7.1): the prioritized element (a request
    /// stream ID, or a push ID when `push`) and its Priority Field Value.
    PriorityUpdate { push: bool, element: u64, value: &'a [u8] },
    /// A reserved or unknown frame type. Its payload of `len` bytes is
    /// skipped and not reported.
    Unknown { frame_type: u64, len: u64 },
}

/// An incremental reader of one varint that may arrive split across chunks.
/// Holds at most 8 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartialVarint {
    bytes: [u8; MAX_VARINT_LEN],
    have: u8,
}

/// Takes up to `n` bytes from the front of `input`.
fn take<'a>(input: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (head, tail) = input.split_at(n.min(input.len()));
    *input = tail;
    head
}

impl PartialVarint {
    pub const fn new() -> Self {
        Self { bytes: [0; MAX_VARINT_LEN], have: 0 }
    }

    /// Consumes bytes of the varint from the front of `input`. Returns the
    /// value once complete (and is then ready for the next varint), or `None`
    /// after consuming all of `input` without completing it.
    pub fn feed(&mut self, input: &mut &[u8]) -> Option<u64> {
        if self.have == 0 {
            // Fast path: the whole varint is in this chunk.
            if let Some((v, n)) = varint::decode(input) {
                take(input, n);
                return Some(v);
            }
        }
        let first = match self.have {
            0 => *input.first()?,
            _ => self.bytes[0],
        };
        let need = varint::len_from_first_byte(first);
        let have = usize::from(self.have);
        let piece = take(input, need.saturating_sub(have));
        let dst = self.bytes.get_mut(have..have + piece.len())?;
        dst.copy_from_slice(piece);
        let have = have + piece.len();
        // `have` is at most 8, `need` at most 8.
        self.have = have as u8;
        if have < need {
            return None;
        }
        self.have = 0;
        varint::decode(self.bytes.get(..need)?).map(|(v, _)| v)
    }

    /// Whether no bytes of an unfinished varint are held.
    pub const fn is_empty(&self) -> bool {
        self.have == 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the frame type.
    Type,
    /// Reading the frame length.
    Length { frame_type: u64 },
    /// Inside a DATA payload.
    Data { remaining: u64 },
    /// Inside the payload of an unknown frame, discarding it.
    Skip { remaining: u64 },
    /// Collecting a payload of `len` bytes to decode whole.
    Buffer { frame_type: u64, len: usize },
    /// An error was reported; the stream (or connection) is done.
    Failed(H3Error),
}

/// A decoded whole-frame payload, described without borrowing it so that the
/// decoder can change state before handing out the borrowed event.
#[derive(Debug, Clone, Copy)]
enum Parsed {
    Headers,
    PushPromise { push_id: u64, offset: usize },
    Settings(Settings),
    CancelPush(u64),
    Goaway(u64),
    MaxPushId(u64),
    PriorityUpdate { push: bool, element: u64, offset: usize },
}

impl Parsed {
    fn into_event(self, payload: &[u8]) -> FrameEvent<'_> {
        match self {
            Parsed::Headers => FrameEvent::Headers(payload),
            Parsed::PushPromise { push_id, offset } => FrameEvent::PushPromise { push_id, field_section: payload.get(offset..).unwrap_or_default() },
            Parsed::Settings(s) => FrameEvent::Settings(s),
            Parsed::CancelPush(id) => FrameEvent::CancelPush(id),
            Parsed::Goaway(id) => FrameEvent::Goaway(id),
            Parsed::MaxPushId(id) => FrameEvent::MaxPushId(id),
            Parsed::PriorityUpdate { push, element, offset } => FrameEvent::PriorityUpdate { push, element, value: payload.get(offset..).unwrap_or_default() },
        }
    }
}

/// RFC 9114 §7.1: a payload that is exactly one varint (GOAWAY, CANCEL_PUSH,
/// MAX_PUSH_ID). Trailing bytes or a cut varint are H3_FRAME_ERROR.
fn single_varint(payload: &[u8], reason: &'static str) -> Result<u64, H3Error> {
    let mut r = Reader::new(payload);
    let v = r.varint().map_err(|_| H3Error::frame_error(reason))?;
    if !r.is_empty() {
        return Err(H3Error::frame_error(reason));
    }
    Ok(v)
}

/// Decodes a whole payload of a frame the decoder buffers.
fn parse_payload(frame_type: u64, payload: &[u8]) -> Result<Parsed, H3Error> {
    match FrameType(frame_type) {
        FrameType::HEADERS => Ok(Parsed::Headers),
        FrameType::PUSH_PROMISE => {
            let mut r = Reader::new(payload);
            let push_id = r.varint().map_err(|_| H3Error::frame_error("PUSH_PROMISE ends inside its push ID"))?;
            Ok(Parsed::PushPromise { push_id, offset: r.position() })
        }
        FrameType::SETTINGS => Settings::decode(payload).map(Parsed::Settings),
        FrameType::CANCEL_PUSH => single_varint(payload, "CANCEL_PUSH is not exactly one push ID").map(Parsed::CancelPush),
        FrameType::GOAWAY => single_varint(payload, "GOAWAY is not exactly one ID").map(Parsed::Goaway),
        FrameType::MAX_PUSH_ID => single_varint(payload, "MAX_PUSH_ID is not exactly one push ID").map(Parsed::MaxPushId),
        FrameType::PRIORITY_UPDATE_REQUEST | FrameType::PRIORITY_UPDATE_PUSH => {
            let mut r = Reader::new(payload);
            let element = r.varint().map_err(|_| H3Error::frame_error("PRIORITY_UPDATE ends inside its element ID"))?;
            Ok(Parsed::PriorityUpdate { push: frame_type == FrameType::PRIORITY_UPDATE_PUSH.0, element, offset: r.position() })
        }
        // Only the types above are ever put in the Buffer state.
        _ => Err(H3Error::connection(error::H3ErrorCode::H3_INTERNAL_ERROR, "frame type is not buffered")),
    }
}

/// What one step of the decoder produced, before borrowing the buffer.
enum Ready<'a> {
    /// All input consumed, nothing to report.
    Pending,
    /// An event that borrows only the input.
    Event(FrameEvent<'a>),
    /// A whole payload sits in the decoder's buffer.
    Buffered(Parsed),
}

/// Decodes the frames of one stream from chunks of its bytes.
///
/// ```
/// # use h3_core::frame::{FrameDecoder, FrameEvent, FrameLimits, StreamKind};
/// let mut dec = FrameDecoder::new(StreamKind::Request, FrameLimits::default());
/// let mut body = Vec::new();
/// for chunk in [&[0x00, 0x03, b'a'][..], &[b'b', b'c']] {
///     let mut input = chunk;
///     while let Some(event) = dec.decode(&mut input).unwrap() {
///         if let FrameEvent::DataChunk(piece) = event {
///             body.extend_from_slice(piece);
///         }
///     }
/// }
/// assert_eq!(body, b"abc");
/// dec.finish().unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    kind: StreamKind,
    limits: FrameLimits,
    state: State,
    varint: PartialVarint,
    /// Payload bytes of a field section or control frame that spans chunks;
    /// never longer than the limit for its frame type.
    buf: Vec<u8>,
    /// Control streams: whether the first frame (which must be SETTINGS) has
    /// been seen.
    settings_seen: bool,
}

impl FrameDecoder {
    pub fn new(kind: StreamKind, limits: FrameLimits) -> Self {
        Self { kind, limits, state: State::Type, varint: PartialVarint::new(), buf: Vec::new(), settings_seen: false }
    }

    pub fn kind(&self) -> StreamKind {
        self.kind
    }

    pub fn limits(&self) -> FrameLimits {
        self.limits
    }

    /// Whether the decoder sits between frames (no partial frame held).
    pub fn is_at_frame_boundary(&self) -> bool {
        self.state == State::Type && self.varint.is_empty()
    }

    /// The error already reported, if any.
    pub fn error(&self) -> Option<H3Error> {
        match self.state {
            State::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// Consumes bytes from the front of `input` until one event is complete.
    ///
    /// Returns `Ok(None)` exactly when all of `input` has been consumed
    /// without completing an event; call again with the next chunk. After
    /// `Ok(Some(_))` part of `input` may remain: call again with it. Each
    /// error is reported once its cause is seen and then on every later call.
    ///
    /// The returned event may borrow from `input` or from the decoder, so it
    /// must be dropped before the next call.
    pub fn decode<'s, 'a: 's>(&'s mut self, input: &mut &'a [u8]) -> Result<Option<FrameEvent<'s>>, H3Error> {
        match self.advance(input) {
            Ok(Ready::Pending) => Ok(None),
            Ok(Ready::Event(ev)) => Ok(Some(ev)),
            Ok(Ready::Buffered(parsed)) => Ok(Some(parsed.into_event(&self.buf))),
            Err(e) => {
                self.state = State::Failed(e);
                Err(e)
            }
        }
    }

    /// To call when the peer ends the stream cleanly (FIN).
    ///
    /// RFC 9114 §7.1: a stream that ends inside a frame is a connection error
    /// of type H3_FRAME_ERROR. RFC 9114 §6.2.1: a control stream must never
    /// end; its closure is H3_CLOSED_CRITICAL_STREAM.
    pub fn finish(&self) -> Result<(), H3Error> {
        if let State::Failed(e) = self.state {
            return Err(e);
        }
        if self.kind == StreamKind::Control {
            return Err(H3Error::closed_critical_stream("control stream closed"));
        }
        if !self.is_at_frame_boundary() {
            return Err(H3Error::frame_error("stream ended inside a frame"));
        }
        Ok(())
    }

    fn advance<'a>(&mut self, input: &mut &'a [u8]) -> Result<Ready<'a>, H3Error> {
        loop {
            match self.state {
                State::Failed(e) => return Err(e),
                State::Type => {
                    let Some(frame_type) = self.varint.feed(input) else {
                        return Ok(Ready::Pending);
                    };
                    self.check_type(FrameType(frame_type))?;
                    self.state = State::Length { frame_type };
                }
                State::Length { frame_type } => {
                    let Some(len) = self.varint.feed(input) else {
                        return Ok(Ready::Pending);
                    };
                    if let Some(ev) = self.start_payload(FrameType(frame_type), len)? {
                        return Ok(Ready::Event(ev));
                    }
                }
                State::Data { remaining } => {
                    if input.is_empty() {
                        return Ok(Ready::Pending);
                    }
                    let piece = take(input, usize::try_from(remaining).unwrap_or(usize::MAX));
                    let remaining = remaining - piece.len() as u64;
                    self.state = match remaining {
                        0 => State::Type,
                        _ => State::Data { remaining },
                    };
                    return Ok(Ready::Event(FrameEvent::DataChunk(piece)));
                }
                State::Skip { remaining } => {
                    if input.is_empty() {
                        return Ok(Ready::Pending);
                    }
                    let piece = take(input, usize::try_from(remaining).unwrap_or(usize::MAX));
                    let remaining = remaining - piece.len() as u64;
                    self.state = match remaining {
                        0 => State::Type,
                        _ => State::Skip { remaining },
                    };
                }
                State::Buffer { frame_type, len } => {
                    if self.buf.is_empty() && input.len() >= len {
                        // Zero-copy: the whole payload is in this chunk.
                        let payload = take(input, len);
                        self.state = State::Type;
                        let parsed = parse_payload(frame_type, payload)?;
                        return Ok(Ready::Event(parsed.into_event(payload)));
                    }
                    if input.is_empty() {
                        return Ok(Ready::Pending);
                    }
                    let piece = take(input, len - self.buf.len());
                    if self.buf.is_empty() {
                        self.buf.reserve_exact(len);
                    }
                    self.buf.extend_from_slice(piece);
                    if self.buf.len() == len {
                        self.state = State::Type;
                        return parse_payload(frame_type, &self.buf).map(Ready::Buffered);
                    }
                }
            }
        }
    }

    /// Checks a frame type against the stream it arrived on, as soon as the
    /// type is known.
    fn check_type(&mut self, t: FrameType) -> Result<(), H3Error> {
        if t.is_http2_reserved() {
            // RFC 9114 §7.2.8.
            return Err(H3Error::frame_unexpected("HTTP/2 frame type"));
        }
        match self.kind {
            StreamKind::Control => {
                if !self.settings_seen {
                    // RFC 9114 §6.2.1: SETTINGS must be the first frame; §9:
                    // an unknown type does not satisfy this either.
                    if t != FrameType::SETTINGS {
                        return Err(H3Error::missing_settings("first frame on control stream is not SETTINGS"));
                    }
                    self.settings_seen = true;
                    return Ok(());
                }
                match t {
                    // RFC 9114 §7.2.4: a second SETTINGS frame.
                    FrameType::SETTINGS => Err(H3Error::frame_unexpected("second SETTINGS on control stream")),
                    // RFC 9114 §7.2.1, §7.2.2, §7.2.5.
                    FrameType::DATA | FrameType::HEADERS | FrameType::PUSH_PROMISE => Err(H3Error::frame_unexpected("message frame on control stream")),
                    _ => Ok(()),
                }
            }
            StreamKind::Request | StreamKind::Push => match t {
                // RFC 9114 §7.2.3, §7.2.4, §7.2.6, §7.2.7, RFC 9218 §7.1:
                // control stream only.
                FrameType::CANCEL_PUSH
                | FrameType::SETTINGS
                | FrameType::GOAWAY
                | FrameType::MAX_PUSH_ID
                | FrameType::PRIORITY_UPDATE_REQUEST
                | FrameType::PRIORITY_UPDATE_PUSH => Err(H3Error::frame_unexpected("control frame on request or push stream")),
                // RFC 9114 §4.1: PUSH_PROMISE is not permitted on push streams.
                FrameType::PUSH_PROMISE if self.kind == StreamKind::Push => Err(H3Error::frame_unexpected("PUSH_PROMISE on push stream")),
                _ => Ok(()),
            },
        }
    }

    /// Acts on a complete frame header: reports DATA and unknown frames at
    /// once, or sets up buffering of a payload after checking its length.
    fn start_payload(&mut self, t: FrameType, len: u64) -> Result<Option<FrameEvent<'static>>, H3Error> {
        let field_limit = self.limits.max_field_section_size as u64;
        let buffered_limit = match t {
            FrameType::DATA => {
                self.state = match len {
                    0 => State::Type,
                    _ => State::Data { remaining: len },
                };
                return Ok(Some(FrameEvent::DataHeader { len }));
            }
            FrameType::HEADERS => {
                if len > field_limit {
                    return Err(H3Error::message_error("HEADERS exceeds the field section limit"));
                }
                len
            }
            FrameType::PUSH_PROMISE => {
                if len == 0 {
                    return Err(H3Error::frame_error("PUSH_PROMISE without a push ID"));
                }
                if len > field_limit.saturating_add(MAX_VARINT_LEN as u64) {
                    return Err(H3Error::message_error("PUSH_PROMISE exceeds the field section limit"));
                }
                len
            }
            FrameType::SETTINGS => {
                if len > self.limits.max_control_frame_size as u64 {
                    return Err(H3Error::excessive_load("SETTINGS frame too large"));
                }
                len
            }
            FrameType::PRIORITY_UPDATE_REQUEST | FrameType::PRIORITY_UPDATE_PUSH => {
                if len == 0 {
                    return Err(H3Error::frame_error("PRIORITY_UPDATE without an element ID"));
                }
                if len > self.limits.max_control_frame_size as u64 {
                    return Err(H3Error::excessive_load("PRIORITY_UPDATE frame too large"));
                }
                len
            }
            FrameType::CANCEL_PUSH | FrameType::GOAWAY | FrameType::MAX_PUSH_ID => {
                // RFC 9114 §7.1: the payload is exactly one varint, 1 to 8
                // bytes; anything else cannot match its fields.
                if len == 0 || len > MAX_VARINT_LEN as u64 {
                    return Err(H3Error::frame_error("frame length does not fit one varint"));
                }
                len
            }
            _ => {
                // Reserved and unknown types (§7.2.8, §9): skip the payload.
                self.state = match len {
                    0 => State::Type,
                    _ => State::Skip { remaining: len },
                };
                return Ok(Some(FrameEvent::Unknown { frame_type: t.0, len }));
            }
        };
        // Every buffered length was checked against a limit that is a usize.
        let len = usize::try_from(buffered_limit).map_err(|_| H3Error::excessive_load("frame too large"))?;
        self.buf.clear();
        self.state = State::Buffer { frame_type: t.0, len };
        Ok(None)
    }
}

/// Bytes the header of a frame with this type and payload length takes.
pub const fn frame_header_len(frame_type: u64, len: u64) -> usize {
    varint::size(frame_type) + varint::size(len)
}

/// Writes a frame header: type and payload length (RFC 9114 §7.1). Used alone
/// to send a DATA frame whose payload the caller writes separately. Values of
/// 2^62 or more, like a short buffer, fail with [`BufferTooShort`] and leave
/// `w` untouched.
pub fn encode_frame_header(frame_type: u64, len: u64, w: &mut Writer<'_>) -> Result<(), BufferTooShort> {
    if !fits(frame_type) || !fits(len) || frame_header_len(frame_type, len) > w.remaining() {
        return Err(BufferTooShort);
    }
    w.varint(frame_type)?;
    w.varint(len)
}

fn fits(v: u64) -> bool {
    v <= VarInt::MAX.into_inner()
}

/// A whole frame to encode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    Data(&'a [u8]),
    /// A QPACK-encoded field section.
    Headers(&'a [u8]),
    CancelPush(u64),
    Settings(Settings),
    PushPromise {
        push_id: u64,
        field_section: &'a [u8],
    },
    Goaway(u64),
    MaxPushId(u64),
    /// PRIORITY_UPDATE for a request stream (RFC 9218 §7.1): the stream ID
    /// and a Priority Field Value.
    PriorityUpdate {
        element: u64,
        value: &'a [u8],
    },
    /// Any other type with an opaque payload, e.g. a reserved type from
    /// [`FrameType::grease`] for padding (RFC 9114 §7.2.8). The caller
    /// chooses a type with no other meaning here.
    Extension {
        frame_type: u64,
        payload: &'a [u8],
    },
}

impl Frame<'_> {
    pub fn frame_type(&self) -> FrameType {
        match self {
            Frame::Data(_) => FrameType::DATA,
            Frame::Headers(_) => FrameType::HEADERS,
            Frame::CancelPush(_) => FrameType::CANCEL_PUSH,
            Frame::Settings(_) => FrameType::SETTINGS,
            Frame::PushPromise { .. } => FrameType::PUSH_PROMISE,
            Frame::Goaway(_) => FrameType::GOAWAY,
            Frame::MaxPushId(_) => FrameType::MAX_PUSH_ID,
            Frame::PriorityUpdate { .. } => FrameType::PRIORITY_UPDATE_REQUEST,
            Frame::Extension { frame_type, .. } => FrameType(*frame_type),
        }
    }

    /// Bytes of the payload.
    pub fn payload_len(&self) -> usize {
        match self {
            Frame::Data(p) | Frame::Headers(p) | Frame::Extension { payload: p, .. } => p.len(),
            Frame::CancelPush(id) | Frame::Goaway(id) | Frame::MaxPushId(id) => varint::size(*id),
            Frame::Settings(s) => s.payload_len(),
            Frame::PushPromise { push_id, field_section } => varint::size(*push_id) + field_section.len(),
            Frame::PriorityUpdate { element, value } => varint::size(*element) + value.len(),
        }
    }

    /// Bytes of the whole frame.
    pub fn encoded_len(&self) -> usize {
        let len = self.payload_len();
        frame_header_len(self.frame_type().0, len as u64) + len
    }

    /// Writes the whole frame. IDs and types of 2^62 or more, like a short
    /// buffer, fail with [`BufferTooShort`] and leave `w` untouched.
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferTooShort> {
        if let Frame::Settings(s) = self {
            return s.encode(w);
        }
        let ints_fit = match self {
            Frame::CancelPush(id) | Frame::Goaway(id) | Frame::MaxPushId(id) => fits(*id),
            Frame::PushPromise { push_id, .. } => fits(*push_id),
            Frame::PriorityUpdate { element, .. } => fits(*element),
            Frame::Extension { frame_type, .. } => fits(*frame_type),
            _ => true,
        };
        if !ints_fit || self.encoded_len() > w.remaining() {
            return Err(BufferTooShort);
        }
        encode_frame_header(self.frame_type().0, self.payload_len() as u64, w)?;
        match self {
            Frame::Data(p) | Frame::Headers(p) | Frame::Extension { payload: p, .. } => w.put(p),
            Frame::CancelPush(id) | Frame::Goaway(id) | Frame::MaxPushId(id) => w.varint(*id),
            Frame::PushPromise { push_id, field_section } => {
                w.varint(*push_id)?;
                w.put(field_section)
            }
            Frame::PriorityUpdate { element, value } => {
                w.varint(*element)?;
                w.put(value)
            }
            Frame::Settings(s) => s.encode_payload(w),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::error::H3ErrorCode;

    /// An owned copy of an event, to collect events across calls.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Ev {
        DataHeader(u64),
        Data(Vec<u8>),
        Headers(Vec<u8>),
        PushPromise(u64, Vec<u8>),
        Settings(Settings),
        CancelPush(u64),
        Goaway(u64),
        MaxPushId(u64),
        PriorityUpdate(bool, u64, Vec<u8>),
        Unknown(u64, u64),
    }

    impl From<FrameEvent<'_>> for Ev {
        fn from(e: FrameEvent<'_>) -> Self {
            match e {
                FrameEvent::DataHeader { len } => Ev::DataHeader(len),
                FrameEvent::DataChunk(d) => Ev::Data(d.to_vec()),
                FrameEvent::Headers(h) => Ev::Headers(h.to_vec()),
                FrameEvent::PushPromise { push_id, field_section } => Ev::PushPromise(push_id, field_section.to_vec()),
                FrameEvent::Settings(s) => Ev::Settings(s),
                FrameEvent::CancelPush(id) => Ev::CancelPush(id),
                FrameEvent::Goaway(id) => Ev::Goaway(id),
                FrameEvent::MaxPushId(id) => Ev::MaxPushId(id),
                FrameEvent::PriorityUpdate { push, element, value } => Ev::PriorityUpdate(push, element, value.to_vec()),
                FrameEvent::Unknown { frame_type, len } => Ev::Unknown(frame_type, len),
            }
        }
    }

    fn encode_all(frames: &[Frame<'_>]) -> Vec<u8> {
        let total: usize = frames.iter().map(Frame::encoded_len).sum();
        let mut buf = vec![0u8; total];
        let mut w = Writer::new(&mut buf);
        for f in frames {
            let before = w.len();
            f.encode(&mut w).unwrap();
            assert_eq!(w.len() - before, f.encoded_len(), "{f:?}");
        }
        assert_eq!(w.len(), total);
        buf
    }

    /// Feeds `bytes` in chunks of `step`; merges adjacent DATA pieces so the
    /// result does not depend on chunking.
    fn decode_chunked(kind: StreamKind, limits: FrameLimits, bytes: &[u8], step: usize) -> Result<Vec<Ev>, H3Error> {
        let mut dec = FrameDecoder::new(kind, limits);
        let mut out: Vec<Ev> = Vec::new();
        for chunk in bytes.chunks(step.max(1)) {
            let mut input = chunk;
            while let Some(ev) = dec.decode(&mut input)? {
                let ev = Ev::from(ev);
                match (out.last_mut(), ev) {
                    (Some(Ev::Data(acc)), Ev::Data(more)) => acc.extend_from_slice(&more),
                    (_, ev) => out.push(ev),
                }
            }
            assert!(input.is_empty(), "None only once the input is used up");
        }
        if kind != StreamKind::Control {
            dec.finish()?;
        }
        Ok(out)
    }

    fn decode_err(kind: StreamKind, bytes: &[u8]) -> H3Error {
        let e = decode_chunked(kind, FrameLimits::default(), bytes, 1).unwrap_err();
        for step in [2, 3, bytes.len()] {
            let other = decode_chunked(kind, FrameLimits::default(), bytes, step).unwrap_err();
            assert_eq!(other, e, "same error for every chunking");
        }
        e
    }

    fn settings_frame() -> Vec<u8> {
        encode_all(&[Frame::Settings(Settings::default())])
    }

    #[test]
    fn frame_types() {
        assert_eq!(FrameType::DATA.0, 0x0);
        assert_eq!(FrameType::HEADERS.0, 0x1);
        assert_eq!(FrameType::CANCEL_PUSH.0, 0x3);
        assert_eq!(FrameType::SETTINGS.0, 0x4);
        assert_eq!(FrameType::PUSH_PROMISE.0, 0x5);
        assert_eq!(FrameType::GOAWAY.0, 0x7);
        assert_eq!(FrameType::MAX_PUSH_ID.0, 0xd);
        for t in [0x2, 0x6, 0x8, 0x9] {
            assert!(FrameType(t).is_http2_reserved());
            assert!(!FrameType(t).is_known());
            assert_eq!(FrameType(t).name(), "HTTP2_RESERVED");
        }
        assert!(FrameType(0x21).is_reserved());
        assert_eq!(FrameType(0x21).name(), "RESERVED");
        assert_eq!(FrameType(0x0a).name(), "UNKNOWN");
        assert_eq!(FrameType::MAX_PUSH_ID.name(), "MAX_PUSH_ID");
        assert!(FrameType::grease(12345).is_reserved());
    }

    #[test]
    fn partial_varint_across_chunks() {
        // RFC 9000 Appendix A.1: c2197c5eff14e88c = 151288809941952652.
        let bytes = [0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c, 0x25];
        for split in 0..8 {
            let mut p = PartialVarint::new();
            let mut a = &bytes[..split];
            assert_eq!(p.feed(&mut a), None);
            assert!(a.is_empty());
            assert_eq!(p.is_empty(), split == 0);
            let mut b = &bytes[split..];
            assert_eq!(p.feed(&mut b), Some(151_288_809_941_952_652));
            assert_eq!(b, &[0x25]);
            assert_eq!(p.feed(&mut b), Some(37));
            assert!(p.is_empty());
        }
        let mut p = PartialVarint::new();
        for (i, b) in [0x40u8, 0x25].iter().enumerate() {
            let one = [*b];
            let mut s = &one[..];
            let r = p.feed(&mut s);
            assert_eq!(r, (i == 1).then_some(37), "non-minimal 0x4025 is 37");
        }
    }

    #[test]
    fn every_frame_type_round_trips() {
        let settings = Settings {
            qpack_max_table_capacity: 4096,
            max_field_section_size: Some(1 << 16),
            qpack_blocked_streams: 16,
            enable_connect_protocol: true,
            h3_datagram: true,
        };
        let control = [
            Frame::Settings(settings),
            Frame::Extension { frame_type: 0x21, payload: b"pad" },
            Frame::CancelPush(7),
            Frame::Goaway(1 << 40),
            Frame::MaxPushId(63),
            Frame::MaxPushId(64),
            Frame::Extension { frame_type: 0x0a, payload: &[] },
            Frame::PriorityUpdate { element: 8, value: b"u=1, i" },
            Frame::Goaway(0),
        ];
        let expected = vec![
            Ev::Settings(settings),
            Ev::Unknown(0x21, 3),
            Ev::CancelPush(7),
            Ev::Goaway(1 << 40),
            Ev::MaxPushId(63),
            Ev::MaxPushId(64),
            Ev::Unknown(0x0a, 0),
            Ev::PriorityUpdate(false, 8, b"u=1, i".to_vec()),
            Ev::Goaway(0),
        ];
        let bytes = encode_all(&control);
        for step in [1, 2, 3, 7, bytes.len()] {
            let got = decode_chunked(StreamKind::Control, FrameLimits::default(), &bytes, step);
            assert_eq!(got.unwrap(), expected, "step {step}");
        }

        let body = vec![0xabu8; 3000];
        let request = [
            Frame::Headers(b"\x00\x00\xd1\xd7"),
            Frame::PushPromise { push_id: 3, field_section: b"\x00\x00\xd1" },
            Frame::Data(&body),
            Frame::Data(b""),
            Frame::Extension { frame_type: 0x3fff_ffff_ffff_fffe, payload: &[1, 2] },
            Frame::Data(b"xyz"),
            Frame::Headers(b"\x00\x00"),
        ];
        let expected = vec![
            Ev::Headers(b"\x00\x00\xd1\xd7".to_vec()),
            Ev::PushPromise(3, b"\x00\x00\xd1".to_vec()),
            Ev::DataHeader(3000),
            Ev::Data(body.clone()),
            Ev::DataHeader(0),
            Ev::Unknown(0x3fff_ffff_ffff_fffe, 2),
            Ev::DataHeader(3),
            Ev::Data(b"xyz".to_vec()),
            Ev::Headers(b"\x00\x00".to_vec()),
        ];
        let bytes = encode_all(&request);
        for step in [1, 2, 5, 1000, bytes.len()] {
            let got = decode_chunked(StreamKind::Request, FrameLimits::default(), &bytes, step);
            assert_eq!(got.unwrap(), expected, "step {step}");
        }
        // A push stream carries the same frames except PUSH_PROMISE.
        let push: Vec<Frame<'_>> = request.iter().filter(|f| !matches!(f, Frame::PushPromise { .. })).cloned().collect();
        let expected: Vec<Ev> = expected.into_iter().filter(|e| !matches!(e, Ev::PushPromise(..))).collect();
        let got = decode_chunked(StreamKind::Push, FrameLimits::default(), &encode_all(&push), 1);
        assert_eq!(got.unwrap(), expected);
    }

    #[test]
    fn wire_format() {
        assert_eq!(encode_all(&[Frame::Goaway(4)]), [0x07, 0x01, 0x04]);
        assert_eq!(encode_all(&[Frame::MaxPushId(100)]), [0x0d, 0x02, 0x40, 0x64]);
        assert_eq!(encode_all(&[Frame::CancelPush(0)]), [0x03, 0x01, 0x00]);
        assert_eq!(encode_all(&[Frame::Data(b"hi")]), [0x00, 0x02, b'h', b'i']);
        assert_eq!(encode_all(&[Frame::Headers(&[0, 0])]), [0x01, 0x02, 0, 0]);
        assert_eq!(encode_all(&[Frame::PushPromise { push_id: 1, field_section: &[0, 0] }]), [0x05, 0x03, 0x01, 0, 0]);
        assert_eq!(encode_all(&[Frame::Extension { frame_type: 0x21, payload: &[9] }]), [0x21, 0x01, 0x09]);
        let mut buf = [0u8; 16];
        let mut w = Writer::new(&mut buf);
        encode_frame_header(0x00, 1 << 20, &mut w).unwrap();
        assert_eq!(w.written(), [0x00, 0x80, 0x10, 0x00, 0x00]);
        assert_eq!(frame_header_len(0x00, 1 << 20), 5);
    }

    #[test]
    fn encode_failures_leave_writer_untouched() {
        let mut buf = [0u8; 4];
        let mut w = Writer::new(&mut buf);
        assert_eq!(Frame::Data(b"abc").encode(&mut w), Err(BufferTooShort));
        assert_eq!(Frame::Goaway(1 << 62).encode(&mut w), Err(BufferTooShort));
        assert_eq!(Frame::Extension { frame_type: u64::MAX, payload: &[] }.encode(&mut w), Err(BufferTooShort));
        assert_eq!(encode_frame_header(0, 1 << 62, &mut w), Err(BufferTooShort));
        assert_eq!(w.len(), 0);
        Frame::Data(b"ab").encode(&mut w).unwrap();
        assert_eq!(w.len(), 4);
    }

    #[test]
    fn data_streams_without_buffering() {
        let mut dec = FrameDecoder::new(StreamKind::Request, FrameLimits::default());
        let bytes = encode_all(&[Frame::Data(b"hello world")]);
        let (a, b) = bytes.split_at(5);
        let mut input = a;
        assert_eq!(dec.decode(&mut input).unwrap(), Some(FrameEvent::DataHeader { len: 11 }));
        // The piece is the caller's own bytes, not a copy.
        let ev = dec.decode(&mut input).unwrap();
        let Some(FrameEvent::DataChunk(piece)) = ev else { panic!("{ev:?}") };
        assert_eq!(piece, b"hel");
        assert!(core::ptr::eq(piece.as_ptr(), a[2..].as_ptr()));
        assert_eq!(dec.decode(&mut input).unwrap(), None);
        assert!(!dec.is_at_frame_boundary());
        let mut input = b;
        assert_eq!(dec.decode(&mut input).unwrap(), Some(FrameEvent::DataChunk(b"lo world")));
        assert!(dec.is_at_frame_boundary());
        assert_eq!(dec.decode(&mut input).unwrap(), None);
        assert!(dec.buf.capacity() == 0, "DATA never touches the buffer");
        dec.finish().unwrap();
    }

    #[test]
    fn headers_borrow_input_when_whole() {
        let bytes = encode_all(&[Frame::Headers(b"field section"), Frame::Goaway(1)]);
        let mut dec = FrameDecoder::new(StreamKind::Request, FrameLimits::default());
        let mut input = &bytes[..];
        let ev = dec.decode(&mut input).unwrap();
        let Some(FrameEvent::Headers(h)) = ev else { panic!("{ev:?}") };
        assert!(core::ptr::eq(h.as_ptr(), bytes[2..].as_ptr()));
        assert_eq!(dec.buf.capacity(), 0);
        // GOAWAY is not allowed on a request stream.
        assert_eq!(dec.decode(&mut input).unwrap_err().code, H3ErrorCode::H3_FRAME_UNEXPECTED);
    }

    #[test]
    fn unknown_frames_are_skipped_without_buffering() {
        let big = vec![7u8; 100_000];
        let bytes = encode_all(&[Frame::Extension { frame_type: 0x1234, payload: &big }, Frame::Data(b"x")]);
        let limits = FrameLimits { max_field_section_size: 10, max_control_frame_size: 10 };
        let mut dec = FrameDecoder::new(StreamKind::Request, limits);
        let mut events = Vec::new();
        for chunk in bytes.chunks(999) {
            let mut input = chunk;
            while let Some(ev) = dec.decode(&mut input).unwrap() {
                events.push(Ev::from(ev));
            }
        }
        assert_eq!(events, [Ev::Unknown(0x1234, 100_000), Ev::DataHeader(1), Ev::Data(b"x".to_vec())]);
        assert_eq!(dec.buf.capacity(), 0);
    }

    #[test]
    fn headers_split_across_chunks_are_buffered_within_limit() {
        let fs = vec![0x5au8; 100];
        let bytes = encode_all(&[Frame::Headers(&fs)]);
        let limits = FrameLimits { max_field_section_size: 100, max_control_frame_size: 16 };
        let got = decode_chunked(StreamKind::Request, limits, &bytes, 1).unwrap();
        assert_eq!(got, [Ev::Headers(fs.clone())]);
        // One byte over the limit: a stream error, before buffering anything.
        let limits = FrameLimits { max_field_section_size: 99, max_control_frame_size: 16 };
        let mut dec = FrameDecoder::new(StreamKind::Request, limits);
        let mut input = &bytes[..3];
        let e = dec.decode(&mut input).unwrap_err();
        assert_eq!(e.code, H3ErrorCode::H3_MESSAGE_ERROR);
        assert!(e.is_stream_error());
        assert_eq!(dec.buf.capacity(), 0);
        // The error sticks.
        assert_eq!(dec.decode(&mut &bytes[3..]).unwrap_err(), e);
        assert_eq!(dec.error(), Some(e));
        assert_eq!(dec.finish(), Err(e));

        // PUSH_PROMISE: the limit plus room for the push ID.
        let pp = encode_all(&[Frame::PushPromise { push_id: 1 << 40, field_section: &fs }]);
        let limits = FrameLimits { max_field_section_size: 100, max_control_frame_size: 16 };
        assert!(decode_chunked(StreamKind::Request, limits, &pp, 1).is_ok());
        let mut big = fs.clone();
        big.extend_from_slice(&[0; 9]);
        let pp = encode_all(&[Frame::PushPromise { push_id: 1, field_section: &big }]);
        let e = decode_chunked(StreamKind::Request, limits, &pp, 1).unwrap_err();
        assert_eq!(e.code, H3ErrorCode::H3_MESSAGE_ERROR);
    }

    #[test]
    fn settings_limit_is_excessive_load() {
        // 20 grease settings with 8-byte ids and values: 320 bytes.
        let mut payload = Vec::new();
        for n in 0..20u64 {
            let mut b = [0u8; 16];
            let mut w = Writer::new(&mut b);
            w.varint_with_len(0x21 + 0x1f * (n + 1_000_000_000), 8).unwrap();
            w.varint_with_len(n, 8).unwrap();
            payload.extend_from_slice(&b);
        }
        let bytes = encode_all(&[Frame::Extension { frame_type: 0x04, payload: &payload }]);
        let limits = FrameLimits { max_field_section_size: 100, max_control_frame_size: 320 };
        let got = decode_chunked(StreamKind::Control, limits, &bytes, 7).unwrap();
        assert_eq!(got, [Ev::Settings(Settings::default())]);
        let limits = FrameLimits { max_field_section_size: 100, max_control_frame_size: 319 };
        let e = decode_chunked(StreamKind::Control, limits, &bytes, 7).unwrap_err();
        assert_eq!(e.code, H3ErrorCode::H3_EXCESSIVE_LOAD);
        assert!(e.is_connection_error());
    }

    #[test]
    fn single_varint_frames_must_match_their_length() {
        let mut s = settings_frame();
        // GOAWAY with a trailing byte.
        s.extend_from_slice(&[0x07, 0x02, 0x04, 0x00]);
        assert_eq!(decode_err(StreamKind::Control, &s).code, H3ErrorCode::H3_FRAME_ERROR);
        for t in [0x03u8, 0x07, 0x0d] {
            // Length 2 but the varint takes 1 byte.
            let mut s = settings_frame();
            s.extend_from_slice(&[t, 0x02, 0x01, 0x01]);
            assert_eq!(decode_err(StreamKind::Control, &s).code, H3ErrorCode::H3_FRAME_ERROR);
            // Length 1 but the varint takes 2 bytes.
            let mut s = settings_frame();
            s.extend_from_slice(&[t, 0x01, 0x40, 0x01]);
            assert_eq!(decode_err(StreamKind::Control, &s).code, H3ErrorCode::H3_FRAME_ERROR);
            // Empty payload.
            let mut s = settings_frame();
            s.extend_from_slice(&[t, 0x00]);
            assert_eq!(decode_err(StreamKind::Control, &s).code, H3ErrorCode::H3_FRAME_ERROR);
            // Longer than any varint: rejected from the header alone.
            let mut s = settings_frame();
            s.extend_from_slice(&[t, 0x09]);
            assert_eq!(decode_err(StreamKind::Control, &s).code, H3ErrorCode::H3_FRAME_ERROR);
            // A non-minimal varint that fills the length exactly is fine.
            let mut s = settings_frame();
            s.extend_from_slice(&[t, 0x02, 0x40, 0x05]);
            let got = decode_chunked(StreamKind::Control, FrameLimits::default(), &s, 1);
            assert_eq!(got.unwrap().len(), 2);
        }
    }

    #[test]
    fn malformed_settings_in_frame() {
        // Truncated pair: identifier without value.
        let mut s = vec![0x04, 0x01, 0x06];
        assert_eq!(decode_err(StreamKind::Control, &s).code, H3ErrorCode::H3_FRAME_ERROR);
        // HTTP/2 setting.
        s = vec![0x04, 0x02, 0x02, 0x00];
        assert_eq!(decode_err(StreamKind::Control, &s).code, H3ErrorCode::H3_SETTINGS_ERROR);
        // Duplicate.
        s = vec![0x04, 0x04, 0x06, 0x01, 0x06, 0x01];
        assert_eq!(decode_err(StreamKind::Control, &s).code, H3ErrorCode::H3_SETTINGS_ERROR);
        // ENABLE_CONNECT_PROTOCOL = 2.
        s = vec![0x04, 0x02, 0x08, 0x02];
        assert_eq!(decode_err(StreamKind::Control, &s).code, H3ErrorCode::H3_SETTINGS_ERROR);
    }

    #[test]
    fn push_promise_without_push_id() {
        assert_eq!(decode_err(StreamKind::Request, &[0x05, 0x00]).code, H3ErrorCode::H3_FRAME_ERROR);
        // Length 1, but the push ID varint needs 2 bytes.
        assert_eq!(decode_err(StreamKind::Request, &[0x05, 0x01, 0x40, 0x00]).code, H3ErrorCode::H3_FRAME_ERROR);
    }

    #[test]
    fn control_stream_rules() {
        // RFC 9114 §6.2.1: the first frame must be SETTINGS.
        for first in [
            encode_all(&[Frame::Goaway(0)]),
            encode_all(&[Frame::MaxPushId(0)]),
            encode_all(&[Frame::Extension { frame_type: 0x21, payload: &[] }]),
            encode_all(&[Frame::Data(b"")]),
        ] {
            let e = decode_err(StreamKind::Control, &first);
            assert_eq!(e.code, H3ErrorCode::H3_MISSING_SETTINGS);
            assert!(e.is_connection_error());
        }
        // A second SETTINGS, and message frames, are unexpected.
        let s = settings_frame();
        for extra in [
            settings_frame(),
            encode_all(&[Frame::Data(b"x")]),
            encode_all(&[Frame::Headers(b"x")]),
            encode_all(&[Frame::PushPromise { push_id: 0, field_section: b"" }]),
        ] {
            let mut bytes = s.clone();
            bytes.extend_from_slice(&extra);
            assert_eq!(decode_err(StreamKind::Control, &bytes).code, H3ErrorCode::H3_FRAME_UNEXPECTED);
        }
        // A control stream must not end.
        let mut dec = FrameDecoder::new(StreamKind::Control, FrameLimits::default());
        let mut input = &s[..];
        assert!(matches!(dec.decode(&mut input), Ok(Some(FrameEvent::Settings(_)))));
        assert_eq!(dec.finish().unwrap_err().code, H3ErrorCode::H3_CLOSED_CRITICAL_STREAM);
    }

    #[test]
    fn http2_frame_types_are_unexpected_everywhere() {
        for t in [0x02u8, 0x06, 0x08, 0x09] {
            let mut c = settings_frame();
            c.extend_from_slice(&[t, 0x00]);
            assert_eq!(decode_err(StreamKind::Control, &c).code, H3ErrorCode::H3_FRAME_UNEXPECTED);
            for kind in [StreamKind::Request, StreamKind::Push] {
                // Rejected from the type alone, before the length arrives.
                let mut dec = FrameDecoder::new(kind, FrameLimits::default());
                let e = dec.decode(&mut &[t][..]).unwrap_err();
                assert_eq!(e.code, H3ErrorCode::H3_FRAME_UNEXPECTED);
            }
        }
    }

    #[test]
    fn control_frames_on_message_streams_are_unexpected() {
        for kind in [StreamKind::Request, StreamKind::Push] {
            for f in [Frame::Settings(Settings::default()), Frame::Goaway(0), Frame::CancelPush(0), Frame::MaxPushId(0)] {
                let e = decode_err(kind, &encode_all(&[f]));
                assert_eq!(e.code, H3ErrorCode::H3_FRAME_UNEXPECTED);
                assert!(e.is_connection_error());
            }
        }
        let pp = encode_all(&[Frame::PushPromise { push_id: 0, field_section: b"" }]);
        assert_eq!(decode_err(StreamKind::Push, &pp).code, H3ErrorCode::H3_FRAME_UNEXPECTED);
    }

    #[test]
    fn truncated_frame_at_end_of_stream() {
        let bytes = encode_all(&[Frame::Headers(b"abc"), Frame::Data(b"defg")]);
        for cut in 1..bytes.len() {
            let r = decode_chunked(StreamKind::Request, FrameLimits::default(), &bytes[..cut], 1);
            if cut == 5 {
                // Exactly after the HEADERS frame.
                assert!(r.is_ok());
                continue;
            }
            assert_eq!(r.unwrap_err().code, H3ErrorCode::H3_FRAME_ERROR, "cut {cut}");
        }
        assert!(decode_chunked(StreamKind::Request, FrameLimits::default(), &bytes, 1).is_ok());
        // Ending inside an unknown frame's payload is a truncated frame too.
        let mut dec = FrameDecoder::new(StreamKind::Push, FrameLimits::default());
        assert!(dec.decode(&mut &[0x21, 0x05, 0x00][..]).unwrap().is_some());
        assert_eq!(dec.finish().unwrap_err().code, H3ErrorCode::H3_FRAME_ERROR);
    }

    #[test]
    fn zero_length_and_empty_inputs() {
        let mut dec = FrameDecoder::new(StreamKind::Request, FrameLimits::default());
        assert_eq!(dec.decode(&mut &[][..]).unwrap(), None);
        let bytes = encode_all(&[Frame::Headers(b"")]);
        let mut input = &bytes[..];
        assert_eq!(dec.decode(&mut input).unwrap(), Some(FrameEvent::Headers(b"")));
        assert!(dec.is_at_frame_boundary());
        dec.finish().unwrap();
    }

    /// RFC 9218 §7.1: PRIORITY_UPDATE (both types) decodes on the control
    /// stream, byte by byte too; elsewhere it is H3_FRAME_UNEXPECTED, and
    /// one without its element ID is H3_FRAME_ERROR.
    #[test]
    fn priority_update_frames() {
        let settings = encode_all(&[Frame::Settings(Settings::default())]);
        let mut control = settings.clone();
        // 0xf0700: a 4-byte varint (0x800f0700); element 8; "u=1, i".
        control.extend_from_slice(&[0x80, 0x0f, 0x07, 0x00, 0x07, 0x08]);
        control.extend_from_slice(b"u=1, i");
        control.extend_from_slice(&[0x80, 0x0f, 0x07, 0x01, 0x01, 0x02]);
        for step in [control.len(), 1] {
            let evs = decode_chunked(StreamKind::Control, FrameLimits::default(), &control, step).unwrap();
            assert_eq!(evs[1..], [Ev::PriorityUpdate(false, 8, b"u=1, i".to_vec()), Ev::PriorityUpdate(true, 2, Vec::new())], "step {step}");
        }
        let on_request = [0x80, 0x0f, 0x07, 0x00, 0x01, 0x00];
        assert_eq!(decode_err(StreamKind::Request, &on_request).code, H3ErrorCode::H3_FRAME_UNEXPECTED);
        let mut empty = settings;
        empty.extend_from_slice(&[0x80, 0x0f, 0x07, 0x00, 0x00]);
        assert_eq!(decode_err(StreamKind::Control, &empty).code, H3ErrorCode::H3_FRAME_ERROR);
    }
}
