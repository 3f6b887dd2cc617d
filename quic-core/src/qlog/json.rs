//! JSON text building: the qlog records are written by hand into a
//! buffer reused across events.

use core::fmt::{self, Write as _};
use std::time::Duration;

/// A JSON text under construction. Tracks, per open object or array,
/// whether a comma is due before the next member, so callers only say what
/// to write.
#[derive(Debug, Default)]
pub(super) struct Json {
    pub(super) s: String,
    /// One entry per open container: "a member was already written".
    comma: Vec<bool>,
    /// A key was just written; its value takes no comma.
    after_key: bool,
}

impl Json {
    pub(super) fn clear(&mut self) {
        self.s.clear();
        self.comma.clear();
        self.after_key = false;
    }

    pub(super) fn sep(&mut self) {
        if self.after_key {
            self.after_key = false;
            return;
        }
        if let Some(c) = self.comma.last_mut() {
            if *c {
                self.s.push(',');
            }
            *c = true;
        }
    }

    pub(super) fn key(&mut self, k: &str) {
        self.sep();
        escape_into(&mut self.s, k);
        self.s.push(':');
        self.after_key = true;
    }

    pub(super) fn begin_object(&mut self) {
        self.sep();
        self.s.push('{');
        self.comma.push(false);
    }

    pub(super) fn end_object(&mut self) {
        self.comma.pop();
        self.s.push('}');
    }

    pub(super) fn begin_array(&mut self) {
        self.sep();
        self.s.push('[');
        self.comma.push(false);
    }

    pub(super) fn end_array(&mut self) {
        self.comma.pop();
        self.s.push(']');
    }

    pub(super) fn str(&mut self, v: &str) {
        self.sep();
        escape_into(&mut self.s, v);
    }

    /// A string value produced by `Display`, escaped on the way.
    pub(super) fn str_fmt(&mut self, args: fmt::Arguments<'_>) {
        self.sep();
        self.s.push('"');
        // Writing to a String cannot fail.
        let _ = Escaper(&mut self.s).write_fmt(args);
        self.s.push('"');
    }

    pub(super) fn u64(&mut self, v: u64) {
        self.sep();
        let _ = write!(self.s, "{v}");
    }

    /// RFC 8259 §6: NaN and infinities are not JSON numbers; they become
    /// null. Finite values use `Debug`, which always prints a fraction or an
    /// exponent ("8.0", "1e-9"), both valid JSON, so float fields read back
    /// as floats.
    pub(super) fn f64(&mut self, v: f64) {
        self.sep();
        if v.is_finite() {
            let _ = write!(self.s, "{v:?}");
        } else {
            self.s.push_str("null");
        }
    }

    pub(super) fn bool(&mut self, v: bool) {
        self.sep();
        self.s.push_str(if v { "true" } else { "false" });
    }

    /// qlog `hexstring`: lowercase hex, no prefix (main schema §1.2).
    pub(super) fn hex(&mut self, bytes: &[u8]) {
        self.sep();
        self.s.reserve(bytes.len() * 2 + 2);
        self.s.push('"');
        push_hex(&mut self.s, bytes);
        self.s.push('"');
    }

    // Member shorthands.

    pub(super) fn f_str(&mut self, k: &str, v: &str) {
        self.key(k);
        self.str(v);
    }

    pub(super) fn f_u64(&mut self, k: &str, v: u64) {
        self.key(k);
        self.u64(v);
    }

    pub(super) fn f_f64(&mut self, k: &str, v: f64) {
        self.key(k);
        self.f64(v);
    }

    pub(super) fn f_bool(&mut self, k: &str, v: bool) {
        self.key(k);
        self.bool(v);
    }

    pub(super) fn f_hex(&mut self, k: &str, v: &[u8]) {
        self.key(k);
        self.hex(v);
    }

    pub(super) fn o_str(&mut self, k: &str, v: Option<&str>) {
        if let Some(v) = v {
            self.f_str(k, v);
        }
    }

    pub(super) fn o_u64(&mut self, k: &str, v: Option<u64>) {
        if let Some(v) = v {
            self.f_u64(k, v);
        }
    }

    pub(super) fn o_bool(&mut self, k: &str, v: Option<bool>) {
        if let Some(v) = v {
            self.f_bool(k, v);
        }
    }

    pub(super) fn o_hex(&mut self, k: &str, v: Option<&[u8]>) {
        if let Some(v) = v {
            self.f_hex(k, v);
        }
    }

    pub(super) fn o_ms(&mut self, k: &str, v: Option<Duration>) {
        if let Some(v) = v {
            self.f_f64(k, duration_ms(v));
        }
    }

    pub(super) fn begin_object_field(&mut self, k: &str) {
        self.key(k);
        self.begin_object();
    }

    pub(super) fn begin_array_field(&mut self, k: &str) {
        self.key(k);
        self.begin_array();
    }
}

/// RFC 8259 §7: quote, backslash and U+0000..U+001F must be escaped.
pub(super) fn escape_into(out: &mut String, s: &str) {
    out.push('"');
    push_escaped(out, s);
    out.push('"');
}

pub(super) fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

/// Escapes `Display` output as it is produced.
struct Escaper<'s>(&'s mut String);

impl fmt::Write for Escaper<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        push_escaped(self.0, s);
        Ok(())
    }
}

pub(super) fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

/// Milliseconds as f64 from whole nanoseconds, so that round values print
/// round (21.018, not 21.017999999999997).
pub(super) fn duration_ms(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1e6
}
