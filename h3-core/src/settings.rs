//! The SETTINGS frame payload (RFC 9114 §7.2.4), with the settings of QPACK
//! (RFC 9204 §5), Extended CONNECT (RFC 9220 §3) and HTTP Datagrams
//! (RFC 9297 §2.1.1).
//!
//! A SETTINGS payload is a sequence of (identifier, value) varint pairs.
//! Decoding checks the layout (a truncated pair is H3_FRAME_ERROR, RFC 9114
//! §7.1) and the rules of §7.2.4 (duplicates, HTTP/2-only identifiers and
//! out-of-range values are H3_SETTINGS_ERROR); unknown and reserved
//! identifiers are ignored. Encoding writes only the settings that differ from
//! their defaults, optionally followed by one reserved ("grease") setting as
//! RFC 9114 §7.2.4.1 recommends.

use quic_core::codec::{Reader, Writer};
use quic_core::error::BufferTooShort;
use quic_core::varint::{self, VarInt};

use crate::error::{self, H3Error};
use crate::frame::{self, FrameType};

/// Setting identifiers.
pub mod id {
    /// RFC 9204 §5: the maximum dynamic table capacity; default 0.
    pub const QPACK_MAX_TABLE_CAPACITY: u64 = 0x01;
    /// RFC 9114 §7.2.4.1: the largest field section the sender will accept;
    /// default unlimited.
    pub const MAX_FIELD_SECTION_SIZE: u64 = 0x06;
    /// RFC 9204 §5: how many streams may be blocked on the dynamic table;
    /// default 0.
    pub const QPACK_BLOCKED_STREAMS: u64 = 0x07;
    /// RFC 9220 §3 (RFC 8441 §3): 1 allows Extended CONNECT; default 0.
    pub const ENABLE_CONNECT_PROTOCOL: u64 = 0x08;
    /// RFC 9297 §2.1.1: 1 announces HTTP Datagram support; default 0.
    pub const H3_DATAGRAM: u64 = 0x33;

    /// RFC 9114 §7.2.4.1: identifiers `0x1f * N + 0x21` are reserved and have
    /// no meaning on receipt.
    pub const fn is_reserved(id: u64) -> bool {
        crate::error::is_grease(id)
    }

    /// RFC 9114 §7.2.4.1, §11.2.2, Appendix A.3: the HTTP/2 settings
    /// ENABLE_PUSH (0x2), MAX_CONCURRENT_STREAMS (0x3), INITIAL_WINDOW_SIZE
    /// (0x4) and MAX_FRAME_SIZE (0x5) have no HTTP/3 counterpart; receiving
    /// them is a connection error of type H3_SETTINGS_ERROR. (0x0 is also
    /// registered as reserved but was never an HTTP/2 setting; like any
    /// identifier without a defined meaning it is ignored.)
    pub const fn is_http2_reserved(id: u64) -> bool {
        matches!(id, 0x02..=0x05)
    }
}

/// The settings one endpoint announces (RFC 9114 §7.2.4). [`Default`] gives
/// the initial values an endpoint assumes before the peer's SETTINGS arrive
/// (§7.2.4.2), which are also the values of omitted settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Settings {
    /// SETTINGS_QPACK_MAX_TABLE_CAPACITY (RFC 9204 §5); default 0.
    pub qpack_max_table_capacity: u64,
    /// SETTINGS_MAX_FIELD_SECTION_SIZE; `None` is the default, unlimited
    /// (RFC 9114 §7.2.4.1).
    pub max_field_section_size: Option<u64>,
    /// SETTINGS_QPACK_BLOCKED_STREAMS (RFC 9204 §5); default 0.
    pub qpack_blocked_streams: u64,
    /// SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 9220 §3); default off.
    pub enable_connect_protocol: bool,
    /// SETTINGS_H3_DATAGRAM (RFC 9297 §2.1.1); default off.
    pub h3_datagram: bool,
}

/// Bit for each known identifier, to detect duplicates without allocating.
fn known_bit(id: u64) -> Option<u8> {
    match id {
        id::QPACK_MAX_TABLE_CAPACITY => Some(1 << 0),
        id::MAX_FIELD_SECTION_SIZE => Some(1 << 1),
        id::QPACK_BLOCKED_STREAMS => Some(1 << 2),
        id::ENABLE_CONNECT_PROTOCOL => Some(1 << 3),
        id::H3_DATAGRAM => Some(1 << 4),
        _ => None,
    }
}

/// A setting whose only valid values are 0 and 1 (RFC 9220 §3, RFC 9297
/// §2.1.1: any other value is a connection error of type H3_SETTINGS_ERROR).
fn decode_flag(value: u64, reason: &'static str) -> Result<bool, H3Error> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(H3Error::settings_error(reason)),
    }
}

/// Reads one (identifier, value) pair; RFC 9114 §7.1: a payload that ends
/// inside a pair is H3_FRAME_ERROR.
fn read_pair(r: &mut Reader<'_>) -> Result<(u64, u64), H3Error> {
    let id = r.varint().map_err(|_| H3Error::frame_error("SETTINGS ends inside an identifier"))?;
    let value = r.varint().map_err(|_| H3Error::frame_error("SETTINGS ends inside a value"))?;
    Ok((id, value))
}

/// The identifier and value of the grease setting `seed` selects.
fn grease_setting(seed: u64) -> (u64, u64) {
    // The value is arbitrary (RFC 9114 §7.2.4.1); take it from other bits of
    // the seed so that its varint length varies too.
    let value = seed.rotate_right(21) >> (2 + (seed >> 62) * 16);
    (error::grease(seed), value & VarInt::MAX.into_inner())
}

impl Settings {
    /// Decodes a SETTINGS frame payload (without the frame header).
    ///
    /// Errors (all connection errors):
    /// - H3_FRAME_ERROR when the payload ends inside a pair (§7.1);
    /// - H3_SETTINGS_ERROR for an identifier seen twice (§7.2.4), an HTTP/2
    ///   identifier 0x2–0x5 (§7.2.4.1), or an ENABLE_CONNECT_PROTOCOL or
    ///   H3_DATAGRAM value other than 0 or 1.
    ///
    /// Allocates only when the payload holds two or more identifiers this
    /// crate does not know, to check those for duplicates; the allocation is
    /// bounded by the payload length.
    pub fn decode(payload: &[u8]) -> Result<Self, H3Error> {
        let mut s = Settings::default();
        let mut seen = 0u8;
        let mut others = 0usize;
        let mut r = Reader::new(payload);
        while !r.is_empty() {
            let (sid, value) = read_pair(&mut r)?;
            if id::is_http2_reserved(sid) {
                return Err(H3Error::settings_error("HTTP/2 setting identifier in SETTINGS"));
            }
            let Some(bit) = known_bit(sid) else {
                // Unknown and reserved identifiers are ignored (§7.2.4,
                // §7.2.4.1), but still may not repeat.
                others += 1;
                continue;
            };
            if seen & bit != 0 {
                return Err(H3Error::settings_error("duplicate setting identifier"));
            }
            seen |= bit;
            match sid {
                id::QPACK_MAX_TABLE_CAPACITY => s.qpack_max_table_capacity = value,
                id::MAX_FIELD_SECTION_SIZE => s.max_field_section_size = Some(value),
                id::QPACK_BLOCKED_STREAMS => s.qpack_blocked_streams = value,
                id::ENABLE_CONNECT_PROTOCOL => {
                    s.enable_connect_protocol = decode_flag(value, "SETTINGS_ENABLE_CONNECT_PROTOCOL is not 0 or 1")?;
                }
                id::H3_DATAGRAM => {
                    s.h3_datagram = decode_flag(value, "SETTINGS_H3_DATAGRAM is not 0 or 1")?;
                }
                _ => {}
            }
        }
        if others > 1 {
            check_unknown_duplicates(payload, others)?;
        }
        Ok(s)
    }

    /// Bytes of the payload [`encode`](Self::encode) writes (no grease).
    pub fn payload_len(&self) -> usize {
        self.count(None)
    }

    /// Bytes of the whole SETTINGS frame [`encode`](Self::encode) writes.
    pub fn encoded_len(&self) -> usize {
        let len = self.payload_len();
        frame::frame_header_len(FrameType::SETTINGS.0, len as u64) + len
    }

    /// Bytes of the whole frame [`encode_with_grease`](Self::encode_with_grease)
    /// writes.
    pub fn encoded_len_with_grease(&self, seed: u64) -> usize {
        let len = self.count(Some(seed));
        frame::frame_header_len(FrameType::SETTINGS.0, len as u64) + len
    }

    /// Writes the whole SETTINGS frame (type, length, payload) with every
    /// setting that differs from its default.
    ///
    /// Integer settings must be below 2^62; a larger one, like a short
    /// buffer, fails with [`BufferTooShort`] and leaves `w` untouched.
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferTooShort> {
        self.encode_inner(None, w)
    }

    /// Like [`encode`](Self::encode), then one reserved setting (RFC 9114
    /// §7.2.4.1: "Endpoints SHOULD include at least one such setting") whose
    /// identifier and value derive from `seed`, a random per-connection value.
    pub fn encode_with_grease(&self, seed: u64, w: &mut Writer<'_>) -> Result<(), BufferTooShort> {
        self.encode_inner(Some(seed), w)
    }

    /// Writes the payload only (no frame header), without grease.
    pub fn encode_payload(&self, w: &mut Writer<'_>) -> Result<(), BufferTooShort> {
        if !self.fits() || self.payload_len() > w.remaining() {
            return Err(BufferTooShort);
        }
        self.emit(None, &mut |v| w.varint(v))
    }

    fn encode_inner(&self, grease: Option<u64>, w: &mut Writer<'_>) -> Result<(), BufferTooShort> {
        let len = self.count(grease);
        let total = frame::frame_header_len(FrameType::SETTINGS.0, len as u64) + len;
        if !self.fits() || total > w.remaining() {
            return Err(BufferTooShort);
        }
        frame::encode_frame_header(FrameType::SETTINGS.0, len as u64, w)?;
        self.emit(grease, &mut |v| w.varint(v))
    }

    /// Whether every integer can be a varint.
    fn fits(&self) -> bool {
        let max = VarInt::MAX.into_inner();
        self.qpack_max_table_capacity <= max && self.max_field_section_size.is_none_or(|v| v <= max) && self.qpack_blocked_streams <= max
    }

    fn count(&self, grease: Option<u64>) -> usize {
        let mut n = 0;
        // Counting never fails.
        let _always_ok: Result<(), BufferTooShort> = self.emit(grease, &mut |v| {
            n += varint::size(v);
            Ok(())
        });
        n
    }

    /// The one description of the payload, run to count or to write. Only
    /// non-default values go on the wire: omitted settings take their
    /// defaults (§7.2.4.2).
    fn emit(&self, grease: Option<u64>, out: &mut dyn FnMut(u64) -> Result<(), BufferTooShort>) -> Result<(), BufferTooShort> {
        let mut pair = |sid: u64, value: u64| -> Result<(), BufferTooShort> {
            out(sid)?;
            out(value)
        };
        if self.qpack_max_table_capacity != 0 {
            pair(id::QPACK_MAX_TABLE_CAPACITY, self.qpack_max_table_capacity)?;
        }
        if let Some(v) = self.max_field_section_size {
            pair(id::MAX_FIELD_SECTION_SIZE, v)?;
        }
        if self.qpack_blocked_streams != 0 {
            pair(id::QPACK_BLOCKED_STREAMS, self.qpack_blocked_streams)?;
        }
        if self.enable_connect_protocol {
            pair(id::ENABLE_CONNECT_PROTOCOL, 1)?;
        }
        if self.h3_datagram {
            pair(id::H3_DATAGRAM, 1)?;
        }
        if let Some(seed) = grease {
            let (sid, value) = grease_setting(seed);
            pair(sid, value)?;
        }
        Ok(())
    }
}

/// Second pass over a payload already known to be well formed: no identifier
/// outside the known set may repeat (RFC 9114 §7.2.4).
fn check_unknown_duplicates(payload: &[u8], count: usize) -> Result<(), H3Error> {
    let mut ids = Vec::with_capacity(count);
    let mut r = Reader::new(payload);
    while !r.is_empty() {
        let (sid, _) = read_pair(&mut r)?;
        if known_bit(sid).is_none() {
            ids.push(sid);
        }
    }
    ids.sort_unstable();
    if ids.windows(2).any(|w| w.first() == w.get(1)) {
        return Err(H3Error::settings_error("duplicate setting identifier"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::error::H3ErrorCode;

    fn payload(pairs: &[(u64, u64)]) -> Vec<u8> {
        let mut buf = vec![0u8; 16 * pairs.len()];
        let mut w = Writer::new(&mut buf);
        for (i, v) in pairs {
            w.varint(*i).unwrap();
            w.varint(*v).unwrap();
        }
        let n = w.len();
        buf.truncate(n);
        buf
    }

    fn encode_vec(s: &Settings, grease: Option<u64>) -> Vec<u8> {
        let len = match grease {
            Some(g) => s.encoded_len_with_grease(g),
            None => s.encoded_len(),
        };
        let mut buf = vec![0u8; len];
        let mut w = Writer::new(&mut buf);
        match grease {
            Some(g) => s.encode_with_grease(g, &mut w).unwrap(),
            None => s.encode(&mut w).unwrap(),
        }
        assert_eq!(w.len(), len);
        buf
    }

    /// Splits a whole SETTINGS frame into its payload, checking the header.
    fn frame_payload(frame: &[u8]) -> &[u8] {
        let mut r = Reader::new(frame);
        assert_eq!(r.varint().unwrap(), 0x04);
        let len = r.varint().unwrap();
        assert_eq!(len as usize, r.remaining());
        r.rest()
    }

    #[test]
    fn defaults() {
        // RFC 9114 §7.2.4.1 / RFC 9204 §5 / RFC 9220 / RFC 9297 defaults.
        let d = Settings::default();
        assert_eq!(d.qpack_max_table_capacity, 0);
        assert_eq!(d.max_field_section_size, None);
        assert_eq!(d.qpack_blocked_streams, 0);
        assert!(!d.enable_connect_protocol);
        assert!(!d.h3_datagram);
        assert_eq!(Settings::decode(&[]).unwrap(), d);
        // Defaults are not sent: an empty SETTINGS frame.
        assert_eq!(encode_vec(&d, None), [0x04, 0x00]);
    }

    #[test]
    fn all_settings_round_trip() {
        let s = Settings {
            qpack_max_table_capacity: 4096,
            max_field_section_size: Some(16384),
            qpack_blocked_streams: 100,
            enable_connect_protocol: true,
            h3_datagram: true,
        };
        let bytes = encode_vec(&s, None);
        let p = frame_payload(&bytes);
        assert_eq!(p, payload(&[(0x01, 4096), (0x06, 16384), (0x07, 100), (0x08, 1), (0x33, 1)]));
        assert_eq!(s.payload_len(), p.len());
        assert_eq!(Settings::decode(p).unwrap(), s);

        let mut pbuf = vec![0u8; s.payload_len()];
        s.encode_payload(&mut Writer::new(&mut pbuf)).unwrap();
        assert_eq!(pbuf, p);

        // Explicit zero for a field section size is not "unlimited".
        let z = Settings { max_field_section_size: Some(0), ..Settings::default() };
        assert_eq!(Settings::decode(frame_payload(&encode_vec(&z, None))).unwrap(), z);
    }

    #[test]
    fn grease_setting_is_sent_and_ignored() {
        let s = Settings { qpack_max_table_capacity: 1, ..Settings::default() };
        for seed in [0u64, 1, 2, 3, 0xdead_beef, u64::MAX, 1 << 63, 0x4000_0000_0000_0001] {
            let bytes = encode_vec(&s, Some(seed));
            let p = frame_payload(&bytes);
            let mut r = Reader::new(p);
            assert_eq!(read_pair(&mut r).unwrap(), (0x01, 1));
            let (gid, _) = read_pair(&mut r).unwrap();
            assert!(id::is_reserved(gid), "{gid:#x}");
            assert!(r.is_empty());
            assert_eq!(Settings::decode(p).unwrap(), s);
        }
    }

    #[test]
    fn unknown_and_reserved_ignored() {
        let p = payload(&[(0x21, 7), (0x00, 3), (0x0a, 0), (0x06, 100), (0x3fff_ffff_ffff_fffe, 1)]);
        let s = Settings::decode(&p).unwrap();
        assert_eq!(s, Settings { max_field_section_size: Some(100), ..Settings::default() });
    }

    fn err(pairs: &[(u64, u64)]) -> H3ErrorCode {
        let e = Settings::decode(&payload(pairs)).unwrap_err();
        assert!(e.is_connection_error());
        e.code
    }

    #[test]
    fn http2_identifiers_rejected() {
        for h2 in [0x02, 0x03, 0x04, 0x05] {
            assert_eq!(err(&[(h2, 0)]), H3ErrorCode::H3_SETTINGS_ERROR, "{h2:#x}");
            assert_eq!(err(&[(0x06, 1), (h2, 100)]), H3ErrorCode::H3_SETTINGS_ERROR);
        }
    }

    #[test]
    fn duplicates_rejected() {
        for sid in [0x01, 0x06, 0x07, 0x08, 0x33] {
            assert_eq!(err(&[(sid, 0), (sid, 0)]), H3ErrorCode::H3_SETTINGS_ERROR, "{sid:#x}");
            assert_eq!(err(&[(sid, 1), (0x21, 0), (sid, 1)]), H3ErrorCode::H3_SETTINGS_ERROR);
        }
        // Unknown and reserved identifiers may not repeat either.
        assert_eq!(err(&[(0x21, 0), (0x06, 1), (0x21, 1)]), H3ErrorCode::H3_SETTINGS_ERROR);
        assert_eq!(err(&[(0x1234, 0), (0x1234, 0)]), H3ErrorCode::H3_SETTINGS_ERROR);
        // Distinct unknown identifiers are fine.
        assert!(Settings::decode(&payload(&[(0x21, 0), (0x40, 0), (0x1234, 5)])).is_ok());
    }

    #[test]
    fn boolean_settings_must_be_0_or_1() {
        for sid in [id::ENABLE_CONNECT_PROTOCOL, id::H3_DATAGRAM] {
            assert_eq!(err(&[(sid, 2)]), H3ErrorCode::H3_SETTINGS_ERROR);
            assert_eq!(err(&[(sid, VarInt::MAX.into_inner())]), H3ErrorCode::H3_SETTINGS_ERROR);
            assert!(Settings::decode(&payload(&[(sid, 0)])).is_ok());
        }
        let s = Settings::decode(&payload(&[(0x08, 1), (0x33, 0)])).unwrap();
        assert!(s.enable_connect_protocol && !s.h3_datagram);
        let s = Settings::decode(&payload(&[(0x08, 0), (0x33, 1)])).unwrap();
        assert!(!s.enable_connect_protocol && s.h3_datagram);
    }

    #[test]
    fn truncated_pair_is_frame_error() {
        let p = payload(&[(0x06, 16384), (0x01, 4096)]);
        for cut in 1..p.len() {
            let r = Settings::decode(&p[..cut]);
            // Cuts on a pair boundary are a shorter valid payload.
            if cut == 1 + varint::size(16384) {
                assert!(r.is_ok());
                continue;
            }
            let e = r.unwrap_err();
            assert_eq!(e.code, H3ErrorCode::H3_FRAME_ERROR, "cut at {cut}");
            assert!(e.is_connection_error());
        }
        // An identifier without its value.
        assert_eq!(Settings::decode(&[0x06]).unwrap_err().code, H3ErrorCode::H3_FRAME_ERROR);
        // A value whose varint is cut short.
        assert_eq!(Settings::decode(&[0x06, 0x80, 0x00]).unwrap_err().code, H3ErrorCode::H3_FRAME_ERROR);
    }

    #[test]
    fn encode_failures_leave_writer_untouched() {
        let s = Settings { max_field_section_size: Some(1 << 20), ..Settings::default() };
        let need = s.encoded_len();
        let mut buf = vec![0u8; need - 1];
        let mut w = Writer::new(&mut buf);
        assert_eq!(s.encode(&mut w), Err(BufferTooShort));
        assert_eq!(w.len(), 0);
        let big = Settings { qpack_blocked_streams: 1 << 62, ..Settings::default() };
        let mut buf = [0u8; 64];
        let mut w = Writer::new(&mut buf);
        assert_eq!(big.encode(&mut w), Err(BufferTooShort));
        assert_eq!(big.encode_payload(&mut w), Err(BufferTooShort));
        assert_eq!(w.len(), 0);
    }
}
