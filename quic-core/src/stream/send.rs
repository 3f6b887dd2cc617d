//! The sending part of a stream (RFC 9000 §3.1): the application's send
//! buffer, which byte ranges went out, were acknowledged or lost, the FIN,
//! RESET_STREAM and STOP_SENDING, and the peer's MAX_STREAM_DATA (§4.1).
//!
//! Transmission is two-step so the bytes go straight into the packet buffer:
//! [`SendStream::next_chunk`] picks what to send (lost ranges first, then new
//! data), the caller encodes the STREAM frame header and calls
//! [`SendStream::copy_chunk`] to copy the payload in place.
//!
//! The acknowledged/lost range sets are not capped: their size is bounded by
//! the number of STREAM frames this endpoint sent for unacknowledged data,
//! which the peer cannot inflate (it can only choose which of our frames to
//! acknowledge), and that data is itself bounded by the send-buffer limit.

use std::collections::VecDeque;

use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use bytes::{Buf, Bytes, BytesMut};

use crate::range_set::RangeSet;
use crate::varint::VarInt;

/// RFC 9000 §19.8: stream offsets never exceed 2^62 - 1.
const MAX_OFFSET: u64 = VarInt::MAX.into_inner();

/// RFC 9000 §3.1 sending-part states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendState {
    /// Nothing sent yet; data may be buffered.
    Ready,
    /// Some data (or STREAM_DATA_BLOCKED) sent.
    Send,
    /// The FIN was sent; only retransmissions remain.
    DataSent,
    /// Everything including the FIN was acknowledged (terminal).
    DataRecvd,
    /// RESET_STREAM sent (possibly needing retransmission until acknowledged).
    ResetSent { error_code: u64, final_size: u64 },
    /// RESET_STREAM acknowledged (terminal).
    ResetRecvd { error_code: u64, final_size: u64 },
}

/// A STREAM frame's worth of data chosen by [`SendStream::next_chunk`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendChunk {
    pub offset: u64,
    /// Payload length; 0 only for a FIN-only frame.
    pub len: usize,
    pub fin: bool,
    /// Data sent before and declared lost. When false, the bytes are new and
    /// consume connection-level credit (`SendCredit::consume(len)`).
    pub retransmission: bool,
}

impl SendChunk {
    /// Offset just past the chunk.
    pub fn end(&self) -> u64 {
        self.offset + self.len as u64
    }
}

/// Why a write accepted nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteError {
    /// The send buffer is full; retry after acknowledgments free space.
    Blocked,
    /// [`SendStream::finish`] was called.
    Finished,
    /// The peer sent STOP_SENDING with this code; the stream was reset.
    Stopped(u64),
    /// The stream was reset locally ([`SendStream::reset`]).
    Reset,
}

impl core::fmt::Display for WriteError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            WriteError::Blocked => f.write_str("send buffer full"),
            WriteError::Finished => f.write_str("stream already finished"),
            WriteError::Stopped(code) => write!(f, "peer sent STOP_SENDING with code {code}"),
            WriteError::Reset => f.write_str("stream was reset"),
        }
    }
}

impl std::error::Error for WriteError {}

/// Room a tail reserves when it must grow: an HTTP/3 response of about a
/// kilobyte (HEADERS, DATA header, body) fits in one allocation.
const TAIL_START: usize = 2048;

/// Unacknowledged stream data from the acknowledged prefix to the write offset.
///
/// Whole `Bytes` segments (zero-copy writes and frozen copies), plus a
/// `BytesMut` tail that absorbs copied writes so they do not become one
/// allocation each. The tail is frozen into a segment only when a zero-copy
/// write follows it (segments stay in offset order before the tail); sent
/// data may stay in the tail, which is read by `copy` like a segment and
/// advanced as it is acknowledged. A small response (HEADERS, DATA header
/// and a body copied behind them) so costs one allocation.
#[derive(Debug, Default)]
struct SendBuffer {
    /// `(offset of first byte, bytes)`, contiguous and ascending.
    segments: VecDeque<(u64, Bytes)>,
    tail: BytesMut,
    /// Offset of `tail[0]`, which is also the end of `segments`.
    tail_offset: u64,
    /// Index of the segment the last `copy` started in: packets take the
    /// data in order, so the next copy nearly always starts in it or the
    /// one after, and the binary search over a bulk stream's dozens of
    /// segments (3 % of a bulk sender's time) is skipped. Only a hint:
    /// checked before use. Atomic only to stay `Sync` (relaxed loads and
    /// stores are plain moves); `copy` takes `&self`.
    hint: AtomicUsize,
}

impl SendBuffer {
    fn push_slice(&mut self, data: &[u8]) {
        self.reserve_tail(data.len());
        self.tail.extend_from_slice(data);
    }

    /// Room for `len` more bytes in the tail.
    fn reserve_tail(&mut self, len: usize) {
        if self.tail.capacity() - self.tail.len() < len {
            // A fresh tail starts with room for the few small writes a
            // message is made of (frame headers, a short body), so they
            // share one allocation instead of growing it step by step.
            self.tail.reserve(len.max(TAIL_START));
        }
    }

    fn push_bytes(&mut self, data: Bytes) {
        self.freeze_tail();
        let len = data.len() as u64;
        self.segments.push_back((self.tail_offset, data));
        self.tail_offset += len;
    }

    fn freeze_tail(&mut self) {
        if self.tail.is_empty() {
            return;
        }
        // Zero-copy: the tail keeps the rest of its allocation for later writes.
        let frozen = self.tail.split().freeze();
        let len = frozen.len() as u64;
        self.segments.push_back((self.tail_offset, frozen));
        self.tail_offset += len;
    }

    /// Drops data below `offset` (acknowledged).
    fn free_below(&mut self, offset: u64) {
        while let Some((start, seg)) = self.segments.front_mut() {
            let end = *start + seg.len() as u64;
            if end <= offset {
                self.segments.pop_front();
                self.hint.store(self.hint.load(Relaxed).saturating_sub(1), Relaxed);
                continue;
            }
            if *start < offset {
                let skip = usize::try_from(offset - *start).unwrap_or(usize::MAX).min(seg.len());
                seg.advance(skip);
                *start = offset;
            }
            break;
        }
        // Segments end at `tail_offset`, so past it they are all gone and
        // the acknowledged part is at the tail's front.
        if offset > self.tail_offset {
            let skip = usize::try_from(offset - self.tail_offset).unwrap_or(usize::MAX).min(self.tail.len());
            self.tail.advance(skip);
            self.tail_offset += skip as u64;
        }
        if self.segments.is_empty() && self.tail.is_empty() {
            // Everything written was acknowledged: a stream that writes now
            // and then (HTTP/3 control and QPACK streams, CRYPTO) keeps no
            // buffer between writes.
            self.segments = VecDeque::new();
            self.tail = BytesMut::new();
        }
    }

    /// Copies `out.len()` bytes starting at stream offset `offset`; false if
    /// any of them is not buffered.
    fn copy(&self, offset: u64, out: &mut [u8]) -> bool {
        let mut pos = offset;
        let mut written = 0usize;
        let covers = |i: usize| self.segments.get(i).is_some_and(|(s, b)| *s <= offset && offset < s + b.len() as u64);
        let hint = self.hint.load(Relaxed);
        let first = if covers(hint) {
            hint
        } else if covers(hint + 1) {
            hint + 1
        } else {
            self.segments.partition_point(|(s, b)| s + b.len() as u64 <= offset)
        };
        self.hint.store(first, Relaxed);
        let pieces = self.segments.range(first..).map(|(s, b)| (*s, &b[..])).chain(core::iter::once((self.tail_offset, &self.tail[..])));
        for (start, bytes) in pieces {
            if written == out.len() {
                break;
            }
            let Some(from) = pos.checked_sub(start).and_then(|d| usize::try_from(d).ok()) else {
                return false; // a hole: not buffered
            };
            let Some(avail) = bytes.get(from..) else {
                continue;
            };
            let n = avail.len().min(out.len() - written);
            match (out.get_mut(written..written + n), avail.get(..n)) {
                (Some(d), Some(s)) => d.copy_from_slice(s),
                _ => return false,
            }
            written += n;
            pos += n as u64;
        }
        written == out.len()
    }

    fn clear(&mut self) {
        self.segments.clear();
        self.tail = BytesMut::new();
    }
}

/// The sending part of a stream.
#[derive(Debug)]
pub struct SendStream {
    state: SendState,
    buffer: SendBuffer,
    /// Bytes written by the application (the final size once finished).
    write_offset: u64,
    /// New data frontier: every byte below was sent at least once. Also the
    /// stream's flow-control credit used.
    sent_offset: u64,
    /// Every byte below is acknowledged and freed.
    acked_prefix: u64,
    /// Acknowledged ranges above `acked_prefix`.
    acked: RangeSet,
    /// Ranges to retransmit (may overlap acknowledged data, which is skipped).
    lost: RangeSet,
    finished: bool,
    fin_sent: bool,
    fin_acked: bool,
    fin_lost: bool,
    /// The peer's MAX_STREAM_DATA.
    max_stream_data: u64,
    /// The limit at which STREAM_DATA_BLOCKED was last reported.
    blocked_reported: Option<u64>,
    /// Max bytes buffered (written but not yet acknowledged).
    buffer_limit: u64,
    stop_code: Option<u64>,
}

impl SendStream {
    /// `max_stream_data` is the peer's initial limit for this stream (from its
    /// transport parameters); the application may buffer up to
    /// `send_buffer_limit` unacknowledged bytes.
    pub fn new(max_stream_data: u64, send_buffer_limit: u64) -> Self {
        Self {
            state: SendState::Ready,
            buffer: SendBuffer::default(),
            write_offset: 0,
            sent_offset: 0,
            acked_prefix: 0,
            acked: RangeSet::new(usize::MAX),
            lost: RangeSet::new(usize::MAX),
            finished: false,
            fin_sent: false,
            fin_acked: false,
            fin_lost: false,
            max_stream_data,
            blocked_reported: None,
            buffer_limit: send_buffer_limit,
            stop_code: None,
        }
    }

    pub fn state(&self) -> SendState {
        self.state
    }

    /// Bytes written by the application.
    pub fn write_offset(&self) -> u64 {
        self.write_offset
    }

    /// Bytes sent at least once (stream flow-control credit used).
    pub fn sent_offset(&self) -> u64 {
        self.sent_offset
    }

    /// Every byte below this offset is acknowledged.
    pub fn acked_offset(&self) -> u64 {
        self.acked_prefix
    }

    /// The peer's current MAX_STREAM_DATA.
    pub fn max_stream_data(&self) -> u64 {
        self.max_stream_data
    }

    /// Bytes held for (re)transmission: written and not yet acknowledged
    /// (0 once reset).
    pub fn buffered(&self) -> u64 {
        match self.state {
            SendState::ResetSent { .. } | SendState::ResetRecvd { .. } => 0,
            _ => self.write_offset - self.acked_prefix,
        }
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The STOP_SENDING code received from the peer, if any.
    pub fn stop_code(&self) -> Option<u64> {
        self.stop_code
    }

    /// Terminal: all data acknowledged, or the reset acknowledged.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, SendState::DataRecvd | SendState::ResetRecvd { .. })
    }

    /// Everything was sent at least once, FIN included, or the stream was
    /// reset: nothing new will be written.
    pub fn all_sent(&self) -> bool {
        matches!(self.state, SendState::DataSent | SendState::DataRecvd | SendState::ResetSent { .. } | SendState::ResetRecvd { .. })
    }

    fn is_open(&self) -> bool {
        matches!(self.state, SendState::Ready | SendState::Send | SendState::DataSent)
    }

    fn check_writable(&self) -> Result<(), WriteError> {
        if let Some(code) = self.stop_code {
            return Err(WriteError::Stopped(code));
        }
        match self.state {
            SendState::ResetSent { .. } | SendState::ResetRecvd { .. } => Err(WriteError::Reset),
            _ if self.finished => Err(WriteError::Finished),
            _ => Ok(()),
        }
    }

    /// Bytes a write would accept now.
    pub fn writable(&self) -> u64 {
        if self.check_writable().is_err() {
            return 0;
        }
        let room = self.buffer_limit.saturating_sub(self.buffered());
        room.min(MAX_OFFSET.saturating_sub(self.write_offset))
    }

    /// Buffers a prefix of `data` (copying it), as much as the send-buffer
    /// limit allows. Returns how many bytes were taken; `Err(Blocked)` if none
    /// could be (and `data` is not empty).
    pub fn write(&mut self, data: &[u8]) -> Result<usize, WriteError> {
        let n = self.accept(data.len())?;
        if let Some(prefix) = data.get(..n) {
            self.buffer.push_slice(prefix);
            self.write_offset += n as u64;
        }
        Ok(n)
    }

    /// Buffers all of `parts` (copying them) and, with `fin`, ends the
    /// stream after them; nothing is taken unless all of it fits
    /// (`Err(Blocked)`). For a message written as a frame header and its
    /// payload: one call instead of a write per piece and a `finish`.
    /// Returns the bytes taken.
    pub fn write_parts(&mut self, parts: &[&[u8]], fin: bool) -> Result<usize, WriteError> {
        self.check_writable()?;
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len as u64 > self.writable() {
            return Err(WriteError::Blocked);
        }
        self.buffer.reserve_tail(len);
        for part in parts {
            self.buffer.push_slice(part);
        }
        self.write_offset += len as u64;
        if fin {
            self.finish()?;
        }
        Ok(len)
    }

    /// As [`write`](Self::write) without copying: keeps (a slice of) `data`.
    /// Returns how many bytes were taken from its front.
    pub fn write_bytes(&mut self, data: Bytes) -> Result<usize, WriteError> {
        let n = self.accept(data.len())?;
        if n > 0 {
            self.buffer.push_bytes(data.slice(..n));
            self.write_offset += n as u64;
        }
        Ok(n)
    }

    fn accept(&self, len: usize) -> Result<usize, WriteError> {
        self.check_writable()?;
        if len == 0 {
            return Ok(0);
        }
        let room = usize::try_from(self.writable()).unwrap_or(usize::MAX);
        if room == 0 {
            return Err(WriteError::Blocked);
        }
        Ok(len.min(room))
    }

    /// No more data will be written; the FIN goes out with the last data (or
    /// alone). Calling it again is harmless.
    pub fn finish(&mut self) -> Result<(), WriteError> {
        if let Some(code) = self.stop_code {
            return Err(WriteError::Stopped(code));
        }
        match self.state {
            SendState::ResetSent { .. } | SendState::ResetRecvd { .. } => Err(WriteError::Reset),
            _ => {
                self.finished = true;
                Ok(())
            }
        }
    }

    /// Abandons the stream (RFC 9000 §3.1: from "Ready", "Send" or "Data
    /// Sent"). Returns the final size to put in RESET_STREAM — the bytes sent
    /// so far, i.e. the flow-control credit used (§4.5) — or `None` if the
    /// stream is already reset or fully acknowledged.
    pub fn reset(&mut self, error_code: u64) -> Option<u64> {
        if !self.is_open() {
            return None;
        }
        let final_size = self.sent_offset;
        self.state = SendState::ResetSent { error_code, final_size };
        // RFC 9000 §19.4: no more (re)transmission of STREAM frames.
        self.buffer.clear();
        self.acked.clear();
        self.lost.clear();
        self.fin_lost = false;
        Some(final_size)
    }

    /// `(error code, final size)` for a RESET_STREAM frame while one is
    /// needed ("Reset Sent": also to retransmit a lost one).
    pub fn reset_frame(&self) -> Option<(u64, u64)> {
        match self.state {
            SendState::ResetSent { error_code, final_size } => Some((error_code, final_size)),
            _ => None,
        }
    }

    /// The RESET_STREAM was acknowledged: "Reset Recvd".
    pub fn on_reset_acked(&mut self) {
        if let SendState::ResetSent { error_code, final_size } = self.state {
            self.state = SendState::ResetRecvd { error_code, final_size };
        }
    }

    /// A STOP_SENDING frame arrived (RFC 9000 §3.5): the stream is reset with
    /// the peer's code. Returns the final size if a RESET_STREAM must now be
    /// sent (see [`reset_frame`](Self::reset_frame)); `None` if the stream
    /// was already reset or fully acknowledged.
    pub fn on_stop_sending(&mut self, error_code: u64) -> Option<u64> {
        if !self.is_open() {
            return None;
        }
        self.stop_code.get_or_insert(error_code);
        self.reset(error_code)
    }

    /// A MAX_STREAM_DATA frame arrived. RFC 9000 §4.1: values that do not
    /// increase the limit are ignored. Returns whether the limit grew.
    pub fn on_max_stream_data(&mut self, max_stream_data: u64) -> bool {
        if max_stream_data > self.max_stream_data {
            self.max_stream_data = max_stream_data;
            true
        } else {
            false
        }
    }

    /// `Some(limit)` while unsent data waits on the peer's MAX_STREAM_DATA
    /// (the value for STREAM_DATA_BLOCKED, RFC 9000 §19.13).
    pub fn is_blocked(&self) -> Option<u64> {
        let waiting =
            matches!(self.state, SendState::Ready | SendState::Send) && self.sent_offset < self.write_offset && self.sent_offset >= self.max_stream_data;
        waiting.then_some(self.max_stream_data)
    }

    /// As [`is_blocked`](Self::is_blocked), but returns each limit only once:
    /// the caller sends STREAM_DATA_BLOCKED when this is `Some`. Sending it
    /// moves "Ready" to "Send" (RFC 9000 §3.1).
    pub fn poll_blocked(&mut self) -> Option<u64> {
        let limit = self.is_blocked()?;
        if self.blocked_reported == Some(limit) {
            return None;
        }
        self.blocked_reported = Some(limit);
        if self.state == SendState::Ready {
            self.state = SendState::Send;
        }
        Some(limit)
    }

    /// Whether [`next_chunk`](Self::next_chunk) has something to offer given
    /// enough packet space and connection credit.
    /// Whether bytes (or the FIN) that were never sent wait and may go now:
    /// new data, as opposed to retransmissions.
    pub fn has_unsent_data(&self) -> bool {
        self.is_open()
            && ((self.sent_offset < self.write_offset && self.sent_offset < self.max_stream_data)
                || (self.finished && !self.fin_sent && self.sent_offset == self.write_offset))
    }

    pub fn has_data_to_send(&self) -> bool {
        if !self.is_open() {
            return false;
        }
        let lost_pending = self.lost.iter().any(|r| !self.acked.contains_range(r.start.max(self.acked_prefix)..r.end));
        lost_pending
            || self.fin_lost
            || (self.sent_offset < self.write_offset && self.sent_offset < self.max_stream_data)
            || (self.finished && !self.fin_sent && self.sent_offset == self.write_offset)
    }

    /// The next STREAM frame to send, at most `max_len` payload bytes:
    /// retransmission of lost, still unacknowledged data first (lowest offset
    /// first, never data acknowledged meanwhile), then new data within both
    /// the peer's MAX_STREAM_DATA and `conn_credit` (new bytes allowed by
    /// connection flow control, `SendCredit::available()`); a FIN-only chunk
    /// (`len == 0`) when only the FIN remains. Retransmissions ignore flow
    /// control: they lie below data already sent within it.
    ///
    /// Marks the chunk as sent; the caller copies its bytes with
    /// [`copy_chunk`](Self::copy_chunk) and reports its fate with
    /// [`on_ack`](Self::on_ack) / [`on_lost`](Self::on_lost).
    pub fn next_chunk(&mut self, max_len: usize, conn_credit: u64) -> Option<SendChunk> {
        if !self.is_open() {
            return None;
        }
        let max_len = max_len as u64;

        // 1. Lost data, skipping what was acknowledged since it was declared lost.
        let retransmit = loop {
            let Some(r) = self.lost.first() else {
                break None;
            };
            let start = self.acked.first_gap_above(r.start.max(self.acked_prefix));
            if start >= r.end {
                self.lost.pop_min();
                continue;
            }
            // `start` is unacknowledged, so the first gap begins there.
            let stretch_end = self.acked.gaps(start..r.end).next().map_or(r.end, |g| g.end);
            break Some((start, stretch_end));
        };
        if let Some((start, stretch_end)) = retransmit {
            if max_len == 0 {
                return None;
            }
            let len = (stretch_end - start).min(max_len);
            let end = start + len;
            // Only the lowest range lies below `end`.
            self.lost.remove_below(end);
            let fin = self.fin_lost && end == self.write_offset;
            if fin {
                self.fin_lost = false;
            }
            return Some(SendChunk { offset: start, len: len as usize, fin, retransmission: true });
        }
        if self.fin_lost {
            // The FIN went out alone or with data acknowledged since.
            self.fin_lost = false;
            return Some(SendChunk { offset: self.write_offset, len: 0, fin: true, retransmission: true });
        }

        // 2. New data.
        if self.sent_offset < self.write_offset {
            let len = (self.write_offset - self.sent_offset).min(self.max_stream_data.saturating_sub(self.sent_offset)).min(conn_credit).min(max_len);
            if len == 0 {
                return None;
            }
            let offset = self.sent_offset;
            let end = offset + len;
            self.sent_offset = end;
            let fin = self.finished && end == self.write_offset;
            self.on_sent(fin);
            return Some(SendChunk { offset, len: len as usize, fin, retransmission: false });
        }
        if self.finished && !self.fin_sent {
            self.on_sent(true);
            return Some(SendChunk { offset: self.write_offset, len: 0, fin: true, retransmission: false });
        }
        None
    }

    fn on_sent(&mut self, fin: bool) {
        if fin {
            self.fin_sent = true;
            self.state = SendState::DataSent;
        } else if self.state == SendState::Ready {
            self.state = SendState::Send;
        }
    }

    /// Copies the payload of a chunk from [`next_chunk`](Self::next_chunk)
    /// into `out[..len]`. Returns false (copying nothing useful) if `out` is
    /// shorter than `len` or the bytes are no longer buffered (acknowledged or
    /// reset meanwhile).
    #[must_use]
    pub fn copy_chunk(&self, offset: u64, len: usize, out: &mut [u8]) -> bool {
        if !self.is_open() {
            return false;
        }
        // Data below the acknowledged prefix was freed: `copy` finds no
        // segment covering it and fails.
        out.get_mut(..len).is_some_and(|dst| self.buffer.copy(offset, dst))
    }

    /// A packet carrying `offset..offset + len` (and the FIN if `fin`) was
    /// acknowledged. Frees the acknowledged prefix; moves to "Data Recvd"
    /// once all data and the FIN are acknowledged.
    pub fn on_ack(&mut self, offset: u64, len: usize, fin: bool) {
        if !self.is_open() {
            return;
        }
        let end = offset.saturating_add(len as u64).min(self.sent_offset);
        let start = offset.max(self.acked_prefix);
        if start == self.acked_prefix && start < end {
            // The common case, acknowledgments arriving in send order: the
            // prefix grows and the set of ranges above it is not touched,
            // except for ranges the new prefix now reaches.
            self.acked_prefix = end;
            self.absorb_acked_ranges();
        } else if start < end {
            // The set is uncapped (see module docs), so this cannot fail.
            let _ = self.acked.insert(start..end);
        }
        if fin && self.fin_sent {
            self.fin_acked = true;
            self.fin_lost = false;
        }
        self.lost.remove_below(self.acked_prefix);
        self.buffer.free_below(self.acked_prefix);
        if self.finished && self.fin_acked && self.acked_prefix == self.write_offset {
            self.state = SendState::DataRecvd;
            self.buffer.clear();
            self.lost.clear();
            self.acked.clear();
        }
    }

    /// Moves the ranges acknowledged out of order that the prefix now reaches
    /// (overlapping or adjacent) into the prefix.
    fn absorb_acked_ranges(&mut self) {
        while let Some(first) = self.acked.first() {
            if first.start > self.acked_prefix {
                break;
            }
            self.acked_prefix = self.acked_prefix.max(first.end);
            self.acked.pop_min();
        }
    }

    /// A packet carrying `offset..offset + len` (and the FIN if `fin`) was
    /// declared lost: queue it for retransmission, except what is or will be
    /// acknowledged by the time it would be resent.
    pub fn on_lost(&mut self, offset: u64, len: usize, fin: bool) {
        if !self.is_open() {
            return;
        }
        let end = offset.saturating_add(len as u64).min(self.sent_offset);
        let start = offset.max(self.acked_prefix);
        if start < end && !self.acked.contains_range(start..end) {
            let _ = self.lost.insert(start..end);
        }
        if fin && self.fin_sent && !self.fin_acked {
            self.fin_lost = true;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn chunk(offset: u64, len: usize, fin: bool, retransmission: bool) -> SendChunk {
        SendChunk { offset, len, fin, retransmission }
    }

    fn payload(s: &SendStream, c: &SendChunk) -> Vec<u8> {
        let mut out = vec![0u8; c.len];
        assert!(s.copy_chunk(c.offset, c.len, &mut out));
        out
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 13 + 1) as u8).collect()
    }

    #[test]
    fn write_respects_buffer_limit_and_acks_free_space() {
        let mut s = SendStream::new(1000, 100);
        assert_eq!(s.write(&[1; 60]).unwrap(), 60);
        assert_eq!(s.write(&[2; 60]).unwrap(), 40, "only what fits");
        assert_eq!(s.write(&[3; 1]), Err(WriteError::Blocked));
        assert_eq!(s.write(&[]), Ok(0));
        assert_eq!(s.writable(), 0);
        let c = s.next_chunk(50, u64::MAX).unwrap();
        assert_eq!(c, chunk(0, 50, false, false));
        // Sending alone frees nothing; acknowledging does.
        assert_eq!(s.write(&[3; 1]), Err(WriteError::Blocked));
        s.on_ack(0, 50, false);
        assert_eq!(s.acked_offset(), 50);
        assert_eq!(s.buffered(), 50);
        assert_eq!(s.write(&[3; 70]).unwrap(), 50);
        assert_eq!(s.write_offset(), 150);
    }

    /// Copies in order, backwards (retransmissions), across segment ends and
    /// after acknowledged segments were dropped all return the written bytes,
    /// whatever segment the last copy left its hint at.
    #[test]
    fn write_parts_takes_all_or_nothing_and_can_end_the_stream() {
        let mut s = SendStream::new(1000, 100);
        assert_eq!(s.write_parts(&[&[1; 60], &[2; 41]], false), Err(WriteError::Blocked), "101 bytes do not fit in 100");
        assert_eq!(s.writable(), 100, "a refused write takes nothing");
        assert_eq!(s.write_parts(&[b"ab", b"", b"cde"], false), Ok(5));
        assert_eq!(s.write_offset(), 5);
        assert_eq!(s.write_parts(&[b"fg"], true), Ok(2));
        assert!(s.is_finished());
        assert_eq!(s.write_parts(&[b"h"], false), Err(WriteError::Finished));
        let c = s.next_chunk(100, u64::MAX).unwrap();
        assert_eq!(c, chunk(0, 7, true, false), "the FIN rides with the data");
        assert_eq!(payload(&s, &c), b"abcdefg");
        // A FIN alone, on a stream with nothing buffered.
        let mut t = SendStream::new(1000, 100);
        assert_eq!(t.write_parts(&[], true), Ok(0));
        assert_eq!(t.next_chunk(100, u64::MAX).unwrap(), chunk(0, 0, true, false));
    }

    #[test]
    fn copies_in_any_order_return_the_written_bytes() {
        let data: Vec<u8> = (0..4000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let mut s = SendStream::new(1 << 20, 1 << 20);
        // Segments of uneven sizes, some copied (tail), some zero-copy.
        let mut at = 0usize;
        for (i, len) in [5usize, 700, 3, 1200, 1, 900, 191, 1000].into_iter().enumerate() {
            let piece = &data[at..at + len];
            if i % 2 == 0 {
                s.write(piece).unwrap();
            } else {
                s.write_bytes(Bytes::copy_from_slice(piece)).unwrap();
            }
            at += len;
        }
        let _ = s.next_chunk(usize::MAX, u64::MAX).unwrap();
        let check = |s: &SendStream, off: usize, len: usize| {
            let mut out = vec![0u8; len];
            assert!(s.copy_chunk(off as u64, len, &mut out), "copy {off}+{len}");
            assert_eq!(out, &data[off..off + len], "copy {off}+{len}");
        };
        for off in (0..3900).step_by(97) {
            check(&s, off, 100);
        }
        for off in (0..3900).step_by(131).rev() {
            check(&s, off, 100);
        }
        // Acknowledge a prefix: the segments below it are dropped.
        s.on_ack(0, 1500, false);
        for off in [1500usize, 3000, 1600, 2000, 1900, 3899] {
            check(&s, off, 100);
        }
        assert!(!s.copy_chunk(100, 10, &mut [0u8; 10]), "acknowledged data is gone");
    }

    #[test]
    fn copy_chunk_spans_copied_and_zero_copy_segments() {
        let mut s = SendStream::new(1000, 1000);
        assert_eq!(s.write(b"hello ").unwrap(), 6);
        assert_eq!(s.write_bytes(Bytes::from_static(b"big ")).unwrap(), 4);
        assert_eq!(s.write(b"wor").unwrap(), 3);
        assert_eq!(s.write(b"ld").unwrap(), 2);
        let c = s.next_chunk(100, u64::MAX).unwrap();
        assert_eq!(c, chunk(0, 15, false, false));
        assert_eq!(payload(&s, &c), b"hello big world");
        let mut mid = [0u8; 7];
        assert!(s.copy_chunk(4, 7, &mut mid));
        assert_eq!(&mid, b"o big w");
        assert!(!s.copy_chunk(10, 6, &mut [0u8; 6]), "past the written data");
        assert!(!s.copy_chunk(0, 15, &mut [0u8; 10]), "output too short");
        // Acknowledged data is gone.
        s.on_ack(0, 8, false);
        assert!(!s.copy_chunk(0, 4, &mut [0u8; 4]));
        let mut rest = [0u8; 7];
        assert!(s.copy_chunk(8, 7, &mut rest));
        assert_eq!(&rest, b"g world");
    }

    #[test]
    fn write_bytes_takes_a_prefix_when_limited() {
        let mut s = SendStream::new(1000, 5);
        let b = Bytes::from_static(b"abcdefgh");
        assert_eq!(s.write_bytes(b.clone()).unwrap(), 5);
        assert_eq!(s.write_bytes(b), Err(WriteError::Blocked));
        let c = s.next_chunk(100, 100).unwrap();
        assert_eq!(payload(&s, &c), b"abcde");
    }

    #[test]
    fn flow_control_limits_new_data_and_blocked_reporting() {
        let mut s = SendStream::new(30, 1000);
        s.write(&data(100)).unwrap();
        assert_eq!(s.is_blocked(), None);
        assert_eq!(s.next_chunk(20, 10), Some(chunk(0, 10, false, false)), "connection credit");
        assert_eq!(s.next_chunk(20, 100), Some(chunk(10, 20, false, false)));
        assert_eq!(s.next_chunk(20, 100), None, "MAX_STREAM_DATA reached");
        assert_eq!(s.is_blocked(), Some(30));
        assert_eq!(s.poll_blocked(), Some(30));
        assert_eq!(s.poll_blocked(), None, "once per limit");
        assert!(!s.on_max_stream_data(20), "never decreases");
        assert!(!s.on_max_stream_data(30));
        assert_eq!(s.max_stream_data(), 30);
        assert!(s.on_max_stream_data(50));
        assert_eq!(s.is_blocked(), None);
        assert_eq!(s.next_chunk(100, 100), Some(chunk(30, 20, false, false)));
        assert_eq!(s.poll_blocked(), Some(50));
        // Zero connection credit: nothing new, but not stream-blocked either.
        s.on_max_stream_data(1000);
        assert_eq!(s.next_chunk(100, 0), None);
        assert_eq!(s.is_blocked(), None);
        assert!(s.has_data_to_send());
    }

    #[test]
    fn blocked_before_sending_moves_to_send_state() {
        let mut s = SendStream::new(0, 100);
        s.write(b"x").unwrap();
        assert_eq!(s.state(), SendState::Ready);
        assert_eq!(s.poll_blocked(), Some(0));
        assert_eq!(s.state(), SendState::Send);
    }

    #[test]
    fn retransmissions_first_lowest_offset_first() {
        let d = data(60);
        let mut s = SendStream::new(1000, 1000);
        s.write(&d).unwrap();
        let a = s.next_chunk(10, u64::MAX).unwrap();
        let b = s.next_chunk(10, u64::MAX).unwrap();
        let c = s.next_chunk(10, u64::MAX).unwrap();
        assert_eq!((a.offset, b.offset, c.offset), (0, 10, 20));
        s.on_lost(c.offset, c.len, c.fin);
        s.on_lost(a.offset, a.len, a.fin);
        assert_eq!(s.next_chunk(100, u64::MAX), Some(chunk(0, 10, false, true)));
        let r = s.next_chunk(4, u64::MAX).unwrap();
        assert_eq!(r, chunk(20, 4, false, true), "split by max_len");
        assert_eq!(payload(&s, &r), &d[20..24]);
        assert_eq!(s.next_chunk(100, u64::MAX), Some(chunk(24, 6, false, true)));
        // Then new data.
        assert_eq!(s.next_chunk(100, u64::MAX), Some(chunk(30, 30, false, false)));
        assert_eq!(s.next_chunk(100, u64::MAX), None);
        assert!(!s.has_data_to_send());
    }

    #[test]
    fn lost_data_acked_meanwhile_is_not_resent() {
        let mut s = SendStream::new(1000, 1000);
        s.write(&data(30)).unwrap();
        s.next_chunk(10, u64::MAX).unwrap();
        s.next_chunk(10, u64::MAX).unwrap();
        s.next_chunk(10, u64::MAX).unwrap();
        s.on_lost(0, 30, false);
        // A late ACK for the middle packet.
        s.on_ack(10, 10, false);
        assert_eq!(s.next_chunk(100, u64::MAX), Some(chunk(0, 10, false, true)));
        assert_eq!(s.next_chunk(100, u64::MAX), Some(chunk(20, 10, false, true)));
        assert_eq!(s.next_chunk(100, u64::MAX), None);
        // Losing an already-acknowledged range queues nothing.
        s.on_lost(10, 10, false);
        assert!(!s.has_data_to_send());
    }

    #[test]
    fn acks_out_of_order_advance_prefix_only_when_contiguous() {
        let mut s = SendStream::new(1000, 1000);
        s.write(&data(30)).unwrap();
        s.finish().unwrap();
        let a = s.next_chunk(10, u64::MAX).unwrap();
        let b = s.next_chunk(10, u64::MAX).unwrap();
        let c = s.next_chunk(10, u64::MAX).unwrap();
        assert_eq!(c, chunk(20, 10, true, false));
        assert_eq!(s.state(), SendState::DataSent);
        s.on_ack(c.offset, c.len, c.fin);
        assert_eq!(s.acked_offset(), 0);
        s.on_ack(b.offset, b.len, b.fin);
        assert_eq!(s.acked_offset(), 0);
        assert_eq!(s.buffered(), 30);
        assert_eq!(s.state(), SendState::DataSent);
        s.on_ack(a.offset, a.len, a.fin);
        assert_eq!(s.acked_offset(), 30);
        assert_eq!(s.buffered(), 0);
        assert_eq!(s.state(), SendState::DataRecvd);
        assert!(s.is_closed());
        assert_eq!(s.next_chunk(100, u64::MAX), None);
        // Duplicate or bogus acks after the end are harmless.
        s.on_ack(0, 1000, true);
        s.on_lost(0, 1000, true);
        assert_eq!(s.state(), SendState::DataRecvd);
    }

    /// The in-order fast path of `on_ack` and the out-of-order set agree
    /// with a byte map of what was acknowledged, for acknowledgments in any
    /// order, overlapping (retransmissions) and adjacent to each other.
    #[test]
    fn acked_prefix_matches_a_byte_map_for_any_ack_order() {
        const LEN: usize = 400;
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for round in 0..200 {
            let mut s = SendStream::new(1 << 20, 1 << 20);
            s.write(&data(LEN)).unwrap();
            while s.next_chunk(50, u64::MAX).is_some() {}
            let mut map = [false; LEN];
            for _ in 0..60 {
                // In-order acknowledgments most of the time, as on a clean
                // path; anywhere (and overlapping) otherwise.
                let at = if round % 2 == 0 && rand(3) > 0 { s.acked_offset() } else { rand(LEN as u64) };
                let len = 1 + rand(40);
                s.on_ack(at, len as usize, false);
                let end = (at + len).min(LEN as u64);
                map[at as usize..end as usize].iter_mut().for_each(|b| *b = true);
                let expect = map.iter().position(|b| !b).unwrap_or(LEN) as u64;
                assert_eq!(s.acked_offset(), expect, "round {round}");
                assert_eq!(s.buffered(), LEN as u64 - expect, "round {round}");
            }
        }
    }

    #[test]
    fn fin_handling() {
        // FIN attached to the last data chunk.
        let mut s = SendStream::new(1000, 1000);
        s.write(b"abc").unwrap();
        s.finish().unwrap();
        assert_eq!(s.write(b"x"), Err(WriteError::Finished));
        assert_eq!(s.next_chunk(100, 100), Some(chunk(0, 3, true, false)));
        assert_eq!(s.next_chunk(100, 100), None);

        // FIN-only chunk when finishing after all data went out; also with
        // max_len 0 and no connection credit (a FIN carries no bytes).
        let mut s = SendStream::new(1000, 1000);
        s.write(b"abc").unwrap();
        assert_eq!(s.next_chunk(100, 100), Some(chunk(0, 3, false, false)));
        s.finish().unwrap();
        assert!(s.has_data_to_send());
        assert_eq!(s.next_chunk(0, 0), Some(chunk(3, 0, true, false)));
        assert_eq!(s.state(), SendState::DataSent);
        s.on_ack(0, 3, false);
        assert_eq!(s.state(), SendState::DataSent, "FIN not yet acknowledged");
        // The FIN-only frame is lost: retransmitted alone.
        s.on_lost(3, 0, true);
        assert_eq!(s.next_chunk(100, 0), Some(chunk(3, 0, true, true)));
        s.on_ack(3, 0, true);
        assert_eq!(s.state(), SendState::DataRecvd);

        // A lost FIN rides on the retransmitted tail.
        let mut s = SendStream::new(1000, 1000);
        s.write(&data(20)).unwrap();
        s.finish().unwrap();
        s.next_chunk(10, 100).unwrap();
        assert_eq!(s.next_chunk(10, 100), Some(chunk(10, 10, true, false)));
        s.on_lost(10, 10, true);
        assert_eq!(s.next_chunk(6, 0), Some(chunk(10, 6, false, true)));
        assert_eq!(s.next_chunk(6, 0), Some(chunk(16, 4, true, true)));
        assert_eq!(s.next_chunk(6, 0), None);

        // Empty stream: only a FIN.
        let mut s = SendStream::new(0, 0);
        s.finish().unwrap();
        assert_eq!(s.next_chunk(100, 0), Some(chunk(0, 0, true, false)));
        s.on_ack(0, 0, true);
        assert_eq!(s.state(), SendState::DataRecvd);
    }

    #[test]
    fn reset_stops_transmission() {
        let mut s = SendStream::new(1000, 1000);
        s.write(&data(50)).unwrap();
        s.next_chunk(20, u64::MAX).unwrap();
        s.on_lost(0, 20, false);
        assert_eq!(s.reset(42), Some(20), "final size = bytes sent");
        assert_eq!(s.state(), SendState::ResetSent { error_code: 42, final_size: 20 });
        assert_eq!(s.reset_frame(), Some((42, 20)));
        assert_eq!(s.next_chunk(100, u64::MAX), None, "no retransmission after reset");
        assert!(!s.has_data_to_send());
        assert_eq!(s.write(b"x"), Err(WriteError::Reset));
        assert_eq!(s.finish(), Err(WriteError::Reset));
        assert_eq!(s.buffered(), 0, "buffers dropped");
        assert!(!s.copy_chunk(0, 20, &mut [0u8; 20]));
        assert_eq!(s.reset(1), None, "already reset");
        assert!(!s.is_closed());
        s.on_reset_acked();
        assert_eq!(s.state(), SendState::ResetRecvd { error_code: 42, final_size: 20 });
        assert_eq!(s.reset_frame(), None);
        assert!(s.is_closed());
    }

    #[test]
    fn stop_sending_triggers_reset_with_peer_code() {
        let mut s = SendStream::new(1000, 1000);
        s.write(&data(10)).unwrap();
        s.next_chunk(4, u64::MAX).unwrap();
        assert_eq!(s.on_stop_sending(7), Some(4));
        assert_eq!(s.reset_frame(), Some((7, 4)));
        assert_eq!(s.write(b"x"), Err(WriteError::Stopped(7)));
        assert_eq!(s.on_stop_sending(8), None, "already reset");
        assert_eq!(s.stop_code(), Some(7));
        // Nothing to reset once everything is acknowledged.
        let mut t = SendStream::new(1000, 1000);
        t.finish().unwrap();
        t.next_chunk(10, 10).unwrap();
        t.on_ack(0, 0, true);
        assert_eq!(t.on_stop_sending(7), None);
        assert_eq!(t.state(), SendState::DataRecvd);
    }

    #[test]
    fn acks_and_losses_outside_sent_data_are_clamped() {
        let mut s = SendStream::new(1000, 1000);
        s.write(&data(20)).unwrap();
        s.next_chunk(10, u64::MAX).unwrap();
        s.on_ack(5, usize::MAX, false);
        s.on_lost(u64::MAX - 1, 10, false);
        s.on_lost(0, 100, false);
        // Only 0..5 is lost-and-unacked; 10..20 was never sent.
        assert_eq!(s.next_chunk(100, 0), Some(chunk(0, 5, false, true)));
        assert_eq!(s.next_chunk(100, u64::MAX), Some(chunk(10, 10, false, false)));
    }
}
