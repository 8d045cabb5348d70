//! The header of datagrams relayed by a UDP association (RFC 1928 §7): reserved, fragment
//! number, destination address, then the payload.

use super::codec::Target;
use super::error::SocksError;

/// `payload` for `to`, with the header the proxy's relay expects.
pub fn wrap(to: &Target, payload: &[u8]) -> Result<Vec<u8>, SocksError> {
    to.validate()?;
    let mut out = Vec::with_capacity(4 + 18 + payload.len());
    out.extend_from_slice(&[0, 0, 0]);
    to.encode(&mut out);
    out.extend_from_slice(payload);
    Ok(out)
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
}
