//! The socket-level machine: many connections on one UDP port, routed by the peer's address
//! and the connection id.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::config::UtpConfig;
use super::conn::{Connection, Outbox, Start};
use super::events::{UtpConnId, UtpConnStats, UtpEvent};
use super::packet::{Header, Packet, PacketType};
use crate::types::Instant;

/// Answers (RESETs) to packets of unknown connections wait in the outbox only while it holds
/// fewer datagrams than this: they are best-effort, and a flood must not grow the queue.
const MAX_QUEUED_FOR_UNKNOWN: usize = 64;
/// Draws of a random connection id before `connect` gives up on finding a free one.
const ID_DRAWS: usize = 16;

/// Why [`UtpSocket::connect`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("too many uTP connections")]
pub struct TooManyConnections;

/// Every uTP connection on one UDP port. See the [module](super) for the polling order.
#[derive(Debug)]
pub struct UtpSocket {
    config: UtpConfig,
    rng: ChaCha8Rng,
    conns: BTreeMap<UtpConnId, Connection>,
    /// (peer address, the connection id its packets carry) to connection.
    routes: BTreeMap<(SocketAddr, u16), UtpConnId>,
    next_id: u64,
    out: Outbox,
    /// Connections that owe the peer a bare ACK, sent once the other datagrams are out.
    acks_owed: BTreeSet<UtpConnId>,
    /// The latest time a call brought (the owed ACKs carry it).
    now: Instant,
}

impl UtpSocket {
    /// A socket with no connections; `seed` drives connection ids and sequence numbers.
    pub fn new(config: UtpConfig, seed: u64) -> UtpSocket {
        UtpSocket {
            config,
            rng: ChaCha8Rng::seed_from_u64(seed),
            conns: BTreeMap::new(),
            routes: BTreeMap::new(),
            next_id: 0,
            out: Outbox::default(),
            acks_owed: BTreeSet::new(),
            now: Instant::ZERO,
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &UtpConfig {
        &self.config
    }

    /// How many connections it holds (open, opening and half-open).
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// How many accepted connections the peer has not confirmed yet.
    pub fn half_open(&self) -> usize {
        self.conns.values().filter(|c| c.half_open()).count()
    }

    /// A connection's numbers (`None` once it is gone).
    pub fn stats(&self, conn: UtpConnId) -> Option<UtpConnStats> {
        self.conns.get(&conn).map(Connection::stats)
    }

    /// The peer of a connection.
    pub fn peer_addr(&self, conn: UtpConnId) -> Option<SocketAddr> {
        self.conns.get(&conn).map(Connection::addr)
    }

    /// Opens a connection to `addr` (sends the SYN); [`UtpEvent::Connected`] or
    /// [`UtpEvent::Closed`] follows.
    pub fn connect(&mut self, addr: SocketAddr, now: Instant) -> Result<UtpConnId, TooManyConnections> {
        if self.conns.len() >= self.config.max_connections {
            return Err(TooManyConnections);
        }
        // We receive on `recv_id` and send with `recv_id + 1` (BEP 29, libtorrent).
        let recv_id = (0..ID_DRAWS)
            .map(|_| self.rng.random::<u16>())
            .find(|id| !self.routes.contains_key(&(addr, *id)))
            .ok_or(TooManyConnections)?;
        let id = self.new_id();
        let seq: u16 = self.rng.random();
        let start = Start { id, addr, send_id: recv_id.wrapping_add(1), seq: seq.wrapping_add(1), ack_nr: 0 };
        let conn = Connection::connect(start, recv_id, now, &self.config, &mut self.out);
        self.routes.insert((addr, recv_id), id);
        self.conns.insert(id, conn);
        Ok(id)
    }

    fn new_id(&mut self) -> UtpConnId {
        self.next_id += 1;
        UtpConnId(self.next_id)
    }

    /// Takes a datagram that arrived from `from`. Anything that is not a packet of ours is
    /// dropped; a packet of an unknown connection is answered with RESET.
    pub fn handle_datagram(&mut self, from: SocketAddr, bytes: &[u8], now: Instant) {
        self.now = self.now.max(now);
        let Ok(packet) = Packet::decode(bytes) else { return };
        let h = packet.header;
        let route = match h.kind {
            // The initiator receives on the SYN's id and sends with the next one.
            PacketType::Syn => self.routes.get(&(from, h.conn_id.wrapping_add(1))),
            PacketType::Reset => self.reset_route(from, h.conn_id),
            _ => self.routes.get(&(from, h.conn_id)),
        };
        match route.copied() {
            Some(id) => {
                let conn = self.conns.get_mut(&id).expect("every route leads to a connection");
                conn.handle(&packet, now, &self.config, &mut self.out);
                if conn.owes_ack() {
                    self.acks_owed.insert(id);
                }
                self.reap(id);
            }
            None if h.kind == PacketType::Syn => self.accept(from, &h, now),
            None if h.kind != PacketType::Reset => self.refuse(from, &h, now),
            None => {}
        }
    }

    /// A RESET may carry either id of the connection (libutp matches both).
    fn reset_route(&self, from: SocketAddr, id: u16) -> Option<&UtpConnId> {
        self.routes.get(&(from, id)).or_else(|| {
            [id.wrapping_add(1), id.wrapping_sub(1)]
                .iter()
                .filter_map(|recv| self.routes.get(&(from, *recv)))
                .find(|c| self.conns.get(c).is_some_and(|c| c.send_id() == id))
        })
    }

    fn accept(&mut self, from: SocketAddr, syn: &Header, now: Instant) {
        if self.conns.len() >= self.config.max_connections {
            return self.refuse(from, syn, now);
        }
        if self.half_open() >= self.config.max_half_open {
            return; // a SYN flood: the real peers among it will resend
        }
        let id = self.new_id();
        let start = Start { id, addr: from, send_id: syn.conn_id, seq: self.rng.random(), ack_nr: syn.seq_nr };
        let conn = Connection::accept(start, syn, now, &self.config, &mut self.out);
        self.routes.insert((from, syn.conn_id.wrapping_add(1)), id);
        self.conns.insert(id, conn);
    }

    /// Answers a packet of a connection we do not know with RESET.
    fn refuse(&mut self, to: SocketAddr, h: &Header, now: Instant) {
        if self.out.transmits.len() >= MAX_QUEUED_FOR_UNKNOWN {
            return;
        }
        let header = Header {
            kind: PacketType::Reset,
            conn_id: h.conn_id,
            timestamp: now.as_micros() as u32,
            timestamp_diff: 0,
            wnd_size: 0,
            seq_nr: 0,
            ack_nr: h.seq_nr,
        };
        self.out.transmits.push_back((to, Packet { header, sack: None, payload: &[] }.encode()));
    }

    /// Queues bytes on a connection; returns how many fit its send buffer (0 for a connection
    /// that is gone, closing or not yet open). [`UtpEvent::Writable`] follows a short write.
    pub fn write(&mut self, conn: UtpConnId, bytes: &[u8], now: Instant) -> usize {
        self.now = self.now.max(now);
        let Some(c) = self.conns.get_mut(&conn) else { return 0 };
        let n = c.write(bytes, now, &self.config, &mut self.out);
        self.reap(conn);
        n
    }

    /// Takes up to `max` received bytes of a connection, in order.
    pub fn read(&mut self, conn: UtpConnId, max: usize, now: Instant) -> Vec<u8> {
        self.now = self.now.max(now);
        let Some(c) = self.conns.get_mut(&conn) else { return Vec::new() };
        let bytes = c.read(max, now, &self.config, &mut self.out);
        self.reap(conn);
        bytes
    }

    /// Closes a connection gracefully: FIN after the bytes written. No event follows; the
    /// connection is forgotten once the FIN is acknowledged or times out.
    pub fn close(&mut self, conn: UtpConnId, now: Instant) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.close(now, &self.config, &mut self.out);
            self.reap(conn);
        }
    }

    /// Ends a connection at once with RESET. No event follows.
    pub fn abort(&mut self, conn: UtpConnId, now: Instant) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.abort(now, &mut self.out);
            self.reap(conn);
        }
    }

    /// Forgets a connection that is over.
    fn reap(&mut self, id: UtpConnId) {
        if !self.conns.get(&id).is_some_and(Connection::done) {
            return;
        }
        self.conns.remove(&id);
        self.routes.retain(|_, c| *c != id);
    }

    /// The next datagram to send. The bare ACKs that data packets owe come last: a user that
    /// hands in several datagrams before polling gets one ACK per connection for all of them.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        while self.out.transmits.is_empty() {
            let id = self.acks_owed.pop_first()?;
            if let Some(c) = self.conns.get_mut(&id) {
                c.send_ack(self.now, &mut self.out);
            }
        }
        self.out.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<UtpEvent> {
        self.out.events.pop_front()
    }

    /// When [`UtpSocket::handle_timeout`] is next due (`None`: no connection needs it).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.conns.values().map(|c| c.deadline(&self.config)).min()
    }

    /// Runs the timers that passed by `now`: retransmissions, keep-alives, probes, timeouts.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        let due: Vec<UtpConnId> =
            self.conns.iter().filter(|(_, c)| c.deadline(&self.config) <= now).map(|(id, _)| *id).collect();
        for id in due {
            if let Some(c) = self.conns.get_mut(&id) {
                c.handle_timeout(now, &self.config, &mut self.out);
            }
            self.reap(id);
        }
    }
}
