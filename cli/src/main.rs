//! `quicpro`: the command-line face of the stack.
//!
//! Today it has one subcommand, `inspect`, which dissects QUIC datagrams
//! with quic-core's parsers and Initial packet protection. `serve` and `get`
//! will join it once the connection layer and HTTP/3 exist.
//!
//! Exit codes: 0 when everything was understood, 1 when some packet could
//! not be parsed or decrypted (the output says which), 2 for bad usage or
//! input that is not a datagram at all (odd hex, missing file).

mod describe;
mod inspect;

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::inspect::{Options, Stats};

#[derive(Debug, Parser)]
#[command(name = "quicpro", version, about = "QUIC + HTTP/3 toolkit")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Dissect QUIC datagrams: headers of every coalesced packet, and the
    /// frames of Initial packets (whose keys are public, RFC 9001 §5.2).
    Inspect(InspectArgs),
}

#[derive(Debug, Args)]
struct InspectArgs {
    /// A capture file in the format of shared/data/quic-initials-from-pcaps.json;
    /// every entry is dissected.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// The client's original Destination Connection ID (hex): derives the
    /// Initial keys of server packets and checks Retry integrity tags.
    #[arg(long, value_name = "HEX")]
    odcid: Option<String>,

    /// Length of the DCID in short-header packets, which do not encode it.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u8).range(0..=20))]
    short_dcid_len: u8,

    /// Datagrams as hex (whitespace, ':' separators and a 0x prefix are accepted).
    #[arg(value_name = "HEX_DATAGRAM")]
    datagrams: Vec<String>,
}

/// A problem with what the user gave us, before any dissection.
fn usage_error(msg: &str) -> ExitCode {
    eprintln!("quicpro inspect: error: {msg}");
    ExitCode::from(2)
}

fn run_inspect(args: &InspectArgs) -> ExitCode {
    let odcid = match args.odcid.as_deref().map(inspect::parse_hex) {
        None => None,
        Some(Ok(d)) if d.len() <= quic_core::MAX_CID_SIZE => Some(d),
        Some(Ok(d)) => {
            return usage_error(&format!(
                "--odcid is {} bytes; connection IDs are at most 20",
                d.len()
            ))
        }
        Some(Err(e)) => return usage_error(&format!("--odcid: invalid hex: {e}")),
    };
    // Validate every input before printing anything.
    let mut datagrams = Vec::with_capacity(args.datagrams.len());
    for (i, h) in args.datagrams.iter().enumerate() {
        match inspect::parse_hex(h) {
            Ok(d) if d.is_empty() => return usage_error(&format!("datagram {} is empty", i + 1)),
            Ok(d) => datagrams.push(d),
            Err(e) => return usage_error(&format!("datagram {}: invalid hex: {e}", i + 1)),
        }
    }
    let entries = match &args.json {
        Some(path) => match inspect::load_capture(path) {
            Ok(e) => e,
            Err(e) => return usage_error(&e),
        },
        None => Vec::new(),
    };
    if args.json.is_none() && datagrams.is_empty() {
        return usage_error("nothing to inspect: give hex datagrams or --json FILE");
    }

    let opts = Options {
        short_dcid_len: usize::from(args.short_dcid_len),
        odcid,
    };
    let mut stats = Stats::default();
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = (|| -> io::Result<()> {
        inspect::inspect_capture(&mut out, &entries, &opts, &mut stats)?;
        for (i, d) in datagrams.iter().enumerate() {
            writeln!(out, "== datagram {} ({} bytes)", i + 1, d.len())?;
            inspect::inspect_datagram(&mut out, d, &opts, None, &mut stats)?;
        }
        writeln!(out, "{}", stats.summary())?;
        out.flush()
    })();
    match result {
        // A closed pipe (`| head`) is the reader's choice, not a failure.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quicpro inspect: error writing output: {e}");
            ExitCode::from(2)
        }
        Ok(()) if stats.errors > 0 => ExitCode::from(1),
        Ok(()) => ExitCode::SUCCESS,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Inspect(args) => run_inspect(args),
    }
}
