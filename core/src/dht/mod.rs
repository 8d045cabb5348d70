//! BEP 5 Mainline DHT as a sans-IO state machine.
//!
//! [`Dht`] never touches a socket or a clock. The runtime owns one UDP socket (or one per
//! address family), hands every received datagram to [`Dht::handle_datagram`], sends whatever
//! [`Dht::poll_output`] returns, resolves the bootstrap host names it is asked to resolve, and
//! calls [`Dht::handle_timeout`] once [`Dht::poll_timeout`] has passed. After every input or
//! command, drain `poll_output` until it returns `None`, then wait until `poll_timeout`.
//!
//! ```text
//! input                               commands                        output
//! handle_datagram(from, bytes, now)   bootstrap(now)                  DhtOutput::Send { to, data }
//! handle_timeout(now)                 get_peers(info_hash, now)       DhtOutput::Resolve { host, port }
//! add_bootstrap(addr, now)            announce(info_hash, port, ..)   DhtOutput::Event(DhtEvent)
//! add_node(addr, now)                 scrape(info_hash, now)          poll_timeout() -> Instant
//!                                     routing_snapshot()
//! ```
//!
//! [`Dht::scrape`] counts a swarm (BEP 33): a `get_peers` lookup with `scrape=1` whose answers'
//! peers and bloom filters add up to a [`SwarmCount`] (`scrape`); the server half answers
//! such queries with filters of the peers announced to us, seeds apart ([`bloom`]).
//!
//! One `Dht` serves both address families (BEP 32) with one node id and one routing table per
//! family: IPv4 and IPv6 nodes are different networks (a v4 node cannot reach a v6 one), so
//! mixing them in one table would fill buckets with nodes half of the runtime cannot talk to.
//! Keeping both in one machine lets a single lookup search both networks, lets v4 answers
//! carry v6 nodes (`want`), and shares the token secret, the peer store and the rate limits.
//! A runtime without IPv6 turns that family off in [`DhtConfig`].

pub mod bloom;
mod client;
pub mod krpc;
pub mod lookup;
mod node;
pub mod peers;
pub mod ratelimit;
pub mod routing;
mod scrape;
mod server;
mod snapshot;
pub mod tokens;

#[cfg(test)]
mod sim;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use self::krpc::{Body, Message};
use self::lookup::{Lookup, LookupKind, Purpose};
pub use self::node::{Family, NodeId, NodeInfo};
use self::peers::PeerStore;
use self::ratelimit::{PerIpLimiter, RateLimiter};
use self::routing::RoutingTable;
pub use self::scrape::SwarmCount;
pub use self::snapshot::{Snapshot, SnapshotError, MAX_SNAPSHOT_LEN, MAX_SNAPSHOT_NODES};
use self::tokens::Tokens;
use crate::types::{InfoHash, Instant};

/// How often the housekeeping pass runs (bucket refresh, expiry, liveness pings).
const MAINTENANCE_EVERY: Duration = Duration::from_secs(5);
/// How long to wait before retrying a bootstrap that found nobody.
const BOOTSTRAP_RETRY: Duration = Duration::from_secs(30);
/// Most queries awaiting an answer at once.
const MAX_PENDING: usize = 1024;
/// Most pings and announces waiting for the outgoing rate limit.
const MAX_QUEUED: usize = 512;
/// Most bucket-refresh lookups at once.
const MAX_REFRESH_LOOKUPS: usize = 4;
/// Routing-table nodes used to start a lookup.
const SEEDS: usize = 2 * routing::K;
/// Most remembered contacts from a saved snapshot.
const MAX_SAVED_CONTACTS: usize = 2048;

/// Settings of a [`Dht`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhtConfig {
    /// Bootstrap routers by host name; the runtime resolves them when asked.
    pub bootstrap: Vec<(String, u16)>,
    /// Speak the IPv4 DHT.
    pub ipv4: bool,
    /// Speak the IPv6 DHT (BEP 32).
    pub ipv6: bool,
    /// How long to wait for an answer before counting a query as failed.
    pub query_timeout: Duration,
    /// How long a lookup may run in total.
    pub lookup_timeout: Duration,
    /// Queries in flight per lookup and family (Kademlia's alpha).
    pub alpha: usize,
    /// Deepest hop a lookup will query.
    pub max_hops: u32,
    /// Most nodes one lookup queries per family.
    pub max_lookup_queries: usize,
    /// Outgoing queries per second (0: unlimited).
    pub max_queries_per_sec: u32,
    /// Incoming queries per second accepted from one IP address (0: unlimited); more are dropped.
    pub max_incoming_per_ip_per_sec: u32,
    /// Source addresses tracked by the incoming limit.
    pub max_tracked_ips: usize,
    /// Most announced peers stored for others, over all torrents.
    pub max_stored_peers: usize,
    /// Most announced peers stored per torrent.
    pub max_peers_per_torrent: usize,
    /// Most peers returned in one `get_peers` answer.
    pub max_values_per_reply: usize,
    /// Client version sent as `v` (BEP 5 suggests two letters and two bytes of version).
    pub version: Vec<u8>,
}

impl Default for DhtConfig {
    fn default() -> Self {
        DhtConfig {
            bootstrap: vec![
                ("router.bittorrent.com".to_owned(), 6881),
                ("dht.transmissionbt.com".to_owned(), 6881),
                ("router.utorrent.com".to_owned(), 6881),
            ],
            ipv4: true,
            ipv6: true,
            query_timeout: Duration::from_secs(2),
            lookup_timeout: Duration::from_secs(60),
            alpha: 3,
            max_hops: 16,
            max_lookup_queries: 200,
            max_queries_per_sec: 200,
            max_incoming_per_ip_per_sec: 20,
            max_tracked_ips: 4096,
            max_stored_peers: 20_000,
            max_peers_per_torrent: 500,
            max_values_per_reply: 50,
            version: b"SH\x00\x01".to_vec(),
        }
    }
}

/// Identifies a lookup started with [`Dht::get_peers`] or [`Dht::announce`].
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct LookupId(pub u64);

/// Something the runtime must do for the DHT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhtOutput {
    /// Send `data` as one UDP datagram to `to`.
    Send {
        /// Destination.
        to: SocketAddr,
        /// The datagram.
        data: Vec<u8>,
    },
    /// Resolve a bootstrap host name and pass each address to [`Dht::add_bootstrap`].
    Resolve {
        /// Host name.
        host: String,
        /// UDP port.
        port: u16,
    },
    /// Tell the application.
    Event(DhtEvent),
}

/// What the DHT tells the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhtEvent {
    /// Peers found for a lookup (each peer reported once per lookup).
    Peers {
        /// The lookup.
        lookup: LookupId,
        /// Its torrent.
        info_hash: InfoHash,
        /// New peers.
        peers: Vec<SocketAddr>,
    },
    /// A [`Dht::scrape`] ended: what it counted ([`DhtEvent::LookupDone`] follows).
    Scraped {
        /// The lookup.
        lookup: LookupId,
        /// Its torrent.
        info_hash: InfoHash,
        /// The counts; all zero when no node answered.
        swarm: SwarmCount,
    },
    /// A lookup ended (for [`Dht::announce`], its `announce_peer` queries are on their way).
    LookupDone {
        /// The lookup.
        lookup: LookupId,
        /// Its torrent.
        info_hash: InfoHash,
        /// Depth of the deepest node that answered (seeds are hop 1).
        hops: u32,
        /// Nodes queried.
        queried: usize,
    },
    /// A bootstrap reached the network: the routing table has nodes.
    Bootstrapped,
}

/// Why a query is outstanding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QueryPurpose {
    /// Part of a lookup's search in one family.
    Lookup { lookup: LookupId, family: Family },
    /// Liveness check or verification of a node.
    Ping,
    /// An `announce_peer` at the end of a lookup.
    Announce,
}

/// A query awaiting its answer.
#[derive(Debug, Clone)]
struct Pending {
    to: SocketAddr,
    /// The id we believe answers at `to`, if any.
    expect: Option<NodeId>,
    deadline: Instant,
    purpose: QueryPurpose,
}

/// A ping or announce waiting for the outgoing rate limit.
#[derive(Debug, Clone)]
struct Queued {
    to: SocketAddr,
    expect: Option<NodeId>,
    method: krpc::Method,
    purpose: QueryPurpose,
}

/// Where the bootstrap stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bootstrap {
    /// Not asked to bootstrap yet.
    Idle,
    /// Waiting for an address to start from, or for the retry time.
    Waiting { retry_at: Instant },
    /// The bootstrap lookup runs.
    Running { lookup: LookupId },
    /// Bootstrapped.
    Done,
}

/// The DHT node: routing tables, lookups, the token secret and the peers announced to us.
///
/// Methods come in four families, as in quinn-proto: getters; inputs
/// ([`handle_datagram`](Self::handle_datagram), [`handle_timeout`](Self::handle_timeout),
/// [`add_bootstrap`](Self::add_bootstrap)); commands ([`bootstrap`](Self::bootstrap),
/// [`get_peers`](Self::get_peers), [`announce`](Self::announce)); and outputs
/// ([`poll_output`](Self::poll_output), [`poll_timeout`](Self::poll_timeout)).
#[derive(Debug)]
pub struct Dht {
    config: DhtConfig,
    id: NodeId,
    rng: ChaCha8Rng,
    /// Latest `now` seen, for the snapshot (which takes no time argument).
    last_now: Instant,
    tables: [RoutingTable; 2],
    pending: BTreeMap<u16, Pending>,
    deadlines: BTreeSet<(Instant, u16)>,
    /// Addresses with a ping in flight or queued, so each gets one at a time.
    pinging: BTreeSet<SocketAddr>,
    queued: VecDeque<Queued>,
    lookups: BTreeMap<LookupId, Lookup>,
    next_lookup: u64,
    tokens: Tokens,
    peers: PeerStore,
    outgoing: RateLimiter,
    incoming: PerIpLimiter,
    /// Set when sending stopped at the outgoing rate limit: when to try again.
    throttled_until: Option<Instant>,
    /// Resolved bootstrap routers; never put in routing tables.
    bootstrap_addrs: BTreeSet<SocketAddr>,
    /// Nodes from a saved snapshot, used as lookup seeds while the tables are small.
    saved_contacts: Vec<NodeInfo>,
    bootstrap: Bootstrap,
    next_maintenance: Instant,
    outputs: VecDeque<DhtOutput>,
}

impl Dht {
    /// A DHT node with id `node_id`; `seed` drives every random choice (transaction ids,
    /// token secrets, refresh targets).
    pub fn new(config: DhtConfig, node_id: NodeId, seed: u64, now: Instant) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let tokens = Tokens::new(&mut rng, now);
        let rate = config.max_queries_per_sec;
        let in_rate = config.max_incoming_per_ip_per_sec;
        Dht {
            id: node_id,
            rng,
            last_now: now,
            tables: [RoutingTable::new(node_id, now), RoutingTable::new(node_id, now)],
            pending: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            pinging: BTreeSet::new(),
            queued: VecDeque::new(),
            lookups: BTreeMap::new(),
            next_lookup: 0,
            tokens,
            peers: PeerStore::new(config.max_stored_peers, config.max_peers_per_torrent),
            outgoing: RateLimiter::new(rate, rate, now),
            incoming: PerIpLimiter::new(in_rate, in_rate.saturating_mul(2), config.max_tracked_ips),
            throttled_until: None,
            bootstrap_addrs: BTreeSet::new(),
            saved_contacts: Vec::new(),
            bootstrap: Bootstrap::Idle,
            next_maintenance: now + MAINTENANCE_EVERY,
            outputs: VecDeque::new(),
            config,
        }
    }

    /// A DHT node resumed from [`Dht::routing_snapshot`] bytes: the saved id, and the saved
    /// nodes as first contacts (pinged, and used as lookup seeds); call [`Dht::bootstrap`]
    /// next. Garbage is refused with an error (start with [`Dht::new`] then).
    pub fn with_saved(config: DhtConfig, saved: &[u8], seed: u64, now: Instant) -> Result<Self, SnapshotError> {
        let snapshot = Snapshot::decode(saved)?;
        let mut dht = Dht::new(config, snapshot.id, seed, now);
        dht.add_contacts(&snapshot.nodes, now);
        Ok(dht)
    }

    /// Adds the nodes of a saved snapshot as contacts, keeping our id; returns how many.
    pub fn restore(&mut self, saved: &[u8], now: Instant) -> Result<usize, SnapshotError> {
        let snapshot = Snapshot::decode(saved)?;
        Ok(self.add_contacts(&snapshot.nodes, now))
    }

    /// Remembers contacts and pings them so live ones enter the routing table.
    fn add_contacts(&mut self, nodes: &[NodeInfo], now: Instant) -> usize {
        self.last_now = self.last_now.max(now);
        let mut added = 0;
        for n in nodes {
            if !self.family_enabled(Family::of(&n.addr)) || n.id == self.id {
                continue;
            }
            if self.saved_contacts.len() >= MAX_SAVED_CONTACTS {
                break;
            }
            if !self.saved_contacts.iter().any(|c| c.addr == n.addr) {
                self.saved_contacts.push(*n);
                self.queue_ping(*n);
                added += 1;
            }
        }
        added
    }

    // ----- getters -----

    /// Our node id.
    pub fn node_id(&self) -> NodeId {
        self.id
    }

    /// The configuration.
    pub fn config(&self) -> &DhtConfig {
        &self.config
    }

    /// Nodes in the routing table of `family`.
    pub fn table_len(&self, family: Family) -> usize {
        self.tables[family.index()].len()
    }

    /// The routing table of `family`, read-only.
    pub fn table(&self, family: Family) -> &RoutingTable {
        &self.tables[family.index()]
    }

    /// Lookups still running.
    pub fn active_lookups(&self) -> usize {
        self.lookups.len()
    }

    /// Peers stored for other nodes' announces.
    pub fn stored_peers(&self) -> usize {
        self.peers.len()
    }

    /// Whether a bootstrap has reached the network.
    pub fn is_bootstrapped(&self) -> bool {
        self.bootstrap == Bootstrap::Done
    }

    /// The bencoded snapshot to persist: our id and the good nodes of each table.
    pub fn routing_snapshot(&self) -> Vec<u8> {
        let mut nodes = Vec::new();
        for family in Family::ALL {
            nodes.extend(self.tables[family.index()].good_nodes(self.last_now));
        }
        Snapshot { id: self.id, nodes }.encode()
    }

    // ----- commands -----

    /// Joins the network: asks the runtime to resolve the bootstrap routers and looks up our
    /// own id from whatever contacts we have. [`DhtEvent::Bootstrapped`] follows on success;
    /// failures are retried every 30 seconds.
    pub fn bootstrap(&mut self, now: Instant) {
        self.last_now = self.last_now.max(now);
        for (host, port) in &self.config.bootstrap {
            self.outputs.push_back(DhtOutput::Resolve { host: host.clone(), port: *port });
        }
        if !matches!(self.bootstrap, Bootstrap::Running { .. }) {
            self.start_bootstrap(now);
        }
        self.drive(now);
    }

    /// A resolved bootstrap router address (from a [`DhtOutput::Resolve`], or configured by
    /// the user). Joins a running bootstrap or starts a waiting one.
    pub fn add_bootstrap(&mut self, addr: SocketAddr, now: Instant) {
        self.last_now = self.last_now.max(now);
        let addr = node::canonical(addr);
        if !node::is_usable(&addr) || !self.family_enabled(Family::of(&addr)) {
            return;
        }
        self.bootstrap_addrs.insert(addr);
        match self.bootstrap {
            Bootstrap::Running { lookup } => {
                if let Some(search) = self.lookups.get_mut(&lookup).and_then(|l| l.search_mut(Family::of(&addr))) {
                    search.add_seed(None, addr);
                }
            }
            Bootstrap::Waiting { .. } => self.start_bootstrap(now),
            Bootstrap::Idle | Bootstrap::Done => {}
        }
        self.drive(now);
    }

    /// A DHT node heard of elsewhere, such as a peer's BEP 5 `PORT` message: it is pinged and
    /// enters the routing table if it answers.
    pub fn add_node(&mut self, addr: SocketAddr, now: Instant) {
        self.last_now = self.last_now.max(now);
        let addr = node::canonical(addr);
        if node::is_usable(&addr) && self.family_enabled(Family::of(&addr)) {
            self.queue_ping_to(addr, None);
        }
        self.drive(now);
    }

    /// Starts a lookup for peers of `info_hash`; [`DhtEvent::Peers`] and then
    /// [`DhtEvent::LookupDone`] follow.
    pub fn get_peers(&mut self, info_hash: InfoHash, now: Instant) -> LookupId {
        let id = self.start_lookup(NodeId::from(info_hash), LookupKind::GetPeers, Purpose::User, now);
        self.drive(now);
        id
    }

    /// Like [`Dht::get_peers`], then announces `port` (or, with `implied_port`, the UDP source
    /// port) to the closest nodes that handed out tokens.
    pub fn announce(&mut self, info_hash: InfoHash, port: u16, implied_port: bool, now: Instant) -> LookupId {
        self.announce_as(info_hash, port, implied_port, false, now)
    }

    /// Like [`Dht::announce`], saying whether we `seed` the torrent (BEP 33 `seed=1`), so that
    /// scrapes count us among its seeds.
    pub fn announce_as(
        &mut self,
        info_hash: InfoHash,
        port: u16,
        implied_port: bool,
        seed: bool,
        now: Instant,
    ) -> LookupId {
        let kind = LookupKind::Announce { port, implied_port, seed };
        let id = self.start_lookup(NodeId::from(info_hash), kind, Purpose::User, now);
        self.drive(now);
        id
    }

    /// Counts the swarm of `info_hash` (BEP 33 scrape): a `get_peers` lookup with `scrape=1`.
    /// No [`DhtEvent::Peers`] come of it; [`DhtEvent::Scraped`] and then
    /// [`DhtEvent::LookupDone`] follow.
    pub fn scrape(&mut self, info_hash: InfoHash, now: Instant) -> LookupId {
        let id = self.start_lookup(NodeId::from(info_hash), LookupKind::Scrape, Purpose::User, now);
        self.drive(now);
        id
    }

    // ----- input -----

    /// A datagram arrived from `from`.
    pub fn handle_datagram(&mut self, from: SocketAddr, data: &[u8], now: Instant) {
        self.last_now = self.last_now.max(now);
        let from = node::canonical(from);
        if !node::is_usable(&from) || !self.family_enabled(Family::of(&from)) {
            return;
        }
        match Message::decode(data) {
            Ok(msg) => match msg.body {
                Body::Query(query) => self.handle_query(from, msg.tid, msg.read_only, query, now),
                Body::Response(response) => self.handle_response(from, &msg.tid, response, now),
                Body::Error { .. } => self.handle_error(from, &msg.tid),
            },
            Err(krpc::KrpcError::BadQuery { tid, reason }) => {
                if self.incoming.allow(from.ip(), now) {
                    self.send_error(from, tid, krpc::ERROR_PROTOCOL, reason);
                }
            }
            // Not KRPC, or an answer we cannot read: the query it answers will time out.
            Err(_) => {}
        }
        self.drive(now);
    }

    /// Time has passed: expires queries and lookups, rotates the token secret, refreshes
    /// stale buckets, retries the bootstrap.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = self.last_now.max(now);
        self.expire_queries(now);
        self.tokens.handle_timeout(&mut self.rng, now);
        if now >= self.next_maintenance {
            self.next_maintenance = now + MAINTENANCE_EVERY;
            self.maintain(now);
        }
        if let Bootstrap::Waiting { retry_at } = self.bootstrap {
            if now >= retry_at {
                for (host, port) in &self.config.bootstrap {
                    self.outputs.push_back(DhtOutput::Resolve { host: host.clone(), port: *port });
                }
                self.start_bootstrap(now);
            }
        }
        self.drive(now);
    }

    // ----- output -----

    /// The next thing to do, if any. Drain after every call into the DHT.
    pub fn poll_output(&mut self) -> Option<DhtOutput> {
        self.outputs.pop_front()
    }

    /// When [`Dht::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Instant {
        let mut next = self.next_maintenance.min(self.tokens.next_rotation());
        if let Some(&(deadline, _)) = self.deadlines.first() {
            next = next.min(deadline);
        }
        if let Some(lookup_deadline) = self.lookups.values().map(|l| l.deadline).min() {
            next = next.min(lookup_deadline);
        }
        if let Bootstrap::Waiting { retry_at } = self.bootstrap {
            next = next.min(retry_at);
        }
        if let Some(at) = self.throttled_until {
            next = next.min(at);
        }
        next
    }

    // ----- internals shared by the client and server halves -----

    fn family_enabled(&self, family: Family) -> bool {
        match family {
            Family::V4 => self.config.ipv4,
            Family::V6 => self.config.ipv6,
        }
    }

    /// The enabled families.
    fn families(&self) -> Vec<Family> {
        Family::ALL.into_iter().filter(|f| self.family_enabled(*f)).collect()
    }

    fn table_mut(&mut self, family: Family) -> &mut RoutingTable {
        &mut self.tables[family.index()]
    }

    /// Housekeeping: expire stored peers, forget idle rate-limit entries, ping the stalest
    /// questionable node of each bucket, refresh stale buckets, re-bootstrap an empty table.
    fn maintain(&mut self, now: Instant) {
        self.peers.expire(now);
        self.incoming.cleanup(now);
        for family in self.families() {
            for node in self.tables[family.index()].questionable(now) {
                self.queue_ping(node);
            }
            let refreshing = self.lookups.values().filter(|l| l.purpose == Purpose::Refresh).count();
            let stale = self.tables[family.index()].stale_buckets(now);
            for index in stale.into_iter().take(MAX_REFRESH_LOOKUPS.saturating_sub(refreshing)) {
                let target = self.tables[family.index()].random_id_in_bucket(index, &mut self.rng);
                self.table_mut(family).touch_bucket(index, now);
                self.start_lookup(target, LookupKind::FindNode, Purpose::Refresh, now);
            }
        }
        let empty = self.families().into_iter().all(|f| self.table_len(f) == 0);
        if empty && self.bootstrap == Bootstrap::Done {
            self.bootstrap = Bootstrap::Waiting { retry_at: now };
        }
    }

    /// Starts the bootstrap lookup if there is anything to start from, else waits.
    fn start_bootstrap(&mut self, now: Instant) {
        let has_contacts = !self.bootstrap_addrs.is_empty()
            || !self.saved_contacts.is_empty()
            || Family::ALL.iter().any(|f| self.table_len(*f) > 0);
        self.bootstrap = if has_contacts {
            let lookup = self.start_lookup(self.id, LookupKind::FindNode, Purpose::Bootstrap, now);
            Bootstrap::Running { lookup }
        } else {
            Bootstrap::Waiting { retry_at: now + BOOTSTRAP_RETRY }
        };
    }

    /// Creates a lookup seeded from the routing tables (plus saved contacts and bootstrap
    /// routers while a table is small); it starts sending at the next [`Dht::drive`].
    fn start_lookup(&mut self, target: NodeId, kind: LookupKind, purpose: Purpose, now: Instant) -> LookupId {
        let id = LookupId(self.next_lookup);
        self.next_lookup += 1;
        let mut searches = [None, None];
        for family in self.families() {
            let mut search = lookup::Search::new(target, self.id, self.config.max_hops, self.config.max_lookup_queries);
            let table = &self.tables[family.index()];
            for n in table.closest(&target, SEEDS, now) {
                search.add_seed(Some(n.id), n.addr);
            }
            if table.len() < routing::K {
                for c in self.saved_contacts.iter().filter(|c| Family::of(&c.addr) == family) {
                    search.add_seed(Some(c.id), c.addr);
                }
                for addr in self.bootstrap_addrs.iter().filter(|a| Family::of(a) == family) {
                    search.add_seed(None, *addr);
                }
            }
            searches[family.index()] = Some(search);
        }
        let deadline = now + self.config.lookup_timeout;
        let tally = (kind == LookupKind::Scrape).then(scrape::ScrapeTally::new);
        let lookup = Lookup { kind, purpose, target, searches, peers_seen: BTreeSet::new(), tally, deadline };
        self.lookups.insert(id, lookup);
        id
    }

    /// Sends what the rate limit allows, then finishes converged lookups, until stable.
    fn drive(&mut self, now: Instant) {
        loop {
            self.pump(now);
            if !self.finish_lookups(now) {
                break;
            }
        }
    }

    /// Queues a ping to `node` unless one is already on its way.
    fn queue_ping(&mut self, node: NodeInfo) {
        self.queue_ping_to(node.addr, Some(node.id));
    }

    /// Queues a ping to `to` (expecting `expect` to answer, if known) unless one is on its way.
    fn queue_ping_to(&mut self, to: SocketAddr, expect: Option<NodeId>) {
        if self.queued.len() < MAX_QUEUED && self.pinging.insert(to) {
            self.queued.push_back(Queued { to, expect, method: krpc::Method::Ping, purpose: QueryPurpose::Ping });
        }
    }
}

#[cfg(test)]
mod tests;
