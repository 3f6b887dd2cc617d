//! Address-validation tokens a client kept from NEW_TOKEN frames (RFC 9000
//! §8.1.3), to present in the Initial of its next connection to the same
//! server: a server that would send a Retry (under load, or always) then
//! accepts the connection without the extra round trip.
//!
//! Keyed by server name and port (a token is only meaningful to the server
//! that issued it). Each token is used once (§8.1.3: reusing one lets an
//! observer link the connections), and the store is bounded.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

/// Servers remembered at most; the oldest entry goes first.
pub const MAX_SERVERS: usize = 256;
/// Tokens kept per server at most (a server sends one per connection).
pub const MAX_TOKENS_PER_SERVER: usize = 4;

#[derive(Debug, Default)]
struct Inner {
    by_server: HashMap<(String, u16), VecDeque<Bytes>>,
    /// Insertion order of `by_server`'s keys, for eviction.
    order: VecDeque<(String, u16)>,
}

/// A token store shared by the connections of a client (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct TokenStore(Arc<Mutex<Inner>>);

impl TokenStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps `token` for the next connection to `server_name`:`port`.
    pub fn insert(&self, server_name: &str, port: u16, token: Bytes) {
        if token.is_empty() {
            return;
        }
        let mut g = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (server_name.to_string(), port);
        if !g.by_server.contains_key(&key) {
            if g.order.len() >= MAX_SERVERS {
                if let Some(old) = g.order.pop_front() {
                    g.by_server.remove(&old);
                }
            }
            g.order.push_back(key.clone());
        }
        let q = g.by_server.entry(key).or_default();
        if q.len() >= MAX_TOKENS_PER_SERVER {
            q.pop_front();
        }
        q.push_back(token);
    }

    /// Tokens kept for `server_name`:`port`.
    pub fn count(&self, server_name: &str, port: u16) -> usize {
        let g = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        g.by_server.get(&(server_name.to_string(), port)).map_or(0, VecDeque::len)
    }

    /// The newest token for `server_name`:`port`, removed (used once), or
    /// an empty one.
    pub fn take(&self, server_name: &str, port: u16) -> Bytes {
        let mut g = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        g.by_server.get_mut(&(server_name.to_string(), port)).and_then(VecDeque::pop_back).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_per_server_used_once_and_bounded() {
        let s = TokenStore::new();
        assert!(s.take("a.example", 443).is_empty());
        s.insert("a.example", 443, Bytes::from_static(b"t1"));
        s.insert("a.example", 443, Bytes::from_static(b"t2"));
        s.insert("a.example", 8443, Bytes::from_static(b"other port"));
        assert_eq!(s.take("a.example", 443), Bytes::from_static(b"t2"));
        assert_eq!(s.take("a.example", 443), Bytes::from_static(b"t1"));
        assert!(s.take("a.example", 443).is_empty());
        assert_eq!(s.take("a.example", 8443), Bytes::from_static(b"other port"));
        for i in 0..10u8 {
            s.insert("b.example", 443, Bytes::from(vec![i]));
        }
        let kept: Vec<_> = std::iter::from_fn(|| Some(s.take("b.example", 443)).filter(|t| !t.is_empty())).collect();
        assert_eq!(kept.len(), MAX_TOKENS_PER_SERVER);
        for i in 0..(MAX_SERVERS + 5) {
            s.insert(&format!("s{i}.example"), 443, Bytes::from_static(b"x"));
        }
        assert!(s.take("s0.example", 443).is_empty(), "the oldest server was evicted");
        assert!(!s.take(&format!("s{}.example", MAX_SERVERS + 4), 443).is_empty());
    }
}
