//! `shoal create`: hash a file or directory into a .torrent file.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use shoal_core::create::TorrentBuilder;

/// Lists regular files under `root`, sorted by path so the torrent is deterministic.
fn list_files(root: &Path) -> Result<Vec<(Vec<String>, PathBuf, u64)>, String> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), Vec::<String>::new())];
    while let Some((dir, rel)) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
            let name = entry
                .file_name()
                .into_string()
                .map_err(|n| format!("file name is not UTF-8: {}", n.to_string_lossy()))?;
            let meta = std::fs::metadata(entry.path()).map_err(|e| format!("{}: {e}", entry.path().display()))?;
            let mut path = rel.clone();
            path.push(name);
            if meta.is_dir() {
                stack.push((entry.path(), path));
            } else if meta.is_file() {
                out.push((path, entry.path(), meta.len()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `shoal create`: writes the torrent of `path` to `output`; prints its info-hash, file and
/// magnet link.
pub fn create(
    path: &Path,
    output: &Path,
    trackers: Vec<String>,
    piece_size: Option<u32>,
    private: bool,
    comment: Option<String>,
    web_seeds: Vec<String>,
) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let name = path
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .ok_or_else(|| format!("{} has no file name", path.display()))?;
    let mut builder = TorrentBuilder::new(name.clone());
    let files = if meta.is_dir() {
        let files = list_files(path)?;
        for (rel, _, len) in &files {
            builder.add_file(rel.clone(), *len);
        }
        files
    } else {
        builder.set_single_file(true);
        builder.add_file(vec![name], meta.len());
        vec![(Vec::new(), path.to_path_buf(), meta.len())]
    };
    if builder.total_length() == 0 {
        return Err(format!("{} holds no data to share", path.display()));
    }
    if let Some(n) = piece_size {
        if n < 16384 || !n.is_power_of_two() {
            return Err(format!("piece size {n} must be a power of two of at least 16384"));
        }
        builder.set_piece_length(n);
    }
    builder
        .set_trackers(trackers.into_iter().map(|t| vec![t]).collect())
        .set_web_seeds(web_seeds)
        .set_private(private)
        .set_comment(comment)
        .set_created_by(Some(concat!("Shoal ", env!("CARGO_PKG_VERSION")).to_string()))
        .set_creation_date(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_secs() as i64),
        );
    let mut hasher = builder.piece_hasher();
    let mut buf = vec![0u8; 1 << 20];
    for (_, file, len) in &files {
        let f = File::open(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        // Hash exactly the length recorded in the torrent, even if the file grows meanwhile.
        let mut f = f.take(*len);
        let mut read = 0u64;
        loop {
            let n = f.read(&mut buf).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            if n == 0 {
                break;
            }
            read += n as u64;
            hasher.update(&buf[..n]);
        }
        if read != *len {
            return Err(format!("{} changed while it was being hashed", file.display()));
        }
    }
    let bytes = builder.build(hasher.finish()).map_err(|e| e.to_string())?;
    std::fs::write(output, &bytes).map_err(|e| format!("cannot write {}: {e}", output.display()))?;
    let m = shoal_core::Metainfo::from_bytes(&bytes).map_err(|e| e.to_string())?;
    crate::output::print_stdout(&format!(
        "{}  {}\nmagnet: {}\n",
        m.info_hash,
        output.display(),
        crate::info::magnet_link(&m)
    ))
}
