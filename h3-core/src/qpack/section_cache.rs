//! The encoder's and the decoder's memory of their last field section.
//!
//! A server answering the same resource again and again encodes the same
//! header list each time (`:status`, `content-type`, `server`,
//! `content-length`). Once the dynamic table holds every line and the peer
//! has acknowledged those entries, the encoding is a handful of index bytes,
//! but finding them costs a static-table scan, two hash lookups and a
//! fingerprint per line: a tenth of a small request's server CPU. This
//! remembers the last section that was indexed lines only and referenced
//! nothing unacknowledged, with the table state it was valid for, so the
//! same list is a comparison and a copy. A section the encoder writes with
//! the static table and literals whatever the table holds (small ones, see
//! `EncoderConfig::static_only_max`, or when the peer allows no table) is
//! kept too, valid in any table state: its bytes depend on the lines alone.
//!
//! Why a copy is still a correct encoding (RFC 9204 §4.5): the section's
//! bytes depend on the Base, the Required Insert Count and the absolute
//! indices it references. The Base is the insert count, and the entries'
//! positions, the draining region (§2.1.1.1) and what can be evicted change
//! only when an entry is inserted or the capacity changes: the stored insert
//! count and capacity must both still hold. Every reference was below the
//! Known Received Count when stored, which only grows, so the section can
//! never block (§2.1.2). Its references are counted again on each use, like
//! any section's, so the entries stay protected until it is acknowledged.

use super::encoder::SectionRefs;
use super::field::HeaderField;

/// One remembered section.
#[derive(Debug, Default)]
pub(super) struct SectionCache {
    /// The field lines it encodes, serialised: per line the never-index
    /// flag, then name and value each as a 4-byte little-endian length and
    /// the bytes. Compared in full: a hash match alone could send the wrong
    /// header.
    lines: Vec<u8>,
    /// The encoded section, prefix included.
    encoded: Vec<u8>,
    /// Absolute indices it references.
    refs: SectionRefs,
    /// Its Required Insert Count (0: static references only).
    required_insert_count: u64,
    /// The table's insert count and capacity when it was encoded; `None`
    /// for a section of static references and literals chosen whatever the
    /// table holds (valid in any table state).
    table_state: Option<(u64, u64)>,
    /// Something is stored.
    filled: bool,
}

/// What [`SectionCache::lookup`] found.
pub(super) struct Hit<'a> {
    pub encoded: &'a [u8],
    pub refs: &'a SectionRefs,
    pub required_insert_count: u64,
}

impl SectionCache {
    /// The stored section if it encodes exactly `lines` and the table is
    /// where it was (same insert count and capacity).
    pub(super) fn lookup<'l>(&self, lines: impl Iterator<Item = (&'l [u8], &'l [u8], bool)>, insert_count: u64, capacity: u64) -> Option<Hit<'_>> {
        if !self.filled || self.table_state.is_some_and(|state| state != (insert_count, capacity)) {
            return None;
        }
        let mut rest = &self.lines[..];
        for (name, value, never_index) in lines {
            let (&flag, after) = rest.split_first()?;
            if flag != u8::from(never_index) {
                return None;
            }
            let after = take_equal(after, name)?;
            rest = take_equal(after, value)?;
        }
        rest.is_empty().then_some(Hit { encoded: &self.encoded, refs: &self.refs, required_insert_count: self.required_insert_count })
    }

    /// Remembers `encoded` as the encoding of `lines` for this table state
    /// (`None`: for any).
    pub(super) fn store<'l>(
        &mut self,
        lines: impl Iterator<Item = (&'l [u8], &'l [u8], bool)>,
        encoded: &[u8],
        refs: &SectionRefs,
        required_insert_count: u64,
        table_state: Option<(u64, u64)>,
    ) {
        self.lines.clear();
        for (name, value, never_index) in lines {
            let (Ok(n), Ok(v)) = (u32::try_from(name.len()), u32::try_from(value.len())) else {
                self.filled = false;
                return;
            };
            self.lines.push(u8::from(never_index));
            self.lines.extend_from_slice(&n.to_le_bytes());
            self.lines.extend_from_slice(name);
            self.lines.extend_from_slice(&v.to_le_bytes());
            self.lines.extend_from_slice(value);
        }
        self.encoded.clear();
        self.encoded.extend_from_slice(encoded);
        self.refs.clone_from(refs);
        self.required_insert_count = required_insert_count;
        self.table_state = table_state;
        self.filled = true;
    }

    /// Forgets the stored section.
    pub(super) fn clear(&mut self) {
        self.filled = false;
    }
}

/// The decoder's memory of its last decoded section without table
/// references (Required Insert Count 0): such a section's fields depend on
/// its bytes alone (RFC 9204 §4.5), so a repeat is a comparison and a
/// clone. The common case is a server's responses (see
/// `EncoderConfig::static_only_max`), whose literals would otherwise be
/// Huffman-decoded again each time. Sections that reference the table are
/// not kept: their decoding depends on the table, and a server's requests
/// rarely repeat byte for byte.
#[derive(Debug, Default)]
pub(super) struct DecodedCache {
    /// The encoded section, prefix included.
    section: Vec<u8>,
    fields: Vec<HeaderField>,
}

impl DecodedCache {
    /// The fields of `section` if it is the one stored.
    pub(super) fn lookup(&self, section: &[u8]) -> Option<&[HeaderField]> {
        (!self.fields.is_empty() && self.section == section).then_some(&self.fields[..])
    }

    /// Remembers the decoding of `section` (a section with Required
    /// Insert Count 0).
    pub(super) fn store(&mut self, section: &[u8], fields: &[HeaderField]) {
        self.section.clear();
        self.section.extend_from_slice(section);
        self.fields.clear();
        self.fields.extend_from_slice(fields);
    }
}

/// `rest` after a 4-byte length and `want`, if that is what it starts with.
fn take_equal<'a>(rest: &'a [u8], want: &[u8]) -> Option<&'a [u8]> {
    let (len, rest) = rest.split_first_chunk::<4>()?;
    if u32::from_le_bytes(*len) as usize != want.len() {
        return None;
    }
    let (bytes, rest) = rest.split_at_checked(want.len())?;
    (bytes == want).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines<'a>(v: &'a [(&'a str, &'a str, bool)]) -> impl Iterator<Item = (&'a [u8], &'a [u8], bool)> + 'a {
        v.iter().map(|(n, val, ni)| (n.as_bytes(), val.as_bytes(), *ni))
    }

    #[test]
    fn only_the_same_lines_in_the_same_table_state_hit() {
        let stored = [(":status", "200", false), ("server", "quicpro", false)];
        let mut c = SectionCache::default();
        assert!(c.lookup(lines(&stored), 3, 4096).is_none(), "empty");
        let refs: SectionRefs = [1u64, 2].into_iter().collect();
        c.store(lines(&stored), &[3, 0, 0x81, 0x80], &refs, 3, Some((3, 4096)));
        let hit = c.lookup(lines(&stored), 3, 4096).map(|h| (h.encoded.to_vec(), h.refs.to_vec(), h.required_insert_count));
        assert_eq!(hit, Some((vec![3, 0, 0x81, 0x80], vec![1, 2], 3)));
        // A different table state.
        assert!(c.lookup(lines(&stored), 4, 4096).is_none());
        assert!(c.lookup(lines(&stored), 3, 2048).is_none());
        // Different lines: a value, a name, the flag, one line more or less,
        // and bytes moved across the name/value boundary.
        for other in [
            &[(":status", "200", false), ("server", "quicprO", false)][..],
            &[(":status", "200", false), ("servex", "quicpro", false)],
            &[(":status", "200", false), ("server", "quicpro", true)],
            &[(":status", "200", false)],
            &[(":status", "200", false), ("server", "quicpro", false), ("a", "b", false)],
            &[(":status", "200", false), ("serverq", "uicpro", false)],
        ] {
            assert!(c.lookup(lines(other), 3, 4096).is_none(), "{other:?}");
        }
        c.clear();
        assert!(c.lookup(lines(&stored), 3, 4096).is_none(), "cleared");
        // Static and literal lines only: any table state.
        c.store(lines(&stored), &[0, 0, 0xd9, 0x5f], &SectionRefs::new(), 0, None);
        for (inserts, capacity) in [(0, 0), (3, 4096), (9, 100)] {
            assert!(c.lookup(lines(&stored), inserts, capacity).is_some());
        }
        assert!(c.lookup(lines(&stored[..1]), 3, 4096).is_none());
    }
}
