//! rustls configurations for QUIC (RFC 9001 §4.2: TLS 1.3 only; §8.1: ALPN
//! is mandatory; §4.6.1: 0-RTT needs max_early_data_size 0xffffffff).
//!
//! Clients verify servers against the platform's trust store
//! (rustls-platform-verifier: on Linux the system CA bundle, which
//! `SSL_CERT_FILE` / `SSL_CERT_DIR` can point elsewhere) unless given their
//! own CA file. Servers can ask for client certificates (mutual TLS,
//! RFC 8446 §4.3.2) verified against a CA file, and clients can present one.
//! Reading trust stores and PEM files happens here, when a configuration is
//! built, never on the packet path.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::provider::crypto_provider;

#[derive(Debug)]
pub enum TlsConfigError {
    /// A certificate or key file could not be read or parsed.
    File { path: PathBuf, reason: String },
    /// No certificate in the chain file, or no private key in the key file.
    Missing(&'static str),
    /// rustls refused the combination (e.g. key does not match certificate).
    Rustls(rustls::Error),
    /// No trust anchors: no CA file and no system roots found.
    NoRoots,
    /// The platform's trust store could not be used.
    PlatformRoots(String),
    /// A requested cipher suite is not one of the TLS 1.3 suites QUIC uses.
    UnsupportedCipherSuite,
}

impl core::fmt::Display for TlsConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TlsConfigError::File { path, reason } => write!(f, "{}: {reason}", path.display()),
            TlsConfigError::Missing(what) => write!(f, "missing {what}"),
            TlsConfigError::Rustls(e) => write!(f, "TLS configuration rejected: {e}"),
            TlsConfigError::NoRoots => f.write_str("no trusted root certificates (give a CA file)"),
            TlsConfigError::PlatformRoots(e) => write!(f, "system trust store: {e} (give a CA file)"),
            TlsConfigError::UnsupportedCipherSuite => f.write_str("cipher suite not supported (TLS 1.3 AES-128-GCM, AES-256-GCM, CHACHA20-POLY1305)"),
        }
    }
}

impl std::error::Error for TlsConfigError {}

pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let certs: Result<Vec<_>, _> =
        CertificateDer::pem_file_iter(path).map_err(|e| TlsConfigError::File { path: path.into(), reason: e.to_string() })?.collect();
    let certs = certs.map_err(|e| TlsConfigError::File { path: path.into(), reason: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsConfigError::Missing("certificate"));
    }
    Ok(certs)
}

pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsConfigError::Missing("private key"),
        e => TlsConfigError::File { path: path.into(), reason: e.to_string() },
    })
}

/// The provider and clock a configuration uses: the given ones, or ours
/// (ring with the OS CSPRNG) and the system clock.
fn sources(
    crypto: &Option<Arc<rustls::crypto::CryptoProvider>>,
    time: &Option<Arc<dyn rustls::time_provider::TimeProvider>>,
) -> (Arc<rustls::crypto::CryptoProvider>, Arc<dyn rustls::time_provider::TimeProvider>) {
    let provider = crypto.clone().unwrap_or_else(crypto_provider);
    let time = time.clone().unwrap_or_else(|| Arc::new(rustls::time_provider::DefaultTimeProvider));
    (provider, time)
}

/// What a QUIC server needs from TLS.
#[derive(Debug, Clone)]
pub struct ServerTlsOptions {
    pub cert_chain: Vec<CertificateDer<'static>>,
    pub key: Arc<PrivateKeyDer<'static>>,
    pub alpn: Vec<Vec<u8>>,
    /// Accept 0-RTT from clients resuming with a ticket.
    pub early_data: bool,
    /// Tickets sent after each full handshake (RFC 8446 §4.6.1).
    pub tickets: usize,
    /// Encrypts and decrypts stateless session tickets when early data is
    /// off; sharing one across processes lets any worker resume any client.
    /// `None` uses a process-local rotating ticketer.
    pub ticketer: Option<Arc<dyn rustls::server::ProducesTickets>>,
    /// Server-side session store, consulted (and entries taken) for 0-RTT
    /// single-use checks; `None` keeps an in-memory cache.
    pub session_storage: Option<Arc<dyn rustls::server::StoresServerSessions>>,
    /// Write TLS secrets in SSLKEYLOGFILE format to the file named by that
    /// environment variable.
    pub key_log: bool,
    /// Whether clients must present a certificate (mutual TLS).
    pub client_auth: ClientAuth,
    /// The rustls crypto provider; `None` is quicpro's (ring, the OS
    /// CSPRNG). A simulation passes one whose randomness is the endpoint's
    /// seeded source (`provider::seeded_provider`, feature `sim`).
    pub crypto: Option<Arc<rustls::crypto::CryptoProvider>>,
    /// Where rustls reads the time (certificate validity, ticket ages);
    /// `None` is the system clock.
    pub time: Option<Arc<dyn rustls::time_provider::TimeProvider>>,
}

/// Client certificates a server asks for (RFC 8446 §4.3.2 CertificateRequest).
#[derive(Debug, Clone, Default)]
pub enum ClientAuth {
    /// No CertificateRequest (the default).
    #[default]
    None,
    /// Ask; a client without a certificate is still served, one with a
    /// certificate that does not chain to these CAs is refused.
    Optional(Vec<CertificateDer<'static>>),
    /// Ask and refuse a client without a certificate from these CAs
    /// (TLS alert certificate_required, CRYPTO_ERROR 0x174).
    Required(Vec<CertificateDer<'static>>),
}

impl ClientAuth {
    /// Reads the CA file (PEM) whose certificates client certificates must
    /// chain to.
    pub fn from_ca_file(path: &Path, required: bool) -> Result<Self, TlsConfigError> {
        let cas = load_certs(path)?;
        if cas.is_empty() {
            return Err(TlsConfigError::Missing("client CA certificate"));
        }
        Ok(if required { ClientAuth::Required(cas) } else { ClientAuth::Optional(cas) })
    }

    fn verifier(&self) -> Result<Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>, TlsConfigError> {
        let (cas, required) = match self {
            ClientAuth::None => return Ok(None),
            ClientAuth::Optional(c) => (c, false),
            ClientAuth::Required(c) => (c, true),
        };
        let mut roots = RootCertStore::empty();
        for c in cas {
            roots.add(c.clone()).map_err(TlsConfigError::Rustls)?;
        }
        let builder = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), crypto_provider());
        let builder = if required { builder } else { builder.allow_unauthenticated() };
        let v = builder.build().map_err(|e| TlsConfigError::Rustls(rustls::Error::General(e.to_string())))?;
        Ok(Some(v))
    }
}

impl ServerTlsOptions {
    pub fn new(cert_chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>, alpn: &[&[u8]]) -> Self {
        Self {
            cert_chain,
            key: Arc::new(key),
            alpn: alpn.iter().map(|a| a.to_vec()).collect(),
            early_data: true,
            tickets: 2,
            ticketer: None,
            session_storage: None,
            key_log: false,
            client_auth: ClientAuth::None,
            crypto: None,
            time: None,
        }
    }

    pub fn from_pem_files(cert: &Path, key: &Path, alpn: &[&[u8]]) -> Result<Self, TlsConfigError> {
        Ok(Self::new(load_certs(cert)?, load_key(key)?, alpn))
    }

    pub fn build(&self) -> Result<Arc<rustls::ServerConfig>, TlsConfigError> {
        let (provider, time) = sources(&self.crypto, &self.time);
        let builder =
            rustls::ServerConfig::builder_with_details(provider, time).with_protocol_versions(&[&rustls::version::TLS13]).map_err(TlsConfigError::Rustls)?;
        let builder = match self.client_auth.verifier()? {
            Some(v) => builder.with_client_cert_verifier(v),
            None => builder.with_no_client_auth(),
        };
        let mut cfg = builder.with_single_cert(self.cert_chain.clone(), self.key.clone_key()).map_err(TlsConfigError::Rustls)?;
        cfg.alpn_protocols = self.alpn.clone();
        // RFC 9001 §4.6.1: the only value allowed in QUIC's NewSessionTicket.
        cfg.max_early_data_size = if self.early_data { u32::MAX } else { 0 };
        cfg.send_tls13_tickets = self.tickets;
        // rustls accepts 0-RTT only with stateful resumption: the session is
        // taken out of the store when used, so each ticket admits early data
        // once (the anti-replay of RFC 8446 §8.1 / RFC 9001 §9.2). With early
        // data on, tickets are session IDs into `session_storage` (shared
        // across workers by the PHP binding); without it, stateless tickets.
        if let Some(s) = &self.session_storage {
            cfg.session_storage = s.clone();
        } else {
            cfg.session_storage = rustls::server::ServerSessionMemoryCache::new(4096);
        }
        if !self.early_data {
            if let Some(t) = &self.ticketer {
                cfg.ticketer = t.clone();
            } else if self.tickets > 0 {
                if let Ok(t) = rustls::crypto::ring::Ticketer::new() {
                    cfg.ticketer = t;
                }
            }
        }
        if self.key_log {
            cfg.key_log = Arc::new(rustls::KeyLogFile::new());
        }
        Ok(Arc::new(cfg))
    }
}

/// What a QUIC client needs from TLS.
#[derive(Debug, Clone)]
pub struct ClientTlsOptions {
    pub alpn: Vec<Vec<u8>>,
    /// PEM file with the CAs to trust instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// Extra trust anchors (e.g. a test's self-signed certificate).
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Skip certificate verification entirely. Only by explicit request
    /// (`quicpro get -k`); never the default.
    pub insecure_skip_verify: bool,
    /// Send 0-RTT data when a ticket allows it.
    pub early_data: bool,
    /// Where session tickets are kept for resumption; `None` uses an
    /// in-memory cache of 256 entries.
    pub session_store: Option<Arc<dyn rustls::client::ClientSessionStore>>,
    pub key_log: bool,
    /// TLS 1.3 cipher suites to offer, in order; empty offers all three
    /// (e.g. only TLS_CHACHA20_POLY1305_SHA256 for the interop runner's
    /// chacha20 case).
    pub cipher_suites: Vec<rustls::CipherSuite>,
    /// A certificate chain and key to present when the server asks (mutual TLS).
    pub client_cert: Option<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>)>,
    /// The rustls crypto provider; `None` is quicpro's (ring, the OS
    /// CSPRNG). A simulation passes one whose randomness is the endpoint's
    /// seeded source (`provider::seeded_provider`, feature `sim`).
    pub crypto: Option<Arc<rustls::crypto::CryptoProvider>>,
    /// Where rustls reads the time (certificate validity, ticket ages);
    /// `None` is the system clock.
    pub time: Option<Arc<dyn rustls::time_provider::TimeProvider>>,
}

impl ClientTlsOptions {
    pub fn new(alpn: &[&[u8]]) -> Self {
        Self {
            alpn: alpn.iter().map(|a| a.to_vec()).collect(),
            ca_file: None,
            extra_roots: Vec::new(),
            insecure_skip_verify: false,
            early_data: true,
            session_store: None,
            key_log: false,
            cipher_suites: Vec::new(),
            client_cert: None,
            crypto: None,
            time: None,
        }
    }

    /// Presents the certificate chain and key in these PEM files (one file
    /// may hold both) when a server asks for a client certificate.
    pub fn with_client_cert_files(mut self, cert: &Path, key: &Path) -> Result<Self, TlsConfigError> {
        let chain = load_certs(cert)?;
        if chain.is_empty() {
            return Err(TlsConfigError::Missing("client certificate"));
        }
        self.client_cert = Some((chain, Arc::new(load_key(key)?)));
        Ok(self)
    }

    /// The crypto provider with only the requested cipher suites.
    fn provider(&self) -> Result<Arc<rustls::crypto::CryptoProvider>, TlsConfigError> {
        let all = sources(&self.crypto, &self.time).0;
        if self.cipher_suites.is_empty() {
            return Ok(all);
        }
        let cipher_suites: Vec<_> = self.cipher_suites.iter().filter_map(|want| all.cipher_suites.iter().find(|s| s.suite() == *want).copied()).collect();
        if cipher_suites.len() != self.cipher_suites.len() {
            return Err(TlsConfigError::UnsupportedCipherSuite);
        }
        Ok(Arc::new(rustls::crypto::CryptoProvider { cipher_suites, ..(*all).clone() }))
    }

    pub fn build(&self) -> Result<Arc<rustls::ClientConfig>, TlsConfigError> {
        let time = sources(&self.crypto, &self.time).1;
        let builder = rustls::ClientConfig::builder_with_details(self.provider()?, time)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(TlsConfigError::Rustls)?;
        let verifier: Arc<dyn ServerCertVerifier> = if self.insecure_skip_verify {
            Arc::new(NoVerification)
        } else if self.ca_file.is_none() && self.extra_roots.is_empty() {
            let v = rustls_platform_verifier::Verifier::new(self.provider()?).map_err(|e| TlsConfigError::PlatformRoots(e.to_string()))?;
            Arc::new(v)
        } else {
            // Our own anchors replace the platform's (a private CA, a
            // test's self-signed certificate).
            let mut roots = RootCertStore::empty();
            if let Some(ca) = &self.ca_file {
                for c in load_certs(ca)? {
                    roots.add(c).map_err(TlsConfigError::Rustls)?;
                }
            }
            for c in &self.extra_roots {
                roots.add(c.clone()).map_err(TlsConfigError::Rustls)?;
            }
            if roots.is_empty() {
                return Err(TlsConfigError::NoRoots);
            }
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider()?)
                .build()
                .map_err(|e| TlsConfigError::Rustls(rustls::Error::General(e.to_string())))?
        };
        let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
        let mut cfg = match &self.client_cert {
            Some((chain, key)) => builder.with_client_auth_cert(chain.clone(), key.clone_key()).map_err(TlsConfigError::Rustls)?,
            None => builder.with_no_client_auth(),
        };
        cfg.alpn_protocols = self.alpn.clone();
        cfg.enable_early_data = self.early_data;
        if let Some(s) = &self.session_store {
            cfg.resumption = rustls::client::Resumption::store(s.clone());
        }
        if self.key_log {
            cfg.key_log = Arc::new(rustls::KeyLogFile::new());
        }
        Ok(Arc::new(cfg))
    }
}

/// Accepts any server certificate: for `-k` style testing only.
#[derive(Debug)]
struct NoVerification;

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(&self, _: &[u8], _: &CertificateDer<'_>, _: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(&self, _: &[u8], _: &CertificateDer<'_>, _: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        crypto_provider().signature_verification_algorithms.supported_schemes()
    }
}
