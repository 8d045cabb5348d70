//! What the engine tells the application.

use std::net::SocketAddr;

use crate::metainfo::MetainfoError;
use crate::tracker::TrackerError;
use crate::types::{InfoHash, TorrentId};

use super::close_reason::CloseReason;
use super::disk_error::DiskError;

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
    /// ([`Engine::metainfo`](crate::Engine::metainfo)): the runtime must map them before running the disk jobs that
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
    /// A peer connection of the torrent ended (closed by either side, or never established).
    PeerClosed {
        /// The torrent.
        torrent: TorrentId,
        /// The peer.
        addr: SocketAddr,
        /// Why.
        reason: CloseReason,
    },
    /// A [`Engine::dht_scrape`](crate::Engine::dht_scrape) ended with these counts (all zero when no node answered).
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
        /// What went wrong; its text is what the tracker's status reports.
        error: TrackerError,
    },
    /// The torrent stopped on an error.
    Error {
        /// The torrent.
        torrent: TorrentId,
        /// What went wrong.
        error: TorrentError,
    },
    /// A removed torrent has said goodbye to its trackers and is gone.
    Removed {
        /// The torrent.
        torrent: TorrentId,
    },
    /// After [`Engine::shutdown`](crate::Engine::shutdown): every `stopped` announce is done (or timed out).
    ShutdownComplete,
    /// A health check of [`Engine::check_health`](crate::Engine::check_health) is over.
    HealthChecked {
        /// The check.
        check: crate::health::HealthCheckId,
        /// What its sources said.
        report: crate::health::HealthReport,
    },
}

/// Why a torrent stopped on an error ([`Event::Error`]); its text is what the torrent's state
/// reports.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TorrentError {
    /// Reading or writing its files failed (or the disk answered a read with the wrong length).
    #[error(transparent)]
    Disk(#[from] DiskError),
    /// The info dictionary peers gave for a magnet link does not describe a torrent.
    #[error("the torrent's metadata is invalid: {0}")]
    InvalidMetadata(MetainfoError),
}

#[cfg(test)]
mod tests {
    use super::TorrentError;
    use crate::engine::{DiskError, DiskErrorKind};
    use crate::metainfo::Info;

    #[test]
    fn a_torrent_error_reads_as_the_message_it_replaces() {
        let disk = DiskError { kind: DiskErrorKind::NoSpace, message: "/data/a.bin: no space left".into() };
        let error = TorrentError::from(disk.clone());
        assert_eq!(error, TorrentError::Disk(disk), "the kind stays inspectable");
        assert_eq!(error.to_string(), "/data/a.bin: no space left");
        let bad = Info::from_bytes(b"not bencode").expect_err("not an info dictionary");
        let error = TorrentError::InvalidMetadata(bad.clone());
        assert_eq!(error.to_string(), format!("the torrent's metadata is invalid: {bad}"));
    }
}

/// Identifies one [`crate::Engine::dht_scrape`]; its [`Event::DhtScrape`] carries it.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct DhtScrapeId(pub u64);
