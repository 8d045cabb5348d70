//! What a torrent knows of its content: while a magnet fetches the info dictionary, only what
//! the magnet said; then its metainfo, the files' layout and the files' priorities.

use super::fetch::MetadataPhase;
use crate::engine::params::FilePriority;
use crate::metainfo::Metainfo;
use crate::storage::FileLayout;

/// What a torrent knows of its content.
pub(crate) enum Content {
    /// Added by magnet: the info dictionary is being fetched.
    Unknown(Unknown),
    /// The metainfo is known.
    Known(Box<Known>),
}

/// A magnet torrent before its info dictionary is in.
pub(crate) struct Unknown {
    /// The fetch of the info dictionary, and what to do once it is in.
    pub phase: Box<MetadataPhase>,
    /// Its display name (the magnet's `dn`, else the info hash in hex).
    pub name: String,
    /// The magnet's trackers, one tier each; they stay the metainfo's.
    pub trackers: Vec<Vec<String>>,
}

/// A torrent whose metainfo is known.
pub(crate) struct Known {
    /// Its metainfo.
    pub meta: Metainfo,
    /// Where each piece lies in the files.
    pub layout: FileLayout,
    /// One per file.
    pub priorities: Vec<FilePriority>,
}

impl Content {
    /// The metainfo, layout and priorities, once known.
    pub(super) fn known(&self) -> Option<&Known> {
        match self {
            Content::Known(k) => Some(k),
            Content::Unknown(_) => None,
        }
    }

    /// The metainfo, once known.
    pub(super) fn meta(&self) -> Option<&Metainfo> {
        self.known().map(|k| &k.meta)
    }

    /// The metadata fetch, while the info dictionary is not in.
    pub(super) fn fetching_mut(&mut self) -> Option<&mut MetadataPhase> {
        match self {
            Content::Unknown(u) => Some(&mut u.phase),
            Content::Known(_) => None,
        }
    }

    /// Whether the info dictionary is still being fetched.
    pub(super) fn is_fetching(&self) -> bool {
        matches!(self, Content::Unknown(_))
    }

    /// Its piece count; 0 while unknown.
    pub(super) fn piece_count(&self) -> u32 {
        self.meta().map_or(0, |m| m.info.piece_count())
    }

    /// Whether the torrent is private (BEP 27); a magnet is not until its dictionary says so.
    pub(super) fn private(&self) -> bool {
        self.meta().is_some_and(|m| m.info.private)
    }

    /// Its name.
    pub(super) fn name(&self) -> &str {
        match self {
            Content::Unknown(u) => &u.name,
            Content::Known(k) => &k.meta.info.name,
        }
    }
}
