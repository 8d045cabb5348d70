//! BEP 55 hole punching: `ut_holepunch` messages, by which a peer behind a NAT asks a peer it
//! is connected to (the relay) to introduce it to another (the target), so that both open uTP
//! connections to each other at once.
//!
//! Each message is the payload of an extended message (BEP 10) under the id the receiver
//! advertised for `ut_holepunch`: a type byte, an address type byte (0 IPv4, 1 IPv6), the
//! address, a port and a 4-byte error code (0 unless the type is error), all big-endian.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The extension's name in the extended handshake's `m` dictionary.
pub const UT_HOLEPUNCH: &str = "ut_holepunch";

/// The longest message: an IPv6 address with its error code.
pub const MAX_HOLEPUNCH_LEN: usize = 2 + 16 + 2 + 4;

/// What a `ut_holepunch` message asks or says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HolepunchKind {
    /// Initiator to relay: send `Connect` to me and to the target at this address.
    Rendezvous,
    /// Relay to both ends: open a uTP connection to this address now.
    Connect,
    /// Relay to initiator: the rendezvous for this address cannot be done, and why.
    Error(HolepunchError),
}

/// Why a relay cannot do a rendezvous (BEP 55's error codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HolepunchError {
    /// The target endpoint is invalid.
    #[error("no such peer")]
    NoSuchPeer,
    /// The relay is not connected to the target.
    #[error("not connected to the target")]
    NotConnected,
    /// The target does not support hole punching.
    #[error("the target does not support holepunch")]
    NoSupport,
    /// The target is the relay itself.
    #[error("the target is the relay")]
    NoSelf,
    /// A code BEP 55 does not define (kept, so that it can be reported).
    #[error("unknown error code {0}")]
    Unknown(u32),
}

impl HolepunchError {
    /// The code on the wire.
    pub fn code(self) -> u32 {
        match self {
            HolepunchError::NoSuchPeer => 1,
            HolepunchError::NotConnected => 2,
            HolepunchError::NoSupport => 3,
            HolepunchError::NoSelf => 4,
            HolepunchError::Unknown(c) => c,
        }
    }

    fn from_code(code: u32) -> HolepunchError {
        match code {
            1 => HolepunchError::NoSuchPeer,
            2 => HolepunchError::NotConnected,
            3 => HolepunchError::NoSupport,
            4 => HolepunchError::NoSelf,
            c => HolepunchError::Unknown(c),
        }
    }
}

/// Why a received `ut_holepunch` payload cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HolepunchDecodeError {
    /// The payload ends before its address and port.
    #[error("holepunch message of {0} bytes is too short")]
    Truncated(usize),
    /// A message type BEP 55 does not define.
    #[error("unknown holepunch message type {0}")]
    UnknownType(u8),
    /// An address type other than IPv4 (0) or IPv6 (1).
    #[error("unknown holepunch address type {0}")]
    UnknownAddrType(u8),
    /// An error message with code 0 or without its code.
    #[error("holepunch error message without an error code")]
    MissingErrorCode,
}

/// One `ut_holepunch` message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HolepunchMessage {
    /// What it asks or says.
    pub kind: HolepunchKind,
    /// The endpoint it is about (the target, or for `Connect` the peer to dial).
    pub addr: SocketAddr,
}

impl HolepunchMessage {
    /// The extended-message payload.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, code) = match self.kind {
            HolepunchKind::Rendezvous => (0, 0),
            HolepunchKind::Connect => (1, 0),
            HolepunchKind::Error(e) => (2, e.code()),
        };
        let mut out = Vec::with_capacity(MAX_HOLEPUNCH_LEN);
        out.push(kind);
        match self.addr.ip() {
            IpAddr::V4(ip) => {
                out.push(0);
                out.extend_from_slice(&ip.octets());
            }
            IpAddr::V6(ip) => {
                out.push(1);
                out.extend_from_slice(&ip.octets());
            }
        }
        out.extend_from_slice(&self.addr.port().to_be_bytes());
        out.extend_from_slice(&code.to_be_bytes());
        out
    }

    /// Parses a received payload. Bytes after the error code are ignored; a missing error
    /// code is taken as 0 outside error messages (some clients leave it out there).
    pub fn decode(payload: &[u8]) -> Result<HolepunchMessage, HolepunchDecodeError> {
        let short = HolepunchDecodeError::Truncated(payload.len());
        let [kind, addr_type, rest @ ..] = payload else { return Err(short) };
        let (ip, rest): (IpAddr, &[u8]) = match addr_type {
            0 if rest.len() >= 6 => {
                let o: [u8; 4] = rest[..4].try_into().expect("length checked");
                (Ipv4Addr::from(o).into(), &rest[4..])
            }
            1 if rest.len() >= 18 => {
                let o: [u8; 16] = rest[..16].try_into().expect("length checked");
                (Ipv6Addr::from(o).into(), &rest[16..])
            }
            0 | 1 => return Err(short),
            t => return Err(HolepunchDecodeError::UnknownAddrType(*t)),
        };
        let port = u16::from_be_bytes([rest[0], rest[1]]);
        let code = rest.get(2..6).map(|c| u32::from_be_bytes(c.try_into().expect("four bytes")));
        let kind = match (kind, code) {
            (0, _) => HolepunchKind::Rendezvous,
            (1, _) => HolepunchKind::Connect,
            (2, Some(c)) if c != 0 => HolepunchKind::Error(HolepunchError::from_code(c)),
            (2, _) => return Err(HolepunchDecodeError::MissingErrorCode),
            (t, _) => return Err(HolepunchDecodeError::UnknownType(*t)),
        };
        Ok(HolepunchMessage { kind, addr: SocketAddr::new(ip, port) })
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::{HolepunchDecodeError, HolepunchError, HolepunchKind, HolepunchMessage};

    fn v4() -> SocketAddr {
        "10.0.0.2:6881".parse().expect("an address")
    }

    #[test]
    fn encodes_bep55_layout_and_round_trips() {
        let m = HolepunchMessage { kind: HolepunchKind::Rendezvous, addr: v4() };
        assert_eq!(m.encode(), [0, 0, 10, 0, 0, 2, 0x1a, 0xe1, 0, 0, 0, 0]);
        let e = HolepunchMessage { kind: HolepunchKind::Error(HolepunchError::NoSelf), addr: v4() };
        assert_eq!(e.encode()[8..], [0, 0, 0, 4]);
        let v6 = HolepunchMessage { kind: HolepunchKind::Connect, addr: "[2001:db8::1]:51413".parse().expect("v6") };
        assert_eq!(v6.encode().len(), 24);
        for m in [m, e, v6] {
            assert_eq!(HolepunchMessage::decode(&m.encode()), Ok(m));
        }
        for (code, err) in [
            (1, HolepunchError::NoSuchPeer),
            (2, HolepunchError::NotConnected),
            (3, HolepunchError::NoSupport),
            (4, HolepunchError::NoSelf),
            (77, HolepunchError::Unknown(77)),
        ] {
            assert_eq!(err.code(), code);
            let m = HolepunchMessage { kind: HolepunchKind::Error(err), addr: v4() };
            assert_eq!(HolepunchMessage::decode(&m.encode()), Ok(m));
        }
    }

    #[test]
    fn hostile_payloads_are_typed_errors() {
        let good = HolepunchMessage { kind: HolepunchKind::Connect, addr: v4() }.encode();
        for n in 0..8 {
            assert_eq!(HolepunchMessage::decode(&good[..n]), Err(HolepunchDecodeError::Truncated(n)));
        }
        // No error code outside an error message is fine; trailing bytes are ignored.
        assert!(HolepunchMessage::decode(&good[..8]).is_ok());
        assert!(HolepunchMessage::decode(&[good.as_slice(), &[9; 100]].concat()).is_ok());
        assert_eq!(HolepunchMessage::decode(&[3, 0, 1, 2, 3, 4, 0, 1]), Err(HolepunchDecodeError::UnknownType(3)));
        assert_eq!(HolepunchMessage::decode(&[0, 2, 1, 2, 3, 4, 0, 1]), Err(HolepunchDecodeError::UnknownAddrType(2)));
        assert_eq!(HolepunchMessage::decode(&[2, 0, 1, 2, 3, 4, 0, 1]), Err(HolepunchDecodeError::MissingErrorCode));
        assert_eq!(
            HolepunchMessage::decode(&[2, 0, 1, 2, 3, 4, 0, 1, 0, 0, 0, 0]),
            Err(HolepunchDecodeError::MissingErrorCode)
        );
        assert_eq!(HolepunchMessage::decode(&[1, 1, 0, 0]), Err(HolepunchDecodeError::Truncated(4)));
    }
}
