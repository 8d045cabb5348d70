//! A deterministic in-process world for engine tests: N engines, a virtual clock, in-memory
//! disks, inline SHA-1, a simulated network and a fake HTTP tracker. No sockets, no threads,
//! no real time: a run is a pure function of the seeds.
//!
//! [`World::step`] delivers everything due at the current instant (bytes, job completions,
//! tracker answers, expired engine deadlines), then jumps the clock to the next thing that is
//! due. [`World::run_until`] steps until a condition holds and fails the test if it never does.

#![allow(dead_code)] // not every test uses every part of the harness

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::time::Duration;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha1::{Digest, Sha1};
use shoal_netsim::tracker::Tracker;
use shoal_netsim::{Link, Path, Reads, Uplink};

use shoal_core::create::TorrentBuilder;
use shoal_core::wire::{Decoder, HandshakeDecoder, HandshakeStep, Limits, Message};
use shoal_core::{
    AddMagnet, AddTorrent, Config, ConnId, DiskJob, DiskJobKind, Engine, Event, FileSpan, HashJob, Input, Instant,
    JobId, JobResult, Metainfo, Output, PeerIo, Socket, TorrentId, TorrentStats, UdpIo,
};

/// The one tracker every test torrent names; the world's [`Tracker`] answers it.
pub const TRACKER: &str = "http://tracker.sim/announce";

// ---- torrents ----

/// One file of a test torrent.
#[derive(Clone, Debug)]
pub struct FileSpec {
    /// Path below the torrent's directory, components separated by `/`.
    pub path: &'static str,
    /// Length in bytes.
    pub len: u64,
    /// A BEP 47 pad file (zeros, never on disk).
    pub pad: bool,
}

/// A regular file.
pub fn file(path: &'static str, len: u64) -> FileSpec {
    FileSpec { path, len, pad: false }
}

/// A pad file.
pub fn pad(path: &'static str, len: u64) -> FileSpec {
    FileSpec { path, len, pad: true }
}

/// A torrent made from seeded pseudo-random data, with that data.
#[derive(Clone, Debug)]
pub struct TestTorrent {
    /// The parsed torrent.
    pub meta: Metainfo,
    /// The whole torrent's bytes, pad files (zeros) included.
    pub data: Vec<u8>,
}

impl TestTorrent {
    /// Builds a multi-file torrent over `files`, naming [`TRACKER`].
    pub fn new(seed: u64, piece_length: u32, files: &[FileSpec]) -> Self {
        Self::build(seed, piece_length, files, false)
    }

    /// Like [`TestTorrent::new`], with the BEP 27 private flag set in the info dictionary.
    pub fn private(seed: u64, piece_length: u32, files: &[FileSpec]) -> Self {
        Self::build(seed, piece_length, files, true)
    }

    fn build(seed: u64, piece_length: u32, files: &[FileSpec], private: bool) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut builder = TorrentBuilder::new(format!("torrent-{seed}"));
        builder.set_piece_length(piece_length).set_trackers(vec![vec![TRACKER.to_string()]]).set_private(private);
        let mut data = Vec::new();
        for f in files {
            builder.add_file(f.path.split('/').map(str::to_string).collect(), f.len);
            let start = data.len();
            data.resize(start + f.len as usize, 0);
            if !f.pad {
                rng.fill_bytes(&mut data[start..]);
            }
        }
        let mut hasher = builder.piece_hasher();
        hasher.update(&data);
        let bytes = builder.build(hasher.finish()).expect("test torrent builds");
        let mut meta = Metainfo::from_bytes(&bytes).expect("test torrent parses");
        // The builder has no BEP 47 attributes; flag pad files on the parsed form (the info-hash
        // does not cover this, which does not matter inside one process).
        assert_eq!(meta.info.files.len(), files.len(), "parser kept every file");
        for (entry, f) in meta.info.files.iter_mut().zip(files) {
            entry.attr.pad = f.pad;
        }
        TestTorrent { meta, data }
    }

    /// Number of pieces.
    pub fn pieces(&self) -> u32 {
        self.meta.info.piece_count()
    }

    /// Byte range of a piece in the torrent's data.
    pub fn piece_range(&self, piece: u32) -> Range<usize> {
        let start = piece as usize * self.meta.info.piece_length as usize;
        start..start + self.meta.info.piece_size(piece) as usize
    }

    /// Byte range of a file in the torrent's data.
    pub fn file_range(&self, file: usize) -> Range<usize> {
        let f = &self.meta.info.files[file];
        f.offset as usize..(f.offset + f.length) as usize
    }

    /// Pieces overlapping file `file`.
    pub fn file_pieces(&self, file: usize) -> Range<u32> {
        let r = self.file_range(file);
        if r.is_empty() {
            return 0..0;
        }
        let plen = self.meta.info.piece_length as usize;
        (r.start / plen) as u32..((r.end - 1) / plen + 1) as u32
    }
}

// ---- disks ----

#[derive(Clone, Debug)]
struct FileBuf {
    data: Vec<u8>,
    written: Vec<bool>,
    pad: bool,
    offset: u64,
}

/// One torrent's files in memory; every byte remembers whether it was ever written.
#[derive(Clone, Debug)]
pub struct Disk {
    files: Vec<FileBuf>,
    /// Pieces of every `Write` job, in order.
    pub written_pieces: Vec<u32>,
    /// Bytes written to pad files, which must stay zero.
    pub pad_writes: u64,
}

impl Disk {
    /// No data at all (a fresh download).
    pub fn empty(meta: &Metainfo) -> Self {
        let files = meta
            .info
            .files
            .iter()
            .map(|f| FileBuf {
                data: vec![0; f.length as usize],
                written: vec![false; f.length as usize],
                pad: f.is_pad(),
                offset: f.offset,
            })
            .collect();
        Disk { files, written_pieces: Vec::new(), pad_writes: 0 }
    }

    /// Every (non-pad) byte present: `data` is the whole torrent.
    pub fn full(meta: &Metainfo, data: &[u8]) -> Self {
        let mut d = Disk::empty(meta);
        d.fill(0, data);
        d
    }

    /// Puts `bytes` at torrent offset `start`, as if they had been there before the engine ran.
    pub fn fill(&mut self, start: u64, bytes: &[u8]) {
        let end = start + bytes.len() as u64;
        for f in &mut self.files {
            let (fs, fe) = (f.offset, f.offset + f.data.len() as u64);
            let (s, e) = (start.max(fs), end.min(fe));
            if s >= e || f.pad {
                continue;
            }
            let src = &bytes[(s - start) as usize..(e - start) as usize];
            f.data[(s - fs) as usize..(e - fs) as usize].copy_from_slice(src);
            f.written[(s - fs) as usize..(e - fs) as usize].fill(true);
        }
    }

    /// The torrent's bytes as they are on this disk (pad files and unwritten bytes read zero).
    pub fn contents(&self) -> Vec<u8> {
        self.files.iter().flat_map(|f| if f.pad { vec![0; f.data.len()] } else { f.data.clone() }).collect()
    }

    /// Bytes of file `file` ever written (or pre-filled).
    pub fn written_bytes(&self, file: usize) -> usize {
        self.files[file].written.iter().filter(|w| **w).count()
    }

    /// Bytes of the torrent range ever written (or pre-filled).
    pub fn written_in(&self, range: Range<usize>) -> usize {
        let mut n = 0;
        for f in &self.files {
            let (fs, fe) = (f.offset as usize, f.offset as usize + f.data.len());
            let (s, e) = (range.start.max(fs), range.end.min(fe));
            if s < e {
                n += f.written[s - fs..e - fs].iter().filter(|w| **w).count();
            }
        }
        n
    }

    fn write(&mut self, spans: &[FileSpan], data: &[u8]) {
        let mut pos = 0usize;
        for s in spans {
            let f = &mut self.files[s.file as usize];
            let (off, len) = (s.offset as usize, s.len as usize);
            assert!(off + len <= f.data.len(), "write span {s:?} runs past its file");
            assert_eq!(s.pad, f.pad, "span {s:?} disagrees about being padding");
            if s.pad {
                self.pad_writes += data[pos..pos + len].iter().filter(|b| **b != 0).count() as u64;
            } else {
                f.data[off..off + len].copy_from_slice(&data[pos..pos + len]);
                f.written[off..off + len].fill(true);
            }
            pos += len;
        }
        assert_eq!(pos, data.len(), "write spans cover the data exactly");
    }

    /// The spans' bytes, or `None` if a non-pad byte was never written.
    fn read(&self, spans: &[FileSpan]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        for s in spans {
            let f = &self.files[s.file as usize];
            let (off, len) = (s.offset as usize, s.len as usize);
            assert!(off + len <= f.data.len(), "read span {s:?} runs past its file");
            if s.pad {
                out.resize(out.len() + len, 0);
            } else {
                if !f.written[off..off + len].iter().all(|w| *w) {
                    return None;
                }
                out.extend_from_slice(&f.data[off..off + len]);
            }
        }
        Some(out)
    }
}

// ---- nodes and the network ----

/// One engine with its disks and what it told the application.
pub struct Node {
    /// The engine under test.
    pub engine: Engine,
    /// Its listening address.
    pub addr: SocketAddr,
    /// In-memory files of each torrent added through the world.
    pub disks: HashMap<TorrentId, Disk>,
    /// Every event, with when it came out.
    pub events: Vec<(Instant, Event)>,
    /// Every `Close` it asked for, with when.
    pub closes: Vec<(Instant, ConnId)>,
    /// Every tracker URL it asked to GET, with when.
    pub tracker_gets: Vec<(Instant, String)>,
    /// Every Local Service Discovery announce it multicast, with when.
    pub lsd_sends: Vec<(Instant, Vec<u8>)>,
    /// Its upload link (`uplink.rate`: bytes per second; `None`, the default, is unlimited).
    pub uplink: Uplink,
}

impl Node {
    /// Whether `event` came out of this engine.
    pub fn saw(&self, pred: impl Fn(&Event) -> bool) -> bool {
        self.events.iter().any(|(_, e)| pred(e))
    }

    /// Whether the torrent reported [`Event::Finished`].
    pub fn finished(&self, t: TorrentId) -> bool {
        self.saw(|e| *e == Event::Finished { torrent: t })
    }

    /// The pieces the torrent reported with [`Event::PieceFinished`], in order.
    pub fn finished_pieces(&self, t: TorrentId) -> Vec<u32> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::PieceFinished { torrent, piece } if *torrent == t => Some(*piece),
                _ => None,
            })
            .collect()
    }

    /// The disk of a torrent.
    pub fn disk(&self, t: TorrentId) -> &Disk {
        &self.disks[&t]
    }

    /// A torrent's figures.
    pub fn stats(&self, t: TorrentId) -> TorrentStats {
        self.engine.stats(t).expect("torrent exists")
    }
}

/// The far side of a connection.
#[derive(Clone, Copy, Debug)]
enum End {
    Node { node: usize, conn: ConnId },
    Raw(usize),
}

/// One direction of a connection: where it goes and the bytes on their way.
#[derive(Debug)]
struct Wire {
    to: End,
    link: Link<Vec<u8>>,
}

impl Wire {
    fn to(to: End) -> Self {
        Wire { to, link: Link::default() }
    }
}

/// A hand-driven peer connected to an engine, for hostile-input tests.
#[derive(Debug)]
pub struct RawPeer {
    /// The engine it is connected to.
    pub node: usize,
    /// The engine's id for the connection.
    pub conn: ConnId,
    /// Everything the engine sent it.
    pub received: Vec<u8>,
    /// Whether the engine closed the connection.
    pub closed: bool,
}

enum Ev {
    Dial { from: usize, conn: ConnId, target: Option<usize> },
    Data { node: usize, conn: ConnId, data: Vec<u8> },
    RawData { raw: usize, data: Vec<u8> },
    Sent { node: usize, conn: ConnId, n: usize },
    Closed { node: usize, conn: ConnId },
    Job { node: usize, job: JobId, result: JobResult },
    Http { node: usize, job: JobId, body: Vec<u8> },
    Datagram { node: usize, from: SocketAddr, data: Vec<u8> },
    LsdDatagram { node: usize, from: SocketAddr, data: Vec<u8> },
}

/// Network, disk and tracker timing of a world.
#[derive(Clone, Debug)]
pub struct Timing {
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

/// What a tapped connection's bytes are read with: its handshake first, then its messages.
enum Tap {
    Handshake(HandshakeDecoder),
    Messages(Decoder),
    /// Its handshake was malformed: nothing after it is logged.
    Broken,
}

/// Engines, a clock, a network, disks and a tracker.
pub struct World {
    /// The virtual clock.
    pub now: Instant,
    /// The engines.
    pub nodes: Vec<Node>,
    /// Timing of everything outside the engines.
    pub timing: Timing,
    /// The tracker every torrent announces to.
    pub tracker: Tracker,
    /// While true, the tracker swallows announces and never answers.
    pub tracker_down: bool,
    /// Hand-driven connections.
    pub raws: Vec<RawPeer>,
    queue: BTreeMap<(Instant, u64), Ev>,
    seq: u64,
    seed: u64,
    rng: ChaCha8Rng,
    links: HashMap<(usize, ConnId), Wire>,
    dialing: HashMap<(usize, ConnId), ()>,
    next_ephemeral: u16,
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
    taps: HashMap<(usize, ConnId), Tap>,
}

/// A message one engine sent another (with `World::tap`); block payloads are dropped.
#[derive(Debug, Clone)]
pub struct WireEntry {
    /// When it was sent.
    pub at: Instant,
    /// Sending node and its connection id.
    pub from: (usize, ConnId),
    /// Receiving node and its connection id.
    pub to: (usize, ConnId),
    /// The message (a `Piece`'s data is emptied; see `len`).
    pub msg: Message,
    /// Payload length of a `Piece`.
    pub len: usize,
}

impl World {
    /// An empty world; engines get seeds derived from `seed`, and so does the network.
    pub fn new(seed: u64) -> Self {
        World {
            now: Instant::ZERO,
            nodes: Vec::new(),
            timing: Timing::default(),
            tracker: Tracker::default(),
            tracker_down: false,
            raws: Vec::new(),
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

    /// Adds an engine with the default configuration; returns its index.
    pub fn add_node(&mut self) -> usize {
        self.add_node_with(|_| {})
    }

    /// Adds an engine whose configuration `tweak` adjusts (the listen port is the world's).
    pub fn add_node_with(&mut self, tweak: impl FnOnce(&mut Config)) -> usize {
        let i = self.nodes.len();
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
        });
        i
    }

    /// Adds a torrent to an engine, with `disk` as its files.
    pub fn add_torrent(&mut self, node: usize, params: AddTorrent, disk: Disk) -> TorrentId {
        let t = self.nodes[node].engine.add_torrent(params, self.now).expect("add_torrent");
        self.nodes[node].disks.insert(t, disk);
        self.drain(node);
        t
    }

    /// Adds a torrent whose data is all on disk (checked on add).
    pub fn seed(&mut self, node: usize, tt: &TestTorrent) -> TorrentId {
        self.add_torrent(node, AddTorrent::new(tt.meta.clone()), Disk::full(&tt.meta, &tt.data))
    }

    /// Adds a torrent with nothing on disk.
    pub fn leech(&mut self, node: usize, tt: &TestTorrent) -> TorrentId {
        self.add_torrent(node, AddTorrent::new(tt.meta.clone()), Disk::empty(&tt.meta))
    }

    /// Adds a torrent by magnet; its disk appears (empty) when its metadata arrives.
    pub fn add_magnet(&mut self, node: usize, params: AddMagnet) -> TorrentId {
        let t = self.nodes[node].engine.add_magnet(params, self.now).expect("add_magnet");
        self.drain(node);
        t
    }

    /// Runs an application command on an engine, then drains its output.
    pub fn command<R>(&mut self, node: usize, f: impl FnOnce(&mut Engine, Instant) -> R) -> R {
        let r = f(&mut self.nodes[node].engine, self.now);
        self.drain(node);
        r
    }

    /// Digest of every output so far (time, node and a summary of each).
    pub fn trace_digest(&self) -> [u8; 20] {
        self.trace.clone().finalize().into()
    }

    // ---- hand-driven peers ----

    /// Opens a connection from `from` to engine `node`, driven by the test.
    pub fn raw_connect(&mut self, node: usize, from: SocketAddr) -> usize {
        let conn = self.nodes[node].engine.accept(from, self.now).expect("engine accepts the connection");
        self.drain(node);
        let raw = self.raws.len();
        self.raws.push(RawPeer { node, conn, received: Vec::new(), closed: false });
        self.links.insert((node, conn), Wire::to(End::Raw(raw)));
        raw
    }

    /// Sends bytes from a hand-driven peer; they arrive after the link latency.
    pub fn raw_send(&mut self, raw: usize, data: &[u8]) {
        let RawPeer { node, conn, .. } = self.raws[raw];
        let at = self.now + self.timing.latency;
        self.schedule(at, Ev::Data { node, conn, data: data.to_vec() });
    }

    // ---- running ----

    fn schedule(&mut self, at: Instant, ev: Ev) {
        self.seq += 1;
        self.queue.insert((at, self.seq), ev);
    }

    /// Delivers everything due now, then moves the clock to the next deadline.
    pub fn step(&mut self) {
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
            for i in 0..self.nodes.len() {
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
    pub fn uplink_backlog(&self, node: usize) -> Duration {
        self.nodes[node].uplink.backlog(virtual_time(self.now))
    }

    /// Steps until `cond` holds; fails the test if it does not within `limit` of virtual time.
    pub fn run_until(&mut self, limit: Duration, mut cond: impl FnMut(&World) -> bool) {
        let deadline = self.now + limit;
        while !cond(self) {
            assert!(self.now <= deadline, "condition not reached by {:?}\n{}", self.now, self.summary());
            self.step();
        }
    }

    /// Steps for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.step();
        }
    }

    /// One line per torrent of every engine, for failure messages.
    pub fn summary(&self) -> String {
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
            Ev::Dial { from, conn, target } => {
                if self.dialing.remove(&(from, conn)).is_none() {
                    return; // the dialer gave up first
                }
                let accepted = target.and_then(|b| {
                    let src = SocketAddr::new(self.nodes[from].addr.ip(), self.next_ephemeral);
                    self.next_ephemeral = self.next_ephemeral.wrapping_add(1).max(40000);
                    let bc = self.nodes[b].engine.accept(src, now)?;
                    self.drain(b);
                    Some((b, bc))
                });
                match accepted {
                    Some((b, bc)) => {
                        self.links.insert((from, conn), Wire::to(End::Node { node: b, conn: bc }));
                        self.links.insert((b, bc), Wire::to(End::Node { node: from, conn }));
                        self.nodes[from].engine.handle(Input::Connected(conn), now);
                    }
                    None => self.nodes[from].engine.handle(Input::Closed(conn), now),
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
                self.nodes[node].engine.handle(Input::Closed(conn), now);
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
    fn drain(&mut self, node: usize) {
        while let Some(out) = self.nodes[node].engine.poll_output() {
            self.record(node, &out);
            self.execute(node, out);
        }
    }

    fn record(&mut self, node: usize, out: &Output) {
        let line = format!("{} {node} {}", self.now.as_micros(), describe(out));
        self.trace.update(line.as_bytes());
        self.trace.update(b"\n");
        self.trace_len += 1;
        if self.keep_trace {
            self.trace_lines.push(line);
        }
    }

    fn execute(&mut self, a: usize, out: Output) {
        let now = self.now;
        match out {
            Output::Peer(PeerIo::Connect { conn, addr }) => {
                let target = self.nodes.iter().position(|n| n.addr == addr);
                self.dialing.insert((a, conn), ());
                self.schedule(now + self.timing.latency, Ev::Dial { from: a, conn, target });
            }
            Output::Peer(PeerIo::Send { conn, data }) => {
                let Some(wire) = self.links.get_mut(&(a, conn)) else { return };
                let n = data.len();
                let vnow = virtual_time(now);
                let path = Path { latency: self.timing.latency, down: None, sndbuf: None };
                wire.link.handle_timeout(vnow);
                wire.link.send(data, n as u64);
                let sent =
                    wire.link.poll_transmit(vnow, &mut self.nodes[a].uplink, &path).expect("no send buffer limit");
                let (to, data, arrival) = (wire.to, sent.item, instant(sent.arrival));
                self.schedule(instant(sent.done), Ev::Sent { node: a, conn, n });
                match to {
                    End::Raw(raw) => self.schedule(arrival, Ev::RawData { raw, data }),
                    End::Node { node: b, conn: bc } => {
                        if self.tap {
                            self.tap_bytes((a, conn), (b, bc), &data);
                        }
                        let reads = self.timing.max_chunk.map_or(Reads::Whole, Reads::UpTo);
                        // A zero-length write sends nothing.
                        for piece in reads.pieces(&mut self.rng, n).into_iter().filter(|p| !p.is_empty()) {
                            self.schedule(arrival, Ev::Data { node: b, conn: bc, data: data[piece].to_vec() });
                        }
                    }
                }
            }
            Output::Peer(PeerIo::Close { conn }) => {
                self.nodes[a].closes.push((now, conn));
                self.dialing.remove(&(a, conn));
                if let Some(wire) = self.links.remove(&(a, conn)) {
                    match wire.to {
                        End::Raw(raw) => self.raws[raw].closed = true,
                        End::Node { node: b, conn: bc } => {
                            self.links.remove(&(b, bc));
                            let at = (now + self.timing.latency).max(instant(wire.link.last_arrival()));
                            self.schedule(at, Ev::Closed { node: b, conn: bc });
                        }
                    }
                }
            }
            Output::Disk(job) => {
                let result = self.run_disk_job(a, &job);
                let took = match (&job.kind, self.timing.write) {
                    (DiskJobKind::Write { .. }, Some(write)) => write,
                    _ => self.timing.disk,
                };
                self.schedule(now + took, Ev::Job { node: a, job: job.id, result });
            }
            Output::Hash(HashJob { id, torrent, piece, data, expected, write }) => {
                let ok = <[u8; 20]>::from(Sha1::digest(&data)) == expected;
                let written = (ok && self.timing.hash_writes).then(|| {
                    let disk = self.nodes[a].disks.get_mut(&torrent).expect("a disk for the hashed torrent");
                    disk.write(&write, &data);
                    disk.written_pieces.push(piece);
                    Ok(())
                });
                self.schedule(
                    now + self.timing.hash,
                    Ev::Job { node: a, job: id, result: JobResult::Hashed { ok, data, written } },
                );
            }
            Output::Http { id, url } => {
                self.nodes[a].tracker_gets.push((now, url.clone()));
                if !self.tracker_down {
                    let body = self.tracker.http(self.nodes[a].addr.ip(), &url);
                    self.schedule(now + self.timing.tracker, Ev::Http { node: a, job: id, body });
                }
            }
            Output::Udp(UdpIo::Exchange { .. } | UdpIo::EndExchange { .. }) => {}
            Output::Udp(UdpIo::Dht { to, data }) => {
                // UDP between nodes: delivered after the link latency, to nobody if unknown.
                if let Some(b) = self.nodes.iter().position(|n| n.addr == to) {
                    let from = self.nodes[a].addr;
                    self.schedule(now + self.timing.latency, Ev::Datagram { node: b, from, data });
                }
            }
            Output::Resolve { .. } => {}
            Output::Udp(UdpIo::Lsd { data, v6 }) => {
                // One LAN: the multicast group reaches every other node (IPv4 only here, as
                // the nodes have IPv4 addresses). The port is the group's, not the peer's.
                self.nodes[a].lsd_sends.push((now, data.clone()));
                if !v6 {
                    let from = SocketAddr::new(self.nodes[a].addr.ip(), 6771);
                    for b in (0..self.nodes.len()).filter(|b| *b != a) {
                        let ev = Ev::LsdDatagram { node: b, from, data: data.clone() };
                        self.schedule(now + self.timing.latency, ev);
                    }
                }
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

    fn tap_bytes(&mut self, from: (usize, ConnId), to: (usize, ConnId), data: &[u8]) {
        let tap = self.taps.remove(&from).unwrap_or_else(|| Tap::Handshake(HandshakeDecoder::new(Limits::default())));
        let mut dec = match tap {
            Tap::Handshake(mut h) => {
                h.feed(data);
                match h.take() {
                    Ok(HandshakeStep::Done(_, dec)) => dec,
                    Ok(HandshakeStep::Pending(h)) => {
                        self.taps.insert(from, Tap::Handshake(h));
                        return;
                    }
                    Err(_) => {
                        self.taps.insert(from, Tap::Broken);
                        return;
                    }
                }
            }
            Tap::Messages(mut dec) => {
                dec.feed(data);
                dec
            }
            Tap::Broken => {
                self.taps.insert(from, Tap::Broken);
                return;
            }
        };
        while let Ok(Some(msg)) = dec.next_message() {
            let (msg, len) = match msg {
                Message::Piece { piece, offset, data } => {
                    (Message::Piece { piece, offset, data: Vec::new() }, data.len())
                }
                m => (m, 0),
            };
            self.wire_log.push(WireEntry { at: self.now, from, to, msg, len });
        }
        self.taps.insert(from, Tap::Messages(dec));
    }

    fn run_disk_job(&mut self, a: usize, job: &DiskJob) -> JobResult {
        let disk = self.nodes[a]
            .disks
            .get_mut(&job.torrent)
            .unwrap_or_else(|| panic!("node {a}: disk job for {:?}, which has no disk", job.torrent));
        match &job.kind {
            DiskJobKind::Write { piece, spans, data } => {
                disk.write(spans, data);
                disk.written_pieces.push(*piece);
                JobResult::Written { result: Ok(()), data: data.clone() }
            }
            DiskJobKind::Read { block, len, spans } => {
                match disk.read(&spans.iter().map(|p| p.span).collect::<Vec<_>>()) {
                    Some(data) => {
                        assert_eq!(data.len(), block.len as usize, "read spans cover the block");
                        let framed = shoal_core::engine::lay_out_read(spans, *len, &data);
                        JobResult::Read(Ok(framed.expect("placed spans fit the buffer")))
                    }
                    None => panic!("node {a}: engine read {block:?}, whose bytes it never wrote"),
                }
            }
            DiskJobKind::Verify { spans, expected, .. } => {
                let ok = disk.read(spans).is_some_and(|data| <[u8; 20]>::from(Sha1::digest(&data)) == *expected);
                JobResult::Verified(Ok(ok))
            }
        }
    }
}

/// The network model's virtual time (time since the world began) at `at`.
fn virtual_time(at: Instant) -> Duration {
    Duration::from_micros(at.as_micros())
}

/// The engine's instant at the network model's virtual time `t`.
fn instant(t: Duration) -> Instant {
    Instant::from_micros(t.as_micros() as u64)
}

/// A one-line summary of an output; payloads are replaced by their length and a digest.
pub fn describe(out: &Output) -> String {
    fn digest(data: &[u8]) -> String {
        Sha1::digest(data)[..6].iter().map(|b| format!("{b:02x}")).collect()
    }
    match out {
        Output::Peer(PeerIo::Send { conn, data }) => format!("Send {conn:?} {} {}", data.len(), digest(data)),
        Output::Disk(DiskJob { id, torrent, kind: DiskJobKind::Write { piece, spans, data } }) => {
            format!("Write {id:?} {torrent:?} {piece} {spans:?} {}", digest(data))
        }
        Output::Hash(h) => format!("Hash {:?} {:?} {} {}", h.id, h.torrent, h.piece, digest(&h.data)),
        // The transport's own variant leads the line ("Connect { .. }"), as tests look for it.
        Output::Peer(p) => format!("{p:?}"),
        Output::Udp(u) => format!("{u:?}"),
        other => format!("{other:?}"),
    }
}
