//! What a uTP socket reports: connection ids, events, close reasons, statistics.

use std::net::SocketAddr;
use std::time::Duration;

/// A connection of a [`UtpSocket`](super::UtpSocket); handed out once, never reused.
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

/// What a [`UtpSocket`](super::UtpSocket) tells its user.
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
    /// The payload size of new packets (packet-size discovery moves it).
    pub payload: usize,
}
