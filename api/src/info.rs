//! `shoal info`: what a .torrent file holds.

use std::path::Path;

use serde::Serialize;
use shoal_core::Metainfo;

/// Reads and parses a .torrent file, with errors that name the file.
pub fn load(path: &Path) -> Result<Metainfo, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Metainfo::from_bytes(&bytes).map_err(|e| format!("{} is not a valid torrent: {e}", path.display()))
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

pub fn info(path: &Path, json: bool) -> Result<(), String> {
    let m = load(path)?;
    let files: Vec<FileJson> =
        m.info.files.iter().map(|f| FileJson { path: f.path.join("/"), length: f.length, pad: f.is_pad() }).collect();
    let out = InfoJson {
        name: m.info.name.clone(),
        info_hash: m.info_hash.to_hex(),
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
        println!("{s}");
        return Ok(());
    }
    println!("name:         {}", out.name);
    println!("info-hash:    {}", out.info_hash);
    println!("size:         {} ({} bytes)", crate::progress::human_bytes(out.total_size), out.total_size);
    println!("pieces:       {} x {}", out.piece_count, crate::progress::human_bytes(out.piece_length as u64));
    println!("private:      {}", if out.private { "yes" } else { "no" });
    if let Some(c) = &out.comment {
        println!("comment:      {c}");
    }
    if let Some(c) = &out.created_by {
        println!("created by:   {c}");
    }
    println!("trackers:");
    for (i, tier) in out.trackers.iter().enumerate() {
        for url in tier {
            println!("  tier {i}: {url}");
        }
    }
    let real: Vec<&FileJson> = out.files.iter().filter(|f| !f.pad).collect();
    println!("files ({}):", real.len());
    for f in real {
        println!("  {:>12}  {}", f.length, f.path);
    }
    Ok(())
}
