//! The output queue and the session-wide budgets (ids, half-open dials, check slots, rate
//! limits, spare piece buffers) that every torrent of the engine writes into.

use std::collections::{BTreeSet, HashMap, VecDeque};

use super::event::Event;
use super::output::Output;
use crate::rate::TokenBucket;
use crate::types::{ConnId, JobId, TorrentId};

/// Output queue and id allocation shared by every torrent of the engine.
pub(crate) struct Io {
    pub(super) queue: VecDeque<Output>,
    pub(super) next_id: u64,
    /// Which torrent each outstanding job belongs to.
    pub(super) jobs: HashMap<JobId, TorrentId>,
    /// Connections closed by a torrent, for the engine's routing table.
    pub(super) closed: Vec<ConnId>,
    /// Connection attempts in progress over all torrents.
    pub(super) half_open: usize,
    /// Connections torrents may still dial before [`Config::max_connections`] is reached;
    /// set before each round of `connect_more`.
    pub(super) conn_room: usize,
    /// Next ticket of the check queue (first come, first served).
    pub(super) next_check_ticket: u64,
    /// A torrent entered or left the check queue or a check: slots must be handed out again.
    pub(super) checks_changed: bool,
    /// The global upload limit.
    pub(super) up: TokenBucket,
    /// The global download limit (spent on requests).
    pub(super) down: TokenBucket,
    /// Peers with blocks waiting for upload tokens, served round-robin one block at a time.
    pub(super) up_waiting: VecDeque<(TorrentId, ConnId)>,
    /// Torrents that wanted to request blocks but had no download tokens.
    pub(super) down_starved: BTreeSet<TorrentId>,
    /// The torrent served last from `down_starved` (the next wake starts after it).
    pub(super) down_cursor: TorrentId,
    /// Piece buffers back from finished jobs, reused for the next pieces: filling a fresh
    /// buffer with zeros (or faulting in fresh pages) costs as much as receiving into it.
    pub(super) spare: Vec<Vec<u8>>,
}

/// Most bytes of spare piece buffers kept.
const SPARE_BYTES: usize = 4 << 20;

impl Io {
    /// An empty queue under the global rate limits `up` and `down`.
    pub(super) fn new(up: TokenBucket, down: TokenBucket) -> Io {
        Io {
            queue: VecDeque::new(),
            next_id: 1,
            jobs: HashMap::new(),
            closed: Vec::new(),
            half_open: 0,
            conn_room: 0,
            next_check_ticket: 0,
            checks_changed: false,
            up,
            down,
            up_waiting: VecDeque::new(),
            down_starved: BTreeSet::new(),
            down_cursor: TorrentId(0),
            spare: Vec::new(),
        }
    }

    /// An empty queue with no rate limits, for unit tests of the parts that write into it.
    #[cfg(test)]
    pub(super) fn unlimited(now: crate::types::Instant) -> Io {
        Io::new(TokenBucket::new(0, now), TokenBucket::new(0, now))
    }

    pub(super) fn push(&mut self, o: Output) {
        self.queue.push_back(o);
    }

    pub(super) fn event(&mut self, e: Event) {
        self.queue.push_back(Output::Event(e));
    }

    pub(super) fn job(&mut self, torrent: TorrentId) -> JobId {
        let id = JobId(self.next_id);
        self.next_id += 1;
        self.jobs.insert(id, torrent);
        id
    }

    /// A buffer of `size` bytes for a piece being received; its contents are stale (every
    /// byte is overwritten by the piece's blocks before it is hashed).
    pub(super) fn piece_buffer(&mut self, size: usize) -> Vec<u8> {
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.resize(size, 0);
        buf
    }

    /// Keeps a piece buffer a job handed back, within [`SPARE_BYTES`].
    pub(super) fn recycle(&mut self, buf: Vec<u8>) {
        let kept: usize = self.spare.iter().map(|b| b.capacity()).sum();
        if buf.capacity() > 0 && kept + buf.capacity() <= SPARE_BYTES {
            self.spare.push(buf);
        }
    }

    /// Records that a torrent waits for download tokens.
    pub(super) fn starve(&mut self, torrent: TorrentId) {
        self.down_starved.insert(torrent);
    }

    /// Queues a peer for upload tokens (the caller keeps it from being queued twice).
    pub(super) fn wait_for_upload(&mut self, torrent: TorrentId, conn: ConnId) {
        self.up_waiting.push_back((torrent, conn));
    }

    pub(super) fn check_ticket(&mut self) -> u64 {
        self.next_check_ticket += 1;
        self.next_check_ticket
    }

    pub(super) fn conn(&mut self) -> ConnId {
        let id = ConnId(self.next_id);
        self.next_id += 1;
        id
    }
}
