//! Ethernet / IPv4 / IPv6 / UDP framing for AF_XDP: parse what the XDP
//! program redirected, build what goes out. Pure functions over byte
//! slices, so every frame from the wire is handled without panicking.
//!
//! Received UDP checksums are not verified: frames from a local stack over
//! veth can carry a partial (CHECKSUM_PARTIAL) checksum, and QUIC's AEAD
//! authenticates the payload anyway (RFC 9001 §5.3). Sent frames get a full
//! UDP checksum (RFC 768; mandatory over IPv6, RFC 8200 §8.1) and a correct
//! IPv4 header checksum (RFC 791, RFC 1071).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;

pub const ETH_HLEN: usize = 14;
pub const VLAN_HLEN: usize = 4;
pub const IPV4_HLEN: usize = 20;
pub const IPV6_HLEN: usize = 40;
pub const UDP_HLEN: usize = 8;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88A8;
const IPPROTO_UDP: u8 = 17;
/// Hop limit / TTL of sent packets (the Linux default).
const DEFAULT_TTL: u8 = 64;

pub type Mac = [u8; 6];

/// Why a frame was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    Truncated,
    NotIp,
    BadIpHeader,
    /// IPv4 options or fragments, IPv6 extension headers.
    UnsupportedIp,
    NotUdp,
    BadUdpLength,
    /// The output buffer cannot hold headers + payload.
    NoRoom,
    /// Source and destination address families differ.
    FamilyMismatch,
}

/// The link-layer facts needed to answer a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L2 {
    pub src_mac: Mac,
    pub dst_mac: Mac,
    /// 802.1Q tag control information (PCP, DEI, VLAN id), if tagged.
    pub vlan_tci: Option<u16>,
}

/// A parsed UDP datagram inside a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub l2: L2,
    pub source: SocketAddr,
    pub destination: SocketAddr,
    /// The two ECN bits of the IP header (RFC 3168 §5).
    pub ecn: u8,
    /// Where the UDP payload lies in the frame.
    pub payload: Range<usize>,
}

fn be16(b: &[u8], at: usize) -> Result<u16, FrameError> {
    let s = b.get(at..at + 2).ok_or(FrameError::Truncated)?;
    Ok(u16::from_be_bytes([s[0], s[1]]))
}

fn mac_at(b: &[u8], at: usize) -> Result<Mac, FrameError> {
    let s = b.get(at..at + 6).ok_or(FrameError::Truncated)?;
    let mut m = [0u8; 6];
    m.copy_from_slice(s);
    Ok(m)
}

/// Parses Ethernet (one optional VLAN tag), IPv4 without options or IPv6
/// without extension headers, and UDP.
pub fn parse(frame: &[u8]) -> Result<Parsed, FrameError> {
    let dst_mac = mac_at(frame, 0)?;
    let src_mac = mac_at(frame, 6)?;
    let mut ethertype = be16(frame, 12)?;
    let mut l3 = ETH_HLEN;
    let mut vlan_tci = None;
    if ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ {
        vlan_tci = Some(be16(frame, ETH_HLEN)?);
        ethertype = be16(frame, ETH_HLEN + 2)?;
        l3 += VLAN_HLEN;
    }
    let l2 = L2 { src_mac, dst_mac, vlan_tci };
    let (src, dst, ecn, l4, l4_len) = match ethertype {
        ETHERTYPE_IPV4 => {
            let ip = frame.get(l3..l3 + IPV4_HLEN).ok_or(FrameError::Truncated)?;
            if ip[0] >> 4 != 4 || ip[0] & 0x0f < 5 {
                return Err(FrameError::BadIpHeader);
            }
            if ip[0] & 0x0f != 5 || u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
                return Err(FrameError::UnsupportedIp);
            }
            if ip[9] != IPPROTO_UDP {
                return Err(FrameError::NotUdp);
            }
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            let l4_len = total.checked_sub(IPV4_HLEN).ok_or(FrameError::BadIpHeader)?;
            let src = IpAddr::V4(Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]));
            let dst = IpAddr::V4(Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]));
            (src, dst, ip[1] & 0x03, l3 + IPV4_HLEN, l4_len)
        }
        ETHERTYPE_IPV6 => {
            let ip = frame.get(l3..l3 + IPV6_HLEN).ok_or(FrameError::Truncated)?;
            if ip[0] >> 4 != 6 {
                return Err(FrameError::BadIpHeader);
            }
            if ip[6] != IPPROTO_UDP {
                return Err(FrameError::NotUdp);
            }
            // Traffic class straddles bytes 0 and 1; ECN is its low 2 bits.
            let tclass = (ip[0] << 4) | (ip[1] >> 4);
            let l4_len = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s.copy_from_slice(&ip[8..24]);
            d.copy_from_slice(&ip[24..40]);
            (IpAddr::V6(Ipv6Addr::from(s)), IpAddr::V6(Ipv6Addr::from(d)), tclass & 0x03, l3 + IPV6_HLEN, l4_len)
        }
        _ => return Err(FrameError::NotIp),
    };
    let udp = frame.get(l4..l4 + UDP_HLEN).ok_or(FrameError::Truncated)?;
    let sport = u16::from_be_bytes([udp[0], udp[1]]);
    let dport = u16::from_be_bytes([udp[2], udp[3]]);
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if udp_len < UDP_HLEN || udp_len > l4_len {
        return Err(FrameError::BadUdpLength);
    }
    let payload = l4 + UDP_HLEN..l4 + udp_len;
    if payload.end > frame.len() {
        return Err(FrameError::Truncated);
    }
    Ok(Parsed { l2, source: SocketAddr::new(src, sport), destination: SocketAddr::new(dst, dport), ecn, payload })
}

/// Bytes of headers before the UDP payload of a frame we build.
pub fn header_len(ipv6: bool, vlan: bool) -> usize {
    ETH_HLEN + if vlan { VLAN_HLEN } else { 0 } + if ipv6 { IPV6_HLEN } else { IPV4_HLEN } + UDP_HLEN
}

/// One's-complement sum of 16-bit big-endian words (RFC 1071), not folded.
fn sum16(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc = acc.wrapping_add(u32::from(u16::from_be_bytes([c[0], c[1]])));
        // Fold early so the u32 never overflows, whatever the length.
        if acc > 0xffff_0000 {
            acc = (acc & 0xffff) + (acc >> 16);
        }
    }
    if let [last] = chunks.remainder() {
        acc = acc.wrapping_add(u32::from(*last) << 8);
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The IPv4 header checksum of `header` (whose checksum field is zero).
pub fn ipv4_header_checksum(header: &[u8]) -> u16 {
    !fold(sum16(0, header))
}

/// The UDP checksum over the pseudo-header and `segment` (UDP header with
/// a zero checksum field, then the payload). Zero is sent as 0xffff (RFC 768).
pub fn udp_checksum(src: IpAddr, dst: IpAddr, segment: &[u8]) -> u16 {
    let mut acc = 0u32;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            acc = sum16(acc, &s.octets());
            acc = sum16(acc, &d.octets());
        }
        (s, d) => {
            acc = sum16(acc, &v6_octets(s));
            acc = sum16(acc, &v6_octets(d));
        }
    }
    acc = acc.wrapping_add(u32::from(IPPROTO_UDP));
    // IPv4 pseudo-header has a 16-bit length, IPv6 a 32-bit one; for
    // lengths under 64 KiB both add the same to the sum.
    acc = acc.wrapping_add(segment.len() as u32 & 0xffff);
    acc = acc.wrapping_add((segment.len() as u32) >> 16);
    let c = !fold(sum16(acc, segment));
    if c == 0 {
        0xffff
    } else {
        c
    }
}

fn v6_octets(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
    }
}

/// What to put around a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outgoing {
    pub l2: L2,
    pub source: SocketAddr,
    pub destination: SocketAddr,
    pub ecn: u8,
}

/// Writes the headers in front of the `payload_len` bytes already at
/// `frame[header_len..]` and returns the frame length. `l2.src_mac` is our
/// MAC, `l2.dst_mac` the next hop's.
pub fn write_headers(frame: &mut [u8], out: &Outgoing, payload_len: usize) -> Result<usize, FrameError> {
    let v6 = match (out.source.ip(), out.destination.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) => false,
        (IpAddr::V6(_), IpAddr::V6(_)) => true,
        _ => return Err(FrameError::FamilyMismatch),
    };
    let hlen = header_len(v6, out.l2.vlan_tci.is_some());
    let total = hlen.checked_add(payload_len).ok_or(FrameError::NoRoom)?;
    let udp_len = UDP_HLEN + payload_len;
    let ip_payload = u16::try_from(udp_len).map_err(|_| FrameError::NoRoom)?;
    if frame.len() < total || (!v6 && udp_len + IPV4_HLEN > usize::from(u16::MAX)) {
        return Err(FrameError::NoRoom);
    }
    let (head, _) = frame.split_at_mut(total);
    head[0..6].copy_from_slice(&out.l2.dst_mac);
    head[6..12].copy_from_slice(&out.l2.src_mac);
    let mut l3 = 12;
    if let Some(tci) = out.l2.vlan_tci {
        head[12..14].copy_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
        head[14..16].copy_from_slice(&tci.to_be_bytes());
        l3 += VLAN_HLEN;
    }
    head[l3..l3 + 2].copy_from_slice(&(if v6 { ETHERTYPE_IPV6 } else { ETHERTYPE_IPV4 }).to_be_bytes());
    l3 += 2;
    let ecn = out.ecn & 0x03;
    let l4 = match (out.source.ip(), out.destination.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let ip = &mut head[l3..l3 + IPV4_HLEN];
            ip[0] = 0x45;
            ip[1] = ecn; // DSCP 0 (default forwarding), ECN bits.
            ip[2..4].copy_from_slice(&(ip_payload + IPV4_HLEN as u16).to_be_bytes());
            ip[4..6].copy_from_slice(&[0, 0]); // identification: DF set, never fragmented
            ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF (RFC 9000 §14)
            ip[8] = DEFAULT_TTL;
            ip[9] = IPPROTO_UDP;
            ip[10..12].copy_from_slice(&[0, 0]);
            ip[12..16].copy_from_slice(&s.octets());
            ip[16..20].copy_from_slice(&d.octets());
            let c = ipv4_header_checksum(ip);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            l3 + IPV4_HLEN
        }
        (s, d) => {
            let ip = &mut head[l3..l3 + IPV6_HLEN];
            // Version 6, traffic class = ECN bits, flow label 0.
            ip[0] = 0x60;
            ip[1] = ecn << 4;
            ip[2] = 0;
            ip[3] = 0;
            ip[4..6].copy_from_slice(&ip_payload.to_be_bytes());
            ip[6] = IPPROTO_UDP;
            ip[7] = DEFAULT_TTL;
            ip[8..24].copy_from_slice(&v6_octets(s));
            ip[24..40].copy_from_slice(&v6_octets(d));
            l3 + IPV6_HLEN
        }
    };
    let seg = &mut head[l4..];
    seg[0..2].copy_from_slice(&out.source.port().to_be_bytes());
    seg[2..4].copy_from_slice(&out.destination.port().to_be_bytes());
    seg[4..6].copy_from_slice(&ip_payload.to_be_bytes());
    seg[6..8].copy_from_slice(&[0, 0]);
    let c = udp_checksum(out.source.ip(), out.destination.ip(), seg);
    seg[6..8].copy_from_slice(&c.to_be_bytes());
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l2(vlan: Option<u16>) -> L2 {
        L2 { src_mac: [0x02, 0, 0, 0, 0, 1], dst_mac: [0x02, 0, 0, 0, 0, 2], vlan_tci: vlan }
    }

    #[test]
    fn ipv4_checksum_known_vector() {
        // RFC 1071-style example header (192.168.0.1 -> 192.168.0.199,
        // UDP, total length 0x73): checksum 0xb861.
        let mut h = hex::decode("450000730000400040110000c0a80001c0a800c7").unwrap();
        assert_eq!(ipv4_header_checksum(&h), 0xb861);
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        // A header with its checksum in place sums to zero.
        assert_eq!(ipv4_header_checksum(&h), 0);
    }

    #[test]
    fn udp_checksum_known_vectors() {
        // Computed independently (Python, RFC 768 pseudo-header):
        // 198.18.0.1:4433 -> 198.18.0.2:50000, payload "quic".
        let seg = hex::decode("1151c3500000000c71756963").unwrap();
        let c = udp_checksum("198.18.0.1".parse().unwrap(), "198.18.0.2".parse().unwrap(), &seg);
        assert_eq!(c, UDP4_VECTOR);
        // 2001:2::1 -> 2001:2::2, same ports and payload.
        let c6 = udp_checksum("2001:2::1".parse().unwrap(), "2001:2::2".parse().unwrap(), &seg);
        assert_eq!(c6, UDP6_VECTOR);
    }
    const UDP4_VECTOR: u16 = 0xc433;
    const UDP6_VECTOR: u16 = 0x1053;

    #[test]
    fn odd_length_payload_is_padded() {
        // "abc": the last byte is summed as the high byte of a zero-padded word.
        let seg = hex::decode("0001000200000000616263").unwrap();
        let c = udp_checksum("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap(), &seg);
        let mut with = seg.clone();
        with[6..8].copy_from_slice(&c.to_be_bytes());
        // Verifying sum over pseudo-header + segment with checksum is 0xffff.
        let mut acc = sum16(0, &[10, 0, 0, 1, 10, 0, 0, 2]);
        acc += 17 + seg.len() as u32;
        assert_eq!(fold(sum16(acc, &with)), 0xffff);
    }

    fn round_trip(src: &str, dst: &str, vlan: Option<u16>, ecn: u8) {
        let out = Outgoing { l2: l2(vlan), source: src.parse().unwrap(), destination: dst.parse().unwrap(), ecn };
        let payload = b"\x40hello quic payload";
        let v6 = out.source.is_ipv6();
        let hlen = header_len(v6, vlan.is_some());
        let mut frame = vec![0u8; 2048];
        frame[hlen..hlen + payload.len()].copy_from_slice(payload);
        let n = write_headers(&mut frame, &out, payload.len()).unwrap();
        assert_eq!(n, hlen + payload.len());
        let p = parse(&frame[..n]).unwrap();
        assert_eq!(p.source, out.source);
        assert_eq!(p.destination, out.destination);
        assert_eq!(p.ecn, ecn);
        assert_eq!(p.l2.vlan_tci, vlan);
        assert_eq!(p.l2.src_mac, out.l2.src_mac);
        assert_eq!(&frame[p.payload.clone()], payload);
        if !v6 {
            let l3 = hlen - UDP_HLEN - IPV4_HLEN;
            assert_eq!(ipv4_header_checksum(&frame[l3..l3 + IPV4_HLEN]), 0);
        }
        // The UDP checksum verifies: recomputing with the field zeroed gives it.
        let l4 = hlen - UDP_HLEN;
        let mut seg = frame[l4..n].to_vec();
        let sent = u16::from_be_bytes([seg[6], seg[7]]);
        seg[6] = 0;
        seg[7] = 0;
        assert_eq!(udp_checksum(out.source.ip(), out.destination.ip(), &seg), sent);
    }

    #[test]
    fn build_then_parse_v4_v6_vlan_ecn() {
        round_trip("198.18.0.1:4433", "198.18.0.2:50000", None, 0b10);
        round_trip("198.18.0.1:4433", "198.18.0.2:50000", Some(0x0064), 0b11);
        round_trip("[2001:2::1]:4433", "[2001:2::2]:50000", None, 0b01);
        round_trip("[2001:2::1]:4433", "[2001:2::2]:50000", Some(7), 0);
    }

    #[test]
    fn refuses_mixed_families_and_small_buffers() {
        let out = Outgoing { l2: l2(None), source: "198.18.0.1:1".parse().unwrap(), destination: "[2001:2::2]:2".parse().unwrap(), ecn: 0 };
        let mut f = [0u8; 100];
        assert_eq!(write_headers(&mut f, &out, 10), Err(FrameError::FamilyMismatch));
        let out = Outgoing { destination: "198.18.0.2:2".parse().unwrap(), ..out };
        assert_eq!(write_headers(&mut f, &out, 80), Err(FrameError::NoRoom));
        assert_eq!(write_headers(&mut f, &out, usize::MAX), Err(FrameError::NoRoom));
    }

    fn sample_v4() -> Vec<u8> {
        let out = Outgoing { l2: l2(None), source: "198.18.0.2:50000".parse().unwrap(), destination: "198.18.0.1:4433".parse().unwrap(), ecn: 2 };
        let mut frame = vec![0u8; 200];
        let n = write_headers(&mut frame, &out, 20).unwrap();
        frame.truncate(n);
        frame
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let frame = sample_v4();
        assert!(parse(&frame).is_ok());
        for cut in 0..frame.len() {
            assert!(parse(&frame[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn malformed_headers_are_typed_errors() {
        let good = sample_v4();
        let mut f = good.clone();
        f[12..14].copy_from_slice(&0x0806u16.to_be_bytes()); // ARP
        assert_eq!(parse(&f), Err(FrameError::NotIp));
        let mut f = good.clone();
        f[14] = 0x46; // IHL 6: options
        assert_eq!(parse(&f), Err(FrameError::UnsupportedIp));
        let mut f = good.clone();
        f[14] = 0x44; // IHL 4
        assert_eq!(parse(&f), Err(FrameError::BadIpHeader));
        let mut f = good.clone();
        f[20] = 0x20; // More Fragments
        assert_eq!(parse(&f), Err(FrameError::UnsupportedIp));
        let mut f = good.clone();
        f[23] = 6; // TCP
        assert_eq!(parse(&f), Err(FrameError::NotUdp));
        let mut f = good.clone();
        f[38..40].copy_from_slice(&4u16.to_be_bytes()); // UDP length < 8
        assert_eq!(parse(&f), Err(FrameError::BadUdpLength));
        let mut f = good.clone();
        f[38..40].copy_from_slice(&500u16.to_be_bytes()); // beyond the IP length
        assert_eq!(parse(&f), Err(FrameError::BadUdpLength));
        let mut f = good;
        f[16..18].copy_from_slice(&10u16.to_be_bytes()); // IP total < header
        assert_eq!(parse(&f), Err(FrameError::BadIpHeader));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic fuzz: LCG bytes with plausible prefixes.
        let mut x: u64 = 0x1234_5678;
        let mut buf = [0u8; 128];
        for i in 0..20_000 {
            for b in buf.iter_mut() {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                *b = (x >> 33) as u8;
            }
            let et: u16 = [0x0800, 0x86dd, 0x8100][i % 3];
            buf[12..14].copy_from_slice(&et.to_be_bytes());
            let len = i % buf.len();
            let _ = parse(&buf[..len]);
        }
    }
}
