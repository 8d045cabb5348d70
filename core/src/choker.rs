//! Choking: which interested peers we upload to.
//!
//! * Leeching (BEP 3 tit-for-tat): the `upload_slots` interested, non-snubbed peers that send
//!   us data fastest, plus one optimistic unchoke among the other interested peers (snubbed
//!   ones included: it is their chance to show they can reciprocate). The optimistic peer is
//!   drawn at random, preferring peers that have never had a turn, and kept for
//!   `optimistic_interval` unless it loses interest or earns a regular slot.
//! * Seeding (round-robin): `upload_slots + 1` slots, all rotating. At each rechoke, if peers
//!   are waiting, the holder unchoked longest (at least one `rechoke_interval` ago) gives up
//!   its slot; free slots go to the waiting peers served least recently (never served first).
//!   Upload rate breaks ties (the fastest kept, the fastest let in): a choked peer's rate is
//!   zero, so it cannot rank peers who are waiting for a turn.
//!
//! A peer that is not interested never holds a slot. The engine calls `rechoke` when
//! `next_rechoke` has passed, and may call it early (a peer lost interest, a slot freed up).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::types::{ConnId, Instant};

/// What the choker needs to know about one connected peer.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct PeerStats {
    /// The connection.
    pub conn: ConnId,
    /// The peer is interested in our pieces.
    pub interested: bool,
    /// Bytes per second we receive from it.
    pub download_rate: u64,
    /// Bytes per second we send it.
    pub upload_rate: u64,
    /// It has sent us nothing for a long time although we asked.
    pub snubbed: bool,
    /// We currently unchoke it.
    pub unchoked: bool,
}

/// Choker settings.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct ChokerConfig {
    /// Regular unchoke slots, not counting the optimistic one.
    pub upload_slots: usize,
    /// Time between two rechokes.
    pub rechoke_interval: Duration,
    /// How long one peer keeps the optimistic unchoke.
    pub optimistic_interval: Duration,
}

impl Default for ChokerConfig {
    fn default() -> Self {
        ChokerConfig {
            upload_slots: 4,
            rechoke_interval: Duration::from_secs(10),
            optimistic_interval: Duration::from_secs(30),
        }
    }
}

/// Decides, every rechoke interval, which peers are unchoked.
pub struct Choker {
    config: ChokerConfig,
    rng: ChaCha8Rng,
    next_rechoke: Instant,
    /// The optimistically unchoked peer (leeching only) and when its turn ends.
    optimistic: Option<(ConnId, Instant)>,
    /// Peers that had an optimistic turn in the current round.
    tried: BTreeSet<ConnId>,
    /// Holders of regular slots and since when they hold them.
    slots: BTreeMap<ConnId, Instant>,
    /// When each peer last lost a regular slot (seeding round-robin order).
    last_turn: BTreeMap<ConnId, Instant>,
}

impl Choker {
    /// A choker with no history; `seed` drives the optimistic draw.
    pub fn new(config: ChokerConfig, seed: u64) -> Self {
        Choker {
            config,
            rng: ChaCha8Rng::seed_from_u64(seed),
            next_rechoke: Instant::ZERO,
            optimistic: None,
            tried: BTreeSet::new(),
            slots: BTreeMap::new(),
            last_turn: BTreeMap::new(),
        }
    }

    /// When `rechoke` should run next (`Instant::ZERO` before the first one).
    pub fn next_rechoke(&self) -> Instant {
        self.next_rechoke
    }

    /// Recomputes the unchoke set from `peers` (every connected peer of the torrent, each
    /// once). Returns the peers to unchoke; every other peer is to be choked.
    pub fn rechoke(&mut self, now: Instant, peers: &[PeerStats], seeding: bool) -> Vec<ConnId> {
        self.next_rechoke = now + self.config.rechoke_interval;
        let interested: Vec<&PeerStats> = peers.iter().filter(|p| p.interested).collect();
        let regular = if seeding { self.seeding_slots(now, &interested) } else { self.leeching_slots(&interested) };

        let mut slots = BTreeMap::new();
        for &conn in &regular {
            slots.insert(conn, self.slots.get(&conn).copied().unwrap_or(now));
        }
        for &conn in self.slots.keys() {
            if !slots.contains_key(&conn) {
                self.last_turn.insert(conn, now);
            }
        }
        self.slots = slots;

        let mut unchoke = regular;
        if seeding {
            self.optimistic = None;
        } else if let Some(conn) = self.choose_optimistic(now, &interested, &unchoke) {
            unchoke.push(conn);
        }
        unchoke
    }

    /// The peer holding the optimistic unchoke, if any (only while leeching).
    pub fn optimistic(&self) -> Option<ConnId> {
        self.optimistic.map(|(conn, _)| conn)
    }

    /// Forgets a peer that disconnected.
    pub fn peer_gone(&mut self, conn: ConnId) {
        self.tried.remove(&conn);
        self.slots.remove(&conn);
        self.last_turn.remove(&conn);
        if self.optimistic.is_some_and(|(o, _)| o == conn) {
            self.optimistic = None;
        }
    }

    /// Reciprocation: the fastest senders among interested, non-snubbed peers. Ties keep
    /// peers that are already unchoked, to avoid churn.
    fn leeching_slots(&self, interested: &[&PeerStats]) -> Vec<ConnId> {
        let mut candidates: Vec<&PeerStats> = interested.iter().copied().filter(|p| !p.snubbed).collect();
        candidates.sort_by_key(|p| (Reverse(p.download_rate), !p.unchoked, p.conn));
        candidates.iter().take(self.config.upload_slots).map(|p| p.conn).collect()
    }

    /// Round-robin among interested peers (see the module comment).
    fn seeding_slots(&self, now: Instant, interested: &[&PeerStats]) -> Vec<ConnId> {
        let count = self.config.upload_slots + 1;
        let (mut holders, mut waiting): (Vec<&PeerStats>, Vec<&PeerStats>) =
            interested.iter().copied().partition(|p| self.slots.contains_key(&p.conn));
        // More holders than slots (fewer slots now, or coming from leeching): keep the fastest.
        holders.sort_by_key(|p| (Reverse(p.upload_rate), p.conn));
        holders.truncate(count);
        if !waiting.is_empty() && holders.len() == count {
            let since = |p: &PeerStats| self.slots.get(&p.conn).copied().unwrap_or(now);
            let longest = holders
                .iter()
                .enumerate()
                .min_by_key(|(_, p)| (since(p), p.upload_rate, p.conn))
                .map(|(i, p)| (i, since(p)));
            if let Some((i, held_since)) = longest {
                if now - held_since >= self.config.rechoke_interval {
                    holders.remove(i);
                }
            }
        }
        waiting.sort_by_key(|p| (self.last_turn.get(&p.conn).copied(), Reverse(p.upload_rate), p.conn));
        let free = count - holders.len();
        holders.iter().chain(waiting.iter().take(free)).map(|p| p.conn).collect()
    }

    /// Keeps or redraws the optimistic unchoke among interested peers without a regular slot.
    fn choose_optimistic(&mut self, now: Instant, interested: &[&PeerStats], regular: &[ConnId]) -> Option<ConnId> {
        let pool: Vec<ConnId> = interested.iter().map(|p| p.conn).filter(|c| !regular.contains(c)).collect();
        if let Some((conn, until)) = self.optimistic {
            if now < until && pool.contains(&conn) {
                return Some(conn);
            }
        }
        let current = self.optimistic.take().map(|(c, _)| c);
        if pool.is_empty() {
            return None;
        }
        let mut fresh: Vec<ConnId> = pool.iter().copied().filter(|c| !self.tried.contains(c)).collect();
        if fresh.is_empty() {
            // Everyone had a turn: start a new round.
            self.tried.clear();
            fresh = pool;
        }
        if fresh.len() > 1 {
            fresh.retain(|&c| Some(c) != current);
        }
        let conn = fresh[self.rng.random_range(0..fresh.len())];
        self.tried.insert(conn);
        self.optimistic = Some((conn, now + self.config.optimistic_interval));
        Some(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Instant {
        Instant::from_micros(s * 1_000_000)
    }

    fn peer(id: u64, interested: bool, download_rate: u64) -> PeerStats {
        PeerStats { conn: ConnId(id), interested, download_rate, upload_rate: 0, snubbed: false, unchoked: false }
    }

    fn ids(v: &[u64]) -> Vec<ConnId> {
        v.iter().map(|&i| ConnId(i)).collect()
    }

    fn choker(seed: u64) -> Choker {
        Choker::new(ChokerConfig::default(), seed)
    }

    #[test]
    fn leeching_unchokes_the_fastest_senders_plus_one_optimistic() {
        let mut peers: Vec<PeerStats> = (1..=8).map(|i| peer(i, true, i * 100)).collect();
        peers.push(peer(9, false, 10_000)); // fast but not interested
        peers[6].snubbed = true; // peer 7
        let mut c = choker(1);
        assert_eq!(c.next_rechoke(), Instant::ZERO);
        let un = c.rechoke(secs(0), &peers, false);
        assert_eq!(un[..4], ids(&[8, 6, 5, 4]));
        assert_eq!(un.len(), 5);
        assert!(ids(&[1, 2, 3, 7]).contains(&un[4]), "optimistic among the rest: {un:?}");
        assert_eq!(c.next_rechoke(), secs(10));
    }

    #[test]
    fn peers_that_lose_interest_lose_their_slot() {
        let mut peers: Vec<PeerStats> = (1..=5).map(|i| peer(i, true, i * 100)).collect();
        let mut c = choker(1);
        assert_eq!(c.rechoke(secs(0), &peers, false).len(), 5);
        peers[4].interested = false; // the fastest
        peers[0].interested = false; // the slowest, probably the optimistic
        let un = c.rechoke(secs(1), &peers, false);
        assert_eq!(un, ids(&[4, 3, 2]), "only three interested peers left");
    }

    #[test]
    fn optimistic_rotates_every_30_seconds_and_tries_everyone() {
        let mut peers: Vec<PeerStats> = (1..=4).map(|i| peer(i, true, 1000 + i)).collect();
        peers.extend((5..=7).map(|i| peer(i, true, 0)));
        let mut c = choker(3);
        let mut turns = Vec::new();
        for round in 0..9u64 {
            let un = c.rechoke(secs(round * 10), &peers, false);
            assert_eq!(un[..4], ids(&[4, 3, 2, 1]));
            assert_eq!(c.optimistic(), Some(un[4]), "the fifth unchoke is the optimistic one");
            turns.push(un[4]);
        }
        // Three rounds of 10 s per turn; three different peers in the first three turns.
        assert!(turns[0..3].iter().all(|&t| t == turns[0]));
        assert!(turns[3..6].iter().all(|&t| t == turns[3]));
        assert!(turns[6..9].iter().all(|&t| t == turns[6]));
        let mut firsts = vec![turns[0], turns[3], turns[6]];
        firsts.sort();
        assert_eq!(firsts, ids(&[5, 6, 7]));
    }

    #[test]
    fn optimistic_is_replaced_when_it_leaves_interest_or_earns_a_slot() {
        let mut peers: Vec<PeerStats> = (1..=6).map(|i| peer(i, true, 1000 - i)).collect();
        let mut c = choker(5);
        let first = c.rechoke(secs(0), &peers, false)[4];
        let i = peers.iter().position(|p| p.conn == first).unwrap();
        peers[i].interested = false;
        let second = c.rechoke(secs(10), &peers, false)[4];
        assert_ne!(second, first);
        // The optimistic peer turns out to be the fastest: it gets a regular slot, and the
        // optimistic slot goes to someone else.
        let j = peers.iter().position(|p| p.conn == second).unwrap();
        peers[j].download_rate = 5000;
        peers[i].interested = true;
        let un = c.rechoke(secs(20), &peers, false);
        assert_eq!(un[0], second);
        assert_eq!(un.len(), 5);
        c.peer_gone(un[4]);
        assert_eq!(c.optimistic(), None);
        c.rechoke(secs(30), &peers, true);
        assert_eq!(c.optimistic(), None, "no optimistic unchoke while seeding");
    }

    #[test]
    fn few_peers_are_all_unchoked_once() {
        let peers: Vec<PeerStats> = (1..=3).map(|i| peer(i, true, i)).collect();
        let mut c = choker(0);
        let un = c.rechoke(secs(0), &peers, false);
        assert_eq!(un, ids(&[3, 2, 1]), "no optimistic left to draw");
        assert!(c.rechoke(secs(0), &[], false).is_empty());
    }

    #[test]
    fn same_seed_same_choices() {
        let peers: Vec<PeerStats> = (1..=20).map(|i| peer(i, true, i % 3)).collect();
        let run = |seed| {
            let mut c = choker(seed);
            (0..30u64).map(|r| c.rechoke(secs(r * 10), &peers, false)).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn seeding_rotates_slots_so_every_peer_gets_a_turn() {
        let mut peers: Vec<PeerStats> = (1..=12).map(|i| peer(i, true, 0)).collect();
        for p in &mut peers {
            p.upload_rate = p.conn.0 * 10;
        }
        peers.push(peer(13, false, 0));
        let mut c = choker(2);
        let first = c.rechoke(secs(0), &peers, true);
        assert_eq!(first, ids(&[12, 11, 10, 9, 8]), "5 slots, fastest first at the start");
        let mut served: BTreeSet<ConnId> = first.iter().copied().collect();
        let mut prev = first;
        for round in 1..=7u64 {
            let un = c.rechoke(secs(round * 10), &peers, true);
            assert_eq!(un.len(), 5);
            let left: Vec<_> = prev.iter().filter(|c| !un.contains(c)).collect();
            assert_eq!(left.len(), 1, "exactly one slot rotates per rechoke");
            served.extend(un.iter().copied());
            prev = un;
        }
        assert_eq!(served.len(), 12, "every interested peer had a turn");
        assert!(!served.contains(&ConnId(13)));
    }

    #[test]
    fn seeding_rotation_waits_a_full_interval_and_evicts_the_longest_holder() {
        let peers: Vec<PeerStats> = (1..=6).map(|i| peer(i, true, 0)).collect();
        let mut c = choker(2);
        let a = c.rechoke(secs(0), &peers, true);
        assert_eq!(a, ids(&[1, 2, 3, 4, 5]));
        assert_eq!(c.rechoke(secs(3), &peers, true), a, "early rechoke does not rotate");
        let b = c.rechoke(secs(10), &peers, true);
        assert_eq!(b, ids(&[2, 3, 4, 5, 6]), "ties on age: the lowest id goes first");
        let d = c.rechoke(secs(20), &peers, true);
        assert!(!d.contains(&ConnId(2)), "the oldest holder rotates out");
        assert!(d.contains(&ConnId(1)), "the peer waiting longest comes back");
    }
}
