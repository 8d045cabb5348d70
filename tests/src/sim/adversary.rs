//! Hand-written hostile hosts speaking the peer wire protocol: the engine must survive each,
//! keep its bounds, and still complete with honest peers around.

use std::collections::BTreeMap;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use shoal_core::wire::{Decoder, Handshake, HandshakeDecoder, HandshakeStep, Limits, Message, WireError};
use shoal_core::{Bitfield, BlockRef, InfoHash, PeerId};

use super::torrent::SimTorrent;

/// The kinds of adversary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AdvKind {
    /// Claims every piece, serves blocks with flipped bits.
    Corrupt,
    /// Claims every piece (bitfield, then HAVEs), has none, never serves.
    Liar,
    /// After the handshake sends an oversized frame, then garbage.
    Garbage,
    /// Floods requests: valid, duplicated and out of range.
    Flood,
    /// Accepts the connection and never says anything.
    Silent,
    /// Serves a few blocks correctly, then resets the connection mid-piece.
    Vanish,
    /// Serves correct blocks over a very slow link.
    Slow,
    /// Holds connection slots: from many addresses it opens [`SQUATS_PER_TARGET`]
    /// connections to each honest host, most of which never send a byte while the others
    /// handshake, say they have nothing and then only send keep-alives; each reconnects when
    /// closed.
    Squatter,
}

/// Connections a squatter keeps open to each honest host: more than a host's peer slots and
/// pending-handshake slots together (see `Config::default`).
pub const SQUATS_PER_TARGET: usize = 330;

/// One in this many squatter connections handshakes; the others stay silent.
const SQUAT_HANDSHAKE_EVERY: u64 = 4;

impl AdvKind {
    /// Every kind.
    pub const ALL: [AdvKind; 8] = [
        AdvKind::Corrupt,
        AdvKind::Liar,
        AdvKind::Garbage,
        AdvKind::Flood,
        AdvKind::Silent,
        AdvKind::Vanish,
        AdvKind::Slow,
        AdvKind::Squatter,
    ];

    /// Parses a name as used in `--faults`.
    pub fn parse(s: &str) -> Option<AdvKind> {
        Some(match s {
            "corrupt" => AdvKind::Corrupt,
            "liar" => AdvKind::Liar,
            "garbage" => AdvKind::Garbage,
            "flood" => AdvKind::Flood,
            "silent" => AdvKind::Silent,
            "vanish" => AdvKind::Vanish,
            "slow" => AdvKind::Slow,
            "squatter" => AdvKind::Squatter,
            _ => return None,
        })
    }
}

/// What an adversary asks the world to do on a connection.
#[derive(Debug)]
pub enum AdvAction {
    /// Send these bytes.
    Send(Vec<u8>),
    /// Reset the connection.
    Reset,
}

/// What an adversary reads an engine's bytes with.
#[derive(Debug)]
enum AdvWire {
    /// The engine's handshake is not all in yet.
    Handshake(HandshakeDecoder),
    /// We took the engine's handshake: messages follow.
    Messages(Decoder),
    /// The engine's handshake was malformed.
    Bad(WireError),
}

impl AdvWire {
    /// Takes the engine's handshake once it is all in: `Some(true)` when it was just taken,
    /// `Some(false)` when messages already flowed, `None` while it is incomplete.
    fn take_handshake(&mut self, pieces: u32) -> Result<Option<bool>, WireError> {
        // `take` consumes the handshake decoder; a message decoder stands in meanwhile.
        match std::mem::replace(self, AdvWire::Messages(Decoder::new(Limits::default()))) {
            AdvWire::Messages(d) => {
                *self = AdvWire::Messages(d);
                Ok(Some(false))
            }
            AdvWire::Bad(e) => {
                *self = AdvWire::Bad(e.clone());
                Err(e)
            }
            AdvWire::Handshake(h) => match h.take() {
                Ok(HandshakeStep::Pending(h)) => {
                    *self = AdvWire::Handshake(h);
                    Ok(None)
                }
                Ok(HandshakeStep::Done(_, mut d)) => {
                    d.set_piece_count(pieces);
                    *self = AdvWire::Messages(d);
                    Ok(Some(true))
                }
                Err(e) => {
                    *self = AdvWire::Bad(e.clone());
                    Err(e)
                }
            },
        }
    }
}

#[derive(Debug)]
struct AdvConn {
    wire: AdvWire,
    /// We sent our handshake (and greeting).
    greeted: bool,
    /// Requests the engine has outstanding with us (requests minus answers and cancels).
    outstanding: usize,
    served: u32,
}

/// One hostile host.
#[derive(Debug)]
pub struct Adversary {
    /// Its kind.
    pub kind: AdvKind,
    info_hash: InfoHash,
    pieces: u32,
    conns: BTreeMap<u64, AdvConn>,
    /// The most requests an engine had outstanding with it at once.
    pub max_outstanding: usize,
    /// Messages it decoded from engines.
    pub messages: u64,
}

fn frame(msgs: &[Message]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        m.encode(&mut out);
    }
    out
}

impl Adversary {
    /// An adversary for `tt`.
    pub fn new(kind: AdvKind, tt: &SimTorrent) -> Self {
        Adversary {
            kind,
            info_hash: tt.meta.info_hash,
            pieces: tt.pieces(),
            conns: BTreeMap::new(),
            max_outstanding: 0,
            messages: 0,
        }
    }

    fn handshake(&self, c: u64) -> Vec<u8> {
        let mut id = *b"-XX0001-adversary000";
        if self.kind == AdvKind::Squatter {
            // Each squatting connection passes for another peer (a repeated id is refused).
            id[8..].copy_from_slice(format!("{c:012}").as_bytes());
        }
        let mut out = Vec::new();
        Handshake::new(self.info_hash, PeerId(id)).encode(&mut out);
        out
    }

    /// Whether squatter connection `c` stays silent (the others handshake).
    fn silent(&self, c: u64) -> bool {
        match self.kind {
            AdvKind::Silent => true,
            AdvKind::Squatter => !c.is_multiple_of(SQUAT_HANDSHAKE_EVERY),
            _ => false,
        }
    }

    fn greeting(&self, c: u64) -> Vec<u8> {
        let mut out = self.handshake(c);
        match self.kind {
            _ if self.silent(c) => out.clear(),
            AdvKind::Squatter => Message::HaveNone.encode(&mut out),
            AdvKind::Flood => Message::HaveNone.encode(&mut out),
            _ => {
                Message::Bitfield(Bitfield::full(self.pieces).as_bytes().to_vec()).encode(&mut out);
                Message::Unchoke.encode(&mut out);
            }
        }
        out
    }

    /// A connection is up; `dialled` if we opened it (we speak first then).
    pub fn on_open(&mut self, c: u64, dialled: bool) -> Vec<AdvAction> {
        let wire = AdvWire::Handshake(HandshakeDecoder::new(Limits::default()));
        self.conns.insert(c, AdvConn { wire, greeted: false, outstanding: 0, served: 0 });
        if dialled && !self.silent(c) {
            self.conns.get_mut(&c).expect("just inserted").greeted = true;
            return vec![AdvAction::Send(self.greeting(c))];
        }
        Vec::new()
    }

    /// The connection is gone.
    pub fn on_closed(&mut self, c: u64) {
        self.conns.remove(&c);
    }

    /// Periodic mischief (floods, lies).
    pub fn on_tick(&mut self, rng: &mut ChaCha8Rng) -> Vec<(u64, AdvAction)> {
        let mut out = Vec::new();
        let ids: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c.wire, AdvWire::Messages(_)) && c.greeted)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            match self.kind {
                AdvKind::Flood => {
                    let mut msgs = vec![Message::Interested];
                    for _ in 0..200 {
                        let piece = rng.random_range(0..self.pieces + 2);
                        let len = if rng.random_bool(0.1) { rng.random_range(1..200_000) } else { 16384 };
                        msgs.push(Message::Request(BlockRef { piece, offset: 0, len }));
                    }
                    out.push((id, AdvAction::Send(frame(&msgs))));
                }
                AdvKind::Liar => {
                    let piece = rng.random_range(0..self.pieces);
                    out.push((id, AdvAction::Send(frame(&[Message::Have { piece }, Message::Unchoke]))));
                }
                // Just enough never to time out for silence.
                AdvKind::Squatter => out.push((id, AdvAction::Send(frame(&[Message::KeepAlive])))),
                _ => {}
            }
        }
        out
    }

    /// Bytes from an engine. Returns actions and, if the engine broke a bound, what it broke.
    pub fn on_data(
        &mut self,
        c: u64,
        data: &[u8],
        tt: &SimTorrent,
        max_requests: usize,
    ) -> (Vec<AdvAction>, Option<String>) {
        let kind = self.kind;
        let (greeting, silent) = (self.greeting(c), self.silent(c));
        let Some(conn) = self.conns.get_mut(&c) else { return (Vec::new(), None) };
        let mut actions = Vec::new();
        let pieces = self.pieces;
        match &mut conn.wire {
            AdvWire::Handshake(h) => h.feed(data),
            AdvWire::Messages(d) => d.feed(data),
            AdvWire::Bad(_) => {}
        }
        if silent {
            return (actions, None);
        }
        let handshaken = match conn.wire.take_handshake(pieces) {
            Ok(Some(just)) => just,
            Ok(None) => return (actions, None),
            Err(e) => return (vec![AdvAction::Reset], Some(format!("engine sent a bad handshake: {e}"))),
        };
        if handshaken {
            if !conn.greeted {
                conn.greeted = true;
                actions.push(AdvAction::Send(greeting));
            }
            if kind == AdvKind::Garbage {
                let mut junk = Vec::new();
                junk.extend_from_slice(&u32::MAX.to_be_bytes());
                junk.extend_from_slice(&[0xff; 64]);
                actions.push(AdvAction::Send(junk));
                return (actions, None);
            }
        }
        let AdvWire::Messages(decoder) = &mut conn.wire else { unreachable!("set just above") };
        let mut violation = None;
        loop {
            let msg = match decoder.next_message() {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => {
                    violation = Some(format!("engine sent an undecodable message: {e}"));
                    actions.push(AdvAction::Reset);
                    break;
                }
            };
            self.messages += 1;
            match msg {
                Message::Request(b) => {
                    conn.outstanding += 1;
                    self.max_outstanding = self.max_outstanding.max(conn.outstanding);
                    // A liar never answers; the engine forgets its requests on a snub without a
                    // cancel, so only peers that answer everything can count exactly.
                    if kind != AdvKind::Liar && conn.outstanding > max_requests {
                        violation = Some(format!("{} requests outstanding with one peer", conn.outstanding));
                    }
                    let range = tt.piece_range(b.piece.min(self.pieces - 1));
                    let (s, e) = (range.start + b.offset as u64, range.start + b.offset as u64 + b.len as u64);
                    if b.piece >= self.pieces || e > range.end {
                        violation = Some(format!("engine requested {b:?}, outside the torrent"));
                        continue;
                    }
                    match kind {
                        AdvKind::Corrupt | AdvKind::Slow | AdvKind::Vanish => {
                            if kind == AdvKind::Vanish && conn.served >= 3 {
                                actions.push(AdvAction::Reset);
                                break;
                            }
                            let mut block = tt.bytes(s..e);
                            if kind == AdvKind::Corrupt {
                                for x in block.iter_mut().step_by(97) {
                                    *x ^= 0x21;
                                }
                            }
                            conn.outstanding -= 1;
                            conn.served += 1;
                            actions.push(AdvAction::Send(frame(&[Message::Piece {
                                piece: b.piece,
                                offset: b.offset,
                                data: block,
                            }])));
                        }
                        _ => {}
                    }
                }
                Message::Cancel(_) => conn.outstanding = conn.outstanding.saturating_sub(1),
                _ => {}
            }
        }
        (actions, violation)
    }
}
