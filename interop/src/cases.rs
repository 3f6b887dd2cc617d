//! The interop runner's test cases (../shared/specs/INTEROP_TEST_CASES.md,
//! "Test cases" and "Measurements"): what each asks of the endpoints, the
//! network scenario between them, the files, and how long it may take.
//! The checks themselves are in [`crate::analyze`]; the files are compared
//! by the runner.

use std::time::Duration;

/// How a client spreads its requests over connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionPlan {
    /// All requests on one connection, concurrently.
    One,
    /// One connection per request, one after the other (`multiconnect`).
    PerRequest,
    /// The first request on connection 1, the rest on a resumed connection
    /// 2 (`resumption`, `zerortt`).
    FirstThenRest,
}

/// The files a case requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSet {
    /// Sizes in bytes, one file each.
    pub sizes: Vec<u64>,
    /// Length of the random lowercase names (the zerortt case uses 250).
    pub name_len: usize,
}

impl FileSet {
    fn sizes(sizes: &[u64]) -> Self {
        FileSet { sizes: sizes.to_vec(), name_len: 12 }
    }
    fn repeat(n: usize, size: u64) -> Self {
        FileSet { sizes: vec![size; n], name_len: 12 }
    }
}

/// NAT rebinding by the relay (`rebind` scenario).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebindPlan {
    pub first: Duration,
    pub every: Duration,
    pub change_addr: bool,
}

/// One test case.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: &'static str,
    pub abbr: &'static str,
    /// The TESTCASE value handed to the client and to the server.
    pub client_testcase: &'static str,
    pub server_testcase: &'static str,
    /// The relay's scenario (sim/src/link.rs `Scenario` grammar).
    pub scenario: &'static str,
    pub rebind: Option<RebindPlan>,
    pub files: FileSet,
    pub plan: ConnectionPlan,
    /// ALPN h3 instead of hq-interop.
    pub http3: bool,
    /// Over IPv6 loopback.
    pub ipv6: bool,
    /// Certificates the server sends (9 for amplificationlimit) and whether
    /// the leaf carries the 20 long fake names.
    pub chain_len: usize,
    pub big_leaf: bool,
    pub timeout: Duration,
    /// A measurement (goodput): repeated, reported as a rate.
    pub repetitions: usize,
    /// Part of the fast subset `.ci/run` runs.
    pub fast: bool,
}

const KB: u64 = 1024;
const MB: u64 = 1024 * 1024;

impl Case {
    fn new(name: &'static str, abbr: &'static str, testcase: &'static str, files: FileSet) -> Self {
        Case {
            name,
            abbr,
            client_testcase: testcase,
            server_testcase: testcase,
            scenario: "base",
            rebind: None,
            files,
            plan: ConnectionPlan::One,
            http3: false,
            ipv6: false,
            chain_len: 1,
            big_leaf: false,
            timeout: Duration::from_secs(60),
            repetitions: 1,
            fast: false,
        }
    }
    fn scenario(mut self, s: &'static str) -> Self {
        self.scenario = s;
        self
    }
    fn plan(mut self, p: ConnectionPlan) -> Self {
        self.plan = p;
        self
    }
    fn fast(mut self) -> Self {
        self.fast = true;
        self
    }
    fn timeout(mut self, secs: u64) -> Self {
        self.timeout = Duration::from_secs(secs);
        self
    }

    /// Expected number of handshakes (distinct server SCIDs).
    pub fn expected_handshakes(&self) -> usize {
        match self.plan {
            ConnectionPlan::One => 1,
            ConnectionPlan::FirstThenRest => 2,
            ConnectionPlan::PerRequest => self.files.sizes.len(),
        }
    }
}

/// Every test case and measurement, in the runner's order.
pub fn all() -> Vec<Case> {
    use ConnectionPlan::*;
    let rebind = |addr| RebindPlan { first: Duration::from_secs(1), every: Duration::from_secs(5), change_addr: addr };
    vec![
        Case::new("handshake", "H", "handshake", FileSet::sizes(&[KB])).fast(),
        Case::new("transfer", "DC", "transfer", FileSet::sizes(&[2 * MB, 3 * MB, 5 * MB])).fast(),
        Case {
            client_testcase: "handshake",
            server_testcase: "handshake",
            ..Case::new("longrtt", "LR", "handshake", FileSet::sizes(&[KB])).scenario("delay:750ms")
        },
        Case::new("chacha20", "C20", "chacha20", FileSet::sizes(&[3 * MB])).fast(),
        Case::new("multiplexing", "M", "transfer", FileSet::repeat(1999, 32)),
        Case::new("retry", "S", "retry", FileSet::sizes(&[10 * KB])).fast(),
        Case::new("resumption", "R", "resumption", FileSet::sizes(&[5 * KB, 10 * KB])).plan(FirstThenRest).fast(),
        Case {
            files: FileSet { sizes: vec![32; 40], name_len: 250 },
            ..Case::new("zerortt", "Z", "zerortt", FileSet::repeat(40, 32)).plan(FirstThenRest).fast()
        },
        Case { http3: true, ..Case::new("http3", "3", "http3", FileSet::sizes(&[5 * KB, 10 * KB, 500 * KB])).fast() },
        Case::new("blackhole", "B", "transfer", FileSet::sizes(&[10 * MB])).scenario("blackhole:5s:2s"),
        Case { client_testcase: "keyupdate", server_testcase: "transfer", ..Case::new("keyupdate", "U", "keyupdate", FileSet::sizes(&[3 * MB])).fast() },
        Case::new("ecn", "E", "ecn", FileSet::sizes(&[100 * KB])),
        Case { chain_len: 9, big_leaf: true, ..Case::new("amplificationlimit", "A", "transfer", FileSet::sizes(&[5 * KB])).scenario("droplist:2,3,4,5,6,7:") },
        Case::new("handshakeloss", "L1", "multiconnect", FileSet::repeat(50, KB)).scenario("drop-rate:30:30:3:3").plan(PerRequest).timeout(300),
        Case::new("transferloss", "L2", "transfer", FileSet::sizes(&[2 * MB])).scenario("drop-rate:2:2:3:3").fast(),
        Case::new("handshakecorruption", "C1", "multiconnect", FileSet::repeat(50, KB)).scenario("corrupt-rate:30:30:3:3").plan(PerRequest).timeout(300),
        Case::new("transfercorruption", "C2", "transfer", FileSet::sizes(&[2 * MB])).scenario("corrupt-rate:2:2:3:3").fast(),
        Case { ipv6: true, ..Case::new("ipv6", "6", "transfer", FileSet::sizes(&[5 * KB, 10 * KB])) },
        Case::new("v2", "V2", "v2", FileSet::sizes(&[KB])),
        Case { rebind: Some(rebind(false)), ..Case::new("rebind-port", "BP", "transfer", FileSet::sizes(&[10 * MB])) },
        Case { rebind: Some(rebind(true)), ..Case::new("rebind-addr", "BA", "transfer", FileSet::sizes(&[10 * MB])) },
        Case {
            client_testcase: "transfer",
            server_testcase: "connectionmigration",
            ..Case::new("connectionmigration", "CM", "transfer", FileSet::sizes(&[2 * MB])).fast()
        },
        Case { repetitions: 5, ..Case::new("goodput", "G", "transfer", FileSet::sizes(&[10 * MB])) },
        Case { repetitions: 5, ..Case::new("crosstraffic", "C", "transfer", FileSet::sizes(&[25 * MB])).timeout(180) },
    ]
}

/// The case of this name.
pub fn by_name(name: &str) -> Option<Case> {
    all().into_iter().find(|c| c.name == name || c.abbr == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_the_spec() {
        let cases = all();
        assert_eq!(cases.len(), 24);
        let names: std::collections::HashSet<_> = cases.iter().map(|c| c.name).collect();
        assert_eq!(names.len(), cases.len(), "unique names");
        for n in [
            "handshake",
            "transfer",
            "retry",
            "resumption",
            "zerortt",
            "http3",
            "multiconnect",
            "v2",
            "chacha20",
            "keyupdate",
            "ecn",
            "amplificationlimit",
            "handshakeloss",
            "transferloss",
            "handshakecorruption",
            "transfercorruption",
            "blackhole",
            "rebind-port",
            "rebind-addr",
            "connectionmigration",
            "ipv6",
            "goodput",
            "crosstraffic",
        ] {
            // "multiconnect" is a TESTCASE value, not a case name.
            if n == "multiconnect" {
                assert!(cases.iter().any(|c| c.client_testcase == n));
            } else {
                assert!(names.contains(n), "{n}");
            }
        }
        let z = by_name("zerortt").unwrap();
        assert_eq!((z.files.sizes.len(), z.files.name_len, z.expected_handshakes()), (40, 250, 2));
        assert_eq!(by_name("L1").unwrap().expected_handshakes(), 50);
        assert_eq!(by_name("U").unwrap().server_testcase, "transfer");
        let total: u64 = by_name("transfer").unwrap().files.sizes.iter().sum();
        assert_eq!(total, 10 * MB);
    }
}
