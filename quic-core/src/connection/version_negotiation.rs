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
use std::time::Instant;

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
        let new_keys = super::keys::initial_keys(&self.initial_dcid, self.side, version);
        let old = self.spaces[SpaceId::Initial.index()].keys.replace(new_keys);
        if self.side.is_server() {
            self.legacy_initial_keys = old;
        }
        self.original_version.get_or_insert(self.version);
        self.version = version;
        self.tls.set_version(version);
    }

    /// Client: the server's Initial came in `version`, not ours. It may be
    /// followed if we offered it and nothing from the server was processed
    /// yet (RFC 9368 §2.3); `false` drops the packet.
    pub(super) fn may_follow_server_version(&self, version: Version) -> bool {
        if self.side.is_server() || self.received_any || self.original_version.is_some() {
            return false;
        }
        self.config.version_preference(self.version).contains(&version) && compatible(self.version, version)
    }

    /// Installs `version`'s Initial keys to try them on one packet;
    /// returns the keys they replaced, to put back if the packet does not
    /// open ([`Connection::switch_initial_keys`] commits).
    pub(super) fn try_initial_keys(&mut self, version: Version) -> Option<rustls::quic::Keys> {
        let keys = super::keys::initial_keys(&self.initial_dcid, Side::Client, version);
        self.spaces[SpaceId::Initial.index()].keys.replace(keys)
    }

    /// Client: a Version Negotiation packet listing `offered` and not our
    /// version (the caller checked that, RFC 9368 §4). Picks our most
    /// preferred version among them and sends a new first flight in it
    /// (RFC 9368 §2.1): a new ClientHello whose version_information names
    /// it, Initial keys of that version, nothing of the abandoned attempt
    /// resent but stream data written for 0-RTT. `false`: no common version.
    pub(super) fn restart_after_version_negotiation(&mut self, now: Instant, offered: &[Version]) -> Result<bool, Error> {
        let first = self.version;
        let preference = self.config.version_preference(first);
        let Some(version) = choose_from_negotiation(&preference, offered) else { return Ok(false) };
        self.local_params.version_information = Some(crate::transport_params::VersionInformation::new(version, &preference));
        let grease = self.config.grease.then(|| self.rng.next_u64());
        let encoded = Connection::encode_transport_parameters(&self.local_params, Side::Client, grease);
        self.tls.restart_client(version, encoded)?;
        // The abandoned attempt's Initials carried the old ClientHello: they
        // are forgotten, not resent. Stream data sent in 0-RTT is resent
        // under the new attempt's keys (as after a 0-RTT rejection).
        let mut abandoned = Vec::new();
        self.recovery.take_unacked(SpaceId::Initial, &mut abandoned);
        abandoned.clear();
        self.recovery.on_retry(&mut abandoned);
        for p in abandoned {
            self.on_frames_lost(&p.payload);
        }
        // Packet numbers continue (recovery tracks the largest sent).
        let next_pn = self.spaces[SpaceId::Initial.index()].next_pn;
        self.spaces[SpaceId::Initial.index()] = super::spaces::PacketSpace::new(SpaceId::Initial, self.config.crypto_buffer_size);
        self.spaces[SpaceId::Initial.index()].next_pn = next_pn;
        self.zero_rtt = None;
        self.zero_rtt_enabled = false;
        // A new attempt, a new unpredictable DCID (RFC 9000 §7.2): the
        // server may still answer the abandoned one, and its Initials must
        // not decrypt under the new attempt's keys.
        let mut d = [0u8; 16];
        self.rng.fill(&mut d);
        let dcid = crate::cid::ConnectionId::new(&d).unwrap_or(self.initial_dcid);
        self.initial_dcid = dcid;
        self.original_dcid = dcid;
        self.remote_cids.set_initial(dcid);
        self.negotiated_from = Some(first);
        self.version = version;
        self.spaces[SpaceId::Initial.index()].keys = Some(super::keys::initial_keys(&self.initial_dcid, Side::Client, version));
        self.drive_tls(now)?;
        if let Some(keys) = self.tls.zero_rtt_keys() {
            self.zero_rtt = Some(keys);
            self.zero_rtt_enabled = true;
            self.apply_remembered_params();
        }
        Ok(true)
    }

    /// Client: the version a Version Negotiation packet made it move from
    /// (RFC 9368 §2.1), if one did.
    pub fn negotiated_from(&self) -> Option<Version> {
        self.negotiated_from
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
        if let Some(first) = self.negotiated_from.filter(|_| !self.side.is_server()) {
            return self.check_after_version_negotiation(first, p);
        }
        match &p.version_information {
            Some(vi) if vi.chosen_version != expected => Err(Error::new(TransportErrorCode::VERSION_NEGOTIATION_ERROR, "version_information does not match")),
            None if self.original_version.is_some() => {
                Err(Error::new(TransportErrorCode::VERSION_NEGOTIATION_ERROR, "version changed without version_information"))
            }
            _ => Ok(()),
        }
    }
}

impl Connection {
    /// RFC 9368 §4, a client that acted on a Version Negotiation packet:
    /// the server's version_information must be there, name the version
    /// we moved to, and list versions from which we would have chosen the
    /// same one; otherwise the Version Negotiation packet was forged to
    /// downgrade us.
    fn check_after_version_negotiation(&self, first: Version, p: &TransportParameters) -> Result<(), Error> {
        let preference = self.config.version_preference(first);
        validate_after_negotiation(&preference, Version::SUPPORTED, self.version, p.version_information.as_ref())
            .map_err(|why| Error::new(TransportErrorCode::VERSION_NEGOTIATION_ERROR, why))
    }
}

/// RFC 9368 §4 for a client that moved to `negotiated` on a Version
/// Negotiation packet, given the server's version_information.
pub fn validate_after_negotiation(
    preference: &[Version],
    supported: &[Version],
    negotiated: Version,
    server: Option<&crate::transport_params::VersionInformation>,
) -> Result<(), &'static str> {
    let Some(vi) = server else { return Err("no version_information after Version Negotiation") };
    if vi.chosen_version != negotiated {
        return Err("version_information does not name the negotiated version");
    }
    if vi.available_versions().is_empty() {
        return Err("no Available Versions after Version Negotiation");
    }
    // The choice we would have made from a Version Negotiation packet
    // listing the server's Available Versions plus the negotiated one.
    let would_pick = preference.iter().copied().find(|v| (*v == negotiated || vi.available_versions().contains(v)) && supported.contains(v));
    if would_pick != Some(negotiated) {
        return Err("the server supports a version we prefer: downgrade");
    }
    Ok(())
}

/// Incompatible version negotiation (RFC 9368 §2.1): our most preferred
/// version that the Version Negotiation packet offers and we implement.
pub fn choose_from_negotiation(preference: &[Version], offered: &[Version]) -> Option<Version> {
    preference.iter().copied().find(|v| offered.contains(v) && Version::SUPPORTED.contains(v))
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
    fn choosing_after_version_negotiation() {
        let (v1, v2) = (Version::V1, Version::V2);
        assert_eq!(choose_from_negotiation(&[v2, v1], &[v1]), Some(v1));
        assert_eq!(choose_from_negotiation(&[v2, v1], &[Version(0x1a2a_3a4a), v2, v1]), Some(v2), "our preference decides");
        assert_eq!(choose_from_negotiation(&[v1], &[v2]), None, "v2 not in our list");
        assert_eq!(choose_from_negotiation(&[v1, v2], &[Version(0xff00_001d)]), None, "nothing we implement");
    }

    /// RFC 9368 §4's example: a client supporting 10, 12 and 14 (higher
    /// preferred) that started with 12.
    #[test]
    fn downgrade_detection_follows_the_rfc_example() {
        use crate::transport_params::VersionInformation;
        let (v10, v13, v14) = (Version(10), Version(13), Version(14));
        let pref = [Version(14), Version(12), v10];
        let supported = [v10, Version(12), v14];
        // Scenario 1: the server offers 13 and 14; we went to 14.
        let vi = VersionInformation::new(v14, &[v13, v14]);
        assert_eq!(validate_after_negotiation(&pref, &supported, v14, Some(&vi)), Ok(()));
        // Scenario 2: a forged VN listing 10 and 13 made us pick 10, but the
        // server speaks 14 too.
        let vi = VersionInformation::new(v10, &[v10, v13, v14]);
        assert!(validate_after_negotiation(&pref, &supported, v10, Some(&vi)).is_err());
        // Missing, empty or naming another version: refused.
        assert!(validate_after_negotiation(&pref, &supported, v14, None).is_err());
        assert!(validate_after_negotiation(&pref, &supported, v14, Some(&VersionInformation::new(v14, &[]))).is_err());
        assert!(validate_after_negotiation(&pref, &supported, v14, Some(&VersionInformation::new(v10, &[v10, v14]))).is_err());
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
