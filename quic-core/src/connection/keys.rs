//! TLS driving and key management (RFC 9001 §4, §6).

use std::time::{Duration, Instant};

use rustls::quic::{HeaderProtectionKey, KeyChange, PacketKey, PacketKeySet, Secrets};

use super::{Connection, Event, Side};
use crate::error::{Error, TransportErrorCode};
use crate::recovery::SpaceId;
use crate::stream::{RecvStream, RecvWindow, SendStream};
use crate::transport_params::TransportParameters;

/// 1-RTT keys with their key phase (RFC 9001 §6).
pub struct OneRttKeys {
    pub local_hp: Box<dyn HeaderProtectionKey>,
    pub remote_hp: Box<dyn HeaderProtectionKey>,
    pub local: Box<dyn PacketKey>,
    pub remote: Box<dyn PacketKey>,
    next: Option<PacketKeySet>,
    secrets: Secrets,
    /// The Key Phase bit of the current keys.
    pub key_phase: bool,
    prev_remote: Option<Box<dyn PacketKey>>,
    prev_discard_at: Option<Instant>,
    /// First packet number we sent with the current keys; a new update may
    /// only start once a packet of this phase is acknowledged (§6.1).
    pub phase_first_sent: Option<u64>,
    pub phase_acked: bool,
    /// Lowest packet number the peer sent in the current phase; older
    /// packets with the other phase bit use the previous keys (§6.5).
    pub phase_first_received: Option<u64>,
    pub sent_in_phase: u64,
    /// Key update labels follow the connection's version (RFC 9369 §3.3.2).
    version: crate::version::Version,
}

impl core::fmt::Debug for OneRttKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OneRttKeys").field("key_phase", &self.key_phase).finish()
    }
}

impl OneRttKeys {
    fn new(keys: rustls::quic::Keys, secrets: Secrets, version: crate::version::Version) -> Self {
        Self {
            local_hp: keys.local.header,
            remote_hp: keys.remote.header,
            local: keys.local.packet,
            remote: keys.remote.packet,
            next: None,
            secrets,
            key_phase: false,
            prev_remote: None,
            prev_discard_at: None,
            phase_first_sent: None,
            phase_acked: true,
            phase_first_received: None,
            sent_in_phase: 0,
            version,
        }
    }

    fn next_keys(&mut self) -> PacketKeySet {
        let secrets = &mut self.secrets;
        crate::tls::versioned_hkdf::with_quic_version(self.version, || secrets.next_packet_keys())
    }

    /// Keys of the next phase, derived on first use ("quic ku", §6.1).
    pub fn next_remote(&mut self) -> &dyn PacketKey {
        let next = match self.next.take() {
            Some(n) => n,
            None => self.next_keys(),
        };
        &*self.next.insert(next).remote
    }

    pub fn prev_remote(&self) -> Option<&dyn PacketKey> {
        self.prev_remote.as_deref()
    }

    /// Moves to the next key phase, keeping the old receive key for the
    /// peer's packets of the old phase. Following the peer (`peer_started`),
    /// it goes three PTOs after now, for reordered packets (RFC 9001 §6.5).
    /// Starting the update ourselves, the peer keeps sending with the old
    /// keys until it sees a packet of ours with the new ones — which may be
    /// long after, if we have nothing to send — so the three PTOs start
    /// only at its first packet with the new keys
    /// ([`OneRttKeys::on_new_phase_received`]; §6.1, §6.5).
    pub fn rotate(&mut self, now: Instant, pto: Duration, peer_started: bool) {
        let next = match self.next.take() {
            Some(n) => n,
            None => self.next_keys(),
        };
        let old_remote = core::mem::replace(&mut self.remote, next.remote);
        self.local = next.local;
        self.prev_remote = Some(old_remote);
        // A backed-off PTO can saturate at Duration::MAX: never overflow.
        self.prev_discard_at = peer_started.then(|| super::deadline_after(now, pto.saturating_mul(3)));
        self.key_phase = !self.key_phase;
        self.phase_first_sent = None;
        self.phase_acked = false;
        self.phase_first_received = None;
        self.sent_in_phase = 0;
    }

    /// The peer's first packet protected with the current keys arrived:
    /// the old receive key is kept three PTOs more (RFC 9001 §6.5).
    pub fn on_new_phase_received(&mut self, now: Instant, pto: Duration) {
        if self.prev_remote.is_some() && self.prev_discard_at.is_none() {
            self.prev_discard_at = Some(super::deadline_after(now, pto.saturating_mul(3)));
        }
    }

    /// Whether an update is under way: old receive keys are still held.
    pub fn updating(&self) -> bool {
        self.prev_remote.is_some()
    }

    pub fn prev_discard_deadline(&self) -> Option<Instant> {
        self.prev_discard_at
    }

    pub fn discard_prev_if_due(&mut self, now: Instant) {
        if self.prev_discard_at.is_some_and(|d| now >= d) {
            self.prev_remote = None;
            self.prev_discard_at = None;
        }
    }
}

impl Connection {
    /// The space TLS currently writes to.
    fn tls_write_space(&self) -> SpaceId {
        if self.one_rtt.is_some() {
            SpaceId::Data
        } else if self.spaces[1].keys.is_some() {
            SpaceId::Handshake
        } else {
            SpaceId::Initial
        }
    }

    /// Lets TLS produce its next messages and install new keys, then feeds
    /// it any CRYPTO data that became readable.
    pub(super) fn drive_tls(&mut self, now: Instant) -> Result<(), Error> {
        loop {
            // Feed buffered CRYPTO data of the level TLS reads now. Keys move
            // up a level at a time, so walk the spaces in order.
            let mut fed = false;
            for i in 0..3 {
                if self.spaces[i].discarded {
                    continue;
                }
                loop {
                    let space = &mut self.spaces[i];
                    match space.crypto_recv.read_chunk(usize::MAX) {
                        Ok(chunk) if !chunk.data.is_empty() => {
                            // CRYPTO has no MAX_STREAM_DATA: slide the
                            // reassembly bound as TLS consumes (RFC 9000 §7.5).
                            if let Some(v) = space.crypto_recv.should_send_max_stream_data() {
                                space.crypto_recv.on_max_stream_data_sent(v, now, Duration::ZERO);
                            }
                            if i == 0 && self.client_hello.is_some() {
                                // Server: the version is chosen from the
                                // whole ClientHello before TLS reads it.
                                if let Some(bytes) = self.hold_client_hello(&chunk.data)? {
                                    self.tls.read_handshake(&bytes)?;
                                    fed = true;
                                }
                                continue;
                            }
                            self.tls.read_handshake(&chunk.data)?;
                            fed = true;
                        }
                        _ => break,
                    }
                }
            }
            let mut changed = false;
            loop {
                // TLS writes into a buffer the CRYPTO stream then owns: no
                // staging copy, and nothing kept once the handshake is over.
                let mut out = Vec::new();
                let change = self.tls.write_handshake(&mut out);
                if !out.is_empty() {
                    let space = self.tls_write_space().index();
                    let _ = self.spaces[space].crypto_send.write_bytes(bytes::Bytes::from(out));
                }
                match change {
                    None => break,
                    Some(KeyChange::Handshake { keys }) => {
                        self.spaces[1].keys = Some(keys);
                        changed = true;
                    }
                    Some(KeyChange::OneRtt { keys, next }) => {
                        self.one_rtt = Some(OneRttKeys::new(keys, next, self.version));
                        changed = true;
                    }
                }
            }
            if !fed && !changed {
                break;
            }
        }
        if self.peer_params.is_none() {
            // The server needs the client's parameters from the ClientHello;
            // the client takes the server's once the handshake is done (before
            // that rustls may report remembered 0-RTT parameters).
            let ready = self.side.is_server() || !self.tls.is_handshaking();
            if ready {
                if let Some(raw) = self.tls.peer_transport_parameters() {
                    let raw = raw.to_vec();
                    self.on_peer_params(&raw, now)?;
                }
            }
        }
        if self.side.is_server() && self.zero_rtt.is_none() && !self.handshake_complete {
            if let Some(keys) = self.tls.zero_rtt_keys() {
                self.zero_rtt = Some(keys);
                self.zero_rtt_enabled = true;
            }
        }
        if !self.handshake_complete && !self.tls.is_handshaking() && self.one_rtt.is_some() {
            self.on_handshake_complete(now)?;
        }
        if self.handshake_complete {
            // Server: every handshake byte (tickets too) was taken above.
            self.tls.retire();
        }
        Ok(())
    }

    fn on_handshake_complete(&mut self, now: Instant) -> Result<(), Error> {
        if self.peer_params.is_none() {
            return Err(Error::new(TransportErrorCode::crypto(109), "peer sent no transport parameters"));
        }
        self.handshake_complete = true;
        self.on_established();
        self.events.push_back(Event::HandshakeCompleted);
        match self.side {
            Side::Server => {
                // RFC 9001 §4.1.2: the server's handshake is confirmed when it
                // completes; HANDSHAKE_DONE tells the client.
                self.pending.handshake_done = true;
                self.confirm_handshake(now);
                self.zero_rtt = None;
            }
            Side::Client => {
                if self.zero_rtt_enabled && self.tls.early_data_accepted() == Some(false) {
                    self.on_zero_rtt_rejected();
                }
                self.zero_rtt = None;
            }
        }
        Ok(())
    }

    /// RFC 9001 §4.6.2: everything sent in 0-RTT is lost; resend it as 1-RTT.
    fn on_zero_rtt_rejected(&mut self) {
        let mut lost = Vec::new();
        self.recovery.take_unacked(SpaceId::Data, &mut lost);
        for p in lost {
            self.on_frames_lost(&p.payload);
        }
        self.events.push_back(Event::ZeroRttRejected);
    }

    pub(super) fn confirm_handshake(&mut self, now: Instant) {
        if self.handshake_confirmed {
            return;
        }
        self.handshake_confirmed = true;
        self.events.push_back(Event::HandshakeConfirmed);
        // RFC 9000 §14.3: probing needs 1-RTT packets the peer acknowledges.
        self.pmtud.start();
        // RFC 9001 §4.9.2: Handshake keys go once the handshake is confirmed.
        self.discard_space(SpaceId::Handshake);
        let limit = self.peer_params.as_ref().map_or(2, |p| p.active_connection_id_limit);
        self.local_cids.top_up(limit, &mut *self.rng);
        self.reset_idle(now);
        self.move_to_preferred_address(now);
    }

    /// RFC 9001 §4.9: drop keys and all state of a space.
    pub(super) fn discard_space(&mut self, id: SpaceId) {
        if self.spaces[id.index()].discarded {
            return;
        }
        let s = &mut self.spaces[id.index()];
        s.discarded = true;
        s.keys = None;
        // Nothing of the space is read again: free its CRYPTO buffers (an
        // unacknowledged part of our flight, the peer's reassembly) and
        // its acknowledgment ranges.
        s.crypto_send = SendStream::new(0, 0);
        s.crypto_recv = RecvStream::new(RecvWindow::new(0, 0));
        s.ack = Default::default();
        s.probes = 0;
        self.spaces.release_discarded();
        if id == SpaceId::Initial {
            self.legacy_initial_keys = None;
        }
        self.recovery.discard_space(id);
    }

    fn on_peer_params(&mut self, raw: &[u8], now: Instant) -> Result<(), Error> {
        let peer_role = match self.side {
            Side::Client => crate::transport_params::Role::Server,
            Side::Server => crate::transport_params::Role::Client,
        };
        let p = TransportParameters::decode(raw, peer_role)?;
        // RFC 9000 §7.3: authenticate the connection IDs of the handshake.
        let expected_scid = self.remote_cids.active();
        match self.side {
            Side::Client => p.check_cids(peer_role, &expected_scid, Some(&self.original_dcid), self.retry_scid.as_ref())?,
            Side::Server => p.check_cids(peer_role, &expected_scid, None, None)?,
        }
        // RFC 9368 §4: the chosen version must be the one in use.
        self.check_version_information(&p)?;
        if let Some(t) = p.stateless_reset_token {
            self.remote_cids.set_initial_reset_token(t);
        }
        // RFC 9000 §5.1.1: the preferred_address ID is sequence number 1.
        if let Some(pa) = p.preferred_address.filter(|_| self.side == Side::Client) {
            self.remote_cids.on_new_cid(1, 0, pa.connection_id, pa.stateless_reset_token)?;
        }
        self.apply_peer_params(&p)?;
        if let Some(q) = &mut self.qlog {
            q.event(now, &crate::qlog::QlogEvent::ParametersSet(&crate::qlog::ParametersSet::from_transport_parameters(crate::qlog::Initiator::Remote, &p)));
        }
        self.peer_params = Some(p);
        self.reset_idle(now);
        Ok(())
    }

    fn apply_peer_params(&mut self, p: &TransportParameters) -> Result<(), Error> {
        self.conn_send.on_max_data(p.initial_max_data);
        self.streams.set_peer_params(p)?;
        self.recovery.set_max_ack_delay(p.max_ack_delay_duration());
        self.pmtud.set_peer_max(p.max_udp_payload_size);
        Ok(())
    }

    /// Client with 0-RTT: the server's parameters remembered with the ticket
    /// set the limits for early data (RFC 9000 §7.4.1).
    pub(super) fn apply_remembered_params(&mut self) {
        let Some(raw) = self.tls.peer_transport_parameters().map(|r| r.to_vec()) else { return };
        if let Ok(p) = TransportParameters::decode(&raw, crate::transport_params::Role::Server) {
            let _ = self.apply_peer_params(&p);
        }
    }
}

/// Initial packet keys of `version` from `dcid` (RFC 9001 §5.2; RFC 9369
/// §3.3 for v2's salt and labels), for our side of the connection.
pub(super) fn initial_keys(dcid: &crate::cid::ConnectionId, side: super::Side, version: crate::version::Version) -> rustls::quic::Keys {
    let rside = if side.is_server() { rustls::Side::Server } else { rustls::Side::Client };
    let rversion = if version == crate::version::Version::V2 { rustls::quic::Version::V2 } else { rustls::quic::Version::V1 };
    crate::tls::provider::initial_suite().keys(dcid, rside, rversion)
}
