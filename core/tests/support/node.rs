//! The engines of a world, each with its disks and what it told the application, addressed by
//! `NodeId`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::{Index, IndexMut};

use shoal_netsim::Uplink;

use shoal_core::{ConnId, Engine, Event, Instant, TorrentId, TorrentStats};

use super::disk::Disk;
use super::ids::NodeId;

/// One engine with its disks and what it told the application.
pub(crate) struct Node {
    /// The engine under test.
    pub engine: Engine,
    /// Its listening address.
    pub addr: SocketAddr,
    /// Other addresses that reach it (a second interface, its address behind a NAT): a peer
    /// that knows it under two addresses may dial it while already connected.
    pub aliases: Vec<SocketAddr>,
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
    pub(crate) fn saw(&self, pred: impl Fn(&Event) -> bool) -> bool {
        self.events.iter().any(|(_, e)| pred(e))
    }

    /// Whether the torrent reported [`Event::Finished`].
    pub(crate) fn finished(&self, t: TorrentId) -> bool {
        self.saw(|e| *e == Event::Finished { torrent: t })
    }

    /// The pieces the torrent reported with [`Event::PieceFinished`], in order.
    pub(crate) fn finished_pieces(&self, t: TorrentId) -> Vec<u32> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::PieceFinished { torrent, piece } if *torrent == t => Some(*piece),
                _ => None,
            })
            .collect()
    }

    /// The disk of a torrent.
    pub(crate) fn disk(&self, t: TorrentId) -> &Disk {
        &self.disks[&t]
    }

    /// A torrent's figures.
    pub(crate) fn stats(&self, t: TorrentId) -> TorrentStats {
        self.engine.stats(t).expect("torrent exists")
    }
}

/// The engines of a world.
#[derive(Default)]
pub(crate) struct Nodes(Vec<Node>);

impl Nodes {
    /// Every node's id, in the order they were added.
    pub(crate) fn ids(&self) -> Vec<NodeId> {
        (0..self.0.len()).map(NodeId).collect()
    }

    /// Every node, in the order they were added.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Node> {
        self.0.iter()
    }

    /// The node listening at `addr`, if any.
    pub(crate) fn at(&self, addr: SocketAddr) -> Option<NodeId> {
        self.0.iter().position(|n| n.addr == addr || n.aliases.contains(&addr)).map(NodeId)
    }

    /// The id the next node added will get.
    pub(super) fn next_id(&self) -> NodeId {
        NodeId(self.0.len())
    }

    /// Adds a node under [`Nodes::next_id`].
    pub(super) fn push(&mut self, node: Node) -> NodeId {
        let id = self.next_id();
        self.0.push(node);
        id
    }
}

impl Index<NodeId> for Nodes {
    type Output = Node;

    fn index(&self, id: NodeId) -> &Node {
        &self.0[id.0]
    }
}

impl IndexMut<NodeId> for Nodes {
    fn index_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.0[id.0]
    }
}
