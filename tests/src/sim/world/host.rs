//! A host of the world: what runs on it (an engine with its disk, or an adversary) and its
//! access link.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use shoal_core::{Bitfield, ConnId, Engine, Instant, JobId, TorrentId};
use shoal_netsim::{Nat, Uplink};

use crate::sim::adversary::Adversary;
use crate::sim::disk::SimDisk;

/// Network figures of one host's access link.
#[derive(Clone, Debug)]
pub struct NetParams {
    /// Upload bytes per second (shared by all its connections).
    pub up: u64,
    /// Download bytes per second (per incoming direction).
    pub down: u64,
    /// One-way latency of its access link, sending.
    pub up_lat: Duration,
    /// One-way latency of its access link, receiving.
    pub down_lat: Duration,
    /// Kernel send-buffer bytes per connection before sends wait.
    pub sndbuf: u64,
}

/// An honest engine with its disk.
pub struct EngineHost {
    /// The engine (`None` while the host is down).
    pub engine: Option<Engine>,
    /// Its one torrent.
    pub torrent: Option<TorrentId>,
    /// Its disk.
    pub disk: SimDisk,
    /// Started as a seeder.
    pub seeder: bool,
    /// Verified pieces as of the last checkpoint (resume data).
    pub resume: Bitfield,
    /// When it reported `Finished` last.
    pub finished_at: Option<Instant>,
    pub(super) timer_at: Option<Instant>,
    /// Outstanding hash and write jobs: bytes each holds.
    pub(super) jobs: BTreeMap<JobId, u64>,
    /// The sum of `jobs`.
    pub(super) job_bytes: u64,
    pub(super) reads: usize,
    /// The engine's connections: the world's connection, our side of it, and the bytes handed
    /// to `Send` and not yet reported sent.
    pub(super) conns: BTreeMap<ConnId, EngineConn>,
    /// Times it restarted.
    pub restarts: u32,
}

/// One engine connection as its host sees it.
#[derive(Clone, Copy, Debug)]
pub(super) struct EngineConn {
    pub(super) c: u64,
    pub(super) side: usize,
    pub(super) unacked: u64,
}

/// What runs on a host.
pub enum HostKind {
    /// An honest engine.
    Engine(Box<EngineHost>),
    /// A hostile hand-written peer.
    Adversary(Adversary),
}

/// One host of the world.
pub struct Host {
    /// Its listening address.
    pub addr: SocketAddr,
    /// Its access link.
    pub net: NetParams,
    /// Whether it is up.
    pub online: bool,
    /// Incremented at each restart; events of older incarnations are dropped.
    pub epoch: u32,
    pub(super) uplink: Uplink,
    /// Its downlink for datagrams (streams model theirs per connection).
    pub(super) downlink: Uplink,
    /// Its NAT, if it is behind one.
    pub nat: Option<Nat>,
    /// What runs on it.
    pub kind: HostKind,
}
