//! The world: engines, a virtual clock and the queue of everything in flight between them.
//!
//! [`World::step`] delivers everything due at the current instant (bytes, job completions,
//! tracker answers, expired engine deadlines), then jumps the clock to the next thing that is
//! due. [`World::run_until`] steps until a condition holds and fails the test if it never does.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha1::{Digest, Sha1};
use shoal_netsim::tracker::Tracker;
use shoal_netsim::Uplink;

use shoal_core::{
    AddMagnet, AddTorrent, Bitfield, CloseReason, Config, ConnId, Engine, Event, Input, Instant, JobId, JobResult,
    Output, PeerIo, Socket, TorrentId, UdpIo,
};

use super::disk::Disk;
use super::net::{virtual_time, Wire};
use super::node::{Node, NodeId, Nodes};
use super::raw::{RawId, Raws};
use super::tap::{Tap, WireEntry};
use super::torrent::TestTorrent;

/// Something on its way to a node or a hand-driven peer.
pub(super) enum Ev {
    Dial { from: NodeId, conn: ConnId, target: Option<NodeId> },
    Data { node: NodeId, conn: ConnId, data: Vec<u8> },
    RawData { raw: RawId, data: Vec<u8> },
    Sent { node: NodeId, conn: ConnId, n: usize },
    Closed { node: NodeId, conn: ConnId },
    Job { node: NodeId, job: JobId, result: JobResult },
    Http { node: NodeId, job: JobId, body: Vec<u8> },
    Datagram { node: NodeId, from: SocketAddr, data: Vec<u8> },
    LsdDatagram { node: NodeId, from: SocketAddr, data: Vec<u8> },
}

/// Network, disk and tracker timing of a world.
#[derive(Clone, Debug)]
pub(crate) struct Timing {
    /// One-way latency of every link.
    pub latency: Duration,
    /// Deliver received bytes in pieces of random size up to this many bytes (`None`: whole).
    pub max_chunk: Option<usize>,
    /// Time a disk job takes.
    pub disk: Duration,
    /// Time a `Write` job takes, if not `disk` (a disk that stalls on writes only).
    pub write: Option<Duration>,
    /// Time a hash job takes.
    pub hash: Duration,
    /// Hash jobs write matching pieces themselves (as the runtimes do) instead of leaving the
    /// write to the engine.
    pub hash_writes: bool,
    /// Time the tracker takes to answer.
    pub tracker: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            latency: Duration::from_millis(5),
            max_chunk: Some(3000),
            disk: Duration::from_millis(1),
            write: None,
            hash: Duration::from_millis(1),
            hash_writes: false,
            tracker: Duration::from_millis(10),
        }
    }
}

/// Engines, a clock, a network, disks and a tracker.
pub(crate) struct World {
    /// The virtual clock.
    pub now: Instant,
    /// The engines.
    pub nodes: Nodes,
    /// Timing of everything outside the engines.
    pub timing: Timing,
    /// The tracker every torrent announces to.
    pub tracker: Tracker,
    /// While true, the tracker swallows announces and never answers.
    pub tracker_down: bool,
    /// Hand-driven connections.
    pub raws: Raws,
    queue: BTreeMap<(Instant, u64), Ev>,
    seq: u64,
    seed: u64,
    /// Cuts received bytes into reads.
    pub(super) rng: ChaCha8Rng,
    /// Each open connection's outgoing direction.
    pub(super) links: HashMap<(NodeId, ConnId), Wire>,
    /// Connections a node is dialling.
    pub(super) dialing: HashMap<(NodeId, ConnId), ()>,
    /// Source port of the next accepted connection.
    pub(super) next_ephemeral: u16,
    /// Digest of every output so far.
    pub(super) trace: Sha1,
    /// Number of outputs traced.
    pub trace_len: u64,
    /// Keep every trace line in [`World::trace_lines`] (for debugging a failing test).
    pub keep_trace: bool,
    /// Trace lines, if kept.
    pub trace_lines: Vec<String>,
    /// Decode the messages engines send each other into [`World::wire_log`].
    pub tap: bool,
    /// With `tap`: every message between engines, as sent.
    pub wire_log: Vec<WireEntry>,
    /// With `tap`: a decoder for each sending side.
    pub(super) taps: HashMap<(NodeId, ConnId), Tap>,
}

impl World {
    /// An empty world; engines get seeds derived from `seed`, and so does the network.
    pub(crate) fn new(seed: u64) -> Self {
        World {
            now: Instant::ZERO,
            nodes: Nodes::default(),
            timing: Timing::default(),
            tracker: Tracker::default(),
            tracker_down: false,
            raws: Raws::default(),
            queue: BTreeMap::new(),
            seq: 0,
            seed,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_0ffa_11ed),
            links: HashMap::new(),
            dialing: HashMap::new(),
            next_ephemeral: 40000,
            trace: Sha1::new(),
            trace_len: 0,
            keep_trace: false,
            trace_lines: Vec::new(),
            tap: false,
            wire_log: Vec::new(),
            taps: HashMap::new(),
        }
    }

    /// Adds an engine with the default configuration.
    pub(crate) fn add_node(&mut self) -> NodeId {
        self.add_node_with(|_| {})
    }

    /// Adds an engine whose configuration `tweak` adjusts (the listen port is the world's).
    pub(crate) fn add_node_with(&mut self, tweak: impl FnOnce(&mut Config)) -> NodeId {
        let i = self.nodes.next_id().0;
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i as u8 + 1)), 6881 + i as u16);
        let mut config = Config::default();
        tweak(&mut config);
        config.listen_port = addr.port();
        let seed = self.seed.wrapping_mul(1000).wrapping_add(i as u64);
        self.nodes.push(Node {
            engine: Engine::new(config, seed, self.now),
            addr,
            disks: HashMap::new(),
            events: Vec::new(),
            closes: Vec::new(),
            tracker_gets: Vec::new(),
            lsd_sends: Vec::new(),
            uplink: Uplink::default(),
        })
    }

    /// Adds a torrent to an engine, with `disk` as its files.
    pub(crate) fn add_torrent(&mut self, node: NodeId, params: AddTorrent, disk: Disk) -> TorrentId {
        let t = self.nodes[node].engine.add_torrent(params, self.now).expect("add_torrent");
        self.nodes[node].disks.insert(t, disk);
        self.drain(node);
        t
    }

    /// Adds a torrent whose data is all on disk (checked on add).
    pub(crate) fn seed(&mut self, node: NodeId, tt: &TestTorrent) -> TorrentId {
        self.add_torrent(node, AddTorrent::new(tt.meta.clone()), Disk::full(&tt.meta, &tt.data))
    }

    /// Adds a torrent whose data is all there, known from resume data (no check).
    pub(crate) fn seed_unchecked(&mut self, node: NodeId, tt: &TestTorrent) -> TorrentId {
        let have = Some(Bitfield::full(tt.pieces()));
        let params = AddTorrent { have, check_existing: false, ..AddTorrent::new(tt.meta.clone()) };
        self.add_torrent(node, params, Disk::full(&tt.meta, &tt.data))
    }

    /// Adds a torrent with nothing on disk.
    pub(crate) fn leech(&mut self, node: NodeId, tt: &TestTorrent) -> TorrentId {
        self.add_torrent(node, AddTorrent::new(tt.meta.clone()), Disk::empty(&tt.meta))
    }

    /// Adds a torrent by magnet; its disk appears (empty) when its metadata arrives.
    pub(crate) fn add_magnet(&mut self, node: NodeId, params: AddMagnet) -> TorrentId {
        let t = self.nodes[node].engine.add_magnet(params, self.now).expect("add_magnet");
        self.drain(node);
        t
    }

    /// Runs an application command on an engine, then drains its output.
    pub(crate) fn command<R>(&mut self, node: NodeId, f: impl FnOnce(&mut Engine, Instant) -> R) -> R {
        let r = f(&mut self.nodes[node].engine, self.now);
        self.drain(node);
        r
    }

    // ---- running ----

    /// Queues `ev` to happen at `at` (after everything queued for `at` before it).
    pub(super) fn schedule(&mut self, at: Instant, ev: Ev) {
        self.seq += 1;
        self.queue.insert((at, self.seq), ev);
    }

    /// Delivers everything due now, then moves the clock to the next deadline.
    pub(crate) fn step(&mut self) {
        let mut rounds = 0;
        loop {
            rounds += 1;
            assert!(rounds < 100_000, "the world does not settle at {:?}", self.now);
            let mut progressed = false;
            while let Some(entry) = self.queue.first_entry() {
                if entry.key().0 > self.now {
                    break;
                }
                let ev = entry.remove();
                self.apply(ev);
                progressed = true;
            }
            for i in self.nodes.ids() {
                if self.nodes[i].engine.poll_timeout().is_some_and(|t| t <= self.now) {
                    self.nodes[i].engine.handle_timeout(self.now);
                    self.drain(i);
                    progressed = true;
                }
            }
            if !progressed {
                break;
            }
        }
        let queued = self.queue.first_key_value().map(|((t, _), _)| *t);
        let Some(next) = self.nodes.iter().filter_map(|n| n.engine.poll_timeout()).chain(queued).min() else {
            return; // every engine is shut down and nothing is in flight
        };
        assert!(next > self.now, "a deadline at {next:?} is not in the future of {:?}", self.now);
        self.now = next;
    }

    /// How long node `node`'s uplink needs for what it was handed so far (its send backlog).
    pub(crate) fn uplink_backlog(&self, node: NodeId) -> Duration {
        self.nodes[node].uplink.backlog(virtual_time(self.now))
    }

    /// Steps until `cond` holds; fails the test if it does not within `limit` of virtual time.
    pub(crate) fn run_until(&mut self, limit: Duration, mut cond: impl FnMut(&World) -> bool) {
        let deadline = self.now + limit;
        while !cond(self) {
            assert!(self.now <= deadline, "condition not reached by {:?}\n{}", self.now, self.summary());
            self.step();
        }
    }

    /// Steps for `d` of virtual time.
    pub(crate) fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.step();
        }
    }

    /// One line per torrent of every engine, for failure messages.
    pub(crate) fn summary(&self) -> String {
        let mut s = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            for t in n.engine.torrents() {
                let st = n.stats(t);
                s += &format!(
                    "node {i} {t:?}: {:?} have {}/{} down {} up {} wasted {} peers {} candidates {}\n",
                    st.state,
                    st.pieces_have,
                    st.pieces_total,
                    st.downloaded,
                    st.uploaded,
                    st.wasted,
                    st.peers,
                    st.candidates
                );
            }
        }
        s
    }

    fn apply(&mut self, ev: Ev) {
        let now = self.now;
        match ev {
            Ev::Dial { from, conn, target } => self.dial(from, conn, target),
            Ev::Data { node, conn, data } => {
                self.nodes[node].engine.handle(Input::PeerBytes(conn, &data), now);
                self.drain(node);
            }
            Ev::RawData { raw, data } => self.raws[raw].received.extend_from_slice(&data),
            Ev::Datagram { node, from, data } => {
                self.nodes[node].engine.handle(Input::Datagram { socket: Socket::Dht, from, data: &data }, now);
                self.drain(node);
            }
            Ev::LsdDatagram { node, from, data } => {
                self.nodes[node].engine.handle(Input::Datagram { socket: Socket::Lsd, from, data: &data }, now);
                self.drain(node);
            }
            Ev::Sent { node, conn, n } => {
                self.nodes[node].engine.handle(Input::Sent(conn, n), now);
                self.drain(node);
            }
            Ev::Closed { node, conn } => {
                self.nodes[node].engine.handle(Input::Closed(conn, CloseReason::PeerClosed), now);
                self.drain(node);
            }
            Ev::Job { node, job, result } => {
                self.nodes[node].engine.handle(Input::Job(job, result), now);
                self.drain(node);
            }
            Ev::Http { node, job, body } => {
                self.nodes[node].engine.handle(Input::Http(job, Ok(body)), now);
                self.drain(node);
            }
        }
    }

    /// Executes everything an engine asked for since the last drain.
    pub(super) fn drain(&mut self, node: NodeId) {
        while let Some(out) = self.nodes[node].engine.poll_output() {
            self.record(node, &out);
            self.execute(node, out);
        }
    }

    fn execute(&mut self, a: NodeId, out: Output) {
        let now = self.now;
        match out {
            Output::Peer(PeerIo::Connect { conn, addr }) => self.connect(a, conn, addr),
            Output::Peer(PeerIo::Send { conn, data }) => self.send(a, conn, data),
            Output::Peer(PeerIo::Close { conn, .. }) => self.close(a, conn),
            Output::Disk(job) => self.disk_job(a, job),
            Output::Hash(job) => self.hash_job(a, job),
            Output::Http { id, url } => self.tracker_get(a, id, url),
            Output::Udp(UdpIo::Exchange { .. } | UdpIo::EndExchange { .. }) => {}
            Output::Udp(UdpIo::Dht { to, data }) => self.dht_datagram(a, to, data),
            Output::Resolve { .. } => {}
            Output::Udp(UdpIo::Lsd { data, v6 }) => self.lsd_datagram(a, data, v6),
            Output::Event(e) => {
                if let Event::MetadataReceived { torrent, .. } = &e {
                    // Like a runtime: map the files before running the jobs that follow.
                    let meta = self.nodes[a].engine.metainfo(*torrent).expect("metadata is known now").clone();
                    self.nodes[a].disks.insert(*torrent, Disk::empty(&meta));
                }
                self.nodes[a].events.push((now, e))
            }
        }
    }
}
