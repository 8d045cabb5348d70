//! A deterministic in-process world for engine tests: N engines, a virtual clock, in-memory
//! disks, inline SHA-1, a simulated network and a fake HTTP tracker. No sockets, no threads,
//! no real time: a run is a pure function of the seeds.
//!
//! [`World`] (`world`) holds the engines ([`Node`]s, by [`NodeId`]; `node`), the clock and the
//! queue of what is in flight; `net` carries connections and datagrams, `disk` runs disk and
//! hash jobs on in-memory [`Disk`]s, `tracker` answers announces, `raw` drives peers by hand
//! ([`RawId`]), `tap` and `trace` record what engines said. `torrent` makes test torrents,
//! `swarms` the worlds several tests start from, `check` the shared assertions.

#![allow(dead_code)] // not every test uses every part of the harness

mod check;
mod disk;
mod net;
mod node;
mod raw;
mod swarms;
mod tap;
mod torrent;
mod trace;
mod tracker;
mod world;

// Each test binary uses a part of the harness.
#[allow(unused_imports)]
pub(crate) use self::{
    check::{assert_about, assert_complete},
    disk::Disk,
    node::{Node, NodeId, Nodes},
    raw::{handshake, pex_frame, pex_greeting, raw_messages, RawId, RawPeer, Raws},
    swarms::{swarm_trace, PexSwarm, RawSeeder},
    tap::WireEntry,
    torrent::{big_torrent, file, pad, plain_torrent, FileSpec, TestTorrent, MIB, PIECE},
    trace::describe,
    tracker::TRACKER,
    world::{Timing, World},
};
