//! TLS 1.3 for QUIC through rustls' QUIC API (RFC 9001).
//!
//! - [`provider`]: the rustls crypto provider whose QUIC packet keys are ours.
//! - [`session`]: one handshake, driven with CRYPTO data by the connection.
//! - [`config`]: building rustls client and server configurations the way
//!   QUIC needs them (TLS 1.3 only, ALPN, 0-RTT, certificate verification on
//!   by default).

pub mod config;
pub mod provider;
pub mod session;
pub mod versioned_hkdf;

pub use config::{ClientTlsOptions, ServerTlsOptions, TlsConfigError};
pub use session::{KeyChange, TlsSession};
