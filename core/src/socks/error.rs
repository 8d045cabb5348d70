//! What goes wrong in a SOCKS5 exchange.

use std::io::ErrorKind;

/// Why a SOCKS5 exchange failed.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SocksError {
    /// The proxy answered with another protocol version than 5 (not a SOCKS5 server).
    #[error("not a SOCKS5 server (version byte {0})")]
    NotSocks5(u8),
    /// The proxy accepts none of the authentication methods offered.
    #[error("no acceptable authentication method (credentials needed?)")]
    NoAcceptableMethod,
    /// The proxy chose a method that was not offered.
    #[error("the server chose authentication method {0}, which was not offered")]
    UnexpectedMethod(u8),
    /// The username/password sub-negotiation answered with another version than 1.
    #[error("bad authentication reply version {0}")]
    BadAuthVersion(u8),
    /// The proxy refused the username and password.
    #[error("authentication failed (wrong username or password)")]
    AuthFailed,
    /// The proxy refused the request.
    #[error("{0}")]
    Refused(ReplyCode),
    /// A reply's reserved byte is not zero.
    #[error("malformed reply (reserved byte {0})")]
    BadReserved(u8),
    /// An address of an unknown type.
    #[error("unknown address type {0}")]
    BadAddressType(u8),
    /// The proxy sent bytes before it was asked anything, or more than the message it owed.
    #[error("unexpected bytes from the server")]
    Unsolicited,
    /// The proxy closed the connection before the handshake completed.
    #[error("the server closed the connection during the handshake")]
    Closed,
    /// A username or password is empty or longer than 255 bytes.
    #[error("username and password must each be 1 to 255 bytes")]
    BadCredentials,
    /// A host name is empty or longer than 255 bytes.
    #[error("host name must be 1 to 255 bytes")]
    BadDomain,
    /// A relayed datagram is a fragment (FRAG not 0): unsupported, dropped.
    #[error("fragmented datagram")]
    Fragmented,
    /// A relayed datagram names its source by host name, where a peer or DHT node has an IP
    /// address.
    #[error("a host name as the source of a datagram")]
    NamedSource,
    /// A relayed datagram is shorter than its header.
    #[error("truncated datagram")]
    Truncated,
}

/// Why a connection through the proxy failed: reported as [`crate::CloseReason::Proxy`] on a
/// peer connection, and in a tracker's error as `proxy: ...`.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// The proxy itself could not be reached (connection refused, unreachable, not allowed by
    /// the network policy).
    #[error("cannot reach the proxy: {0}")]
    Unreachable(ErrorKind),
    /// The connection to the proxy failed during the handshake.
    #[error("connection to the proxy failed: {0}")]
    Io(ErrorKind),
    /// The proxy answered, but not with success.
    #[error("{0}")]
    Socks(SocksError),
    /// The proxy closed the control connection of a UDP association, which ends it.
    #[error("the proxy closed the UDP association")]
    AssociationClosed,
}

impl From<SocksError> for ProxyError {
    fn from(e: SocksError) -> Self {
        ProxyError::Socks(e)
    }
}

/// The reply code of a refused request (RFC 1928 §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplyCode {
    /// 1.
    #[error("general SOCKS server failure")]
    GeneralFailure,
    /// 2.
    #[error("connection not allowed by ruleset")]
    NotAllowed,
    /// 3.
    #[error("network unreachable")]
    NetworkUnreachable,
    /// 4.
    #[error("host unreachable")]
    HostUnreachable,
    /// 5.
    #[error("connection refused")]
    ConnectionRefused,
    /// 6.
    #[error("TTL expired")]
    TtlExpired,
    /// 7.
    #[error("command not supported")]
    CommandNotSupported,
    /// 8.
    #[error("address type not supported")]
    AddressNotSupported,
    /// Anything else.
    #[error("unknown reply code {0}")]
    Other(u8),
}

impl ReplyCode {
    pub(super) fn from_byte(b: u8) -> ReplyCode {
        match b {
            1 => ReplyCode::GeneralFailure,
            2 => ReplyCode::NotAllowed,
            3 => ReplyCode::NetworkUnreachable,
            4 => ReplyCode::HostUnreachable,
            5 => ReplyCode::ConnectionRefused,
            6 => ReplyCode::TtlExpired,
            7 => ReplyCode::CommandNotSupported,
            8 => ReplyCode::AddressNotSupported,
            other => ReplyCode::Other(other),
        }
    }
}
