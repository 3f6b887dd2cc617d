//! Address-validation tokens: Retry tokens and NEW_TOKEN tokens
//! (RFC 9000 §8.1.1–§8.1.4).
//!
//! Tokens are stateless: everything the server needs to check one travels
//! inside it, sealed with AES-256-GCM under a server-wide key so a client can
//! neither read nor forge it (§8.1.4 "tokens MUST be difficult to guess").
//! The client's address is not stored in the token but bound as associated
//! data, so a token replayed from another address fails to open.
//!
//! Wire format (ours; only this server reads it):
//! `kind (1) | nonce (12) | AEAD(issued_unix_secs (8) | odcid_len (1) | odcid | rscid_len (1) | rscid) | tag (16)`

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ring::aead;

use crate::cid::{ConnectionId, MAX_CID_SIZE};
use crate::rand::RandomSource;

/// Longest token we produce: 1 + 12 + 8 + 1 + 20 + 1 + 20 + 16.
pub const MAX_TOKEN_LEN: usize = 79;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Sent in a Retry packet; valid once, for a short time, from the exact
    /// address and port (§8.1.2).
    Retry = 1,
    /// Sent in NEW_TOKEN for a future connection; the port may change (§8.1.3).
    NewToken = 2,
}

/// What a valid token proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedToken {
    pub kind: TokenKind,
    /// Retry tokens: the client's original Destination Connection ID, needed
    /// for the original_destination_connection_id transport parameter (§7.3).
    pub original_dcid: ConnectionId,
    /// Retry tokens: the Source Connection ID of the Retry packet (§7.3).
    pub retry_scid: ConnectionId,
    pub issued_unix_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Not one of ours, tampered with, or from another address.
    Invalid,
    /// Older than its lifetime, or issued in the future.
    Expired,
}

/// A sealed token in an inline buffer.
#[derive(Clone, Copy)]
pub struct Token {
    buf: [u8; MAX_TOKEN_LEN],
    len: usize,
}

impl core::fmt::Debug for Token {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Token({} bytes)", self.len)
    }
}

impl Token {
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// The server-wide key that seals tokens. Every worker of a server (and every
/// server behind one load balancer) must share it for tokens to validate
/// wherever the next packet lands.
pub struct TokenKey {
    key: aead::LessSafeKey,
}

impl core::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

impl TokenKey {
    /// Derives the sealing key from a master secret (HKDF-SHA256, so the
    /// same secret can feed other derivations without key reuse).
    pub fn new(master_secret: &[u8]) -> Self {
        let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"quicpro address validation token");
        let prk = salt.extract(master_secret);
        let mut key = [0u8; 32];
        // Expanding 32 bytes from SHA-256 cannot fail (limit is 255 * 32).
        if let Ok(okm) = prk.expand(&[b"aes-256-gcm key"], &aead::AES_256_GCM) {
            let _ = okm.fill(&mut key);
        }
        let unbound = aead::UnboundKey::new(&aead::AES_256_GCM, &key).unwrap_or_else(|_| unreachable_key());
        Self { key: aead::LessSafeKey::new(unbound) }
    }

    /// Seals a token for `client` issued at `now_unix_secs`.
    pub fn seal(
        &self,
        kind: TokenKind,
        client: SocketAddr,
        original_dcid: &ConnectionId,
        retry_scid: &ConnectionId,
        now_unix_secs: u64,
        rng: &mut dyn RandomSource,
    ) -> Token {
        let mut t = Token { buf: [0; MAX_TOKEN_LEN], len: 0 };
        t.buf[0] = kind as u8;
        rng.fill(&mut t.buf[1..1 + NONCE_LEN]);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&t.buf[1..1 + NONCE_LEN]);
        let body = 1 + NONCE_LEN;
        let mut p = body;
        t.buf[p..p + 8].copy_from_slice(&now_unix_secs.to_be_bytes());
        p += 8;
        for cid in [original_dcid, retry_scid] {
            t.buf[p] = cid.len() as u8;
            p += 1;
            t.buf[p..p + cid.len()].copy_from_slice(cid.as_slice());
            p += cid.len();
        }
        let (aad, aad_len) = associated_data(kind, client);
        let (head, tail) = t.buf.split_at_mut(p);
        let sealed = self.key.seal_in_place_separate_tag(aead::Nonce::assume_unique_for_key(nonce), aead::Aad::from(&aad[..aad_len]), &mut head[body..]);
        // Sealing only fails for inputs beyond AES-GCM's size limit.
        if let Ok(tag) = sealed {
            tail[..TAG_LEN].copy_from_slice(tag.as_ref());
        }
        t.len = p + TAG_LEN;
        t
    }

    /// Opens and checks a token a client presented from `client`.
    pub fn validate(&self, token: &[u8], client: SocketAddr, now_unix_secs: u64, lifetime: Duration) -> Result<ValidatedToken, TokenError> {
        if token.len() < 1 + NONCE_LEN + 8 + 2 + TAG_LEN || token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Invalid);
        }
        let kind = match token[0] {
            1 => TokenKind::Retry,
            2 => TokenKind::NewToken,
            _ => return Err(TokenError::Invalid),
        };
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&token[1..1 + NONCE_LEN]);
        let mut buf = [0u8; MAX_TOKEN_LEN];
        let sealed = &token[1 + NONCE_LEN..];
        buf[..sealed.len()].copy_from_slice(sealed);
        let (aad, aad_len) = associated_data(kind, client);
        let plain = self
            .key
            .open_in_place(aead::Nonce::assume_unique_for_key(nonce), aead::Aad::from(&aad[..aad_len]), &mut buf[..sealed.len()])
            .map_err(|_| TokenError::Invalid)?;
        let mut r = crate::codec::Reader::new(plain);
        let issued = r.u64().map_err(|_| TokenError::Invalid)?;
        let odcid = r.u8().ok().and_then(|n| r.bytes(n as usize).ok()).ok_or(TokenError::Invalid)?;
        let rscid = r.u8().ok().and_then(|n| r.bytes(n as usize).ok()).ok_or(TokenError::Invalid)?;
        if odcid.len() > MAX_CID_SIZE || rscid.len() > MAX_CID_SIZE {
            return Err(TokenError::Invalid);
        }
        // A token from the future is as suspicious as an old one; allow a
        // little clock skew between the workers that share the key.
        if issued > now_unix_secs.saturating_add(5) || now_unix_secs.saturating_sub(issued) > lifetime.as_secs() {
            return Err(TokenError::Expired);
        }
        Ok(ValidatedToken {
            kind,
            original_dcid: ConnectionId::new(odcid).map_err(|_| TokenError::Invalid)?,
            retry_scid: ConnectionId::new(rscid).map_err(|_| TokenError::Invalid)?,
            issued_unix_secs: issued,
        })
    }
}

#[cold]
fn unreachable_key() -> aead::UnboundKey {
    // A 32-byte key is always valid for AES-256-GCM.
    panic!("AES-256-GCM rejected a 32-byte key")
}

/// Binds the token to the client's address: IP and port for Retry tokens,
/// only the IP for NEW_TOKEN tokens since the port of a later connection
/// will differ (§8.1.3).
fn associated_data(kind: TokenKind, client: SocketAddr) -> ([u8; 19], usize) {
    let mut aad = [0u8; 19];
    aad[0] = kind as u8;
    let mut n = 1;
    match client.ip() {
        IpAddr::V4(ip) => {
            aad[n..n + 4].copy_from_slice(&ip.octets());
            n += 4;
        }
        IpAddr::V6(ip) => {
            let ip = ip.to_ipv4_mapped().map(|v4| v4.to_ipv6_mapped()).unwrap_or(ip);
            aad[n..n + 16].copy_from_slice(&ip.octets());
            n += 16;
        }
    }
    if kind == TokenKind::Retry {
        aad[n..n + 2].copy_from_slice(&client.port().to_be_bytes());
        n += 2;
    }
    (aad, n)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::rand::SeededRandom;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn retry_token_round_trip_and_binding() {
        let key = TokenKey::new(b"secret");
        let mut rng = SeededRandom::new(3);
        let odcid = ConnectionId::new(&[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        let rscid = ConnectionId::new(&[9; 20]).unwrap();
        let a = addr("198.18.0.1:4000");
        let t = key.seal(TokenKind::Retry, a, &odcid, &rscid, 1000, &mut rng);
        assert_eq!(t.as_bytes().len(), 1 + 12 + 8 + 1 + 8 + 1 + 20 + 16);
        let v = key.validate(t.as_bytes(), a, 1005, Duration::from_secs(10)).unwrap();
        assert_eq!(v.kind, TokenKind::Retry);
        assert_eq!(v.original_dcid, odcid);
        assert_eq!(v.retry_scid, rscid);
        // Other port, other address, expired, future, tampered, other key.
        assert_eq!(key.validate(t.as_bytes(), addr("198.18.0.1:4001"), 1005, Duration::from_secs(10)), Err(TokenError::Invalid));
        assert_eq!(key.validate(t.as_bytes(), addr("198.18.0.2:4000"), 1005, Duration::from_secs(10)), Err(TokenError::Invalid));
        assert_eq!(key.validate(t.as_bytes(), a, 1011, Duration::from_secs(10)), Err(TokenError::Expired));
        assert_eq!(key.validate(t.as_bytes(), a, 900, Duration::from_secs(10)), Err(TokenError::Expired));
        let mut bad = t.as_bytes().to_vec();
        bad[20] ^= 1;
        assert_eq!(key.validate(&bad, a, 1005, Duration::from_secs(10)), Err(TokenError::Invalid));
        assert_eq!(TokenKey::new(b"other").validate(t.as_bytes(), a, 1005, Duration::from_secs(10)), Err(TokenError::Invalid));
        assert_eq!(key.validate(&[], a, 1005, Duration::from_secs(10)), Err(TokenError::Invalid));
        assert_eq!(key.validate(&[1; 200], a, 1005, Duration::from_secs(10)), Err(TokenError::Invalid));
    }

    #[test]
    fn new_token_ignores_port() {
        let key = TokenKey::new(b"secret");
        let mut rng = SeededRandom::new(4);
        let t = key.seal(TokenKind::NewToken, addr("[2001:db8::1]:5000"), &ConnectionId::EMPTY, &ConnectionId::EMPTY, 50, &mut rng);
        let v = key.validate(t.as_bytes(), addr("[2001:db8::1]:6000"), 60, Duration::from_secs(3600)).unwrap();
        assert_eq!(v.kind, TokenKind::NewToken);
        assert!(v.original_dcid.is_empty());
        assert!(key.validate(t.as_bytes(), addr("[2001:db8::2]:5000"), 60, Duration::from_secs(3600)).is_err());
        // A Retry token cannot be passed off as a NEW_TOKEN one: the kind is in the AAD.
        let mut forged = t.as_bytes().to_vec();
        forged[0] = 1;
        assert!(key.validate(&forged, addr("[2001:db8::1]:5000"), 60, Duration::from_secs(3600)).is_err());
    }
}
