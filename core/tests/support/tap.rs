//! The tap: the messages engines send each other, decoded (with `World::tap`).

use std::collections::HashMap;

use shoal_core::wire::{Decoder, Limits, Message};
use shoal_core::{ConnId, Instant};

use super::ids::NodeId;

/// A message one engine sent another (with `World::tap`); block payloads are dropped.
#[derive(Debug, Clone)]
pub struct WireEntry {
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

/// A decoder for each tapped sending side.
#[derive(Default)]
pub(super) struct Taps(HashMap<(NodeId, ConnId), Decoder>);

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
        let dec = self.0.entry(from).or_insert_with(|| Decoder::new_expecting_handshake(Limits::default()));
        dec.feed(data);
        if matches!(dec.take_handshake(), Ok(None)) {
            return;
        }
        while let Ok(Some(msg)) = dec.next_message() {
            let (msg, len) = match msg {
                Message::Piece { piece, offset, data } => {
                    (Message::Piece { piece, offset, data: Vec::new() }, data.len())
                }
                m => (m, 0),
            };
            log.push(WireEntry { at: now, from, to, msg, len });
        }
    }
}
