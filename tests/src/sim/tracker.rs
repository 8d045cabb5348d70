//! Simulated trackers: the HTTP announce (bencoded compact peer lists) and the BEP 15 UDP
//! server side, over one shared swarm table. Timing and failures are the world's business.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use shoal_core::tracker::udp::{Request, Response};
use shoal_core::tracker::AnnounceEvent;
use shoal_core::tracker::ScrapeStats;

/// The HTTP tracker every sim torrent may name.
pub const HTTP_TRACKER: &str = "http://tracker.sim/announce";
/// The UDP tracker every sim torrent may name.
pub const UDP_TRACKER: &str = "udp://tracker.sim:6969/announce";

/// Peers of every torrent, by info-hash, with whether each is a seed.
#[derive(Default, Debug)]
pub struct SimTracker {
    swarms: BTreeMap<[u8; 20], BTreeMap<SocketAddr, bool>>,
    /// Announces answered.
    pub announces: u64,
    next_connection_id: u64,
}

impl SimTracker {
    /// Puts an address in a swarm without an announce (hosts that never announce).
    pub fn register(&mut self, info_hash: [u8; 20], addr: SocketAddr) {
        self.swarms.entry(info_hash).or_default().insert(addr, false);
    }

    fn announce(&mut self, info_hash: [u8; 20], addr: SocketAddr, event: AnnounceEvent, left: u64) -> Vec<SocketAddr> {
        self.announces += 1;
        let swarm = self.swarms.entry(info_hash).or_default();
        if event == AnnounceEvent::Stopped {
            swarm.remove(&addr);
            return Vec::new();
        }
        let peers = swarm.keys().filter(|a| **a != addr).copied().take(80).collect();
        swarm.insert(addr, left == 0);
        peers
    }

    /// Answers an HTTP announce URL from `ip`: a bencoded body, or an error text.
    pub fn http(&mut self, ip: IpAddr, url: &str) -> Result<Vec<u8>, String> {
        let query = url.split_once('?').map_or("", |(_, q)| q);
        let (mut info_hash, mut port, mut event, mut left) = (None, None, AnnounceEvent::None, 1u64);
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "info_hash" => {
                    let raw: Vec<u8> = percent_encoding::percent_decode_str(v).collect();
                    info_hash = <[u8; 20]>::try_from(raw.as_slice()).ok();
                }
                "port" => port = v.parse::<u16>().ok(),
                "left" => left = v.parse().unwrap_or(1),
                "event" => {
                    event = match v {
                        "started" => AnnounceEvent::Started,
                        "stopped" => AnnounceEvent::Stopped,
                        "completed" => AnnounceEvent::Completed,
                        _ => AnnounceEvent::None,
                    }
                }
                _ => {}
            }
        }
        let (Some(info_hash), Some(port)) = (info_hash, port) else {
            return Ok(b"d14:failure reason12:bad announcee".to_vec());
        };
        let peers = self.announce(info_hash, SocketAddr::new(ip, port), event, left);
        let mut compact = Vec::new();
        for a in peers {
            if let SocketAddr::V4(a) = a {
                compact.extend_from_slice(&a.ip().octets());
                compact.extend_from_slice(&a.port().to_be_bytes());
            }
        }
        let mut body = format!("d8:intervali1800e5:peers{}:", compact.len()).into_bytes();
        body.extend_from_slice(&compact);
        body.push(b'e');
        Ok(body)
    }

    /// Answers one BEP 15 datagram from `ip`; `None` for garbage (a real tracker drops it).
    pub fn udp(&mut self, ip: IpAddr, datagram: &[u8]) -> Option<Vec<u8>> {
        let response = match Request::decode(datagram).ok()? {
            Request::Connect { transaction_id } => {
                self.next_connection_id += 1;
                Response::Connect { transaction_id, connection_id: 0x5100_0000 + self.next_connection_id }
            }
            Request::Announce { transaction_id, params, .. } => {
                let addr = SocketAddr::new(ip, params.port);
                let peers = self.announce(params.info_hash.0, addr, params.event, params.left);
                let swarm = &self.swarms[&params.info_hash.0];
                let seeders = swarm.values().filter(|s| **s).count() as u32;
                Response::Announce {
                    transaction_id,
                    interval: 1800,
                    leechers: swarm.len() as u32 - seeders.min(swarm.len() as u32),
                    seeders,
                    peers,
                }
            }
            Request::Scrape { transaction_id, info_hashes, .. } => {
                let stats = info_hashes
                    .iter()
                    .map(|h| {
                        let swarm = self.swarms.get(&h.0);
                        let complete = swarm.map_or(0, |s| s.values().filter(|x| **x).count() as u32);
                        let all = swarm.map_or(0, |s| s.len() as u32);
                        ScrapeStats { complete, incomplete: all - complete, downloaded: 0 }
                    })
                    .collect();
                Response::Scrape { transaction_id, stats }
            }
        };
        Some(response.encode())
    }
}
