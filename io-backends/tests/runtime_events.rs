//! The runtime reports every connection's end to the application as an
//! event, also when the endpoint frees the connection from inside its timer
//! handling (an idle timeout): the layer above never reads the connection's
//! own ConnectionLost then, so the driver reports it from `poll_closed`,
//! once.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use h3_core::connection::H3Event;
use io_backends::runtime::{Client, ClientOptions, Server, ServerOptions};
use quic_core::connection::{ConnectionError, Event};
use quic_core::tls::{ClientTlsOptions, ServerTlsOptions};
use quicpro_tests::certs::shared;

#[test]
fn an_idle_timeout_reaches_the_application_as_connection_lost_once() {
    let c = shared();
    let tls = ServerTlsOptions::new(vec![c.cert.clone()], c.key.clone_key(), &[b"h3"]);
    let mut opts = ServerOptions::new("127.0.0.1:0".parse().unwrap(), tls);
    opts.transport.max_idle_timeout = Duration::from_millis(300);
    let mut server = Server::bind(opts).unwrap();
    let mut ctls = ClientTlsOptions::new(&[b"h3"]);
    ctls.extra_roots.push(c.cert.clone());
    let mut client = Client::connect(&ClientOptions::new(ctls), server.local_addr(), "localhost", Bytes::new()).unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    let mut accepted = None;
    while accepted.is_none() || !client.connection().is_some_and(|c| c.is_established()) {
        assert!(Instant::now() < end, "no handshake");
        server.step(Duration::from_millis(1)).unwrap();
        accepted = accepted.or_else(|| server.accept());
        client.step(Duration::from_millis(1)).unwrap();
    }
    let h = accepted.unwrap();
    // The client vanishes without a word: the server's idle timer ends it.
    std::mem::forget(client);
    let mut lost = Vec::new();
    let mut closed = false;
    while !closed {
        assert!(Instant::now() < end, "the idle timeout never surfaced: {lost:?}");
        server.step(Duration::from_millis(20)).unwrap();
        while let Some((eh, ev)) = server.poll_event() {
            if let (true, H3Event::Transport(Event::ConnectionLost(e))) = (eh == h, ev) {
                lost.push(e);
            }
        }
        while let Some((ch, _)) = server.poll_closed() {
            closed |= ch == h;
        }
    }
    for _ in 0..10 {
        server.step(Duration::from_millis(5)).unwrap();
        while let Some((eh, ev)) = server.poll_event() {
            if let (true, H3Event::Transport(Event::ConnectionLost(e))) = (eh == h, ev) {
                lost.push(e);
            }
        }
    }
    assert_eq!(lost, vec![ConnectionError::TimedOut]);
}
