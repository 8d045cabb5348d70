//! What the application passes when it adds a torrent, and what its commands may fail with.

use std::net::SocketAddr;

use crate::bitfield::Bitfield;
use crate::magnet::Magnet;
use crate::metainfo::Metainfo;
use crate::types::InfoHash;

/// Download priority of one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum FilePriority {
    /// Not downloaded at all.
    Skip,
    /// Downloaded after everything else.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Downloaded first.
    High,
}

/// What the application asks for when it adds a torrent.
#[derive(Clone, Debug)]
pub struct AddTorrent {
    /// The parsed torrent.
    pub metainfo: Metainfo,
    /// Pieces known to be verified on disk (resume data); `None` if unknown.
    pub have: Option<Bitfield>,
    /// Whether data may already exist on disk and must be checked (runtimes stat the files).
    pub check_existing: bool,
    /// Start paused.
    pub paused: bool,
    /// Per-file priorities (missing entries are `Normal`).
    pub file_priorities: Vec<FilePriority>,
    /// Peers to dial besides those trackers return.
    pub peers: Vec<SocketAddr>,
    /// Download pieces in order (for streaming).
    pub sequential: bool,
    /// With `have` and `check_existing`: also check the pieces outside `have` (resume data
    /// from before a crash; what was verified after it is still on disk).
    pub verify_unverified: bool,
}

impl AddTorrent {
    /// Parameters with defaults: check existing data, all files wanted, not paused.
    pub fn new(metainfo: Metainfo) -> Self {
        AddTorrent {
            metainfo,
            have: None,
            check_existing: true,
            paused: false,
            file_priorities: Vec::new(),
            peers: Vec::new(),
            sequential: false,
            verify_unverified: false,
        }
    }
}

/// What the application asks for when it adds a torrent by magnet link (BEP 9).
#[derive(Clone, Debug)]
pub struct AddMagnet {
    /// The parsed link: info-hash, display name, trackers, peers (`x.pe`), file selection (`so`).
    pub magnet: Magnet,
    /// Start paused.
    pub paused: bool,
    /// Peers to dial besides the link's and those trackers return.
    pub peers: Vec<SocketAddr>,
    /// Download pieces in order (for streaming).
    pub sequential: bool,
    /// Check data already on disk once the files are known (re-adding a magnet whose data
    /// exists); a fresh download otherwise.
    pub check_existing: bool,
}

impl AddMagnet {
    /// Parameters with defaults: not paused, no check of existing data.
    pub fn new(magnet: Magnet) -> Self {
        AddMagnet { magnet, paused: false, peers: Vec::new(), sequential: false, check_existing: false }
    }
}

/// Errors of application commands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The torrent is already in this engine.
    #[error("torrent {0} is already added")]
    Duplicate(InfoHash),
    /// No such torrent.
    #[error("no such torrent")]
    UnknownTorrent,
    /// The resume bitfield does not fit the torrent.
    #[error("resume data does not match the torrent ({0} pieces expected)")]
    BadResume(u32),
}
