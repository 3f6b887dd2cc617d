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
    /// rustls' state while it has work: the whole handshake, and on a
    /// client the session tickets that may follow it. A server lets it go
    /// once its handshake is done ([`TlsSession::retire`]): QUIC has no
    /// TLS message a client may send after Finished (RFC 9001 §6 forbids
    /// KeyUpdate, and QUIC has no post-handshake authentication), so the
    /// few kilobytes of handshake machinery would sit unused for the
    /// connection's lifetime.
    inner: Option<Box<quic::Connection>>,
    /// What the handshake settled, kept once `inner` is gone.
    settled: Settled,
    server: bool,
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

/// The outcome of a finished handshake that outlives rustls' state.
#[derive(Debug, Default)]
struct Settled {
    alpn: Option<Box<[u8]>>,
    kind: Option<rustls::HandshakeKind>,
    peer_certificates: Option<Box<[rustls::pki_types::CertificateDer<'static>]>>,
    server_name: Option<Box<str>>,
    cipher_suite: Option<rustls::SupportedCipherSuite>,
}

impl core::fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TlsSession").field("server", &self.server).field("handshaking", &self.is_handshaking()).field("retired", &self.inner.is_none()).finish()
    }
}

fn rustls_version(v: Version) -> Result<quic::Version, Error> {
    match v {
        Version::V1 => Ok(quic::Version::V1),
        Version::V2 => Ok(quic::Version::V2),
        _ => Err(Error::new(TransportErrorCode::INTERNAL_ERROR, "TLS for an unsupported QUIC version")),
    }
}

/// TLS alert unexpected_message (RFC 8446 §6.2): a handshake message where
/// none may come.
const UNEXPECTED_MESSAGE: u8 = 10;

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
        Ok(Self {
            inner: Some(Box::new(quic::Connection::Client(conn))),
            settled: Settled::default(),
            server: false,
            version,
            server_config: None,
            client_setup: Some((config, name)),
        })
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
        Ok(Self {
            inner: Some(Box::new(quic::Connection::Server(conn))),
            settled: Settled::default(),
            server: true,
            version,
            server_config: Some(config),
            client_setup: None,
        })
    }

    /// Server, before reading any handshake byte: a fresh session for
    /// `version` with these transport parameters (the server upgraded the
    /// connection's version, RFC 9368 §2.3).
    pub fn restart_server(&mut self, version: Version, params: Vec<u8>) -> Result<(), Error> {
        let config = self.server_config.clone().ok_or_else(|| Error::new(TransportErrorCode::INTERNAL_ERROR, "not a server session"))?;
        *self = Self::server(config, version, params)?;
        Ok(())
    }

    /// Server, once its handshake is complete and every handshake byte
    /// (tickets included) was taken with `write_handshake`: keeps what the
    /// handshake settled and drops rustls' state. Does nothing on a client
    /// (NewSessionTicket may arrive at any time) or while handshaking.
    pub fn retire(&mut self) {
        let Some(inner) = self.inner.as_deref() else { return };
        if !self.server || inner.is_handshaking() {
            return;
        }
        self.settled = Settled {
            alpn: inner.alpn_protocol().map(Box::from),
            kind: inner.handshake_kind(),
            peer_certificates: inner.peer_certificates().map(Box::from),
            server_name: match inner {
                quic::Connection::Server(s) => s.server_name().map(Box::from),
                quic::Connection::Client(_) => None,
            },
            cipher_suite: inner.negotiated_cipher_suite(),
        };
        self.inner = None;
        self.server_config = None;
    }

    /// Whether rustls' state was let go (see [`TlsSession::retire`]).
    pub fn is_retired(&self) -> bool {
        self.inner.is_none()
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
        self.server
    }

    /// Feeds the peer's handshake bytes (contiguous CRYPTO data of the level
    /// TLS currently reads). A TLS failure becomes CRYPTO_ERROR with the
    /// alert rustls chose (RFC 9001 §4.8); bytes after a server retired its
    /// session can only be a message QUIC forbids (RFC 9001 §6).
    pub fn read_handshake(&mut self, data: &[u8]) -> Result<(), Error> {
        let v = self.version;
        let Some(inner) = self.inner.as_deref_mut() else {
            if data.is_empty() {
                return Ok(());
            }
            return Err(Error::new(TransportErrorCode::crypto(UNEXPECTED_MESSAGE), "TLS message after the handshake"));
        };
        let r = super::versioned_hkdf::with_quic_version(v, || inner.read_hs(data));
        r.map_err(|e| self.alert_error(&e))
    }

    fn alert_error(&self, e: &rustls::Error) -> Error {
        let reason = failure_reason(e);
        match self.inner.as_deref().and_then(|i| i.alert()) {
            Some(alert) => Error::new(TransportErrorCode::crypto(u8::from(alert)), reason),
            None => Error::new(TransportErrorCode::PROTOCOL_VIOLATION, reason),
        }
    }

    /// Appends the handshake bytes TLS wants to send at the current write
    /// level to `out`; a returned key change means later bytes belong to the
    /// next level.
    pub fn write_handshake(&mut self, out: &mut Vec<u8>) -> Option<KeyChange> {
        let v = self.version;
        let inner = self.inner.as_deref_mut()?;
        super::versioned_hkdf::with_quic_version(v, || inner.write_hs(out))
    }

    pub fn is_handshaking(&self) -> bool {
        self.inner.as_deref().is_some_and(|i| i.is_handshaking())
    }

    /// The peer's encoded transport parameters, once received (until the
    /// session retires; the connection keeps them parsed).
    pub fn peer_transport_parameters(&self) -> Option<&[u8]> {
        self.inner.as_deref()?.quic_transport_parameters()
    }

    pub fn alpn(&self) -> Option<&[u8]> {
        match self.inner.as_deref() {
            Some(i) => i.alpn_protocol(),
            None => self.settled.alpn.as_deref(),
        }
    }

    /// Client: 0-RTT keys when a ticket allowing early data is in use.
    /// Server: 0-RTT keys once the client's early data has been accepted.
    pub fn zero_rtt_keys(&self) -> Option<quic::DirectionalKeys> {
        let inner = self.inner.as_deref()?;
        super::versioned_hkdf::with_quic_version(self.version, || inner.zero_rtt_keys())
    }

    /// Client: whether the server accepted 0-RTT (meaningful after the handshake).
    pub fn early_data_accepted(&self) -> Option<bool> {
        match self.inner.as_deref() {
            Some(quic::Connection::Client(c)) => Some(c.is_early_data_accepted()),
            _ => None,
        }
    }

    /// Server: refuse 0-RTT for this connection (e.g. anti-replay said no).
    pub fn reject_early_data(&mut self) {
        if let Some(quic::Connection::Server(s)) = self.inner.as_deref_mut() {
            s.reject_early_data();
        }
    }

    /// True when the handshake resumed a session (no Certificate message).
    pub fn is_resumed(&self) -> bool {
        matches!(self.handshake_kind(), Some(rustls::HandshakeKind::Resumed))
    }

    pub fn handshake_kind(&self) -> Option<rustls::HandshakeKind> {
        match self.inner.as_deref() {
            Some(i) => i.handshake_kind(),
            None => self.settled.kind,
        }
    }

    pub fn peer_certificates(&self) -> Option<&[rustls::pki_types::CertificateDer<'static>]> {
        match self.inner.as_deref() {
            Some(i) => i.peer_certificates(),
            None => self.settled.peer_certificates.as_deref(),
        }
    }

    pub fn server_name(&self) -> Option<&str> {
        match self.inner.as_deref() {
            Some(quic::Connection::Server(s)) => s.server_name(),
            Some(quic::Connection::Client(_)) => None,
            None => self.settled.server_name.as_deref(),
        }
    }

    pub fn negotiated_cipher_suite(&self) -> Option<rustls::SupportedCipherSuite> {
        match self.inner.as_deref() {
            Some(i) => i.negotiated_cipher_suite(),
            None => self.settled.cipher_suite,
        }
    }

    /// Client: NewSessionTicket messages received so far.
    pub fn tickets_received(&self) -> u32 {
        match self.inner.as_deref() {
            Some(quic::Connection::Client(c)) => c.tls13_tickets_received(),
            _ => 0,
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
