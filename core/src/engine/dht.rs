//! The engine's use of the DHT (BEP 5): public torrents find peers there and announce
//! themselves every 15 minutes (seeds say so: BEP 33 `seed=1`); the peers found join the
//! torrents' candidates. The application may also count the swarm of any info-hash
//! ([`super::Engine::dht_scrape`], BEP 33): at most [`MAX_RUNNING_SCRAPES`] run at once, the
//! rest wait in a bounded queue, and each ends with one [`super::Event::DhtScrape`].
//!
//! The [`Dht`] machine does the protocol; this link decides when each torrent looks and where
//! the answers go. The runtime moves the datagrams ([`UdpIo::Dht`]) and resolves
//! bootstrap host names ([`Output::Resolve`]).

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use super::event::DhtScrapeId;
use super::output::{Output, UdpIo};
use crate::dht::{Dht, DhtEvent, DhtOutput, LookupId, SwarmCount};
use crate::net_policy::NetPolicy;
use crate::types::{InfoHash, Instant, TorrentId};

/// How often a torrent announces itself (peers stored by others expire after 30 minutes).
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(15 * 60);

/// When a lookup found no peer at all, the next one comes this soon (the swarm may simply not
/// have announced yet).
pub(super) const RETRY_EMPTY: Duration = Duration::from_secs(60);

/// Scrapes running at once (BEP 33 suggests limiting them, "e.g. 4 during startup").
pub const MAX_RUNNING_SCRAPES: usize = 4;

/// Scrapes waiting for a free slot; more are refused ([`DhtScrapeError::Busy`]).
pub const MAX_QUEUED_SCRAPES: usize = 1024;

/// Why a DHT scrape did not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DhtScrapeError {
    /// [`super::Engine::enable_dht`] was not called.
    #[error("the DHT is off")]
    Off,
    /// [`MAX_QUEUED_SCRAPES`] scrapes are waiting already.
    #[error("too many DHT scrapes are waiting")]
    Busy,
}

/// What the DHT found, per torrent, for the user interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DhtTorrentStatus {
    /// The DHT is on and has reached the network.
    pub working: bool,
    /// Peers the DHT returned for the torrent so far.
    pub peers: u32,
}

/// The DHT and the engine's bookkeeping around it.
pub(crate) struct DhtLink {
    pub dht: Dht,
    /// Which torrent each running lookup is for, and how many peers it found so far.
    lookups: BTreeMap<LookupId, (TorrentId, u32)>,
    /// When each torrent announces next.
    next: BTreeMap<TorrentId, Instant>,
    /// Peers found per torrent.
    found: BTreeMap<TorrentId, u32>,
    /// Running scrapes by their lookup.
    scrapes: BTreeMap<LookupId, DhtScrapeId>,
    /// Scrapes waiting for a slot, with the time they were asked for.
    waiting: VecDeque<(DhtScrapeId, InfoHash, Instant)>,
    next_scrape: u64,
}

/// What the engine must do after the DHT spoke.
pub(crate) enum Action {
    /// Send or resolve: pass on to the runtime.
    Output(Output),
    /// Peers for a torrent.
    Peers(TorrentId, Vec<SocketAddr>),
    /// A scrape ended.
    Scraped(DhtScrapeId, InfoHash, SwarmCount),
}

impl DhtLink {
    pub(super) fn new(dht: Dht) -> DhtLink {
        DhtLink {
            dht,
            lookups: BTreeMap::new(),
            next: BTreeMap::new(),
            found: BTreeMap::new(),
            scrapes: BTreeMap::new(),
            waiting: VecDeque::new(),
            next_scrape: 0,
        }
    }

    /// Starts the lookups that are due. `due` lists the torrents that may use the DHT now
    /// (active and not private), with their info-hashes and whether we seed them.
    pub(super) fn schedule(&mut self, due: &[(TorrentId, InfoHash, bool)], port: u16, now: Instant) {
        self.next.retain(|t, _| due.iter().any(|(d, _, _)| d == t));
        self.start_scrapes(now);
        if !self.dht.is_bootstrapped() {
            return;
        }
        for (t, ih, seed) in due {
            let at = self.next.entry(*t).or_insert(now);
            if now >= *at {
                *at = now + ANNOUNCE_EVERY;
                let lookup = self.dht.announce_as(*ih, port, false, *seed, now);
                self.lookups.insert(lookup, (*t, 0));
            }
        }
    }

    /// Makes every torrent's announce due at the next [`DhtLink::schedule`] (our port changed).
    pub(super) fn announce_again(&mut self) {
        self.next.clear();
    }

    /// Queues a count of `info_hash`'s swarm; it starts as soon as a slot is free.
    pub(super) fn scrape(&mut self, info_hash: InfoHash, now: Instant) -> Result<DhtScrapeId, DhtScrapeError> {
        if self.waiting.len() >= MAX_QUEUED_SCRAPES {
            return Err(DhtScrapeError::Busy);
        }
        let id = DhtScrapeId(self.next_scrape);
        self.next_scrape += 1;
        self.waiting.push_back((id, info_hash, now));
        self.start_scrapes(now);
        Ok(id)
    }

    /// Starts waiting scrapes while slots are free. Before the DHT has reached the network a
    /// scrape would ask nobody, so scrapes wait for the bootstrap, but no longer than one
    /// lookup time-out: a DHT that cannot bootstrap then answers with zero nodes asked.
    fn start_scrapes(&mut self, now: Instant) {
        let patience = self.dht.config().lookup_timeout;
        while self.scrapes.len() < MAX_RUNNING_SCRAPES {
            let Some(&(id, info_hash, asked)) = self.waiting.front() else { break };
            if !self.dht.is_bootstrapped() && now < asked + patience {
                break;
            }
            self.waiting.pop_front();
            let lookup = self.dht.scrape(info_hash, now);
            self.scrapes.insert(lookup, id);
        }
    }

    /// Forgets a removed torrent.
    pub(super) fn forget(&mut self, t: TorrentId) {
        self.next.remove(&t);
        self.found.remove(&t);
        self.lookups.retain(|_, (x, _)| *x != t);
    }

    /// The DHT's status for one torrent.
    pub(super) fn status(&self, t: TorrentId) -> DhtTorrentStatus {
        DhtTorrentStatus { working: self.dht.is_bootstrapped(), peers: self.found.get(&t).copied().unwrap_or(0) }
    }

    /// The next thing the DHT asks for. Sends that `policy` refuses are dropped (local-only:
    /// nothing leaves the machine, whatever a hostile node tells us).
    pub(super) fn poll(&mut self, policy: NetPolicy, now: Instant) -> Option<Action> {
        loop {
            match self.dht.poll_output()? {
                DhtOutput::Send { to, data } => {
                    if !policy.allows(to) {
                        continue;
                    }
                    return Some(Action::Output(Output::Udp(UdpIo::Dht { to, data })));
                }
                DhtOutput::Resolve { host, port } => return Some(Action::Output(Output::Resolve { host, port })),
                DhtOutput::Event(DhtEvent::Peers { lookup, peers, .. }) => {
                    let Some((t, n)) = self.lookups.get_mut(&lookup) else { continue };
                    *n += peers.len() as u32;
                    let t = *t;
                    *self.found.entry(t).or_default() += peers.len() as u32;
                    return Some(Action::Peers(t, peers));
                }
                DhtOutput::Event(DhtEvent::Scraped { lookup, info_hash, swarm }) => {
                    let Some(id) = self.scrapes.remove(&lookup) else { continue };
                    // A slot is free: the next waiting scrape goes now, not at the next tick.
                    self.start_scrapes(now);
                    return Some(Action::Scraped(id, info_hash, swarm));
                }
                DhtOutput::Event(DhtEvent::LookupDone { lookup, .. }) => {
                    if let Some((t, 0)) = self.lookups.remove(&lookup) {
                        if let Some(at) = self.next.get_mut(&t) {
                            *at = (*at).min(now + RETRY_EMPTY);
                        }
                    }
                }
                DhtOutput::Event(DhtEvent::Bootstrapped) => {
                    // Announce everything soon now that there is a network to ask.
                    for at in self.next.values_mut() {
                        *at = Instant::from_micros(0);
                    }
                    self.start_scrapes(now);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{
        Action, Dht, DhtLink, DhtScrapeError, DhtScrapeId, InfoHash, Instant, NetPolicy, SwarmCount,
        MAX_QUEUED_SCRAPES, MAX_RUNNING_SCRAPES,
    };
    use crate::dht::{DhtConfig, NodeId};

    fn secs(s: u64) -> Instant {
        Instant::from_micros(s * 1_000_000)
    }

    /// A link whose DHT knows nobody and never bootstrapped.
    fn lonely() -> DhtLink {
        let config = DhtConfig { bootstrap: Vec::new(), ..DhtConfig::default() };
        DhtLink::new(Dht::new(config, NodeId([1; 20]), 1, secs(0)))
    }

    /// The scrapes that ended, in order.
    fn scraped(link: &mut DhtLink, now: Instant) -> Vec<(DhtScrapeId, InfoHash, SwarmCount)> {
        let mut out = Vec::new();
        while let Some(action) = link.poll(NetPolicy::default(), now) {
            if let Action::Scraped(id, ih, swarm) = action {
                out.push((id, ih, swarm));
            }
        }
        out
    }

    #[test]
    fn scrapes_wait_for_the_bootstrap_at_most_one_lookup_time_out() {
        let mut link = lonely();
        let hash = InfoHash([9; 20]);
        let id = link.scrape(hash, secs(0)).unwrap();
        link.schedule(&[], 6881, secs(59));
        assert!(scraped(&mut link, secs(59)).is_empty(), "still waiting for the bootstrap");
        assert_eq!(link.dht.active_lookups(), 0);
        // A minute on, it runs anyway: nobody to ask, so it says zero.
        link.schedule(&[], 6881, secs(60));
        assert_eq!(scraped(&mut link, secs(60)), vec![(id, hash, SwarmCount::default())]);
    }

    #[test]
    fn four_scrapes_run_at_once_and_the_queue_is_bounded() {
        let mut link = lonely();
        let ids: Vec<_> = (0..6u8).map(|n| link.scrape(InfoHash([n; 20]), secs(0)).unwrap()).collect();
        link.schedule(&[], 6881, secs(60));
        assert_eq!((link.scrapes.len(), link.waiting.len()), (MAX_RUNNING_SCRAPES, 2));
        // Each one that ends lets the next one start; all end, in order.
        let ended: Vec<_> = scraped(&mut link, secs(60)).into_iter().map(|(id, _, _)| id).collect();
        assert_eq!(ended, ids);
        assert!(link.scrapes.is_empty() && link.waiting.is_empty());

        for n in 0..MAX_QUEUED_SCRAPES {
            link.scrape(InfoHash([n as u8; 20]), secs(61)).unwrap();
        }
        assert_eq!(link.scrape(InfoHash([0; 20]), secs(61)), Err(DhtScrapeError::Busy));
    }
}
