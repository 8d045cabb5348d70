//! One torrent: its pieces, its peers, its trackers, and the jobs it has asked for.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod check;
mod connections;
mod content;
mod download;
mod fetch;
mod holepunch;
mod messages;
mod peer;
mod peer_list;
mod pex;
mod pex_state;
mod relay_budget;
mod request_queue;
mod states;
mod trackers;
mod transfer;
mod upload;
mod ut_metadata;

use super::admission::{AddrKey, Usefulness};
use super::close_reason::CloseReason;
use super::config::Config;
use super::ctx::Ctx;
use super::disk_error::DiskError;
use super::event::{Event, TorrentError};
use super::outbox::Outbox;
use super::output::{JobResult, Output, PeerIo};
use super::params::{AddTorrent, EngineError, FilePriority};
use super::stats::{PeerRequests, PeerStats, TorrentState, TorrentStats};
use crate::choker::{Choker, ChokerConfig};
use crate::metainfo::Metainfo;
use crate::picker::{Picker, Priority};
use crate::storage::FileLayout;
use crate::tracker::{AnnounceEvent, AnnounceParams, TrackerList, TransportError};
use crate::types::{ConnId, InfoHash, Instant, JobId, PeerId, BLOCK_SIZE};
use crate::wire::{Message, WireError};
use check::Checker;
pub(crate) use content::Unknown;
use content::{Content, Known};
use download::PiecePipeline;
pub(crate) use fetch::MetadataPhase;
use peer::{Peer, PeerState};
use peer_list::PeerList;
use trackers::TrackerDriver;
use upload::Reads;

/// Largest block a peer may request from us.
const MAX_REQUEST_LEN: u32 = 128 * 1024;

#[derive(Clone, Debug, PartialEq)]
enum State {
    /// Waiting for a slot of `Config::max_checking_torrents`; lower tickets go first.
    CheckQueued {
        ticket: u64,
    },
    Checking(Checker),
    Active,
    Paused {
        needs_check: bool,
    },
    Error(TorrentError),
    Removing {
        deadline: Instant,
    },
}

/// What a torrent tells the engine about its connections, for the engine's routing table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TorrentEvent {
    /// It dialled a new connection.
    Dialed(ConnId),
    /// It closed a connection from its side.
    Closed(ConnId),
}

/// An incoming connection whose handshake named this torrent, as the engine hands it over.
pub(crate) struct Admit {
    /// Its id.
    pub conn: ConnId,
    /// The peer's address.
    pub addr: SocketAddr,
    /// The session holds [`Config::max_connections`] already: a peer must make room.
    pub session_full: bool,
}

pub(crate) struct Torrent {
    pub id: TorrentId,
    pub info_hash: InfoHash,
    /// Its metainfo, layout and file priorities, or the magnet's fetch of them.
    content: Content,
    state: State,
    pub picker: Picker,
    trackers: TrackerDriver,
    choker: Choker,
    rng: ChaCha8Rng,
    our_id: PeerId,
    peers: BTreeMap<ConnId, Peer>,
    peer_list: PeerList,
    /// Pieces being received, up to their hash and write jobs.
    download: PiecePipeline,
    /// Upload disk reads in flight (bounded by `Config::max_read_jobs`).
    reads: Reads,
    downloaded: u64,
    uploaded: u64,
    wasted: u64,
    dl_rate: crate::rate::Rate,
    ul_rate: crate::rate::Rate,
    /// Whether `Finished` went out for the pieces had now (reset when a piece is wanted again).
    finished: bool,
    ticks: u64,
    dirty: Vec<ConnId>,
    /// New addresses peer exchange gave us (BEP 11).
    pex_learned: u32,
    /// Connections dialled and closed since the engine last polled them.
    events: Vec<TorrentEvent>,
}

use crate::types::TorrentId;

fn priority_of(p: FilePriority) -> Priority {
    match p {
        FilePriority::Skip => Priority::Skip,
        FilePriority::Low => Priority::Low,
        FilePriority::Normal => Priority::Normal,
        FilePriority::High => Priority::High,
    }
}

/// What the engine hands a new torrent besides its parameters: its id, the seed of its own RNG
/// (so a run replays from the engine's seed) and our peer id.
pub(crate) struct Identity {
    /// The engine's handle for the torrent.
    pub id: TorrentId,
    /// Seeds the torrent's RNG (picker tie-breaks, tracker key, choker).
    pub seed: u64,
    /// Our peer id, sent in every handshake.
    pub our_id: PeerId,
}

/// How a torrent is added: from its metainfo, or from a magnet link.
pub(crate) enum Start {
    /// A torrent file's metainfo, with its options.
    Torrent(Box<AddTorrent>),
    /// A magnet link: the info dictionary is fetched from peers.
    Magnet(MagnetStart),
}

/// A torrent added by magnet, as the engine hands it over.
pub(crate) struct MagnetStart {
    /// Its info hash.
    pub info_hash: InfoHash,
    /// What the magnet says, and the fetch of the rest.
    pub content: Unknown,
    /// Peers to dial (the magnet's `x.pe` and the caller's).
    pub peers: Vec<SocketAddr>,
    /// Added paused.
    pub paused: bool,
    /// Download pieces in order.
    pub sequential: bool,
}

impl Torrent {
    pub(super) fn new(who: Identity, start: Start, cx: &mut Ctx<'_>) -> Result<Torrent, EngineError> {
        let params = match start {
            Start::Torrent(params) => params,
            Start::Magnet(m) => {
                let mut t = Torrent::assemble(who, m.info_hash, Content::Unknown(m.content), cx.cfg);
                t.picker.set_sequential(m.sequential);
                t.add_candidates(m.peers, cx.cfg);
                if m.paused {
                    t.state = State::Paused { needs_check: false };
                } else {
                    t.start_active(cx);
                }
                return Ok(t);
            }
        };
        let meta = params.metainfo;
        let pieces = meta.info.piece_count();
        let mut priorities = params.file_priorities;
        priorities.resize(meta.info.files.len(), FilePriority::Normal);
        let info_hash = meta.info_hash;
        let content = Content::Known(Box::new(Known { layout: FileLayout::new(&meta.info), meta, priorities }));
        let mut t = Torrent::assemble(who, info_hash, content, cx.cfg);
        t.apply_priorities(0..pieces);
        t.picker.set_sequential(params.sequential);
        let mut needs_check = params.check_existing;
        let check_rest = params.check_existing && params.verify_unverified;
        if let Some(have) = params.have {
            if have.len() != pieces {
                return Err(EngineError::BadResume(pieces));
            }
            for p in have.iter_ones() {
                t.picker.set_have(p);
            }
            // Pieces outside the resume data are checked only when asked (after a crash,
            // data verified since the last checkpoint is still on disk).
            needs_check = check_rest && !have.is_full();
        }
        t.add_candidates(params.peers, cx.cfg);
        if params.paused {
            t.state = State::Paused { needs_check };
        } else if needs_check {
            t.start_check(cx.limits);
        } else {
            t.start_active(cx);
        }
        Ok(t)
    }

    /// A torrent with its parts, its RNG seeded from `who`, before it starts.
    fn assemble(who: Identity, info_hash: InfoHash, content: Content, cfg: &Config) -> Torrent {
        let Identity { id, seed, our_id } = who;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (picker, tracker_urls) = match &content {
            Content::Known(k) => {
                let info = &k.meta.info;
                let picker = Picker::new(info.piece_count(), info.piece_length, info.total_length, rng.random());
                (picker, k.meta.trackers.clone())
            }
            // No pieces until the dictionary is in (the picker is replaced then).
            Content::Unknown(u) => (Picker::new(0, BLOCK_SIZE, 0, rng.random()), u.trackers.clone()),
        };
        let tracker_list = TrackerList::new(tracker_urls, rng.random());
        let choker = Choker::new(
            ChokerConfig {
                upload_slots: cfg.upload_slots,
                rechoke_interval: Duration::from_secs(10),
                optimistic_interval: Duration::from_secs(30),
            },
            rng.random(),
        );
        let trackers = TrackerDriver::new(id, tracker_list, rng.random());
        Torrent {
            id,
            info_hash,
            content,
            state: State::Active,
            picker,
            trackers,
            choker,
            rng,
            our_id,
            peers: BTreeMap::new(),
            peer_list: PeerList::default(),
            download: PiecePipeline::default(),
            reads: Reads::default(),
            downloaded: 0,
            uploaded: 0,
            wasted: 0,
            dl_rate: Default::default(),
            ul_rate: Default::default(),
            finished: false,
            ticks: 0,
            dirty: Vec::new(),
            pex_learned: 0,
            events: Vec::new(),
        }
    }

    // ---- jobs ----

    /// A disk or hash job finished: routes it to the part that asked for it.
    pub(super) fn on_job(&mut self, job: JobId, result: JobResult, cx: &mut Ctx<'_>) {
        let result = match self.download.finish(job, result) {
            Ok(done) => return self.on_download_job(done, cx),
            Err(result) => result,
        };
        if let Some(conn) = self.reads.finish(job) {
            if let JobResult::Read(result) = result {
                self.on_read(job, conn, result, cx);
            }
            return;
        }
        let State::Checking(check) = &mut self.state else { return };
        if let (Some(verified), JobResult::Verified(result)) = (check.finished(job), result) {
            // Data that cannot be read (missing, short, unreadable) is simply not valid yet.
            let ok = result.unwrap_or(false);
            self.on_verified(verified, ok, cx);
        }
    }

    /// A verified piece was written (or failed to be): it counts as ours once on disk.
    fn on_written(&mut self, piece: u32, result: Result<(), DiskError>, data: Vec<u8>, cx: &mut Ctx<'_>) {
        cx.limits.recycle(data);
        match result {
            Ok(()) => {
                self.picker.hash_passed(piece);
                cx.out.event(Event::PieceFinished { torrent: self.id, piece });
                self.broadcast_have(piece, cx.now);
                self.update_finished(cx);
                self.fill_all(cx);
            }
            Err(e) => {
                self.picker.reset_piece(piece);
                self.fail(e.into(), cx);
            }
        }
    }

    fn broadcast_have(&mut self, piece: u32, now: Instant) {
        for (conn, p) in self.peers.iter_mut() {
            let Some((ch, a)) = p.active_mut() else { continue };
            if !a.have.get(piece) {
                let was_empty = ch.send(&Message::Have { piece }, now);
                mark(&mut self.dirty, *conn, was_empty);
            }
        }
    }

    /// Blames the peers that sent a piece that failed its hash check.
    fn punish(&mut self, contributors: &[ConnId], cx: &mut Ctx<'_>) {
        let sole = contributors.len() == 1;
        for conn in contributors {
            let Some(p) = self.peers.get(conn) else { continue };
            let addr = p.addr;
            if self.peer_list.hash_failed(addr, sole, cx.cfg.hashfails_to_ban) {
                cx.out.event(Event::PeerBanned { torrent: self.id, addr });
                self.close(*conn, CloseReason::Banned, cx);
            }
        }
    }

    // ---- time ----

    pub(super) fn tick(&mut self, cx: &mut Ctx<'_>) {
        self.ticks += 1;
        if let State::Removing { deadline } = self.state {
            if cx.now >= deadline {
                // Give up on trackers that never answered `stopped`.
                self.trackers.give_up(cx.out);
            }
            return;
        }
        self.dl_rate.tick(cx.now);
        self.ul_rate.tick(cx.now);
        let mut to_close = Vec::new();
        let mut snubbed = Vec::new();
        let mut oversized = Vec::new();
        for (conn, p) in self.peers.iter_mut() {
            let ch = &mut p.ch;
            ch.dl.tick(cx.now);
            ch.ul.tick(cx.now);
            ch.announced.tick(cx.now);
            match &mut p.state {
                PeerState::Dialing { since } if cx.now - *since > cx.cfg.connect_timeout => {
                    to_close.push((*conn, CloseReason::ConnectTimeout))
                }
                PeerState::Handshaking { since, .. } if cx.now - *since > cx.cfg.handshake_timeout => {
                    to_close.push((*conn, CloseReason::HandshakeTimeout))
                }
                PeerState::Active(a) => {
                    // A peer that handshakes and then says nothing only holds a slot.
                    let mute = !a.spoke && cx.now - a.activated > cx.cfg.handshake_timeout;
                    if mute || cx.now - ch.last_recv > cx.cfg.inactivity_timeout {
                        let reason = if mute { CloseReason::Silent } else { CloseReason::Inactivity };
                        to_close.push((*conn, reason));
                        continue;
                    }
                    if cx.now - ch.last_send > cx.cfg.keepalive_interval {
                        mark(&mut self.dirty, *conn, ch.send(&Message::KeepAlive, cx.now));
                    }
                    let give_back = a.queue.on_tick(cx.now, a.requests.len(), cx.cfg);
                    if give_back > 0 {
                        oversized.push((*conn, give_back));
                    }
                    if !a.requests.is_empty() && cx.now - a.last_block > cx.cfg.request_timeout {
                        snubbed.push(*conn);
                    }
                }
                _ => {}
            }
        }
        for conn in snubbed {
            let Some((ch, a)) = self.peers.get_mut(&conn).and_then(Peer::active_mut) else { continue };
            a.snubbed = true;
            a.last_block = cx.now;
            // Others may send these blocks sooner. The peer is told, so that it does not spend
            // upload on them; any it sends anyway are kept if still needed.
            let mut wake = false;
            for (b, _) in std::mem::take(&mut a.requests) {
                self.picker.request_failed(conn, b);
                wake |= ch.send(&Message::Cancel(b), cx.now);
                a.release_request(b);
            }
            mark(&mut self.dirty, conn, wake);
        }
        for (conn, n) in oversized {
            self.give_back_requests(conn, n, cx.now);
        }
        for (conn, reason) in to_close {
            self.close(conn, reason, cx);
        }
        if self.state == State::Active {
            self.make_room_to_dial(cx);
            self.send_pex(cx.now);
        }
        if self.state == State::Active && self.content.is_fetching() {
            self.request_metadata_all(cx.now);
            if self.ticks.is_multiple_of(5) {
                self.requeue_known(cx.now);
            }
        } else if self.state == State::Active {
            if cx.now >= self.choker.next_rechoke() {
                self.rechoke(cx.now);
            }
            if self.ticks.is_multiple_of(5) {
                self.requeue_known(cx.now);
            }
            self.fill_all(cx);
        }
    }

    /// Puts addresses whose retry time has come back in the candidate queue.
    fn requeue_known(&mut self, now: Instant) {
        if self.finished && self.picker.have().is_full() && !self.peers.is_empty() {
            return;
        }
        // With no peer at all and no one else to try, peers given up on are still worth a dial
        // now and then (their back-off reaches minutes): the alternative is waiting for the
        // next tracker announce, perhaps half an hour away.
        // Idle peers do not count: squatters must not make a torrent look well connected.
        let fetching = self.content.is_fetching();
        let alone = self
            .peers
            .values()
            .all(|p| p.active().is_none_or(|a| a.usefulness(&p.ch.dl, fetching) == Usefulness::Idle));
        self.peer_list.requeue(now, alone && !self.picker.is_finished());
    }

    // ---- trackers ----

    fn left(&self) -> u64 {
        if self.content.is_fetching() {
            // Unknown without metadata; anything non-zero says we are a leecher.
            return u64::from(BLOCK_SIZE);
        }
        let stats = self.byte_counts();
        stats.0.saturating_sub(stats.1)
    }

    /// (wanted bytes, wanted bytes we have)
    fn byte_counts(&self) -> (u64, u64) {
        let mut wanted = 0;
        let mut have = 0;
        for piece in 0..self.content.piece_count() {
            if self.picker.priority(piece) == Priority::Skip {
                continue;
            }
            let size = self.picker.piece_size(piece) as u64;
            wanted += size;
            if self.picker.has(piece) {
                have += size;
            }
        }
        (wanted, have)
    }

    pub(super) fn drive_trackers(&mut self, cx: &mut Ctx<'_>) {
        if matches!(self.state, State::Checking { .. } | State::CheckQueued { .. }) {
            return;
        }
        while let Some(due) = self.trackers.next_announce(cx.now) {
            let event = due.event;
            let params = AnnounceParams {
                info_hash: self.info_hash,
                peer_id: self.our_id,
                port: cx.cfg.announced_port(),
                ip: cx.cfg.announce_ip,
                uploaded: self.uploaded,
                downloaded: self.downloaded,
                left: self.left(),
                event,
                num_want: if event == AnnounceEvent::Stopped { 0 } else { cx.cfg.num_want },
                key: self.trackers.key(),
                tracker_id: due.tracker_id.clone(),
                ipv6: cx.cfg.announce_ipv6,
            };
            let peers = self.trackers.announce(due, params, cx.now, &mut self.rng, cx.out);
            self.add_tracker_peers(peers, cx.cfg);
        }
    }

    /// Announces again to every tracker (our address changed), as soon as each allows.
    pub(super) fn reannounce(&mut self, cx: &mut Ctx<'_>) {
        self.trackers.force_reannounce(cx.now);
        self.drive_trackers(cx);
    }

    /// Asks every tracker for the swarm's seeder and leecher counts.
    pub(super) fn scrape(&mut self, cx: &mut Ctx<'_>) {
        let peers = self.trackers.scrape(self.info_hash, cx.now, &mut self.rng, cx.out);
        self.add_tracker_peers(peers, cx.cfg);
    }

    pub(super) fn on_tracker_http(&mut self, job: JobId, result: Result<Vec<u8>, TransportError>, cx: &mut Ctx<'_>) {
        let peers = self.trackers.on_http(job, result, &self.info_hash, cx.now, cx.out);
        self.add_tracker_peers(peers, cx.cfg);
    }

    pub(super) fn on_tracker_udp(&mut self, job: JobId, result: Result<&[u8], TransportError>, cx: &mut Ctx<'_>) {
        let peers = self.trackers.on_udp(job, result, cx.now, &mut self.rng, cx.out);
        self.add_tracker_peers(peers, cx.cfg);
    }

    pub(super) fn on_tracker_timeout(&mut self, cx: &mut Ctx<'_>) {
        let peers = self.trackers.on_timeout(cx.now, cx.out);
        self.add_tracker_peers(peers, cx.cfg);
    }

    pub(super) fn tracker_deadline(&self) -> Option<Instant> {
        let checking = matches!(self.state, State::Checking { .. } | State::CheckQueued { .. });
        self.trackers.deadline(checking)
    }

    pub(super) fn udp_sockets(&self) -> Vec<JobId> {
        self.trackers.udp_sockets()
    }

    /// Peers a tracker answered with.
    fn add_tracker_peers(&mut self, peers: Vec<SocketAddr>, cfg: &Config) {
        // Kept even when the answer finds the torrent checking or paused: they are dialled once
        // it is active again, and the next answer may be half an hour away.
        if !peers.is_empty() && !matches!(self.state, State::Removing { .. }) {
            self.add_candidates(peers, cfg);
        }
    }

    // ---- output ----

    /// Hands every peer's batched bytes to the runtime.
    pub(super) fn flush(&mut self, out: &mut Outbox) {
        for conn in self.dirty.drain(..) {
            let Some(p) = self.peers.get_mut(&conn) else { continue };
            if p.ch.outbuf.is_empty() || p.is_dialing() {
                continue;
            }
            let data = std::mem::take(&mut p.ch.outbuf);
            p.ch.send_queued += data.len() as u64;
            out.push(Output::Peer(PeerIo::Send { conn, data }));
        }
    }

    /// What happened to its connections since the last call, oldest first.
    pub(super) fn poll_events(&mut self) -> impl Iterator<Item = TorrentEvent> + '_ {
        self.events.drain(..)
    }

    // ---- invariants ----

    /// Its connections, each with whether it is still being dialled.
    pub(super) fn conns(&self) -> impl Iterator<Item = (ConnId, bool)> + '_ {
        self.peers.iter().map(|(conn, p)| (*conn, p.is_dialing()))
    }

    /// Checks its own books: the download's bytes match its buffers and jobs, and every read
    /// a peer waits for is in flight for it.
    pub(super) fn check_invariants(&self) -> Result<(), String> {
        self.download.check()?;
        self.reads.check(self.peers.iter().filter_map(|(conn, p)| Some((*conn, &p.active()?.upload))))
    }

    // ---- getters ----

    /// Its metainfo, once known.
    pub(super) fn metainfo(&self) -> Option<&Metainfo> {
        self.content.meta()
    }

    /// Its files' priorities, once the files are known.
    pub(super) fn file_priorities(&self) -> Option<&[FilePriority]> {
        self.content.known().map(|k| k.priorities.as_slice())
    }

    pub(super) fn stats(&self) -> TorrentStats {
        let pieces = self.content.piece_count();
        let (wanted_bytes, have_bytes) = self.byte_counts();
        let state = match (&self.state, &self.content) {
            (State::CheckQueued { .. }, _) => TorrentState::CheckQueued,
            (State::Checking(check), _) => {
                TorrentState::Checking { progress: check.checked() as f32 / pieces.max(1) as f32 }
            }
            (State::Active, Content::Unknown(_)) => TorrentState::Metadata,
            (State::Active, Content::Known(_)) if self.picker.is_finished() => TorrentState::Seeding,
            (State::Active, Content::Known(_)) => TorrentState::Downloading,
            (State::Paused { .. } | State::Removing { .. }, _) => TorrentState::Paused,
            (State::Error(e), _) => TorrentState::Error(e.to_string()),
        };
        let active = self.peers.values().filter_map(Peer::active);
        TorrentStats {
            info_hash: self.info_hash,
            name: self.content.name().to_owned(),
            state,
            pieces_have: self.picker.have().count_ones(),
            pieces_total: pieces,
            wanted_bytes,
            have_bytes,
            downloaded: self.downloaded,
            uploaded: self.uploaded,
            wasted: self.wasted,
            download_rate: self.dl_rate.get(),
            upload_rate: self.ul_rate.get(),
            peers: active.clone().count(),
            seeds: active.filter(|p| p.is_seed()).count(),
            candidates: self.peer_list.candidates(),
            availability: self.picker.distributed_copies(),
            trackers: self.trackers.statuses(),
            have: self.picker.have().clone(),
            dht: None,
            pex: self.pex_allowed().then_some(self.pex_learned),
        }
    }

    pub(super) fn peer_requests(&self, conn: ConnId) -> Option<PeerRequests> {
        let p = self.peers.get(&conn)?;
        // A connection not yet handshaken has none.
        let (queued, outstanding) = p.active().map_or((0, 0), |a| (a.upload.queued(), a.requests.len()));
        Some(PeerRequests { queued, outstanding })
    }

    pub(super) fn peer_stats(&self) -> Vec<PeerStats> {
        let total = self.content.piece_count().max(1) as f32;
        let optimistic = self.choker.optimistic();
        self.peers
            .iter()
            .filter_map(|(conn, p)| {
                let (ch, a) = (&p.ch, p.active()?);
                Some(PeerStats {
                    addr: p.addr,
                    client: a.client.clone(),
                    peer_id: a.peer_id,
                    outgoing: p.outgoing,
                    progress: if a.is_seed() { 1.0 } else { a.have.count_ones() as f32 / total },
                    download_rate: ch.dl.get(),
                    upload_rate: ch.ul.get(),
                    peer_download_rate: ch.announced.get(),
                    downloaded: ch.dl.total(),
                    uploaded: ch.ul.total(),
                    am_choking: a.am_choking,
                    am_interested: a.am_interested,
                    peer_choking: a.peer_choking,
                    peer_interested: a.peer_interested,
                    snubbed: a.snubbed,
                    optimistic: optimistic == Some(*conn) && !a.am_choking,
                    queued_requests: a.upload.queued(),
                    outstanding_requests: a.requests.len(),
                    seed: a.is_seed(),
                    upload_only: a.upload_only || a.is_seed(),
                })
            })
            .collect()
    }
}

/// An IP address in its raw 4- or 16-byte form (`yourip`, `ipv4`, `ipv6` of BEP 10).
fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

/// Whether `addr`'s address has [`Config::max_connections_per_ip`] of `peers` already.
fn crowded(peers: &BTreeMap<ConnId, Peer>, addr: SocketAddr, cfg: &Config) -> bool {
    let Some(key) = AddrKey::of(addr.ip()) else { return false };
    peers.values().filter(|p| AddrKey::of(p.addr.ip()) == Some(key)).count() >= cfg.max_connections_per_ip
}

/// Whether one of `peers` is connected to `addr`.
fn addr_in_use(peers: &BTreeMap<ConnId, Peer>, addr: SocketAddr) -> bool {
    peers.values().any(|p| p.addr == addr)
}

/// BEP 3's message id of HAVE, as [`WireError::PieceIndexOutOfRange`] names it.
const HAVE_ID: u8 = 4;

/// Why a peer whose bitfield of `len` bytes does not fit `pieces` pieces is closed.
fn bad_bitfield(len: usize, pieces: u32) -> CloseReason {
    WireError::BadBitfieldLength { len: wire_len(len), expected: pieces.div_ceil(8) }.into()
}

/// A length as [`WireError`] reports it (a frame's length fits in 32 bits).
fn wire_len(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// Records that a peer has bytes to flush (once per batch).
fn mark(dirty: &mut Vec<ConnId>, conn: ConnId, was_empty: bool) {
    if was_empty {
        dirty.push(conn);
    }
}
