//! FUZZING ONLY: compiled with the `fuzzing` cargo feature and never in a
//! normal build.
//!
//! A fuzzer cannot forge AEAD tags, so input that has to pass packet
//! protection never reaches frame handling. This hook is a "null cipher":
//! it takes a plaintext packet payload and runs exactly what
//! `handle_packet` (in `recv.rs`) runs once a packet has been decrypted —
//! frame processing, then ACK tracking, the idle timer, TLS driving, and
//! closing on error — so the fuzzer explores frame handling of a connection
//! in any state, including after a real handshake.
//!
//! Keep it in step with `handle_packet`: it must not do anything a
//! decrypted packet could not, or the fuzzer reports bugs that cannot
//! happen. In particular a payload is only processed for a space whose keys
//! exist and have not been discarded, as a real packet could only decrypt
//! then.

use std::time::{Duration, Instant};

use super::{Connection, Side, State};
use crate::recovery::SpaceId;

/// AEAD tag length of every QUIC v1/v2 cipher suite (RFC 9001 §5.3).
const TAG_LEN: usize = 16;

impl Connection {
    /// FUZZING ONLY (feature `fuzzing`). Processes `payload` as the
    /// plaintext payload of a packet that arrived now and decrypted: a 1-RTT
    /// packet when `one_rtt`, a Handshake packet otherwise. The packet gets
    /// the next unused packet number of its space and counts as a datagram
    /// of the size the real packet would have: `payload.len()` plus header
    /// and AEAD tag. Dropped (counted in `packets_dropped`)
    /// when the space has no keys or was discarded, or when the connection
    /// is draining.
    pub fn fuzz_process_payload(&mut self, now: Instant, one_rtt: bool, payload: &[u8]) {
        // As `handle_datagram`: a draining connection reads nothing.
        if matches!(self.state, State::Drained | State::Draining) {
            return;
        }
        let space = if one_rtt { SpaceId::Data } else { SpaceId::Handshake };
        // The datagram a real packet would have needed: flags, DCID, a
        // 4-byte packet number, the AEAD tag; a long header adds version,
        // CID lengths, SCID and Length (RFC 9000 §17). Counting only the
        // payload would make the amplification limit (§8.1) far tighter
        // than any real peer can make it.
        let long = if one_rtt { 0 } else { 4 + 2 + self.remote_cids.active().len() + 2 };
        let size = (payload.len() + 1 + self.local_cids.initial().len() + 4 + long + TAG_LEN) as u64;
        self.bytes_received += size;
        // From the current remote, like a real datagram of this connection.
        self.path.on_datagram(self.remote, size as usize);
        self.stats.bytes_received += size;
        let has_keys = match space {
            SpaceId::Data => self.one_rtt.is_some(),
            _ => self.spaces[space.index()].keys.is_some(),
        };
        if !has_keys || self.spaces[space.index()].discarded {
            self.stats.packets_dropped += 1;
            return;
        }
        let Some(pn) = self.spaces[space.index()].largest_rx.map_or(Some(0), |l| l.checked_add(1)) else {
            self.stats.packets_dropped += 1;
            return;
        };
        // From here on, the same steps as `handle_packet` after `unprotect`
        // (no key phase change: the null cipher has no key phases).
        self.stats.packets_received += 1;
        self.received_any = true;
        if self.side == Side::Server && space == SpaceId::Handshake {
            self.address_validated = true;
            self.discard_space(SpaceId::Initial);
        }
        if self.state == State::Closing {
            self.close_pending = true;
            return;
        }
        let dcid = self.local_cids.initial();
        let ack_eliciting = match self.process_frames(now, space, false, &dcid, pn, payload) {
            Ok((e, _)) => e,
            Err(err) => {
                self.close_with_error(now, err);
                return;
            }
        };
        let sp = &mut self.spaces[space.index()];
        sp.largest_rx = Some(sp.largest_rx.map_or(pn, |l| l.max(pn)));
        let threshold = self.config.ack_eliciting_threshold;
        let max_delay = if space == SpaceId::Data { self.config.max_ack_delay } else { Duration::ZERO };
        sp.ack.on_packet(pn, now, ack_eliciting, None, threshold, max_delay);
        self.ack_eliciting_sent_since_rx = false;
        self.reset_idle(now);
        if let Err(err) = self.drive_tls(now) {
            self.close_with_error(now, err);
        }
    }

    /// FUZZING ONLY: every deadline `poll_timeout` takes the minimum of,
    /// by name, for a target's debug output when a timer spins.
    pub fn fuzz_timers(&self) -> String {
        let spaces: Vec<_> = self.spaces.iter().map(|s| (s.discarded, s.ack.deadline())).collect();
        format!(
            "idle {:?} handshake {:?} loss {:?} ({}) probes {:?} ack {:?} amplification_blocked {} keep_alive {:?} pmtud {:?} pacing {:?} path {:?} close {:?}",
            self.idle_deadline(),
            self.handshake_deadline,
            self.recovery.loss_detection_timer(self.timer_ctx()),
            self.recovery.fuzz_describe(self.timer_ctx()),
            self.spaces.iter().map(|s| s.probes).collect::<Vec<_>>(),
            spaces,
            self.amplification_blocked(),
            self.keep_alive_deadline,
            self.pmtud.deadline(),
            self.pacing_deadline,
            self.path.timeout(),
            self.close_deadline,
        )
    }
}
