//! GSO batches (`Connection::poll_transmit`) of many short streams, as an
//! HTTP/3 server's 1 KB responses: a packet of stream data usually ends a
//! few bytes short of its segment (the last frame header is smaller than its
//! bound, or the room left is too small for another frame). Such a packet is
//! padded to the segment size, so the batch goes on instead of ending after
//! two segments, and the peer reads every stream intact from the padded
//! packets.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use quic_core::config::TransportConfig;
use quic_core::stream::{Dir, StreamId};
use quicpro_sim::pair::*;

/// A message of `len` bytes for stream number `i`.
fn message(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|k| (k * 31 + i * 7 + k / 251) as u8).collect()
}

#[test]
fn short_streams_fill_whole_batches_and_arrive_intact() {
    let c = certs();
    let mut p = Pair::new(3, server_tls(&c), client_tls(&c), TransportConfig::default());
    p.handshake();
    // Lengths that end frames at scattered offsets within packets.
    let msgs: Vec<Vec<u8>> = (0..24).map(|i| message(i, 700 + (i * 97) % 500)).collect();
    for m in &msgs {
        let id = p.client().open_stream(Dir::Uni).unwrap();
        assert_eq!(p.client().write(id, m).unwrap(), m.len());
        p.client().finish(id).unwrap();
    }
    let max_segments = TransportConfig::default().max_gso_segments;
    let (mut batches, mut segments) = (0, 0);
    let mut buf = vec![0u8; 64 * 1024];
    let from = p.client_addr;
    // Everything queued goes out in the first window: take the transmits
    // by hand, check their shape, and hand their datagrams to the server.
    while let Some(t) = {
        let now = p.now;
        p.client().poll_transmit(now, &mut buf)
    } {
        let Some(seg) = t.segment_size else { break };
        let n = t.size.div_ceil(seg);
        batches += 1;
        segments += n;
        assert!(n <= max_segments, "batch {batches}: {n} segments, limit {max_segments}");
        for d in buf[..t.size].chunks(seg) {
            p.inject_to_server(from, d.to_vec());
        }
    }
    assert!(batches > 0, "no GSO batch");
    // Without padding every batch ended after two segments (here: five
    // batches of two instead of one of ten, the initial window).
    assert!(segments >= 3 * batches, "{segments} segments in {batches} batches");
    // The server reads all 24 streams intact, padded packets included.
    let mut got: Vec<(StreamId, Vec<u8>, bool)> = Vec::new();
    let mut buf = vec![0u8; 4096];
    p.run_until(Duration::from_secs(10), |p| {
        while let Some(id) = p.server().accept_stream(Dir::Uni) {
            got.push((id, Vec::new(), false));
        }
        for (id, data, fin) in got.iter_mut().filter(|g| !g.2) {
            while let Ok(r) = p.server().read(*id, &mut buf) {
                data.extend_from_slice(&buf[..r.bytes]);
                *fin |= r.fin;
                if r.bytes == 0 || r.fin {
                    break;
                }
            }
        }
        got.len() == msgs.len() && got.iter().all(|g| g.2)
    });
    got.sort_by_key(|g| g.0 .0);
    for (i, (_, data, _)) in got.iter().enumerate() {
        assert!(data == &msgs[i], "stream {i}: {} of {} bytes, or different bytes", data.len(), msgs[i].len());
    }
}
