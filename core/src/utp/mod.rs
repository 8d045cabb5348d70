//! uTP, the micro transport protocol (BEP 29): reliable, ordered byte streams over UDP whose
//! LEDBAT congestion control (RFC 6817) backs off as soon as its packets start queueing, so
//! BitTorrent traffic yields to everything else on the uplink.
//!
//! A sans-IO machine like the rest of the core. One [`UtpSocket`] serves every connection on
//! one UDP port, keyed by the peer's address and the connection id:
//!
//! * input: [`UtpSocket::handle_datagram`] (a datagram arrived), [`UtpSocket::handle_timeout`];
//! * commands: [`UtpSocket::connect`], [`UtpSocket::write`], [`UtpSocket::read`],
//!   [`UtpSocket::close`] (FIN after the bytes written), [`UtpSocket::abort`] (RESET);
//! * output, drained after every call: [`UtpSocket::poll_transmit`] (datagrams to send),
//!   [`UtpSocket::poll_event`] ([`UtpEvent`]s), then [`UtpSocket::poll_timeout`].
//!
//! Time comes in as `now`; randomness (connection ids, initial sequence numbers) from the seed
//! the socket is built with.

mod config;
mod conn;
mod endpoint;
mod events;
mod ledbat;
mod mtu;
mod packet;
mod recv;
mod send;
mod seq;
#[cfg(test)]
mod tests;

pub use config::UtpConfig;
pub use endpoint::{TooManyConnections, UtpSocket};
pub use events::{UtpCloseReason, UtpConnId, UtpConnStats, UtpEvent};
pub use packet::{
    looks_like_utp, Header, Packet, PacketType, SelectiveAck, UtpError, HEADER_LEN, MAX_SACK_BYTES, VERSION,
};
