//! Assembling a torrent's info dictionary from `ut_metadata` pieces (BEP 9).
//!
//! A pure sub-machine: the torrent tells it which peers can serve which size, asks it which
//! piece to request next, and hands it what arrives. The size comes from the first peer that
//! advertises a plausible one; peers that advertise another size are not asked. When every
//! piece is in, the bytes count only if their SHA-1 is the info-hash: otherwise everything is
//! forgotten (size included, in case it was a lie) and the senders are reported for blame.

use std::time::Duration;

use sha1::{Digest, Sha1};

use crate::types::{ConnId, InfoHash, Instant};
use crate::wire::{metadata_piece_count, MAX_METADATA_SIZE, METADATA_PIECE_LEN};

/// A piece asked of a peer that has not answered within this is asked of another.
pub(crate) const METADATA_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Requests outstanding at one peer at once.
pub(crate) const METADATA_REQUESTS_PER_PEER: usize = 4;

#[derive(Clone, Debug, PartialEq)]
enum Slot {
    Missing,
    Asked { conn: ConnId, at: Instant },
    Have { from: ConnId, data: Vec<u8> },
}

/// What a received data message was.
#[derive(Debug, PartialEq)]
pub(crate) enum Received {
    /// Not asked of this peer (late, duplicate, unsolicited): dropped, no harm done.
    Ignored,
    /// Impossible for the size we fetch (piece out of range, wrong total or length): the peer
    /// is broken or lying.
    Bad,
    /// Stored; more pieces to come.
    Stored,
    /// The info dictionary, complete and matching the info-hash.
    Done(Vec<u8>),
    /// Complete but not matching the info-hash; these peers sent pieces of it.
    HashFailed(Vec<ConnId>),
}

/// The info dictionary being fetched.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct MetadataFetch {
    info_hash: InfoHash,
    size: Option<u64>,
    pieces: Vec<Slot>,
}

impl MetadataFetch {
    /// Nothing known yet but the info-hash.
    pub(crate) fn new(info_hash: InfoHash) -> Self {
        MetadataFetch { info_hash, size: None, pieces: Vec::new() }
    }

    /// Picks a piece to ask of `conn`, which advertised `size`; records the request.
    pub(crate) fn next_request(&mut self, conn: ConnId, size: u64, now: Instant) -> Option<u32> {
        if size == 0 || size > MAX_METADATA_SIZE {
            return None;
        }
        match self.size {
            None => {
                self.size = Some(size);
                self.pieces = vec![Slot::Missing; metadata_piece_count(size) as usize];
            }
            Some(s) if s != size => return None,
            Some(_) => {}
        }
        let asked = self.pieces.iter().filter(|s| matches!(s, Slot::Asked { conn: c, .. } if *c == conn)).count();
        if asked >= METADATA_REQUESTS_PER_PEER {
            return None;
        }
        let pick = self.pieces.iter().position(|s| *s == Slot::Missing).or_else(|| {
            self.pieces.iter().position(
                |s| matches!(s, Slot::Asked { conn: c, at } if *c != conn && now - *at >= METADATA_REQUEST_TIMEOUT),
            )
        })?;
        self.pieces[pick] = Slot::Asked { conn, at: now };
        Some(pick as u32)
    }

    /// Records a data message from `conn`.
    pub(crate) fn on_data(&mut self, conn: ConnId, piece: u32, total_size: u64, data: Vec<u8>) -> Received {
        let Some(size) = self.size else {
            return Received::Ignored;
        };
        let Some(slot) = self.pieces.get_mut(piece as usize) else {
            return Received::Bad;
        };
        let start = u64::from(piece) * u64::from(METADATA_PIECE_LEN);
        let expected = (size - start).min(u64::from(METADATA_PIECE_LEN));
        if total_size != size || data.len() as u64 != expected {
            return Received::Bad;
        }
        if !matches!(slot, Slot::Asked { conn: c, .. } if *c == conn) {
            return Received::Ignored;
        }
        *slot = Slot::Have { from: conn, data };
        if self.pieces.iter().any(|s| !matches!(s, Slot::Have { .. })) {
            return Received::Stored;
        }
        let mut bytes = Vec::with_capacity(size as usize);
        let mut senders = Vec::new();
        for slot in std::mem::take(&mut self.pieces) {
            if let Slot::Have { from, data } = slot {
                bytes.extend_from_slice(&data);
                if !senders.contains(&from) {
                    senders.push(from);
                }
            }
        }
        if <[u8; 20]>::from(Sha1::digest(&bytes)) == self.info_hash.0 {
            Received::Done(bytes)
        } else {
            self.size = None;
            Received::HashFailed(senders)
        }
    }

    /// `conn` refused a piece: someone else may be asked.
    pub(crate) fn on_reject(&mut self, conn: ConnId, piece: u32) {
        if let Some(slot) = self.pieces.get_mut(piece as usize) {
            if matches!(slot, Slot::Asked { conn: c, .. } if *c == conn) {
                *slot = Slot::Missing;
            }
        }
    }

    /// `conn` is gone: its requests may go to others; its pieces stay.
    pub(crate) fn peer_gone(&mut self, conn: ConnId) {
        for slot in &mut self.pieces {
            if matches!(slot, Slot::Asked { conn: c, .. } if *c == conn) {
                *slot = Slot::Missing;
            }
        }
    }
}

/// What a torrent added by magnet keeps until its info dictionary is in.
pub(crate) struct MetadataPhase {
    /// The dictionary being assembled.
    pub fetch: MetadataFetch,
    /// BEP 53 file selection from the magnet: the other files are skipped.
    pub select_only: Option<Vec<u32>>,
    /// Check data already on disk once the files are known.
    pub check_existing: bool,
}

impl MetadataPhase {
    /// The phase of a magnet torrent that has just been added.
    pub(crate) fn new(info_hash: InfoHash, select_only: Option<Vec<u32>>, check_existing: bool) -> Self {
        MetadataPhase { fetch: MetadataFetch::new(info_hash), select_only, check_existing }
    }
}

#[cfg(test)]
mod tests {
    use sha1::{Digest, Sha1};

    use super::{
        ConnId, InfoHash, Instant, MetadataFetch, Received, MAX_METADATA_SIZE, METADATA_PIECE_LEN,
        METADATA_REQUEST_TIMEOUT,
    };

    const A: ConnId = ConnId(1);
    const B: ConnId = ConnId(2);

    fn info(len: usize) -> (Vec<u8>, InfoHash) {
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let hash = InfoHash(Sha1::digest(&bytes).into());
        (bytes, hash)
    }

    fn piece(bytes: &[u8], i: u32) -> Vec<u8> {
        let start = i as usize * METADATA_PIECE_LEN as usize;
        bytes[start..(start + METADATA_PIECE_LEN as usize).min(bytes.len())].to_vec()
    }

    #[test]
    fn assembles_from_two_peers_and_checks_the_hash() {
        let (bytes, hash) = info(40_000);
        let size = bytes.len() as u64;
        let mut f = MetadataFetch::new(hash);
        let t0 = Instant::ZERO;
        assert_eq!(f.next_request(A, size, t0), Some(0));
        assert_eq!(f.next_request(B, size, t0), Some(1));
        assert_eq!(f.next_request(B, size, t0), Some(2));
        assert_eq!(f.next_request(A, size, t0), None, "everything is asked");
        assert_eq!(f.on_data(B, 0, size, piece(&bytes, 0)), Received::Ignored, "asked of A, not B");
        assert_eq!(f.on_data(A, 0, size, piece(&bytes, 0)), Received::Stored);
        assert_eq!(f.on_data(B, 2, size, piece(&bytes, 2)), Received::Stored);
        assert_eq!(f.on_data(B, 1, size, piece(&bytes, 1)), Received::Done(bytes));
    }

    #[test]
    fn wrong_data_is_bad_and_a_wrong_hash_blames_every_sender() {
        let (bytes, hash) = info(20_000);
        let size = bytes.len() as u64;
        let mut f = MetadataFetch::new(hash);
        let t0 = Instant::ZERO;
        assert_eq!(f.next_request(A, size + 1, t0), Some(0), "A's size is adopted");
        assert_eq!(f.next_request(B, size, t0), None, "B disagrees on the size: not asked");
        assert_eq!(f.on_data(A, 0, size, vec![0; 16384]), Received::Bad, "total_size differs");
        assert_eq!(f.on_data(A, 5, size + 1, vec![0; 16384]), Received::Bad, "no such piece");
        assert_eq!(f.on_data(A, 0, size + 1, vec![0; 100]), Received::Bad, "wrong length");
        f.next_request(A, size + 1, t0);
        assert_eq!(f.on_data(A, 0, size + 1, vec![0; 16384]), Received::Stored);
        assert_eq!(f.on_data(A, 1, size + 1, vec![0; 20_001 - 16384]), Received::HashFailed(vec![A]));
        // Everything starts over, the size too: B's size can be adopted now.
        assert_eq!(f.next_request(B, size, t0), Some(0));
    }

    #[test]
    fn rejected_timed_out_and_orphaned_requests_go_elsewhere() {
        let (bytes, hash) = info(16_384 * 2);
        let size = bytes.len() as u64;
        let mut f = MetadataFetch::new(hash);
        let t0 = Instant::ZERO;
        assert_eq!(f.next_request(A, size, t0), Some(0));
        assert_eq!(f.next_request(A, size, t0), Some(1));
        assert_eq!(f.next_request(B, size, t0), None);
        f.on_reject(B, 0);
        assert_eq!(f.next_request(B, size, t0), None, "B's reject of a piece asked of A changes nothing");
        f.on_reject(A, 0);
        assert_eq!(f.next_request(B, size, t0), Some(0));
        let later = t0 + METADATA_REQUEST_TIMEOUT;
        assert_eq!(f.next_request(B, size, later), Some(1), "A's request timed out");
        assert_eq!(f.on_data(A, 1, size, piece(&bytes, 1)), Received::Ignored, "too late");
        f.peer_gone(B);
        assert_eq!(f.next_request(A, size, later), Some(0));
    }

    #[test]
    fn implausible_sizes_are_never_fetched() {
        let mut f = MetadataFetch::new(InfoHash([1; 20]));
        assert_eq!(f.next_request(A, 0, Instant::ZERO), None);
        assert_eq!(f.next_request(A, MAX_METADATA_SIZE + 1, Instant::ZERO), None);
        assert_eq!(f.next_request(A, u64::MAX, Instant::ZERO), None);
        assert_eq!(f.on_data(A, 0, 10, vec![0; 10]), Received::Ignored, "nothing asked");
    }
}
