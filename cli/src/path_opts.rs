//! Packet-size options shared by `serve` and `get`: the largest UDP payload
//! accepted and probed for, and whether path MTU discovery runs (RFC 8899,
//! RFC 9000 §14.3).

use clap::Args;
use quic_core::config::TransportConfig;

/// `--max-udp-payload` and `--no-pmtud`.
#[derive(Debug, Clone, Copy, Args)]
pub struct PathOptions {
    /// Largest UDP payload accepted (max_udp_payload_size, RFC 9000 §18.2)
    /// and the bound of path MTU discovery. 1472 fits a 1500-byte
    /// Ethernet path over IPv4; 1200 pins every packet at the minimum.
    #[arg(long, default_value_t = 1472, value_parser = clap::value_parser!(u16).range(1200..=65527))]
    pub max_udp_payload: u16,
    /// Keep packets at 1200 bytes: no path MTU discovery.
    #[arg(long)]
    pub no_pmtud: bool,
}

impl Default for PathOptions {
    fn default() -> Self {
        Self { max_udp_payload: 1472, no_pmtud: false }
    }
}

impl PathOptions {
    pub fn apply(&self, t: &mut TransportConfig) {
        t.max_udp_payload_size = self.max_udp_payload;
        t.mtu_discovery = !self.no_pmtud;
    }
}
