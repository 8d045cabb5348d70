//! The session state machine: torrents, their peers, and everything they ask the runtime to do.
//!
//! The crate root's documentation is the map: the method families, the [`Input`]/[`Output`]
//! table and the drain, time and re-entry rules.

mod admission;
mod close_reason;
mod config;
mod ctx;
mod dht;
mod disk_error;
mod encryption;
mod event;
mod health;
mod input;
mod invariants;
mod limits;
mod link;
mod outbox;
mod output;
mod params;
mod sched;
mod stats;
mod torrent;
mod utp_feed;
mod utp_link;

pub use close_reason::{CloseReason, Violation};
pub use config::{Config, Encryption};
pub use disk_error::{DiskError, DiskErrorKind};
pub use event::{DhtScrapeId, Event, TorrentError};
pub use input::{Input, Socket};
pub use output::{lay_out_read, DiskJob, DiskJobKind, HashJob, JobResult, Output, PeerIo, PlacedSpan, UdpIo};
pub use params::{AddMagnet, AddTorrent, EngineError, FilePriority};
pub use stats::{PeerRequests, PeerStats, TorrentState, TorrentStats};

pub use admission::{ConnectionLimits, DEFAULT_DESCRIPTORS, MAX_DESCRIPTORS};
pub use dht::{DhtScrapeError, DhtTorrentStatus, ANNOUNCE_EVERY, MAX_QUEUED_SCRAPES, MAX_RUNNING_SCRAPES};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::health::{HealthCheck, HealthCheckId};
use crate::metainfo::Metainfo;
use crate::rate::TokenBucket;
use crate::tracker::TransportError;
use crate::types::{ConnId, InfoHash, Instant, JobId, PeerId, TorrentId};
use crate::wire::{HandshakeDecoder, HandshakeStep};

use admission::AddrKey;
use ctx::Ctx;
pub use health::{HealthCheckError, MAX_CHECK_TIMEOUT, MAX_RUNNING_CHECKS};
use limits::SessionLimits;
use outbox::Outbox;
use torrent::{Admit, Identity, MagnetStart, MetadataPhase, Start, Torrent, TorrentEvent, Unknown};

/// An incoming connection whose handshake has not been read: its torrent is unknown.
struct Pending {
    addr: SocketAddr,
    decoder: HandshakeDecoder,
    since: Instant,
}

/// The whole BitTorrent session: every torrent and every connection.
pub struct Engine {
    config: Config,
    rng: ChaCha8Rng,
    peer_id: PeerId,
    torrents: BTreeMap<TorrentId, Torrent>,
    by_hash: HashMap<InfoHash, TorrentId>,
    /// Connections attached to a torrent.
    conns: HashMap<ConnId, TorrentId>,
    /// Incoming connections still handshaking, oldest first (ids count up).
    pending: BTreeMap<ConnId, Pending>,
    /// How many of `pending` each address holds ([`Config::max_connections_per_ip`]).
    pending_by_addr: HashMap<AddrKey, usize>,
    out: Outbox,
    limits: SessionLimits,
    next_torrent: u32,
    next_tick: Instant,
    lifecycle: Lifecycle,
    /// The DHT, once [`Engine::enable_dht`] was called.
    dht: Option<dht::DhtLink>,
    /// Connections that are or may be encrypted (MSE), while [`Config::encryption`] is on.
    links: link::Links,
    /// Where an encrypted connection's bytes are decrypted (the input is borrowed).
    scratch: Vec<u8>,
    /// Local Service Discovery, when [`Config::lsd`].
    lsd: Option<crate::lsd::Lsd>,
    /// Health checks of any torrent ([`Engine::check_health`]).
    health: health::HealthChecks,
    /// uTP connections on the DHT socket, when [`Config::utp`].
    utp: Option<utp_link::UtpLink>,
}

/// Where the engine is in its life: commands are taken only while it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lifecycle {
    /// Taking commands and connections.
    Running,
    /// [`Engine::shutdown`] was called: torrents say `stopped` to their trackers until they are
    /// done or `deadline` passes.
    Stopping {
        /// When the remaining torrents are dropped without waiting for their trackers.
        deadline: Instant,
    },
    /// Every torrent is gone and [`Event::ShutdownComplete`] was reported.
    Stopped,
}

/// The engine's housekeeping period: rates, time-outs, choking, connection attempts.
const TICK: Duration = Duration::from_secs(1);

impl Engine {
    /// A new engine; everything random in it derives from `seed`.
    pub fn new(config: Config, seed: u64, now: Instant) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut id = *b"-SH0010-000000000000";
        const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        for b in &mut id[8..] {
            *b = ALPHABET[rng.random_range(0..ALPHABET.len())];
        }
        // Drawn only with LSD on, so that nothing else changes for the same seed without it.
        let lsd = config.lsd.then(|| {
            let cookie: String = (0..12).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
            crate::lsd::Lsd::new(cookie)
        });
        // Drawn only with uTP on, for the same reason.
        let utp = config
            .utp
            .then(|| utp_link::UtpLink::new(config.max_connections, config.max_pending_handshakes, rng.random(), now));
        let up = TokenBucket::new(config.max_upload_rate, now);
        let down = TokenBucket::new(config.max_download_rate, now);
        Engine {
            config,
            rng,
            peer_id: PeerId(id),
            torrents: BTreeMap::new(),
            by_hash: HashMap::new(),
            conns: HashMap::new(),
            pending: BTreeMap::new(),
            pending_by_addr: HashMap::new(),
            out: Outbox::default(),
            limits: SessionLimits::new(up, down),
            next_torrent: 1,
            next_tick: now + TICK,
            lifecycle: Lifecycle::Running,
            dht: None,
            links: link::Links::new(),
            scratch: Vec::new(),
            lsd,
            health: health::HealthChecks::default(),
            utp,
        }
    }

    // ---- getters ----

    /// Our peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Ids of all torrents.
    pub fn torrents(&self) -> Vec<TorrentId> {
        self.torrents.keys().copied().collect()
    }

    /// The torrent with this info-hash.
    pub fn find(&self, info_hash: &InfoHash) -> Option<TorrentId> {
        self.by_hash.get(info_hash).copied()
    }

    /// A snapshot of a torrent's figures.
    pub fn stats(&self, t: TorrentId) -> Option<TorrentStats> {
        let mut s = self.torrents.get(&t)?.stats();
        s.dht = self.dht.as_ref().map(|l| l.status(t));
        Some(s)
    }

    /// Whether a torrent has piece `piece` verified on disk (`None` for an unknown torrent).
    pub fn has_piece(&self, t: TorrentId, piece: u32) -> Option<bool> {
        self.torrents.get(&t).map(|t| t.picker.have().get(piece))
    }

    /// Snapshots of a torrent's connected peers.
    pub fn peers(&self, t: TorrentId) -> Vec<PeerStats> {
        self.torrents.get(&t).map(|t| t.peer_stats()).unwrap_or_default()
    }

    /// The request figures of one connection of a torrent (`None` if either is unknown).
    pub fn peer_requests(&self, t: TorrentId, conn: ConnId) -> Option<PeerRequests> {
        self.torrents.get(&t)?.peer_requests(conn)
    }

    /// A torrent's metainfo (`None` for a magnet whose metadata has not arrived yet).
    pub fn metainfo(&self, t: TorrentId) -> Option<&Metainfo> {
        self.torrents.get(&t).and_then(Torrent::metainfo)
    }

    /// A torrent's file priorities, one per file (`None` before a magnet's metadata).
    pub fn file_priorities(&self, t: TorrentId) -> Option<&[FilePriority]> {
        self.torrents.get(&t).and_then(Torrent::file_priorities)
    }

    /// True once a shutdown has finished its goodbyes.
    pub fn is_shut_down(&self) -> bool {
        self.lifecycle == Lifecycle::Stopped
    }

    /// `Ok` while the engine takes commands, [`EngineError::ShuttingDown`] once
    /// [`Engine::shutdown`] was called.
    fn running(&self) -> Result<(), EngineError> {
        match self.lifecycle {
            Lifecycle::Running => Ok(()),
            Lifecycle::Stopping { .. } | Lifecycle::Stopped => Err(EngineError::ShuttingDown),
        }
    }

    /// Runs `f` on torrent `t` in the context of an input at `now`; `None` for an unknown torrent.
    fn on_torrent<R>(
        &mut self,
        t: TorrentId,
        now: Instant,
        f: impl FnOnce(&mut Torrent, &mut Ctx<'_>) -> R,
    ) -> Option<R> {
        let torrent = self.torrents.get_mut(&t)?;
        Some(f(torrent, &mut Ctx { now, cfg: &self.config, out: &mut self.out, limits: &mut self.limits }))
    }

    /// Runs `f` on every torrent, in id order, in the context of an input at `now`.
    fn each_torrent(&mut self, now: Instant, mut f: impl FnMut(&mut Torrent, &mut Ctx<'_>)) {
        let cx = &mut Ctx { now, cfg: &self.config, out: &mut self.out, limits: &mut self.limits };
        for torrent in self.torrents.values_mut() {
            f(torrent, cx);
        }
    }

    // ---- commands ----

    /// Adds a torrent; it starts checking, downloading or seeding as its data allows.
    pub fn add_torrent(&mut self, params: AddTorrent, now: Instant) -> Result<TorrentId, EngineError> {
        self.running()?;
        let info_hash = params.metainfo.info_hash;
        if self.by_hash.contains_key(&info_hash) {
            return Err(EngineError::Duplicate(info_hash));
        }
        self.insert_torrent(params.metainfo.info_hash, Start::Torrent(Box::new(params)), now)
    }

    /// Adds a torrent by magnet link: it fetches its info dictionary from peers that speak
    /// `ut_metadata` (in [`TorrentState::Metadata`]), reports [`Event::MetadataReceived`],
    /// then goes on like any torrent. Peers come from the link (`x.pe`), `params.peers`, the
    /// link's trackers and [`Engine::add_peers`]. A deadline piece set before the metadata
    /// arrives is ignored.
    pub fn add_magnet(&mut self, params: AddMagnet, now: Instant) -> Result<TorrentId, EngineError> {
        self.running()?;
        let m = params.magnet;
        let info_hash = m.info_hash;
        if self.by_hash.contains_key(&info_hash) {
            return Err(EngineError::Duplicate(info_hash));
        }
        let mut peers: Vec<SocketAddr> = m.peers.iter().filter_map(|p| p.parse().ok()).collect();
        peers.extend(params.peers);
        let content = Unknown {
            phase: Box::new(MetadataPhase::new(info_hash, m.select_only, params.check_existing)),
            name: m.display_name.clone().unwrap_or_else(|| info_hash.to_hex()),
            trackers: m.trackers.iter().map(|url| vec![url.clone()]).collect(),
        };
        let start = MagnetStart { info_hash, content, peers, paused: params.paused, sequential: params.sequential };
        self.insert_torrent(info_hash, Start::Magnet(start), now)
    }

    fn insert_torrent(&mut self, info_hash: InfoHash, start: Start, now: Instant) -> Result<TorrentId, EngineError> {
        let id = TorrentId(self.next_torrent);
        self.next_torrent += 1;
        let seed = self.rng.random();
        let torrent = Torrent::new(
            Identity { id, seed, our_id: self.peer_id },
            start,
            &mut Ctx { now, cfg: &self.config, out: &mut self.out, limits: &mut self.limits },
        )?;
        self.by_hash.insert(info_hash, id);
        self.torrents.insert(id, torrent);
        self.after_input(Some(id), now);
        Ok(id)
    }

    /// Stops a torrent: closes its peers and says `stopped` to its trackers.
    pub fn pause(&mut self, t: TorrentId, now: Instant) -> Result<(), EngineError> {
        self.running()?;
        self.on_torrent(t, now, |torrent, cx| torrent.pause(cx)).ok_or(EngineError::UnknownTorrent)?;
        self.after_input(Some(t), now);
        Ok(())
    }

    /// Restarts a paused (or failed) torrent.
    pub fn resume(&mut self, t: TorrentId, now: Instant) -> Result<(), EngineError> {
        self.running()?;
        self.on_torrent(t, now, |torrent, cx| torrent.resume(cx)).ok_or(EngineError::UnknownTorrent)?;
        self.after_input(Some(t), now);
        Ok(())
    }

    /// Checks a torrent's data on disk again from scratch.
    pub fn recheck(&mut self, t: TorrentId, now: Instant) -> Result<(), EngineError> {
        self.running()?;
        self.on_torrent(t, now, |torrent, cx| torrent.recheck(cx)).ok_or(EngineError::UnknownTorrent)?;
        self.after_input(Some(t), now);
        Ok(())
    }

    /// Removes a torrent; [`Event::Removed`] follows once its trackers heard `stopped`.
    pub fn remove(&mut self, t: TorrentId, now: Instant) -> Result<(), EngineError> {
        self.running()?;
        self.on_torrent(t, now, |torrent, cx| torrent.remove(cx)).ok_or(EngineError::UnknownTorrent)?;
        if let Some(link) = &mut self.dht {
            link.forget(t);
        }
        self.after_input(Some(t), now);
        Ok(())
    }

    /// Sets one file's priority.
    pub fn set_file_priority(
        &mut self,
        t: TorrentId,
        file: usize,
        priority: FilePriority,
        now: Instant,
    ) -> Result<(), EngineError> {
        self.running()?;
        self.on_torrent(t, now, |torrent, cx| torrent.set_file_priority(file, priority, cx))
            .ok_or(EngineError::UnknownTorrent)?;
        self.after_input(Some(t), now);
        Ok(())
    }

    /// Turns sequential (in-order) downloading on or off; requests follow the new order at once.
    pub fn set_sequential(&mut self, t: TorrentId, on: bool, now: Instant) -> Result<(), EngineError> {
        self.running()?;
        let torrent = self.torrents.get_mut(&t).ok_or(EngineError::UnknownTorrent)?;
        torrent.picker.set_sequential(on);
        // Peers with room in their queues are asked for the pieces the new order prefers now,
        // not at the next input.
        self.after_input(Some(t), now);
        Ok(())
    }

    /// Sets the piece a stream reads next (`None` clears it): that piece and the ones after it,
    /// [`DEADLINE_WINDOW`](crate::picker::DEADLINE_WINDOW) in all, are requested before any other, in sequential mode or not, even when the in-flight memory cap is reached.
    /// Peers that can serve them are asked at once (as far as their request queues allow).
    pub fn set_deadline_piece(&mut self, t: TorrentId, piece: Option<u32>, now: Instant) -> Result<(), EngineError> {
        self.running()?;
        self.on_torrent(t, now, |torrent, cx| torrent.set_deadline_piece(piece, cx))
            .ok_or(EngineError::UnknownTorrent)?;
        self.after_input(Some(t), now);
        Ok(())
    }

    /// Turns the DHT on: public torrents find peers there and announce themselves. `saved` is
    /// a routing snapshot from [`Engine::dht_snapshot`] (ignored if unusable). Bootstrap host
    /// names in `config` come back as [`Output::Resolve`].
    pub fn enable_dht(&mut self, config: crate::dht::DhtConfig, saved: Option<&[u8]>, now: Instant) {
        let seed = self.rng.random::<u64>();
        let fresh =
            |rng: &mut ChaCha8Rng, config| crate::dht::Dht::new(config, crate::dht::NodeId::random(rng), seed, now);
        let mut dht = match saved.map(|s| crate::dht::Dht::with_saved(config.clone(), s, seed, now)) {
            Some(Ok(d)) => d,
            _ => fresh(&mut self.rng, config),
        };
        dht.bootstrap(now);
        self.dht = Some(dht::DhtLink::new(dht));
        self.after_input(None, now);
    }

    /// Adds a known DHT node: a lookup may start from it, and it joins the routing table once
    /// it answers a ping (unlike the routers named in the configuration, which never do).
    pub fn add_dht_node(&mut self, addr: SocketAddr, now: Instant) {
        if let Some(link) = &mut self.dht {
            link.dht.add_node(addr, now);
        }
        self.after_input(None, now);
    }

    /// The DHT's routing table, to save and hand back to [`Engine::enable_dht`] next time.
    pub fn dht_snapshot(&self) -> Option<Vec<u8>> {
        self.dht.as_ref().map(|l| l.dht.routing_snapshot())
    }

    /// Counts the swarm of any info-hash on the DHT (a BEP 33 scrape: `get_peers` with
    /// `scrape=1`, peers and bloom filters merged); [`Event::DhtScrape`] with the same id
    /// follows when the lookup ends. Scrapes wait for the DHT's bootstrap (at most one lookup
    /// time-out) and for one of [`MAX_RUNNING_SCRAPES`] slots.
    pub fn dht_scrape(&mut self, info_hash: InfoHash, now: Instant) -> Result<DhtScrapeId, DhtScrapeError> {
        let link = self.dht.as_mut().ok_or(DhtScrapeError::Off)?;
        let id = link.scrape(info_hash, now)?;
        self.after_input(None, now);
        Ok(id)
    }

    /// What the DHT did for a torrent; `None` when the DHT is off.
    pub fn dht_status(&self, t: TorrentId) -> Option<DhtTorrentStatus> {
        self.dht.as_ref().map(|l| l.status(t))
    }

    /// Adds peer addresses to dial for a torrent.
    pub fn add_peers(&mut self, t: TorrentId, peers: &[SocketAddr], now: Instant) -> Result<(), EngineError> {
        self.running()?;
        let torrent = self.torrents.get_mut(&t).ok_or(EngineError::UnknownTorrent)?;
        torrent.add_candidates(peers.iter().copied(), &self.config);
        self.after_input(Some(t), now);
        Ok(())
    }

    /// Asks a torrent's trackers for seeder and leecher counts (shown in its tracker statuses).
    pub fn scrape(&mut self, t: TorrentId, now: Instant) -> Result<(), EngineError> {
        self.running()?;
        self.on_torrent(t, now, |torrent, cx| torrent.scrape(cx)).ok_or(EngineError::UnknownTorrent)?;
        self.after_input(Some(t), now);
        Ok(())
    }

    /// Starts a health check of any torrent: its `trackers` (announce URLs) are scraped, the
    /// DHT counts its swarm (BEP 33, when the DHT is on), and the figures come back as
    /// [`Event::HealthChecked`] with the returned id, at the latest `timeout` (at most
    /// [`MAX_CHECK_TIMEOUT`]) from now. A DHT that has not reached the network yet is not
    /// waited for: it says so in the report. A check with no usable source reports at once,
    /// with no figures.
    pub fn check_health(
        &mut self,
        info_hash: InfoHash,
        trackers: &[String],
        timeout: Duration,
        now: Instant,
    ) -> Result<HealthCheckId, HealthCheckError> {
        if self.health.is_full() {
            return Err(HealthCheckError::Busy);
        }
        let mut check = HealthCheck::new(info_hash, trackers, now, timeout.min(MAX_CHECK_TIMEOUT), &mut self.rng);
        let mut scrape = None;
        if let Some(link) = &mut self.dht {
            check = check.with_dht();
            if !link.dht.is_bootstrapped() {
                check.handle_dht(Err("the DHT has not reached the network".into()));
            } else {
                match link.scrape(info_hash, now) {
                    Ok(id) => scrape = Some(id),
                    Err(e) => check.handle_dht(Err(e.to_string())),
                }
            }
        }
        let id = self.health.start(check, scrape, &mut self.out);
        self.after_input(None, now);
        Ok(id)
    }

    /// Sets the global download and upload limits in payload bytes per second (0: none); see
    /// [`Config::max_download_rate`] and [`Config::max_upload_rate`].
    pub fn set_rate_limits(&mut self, download: u64, upload: u64, now: Instant) {
        self.config.max_download_rate = download;
        self.config.max_upload_rate = upload;
        self.limits.down.set_rate(download, now);
        self.limits.up.set_rate(upload, now);
        self.after_input(None, now);
    }

    /// Sets the address and port announced to trackers and the DHT (a port mapping's result;
    /// see [`Config::announce_port`] and [`Config::announce_ip`]). When they change, every
    /// tracker hears them as soon as its `min interval` allows and the DHT announces again:
    /// peers must not dial a dead port until the next interval.
    pub fn set_announce_addr(&mut self, ip: Option<std::net::IpAddr>, port: Option<u16>, now: Instant) {
        let before = (self.config.announce_ip, self.config.announced_port());
        (self.config.announce_ip, self.config.announce_port) = (ip, port);
        if before != (ip, self.config.announced_port()) {
            self.each_torrent(now, |t, cx| t.reannounce(cx));
            if let Some(link) = &mut self.dht {
                link.announce_again();
            }
            self.after_input(None, now);
        }
    }

    /// Begins a clean stop: every torrent closes its peers and announces `stopped`.
    /// [`Event::ShutdownComplete`] follows.
    pub fn shutdown(&mut self, now: Instant) {
        if self.lifecycle != Lifecycle::Running {
            return;
        }
        self.lifecycle = Lifecycle::Stopping { deadline: now + self.config.shutdown_timeout };
        for conn in std::mem::take(&mut self.pending).into_keys() {
            self.out.push(Output::Peer(PeerIo::Close { conn, reason: CloseReason::Shutdown }));
        }
        self.pending_by_addr.clear();
        self.each_torrent(now, |t, cx| {
            // Closed here so that their reason is the shutdown; `remove` finds none left.
            t.close_all(CloseReason::Shutdown, cx);
            t.remove(cx);
        });
        self.after_input(None, now);
    }

    // ---- input ----

    /// Something happened around the engine: see [`Input`] for what each answers.
    pub fn handle(&mut self, input: Input<'_>, now: Instant) {
        match input {
            Input::Connected(conn) => self.on_connected(conn, now),
            Input::PeerBytes(conn, data) => self.on_peer_data(conn, data, now),
            Input::Sent(conn, n) => self.on_sent(conn, n, now),
            Input::Closed(conn, reason) => self.on_closed(conn, reason, now),
            Input::Job(job, result) => self.on_job(job, result, now),
            Input::Http(job, result) => self.on_http(job, result, now),
            Input::Exchange(exchange, result) => self.on_exchange(exchange.job(), result, now),
            Input::Datagram { socket: Socket::Dht, from, data }
                if self.utp.is_some() && crate::utp::looks_like_utp(data) =>
            {
                self.on_utp_datagram(from, data, now)
            }
            Input::Datagram { socket: Socket::Dht, from, data } => self.on_dht_datagram(from, data, now),
            Input::Datagram { socket: Socket::Lsd, from, data } => self.on_lsd_datagram(from, data, now),
            Input::Resolved(addrs) => self.on_resolved(addrs, now),
        }
    }

    /// A peer connected to us. Returns `None` if we refuse it (the runtime drops the socket):
    /// its address has [`Config::max_connections_per_ip`] handshakes pending already. When
    /// [`Config::max_pending_handshakes`] are pending, the oldest is closed to make room: an
    /// honest peer sends its handshake within a round trip, so the oldest is the likeliest
    /// squatter, and a flood of silent sockets cannot keep a new peer out.
    pub fn accept(&mut self, addr: SocketAddr, now: Instant) -> Option<ConnId> {
        if self.lifecycle != Lifecycle::Running {
            return None;
        }
        let key = AddrKey::of(addr.ip());
        if key.is_some_and(|k| self.pending_by_addr.get(&k).is_some_and(|n| *n >= self.config.max_connections_per_ip)) {
            return None;
        }
        while self.pending.len() >= self.config.max_pending_handshakes.max(1) {
            let Some(oldest) = self.pending.keys().next().copied() else { break };
            self.take_pending(oldest);
            self.out.push(Output::Peer(PeerIo::Close { conn: oldest, reason: CloseReason::Replaced }));
        }
        let conn = self.out.conn();
        let decoder = HandshakeDecoder::new(self.config.wire_limits);
        if let Some(k) = key {
            *self.pending_by_addr.entry(k).or_default() += 1;
        }
        self.pending.insert(conn, Pending { addr, decoder, since: now });
        self.link_incoming(conn, now);
        Some(conn)
    }

    /// Forgets a pending connection (the caller closes it or hands it to a torrent).
    fn take_pending(&mut self, conn: ConnId) -> Option<Pending> {
        let p = self.pending.remove(&conn)?;
        self.unpend_addr(p.addr);
        Some(p)
    }

    /// Counts one pending connection less for `addr`.
    fn unpend_addr(&mut self, addr: SocketAddr) {
        if let Some(k) = AddrKey::of(addr.ip()) {
            if let Some(n) = self.pending_by_addr.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    self.pending_by_addr.remove(&k);
                }
            }
        }
    }

    fn on_connected(&mut self, conn: ConnId, now: Instant) {
        let Some(&t) = self.conns.get(&conn) else { return };
        self.start_initiator(conn, now);
        self.on_torrent(t, now, |torrent, cx| torrent.on_connected(conn, cx));
        self.after_input(Some(t), now);
    }

    /// A peer's plaintext bytes (decrypted if its connection is encrypted) to its torrent,
    /// or to its pending handshake.
    fn deliver(&mut self, conn: ConnId, data: &[u8], now: Instant) {
        // Bytes of a pending connection are already in its decoder once it is attached.
        let (t, data) = match self.conns.get(&conn) {
            Some(t) => (*t, data),
            None => {
                let Some(Pending { addr, mut decoder, since }) = self.pending.remove(&conn) else { return };
                decoder.feed(data);
                match decoder.take() {
                    Ok(HandshakeStep::Pending(decoder)) => {
                        // Back in its place: ids order the map, so it is as old as it was.
                        self.pending.insert(conn, Pending { addr, decoder, since });
                        return;
                    }
                    Ok(HandshakeStep::Done(hs, decoder)) => {
                        self.unpend_addr(addr);
                        let target = self.by_hash.get(&hs.info_hash).copied();
                        let session_full = self.conns.len() >= self.config.max_connections;
                        let admit = Admit { conn, addr, session_full };
                        let attach =
                            |torrent: &mut Torrent, cx: &mut Ctx<'_>| torrent.attach_incoming(admit, decoder, hs, cx);
                        let accepted = target
                            .and_then(|t| self.on_torrent(t, now, attach).map(|attached| attached.map(|()| t)))
                            .unwrap_or(Err(CloseReason::UnknownTorrent));
                        match accepted {
                            Ok(t) => {
                                self.conns.insert(conn, t);
                                (t, &[][..])
                            }
                            Err(reason) => {
                                self.out.push(Output::Peer(PeerIo::Close { conn, reason }));
                                // The torrent may have closed another peer to make room.
                                self.route_connections(now);
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        self.unpend_addr(addr);
                        self.out.push(Output::Peer(PeerIo::Close { conn, reason: e.into() }));
                        return;
                    }
                }
            }
        };
        self.on_torrent(t, now, |torrent, cx| torrent.on_data(conn, data, cx));
        self.after_input(Some(t), now);
    }

    fn on_sent(&mut self, conn: ConnId, n: usize, now: Instant) {
        let Some(&t) = self.conns.get(&conn) else { return };
        let n = if self.links.is_empty() { n } else { self.sent_payload(conn, n) };
        self.on_torrent(t, now, |torrent, cx| torrent.on_sent(conn, n as u64, cx));
        self.after_input(Some(t), now);
    }

    fn on_closed(&mut self, conn: ConnId, reason: CloseReason, now: Instant) {
        let plaintext_retry = !self.links.is_empty() && self.unlink_closed(conn);
        match self.conns.remove(&conn) {
            Some(t) if plaintext_retry => {
                self.on_torrent(t, now, |torrent, cx| torrent.closed_while_encrypting(conn, reason, cx));
                self.after_input(Some(t), now);
            }
            Some(t) => {
                self.on_torrent(t, now, |torrent, cx| torrent.on_closed(conn, reason, cx));
                self.after_input(Some(t), now);
            }
            None => {
                self.take_pending(conn);
            }
        }
    }

    fn on_job(&mut self, job: JobId, result: JobResult, now: Instant) {
        let Some(t) = self.out.take_owner(job) else { return };
        self.on_torrent(t, now, |torrent, cx| torrent.on_job(job, result, cx));
        self.after_input(Some(t), now);
    }

    fn on_http(&mut self, job: JobId, result: Result<Vec<u8>, TransportError>, now: Instant) {
        if self.health.owns(job) {
            self.health.handle_http(job, result, &mut self.out);
            return self.after_input(None, now);
        }
        let Some(t) = self.out.take_owner(job) else { return };
        self.on_torrent(t, now, |torrent, cx| torrent.on_tracker_http(job, result, cx));
        self.after_input(Some(t), now);
    }

    fn on_exchange(&mut self, job: JobId, result: Result<&[u8], TransportError>, now: Instant) {
        if self.health.owns(job) {
            self.health.handle_udp(job, result, now, &mut self.rng, &mut self.out);
            return self.after_input(None, now);
        }
        let Some(t) = self.out.owner(job) else { return };
        self.on_torrent(t, now, |torrent, cx| torrent.on_tracker_udp(job, result, cx));
        self.after_input(Some(t), now);
    }

    fn on_dht_datagram(&mut self, from: SocketAddr, data: &[u8], now: Instant) {
        if let Some(link) = &mut self.dht {
            link.dht.handle_datagram(from, data, now);
        }
        self.after_input(None, now);
    }

    /// A Local Service Discovery datagram (BEP 14). Announces of torrents we have (public ones:
    /// BEP 27) add their sender as a candidate peer; anything else, malformed or not, is ignored.
    fn on_lsd_datagram(&mut self, from: SocketAddr, data: &[u8], now: Instant) {
        let Some(lsd) = &self.lsd else { return };
        let Ok(peers) = lsd.handle_datagram(from.ip(), data) else { return };
        let mut touched = BTreeSet::new();
        for (ih, addr) in peers {
            let Some(&t) = self.by_hash.get(&ih) else { continue };
            if let Some(torrent) = self.torrents.get_mut(&t).filter(|t| t.wants_dht()) {
                torrent.add_candidates([addr], &self.config);
                touched.insert(t);
            }
        }
        match touched.len() {
            0 => {}
            1 => self.after_input(touched.first().copied(), now),
            _ => self.after_input(None, now),
        }
    }

    fn on_resolved(&mut self, addrs: &[SocketAddr], now: Instant) {
        if let Some(link) = &mut self.dht {
            for a in addrs {
                link.dht.add_bootstrap(*a, now);
            }
        }
        self.after_input(None, now);
    }

    /// The deadline from [`Engine::poll_timeout`] has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now >= self.next_tick {
            self.next_tick = now + TICK;
            let expired: Vec<ConnId> = self
                .pending
                .iter()
                .filter(|(_, p)| now - p.since > self.config.handshake_timeout)
                .map(|(c, _)| *c)
                .collect();
            for conn in expired {
                self.take_pending(conn);
                self.out.push(Output::Peer(PeerIo::Close { conn, reason: CloseReason::HandshakeTimeout }));
            }
            if !self.links.is_empty() {
                self.expire_handshakes(now);
            }
            self.each_torrent(now, |t, cx| t.tick(cx));
            if let Some(link) = &mut self.dht {
                let due: Vec<(TorrentId, InfoHash, bool)> = self
                    .torrents
                    .iter()
                    .filter(|(_, t)| t.wants_dht())
                    .map(|(id, t)| (*id, t.info_hash, t.is_seed()))
                    .collect();
                link.schedule(&due, self.config.announced_port(), now);
            }
            self.announce_lsd(now);
        }
        if let Some(link) = &mut self.dht {
            if now >= link.dht.poll_timeout() {
                link.dht.handle_timeout(now);
            }
        }
        self.each_torrent(now, |t, cx| t.on_tracker_timeout(cx));
        self.health.handle_timeout(now, &mut self.out);
        if let Some(link) = &mut self.utp {
            link.handle_timeout(now);
        }
        self.after_input(None, now);
    }

    // ---- output ----

    /// The next thing for the runtime to do; `None` when there is nothing more for now.
    pub fn poll_output(&mut self) -> Option<Output> {
        match self.utp {
            Some(_) => self.poll_output_utp(),
            None => self.pop_output(),
        }
    }

    /// The next queued output; a connection's close also forgets its encryption link.
    fn pop_output(&mut self) -> Option<Output> {
        let o = self.out.pop();
        if let (Some(Output::Peer(PeerIo::Close { conn, .. })), false) = (&o, self.links.is_empty()) {
            self.links.remove(conn);
        }
        o
    }

    /// When to call [`Engine::handle_timeout`] next; `None` once the engine is shut down
    /// (it has nothing more to do).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.lifecycle == Lifecycle::Stopped {
            return None;
        }
        let mut t = self.next_tick;
        if let Some(link) = &self.dht {
            t = t.min(link.dht.poll_timeout());
        }
        for torrent in self.torrents.values() {
            if let Some(d) = torrent.tracker_deadline() {
                t = t.min(d);
            }
        }
        if let Lifecycle::Stopping { deadline } = self.lifecycle {
            t = t.min(deadline);
        }
        if let Some(d) = self.health.poll_timeout() {
            t = t.min(d);
        }
        if let Some(d) = self.utp.as_ref().and_then(utp_link::UtpLink::poll_timeout) {
            t = t.min(d);
        }
        if !self.limits.up_waiting.is_empty() {
            t = t.min(self.limits.up.ready_at());
        }
        if !self.limits.down_starved.is_empty() {
            t = t.min(self.limits.down.ready_at());
        }
        Some(t)
    }
}

#[cfg(test)]
mod tests;
