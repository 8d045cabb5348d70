//! What defines a run: the swarm's size and layout, trackers, faults and hashing mode, set by
//! hand or drawn from the seed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::adversary::AdvKind;

/// How hash jobs (and verifies) decide whether a piece matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashMode {
    /// Real SHA-1.
    Real,
    /// Compare with the source bytes and the torrent's hash list (same answer, much faster).
    Oracle,
}

/// Which faults a run injects (until `Params::fault_window` ends).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Faults {
    /// Connection refusals and resets mid-transfer.
    pub net: bool,
    /// Partitions between host pairs that heal.
    pub partition: bool,
    /// Hosts leave cleanly and come back from resume data.
    pub churn: bool,
    /// Hosts crash (unsynced writes lost) and restart from their last resume data.
    pub crash: bool,
    /// EIO on reads and writes, corrupted reads, ENOSPC (leechers' disks).
    pub disk: bool,
    /// Tracker failures, time-outs, slow answers, lost UDP datagrams.
    pub tracker: bool,
    /// Hostile peers joining the swarm.
    pub adversaries: Vec<AdvKind>,
    /// A user at honest hosts: pauses and resumes, rechecks, skips and re-wants files,
    /// switches sequential mode and deadline pieces. Undone when faults stop.
    pub commands: bool,
}

impl Faults {
    /// Parses `net,partition,churn,crash,disk,tracker,commands,<adversary kind>…`,
    /// `adversaries`, `all` or `none`.
    pub fn parse(list: &str) -> Result<Faults, String> {
        let mut f = Faults::default();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item {
                "none" => {}
                "all" => {
                    f = Faults::parse("net,partition,churn,crash,disk,tracker,commands,adversaries")?;
                }
                "net" => f.net = true,
                "partition" => f.partition = true,
                "churn" => f.churn = true,
                "crash" => f.crash = true,
                "disk" => f.disk = true,
                "tracker" => f.tracker = true,
                "commands" => f.commands = true,
                "adversaries" => f.adversaries = AdvKind::ALL.to_vec(),
                other => f.adversaries.push(AdvKind::parse(other).ok_or_else(|| format!("unknown fault {other:?}"))?),
            }
        }
        f.adversaries.sort();
        f.adversaries.dedup();
        Ok(f)
    }

    /// Whether any fault is on.
    pub(super) fn any(&self) -> bool {
        self.net
            || self.partition
            || self.churn
            || self.crash
            || self.disk
            || self.tracker
            || self.commands
            || !self.adversaries.is_empty()
    }
}

/// Which trackers the torrent names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trackers {
    /// The HTTP tracker only.
    Http,
    /// The UDP tracker only.
    Udp,
    /// Both, in two tiers.
    Both,
}

/// A host's access link set by hand rather than drawn (a slow, distant seeder, say).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccessLink {
    /// Upload bytes per second (shared by all its connections).
    pub up: u64,
    /// Download bytes per second (per incoming direction).
    pub down: u64,
    /// One-way latency of the link, each way: a connection between two hosts has the sum of
    /// theirs.
    pub latency: Duration,
}

/// Which peer transports an honest host speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// TCP only (`Config::utp` off), as every host did before uTP came to the world.
    Tcp,
    /// uTP and TCP: dials try uTP first and fall back to TCP; both are accepted.
    Both,
    /// uTP in only: no TCP listener, so TCP dials to it are refused. Its own dials still fall
    /// back to TCP when uTP fails (libtorrent with incoming TCP off does the same).
    Utp,
}

/// What the datagram paths between hosts do to each datagram (uTP worlds only).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Datagrams {
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Probability that a datagram arrives twice.
    pub duplicate: f64,
    /// Extra delay drawn per datagram from zero to this, which reorders them.
    pub jitter: Duration,
}

/// Everything that defines a run.
#[derive(Clone, Debug)]
pub struct Params {
    /// The seed: everything random derives from it.
    pub seed: u64,
    /// Honest engines (seeders included).
    pub peers: usize,
    /// How many of them start as seeders.
    pub seeders: usize,
    /// Pieces of the torrent.
    pub pieces: u32,
    /// Piece size in bytes.
    pub piece_size: u32,
    /// Single file (`false`: a layout drawn from the seed).
    pub single_file: bool,
    /// Trackers named by the torrent.
    pub trackers: Trackers,
    /// Faults injected.
    pub faults: Faults,
    /// Faults stop after this much virtual time.
    pub fault_window: Duration,
    /// After faults stop, every honest host must complete within this (at least four times
    /// the torrent's size over the slowest uplink).
    pub budget: Duration,
    /// Range of hosts' upload bandwidth, bytes per second.
    pub bandwidth: (u64, u64),
    /// Range of disk latency per operation, microseconds.
    pub disk_latency: (u64, u64),
    /// Latency of a hash job.
    pub hash_latency: Duration,
    /// Hashing mode.
    pub hash: HashMode,
    /// Engines' `max_in_flight_bytes`.
    pub max_in_flight: u64,
    /// Access links set by hand, by honest host index; the others are drawn (and these are
    /// drawn too, then replaced, so that setting one changes no other draw).
    pub links: BTreeMap<usize, AccessLink>,
    /// Transports by honest host index; hosts past its end speak TCP only.
    pub transports: Vec<Transport>,
    /// The datagram paths' loss, duplication and reordering.
    pub datagrams: Datagrams,
    /// Honest hosts behind a NAT each (`shoal_netsim::Nat`: port-restricted cone): they reach
    /// out, but only hole punching (BEP 55, over uTP) lets a peer behind another NAT in.
    pub behind_nat: BTreeSet<usize>,
    /// When honest hosts join, set by hand; the others join within the first 2 s (hosts
    /// behind a NAT 2 s later: see `World::new`). Drawn anyway, then replaced.
    pub joins: BTreeMap<usize, Duration>,
    /// Whether engines punch holes (`Config::holepunch`).
    pub holepunch: bool,
    /// Honest hosts the tracker never hands out (they announce, but peers learn of them only
    /// through PEX).
    pub unlisted: BTreeSet<usize>,
}

impl Params {
    /// A small fault-free swarm.
    pub fn new(seed: u64) -> Self {
        Params {
            seed,
            peers: 8,
            seeders: 1,
            pieces: 32,
            piece_size: 32 * 1024,
            single_file: false,
            trackers: Trackers::Http,
            faults: Faults::default(),
            fault_window: Duration::from_secs(60),
            budget: Duration::from_secs(600),
            bandwidth: (200_000, 2_000_000),
            disk_latency: (100, 5_000),
            hash_latency: Duration::from_micros(500),
            hash: HashMode::Real,
            max_in_flight: 8 << 20,
            links: BTreeMap::new(),
            transports: Vec::new(),
            datagrams: Datagrams { loss: 0.0, duplicate: 0.0, jitter: Duration::ZERO },
            behind_nat: BTreeSet::new(),
            joins: BTreeMap::new(),
            holepunch: true,
            unlisted: BTreeSet::new(),
        }
    }

    /// A configuration drawn from the seed: size, layout, trackers and fault mix.
    pub fn from_seed(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xc0f1_9000);
        let mut p = Params::new(seed);
        p.peers = rng.random_range(3..=14);
        p.seeders = rng.random_range(1..=2).min(p.peers - 1);
        p.piece_size = [16 * 1024, 32 * 1024, 64 * 1024][rng.random_range(0..3)];
        p.pieces = rng.random_range(3..=40);
        p.single_file = rng.random_bool(0.3);
        p.trackers = [Trackers::Http, Trackers::Udp, Trackers::Both][rng.random_range(0..3)];
        p.faults = Faults {
            net: rng.random_bool(0.5),
            partition: rng.random_bool(0.4),
            churn: rng.random_bool(0.4),
            crash: rng.random_bool(0.4),
            disk: rng.random_bool(0.4),
            tracker: rng.random_bool(0.4),
            // Squatters are drawn last (below), so that adding them changed no earlier draw.
            adversaries: AdvKind::ALL
                .iter()
                .copied()
                .filter(|k| *k != AdvKind::Squatter)
                .filter(|_| rng.random_bool(0.25))
                .collect(),
            commands: false,
        };
        p.fault_window = Duration::from_secs(rng.random_range(20..=90));
        // Drawn last, so that adding it left every earlier seed's other draws as they were.
        p.faults.commands = rng.random_bool(0.4);
        // Slow home uplinks (after the commands, for the same reason): requests wait seconds
        // behind others' blocks, peers are snubbed, and blocks arrive after we gave up on them.
        if rng.random_bool(0.3) {
            let lo = [10_000, 20_000, 50_000][rng.random_range(0..3)];
            p.bandwidth = (lo, lo * 10);
        }
        if rng.random_bool(0.1) {
            p.faults.adversaries.push(AdvKind::Squatter);
        }
        p.draw_utp(false);
        p
    }

    /// [`Params::from_seed`] with uTP on in every world (the uTP-heavy sweep).
    pub fn from_seed_utp(seed: u64) -> Self {
        let mut p = Params::from_seed(seed);
        p.draw_utp(true);
        p
    }

    /// Whether any host speaks uTP.
    pub fn utp(&self) -> bool {
        self.transports.iter().any(|t| *t != Transport::Tcp)
    }

    /// The transport of honest host `i`.
    pub fn transport(&self, i: usize) -> Transport {
        self.transports.get(i).copied().unwrap_or(Transport::Tcp)
    }

    /// Draws whether this world speaks uTP (always with `every_world`), each host's transports
    /// and the datagram paths' faults. The draws come from an RNG stream of their own, so a
    /// world without uTP is the world it was before uTP came: same draws, same trace.
    pub fn draw_utp(&mut self, every_world: bool) {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0x07e9_da7a_9a40);
        let on = rng.random_bool(0.3);
        if !(on || every_world) {
            self.transports.clear();
            return;
        }
        // Never TCP-only and uTP-only hosts in one world: neither can dial the other, and with
        // churn both may give up waiting to be dialled (a world that cannot complete).
        let single = if rng.random_bool(0.5) { Transport::Tcp } else { Transport::Utp };
        self.transports =
            (0..self.peers).map(|_| if rng.random_bool(0.3) { single } else { Transport::Both }).collect();
        // Loss and duplication up to a few percent, jitter up to 30 ms: a poor WAN path, on
        // which uTP must recover and reorder (the ranges of core/tests/utp_paths.rs and more).
        self.datagrams = Datagrams {
            loss: [0.0, 0.005, 0.02][rng.random_range(0..3)],
            duplicate: [0.0, 0.01][rng.random_range(0..2)],
            jitter: Duration::from_millis([0, 5, 30][rng.random_range(0..3)]),
        };
        // Some uTP worlds put hosts behind NATs. Host 0, a seeder (which never leaves), stays
        // reachable, and the tracker answers these worlds without fail: a host behind a NAT
        // whose one answer named no reachable peer could be reached by no one until its next
        // announce, half an hour away (found by seeds 1249 and 1449, with tracker faults).
        self.behind_nat.clear();
        if rng.random_bool(0.4) && !self.faults.tracker {
            self.behind_nat = (1..self.peers).filter(|_| rng.random_bool(0.4)).collect();
        }
        // Every host drew TCP: the world it was before uTP came (NATs too are for uTP worlds).
        if !self.utp() {
            self.transports.clear();
            self.behind_nat.clear();
        }
    }
}
