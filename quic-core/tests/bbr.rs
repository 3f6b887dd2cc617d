//! BBRv3 (draft-ietf-ccwg-bbr) on the simulated link, the scenarios of
//! issue 14: a 20 Mbit/s, 50 ms bottleneck with a shallow buffer (a short
//! queue at full rate), random 1 % loss (against CUBIC), and flows sharing
//! one bottleneck. Prints the figures
//! (`cargo test -p quic-core --test bbr -- --nocapture`).
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quic_core::config::TransportConfig;
use quic_core::connection::Connection;
use quic_core::endpoint::ConnectionHandle;
use quic_core::qlog::{QlogEvent, QlogSubscriber};
use quic_core::recovery::CongestionAlgorithm;
use quic_core::stream::{Dir, StreamId};
use quicpro_sim::link::LinkConfig;
use quicpro_sim::pair::{certs, client_tls, server_tls, Pair};

/// 20 Mbit/s, 50 ms round trip: a bandwidth-delay product of 125 KB.
const BITS_PER_SECOND: u64 = 20_000_000;
const ONE_WAY: Duration = Duration::from_millis(25);
const LINK_BYTES_PER_SECOND: f64 = BITS_PER_SECOND as f64 / 8.0;

/// Records the congestion states qlog reports.
struct States(Arc<Mutex<Vec<String>>>);

impl QlogSubscriber for States {
    fn event(&mut self, _now: Instant, event: &QlogEvent<'_>) {
        if let QlogEvent::CongestionStateUpdated { new, .. } = event {
            self.0.lock().unwrap().push(new.to_string());
        }
    }
}

/// What one bulk transfer measured.
#[derive(Debug)]
struct Run {
    /// Stream bytes the receiver read, in total and after `warmup`.
    received: usize,
    steady_bytes: usize,
    steady_secs: f64,
    /// Smoothed RTT of the sender, sampled every millisecond after warmup.
    mean_rtt: Duration,
    max_rtt: Duration,
    min_rtt: Duration,
    lost: u64,
    states: Vec<String>,
}

impl Run {
    fn steady_goodput(&self) -> f64 {
        self.steady_bytes as f64 / self.steady_secs
    }

    fn link_share(&self) -> f64 {
        self.steady_goodput() / LINK_BYTES_PER_SECOND
    }
}

fn drain(conn: &mut Connection, id: StreamId, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while let Ok(out) = conn.read(id, buf) {
        n += out.bytes;
        if out.bytes == 0 || out.fin {
            break;
        }
    }
    n
}

/// The server sends as much as it can for `secs` of simulated time over
/// `link` (server → client); figures count from `warmup` on.
fn download(cc: CongestionAlgorithm, link: LinkConfig, secs: u64, warmup: Duration, seed: u64) -> Run {
    let c = certs();
    let t = TransportConfig { congestion: cc, ..TransportConfig::default() };
    let mut p = Pair::new(seed, server_tls(&c), client_tls(&c), t);
    p.set_links(LinkConfig::new(ONE_WAY), link);
    p.handshake();
    let states = Arc::new(Mutex::new(Vec::new()));
    let now = p.now;
    p.server().set_qlog_subscriber(Box::new(States(states.clone())), now);
    let id = p.server().open_stream(Dir::Uni).unwrap();
    let chunk = vec![0x5au8; 256 * 1024];
    let mut buf = vec![0u8; 64 * 1024];
    let (start, end) = (p.now, p.now + Duration::from_secs(secs));
    let (mut received, mut at_warmup, mut cid) = (0usize, None, None);
    let (mut rtt_sum, mut rtt_n, mut max_rtt, mut next_sample) = (Duration::ZERO, 0u32, Duration::ZERO, start + warmup);
    p.run_until(Duration::from_secs(secs + 1), |p| {
        // Keep the send buffer topped up: never application-limited.
        while p.server().write(id, &chunk).unwrap_or(0) > 0 {}
        if cid.is_none() {
            cid = p.client().accept_stream(Dir::Uni);
        }
        if let Some(s) = cid {
            received += drain(p.client(), s, &mut buf);
        }
        while p.now >= next_sample {
            if at_warmup.is_none() {
                at_warmup = Some(received);
            }
            let rtt = p.server().rtt();
            rtt_sum += rtt;
            rtt_n += 1;
            max_rtt = max_rtt.max(rtt);
            next_sample += Duration::from_millis(1);
        }
        p.now >= end
    });
    let states = states.lock().unwrap().clone();
    Run {
        received,
        steady_bytes: received - at_warmup.unwrap_or(0),
        steady_secs: (p.now - start - warmup).as_secs_f64(),
        mean_rtt: rtt_sum / rtt_n.max(1),
        max_rtt,
        min_rtt: p.server().min_rtt(),
        lost: p.server().stats().packets_lost,
        states,
    }
}

fn report(name: &str, r: &Run) {
    eprintln!(
        "{name}: {:.2} Mbit/s after warmup ({:.1} % of the link), {} bytes in all; RTT mean {:?} max {:?} min {:?} ({:.2}× min); {} packets lost",
        r.steady_goodput() * 8.0 / 1e6,
        r.link_share() * 100.0,
        r.received,
        r.mean_rtt,
        r.max_rtt,
        r.min_rtt,
        r.mean_rtt.as_secs_f64() / r.min_rtt.as_secs_f64(),
        r.lost
    );
}

/// Shallow buffer (half the BDP, 25 ms of queue): BBR fills the link while the queue
/// stays short (draft-ietf-ccwg-bbr §1: "high throughput and low queue").
#[test]
fn bbr_fills_the_link_with_a_short_queue() {
    let link = LinkConfig::new(ONE_WAY).with_bandwidth(BITS_PER_SECOND).with_queue(62_500);
    let bbr = download(CongestionAlgorithm::Bbr, link.clone(), 6, Duration::from_secs(1), 41);
    report("bbr, shallow buffer", &bbr);
    eprintln!("bbr states: {:?}", &bbr.states[..bbr.states.len().min(12)]);
    let cubic = download(CongestionAlgorithm::Cubic, link, 6, Duration::from_secs(1), 41);
    report("cubic, shallow buffer", &cubic);
    // Startup, drain, then probe_bw phases, as qlog reports them.
    assert_eq!(bbr.states[..2], ["startup", "drain"], "{:?}", bbr.states);
    assert!(bbr.states.iter().any(|s| s == "probe_bw_up") && bbr.states.iter().any(|s| s == "probe_bw_cruise"), "{:?}", bbr.states);
    assert!(bbr.link_share() >= 0.90, "goodput {:.1} % of the link", bbr.link_share() * 100.0);
    let inflation = bbr.mean_rtt.as_secs_f64() / bbr.min_rtt.as_secs_f64();
    assert!(inflation <= 1.25, "mean RTT {:?} is {inflation:.2}× min_rtt {:?}", bbr.mean_rtt, bbr.min_rtt);
    // CUBIC fills the same buffer: its queue is the longer one.
    assert!(bbr.mean_rtt < cubic.mean_rtt, "bbr {:?}, cubic {:?}", bbr.mean_rtt, cubic.mean_rtt);
}

/// 1 % random loss on the data path, a BDP of buffer: loss-based CUBIC
/// backs off at every loss; BBR's model ignores losses below its 2 %
/// threshold (§4.5.10.2).
#[test]
fn bbr_under_random_loss_outpaces_cubic() {
    let link = LinkConfig::new(ONE_WAY).with_bandwidth(BITS_PER_SECOND).with_queue(125_000).with_loss(0.01);
    let bbr = download(CongestionAlgorithm::Bbr, link.clone(), 6, Duration::from_secs(1), 43);
    report("bbr, 1 % loss", &bbr);
    let cubic = download(CongestionAlgorithm::Cubic, link, 6, Duration::from_secs(1), 43);
    report("cubic, 1 % loss", &cubic);
    let ratio = bbr.steady_goodput() / cubic.steady_goodput();
    eprintln!("bbr / cubic goodput under 1 % loss: {ratio:.2}");
    assert!(ratio >= 2.0, "BBR only {ratio:.2}× CUBIC");
    assert!(bbr.link_share() >= 0.75, "BBR at {:.1} % of the link", bbr.link_share() * 100.0);
}

/// Two uploads share the client → server bottleneck, each with its own
/// controller; the shares after both have run for a while.
fn share(first: CongestionAlgorithm, second: CongestionAlgorithm, seed: u64) -> [f64; 2] {
    let c = certs();
    let t = TransportConfig { congestion: first, ..TransportConfig::default() };
    let mut p = Pair::new(seed, server_tls(&c), client_tls(&c), t);
    let link = LinkConfig::new(ONE_WAY).with_bandwidth(BITS_PER_SECOND).with_queue(125_000);
    p.set_links(link, LinkConfig::new(ONE_WAY));
    p.handshake();
    let a: ConnectionHandle = p.client_conn;
    // The second connection's own transport (so its own controller).
    let mut cc2 = p.client_config.clone();
    cc2.transport = Arc::new(TransportConfig { congestion: second, ..TransportConfig::default() });
    let now = p.now;
    let b = p.client.connect(now, &cc2, p.server_addr, "localhost", bytes::Bytes::new()).unwrap();
    p.run_until(Duration::from_secs(10), |p| p.client.connection(b).is_some_and(|c| !c.is_handshaking()));
    let chunk = vec![0xa5u8; 256 * 1024];
    let ids = [a, b].map(|h| p.client.connection(h).unwrap().open_stream(Dir::Uni).unwrap());
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = [0usize; 2];
    let mut streams: Vec<(ConnectionHandle, StreamId)> = Vec::new();
    let (start, warmup, end) = (p.now, Duration::from_secs(4), p.now + Duration::from_secs(14));
    let mut at_warmup = None;
    p.run_until(Duration::from_secs(15), |p| {
        for (h, id) in [a, b].into_iter().zip(ids) {
            let conn = p.client.connection(h).unwrap();
            while conn.write(id, &chunk).unwrap_or(0) > 0 {}
        }
        // The server side: accept and read every stream, crediting the
        // flow whose connection carried it (the first accepted is `a`'s).
        let handles: Vec<ConnectionHandle> = p.server.handles().collect();
        for h in handles {
            let conn = p.server.connection(h).unwrap();
            while let Some(s) = conn.accept_stream(Dir::Uni) {
                streams.push((h, s));
            }
        }
        let first = p.server_conn.unwrap();
        for (h, s) in &streams {
            let conn = p.server.connection(*h).unwrap();
            got[usize::from(*h != first)] += drain(conn, *s, &mut buf);
        }
        if at_warmup.is_none() && p.now >= start + warmup {
            at_warmup = Some(got);
        }
        p.now >= end
    });
    let w = at_warmup.unwrap();
    let secs = (p.now - start - warmup).as_secs_f64();
    [0, 1].map(|i| (got[i] - w[i]) as f64 / secs / LINK_BYTES_PER_SECOND)
}

#[test]
fn flows_sharing_a_bottleneck() {
    let bb = share(CongestionAlgorithm::Bbr, CongestionAlgorithm::Bbr, 47);
    eprintln!("bbr + bbr: shares {:.1} % and {:.1} % of the link", bb[0] * 100.0, bb[1] * 100.0);
    let bc = share(CongestionAlgorithm::Bbr, CongestionAlgorithm::Cubic, 47);
    eprintln!("bbr + cubic: bbr {:.1} %, cubic {:.1} % of the link", bc[0] * 100.0, bc[1] * 100.0);
    for (name, s) in [("bbr + bbr", bb), ("bbr + cubic", bc)] {
        // Together they keep the link busy, and neither starves.
        assert!(s[0] + s[1] >= 0.85, "{name}: together {:.1} %", (s[0] + s[1]) * 100.0);
        assert!(s[0].min(s[1]) >= 0.2, "{name}: shares {s:?}");
    }
    // Two BBR flows converge to similar shares.
    assert!((bb[0] - bb[1]).abs() <= 0.3, "bbr + bbr: shares {bb:?}");
}
