//! A torrent's connections: dialing, admitting incoming peers, the handshakes, closing, and
//! choking.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::holepunch::OUR_UT_HOLEPUNCH;
use super::peer::{ActivePeer, Peer, PeerState};
use super::pex::OUR_UT_PEX;
use super::request_queue::RequestQueue;
use super::ut_metadata::OUR_UT_METADATA;
use crate::choker::PeerStats as ChokeStats;
use crate::engine::admission::{pick_replacement, Occupant, Usefulness};
use crate::engine::close_reason::CloseReason;
use crate::engine::config::Config;
use crate::engine::ctx::Ctx;
use crate::engine::event::Event;
use crate::engine::output::{Output, PeerIo};
use crate::types::{BlockRef, ConnId, Instant};
use crate::wire::{
    Decoded, Decoder, ExtendedHandshake, Handshake, HandshakeDecoder, HandshakeStep, Message, UT_HOLEPUNCH,
    UT_METADATA, UT_PEX,
};

use super::{addr_in_use, crowded, mark, Admit, State, Torrent, TorrentEvent};

impl Torrent {
    // ---- connections ----

    /// Whether the torrent may look for peers on the DHT now (active, not private: BEP 27).
    pub(crate) fn wants_dht(&self) -> bool {
        self.state == State::Active && !self.content.private()
    }

    /// Whether we have the whole torrent (announced to the DHT as a seed: BEP 33).
    pub(crate) fn is_seed(&self) -> bool {
        !self.content.is_fetching() && self.picker.have().is_full()
    }

    /// Adds peer addresses to dial; returns how many were new to us.
    pub(crate) fn add_candidates(&mut self, addrs: impl IntoIterator<Item = SocketAddr>, cfg: &Config) -> usize {
        self.peer_list.add(addrs, cfg)
    }

    /// Dials candidates while there is room (each new connection becomes a
    /// [`TorrentEvent::Dialed`]).
    pub(crate) fn connect_more(&mut self, cx: &mut Ctx<'_>) {
        if self.state != State::Active {
            return;
        }
        // Each candidate is looked at once at most.
        for _ in 0..self.peer_list.candidates() {
            if self.peers.len() >= cx.cfg.max_peers_per_torrent
                || cx.limits.half_open >= cx.cfg.max_half_open
                || cx.limits.conn_room == 0
            {
                break;
            }
            let peers = &self.peers;
            let Some(addr) = self.peer_list.next_dial(cx.now, |a| crowded(peers, a, cx.cfg)) else { continue };
            let conn = cx.out.conn();
            cx.limits.half_open += 1;
            cx.limits.conn_room -= 1;
            let peer = Peer::new(addr, true, PeerState::Dialing { since: cx.now }, cx.now);
            self.peers.insert(conn, peer);
            cx.out.push(Output::Peer(PeerIo::Connect { conn, addr }));
            self.events.push(TorrentEvent::Dialed(conn));
        }
    }

    pub(crate) fn on_connected(&mut self, conn: ConnId, cx: &mut Ctx<'_>) {
        let Some(p) = self.peers.get_mut(&conn) else { return };
        if p.is_dialing() {
            // Counted when it was dialled (checked by `Engine::check_invariants`).
            cx.limits.half_open -= 1;
            p.state = PeerState::Handshaking { since: cx.now, decoder: HandshakeDecoder::new(cx.cfg.wire_limits) };
            let was_empty = p.ch.outbuf.is_empty();
            Handshake::new(self.info_hash, self.our_id).encode(&mut p.ch.outbuf);
            mark(&mut self.dirty, conn, was_empty);
        }
    }

    /// Whether the dial `conn` starts with an encrypted handshake, encryption being enabled
    /// (not forced): see [`PeerList::dials_encrypted`](super::peer_list::PeerList::dials_encrypted).
    pub(crate) fn dials_encrypted(&self, conn: ConnId) -> bool {
        self.peers.get(&conn).is_some_and(|p| self.peer_list.dials_encrypted(p.addr))
    }

    /// The encrypted handshake of our dial `conn` failed: it is closed for `reason`, and with
    /// `retry` its address is dialled again in plaintext.
    pub(crate) fn encryption_failed(&mut self, conn: ConnId, reason: CloseReason, retry: bool, cx: &mut Ctx<'_>) {
        let Some(addr) = self.peers.get(&conn).map(|p| p.addr) else { return };
        self.close(conn, reason, cx);
        if retry {
            self.peer_list.retry_plaintext(addr, cx.now);
        }
    }

    /// The peer closed our dial `conn` during its encrypted handshake (as a client without
    /// encryption does): its address is dialled again in plaintext.
    pub(crate) fn closed_while_encrypting(&mut self, conn: ConnId, reason: CloseReason, cx: &mut Ctx<'_>) {
        let Some(addr) = self.peers.get(&conn).map(|p| p.addr) else { return };
        self.drop_peer(conn, reason, cx);
        self.peer_list.retry_plaintext(addr, cx.now);
    }

    /// Whether `addr`'s address has [`Config::max_connections_per_ip`] peers here already.
    pub(super) fn crowded(&self, addr: SocketAddr, cfg: &Config) -> bool {
        crowded(&self.peers, addr, cfg)
    }

    /// The peer to close for a newcomer when the torrent is full (see [`pick_replacement`]):
    /// only established peers compete, dials and handshakes in progress end on their own.
    pub(super) fn replacement(&self) -> Option<ConnId> {
        pick_replacement(self.occupants())
    }

    /// A torrent full of peers that do nothing for it closes the longest idle one (once a
    /// tick) while it has addresses to dial: squatters must not keep it from finding peers,
    /// and incoming connections alone may never come (a seeder may be the only one that knows
    /// its leechers' addresses). No age is asked of the idle peer: squatters replacing each
    /// other keep every one of them young.
    pub(super) fn make_room_to_dial(&mut self, cx: &mut Ctx<'_>) {
        if self.peers.len() < cx.cfg.max_peers_per_torrent {
            return;
        }
        let peers = &self.peers;
        if !self.peer_list.has_dialable(cx.now, |a| crowded(peers, a, cx.cfg)) {
            return;
        }
        let idle = self.occupants().filter(|o| o.usefulness == Usefulness::Idle);
        if let Some(victim) = pick_replacement(idle) {
            self.close(victim, CloseReason::Replaced, cx);
        }
    }

    /// The established peers, as connection replacement sees them.
    fn occupants(&self) -> impl Iterator<Item = Occupant> + '_ {
        let fetching = self.content.is_fetching();
        self.peers.iter().filter_map(move |(conn, p)| {
            let a = p.active()?;
            Some(Occupant { conn: *conn, usefulness: a.usefulness(&p.ch.dl, fetching), since: a.activated })
        })
    }

    /// Takes an incoming connection whose handshake named this torrent; `Err` with why it is
    /// refused. A full torrent (or session) closes its least useful peer to take it, if it has
    /// one that may be replaced.
    pub(crate) fn attach_incoming(
        &mut self,
        admit: Admit,
        decoder: Decoder,
        hs: Handshake,
        cx: &mut Ctx<'_>,
    ) -> Result<(), CloseReason> {
        let Admit { conn, addr, session_full } = admit;
        if self.state != State::Active {
            return Err(CloseReason::TorrentInactive);
        }
        if self.crowded(addr, cx.cfg) {
            return Err(CloseReason::TooManyFromAddress);
        }
        if self.peer_list.is_banned(addr) {
            return Err(CloseReason::Banned);
        }
        if session_full || self.peers.len() >= cx.cfg.max_peers_per_torrent {
            match self.replacement() {
                Some(victim) => self.close(victim, CloseReason::Replaced, cx),
                None => return Err(CloseReason::TooManyConnections),
            }
        }
        // Its handshake is read: the decoder it was read with has nothing more to give.
        let state = PeerState::Handshaking { since: cx.now, decoder: HandshakeDecoder::new(cx.cfg.wire_limits) };
        let mut peer = Peer::new(addr, false, state, cx.now);
        Handshake::new(self.info_hash, self.our_id).encode(&mut peer.ch.outbuf);
        self.peers.insert(conn, peer);
        self.dirty.push(conn);
        self.activate(conn, hs, decoder, cx)
    }

    /// Handshakes are exchanged: check the peer and send our opening messages. `decoder` reads
    /// the messages after its handshake. `Err` with why the peer was closed instead.
    pub(super) fn activate(
        &mut self,
        conn: ConnId,
        hs: Handshake,
        mut decoder: Decoder,
        cx: &mut Ctx<'_>,
    ) -> Result<(), CloseReason> {
        let existing = self
            .peers
            .iter()
            .find(|(c, p)| **c != conn && p.active().is_some_and(|a| a.peer_id == hs.peer_id))
            .map(|(c, p)| (*c, p.outgoing, p.active().is_some_and(|a| a.transferring(&p.ch.dl))));
        let mut duplicate = false;
        if let (Some((old, old_outgoing, warm)), Some(new_outgoing)) =
            (existing, self.peers.get(&conn).map(|p| p.outgoing))
        {
            // We are connected to this peer already. Both sides must close the same one.
            // - The old one carries a transfer (requests outstanding either way, or blocks
            //   moved): it is kept and the newcomer closed, so a duplicate never costs the
            //   requests on a warm connection (issue #17: a seeder we downloaded from dialled
            //   us under a second address). Both ends count the same requests and blocks, so
            //   both see it warm and both close the newcomer. They can disagree only for one
            //   one-way delay, between our first request and its arrival (or a block's sending
            //   and arrival); then the other end may apply the rule below and close the old
            //   one while we close the new, and the peers find each other again as after any
            //   close.
            // - Neither is warm (both sides dialled each other at once, after finding each
            //   other through the DHT or PEX): both keep the one dialled by the side with the
            //   smaller peer id, so exactly one survives; closing "the newer one" on each side
            //   could close both, since each may see the other's dial as the newer.
            let keep_outgoing = self.our_id.0 < hs.peer_id.0;
            if !warm && new_outgoing != old_outgoing && new_outgoing == keep_outgoing {
                self.close(old, CloseReason::Duplicate, cx);
            } else {
                duplicate = true;
            }
        }
        let refused = if hs.peer_id == self.our_id {
            Some(CloseReason::SelfConnection)
        } else if hs.info_hash != self.info_hash {
            Some(CloseReason::WrongInfoHash)
        } else {
            duplicate.then_some(CloseReason::Duplicate)
        };
        if let Some(reason) = refused {
            if reason == CloseReason::SelfConnection {
                if let Some(p) = self.peers.get(&conn) {
                    self.peer_list.ban(p.addr);
                }
            }
            self.close(conn, reason.clone(), cx);
            return Err(reason);
        }
        let pieces = self.content.piece_count();
        let have = self.picker.have().clone();
        // Without metadata we have nothing, whatever an empty bitfield says.
        let seed = !self.content.is_fetching() && have.is_full();
        let ext = self.extended_handshake(cx.cfg);
        // Both callers hold the peer, and only another one may have been closed above.
        let p = self.peers.get_mut(&conn).expect("the peer being activated is there");
        if !self.content.is_fetching() {
            // Until the metadata is in, any piece index is remembered, not refused.
            decoder.set_piece_count(pieces);
        }
        let a = ActivePeer::new(&hs, decoder, pieces, RequestQueue::new(cx.cfg, cx.now), cx.now);
        let (extended, fast) = (a.extended, a.fast);
        p.state = PeerState::Active(Box::new(a));
        let ch = &mut p.ch;
        let was_empty = ch.outbuf.is_empty();
        if extended {
            ch.send(&Message::Extended { id: 0, payload: ext.encode() }, cx.now);
        }
        if fast && seed {
            ch.send(&Message::HaveAll, cx.now);
        } else if fast && have.count_ones() == 0 {
            ch.send(&Message::HaveNone, cx.now);
        } else if have.count_ones() > 0 {
            ch.send(&Message::Bitfield(have.as_bytes().to_vec()), cx.now);
        }
        mark(&mut self.dirty, conn, was_empty);
        let (addr, outgoing) = (p.addr, p.outgoing);
        self.peer_list.handshaken(addr, outgoing);
        Ok(())
    }

    /// Our extended handshake (BEP 10): the extensions we speak and what peers should know.
    pub(super) fn extended_handshake(&self, cfg: &Config) -> ExtendedHandshake {
        let known = !self.content.is_fetching();
        let mut m = BTreeMap::from([(UT_METADATA.to_owned(), OUR_UT_METADATA)]);
        if self.pex_allowed() {
            m.insert(UT_PEX.to_owned(), OUR_UT_PEX);
        }
        if cfg.holepunch_on() {
            m.insert(UT_HOLEPUNCH.to_owned(), OUR_UT_HOLEPUNCH);
        }
        ExtendedHandshake {
            v: Some(cfg.client_name.clone()),
            p: Some(cfg.listen_port),
            reqq: Some(cfg.max_peer_requests as u32),
            // BEP 21: a seed says so, and other seeds need not stay connected to it.
            upload_only: (known && self.picker.have().is_full()).then_some(true),
            m,
            metadata_size: self.content.meta().map(|m| m.info_bytes.len() as u64),
            e: cfg.encryption.accepts_encrypted().then_some(true),
            ..Default::default()
        }
    }

    pub(crate) fn on_data(&mut self, conn: ConnId, data: &[u8], cx: &mut Ctx<'_>) {
        let Some(p) = self.peers.get_mut(&conn) else { return };
        p.ch.last_recv = cx.now;
        // Whole messages are decoded straight from `data`; the decoder keeps only a partial
        // tail (one copy less of every block received).
        let mut input = data;
        if let PeerState::Handshaking { decoder, .. } = &mut p.state {
            decoder.feed(input);
            input = &[];
            // `take` consumes the decoder; an empty one stands in until the peer is active.
            let fresh = HandshakeDecoder::new(cx.cfg.wire_limits);
            match std::mem::replace(decoder, fresh).take() {
                Ok(HandshakeStep::Pending(d)) => {
                    *decoder = d;
                    return;
                }
                Ok(HandshakeStep::Done(hs, decoder)) => {
                    if self.activate(conn, hs, decoder, cx).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    self.close(conn, e.into(), cx);
                    return;
                }
            }
        }
        loop {
            let next = match self.peers.get_mut(&conn).and_then(Peer::active_mut) {
                Some((_, a)) => a.decoder.next_from(&mut input),
                None => return,
            };
            match next {
                // A block straight from the received bytes: copied once, into its piece.
                Ok(Some(Decoded::Block { piece, offset, data })) => {
                    if let Some((_, a)) = self.peers.get_mut(&conn).and_then(Peer::active_mut) {
                        a.got_first_message = true;
                        a.spoke = true;
                        let block = BlockRef { piece, offset, len: data.len() as u32 };
                        self.on_block(conn, block, data, cx);
                    }
                }
                Ok(Some(Decoded::Message(msg))) => {
                    if let (Some((_, a)), false) =
                        (self.peers.get_mut(&conn).and_then(Peer::active_mut), matches!(msg, Message::KeepAlive))
                    {
                        a.spoke = true;
                    }
                    self.on_message(conn, msg, cx)
                }
                Ok(None) => break,
                Err(e) => {
                    self.close(conn, e.into(), cx);
                    return;
                }
            }
        }
        self.fill_requests(conn, cx);
    }

    pub(crate) fn on_sent(&mut self, conn: ConnId, n: u64, cx: &mut Ctx<'_>) {
        let Some(p) = self.peers.get_mut(&conn) else { return };
        let ch = &mut p.ch;
        ch.send_queued = ch.send_queued.saturating_sub(n);
        ch.send_window = ch.send_window.saturating_add(n).min(cx.cfg.max_send_buffer.max(cx.cfg.min_send_buffer));
        // The rate that sizes its backlog is what the socket really took, not what we queued.
        ch.ul.add(n);
        self.serve_requests(conn, cx);
    }

    /// The runtime reports the connection gone, and why.
    pub(crate) fn on_closed(&mut self, conn: ConnId, reason: CloseReason, cx: &mut Ctx<'_>) {
        self.drop_peer(conn, reason, cx);
    }

    /// Closes a connection from our side.
    pub(super) fn close(&mut self, conn: ConnId, reason: CloseReason, cx: &mut Ctx<'_>) {
        if self.drop_peer(conn, reason.clone(), cx) {
            cx.out.push(Output::Peer(PeerIo::Close { conn, reason }));
            self.events.push(TorrentEvent::Closed(conn));
        }
    }

    /// Closes every connection of the torrent, for `reason`.
    pub(crate) fn close_all(&mut self, reason: CloseReason, cx: &mut Ctx<'_>) {
        let conns: Vec<ConnId> = self.peers.keys().copied().collect();
        for conn in conns {
            self.close(conn, reason.clone(), cx);
        }
        // Partly received pieces go with their peers.
        for buf in self.download.drop_partial(&mut self.picker) {
            cx.limits.recycle(buf);
        }
    }

    /// Forgets a peer (its availability, its requests, its slot) and tells the application
    /// why it went. True if it existed.
    pub(super) fn drop_peer(&mut self, conn: ConnId, reason: CloseReason, cx: &mut Ctx<'_>) -> bool {
        let Some(p) = self.peers.remove(&conn) else { return false };
        cx.out.event(Event::PeerClosed { torrent: self.id, addr: p.addr, reason });
        if p.is_dialing() {
            // Counted when it was dialled (checked by `Engine::check_invariants`).
            cx.limits.half_open -= 1;
        }
        if let Some(a) = p.active() {
            self.picker.peer_gone(conn, &a.have, a.counted_as_seed);
        }
        self.choker.peer_gone(conn);
        if let Some(phase) = self.content.fetching_mut() {
            phase.fetch.peer_gone(conn);
        }
        let peers = &self.peers;
        self.peer_list.disconnected(conn, p.addr, p.is_active(), cx.now, |a| addr_in_use(peers, a));
        true
    }

    // ---- choking ----

    pub(super) fn choke(&mut self, conn: ConnId, now: Instant) {
        let Some((ch, a)) = self.peers.get_mut(&conn).and_then(Peer::active_mut) else { return };
        if a.am_choking {
            return;
        }
        a.am_choking = true;
        let was_empty = ch.send(&Message::Choke, now);
        // Blocks read but held back by the upload limit are not sent to a choked peer either.
        let queued = a.upload.choke();
        if a.fast {
            for b in queued {
                ch.send(&Message::Reject(b), now);
            }
        }
        mark(&mut self.dirty, conn, was_empty);
    }

    pub(super) fn unchoke(&mut self, conn: ConnId, now: Instant) {
        let Some((ch, a)) = self.peers.get_mut(&conn).and_then(Peer::active_mut) else { return };
        if a.am_choking {
            a.am_choking = false;
            mark(&mut self.dirty, conn, ch.send(&Message::Unchoke, now));
        }
    }

    /// Unchokes a newly interested peer at once if a slot is free, instead of at the next rechoke.
    pub(super) fn quick_unchoke(&mut self, conn: ConnId, now: Instant, cfg: &Config) {
        if self.content.is_fetching() {
            return; // nothing to upload yet
        }
        let unchoked = self.peers.values().filter_map(Peer::active).filter(|a| !a.am_choking).count();
        if unchoked < cfg.upload_slots {
            self.unchoke(conn, now);
        }
    }

    pub(super) fn rechoke(&mut self, now: Instant) {
        let stats: Vec<ChokeStats> = self
            .peers
            .iter()
            .filter_map(|(c, p)| {
                let a = p.active()?;
                Some(ChokeStats {
                    conn: *c,
                    interested: a.peer_interested,
                    download_rate: p.ch.dl.get(),
                    upload_rate: p.ch.ul.get(),
                    snubbed: a.snubbed,
                    unchoked: !a.am_choking,
                })
            })
            .collect();
        let seeding = self.picker.is_finished();
        let unchoke = self.choker.rechoke(now, &stats, seeding);
        for s in stats {
            if unchoke.contains(&s.conn) {
                self.unchoke(s.conn, now);
            } else {
                self.choke(s.conn, now);
            }
        }
    }
}
