//! The session-wide budgets every torrent draws from: dial slots, check slots, the rate limits
//! (with the peers and torrents waiting for tokens) and the pool of spare piece buffers.

use std::collections::{BTreeSet, VecDeque};

use crate::rate::TokenBucket;
use crate::types::{ConnId, TorrentId};

/// What the torrents of one session share, handed out by the schedulers in `engine/sched.rs`.
pub(crate) struct SessionLimits {
    /// Connection attempts in progress over all torrents.
    pub(super) half_open: usize,
    /// Connections torrents may still dial before [`Config::max_connections`] is reached;
    /// set before each round of `connect_more`.
    ///
    /// [`Config::max_connections`]: super::config::Config::max_connections
    pub(super) conn_room: usize,
    /// Last ticket of the check queue handed out (first come, first served).
    last_check_ticket: u64,
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
    spare: Vec<Vec<u8>>,
}

/// Most bytes of spare piece buffers kept.
const SPARE_BYTES: usize = 4 << 20;

impl SessionLimits {
    /// Nothing handed out yet, under the global rate limits `up` and `down`.
    pub(super) fn new(up: TokenBucket, down: TokenBucket) -> SessionLimits {
        SessionLimits {
            half_open: 0,
            conn_room: 0,
            last_check_ticket: 0,
            checks_changed: false,
            up,
            down,
            up_waiting: VecDeque::new(),
            down_starved: BTreeSet::new(),
            down_cursor: TorrentId(0),
            spare: Vec::new(),
        }
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

    /// A place in the check queue, and a note that check slots must be handed out again.
    pub(super) fn queue_check(&mut self) -> u64 {
        self.checks_changed = true;
        self.last_check_ticket += 1;
        self.last_check_ticket
    }
}
