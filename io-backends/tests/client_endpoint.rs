//! Several client connections on one socket (`ClientEndpoint`): each gets
//! its own events, requests of all of them are in flight together, and the
//! notifier descriptor turns readable when a response arrives.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use h3_core::connection::H3Event;
use h3_core::qpack::HeaderField;
use io_backends::runtime::{ClientEndpoint, ClientOptions, H3Handle, Server, ServerOptions};
use io_backends::select::BackendConfig;
use quic_core::stream::StreamId;
use quic_core::tls::{ClientTlsOptions, ServerTlsOptions};
use quicpro_tests::certs::shared;

fn get(path: &str) -> Vec<HeaderField> {
    [(":method", "GET"), (":scheme", "https"), (":authority", "localhost"), (":path", path)]
        .iter()
        .map(|(n, v)| HeaderField::new(Bytes::copy_from_slice(n.as_bytes()), Bytes::copy_from_slice(v.as_bytes())))
        .collect()
}

fn readable(fd: std::os::fd::RawFd) -> bool {
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, 0) > 0 }
}

#[test]
fn three_connections_on_one_socket_with_requests_in_flight_together() {
    let c = shared();
    let tls = ServerTlsOptions::new(vec![c.cert.clone()], c.key.clone_key(), &[b"h3"]);
    let mut server = Server::bind(ServerOptions::new("127.0.0.1:0".parse().unwrap(), tls)).unwrap();
    let mut ctls = ClientTlsOptions::new(&[b"h3"]);
    ctls.extra_roots.push(c.cert.clone());
    let opts = ClientOptions::new(ctls);
    let built = opts.tls.build().unwrap();
    let mut ep = ClientEndpoint::open(&BackendConfig::default(), false).unwrap();
    let handles: Vec<H3Handle> = (0..3).map(|_| ep.connect(&opts, built.clone(), server.local_addr(), "localhost", Bytes::new()).unwrap()).collect();
    assert_eq!(ep.len(), 3);
    let end = Instant::now() + Duration::from_secs(10);
    while !handles.iter().all(|h| ep.connection(*h).is_some_and(|c| !c.is_handshaking())) {
        assert!(Instant::now() < end, "handshakes");
        server.step(Duration::from_millis(1)).unwrap();
        while server.accept().is_some() {}
        ep.step(Duration::from_millis(1)).unwrap();
    }
    // One request per connection; the server answers only once it has
    // all three (so they were in flight together).
    let mut ids: HashMap<H3Handle, StreamId> = HashMap::new();
    for (i, h) in handles.iter().enumerate() {
        ids.insert(*h, ep.request(*h, &get(&format!("/{i}")), true).unwrap());
    }
    let mut seen = Vec::new();
    while seen.len() < 3 {
        assert!(Instant::now() < end, "requests");
        ep.step(Duration::from_millis(1)).unwrap();
        server.step(Duration::from_millis(1)).unwrap();
        while let Some((h, ev)) = server.poll_event() {
            if let H3Event::Headers { stream, headers, .. } = ev {
                let path = headers.iter().find(|f| f.name.as_ref() == b":path").map(|f| f.value.clone()).unwrap();
                seen.push((h, stream, path));
            }
        }
    }
    let fd = ep.notifier().unwrap();
    for (h, stream, path) in &seen {
        server.respond(*h, *stream, 200, &[], false).unwrap();
        server.send_body(*h, *stream, path.clone(), true).unwrap();
    }
    server.step(Duration::ZERO).unwrap();
    // The answers make the notifier readable without anyone stepping the
    // client endpoint.
    while !readable(fd) {
        assert!(Instant::now() < end, "notifier never readable");
        server.step(Duration::from_millis(1)).unwrap();
    }
    // Each connection gets its own response, and only its own.
    let mut bodies: HashMap<H3Handle, Vec<u8>> = HashMap::new();
    let mut done = 0;
    while done < 3 {
        assert!(Instant::now() < end, "responses: {bodies:?}");
        ep.step(Duration::from_millis(1)).unwrap();
        server.step(Duration::from_millis(1)).unwrap();
        for h in &handles {
            while let Some(ev) = ep.poll_event(*h) {
                match ev {
                    H3Event::Data { stream } | H3Event::Finished { stream } => {
                        assert_eq!(stream, ids[h]);
                        while let Some(b) = ep.recv_body(*h, stream, 65536) {
                            if b.is_empty() {
                                break;
                            }
                            bodies.entry(*h).or_default().extend_from_slice(&b);
                        }
                        if matches!(ev, H3Event::Finished { .. }) {
                            done += 1;
                        }
                    }
                    H3Event::Headers { stream, .. } => assert_eq!(stream, ids[h]),
                    _ => {}
                }
            }
        }
    }
    for (i, h) in handles.iter().enumerate() {
        assert_eq!(bodies[h], format!("/{i}").into_bytes());
    }
    // Closing one leaves the others open.
    ep.close(handles[0]);
    ep.step(Duration::from_millis(5)).unwrap();
    assert!(ep.closed(handles[0]).is_some() || ep.connection(handles[0]).is_some_and(|c| c.is_closed()));
    assert!(ep.closed(handles[1]).is_none());
    ep.forget(handles[0]);
    assert_eq!(ep.len(), 2);
}
