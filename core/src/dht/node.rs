//! Node ids, the XOR metric, and the compact encodings of node and peer addresses.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use rand::Rng;

use crate::types::InfoHash;

/// Length in bytes of a compact IPv4 node entry: id, address, port (BEP 5).
pub(super) const COMPACT_NODE_V4_LEN: usize = 26;
/// Length in bytes of a compact IPv6 node entry: id, address, port (BEP 32).
pub(super) const COMPACT_NODE_V6_LEN: usize = 38;

/// A 160-bit DHT node id; also used as a lookup target.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NodeId(pub [u8; 20]);

impl NodeId {
    /// A uniformly random id.
    pub fn random<R: Rng + ?Sized>(rng: &mut R) -> Self {
        let mut id = [0u8; 20];
        rng.fill(&mut id[..]);
        NodeId(id)
    }

    /// The XOR distance to `other`, comparable as a big-endian number.
    pub fn distance(&self, other: &NodeId) -> [u8; 20] {
        let mut d = [0u8; 20];
        for (i, byte) in d.iter_mut().enumerate() {
            *byte = self.0[i] ^ other.0[i];
        }
        d
    }

    /// How many leading bits `self` and `other` share (160 when equal).
    pub fn common_prefix_len(&self, other: &NodeId) -> usize {
        for (i, (a, b)) in self.0.iter().zip(other.0.iter()).enumerate() {
            let x = a ^ b;
            if x != 0 {
                return i * 8 + x.leading_zeros() as usize;
            }
        }
        160
    }

    /// The bit at `index` (0 is the most significant bit of the first byte).
    pub fn bit(&self, index: usize) -> bool {
        self.0.get(index / 8).is_some_and(|b| b & (0x80 >> (index % 8)) != 0)
    }

    /// This id with the bit at `index` flipped; ids past bit 159 are left unchanged.
    pub fn flip_bit(mut self, index: usize) -> Self {
        if let Some(b) = self.0.get_mut(index / 8) {
            *b ^= 0x80 >> (index % 8);
        }
        self
    }

    /// Reads 20 bytes; `None` for any other length.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(NodeId)
    }
}

impl From<InfoHash> for NodeId {
    fn from(h: InfoHash) -> Self {
        NodeId(h.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId(")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "..)")
    }
}

/// A node as the DHT knows it: its id and its UDP address.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct NodeInfo {
    /// The node's id.
    pub id: NodeId,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// An address family; each has its own routing table (BEP 32).
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Family {
    /// IPv4, `nodes`, 26-byte entries.
    V4,
    /// IPv6, `nodes6`, 38-byte entries.
    V6,
}

impl Family {
    /// The family of `addr`.
    pub fn of(addr: &SocketAddr) -> Family {
        if addr.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }

    /// Index into per-family arrays.
    pub fn index(self) -> usize {
        match self {
            Family::V4 => 0,
            Family::V6 => 1,
        }
    }

    /// Both families, v4 first.
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];
}

/// Maps an IPv4-mapped IPv6 address (from a dual-stack socket) to plain IPv4.
pub(super) fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Whether `addr` can be a DHT node or peer: a real unicast address and a non-zero port.
pub(super) fn is_usable(addr: &SocketAddr) -> bool {
    let ip_ok = match addr.ip() {
        IpAddr::V4(ip) => !ip.is_unspecified() && !ip.is_multicast() && !ip.is_broadcast(),
        IpAddr::V6(ip) => !ip.is_unspecified() && !ip.is_multicast(),
    };
    ip_ok && addr.port() != 0
}

/// Appends the compact form of `addr`: 4 or 16 address bytes then the port, big-endian.
pub(super) fn write_compact_addr(out: &mut Vec<u8>, addr: &SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// The compact form of `addr` (6 or 18 bytes).
pub(super) fn compact_addr(addr: &SocketAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(18);
    write_compact_addr(&mut out, addr);
    out
}

/// Reads a 6-byte (IPv4) or 18-byte (IPv6) compact address; `None` for any other length.
pub(super) fn parse_compact_addr(bytes: &[u8]) -> Option<SocketAddr> {
    let (ip, port): (IpAddr, &[u8]) = match bytes.len() {
        6 => {
            let octets: [u8; 4] = bytes[..4].try_into().ok()?;
            (Ipv4Addr::from(octets).into(), &bytes[4..])
        }
        18 => {
            let octets: [u8; 16] = bytes[..16].try_into().ok()?;
            (Ipv6Addr::from(octets).into(), &bytes[16..])
        }
        _ => return None,
    };
    let port = u16::from_be_bytes(port.try_into().ok()?);
    Some(canonical(SocketAddr::new(ip, port)))
}

/// Encodes nodes as one compact string; nodes of the other family are skipped.
pub(super) fn encode_nodes(nodes: &[NodeInfo], family: Family) -> Vec<u8> {
    let mut out = Vec::new();
    for n in nodes.iter().filter(|n| Family::of(&n.addr) == family) {
        out.extend_from_slice(&n.id.0);
        write_compact_addr(&mut out, &n.addr);
    }
    out
}

/// Decodes a compact node string of `family`; `None` if its length is not a multiple of the
/// entry size. Entries with an unusable address are dropped.
pub(super) fn decode_nodes(bytes: &[u8], family: Family) -> Option<Vec<NodeInfo>> {
    let entry = match family {
        Family::V4 => COMPACT_NODE_V4_LEN,
        Family::V6 => COMPACT_NODE_V6_LEN,
    };
    if !bytes.len().is_multiple_of(entry) {
        return None;
    }
    let nodes = bytes
        .chunks_exact(entry)
        .filter_map(|chunk| {
            let (id, addr) = chunk.split_at(20);
            let info = NodeInfo { id: NodeId::from_slice(id)?, addr: parse_compact_addr(addr)? };
            // A v4-mapped address inside `nodes6` is not an IPv6 node.
            (Family::of(&info.addr) == family && is_usable(&info.addr)).then_some(info)
        })
        .collect();
    Some(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(first: u8) -> NodeId {
        let mut b = [0u8; 20];
        b[0] = first;
        NodeId(b)
    }

    #[test]
    fn xor_metric_and_prefixes() {
        let a = id(0b1000_0000);
        let b = id(0b1010_0000);
        assert_eq!(a.common_prefix_len(&b), 2);
        assert_eq!(a.common_prefix_len(&a), 160);
        assert_eq!(a.distance(&b)[0], 0b0010_0000);
        assert!(a.bit(0) && !a.bit(1) && !a.bit(159) && !a.bit(500));
        assert_eq!(a.flip_bit(2), b);
        assert_eq!(a.flip_bit(1000), a);
        let mut last = [0u8; 20];
        last[19] = 1;
        assert_eq!(NodeId::default().common_prefix_len(&NodeId(last)), 159);
    }

    #[test]
    fn compact_nodes_round_trip_both_families() {
        let v4 = NodeInfo { id: id(1), addr: "1.2.3.4:6881".parse().unwrap() };
        let v6 = NodeInfo { id: id(2), addr: "[2001:db8::1]:6882".parse().unwrap() };
        let n4 = encode_nodes(&[v4, v6], Family::V4);
        assert_eq!(n4.len(), 26);
        assert_eq!(&n4[20..], &[1, 2, 3, 4, 0x1a, 0xe1]);
        assert_eq!(decode_nodes(&n4, Family::V4), Some(vec![v4]));
        let n6 = encode_nodes(&[v4, v6], Family::V6);
        assert_eq!(n6.len(), 38);
        assert_eq!(decode_nodes(&n6, Family::V6), Some(vec![v6]));
    }

    #[test]
    fn bad_compact_lengths_are_refused_and_junk_entries_dropped() {
        assert_eq!(decode_nodes(&[0u8; 25], Family::V4), None);
        assert_eq!(decode_nodes(&[0u8; 27], Family::V4), None);
        assert_eq!(decode_nodes(&[0u8; 26 * 3], Family::V6), None);
        assert_eq!(decode_nodes(b"def456...", Family::V4), None);
        // Port 0 and 0.0.0.0 are not nodes.
        assert_eq!(decode_nodes(&[0u8; 26], Family::V4), Some(vec![]));
        assert_eq!(parse_compact_addr(&[1, 2, 3]), None);
        assert_eq!(parse_compact_addr(&[10, 0, 0, 1, 0, 80]), Some("10.0.0.1:80".parse().unwrap()));
    }

    #[test]
    fn mapped_addresses_become_ipv4() {
        let mapped: SocketAddr = "[::ffff:10.1.2.3]:7".parse().unwrap();
        assert_eq!(canonical(mapped), "10.1.2.3:7".parse().unwrap());
        assert!(!is_usable(&"0.0.0.0:1".parse().unwrap()));
        assert!(!is_usable(&"1.1.1.1:0".parse().unwrap()));
        assert!(!is_usable(&"[ff02::1]:1".parse().unwrap()));
        assert!(is_usable(&"[2001:db8::1]:1".parse().unwrap()));
    }
}
