//! What the library holds: a download, where it stands, and what the REST API asks and sees.

use std::path::PathBuf;
use std::sync::Arc;

use shoal_core::{Bitfield, InfoHash, Metainfo, TorrentId};
use shoal_core::{FilePriority, PeerStats, TorrentState, TorrentStats};

use super::persist::ResumeData;

/// Why a download is refused or an operation fails.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// No download with that info-hash.
    #[error("this download does not exist")]
    Unknown,
    /// A request that makes no sense for the download.
    #[error("{0}")]
    Invalid(String),
    /// The engine or the disk failed.
    #[error("{0}")]
    Failed(String),
}

/// The text shown for downloads asked to be anonymous: we have no tunnels, and a download
/// asked to be anonymous must never silently go direct.
pub const NO_ANONYMITY: &str =
    "anonymous downloads (anon_hops > 0) are not available in Shoal: the download waits; set anon_hops to 0 to download directly";

/// Where a download stands besides the engine's own states.
#[derive(Clone, Debug, PartialEq)]
pub enum Phase {
    /// Its files are being set up.
    Allocating,
    /// In the engine.
    Engine(TorrentId),
    /// Waiting for anonymity (`hops > 0`), which Shoal does not provide.
    Circuits,
    /// Could not be started: the reason.
    Failed(String),
    /// Its files are being moved to another directory.
    Moving,
}

/// One download.
#[derive(Clone)]
pub struct Download {
    /// Its info-hash.
    pub info_hash: InfoHash,
    /// The torrent; `None` while a magnet's metadata is being fetched.
    pub meta: Option<Arc<Metainfo>>,
    /// The torrent file as added, or as built from a magnet's metadata (served by `/torrent`).
    pub torrent: Option<Arc<Vec<u8>>>,
    /// What persists (totals there are those up to the current engine session).
    pub resume: ResumeData,
    /// Where it stands.
    pub phase: Phase,
    /// Pieces in the last checkpoint written, to skip writing an unchanged one.
    pub(super) saved_pieces: Option<u32>,
    /// The checkpoint's verified pieces, while a check after a crash looks for more (their
    /// bytes are then credited as downloaded: see [`ResumeData::credit_found_after_crash`]).
    pub(super) crash_base: Option<Bitfield>,
}

impl Download {
    /// The torrent's name; for a magnet without metadata its `dn`, else the info-hash.
    pub fn name(&self) -> String {
        match (&self.meta, &self.resume.magnet) {
            (Some(m), _) => m.info.name.clone(),
            (None, Some(uri)) => shoal_core::magnet::Magnet::parse(uri)
                .ok()
                .and_then(|m| m.display_name)
                .unwrap_or_else(|| self.info_hash.to_string()),
            (None, None) => self.info_hash.to_string(),
        }
    }

    /// Number of files (0 before a magnet's metadata).
    pub fn file_count(&self) -> usize {
        self.meta.as_ref().map_or(0, |m| m.info.files.len())
    }

    /// The engine's id for it, while it is there.
    pub fn torrent_id(&self) -> Option<TorrentId> {
        match self.phase {
            Phase::Engine(id) => Some(id),
            _ => None,
        }
    }

    /// Number of pieces (0 before a magnet's metadata).
    pub fn piece_count(&self) -> u32 {
        self.meta.as_ref().map_or(0, |m| m.info.pieces.len() as u32)
    }

    /// Whether file `i` is wanted.
    pub fn included(&self, i: usize) -> bool {
        self.resume.selected_files.as_ref().is_none_or(|s| s.contains(&i))
    }

    /// Engine priorities from the selection (and the streamed file, which is always wanted).
    pub(super) fn priorities(&self) -> Vec<FilePriority> {
        (0..self.file_count())
            .map(|i| {
                let streamed = self.resume.vod_mode == Some(true) && self.resume.vod_file == Some(i);
                if self.included(i) || streamed {
                    FilePriority::Normal
                } else {
                    FilePriority::Skip
                }
            })
            .collect()
    }
}

/// What `PUT /downloads` asks for.
pub struct AddRequest {
    /// The torrent file (unused for a magnet link).
    pub torrent: Vec<u8>,
    /// The directory the files go into.
    pub destination: PathBuf,
    /// The wanted files; `None`: all.
    pub selected_files: Option<Vec<usize>>,
    /// Anonymity hops asked for (0: direct).
    pub hops: u32,
    /// Whether to seed only anonymously.
    pub safe_seeding: bool,
}

/// A download with the engine's figures, for the REST API.
pub struct Snapshot {
    /// The download as the library holds it.
    pub download: Download,
    /// The engine's figures, while it is in the engine.
    pub stats: Option<TorrentStats>,
    /// Its peers, when asked for.
    pub peers: Option<Vec<PeerStats>>,
}

/// Whether the engine is checking (or waiting to check) the torrent's data.
pub fn checking(s: &TorrentState) -> bool {
    matches!(s, TorrentState::Checking { .. } | TorrentState::CheckQueued)
}
