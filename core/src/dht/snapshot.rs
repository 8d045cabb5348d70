//! The persisted routing state: our node id and the good nodes of each table.
//!
//! Format: a bencoded dictionary `{"id": <20 bytes>, "nodes": <compact IPv4 nodes>,
//! "nodes6": <compact IPv6 nodes>}`, the same compact encodings KRPC uses. The runtime keeps it
//! in the state directory; decoding treats the file as untrusted and refuses anything odd.

use std::collections::BTreeMap;

use bt_bencode::{ByteString, Value};

use super::node::{decode_nodes, encode_nodes, Family, NodeId, NodeInfo};
use crate::bencode;

/// Largest snapshot accepted (a full table is about 1,300 nodes, under 50 KiB).
pub const MAX_SNAPSHOT_LEN: usize = 256 * 1024;
/// Most nodes read from a snapshot.
pub const MAX_SNAPSHOT_NODES: usize = 4096;

/// Why snapshot bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// Larger than [`MAX_SNAPSHOT_LEN`].
    #[error("DHT snapshot of {0} bytes is too large")]
    TooLarge(usize),
    /// Not bencode.
    #[error("DHT snapshot is not bencode: {0}")]
    Bencode(#[from] bencode::BencodeError),
    /// Bencode, but not our layout.
    #[error("DHT snapshot is malformed: {0}")]
    Malformed(&'static str),
}

/// A decoded snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Our node id.
    pub id: NodeId,
    /// Good nodes at the time of saving, both families.
    pub nodes: Vec<NodeInfo>,
}

impl Snapshot {
    /// The bencoded form.
    pub fn encode(&self) -> Vec<u8> {
        let mut dict: BTreeMap<ByteString, Value> = BTreeMap::new();
        dict.insert("id".into(), Value::ByteStr(ByteString::from(&self.id.0[..])));
        dict.insert("nodes".into(), Value::ByteStr(ByteString::from(encode_nodes(&self.nodes, Family::V4))));
        dict.insert("nodes6".into(), Value::ByteStr(ByteString::from(encode_nodes(&self.nodes, Family::V6))));
        // Invariant: a dictionary of byte strings always encodes.
        bt_bencode::to_vec(&Value::Dict(dict)).expect("bencoding a Value tree cannot fail")
    }

    /// Decodes untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
        if bytes.len() > MAX_SNAPSHOT_LEN {
            return Err(SnapshotError::TooLarge(bytes.len()));
        }
        bencode::check(bytes, 4)?;
        let value: Value = bt_bencode::from_slice(bytes).map_err(|_| SnapshotError::Malformed("undecodable"))?;
        let dict = value.as_dict().ok_or(SnapshotError::Malformed("not a dictionary"))?;
        let field = |key: &[u8]| dict.get(key).and_then(Value::as_byte_str).map(|b| b.as_slice());
        let id = field(b"id").and_then(NodeId::from_slice).ok_or(SnapshotError::Malformed("no valid id"))?;
        let mut nodes = Vec::new();
        for (key, family) in [(&b"nodes"[..], Family::V4), (&b"nodes6"[..], Family::V6)] {
            if let Some(raw) = field(key) {
                nodes.extend(decode_nodes(raw, family).ok_or(SnapshotError::Malformed("bad compact node length"))?);
            }
        }
        nodes.truncate(MAX_SNAPSHOT_NODES);
        Ok(Snapshot { id, nodes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_both_families() {
        let snap = Snapshot {
            id: NodeId([7; 20]),
            nodes: vec![
                NodeInfo { id: NodeId([1; 20]), addr: "10.0.0.1:6881".parse().unwrap() },
                NodeInfo { id: NodeId([2; 20]), addr: "[2001:db8::2]:6881".parse().unwrap() },
            ],
        };
        assert_eq!(Snapshot::decode(&snap.encode()), Ok(snap));
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        for bad in [
            &b""[..],
            b"garbage",
            b"de",
            b"le",
            b"d2:id3:abce",
            b"d2:id20:aaaaaaaaaaaaaaaaaaaa5:nodes5:abcdee",
            b"d2:id20:aaaaaaaaaaaaaaaaaaaa5:nodes99999999999999999999:e",
            b"d2:idllllllllllllllllleeeeeeeeeeeeeeeeee",
        ] {
            assert!(Snapshot::decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(matches!(Snapshot::decode(&vec![b'l'; MAX_SNAPSHOT_LEN + 1]), Err(SnapshotError::TooLarge(_))));
        // Missing node lists are fine: just an id.
        assert_eq!(Snapshot::decode(b"d2:id20:aaaaaaaaaaaaaaaaaaaae").unwrap().nodes, vec![]);
    }
}
