//! Starts the relay for a case: its scenario on links of the runner's
//! 1500-byte MTU (a UDP payload of 1472 bytes over IPv4, 1452 over IPv6),
//! NAT rebinding where the case asks for it, a second listen address for
//! the server's preferred address, and both traces.

use std::net::SocketAddr;
use std::path::Path;

use quicpro_sim::link::Scenario;

use crate::cases::Case;
use crate::relay::{Rebind, Relay, RelayConfig, RelayHandle};

/// The relay between client and server for `case`.
pub fn start(
    case: &Case,
    seed: u64,
    listen: SocketAddr,
    second_listen: Option<SocketAddr>,
    server: SocketAddr,
    client_pcap: &Path,
    server_pcap: &Path,
) -> Result<RelayHandle, String> {
    let mtu = if server.is_ipv4() { 1472 } else { 1452 };
    let spec = format!("{}+mtu:{mtu}", case.scenario);
    let scenario = Scenario::parse(&spec).map_err(|e| format!("scenario {spec:?}: {e}"))?;
    let mut cfg = RelayConfig::new(listen, server)
        .with_scenario(&scenario)
        .with_seed(seed)
        .with_client_pcap(client_pcap.to_path_buf())
        .with_server_pcap(server_pcap.to_path_buf());
    if let Some(a) = second_listen {
        cfg = cfg.with_second_listen(a);
    }
    if let Some(r) = case.rebind {
        cfg = cfg.with_rebind(Rebind { first: r.first, every: r.every, change_addr: r.change_addr });
    }
    Relay::start(cfg).map_err(|e| e.to_string())
}
