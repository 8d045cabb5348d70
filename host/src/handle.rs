//! The handle that drives a session from any task or thread.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_channel::{Receiver, Sender};
use shoal_core::health::HealthReport;
use shoal_core::{DhtTorrentStatus, Engine, EngineError, Event, FilePriority, PeerStats, TorrentStats};
use shoal_core::{InfoHash, Instant, TorrentId};

use crate::association::{ProxyUdpReport, SharedReport};
use crate::command::{Command, Reply};
use crate::portmap::PortMapReport;
use crate::session::SessionError;
use crate::session::{AddOptions, Checkpoint, MagnetOptions};

/// A cloneable handle to a running session; its methods work from any executor.
#[derive(Clone)]
pub struct Handle {
    commands: Sender<Command>,
    /// What port mapping reports, when it runs.
    port_mapping: Option<Arc<Mutex<PortMapReport>>>,
    /// What the DHT/uTP association with the proxy reports, when there is one.
    proxy_udp: Option<SharedReport>,
}

impl Handle {
    /// A handle sending to the engine task that receives `commands`.
    pub(crate) fn new(commands: Sender<Command>, port_mapping: Option<Arc<Mutex<PortMapReport>>>) -> Handle {
        Handle { commands, port_mapping, proxy_udp: None }
    }

    /// This handle, showing `report` as [`Handle::proxy_udp`].
    pub(crate) fn with_proxy_udp(mut self, report: Option<SharedReport>) -> Handle {
        self.proxy_udp = report;
        self
    }

    /// What the DHT/uTP association with the SOCKS5 proxy has done; `None` without a proxy
    /// (or with the DHT and uTP both off).
    pub fn proxy_udp(&self) -> Option<ProxyUdpReport> {
        let shared = self.proxy_udp.as_ref()?;
        Some(shared.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    /// What port mapping (UPnP, NAT-PMP) has done; `None` when it is off.
    pub fn port_mapping(&self) -> Option<PortMapReport> {
        let shared = self.port_mapping.as_ref()?;
        Some(shared.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    /// Sends the command `make` builds and waits for its answer; `None` once the session has
    /// stopped.
    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Option<T> {
        let (tx, rx) = async_channel::bounded(1);
        self.commands.send(make(tx)).await.ok()?;
        rx.recv().await.ok()
    }

    /// Runs `call` on the engine inside its task and returns what it returns; `None` once the
    /// session has stopped.
    async fn call<T: Send + 'static>(
        &self,
        call: impl FnOnce(&mut Engine, Instant) -> T + Send + 'static,
    ) -> Option<T> {
        self.ask(|reply| {
            Command::Engine(Box::new(move |engine, now| {
                let _ = reply.try_send(call(engine, now));
            }))
        })
        .await
    }

    /// [`Handle::call`] for an engine command that can fail; a stopped session fails too.
    async fn try_call(
        &self,
        call: impl FnOnce(&mut Engine, Instant) -> Result<(), EngineError> + Send + 'static,
    ) -> Result<(), SessionError> {
        self.call(call).await.ok_or(SessionError::Stopped)?.map_err(Into::into)
    }

    /// Adds a torrent. Its files are mapped under the destination; existing data is checked.
    pub async fn add(&self, opts: AddOptions) -> Result<TorrentId, SessionError> {
        self.ask(|r| Command::Add(Box::new(opts), r)).await.unwrap_or(Err(SessionError::Stopped))
    }

    /// Adds a magnet link: metadata first (from peers), then the download. Data already under
    /// the destination is checked once the files are known.
    pub async fn add_magnet(&self, opts: MagnetOptions) -> Result<TorrentId, SessionError> {
        self.ask(|r| Command::AddMagnet(Box::new(opts), r)).await.unwrap_or(Err(SessionError::Stopped))
    }

    /// Pauses a torrent.
    pub async fn pause(&self, t: TorrentId) -> Result<(), SessionError> {
        self.try_call(move |e, now| e.pause(t, now)).await
    }

    /// Resumes a torrent.
    pub async fn resume(&self, t: TorrentId) -> Result<(), SessionError> {
        self.try_call(move |e, now| e.resume(t, now)).await
    }

    /// Checks a torrent's data again.
    pub async fn recheck(&self, t: TorrentId) -> Result<(), SessionError> {
        self.ask(|r| Command::Recheck(t, r)).await.unwrap_or(Err(SessionError::Stopped))
    }

    /// Removes a torrent (its files stay).
    pub async fn remove(&self, t: TorrentId) -> Result<(), SessionError> {
        self.try_call(move |e, now| e.remove(t, now)).await
    }

    /// Adds peers to dial.
    pub async fn add_peers(&self, t: TorrentId, peers: Vec<SocketAddr>) -> Result<(), SessionError> {
        self.try_call(move |e, now| e.add_peers(t, &peers, now)).await
    }

    /// Sets a file's priority.
    pub async fn set_file_priority(&self, t: TorrentId, file: usize, p: FilePriority) -> Result<(), SessionError> {
        self.ask(|r| Command::SetFilePriority(t, file, p, r)).await.unwrap_or(Err(SessionError::Stopped))
    }

    /// A snapshot of a torrent's figures.
    pub async fn stats(&self, t: TorrentId) -> Option<TorrentStats> {
        self.call(move |e, _| e.stats(t)).await.flatten()
    }

    /// Snapshots of many torrents at once (one trip to the engine task), in the order asked.
    pub async fn stats_many(&self, ts: Vec<TorrentId>) -> Vec<Option<TorrentStats>> {
        let n = ts.len();
        self.call(move |e, _| ts.into_iter().map(|t| e.stats(t)).collect()).await.unwrap_or_else(|| vec![None; n])
    }

    /// Whether a torrent has a piece verified on disk (false for an unknown torrent).
    pub async fn has_piece(&self, t: TorrentId, piece: u32) -> bool {
        self.call(move |e, _| e.has_piece(t, piece).unwrap_or(false)).await.unwrap_or(false)
    }

    /// Ids of all torrents.
    pub async fn torrents(&self) -> Vec<TorrentId> {
        self.call(|e, _| e.torrents()).await.unwrap_or_default()
    }

    /// Snapshots of a torrent's peers.
    pub async fn peers(&self, t: TorrentId) -> Vec<PeerStats> {
        self.call(move |e, _| e.peers(t)).await.unwrap_or_default()
    }

    /// The torrent's verified pieces once every write so far is on stable storage (fsync).
    pub async fn checkpoint(&self, t: TorrentId) -> Option<Checkpoint> {
        self.ask(|r| Command::Checkpoint(t, r)).await.flatten()
    }

    /// Downloads the torrent's pieces in order (streaming), or rarest first again.
    pub async fn set_sequential(&self, t: TorrentId, on: bool) -> Result<(), SessionError> {
        self.try_call(move |e, now| e.set_sequential(t, on, now)).await
    }

    /// Fetches `piece` and the few after it before anything else (a stream's read position);
    /// `None` ends that.
    pub async fn set_deadline_piece(&self, t: TorrentId, piece: Option<u32>) -> Result<(), SessionError> {
        self.try_call(move |e, now| e.set_deadline_piece(t, piece, now)).await
    }

    /// Session-wide payload rate limits in bytes per second (0 = unlimited).
    pub async fn set_rate_limits(&self, download: u64, upload: u64) {
        self.call(move |e, now| e.set_rate_limits(download, upload, now)).await;
    }

    /// The DHT's routing table, to save for the next start; `None` when the DHT is off.
    pub async fn dht_snapshot(&self) -> Option<Vec<u8>> {
        self.call(|e, _| e.dht_snapshot()).await.flatten()
    }

    /// What the DHT did for a torrent; `None` when the DHT is off.
    pub async fn dht_status(&self, t: TorrentId) -> Option<DhtTorrentStatus> {
        self.call(move |e, _| e.dht_status(t)).await.flatten()
    }

    /// Checks the health of any torrent with its `trackers` (announce URLs) and waits for the
    /// report, at most `timeout` ([`Engine::check_health`]). Subscribers also get it as
    /// [`Event::HealthChecked`].
    pub async fn check_health(
        &self,
        info_hash: InfoHash,
        trackers: Vec<String>,
        timeout: Duration,
    ) -> Result<HealthReport, SessionError> {
        self.ask(|r| Command::CheckHealth(info_hash, trackers, timeout, r)).await.unwrap_or(Err(SessionError::Stopped))
    }

    /// A stream of engine events from now on.
    pub async fn subscribe(&self) -> Receiver<Event> {
        let (tx, rx) = async_channel::unbounded();
        let _ = self.commands.send(Command::Subscribe(tx)).await;
        rx
    }

    /// Stops cleanly: `stopped` to trackers, pending writes finished, files flushed.
    pub async fn shutdown(&self) {
        let _ = self.ask(Command::Shutdown).await;
    }
}
