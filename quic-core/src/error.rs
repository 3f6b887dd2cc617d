//! Errors of the codec layer and their mapping to QUIC transport error codes.
//!
//! RFC 9000 §20.1 defines the transport error codes. Every decoding failure in
//! this crate is a [`Error`] carrying the code the connection must close with,
//! so a caller never has to guess which code a malformed input deserves.

use core::fmt;

/// A QUIC transport error code (RFC 9000 §20.1), or a CRYPTO_ERROR
/// (0x0100–0x01ff) carrying a TLS alert.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransportErrorCode(pub u64);

impl TransportErrorCode {
    pub const NO_ERROR: Self = Self(0x00);
    pub const INTERNAL_ERROR: Self = Self(0x01);
    pub const CONNECTION_REFUSED: Self = Self(0x02);
    pub const FLOW_CONTROL_ERROR: Self = Self(0x03);
    pub const STREAM_LIMIT_ERROR: Self = Self(0x04);
    pub const STREAM_STATE_ERROR: Self = Self(0x05);
    pub const FINAL_SIZE_ERROR: Self = Self(0x06);
    pub const FRAME_ENCODING_ERROR: Self = Self(0x07);
    pub const TRANSPORT_PARAMETER_ERROR: Self = Self(0x08);
    pub const CONNECTION_ID_LIMIT_ERROR: Self = Self(0x09);
    pub const PROTOCOL_VIOLATION: Self = Self(0x0a);
    pub const INVALID_TOKEN: Self = Self(0x0b);
    pub const APPLICATION_ERROR: Self = Self(0x0c);
    pub const CRYPTO_BUFFER_EXCEEDED: Self = Self(0x0d);
    pub const KEY_UPDATE_ERROR: Self = Self(0x0e);
    pub const AEAD_LIMIT_REACHED: Self = Self(0x0f);
    pub const NO_VIABLE_PATH: Self = Self(0x10);
    /// RFC 9368 §10.2.
    pub const VERSION_NEGOTIATION_ERROR: Self = Self(0x11);

    /// RFC 9000 §20.1: CRYPTO_ERROR is 0x0100 plus the TLS alert code.
    pub const fn crypto(alert: u8) -> Self {
        Self(0x0100 | alert as u64)
    }

    /// The TLS alert if this is a CRYPTO_ERROR.
    pub fn tls_alert(self) -> Option<u8> {
        (0x0100..=0x01ff).contains(&self.0).then_some(self.0 as u8)
    }

    /// The RFC 9000 §20.1 name ("CRYPTO_ERROR" for the alert range).
    pub fn name(self) -> &'static str {
        match self.0 {
            c if (c as usize) < NAMES.len() => NAMES[c as usize].0,
            0x0100..=0x01ff => "CRYPTO_ERROR",
            _ => "UNKNOWN",
        }
    }

    /// The lowercase name qlog uses (quic-events §9.13), for the codes of
    /// RFC 9000 §20.1 below the CRYPTO_ERROR range.
    pub fn snake_name(self) -> Option<&'static str> {
        NAMES.get(usize::try_from(self.0).ok()?).map(|n| n.1)
    }
}

/// RFC 9000 §20.1 (and RFC 9368 §6 for 0x11), indexed by code: the name
/// and its lowercase qlog form.
const NAMES: [(&str, &str); 0x12] = [
    ("NO_ERROR", "no_error"),
    ("INTERNAL_ERROR", "internal_error"),
    ("CONNECTION_REFUSED", "connection_refused"),
    ("FLOW_CONTROL_ERROR", "flow_control_error"),
    ("STREAM_LIMIT_ERROR", "stream_limit_error"),
    ("STREAM_STATE_ERROR", "stream_state_error"),
    ("FINAL_SIZE_ERROR", "final_size_error"),
    ("FRAME_ENCODING_ERROR", "frame_encoding_error"),
    ("TRANSPORT_PARAMETER_ERROR", "transport_parameter_error"),
    ("CONNECTION_ID_LIMIT_ERROR", "connection_id_limit_error"),
    ("PROTOCOL_VIOLATION", "protocol_violation"),
    ("INVALID_TOKEN", "invalid_token"),
    ("APPLICATION_ERROR", "application_error"),
    ("CRYPTO_BUFFER_EXCEEDED", "crypto_buffer_exceeded"),
    ("KEY_UPDATE_ERROR", "key_update_error"),
    ("AEAD_LIMIT_REACHED", "aead_limit_reached"),
    ("NO_VIABLE_PATH", "no_viable_path"),
    ("VERSION_NEGOTIATION_ERROR", "version_negotiation_error"),
];

impl fmt::Debug for TransportErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.tls_alert() {
            Some(alert) => write!(f, "CRYPTO_ERROR(alert {alert})"),
            None => write!(f, "{}({:#x})", self.name(), self.0),
        }
    }
}

impl fmt::Display for TransportErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A protocol error detected while processing input: the code to close the
/// connection with, the frame type that triggered it (RFC 9000 §19.19 puts it
/// in CONNECTION_CLOSE), and a static reason for logs and the reason phrase.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Error {
    pub code: TransportErrorCode,
    pub frame_type: Option<u64>,
    pub reason: &'static str,
}

impl Error {
    pub const fn new(code: TransportErrorCode, reason: &'static str) -> Self {
        Self { code, frame_type: None, reason }
    }
    pub const fn frame_encoding(reason: &'static str) -> Self {
        Self::new(TransportErrorCode::FRAME_ENCODING_ERROR, reason)
    }
    pub const fn protocol_violation(reason: &'static str) -> Self {
        Self::new(TransportErrorCode::PROTOCOL_VIOLATION, reason)
    }
    pub const fn transport_parameter(reason: &'static str) -> Self {
        Self::new(TransportErrorCode::TRANSPORT_PARAMETER_ERROR, reason)
    }
    pub const fn with_frame_type(mut self, frame_type: u64) -> Self {
        self.frame_type = Some(frame_type);
        self
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.code, self.reason)?;
        if let Some(t) = self.frame_type {
            write!(f, " (frame type {t:#x})")?;
        }
        Ok(())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for Error {}

/// Input ran out before a field was complete. Codecs convert it into the
/// right transport error for their context (a truncated frame is a
/// FRAME_ENCODING_ERROR, a truncated transport parameter a
/// TRANSPORT_PARAMETER_ERROR, a truncated packet is dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnexpectedEnd;

impl fmt::Display for UnexpectedEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unexpected end of input")
    }
}

impl std::error::Error for UnexpectedEnd {}

/// The caller's output buffer is too small for what was asked to be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferTooShort;

impl fmt::Display for BufferTooShort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("output buffer too short")
    }
}

impl std::error::Error for BufferTooShort {}
