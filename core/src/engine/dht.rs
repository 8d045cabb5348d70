//! The engine's use of the DHT (BEP 5): public torrents find peers there and announce
//! themselves every 15 minutes; the peers found join the torrents' candidates.
//!
//! The [`Dht`] machine does the protocol; this link decides when each torrent looks and where
//! the answers go. The runtime moves the datagrams ([`super::Output::DhtSend`]) and resolves
//! bootstrap host names ([`super::Output::DhtResolve`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::dht::{Dht, DhtEvent, DhtOutput, LookupId};
use crate::types::{Instant, TorrentId};
use crate::NetPolicy;

/// How often a torrent announces itself (peers stored by others expire after 30 minutes).
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(15 * 60);

/// When a lookup found no peer at all, the next one comes this soon (the swarm may simply not
/// have announced yet).
pub const RETRY_EMPTY: Duration = Duration::from_secs(60);

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
}

/// What the engine must do after the DHT spoke.
pub(crate) enum Action {
    /// Send or resolve: pass on to the runtime.
    Output(super::Output),
    /// Peers for a torrent.
    Peers(TorrentId, Vec<SocketAddr>),
}

impl DhtLink {
    pub fn new(dht: Dht) -> DhtLink {
        DhtLink { dht, lookups: BTreeMap::new(), next: BTreeMap::new(), found: BTreeMap::new() }
    }

    /// Starts the lookups that are due. `due` lists the torrents that may use the DHT now
    /// (active and not private), with their info-hashes.
    pub fn schedule(&mut self, due: &[(TorrentId, crate::types::InfoHash)], port: u16, now: Instant) {
        self.next.retain(|t, _| due.iter().any(|(d, _)| d == t));
        if !self.dht.is_bootstrapped() {
            return;
        }
        for (t, ih) in due {
            let at = self.next.entry(*t).or_insert(now);
            if now >= *at {
                *at = now + ANNOUNCE_EVERY;
                let lookup = self.dht.announce(*ih, port, false, now);
                self.lookups.insert(lookup, (*t, 0));
            }
        }
    }

    /// Forgets a removed torrent.
    pub fn forget(&mut self, t: TorrentId) {
        self.next.remove(&t);
        self.found.remove(&t);
        self.lookups.retain(|_, (x, _)| *x != t);
    }

    /// The DHT's status for one torrent.
    pub fn status(&self, t: TorrentId) -> DhtTorrentStatus {
        DhtTorrentStatus { working: self.dht.is_bootstrapped(), peers: self.found.get(&t).copied().unwrap_or(0) }
    }

    /// The next thing the DHT asks for. Sends that `policy` refuses are dropped (local-only:
    /// nothing leaves the machine, whatever a hostile node tells us).
    pub fn poll(&mut self, policy: NetPolicy, now: Instant) -> Option<Action> {
        loop {
            match self.dht.poll_output()? {
                DhtOutput::Send { to, data } => {
                    if !policy.allows(to) {
                        continue;
                    }
                    return Some(Action::Output(super::Output::DhtSend { to, data }));
                }
                DhtOutput::Resolve { host, port } => {
                    return Some(Action::Output(super::Output::DhtResolve { host, port }))
                }
                DhtOutput::Event(DhtEvent::Peers { lookup, peers, .. }) => {
                    let Some((t, n)) = self.lookups.get_mut(&lookup) else { continue };
                    *n += peers.len() as u32;
                    let t = *t;
                    *self.found.entry(t).or_default() += peers.len() as u32;
                    return Some(Action::Peers(t, peers));
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
                }
            }
        }
    }
}
