//! Block-level piece picker: which blocks to request from which peer.
//!
//! Policy, in the order `pick` applies it:
//! 1. the deadline window (`set_deadline_piece`): the deadline piece and the pieces after it,
//!    [`DEADLINE_WINDOW`] in all, in index order;
//! 2. for each priority class, High, then Normal, then Low: first the in-flight (partial)
//!    pieces of that class, to finish what is started; then its untouched pieces, rarest
//!    first with random tie-breaks (or lowest index first in sequential mode);
//! 3. end-game: once every wanted block is requested or received, blocks already outstanding
//!    at other peers, each at no more than [`MAX_REQUESTERS`] peers at once.
//!
//! Cost: untouched pieces live in an array sorted by (class, availability) with bucket
//! boundaries (`order.rs`), so an availability change is O(1) and a pick walks from the
//! rarest piece until it has enough blocks the peer can serve. The walk is bounded by
//! [`WALK_LIMIT`] entries; a peer that has too few of the pieces near the front falls back to
//! one scan of its own bitfield. Per piece the picker keeps about 13 bytes; block state exists
//! only for in-flight pieces (`partial.rs`).
//!
//! Seeds (HAVE_ALL, or a full BITFIELD) are counted apart and never touch per-piece counts.
//! The engine must record, per peer, whether it was registered as a seed (see `peer_gone`),
//! and must ignore a HAVE for a piece the peer already announced.

mod order;
mod partial;

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::bitfield::Bitfield;
use crate::types::{BlockRef, ConnId, BLOCK_SIZE};
use order::{PieceOrder, CLASSES};
use partial::Partial;

/// Pieces, starting at the deadline piece, picked before anything else.
pub const DEADLINE_WINDOW: u32 = 8;

/// Most peers one block is outstanding at during end-game.
pub const MAX_REQUESTERS: u8 = 3;

/// Most entries of the rarest-first order (or of the sequential scan) examined by one pick
/// before it falls back to scanning the peer's bitfield.
pub const WALK_LIMIT: usize = 4096;

/// How much we want a piece; the engine derives it from the priorities of the files the
/// piece overlaps (the highest of them, Skip only if all are Skip).
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub enum Priority {
    /// Not wanted: never requested.
    Skip,
    /// Requested after every Normal and High piece.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Requested before every Normal and Low piece.
    High,
}

impl Priority {
    /// Rank in the pick order (0 first), or `None` for Skip.
    fn class(self) -> Option<u32> {
        match self {
            Priority::High => Some(0),
            Priority::Normal => Some(1),
            Priority::Low => Some(2),
            Priority::Skip => None,
        }
    }
}

/// What `block_received` made of an incoming block.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum BlockOutcome {
    /// Not a block we have outstanding at that peer (not requested, already received, a piece
    /// we have, or not a real block at all): drop the data.
    Unexpected,
    /// Stored as part of its piece.
    Accepted {
        /// Every block of the piece has now arrived: hash it.
        piece_complete: bool,
        /// End-game duplicates of this block still outstanding at these peers: cancel them.
        also_requested_from: Vec<ConnId>,
    },
}

/// Piece and block sizes of one torrent.
#[derive(Copy, Clone, Debug)]
struct Geometry {
    piece_count: u32,
    piece_length: u32,
    last_piece_size: u32,
}

impl Geometry {
    fn piece_size(&self, piece: u32) -> u32 {
        if piece + 1 == self.piece_count {
            self.last_piece_size
        } else {
            self.piece_length
        }
    }

    fn block_count(&self, piece: u32) -> u32 {
        self.piece_size(piece).div_ceil(BLOCK_SIZE)
    }

    /// The block at index `idx` of `piece`; both must be in range.
    fn block(&self, piece: u32, idx: u32) -> BlockRef {
        let offset = idx * BLOCK_SIZE;
        let len = (self.piece_size(piece) - offset).min(BLOCK_SIZE);
        BlockRef { piece, offset, len }
    }

    /// Index of `block` inside its piece, if it is exactly one of the piece's blocks.
    fn block_index(&self, block: BlockRef) -> Option<u32> {
        if block.piece >= self.piece_count || !block.offset.is_multiple_of(BLOCK_SIZE) {
            return None;
        }
        let idx = block.offset / BLOCK_SIZE;
        if idx >= self.block_count(block.piece) || self.block(block.piece, idx) != block {
            return None;
        }
        Some(idx)
    }
}

/// Chooses blocks to request and tracks them until their piece is verified.
#[derive(Clone)]
pub struct Picker {
    geo: Geometry,
    /// Pieces verified on disk.
    have: Bitfield,
    prio: Vec<Priority>,
    /// Number of non-seed peers that have each piece.
    avail: Vec<u32>,
    /// Peers that have every piece.
    seeds: u32,
    /// Wanted pieces, rarest first per class.
    order: PieceOrder,
    /// In-flight pieces, by index.
    partials: BTreeMap<u32, Partial>,
    /// Wanted, not-had pieces per class (High, Normal, Low).
    wanted_by_class: [u32; CLASSES as usize],
    /// Blocks of wanted, not-had pieces that are neither requested nor received.
    free_blocks: u64,
    sequential: bool,
    /// Every piece below it is had or Skip (sequential mode starts its scan here).
    seq_cursor: u32,
    deadline: Option<u32>,
    rng: ChaCha8Rng,
}

fn is_wanted(have: &Bitfield, prio: &[Priority], piece: u32) -> bool {
    !have.get(piece) && prio[piece as usize] != Priority::Skip
}

impl Picker {
    /// A picker for a torrent we have none of, every piece Normal; `seed` drives tie-breaks.
    ///
    /// The sizes must be consistent (metainfo parsing checks this); should they not be, the
    /// last piece is clamped to 1..=`piece_length` bytes rather than panicking.
    pub fn new(piece_count: u32, piece_length: u32, total_length: u64, seed: u64) -> Self {
        let piece_length = piece_length.max(1);
        let before_last = u64::from(piece_count.saturating_sub(1)) * u64::from(piece_length);
        let last_piece_size = total_length.saturating_sub(before_last).clamp(1, u64::from(piece_length)) as u32;
        let geo = Geometry { piece_count, piece_length, last_piece_size };
        let free_blocks = (0..piece_count).map(|p| u64::from(geo.block_count(p))).sum();
        let mut picker = Picker {
            geo,
            have: Bitfield::new(piece_count),
            prio: vec![Priority::Normal; piece_count as usize],
            avail: vec![0; piece_count as usize],
            seeds: 0,
            order: PieceOrder::new(piece_count),
            partials: BTreeMap::new(),
            wanted_by_class: [0, piece_count, 0],
            free_blocks,
            sequential: false,
            seq_cursor: 0,
            deadline: None,
            rng: ChaCha8Rng::seed_from_u64(seed),
        };
        picker.rebuild_order();
        picker
    }

    // ---- pieces -------------------------------------------------------------------------

    /// Size in bytes of `piece` (0 if out of range).
    pub fn piece_size(&self, piece: u32) -> u32 {
        if piece < self.geo.piece_count {
            self.geo.piece_size(piece)
        } else {
            0
        }
    }

    /// Records `piece` as verified on disk (initial check or hash pass); drops its block state.
    pub fn set_have(&mut self, piece: u32) {
        if piece >= self.geo.piece_count || self.have.get(piece) {
            return;
        }
        self.drop_partial(piece);
        if is_wanted(&self.have, &self.prio, piece) {
            self.leave_wanted(piece);
            let class = self.class_of(piece);
            self.order.remove(piece, class, self.avail[piece as usize]);
        }
        self.have.set(piece, true);
    }

    /// Whether `piece` is verified on disk.
    pub fn has(&self, piece: u32) -> bool {
        self.have.get(piece)
    }

    /// The pieces verified on disk.
    pub fn have(&self) -> &Bitfield {
        &self.have
    }

    /// Sets a piece's priority (ignored out of range). Cheap: the order is rebuilt lazily.
    pub fn set_priority(&mut self, piece: u32, p: Priority) {
        if piece >= self.geo.piece_count || self.prio[piece as usize] == p {
            return;
        }
        let was_wanted = is_wanted(&self.have, &self.prio, piece);
        if was_wanted {
            self.leave_wanted(piece);
        }
        self.prio[piece as usize] = p;
        if is_wanted(&self.have, &self.prio, piece) {
            self.enter_wanted(piece);
        }
        if was_wanted || !self.have.get(piece) {
            self.order.mark_stale();
        }
    }

    /// A piece's priority (Skip if out of range).
    pub fn priority(&self, piece: u32) -> Priority {
        self.prio.get(piece as usize).copied().unwrap_or(Priority::Skip)
    }

    /// Pieces wanted (not Skip) and not yet had.
    pub fn wanted_remaining(&self) -> u32 {
        self.wanted_by_class.iter().sum()
    }

    /// True when every wanted piece is had.
    pub fn is_finished(&self) -> bool {
        self.wanted_remaining() == 0
    }

    /// Sequential mode picks the lowest-index wanted pieces first (streaming), still High
    /// before Normal before Low.
    pub fn set_sequential(&mut self, on: bool) {
        self.sequential = on;
    }

    /// Picks the given piece, then the pieces right after it, before anything else.
    pub fn set_deadline_piece(&mut self, piece: Option<u32>) {
        self.deadline = piece.filter(|&p| p < self.geo.piece_count);
    }

    /// Whether sequential mode is on.
    pub fn is_sequential(&self) -> bool {
        self.sequential
    }

    /// The deadline piece, if any.
    pub fn deadline_piece(&self) -> Option<u32> {
        self.deadline
    }

    /// The pieces of the deadline window (empty without a deadline piece).
    pub fn deadline_window(&self) -> std::ops::Range<u32> {
        match self.deadline {
            Some(d) => d..d.saturating_add(DEADLINE_WINDOW).min(self.geo.piece_count),
            None => 0..0,
        }
    }

    // ---- availability -------------------------------------------------------------------

    /// A peer announced `piece` (HAVE).
    pub fn peer_has_piece(&mut self, piece: u32) {
        if piece >= self.geo.piece_count {
            return;
        }
        let old = self.avail[piece as usize];
        let new = old.saturating_add(1);
        self.avail[piece as usize] = new;
        self.availability_changed(piece, old, new);
    }

    /// A peer sent its BITFIELD. A full one counts the peer as a seed (`was_seed` later).
    pub fn peer_bitfield(&mut self, bf: &Bitfield) {
        if bf.len() == self.geo.piece_count && bf.is_full() {
            self.peer_has_all();
            return;
        }
        for piece in bf.iter_ones() {
            self.peer_has_piece(piece);
        }
    }

    /// A peer sent HAVE_ALL: counted as a seed.
    pub fn peer_has_all(&mut self) {
        self.seeds = self.seeds.saturating_add(1);
    }

    /// A peer left: removes its availability (`bf` = what it had announced; `was_seed` = it
    /// was registered through `peer_has_all` or a full `peer_bitfield`) and makes every block
    /// outstanding at it requestable again.
    pub fn peer_gone(&mut self, conn: ConnId, bf: &Bitfield, was_seed: bool) {
        if was_seed {
            self.seeds = self.seeds.saturating_sub(1);
        } else {
            for piece in bf.iter_ones() {
                if piece >= self.geo.piece_count {
                    break;
                }
                let old = self.avail[piece as usize];
                if old > 0 {
                    self.avail[piece as usize] = old - 1;
                    self.availability_changed(piece, old, old - 1);
                }
            }
        }
        let mut emptied = Vec::new();
        for (&piece, part) in self.partials.iter_mut() {
            let freed = part.release_all(conn);
            if is_wanted(&self.have, &self.prio, piece) {
                self.free_blocks += u64::from(freed);
            }
            if part.is_untouched() {
                emptied.push(piece);
            }
        }
        for piece in emptied {
            // An untouched partial counts all its blocks free, like no partial at all.
            self.partials.remove(&piece);
        }
    }

    /// Peers that have `piece`, seeds included.
    pub fn availability(&self, piece: u32) -> u32 {
        self.avail.get(piece as usize).map_or(0, |a| a.saturating_add(self.seeds))
    }

    /// How many full copies of the torrent the connected peers hold together (libtorrent's
    /// "distributed copies"): the integer part is the availability of the rarest piece (seeds
    /// count as full copies), the fraction the share of pieces more available than that. Our
    /// own pieces are not counted. O(pieces); 0 for a torrent without pieces.
    pub fn distributed_copies(&self) -> f32 {
        let Some(&min) = self.avail.iter().min() else {
            return 0.0;
        };
        let above = self.avail.iter().filter(|&&a| a > min).count();
        min.saturating_add(self.seeds) as f32 + above as f32 / self.avail.len() as f32
    }

    // ---- requests -----------------------------------------------------------------------

    /// Appends up to `max_blocks` blocks to request from `conn` (which has `peer_has`, or
    /// everything if `peer_is_seed`) to `out`, and records them as outstanding at `conn`.
    ///
    /// Call it only for peers we are interested in: for a peer with nothing we want it costs
    /// a full scan of its bitfield.
    pub fn pick(
        &mut self,
        conn: ConnId,
        peer_has: &Bitfield,
        peer_is_seed: bool,
        max_blocks: usize,
        out: &mut Vec<BlockRef>,
    ) {
        if max_blocks == 0 || self.is_finished() {
            return;
        }
        if self.order.is_stale() {
            self.rebuild_order();
        }
        let has = |p: u32| peer_is_seed || peer_has.get(p);
        let mut left = max_blocks;

        if self.deadline.is_some() {
            for piece in self.deadline_window() {
                if left == 0 {
                    break;
                }
                if is_wanted(&self.have, &self.prio, piece) && has(piece) {
                    left -= self.take_from(conn, piece, left, out);
                }
            }
        }

        let mut walk_left = WALK_LIMIT;
        if self.sequential {
            while self.seq_cursor < self.geo.piece_count && !is_wanted(&self.have, &self.prio, self.seq_cursor) {
                self.seq_cursor += 1;
            }
        }
        for class in 0..CLASSES {
            if left == 0 {
                break;
            }
            if self.wanted_by_class[class as usize] == 0 {
                continue;
            }
            left -= self.take_from_partials(conn, class, &has, left, out);
            if left > 0 {
                left -= if self.sequential {
                    self.walk_sequential(conn, class, &has, &mut walk_left, left, out)
                } else {
                    self.walk_rarest(conn, class, &has, &mut walk_left, left, out)
                };
            }
        }
        if left > 0 && walk_left == 0 {
            left -= self.scan_peer(conn, peer_has, peer_is_seed, left, out);
        }
        if left > 0 && self.free_blocks == 0 {
            self.take_endgame(conn, &has, left, out);
        }
    }

    /// True when every wanted block is requested or received: picks may duplicate requests.
    pub fn is_endgame(&self) -> bool {
        self.free_blocks == 0 && !self.is_finished()
    }

    /// The request of `block` at `conn` failed (reject, timeout, choke): it becomes
    /// requestable again unless another peer still has it outstanding.
    pub fn request_failed(&mut self, conn: ConnId, block: BlockRef) {
        let Some(idx) = self.geo.block_index(block) else {
            return;
        };
        let Some(part) = self.partials.get_mut(&block.piece) else {
            return;
        };
        if part.release(conn, idx) == Some(true) && is_wanted(&self.have, &self.prio, block.piece) {
            self.free_blocks += 1;
        }
        if part.is_untouched() {
            self.partials.remove(&block.piece);
        }
    }

    /// Records `block` arriving from `conn`. Anything but a block outstanding at `conn` of a
    /// piece we do not have is `Unexpected`.
    pub fn block_received(&mut self, conn: ConnId, block: BlockRef) -> BlockOutcome {
        let Some(idx) = self.geo.block_index(block) else {
            return BlockOutcome::Unexpected;
        };
        if self.have.get(block.piece) {
            return BlockOutcome::Unexpected;
        }
        let Some(part) = self.partials.get_mut(&block.piece) else {
            return BlockOutcome::Unexpected;
        };
        match part.receive(conn, idx) {
            None => BlockOutcome::Unexpected,
            Some(also_requested_from) => {
                BlockOutcome::Accepted { piece_complete: part.is_complete(), also_requested_from }
            }
        }
    }

    /// Records `block` arriving from `conn` after we stopped waiting for it there (see
    /// `request_failed`): accepted if its piece is still wanted and the block not yet
    /// received, wherever else it is outstanding.
    pub fn late_block_received(&mut self, conn: ConnId, block: BlockRef) -> BlockOutcome {
        let Some(idx) = self.geo.block_index(block) else {
            return BlockOutcome::Unexpected;
        };
        if !is_wanted(&self.have, &self.prio, block.piece) {
            return BlockOutcome::Unexpected;
        }
        let geo = self.geo;
        let part = self.partials.entry(block.piece).or_insert_with(|| Partial::new(geo.block_count(block.piece)));
        match part.receive_late(conn, idx) {
            None => BlockOutcome::Unexpected,
            Some((also_requested_from, was_free)) => {
                let piece_complete = part.is_complete();
                if was_free {
                    self.free_blocks -= 1;
                }
                BlockOutcome::Accepted { piece_complete, also_requested_from }
            }
        }
    }

    /// Peers that sent blocks of `piece` (to ban if its hash fails).
    pub fn piece_contributors(&self, piece: u32) -> &[ConnId] {
        self.partials.get(&piece).map_or(&[], |p| p.contributors())
    }

    /// `piece` failed its hash check: every block is requestable again, contributors cleared.
    pub fn hash_failed(&mut self, piece: u32) {
        if piece < self.geo.piece_count && !self.have.get(piece) {
            self.drop_partial(piece);
        }
    }

    /// `piece` passed its hash check and is on disk: same as `set_have`.
    pub fn hash_passed(&mut self, piece: u32) {
        self.set_have(piece);
    }

    /// Forgets everything about `piece` (e.g. its disk write failed): not had, no block state.
    pub fn reset_piece(&mut self, piece: u32) {
        if piece >= self.geo.piece_count {
            return;
        }
        self.drop_partial(piece);
        if self.have.get(piece) {
            self.have.set(piece, false);
            if is_wanted(&self.have, &self.prio, piece) {
                self.enter_wanted(piece);
                let class = self.class_of(piece);
                self.order.insert(piece, class, self.avail[piece as usize]);
            }
        }
    }

    /// Pieces with block state in memory (partly requested or received, or awaiting hashing).
    pub fn in_flight_pieces(&self) -> usize {
        self.partials.len()
    }

    // ---- internals ----------------------------------------------------------------------

    /// Class of a wanted piece. Invariant: callers checked `is_wanted`, so it is not Skip.
    fn class_of(&self, piece: u32) -> u32 {
        self.prio[piece as usize].class().expect("wanted pieces are not Skip")
    }

    /// Free blocks `piece` counts for in `free_blocks` while it is wanted.
    fn free_of(&self, piece: u32) -> u64 {
        u64::from(self.partials.get(&piece).map_or(self.geo.block_count(piece), |p| p.free()))
    }

    /// Counters for a piece that stops being wanted (the order is updated by the caller).
    fn leave_wanted(&mut self, piece: u32) {
        self.free_blocks -= self.free_of(piece);
        self.wanted_by_class[self.class_of(piece) as usize] -= 1;
    }

    /// Counters for a piece that starts being wanted (the order is updated by the caller).
    fn enter_wanted(&mut self, piece: u32) {
        self.free_blocks += self.free_of(piece);
        self.wanted_by_class[self.class_of(piece) as usize] += 1;
        self.seq_cursor = self.seq_cursor.min(piece);
    }

    /// Discards the block state of `piece`; its blocks count as free again.
    fn drop_partial(&mut self, piece: u32) {
        if let Some(part) = self.partials.remove(&piece) {
            if is_wanted(&self.have, &self.prio, piece) {
                self.free_blocks += u64::from(self.geo.block_count(piece) - part.free());
            }
        }
    }

    fn availability_changed(&mut self, piece: u32, old: u32, new: u32) {
        if let Some(class) = self.prio[piece as usize].class() {
            if !self.have.get(piece) {
                self.order.availability_changed(piece, class, old, new);
            }
        }
    }

    fn rebuild_order(&mut self) {
        let (have, prio, avail) = (&self.have, &self.prio, &self.avail);
        self.order.rebuild(
            |p| {
                let class = prio[p as usize].class()?;
                (!have.get(p)).then_some((class, avail[p as usize]))
            },
            &mut self.rng,
        );
    }

    /// Requests up to `max` free blocks of the wanted piece `piece` from `conn`.
    fn take_from(&mut self, conn: ConnId, piece: u32, max: usize, out: &mut Vec<BlockRef>) -> usize {
        let geo = self.geo;
        let part = self.partials.entry(piece).or_insert_with(|| Partial::new(geo.block_count(piece)));
        let taken = part.take_free(conn, max, |idx| out.push(geo.block(piece, idx)));
        if part.is_untouched() {
            self.partials.remove(&piece);
        }
        self.free_blocks -= taken as u64;
        taken
    }

    /// Free blocks of in-flight pieces of `class` that the peer has.
    fn take_from_partials(
        &mut self,
        conn: ConnId,
        class: u32,
        has: &impl Fn(u32) -> bool,
        max: usize,
        out: &mut Vec<BlockRef>,
    ) -> usize {
        let geo = self.geo;
        let mut left = max;
        for (&piece, part) in self.partials.iter_mut() {
            if left == 0 {
                break;
            }
            if part.free() == 0
                || self.have.get(piece)
                || self.prio[piece as usize].class() != Some(class)
                || !has(piece)
            {
                continue;
            }
            left -= part.take_free(conn, left, |idx| out.push(geo.block(piece, idx)));
        }
        self.free_blocks -= (max - left) as u64;
        max - left
    }

    /// Untouched pieces of `class`, rarest first.
    fn walk_rarest(
        &mut self,
        conn: ConnId,
        class: u32,
        has: &impl Fn(u32) -> bool,
        walk_left: &mut usize,
        max: usize,
        out: &mut Vec<BlockRef>,
    ) -> usize {
        let mut left = max;
        // Taking blocks only changes `partials`, never the order, so indices stay valid.
        for i in self.order.class_range(class) {
            if left == 0 || *walk_left == 0 {
                break;
            }
            *walk_left -= 1;
            let piece = self.order.at(i);
            if has(piece) && !self.partials.contains_key(&piece) {
                left -= self.take_from(conn, piece, left, out);
            }
        }
        max - left
    }

    /// Untouched pieces of `class`, lowest index first.
    fn walk_sequential(
        &mut self,
        conn: ConnId,
        class: u32,
        has: &impl Fn(u32) -> bool,
        walk_left: &mut usize,
        max: usize,
        out: &mut Vec<BlockRef>,
    ) -> usize {
        let mut left = max;
        for piece in self.seq_cursor..self.geo.piece_count {
            if left == 0 || *walk_left == 0 {
                break;
            }
            *walk_left -= 1;
            if self.prio[piece as usize].class() == Some(class)
                && !self.have.get(piece)
                && has(piece)
                && !self.partials.contains_key(&piece)
            {
                left -= self.take_from(conn, piece, left, out);
            }
        }
        max - left
    }

    /// Fallback when the bounded walks found too little: every untouched wanted piece the
    /// peer has, in pick order. O(pieces), and only reached for peers with few useful pieces.
    fn scan_peer(
        &mut self,
        conn: ConnId,
        peer_has: &Bitfield,
        peer_is_seed: bool,
        max: usize,
        out: &mut Vec<BlockRef>,
    ) -> usize {
        let n = self.geo.piece_count;
        let candidate = |p: &u32| *p < n && is_wanted(&self.have, &self.prio, *p) && !self.partials.contains_key(p);
        let mut pieces: Vec<u32> = if peer_is_seed {
            (0..n).filter(candidate).collect()
        } else {
            peer_has.iter_ones().filter(candidate).collect()
        };
        if self.sequential {
            // Index order is already there; only the class comes first.
            pieces.sort_by_key(|&p| self.prio[p as usize].class());
        } else {
            pieces.sort_by_key(|&p| self.order.position(p));
        }
        let mut left = max;
        for piece in pieces {
            if left == 0 {
                break;
            }
            left -= self.take_from(conn, piece, left, out);
        }
        max - left
    }

    /// End-game: blocks outstanding at other peers, least-duplicated first.
    fn take_endgame(&mut self, conn: ConnId, has: &impl Fn(u32) -> bool, max: usize, out: &mut Vec<BlockRef>) {
        let geo = self.geo;
        let mut left = max;
        for threshold in 1..MAX_REQUESTERS {
            for (&piece, part) in self.partials.iter_mut() {
                if left == 0 {
                    return;
                }
                if !is_wanted(&self.have, &self.prio, piece) || !has(piece) {
                    continue;
                }
                left -= part.take_duplicates(conn, threshold, left, |idx| out.push(geo.block(piece, idx)));
            }
        }
    }

    /// Recomputes every counter from scratch and compares (tests only).
    #[cfg(test)]
    fn check_invariants(&self) {
        let mut free = 0u64;
        let mut by_class = [0u32; CLASSES as usize];
        for p in 0..self.geo.piece_count {
            if is_wanted(&self.have, &self.prio, p) {
                free += self.free_of(p);
                by_class[self.class_of(p) as usize] += 1;
            }
        }
        assert_eq!(free, self.free_blocks, "free block count");
        assert_eq!(by_class, self.wanted_by_class, "wanted per class");
        self.order.check(|p| {
            let class = self.prio[p as usize].class()?;
            (!self.have.get(p)).then_some((class, self.avail[p as usize]))
        });
    }
}

#[cfg(test)]
mod tests;
