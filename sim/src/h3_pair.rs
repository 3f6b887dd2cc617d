//! The HTTP/3 layers of a client and a server on top of a [`Pair`]: both
//! run after every network step and their events are collected for the
//! test to read.

use std::time::Duration;

use h3_core::connection::{H3Config, H3Connection, H3Event};
use h3_core::error::H3Error;
use quic_core::config::TransportConfig;
use quic_core::connection::{Connection, Side};

use crate::pair::{certs, client_tls, server_tls, Pair};

pub struct H3Pair {
    pub p: Pair,
    pub client: H3Connection,
    pub server: H3Connection,
    pub client_events: Vec<H3Event>,
    pub server_events: Vec<H3Event>,
    /// The first error each layer's `process` returned.
    pub client_err: Option<H3Error>,
    pub server_err: Option<H3Error>,
}

impl H3Pair {
    /// QUIC handshake done (seeded pair); the HTTP/3 layers have not run.
    pub fn new(seed: u64, client: H3Config, server: H3Config, transport: TransportConfig) -> Self {
        let mut h = Self::without_handshake(seed, client, server, transport);
        h.p.handshake();
        h
    }

    /// As [`H3Pair::new`] before the handshake: the client's first flight
    /// is not sent yet, so the server endpoint holds no connection.
    pub fn without_handshake(seed: u64, client: H3Config, server: H3Config, transport: TransportConfig) -> Self {
        let c = certs();
        let p = Pair::new(seed, server_tls(&c), client_tls(&c), transport);
        Self {
            p,
            client: H3Connection::new(Side::Client, client),
            server: H3Connection::new(Side::Server, server),
            client_events: Vec::new(),
            server_events: Vec::new(),
            client_err: None,
            server_err: None,
        }
    }

    pub fn client_conn(&mut self) -> &mut Connection {
        self.p.client()
    }

    pub fn server_conn(&mut self) -> &mut Connection {
        self.p.server()
    }

    /// Runs both HTTP/3 layers once and collects their events.
    pub fn pump(&mut self) {
        let now = self.p.now;
        if let Some(conn) = self.p.client.connection(self.p.client_conn) {
            if let Err(e) = self.client.process(conn, now) {
                self.client_err.get_or_insert(e);
            }
            while let Some(e) = self.client.poll_event() {
                self.client_events.push(e);
            }
        }
        if let Some(conn) = self.p.server_conn.and_then(|h| self.p.server.connection(h)) {
            if let Err(e) = self.server.process(conn, now) {
                self.server_err.get_or_insert(e);
            }
            while let Some(e) = self.server.poll_event() {
                self.server_events.push(e);
            }
        }
    }

    /// Pumps and steps the network until `cond` holds; panics after
    /// `limit` of simulated time or when the network goes idle first.
    pub fn run(&mut self, limit: Duration, mut cond: impl FnMut(&mut Self) -> bool) {
        let end = self.p.now + limit;
        loop {
            self.pump();
            if cond(self) {
                return;
            }
            assert!(self.p.now < end, "condition not met in {limit:?}");
            if !self.p.step() {
                panic!(
                    "network idle before the condition held: errors {:?} {:?}; server events {:?}; client events {:?}",
                    self.client_err, self.server_err, self.server_events, self.client_events
                );
            }
        }
    }

    /// Lets `d` of simulated time pass (no condition, no jump beyond it).
    pub fn run_for(&mut self, d: Duration) {
        let end = self.p.now + d;
        loop {
            self.pump();
            if !self.p.step_until(end) {
                break;
            }
        }
        self.pump();
    }
}
