//! What the runtime tells the engine: everything that happened around it, one value each.

use std::net::SocketAddr;

use crate::tracker::TransportError;
use crate::types::{ConnId, ExchangeId, JobId};

use super::close_reason::CloseReason;
use super::output::JobResult;

/// One thing that happened around the engine, for [`Engine::handle`](crate::Engine::handle). Each answers an
/// [`Output`](crate::Output) (a new incoming connection is [`Engine::accept`](crate::Engine::accept) instead: it returns its id).
/// Borrowed bytes are read during the call and not kept, so the runtime may reuse its buffer.
#[derive(Debug)]
pub enum Input<'a> {
    /// An outgoing connection from [`PeerIo::Connect`](crate::PeerIo::Connect) is established.
    Connected(ConnId),
    /// Bytes arrived from a peer.
    PeerBytes(ConnId, &'a [u8]),
    /// This many bytes of earlier [`PeerIo::Send`](crate::PeerIo::Send)s were written to the socket.
    Sent(ConnId, usize),
    /// The connection failed or was closed by the peer (or the network), and why:
    /// [`CloseReason::DialFailed`], [`CloseReason::Proxy`], [`CloseReason::PeerClosed`] or
    /// [`CloseReason::Io`].
    Closed(ConnId, CloseReason),
    /// A disk or hash job finished.
    Job(JobId, JobResult),
    /// An [`Output::Http`](crate::Output::Http) request finished: the body, or why there is none.
    Http(JobId, Result<Vec<u8>, TransportError>),
    /// A datagram arrived on the socket of a UDP tracker exchange ([`UdpIo::Exchange`](crate::UdpIo::Exchange)), or
    /// the exchange failed (`Err`: the host did not resolve, the socket could not send).
    Exchange(ExchangeId, Result<&'a [u8], TransportError>),
    /// A datagram arrived on the DHT or the Local Service Discovery socket.
    Datagram {
        /// Which socket.
        socket: Socket,
        /// Its sender.
        from: SocketAddr,
        /// The datagram.
        data: &'a [u8],
    },
    /// The addresses an [`Output::Resolve`](crate::Output::Resolve) resolved to (empty if it failed).
    Resolved(&'a [SocketAddr]),
}

/// The long-lived UDP sockets a runtime keeps for the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Socket {
    /// The DHT's, bound to the listen port ([`UdpIo::Dht`](crate::UdpIo::Dht)).
    Dht,
    /// Local Service Discovery's, bound to [`crate::lsd::PORT`] and joined to its multicast
    /// groups ([`UdpIo::Lsd`](crate::UdpIo::Lsd)).
    Lsd,
}
