//! The 68-byte BitTorrent handshake (BEP 3) and its reserved-bit capability flags.

use super::error::WireError;
use crate::types::{InfoHash, PeerId};

/// Length of the handshake: pstrlen, pstr, reserved, info hash, peer id.
pub const HANDSHAKE_LEN: usize = 68;

/// The protocol string the handshake starts with, preceded by its length.
const PROTOCOL: &[u8; 20] = b"\x13BitTorrent protocol";

/// Reserved byte 5, bit 0x10: BEP 10 extension protocol.
const EXTENDED_BYTE: usize = 5;
const EXTENDED_BIT: u8 = 0x10;
/// Reserved byte 7, bit 0x04: BEP 6 fast extension.
const FAST_BYTE: usize = 7;
const FAST_BIT: u8 = 0x04;
/// Reserved byte 7, bit 0x01: BEP 5 DHT (the peer sends `port`).
const DHT_BYTE: usize = 7;
const DHT_BIT: u8 = 0x01;

/// The handshake each side sends first.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct Handshake {
    /// Capability bits.
    pub reserved: [u8; 8],
    /// The torrent the connection is about.
    pub info_hash: InfoHash,
    /// The sender's peer id.
    pub peer_id: PeerId,
}

impl Handshake {
    /// Our handshake: advertises the fast extension and the extension protocol, not DHT.
    pub fn new(info_hash: InfoHash, peer_id: PeerId) -> Self {
        let mut reserved = [0u8; 8];
        reserved[FAST_BYTE] |= FAST_BIT;
        reserved[EXTENDED_BYTE] |= EXTENDED_BIT;
        Handshake { reserved, info_hash, peer_id }
    }

    /// Whether the sender supports the BEP 6 fast extension.
    pub fn supports_fast(&self) -> bool {
        self.reserved[FAST_BYTE] & FAST_BIT != 0
    }

    /// Whether the sender supports the BEP 10 extension protocol.
    pub fn supports_extended(&self) -> bool {
        self.reserved[EXTENDED_BYTE] & EXTENDED_BIT != 0
    }

    /// Whether the sender runs a BEP 5 DHT node.
    pub fn supports_dht(&self) -> bool {
        self.reserved[DHT_BYTE] & DHT_BIT != 0
    }

    /// Appends the 68-byte handshake to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(PROTOCOL);
        out.extend_from_slice(&self.reserved);
        out.extend_from_slice(&self.info_hash.0);
        out.extend_from_slice(&self.peer_id.0);
    }

    /// Parses a received handshake, checking the protocol string.
    pub fn parse(bytes: &[u8; HANDSHAKE_LEN]) -> Result<Handshake, WireError> {
        check_protocol_prefix(bytes)?;
        let (_, rest) = bytes.split_at(PROTOCOL.len());
        let (reserved, rest) = rest.split_at(8);
        let (info_hash, peer_id) = rest.split_at(20);
        // The splits above follow the fixed 68-byte layout, so each slice has its array's size.
        Ok(Handshake {
            reserved: reserved.try_into().expect("8 reserved bytes"),
            info_hash: InfoHash(info_hash.try_into().expect("20 info hash bytes")),
            peer_id: PeerId(peer_id.try_into().expect("20 peer id bytes")),
        })
    }
}

/// Checks whatever part of the 20-byte protocol prefix `bytes` holds (it may be shorter).
pub(super) fn check_protocol_prefix(bytes: &[u8]) -> Result<(), WireError> {
    let n = bytes.len().min(PROTOCOL.len());
    if n >= 1 && bytes[0] != PROTOCOL[0] {
        return Err(WireError::BadHandshake("protocol string length is not 19"));
    }
    if n > 1 && bytes[1..n] != PROTOCOL[1..n] {
        return Err(WireError::BadHandshake("protocol string is not \"BitTorrent protocol\""));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours() -> Handshake {
        Handshake::new(InfoHash([0x11; 20]), PeerId(*b"-SH0001-abcdefghijkl"))
    }

    #[test]
    fn new_advertises_fast_and_extended_but_not_dht() {
        let h = ours();
        assert!(h.supports_fast());
        assert!(h.supports_extended());
        assert!(!h.supports_dht());
        assert_eq!(h.reserved, [0, 0, 0, 0, 0, 0x10, 0, 0x04]);
    }

    #[test]
    fn encodes_the_bep3_layout_and_parses_back() {
        let mut out = vec![0xEE]; // encode appends
        ours().encode(&mut out);
        assert_eq!(out.len(), 1 + HANDSHAKE_LEN);
        let bytes: &[u8; HANDSHAKE_LEN] = out[1..].try_into().unwrap();
        assert_eq!(&bytes[..20], b"\x13BitTorrent protocol");
        assert_eq!(&bytes[28..48], &[0x11; 20]);
        assert_eq!(&bytes[48..], b"-SH0001-abcdefghijkl");
        assert_eq!(Handshake::parse(bytes), Ok(ours()));
    }

    #[test]
    fn reads_the_dht_bit() {
        let mut h = ours();
        h.reserved = [0, 0, 0, 0, 0, 0, 0, 0x01];
        let mut out = Vec::new();
        h.encode(&mut out);
        let parsed = Handshake::parse(out.as_slice().try_into().unwrap()).unwrap();
        assert!(parsed.supports_dht() && !parsed.supports_fast() && !parsed.supports_extended());
    }

    #[test]
    fn refuses_other_protocols() {
        let mut out = Vec::new();
        ours().encode(&mut out);
        let mut bad_len: [u8; HANDSHAKE_LEN] = out.as_slice().try_into().unwrap();
        bad_len[0] = 18;
        assert_eq!(Handshake::parse(&bad_len), Err(WireError::BadHandshake("protocol string length is not 19")));
        let mut bad_str: [u8; HANDSHAKE_LEN] = out.as_slice().try_into().unwrap();
        bad_str[1] = b'b';
        assert!(matches!(Handshake::parse(&bad_str), Err(WireError::BadHandshake(_))));
    }
}
