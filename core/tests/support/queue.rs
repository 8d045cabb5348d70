//! What is in flight: events due at an instant, delivered in the order they were queued.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use shoal_core::{ConnId, Instant, JobId, JobResult};

use super::ids::{NodeId, RawId};

/// Something on its way to a node or a hand-driven peer.
pub(super) enum Ev {
    Dial { from: NodeId, conn: ConnId, target: Option<NodeId>, addr: SocketAddr },
    Data { node: NodeId, conn: ConnId, data: Vec<u8> },
    RawData { raw: RawId, data: Vec<u8> },
    Sent { node: NodeId, conn: ConnId, n: usize },
    Closed { node: NodeId, conn: ConnId },
    Job { node: NodeId, job: JobId, result: JobResult },
    Http { node: NodeId, job: JobId, body: Vec<u8> },
    Datagram { node: NodeId, from: SocketAddr, data: Vec<u8> },
    LsdDatagram { node: NodeId, from: SocketAddr, data: Vec<u8> },
}

/// Events by when they are due, ties in the order they were queued.
#[derive(Default)]
pub(super) struct Queue {
    events: BTreeMap<(Instant, u64), Ev>,
    seq: u64,
}

impl Queue {
    /// Queues `ev` to happen at `at` (after everything queued for `at` before it).
    pub(super) fn schedule(&mut self, at: Instant, ev: Ev) {
        self.seq += 1;
        self.events.insert((at, self.seq), ev);
    }

    /// The first event due at or before `now`, taken off the queue.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<Ev> {
        let entry = self.events.first_entry()?;
        (entry.key().0 <= now).then(|| entry.remove())
    }

    /// When the next event is due, if any is queued.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.events.first_key_value().map(|((t, _), _)| *t)
    }
}
