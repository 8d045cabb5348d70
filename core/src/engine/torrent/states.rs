//! A torrent's state changes: checking existing data, pause, resume, recheck, removal,
//! priorities and finishing.

use std::time::Duration;

use rand::Rng;

use super::check::{Checker, Verified};
use crate::engine::close_reason::CloseReason;
use crate::engine::ctx::Ctx;
use crate::engine::event::{Event, TorrentError};
use crate::engine::limits::SessionLimits;
use crate::engine::output::{DiskJob, DiskJobKind, Output};
use crate::engine::params::FilePriority;
use crate::picker::Picker;
use crate::types::ConnId;
use crate::wire::Message;

use super::{mark, priority_of, State, Torrent};

impl Torrent {
    // ---- state changes ----

    /// Queues a check of existing data; the engine starts it (`begin_check`) when a slot is free.
    pub(super) fn start_check(&mut self, limits: &mut SessionLimits) {
        if !matches!(self.state, State::CheckQueued { .. }) {
            self.state = State::CheckQueued { ticket: limits.queue_check() };
        }
    }

    /// The ticket of a torrent waiting to check, if it is waiting.
    pub fn check_ticket(&self) -> Option<u64> {
        match self.state {
            State::CheckQueued { ticket } => Some(ticket),
            _ => None,
        }
    }

    /// Whether it is checking existing data now (holding a check slot).
    pub fn is_checking(&self) -> bool {
        matches!(self.state, State::Checking { .. })
    }

    /// Starts the queued check: the engine has given it a slot.
    pub fn begin_check(&mut self, cx: &mut Ctx<'_>) {
        if !matches!(self.state, State::CheckQueued { .. }) {
            return;
        }
        // A new checker: results of an earlier, interrupted check do not count in this one.
        self.state = State::Checking(Checker::new(self.meta.info.piece_count()));
        self.check_more(cx);
    }

    pub(super) fn start_active(&mut self, cx: &mut Ctx<'_>) {
        self.leave_check_states(cx.limits);
        self.state = State::Active;
        // Back-off from before a pause or check was about our own closing, not the peers.
        self.peer_list.reset_backoff(cx.now);
        self.trackers.start(cx.now);
        self.update_finished(cx);
    }

    pub fn pause(&mut self, cx: &mut Ctx<'_>) {
        let needs_check = match self.state {
            State::Removing { .. } | State::Paused { .. } => return,
            State::Checking { .. } | State::CheckQueued { .. } => true,
            _ => false,
        };
        self.close_all(CloseReason::TorrentPaused, cx);
        self.trackers.stop(cx.now);
        self.leave_check_states(cx.limits);
        self.state = State::Paused { needs_check };
    }

    /// Tells the engine a check slot may have come free (or the queue changed); cheap to call.
    pub(super) fn leave_check_states(&mut self, limits: &mut SessionLimits) {
        if matches!(self.state, State::Checking { .. } | State::CheckQueued { .. }) {
            limits.checks_changed = true;
        }
    }

    pub fn resume(&mut self, cx: &mut Ctx<'_>) {
        match self.state {
            State::Paused { needs_check: true } => self.start_check(cx.limits),
            State::Paused { needs_check: false } | State::Error(_) => self.start_active(cx),
            _ => {}
        }
    }

    pub fn recheck(&mut self, cx: &mut Ctx<'_>) {
        if matches!(self.state, State::Removing { .. }) || self.fetching.is_some() {
            return;
        }
        self.close_all(CloseReason::TorrentChecking, cx);
        let info = &self.meta.info;
        let (sequential, deadline) = (self.picker.is_sequential(), self.picker.deadline_piece());
        self.picker = Picker::new(info.piece_count(), info.piece_length, info.total_length, self.rng.random());
        self.picker.set_sequential(sequential);
        self.picker.set_deadline_piece(deadline);
        self.apply_priorities(0..info.piece_count());
        self.finished = false;
        // Jobs in flight belong to the old picker: forget them so their results are ignored.
        self.download.reset();
        // A running check gives up its slot and queues again; a queued one keeps its place.
        if self.is_checking() {
            self.leave_check_states(cx.limits);
            self.state = State::Paused { needs_check: true };
        }
        self.start_check(cx.limits);
    }

    pub fn remove(&mut self, cx: &mut Ctx<'_>) {
        if matches!(self.state, State::Removing { .. }) {
            return;
        }
        self.close_all(CloseReason::TorrentRemoved, cx);
        self.trackers.stop(cx.now);
        self.leave_check_states(cx.limits);
        self.state = State::Removing { deadline: cx.now + Duration::from_secs(5) };
    }

    pub fn is_removing(&self) -> bool {
        matches!(self.state, State::Removing { .. })
    }

    /// Removed, done saying goodbye to trackers, and no piece write still under way (its files
    /// may be deleted next: a late write would bring one back).
    pub fn is_removable(&self) -> bool {
        matches!(self.state, State::Removing { .. }) && !self.download.has_jobs() && self.trackers.is_idle()
    }

    pub(super) fn fail(&mut self, error: TorrentError, cx: &mut Ctx<'_>) {
        if matches!(self.state, State::Removing { .. } | State::Error(_)) {
            return;
        }
        self.close_all(CloseReason::TorrentFailed, cx);
        self.trackers.stop(cx.now);
        cx.out.event(Event::Error { torrent: self.id, error: error.clone() });
        self.leave_check_states(cx.limits);
        self.state = State::Error(error);
    }

    pub fn set_file_priority(&mut self, file: usize, p: FilePriority, cx: &mut Ctx<'_>) {
        if file >= self.file_priorities.len() {
            return;
        }
        self.file_priorities[file] = p;
        self.apply_priorities(self.layout.file_pieces(file));
        let conns: Vec<ConnId> = self.peers.keys().copied().collect();
        for conn in conns {
            self.update_interest(conn, cx.now);
            self.fill_requests(conn, cx);
        }
        self.update_finished(cx);
    }

    /// Sets (or clears) the piece a stream reads next and asks every peer for its window now.
    pub fn set_deadline_piece(&mut self, piece: Option<u32>, cx: &mut Ctx<'_>) {
        let moved = piece != self.picker.deadline_piece();
        self.picker.set_deadline_piece(piece);
        // A seek: the new position is not being fetched yet, and the peers' queues hold up to
        // two seconds of other blocks that they would send first. Cancel those, so the blocks
        // at the read position come next (a block already on its way is simply dropped).
        if let Some(d) = piece.filter(|&d| moved && !self.picker.have().get(d) && !self.download.is_receiving(d)) {
            let window = self.picker.deadline_window();
            let conns: Vec<ConnId> = self.peers.keys().copied().collect();
            for conn in conns {
                let Some(p) = self.peers.get_mut(&conn) else { continue };
                if !p.is_active() || !(p.counted_as_seed || p.have.get(d)) {
                    continue;
                }
                let (keep, cancel): (Vec<_>, Vec<_>) =
                    std::mem::take(&mut p.requests).into_iter().partition(|(b, _)| window.contains(&b.piece));
                p.requests = keep;
                let mut wake = false;
                for (b, _) in cancel {
                    wake |= p.send(&Message::Cancel(b), cx.now);
                    self.picker.request_failed(conn, b);
                }
                mark(&mut self.dirty, conn, wake);
            }
        }
        self.fill_all(cx);
    }

    /// Recomputes piece priorities: a piece gets the highest priority of the files it touches.
    pub(super) fn apply_priorities(&mut self, pieces: std::ops::Range<u32>) {
        let mut spans = Vec::new();
        for piece in pieces {
            spans.clear();
            let plen = self.meta.info.piece_length as u64;
            self.layout.spans(piece as u64 * plen, self.picker.piece_size(piece), &mut spans);
            let best = spans
                .iter()
                .filter(|s| !s.pad)
                .map(|s| self.file_priorities.get(s.file as usize).copied().unwrap_or_default())
                .max()
                .unwrap_or(FilePriority::Skip);
            self.picker.set_priority(piece, priority_of(best));
        }
    }

    pub(super) fn update_finished(&mut self, cx: &mut Ctx<'_>) {
        if self.fetching.is_some() {
            // No pieces known yet is not "every piece had".
            return;
        }
        let done = self.picker.is_finished();
        if !done {
            self.finished = false;
        } else if !self.finished && self.state == State::Active {
            // Set only when announced: a piece that completes while the torrent is in error
            // (a write that was under way) is announced when it resumes, not never.
            self.finished = true;
            self.on_finished(cx);
        }
    }

    pub(super) fn on_finished(&mut self, cx: &mut Ctx<'_>) {
        if self.downloaded > 0 {
            self.trackers.completed(cx.now);
        }
        cx.out.event(Event::Finished { torrent: self.id });
        let conns: Vec<ConnId> = self.peers.keys().copied().collect();
        for conn in conns {
            let Some(p) = self.peers.get_mut(&conn) else { continue };
            if !p.is_active() {
                continue;
            }
            for (b, _) in std::mem::take(&mut p.requests) {
                // Finished with requests out means the rest was skipped: should the user want
                // it again, the picker must not count these as still on their way.
                self.picker.request_failed(conn, b);
                mark(&mut self.dirty, conn, p.send(&Message::Cancel(b), cx.now));
            }
            if p.am_interested {
                p.am_interested = false;
                mark(&mut self.dirty, conn, p.send(&Message::NotInterested, cx.now));
            }
            if p.is_seed() && self.picker.have().is_full() {
                self.close(conn, CloseReason::NotUseful, cx);
            }
        }
    }

    // ---- checking existing data ----

    pub(super) fn check_more(&mut self, cx: &mut Ctx<'_>) {
        let State::Checking(check) = &mut self.state else { return };
        let total = self.meta.info.piece_count();
        while let Some(piece) = check.next_piece(cx.cfg.max_check_jobs, self.picker.have()) {
            let Some(expected) = self.meta.info.piece_hash(piece).copied() else { continue };
            let spans = self.layout.piece_spans(piece, self.picker.piece_size(piece));
            let id = cx.out.job(self.id);
            check.started(id, piece);
            cx.out.push(Output::Disk(DiskJob {
                id,
                torrent: self.id,
                kind: DiskJobKind::Verify { piece, spans, expected },
            }));
        }
        if check.is_done() {
            // Nothing was left to check (no piece had a hash): done without a result to wait for.
            cx.out.event(Event::Checked { torrent: self.id, have: self.picker.have().count_ones(), total });
            self.start_active(cx);
        }
    }

    pub(super) fn on_verified(&mut self, verified: Verified, ok: bool, cx: &mut Ctx<'_>) {
        let total = self.meta.info.piece_count();
        let Verified { piece, checked, done } = verified;
        if ok {
            self.picker.set_have(piece);
        }
        if checked % 64 == 0 || done {
            cx.out.event(Event::CheckProgress { torrent: self.id, checked, total });
        }
        if done {
            cx.out.event(Event::Checked { torrent: self.id, have: self.picker.have().count_ones(), total });
            self.start_active(cx);
        } else {
            self.check_more(cx);
        }
    }
}
