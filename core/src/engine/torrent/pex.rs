//! A torrent's side of BEP 11 peer exchange (`ut_pex`): telling each peer, about once a
//! minute, which peers we connected to and lost since we last told it, and taking the peers
//! it tells us as candidates. Never on a private torrent (BEP 27).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::{mark, Torrent};
use crate::engine::config::Config;
use crate::engine::ctx::Ctx;
use crate::types::{ConnId, Instant};
use crate::wire::{Message, PexMessage, PEX_ENCRYPTION, PEX_HOLEPUNCH, PEX_OUTGOING, PEX_SEED, UT_PEX};

/// The extended message id peers send us `ut_pex` messages under (libtorrent's too).
pub(crate) const OUR_UT_PEX: u8 = 1;

/// Added peers taken from one received message; the rest of it is ignored.
const MAX_TAKEN: usize = 100;

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
                let addr = Self::reachable_addr(p, a)?;
                let mut flags = if p.outgoing { PEX_OUTGOING } else { 0 };
                if a.is_seed() || a.upload_only {
                    flags |= PEX_SEED;
                }
                if a.prefers_encryption {
                    flags |= PEX_ENCRYPTION;
                }
                if a.ut_holepunch.is_some() {
                    flags |= PEX_HOLEPUNCH;
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
            .filter(|(_, p)| p.active().is_some_and(|a| a.ut_pex.is_some() && a.pex.is_due(now)))
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
            let msg = p.pex.next_message(now, &current);
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
        if !p.pex.take(cx.now) {
            return;
        }
        // Dropped peers are not acted on: whether they still listen is for a dial to find out.
        let msg = match PexMessage::decode(payload, MAX_TAKEN, 0) {
            Ok(msg) => msg,
            Err(e) => return self.close(conn, e.into(), cx),
        };
        let added: Vec<(SocketAddr, u8)> = msg.added.into_iter().filter(|(addr, _)| *addr != sender).collect();
        let learned = self.add_candidates(added.iter().map(|(addr, _)| *addr), cx.cfg);
        for (addr, _) in added.iter().filter(|(_, flags)| flags & PEX_ENCRYPTION != 0) {
            self.peer_list.prefers_encryption(*addr);
        }
        // A peer that punches holes and that the sender did not reach by dialling it may be
        // behind a NAT: if our dial fails, the sender is who introduces us (BEP 55).
        for (addr, _) in added.iter().filter(|(_, f)| f & PEX_HOLEPUNCH != 0 && f & PEX_OUTGOING == 0) {
            self.peer_list.introduced_by(*addr, conn);
        }
        self.pex_learned = self.pex_learned.saturating_add(u32::try_from(learned).unwrap_or(u32::MAX));
    }
}
