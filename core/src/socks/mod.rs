//! SOCKS5 (RFC 1928) with username/password authentication (RFC 1929), sans-IO.
//!
//! [`Handshake`] is the client side of one proxy connection: it says which bytes to write and
//! takes the proxy's answers, for a CONNECT (a peer or a tracker reached through the proxy) or
//! a UDP ASSOCIATE (UDP trackers). [`udp`] wraps and unwraps the header of datagrams relayed by
//! an association. Every length read from the proxy is bounded by the format itself (at most
//! [`MAX_REPLY`] bytes per message); anything else is a typed [`SocksError`].

mod client;
mod codec;
pub mod udp;

pub use client::{Handshake, Status};
pub use codec::{Command, Credentials, ReplyCode, Target, MAX_REPLY};

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
}

impl From<SocksError> for ProxyError {
    fn from(e: SocksError) -> Self {
        ProxyError::Socks(e)
    }
}
