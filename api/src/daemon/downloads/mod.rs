//! The daemon's downloads: the list the REST API shows and changes, backed by the engine and
//! by resume data in `<state>/dlcheckpoints`.
//!
//! A download is always in the list, whatever happens to it in the engine: while its storage
//! is being set up, while it waits for anonymity it cannot have, after an error that kept it
//! from starting. Its [`Phase`] says which.
//!
//! One task owns the list ([`machine`]); a [`Library`] is a handle that sends it requests and
//! awaits the answers, so there are no locks and changes of one download never interleave.

pub mod fs;
pub mod handlers;
pub mod json;
mod machine;
pub mod model;
pub mod persist;
pub mod stream;
pub mod tree;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_channel::Sender;
use shoal_core::{InfoHash, Metainfo, TorrentId};
use shoal_smol::Handle;

use super::events::EventBus;
use super::store::{entry::TorrentFacts, Store};
use crate::rt::{Rt, Task};
use machine::{Add, Change, Machine, Msg, Outcome, Parts, Request};
pub use model::{AddRequest, Download, DownloadError, Phase, Snapshot, NO_ANONYMITY};
use persist::Checkpoints;

/// File in the state directory that says the last run ended cleanly.
const CLEAN_MARKER: &str = "clean_shutdown";

/// A handle to the download list: cheap to clone, usable from any task.
#[derive(Clone)]
pub struct Library {
    mailbox: Sender<Msg>,
    session: Handle,
    store: Arc<Store>,
    state_dir: PathBuf,
    checkpoints: Checkpoints,
    rt: Rt,
}

impl Library {
    /// An empty list over the checkpoints of `state_dir`, and the task that owns it (the list
    /// is gone when the task is dropped).
    pub async fn start(
        state_dir: &Path,
        session: Handle,
        events: Arc<EventBus>,
        store: Arc<Store>,
        rt: Rt,
    ) -> Result<(Library, Task), String> {
        let checkpoints = Checkpoints::open(state_dir)?;
        // Present only after a clean shutdown; gone while the daemon runs.
        let marker = state_dir.join(CLEAN_MARKER);
        let crashed = !marker.exists();
        let _ = std::fs::remove_file(&marker);
        let (mailbox, inbox) = async_channel::unbounded();
        let engine_events = session.subscribe().await;
        let machine = Machine::new(Parts {
            session: session.clone(),
            events,
            store: store.clone(),
            rt,
            me: mailbox.clone(),
            checkpoints: checkpoints.clone(),
            crashed,
        });
        let task = rt.spawn(machine.run(inbox, engine_events));
        Ok((Library { mailbox, session, store, state_dir: state_dir.to_path_buf(), checkpoints, rt }, task))
    }

    /// Sends a request and waits for its answer.
    async fn ask<T>(&self, make: impl FnOnce(Sender<T>) -> Request) -> Option<T> {
        let (tx, rx) = async_channel::bounded(1);
        self.mailbox.send(Msg::Ask(make(tx))).await.ok()?;
        rx.recv().await.ok()
    }

    fn tell(&self, request: Request) {
        let _ = self.mailbox.try_send(Msg::Ask(request));
    }

    async fn change(&self, ih: &InfoHash, change: Change) -> Outcome {
        let ih = *ih;
        self.ask(|r| Request::Change(ih, change, r)).await.unwrap_or(Err(DownloadError::Unknown))
    }

    /// Records a clean shutdown (after the last checkpoints): the next start trusts them.
    pub fn mark_clean(&self) {
        if let Err(e) = super::fsutil::write_atomic(&self.state_dir.join(CLEAN_MARKER), b"") {
            eprintln!("shoal daemon: cannot record the clean shutdown: {e}");
        }
    }

    /// A copy of one download.
    pub async fn get(&self, ih: &InfoHash) -> Option<Download> {
        let ih = *ih;
        self.ask(|r| Request::Get(ih, r)).await.flatten()
    }

    /// Whether a download exists.
    pub async fn exists(&self, ih: &InfoHash) -> bool {
        self.get(ih).await.is_some()
    }

    /// Notes `id`, the hidden torrent with which `/torrentinfo` fetches the metadata of `ih`.
    pub fn probe_started(&self, ih: InfoHash, id: TorrentId) {
        self.tell(Request::ProbeStarted(ih, id));
    }

    /// The hidden torrent with which `/torrentinfo` is fetching the metadata of `ih`, if any.
    pub async fn probe(&self, ih: &InfoHash) -> Option<TorrentId> {
        let ih = *ih;
        self.ask(|r| Request::Probe(ih, r)).await.flatten()
    }

    /// Ends the probe `id` of `ih`: true when it is still the caller's to remove from the engine
    /// (false when a download of the same magnet took its place).
    pub async fn probe_ended(&self, ih: &InfoHash, id: TorrentId) -> bool {
        let ih = *ih;
        self.ask(|r| Request::ProbeEnded(ih, id, r)).await.unwrap_or(false)
    }

    /// `(total, loaded)` checkpoints of the start-up load.
    pub async fn checkpoint_progress(&self) -> (usize, usize) {
        self.ask(Request::Progress).await.unwrap_or_default()
    }

    /// The downloads (in insertion order) with their figures; `filter` picks which.
    pub async fn snapshots(&self, filter: impl Fn(&InfoHash) -> bool, with_peers: bool) -> Vec<Snapshot> {
        let mut list = self.ask(Request::List).await.unwrap_or_default();
        list.retain(|d| filter(&d.info_hash));
        let ids: Vec<TorrentId> = list.iter().filter_map(|d| d.torrent_id()).collect();
        let mut stats = self.session.stats_many(ids).await.into_iter();
        let mut out = Vec::with_capacity(list.len());
        for download in list {
            let (stats, peers) = match download.torrent_id() {
                Some(id) => {
                    let peers = if with_peers { Some(self.session.peers(id).await) } else { None };
                    (stats.next().flatten(), peers)
                }
                None => (None, with_peers.then(Vec::new)),
            };
            out.push(Snapshot { download, stats, peers });
        }
        out
    }

    /// Reads every checkpoint and starts its download (stopped ones stay stopped), one after
    /// another in the background. Returns once the first is listed, so that the REST API,
    /// started next, never shows an empty list for a state directory with downloads.
    pub async fn load(&self) {
        let checkpoints = self.checkpoints.clone();
        let (saved, warnings) = self.rt.unblock(move || checkpoints.load_all()).await;
        for w in warnings {
            eprintln!("shoal daemon: {w}");
        }
        self.ask(|reply| Request::Load(saved, reply)).await;
    }

    /// Adds a download (or returns the existing one with the same info-hash). Returns the
    /// info-hash once its resume data is written; the files are set up in the background.
    pub async fn add(&self, req: AddRequest) -> Result<InfoHash, DownloadError> {
        let meta = Metainfo::from_bytes(&req.torrent).map_err(|e| DownloadError::Failed(e.to_string()))?;
        if let Some(sel) = &req.selected_files {
            if sel.iter().any(|&i| i >= meta.info.files.len()) {
                return Err(DownloadError::Invalid("index out of range".into()));
            }
        }
        let torrent = req.torrent.clone();
        let facts = TorrentFacts::of(&meta);
        let ih = self.register(meta.info_hash, req, Some((meta, torrent)), None).await?;
        self.store.record(facts);
        Ok(ih)
    }

    /// Adds a download from a magnet link (or returns the existing one): it waits in METADATA
    /// until peers have sent the torrent's metadata.
    pub async fn add_magnet(&self, uri: &str, req: AddRequest) -> Result<InfoHash, DownloadError> {
        let magnet = shoal_core::magnet::Magnet::parse(uri).map_err(|e| DownloadError::Invalid(e.to_string()))?;
        self.register(magnet.info_hash, req, None, Some(uri.to_string())).await
    }

    async fn register(
        &self,
        info_hash: InfoHash,
        req: AddRequest,
        torrent: Option<(Metainfo, Vec<u8>)>,
        magnet: Option<String>,
    ) -> Result<InfoHash, DownloadError> {
        self.ask(|reply| Request::Add(Box::new(Add { info_hash, req, torrent, magnet, reply })))
            .await
            .unwrap_or(Err(DownloadError::Failed("the daemon is shutting down".into())))
    }

    /// Stops (pauses) a download; it stays stopped across restarts.
    pub async fn stop(&self, ih: &InfoHash) -> Result<(), DownloadError> {
        self.change(ih, Change::Stop).await
    }

    /// Resumes a download (also one stopped on an error, which is tried again).
    pub async fn resume(&self, ih: &InfoHash) -> Result<(), DownloadError> {
        self.change(ih, Change::Resume).await
    }

    /// Checks the download's data again.
    pub async fn recheck(&self, ih: &InfoHash) -> Result<(), DownloadError> {
        self.change(ih, Change::Recheck).await
    }

    /// Sets the wanted files.
    pub async fn set_selected(&self, ih: &InfoHash, files: Vec<usize>) -> Result<(), DownloadError> {
        self.change(ih, Change::Select(files)).await
    }

    /// Changes the anonymity hops: 0 downloads directly, more waits for circuits we lack.
    pub async fn set_hops(&self, ih: &InfoHash, hops: u32) -> Result<(), DownloadError> {
        self.change(ih, Change::Hops(hops)).await
    }

    /// Turns streaming mode on (sequential download of `file`) or off.
    pub async fn set_vod(&self, ih: &InfoHash, on: bool, file: Option<usize>) -> Result<(), DownloadError> {
        self.change(ih, Change::Vod(on, file)).await
    }

    /// Moves the files to `dest` (an existing directory) and continues from there.
    pub async fn move_storage(&self, ih: &InfoHash, dest: PathBuf) -> Result<(), DownloadError> {
        self.change(ih, Change::Move(dest)).await
    }

    /// Removes a download, and its files if asked.
    pub async fn remove(&self, ih: &InfoHash, remove_data: bool) -> Result<(), DownloadError> {
        self.change(ih, Change::Remove { remove_data }).await
    }

    /// Checkpoints the downloads whose verified pieces changed since their last checkpoint.
    pub async fn checkpoint_changed(&self) {
        self.ask(Request::CheckpointChanged).await;
    }

    /// Checkpoints every download and waits until all are written (at shutdown).
    pub async fn checkpoint_all(&self) {
        self.ask(Request::CheckpointAll).await;
    }

    /// Destinations of the downloads, for the free-space monitor.
    pub async fn destinations(&self) -> Vec<PathBuf> {
        let list = self.ask(Request::List).await.unwrap_or_default();
        let mut dirs: Vec<PathBuf> = list.into_iter().map(|d| d.resume.destination).collect();
        dirs.sort();
        dirs.dedup();
        dirs
    }

    /// The expanded directories of a download's tree view.
    pub async fn expanded(&self, ih: &InfoHash) -> BTreeSet<String> {
        let ih = *ih;
        self.ask(|r| Request::Expanded(ih, r)).await.unwrap_or_default()
    }

    /// Changes the expanded directories of a download's tree view.
    pub fn update_expanded(&self, ih: &InfoHash, f: impl FnOnce(&mut BTreeSet<String>) + Send + 'static) {
        self.tell(Request::UpdateExpanded(*ih, Box::new(f)));
    }

    /// The session handle.
    pub fn session(&self) -> &Handle {
        &self.session
    }
}
