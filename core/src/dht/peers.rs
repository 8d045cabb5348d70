//! The peers other nodes announced to us, served back in `get_peers` answers.
//!
//! Bounded twice (per info-hash and in total); when full, the oldest announcement goes. Every
//! entry expires [`PEER_TTL`] after its last announcement, since announcers re-announce well
//! within that time.
//!
//! Each entry also keeps whether its announcer said it seeds (BEP 33 `seed=1`), so that a
//! scrape can be answered with one filter of seeds and one of the rest.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rand::seq::IndexedRandom;
use rand::Rng;

use super::bloom::ScrapeBloom;
use super::node::Family;
use crate::types::{InfoHash, Instant};

/// How long an announcement is kept.
pub const PEER_TTL: Duration = Duration::from_secs(30 * 60);

/// One stored announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    at: Instant,
    seed: bool,
}

/// Announced peers by info-hash.
#[derive(Debug, Clone)]
pub struct PeerStore {
    max_total: usize,
    max_per_hash: usize,
    /// Peer address to the time of its last announcement and whether it was a seed's.
    by_hash: BTreeMap<InfoHash, BTreeMap<SocketAddr, Entry>>,
    /// The same entries ordered by age, for expiry and eviction.
    by_age: BTreeSet<(Instant, InfoHash, SocketAddr)>,
}

impl PeerStore {
    /// An empty store holding at most `max_total` peers, `max_per_hash` per torrent.
    pub fn new(max_total: usize, max_per_hash: usize) -> Self {
        PeerStore { max_total, max_per_hash, by_hash: BTreeMap::new(), by_age: BTreeSet::new() }
    }

    /// Number of stored peers over all torrents.
    pub fn len(&self) -> usize {
        self.by_age.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.by_age.is_empty()
    }

    /// Records that `peer` downloads `info_hash` (or seeds it, with `seed`).
    pub fn announce(&mut self, info_hash: InfoHash, peer: SocketAddr, seed: bool, now: Instant) {
        if self.max_total == 0 || self.max_per_hash == 0 {
            return;
        }
        let known = self.by_hash.get(&info_hash).and_then(|m| m.get(&peer)).map(|e| e.at);
        if let Some(at) = known {
            self.by_age.remove(&(at, info_hash, peer));
        } else {
            let torrent_full = self.by_hash.get(&info_hash).is_some_and(|m| m.len() >= self.max_per_hash);
            if torrent_full {
                let oldest = self.by_hash.get(&info_hash).and_then(|m| m.iter().min_by_key(|(_, e)| e.at));
                if let Some((&addr, &e)) = oldest {
                    self.remove(e.at, info_hash, addr);
                }
            } else if self.by_age.len() >= self.max_total {
                if let Some(&(at, hash, addr)) = self.by_age.first() {
                    self.remove(at, hash, addr);
                }
            }
        }
        self.by_hash.entry(info_hash).or_default().insert(peer, Entry { at: now, seed });
        self.by_age.insert((now, info_hash, peer));
    }

    fn remove(&mut self, at: Instant, info_hash: InfoHash, peer: SocketAddr) {
        self.by_age.remove(&(at, info_hash, peer));
        if let Some(m) = self.by_hash.get_mut(&info_hash) {
            m.remove(&peer);
            if m.is_empty() {
                self.by_hash.remove(&info_hash);
            }
        }
    }

    /// Up to `max` peers of `family` for `info_hash`, a random sample when there are more.
    pub fn peers<R: Rng + ?Sized>(
        &self,
        info_hash: &InfoHash,
        family: Family,
        max: usize,
        rng: &mut R,
    ) -> Vec<SocketAddr> {
        let Some(m) = self.by_hash.get(info_hash) else {
            return Vec::new();
        };
        let all: Vec<SocketAddr> = m.keys().filter(|a| Family::of(a) == family).copied().collect();
        if all.len() <= max {
            return all;
        }
        all.choose_multiple(rng, max).copied().collect()
    }

    /// BEP 33's `BFsd` and `BFpe` for `info_hash`: the IPs of the stored seeds and of the other
    /// stored peers, `None` when nothing is stored. An IP counts once (the BEP stores unique
    /// IPs), as a seed or not by its latest announcement.
    pub fn filters(&self, info_hash: &InfoHash) -> Option<(ScrapeBloom, ScrapeBloom)> {
        let m = self.by_hash.get(info_hash)?;
        let mut latest: BTreeMap<IpAddr, Entry> = BTreeMap::new();
        for (addr, e) in m {
            let slot = latest.entry(addr.ip().to_canonical()).or_insert(*e);
            if e.at > slot.at {
                *slot = *e;
            }
        }
        let (mut seeds, mut peers) = (ScrapeBloom::new(), ScrapeBloom::new());
        for (ip, e) in latest {
            if e.seed {
                seeds.insert(ip);
            } else {
                peers.insert(ip);
            }
        }
        Some((seeds, peers))
    }

    /// Drops announcements older than [`PEER_TTL`].
    pub fn expire(&mut self, now: Instant) {
        while let Some(&(at, hash, addr)) = self.by_age.first() {
            if now - at < PEER_TTL {
                break;
            }
            self.remove(at, hash, addr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn peer(n: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], n))
    }

    fn secs(s: u64) -> Instant {
        Instant::from_micros(s * 1_000_000)
    }

    #[test]
    fn bounded_per_torrent_and_in_total_oldest_goes_first() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let a = InfoHash([1; 20]);
        let b = InfoHash([2; 20]);
        let mut store = PeerStore::new(5, 3);
        for n in 1..=4 {
            store.announce(a, peer(n), false, secs(n.into()));
        }
        // Per-torrent cap: peer 1 (oldest) went.
        let got = store.peers(&a, Family::V4, 10, &mut rng);
        assert_eq!(got, vec![peer(2), peer(3), peer(4)]);
        // Re-announcing refreshes instead of duplicating.
        store.announce(a, peer(2), false, secs(10));
        assert_eq!(store.len(), 3);
        store.announce(b, peer(7), false, secs(11));
        store.announce(b, peer(8), false, secs(12));
        assert_eq!(store.len(), 5);
        // Total cap: the globally oldest (a/peer 3 at 3 s) goes.
        store.announce(b, peer(9), false, secs(13));
        assert_eq!(store.len(), 5);
        assert_eq!(store.peers(&a, Family::V4, 10, &mut rng), vec![peer(2), peer(4)]);
        assert!(store.peers(&a, Family::V6, 10, &mut rng).is_empty());
        assert_eq!(store.peers(&b, Family::V4, 2, &mut rng).len(), 2);
    }

    #[test]
    fn scrape_filters_hold_each_ip_once_by_its_latest_status() {
        let a = InfoHash([1; 20]);
        let mut store = PeerStore::new(100, 100);
        assert_eq!(store.filters(&a), None, "no entries, no filters (BEP 33)");
        let ip = |n: u8| SocketAddr::from(([10, 0, 1, n], 6881));
        store.announce(a, ip(1), true, secs(1));
        store.announce(a, ip(2), false, secs(1));
        store.announce(a, ip(3), false, secs(1));
        // IP 3 again on another port, now seeding: one seed, not a seed and a peer.
        store.announce(a, SocketAddr::from(([10, 0, 1, 3], 7000)), true, secs(2));
        let (seeds, peers) = store.filters(&a).unwrap();
        assert!((seeds.estimate() - 2.0).abs() < 0.01 && (peers.estimate() - 1.0).abs() < 0.01);
        assert!(seeds.contains(ip(3).ip()) && !peers.contains(ip(3).ip()));
        assert!(peers.contains(ip(2).ip()));
        assert_eq!(store.filters(&InfoHash([2; 20])), None);
    }

    #[test]
    fn entries_expire_after_thirty_minutes() {
        let a = InfoHash([1; 20]);
        let mut store = PeerStore::new(100, 100);
        store.announce(a, peer(1), false, secs(0));
        store.announce(a, peer(2), false, secs(600));
        store.expire(secs(29 * 60));
        assert_eq!(store.len(), 2);
        store.expire(secs(30 * 60));
        assert_eq!(store.len(), 1);
        store.expire(secs(40 * 60));
        assert!(store.is_empty());
        let mut zero = PeerStore::new(0, 0);
        zero.announce(a, peer(1), false, secs(0));
        assert!(zero.is_empty());
    }
}
