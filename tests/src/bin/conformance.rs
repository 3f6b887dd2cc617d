//! `conformance --server HOST:PORT --ca CERT.pem [--verbose]`: replays the
//! conformance table (`quicpro_tests::conformance`) over UDP against any
//! HTTP/3 server on loopback and prints one line per case and a summary;
//! exits 1 if any case got another answer than its RFC section demands.
//! The PHP server's phpt (php-binding/tests/030_conformance.phpt) runs it.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use quicpro_tests::conformance::{cases, check, run_case, Limits, Outcome, UdpNet};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let (Some(server), Some(ca)) = (value("--server"), value("--ca")) else {
        eprintln!("usage: conformance --server HOST:PORT --ca CERT.pem [--verbose]");
        return ExitCode::from(2);
    };
    let verbose = args.iter().any(|a| a == "--verbose");
    let Ok(addr) = server.parse::<SocketAddr>() else {
        eprintln!("conformance: bad address {server}");
        return ExitCode::from(2);
    };
    let roots = match quic_core::tls::config::load_certs(std::path::Path::new(&ca)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("conformance: {ca}: {e:?}");
            return ExitCode::from(2);
        }
    };
    let limits = Limits { setup: Duration::from_secs(5), answer: Duration::from_secs(5) };
    let all = cases();
    let (mut passed, mut failed, mut na) = (0, 0, 0);
    for (i, case) in all.iter().enumerate() {
        let net = match UdpNet::new(addr) {
            Ok(n) => n,
            Err(e) => {
                eprintln!("conformance: socket: {e}");
                return ExitCode::from(2);
            }
        };
        match run_case(net, roots.clone(), 9000 + i as u64, case, &limits) {
            Ok(Outcome::Observed(o)) => match check(case.expect, &o) {
                Ok(()) => {
                    passed += 1;
                    if verbose {
                        println!("ok   {} ({})", case.name, case.section);
                    }
                }
                Err(e) => {
                    failed += 1;
                    println!("FAIL {} ({}): {e}", case.name, case.section);
                }
            },
            Ok(Outcome::NotApplicable(why)) => {
                na += 1;
                if verbose {
                    println!("n/a  {} ({}): {why}", case.name, case.section);
                }
            }
            Err(e) => {
                failed += 1;
                println!("FAIL {} ({}): could not run: {e}", case.name, case.section);
            }
        }
    }
    println!("conformance: {passed} passed, {failed} failed, {na} not applicable");
    if failed == 0 && passed > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
