//! One torrent: its pieces, its peers, its trackers, and the jobs it has asked for.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod check;
mod download;
mod fetch;
mod messages;
mod peer;
mod peer_list;
mod pex;
mod trackers;
mod transfer;
mod upload;
mod ut_metadata;

use super::admission::{pick_replacement, AddrKey, Occupant, Usefulness};
use super::{
    AddTorrent, Config, DiskError, DiskJob, DiskJobKind, EngineError, Event, FilePriority, Io, JobResult, Output,
    PeerIo, PeerRequests, PeerStats, TorrentError, TorrentState, TorrentStats,
};
use crate::choker::{Choker, ChokerConfig, PeerStats as ChokeStats};
use crate::metainfo::Metainfo;
use crate::picker::{Picker, Priority};
use crate::storage::FileLayout;
use crate::tracker::{AnnounceEvent, AnnounceParams, TrackerList};
use crate::types::{BlockRef, ConnId, InfoHash, Instant, JobId, PeerId, BLOCK_SIZE};
use crate::wire::{Decoded, Decoder, ExtendedHandshake, Handshake, Message, UT_METADATA, UT_PEX};
use check::{Checker, Verified};
use download::PiecePipeline;
use peer::{Peer, Phase};
use peer_list::PeerList;
pub(crate) use pex::PexState;
use pex::OUR_UT_PEX;
use trackers::TrackerDriver;
use upload::Reads;
pub(crate) use upload::UploadQueue;
pub(crate) use ut_metadata::MetadataPhase;
use ut_metadata::OUR_UT_METADATA;

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
    pub meta: Metainfo,
    layout: FileLayout,
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
    pub(crate) file_priorities: Vec<FilePriority>,
    downloaded: u64,
    uploaded: u64,
    wasted: u64,
    dl_rate: crate::rate::Rate,
    ul_rate: crate::rate::Rate,
    /// Whether `Finished` went out for the pieces had now (reset when a piece is wanted again).
    finished: bool,
    ticks: u64,
    dirty: Vec<ConnId>,
    /// Added by magnet and still fetching its info dictionary: `meta` is a placeholder with
    /// no pieces and no files until then.
    fetching: Option<Box<MetadataPhase>>,
    /// New addresses peer exchange gave us (BEP 11).
    pex_learned: u32,
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

impl Torrent {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: TorrentId,
        params: AddTorrent,
        fetching: Option<Box<MetadataPhase>>,
        seed: u64,
        our_id: PeerId,
        cfg: &Config,
        now: Instant,
        io: &mut Io,
    ) -> Result<Torrent, EngineError> {
        let meta = params.metainfo;
        let info = &meta.info;
        let pieces = info.piece_count();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let picker = Picker::new(pieces, info.piece_length, info.total_length, rng.random());
        let tracker_list = TrackerList::new(meta.trackers.clone(), rng.random());
        let choker = Choker::new(
            ChokerConfig {
                upload_slots: cfg.upload_slots,
                rechoke_interval: Duration::from_secs(10),
                optimistic_interval: Duration::from_secs(30),
            },
            rng.random(),
        );
        let trackers = TrackerDriver::new(id, tracker_list, rng.random());
        let mut file_priorities = params.file_priorities;
        file_priorities.resize(info.files.len(), FilePriority::Normal);
        let mut t = Torrent {
            id,
            info_hash: meta.info_hash,
            layout: FileLayout::new(info),
            meta,
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
            file_priorities,
            downloaded: 0,
            uploaded: 0,
            wasted: 0,
            dl_rate: Default::default(),
            ul_rate: Default::default(),
            finished: false,
            ticks: 0,
            dirty: Vec::new(),
            fetching,
            pex_learned: 0,
        };
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
        t.add_candidates(params.peers, cfg);
        if params.paused {
            t.state = State::Paused { needs_check };
        } else if needs_check {
            t.start_check(io);
        } else {
            t.start_active(now, io);
        }
        Ok(t)
    }

    // ---- state changes ----

    /// Queues a check of existing data; the engine starts it (`begin_check`) when a slot is free.
    fn start_check(&mut self, io: &mut Io) {
        if !matches!(self.state, State::CheckQueued { .. }) {
            self.state = State::CheckQueued { ticket: io.check_ticket() };
            io.checks_changed = true;
        }
    }

    /// The ticket of a torrent waiting to check, if it is waiting.
    pub fn check_ticket(&self) -> Option<u64> {
        match self.state {
            State::CheckQueued { ticket } => Some(ticket),
            _ => None,
        }
    }

    /// Whether it is checking existing data now (holding a check slot).
    pub fn is_checking(&self) -> bool {
        matches!(self.state, State::Checking { .. })
    }

    /// Starts the queued check: the engine has given it a slot.
    pub fn begin_check(&mut self, now: Instant, cfg: &Config, io: &mut Io) {
        if !matches!(self.state, State::CheckQueued { .. }) {
            return;
        }
        // A new checker: results of an earlier, interrupted check do not count in this one.
        self.state = State::Checking(Checker::new(self.meta.info.piece_count()));
        self.check_more(now, cfg, io);
    }

    fn start_active(&mut self, now: Instant, io: &mut Io) {
        self.leave_check_states(io);
        self.state = State::Active;
        // Back-off from before a pause or check was about our own closing, not the peers.
        self.peer_list.reset_backoff(now);
        self.trackers.start(now);
        self.update_finished(now, io);
    }

    pub fn pause(&mut self, now: Instant, io: &mut Io) {
        let needs_check = match self.state {
            State::Removing { .. } | State::Paused { .. } => return,
            State::Checking { .. } | State::CheckQueued { .. } => true,
            _ => false,
        };
        self.close_all(now, io);
        self.trackers.stop(now);
        self.leave_check_states(io);
        self.state = State::Paused { needs_check };
    }

    /// Tells the engine a check slot may have come free (or the queue changed); cheap to call.
    fn leave_check_states(&mut self, io: &mut Io) {
        if matches!(self.state, State::Checking { .. } | State::CheckQueued { .. }) {
            io.checks_changed = true;
        }
    }

    pub fn resume(&mut self, now: Instant, io: &mut Io) {
        match self.state {
            State::Paused { needs_check: true } => self.start_check(io),
            State::Paused { needs_check: false } | State::Error(_) => self.start_active(now, io),
            _ => {}
        }
    }

    pub fn recheck(&mut self, now: Instant, io: &mut Io) {
        if matches!(self.state, State::Removing { .. }) || self.fetching.is_some() {
            return;
        }
        self.close_all(now, io);
        let info = &self.meta.info;
        let (sequential, deadline) = (self.picker.is_sequential(), self.picker.deadline_piece());
        self.picker = Picker::new(info.piece_count(), info.piece_length, info.total_length, self.rng.random());
        self.picker.set_sequential(sequential);
        self.picker.set_deadline_piece(deadline);
        self.apply_priorities(0..info.piece_count());
        self.finished = false;
        // Jobs in flight belong to the old picker: forget them so their results are ignored.
        self.download.reset();
        // A running check gives up its slot and queues again; a queued one keeps its place.
        if self.is_checking() {
            self.leave_check_states(io);
            self.state = State::Paused { needs_check: true };
        }
        self.start_check(io);
    }

    pub fn remove(&mut self, now: Instant, io: &mut Io) {
        if matches!(self.state, State::Removing { .. }) {
            return;
        }
        self.close_all(now, io);
        self.trackers.stop(now);
        self.leave_check_states(io);
        self.state = State::Removing { deadline: now + Duration::from_secs(5) };
    }

    pub fn is_removing(&self) -> bool {
        matches!(self.state, State::Removing { .. })
    }

    /// Removed, done saying goodbye to trackers, and no piece write still under way (its files
    /// may be deleted next: a late write would bring one back).
    pub fn is_removable(&self) -> bool {
        matches!(self.state, State::Removing { .. }) && !self.download.has_jobs() && self.trackers.is_idle()
    }

    fn fail(&mut self, error: TorrentError, now: Instant, io: &mut Io) {
        if matches!(self.state, State::Removing { .. } | State::Error(_)) {
            return;
        }
        self.close_all(now, io);
        self.trackers.stop(now);
        io.event(Event::Error { torrent: self.id, error: error.clone() });
        self.leave_check_states(io);
        self.state = State::Error(error);
    }

    pub fn set_file_priority(&mut self, file: usize, p: FilePriority, now: Instant, cfg: &Config, io: &mut Io) {
        if file >= self.file_priorities.len() {
            return;
        }
        self.file_priorities[file] = p;
        self.apply_priorities(self.layout.file_pieces(file));
        let conns: Vec<ConnId> = self.peers.keys().copied().collect();
        for conn in conns {
            self.update_interest(conn, now);
            self.fill_requests(conn, now, cfg, io);
        }
        self.update_finished(now, io);
    }

    /// Sets (or clears) the piece a stream reads next and asks every peer for its window now.
    pub fn set_deadline_piece(&mut self, piece: Option<u32>, now: Instant, cfg: &Config, io: &mut Io) {
        let moved = piece != self.picker.deadline_piece();
        self.picker.set_deadline_piece(piece);
        // A seek: the new position is not being fetched yet, and the peers' queues hold up to
        // two seconds of other blocks that they would send first. Cancel those, so the blocks
        // at the read position come next (a block already on its way is simply dropped).
        if let Some(d) = piece.filter(|&d| moved && !self.picker.have().get(d) && !self.download.is_receiving(d)) {
            let window = self.picker.deadline_window();
            let conns: Vec<ConnId> = self.peers.keys().copied().collect();
            for conn in conns {
                let Some(p) = self.peers.get_mut(&conn) else { continue };
                if p.phase != Phase::Active || !(p.counted_as_seed || p.have.get(d)) {
                    continue;
                }
                let (keep, cancel): (Vec<_>, Vec<_>) =
                    std::mem::take(&mut p.requests).into_iter().partition(|(b, _)| window.contains(&b.piece));
                p.requests = keep;
                let mut wake = false;
                for (b, _) in cancel {
                    wake |= p.send(&Message::Cancel(b), now);
                    self.picker.request_failed(conn, b);
                }
                mark(&mut self.dirty, conn, wake);
            }
        }
        self.fill_all(now, cfg, io);
    }

    /// Recomputes piece priorities: a piece gets the highest priority of the files it touches.
    fn apply_priorities(&mut self, pieces: std::ops::Range<u32>) {
        let mut spans = Vec::new();
        for piece in pieces {
            spans.clear();
            let plen = self.meta.info.piece_length as u64;
            self.layout.spans(piece as u64 * plen, self.picker.piece_size(piece), &mut spans);
            let best = spans
                .iter()
                .filter(|s| !s.pad)
                .map(|s| self.file_priorities.get(s.file as usize).copied().unwrap_or_default())
                .max()
                .unwrap_or(FilePriority::Skip);
            self.picker.set_priority(piece, priority_of(best));
        }
    }

    fn update_finished(&mut self, now: Instant, io: &mut Io) {
        if self.fetching.is_some() {
            // No pieces known yet is not "every piece had".
            return;
        }
        let done = self.picker.is_finished();
        if !done {
            self.finished = false;
        } else if !self.finished && self.state == State::Active {
            // Set only when announced: a piece that completes while the torrent is in error
            // (a write that was under way) is announced when it resumes, not never.
            self.finished = true;
            self.on_finished(now, io);
        }
    }

    fn on_finished(&mut self, now: Instant, io: &mut Io) {
        if self.downloaded > 0 {
            self.trackers.completed(now);
        }
        io.event(Event::Finished { torrent: self.id });
        let conns: Vec<ConnId> = self.peers.keys().copied().collect();
        for conn in conns {
            let Some(p) = self.peers.get_mut(&conn) else { continue };
            if p.phase != Phase::Active {
                continue;
            }
            for (b, _) in std::mem::take(&mut p.requests) {
                // Finished with requests out means the rest was skipped: should the user want
                // it again, the picker must not count these as still on their way.
                self.picker.request_failed(conn, b);
                mark(&mut self.dirty, conn, p.send(&Message::Cancel(b), now));
            }
            if p.am_interested {
                p.am_interested = false;
                mark(&mut self.dirty, conn, p.send(&Message::NotInterested, now));
            }
            if p.is_seed() && self.picker.have().is_full() {
                self.close(conn, now, io);
            }
        }
    }

    // ---- checking existing data ----

    fn check_more(&mut self, now: Instant, cfg: &Config, io: &mut Io) {
        let State::Checking(check) = &mut self.state else { return };
        let total = self.meta.info.piece_count();
        while let Some(piece) = check.next_piece(cfg.max_check_jobs, self.picker.have()) {
            let Some(expected) = self.meta.info.piece_hash(piece).copied() else { continue };
            let spans = self.layout.piece_spans(piece, self.picker.piece_size(piece));
            let id = io.job(self.id);
            check.started(id, piece);
            io.push(Output::Disk(DiskJob {
                id,
                torrent: self.id,
                kind: DiskJobKind::Verify { piece, spans, expected },
            }));
        }
        if check.is_done() {
            // Nothing was left to check (no piece had a hash): done without a result to wait for.
            io.event(Event::Checked { torrent: self.id, have: self.picker.have().count_ones(), total });
            self.start_active(now, io);
        }
    }

    fn on_verified(&mut self, verified: Verified, ok: bool, now: Instant, cfg: &Config, io: &mut Io) {
        let total = self.meta.info.piece_count();
        let Verified { piece, checked, done } = verified;
        if ok {
            self.picker.set_have(piece);
        }
        if checked % 64 == 0 || done {
            io.event(Event::CheckProgress { torrent: self.id, checked, total });
        }
        if done {
            io.event(Event::Checked { torrent: self.id, have: self.picker.have().count_ones(), total });
            self.start_active(now, io);
        } else {
            self.check_more(now, cfg, io);
        }
    }

    // ---- connections ----

    /// Whether the torrent may look for peers on the DHT now (active, not private: BEP 27).
    pub fn wants_dht(&self) -> bool {
        self.state == State::Active && !self.meta.info.private
    }

    /// Whether we have the whole torrent (announced to the DHT as a seed: BEP 33).
    pub fn is_seed(&self) -> bool {
        self.fetching.is_none() && self.picker.have().is_full()
    }

    /// Adds peer addresses to dial; returns how many were new to us.
    pub fn add_candidates(&mut self, addrs: impl IntoIterator<Item = SocketAddr>, cfg: &Config) -> usize {
        self.peer_list.add(addrs, cfg)
    }

    /// Dials candidates while there is room; returns the new connections.
    pub fn connect_more(&mut self, now: Instant, cfg: &Config, io: &mut Io) -> Vec<ConnId> {
        let mut new = Vec::new();
        if self.state != State::Active {
            return new;
        }
        // Each candidate is looked at once at most.
        for _ in 0..self.peer_list.candidates() {
            if self.peers.len() >= cfg.max_peers_per_torrent || io.half_open >= cfg.max_half_open || io.conn_room == 0 {
                break;
            }
            let peers = &self.peers;
            let Some(addr) = self.peer_list.next_dial(now, |a| crowded(peers, a, cfg)) else { continue };
            let conn = io.conn();
            io.half_open += 1;
            io.conn_room -= 1;
            let decoder = Box::new(Decoder::new_expecting_handshake(cfg.wire_limits));
            let peer =
                Peer::new(addr, true, Phase::Connecting { since: now }, decoder, self.meta.info.piece_count(), now);
            self.peers.insert(conn, peer);
            io.push(Output::Peer(PeerIo::Connect { conn, addr }));
            new.push(conn);
        }
        new
    }

    pub fn on_connected(&mut self, conn: ConnId, now: Instant, io: &mut Io) {
        let Some(p) = self.peers.get_mut(&conn) else { return };
        if let Phase::Connecting { .. } = p.phase {
            // Counted when it was dialled (checked by `Engine::check_invariants`).
            io.half_open -= 1;
            p.phase = Phase::Handshake { since: now };
            let was_empty = p.outbuf.is_empty();
            Handshake::new(self.info_hash, self.our_id).encode(&mut p.outbuf);
            mark(&mut self.dirty, conn, was_empty);
        }
    }

    /// Whether `addr`'s address has [`Config::max_connections_per_ip`] peers here already.
    fn crowded(&self, addr: SocketAddr, cfg: &Config) -> bool {
        crowded(&self.peers, addr, cfg)
    }

    /// The peer to close for a newcomer when the torrent is full (see [`pick_replacement`]):
    /// only established peers compete, dials and handshakes in progress end on their own.
    fn replacement(&self) -> Option<ConnId> {
        let fetching = self.fetching.is_some();
        pick_replacement(self.peers.iter().filter(|(_, p)| p.phase == Phase::Active).map(|(conn, p)| Occupant {
            conn: *conn,
            usefulness: p.usefulness(fetching),
            since: p.activated,
        }))
    }

    /// A torrent full of peers that do nothing for it closes the longest idle one (once a
    /// tick) while it has addresses to dial: squatters must not keep it from finding peers,
    /// and incoming connections alone may never come (a seeder may be the only one that knows
    /// its leechers' addresses). No age is asked of the idle peer: squatters replacing each
    /// other keep every one of them young.
    fn make_room_to_dial(&mut self, now: Instant, cfg: &Config, io: &mut Io) {
        let fetching = self.fetching.is_some();
        if self.peers.len() < cfg.max_peers_per_torrent {
            return;
        }
        let peers = &self.peers;
        if !self.peer_list.has_dialable(now, |a| crowded(peers, a, cfg)) {
            return;
        }
        let idle = self
            .peers
            .iter()
            .filter(|(_, p)| p.phase == Phase::Active)
            .map(|(conn, p)| Occupant { conn: *conn, usefulness: p.usefulness(fetching), since: p.activated })
            .filter(|o| o.usefulness == Usefulness::Idle);
        if let Some(victim) = pick_replacement(idle) {
            self.close(victim, now, io);
        }
    }

    /// Takes an incoming connection whose handshake named this torrent; false to refuse it.
    /// A full torrent (or session) closes its least useful peer to take it, if it has one
    /// that may be replaced.
    pub fn attach_incoming(
        &mut self,
        admit: Admit,
        decoder: Box<Decoder>,
        hs: Handshake,
        now: Instant,
        cfg: &Config,
        io: &mut Io,
    ) -> bool {
        let Admit { conn, addr, session_full } = admit;
        if self.state != State::Active || self.crowded(addr, cfg) {
            return false;
        }
        if self.peer_list.is_banned(addr) {
            return false;
        }
        if session_full || self.peers.len() >= cfg.max_peers_per_torrent {
            match self.replacement() {
                Some(victim) => self.close(victim, now, io),
                None => return false,
            }
        }
        let mut peer =
            Peer::new(addr, false, Phase::Handshake { since: now }, decoder, self.meta.info.piece_count(), now);
        Handshake::new(self.info_hash, self.our_id).encode(&mut peer.outbuf);
        self.peers.insert(conn, peer);
        self.dirty.push(conn);
        self.activate(conn, hs, now, cfg, io)
    }

    /// Handshakes are exchanged: check the peer and send our opening messages.
    fn activate(&mut self, conn: ConnId, hs: Handshake, now: Instant, cfg: &Config, io: &mut Io) -> bool {
        let existing = self
            .peers
            .iter()
            .find(|(c, p)| **c != conn && p.phase == Phase::Active && p.peer_id == hs.peer_id)
            .map(|(c, p)| (*c, p.outgoing));
        let mut duplicate = false;
        if let (Some((old, old_outgoing)), Some(new_outgoing)) = (existing, self.peers.get(&conn).map(|p| p.outgoing)) {
            // Both sides dialled each other (peers found at once through the DHT or PEX). Both
            // keep the connection dialled by the side with the smaller peer id, so exactly one
            // survives; closing "the newer one" on each side could close both.
            let keep_outgoing = self.our_id.0 < hs.peer_id.0;
            if new_outgoing != old_outgoing && new_outgoing == keep_outgoing {
                self.close(old, now, io);
            } else {
                duplicate = true;
            }
        }
        if hs.peer_id == self.our_id || hs.info_hash != self.info_hash || duplicate {
            if hs.peer_id == self.our_id {
                if let Some(p) = self.peers.get(&conn) {
                    self.peer_list.ban(p.addr);
                }
            }
            self.close(conn, now, io);
            return false;
        }
        let pieces = self.meta.info.piece_count();
        let have = self.picker.have().clone();
        // Without metadata we have nothing, whatever an empty bitfield says.
        let seed = self.fetching.is_none() && have.is_full();
        let ext = self.extended_handshake(cfg);
        let Some(p) = self.peers.get_mut(&conn) else { return false };
        p.peer_id = hs.peer_id;
        p.activated = now;
        p.fast = hs.supports_fast();
        p.extended = hs.supports_extended();
        p.phase = Phase::Active;
        p.queue_target = cfg.min_requests_per_peer;
        p.pex = PexState::new(now);
        if self.fetching.is_none() {
            // Until the metadata is in, any piece index is remembered, not refused.
            p.decoder.set_piece_count(pieces);
        }
        let was_empty = p.outbuf.is_empty();
        if p.extended {
            p.send(&Message::Extended { id: 0, payload: ext.encode() }, now);
        }
        if p.fast && seed {
            p.send(&Message::HaveAll, now);
        } else if p.fast && have.count_ones() == 0 {
            p.send(&Message::HaveNone, now);
        } else if have.count_ones() > 0 {
            p.send(&Message::Bitfield(have.as_bytes().to_vec()), now);
        }
        mark(&mut self.dirty, conn, was_empty);
        let (addr, outgoing) = (p.addr, p.outgoing);
        self.peer_list.handshaken(addr, outgoing);
        true
    }

    /// Our extended handshake (BEP 10): the extensions we speak and what peers should know.
    fn extended_handshake(&self, cfg: &Config) -> ExtendedHandshake {
        let known = self.fetching.is_none();
        let mut m = BTreeMap::from([(UT_METADATA.to_owned(), OUR_UT_METADATA)]);
        if self.pex_allowed() {
            m.insert(UT_PEX.to_owned(), OUR_UT_PEX);
        }
        ExtendedHandshake {
            v: Some(cfg.client_name.clone()),
            p: Some(cfg.listen_port),
            reqq: Some(cfg.max_peer_requests as u32),
            // BEP 21: a seed says so, and other seeds need not stay connected to it.
            upload_only: (known && self.picker.have().is_full()).then_some(true),
            m,
            metadata_size: known.then_some(self.meta.info_bytes.len() as u64),
            ..Default::default()
        }
    }

    pub fn on_data(&mut self, conn: ConnId, data: &[u8], now: Instant, cfg: &Config, io: &mut Io) {
        let Some(p) = self.peers.get_mut(&conn) else { return };
        p.last_recv = now;
        // Whole messages are decoded straight from `data`; the decoder keeps only a partial
        // tail (one copy less of every block received).
        let mut input = data;
        if let Phase::Handshake { .. } = p.phase {
            p.decoder.feed(input);
            input = &[];
            match p.decoder.take_handshake() {
                Ok(None) => return,
                Ok(Some(hs)) => {
                    if !self.activate(conn, hs, now, cfg, io) {
                        return;
                    }
                }
                Err(_) => {
                    self.close(conn, now, io);
                    return;
                }
            }
        }
        loop {
            let next = match self.peers.get_mut(&conn) {
                Some(p) if p.phase == Phase::Active => p.decoder.next_from(&mut input),
                _ => return,
            };
            match next {
                // A block straight from the received bytes: copied once, into its piece.
                Ok(Some(Decoded::Block { piece, offset, data })) => {
                    if let Some(p) = self.peers.get_mut(&conn) {
                        p.got_first_message = true;
                        p.spoke = true;
                        let block = BlockRef { piece, offset, len: data.len() as u32 };
                        self.on_block(conn, block, data, now, cfg, io);
                    }
                }
                Ok(Some(Decoded::Message(msg))) => {
                    if let (Some(p), false) = (self.peers.get_mut(&conn), matches!(msg, Message::KeepAlive)) {
                        p.spoke = true;
                    }
                    self.on_message(conn, msg, now, cfg, io)
                }
                Ok(None) => break,
                Err(_) => {
                    self.close(conn, now, io);
                    return;
                }
            }
        }
        self.fill_requests(conn, now, cfg, io);
    }

    pub fn on_sent(&mut self, conn: ConnId, n: u64, now: Instant, cfg: &Config, io: &mut Io) {
        let Some(p) = self.peers.get_mut(&conn) else { return };
        p.send_queued = p.send_queued.saturating_sub(n);
        p.send_window = p.send_window.saturating_add(n).min(cfg.max_send_buffer.max(cfg.min_send_buffer));
        // The rate that sizes its backlog is what the socket really took, not what we queued.
        p.ul.add(n);
        self.serve_requests(conn, now, cfg, io);
    }

    pub fn on_closed(&mut self, conn: ConnId, now: Instant, io: &mut Io) {
        self.drop_peer(conn, now, io);
    }

    /// Closes a connection from our side.
    fn close(&mut self, conn: ConnId, now: Instant, io: &mut Io) {
        if self.drop_peer(conn, now, io) {
            io.push(Output::Peer(PeerIo::Close { conn }));
            io.closed.push(conn);
        }
    }

    fn close_all(&mut self, now: Instant, io: &mut Io) {
        let conns: Vec<ConnId> = self.peers.keys().copied().collect();
        for conn in conns {
            self.close(conn, now, io);
        }
        // Partly received pieces go with their peers.
        for buf in self.download.drop_partial(&mut self.picker) {
            io.recycle(buf);
        }
    }

    /// Forgets a peer: its availability, its requests, its slot. True if it existed.
    fn drop_peer(&mut self, conn: ConnId, now: Instant, io: &mut Io) -> bool {
        let Some(p) = self.peers.remove(&conn) else { return false };
        if let Phase::Connecting { .. } = p.phase {
            // Counted when it was dialled (checked by `Engine::check_invariants`).
            io.half_open -= 1;
        }
        if p.phase == Phase::Active {
            self.picker.peer_gone(conn, &p.have, p.counted_as_seed);
        }
        self.choker.peer_gone(conn);
        if let Some(phase) = &mut self.fetching {
            phase.fetch.peer_gone(conn);
        }
        let peers = &self.peers;
        self.peer_list.disconnected(conn, p.addr, p.phase == Phase::Active, now, |a| addr_in_use(peers, a));
        true
    }

    // ---- choking ----

    fn choke(&mut self, conn: ConnId, now: Instant) {
        let Some(p) = self.peers.get_mut(&conn) else { return };
        if p.am_choking {
            return;
        }
        p.am_choking = true;
        let was_empty = p.send(&Message::Choke, now);
        // Blocks read but held back by the upload limit are not sent to a choked peer either.
        let queued = p.upload.choke();
        if p.fast {
            for b in queued {
                p.send(&Message::Reject(b), now);
            }
        }
        mark(&mut self.dirty, conn, was_empty);
    }

    fn unchoke(&mut self, conn: ConnId, now: Instant) {
        let Some(p) = self.peers.get_mut(&conn) else { return };
        if p.am_choking {
            p.am_choking = false;
            mark(&mut self.dirty, conn, p.send(&Message::Unchoke, now));
        }
    }

    /// Unchokes a newly interested peer at once if a slot is free, instead of at the next rechoke.
    fn quick_unchoke(&mut self, conn: ConnId, now: Instant, cfg: &Config) {
        if self.fetching.is_some() {
            return; // nothing to upload yet
        }
        let unchoked = self.peers.values().filter(|p| !p.am_choking).count();
        if unchoked < cfg.upload_slots {
            self.unchoke(conn, now);
        }
    }

    fn rechoke(&mut self, now: Instant) {
        let stats: Vec<ChokeStats> = self
            .peers
            .iter()
            .filter(|(_, p)| p.phase == Phase::Active)
            .map(|(c, p)| ChokeStats {
                conn: *c,
                interested: p.peer_interested,
                download_rate: p.dl.get(),
                upload_rate: p.ul.get(),
                snubbed: p.snubbed,
                unchoked: !p.am_choking,
            })
            .collect();
        let seeding = self.picker.is_finished();
        let unchoke = self.choker.rechoke(now, &stats, seeding);
        for s in stats {
            if unchoke.contains(&s.conn) {
                self.unchoke(s.conn, now);
            } else {
                self.choke(s.conn, now);
            }
        }
    }

    // ---- jobs ----

    /// A disk or hash job finished: routes it to the part that asked for it.
    pub fn on_job(&mut self, job: JobId, result: JobResult, now: Instant, cfg: &Config, io: &mut Io) {
        let result = match self.download.finish(job, result) {
            Ok(done) => return self.on_download_job(done, now, cfg, io),
            Err(result) => result,
        };
        if let Some(conn) = self.reads.finish(job) {
            if let JobResult::Read(result) = result {
                self.on_read(job, conn, result, now, cfg, io);
            }
            return;
        }
        let State::Checking(check) = &mut self.state else { return };
        if let (Some(verified), JobResult::Verified(result)) = (check.finished(job), result) {
            // Data that cannot be read (missing, short, unreadable) is simply not valid yet.
            let ok = result.unwrap_or(false);
            self.on_verified(verified, ok, now, cfg, io);
        }
    }

    /// A verified piece was written (or failed to be): it counts as ours once on disk.
    fn on_written(
        &mut self,
        piece: u32,
        result: Result<(), DiskError>,
        data: Vec<u8>,
        now: Instant,
        cfg: &Config,
        io: &mut Io,
    ) {
        io.recycle(data);
        match result {
            Ok(()) => {
                self.picker.hash_passed(piece);
                io.event(Event::PieceFinished { torrent: self.id, piece });
                self.broadcast_have(piece, now);
                self.update_finished(now, io);
                self.fill_all(now, cfg, io);
            }
            Err(e) => {
                self.picker.reset_piece(piece);
                self.fail(e.into(), now, io);
            }
        }
    }

    fn broadcast_have(&mut self, piece: u32, now: Instant) {
        for (conn, p) in self.peers.iter_mut() {
            if p.phase == Phase::Active && !p.have.get(piece) {
                let was_empty = p.send(&Message::Have { piece }, now);
                mark(&mut self.dirty, *conn, was_empty);
            }
        }
    }

    /// Blames the peers that sent a piece that failed its hash check.
    fn punish(&mut self, contributors: &[ConnId], now: Instant, cfg: &Config, io: &mut Io) {
        let sole = contributors.len() == 1;
        for conn in contributors {
            let Some(p) = self.peers.get(conn) else { continue };
            let addr = p.addr;
            if self.peer_list.hash_failed(addr, sole, cfg.hashfails_to_ban) {
                io.event(Event::PeerBanned { torrent: self.id, addr });
                self.close(*conn, now, io);
            }
        }
    }

    // ---- time ----

    pub fn tick(&mut self, now: Instant, cfg: &Config, io: &mut Io) {
        self.ticks += 1;
        if let State::Removing { deadline } = self.state {
            if now >= deadline {
                // Give up on trackers that never answered `stopped`.
                self.trackers.give_up(io);
            }
            return;
        }
        self.dl_rate.tick(now);
        self.ul_rate.tick(now);
        let mut to_close = Vec::new();
        let mut snubbed = Vec::new();
        for (conn, p) in self.peers.iter_mut() {
            p.dl.tick(now);
            p.ul.tick(now);
            p.announced.tick(now);
            match p.phase {
                Phase::Connecting { since } if now - since > cfg.connect_timeout => to_close.push(*conn),
                Phase::Handshake { since } if now - since > cfg.handshake_timeout => to_close.push(*conn),
                Phase::Active => {
                    // A peer that handshakes and then says nothing only holds a slot.
                    let mute = !p.spoke && now - p.activated > cfg.handshake_timeout;
                    if mute || now - p.last_recv > cfg.inactivity_timeout {
                        to_close.push(*conn);
                        continue;
                    }
                    if now - p.last_send > cfg.keepalive_interval {
                        mark(&mut self.dirty, *conn, p.send(&Message::KeepAlive, now));
                    }
                    // Two seconds' worth of blocks, once the rate is known.
                    if p.dl.get() > 0 {
                        p.slow_start = false;
                    }
                    if !p.slow_start {
                        let by_rate = (p.dl.get() * 2 / BLOCK_SIZE as u64) as usize;
                        p.queue_target = by_rate.clamp(cfg.min_requests_per_peer, cfg.max_requests_per_peer);
                    }
                    if !p.requests.is_empty() && now - p.last_block > cfg.request_timeout {
                        snubbed.push(*conn);
                    }
                }
                _ => {}
            }
        }
        for conn in snubbed {
            let Some(p) = self.peers.get_mut(&conn) else { continue };
            p.snubbed = true;
            p.last_block = now;
            // Others may send these blocks sooner. The peer is told, so that it does not spend
            // upload on them; any it sends anyway are kept if still needed.
            let mut wake = false;
            for (b, _) in std::mem::take(&mut p.requests) {
                self.picker.request_failed(conn, b);
                wake |= p.send(&Message::Cancel(b), now);
                p.release_request(b);
            }
            mark(&mut self.dirty, conn, wake);
        }
        for conn in to_close {
            self.close(conn, now, io);
        }
        if self.state == State::Active {
            self.make_room_to_dial(now, cfg, io);
            self.send_pex(now);
        }
        if self.state == State::Active && self.fetching.is_some() {
            self.request_metadata_all(now);
            if self.ticks.is_multiple_of(5) {
                self.requeue_known(now);
            }
        } else if self.state == State::Active {
            if now >= self.choker.next_rechoke() {
                self.rechoke(now);
            }
            if self.ticks.is_multiple_of(5) {
                self.requeue_known(now);
            }
            self.fill_all(now, cfg, io);
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
        let fetching = self.fetching.is_some();
        let alone = self.peers.values().all(|p| p.phase != Phase::Active || p.usefulness(fetching) == Usefulness::Idle);
        self.peer_list.requeue(now, alone && !self.picker.is_finished());
    }

    // ---- trackers ----

    fn left(&self) -> u64 {
        if self.fetching.is_some() {
            // Unknown without metadata; anything non-zero says we are a leecher.
            return u64::from(BLOCK_SIZE);
        }
        let stats = self.byte_counts();
        stats.0.saturating_sub(stats.1)
    }

    /// (wanted bytes, wanted bytes we have)
    fn byte_counts(&self) -> (u64, u64) {
        let info = &self.meta.info;
        let mut wanted = 0;
        let mut have = 0;
        for piece in 0..info.piece_count() {
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

    pub fn drive_trackers(&mut self, now: Instant, cfg: &Config, io: &mut Io) {
        if matches!(self.state, State::Checking { .. } | State::CheckQueued { .. }) {
            return;
        }
        while let Some(due) = self.trackers.next_announce(now) {
            let event = due.event;
            let params = AnnounceParams {
                info_hash: self.info_hash,
                peer_id: self.our_id,
                port: cfg.listen_port,
                uploaded: self.uploaded,
                downloaded: self.downloaded,
                left: self.left(),
                event,
                num_want: if event == AnnounceEvent::Stopped { 0 } else { cfg.num_want },
                key: self.trackers.key(),
                tracker_id: due.tracker_id.clone(),
            };
            let peers = self.trackers.announce(due, params, now, &mut self.rng, io);
            self.add_tracker_peers(peers, cfg);
        }
    }

    /// Asks every tracker for the swarm's seeder and leecher counts.
    pub fn scrape(&mut self, now: Instant, cfg: &Config, io: &mut Io) {
        let peers = self.trackers.scrape(self.info_hash, now, &mut self.rng, io);
        self.add_tracker_peers(peers, cfg);
    }

    pub fn on_tracker_http(
        &mut self,
        job: JobId,
        result: Result<Vec<u8>, String>,
        now: Instant,
        cfg: &Config,
        io: &mut Io,
    ) {
        let peers = self.trackers.on_http(job, result, &self.info_hash, now, io);
        self.add_tracker_peers(peers, cfg);
    }

    pub fn on_tracker_udp(
        &mut self,
        job: JobId,
        result: Result<&[u8], String>,
        now: Instant,
        cfg: &Config,
        io: &mut Io,
    ) {
        let peers = self.trackers.on_udp(job, result, now, &mut self.rng, io);
        self.add_tracker_peers(peers, cfg);
    }

    pub fn on_tracker_timeout(&mut self, now: Instant, cfg: &Config, io: &mut Io) {
        let peers = self.trackers.on_timeout(now, io);
        self.add_tracker_peers(peers, cfg);
    }

    pub fn tracker_deadline(&self) -> Option<Instant> {
        let checking = matches!(self.state, State::Checking { .. } | State::CheckQueued { .. });
        self.trackers.deadline(checking)
    }

    pub fn udp_sockets(&self) -> Vec<JobId> {
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
    pub fn flush(&mut self, io: &mut Io) {
        for conn in self.dirty.drain(..) {
            let Some(p) = self.peers.get_mut(&conn) else { continue };
            if p.outbuf.is_empty() || matches!(p.phase, Phase::Connecting { .. }) {
                continue;
            }
            let data = std::mem::take(&mut p.outbuf);
            p.send_queued += data.len() as u64;
            io.push(Output::Peer(PeerIo::Send { conn, data }));
        }
    }

    // ---- invariants ----

    /// Its connections, each with whether it is still being dialled.
    pub fn conns(&self) -> impl Iterator<Item = (ConnId, bool)> + '_ {
        self.peers.iter().map(|(conn, p)| (*conn, matches!(p.phase, Phase::Connecting { .. })))
    }

    /// Checks its own books: the download's bytes match its buffers and jobs, and every read
    /// a peer waits for is in flight for it.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.download.check()?;
        self.reads.check(self.peers.iter().map(|(conn, p)| (*conn, &p.upload)))
    }

    // ---- getters ----

    pub fn stats(&self) -> TorrentStats {
        let info = &self.meta.info;
        let (wanted_bytes, have_bytes) = self.byte_counts();
        let state = match &self.state {
            State::CheckQueued { .. } => TorrentState::CheckQueued,
            State::Checking(check) => {
                TorrentState::Checking { progress: check.checked() as f32 / info.piece_count().max(1) as f32 }
            }
            State::Active if self.fetching.is_some() => TorrentState::Metadata,
            State::Active if self.picker.is_finished() => TorrentState::Seeding,
            State::Active => TorrentState::Downloading,
            State::Paused { .. } | State::Removing { .. } => TorrentState::Paused,
            State::Error(e) => TorrentState::Error(e.to_string()),
        };
        let active = self.peers.values().filter(|p| p.phase == Phase::Active);
        TorrentStats {
            info_hash: self.info_hash,
            name: info.name.clone(),
            state,
            pieces_have: self.picker.have().count_ones(),
            pieces_total: info.piece_count(),
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

    pub fn peer_requests(&self, conn: ConnId) -> Option<PeerRequests> {
        let p = self.peers.get(&conn)?;
        Some(PeerRequests { queued: p.upload.queued(), outstanding: p.requests.len() })
    }

    pub fn peer_stats(&self) -> Vec<PeerStats> {
        let total = self.meta.info.piece_count().max(1) as f32;
        let optimistic = self.choker.optimistic();
        self.peers
            .iter()
            .filter(|(_, p)| p.phase == Phase::Active)
            .map(|(conn, p)| PeerStats {
                addr: p.addr,
                client: p.client.clone(),
                peer_id: p.peer_id,
                outgoing: p.outgoing,
                progress: if p.is_seed() { 1.0 } else { p.have.count_ones() as f32 / total },
                download_rate: p.dl.get(),
                upload_rate: p.ul.get(),
                peer_download_rate: p.announced.get(),
                downloaded: p.dl.total(),
                uploaded: p.ul.total(),
                am_choking: p.am_choking,
                am_interested: p.am_interested,
                peer_choking: p.peer_choking,
                peer_interested: p.peer_interested,
                snubbed: p.snubbed,
                optimistic: optimistic == Some(*conn) && !p.am_choking,
                queued_requests: p.upload.queued(),
                outstanding_requests: p.requests.len(),
                seed: p.is_seed(),
                upload_only: p.upload_only || p.is_seed(),
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

/// Records that a peer has bytes to flush (once per batch).
fn mark(dirty: &mut Vec<ConnId>, conn: ConnId, was_empty: bool) {
    if was_empty {
        dirty.push(conn);
    }
}
