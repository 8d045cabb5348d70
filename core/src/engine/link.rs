//! The encryption state of each connection that is or may be encrypted (MSE), as the engine
//! keeps it ([`super::encryption`] drives it).

use std::collections::HashMap;

use crate::mse::{Cipher, MseHandshake};
use crate::types::{ConnId, InfoHash, Instant};

/// The encryption state of one connection that may be encrypted.
pub(super) struct Link {
    /// Where it is.
    pub(super) state: LinkState,
    /// What stays with it from state to state.
    pub(super) info: LinkInfo,
}

/// What a link keeps through its states.
#[derive(Clone, Copy)]
pub(super) struct LinkInfo {
    /// We dialled it.
    pub(super) outgoing: bool,
    /// Bytes of MSE handshake we queued that the runtime has not reported sent: they are not
    /// the torrent's, so its send accounting never sees them.
    pub(super) overhead: u64,
    /// When it was accepted or dialled, then when its MSE handshake started (a dial that
    /// connected): an outgoing handshake is given up after the handshake timeout.
    pub(super) since: Instant,
}

impl Link {
    /// A link in `state` with `info`.
    pub(super) fn new(state: LinkState, info: LinkInfo) -> Self {
        Link { state, info }
    }
}

/// Where an encrypted (or possibly encrypted) connection is.
pub(super) enum LinkState {
    /// Incoming: its first bytes, until they tell a plaintext handshake from an MSE one.
    Sniffing(Vec<u8>),
    /// Outgoing, dialled encrypted for this torrent; not connected yet.
    Dialing(InfoHash),
    /// The MSE handshake is under way.
    Handshaking(Box<MseHandshake>),
    /// The handshake is done: decrypts what arrives (plaintext when that was selected).
    Open(Cipher),
}

/// What the first bytes of an incoming connection say it is.
pub(super) enum Sniffed {
    /// Not enough bytes to tell.
    Unsure,
    /// A plaintext BitTorrent handshake.
    Plaintext,
    /// Anything else: an MSE public key.
    Encrypted,
}

/// How a plaintext BitTorrent handshake starts.
const PROTOCOL: &[u8; 20] = b"\x13BitTorrent protocol";

/// Tells a plaintext handshake (19, "BitTorrent protocol") from the start of an MSE one (a
/// public key starts so with odds of 2^-160).
pub(super) fn sniff(first: &[u8]) -> Sniffed {
    let n = first.len().min(PROTOCOL.len());
    if first[..n] != PROTOCOL[..n] {
        Sniffed::Encrypted
    } else if n == 20 {
        Sniffed::Plaintext
    } else {
        Sniffed::Unsure
    }
}

/// The links of an engine, by connection.
pub(super) type Links = HashMap<ConnId, Link>;
