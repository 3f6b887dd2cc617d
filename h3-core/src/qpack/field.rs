//! The field line (header) type exchanged with the HTTP/3 layer.

use bytes::Bytes;

/// One field line. Names and values are raw bytes; QPACK does not validate
/// HTTP syntax (that is the HTTP/3 layer's job, RFC 9114 §4.2).
///
/// `Bytes` lets decoded fields share storage with dynamic table entries and
/// static table strings instead of copying them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct HeaderField {
    pub name: Bytes,
    pub value: Bytes,
    /// Never-indexed (the 'N' bit, RFC 9204 §4.5.4, §7.1.3). On decode: the
    /// peer sent it as a literal with N=1, and an intermediary forwarding it
    /// must keep it literal. On encode: forces a literal with N=1 and keeps
    /// the field out of the dynamic table.
    pub never_index: bool,
}

impl HeaderField {
    /// A field that may be indexed.
    pub fn new(name: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Self { name: name.into(), value: value.into(), never_index: false }
    }

    /// A field that must stay a never-indexed literal.
    pub fn sensitive(name: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Self { name: name.into(), value: value.into(), never_index: true }
    }

    /// Size as counted by SETTINGS_MAX_FIELD_SECTION_SIZE and by the
    /// dynamic table: name + value + 32 (RFC 9114 §4.2.2, RFC 9204 §3.2.1).
    pub fn size(&self) -> u64 {
        self.name.len() as u64 + self.value.len() as u64 + crate::qpack::ENTRY_OVERHEAD
    }
}
