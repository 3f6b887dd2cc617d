//! Ancillary data (cmsg) built and parsed as plain bytes.
//!
//! Layout (Linux `struct cmsghdr`, see cmsg(3)): `cmsg_len` (size_t, header
//! plus data), `cmsg_level`, `cmsg_type` (int each), then the data; every
//! header starts at a multiple of `sizeof(size_t)` from the buffer start.
//! Working on byte slices keeps parsing of kernel-written bytes bounds-checked
//! and free of pointer casts.

use std::mem::{offset_of, size_of};

const ALIGN: usize = size_of::<usize>();
const LEN_SIZE: usize = size_of::<usize>();
const LEVEL_OFFSET: usize = offset_of!(libc::cmsghdr, cmsg_level);
const TYPE_OFFSET: usize = offset_of!(libc::cmsghdr, cmsg_type);
/// CMSG_LEN(0).
const HDR: usize = align(size_of::<libc::cmsghdr>());

// The byte layout above must be the C one.
const _: () = assert!(LEVEL_OFFSET == LEN_SIZE);
const _: () = assert!(TYPE_OFFSET == LEN_SIZE + size_of::<libc::c_int>());

const fn align(n: usize) -> usize {
    (n + ALIGN - 1) & !(ALIGN - 1)
}

/// CMSG_SPACE(data_len).
pub(crate) const fn space(data_len: usize) -> usize {
    HDR + align(data_len)
}

/// Control space reserved per received message: IPV6_PKTINFO (20 bytes),
/// IP_PKTINFO (12, on dual-stack sockets both may come), IP_TOS (1) or
/// IPV6_TCLASS (4), UDP_GRO (4), with room to spare for options we did
/// not ask for (the kernel sets MSG_CTRUNC rather than overflow).
pub(crate) const RECV_SPACE: usize = 256;

/// Control space per sent message: one PKTINFO, one TOS/TCLASS, one
/// UDP_SEGMENT.
pub(crate) const SEND_SPACE: usize = space(20) + space(4) + space(2) + 32;

/// The control buffer was too small (a bug in the space constants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CmsgFull;

/// Appends control messages to a preallocated buffer.
pub(crate) struct CmsgWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> CmsgWriter<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        CmsgWriter { buf, len: 0 }
    }

    /// Bytes written, for `msg_controllen`.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn push(&mut self, level: libc::c_int, ty: libc::c_int, data: &[u8]) -> Result<(), CmsgFull> {
        let total = space(data.len());
        let end = self.len.checked_add(total).ok_or(CmsgFull)?;
        let slot = self.buf.get_mut(self.len..end).ok_or(CmsgFull)?;
        slot.fill(0);
        let cmsg_len = HDR + data.len();
        put(slot, 0, &cmsg_len.to_ne_bytes())?;
        put(slot, LEVEL_OFFSET, &level.to_ne_bytes())?;
        put(slot, TYPE_OFFSET, &ty.to_ne_bytes())?;
        put(slot, HDR, data)?;
        self.len = end;
        Ok(())
    }

    pub(crate) fn push_int(&mut self, level: libc::c_int, ty: libc::c_int, v: libc::c_int) -> Result<(), CmsgFull> {
        self.push(level, ty, &v.to_ne_bytes())
    }
}

fn put(slot: &mut [u8], at: usize, bytes: &[u8]) -> Result<(), CmsgFull> {
    let end = at.checked_add(bytes.len()).ok_or(CmsgFull)?;
    slot.get_mut(at..end).ok_or(CmsgFull)?.copy_from_slice(bytes);
    Ok(())
}

/// One control message as the kernel wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cmsg<'a> {
    pub(crate) level: libc::c_int,
    pub(crate) ty: libc::c_int,
    pub(crate) data: &'a [u8],
}

impl Cmsg<'_> {
    /// An `int` payload; also accepts the 1-byte form some options use
    /// (IP_TOS on receive is one byte, IPV6_TCLASS is an int).
    pub(crate) fn int(&self) -> Option<i32> {
        match self.data.len() {
            1 => self.data.first().map(|b| i32::from(*b)),
            n if n >= 4 => self.data.get(..4).and_then(|b| b.try_into().ok()).map(i32::from_ne_bytes),
            _ => None,
        }
    }
}

/// Iterates the control messages of a received buffer; stops at the first
/// malformed header instead of trusting it.
pub(crate) struct CmsgIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> CmsgIter<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        CmsgIter { buf, pos: 0 }
    }
}

impl<'a> Iterator for CmsgIter<'a> {
    type Item = Cmsg<'a>;

    fn next(&mut self) -> Option<Cmsg<'a>> {
        let rest = self.buf.get(self.pos..)?;
        let len = usize::from_ne_bytes(rest.get(..LEN_SIZE)?.try_into().ok()?);
        if len < HDR {
            return None;
        }
        let level = i32::from_ne_bytes(rest.get(LEVEL_OFFSET..LEVEL_OFFSET + 4)?.try_into().ok()?);
        let ty = i32::from_ne_bytes(rest.get(TYPE_OFFSET..TYPE_OFFSET + 4)?.try_into().ok()?);
        let data = rest.get(HDR..len)?;
        self.pos = self.pos.checked_add(align(len))?;
        Some(Cmsg { level, ty, data })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn written_messages_parse_back() {
        let mut buf = [0xAAu8; SEND_SPACE];
        let mut w = CmsgWriter::new(&mut buf);
        w.push_int(libc::IPPROTO_IP, libc::IP_TOS, 2).unwrap();
        w.push(libc::SOL_UDP, libc::UDP_SEGMENT, &1200u16.to_ne_bytes()).unwrap();
        let n = w.len();
        assert_eq!(n, space(4) + space(2));
        let got: Vec<_> = CmsgIter::new(&buf[..n]).collect();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].level, got[0].ty, got[0].int()), (libc::IPPROTO_IP, libc::IP_TOS, Some(2)));
        assert_eq!(got[1].data, &1200u16.to_ne_bytes());
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        let mut buf = [0u8; 20];
        let mut w = CmsgWriter::new(&mut buf);
        assert_eq!(w.push(1, 2, &[0u8; 8]), Err(CmsgFull));
    }

    #[test]
    fn hostile_lengths_stop_iteration() {
        let mut buf = [0u8; 64];
        // cmsg_len larger than the buffer.
        buf[..LEN_SIZE].copy_from_slice(&1000usize.to_ne_bytes());
        assert_eq!(CmsgIter::new(&buf).count(), 0);
        // cmsg_len smaller than a header.
        buf[..LEN_SIZE].copy_from_slice(&3usize.to_ne_bytes());
        assert_eq!(CmsgIter::new(&buf).count(), 0);
        // Truncated buffer.
        assert_eq!(CmsgIter::new(&buf[..5]).count(), 0);
    }
}
