//! The conformance table (`quicpro_tests::conformance`, 139 cases from RFC
//! 9000, 9001, 9114, 9204, 9218 and 9368) replayed over UDP against a real
//! `quicpro serve`: each violation, sent by our raw client with the
//! connection's real keys, must get the code its section demands.

mod support;

use std::time::Duration;

use quicpro_tests::certs::PemDir;
use quicpro_tests::conformance::{cases, check, run_case, Limits, Outcome, UdpNet};
use support::start_server;

#[test]
fn quicpro_serve_answers_every_case_with_its_code() {
    let pem = PemDir::new("conformance");
    let (cert, key) = (pem.cert_pem.display().to_string(), pem.key_pem.display().to_string());
    let (_server, port) = start_server(&["--cert", &cert, "--key", &key]);
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let limits = Limits { setup: Duration::from_secs(5), answer: Duration::from_secs(5) };
    let all = cases();
    let mut failures = Vec::new();
    let mut passed = 0;
    let mut not_applicable = 0;
    for (i, case) in all.iter().enumerate() {
        let net = UdpNet::new(addr).expect("client socket");
        match run_case(net, vec![pem.cert.clone()], 7000 + i as u64, case, &limits) {
            Ok(Outcome::Observed(o)) => match check(case.expect, &o) {
                Ok(()) => passed += 1,
                Err(e) => failures.push(format!("{} ({}): {e}", case.name, case.section)),
            },
            Ok(Outcome::NotApplicable(why)) => {
                eprintln!("n/a {}: {why}", case.name);
                not_applicable += 1;
            }
            Err(e) => failures.push(format!("{} ({}): could not run: {e}", case.name, case.section)),
        }
    }
    eprintln!("conformance over UDP: {passed} passed, {} failed, {not_applicable} not applicable of {}", failures.len(), all.len());
    assert!(failures.is_empty(), "{} cases failed:\n{}", failures.len(), failures.join("\n"));
    assert!(passed >= 60, "only {passed} cases ran");
}
