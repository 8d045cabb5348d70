//! The sim's trackers: the one fake tracker of `shoal-netsim` answers both the HTTP announce
//! and, through shoal-core's BEP 15 codec, the UDP one. Timing and failures are the world's
//! business.

use std::net::{IpAddr, SocketAddr};

use shoal_core::tracker::udp::{Request, Response};
use shoal_core::tracker::{AnnounceEvent, ScrapeStats};
use shoal_netsim::tracker::Tracker;

/// The HTTP tracker every sim torrent may name.
pub const HTTP_TRACKER: &str = "http://tracker.sim/announce";
/// The UDP tracker every sim torrent may name.
pub const UDP_TRACKER: &str = "udp://tracker.sim:6969/announce";

/// Answers one BEP 15 datagram from `ip`; `None` for garbage (a real tracker drops it).
pub fn udp(tracker: &mut Tracker, ip: IpAddr, datagram: &[u8]) -> Option<Vec<u8>> {
    let response = match Request::decode(datagram).ok()? {
        Request::Connect { transaction_id } => {
            Response::Connect { transaction_id, connection_id: tracker.connection_id() }
        }
        Request::Announce { transaction_id, params, .. } => {
            let addr = SocketAddr::new(ip, params.port);
            let stopped = params.event == AnnounceEvent::Stopped;
            let peers = tracker.announce(params.info_hash.0, addr, stopped, params.left);
            let counts = tracker.counts(&params.info_hash.0);
            Response::Announce {
                transaction_id,
                interval: 1800,
                leechers: counts.leechers,
                seeders: counts.seeders,
                peers,
            }
        }
        Request::Scrape { transaction_id, info_hashes, .. } => {
            let stats = info_hashes
                .iter()
                .map(|h| {
                    let counts = tracker.counts(&h.0);
                    ScrapeStats { complete: counts.seeders, incomplete: counts.leechers, downloaded: 0 }
                })
                .collect();
            Response::Scrape { transaction_id, stats }
        }
    };
    Some(response.encode())
}
