//! The per-worker runtime: one thread, one backend, one quic-core
//! `Endpoint` and an HTTP/3 layer per connection, driven by a poll/step
//! interface so callers that are not async Rust (the PHP binding's Fibers
//! scheduler) can run it.
//!
//! - [`driver`]: the shared loop (receive a batch, route it, fire timers,
//!   run HTTP/3, send).
//! - [`server`]: accept connections and requests, respond, stream bodies.
//! - [`client`]: connect, send requests, read responses, reuse tickets.
//! - [`client_endpoint`]: many client connections on one socket.
//! - [`notifier`]: one descriptor readable when a runtime has work.
//! - [`tokens`]: NEW_TOKEN tokens a client presents on its next connection.

pub mod client;
pub mod client_endpoint;
pub mod driver;
pub mod notifier;
pub mod server;
pub mod tokens;

pub use client::{Client, ClientError, ClientOptions};
pub use client_endpoint::ClientEndpoint;
pub use driver::{Driver, H3Handle};
pub use server::{Server, ServerOptions};
pub use tokens::TokenStore;
