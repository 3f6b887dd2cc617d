//! `quicpro inspect`: dissects QUIC datagrams.
//!
//! For every packet coalesced in a datagram (RFC 9000 §12.2) it prints the
//! header fields visible before decryption (RFC 9000 §17). Initial packets
//! are decrypted, since their keys derive from public values (RFC 9001
//! §5.2): the client's first Destination Connection ID and the version's
//! salt. Which DCID that was, and which side sent the packet, is not
//! written in the packet, so the inspector tries the candidates in turn:
//!
//! 1. client keys from the packet's own DCID (a client's first flight),
//! 2. client and then server keys from the DCID the caller knows (the JSON
//!    entry's `key_derivation_dcid`, then `--odcid`): a server's Initials,
//!    and a client's Initials sent after it learnt the server's CID,
//! 3. server keys from the packet's own DCID.
//!
//! The AEAD tag tells which one is right (RFC 9001 §5.3). Handshake, 0-RTT
//! and 1-RTT packets need TLS secrets the inspector does not have.
//!
//! Nothing here trusts the input: every slice is taken with `get`, and
//! every failure is printed and counted rather than panicking.

use std::io::{self, Write};
use std::path::Path;

use quic_core::crypto::{initial_secrets, verify_retry_integrity, DirectionalKeys, Unprotected, INITIAL_SUITE};
use quic_core::frame::{FrameContext, FrameIter};
use quic_core::packet::header::{negotiation_versions, SPIN_BIT};
use quic_core::packet::{number, CoalescedPackets, HeaderError, LongType, PacketType, ProtectedHeader};
use quic_core::Version;
use serde::Deserialize;

use crate::describe;

/// Settings that apply to every datagram.
#[derive(Debug, Clone)]
pub struct Options {
    /// Length of the DCID in short headers, which do not encode it
    /// (RFC 9000 §17.3.1).
    pub short_dcid_len: usize,
    /// The client's original DCID: derives server Initial keys and checks
    /// Retry integrity tags (RFC 9001 §5.8).
    pub odcid: Option<Vec<u8>>,
}

/// What a run saw, for the summary line and the exit code.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    pub datagrams: usize,
    pub packets: usize,
    pub decrypted: usize,
    pub frames: usize,
    /// Header parse failures, undecryptable Initials, frame decoding errors,
    /// invalid Retry tags, unusable JSON entries.
    pub errors: usize,
    /// Initial packets no candidate key opened.
    pub initial_failures: usize,
}

impl Stats {
    pub fn summary(&self) -> String {
        format!("inspected {} datagrams: {} packets decrypted, {} frames, {} errors", self.datagrams, self.decrypted, self.frames, self.errors)
    }
}

/// Which endpoint's Initial keys opened a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sender {
    Client,
    Server,
}

impl Sender {
    fn name(self) -> &'static str {
        match self {
            Sender::Client => "client",
            Sender::Server => "server",
        }
    }
}

/// A DCID that Initial keys may be derived from, and where it came from.
#[derive(Debug, Clone)]
pub struct KeySource<'a> {
    pub dcid: &'a [u8],
    pub origin: &'static str,
}

/// Parses hex as typed by a person: surrounding whitespace, an optional
/// `0x` prefix, and `:`/space separators are accepted.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let t = s.trim();
    let t = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(t);
    let cleaned: String = t.chars().filter(|c| !c.is_whitespace() && *c != ':').collect();
    hex::decode(&cleaned).map_err(|e| e.to_string())
}

/// Dissects one datagram. `hint` is a DCID known to derive this
/// connection's Initial keys (besides `opts.odcid`).
pub fn inspect_datagram(out: &mut dyn Write, datagram: &[u8], opts: &Options, hint: Option<KeySource<'_>>, stats: &mut Stats) -> io::Result<()> {
    stats.datagrams += 1;
    let mut sources: Vec<KeySource<'_>> = Vec::new();
    sources.extend(hint);
    if let Some(o) = opts.odcid.as_deref() {
        sources.push(KeySource { dcid: o, origin: "--odcid" });
    }

    // RFC 9000 §12.2: coalesced packets all carry the same Destination
    // Connection ID, so a short header after a long one has the long one's
    // DCID length; only a datagram that starts with a short header needs
    // the --short-dcid-len guess.
    let short = match ProtectedHeader::parse(datagram, opts.short_dcid_len) {
        Ok(h) if h.is_long() => ShortDcid { len: h.dcid.len(), guessed: false },
        _ => ShortDcid { len: opts.short_dcid_len, guessed: true },
    };

    // Where the next packet would start; after the loop, where parsing ended.
    let mut end = 0usize;
    let mut failed = false;
    for (i, item) in CoalescedPackets::new(datagram, short.len).enumerate() {
        match item {
            Ok((start, h)) => {
                stats.packets += 1;
                end = start.saturating_add(h.len);
                inspect_packet(out, datagram, i, start, &h, short, &sources, stats)?;
            }
            Err(HeaderError::UnsupportedVersion { version, dcid, scid }) => {
                // RFC 8999 §5.1: the version-independent fields still parse.
                let rest = datagram.get(end..).unwrap_or(&[]);
                let d = rest.get(dcid).unwrap_or(&[]);
                let s = rest.get(scid).unwrap_or(&[]);
                writeln!(
                    out,
                    "  packet {i} @{end}: long header, unsupported version {} dcid={} scid={} \
                     (a server answers with Version Negotiation, RFC 9000 §6.1)",
                    describe::version(version),
                    describe::cid(d),
                    describe::cid(s)
                )?;
                stats.packets += 1;
                end = datagram.len();
            }
            Err(e) => {
                writeln!(out, "  packet {i} @{end}: error: {}", header_error(&e))?;
                stats.errors += 1;
                failed = true;
            }
        }
    }
    if !failed && end < datagram.len() {
        let rest = datagram.get(end..).unwrap_or(&[]);
        if rest.iter().all(|&b| b == 0) {
            // RFC 9000 §14.1: datagrams may be padded after the last packet.
            writeln!(out, "  trailing padding: {} zero bytes", rest.len())?;
        } else {
            writeln!(out, "  trailing: {} bytes after a zero byte, not parsed", rest.len())?;
        }
    }
    Ok(())
}

/// The DCID length used for short headers in one datagram.
#[derive(Debug, Clone, Copy)]
struct ShortDcid {
    len: usize,
    /// From `--short-dcid-len` rather than a coalesced long header.
    guessed: bool,
}

fn header_error(e: &HeaderError) -> String {
    match e {
        HeaderError::Truncated => "truncated header (input ends inside it, or Length points past the datagram)".into(),
        HeaderError::CidTooLong => "connection ID longer than 20 bytes (RFC 9000 §17.2)".into(),
        HeaderError::MalformedVersionNegotiation => "Version Negotiation with an empty version list or one not a multiple of 4 bytes".into(),
        HeaderError::InvalidLength => "Length field smaller than a packet number".into(),
        HeaderError::UnsupportedVersion { version, .. } => {
            format!("unsupported version {}", describe::version(*version))
        }
    }
}

fn type_name(ty: PacketType) -> &'static str {
    match ty {
        PacketType::Long(LongType::Initial) => "Initial",
        PacketType::Long(LongType::ZeroRtt) => "0-RTT",
        PacketType::Long(LongType::Handshake) => "Handshake",
        PacketType::Long(LongType::Retry) => "Retry",
        PacketType::Short => "1-RTT",
        PacketType::VersionNegotiation => "VersionNegotiation",
    }
}

#[allow(clippy::too_many_arguments)]
fn inspect_packet(
    out: &mut dyn Write,
    datagram: &[u8],
    index: usize,
    start: usize,
    h: &ProtectedHeader,
    short: ShortDcid,
    sources: &[KeySource<'_>],
    stats: &mut Stats,
) -> io::Result<()> {
    let Some(packet) = datagram.get(start..start.saturating_add(h.len)) else {
        writeln!(out, "  packet {index} @{start}: error: packet extends past the datagram")?;
        stats.errors += 1;
        return Ok(());
    };
    let mut line = format!("  packet {index} @{start}: {} len={}", type_name(h.ty), h.len);
    if let Some(v) = h.version {
        line.push_str(&format!(" version={}", describe::version(v)));
    }
    line.push_str(&format!(" dcid={}", describe::cid(&h.dcid)));
    if h.is_long() {
        line.push_str(&format!(" scid={}", describe::cid(&h.scid)));
    } else {
        if short.guessed {
            line.push_str(&format!(" (assumed {}-byte dcid)", short.len));
        }
        line.push_str(&format!(" spin={}", u8::from(h.first_byte & SPIN_BIT != 0)));
    }
    match h.ty {
        PacketType::Long(LongType::Initial) => {
            line.push_str(&format!(" token_len={}", h.token.len()));
        }
        PacketType::Long(LongType::Retry) => {
            line.push_str(&format!(" retry_token_len={}", h.token.len()));
        }
        _ => {}
    }
    if matches!(h.ty, PacketType::Long(LongType::Initial | LongType::ZeroRtt | LongType::Handshake)) {
        // RFC 9000 §17.2: Length counts the packet number and the payload.
        line.push_str(&format!(" length={}", h.len.saturating_sub(h.pn_offset)));
    }
    if !h.fixed_bit() && h.ty != PacketType::VersionNegotiation {
        line.push_str(" fixed_bit=0");
    }
    writeln!(out, "{line}")?;

    match h.ty {
        PacketType::VersionNegotiation => {
            let list = packet.get(h.pn_offset..).unwrap_or(&[]);
            let versions: Vec<String> = negotiation_versions(list).map(describe::version).collect();
            writeln!(out, "    versions: {}", versions.join(", "))?;
        }
        PacketType::Long(LongType::Retry) => {
            let version = h.version.unwrap_or(Version::V1);
            match sources.first() {
                Some(src) => {
                    // RFC 9001 §5.8: the tag covers the Retry packet prefixed
                    // by the client's original DCID.
                    if verify_retry_integrity(version, src.dcid, packet) {
                        writeln!(out, "    integrity tag: valid for original DCID {} ({})", describe::cid(src.dcid), src.origin)?;
                    } else {
                        writeln!(out, "    error: integrity tag INVALID for original DCID {} ({})", describe::cid(src.dcid), src.origin)?;
                        stats.errors += 1;
                    }
                }
                None => writeln!(out, "    integrity tag: not checked (pass --odcid)")?,
            }
        }
        PacketType::Long(LongType::Initial) => {
            let version = h.version.unwrap_or(Version::V1);
            match decrypt_initial(packet, h, version, sources) {
                Some(d) => {
                    stats.decrypted += 1;
                    writeln!(
                        out,
                        "    decrypted with {} Initial keys from DCID {} ({}): pn={} pn_len={} payload={}",
                        d.sender.name(),
                        describe::cid(&d.dcid),
                        d.origin,
                        d.info.packet_number,
                        d.info.pn_len,
                        d.info.payload_len
                    )?;
                    let end = d.info.header_len.saturating_add(d.info.payload_len);
                    let payload = d.plaintext.get(d.info.header_len..end).unwrap_or(&[]);
                    for f in FrameIter::for_packet(payload, FrameContext::Initial) {
                        match f {
                            Ok(f) => {
                                stats.frames += 1;
                                writeln!(out, "    {}", describe::frame(&f))?;
                            }
                            Err(e) => {
                                stats.errors += 1;
                                writeln!(out, "    error: frame: {e}")?;
                            }
                        }
                    }
                }
                None => {
                    stats.errors += 1;
                    stats.initial_failures += 1;
                    let hint = if sources.is_empty() { "; for a server's Initial pass --odcid" } else { "" };
                    writeln!(out, "    error: no Initial key opened this packet{hint}")?;
                }
            }
        }
        PacketType::Long(LongType::ZeroRtt | LongType::Handshake) | PacketType::Short => {
            writeln!(out, "    (no keys) {} protected bytes", packet.len().saturating_sub(h.pn_offset))?;
        }
    }
    Ok(())
}

/// A successfully opened Initial packet.
struct Decrypted {
    sender: Sender,
    /// The DCID the keys were derived from.
    dcid: Vec<u8>,
    origin: &'static str,
    info: Unprotected,
    /// The packet with header protection removed and the payload decrypted.
    plaintext: Vec<u8>,
}

fn decrypt_initial(packet: &[u8], h: &ProtectedHeader, version: Version, sources: &[KeySource<'_>]) -> Option<Decrypted> {
    let own: &[u8] = h.dcid.as_slice();
    const OWN: &str = "packet's own DCID";
    // The order of the module comment.
    let mut attempts: Vec<(&[u8], &'static str, Sender)> = vec![(own, OWN, Sender::Client)];
    for s in sources {
        attempts.push((s.dcid, s.origin, Sender::Client));
        attempts.push((s.dcid, s.origin, Sender::Server));
    }
    attempts.push((own, OWN, Sender::Server));

    let mut tried: Vec<(&[u8], Sender)> = Vec::new();
    for (dcid, origin, sender) in attempts {
        if tried.contains(&(dcid, sender)) {
            continue;
        }
        tried.push((dcid, sender));
        // Fails for a DCID over 20 bytes (RFC 9000 §17.2), which no
        // connection can have used.
        let Ok(secrets) = initial_secrets(version, dcid) else {
            continue;
        };
        let secret = match sender {
            Sender::Client => &secrets.client,
            Sender::Server => &secrets.server,
        };
        let Ok(keys) = DirectionalKeys::from_secret(INITIAL_SUITE, version, secret.as_bytes()) else {
            continue;
        };
        // Unprotection works in place and leaves garbage on failure, so each
        // attempt gets a fresh copy.
        let mut buf = packet.to_vec();
        // No earlier packet of this space is known: decoding against none
        // (RFC 9000 §A.3) yields the truncated value.
        if let Ok(info) = keys.unprotect(&mut buf, h.pn_offset, |t, len| number::decode(t, len as u32 * 8, None)) {
            return Some(Decrypted { sender, dcid: dcid.to_vec(), origin, info, plaintext: buf });
        }
    }
    None
}

/// One entry of `quic-initials-from-pcaps.json` (see shared/data/README.md).
/// Only the fields the inspector uses; all but the datagram are optional.
#[derive(Debug, Deserialize)]
pub struct CaptureEntry {
    #[serde(default)]
    pub pcap: String,
    #[serde(default)]
    pub frame: Option<u64>,
    #[serde(default)]
    pub direction: String,
    #[serde(default)]
    pub datagram_hex: Option<String>,
    #[serde(default)]
    pub key_derivation_dcid: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CaptureFile {
    entries: Vec<CaptureEntry>,
}

/// Reads and parses a capture file. Errors are for the user: the file is
/// missing or not in the expected format.
pub fn load_capture(path: &Path) -> Result<Vec<CaptureEntry>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: CaptureFile = serde_json::from_str(&text).map_err(|e| format!("{}: not a capture file: {e}", path.display()))?;
    Ok(file.entries)
}

/// Dissects every entry of a capture file.
pub fn inspect_capture(out: &mut dyn Write, entries: &[CaptureEntry], opts: &Options, stats: &mut Stats) -> io::Result<()> {
    let n = entries.len();
    for (i, e) in entries.iter().enumerate() {
        let frame = e.frame.map_or(String::new(), |f| format!(" frame {f}"));
        let datagram = match e.datagram_hex.as_deref().map(parse_hex) {
            Some(Ok(d)) => d,
            Some(Err(err)) => {
                writeln!(out, "== [{}/{n}] {}{frame} {}: error: bad datagram_hex: {err}", i + 1, e.pcap, e.direction)?;
                stats.errors += 1;
                continue;
            }
            None => {
                writeln!(out, "== [{}/{n}] {}{frame} {}: error: no datagram_hex", i + 1, e.pcap, e.direction)?;
                stats.errors += 1;
                continue;
            }
        };
        writeln!(out, "== [{}/{n}] {}{frame} {} ({} bytes)", i + 1, e.pcap, e.direction, datagram.len())?;
        let kd = match e.key_derivation_dcid.as_deref().map(parse_hex) {
            Some(Ok(d)) => Some(d),
            Some(Err(err)) => {
                writeln!(out, "  error: bad key_derivation_dcid: {err}")?;
                stats.errors += 1;
                None
            }
            None => None,
        };
        let hint = kd.as_deref().map(|dcid| KeySource { dcid, origin: "key_derivation_dcid" });
        inspect_datagram(out, &datagram, opts, hint, stats)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
