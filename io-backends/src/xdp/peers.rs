//! Who to answer at the link layer: for each peer IP, the MAC its frames
//! came from (the peer itself, or the router in front of it), our address
//! it wrote to, and its VLAN tag. AF_XDP bypasses the kernel's neighbour
//! table, so replies reuse what the request carried.
//!
//! Bounded and allocation-free after creation: a direct-mapped table where
//! a colliding peer replaces the older one. A peer missing from the table
//! is answered through the kernel UDP socket instead, which resolves it.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use super::frame::L2;

/// How to reach one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerRoute {
    /// Our MAC (`src_mac`), the next hop's (`dst_mac`), and the VLAN tag.
    pub l2: L2,
    /// The local address the peer sent to: the source of our replies.
    pub local: IpAddr,
}

#[derive(Debug)]
pub struct PeerTable {
    slots: Vec<Option<(IpAddr, PeerRoute)>>,
    /// Entries overwritten by a colliding peer.
    pub evictions: u64,
}

impl PeerTable {
    /// `capacity` is rounded up to a power of two (at least 16).
    pub fn new(capacity: usize) -> Self {
        let n = capacity.max(16).next_power_of_two();
        PeerTable { slots: vec![None; n], evictions: 0 }
    }

    fn slot(&self, ip: &IpAddr) -> usize {
        let mut h = DefaultHasher::new();
        ip.hash(&mut h);
        (h.finish() as usize) & (self.slots.len() - 1)
    }

    /// Records the route of a frame received from `peer`: `l2` as received
    /// (its source MAC is the next hop back, its destination MAC is ours).
    pub fn learn(&mut self, peer: IpAddr, received: L2, local: IpAddr) {
        let route = PeerRoute { l2: L2 { src_mac: received.dst_mac, dst_mac: received.src_mac, vlan_tci: received.vlan_tci }, local };
        let i = self.slot(&peer);
        if let Some(slot) = self.slots.get_mut(i) {
            match slot {
                Some((ip, r)) if *ip == peer => *r = route,
                Some(_) => {
                    self.evictions += 1;
                    *slot = Some((peer, route));
                }
                None => *slot = Some((peer, route)),
            }
        }
    }

    pub fn get(&self, peer: &IpAddr) -> Option<PeerRoute> {
        match self.slots.get(self.slot(peer))? {
            Some((ip, r)) if ip == peer => Some(*r),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l2(n: u8) -> L2 {
        L2 { src_mac: [2, 0, 0, 0, 0, n], dst_mac: [2, 0, 0, 0, 0, 0xee], vlan_tci: None }
    }

    #[test]
    fn learns_and_swaps_macs() {
        let mut t = PeerTable::new(16);
        let peer: IpAddr = "198.18.0.2".parse().unwrap();
        let local: IpAddr = "198.18.0.1".parse().unwrap();
        assert_eq!(t.get(&peer), None);
        t.learn(peer, l2(7), local);
        let r = t.get(&peer).unwrap();
        assert_eq!(r.l2.dst_mac, [2, 0, 0, 0, 0, 7]);
        assert_eq!(r.l2.src_mac, [2, 0, 0, 0, 0, 0xee]);
        assert_eq!(r.local, local);
        // A new MAC for the same peer replaces the old one.
        t.learn(peer, l2(8), local);
        assert_eq!(t.get(&peer).unwrap().l2.dst_mac[5], 8);
    }

    #[test]
    fn stays_bounded() {
        let mut t = PeerTable::new(16);
        let local: IpAddr = "198.18.0.1".parse().unwrap();
        for i in 0..1000u32 {
            let ip = IpAddr::from([198, 19, (i >> 8) as u8, i as u8]);
            t.learn(ip, l2(1), local);
        }
        assert_eq!(t.slots.len(), 16);
        assert!(t.evictions >= 1000 - 16);
        let present = (0..1000u32).filter(|i| t.get(&IpAddr::from([198, 19, (i >> 8) as u8, *i as u8])).is_some()).count();
        assert!(present <= 16 && present > 0);
    }
}
