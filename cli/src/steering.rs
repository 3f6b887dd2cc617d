//! `quicpro serve --steering auto|on|off`: SO_REUSEPORT steering by
//! connection ID (quicpro-bpf). With several workers on one port the kernel
//! otherwise picks a worker by 4-tuple hash, and a client whose address
//! changes (NAT rebinding) would reach a worker that does not know its
//! connection. Each worker's connection IDs carry its worker ID
//! (`ServerCidFormat::worker_layout`), which the program reads; encrypted
//! QUIC-LB IDs hide it, so they run without steering.

use std::io;
use std::sync::Arc;

use io_backends::udp::SocketHook;
use quic_core::quic_lb::ServerCidFormat;
use quicpro_bpf::{CidLayout, ReuseportCounters, ReuseportGroup};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SteeringMode {
    /// On when the program loads (root / CAP_BPF + CAP_NET_ADMIN), else off.
    Auto,
    /// Required: fail to start without it.
    On,
    Off,
}

/// The layout our workers' connection IDs use, when the worker is visible.
fn layout(format: &ServerCidFormat) -> Option<CidLayout> {
    let (offset, len) = format.worker_layout()?;
    Some(CidLayout { worker_id_offset: offset as u32, cid_len: len as u32 })
}

/// Loads the program for `workers` workers, or says why not. Logs one line
/// either way.
pub fn setup(mode: SteeringMode, workers: usize, format: &ServerCidFormat) -> Result<Option<Arc<ReuseportGroup>>, String> {
    if mode == SteeringMode::Off {
        eprintln!("quicpro serve: connection-ID steering off (--steering off)");
        return Ok(None);
    }
    if workers < 2 && mode == SteeringMode::Auto {
        eprintln!("quicpro serve: connection-ID steering off (one worker)");
        return Ok(None);
    }
    let Some(layout) = layout(format) else {
        if mode == SteeringMode::On {
            return Err("--steering on: encrypted QUIC-LB connection IDs hide the worker".into());
        }
        eprintln!("quicpro serve: connection-ID steering off (encrypted QUIC-LB connection IDs hide the worker; 4-tuple hashing)");
        return Ok(None);
    };
    match ReuseportGroup::new(workers as u32, layout) {
        Ok(g) => {
            eprintln!(
                "quicpro serve: connection-ID steering on (SO_REUSEPORT eBPF, {workers} workers, worker byte at offset {} of {}-byte CIDs)",
                layout.worker_id_offset, layout.cid_len
            );
            Ok(Some(Arc::new(g)))
        }
        Err(e) if mode == SteeringMode::Auto => {
            eprintln!("quicpro serve: connection-ID steering off: {e}");
            Ok(None)
        }
        Err(e) => Err(e.to_string()),
    }
}

/// The after-bind hook of worker `worker`: puts its socket in the group and
/// attaches the program. In auto mode a failure is logged and the worker
/// runs unsteered (its slot stays empty, so its packets take the kernel's
/// hash, as without the program).
pub fn hook(group: &Arc<ReuseportGroup>, worker: u8, required: bool) -> SocketHook {
    let group = group.clone();
    SocketHook::new("quicpro-bpf reuseport steering", move |fd, _local| match group.join(u32::from(worker), fd) {
        Ok(()) => Ok(()),
        Err(e) if !required => {
            eprintln!("[worker {worker}] connection-ID steering not joined: {e}");
            Ok(())
        }
        Err(e) => Err(io::Error::other(e)),
    })
}

pub fn describe(c: &ReuseportCounters) -> String {
    format!(
        "steering: {} by CID, {} by DCID hash, fallbacks: {} empty slot, {} worker out of range, {} malformed, {} select errors",
        c.steered_by_cid, c.steered_by_hash, c.fallback_empty_slot, c.fallback_out_of_range, c.malformed, c.fallback_select_error
    )
}
