//! Frames (RFC 9000 §19, RFC 9221 §4).
//!
//! [`Frame::decode`] reads one frame from a decrypted packet payload,
//! borrowing STREAM/CRYPTO/DATAGRAM data, tokens and reason phrases from the
//! input; [`FrameIter`] walks a whole payload. [`Frame::encode`] writes a
//! frame into a caller-owned buffer; the connection's hot path uses the
//! header-only encoders in [`StreamFrameHeader`], [`CryptoFrameHeader`] and
//! [`DatagramFrameHeader`] so payload bytes are copied once, straight into the
//! packet.
//!
//! Every malformed frame becomes an [`Error`] carrying FRAME_ENCODING_ERROR
//! and the frame type (RFC 9000 §12.4, §19), except a non-minimally encoded
//! frame type and a frame not allowed in its packet type, which are
//! PROTOCOL_VIOLATION (§12.4).

mod ack;
mod headers;
mod types;

pub use ack::{AckFrame, AckRangeIter, EcnCounts};
pub use headers::{crypto_header_len, datagram_header_len, stream_header_len, CryptoFrameHeader, DatagramFrameHeader, StreamFrameHeader};
pub use types::{FrameContext, FrameType};

use core::iter::FusedIterator;

use crate::cid::{ConnectionId, ResetToken, MAX_CID_SIZE};
use crate::codec::{Reader, Writer};
use crate::error::{BufferTooShort, Error, TransportErrorCode};
use crate::varint;

/// RFC 9000 §19.8, §19.6: the largest offset a stream or the crypto stream
/// can reach (offset + length), 2^62 - 1.
pub const MAX_STREAM_OFFSET: u64 = (1 << 62) - 1;

/// RFC 9000 §19.11, §19.14: stream counts cannot exceed 2^60, since no larger
/// count has stream IDs that fit in a varint.
pub const MAX_STREAM_COUNT: u64 = 1 << 60;

/// RFC 9000 §19.17: PATH_CHALLENGE / PATH_RESPONSE carry 8 bytes.
pub const PATH_DATA_LEN: usize = 8;

/// Which kind of streams a MAX_STREAMS or STREAMS_BLOCKED frame is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamDir {
    Bidi,
    Uni,
}

/// One QUIC frame, borrowing its variable-length parts from the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// RFC 9000 §19.1: a run of `len` consecutive PADDING bytes (type 0x00),
    /// decoded as one frame.
    Padding { len: usize },
    /// RFC 9000 §19.2.
    Ping,
    /// RFC 9000 §19.3 (types 0x02 and 0x03).
    Ack(AckFrame<'a>),
    /// RFC 9000 §19.4.
    ResetStream { id: u64, error_code: u64, final_size: u64 },
    /// RFC 9000 §19.5.
    StopSending { id: u64, error_code: u64 },
    /// RFC 9000 §19.6.
    Crypto { offset: u64, data: &'a [u8] },
    /// RFC 9000 §19.7: never empty.
    NewToken { token: &'a [u8] },
    /// RFC 9000 §19.8 (types 0x08..=0x0f). `offset + data.len()` is at most
    /// [`MAX_STREAM_OFFSET`].
    Stream { id: u64, offset: u64, fin: bool, data: &'a [u8] },
    /// RFC 9000 §19.9.
    MaxData { max: u64 },
    /// RFC 9000 §19.10.
    MaxStreamData { id: u64, max: u64 },
    /// RFC 9000 §19.11: `max` is at most [`MAX_STREAM_COUNT`].
    MaxStreams { dir: StreamDir, max: u64 },
    /// RFC 9000 §19.12.
    DataBlocked { limit: u64 },
    /// RFC 9000 §19.13.
    StreamDataBlocked { id: u64, limit: u64 },
    /// RFC 9000 §19.14: `limit` is at most [`MAX_STREAM_COUNT`].
    StreamsBlocked { dir: StreamDir, limit: u64 },
    /// RFC 9000 §19.15: `cid` is 1..=20 bytes, `retire_prior_to <= sequence`.
    NewConnectionId { sequence: u64, retire_prior_to: u64, cid: ConnectionId, reset_token: ResetToken },
    /// RFC 9000 §19.16.
    RetireConnectionId { sequence: u64 },
    /// RFC 9000 §19.17.
    PathChallenge { data: [u8; PATH_DATA_LEN] },
    /// RFC 9000 §19.18.
    PathResponse { data: [u8; PATH_DATA_LEN] },
    /// RFC 9000 §19.19, type 0x1c: a transport error. `frame_type` is the
    /// type of the frame that triggered it (0 when unknown).
    ConnectionClose { error_code: TransportErrorCode, frame_type: u64, reason: &'a [u8] },
    /// RFC 9000 §19.19, type 0x1d: an application error.
    ApplicationClose { error_code: u64, reason: &'a [u8] },
    /// RFC 9000 §19.20.
    HandshakeDone,
    /// RFC 9221 §4 (types 0x30 and 0x31).
    Datagram { data: &'a [u8] },
}

/// Field reader for the body of one frame: turns running out of input into a
/// FRAME_ENCODING_ERROR naming the frame type (RFC 9000 §12.4: a frame that
/// does not fit its packet is malformed).
struct Fields<'r, 'a> {
    r: &'r mut Reader<'a>,
    ty: u64,
}

impl<'a> Fields<'_, 'a> {
    fn truncated(&self) -> Error {
        self.error("frame truncated")
    }

    fn error(&self, reason: &'static str) -> Error {
        Error::frame_encoding(reason).with_frame_type(self.ty)
    }

    fn varint(&mut self) -> Result<u64, Error> {
        self.r.varint().map_err(|_| self.truncated())
    }

    fn u8(&mut self) -> Result<u8, Error> {
        self.r.u8().map_err(|_| self.truncated())
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], Error> {
        self.r.bytes(n).map_err(|_| self.truncated())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        self.r.array().map_err(|_| self.truncated())
    }

    /// A varint length then that many bytes; a length beyond the payload is
    /// a truncated frame, so nothing is ever sized from it.
    fn varint_prefixed(&mut self) -> Result<&'a [u8], Error> {
        self.r.varint_prefixed().map_err(|_| self.truncated())
    }

    /// Everything up to the end of the packet (STREAM without LEN,
    /// DATAGRAM type 0x30).
    fn rest(&mut self) -> &'a [u8] {
        self.r.rest()
    }

    fn position(&self) -> usize {
        self.r.position()
    }

    fn peek_rest(&self) -> &'a [u8] {
        self.r.peek_rest()
    }
}

/// RFC 9000 §19.6, §19.8: offset + length must stay within 2^62 - 1.
fn check_offset_end(f: &Fields<'_, '_>, offset: u64, len: usize) -> Result<(), Error> {
    match offset.checked_add(len as u64) {
        Some(end) if end <= MAX_STREAM_OFFSET => Ok(()),
        _ => Err(f.error("offset + length exceeds 2^62-1")),
    }
}

fn stream_dir(bidi_type: FrameType, ty: FrameType) -> StreamDir {
    if ty == bidi_type {
        StreamDir::Bidi
    } else {
        StreamDir::Uni
    }
}

impl<'a> Frame<'a> {
    /// Decodes one frame from the front of `r`.
    ///
    /// An empty reader is a FRAME_ENCODING_ERROR too: callers iterate with
    /// [`FrameIter`], which never asks past the end.
    pub fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
        let ty = FrameType::decode(r)?;
        Self::decode_body(ty, r)
    }

    /// Decodes the fields that follow an already-read Frame Type.
    pub fn decode_body(ty: FrameType, r: &mut Reader<'a>) -> Result<Self, Error> {
        let mut f = Fields { r, ty: ty.0 };
        let frame = match ty {
            FrameType::PADDING => {
                // RFC 9000 §19.1: PADDING has no content; a run of them is
                // folded into one frame so padding costs one scan, not one
                // decode per byte.
                let run = zero_run(f.peek_rest());
                f.bytes(run)?;
                Frame::Padding { len: run + 1 }
            }
            FrameType::PING => Frame::Ping,
            FrameType::ACK | FrameType::ACK_ECN => Frame::Ack(AckFrame::decode_fields(ty, &mut f)?),
            FrameType::RESET_STREAM => Frame::ResetStream { id: f.varint()?, error_code: f.varint()?, final_size: f.varint()? },
            FrameType::STOP_SENDING => Frame::StopSending { id: f.varint()?, error_code: f.varint()? },
            FrameType::CRYPTO => {
                let offset = f.varint()?;
                let data = f.varint_prefixed()?;
                check_offset_end(&f, offset, data.len())?;
                Frame::Crypto { offset, data }
            }
            FrameType::NEW_TOKEN => {
                let token = f.varint_prefixed()?;
                // RFC 9000 §19.7: an empty token is a FRAME_ENCODING_ERROR.
                if token.is_empty() {
                    return Err(f.error("empty NEW_TOKEN"));
                }
                Frame::NewToken { token }
            }
            t if t.is_stream() => {
                let id = f.varint()?;
                // RFC 9000 §19.8: without OFF the offset is 0; without LEN
                // the data runs to the end of the packet.
                let offset = if t.0 & FrameType::STREAM_OFF_BIT != 0 { f.varint()? } else { 0 };
                let data = if t.0 & FrameType::STREAM_LEN_BIT != 0 { f.varint_prefixed()? } else { f.rest() };
                check_offset_end(&f, offset, data.len())?;
                Frame::Stream { id, offset, fin: t.0 & FrameType::STREAM_FIN_BIT != 0, data }
            }
            FrameType::MAX_DATA => Frame::MaxData { max: f.varint()? },
            FrameType::MAX_STREAM_DATA => Frame::MaxStreamData { id: f.varint()?, max: f.varint()? },
            FrameType::MAX_STREAMS_BIDI | FrameType::MAX_STREAMS_UNI => {
                let max = f.varint()?;
                // RFC 9000 §19.11: above 2^60 MUST be FRAME_ENCODING_ERROR.
                if max > MAX_STREAM_COUNT {
                    return Err(f.error("MAX_STREAMS above 2^60"));
                }
                Frame::MaxStreams { dir: stream_dir(FrameType::MAX_STREAMS_BIDI, ty), max }
            }
            FrameType::DATA_BLOCKED => Frame::DataBlocked { limit: f.varint()? },
            FrameType::STREAM_DATA_BLOCKED => Frame::StreamDataBlocked { id: f.varint()?, limit: f.varint()? },
            FrameType::STREAMS_BLOCKED_BIDI | FrameType::STREAMS_BLOCKED_UNI => {
                let limit = f.varint()?;
                // RFC 9000 §19.14: STREAM_LIMIT_ERROR or FRAME_ENCODING_ERROR;
                // we use the latter, like MAX_STREAMS.
                if limit > MAX_STREAM_COUNT {
                    return Err(f.error("STREAMS_BLOCKED above 2^60"));
                }
                Frame::StreamsBlocked { dir: stream_dir(FrameType::STREAMS_BLOCKED_BIDI, ty), limit }
            }
            FrameType::NEW_CONNECTION_ID => {
                let sequence = f.varint()?;
                let retire_prior_to = f.varint()?;
                // RFC 9000 §19.15: Retire Prior To above Sequence Number, or
                // a length outside 1..=20, is a FRAME_ENCODING_ERROR.
                if retire_prior_to > sequence {
                    return Err(f.error("retire_prior_to above sequence number"));
                }
                let len = usize::from(f.u8()?);
                if len == 0 || len > MAX_CID_SIZE {
                    return Err(f.error("NEW_CONNECTION_ID length not in 1..=20"));
                }
                let cid = ConnectionId::new(f.bytes(len)?).map_err(|_| f.error("connection ID too long"))?;
                let reset_token = ResetToken(f.array()?);
                Frame::NewConnectionId { sequence, retire_prior_to, cid, reset_token }
            }
            FrameType::RETIRE_CONNECTION_ID => Frame::RetireConnectionId { sequence: f.varint()? },
            FrameType::PATH_CHALLENGE => Frame::PathChallenge { data: f.array()? },
            FrameType::PATH_RESPONSE => Frame::PathResponse { data: f.array()? },
            FrameType::CONNECTION_CLOSE => {
                Frame::ConnectionClose { error_code: TransportErrorCode(f.varint()?), frame_type: f.varint()?, reason: f.varint_prefixed()? }
            }
            FrameType::CONNECTION_CLOSE_APP => Frame::ApplicationClose { error_code: f.varint()?, reason: f.varint_prefixed()? },
            FrameType::HANDSHAKE_DONE => Frame::HandshakeDone,
            FrameType::DATAGRAM => Frame::Datagram { data: f.rest() },
            FrameType::DATAGRAM_LEN => Frame::Datagram { data: f.varint_prefixed()? },
            // RFC 9000 §12.4: an unknown frame type is a FRAME_ENCODING_ERROR.
            _ => return Err(f.error("unknown frame type")),
        };
        Ok(frame)
    }

    /// The type [`Frame::encode`] writes for this frame. A decoded frame may
    /// have arrived with a different type of the same kind (e.g. STREAM
    /// without LEN, DATAGRAM 0x30).
    pub fn frame_type(&self) -> FrameType {
        match self {
            Frame::Padding { .. } => FrameType::PADDING,
            Frame::Ping => FrameType::PING,
            Frame::Ack(ack) => ack.frame_type(),
            Frame::ResetStream { .. } => FrameType::RESET_STREAM,
            Frame::StopSending { .. } => FrameType::STOP_SENDING,
            Frame::Crypto { .. } => FrameType::CRYPTO,
            Frame::NewToken { .. } => FrameType::NEW_TOKEN,
            Frame::Stream { offset, fin, .. } => FrameType::stream(*offset != 0, true, *fin),
            Frame::MaxData { .. } => FrameType::MAX_DATA,
            Frame::MaxStreamData { .. } => FrameType::MAX_STREAM_DATA,
            Frame::MaxStreams { dir: StreamDir::Bidi, .. } => FrameType::MAX_STREAMS_BIDI,
            Frame::MaxStreams { dir: StreamDir::Uni, .. } => FrameType::MAX_STREAMS_UNI,
            Frame::DataBlocked { .. } => FrameType::DATA_BLOCKED,
            Frame::StreamDataBlocked { .. } => FrameType::STREAM_DATA_BLOCKED,
            Frame::StreamsBlocked { dir: StreamDir::Bidi, .. } => FrameType::STREAMS_BLOCKED_BIDI,
            Frame::StreamsBlocked { dir: StreamDir::Uni, .. } => FrameType::STREAMS_BLOCKED_UNI,
            Frame::NewConnectionId { .. } => FrameType::NEW_CONNECTION_ID,
            Frame::RetireConnectionId { .. } => FrameType::RETIRE_CONNECTION_ID,
            Frame::PathChallenge { .. } => FrameType::PATH_CHALLENGE,
            Frame::PathResponse { .. } => FrameType::PATH_RESPONSE,
            Frame::ConnectionClose { .. } => FrameType::CONNECTION_CLOSE,
            Frame::ApplicationClose { .. } => FrameType::CONNECTION_CLOSE_APP,
            Frame::HandshakeDone => FrameType::HANDSHAKE_DONE,
            Frame::Datagram { .. } => FrameType::DATAGRAM_LEN,
        }
    }

    /// RFC 9002 §2: whether receiving this frame makes the packet
    /// ack-eliciting.
    pub fn is_ack_eliciting(&self) -> bool {
        self.frame_type().is_ack_eliciting()
    }

    /// RFC 9000 §9.1: whether this is a probing frame.
    pub fn is_probing(&self) -> bool {
        self.frame_type().is_probing()
    }

    /// Exactly the bytes [`Frame::encode`] writes.
    ///
    /// STREAM frames are written with LEN and with OFF only when the offset
    /// is not 0; DATAGRAM frames with a Length (type 0x31): both can then be
    /// followed by other frames. Use [`StreamFrameHeader`] /
    /// [`DatagramFrameHeader`] to omit the length on the last frame.
    pub fn encoded_len(&self) -> usize {
        let v = varint::size;
        let prefixed = |b: &[u8]| v(b.len() as u64) + b.len();
        1 + match self {
            // The type byte counted above is the first PADDING byte.
            Frame::Padding { len } => return *len,
            Frame::Ping | Frame::HandshakeDone => 0,
            Frame::Ack(ack) => return ack.encoded_len(),
            Frame::ResetStream { id, error_code, final_size } => v(*id) + v(*error_code) + v(*final_size),
            Frame::StopSending { id, error_code } => v(*id) + v(*error_code),
            Frame::Crypto { offset, data } => return crypto_header_len(*offset, data.len()) + data.len(),
            Frame::NewToken { token } => prefixed(token),
            Frame::Stream { id, offset, data, .. } => return stream_header_len(*id, *offset, data.len(), true) + data.len(),
            Frame::MaxData { max } => v(*max),
            Frame::MaxStreamData { id, max } => v(*id) + v(*max),
            Frame::MaxStreams { max, .. } => v(*max),
            Frame::DataBlocked { limit } => v(*limit),
            Frame::StreamDataBlocked { id, limit } => v(*id) + v(*limit),
            Frame::StreamsBlocked { limit, .. } => v(*limit),
            Frame::NewConnectionId { sequence, retire_prior_to, cid, .. } => v(*sequence) + v(*retire_prior_to) + 1 + cid.len() + ResetToken::LEN,
            Frame::RetireConnectionId { sequence } => v(*sequence),
            Frame::PathChallenge { .. } | Frame::PathResponse { .. } => PATH_DATA_LEN,
            Frame::ConnectionClose { error_code, frame_type, reason } => v(error_code.0) + v(*frame_type) + prefixed(reason),
            Frame::ApplicationClose { error_code, reason } => v(*error_code) + prefixed(reason),
            Frame::Datagram { data } => return datagram_header_len(data.len(), true) + data.len(),
        }
    }

    /// Writes the frame. Fails with [`BufferTooShort`] without writing
    /// anything when `w` has less than [`Frame::encoded_len`] bytes left.
    /// Field values of 2^62 or more are a caller bug and also give
    /// `BufferTooShort` (possibly after a partial write).
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferTooShort> {
        if w.remaining() < self.encoded_len() {
            return Err(BufferTooShort);
        }
        let ty = self.frame_type();
        match self {
            Frame::Padding { len } => return w.fill(0, *len),
            Frame::Ack(ack) => return ack.encode(w),
            Frame::Stream { id, offset, fin, data } => {
                let h = StreamFrameHeader { id: *id, offset: *offset, len: data.len(), fin: *fin, with_len: true };
                h.encode(w)?;
                return w.put(data);
            }
            Frame::Crypto { offset, data } => {
                CryptoFrameHeader { offset: *offset, len: data.len() }.encode(w)?;
                return w.put(data);
            }
            Frame::Datagram { data } => {
                DatagramFrameHeader { len: data.len(), with_len: true }.encode(w)?;
                return w.put(data);
            }
            _ => {}
        }
        w.varint(ty.0)?;
        match self {
            Frame::Padding { .. }
            | Frame::Ack(_)
            | Frame::Stream { .. }
            | Frame::Crypto { .. }
            | Frame::Datagram { .. }
            | Frame::Ping
            | Frame::HandshakeDone => Ok(()),
            Frame::ResetStream { id, error_code, final_size } => {
                w.varint(*id)?;
                w.varint(*error_code)?;
                w.varint(*final_size)
            }
            Frame::StopSending { id, error_code } => {
                w.varint(*id)?;
                w.varint(*error_code)
            }
            Frame::NewToken { token } => w.varint_prefixed(token),
            Frame::MaxData { max } => w.varint(*max),
            Frame::MaxStreamData { id, max } => {
                w.varint(*id)?;
                w.varint(*max)
            }
            Frame::MaxStreams { max, .. } => w.varint(*max),
            Frame::DataBlocked { limit } => w.varint(*limit),
            Frame::StreamDataBlocked { id, limit } => {
                w.varint(*id)?;
                w.varint(*limit)
            }
            Frame::StreamsBlocked { limit, .. } => w.varint(*limit),
            Frame::NewConnectionId { sequence, retire_prior_to, cid, reset_token } => {
                w.varint(*sequence)?;
                w.varint(*retire_prior_to)?;
                w.u8(cid.len() as u8)?;
                w.put(cid)?;
                w.put(&reset_token.0)
            }
            Frame::RetireConnectionId { sequence } => w.varint(*sequence),
            Frame::PathChallenge { data } | Frame::PathResponse { data } => w.put(data),
            Frame::ConnectionClose { error_code, frame_type, reason } => {
                w.varint(error_code.0)?;
                w.varint(*frame_type)?;
                w.varint_prefixed(reason)
            }
            Frame::ApplicationClose { error_code, reason } => {
                w.varint(*error_code)?;
                w.varint_prefixed(reason)
            }
        }
    }
}

/// Iterates the frames of a decrypted packet payload, yielding each frame or
/// the first error, after which it stops.
#[derive(Debug, Clone)]
pub struct FrameIter<'a> {
    r: Reader<'a>,
    ctx: Option<FrameContext>,
    done: bool,
}

impl<'a> FrameIter<'a> {
    /// Iterates `payload` without packet-type checks.
    pub fn new(payload: &'a [u8]) -> Self {
        Self { r: Reader::new(payload), ctx: None, done: false }
    }

    /// Iterates the payload of a packet of type `ctx`, also enforcing
    /// RFC 9000 §12.4: a frame type not allowed in that packet type (Table
    /// 3) and a payload with no frames at all are PROTOCOL_VIOLATION.
    pub fn for_packet(payload: &'a [u8], ctx: FrameContext) -> Self {
        Self { r: Reader::new(payload), ctx: Some(ctx), done: false }
    }

    /// Bytes of the payload consumed so far.
    pub fn position(&self) -> usize {
        self.r.position()
    }

    fn next_frame(&mut self) -> Result<Frame<'a>, Error> {
        let ty = FrameType::decode(&mut self.r)?;
        if let Some(ctx) = self.ctx {
            if !ty.is_allowed_in(ctx) && ty.is_known() {
                return Err(Error::protocol_violation("frame not allowed in this packet type").with_frame_type(ty.0));
            }
        }
        Frame::decode_body(ty, &mut self.r)
    }
}

impl<'a> Iterator for FrameIter<'a> {
    type Item = Result<Frame<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.r.is_empty() {
            self.done = true;
            // RFC 9000 §12.4: a packet with no frames is a PROTOCOL_VIOLATION.
            if self.ctx.is_some() && self.r.position() == 0 {
                return Some(Err(Error::protocol_violation("packet without frames")));
            }
            return None;
        }
        let item = self.next_frame();
        if item.is_err() {
            self.done = true;
        }
        Some(item)
    }
}

impl FusedIterator for FrameIter<'_> {}

/// The number of zero bytes `bytes` starts with, sixteen at a time: an
/// Initial's padding is a thousand bytes (RFC 9000 §14.1), and a byte-wise
/// scan was 10,000 instructions of each handshake a server took.
fn zero_run(bytes: &[u8]) -> usize {
    let mut run = 0;
    for block in bytes.chunks_exact(16) {
        if block.iter().fold(0u8, |acc, &b| acc | b) != 0 {
            break;
        }
        run += 16;
    }
    run + bytes.get(run..).unwrap_or_default().iter().take_while(|&&b| b == 0).count()
}

#[cfg(test)]
mod tests;
