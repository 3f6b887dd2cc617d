//! The interface between the core and qlog: the connection reports typed
//! [`QlogEvent`]s to a [`QlogSubscriber`]; serialising them is the
//! subscriber's business ([`QlogWriter`] writes JSON-SEQ). A subscriber is
//! called from inside `handle_datagram`, `handle_timeout` and
//! `poll_transmit`, so it must not block: the runtime's writer hands its
//! records to a thread (`io_backends::qlog_spool`).

use std::time::Instant;

use super::*;
use crate::frame::{Frame, FrameIter};

/// One event of the QUIC qlog schema (quic-events draft 13), borrowed from
/// the connection for the duration of the call.
#[derive(Debug, Clone, Copy)]
pub enum QlogEvent<'a> {
    /// `quic:parameters_set` (ours when the trace starts, the peer's when
    /// they arrive).
    ParametersSet(&'a ParametersSet<'a>),
    /// `quic:packet_sent`; `payload` is the packet's plaintext frames.
    PacketSent { packet: &'a PacketEvent<'a>, payload: &'a [u8] },
    /// `quic:packet_received`; `payload` is the decrypted frames.
    PacketReceived { packet: &'a PacketEvent<'a>, payload: &'a [u8] },
    /// `quic:packet_lost`.
    PacketLost { header: &'a PacketHeader<'a> },
    /// `quic:key_updated` for both 1-RTT secrets of a key phase.
    KeyUpdated { generation: u64, trigger: KeyUpdateTrigger },
    /// `quic:recovery_metrics_updated`.
    RecoveryMetricsUpdated(&'a RecoveryMetrics),
    /// `quic:recovery_parameters_set`.
    RecoveryParametersSet(&'a RecoveryParameters),
    /// `quic:ecn_state_updated`.
    EcnStateUpdated { new: &'a str, trigger: Option<&'a str> },
    /// `quic:mtu_updated` (quic-events §5.6): the packet size PMTU
    /// discovery settled on changed, or its search ended.
    MtuUpdated { old: u16, new: u16, done: bool },
    /// `quic:migration_state_updated` (quic-events): a path change started,
    /// completed (validated) or was abandoned; `remote` is where packets go.
    MigrationStateUpdated { new: &'a str, remote: std::net::SocketAddr },
    /// `quic:congestion_state_updated` (quic-events §7.3): slow_start,
    /// conservative_slow_start (HyStart++) or congestion_avoidance.
    CongestionStateUpdated { old: Option<&'a str>, new: &'a str },
    /// `quicpro:spurious_losses`: losses declared and then acknowledged.
    SpuriousLosses { space: &'a str, count: u64, congestion_reduction_undone: u64 },
    /// `quic:connection_closed`; the last event of a connection.
    ConnectionClosed(&'a ConnectionClosed<'a>),
}

/// Receives a connection's qlog events.
pub trait QlogSubscriber: Send {
    fn event(&mut self, now: Instant, event: &QlogEvent<'_>);

    /// The connection ended: write out what is buffered.
    fn flush(&mut self) {}
}

fn frames(payload: &[u8]) -> impl Iterator<Item = Frame<'_>> {
    FrameIter::new(payload).map_while(Result::ok)
}

impl QlogSubscriber for QlogWriter {
    fn event(&mut self, now: Instant, event: &QlogEvent<'_>) {
        match *event {
            QlogEvent::ParametersSet(p) => self.parameters_set(now, p),
            QlogEvent::PacketSent { packet, payload } => self.packet_sent(now, packet, frames(payload)),
            QlogEvent::PacketReceived { packet, payload } => self.packet_received(now, packet, frames(payload)),
            QlogEvent::PacketLost { header } => self.packet_lost(now, header, core::iter::empty::<Frame<'_>>(), None),
            QlogEvent::KeyUpdated { generation, trigger } => {
                self.key_updated(now, KeyType::Client1RttSecret, Some(generation), Some(trigger));
                self.key_updated(now, KeyType::Server1RttSecret, Some(generation), Some(trigger));
            }
            QlogEvent::RecoveryMetricsUpdated(m) => self.recovery_metrics_updated(now, m),
            QlogEvent::RecoveryParametersSet(p) => self.recovery_parameters_set(now, p),
            QlogEvent::CongestionStateUpdated { old, new } => self.congestion_state_updated(now, old, new, None),
            QlogEvent::EcnStateUpdated { new, trigger } => self.custom_event(now, "quic:ecn_state_updated", |d| {
                d.str("new", new);
                if let Some(t) = trigger {
                    d.str("trigger", t);
                }
            }),
            QlogEvent::MtuUpdated { old, new, done } => self.custom_event(now, "quic:mtu_updated", |d| {
                d.u64("old", u64::from(old)).u64("new", u64::from(new)).bool("done", done);
            }),
            QlogEvent::MigrationStateUpdated { new, remote } => self.custom_event(now, "quic:migration_state_updated", |d| {
                d.str("new", new).str("remote_address", &remote.to_string());
            }),
            QlogEvent::SpuriousLosses { space, count, congestion_reduction_undone } => self.custom_event(now, "quicpro:spurious_losses", |d| {
                d.str("packet_number_space", space).u64("count", count).u64("congestion_reduction_undone", congestion_reduction_undone);
            }),
            QlogEvent::ConnectionClosed(c) => self.connection_closed(now, c),
        }
    }

    fn flush(&mut self) {
        QlogWriter::flush(self);
    }
}
