//! Header-only encoders for the frames that carry bulk data (STREAM, CRYPTO,
//! DATAGRAM). The connection writes the header with these, then copies the
//! payload straight from its send buffer into the packet, once.

use super::FrameType;
use crate::codec::Writer;
use crate::error::BufferTooShort;
use crate::varint;

/// Bytes of a STREAM frame header (RFC 9000 §19.8): type, Stream ID, Offset
/// when not 0, Length when `with_len`.
pub fn stream_header_len(id: u64, offset: u64, len: usize, with_len: bool) -> usize {
    let off = if offset != 0 { varint::size(offset) } else { 0 };
    let len = if with_len { varint::size(len as u64) } else { 0 };
    1 + varint::size(id) + off + len
}

/// Bytes of a CRYPTO frame header (RFC 9000 §19.6): type, Offset, Length.
pub fn crypto_header_len(offset: u64, len: usize) -> usize {
    1 + varint::size(offset) + varint::size(len as u64)
}

/// Bytes of a DATAGRAM frame header (RFC 9221 §4): type, Length when
/// `with_len`.
pub fn datagram_header_len(len: usize, with_len: bool) -> usize {
    1 + if with_len { varint::size(len as u64) } else { 0 }
}

/// The longest payload `l <= available` with `varint_size(l) + l <= room`.
fn max_prefixed_len(room: usize, available: usize) -> usize {
    // Try each varint width; a width wider than the length needs is still a
    // valid bound on the length's minimal size.
    let widths: [(usize, usize); 4] = [(1, (1 << 6) - 1), (2, (1 << 14) - 1), (4, (1 << 30) - 1), (8, usize::MAX)];
    let mut best = 0;
    for (width, max) in widths {
        if let Some(r) = room.checked_sub(width) {
            best = best.max(available.min(r).min(max));
        }
    }
    best
}

/// The header of a STREAM frame whose `len` data bytes the caller writes
/// right after it.
///
/// With `with_len == false` the frame has no Length field and its data runs
/// to the end of the packet (RFC 9000 §19.8): it must be the last frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamFrameHeader {
    pub id: u64,
    pub offset: u64,
    pub len: usize,
    pub fin: bool,
    pub with_len: bool,
}

impl StreamFrameHeader {
    /// The type byte: OFF only for a non-zero offset (§19.8 lets a zero
    /// offset be implicit), LEN and FIN as asked.
    pub fn frame_type(&self) -> FrameType {
        FrameType::stream(self.offset != 0, self.with_len, self.fin)
    }

    pub fn encoded_len(&self) -> usize {
        stream_header_len(self.id, self.offset, self.len, self.with_len)
    }

    /// Writes the header only; fails without writing when it does not fit.
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferTooShort> {
        if w.remaining() < self.encoded_len() {
            return Err(BufferTooShort);
        }
        w.varint(self.frame_type().0)?;
        w.varint(self.id)?;
        if self.offset != 0 {
            w.varint(self.offset)?;
        }
        if self.with_len {
            w.varint(self.len as u64)?;
        }
        Ok(())
    }

    /// Sizes the largest STREAM frame for `available` bytes of stream data
    /// at `offset` that fits in `space` bytes (header included).
    ///
    /// When all the data fits with a Length field it gets one, so more frames
    /// can follow. Otherwise the frame fills the rest of the packet without
    /// a Length field (`with_len == false`: write it last). `fin` is the
    /// caller's "the data ends the stream"; the header carries FIN only if
    /// all of it fits. `None` when not even one byte fits (or nothing is to
    /// be sent: no data and no FIN).
    pub fn fit(id: u64, offset: u64, available: usize, fin: bool, space: usize) -> Option<Self> {
        if available == 0 && !fin {
            return None;
        }
        let full = Self { id, offset, len: available, fin, with_len: true };
        if full.encoded_len().checked_add(available)? <= space {
            return Some(full);
        }
        let base = stream_header_len(id, offset, 0, false);
        let room = space.checked_sub(base)?;
        let len = available.min(room);
        if len == 0 && available != 0 {
            return None;
        }
        Some(Self { id, offset, len, fin: fin && len == available, with_len: false })
    }
}

/// The header of a CRYPTO frame (RFC 9000 §19.6) whose `len` bytes the
/// caller writes right after it. CRYPTO always has a Length field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CryptoFrameHeader {
    pub offset: u64,
    pub len: usize,
}

impl CryptoFrameHeader {
    pub fn encoded_len(&self) -> usize {
        crypto_header_len(self.offset, self.len)
    }

    /// Writes the header only; fails without writing when it does not fit.
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferTooShort> {
        if w.remaining() < self.encoded_len() {
            return Err(BufferTooShort);
        }
        w.varint(FrameType::CRYPTO.0)?;
        w.varint(self.offset)?;
        w.varint(self.len as u64)
    }

    /// The largest CRYPTO frame for `available` bytes at `offset` that fits
    /// in `space` bytes, header included; `None` if not even one byte fits.
    pub fn fit(offset: u64, available: usize, space: usize) -> Option<Self> {
        let room = space.checked_sub(1 + varint::size(offset))?;
        let len = max_prefixed_len(room, available);
        (len > 0).then_some(Self { offset, len })
    }
}

/// The header of a DATAGRAM frame (RFC 9221 §4). Without a Length field
/// (type 0x30) the datagram runs to the end of the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatagramFrameHeader {
    pub len: usize,
    pub with_len: bool,
}

impl DatagramFrameHeader {
    pub fn frame_type(&self) -> FrameType {
        if self.with_len {
            FrameType::DATAGRAM_LEN
        } else {
            FrameType::DATAGRAM
        }
    }

    pub fn encoded_len(&self) -> usize {
        datagram_header_len(self.len, self.with_len)
    }

    /// Writes the header only; fails without writing when it does not fit.
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferTooShort> {
        if w.remaining() < self.encoded_len() {
            return Err(BufferTooShort);
        }
        w.varint(self.frame_type().0)?;
        if self.with_len {
            w.varint(self.len as u64)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::codec::Reader;
    use crate::frame::Frame;

    #[test]
    fn stream_header_bytes() {
        let mut buf = [0u8; 32];
        let mut w = Writer::new(&mut buf);
        let h = StreamFrameHeader { id: 4, offset: 0, len: 5, fin: true, with_len: true };
        h.encode(&mut w).unwrap();
        // 0x0b = STREAM|LEN|FIN, id 4, length 5.
        assert_eq!(w.written(), &[0x0b, 0x04, 0x05]);
        assert_eq!(h.encoded_len(), 3);

        let mut w = Writer::new(&mut buf);
        let h = StreamFrameHeader { id: 0x3fff, offset: 70_000, len: 9, fin: false, with_len: false };
        h.encode(&mut w).unwrap();
        assert_eq!(w.written(), &[0x0c, 0x7f, 0xff, 0x80, 0x01, 0x11, 0x70]);
        assert_eq!(h.encoded_len(), 7);
        assert_eq!(stream_header_len(0x3fff, 70_000, 9, true), 8);
    }

    #[test]
    fn header_then_payload_decodes_as_a_frame() {
        let mut buf = [0u8; 32];
        let mut w = Writer::new(&mut buf);
        StreamFrameHeader { id: 1, offset: 8, len: 3, fin: false, with_len: true }.encode(&mut w).unwrap();
        w.put(b"abc").unwrap();
        CryptoFrameHeader { offset: 100, len: 2 }.encode(&mut w).unwrap();
        w.put(b"hi").unwrap();
        DatagramFrameHeader { len: 4, with_len: false }.encode(&mut w).unwrap();
        w.put(b"last").unwrap();
        let mut r = Reader::new(w.written());
        assert_eq!(Frame::decode(&mut r).unwrap(), Frame::Stream { id: 1, offset: 8, fin: false, data: b"abc" });
        assert_eq!(Frame::decode(&mut r).unwrap(), Frame::Crypto { offset: 100, data: b"hi" });
        assert_eq!(Frame::decode(&mut r).unwrap(), Frame::Datagram { data: b"last" });
        assert!(r.is_empty());
    }

    #[test]
    fn headers_refuse_short_buffers_without_writing() {
        let mut buf = [0u8; 2];
        let mut w = Writer::new(&mut buf);
        let h = StreamFrameHeader { id: 4, offset: 1, len: 5, fin: false, with_len: true };
        assert_eq!(h.encode(&mut w), Err(BufferTooShort));
        assert_eq!(CryptoFrameHeader { offset: 64, len: 1 }.encode(&mut w), Err(BufferTooShort));
        assert_eq!(DatagramFrameHeader { len: 64, with_len: true }.encode(&mut w), Err(BufferTooShort));
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn stream_fit() {
        // Everything fits with a Length: 1 + 1 + 1 (len) + 10 = 13.
        let h = StreamFrameHeader::fit(0, 0, 10, true, 13).unwrap();
        assert_eq!(h, StreamFrameHeader { id: 0, offset: 0, len: 10, fin: true, with_len: true });
        // One byte short: the frame goes last, without Length, all data.
        let h = StreamFrameHeader::fit(0, 0, 10, true, 12).unwrap();
        assert_eq!(h, StreamFrameHeader { id: 0, offset: 0, len: 10, fin: true, with_len: false });
        // Less room: data cut, FIN withheld.
        let h = StreamFrameHeader::fit(0, 5, 10, true, 8).unwrap();
        assert_eq!(h, StreamFrameHeader { id: 0, offset: 5, len: 5, fin: false, with_len: false });
        assert_eq!(h.encoded_len() + h.len, 8);
        // No room for a data byte.
        assert_eq!(StreamFrameHeader::fit(0, 5, 10, true, 3), None);
        // A bare FIN.
        let h = StreamFrameHeader::fit(4, 9, 0, true, 4).unwrap();
        assert_eq!(h, StreamFrameHeader { id: 4, offset: 9, len: 0, fin: true, with_len: true });
        assert_eq!(StreamFrameHeader::fit(4, 9, 0, false, 100), None);
    }

    #[test]
    fn crypto_fit_uses_all_the_room_it_can() {
        // 1 type + 1 offset; room 65: a 2-byte length would leave 63, a
        // 1-byte one allows 63 too (64 would need 2 bytes).
        let h = CryptoFrameHeader::fit(0, 1000, 67).unwrap();
        assert_eq!(h.len, 63);
        assert!(h.encoded_len() + h.len <= 67);
        let h = CryptoFrameHeader::fit(0, 100_000, 1200).unwrap();
        assert_eq!(h.encoded_len() + h.len, 1200);
        let h = CryptoFrameHeader::fit(0, 10, 1200).unwrap();
        assert_eq!(h.len, 10);
        assert_eq!(CryptoFrameHeader::fit(0, 10, 3), None);
        assert_eq!(CryptoFrameHeader::fit(0, 0, 100), None);
        for space in 0..20_000 {
            if let Some(h) = CryptoFrameHeader::fit(300, 100_000, space) {
                let total = h.encoded_len() + h.len;
                assert!(total <= space, "{space}");
                // Maximal: one more byte never fits.
                let bigger = CryptoFrameHeader { offset: 300, len: h.len + 1 };
                assert!(bigger.encoded_len() + bigger.len > space, "{space}");
            }
        }
    }
}
