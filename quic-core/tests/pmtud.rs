//! Path MTU discovery (RFC 8899, RFC 9000 §14.3) on the simulated link:
//! an open path, a link that drops datagrams above a size, the peer's
//! max_udp_payload_size, a black hole appearing mid-connection, and the
//! qlog events that show it.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quic_core::config::TransportConfig;
use quic_core::connection::pmtud::{PmtudPhase, BASE_PLPMTU, SEARCH_AFTER_PACKETS};
use quic_core::qlog::{QlogEvent, QlogSubscriber};
use quic_core::stream::Dir;
use quicpro_sim::link::LinkConfig;
use quicpro_sim::pair::*;

/// Records probe sizes and `mtu_updated` events.
#[derive(Default)]
struct Seen {
    probes: Vec<u64>,
    updates: Vec<(u16, u16, bool)>,
}

struct Recorder(Arc<Mutex<Seen>>);

impl QlogSubscriber for Recorder {
    fn event(&mut self, _now: Instant, event: &QlogEvent<'_>) {
        let mut s = self.0.lock().unwrap();
        match event {
            QlogEvent::PacketSent { packet, .. } if packet.is_mtu_probe_packet => s.probes.push(packet.raw.length.unwrap_or(0)),
            QlogEvent::MtuUpdated { old, new, done } => s.updates.push((*old, *new, *done)),
            _ => {}
        }
    }
}

fn pair(seed: u64, client: TransportConfig, server: TransportConfig) -> (Pair, Arc<Mutex<Seen>>) {
    let c = certs();
    let mut p = Pair::with(seed, server_tls(&c), client_tls(&c), client, move |sc| sc.transport = Arc::new(server), quic_core::Version::V1);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let now = p.now;
    p.client().set_qlog_subscriber(Box::new(Recorder(seen.clone())), now);
    (p, seen)
}

fn pattern(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 13 + i / 241) as u8).collect()
}

/// Sends `size` bytes client → server on a new stream; returns what the
/// server read.
fn upload(p: &mut Pair, size: usize, mid: impl Fn(&mut Pair, usize)) -> Vec<u8> {
    let data = pattern(size);
    let id = p.client().open_stream(Dir::Bi).unwrap();
    let (mut written, mut got, mut done) = (0, Vec::new(), false);
    let mut buf = vec![0u8; 65536];
    let mut sid = None;
    p.run_until(Duration::from_secs(60), |p| {
        if written < data.len() {
            written += p.client().write(id, &data[written..]).unwrap_or(0);
            if written == data.len() {
                p.client().finish(id).unwrap();
            }
        }
        mid(p, got.len());
        if sid.is_none() {
            sid = p.server().accept_stream(Dir::Bi);
        }
        if let Some(s) = sid {
            while let Ok(r) = p.server().read(s, &mut buf) {
                got.extend_from_slice(&buf[..r.bytes]);
                done |= r.fin;
                if r.bytes == 0 || r.fin {
                    break;
                }
            }
        }
        done
    });
    assert!(got == data, "data intact ({} of {} bytes)", got.len(), data.len());
    got
}

/// Each side queues several packets' worth at once (6,000 bytes on a
/// unidirectional stream, at least `SEARCH_AFTER_PACKETS` packets): what
/// starts the search (`pmtud.rs`).
fn queue_more_than_a_packet(p: &mut Pair) {
    let data = pattern(6000);
    assert!(data.len() / usize::from(BASE_PLPMTU) >= usize::from(SEARCH_AFTER_PACKETS));
    for client in [true, false] {
        let c = if client { p.client() } else { p.server() };
        let id = c.open_stream(Dir::Uni).unwrap();
        assert_eq!(c.write(id, &data).unwrap(), data.len());
        c.finish(id).unwrap();
    }
}

fn search_done(p: &mut Pair) -> bool {
    p.client().pmtud_phase() == PmtudPhase::Complete && p.server().pmtud_phase() == PmtudPhase::Complete
}

#[test]
fn an_open_path_is_used_at_the_bound_after_one_probe() {
    let (mut p, seen) = pair(1, TransportConfig::default(), TransportConfig::default());
    p.handshake();
    assert_eq!(p.client().mtu(), BASE_PLPMTU, "the handshake runs at the base");
    // Small data each way and seconds of quiet: nothing needs a larger
    // size, so neither side probes.
    for client in [true, false] {
        let c = if client { p.client() } else { p.server() };
        let id = c.open_stream(Dir::Uni).unwrap();
        c.write(id, b"small").unwrap();
        c.finish(id).unwrap();
    }
    let quiet_until = p.now + Duration::from_secs(3);
    p.run_until(Duration::from_secs(5), |p| p.now >= quiet_until);
    assert_eq!((p.client().stats().mtu_probes_sent, p.server().stats().mtu_probes_sent), (0, 0), "no probes without large data");
    assert_eq!(p.client().pmtud_phase(), PmtudPhase::Disabled);
    queue_more_than_a_packet(&mut p);
    p.run_until(Duration::from_secs(5), search_done);
    assert_eq!(p.client().mtu(), 1472);
    assert_eq!(p.server().mtu(), 1472);
    let s = seen.lock().unwrap();
    assert_eq!(s.probes, vec![1472], "one PING+PADDING probe of the bound");
    assert_eq!(s.updates, vec![(1200, 1472, true)]);
    drop(s);
    assert_eq!(p.client().stats().mtu_probes_lost, 0);
    // Bulk data leaves in GSO batches of the discovered size.
    let id = p.client().open_stream(Dir::Uni).unwrap();
    p.client().write(id, &pattern(200_000)).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let now = p.now;
    let t = p.client().poll_transmit(now, &mut buf).unwrap();
    // A datagram within a frame header of full starts a batch.
    let seg = t.segment_size.unwrap();
    assert!(seg > 1440 && seg <= 1472, "GSO segments follow the confirmed MTU: {seg}");
}

#[test]
fn a_link_dropping_larger_datagrams_is_found_by_search_without_congestion_losses() {
    let (mut p, seen) = pair(2, TransportConfig::default(), TransportConfig::default());
    p.set_links(LinkConfig::new(DEFAULT_DELAY).with_mtu(1350), LinkConfig::new(DEFAULT_DELAY).with_mtu(1350));
    p.handshake();
    let cwnd = p.client().congestion_window();
    queue_more_than_a_packet(&mut p);
    p.run_until(Duration::from_secs(30), search_done);
    let mtu = p.client().mtu();
    assert!(mtu <= 1350 && 1350 - mtu <= 20, "client settled on {mtu} for a 1350-byte link");
    let smtu = p.server().mtu();
    assert!(smtu <= 1350 && 1350 - smtu <= 20, "server settled on {smtu}");
    let st = p.client().stats();
    assert!(st.mtu_probes_lost >= 3, "the bound failed three times: {st:?}");
    assert_eq!(st.packets_lost, 0, "lost probes are not lost data");
    // RFC 9000 §14.4: probe losses are no congestion signal; the window
    // only changes by the new datagram size (RFC 9002 §7.2 counts it in
    // datagrams).
    assert!(p.client().congestion_window() >= cwnd, "window {} after probes, {cwnd} before", p.client().congestion_window());
    let s = seen.lock().unwrap();
    assert!(s.probes.iter().any(|&x| x > 1350) && s.probes.iter().any(|&x| x <= 1350), "{:?}", s.probes);
    assert!(s.updates.last().is_some_and(|u| u.2), "the search ended: {:?}", s.updates);
    drop(s);
    upload(&mut p, 1_000_000, |_, _| {});
    assert_eq!(p.link_stats()[0].dropped_mtu, p.client().stats().mtu_probes_lost, "only probes met the link's limit");
}

#[test]
fn the_peer_max_udp_payload_size_bounds_the_search() {
    let server = TransportConfig { max_udp_payload_size: 1300, ..TransportConfig::default() };
    let (mut p, seen) = pair(3, TransportConfig::default(), server);
    p.handshake();
    queue_more_than_a_packet(&mut p);
    p.run_until(Duration::from_secs(5), search_done);
    assert_eq!(p.client().mtu(), 1300, "the server accepts no more");
    assert_eq!(seen.lock().unwrap().probes, vec![1300]);
    assert_eq!(p.server().mtu(), 1300, "its own limit bounds the server too");
}

#[test]
fn discovery_can_be_turned_off() {
    let off = TransportConfig { mtu_discovery: false, ..TransportConfig::default() };
    let (mut p, seen) = pair(4, off.clone(), off);
    p.handshake();
    upload(&mut p, 200_000, |_, _| {});
    assert_eq!(p.client().mtu(), BASE_PLPMTU);
    assert_eq!(p.client().stats().mtu_probes_sent, 0);
    assert!(seen.lock().unwrap().probes.is_empty());
}

/// The path starts dropping datagrams above 1,300 bytes in the middle of a
/// 3 MB upload: the client detects the black hole, falls back to the base,
/// searches again below the size that stopped working, and the upload
/// completes.
#[test]
fn a_black_hole_mid_connection_falls_back_and_searches_again() {
    let (mut p, seen) = pair(5, TransportConfig::default(), TransportConfig::default());
    p.handshake();
    queue_more_than_a_packet(&mut p);
    p.run_until(Duration::from_secs(5), search_done);
    assert_eq!(p.client().mtu(), 1472);
    let narrowed = std::cell::Cell::new(false);
    upload(&mut p, 3_000_000, |p, received| {
        if received > 500_000 && !narrowed.get() {
            narrowed.set(true);
            p.set_links(LinkConfig::new(DEFAULT_DELAY).with_mtu(1300), LinkConfig::new(DEFAULT_DELAY).with_mtu(1300));
        }
    });
    assert!(narrowed.get());
    let st = p.client().stats();
    assert!(st.mtu_black_holes >= 1, "{st:?}");
    p.run_until(Duration::from_secs(30), search_done);
    let mtu = p.client().mtu();
    assert!(mtu <= 1300 && mtu > 1280, "searched again below the failing size: {mtu}");
    let s = seen.lock().unwrap();
    assert!(s.updates.iter().any(|&(old, new, _)| old == 1472 && new == BASE_PLPMTU), "fell back to the base: {:?}", s.updates);
}
