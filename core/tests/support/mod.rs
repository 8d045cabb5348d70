//! A deterministic in-process world for engine tests: N engines, a virtual clock, in-memory
//! disks, inline SHA-1, a simulated network and a fake HTTP tracker. No sockets, no threads,
//! no real time: a run is a pure function of the seeds.
//!
//! [`World`] (`world`) drives everything. The modules below it hold one part each and import
//! only modules further down, so none imports one that imports it back. `ids` names engines and
//! hand-driven peers, `node` holds the engines, `queue` what is in flight, `timing` how long
//! things take, `net` the connections and datagrams, `disk` the in-memory disks and their jobs,
//! `raw` the hand-driven peers, `tap` and `trace` what engines said. Above the world, `inspect`
//! and `check` read it after a run and `swarms` builds the worlds several tests start from;
//! `torrent` makes the test torrents (naming [`TRACKER`], which the world's tracker answers).

#![allow(dead_code)] // not every test uses every part of the harness

mod check;
mod disk;
mod ids;
mod inspect;
mod net;
mod node;
mod queue;
mod raw;
mod swarms;
mod tap;
mod timing;
mod torrent;
mod trace;
mod world;

// Each test binary uses a part of the harness.
#[allow(unused_imports)]
pub(crate) use self::{
    check::{assert_about, assert_complete},
    disk::Disk,
    ids::{NodeId, RawId},
    node::{Node, Nodes},
    raw::{handshake, pex_frame, pex_greeting, raw_messages, RawPeer, Raws},
    swarms::{swarm_trace, PexSwarm, RawSeeder},
    tap::WireEntry,
    timing::Timing,
    torrent::{big_torrent, file, pad, plain_torrent, FileSpec, TestTorrent, MIB, PIECE, TRACKER},
    trace::describe,
    world::World,
};
