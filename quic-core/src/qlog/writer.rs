//! The writer: frames events as JSON-SEQ records and hands them to the sink.

use core::borrow::Borrow;
use core::fmt::{self};
use std::io;
use std::time::Instant;

use super::frames::*;
use super::json::*;
use super::*;
use crate::frame::Frame;
use crate::version::Version;

/// Streams qlog records to a sink. See the module documentation.
pub struct QlogWriter {
    sink: Box<dyn io::Write + Send>,
    reference: Instant,
    json: Json,
    /// Bytes of the record being written: RS, JSON, LF.
    record: Vec<u8>,
    first_error: Option<io::Error>,
    failed_writes: u64,
    events_written: u64,
    local_ack_delay_exponent: u8,
    peer_ack_delay_exponent: u8,
    last_metrics: RecoveryMetrics,
}

impl fmt::Debug for QlogWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QlogWriter")
            .field("events_written", &self.events_written)
            .field("failed_writes", &self.failed_writes)
            .field("first_error", &self.first_error)
            .finish_non_exhaustive()
    }
}

impl QlogWriter {
    /// Writes the header record to `sink` at once. Event times are measured
    /// from `reference`.
    pub fn new(sink: Box<dyn io::Write + Send>, reference: Instant, trace: &TraceInfo<'_>) -> Self {
        let mut w = Self {
            sink,
            reference,
            json: Json::default(),
            record: Vec::new(),
            first_error: None,
            failed_writes: 0,
            events_written: 0,
            local_ack_delay_exponent: DEFAULT_ACK_DELAY_EXPONENT,
            peer_ack_delay_exponent: DEFAULT_ACK_DELAY_EXPONENT,
            last_metrics: RecoveryMetrics::default(),
        };
        w.write_file_header(trace);
        w
    }

    fn write_file_header(&mut self, trace: &TraceInfo<'_>) {
        let j = &mut self.json;
        j.clear();
        j.begin_object();
        // Main schema §4: these two SHOULD be in the first 256 bytes.
        j.f_str("file_schema", FILE_SCHEMA);
        j.f_str("serialization_format", SERIALIZATION_FORMAT);
        j.o_str("title", trace.title);
        j.o_str("description", trace.description);
        j.begin_object_field("trace");
        j.begin_object_field("common_fields");
        j.o_str("group_id", trace.group_id);
        j.f_str("time_format", "relative_to_epoch");
        // Main schema §7.1: a monotonic clock has epoch "unknown".
        j.begin_object_field("reference_time");
        j.f_str("clock_type", "monotonic");
        j.f_str("epoch", "unknown");
        j.o_str("wall_clock_time", trace.wall_clock_time);
        j.end_object();
        j.end_object();
        j.begin_object_field("vantage_point");
        j.o_str("name", trace.vantage_point_name);
        j.f_str("type", trace.vantage_point.as_str());
        j.end_object();
        j.begin_array_field("event_schemas");
        j.str(QUIC_EVENT_SCHEMA);
        for schema in trace.extra_event_schemas {
            j.str(schema);
        }
        j.end_array();
        j.end_object();
        j.end_object();
        self.emit();
    }

    /// The instant event times are measured from.
    pub fn reference_time(&self) -> Instant {
        self.reference
    }

    /// Event records written successfully (the header not counted).
    pub fn events_written(&self) -> u64 {
        self.events_written
    }

    /// Records (header or events) that did not reach the sink: the one that
    /// failed and every one after it.
    pub fn failed_writes(&self) -> u64 {
        self.failed_writes
    }

    /// The sink error that stopped logging, if any.
    pub fn first_error(&self) -> Option<&io::Error> {
        self.first_error.as_ref()
    }

    /// Whether records still reach the sink.
    pub fn is_healthy(&self) -> bool {
        self.first_error.is_none()
    }

    /// Sets the ack_delay_exponent used to turn ACK Delay into milliseconds:
    /// `local` for ACK frames this endpoint sends, `peer` for the ones it
    /// receives (RFC 9000 §18.2; both default to 3). Also learnt from
    /// [`QlogWriter::parameters_set`].
    pub fn set_ack_delay_exponents(&mut self, local: u8, peer: u8) {
        self.local_ack_delay_exponent = local.min(MAX_ACK_DELAY_EXPONENT);
        self.peer_ack_delay_exponent = peer.min(MAX_ACK_DELAY_EXPONENT);
    }

    /// The (local, peer) ack_delay_exponent in use.
    pub fn ack_delay_exponents(&self) -> (u8, u8) {
        (self.local_ack_delay_exponent, self.peer_ack_delay_exponent)
    }

    /// Flushes the sink. A failure stops logging like a failed record.
    pub fn flush(&mut self) {
        if self.first_error.is_some() {
            return;
        }
        if let Err(e) = self.sink.flush() {
            self.first_error = Some(e);
        }
    }

    /// Frames the JSON text as a JSON-SEQ record and writes it in one call.
    fn emit(&mut self) {
        if self.first_error.is_some() {
            self.failed_writes += 1;
            return;
        }
        self.record.clear();
        self.record.push(RECORD_SEPARATOR);
        self.record.extend_from_slice(self.json.s.as_bytes());
        self.record.push(b'\n');
        match self.sink.write_all(&self.record) {
            Ok(()) => {}
            Err(e) => {
                self.first_error = Some(e);
                self.failed_writes += 1;
            }
        }
    }

    /// Writes one event: `time`, `name`, then `data` filled by `f`. Once the
    /// sink has failed nothing is formatted, only counted.
    fn event(&mut self, now: Instant, name: &str, f: impl FnOnce(&mut Json)) {
        if self.first_error.is_some() {
            self.failed_writes += 1;
            return;
        }
        let j = &mut self.json;
        j.clear();
        j.begin_object();
        j.f_f64("time", duration_ms(now.saturating_duration_since(self.reference)));
        j.f_str("name", name);
        j.begin_object_field("data");
        f(j);
        j.end_object();
        j.end_object();
        self.emit();
        if self.first_error.is_none() {
            self.events_written += 1;
        }
    }

    /// Any event, its `data` written through [`EventData`]. `name` is the
    /// full `namespace:event_type`.
    pub fn custom_event(&mut self, now: Instant, name: &str, f: impl FnOnce(&mut EventData<'_>)) {
        let exponent = self.local_ack_delay_exponent;
        self.event(now, name, |j| f(&mut EventData { json: j, ack_delay_exponent: exponent }));
    }

    /// quic:connection_started (quic-events §4.2).
    pub fn connection_started(&mut self, now: Instant, local: &TupleEndpoint<'_>, remote: &TupleEndpoint<'_>) {
        self.event(now, "quic:connection_started", |j| {
            write_tuple_endpoint(j, "local", local);
            write_tuple_endpoint(j, "remote", remote);
        });
    }

    /// quic:connection_closed (quic-events §4.3).
    pub fn connection_closed(&mut self, now: Instant, closed: &ConnectionClosed<'_>) {
        self.event(now, "quic:connection_closed", |j| {
            if let Some(i) = closed.initiator {
                j.f_str("initiator", i.as_str());
            }
            match closed.error {
                Some(CloseError::Transport(code)) => {
                    write_transport_error(j, "connection_error", "error_code", code);
                }
                Some(CloseError::Application(code)) => {
                    j.f_str("application_error", "unknown");
                    j.f_u64("error_code", code);
                }
                None => {}
            }
            j.o_u64("internal_code", closed.internal_code);
            j.o_str("reason", closed.reason);
            if let Some(t) = closed.trigger {
                j.f_str("trigger", t.as_str());
            }
        });
    }

    /// quic:connection_id_updated (quic-events §4.4).
    pub fn connection_id_updated(&mut self, now: Instant, initiator: Initiator, old: Option<&[u8]>, new: Option<&[u8]>) {
        self.event(now, "quic:connection_id_updated", |j| {
            j.f_str("initiator", initiator.as_str());
            j.o_hex("old", old);
            j.o_hex("new", new);
        });
    }

    /// quic:connection_state_updated (quic-events §4.6).
    pub fn connection_state_updated(&mut self, now: Instant, old: Option<ConnectionState>, new: ConnectionState) {
        self.event(now, "quic:connection_state_updated", |j| {
            j.o_str("old", old.map(ConnectionState::as_str));
            j.f_str("new", new.as_str());
        });
    }

    /// quic:version_information (quic-events §5.1). Empty lists are omitted.
    pub fn version_information(&mut self, now: Instant, server_versions: &[Version], client_versions: &[Version], chosen_version: Option<Version>) {
        self.event(now, "quic:version_information", |j| {
            for (key, list) in [("server_versions", server_versions), ("client_versions", client_versions)] {
                if !list.is_empty() {
                    j.begin_array_field(key);
                    for v in list {
                        j.hex(&v.0.to_be_bytes());
                    }
                    j.end_array();
                }
            }
            if let Some(v) = chosen_version {
                write_version(j, "chosen_version", v);
            }
        });
    }

    /// quic:alpn_information (quic-events §5.2). `None` omits a field; an
    /// empty list is logged as such.
    pub fn alpn_information(&mut self, now: Instant, server_alpns: Option<&[&[u8]]>, client_alpns: Option<&[&[u8]]>, chosen_alpn: Option<&[u8]>) {
        self.event(now, "quic:alpn_information", |j| {
            for (key, list) in [("server_alpns", server_alpns), ("client_alpns", client_alpns)] {
                if let Some(list) = list {
                    j.begin_array_field(key);
                    for alpn in list {
                        write_alpn(j, alpn);
                    }
                    j.end_array();
                }
            }
            if let Some(alpn) = chosen_alpn {
                j.key("chosen_alpn");
                write_alpn(j, alpn);
            }
        });
    }

    /// quic:parameters_set (quic-events §5.3). An `ack_delay_exponent` in
    /// it also sets the exponent ACK frames are scaled with, for the side
    /// named by `initiator`.
    pub fn parameters_set(&mut self, now: Instant, p: &ParametersSet<'_>) {
        if let Some(exp) = p.ack_delay_exponent {
            let exp = u8::try_from(exp).unwrap_or(u8::MAX).min(MAX_ACK_DELAY_EXPONENT);
            match p.initiator {
                Some(Initiator::Local) => self.local_ack_delay_exponent = exp,
                Some(Initiator::Remote) => self.peer_ack_delay_exponent = exp,
                None => {}
            }
        }
        self.event(now, "quic:parameters_set", |j| {
            if let Some(i) = p.initiator {
                j.f_str("initiator", i.as_str());
            }
            j.o_bool("resumption_allowed", p.resumption_allowed);
            j.o_bool("early_data_enabled", p.early_data_enabled);
            j.o_str("tls_cipher", p.tls_cipher);
            j.o_hex("original_destination_connection_id", p.original_destination_connection_id);
            j.o_hex("initial_source_connection_id", p.initial_source_connection_id);
            j.o_hex("retry_source_connection_id", p.retry_source_connection_id);
            j.o_hex("stateless_reset_token", p.stateless_reset_token.map(|t| &t[..]));
            j.o_bool("disable_active_migration", p.disable_active_migration);
            j.o_u64("max_idle_timeout", p.max_idle_timeout);
            j.o_u64("max_udp_payload_size", p.max_udp_payload_size);
            j.o_u64("ack_delay_exponent", p.ack_delay_exponent);
            j.o_u64("max_ack_delay", p.max_ack_delay);
            j.o_u64("active_connection_id_limit", p.active_connection_id_limit);
            j.o_u64("initial_max_data", p.initial_max_data);
            j.o_u64("initial_max_stream_data_bidi_local", p.initial_max_stream_data_bidi_local);
            j.o_u64("initial_max_stream_data_bidi_remote", p.initial_max_stream_data_bidi_remote);
            j.o_u64("initial_max_stream_data_uni", p.initial_max_stream_data_uni);
            j.o_u64("initial_max_streams_bidi", p.initial_max_streams_bidi);
            j.o_u64("initial_max_streams_uni", p.initial_max_streams_uni);
            if let Some(pa) = p.preferred_address {
                j.begin_object_field("preferred_address");
                j.key("ip_v4");
                j.str_fmt(format_args!("{}", pa.ipv4.ip()));
                j.f_u64("port_v4", u64::from(pa.ipv4.port()));
                j.key("ip_v6");
                j.str_fmt(format_args!("{}", pa.ipv6.ip()));
                j.f_u64("port_v6", u64::from(pa.ipv6.port()));
                j.f_hex("connection_id", pa.connection_id.as_slice());
                j.f_hex("stateless_reset_token", &pa.stateless_reset_token.0);
                j.end_object();
            }
            j.o_u64("max_datagram_frame_size", p.max_datagram_frame_size);
            j.o_bool("grease_quic_bit", p.grease_quic_bit);
        });
    }

    fn packet_event<'f, I>(&mut self, now: Instant, name: &str, p: &PacketEvent<'_>, frames: I, exp: u8)
    where
        I: IntoIterator,
        I::Item: Borrow<Frame<'f>>,
    {
        self.event(now, name, |j| {
            write_header(j, &p.header);
            write_frames(j, "frames", frames, exp);
            write_raw(j, &p.raw);
            j.o_u64("datagram_id", p.datagram_id.map(u64::from));
            if p.is_mtu_probe_packet {
                j.f_bool("is_mtu_probe_packet", true);
            }
            if let Some(t) = p.trigger {
                j.f_str("trigger", t.as_str());
            }
        });
    }

    /// quic:packet_sent (quic-events §5.5). `frames` takes `&[Frame]`
    /// (`.iter()`) as well as any iterator of frames.
    pub fn packet_sent<'f, I>(&mut self, now: Instant, packet: &PacketEvent<'_>, frames: I)
    where
        I: IntoIterator,
        I::Item: Borrow<Frame<'f>>,
    {
        let exp = self.local_ack_delay_exponent;
        self.packet_event(now, "quic:packet_sent", packet, frames, exp);
    }

    /// quic:packet_received (quic-events §5.6). To log a payload as it is
    /// parsed: `FrameIter::new(payload).map_while(Result::ok)`.
    pub fn packet_received<'f, I>(&mut self, now: Instant, packet: &PacketEvent<'_>, frames: I)
    where
        I: IntoIterator,
        I::Item: Borrow<Frame<'f>>,
    {
        let exp = self.peer_ack_delay_exponent;
        self.packet_event(now, "quic:packet_received", packet, frames, exp);
    }

    /// quic:packet_dropped (quic-events §5.7). `details` becomes
    /// `details: {"reason": ...}`.
    pub fn packet_dropped(
        &mut self,
        now: Instant,
        header: Option<&PacketHeader<'_>>,
        raw: RawInfo,
        datagram_id: Option<u32>,
        trigger: Option<PacketDroppedTrigger>,
        details: Option<&str>,
    ) {
        self.event(now, "quic:packet_dropped", |j| {
            if let Some(h) = header {
                write_header(j, h);
            }
            write_raw(j, &raw);
            j.o_u64("datagram_id", datagram_id.map(u64::from));
            if let Some(reason) = details {
                j.begin_object_field("details");
                j.f_str("reason", reason);
                j.end_object();
            }
            if let Some(t) = trigger {
                j.f_str("trigger", t.as_str());
            }
        });
    }

    /// quic:key_updated (quic-events §6.1). Secrets are never logged.
    pub fn key_updated(&mut self, now: Instant, key_type: KeyType, key_phase: Option<u64>, trigger: Option<KeyUpdateTrigger>) {
        self.key_event(now, "quic:key_updated", key_type, key_phase, trigger);
    }

    /// quic:key_discarded (quic-events §6.2).
    pub fn key_discarded(&mut self, now: Instant, key_type: KeyType, key_phase: Option<u64>, trigger: Option<KeyUpdateTrigger>) {
        self.key_event(now, "quic:key_discarded", key_type, key_phase, trigger);
    }

    fn key_event(&mut self, now: Instant, name: &str, key_type: KeyType, key_phase: Option<u64>, trigger: Option<KeyUpdateTrigger>) {
        self.event(now, name, |j| {
            j.f_str("key_type", key_type.as_str());
            j.o_u64("key_phase", key_phase);
            if let Some(t) = trigger {
                j.f_str("trigger", t.as_str());
            }
        });
    }

    /// quic:recovery_parameters_set (quic-events §7.1).
    pub fn recovery_parameters_set(&mut self, now: Instant, p: &RecoveryParameters) {
        self.event(now, "quic:recovery_parameters_set", |j| {
            j.o_u64("reordering_threshold", p.reordering_threshold.map(u64::from));
            if let Some(t) = p.time_threshold {
                j.f_f64("time_threshold", f64::from(t));
            }
            j.f_u64("timer_granularity", p.timer_granularity.as_millis().min(u128::from(u16::MAX)) as u64);
            j.o_ms("initial_rtt", p.initial_rtt);
            j.o_u64("max_datagram_size", p.max_datagram_size.map(u64::from));
            j.o_u64("initial_congestion_window", p.initial_congestion_window);
            j.o_u64("minimum_congestion_window", p.minimum_congestion_window);
            if let Some(f) = p.loss_reduction_factor {
                j.f_f64("loss_reduction_factor", f64::from(f));
            }
            j.o_u64("persistent_congestion_threshold", p.persistent_congestion_threshold.map(u64::from));
        });
    }

    /// quic:recovery_metrics_updated (quic-events §7.2). Pass the current
    /// values of whatever metrics are known: only the ones that changed
    /// since the last call are logged, and nothing at all when none did (the
    /// draft asks to log actual updates only).
    pub fn recovery_metrics_updated(&mut self, now: Instant, m: &RecoveryMetrics) {
        let last = self.last_metrics;
        fn changed<T: PartialEq + Copy>(new: Option<T>, old: &mut Option<T>) -> Option<T> {
            match new {
                Some(v) if *old != Some(v) => {
                    *old = Some(v);
                    Some(v)
                }
                _ => None,
            }
        }
        let mut next = last;
        let delta = RecoveryMetrics {
            min_rtt: changed(m.min_rtt, &mut next.min_rtt),
            smoothed_rtt: changed(m.smoothed_rtt, &mut next.smoothed_rtt),
            latest_rtt: changed(m.latest_rtt, &mut next.latest_rtt),
            rtt_variance: changed(m.rtt_variance, &mut next.rtt_variance),
            pto_count: changed(m.pto_count, &mut next.pto_count),
            congestion_window: changed(m.congestion_window, &mut next.congestion_window),
            bytes_in_flight: changed(m.bytes_in_flight, &mut next.bytes_in_flight),
            ssthresh: changed(m.ssthresh, &mut next.ssthresh),
            packets_in_flight: changed(m.packets_in_flight, &mut next.packets_in_flight),
            pacing_rate: changed(m.pacing_rate, &mut next.pacing_rate),
        };
        if delta == RecoveryMetrics::default() {
            return;
        }
        self.last_metrics = next;
        self.event(now, "quic:recovery_metrics_updated", |j| {
            j.o_ms("min_rtt", delta.min_rtt);
            j.o_ms("smoothed_rtt", delta.smoothed_rtt);
            j.o_ms("latest_rtt", delta.latest_rtt);
            j.o_ms("rtt_variance", delta.rtt_variance);
            j.o_u64("pto_count", delta.pto_count.map(u64::from));
            j.o_u64("congestion_window", delta.congestion_window);
            j.o_u64("bytes_in_flight", delta.bytes_in_flight);
            j.o_u64("ssthresh", delta.ssthresh);
            j.o_u64("packets_in_flight", delta.packets_in_flight);
            j.o_u64("pacing_rate", delta.pacing_rate);
        });
    }

    /// quic:congestion_state_updated (quic-events §7.3); the state names
    /// are the congestion controller's own (e.g. "slow_start").
    pub fn congestion_state_updated(&mut self, now: Instant, old: Option<&str>, new: &str, trigger: Option<&str>) {
        self.event(now, "quic:congestion_state_updated", |j| {
            j.o_str("old", old);
            j.f_str("new", new);
            j.o_str("trigger", trigger);
        });
    }

    /// quic:packet_lost (quic-events §7.4). `frames` may be empty when the
    /// sent-packet record does not keep them (then no `frames` field).
    pub fn packet_lost<'f, I>(&mut self, now: Instant, header: &PacketHeader<'_>, frames: I, trigger: Option<PacketLostTrigger>)
    where
        I: IntoIterator,
        I::Item: Borrow<Frame<'f>>,
    {
        let exp = self.local_ack_delay_exponent;
        self.event(now, "quic:packet_lost", |j| {
            write_header(j, header);
            let mut frames = frames.into_iter().peekable();
            if frames.peek().is_some() {
                write_frames(j, "frames", frames, exp);
            }
            if let Some(t) = trigger {
                j.f_str("trigger", t.as_str());
            }
        });
    }
}

impl Drop for QlogWriter {
    fn drop(&mut self) {
        self.flush();
    }
}
