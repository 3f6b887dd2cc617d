//! One TLS handshake inside a QUIC connection (RFC 9001 §4).
//!
//! rustls produces handshake bytes for the current write level and reports
//! key changes as it moves from Initial to Handshake to 1-RTT; the
//! connection carries those bytes in CRYPTO frames of the matching packet
//! number space and feeds the peer's CRYPTO data back in order.

use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::quic;

use crate::error::{Error, TransportErrorCode};
use crate::version::Version;

pub use rustls::quic::KeyChange;

/// The TLS side of a connection.
pub struct TlsSession {
    inner: quic::Connection,
    /// The QUIC version whose key labels apply (it can change under a
    /// client's session: compatible version negotiation, RFC 9368).
    version: Version,
    /// Server: its configuration, to start over in another version before
    /// any handshake byte was read.
    server_config: Option<Arc<rustls::ServerConfig>>,
    /// Client: its configuration and server name, to start a new first
    /// flight after a Version Negotiation packet (RFC 9368 §2.1).
    client_setup: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
}

impl core::fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TlsSession").field("server", &self.is_server()).field("handshaking", &self.is_handshaking()).finish()
    }
}

fn rustls_version(v: Version) -> Result<quic::Version, Error> {
    match v {
        Version::V1 => Ok(quic::Version::V1),
        Version::V2 => Ok(quic::Version::V2),
        _ => Err(Error::new(TransportErrorCode::INTERNAL_ERROR, "TLS for an unsupported QUIC version")),
    }
}

impl TlsSession {
    /// Starts a client handshake. `params` are our encoded transport
    /// parameters, carried in the quic_transport_parameters extension
    /// (RFC 9001 §8.2).
    pub fn client(config: Arc<rustls::ClientConfig>, server_name: &str, version: Version, params: Vec<u8>) -> Result<Self, Error> {
        let name = ServerName::try_from(server_name.to_owned()).map_err(|_| Error::new(TransportErrorCode::INTERNAL_ERROR, "invalid server name"))?;
        Self::client_for(config, name, version, params)
    }

    fn client_for(config: Arc<rustls::ClientConfig>, name: ServerName<'static>, version: Version, params: Vec<u8>) -> Result<Self, Error> {
        let conn = quic::ClientConnection::new(config.clone(), rustls_version(version)?, name.clone(), params)
            .map_err(|_| Error::new(TransportErrorCode::INTERNAL_ERROR, "TLS client setup failed"))?;
        Ok(Self { inner: quic::Connection::Client(conn), version, server_config: None, client_setup: Some((config, name)) })
    }

    /// Client, after a Version Negotiation packet: a fresh session (a new
    /// ClientHello) for `version` with these transport parameters; the
    /// abandoned attempt's handshake is not continued (RFC 9368 §2.1).
    pub fn restart_client(&mut self, version: Version, params: Vec<u8>) -> Result<(), Error> {
        let (config, name) = self.client_setup.clone().ok_or_else(|| Error::new(TransportErrorCode::INTERNAL_ERROR, "not a client session"))?;
        *self = Self::client_for(config, name, version, params)?;
        Ok(())
    }

    pub fn server(config: Arc<rustls::ServerConfig>, version: Version, params: Vec<u8>) -> Result<Self, Error> {
        let conn = quic::ServerConnection::new(config.clone(), rustls_version(version)?, params)
            .map_err(|_| Error::new(TransportErrorCode::INTERNAL_ERROR, "TLS server setup failed"))?;
        Ok(Self { inner: quic::Connection::Server(conn), version, server_config: Some(config), client_setup: None })
    }

    /// Server, before reading any handshake byte: a fresh session for
    /// `version` with these transport parameters (the server upgraded the
    /// connection's version, RFC 9368 §2.3).
    pub fn restart_server(&mut self, version: Version, params: Vec<u8>) -> Result<(), Error> {
        let config = self.server_config.clone().ok_or_else(|| Error::new(TransportErrorCode::INTERNAL_ERROR, "not a server session"))?;
        *self = Self::server(config, version, params)?;
        Ok(())
    }

    /// Client: the connection continues in `version` (the server chose a
    /// compatible one): QUIC keys derived from now on use its labels.
    pub fn set_version(&mut self, version: Version) {
        self.version = version;
    }

    pub fn version(&self) -> Version {
        self.version
    }

    pub fn is_server(&self) -> bool {
        matches!(self.inner, quic::Connection::Server(_))
    }

    /// Feeds the peer's handshake bytes (contiguous CRYPTO data of the level
    /// TLS currently reads). A TLS failure becomes CRYPTO_ERROR with the
    /// alert rustls chose (RFC 9001 §4.8).
    pub fn read_handshake(&mut self, data: &[u8]) -> Result<(), Error> {
        let v = self.version;
        let inner = &mut self.inner;
        let r = super::versioned_hkdf::with_quic_version(v, || inner.read_hs(data));
        r.map_err(|e| self.alert_error(&e))
    }

    fn alert_error(&self, e: &rustls::Error) -> Error {
        let reason = failure_reason(e);
        match self.inner.alert() {
            Some(alert) => Error::new(TransportErrorCode::crypto(u8::from(alert)), reason),
            None => Error::new(TransportErrorCode::PROTOCOL_VIOLATION, reason),
        }
    }

    /// Appends the handshake bytes TLS wants to send at the current write
    /// level to `out`; a returned key change means later bytes belong to the
    /// next level.
    pub fn write_handshake(&mut self, out: &mut Vec<u8>) -> Option<KeyChange> {
        let v = self.version;
        let inner = &mut self.inner;
        super::versioned_hkdf::with_quic_version(v, || inner.write_hs(out))
    }

    pub fn is_handshaking(&self) -> bool {
        self.inner.is_handshaking()
    }

    /// The peer's encoded transport parameters, once received.
    pub fn peer_transport_parameters(&self) -> Option<&[u8]> {
        self.inner.quic_transport_parameters()
    }

    pub fn alpn(&self) -> Option<&[u8]> {
        self.inner.alpn_protocol()
    }

    /// Client: 0-RTT keys when a ticket allowing early data is in use.
    /// Server: 0-RTT keys once the client's early data has been accepted.
    pub fn zero_rtt_keys(&self) -> Option<quic::DirectionalKeys> {
        super::versioned_hkdf::with_quic_version(self.version, || self.inner.zero_rtt_keys())
    }

    /// Client: whether the server accepted 0-RTT (meaningful after the handshake).
    pub fn early_data_accepted(&self) -> Option<bool> {
        match &self.inner {
            quic::Connection::Client(c) => Some(c.is_early_data_accepted()),
            quic::Connection::Server(_) => None,
        }
    }

    /// Server: refuse 0-RTT for this connection (e.g. anti-replay said no).
    pub fn reject_early_data(&mut self) {
        if let quic::Connection::Server(s) = &mut self.inner {
            s.reject_early_data();
        }
    }

    /// True when the handshake resumed a session (no Certificate message).
    pub fn is_resumed(&self) -> bool {
        matches!(self.inner.handshake_kind(), Some(rustls::HandshakeKind::Resumed))
    }

    pub fn handshake_kind(&self) -> Option<rustls::HandshakeKind> {
        self.inner.handshake_kind()
    }

    pub fn peer_certificates(&self) -> Option<&[rustls::pki_types::CertificateDer<'static>]> {
        self.inner.peer_certificates()
    }

    pub fn server_name(&self) -> Option<&str> {
        match &self.inner {
            quic::Connection::Server(s) => s.server_name(),
            quic::Connection::Client(_) => None,
        }
    }

    pub fn negotiated_cipher_suite(&self) -> Option<rustls::SupportedCipherSuite> {
        self.inner.negotiated_cipher_suite()
    }

    /// Client: NewSessionTicket messages received so far.
    pub fn tickets_received(&self) -> u32 {
        match &self.inner {
            quic::Connection::Client(c) => c.tls13_tickets_received(),
            quic::Connection::Server(_) => 0,
        }
    }
}

/// Why a handshake failed, in words a user can act on (the alert code alone,
/// e.g. CRYPTO_ERROR 0x12a, says little). Certificate problems are the usual
/// cause: an untrusted issuer, an expired certificate, a name mismatch.
fn failure_reason(e: &rustls::Error) -> &'static str {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => "certificate not trusted: unknown issuer",
            C::Expired | C::ExpiredContext { .. } => "certificate expired",
            C::NotValidYet | C::NotValidYetContext { .. } => "certificate not valid yet",
            C::NotValidForName | C::NotValidForNameContext { .. } => "certificate not valid for the server name",
            C::Revoked => "certificate revoked",
            C::BadSignature => "certificate signature invalid",
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => "certificate not valid for this purpose",
            C::BadEncoding => "certificate malformed",
            _ => "certificate rejected",
        },
        rustls::Error::NoCertificatesPresented => "peer presented no certificate",
        rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired) => "the server requires a client certificate",
        rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA) => "the peer does not trust our certificate (unknown CA)",
        rustls::Error::AlertReceived(rustls::AlertDescription::BadCertificate) => "the peer rejected our certificate",
        rustls::Error::AlertReceived(_) => "the peer aborted the TLS handshake",
        rustls::Error::NoApplicationProtocol => "no common application protocol (ALPN)",
        rustls::Error::PeerIncompatible(_) => "peer's TLS is incompatible",
        _ => "TLS handshake failed",
    }
}
