//! `quicpro-relay`: the interop runner's network scenarios between a QUIC
//! client and server on loopback (see `quicpro_interop::relay`).
//!
//! ```text
//! quicpro-relay --listen 127.0.0.1:4434 --server 127.0.0.1:4433 \
//!     [--scenario STR] [--seed N] [--client-pcap F] [--server-pcap F] \
//!     [--rebind-first 1s --rebind-every 5s [--rebind-addr]] \
//!     [--ecn-mangle bleach|ce:P|ect0|ect1|ce] [--epoch start|first] \
//!     [--max-flows N] [--duration SECONDS]
//! ```
//!
//! Prints `relay listening on ADDR` on stderr once bound, runs until
//! SIGINT/SIGTERM or the duration, then prints the counters on stdout.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use quicpro_interop::relay::{EcnMangle, Epoch, Rebind, Relay, RelayConfig};
use quicpro_sim::link::Scenario;

const USAGE: &str = "\
usage: quicpro-relay --listen ADDR --server ADDR [options]

  --listen ADDR          address clients send to (port 0 picks one)
  --server ADDR          the QUIC server's address
  --scenario STR         network scenario (default: base), e.g. base,
                         drop-rate:30:30:3:3, corrupt-rate:2:2:3:3,
                         droplist:2,3,4,5,6,7:, blackhole:5s:2s, delay:750ms,
                         base+reorder:10%:5ms-20ms+loss:1%+bw:50mbit+queue:80
  --seed N               seed of the impairment decisions (default 0)
  --client-pcap FILE     trace as seen by the client
  --server-pcap FILE     trace as seen by the server
  --rebind-first DUR     first NAT rebind after start (e.g. 1s)
  --rebind-every DUR     interval between rebinds (e.g. 5s; default: once)
  --rebind-addr          rebinds also change the source address (127.0.0.x)
  --ecn-mangle M         rewrite ECN both ways: bleach, ce:PROBABILITY, ect0, ect1, ce
  --epoch start|first    blackholes count from the start (default) or the first datagram
  --max-flows N          NAT flows kept at most (default 4096)
  --duration SECONDS     stop after this long (default: until SIGINT/SIGTERM)
  -h, --help             this text
";

/// Set by the signal handler.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

#[derive(Debug)]
struct Args {
    config: RelayConfig,
    duration: Option<Duration>,
}

/// A command-line error, printed with the usage.
#[derive(Debug)]
enum ArgError {
    Help,
    Missing(&'static str),
    NeedsValue(String),
    Unknown(String),
    Invalid { flag: &'static str, value: String, why: String },
}

impl std::fmt::Display for ArgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Help => Ok(()),
            Self::Missing(flag) => write!(f, "{flag} is required"),
            Self::NeedsValue(flag) => write!(f, "{flag} needs a value"),
            Self::Unknown(arg) => write!(f, "unknown argument {arg:?}"),
            Self::Invalid { flag, value, why } => write!(f, "{flag} {value:?}: {why}"),
        }
    }
}

fn invalid(flag: &'static str, value: &str, why: impl ToString) -> ArgError {
    ArgError::Invalid { flag, value: value.to_string(), why: why.to_string() }
}

/// A duration like `1s`, `500ms` or a bare number of seconds (`1.5`).
fn parse_duration(flag: &'static str, v: &str) -> Result<Duration, ArgError> {
    let t = v.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else {
        (t, 1.0)
    };
    let secs: f64 = num.parse().map_err(|_| invalid(flag, v, "not a duration"))?;
    Duration::try_from_secs_f64(secs * scale).map_err(|e| invalid(flag, v, e))
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Args, ArgError> {
    let (mut listen, mut server) = (None, None);
    let mut scenario = Scenario::base();
    let mut seed = 0u64;
    let (mut client_pcap, mut server_pcap) = (None, None);
    let (mut rebind_first, mut rebind_every, mut rebind_addr) = (None, None, false);
    let mut ecn_mangle = None;
    let mut epoch = Epoch::RelayStart;
    let mut max_flows = None;
    let mut duration = None;
    while let Some(arg) = argv.next() {
        // `--flag=value` and `--flag value` both work.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, ArgError> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => argv.next().ok_or_else(|| ArgError::NeedsValue(name.to_string())),
            }
        };
        match flag.as_str() {
            "-h" | "--help" => return Err(ArgError::Help),
            "--listen" => {
                let v = value("--listen")?;
                listen = Some(v.parse().map_err(|e| invalid("--listen", &v, e))?);
            }
            "--server" => {
                let v = value("--server")?;
                server = Some(v.parse().map_err(|e| invalid("--server", &v, e))?);
            }
            "--scenario" => {
                let v = value("--scenario")?;
                scenario = Scenario::parse(&v).map_err(|e| invalid("--scenario", &v, e))?;
            }
            "--seed" => {
                let v = value("--seed")?;
                seed = v.parse().map_err(|e| invalid("--seed", &v, e))?;
            }
            "--client-pcap" => client_pcap = Some(value("--client-pcap")?),
            "--server-pcap" => server_pcap = Some(value("--server-pcap")?),
            "--rebind-first" => rebind_first = Some(parse_duration("--rebind-first", &value("--rebind-first")?)?),
            "--rebind-every" => rebind_every = Some(parse_duration("--rebind-every", &value("--rebind-every")?)?),
            "--rebind-addr" => rebind_addr = true,
            "--ecn-mangle" => {
                let v = value("--ecn-mangle")?;
                ecn_mangle = Some(v.parse::<EcnMangle>().map_err(|e| invalid("--ecn-mangle", &v, e))?);
            }
            "--epoch" => {
                let v = value("--epoch")?;
                epoch = match v.as_str() {
                    "start" => Epoch::RelayStart,
                    "first" => Epoch::FirstDatagram,
                    _ => return Err(invalid("--epoch", &v, "expected start or first")),
                };
            }
            "--max-flows" => {
                let v = value("--max-flows")?;
                max_flows = Some(v.parse::<usize>().map_err(|e| invalid("--max-flows", &v, e))?);
            }
            "--duration" => duration = Some(parse_duration("--duration", &value("--duration")?)?),
            _ => return Err(ArgError::Unknown(arg)),
        }
    }
    let listen = listen.ok_or(ArgError::Missing("--listen"))?;
    let server = server.ok_or(ArgError::Missing("--server"))?;
    let mut config = RelayConfig::new(listen, server).with_scenario(&scenario).with_seed(seed).with_epoch(epoch);
    if let Some(p) = client_pcap {
        config = config.with_client_pcap(p);
    }
    if let Some(p) = server_pcap {
        config = config.with_server_pcap(p);
    }
    if let Some(m) = ecn_mangle {
        config = config.with_ecn_mangle(m);
    }
    if let Some(n) = max_flows {
        config = config.with_max_flows(n);
    }
    match (rebind_first, rebind_every) {
        (None, None) if rebind_addr => {
            return Err(ArgError::Missing("--rebind-first (with --rebind-addr)"));
        }
        (None, None) => {}
        (first, every) => {
            config = config.with_rebind(Rebind {
                // Only an interval given: the first rebind after one interval.
                first: first.or(every).unwrap_or_default(),
                every: every.unwrap_or_default(),
                change_addr: rebind_addr,
            });
        }
    }
    Ok(Args { config, duration })
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(ArgError::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("quicpro-relay: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe.
    unsafe {
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
    let scenario_server = args.config.server;
    let relay = match Relay::start(args.config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("quicpro-relay: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("relay listening on {}", relay.addr());
    eprintln!("relay forwarding to {scenario_server}");
    let deadline = args.duration.map(|d| Instant::now() + d);
    while !STOP.load(Ordering::SeqCst) && deadline.is_none_or(|d| Instant::now() < d) {
        if relay.stats().failure.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let stats = relay.stop();
    println!("{stats}");
    if stats.failure.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
