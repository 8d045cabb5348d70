//! The order in which untouched pieces are considered: an array of the wanted pieces sorted by
//! (priority class, availability), random inside each (class, availability) bucket.
//!
//! Every piece stores its position and every bucket its end, so an availability change of one
//! is a single swap with the bucket's boundary, O(1). Adding or removing a piece walks the
//! boundaries of the buckets after it (at most `CLASSES * MAX_PER_CLASS`, a few thousand cheap
//! steps, once per completed piece). Bulk changes (priorities, a bucket count that has become
//! too small) mark the order stale instead; the owner rebuilds it, O(pieces), before reading it.

use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::ops::Range;

/// Number of priority classes that are listed (High, Normal, Low; Skip is never listed).
pub(super) const CLASSES: u32 = 3;

/// Upper bound on availability buckets per class. Availabilities above it share the last
/// bucket: rarest-first among pieces a thousand peers have makes no difference, and the bound
/// keeps memory and the add/remove walk small even if availability is inflated by a bug.
const MAX_PER_CLASS: u32 = 1024;

/// Marks a piece that is not in the array (had or Skip).
const NOT_LISTED: u32 = u32::MAX;

/// A bucketed, position-indexed ordering of the wanted pieces.
#[derive(Clone)]
pub(super) struct PieceOrder {
    /// Wanted pieces, bucket after bucket.
    order: Vec<u32>,
    /// Index of each piece in `order`, or `NOT_LISTED`.
    pos: Vec<u32>,
    /// Exclusive end (in `order`) of bucket `class * per_class + availability`.
    ends: Vec<u32>,
    /// Buckets per class; availability is clamped to `per_class - 1`.
    per_class: u32,
    /// True when `order`, `pos` and `ends` must be rebuilt before use.
    stale: bool,
}

impl PieceOrder {
    /// An order over `piece_count` pieces that must be rebuilt before first use.
    pub(super) fn new(piece_count: u32) -> Self {
        PieceOrder {
            order: Vec::new(),
            pos: vec![NOT_LISTED; piece_count as usize],
            ends: Vec::new(),
            per_class: 1,
            stale: true,
        }
    }

    /// Whether `rebuild` must run before the order is read.
    pub(super) fn is_stale(&self) -> bool {
        self.stale
    }

    /// Forgets the current order; cheap, the next `rebuild` restores it.
    pub(super) fn mark_stale(&mut self) {
        self.stale = true;
    }

    /// Rebuilds from `key(piece) = Some((class, availability))` for listed pieces, shuffling
    /// each bucket so that ties between equally rare pieces are broken at random.
    pub(super) fn rebuild(&mut self, key: impl Fn(u32) -> Option<(u32, u32)>, rng: &mut ChaCha8Rng) {
        let n = self.pos.len() as u32;
        let max_avail = (0..n).filter_map(&key).map(|(_, a)| a).max().unwrap_or(0);
        // Headroom above the current maximum so that the next few increments do not force
        // another rebuild.
        self.per_class =
            max_avail.saturating_add(2).checked_next_power_of_two().unwrap_or(MAX_PER_CLASS).min(MAX_PER_CLASS);
        let buckets = (CLASSES * self.per_class) as usize;

        let mut counts = vec![0u32; buckets];
        for p in 0..n {
            if let Some((c, a)) = key(p) {
                counts[self.bucket(c, a)] += 1;
            }
        }
        self.ends.clear();
        let mut total = 0u32;
        for c in &counts {
            total += c;
            self.ends.push(total);
        }
        let mut fill: Vec<u32> = self.ends.iter().zip(&counts).map(|(e, c)| e - c).collect();
        self.order.clear();
        self.order.resize(total as usize, 0);
        for p in 0..n {
            if let Some((c, a)) = key(p) {
                let b = self.bucket(c, a);
                self.order[fill[b] as usize] = p;
                fill[b] += 1;
            }
        }
        for b in 0..buckets {
            let range = self.bucket_range(b);
            self.order[range].shuffle(rng);
        }
        self.pos.fill(NOT_LISTED);
        for (i, &p) in self.order.iter().enumerate() {
            self.pos[p as usize] = i as u32;
        }
        self.stale = false;
    }

    /// Indices into the array (for `at`) of the pieces of one class, rarest first.
    pub(super) fn class_range(&self, class: u32) -> Range<usize> {
        debug_assert!(!self.stale && class < CLASSES);
        let first = (class * self.per_class) as usize;
        let last = first + self.per_class as usize - 1;
        self.bucket_start(first)..self.ends[last] as usize
    }

    /// The piece at array index `i` (from `class_range`).
    pub(super) fn at(&self, i: usize) -> u32 {
        self.order[i]
    }

    /// Position of a listed piece in the global order (lower = picked earlier).
    pub(super) fn position(&self, piece: u32) -> u32 {
        self.pos[piece as usize]
    }

    /// A listed piece's availability went from `old` to `new` (by one).
    pub(super) fn availability_changed(&mut self, piece: u32, class: u32, old: u32, new: u32) {
        if self.stale {
            return;
        }
        if new >= self.per_class && self.per_class < MAX_PER_CLASS {
            // More peers than buckets: grow at the next rebuild.
            self.stale = true;
            return;
        }
        let from = self.bucket(class, old);
        let to = self.bucket(class, new);
        if to == from + 1 {
            self.move_up(piece, from);
        } else if to + 1 == from {
            self.move_down(piece, from);
        }
    }

    /// Adds a piece that just became wanted.
    pub(super) fn insert(&mut self, piece: u32, class: u32, avail: u32) {
        if self.stale {
            return;
        }
        let target = self.bucket(class, avail);
        let last = self.ends.len() - 1;
        self.order.push(piece);
        self.pos[piece as usize] = (self.order.len() - 1) as u32;
        self.ends[last] += 1;
        for b in (target + 1..=last).rev() {
            self.move_down(piece, b);
        }
    }

    /// Removes a piece that is no longer wanted (had, or set to Skip).
    pub(super) fn remove(&mut self, piece: u32, class: u32, avail: u32) {
        if self.stale {
            return;
        }
        let last = self.ends.len() - 1;
        for b in self.bucket(class, avail)..last {
            self.move_up(piece, b);
        }
        let end = self.order.len() - 1;
        self.swap(self.pos[piece as usize] as usize, end);
        self.order.pop();
        self.ends[last] -= 1;
        self.pos[piece as usize] = NOT_LISTED;
    }

    fn bucket(&self, class: u32, avail: u32) -> usize {
        (class * self.per_class + avail.min(self.per_class - 1)) as usize
    }

    fn bucket_start(&self, b: usize) -> usize {
        if b == 0 {
            0
        } else {
            self.ends[b - 1] as usize
        }
    }

    fn bucket_range(&self, b: usize) -> Range<usize> {
        self.bucket_start(b)..self.ends[b] as usize
    }

    /// Moves `piece` from the end of bucket `b` to the start of bucket `b + 1`.
    fn move_up(&mut self, piece: u32, b: usize) {
        let last = self.ends[b] as usize - 1;
        self.swap(self.pos[piece as usize] as usize, last);
        self.ends[b] -= 1;
    }

    /// Moves `piece` from the start of bucket `b` to the end of bucket `b - 1`.
    fn move_down(&mut self, piece: u32, b: usize) {
        let first = self.ends[b - 1] as usize;
        self.swap(self.pos[piece as usize] as usize, first);
        self.ends[b - 1] += 1;
    }

    fn swap(&mut self, i: usize, j: usize) {
        self.order.swap(i, j);
        self.pos[self.order[i] as usize] = i as u32;
        self.pos[self.order[j] as usize] = j as u32;
    }

    /// Checks every invariant against the expected keys (tests only).
    #[cfg(test)]
    pub(super) fn check(&self, key: impl Fn(u32) -> Option<(u32, u32)>) {
        if self.stale {
            return;
        }
        let listed = (0..self.pos.len() as u32).filter(|&p| key(p).is_some()).count();
        assert_eq!(listed, self.order.len());
        assert_eq!(*self.ends.last().unwrap() as usize, self.order.len());
        for b in 0..self.ends.len() {
            for i in self.bucket_range(b) {
                let p = self.order[i];
                assert_eq!(self.pos[p as usize] as usize, i);
                let (c, a) = key(p).expect("listed piece must be wanted");
                assert_eq!(self.bucket(c, a), b, "piece {p} in wrong bucket");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn moves_keep_buckets_sorted() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut avail = [0u32, 0, 0, 0, 0];
        let mut listed = [true; 5];
        let mut o = PieceOrder::new(5);
        o.rebuild(|p| listed[p as usize].then_some((1, avail[p as usize])), &mut rng);
        for (p, steps) in [(2u32, 1u32), (4, 1), (2, 1), (0, 1)] {
            for _ in 0..steps {
                let old = avail[p as usize];
                avail[p as usize] += 1;
                o.availability_changed(p, 1, old, old + 1);
            }
        }
        // 2 reached 2 = per_class: the order asks for a rebuild instead of clamping.
        assert!(o.is_stale());
        o.rebuild(|p| listed[p as usize].then_some((1, avail[p as usize])), &mut rng);
        o.check(|p| listed[p as usize].then_some((1, avail[p as usize])));
        let r = o.class_range(1);
        let seq: Vec<u32> = r.map(|i| o.at(i)).collect();
        assert_eq!(*seq.last().unwrap(), 2, "most common piece is last");

        o.remove(3, 1, 0);
        listed[3] = false;
        o.check(|p| listed[p as usize].then_some((1, avail[p as usize])));
        o.availability_changed(4, 1, 1, 0);
        avail[4] = 0;
        o.check(|p| listed[p as usize].then_some((1, avail[p as usize])));
        listed[3] = true;
        o.insert(3, 0, 0);
        o.check(|p| listed[p as usize].then_some((if p == 3 { 0 } else { 1 }, avail[p as usize])));
        assert_eq!(o.at(o.class_range(0).start), 3);
    }
}
