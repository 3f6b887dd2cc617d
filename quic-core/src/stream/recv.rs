//! The receiving part of a stream (RFC 9000 §3.2): reassembly of STREAM frames
//! into an ordered byte stream, final size rules (§4.5), stream-level receive
//! flow control (§4.1), RESET_STREAM and STOP_SENDING.
//!
//! Memory is bounded on any peer input:
//! - bytes: buffered data lies between the read offset and the advertised
//!   flow-control limit, so at most one window;
//! - tracking: the set of received ranges is capped (`max_ranges`), and
//!   buffered chunks are coalesced so that any two neighbouring chunks hold
//!   more than [`MERGE_LIMIT`] bytes together. The chunk count is therefore at
//!   most `ranges + 2 * buffered_bytes / MERGE_LIMIT + 1`, whatever the frame
//!   sizes (RFC 9000 §21.7: limit the size of tracking data structures), plus
//!   one empty chunk at the read offset that keeps reserved room (below).
//!
//! A transfer's in-order data is appended to the room reserved at the end of
//! the last chunk ([`BULK_RESERVE`] once a stream has carried
//! [`KEEP_NODE_AFTER`] bytes, within its flow-control window). When the reader
//! takes everything buffered, the chunk's unused room stays as an empty chunk
//! at the new read offset, so the next packets land in the same allocation:
//! one allocation per reserve rather than per packet, and the `Bytes` handed
//! out share it, so a reader that keeps them holds no more than the data and
//! one partly filled reserve.
//!
//! The connection-level side is left to the caller: `on_stream_frame` and
//! `on_reset` return how much new flow-control credit the peer used, and
//! [`RecvStream::take_released`] how much credit the application freed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};

use super::flow::RecvWindow;
use crate::error::{Error, TransportErrorCode};
use crate::range_set::RangeSet;
use crate::varint::VarInt;

/// Default cap on the number of disjoint received ranges per stream. A
/// well-behaved peer creates one hole per lost packet in flight on the stream;
/// 1024 holes covers a 1 MiB window of 1 KiB frames at 50 % loss.
pub const DEFAULT_MAX_RECV_RANGES: usize = 1024;

/// Neighbouring buffered chunks are merged while their combined length stays
/// at or below this, which bounds per-chunk overhead for tiny frames while
/// bounding the bytes copied by a merge.
pub const MERGE_LIMIT: usize = 4096;

/// Bytes read after which a drained stream keeps its reassembly map's node
/// (see `RecvStream::release_if_drained`) and reserves [`BULK_RESERVE`] for
/// in-order data: it is carrying a transfer, not a request or control data.
const KEEP_NODE_AFTER: u64 = 64 * 1024;

/// Room reserved for in-order data on a stream past [`KEEP_NODE_AFTER`]
/// (within the flow-control window): about twenty 1,500-byte packets.
pub const BULK_RESERVE: usize = 32 * 1024;

/// RFC 9000 §19.8: the largest offset a stream can reach.
const MAX_OFFSET: u64 = VarInt::MAX.into_inner();

/// RFC 9000 §3.2 receiving-part states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvState {
    /// Receiving data; the final size is not known.
    Recv,
    /// A FIN arrived: the final size is known, some data is missing.
    SizeKnown,
    /// All data up to the final size has arrived; not all of it was read.
    DataRecvd,
    /// The application read everything up to the FIN (terminal).
    DataRead,
    /// RESET_STREAM arrived; the application has not yet been told.
    ResetRecvd { error_code: u64 },
    /// The application was told about the reset (terminal).
    ResetRead { error_code: u64 },
}

/// Result of [`RecvStream::read`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOutcome {
    /// Bytes written to the start of the caller's buffer.
    pub bytes: usize,
    /// The end of the stream was reached: every byte has been read.
    pub fin: bool,
}

/// Result of [`RecvStream::read_chunk`]: the next contiguous bytes, without
/// copying them out of the reassembly buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadChunk {
    /// Stream offset of `data[0]`.
    pub offset: u64,
    pub data: Bytes,
    /// The end of the stream was reached with this chunk (`data` may be empty).
    pub fin: bool,
}

/// Why a read returned no data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamReadError {
    /// Nothing to read yet; more data is expected.
    Blocked,
    /// The peer reset the stream with this application error code.
    Reset(u64),
    /// The application stopped the stream ([`RecvStream::stop`]).
    Stopped,
}

impl core::fmt::Display for StreamReadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StreamReadError::Blocked => f.write_str("no stream data available yet"),
            StreamReadError::Reset(code) => write!(f, "stream reset by peer with code {code}"),
            StreamReadError::Stopped => f.write_str("stream was stopped locally"),
        }
    }
}

impl std::error::Error for StreamReadError {}

/// The receiving part of a stream.
#[derive(Debug)]
pub struct RecvStream {
    state: RecvState,
    /// Stream-level flow control; its `received` is the highest offset seen.
    window: RecvWindow,
    /// Offsets received so far, from 0 (not maintained once stopped).
    received: RangeSet,
    /// Buffered data at or above `read_offset`, keyed by stream offset. Chunks
    /// never overlap; their union is `received` minus `0..read_offset`.
    chunks: BTreeMap<u64, BytesMut>,
    read_offset: u64,
    final_size: Option<u64>,
    /// Set by [`stop`](Self::stop): data is no longer buffered.
    stop_code: Option<u64>,
    /// Offset up to which connection-level credit has been freed (read or
    /// discarded), and how much of that was handed out by `take_released`.
    released: u64,
    released_reported: u64,
}

impl RecvStream {
    /// A stream in the "Recv" state whose flow-control limit starts at
    /// `window.limit()`, with [`DEFAULT_MAX_RECV_RANGES`].
    pub fn new(window: RecvWindow) -> Self {
        Self::with_max_ranges(window, DEFAULT_MAX_RECV_RANGES)
    }

    /// As [`new`](Self::new), with a cap on the number of disjoint received
    /// ranges (at least 1 is used).
    pub fn with_max_ranges(window: RecvWindow, max_ranges: usize) -> Self {
        Self {
            state: RecvState::Recv,
            window,
            received: RangeSet::new(max_ranges.max(1)),
            chunks: BTreeMap::new(),
            read_offset: 0,
            final_size: None,
            stop_code: None,
            released: 0,
            released_reported: 0,
        }
    }

    pub fn state(&self) -> RecvState {
        self.state
    }

    /// Known once a FIN or RESET_STREAM arrived.
    pub fn final_size(&self) -> Option<u64> {
        self.final_size
    }

    /// Bytes delivered to the application so far.
    pub fn read_offset(&self) -> u64 {
        self.read_offset
    }

    /// The highest offset received (flow-control credit used by the peer).
    pub fn highest_received(&self) -> u64 {
        self.window.received()
    }

    /// The MAX_STREAM_DATA limit currently advertised.
    pub fn max_stream_data(&self) -> u64 {
        self.window.limit()
    }

    pub fn window(&self) -> &RecvWindow {
        &self.window
    }

    /// The code passed to [`stop`](Self::stop), if the stream was stopped.
    pub fn stop_code(&self) -> Option<u64> {
        self.stop_code
    }

    /// Bytes readable right now without waiting for more frames.
    pub fn readable_len(&self) -> u64 {
        if self.stop_code.is_some() || matches!(self.state, RecvState::ResetRecvd { .. }) {
            return 0;
        }
        self.received.first_gap_above(self.read_offset).saturating_sub(self.read_offset)
    }

    /// Whether a read would return something other than `Blocked`: data, the
    /// end of the stream, or a reset.
    pub fn is_readable(&self) -> bool {
        self.readable_len() > 0 || matches!(self.state, RecvState::ResetRecvd { .. }) || (self.stop_code.is_none() && self.final_size == Some(self.read_offset))
    }

    /// Whether the connection can forget the stream: everything (data or
    /// reset) was delivered to the application, or the application stopped
    /// the stream and the final size — all the flow-control accounting the
    /// stream still owes the connection — is known.
    pub fn is_closed(&self) -> bool {
        match self.state {
            RecvState::DataRead | RecvState::ResetRead { .. } => true,
            _ => self.stop_code.is_some() && self.final_size.is_some(),
        }
    }

    /// Number of buffered chunks (for tests and memory accounting).
    pub fn buffered_chunks(&self) -> usize {
        self.chunks.len()
    }

    /// Bytes held in the reassembly buffer.
    pub fn buffered_bytes(&self) -> usize {
        self.chunks.values().map(|c| c.len()).sum()
    }

    /// Bytes allocated for the reassembly buffer (held plus reserved).
    pub fn buffered_capacity(&self) -> usize {
        self.chunks.values().map(|c| c.capacity()).sum()
    }

    /// RFC 9000 §4.5 checks for a frame ending at `end`.
    fn check_final_size(&self, end: u64, fin: bool) -> Result<(), Error> {
        match self.final_size {
            Some(fs) if end > fs => Err(Error::new(TransportErrorCode::FINAL_SIZE_ERROR, "stream data beyond the final size")),
            Some(fs) if fin && end != fs => Err(Error::new(TransportErrorCode::FINAL_SIZE_ERROR, "final size of the stream changed")),
            None if fin && end < self.window.received() => Err(Error::new(TransportErrorCode::FINAL_SIZE_ERROR, "final size below data already received")),
            _ => Ok(()),
        }
    }

    /// Processes a STREAM frame carrying `data` at `offset`.
    ///
    /// Returns the number of bytes by which the highest received offset grew:
    /// the caller adds it to the connection-level received count (RFC 9000
    /// §4.1: connection flow control counts the sum of highest offsets).
    ///
    /// Errors (nothing changes when one is returned):
    /// - FRAME_ENCODING_ERROR: offset + length above 2^62 - 1 (§19.8);
    /// - FINAL_SIZE_ERROR: data beyond a known final size, a FIN with a
    ///   different final size, or a FIN below data already received (§4.5);
    /// - FLOW_CONTROL_ERROR: data beyond the advertised MAX_STREAM_DATA (§4.1);
    /// - INTERNAL_ERROR: the frame would need more than `max_ranges` holes in
    ///   the reassembly buffer (a fragmentation attack, §21.7). The state is
    ///   unchanged, so a caller may instead drop the packet unacknowledged.
    pub fn on_stream_frame(&mut self, offset: u64, data: &[u8], fin: bool) -> Result<u64, Error> {
        let end = u64::try_from(data.len())
            .ok()
            .and_then(|len| offset.checked_add(len))
            .filter(|&end| end <= MAX_OFFSET)
            .ok_or(Error::frame_encoding("stream data beyond offset 2^62 - 1"))?;
        self.check_final_size(end, fin)?;
        let delta = end.saturating_sub(self.window.received());
        if !self.window.allows(delta) {
            return Err(Error::new(TransportErrorCode::FLOW_CONTROL_ERROR, "stream data beyond MAX_STREAM_DATA"));
        }
        match self.state {
            RecvState::Recv | RecvState::SizeKnown => {}
            // All data, or the final size with a reset, is already known; the
            // checks above ensured this frame agrees with it (delta is 0).
            RecvState::DataRecvd | RecvState::DataRead | RecvState::ResetRecvd { .. } | RecvState::ResetRead { .. } => return Ok(0),
        }

        let stopped = self.stop_code.is_some();
        // Bytes below the read offset were delivered already.
        let start = offset.max(self.read_offset);
        if !stopped && start < end && !self.received.can_insert(start..end) {
            return Err(Error::new(TransportErrorCode::INTERNAL_ERROR, "stream reassembly buffer too fragmented"));
        }

        // Validated: commit.
        self.window.on_received(delta)?;
        if fin {
            self.final_size = Some(end);
            self.state = RecvState::SizeKnown;
        }
        if stopped {
            // RFC 9000 §3.5: after STOP_SENDING, data is discarded on arrival
            // but still counts for flow control; its credit is free at once.
            self.window.on_consumed(delta);
            self.released = self.window.received();
            return Ok(delta);
        }
        if start < end {
            for gap in self.received.gaps(start..end) {
                let lo = usize::try_from(gap.start - offset).unwrap_or(usize::MAX);
                let hi = usize::try_from(gap.end - offset).unwrap_or(usize::MAX);
                if let Some(piece) = data.get(lo..hi) {
                    let reserve = self.in_order_reserve();
                    store_piece(&mut self.chunks, self.read_offset, self.final_size, reserve, gap.start, piece);
                }
            }
            // Cannot fail: can_insert was checked above.
            let _ = self.received.insert(start..end);
        }
        self.update_data_recvd();
        Ok(delta)
    }

    /// Room to reserve for a new chunk of in-order data: [`MERGE_LIMIT`],
    /// or on a transfer [`BULK_RESERVE`] capped by what the flow-control
    /// window still allows (memory the peer can make us reserve stays
    /// within the window it was given).
    fn in_order_reserve(&self) -> usize {
        if self.read_offset < KEEP_NODE_AFTER {
            return MERGE_LIMIT;
        }
        let open = usize::try_from(self.window.limit().saturating_sub(self.read_offset)).unwrap_or(usize::MAX);
        open.clamp(MERGE_LIMIT, BULK_RESERVE)
    }

    fn update_data_recvd(&mut self) {
        if let (RecvState::SizeKnown, Some(fs)) = (self.state, self.final_size) {
            if self.received.contains_range(0..fs) {
                self.state = RecvState::DataRecvd;
            }
        }
    }

    /// Processes a RESET_STREAM frame. Returns the flow-control credit used
    /// beyond the previous highest offset (`final_size - highest`), for the
    /// connection-level count.
    ///
    /// Errors: FINAL_SIZE_ERROR if `final_size` differs from a known final
    /// size or is below data already received (§4.5); FLOW_CONTROL_ERROR if
    /// it exceeds MAX_STREAM_DATA.
    ///
    /// RFC 9000 §3.2: a reset arriving once all data was received ("Data
    /// Recvd") is suppressed here, so the application still reads the data.
    /// Otherwise buffered data is discarded and the next read reports the reset.
    pub fn on_reset(&mut self, error_code: u64, final_size: u64) -> Result<u64, Error> {
        let highest = self.window.received();
        match self.final_size {
            Some(fs) if fs != final_size => {
                return Err(Error::new(TransportErrorCode::FINAL_SIZE_ERROR, "RESET_STREAM final size differs from the known final size"));
            }
            None if final_size < highest => {
                return Err(Error::new(TransportErrorCode::FINAL_SIZE_ERROR, "RESET_STREAM final size below data already received"));
            }
            _ => {}
        }
        let delta = final_size.saturating_sub(highest);
        if !self.window.allows(delta) {
            return Err(Error::new(TransportErrorCode::FLOW_CONTROL_ERROR, "RESET_STREAM final size beyond MAX_STREAM_DATA"));
        }
        match self.state {
            RecvState::Recv | RecvState::SizeKnown => {}
            RecvState::DataRecvd | RecvState::DataRead | RecvState::ResetRecvd { .. } | RecvState::ResetRead { .. } => return Ok(0),
        }
        self.window.on_received(delta)?;
        self.final_size = Some(final_size);
        self.state = RecvState::ResetRecvd { error_code };
        self.discard_buffered();
        Ok(delta)
    }

    /// Drops buffered data and frees all credit up to the highest offset.
    fn discard_buffered(&mut self) {
        self.chunks.clear();
        self.received.clear();
        self.window.on_consumed(u64::MAX);
        self.released = self.window.received();
    }

    /// The application no longer wants data (it will send STOP_SENDING with
    /// `error_code`, RFC 9000 §3.5). Buffered data is dropped; later data is
    /// discarded on arrival but still counted for flow control.
    ///
    /// Returns whether a STOP_SENDING frame should be sent: only in the
    /// "Recv" and "Size Known" states (RFC 9000 §19.5), and only once.
    pub fn stop(&mut self, error_code: u64) -> bool {
        if self.stop_code.is_some() || matches!(self.state, RecvState::DataRead | RecvState::ResetRead { .. }) {
            return false;
        }
        self.stop_code = Some(error_code);
        self.discard_buffered();
        matches!(self.state, RecvState::Recv | RecvState::SizeKnown)
    }

    /// Connection-level credit freed since the last call: bytes read by the
    /// application, or discarded after a reset or stop. Pass it to the
    /// connection's [`RecvWindow::on_consumed`].
    pub fn take_released(&mut self) -> u64 {
        let n = self.released.saturating_sub(self.released_reported);
        self.released_reported = self.released;
        n
    }

    /// The MAX_STREAM_DATA value to send, if one is due. Only in the "Recv"
    /// state: once the final size is known, no more credit is needed (§3.2).
    pub fn should_send_max_stream_data(&self) -> Option<u64> {
        if self.state != RecvState::Recv || self.stop_code.is_some() {
            return None;
        }
        self.window.should_send_max_data()
    }

    /// Records that MAX_STREAM_DATA `value` was sent; see
    /// [`RecvWindow::on_max_data_sent`] for auto-tuning.
    pub fn on_max_stream_data_sent(&mut self, value: u64, now: Instant, rtt: Duration) {
        self.window.on_max_data_sent(value, now, rtt);
    }

    /// Reports a reset or stop to the reader, moving "Reset Recvd" to
    /// "Reset Read".
    fn check_readable(&mut self) -> Result<(), StreamReadError> {
        match self.state {
            RecvState::ResetRecvd { error_code } => {
                self.state = RecvState::ResetRead { error_code };
                Err(StreamReadError::Reset(error_code))
            }
            RecvState::ResetRead { error_code } => Err(StreamReadError::Reset(error_code)),
            _ if self.stop_code.is_some() => Err(StreamReadError::Stopped),
            _ => Ok(()),
        }
    }

    /// Accounts `n` bytes delivered to the application.
    fn on_delivered(&mut self, n: usize) {
        let n = n as u64;
        self.read_offset += n;
        self.window.on_consumed(n);
        self.released = self.read_offset;
    }

    /// Whether the reader is at the end of the stream; moves to "Data Read".
    fn at_fin(&mut self) -> bool {
        let fin = self.final_size == Some(self.read_offset);
        if fin && self.state == RecvState::DataRecvd {
            self.state = RecvState::DataRead;
        }
        fin
    }

    /// An emptied map still holds its root node (a few hundred bytes). A
    /// stream that has carried little so far (an HTTP/3 control or QPACK
    /// stream, a CRYPTO stream, a small request) gives it back, so a quiet
    /// connection holds none; a stream past [`KEEP_NODE_AFTER`] bytes keeps
    /// it rather than allocate it again for every packet of a transfer.
    fn release_if_drained(&mut self) {
        if self.chunks.is_empty() && self.read_offset < KEEP_NODE_AFTER {
            self.chunks = BTreeMap::new();
        }
    }

    /// Copies in-order data into `out`, across as many buffered chunks as fit.
    ///
    /// `Ok` with `fin: true` once every byte has been read (also on later
    /// calls). `Err(Blocked)` if nothing is available yet (and `out` is not
    /// empty); `Err(Reset(code))` after a RESET_STREAM; `Err(Stopped)` after
    /// [`stop`](Self::stop).
    pub fn read(&mut self, out: &mut [u8]) -> Result<ReadOutcome, StreamReadError> {
        self.check_readable()?;
        let mut written = 0usize;
        while written < out.len() {
            let Some(entry) = self.chunks.first_entry() else {
                break;
            };
            if *entry.key() != self.read_offset {
                break; // a hole before the next chunk
            }
            let Some(dst) = out.get_mut(written..) else {
                break;
            };
            let take = entry.get().len().min(dst.len());
            if let (Some(d), Some(s)) = (dst.get_mut(..take), entry.get().get(..take)) {
                d.copy_from_slice(s);
            }
            if take == entry.get().len() {
                entry.remove();
            } else {
                let mut rest = entry.remove();
                rest.advance(take);
                self.chunks.insert(self.read_offset + take as u64, rest);
            }
            self.on_delivered(take);
            written += take;
        }
        self.release_if_drained();
        let fin = self.at_fin();
        if written == 0 && !fin && !out.is_empty() {
            return Err(StreamReadError::Blocked);
        }
        Ok(ReadOutcome { bytes: written, fin })
    }

    /// Returns up to `max` in-order bytes without copying them: the front of
    /// the next buffered chunk. `Err` as for [`read`](Self::read).
    pub fn read_chunk(&mut self, max: usize) -> Result<ReadChunk, StreamReadError> {
        self.check_readable()?;
        let offset = self.read_offset;
        let front_ready = self.chunks.first_key_value().is_some_and(|(&k, c)| k == offset && !c.is_empty());
        if front_ready && max > 0 {
            // The first entry is the one at `offset`: take it without a
            // second search.
            if let Some(entry) = self.chunks.first_entry() {
                let mut chunk = entry.remove();
                // The last chunk of a transfer, read whole, with room left in
                // its reserve and more data to come: its unused room stays,
                // re-keyed at the new read offset, for the packets that
                // follow. (Not on short streams: an idle connection's control
                // streams hold no reserve.)
                let keep_room = self.chunks.is_empty()
                    && offset >= KEEP_NODE_AFTER
                    && chunk.len() <= max
                    && chunk.capacity() - chunk.len() >= MERGE_LIMIT / 2
                    && self.final_size != Some(offset + chunk.len() as u64);
                // Either way the rest of the chunk (data beyond `max`, or the
                // kept room) goes back at the offset after what is handed out.
                let data = if chunk.len() > max || keep_room {
                    let head = chunk.split_to(chunk.len().min(max)).freeze();
                    self.chunks.insert(offset + head.len() as u64, chunk);
                    head
                } else {
                    chunk.freeze()
                };
                self.on_delivered(data.len());
                self.release_if_drained();
                let fin = self.at_fin();
                return Ok(ReadChunk { offset, data, fin });
            }
        }
        let fin = self.at_fin();
        if fin || (front_ready && max == 0) {
            return Ok(ReadChunk { offset, data: Bytes::new(), fin });
        }
        Err(StreamReadError::Blocked)
    }
}

/// Stores `piece` at `start` (a range not yet buffered), merging it with a
/// neighbouring chunk when the two together stay within [`MERGE_LIMIT`].
/// Keeps the invariant that two adjacent chunks are together longer than the
/// limit (see the module docs).
fn store_piece(chunks: &mut BTreeMap<u64, BytesMut>, read_offset: u64, final_size: Option<u64>, reserve: usize, start: u64, piece: &[u8]) {
    let end = start + piece.len() as u64;
    // In-order arrival, the common case: the piece continues the last
    // buffered chunk and fits its reserved room. Append without searching
    // the map (four lookups below). Nothing lies after the last chunk, and
    // it only grows, so the neighbour invariant still holds.
    if let Some(mut last) = chunks.last_entry() {
        let k = *last.key();
        let tail = last.get_mut();
        if k + tail.len() as u64 == start && tail.capacity() - tail.len() >= piece.len() {
            tail.extend_from_slice(piece);
            return;
        }
    }
    let mut key = None;
    // Whether the piece continues what is buffered or delivered.
    let mut follows = start == read_offset;
    if let Some((&k, left)) = chunks.range_mut(..start).next_back() {
        follows = k + left.len() as u64 == start;
        if follows && left.len() + piece.len() <= MERGE_LIMIT {
            left.extend_from_slice(piece);
            key = Some(k);
        }
    }
    let key = match key {
        Some(k) => k,
        None => {
            // A small piece continuing the data with nothing buffered after
            // it is the newest in-order data, and the next packet's piece
            // will be merged into it: room for that up front, instead of a
            // reallocation (and copy) per merge. Only then: pieces after a
            // gap get their own size, or a peer sending a byte every other
            // byte would make us reserve a chunk per byte. Nor when the
            // piece ends the stream (a whole request in one frame): nothing
            // will be merged, and an exactly sized chunk is handed to the
            // reader without a shared header.
            let grows = follows && piece.len() <= MERGE_LIMIT / 2 && chunks.range(start..).next().is_none() && final_size != Some(end);
            let mut chunk = BytesMut::with_capacity(if grows { reserve } else { piece.len() });
            chunk.extend_from_slice(piece);
            chunks.insert(start, chunk);
            start
        }
    };
    let cur_len = chunks.get(&key).map_or(0, |c| c.len());
    let right_fits = chunks.get(&end).is_some_and(|r| cur_len + r.len() <= MERGE_LIMIT);
    if right_fits {
        if let Some(right) = chunks.remove(&end) {
            if let Some(cur) = chunks.get_mut(&key) {
                cur.extend_from_slice(&right);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn stream(window: u64) -> RecvStream {
        RecvStream::new(RecvWindow::new(window, window))
    }

    #[test]
    fn in_order_pieces_share_a_reserved_chunk_and_pieces_after_gaps_do_not_reserve() {
        let d = data(8192);
        // In order, 1,000 bytes at a time: merged into reserved chunks.
        let mut s = stream(1 << 20);
        for i in 0..8 {
            s.on_stream_frame(i * 1000, &d[i as usize * 1000..(i as usize + 1) * 1000], false).unwrap();
        }
        assert_eq!(s.buffered_bytes(), 8000);
        assert!(s.buffered_chunks() <= 2, "{}", s.buffered_chunks());
        // A byte every other byte: each piece has its own small chunk, not
        // a reservation for merges that cannot come.
        let mut t = stream(1 << 20);
        for i in 0..500u64 {
            t.on_stream_frame(1 + 2 * i, &d[..1], false).unwrap();
        }
        assert_eq!(t.buffered_bytes(), 500);
        assert!(t.buffered_capacity() < 500 * 64, "{} bytes allocated for 500 buffered", t.buffered_capacity());
    }

    fn read_all(s: &mut RecvStream) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        let mut buf = [0u8; 7]; // small on purpose: reads cross chunks
        loop {
            match s.read(&mut buf) {
                Ok(o) => {
                    out.extend_from_slice(&buf[..o.bytes]);
                    if o.fin {
                        return (out, true);
                    }
                }
                Err(StreamReadError::Blocked) => return (out, false),
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + 3) as u8).collect()
    }

    fn code(e: Error) -> TransportErrorCode {
        e.code
    }

    #[test]
    fn out_of_order_reassembly() {
        let d = data(30);
        let mut s = stream(100);
        assert_eq!(s.on_stream_frame(20, &d[20..30], true).unwrap(), 30);
        assert_eq!(s.state(), RecvState::SizeKnown);
        assert_eq!(s.read(&mut [0; 8]), Err(StreamReadError::Blocked));
        assert_eq!(s.on_stream_frame(10, &d[10..20], false).unwrap(), 0);
        assert_eq!(s.readable_len(), 0);
        assert_eq!(s.on_stream_frame(0, &d[0..10], false).unwrap(), 0);
        assert_eq!(s.state(), RecvState::DataRecvd);
        assert_eq!(s.readable_len(), 30);
        let (out, fin) = read_all(&mut s);
        assert_eq!(out, d);
        assert!(fin);
        assert_eq!(s.state(), RecvState::DataRead);
        assert!(s.is_closed());
        assert_eq!(s.take_released(), 30);
        // Reads after the end keep reporting fin.
        assert_eq!(s.read(&mut [0; 4]), Ok(ReadOutcome { bytes: 0, fin: true }));
    }

    #[test]
    fn duplicate_and_overlapping_data() {
        let d = data(40);
        let mut s = stream(100);
        assert_eq!(s.on_stream_frame(0, &d[0..10], false).unwrap(), 10);
        assert_eq!(s.on_stream_frame(5, &d[5..15], false).unwrap(), 5);
        assert_eq!(s.on_stream_frame(0, &d[0..15], false).unwrap(), 0, "pure duplicate");
        assert_eq!(s.on_stream_frame(30, &d[30..40], false).unwrap(), 25);
        // Spans a hole with data on both sides.
        assert_eq!(s.on_stream_frame(12, &d[12..35], false).unwrap(), 0);
        assert_eq!(s.buffered_bytes(), 40, "each byte stored once");
        let mut buf = [0u8; 20];
        assert_eq!(s.read(&mut buf).unwrap(), ReadOutcome { bytes: 20, fin: false });
        assert_eq!(&buf, &d[0..20]);
        // Already-delivered bytes are discarded, new ones kept.
        assert_eq!(s.on_stream_frame(0, &d[0..20], false).unwrap(), 0);
        assert_eq!(s.buffered_bytes(), 20);
        let (rest, fin) = read_all(&mut s);
        assert_eq!(rest, &d[20..40]);
        assert!(!fin);
    }

    #[test]
    fn conflicting_retransmission_keeps_first_copy() {
        let mut s = stream(100);
        s.on_stream_frame(0, b"abcd", false).unwrap();
        s.on_stream_frame(2, b"XXYY", false).unwrap();
        let (out, _) = read_all(&mut s);
        assert_eq!(out, b"abcdYY");
    }

    #[test]
    fn final_size_errors() {
        // Data beyond a known final size.
        let mut s = stream(100);
        s.on_stream_frame(0, &[1; 10], true).unwrap();
        let e = s.on_stream_frame(10, &[1], false).unwrap_err();
        assert_eq!(code(e), TransportErrorCode::FINAL_SIZE_ERROR);
        assert_eq!(e.code.0, 0x06);
        // A zero-length frame at the final size is fine; beyond it is not.
        assert_eq!(s.on_stream_frame(10, &[], false).unwrap(), 0);
        assert_eq!(code(s.on_stream_frame(11, &[], false).unwrap_err()), TransportErrorCode::FINAL_SIZE_ERROR);

        // A FIN changing the final size, downwards and upwards.
        let mut s = stream(100);
        s.on_stream_frame(5, &[1; 5], true).unwrap();
        assert_eq!(code(s.on_stream_frame(0, &[1; 4], true).unwrap_err()), TransportErrorCode::FINAL_SIZE_ERROR);
        assert_eq!(code(s.on_stream_frame(0, &[1; 12], true).unwrap_err()), TransportErrorCode::FINAL_SIZE_ERROR);
        // The same FIN again is accepted.
        assert_eq!(s.on_stream_frame(5, &[1; 5], true).unwrap(), 0);

        // A FIN below data already received.
        let mut s = stream(100);
        s.on_stream_frame(20, &[1; 10], false).unwrap();
        let e = s.on_stream_frame(0, &[1; 10], true).unwrap_err();
        assert_eq!(code(e), TransportErrorCode::FINAL_SIZE_ERROR);
        assert_eq!(s.final_size(), None, "state unchanged on error");
        assert_eq!(s.state(), RecvState::Recv);

        // RESET_STREAM with a different final size than the FIN.
        let mut s = stream(100);
        s.on_stream_frame(0, &[1; 10], true).unwrap();
        assert_eq!(code(s.on_reset(7, 11).unwrap_err()), TransportErrorCode::FINAL_SIZE_ERROR);
        assert_eq!(code(s.on_reset(7, 9).unwrap_err()), TransportErrorCode::FINAL_SIZE_ERROR);

        // RESET_STREAM below data already received.
        let mut s = stream(100);
        s.on_stream_frame(0, &[1; 10], false).unwrap();
        assert_eq!(code(s.on_reset(7, 9).unwrap_err()), TransportErrorCode::FINAL_SIZE_ERROR);
        assert_eq!(s.state(), RecvState::Recv);

        // Data and FIN after a reset must agree with the reset's final size.
        let mut s = stream(100);
        assert_eq!(s.on_reset(3, 50).unwrap(), 50);
        assert_eq!(code(s.on_stream_frame(45, &[1; 6], false).unwrap_err()), TransportErrorCode::FINAL_SIZE_ERROR);
        assert_eq!(code(s.on_stream_frame(0, &[1; 10], true).unwrap_err()), TransportErrorCode::FINAL_SIZE_ERROR);
        assert_eq!(s.on_stream_frame(40, &[1; 10], true).unwrap(), 0);
        assert_eq!(code(s.on_reset(3, 51).unwrap_err()), TransportErrorCode::FINAL_SIZE_ERROR);
        assert_eq!(s.on_reset(3, 50).unwrap(), 0, "repeated reset");
    }

    #[test]
    fn flow_control_violation() {
        let mut s = stream(100);
        assert_eq!(s.on_stream_frame(90, &[0; 10], false).unwrap(), 100, "exactly at the limit");
        let e = s.on_stream_frame(95, &[0; 6], false).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::FLOW_CONTROL_ERROR);
        assert_eq!(e.code.0, 0x03);
        assert_eq!(s.highest_received(), 100);
        let mut s = stream(100);
        assert_eq!(s.on_reset(0, 101).unwrap_err().code, TransportErrorCode::FLOW_CONTROL_ERROR);
        // Offsets past 2^62 - 1 are a frame encoding error (RFC 9000 §19.8).
        let e = s.on_stream_frame(MAX_OFFSET, &[0], false).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::FRAME_ENCODING_ERROR);
        let e = s.on_stream_frame(u64::MAX, &[0], false).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::FRAME_ENCODING_ERROR);
    }

    #[test]
    fn reads_across_chunks_and_partial_chunks() {
        // 3000-byte frames: two neighbours exceed MERGE_LIMIT, so each stays
        // its own chunk and reads must cross chunk boundaries.
        let d = data(30_000);
        let mut s = stream(100_000);
        for i in (0..10usize).rev() {
            s.on_stream_frame(i as u64 * 3000, &d[i * 3000..i * 3000 + 3000], i == 9).unwrap();
        }
        assert_eq!(s.state(), RecvState::DataRecvd);
        assert_eq!(s.buffered_chunks(), 10);
        let mut buf = [0u8; 1777];
        let mut out = Vec::new();
        let mut fin = false;
        while !fin {
            let o = s.read(&mut buf).unwrap();
            assert!(o.bytes == buf.len() || o.fin, "fills the buffer until the end");
            out.extend_from_slice(&buf[..o.bytes]);
            fin = o.fin;
        }
        assert_eq!(out, d);
        assert_eq!(s.read_offset(), 30_000);
        assert_eq!(s.buffered_chunks(), 0);
    }

    #[test]
    fn read_chunk_is_zero_copy_and_bounded() {
        let mut s = stream(100);
        s.on_stream_frame(0, b"hello world", true).unwrap();
        let c = s.read_chunk(5).unwrap();
        assert_eq!(c, ReadChunk { offset: 0, data: Bytes::from_static(b"hello"), fin: false });
        let c = s.read_chunk(100).unwrap();
        assert_eq!(c.offset, 5);
        assert_eq!(&c.data[..], b" world");
        assert!(c.fin);
        assert_eq!(s.state(), RecvState::DataRead);
        let c = s.read_chunk(100).unwrap();
        assert!(c.data.is_empty() && c.fin);
        let mut t = stream(100);
        assert_eq!(t.read_chunk(10), Err(StreamReadError::Blocked));
        t.on_stream_frame(3, b"x", false).unwrap();
        assert_eq!(t.read_chunk(10), Err(StreamReadError::Blocked), "hole at 0..3");
    }

    #[test]
    fn empty_stream_with_fin_only() {
        let mut s = stream(100);
        assert_eq!(s.on_stream_frame(0, &[], true).unwrap(), 0);
        assert_eq!(s.state(), RecvState::DataRecvd);
        assert_eq!(s.read(&mut [0; 4]), Ok(ReadOutcome { bytes: 0, fin: true }));
        assert_eq!(s.state(), RecvState::DataRead);
    }

    #[test]
    fn reset_discards_and_releases_credit() {
        let mut s = stream(100);
        s.on_stream_frame(0, &[1; 10], false).unwrap();
        s.on_stream_frame(20, &[1; 10], false).unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(s.read(&mut buf).unwrap().bytes, 4);
        assert_eq!(s.take_released(), 4);
        assert_eq!(s.on_reset(9, 40).unwrap(), 10, "40 - highest 30");
        assert_eq!(s.state(), RecvState::ResetRecvd { error_code: 9 });
        assert_eq!(s.buffered_bytes(), 0);
        // Everything up to the final size is free for the connection now.
        assert_eq!(s.take_released(), 36);
        assert_eq!(s.take_released(), 0);
        assert!(s.is_readable());
        assert_eq!(s.read(&mut buf), Err(StreamReadError::Reset(9)));
        assert_eq!(s.state(), RecvState::ResetRead { error_code: 9 });
        assert!(s.is_closed());
        assert_eq!(s.read_chunk(4), Err(StreamReadError::Reset(9)));
        assert_eq!(s.should_send_max_stream_data(), None);
    }

    #[test]
    fn reset_after_all_data_is_suppressed() {
        let mut s = stream(100);
        s.on_stream_frame(0, b"abc", true).unwrap();
        assert_eq!(s.on_reset(1, 3).unwrap(), 0);
        assert_eq!(s.state(), RecvState::DataRecvd);
        let (out, fin) = read_all(&mut s);
        assert_eq!(out, b"abc");
        assert!(fin);
    }

    #[test]
    fn stop_discards_but_counts_for_flow_control() {
        let mut s = stream(100);
        s.on_stream_frame(0, &[1; 10], false).unwrap();
        assert!(s.stop(77));
        assert!(!s.stop(77), "STOP_SENDING only once");
        assert_eq!(s.stop_code(), Some(77));
        assert_eq!(s.buffered_bytes(), 0);
        assert_eq!(s.take_released(), 10);
        assert_eq!(s.on_stream_frame(10, &[1; 20], false).unwrap(), 20);
        assert_eq!(s.buffered_bytes(), 0);
        assert_eq!(s.take_released(), 20);
        assert_eq!(s.highest_received(), 30);
        // Flow control and final size are still enforced.
        assert_eq!(s.on_stream_frame(95, &[1; 10], false).unwrap_err().code, TransportErrorCode::FLOW_CONTROL_ERROR);
        assert!(!s.is_closed());
        assert_eq!(s.on_stream_frame(30, &[1; 5], true).unwrap(), 5);
        assert_eq!(s.take_released(), 5);
        assert!(s.is_closed(), "final size known after stop");
        assert_eq!(s.read(&mut [0; 4]), Err(StreamReadError::Stopped));
        assert_eq!(s.should_send_max_stream_data(), None);
        // Stopping when all data is in needs no STOP_SENDING.
        let mut t = stream(100);
        t.on_stream_frame(0, b"ab", true).unwrap();
        assert!(!t.stop(1));
        assert_eq!(t.stop_code(), Some(1));
    }

    #[test]
    fn max_stream_data_follows_reads() {
        let mut s = stream(100);
        s.on_stream_frame(0, &[0; 100], false).unwrap();
        assert_eq!(s.should_send_max_stream_data(), None, "nothing consumed yet");
        let mut buf = [0u8; 60];
        s.read(&mut buf).unwrap();
        assert_eq!(s.should_send_max_stream_data(), Some(160));
        s.on_max_stream_data_sent(160, Instant::now(), Duration::from_millis(50));
        assert_eq!(s.max_stream_data(), 160);
        assert_eq!(s.should_send_max_stream_data(), None);
        assert_eq!(s.on_stream_frame(100, &[0; 60], false).unwrap(), 60);
        // Once the final size is known no more credit is offered.
        s.on_stream_frame(160, &[], true).unwrap();
        s.read(&mut [0u8; 100]).unwrap();
        assert_eq!(s.should_send_max_stream_data(), None);
    }

    #[test]
    fn fragmentation_is_capped_without_state_change() {
        let mut s = RecvStream::with_max_ranges(RecvWindow::new(1000, 1000), 4);
        for i in 0..4u64 {
            s.on_stream_frame(i * 10 + 1, &[1], false).unwrap();
        }
        let e = s.on_stream_frame(100, &[1], false).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::INTERNAL_ERROR);
        assert_eq!(s.highest_received(), 32, "no change on refusal");
        // Data touching an existing range still fits.
        assert_eq!(s.on_stream_frame(32, &[1; 8], false).unwrap(), 8);
    }

    #[test]
    fn in_order_appends_interleaved_with_holes_duplicates_and_reads() {
        // A deterministic mix: mostly in order (the appending fast path),
        // some pieces held back and delivered late (holes behind the last
        // chunk), some sent twice, and reads of every size in between.
        let d = data(200_000);
        let mut s = stream(1 << 20);
        let (mut off, mut seed, mut late, mut out) = (0usize, 7u64, Vec::new(), Vec::new());
        let mut next = move || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        while off < d.len() {
            let len = (1 + next() % 1500).min(d.len() - off);
            let piece = (off, off + len);
            off += len;
            match next() % 10 {
                0 => late.push(piece),
                1 => {
                    s.on_stream_frame(piece.0 as u64, &d[piece.0..piece.1], false).unwrap();
                    s.on_stream_frame(piece.0 as u64, &d[piece.0..piece.1], false).unwrap();
                }
                _ => {
                    s.on_stream_frame(piece.0 as u64, &d[piece.0..piece.1], false).unwrap();
                }
            }
            if next() % 4 == 0 {
                if let Some((a, b)) = late.pop() {
                    s.on_stream_frame(a as u64, &d[a..b], false).unwrap();
                }
            }
            if next() % 3 == 0 {
                while let Ok(c) = s.read_chunk(next() % 5000 + 1) {
                    if c.data.is_empty() {
                        break;
                    }
                    assert_eq!(c.offset as usize, out.len());
                    out.extend_from_slice(&c.data);
                }
            }
            // The module's bound, plus the empty chunk keeping reserved room.
            assert!(s.buffered_chunks() <= s.received.len() + 2 * s.buffered_bytes() / MERGE_LIMIT + 2, "chunks {}", s.buffered_chunks());
        }
        for (a, b) in late {
            s.on_stream_frame(a as u64, &d[a..b], false).unwrap();
        }
        s.on_stream_frame(d.len() as u64, &[], true).unwrap();
        let (rest, fin) = read_all(&mut s);
        out.extend_from_slice(&rest);
        assert!(fin);
        assert_eq!(out, d);
    }

    #[test]
    fn a_transfer_read_packet_by_packet_fills_one_reserve_and_short_streams_keep_no_room() {
        let d = data(300_000);
        let mut s = stream(1 << 20);
        let mut prev: Option<Bytes> = None;
        let (mut contiguous, mut off) = (0, 0usize);
        while off < d.len() {
            let len = 1400.min(d.len() - off);
            s.on_stream_frame(off as u64, &d[off..off + len], false).unwrap();
            let c = s.read_chunk(usize::MAX).unwrap();
            assert_eq!((c.offset as usize, &c.data[..]), (off, &d[off..off + len]));
            if (off as u64) < KEEP_NODE_AFTER {
                // Below the transfer threshold: nothing stays reserved.
                assert_eq!(s.buffered_chunks(), 0);
            } else {
                assert!(s.buffered_capacity() <= BULK_RESERVE, "{}", s.buffered_capacity());
            }
            if let Some(p) = &prev {
                // The next packet's bytes follow the previous ones in memory:
                // the same allocation, not a new one per packet.
                contiguous += usize::from(c.data.as_ptr() == p.as_ptr().wrapping_add(p.len()));
            }
            prev = Some(c.data);
            off += len;
        }
        // Past 64 KiB, 22 packets of 1,400 B share each 32 KiB reserve.
        let packets_after = (d.len() - KEEP_NODE_AFTER as usize) / 1400;
        assert!(contiguous >= packets_after * 20 / 22, "{contiguous} of {packets_after}");
        // The reserve stays within the flow-control window: a window that
        // leaves 8 KiB open reserves no more than that.
        let mut w = stream(KEEP_NODE_AFTER + 8192);
        for off in (0..KEEP_NODE_AFTER as usize).step_by(1024) {
            w.on_stream_frame(off as u64, &d[off..off + 1024], false).unwrap();
            while w.read_chunk(usize::MAX).is_ok_and(|c| !c.data.is_empty()) {}
        }
        let off = KEEP_NODE_AFTER as usize;
        w.on_stream_frame(off as u64, &d[off..off + 1000], false).unwrap();
        assert!(w.buffered_capacity() <= 8192, "{}", w.buffered_capacity());
    }

    #[test]
    fn tiny_frames_are_coalesced() {
        let mut s = stream(1 << 20);
        for i in 0..20_000u64 {
            s.on_stream_frame(i, &[i as u8], false).unwrap();
        }
        assert_eq!(s.buffered_bytes(), 20_000);
        assert!(s.buffered_chunks() <= 2 * 20_000 / MERGE_LIMIT + 1, "chunks: {}", s.buffered_chunks());
        // Reverse order (prepend merges) too.
        let mut t = stream(1 << 20);
        for i in (0..20_000u64).rev() {
            t.on_stream_frame(i, &[i as u8], false).unwrap();
        }
        assert!(t.buffered_chunks() <= 2 * 20_000 / MERGE_LIMIT + 1, "chunks: {}", t.buffered_chunks());
        let (out, _) = read_all(&mut t);
        assert_eq!(out, (0..20_000u64).map(|i| i as u8).collect::<Vec<_>>());
    }
}
