//! A session's settings, its errors, and the handle that drives it from any task or thread.

use async_channel::{Receiver, Sender};
use shoal_core::engine::{Config, EngineError, Event, FilePriority, PeerStats, TorrentStats};
use shoal_core::health::HealthReport;
use shoal_core::{Metainfo, TorrentId};
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::disk::StorageError;

/// How to run a session.
#[derive(Clone, Debug, Default)]
pub struct SessionConfig {
    /// The engine's tunables (`listen_port` among them).
    pub engine: Config,
    /// Addresses to accept peers on; empty means `0.0.0.0` and `[::]` on `engine.listen_port`.
    pub listen: Vec<SocketAddr>,
    /// Seed of the engine's randomness; `None` draws one from the OS.
    pub seed: Option<u64>,
    /// The DHT, if on (UDP on the listen addresses).
    pub dht: Option<DhtSettings>,
    /// Local Service Discovery (BEP 14): multicast on UDP 6771 of the LAN (or of loopback when
    /// every listen address is loopback). Turns on [`Config::lsd`] when the socket is set up.
    pub lsd: bool,
    /// Let new files grow sparse as pieces arrive, instead of allocating each wanted file's
    /// full size when it is first written (Transmission's "fast" preallocation, the default).
    pub sparse_files: bool,
}

/// How to run the DHT.
#[derive(Clone, Debug, Default)]
pub struct DhtSettings {
    /// Protocol settings, bootstrap host names among them.
    pub config: shoal_core::dht::DhtConfig,
    /// Nodes to start from besides the bootstrap hosts (e.g. other nodes on loopback).
    pub nodes: Vec<SocketAddr>,
    /// A routing table saved by [`Handle::dht_snapshot`] in an earlier run.
    pub saved: Option<Vec<u8>>,
}

/// Errors of session operations.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Binding a listening socket failed.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The engine refused the command.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Setting up the torrent's files failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The session has stopped.
    #[error("the session has stopped")]
    Stopped,
    /// Starting the disk and hash threads failed.
    #[error("cannot start worker threads: {0}")]
    Threads(std::io::Error),
    /// The engine refused a health check.
    #[error(transparent)]
    Health(#[from] shoal_core::engine::HealthCheckError),
}

/// How to add a torrent.
#[derive(Clone, Debug)]
pub struct AddOptions {
    /// The torrent.
    pub metainfo: Metainfo,
    /// The directory its files go under.
    pub destination: PathBuf,
    /// Start paused.
    pub paused: bool,
    /// Peers to dial besides the trackers'.
    pub peers: Vec<SocketAddr>,
    /// Per-file priorities.
    pub file_priorities: Vec<FilePriority>,
    /// Pieces known verified (resume data); skips the check.
    pub have: Option<shoal_core::Bitfield>,
    /// With `have`: still check the other pieces whose data exists (resume data from before a
    /// crash).
    pub verify_unverified: bool,
}

impl AddOptions {
    /// Defaults: check existing data, start at once.
    pub fn new(metainfo: Metainfo, destination: PathBuf) -> Self {
        AddOptions {
            metainfo,
            destination,
            paused: false,
            peers: Vec::new(),
            file_priorities: Vec::new(),
            have: None,
            verify_unverified: false,
        }
    }
}

/// How to add a magnet link: the files are mapped under `destination` once the metadata
/// has arrived from peers (watch for [`Event::MetadataReceived`]).
#[derive(Clone, Debug)]
pub struct MagnetOptions {
    /// The parsed link.
    pub magnet: shoal_core::magnet::Magnet,
    /// The directory its files go under.
    pub destination: PathBuf,
    /// Start paused.
    pub paused: bool,
    /// Peers to dial besides the link's and the trackers'.
    pub peers: Vec<SocketAddr>,
}

/// Where the engine task sends a command's answer.
pub(crate) type Reply<T> = Sender<T>;

/// Commands from handles to the engine task.
pub(crate) enum Command {
    Add(Box<AddOptions>, Reply<Result<TorrentId, SessionError>>),
    AddMagnet(Box<MagnetOptions>, Reply<Result<TorrentId, SessionError>>),
    Pause(TorrentId, Reply<Result<(), SessionError>>),
    Resume(TorrentId, Reply<Result<(), SessionError>>),
    Recheck(TorrentId, Reply<Result<(), SessionError>>),
    Remove(TorrentId, Reply<Result<(), SessionError>>),
    AddPeers(TorrentId, Vec<SocketAddr>, Reply<Result<(), SessionError>>),
    SetFilePriority(TorrentId, usize, FilePriority, Reply<Result<(), SessionError>>),
    Stats(TorrentId, Reply<Option<TorrentStats>>),
    StatsMany(Vec<TorrentId>, Reply<Vec<Option<TorrentStats>>>),
    HasPiece(TorrentId, u32, Reply<bool>),
    List(Reply<Vec<TorrentId>>),
    Peers(TorrentId, Reply<Vec<PeerStats>>),
    Checkpoint(TorrentId, Reply<Option<Checkpoint>>),
    SetSequential(TorrentId, bool, Reply<Result<(), SessionError>>),
    SetDeadline(TorrentId, Option<u32>, Reply<Result<(), SessionError>>),
    SetRateLimits(u64, u64, Reply<()>),
    DhtSnapshot(Reply<Option<Vec<u8>>>),
    DhtStatus(TorrentId, Reply<Option<shoal_core::engine::DhtTorrentStatus>>),
    Subscribe(Sender<Event>),
    CheckHealth(shoal_core::InfoHash, Vec<String>, std::time::Duration, Reply<Result<HealthReport, SessionError>>),
    Shutdown(Reply<()>),
}

/// A torrent's verified pieces, taken after its written data reached stable storage: resume
/// data built from it never claims a piece a crash could lose.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// The torrent's phase when the snapshot was taken.
    pub state: shoal_core::engine::TorrentState,
    /// Pieces verified and written (and synced) by then.
    pub have: shoal_core::Bitfield,
}

/// A cloneable handle to a running session; its methods work from any executor.
#[derive(Clone)]
pub struct Handle {
    pub(crate) commands: Sender<Command>,
}

async fn ask<T>(commands: &Sender<Command>, make: impl FnOnce(Reply<T>) -> Command) -> Option<T> {
    let (tx, rx): (Sender<T>, Receiver<T>) = async_channel::bounded(1);
    commands.send(make(tx)).await.ok()?;
    rx.recv().await.ok()
}

impl Handle {
    /// Adds a torrent. Its files are mapped under the destination; existing data is checked.
    pub async fn add(&self, opts: AddOptions) -> Result<TorrentId, SessionError> {
        ask(&self.commands, |r| Command::Add(Box::new(opts), r)).await.unwrap_or(Err(SessionError::Stopped))
    }

    /// Adds a magnet link: metadata first (from peers), then the download. Data already under
    /// the destination is checked once the files are known.
    pub async fn add_magnet(&self, opts: MagnetOptions) -> Result<TorrentId, SessionError> {
        ask(&self.commands, |r| Command::AddMagnet(Box::new(opts), r)).await.unwrap_or(Err(SessionError::Stopped))
    }

    /// Pauses a torrent.
    pub async fn pause(&self, t: TorrentId) -> Result<(), SessionError> {
        ask(&self.commands, |r| Command::Pause(t, r)).await.unwrap_or(Err(SessionError::Stopped))
    }

    /// Resumes a torrent.
    pub async fn resume(&self, t: TorrentId) -> Result<(), SessionError> {
        ask(&self.commands, |r| Command::Resume(t, r)).await.unwrap_or(Err(SessionError::Stopped))
    }

    /// Checks a torrent's data again.
    pub async fn recheck(&self, t: TorrentId) -> Result<(), SessionError> {
        ask(&self.commands, |r| Command::Recheck(t, r)).await.unwrap_or(Err(SessionError::Stopped))
    }

    /// Removes a torrent (its files stay).
    pub async fn remove(&self, t: TorrentId) -> Result<(), SessionError> {
        ask(&self.commands, |r| Command::Remove(t, r)).await.unwrap_or(Err(SessionError::Stopped))
    }

    /// Adds peers to dial.
    pub async fn add_peers(&self, t: TorrentId, peers: Vec<SocketAddr>) -> Result<(), SessionError> {
        ask(&self.commands, |r| Command::AddPeers(t, peers, r)).await.unwrap_or(Err(SessionError::Stopped))
    }

    /// Sets a file's priority.
    pub async fn set_file_priority(&self, t: TorrentId, file: usize, p: FilePriority) -> Result<(), SessionError> {
        ask(&self.commands, |r| Command::SetFilePriority(t, file, p, r)).await.unwrap_or(Err(SessionError::Stopped))
    }

    /// A snapshot of a torrent's figures.
    pub async fn stats(&self, t: TorrentId) -> Option<TorrentStats> {
        ask(&self.commands, |r| Command::Stats(t, r)).await.flatten()
    }

    /// Snapshots of many torrents at once (one trip to the engine task), in the order asked.
    pub async fn stats_many(&self, ts: Vec<TorrentId>) -> Vec<Option<TorrentStats>> {
        let n = ts.len();
        ask(&self.commands, |r| Command::StatsMany(ts, r)).await.unwrap_or_else(|| vec![None; n])
    }

    /// Whether a torrent has a piece verified on disk (false for an unknown torrent).
    pub async fn has_piece(&self, t: TorrentId, piece: u32) -> bool {
        ask(&self.commands, |r| Command::HasPiece(t, piece, r)).await.unwrap_or(false)
    }

    /// Ids of all torrents.
    pub async fn torrents(&self) -> Vec<TorrentId> {
        ask(&self.commands, Command::List).await.unwrap_or_default()
    }

    /// Snapshots of a torrent's peers.
    pub async fn peers(&self, t: TorrentId) -> Vec<PeerStats> {
        ask(&self.commands, |r| Command::Peers(t, r)).await.unwrap_or_default()
    }

    /// The torrent's verified pieces once every write so far is on stable storage (fsync).
    pub async fn checkpoint(&self, t: TorrentId) -> Option<Checkpoint> {
        ask(&self.commands, |r| Command::Checkpoint(t, r)).await.flatten()
    }

    /// Downloads the torrent's pieces in order (streaming), or rarest first again.
    pub async fn set_sequential(&self, t: TorrentId, on: bool) -> Result<(), SessionError> {
        ask(&self.commands, |r| Command::SetSequential(t, on, r)).await.unwrap_or(Err(SessionError::Stopped))
    }

    /// Fetches `piece` and the few after it before anything else (a stream's read position);
    /// `None` ends that.
    pub async fn set_deadline_piece(&self, t: TorrentId, piece: Option<u32>) -> Result<(), SessionError> {
        ask(&self.commands, |r| Command::SetDeadline(t, piece, r)).await.unwrap_or(Err(SessionError::Stopped))
    }

    /// Session-wide payload rate limits in bytes per second (0 = unlimited).
    pub async fn set_rate_limits(&self, download: u64, upload: u64) {
        let _ = ask(&self.commands, |r| Command::SetRateLimits(download, upload, r)).await;
    }

    /// The DHT's routing table, to save for the next start; `None` when the DHT is off.
    pub async fn dht_snapshot(&self) -> Option<Vec<u8>> {
        ask(&self.commands, Command::DhtSnapshot).await.flatten()
    }

    /// What the DHT did for a torrent; `None` when the DHT is off.
    pub async fn dht_status(&self, t: TorrentId) -> Option<shoal_core::engine::DhtTorrentStatus> {
        ask(&self.commands, |r| Command::DhtStatus(t, r)).await.flatten()
    }

    /// Checks the health of any torrent with its `trackers` (announce URLs) and waits for the
    /// report, at most `timeout` ([`shoal_core::Engine::check_health`]). Subscribers also get it
    /// as [`Event::HealthChecked`].
    pub async fn check_health(
        &self,
        info_hash: shoal_core::InfoHash,
        trackers: Vec<String>,
        timeout: std::time::Duration,
    ) -> Result<HealthReport, SessionError> {
        ask(&self.commands, |r| Command::CheckHealth(info_hash, trackers, timeout, r))
            .await
            .unwrap_or(Err(SessionError::Stopped))
    }

    /// A stream of engine events from now on.
    pub async fn subscribe(&self) -> Receiver<Event> {
        let (tx, rx) = async_channel::unbounded();
        let _ = self.commands.send(Command::Subscribe(tx)).await;
        rx
    }

    /// Stops cleanly: `stopped` to trackers, pending writes finished, files flushed.
    pub async fn shutdown(&self) {
        let _ = ask(&self.commands, Command::Shutdown).await;
    }
}
