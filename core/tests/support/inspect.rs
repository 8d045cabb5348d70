//! What tests read of the bytes engines sent: to hand-driven peers, and (tapped) to each other.

use std::collections::BTreeMap;

use shoal_core::wire::{ExtendedHandshake, HandshakeDecoder, HandshakeStep, Limits, Message};
use shoal_core::Instant;

use super::ids::{NodeId, RawId};
use super::world::World;

impl World {
    /// The messages a hand-driven peer has received so far (after the handshake); fails the
    /// test if the engine sent anything invalid.
    pub(crate) fn messages_to(&self, raw: RawId) -> Vec<Message> {
        let mut d = HandshakeDecoder::new(Limits::default());
        d.feed(&self.raws[raw].received);
        let HandshakeStep::Done(_, mut d) = d.take().expect("a valid handshake") else { return Vec::new() };
        std::iter::from_fn(|| d.next_message().expect("valid messages")).collect()
    }

    /// The blocks of the messages to a hand-driven peer that `pick` selects, in order.
    pub(crate) fn sent_to(&self, raw: RawId, pick: impl Fn(&Message) -> bool) -> Vec<(u32, u32)> {
        self.messages_to(raw)
            .iter()
            .filter(|m| pick(m))
            .filter_map(|m| match m {
                Message::Request(b) | Message::Cancel(b) => Some((b.piece, b.offset)),
                _ => None,
            })
            .collect()
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
