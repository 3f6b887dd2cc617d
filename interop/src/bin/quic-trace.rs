//! `quic-trace CLIENT.pcap SERVER.pcap [--keylog F] [--check CASE]...`
//!
//! Analyzes the two traces of an interop run (client side and server side
//! of the relay) and prints the facts the interop runner's checks look at,
//! then the verdict of each requested check (all of them without
//! `--check`).
//!
//! Options:
//! - `--keylog F`: NSS key log (SSLKEYLOGFILE) for Handshake/0-RTT/1-RTT.
//! - `--check CASE`: a test case name (repeatable); `--check all` for all.
//! - `--expected-handshakes N`: handshakes for handshakeloss /
//!   handshakecorruption (default 50).
//! - `--zerortt-limit B`: most client 1-RTT payload bytes in zerortt
//!   (default 5000).
//! - `--min-crypto B`: least server Handshake CRYPTO bytes in
//!   amplificationlimit (default 7500).
//! - `--file-bytes B`: print the goodput for B bytes of file data.
//! - `--verbose`: also print the whole report.
//!
//! Exit status: 0 if every check run passed, 1 if one failed or was
//! unsupported, 2 on a usage or read error.

use std::path::PathBuf;
use std::process::ExitCode;

use quicpro_interop::analyze::checks::{self, CheckParams};
use quicpro_interop::analyze::{ConnectionReport, Report, Trace, VantageReport};

const USAGE: &str = "usage: quic-trace CLIENT.pcap SERVER.pcap [--keylog F] [--check CASE]... \
[--expected-handshakes N] [--zerortt-limit B] [--min-crypto B] [--file-bytes B] [--verbose]";

struct Args {
    client: PathBuf,
    server: PathBuf,
    keylog: Option<PathBuf>,
    cases: Vec<String>,
    params: CheckParams,
    file_bytes: Option<u64>,
    verbose: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut positional = Vec::new();
    let mut keylog = None;
    let mut cases = Vec::new();
    let mut params = CheckParams::default();
    let mut file_bytes = None;
    let mut verbose = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        let number = |name: &str, v: String| v.parse::<u64>().map_err(|_| format!("{name}: not a number: {v}"));
        match a.as_str() {
            "--keylog" => keylog = Some(PathBuf::from(value("--keylog")?)),
            "--check" => cases.push(value("--check")?),
            "--expected-handshakes" => {
                let v = value("--expected-handshakes")?;
                params.expected_handshakes = usize::try_from(number("--expected-handshakes", v)?).map_err(|e| e.to_string())?;
            }
            "--zerortt-limit" => params.zerortt_max_1rtt_bytes = number("--zerortt-limit", value("--zerortt-limit")?)?,
            "--min-crypto" => params.min_server_handshake_crypto = number("--min-crypto", value("--min-crypto")?)?,
            "--file-bytes" => file_bytes = Some(number("--file-bytes", value("--file-bytes")?)?),
            "--verbose" | "-v" => verbose = true,
            "--help" | "-h" => return Err(String::new()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            _ => positional.push(PathBuf::from(a)),
        }
    }
    let [client, server]: [PathBuf; 2] = positional.try_into().map_err(|_| "expected CLIENT.pcap and SERVER.pcap".to_string())?;
    if cases.is_empty() || cases.iter().any(|c| c == "all") {
        cases = checks::CASES.iter().map(|c| c.to_string()).collect();
    }
    if let Some(bad) = cases.iter().find(|c| !checks::CASES.contains(&c.as_str())) {
        return Err(format!("unknown test case {bad}; known: {}", checks::CASES.join(" ")));
    }
    Ok(Args { client, server, keylog, cases, params, file_bytes, verbose })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn print_vantage(v: &VantageReport) {
    println!(
        "{:?} side: {} c→s + {} s→c datagrams ({} unclassified), {} packets; {} undecryptable, {:?} without keys (client, server), {} unattributed, {} unparseable, {} unknown-version, {} VN, {} Retry",
        v.vantage,
        v.client_to_server_datagrams,
        v.server_to_client_datagrams,
        v.unclassified_datagrams,
        v.packets,
        v.undecryptable_packets,
        v.packets_without_keys,
        v.unattributed_packets,
        v.unparseable_packets,
        v.unknown_version_packets,
        v.version_negotiation_packets,
        v.retry_packets,
    );
    for c in &v.connections {
        print_connection(c);
    }
}

fn print_connection(c: &ConnectionReport) {
    println!("  connection {} (client SCID {}, server SCIDs {:?})", c.odcid, c.client_scid, c.server_scids);
    let suites: Vec<String> = c.client_hellos.iter().map(|h| format!("{:04x?}", h.cipher_suites)).collect();
    println!(
        "    ClientHello packets {}, offered suites {}, ServerHello {:?}, keys in key log: {}",
        c.client_hello_packets,
        suites.join(" / "),
        c.server_hello,
        c.keys_in_keylog
    );
    if let Some(r) = &c.retry {
        let tokens: Vec<String> = r.tokens.iter().map(|t| hex(t)).collect();
        println!(
            "    Retry ×{} (integrity {}), tokens {:?}, echoed {}, client PN before {:?}, first with token {:?}",
            r.count, r.integrity_ok, tokens, r.token_echoed, r.highest_client_pn_before, r.first_client_pn_with_token
        );
    }
    println!(
        "    certificate {:?}, server Handshake CRYPTO {:?} B, initial_max_streams_bidi {:?}, early data accepted {:?}",
        c.server_certificate,
        c.server_handshake_crypto_bytes,
        c.server_transport_params.as_ref().map(|p| p.initial_max_streams_bidi),
        c.server_accepted_early_data
    );
    println!(
        "    client 0-RTT {} packets / {} B ({}), client 1-RTT {} packets / {:?} B, server 1-RTT {} packets / {:?} B",
        c.client_0rtt_packets,
        c.client_0rtt_bytes,
        if c.client_0rtt_decrypted { "decrypted" } else { "Length fields" },
        c.client_1rtt_packets,
        c.client_1rtt_bytes,
        c.server_1rtt_packets,
        c.server_1rtt_bytes
    );
    println!(
        "    key phases client {:?} server {:?}; ACK-ECN client {} server {}; close {:?}",
        c.client_key_phases, c.server_key_phases, c.client_sent_ack_ecn, c.server_sent_ack_ecn, c.close
    );
}

fn print_report(r: &Report, file_bytes: Option<u64>) {
    println!("keys: given {}, usable {}", r.keys.given, r.keys.usable);
    println!("handshakes: {} (server Initial SCIDs {:?})", r.handshakes, r.server_side.server_initial_scids);
    println!(
        "versions: server Initial {:?}, client Initial {:?}, client Handshake {:?}, server Handshake {:?}",
        r.server_initial_versions, r.client_initial_versions, r.client_handshake_versions, r.server_handshake_versions
    );
    println!("Retry packets (client side): {}", r.retries);
    print_vantage(&r.client_side);
    print_vantage(&r.server_side);
    println!(
        "ECN: client→server {:?}, server→client {:?}; ACK-ECN client {:?} server {:?}",
        r.client_to_server_ecn, r.server_to_client_ecn, r.client_sent_ack_ecn, r.server_sent_ack_ecn
    );
    let p = &r.paths;
    println!("paths: client addresses at server {:?}", p.client_addresses_at_server);
    for ch in &p.server_path_changes {
        println!("  server moved {} → {} (new {}), PATH_CHALLENGE {:?}", ch.from, ch.to, ch.new_address, ch.path_challenge);
    }
    for ch in &p.server_challenges {
        println!("  challenge {} to {}, answered {}", hex(&ch.data), ch.to, p.client_responses.contains(&ch.data));
    }
    for ch in &p.client_path_changes {
        println!("  client moved {:?} → {:?}, DCID {:?} → {:?}", ch.from, ch.to, ch.previous_dcid, ch.dcid);
    }
    let a = &r.amplification;
    println!(
        "amplification: client Handshake seen {}, {} B client Initials, {} B server, max factor {:?}, >3× {}, ≥4× {}, VN {}",
        a.client_handshake_seen, a.client_initial_bytes, a.server_bytes, a.max_factor, a.datagrams_over_3x, a.datagrams_over_4x, a.version_negotiation
    );
    println!("server IPv4 datagrams: {}", r.server_ipv4_datagrams);
    println!("server 1-RTT span at the client: {:?}", r.server_1rtt_span);
    if let Some(b) = file_bytes {
        println!("goodput for {b} B: {:?} kbit/s", r.goodput_kbps(b));
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("quic-trace: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let trace = match Trace::load(&args.client, &args.server, args.keylog.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("quic-trace: {e}");
            return ExitCode::from(2);
        }
    };
    let report = trace.report();
    print_report(&report, args.file_bytes);
    if args.verbose {
        println!("{report:#?}");
    }
    let mut ok = true;
    for case in &args.cases {
        let Some(v) = checks::check(case, &report, &args.params) else { continue };
        let status = match (&v.unsupported_reason, v.passed) {
            (Some(reason), _) => format!("UNSUPPORTED ({reason})"),
            (None, true) => "PASS".to_string(),
            (None, false) => "FAIL".to_string(),
        };
        ok &= v.passed;
        println!("{case}: {status}");
        for d in &v.details {
            println!("    {d}");
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
