//! Traces as libpcap files (LINKTYPE_RAW: each record an IPv4 or IPv6
//! packet). The relay sees UDP payloads, addresses and ECN codepoints, not
//! IP packets, so it synthesizes the IP and UDP headers around each
//! payload (checksums zero; ECN in the TOS / traffic-class bits). The same
//! files open in Wireshark or `tshark -r` for a human look.
//!
//! Format: <https://www.tcpdump.org/manpages/pcap-savefile.5.html> — a
//! 24-byte global header (magic 0xa1b23c4d for nanosecond timestamps), then
//! per record a 16-byte header (seconds, nanoseconds, captured length,
//! original length) and the bytes.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Nanosecond-resolution pcap magic.
const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
/// Microsecond-resolution pcap magic (what other tools often write).
const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
/// LINKTYPE_RAW: the record starts with the IP header.
const LINKTYPE_RAW: u32 = 101;
const SNAPLEN: u32 = 65_535 + 48;

/// One recorded UDP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Wall-clock time of the observation.
    pub time: SystemTime,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// The two ECN bits of the IP header (0 Not-ECT, 1 ECT(1), 2 ECT(0), 3 CE).
    pub ecn: u8,
    pub payload: Vec<u8>,
}

/// Writes records to a pcap file.
#[derive(Debug)]
pub struct Writer {
    out: BufWriter<File>,
    scratch: Vec<u8>,
}

impl Writer {
    pub fn create(path: &Path) -> io::Result<Self> {
        let mut out = BufWriter::new(File::create(path)?);
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&MAGIC_NANOS.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&SNAPLEN.to_le_bytes());
        h.extend_from_slice(&LINKTYPE_RAW.to_le_bytes());
        out.write_all(&h)?;
        Ok(Self { out, scratch: Vec::with_capacity(2048) })
    }

    /// Appends one datagram. Mixed address families (src v4, dst v6) are
    /// written with both mapped to IPv6.
    pub fn write(&mut self, r: &Record) -> io::Result<()> {
        self.scratch.clear();
        encode_ip_udp(&mut self.scratch, r.src, r.dst, r.ecn, &r.payload);
        let d = r.time.duration_since(UNIX_EPOCH).unwrap_or_default();
        let len = self.scratch.len() as u32;
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&(d.as_secs() as u32).to_le_bytes());
        h[4..8].copy_from_slice(&d.subsec_nanos().to_le_bytes());
        h[8..12].copy_from_slice(&len.to_le_bytes());
        h[12..16].copy_from_slice(&len.to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(&self.scratch)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn v6(a: IpAddr) -> std::net::Ipv6Addr {
    match a {
        IpAddr::V4(v) => v.to_ipv6_mapped(),
        IpAddr::V6(v) => v,
    }
}

fn encode_ip_udp(out: &mut Vec<u8>, src: SocketAddr, dst: SocketAddr, ecn: u8, payload: &[u8]) {
    let udp_len = (8 + payload.len()).min(u16::MAX as usize) as u16;
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = (20 + udp_len as usize).min(u16::MAX as usize) as u16;
            out.extend_from_slice(&[0x45, ecn & 3]);
            out.extend_from_slice(&total.to_be_bytes());
            out.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
            let sum = ipv4_checksum(&out[out.len() - 20..]);
            let at = out.len() - 10;
            out[at..at + 2].copy_from_slice(&sum.to_be_bytes());
        }
        (s, d) => {
            let tc = u32::from(ecn & 3) << 20;
            out.extend_from_slice(&(0x6000_0000u32 | tc).to_be_bytes());
            out.extend_from_slice(&udp_len.to_be_bytes());
            out.extend_from_slice(&[17, 64]);
            out.extend_from_slice(&v6(s).octets());
            out.extend_from_slice(&v6(d).octets());
        }
    }
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
    out.extend_from_slice(&udp_len.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(payload);
}

fn ipv4_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = h.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Reads every record of a pcap file written by [`Writer`] (or any raw-IP
/// pcap of UDP traffic; other records are skipped).
pub fn read(path: &Path) -> io::Result<Vec<Record>> {
    let mut r = BufReader::new(File::open(path)?);
    let mut gh = [0u8; 24];
    r.read_exact(&mut gh)?;
    let magic = u32::from_le_bytes([gh[0], gh[1], gh[2], gh[3]]);
    let nanos = match magic {
        MAGIC_NANOS => true,
        MAGIC_MICROS => false,
        _ => return Err(io::Error::new(io::ErrorKind::InvalidData, "not a little-endian pcap file")),
    };
    let linktype = u32::from_le_bytes([gh[20], gh[21], gh[22], gh[23]]);
    if linktype != LINKTYPE_RAW {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("link type {linktype}, expected raw IP (101)")));
    }
    let mut out = Vec::new();
    let mut rh = [0u8; 16];
    loop {
        match r.read_exact(&mut rh) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        let secs = u32::from_le_bytes([rh[0], rh[1], rh[2], rh[3]]);
        let frac = u32::from_le_bytes([rh[4], rh[5], rh[6], rh[7]]);
        let caplen = u32::from_le_bytes([rh[8], rh[9], rh[10], rh[11]]) as usize;
        if caplen > SNAPLEN as usize * 2 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "record longer than the snap length"));
        }
        let mut pkt = vec![0u8; caplen];
        r.read_exact(&mut pkt)?;
        let sub = if nanos { Duration::from_nanos(u64::from(frac)) } else { Duration::from_micros(u64::from(frac)) };
        let time = UNIX_EPOCH + Duration::from_secs(u64::from(secs)) + sub;
        if let Some(rec) = decode_ip_udp(&pkt, time) {
            out.push(rec);
        }
    }
    Ok(out)
}

fn decode_ip_udp(p: &[u8], time: SystemTime) -> Option<Record> {
    let version = p.first()? >> 4;
    let (src_ip, dst_ip, ecn, udp): (IpAddr, IpAddr, u8, &[u8]) = match version {
        4 => {
            let ihl = usize::from(p[0] & 0x0f) * 4;
            if *p.get(9)? != 17 {
                return None;
            }
            let s: [u8; 4] = p.get(12..16)?.try_into().ok()?;
            let d: [u8; 4] = p.get(16..20)?.try_into().ok()?;
            (IpAddr::from(s), IpAddr::from(d), p.get(1)? & 3, p.get(ihl..)?)
        }
        6 => {
            if *p.get(6)? != 17 {
                return None;
            }
            let tc = (u32::from_be_bytes(p.get(0..4)?.try_into().ok()?) >> 20) as u8;
            let s: [u8; 16] = p.get(8..24)?.try_into().ok()?;
            let d: [u8; 16] = p.get(24..40)?.try_into().ok()?;
            let unmap = |a: [u8; 16]| -> IpAddr {
                let v = std::net::Ipv6Addr::from(a);
                v.to_ipv4_mapped().map_or(IpAddr::V6(v), IpAddr::V4)
            };
            (unmap(s), unmap(d), tc & 3, p.get(40..)?)
        }
        _ => return None,
    };
    let sport = u16::from_be_bytes(udp.get(0..2)?.try_into().ok()?);
    let dport = u16::from_be_bytes(udp.get(2..4)?.try_into().ok()?);
    let ulen = usize::from(u16::from_be_bytes(udp.get(4..6)?.try_into().ok()?));
    let payload = udp.get(8..ulen.max(8).min(udp.len()))?.to_vec();
    Some(Record { time, src: SocketAddr::new(src_ip, sport), dst: SocketAddr::new(dst_ip, dport), ecn, payload })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_both_families() {
        let path = std::env::temp_dir().join(format!("quicpro-pcap-{}.pcap", std::process::id()));
        let t0 = UNIX_EPOCH + Duration::new(1_800_000_000, 123_456_789);
        let recs = vec![
            Record { time: t0, src: "127.0.0.1:5000".parse().unwrap(), dst: "127.0.0.2:443".parse().unwrap(), ecn: 2, payload: vec![0xc0, 1, 2, 3] },
            Record {
                time: t0 + Duration::from_millis(5),
                src: "[::1]:443".parse().unwrap(),
                dst: "[::1]:5000".parse().unwrap(),
                ecn: 3,
                payload: vec![0x40; 1200],
            },
            Record { time: t0, src: "127.0.0.1:1".parse().unwrap(), dst: "[::1]:2".parse().unwrap(), ecn: 0, payload: Vec::new() },
        ];
        let mut w = Writer::create(&path).unwrap();
        for r in &recs {
            w.write(r).unwrap();
        }
        w.flush().unwrap();
        drop(w);
        let back = read(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(back, recs);
    }

    #[test]
    fn ipv4_header_checksum_verifies() {
        let mut v = Vec::new();
        encode_ip_udp(&mut v, "10.0.0.1:1".parse().unwrap(), "10.0.0.2:2".parse().unwrap(), 1, b"x");
        // Summing a header with its checksum in place gives 0xffff.
        assert_eq!(ipv4_checksum(&v[..20]), 0);
    }
}
