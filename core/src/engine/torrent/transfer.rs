//! A torrent's side of moving blocks, between the wire and its parts: asking peers for blocks
//! as the [`super::download::PiecePipeline`] allows, sending finished pieces to be hashed and
//! written, starting the disk reads a peer's [`super::upload::UploadQueue`] plans, and sending
//! what they return.

use super::download::Finished;
use super::peer::{Peer, INITIAL_SEND_WINDOW};
use super::upload::Framed;
use super::{mark, State, Torrent};
use crate::engine::ctx::Ctx;
use crate::engine::disk_error::DiskError;
use crate::engine::event::Event;
use crate::engine::output::{DiskJob, DiskJobKind, HashJob, Output, PeerIo};
use crate::types::{ConnId, Instant, JobId, BLOCK_SIZE};
use crate::wire::Message;

impl Torrent {
    /// Starts disk reads for a peer's queued requests while its send backlog allows.
    ///
    /// Consecutive requests in one piece share one read: a peer asking for a whole piece costs
    /// one disk job, not sixteen.
    pub(super) fn serve_requests(&mut self, conn: ConnId, cx: &mut Ctx<'_>) {
        let Some((ch, p)) = self.peers.get_mut(&conn).and_then(Peer::active_mut) else { return };
        // Requests are queued only for pieces we have, so only once the files are known.
        let Some(k) = self.content.known() else { return };
        let plen = k.meta.info.piece_length as u64;
        // About a second of data at the rate the peer takes it: a fast peer never waits on a
        // disk round trip, a slow one does not pin megabytes of our memory. The floor is at
        // most a second of our whole upload, so that a slow uplink shared by many peers does
        // not queue a minute of data, and a peer's queue grows only as it takes data.
        let total = self.ul_rate.get();
        let floor =
            if total > 0 { total.clamp(INITIAL_SEND_WINDOW, cx.cfg.min_send_buffer) } else { cx.cfg.min_send_buffer };
        let limit = ch.ul.get().clamp(floor, cx.cfg.max_send_buffer.max(floor)).min(ch.send_window);
        while p.upload_backlog(ch) < limit && self.reads.in_flight() < cx.cfg.max_read_jobs {
            let Some((plan, blocks)) = p.upload.next_read(&k.layout, plen) else { break };
            let id = cx.out.job(self.id);
            self.reads.start(id, conn);
            p.upload.reading(id, plan.range, blocks);
            let kind = DiskJobKind::Read { block: plan.range, len: plan.len, spans: plan.spans };
            cx.out.push(Output::Disk(DiskJob { id, torrent: self.id, kind }));
        }
    }

    /// Sends a complete piece to be hashed (and written, if it matches).
    pub(super) fn hash_piece(&mut self, piece: u32, data: Vec<u8>, cx: &mut Ctx<'_>) {
        let Some((k, expected)) = self.content.known().and_then(|k| Some((k, *k.meta.info.piece_hash(piece)?))) else {
            // Metainfo parsing gives every piece a hash; without one there is nothing to check.
            self.download.discard(&data);
            return cx.limits.recycle(data);
        };
        let write = k.layout.piece_spans(piece, self.picker.piece_size(piece));
        let id = cx.out.job(self.id);
        self.download.hashing(id, piece, &data);
        cx.out.push(Output::Hash(HashJob { id, torrent: self.id, piece, data, expected, write }));
    }

    /// Tops up our request queue to a peer (as far as the download limit allows).
    pub(super) fn fill_requests(&mut self, conn: ConnId, cx: &mut Ctx<'_>) {
        if self.state != State::Active {
            return;
        }
        let Some((ch, p)) = self.peers.get_mut(&conn).and_then(Peer::active_mut) else { return };
        if p.peer_choking || !p.am_interested {
            return;
        }
        let target = if p.snubbed { 1 } else { p.queue.target().min(p.max_queue).max(1) };
        if p.requests.len() >= target {
            return;
        }
        let mut want = target - p.requests.len();
        if cx.limits.down.is_limited() {
            // Requests are paced by the download limit: each asks for up to a block's worth.
            let balance = cx.limits.down.balance(cx.now);
            if balance <= 0 {
                cx.limits.starve(self.id);
                return;
            }
            let blocks = balance.unsigned_abs().div_ceil(u64::from(BLOCK_SIZE));
            want = want.min(usize::try_from(blocks).unwrap_or(usize::MAX));
        }
        let cap = cx.cfg.max_in_flight_bytes;
        let picked = self.download.pick(&mut self.picker, conn, (&p.have, p.counted_as_seed), want, cap);
        if p.requests.is_empty() && !picked.is_empty() {
            p.last_block = cx.now;
            p.queue.asked(cx.now);
        }
        let was_empty = ch.outbuf.is_empty();
        for &b in picked {
            ch.send(&Message::Request(b), cx.now);
            p.requests.push((b, cx.now));
            cx.limits.down.consume(u64::from(b.len));
        }
        if !picked.is_empty() {
            mark(&mut self.dirty, conn, was_empty);
        }
    }

    /// Gives back the `n` requests to `conn` sent last: at its measured rate they would wait
    /// seconds behind the rest, while other peers may send them sooner. The peer is told, so
    /// that it does not spend upload on them; a block it sends anyway is kept if still needed.
    pub(super) fn give_back_requests(&mut self, conn: ConnId, n: usize, now: Instant) {
        let Some((ch, a)) = self.peers.get_mut(&conn).and_then(Peer::active_mut) else { return };
        // Stable: requests sent at one instant keep their order.
        a.requests.sort_by_key(|(_, at)| *at);
        let keep = a.requests.len().saturating_sub(n);
        let mut wake = false;
        for (b, _) in a.requests.split_off(keep) {
            self.picker.request_failed(conn, b);
            wake |= ch.send(&Message::Cancel(b), now);
            a.release_request(b);
        }
        mark(&mut self.dirty, conn, wake);
    }

    pub(super) fn fill_all(&mut self, cx: &mut Ctx<'_>) {
        let conns: Vec<ConnId> = self.peers.keys().copied().collect();
        for conn in conns {
            self.fill_requests(conn, cx);
        }
    }

    /// Download tokens are back after this torrent ran out: top up every peer's queue.
    pub(crate) fn refill_requests(&mut self, cx: &mut Ctx<'_>) {
        self.fill_all(cx);
    }

    /// Sends one block that waited for upload tokens to `conn`; true if more are waiting.
    pub(crate) fn release_upload(&mut self, conn: ConnId, cx: &mut Ctx<'_>) -> bool {
        let Some((ch, p)) = self.peers.get_mut(&conn).and_then(Peer::active_mut) else { return false };
        let Some((b, frame)) = p.upload.release() else { return false };
        cx.limits.up.consume(u64::from(b.len));
        ch.send_queued += frame.len() as u64;
        ch.last_send = cx.now;
        cx.out.push(Output::Peer(PeerIo::Send { conn, data: frame }));
        self.ul_rate.add(u64::from(b.len));
        self.uploaded += u64::from(b.len);
        p.sent_block = true;
        p.upload.has_throttled()
    }

    /// A hash or write job of the download finished.
    pub(super) fn on_download_job(&mut self, done: Finished, cx: &mut Ctx<'_>) {
        match done {
            Finished::NeedsWrite { piece, data } => {
                let size = self.picker.piece_size(piece);
                // A piece is hashed only once the files are known: the spans are never empty.
                let spans = self.content.known().map(|k| k.layout.piece_spans(piece, size)).unwrap_or_default();
                let id = cx.out.job(self.id);
                self.download.writing(id, piece, u64::from(size));
                let kind = DiskJobKind::Write { piece, spans, data };
                cx.out.push(Output::Disk(DiskJob { id, torrent: self.id, kind }));
            }
            Finished::Written { piece, result, data } => self.on_written(piece, result, data, cx),
            Finished::HashFailed { piece, data } => {
                cx.limits.recycle(data);
                self.wasted += self.picker.piece_size(piece) as u64;
                let contributors = self.picker.piece_contributors(piece).to_vec();
                self.picker.hash_failed(piece);
                cx.out.event(Event::HashFailed { torrent: self.id, piece });
                self.punish(&contributors, cx);
                self.fill_all(cx);
            }
            Finished::Lost => {}
        }
    }

    /// An upload read for `conn` finished: its blocks go out, or wait for tokens.
    pub(super) fn on_read(&mut self, job: JobId, conn: ConnId, result: Result<Vec<u8>, DiskError>, cx: &mut Ctx<'_>) {
        // A freed read slot may unblock any peer, not only this one.
        let waiting: Vec<ConnId> = self
            .peers
            .iter()
            .filter(|(c, p)| **c != conn && p.active().is_some_and(|a| a.upload.waiting() > 0))
            .map(|(c, _)| *c)
            .collect();
        for other in waiting {
            self.serve_requests(other, cx);
        }
        let Some((ch, p)) = self.peers.get_mut(&conn).and_then(Peer::active_mut) else { return };
        let Some(framed) = p.upload.on_read(job, result, cx.limits.up.is_limited()) else { return };
        let sent = match framed {
            Ok(Framed::Whole { data, payload }) => {
                // Earlier messages go first.
                if !ch.outbuf.is_empty() {
                    let earlier = std::mem::take(&mut ch.outbuf);
                    ch.send_queued += earlier.len() as u64;
                    cx.out.push(Output::Peer(PeerIo::Send { conn, data: earlier }));
                }
                ch.send_queued += data.len() as u64;
                cx.out.push(Output::Peer(PeerIo::Send { conn, data }));
                payload
            }
            Ok(Framed::Frames(frames)) => {
                let mut out = std::mem::take(&mut ch.outbuf);
                let mut sent = 0u64;
                for (b, frame) in frames {
                    out.extend_from_slice(&frame);
                    sent += b.len as u64;
                }
                ch.send_queued += out.len() as u64;
                cx.out.push(Output::Peer(PeerIo::Send { conn, data: out }));
                sent
            }
            Ok(Framed::Held) => {
                if p.upload.needs_tokens() {
                    cx.limits.wait_for_upload(self.id, conn);
                }
                return self.serve_requests(conn, cx);
            }
            Err(e) => return self.fail(e.into(), cx),
        };
        ch.last_send = cx.now;
        p.sent_block |= sent > 0;
        self.ul_rate.add(sent);
        self.uploaded += sent;
        self.serve_requests(conn, cx);
    }
}
