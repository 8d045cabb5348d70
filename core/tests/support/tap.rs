//! The tap: the messages engines send each other, decoded (with `World::tap`).

use std::collections::HashMap;

use shoal_core::wire::{Decoder, HandshakeDecoder, HandshakeStep, Limits, Message};
use shoal_core::{ConnId, Instant};

use super::ids::NodeId;

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
enum Tap {
    Handshake(HandshakeDecoder),
    Messages(Decoder),
    /// Its handshake was malformed: nothing after it is logged.
    Broken,
}

/// How each tapped sending side is read.
#[derive(Default)]
pub(super) struct Taps(HashMap<(NodeId, ConnId), Tap>);

impl Taps {
    /// Decodes bytes sent `now` from one node to another into `log`.
    pub(super) fn tap(
        &mut self,
        now: Instant,
        from: (NodeId, ConnId),
        to: (NodeId, ConnId),
        data: &[u8],
        log: &mut Vec<WireEntry>,
    ) {
        let tap = self.0.remove(&from).unwrap_or_else(|| Tap::Handshake(HandshakeDecoder::new(Limits::default())));
        let mut dec = match tap {
            Tap::Handshake(mut h) => {
                h.feed(data);
                match h.take() {
                    Ok(HandshakeStep::Done(_, dec)) => dec,
                    Ok(HandshakeStep::Pending(h)) => {
                        self.0.insert(from, Tap::Handshake(h));
                        return;
                    }
                    Err(_) => {
                        self.0.insert(from, Tap::Broken);
                        return;
                    }
                }
            }
            Tap::Messages(mut dec) => {
                dec.feed(data);
                dec
            }
            Tap::Broken => {
                self.0.insert(from, Tap::Broken);
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
            log.push(WireEntry { at: now, from, to, msg, len });
        }
        self.0.insert(from, Tap::Messages(dec));
    }
}
