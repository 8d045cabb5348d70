//! Ready-made worlds that several tests start from.

use std::net::SocketAddr;
use std::time::Duration;

use shoal_core::wire::Message;
use shoal_core::{AddTorrent, Config, Event, TorrentId};

use super::disk::Disk;
use super::ids::{NodeId, RawId};
use super::raw::handshake;
use super::torrent::{file, plain_torrent, TestTorrent, PIECE};
use super::world::World;

/// A leecher on a fresh world with a hand-driven peer that has everything, has unchoked it
/// and has received its first requests.
pub(crate) struct RawSeeder {
    /// The world.
    pub world: World,
    /// The leeching engine.
    pub leecher: NodeId,
    /// The torrent it leeches.
    pub torrent: TorrentId,
    /// The hand-driven seeder.
    pub raw: RawId,
}

impl RawSeeder {
    /// A leecher of `tt` (its config tweaked by `tweak`) in a world seeded with `seed`, and
    /// its hand-driven seeder.
    pub(crate) fn new(seed: u64, tt: &TestTorrent, tweak: impl FnOnce(&mut Config)) -> Self {
        let mut w = World::new(seed);
        let leecher = w.add_node_with(tweak);
        let l = w.leech(leecher, tt);
        w.run_until(Duration::from_secs(5), |w| w.nodes[leecher].saw(|e| matches!(e, Event::Checked { .. })));
        let raw = w.raw_connect(leecher, SocketAddr::from(([10, 0, 9, 1], 5000)));
        let mut hello = handshake(tt.meta.info_hash);
        Message::HaveAll.encode(&mut hello);
        Message::Unchoke.encode(&mut hello);
        w.raw_send(raw, &hello);
        w.run_until(Duration::from_secs(5), |w| !w.sent_to(raw, |m| matches!(m, Message::Request(_))).is_empty());
        RawSeeder { world: w, leecher, torrent: l, raw }
    }
}

/// A swarm without trackers: a seeder C, a slow leecher B that knows C, and a leecher A that
/// knows only B. B downloads and uploads at 4 kB/s, so it stays a leecher connected to C, and
/// A would need minutes to get the torrent from it alone. The wire is tapped and the trace kept.
pub(crate) struct PexSwarm {
    /// The world.
    pub w: World,
    /// The torrent.
    pub tt: TestTorrent,
    /// C, the seeder.
    pub seeder: NodeId,
    /// B, the slow leecher.
    pub slow: NodeId,
    /// A, the leecher that knows only B.
    pub leecher: NodeId,
    /// A's torrent.
    pub l: TorrentId,
}

impl PexSwarm {
    /// The swarm, in a world seeded with `seed`, of a public or a private torrent.
    pub(crate) fn new(seed: u64, private: bool) -> Self {
        let files = [file("a.bin", 700_001), file("b.bin", 300_000)];
        let mut tt =
            if private { TestTorrent::private(seed, PIECE, &files) } else { TestTorrent::new(seed, PIECE, &files) };
        tt.meta.trackers.clear();
        assert_eq!(tt.meta.info.private, private);
        let mut w = World::new(seed);
        w.tap = true;
        w.keep_trace = true;
        let seeder = w.add_node();
        let slow = w.add_node_with(|c| {
            c.max_download_rate = 4_000;
            c.max_upload_rate = 4_000;
        });
        let leecher = w.add_node();
        let (seeder_addr, slow_addr) = (w.nodes[seeder].addr, w.nodes[slow].addr);
        w.seed(seeder, &tt);
        let params = AddTorrent { peers: vec![seeder_addr], ..AddTorrent::new(tt.meta.clone()) };
        let b = w.add_torrent(slow, params, Disk::empty(&tt.meta));
        w.run_until(Duration::from_secs(5), |w| w.nodes[slow].stats(b).peers == 1);
        let params = AddTorrent { peers: vec![slow_addr], ..AddTorrent::new(tt.meta.clone()) };
        let l = w.add_torrent(leecher, params, Disk::empty(&tt.meta));
        PexSwarm { w, tt, seeder, slow, leecher, l }
    }
}

/// A small swarm (a seeder at 300 kB/s, two leechers) run to completion in a world seeded with
/// `seed`; the digest of every output of every engine, and how many outputs there were.
pub(crate) fn swarm_trace(seed: u64) -> ([u8; 20], u64) {
    let tt = plain_torrent(9);
    let mut w = World::new(seed);
    let seeder = w.add_node();
    w.nodes[seeder].uplink.rate = Some(300_000);
    w.seed(seeder, &tt);
    let leechers: Vec<NodeId> = (0..2).map(|_| w.add_node()).collect();
    let ts: Vec<_> = leechers.iter().map(|&n| w.leech(n, &tt)).collect();
    w.run_until(Duration::from_secs(120), |w| leechers.iter().zip(&ts).all(|(&n, &t)| w.nodes[n].finished(t)));
    w.run_for(Duration::from_secs(5));
    (w.trace_digest(), w.trace_len)
}

impl World {
    /// Turns on the DHT of every node in `links` with no bootstrap host, each knowing only the
    /// node it is paired with.
    pub(crate) fn join_dht(&mut self, links: &[(NodeId, NodeId)]) {
        for &(node, knows) in links {
            let at = self.nodes[knows].addr;
            self.command(node, |e, now| {
                e.enable_dht(shoal_core::dht::DhtConfig { bootstrap: Vec::new(), ..Default::default() }, None, now);
                e.add_dht_node(at, now);
            });
        }
    }
}
