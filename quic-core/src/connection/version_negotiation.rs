//! Compatible version negotiation (RFC 9368 §2.3) between QUIC v1 and v2
//! (RFC 9369).
//!
//! The server reads the client's version_information from the ClientHello
//! *before* TLS does, so that when it picks another version than the
//! client's first Initial used, its TLS session can start over in that
//! version (rustls fixes the version at creation) with transport parameters
//! naming it. The client follows when the server's first Initial arrives in
//! a version it offered; its TLS session keeps going, with the new
//! version's key labels (`tls::versioned_hkdf`).

use super::{Connection, Side};
use crate::error::{Error, TransportErrorCode};
use crate::recovery::SpaceId;
use crate::transport_params::{Role, TransportParameters};
use crate::version::Version;

/// TLS extension carrying QUIC transport parameters (RFC 9001 §8.2).
const QUIC_TRANSPORT_PARAMETERS: u16 = 0x39;
/// TLS early_data extension (RFC 8446 §4.2.10).
const EARLY_DATA: u16 = 0x2a;
/// Longest ClientHello we hold back (the CRYPTO buffer bounds it anyway).
const MAX_CLIENT_HELLO: usize = 64 * 1024;

/// Whether a connection may move between these versions (RFC 9368 §2.3:
/// v1 and v2 are compatible, RFC 9369 §4).
pub fn compatible(a: Version, b: Version) -> bool {
    let known = |v: Version| v == Version::V1 || v == Version::V2;
    known(a) && known(b)
}

/// What the server needs from a ClientHello.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ClientHelloInfo {
    /// Raw quic_transport_parameters.
    pub transport_parameters: Option<Vec<u8>>,
    /// The client offers 0-RTT: stay in its version (its early data is
    /// keyed for it).
    pub early_data: bool,
}

/// Total length of the ClientHello message at the start of `buf`, once its
/// 4-byte handshake header is there (RFC 8446 §4).
pub fn client_hello_len(buf: &[u8]) -> Option<usize> {
    let h = buf.get(..4)?;
    Some(4 + ((usize::from(h[1]) << 16) | (usize::from(h[2]) << 8) | usize::from(h[3])))
}

/// Parses a complete ClientHello (RFC 8446 §4.1.2) for the extensions we
/// need; `None` if it is malformed (TLS will report that itself).
pub fn parse_client_hello(msg: &[u8]) -> Option<ClientHelloInfo> {
    let mut r = crate::codec::Reader::new(msg);
    if r.u8().ok()? != 1 {
        return None;
    }
    let [a, b, c] = r.array::<3>().ok()?;
    let len = (usize::from(a) << 16) | (usize::from(b) << 8) | usize::from(c);
    let mut r = crate::codec::Reader::new(r.bytes(len).ok()?);
    r.bytes(2 + 32).ok()?; // legacy_version, random
    let sid = usize::from(r.u8().ok()?);
    r.bytes(sid).ok()?;
    let suites = usize::from(r.u16().ok()?);
    r.bytes(suites).ok()?;
    let comp = usize::from(r.u8().ok()?);
    r.bytes(comp).ok()?;
    let ext_len = usize::from(r.u16().ok()?);
    let mut exts = crate::codec::Reader::new(r.bytes(ext_len).ok()?);
    let mut info = ClientHelloInfo::default();
    while !exts.is_empty() {
        let ty = exts.u16().ok()?;
        let n = usize::from(exts.u16().ok()?);
        let body = exts.bytes(n).ok()?;
        match ty {
            QUIC_TRANSPORT_PARAMETERS => info.transport_parameters = Some(body.to_vec()),
            EARLY_DATA => info.early_data = true,
            _ => {}
        }
    }
    Some(info)
}

/// RFC 9001 §8.2: a ClientHello without quic_transport_parameters (0x39)
/// is refused with missing_extension — including one that carries them
/// only under the pre-RFC draft codepoint 0xffa5, which rustls would
/// otherwise accept for QUIC v1.
pub fn require_transport_parameters(info: &ClientHelloInfo) -> Result<(), Error> {
    const MISSING_EXTENSION: u8 = 109; // RFC 8446 §6.2
    match info.transport_parameters {
        Some(_) => Ok(()),
        None => Err(Error::new(TransportErrorCode::crypto(MISSING_EXTENSION), "ClientHello lacks quic_transport_parameters (0x39)")),
    }
}

/// The server's choice: the client's most preferred version (its
/// Available Versions are in descending preference, RFC 9368 §3) that the
/// server speaks and that is compatible with `current`; `current`
/// otherwise.
pub fn choose(current: Version, server_supports: &[Version], client_available: &[Version]) -> Version {
    client_available.iter().copied().find(|v| server_supports.contains(v) && compatible(current, *v)).unwrap_or(current)
}

impl Connection {
    /// Server: holds back the ClientHello until it is complete, then picks
    /// the version and starts TLS in it. Returns the bytes to feed TLS now
    /// (the whole ClientHello once decided, else nothing).
    pub(super) fn hold_client_hello(&mut self, chunk: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        let Some(buf) = self.client_hello.as_mut() else { return Ok(Some(chunk.to_vec())) };
        buf.extend_from_slice(chunk);
        let Some(need) = client_hello_len(buf) else { return Ok(None) };
        if buf.len() < need && buf.len() < MAX_CLIENT_HELLO {
            return Ok(None);
        }
        let bytes = self.client_hello.take().unwrap_or_default();
        if let Some(info) = bytes.get(..need).and_then(parse_client_hello) {
            require_transport_parameters(&info)?;
            self.maybe_upgrade(&info)?;
        }
        Ok(Some(bytes))
    }

    fn maybe_upgrade(&mut self, info: &ClientHelloInfo) -> Result<(), Error> {
        if info.early_data {
            return Ok(());
        }
        let Some(raw) = &info.transport_parameters else { return Ok(()) };
        // Malformed parameters are TLS's and `on_peer_params`' to refuse.
        let Ok(p) = TransportParameters::decode(raw, Role::Client) else { return Ok(()) };
        let Some(vi) = &p.version_information else { return Ok(()) };
        let current = self.version;
        let supported = self.config.version_preference(current);
        let chosen = choose(current, &supported, vi.available_versions());
        if chosen == current {
            return Ok(());
        }
        // RFC 9368 §2.3: our transport parameters name the negotiated
        // version; TLS starts over in it (nothing was read yet).
        self.local_params.version_information = Some(crate::transport_params::VersionInformation::new(chosen, &supported));
        let grease = self.config.grease.then(|| self.rng.next_u64());
        let encoded = Connection::encode_transport_parameters(&self.local_params, Side::Server, grease);
        self.tls.restart_server(chosen, encoded)?;
        self.switch_initial_keys(chosen);
        Ok(())
    }

    /// Moves the connection to `version`: Initial keys of that version from
    /// the same DCID (RFC 9369 §3.3.1); a server keeps the original ones to
    /// read the client's Initials still in flight.
    pub(super) fn switch_initial_keys(&mut self, version: Version) {
        let side = if self.side.is_server() { rustls::Side::Server } else { rustls::Side::Client };
        let rv = if version == Version::V2 { rustls::quic::Version::V2 } else { rustls::quic::Version::V1 };
        let suite = crate::tls::provider::initial_suite();
        let new_keys = suite.keys(&self.initial_dcid, side, rv);
        let old = self.spaces[SpaceId::Initial.index()].keys.replace(new_keys);
        if self.side.is_server() {
            self.legacy_initial_keys = old;
        }
        self.original_version.get_or_insert(self.version);
        self.version = version;
        self.tls.set_version(version);
    }

    /// Client: the server's Initial came in `version`, not ours. Follow it
    /// if we offered it and nothing from the server was processed yet
    /// (RFC 9368 §2.3); `false` drops the packet.
    pub(super) fn follow_server_version(&mut self, version: Version) -> bool {
        if self.side.is_server() || self.received_any || self.original_version.is_some() {
            return false;
        }
        if !self.config.version_preference(self.version).contains(&version) || !compatible(self.version, version) {
            return false;
        }
        self.switch_initial_keys(version);
        true
    }

    /// The version the connection started with, if negotiation changed it.
    pub fn original_version(&self) -> Option<Version> {
        self.original_version
    }

    /// RFC 9368 §4: the peer's version_information must name the version
    /// in use; a client that moved also checks the server offered it.
    pub(super) fn check_version_information(&self, p: &TransportParameters) -> Result<(), Error> {
        // The client's Chosen Version is the version of its first Initial;
        // the server's names the negotiated one (RFC 9368 §4).
        let expected = if self.side.is_server() { self.original_version.unwrap_or(self.version) } else { self.version };
        match &p.version_information {
            Some(vi) if vi.chosen_version != expected => Err(Error::new(TransportErrorCode::VERSION_NEGOTIATION_ERROR, "version_information does not match")),
            None if self.original_version.is_some() => {
                Err(Error::new(TransportErrorCode::VERSION_NEGOTIATION_ERROR, "version changed without version_information"))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choosing() {
        let (v1, v2) = (Version::V1, Version::V2);
        assert_eq!(choose(v1, &[v1, v2], &[v2, v1]), v2, "client prefers v2, server speaks it");
        assert_eq!(choose(v1, &[v1, v2], &[v1, v2]), v1, "client prefers its first version");
        assert_eq!(choose(v1, &[v1], &[v2, v1]), v1, "server does not speak v2");
        assert_eq!(choose(v2, &[v1, v2], &[v1, v2]), v1);
        assert_eq!(choose(v1, &[Version(0x0a0a_0a0a), v1], &[Version(0x0a0a_0a0a), v1]), v1, "not compatible");
    }

    #[test]
    fn client_hello_parsing() {
        // A minimal ClientHello: version, random, empty session id, one
        // suite, null compression, extensions 0x39 and 0x2a.
        let mut body = vec![3, 3];
        body.extend([7u8; 32]);
        body.extend([0, 0, 2, 0x13, 0x01, 1, 0]);
        let exts: Vec<u8> = [&[0x00, 0x39, 0x00, 0x03, 0xaa, 0xbb, 0xcc][..], &[0x00, 0x2a, 0x00, 0x00]].concat();
        body.extend((exts.len() as u16).to_be_bytes());
        body.extend(exts);
        let mut msg = vec![1, 0, 0, body.len() as u8];
        msg.extend(body);
        assert_eq!(client_hello_len(&msg), Some(msg.len()));
        let info = parse_client_hello(&msg).unwrap_or_default();
        assert_eq!(info.transport_parameters.as_deref(), Some(&[0xaa, 0xbb, 0xcc][..]));
        assert!(info.early_data);
        assert_eq!(parse_client_hello(&msg[..msg.len() - 1]), None, "truncated");
        assert_eq!(client_hello_len(&msg[..3]), None);
    }

    /// The ClientHello rustls writes for `version` with transport parameters.
    fn rustls_client_hello(version: rustls::quic::Version) -> Vec<u8> {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h3".to_vec()];
        let name = rustls_pki_types::ServerName::try_from("example.com").unwrap();
        let mut conn = rustls::quic::ClientConnection::new(std::sync::Arc::new(config), version, name, vec![0x01, 0x02, 0x40, 0x64]).unwrap();
        let mut hello = Vec::new();
        conn.write_hs(&mut hello);
        hello
    }

    #[test]
    fn transport_parameters_only_under_the_draft_codepoint_are_refused() {
        let v1 = parse_client_hello(&rustls_client_hello(rustls::quic::Version::V1)).unwrap();
        assert_eq!(v1.transport_parameters.as_deref(), Some(&[0x01, 0x02, 0x40, 0x64][..]));
        assert!(require_transport_parameters(&v1).is_ok());
        // rustls' V1Draft puts them under 0xffa5 (draft-ietf-quic-tls-32).
        let draft = parse_client_hello(&rustls_client_hello(rustls::quic::Version::V1Draft)).unwrap();
        assert_eq!(draft.transport_parameters, None);
        let e = require_transport_parameters(&draft).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::crypto(109), "missing_extension alert: {e:?}");
    }
}
