//! The simulated network: dials, connections whose bytes cross a `shoal_netsim` link, and
//! datagrams (DHT between nodes, Local Service Discovery to every node of the one LAN).

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use shoal_netsim::{Link, Path, Reads};

use shoal_core::{CloseReason, ConnId, Input, Instant};

use super::node::NodeId;
use super::raw::RawId;
use super::world::{Ev, World};

/// The far side of a connection.
#[derive(Clone, Copy, Debug)]
pub(super) enum End {
    Node { node: NodeId, conn: ConnId },
    Raw(RawId),
}

/// One direction of a connection: where it goes and the bytes on their way.
#[derive(Debug)]
pub(super) struct Wire {
    to: End,
    link: Link<Vec<u8>>,
}

impl Wire {
    /// A connection direction towards `to`, nothing on its way yet.
    pub(super) fn to(to: End) -> Self {
        Wire { to, link: Link::default() }
    }
}

impl World {
    /// Node `a` dials `addr`: the attempt reaches whoever listens there after the latency.
    pub(super) fn connect(&mut self, a: NodeId, conn: ConnId, addr: SocketAddr) {
        let target = self.nodes.at(addr);
        self.dialing.insert((a, conn), ());
        self.schedule(self.now + self.timing.latency, Ev::Dial { from: a, conn, target });
    }

    /// A dial arrives: the target accepts it (or nobody listens) and the dialer hears so.
    pub(super) fn dial(&mut self, from: NodeId, conn: ConnId, target: Option<NodeId>) {
        let now = self.now;
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
            None => {
                let refused = CloseReason::DialFailed(ErrorKind::ConnectionRefused);
                self.nodes[from].engine.handle(Input::Closed(conn, refused), now)
            }
        }
        self.drain(from);
    }

    /// Node `a` sends on a connection: the bytes leave through its uplink and arrive, cut into
    /// reads, after the latency.
    pub(super) fn send(&mut self, a: NodeId, conn: ConnId, data: Vec<u8>) {
        let now = self.now;
        let Some(wire) = self.links.get_mut(&(a, conn)) else { return };
        let n = data.len();
        let vnow = virtual_time(now);
        let path = Path { latency: self.timing.latency, down: None, sndbuf: None };
        wire.link.handle_timeout(vnow);
        wire.link.send(data, n as u64);
        let sent = wire.link.poll_transmit(vnow, &mut self.nodes[a].uplink, &path).expect("no send buffer limit");
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

    /// Node `a` closes a connection (or gives up a dial); the far side hears of it after the
    /// bytes already on their way.
    pub(super) fn close(&mut self, a: NodeId, conn: ConnId) {
        let now = self.now;
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

    /// A DHT datagram from node `a`: delivered after the link latency, to nobody if unknown.
    pub(super) fn dht_datagram(&mut self, a: NodeId, to: SocketAddr, data: Vec<u8>) {
        if let Some(b) = self.nodes.at(to) {
            let from = self.nodes[a].addr;
            self.schedule(self.now + self.timing.latency, Ev::Datagram { node: b, from, data });
        }
    }

    /// A Local Service Discovery announce from node `a`. One LAN: the multicast group reaches
    /// every other node (IPv4 only here, as the nodes have IPv4 addresses). The port is the
    /// group's, not the peer's.
    pub(super) fn lsd_datagram(&mut self, a: NodeId, data: Vec<u8>, v6: bool) {
        let now = self.now;
        self.nodes[a].lsd_sends.push((now, data.clone()));
        if !v6 {
            let from = SocketAddr::new(self.nodes[a].addr.ip(), 6771);
            for b in self.nodes.ids().into_iter().filter(|b| *b != a) {
                let ev = Ev::LsdDatagram { node: b, from, data: data.clone() };
                self.schedule(now + self.timing.latency, ev);
            }
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
