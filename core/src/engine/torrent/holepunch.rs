//! A torrent's side of BEP 55 hole punching (`ut_holepunch`), in its three roles:
//! - initiator: a uTP dial of a peer that PEX flagged as holepunch-capable and not reachable
//!   failed, so we ask the peer that told us of it (the relay) for a rendezvous;
//! - relay: a peer asks us to introduce it to another of our peers, and we send `connect` to
//!   both (each with the other's address), or an error to the asker;
//! - either end: a relay's `connect` makes us dial that address over uTP at once, while the
//!   other end dials us: each outgoing SYN opens its own NAT for the other's.
//!
//! Both ends may end up with two connections to each other (each accepted the other's SYN);
//! the duplicate rule keeps one, as for any simultaneous dial.

use std::net::SocketAddr;

use super::peer::{ActivePeer, Peer, PeerState};
use super::relay_budget::relay_limit;
use super::{mark, Torrent, TorrentEvent};
use crate::engine::close_reason::CloseReason;
use crate::engine::ctx::Ctx;
use crate::engine::output::{Output, PeerIo};
use crate::types::{ConnId, Instant};
use crate::wire::{HolepunchError, HolepunchKind, HolepunchMessage, Message, WireError};

/// The extended message id peers send us `ut_holepunch` messages under (libtorrent's too).
pub(crate) const OUR_UT_HOLEPUNCH: u8 = 4;

impl Torrent {
    /// The address other peers can reach an active peer at: the one we dialled, or for a peer
    /// that dialled us the port it listens on (`None` if it never said).
    pub(super) fn reachable_addr(p: &Peer, a: &ActivePeer) -> Option<SocketAddr> {
        match (p.outgoing, a.listen_port) {
            (true, _) => Some(p.addr),
            (false, Some(port)) if port != 0 => Some(SocketAddr::new(p.addr.ip(), port)),
            (false, _) => None,
        }
    }

    /// Our uTP dial `conn` got no answer (the link falls back to TCP): if PEX said the peer is
    /// behind a NAT that punches, ask the peer that told us of it to introduce us.
    pub(crate) fn on_utp_dial_failed(&mut self, conn: ConnId, cx: &mut Ctx<'_>) {
        if !cx.cfg.holepunch_on() {
            return;
        }
        let Some(target) = self.peers.get(&conn).map(|p| p.addr) else { return };
        let relays = |c: ConnId| self.peers.get(&c).and_then(Peer::active).is_some_and(|a| a.ut_holepunch.is_some());
        let Some(relay) = self.peer_list.rendezvous(target, cx.now, relays) else { return };
        self.send_holepunch(relay, HolepunchKind::Rendezvous, target, cx.now);
    }

    /// A `ut_holepunch` message from peer `conn`.
    pub(super) fn on_ut_holepunch(&mut self, conn: ConnId, payload: &[u8], cx: &mut Ctx<'_>) {
        let msg = match HolepunchMessage::decode(payload) {
            Ok(msg) => msg,
            Err(e) => return self.close(conn, WireError::from(e).into(), cx),
        };
        match msg.kind {
            HolepunchKind::Rendezvous => self.relay(conn, msg.addr, cx),
            HolepunchKind::Connect => self.punch(msg.addr, cx),
            // Our dial already failed over to TCP; nothing more to try through this relay.
            HolepunchKind::Error(_) => {}
        }
    }

    /// Peer `from` asks us to introduce it to `target`.
    fn relay(&mut self, from: ConnId, target: SocketAddr, cx: &mut Ctx<'_>) {
        let limit = relay_limit(cx.cfg.max_peers_per_torrent);
        let Some((_, a)) = self.peers.get_mut(&from).and_then(Peer::active_mut) else { return };
        if !a.rendezvous.take(cx.now, limit) {
            return;
        }
        let Some(initiator) = self.peers.get(&from).and_then(|p| Self::reachable_addr(p, p.active()?)) else {
            // We know no address to give the target: it could not dial the asker.
            return self.send_holepunch(from, HolepunchKind::Error(HolepunchError::NoSuchPeer), target, cx.now);
        };
        let ours = target.port() == cx.cfg.listen_port && self.peer_list.is_own_ip(target.ip());
        // The target as one of our peers, and whether it speaks the extension.
        let found = self.peers.iter().find_map(|(c, p)| {
            let a = p.active().filter(|_| *c != from)?;
            (p.addr == target || Self::reachable_addr(p, a) == Some(target)).then_some((*c, a.ut_holepunch.is_some()))
        });
        let to = match found {
            _ if target.port() == 0 || target.ip().is_unspecified() => Err(HolepunchError::NoSuchPeer),
            _ if ours || target == initiator => Err(HolepunchError::NoSelf),
            None => Err(HolepunchError::NotConnected),
            Some((_, false)) => Err(HolepunchError::NoSupport),
            Some((to, true)) => Ok(to),
        };
        let to = match to {
            Ok(to) => to,
            Err(e) => return self.send_holepunch(from, HolepunchKind::Error(e), target, cx.now),
        };
        self.send_holepunch(to, HolepunchKind::Connect, initiator, cx.now);
        self.send_holepunch(from, HolepunchKind::Connect, target, cx.now);
    }

    /// A relay tells us to dial `addr` over uTP now (its other end dials us at the same time).
    /// A dial of it that still waits (our TCP fallback) gives way to this one.
    fn punch(&mut self, addr: SocketAddr, cx: &mut Ctx<'_>) {
        if !cx.cfg.holepunch_on() {
            return;
        }
        let waiting: Vec<ConnId> =
            self.peers.iter().filter(|(_, p)| p.addr == addr && p.is_dialing()).map(|(c, _)| *c).collect();
        for conn in waiting {
            self.close(conn, CloseReason::Replaced, cx);
        }
        if self.peers.len() >= cx.cfg.max_peers_per_torrent
            || cx.limits.half_open >= cx.cfg.max_half_open
            || cx.limits.conn_room == 0
            || self.crowded(addr, cx.cfg)
        {
            return;
        }
        if !self.peer_list.punch(addr, cx.cfg) {
            return;
        }
        let conn = cx.out.conn();
        cx.limits.half_open += 1;
        cx.limits.conn_room -= 1;
        self.peers.insert(conn, Peer::new(addr, true, PeerState::Dialing { since: cx.now }, cx.now));
        cx.out.push(Output::Peer(PeerIo::Connect { conn, addr }));
        self.events.push(TorrentEvent::Dialed(conn));
    }

    /// Queues a `ut_holepunch` message to `conn`, if it speaks the extension.
    fn send_holepunch(&mut self, conn: ConnId, kind: HolepunchKind, addr: SocketAddr, now: Instant) {
        let Some((ch, a)) = self.peers.get_mut(&conn).and_then(Peer::active_mut) else { return };
        let Some(id) = a.ut_holepunch else { return };
        let payload = HolepunchMessage { kind, addr }.encode();
        let was_empty = ch.send(&Message::Extended { id, payload }, now);
        mark(&mut self.dirty, conn, was_empty);
    }
}
