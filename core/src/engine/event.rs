//! What the engine tells the application.

use std::net::SocketAddr;

use crate::types::{InfoHash, TorrentId};

use super::dht::DhtScrapeId;
#[cfg(doc)]
use super::Engine;

/// Something the application may want to know about.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// Progress of the check of existing data.
    CheckProgress {
        /// The torrent.
        torrent: TorrentId,
        /// Pieces checked.
        checked: u32,
        /// Pieces to check.
        total: u32,
    },
    /// The check of existing data ended; `have` pieces were valid.
    Checked {
        /// The torrent.
        torrent: TorrentId,
        /// Valid pieces.
        have: u32,
        /// Pieces in the torrent.
        total: u32,
    },
    /// The info dictionary of a torrent added by magnet arrived and matches its info-hash; the
    /// torrent continues as if added from a .torrent file. Its files are known from now on
    /// ([`Engine::metainfo`]): the runtime must map them before running the disk jobs that
    /// follow this event.
    MetadataReceived {
        /// The torrent.
        torrent: TorrentId,
        /// The raw bencoded info dictionary (what a .torrent file's `info` holds).
        info: Vec<u8>,
    },
    /// A downloaded piece passed its hash check and is written: it can be read from disk now.
    /// (Pieces found valid by a check of existing data are counted in [`Event::Checked`].)
    PieceFinished {
        /// The torrent.
        torrent: TorrentId,
        /// The piece.
        piece: u32,
    },
    /// Every wanted piece is verified on disk.
    Finished {
        /// The torrent.
        torrent: TorrentId,
    },
    /// A downloaded piece did not match its hash and will be downloaded again.
    HashFailed {
        /// The torrent.
        torrent: TorrentId,
        /// The piece.
        piece: u32,
    },
    /// A peer was banned for sending bad data.
    PeerBanned {
        /// The torrent.
        torrent: TorrentId,
        /// The peer.
        addr: SocketAddr,
    },
    /// A [`Engine::dht_scrape`] ended with these counts (all zero when no node answered).
    DhtScrape {
        /// The scrape.
        id: DhtScrapeId,
        /// The torrent counted.
        info_hash: InfoHash,
        /// Seeders, leechers and peers seen (BEP 33 estimates).
        swarm: crate::dht::SwarmCount,
    },
    /// A tracker answered.
    TrackerReply {
        /// The torrent.
        torrent: TorrentId,
        /// The tracker.
        url: String,
        /// Peers it returned.
        peers: usize,
    },
    /// A tracker failed.
    TrackerError {
        /// The torrent.
        torrent: TorrentId,
        /// The tracker.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The torrent stopped on an error.
    Error {
        /// The torrent.
        torrent: TorrentId,
        /// What went wrong.
        message: String,
    },
    /// A removed torrent has said goodbye to its trackers and is gone.
    Removed {
        /// The torrent.
        torrent: TorrentId,
    },
    /// After [`Engine::shutdown`]: every `stopped` announce is done (or timed out).
    ShutdownComplete,
    /// A health check of [`Engine::check_health`] is over.
    HealthChecked {
        /// The check.
        check: crate::health::HealthCheckId,
        /// What its sources said.
        report: crate::health::HealthReport,
    },
}
