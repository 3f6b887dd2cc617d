//! The QPACK decoder (RFC 9204 §2.2, §4.3 receiving side, §4.4 sending
//! side, §4.5).
//!
//! Sans-I/O: feed it encoder-stream bytes with
//! [`Decoder::feed_encoder_stream`] (any chunking), hand it each complete
//! encoded field section with [`Decoder::decode`], and send whatever
//! [`Decoder::write_decoder_stream`] produces on the decoder stream.
//!
//! Defences against a hostile encoder (RFC 9204 §7.3, §7.4):
//! * the dynamic table never exceeds the capacity we advertised;
//! * a partial encoder instruction is buffered only up to the longest valid
//!   instruction for that capacity, and its strings are length-checked
//!   before their bytes are awaited;
//! * at most `max_blocked_streams` sections wait for inserts, each at most
//!   a bounded size;
//! * every string is checked against the remaining field-section budget
//!   (`max_field_section_size`, counted as name + value + 32 per line,
//!   RFC 9114 §4.2.2) before it is allocated.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::error::QpackError;
use super::field::HeaderField;
use super::instructions::{DecoderInstruction, EncoderInstruction};
use super::prefix_int::{self, IntError};
use super::section_cache::DecodedCache;
use super::static_table;
use super::string::{self, StringError};
use super::table::{entry_size, DynamicTable};
use super::ENTRY_OVERHEAD;

/// Decoder settings: what we advertise to the peer's encoder, plus local
/// limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderConfig {
    /// SETTINGS_QPACK_MAX_TABLE_CAPACITY we send (RFC 9204 §5).
    pub max_table_capacity: u64,
    /// SETTINGS_QPACK_BLOCKED_STREAMS we send (RFC 9204 §5).
    pub max_blocked_streams: usize,
    /// SETTINGS_MAX_FIELD_SECTION_SIZE semantics (RFC 9114 §4.2.2): the
    /// largest decoded field section accepted, as the sum over lines of
    /// name + value + 32. `u64::MAX` for no limit.
    pub max_field_section_size: u64,
    /// Keep the last section without table references and its fields, so
    /// a byte-for-byte repeat is a clone (see [`super::section_cache`]).
    /// A client sets it: a server's responses repeat, its requests rarely
    /// do, and it would cost every server connection the memory.
    pub keep_last_static_section: bool,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        Self { max_table_capacity: 4096, max_blocked_streams: 16, max_field_section_size: 64 * 1024, keep_last_static_section: false }
    }
}

/// Outcome of [`Decoder::decode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeResult {
    /// The field lines, in order.
    Decoded(Vec<HeaderField>),
    /// The section needs inserts not yet received (RFC 9204 §2.1.2). The
    /// decoder keeps it; once [`Decoder::feed_encoder_stream`] lists the
    /// stream, call [`Decoder::resume`].
    Blocked,
}

/// A field section waiting for inserts.
#[derive(Debug)]
struct BlockedSection {
    required_insert_count: u64,
    base: u64,
    /// The field lines (the prefix is already parsed).
    lines: Vec<u8>,
}

/// The QPACK decoder.
#[derive(Debug)]
pub struct Decoder {
    config: DecoderConfig,
    table: DynamicTable,
    /// MaxEntries for Required Insert Count decoding (RFC 9204 §4.5.1.1).
    max_entries: u64,
    /// Tail of the encoder stream holding an incomplete instruction.
    encoder_buf: Vec<u8>,
    /// Longest partial instruction worth buffering.
    max_instruction_len: usize,
    blocked: BTreeMap<u64, BlockedSection>,
    /// Decoder instructions not yet handed out.
    pending: Vec<u8>,
    /// Our view of the encoder's Known Received Count (RFC 9204 §2.1.4).
    known_received_count: u64,
    /// The last section decoded, for a repeat of it (see
    /// [`super::section_cache`]). Allocated on the first decode: idle
    /// connections do not pay for it.
    last_decoded: Option<Box<DecodedCache>>,
}

fn decompression_err(e: IntError) -> QpackError {
    match e {
        IntError::Incomplete => QpackError::decompression("truncated field line"),
        IntError::Overflow => QpackError::decompression("integer overflow"),
    }
}

fn section_string_err(e: StringError) -> QpackError {
    match e {
        StringError::Incomplete => QpackError::decompression("truncated string literal"),
        StringError::IntegerOverflow => QpackError::decompression("string length overflow"),
        StringError::TooLong => QpackError::too_large("field section exceeds the size limit"),
        StringError::Huffman(_) => QpackError::decompression("invalid Huffman string"),
    }
}

impl Decoder {
    pub fn new(config: DecoderConfig) -> Self {
        let cap = config.max_table_capacity;
        // Longest valid instruction: an entry is at most `cap` bytes, so
        // name + value <= cap - 32 decoded; Huffman can expand a byte to 30
        // bits (< 4 bytes); plus the integers (< 11 bytes each, three).
        let max_instruction_len = usize::try_from(cap.saturating_mul(4).saturating_add(64)).unwrap_or(usize::MAX);
        Self {
            config,
            table: DynamicTable::new(),
            max_entries: cap / ENTRY_OVERHEAD,
            encoder_buf: Vec::new(),
            max_instruction_len,
            blocked: BTreeMap::new(),
            pending: Vec::new(),
            known_received_count: 0,
            last_decoded: None,
        }
    }

    pub fn config(&self) -> &DecoderConfig {
        &self.config
    }

    /// The dynamic table, for inspection.
    pub fn table(&self) -> &DynamicTable {
        &self.table
    }

    /// Insertions received so far (RFC 9204 §2.1.4 "Insert Count").
    pub fn insert_count(&self) -> u64 {
        self.table.insert_count()
    }

    /// Streams whose section still waits for inserts.
    pub fn blocked_streams(&self) -> usize {
        let ic = self.table.insert_count();
        self.blocked.values().filter(|b| b.required_insert_count > ic).count()
    }

    /// Bytes of an incomplete encoder instruction currently buffered.
    pub fn buffered_encoder_bytes(&self) -> usize {
        self.encoder_buf.len()
    }

    /// Processes encoder-stream bytes (RFC 9204 §4.3). Chunks may split
    /// instructions anywhere. Returns the streams whose blocked section has
    /// become decodable (call [`Self::resume`] for each). Errors are
    /// QPACK_ENCODER_STREAM_ERROR connection errors.
    pub fn feed_encoder_stream(&mut self, data: &[u8]) -> Result<Vec<u64>, QpackError> {
        let before = self.table.insert_count();
        if self.encoder_buf.is_empty() {
            // Common case: parse straight from the input, keep only a tail.
            let used = self.process_instructions(data)?;
            self.keep_tail(data.get(used..).unwrap_or_default())?;
        } else {
            let mut buf = std::mem::take(&mut self.encoder_buf);
            buf.extend_from_slice(data);
            let used = self.process_instructions(&buf)?;
            buf.drain(..used);
            if buf.len() > self.max_instruction_len {
                return Err(QpackError::encoder_stream("encoder instruction too long"));
            }
            self.encoder_buf = buf;
        }
        let now = self.table.insert_count();
        if now == before {
            return Ok(Vec::new());
        }
        // RFC 9204 §2.2.1: a stream unblocks once the Insert Count reaches
        // its Required Insert Count.
        Ok(self.blocked.iter().filter(|(_, b)| b.required_insert_count > before && b.required_insert_count <= now).map(|(&id, _)| id).collect())
    }

    fn keep_tail(&mut self, tail: &[u8]) -> Result<(), QpackError> {
        if tail.len() > self.max_instruction_len {
            return Err(QpackError::encoder_stream("encoder instruction too long"));
        }
        self.encoder_buf.extend_from_slice(tail);
        Ok(())
    }

    /// Executes every complete instruction in `buf`; returns bytes used.
    fn process_instructions(&mut self, buf: &[u8]) -> Result<usize, QpackError> {
        // No name or value can exceed the largest capacity we allow.
        let max_string = usize::try_from(self.config.max_table_capacity).unwrap_or(usize::MAX);
        let mut used = 0;
        while let Some(rest) = buf.get(used..).filter(|r| !r.is_empty()) {
            let Some((inst, len)) = EncoderInstruction::parse(rest, max_string)? else {
                break;
            };
            self.execute(inst)?;
            used += len;
        }
        Ok(used)
    }

    fn execute(&mut self, inst: EncoderInstruction) -> Result<(), QpackError> {
        let (name, value) = match inst {
            EncoderInstruction::SetDynamicTableCapacity(c) => {
                // RFC 9204 §4.3.1: above our maximum is an error.
                if c > self.config.max_table_capacity {
                    return Err(QpackError::encoder_stream("capacity exceeds the maximum"));
                }
                self.table.set_capacity(c);
                return Ok(());
            }
            EncoderInstruction::InsertWithNameRef { is_static: true, name_index, value } => {
                // RFC 9204 §3.1: invalid static index on the encoder stream.
                let (name, _) = static_table::get(name_index).ok_or(QpackError::encoder_stream("invalid static table index"))?;
                (Bytes::from_static(name), value)
            }
            EncoderInstruction::InsertWithNameRef { is_static: false, name_index, value } => {
                // The name is cloned (a cheap `Bytes` handle) before the
                // insert may evict its entry (RFC 9204 §3.2.2).
                (self.encoder_stream_entry(name_index)?.0, value)
            }
            EncoderInstruction::InsertWithLiteralName { name, value } => (name, value),
            EncoderInstruction::Duplicate { relative_index } => self.encoder_stream_entry(relative_index)?,
        };
        self.table.insert(name, value).map_err(|_| QpackError::encoder_stream("entry larger than the table capacity"))?;
        Ok(())
    }

    /// Resolves an encoder-stream relative index (RFC 9204 §3.2.5, §2.2.3).
    fn encoder_stream_entry(&self, relative: u64) -> Result<(Bytes, Bytes), QpackError> {
        self.table
            .absolute_from_encoder_relative(relative)
            .and_then(|abs| self.table.get(abs))
            .map(|e| (e.name.clone(), e.value.clone()))
            .ok_or(QpackError::encoder_stream("reference to a missing dynamic entry"))
    }

    /// Decodes one complete encoded field section received on `stream_id`
    /// (RFC 9204 §4.5). Queues a Section Acknowledgment when the section
    /// referenced the dynamic table.
    ///
    /// The caller must not pass another section for a stream whose section
    /// is blocked (HTTP/3 stops reading such a stream, RFC 9204 §2.2.1);
    /// doing so is reported as QPACK_DECOMPRESSION_FAILED.
    pub fn decode(&mut self, stream_id: u64, section: &[u8]) -> Result<DecodeResult, QpackError> {
        if self.blocked.contains_key(&stream_id) {
            return Err(QpackError::decompression("new section on a blocked stream"));
        }
        let (required_insert_count, base, prefix_len) = self.parse_prefix(section)?;
        let lines = section.get(prefix_len..).unwrap_or_default();
        if required_insert_count > self.table.insert_count() {
            // RFC 9204 §2.2.1: over the promised number of blocked streams
            // is a connection error.
            if self.blocked_streams() >= self.config.max_blocked_streams {
                return Err(QpackError::decompression("too many blocked streams"));
            }
            // Bound what we hold: an encoding longer than 4x the decoded
            // limit cannot decode within it (Huffman expands < 4x; integers
            // and overhead are covered by the 32 bytes per line).
            if lines.len() as u64 > self.config.max_field_section_size.saturating_mul(4) {
                return Err(QpackError::too_large("blocked field section too large"));
            }
            self.blocked.insert(stream_id, BlockedSection { required_insert_count, base, lines: lines.to_vec() });
            return Ok(DecodeResult::Blocked);
        }
        // A section without table references (Required Insert Count 0):
        // the same bytes are the same fields, whatever the table holds.
        if required_insert_count == 0 && self.config.keep_last_static_section {
            if let Some(fields) = self.last_decoded.as_ref().and_then(|c| c.lookup(section)) {
                return Ok(DecodeResult::Decoded(fields.to_vec()));
            }
        }
        let fields = self.finish(stream_id, required_insert_count, base, lines)?;
        if required_insert_count == 0 && self.config.keep_last_static_section {
            self.last_decoded.get_or_insert_default().store(section, &fields);
        }
        Ok(DecodeResult::Decoded(fields))
    }

    /// Decodes the blocked section of `stream_id` if its inserts have
    /// arrived. `Ok(None)` if the stream has no section or is still blocked.
    pub fn resume(&mut self, stream_id: u64) -> Result<Option<Vec<HeaderField>>, QpackError> {
        match self.blocked.get(&stream_id) {
            Some(b) if b.required_insert_count <= self.table.insert_count() => {}
            _ => return Ok(None),
        }
        let Some(b) = self.blocked.remove(&stream_id) else {
            return Ok(None);
        };
        self.finish(stream_id, b.required_insert_count, b.base, &b.lines).map(Some)
    }

    /// Decodes the lines and queues the acknowledgment (or, for a section
    /// that is too large, a cancellation).
    fn finish(&mut self, stream_id: u64, required_insert_count: u64, base: u64, lines: &[u8]) -> Result<Vec<HeaderField>, QpackError> {
        match self.decode_lines(required_insert_count, base, lines) {
            Ok(fields) => {
                self.acknowledge(stream_id, required_insert_count);
                Ok(fields)
            }
            Err(e) => {
                if !e.is_connection_error() && required_insert_count > 0 {
                    // We abandon this section: release the encoder's
                    // references (RFC 9204 §2.2.2.2).
                    DecoderInstruction::StreamCancellation { stream_id }.encode(&mut self.pending);
                }
                Err(e)
            }
        }
    }

    /// RFC 9204 §4.4.1: a decoded section with Required Insert Count above
    /// 0 is acknowledged, which raises the Known Received Count (§2.1.4).
    fn acknowledge(&mut self, stream_id: u64, required_insert_count: u64) {
        if required_insert_count > 0 {
            DecoderInstruction::SectionAcknowledgment { stream_id }.encode(&mut self.pending);
            self.known_received_count = self.known_received_count.max(required_insert_count);
        }
    }

    /// Tells the decoder a stream was reset or abandoned (RFC 9204 §2.2.2.2):
    /// drops its blocked section and queues a Stream Cancellation (omitted
    /// when our maximum capacity is 0, as the RFC allows).
    pub fn cancel_stream(&mut self, stream_id: u64) {
        self.blocked.remove(&stream_id);
        if self.config.max_table_capacity > 0 {
            DecoderInstruction::StreamCancellation { stream_id }.encode(&mut self.pending);
        }
    }

    /// Whether [`Self::write_decoder_stream`] would write anything.
    pub fn has_decoder_stream_data(&self) -> bool {
        !self.pending.is_empty() || self.table.insert_count() > self.known_received_count
    }

    /// Appends pending decoder instructions (Section Acknowledgments, Stream
    /// Cancellations) and, if inserts are still unacknowledged, one Insert
    /// Count Increment covering them all (RFC 9204 §4.4.3, §2.2.2.3:
    /// coalesced until the caller flushes).
    pub fn write_decoder_stream(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.pending);
        let ic = self.table.insert_count();
        if ic > self.known_received_count {
            DecoderInstruction::InsertCountIncrement { increment: ic - self.known_received_count }.encode(out);
            self.known_received_count = ic;
        }
    }

    /// Parses the Encoded Field Section Prefix (RFC 9204 §4.5.1); returns
    /// (Required Insert Count, Base, prefix length).
    fn parse_prefix(&self, section: &[u8]) -> Result<(u64, u64, usize), QpackError> {
        let (encoded_ric, n) = prefix_int::decode(section, 8).map_err(decompression_err)?;
        let rest = section.get(n..).unwrap_or_default();
        let sign = rest.first().is_some_and(|b| b & 0x80 != 0);
        let (delta, m) = prefix_int::decode(rest, 7).map_err(decompression_err)?;
        let ric = self.decode_required_insert_count(encoded_ric)?;
        // RFC 9204 §4.5.1.2.
        let base = if sign {
            // "MUST treat a field block with a Sign bit of 1 as invalid if
            // the value of Required Insert Count is less than or equal to the
            // value of Delta Base."
            if ric <= delta {
                return Err(QpackError::decompression("negative Base"));
            }
            ric - delta - 1
        } else {
            ric.checked_add(delta).ok_or(QpackError::decompression("Base overflow"))?
        };
        Ok((ric, base, n + m))
    }

    /// RFC 9204 §4.5.1.1 Required Insert Count decoding.
    fn decode_required_insert_count(&self, encoded: u64) -> Result<u64, QpackError> {
        if encoded == 0 {
            return Ok(0);
        }
        let bad = QpackError::decompression("invalid Required Insert Count");
        let full_range = self.max_entries.checked_mul(2).ok_or(bad)?;
        if encoded > full_range {
            return Err(bad);
        }
        let max_value = self.table.insert_count().checked_add(self.max_entries).ok_or(bad)?;
        let max_wrapped = (max_value / full_range) * full_range;
        let mut ric = max_wrapped + encoded - 1;
        if ric > max_value {
            if ric <= full_range {
                return Err(bad);
            }
            ric -= full_range;
        }
        if ric == 0 {
            return Err(bad);
        }
        Ok(ric)
    }

    /// Resolves a field-section reference to absolute index `abs`
    /// (RFC 9204 §2.2.3: below RIC and not evicted).
    fn dynamic_entry(&self, ric: u64, abs: Option<u64>) -> Result<(Bytes, Bytes), QpackError> {
        let abs = abs.ok_or(QpackError::decompression("invalid relative index"))?;
        if abs >= ric {
            return Err(QpackError::decompression("reference at or beyond Required Insert Count"));
        }
        let e = self.table.get(abs).ok_or(QpackError::decompression("reference to an evicted entry"))?;
        Ok((e.name.clone(), e.value.clone()))
    }

    /// Decodes the field line representations (RFC 9204 §4.5.2 - §4.5.6).
    fn decode_lines(&self, ric: u64, base: u64, mut buf: &[u8]) -> Result<Vec<HeaderField>, QpackError> {
        let limit = self.config.max_field_section_size;
        let mut total: u64 = 0;
        // Room for a typical request or response at once, not grown 4 → 8.
        let mut fields = Vec::with_capacity(8);
        // Budget left for one string after `fixed` other bytes of this line.
        let budget = |total: u64, fixed: u64| -> usize {
            let left = limit.saturating_sub(total).saturating_sub(ENTRY_OVERHEAD + fixed);
            usize::try_from(left).unwrap_or(usize::MAX)
        };
        while let Some(&first) = buf.first() {
            let (name, value, never_index, used) = if first & 0x80 != 0 {
                // §4.5.2 Indexed Field Line: 1 T index(6+).
                let (idx, n) = prefix_int::decode(buf, 6).map_err(decompression_err)?;
                let (name, value) = if first & 0x40 != 0 {
                    let (n, v) = static_table::get(idx).ok_or(QpackError::decompression("invalid static table index"))?;
                    (Bytes::from_static(n), Bytes::from_static(v))
                } else {
                    self.dynamic_entry(ric, base.checked_sub(idx).and_then(|x| x.checked_sub(1)))?
                };
                (name, value, false, n)
            } else if first & 0x40 != 0 {
                // §4.5.4 Literal Field Line with Name Reference: 01 N T idx(4+).
                let (idx, n) = prefix_int::decode(buf, 4).map_err(decompression_err)?;
                let name = if first & 0x10 != 0 {
                    let (n, _) = static_table::get(idx).ok_or(QpackError::decompression("invalid static table index"))?;
                    Bytes::from_static(n)
                } else {
                    self.dynamic_entry(ric, base.checked_sub(idx).and_then(|x| x.checked_sub(1)))?.0
                };
                let rest = buf.get(n..).unwrap_or_default();
                let (value, m) = string::read(rest, 8, budget(total, name.len() as u64)).map_err(section_string_err)?;
                (name, value, first & 0x20 != 0, n + m)
            } else if first & 0x20 != 0 {
                // §4.5.6 Literal Field Line with Literal Name: 001 N H len(3+).
                let (name, n) = string::read(buf, 4, budget(total, 0)).map_err(section_string_err)?;
                let rest = buf.get(n..).unwrap_or_default();
                let (value, m) = string::read(rest, 8, budget(total, name.len() as u64)).map_err(section_string_err)?;
                (name, value, first & 0x10 != 0, n + m)
            } else if first & 0x10 != 0 {
                // §4.5.3 Indexed Field Line with Post-Base Index: 0001 idx(4+).
                let (idx, n) = prefix_int::decode(buf, 4).map_err(decompression_err)?;
                let (name, value) = self.dynamic_entry(ric, base.checked_add(idx))?;
                (name, value, false, n)
            } else {
                // §4.5.5 Literal Field Line with Post-Base Name Reference:
                // 0000 N idx(3+).
                let (idx, n) = prefix_int::decode(buf, 3).map_err(decompression_err)?;
                let name = self.dynamic_entry(ric, base.checked_add(idx))?.0;
                let rest = buf.get(n..).unwrap_or_default();
                let (value, m) = string::read(rest, 8, budget(total, name.len() as u64)).map_err(section_string_err)?;
                (name, value, first & 0x08 != 0, n + m)
            };
            // RFC 9114 §4.2.2 accounting, also covering indexed lines.
            total = total.saturating_add(entry_size(name.len(), value.len()));
            if total > limit {
                return Err(QpackError::too_large("field section exceeds the size limit"));
            }
            fields.push(HeaderField { name, value, never_index });
            buf = buf.get(used..).unwrap_or_default();
        }
        Ok(fields)
    }
}
