//! Refusing a new connection without keeping state for it.
//!
//! A server at its connection limit answers a client's first Initial with an
//! Initial packet carrying CONNECTION_CLOSE(CONNECTION_REFUSED) (RFC 9000
//! §5.2.2: a server that does not accept a connection "SHOULD" send one,
//! §20.1 for the code). The client learns at once instead of retrying until
//! its handshake times out, and the server spends one key derivation and two
//! AEAD operations, not a TLS handshake.

use crate::cid::ConnectionId;
use crate::codec::Writer;
use crate::crypto::Keys;
use crate::frame::Frame;
use crate::packet::header::LongHeader;
use crate::packet::{LongType, ProtectedHeader};
use crate::version::Version;
use crate::TransportErrorCode;

/// AEAD tag of the Initial cipher suite (AES-128-GCM, RFC 9001 §5.2).
const TAG_LEN: usize = 16;

/// Authenticates the client's Initial at the front of `datagram` (so a
/// forged or corrupted one earns no answer) and builds the refusal, sent
/// from `scid`. `None` when the packet does not authenticate.
///
/// The refusal is not ack-eliciting, so it needs no padding (§14.1), and at
/// well under 100 bytes it stays far inside the 3× anti-amplification limit
/// for the ≥ 1200-byte datagram that provoked it (§8.1).
pub(super) fn refuse_initial(version: Version, header: &ProtectedHeader, datagram: &mut [u8], scid: &ConnectionId) -> Option<Vec<u8>> {
    let keys = Keys::initial(version, &header.dcid, true).ok()?;
    let packet = datagram.get_mut(..header.len)?;
    // The client's first packet numbers are small; the truncated value is
    // the packet number (RFC 9000 §17.1 with no packet received before).
    keys.remote.unprotect(packet, header.pn_offset, |truncated, _| truncated).ok()?;

    let close = Frame::ConnectionClose { error_code: TransportErrorCode::CONNECTION_REFUSED, frame_type: 0, reason: b"" };
    let mut buf = vec![0u8; 128];
    let mut w = Writer::new(&mut buf);
    let long = LongHeader { ty: LongType::Initial, version, dcid: &header.scid, scid, token: &[] };
    // Packet number 0, one byte; a two-byte Length covers any size here.
    let layout = long.encode(&mut w, 0, 1, 2).ok()?;
    close.encode(&mut w).ok()?;
    let payload_end = w.len();
    let header_len = layout.header_len();
    layout.set_payload_len(&mut buf, payload_end - header_len + TAG_LEN).ok()?;
    let end = payload_end + TAG_LEN;
    keys.local.protect(0, buf.get_mut(..end)?, layout.pn_offset, layout.pn_len).ok()?;
    buf.truncate(end);
    Some(buf)
}
