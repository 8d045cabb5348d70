//! Simulated disks: one torrent's storage, kept per piece.
//!
//! A piece whose bytes equal the source is stored as a marker, not a copy, so fifty 64 MiB
//! disks cost almost nothing. Writes land in a page cache that [`SimDisk::sync`] makes durable;
//! [`SimDisk::crash`] throws away what was never synced, as a power cut would.

use std::collections::{BTreeMap, BTreeSet};

use shoal_core::{DiskError, DiskErrorKind};

use super::torrent::SimTorrent;

/// What one piece slot holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// Exactly the source bytes.
    Source,
    /// Something else (a corrupt write would be a bug; kept for the oracle to report).
    Other(Vec<u8>),
}

/// Fault settings of a disk.
#[derive(Clone, Debug, Default)]
pub struct DiskFaults {
    /// Chance that a read fails with EIO.
    pub read_eio: f64,
    /// Chance that a write fails with EIO.
    pub write_eio: f64,
    /// Chance that a read returns flipped bits (silent corruption).
    pub corrupt_read: f64,
    /// Bytes the disk can hold; `None` for unlimited (ENOSPC past it).
    pub capacity: Option<u64>,
}

/// One torrent's files on one host.
#[derive(Clone, Debug, Default)]
pub struct SimDisk {
    durable: BTreeMap<u32, Content>,
    cache: BTreeMap<u32, Content>,
    /// Pieces written since the last sync.
    dirty: BTreeSet<u32>,
    /// Bytes stored (for ENOSPC).
    pub used: u64,
    /// Fault settings.
    pub faults: DiskFaults,
    /// Write jobs that ran, in order.
    pub writes: u64,
}

/// Outcome of a fault draw, decided by the world's RNG.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Draw {
    /// The operation succeeds.
    Ok,
    /// It fails with EIO.
    Eio,
    /// (Reads) it returns corrupted bytes.
    Corrupt,
}

fn err(kind: DiskErrorKind, what: &str) -> DiskError {
    DiskError { kind, message: format!("simulated {what}") }
}

impl SimDisk {
    /// A disk with every piece present and durable.
    pub fn full(tt: &SimTorrent) -> Self {
        let mut d = SimDisk::default();
        for p in 0..tt.pieces() {
            d.durable.insert(p, Content::Source);
            d.cache.insert(p, Content::Source);
        }
        d.used = tt.len();
        d
    }

    /// Writes a whole piece.
    pub fn write(&mut self, tt: &SimTorrent, piece: u32, data: &[u8], draw: Draw) -> Result<(), DiskError> {
        let range = tt.piece_range(piece);
        let exact = data.len() as u64 == range.end - range.start && tt.matches(range.start, data);
        self.store(
            piece,
            data.len() as u64,
            draw,
            || if exact { Content::Source } else { Content::Other(data.to_vec()) },
        )
    }

    /// Writes a whole piece the caller has already compared with the source and found equal
    /// (comparing 3 GB twice was a tenth of a 50-peer run).
    pub fn write_source(&mut self, tt: &SimTorrent, piece: u32, draw: Draw) -> Result<(), DiskError> {
        let range = tt.piece_range(piece);
        self.store(piece, range.end - range.start, draw, || Content::Source)
    }

    fn store(&mut self, piece: u32, len: u64, draw: Draw, content: impl FnOnce() -> Content) -> Result<(), DiskError> {
        if draw == Draw::Eio {
            return Err(err(DiskErrorKind::Other, "EIO on write"));
        }
        let fresh = !self.cache.contains_key(&piece);
        if fresh {
            if let Some(cap) = self.faults.capacity {
                if self.used + len > cap {
                    return Err(err(DiskErrorKind::NoSpace, "ENOSPC"));
                }
            }
            self.used += len;
        }
        self.cache.insert(piece, content());
        self.dirty.insert(piece);
        self.writes += 1;
        Ok(())
    }

    /// Reads `len` bytes at `offset` inside `piece`; `Ok(None)` if the bytes were never written.
    pub fn read(
        &self,
        tt: &SimTorrent,
        piece: u32,
        offset: u32,
        len: u32,
        draw: Draw,
    ) -> Result<Option<Vec<u8>>, DiskError> {
        // The whole range at the start of its own buffer.
        self.read_placed(tt, (piece, offset, len), &[(0, len as usize)], len as usize, draw)
    }

    /// Like [`SimDisk::read`], but into a buffer of `out_len` bytes where each `(at, n)` of
    /// `places` takes the range's next `n` bytes at `at` (a `DiskJobKind::Read` answer); the
    /// caller has checked that the places cover the range and fit the buffer. A corrupted read
    /// flips the same byte of the range as `read` does.
    pub fn read_placed(
        &self,
        tt: &SimTorrent,
        (piece, offset, len): (u32, u32, u32),
        places: &[(usize, usize)],
        out_len: usize,
        draw: Draw,
    ) -> Result<Option<Vec<u8>>, DiskError> {
        if draw == Draw::Eio {
            return Err(err(DiskErrorKind::Other, "EIO on read"));
        }
        let range = tt.piece_range(piece);
        let (s, e) = (offset as u64, offset as u64 + len as u64);
        if e > range.end - range.start {
            return Ok(None);
        }
        let content = match self.cache.get(&piece) {
            None => return Ok(None),
            Some(c) => c,
        };
        let mut out = vec![0u8; out_len];
        let mut pos = 0u64;
        for &(at, n) in places {
            let dst = &mut out[at..at + n];
            match content {
                Content::Source => tt.fill(range.start + s + pos, dst),
                Content::Other(d) => dst.copy_from_slice(&d[(s + pos) as usize..(s + pos) as usize + n]),
            }
            pos += n as u64;
        }
        if draw == Draw::Corrupt && len > 0 {
            let mut i = len as usize / 2;
            for &(at, n) in places {
                if i < n {
                    out[at + i] ^= 0x40;
                    break;
                }
                i -= n;
            }
        }
        Ok(Some(out))
    }

    /// Whether `piece` holds exactly the source bytes (in the cache, as a reader sees it).
    pub fn is_source(&self, piece: u32) -> bool {
        self.cache.get(&piece) == Some(&Content::Source)
    }

    /// Whether every piece holds the source bytes.
    pub fn is_complete(&self, tt: &SimTorrent) -> bool {
        (0..tt.pieces()).all(|p| self.is_source(p))
    }

    /// Makes every write so far durable (fsync).
    pub fn sync(&mut self) {
        for p in std::mem::take(&mut self.dirty) {
            if let Some(c) = self.cache.get(&p) {
                self.durable.insert(p, c.clone());
            }
        }
    }

    /// A power cut: unsynced writes are lost.
    pub fn crash(&mut self, tt: &SimTorrent) {
        for p in std::mem::take(&mut self.dirty) {
            match self.durable.get(&p) {
                Some(c) => {
                    self.cache.insert(p, c.clone());
                }
                None => {
                    self.cache.remove(&p);
                }
            }
        }
        self.used = self.cache.keys().map(|p| tt.piece_range(*p)).map(|r| r.end - r.start).sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_placed_read_is_the_plain_read_laid_out() {
        let tt = SimTorrent::new(4, 32 * 1024, &[("a".into(), 70_000)], &["http://t/a".into()]);
        let mut disk = SimDisk::full(&tt);
        let other: Vec<u8> = (0..32 * 1024).map(|i| (i % 251) as u8).collect();
        disk.write(&tt, 1, &other, Draw::Ok).expect("room");
        // Two blocks, each after a 13-byte gap (a frame header), as the engine lays them out.
        let places = [(13, 16384), (16384 + 26, 100)];
        for piece in [0, 1] {
            for draw in [Draw::Ok, Draw::Corrupt] {
                let plain = disk.read(&tt, piece, 100, 16484, draw).expect("no EIO").expect("written");
                let placed =
                    disk.read_placed(&tt, (piece, 100, 16484), &places, 16384 + 26 + 100, draw).expect("no EIO");
                let placed = placed.expect("written");
                assert_eq!(&placed[13..13 + 16384], &plain[..16384], "piece {piece} {draw:?}");
                assert_eq!(&placed[16384 + 26..], &plain[16384..], "piece {piece} {draw:?}");
                assert!(placed[..13].iter().chain(&placed[16384 + 13..16384 + 26]).all(|b| *b == 0));
            }
        }
        assert!(disk.read_placed(&tt, (2, 0, 10), &[(0, 10)], 10, Draw::Eio).is_err());
        assert_eq!(SimDisk::default().read_placed(&tt, (0, 0, 10), &[(0, 10)], 10, Draw::Ok), Ok(None));
    }
}
