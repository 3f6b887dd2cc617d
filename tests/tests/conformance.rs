//! The conformance table (`quicpro_tests::conformance`) against our server
//! on simulated time: every case must get the code its RFC section
//! demands. The same table runs over UDP against `quicpro serve`
//! (cli/tests/conformance_udp.rs).

use std::time::Duration;

use quicpro_tests::conformance::{cases, check, run_case, Limits, Outcome, SimNet};

#[test]
fn every_case_gets_its_code() {
    let all = cases();
    let limits = Limits { setup: Duration::from_secs(10), answer: Duration::from_secs(10) };
    let roots = vec![quicpro_tests::certs::shared().cert.clone()];
    let mut failures = Vec::new();
    let mut passed = 0;
    let mut not_applicable = Vec::new();
    // QUICPRO_CONFORMANCE_VERBOSE=1 prints every case and its answer.
    let verbose = std::env::var_os("QUICPRO_CONFORMANCE_VERBOSE").is_some();
    for (i, case) in all.iter().enumerate() {
        match run_case(SimNet::new(i as u64 + 1), roots.clone(), 1000 + i as u64, case, &limits) {
            Ok(Outcome::Observed(o)) => match check(case.expect, &o) {
                Ok(()) if verbose => {
                    eprintln!("ok   {:<60} {:<18} {:x?} {:x?}", case.name, case.section, o.peer_close, o.stream_errors);
                    passed += 1;
                }
                Ok(()) => passed += 1,
                Err(e) => failures.push(format!("{} ({}): {e}", case.name, case.section)),
            },
            Ok(Outcome::NotApplicable(why)) => not_applicable.push(format!("{}: {why}", case.name)),
            Err(e) => failures.push(format!("{} ({}): could not run: {e}", case.name, case.section)),
        }
    }
    eprintln!("conformance: {passed} passed, {} failed, {} not applicable of {}", failures.len(), not_applicable.len(), all.len());
    for n in &not_applicable {
        eprintln!("  n/a {n}");
    }
    assert!(failures.is_empty(), "{} cases failed:\n{}", failures.len(), failures.join("\n"));
    assert!(passed >= 60, "only {passed} cases ran");
}
