//! The keys of one direction (packet + header protection) and of both
//! directions, with whole-packet protect/unprotect helpers.

use super::header::{HeaderProtectionKey, MAX_PN_LEN};
use super::initial::{initial_secrets, INITIAL_SUITE};
use super::packet_key::PacketKey;
use super::secret::KeyMaterial;
use super::suite::CipherSuite;
use super::CryptoError;
use crate::version::Version;

/// Packet protection and header protection keys for one direction.
#[derive(Debug)]
pub struct DirectionalKeys {
    pub packet: PacketKey,
    pub header: HeaderProtectionKey,
}

/// Where things are in a packet after [`DirectionalKeys::unprotect`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unprotected {
    /// The full packet number returned by the caller's decoder.
    pub packet_number: u64,
    /// Encoded packet number length (1..=4).
    pub pn_len: usize,
    /// Header length including the packet number: the plaintext starts here.
    pub header_len: usize,
    /// Plaintext payload length: `packet[header_len..header_len + payload_len]`.
    pub payload_len: usize,
}

impl DirectionalKeys {
    pub fn new(packet: PacketKey, header: HeaderProtectionKey) -> Self {
        Self { packet, header }
    }

    /// Derives key, IV and hp key from a traffic secret (RFC 9001 §5.1).
    pub fn from_secret(suite: CipherSuite, version: Version, secret: &[u8]) -> Result<Self, CryptoError> {
        Self::from_material(&KeyMaterial::derive(suite, version, secret)?)
    }

    /// Builds the ring keys from already derived bytes.
    pub fn from_material(material: &KeyMaterial) -> Result<Self, CryptoError> {
        let suite = material.suite();
        Ok(Self { packet: PacketKey::new(suite, material.key(), material.iv())?, header: HeaderProtectionKey::new(suite, material.hp())? })
    }

    pub fn suite(&self) -> CipherSuite {
        self.packet.suite()
    }

    /// Protects a whole packet in place: AEAD first, then header protection
    /// (RFC 9001 §5.3, §5.4.1).
    ///
    /// Layout of `packet`: unprotected header of `pn_offset + pn_len` bytes
    /// (the AEAD associated data), then the plaintext payload, then 16 bytes
    /// of room for the tag. The payload must be long enough for the header
    /// protection sample (RFC 9001 §5.4.2), or `PacketTooShort` is returned.
    pub fn protect(&self, packet_number: u64, packet: &mut [u8], pn_offset: usize, pn_len: usize) -> Result<(), CryptoError> {
        if pn_offset == 0 || !(1..=MAX_PN_LEN).contains(&pn_len) {
            return Err(CryptoError::BadPacketNumberLength);
        }
        let header_len = pn_offset.checked_add(pn_len).ok_or(CryptoError::PacketTooShort)?;
        // Check the sample fits before touching the payload, so a failure
        // leaves the packet as it was.
        let sample_end = pn_offset.checked_add(super::header::SAMPLE_OFFSET_FROM_PN + super::header::SAMPLE_LEN).ok_or(CryptoError::PacketTooShort)?;
        if packet.len() < sample_end || packet.len() < header_len + self.packet.tag_len() {
            return Err(CryptoError::PacketTooShort);
        }
        let (header, payload_and_tag) = packet.split_at_mut(header_len);
        self.packet.seal_in_place(packet_number, header, payload_and_tag)?;
        self.header.apply(packet, pn_offset, pn_len)
    }

    /// Unprotects a whole packet in place: removes header protection, reads
    /// the truncated packet number, lets `decode_pn(truncated, pn_len)`
    /// recover the full one (RFC 9000 §17.1, Appendix A.3), then opens the
    /// payload. `packet` must end where this packet ends (for a long header,
    /// at the end given by its Length field).
    ///
    /// On error the packet must be discarded (RFC 9001 §5.5); its bytes may
    /// have been partly unprotected.
    pub fn unprotect(&self, packet: &mut [u8], pn_offset: usize, decode_pn: impl FnOnce(u64, usize) -> u64) -> Result<Unprotected, CryptoError> {
        let pn_len = self.header.remove(packet, pn_offset)?;
        let header_len = pn_offset.checked_add(pn_len).ok_or(CryptoError::PacketTooShort)?;
        let pn_bytes = packet.get(pn_offset..header_len).ok_or(CryptoError::PacketTooShort)?;
        let truncated = pn_bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        let packet_number = decode_pn(truncated, pn_len);
        if packet.len() < header_len {
            return Err(CryptoError::PacketTooShort);
        }
        let (header, payload_with_tag) = packet.split_at_mut(header_len);
        let payload_len = self.packet.open_in_place(packet_number, header, payload_with_tag)?;
        Ok(Unprotected { packet_number, pn_len, header_len, payload_len })
    }
}

/// The keys of both directions at one encryption level.
#[derive(Debug)]
pub struct Keys {
    /// Keys for packets we send.
    pub local: DirectionalKeys,
    /// Keys for packets we receive.
    pub remote: DirectionalKeys,
}

impl Keys {
    /// Initial keys (RFC 9001 §5.2) from the client's first Destination
    /// Connection ID. A client sends with the "client in" secret and receives
    /// with "server in"; a server the other way round.
    pub fn initial(version: Version, dcid: &[u8], is_server: bool) -> Result<Keys, CryptoError> {
        let secrets = initial_secrets(version, dcid)?;
        let client = DirectionalKeys::from_secret(INITIAL_SUITE, version, secrets.client.as_bytes())?;
        let server = DirectionalKeys::from_secret(INITIAL_SUITE, version, secrets.server.as_bytes())?;
        Ok(if is_server { Keys { local: server, remote: client } } else { Keys { local: client, remote: server } })
    }
}
