//! The download half of a torrent: the buffers of pieces being received, the memory cap over
//! them, which blocks to ask a peer for, and the intake of a received block up to the hash job
//! of its finished piece (libtorrent keeps the same in `request_blocks.cpp`).
//!
//! The picker decides *which* blocks; this pipeline decides *whether* memory allows, holds the
//! bytes, and counts them until the piece is on disk (or failed its hash). It knows nothing of
//! peers or the wire: the torrent passes in a peer's pieces and gets back what to send.

use std::collections::HashMap;

use crate::bitfield::Bitfield;
use crate::engine::disk_error::DiskError;
use crate::engine::output::JobResult;
use crate::picker::{BlockOutcome, Picker};
use crate::types::{BlockRef, ConnId, JobId};

/// What a download job of the pipeline is doing with its piece.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Hashing (and, if the runtime does both, writing) a complete piece.
    Hash,
    /// Writing a piece that passed its hash check.
    Write,
}

/// A download job in flight: which piece, at which stage, holding how many bytes of the cap.
#[derive(Clone, Copy, Debug)]
struct PieceJob {
    stage: Stage,
    piece: u32,
    size: u64,
}

/// What became of a received block.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Intake {
    /// Not wanted (never asked for, already had, or no room for a late one): its bytes are wasted.
    Wasted,
    /// Stored in its piece's buffer.
    Stored {
        /// Other peers the block was also asked from (end game): cancel it there.
        cancel: Vec<ConnId>,
        /// The piece is complete: its buffer, to be hashed (see [`PiecePipeline::hashing`]).
        complete: Option<Vec<u8>>,
    },
}

/// A finished download job, as [`PiecePipeline::finish`] reports it.
#[derive(Debug)]
pub(crate) enum Finished {
    /// The piece matched its hash and the runtime left the write to us: write `data` next
    /// (see [`PiecePipeline::writing`]); its bytes stay counted until then.
    NeedsWrite { piece: u32, data: Vec<u8> },
    /// The piece was written (or its write failed); `data` is the spent buffer.
    Written { piece: u32, result: Result<(), DiskError>, data: Vec<u8> },
    /// The piece failed its hash check; `data` is the spent buffer.
    HashFailed { piece: u32, data: Vec<u8> },
    /// The runtime answered with a result of another kind: nothing to do with it.
    Lost,
}

/// Piece buffers, the memory cap, request picking and block intake of one torrent.
#[derive(Default)]
pub(crate) struct PiecePipeline {
    /// Buffers of pieces being received, by piece.
    buffers: HashMap<u32, Vec<u8>>,
    /// Bytes held for download: every buffer plus the pieces of hash and write jobs.
    in_flight_bytes: u64,
    /// Hash and write jobs in flight.
    jobs: HashMap<JobId, PieceJob>,
    /// Scratch list of blocks picked for one peer.
    picked: Vec<BlockRef>,
}

impl PiecePipeline {
    /// Whether a piece is being received (it holds a buffer).
    pub fn is_receiving(&self, piece: u32) -> bool {
        self.buffers.contains_key(&piece)
    }

    /// Whether a hash or write job is still in flight (a removed torrent's files must not be
    /// deleted before it lands).
    pub fn has_jobs(&self) -> bool {
        !self.jobs.is_empty()
    }

    /// Picks up to `want` blocks to ask `conn` for (which has `have`, or everything if `seed`)
    /// and records them at the picker as outstanding there. Within `cap` bytes of memory any
    /// piece may be opened; over it only pieces holding a buffer already, or in the picker's
    /// deadline window, are picked from.
    pub fn pick(
        &mut self,
        picker: &mut Picker,
        conn: ConnId,
        (have, seed): (&Bitfield, bool),
        want: usize,
        cap: u64,
    ) -> &[BlockRef] {
        self.picked.clear();
        if self.in_flight_bytes >= cap {
            // Over the memory cap: only finish pieces that already hold a buffer. Opening new
            // ones would grow memory, and refusing to pick at all would leave those buffers
            // waiting forever for their last blocks (found by the simulator, seed 42). The
            // deadline window is exempt: a stream waiting on it must never starve, and it adds
            // at most `DEADLINE_WINDOW` pieces.
            let mut partial = Bitfield::new(picker.have().len());
            for piece in self.buffers.keys().copied().chain(picker.deadline_window()) {
                if seed || have.get(piece) {
                    partial.set(piece, true);
                }
            }
            if partial.count_ones() == 0 {
                return &self.picked;
            }
            picker.pick(conn, &partial, false, want, &mut self.picked);
        } else {
            picker.pick(conn, have, seed, want, &mut self.picked);
        }
        &self.picked
    }

    /// Takes a block `conn` sent. `late`: it is one we had given up asking it for, kept only if
    /// still needed and, should it open a new buffer, within `cap`. `fresh` makes a buffer of
    /// the given size for a piece's first block (its contents are overwritten).
    pub fn on_block(
        &mut self,
        picker: &mut Picker,
        conn: ConnId,
        (block, data): (BlockRef, &[u8]),
        late: bool,
        cap: u64,
        fresh: impl FnOnce(usize) -> Vec<u8>,
    ) -> Intake {
        let piece = block.piece;
        let room = self.buffers.contains_key(&piece) || self.in_flight_bytes < cap;
        let outcome = match (late, room) {
            (false, _) => picker.block_received(conn, block),
            (true, true) => picker.late_block_received(conn, block),
            (true, false) => BlockOutcome::Unexpected,
        };
        let BlockOutcome::Accepted { piece_complete, also_requested_from } = outcome else { return Intake::Wasted };
        let size = picker.piece_size(piece) as usize;
        let in_flight = &mut self.in_flight_bytes;
        let buf = self.buffers.entry(piece).or_insert_with(|| {
            *in_flight += size as u64;
            fresh(size)
        });
        // The picker accepted the block, so it lies inside the piece.
        if let Some(dst) = buf.get_mut(block.offset as usize..block.offset as usize + data.len()) {
            dst.copy_from_slice(data);
        }
        let cancel = also_requested_from.into_iter().filter(|other| *other != conn).collect();
        let complete = if piece_complete { self.buffers.remove(&piece) } else { None };
        Intake::Stored { cancel, complete }
    }

    /// A complete piece's buffer (from [`Intake::Stored`]) went out in hash job `job`: its
    /// bytes stay counted until the job is done.
    pub fn hashing(&mut self, job: JobId, piece: u32, data: &[u8]) {
        self.jobs.insert(job, PieceJob { stage: Stage::Hash, piece, size: data.len() as u64 });
    }

    /// A complete piece's buffer that no job will take (the piece has no hash to check it
    /// against): its bytes are released.
    pub fn discard(&mut self, data: &[u8]) {
        self.release(data.len() as u64);
    }

    /// A piece of `size` bytes that passed its hash (see [`Finished::NeedsWrite`]) went out
    /// in write job `job`.
    pub fn writing(&mut self, job: JobId, piece: u32, size: u64) {
        self.jobs.insert(job, PieceJob { stage: Stage::Write, piece, size });
    }

    /// A job finished: if it is one of the pipeline's, releases its bytes (unless the piece
    /// still has to be written) and says what happened; otherwise hands the result back.
    pub fn finish(&mut self, job: JobId, result: JobResult) -> Result<Finished, JobResult> {
        let Some(j) = self.jobs.remove(&job) else { return Err(result) };
        let piece = j.piece;
        let done = match (j.stage, result) {
            (Stage::Hash, JobResult::Hashed { ok: true, data, written: None }) => {
                return Ok(Finished::NeedsWrite { piece, data });
            }
            (Stage::Hash, JobResult::Hashed { ok: true, data, written: Some(result) })
            | (Stage::Write, JobResult::Written { result, data }) => Finished::Written { piece, result, data },
            (Stage::Hash, JobResult::Hashed { ok: false, data, .. }) => Finished::HashFailed { piece, data },
            // An answer of the wrong kind (a runtime bug): the job is over all the same.
            _ => Finished::Lost,
        };
        self.release(j.size);
        Ok(done)
    }

    /// Drops every partly received piece (the torrent closed its peers): the picker must ask
    /// for their blocks again, or a piece would complete around zeros and fail its hash check,
    /// blaming whoever sent its last blocks. Returns the buffers for reuse.
    pub fn drop_partial(&mut self, picker: &mut Picker) -> Vec<Vec<u8>> {
        let mut spent = Vec::with_capacity(self.buffers.len());
        for (piece, buf) in std::mem::take(&mut self.buffers) {
            picker.reset_piece(piece);
            self.release(buf.len() as u64);
            spent.push(buf);
        }
        spent
    }

    /// Forgets everything, jobs in flight included (their answers will be ignored): a recheck
    /// starts over with a new picker.
    pub fn reset(&mut self) {
        *self = PiecePipeline::default();
    }

    /// Takes `size` bytes off the count; they were counted when their buffer was opened.
    fn release(&mut self, size: u64) {
        // Every release matches bytes added for a buffer or job still counted (see `check`).
        self.in_flight_bytes -= size;
    }

    /// Checks that the byte count is the buffers plus the jobs' pieces.
    pub fn check(&self) -> Result<(), String> {
        let buffers: u64 = self.buffers.values().map(|b| b.len() as u64).sum();
        let jobs: u64 = self.jobs.values().map(|j| j.size).sum();
        if self.in_flight_bytes != buffers + jobs {
            return Err(format!(
                "in_flight_bytes {} != buffers {buffers} + hash/write jobs {jobs}",
                self.in_flight_bytes
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{Finished, Intake, PiecePipeline};
    use crate::bitfield::Bitfield;
    use crate::engine::disk_error::{DiskError, DiskErrorKind};
    use crate::engine::output::JobResult;
    use crate::picker::Picker;
    use crate::types::{BlockRef, ConnId, JobId, BLOCK_SIZE};

    const A: ConnId = ConnId(1);
    const B: ConnId = ConnId(2);

    /// Four pieces of two blocks each, every one at a seed peer.
    fn picker() -> Picker {
        let mut p = Picker::new(4, 2 * BLOCK_SIZE, 8 * u64::from(BLOCK_SIZE), 7);
        p.peer_has_all();
        p
    }

    fn seed() -> Bitfield {
        Bitfield::full(4)
    }

    /// Receives every block `pipe` picks for `conn`, returning the complete pieces' buffers.
    fn receive(pipe: &mut PiecePipeline, picker: &mut Picker, conn: ConnId, blocks: &[BlockRef]) -> Vec<Vec<u8>> {
        let mut complete = Vec::new();
        for b in blocks {
            let data = vec![b.offset as u8; b.len as usize];
            match pipe.on_block(picker, conn, (*b, &data), false, u64::MAX, |n| vec![0; n]) {
                Intake::Stored { complete: Some(buf), .. } => complete.push(buf),
                Intake::Stored { .. } => {}
                Intake::Wasted => panic!("block {b:?} was asked for"),
            }
        }
        complete
    }

    #[test]
    fn a_piece_is_counted_from_its_first_block_until_it_is_written() {
        let (mut pipe, mut picker) = (PiecePipeline::default(), picker());
        let have = seed();
        let picked = pipe.pick(&mut picker, A, (&have, true), 2, u64::MAX).to_vec();
        assert_eq!(picked.len(), 2, "both blocks of the first piece");
        let piece = picked[0].piece;
        receive(&mut pipe, &mut picker, A, &picked[..1]);
        assert_eq!(pipe.in_flight_bytes, u64::from(2 * BLOCK_SIZE));
        assert!(pipe.is_receiving(piece));
        let complete = receive(&mut pipe, &mut picker, A, &picked[1..]);
        let [data] = <[Vec<u8>; 1]>::try_from(complete).expect("one piece complete");
        assert_eq!(data[BLOCK_SIZE as usize], BLOCK_SIZE as u8, "each block lands at its offset");
        pipe.hashing(JobId(10), piece, &data);
        pipe.check().expect("the hash job holds the piece's bytes");
        assert!(pipe.has_jobs());
        let done = pipe.finish(JobId(10), JobResult::Hashed { ok: true, data, written: None });
        let Ok(Finished::NeedsWrite { data, .. }) = done else { panic!("the write is ours: {done:?}") };
        pipe.writing(JobId(11), piece, data.len() as u64);
        pipe.check().expect("the write job holds the piece's bytes");
        let done = pipe.finish(JobId(11), JobResult::Written { result: Ok(()), data });
        assert!(matches!(done, Ok(Finished::Written { result: Ok(()), .. })), "{done:?}");
        assert_eq!(pipe.in_flight_bytes, 0);
        assert!(!pipe.has_jobs());
    }

    #[test]
    fn over_the_cap_only_pieces_with_a_buffer_are_picked() {
        let (mut pipe, mut picker) = (PiecePipeline::default(), picker());
        let have = seed();
        let first = pipe.pick(&mut picker, A, (&have, true), 1, u64::MAX).to_vec();
        receive(&mut pipe, &mut picker, A, &first);
        let cap = pipe.in_flight_bytes;
        let more = pipe.pick(&mut picker, B, (&have, true), 8, cap).to_vec();
        assert!(!more.is_empty(), "the open piece's last block may still come");
        assert!(more.iter().all(|b| b.piece == first[0].piece), "no new piece over the cap: {more:?}");
    }

    #[test]
    fn a_late_block_opens_no_buffer_over_the_cap() {
        let (mut pipe, mut picker) = (PiecePipeline::default(), picker());
        let have = seed();
        let picked = pipe.pick(&mut picker, A, (&have, true), 1, u64::MAX).to_vec();
        picker.request_failed(A, picked[0]);
        let data = vec![0; picked[0].len as usize];
        let intake = pipe.on_block(&mut picker, A, (picked[0], &data), true, 0, |n| vec![0; n]);
        assert_eq!(intake, Intake::Wasted);
        assert_eq!(pipe.in_flight_bytes, 0);
        let intake = pipe.on_block(&mut picker, A, (picked[0], &data), true, u64::MAX, |n| vec![0; n]);
        assert!(matches!(intake, Intake::Stored { complete: None, .. }), "{intake:?}");
    }

    #[test]
    fn an_end_game_duplicate_names_the_other_peer_to_cancel() {
        let (mut pipe, mut picker) = (PiecePipeline::default(), picker());
        let have = seed();
        // Ask A for everything, then B for whatever the end game hands out again.
        let all = pipe.pick(&mut picker, A, (&have, true), 8, u64::MAX).to_vec();
        assert_eq!(all.len(), 8);
        let dup = pipe.pick(&mut picker, B, (&have, true), 1, u64::MAX).to_vec();
        assert_eq!(dup.len(), 1, "end game duplicates a block");
        let data = vec![1; dup[0].len as usize];
        let intake = pipe.on_block(&mut picker, B, (dup[0], &data), false, u64::MAX, |n| vec![0; n]);
        let Intake::Stored { cancel, .. } = intake else { panic!("{intake:?}") };
        assert_eq!(cancel, vec![A]);
    }

    #[test]
    fn dropping_partial_pieces_releases_their_bytes_and_asks_again() {
        let (mut pipe, mut picker) = (PiecePipeline::default(), picker());
        let have = seed();
        let picked = pipe.pick(&mut picker, A, (&have, true), 1, u64::MAX).to_vec();
        receive(&mut pipe, &mut picker, A, &picked);
        assert_eq!(pipe.drop_partial(&mut picker).len(), 1);
        assert_eq!(pipe.in_flight_bytes, 0);
        pipe.check().expect("nothing held");
        picker.peer_gone(A, &have, true);
        let again = pipe.pick(&mut picker, B, (&have, true), 8, u64::MAX).to_vec();
        assert!(again.contains(&picked[0]), "the dropped block is asked for again");
    }

    #[test]
    fn a_failed_hash_or_write_releases_the_piece() {
        let (mut pipe, mut picker) = (PiecePipeline::default(), picker());
        let have = seed();
        let picked = pipe.pick(&mut picker, A, (&have, true), 4, u64::MAX).to_vec();
        let mut complete = receive(&mut pipe, &mut picker, A, &picked);
        assert_eq!(complete.len(), 2);
        let (second, first) = (complete.pop().unwrap(), complete.pop().unwrap());
        pipe.hashing(JobId(1), picked[0].piece, &first);
        pipe.hashing(JobId(2), picked[2].piece, &second);
        let failed = pipe.finish(JobId(1), JobResult::Hashed { ok: false, data: first, written: None });
        assert!(matches!(failed, Ok(Finished::HashFailed { .. })), "{failed:?}");
        let disk = DiskError { kind: DiskErrorKind::NoSpace, message: "full".into() };
        let written = Some(Err(disk.clone()));
        let failed = pipe.finish(JobId(2), JobResult::Hashed { ok: true, data: second, written });
        assert!(matches!(failed, Ok(Finished::Written { result: Err(e), .. }) if e == disk));
        assert_eq!(pipe.in_flight_bytes, 0);
        assert!(pipe.finish(JobId(3), JobResult::Read(Ok(Vec::new()))).is_err(), "not ours: handed back");
    }

    #[test]
    fn a_drifted_count_is_caught() {
        let (mut pipe, mut picker) = (PiecePipeline::default(), picker());
        let have = seed();
        let picked = pipe.pick(&mut picker, A, (&have, true), 1, u64::MAX).to_vec();
        receive(&mut pipe, &mut picker, A, &picked);
        pipe.in_flight_bytes += 1;
        let err = pipe.check().expect_err("one byte too many");
        assert!(err.contains("in_flight_bytes"), "{err}");
    }
}
