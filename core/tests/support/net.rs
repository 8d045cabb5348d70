//! The simulated network: dials, connections whose bytes cross a `shoal_netsim` link, and
//! datagrams (DHT between nodes, Local Service Discovery to every node of the one LAN).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use shoal_netsim::{Link, Path, Reads, Uplink};

use shoal_core::{ConnId, Instant};

use super::ids::{NodeId, RawId};
use super::node::Nodes;
use super::queue::{Ev, Queue};
use super::timing::Timing;

/// The far side of a connection.
#[derive(Clone, Copy, Debug)]
enum End {
    Node { node: NodeId, conn: ConnId },
    Raw(RawId),
}

/// One direction of a connection: where it goes and the bytes on their way.
#[derive(Debug)]
struct Wire {
    to: End,
    link: Link<Vec<u8>>,
}

impl Wire {
    /// A connection direction towards `to`, nothing on its way yet.
    fn to(to: End) -> Self {
        Wire { to, link: Link::default() }
    }
}

/// The open connections and the dials under way.
pub(super) struct Net {
    /// Each open connection's outgoing direction, by its sending end.
    links: HashMap<(NodeId, ConnId), Wire>,
    /// Connections being dialled.
    dialing: HashMap<(NodeId, ConnId), ()>,
    /// Source port of the next accepted connection.
    next_ephemeral: u16,
    /// Cuts received bytes into reads.
    rng: ChaCha8Rng,
}

impl Net {
    /// No connections; reads are cut by an RNG derived from the world's `seed`.
    pub(super) fn new(seed: u64) -> Self {
        Net {
            links: HashMap::new(),
            dialing: HashMap::new(),
            next_ephemeral: 40000,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_0ffa_11ed),
        }
    }

    /// A node starts dialling on `conn`.
    pub(super) fn dial(&mut self, from: (NodeId, ConnId)) {
        self.dialing.insert(from, ());
    }

    /// A dial arrives: whether the dialer still waits for it (it may have given up first).
    pub(super) fn dial_arrives(&mut self, from: (NodeId, ConnId)) -> bool {
        self.dialing.remove(&from).is_some()
    }

    /// The source address the next accepted connection from `ip` comes from.
    pub(super) fn source(&mut self, ip: IpAddr) -> SocketAddr {
        let src = SocketAddr::new(ip, self.next_ephemeral);
        self.next_ephemeral = self.next_ephemeral.wrapping_add(1).max(40000);
        src
    }

    /// Connects two nodes' ends of an accepted connection.
    pub(super) fn join(&mut self, a: (NodeId, ConnId), b: (NodeId, ConnId)) {
        self.links.insert(a, Wire::to(End::Node { node: b.0, conn: b.1 }));
        self.links.insert(b, Wire::to(End::Node { node: a.0, conn: a.1 }));
    }

    /// Connects a node's end to a hand-driven peer.
    pub(super) fn join_raw(&mut self, a: (NodeId, ConnId), raw: RawId) {
        self.links.insert(a, Wire::to(End::Raw(raw)));
    }

    /// The hand-driven peer at the far side of a node's end hangs up: the node's sends go
    /// nowhere from now on.
    pub(super) fn hang_up(&mut self, end: (NodeId, ConnId)) {
        self.links.remove(&end);
    }

    /// A node sends on a connection: the bytes leave through its `uplink` and arrive, cut into
    /// reads, after the latency. Bytes for another node are returned with their receiving end
    /// (for the tap).
    pub(super) fn send(
        &mut self,
        from: (NodeId, ConnId),
        data: Vec<u8>,
        uplink: &mut Uplink,
        timing: &Timing,
        queue: &mut Queue,
        now: Instant,
    ) -> Option<((NodeId, ConnId), Vec<u8>)> {
        let (a, conn) = from;
        let wire = self.links.get_mut(&from)?;
        let n = data.len();
        let vnow = virtual_time(now);
        let path = Path { latency: timing.latency, down: None, sndbuf: None };
        wire.link.handle_timeout(vnow);
        wire.link.send(data, n as u64);
        let sent = wire.link.poll_transmit(vnow, uplink, &path).expect("no send buffer limit");
        let (to, data, arrival) = (wire.to, sent.item, instant(sent.arrival));
        queue.schedule(instant(sent.done), Ev::Sent { node: a, conn, n });
        match to {
            End::Raw(raw) => {
                queue.schedule(arrival, Ev::RawData { raw, data });
                None
            }
            End::Node { node: b, conn: bc } => {
                let reads = timing.max_chunk.map_or(Reads::Whole, Reads::UpTo);
                // A zero-length write sends nothing.
                for piece in reads.pieces(&mut self.rng, n).into_iter().filter(|p| !p.is_empty()) {
                    queue.schedule(arrival, Ev::Data { node: b, conn: bc, data: data[piece].to_vec() });
                }
                Some(((b, bc), data))
            }
        }
    }

    /// A node closes a connection (or gives up a dial); a node at the far side hears of it
    /// after the bytes already on their way. The hand-driven peer at the far side, if that is
    /// who it was.
    pub(super) fn close(
        &mut self,
        from: (NodeId, ConnId),
        now: Instant,
        latency: Duration,
        queue: &mut Queue,
    ) -> Option<RawId> {
        self.dialing.remove(&from);
        let wire = self.links.remove(&from)?;
        match wire.to {
            End::Raw(raw) => Some(raw),
            End::Node { node: b, conn: bc } => {
                self.links.remove(&(b, bc));
                let at = (now + latency).max(instant(wire.link.last_arrival()));
                queue.schedule(at, Ev::Closed { node: b, conn: bc });
                None
            }
        }
    }
}

/// A DHT datagram from node `a`: delivered at `at`, to nobody if nobody listens at `to`.
pub(super) fn dht_datagram(nodes: &Nodes, queue: &mut Queue, at: Instant, a: NodeId, to: SocketAddr, data: Vec<u8>) {
    if let Some(b) = nodes.at(to) {
        let from = nodes[a].addr;
        queue.schedule(at, Ev::Datagram { node: b, from, data });
    }
}

/// A Local Service Discovery announce from node `a`, sent `now`. One LAN: the multicast group
/// reaches every other node at `at` (IPv4 only here, as the nodes have IPv4 addresses). The
/// port is the group's, not the peer's.
pub(super) fn lsd_datagram(
    nodes: &mut Nodes,
    queue: &mut Queue,
    now: Instant,
    at: Instant,
    a: NodeId,
    data: Vec<u8>,
    v6: bool,
) {
    nodes[a].lsd_sends.push((now, data.clone()));
    if !v6 {
        let from = SocketAddr::new(nodes[a].addr.ip(), 6771);
        for b in nodes.ids().into_iter().filter(|b| *b != a) {
            let ev = Ev::LsdDatagram { node: b, from, data: data.clone() };
            queue.schedule(at, ev);
        }
    }
}

/// The network model's virtual time (time since the world began) at `at`.
pub(super) fn virtual_time(at: Instant) -> Duration {
    Duration::from_micros(at.as_micros())
}

/// The engine's instant at the network model's virtual time `t`.
fn instant(t: Duration) -> Instant {
    Instant::from_micros(t.as_micros() as u64)
}
