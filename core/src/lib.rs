//! Shoal's sans-IO BitTorrent engine.
//!
//! Nothing in this crate touches a socket, a file, a clock, a thread or a global RNG. The
//! [`Engine`] is a state machine: the runtime hands it what happened ([`Input`]), carries out
//! what it asks for ([`Output`], drained with [`Engine::poll_output`]) and wakes it at
//! [`Engine::poll_timeout`]. Everything that goes in and out is plain data, so the same engine
//! runs on smol or tokio (through `shoal-host`), in a hand-written loop
//! (`examples/manual_loop.rs`), or inside the deterministic simulator (`shoal-sim`).
//!
//! # The methods, in four families
//!
//! | family   | methods                                                                    |
//! |----------|----------------------------------------------------------------------------|
//! | input    | [`Engine::handle`] (one [`Input`]), [`Engine::accept`] (a new incoming connection: returns its [`ConnId`] or refuses), [`Engine::handle_timeout`] |
//! | commands | `add_torrent`, `add_magnet`, `pause`, `resume`, `recheck`, `remove`, `set_file_priority`, `set_sequential`, `set_deadline_piece`, `add_peers`, `scrape`, `set_rate_limits`, `enable_dht`, `add_dht_node`, `dht_scrape`, `check_health`, `shutdown` |
//! | output   | [`Engine::poll_output`], [`Engine::poll_timeout`]                          |
//! | getters  | `stats`, `peers`, `peer_requests`, `torrents`, `find`, `has_piece`, `metainfo`, `file_priorities`, `dht_status`, `dht_snapshot`, `config`, `peer_id`, `is_shut_down` |
//!
//! # What goes in, what comes out
//!
//! Each [`Output`] names the transport that carries it, and the [`Input`] that answers it:
//!
//! | output                                        | the runtime                          | answers with                          |
//! |-----------------------------------------------|--------------------------------------|---------------------------------------|
//! | `Peer(PeerIo::Connect { conn, addr })`        | dials a TCP connection               | `Input::Connected` or `Input::Closed` |
//! | `Peer(PeerIo::Send { conn, data })`           | writes the bytes, in order           | `Input::Sent` as the socket takes them |
//! | `Peer(PeerIo::Close { conn, reason })`        | closes it (the engine forgot it)     | nothing                               |
//! | (a peer's bytes arrive)                       |                                      | `Input::PeerBytes`, `Input::Closed`   |
//! | `Udp(UdpIo::Dht { to, data })`                | sends from the DHT socket            | `Input::Datagram { socket: Socket::Dht, .. }` for what arrives there |
//! | `Udp(UdpIo::Lsd { data, v6 })`                | sends to the LSD multicast group     | `Input::Datagram { socket: Socket::Lsd, .. }` |
//! | `Udp(UdpIo::Exchange { exchange, .. })`       | sends from the exchange's own socket | `Input::Exchange` per datagram or failure |
//! | `Udp(UdpIo::EndExchange { exchange })`        | drops that socket                    | nothing                               |
//! | `Resolve { host, port }`                      | resolves a DHT bootstrap name        | `Input::Resolved`                     |
//! | `Http { id, url }`                            | GETs the URL (trackers, health)      | `Input::Http`                         |
//! | `Disk(DiskJob)`                               | reads, writes or verifies, off-thread | `Input::Job` (see [`DiskJob::fail`])  |
//! | `Hash(HashJob)`                               | hashes (and writes) a piece, off-thread | `Input::Job`                       |
//! | `Event(Event)`                                | tells the application                | nothing                               |
//!
//! # The rules
//!
//! * **Drain after every call.** After any input or command, call [`Engine::poll_output`] until
//!   it returns `None`, then sleep until [`Engine::poll_timeout`] (`None`: the engine is shut
//!   down and needs no wake-up) or the next input, whichever comes first, and call
//!   [`Engine::handle_timeout`] when the deadline passes.
//! * **Time is an input.** Every entry point that can change state takes `now`, an [`Instant`]
//!   from a monotonic clock the runtime chooses (microseconds since any origin). `now` must
//!   never go backwards from one call to the next; the engine reads no other clock.
//! * **Re-entry while draining is allowed.** Between two `poll_output` calls the runtime may
//!   hand the engine an input or a command; the outputs that causes join the same queue. The
//!   host answers a disk read the page cache holds, or a job of a torrent without storage,
//!   inline this way, and `manual_loop` reports sends as it makes them.
//! * **Every id is the engine's.** [`ConnId`], [`JobId`] and [`ExchangeId`] are handed out by
//!   the engine and never reused; an answer for an id it forgot is ignored.
//! * **Stopping.** After [`Engine::shutdown`] the engine takes no more connections, adding a
//!   torrent or a command on one returns [`EngineError::ShuttingDown`], and [`Event::ShutdownComplete`] follows once every
//!   torrent said `stopped` to its trackers (or the shutdown timeout passed).
//!
//! * **Closing says why.** Every [`PeerIo::Close`] and [`Input::Closed`] carries a
//!   [`CloseReason`], and [`Event::PeerClosed`] reports each connection a torrent lost with it.
//!
//! # Inside
//!
//! The [`Engine`] routes each input to the torrent that owns the id. A torrent is a composer of
//! small machines that own their state: the address book, the data checker, the tracker driver,
//! the download pipeline and the upload queue. It handles an input in a context holding the
//! time, the configuration, the outbox it writes outputs into and the session-wide limits it
//! shares with the other torrents. A connection's state is a type (dialing, handshaking, or
//! active with what only exists after the handshake), and so is a torrent's content (unknown
//! until a magnet's metadata arrives, then known). `Engine::check_invariants` cross-checks the
//! parts; the simulator calls it after every step.
//!
//! The tracker, DHT, wire and metainfo codecs below the engine are sans-IO machines of the same
//! shape, public for the simulator, the fuzzers and the benches. [`portmap::PortMapper`] (UPnP IGD and
//! NAT-PMP port mapping) is one too, driven by the host beside the engine rather than inside it.

pub mod bencode;
mod bitfield;
pub mod choker;
pub mod create;
pub mod dht;
mod engine;
pub mod health;
pub mod lsd;
pub mod magnet;
mod metainfo;
pub mod mse;
mod net_policy;
pub mod picker;
pub mod portmap;
pub mod rate;
pub mod socks;
mod storage;
pub mod tracker;
mod types;
pub mod utp;
pub mod wire;

pub use bitfield::Bitfield;
pub use engine::{
    lay_out_read, AddMagnet, AddTorrent, CloseReason, Config, ConnectionLimits, DhtScrapeError, DhtScrapeId,
    DhtTorrentStatus, DiskError, DiskErrorKind, DiskJob, DiskJobKind, Encryption, Engine, EngineError, Event,
    FilePriority, HashJob, HealthCheckError, Input, JobResult, Output, PeerIo, PeerRequests, PeerStats, PlacedSpan,
    Socket, TorrentError, TorrentState, TorrentStats, UdpIo, Violation, ANNOUNCE_EVERY, DEFAULT_DESCRIPTORS,
    MAX_CHECK_TIMEOUT, MAX_DESCRIPTORS, MAX_QUEUED_SCRAPES, MAX_RUNNING_CHECKS, MAX_RUNNING_SCRAPES,
};
pub use metainfo::{
    FileAttr, FileEntry, Info, Metainfo, MetainfoError, MAX_FILES, MAX_PIECES, MAX_PIECE_LENGTH, MAX_URLS,
};
pub use net_policy::{Lookup, NetPolicy, Refused};
pub use storage::{FileLayout, FileSpan};
pub use tracker::announce::{TrackerError, TransportError};
pub use types::{
    BlockRef, ConnId, ExchangeId, HexError, InfoHash, Instant, JobId, PeerId, PieceHash, TorrentId, BLOCK_SIZE,
};
