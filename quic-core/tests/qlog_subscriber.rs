//! The core reports typed qlog events to any subscriber: serialising them
//! (the JSON-SEQ writer) is one subscriber among others.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quic_core::config::TransportConfig;
use quic_core::qlog::{Initiator, QlogEvent, QlogSubscriber};
use quicpro_sim::pair::*;

/// Keeps a one-line summary of every event.
struct Recorder(Arc<Mutex<Vec<String>>>);

impl QlogSubscriber for Recorder {
    fn event(&mut self, _now: Instant, event: &QlogEvent<'_>) {
        let line = match event {
            QlogEvent::ParametersSet(p) => format!("parameters_set {:?}", p.initiator),
            QlogEvent::PacketSent { payload, .. } => format!("packet_sent {}", payload.len()),
            QlogEvent::PacketReceived { payload, .. } => format!("packet_received {}", payload.len()),
            QlogEvent::ConnectionClosed(c) => format!("connection_closed {:?}", c.initiator),
            other => format!("{other:?}").split([' ', '(', '{']).next().unwrap_or("").to_string(),
        };
        self.0.lock().unwrap().push(line);
    }
}

#[test]
fn a_subscriber_sees_the_connection_from_parameters_to_close() {
    let c = certs();
    let mut p = Pair::new(31, server_tls(&c), client_tls(&c), TransportConfig::default());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let now = p.now;
    p.client().set_qlog_subscriber(Box::new(Recorder(seen.clone())), now);
    p.handshake();
    let now = p.now;
    p.client().close(now, 0, b"done");
    p.run_until(Duration::from_secs(5), |p| p.server_conn.is_some_and(|h| p.server.connection_ref(h).is_none_or(|s| s.is_closed())));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.first().map(String::as_str), Some(format!("parameters_set {:?}", Some(Initiator::Local)).as_str()), "{seen:?}");
    assert!(seen.contains(&format!("parameters_set {:?}", Some(Initiator::Remote))), "{seen:?}");
    assert!(seen.iter().filter(|l| l.starts_with("packet_sent ")).count() >= 2, "{seen:?}");
    assert!(seen.iter().filter(|l| l.starts_with("packet_received ")).count() >= 2, "{seen:?}");
    assert_eq!(seen.iter().filter(|l| l.starts_with("connection_closed")).count(), 1, "{seen:?}");
    assert!(seen.iter().any(|l| l.starts_with("RecoveryMetricsUpdated")), "{seen:?}");
}
