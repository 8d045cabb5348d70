//! In-memory disks, and the disk and hash jobs run on them.

use std::collections::HashMap;
use std::ops::Range;

use sha1::{Digest, Sha1};

use shoal_core::{DiskJobKind, FileSpan, HashJob, JobId, JobResult, Metainfo, TorrentId};

use super::ids::NodeId;

/// One file's bytes, and which of them were ever written.
#[derive(Clone, Debug)]
struct FileBuf {
    data: Vec<u8>,
    written: Vec<bool>,
    pad: bool,
    offset: u64,
}

/// One torrent's files in memory; every byte remembers whether it was ever written.
#[derive(Clone, Debug)]
pub(crate) struct Disk {
    files: Vec<FileBuf>,
    /// Pieces of every `Write` job, in order.
    pub written_pieces: Vec<u32>,
    /// Bytes written to pad files, which must stay zero.
    pub pad_writes: u64,
}

impl Disk {
    /// No data at all (a fresh download).
    pub(crate) fn empty(meta: &Metainfo) -> Self {
        let files = meta
            .info
            .files
            .iter()
            .map(|f| FileBuf {
                data: vec![0; f.length as usize],
                written: vec![false; f.length as usize],
                pad: f.is_pad(),
                offset: f.offset,
            })
            .collect();
        Disk { files, written_pieces: Vec::new(), pad_writes: 0 }
    }

    /// Every (non-pad) byte present: `data` is the whole torrent.
    pub(crate) fn full(meta: &Metainfo, data: &[u8]) -> Self {
        let mut d = Disk::empty(meta);
        d.fill(0, data);
        d
    }

    /// Puts `bytes` at torrent offset `start`, as if they had been there before the engine ran.
    pub(crate) fn fill(&mut self, start: u64, bytes: &[u8]) {
        let end = start + bytes.len() as u64;
        for f in &mut self.files {
            let (fs, fe) = (f.offset, f.offset + f.data.len() as u64);
            let (s, e) = (start.max(fs), end.min(fe));
            if s >= e || f.pad {
                continue;
            }
            let src = &bytes[(s - start) as usize..(e - start) as usize];
            f.data[(s - fs) as usize..(e - fs) as usize].copy_from_slice(src);
            f.written[(s - fs) as usize..(e - fs) as usize].fill(true);
        }
    }

    /// The torrent's bytes as they are on this disk (pad files and unwritten bytes read zero).
    pub(crate) fn contents(&self) -> Vec<u8> {
        self.files.iter().flat_map(|f| if f.pad { vec![0; f.data.len()] } else { f.data.clone() }).collect()
    }

    /// Bytes of file `file` ever written (or pre-filled).
    pub(crate) fn written_bytes(&self, file: usize) -> usize {
        self.files[file].written.iter().filter(|w| **w).count()
    }

    /// Bytes of the torrent range ever written (or pre-filled).
    pub(crate) fn written_in(&self, range: Range<usize>) -> usize {
        let mut n = 0;
        for f in &self.files {
            let (fs, fe) = (f.offset as usize, f.offset as usize + f.data.len());
            let (s, e) = (range.start.max(fs), range.end.min(fe));
            if s < e {
                n += f.written[s - fs..e - fs].iter().filter(|w| **w).count();
            }
        }
        n
    }

    fn write(&mut self, spans: &[FileSpan], data: &[u8]) {
        let mut pos = 0usize;
        for s in spans {
            let f = &mut self.files[s.file as usize];
            let (off, len) = (s.offset as usize, s.len as usize);
            assert!(off + len <= f.data.len(), "write span {s:?} runs past its file");
            assert_eq!(s.pad, f.pad, "span {s:?} disagrees about being padding");
            if s.pad {
                self.pad_writes += data[pos..pos + len].iter().filter(|b| **b != 0).count() as u64;
            } else {
                f.data[off..off + len].copy_from_slice(&data[pos..pos + len]);
                f.written[off..off + len].fill(true);
            }
            pos += len;
        }
        assert_eq!(pos, data.len(), "write spans cover the data exactly");
    }

    /// Runs a disk job of node `a` on this disk at once.
    pub(super) fn run(&mut self, a: NodeId, kind: &DiskJobKind) -> JobResult {
        match kind {
            DiskJobKind::Write { piece, spans, data } => {
                self.write(spans, data);
                self.written_pieces.push(*piece);
                JobResult::Written { result: Ok(()), data: data.clone() }
            }
            DiskJobKind::Read { block, len, spans } => {
                match self.read(&spans.iter().map(|p| p.span).collect::<Vec<_>>()) {
                    Some(data) => {
                        assert_eq!(data.len(), block.len as usize, "read spans cover the block");
                        let framed = shoal_core::lay_out_read(spans, *len, &data);
                        JobResult::Read(Ok(framed.expect("placed spans fit the buffer")))
                    }
                    None => panic!("node {a}: engine read {block:?}, whose bytes it never wrote"),
                }
            }
            DiskJobKind::Verify { spans, expected, .. } => {
                let ok = self.read(spans).is_some_and(|data| <[u8; 20]>::from(Sha1::digest(&data)) == *expected);
                JobResult::Verified(Ok(ok))
            }
        }
    }

    /// The spans' bytes, or `None` if a non-pad byte was never written.
    fn read(&self, spans: &[FileSpan]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        for s in spans {
            let f = &self.files[s.file as usize];
            let (off, len) = (s.offset as usize, s.len as usize);
            assert!(off + len <= f.data.len(), "read span {s:?} runs past its file");
            if s.pad {
                out.resize(out.len() + len, 0);
            } else {
                if !f.written[off..off + len].iter().all(|w| *w) {
                    return None;
                }
                out.extend_from_slice(&f.data[off..off + len]);
            }
        }
        Some(out)
    }
}

/// Hashes a piece (writing it to its torrent's disk in `disks` if it matches and `writes`, as
/// the runtimes' hash jobs do); the job's id and result.
pub(super) fn hash(job: HashJob, disks: &mut HashMap<TorrentId, Disk>, writes: bool) -> (JobId, JobResult) {
    let HashJob { id, torrent, piece, data, expected, write } = job;
    let ok = <[u8; 20]>::from(Sha1::digest(&data)) == expected;
    let written = (ok && writes).then(|| {
        let disk = disks.get_mut(&torrent).expect("a disk for the hashed torrent");
        disk.write(&write, &data);
        disk.written_pieces.push(piece);
        Ok(())
    });
    (id, JobResult::Hashed { ok, data, written })
}
