//! Connection IDs (RFC 9000 §5.1) and stateless reset tokens (§10.3).

use core::fmt;

/// RFC 9000 §17.2: a v1 connection ID is at most 20 bytes.
pub const MAX_CID_SIZE: usize = 20;

/// A connection ID of 0 to 20 bytes, stored inline so it can be copied and
/// hashed without allocating.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ConnectionId {
    len: u8,
    bytes: [u8; MAX_CID_SIZE],
}

/// A connection ID longer than 20 bytes in a version that forbids it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CidTooLong;

impl ConnectionId {
    pub const EMPTY: ConnectionId = ConnectionId { len: 0, bytes: [0; MAX_CID_SIZE] };

    pub fn new(bytes: &[u8]) -> Result<Self, CidTooLong> {
        if bytes.len() > MAX_CID_SIZE {
            return Err(CidTooLong);
        }
        let mut cid = Self::EMPTY;
        cid.len = bytes.len() as u8;
        cid.bytes[..bytes.len()].copy_from_slice(bytes);
        Ok(cid)
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

/// Only the ID's own bytes: an 8-byte ID hashes one word, not the 20-byte
/// inline array and a length. Equal IDs have equal bytes, so this agrees
/// with `Eq`.
impl core::hash::Hash for ConnectionId {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        state.write(self.as_slice());
    }
}

impl core::ops::Deref for ConnectionId {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for ConnectionId {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl fmt::Debug for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.as_slice() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// RFC 9000 §10.3: a 16-byte stateless reset token.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ResetToken(pub [u8; 16]);

impl ResetToken {
    pub const LEN: usize = 16;

    /// Constant-time comparison (RFC 9000 §10.3.1 asks that token comparison
    /// not leak timing).
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        if other.len() != 16 {
            return false;
        }
        let mut diff = 0u8;
        for (a, b) in self.0.iter().zip(other) {
            diff |= a ^ b;
        }
        diff == 0
    }
}

impl fmt::Debug for ResetToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}
