//! One torrent: its pieces, its peers, its trackers, and the jobs it has asked for.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod fetch;
mod peer;
mod pex;
mod ut_metadata;

use super::admission::{pick_replacement, AddrKey, Occupant, Usefulness};
use super::{
    AddTorrent, Config, DiskError, DiskJob, DiskJobKind, EngineError, Event, FilePriority, HashJob, Io, JobResult,
    Output, PeerRequests, PeerStats, PlacedSpan, TorrentState, TorrentStats, TrackerJob,
};
use crate::bitfield::Bitfield;
use crate::choker::{Choker, ChokerConfig, PeerStats as ChokeStats};
use crate::metainfo::Metainfo;
use crate::picker::{BlockOutcome, Picker, Priority};
use crate::storage::FileLayout;
use crate::tracker::{
    announce_url, parse_announce, parse_scrape, parse_udp_url, scrape_request_url, AnnounceEvent, AnnounceParams,
    AnnounceResponse, TrackerIndex, TrackerList, UdpConfig, UdpExchange, UdpOutcome,
};
use crate::types::{BlockRef, ConnId, InfoHash, Instant, JobId, PeerId, BLOCK_SIZE};
use crate::wire::{
    piece_header, Decoded, Decoder, ExtendedHandshake, Handshake, Message, PIECE_FRAME_HEADER, UT_METADATA, UT_PEX,
};
use peer::{Peer, PendingRead, Phase, INITIAL_SEND_WINDOW};
pub(crate) use pex::PexState;
use pex::OUR_UT_PEX;
pub(crate) use ut_metadata::MetadataPhase;
use ut_metadata::OUR_UT_METADATA;

/// Largest block a peer may request from us.
const MAX_REQUEST_LEN: u32 = 128 * 1024;
/// Blocks served from one disk read (256 KiB).
const MAX_BLOCKS_PER_READ: usize = 16;
/// Addresses remembered per torrent.
const MAX_KNOWN: usize = 2000;
/// Failed connection attempts before an address is given up.
const MAX_CONNECT_FAILS: u32 = 4;
/// Addresses peers told us we have (`yourip`), remembered to avoid dialling ourselves.
const MAX_OWN_IPS: usize = 4;

#[derive(Clone, Debug, PartialEq)]
enum State {
    /// Waiting for a slot of `Config::max_checking_torrents`; lower tickets go first.
    CheckQueued {
        ticket: u64,
    },
    Checking {
        next: u32,
        in_flight: usize,
        checked: u32,
    },
    Active,
    Paused {
        needs_check: bool,
    },
    Error(String),
    Removing {
        deadline: Instant,
    },
}

/// What an outstanding job of this torrent was for.
enum Job {
    Hash { piece: u32 },
    Write { piece: u32 },
    Read { conn: ConnId },
    Verify { piece: u32 },
}

/// What we know of a peer address.
#[derive(Default)]
struct Known {
    connected: bool,
    queued: bool,
    banned: bool,
    fails: u32,
    hashfails: u32,
    retry_at: Instant,
    /// Only ever seen as the source of an incoming connection (an ephemeral port, not a
    /// listening one): never dialled.
    inbound_only: bool,
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

/// A tracker request in flight.
struct UdpRequest {
    tracker: TrackerIndex,
    url: String,
    host: String,
    port: u16,
    exchange: UdpExchange,
}

pub(crate) struct Torrent {
    pub id: TorrentId,
    pub info_hash: InfoHash,
    pub meta: Metainfo,
    layout: FileLayout,
    state: State,
    pub picker: Picker,
    trackers: TrackerList,
    choker: Choker,
    rng: ChaCha8Rng,
    our_id: PeerId,
    key: u32,
    peers: BTreeMap<ConnId, Peer>,
    known: HashMap<SocketAddr, Known>,
    candidates: VecDeque<SocketAddr>,
    buffers: HashMap<u32, Vec<u8>>,
    in_flight_bytes: u64,
    /// Upload disk reads in flight (bounded by `Config::max_read_jobs`).
    reads_in_flight: usize,
    jobs: HashMap<JobId, Job>,
    pub(crate) file_priorities: Vec<FilePriority>,
    http: HashMap<JobId, (TrackerIndex, String)>,
    /// HTTP scrapes in flight.
    scrapes: HashMap<JobId, TrackerIndex>,
    udp: BTreeMap<JobId, UdpRequest>,
    downloaded: u64,
    uploaded: u64,
    wasted: u64,
    dl_rate: crate::rate::Rate,
    ul_rate: crate::rate::Rate,
    /// Whether `Finished` went out for the pieces had now (reset when a piece is wanted again).
    finished: bool,
    ticks: u64,
    dirty: Vec<ConnId>,
    picked: Vec<BlockRef>,
    /// Listening addresses incoming peers gave in their extended handshake, marked connected in
    /// `known` while the connection lasts.
    listen_addrs: HashMap<ConnId, SocketAddr>,
    /// Added by magnet and still fetching its info dictionary: `meta` is a placeholder with
    /// no pieces and no files until then.
    fetching: Option<Box<MetadataPhase>>,
    /// New addresses peer exchange gave us (BEP 11).
    pex_learned: u32,
    /// Our addresses as peers see them (`yourip` of their extended handshakes).
    own_ips: Vec<IpAddr>,
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
        let trackers = TrackerList::new(meta.trackers.clone(), rng.random());
        let choker = Choker::new(
            ChokerConfig {
                upload_slots: cfg.upload_slots,
                rechoke_interval: Duration::from_secs(10),
                optimistic_interval: Duration::from_secs(30),
            },
            rng.random(),
        );
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
            key: rng.random(),
            rng,
            our_id,
            peers: BTreeMap::new(),
            known: HashMap::new(),
            candidates: VecDeque::new(),
            buffers: HashMap::new(),
            in_flight_bytes: 0,
            reads_in_flight: 0,
            jobs: HashMap::new(),
            file_priorities,
            http: HashMap::new(),
            scrapes: HashMap::new(),
            udp: BTreeMap::new(),
            downloaded: 0,
            uploaded: 0,
            wasted: 0,
            dl_rate: Default::default(),
            ul_rate: Default::default(),
            finished: false,
            ticks: 0,
            dirty: Vec::new(),
            picked: Vec::new(),
            listen_addrs: HashMap::new(),
            fetching,
            pex_learned: 0,
            own_ips: Vec::new(),
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
        // Results of an earlier, interrupted check must not count in this one.
        self.jobs.retain(|_, j| !matches!(j, Job::Verify { .. }));
        self.state = State::Checking { next: 0, in_flight: 0, checked: 0 };
        self.check_more(now, cfg, io);
    }

    fn start_active(&mut self, now: Instant, io: &mut Io) {
        self.leave_check_states(io);
        self.state = State::Active;
        // Back-off from before a pause or check was about our own closing, not the peers.
        for k in self.known.values_mut() {
            k.retry_at = now;
        }
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
        self.buffers.clear();
        self.finished = false;
        // Jobs in flight belong to the old picker: forget them so their results are ignored.
        self.jobs.retain(|_, j| matches!(j, Job::Read { .. }));
        self.in_flight_bytes = 0;
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
        matches!(self.state, State::Removing { .. })
            && !self.jobs.values().any(|j| matches!(j, Job::Hash { .. } | Job::Write { .. }))
            && self.http.is_empty()
            && self.scrapes.is_empty()
            && self.udp.is_empty()
            && self.trackers.is_stopped_done()
    }

    fn fail(&mut self, message: String, now: Instant, io: &mut Io) {
        if matches!(self.state, State::Removing { .. } | State::Error(_)) {
            return;
        }
        self.close_all(now, io);
        self.trackers.stop(now);
        io.event(Event::Error { torrent: self.id, message: message.clone() });
        self.leave_check_states(io);
        self.state = State::Error(message);
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
        if let Some(d) = piece.filter(|&d| moved && !self.picker.have().get(d) && !self.buffers.contains_key(&d)) {
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
        let State::Checking { next, in_flight, .. } = &mut self.state else { return };
        let total = self.meta.info.piece_count();
        while *in_flight < cfg.max_check_jobs && *next < total {
            let piece = *next;
            *next += 1;
            // Known good already (resume data, or an interrupted check): nothing to read.
            if self.picker.have().get(piece) {
                continue;
            }
            let Some(expected) = self.meta.info.piece_hash(piece).copied() else { continue };
            let spans = self.layout.piece_spans(piece, self.picker.piece_size(piece));
            let id = io.job(self.id);
            self.jobs.insert(id, Job::Verify { piece });
            io.push(Output::Disk(DiskJob {
                id,
                torrent: self.id,
                kind: DiskJobKind::Verify { piece, spans, expected },
            }));
            *in_flight += 1;
        }
        if *in_flight == 0 && *next >= total {
            // Nothing was left to check (no piece had a hash): done without a result to wait for.
            io.event(Event::Checked { torrent: self.id, have: self.picker.have().count_ones(), total });
            self.start_active(now, io);
        }
    }

    fn on_verified(&mut self, piece: u32, ok: bool, now: Instant, cfg: &Config, io: &mut Io) {
        let total = self.meta.info.piece_count();
        let State::Checking { next, in_flight, checked } = &mut self.state else { return };
        *in_flight -= 1;
        *checked += 1;
        let (checked, done) = (*checked, *next >= total && *in_flight == 0);
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

    /// Whether `addr` is our own listening address (as far as we know our addresses).
    fn is_self(&self, addr: &SocketAddr, cfg: &Config) -> bool {
        let ip = addr.ip();
        addr.port() == cfg.listen_port && (ip.is_loopback() || ip.is_unspecified() || self.own_ips.contains(&ip))
    }

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
        let mut new = 0;
        for addr in addrs {
            if addr.port() == 0 || self.is_self(&addr, cfg) || !cfg.net_policy().allows(addr) {
                continue;
            }
            if !self.known.contains_key(&addr) {
                if self.known.len() >= MAX_KNOWN {
                    continue;
                }
                new += 1;
            }
            let k = self.known.entry(addr).or_default();
            k.inbound_only = false;
            // A source names it again (a tracker's answer, PEX, the DHT): one more try, after
            // the back-off of its last failure, rather than never again.
            k.fails = k.fails.min(MAX_CONNECT_FAILS - 1);
            if !k.connected && !k.banned && !k.queued && k.fails < MAX_CONNECT_FAILS {
                k.queued = true;
                self.candidates.push_back(addr);
            }
        }
        new
    }

    /// Dials candidates while there is room; returns the new connections.
    pub fn connect_more(&mut self, now: Instant, cfg: &Config, io: &mut Io) -> Vec<ConnId> {
        let mut new = Vec::new();
        if self.state != State::Active {
            return new;
        }
        let mut budget = self.candidates.len();
        while budget > 0
            && self.peers.len() < cfg.max_peers_per_torrent
            && io.half_open < cfg.max_half_open
            && io.conn_room > 0
        {
            budget -= 1;
            let Some(addr) = self.candidates.pop_front() else { break };
            let crowded = self.crowded(addr, cfg);
            let Some(k) = self.known.get_mut(&addr) else { continue };
            if k.connected || k.banned || crowded {
                // A crowded address comes back with the others due (`requeue_known`).
                k.queued = false;
                continue;
            }
            if k.retry_at > now {
                self.candidates.push_back(addr);
                continue;
            }
            k.queued = false;
            k.connected = true;
            let conn = io.conn();
            io.half_open += 1;
            io.conn_room -= 1;
            let decoder = Box::new(Decoder::new_expecting_handshake(cfg.wire_limits));
            let peer =
                Peer::new(addr, true, Phase::Connecting { since: now }, decoder, self.meta.info.piece_count(), now);
            self.peers.insert(conn, peer);
            io.push(Output::Connect { conn, addr });
            new.push(conn);
        }
        new
    }

    pub fn on_connected(&mut self, conn: ConnId, now: Instant, io: &mut Io) {
        let Some(p) = self.peers.get_mut(&conn) else { return };
        if let Phase::Connecting { .. } = p.phase {
            io.half_open = io.half_open.saturating_sub(1);
            p.phase = Phase::Handshake { since: now };
            let was_empty = p.outbuf.is_empty();
            Handshake::new(self.info_hash, self.our_id).encode(&mut p.outbuf);
            mark(&mut self.dirty, conn, was_empty);
        }
    }

    /// Whether `addr`'s address has [`Config::max_connections_per_ip`] peers here already.
    fn crowded(&self, addr: SocketAddr, cfg: &Config) -> bool {
        let Some(key) = AddrKey::of(addr.ip()) else { return false };
        self.peers.values().filter(|p| AddrKey::of(p.addr.ip()) == Some(key)).count() >= cfg.max_connections_per_ip
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
        let dialable = self.candidates.iter().any(|a| {
            self.known.get(a).is_some_and(|k| !k.connected && !k.banned && k.retry_at <= now) && !self.crowded(*a, cfg)
        });
        if !dialable {
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
        if self.known.get(&addr).is_some_and(|k| k.banned) {
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
                    let addr = p.addr;
                    self.known.entry(addr).or_default().banned = true;
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
        let fresh = !self.known.contains_key(&addr);
        let k = self.known.entry(addr).or_default();
        k.connected = true;
        k.inbound_only |= fresh && !outgoing;
        if outgoing {
            // It answered: earlier failures (it was down, or busy) no longer count against it.
            k.fails = 0;
        }
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
                        self.on_block(conn, piece, offset, data, now, cfg, io);
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
            io.push(Output::Close { conn });
            io.closed.push(conn);
        }
    }

    fn close_all(&mut self, now: Instant, io: &mut Io) {
        let conns: Vec<ConnId> = self.peers.keys().copied().collect();
        for conn in conns {
            self.close(conn, now, io);
        }
        // The blocks of partly received pieces go with their buffers: the picker must ask for
        // them again, or the piece would complete around zeros and fail its hash check,
        // blaming whoever sent its last blocks.
        for (piece, buf) in std::mem::take(&mut self.buffers) {
            self.picker.reset_piece(piece);
            io.recycle(buf);
        }
        self.in_flight_bytes = self.jobs.values().filter(|j| matches!(j, Job::Hash { .. } | Job::Write { .. })).count()
            as u64
            * self.meta.info.piece_length as u64;
    }

    /// Forgets a peer: its availability, its requests, its slot. True if it existed.
    fn drop_peer(&mut self, conn: ConnId, now: Instant, io: &mut Io) -> bool {
        let Some(p) = self.peers.remove(&conn) else { return false };
        if let Phase::Connecting { .. } = p.phase {
            io.half_open = io.half_open.saturating_sub(1);
        }
        if p.phase == Phase::Active {
            self.picker.peer_gone(conn, &p.have, p.counted_as_seed);
        }
        self.choker.peer_gone(conn);
        if let Some(phase) = &mut self.fetching {
            phase.fetch.peer_gone(conn);
        }
        if let Some(k) = self.known.get_mut(&p.addr) {
            k.connected = false;
            if p.phase == Phase::Active {
                k.retry_at = now + Duration::from_secs(60);
            } else {
                k.fails += 1;
                // 5 s, 10 s, 20 s…: a peer that is still starting up gets another chance soon.
                k.retry_at = now + Duration::from_secs(5 << (k.fails - 1).min(6));
            }
        }
        if let Some(listen) = self.listen_addrs.remove(&conn) {
            self.release_listen_addr(listen, now);
        }
        true
    }

    /// An incoming peer's listening address may be dialled again once no connection uses it.
    fn release_listen_addr(&mut self, listen: SocketAddr, now: Instant) {
        let in_use = self.peers.values().any(|p| p.addr == listen) || self.listen_addrs.values().any(|a| *a == listen);
        if let (Some(k), false) = (self.known.get_mut(&listen), in_use) {
            k.connected = false;
            k.retry_at = k.retry_at.max(now + Duration::from_secs(60));
        }
    }

    // ---- messages ----

    fn wants(&self, piece: u32) -> bool {
        !self.picker.has(piece) && self.picker.priority(piece) != Priority::Skip
    }

    fn set_interested(&mut self, conn: ConnId, on: bool, now: Instant) {
        let Some(p) = self.peers.get_mut(&conn) else { return };
        if p.am_interested != on {
            p.am_interested = on;
            let msg = if on { Message::Interested } else { Message::NotInterested };
            mark(&mut self.dirty, conn, p.send(&msg, now));
        }
    }

    /// Full recomputation of our interest in a peer (after a bitfield or a priority change).
    fn update_interest(&mut self, conn: ConnId, now: Instant) {
        let Some(p) = self.peers.get(&conn) else { return };
        if p.phase != Phase::Active {
            return;
        }
        let on =
            if p.is_seed() { !self.picker.is_finished() } else { p.have.iter_ones().any(|piece| self.wants(piece)) };
        self.set_interested(conn, on, now);
    }

    fn on_message(&mut self, conn: ConnId, msg: Message, now: Instant, cfg: &Config, io: &mut Io) {
        if self.fetching.is_some()
            && matches!(msg, Message::Bitfield(_) | Message::Have { .. } | Message::HaveAll | Message::HaveNone)
        {
            return self.record_early(conn, msg, now, io);
        }
        let Some(p) = self.peers.get_mut(&conn) else { return };
        // The bitfield must come before other messages; extension messages may precede it.
        let first = !p.got_first_message;
        if !matches!(msg, Message::Extended { .. } | Message::KeepAlive) {
            p.got_first_message = true;
        }
        match msg {
            Message::KeepAlive | Message::Port(_) | Message::Suggest { .. } | Message::AllowedFast { .. } => {}
            Message::Choke => {
                p.peer_choking = true;
                for (b, _) in std::mem::take(&mut p.requests) {
                    self.picker.request_failed(conn, b);
                    // Under the fast extension a choke does not cancel requests (BEP 6): the
                    // peer rejects each, or may still send it.
                    if p.fast {
                        p.release_request(b);
                    }
                }
            }
            Message::Unchoke => {
                // The wait for a block starts at the unchoke, not at every repeat of it (a
                // peer that repeats UNCHOKE and sends nothing must still be found out).
                if p.peer_choking {
                    p.peer_choking = false;
                    p.last_block = now;
                }
            }
            Message::Interested => {
                p.peer_interested = true;
                self.quick_unchoke(conn, now, cfg);
            }
            Message::NotInterested => {
                p.peer_interested = false;
                if !p.am_choking {
                    self.choke(conn, now);
                }
            }
            Message::Have { piece } => {
                if p.have.set(piece, true) {
                    p.announced.add(self.picker.piece_size(piece) as u64);
                    if !p.counted_as_seed {
                        self.picker.peer_has_piece(piece);
                    }
                    if !p.am_interested && self.wants(piece) {
                        self.set_interested(conn, true, now);
                    }
                }
            }
            Message::Bitfield(bytes) => {
                let Some(bf) = Bitfield::from_bytes(&bytes, self.meta.info.piece_count()) else {
                    return self.close(conn, now, io);
                };
                if first {
                    if bf.is_full() {
                        p.counted_as_seed = true;
                        self.picker.peer_has_all();
                    } else {
                        self.picker.peer_bitfield(&bf);
                    }
                    p.have = bf;
                } else {
                    // aria2 sends HAVE_NONE, HAVEs, then a late BITFIELD: merge it like HAVEs.
                    self.merge_pieces(conn, bf.iter_ones());
                }
                self.after_pieces_known(conn, now, io);
            }
            Message::HaveAll | Message::HaveNone if !p.fast => self.close(conn, now, io),
            Message::HaveAll if first => {
                p.have = Bitfield::full(self.meta.info.piece_count());
                p.counted_as_seed = true;
                self.picker.peer_has_all();
                self.after_pieces_known(conn, now, io);
            }
            Message::HaveAll => {
                let all = 0..self.meta.info.piece_count();
                self.merge_pieces(conn, all);
                self.after_pieces_known(conn, now, io);
            }
            Message::HaveNone => {}
            Message::Request(b) => self.on_request(conn, b, now, cfg, io),
            Message::Piece { piece, offset, data } => self.on_block(conn, piece, offset, &data, now, cfg, io),
            Message::Cancel(b) => {
                let mut found = false;
                if let Some(i) = p.incoming.iter().position(|x| *x == b) {
                    p.incoming.remove(i);
                    found = true;
                }
                for read in &mut p.reads {
                    if let Some(i) = read.blocks.iter().position(|x| *x == b) {
                        read.blocks.remove(i);
                        found = true;
                    }
                }
                found |= p.drop_throttled(&b);
                if found && p.fast {
                    mark(&mut self.dirty, conn, p.send(&Message::Reject(b), now));
                }
            }
            Message::Reject(b) => {
                if p.take_request(&b) {
                    self.picker.request_failed(conn, b);
                } else {
                    p.forget_released(&b);
                }
            }
            Message::Extended { id: 0, payload } => {
                if let Ok(ext) = ExtendedHandshake::decode(&payload) {
                    p.client = ext.v;
                    // A later handshake may update it (a partial seed that finished).
                    p.upload_only = ext.upload_only.unwrap_or(false);
                    if let Some(q) = ext.reqq {
                        p.max_queue = (q as usize).clamp(1, cfg.max_requests_per_peer);
                    }
                    p.ut_metadata = ext.m.get(UT_METADATA).copied().filter(|id| *id != 0);
                    p.ut_pex = ext.m.get(UT_PEX).copied().filter(|id| *id != 0);
                    p.metadata_size = ext.metadata_size;
                    p.listen_port = ext.p.or(p.listen_port);
                    let own = ext.yourip.as_deref().and_then(ip_from_bytes).map(|ip| ip.to_canonical());
                    if let Some(ip) = own.filter(|ip| !self.own_ips.contains(ip) && self.own_ips.len() < MAX_OWN_IPS) {
                        self.own_ips.push(ip);
                    }
                    if let (Some(port), false) = (ext.p, p.outgoing) {
                        // Remember its listening address so we never dial it while connected.
                        let listen = SocketAddr::new(p.addr.ip(), port);
                        if listen != p.addr && (self.known.len() < MAX_KNOWN || self.known.contains_key(&listen)) {
                            self.known.entry(listen).or_default().connected = true;
                            if let Some(old) = self.listen_addrs.insert(conn, listen) {
                                if old != listen {
                                    self.release_listen_addr(old, now);
                                }
                            }
                        }
                    }
                    self.request_metadata(conn, now);
                }
            }
            Message::Extended { id: OUR_UT_METADATA, payload } => self.on_ut_metadata(conn, &payload, now, cfg, io),
            Message::Extended { id: OUR_UT_PEX, payload } => self.on_ut_pex(conn, &payload, now, cfg, io),
            Message::Extended { .. } => {}
        }
    }

    /// Adds pieces to what a peer has (late bitfields, HAVE_ALL after HAVEs).
    fn merge_pieces(&mut self, conn: ConnId, pieces: impl Iterator<Item = u32>) {
        let Some(p) = self.peers.get_mut(&conn) else { return };
        if p.counted_as_seed {
            return;
        }
        for piece in pieces {
            if p.have.set(piece, true) {
                self.picker.peer_has_piece(piece);
            }
        }
    }

    /// After learning a peer's pieces: drop it if neither side needs the other, else update interest.
    fn after_pieces_known(&mut self, conn: ConnId, now: Instant, io: &mut Io) {
        let Some(p) = self.peers.get(&conn) else { return };
        if self.picker.have().is_full() && p.is_seed() {
            return self.close(conn, now, io);
        }
        self.update_interest(conn, now);
    }

    fn on_request(&mut self, conn: ConnId, b: BlockRef, now: Instant, cfg: &Config, io: &mut Io) {
        let size = self.picker.piece_size(b.piece);
        let in_bounds =
            b.len > 0 && b.len <= MAX_REQUEST_LEN && b.offset.checked_add(b.len).is_some_and(|end| end <= size);
        if !in_bounds {
            return self.close(conn, now, io);
        }
        let have = self.picker.has(b.piece);
        let Some(p) = self.peers.get_mut(&conn) else { return };
        if !have || p.am_choking || p.incoming.len() >= cfg.max_peer_requests {
            if p.fast {
                mark(&mut self.dirty, conn, p.send(&Message::Reject(b), now));
            }
            return;
        }
        p.incoming.push_back(b);
        self.serve_requests(conn, now, cfg, io);
    }

    /// Starts disk reads for a peer's queued requests while its send backlog allows.
    ///
    /// Consecutive requests in one piece share one read: a peer asking for a whole piece costs
    /// one disk job, not sixteen.
    fn serve_requests(&mut self, conn: ConnId, _now: Instant, cfg: &Config, io: &mut Io) {
        let Some(p) = self.peers.get_mut(&conn) else { return };
        let plen = self.meta.info.piece_length as u64;
        // About a second of data at the rate the peer takes it: a fast peer never waits on a
        // disk round trip, a slow one does not pin megabytes of our memory. The floor is at
        // most a second of our whole upload, so that a slow uplink shared by many peers does
        // not queue a minute of data, and a peer's queue grows only as it takes data.
        let total = self.ul_rate.get();
        let floor = if total > 0 { total.clamp(INITIAL_SEND_WINDOW, cfg.min_send_buffer) } else { cfg.min_send_buffer };
        let limit = p.ul.get().clamp(floor, cfg.max_send_buffer.max(floor)).min(p.send_window);
        while p.upload_backlog() < limit && self.reads_in_flight < cfg.max_read_jobs {
            let Some(first) = p.incoming.pop_front() else { break };
            let mut blocks = vec![first];
            let mut end = first.offset + first.len;
            while blocks.len() < MAX_BLOCKS_PER_READ {
                match p.incoming.front() {
                    Some(next) if next.piece == first.piece && next.offset == end => {
                        end += next.len;
                        blocks.push(*next);
                        p.incoming.pop_front();
                    }
                    _ => break,
                }
            }
            let range = BlockRef { piece: first.piece, offset: first.offset, len: end - first.offset };
            // The buffer is the frames to send: each block's data after room for its header.
            let mut placed = Vec::with_capacity(blocks.len());
            let mut spans = Vec::with_capacity(1);
            let mut at = 0usize;
            for b in &blocks {
                at += PIECE_FRAME_HEADER;
                spans.clear();
                self.layout.spans(b.piece as u64 * plen + b.offset as u64, b.len, &mut spans);
                for span in &spans {
                    placed.push(PlacedSpan { at, span: *span });
                    at += span.len as usize;
                }
            }
            let id = io.job(self.id);
            self.jobs.insert(id, Job::Read { conn });
            self.reads_in_flight += 1;
            let frames = blocks.iter().map(|b| b.offset).collect();
            p.reads.push(PendingRead { job: id, offset: range.offset, len: range.len, blocks, frames });
            let kind = DiskJobKind::Read { block: range, len: at, spans: placed };
            io.push(Output::Disk(DiskJob { id, torrent: self.id, kind }));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_block(
        &mut self,
        conn: ConnId,
        piece: u32,
        offset: u32,
        data: &[u8],
        now: Instant,
        cfg: &Config,
        io: &mut Io,
    ) {
        let Some(p) = self.peers.get_mut(&conn) else { return };
        let len = data.len() as u32;
        let block = BlockRef { piece, offset, len };
        let asked = p.take_request(&block);
        if asked && p.slow_start {
            p.queue_target = (p.queue_target + 1).min(p.max_queue);
        }
        let late = !asked && p.forget_released(&block);
        p.dl.add(len as u64);
        p.last_block = now;
        if p.snubbed {
            p.snubbed = false;
        }
        self.dl_rate.add(len as u64);
        self.downloaded += len as u64;
        if self.state != State::Active {
            self.wasted += len as u64;
            return;
        }
        // A late block may open a piece buffer only within the memory cap, as a pick may.
        let room = self.buffers.contains_key(&piece) || self.in_flight_bytes < cfg.max_in_flight_bytes;
        let outcome = match (late, room) {
            (false, _) => self.picker.block_received(conn, block),
            (true, true) => self.picker.late_block_received(conn, block),
            (true, false) => BlockOutcome::Unexpected,
        };
        match outcome {
            BlockOutcome::Unexpected => self.wasted += len as u64,
            BlockOutcome::Accepted { piece_complete, also_requested_from } => {
                let size = self.picker.piece_size(piece) as usize;
                let in_flight = &mut self.in_flight_bytes;
                let buf = self.buffers.entry(piece).or_insert_with(|| {
                    *in_flight += size as u64;
                    io.piece_buffer(size)
                });
                // The picker accepted the block, so it lies inside the piece.
                if let Some(dst) = buf.get_mut(offset as usize..offset as usize + data.len()) {
                    dst.copy_from_slice(data);
                }
                for other in also_requested_from {
                    if other == conn {
                        continue;
                    }
                    if let Some(o) = self.peers.get_mut(&other) {
                        if o.take_request(&block) {
                            mark(&mut self.dirty, other, o.send(&Message::Cancel(block), now));
                        }
                    }
                }
                if piece_complete {
                    if let (Some(data), Some(expected)) =
                        (self.buffers.remove(&piece), self.meta.info.piece_hash(piece))
                    {
                        let id = io.job(self.id);
                        self.jobs.insert(id, Job::Hash { piece });
                        let write = self.layout.piece_spans(piece, self.picker.piece_size(piece));
                        io.push(Output::Hash(HashJob {
                            id,
                            torrent: self.id,
                            piece,
                            data,
                            expected: *expected,
                            write,
                        }));
                    }
                }
            }
        }
    }

    /// Tops up our request queue to a peer (as far as the download limit allows).
    fn fill_requests(&mut self, conn: ConnId, now: Instant, cfg: &Config, io: &mut Io) {
        if self.state != State::Active {
            return;
        }
        let Some(p) = self.peers.get_mut(&conn) else { return };
        if p.phase != Phase::Active || p.peer_choking || !p.am_interested {
            return;
        }
        let target = if p.snubbed { 1 } else { p.queue_target.min(p.max_queue).max(1) };
        if p.requests.len() >= target {
            return;
        }
        self.picked.clear();
        let mut want = target - p.requests.len();
        if io.down.is_limited() {
            // Requests are paced by the download limit: each asks for up to a block's worth.
            let balance = io.down.balance(now);
            if balance <= 0 {
                io.starve(self.id);
                return;
            }
            let blocks = balance.unsigned_abs().div_ceil(u64::from(BLOCK_SIZE));
            want = want.min(usize::try_from(blocks).unwrap_or(usize::MAX));
        }
        if self.in_flight_bytes >= cfg.max_in_flight_bytes {
            // Over the memory cap: only finish pieces that already hold a buffer. Opening new
            // ones would grow memory, and refusing to pick at all would leave those buffers
            // waiting forever for their last blocks (found by the simulator, seed 42). The
            // deadline window is exempt: a stream waiting on it must never starve, and it adds
            // at most `DEADLINE_WINDOW` pieces.
            let mut partial = Bitfield::new(self.meta.info.piece_count());
            for piece in self.buffers.keys().copied().chain(self.picker.deadline_window()) {
                if p.counted_as_seed || p.have.get(piece) {
                    partial.set(piece, true);
                }
            }
            if partial.count_ones() == 0 {
                return;
            }
            self.picker.pick(conn, &partial, false, want, &mut self.picked);
        } else {
            self.picker.pick(conn, &p.have, p.counted_as_seed, want, &mut self.picked);
        }
        if p.requests.is_empty() && !self.picked.is_empty() {
            p.last_block = now;
        }
        let was_empty = p.outbuf.is_empty();
        for &b in &self.picked {
            p.send(&Message::Request(b), now);
            p.requests.push((b, now));
            io.down.consume(u64::from(b.len));
        }
        if !self.picked.is_empty() {
            mark(&mut self.dirty, conn, was_empty);
        }
    }

    fn fill_all(&mut self, now: Instant, cfg: &Config, io: &mut Io) {
        let conns: Vec<ConnId> = self.peers.keys().copied().collect();
        for conn in conns {
            self.fill_requests(conn, now, cfg, io);
        }
    }

    /// Download tokens are back after this torrent ran out: top up every peer's queue.
    pub fn refill_requests(&mut self, now: Instant, cfg: &Config, io: &mut Io) {
        self.fill_all(now, cfg, io);
    }

    /// Sends one block that waited for upload tokens to `conn`; true if more are waiting.
    pub fn release_upload(&mut self, conn: ConnId, now: Instant, io: &mut Io) -> bool {
        let Some(p) = self.peers.get_mut(&conn) else { return false };
        let Some((b, frame)) = p.throttled.pop_front() else {
            p.waiting_for_tokens = false;
            return false;
        };
        io.up.consume(u64::from(b.len));
        p.throttled_bytes -= frame.len() as u64;
        p.send_queued += frame.len() as u64;
        p.last_send = now;
        io.push(Output::Send { conn, data: frame });
        self.ul_rate.add(u64::from(b.len));
        self.uploaded += u64::from(b.len);
        if p.throttled.is_empty() {
            p.waiting_for_tokens = false;
            return false;
        }
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
        let mut queued: Vec<BlockRef> = p.incoming.drain(..).collect();
        // Blocks read but held back by the upload limit are not sent to a choked peer either.
        queued.extend(p.throttled.drain(..).map(|(b, _)| b));
        p.throttled_bytes = 0;
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

    pub fn on_job(&mut self, job: JobId, result: JobResult, now: Instant, cfg: &Config, io: &mut Io) {
        let Some(kind) = self.jobs.remove(&job) else { return };
        match (kind, result) {
            (Job::Hash { piece }, JobResult::Hashed { ok: true, data, written: Some(result) }) => {
                self.on_written(piece, result, data, now, cfg, io);
            }
            (Job::Hash { piece }, JobResult::Hashed { ok: true, data, written: None }) => {
                let spans = self.layout.piece_spans(piece, self.picker.piece_size(piece));
                let id = io.job(self.id);
                self.jobs.insert(id, Job::Write { piece });
                io.push(Output::Disk(DiskJob {
                    id,
                    torrent: self.id,
                    kind: DiskJobKind::Write { piece, spans, data },
                }));
            }
            (Job::Hash { piece }, JobResult::Hashed { ok: false, data, .. }) => {
                io.recycle(data);
                let size = self.picker.piece_size(piece) as u64;
                self.in_flight_bytes = self.in_flight_bytes.saturating_sub(size);
                self.wasted += size;
                let contributors = self.picker.piece_contributors(piece).to_vec();
                self.picker.hash_failed(piece);
                io.event(Event::HashFailed { torrent: self.id, piece });
                self.punish(&contributors, now, cfg, io);
                self.fill_all(now, cfg, io);
            }
            (Job::Write { piece }, JobResult::Written { result, data }) => {
                self.on_written(piece, result, data, now, cfg, io);
            }
            (Job::Read { conn }, JobResult::Read(result)) => {
                self.reads_in_flight -= 1;
                // A freed read slot may unblock any peer, not only this one.
                let waiting: Vec<ConnId> =
                    self.peers.iter().filter(|(c, p)| **c != conn && !p.incoming.is_empty()).map(|(c, _)| *c).collect();
                for other in waiting {
                    self.serve_requests(other, now, cfg, io);
                }
                let Some(p) = self.peers.get_mut(&conn) else { return };
                let Some(i) = p.reads.iter().position(|r| r.job == job) else { return };
                let read = p.reads.swap_remove(i);
                let framed_len = read.len as usize + read.frames.len() * PIECE_FRAME_HEADER;
                match result {
                    Ok(mut data) if data.len() == framed_len => {
                        let throttled = io.up.is_limited() || !p.throttled.is_empty();
                        if !throttled && read.blocks.len() == read.frames.len() {
                            // Every block is still wanted: the buffer becomes the send as is,
                            // once the headers are in. Earlier messages go first.
                            for (i, b) in read.blocks.iter().enumerate() {
                                let at = (b.offset - read.offset) as usize + i * PIECE_FRAME_HEADER;
                                data[at..at + PIECE_FRAME_HEADER]
                                    .copy_from_slice(&piece_header(b.piece, b.offset, b.len));
                            }
                            if !p.outbuf.is_empty() {
                                let earlier = std::mem::take(&mut p.outbuf);
                                p.send_queued += earlier.len() as u64;
                                io.push(Output::Send { conn, data: earlier });
                            }
                            p.send_queued += data.len() as u64;
                            io.push(Output::Send { conn, data });
                            p.last_send = now;
                            let sent = read.len as u64;
                            self.ul_rate.add(sent);
                            self.uploaded += sent;
                        } else {
                            // Some blocks were cancelled, or the upload limit decides when
                            // they go: frame the ones still wanted one by one.
                            let frames = read_frames(&read, &data);
                            if throttled {
                                for (b, frame) in frames {
                                    p.throttled_bytes += frame.len() as u64;
                                    p.throttled.push_back((b, frame));
                                }
                                if !p.waiting_for_tokens && !p.throttled.is_empty() {
                                    p.waiting_for_tokens = true;
                                    io.wait_for_upload(self.id, conn);
                                }
                            } else {
                                let mut out = std::mem::take(&mut p.outbuf);
                                let mut sent = 0u64;
                                for (b, frame) in frames {
                                    out.extend_from_slice(&frame);
                                    sent += b.len as u64;
                                }
                                p.send_queued += out.len() as u64;
                                io.push(Output::Send { conn, data: out });
                                p.last_send = now;
                                self.ul_rate.add(sent);
                                self.uploaded += sent;
                            }
                        }
                        self.serve_requests(conn, now, cfg, io);
                    }
                    Ok(_) => self.fail("short read from disk".into(), now, io),
                    Err(e) => self.fail(e.message, now, io),
                }
            }
            (Job::Verify { piece }, JobResult::Verified(result)) => {
                // Data that cannot be read (missing, short, unreadable) is simply not valid yet.
                let ok = result.unwrap_or(false);
                self.on_verified(piece, ok, now, cfg, io);
            }
            _ => {}
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
        let size = self.picker.piece_size(piece) as u64;
        self.in_flight_bytes = self.in_flight_bytes.saturating_sub(size);
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
                self.fail(e.message, now, io);
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
            let k = self.known.entry(addr).or_default();
            k.hashfails += 1;
            if sole || k.hashfails >= cfg.hashfails_to_ban {
                k.banned = true;
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
                self.http.clear();
                self.scrapes.clear();
                for (id, _) in std::mem::take(&mut self.udp) {
                    io.jobs.remove(&id);
                    io.push(Output::Tracker(TrackerJob::UdpClose { id }));
                }
                self.trackers = TrackerList::new(Vec::new(), 0);
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
        let stranded = alone && self.candidates.is_empty() && !self.picker.is_finished();
        let mut due: Vec<SocketAddr> = self
            .known
            .iter()
            .filter(|(_, k)| {
                !k.connected
                    && !k.inbound_only
                    && !k.banned
                    && !k.queued
                    && (k.fails < MAX_CONNECT_FAILS || stranded)
                    && k.retry_at <= now
            })
            .map(|(a, _)| *a)
            .collect();
        due.sort();
        for addr in due {
            if let Some(k) = self.known.get_mut(&addr) {
                k.queued = true;
            }
            self.candidates.push_back(addr);
        }
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
        while let Some((tracker, url, event)) = self.trackers.poll_announce(now) {
            let params = AnnounceParams {
                info_hash: self.info_hash,
                peer_id: self.our_id,
                port: cfg.listen_port,
                uploaded: self.uploaded,
                downloaded: self.downloaded,
                left: self.left(),
                event,
                num_want: if event == AnnounceEvent::Stopped { 0 } else { cfg.num_want },
                key: self.key,
                tracker_id: self.trackers.tracker_id(tracker).map(String::from),
            };
            if url.starts_with("http://") || url.starts_with("https://") {
                let id = io.job(self.id);
                self.http.insert(id, (tracker, url.clone()));
                io.push(Output::Tracker(TrackerJob::HttpGet { id, url: announce_url(&url, &params) }));
            } else if let Ok((host, port)) = parse_udp_url(&url) {
                let id = io.job(self.id);
                let mut exchange = UdpExchange::announce(params, now, &mut self.rng, &UdpConfig::default());
                // Peers come back as 18-byte entries from a tracker reached over IPv6.
                exchange.set_ipv6(host.parse::<std::net::Ipv6Addr>().is_ok());
                self.udp.insert(id, UdpRequest { tracker, url, host, port, exchange });
                self.pump_udp(id, now, cfg, io);
            } else {
                self.trackers.on_error(tracker, now, "unsupported tracker URL");
            }
        }
    }

    fn pump_udp(&mut self, id: JobId, now: Instant, cfg: &Config, io: &mut Io) {
        let Some(req) = self.udp.get_mut(&id) else { return };
        while let Some(data) = req.exchange.poll_transmit() {
            io.push(Output::Tracker(TrackerJob::UdpSend { id, host: req.host.clone(), port: req.port, data }));
        }
        let Some(result) = req.exchange.result() else { return };
        let Some(req) = self.udp.remove(&id) else { return };
        io.jobs.remove(&id);
        io.push(Output::Tracker(TrackerJob::UdpClose { id }));
        match result {
            Ok(UdpOutcome::Announce(resp)) => self.on_announce(req.tracker, req.url, resp, now, cfg, io),
            Ok(UdpOutcome::Scrape(stats)) => self.trackers.on_scrape(req.tracker, &stats),
            Err(e) => self.on_tracker_error(req.tracker, req.url, e.to_string(), now, io),
        }
    }

    /// Asks every tracker for the swarm's seeder and leecher counts.
    pub fn scrape(&mut self, now: Instant, cfg: &Config, io: &mut Io) {
        for (tracker, url) in self.trackers.scrape_targets() {
            if let Ok((host, port)) = parse_udp_url(&url) {
                let id = io.job(self.id);
                let mut exchange = UdpExchange::scrape(self.info_hash, now, &mut self.rng, &UdpConfig::default());
                exchange.set_ipv6(host.parse::<std::net::Ipv6Addr>().is_ok());
                self.udp.insert(id, UdpRequest { tracker, url, host, port, exchange });
                self.pump_udp(id, now, cfg, io);
            } else if let Some(url) = scrape_request_url(&url, &self.info_hash) {
                let id = io.job(self.id);
                self.scrapes.insert(id, tracker);
                io.push(Output::Tracker(TrackerJob::HttpGet { id, url }));
            }
        }
    }

    pub fn on_tracker_http(
        &mut self,
        job: JobId,
        result: Result<Vec<u8>, String>,
        now: Instant,
        cfg: &Config,
        io: &mut Io,
    ) {
        if let Some(tracker) = self.scrapes.remove(&job) {
            if let Ok(stats) = result.map_err(|_| ()).and_then(|b| parse_scrape(&b, &self.info_hash).map_err(|_| ())) {
                self.trackers.on_scrape(tracker, &stats);
            }
            return;
        }
        let Some((tracker, url)) = self.http.remove(&job) else { return };
        match result.and_then(|body| parse_announce(&body).map_err(|e| e.to_string())) {
            Ok(resp) => self.on_announce(tracker, url, resp, now, cfg, io),
            Err(e) => self.on_tracker_error(tracker, url, e, now, io),
        }
    }

    pub fn on_tracker_udp(
        &mut self,
        job: JobId,
        result: Result<&[u8], String>,
        now: Instant,
        cfg: &Config,
        io: &mut Io,
    ) {
        let Some(req) = self.udp.get_mut(&job) else { return };
        match result {
            Ok(data) => {
                req.exchange.handle_datagram(now, data, &mut self.rng);
                self.pump_udp(job, now, cfg, io);
            }
            Err(e) => {
                let Some(req) = self.udp.remove(&job) else { return };
                io.jobs.remove(&job);
                io.push(Output::Tracker(TrackerJob::UdpClose { id: job }));
                self.on_tracker_error(req.tracker, req.url, e, now, io);
            }
        }
    }

    pub fn on_tracker_timeout(&mut self, now: Instant, cfg: &Config, io: &mut Io) {
        let due: Vec<JobId> = self
            .udp
            .iter()
            .filter(|(_, r)| r.exchange.poll_timeout().is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(r) = self.udp.get_mut(&id) {
                r.exchange.handle_timeout(now);
            }
            self.pump_udp(id, now, cfg, io);
        }
    }

    pub fn tracker_deadline(&self) -> Option<Instant> {
        let udp = self.udp.values().filter_map(|r| r.exchange.poll_timeout()).min();
        let checking = matches!(self.state, State::Checking { .. } | State::CheckQueued { .. });
        let next = if checking { None } else { self.trackers.poll_timeout() };
        match (udp, next) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn udp_sockets(&self) -> Vec<JobId> {
        self.udp.keys().copied().collect()
    }

    fn on_announce(
        &mut self,
        tracker: TrackerIndex,
        url: String,
        resp: AnnounceResponse,
        now: Instant,
        cfg: &Config,
        io: &mut Io,
    ) {
        self.trackers.on_response(tracker, now, &resp);
        io.event(Event::TrackerReply { torrent: self.id, url, peers: resp.peers.len() });
        // Kept even when the answer finds the torrent checking or paused: they are dialled once
        // it is active again, and the next answer may be half an hour away.
        if !matches!(self.state, State::Removing { .. }) {
            self.add_candidates(resp.peers, cfg);
        }
    }

    fn on_tracker_error(&mut self, tracker: TrackerIndex, url: String, message: String, now: Instant, io: &mut Io) {
        self.trackers.on_error(tracker, now, &message);
        io.event(Event::TrackerError { torrent: self.id, url, message });
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
            io.push(Output::Send { conn, data });
        }
    }

    // ---- getters ----

    pub fn stats(&self) -> TorrentStats {
        let info = &self.meta.info;
        let (wanted_bytes, have_bytes) = self.byte_counts();
        let state = match &self.state {
            State::CheckQueued { .. } => TorrentState::CheckQueued,
            State::Checking { checked, .. } => {
                TorrentState::Checking { progress: *checked as f32 / info.piece_count().max(1) as f32 }
            }
            State::Active if self.fetching.is_some() => TorrentState::Metadata,
            State::Active if self.picker.is_finished() => TorrentState::Seeding,
            State::Active => TorrentState::Downloading,
            State::Paused { .. } | State::Removing { .. } => TorrentState::Paused,
            State::Error(e) => TorrentState::Error(e.clone()),
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
            candidates: self.candidates.len(),
            availability: self.picker.distributed_copies(),
            trackers: self.trackers.statuses(),
            have: self.picker.have().clone(),
            dht: None,
            pex: self.pex_allowed().then_some(self.pex_learned),
        }
    }

    pub fn peer_requests(&self, conn: ConnId) -> Option<PeerRequests> {
        let p = self.peers.get(&conn)?;
        Some(PeerRequests { queued: p.queued_requests(), outstanding: p.requests.len() })
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
                queued_requests: p.queued_requests(),
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

/// Records that a peer has bytes to flush (once per batch).
fn mark(dirty: &mut Vec<ConnId>, conn: ConnId, was_empty: bool) {
    if was_empty {
        dirty.push(conn);
    }
}

/// The frames of a finished read's blocks that are still wanted, each a copy with its header.
fn read_frames(read: &PendingRead, data: &[u8]) -> Vec<(BlockRef, Vec<u8>)> {
    let mut out = Vec::with_capacity(read.blocks.len());
    for b in &read.blocks {
        // Blocks are only ever removed from a read, so each is one of its frames.
        let Ok(i) = read.frames.binary_search(&b.offset) else { continue };
        // Its header's room, then its data.
        let at = (b.offset - read.offset) as usize + i * PIECE_FRAME_HEADER;
        let Some(slot) = data.get(at..at + PIECE_FRAME_HEADER + b.len as usize) else { continue };
        let mut frame = slot.to_vec();
        frame[..PIECE_FRAME_HEADER].copy_from_slice(&piece_header(b.piece, b.offset, b.len));
        out.push((*b, frame));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read of three 4-byte blocks at offset 8 of piece 2, as the disk answers it: room for a
    /// header, then the data, per block.
    fn framed_read() -> (PendingRead, Vec<u8>) {
        let blocks: Vec<BlockRef> = (0..3).map(|i| BlockRef { piece: 2, offset: 8 + 4 * i, len: 4 }).collect();
        let mut data = Vec::new();
        for i in 0..3u8 {
            data.extend_from_slice(&[0xEE; PIECE_FRAME_HEADER]);
            data.extend_from_slice(&[i; 4]);
        }
        let frames = blocks.iter().map(|b| b.offset).collect();
        (PendingRead { job: JobId(1), offset: 8, len: 12, blocks, frames }, data)
    }

    #[test]
    fn a_cancelled_block_leaves_the_others_framed_with_their_own_bytes() {
        let (mut read, data) = framed_read();
        read.blocks.remove(1);
        let frames = read_frames(&read, &data);
        assert_eq!(frames.len(), 2);
        for ((b, frame), byte) in frames.iter().zip([0u8, 2]) {
            let mut expected = piece_header(2, b.offset, 4).to_vec();
            expected.extend_from_slice(&[byte; 4]);
            assert_eq!(frame, &expected, "block at {}", b.offset);
        }
    }

    #[test]
    fn a_short_answer_frames_nothing_out_of_bounds() {
        let (read, data) = framed_read();
        let frames = read_frames(&read, &data[..20]);
        assert_eq!(frames.len(), 1, "only the first frame fits in 20 bytes");
    }
}
