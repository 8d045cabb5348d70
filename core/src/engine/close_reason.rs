//! Why a peer connection ended: carried by [`PeerIo::Close`](crate::PeerIo::Close),
//! [`Input::Closed`](crate::Input::Closed) and [`Event::PeerClosed`](crate::Event::PeerClosed).
//!
//! Modelled on libtorrent's `close_reason_t`, with only the reasons Shoal has.

use std::io::ErrorKind;

use crate::mse::MseError;
use crate::wire::WireError;

/// Why a peer connection ended.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CloseReason {
    // ---- told by the runtime ----
    /// The dial failed (refused, unreachable, not allowed by the network policy).
    #[error("dial failed: {0}")]
    DialFailed(ErrorKind),
    /// The peer closed the connection.
    #[error("closed by the peer")]
    PeerClosed,
    /// Reading from or writing to the socket failed.
    #[error("socket error: {0}")]
    Io(ErrorKind),
    /// The dial through the configured SOCKS5 proxy failed (the proxy was unreachable, refused
    /// the credentials, or could not reach the peer).
    #[error("proxy: {0}")]
    Proxy(crate::socks::ProxyError),

    // ---- the peer misbehaved ----
    /// The peer sent bytes the wire decoder refuses.
    #[error("protocol error: {0}")]
    Wire(WireError),
    /// The peer sent a well-formed message it may not send.
    #[error("protocol violation: {0}")]
    Violation(Violation),
    /// The handshake names a torrent other than the one dialled.
    #[error("the handshake names another torrent")]
    WrongInfoHash,
    /// An incoming handshake names a torrent this session does not have.
    #[error("the handshake names an unknown torrent")]
    UnknownTorrent,
    /// The peer is ourselves (its handshake carries our peer id).
    #[error("connected to ourselves")]
    SelfConnection,
    /// Another connection to the same peer id is kept.
    #[error("duplicate connection to the same peer")]
    Duplicate,
    /// The encrypted (MSE) handshake failed.
    #[error("encrypted handshake failed: {0}")]
    Encryption(MseError),
    /// A plaintext handshake, while [`Encryption::Forced`](crate::Encryption::Forced) takes
    /// only encrypted ones.
    #[error("plaintext refused: encryption is required")]
    EncryptionRequired,
    /// The peer's address is banned for sending data that failed hash checks.
    #[error("banned for sending bad data")]
    Banned,

    // ---- timeouts ----
    /// The dial did not complete within [`Config::connect_timeout`](crate::Config::connect_timeout).
    #[error("connect timed out")]
    ConnectTimeout,
    /// No handshake arrived within [`Config::handshake_timeout`](crate::Config::handshake_timeout).
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// The peer said nothing (keep-alives aside) within
    /// [`Config::handshake_timeout`](crate::Config::handshake_timeout) of its handshake.
    #[error("silent since its handshake")]
    Silent,
    /// Nothing arrived from the peer within [`Config::inactivity_timeout`](crate::Config::inactivity_timeout).
    #[error("inactive")]
    Inactivity,

    // ---- room and usefulness ----
    /// Closed to make room for another peer (a newcomer, or a dial of a fresh address).
    #[error("replaced by another peer")]
    Replaced,
    /// The torrent or session is full and no peer may be replaced.
    #[error("too many connections")]
    TooManyConnections,
    /// The address has [`Config::max_connections_per_ip`](crate::Config::max_connections_per_ip) connections already.
    #[error("too many connections from its address")]
    TooManyFromAddress,
    /// Neither side needs the other: both are seeds.
    #[error("not useful: both sides are seeds")]
    NotUseful,

    // ---- the torrent or the session stopped ----
    /// The torrent is not running (paused, checking, stopped on an error, or being removed).
    #[error("the torrent is not running")]
    TorrentInactive,
    /// The torrent was paused.
    #[error("the torrent was paused")]
    TorrentPaused,
    /// The torrent checks its data again (a recheck, or the check after a magnet's metadata).
    #[error("the torrent is checking its data")]
    TorrentChecking,
    /// The torrent stopped on an error ([`Event::Error`](crate::Event::Error)).
    #[error("the torrent stopped on an error")]
    TorrentFailed,
    /// The torrent was removed.
    #[error("the torrent was removed")]
    TorrentRemoved,
    /// The engine shuts down ([`Engine::shutdown`](crate::Engine::shutdown)).
    #[error("the session shuts down")]
    Shutdown,
}

/// A well-formed message the peer was not allowed to send.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// HAVE_ALL or HAVE_NONE from a peer that did not offer the fast extension (BEP 6).
    #[error("HAVE_ALL or HAVE_NONE without the fast extension")]
    NotFast,
    /// A REQUEST of no bytes, of too many, or reaching past the end of its piece.
    #[error("request for a range outside its piece")]
    BadRequest,
    /// More HAVEs before the metadata arrived than are remembered.
    #[error("too many HAVEs before the metadata")]
    TooManyEarlyHaves,
    /// A `ut_metadata` piece of the wrong size or for a different total size.
    #[error("bad metadata piece")]
    BadMetadataPiece,
}

impl From<WireError> for CloseReason {
    fn from(e: WireError) -> Self {
        CloseReason::Wire(e)
    }
}

impl From<MseError> for CloseReason {
    fn from(e: MseError) -> Self {
        CloseReason::Encryption(e)
    }
}

impl From<Violation> for CloseReason {
    fn from(v: Violation) -> Self {
        CloseReason::Violation(v)
    }
}
