//! QUIC-LB connection IDs (draft-ietf-quic-load-balancers-21): a server
//! encodes its server ID in every connection ID it issues, in the clear or
//! encrypted with a key it shares with the load balancers, so that a load
//! balancer routes any packet of a connection — after a migration too — to
//! the right server without per-connection state.
//!
//! ```text
//! first octet   config rotation (3 bits) | length or random (5 bits)   §3
//! plaintext     server ID (≥ 1 octet) | nonce (≥ 4 octets), ≤ 19 octets §5.2
//! ```
//!
//! Without a key the plaintext block is the connection ID; with one it is
//! encrypted with AES-128: in one pass when it is exactly 16 octets
//! ([`single_pass`]), otherwise with a four-round Feistel network
//! ([`four_pass`]). [`LbConfig`] is one configuration, [`LbEncoder`] the
//! server's side (a [`ConnectionIdGenerator`]), [`LbDecoder`] a load
//! balancer's.

mod decoder;
mod format;
mod four_pass;
mod single_pass;

pub use decoder::LbDecoder;
pub use format::ServerCidFormat;

use aes::cipher::{Array, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use aes::Aes128;

use crate::cid::{ConnectionId, MAX_CID_SIZE};
use crate::cid_gen::ConnectionIdGenerator;
use crate::rand::RandomSource;

/// §5.3: server ID and nonce sum to at most 19 octets (QUIC v1 and v2
/// connection IDs are at most 20, the first octet included).
pub const MAX_PLAINTEXT: usize = 19;
/// §5.3: the nonce is at least 4 octets.
pub const MIN_NONCE: usize = 4;
/// §3.2: 0b111 marks unroutable connection IDs, never a configuration.
pub const UNROUTABLE_ROTATION: u8 = 0b111;

/// Why a configuration is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbConfigError {
    /// Config rotation above 6 (0b111 is reserved, §3.1).
    ReservedRotation,
    /// A server ID of 0 octets (§5.3: at least one).
    EmptyServerId,
    /// A nonce under 4 octets (§5.3).
    ShortNonce,
    /// Server ID and nonce over 19 octets (§5.3).
    TooLong,
    /// A server ID of another length than the configuration's.
    ServerIdLength,
}

impl core::fmt::Display for LbConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            LbConfigError::ReservedRotation => "config rotation must be 0..=6 (0b111 marks unroutable IDs)",
            LbConfigError::EmptyServerId => "the server ID needs at least one octet",
            LbConfigError::ShortNonce => "the nonce needs at least four octets",
            LbConfigError::TooLong => "server ID and nonce exceed 19 octets",
            LbConfigError::ServerIdLength => "the server ID length differs from the configuration's",
        })
    }
}

impl std::error::Error for LbConfigError {}

/// A server ID: at most 15 octets (19 minus the 4-octet minimum nonce).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ServerId {
    bytes: [u8; MAX_PLAINTEXT - MIN_NONCE],
    len: u8,
}

impl ServerId {
    pub fn new(bytes: &[u8]) -> Result<Self, LbConfigError> {
        if bytes.is_empty() {
            return Err(LbConfigError::EmptyServerId);
        }
        let mut id = Self::default();
        id.bytes.get_mut(..bytes.len()).ok_or(LbConfigError::TooLong)?.copy_from_slice(bytes);
        id.len = bytes.len() as u8;
        Ok(id)
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl core::fmt::Debug for ServerId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ServerId(")?;
        for b in self.as_slice() {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// The AES-128 key of an encrypted configuration.
#[derive(Clone)]
pub(crate) struct LbKey(Aes128);

impl LbKey {
    fn new(key: &[u8; 16]) -> Self {
        Self(Aes128::new(&Array::from(*key)))
    }

    pub(crate) fn encrypt(&self, block: &mut [u8; 16]) {
        let mut b = Array::from(*block);
        self.0.encrypt_block(&mut b);
        *block = b.into();
    }

    pub(crate) fn decrypt(&self, block: &mut [u8; 16]) {
        let mut b = Array::from(*block);
        self.0.decrypt_block(&mut b);
        *block = b.into();
    }
}

/// One QUIC-LB configuration (§5.3): shared by the servers that issue IDs
/// with it and the load balancers that route them.
#[derive(Clone)]
pub struct LbConfig {
    rotation: u8,
    server_id_len: u8,
    nonce_len: u8,
    key: Option<LbKey>,
    /// The first octet's low five bits give the length of what follows
    /// (§3.3); otherwise they are random.
    self_encode_length: bool,
}

impl core::fmt::Debug for LbConfig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LbConfig")
            .field("rotation", &self.rotation)
            .field("server_id_len", &self.server_id_len)
            .field("nonce_len", &self.nonce_len)
            .field("encrypted", &self.key.is_some())
            .finish()
    }
}

impl LbConfig {
    /// `key`: `None` for plaintext IDs (observers can then link a
    /// connection's IDs to its server, §5.3).
    pub fn new(rotation: u8, server_id_len: usize, nonce_len: usize, key: Option<&[u8; 16]>) -> Result<Self, LbConfigError> {
        if rotation >= UNROUTABLE_ROTATION {
            return Err(LbConfigError::ReservedRotation);
        }
        if server_id_len == 0 {
            return Err(LbConfigError::EmptyServerId);
        }
        if nonce_len < MIN_NONCE {
            return Err(LbConfigError::ShortNonce);
        }
        if server_id_len + nonce_len > MAX_PLAINTEXT {
            return Err(LbConfigError::TooLong);
        }
        Ok(Self { rotation, server_id_len: server_id_len as u8, nonce_len: nonce_len as u8, key: key.map(LbKey::new), self_encode_length: true })
    }

    /// Random low bits in the first octet instead of the length (§3.3).
    pub fn without_length_encoding(mut self) -> Self {
        self.self_encode_length = false;
        self
    }

    pub fn rotation(&self) -> u8 {
        self.rotation
    }

    pub fn server_id_len(&self) -> usize {
        usize::from(self.server_id_len)
    }

    pub fn nonce_len(&self) -> usize {
        usize::from(self.nonce_len)
    }

    fn plaintext_len(&self) -> usize {
        self.server_id_len() + self.nonce_len()
    }

    /// Length of the IDs: the first octet and the plaintext block.
    pub fn cid_len(&self) -> usize {
        1 + self.plaintext_len()
    }

    pub fn is_encrypted(&self) -> bool {
        self.key.is_some()
    }

    /// Writes the connection ID for `server_id` and `nonce` into `out`
    /// (which must hold [`LbConfig::cid_len`] octets); `random_bits` fill
    /// the first octet's low bits when the length is not encoded.
    pub fn encode(&self, server_id: &ServerId, nonce: &[u8], random_bits: u8, out: &mut [u8]) -> Result<(), LbConfigError> {
        let n = self.plaintext_len();
        if server_id.as_slice().len() != self.server_id_len() {
            return Err(LbConfigError::ServerIdLength);
        }
        let (Some(out), Some(nonce)) = (out.get_mut(..1 + n), nonce.get(..self.nonce_len())) else { return Err(LbConfigError::TooLong) };
        let low = if self.self_encode_length { n as u8 } else { random_bits & 0x1f };
        out[0] = (self.rotation << 5) | (low & 0x1f);
        let block = &mut out[1..];
        block[..self.server_id_len()].copy_from_slice(server_id.as_slice());
        block[self.server_id_len()..].copy_from_slice(nonce);
        match &self.key {
            None => {}
            Some(k) if n == 16 => single_pass::encrypt(k, block),
            Some(k) => four_pass::encrypt(k, block),
        }
        Ok(())
    }

    /// The server ID in `cid`, if it was made with this configuration
    /// (right length and config rotation). Never panics on any input.
    pub fn decode(&self, cid: &[u8]) -> Option<ServerId> {
        let n = self.plaintext_len();
        if cid.len() < 1 + n || cid.first()? >> 5 != self.rotation {
            return None;
        }
        let block = cid.get(1..1 + n)?;
        let sid = self.server_id_len();
        match &self.key {
            None => ServerId::new(block.get(..sid)?).ok(),
            Some(k) if n == 16 => {
                let mut b = [0u8; 16];
                b.copy_from_slice(block);
                single_pass::decrypt(k, &mut b);
                ServerId::new(b.get(..sid)?).ok()
            }
            Some(k) => {
                let mut buf = [0u8; MAX_PLAINTEXT];
                let buf = buf.get_mut(..n)?;
                buf.copy_from_slice(block);
                four_pass::decrypt(k, buf);
                ServerId::new(buf.get(..sid)?).ok()
            }
        }
    }
}

/// A server's connection IDs under one configuration (§5.4): its server ID
/// and a nonce that never repeats.
///
/// The nonce is a counter started at a random value: with a key, §9.6
/// ("Connection ID Entropy") only needs nonces not to repeat, and the
/// encryption hides the counter; without one, §5.4 wants nonces with "no
/// observable relationship" to earlier ones, so they are drawn at random.
#[derive(Debug, Clone)]
pub struct LbEncoder {
    config: LbConfig,
    server_id: ServerId,
    counter: Option<u128>,
}

impl LbEncoder {
    pub fn new(config: LbConfig, server_id: &[u8]) -> Result<Self, LbConfigError> {
        let server_id = ServerId::new(server_id)?;
        if server_id.as_slice().len() != config.server_id_len() {
            return Err(LbConfigError::ServerIdLength);
        }
        Ok(Self { config, server_id, counter: None })
    }

    pub fn config(&self) -> &LbConfig {
        &self.config
    }

    pub fn server_id(&self) -> ServerId {
        self.server_id
    }
}

impl ConnectionIdGenerator for LbEncoder {
    fn generate(&mut self, rng: &mut dyn RandomSource) -> ConnectionId {
        let n = self.config.nonce_len();
        let mut nonce = [0u8; MAX_PLAINTEXT];
        if self.config.is_encrypted() {
            let c = *self.counter.get_or_insert_with(|| {
                let mut seed = [0u8; 16];
                rng.fill(&mut seed);
                u128::from_be_bytes(seed)
            });
            self.counter = Some(c.wrapping_add(1));
            // The counter's low octets, most significant first (nonces of
            // up to 16 octets; longer ones are zero-extended on the left).
            let be = c.to_be_bytes();
            let take = n.min(16);
            nonce[n - take..n].copy_from_slice(&be[16 - take..]);
        } else {
            rng.fill(&mut nonce[..n]);
        }
        let mut r = [0u8; 1];
        rng.fill(&mut r);
        let mut out = [0u8; MAX_CID_SIZE];
        let len = self.config.cid_len();
        if self.config.encode(&self.server_id, &nonce[..n], r[0], &mut out).is_err() {
            return ConnectionId::EMPTY;
        }
        ConnectionId::new(&out[..len]).unwrap_or(ConnectionId::EMPTY)
    }

    fn cid_len(&self) -> usize {
        self.config.cid_len()
    }

    fn validate(&self, cid: &[u8]) -> bool {
        cid.len() == self.config.cid_len() && self.config.decode(cid) == Some(self.server_id)
    }
}

#[cfg(test)]
mod tests;
