//! Making v1 .torrent files without doing I/O.
//!
//! The caller lists the files ([`TorrentBuilder::add_file`]), streams their bytes in the same
//! order through a [`PieceHasher`] (from [`TorrentBuilder::piece_hasher`]), and hands the hashes
//! to [`TorrentBuilder::build`], which returns the bencoded torrent with its keys sorted.
//!
//! File order is the torrent's data order and so part of its identity: the caller must add the
//! files in a deterministic order (Shoal's runtimes sort by path components, byte-wise, as
//! mktorrent does) and feed their bytes in that same order.

use std::collections::BTreeMap;

use bt_bencode::{ByteString, Value};
use sha1::{Digest, Sha1};

use crate::metainfo::path::component_problem;
use crate::metainfo::MAX_PIECE_LENGTH;
use crate::types::PieceHash;

/// Smallest piece length [`auto_piece_length`] picks.
pub const MIN_AUTO_PIECE_LENGTH: u32 = 16 * 1024;
/// Largest piece length [`auto_piece_length`] picks.
pub const MAX_AUTO_PIECE_LENGTH: u32 = 16 * 1024 * 1024;

/// Why a torrent could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreateError {
    /// No file was added.
    #[error("a torrent needs at least one file")]
    NoFiles,
    /// A single-file torrent was asked for with other than one file.
    #[error("a single-file torrent needs exactly one file, got {0}")]
    SingleFileCount(usize),
    /// The files add up to zero bytes.
    #[error("torrent has no data")]
    NoData,
    /// The file lengths add up to more than 2^64 bytes.
    #[error("file lengths overflow")]
    LengthOverflow,
    /// The piece length is 0 or over 128 MiB.
    #[error("piece length {0} is out of range (1 byte to 128 MiB)")]
    BadPieceLength(u32),
    /// The name or a path component would be refused by a parser (`..`, `/`, empty, ...).
    #[error("unsafe file path {path:?}: {reason}")]
    UnsafePath {
        /// The offending path, components joined with `/`.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The number of piece hashes does not fit the total length.
    #[error("got {got} piece hashes, the data needs {expected}")]
    PieceCountMismatch {
        /// Hashes given.
        got: usize,
        /// Hashes needed.
        expected: u64,
    },
    /// The bencode serialiser failed (a bug: every value we build is serialisable).
    #[error("bencode serialisation failed: {0}")]
    Encode(String),
}

/// A piece length for `total_length` bytes: a power of two from 16 KiB to 16 MiB giving at most
/// 2000 pieces (so 1000–2000 pieces unless a bound is hit), like libtorrent and mktorrent.
pub fn auto_piece_length(total_length: u64) -> u32 {
    let mut length = MIN_AUTO_PIECE_LENGTH;
    while length < MAX_AUTO_PIECE_LENGTH && total_length.div_ceil(u64::from(length)) > 2000 {
        length *= 2;
    }
    length
}

/// Streaming SHA-1 of concatenated file data, cut into pieces.
#[derive(Clone)]
pub struct PieceHasher {
    piece_length: u32,
    sha: Sha1,
    filled: u32,
    pieces: Vec<PieceHash>,
}

impl PieceHasher {
    /// A hasher for pieces of `piece_length` bytes.
    ///
    /// # Panics
    /// If `piece_length` is 0 (a caller bug: the builder never asks for that).
    pub fn new(piece_length: u32) -> Self {
        assert!(piece_length > 0, "piece length must be positive");
        PieceHasher { piece_length, sha: Sha1::new(), filled: 0, pieces: Vec::new() }
    }

    /// Feeds the next bytes of the torrent's data; chunk boundaries do not matter.
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = (self.piece_length - self.filled) as usize;
            let (now, rest) = data.split_at(room.min(data.len()));
            self.sha.update(now);
            // `now` is at most `room`, which is a u32.
            self.filled += now.len() as u32;
            data = rest;
            if self.filled == self.piece_length {
                self.pieces.push(self.sha.finalize_reset().into());
                self.filled = 0;
            }
        }
    }

    /// Hashes of all pieces, the last (shorter) one included.
    pub fn finish(mut self) -> Vec<PieceHash> {
        if self.filled > 0 {
            self.pieces.push(self.sha.finalize().into());
        }
        self.pieces
    }
}

/// Describes a torrent to be made; see the module docs for the order of calls.
#[derive(Debug, Clone, Default)]
pub struct TorrentBuilder {
    name: String,
    files: Vec<(Vec<String>, u64)>,
    piece_length: Option<u32>,
    trackers: Vec<Vec<String>>,
    web_seeds: Vec<String>,
    private: bool,
    comment: Option<String>,
    created_by: Option<String>,
    creation_date: Option<i64>,
    single_file: bool,
}

impl TorrentBuilder {
    /// A builder for a torrent called `name` (the file name, or the top directory).
    pub fn new(name: String) -> Self {
        TorrentBuilder { name, ..TorrentBuilder::default() }
    }

    /// Adds a file: its path below the torrent's top directory (ignored for single-file
    /// torrents, whose one file is called `name`) and its length.
    pub fn add_file(&mut self, path: Vec<String>, length: u64) {
        self.files.push((path, length));
    }

    /// Makes a single-file torrent (`length` in `info`) instead of a directory (`files`).
    pub fn set_single_file(&mut self, single_file: bool) -> &mut Self {
        self.single_file = single_file;
        self
    }

    /// Fixes the piece length instead of [`auto_piece_length`].
    pub fn set_piece_length(&mut self, piece_length: u32) -> &mut Self {
        self.piece_length = Some(piece_length);
        self
    }

    /// Sets the tracker tiers (BEP 12); the first URL also becomes `announce`.
    pub fn set_trackers(&mut self, tiers: Vec<Vec<String>>) -> &mut Self {
        self.trackers = tiers;
        self
    }

    /// Sets the web seeds (BEP 19 `url-list`).
    pub fn set_web_seeds(&mut self, urls: Vec<String>) -> &mut Self {
        self.web_seeds = urls;
        self
    }

    /// Sets the BEP 27 private flag.
    pub fn set_private(&mut self, private: bool) -> &mut Self {
        self.private = private;
        self
    }

    /// Sets the comment.
    pub fn set_comment(&mut self, comment: Option<String>) -> &mut Self {
        self.comment = comment;
        self
    }

    /// Sets `created by`.
    pub fn set_created_by(&mut self, created_by: Option<String>) -> &mut Self {
        self.created_by = created_by;
        self
    }

    /// Sets `creation date` (Unix seconds); the core has no clock, so the caller passes it.
    pub fn set_creation_date(&mut self, date: Option<i64>) -> &mut Self {
        self.creation_date = date;
        self
    }

    /// Sum of the file lengths (saturating; [`build`](Self::build) reports overflow).
    pub fn total_length(&self) -> u64 {
        self.files.iter().fold(0u64, |acc, (_, len)| acc.saturating_add(*len))
    }

    /// The piece length that will be used: the one set, or [`auto_piece_length`].
    pub fn piece_length(&self) -> u32 {
        self.piece_length.unwrap_or_else(|| auto_piece_length(self.total_length()))
    }

    /// A hasher for this torrent's pieces; feed it every file's bytes in order.
    ///
    /// # Panics
    /// If the piece length was set to 0 (checked by [`build`](Self::build) otherwise).
    pub fn piece_hasher(&self) -> PieceHasher {
        PieceHasher::new(self.piece_length())
    }

    /// The bencoded .torrent file, keys sorted, given the piece hashes of the data.
    pub fn build(&self, pieces: Vec<PieceHash>) -> Result<Vec<u8>, CreateError> {
        let piece_length = self.piece_length();
        if piece_length == 0 || piece_length > MAX_PIECE_LENGTH {
            return Err(CreateError::BadPieceLength(piece_length));
        }
        check_component(&self.name, &self.name)?;
        if self.files.is_empty() {
            return Err(CreateError::NoFiles);
        }
        if self.single_file && self.files.len() != 1 {
            return Err(CreateError::SingleFileCount(self.files.len()));
        }
        let mut total: u64 = 0;
        for (_, len) in &self.files {
            total = total.checked_add(*len).ok_or(CreateError::LengthOverflow)?;
        }
        if total == 0 {
            return Err(CreateError::NoData);
        }
        let expected = total.div_ceil(u64::from(piece_length));
        if expected != pieces.len() as u64 {
            return Err(CreateError::PieceCountMismatch { got: pieces.len(), expected });
        }

        let mut info = BTreeMap::new();
        if self.single_file {
            insert(&mut info, "length", int(total));
        } else {
            let mut files = Vec::with_capacity(self.files.len());
            for (path, len) in &self.files {
                let shown = path.join("/");
                if path.is_empty() {
                    return Err(CreateError::UnsafePath { path: shown, reason: "empty path" });
                }
                for c in path {
                    check_component(c, &shown)?;
                }
                let mut file = BTreeMap::new();
                insert(&mut file, "length", int(*len));
                insert(&mut file, "path", Value::List(path.iter().map(|c| string(c)).collect()));
                files.push(Value::Dict(file));
            }
            insert(&mut info, "files", Value::List(files));
        }
        insert(&mut info, "name", string(&self.name));
        insert(&mut info, "piece length", int(u64::from(piece_length)));
        insert(&mut info, "pieces", Value::ByteStr(ByteString::from(pieces.concat())));
        if self.private {
            insert(&mut info, "private", int(1));
        }

        let mut root = BTreeMap::new();
        insert(&mut root, "info", Value::Dict(info));
        let tiers: Vec<Vec<&String>> = self
            .trackers
            .iter()
            .map(|t| t.iter().filter(|u| !u.is_empty()).collect::<Vec<_>>())
            .filter(|t| !t.is_empty())
            .collect();
        if let Some(first) = tiers.first().and_then(|t| t.first()) {
            insert(&mut root, "announce", string(first));
        }
        if tiers.iter().map(Vec::len).sum::<usize>() > 1 {
            let list = tiers.iter().map(|t| Value::List(t.iter().map(|u| string(u)).collect()));
            insert(&mut root, "announce-list", Value::List(list.collect()));
        }
        if !self.web_seeds.is_empty() {
            let seeds = self.web_seeds.iter().map(|u| string(u)).collect();
            insert(&mut root, "url-list", Value::List(seeds));
        }
        if let Some(c) = &self.comment {
            insert(&mut root, "comment", string(c));
        }
        if let Some(c) = &self.created_by {
            insert(&mut root, "created by", string(c));
        }
        if let Some(d) = self.creation_date {
            insert(&mut root, "creation date", Value::Int(d.into()));
        }
        // A BTreeMap keyed by bytes serialises in sorted key order: canonical bencode.
        bt_bencode::to_vec(&Value::Dict(root)).map_err(|e| CreateError::Encode(e.to_string()))
    }
}

/// A .torrent file around an info dictionary received from peers (a magnet's metadata):
/// `announce` and `announce-list` from the magnet's trackers (one per tier), then `info`
/// exactly as received, so the file's info-hash is the magnet's.
pub fn torrent_from_info(info: &[u8], trackers: &[String]) -> Vec<u8> {
    // `info` must go in byte for byte (a re-encoding could change its hash), so the few keys
    // around it are written by hand, in sorted order: announce, announce-list, info.
    fn byte_string(out: &mut Vec<u8>, s: &[u8]) {
        out.extend_from_slice(format!("{}:", s.len()).as_bytes());
        out.extend_from_slice(s);
    }
    let mut out = b"d".to_vec();
    if let Some(first) = trackers.first() {
        byte_string(&mut out, b"announce");
        byte_string(&mut out, first.as_bytes());
        byte_string(&mut out, b"announce-list");
        out.push(b'l');
        for t in trackers {
            out.push(b'l');
            byte_string(&mut out, t.as_bytes());
            out.push(b'e');
        }
        out.push(b'e');
    }
    byte_string(&mut out, b"info");
    out.extend_from_slice(info);
    out.push(b'e');
    out
}

fn check_component(c: &str, shown: &str) -> Result<(), CreateError> {
    match component_problem(c) {
        None => Ok(()),
        Some(reason) => Err(CreateError::UnsafePath { path: shown.to_string(), reason }),
    }
}

fn insert(d: &mut BTreeMap<ByteString, Value>, key: &str, v: Value) {
    d.insert(ByteString::from(key), v);
}

fn string(s: &str) -> Value {
    Value::ByteStr(ByteString::from(s))
}

fn int(n: u64) -> Value {
    Value::Int(n.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::Metainfo;

    /// The bytes `make_data.py` writes for the sample files (see tests/fixtures/README.md).
    fn sample(n: u64, seed: u64) -> Vec<u8> {
        (0..n).map(|k| ((k * 31 + seed * 7) ^ (k >> 3)) as u8).collect()
    }

    #[test]
    fn auto_piece_length_aims_for_1000_to_2000_pieces() {
        assert_eq!(auto_piece_length(0), 16 * 1024);
        assert_eq!(auto_piece_length(1), 16 * 1024);
        assert_eq!(auto_piece_length(2000 * 16 * 1024), 16 * 1024);
        assert_eq!(auto_piece_length(2000 * 16 * 1024 + 1), 32 * 1024);
        let gib4 = 4u64 << 30;
        let pl = auto_piece_length(gib4);
        assert!(pl.is_power_of_two());
        let count = gib4.div_ceil(u64::from(pl));
        assert!((1000..=2000).contains(&count), "{count}");
        assert_eq!(auto_piece_length(u64::MAX), MAX_AUTO_PIECE_LENGTH);
    }

    #[test]
    fn hasher_ignores_chunk_boundaries() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
        let mut whole = PieceHasher::new(16384);
        whole.update(&data);
        let whole = whole.finish();
        assert_eq!(whole.len(), 7);
        let mut bits = PieceHasher::new(16384);
        for chunk in data.chunks(777) {
            bits.update(chunk);
            bits.update(&[]);
        }
        assert_eq!(bits.finish(), whole);
        assert_eq!(whole[0], <[u8; 20]>::from(Sha1::digest(&data[..16384])));
        assert_eq!(whole[6], <[u8; 20]>::from(Sha1::digest(&data[6 * 16384..])));
        assert!(PieceHasher::new(10).finish().is_empty());
    }

    #[test]
    fn reproduces_mktorrents_info_hash() {
        // Same files, same order, same piece length as tests/fixtures/mktorrent-multi.torrent.
        let files: [(&[&str], Vec<u8>); 5] = [
            (&["docs", "guide.bin"], sample(5000, 2)),
            (&["docs", "nested", "deep.dat"], sample(40000, 3)),
            (&["empty.txt"], sample(0, 4)),
            (&["one.byte"], sample(1, 5)),
            (&["readme.txt"], sample(3000, 1)),
        ];
        let mut b = TorrentBuilder::new("shoal-sample".into());
        b.set_piece_length(32768);
        for (path, data) in &files {
            b.add_file(path.iter().map(|s| s.to_string()).collect(), data.len() as u64);
        }
        let mut h = b.piece_hasher();
        for (_, data) in &files {
            h.update(data);
        }
        let m = Metainfo::from_bytes(&b.build(h.finish()).unwrap()).unwrap();
        assert_eq!(m.info_hash.to_hex(), "595945db761ebf6a0507c28d50e97b7474b6c91e");
    }

    #[test]
    fn round_trip_through_the_parser() {
        let mut b = TorrentBuilder::new("album".into());
        b.add_file(vec!["cd1".into(), "01.flac".into()], 40_000);
        b.add_file(vec!["cover.jpg".into()], 1);
        b.add_file(vec!["empty".into()], 0);
        let tiers = vec![
            vec!["http://127.0.0.1:6969/announce".to_string()],
            vec!["udp://127.0.0.1:6969".to_string(), "udp://127.0.0.1:6970".to_string()],
        ];
        b.set_trackers(tiers.clone())
            .set_web_seeds(vec!["http://127.0.0.1:8080/files/".into()])
            .set_private(true)
            .set_comment(Some("a comment".into()))
            .set_created_by(Some("shoal".into()))
            .set_creation_date(Some(1_700_000_000));
        assert_eq!(b.piece_length(), 16384);
        let mut h = b.piece_hasher();
        h.update(&vec![9u8; 40_001]);
        let pieces = h.finish();
        let bytes = b.build(pieces.clone()).unwrap();
        let m = Metainfo::from_bytes(&bytes).unwrap();
        let listed: Vec<_> = m.info.files.iter().map(|f| (f.path.join("/"), f.length)).collect();
        assert_eq!(
            listed,
            vec![
                ("album/cd1/01.flac".to_string(), 40_000),
                ("album/cover.jpg".to_string(), 1),
                ("album/empty".to_string(), 0)
            ]
        );
        assert_eq!(m.info.pieces, pieces);
        assert_eq!(m.trackers, tiers);
        assert_eq!(m.url_list, vec!["http://127.0.0.1:8080/files/".to_string()]);
        assert!(m.info.private && m.info.multi_file);
        assert_eq!(m.comment.as_deref(), Some("a comment"));
        assert_eq!(m.created_by.as_deref(), Some("shoal"));
        assert_eq!(m.creation_date, Some(1_700_000_000));
        // Canonical: the info dict re-encodes to the same bytes.
        let v: Value = bt_bencode::from_slice(&m.info_bytes).unwrap();
        assert_eq!(bt_bencode::to_vec(&v).unwrap(), m.info_bytes);
        assert!(bytes.starts_with(b"d8:announce30:http://127.0.0.1:6969/announce13:announce-list"));
    }

    #[test]
    fn single_file_round_trip_with_one_tracker() {
        let data = vec![1u8; 70_000];
        let mut b = TorrentBuilder::new("one.bin".into());
        b.set_single_file(true).set_piece_length(32768);
        b.set_trackers(vec![vec!["http://127.0.0.1:6969/announce".into()]]);
        b.add_file(vec![], data.len() as u64);
        let mut h = b.piece_hasher();
        h.update(&data);
        let bytes = b.build(h.finish()).unwrap();
        let m = Metainfo::from_bytes(&bytes).unwrap();
        assert!(!m.info.multi_file && !m.info.private);
        assert_eq!(m.info.files[0].path, vec!["one.bin"]);
        assert_eq!(m.info.piece_count(), 3);
        assert_eq!(m.trackers, vec![vec!["http://127.0.0.1:6969/announce".to_string()]]);
        // One tracker: no announce-list.
        assert!(!bytes.windows(13).any(|w| w == b"announce-list"));
    }

    #[test]
    fn build_refuses_bad_input() {
        let one_piece = vec![[0u8; 20]];
        let b = TorrentBuilder::new("x".into());
        assert_eq!(b.build(vec![]), Err(CreateError::NoFiles));
        let mut b = TorrentBuilder::new("x".into());
        b.add_file(vec!["a".into()], 0);
        assert_eq!(b.build(vec![]), Err(CreateError::NoData));
        b.add_file(vec!["b".into()], 5);
        assert!(b.build(one_piece.clone()).is_ok());
        assert!(matches!(b.build(vec![]), Err(CreateError::PieceCountMismatch { .. })));
        b.set_single_file(true);
        assert_eq!(b.build(one_piece.clone()), Err(CreateError::SingleFileCount(2)));
        b.set_single_file(false).set_piece_length(0);
        assert_eq!(b.build(one_piece.clone()), Err(CreateError::BadPieceLength(0)));
        for bad in [vec!["..".to_string()], vec!["a/b".into()], vec![], vec!["".into(), "x".into()]] {
            let mut b = TorrentBuilder::new("x".into());
            b.add_file(bad.clone(), 5);
            assert!(matches!(b.build(one_piece.clone()), Err(CreateError::UnsafePath { .. })), "{bad:?}");
        }
        let mut b = TorrentBuilder::new("../x".into());
        b.add_file(vec!["a".into()], 5);
        assert!(matches!(b.build(one_piece.clone()), Err(CreateError::UnsafePath { .. })));
        let mut b = TorrentBuilder::new("x".into());
        b.add_file(vec!["a".into()], u64::MAX);
        b.add_file(vec!["b".into()], 1);
        assert_eq!(b.build(one_piece), Err(CreateError::LengthOverflow));
    }

    #[test]
    fn torrent_from_info_keeps_the_info_hash_and_lists_the_trackers() {
        let mut b = TorrentBuilder::new("f".into());
        b.add_file(vec!["f".into()], 100);
        b.set_piece_length(16384);
        let original = Metainfo::from_bytes(&b.build(vec![[7; 20]]).unwrap()).unwrap();
        let info = original.info_bytes.clone();
        let trackers = vec!["http://127.0.0.1:6969/announce".to_string(), "udp://127.0.0.1:6970".to_string()];
        let made = Metainfo::from_bytes(&torrent_from_info(&info, &trackers)).unwrap();
        assert_eq!(made.info_hash, original.info_hash);
        assert_eq!(made.trackers, vec![vec![trackers[0].clone()], vec![trackers[1].clone()]]);
        // Without trackers: the info dictionary alone.
        let bare = torrent_from_info(&info, &[]);
        assert_eq!(bare, [b"d4:info".as_slice(), &info, b"e"].concat());
        assert_eq!(Metainfo::from_bytes(&bare).unwrap().info_hash, original.info_hash);
    }
}
