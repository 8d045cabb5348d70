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

mod conn;
mod endpoint;
mod ledbat;
mod packet;
mod recv;
mod send;
mod seq;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::time::Duration;

pub use endpoint::{TooManyConnections, UtpSocket};
pub use packet::{looks_like_utp, Header, Packet, PacketType, SelectiveAck, HEADER_LEN, MAX_SACK_BYTES, VERSION};

/// Why a datagram is not a uTP packet.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UtpError {
    /// Shorter than its header or than an extension claims.
    #[error("truncated uTP packet")]
    Truncated,
    /// A version other than 1.
    #[error("unknown uTP version {0}")]
    BadVersion(u8),
    /// A packet type other than the five.
    #[error("unknown uTP packet type {0}")]
    BadType(u8),
    /// A selective ACK of length zero.
    #[error("malformed uTP extension")]
    BadExtension,
}

/// A connection of a [`UtpSocket`]; handed out once, never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UtpConnId(pub u64);

/// Why a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UtpCloseReason {
    /// The peer sent FIN and every byte before it was read.
    Finished,
    /// The peer sent RESET.
    Reset,
    /// Our SYN went unanswered.
    ConnectTimedOut,
    /// The peer stopped answering: retransmissions or the idle timeout ran out.
    TimedOut,
}

/// What a [`UtpSocket`] tells its user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UtpEvent {
    /// An outgoing connection is open.
    Connected(UtpConnId),
    /// A peer opened a connection to us (after its first packet past the SYN).
    Incoming(UtpConnId, SocketAddr),
    /// Bytes wait to be read (said again only after a read emptied the buffer).
    Readable(UtpConnId),
    /// The send buffer has room again after a write was cut short.
    Writable(UtpConnId),
    /// The connection is gone.
    Closed(UtpConnId, UtpCloseReason),
}

/// Limits and protocol constants of a [`UtpSocket`].
#[derive(Clone, Debug)]
pub struct UtpConfig {
    /// Most connections at once (open and half-open).
    pub max_connections: usize,
    /// Most connections accepted from a SYN and not yet confirmed by the peer's next packet:
    /// a SYN flood never holds more state than this.
    pub max_half_open: usize,
    /// Receive buffer per connection, in bytes: the window we advertise is its free room.
    pub recv_buffer: usize,
    /// Send buffer per connection, in bytes (written and not yet acknowledged).
    pub send_buffer: usize,
    /// Largest payload per packet. 1200 bytes fit any path's MTU with IPv6 and UDP headers
    /// to spare (no MTU probing).
    pub max_payload: usize,
    /// LEDBAT's queueing delay target (BEP 29 and libtorrent: 100 ms).
    pub target_delay: Duration,
    /// SYNs resent before a connect fails (libtorrent's `utp_syn_resends`: 2).
    pub syn_resends: u32,
    /// Retransmission timeouts in a row before an open connection is dropped (libtorrent's
    /// `utp_num_resends`: 3).
    pub max_resends: u32,
    /// A connection that received nothing for this long is dropped. Longer than BitTorrent's
    /// two-minute keep-alive, so a quiet live peer stays.
    pub idle_timeout: Duration,
    /// An idle connection sends a bare ACK this often to keep NAT mappings alive (libutp: 29 s).
    pub keepalive: Duration,
    /// How long a zero receive window of the peer stops us before we probe it with one packet
    /// (libutp: 15 s).
    pub zero_window_probe: Duration,
}

impl Default for UtpConfig {
    fn default() -> Self {
        UtpConfig {
            max_connections: 200,
            max_half_open: 50,
            recv_buffer: 1 << 20,
            send_buffer: 1 << 20,
            max_payload: 1200,
            target_delay: Duration::from_millis(100),
            syn_resends: 2,
            max_resends: 3,
            idle_timeout: Duration::from_secs(300),
            keepalive: Duration::from_secs(29),
            zero_window_probe: Duration::from_secs(15),
        }
    }
}

/// A connection's numbers, for tests and statistics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UtpConnStats {
    /// The congestion window in bytes.
    pub cwnd: usize,
    /// Payload bytes in flight.
    pub in_flight: usize,
    /// The smoothed round-trip time, once measured.
    pub rtt: Option<Duration>,
    /// The last queueing delay of our packets LEDBAT measured.
    pub queue_delay: Duration,
    /// The peer's advertised receive window.
    pub peer_window: usize,
    /// Packets sent again.
    pub resent: u64,
}
