//! A torrent's side of BEP 9 `ut_metadata`: fetching its info dictionary when it was added by
//! magnet, serving the dictionary to peers once it is known, and holding the piece
//! announcements peers make before the piece count is known.

use rand::Rng;

use super::fetch::{Received, METADATA_REQUESTS_PER_PEER};
use super::{bad_bitfield, mark, wire_len, Torrent, HAVE_ID};
use crate::bitfield::Bitfield;
use crate::engine::close_reason::{CloseReason, Violation};
use crate::engine::config::Config;
use crate::engine::ctx::Ctx;
use crate::engine::event::{Event, TorrentError};
use crate::engine::params::FilePriority;
use crate::metainfo::Info;
use crate::picker::Picker;
use crate::storage::FileLayout;
use crate::types::{ConnId, Instant};
use crate::wire::{metadata_piece_count, Message, MetadataMessage, WireError, METADATA_PIECE_LEN};

/// The extended message id peers send us `ut_metadata` messages under.
pub(crate) const OUR_UT_METADATA: u8 = 2;

/// HAVEs remembered per peer before the piece count is known; a peer sending more is closed.
const MAX_EARLY_HAVES: usize = 65_536;

impl Torrent {
    /// Whether the info dictionary is still being fetched.
    pub fn is_fetching_metadata(&self) -> bool {
        self.fetching.is_some()
    }

    /// Remembers a piece announcement made before the piece count is known.
    pub(super) fn record_early(&mut self, conn: ConnId, msg: Message, cx: &mut Ctx<'_>) {
        let Some(p) = self.peers.get_mut(&conn) else { return };
        let first = !p.got_first_message;
        p.got_first_message = true;
        let refused: Option<CloseReason> = match msg {
            Message::Bitfield(bytes) if first => {
                p.early.bitfield = Some(bytes);
                None
            }
            // aria2's late bitfield: it is merged once the count is known, like HAVEs.
            Message::Bitfield(bytes) => match &mut p.early.bitfield {
                Some(old) if old.len() == bytes.len() => {
                    old.iter_mut().zip(&bytes).for_each(|(a, b)| *a |= b);
                    None
                }
                Some(old) => Some(
                    WireError::BadBitfieldLength { len: wire_len(bytes.len()), expected: wire_len(old.len()) }.into(),
                ),
                None => {
                    p.early.bitfield = Some(bytes);
                    None
                }
            },
            Message::HaveAll | Message::HaveNone if !p.fast => Some(Violation::NotFast.into()),
            Message::HaveAll => {
                p.early.have_all = true;
                None
            }
            Message::Have { piece } => {
                p.early.haves.push(piece);
                (p.early.haves.len() > MAX_EARLY_HAVES).then_some(Violation::TooManyEarlyHaves.into())
            }
            _ => None,
        };
        if let Some(reason) = refused {
            self.close(conn, reason, cx);
        }
    }

    /// Asks `conn` for metadata pieces while we fetch and it can serve them.
    pub(super) fn request_metadata(&mut self, conn: ConnId, now: Instant) {
        let Some(phase) = &mut self.fetching else { return };
        let Some(p) = self.peers.get_mut(&conn) else { return };
        let (Some(id), Some(size), true) = (p.ut_metadata, p.metadata_size, p.is_active()) else { return };
        let was_empty = p.outbuf.is_empty();
        let mut sent = false;
        for _ in 0..METADATA_REQUESTS_PER_PEER {
            let Some(piece) = phase.fetch.next_request(conn, size, now) else { break };
            p.send(&Message::Extended { id, payload: MetadataMessage::Request { piece }.encode() }, now);
            sent = true;
        }
        if sent {
            mark(&mut self.dirty, conn, was_empty);
        }
    }

    /// Re-asks every peer (requests that timed out, peers that had nothing to do).
    pub(super) fn request_metadata_all(&mut self, now: Instant) {
        let conns: Vec<ConnId> = self.peers.keys().copied().collect();
        for conn in conns {
            self.request_metadata(conn, now);
        }
    }

    /// A `ut_metadata` message from a peer.
    pub(super) fn on_ut_metadata(&mut self, conn: ConnId, payload: &[u8], cx: &mut Ctx<'_>) {
        let msg = match MetadataMessage::decode(payload) {
            Ok(msg) => msg,
            Err(e) => return self.close(conn, e.into(), cx),
        };
        match msg {
            MetadataMessage::Request { piece } => self.serve_metadata(conn, piece, cx.now, cx.cfg),
            MetadataMessage::Reject { piece } => {
                if let Some(phase) = &mut self.fetching {
                    phase.fetch.on_reject(conn, piece);
                }
            }
            MetadataMessage::Data { piece, total_size, data } => {
                let Some(phase) = &mut self.fetching else { return };
                match phase.fetch.on_data(conn, piece, total_size, data) {
                    Received::Ignored => {}
                    Received::Stored => self.request_metadata(conn, cx.now),
                    Received::Bad => self.close(conn, Violation::BadMetadataPiece.into(), cx),
                    Received::HashFailed(senders) => {
                        self.punish(&senders, cx);
                        self.request_metadata_all(cx.now);
                    }
                    Received::Done(bytes) => self.load_metadata(bytes, cx),
                }
            }
        }
    }

    /// Answers a request for a piece of our info dictionary.
    fn serve_metadata(&mut self, conn: ConnId, piece: u32, now: Instant, cfg: &Config) {
        let info = &self.meta.info_bytes;
        let total = info.len() as u64;
        let Some(p) = self.peers.get_mut(&conn) else { return };
        // Its id for replies; a peer that never said it speaks ut_metadata gets no answer.
        let Some(id) = p.ut_metadata else { return };
        let known = self.fetching.is_none() && piece < metadata_piece_count(total);
        // Bounded like piece uploads: a peer asking faster than it reads is refused.
        let room = p.upload_backlog() < cfg.max_send_buffer;
        let reply = match (known, room) {
            (true, true) => {
                // `piece` is below the piece count, so the range lies inside the dictionary.
                let start = piece as usize * METADATA_PIECE_LEN as usize;
                let end = (start + METADATA_PIECE_LEN as usize).min(info.len());
                MetadataMessage::Data { piece, total_size: total, data: info[start..end].to_vec() }
            }
            _ => MetadataMessage::Reject { piece },
        };
        let was_empty = p.send(&Message::Extended { id, payload: reply.encode() }, now);
        mark(&mut self.dirty, conn, was_empty);
    }

    /// The info dictionary is in and verified: the torrent becomes a normal one.
    fn load_metadata(&mut self, bytes: Vec<u8>, cx: &mut Ctx<'_>) {
        let info = match Info::from_bytes(&bytes) {
            Ok(info) => info,
            Err(e) => {
                // It hashes to the info-hash, so every copy is this one: nothing to retry.
                self.fetching = None;
                return self.fail(TorrentError::InvalidMetadata(e), cx);
            }
        };
        let Some(phase) = self.fetching.take() else { return };
        let n = info.piece_count();
        self.layout = FileLayout::new(&info);
        let (sequential, deadline) = (self.picker.is_sequential(), self.picker.deadline_piece());
        self.picker = Picker::new(n, info.piece_length, info.total_length, self.rng.random());
        self.picker.set_sequential(sequential);
        self.picker.set_deadline_piece(deadline);
        self.file_priorities = match &phase.select_only {
            Some(chosen) => (0..info.files.len())
                .map(|f| {
                    let picked = u32::try_from(f).is_ok_and(|f| chosen.binary_search(&f).is_ok());
                    if picked {
                        FilePriority::Normal
                    } else {
                        FilePriority::Skip
                    }
                })
                .collect(),
            None => vec![FilePriority::Normal; info.files.len()],
        };
        self.meta.info = info;
        self.meta.info_bytes = bytes.clone();
        self.apply_priorities(0..n);
        cx.out.event(Event::MetadataReceived { torrent: self.id, info: bytes });
        if !self.pex_allowed() {
            self.withdraw_pex(cx.cfg, cx.now);
        }

        if phase.check_existing {
            // Peers learn what we have from our bitfield once the check is done.
            self.close_all(CloseReason::TorrentChecking, cx);
            self.start_check(cx.limits);
            return;
        }
        let conns: Vec<ConnId> = self.peers.keys().copied().collect();
        for conn in conns {
            self.replay_early(conn, cx);
        }
        self.update_finished(cx);
        self.fill_all(cx);
    }

    /// Applies what a peer announced before the piece count was known, now that it is.
    fn replay_early(&mut self, conn: ConnId, cx: &mut Ctx<'_>) {
        let n = self.meta.info.piece_count();
        let Some(p) = self.peers.get_mut(&conn) else { return };
        let Some(decoder) = p.decoder_mut() else { return };
        decoder.set_piece_count(n);
        p.have = Bitfield::new(n);
        let early = std::mem::take(&mut p.early);
        let bitfield = match early.bitfield.map(|b| Bitfield::from_bytes(&b, n).ok_or(b.len())) {
            Some(Err(len)) => return self.close(conn, bad_bitfield(len, n), cx),
            Some(Ok(bf)) => Some(bf),
            None => None,
        };
        if let Some(&piece) = early.haves.iter().find(|&&piece| piece >= n) {
            let e = WireError::PieceIndexOutOfRange { id: HAVE_ID, piece, piece_count: n };
            return self.close(conn, e.into(), cx);
        }
        if early.have_all || bitfield.as_ref().is_some_and(Bitfield::is_full) {
            p.have = Bitfield::full(n);
            p.counted_as_seed = true;
            self.picker.peer_has_all();
        } else {
            if let Some(bf) = bitfield {
                self.picker.peer_bitfield(&bf);
                p.have = bf;
            }
            self.merge_pieces(conn, early.haves.into_iter());
        }
        self.after_pieces_known(conn, cx);
    }
}
