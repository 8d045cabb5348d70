//! SOCKS5 (RFC 1928) with username/password authentication (RFC 1929), sans-IO.
//!
//! [`Handshake`] is the client side of one proxy connection: it says which bytes to write and
//! takes the proxy's answers, for a CONNECT (a peer or a tracker reached through the proxy) or
//! a UDP ASSOCIATE (UDP trackers; the DHT and uTP). [`udp`] wraps and unwraps the header of
//! datagrams relayed by an association; [`association`] says when to ask again for one that
//! failed or ended. Every length read from the proxy is bounded by the format itself (at most
//! [`MAX_REPLY`] bytes per message); anything else is a typed [`SocksError`].

pub mod association;
mod client;
mod codec;
mod error;
pub mod udp;

pub use client::{Handshake, Status};
pub use codec::{Command, Credentials, Target, MAX_REPLY};
pub use error::{ProxyError, ReplyCode, SocksError};
