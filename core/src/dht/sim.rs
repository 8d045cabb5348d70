//! An in-memory network of [`Dht`] nodes on a virtual clock, for tests.
//!
//! One thread, one seeded RNG, no real time: datagrams get a random latency and may be lost,
//! nodes may leave, and [`World::run_until`] jumps from event to event (next datagram or next
//! node deadline). A run is a pure function of its seed.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Dht, DhtConfig, DhtEvent, DhtOutput, Family, NodeId};
use crate::types::Instant;

/// A node of the simulated network.
pub(super) struct Host {
    /// Its UDP address.
    pub addr: SocketAddr,
    /// The machine.
    pub dht: Dht,
    /// False once it left the network.
    pub alive: bool,
    /// Every event it emitted.
    pub events: Vec<DhtEvent>,
}

/// A datagram on its way: (arrival, sequence, destination, source, bytes).
type Flight = Reverse<(Instant, u64, SocketAddr, SocketAddr, Vec<u8>)>;

/// The simulated network.
pub(super) struct World {
    /// Virtual time.
    pub now: Instant,
    /// Every node that ever joined, by index.
    pub hosts: Vec<Host>,
    by_addr: BTreeMap<SocketAddr, usize>,
    flights: BinaryHeap<Flight>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    seq: u64,
    /// The world's own randomness (loss, latency, ids, seeds).
    pub rng: ChaCha8Rng,
    /// Chance in a thousand that a datagram is lost.
    pub loss_per_mille: u32,
    /// Latency range in milliseconds.
    pub latency_ms: (u64, u64),
    /// What bootstrap host names resolve to.
    pub names: BTreeMap<String, SocketAddr>,
    /// Datagrams sent and lost so far.
    pub sent: u64,
    /// Datagrams lost so far.
    pub lost: u64,
    family: Family,
}

impl World {
    /// An empty network of `family` addresses.
    pub(super) fn new(seed: u64, family: Family) -> Self {
        World {
            now: Instant::ZERO,
            hosts: Vec::new(),
            by_addr: BTreeMap::new(),
            flights: BinaryHeap::new(),
            timers: BinaryHeap::new(),
            seq: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
            loss_per_mille: 0,
            latency_ms: (10, 100),
            names: BTreeMap::new(),
            sent: 0,
            lost: 0,
            family,
        }
    }

    /// The address the `n`th host gets: one IP per host.
    pub(super) fn addr_of(&self, n: usize) -> SocketAddr {
        let n = n as u32 + 1;
        let ip: IpAddr = match self.family {
            Family::V4 => Ipv4Addr::from(0x0a00_0000 | n).into(),
            Family::V6 => Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, (n >> 16) as u16, n as u16).into(),
        };
        SocketAddr::new(ip, 6881)
    }

    /// Adds a node with a random id and `config`, without bootstrapping it; returns its index.
    pub(super) fn add(&mut self, config: DhtConfig) -> usize {
        let index = self.hosts.len();
        let addr = self.addr_of(index);
        let id = NodeId::random(&mut self.rng);
        let dht = Dht::new(config, id, self.rng.random(), self.now);
        self.hosts.push(Host { addr, dht, alive: true, events: Vec::new() });
        self.by_addr.insert(addr, index);
        self.drain(index);
        index
    }

    /// Runs `f` on host `index`'s machine at the current time, then executes its outputs.
    pub(super) fn with<T>(&mut self, index: usize, f: impl FnOnce(&mut Dht, Instant) -> T) -> T {
        let now = self.now;
        let out = f(&mut self.hosts[index].dht, now);
        self.drain(index);
        out
    }

    /// Takes host `index` off the network: it neither sends nor receives again.
    pub(super) fn kill(&mut self, index: usize) {
        self.hosts[index].alive = false;
    }

    /// Executes everything host `index` asked for, then schedules its next wake-up.
    fn drain(&mut self, index: usize) {
        let now = self.now;
        while let Some(out) = self.hosts[index].dht.poll_output() {
            match out {
                DhtOutput::Send { to, data } => {
                    self.sent += 1;
                    if self.rng.random_range(0..1000) < self.loss_per_mille {
                        self.lost += 1;
                        continue;
                    }
                    let (lo, hi) = self.latency_ms;
                    let at = now + Duration::from_millis(self.rng.random_range(lo..=hi));
                    self.seq += 1;
                    let from = self.hosts[index].addr;
                    self.flights.push(Reverse((at, self.seq, to, from, data)));
                }
                DhtOutput::Resolve { host, .. } => {
                    if let Some(addr) = self.names.get(&host).copied() {
                        self.hosts[index].dht.add_bootstrap(addr, now);
                    }
                }
                DhtOutput::Event(e) => self.hosts[index].events.push(e),
            }
        }
        let deadline = self.hosts[index].dht.poll_timeout();
        self.timers.push(Reverse((deadline.max(now), index)));
    }

    /// Delivers datagrams and fires deadlines in time order until `until`.
    pub(super) fn run_until(&mut self, until: Instant) {
        loop {
            let next_flight = self.flights.peek().map(|Reverse(f)| f.0);
            let next_timer = self.timers.peek().map(|Reverse(t)| t.0);
            let flight_first = match (next_flight, next_timer) {
                (Some(f), Some(t)) => f <= t,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let at = if flight_first { next_flight } else { next_timer }.unwrap_or(until);
            if at > until {
                break;
            }
            self.now = self.now.max(at);
            if flight_first {
                let Some(Reverse((_, _, to, from, data))) = self.flights.pop() else { break };
                if let Some(&index) = self.by_addr.get(&to) {
                    if self.hosts[index].alive {
                        let now = self.now;
                        self.hosts[index].dht.handle_datagram(from, &data, now);
                        self.drain(index);
                    }
                }
            } else {
                let Some(Reverse((_, index))) = self.timers.pop() else { break };
                // Stale entries (the node has a later deadline by now) are skipped.
                if self.hosts[index].alive && self.hosts[index].dht.poll_timeout() <= self.now {
                    let now = self.now;
                    self.hosts[index].dht.handle_timeout(now);
                    self.drain(index);
                }
            }
        }
        self.now = self.now.max(until);
    }

    /// Runs for `d` of virtual time.
    pub(super) fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Indices of the hosts still on the network.
    pub(super) fn alive(&self) -> Vec<usize> {
        (0..self.hosts.len()).filter(|&i| self.hosts[i].alive).collect()
    }
}

/// Figures from one swarm run.
#[derive(Debug, Default)]
pub(super) struct SwarmReport {
    /// Nodes that joined.
    pub nodes: usize,
    /// `get_peers` lookups run from random nodes.
    pub lookups: usize,
    /// Lookups that found the announcer.
    pub found: usize,
    /// Hop counts of those lookups, sorted.
    pub hops: Vec<u32>,
    /// Nodes queried per lookup, sorted.
    pub queried: Vec<usize>,
    /// Datagrams sent and lost.
    pub sent: u64,
    /// Datagrams lost.
    pub lost: u64,
    /// Average routing-table size of live nodes.
    pub mean_table: usize,
}

impl SwarmReport {
    /// The median hop count.
    pub(super) fn median_hops(&self) -> u32 {
        self.hops.get(self.hops.len() / 2).copied().unwrap_or(0)
    }

    /// The largest hop count.
    pub(super) fn max_hops(&self) -> u32 {
        self.hops.last().copied().unwrap_or(0)
    }
}

/// A network of `n` nodes with `loss_per_mille` loss, each bootstrapped from the first four
/// (the routers), after a minute of settling; returns it and the number of routers.
pub(super) fn grow(seed: u64, family: Family, n: usize, loss_per_mille: u32) -> (World, usize) {
    let mut world = World::new(seed, family);
    world.loss_per_mille = loss_per_mille;
    world.latency_ms = (10, 150);
    let routers = 4.min(n);
    let config = DhtConfig {
        bootstrap: (0..routers).map(|i| (format!("boot{i}.sim"), 6881)).collect(),
        ipv4: family == Family::V4,
        ipv6: family == Family::V6,
        ..DhtConfig::default()
    };
    for i in 0..routers {
        let addr = world.addr_of(i);
        world.names.insert(format!("boot{i}.sim"), addr);
    }
    // Nodes join one by one, 50 ms apart, each bootstrapping from the routers.
    for _ in 0..n {
        let i = world.add(config.clone());
        world.with(i, |d, now| d.bootstrap(now));
        world.run_for(Duration::from_millis(50));
    }
    world.run_for(Duration::from_secs(60));
    (world, routers)
}

/// Grows a network of `n` nodes with `loss_per_mille` loss, removes 10% of them, announces
/// `torrents` info-hashes from random nodes, removes another 5%, then looks each up from
/// `askers` other random nodes.
pub(super) fn swarm(
    seed: u64,
    family: Family,
    n: usize,
    loss_per_mille: u32,
    torrents: usize,
    askers: usize,
) -> SwarmReport {
    use crate::types::InfoHash;
    let (mut world, routers) = grow(seed, family, n, loss_per_mille);
    let leave = |world: &mut World, share: usize| {
        let alive: Vec<usize> = world.alive().into_iter().filter(|&i| i >= routers).collect();
        for _ in 0..alive.len() * share / 100 {
            let pick = alive[world.rng.random_range(0..alive.len())];
            world.kill(pick);
        }
    };
    leave(&mut world, 10);
    world.run_for(Duration::from_secs(30));

    let mut announced = Vec::new();
    for t in 0..torrents {
        let info_hash = InfoHash(NodeId::random(&mut world.rng).0);
        let alive = world.alive();
        let announcer = alive[world.rng.random_range(0..alive.len())];
        let port = 7000 + t as u16;
        world.with(announcer, |d, now| d.announce(info_hash, port, false, now));
        announced.push((info_hash, SocketAddr::new(world.hosts[announcer].addr.ip(), port), announcer));
    }
    world.run_for(Duration::from_secs(30));
    leave(&mut world, 5);
    world.run_for(Duration::from_secs(10));

    let mut report = SwarmReport { nodes: n, ..SwarmReport::default() };
    let mut asked = Vec::new();
    for (info_hash, peer, announcer) in &announced {
        for _ in 0..askers {
            let alive: Vec<usize> = world.alive().into_iter().filter(|i| i != announcer).collect();
            let asker = alive[world.rng.random_range(0..alive.len())];
            let lookup = world.with(asker, |d, now| d.get_peers(*info_hash, now));
            asked.push((asker, lookup, *peer));
        }
    }
    world.run_for(Duration::from_secs(90));
    for (asker, lookup, peer) in asked {
        report.lookups += 1;
        let events = &world.hosts[asker].events;
        let found = events
            .iter()
            .any(|e| matches!(e, DhtEvent::Peers { lookup: l, peers, .. } if *l == lookup && peers.contains(&peer)));
        let done = events.iter().find_map(|e| match e {
            DhtEvent::LookupDone { lookup: l, hops, queried, .. } if *l == lookup => Some((*hops, *queried)),
            _ => None,
        });
        if found {
            report.found += 1;
        }
        if let Some((hops, queried)) = done {
            report.hops.push(hops);
            report.queried.push(queried);
        }
    }
    report.hops.sort_unstable();
    report.queried.sort_unstable();
    report.sent = world.sent;
    report.lost = world.lost;
    let alive = world.alive();
    report.mean_table = alive.iter().map(|&i| world.hosts[i].dht.table_len(family)).sum::<usize>() / alive.len().max(1);
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn print(label: &str, r: &SwarmReport, took: std::time::Duration) {
        eprintln!(
            "{label}: {} nodes, {}/{} lookups found the announcer, hops median {} max {}, queried median {}, \
             {} datagrams ({} lost), mean table {}, {:?}",
            r.nodes,
            r.found,
            r.lookups,
            r.median_hops(),
            r.max_hops(),
            r.queried.get(r.queried.len() / 2).copied().unwrap_or(0),
            r.sent,
            r.lost,
            r.mean_table,
            took
        );
    }

    /// 1,000 nodes, 5% loss, 15% of them leaving: every lookup from a random node finds the
    /// announcer, in few hops.
    #[test]
    fn thousand_nodes_find_announced_peers_despite_loss_and_churn() {
        let started = std::time::Instant::now();
        let r = swarm(1, Family::V4, 1000, 50, 4, 10);
        print("ipv4", &r, started.elapsed());
        assert_eq!(r.lookups, 40);
        assert_eq!(r.hops.len(), 40, "every lookup ended");
        assert_eq!(r.found, r.lookups);
        assert!(r.median_hops() <= 6, "median {}", r.median_hops());
        assert!(r.max_hops() <= 12, "max {}", r.max_hops());
        assert!(r.mean_table >= 30, "tables too small: {}", r.mean_table);
    }

    #[test]
    fn an_ipv6_network_works_the_same() {
        let r = swarm(2, Family::V6, 200, 50, 2, 5);
        print("ipv6", &r, std::time::Duration::ZERO);
        assert_eq!(r.found, r.lookups);
        assert!(r.max_hops() <= 12);
    }

    #[test]
    fn a_run_is_a_pure_function_of_its_seed() {
        let a = swarm(3, Family::V4, 100, 50, 1, 3);
        let b = swarm(3, Family::V4, 100, 50, 1, 3);
        assert_eq!((a.sent, a.lost, &a.hops, &a.queried), (b.sent, b.lost, &b.hops, &b.queried));
        let c = swarm(4, Family::V4, 100, 50, 1, 3);
        assert_ne!((a.sent, &a.queried), (c.sent, &c.queried));
    }

    /// 12 seeds and 20 leechers of one torrent in a 300-node network, each on its own IP,
    /// announce themselves; a scrape from another node counts them from the BEP 33 filters of
    /// the nodes that stored the announces. With 5% loss some announces and answers are lost,
    /// and the counts may fall a little short, never over.
    #[test]
    fn a_scrape_counts_the_seeds_and_leechers_of_a_swarm() {
        use crate::types::InfoHash;
        for (seed, loss) in [(5, 0), (6, 50)] {
            let (mut world, routers) = grow(seed, Family::V4, 300, loss);
            let info_hash = InfoHash(NodeId::random(&mut world.rng).0);
            let mut members: Vec<usize> = Vec::new();
            while members.len() < 32 {
                let pick = world.rng.random_range(routers..world.hosts.len());
                if !members.contains(&pick) {
                    members.push(pick);
                }
            }
            let announces: Vec<_> = members
                .iter()
                .enumerate()
                .map(|(k, &m)| {
                    (m, world.with(m, |d, now| d.announce_as(info_hash, 6000 + k as u16, false, k < 12, now)))
                })
                .collect();
            let ended = |world: &World, host: usize, lookup: super::super::LookupId| {
                world.hosts[host]
                    .events
                    .iter()
                    .any(|e| matches!(e, DhtEvent::LookupDone { lookup: l, .. } if *l == lookup))
            };
            run_until(&mut world, 90, |w| announces.iter().all(|&(m, l)| ended(w, m, l)));
            // The announce_peer queries leave as the lookups end; let them arrive (latency is
            // at most 150 ms).
            world.run_for(Duration::from_secs(1));

            let asker = (routers..world.hosts.len()).find(|i| !members.contains(i)).unwrap();
            let lookup = world.with(asker, |d, now| d.scrape(info_hash, now));
            let scraped = |w: &World| {
                w.hosts[asker].events.iter().find_map(|e| match e {
                    DhtEvent::Scraped { lookup: l, swarm, .. } if *l == lookup => Some(*swarm),
                    _ => None,
                })
            };
            run_until(&mut world, 90, |w| scraped(w).is_some());
            let swarm = scraped(&world).expect("the scrape ended");
            eprintln!("loss {loss}/1000: {swarm:?}");
            assert!(swarm.nodes_with_filters >= 4, "{swarm:?}");
            if loss == 0 {
                assert!(swarm.seeders.abs_diff(12) <= 1 && swarm.leechers.abs_diff(20) <= 1, "{swarm:?}");
                assert_eq!(swarm.peers_seen, 32, "{swarm:?}");
            } else {
                assert!((10..=13).contains(&swarm.seeders) && (17..=21).contains(&swarm.leechers), "{swarm:?}");
                assert!((28..=32).contains(&swarm.peers_seen), "{swarm:?}");
            }
        }
    }

    /// Runs `world` a second at a time until `done`, for at most `secs` seconds.
    fn run_until(world: &mut World, secs: u64, done: impl Fn(&World) -> bool) {
        for _ in 0..secs {
            if done(world) {
                return;
            }
            world.run_for(Duration::from_secs(1));
        }
        assert!(done(world), "not done after {secs} s of virtual time");
    }

    /// Bigger figures for the report: `cargo test --release -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn large_networks_converge() {
        for (seed, n, loss) in [(10, 1000, 50), (11, 1000, 50), (12, 3000, 50), (13, 5000, 50), (14, 5000, 100)] {
            let started = std::time::Instant::now();
            let r = swarm(seed, Family::V4, n, loss, 8, 25);
            print(&format!("seed {seed} loss {loss}/1000"), &r, started.elapsed());
            assert!(r.found * 100 >= r.lookups * 98);
            assert!(r.max_hops() <= 12);
        }
    }
}
