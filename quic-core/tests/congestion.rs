//! Congestion control on the simulated link: HyStart++ (RFC 9406) against
//! standard slow start, for CUBIC and NewReno, on a bottleneck with a deep
//! buffer where standard slow start overshoots. Prints the figures
//! (`cargo test -p quic-core --test congestion -- --nocapture`).
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quic_core::config::TransportConfig;
use quic_core::qlog::{QlogEvent, QlogSubscriber};
use quic_core::recovery::CongestionAlgorithm;
use quic_core::stream::Dir;
use quicpro_sim::link::LinkConfig;
use quicpro_sim::pair::{certs, client_tls, server_tls, Pair};

/// 20 Mbit/s, 50 ms round trip: a bandwidth-delay product of 125 KB.
const BITS_PER_SECOND: u64 = 20_000_000;
const ONE_WAY: Duration = Duration::from_millis(25);
/// A buffer of four BDPs: slow start only loses once it is full.
const QUEUE_BYTES: usize = 500_000;
const SIZE: usize = 4_000_000;

/// Records the congestion states qlog reports.
struct States(Arc<Mutex<Vec<String>>>);

impl QlogSubscriber for States {
    fn event(&mut self, _now: Instant, event: &QlogEvent<'_>) {
        if let QlogEvent::CongestionStateUpdated { new, .. } = event {
            self.0.lock().unwrap().push(new.to_string());
        }
    }
}

struct Run {
    /// The server's congestion states in order, as qlog reported them.
    states: Vec<String>,
    lost: u64,
    secs: f64,
    max_rtt: Duration,
    min_rtt: Duration,
}

/// The server sends `SIZE` bytes to the client over the bottleneck.
fn download(cc: CongestionAlgorithm, hystart: bool, seed: u64) -> Run {
    let c = certs();
    let t = TransportConfig { congestion: cc, hystart, ..TransportConfig::default() };
    let mut p = Pair::new(seed, server_tls(&c), client_tls(&c), t);
    let link = LinkConfig::new(ONE_WAY).with_bandwidth(BITS_PER_SECOND).with_queue(QUEUE_BYTES);
    p.set_links(link.clone(), link);
    p.handshake();
    let states = Arc::new(Mutex::new(Vec::new()));
    let now = p.now;
    p.server().set_qlog_subscriber(Box::new(States(states.clone())), now);
    let id = p.server().open_stream(Dir::Uni).unwrap();
    let data = vec![0x5au8; SIZE];
    let (mut written, mut received, mut cid) = (0, 0usize, None);
    let mut buf = vec![0u8; 64 * 1024];
    let start = p.now;
    let mut max_rtt = Duration::ZERO;
    p.run_until(Duration::from_secs(60), |p| {
        if written < SIZE {
            written += p.server().write(id, &data[written..]).unwrap_or(0);
            if written == SIZE {
                p.server().finish(id).unwrap();
            }
        }
        max_rtt = max_rtt.max(p.server().rtt());
        if std::env::var_os("CC_TRACE").is_some() && (p.now - start).as_millis().is_multiple_of(50) {
            let (w, r, l) = (p.server().congestion_window(), p.server().rtt(), p.server().stats().packets_lost);
            eprintln!("  {:?} cwnd {w} srtt {r:?} lost {l}", p.now - start);
        }
        if cid.is_none() {
            cid = p.client().accept_stream(Dir::Uni);
        }
        if let Some(s) = cid {
            while let Ok(out) = p.client().read(s, &mut buf) {
                received += out.bytes;
                if out.bytes == 0 || out.fin {
                    break;
                }
            }
        }
        received == SIZE
    });
    let secs = (p.now - start).as_secs_f64();
    let s = p.server().stats();
    let states = states.lock().unwrap().clone();
    Run { states, lost: s.packets_lost, secs, max_rtt, min_rtt: p.server().min_rtt() }
}

#[test]
fn hystart_leaves_slow_start_before_the_buffer_overflows() {
    for cc in [CongestionAlgorithm::Cubic, CongestionAlgorithm::NewReno] {
        let on = download(cc, true, 31);
        let off = download(cc, false, 31);
        eprintln!("{}: congestion states with HyStart++: {:?}", cc.name(), on.states);
        // qlog shows the way out of the first slow start: through CSS with
        // HyStart++, straight to avoidance (after a loss) without.
        assert_eq!(on.states[..3], ["slow_start", "conservative_slow_start", "congestion_avoidance"], "{:?}", on.states);
        assert_eq!(off.states[..2], ["slow_start", "congestion_avoidance"], "{:?}", off.states);
        for (name, r) in [("HyStart++", &on), ("standard slow start", &off)] {
            eprintln!(
                "{}: {name}: {} packets lost, {:.2} s ({:.1} Mbit/s), smoothed RTT up to {:?} (min {:?})",
                cc.name(),
                r.lost,
                r.secs,
                SIZE as f64 * 8.0 / r.secs / 1e6,
                r.max_rtt,
                r.min_rtt
            );
        }
        // Standard slow start doubles into the full buffer and loses a
        // large part of a window. HyStart++ sees the queue building and
        // leaves through CSS, whose quarter-rate growth over five rounds
        // (each longer as the queue grows) can still reach a deep buffer's
        // end: fewer losses, not none.
        assert!(off.lost >= 100, "{}: standard slow start lost only {} packets: the scenario does not overshoot", cc.name(), off.lost);
        assert!(on.lost * 2 <= off.lost, "{}: HyStart++ lost {} packets, standard slow start {}", cc.name(), on.lost, off.lost);
    }
}

/// A controller of the application's own: a fixed window of 16 datagrams,
/// plugged in through `TransportConfig::congestion_factory`.
#[derive(Debug, Clone)]
struct FixedWindow {
    mds: u64,
}

impl quic_core::recovery::CongestionController for FixedWindow {
    fn on_packet_sent(&mut self, _now: Instant, _bytes: u64) {}
    fn on_ack(&mut self, _now: Instant, _sent: Instant, _bytes: u64, _rtt: &quic_core::recovery::rtt::RttEstimator, _app_limited: bool) {}
    fn on_congestion_event(&mut self, _now: Instant, _sent: Instant, _persistent: bool, _lost: u64) {}
    fn on_persistent_congestion(&mut self, _now: Instant) {}
    fn window(&self) -> u64 {
        16 * self.mds
    }
    fn ssthresh(&self) -> u64 {
        0
    }
    fn in_recovery(&self, _sent: Instant) -> bool {
        false
    }
    fn on_mtu_update(&mut self, mds: u64) {
        self.mds = mds;
    }
    fn max_datagram_size(&self) -> u64 {
        self.mds
    }
    fn name(&self) -> &'static str {
        "fixed16"
    }
    fn clone_box(&self) -> Box<dyn quic_core::recovery::CongestionController> {
        Box::new(self.clone())
    }
}

#[derive(Debug)]
struct FixedFactory;

impl quic_core::recovery::ControllerFactory for FixedFactory {
    fn name(&self) -> &'static str {
        "fixed16"
    }
    fn build(&self, mds: u64, _hystart: bool) -> Box<dyn quic_core::recovery::CongestionController> {
        Box::new(FixedWindow { mds })
    }
}

#[test]
fn a_controller_of_ones_own_plugs_in() {
    let c = certs();
    let t = TransportConfig { congestion_factory: Some(Arc::new(FixedFactory)), ..TransportConfig::default() };
    let mut p = Pair::new(32, server_tls(&c), client_tls(&c), t);
    p.handshake();
    assert_eq!(p.server().congestion_controller(), "fixed16");
    assert_eq!(p.client().congestion_controller(), "fixed16");
    // Whatever it sends, the window stays at 16 datagrams (of the size
    // path MTU discovery reached); a packet may start below the window and
    // end one datagram above it.
    let id = p.server().open_stream(Dir::Uni).unwrap();
    p.server().write(id, &[1u8; 200_000]).unwrap();
    p.server().finish(id).unwrap();
    let mut buf = vec![0u8; 65536];
    let (mut got, mut cid) = (0, None);
    p.run_until(Duration::from_secs(30), |p| {
        let (flight, window) = (p.server().bytes_in_flight(), p.server().congestion_window());
        assert!(window % 16 == 0 && window <= 16 * 1500, "window {window}");
        assert!(flight <= window + 1500, "{flight} bytes in flight, window {window}");
        if cid.is_none() {
            cid = p.client().accept_stream(Dir::Uni);
        }
        if let Some(s) = cid {
            while let Ok(o) = p.client().read(s, &mut buf) {
                got += o.bytes;
                if o.bytes == 0 || o.fin {
                    break;
                }
            }
        }
        got == 200_000
    });
}
