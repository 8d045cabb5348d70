//! A torrent's files on disk: positional reads and writes of the spans the engine names.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha1::{Digest, Sha1};
use shoal_core::engine::{DiskError, DiskErrorKind};
use shoal_core::metainfo::Info;
use shoal_core::storage::FileSpan;

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
    open: Mutex<HashMap<u32, Arc<File>>>,
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
        Ok(Storage { paths, pads, open: Mutex::new(HashMap::new()) })
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
            // Read-only opens are not cached: a later write needs a writable handle.
            return File::open(path).map(Arc::new).map_err(|e| disk_error(&e, path));
        }
        .map_err(|e| disk_error(&e, path))?;
        let file = Arc::new(file);
        open.insert(i, file.clone());
        Ok(file)
    }

    /// Writes `data` to `spans` in order; pad spans are skipped.
    pub fn write(&self, spans: &[FileSpan], data: &[u8]) -> Result<(), DiskError> {
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
                // The guard must be gone before `file()` locks again.
                let cached = self.open.lock().expect("storage lock poisoned").get(&s.file).cloned();
                let f = match cached {
                    Some(f) => f,
                    None => self.file(s.file, false)?,
                };
                f.read_exact_at(&mut buf[pos..end], s.offset)
                    .map_err(|e| disk_error(&e, &self.paths[s.file as usize]))?;
            }
            pos = end;
        }
        Ok(buf)
    }

    /// Reads a piece and compares its SHA-1 with `expected`. A missing or short file is a mismatch.
    pub fn verify(&self, spans: &[FileSpan], expected: &[u8; 20]) -> Result<bool, DiskError> {
        match self.read(spans) {
            Ok(buf) => Ok(sha1_matches(&buf, expected)),
            Err(e) if e.kind == DiskErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Flushes every file written to stable storage.
    pub fn sync(&self) -> io::Result<()> {
        let open: Vec<Arc<File>> = self.open.lock().expect("storage lock poisoned").values().cloned().collect();
        for f in open {
            f.sync_data()?;
        }
        Ok(())
    }
}

/// Whether `data` hashes to `expected`.
pub fn sha1_matches(data: &[u8], expected: &[u8; 20]) -> bool {
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
