//! `shoal info`: what a .torrent file holds.

use std::path::Path;

use std::fmt::Write;

use serde::Serialize;
use shoal_core::magnet::Magnet;
use shoal_core::Metainfo;

/// Reads and parses a .torrent file, with errors that name the file.
pub fn load(path: &Path) -> Result<Metainfo, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Metainfo::from_bytes(&bytes).map_err(|e| format!("{} is not a valid torrent: {e}", path.display()))
}

/// The torrent's magnet link: info-hash, name and every tracker (tiers flattened in order).
pub fn magnet_link(m: &Metainfo) -> String {
    let mut magnet = Magnet::new(m.info_hash);
    magnet.display_name = Some(m.info.name.clone());
    for url in m.trackers.iter().flatten() {
        if !magnet.trackers.contains(url) {
            magnet.trackers.push(url.clone());
        }
    }
    magnet.to_uri()
}

#[derive(Serialize)]
struct FileJson {
    path: String,
    length: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pad: bool,
}

#[derive(Serialize)]
struct InfoJson {
    name: String,
    info_hash: String,
    magnet: String,
    total_size: u64,
    piece_length: u32,
    piece_count: u32,
    private: bool,
    trackers: Vec<Vec<String>>,
    web_seeds: Vec<String>,
    comment: Option<String>,
    created_by: Option<String>,
    creation_date: Option<i64>,
    files: Vec<FileJson>,
}

/// `shoal info`: prints the torrent's description, as text or as JSON.
pub fn info(path: &Path, json: bool) -> Result<(), String> {
    let m = load(path)?;
    let files: Vec<FileJson> =
        m.info.files.iter().map(|f| FileJson { path: f.path.join("/"), length: f.length, pad: f.is_pad() }).collect();
    let out = InfoJson {
        name: m.info.name.clone(),
        info_hash: m.info_hash.to_hex(),
        magnet: magnet_link(&m),
        total_size: m.info.total_length,
        piece_length: m.info.piece_length,
        piece_count: m.info.piece_count(),
        private: m.info.private,
        trackers: m.trackers.clone(),
        web_seeds: m.url_list.clone(),
        comment: m.comment.clone(),
        created_by: m.created_by.clone(),
        creation_date: m.creation_date,
        files,
    };
    if json {
        let s = serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?;
        return crate::output::print_stdout(&format!("{s}\n"));
    }
    crate::output::print_stdout(&text(&out))
}

/// The text form of `shoal info`.
fn text(out: &InfoJson) -> String {
    use crate::progress::human_bytes;
    let mut t = String::new();
    // `writeln!` into a String cannot fail.
    let _ = writeln!(t, "name:         {}", out.name);
    let _ = writeln!(t, "info-hash:    {}", out.info_hash);
    let _ = writeln!(t, "magnet:       {}", out.magnet);
    let _ = writeln!(t, "size:         {} ({} bytes)", human_bytes(out.total_size), out.total_size);
    let _ = writeln!(t, "pieces:       {} x {}", out.piece_count, human_bytes(out.piece_length as u64));
    let _ = writeln!(t, "private:      {}", if out.private { "yes" } else { "no" });
    if let Some(c) = &out.comment {
        let _ = writeln!(t, "comment:      {c}");
    }
    if let Some(c) = &out.created_by {
        let _ = writeln!(t, "created by:   {c}");
    }
    let _ = writeln!(t, "trackers:");
    for (i, tier) in out.trackers.iter().enumerate() {
        for url in tier {
            let _ = writeln!(t, "  tier {i}: {url}");
        }
    }
    let real: Vec<&FileJson> = out.files.iter().filter(|f| !f.pad).collect();
    let _ = writeln!(t, "files ({}):", real.len());
    for f in real {
        let _ = writeln!(t, "  {:>12}  {}", f.length, f.path);
    }
    t
}
