//! Snapshots of a torrent's and a peer's figures.

use std::net::SocketAddr;

use crate::bitfield::Bitfield;
use crate::tracker::TrackerStatus;
use crate::types::{InfoHash, PeerId};

use super::dht::DhtTorrentStatus;

/// The phase a torrent is in.
#[derive(Clone, Debug, PartialEq)]
pub enum TorrentState {
    /// Added by magnet: fetching the info dictionary from peers.
    Metadata,
    /// Waiting for another torrent's check to end before checking its own data
    /// ([`Config::max_checking_torrents`](crate::Config::max_checking_torrents)).
    CheckQueued,
    /// Checking existing data; `progress` in 0..=1.
    Checking {
        /// Fraction of pieces checked.
        progress: f32,
    },
    /// Downloading wanted pieces.
    Downloading,
    /// All wanted pieces are verified; uploading to others.
    Seeding,
    /// Stopped by the application.
    Paused,
    /// Stopped on an error (disk full, file deleted, destination unwritable, …).
    Error(String),
}

/// A snapshot of one torrent's figures.
#[derive(Clone, Debug)]
pub struct TorrentStats {
    /// The torrent's info-hash.
    pub info_hash: InfoHash,
    /// Its name.
    pub name: String,
    /// Its phase.
    pub state: TorrentState,
    /// Pieces verified.
    pub pieces_have: u32,
    /// Pieces in the torrent.
    pub pieces_total: u32,
    /// Bytes of wanted pieces (all pieces not skipped).
    pub wanted_bytes: u64,
    /// Bytes of wanted pieces verified.
    pub have_bytes: u64,
    /// Payload bytes received this session.
    pub downloaded: u64,
    /// Payload bytes sent this session.
    pub uploaded: u64,
    /// Bytes received that were thrown away (duplicates, failed hash checks).
    pub wasted: u64,
    /// Payload download rate, bytes per second.
    pub download_rate: u64,
    /// Payload upload rate, bytes per second.
    pub upload_rate: u64,
    /// Connected peers.
    pub peers: usize,
    /// Connected peers that have every piece.
    pub seeds: usize,
    /// Peers known but not connected.
    pub candidates: usize,
    /// Full copies of the torrent among connected peers (libtorrent's `distributed_copies`):
    /// the integer part is the availability of the rarest piece (seeds count as full copies),
    /// the fraction the share of pieces more available than that. Our own pieces do not count.
    pub availability: f32,
    /// Tracker states.
    pub trackers: Vec<TrackerStatus>,
    /// Pieces verified, as a bitfield.
    pub have: Bitfield,
    /// What the DHT did for it; `None` when the DHT is off.
    pub dht: Option<DhtTorrentStatus>,
    /// Peers peer exchange (BEP 11) told us of that we did not know before; `None` when
    /// peer exchange is off for the torrent (a private torrent, BEP 27).
    pub pex: Option<u32>,
}

/// A snapshot of one connected peer.
#[derive(Clone, Debug)]
pub struct PeerStats {
    /// Its address.
    pub addr: SocketAddr,
    /// Client name from its extended handshake, if any.
    pub client: Option<String>,
    /// Its peer id.
    pub peer_id: PeerId,
    /// Whether we dialled it.
    pub outgoing: bool,
    /// Fraction of pieces it has.
    pub progress: f32,
    /// Bytes per second we receive from it.
    pub download_rate: u64,
    /// Bytes per second we send it.
    pub upload_rate: u64,
    /// Bytes per second it downloads from the whole swarm, estimated from the pieces it
    /// announces (what libtorrent and Tribler call the peer's `speed`).
    pub peer_download_rate: u64,
    /// Payload bytes received from it.
    pub downloaded: u64,
    /// Payload bytes sent to it.
    pub uploaded: u64,
    /// We are choking it.
    pub am_choking: bool,
    /// We are interested in it.
    pub am_interested: bool,
    /// It is choking us.
    pub peer_choking: bool,
    /// It is interested in us.
    pub peer_interested: bool,
    /// It has stopped sending us blocks.
    pub snubbed: bool,
    /// It holds our optimistic unchoke.
    pub optimistic: bool,
    /// Its requests to us not yet served (queued, being read, or held by the upload limit).
    pub queued_requests: usize,
    /// Our requests to it not yet answered.
    pub outstanding_requests: usize,
    /// It has every piece (a full bitfield or HAVE_ALL).
    pub seed: bool,
    /// It only uploads: `upload_only` in its extended handshake (BEP 21), or a seed.
    pub upload_only: bool,
}

/// The request figures of one connection, as in [`PeerStats`] but read without building a
/// snapshot (a simulator checks them after every step).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerRequests {
    /// Its requests to us not yet served (queued, being read, or held by the upload limit).
    pub queued: usize,
    /// Our requests to it not yet answered.
    pub outstanding: usize,
}
