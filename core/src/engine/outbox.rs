//! The engine's output queue, with the ids it hands out and the route back from each job to
//! the torrent that owns it.

use std::collections::{HashMap, VecDeque};

use super::event::Event;
use super::output::Output;
use crate::types::{ConnId, JobId, TorrentId};

/// What the engine has for the runtime, and the ids that route the runtime's answers back.
#[derive(Default)]
pub(crate) struct Outbox {
    queue: VecDeque<Output>,
    /// Last id handed out: jobs and connections share one sequence.
    last_id: u64,
    /// Which torrent each outstanding job belongs to.
    jobs: HashMap<JobId, TorrentId>,
}

impl Outbox {
    /// Queues an output for the runtime.
    pub(super) fn push(&mut self, o: Output) {
        self.queue.push_back(o);
    }

    /// Queues an event for the application.
    pub(super) fn event(&mut self, e: Event) {
        self.queue.push_back(Output::Event(e));
    }

    /// The next output, oldest first.
    pub(super) fn pop(&mut self) -> Option<Output> {
        self.queue.pop_front()
    }

    /// A new id from the sequence jobs and connections share.
    fn next_id(&mut self) -> u64 {
        self.last_id += 1;
        self.last_id
    }

    /// A new job id whose answer goes to `torrent`.
    pub(super) fn job(&mut self, torrent: TorrentId) -> JobId {
        let id = JobId(self.next_id());
        self.jobs.insert(id, torrent);
        id
    }

    /// A new job id not routed to a torrent (its owner keeps its own routes).
    pub(super) fn unrouted_job(&mut self) -> JobId {
        JobId(self.next_id())
    }

    /// A new connection id.
    pub(super) fn conn(&mut self) -> ConnId {
        ConnId(self.next_id())
    }

    /// The torrent a job belongs to, which keeps the route (a UDP exchange answers many times).
    pub(super) fn owner(&self, job: JobId) -> Option<TorrentId> {
        self.jobs.get(&job).copied()
    }

    /// The torrent a job belongs to, forgetting the route (the job answers once).
    pub(super) fn take_owner(&mut self, job: JobId) -> Option<TorrentId> {
        self.jobs.remove(&job)
    }

    /// Forgets a job's route: its owner ended it.
    pub(super) fn forget_job(&mut self, job: JobId) {
        self.jobs.remove(&job);
    }

    /// Forgets every route to a removed torrent.
    pub(super) fn forget_torrent(&mut self, torrent: TorrentId) {
        self.jobs.retain(|_, owner| *owner != torrent);
    }

    /// Every queued output, for unit tests of the parts that write into the outbox.
    #[cfg(test)]
    pub(super) fn drain(&mut self) -> Vec<Output> {
        self.queue.drain(..).collect()
    }
}
