//! The querying half of the [`Dht`]: sending queries under the rate limit, matching answers
//! to them, feeding lookups, and finishing lookups (announces and events).

use std::net::SocketAddr;

use rand::Rng;

use super::krpc::{Body, Message, Method, Query, Response, Want};
use super::lookup::{Answer, LookupKind, Purpose};
use super::node::{Family, NodeId, NodeInfo};
use super::routing::Insert;
use super::{Bootstrap, Dht, DhtEvent, DhtOutput, Pending, QueryPurpose, Queued, MAX_PENDING};
use crate::types::Instant;

/// What one `announce_peer` says besides the info-hash.
struct AnnounceArgs {
    port: u16,
    implied_port: bool,
    seed: bool,
    token: Vec<u8>,
}

impl Dht {
    /// Sends queued pings and announces, then lookup queries, while the rate limit allows.
    pub(super) fn pump(&mut self, now: Instant) {
        self.throttled_until = None;
        while !self.queued.is_empty() {
            if !self.may_send(now) {
                return;
            }
            let Some(q) = self.queued.pop_front() else { break };
            if !self.send_query(q.to, q.expect, q.method, q.purpose, now) && q.purpose == QueryPurpose::Ping {
                self.pinging.remove(&q.to);
            }
        }
        let ids: Vec<_> = self.lookups.keys().copied().collect();
        for id in ids {
            for family in Family::ALL {
                loop {
                    if !self.may_send(now) {
                        return;
                    }
                    let alpha = self.config.alpha;
                    let Some(lookup) = self.lookups.get_mut(&id) else { break };
                    let kind = lookup.kind;
                    let target = lookup.target;
                    let Some((to, expect)) = lookup.search_mut(family).and_then(|s| s.next_query(alpha)) else {
                        break;
                    };
                    let method = match kind {
                        LookupKind::FindNode => Method::FindNode { target },
                        LookupKind::GetPeers | LookupKind::Announce { .. } | LookupKind::Scrape => {
                            let scrape = kind == LookupKind::Scrape;
                            Method::GetPeers { info_hash: crate::types::InfoHash(target.0), scrape }
                        }
                    };
                    if !self.send_query(to, expect, method, QueryPurpose::Lookup { lookup: id, family }, now) {
                        if let Some(search) = self.lookups.get_mut(&id).and_then(|l| l.search_mut(family)) {
                            search.failed(to);
                        }
                    }
                }
            }
        }
    }

    /// Whether one more query may go out now (without using the allowance: `send_query` does);
    /// records when to retry if not.
    fn may_send(&mut self, now: Instant) -> bool {
        if self.pending.len() >= MAX_PENDING {
            // Answers and time-outs free slots; both wake us anyway.
            return false;
        }
        if self.outgoing.ready(now) {
            return true;
        }
        self.throttled_until = Some(self.outgoing.next_available(now));
        false
    }

    /// Encodes and emits a query, remembering it under a fresh transaction id, and counts it
    /// against the rate limit ([`Dht::may_send`] said yes). Returns false if no transaction id
    /// was free.
    fn send_query(
        &mut self,
        to: SocketAddr,
        expect: Option<NodeId>,
        method: Method,
        purpose: QueryPurpose,
        now: Instant,
    ) -> bool {
        let Some(tid) = (0..16).map(|_| self.rng.random::<u16>()).find(|t| !self.pending.contains_key(t)) else {
            return false;
        };
        let want = if self.config.ipv4 && self.config.ipv6 && !matches!(method, Method::Ping) {
            Want { v4: true, v6: true }
        } else {
            Want::default()
        };
        let msg = Message {
            tid: tid.to_be_bytes().to_vec(),
            version: Some(self.config.version.clone()),
            ip: None,
            read_only: false,
            body: Body::Query(Query { id: self.id, want, method }),
        };
        self.outputs.push_back(DhtOutput::Send { to, data: msg.encode() });
        self.outgoing.try_take(now);
        let deadline = now + self.config.query_timeout;
        self.pending.insert(tid, Pending { to, expect, deadline, purpose });
        self.deadlines.insert((deadline, tid));
        true
    }

    /// Removes and returns the pending query `tid` if `from` is where it went.
    fn take_pending(&mut self, from: SocketAddr, tid: &[u8]) -> Option<Pending> {
        let tid = u16::from_be_bytes(tid.try_into().ok()?);
        if self.pending.get(&tid)?.to != from {
            // A different source guessing our transaction id: ignore it.
            return None;
        }
        let p = self.pending.remove(&tid)?;
        self.deadlines.remove(&(p.deadline, tid));
        if p.purpose == QueryPurpose::Ping {
            self.pinging.remove(&p.to);
        }
        Some(p)
    }

    /// An answer to one of our queries.
    pub(super) fn handle_response(&mut self, from: SocketAddr, tid: &[u8], r: Response, now: Instant) {
        let Some(p) = self.take_pending(from, tid) else { return };
        let family = Family::of(&from);
        let mismatch = p.expect.is_some_and(|id| id != r.id);
        if mismatch {
            // The node at that address is not who we thought: forget the old entry.
            if let Some(old) = p.expect {
                self.table_mut(family).failed(&old, from, now);
            }
        }
        if r.id != self.id && !self.bootstrap_addrs.contains(&from) {
            let info = NodeInfo { id: r.id, addr: from };
            if let Insert::Full { ping: Some(stale) } = self.table_mut(family).insert(info, now) {
                self.queue_ping(stale);
            }
            // A first node (say one given by the user, answering our ping): bootstrap from it
            // now instead of at the next retry.
            if let Bootstrap::Waiting { .. } = self.bootstrap {
                self.start_bootstrap(now);
            }
        }
        let QueryPurpose::Lookup { lookup, family: search_family } = p.purpose else { return };
        let Some(l) = self.lookups.get_mut(&lookup) else { return };
        let Some(search) = l.search_mut(search_family) else { return };
        let Answer::Accepted { depth } = search.answered(from, r.id, r.token) else { return };
        if let Some(s) = l.search_mut(Family::V4) {
            s.add_learned(&r.nodes, depth);
        }
        if let Some(s) = l.search_mut(Family::V6) {
            s.add_learned(&r.nodes6, depth);
        }
        if let Some(tally) = &mut l.tally {
            tally.add_answer(&r.values, r.bloom_seeds.as_ref(), r.bloom_peers.as_ref());
        }
        let wants_peers = matches!(l.kind, LookupKind::GetPeers | LookupKind::Announce { .. });
        if wants_peers && l.purpose == Purpose::User && !r.values.is_empty() {
            let peers = l.new_peers(&r.values);
            if !peers.is_empty() {
                let event = DhtEvent::Peers { lookup, info_hash: l.info_hash(), peers };
                self.outputs.push_back(DhtOutput::Event(event));
            }
        }
    }

    /// A KRPC error in answer to one of our queries: the node is alive but refused.
    pub(super) fn handle_error(&mut self, from: SocketAddr, tid: &[u8]) {
        let Some(p) = self.take_pending(from, tid) else { return };
        if let QueryPurpose::Lookup { lookup, family } = p.purpose {
            if let Some(search) = self.lookups.get_mut(&lookup).and_then(|l| l.search_mut(family)) {
                search.failed(from);
            }
        }
    }

    /// Fails every query whose deadline has passed.
    pub(super) fn expire_queries(&mut self, now: Instant) {
        while let Some(&(deadline, tid)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            let Some(p) = self.pending.remove(&tid) else { continue };
            if p.purpose == QueryPurpose::Ping {
                self.pinging.remove(&p.to);
            }
            if let Some(id) = p.expect {
                self.table_mut(Family::of(&p.to)).failed(&id, p.to, now);
            }
            if let QueryPurpose::Lookup { lookup, family } = p.purpose {
                if let Some(search) = self.lookups.get_mut(&lookup).and_then(|l| l.search_mut(family)) {
                    search.failed(p.to);
                }
            }
        }
    }

    /// Ends lookups that converged or ran out of time: announces, events, bootstrap state.
    /// Returns whether any ended (so queued announces get a chance to go out).
    pub(super) fn finish_lookups(&mut self, now: Instant) -> bool {
        let done: Vec<_> =
            self.lookups.iter().filter(|(_, l)| l.is_done() || now >= l.deadline).map(|(id, _)| *id).collect();
        for id in &done {
            // Invariant: the id was just collected from the map.
            let l = self.lookups.remove(id).expect("lookup exists");
            for family in Family::ALL {
                if self.family_enabled(family) {
                    self.table_mut(family).touch_target(&l.target, now);
                }
            }
            if let LookupKind::Announce { port, implied_port, seed } = l.kind {
                for search in l.searches.iter().flatten() {
                    for (node, token) in search.announce_targets() {
                        self.queue_announce(node, AnnounceArgs { port, implied_port, seed, token }, &l.info_hash());
                    }
                }
            }
            match l.purpose {
                Purpose::User => {
                    if let Some(tally) = &l.tally {
                        let swarm = tally.finish();
                        let event = DhtEvent::Scraped { lookup: *id, info_hash: l.info_hash(), swarm };
                        self.outputs.push_back(DhtOutput::Event(event));
                    }
                    let event = DhtEvent::LookupDone {
                        lookup: *id,
                        info_hash: l.info_hash(),
                        hops: l.hops(),
                        queried: l.queried(),
                    };
                    self.outputs.push_back(DhtOutput::Event(event));
                }
                Purpose::Bootstrap => self.bootstrap_finished(*id, now),
                Purpose::Refresh => {}
            }
        }
        !done.is_empty()
    }

    fn queue_announce(&mut self, node: NodeInfo, args: AnnounceArgs, info_hash: &crate::types::InfoHash) {
        if self.queued.len() >= super::MAX_QUEUED {
            return;
        }
        let AnnounceArgs { port, implied_port, seed, token } = args;
        let method = Method::AnnouncePeer { info_hash: *info_hash, port: Some(port), implied_port, token, seed };
        // Announces jump the queue: they complete work the user is waiting for.
        self.queued.push_front(Queued {
            to: node.addr,
            expect: Some(node.id),
            method,
            purpose: QueryPurpose::Announce,
        });
    }

    fn bootstrap_finished(&mut self, id: super::LookupId, now: Instant) {
        if self.bootstrap != (Bootstrap::Running { lookup: id }) {
            return;
        }
        let reached = Family::ALL.into_iter().any(|f| self.family_enabled(f) && self.table_len(f) > 0);
        if reached {
            self.bootstrap = Bootstrap::Done;
            self.outputs.push_back(DhtOutput::Event(DhtEvent::Bootstrapped));
            // The self-lookup filled the buckets near our id; one lookup into each farther
            // bucket fills the rest, as Kademlia's join does.
            for family in self.families() {
                let buckets = self.tables[family.index()].bucket_count();
                for index in 0..buckets.saturating_sub(1) {
                    let target = self.tables[family.index()].random_id_in_bucket(index, &mut self.rng);
                    self.start_lookup(target, LookupKind::FindNode, Purpose::Refresh, now);
                }
            }
        } else {
            self.bootstrap = Bootstrap::Waiting { retry_at: now + super::BOOTSTRAP_RETRY };
        }
    }
}
