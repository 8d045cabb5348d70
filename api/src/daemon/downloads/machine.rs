//! The daemon's downloads: the list the REST API shows and changes, backed by the engine and
//! by resume data in `<state>/dlcheckpoints`.
//!
//! A download is always in the list, whatever happens to it in the engine: while its storage
//! is being set up, while it waits for anonymity it cannot have, after an error that kept it
//! from starting. Its [`Phase`] says which.

pub mod checkpoint;
pub mod handlers;
pub mod json;
pub mod stream;
pub mod tree;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::json;
use shoal_core::engine::{Event, FilePriority, PeerStats, TorrentState, TorrentStats};
use shoal_core::{Bitfield, FileLayout, InfoHash, Metainfo, TorrentId};
use shoal_smol::{AddOptions, Handle};

use super::events::EventBus;
use super::store::{entry::TorrentFacts, Store};
use checkpoint::{Checkpoints, ResumeData, Saved};

/// File in the state directory that says the last run ended cleanly.
const CLEAN_MARKER: &str = "clean_shutdown";

/// Why a download is refused or an operation fails.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// No download with that info-hash.
    #[error("this download does not exist")]
    Unknown,
    /// A request that makes no sense for the download.
    #[error("{0}")]
    Invalid(String),
    /// The engine or the disk failed.
    #[error("{0}")]
    Failed(String),
}

/// The text shown for downloads asked to be anonymous: we have no tunnels, and a download
/// asked to be anonymous must never silently go direct.
pub const NO_ANONYMITY: &str =
    "anonymous downloads (anon_hops > 0) are not available in Shoal: the download waits; set anon_hops to 0 to download directly";

/// Where a download stands besides the engine's own states.
#[derive(Clone, Debug, PartialEq)]
pub enum Phase {
    /// Its files are being set up.
    Allocating,
    /// In the engine.
    Engine(TorrentId),
    /// Waiting for anonymity (`hops > 0`), which Shoal does not provide.
    Circuits,
    /// Could not be started: the reason.
    Failed(String),
    /// Its files are being moved to another directory.
    Moving,
}

/// One download.
#[derive(Clone)]
pub struct Download {
    /// Its info-hash.
    pub info_hash: InfoHash,
    /// The torrent; `None` while a magnet's metadata is being fetched.
    pub meta: Option<Arc<Metainfo>>,
    /// The torrent file as added, or as built from a magnet's metadata (served by `/torrent`).
    pub torrent: Option<Arc<Vec<u8>>>,
    /// What persists (totals there are those up to the current engine session).
    pub resume: ResumeData,
    /// Where it stands.
    pub phase: Phase,
    /// Pieces in the last checkpoint written, to skip writing an unchanged one.
    saved_pieces: Option<u32>,
    /// The checkpoint's verified pieces, while a check after a crash looks for more (their
    /// bytes are then credited as downloaded: see [`ResumeData::credit_found_after_crash`]).
    crash_base: Option<Bitfield>,
}

impl Download {
    /// The torrent's name; for a magnet without metadata its `dn`, else the info-hash.
    pub fn name(&self) -> String {
        match (&self.meta, &self.resume.magnet) {
            (Some(m), _) => m.info.name.clone(),
            (None, Some(uri)) => shoal_core::magnet::Magnet::parse(uri)
                .ok()
                .and_then(|m| m.display_name)
                .unwrap_or_else(|| self.info_hash.to_string()),
            (None, None) => self.info_hash.to_string(),
        }
    }

    /// Number of files (0 before a magnet's metadata).
    pub fn file_count(&self) -> usize {
        self.meta.as_ref().map_or(0, |m| m.info.files.len())
    }

    /// The engine's id for it, while it is there.
    pub fn torrent_id(&self) -> Option<TorrentId> {
        match self.phase {
            Phase::Engine(id) => Some(id),
            _ => None,
        }
    }

    /// Number of pieces (0 before a magnet's metadata).
    pub fn piece_count(&self) -> u32 {
        self.meta.as_ref().map_or(0, |m| m.info.pieces.len() as u32)
    }

    /// Whether file `i` is wanted.
    pub fn included(&self, i: usize) -> bool {
        self.resume.selected_files.as_ref().is_none_or(|s| s.contains(&i))
    }

    /// Engine priorities from the selection (and the streamed file, which is always wanted).
    fn priorities(&self) -> Vec<FilePriority> {
        (0..self.file_count())
            .map(|i| {
                let streamed = self.resume.vod_mode == Some(true) && self.resume.vod_file == Some(i);
                if self.included(i) || streamed {
                    FilePriority::Normal
                } else {
                    FilePriority::Skip
                }
            })
            .collect()
    }
}

/// What `PUT /downloads` asks for.
pub struct AddRequest {
    pub torrent: Vec<u8>,
    pub destination: PathBuf,
    pub selected_files: Option<Vec<usize>>,
    pub hops: u32,
    pub safe_seeding: bool,
}

/// A download with the engine's figures, for the REST API.
pub struct Snapshot {
    pub download: Download,
    pub stats: Option<TorrentStats>,
    pub peers: Option<Vec<PeerStats>>,
}

/// The list of downloads.
pub struct Downloads {
    list: Mutex<Vec<Download>>,
    checkpoints: Arc<Checkpoints>,
    session: Handle,
    events: Arc<EventBus>,
    /// Checkpoints found at start-up, and how many of them are loaded.
    total: AtomicUsize,
    loaded: AtomicUsize,
    /// Serialises checkpoint writes so an older snapshot never lands after a newer one.
    write_lock: async_lock::Mutex<()>,
    /// The last run did not shut down cleanly: pieces verified after its last checkpoints may
    /// be on disk, so they are checked rather than downloaded again.
    crashed: bool,
    state_dir: PathBuf,
    /// Expanded directories of each download's file tree view (the PyPI GUI's), not persisted.
    tree_state: Mutex<HashMap<InfoHash, BTreeSet<String>>>,
    /// The hidden torrents of `/torrentinfo` fetching a magnet's metadata, by info-hash.
    probes: Mutex<HashMap<InfoHash, TorrentId>>,
    /// The metadata store: every torrent added gets an entry.
    store: Arc<Store>,
}

fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Downloads {
    /// An empty list over the checkpoints of `state_dir`.
    pub fn new(
        state_dir: &Path,
        session: Handle,
        events: Arc<EventBus>,
        store: Arc<Store>,
    ) -> Result<Downloads, String> {
        Ok(Downloads {
            list: Mutex::new(Vec::new()),
            checkpoints: Arc::new(Checkpoints::open(state_dir)?),
            session,
            events,
            total: AtomicUsize::new(0),
            loaded: AtomicUsize::new(0),
            write_lock: async_lock::Mutex::new(()),
            tree_state: Mutex::new(HashMap::new()),
            probes: Mutex::new(HashMap::new()),
            crashed: {
                // Present only after a clean shutdown; gone while the daemon runs.
                let marker = state_dir.join(CLEAN_MARKER);
                let clean = marker.exists();
                let _ = std::fs::remove_file(&marker);
                !clean
            },
            state_dir: state_dir.to_path_buf(),
            store,
        })
    }

    /// Records a clean shutdown (after the last checkpoints): the next start trusts them.
    pub fn mark_clean(&self) {
        if let Err(e) = super::fsutil::write_atomic(&self.state_dir.join(CLEAN_MARKER), b"") {
            eprintln!("shoal daemon: cannot record the clean shutdown: {e}");
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Download>> {
        self.list.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with<T>(&self, ih: &InfoHash, f: impl FnOnce(&mut Download) -> T) -> Result<T, DownloadError> {
        let mut list = self.lock();
        let d = list.iter_mut().find(|d| d.info_hash == *ih).ok_or(DownloadError::Unknown)?;
        Ok(f(d))
    }

    /// A copy of one download.
    pub fn get(&self, ih: &InfoHash) -> Option<Download> {
        self.lock().iter().find(|d| d.info_hash == *ih).cloned()
    }

    /// Notes `id`, the hidden torrent with which `/torrentinfo` fetches the metadata of `ih`.
    pub fn probe_started(&self, ih: InfoHash, id: TorrentId) {
        self.probes.lock().unwrap_or_else(|e| e.into_inner()).insert(ih, id);
    }

    /// The hidden torrent with which `/torrentinfo` is fetching the metadata of `ih`, if any.
    pub fn probe(&self, ih: &InfoHash) -> Option<TorrentId> {
        self.probes.lock().unwrap_or_else(|e| e.into_inner()).get(ih).copied()
    }

    /// Ends the probe `id` of `ih`: true when it is still the caller's to remove from the engine
    /// (false when a download of the same magnet took its place).
    pub fn probe_ended(&self, ih: &InfoHash, id: TorrentId) -> bool {
        let mut probes = self.probes.lock().unwrap_or_else(|e| e.into_inner());
        match probes.get(ih) {
            Some(&probe) if probe == id => probes.remove(ih).is_some(),
            _ => false,
        }
    }

    /// Whether a download exists.
    pub fn exists(&self, ih: &InfoHash) -> bool {
        self.lock().iter().any(|d| d.info_hash == *ih)
    }

    /// `(total, loaded)` checkpoints of the start-up load.
    pub fn checkpoint_progress(&self) -> (usize, usize) {
        (self.total.load(Ordering::Relaxed), self.loaded.load(Ordering::Relaxed))
    }

    /// The downloads (in insertion order) with their figures; `filter` picks which.
    pub async fn snapshots(&self, filter: impl Fn(&InfoHash) -> bool, with_peers: bool) -> Vec<Snapshot> {
        let list: Vec<Download> = self.lock().iter().filter(|d| filter(&d.info_hash)).cloned().collect();
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

    /// Loads every checkpoint and starts its download (stopped ones stay stopped).
    pub async fn load(&self) {
        let (saved, warnings) = self.checkpoints.load_all();
        for w in warnings {
            eprintln!("shoal daemon: {w}");
        }
        self.total.store(saved.len(), Ordering::Relaxed);
        for Saved { resume, torrent } in saved {
            let Ok(ih) = InfoHash::from_hex(&resume.infohash) else { continue };
            let (torrent, meta) = match torrent {
                Some((t, m)) => {
                    // Downloads added before the store existed get their entry too.
                    self.store.record(TorrentFacts::of(&m));
                    (Some(Arc::new(t)), Some(Arc::new(m)))
                }
                None => (None, None),
            };
            let download = Download {
                info_hash: ih,
                meta,
                torrent,
                phase: Phase::Allocating,
                saved_pieces: None,
                crash_base: None,
                resume,
            };
            self.lock().push(download);
            self.start_with(&ih, true, false).await;
            self.loaded.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Adds a download (or returns the existing one with the same info-hash). Returns the
    /// info-hash at once; the files are set up in the background.
    pub async fn add(self: &Arc<Self>, req: AddRequest) -> Result<InfoHash, DownloadError> {
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
    pub async fn add_magnet(self: &Arc<Self>, uri: &str, req: AddRequest) -> Result<InfoHash, DownloadError> {
        let magnet = shoal_core::magnet::Magnet::parse(uri).map_err(|e| DownloadError::Invalid(e.to_string()))?;
        self.register(magnet.info_hash, req, None, Some(uri.to_string())).await
    }

    /// Saves a new download's resume data (and torrent file, if known), lists it and starts it
    /// in the background; an existing download with the same info-hash is kept as it is.
    async fn register(
        self: &Arc<Self>,
        ih: InfoHash,
        req: AddRequest,
        torrent: Option<(Metainfo, Vec<u8>)>,
        magnet: Option<String>,
    ) -> Result<InfoHash, DownloadError> {
        if self.exists(&ih) {
            return Ok(ih);
        }
        if !req.destination.is_absolute() {
            return Err(DownloadError::Invalid(format!(
                "destination must be an absolute path: {}",
                req.destination.display()
            )));
        }
        let mut resume = ResumeData::new(&ih, req.destination, now_unix());
        resume.selected_files = req.selected_files.filter(|s| !s.is_empty());
        resume.hops = req.hops;
        resume.safe_seeding = req.safe_seeding;
        resume.magnet = magnet;
        let (meta, bytes) = match torrent {
            Some((m, b)) => (Some(Arc::new(m)), Some(Arc::new(b))),
            None => (None, None),
        };
        let (first, file, checkpoints) = (resume.clone(), bytes.clone(), self.checkpoints.clone());
        blocking::unblock(move || {
            if let Some(file) = file {
                checkpoints.save_torrent(&ih, &file)?;
            }
            checkpoints.save(&first)
        })
        .await
        .map_err(|e| DownloadError::Failed(format!("cannot save resume data: {e}")))?;
        {
            let mut list = self.lock();
            if list.iter().any(|d| d.info_hash == ih) {
                return Ok(ih);
            }
            list.push(Download {
                info_hash: ih,
                meta,
                torrent: bytes,
                resume,
                phase: Phase::Allocating,
                saved_pieces: None,
                crash_base: None,
            });
        }
        let this = self.clone();
        smol::spawn(async move { this.start(&ih, false).await }).detach();
        Ok(ih)
    }

    /// Puts a download into the engine (or into `Circuits` when it asks for anonymity), then
    /// checkpoints it.
    async fn start(&self, ih: &InfoHash, from_checkpoint: bool) {
        self.start_with(ih, from_checkpoint, true).await
    }

    /// [`Downloads::start`]; `save` is false when nothing changed since the checkpoint it
    /// was loaded from.
    async fn start_with(&self, ih: &InfoHash, from_checkpoint: bool, save: bool) {
        let Some(d) = self.get(ih) else { return };
        if d.resume.hops > 0 {
            let _ = self.with(ih, |d| d.phase = Phase::Circuits);
            return;
        }
        let _ = self.with(ih, |d| d.phase = Phase::Allocating);
        let dest = d.resume.destination.clone();
        if let Err(e) = blocking::unblock(move || probe_destination(&dest)).await {
            let _ = self.with(ih, |d| d.phase = Phase::Failed(e));
            return;
        }
        let Some(meta) = d.meta.clone() else {
            self.start_magnet(&d).await;
            return;
        };
        let mut have = None;
        if from_checkpoint {
            let (meta, dest, saved) = (meta.clone(), d.resume.destination.clone(), d.resume.clone());
            have = blocking::unblock(move || resume_bitfield(&meta, &dest, &saved)).await;
        }
        let opts = AddOptions {
            metainfo: (*meta).clone(),
            destination: d.resume.destination.clone(),
            paused: d.resume.user_stopped,
            peers: Vec::new(),
            file_priorities: d.priorities(),
            have,
            verify_unverified: from_checkpoint && self.crashed,
        };
        let crash_base = opts.have.clone().filter(|_| opts.verify_unverified);
        let _ = self.with(ih, |d| d.crash_base = crash_base);
        let result = self.session.add(opts).await;
        let orphan = match result {
            Ok(id) => match self.with(ih, |d| d.phase = Phase::Engine(id)) {
                Ok(()) => None,
                // Removed while its files were being set up.
                Err(_) => Some(id),
            },
            Err(e) => {
                let _ = self.with(ih, |d| d.phase = Phase::Failed(e.to_string()));
                None
            }
        };
        if let Some(id) = orphan {
            let _ = self.session.remove(id).await;
            return;
        }
        if d.resume.vod_mode == Some(true) {
            if let Some(id) = self.get(ih).and_then(|d| d.torrent_id()) {
                let _ = self.session.set_sequential(id, true).await;
            }
        }
        if save {
            self.checkpoint(ih).await;
        } else {
            let pieces = self.get(ih).and_then(|d| d.resume.have(d.piece_count())).map(|b| b.count_ones());
            let _ = self.with(ih, |d| d.saved_pieces = pieces);
        }
    }

    /// Puts a magnet download into the engine.
    async fn start_magnet(&self, d: &Download) {
        let ih = d.info_hash;
        let Some(magnet) = d.resume.magnet.as_deref().and_then(|u| shoal_core::magnet::Magnet::parse(u).ok()) else {
            let _ = self.with(&ih, |d| d.phase = Phase::Failed("the magnet link is not readable".into()));
            return;
        };
        let opts = shoal_smol::MagnetOptions {
            magnet,
            destination: d.resume.destination.clone(),
            paused: d.resume.user_stopped,
            peers: Vec::new(),
        };
        // The engine holds one torrent per info-hash: a `/torrentinfo` probe of this magnet (the
        // user added it without waiting for its files) gives way to the download.
        let probe = self.probes.lock().unwrap_or_else(|e| e.into_inner()).remove(&ih);
        if let Some(probe) = probe {
            let _ = self.session.remove(probe).await;
        }
        match self.session.add_magnet(opts).await {
            Ok(id) => {
                if self.with(&ih, |d| d.phase = Phase::Engine(id)).is_err() {
                    let _ = self.session.remove(id).await;
                }
            }
            Err(e) => {
                let _ = self.with(&ih, |d| d.phase = Phase::Failed(e.to_string()));
            }
        }
    }

    /// A magnet's metadata arrived: the download now has a torrent file (saved beside its
    /// resume data) and its file selection applies.
    async fn metadata_arrived(&self, ih: &InfoHash, id: TorrentId, info: &[u8]) {
        let trackers = self
            .get(ih)
            .and_then(|d| d.resume.magnet.clone())
            .and_then(|u| shoal_core::magnet::Magnet::parse(&u).ok())
            .map(|m| m.trackers)
            .unwrap_or_default();
        let torrent = torrent_from_info(info, &trackers);
        let meta = match Metainfo::from_bytes(&torrent) {
            Ok(m) if m.info_hash == *ih => m,
            Ok(_) | Err(_) => {
                eprintln!("shoal daemon: the metadata of {ih} does not make a valid torrent");
                return;
            }
        };
        self.store.record(TorrentFacts::of(&meta));
        let (checkpoints, bytes, hash) = (self.checkpoints.clone(), torrent.clone(), *ih);
        if let Err(e) = blocking::unblock(move || checkpoints.save_torrent(&hash, &bytes)).await {
            eprintln!("shoal daemon: cannot save the torrent of {ih}: {e}");
        }
        let prios = self
            .with(ih, |d| {
                d.meta = Some(Arc::new(meta));
                d.torrent = Some(Arc::new(torrent));
                d.resume.magnet = None;
                if let Some(sel) = &mut d.resume.selected_files {
                    let n = d.meta.as_ref().map_or(0, |m| m.info.files.len());
                    sel.retain(|&i| i < n);
                }
                d.priorities()
            })
            .unwrap_or_default();
        if self.get(ih).is_some_and(|d| d.resume.selected_files.is_some()) {
            for (i, p) in prios.into_iter().enumerate() {
                let _ = self.session.set_file_priority(id, i, p).await;
            }
        }
        self.checkpoint(ih).await;
    }

    /// Takes a download out of the engine and waits until it is gone (its files closed); its
    /// session totals move into the resume data.
    async fn take_out(&self, ih: &InfoHash) -> Result<(), DownloadError> {
        let Some(id) = self.get(ih).and_then(|d| d.torrent_id()) else { return Ok(()) };
        self.checkpoint(ih).await;
        let stats = self.session.stats(id).await;
        let events = self.session.subscribe().await;
        self.session.remove(id).await.map_err(|e| DownloadError::Failed(e.to_string()))?;
        let gone = async {
            while let Ok(e) = events.recv().await {
                if e == (Event::Removed { torrent: id }) {
                    return;
                }
            }
        };
        futures_lite::future::or(gone, async {
            async_io::Timer::after(Duration::from_secs(30)).await;
        })
        .await;
        let _ = self.with(ih, |d| {
            if let Some(s) = &stats {
                d.resume.all_time_upload += s.uploaded;
                d.resume.all_time_download += s.downloaded;
            }
            d.phase = Phase::Allocating;
        });
        Ok(())
    }

    /// Stops (pauses) a download; it stays stopped across restarts.
    pub async fn stop(&self, ih: &InfoHash) -> Result<(), DownloadError> {
        let id = self.with(ih, |d| {
            d.resume.user_stopped = true;
            d.torrent_id()
        })?;
        if let Some(id) = id {
            self.session.pause(id).await.map_err(|e| DownloadError::Failed(e.to_string()))?;
        }
        self.checkpoint(ih).await;
        Ok(())
    }

    /// Resumes a download (also one stopped on an error, which is tried again).
    pub async fn resume(&self, ih: &InfoHash) -> Result<(), DownloadError> {
        let (id, phase) = self.with(ih, |d| {
            d.resume.user_stopped = false;
            (d.torrent_id(), d.phase.clone())
        })?;
        match (id, phase) {
            (Some(id), _) => self.session.resume(id).await.map_err(|e| DownloadError::Failed(e.to_string()))?,
            (None, Phase::Failed(_)) => self.start(ih, true).await,
            _ => {}
        }
        self.checkpoint(ih).await;
        Ok(())
    }

    /// Checks the download's data again.
    pub async fn recheck(&self, ih: &InfoHash) -> Result<(), DownloadError> {
        // A check the user asks for credits nothing (see `crash_base`).
        let id = self.with(ih, |d| {
            d.crash_base = None;
            d.torrent_id()
        })?;
        if let Some(id) = id {
            self.session.recheck(id).await.map_err(|e| DownloadError::Failed(e.to_string()))?;
        }
        // The old bitfield is what is being doubted: forget it until the check is done.
        self.with(ih, |d| {
            d.resume.have = None;
            d.saved_pieces = None;
        })?;
        self.checkpoint(ih).await;
        Ok(())
    }

    /// Sets the wanted files.
    pub async fn set_selected(&self, ih: &InfoHash, files: Vec<usize>) -> Result<(), DownloadError> {
        let (id, prios) = self.with(ih, |d| {
            if files.iter().any(|&i| i >= d.file_count()) {
                return Err(DownloadError::Invalid("index out of range".into()));
            }
            d.resume.selected_files = Some(files);
            Ok((d.torrent_id(), d.priorities()))
        })??;
        if let Some(id) = id {
            for (i, p) in prios.into_iter().enumerate() {
                self.session.set_file_priority(id, i, p).await.map_err(|e| DownloadError::Failed(e.to_string()))?;
            }
        }
        self.checkpoint(ih).await;
        Ok(())
    }

    /// Changes the anonymity hops: 0 downloads directly, more waits for circuits we lack.
    pub async fn set_hops(&self, ih: &InfoHash, hops: u32) -> Result<(), DownloadError> {
        let old = self.with(ih, |d| d.resume.hops)?;
        if old == hops {
            return Ok(());
        }
        if hops > 0 {
            self.take_out(ih).await?;
            self.with(ih, |d| {
                d.resume.hops = hops;
                d.resume.safe_seeding = true;
                d.phase = Phase::Circuits;
            })?;
            self.checkpoint(ih).await;
        } else {
            self.with(ih, |d| d.resume.hops = 0)?;
            self.start(ih, true).await;
        }
        Ok(())
    }

    /// Turns streaming mode on (sequential download of `file`) or off.
    pub async fn set_vod(&self, ih: &InfoHash, on: bool, file: Option<usize>) -> Result<(), DownloadError> {
        let (id, prios) = self.with(ih, |d| {
            if on {
                match file {
                    Some(f) if f < d.file_count() => d.resume.vod_file = Some(f),
                    _ => return Err(DownloadError::Invalid("index out of range".into())),
                }
            }
            d.resume.vod_mode = Some(on);
            Ok((d.torrent_id(), d.priorities()))
        })??;
        if let Some(id) = id {
            let _ = self.session.set_sequential(id, on).await;
            for (i, p) in prios.into_iter().enumerate() {
                let _ = self.session.set_file_priority(id, i, p).await;
            }
        }
        self.checkpoint(ih).await;
        Ok(())
    }

    /// Moves the files to `dest` (an existing directory) and continues from there.
    pub async fn move_storage(&self, ih: &InfoHash, dest: PathBuf) -> Result<(), DownloadError> {
        let d = self.get(ih).ok_or(DownloadError::Unknown)?;
        if d.resume.destination == dest {
            return Ok(());
        }
        let Some(meta) = d.meta.clone() else {
            // Nothing on disk yet: the files will simply go to the new place.
            self.with(ih, |d| d.resume.destination = dest)?;
            self.checkpoint(ih).await;
            return Ok(());
        };
        let was_running = d.torrent_id().is_some();
        self.take_out(ih).await?;
        self.with(ih, |d| d.phase = Phase::Moving)?;
        let (from, to) = (d.resume.destination.clone(), dest.clone());
        let moved = blocking::unblock(move || move_files(&meta, &from, &to)).await;
        match moved {
            Ok(()) => {
                self.with(ih, |d| d.resume.destination = dest)?;
            }
            Err(e) => {
                // The files stay where they were (or are put back); the download continues there.
                eprintln!("shoal daemon: move_storage of {ih} failed: {e}");
                if was_running {
                    self.start(ih, true).await;
                }
                return Err(DownloadError::Failed(e));
            }
        }
        if was_running || d.resume.hops == 0 {
            self.start(ih, true).await;
        }
        Ok(())
    }

    /// Removes a download, and its files if asked.
    pub async fn remove(&self, ih: &InfoHash, remove_data: bool) -> Result<(), DownloadError> {
        let d = self.get(ih).ok_or(DownloadError::Unknown)?;
        self.take_out(ih).await?;
        {
            // Under the write lock: a checkpoint already under way must not bring the file back.
            let _guard = self.write_lock.lock().await;
            self.lock().retain(|x| x.info_hash != *ih);
            self.checkpoints.remove(ih);
        }
        if let (true, Some(meta)) = (remove_data, d.meta.clone()) {
            let dest = d.resume.destination.clone();
            blocking::unblock(move || delete_files(&meta, &dest)).await;
        }
        Ok(())
    }

    /// Writes a download's resume data (after syncing its written data).
    pub async fn checkpoint(&self, ih: &InfoHash) {
        let Some(d) = self.get(ih) else { return };
        let mut resume = d.resume.clone();
        if let Some(id) = d.torrent_id() {
            if let Some(cp) = self.session.checkpoint(id).await {
                match &cp.state {
                    s if checking(s) => resume.set_have(None),
                    _ => resume.set_have(Some(&cp.have)),
                }
            }
            if let Some(s) = self.session.stats(id).await {
                resume.all_time_upload += s.uploaded;
                resume.all_time_download += s.downloaded;
            }
        }
        let pieces = resume.have(d.piece_count()).map(|b| b.count_ones());
        let _guard = self.write_lock.lock().await;
        // Removed meanwhile: do not bring its file back.
        if !self.exists(ih) {
            return;
        }
        let (to_write, checkpoints) = (resume.clone(), self.checkpoints.clone());
        match blocking::unblock(move || checkpoints.save(&to_write)).await {
            Ok(()) => {
                let _ = self.with(ih, |d| {
                    d.resume.have = resume.have.clone();
                    d.saved_pieces = pieces;
                });
            }
            Err(e) => eprintln!("shoal daemon: cannot write resume data of {ih}: {e}"),
        }
    }

    /// Checkpoints the downloads whose verified pieces changed since their last checkpoint.
    pub async fn checkpoint_changed(&self) {
        let list: Vec<(InfoHash, Option<TorrentId>, Option<u32>)> =
            self.lock().iter().map(|d| (d.info_hash, d.torrent_id(), d.saved_pieces)).collect();
        for (ih, id, saved) in list {
            let Some(id) = id else { continue };
            let Some(stats) = self.session.stats(id).await else { continue };
            if checking(&stats.state) {
                continue;
            }
            if saved != Some(stats.pieces_have) {
                self.checkpoint(&ih).await;
            }
        }
    }

    /// Checkpoints every download (at shutdown).
    pub async fn checkpoint_all(&self) {
        let all: Vec<InfoHash> = self.lock().iter().map(|d| d.info_hash).collect();
        for ih in all {
            self.checkpoint(&ih).await;
        }
    }

    /// Reacts to engine events: completion is announced on `/events` and checkpointed.
    pub async fn follow_engine(self: Arc<Self>) {
        let events = self.session.subscribe().await;
        while let Ok(e) = events.recv().await {
            let torrent = match &e {
                Event::Finished { torrent }
                | Event::Checked { torrent, .. }
                | Event::Error { torrent, .. }
                | Event::MetadataReceived { torrent, .. } => *torrent,
                _ => continue,
            };
            let found = self.lock().iter().find(|d| d.torrent_id() == Some(torrent)).map(|d| d.info_hash);
            let Some(ih) = found else { continue };
            if let Event::MetadataReceived { info, .. } = &e {
                self.metadata_arrived(&ih, torrent, info).await;
                continue;
            }
            if let Event::Checked { have, .. } = e {
                let _ = self.with(&ih, |d| {
                    if let (Some(base), Some(meta)) = (d.crash_base.take(), d.meta.clone()) {
                        d.resume.credit_found_after_crash(&base, have, &meta);
                    }
                });
            }
            // A check asked for while stopped leaves the download stopped.
            if let Event::Checked { .. } = e {
                if self.get(&ih).is_some_and(|d| d.resume.user_stopped) {
                    let _ = self.session.pause(torrent).await;
                }
            }
            if let Event::Finished { .. } = e {
                let newly = self
                    .with(&ih, |d| {
                        let newly = !d.resume.completed;
                        d.resume.completed = true;
                        newly.then(|| d.name())
                    })
                    .ok()
                    .flatten();
                if let Some(name) = newly {
                    self.events.publish(
                        "torrent_finished",
                        Vec::new(),
                        json!({"infohash": ih.to_string(), "name": name, "hidden": false}),
                    );
                }
            }
            self.checkpoint(&ih).await;
        }
    }

    /// Destinations of the downloads, for the free-space monitor.
    pub fn destinations(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self.lock().iter().map(|d| d.resume.destination.clone()).collect();
        dirs.sort();
        dirs.dedup();
        dirs
    }

    /// The expanded directories of a download's tree view.
    pub fn expanded(&self, ih: &InfoHash) -> BTreeSet<String> {
        self.tree_state.lock().unwrap_or_else(|e| e.into_inner()).get(ih).cloned().unwrap_or_default()
    }

    /// Changes the expanded directories of a download's tree view.
    pub fn update_expanded(&self, ih: &InfoHash, f: impl FnOnce(&mut BTreeSet<String>)) {
        f(self.tree_state.lock().unwrap_or_else(|e| e.into_inner()).entry(*ih).or_default());
    }

    /// The session handle.
    pub fn session(&self) -> &Handle {
        &self.session
    }
}

/// Whether the engine is checking (or waiting to check) the torrent's data.
pub fn checking(s: &TorrentState) -> bool {
    matches!(s, TorrentState::Checking { .. } | TorrentState::CheckQueued)
}

/// The resume bitfield of a saved download, if the files on disk can still hold it: every
/// file that a verified piece touches must exist and reach at least the end of that piece's
/// bytes in it. Otherwise `None`, and the engine checks the data again.
fn resume_bitfield(meta: &Metainfo, dest: &Path, resume: &ResumeData) -> Option<Bitfield> {
    let have = resume.have(meta.info.pieces.len() as u32)?;
    let layout = FileLayout::new(&meta.info);
    let mut needed: Vec<u64> = vec![0; meta.info.files.len()];
    for p in have.iter_ones() {
        let size = piece_size(meta, p);
        for span in layout.piece_spans(p, size) {
            if !span.pad {
                let end = span.offset + span.len as u64;
                let slot = &mut needed[span.file as usize];
                *slot = (*slot).max(end);
            }
        }
    }
    for (f, need) in meta.info.files.iter().zip(&needed) {
        if *need == 0 {
            continue;
        }
        match std::fs::metadata(dest.join(f.relative_path())) {
            Ok(m) if m.is_file() && m.len() >= *need => {}
            _ => return None,
        }
    }
    Some(have)
}

/// Makes sure the destination exists and takes new files: an unwritable destination stops
/// the download with an error at once instead of at its first piece.
fn probe_destination(dest: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dest).map_err(|e| format!("destination {} is not usable: {e}", dest.display()))?;
    let probe = dest.join(format!(".shoal-write-test-{}", std::process::id()));
    std::fs::File::create(&probe).map_err(|e| format!("destination {} is not writable: {e}", dest.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// A torrent file around a received info dictionary: `announce-list` from the magnet's
/// trackers (one per tier), then `info` exactly as received.
pub fn torrent_from_info(info: &[u8], trackers: &[String]) -> Vec<u8> {
    fn string(out: &mut Vec<u8>, s: &[u8]) {
        out.extend_from_slice(format!("{}:", s.len()).as_bytes());
        out.extend_from_slice(s);
    }
    let mut out = b"d".to_vec();
    if let Some(first) = trackers.first() {
        string(&mut out, b"announce");
        string(&mut out, first.as_bytes());
        string(&mut out, b"announce-list");
        out.push(b'l');
        for t in trackers {
            out.push(b'l');
            string(&mut out, t.as_bytes());
            out.push(b'e');
        }
        out.push(b'e');
    }
    string(&mut out, b"info");
    out.extend_from_slice(info);
    out.push(b'e');
    out
}

/// Byte size of piece `p` (the last one may be short).
pub fn piece_size(meta: &Metainfo, p: u32) -> u32 {
    let plen = meta.info.piece_length as u64;
    let start = p as u64 * plen;
    (meta.info.total_length.saturating_sub(start)).min(plen) as u32
}

/// Moves the torrent's files from `from` to `to` (rename, or copy and delete across file
/// systems). On failure, files already moved are put back.
fn move_files(meta: &Metainfo, from: &Path, to: &Path) -> Result<(), String> {
    if !to.is_dir() {
        return Err(format!("Target directory ({}) does not exist", to.display()));
    }
    let mut moved: Vec<(PathBuf, PathBuf)> = Vec::new();
    let result = (|| {
        for f in &meta.info.files {
            if f.is_pad() {
                continue;
            }
            let rel = f.relative_path();
            let (src, dst) = (from.join(&rel), to.join(&rel));
            if !src.exists() {
                continue;
            }
            if let Some(dir) = dst.parent() {
                std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            if std::fs::rename(&src, &dst).is_err() {
                std::fs::copy(&src, &dst).map_err(|e| format!("cannot copy {}: {e}", src.display()))?;
                std::fs::File::open(&dst).and_then(|f| f.sync_all()).map_err(|e| e.to_string())?;
                std::fs::remove_file(&src).map_err(|e| format!("cannot remove {}: {e}", src.display()))?;
            }
            moved.push((src, dst));
        }
        Ok(())
    })();
    if result.is_err() {
        for (src, dst) in moved.into_iter().rev() {
            if std::fs::rename(&dst, &src).is_err() && std::fs::copy(&dst, &src).is_ok() {
                let _ = std::fs::remove_file(&dst);
            }
        }
    } else {
        remove_empty_dirs(meta, from);
    }
    result
}

/// Deletes the torrent's files under `dest` (only those: nothing else there is touched) and
/// the directories of the torrent left empty.
fn delete_files(meta: &Metainfo, dest: &Path) {
    for f in &meta.info.files {
        let _ = std::fs::remove_file(dest.join(f.relative_path()));
    }
    remove_empty_dirs(meta, dest);
}

/// Removes the torrent's directories under `base` that are now empty, deepest first.
fn remove_empty_dirs(meta: &Metainfo, base: &Path) {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for f in &meta.info.files {
        let rel = f.relative_path();
        let mut p = rel.parent();
        while let Some(dir) = p.filter(|d| !d.as_os_str().is_empty()) {
            dirs.push(base.join(dir));
            p = dir.parent();
        }
    }
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    dirs.dedup();
    for d in dirs {
        // Fails (and is meant to) when the directory still holds anything.
        let _ = std::fs::remove_dir(d);
    }
}
