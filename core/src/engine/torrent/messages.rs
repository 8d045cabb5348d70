//! A torrent's answers to the messages of its active peers, one function per message family:
//! choking and interest, piece announcements, requests to us, blocks to us, and the extension
//! protocol. Each calls into the part that owns the state (picker, [`super::PiecePipeline`],
//! [`super::UploadQueue`], peer list, metadata fetch).

use std::net::SocketAddr;

use super::download::Intake;
use super::holepunch::OUR_UT_HOLEPUNCH;
use super::peer::Peer;
use super::pex::OUR_UT_PEX;
use super::ut_metadata::OUR_UT_METADATA;
use super::{addr_in_use, bad_bitfield, ip_from_bytes, mark, State, Torrent, MAX_REQUEST_LEN};
use crate::bitfield::Bitfield;
use crate::engine::close_reason::{CloseReason, Violation};
use crate::engine::config::Config;
use crate::engine::ctx::Ctx;
use crate::picker::Priority;
use crate::types::{BlockRef, ConnId, Instant};
use crate::wire::{ExtendedHandshake, Message, UT_HOLEPUNCH, UT_METADATA, UT_PEX};

impl Torrent {
    /// Whether we still want a piece (missing, and not skipped).
    pub(super) fn wants(&self, piece: u32) -> bool {
        !self.picker.has(piece) && self.picker.priority(piece) != Priority::Skip
    }

    /// Tells a peer whether we are interested, if that changed.
    pub(super) fn set_interested(&mut self, conn: ConnId, on: bool, now: Instant) {
        let Some((ch, p)) = self.peers.get_mut(&conn).and_then(Peer::active_mut) else { return };
        if p.am_interested != on {
            p.am_interested = on;
            let msg = if on { Message::Interested } else { Message::NotInterested };
            mark(&mut self.dirty, conn, ch.send(&msg, now));
        }
    }

    /// Full recomputation of our interest in a peer (after a bitfield or a priority change).
    pub(super) fn update_interest(&mut self, conn: ConnId, now: Instant) {
        let Some(p) = self.peers.get(&conn).and_then(Peer::active) else { return };
        let on =
            if p.is_seed() { !self.picker.is_finished() } else { p.have.iter_ones().any(|piece| self.wants(piece)) };
        self.set_interested(conn, on, now);
    }

    /// A message from an active peer: routed to the handler of its family.
    pub(super) fn on_message(&mut self, conn: ConnId, msg: Message, cx: &mut Ctx<'_>) {
        if self.content.is_fetching()
            && matches!(msg, Message::Bitfield(_) | Message::Have { .. } | Message::HaveAll | Message::HaveNone)
        {
            return self.record_early(conn, msg, cx);
        }
        let Some((_, p)) = self.peers.get_mut(&conn).and_then(Peer::active_mut) else { return };
        // The bitfield must come before other messages; extension messages may precede it.
        let first = !p.got_first_message;
        if !matches!(msg, Message::Extended { .. } | Message::KeepAlive) {
            p.got_first_message = true;
        }
        match msg {
            Message::KeepAlive | Message::Port(_) | Message::Suggest { .. } | Message::AllowedFast { .. } => {}
            Message::Choke | Message::Unchoke | Message::Interested | Message::NotInterested => {
                self.on_choke_message(conn, msg, cx.now, cx.cfg);
            }
            Message::Have { .. } | Message::Bitfield(_) | Message::HaveAll | Message::HaveNone => {
                self.on_pieces_message(conn, msg, first, cx);
            }
            Message::Request(b) => self.on_request(conn, b, cx),
            Message::Piece { piece, offset, data } => {
                let block = BlockRef { piece, offset, len: data.len() as u32 };
                self.on_block(conn, block, &data, cx);
            }
            Message::Cancel(b) => self.on_cancel(conn, b, cx.now),
            Message::Reject(b) => self.on_reject(conn, b),
            Message::Extended { id: 0, payload } => self.on_extended_handshake(conn, &payload, cx.now, cx.cfg),
            Message::Extended { id: OUR_UT_METADATA, payload } => self.on_ut_metadata(conn, &payload, cx),
            Message::Extended { id: OUR_UT_PEX, payload } => self.on_ut_pex(conn, &payload, cx),
            Message::Extended { id: OUR_UT_HOLEPUNCH, payload } if cx.cfg.holepunch_on() => {
                self.on_ut_holepunch(conn, &payload, cx)
            }
            Message::Extended { .. } => {}
        }
    }

    /// CHOKE, UNCHOKE, INTERESTED, NOT_INTERESTED.
    fn on_choke_message(&mut self, conn: ConnId, msg: Message, now: Instant, cfg: &Config) {
        let Some((_, p)) = self.peers.get_mut(&conn).and_then(Peer::active_mut) else { return };
        match msg {
            Message::Choke => {
                p.peer_choking = true;
                for (b, _) in std::mem::take(&mut p.requests) {
                    self.picker.request_failed(conn, b);
                    // Under the fast extension a choke does not cancel requests (BEP 6): the
                    // peer rejects each, or may still send it.
                    if p.fast {
                        p.release_request(b);
                    }
                }
            }
            Message::Unchoke => {
                // The wait for a block starts at the unchoke, not at every repeat of it (a
                // peer that repeats UNCHOKE and sends nothing must still be found out).
                if p.peer_choking {
                    p.peer_choking = false;
                    p.last_block = now;
                }
            }
            Message::Interested => {
                p.peer_interested = true;
                self.quick_unchoke(conn, now, cfg);
            }
            Message::NotInterested => {
                p.peer_interested = false;
                if !p.am_choking {
                    self.choke(conn, now);
                }
            }
            _ => unreachable!("on_message routes only choke and interest messages here"),
        }
    }

    /// HAVE, BITFIELD, HAVE_ALL, HAVE_NONE. `first`: it is the peer's first message (after
    /// extension messages), where a bitfield must come.
    fn on_pieces_message(&mut self, conn: ConnId, msg: Message, first: bool, cx: &mut Ctx<'_>) {
        let Some((ch, p)) = self.peers.get_mut(&conn).and_then(Peer::active_mut) else { return };
        match msg {
            Message::Have { piece } => {
                if p.have.set(piece, true) {
                    ch.announced.add(self.picker.piece_size(piece) as u64);
                    if !p.counted_as_seed {
                        self.picker.peer_has_piece(piece);
                    }
                    if !p.am_interested && self.wants(piece) {
                        self.set_interested(conn, true, cx.now);
                    }
                }
            }
            Message::Bitfield(bytes) => {
                let pieces = self.content.piece_count();
                let Some(bf) = Bitfield::from_bytes(&bytes, pieces) else {
                    return self.close(conn, bad_bitfield(bytes.len(), pieces), cx);
                };
                if first {
                    if bf.is_full() {
                        p.counted_as_seed = true;
                        self.picker.peer_has_all();
                    } else {
                        self.picker.peer_bitfield(&bf);
                    }
                    p.have = bf;
                } else {
                    // aria2 sends HAVE_NONE, HAVEs, then a late BITFIELD: merge it like HAVEs.
                    self.merge_pieces(conn, bf.iter_ones());
                }
                self.after_pieces_known(conn, cx);
            }
            Message::HaveAll | Message::HaveNone if !p.fast => self.close(conn, Violation::NotFast.into(), cx),
            Message::HaveAll if first => {
                p.have = Bitfield::full(self.content.piece_count());
                p.counted_as_seed = true;
                self.picker.peer_has_all();
                self.after_pieces_known(conn, cx);
            }
            Message::HaveAll => {
                let all = 0..self.content.piece_count();
                self.merge_pieces(conn, all);
                self.after_pieces_known(conn, cx);
            }
            Message::HaveNone => {}
            _ => unreachable!("on_message routes only piece announcements here"),
        }
    }

    /// Adds pieces to what a peer has (late bitfields, HAVE_ALL after HAVEs).
    pub(super) fn merge_pieces(&mut self, conn: ConnId, pieces: impl Iterator<Item = u32>) {
        let Some((_, p)) = self.peers.get_mut(&conn).and_then(Peer::active_mut) else { return };
        if p.counted_as_seed {
            return;
        }
        for piece in pieces {
            if p.have.set(piece, true) {
                self.picker.peer_has_piece(piece);
            }
        }
    }

    /// After learning a peer's pieces: drop it if neither side needs the other, else update interest.
    pub(super) fn after_pieces_known(&mut self, conn: ConnId, cx: &mut Ctx<'_>) {
        let Some(p) = self.peers.get(&conn).and_then(Peer::active) else { return };
        if self.picker.have().is_full() && p.is_seed() {
            return self.close(conn, CloseReason::NotUseful, cx);
        }
        self.update_interest(conn, cx.now);
    }

    /// REQUEST: queued for a disk read if we may serve it, rejected (fast extension) if not.
    fn on_request(&mut self, conn: ConnId, b: BlockRef, cx: &mut Ctx<'_>) {
        let size = self.picker.piece_size(b.piece);
        let in_bounds =
            b.len > 0 && b.len <= MAX_REQUEST_LEN && b.offset.checked_add(b.len).is_some_and(|end| end <= size);
        if !in_bounds {
            return self.close(conn, Violation::BadRequest.into(), cx);
        }
        let have = self.picker.has(b.piece);
        let Some((ch, p)) = self.peers.get_mut(&conn).and_then(Peer::active_mut) else { return };
        if !have || p.am_choking || p.upload.waiting() >= cx.cfg.max_peer_requests {
            if p.fast {
                mark(&mut self.dirty, conn, ch.send(&Message::Reject(b), cx.now));
            }
            return;
        }
        p.upload.push(b);
        self.serve_requests(conn, cx);
    }

    /// CANCEL: drops the request wherever it waits; rejected under the fast extension.
    fn on_cancel(&mut self, conn: ConnId, b: BlockRef, now: Instant) {
        let Some((ch, p)) = self.peers.get_mut(&conn).and_then(Peer::active_mut) else { return };
        if p.upload.cancel(&b) && p.fast {
            mark(&mut self.dirty, conn, ch.send(&Message::Reject(b), now));
        }
    }

    /// REJECT: the peer will not send a block we asked for, or one we had given up on.
    fn on_reject(&mut self, conn: ConnId, b: BlockRef) {
        let Some((_, p)) = self.peers.get_mut(&conn).and_then(Peer::active_mut) else { return };
        if p.take_request(&b).is_some() {
            self.picker.request_failed(conn, b);
        } else {
            p.forget_released(&b);
        }
    }

    /// PIECE: a block for us, into its piece's buffer (or counted as wasted).
    pub(super) fn on_block(&mut self, conn: ConnId, block: BlockRef, data: &[u8], cx: &mut Ctx<'_>) {
        let Some((ch, p)) = self.peers.get_mut(&conn).and_then(Peer::active_mut) else { return };
        let len = block.len;
        let asked = match p.take_request(&block) {
            Some(at) => {
                p.queue.on_block(at, cx.now, len, p.max_queue);
                true
            }
            None => false,
        };
        let late = !asked && p.forget_released(&block);
        ch.dl.add(len as u64);
        p.last_block = cx.now;
        if p.snubbed {
            p.snubbed = false;
        }
        self.dl_rate.add(len as u64);
        self.downloaded += len as u64;
        if self.state != State::Active {
            self.wasted += len as u64;
            return;
        }
        // A late block may open a piece buffer only within the memory cap, as a pick may.
        let cap = cx.cfg.max_in_flight_bytes;
        let intake =
            self.download.on_block(&mut self.picker, conn, (block, data), late, cap, |n| cx.limits.piece_buffer(n));
        let Intake::Stored { cancel, complete } = intake else {
            self.wasted += len as u64;
            return;
        };
        for other in cancel {
            if let Some((ch, o)) = self.peers.get_mut(&other).and_then(Peer::active_mut) {
                if o.take_request(&block).is_some() {
                    mark(&mut self.dirty, other, ch.send(&Message::Cancel(block), cx.now));
                }
            }
        }
        if let Some(data) = complete {
            self.hash_piece(block.piece, data, cx);
        }
    }

    /// The extension protocol's handshake (BEP 10): what the peer speaks and tells about itself.
    fn on_extended_handshake(&mut self, conn: ConnId, payload: &[u8], now: Instant, cfg: &Config) {
        let Ok(ext) = ExtendedHandshake::decode(payload) else { return };
        let Some(peer) = self.peers.get_mut(&conn) else { return };
        let (addr, outgoing) = (peer.addr, peer.outgoing);
        let Some((_, p)) = peer.active_mut() else { return };
        p.client = ext.v;
        // A later handshake may update it (a partial seed that finished).
        p.upload_only = ext.upload_only.unwrap_or(false);
        if let Some(q) = ext.reqq {
            p.max_queue = (q as usize).clamp(1, cfg.max_requests_per_peer);
        }
        p.ut_metadata = ext.m.get(UT_METADATA).copied().filter(|id| *id != 0);
        p.ut_pex = ext.m.get(UT_PEX).copied().filter(|id| *id != 0);
        p.ut_holepunch = ext.m.get(UT_HOLEPUNCH).copied().filter(|id| *id != 0);
        p.metadata_size = ext.metadata_size;
        p.listen_port = ext.p.or(p.listen_port);
        p.prefers_encryption = ext.e.unwrap_or(p.prefers_encryption);
        // The address we would dial it at is dialled encrypted again.
        let dial_addr = if outgoing { Some(addr) } else { p.listen_port.map(|port| SocketAddr::new(addr.ip(), port)) };
        if let (Some(a), true) = (dial_addr, p.prefers_encryption) {
            self.peer_list.prefers_encryption(a);
        }
        let own = ext.yourip.as_deref().and_then(ip_from_bytes).map(|ip| ip.to_canonical());
        if let Some(ip) = own {
            self.peer_list.learn_own_ip(ip);
        }
        if let (Some(port), false) = (ext.p, outgoing) {
            // Remember its listening address so we never dial it while connected.
            let peers = &self.peers;
            self.peer_list.listens_on(conn, addr, port, now, |a| addr_in_use(peers, a));
        }
        self.request_metadata(conn, now);
    }
}
