//! The fake tracker of Shoal's test worlds: one swarm table, answered over HTTP here and over
//! BEP 15 UDP by a world that has the codec. Timing, outages and lost requests are the world's
//! business.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

/// Peers of every torrent, by info-hash, with whether each is a seed.
#[derive(Default, Debug)]
pub struct Tracker {
    swarms: BTreeMap<[u8; 20], BTreeMap<SocketAddr, bool>>,
    next_connection_id: u64,
    /// Addresses never handed out (a tracker that found them unreachable).
    hidden: BTreeSet<SocketAddr>,
}

/// How many peers a swarm holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Peers with nothing left to download.
    pub seeders: u32,
    /// The others.
    pub leechers: u32,
}

/// Peers handed out per announce at most (what public trackers cap a compact list at).
const MAX_PEERS: usize = 80;

impl Tracker {
    /// Puts an address in a swarm without an announce (hosts that never announce).
    pub fn register(&mut self, info_hash: [u8; 20], addr: SocketAddr) {
        self.swarms.entry(info_hash).or_default().insert(addr, false);
    }

    /// Never hands out `addr` (it may still announce): a tracker that checked that the peer
    /// does not accept connections and leaves it out of its lists.
    pub fn hide(&mut self, addr: SocketAddr) {
        self.hidden.insert(addr);
    }

    /// Records an announce from `addr` and returns the other peers of the swarm (none after a
    /// `stopped` announce, which leaves the swarm).
    pub fn announce(&mut self, info_hash: [u8; 20], addr: SocketAddr, stopped: bool, left: u64) -> Vec<SocketAddr> {
        let swarm = self.swarms.entry(info_hash).or_default();
        if stopped {
            swarm.remove(&addr);
            return Vec::new();
        }
        let hidden = &self.hidden;
        let peers = swarm.keys().filter(|a| **a != addr && !hidden.contains(a)).copied().take(MAX_PEERS).collect();
        swarm.insert(addr, left == 0);
        peers
    }

    /// How many seeders and leechers a swarm holds.
    pub fn counts(&self, info_hash: &[u8; 20]) -> Counts {
        let Some(swarm) = self.swarms.get(info_hash) else { return Counts::default() };
        let seeders = swarm.values().filter(|s| **s).count() as u32;
        Counts { seeders, leechers: swarm.len() as u32 - seeders }
    }

    /// A fresh BEP 15 connection id, for a UDP front end.
    pub fn connection_id(&mut self) -> u64 {
        self.next_connection_id += 1;
        0x5100_0000 + self.next_connection_id
    }

    /// Answers an HTTP announce URL from `ip` with a bencoded body (compact IPv4 peers, or a
    /// failure reason if the query lacks the info-hash or the port).
    pub fn http(&mut self, ip: IpAddr, url: &str) -> Vec<u8> {
        let query = url.split_once('?').map_or("", |(_, q)| q);
        let (mut info_hash, mut port, mut stopped, mut left) = (None, None, false, 1u64);
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "info_hash" => {
                    let raw: Vec<u8> = percent_encoding::percent_decode_str(v).collect();
                    info_hash = <[u8; 20]>::try_from(raw.as_slice()).ok();
                }
                "port" => port = v.parse::<u16>().ok(),
                "left" => left = v.parse().unwrap_or(1),
                "event" => stopped = v == "stopped",
                _ => {}
            }
        }
        let (Some(info_hash), Some(port)) = (info_hash, port) else {
            return b"d14:failure reason12:bad announcee".to_vec();
        };
        let mut compact = Vec::new();
        for peer in self.announce(info_hash, SocketAddr::new(ip, port), stopped, left) {
            if let SocketAddr::V4(a) = peer {
                compact.extend_from_slice(&a.ip().octets());
                compact.extend_from_slice(&a.port().to_be_bytes());
            }
        }
        let mut body = format!("d8:intervali1800e5:peers{}:", compact.len()).into_bytes();
        body.extend_from_slice(&compact);
        body.push(b'e');
        body
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};

    use super::{Counts, Tracker};

    const HASH: [u8; 20] = [0xab; 20];

    fn url(port: u16, rest: &str) -> String {
        let hash: String = HASH.iter().map(|b| format!("%{b:02X}")).collect();
        format!("http://tracker.sim/announce?info_hash={hash}&port={port}{rest}")
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    #[test]
    fn an_http_announce_returns_the_other_peers_compact() {
        let mut t = Tracker::default();
        assert_eq!(t.http(ip(1), &url(6881, "&left=0")), b"d8:intervali1800e5:peers0:e");
        let body = t.http(ip(2), &url(6882, "&left=100&event=started"));
        assert_eq!(body, [&b"d8:intervali1800e5:peers6:"[..], &[10, 0, 0, 1, 0x1a, 0xe1], b"e"].concat());
        assert_eq!(t.counts(&HASH), Counts { seeders: 1, leechers: 1 });
    }

    #[test]
    fn a_stopped_announce_leaves_the_swarm() {
        let mut t = Tracker::default();
        t.http(ip(1), &url(6881, ""));
        assert_eq!(t.http(ip(1), &url(6881, "&event=stopped")), b"d8:intervali1800e5:peers0:e");
        assert_eq!(t.counts(&HASH), Counts::default());
        let other = SocketAddr::new(ip(2), 1);
        assert!(t.announce(HASH, other, false, 5).is_empty());
    }

    #[test]
    fn registered_peers_are_handed_out_and_a_bad_query_fails() {
        let mut t = Tracker::default();
        let quiet = SocketAddr::new(ip(9), 6881);
        t.register(HASH, quiet);
        assert_eq!(t.announce(HASH, SocketAddr::new(ip(1), 6881), false, 0), [quiet]);
        assert_eq!(t.http(ip(1), "http://tracker.sim/announce?port=1"), b"d14:failure reason12:bad announcee");
        assert_ne!(t.connection_id(), t.connection_id());
    }
}
