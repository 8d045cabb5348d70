//! What the tasks around the engine report to the engine task: socket traffic, finished disk,
//! hash and tracker work, prepared storage. Owned values, sent through a channel; the engine
//! task hands each to the engine as a [`shoal_core::Input`], borrowing the buffers.

use std::net::SocketAddr;

use shoal_core::{ConnId, ExchangeId, Socket, TorrentId, TransportError};

use crate::command::Reply;
use crate::disk::{Storage, StorageError};
use crate::runtime::Runtime;
use crate::session::AddOptions;
use crate::session::SessionError;

/// Everything that happens around the engine, reported to its task.
pub(crate) enum Input<R: Runtime> {
    /// An engine input that owns its data (a connection up, sent or closed, a finished disk,
    /// hash or HTTP job), handed on as is.
    Engine(shoal_core::Input<'static>),
    /// Bytes from a peer: the first `n` of a pooled buffer ([`shoal_core::Input::PeerBytes`]).
    PeerBytes(ConnId, Vec<u8>, usize),
    /// A datagram on the DHT or the LSD socket, and its sender ([`shoal_core::Input::Datagram`]).
    Datagram(Socket, SocketAddr, Vec<u8>),
    /// A UDP tracker exchange's datagram, or why there is none ([`shoal_core::Input::Exchange`]).
    Exchange(ExchangeId, Result<Vec<u8>, TransportError>),
    /// A bootstrap host name resolved, empty if it failed ([`shoal_core::Input::Resolved`]).
    Resolved(Vec<SocketAddr>),
    /// A peer connected to a listener.
    Incoming(R::Stream, SocketAddr),
    /// A torrent's files are mapped (and empty ones created): it can join the engine.
    /// (Boxed: a storage is large, and every input is moved through the channel.)
    Prepared(Box<AddOptions>, Box<Result<Prepared, StorageError>>, Reply<Result<TorrentId, SessionError>>),
}

/// A torrent's storage, and whether any of its files existed before.
pub(crate) struct Prepared {
    /// The torrent's files.
    pub(crate) storage: Storage,
    /// Whether there is data to check.
    pub(crate) existed: bool,
}
