//! A torrent's side of BEP 11 peer exchange (`ut_pex`): telling each peer, about once a
//! minute, which peers we connected to and lost since we last told it, and taking the peers
//! it tells us as candidates. Never on a private torrent (BEP 27).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use super::{mark, Torrent};
use crate::engine::ctx::Ctx;
use crate::engine::Config;
use crate::types::{ConnId, Instant};
use crate::wire::{Message, PexMessage, PEX_OUTGOING, PEX_SEED, UT_PEX};

/// The extended message id peers send us `ut_pex` messages under (libtorrent's too).
pub(crate) const OUR_UT_PEX: u8 = 1;

/// Time between two messages to one peer; the first goes this long after the connection.
const SEND_INTERVAL: Duration = Duration::from_secs(60);

/// Messages from one peer closer together than this are ignored: BEP 11 allows one a minute,
/// and libtorrent disconnects a peer that sends three within a minute.
const MIN_RECEIVE_GAP: Duration = Duration::from_secs(45);

/// Added (and, separately, dropped) peers per message we send (BEP 11's limit).
const MAX_SENT: usize = 50;

/// Added peers taken from one received message; the rest of it is ignored.
const MAX_TAKEN: usize = 100;

/// One peer's exchange with us.
pub(crate) struct PexState {
    /// When we send it our next message.
    next_send: Instant,
    /// The addresses it has from us: told as added, not yet told as dropped.
    told: BTreeSet<SocketAddr>,
    /// When the last message from it that we took arrived.
    last_taken: Option<Instant>,
}

impl PexState {
    /// The exchange with a peer whose connection is up at `now`.
    pub fn new(now: Instant) -> Self {
        PexState { next_send: now + SEND_INTERVAL, told: BTreeSet::new(), last_taken: None }
    }

    /// What to tell it, given the peers we could tell it about now (its own address excluded),
    /// and remembers that it was told.
    fn next_message(&mut self, current: &BTreeMap<SocketAddr, u8>) -> PexMessage {
        let added: Vec<(SocketAddr, u8)> = current
            .iter()
            .filter(|(addr, _)| !self.told.contains(addr))
            .take(MAX_SENT)
            .map(|(addr, flags)| (*addr, *flags))
            .collect();
        let dropped: Vec<SocketAddr> =
            self.told.iter().filter(|addr| !current.contains_key(addr)).take(MAX_SENT).copied().collect();
        self.told.extend(added.iter().map(|(addr, _)| *addr));
        for addr in &dropped {
            self.told.remove(addr);
        }
        // With more churn than a message carries, peers long gone are forgotten unsaid: this
        // keeps the set within the connected peers plus one message's worth.
        if self.told.len() > current.len() + MAX_SENT {
            self.told.retain(|addr| current.contains_key(addr));
        }
        PexMessage { added, dropped }
    }
}

impl Torrent {
    /// Whether peer exchange is allowed (BEP 27 forbids it on private torrents).
    pub(super) fn pex_allowed(&self) -> bool {
        !self.content.private()
    }

    /// The address other peers can reach each active peer at, with its `added.f` flags: the
    /// address we dialled, or for a peer that dialled us the port it listens on (unknown: left
    /// out, its source port is useless to others).
    fn pex_entries(&self) -> Vec<(ConnId, SocketAddr, u8)> {
        self.peers
            .iter()
            .filter_map(|(conn, p)| {
                let a = p.active()?;
                let addr = match (p.outgoing, a.listen_port) {
                    (true, _) => p.addr,
                    (false, Some(port)) if port != 0 => SocketAddr::new(p.addr.ip(), port),
                    (false, _) => return None,
                };
                let mut flags = if p.outgoing { PEX_OUTGOING } else { 0 };
                if a.is_seed() || a.upload_only {
                    flags |= PEX_SEED;
                }
                Some((*conn, addr, flags))
            })
            .collect()
    }

    /// Sends a message to every peer whose turn it is (called every tick).
    pub(super) fn send_pex(&mut self, now: Instant) {
        if !self.pex_allowed() {
            return;
        }
        let due: Vec<ConnId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.active().is_some_and(|a| a.ut_pex.is_some() && now >= a.pex.next_send))
            .map(|(conn, _)| *conn)
            .collect();
        if due.is_empty() {
            return;
        }
        let entries = self.pex_entries();
        for conn in due {
            let own = entries.iter().find(|(c, _, _)| *c == conn).map(|(_, addr, _)| *addr);
            let current: BTreeMap<SocketAddr, u8> = entries
                .iter()
                .filter(|(c, addr, _)| *c != conn && Some(*addr) != own)
                .map(|(_, addr, flags)| (*addr, *flags))
                .collect();
            let Some((ch, p)) = self.peers.get_mut(&conn).and_then(|p| p.active_mut()) else { continue };
            let Some(id) = p.ut_pex else { continue };
            p.pex.next_send = now + SEND_INTERVAL;
            let msg = p.pex.next_message(&current);
            // Nothing new is not worth a message (and some clients take an empty one as an error).
            if msg.is_empty() {
                continue;
            }
            let was_empty = ch.send(&Message::Extended { id, payload: msg.encode() }, now);
            mark(&mut self.dirty, conn, was_empty);
        }
    }

    /// The metadata says the torrent is private: tells every peer we no longer speak `ut_pex`
    /// (an extended handshake naming it with id 0, BEP 10).
    pub(super) fn withdraw_pex(&mut self, cfg: &Config, now: Instant) {
        let mut ext = self.extended_handshake(cfg);
        ext.m.insert(UT_PEX.to_owned(), 0);
        let payload = ext.encode();
        for (conn, p) in self.peers.iter_mut() {
            let Some((ch, a)) = p.active_mut() else { continue };
            if a.extended {
                let was_empty = ch.send(&Message::Extended { id: 0, payload: payload.clone() }, now);
                mark(&mut self.dirty, *conn, was_empty);
            }
        }
    }

    /// A `ut_pex` message from a peer: its added peers become candidates.
    pub(super) fn on_ut_pex(&mut self, conn: ConnId, payload: &[u8], cx: &mut Ctx<'_>) {
        if !self.pex_allowed() {
            return;
        }
        let Some(peer) = self.peers.get_mut(&conn) else { return };
        let sender = peer.addr;
        let Some((_, p)) = peer.active_mut() else { return };
        if p.pex.last_taken.is_some_and(|at| cx.now - at < MIN_RECEIVE_GAP) {
            return;
        }
        p.pex.last_taken = Some(cx.now);
        // Dropped peers are not acted on: whether they still listen is for a dial to find out.
        let msg = match PexMessage::decode(payload, MAX_TAKEN, 0) {
            Ok(msg) => msg,
            Err(e) => return self.close(conn, e.into(), cx),
        };
        let added = msg.added.into_iter().map(|(addr, _)| addr).filter(|addr| *addr != sender);
        let learned = self.add_candidates(added, cx.cfg);
        self.pex_learned = self.pex_learned.saturating_add(u32::try_from(learned).unwrap_or(u32::MAX));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::SocketAddr;

    use super::PexState;
    use crate::types::Instant;

    fn addr(i: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, i], 6881))
    }

    fn set(ids: &[u8]) -> BTreeMap<SocketAddr, u8> {
        ids.iter().map(|i| (addr(*i), 0)).collect()
    }

    #[test]
    fn each_message_says_what_changed_since_the_last_one() {
        let mut s = PexState::new(Instant::ZERO);
        let m = s.next_message(&set(&[1, 2]));
        assert_eq!(m.added, vec![(addr(1), 0), (addr(2), 0)]);
        assert!(m.dropped.is_empty());
        assert!(s.next_message(&set(&[1, 2])).is_empty(), "nothing changed");
        let m = s.next_message(&set(&[2, 3]));
        assert_eq!((m.added, m.dropped), (vec![(addr(3), 0)], vec![addr(1)]));
        // A peer that came and went between two messages is never mentioned.
        let m = s.next_message(&set(&[2, 3]));
        assert!(m.is_empty());
    }

    #[test]
    fn at_most_fifty_each_way_and_the_rest_follows() {
        let mut s = PexState::new(Instant::ZERO);
        let many: Vec<u8> = (1..=120).collect();
        let sizes: Vec<usize> = (0..3).map(|_| s.next_message(&set(&many)).added.len()).collect();
        assert_eq!(sizes, [50, 50, 20]);
        let m = s.next_message(&set(&[]));
        assert_eq!((m.added.len(), m.dropped.len()), (0, 50));
        // Past one message's worth of stale entries the rest are forgotten, not sent forever.
        assert!(s.next_message(&set(&[])).is_empty());
        assert!(s.told.is_empty());
    }
}
