//! Iterative Kademlia lookups: ask the closest known nodes, learn closer ones, repeat.
//!
//! A [`Search`] runs in one address family. It keeps candidates sorted by XOR distance to the
//! target, has at most `alpha` queries in flight, only queries candidates that are among the K
//! closest still alive, and is done when the K closest live candidates have all answered (or
//! nothing is left to ask). Each candidate remembers its hop depth: seeds are hop 1, nodes
//! learned from a hop-n answer are hop n+1, and candidates deeper than the hop limit are never
//! queried, so a lookup cannot wander forever. A [`Lookup`] groups the searches of one user
//! request (one per enabled family) with what it has found so far: for a scrape, the
//! `ScrapeTally` of every answer.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use super::node::{Family, NodeId, NodeInfo};
use super::routing::K;
use super::scrape::ScrapeTally;
use crate::types::{InfoHash, Instant};

/// Candidates kept per search beyond the ones in flight; farther ones are forgotten.
const MAX_CANDIDATES: usize = 8 * K;
/// Most peers remembered per lookup for de-duplication.
const MAX_PEERS_SEEN: usize = 4096;

/// Where a candidate is in its conversation with us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CandidateState {
    /// Not asked yet.
    Fresh,
    /// Asked; no answer yet.
    InFlight,
    /// Answered, with the token it gave (for `get_peers`).
    Answered {
        /// Token for `announce_peer`, if any.
        token: Option<Vec<u8>>,
    },
    /// Timed out, answered with an error, or is too many hops away.
    Failed,
}

/// A node a search may ask.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Its id; unknown for bootstrap addresses until they answer.
    pub id: Option<NodeId>,
    /// Its address.
    pub addr: SocketAddr,
    /// Hops from us: 1 for seeds.
    pub depth: u32,
    /// Progress.
    pub state: CandidateState,
}

/// What an answer did to the search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Counted; nodes it returned are at this depth + 1.
    Accepted {
        /// The answering candidate's depth.
        depth: u32,
    },
    /// The id did not match the one we expected at that address: ignored as a failure.
    Mismatch,
}

/// One family's part of a lookup.
#[derive(Debug, Clone)]
pub struct Search {
    target: NodeId,
    own: NodeId,
    max_hops: u32,
    max_queries: usize,
    candidates: Vec<Candidate>,
    in_flight: usize,
    queried: usize,
    deepest_answer: u32,
}

impl Search {
    /// An empty search for `target`; `own` is never queried.
    pub fn new(target: NodeId, own: NodeId, max_hops: u32, max_queries: usize) -> Self {
        Search {
            target,
            own,
            max_hops,
            max_queries,
            candidates: Vec::new(),
            in_flight: 0,
            queried: 0,
            deepest_answer: 0,
        }
    }

    /// Nodes queried so far.
    pub fn queried(&self) -> usize {
        self.queried
    }

    /// Depth of the deepest node that answered.
    pub fn hops(&self) -> u32 {
        self.deepest_answer
    }

    /// Queries in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// The candidates, closest first.
    pub fn candidates(&self) -> &[Candidate] {
        &self.candidates
    }

    /// Adds a starting point (hop 1); `id` is `None` for a bootstrap address.
    pub fn add_seed(&mut self, id: Option<NodeId>, addr: SocketAddr) {
        self.add(id, addr, 1);
        self.sort_and_trim();
    }

    /// Adds nodes learned from an answer by a node at `depth`.
    pub fn add_learned(&mut self, nodes: &[NodeInfo], depth: u32) {
        for n in nodes {
            self.add(Some(n.id), n.addr, depth.saturating_add(1));
        }
        self.sort_and_trim();
    }

    fn add(&mut self, id: Option<NodeId>, addr: SocketAddr, depth: u32) {
        if id == Some(self.own) {
            return;
        }
        let known = self.candidates.iter().any(|c| c.addr == addr || (id.is_some() && c.id == id));
        if !known {
            self.candidates.push(Candidate { id, addr, depth, state: CandidateState::Fresh });
        }
    }

    /// Sorts by distance (unknown ids last) and forgets far candidates not in flight.
    fn sort_and_trim(&mut self) {
        let target = self.target;
        self.candidates.sort_by_key(|c| match c.id {
            Some(id) => (false, id.distance(&target)),
            None => (true, [0xff; 20]),
        });
        let mut index = 0;
        self.candidates.retain(|c| {
            index += 1;
            index <= MAX_CANDIDATES || c.state == CandidateState::InFlight
        });
    }

    /// The next node to ask, if the search wants one now; marks it in flight.
    pub fn next_query(&mut self, alpha: usize) -> Option<(SocketAddr, Option<NodeId>)> {
        if self.in_flight >= alpha || self.queried >= self.max_queries {
            return None;
        }
        let mut live = 0;
        for c in self.candidates.iter_mut() {
            if live >= K {
                break;
            }
            match c.state {
                CandidateState::Failed => {}
                CandidateState::Fresh if c.depth > self.max_hops => c.state = CandidateState::Failed,
                CandidateState::Fresh => {
                    c.state = CandidateState::InFlight;
                    self.in_flight += 1;
                    self.queried += 1;
                    return Some((c.addr, c.id));
                }
                CandidateState::InFlight | CandidateState::Answered { .. } => live += 1,
            }
        }
        None
    }

    /// Records the answer of the node at `addr` (a query of this search, in flight).
    pub fn answered(&mut self, addr: SocketAddr, id: NodeId, token: Option<Vec<u8>>) -> Answer {
        self.in_flight = self.in_flight.saturating_sub(1);
        let Some(c) = self.candidates.iter_mut().find(|c| c.addr == addr && c.state == CandidateState::InFlight) else {
            // Trimmed away meanwhile; its nodes may still help.
            return Answer::Accepted { depth: self.max_hops };
        };
        if c.id.is_some_and(|expected| expected != id) || id == self.own {
            c.state = CandidateState::Failed;
            return Answer::Mismatch;
        }
        c.id = Some(id);
        c.state = CandidateState::Answered { token };
        let depth = c.depth;
        self.deepest_answer = self.deepest_answer.max(depth);
        self.sort_and_trim();
        Answer::Accepted { depth }
    }

    /// Records that the query to `addr` timed out or was refused.
    pub fn failed(&mut self, addr: SocketAddr) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if let Some(c) = self.candidates.iter_mut().find(|c| c.addr == addr && c.state == CandidateState::InFlight) {
            c.state = CandidateState::Failed;
        }
    }

    /// Whether the search has converged or run out of things to do.
    pub fn is_done(&self) -> bool {
        if self.in_flight > 0 {
            // Answers may still bring closer nodes.
            let mut answered = 0;
            for c in &self.candidates {
                match c.state {
                    CandidateState::Failed => {}
                    CandidateState::Answered { .. } => answered += 1,
                    CandidateState::Fresh | CandidateState::InFlight => return false,
                }
                if answered >= K {
                    return true;
                }
            }
            return false;
        }
        if self.queried >= self.max_queries {
            return true;
        }
        let mut live = 0;
        for c in &self.candidates {
            match c.state {
                CandidateState::Failed => {}
                CandidateState::Fresh if c.depth <= self.max_hops => return false,
                CandidateState::Fresh => {}
                CandidateState::InFlight | CandidateState::Answered { .. } => live += 1,
            }
            if live >= K {
                break;
            }
        }
        true
    }

    /// The K closest nodes that answered with a token: where to announce.
    pub fn announce_targets(&self) -> Vec<(NodeInfo, Vec<u8>)> {
        self.candidates
            .iter()
            .filter_map(|c| match (&c.state, c.id) {
                (CandidateState::Answered { token: Some(token) }, Some(id)) => {
                    Some((NodeInfo { id, addr: c.addr }, token.clone()))
                }
                _ => None,
            })
            .take(K)
            .collect()
    }
}

/// What a lookup is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupKind {
    /// `find_node` (bootstrap and bucket refresh).
    FindNode,
    /// `get_peers` only.
    GetPeers,
    /// `get_peers`, then `announce_peer` to the closest nodes that gave tokens.
    Announce {
        /// Our peer port.
        port: u16,
        /// Ask announcees to use the UDP source port instead.
        implied_port: bool,
        /// Tell them we have the whole torrent (BEP 33 `seed=1`).
        seed: bool,
    },
    /// `get_peers` with BEP 33 `scrape=1`: counts the swarm instead of reporting peers.
    Scrape,
}

/// Who started a lookup, which decides what happens when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The application: report peers and completion.
    User,
    /// Our own bootstrap.
    Bootstrap,
    /// Refresh of a stale bucket.
    Refresh,
}

/// One lookup across the enabled families.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// What it asks.
    pub kind: LookupKind,
    /// Who asked.
    pub purpose: Purpose,
    /// The id or info-hash looked for.
    pub target: NodeId,
    /// Per-family searches, `None` where the family is disabled.
    pub searches: [Option<Search>; 2],
    /// Peers already reported.
    pub peers_seen: BTreeSet<SocketAddr>,
    /// What a [`LookupKind::Scrape`] counted so far (`None` for other kinds).
    pub tally: Option<ScrapeTally>,
    /// When it gives up.
    pub deadline: Instant,
}

impl Lookup {
    /// The info-hash, for user-facing events.
    pub fn info_hash(&self) -> InfoHash {
        InfoHash(self.target.0)
    }

    /// The search of `family`, if enabled.
    pub fn search_mut(&mut self, family: Family) -> Option<&mut Search> {
        self.searches[family.index()].as_mut()
    }

    /// Whether every search is done.
    pub fn is_done(&self) -> bool {
        self.searches.iter().flatten().all(Search::is_done)
    }

    /// Queries sent, all families.
    pub fn queried(&self) -> usize {
        self.searches.iter().flatten().map(Search::queried).sum()
    }

    /// Deepest hop that answered, any family.
    pub fn hops(&self) -> u32 {
        self.searches.iter().flatten().map(Search::hops).max().unwrap_or(0)
    }

    /// Keeps the peers not reported yet, and remembers them.
    pub fn new_peers(&mut self, values: &[SocketAddr]) -> Vec<SocketAddr> {
        let mut fresh = Vec::new();
        for p in values {
            if self.peers_seen.len() >= MAX_PEERS_SEEN {
                break;
            }
            if self.peers_seen.insert(*p) {
                fresh.push(*p);
            }
        }
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(first: u8) -> NodeId {
        let mut b = [0u8; 20];
        b[0] = first;
        NodeId(b)
    }

    fn addr(n: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, n], 6881))
    }

    fn info(n: u8) -> NodeInfo {
        NodeInfo { id: id(n), addr: addr(n) }
    }

    #[test]
    fn queries_closest_first_with_alpha_in_flight() {
        let mut s = Search::new(id(0), id(0xff), 10, 100);
        for n in [40u8, 10, 30, 20] {
            s.add_seed(Some(id(n)), addr(n));
        }
        let asked: Vec<_> = std::iter::from_fn(|| s.next_query(3)).map(|(a, _)| a).collect();
        assert_eq!(asked, vec![addr(10), addr(20), addr(30)]);
        assert_eq!(s.in_flight(), 3);
        // An answer with closer nodes: those go next, one hop deeper.
        assert_eq!(s.answered(addr(10), id(10), None), Answer::Accepted { depth: 1 });
        s.add_learned(&[info(1), info(2)], 1);
        assert_eq!(s.next_query(3), Some((addr(1), Some(id(1)))));
        assert_eq!(s.candidates()[0].depth, 2);
        assert!(!s.is_done());
    }

    #[test]
    fn done_when_the_k_closest_answered_or_failed() {
        let mut s = Search::new(id(0), id(0xff), 10, 100);
        for n in 1..=12u8 {
            s.add_seed(Some(id(n)), addr(n));
        }
        let mut rounds = 0;
        while !s.is_done() {
            while let Some((a, i)) = s.next_query(3) {
                // Node 2 never answers; everyone else answers with nothing new.
                if a == addr(2) {
                    s.failed(a);
                } else {
                    s.answered(a, i.unwrap(), Some(vec![a.ip().to_string().len() as u8]));
                }
            }
            rounds += 1;
            assert!(rounds < 50);
        }
        // K answered: nodes 1 and 3..=9. Node 10 onward was never needed.
        assert_eq!(s.queried(), 9);
        let targets: Vec<NodeId> = s.announce_targets().into_iter().map(|(n, _)| n.id).collect();
        assert_eq!(targets.len(), K);
        assert!(!targets.contains(&id(2)));
    }

    #[test]
    fn hop_limit_and_query_budget_bound_the_search() {
        let mut s = Search::new(id(0), id(0xff), 2, 100);
        s.add_seed(Some(id(100)), addr(100));
        let (a, _) = s.next_query(3).unwrap();
        s.answered(a, id(100), None);
        s.add_learned(&[info(50)], 1);
        let (a, _) = s.next_query(3).unwrap();
        s.answered(a, id(50), None);
        // Hop 3 is past the limit: never asked, and the search ends.
        s.add_learned(&[info(25)], 2);
        assert_eq!(s.next_query(3), None);
        assert!(s.is_done());
        assert_eq!(s.hops(), 2);

        let mut budget = Search::new(id(0), id(0xff), 10, 2);
        for n in 1..=5u8 {
            budget.add_seed(Some(id(n)), addr(n));
        }
        assert!(budget.next_query(3).is_some() && budget.next_query(3).is_some());
        assert_eq!(budget.next_query(3), None);
        budget.failed(addr(1));
        budget.failed(addr(2));
        assert!(budget.is_done());
    }

    #[test]
    fn impostors_and_our_own_id_are_not_counted() {
        let own = id(0xff);
        let mut s = Search::new(id(0), own, 10, 100);
        s.add_seed(Some(id(5)), addr(5));
        s.add_seed(None, addr(9));
        s.add_learned(&[NodeInfo { id: own, addr: addr(77) }], 1);
        assert_eq!(s.candidates().len(), 2);
        let (a, _) = s.next_query(3).unwrap();
        assert_eq!(s.answered(a, id(6), None), Answer::Mismatch);
        // A bootstrap address takes whatever id it answers with.
        let (b, expected) = s.next_query(3).unwrap();
        assert_eq!((b, expected), (addr(9), None));
        assert_eq!(s.answered(b, id(9), None), Answer::Accepted { depth: 1 });
        assert!(s.is_done());
    }

    #[test]
    fn lookup_reports_each_peer_once() {
        let mut l = Lookup {
            kind: LookupKind::GetPeers,
            purpose: Purpose::User,
            target: id(1),
            searches: [Some(Search::new(id(1), id(2), 10, 10)), None],
            peers_seen: BTreeSet::new(),
            tally: None,
            deadline: Instant::ZERO,
        };
        assert_eq!(l.new_peers(&[addr(1), addr(2)]), vec![addr(1), addr(2)]);
        assert_eq!(l.new_peers(&[addr(2), addr(3)]), vec![addr(3)]);
        assert!(l.is_done());
    }
}
