//! The library's owner: one task holds every download and takes one message at a time.
//!
//! Messages are REST requests (each with its reply), engine [`Event`]s and the completions of
//! the jobs it sent out (file-system work on the blocking pool, checkpoint writes on the
//! [`Writer`]). Engine commands are awaited in place: they are short trips to the engine task,
//! and nothing else can change the list meanwhile. A change that must wait for a job or for
//! the engine (a start, a move, a take-out) is kept as the download's [`Op`]; changes asked
//! for meanwhile queue behind it, so two requests on one download never interleave.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_channel::{Receiver, Sender};
use serde_json::json;
use shoal_core::{Bitfield, InfoHash, Metainfo, TorrentId};
use shoal_core::{Event, TorrentStats};
use shoal_smol::{AddOptions, Handle, MagnetOptions};

use super::fs;
use super::model::{checking, AddRequest, Download, DownloadError, Phase};
use super::persist::{Checkpoints, ResumeData, Saved, Writer};
use crate::daemon::events::EventBus;
use crate::daemon::store::{entry::TorrentFacts, Store};
use crate::rt::Rt;

/// How long a download taken out of the engine waits for its `Removed` before going on: the
/// engine sends it once the files are closed, so this only bounds a lost event.
const TAKE_OUT_TIMEOUT: Duration = Duration::from_secs(30);

/// The answer to one request.
pub(super) type Reply<T> = Sender<T>;

/// What a change of one download answers.
pub(super) type Outcome = Result<(), DownloadError>;

/// A change of a download's expanded directories.
pub(super) type ExpandedUpdate = Box<dyn FnOnce(&mut BTreeSet<String>) + Send>;

/// A message to the owner.
pub(super) enum Msg {
    /// A request of the REST API.
    Ask(Request),
    /// An engine event.
    Event(Event),
    /// A job sent out is done.
    Done(Done),
    /// The download's op ended: run the changes queued behind it.
    Next(InfoHash),
    /// Start the next download of the start-up load.
    LoadNext,
}

/// A request of the REST API (or the daemon's own tasks).
pub(super) enum Request {
    /// A copy of one download.
    Get(InfoHash, Reply<Option<Download>>),
    /// Copies of every download, in insertion order.
    List(Reply<Vec<Download>>),
    /// `(total, loaded)` checkpoints of the start-up load.
    Progress(Reply<(usize, usize)>),
    /// The expanded directories of a download's tree view.
    Expanded(InfoHash, Reply<BTreeSet<String>>),
    /// Changes them.
    UpdateExpanded(InfoHash, ExpandedUpdate),
    /// `/torrentinfo` fetches the metadata of the info-hash with a hidden torrent.
    ProbeStarted(InfoHash, TorrentId),
    /// That hidden torrent, if any.
    Probe(InfoHash, Reply<Option<TorrentId>>),
    /// Ends it: true when it is still the asker's to remove from the engine.
    ProbeEnded(InfoHash, TorrentId, Reply<bool>),
    /// Adds a download.
    Add(Box<Add>),
    /// Changes a download.
    Change(InfoHash, Change, Reply<Outcome>),
    /// Checkpoints the downloads whose verified pieces changed.
    CheckpointChanged(Reply<()>),
    /// Checkpoints every download; answers once all are written.
    CheckpointAll(Reply<()>),
    /// Loads the checkpoints read at start-up; answers once the first is listed.
    Load(Vec<Saved>, Reply<()>),
}

/// A download to add.
pub(super) struct Add {
    pub(super) info_hash: InfoHash,
    pub(super) req: AddRequest,
    pub(super) torrent: Option<(Metainfo, Vec<u8>)>,
    pub(super) magnet: Option<String>,
    pub(super) reply: Reply<Result<InfoHash, DownloadError>>,
}

/// A change of one download, run when no other is under way for it.
pub(super) enum Change {
    /// Pause it; it stays stopped across restarts.
    Stop,
    /// Resume it (one stopped on an error is started again).
    Resume,
    /// Check its data again.
    Recheck,
    /// Want these files.
    Select(Vec<usize>),
    /// Anonymity hops: 0 downloads directly.
    Hops(u32),
    /// Streaming mode on (for a file) or off.
    Vod(bool, Option<usize>),
    /// Move its files to an existing directory.
    Move(PathBuf),
    /// Remove it, and its files if asked.
    Remove { remove_data: bool },
}

/// A finished job.
pub(super) enum Done {
    /// A new download's first checkpoint is written (or not).
    Registered(Box<Download>, std::io::Result<()>, Reply<Result<InfoHash, DownloadError>>),
    /// The destination probe of a start.
    Probed(InfoHash, Result<(), String>),
    /// The resume check of a start from a checkpoint.
    Resumed(InfoHash, Option<Bitfield>),
    /// The files were moved (or put back).
    Moved(InfoHash, Result<(), String>),
    /// A checkpoint was written: the `have` and piece count it holds.
    Saved(InfoHash, Option<String>, Option<u32>, std::io::Result<()>),
    /// A take-out's wait for `Removed` ran out.
    TakeOutTimeout(InfoHash, TorrentId),
}

/// What a download is in the middle of: changes asked for meanwhile wait.
enum Op {
    /// Being started: the destination probe, then (from a checkpoint) the resume check.
    Starting(Start),
    /// Taken out of the engine: waiting for the engine's `Removed` of `id`.
    TakingOut { id: TorrentId, stats: Option<Box<TorrentStats>>, then: AfterTakeOut },
    /// Its files are being moved to `dest`.
    Moving { dest: PathBuf, was_running: bool, before: Phase, reply: Reply<Outcome> },
}

/// How a start goes and whom it answers.
struct Start {
    /// From resume data (its bitfield is checked against the files).
    from_checkpoint: bool,
    /// Checkpoint once started (not when nothing changed since the one loaded).
    save: bool,
    /// Part of the start-up load (the next one starts after it).
    loading: bool,
    /// The request answered once started, and its answer.
    done: Option<(Reply<Outcome>, Outcome)>,
}

impl Start {
    fn new(from_checkpoint: bool) -> Start {
        Start { from_checkpoint, save: true, loading: false, done: None }
    }

    fn answering(mut self, reply: Reply<Outcome>, outcome: Outcome) -> Start {
        self.done = Some((reply, outcome));
        self
    }
}

/// What follows a take-out.
enum AfterTakeOut {
    /// Wait for anonymity.
    Hops { hops: u32, reply: Reply<Outcome> },
    /// Move the files.
    Move { dest: PathBuf, was_running: bool, reply: Reply<Outcome> },
    /// Remove the download.
    Remove { remove_data: bool, reply: Reply<Outcome> },
}

impl AfterTakeOut {
    fn fail(self, e: DownloadError) {
        let reply = match self {
            AfterTakeOut::Hops { reply, .. }
            | AfterTakeOut::Move { reply, .. }
            | AfterTakeOut::Remove { reply, .. } => reply,
        };
        let _ = reply.try_send(Err(e));
    }
}

/// A download with what it is doing and what waits for it.
struct Entry {
    download: Download,
    op: Option<Op>,
    waiting: VecDeque<(Change, Reply<Outcome>)>,
}

/// The owner's state.
pub(super) struct Machine {
    list: Vec<Entry>,
    session: Handle,
    events: Arc<EventBus>,
    store: Arc<Store>,
    rt: Rt,
    /// Its own mailbox, for the jobs it sends out to answer into.
    me: Sender<Msg>,
    writer: Writer,
    /// The last run did not shut down cleanly: pieces verified after its last checkpoints may
    /// be on disk, so they are checked rather than downloaded again.
    crashed: bool,
    /// Checkpoints found at start-up, how many are loaded, and those still to load.
    total: usize,
    loaded: usize,
    to_load: Option<VecDeque<Saved>>,
    /// New downloads whose first checkpoint is being written.
    adding: HashSet<InfoHash>,
    /// Expanded directories of each download's file tree view (the PyPI GUI's), not persisted.
    tree_state: HashMap<InfoHash, BTreeSet<String>>,
    /// The hidden torrents of `/torrentinfo` fetching a magnet's metadata, by info-hash.
    probes: HashMap<InfoHash, TorrentId>,
}

/// What the owner starts from.
pub(super) struct Parts {
    pub(super) session: Handle,
    pub(super) events: Arc<EventBus>,
    pub(super) store: Arc<Store>,
    pub(super) rt: Rt,
    pub(super) me: Sender<Msg>,
    pub(super) checkpoints: Checkpoints,
    pub(super) crashed: bool,
}

fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Machine {
    /// An empty library.
    pub(super) fn new(p: Parts) -> Machine {
        Machine {
            list: Vec::new(),
            writer: Writer::start(p.checkpoints, p.rt),
            session: p.session,
            events: p.events,
            store: p.store,
            rt: p.rt,
            me: p.me,
            crashed: p.crashed,
            total: 0,
            loaded: 0,
            to_load: None,
            adding: HashSet::new(),
            tree_state: HashMap::new(),
            probes: HashMap::new(),
        }
    }

    /// Takes messages until the task is dropped; engine events come from `events`.
    pub(super) async fn run(mut self, mailbox: Receiver<Msg>, events: Receiver<Event>) {
        let mut engine_on = true;
        loop {
            let msg = if engine_on {
                futures_lite::future::race(async { mailbox.recv().await.ok() }, async {
                    events.recv().await.ok().map(Msg::Event)
                })
                .await
            } else {
                mailbox.recv().await.ok()
            };
            match msg {
                Some(msg) => self.handle(msg).await,
                // The engine has stopped: only requests remain.
                None if engine_on && events.is_closed() => engine_on = false,
                None => return,
            }
        }
    }

    async fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Ask(r) => self.request(r).await,
            Msg::Event(e) => self.engine_event(e).await,
            Msg::Done(d) => self.done(d).await,
            Msg::Next(ih) => self.next(ih).await,
            Msg::LoadNext => self.load_next().await,
        }
    }

    fn entry(&mut self, ih: &InfoHash) -> Option<&mut Entry> {
        self.list.iter_mut().find(|e| e.download.info_hash == *ih)
    }

    fn download(&mut self, ih: &InfoHash) -> Option<&mut Download> {
        self.entry(ih).map(|e| &mut e.download)
    }

    /// Runs `work` on the blocking pool; its result comes back as a message.
    fn job(&self, work: impl FnOnce() -> Done + Send + 'static) {
        let me = self.me.clone();
        self.rt.spawn_blocking(move || {
            let _ = me.try_send(Msg::Done(work()));
        });
    }

    async fn request(&mut self, r: Request) {
        match r {
            Request::Get(ih, reply) => {
                let d = self.list.iter().find(|e| e.download.info_hash == ih).map(|e| e.download.clone());
                let _ = reply.try_send(d);
            }
            Request::List(reply) => {
                let _ = reply.try_send(self.list.iter().map(|e| e.download.clone()).collect());
            }
            Request::Progress(reply) => {
                let _ = reply.try_send((self.total, self.loaded));
            }
            Request::Expanded(ih, reply) => {
                let _ = reply.try_send(self.tree_state.get(&ih).cloned().unwrap_or_default());
            }
            Request::UpdateExpanded(ih, f) => f(self.tree_state.entry(ih).or_default()),
            Request::ProbeStarted(ih, id) => {
                self.probes.insert(ih, id);
            }
            Request::Probe(ih, reply) => {
                let _ = reply.try_send(self.probes.get(&ih).copied());
            }
            Request::ProbeEnded(ih, id, reply) => {
                let mine = self.probes.get(&ih) == Some(&id);
                if mine {
                    self.probes.remove(&ih);
                }
                let _ = reply.try_send(mine);
            }
            Request::Add(add) => self.add(*add),
            Request::Change(ih, change, reply) => match self.entry(&ih) {
                None => {
                    let _ = reply.try_send(Err(DownloadError::Unknown));
                }
                Some(e) if e.op.is_some() || !e.waiting.is_empty() => e.waiting.push_back((change, reply)),
                Some(_) => self.change(ih, change, reply).await,
            },
            Request::CheckpointChanged(reply) => {
                self.checkpoint_changed().await;
                let _ = reply.try_send(());
            }
            Request::CheckpointAll(reply) => {
                let all: Vec<InfoHash> = self.list.iter().map(|e| e.download.info_hash).collect();
                for ih in all {
                    self.checkpoint(&ih).await;
                }
                // Behind every write just queued.
                self.writer.run(move |_| {
                    let _ = reply.try_send(());
                });
            }
            Request::Load(saved, reply) => {
                self.total = saved.len();
                self.to_load = Some(saved.into());
                self.load_next().await;
                let _ = reply.try_send(());
            }
        }
    }

    /// Writes a new download's first checkpoint (and torrent file); it is listed and started
    /// once that is on disk. An existing download with the same info-hash is kept as it is.
    fn add(&mut self, add: Add) {
        let Add { info_hash: ih, req, torrent, magnet, reply } = add;
        if self.list.iter().any(|e| e.download.info_hash == ih) || self.adding.contains(&ih) {
            let _ = reply.try_send(Ok(ih));
            return;
        }
        if !req.destination.is_absolute() {
            let _ = reply.try_send(Err(DownloadError::Invalid(format!(
                "destination must be an absolute path: {}",
                req.destination.display()
            ))));
            return;
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
        let download = Download {
            info_hash: ih,
            meta,
            torrent: bytes.clone(),
            resume: resume.clone(),
            phase: Phase::Allocating,
            saved_pieces: None,
            crash_base: None,
        };
        self.adding.insert(ih);
        let me = self.me.clone();
        self.writer.run(move |checkpoints| {
            let written = match &bytes {
                Some(file) => checkpoints.save_torrent(&ih, file),
                None => Ok(()),
            }
            .and_then(|()| checkpoints.save(&resume));
            let _ = me.try_send(Msg::Done(Done::Registered(Box::new(download), written, reply)));
        });
    }

    async fn done(&mut self, done: Done) {
        match done {
            Done::Registered(download, written, reply) => {
                let ih = download.info_hash;
                self.adding.remove(&ih);
                if let Err(e) = written {
                    let _ = reply.try_send(Err(DownloadError::Failed(format!("cannot save resume data: {e}"))));
                    return;
                }
                self.list.push(Entry { download: *download, op: None, waiting: VecDeque::new() });
                let _ = reply.try_send(Ok(ih));
                self.start(ih, Start::new(false)).await;
            }
            Done::Probed(ih, result) => {
                let Some(Op::Starting(s)) = self.take_op(&ih) else { return };
                match result {
                    Err(e) => {
                        self.set_phase(&ih, Phase::Failed(e));
                        self.started(ih, s);
                    }
                    Ok(()) => self.probed(ih, s).await,
                }
            }
            Done::Resumed(ih, have) => {
                let Some(Op::Starting(s)) = self.take_op(&ih) else { return };
                self.add_to_engine(ih, s, have).await;
            }
            Done::Moved(ih, result) => {
                let Some(Op::Moving { dest, was_running, before, reply }) = self.take_op(&ih) else { return };
                self.moved(ih, result, dest, was_running, before, reply).await;
            }
            Done::Saved(ih, have, pieces, result) => match result {
                Ok(()) => {
                    if let Some(d) = self.download(&ih) {
                        d.resume.have = have;
                        d.saved_pieces = pieces;
                    }
                }
                Err(e) => eprintln!("shoal daemon: cannot write resume data of {ih}: {e}"),
            },
            Done::TakeOutTimeout(ih, id) => {
                if matches!(self.entry(&ih).and_then(|e| e.op.as_ref()), Some(Op::TakingOut { id: t, .. }) if *t == id)
                {
                    self.taken_out(ih).await;
                }
            }
        }
    }

    fn take_op(&mut self, ih: &InfoHash) -> Option<Op> {
        self.entry(ih).and_then(|e| e.op.take())
    }

    fn set_phase(&mut self, ih: &InfoHash, phase: Phase) {
        if let Some(d) = self.download(ih) {
            d.phase = phase;
        }
    }

    /// The download's op is over: the changes queued behind it run next.
    fn op_over(&self, ih: InfoHash) {
        let _ = self.me.try_send(Msg::Next(ih));
    }

    /// Runs the changes queued for a download until one starts an op.
    async fn next(&mut self, ih: InfoHash) {
        loop {
            let Some(e) = self.entry(&ih) else { return };
            if e.op.is_some() {
                return;
            }
            let Some((change, reply)) = e.waiting.pop_front() else { return };
            self.change(ih, change, reply).await;
        }
    }

    /// Starts the next download of the start-up load (stopped ones stay stopped).
    async fn load_next(&mut self) {
        while let Some(Saved { resume, torrent }) = self.to_load.as_mut().and_then(VecDeque::pop_front) {
            let Ok(ih) = InfoHash::from_hex(&resume.infohash) else { continue };
            if self.list.iter().any(|e| e.download.info_hash == ih) {
                // Added again while loading: the running one stays.
                self.loaded += 1;
                continue;
            }
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
            self.list.push(Entry { download, op: None, waiting: VecDeque::new() });
            self.start(ih, Start { from_checkpoint: true, save: false, loading: true, done: None }).await;
            return;
        }
        if self.to_load.take().is_some() && self.total > 0 {
            tracing::info!("{} download(s) restored from checkpoints", self.total);
        }
    }

    /// Puts a download into the engine (or into `Circuits` when it asks for anonymity).
    async fn start(&mut self, ih: InfoHash, s: Start) {
        let Some(e) = self.entry(&ih) else { return };
        let d = &mut e.download;
        if d.resume.hops > 0 {
            d.phase = Phase::Circuits;
            self.started(ih, s);
            return;
        }
        d.phase = Phase::Allocating;
        let dest = d.resume.destination.clone();
        e.op = Some(Op::Starting(s));
        self.job(move || Done::Probed(ih, fs::probe_destination(&dest)));
    }

    /// The destination takes files: on to the engine (after the resume check, from a checkpoint).
    async fn probed(&mut self, ih: InfoHash, s: Start) {
        let Some(e) = self.entry(&ih) else { return };
        let d = &e.download;
        let Some(meta) = d.meta.clone() else {
            self.start_magnet(ih).await;
            self.started(ih, s);
            return;
        };
        if !s.from_checkpoint {
            self.add_to_engine(ih, s, None).await;
            return;
        }
        let (dest, saved) = (d.resume.destination.clone(), d.resume.clone());
        e.op = Some(Op::Starting(s));
        self.job(move || Done::Resumed(ih, fs::resume_bitfield(&meta, &dest, &saved)));
    }

    async fn add_to_engine(&mut self, ih: InfoHash, s: Start, have: Option<Bitfield>) {
        let crashed = self.crashed;
        let Some(d) = self.download(&ih) else { return };
        let Some(meta) = d.meta.clone() else { return };
        let opts = AddOptions {
            metainfo: (*meta).clone(),
            destination: d.resume.destination.clone(),
            paused: d.resume.user_stopped,
            peers: Vec::new(),
            file_priorities: d.priorities(),
            have,
            verify_unverified: s.from_checkpoint && crashed,
        };
        d.crash_base = opts.have.clone().filter(|_| opts.verify_unverified);
        let vod = d.resume.vod_mode == Some(true);
        let result = self.session.add(opts).await;
        let id = match result {
            Ok(id) => {
                self.set_phase(&ih, Phase::Engine(id));
                Some(id)
            }
            Err(e) => {
                self.set_phase(&ih, Phase::Failed(e.to_string()));
                None
            }
        };
        if let (Some(id), true) = (id, vod) {
            let _ = self.session.set_sequential(id, true).await;
        }
        if s.save {
            self.checkpoint(&ih).await;
        } else if let Some(d) = self.download(&ih) {
            d.saved_pieces = d.resume.have(d.piece_count()).map(|b| b.count_ones());
        }
        self.started(ih, s);
    }

    /// Puts a magnet download into the engine.
    async fn start_magnet(&mut self, ih: InfoHash) {
        let Some(d) = self.download(&ih) else { return };
        let Some(magnet) = d.resume.magnet.as_deref().and_then(|u| shoal_core::magnet::Magnet::parse(u).ok()) else {
            d.phase = Phase::Failed("the magnet link is not readable".into());
            return;
        };
        let opts = MagnetOptions {
            magnet,
            destination: d.resume.destination.clone(),
            paused: d.resume.user_stopped,
            peers: Vec::new(),
        };
        // The engine holds one torrent per info-hash: a `/torrentinfo` probe of this magnet (the
        // user added it without waiting for its files) gives way to the download.
        if let Some(probe) = self.probes.remove(&ih) {
            let _ = self.session.remove(probe).await;
        }
        let phase = match self.session.add_magnet(opts).await {
            Ok(id) => Phase::Engine(id),
            Err(e) => Phase::Failed(e.to_string()),
        };
        self.set_phase(&ih, phase);
    }

    /// A start is over: answer whoever waits for it, and go on with the load.
    fn started(&mut self, ih: InfoHash, s: Start) {
        if let Some((reply, outcome)) = s.done {
            let _ = reply.try_send(outcome);
        }
        if s.loading {
            self.loaded += 1;
            let _ = self.me.try_send(Msg::LoadNext);
        }
        self.op_over(ih);
    }

    /// Runs a change of a download with no op under way.
    async fn change(&mut self, ih: InfoHash, change: Change, reply: Reply<Outcome>) {
        let session = self.session.clone();
        let Some(d) = self.download(&ih) else {
            let _ = reply.try_send(Err(DownloadError::Unknown));
            return;
        };
        let id = d.torrent_id();
        let failed = |e: shoal_smol::SessionError| DownloadError::Failed(e.to_string());
        let outcome = match change {
            Change::Stop => {
                d.resume.user_stopped = true;
                match id {
                    Some(id) => session.pause(id).await.map_err(failed),
                    None => Ok(()),
                }
            }
            Change::Resume => {
                d.resume.user_stopped = false;
                match (id, matches!(d.phase, Phase::Failed(_))) {
                    (Some(id), _) => session.resume(id).await.map_err(failed),
                    (None, true) => {
                        self.start(ih, Start::new(true).answering(reply, Ok(()))).await;
                        return;
                    }
                    _ => Ok(()),
                }
            }
            Change::Recheck => {
                // A check the user asks for credits nothing (see `crash_base`).
                d.crash_base = None;
                // The old bitfield is what is being doubted: forget it until the check is done.
                d.resume.have = None;
                d.saved_pieces = None;
                match id {
                    Some(id) => session.recheck(id).await.map_err(failed),
                    None => Ok(()),
                }
            }
            Change::Select(files) => {
                if files.iter().any(|&i| i >= d.file_count()) {
                    let _ = reply.try_send(Err(DownloadError::Invalid("index out of range".into())));
                    return;
                }
                d.resume.selected_files = Some(files);
                let prios = d.priorities();
                let mut outcome = Ok(());
                if let Some(id) = id {
                    for (i, p) in prios.into_iter().enumerate() {
                        if let Err(e) = session.set_file_priority(id, i, p).await {
                            outcome = Err(failed(e));
                            break;
                        }
                    }
                }
                outcome
            }
            Change::Vod(on, file) => {
                if on {
                    match file {
                        Some(f) if f < d.file_count() => d.resume.vod_file = Some(f),
                        _ => {
                            let _ = reply.try_send(Err(DownloadError::Invalid("index out of range".into())));
                            return;
                        }
                    }
                }
                d.resume.vod_mode = Some(on);
                let prios = d.priorities();
                if let Some(id) = id {
                    let _ = session.set_sequential(id, on).await;
                    for (i, p) in prios.into_iter().enumerate() {
                        let _ = session.set_file_priority(id, i, p).await;
                    }
                }
                Ok(())
            }
            Change::Hops(hops) => {
                if d.resume.hops == hops {
                    let _ = reply.try_send(Ok(()));
                    return;
                }
                if hops > 0 {
                    self.take_out(ih, AfterTakeOut::Hops { hops, reply }).await;
                } else {
                    d.resume.hops = 0;
                    self.start(ih, Start::new(true).answering(reply, Ok(()))).await;
                }
                return;
            }
            Change::Move(dest) => {
                if d.resume.destination == dest {
                    let _ = reply.try_send(Ok(()));
                    return;
                }
                if d.meta.is_none() {
                    // Nothing on disk yet: the files will simply go to the new place.
                    d.resume.destination = dest;
                    Ok(())
                } else {
                    let was_running = id.is_some();
                    self.take_out(ih, AfterTakeOut::Move { dest, was_running, reply }).await;
                    return;
                }
            }
            Change::Remove { remove_data } => {
                self.take_out(ih, AfterTakeOut::Remove { remove_data, reply }).await;
                return;
            }
        };
        self.checkpoint(&ih).await;
        let _ = reply.try_send(outcome);
    }

    /// Takes a download out of the engine; `then` follows once the engine has closed its
    /// files (its `Removed`). Its session totals move into the resume data.
    async fn take_out(&mut self, ih: InfoHash, then: AfterTakeOut) {
        let Some(id) = self.download(&ih).and_then(|d| d.torrent_id()) else {
            self.after_take_out(ih, then).await;
            return;
        };
        self.checkpoint(&ih).await;
        let stats = self.session.stats(id).await.map(Box::new);
        if let Err(e) = self.session.remove(id).await {
            then.fail(DownloadError::Failed(e.to_string()));
            return;
        }
        let Some(e) = self.entry(&ih) else { return };
        e.op = Some(Op::TakingOut { id, stats, then });
        let (me, sleep) = (self.me.clone(), self.rt.sleep(TAKE_OUT_TIMEOUT));
        self.rt.detach(async move {
            sleep.await;
            let _ = me.try_send(Msg::Done(Done::TakeOutTimeout(ih, id)));
        });
    }

    /// The engine let go of the download (or the wait ran out).
    async fn taken_out(&mut self, ih: InfoHash) {
        let Some(Op::TakingOut { stats, then, .. }) = self.take_op(&ih) else { return };
        if let Some(d) = self.download(&ih) {
            if let Some(s) = &stats {
                d.resume.all_time_upload += s.uploaded;
                d.resume.all_time_download += s.downloaded;
            }
            d.phase = Phase::Allocating;
        }
        self.after_take_out(ih, then).await;
    }

    async fn after_take_out(&mut self, ih: InfoHash, then: AfterTakeOut) {
        let Some(e) = self.entry(&ih) else {
            then.fail(DownloadError::Unknown);
            return;
        };
        let d = &mut e.download;
        match then {
            AfterTakeOut::Hops { hops, reply } => {
                d.resume.hops = hops;
                d.resume.safe_seeding = true;
                d.phase = Phase::Circuits;
                self.checkpoint(&ih).await;
                let _ = reply.try_send(Ok(()));
                self.op_over(ih);
            }
            AfterTakeOut::Move { dest, was_running, reply } => {
                let Some(meta) = d.meta.clone() else { return };
                let before = std::mem::replace(&mut d.phase, Phase::Moving);
                let (from, to) = (d.resume.destination.clone(), dest.clone());
                e.op = Some(Op::Moving { dest, was_running, before, reply });
                self.job(move || Done::Moved(ih, fs::move_files(&meta, &from, &to)));
            }
            AfterTakeOut::Remove { remove_data, reply } => {
                let pos = self.list.iter().position(|e| e.download.info_hash == ih);
                let Some(entry) = pos.map(|p| self.list.remove(p)) else { return };
                for (_, waiting) in entry.waiting {
                    let _ = waiting.try_send(Err(DownloadError::Unknown));
                }
                self.tree_state.remove(&ih);
                let d = entry.download;
                let files = if remove_data { d.meta.map(|meta| (meta, d.resume.destination)) } else { None };
                // Behind every checkpoint of it already queued, so none can bring the file
                // back; answered once the checkpoint and the files are gone.
                self.writer.run(move |checkpoints| {
                    checkpoints.remove(&ih);
                    if let Some((meta, dest)) = files {
                        fs::delete_files(&meta, &dest);
                    }
                    let _ = reply.try_send(Ok(()));
                });
            }
        }
    }

    /// The files were moved (or put back after a failure): the download continues from where
    /// they are.
    async fn moved(
        &mut self,
        ih: InfoHash,
        result: Result<(), String>,
        dest: PathBuf,
        was_running: bool,
        before: Phase,
        reply: Reply<Outcome>,
    ) {
        let Some(d) = self.download(&ih) else { return };
        let outcome = match result {
            Ok(()) => {
                d.resume.destination = dest;
                Ok(())
            }
            Err(e) => {
                eprintln!("shoal daemon: move_storage of {ih} failed: {e}");
                Err(DownloadError::Failed(e))
            }
        };
        let restart = if outcome.is_ok() { was_running || d.resume.hops == 0 } else { was_running };
        if restart {
            self.start(ih, Start::new(true).answering(reply, outcome)).await;
        } else {
            // Not started again: it stands where it stood before the move.
            d.phase = before;
            self.checkpoint(&ih).await;
            let _ = reply.try_send(outcome);
            self.op_over(ih);
        }
    }

    /// Writes a download's resume data (after syncing its written data).
    async fn checkpoint(&mut self, ih: &InfoHash) {
        let Some(d) = self.download(ih) else { return };
        let mut resume = d.resume.clone();
        let (id, piece_count) = (d.torrent_id(), d.piece_count());
        if let Some(id) = id {
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
        let pieces = resume.have(piece_count).map(|b| b.count_ones());
        let (me, ih) = (self.me.clone(), *ih);
        self.writer.run(move |checkpoints| {
            let written = checkpoints.save(&resume);
            let _ = me.try_send(Msg::Done(Done::Saved(ih, resume.have, pieces, written)));
        });
    }

    /// Checkpoints the downloads whose verified pieces changed since their last checkpoint.
    async fn checkpoint_changed(&mut self) {
        let running: Vec<(InfoHash, TorrentId, Option<u32>)> = self
            .list
            .iter()
            .filter_map(|e| e.download.torrent_id().map(|id| (e.download.info_hash, id, e.download.saved_pieces)))
            .collect();
        let stats = self.session.stats_many(running.iter().map(|r| r.1).collect()).await;
        for ((ih, _, saved), stats) in running.into_iter().zip(stats) {
            let Some(stats) = stats else { continue };
            if !checking(&stats.state) && saved != Some(stats.pieces_have) {
                self.checkpoint(&ih).await;
            }
        }
    }

    /// Reacts to engine events: a take-out goes on, completion is announced on `/events` and
    /// checkpointed.
    async fn engine_event(&mut self, e: Event) {
        let torrent = match &e {
            Event::Removed { torrent } => {
                let found = self.list.iter().find(|x| matches!(x.op, Some(Op::TakingOut { id, .. }) if id == *torrent));
                if let Some(ih) = found.map(|x| x.download.info_hash) {
                    self.taken_out(ih).await;
                }
                return;
            }
            Event::Finished { torrent }
            | Event::Checked { torrent, .. }
            | Event::Error { torrent, .. }
            | Event::MetadataReceived { torrent, .. } => *torrent,
            _ => return,
        };
        let found = self.list.iter().find(|x| x.download.torrent_id() == Some(torrent)).map(|x| x.download.info_hash);
        let Some(ih) = found else { return };
        match &e {
            Event::MetadataReceived { info, .. } => {
                self.metadata_arrived(&ih, torrent, info).await;
                return;
            }
            Event::Checked { have, .. } => {
                let Some(d) = self.download(&ih) else { return };
                if let (Some(base), Some(meta)) = (d.crash_base.take(), d.meta.clone()) {
                    d.resume.credit_found_after_crash(&base, *have, &meta);
                }
                // A check asked for while stopped leaves the download stopped.
                if d.resume.user_stopped {
                    let _ = self.session.pause(torrent).await;
                }
            }
            Event::Finished { .. } => {
                let Some(d) = self.download(&ih) else { return };
                let newly = !d.resume.completed;
                d.resume.completed = true;
                if newly {
                    let name = d.name();
                    self.events.publish(
                        "torrent_finished",
                        Vec::new(),
                        json!({"infohash": ih.to_string(), "name": name, "hidden": false}),
                    );
                }
            }
            _ => {}
        }
        self.checkpoint(&ih).await;
    }

    /// A magnet's metadata arrived: the download now has a torrent file (saved beside its
    /// resume data) and its file selection applies.
    async fn metadata_arrived(&mut self, ih: &InfoHash, id: TorrentId, info: &[u8]) {
        let Some(d) = self.download(ih) else { return };
        let trackers = d
            .resume
            .magnet
            .as_deref()
            .and_then(|u| shoal_core::magnet::Magnet::parse(u).ok())
            .map(|m| m.trackers)
            .unwrap_or_default();
        let torrent = shoal_core::create::torrent_from_info(info, &trackers);
        let meta = match Metainfo::from_bytes(&torrent) {
            Ok(m) if m.info_hash == *ih => m,
            Ok(_) | Err(_) => {
                eprintln!("shoal daemon: the metadata of {ih} does not make a valid torrent");
                return;
            }
        };
        self.store.record(TorrentFacts::of(&meta));
        let (bytes, hash) = (torrent.clone(), *ih);
        self.writer.run(move |checkpoints| {
            if let Err(e) = checkpoints.save_torrent(&hash, &bytes) {
                eprintln!("shoal daemon: cannot save the torrent of {hash}: {e}");
            }
        });
        let Some(d) = self.download(ih) else { return };
        let files = meta.info.files.len();
        d.meta = Some(Arc::new(meta));
        d.torrent = Some(Arc::new(torrent));
        d.resume.magnet = None;
        if let Some(sel) = &mut d.resume.selected_files {
            sel.retain(|&i| i < files);
        }
        let prios = d.resume.selected_files.is_some().then(|| d.priorities());
        for (i, p) in prios.into_iter().flatten().enumerate() {
            let _ = self.session.set_file_priority(id, i, p).await;
        }
        self.checkpoint(ih).await;
    }
}
