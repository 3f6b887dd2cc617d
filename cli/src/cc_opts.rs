//! Congestion-control options shared by `serve` and `get`: which controller
//! every connection runs, and whether its first slow start uses HyStart++.

use clap::Args;
use quic_core::config::TransportConfig;
use quic_core::recovery::CongestionAlgorithm;

/// `--cc` and `--no-hystart`.
#[derive(Debug, Clone, Copy, Args)]
pub struct CcOptions {
    /// Congestion controller: cubic (RFC 9438), newreno (RFC 9002) or bbr
    /// (BBRv3, draft-ietf-ccwg-bbr).
    #[arg(long = "cc", value_name = "NAME", default_value = "cubic", value_parser = parse_cc)]
    pub congestion: CongestionAlgorithm,
    /// Standard slow start instead of HyStart++ (RFC 9406).
    #[arg(long)]
    pub no_hystart: bool,
}

fn parse_cc(s: &str) -> Result<CongestionAlgorithm, String> {
    s.parse().map_err(|_| format!("unknown congestion controller {s:?} (cubic, newreno, bbr)"))
}

impl CcOptions {
    pub fn apply(&self, t: &mut TransportConfig) {
        t.congestion = self.congestion;
        t.hystart = !self.no_hystart;
    }
}
