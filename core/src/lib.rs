//! Shoal's sans-IO BitTorrent engine.
//!
//! Nothing in this crate touches a socket, a file, a clock, a thread or a global RNG. The
//! [`Engine`] is a state machine: the runtime feeds it inputs (`handle_*`), executes what it
//! asks for (drained with [`Engine::poll_output`]) and wakes it at [`Engine::poll_timeout`].
//! Everything that goes in and out is plain data, so the same engine runs on smol, on tokio,
//! in a hand-written loop, or inside a deterministic simulator.
//!
//! ```text
//! input from the world            commands                     output (drain after every call)
//! handle_incoming / _connected    add_torrent, add_magnet      Output::Connect / Send / Close
//! handle_peer_data / _sent        pause, resume, remove        Output::Disk(DiskJob)
//! handle_closed                   set_file_priority, shutdown  Output::Hash(HashJob)
//!                                 set_deadline_piece
//!                                 set_rate_limits
//! handle_job (disk, hash)                                      Output::Tracker(TrackerJob)
//! handle_tracker_http / _udp                                   Output::Event(Event)
//! handle_timeout(now)                                          poll_timeout() -> next deadline
//! ```

pub mod bencode;
pub mod bitfield;
pub mod choker;
pub mod create;
pub mod dht;
pub mod engine;
pub mod health;
pub mod lsd;
pub mod magnet;
pub mod metainfo;
pub mod net_policy;
pub mod picker;
pub mod rate;
pub mod storage;
pub mod tracker;
pub mod types;
pub mod wire;

pub use bitfield::Bitfield;
pub use engine::{
    AddMagnet, AddTorrent, Config, DiskError, DiskErrorKind, DiskJob, DiskJobKind, Engine, EngineError, Event,
    FilePriority, HashJob, JobResult, Output, PeerRequests, PlacedSpan, TorrentError, TorrentState, TorrentStats,
    TrackerJob,
};
pub use metainfo::{Info, Metainfo, MetainfoError};
pub use net_policy::NetPolicy;
pub use storage::{FileLayout, FileSpan};
pub use types::{BlockRef, ConnId, InfoHash, Instant, JobId, PeerId, TorrentId, BLOCK_SIZE};
