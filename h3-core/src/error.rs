//! HTTP/3 error codes (RFC 9114 §8.1, RFC 9204 §6, RFC 9297 §5.2) and the
//! error type every HTTP/3 codec in this crate returns.
//!
//! RFC 9114 §8 distinguishes a *stream error* (the stream is reset or reading
//! is aborted with the code) from a *connection error* (the whole connection
//! is closed with it). Every [`H3Error`] says which one it is, so the layer
//! that owns the QUIC connection never has to guess.

use core::fmt;

use quic_core::varint::VarInt;

/// The first reserved ("grease") value: RFC 9114 §6.2.3, §7.2.8, §7.2.4.1 and
/// §8.1 all reserve `0x1f * N + 0x21`.
const GREASE_BASE: u64 = 0x21;
/// The step between reserved values.
const GREASE_STEP: u64 = 0x1f;
/// The largest `N` for which `0x1f * N + 0x21` still fits in a varint
/// (2^62 - 1); the largest reserved value is 0x3fff_ffff_ffff_fffe.
const GREASE_MAX_N: u64 = (VarInt::MAX.into_inner() - GREASE_BASE) / GREASE_STEP;

/// Whether `v` has the reserved form `0x1f * N + 0x21` that RFC 9114 uses for
/// stream types (§6.2.3), frame types (§7.2.8), setting identifiers
/// (§7.2.4.1) and error codes (§8.1). Such values carry no meaning on receipt.
pub const fn is_grease(v: u64) -> bool {
    v >= GREASE_BASE && (v - GREASE_BASE).is_multiple_of(GREASE_STEP)
}

/// A reserved value `0x1f * N + 0x21` chosen by `seed`, always below 2^62.
///
/// Half of the seeds give a value below 2^14 (at most a 2-byte varint) so
/// that greasing usually costs little; the other half range over the whole
/// reserved space, so peers see every varint length. The caller supplies a
/// random seed (per connection or per use).
pub const fn grease(seed: u64) -> u64 {
    // N < 527 keeps 0x1f * N + 0x21 below 16384.
    let n = if seed & 1 == 0 { (seed >> 1) % 527 } else { (seed >> 1) % (GREASE_MAX_N + 1) };
    GREASE_STEP * n + GREASE_BASE
}

/// An HTTP/3 application error code, carried in RESET_STREAM, STOP_SENDING and
/// the application CONNECTION_CLOSE frame.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct H3ErrorCode(pub u64);

impl H3ErrorCode {
    // RFC 9114 §8.1.
    /// No error; used to close a connection or stream with nothing to signal.
    pub const H3_NO_ERROR: Self = Self(0x0100);
    /// A protocol violation without a more specific code.
    pub const H3_GENERAL_PROTOCOL_ERROR: Self = Self(0x0101);
    /// An internal error in the HTTP stack.
    pub const H3_INTERNAL_ERROR: Self = Self(0x0102);
    /// The peer created a stream that will not be accepted.
    pub const H3_STREAM_CREATION_ERROR: Self = Self(0x0103);
    /// A stream required by the connection was closed or reset.
    pub const H3_CLOSED_CRITICAL_STREAM: Self = Self(0x0104);
    /// A frame not permitted in the current state or on the current stream.
    pub const H3_FRAME_UNEXPECTED: Self = Self(0x0105);
    /// A frame that violates layout requirements or has an invalid size.
    pub const H3_FRAME_ERROR: Self = Self(0x0106);
    /// The peer is generating excessive load.
    pub const H3_EXCESSIVE_LOAD: Self = Self(0x0107);
    /// A stream ID or push ID was used incorrectly.
    pub const H3_ID_ERROR: Self = Self(0x0108);
    /// The payload of a SETTINGS frame is invalid.
    pub const H3_SETTINGS_ERROR: Self = Self(0x0109);
    /// The control stream did not begin with SETTINGS.
    pub const H3_MISSING_SETTINGS: Self = Self(0x010a);
    /// A request was rejected without any application processing.
    pub const H3_REQUEST_REJECTED: Self = Self(0x010b);
    /// A request or its response is cancelled.
    pub const H3_REQUEST_CANCELLED: Self = Self(0x010c);
    /// The client's stream ended without a complete request.
    pub const H3_REQUEST_INCOMPLETE: Self = Self(0x010d);
    /// A malformed HTTP message (RFC 9114 §4.1.2).
    pub const H3_MESSAGE_ERROR: Self = Self(0x010e);
    /// The TCP connection of a CONNECT tunnel was reset or closed abnormally.
    pub const H3_CONNECT_ERROR: Self = Self(0x010f);
    /// The request cannot be served over HTTP/3; retry over HTTP/1.1.
    pub const H3_VERSION_FALLBACK: Self = Self(0x0110);

    // RFC 9204 §6.
    /// The decoder failed to interpret an encoded field section.
    pub const QPACK_DECOMPRESSION_FAILED: Self = Self(0x0200);
    /// The decoder failed to interpret an encoder instruction.
    pub const QPACK_ENCODER_STREAM_ERROR: Self = Self(0x0201);
    /// The encoder failed to interpret a decoder instruction.
    pub const QPACK_DECODER_STREAM_ERROR: Self = Self(0x0202);

    // RFC 9297 §5.2.
    /// A malformed HTTP datagram or Datagram capsule.
    pub const H3_DATAGRAM_ERROR: Self = Self(0x33);

    /// The RFC name of a registered code, `"RESERVED"` for a grease code and
    /// `"UNKNOWN"` otherwise.
    pub fn name(self) -> &'static str {
        match self.0 {
            0x0100 => "H3_NO_ERROR",
            0x0101 => "H3_GENERAL_PROTOCOL_ERROR",
            0x0102 => "H3_INTERNAL_ERROR",
            0x0103 => "H3_STREAM_CREATION_ERROR",
            0x0104 => "H3_CLOSED_CRITICAL_STREAM",
            0x0105 => "H3_FRAME_UNEXPECTED",
            0x0106 => "H3_FRAME_ERROR",
            0x0107 => "H3_EXCESSIVE_LOAD",
            0x0108 => "H3_ID_ERROR",
            0x0109 => "H3_SETTINGS_ERROR",
            0x010a => "H3_MISSING_SETTINGS",
            0x010b => "H3_REQUEST_REJECTED",
            0x010c => "H3_REQUEST_CANCELLED",
            0x010d => "H3_REQUEST_INCOMPLETE",
            0x010e => "H3_MESSAGE_ERROR",
            0x010f => "H3_CONNECT_ERROR",
            0x0110 => "H3_VERSION_FALLBACK",
            0x0200 => "QPACK_DECOMPRESSION_FAILED",
            0x0201 => "QPACK_ENCODER_STREAM_ERROR",
            0x0202 => "QPACK_DECODER_STREAM_ERROR",
            0x33 => "H3_DATAGRAM_ERROR",
            v if is_grease(v) => "RESERVED",
            _ => "UNKNOWN",
        }
    }

    /// RFC 9114 §8.1: codes `0x1f * N + 0x21` are reserved to exercise the
    /// rule that unknown codes are treated as H3_NO_ERROR.
    pub const fn is_reserved(self) -> bool {
        is_grease(self.0)
    }

    /// A reserved code chosen by `seed`. RFC 9114 §8.1: an implementation
    /// SHOULD send one of these, with some probability, where it would have
    /// sent H3_NO_ERROR.
    pub const fn grease(seed: u64) -> Self {
        Self(grease(seed))
    }

    /// Whether this code is one this crate knows by name.
    pub fn is_known(self) -> bool {
        !matches!(self.name(), "RESERVED" | "UNKNOWN")
    }

    /// RFC 9114 §8: "receipt of an unknown error code MUST be treated as
    /// equivalent to H3_NO_ERROR". Maps a received code to the one to act on.
    pub fn normalize_received(self) -> Self {
        if self.is_known() {
            self
        } else {
            Self::H3_NO_ERROR
        }
    }
}

impl fmt::Debug for H3ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({:#x})", self.name(), self.0)
    }
}

impl fmt::Display for H3ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Whether an error ends one stream or the whole connection (RFC 9114 §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorScope {
    /// Close the QUIC connection with the code (CONNECTION_CLOSE of type
    /// 0x1d).
    Connection,
    /// Reset the stream and abort reading it (RESET_STREAM, STOP_SENDING)
    /// with the code; the connection carries on.
    Stream,
}

/// An HTTP/3 protocol error: the code to send, whether it applies to the
/// stream or the connection, and a static reason for logs and the reason
/// phrase of CONNECTION_CLOSE.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct H3Error {
    pub code: H3ErrorCode,
    pub scope: ErrorScope,
    pub reason: &'static str,
}

impl H3Error {
    pub const fn new(code: H3ErrorCode, scope: ErrorScope, reason: &'static str) -> Self {
        Self { code, scope, reason }
    }

    /// An error that closes the connection.
    pub const fn connection(code: H3ErrorCode, reason: &'static str) -> Self {
        Self::new(code, ErrorScope::Connection, reason)
    }

    /// An error that resets only the stream it was found on.
    pub const fn stream(code: H3ErrorCode, reason: &'static str) -> Self {
        Self::new(code, ErrorScope::Stream, reason)
    }

    /// RFC 9114 §7.1: a frame payload that does not match its fields
    /// (connection error of type H3_FRAME_ERROR).
    pub const fn frame_error(reason: &'static str) -> Self {
        Self::connection(H3ErrorCode::H3_FRAME_ERROR, reason)
    }

    /// A frame not allowed here (connection error of type
    /// H3_FRAME_UNEXPECTED, RFC 9114 §4.1, §7.2).
    pub const fn frame_unexpected(reason: &'static str) -> Self {
        Self::connection(H3ErrorCode::H3_FRAME_UNEXPECTED, reason)
    }

    /// An invalid SETTINGS payload (connection error of type
    /// H3_SETTINGS_ERROR, RFC 9114 §7.2.4).
    pub const fn settings_error(reason: &'static str) -> Self {
        Self::connection(H3ErrorCode::H3_SETTINGS_ERROR, reason)
    }

    /// Resource abuse (connection error of type H3_EXCESSIVE_LOAD, RFC 9114
    /// §10.5).
    pub const fn excessive_load(reason: &'static str) -> Self {
        Self::connection(H3ErrorCode::H3_EXCESSIVE_LOAD, reason)
    }

    /// A misused stream or push ID (connection error of type H3_ID_ERROR).
    pub const fn id_error(reason: &'static str) -> Self {
        Self::connection(H3ErrorCode::H3_ID_ERROR, reason)
    }

    /// The control stream did not start with SETTINGS (connection error of
    /// type H3_MISSING_SETTINGS, RFC 9114 §6.2.1).
    pub const fn missing_settings(reason: &'static str) -> Self {
        Self::connection(H3ErrorCode::H3_MISSING_SETTINGS, reason)
    }

    /// A stream the peer may not create (connection error of type
    /// H3_STREAM_CREATION_ERROR, RFC 9114 §6.2).
    pub const fn stream_creation(reason: &'static str) -> Self {
        Self::connection(H3ErrorCode::H3_STREAM_CREATION_ERROR, reason)
    }

    /// A critical stream ended (connection error of type
    /// H3_CLOSED_CRITICAL_STREAM, RFC 9114 §6.2.1).
    pub const fn closed_critical_stream(reason: &'static str) -> Self {
        Self::connection(H3ErrorCode::H3_CLOSED_CRITICAL_STREAM, reason)
    }

    /// A malformed request or response (stream error of type
    /// H3_MESSAGE_ERROR, RFC 9114 §4.1.2).
    pub const fn message_error(reason: &'static str) -> Self {
        Self::stream(H3ErrorCode::H3_MESSAGE_ERROR, reason)
    }

    pub const fn is_connection_error(&self) -> bool {
        matches!(self.scope, ErrorScope::Connection)
    }

    pub const fn is_stream_error(&self) -> bool {
        matches!(self.scope, ErrorScope::Stream)
    }

    /// RFC 9114 §8: an endpoint MAY escalate a stream error to a connection
    /// error.
    pub const fn escalate(mut self) -> Self {
        self.scope = ErrorScope::Connection;
        self
    }
}

impl fmt::Debug for H3Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scope = match self.scope {
            ErrorScope::Connection => "connection",
            ErrorScope::Stream => "stream",
        };
        write!(f, "{} {scope} error: {}", self.code, self.reason)
    }
}

impl fmt::Display for H3Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for H3Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_codes_and_names() {
        let all = [
            (H3ErrorCode::H3_NO_ERROR, 0x100, "H3_NO_ERROR"),
            (H3ErrorCode::H3_GENERAL_PROTOCOL_ERROR, 0x101, "H3_GENERAL_PROTOCOL_ERROR"),
            (H3ErrorCode::H3_INTERNAL_ERROR, 0x102, "H3_INTERNAL_ERROR"),
            (H3ErrorCode::H3_STREAM_CREATION_ERROR, 0x103, "H3_STREAM_CREATION_ERROR"),
            (H3ErrorCode::H3_CLOSED_CRITICAL_STREAM, 0x104, "H3_CLOSED_CRITICAL_STREAM"),
            (H3ErrorCode::H3_FRAME_UNEXPECTED, 0x105, "H3_FRAME_UNEXPECTED"),
            (H3ErrorCode::H3_FRAME_ERROR, 0x106, "H3_FRAME_ERROR"),
            (H3ErrorCode::H3_EXCESSIVE_LOAD, 0x107, "H3_EXCESSIVE_LOAD"),
            (H3ErrorCode::H3_ID_ERROR, 0x108, "H3_ID_ERROR"),
            (H3ErrorCode::H3_SETTINGS_ERROR, 0x109, "H3_SETTINGS_ERROR"),
            (H3ErrorCode::H3_MISSING_SETTINGS, 0x10a, "H3_MISSING_SETTINGS"),
            (H3ErrorCode::H3_REQUEST_REJECTED, 0x10b, "H3_REQUEST_REJECTED"),
            (H3ErrorCode::H3_REQUEST_CANCELLED, 0x10c, "H3_REQUEST_CANCELLED"),
            (H3ErrorCode::H3_REQUEST_INCOMPLETE, 0x10d, "H3_REQUEST_INCOMPLETE"),
            (H3ErrorCode::H3_MESSAGE_ERROR, 0x10e, "H3_MESSAGE_ERROR"),
            (H3ErrorCode::H3_CONNECT_ERROR, 0x10f, "H3_CONNECT_ERROR"),
            (H3ErrorCode::H3_VERSION_FALLBACK, 0x110, "H3_VERSION_FALLBACK"),
            (H3ErrorCode::QPACK_DECOMPRESSION_FAILED, 0x200, "QPACK_DECOMPRESSION_FAILED"),
            (H3ErrorCode::QPACK_ENCODER_STREAM_ERROR, 0x201, "QPACK_ENCODER_STREAM_ERROR"),
            (H3ErrorCode::QPACK_DECODER_STREAM_ERROR, 0x202, "QPACK_DECODER_STREAM_ERROR"),
            (H3ErrorCode::H3_DATAGRAM_ERROR, 0x33, "H3_DATAGRAM_ERROR"),
        ];
        for (code, value, name) in all {
            assert_eq!(code.0, value);
            assert_eq!(code.name(), name);
            assert!(code.is_known());
            assert!(!code.is_reserved(), "{name} is not a grease code");
            assert_eq!(code.normalize_received(), code);
        }
        assert_eq!(H3ErrorCode(0x111).name(), "UNKNOWN");
        assert_eq!(H3ErrorCode(0x111).normalize_received(), H3ErrorCode::H3_NO_ERROR);
        assert_eq!(H3ErrorCode(0x21).name(), "RESERVED");
        assert_eq!(H3ErrorCode(0x21).normalize_received(), H3ErrorCode::H3_NO_ERROR);
        assert_eq!(format!("{}", H3ErrorCode::H3_FRAME_ERROR), "H3_FRAME_ERROR(0x106)");
    }

    #[test]
    fn grease_form() {
        // The examples RFC 9114 §11.2 lists: 0x21, 0x40, ..., 0x3ffffffffffffffe.
        for v in [0x21, 0x40, 0x5f, 0x3fff_ffff_ffff_fffe] {
            assert!(is_grease(v), "{v:#x}");
        }
        for v in [0, 0x20, 0x22, 0x3f, 0x41, 0x100, 0x3fff_ffff_ffff_ffff] {
            assert!(!is_grease(v), "{v:#x}");
        }
        assert_eq!(GREASE_STEP * GREASE_MAX_N + GREASE_BASE, 0x3fff_ffff_ffff_fffe);
        let mut small = 0;
        for seed in (0..5000u64).chain([u64::MAX, u64::MAX - 1, 1 << 63]) {
            let seed = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let g = grease(seed);
            assert!(is_grease(g), "{g:#x}");
            assert!(g <= VarInt::MAX.into_inner());
            if g < 1 << 14 {
                small += 1;
            }
            assert!(H3ErrorCode::grease(seed).is_reserved());
        }
        assert!(small > 2000, "about half of the grease values are short: {small}");
        assert_eq!(grease(0), 0x21);
        assert_eq!(grease((GREASE_MAX_N << 1) | 1), 0x3fff_ffff_ffff_fffe);
        assert_eq!(grease(2), 0x40);
    }

    #[test]
    fn error_scope_and_display() {
        let e = H3Error::frame_error("GOAWAY has trailing bytes");
        assert_eq!(e.code, H3ErrorCode::H3_FRAME_ERROR);
        assert!(e.is_connection_error());
        assert_eq!(e.to_string(), "H3_FRAME_ERROR(0x106) connection error: GOAWAY has trailing bytes");
        let m = H3Error::message_error(":path is empty");
        assert_eq!(m.scope, ErrorScope::Stream);
        assert!(m.is_stream_error());
        assert_eq!(m.to_string(), "H3_MESSAGE_ERROR(0x10e) stream error: :path is empty");
        assert!(m.escalate().is_connection_error());
        assert_eq!(m.escalate().code, H3ErrorCode::H3_MESSAGE_ERROR);
        let boxed: Box<dyn std::error::Error> = Box::new(m);
        assert!(boxed.to_string().contains("H3_MESSAGE_ERROR"));
        for (e, code) in [
            (H3Error::frame_unexpected(""), H3ErrorCode::H3_FRAME_UNEXPECTED),
            (H3Error::settings_error(""), H3ErrorCode::H3_SETTINGS_ERROR),
            (H3Error::excessive_load(""), H3ErrorCode::H3_EXCESSIVE_LOAD),
            (H3Error::id_error(""), H3ErrorCode::H3_ID_ERROR),
            (H3Error::missing_settings(""), H3ErrorCode::H3_MISSING_SETTINGS),
            (H3Error::stream_creation(""), H3ErrorCode::H3_STREAM_CREATION_ERROR),
            (H3Error::closed_critical_stream(""), H3ErrorCode::H3_CLOSED_CRITICAL_STREAM),
        ] {
            assert_eq!(e.code, code);
            assert!(e.is_connection_error());
        }
    }
}
