//! Extensible Priorities (RFC 9218): the `priority` header field and the
//! PRIORITY_UPDATE frame carry an urgency (0 most urgent … 7, default 3)
//! and an incremental flag (default false), which the server maps onto
//! quic-core's send scheduling.

use quic_core::stream::StreamId;

/// RFC 9218 §4: the parameters of a response's priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priority {
    /// `u`: 0 (most urgent) to 7.
    pub urgency: u8,
    /// `i`: the response is useful in pieces, so it may share bandwidth
    /// with others of its urgency.
    pub incremental: bool,
}

/// RFC 9218 §4.1: the default urgency.
pub const DEFAULT_URGENCY: u8 = 3;
/// RFC 9218 §4.1: the lowest urgency.
pub const MAX_URGENCY: u8 = 7;

impl Default for Priority {
    fn default() -> Self {
        Self { urgency: DEFAULT_URGENCY, incremental: false }
    }
}

impl Priority {
    pub fn new(urgency: u8, incremental: bool) -> Self {
        Self { urgency: urgency.min(MAX_URGENCY), incremental }
    }

    /// Parses a Priority Field Value, a Structured Fields Dictionary
    /// (RFC 8941 §3.2) of which RFC 9218 §4 defines `u` (an Integer, 0–7)
    /// and `i` (a Boolean). Unknown members, parameters and out-of-range
    /// values are ignored (§4), each leaving its default; so is a value
    /// that is not a dictionary at all.
    pub fn parse(value: &[u8]) -> Self {
        let mut p = Priority::default();
        let Ok(text) = std::str::from_utf8(value) else { return p };
        for member in text.split(',') {
            // Parameters (";…") carry nothing RFC 9218 defines.
            let member = member.split(';').next().unwrap_or_default().trim_matches([' ', '\t']);
            let (key, val) = match member.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (member, None),
            };
            match (key, val) {
                ("u", Some(v)) => {
                    if let Ok(u) = v.parse::<u8>() {
                        if u <= MAX_URGENCY && v.bytes().all(|b| b.is_ascii_digit()) {
                            p.urgency = u;
                        }
                    }
                }
                // A bare key is the Boolean true (RFC 8941 §3.2).
                ("i", None) | ("i", Some("?1")) => p.incremental = true,
                ("i", Some("?0")) => p.incremental = false,
                _ => {}
            }
        }
        p
    }

    /// The field value: `u=N` and `i` when incremental; empty for the
    /// defaults (RFC 9218 §4: omitted parameters take them).
    pub fn to_field_value(&self) -> String {
        match (self.urgency, self.incremental) {
            (DEFAULT_URGENCY, false) => String::new(),
            (DEFAULT_URGENCY, true) => "i".to_string(),
            (u, false) => format!("u={u}"),
            (u, true) => format!("u={u}, i"),
        }
    }

    /// quic-core's send priority for `stream` (lower goes first, equal
    /// values share round robin): the urgency first; within it the
    /// non-incremental responses one at a time in stream order (RFC 9218
    /// §10), then the incremental ones sharing bandwidth.
    pub fn quic_priority(&self, stream: StreamId) -> i32 {
        const WITHIN: i64 = 1 << 24;
        let order = if self.incremental { WITHIN - 1 } else { ((stream.0 >> 2) as i64).min(WITHIN - 2) };
        (i64::from(self.urgency) * WITHIN + order) as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_dictionary_subset_rfc_9218_defines() {
        assert_eq!(Priority::parse(b""), Priority::default());
        assert_eq!(Priority::parse(b"u=5"), Priority::new(5, false));
        assert_eq!(Priority::parse(b"u=0, i"), Priority::new(0, true));
        assert_eq!(Priority::parse(b"i, u=1"), Priority::new(1, true));
        assert_eq!(Priority::parse(b"u=2,i=?0"), Priority::new(2, false));
        assert_eq!(Priority::parse(b"i=?1;foo=bar"), Priority::new(3, true));
        // Unknown members and out-of-range values keep the defaults.
        assert_eq!(Priority::parse(b"x=9, u=8"), Priority::default());
        assert_eq!(Priority::parse(b"u=-1"), Priority::default());
        assert_eq!(Priority::parse(b"u=+2"), Priority::default());
        assert_eq!(Priority::parse(b"u=3.5, i=maybe"), Priority::default());
        assert_eq!(Priority::parse(&[0xff, 0xfe]), Priority::default());
    }

    #[test]
    fn field_value_round_trips() {
        for u in 0..=7 {
            for i in [false, true] {
                let p = Priority::new(u, i);
                assert_eq!(Priority::parse(p.to_field_value().as_bytes()), p);
            }
        }
    }

    #[test]
    fn quic_priority_orders_urgency_then_sequence() {
        let s = |n: u64| StreamId(4 * n);
        let urgent = Priority::new(0, false).quic_priority(s(100));
        let normal_first = Priority::new(3, false).quic_priority(s(1));
        let normal_later = Priority::new(3, false).quic_priority(s(2));
        let normal_incremental = Priority::new(3, true).quic_priority(s(0));
        let background = Priority::new(7, true).quic_priority(s(0));
        assert!(urgent < normal_first && normal_first < normal_later && normal_later < normal_incremental && normal_incremental < background);
        // Incremental responses of one urgency share a value: round robin.
        assert_eq!(Priority::new(5, true).quic_priority(s(1)), Priority::new(5, true).quic_priority(s(9)));
    }
}
