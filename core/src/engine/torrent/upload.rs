//! The upload half of a torrent: each peer's requests to us, the disk reads that serve them
//! (consecutive blocks of a piece share one read), the framing of what a read returns as
//! `piece` messages, and the blocks held back by the upload limit until tokens come.
//!
//! An [`UploadQueue`] belongs to one peer; [`Reads`] counts the torrent's reads in flight,
//! which outlive a peer that closes while the disk works for it.

use std::collections::{HashMap, VecDeque};

use crate::engine::disk_error::{DiskError, DiskErrorKind};
use crate::engine::output::PlacedSpan;
use crate::storage::FileLayout;
use crate::types::{BlockRef, ConnId, JobId};
use crate::wire::{piece_header, PIECE_FRAME_HEADER};

/// Blocks served from one disk read (256 KiB).
const MAX_BLOCKS_PER_READ: usize = 16;

/// A disk read for a peer: one range of a piece, and the requested blocks in it still wanted.
pub(crate) struct PendingRead {
    /// Its job.
    pub job: JobId,
    /// Offset of the range in its piece.
    pub offset: u32,
    /// Length of the range.
    pub len: u32,
    /// Blocks to send from it (a cancelled block is removed).
    pub blocks: Vec<BlockRef>,
    /// Offsets of every block the read covers, in order: in the read's buffer, each block's
    /// data follows room for its frame header.
    pub frames: Vec<u32>,
}

/// A read to start, as [`UploadQueue::next_read`] plans it.
pub(crate) struct ReadPlan {
    /// The piece range to read.
    pub range: BlockRef,
    /// Size of the buffer the disk fills: the data with room for each block's frame header.
    pub len: usize,
    /// Where each file span's bytes go in that buffer.
    pub spans: Vec<PlacedSpan>,
}

/// What a finished read becomes.
pub(crate) enum Framed {
    /// Every block is still wanted and nothing waits for tokens: the buffer, headers written,
    /// goes out as one send of `payload` bytes of block data.
    Whole { data: Vec<u8>, payload: u64 },
    /// Some blocks were cancelled: the ones still wanted, each framed on its own.
    Frames(Vec<(BlockRef, Vec<u8>)>),
    /// The upload limit decides when the blocks go: they wait for tokens (see
    /// [`UploadQueue::needs_tokens`] and [`UploadQueue::release`]).
    Held,
}

/// One peer's requests to us, from its REQUEST to the frame handed to the runtime.
#[derive(Default)]
pub(crate) struct UploadQueue {
    /// Its requests waiting for a disk read.
    incoming: VecDeque<BlockRef>,
    /// Disk reads for it in flight: each covers consecutive blocks of one piece.
    reads: Vec<PendingRead>,
    /// Blocks read for it, each framed as a `piece` message, waiting for upload tokens.
    throttled: VecDeque<(BlockRef, Vec<u8>)>,
    /// Bytes of the frames in `throttled`.
    throttled_bytes: u64,
    /// Whether it is in the engine's queue of peers waiting for upload tokens.
    waiting_for_tokens: bool,
}

impl UploadQueue {
    /// Requests waiting for a disk read.
    pub fn waiting(&self) -> usize {
        self.incoming.len()
    }

    /// Its requests not yet sent: queued, being read from disk, or waiting for tokens.
    pub fn queued(&self) -> usize {
        self.incoming.len() + self.reads.iter().map(|r| r.blocks.len()).sum::<usize>() + self.throttled.len()
    }

    /// Bytes on their way to it inside the torrent: being read, or waiting for tokens.
    pub fn backlog(&self) -> u64 {
        let reading: u64 = self.reads.iter().map(|r| u64::from(r.len)).sum();
        self.throttled_bytes + reading
    }

    /// The reads in flight for it.
    pub fn reads(&self) -> impl Iterator<Item = &PendingRead> {
        self.reads.iter()
    }

    /// Queues a request (the caller has checked it may be served).
    pub fn push(&mut self, block: BlockRef) {
        self.incoming.push_back(block);
    }

    /// Drops a request wherever it is; true if it was there.
    pub fn cancel(&mut self, block: &BlockRef) -> bool {
        let mut found = false;
        if let Some(i) = self.incoming.iter().position(|x| x == block) {
            self.incoming.remove(i);
            found = true;
        }
        for read in &mut self.reads {
            if let Some(i) = read.blocks.iter().position(|x| x == block) {
                read.blocks.remove(i);
                found = true;
            }
        }
        if let Some(i) = self.throttled.iter().position(|(b, _)| b == block) {
            if let Some((_, frame)) = self.throttled.remove(i) {
                self.throttled_bytes -= frame.len() as u64;
            }
            found = true;
        }
        found
    }

    /// We choked it: drops what is queued or held back by the upload limit (reads in flight
    /// are sent when done) and returns those blocks, to be rejected under the fast extension.
    pub fn choke(&mut self) -> Vec<BlockRef> {
        let mut queued: Vec<BlockRef> = self.incoming.drain(..).collect();
        queued.extend(self.throttled.drain(..).map(|(b, _)| b));
        self.throttled_bytes = 0;
        queued
    }

    /// Plans a read for the next queued requests: the first, and the ones right after it in
    /// the same piece, up to [`MAX_BLOCKS_PER_READ`]. A peer asking for a whole piece costs
    /// one disk job, not sixteen. Call [`UploadQueue::reading`] with its job.
    pub fn next_read(&mut self, layout: &FileLayout, piece_length: u64) -> Option<(ReadPlan, Vec<BlockRef>)> {
        let first = self.incoming.pop_front()?;
        let mut blocks = vec![first];
        let mut end = first.offset + first.len;
        while blocks.len() < MAX_BLOCKS_PER_READ {
            match self.incoming.front() {
                Some(next) if next.piece == first.piece && next.offset == end => {
                    end += next.len;
                    blocks.push(*next);
                    self.incoming.pop_front();
                }
                _ => break,
            }
        }
        let range = BlockRef { piece: first.piece, offset: first.offset, len: end - first.offset };
        // The buffer is the frames to send: each block's data after room for its header.
        let mut placed = Vec::with_capacity(blocks.len());
        let mut spans = Vec::with_capacity(1);
        let mut at = 0usize;
        for b in &blocks {
            at += PIECE_FRAME_HEADER;
            spans.clear();
            layout.spans(u64::from(b.piece) * piece_length + u64::from(b.offset), b.len, &mut spans);
            for span in &spans {
                placed.push(PlacedSpan { at, span: *span });
                at += span.len as usize;
            }
        }
        Some((ReadPlan { range, len: at, spans: placed }, blocks))
    }

    /// A planned read went out as `job`.
    pub fn reading(&mut self, job: JobId, range: BlockRef, blocks: Vec<BlockRef>) {
        let frames = blocks.iter().map(|b| b.offset).collect();
        self.reads.push(PendingRead { job, offset: range.offset, len: range.len, blocks, frames });
    }

    /// A read for it finished: frames what is still wanted. `throttled`: the upload limit is
    /// on, so blocks wait for tokens. `None` if the read is not its; an error if the disk
    /// failed or answered with the wrong length.
    pub fn on_read(
        &mut self,
        job: JobId,
        result: Result<Vec<u8>, DiskError>,
        throttled: bool,
    ) -> Option<Result<Framed, DiskError>> {
        let i = self.reads.iter().position(|r| r.job == job)?;
        let read = self.reads.swap_remove(i);
        let framed_len = read.len as usize + read.frames.len() * PIECE_FRAME_HEADER;
        let mut data = match result {
            Ok(data) if data.len() == framed_len => data,
            Ok(_) => {
                return Some(Err(DiskError { kind: DiskErrorKind::Other, message: "short read from disk".into() }))
            }
            Err(e) => return Some(Err(e)),
        };
        let throttled = throttled || !self.throttled.is_empty();
        if !throttled && read.blocks.len() == read.frames.len() {
            // Every block is still wanted: the buffer becomes the send as is, once the
            // headers are in.
            for (i, b) in read.blocks.iter().enumerate() {
                let at = (b.offset - read.offset) as usize + i * PIECE_FRAME_HEADER;
                data[at..at + PIECE_FRAME_HEADER].copy_from_slice(&piece_header(b.piece, b.offset, b.len));
            }
            return Some(Ok(Framed::Whole { data, payload: u64::from(read.len) }));
        }
        let frames = read_frames(&read, &data);
        if !throttled {
            return Some(Ok(Framed::Frames(frames)));
        }
        for (b, frame) in frames {
            self.throttled_bytes += frame.len() as u64;
            self.throttled.push_back((b, frame));
        }
        Some(Ok(Framed::Held))
    }

    /// Whether blocks wait for tokens and the peer is not queued for them yet; marks it queued.
    pub fn needs_tokens(&mut self) -> bool {
        if self.waiting_for_tokens || self.throttled.is_empty() {
            return false;
        }
        self.waiting_for_tokens = true;
        true
    }

    /// Takes the next block that waited for upload tokens, framed, if one is left (otherwise
    /// the peer leaves the token queue).
    pub fn release(&mut self) -> Option<(BlockRef, Vec<u8>)> {
        let Some((b, frame)) = self.throttled.pop_front() else {
            self.waiting_for_tokens = false;
            return None;
        };
        self.throttled_bytes -= frame.len() as u64;
        if self.throttled.is_empty() {
            self.waiting_for_tokens = false;
        }
        Some((b, frame))
    }

    /// Whether more blocks wait for tokens.
    pub fn has_throttled(&self) -> bool {
        !self.throttled.is_empty()
    }
}

/// The torrent's upload disk reads in flight, by job, with the peer each is for. A read
/// outlives a peer that closes meanwhile: it still holds a slot of `Config::max_read_jobs`.
#[derive(Default)]
pub(crate) struct Reads {
    jobs: HashMap<JobId, ConnId>,
}

impl Reads {
    /// Reads in flight.
    pub fn in_flight(&self) -> usize {
        self.jobs.len()
    }

    /// A read for `conn` went out as `job`.
    pub fn start(&mut self, job: JobId, conn: ConnId) {
        self.jobs.insert(job, conn);
    }

    /// A job finished: the peer it read for, if it was a read.
    pub fn finish(&mut self, job: JobId) -> Option<ConnId> {
        self.jobs.remove(&job)
    }

    /// Checks that every read a peer waits for is in flight, for that peer.
    pub fn check<'a>(&self, peers: impl Iterator<Item = (ConnId, &'a UploadQueue)>) -> Result<(), String> {
        for (conn, q) in peers {
            for r in q.reads() {
                if self.jobs.get(&r.job) != Some(&conn) {
                    return Err(format!("peer {conn:?} waits for read {:?}, not in flight for it", r.job));
                }
            }
        }
        Ok(())
    }
}

/// The frames of a finished read's blocks that are still wanted, each a copy with its header.
fn read_frames(read: &PendingRead, data: &[u8]) -> Vec<(BlockRef, Vec<u8>)> {
    let mut out = Vec::with_capacity(read.blocks.len());
    for b in &read.blocks {
        // Blocks are only ever removed from a read, so each is one of its frames.
        let Ok(i) = read.frames.binary_search(&b.offset) else { continue };
        // Its header's room, then its data.
        let at = (b.offset - read.offset) as usize + i * PIECE_FRAME_HEADER;
        let Some(slot) = data.get(at..at + PIECE_FRAME_HEADER + b.len as usize) else { continue };
        let mut frame = slot.to_vec();
        frame[..PIECE_FRAME_HEADER].copy_from_slice(&piece_header(b.piece, b.offset, b.len));
        out.push((*b, frame));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{read_frames, Framed, PendingRead, Reads, UploadQueue};
    use crate::metainfo::{FileAttr, FileEntry, Info};
    use crate::storage::FileLayout;
    use crate::types::{BlockRef, ConnId, JobId};
    use crate::wire::{piece_header, PIECE_FRAME_HEADER};

    /// One file of four 64-byte pieces.
    fn layout() -> FileLayout {
        let file = FileEntry { path: vec!["f".into()], length: 256, offset: 0, attr: FileAttr::default() };
        let info = Info {
            name: "f".into(),
            piece_length: 64,
            pieces: vec![Default::default(); 4],
            files: vec![file],
            total_length: 256,
            private: false,
            multi_file: false,
        };
        FileLayout::new(&info)
    }

    fn block(piece: u32, offset: u32) -> BlockRef {
        BlockRef { piece, offset, len: 16 }
    }

    /// What the disk answers for `plan`'s read: room for a header, then the data, per block.
    fn disk_answer(blocks: &[BlockRef]) -> Vec<u8> {
        let mut data = Vec::new();
        for b in blocks {
            data.extend_from_slice(&[0xEE; PIECE_FRAME_HEADER]);
            data.extend(std::iter::repeat_n(b.offset as u8, b.len as usize));
        }
        data
    }

    /// A read of three 4-byte blocks at offset 8 of piece 2, as the disk answers it: room for a
    /// header, then the data, per block.
    fn framed_read() -> (PendingRead, Vec<u8>) {
        let blocks: Vec<BlockRef> = (0..3).map(|i| BlockRef { piece: 2, offset: 8 + 4 * i, len: 4 }).collect();
        let mut data = Vec::new();
        for i in 0..3u8 {
            data.extend_from_slice(&[0xEE; PIECE_FRAME_HEADER]);
            data.extend_from_slice(&[i; 4]);
        }
        let frames = blocks.iter().map(|b| b.offset).collect();
        (PendingRead { job: JobId(1), offset: 8, len: 12, blocks, frames }, data)
    }

    #[test]
    fn a_cancelled_block_leaves_the_others_framed_with_their_own_bytes() {
        let (mut read, data) = framed_read();
        read.blocks.remove(1);
        let frames = read_frames(&read, &data);
        assert_eq!(frames.len(), 2);
        for ((b, frame), byte) in frames.iter().zip([0u8, 2]) {
            let mut expected = piece_header(2, b.offset, 4).to_vec();
            expected.extend_from_slice(&[byte; 4]);
            assert_eq!(frame, &expected, "block at {}", b.offset);
        }
    }

    #[test]
    fn a_short_answer_frames_nothing_out_of_bounds() {
        let (read, data) = framed_read();
        let frames = read_frames(&read, &data[..20]);
        assert_eq!(frames.len(), 1, "only the first frame fits in 20 bytes");
    }

    #[test]
    fn consecutive_requests_in_a_piece_share_one_read() {
        let mut q = UploadQueue::default();
        for b in [block(1, 0), block(1, 16), block(1, 32), block(2, 48), block(1, 48)] {
            q.push(b);
        }
        let (plan, blocks) = q.next_read(&layout(), 64).expect("a read");
        assert_eq!(blocks, [block(1, 0), block(1, 16), block(1, 32)]);
        assert_eq!(plan.range, BlockRef { piece: 1, offset: 0, len: 48 });
        assert_eq!(plan.len, 48 + 3 * PIECE_FRAME_HEADER, "room for each frame's header");
        assert_eq!(plan.spans.first().map(|s| (s.at, s.span.offset)), Some((PIECE_FRAME_HEADER, 64)));
        let (_, next) = q.next_read(&layout(), 64).expect("another read");
        assert_eq!(next, [block(2, 48)], "another piece starts another read");
        assert_eq!(q.waiting(), 1);
    }

    #[test]
    fn a_whole_read_goes_out_as_one_send_with_its_headers() {
        let mut q = UploadQueue::default();
        q.push(block(0, 0));
        q.push(block(0, 16));
        let (plan, blocks) = q.next_read(&layout(), 64).expect("a read");
        q.reading(JobId(5), plan.range, blocks.clone());
        assert_eq!((q.queued(), q.backlog()), (2, 32));
        let framed = q.on_read(JobId(5), Ok(disk_answer(&blocks)), false).expect("its read").expect("right size");
        let Framed::Whole { data, payload } = framed else { panic!("one send") };
        assert_eq!(payload, 32);
        assert_eq!(data[..PIECE_FRAME_HEADER], piece_header(0, 0, 16));
        assert_eq!(data[PIECE_FRAME_HEADER + 16..2 * PIECE_FRAME_HEADER + 16], piece_header(0, 16, 16));
        assert_eq!((q.queued(), q.backlog()), (0, 0));
    }

    #[test]
    fn a_cancel_reaches_queued_reading_and_throttled_blocks() {
        let mut q = UploadQueue::default();
        for b in [block(0, 0), block(0, 16), block(0, 32)] {
            q.push(b);
        }
        let (plan, blocks) = q.next_read(&layout(), 64).expect("a read");
        q.reading(JobId(5), plan.range, blocks.clone());
        assert!(q.cancel(&block(0, 16)), "a block being read");
        assert!(!q.cancel(&block(3, 0)), "never asked");
        let framed = q.on_read(JobId(5), Ok(disk_answer(&blocks)), true).expect("its read").expect("right size");
        assert!(matches!(framed, Framed::Held), "held for tokens");
        assert_eq!(q.queued(), 2);
        assert!(q.needs_tokens());
        assert!(!q.needs_tokens(), "queued for tokens once");
        assert!(q.cancel(&block(0, 32)), "a throttled block");
        let (b, frame) = q.release().expect("one block left");
        assert_eq!((b, frame.len()), (block(0, 0), PIECE_FRAME_HEADER + 16));
        assert!(q.release().is_none());
        assert_eq!((q.queued(), q.backlog()), (0, 0));
    }

    #[test]
    fn a_choke_drops_queued_and_throttled_blocks_but_not_reads() {
        let mut q = UploadQueue::default();
        q.push(block(0, 0));
        let (plan, blocks) = q.next_read(&layout(), 64).expect("a read");
        q.reading(JobId(5), plan.range, blocks.clone());
        let framed = q.on_read(JobId(5), Ok(disk_answer(&blocks)), true).expect("its read").expect("right size");
        assert!(matches!(framed, Framed::Held));
        q.push(block(1, 0));
        q.push(block(2, 0));
        let (plan, blocks) = q.next_read(&layout(), 64).expect("a read");
        q.reading(JobId(6), plan.range, blocks);
        assert_eq!(q.choke(), [block(2, 0), block(0, 0)]);
        assert_eq!(q.queued(), 1, "the read in flight is still sent");
        assert!(matches!(q.on_read(JobId(6), Ok(vec![0; 3]), false), Some(Err(_))), "a short answer");
    }

    #[test]
    fn a_read_of_a_peer_not_in_flight_is_caught() {
        let mut q = UploadQueue::default();
        q.push(block(0, 0));
        let (plan, blocks) = q.next_read(&layout(), 64).expect("a read");
        q.reading(JobId(5), plan.range, blocks);
        let mut reads = Reads::default();
        reads.start(JobId(5), ConnId(1));
        reads.check([(ConnId(1), &q)].into_iter()).expect("in flight for it");
        assert!(reads.check([(ConnId(2), &q)].into_iter()).is_err(), "in flight for another peer");
        assert_eq!(reads.finish(JobId(5)), Some(ConnId(1)));
        assert!(reads.check([(ConnId(1), &q)].into_iter()).is_err(), "no longer in flight");
    }
}
