//! One peer connection's protocol state, as seen from its torrent.

use std::collections::VecDeque;
use std::net::SocketAddr;

use super::pex_state::PexState;
use super::relay_budget::RelayBudget;
use super::request_queue::RequestQueue;
use super::upload::UploadQueue;
use crate::bitfield::Bitfield;
use crate::engine::admission::Usefulness;
use crate::rate::Rate;
use crate::types::{BlockRef, Instant, PeerId};
use crate::wire::{Decoder, Handshake, HandshakeDecoder, Message};

/// Most given-up requests remembered per peer (more than a full request queue).
const MAX_RELEASED: usize = 512;

/// Bytes we queue for a new peer before any has been sent (see [`Channel::send_window`]).
pub(super) const INITIAL_SEND_WINDOW: u64 = 64 << 10;

/// Where a connection is in its life; each state holds what exists only in it.
pub(crate) enum PeerState {
    /// We asked the runtime to dial; not connected yet.
    Dialing { since: Instant },
    /// Connected; waiting for the peer's handshake (read by `decoder`).
    Handshaking { since: Instant, decoder: HandshakeDecoder },
    /// Handshakes exchanged: messages flow.
    Active(Box<ActivePeer>),
}

/// Piece announcements a peer made while we did not know the piece count; replayed, and
/// checked against it, once the metadata is in.
#[derive(Default, Debug)]
pub(crate) struct EarlyPieces {
    /// Its BITFIELD, as sent.
    pub bitfield: Option<Vec<u8>>,
    /// It sent HAVE_ALL.
    pub have_all: bool,
    /// Its HAVEs.
    pub haves: Vec<u32>,
}

/// A peer of one torrent: its address, and where its connection is.
pub(crate) struct Peer {
    /// Its address (the one we dialled, or the one it connected from).
    pub addr: SocketAddr,
    /// We dialled it.
    pub outgoing: bool,
    /// What the connection carries from its dial on.
    pub ch: Channel,
    /// Dialing, handshaking, or active with everything its handshake brought.
    pub state: PeerState,
}

/// What a connection has from its dial on: bytes to send, and its transfer rates.
#[derive(Debug)]
pub(crate) struct Channel {
    /// Bytes handed to the runtime and not yet reported sent.
    pub send_queued: u64,
    /// Most bytes we queue for it: starts small and grows by every byte it takes, so that a
    /// fast peer reaches its rate-sized queue within a few round trips while a slow uplink is
    /// not handed seconds of data before its rate is known.
    pub send_window: u64,
    /// Its download rate to us.
    pub dl: Rate,
    /// Our upload rate to it (what the socket took).
    pub ul: Rate,
    /// The peer's own download rate, estimated from the pieces it announces (HAVE).
    pub announced: Rate,
    /// When bytes last arrived from it.
    pub last_recv: Instant,
    /// When we last queued a message for it.
    pub last_send: Instant,
    /// Bytes to send, batched until the end of the current input.
    pub outbuf: Vec<u8>,
}

/// A peer whose handshake is in: what it told us, what it has, and our exchange with it.
pub(crate) struct ActivePeer {
    /// Reads its messages.
    pub decoder: Decoder,
    /// The peer id of its handshake.
    pub peer_id: PeerId,
    /// The client name of its extended handshake (`v`).
    pub client: Option<String>,
    /// It speaks the BEP 6 fast extension.
    pub fast: bool,
    /// It speaks the BEP 10 extension protocol.
    pub extended: bool,
    /// It said in its extended handshake that it only uploads (BEP 21).
    pub upload_only: bool,
    /// Its extended message id for `ut_metadata` (BEP 9), if it speaks it.
    pub ut_metadata: Option<u8>,
    /// The info dictionary size it advertised.
    pub metadata_size: Option<u64>,
    /// Its extended message id for `ut_pex` (BEP 11), if it speaks it.
    pub ut_pex: Option<u8>,
    /// Its extended message id for `ut_holepunch` (BEP 55), if it speaks it.
    pub ut_holepunch: Option<u8>,
    /// The rendezvous it asked us for lately (we relay a bounded number).
    pub rendezvous: RelayBudget,
    /// The port it accepts connections on (`p` of its extended handshake).
    pub listen_port: Option<u16>,
    /// It said it prefers encrypted connections (`e` of its extended handshake).
    pub prefers_encryption: bool,
    /// Our peer exchange with it.
    pub pex: PexState,
    /// Pieces it announced before we knew the piece count (magnet torrents).
    pub early: EarlyPieces,
    /// Pieces it has.
    pub have: Bitfield,
    /// Counted in the picker as a seed (have-all or a full bitfield), not per piece.
    pub counted_as_seed: bool,
    /// Whether any message after the handshake has arrived (a bitfield is only legal first).
    pub got_first_message: bool,
    /// Whether it sent anything but keep-alives since its handshake (extension messages too).
    pub spoke: bool,
    /// When its handshake arrived.
    pub activated: Instant,
    /// We choke it.
    pub am_choking: bool,
    /// We told it we are interested.
    pub am_interested: bool,
    /// It chokes us.
    pub peer_choking: bool,
    /// It told us it is interested.
    pub peer_interested: bool,
    /// Our outstanding requests to it, with when we sent them.
    pub requests: Vec<(BlockRef, Instant)>,
    /// Requests we gave up waiting for (snubbed, or choked under the fast extension) that it
    /// may still answer: a block that does arrive is kept if still needed, not wasted.
    pub released: VecDeque<BlockRef>,
    /// How many requests we keep in flight to it, from its rate and round trip.
    pub queue: RequestQueue,
    /// The most requests it accepts (`reqq` of its extended handshake).
    pub max_queue: usize,
    /// Its requests to us, from disk read to upload tokens.
    pub upload: UploadQueue,
    /// Last time it sent us a block we asked for (or when our queue to it became non-empty).
    pub last_block: Instant,
    /// It left our requests unanswered past the request timeout (one request at a time then).
    pub snubbed: bool,
    /// We have sent it a block: a transfer to it runs on this connection (the duplicate rule
    /// keeps such a connection; see `Torrent::activate`).
    pub sent_block: bool,
}

impl Peer {
    /// A connection in `state`, created `now`.
    pub(super) fn new(addr: SocketAddr, outgoing: bool, state: PeerState, now: Instant) -> Self {
        let ch = Channel {
            send_queued: 0,
            send_window: INITIAL_SEND_WINDOW,
            dl: Rate::default(),
            ul: Rate::default(),
            announced: Rate::default(),
            last_recv: now,
            last_send: now,
            outbuf: Vec::new(),
        };
        Peer { addr, outgoing, ch, state }
    }

    /// Whether the handshakes are done and messages flow.
    pub(super) fn is_active(&self) -> bool {
        matches!(self.state, PeerState::Active(_))
    }

    /// Whether we are still dialling it.
    pub(super) fn is_dialing(&self) -> bool {
        matches!(self.state, PeerState::Dialing { .. })
    }

    /// Its protocol state, once the handshakes are done.
    pub(super) fn active(&self) -> Option<&ActivePeer> {
        match &self.state {
            PeerState::Active(a) => Some(a),
            _ => None,
        }
    }

    /// Its channel and its protocol state, borrowed apart, once the handshakes are done.
    pub(super) fn active_mut(&mut self) -> Option<(&mut Channel, &mut ActivePeer)> {
        match &mut self.state {
            PeerState::Active(a) => Some((&mut self.ch, a)),
            _ => None,
        }
    }
}

impl Channel {
    /// Queues a message; returns true if the buffer was empty (the caller marks it dirty).
    pub(super) fn send(&mut self, msg: &Message, now: Instant) -> bool {
        let was_empty = self.outbuf.is_empty();
        msg.encode(&mut self.outbuf);
        self.last_send = now;
        was_empty
    }
}

impl ActivePeer {
    /// A peer whose handshake arrived `now`, on a torrent of `pieces` pieces; `decoder` reads
    /// the messages after its handshake.
    pub(super) fn new(hs: &Handshake, decoder: Decoder, pieces: u32, queue: RequestQueue, now: Instant) -> Self {
        ActivePeer {
            decoder,
            peer_id: hs.peer_id,
            client: None,
            fast: hs.supports_fast(),
            extended: hs.supports_extended(),
            upload_only: false,
            ut_metadata: None,
            metadata_size: None,
            ut_pex: None,
            ut_holepunch: None,
            rendezvous: RelayBudget::default(),
            listen_port: None,
            prefers_encryption: false,
            pex: PexState::new(now),
            early: EarlyPieces::default(),
            have: Bitfield::new(pieces),
            counted_as_seed: false,
            got_first_message: false,
            spoke: false,
            activated: now,
            am_choking: true,
            am_interested: false,
            peer_choking: true,
            peer_interested: false,
            requests: Vec::new(),
            released: VecDeque::new(),
            queue,
            max_queue: 250,
            upload: UploadQueue::default(),
            last_block: now,
            snubbed: false,
            sent_block: false,
        }
    }

    /// Bytes queued for it on `ch`, sent or about to be, plus reads in flight.
    pub(super) fn upload_backlog(&self, ch: &Channel) -> u64 {
        ch.send_queued + ch.outbuf.len() as u64 + self.upload.backlog()
    }

    /// Whether blocks move on this connection, as both ends can tell: we asked it for blocks
    /// or it asked us (requests outstanding), or a block went either way (`dl`: its download
    /// rate to us, which counts only blocks).
    pub(super) fn transferring(&self, dl: &Rate) -> bool {
        !self.requests.is_empty() || self.upload.queued() > 0 || dl.total() > 0 || self.sent_block
    }

    /// Whether it has every piece (never, as far as we know, before the piece count is known).
    pub(super) fn is_seed(&self) -> bool {
        self.counted_as_seed || (!self.have.is_empty() && self.have.is_full())
    }

    /// What it does for us, as connection replacement ranks it. `fetching_metadata`: the
    /// torrent still fetches its info dictionary, which a peer that has it can send. `dl`: its
    /// download rate to us.
    pub(super) fn usefulness(&self, dl: &Rate, fetching_metadata: bool) -> Usefulness {
        let sends = (self.am_interested && !self.peer_choking && !self.snubbed)
            || dl.get() > 0
            || (fetching_metadata && self.ut_metadata.is_some() && self.metadata_size.is_some());
        if sends {
            Usefulness::GivesUs
        } else if self.peer_interested {
            Usefulness::WantsOurs
        } else if self.am_interested {
            Usefulness::Choking
        } else {
            Usefulness::Idle
        }
    }

    /// Remembers a request given up on, forgetting the oldest beyond `MAX_RELEASED`.
    pub(super) fn release_request(&mut self, block: BlockRef) {
        if self.released.len() == MAX_RELEASED {
            self.released.pop_front();
        }
        self.released.push_back(block);
    }

    /// Forgets a request given up on; true if it was one.
    pub(super) fn forget_released(&mut self, block: &BlockRef) -> bool {
        match self.released.iter().position(|b| b == block) {
            Some(i) => {
                self.released.remove(i);
                true
            }
            None => false,
        }
    }

    /// Removes our request for `block`; when we sent it, if it was outstanding.
    pub(super) fn take_request(&mut self, block: &BlockRef) -> Option<Instant> {
        let i = self.requests.iter().position(|(b, _)| b == block)?;
        Some(self.requests.swap_remove(i).1)
    }
}
