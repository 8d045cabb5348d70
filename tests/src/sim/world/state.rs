//! The world's state: the [`World`] every part of the simulator works on, and the bounds the
//! oracles hold its engines to.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;

use rand_chacha::ChaCha8Rng;
use shoal_core::FileLayout;
use shoal_core::{Config, ConnId, Instant};
use shoal_netsim::tracker::Tracker;
use shoal_netsim::Partitions;

use super::conn::SimConn;
use super::event::Ev;
use super::host::Host;
use super::trace::Trace;
use crate::sim::params::Params;
use crate::sim::queue::EventQueue;
use crate::sim::torrent::SimTorrent;

/// The simulated world.
pub struct World {
    /// The virtual clock.
    pub now: Instant,
    /// Every host; honest engines first.
    pub hosts: Vec<Host>,
    /// The torrent everyone shares.
    pub tt: Rc<SimTorrent>,
    /// The trackers' swarm table.
    pub tracker: Tracker,
    /// Oracle violations, with when.
    pub violations: Vec<String>,
    /// Events processed.
    pub steps: u64,
    /// The trace hash so far.
    pub trace: Trace,
    /// With `Some`, the trace hash after every step.
    pub step_hashes: Option<Vec<u64>>,
    /// Whether faults are still being injected.
    pub faults_on: bool,
    /// Counters for the report.
    pub counters: BTreeMap<&'static str, u64>,
    pub(super) params: Params,
    pub(super) config: Config,
    pub(super) bounds: Bounds,
    pub(super) layout: FileLayout,
    pub(super) rng: ChaCha8Rng,
    pub(super) queue: EventQueue<Ev>,
    /// Connections by id (ids count up from 1 and are never reused; closed ones are `None`).
    pub(super) conns: Vec<Option<SimConn>>,
    pub(super) live_conns: usize,
    /// Bytes the kernel took from the engine being drained, not yet told to it.
    pub(super) sent: Vec<(ConnId, u64)>,
    pub(super) partitions: Partitions,
    pub(super) by_addr: BTreeMap<SocketAddr, usize>,
    pub(super) next_port: u16,
    pub(super) pending_target: BTreeMap<u64, usize>,
    /// Squatters' connections and the honest host each was dialled to (redialled when closed).
    pub(super) squats: BTreeMap<u64, usize>,
    /// Bumped whenever a host may have become complete.
    pub completion_changes: u64,
    /// Connections the request oracle checked (both ends live engines), over the run.
    pub request_checks: u64,
    /// Datagram bytes delivered, by (sending host, receiving host).
    pub udp_bytes: BTreeMap<(usize, usize), u64>,
}

/// Engine, network and disk bounds the oracles hold engines to.
#[derive(Clone, Debug)]
pub(super) struct Bounds {
    pub(super) send: u64,
    pub(super) in_flight: u64,
    pub(super) reads: usize,
    pub(super) peers: usize,
}
