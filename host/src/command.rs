//! What a [`crate::Handle`] asks of the engine task.
//!
//! Most requests are a call on the engine and come as [`Command::Engine`], a closure the task
//! runs on its engine; only requests that also touch what the task owns (files, subscribers,
//! waiters) have a variant of their own. A new engine command is then one typed method on the
//! handle, not a variant, a match arm and a method.

use std::time::Duration;

use async_channel::Sender;
use shoal_core::engine::{Engine, Event, FilePriority};
use shoal_core::health::HealthReport;
use shoal_core::{InfoHash, Instant, TorrentId};

use crate::session::SessionError;
use crate::session::{AddOptions, Checkpoint, MagnetOptions};

/// Where the engine task sends a command's answer.
pub(crate) type Reply<T> = Sender<T>;

/// A call on the engine, run inside its task at the time given (it answers through a channel
/// it has captured).
pub(crate) type EngineCall = Box<dyn FnOnce(&mut Engine, Instant) + Send>;

/// Requests from handles to the engine task.
pub(crate) enum Command {
    /// Runs a call on the engine.
    Engine(EngineCall),
    /// Maps a torrent's files, then adds it.
    Add(Box<AddOptions>, Reply<Result<TorrentId, SessionError>>),
    /// Adds a magnet link; its files are mapped once the metadata has arrived.
    AddMagnet(Box<MagnetOptions>, Reply<Result<TorrentId, SessionError>>),
    /// Checks a torrent's data again, through freshly opened files.
    Recheck(TorrentId, Reply<Result<(), SessionError>>),
    /// Sets a file's priority, and whether its file is preallocated.
    SetFilePriority(TorrentId, usize, FilePriority, Reply<Result<(), SessionError>>),
    /// Syncs a torrent's files and answers with the pieces verified before the sync.
    Checkpoint(TorrentId, Reply<Option<Checkpoint>>),
    /// Sends every event from now on to this channel.
    Subscribe(Sender<Event>),
    /// Checks a torrent's health with these trackers; answers when the report is in.
    CheckHealth(InfoHash, Vec<String>, Duration, Reply<Result<HealthReport, SessionError>>),
    /// Shuts the session down; answers once it has stopped.
    Shutdown(Reply<()>),
}
