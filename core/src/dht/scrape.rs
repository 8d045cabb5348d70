//! Counting a swarm from `get_peers` answers (BEP 33 DHT scrape).
//!
//! A [`ScrapeTally`] takes every answer of one scrape lookup: the peers in `values`, and the
//! `BFsd`/`BFpe` filters where the node sent them. Filters are merged by union; answers with
//! only `values` (nodes without BEP 33) count their IPs as peers, unless the merged seed filter
//! already holds them, as the BEP's "legacy responses" section says. [`ScrapeTally::finish`]
//! turns that into a [`SwarmCount`].
//!
//! Filters are hostile input like anything else. A node's pair is dropped when it is not
//! plausible: a filter saying more than [`MAX_FILTER_ENTRIES`] IPs (the BEP asks nodes to stay
//! below that, and past it a filter only says "full"), or `values` that neither of its own
//! filters holds (the BEP's suggested sanity check: the values come from the same store). Its
//! `values` still count, as a legacy answer's.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use super::bloom::ScrapeBloom;

/// Largest set a node's filter may claim (BEP 33: nodes keep `max(seeds, peers)` below 6000).
pub(super) const MAX_FILTER_ENTRIES: f64 = 6000.0;
/// Most distinct peer addresses (and values-only IPs) remembered per scrape.
const MAX_SEEN: usize = 4096;

/// What a DHT scrape found for one info-hash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SwarmCount {
    /// Seeds: the BEP 33 estimate over the union of the `BFsd` filters.
    pub seeders: u32,
    /// Non-seeds: the BEP 33 estimate over the union of the `BFpe` filters and the IPs that
    /// nodes without BEP 33 returned in `values` (those not among the seeds).
    pub leechers: u32,
    /// Distinct peer addresses (IP and port) returned in `values`.
    pub peers_seen: u32,
    /// Nodes that answered the lookup's `get_peers`.
    pub nodes_answered: u32,
    /// Of those, nodes whose answer carried plausible BEP 33 filters.
    pub nodes_with_filters: u32,
}

/// The running sums of one scrape lookup.
#[derive(Clone, Debug, Default)]
pub struct ScrapeTally {
    seeds: ScrapeBloom,
    peers: ScrapeBloom,
    /// IPs from answers without usable filters, counted as peers at the end.
    legacy_ips: BTreeSet<IpAddr>,
    seen: BTreeSet<SocketAddr>,
    answered: u32,
    with_filters: u32,
}

impl ScrapeTally {
    /// An empty tally.
    pub fn new() -> Self {
        Self::default()
    }

    /// One node's answer: its `values` and its `BFsd` (`seeds`) and `BFpe` (`peers`) filters,
    /// each `None` if absent or not 256 bytes.
    pub fn add_answer(&mut self, values: &[SocketAddr], seeds: Option<&ScrapeBloom>, peers: Option<&ScrapeBloom>) {
        self.answered = self.answered.saturating_add(1);
        for v in values {
            if self.seen.len() >= MAX_SEEN {
                break;
            }
            self.seen.insert(*v);
        }
        if Self::plausible(values, seeds, peers) {
            self.with_filters = self.with_filters.saturating_add(1);
            if let Some(s) = seeds {
                self.seeds.union(s);
            }
            if let Some(p) = peers {
                self.peers.union(p);
            }
        } else {
            for v in values {
                if self.legacy_ips.len() >= MAX_SEEN {
                    break;
                }
                self.legacy_ips.insert(v.ip().to_canonical());
            }
        }
    }

    /// Whether a node's filters are worth merging: at least one, none claiming more than
    /// [`MAX_FILTER_ENTRIES`], and every returned peer's IP in one of them.
    fn plausible(values: &[SocketAddr], seeds: Option<&ScrapeBloom>, peers: Option<&ScrapeBloom>) -> bool {
        if seeds.is_none() && peers.is_none() {
            return false;
        }
        let filters = || seeds.into_iter().chain(peers);
        if filters().any(|f| f.estimate() > MAX_FILTER_ENTRIES) {
            return false;
        }
        values.iter().all(|v| filters().any(|f| f.contains(v.ip())))
    }

    /// The counts so far.
    pub fn finish(&self) -> SwarmCount {
        let mut peers = self.peers.clone();
        for ip in &self.legacy_ips {
            // A values-only peer the seed filters know is a seed already (BEP 33).
            if !self.seeds.contains(*ip) {
                peers.insert(*ip);
            }
        }
        SwarmCount {
            seeders: round(self.seeds.estimate()),
            leechers: round(peers.estimate()),
            peers_seen: self.seen.len() as u32,
            nodes_answered: self.answered,
            nodes_with_filters: self.with_filters,
        }
    }
}

/// An estimate as a whole count (estimates are finite and below 8,000: see
/// [`ScrapeBloom::estimate`]).
fn round(estimate: f64) -> u32 {
    estimate.round().clamp(0.0, f64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn ip(n: u32) -> IpAddr {
        Ipv4Addr::from(0x0a00_0000 | n).into()
    }

    fn peer(n: u32, port: u16) -> SocketAddr {
        SocketAddr::new(ip(n), port)
    }

    fn filter(range: std::ops::Range<u32>) -> ScrapeBloom {
        let mut f = ScrapeBloom::new();
        for n in range {
            f.insert(ip(n));
        }
        f
    }

    #[test]
    fn filters_of_several_nodes_merge_into_one_count() {
        let mut t = ScrapeTally::new();
        // Node A stores seeds 0..30 and peers 100..150; node B seeds 20..40 and peers 140..170.
        t.add_answer(&[peer(25, 1), peer(100, 2)], Some(&filter(0..30)), Some(&filter(100..150)));
        t.add_answer(&[peer(25, 1), peer(25, 9), peer(145, 2)], Some(&filter(20..40)), Some(&filter(140..170)));
        let c = t.finish();
        assert!(c.seeders.abs_diff(40) <= 2, "{c:?}");
        assert!(c.leechers.abs_diff(70) <= 3, "{c:?}");
        assert_eq!(c.peers_seen, 4, "one address twice, one IP on two ports");
        assert_eq!((c.nodes_answered, c.nodes_with_filters), (2, 2));
    }

    #[test]
    fn values_only_answers_count_as_peers_unless_known_seeds() {
        let mut t = ScrapeTally::new();
        t.add_answer(&[], Some(&filter(0..10)), Some(&ScrapeBloom::new()));
        // A node without BEP 33: IPs 5..8 are seeds per the other node, 50..53 are new.
        let legacy: Vec<_> = (5..8).chain(50..53).map(|n| peer(n, 6881)).collect();
        t.add_answer(&legacy, None, None);
        let c = t.finish();
        assert_eq!((c.seeders, c.leechers, c.peers_seen), (10, 3, 6), "{c:?}");
        assert_eq!((c.nodes_answered, c.nodes_with_filters), (2, 1));
    }

    #[test]
    fn implausible_filters_are_dropped_but_values_still_count() {
        let mut t = ScrapeTally::new();
        // A full filter claims ~7,600 seeds.
        let full = ScrapeBloom::from_bytes(&[0xff; 256]).unwrap();
        t.add_answer(&[peer(1, 1)], Some(&full), None);
        // Filters that do not hold the node's own values.
        t.add_answer(&[peer(2, 1)], Some(&filter(100..200)), Some(&filter(300..310)));
        let c = t.finish();
        assert_eq!((c.seeders, c.leechers, c.peers_seen), (0, 2, 2), "{c:?}");
        assert_eq!((c.nodes_answered, c.nodes_with_filters), (2, 0));
    }

    #[test]
    fn nobody_answering_says_zero() {
        assert_eq!(ScrapeTally::new().finish(), SwarmCount::default());
    }

    #[test]
    fn seen_addresses_are_bounded() {
        let mut t = ScrapeTally::new();
        for chunk in 0..50u32 {
            let values: Vec<_> = (0..200).map(|n| peer(chunk * 200 + n, 1)).collect();
            t.add_answer(&values, None, None);
        }
        let c = t.finish();
        assert_eq!(c.peers_seen as usize, MAX_SEEN);
        // The values-only IPs are bounded the same way: 4,096 of the 10,000 went in.
        assert!(c.leechers.abs_diff(4096) < 300, "{c:?}");
    }
}
