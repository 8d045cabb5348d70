//! The header of datagrams relayed by a UDP association (RFC 1928 §7): reserved, fragment
//! number, destination address, then the payload.

use std::net::SocketAddr;

use super::codec::Target;
use super::error::SocksError;

/// The longest header of a relayed datagram: reserved, fragment, then a 255-byte host name
/// (type, length, name, port).
pub const MAX_HEADER: usize = 3 + 1 + 1 + 255 + 2;

/// The header's length for a datagram to or from `addr` (10 bytes for IPv4, 22 for IPv6): what
/// the relay takes off each datagram's room.
pub fn header_len(addr: &SocketAddr) -> usize {
    let ip = if addr.is_ipv4() { 4 } else { 16 };
    3 + 1 + ip + 2
}

/// `payload` for `to`, with the header the proxy's relay expects.
pub fn wrap(to: &Target, payload: &[u8]) -> Result<Vec<u8>, SocksError> {
    to.validate()?;
    let mut out = Vec::with_capacity(4 + 18 + payload.len());
    out.extend_from_slice(&[0, 0, 0]);
    to.encode(&mut out);
    out.extend_from_slice(payload);
    Ok(out)
}

/// `payload` for the IP address `to` (which always fits the header), appended to `out`.
pub fn wrap_ip(to: SocketAddr, payload: &[u8], out: &mut Vec<u8>) {
    out.reserve(header_len(&to) + payload.len());
    out.extend_from_slice(&[0, 0, 0]);
    Target::Ip(to).encode(out);
    out.extend_from_slice(payload);
}

/// Who sent a datagram the relay passed on, and its payload. Fragments are refused (the
/// RFC lets a client drop them, and no tracker reply needs them).
pub fn unwrap(datagram: &[u8]) -> Result<(Target, &[u8]), SocksError> {
    let [_, _, frag, rest @ ..] = datagram else { return Err(SocksError::Truncated) };
    if *frag != 0 {
        return Err(SocksError::Fragmented);
    }
    match Target::parse(rest)? {
        Some((from, n)) => Ok((from, &rest[n..])),
        None => Err(SocksError::Truncated),
    }
}

/// [`unwrap`] for a datagram from a peer or DHT node, which has an IP address: a host name
/// as the source is refused ([`SocksError::NamedSource`]), as is a fragment.
pub fn unwrap_ip(datagram: &[u8]) -> Result<(SocketAddr, &[u8]), SocksError> {
    match unwrap(datagram)? {
        (Target::Ip(from), payload) => Ok((from, payload)),
        (Target::Domain(..), _) => Err(SocksError::NamedSource),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_hostile_datagrams() {
        let to = Target::Ip("[::1]:6969".parse().unwrap());
        let d = wrap(&to, b"announce").unwrap();
        assert_eq!(&d[..4], &[0, 0, 0, 4]);
        assert_eq!(unwrap(&d).unwrap(), (to, &b"announce"[..]));
        let named = Target::Domain("tracker.example".into(), 80);
        assert_eq!(unwrap(&wrap(&named, b"").unwrap()).unwrap(), (named, &b""[..]));
        assert_eq!(unwrap(&[0, 0]), Err(SocksError::Truncated));
        assert_eq!(unwrap(&[0, 0, 1, 1, 1, 2, 3, 4, 0, 1]), Err(SocksError::Fragmented));
        assert_eq!(unwrap(&[0, 0, 0, 1, 1, 2, 3]), Err(SocksError::Truncated));
        assert_eq!(unwrap(&[0, 0, 0, 3, 200, b'a']), Err(SocksError::Truncated));
        assert_eq!(unwrap(&[0, 0, 0, 2]), Err(SocksError::BadAddressType(2)));
        assert_eq!(wrap(&Target::Domain(String::new(), 1), b"x"), Err(SocksError::BadDomain));
    }

    #[test]
    fn datagrams_of_peers_carry_ip_addresses_only() {
        for to in ["10.0.0.7:6881", "[2001:db8::1]:51413"] {
            let to: SocketAddr = to.parse().unwrap();
            let mut d = vec![0xee];
            wrap_ip(to, b"\x41\x00utp", &mut d);
            assert_eq!(d.len(), 1 + header_len(&to) + 5);
            assert_eq!(d[1..], wrap(&Target::Ip(to), b"\x41\x00utp").unwrap()[..]);
            assert_eq!(unwrap_ip(&d[1..]).unwrap(), (to, &b"\x41\x00utp"[..]));
        }
        // A host name as the source, a fragment, an unknown type, a header cut short: refused.
        let named = wrap(&Target::Domain("peer.example".into(), 6881), b"d1:ad").unwrap();
        assert_eq!(unwrap_ip(&named), Err(SocksError::NamedSource));
        assert_eq!(unwrap_ip(&[0, 0, 2, 1, 10, 0, 0, 1, 0, 80, b'x']), Err(SocksError::Fragmented));
        assert_eq!(unwrap_ip(&[0, 0, 0, 5, 10, 0, 0, 1, 0, 80]), Err(SocksError::BadAddressType(5)));
        assert_eq!(unwrap_ip(&[0, 0, 0, 4, 0x20, 1]), Err(SocksError::Truncated));
        assert_eq!(unwrap_ip(&[]), Err(SocksError::Truncated));
        // Every prefix of a good datagram's header is refused, never read past its end.
        let good = wrap(&Target::Ip("[::1]:1".parse().unwrap()), b"").unwrap();
        for cut in 0..good.len() {
            assert!(unwrap_ip(&good[..cut]).is_err(), "cut at {cut}");
        }
        assert!(MAX_HEADER >= named.len() - 5);
    }
}
