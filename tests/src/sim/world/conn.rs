//! A simulated TCP connection: its two ends and its two directions.

use shoal_core::ConnId;
use shoal_netsim::Link;

use crate::sim::oracle::{MessageCounts, WireCount};

/// Who owns one end of a connection: an engine (with its id for it) or an adversary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Local {
    Engine(ConnId),
    Adv,
}

/// One end of a connection: its host, the host's incarnation, its owner, and whether open.
#[derive(Clone, Copy, Debug)]
pub(super) struct End {
    pub(super) host: usize,
    pub(super) epoch: u32,
    pub(super) local: Local,
    pub(super) open: bool,
}

/// One direction of a connection: the link model, and what the world tracks beside it.
#[derive(Default, Debug)]
pub(super) struct Dir {
    /// Chunks the sender handed over, each with the messages sent up to its end.
    pub(super) link: Link<(Vec<u8>, MessageCounts)>,
    /// A `Room` event is pending.
    pub(super) waking: bool,
    /// Messages handed to the link, and read by the receiver (for the request oracle).
    pub(super) sent: WireCount,
    pub(super) read: MessageCounts,
}

/// A TCP connection between two hosts: its ends (`None` until accepted) and its directions
/// (`dirs[s]`: bytes sent by end `s`).
pub(super) struct SimConn {
    pub(super) ends: [Option<End>; 2],
    pub(super) dirs: [Dir; 2],
}
