//! BEP 11 peer exchange: `ut_pex` messages telling a peer which peers we connected to and
//! which we lost since the last message.
//!
//! Each message is the payload of an extended message (BEP 10) under the id the receiver
//! advertised for `ut_pex`: a bencoded dictionary of compact address lists (6 bytes per IPv4
//! peer, 18 per IPv6 peer) with one flags byte per added peer.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use bt_bencode::{ByteString, Value};
use serde::Deserialize;

use super::error::WireError;
use crate::bencode::{self, BencodeError};

/// The extension's name in the extended handshake's `m` dictionary.
pub const UT_PEX: &str = "ut_pex";

/// `added.f` flag: the peer prefers encrypted connections.
pub const PEX_ENCRYPTION: u8 = 0x01;
/// `added.f` flag: the peer is a seed (or only uploads).
pub const PEX_SEED: u8 = 0x02;
/// `added.f` flag: the peer speaks uTP.
pub const PEX_UTP: u8 = 0x04;
/// `added.f` flag: the peer supports the `ut_holepunch` extension.
pub const PEX_HOLEPUNCH: u8 = 0x08;
/// `added.f` flag: the sender reached the peer by an outgoing connection, so it accepts them.
pub const PEX_OUTGOING: u8 = 0x10;

/// Nesting accepted in the dictionary (it needs one level).
const MAX_NESTING: usize = 8;

/// One `ut_pex` message.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct PexMessage {
    /// Peers connected since the last message, each with its `PEX_*` flags.
    pub added: Vec<(SocketAddr, u8)>,
    /// Peers disconnected since the last message.
    pub dropped: Vec<SocketAddr>,
}

impl PexMessage {
    /// Whether the message says nothing (some clients take an empty message as an error).
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.dropped.is_empty()
    }

    /// The extended-message payload: every key present, IPv4 and IPv6 peers in their own lists.
    ///
    /// `added.f` is always sent with `added`: libtorrent ignores an `added` without it.
    pub fn encode(&self) -> Vec<u8> {
        let (mut added, mut added_f, mut added6, mut added6_f) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (addr, flags) in &self.added {
            match addr {
                SocketAddr::V4(_) => {
                    write_compact(&mut added, addr);
                    added_f.push(*flags);
                }
                SocketAddr::V6(_) => {
                    write_compact(&mut added6, addr);
                    added6_f.push(*flags);
                }
            }
        }
        let (mut dropped, mut dropped6) = (Vec::new(), Vec::new());
        for addr in &self.dropped {
            let list = if addr.is_ipv4() { &mut dropped } else { &mut dropped6 };
            write_compact(list, addr);
        }
        let dict: BTreeMap<ByteString, Value> = [
            ("added", added),
            ("added.f", added_f),
            ("added6", added6),
            ("added6.f", added6_f),
            ("dropped", dropped),
            ("dropped6", dropped6),
        ]
        .into_iter()
        .map(|(key, bytes)| (ByteString::from(key), Value::ByteStr(bytes.into())))
        .collect();
        // Serialising an in-memory dictionary with byte-string keys cannot fail.
        bt_bencode::to_vec(&Value::Dict(dict)).expect("a bencode Value always serialises")
    }

    /// Parses a received payload, keeping at most `max_added` added and `max_dropped` dropped
    /// peers (the first ones, IPv4 before IPv6); the rest of a long list is ignored.
    ///
    /// Unknown keys and bytes after the dictionary are ignored. Bytes that are not a
    /// dictionary, a known key that is not a byte string, an address list whose length is not
    /// a whole number of entries, or flags that do not match their list are errors.
    pub fn decode(payload: &[u8], max_added: usize, max_dropped: usize) -> Result<Self, WireError> {
        let bad = |why: &str| WireError::BadPexMessage(why.to_owned());
        let payload = match bencode::check(payload, MAX_NESTING) {
            Ok(()) => payload,
            Err(BencodeError::TrailingData { offset }) => &payload[..offset],
            Err(e) => return Err(WireError::BadPexMessage(e.to_string())),
        };
        let mut de = bt_bencode::Deserializer::from_slice(payload);
        let value = Value::deserialize(&mut de).map_err(|e| WireError::BadPexMessage(e.to_string()))?;
        let Value::Dict(dict) = value else {
            return Err(bad("not a dictionary"));
        };
        let bytes = |key: &str| -> Result<&[u8], WireError> {
            match dict.get(key.as_bytes()) {
                None => Ok(&[]),
                Some(Value::ByteStr(b)) => Ok(b.as_slice()),
                Some(_) => Err(WireError::BadPexMessage(format!("`{key}` is not a byte string"))),
            }
        };

        let mut msg = PexMessage::default();
        for (list, flags_key, entry) in [("added", "added.f", 6), ("added6", "added6.f", 18)] {
            let (list, flags) = (bytes(list)?, bytes(flags_key)?);
            let count = entries(list, entry)?;
            // The flags are optional; when present there is one byte per peer.
            if !flags.is_empty() && flags.len() != count {
                return Err(bad("flags do not match the added peers"));
            }
            let room = max_added.saturating_sub(msg.added.len());
            for (i, chunk) in list.chunks_exact(entry).take(room).enumerate() {
                msg.added.push((read_compact(chunk), flags.get(i).copied().unwrap_or(0)));
            }
        }
        for (list, entry) in [("dropped", 6), ("dropped6", 18)] {
            let list = bytes(list)?;
            entries(list, entry)?;
            let room = max_dropped.saturating_sub(msg.dropped.len());
            msg.dropped.extend(list.chunks_exact(entry).take(room).map(read_compact));
        }
        Ok(msg)
    }
}

/// Number of `entry`-byte addresses in `list`; an error if it holds a partial one.
fn entries(list: &[u8], entry: usize) -> Result<usize, WireError> {
    if !list.len().is_multiple_of(entry) {
        return Err(WireError::BadPexMessage(format!("an address list is not a multiple of {entry} bytes")));
    }
    Ok(list.len() / entry)
}

/// Reads one compact address: 6 bytes for IPv4, 18 for IPv6 (callers pass nothing else).
fn read_compact(chunk: &[u8]) -> SocketAddr {
    let (ip, port) = chunk.split_at(chunk.len() - 2);
    let port = u16::from_be_bytes([port[0], port[1]]);
    match <[u8; 4]>::try_from(ip) {
        Ok(v4) => SocketAddr::new(Ipv4Addr::from(v4).into(), port),
        Err(_) => {
            let mut v6 = [0u8; 16];
            v6.copy_from_slice(ip);
            SocketAddr::new(Ipv6Addr::from(v6).into(), port)
        }
    }
}

/// Writes one address in compact form.
fn write_compact(out: &mut Vec<u8>, addr: &SocketAddr) {
    match addr {
        SocketAddr::V4(a) => out.extend_from_slice(&a.ip().octets()),
        SocketAddr::V6(a) => out.extend_from_slice(&a.ip().octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, a], port))
    }

    fn v6(a: u16, port: u16) -> SocketAddr {
        SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, a], port))
    }

    #[test]
    fn round_trips_both_families() {
        let m = PexMessage {
            added: vec![(v4(1, 6881), PEX_SEED | PEX_OUTGOING), (v4(2, 51413), 0), (v6(3, 6882), PEX_UTP)],
            dropped: vec![v4(9, 1), v6(10, 2)],
        };
        assert_eq!(PexMessage::decode(&m.encode(), 100, 100), Ok(m));
        let empty = PexMessage::default();
        assert!(empty.is_empty());
        assert_eq!(PexMessage::decode(&empty.encode(), 100, 100), Ok(empty));
    }

    #[test]
    fn encodes_the_bep_11_layout() {
        let m = PexMessage { added: vec![(v4(1, 0x1ae1), PEX_SEED)], dropped: vec![v4(2, 0x0102)] };
        let expected: &[u8] = b"d5:added6:\x0a\x00\x00\x01\x1a\xe17:added.f1:\x026:added60:8:added6.f0:\
                                7:dropped6:\x0a\x00\x00\x02\x01\x028:dropped60:e";
        assert_eq!(m.encode(), expected);
    }

    #[test]
    fn decode_takes_missing_keys_as_empty_and_ignores_extras() {
        // Only the IPv4 keys, no flags at all, unknown keys, bytes after the dictionary.
        let m = PexMessage::decode(b"d5:added6:\x7f\x00\x00\x01\x1a\xe14:xtrai3ee junk", 100, 100).unwrap();
        assert_eq!(m.added, vec![(SocketAddr::from(([127, 0, 0, 1], 6881)), 0)]);
        assert!(m.dropped.is_empty());
    }

    #[test]
    fn long_lists_are_cut_at_the_limits() {
        let added: Vec<(SocketAddr, u8)> = (0..200).map(|i| (v4(i as u8, 1000 + i), 0)).collect();
        let dropped: Vec<SocketAddr> = (0..80).map(|i| v6(i, 7)).collect();
        let payload = PexMessage { added: added.clone(), dropped: dropped.clone() }.encode();
        let m = PexMessage::decode(&payload, 100, 30).unwrap();
        assert_eq!(m.added, added[..100]);
        assert_eq!(m.dropped, dropped[..30]);
        // IPv4 first, then IPv6, within one limit.
        let mixed = PexMessage { added: vec![(v6(1, 1), 0), (v4(1, 1), 0), (v4(2, 2), 0)], dropped: vec![] };
        let m = PexMessage::decode(&mixed.encode(), 2, 0).unwrap();
        assert_eq!(m.added, vec![(v4(1, 1), 0), (v4(2, 2), 0)]);
    }

    #[test]
    fn hostile_payloads_are_errors_not_panics() {
        for bad in [
            &b""[..],
            b"i1e",
            b"le",
            b"d5:added",
            b"d5:addedi1ee",
            b"d5:added5:abcdee",
            b"d6:added617:aaaaaaaaaaaaaaaaae",
            b"d7:dropped7:abcdefge",
            b"d8:dropped6l6:abcdefee",
            b"d5:added6:abcdef7:added.f2:xye",
            b"d5:added18446744073709551615:",
            b"d1:xllllllllllllllllleeeeeeeeeeeeeeeeee5:added0:e",
        ] {
            assert!(
                matches!(PexMessage::decode(bad, 100, 100), Err(WireError::BadPexMessage(_))),
                "{:?} was accepted",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_huge_list_costs_no_more_than_the_limit() {
        // 40 000 addresses in one frame: all checked for shape, only the limit taken.
        let mut payload = format!("d5:added{}:", 6 * 40_000).into_bytes();
        payload.extend(std::iter::repeat_n(7u8, 6 * 40_000));
        payload.push(b'e');
        let m = PexMessage::decode(&payload, 100, 100).unwrap();
        assert_eq!(m.added.len(), 100);
        assert!(m.added.iter().all(|(a, f)| *a == SocketAddr::from(([7, 7, 7, 7], 0x0707)) && *f == 0));
    }
}
