//! The tap: the messages engines send each other, decoded (with `World::tap`), and what tests
//! read from them.

use std::collections::BTreeMap;

use shoal_core::wire::{Decoder, ExtendedHandshake, HandshakeDecoder, HandshakeStep, Limits, Message};
use shoal_core::{ConnId, Instant};

use super::node::NodeId;
use super::world::World;

/// A message one engine sent another (with `World::tap`); block payloads are dropped.
#[derive(Debug, Clone)]
pub(crate) struct WireEntry {
    /// When it was sent.
    pub at: Instant,
    /// Sending node and its connection id.
    pub from: (NodeId, ConnId),
    /// Receiving node and its connection id.
    pub to: (NodeId, ConnId),
    /// The message (a `Piece`'s data is emptied; see `len`).
    pub msg: Message,
    /// Payload length of a `Piece`.
    pub len: usize,
}

/// What a tapped connection's bytes are read with: its handshake first, then its messages.
pub(super) enum Tap {
    Handshake(HandshakeDecoder),
    Messages(Decoder),
    /// Its handshake was malformed: nothing after it is logged.
    Broken,
}

impl World {
    /// Decodes bytes sent from one node to another into [`World::wire_log`].
    pub(super) fn tap_bytes(&mut self, from: (NodeId, ConnId), to: (NodeId, ConnId), data: &[u8]) {
        let tap = self.taps.remove(&from).unwrap_or_else(|| Tap::Handshake(HandshakeDecoder::new(Limits::default())));
        let mut dec = match tap {
            Tap::Handshake(mut h) => {
                h.feed(data);
                match h.take() {
                    Ok(HandshakeStep::Done(_, dec)) => dec,
                    Ok(HandshakeStep::Pending(h)) => {
                        self.taps.insert(from, Tap::Handshake(h));
                        return;
                    }
                    Err(_) => {
                        self.taps.insert(from, Tap::Broken);
                        return;
                    }
                }
            }
            Tap::Messages(mut dec) => {
                dec.feed(data);
                dec
            }
            Tap::Broken => {
                self.taps.insert(from, Tap::Broken);
                return;
            }
        };
        while let Ok(Some(msg)) = dec.next_message() {
            let (msg, len) = match msg {
                Message::Piece { piece, offset, data } => {
                    (Message::Piece { piece, offset, data: Vec::new() }, data.len())
                }
                m => (m, 0),
            };
            self.wire_log.push(WireEntry { at: self.now, from, to, msg, len });
        }
        self.taps.insert(from, Tap::Messages(dec));
    }

    /// Requests the leecher had outstanding after each message before `until` (requests it sent
    /// minus blocks it received, from the wire log).
    pub(crate) fn outstanding(&self, leecher: NodeId, until: Instant) -> Vec<i64> {
        let mut now = 0i64;
        let mut out = vec![0];
        for e in self.wire_log.iter().take_while(|e| e.at < until) {
            match e.msg {
                Message::Request(_) if e.from.0 == leecher => now += 1,
                Message::Piece { .. } if e.to.0 == leecher => now -= 1,
                _ => {}
            }
            out.push(now);
        }
        out
    }

    /// The most requests the leecher had outstanding before `until`.
    pub(crate) fn max_outstanding(&self, leecher: NodeId, until: Instant) -> i64 {
        self.outstanding(leecher, until).into_iter().max().unwrap_or(0)
    }

    /// The requests the leecher had outstanding at `until`.
    pub(crate) fn outstanding_at(&self, leecher: NodeId, until: Instant) -> i64 {
        self.outstanding(leecher, until).last().copied().unwrap_or(0)
    }

    /// The extension ids `node` advertised in its extended handshakes.
    pub(crate) fn advertised(&self, node: NodeId) -> Vec<BTreeMap<String, u8>> {
        self.wire_log
            .iter()
            .filter(|e| e.from.0 == node)
            .filter_map(|e| match &e.msg {
                Message::Extended { id: 0, payload } => ExtendedHandshake::decode(payload).ok().map(|h| h.m),
                _ => None,
            })
            .collect()
    }
}
