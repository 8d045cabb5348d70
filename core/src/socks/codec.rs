//! The messages of RFC 1928 and RFC 1929 as bytes: what a client writes, and the parsers of
//! what a server answers.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use super::error::{ReplyCode, SocksError};

/// Protocol version of SOCKS5 messages.
pub(super) const VERSION: u8 = 5;
/// Method "no authentication required".
pub(super) const NO_AUTH: u8 = 0;
/// Method "username/password" (RFC 1929).
pub(super) const USER_PASS: u8 = 2;
/// Method reply "no acceptable methods".
pub(super) const NO_ACCEPTABLE: u8 = 0xff;
/// Version of the username/password sub-negotiation.
pub(super) const AUTH_VERSION: u8 = 1;

const ATYP_V4: u8 = 1;
const ATYP_DOMAIN: u8 = 3;
const ATYP_V6: u8 = 4;

/// The longest message a server sends a client: a reply with a 255-byte host name
/// (version, code, reserved, type, length, name, port).
pub const MAX_REPLY: usize = 4 + 1 + 255 + 2;

/// What a client asks the proxy to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Open a TCP connection to the target and relay it.
    Connect,
    /// Relay UDP datagrams for the client; the target is where the client sends from
    /// (unspecified when unknown).
    UdpAssociate,
}

impl Command {
    fn code(self) -> u8 {
        match self {
            Command::Connect => 1,
            Command::UdpAssociate => 3,
        }
    }
}

/// An address in a SOCKS5 message: an IP address, or a host name the proxy resolves.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// An IPv4 or IPv6 address and port.
    Ip(SocketAddr),
    /// A host name (1 to 255 bytes) and port.
    Domain(String, u16),
}

impl Target {
    /// Checks that a host name fits the format.
    pub(super) fn validate(&self) -> Result<(), SocksError> {
        match self {
            Target::Domain(host, _) if host.is_empty() || host.len() > 255 => Err(SocksError::BadDomain),
            _ => Ok(()),
        }
    }

    /// Appends the address as ATYP, address and port.
    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Target::Ip(SocketAddr::V4(a)) => {
                out.push(ATYP_V4);
                out.extend_from_slice(&a.ip().octets());
                out.extend_from_slice(&a.port().to_be_bytes());
            }
            Target::Ip(SocketAddr::V6(a)) => {
                out.push(ATYP_V6);
                out.extend_from_slice(&a.ip().octets());
                out.extend_from_slice(&a.port().to_be_bytes());
            }
            Target::Domain(host, port) => {
                // validate() ran when the target was accepted: the length fits a byte.
                out.push(ATYP_DOMAIN);
                out.push(host.len() as u8);
                out.extend_from_slice(host.as_bytes());
                out.extend_from_slice(&port.to_be_bytes());
            }
        }
    }

    /// Parses ATYP, address and port at the start of `buf`: the target and the bytes it took,
    /// or `None` when `buf` holds only part of it.
    pub(super) fn parse(buf: &[u8]) -> Result<Option<(Target, usize)>, SocksError> {
        let Some(&atyp) = buf.first() else { return Ok(None) };
        let (addr_len, start) = match atyp {
            ATYP_V4 => (4, 1),
            ATYP_V6 => (16, 1),
            ATYP_DOMAIN => match buf.get(1) {
                Some(&0) => return Err(SocksError::BadDomain),
                Some(&n) => (usize::from(n), 2),
                None => return Ok(None),
            },
            other => return Err(SocksError::BadAddressType(other)),
        };
        let end = start + addr_len + 2;
        let Some(bytes) = buf.get(start..end) else { return Ok(None) };
        let (addr, port) = bytes.split_at(addr_len);
        let port = u16::from_be_bytes([port[0], port[1]]);
        let target = match atyp {
            ATYP_V4 => {
                let octets: [u8; 4] = addr.try_into().map_err(|_| SocksError::Truncated)?;
                Target::Ip(SocketAddr::from((Ipv4Addr::from(octets), port)))
            }
            ATYP_V6 => {
                let octets: [u8; 16] = addr.try_into().map_err(|_| SocksError::Truncated)?;
                Target::Ip(SocketAddr::from((Ipv6Addr::from(octets), port)))
            }
            // A name the server sent is only shown, never dialled: lossy is fine.
            _ => Target::Domain(String::from_utf8_lossy(addr).into_owned(), port),
        };
        Ok(Some((target, end)))
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Ip(a) => write!(f, "{a}"),
            Target::Domain(h, p) => write!(f, "{h}:{p}"),
        }
    }
}

/// A username and password for RFC 1929, each 1 to 255 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    username: String,
    password: String,
}

impl Credentials {
    /// Checks the lengths the format allows.
    pub fn new(username: &str, password: &str) -> Result<Credentials, SocksError> {
        let fits = |s: &str| (1..=255).contains(&s.len());
        if !fits(username) || !fits(password) {
            return Err(SocksError::BadCredentials);
        }
        Ok(Credentials { username: username.to_owned(), password: password.to_owned() })
    }

    /// The username.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The password.
    pub fn password(&self) -> &str {
        &self.password
    }
}

impl std::fmt::Debug for Credentials {
    // The password stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).finish_non_exhaustive()
    }
}

/// The greeting: version and the methods offered (user/password only with credentials).
pub(super) fn greeting(with_credentials: bool) -> Vec<u8> {
    if with_credentials {
        vec![VERSION, 2, NO_AUTH, USER_PASS]
    } else {
        vec![VERSION, 1, NO_AUTH]
    }
}

/// The username/password request.
pub(super) fn auth_request(c: &Credentials) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 + c.username.len() + c.password.len());
    out.push(AUTH_VERSION);
    out.push(c.username.len() as u8);
    out.extend_from_slice(c.username.as_bytes());
    out.push(c.password.len() as u8);
    out.extend_from_slice(c.password.as_bytes());
    out
}

/// A request: version, command, reserved, then the target.
pub(super) fn request(command: Command, target: &Target) -> Vec<u8> {
    let mut out = vec![VERSION, command.code(), 0];
    target.encode(&mut out);
    out
}

/// Parses a reply at the start of `buf`: the bound address and the bytes it took, `None`
/// when incomplete; a failure code is an error as soon as it is read.
pub(super) fn parse_reply(buf: &[u8]) -> Result<Option<(Target, usize)>, SocksError> {
    let Some(header) = buf.get(..3) else {
        return match buf {
            [v, ..] if *v != VERSION => Err(SocksError::NotSocks5(*v)),
            [_, code, ..] if *code != 0 => Err(SocksError::Refused(ReplyCode::from_byte(*code))),
            _ => Ok(None),
        };
    };
    match header {
        [v, ..] if *v != VERSION => return Err(SocksError::NotSocks5(*v)),
        [_, code, _] if *code != 0 => return Err(SocksError::Refused(ReplyCode::from_byte(*code))),
        [_, _, rsv] if *rsv != 0 => return Err(SocksError::BadReserved(*rsv)),
        _ => {}
    }
    Ok(Target::parse(&buf[3..])?.map(|(t, n)| (t, 3 + n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_round_trip() {
        for t in [
            Target::Ip("10.1.2.3:6881".parse().unwrap()),
            Target::Ip("[2001:db8::7]:443".parse().unwrap()),
            Target::Domain("tracker.example.org".into(), 80),
            Target::Domain("x".repeat(255), 1),
        ] {
            let mut out = Vec::new();
            t.encode(&mut out);
            assert_eq!(Target::parse(&out).unwrap(), Some((t.clone(), out.len())));
            for cut in 0..out.len() {
                assert_eq!(Target::parse(&out[..cut]).unwrap(), None, "{t} cut at {cut}");
            }
        }
        assert_eq!(Target::Domain(String::new(), 1).validate(), Err(SocksError::BadDomain));
        assert_eq!(Target::Domain("x".repeat(256), 1).validate(), Err(SocksError::BadDomain));
        assert_eq!(Target::parse(&[9, 1, 2]), Err(SocksError::BadAddressType(9)));
        assert_eq!(Target::parse(&[3, 0, 1, 2]), Err(SocksError::BadDomain));
    }

    #[test]
    fn messages_are_as_the_rfcs_spell_them() {
        assert_eq!(greeting(false), [5, 1, 0]);
        assert_eq!(greeting(true), [5, 2, 0, 2]);
        let c = Credentials::new("user", "pw").unwrap();
        assert_eq!(auth_request(&c), b"\x01\x04user\x02pw");
        let t = Target::Ip("127.0.0.1:6881".parse().unwrap());
        assert_eq!(request(Command::Connect, &t), [5, 1, 0, 1, 127, 0, 0, 1, 0x1a, 0xe1]);
        assert_eq!(request(Command::UdpAssociate, &t)[1], 3);
        assert_eq!(Credentials::new("", "p"), Err(SocksError::BadCredentials));
        assert_eq!(Credentials::new("u", &"p".repeat(256)), Err(SocksError::BadCredentials));
        assert!(!format!("{c:?}").contains("pw"));
    }

    #[test]
    fn replies_parse_or_fail_early() {
        let ok = [5, 0, 0, 1, 10, 0, 0, 1, 0, 80];
        assert_eq!(parse_reply(&ok).unwrap(), Some((Target::Ip("10.0.0.1:80".parse().unwrap()), 10)));
        assert_eq!(parse_reply(&ok[..9]).unwrap(), None);
        assert_eq!(parse_reply(&[5, 5]), Err(SocksError::Refused(ReplyCode::ConnectionRefused)));
        assert_eq!(parse_reply(&[5, 0x42]), Err(SocksError::Refused(ReplyCode::Other(0x42))));
        assert_eq!(parse_reply(&[4]), Err(SocksError::NotSocks5(4)));
        assert_eq!(parse_reply(&[5, 0, 1]), Err(SocksError::BadReserved(1)));
        assert_eq!(parse_reply(&[5, 0, 0, 7]), Err(SocksError::BadAddressType(7)));
        assert_eq!(parse_reply(&[]).unwrap(), None);
    }
}
