//! Cursors over borrowed input and caller-owned output.
//!
//! Decoding never copies: [`Reader`] hands out sub-slices of the input.
//! Encoding never allocates: [`Writer`] writes into a `&mut [u8]` the caller
//! owns and fails with [`BufferTooShort`] instead of growing.

use crate::error::{BufferTooShort, UnexpectedEnd};
use crate::varint::{self, VarInt};

/// A read cursor over a borrowed byte slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The unread rest of the input, without consuming it.
    pub fn peek_rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    pub fn peek_u8(&self) -> Result<u8, UnexpectedEnd> {
        self.buf.get(self.pos).copied().ok_or(UnexpectedEnd)
    }

    pub fn u8(&mut self) -> Result<u8, UnexpectedEnd> {
        let b = self.peek_u8()?;
        self.pos += 1;
        Ok(b)
    }

    pub fn u16(&mut self) -> Result<u16, UnexpectedEnd> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, UnexpectedEnd> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, UnexpectedEnd> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], UnexpectedEnd> {
        let s = self.bytes(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }

    /// Consumes and returns the next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], UnexpectedEnd> {
        let end = self.pos.checked_add(n).ok_or(UnexpectedEnd)?;
        let s = self.buf.get(self.pos..end).ok_or(UnexpectedEnd)?;
        self.pos = end;
        Ok(s)
    }

    /// Consumes and returns everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }

    pub fn skip(&mut self, n: usize) -> Result<(), UnexpectedEnd> {
        self.bytes(n).map(|_| ())
    }

    /// RFC 9000 §16 variable-length integer.
    pub fn varint(&mut self) -> Result<u64, UnexpectedEnd> {
        let (v, len) = varint::decode(self.peek_rest()).ok_or(UnexpectedEnd)?;
        self.pos += len;
        Ok(v)
    }

    /// A varint that is then used as a length: bounded by what is left, so a
    /// peer cannot make us reserve more than it sent.
    pub fn varint_len(&mut self) -> Result<usize, UnexpectedEnd> {
        let v = self.varint()?;
        if v > self.remaining() as u64 {
            return Err(UnexpectedEnd);
        }
        Ok(v as usize)
    }

    /// A varint length followed by that many bytes.
    pub fn varint_prefixed(&mut self) -> Result<&'a [u8], UnexpectedEnd> {
        let n = self.varint_len()?;
        self.bytes(n)
    }
}

/// A write cursor over a caller-owned buffer.
#[derive(Debug)]
pub struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.pos == 0
    }

    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The bytes written so far.
    pub fn written(&self) -> &[u8] {
        &self.buf[..self.pos]
    }

    pub fn written_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.pos]
    }

    /// Gives back the underlying buffer (all of it) for in-place work after
    /// encoding, e.g. sealing a packet.
    pub fn into_inner(self) -> &'a mut [u8] {
        self.buf
    }

    pub fn u8(&mut self, v: u8) -> Result<(), BufferTooShort> {
        self.put(&[v])
    }

    pub fn u16(&mut self, v: u16) -> Result<(), BufferTooShort> {
        self.put(&v.to_be_bytes())
    }

    pub fn u32(&mut self, v: u32) -> Result<(), BufferTooShort> {
        self.put(&v.to_be_bytes())
    }

    pub fn u64(&mut self, v: u64) -> Result<(), BufferTooShort> {
        self.put(&v.to_be_bytes())
    }

    pub fn put(&mut self, bytes: &[u8]) -> Result<(), BufferTooShort> {
        let end = self.pos.checked_add(bytes.len()).ok_or(BufferTooShort)?;
        let dst = self.buf.get_mut(self.pos..end).ok_or(BufferTooShort)?;
        dst.copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }

    /// Writes `n` copies of `byte` (e.g. PADDING).
    pub fn fill(&mut self, byte: u8, n: usize) -> Result<(), BufferTooShort> {
        let end = self.pos.checked_add(n).ok_or(BufferTooShort)?;
        let dst = self.buf.get_mut(self.pos..end).ok_or(BufferTooShort)?;
        dst.fill(byte);
        self.pos = end;
        Ok(())
    }

    /// Minimal varint encoding. Values of 2^62 and above are a caller bug,
    /// reported as [`BufferTooShort`] rather than a panic.
    #[inline]
    pub fn varint(&mut self, v: u64) -> Result<(), BufferTooShort> {
        let rest = self.buf.get_mut(self.pos..).ok_or(BufferTooShort)?;
        let n = varint::encode(v, rest).ok_or(BufferTooShort)?;
        self.pos += n;
        Ok(())
    }

    pub fn var(&mut self, v: VarInt) -> Result<(), BufferTooShort> {
        self.varint(v.into_inner())
    }

    /// Varint in exactly `len` bytes; used to back-fill reserved length fields.
    pub fn varint_with_len(&mut self, v: u64, len: usize) -> Result<(), BufferTooShort> {
        let rest = self.buf.get_mut(self.pos..).ok_or(BufferTooShort)?;
        if !varint::encode_with_len(v, len, rest) {
            return Err(BufferTooShort);
        }
        self.pos += len;
        Ok(())
    }

    /// A varint length followed by the bytes.
    pub fn varint_prefixed(&mut self, bytes: &[u8]) -> Result<(), BufferTooShort> {
        if varint::size(bytes.len() as u64) + bytes.len() > self.remaining() {
            return Err(BufferTooShort);
        }
        self.varint(bytes.len() as u64)?;
        self.put(bytes)
    }

    /// Reserves `n` bytes to fill later through [`Writer::written_mut`];
    /// returns their offset.
    pub fn reserve(&mut self, n: usize) -> Result<usize, BufferTooShort> {
        let at = self.pos;
        self.fill(0, n)?;
        Ok(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_bounds() {
        let mut r = Reader::new(&[0x05, 1, 2, 3]);
        assert_eq!(r.varint_prefixed(), Err(UnexpectedEnd));
        let mut r = Reader::new(&[0x03, 1, 2, 3, 9]);
        assert_eq!(r.varint_prefixed(), Ok(&[1u8, 2, 3][..]));
        assert_eq!(r.u8(), Ok(9));
        assert_eq!(r.u8(), Err(UnexpectedEnd));
        let mut r = Reader::new(&[1, 2]);
        assert_eq!(r.bytes(usize::MAX), Err(UnexpectedEnd));
        assert_eq!(r.u16(), Ok(0x0102));
    }

    #[test]
    fn writer_bounds() {
        let mut buf = [0u8; 4];
        let mut w = Writer::new(&mut buf);
        assert_eq!(w.varint_prefixed(&[1, 2, 3, 4]), Err(BufferTooShort));
        w.varint_prefixed(&[1, 2, 3]).unwrap();
        assert_eq!(w.u8(1), Err(BufferTooShort));
        assert_eq!(w.written(), &[3, 1, 2, 3]);
        let mut buf = [0u8; 1];
        let mut w = Writer::new(&mut buf);
        assert_eq!(w.varint(1 << 62), Err(BufferTooShort));
    }
}
