//! The QPACK encoder (RFC 9204 §2.1, §4.3 sending side, §4.4 receiving
//! side, §4.5).
//!
//! Sans-I/O: [`Encoder::encode`] turns a header list into an encoded field
//! section plus encoder-stream bytes (send those first, on the encoder
//! stream); [`Encoder::feed_decoder_stream`] takes the peer decoder's
//! acknowledgments.
//!
//! # Policy
//! A section whose plain size is within
//! [`EncoderConfig::static_only_max`] (a server's responses) uses the
//! static table and literals only, so it needs no acknowledgment. Otherwise,
//! for each field line, in order:
//! 1. Sensitive fields (see [`is_sensitive`], or `never_index` set by the
//!    caller) become literals with the 'N' bit and are never inserted
//!    (RFC 9204 §7.1.3). Their name may still come from the static table.
//! 2. A full static match is an indexed static line.
//! 3. A full dynamic match is referenced if it may be: the entry is not in
//!    the draining region, and either acknowledged or the stream may block.
//!    A draining match is re-inserted with Duplicate (§4.3.4) instead.
//! 4. Otherwise the line is inserted if it is worth it ([`worth_inserting`]:
//!    fits in 3/4 of the table), likely to repeat, and room can be made by
//!    evicting only evictable entries (§2.1.1); it is referenced if the
//!    stream may block. "Likely to repeat" means: the name is not
//!    referenceable yet (the entry makes it so), or the line was seen
//!    recently (a bounded fingerprint filter), or the stream may block and
//!    the entry is small (at most 1/32 of the table). A volatile value such
//!    as `:path` or `content-length` whose name is already referenceable
//!    counts as likely only when this very line was seen recently: most
//!    such values are one-offs, but a popular path or a common length
//!    repeats request after request, and then a literal (Huffman-coded by
//!    one side, decoded by the other, every time) costs far more than an
//!    index. The idea: an insert
//!    costs about as much as a literal; a section that may block uses it at
//!    once, while one that may not pays twice and profits only on a repeat,
//!    and large one-off values would flush entries that do repeat.
//! 5. Otherwise a literal, with the cheapest usable name reference (static,
//!    then dynamic), else a literal name.
//!
//! Strings are Huffman coded when that is shorter. A stream "may block" if
//! it already has a section that may block, or fewer than the peer's
//! SETTINGS_QPACK_BLOCKED_STREAMS streams currently may (§2.1.2).
//!
//! A repeat of the previous section's field list, when that section needed
//! no table change and nothing unacknowledged, is a copy of it (see
//! [`super::section_cache`]).
//!
//! Every dynamic reference in a section not yet acknowledged counts
//! against its entry; such entries, and entries whose insertion is not yet
//! acknowledged, are never evicted (§2.1.1).

use smallvec::SmallVec;

// Keyed by stream ID (bounded by stream limits).
use quic_core::fast_hash::FastHashMap;

use bytes::Bytes;

use super::error::QpackError;
use super::field::HeaderField;
use super::instructions::{self, DecoderInstruction};
use super::prefix_int;
use super::section_cache::SectionCache;
use super::static_table::{self, StaticMatch};
use super::string;
use super::table::{entry_size, DynamicTable};
use super::ENTRY_OVERHEAD;

/// Encoder settings: the peer decoder's SETTINGS plus local policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderConfig {
    /// Peer's SETTINGS_QPACK_MAX_TABLE_CAPACITY (RFC 9204 §5).
    pub max_table_capacity: u64,
    /// Peer's SETTINGS_QPACK_BLOCKED_STREAMS (RFC 9204 §5).
    pub max_blocked_streams: usize,
    /// Capacity we want to use; clamped to `max_table_capacity`. Set with a
    /// Set Dynamic Table Capacity instruction before the first insert.
    pub table_capacity: u64,
    /// Huffman-code strings when shorter.
    pub use_huffman: bool,
    /// Bound on field sections awaiting acknowledgment that reference the
    /// dynamic table; past it, sections use only the static table and
    /// literals, so a peer that never acknowledges cannot grow our state.
    pub max_unacked_sections: usize,
    /// A section whose plain size (names and values, two bytes per line
    /// for the representation and lengths) is at most this is encoded with
    /// the static table and literals only: Required Insert Count 0, so the
    /// peer's decoder sends no Section Acknowledgment for it (RFC 9204
    /// §4.4.1). A server sets this for responses: a client that has
    /// nothing else to send after a response would otherwise send the
    /// acknowledgment in a packet of its own, which the server must in turn
    /// acknowledge, two extra packets per request where a literal costs a
    /// few dozen bytes. 0: off.
    pub static_only_max: u64,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        Self { max_table_capacity: 0, max_blocked_streams: 0, table_capacity: 4096, use_huffman: true, max_unacked_sections: 1024, static_only_max: 0 }
    }
}

impl EncoderConfig {
    /// Settings received from the peer, with default local policy.
    pub fn from_peer(max_table_capacity: u64, max_blocked_streams: usize) -> Self {
        Self { max_table_capacity, max_blocked_streams, ..Self::default() }
    }
}

/// Why [`Encoder::set_capacity`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetCapacityError {
    /// Above the peer's SETTINGS_QPACK_MAX_TABLE_CAPACITY (RFC 9204 §3.2.3).
    AboveMaximum,
    /// Would evict an entry that is not evictable (RFC 9204 §4.3.1).
    WouldEvictReferenced,
}

/// An encoded section still awaiting acknowledgment.
#[derive(Debug)]
struct Section {
    required_insert_count: u64,
    /// Absolute indices referenced, one per reference (a response
    /// references a handful: inline, no allocation per section).
    refs: SectionRefs,
}

pub(super) type SectionRefs = SmallVec<[u64; 6]>;

/// A stream's outstanding sections, oldest first: nearly always one (the
/// header section), so it lives inline in the map entry.
type SectionQueue = SmallVec<[Section; 1]>;

/// Fields that are never indexed. The rule: `authorization` and
/// `proxy-authorization` always (credentials), and `cookie` / `set-cookie`
/// values shorter than 20 bytes (short, low-entropy values are the easiest
/// to recover by probing the table, RFC 9204 §7.1.3; long cookies are
/// compressed, as typical browsers send many of them). Names are expected in
/// lowercase, as HTTP/3 requires (RFC 9114 §4.2).
pub fn is_sensitive(name: &[u8], value: &[u8]) -> bool {
    match name {
        b"authorization" | b"proxy-authorization" => true,
        b"cookie" | b"set-cookie" => value.len() < 20,
        _ => false,
    }
}

/// Names whose values rarely repeat between sections: once the name can be
/// referenced (static table or an existing dynamic entry), their values are
/// inserted only when the same line was seen recently, to keep room for
/// lines that do repeat.
fn is_volatile(name: &[u8]) -> bool {
    matches!(name, b":path" | b"content-length" | b"content-range" | b"etag" | b"last-modified" | b"if-modified-since" | b"if-none-match" | b"age" | b"expires")
}

/// Whether inserting (name, value) can pay: it must fit in at most 3/4 of
/// the table, so one line cannot flush everything.
pub fn worth_inserting(name: &[u8], value: &[u8], capacity: u64) -> bool {
    entry_size(name.len(), value.len()) <= capacity / 4 * 3
}

/// The QPACK encoder.
#[derive(Debug)]
pub struct Encoder {
    config: EncoderConfig,
    table: DynamicTable,
    /// MaxEntries for Required Insert Count encoding (RFC 9204 §4.5.1.1),
    /// from the peer's maximum (not our chosen capacity).
    max_entries: u64,
    /// Whether the configured capacity has been announced.
    capacity_announced: bool,
    /// Known Received Count (RFC 9204 §2.1.4).
    known_received_count: u64,
    /// Per stream, unacknowledged sections with dynamic references, oldest
    /// first (RFC 9204 §2.2.2.1 acknowledges them in order).
    outstanding: FastHashMap<u64, SectionQueue>,
    outstanding_count: usize,
    /// Streams with an outstanding section whose Required Insert Count is
    /// above the Known Received Count: the blocked streams of RFC 9204
    /// §2.1.2. Kept current as sections come and go, so encoding a section
    /// does not scan every outstanding one (with 100 requests in flight
    /// that scan was a tenth of a server's CPU); a full recount happens
    /// only when the Known Received Count rises.
    blocking: usize,
    /// Tail of the decoder stream holding an incomplete instruction.
    decoder_buf: Vec<u8>,
    /// Field lines of the section being encoded (the prefix goes first but
    /// is known only at the end).
    scratch: Vec<u8>,
    /// Fingerprints of recently encoded (name, value) lines that were not
    /// inserted, direct-mapped: a bounded "seen before" filter.
    /// Allocated on first use: a connection that never encodes a literal
    /// (most idle ones) does not pay for it.
    seen: Option<Box<[u64; SEEN_SLOTS]>>,
    /// The last volatile lines encoded (see [`is_volatile`]), kept inline:
    /// every response carries one (`content-length`), so the heap filter
    /// above would be allocated by every connection that answers once.
    recent_volatile: RecentLines,
    /// The last section made of indexed lines only, or written without the
    /// table, for a repeat of the same header list (see
    /// [`super::section_cache`]). Allocated on the
    /// second such section: a connection that answered once and went idle
    /// (the memory target) does not pay for it.
    last_section: Option<Box<SectionCache>>,
    /// Sections that could have been remembered, up to 2.
    cacheable_sections: u8,
    /// Sections copied from `last_section`.
    section_cache_hits: u64,
}

/// A small ring of field-line fingerprints: "was this exact line among the
/// last [`RECENT_LINES`]?" A popular path or a common length, sent request
/// after request, is; a stream of one-off values never is.
#[derive(Debug, Default)]
struct RecentLines {
    slots: [u64; RECENT_LINES],
    next: usize,
}

const RECENT_LINES: usize = 16;

impl RecentLines {
    /// Whether `h` is among the recent lines; records it either way.
    fn seen_before(&mut self, h: u64) -> bool {
        if self.slots.contains(&h) {
            return true;
        }
        if let Some(slot) = self.slots.get_mut(self.next) {
            *slot = h;
        }
        self.next = (self.next + 1) % RECENT_LINES;
        false
    }
}

/// Size of the "seen before" filter.
const SEEN_SLOTS: usize = 256;

/// Fingerprint of a field line for the "seen before" filter (FNV-1a; a
/// collision only changes a compression choice).
fn fingerprint(name: &[u8], value: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in name.iter().chain(&[0xff]).chain(value) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h | 1 // 0 marks an empty slot
}

/// Longest decoder instruction: one byte plus ten continuation bytes.
const MAX_DECODER_INSTRUCTION: usize = 1 + prefix_int::MAX_CONTINUATION_BYTES;

impl Encoder {
    pub fn new(config: EncoderConfig) -> Self {
        Self {
            max_entries: config.max_table_capacity / ENTRY_OVERHEAD,
            config,
            table: DynamicTable::with_index(),
            capacity_announced: false,
            known_received_count: 0,
            outstanding: FastHashMap::default(),
            outstanding_count: 0,
            blocking: 0,
            decoder_buf: Vec::new(),
            scratch: Vec::new(),
            seen: None,
            recent_volatile: RecentLines::default(),
            last_section: None,
            cacheable_sections: 0,
            section_cache_hits: 0,
        }
    }

    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    /// The encoder's copy of the dynamic table.
    pub fn table(&self) -> &DynamicTable {
        &self.table
    }

    /// Known Received Count (RFC 9204 §2.1.4).
    pub fn known_received_count(&self) -> u64 {
        self.known_received_count
    }

    /// Sections that were a copy of the remembered one (the same header
    /// list, in a table state it is valid for).
    pub fn section_cache_hits(&self) -> u64 {
        self.section_cache_hits
    }

    /// Unacknowledged sections that reference the dynamic table.
    pub fn outstanding_sections(&self) -> usize {
        self.outstanding_count
    }

    /// Streams that could currently be blocked at the decoder (have an
    /// unacknowledged section with RIC above the Known Received Count).
    pub fn blocking_streams(&self) -> usize {
        self.blocking
    }

    /// Counts the blocked streams from scratch (after the Known Received
    /// Count rose, which can unblock any of them).
    fn recount_blocking(&mut self) {
        let krc = self.known_received_count;
        self.blocking = self.outstanding.values().filter(|q| q.iter().any(|s| s.required_insert_count > krc)).count();
    }

    fn stream_may_block_already(&self, stream_id: u64) -> bool {
        let krc = self.known_received_count;
        self.outstanding.get(&stream_id).is_some_and(|q| q.iter().any(|s| s.required_insert_count > krc))
    }

    /// RFC 9204 §2.1.1: evictable once acknowledged and unreferenced.
    fn evictable(krc: u64) -> impl Fn(u64, &super::table::Entry) -> bool {
        move |abs, e| abs < krc && e.refs_is_zero()
    }

    /// Emits Set Dynamic Table Capacity (RFC 9204 §4.3.1) and applies it.
    /// Refuses capacities above the peer's maximum, and reductions that
    /// would evict entries that are not evictable.
    pub fn set_capacity(&mut self, capacity: u64, out_encoder_stream: &mut Vec<u8>) -> Result<(), SetCapacityError> {
        if capacity > self.config.max_table_capacity {
            return Err(SetCapacityError::AboveMaximum);
        }
        if !self.table.can_shrink_to(capacity, Self::evictable(self.known_received_count)) {
            return Err(SetCapacityError::WouldEvictReferenced);
        }
        instructions::write_set_capacity(capacity, out_encoder_stream);
        self.table.set_capacity(capacity);
        if let Some(c) = &mut self.last_section {
            c.clear();
        }
        self.capacity_announced = true;
        Ok(())
    }

    /// Encodes `headers` as one field section for `stream_id`: appends the
    /// section to `out_field_section` and any encoder instructions to
    /// `out_encoder_stream` (to be sent on the encoder stream; the decoder
    /// can decode the section once those arrive). Sensitive fields are
    /// chosen by [`is_sensitive`].
    pub fn encode<N: AsRef<[u8]>, V: AsRef<[u8]>>(
        &mut self,
        stream_id: u64,
        headers: &[(N, V)],
        out_field_section: &mut Vec<u8>,
        out_encoder_stream: &mut Vec<u8>,
    ) {
        let lines = headers.iter().map(|(n, v)| (n.as_ref(), v.as_ref(), false));
        self.encode_lines(stream_id, lines, out_field_section, out_encoder_stream);
    }

    /// Like [`Self::encode`], honouring each field's `never_index` flag in
    /// addition to [`is_sensitive`].
    pub fn encode_fields(&mut self, stream_id: u64, fields: &[HeaderField], out_field_section: &mut Vec<u8>, out_encoder_stream: &mut Vec<u8>) {
        let lines = fields.iter().map(|f| (&f.name[..], &f.value[..], f.never_index));
        self.encode_lines(stream_id, lines, out_field_section, out_encoder_stream);
    }

    /// A response's field section: `:status` (RFC 9114 §4.3.2) first, then
    /// `fields`, without building a merged field list.
    pub fn encode_response_fields(
        &mut self,
        stream_id: u64,
        status: u16,
        fields: &[HeaderField],
        out_field_section: &mut Vec<u8>,
        out_encoder_stream: &mut Vec<u8>,
    ) {
        let mut digits = [0u8; 5];
        let text = decimal(status, &mut digits);
        let lines = core::iter::once((&b":status"[..], text, false)).chain(fields.iter().map(|f| (&f.name[..], &f.value[..], f.never_index)));
        self.encode_lines(stream_id, lines, out_field_section, out_encoder_stream);
    }

    fn encode_lines<'a>(
        &mut self,
        stream_id: u64,
        lines: impl Iterator<Item = (&'a [u8], &'a [u8], bool)> + Clone,
        out_field_section: &mut Vec<u8>,
        out_encoder_stream: &mut Vec<u8>,
    ) {
        if !self.capacity_announced {
            let cap = self.config.table_capacity.min(self.config.max_table_capacity);
            if cap > 0 {
                // Cannot fail: the table is empty and `cap` is within the
                // maximum.
                let _ = self.set_capacity(cap, out_encoder_stream);
            }
            self.capacity_announced = true;
        }
        let use_dynamic = self.table.capacity() > 0 && self.max_entries > 0 && self.outstanding_count < self.config.max_unacked_sections;
        if self.copy_last_section(stream_id, lines.clone(), use_dynamic, out_field_section) {
            return;
        }
        // Static only by choice (small) or because the peer allows no
        // table: the encoding then depends on the lines alone.
        let table_independent = self.table.capacity() == 0 || self.max_entries == 0 || self.is_small(lines.clone());
        let use_dynamic = use_dynamic && !table_independent;
        let already_blocking = self.stream_may_block_already(stream_id);
        let mut ctx = SectionCtx {
            base: self.table.insert_count(),
            may_block: already_blocking || self.blocking < self.config.max_blocked_streams,
            use_dynamic,
            refs: SectionRefs::new(),
            literal: false,
        };
        let (start, enc_start) = (out_field_section.len(), out_encoder_stream.len());
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        for (name, value, never_index) in lines.clone() {
            self.encode_line(&mut ctx, name, value, never_index, &mut buf, out_encoder_stream);
        }

        // RFC 9204 §4.5.1: prefix. RIC is one more than the largest
        // referenced absolute index.
        let ric = ctx.refs.iter().max().map_or(0, |&m| m + 1);
        if ric == 0 {
            out_field_section.extend_from_slice(&[0, 0]);
        } else {
            // §4.5.1.1 encoding, modulo 2 * MaxEntries.
            let encoded = ric % (2 * self.max_entries) + 1;
            prefix_int::encode(encoded, 8, 0, out_field_section);
            // §4.5.1.2 Base as sign + delta.
            if ctx.base >= ric {
                prefix_int::encode(ctx.base - ric, 7, 0x00, out_field_section);
            } else {
                prefix_int::encode(ric - ctx.base - 1, 7, 0x80, out_field_section);
            }
        }
        out_field_section.extend_from_slice(&buf);
        self.scratch = buf;
        // Remember a section that can never block and needs nothing sent
        // first: no encoder instruction, every reference acknowledged, and
        // indexed lines only unless written without the table (a literal
        // the table policy chose might be inserted by a later section).
        if (table_independent || !ctx.literal) && out_encoder_stream.len() == enc_start && ric <= self.known_received_count {
            let encoded = out_field_section.get(start..).unwrap_or_default();
            let state = (!table_independent).then(|| (self.table.insert_count(), self.table.capacity()));
            self.cacheable_sections = self.cacheable_sections.saturating_add(1).min(2);
            if self.cacheable_sections == 2 {
                self.last_section.get_or_insert_default().store(lines, encoded, &ctx.refs, ric, state);
            }
        }
        if ric > 0 {
            self.outstanding.entry(stream_id).or_default().push(Section { required_insert_count: ric, refs: ctx.refs });
            self.outstanding_count += 1;
            if ric > self.known_received_count && !already_blocking {
                self.blocking += 1;
            }
        }
    }

    /// Whether the section is within [`EncoderConfig::static_only_max`].
    fn is_small<'a>(&self, lines: impl Iterator<Item = (&'a [u8], &'a [u8], bool)>) -> bool {
        let max = self.config.static_only_max;
        max > 0 && lines.map(|(n, v, _)| (n.len() + v.len() + 2) as u64).sum::<u64>() <= max
    }

    /// Appends the remembered section if it encodes `lines` in the
    /// table's current state, counting its references like a fresh one's.
    fn copy_last_section<'a>(&mut self, stream_id: u64, lines: impl Iterator<Item = (&'a [u8], &'a [u8], bool)>, use_dynamic: bool, out: &mut Vec<u8>) -> bool {
        let Some(hit) = self.last_section.as_ref().and_then(|c| c.lookup(lines, self.table.insert_count(), self.table.capacity())) else {
            return false;
        };
        if hit.required_insert_count > 0 && !use_dynamic {
            return false;
        }
        out.extend_from_slice(hit.encoded);
        if hit.required_insert_count > 0 {
            for &abs in hit.refs {
                self.table.add_ref(abs);
            }
            let section = Section { required_insert_count: hit.required_insert_count, refs: hit.refs.clone() };
            self.outstanding.entry(stream_id).or_default().push(section);
            self.outstanding_count += 1;
        }
        self.section_cache_hits += 1;
        true
    }

    /// Whether `abs` may be referenced from the current section.
    fn referenceable(&self, ctx: &SectionCtx, abs: u64) -> bool {
        self.table.get(abs).is_some() && (abs < self.known_received_count || ctx.may_block) && !self.draining(abs)
    }

    /// Whether this line was encoded recently without being inserted;
    /// records it either way.
    fn seen_before(&mut self, name: &[u8], value: &[u8]) -> bool {
        let h = fingerprint(name, value);
        let seen = self.seen.get_or_insert_with(|| Box::new([0; SEEN_SLOTS]));
        let slot = &mut seen[(h % SEEN_SLOTS as u64) as usize];
        let hit = *slot == h;
        *slot = h;
        hit
    }

    /// RFC 9204 §2.1.1.1 draining index: entries in the oldest part of the
    /// table are not newly referenced once free space falls below a quarter
    /// of the capacity, so they can become evictable.
    fn draining(&self, abs: u64) -> bool {
        let reserve = self.table.capacity() / 4;
        let free = self.table.capacity().saturating_sub(self.table.size());
        let drain_bytes = reserve.saturating_sub(free);
        drain_bytes > 0 && self.table.bytes_through(abs) <= drain_bytes
    }

    fn add_ref(&mut self, ctx: &mut SectionCtx, abs: u64) {
        self.table.add_ref(abs);
        ctx.refs.push(abs);
    }

    /// Inserts if room can be made without evicting protected entries.
    fn can_insert(&self, size: u64) -> bool {
        self.table.can_insert(size, Self::evictable(self.known_received_count))
    }

    fn encode_line(&mut self, ctx: &mut SectionCtx, name: &[u8], value: &[u8], never_index: bool, out: &mut Vec<u8>, enc: &mut Vec<u8>) {
        let huffman = self.config.use_huffman;
        let sensitive = never_index || is_sensitive(name, value);
        let static_match = static_table::find(name, value);
        if !sensitive {
            if let Some(StaticMatch::Full(i)) = static_match {
                // §4.5.2 indexed, static.
                prefix_int::encode(u64::from(i), 6, 0xc0, out);
                return;
            }
        }
        if ctx.use_dynamic && !sensitive {
            if let Some(abs) = self.table.find(name, value) {
                if self.referenceable(ctx, abs) {
                    self.add_ref(ctx, abs);
                    write_indexed_dynamic(ctx.base, abs, out);
                    return;
                }
                // Draining or unacknowledged: duplicate it (§4.3.4) if the
                // copy could be referenced.
                if ctx.may_block && self.can_insert(entry_size(name.len(), value.len())) {
                    let relative = self.table.insert_count() - 1 - abs;
                    if let Some(e) = self.table.get(abs) {
                        let (n, v) = (e.name.clone(), e.value.clone());
                        if let Ok(new_abs) = self.table.insert(n, v) {
                            instructions::write_duplicate(relative, enc);
                            self.add_ref(ctx, new_abs);
                            write_indexed_dynamic(ctx.base, new_abs, out);
                            return;
                        }
                    }
                }
            } else {
                let static_name = match static_match {
                    Some(StaticMatch::Name(i) | StaticMatch::Full(i)) => Some(i),
                    None => None,
                };
                let dynamic_name = self.table.find_name(name);
                let name_known = static_name.is_some() || dynamic_name.is_some();
                // "Likely to repeat", see the module documentation.
                let small = entry_size(name.len(), value.len()) * 32 <= self.table.capacity();
                let repeat_likely = if name_known && is_volatile(name) {
                    // Only an exact recent repeat: the fingerprint filter
                    // never matches a stream of one-off values.
                    self.recent_volatile.seen_before(fingerprint(name, value))
                } else {
                    (ctx.may_block && small) || !name_known || self.seen_before(name, value)
                };
                if repeat_likely && worth_inserting(name, value, self.table.capacity()) && self.can_insert(entry_size(name.len(), value.len())) {
                    // §4.3.2 / §4.3.3: the cheapest name form. Encoder-stream
                    // references need no acknowledgment (§2.1.1).
                    if let Some(i) = static_name {
                        instructions::write_insert_with_name_ref(true, u64::from(i), value, huffman, enc);
                    } else if let Some(d) = dynamic_name {
                        let relative = self.table.insert_count() - 1 - d;
                        instructions::write_insert_with_name_ref(false, relative, value, huffman, enc);
                    } else {
                        instructions::write_insert_with_literal_name(name, value, huffman, enc);
                    }
                    let (n, v) = match dynamic_name.and_then(|d| self.table.get(d)) {
                        // Share the stored name rather than copy it again.
                        Some(e) => (e.name.clone(), Bytes::copy_from_slice(value)),
                        None => (Bytes::copy_from_slice(name), Bytes::copy_from_slice(value)),
                    };
                    if let Ok(new_abs) = self.table.insert(n, v) {
                        if ctx.may_block {
                            self.add_ref(ctx, new_abs);
                            write_indexed_dynamic(ctx.base, new_abs, out);
                            return;
                        }
                    }
                }
            }
        }
        self.write_literal(ctx, name, value, sensitive, static_match, out);
    }

    /// §4.5.4 - §4.5.6 literals, with the cheapest usable name reference.
    fn write_literal(&mut self, ctx: &mut SectionCtx, name: &[u8], value: &[u8], sensitive: bool, static_match: Option<StaticMatch>, out: &mut Vec<u8>) {
        let huffman = self.config.use_huffman;
        ctx.literal = true;
        let n_bit = if sensitive { 0x20 } else { 0 };
        if let Some(StaticMatch::Name(i) | StaticMatch::Full(i)) = static_match {
            // 01 N T=1 index(4+).
            prefix_int::encode(u64::from(i), 4, 0x50 | n_bit, out);
        } else if let Some(abs) = ctx.use_dynamic.then(|| self.table.find_name(name)).flatten().filter(|&abs| self.referenceable(ctx, abs)) {
            self.add_ref(ctx, abs);
            if abs < ctx.base {
                // 01 N T=0 relative(4+).
                prefix_int::encode(ctx.base - 1 - abs, 4, 0x40 | n_bit, out);
            } else {
                // 0000 N post-base(3+).
                prefix_int::encode(abs - ctx.base, 3, if sensitive { 0x08 } else { 0 }, out);
            }
        } else {
            // 001 N H len(3+) name.
            string::write(name, 4, 0x20 | if sensitive { 0x10 } else { 0 }, huffman, out);
        }
        string::write(value, 8, 0, huffman, out);
    }

    /// Processes decoder-stream bytes (RFC 9204 §4.4), in any chunking.
    /// Errors are QPACK_DECODER_STREAM_ERROR connection errors.
    pub fn feed_decoder_stream(&mut self, data: &[u8]) -> Result<(), QpackError> {
        let mut buf = std::mem::take(&mut self.decoder_buf);
        buf.extend_from_slice(data);
        let mut used = 0;
        let result = loop {
            let rest = buf.get(used..).unwrap_or_default();
            match DecoderInstruction::parse(rest) {
                Ok(Some((inst, len))) => {
                    if let Err(e) = self.execute(inst) {
                        break Err(e);
                    }
                    used += len;
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        if result.is_err() {
            // The connection is closing; keep nothing.
            buf.clear();
        } else {
            buf.drain(..used);
        }
        // Only integers travel here; anything longer failed to parse above.
        debug_assert!(buf.len() <= MAX_DECODER_INSTRUCTION);
        self.decoder_buf = buf;
        result
    }

    fn execute(&mut self, inst: DecoderInstruction) -> Result<(), QpackError> {
        match inst {
            DecoderInstruction::SectionAcknowledgment { stream_id } => {
                // §4.4.1: acknowledges the oldest outstanding section.
                let was_blocking = self.stream_may_block_already(stream_id);
                let section = self
                    .outstanding
                    .get_mut(&stream_id)
                    .and_then(|q| (!q.is_empty()).then(|| q.remove(0)))
                    .ok_or(QpackError::decoder_stream("acknowledgment for no outstanding section"))?;
                if self.outstanding.get(&stream_id).is_some_and(|q| q.is_empty()) {
                    self.outstanding.remove(&stream_id);
                }
                self.outstanding_count -= 1;
                // §2.1.4: the Known Received Count rises to the section's RIC.
                if section.required_insert_count > self.known_received_count {
                    self.known_received_count = section.required_insert_count;
                    self.recount_blocking();
                } else if was_blocking && !self.stream_may_block_already(stream_id) {
                    self.blocking = self.blocking.saturating_sub(1);
                }
                for abs in section.refs {
                    self.table.release_ref(abs);
                }
            }
            DecoderInstruction::StreamCancellation { stream_id } => {
                // §4.4.2: all references on the stream are released; nothing
                // is learnt about inserts.
                if self.stream_may_block_already(stream_id) {
                    self.blocking = self.blocking.saturating_sub(1);
                }
                if let Some(q) = self.outstanding.remove(&stream_id) {
                    self.outstanding_count -= q.len();
                    for abs in q.into_iter().flat_map(|s| s.refs) {
                        self.table.release_ref(abs);
                    }
                }
            }
            DecoderInstruction::InsertCountIncrement { increment } => {
                // §4.4.3: zero, or past what we sent, is an error.
                let new = self.known_received_count.checked_add(increment);
                match new {
                    Some(n) if increment > 0 && n <= self.table.insert_count() => {
                        self.known_received_count = n;
                        self.recount_blocking();
                    }
                    _ => return Err(QpackError::decoder_stream("invalid Insert Count Increment")),
                }
            }
        }
        Ok(())
    }
}

/// Per-section encoding state.
#[derive(Debug)]
struct SectionCtx {
    /// Insert count when the section started (RFC 9204 §4.5.1.2).
    base: u64,
    /// May this section reference unacknowledged entries?
    may_block: bool,
    /// May it reference the dynamic table at all?
    use_dynamic: bool,
    /// Dynamic references made so far.
    refs: SectionRefs,
    /// A line was written as a literal.
    literal: bool,
}

/// §4.5.2 / §4.5.3: indexed dynamic line, relative or post-base.
fn write_indexed_dynamic(base: u64, abs: u64, out: &mut Vec<u8>) {
    if abs < base {
        prefix_int::encode(base - 1 - abs, 6, 0x80, out);
    } else {
        prefix_int::encode(abs - base, 4, 0x10, out);
    }
}

/// `n` in decimal ASCII, written at the end of `buf`.
fn decimal(mut n: u16, buf: &mut [u8; 5]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        if let Some(d) = buf.get_mut(at) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || at == 0 {
            break;
        }
    }
    buf.get(at..).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::decoder::{DecodeResult, Decoder, DecoderConfig};
    use super::*;

    /// `encode_response_fields` writes what `encode_fields` writes for the
    /// merged list with `:status` first, for statuses in and out of the
    /// static table, on encoders with and without a dynamic table.
    #[test]
    fn a_response_section_equals_the_merged_field_list() {
        assert_eq!(decimal(0, &mut [0; 5]), b"0");
        assert_eq!(decimal(200, &mut [0; 5]), b"200");
        assert_eq!(decimal(65535, &mut [0; 5]), b"65535");
        let fields = [HeaderField::new(b"content-type".to_vec(), b"text/plain".to_vec()), HeaderField::new(b"x-custom".to_vec(), b"abc".to_vec())];
        for cap in [0u64, 4096] {
            for status in [200u16, 404, 299, 999, 7] {
                let mut a = Encoder::new(EncoderConfig::from_peer(cap, 8));
                let mut b = Encoder::new(EncoderConfig::from_peer(cap, 8));
                let mut merged = vec![HeaderField::new(b":status".to_vec(), status.to_string().into_bytes())];
                merged.extend_from_slice(&fields);
                let (mut sa, mut ea, mut sb, mut eb) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
                a.encode_fields(4, &merged, &mut sa, &mut ea);
                b.encode_response_fields(4, status, &fields, &mut sb, &mut eb);
                assert_eq!((sa, ea), (sb, eb), "status {status}, table {cap}");
            }
        }
    }

    /// A server answering the same resource: once the peer has
    /// acknowledged the entries, the same header list is copied from the
    /// remembered section. Each copy decodes to the same fields, counts its
    /// references until acknowledged, and after the table changes (a
    /// different `content-length` is inserted, moving every relative index)
    /// the list is encoded afresh, never copied stale.
    #[test]
    fn a_repeated_header_list_is_copied_while_the_table_stands_still() {
        let mut enc = Encoder::new(EncoderConfig::from_peer(4096, 16));
        let mut dec = Decoder::new(DecoderConfig { max_table_capacity: 4096, max_blocked_streams: 16, ..DecoderConfig::default() });
        let fields = |len: &str| {
            vec![
                HeaderField::new(b"content-type".to_vec(), b"application/octet-stream".to_vec()),
                HeaderField::new(b"server".to_vec(), b"quicpro".to_vec()),
                HeaderField::new(b"content-length".to_vec(), len.as_bytes().to_vec()),
            ]
        };
        let mut stream = 0u64;
        // One response: encode, let the decoder decode and acknowledge.
        let mut respond = |enc: &mut Encoder, dec: &mut Decoder, f: &[HeaderField], ack: bool| -> Vec<u8> {
            let (mut section, mut ins) = (Vec::new(), Vec::new());
            enc.encode_response_fields(stream, 200, f, &mut section, &mut ins);
            dec.feed_encoder_stream(&ins).unwrap();
            let Ok(DecodeResult::Decoded(got)) = dec.decode(stream, &section) else { panic!("stream {stream} did not decode") };
            let mut want = vec![HeaderField::new(b":status".to_vec(), b"200".to_vec())];
            want.extend_from_slice(f);
            assert_eq!(got, want, "stream {stream}");
            if ack {
                let mut out = Vec::new();
                dec.write_decoder_stream(&mut out);
                enc.feed_decoder_stream(&out).unwrap();
            }
            stream += 4;
            section
        };
        for _ in 0..3 {
            respond(&mut enc, &mut dec, &fields("1024"), true);
        }
        let first = respond(&mut enc, &mut dec, &fields("1024"), true);
        let hits = enc.section_cache_hits();
        let inserts = enc.table().insert_count();
        // Unacknowledged copies hold their references.
        let mut copies = Vec::new();
        for _ in 0..5 {
            copies.push(respond(&mut enc, &mut dec, &fields("1024"), false));
        }
        assert_eq!(enc.section_cache_hits(), hits + 5, "the same list in the same table state is a copy");
        assert!(copies.iter().all(|c| *c == first) && first.len() <= 6, "indexed lines only: {first:?}");
        assert_eq!(enc.table().insert_count(), inserts);
        assert_eq!(enc.outstanding_sections(), 5);
        let referenced = |enc: &Encoder| (0..enc.table().insert_count()).map(|abs| enc.table().refs(abs)).sum::<u32>();
        assert_eq!(referenced(&enc), 5 * 3, "three references per copy");
        let mut out = Vec::new();
        dec.write_decoder_stream(&mut out);
        enc.feed_decoder_stream(&out).unwrap();
        assert_eq!((enc.outstanding_sections(), referenced(&enc)), (0, 0), "acknowledged copies release their references");
        // Other lengths, repeated until inserted: the table moves, then the
        // first list again is encoded afresh and still decodes right.
        for len in ["7", "7", "7", "99", "99", "99"] {
            respond(&mut enc, &mut dec, &fields(len), true);
        }
        assert!(enc.table().insert_count() > inserts, "the other lengths were inserted");
        let hits = enc.section_cache_hits();
        let again = respond(&mut enc, &mut dec, &fields("1024"), true);
        assert_eq!(enc.section_cache_hits(), hits, "a moved table is never copied from");
        assert_ne!(again, first, "relative indices moved with the inserts");
        // A flag change is a different list.
        let mut never = fields("1024");
        never[1].never_index = true;
        let hits = enc.section_cache_hits();
        respond(&mut enc, &mut dec, &never, true);
        assert_eq!(enc.section_cache_hits(), hits);
    }

    /// With `static_only_max`, a small response needs no acknowledgment
    /// (Required Insert Count 0, no encoder instruction) and is copied on
    /// repeat whatever the table does meanwhile; a large one still uses the
    /// table. The decoder keeping its last such section returns the same
    /// fields for a repeat and decodes anything else afresh.
    #[test]
    fn small_sections_stay_out_of_the_table_and_are_copied_in_any_table_state() {
        let mut enc = Encoder::new(EncoderConfig { static_only_max: 256, ..EncoderConfig::from_peer(4096, 16) });
        let mut dec =
            Decoder::new(DecoderConfig { max_table_capacity: 4096, max_blocked_streams: 16, keep_last_static_section: true, ..DecoderConfig::default() });
        let small =
            [HeaderField::new(b"content-type".to_vec(), b"application/octet-stream".to_vec()), HeaderField::new(b"content-length".to_vec(), b"1024".to_vec())];
        let large = [HeaderField::new(b"x-policy".to_vec(), vec![b'p'; 300])];
        let round = |enc: &mut Encoder, dec: &mut Decoder, stream: u64, f: &[HeaderField]| -> (Vec<u8>, Vec<u8>) {
            let (mut section, mut ins) = (Vec::new(), Vec::new());
            enc.encode_response_fields(stream, 200, f, &mut section, &mut ins);
            dec.feed_encoder_stream(&ins).unwrap();
            let Ok(DecodeResult::Decoded(got)) = dec.decode(stream, &section) else { panic!("stream {stream} did not decode") };
            assert_eq!(&got[1..], f, "stream {stream}");
            let mut out = Vec::new();
            dec.write_decoder_stream(&mut out);
            enc.feed_decoder_stream(&out).unwrap();
            (section, ins)
        };
        let (first, ins) = round(&mut enc, &mut dec, 0, &small);
        assert_eq!(first[..2], [0, 0], "Required Insert Count 0");
        // Only the capacity announcement: nothing inserted.
        assert_eq!(enc.table().insert_count(), 0);
        assert!(ins.len() <= 3, "{ins:?}");
        round(&mut enc, &mut dec, 4, &small);
        // A large section inserts, moving the table.
        let (big, ins) = round(&mut enc, &mut dec, 8, &large);
        assert!(big[0] != 0 && !ins.is_empty() && enc.table().insert_count() == 1, "the large section uses the table");
        let hits = enc.section_cache_hits();
        let (again, ins) = round(&mut enc, &mut dec, 12, &small);
        assert_eq!((again, ins, enc.section_cache_hits()), (first, Vec::new(), hits + 1), "copied after the table moved");
        // The decoder's kept section is not confused by a different one.
        let other = [HeaderField::new(b"content-type".to_vec(), b"text/plain".to_vec())];
        round(&mut enc, &mut dec, 16, &other);
        round(&mut enc, &mut dec, 20, &small);
    }

    /// The blocked-stream count straight from the outstanding sections.
    fn counted(e: &Encoder) -> usize {
        let krc = e.known_received_count;
        e.outstanding.values().filter(|q| q.iter().any(|s| s.required_insert_count > krc)).count()
    }

    /// Sections on many streams, with new entries (so they block), acks,
    /// Insert Count Increments and cancellations in a scrambled order: the
    /// kept count always equals a recount.
    #[test]
    fn the_blocked_stream_count_follows_every_change() {
        let mut enc = Encoder::new(EncoderConfig::from_peer(4096, 8));
        let mut dec = Decoder::new(DecoderConfig { max_table_capacity: 4096, max_blocked_streams: 8, ..DecoderConfig::default() });
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let mut held_encoder_stream = Vec::new();
        let mut sections: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut max_seen = 0;
        for step in 0..2000u64 {
            match rnd(4) {
                0 | 1 => {
                    let stream = rnd(24) * 4;
                    let value = format!("v{}", rnd(40));
                    let fields = [HeaderField::new(b"x-key".to_vec(), value.into_bytes()), HeaderField::new(b":status".to_vec(), b"200".to_vec())];
                    let mut section = Vec::new();
                    enc.encode_fields(stream, &fields, &mut section, &mut held_encoder_stream);
                    sections.push((stream, section));
                }
                2 => {
                    // The decoder catches up and decodes what it can.
                    dec.feed_encoder_stream(&std::mem::take(&mut held_encoder_stream)).unwrap();
                    for (stream, section) in std::mem::take(&mut sections) {
                        match dec.decode(stream, &section) {
                            Ok(DecodeResult::Decoded(_)) => {}
                            Ok(DecodeResult::Blocked) => dec.cancel_stream(stream),
                            Err(e) => panic!("step {step}: {e:?}"),
                        }
                    }
                    let mut out = Vec::new();
                    dec.write_decoder_stream(&mut out);
                    enc.feed_decoder_stream(&out).unwrap();
                }
                _ => {
                    // A stream is reset before its sections were decoded.
                    if let Some(i) = (!sections.is_empty()).then(|| rnd(sections.len() as u64) as usize) {
                        let (stream, _) = sections.remove(i);
                        sections.retain(|(s, _)| *s != stream);
                        dec.cancel_stream(stream);
                        let mut out = Vec::new();
                        dec.write_decoder_stream(&mut out);
                        enc.feed_decoder_stream(&out).unwrap();
                    }
                }
            }
            assert_eq!(enc.blocking_streams(), counted(&enc), "step {step}");
            max_seen = max_seen.max(enc.blocking_streams());
        }
        assert!(max_seen > 1, "the sequence blocked several streams at once ({max_seen})");
    }
}
