//! What tests read from a world after a run, and the assertions several of them share.

use std::net::SocketAddr;
use std::time::Duration;

use shoal_core::dht::SwarmCount;
use shoal_core::DhtScrapeId;
use shoal_core::{Event, InfoHash, Instant, TorrentId, TorrentState};

use super::ids::NodeId;
use super::torrent::TestTorrent;
use super::world::World;

/// Asserts a torrent is complete on a node: finished, seeding, every wanted byte verified and
/// the disk holding exactly the source bytes.
pub(crate) fn assert_complete(w: &World, node: NodeId, t: TorrentId, tt: &TestTorrent) {
    let n = &w.nodes[node];
    assert!(n.finished(t), "node {node} finished\n{}", w.summary());
    let st = n.stats(t);
    assert_eq!(st.state, TorrentState::Seeding, "node {node}");
    assert_eq!(st.have_bytes, st.wanted_bytes, "node {node}");
    assert_eq!(st.pieces_have, tt.pieces(), "node {node}");
    assert!(n.disk(t).contents() == tt.data, "node {node}: disk bytes differ from the source");
}

/// Asserts a duration in seconds is within -20 % / +30 % of what was expected.
pub(crate) fn assert_about(got: f64, expected: f64, what: &str) {
    assert!(got >= 0.8 * expected && got <= 1.3 * expected, "{what}: {got:.2} s, expected about {expected} s");
}

impl World {
    /// Runs until `t` finished on `node` (at most two minutes); the virtual seconds it took.
    pub(crate) fn seconds_to_finish(&mut self, node: NodeId, t: TorrentId) -> f64 {
        let start = self.now;
        self.run_until(Duration::from_secs(120), |w| w.nodes[node].finished(t));
        (self.now - start).as_secs_f64()
    }

    /// The torrents of a node in each state, as indices into `ts`: (checking, queued).
    pub(crate) fn check_states(&self, node: NodeId, ts: &[TorrentId]) -> (Vec<usize>, Vec<usize>) {
        let states: Vec<TorrentState> = ts.iter().map(|t| self.nodes[node].stats(*t).state).collect();
        let checking = (0..ts.len()).filter(|&i| matches!(states[i], TorrentState::Checking { .. })).collect();
        let queued = (0..ts.len()).filter(|&i| states[i] == TorrentState::CheckQueued).collect();
        (checking, queued)
    }

    /// With `keep_trace`: when `node` asked the runtime to dial `addr`, if it did.
    pub(crate) fn dialled(&self, node: NodeId, addr: SocketAddr) -> Option<Instant> {
        let (connect, to) = (format!(" {node} Connect {{ conn: ConnId("), format!("addr: {addr} }}"));
        let line = self.trace_lines.iter().find(|t| t.contains(&connect) && t.contains(&to))?;
        let micros = line.split(' ').next()?.parse().ok()?;
        Some(Instant::from_micros(micros))
    }

    /// The counts of node `node`'s DHT scrape `id`, once it ended.
    pub(crate) fn dht_scrape_result(&self, node: NodeId, id: DhtScrapeId) -> Option<(InfoHash, SwarmCount)> {
        self.nodes[node].events.iter().find_map(|(_, e)| match e {
            Event::DhtScrape { id: i, info_hash, swarm } if *i == id => Some((*info_hash, *swarm)),
            _ => None,
        })
    }
}
