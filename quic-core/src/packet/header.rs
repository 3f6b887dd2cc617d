//! Packet headers: long (Initial, 0-RTT, Handshake, Retry), short, and
//! Version Negotiation (RFC 9000 §17, RFC 9369 §3.2, RFC 8999).
//!
//! Parsing happens in two steps because of header protection (RFC 9001
//! §5.4): [`ProtectedHeader::parse`] reads what is visible before header
//! protection is removed (form, version, connection IDs, token, length) and
//! finds where the packet ends inside the datagram; it returns offsets, not
//! borrows, so the caller can then unprotect the packet in place.

use core::ops::Range;

use crate::cid::{ConnectionId, MAX_CID_SIZE};
use crate::codec::{Reader, Writer};
use crate::error::BufferTooShort;
use crate::packet::number;
use crate::varint;
use crate::version::Version;

/// RFC 9000 §17.2: the Header Form bit.
pub const LONG_HEADER_FORM: u8 = 0x80;
/// RFC 9000 §17.2: the Fixed Bit, 1 unless greased (RFC 9287).
pub const FIXED_BIT: u8 = 0x40;
/// RFC 9000 §17.3.1: the spin bit of a short header.
pub const SPIN_BIT: u8 = 0x20;
/// RFC 9000 §17.3.1: the Key Phase bit of a short header.
pub const KEY_PHASE_BIT: u8 = 0x04;
/// RFC 9000 §17.2: reserved bits of a long header (protected).
pub const LONG_RESERVED_BITS: u8 = 0x0c;
/// RFC 9000 §17.3.1: reserved bits of a short header (protected).
pub const SHORT_RESERVED_BITS: u8 = 0x18;
/// Length of the Retry Integrity Tag (RFC 9001 §5.8).
pub const RETRY_TAG_LEN: usize = 16;
/// RFC 8999 §5.1: connection IDs in long headers of any version fit in a byte.
pub const MAX_INVARIANT_CID_SIZE: usize = 255;

/// The four long-header packet types (RFC 9000 §17.2, Table 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LongType {
    Initial,
    ZeroRtt,
    Handshake,
    Retry,
}

impl LongType {
    /// The two Long Packet Type bits for `version`. RFC 9369 §3.2 rotates
    /// them in v2 so middleboxes do not ossify on v1's values.
    pub fn to_bits(self, version: Version) -> u8 {
        let v1 = match self {
            LongType::Initial => 0,
            LongType::ZeroRtt => 1,
            LongType::Handshake => 2,
            LongType::Retry => 3,
        };
        if version == Version::V2 {
            (v1 + 1) & 0x03
        } else {
            v1
        }
    }

    pub fn from_bits(bits: u8, version: Version) -> LongType {
        let v1 = if version == Version::V2 { bits.wrapping_sub(1) & 0x03 } else { bits & 0x03 };
        match v1 {
            0 => LongType::Initial,
            1 => LongType::ZeroRtt,
            2 => LongType::Handshake,
            _ => LongType::Retry,
        }
    }
}

/// What kind of packet a header announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    Long(LongType),
    Short,
    VersionNegotiation,
}

/// Why a packet was dropped before decryption. None of these close a
/// connection: RFC 9000 §5.2 and §12.2 have endpoints discard packets they
/// cannot parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// Input ended inside the header or the Length field points past it.
    Truncated,
    /// A v1/v2 long header with a connection ID over 20 bytes (§17.2).
    CidTooLong,
    /// A long header of a version we do not speak; enough is parsed (RFC
    /// 8999) to answer with Version Negotiation. Ranges index the input.
    UnsupportedVersion { version: Version, dcid: Range<usize>, scid: Range<usize> },
    /// A Version Negotiation packet whose version list is empty or not a
    /// multiple of four bytes.
    MalformedVersionNegotiation,
    /// Length field smaller than the smallest packet number.
    InvalidLength,
}

impl core::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for HeaderError {}

/// A packet located in a datagram, before header protection is removed.
///
/// All ranges are offsets into the slice given to [`ProtectedHeader::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedHeader {
    pub ty: PacketType,
    /// The first byte as received (its low bits are still protected).
    pub first_byte: u8,
    /// `None` for short headers.
    pub version: Option<Version>,
    pub dcid: ConnectionId,
    /// Empty for short headers.
    pub scid: ConnectionId,
    /// Initial: the token; Retry: the Retry Token. Empty otherwise.
    pub token: Range<usize>,
    /// Where the (protected) packet number starts. For Retry and Version
    /// Negotiation, which have none, this is where the type-specific body
    /// starts (the tag, the version list).
    pub pn_offset: usize,
    /// Bytes this packet occupies in the datagram; the next coalesced packet
    /// starts here (RFC 9000 §12.2).
    pub len: usize,
}

impl ProtectedHeader {
    /// Parses the packet at the front of `buf`. `short_dcid_len` is the length
    /// of the connection IDs this endpoint issues, which short headers do not
    /// encode (RFC 9000 §17.3.1).
    pub fn parse(buf: &[u8], short_dcid_len: usize) -> Result<ProtectedHeader, HeaderError> {
        let mut r = Reader::new(buf);
        let first_byte = r.u8().map_err(|_| HeaderError::Truncated)?;
        if first_byte & LONG_HEADER_FORM == 0 {
            return Self::parse_short(buf, first_byte, short_dcid_len);
        }
        let version = Version(r.u32().map_err(|_| HeaderError::Truncated)?);
        let dcid = read_cid_range(&mut r)?;
        let scid = read_cid_range(&mut r)?;

        if version == Version::NEGOTIATION {
            // RFC 9000 §17.2.1: the rest is a list of 32-bit versions.
            let list = r.peek_rest();
            if list.is_empty() || !list.len().is_multiple_of(4) {
                return Err(HeaderError::MalformedVersionNegotiation);
            }
            return Ok(ProtectedHeader {
                ty: PacketType::VersionNegotiation,
                first_byte,
                version: Some(version),
                dcid: cid_from(buf, &dcid)?,
                scid: cid_from(buf, &scid)?,
                token: 0..0,
                pn_offset: r.position(),
                len: buf.len(),
            });
        }
        if !version.is_supported() {
            return Err(HeaderError::UnsupportedVersion { version, dcid, scid });
        }
        // RFC 9000 §17.2: v1 (and v2) connection IDs are at most 20 bytes.
        let dcid_v = cid_from(buf, &dcid)?;
        let scid_v = cid_from(buf, &scid)?;
        let ty = LongType::from_bits((first_byte >> 4) & 0x03, version);

        let mut token = 0..0;
        match ty {
            LongType::Retry => {
                // RFC 9000 §17.2.5: token, then a 16-byte integrity tag.
                let start = r.position();
                let rest = r.remaining();
                if rest < RETRY_TAG_LEN {
                    return Err(HeaderError::Truncated);
                }
                let tag_at = start + rest - RETRY_TAG_LEN;
                return Ok(ProtectedHeader {
                    ty: PacketType::Long(ty),
                    first_byte,
                    version: Some(version),
                    dcid: dcid_v,
                    scid: scid_v,
                    token: start..tag_at,
                    pn_offset: tag_at,
                    len: buf.len(),
                });
            }
            LongType::Initial => {
                // RFC 9000 §17.2.2: Token Length, Token.
                let len = r.varint_len().map_err(|_| HeaderError::Truncated)?;
                let start = r.position();
                r.skip(len).map_err(|_| HeaderError::Truncated)?;
                token = start..start + len;
            }
            LongType::ZeroRtt | LongType::Handshake => {}
        }
        // RFC 9000 §17.2: Length covers the packet number and the payload.
        let length = r.varint().map_err(|_| HeaderError::Truncated)?;
        let pn_offset = r.position();
        if length < 1 {
            return Err(HeaderError::InvalidLength);
        }
        if length > r.remaining() as u64 {
            return Err(HeaderError::Truncated);
        }
        Ok(ProtectedHeader {
            ty: PacketType::Long(ty),
            first_byte,
            version: Some(version),
            dcid: dcid_v,
            scid: scid_v,
            token,
            pn_offset,
            len: pn_offset + length as usize,
        })
    }

    fn parse_short(buf: &[u8], first_byte: u8, dcid_len: usize) -> Result<ProtectedHeader, HeaderError> {
        let dcid_bytes = buf.get(1..1 + dcid_len).ok_or(HeaderError::Truncated)?;
        let dcid = ConnectionId::new(dcid_bytes).map_err(|_| HeaderError::CidTooLong)?;
        Ok(ProtectedHeader {
            ty: PacketType::Short,
            first_byte,
            version: None,
            dcid,
            scid: ConnectionId::EMPTY,
            token: 0..0,
            pn_offset: 1 + dcid_len,
            len: buf.len(),
        })
    }

    /// Whether the Fixed Bit is set. RFC 9000 §17.2 has receivers discard
    /// packets where it is 0 unless the peer negotiated grease_quic_bit
    /// (RFC 9287 §3); that decision belongs to the caller.
    pub fn fixed_bit(&self) -> bool {
        self.first_byte & FIXED_BIT != 0
    }

    pub fn is_long(&self) -> bool {
        self.first_byte & LONG_HEADER_FORM != 0
    }

    /// True for packet types that carry a packet number and a protected payload.
    pub fn is_protected(&self) -> bool {
        matches!(self.ty, PacketType::Short | PacketType::Long(LongType::Initial | LongType::ZeroRtt | LongType::Handshake))
    }
}

fn read_cid_range(r: &mut Reader<'_>) -> Result<Range<usize>, HeaderError> {
    let len = r.u8().map_err(|_| HeaderError::Truncated)? as usize;
    let start = r.position();
    r.skip(len).map_err(|_| HeaderError::Truncated)?;
    Ok(start..start + len)
}

fn cid_from(buf: &[u8], range: &Range<usize>) -> Result<ConnectionId, HeaderError> {
    let bytes = buf.get(range.clone()).ok_or(HeaderError::Truncated)?;
    ConnectionId::new(bytes).map_err(|_| HeaderError::CidTooLong)
}

/// Peeks the destination connection ID of the first packet in a datagram
/// without validating the rest, for routing (RFC 8999 §5). Long headers of
/// any version may carry up to 255 bytes; IDs over 20 bytes are returned as
/// `None` since no connection of ours can own them.
pub fn peek_dcid(datagram: &[u8], short_dcid_len: usize) -> Option<ConnectionId> {
    let first = *datagram.first()?;
    if first & LONG_HEADER_FORM == 0 {
        return ConnectionId::new(datagram.get(1..1 + short_dcid_len)?).ok();
    }
    let len = *datagram.get(5)? as usize;
    ConnectionId::new(datagram.get(6..6 + len)?).ok()
}

/// Walks the packets coalesced in one datagram (RFC 9000 §12.2) without
/// holding a borrow of it, so the receive path can decrypt each packet in
/// place between steps; [`CoalescedPackets`] is the same walk as an
/// iterator over a shared slice.
///
/// Each step yields a packet's start offset and its parsed header. The walk
/// stops at the first packet that fails (the rest of the datagram is
/// unusable since its boundaries are unknown), after a short header, a
/// Version Negotiation or a Retry packet (each extends to the end of the
/// datagram), and at zero padding after a packet.
#[derive(Debug, Clone)]
pub struct PacketCursor {
    offset: usize,
    short_dcid_len: usize,
    done: bool,
}

impl PacketCursor {
    pub fn new(short_dcid_len: usize) -> Self {
        Self { offset: 0, short_dcid_len, done: false }
    }

    /// The next packet of `datagram` (always the same datagram).
    pub fn next_in(&mut self, datagram: &[u8]) -> Option<Result<(usize, ProtectedHeader), HeaderError>> {
        if self.done {
            return None;
        }
        let rest = datagram.get(self.offset..).filter(|r| !r.is_empty())?;
        // RFC 9000 §12.2 / RFC 9001 §5.7: senders pad with zero bytes after the
        // last packet; a zero first byte cannot start a QUIC v1 packet (the
        // fixed bit is 0, and a short header cannot follow another packet
        // anyway), so treat a trailing run of zeros as padding.
        if self.offset > 0 && rest[0] == 0 {
            self.done = true;
            return None;
        }
        match ProtectedHeader::parse(rest, self.short_dcid_len) {
            Ok(h) => {
                let start = self.offset;
                self.offset += h.len;
                if !h.is_long() || matches!(h.ty, PacketType::VersionNegotiation | PacketType::Long(LongType::Retry)) {
                    self.done = true;
                }
                Some(Ok((start, h)))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Iterates over the packets coalesced in one datagram: [`PacketCursor`]
/// over a shared slice.
#[derive(Debug, Clone)]
pub struct CoalescedPackets<'a> {
    datagram: &'a [u8],
    cursor: PacketCursor,
}

impl<'a> CoalescedPackets<'a> {
    pub fn new(datagram: &'a [u8], short_dcid_len: usize) -> Self {
        Self { datagram, cursor: PacketCursor::new(short_dcid_len) }
    }
}

impl Iterator for CoalescedPackets<'_> {
    type Item = Result<(usize, ProtectedHeader), HeaderError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.cursor.next_in(self.datagram)
    }
}

/// Where the fields of an encoded header sit, for sealing the packet later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderLayout {
    /// Offset of the packet number; the header ends at `pn_offset + pn_len`.
    pub pn_offset: usize,
    pub pn_len: usize,
    /// Offset and width of a long header's Length field, to back-fill.
    pub length_field: Option<(usize, usize)>,
}

impl HeaderLayout {
    pub fn header_len(&self) -> usize {
        self.pn_offset + self.pn_len
    }

    /// Back-fills a long header's Length with the packet number plus
    /// `payload_len` (which includes the AEAD tag). `buf` starts at the
    /// packet's first byte.
    pub fn set_payload_len(&self, buf: &mut [u8], payload_len: usize) -> Result<(), BufferTooShort> {
        let Some((at, width)) = self.length_field else {
            return Ok(());
        };
        let v = (self.pn_len + payload_len) as u64;
        let dst = buf.get_mut(at..).ok_or(BufferTooShort)?;
        if varint::encode_with_len(v, width, dst) {
            Ok(())
        } else {
            Err(BufferTooShort)
        }
    }
}

/// A long header to encode (Initial, 0-RTT or Handshake).
#[derive(Debug, Clone, Copy)]
pub struct LongHeader<'a> {
    pub ty: LongType,
    pub version: Version,
    pub dcid: &'a [u8],
    pub scid: &'a [u8],
    /// Only Initial packets carry a token.
    pub token: &'a [u8],
}

impl LongHeader<'_> {
    /// Writes the header up to and including the packet number. The Length
    /// field is reserved `length_width` bytes (2 covers packets below 16 KiB)
    /// and filled in by [`HeaderLayout::set_payload_len`] once the payload is
    /// known.
    pub fn encode(&self, w: &mut Writer<'_>, pn: u64, pn_len: usize, length_width: usize) -> Result<HeaderLayout, BufferTooShort> {
        if !(1..=4).contains(&pn_len) || self.dcid.len() > MAX_CID_SIZE || self.scid.len() > MAX_CID_SIZE || self.ty == LongType::Retry {
            return Err(BufferTooShort);
        }
        let first = LONG_HEADER_FORM | FIXED_BIT | (self.ty.to_bits(self.version) << 4) | (pn_len as u8 - 1);
        w.u8(first)?;
        w.u32(self.version.0)?;
        w.u8(self.dcid.len() as u8)?;
        w.put(self.dcid)?;
        w.u8(self.scid.len() as u8)?;
        w.put(self.scid)?;
        if self.ty == LongType::Initial {
            w.varint_prefixed(self.token)?;
        }
        let length_at = w.reserve(length_width)?;
        // Pre-fill so the buffer is valid even if the caller forgets to set it.
        w.written_mut()[length_at..].fill(0);
        let pn_offset = w.len();
        let mut pn_bytes = [0u8; 4];
        number::write_truncated(pn, pn_len, &mut pn_bytes);
        w.put(&pn_bytes[..pn_len])?;
        let layout = HeaderLayout { pn_offset, pn_len, length_field: Some((length_at, length_width)) };
        // Make the reserved field a well-formed varint of the right width now.
        if !varint::encode_with_len(pn_len as u64, length_width, &mut w.written_mut()[length_at..]) {
            return Err(BufferTooShort);
        }
        Ok(layout)
    }
}

/// A short (1-RTT) header to encode (RFC 9000 §17.3.1).
#[derive(Debug, Clone, Copy)]
pub struct ShortHeader<'a> {
    pub dcid: &'a [u8],
    pub spin: bool,
    pub key_phase: bool,
}

impl ShortHeader<'_> {
    pub fn encode(&self, w: &mut Writer<'_>, pn: u64, pn_len: usize) -> Result<HeaderLayout, BufferTooShort> {
        if !(1..=4).contains(&pn_len) || self.dcid.len() > MAX_CID_SIZE {
            return Err(BufferTooShort);
        }
        let mut first = FIXED_BIT | (pn_len as u8 - 1);
        if self.spin {
            first |= SPIN_BIT;
        }
        if self.key_phase {
            first |= KEY_PHASE_BIT;
        }
        w.u8(first)?;
        w.put(self.dcid)?;
        let pn_offset = w.len();
        let mut pn_bytes = [0u8; 4];
        number::write_truncated(pn, pn_len, &mut pn_bytes);
        w.put(&pn_bytes[..pn_len])?;
        Ok(HeaderLayout { pn_offset, pn_len, length_field: None })
    }
}

/// Writes a Version Negotiation packet (RFC 9000 §17.2.1) answering a client
/// whose packet had `client_dcid` and `client_scid`: the IDs are swapped.
/// `unused` supplies the seven arbitrary bits of the first byte.
pub fn encode_version_negotiation(w: &mut Writer<'_>, client_dcid: &[u8], client_scid: &[u8], versions: &[Version], unused: u8) -> Result<(), BufferTooShort> {
    if client_dcid.len() > MAX_INVARIANT_CID_SIZE || client_scid.len() > MAX_INVARIANT_CID_SIZE {
        return Err(BufferTooShort);
    }
    w.u8(LONG_HEADER_FORM | (unused & 0x7f))?;
    w.u32(Version::NEGOTIATION.0)?;
    w.u8(client_scid.len() as u8)?;
    w.put(client_scid)?;
    w.u8(client_dcid.len() as u8)?;
    w.put(client_dcid)?;
    for v in versions {
        w.u32(v.0)?;
    }
    Ok(())
}

/// Iterates the versions of a Version Negotiation packet's list.
pub fn negotiation_versions(list: &[u8]) -> impl Iterator<Item = Version> + '_ {
    list.chunks_exact(4).map(|c| Version(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
}

/// Writes a Retry packet without its integrity tag (RFC 9000 §17.2.5); the
/// caller appends the tag computed over these bytes (RFC 9001 §5.8).
/// `unused` supplies the four arbitrary low bits.
pub fn encode_retry_without_tag(w: &mut Writer<'_>, version: Version, dcid: &[u8], scid: &[u8], token: &[u8], unused: u8) -> Result<(), BufferTooShort> {
    if dcid.len() > MAX_CID_SIZE || scid.len() > MAX_CID_SIZE {
        return Err(BufferTooShort);
    }
    w.u8(LONG_HEADER_FORM | FIXED_BIT | (LongType::Retry.to_bits(version) << 4) | (unused & 0x0f))?;
    w.u32(version.0)?;
    w.u8(dcid.len() as u8)?;
    w.put(dcid)?;
    w.u8(scid.len() as u8)?;
    w.put(scid)?;
    w.put(token)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn long_type_bits_v1_v2() {
        // RFC 9369 §3.2: Initial 0b01, 0-RTT 0b10, Handshake 0b11, Retry 0b00.
        assert_eq!(LongType::Initial.to_bits(Version::V2), 1);
        assert_eq!(LongType::ZeroRtt.to_bits(Version::V2), 2);
        assert_eq!(LongType::Handshake.to_bits(Version::V2), 3);
        assert_eq!(LongType::Retry.to_bits(Version::V2), 0);
        for v in [Version::V1, Version::V2] {
            for t in [LongType::Initial, LongType::ZeroRtt, LongType::Handshake, LongType::Retry] {
                assert_eq!(LongType::from_bits(t.to_bits(v), v), t);
            }
        }
        assert_eq!(LongType::Initial.to_bits(Version::V1), 0);
        assert_eq!(LongType::Retry.to_bits(Version::V1), 3);
    }

    #[test]
    fn initial_round_trip() {
        for version in [Version::V1, Version::V2] {
            let mut buf = [0u8; 256];
            let mut w = Writer::new(&mut buf);
            let h = LongHeader { ty: LongType::Initial, version, dcid: &[1, 2, 3, 4, 5, 6, 7, 8], scid: &[9, 9], token: b"tok" };
            let layout = h.encode(&mut w, 7, 2, 2).unwrap();
            w.fill(0xaa, 30).unwrap();
            let total = w.len();
            layout.set_payload_len(&mut buf, 30).unwrap();
            let p = ProtectedHeader::parse(&buf[..total], 0).unwrap();
            assert_eq!(p.ty, PacketType::Long(LongType::Initial));
            assert_eq!(p.version, Some(version));
            assert_eq!(p.dcid.as_slice(), &[1, 2, 3, 4, 5, 6, 7, 8]);
            assert_eq!(p.scid.as_slice(), &[9, 9]);
            assert_eq!(&buf[p.token.clone()], b"tok");
            assert_eq!(p.pn_offset, layout.pn_offset);
            assert_eq!(p.len, total);
        }
    }

    #[test]
    fn coalesced_and_padding() {
        let mut buf = [0u8; 512];
        let mut w = Writer::new(&mut buf);
        let h = LongHeader { ty: LongType::Initial, version: Version::V1, dcid: &[1; 8], scid: &[], token: &[] };
        let l1 = h.encode(&mut w, 0, 1, 2).unwrap();
        w.fill(1, 40).unwrap();
        let end1 = w.len();
        let h2 = LongHeader { ty: LongType::Handshake, ..h };
        let l2 = h2.encode(&mut w, 0, 1, 2).unwrap();
        w.fill(2, 40).unwrap();
        let end2 = w.len();
        let s = ShortHeader { dcid: &[1; 8], spin: false, key_phase: true };
        s.encode(&mut w, 5, 1).unwrap();
        w.fill(3, 40).unwrap();
        let end3 = w.len();
        l1.set_payload_len(&mut buf, 40).unwrap();
        l2.set_payload_len(&mut buf, 40).unwrap();
        let pkts: Vec<_> = CoalescedPackets::new(&buf[..end3], 8).map(|r| r.unwrap()).collect();
        assert_eq!(pkts.len(), 3);
        assert_eq!(pkts[0].0, 0);
        assert_eq!(pkts[1].0, end1);
        assert_eq!(pkts[1].1.ty, PacketType::Long(LongType::Handshake));
        assert_eq!(pkts[2].0, end2);
        assert_eq!(pkts[2].1.ty, PacketType::Short);
        assert_eq!(pkts[2].1.len, end3 - end2);
        // Zero padding after a long header packet ends the datagram.
        let mut padded = buf[..end1].to_vec();
        padded.extend_from_slice(&[0u8; 20]);
        let pkts: Vec<_> = CoalescedPackets::new(&padded, 8).collect();
        assert_eq!(pkts.len(), 1);
    }

    #[test]
    fn version_negotiation_round_trip() {
        let mut buf = [0u8; 128];
        let mut w = Writer::new(&mut buf);
        encode_version_negotiation(&mut w, &[1, 2, 3], &[4, 5], &[Version::V1, Version::V2], 0x55).unwrap();
        let n = w.len();
        let p = ProtectedHeader::parse(&buf[..n], 0).unwrap();
        assert_eq!(p.ty, PacketType::VersionNegotiation);
        assert_eq!(p.dcid.as_slice(), &[4, 5]);
        assert_eq!(p.scid.as_slice(), &[1, 2, 3]);
        let vs: Vec<_> = negotiation_versions(&buf[p.pn_offset..n]).collect();
        assert_eq!(vs, vec![Version::V1, Version::V2]);
        assert_eq!(ProtectedHeader::parse(&buf[..n - 1], 0), Err(HeaderError::MalformedVersionNegotiation));
    }

    #[test]
    fn unknown_version_gives_ranges_for_vn() {
        let mut pkt = vec![0xc0, 0x1a, 0x2a, 0x3a, 0x4a, 30];
        pkt.extend_from_slice(&[7u8; 30]);
        pkt.push(0);
        pkt.extend_from_slice(&[0u8; 1200]);
        match ProtectedHeader::parse(&pkt, 0) {
            Err(HeaderError::UnsupportedVersion { version, dcid, scid }) => {
                assert_eq!(version, Version(0x1a2a3a4a));
                assert_eq!(dcid, 6..36);
                assert_eq!(scid, 37..37);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects_bad_headers() {
        // v1 with a 21-byte DCID.
        let mut pkt = vec![0xc0, 0, 0, 0, 1, 21];
        pkt.extend_from_slice(&[0u8; 21]);
        pkt.extend_from_slice(&[0, 0, 1, 0]);
        assert_eq!(ProtectedHeader::parse(&pkt, 0), Err(HeaderError::CidTooLong));
        // Length past the end.
        let pkt = [0xe0, 0, 0, 0, 1, 0, 0, 0x40, 0x50, 0];
        assert_eq!(ProtectedHeader::parse(&pkt, 0), Err(HeaderError::Truncated));
        // Length zero.
        let pkt = [0xe0, 0, 0, 0, 1, 0, 0, 0x00];
        assert_eq!(ProtectedHeader::parse(&pkt, 0), Err(HeaderError::InvalidLength));
        // Short header shorter than the DCID.
        assert_eq!(ProtectedHeader::parse(&[0x40, 1, 2], 8), Err(HeaderError::Truncated));
        assert_eq!(ProtectedHeader::parse(&[], 8), Err(HeaderError::Truncated));
        // Retry without room for the tag.
        let pkt = [0xf0, 0, 0, 0, 1, 0, 0, 1, 2, 3];
        assert_eq!(ProtectedHeader::parse(&pkt, 0), Err(HeaderError::Truncated));
    }

    #[test]
    fn peek_dcid_routes() {
        assert_eq!(peek_dcid(&[0x40, 1, 2, 3, 4], 4).unwrap().as_slice(), &[1, 2, 3, 4]);
        assert_eq!(peek_dcid(&[0xc0, 0, 0, 0, 1, 2, 9, 8, 0], 4).unwrap().as_slice(), &[9, 8]);
        assert_eq!(peek_dcid(&[0xc0, 0, 0, 0, 1, 30, 9], 4), None);
        assert_eq!(peek_dcid(&[], 4), None);
    }
}
