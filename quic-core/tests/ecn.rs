//! ECN (RFC 9000 §13.4, RFC 9002 §7.1) on the simulated link: packets are
//! marked ECT(0), the path is validated from the peer's ACK_ECN counts,
//! a bleaching or remarking middlebox turns marking off for that
//! direction, and CE marks are congestion signals.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use quic_core::config::TransportConfig;
use quic_core::connection::ecn::{EcnFailure, EcnState};
use quic_core::stream::Dir;
use quicpro_sim::link::{EcnMangle, LinkConfig};
use quicpro_sim::pair::*;

const ECT0: usize = 2;
const CE: usize = 3;

fn link() -> LinkConfig {
    LinkConfig::new(Duration::from_millis(10)).with_bandwidth(50_000_000).with_queue_packets(100)
}

/// A pair on the simulated link; `mangle` = [client→server, server→client].
fn pair(seed: u64, mangle: [Option<EcnMangle>; 2], transport: TransportConfig) -> Pair {
    let c = certs();
    let mut p = Pair::new(seed, server_tls(&c), client_tls(&c), transport);
    p.set_links(link(), link());
    p.ecn_mangle = mangle;
    p.handshake();
    p
}

/// Sends `size` bytes server → client on a server-opened stream.
fn download(p: &mut Pair, size: usize) {
    let id = p.server().open_stream(Dir::Uni).unwrap();
    let data = vec![7u8; size];
    let mut off = 0;
    let mut got = 0usize;
    let mut buf = vec![0u8; 65536];
    p.run_until(Duration::from_secs(60), |p| {
        if off < data.len() {
            off += p.server().write(id, &data[off..]).unwrap_or(0);
            if off == data.len() {
                p.server().finish(id).unwrap();
            }
        }
        while let Some(s) = p.client().accept_stream(Dir::Uni) {
            assert_eq!(s, id);
        }
        while let Ok(o) = p.client().read(id, &mut buf) {
            got += o.bytes;
            if o.bytes == 0 || o.fin {
                break;
            }
        }
        got == size
    });
}

#[test]
fn clean_path_validates_in_both_directions() {
    let mut p = pair(1, [None, None], TransportConfig::default());
    download(&mut p, 2_000_000);
    assert_eq!(p.client().ecn_state(), EcnState::Capable);
    assert_eq!(p.server().ecn_state(), EcnState::Capable);
    for (dir, counts) in p.ecn_delivered.iter().enumerate() {
        assert!(counts[ECT0] > 0, "direction {dir}: ECT(0) datagrams delivered {counts:?}");
        assert_eq!(counts[CE], 0);
    }
    // After validation every datagram is marked: nearly all of a bulk
    // download's datagrams arrive ECT(0).
    let s2c = p.ecn_delivered[1];
    assert!(s2c[ECT0] * 10 > (s2c.iter().sum::<u64>()) * 9, "server→client marks {s2c:?}");
}

#[test]
fn bleaching_turns_marking_off_for_that_direction_only() {
    let mut p = pair(2, [Some(EcnMangle::Bleach), None], TransportConfig::default());
    download(&mut p, 500_000);
    // The client's marks are bleached: the server, having received no
    // marks, acknowledges without ECN counts (or with ECT(0) counts that
    // do not grow), so the client's validation fails (RFC 9000 §13.4.2.1).
    assert_eq!(p.client().ecn_state(), EcnState::Failed);
    assert!(matches!(p.client().ecn_failure(), Some(EcnFailure::Bleached | EcnFailure::NoCounts)), "{:?}", p.client().ecn_failure());
    assert_eq!(p.server().ecn_state(), EcnState::Capable);
}

#[test]
fn remarking_fails_validation() {
    let mut p = pair(3, [None, Some(EcnMangle::Remark(1))], TransportConfig::default());
    download(&mut p, 200_000);
    assert_eq!(p.server().ecn_state(), EcnState::Failed);
    assert_eq!(p.server().ecn_failure(), Some(EcnFailure::Remarked));
    assert_eq!(p.client().ecn_state(), EcnState::Capable);
}

#[test]
fn ce_marks_reduce_the_window_and_keep_ecn_on() {
    let mut clean = pair(4, [None, None], TransportConfig::default());
    download(&mut clean, 3_000_000);
    let mut marked = pair(4, [None, Some(EcnMangle::SetCe(0.02))], TransportConfig::default());
    download(&mut marked, 3_000_000);
    assert!(marked.ecn_delivered[1][CE] > 0, "CE marks were delivered");
    assert_eq!(marked.server().ecn_state(), EcnState::Capable, "CE is a delivered mark, not a failure");
    assert_eq!(marked.server().stats().packets_lost, 0, "no loss on this link: only CE can shrink the window");
    let (w_clean, w_marked) = (clean.server().congestion_window(), marked.server().congestion_window());
    eprintln!("congestion window after 3 MB: clean {w_clean} B, with 2 % CE {w_marked} B");
    assert!(w_marked * 2 < w_clean, "CE halved the window at least once more ({w_marked} vs {w_clean})");
}

#[test]
fn disabled_sends_no_marks() {
    let t = TransportConfig { ecn: false, ..TransportConfig::default() };
    let mut p = pair(5, [None, None], t);
    download(&mut p, 100_000);
    assert_eq!(p.ecn_delivered[0][ECT0] + p.ecn_delivered[1][ECT0], 0);
    assert_eq!(p.client().ecn_state(), EcnState::Failed, "disabled reads as failed: never marks");
}
