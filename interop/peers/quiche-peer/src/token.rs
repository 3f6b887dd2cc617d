//! Retry tokens.
//!
//! Layout (all integers big-endian):
//!
//! ```text
//! "qpr1" | issued (u64 seconds since the epoch)
//!        | addr family (4 or 6) | address (4 or 16) | port (u16)
//!        | odcid len (u8) | odcid | retry scid len (u8) | retry scid
//!        | HMAC-SHA256 over everything before it (32)
//! ```
//!
//! The MAC key is random per process, so tokens from another run are
//! rejected. The client address binds the token to the path (RFC 9000
//! 8.1.2), the original DCID is what quiche needs for the
//! original_destination_connection_id transport parameter, and the Retry
//! SCID must match the DCID of the Initial carrying the token.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MAGIC: &[u8; 4] = b"qpr1";
const MAC_LEN: usize = 32;
/// Long enough for a slow handshake on the runner's 1.5 s RTT link.
const LIFETIME: Duration = Duration::from_secs(30);

pub struct TokenKey([u8; 32]);

impl TokenKey {
    pub fn random() -> Result<Self, String> {
        let mut k = [0u8; 32];
        crate::common::random_bytes(&mut k)?;
        Ok(TokenKey(k))
    }

    fn mac(&self, data: &[u8]) -> Result<[u8; MAC_LEN], String> {
        boring::hash::hmac_sha256(&self.0, data).map_err(|e| format!("HMAC: {e}"))
    }

    pub fn mint(&self, peer: SocketAddr, odcid: &[u8], retry_scid: &[u8]) -> Result<Vec<u8>, String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let mut t = Vec::with_capacity(96);
        t.extend_from_slice(MAGIC);
        t.extend_from_slice(&now.to_be_bytes());
        push_addr(&mut t, peer);
        t.push(odcid.len() as u8);
        t.extend_from_slice(odcid);
        t.push(retry_scid.len() as u8);
        t.extend_from_slice(retry_scid);
        let mac = self.mac(&t)?;
        t.extend_from_slice(&mac);
        Ok(t)
    }

    /// Checks a token from a client Initial sent from `peer` to
    /// `dcid`. Returns the original DCID, or why the token is refused.
    pub fn validate(&self, token: &[u8], peer: SocketAddr, dcid: &[u8]) -> Result<Vec<u8>, &'static str> {
        if token.len() < MAGIC.len() + MAC_LEN {
            return Err("too short");
        }
        let (body, mac) = token.split_at(token.len() - MAC_LEN);
        let expected = self.mac(body).map_err(|_| "HMAC failure")?;
        if !boring::memcmp::eq(&expected, mac) {
            return Err("bad MAC");
        }

        // The MAC is ours, so the body is well formed unless our own
        // encoder is broken; parse defensively anyway.
        let mut r = Reader(body);
        if r.take(MAGIC.len())? != MAGIC {
            return Err("bad magic");
        }
        let issued = u64::from_be_bytes(r.array::<8>()?);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        if now.saturating_sub(issued) > LIFETIME.as_secs() {
            return Err("expired");
        }

        let mut addr = Vec::new();
        push_addr(&mut addr, peer);
        if r.take(addr.len())? != addr.as_slice() {
            return Err("issued to another address");
        }

        let odcid_len = r.take(1)?[0] as usize;
        let odcid = r.take(odcid_len)?.to_vec();
        let rscid_len = r.take(1)?[0] as usize;
        let rscid = r.take(rscid_len)?;
        if rscid != dcid {
            return Err("Initial DCID is not the Retry SCID");
        }
        if !r.0.is_empty() {
            return Err("trailing bytes");
        }
        Ok(odcid)
    }
}

fn push_addr(t: &mut Vec<u8>, a: SocketAddr) {
    // Normalise v4-mapped v6 addresses so a dual-stack socket does not
    // make the same client look like two.
    let ip = match a.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => {
            t.push(4);
            t.extend_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            t.push(6);
            t.extend_from_slice(&v6.octets());
        }
    }
    t.extend_from_slice(&a.port().to_be_bytes());
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.0.len() < n {
            return Err("truncated");
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], &'static str> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejections() {
        let key = TokenKey::random().unwrap();
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let other: SocketAddr = "127.0.0.1:5001".parse().unwrap();
        let t = key.mint(peer, b"original", b"retryscid").unwrap();
        assert_eq!(key.validate(&t, peer, b"retryscid").unwrap(), b"original");
        assert!(key.validate(&t, other, b"retryscid").is_err());
        assert!(key.validate(&t, peer, b"otherscid").is_err());
        let mut bad = t.clone();
        bad[10] ^= 1;
        assert!(key.validate(&bad, peer, b"retryscid").is_err());
        assert!(key.validate(&t[..10], peer, b"retryscid").is_err());
        let other_key = TokenKey::random().unwrap();
        assert!(other_key.validate(&t, peer, b"retryscid").is_err());
    }
}
