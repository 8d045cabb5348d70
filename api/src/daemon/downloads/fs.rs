//! The library's file-system jobs, run on the blocking pool: the destination probe, the
//! resume check, moving and deleting a torrent's files. Each works on what it is given and
//! knows nothing of the library.

use std::path::{Path, PathBuf};

use shoal_core::{Bitfield, FileLayout, Metainfo};

use super::persist::ResumeData;

/// The resume bitfield of a saved download, if the files on disk can still hold it: every
/// file that a verified piece touches must exist and reach at least the end of that piece's
/// bytes in it. Otherwise `None`, and the engine checks the data again.
pub fn resume_bitfield(meta: &Metainfo, dest: &Path, resume: &ResumeData) -> Option<Bitfield> {
    let have = resume.have(meta.info.pieces.len() as u32)?;
    let layout = FileLayout::new(&meta.info);
    let mut needed: Vec<u64> = vec![0; meta.info.files.len()];
    for p in have.iter_ones() {
        let size = meta.info.piece_size(p);
        for span in layout.piece_spans(p, size) {
            if !span.pad {
                let end = span.offset + span.len as u64;
                let slot = &mut needed[span.file as usize];
                *slot = (*slot).max(end);
            }
        }
    }
    for (f, need) in meta.info.files.iter().zip(&needed) {
        if *need == 0 {
            continue;
        }
        match std::fs::metadata(dest.join(f.relative_path())) {
            Ok(m) if m.is_file() && m.len() >= *need => {}
            _ => return None,
        }
    }
    Some(have)
}

/// Makes sure the destination exists and takes new files: an unwritable destination stops
/// the download with an error at once instead of at its first piece.
pub fn probe_destination(dest: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dest).map_err(|e| format!("destination {} is not usable: {e}", dest.display()))?;
    let probe = dest.join(format!(".shoal-write-test-{}", std::process::id()));
    std::fs::File::create(&probe).map_err(|e| format!("destination {} is not writable: {e}", dest.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Moves the torrent's files from `from` to `to` (rename, or copy and delete across file
/// systems). On failure, files already moved are put back.
pub fn move_files(meta: &Metainfo, from: &Path, to: &Path) -> Result<(), String> {
    if !to.is_dir() {
        return Err(format!("Target directory ({}) does not exist", to.display()));
    }
    let mut moved: Vec<(PathBuf, PathBuf)> = Vec::new();
    let result = (|| {
        for f in &meta.info.files {
            if f.is_pad() {
                continue;
            }
            let rel = f.relative_path();
            let (src, dst) = (from.join(&rel), to.join(&rel));
            if !src.exists() {
                continue;
            }
            if let Some(dir) = dst.parent() {
                std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            if std::fs::rename(&src, &dst).is_err() {
                std::fs::copy(&src, &dst).map_err(|e| format!("cannot copy {}: {e}", src.display()))?;
                std::fs::File::open(&dst).and_then(|f| f.sync_all()).map_err(|e| e.to_string())?;
                std::fs::remove_file(&src).map_err(|e| format!("cannot remove {}: {e}", src.display()))?;
            }
            moved.push((src, dst));
        }
        Ok(())
    })();
    if result.is_err() {
        for (src, dst) in moved.into_iter().rev() {
            if std::fs::rename(&dst, &src).is_err() && std::fs::copy(&dst, &src).is_ok() {
                let _ = std::fs::remove_file(&dst);
            }
        }
    } else {
        remove_empty_dirs(meta, from);
    }
    result
}

/// Deletes the torrent's files under `dest` (only those: nothing else there is touched) and
/// the directories of the torrent left empty.
pub fn delete_files(meta: &Metainfo, dest: &Path) {
    for f in &meta.info.files {
        let _ = std::fs::remove_file(dest.join(f.relative_path()));
    }
    remove_empty_dirs(meta, dest);
}

/// Removes the torrent's directories under `base` that are now empty, deepest first.
fn remove_empty_dirs(meta: &Metainfo, base: &Path) {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for f in &meta.info.files {
        let rel = f.relative_path();
        let mut p = rel.parent();
        while let Some(dir) = p.filter(|d| !d.as_os_str().is_empty()) {
            dirs.push(base.join(dir));
            p = dir.parent();
        }
    }
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    dirs.dedup();
    for d in dirs {
        // Fails (and is meant to) when the directory still holds anything.
        let _ = std::fs::remove_dir(d);
    }
}
