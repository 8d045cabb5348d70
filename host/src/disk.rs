//! A torrent's files on disk: positional reads and writes of the spans the engine names.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, IoSliceMut};
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use sha1::{Digest, Sha1};
use shoal_core::FileSpan;
use shoal_core::Info;
use shoal_core::{DiskError, DiskErrorKind, PlacedSpan};

/// Errors setting up a torrent's storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A file path would leave the download directory (the metainfo parser refuses these too).
    #[error("unsafe file path in torrent: {0}")]
    UnsafePath(String),
    /// Creating a directory or an empty file failed.
    #[error("cannot create {path}: {source}")]
    Create {
        /// What could not be created.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// The files of one torrent under its destination directory.
pub struct Storage {
    paths: Vec<PathBuf>,
    pads: Vec<bool>,
    lengths: Vec<u64>,
    /// Files given their full size on disk when first opened for writing (see
    /// [`Storage::set_preallocate`]).
    preallocate: Vec<AtomicBool>,
    open: Mutex<HashMap<u32, Arc<File>>>,
    /// Files opened for reading only (a seeder's), kept so that a read is not an open+close.
    read_only: Mutex<HashMap<u32, Arc<File>>>,
    /// Held by the one write in progress: concurrent writes to one file only spin on the
    /// kernel's inode lock (measured: ~8% of a download's CPU), and one writer already goes
    /// at page-cache speed.
    writing: Mutex<()>,
    /// Writable handles closed by [`Storage::reopen`], kept until the next [`Storage::sync`]
    /// has flushed what was written through them.
    retired: Mutex<Vec<Arc<File>>>,
}

impl Storage {
    /// Maps every file of `info` under `dest`, refusing any path that could escape it.
    pub fn new(dest: &Path, info: &Info) -> Result<Storage, StorageError> {
        let mut paths = Vec::with_capacity(info.files.len());
        let mut pads = Vec::with_capacity(info.files.len());
        for f in &info.files {
            let rel = f.relative_path();
            if rel.as_os_str().is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
                return Err(StorageError::UnsafePath(rel.display().to_string()));
            }
            paths.push(dest.join(rel));
            pads.push(f.is_pad());
        }
        Ok(Storage {
            paths,
            pads,
            lengths: info.files.iter().map(|f| f.length).collect(),
            preallocate: info.files.iter().map(|_| AtomicBool::new(false)).collect(),
            open: Mutex::new(HashMap::new()),
            read_only: Mutex::new(HashMap::new()),
            writing: Mutex::new(()),
            retired: Mutex::new(Vec::new()),
        })
    }

    /// Whether any (non-pad) file of the torrent exists already.
    pub fn any_exists(&self) -> bool {
        self.paths.iter().zip(&self.pads).any(|(p, pad)| !pad && p.exists())
    }

    /// Creates the directories and the empty files (files with data are created on first write).
    pub fn create_empty_files(&self, lengths: &[u64]) -> Result<(), StorageError> {
        for ((path, pad), len) in self.paths.iter().zip(&self.pads).zip(lengths) {
            if *pad || *len > 0 {
                continue;
            }
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|source| StorageError::Create { path: dir.into(), source })?;
            }
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(path)
                .map_err(|source| StorageError::Create { path: path.clone(), source })?;
        }
        Ok(())
    }

    /// Whether file `i` is allocated in full (`fallocate`) when it is first written, if it is
    /// new; otherwise it grows sparse, write by write. Off for every file until set.
    ///
    /// Allocating up front costs one call per file and spares the filesystem the work of
    /// allocating on every page written (measured: 7% of a 1 GiB download's CPU on ext4); it
    /// also keeps the file in few extents. Leave it off for files the user skipped: a piece
    /// that spans into one writes a few bytes, and should not take its whole size.
    pub fn set_preallocate(&self, i: usize, on: bool) {
        if let Some(p) = self.preallocate.get(i) {
            p.store(on, Ordering::Relaxed);
        }
    }

    /// Path of file `i`.
    pub fn path(&self, i: u32) -> Option<&Path> {
        self.paths.get(i as usize).map(|p| p.as_path())
    }

    fn file(&self, i: u32, write: bool) -> Result<Arc<File>, DiskError> {
        let path = self
            .paths
            .get(i as usize)
            .ok_or_else(|| DiskError { kind: DiskErrorKind::Other, message: format!("no file {i} in torrent") })?;
        let mut open = self.open.lock().expect("storage lock poisoned: a disk job panicked");
        if let Some(f) = open.get(&i) {
            return Ok(f.clone());
        }
        let file = if write {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| disk_error(&e, dir))?;
            }
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)
        } else {
            // Kept apart from the writable handles: a later write opens its own.
            drop(open);
            let mut ro = self.read_only.lock().expect("storage lock poisoned: a disk job panicked");
            if let Some(f) = ro.get(&i) {
                return Ok(f.clone());
            }
            let file = File::open(path).map(Arc::new).map_err(|e| disk_error(&e, path))?;
            ro.insert(i, file.clone());
            return Ok(file);
        }
        .map_err(|e| disk_error(&e, path))?;
        if self.preallocate[i as usize].load(Ordering::Relaxed) {
            preallocate(&file, self.lengths[i as usize]);
        }
        let file = Arc::new(file);
        open.insert(i, file.clone());
        Ok(file)
    }

    /// Writes `data` to `spans` in order; pad spans are skipped.
    pub fn write(&self, spans: &[FileSpan], data: &[u8]) -> Result<(), DiskError> {
        // A poisoned lock guards nothing: the data is in the files, not behind it.
        let _one_writer = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let mut pos = 0usize;
        for s in spans {
            let end = pos + s.len as usize;
            let chunk = data.get(pos..end).ok_or_else(|| DiskError {
                kind: DiskErrorKind::Other,
                message: "write spans longer than data".into(),
            })?;
            if !s.pad {
                let f = self.file(s.file, true)?;
                f.write_all_at(chunk, s.offset).map_err(|e| disk_error(&e, &self.paths[s.file as usize]))?;
            }
            pos = end;
        }
        Ok(())
    }

    /// Reads `spans` into a new buffer; pad spans read as zeros.
    pub fn read(&self, spans: &[FileSpan]) -> Result<Vec<u8>, DiskError> {
        let total: usize = spans.iter().map(|s| s.len as usize).sum();
        let mut buf = vec![0u8; total];
        let mut pos = 0usize;
        for s in spans {
            let end = pos + s.len as usize;
            if !s.pad {
                let f = self.file(s.file, false)?;
                f.read_exact_at(&mut buf[pos..end], s.offset)
                    .map_err(|e| disk_error(&e, &self.paths[s.file as usize]))?;
            }
            pos = end;
        }
        Ok(buf)
    }

    /// Reads the spans of a [`DiskJobKind::Read`](shoal_core::DiskJobKind::Read) into
    /// `buf` (reused: only growth is zeroed), each span's bytes at its place, pad spans as
    /// zeros; runs of spans that follow each other in one file take one `preadv`.
    pub fn read_placed(&self, spans: &[PlacedSpan], len: usize, mut buf: Vec<u8>) -> Result<Vec<u8>, DiskError> {
        buf.truncate(len);
        buf.resize(len, 0);
        match self.fill_placed(spans, &mut buf, false) {
            Ok(()) => Ok(buf),
            Err(ReadFail::Disk(e)) => Err(e),
            // Only a non-blocking read would block.
            Err(ReadFail::WouldBlock) => {
                Err(DiskError { kind: DiskErrorKind::Other, message: "read would block".into() })
            }
        }
    }

    /// [`Storage::read_placed`] from the page cache only, never waiting for the disk (Linux
    /// `RWF_NOWAIT`; elsewhere it always declines). Gives the buffer back when any byte is not
    /// cached or anything fails: the blocking read then does the work and reports errors.
    pub fn read_placed_cached(&self, spans: &[PlacedSpan], len: usize, mut buf: Vec<u8>) -> Result<Vec<u8>, Vec<u8>> {
        if !cfg!(target_os = "linux") {
            return Err(buf);
        }
        buf.truncate(len);
        buf.resize(len, 0);
        match self.fill_placed(spans, &mut buf, true) {
            Ok(()) => Ok(buf),
            Err(_) => Err(buf),
        }
    }

    fn fill_placed(&self, spans: &[PlacedSpan], buf: &mut [u8], nowait: bool) -> Result<(), ReadFail> {
        let bad = || {
            ReadFail::Disk(DiskError { kind: DiskErrorKind::Other, message: "read spans outside their buffer".into() })
        };
        let mut i = 0;
        while i < spans.len() {
            let first = spans[i];
            let mut j = i + 1;
            if first.span.pad {
                buf.get_mut(first.at..first.at + first.span.len as usize).ok_or_else(bad)?.fill(0);
                i = j;
                continue;
            }
            let mut next = first.span.offset + first.span.len as u64;
            while j < spans.len() && j - i < MAX_IOVECS {
                let s = spans[j].span;
                if s.pad || s.file != first.span.file || s.offset != next {
                    break;
                }
                next += s.len as u64;
                j += 1;
            }
            let f = self.file(first.span.file, false).map_err(ReadFail::Disk)?;
            match read_run(&f, buf, &spans[i..j], nowait) {
                Ok(Some(())) => {}
                Ok(None) => return Err(bad()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(ReadFail::WouldBlock),
                Err(e) => return Err(ReadFail::Disk(disk_error(&e, &self.paths[first.span.file as usize]))),
            }
            i = j;
        }
        Ok(())
    }

    /// Reads a piece and compares its SHA-1 with `expected`. A missing or short file is a mismatch.
    pub fn verify(&self, spans: &[FileSpan], expected: &[u8; 20]) -> Result<bool, DiskError> {
        match self.read(spans) {
            Ok(buf) => Ok(sha1_matches(&buf, expected)),
            Err(e) if e.kind == DiskErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Forgets every open handle, so that the next access opens each file by its path again:
    /// a recheck must see the files as they are on disk now. A deleted file is still readable
    /// through a handle opened before, and would pass the check. No I/O here (the engine's
    /// task calls it): writable handles wait for the next [`Storage::sync`] to be flushed.
    pub fn reopen(&self) {
        let written: Vec<Arc<File>> =
            self.open.lock().expect("storage lock poisoned").drain().map(|(_, f)| f).collect();
        self.retired.lock().expect("storage lock poisoned").extend(written);
        self.read_only.lock().expect("storage lock poisoned").clear();
    }

    /// Flushes every file written to stable storage.
    pub fn sync(&self) -> io::Result<()> {
        let open: Vec<Arc<File>> = self.open.lock().expect("storage lock poisoned").values().cloned().collect();
        let retired: Vec<Arc<File>> = std::mem::take(&mut *self.retired.lock().expect("storage lock poisoned"));
        let result = open.iter().chain(&retired).try_for_each(|f| f.sync_data());
        if result.is_err() {
            // Not known to be flushed: kept for the next sync.
            self.retired.lock().expect("storage lock poisoned").extend(retired);
        }
        result
    }
}

/// Most buffers handed to one `preadv` (Linux allows 1024).
const MAX_IOVECS: usize = 512;

/// Why a placed read did not complete.
enum ReadFail {
    Disk(DiskError),
    /// A non-blocking read found bytes that are not in the page cache.
    WouldBlock,
}

/// Reads `run` (consecutive bytes of one file, placed in increasing order in `buf`) with
/// `preadv`; `Ok(None)` if a place lies outside `buf` or overlaps the one before. With
/// `nowait`, only from the page cache: `WouldBlock` as soon as a byte is not there.
fn read_run(file: &File, buf: &mut [u8], run: &[PlacedSpan], nowait: bool) -> io::Result<Option<()>> {
    let Some(start) = run.first().map(|s| s.span.offset) else { return Ok(Some(())) };
    let mut slices = Vec::with_capacity(run.len());
    let mut rest = buf;
    let mut base = 0usize;
    for s in run {
        let len = s.span.len as usize;
        let Some(skip) = s.at.checked_sub(base) else { return Ok(None) };
        if rest.len() < skip + len {
            return Ok(None);
        }
        let (mine, tail) = rest[skip..].split_at_mut(len);
        slices.push(IoSliceMut::new(mine));
        rest = tail;
        base = s.at + len;
    }
    let mut bufs = &mut slices[..];
    let mut offset = start;
    while !bufs.is_empty() {
        let want: usize = bufs.iter().map(|b| b.len()).sum();
        let n = match preadv(file, bufs, offset, nowait) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            // Part of it is cached: the rest would wait for the disk.
            Ok(n) if nowait && n < want => return Err(io::ErrorKind::WouldBlock.into()),
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        offset += n as u64;
        IoSliceMut::advance_slices(&mut bufs, n);
    }
    Ok(Some(()))
}

#[cfg(target_os = "linux")]
fn preadv(file: &File, bufs: &mut [IoSliceMut<'_>], offset: u64, nowait: bool) -> rustix::io::Result<usize> {
    if nowait {
        rustix::io::preadv2(file, bufs, offset, rustix::io::ReadWriteFlags::NOWAIT)
    } else {
        rustix::io::preadv(file, bufs, offset)
    }
}

#[cfg(not(target_os = "linux"))]
fn preadv(file: &File, bufs: &mut [IoSliceMut<'_>], offset: u64, nowait: bool) -> rustix::io::Result<usize> {
    if nowait {
        return Err(rustix::io::Errno::AGAIN);
    }
    rustix::io::preadv(file, bufs, offset)
}

/// Gives a new (empty) file its full `len` on disk. Best effort: a filesystem that cannot
/// (`EOPNOTSUPP`) or a disk that is full leaves the file sparse, and the writes themselves
/// report what goes wrong.
fn preallocate(file: &File, len: u64) {
    if len == 0 || file.metadata().map_or(true, |m| m.len() != 0) {
        return;
    }
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    let _ = rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, len);
}

/// Whether `data` hashes to `expected`.
pub(crate) fn sha1_matches(data: &[u8], expected: &[u8; 20]) -> bool {
    let digest = Sha1::digest(data);
    digest.as_slice() == expected
}

fn disk_error(e: &io::Error, path: &Path) -> DiskError {
    let kind = match e.kind() {
        // A file shorter than the torrent says is data that is not there.
        io::ErrorKind::NotFound | io::ErrorKind::UnexpectedEof => DiskErrorKind::NotFound,
        io::ErrorKind::PermissionDenied => DiskErrorKind::PermissionDenied,
        io::ErrorKind::StorageFull => DiskErrorKind::NoSpace,
        _ if e.raw_os_error() == Some(28) => DiskErrorKind::NoSpace,
        _ => DiskErrorKind::Other,
    };
    DiskError { kind, message: format!("{}: {e}", path.display()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_core::create::TorrentBuilder;
    use shoal_core::Metainfo;

    /// A scratch directory removed on drop.
    struct Scratch(PathBuf);
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A two-file torrent ("a" 10 bytes, "b" 6 bytes) with its files written under a scratch dir.
    fn two_files(tag: &str) -> (Scratch, Storage) {
        let dir = std::env::temp_dir().join(format!("shoal-disk-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("t")).unwrap();
        std::fs::write(dir.join("t/a"), b"0123456789").unwrap();
        std::fs::write(dir.join("t/b"), b"abcdef").unwrap();
        let mut b = TorrentBuilder::new("t".into());
        b.add_file(vec!["a".into()], 10);
        b.add_file(vec!["b".into()], 6);
        b.set_piece_length(16384);
        let meta = Metainfo::from_bytes(&b.build(vec![[0; 20]]).unwrap()).unwrap();
        let storage = Storage::new(&dir, &meta.info).unwrap();
        (Scratch(dir), storage)
    }

    fn placed(at: usize, file: u32, offset: u64, len: u32, pad: bool) -> PlacedSpan {
        PlacedSpan { at, span: FileSpan { file, offset, len, pad } }
    }

    #[test]
    fn a_file_deleted_under_an_open_handle_fails_its_check_after_reopen() {
        let (dir, storage) = two_files("reopen");
        let spans = [FileSpan { file: 1, offset: 0, len: 6, pad: false }];
        let expected: [u8; 20] = Sha1::digest(b"abcdef").into();
        assert_eq!(storage.verify(&spans, &expected), Ok(true));
        std::fs::remove_file(dir.0.join("t/b")).unwrap();
        // The handle opened above still reads the deleted file...
        assert_eq!(storage.verify(&spans, &expected), Ok(true));
        // ...which a recheck must not trust.
        storage.reopen();
        assert_eq!(storage.verify(&spans, &expected), Ok(false));
    }

    #[test]
    fn placed_reads_land_at_their_places_across_files_and_pads() {
        let (_dir, storage) = two_files("placed");
        // Block 1: a[2..6] split in two spans of one run; block 2: a[6..10] then b[0..3]
        // (two files); then a pad span; room for a 2-byte header before each block.
        let spans = [
            placed(2, 0, 2, 2, false),
            placed(4, 0, 4, 2, false),
            placed(8, 0, 6, 4, false),
            placed(12, 1, 0, 3, false),
            placed(15, 0, 0, 3, true),
        ];
        // A reused buffer with stale bytes: only the places are written.
        let out = storage.read_placed(&spans, 18, vec![0xAA; 40]).unwrap();
        assert_eq!(out.len(), 18);
        assert_eq!(&out[2..6], b"2345");
        assert_eq!(&out[8..15], b"6789abc");
        assert_eq!(&out[15..18], &[0, 0, 0]);
    }

    #[test]
    fn cached_reads_give_the_same_bytes_or_the_buffer_back() {
        let (_dir, storage) = two_files("cached");
        let spans = [placed(1, 0, 8, 2, false), placed(4, 1, 0, 6, false)];
        let blocking = storage.read_placed(&spans, 10, Vec::new()).unwrap();
        // Just written, so in the page cache: served without blocking (on Linux).
        match storage.read_placed_cached(&spans, 10, vec![0xAA; 64]) {
            // The gaps keep the reused buffer's stale bytes: they are the engine's.
            Ok(cached) => assert_eq!((&cached[1..3], &cached[4..]), (&blocking[1..3], &blocking[4..])),
            Err(_) if cfg!(target_os = "linux") => panic!("freshly written bytes are cached"),
            Err(_) => {}
        }
        let outside = [placed(8, 0, 0, 4, false)];
        let back = storage.read_placed_cached(&outside, 10, vec![1; 100]).unwrap_err();
        assert_eq!(back.capacity(), 100, "the buffer comes back for reuse");
    }

    #[test]
    fn wanted_new_files_are_allocated_in_full_on_first_write_skipped_ones_grow_sparse() {
        use std::os::unix::fs::MetadataExt;
        let dir = std::env::temp_dir().join(format!("shoal-disk-prealloc-{}", std::process::id()));
        let _scratch = Scratch(dir.clone());
        let mut b = TorrentBuilder::new("t".into());
        b.add_file(vec!["wanted".into()], 1 << 20);
        b.add_file(vec!["skipped".into()], 1 << 20);
        b.set_piece_length(16384);
        let meta = Metainfo::from_bytes(&b.build(vec![[0; 20]; 128]).unwrap()).unwrap();
        let storage = Storage::new(&dir, &meta.info).unwrap();
        storage.set_preallocate(0, true);
        let span = |file| FileSpan { file, offset: 0, len: 4, pad: false };
        storage.write(&[span(0), span(1)], b"abcdefgh").unwrap();

        let wanted = std::fs::metadata(dir.join("t/wanted")).unwrap();
        let skipped = std::fs::metadata(dir.join("t/skipped")).unwrap();
        if cfg!(target_os = "linux") {
            assert_eq!(wanted.len(), 1 << 20, "full size at once");
            assert!(wanted.blocks() * 512 >= 1 << 20, "{} blocks allocated", wanted.blocks());
        }
        assert_eq!(skipped.len(), 4, "a skipped file holds only what was written");
        assert_eq!(storage.read(&[span(0), span(1)]).unwrap(), b"abcdefgh");
        // A file with data already is left as it is.
        let again = Storage::new(&dir, &meta.info).unwrap();
        again.set_preallocate(1, true);
        again.write(&[FileSpan { file: 1, offset: 4, len: 2, pad: false }], b"ij").unwrap();
        assert_eq!(std::fs::metadata(dir.join("t/skipped")).unwrap().len(), 6);
    }

    #[test]
    fn placed_reads_refuse_bad_places_and_missing_bytes() {
        let (_dir, storage) = two_files("bad");
        let outside = [placed(8, 0, 0, 4, false)];
        assert_eq!(storage.read_placed(&outside, 10, Vec::new()).unwrap_err().kind, DiskErrorKind::Other);
        let overlapping = [placed(4, 0, 0, 4, false), placed(6, 0, 4, 2, false)];
        assert_eq!(storage.read_placed(&overlapping, 20, Vec::new()).unwrap_err().kind, DiskErrorKind::Other);
        let past_the_end = [placed(0, 1, 4, 4, false)];
        assert_eq!(storage.read_placed(&past_the_end, 4, Vec::new()).unwrap_err().kind, DiskErrorKind::NotFound);
    }
}
