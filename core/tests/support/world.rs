//! The world: engines, a virtual clock and the queue of everything in flight between them.
//!
//! [`World::step`] delivers everything due at the current instant (bytes, job completions,
//! tracker answers, expired engine deadlines), then jumps the clock to the next thing that is
//! due. [`World::run_until`] steps until a condition holds and fails the test if it never does.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use sha1::{Digest, Sha1};
use shoal_netsim::tracker::Tracker;
use shoal_netsim::Uplink;

use shoal_core::{
    AddMagnet, AddTorrent, Bitfield, CloseReason, Config, Engine, Event, Input, Instant, Output, PeerIo, Socket,
    TorrentId, UdpIo,
};

use super::disk::{self, Disk};
use super::ids::{NodeId, RawId};
use super::net::{self, virtual_time, Net};
use super::node::{Node, Nodes};
use super::queue::{Ev, Queue};
use super::raw::{RawPeer, Raws};
use super::tap::{Taps, WireEntry};
use super::timing::Timing;
use super::torrent::TestTorrent;
use super::trace::describe;

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
    queue: Queue,
    seed: u64,
    net: Net,
    /// Digest of every output so far.
    trace: Sha1,
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
    taps: Taps,
    /// Stream (TCP) dials the engines asked for; uTP connections go as datagrams instead.
    pub stream_dials: usize,
    /// Addresses where a hand-driven peer takes every dial (see [`World::raw_listen`]).
    raw_listeners: Vec<SocketAddr>,
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
            queue: Queue::default(),
            seed,
            net: Net::new(seed),
            trace: Sha1::new(),
            trace_len: 0,
            keep_trace: false,
            trace_lines: Vec::new(),
            tap: false,
            wire_log: Vec::new(),
            taps: Taps::default(),
            stream_dials: 0,
            raw_listeners: Vec::new(),
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
        // The world carries TCP-like streams only; a test that wants uTP turns it on.
        let mut config = Config { utp: false, ..Config::default() };
        tweak(&mut config);
        config.listen_port = addr.port();
        let seed = self.seed.wrapping_mul(1000).wrapping_add(i as u64);
        self.nodes.push(Node {
            engine: Engine::new(config, seed, self.now),
            addr,
            aliases: Vec::new(),
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

    /// Digest of every output so far (time, node and a summary of each).
    pub(crate) fn trace_digest(&self) -> [u8; 20] {
        self.trace.clone().finalize().into()
    }

    // ---- hand-driven peers ----

    /// Opens a connection from `from` to engine `node`, driven by the test.
    pub(crate) fn raw_connect(&mut self, node: NodeId, from: SocketAddr) -> RawId {
        let conn = self.nodes[node].engine.accept(from, self.now).expect("engine accepts the connection");
        self.drain(node);
        let raw = self.raws.push(RawPeer { node, conn, received: Vec::new(), closed: false, dialled: None });
        self.net.join_raw((node, conn), raw);
        raw
    }

    /// Every dial of `addr` from now on is taken by a new hand-driven peer, which says nothing
    /// until the test makes it ([`Raws::dialled_at`](super::raw::Raws::dialled_at) finds them).
    pub(crate) fn raw_listen(&mut self, addr: SocketAddr) {
        self.raw_listeners.push(addr);
    }

    /// A hand-driven peer hangs up; the engine hears of it after the link latency.
    pub(crate) fn raw_close(&mut self, raw: RawId) {
        let RawPeer { node, conn, .. } = self.raws[raw];
        self.raws[raw].closed = true;
        self.net.hang_up((node, conn));
        self.queue.schedule(self.now + self.timing.latency, Ev::Closed { node, conn });
    }

    /// Sends bytes from a hand-driven peer; they arrive after the link latency.
    pub(crate) fn raw_send(&mut self, raw: RawId, data: &[u8]) {
        let RawPeer { node, conn, .. } = self.raws[raw];
        let at = self.now + self.timing.latency;
        self.queue.schedule(at, Ev::Data { node, conn, data: data.to_vec() });
    }

    // ---- running ----

    /// Delivers everything due now, then moves the clock to the next deadline.
    pub(crate) fn step(&mut self) {
        let mut rounds = 0;
        loop {
            rounds += 1;
            assert!(rounds < 100_000, "the world does not settle at {:?}", self.now);
            let mut progressed = false;
            while let Some(ev) = self.queue.pop_due(self.now) {
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
        let queued = self.queue.next_due();
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
            Ev::Dial { from, conn, target, addr } => {
                if !self.net.dial_arrives((from, conn)) {
                    return; // the dialer gave up first
                }
                if target.is_none() && self.raw_listeners.contains(&addr) {
                    let raw = RawPeer { node: from, conn, received: Vec::new(), closed: false, dialled: Some(addr) };
                    let raw = self.raws.push(raw);
                    self.net.join_raw((from, conn), raw);
                    self.nodes[from].engine.handle(Input::Connected(conn), now);
                    return self.drain(from);
                }
                let accepted = target.and_then(|b| {
                    let src = self.net.source(self.nodes[from].addr.ip());
                    let bc = self.nodes[b].engine.accept(src, now)?;
                    self.drain(b);
                    Some((b, bc))
                });
                match accepted {
                    Some((b, bc)) => {
                        self.net.join((from, conn), (b, bc));
                        self.nodes[from].engine.handle(Input::Connected(conn), now);
                    }
                    None => {
                        let refused = CloseReason::DialFailed(ErrorKind::ConnectionRefused);
                        self.nodes[from].engine.handle(Input::Closed(conn, refused), now)
                    }
                }
                self.drain(from);
            }
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
    fn drain(&mut self, node: NodeId) {
        while let Some(out) = self.nodes[node].engine.poll_output() {
            self.record(node, &out);
            self.execute(node, out);
        }
    }

    /// Adds an output of `node` to the trace.
    fn record(&mut self, node: NodeId, out: &Output) {
        let line = format!("{} {node} {}", self.now.as_micros(), describe(out));
        self.trace.update(line.as_bytes());
        self.trace.update(b"\n");
        self.trace_len += 1;
        if self.keep_trace {
            self.trace_lines.push(line);
        }
    }

    fn execute(&mut self, a: NodeId, out: Output) {
        let now = self.now;
        let at = now + self.timing.latency;
        match out {
            Output::Peer(PeerIo::Connect { conn, addr }) => {
                self.stream_dials += 1;
                let target = self.nodes.at(addr);
                self.net.dial((a, conn));
                self.queue.schedule(at, Ev::Dial { from: a, conn, target, addr });
            }
            Output::Peer(PeerIo::Send { conn, data }) => {
                let uplink = &mut self.nodes[a].uplink;
                let to_node = self.net.send((a, conn), data, uplink, &self.timing, &mut self.queue, now);
                if let (Some((to, data)), true) = (to_node, self.tap) {
                    self.taps.tap(now, (a, conn), to, &data, &mut self.wire_log);
                }
            }
            Output::Peer(PeerIo::Close { conn, .. }) => {
                self.nodes[a].closes.push((now, conn));
                if let Some(raw) = self.net.close((a, conn), now, self.timing.latency, &mut self.queue) {
                    self.raws[raw].closed = true;
                }
            }
            Output::Disk(job) => {
                let disk = self.nodes[a].disks.get_mut(&job.torrent);
                let disk =
                    disk.unwrap_or_else(|| panic!("node {a}: disk job for {:?}, which has no disk", job.torrent));
                let result = disk.run(a, &job.kind);
                self.queue.schedule(now + self.timing.disk_job(&job.kind), Ev::Job { node: a, job: job.id, result });
            }
            Output::Hash(job) => {
                let (id, result) = disk::hash(job, &mut self.nodes[a].disks, self.timing.hash_writes);
                self.queue.schedule(now + self.timing.hash, Ev::Job { node: a, job: id, result });
            }
            Output::Http { id, url } => {
                self.nodes[a].tracker_gets.push((now, url.clone()));
                if !self.tracker_down {
                    let body = self.tracker.http(self.nodes[a].addr.ip(), &url);
                    self.queue.schedule(now + self.timing.tracker, Ev::Http { node: a, job: id, body });
                }
            }
            Output::Udp(UdpIo::Exchange { .. } | UdpIo::EndExchange { .. }) => {}
            Output::Udp(UdpIo::Dht { to, data }) => net::dht_datagram(&self.nodes, &mut self.queue, at, a, to, data),
            Output::Resolve { .. } => {}
            Output::Udp(UdpIo::Lsd { data, v6 }) => {
                net::lsd_datagram(&mut self.nodes, &mut self.queue, now, at, a, data, v6)
            }
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
