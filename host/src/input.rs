//! What the tasks around the engine report to the engine task: socket traffic, finished disk,
//! hash and tracker work, prepared storage. Owned values, sent through a channel; the engine
//! task hands each to the engine.

use std::net::SocketAddr;

use shoal_core::engine::JobResult;
use shoal_core::{ConnId, JobId, TorrentId};

use crate::command::Reply;
use crate::disk::{Storage, StorageError};
use crate::session::AddOptions;
use crate::{Runtime, SessionError};

/// Everything that happens around the engine, reported to its task.
pub(crate) enum Input<R: Runtime> {
    /// A peer connected to a listener.
    Incoming(R::Stream, SocketAddr),
    /// An outgoing connection is up.
    Connected(ConnId),
    /// Bytes from a peer: the first `n` of a pooled buffer.
    Data(ConnId, Vec<u8>, usize),
    /// This many of a connection's queued bytes were written to its socket.
    Sent(ConnId, usize),
    /// A connection ended (or never came up).
    Closed(ConnId),
    /// A disk or hash job finished.
    Job(JobId, JobResult),
    /// A torrent's files are mapped (and empty ones created): it can join the engine.
    /// (Boxed: a storage is large, and every input is moved through the channel.)
    Prepared(Box<AddOptions>, Box<Result<Prepared, StorageError>>, Reply<Result<TorrentId, SessionError>>),
    /// An HTTP tracker's answer body, or why there is none.
    TrackerHttp(JobId, Result<Vec<u8>, String>),
    /// A UDP tracker's datagram, or why there is none.
    TrackerUdp(JobId, Result<Vec<u8>, String>),
    /// A datagram on a DHT socket.
    DhtDatagram(SocketAddr, Vec<u8>),
    /// A bootstrap host name resolved (empty if it failed).
    DhtResolved(Vec<SocketAddr>),
    /// A datagram on the Local Service Discovery socket.
    LsdDatagram(SocketAddr, Vec<u8>),
}

/// A torrent's storage, and whether any of its files existed before.
pub(crate) struct Prepared {
    /// The torrent's files.
    pub(crate) storage: Storage,
    /// Whether there is data to check.
    pub(crate) existed: bool,
}
