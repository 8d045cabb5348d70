//! The paged file tree of the PyPI GUI (§4.8): `/files?view_start_path=…&view_size=…` lists
//! the visible rows after a path; `/files/expand|collapse` open and close directories;
//! `/files/select|deselect` change what is downloaded.
//!
//! Rows are full paths with the torrent's folder (`multi/sub/a.bin`). Directories come before
//! files, each sorted by name; a directory row has index −2 when expanded, −1 when collapsed.
//! Tribler's own tree repeats rows in some states; ours lists each row once.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};
use shoal_core::Metainfo;

/// A directory of the tree: sub-directories and files by name.
#[derive(Default)]
struct Dir {
    dirs: BTreeMap<String, Dir>,
    /// File name → file index.
    files: BTreeMap<String, usize>,
}

impl Dir {
    fn insert(&mut self, path: &[String], index: usize) {
        match path {
            [] => {}
            [name] => {
                self.files.insert(name.clone(), index);
            }
            [dir, rest @ ..] => self.dirs.entry(dir.clone()).or_default().insert(rest, index),
        }
    }

    /// Every file index under this directory.
    fn indexes(&self, out: &mut Vec<usize>) {
        for d in self.dirs.values() {
            d.indexes(out);
        }
        out.extend(self.files.values().copied());
    }
}

/// Sizes and verified bytes of the files, and which are included.
pub struct FileFacts<'a> {
    pub done: &'a [u64],
    pub included: &'a dyn Fn(usize) -> bool,
}

/// The tree of a torrent's files (pad files left out).
pub struct Tree<'a> {
    meta: &'a Metainfo,
    root: Dir,
}

impl<'a> Tree<'a> {
    /// Builds the tree; for a single-file torrent the root holds just the file.
    pub fn new(meta: &'a Metainfo) -> Tree<'a> {
        let mut root = Dir::default();
        for (i, f) in meta.info.files.iter().enumerate() {
            if !f.is_pad() {
                root.insert(&f.path, i);
            }
        }
        Tree { meta, root }
    }

    fn find_dir(&self, path: &str) -> Option<&Dir> {
        let mut d = &self.root;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            d = d.dirs.get(part)?;
        }
        Some(d)
    }

    /// File indexes at or under `path` (a file or a directory); empty if there is no such path.
    pub fn indexes_at(&self, path: &str) -> Vec<usize> {
        let mut out = Vec::new();
        if let Some(d) = self.find_dir(path) {
            if !path.trim_matches('/').is_empty() {
                d.indexes(&mut out);
                return out;
            }
        }
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
        if let Some(i) = self.find_dir(parent).and_then(|d| d.files.get(name)) {
            out.push(*i);
        }
        out
    }

    /// The visible rows after `start` (excluded; `""` or `"."` start at the top), at most `size`.
    pub fn view(&self, expanded: &BTreeSet<String>, facts: &FileFacts, start: &str, size: usize) -> Vec<Value> {
        let mut rows = Vec::new();
        self.walk(&self.root, "", expanded, facts, &mut rows);
        let from = match start {
            "" | "." => 0,
            s => match rows.iter().position(|(p, _)| p == s.trim_end_matches('/')) {
                Some(i) => i + 1,
                None => rows.len(),
            },
        };
        rows.into_iter().skip(from).take(size).map(|(_, v)| v).collect()
    }

    fn walk(
        &self,
        dir: &Dir,
        prefix: &str,
        expanded: &BTreeSet<String>,
        facts: &FileFacts,
        rows: &mut Vec<(String, Value)>,
    ) {
        for (name, sub) in &dir.dirs {
            let path = join(prefix, name);
            let mut idx = Vec::new();
            sub.indexes(&mut idx);
            let size: u64 = idx.iter().map(|&i| self.meta.info.files[i].length).sum();
            let done: u64 = idx.iter().map(|&i| facts.done.get(i).copied().unwrap_or(0)).sum();
            let open = expanded.contains(&path);
            rows.push((
                path.clone(),
                json!({
                    "index": if open { -2 } else { -1 },
                    "name": path,
                    "size": size,
                    "included": false,
                    "progress": if size == 0 { 1.0 } else { done as f64 / size as f64 },
                }),
            ));
            if open {
                self.walk(sub, &path, expanded, facts, rows);
            }
        }
        for (name, &i) in &dir.files {
            let path = join(prefix, name);
            let len = self.meta.info.files[i].length;
            let done = facts.done.get(i).copied().unwrap_or(0);
            rows.push((
                path.clone(),
                json!({
                    "index": i,
                    "name": path,
                    "size": len,
                    "included": (facts.included)(i),
                    "progress": if len == 0 { 1.0 } else { done as f64 / len as f64 },
                }),
            ));
        }
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    }
}

/// The single row shown while a magnet has no metadata.
pub fn loading_row() -> Value {
    json!({"index": -3, "name": "loading...", "size": 0, "included": 0, "progress": 0.0})
}

/// Marks `path` and its ancestors expanded.
pub fn expand(expanded: &mut BTreeSet<String>, path: &str) {
    let mut p = path.trim_matches('/');
    while !p.is_empty() {
        expanded.insert(p.to_string());
        p = p.rsplit_once('/').map_or("", |(a, _)| a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_core::create::TorrentBuilder;

    fn multi() -> Metainfo {
        let mut b = TorrentBuilder::new("multi".into());
        b.add_file(vec!["video.mkv".into()], 3000);
        b.add_file(vec!["readme.txt".into()], 6);
        b.add_file(vec!["sub".into(), "extra.bin".into()], 100);
        b.set_piece_length(16384);
        let pieces = vec![[0u8; 20]; 1];
        Metainfo::from_bytes(&b.build(pieces).unwrap()).unwrap()
    }

    #[test]
    fn collapsed_root_then_expanded_rows_in_order() {
        let meta = multi();
        let tree = Tree::new(&meta);
        let done = vec![0u64; meta.info.files.len()];
        let facts = FileFacts { done: &done, included: &|_| true };
        let mut expanded = BTreeSet::new();
        let rows = tree.view(&expanded, &facts, "", 10);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["name"], "multi");
        assert_eq!(rows[0]["index"], -1);
        assert!(tree.view(&expanded, &facts, "multi", 10).is_empty());

        expand(&mut expanded, "multi/sub");
        let names: Vec<String> =
            tree.view(&expanded, &facts, "multi", 10).iter().map(|r| r["name"].as_str().unwrap().to_string()).collect();
        assert_eq!(names, ["multi/sub", "multi/sub/extra.bin", "multi/readme.txt", "multi/video.mkv"]);
        let two = tree.view(&expanded, &facts, "", 2);
        assert_eq!(two[0]["index"], -2);
        assert_eq!(two[1]["name"], "multi/sub");
        assert_eq!(tree.indexes_at("multi/sub").len(), 1);
        assert_eq!(tree.indexes_at("multi").len(), 3);
        assert_eq!(tree.indexes_at("multi/readme.txt").len(), 1);
        assert!(tree.indexes_at("multi/nope").is_empty());
    }
}
