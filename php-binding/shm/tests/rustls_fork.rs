//! Real rustls handshakes against quicpro's server configuration
//! (`quic_core::tls::ServerTlsOptions`) whose session store / ticketer is
//! the shared region, with the resuming server in a *forked child*: what a
//! fork-per-core PHP deployment does when `SO_REUSEPORT` sends a client's
//! second connection to another worker.
//!
//! `harness = false`: cases run sequentially from `main`, so the process has
//! one thread whenever it forks.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use common::child::{fork, run_tests, Child};
use quicpro_shm::{SharedSessionCache, SharedTicketer, ShmRegion, DEFAULT_SHM_SIZE};
use rustls::{ClientConfig, ClientConnection, HandshakeKind, ServerConfig, ServerConnection};

const DEADLINE: Duration = Duration::from_secs(60);
const NAME: &str = "localhost";
const EARLY: &[u8] = b"GET /0rtt HTTP/1.1\r\n\r\n";

/// Child exit codes: 10 + (1 if resumed) + (2 if the expected early data
/// arrived and was accepted); 1 = the handshake failed.
const FULL: i32 = 10;
const RESUMED: i32 = 11;
const RESUMED_0RTT: i32 = 13;

fn socket_pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    for s in [&a, &b] {
        // Every blocking read/write is bounded: a hung peer fails the test.
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        s.set_write_timeout(Some(DEADLINE)).unwrap();
    }
    (a, b)
}

/// Runs a server handshake in the current (child) process and encodes what
/// happened. With `until_eof` the peer is a replayed byte stream, not a
/// live client, so the handshake cannot finish: report its state at EOF.
fn serve(cfg: Arc<ServerConfig>, mut sock: UnixStream, until_eof: bool) -> i32 {
    let Ok(mut server) = ServerConnection::new(cfg) else { return 1 };
    let mut early = Vec::new();
    let mut failed = false;
    while server.is_handshaking() {
        let io = server.complete_io(&mut sock);
        // Early data accepted so far counts even if the stream then ends.
        if let Some(mut ed) = server.early_data() {
            if ed.read_to_end(&mut early).is_err() {
                return 1;
            }
        }
        if io.is_err() {
            failed = true;
            break;
        }
    }
    if failed && !until_eof {
        return 1;
    }
    if !failed {
        // Flush the NewSessionTickets.
        while server.wants_write() {
            if server.write_tls(&mut sock).is_err() {
                return 1;
            }
        }
    }
    let resumed = server.handshake_kind() == Some(HandshakeKind::Resumed);
    FULL + i32::from(resumed) + 2 * i32::from(early == EARLY)
}

fn spawn_server(cfg: &Arc<ServerConfig>, sock: UnixStream, until_eof: bool) -> Child {
    let cfg = cfg.clone();
    fork(move || serve(cfg, sock, until_eof))
}

/// Client side of a handshake over `sock`, sending [`EARLY`] as 0-RTT when
/// the ticket allows. Returns the bytes of the first flight (ClientHello +
/// early data) and the finished connection.
fn connect(cfg: &Arc<ClientConfig>, mut sock: UnixStream) -> (Vec<u8>, ClientConnection) {
    let mut client = ClientConnection::new(cfg.clone(), NAME.try_into().unwrap()).unwrap();
    if let Some(mut ed) = client.early_data() {
        ed.write_all(EARLY).unwrap();
    }
    let mut first = Vec::new();
    while client.wants_write() {
        client.write_tls(&mut first).unwrap();
    }
    sock.write_all(&first).unwrap();
    while client.is_handshaking() {
        client.complete_io(&mut sock).unwrap();
    }
    // Read the post-handshake tickets until the server closes.
    let _ = sock.shutdown(Shutdown::Write);
    loop {
        match client.read_tls(&mut sock) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if client.process_new_packets().is_err() {
                    break;
                }
            }
        }
    }
    (first, client)
}

fn stateful_resumption_and_single_use_0rtt_across_workers() {
    let certs = common::certs(&[NAME]);
    let region = ShmRegion::create(DEFAULT_SHM_SIZE).unwrap();
    region.set_lock_timeout(Duration::from_secs(30));
    let cache = SharedSessionCache::new(&region);
    // Built once in the "PHP parent"; every worker inherits it.
    let server_cfg = common::server_config(&certs, true, Some(Arc::new(cache.clone())), None);
    let client_cfg = common::client_config(&certs, true);

    // 1. Full handshake with the parent: two tickets land in the region.
    let o = common::handshake_in_memory(&client_cfg, &server_cfg, NAME, b"");
    assert!(!o.resumed);
    assert_eq!(cache.stats().inserts, 2);
    assert_eq!(cache.len(), 2);

    // 2. Worker A (a forked child) resumes the session with 0-RTT.
    let (c_end, s_end) = socket_pair();
    let mut a = spawn_server(&server_cfg, s_end, false);
    let (first_flight, client) = connect(&client_cfg, c_end);
    assert_eq!(client.handshake_kind(), Some(HandshakeKind::Resumed));
    assert!(client.is_early_data_accepted());
    assert_eq!(a.wait(DEADLINE), RESUMED_0RTT);
    let s = cache.stats();
    assert_eq!((s.takes, s.hits), (1, 1), "worker A took the ticket from the shared cache");

    // 3. A replay of that ClientHello + early data to worker B: the ticket
    //    was taken by A, so B finds nothing, does a full handshake and
    //    ignores the early data (RFC 8446 §8).
    let (mut c_end, s_end) = socket_pair();
    let mut b = spawn_server(&server_cfg, s_end, true);
    c_end.write_all(&first_flight).unwrap();
    c_end.shutdown(Shutdown::Write).unwrap();
    let mut sink = Vec::new();
    let _ = c_end.read_to_end(&mut sink);
    assert_eq!(b.wait(DEADLINE), FULL, "a replayed 0-RTT ticket must fall back to a full handshake");
    let s = cache.stats();
    assert_eq!((s.takes, s.misses), (1, 1));

    // 4. The client's other tickets still resume on yet another worker.
    let (c_end, s_end) = socket_pair();
    let mut c = spawn_server(&server_cfg, s_end, false);
    let (_, client) = connect(&client_cfg, c_end);
    assert_eq!(client.handshake_kind(), Some(HandshakeKind::Resumed));
    assert!(client.is_early_data_accepted());
    assert_eq!(c.wait(DEADLINE), RESUMED_0RTT);
    let s = cache.stats();
    assert_eq!(s.takes, 2);
    // Tickets issued by the children are in the shared region as well.
    assert!(s.inserts >= 4, "{s:?}");
    assert!(cache.check_consistency().unwrap().is_consistent(cache.capacity()));
    println!("  {s:?}");
}

fn per_worker_caches_would_accept_the_replay() {
    // Control for the case above: with a process-local store (rustls'
    // default), worker B has its own copy of the ticket after fork and
    // accepts the replayed 0-RTT — the failure the shared cache prevents.
    let certs = common::certs(&[NAME]);
    let server_cfg = common::server_config(&certs, true, None, None);
    let client_cfg = common::client_config(&certs, true);
    assert!(!common::handshake_in_memory(&client_cfg, &server_cfg, NAME, b"").resumed);
    let (c_end, s_end) = socket_pair();
    let mut a = spawn_server(&server_cfg, s_end, false);
    let (first_flight, _client) = connect(&client_cfg, c_end);
    assert_eq!(a.wait(DEADLINE), RESUMED_0RTT);
    let (mut c_end, s_end) = socket_pair();
    let mut b = spawn_server(&server_cfg, s_end, true);
    c_end.write_all(&first_flight).unwrap();
    c_end.shutdown(Shutdown::Write).unwrap();
    let mut sink = Vec::new();
    let _ = c_end.read_to_end(&mut sink);
    assert_eq!(b.wait(DEADLINE), RESUMED_0RTT, "per-process caches accept the replay");
}

fn stateless_tickets_shared_across_workers() {
    let certs = common::certs(&[NAME]);
    let region = ShmRegion::create(DEFAULT_SHM_SIZE).unwrap();
    region.set_lock_timeout(Duration::from_secs(30));
    let ticketer = Arc::new(SharedTicketer::new(&region));
    let server_cfg = common::server_config(&certs, false, None, Some(ticketer));
    let client_cfg = common::client_config(&certs, false);
    let stats = SharedSessionCache::new(&region);

    assert!(!common::handshake_in_memory(&client_cfg, &server_cfg, NAME, b"").resumed);
    assert_eq!(stats.stats().tickets_issued, 2);

    // A forked worker decrypts the parent's ticket with the shared key.
    let (c_end, s_end) = socket_pair();
    let mut w = spawn_server(&server_cfg, s_end, false);
    let (_, client) = connect(&client_cfg, c_end);
    assert_eq!(client.handshake_kind(), Some(HandshakeKind::Resumed));
    assert_eq!(w.wait(DEADLINE), RESUMED);
    let s = stats.stats();
    assert_eq!(s.tickets_accepted, 1);
    assert!(s.tickets_issued >= 3, "{s:?}");

    // Control: a server whose keys live in a different region cannot.
    let other = ShmRegion::create(DEFAULT_SHM_SIZE).unwrap();
    let other_cfg = common::server_config(&certs, false, None, Some(Arc::new(SharedTicketer::new(&other))));
    assert!(!common::handshake_in_memory(&client_cfg, &other_cfg, NAME, b"").resumed);
    assert_eq!(SharedSessionCache::new(&other).stats().tickets_rejected, 1);
}

fn main() {
    run_tests(&[
        ("stateful_resumption_and_single_use_0rtt_across_workers", stateful_resumption_and_single_use_0rtt_across_workers),
        ("per_worker_caches_would_accept_the_replay", per_worker_caches_would_accept_the_replay),
        ("stateless_tickets_shared_across_workers", stateless_tickets_shared_across_workers),
    ]);
}
