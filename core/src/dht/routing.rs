//! The routing table of one address family: K-buckets over the 160-bit XOR metric (BEP 5).
//!
//! Bucket `i` holds the nodes whose id shares exactly `i` leading bits with ours; the last
//! bucket holds everything sharing at least as many. Only the last bucket (the one covering
//! our own id) ever splits, which is the BEP 5 rule expressed without a tree. Only nodes that
//! have answered one of our queries enter the table, so every entry was reachable once.
//!
//! A full bucket does not take a newcomer unless one of its nodes is bad; the newcomer waits in
//! a small replacement cache while the caller pings the least recently seen questionable node
//! ([`Insert::Full`]). Two missed answers in a row make a node bad, and a bad node is swapped for
//! the freshest replacement.

use std::net::SocketAddr;
use std::time::Duration;

use rand::Rng;

use super::node::{NodeId, NodeInfo};
use crate::types::Instant;

/// Nodes per bucket (BEP 5's K).
pub const K: usize = 8;
/// A node that has not been heard from in this long is questionable (BEP 5: 15 minutes).
pub const QUESTIONABLE_AFTER: Duration = Duration::from_secs(15 * 60);
/// A bucket untouched for this long is refreshed with a lookup (BEP 5: 15 minutes).
pub const REFRESH_AFTER: Duration = Duration::from_secs(15 * 60);
/// Consecutive unanswered queries that make a node bad.
pub const MAX_FAILURES: u8 = 2;
/// Replacement candidates kept per bucket.
const REPLACEMENTS: usize = K;

/// BEP 5 node states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Answered us recently, or answered once and queried us recently.
    Good,
    /// Not heard from in 15 minutes, or missed one answer.
    Questionable,
    /// Missed [`MAX_FAILURES`] answers in a row.
    Bad,
}

/// One routing-table entry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The node.
    pub info: NodeInfo,
    /// Last time it answered one of our queries or sent us one.
    pub last_seen: Instant,
    /// Consecutive queries it did not answer.
    pub failures: u8,
}

impl Entry {
    /// The node's BEP 5 state at `now`.
    pub fn state(&self, now: Instant) -> NodeState {
        if self.failures >= MAX_FAILURES {
            NodeState::Bad
        } else if self.failures == 0 && now - self.last_seen < QUESTIONABLE_AFTER {
            NodeState::Good
        } else {
            NodeState::Questionable
        }
    }
}

#[derive(Debug, Clone)]
struct Bucket {
    nodes: Vec<Entry>,
    /// Verified nodes waiting for a slot, most recently seen last.
    replacements: Vec<NodeInfo>,
    last_changed: Instant,
}

impl Bucket {
    fn new(now: Instant) -> Self {
        Bucket { nodes: Vec::with_capacity(K), replacements: Vec::new(), last_changed: now }
    }

    fn remember_replacement(&mut self, info: NodeInfo) {
        self.replacements.retain(|r| r.id != info.id);
        if self.replacements.len() >= REPLACEMENTS {
            self.replacements.remove(0);
        }
        self.replacements.push(info);
    }
}

/// What [`RoutingTable::insert`] did with a node that answered us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Insert {
    /// It is now in the table.
    Added,
    /// It was already there; its liveness was refreshed.
    Updated,
    /// Its bucket is full of live nodes; it waits as a replacement. Ping this questionable
    /// node (if any): if it stays silent it turns bad and the newcomer takes its place.
    Full {
        /// The least recently seen questionable node of the bucket.
        ping: Option<NodeInfo>,
    },
    /// Not insertable (our own id).
    Refused,
}

/// The routing table of one address family.
#[derive(Debug, Clone)]
pub struct RoutingTable {
    own: NodeId,
    buckets: Vec<Bucket>,
}

impl RoutingTable {
    /// An empty table around our own id.
    pub fn new(own: NodeId, now: Instant) -> Self {
        RoutingTable { own, buckets: vec![Bucket::new(now)] }
    }

    /// Number of nodes in the table (any state).
    pub fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.nodes.len()).sum()
    }

    /// Whether the table has no nodes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of buckets (1 + splits so far).
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// Every entry, bucket by bucket.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.buckets.iter().flat_map(|b| b.nodes.iter())
    }

    fn bucket_index(&self, id: &NodeId) -> usize {
        // Invariant: there is always at least one bucket.
        self.own.common_prefix_len(id).min(self.buckets.len() - 1)
    }

    /// The entry for `id`, if present.
    pub fn get(&self, id: &NodeId) -> Option<&Entry> {
        self.buckets.get(self.bucket_index(id))?.nodes.iter().find(|e| e.info.id == *id)
    }

    /// Records that `info` answered one of our queries at `now`, inserting it if there is room.
    pub fn insert(&mut self, info: NodeInfo, now: Instant) -> Insert {
        if info.id == self.own {
            return Insert::Refused;
        }
        // Each round either returns or splits the last bucket, so this ends within 160 rounds.
        loop {
            let index = self.bucket_index(&info.id);
            let can_split = index + 1 == self.buckets.len() && self.buckets.len() < 160;
            let bucket = &mut self.buckets[index];
            if let Some(entry) = bucket.nodes.iter_mut().find(|e| e.info.id == info.id) {
                // A live entry keeps its address: a different source claiming its id may be
                // spoofing. A node we lost contact with may have moved.
                if entry.info.addr == info.addr || entry.state(now) != NodeState::Good {
                    entry.info.addr = info.addr;
                    entry.failures = 0;
                    entry.last_seen = now;
                    bucket.last_changed = now;
                }
                return Insert::Updated;
            }
            if bucket.nodes.len() < K {
                bucket.nodes.push(Entry { info, last_seen: now, failures: 0 });
                bucket.replacements.retain(|r| r.id != info.id);
                bucket.last_changed = now;
                return Insert::Added;
            }
            if let Some(bad) = bucket.nodes.iter_mut().find(|e| e.state(now) == NodeState::Bad) {
                *bad = Entry { info, last_seen: now, failures: 0 };
                bucket.replacements.retain(|r| r.id != info.id);
                bucket.last_changed = now;
                return Insert::Added;
            }
            if can_split {
                self.split_last(now);
                continue;
            }
            bucket.remember_replacement(info);
            let ping = bucket
                .nodes
                .iter()
                .filter(|e| e.state(now) == NodeState::Questionable)
                .min_by_key(|e| e.last_seen)
                .map(|e| e.info);
            return Insert::Full { ping };
        }
    }

    /// Moves the nodes that share one more bit with our id out of the last bucket into a new one.
    fn split_last(&mut self, now: Instant) {
        let depth = self.buckets.len();
        let own = self.own;
        let last = self.buckets.last_mut().expect("there is always at least one bucket");
        let mut deeper = Bucket::new(now);
        let (stay, go): (Vec<Entry>, Vec<Entry>) =
            last.nodes.drain(..).partition(|e| own.common_prefix_len(&e.info.id) == depth - 1);
        last.nodes = stay;
        deeper.nodes = go;
        let (stay, go): (Vec<NodeInfo>, Vec<NodeInfo>) =
            last.replacements.drain(..).partition(|r| own.common_prefix_len(&r.id) == depth - 1);
        last.replacements = stay;
        deeper.replacements = go;
        self.buckets.push(deeper);
    }

    /// Whether a node with `id` could get a slot now: its bucket has room, can split, or holds
    /// a node that is not good (and may turn out to be gone).
    pub fn has_room_for(&self, id: &NodeId, now: Instant) -> bool {
        if *id == self.own {
            return false;
        }
        let index = self.bucket_index(id);
        let splittable = index + 1 == self.buckets.len() && self.buckets.len() < 160;
        let bucket = &self.buckets[index];
        bucket.nodes.len() < K || splittable || bucket.nodes.iter().any(|e| e.state(now) != NodeState::Good)
    }

    /// Records that `id` sent us a query: it is alive, but it only enters the table by answering.
    pub fn heard_query(&mut self, id: &NodeId, addr: SocketAddr, now: Instant) {
        let index = self.bucket_index(id);
        if let Some(entry) = self.buckets[index].nodes.iter_mut().find(|e| e.info.id == *id && e.info.addr == addr) {
            entry.last_seen = now;
        }
    }

    /// Records that `id` at `addr` did not answer a query. A node that turns bad is replaced by
    /// the freshest replacement candidate, if there is one.
    pub fn failed(&mut self, id: &NodeId, addr: SocketAddr, now: Instant) {
        let index = self.bucket_index(id);
        let bucket = &mut self.buckets[index];
        let Some(pos) = bucket.nodes.iter().position(|e| e.info.id == *id && e.info.addr == addr) else {
            return;
        };
        let entry = &mut bucket.nodes[pos];
        entry.failures = entry.failures.saturating_add(1);
        if entry.state(now) == NodeState::Bad {
            if let Some(replacement) = bucket.replacements.pop() {
                bucket.nodes[pos] = Entry { info: replacement, last_seen: now, failures: 0 };
                bucket.last_changed = now;
            }
        }
    }

    /// Up to `count` non-bad nodes closest to `target`, closest first.
    pub fn closest(&self, target: &NodeId, count: usize, now: Instant) -> Vec<NodeInfo> {
        let mut all: Vec<&Entry> = self.entries().filter(|e| e.state(now) != NodeState::Bad).collect();
        all.sort_by_key(|e| e.info.id.distance(target));
        all.into_iter().take(count).map(|e| e.info).collect()
    }

    /// Good nodes, for the persisted snapshot.
    pub fn good_nodes(&self, now: Instant) -> Vec<NodeInfo> {
        self.entries().filter(|e| e.state(now) == NodeState::Good).map(|e| e.info).collect()
    }

    /// Indices of buckets not changed for [`REFRESH_AFTER`].
    pub fn stale_buckets(&self, now: Instant) -> Vec<usize> {
        (0..self.buckets.len()).filter(|&i| now - self.buckets[i].last_changed >= REFRESH_AFTER).collect()
    }

    /// Marks bucket `index` as just refreshed.
    pub fn touch_bucket(&mut self, index: usize, now: Instant) {
        if let Some(b) = self.buckets.get_mut(index) {
            b.last_changed = now;
        }
    }

    /// Marks the bucket that `target` falls in as just refreshed (a lookup went through it).
    pub fn touch_target(&mut self, target: &NodeId, now: Instant) {
        let index = self.bucket_index(target);
        self.touch_bucket(index, now);
    }

    /// A random id that falls in bucket `index`: our first `index` bits, then the opposite of
    /// our next bit (except in the last bucket), then random bits.
    pub fn random_id_in_bucket<R: Rng + ?Sized>(&self, index: usize, rng: &mut R) -> NodeId {
        let mut id = NodeId::random(rng);
        let fixed = if index + 1 < self.buckets.len() { index + 1 } else { index };
        for bit in 0..fixed.min(160) {
            let want = if bit == index { !self.own.bit(bit) } else { self.own.bit(bit) };
            if id.bit(bit) != want {
                id = id.flip_bit(bit);
            }
        }
        id
    }

    /// The oldest questionable node of each bucket, to keep liveness fresh.
    pub fn questionable(&self, now: Instant) -> Vec<NodeInfo> {
        self.buckets
            .iter()
            .filter_map(|b| {
                b.nodes.iter().filter(|e| e.state(now) == NodeState::Questionable).min_by_key(|e| e.last_seen)
            })
            .map(|e| e.info)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn id_with_prefix(first: u8, second: u8, last: u8) -> NodeId {
        let mut b = [0u8; 20];
        b[0] = first;
        b[1] = second;
        b[19] = last;
        NodeId(b)
    }

    fn node(id: NodeId, n: u16) -> NodeInfo {
        NodeInfo { id, addr: SocketAddr::from(([10, 0, (n >> 8) as u8, n as u8], 6881)) }
    }

    fn t(secs: u64) -> Instant {
        Instant::from_micros(secs * 1_000_000)
    }

    #[test]
    fn own_bucket_splits_and_far_buckets_do_not() {
        let own = NodeId::default(); // all zeros
        let mut table = RoutingTable::new(own, t(0));
        // Eight nodes with the top bit set: the single bucket fills.
        for i in 0..8u8 {
            assert_eq!(table.insert(node(id_with_prefix(0x80, 0, i), i.into()), t(0)), Insert::Added);
        }
        assert_eq!(table.bucket_count(), 1);
        // A ninth far node splits the bucket (it covers our id) but lands in the full far half.
        let ninth = node(id_with_prefix(0x80, 0, 100), 100);
        assert_eq!(table.insert(ninth, t(0)), Insert::Full { ping: None });
        assert_eq!(table.bucket_count(), 2);
        // Near nodes still have room in the new last bucket, which keeps splitting as needed.
        for i in 0..8u8 {
            assert_eq!(table.insert(node(id_with_prefix(0x40, 0, i), 200 + u16::from(i)), t(0)), Insert::Added);
        }
        assert_eq!(table.insert(node(id_with_prefix(0x01, 0, 1), 300), t(0)), Insert::Added);
        assert!(table.bucket_count() >= 3);
        assert_eq!(table.len(), 17);
        // A far bucket never splits: more far nodes are refused while all are good.
        assert_eq!(table.insert(node(id_with_prefix(0xc0, 0, 1), 400), t(1)), Insert::Full { ping: None });
        assert_eq!(table.len(), 17);
        assert_eq!(table.insert(node(own, 1), t(0)), Insert::Refused);
    }

    #[test]
    fn questionable_nodes_are_pinged_and_bad_ones_replaced() {
        let own = NodeId::default();
        let mut table = RoutingTable::new(own, t(0));
        // Fill the far bucket (split once so the far half cannot split again).
        for i in 0..8u8 {
            table.insert(node(id_with_prefix(0x80, 0, i), i.into()), t(0));
        }
        table.insert(node(id_with_prefix(0x40, 0, 0), 50), t(0));
        assert_eq!(table.bucket_count(), 2);
        let oldest = node(id_with_prefix(0x80, 0, 0), 0);
        // Sixteen minutes later every node is questionable; a newcomer asks to ping the oldest.
        for i in 1..8u8 {
            table.insert(node(id_with_prefix(0x80, 0, i), i.into()), t(600));
        }
        let newcomer = node(id_with_prefix(0x80, 0, 99), 99);
        assert_eq!(table.insert(newcomer, t(16 * 60)), Insert::Full { ping: Some(oldest) });
        // It misses one ping: still questionable, still there.
        table.failed(&oldest.id, oldest.addr, t(16 * 60 + 5));
        assert_eq!(table.get(&oldest.id).map(|e| e.state(t(16 * 60 + 5))), Some(NodeState::Questionable));
        // It misses a second: bad, and the newcomer takes its slot.
        table.failed(&oldest.id, oldest.addr, t(16 * 60 + 10));
        assert!(table.get(&oldest.id).is_none());
        assert!(table.get(&newcomer.id).is_some());
        assert_eq!(table.len(), 9);
    }

    #[test]
    fn answering_clears_failures_and_spoofed_addresses_are_ignored() {
        let own = NodeId::default();
        let mut table = RoutingTable::new(own, t(0));
        let n = node(id_with_prefix(0x80, 0, 1), 1);
        table.insert(n, t(0));
        table.failed(&n.id, n.addr, t(1));
        assert_eq!(table.get(&n.id).unwrap().state(t(1)), NodeState::Questionable);
        // Someone else claims the id from another address while the node is not good: moves.
        // While it is good, the claim is ignored.
        table.insert(n, t(2));
        assert_eq!(table.get(&n.id).unwrap().state(t(2)), NodeState::Good);
        let spoof = NodeInfo { id: n.id, addr: "10.9.9.9:1".parse().unwrap() };
        assert_eq!(table.insert(spoof, t(3)), Insert::Updated);
        assert_eq!(table.get(&n.id).unwrap().info.addr, n.addr);
        // Failures reported for the wrong address do not count.
        table.failed(&n.id, spoof.addr, t(4));
        assert_eq!(table.get(&n.id).unwrap().failures, 0);
        // A query keeps a node good past 15 minutes.
        table.heard_query(&n.id, n.addr, t(14 * 60));
        assert_eq!(table.get(&n.id).unwrap().state(t(20 * 60)), NodeState::Good);
        assert_eq!(table.get(&n.id).unwrap().state(t(30 * 60)), NodeState::Questionable);
    }

    #[test]
    fn closest_orders_by_xor_distance_and_skips_bad_nodes() {
        let own = NodeId::default();
        let mut table = RoutingTable::new(own, t(0));
        let ids: Vec<NodeId> = (1..=6u8).map(|i| id_with_prefix(i << 4, 0, 0)).collect();
        for (i, id) in ids.iter().enumerate() {
            table.insert(node(*id, i as u16), t(0));
        }
        let target = id_with_prefix(0x30, 0, 0);
        let got: Vec<NodeId> = table.closest(&target, 3, t(0)).into_iter().map(|n| n.id).collect();
        assert_eq!(got, vec![ids[2], ids[1], ids[0]]);
        let bad = node(ids[2], 2);
        table.failed(&bad.id, bad.addr, t(1));
        table.failed(&bad.id, bad.addr, t(2));
        assert!(!table.closest(&target, 10, t(2)).iter().any(|n| n.id == ids[2]));
    }

    #[test]
    fn random_ids_fall_in_their_bucket_and_refresh_is_due_after_15_minutes() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let own = NodeId::random(&mut rng);
        let mut table = RoutingTable::new(own, t(0));
        for n in 0..400u16 {
            table.insert(node(NodeId::random(&mut rng), n), t(0));
        }
        assert!(table.bucket_count() > 3);
        for index in 0..table.bucket_count() {
            for _ in 0..20 {
                let id = table.random_id_in_bucket(index, &mut rng);
                assert_eq!(table.bucket_index(&id), index);
            }
        }
        assert!(table.stale_buckets(t(14 * 60)).is_empty());
        assert_eq!(table.stale_buckets(t(15 * 60)).len(), table.bucket_count());
        table.touch_bucket(0, t(15 * 60));
        assert!(!table.stale_buckets(t(15 * 60)).contains(&0));
    }
}
