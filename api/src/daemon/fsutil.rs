//! The state directory on disk: atomic file replacement, private permissions, the lock that
//! keeps a second daemon out, and the clean-up of temporary files a crash left behind.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of the state directory: it holds the API key and resume data.
const DIR_MODE: u32 = 0o700;
/// Mode of every file the daemon writes there.
const FILE_MODE: u32 = 0o600;

/// Replaces `path` with `data` so that a crash at any moment leaves either the old or the new
/// content: write a temporary file beside it, fsync it, rename it over `path`, fsync the
/// directory (so the rename itself is durable). The file is readable by its owner only.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    write_atomic_tagged(path, data, 0)
}

/// [`write_atomic`] with `tag` in the temporary file's name, so that concurrent writers of the
/// same file never share a temporary file.
pub fn write_atomic_tagged(path: &Path, data: &[u8], tag: u64) -> io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| io::Error::other("no file name"))?.to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp{}-{tag}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(FILE_MODE).open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Whether `name` is a temporary file of [`write_atomic_tagged`]: `.<name>.tmp<pid>-<tag>`.
fn is_atomic_temp(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('.') else { return false };
    let Some((_, suffix)) = rest.rsplit_once(".tmp") else { return false };
    let Some((pid, tag)) = suffix.split_once('-') else { return false };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(pid) && digits(tag)
}

/// Removes the temporary files of interrupted atomic writes in `dir` (not recursive) and
/// returns their paths. Only safe while holding the [`StateLock`]: no other writer runs.
pub fn remove_stray_temps(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut removed = Vec::new();
    for e in entries.flatten() {
        let is_file = e.file_type().is_ok_and(|t| t.is_file());
        if is_file && e.file_name().to_str().is_some_and(is_atomic_temp) && fs::remove_file(e.path()).is_ok() {
            removed.push(e.path());
        }
    }
    removed
}

/// Creates the state directory if needed and makes it and `files` in it private (owner only):
/// installs made before these modes existed are fixed on their next start.
pub fn make_private(dir: &Path, files: &[&str]) -> io::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))?;
    for name in files {
        match fs::set_permissions(dir.join(name), fs::Permissions::from_mode(FILE_MODE)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// An exclusive `flock` on `<state>/lock`, which holds the owner's PID; released when the
/// process ends (even by `kill -9`), so a stale file never blocks a start.
pub struct StateLock {
    _file: File,
}

impl StateLock {
    /// Takes the lock, or says which process holds it.
    pub fn acquire(dir: &Path) -> Result<StateLock, String> {
        let path = dir.join("lock");
        // No truncation before the lock is ours: the holder's PID must stay readable.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        if let Err(e) = rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            if e != rustix::io::Errno::WOULDBLOCK {
                return Err(format!("cannot lock {}: {e}", path.display()));
            }
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let who = if holder.is_empty() { "another process".to_string() } else { format!("PID {holder}") };
            return Err(format!(
                "the state directory {} is in use by another shoal daemon ({who}); stop it or pass another --state-dir",
                dir.display()
            ));
        }
        let pid = format!("{}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(pid.as_bytes()))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(StateLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("shoal-fsutil-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn replaces_and_leaves_no_temp() {
        let dir = temp_dir("replace");
        let p = dir.join("a.conf");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_atomic_temps_are_stray() {
        assert!(is_atomic_temp(".triblerd.conf.tmp123-0"));
        assert!(is_atomic_temp(".abc.state.tmp9-42"));
        for keep in ["triblerd.conf", ".triblerd.conf", ".x.tmp", ".x.tmp1", ".x.tmp-1", ".x.tmpa-1", "x.tmp1-2"] {
            assert!(!is_atomic_temp(keep), "{keep}");
        }
        let dir = temp_dir("stray");
        fs::write(dir.join(".triblerd.conf.tmp77-0"), b"x").unwrap();
        fs::write(dir.join("keep.state"), b"x").unwrap();
        assert_eq!(remove_stray_temps(&dir), vec![dir.join(".triblerd.conf.tmp77-0")]);
        assert!(dir.join("keep.state").exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
