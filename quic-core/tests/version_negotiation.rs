//! Incompatible version negotiation (RFC 9368 §2.1, RFC 9000 §6) and its
//! interplay with compatible negotiation (RFC 9368 §2.3) on the simulated
//! pair.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use quic_core::codec::Writer;
use quic_core::config::TransportConfig;
use quic_core::packet::header::encode_version_negotiation;
use quic_core::Version;
use quicpro_sim::pair::{certs, client_tls, server_tls, Pair};

fn pair_with_server_versions(seed: u64, server: &[Version], client_first: Version) -> Pair {
    let c = certs();
    let server_transport = TransportConfig { versions: server.to_vec(), ..TransportConfig::default() };
    Pair::with(seed, server_tls(&c), client_tls(&c), TransportConfig::default(), move |sc| sc.transport = Arc::new(server_transport), client_first)
}

#[test]
fn a_client_starting_in_v2_moves_to_the_v1_a_v1_only_server_offers() {
    let mut p = pair_with_server_versions(1, &[Version::V1], Version::V2);
    p.handshake();
    assert_eq!(p.server.stats().version_negotiations_sent, 1, "the v2 Initial got a Version Negotiation packet");
    assert_eq!(p.client().version(), Version::V1);
    assert_eq!(p.client().negotiated_from(), Some(Version::V2));
    assert_eq!(p.server().version(), Version::V1);
    // The connection carries data after the new attempt.
    let id = p.client().open_stream(quic_core::stream::Dir::Bi).unwrap();
    p.client().write(id, b"after version negotiation").unwrap();
    p.client().finish(id).unwrap();
    p.run_until(Duration::from_secs(5), |p| p.server().accept_stream(quic_core::stream::Dir::Bi).is_some());
    let mut buf = [0u8; 64];
    p.run_until(Duration::from_secs(5), |p| p.server().readable(id) >= 25);
    let r = p.server().read(id, &mut buf).unwrap();
    assert_eq!(&buf[..25], b"after version negotiation", "{r:?}");
    assert!(p.client().error().is_none());
}

#[test]
fn a_v2_only_server_takes_a_client_starting_in_v1_to_v2() {
    let mut p = pair_with_server_versions(2, &[Version::V2], Version::V1);
    p.handshake();
    assert_eq!(p.server.stats().version_negotiations_sent, 1);
    assert_eq!(p.client().version(), Version::V2);
    assert_eq!(p.server().version(), Version::V2);
}

#[test]
fn a_client_without_a_common_version_gives_up() {
    let c = certs();
    let server_transport = TransportConfig { versions: vec![Version::V2], ..TransportConfig::default() };
    let client_transport = TransportConfig { versions: vec![Version::V1], ..TransportConfig::default() };
    let mut p = Pair::with(3, server_tls(&c), client_tls(&c), client_transport, move |sc| sc.transport = Arc::new(server_transport), Version::V1);
    p.run_until(Duration::from_secs(2), |p| p.client.connection_count() == 0);
    let (_, e) = p.client.poll_closed().unwrap();
    assert_eq!(e, Some(quic_core::connection::ConnectionError::VersionMismatch));
}

/// An attacker races the server with a Version Negotiation packet listing
/// only v1 for a client that prefers v2: the client starts over in v1,
/// offering v2 in version_information, and the server's compatible
/// upgrade takes the connection back to v2 (RFC 9368 §4: the forged packet
/// does not downgrade). The second, genuine-looking VN is ignored.
#[test]
fn a_forged_version_negotiation_does_not_downgrade() {
    let mut p = pair_with_server_versions(4, &[Version::V1, Version::V2], Version::V2);
    let scid = p.client().local_cid();
    let dcid = p.client().original_dcid();
    let forged = |versions: &[Version]| {
        let mut vn = [0u8; 64];
        let mut w = Writer::new(&mut vn);
        encode_version_negotiation(&mut w, &dcid, &scid, versions, 0x2b).unwrap();
        let n = w.len();
        vn[..n].to_vec()
    };
    let addr = p.server_addr;
    let mut first = forged(&[Version::V1]);
    let now = p.now;
    p.client.handle(now, addr, None, &mut first);
    assert_eq!(p.client().version(), Version::V1, "moved to the offered version");
    assert_eq!(p.client().original_dcid().len(), 16);
    assert_ne!(p.client().original_dcid(), dcid, "a new attempt, a new DCID");
    let mut second = forged(&[Version(0x1a2a_3a4a)]);
    p.client.handle(now, addr, None, &mut second);
    assert_eq!(p.client.connection_count(), 1, "a second VN is ignored");
    p.handshake();
    assert_eq!(p.client().version(), Version::V2, "the server's compatible upgrade restored v2");
    assert_eq!(p.server().version(), Version::V2);
    assert_eq!(p.client().negotiated_from(), Some(Version::V2));
    assert!(p.client().error().is_none());
}

/// The abandoned attempt's Initial reaches the server too: the server's
/// answer to it must not confuse the new attempt.
#[test]
fn the_server_answering_the_abandoned_attempt_does_not_break_the_new_one() {
    let mut p = pair_with_server_versions(5, &[Version::V1, Version::V2], Version::V1);
    // The first Initial (v1) leaves; then a forged VN offering v2 arrives.
    p.step();
    let scid = p.client().local_cid();
    let dcid = p.client().original_dcid();
    let mut vn = [0u8; 64];
    let mut w = Writer::new(&mut vn);
    encode_version_negotiation(&mut w, &dcid, &scid, &[Version::V2], 0x11).unwrap();
    let n = w.len();
    let (now, addr) = (p.now, p.server_addr);
    p.client.handle(now, addr, None, &mut vn[..n]);
    assert_eq!(p.client().version(), Version::V2);
    // The server holds a connection for each attempt; only the new one
    // completes (the pair's `server_conn` is the abandoned one). The
    // client offered v1 first in version_information, so the server moves
    // the new attempt back to v1 (compatible negotiation, RFC 9368 §2.3):
    // the connection ends in the version both prefer.
    p.run_until(Duration::from_secs(30), |p| p.client().is_handshake_confirmed());
    assert_eq!(p.client().version(), Version::V1);
    assert_eq!(p.client().negotiated_from(), Some(Version::V1));
    assert!(p.client().error().is_none());
    let done: Vec<_> = p.server.handles().filter(|h| p.server.connection_ref(*h).is_some_and(|c| c.is_established())).collect();
    assert_eq!(done.len(), 1, "one server connection completed");
    assert_eq!(p.server.connection_ref(done[0]).map(|c| c.version()), Some(Version::V1));
}

/// An off-path packet claiming to be the server's Initial in another
/// version must not move the client: the version changes only once that
/// version's keys open a packet (RFC 9368 §4).
#[test]
fn an_unauthenticated_initial_in_another_version_does_not_move_the_client() {
    let mut p = pair_with_server_versions(6, &[Version::V1, Version::V2], Version::V1);
    let scid = p.client().local_cid();
    // Long header, QUIC v2 Initial (type bits 0b01, RFC 9369 §3.2).
    let mut pkt = vec![0xc0 | (0b01 << 4) | 0x03];
    pkt.extend_from_slice(&Version::V2.0.to_be_bytes());
    pkt.push(scid.len() as u8);
    pkt.extend_from_slice(&scid);
    pkt.push(8);
    pkt.extend_from_slice(&[0x5a; 8]);
    pkt.push(0); // no token
    pkt.extend_from_slice(&[0x44, 0x00]); // length 1024
    pkt.extend((0..1024u32).map(|i| (i * 7) as u8));
    let (now, addr) = (p.now, p.server_addr);
    p.client.handle(now, addr, None, &mut pkt);
    assert_eq!(p.client().version(), Version::V1, "garbage does not switch versions");
    assert_eq!(p.client().original_version(), None);
    p.handshake();
    assert_eq!(p.client().version(), Version::V1);
    assert!(p.client().error().is_none());
}
