//! Hand-driven peers: connections to an engine whose bytes the test writes and reads, for
//! hostile or precisely timed input, addressed by `RawId`, and the bytes they send.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::{Index, IndexMut};

use shoal_core::wire::{
    ExtendedHandshake, Handshake, HandshakeDecoder, HandshakeStep, Limits, Message, PexMessage, UT_PEX,
};
use shoal_core::{ConnId, InfoHash, PeerId};

use super::ids::{NodeId, RawId};

/// A hand-driven peer connected to an engine, for hostile-input tests.
#[derive(Debug)]
pub(crate) struct RawPeer {
    /// The engine it is connected to.
    pub node: NodeId,
    /// The engine's id for the connection.
    pub conn: ConnId,
    /// Everything the engine sent it.
    pub received: Vec<u8>,
    /// Whether the engine (or the test) closed the connection.
    pub closed: bool,
    /// The address the engine dialled to reach it; `None` if it connected to the engine.
    pub dialled: Option<SocketAddr>,
}

/// The hand-driven peers of a world.
#[derive(Debug, Default)]
pub(crate) struct Raws(Vec<RawPeer>);

impl Index<RawId> for Raws {
    type Output = RawPeer;

    fn index(&self, id: RawId) -> &RawPeer {
        &self.0[id.0]
    }
}

impl Raws {
    /// Adds a hand-driven peer; its id.
    pub(super) fn push(&mut self, peer: RawPeer) -> RawId {
        self.0.push(peer);
        RawId(self.0.len() - 1)
    }

    /// The connections the engines dialled to `addr`, oldest first.
    pub(crate) fn dialled_at(&self, addr: SocketAddr) -> Vec<RawId> {
        (0..self.0.len()).filter(|&i| self.0[i].dialled == Some(addr)).map(RawId).collect()
    }
}

impl IndexMut<RawId> for Raws {
    fn index_mut(&mut self, id: RawId) -> &mut RawPeer {
        &mut self.0[id.0]
    }
}

/// The valid messages an engine sent a hand-driven peer, up to the first invalid one.
pub(crate) fn raw_messages(received: &[u8]) -> Vec<Message> {
    let mut d = HandshakeDecoder::new(Limits::default());
    d.feed(received);
    let Ok(HandshakeStep::Done(_, mut d)) = d.take() else { return Vec::new() };
    std::iter::from_fn(|| d.next_message().ok().flatten()).collect()
}

/// A hand-driven peer's handshake.
pub(crate) fn handshake(info_hash: InfoHash) -> Vec<u8> {
    let mut out = Vec::new();
    Handshake::new(info_hash, PeerId(*b"-XX0001-hostilepeer0")).encode(&mut out);
    out
}

/// A hand-driven peer's greeting: handshake, then an extended handshake offering ut_pex (as
/// id 7) with its listening port and what it sees as our address.
pub(crate) fn pex_greeting(info_hash: InfoHash, who: u8, listen_port: Option<u16>, yourip: Option<Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut peer_id = *b"-XX0001-pexpeer00000";
    peer_id[19] = who;
    Handshake::new(info_hash, PeerId(peer_id)).encode(&mut out);
    let ext =
        ExtendedHandshake { m: BTreeMap::from([(UT_PEX.to_owned(), 7)]), p: listen_port, yourip, ..Default::default() };
    Message::Extended { id: 0, payload: ext.encode() }.encode(&mut out);
    out
}

/// A ut_pex message (under extension id `id`) adding `added`, without flags.
pub(crate) fn pex_frame(id: u8, added: &[SocketAddr]) -> Vec<u8> {
    let msg = PexMessage { added: added.iter().map(|a| (*a, 0)).collect(), dropped: vec![] };
    let mut out = Vec::new();
    Message::Extended { id, payload: msg.encode() }.encode(&mut out);
    out
}
