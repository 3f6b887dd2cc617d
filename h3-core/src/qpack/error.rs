//! QPACK errors and their HTTP/3 error codes (RFC 9204 §6).

use core::fmt;

/// The decoder failed to interpret an encoded field section (RFC 9204 §6).
pub const QPACK_DECOMPRESSION_FAILED: u64 = 0x0200;
/// The decoder failed to interpret an encoder instruction (RFC 9204 §6).
pub const QPACK_ENCODER_STREAM_ERROR: u64 = 0x0201;
/// The encoder failed to interpret a decoder instruction (RFC 9204 §6).
pub const QPACK_DECODER_STREAM_ERROR: u64 = 0x0202;

/// What went wrong, which also says how far the damage reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QpackErrorKind {
    /// A field section is malformed or references table state it must not
    /// (RFC 9204 §2.2.3, §4.5). Connection error QPACK_DECOMPRESSION_FAILED.
    DecompressionFailed,
    /// A field section is well formed but exceeds a local limit (decoded
    /// size over the configured maximum field section size, or a string
    /// over the string length limit). RFC 9204 §7.4 makes this a *stream*
    /// error of type QPACK_DECOMPRESSION_FAILED; the HTTP/3 layer may also
    /// answer it with a 431 status. The decoder has already queued a Stream
    /// Cancellation when the section referenced the dynamic table.
    FieldSectionTooLarge,
    /// Bad encoder-stream instruction: connection error
    /// QPACK_ENCODER_STREAM_ERROR.
    EncoderStream,
    /// Bad decoder-stream instruction: connection error
    /// QPACK_DECODER_STREAM_ERROR.
    DecoderStream,
}

/// A QPACK error: a kind plus a static description for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QpackError {
    pub kind: QpackErrorKind,
    pub reason: &'static str,
}

impl QpackError {
    pub const fn decompression(reason: &'static str) -> Self {
        Self { kind: QpackErrorKind::DecompressionFailed, reason }
    }
    pub const fn too_large(reason: &'static str) -> Self {
        Self { kind: QpackErrorKind::FieldSectionTooLarge, reason }
    }
    pub const fn encoder_stream(reason: &'static str) -> Self {
        Self { kind: QpackErrorKind::EncoderStream, reason }
    }
    pub const fn decoder_stream(reason: &'static str) -> Self {
        Self { kind: QpackErrorKind::DecoderStream, reason }
    }

    /// The HTTP/3 error code to send (RFC 9204 §6).
    pub const fn code(&self) -> u64 {
        match self.kind {
            QpackErrorKind::DecompressionFailed | QpackErrorKind::FieldSectionTooLarge => QPACK_DECOMPRESSION_FAILED,
            QpackErrorKind::EncoderStream => QPACK_ENCODER_STREAM_ERROR,
            QpackErrorKind::DecoderStream => QPACK_DECODER_STREAM_ERROR,
        }
    }

    /// Whether the whole connection must close; otherwise only the request
    /// stream is reset (RFC 9204 §2.2.3, §6, §7.4).
    pub const fn is_connection_error(&self) -> bool {
        !matches!(self.kind, QpackErrorKind::FieldSectionTooLarge)
    }
}

impl fmt::Display for QpackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QPACK error 0x{:x} ({:?}): {}", self.code(), self.kind, self.reason)
    }
}

impl std::error::Error for QpackError {}
