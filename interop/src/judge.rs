//! The runner's verdict on a run's traces: the analyzer's check for the
//! case, with the case's parameters (handshakes expected, the zerortt
//! budget of half the requested names, the amplificationlimit flight).
//! Goodput and crosstraffic are measurements: they take the transfer
//! checks and report the goodput.

use std::path::Path;

use crate::analyze::checks::{self, CheckParams};
use crate::analyze::Trace;
use crate::cases::Case;

/// What the traces say about a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Judgement {
    Pass {
        notes: Vec<String>,
        goodput_kbps: Option<f64>,
    },
    Fail(String),
    /// A check needs what the run did not give (keys the peer never
    /// writes): reported as unsupported with the reason.
    Unsupported(String),
}

/// `competing`: connections of a competing flow sharing the trace
/// (crosstraffic), which add handshakes of their own.
pub fn judge(case: &Case, client_pcap: &Path, server_pcap: &Path, keylog: Option<&Path>, expected_handshakes: usize, competing: usize) -> Judgement {
    let trace = match Trace::load(client_pcap, server_pcap, keylog) {
        Ok(t) => t,
        Err(e) => return Judgement::Fail(format!("traces: {e}")),
    };
    let report = trace.report();
    let names_bytes: u64 = case.files.sizes.len() as u64 * case.files.name_len as u64;
    let params = CheckParams {
        expected_handshakes,
        // The runner: 0.5 × the bytes of the requested names.
        zerortt_max_1rtt_bytes: (names_bytes / 2).max(1),
        min_server_handshake_crypto: 7500,
    };
    let name = match case.name {
        "goodput" => "transfer",
        // Our measured transfer plus the competing downloads: N handshakes
        // (the last competitor may have been stopped before finishing its
        // own), all v1.
        "crosstraffic" => {
            let n = (expected_handshakes.saturating_sub(1)..=expected_handshakes).find(|n| *n >= 1 && checks::handshakeloss(&report, *n).passed);
            return match n {
                Some(_) => Judgement::Pass {
                    notes: vec![format!("{} handshakes: ours and {competing} competing", report.handshakes)],
                    goodput_kbps: report.goodput_kbps(case.files.sizes.iter().sum()),
                },
                None => Judgement::Fail(format!("{} handshakes, expected {expected_handshakes} (1 + {competing} competing)", report.handshakes)),
            };
        }
        n => n,
    };
    let Some(v) = checks::check(name, &report, &params) else {
        return Judgement::Fail(format!("no check for case {name}"));
    };
    if let Some(r) = v.unsupported_reason {
        return Judgement::Unsupported(format!("check needs what the run lacks: {r}"));
    }
    if !v.passed {
        let failed: Vec<&String> = v.details.iter().filter(|d| d.contains("FAIL") || d.starts_with('✗') || d.contains("fail")).collect();
        let shown = if failed.is_empty() { v.details.iter().collect::<Vec<_>>() } else { failed };
        return Judgement::Fail(shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("; "));
    }
    let bytes: u64 = case.files.sizes.iter().sum();
    Judgement::Pass { notes: v.details, goodput_kbps: report.goodput_kbps(bytes) }
}
