//! NEW_TOKEN in our client (RFC 9000 §8.1.3): a server that validates every
//! address with a Retry sends a token after the handshake; the client keeps
//! it and presents it on its next connection, which the server then accepts
//! without a Retry. A client without the store pays the Retry again.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use io_backends::runtime::{Client, ClientOptions, Server, ServerOptions, TokenStore};
use quic_core::endpoint::RetryPolicy;
use quic_core::tls::{ClientTlsOptions, ServerTlsOptions};
use quicpro_tests::certs::shared;

fn server() -> Server {
    let c = shared();
    let tls = ServerTlsOptions::new(vec![c.cert.clone()], c.key.clone_key(), &[b"h3"]);
    let mut opts = ServerOptions::new("127.0.0.1:0".parse().unwrap(), tls);
    opts.retry = RetryPolicy::Always;
    Server::bind(opts).unwrap()
}

fn client_options(tokens: Option<TokenStore>) -> ClientOptions {
    let mut tls = ClientTlsOptions::new(&[b"h3"]);
    tls.extra_roots.push(shared().cert.clone());
    let mut opts = ClientOptions::new(tls);
    opts.tokens = tokens;
    opts
}

/// Steps both sides until `done` holds (10 s at most).
fn drive(server: &mut Server, client: &mut Client, mut done: impl FnMut(&mut Client) -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !done(client) {
        assert!(Instant::now() < end, "condition not met in 10 s");
        server.step(Duration::from_millis(1)).unwrap();
        while server.accept().is_some() {}
        client.step(Duration::from_millis(1)).unwrap();
    }
}

fn established(c: &mut Client) -> bool {
    c.connection().is_some_and(|c| c.is_established())
}

#[test]
fn a_kept_token_spares_the_next_connection_its_retry() {
    let mut server = server();
    let addr = server.local_addr();
    let store = TokenStore::new();
    let mut client = Client::connect(&client_options(Some(store.clone())), addr, "localhost", Bytes::new()).unwrap();
    drive(&mut server, &mut client, |c| established(c) && store.count("localhost", addr.port()) > 0);
    assert_eq!(server.endpoint_stats().retries_sent, 1, "the first connection was validated by a Retry");

    client.reconnect(addr, "localhost", Bytes::new()).unwrap();
    assert_eq!(store.count("localhost", addr.port()), 0, "the token is used once");
    drive(&mut server, &mut client, established);
    let stats = server.endpoint_stats();
    assert_eq!(stats.retries_sent, 1, "the token validated the second connection: no Retry");
    assert_eq!(stats.connections_accepted, 2);

    // The control: a client that keeps no tokens is sent a Retry again.
    let mut other = Client::connect(&client_options(None), addr, "localhost", Bytes::new()).unwrap();
    drive(&mut server, &mut other, established);
    assert_eq!(server.endpoint_stats().retries_sent, 2);
}
