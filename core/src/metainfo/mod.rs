//! Parsing .torrent files (BEP 3): v1 single- and multi-file torrents and the v1 side of hybrid
//! v1+v2 torrents, with trackers (BEP 12), web seeds (BEP 19), private flag (BEP 27) and file
//! attributes (BEP 47).
//!
//! The info-hash is the SHA-1 of the `info` value's bytes exactly as they appear in the file,
//! even when its keys are not sorted. `bt_bencode` hands those bytes over: deserialising a field
//! as `&[u8]` (`serde_bytes`) makes it return the raw encoding of a dictionary instead of
//! decoding it. Every input first passes [`crate::bencode::check`], which keeps `bt_bencode`
//! away from the inputs that make it panic or overflow the stack.

mod info;
pub(crate) mod path;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};

use bt_bencode::{ByteString, Value};
use sha1::{Digest, Sha1};

use crate::bencode::{self, BencodeError};
use crate::types::InfoHash;

pub use info::{FileAttr, FileEntry, Info};

/// Most files a torrent may list.
pub const MAX_FILES: usize = 1_000_000;
/// Most pieces a torrent may have.
pub const MAX_PIECES: usize = 10_000_000;
/// Largest piece length accepted (libtorrent accepts odd sizes, so only the range is checked).
pub const MAX_PIECE_LENGTH: u32 = 128 * 1024 * 1024;
/// Most tracker URLs (over all tiers) and most web seeds kept; the rest are dropped.
pub const MAX_URLS: usize = 1000;

/// Why a .torrent file (or an info dictionary) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetainfoError {
    /// The bytes are not well-formed bencode (or are truncated, or nested too deeply).
    #[error(transparent)]
    Bencode(#[from] BencodeError),
    /// The bencode decoder refused the input.
    #[error("not bencode at byte {offset}: {reason}")]
    Decode {
        /// Where the decoder stopped.
        offset: usize,
        /// The decoder's own words.
        reason: String,
    },
    /// The top-level value is not a dictionary.
    #[error("not a torrent: the top-level value is not a dictionary")]
    NotADictionary,
    /// A required field is absent.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// A field has the wrong bencode type.
    #[error("wrong type for field `{field}`: expected {expected}")]
    WrongType {
        /// The field's key.
        field: &'static str,
        /// What it should have been.
        expected: &'static str,
    },
    /// `piece length` is 0 or larger than [`MAX_PIECE_LENGTH`].
    #[error("piece length {0} is out of range (1 byte to 128 MiB)")]
    BadPieceLength(u64),
    /// `pieces` is not a whole number of 20-byte SHA-1 hashes.
    #[error("`pieces` is {0} bytes long, not a multiple of 20")]
    BadPiecesLength(usize),
    /// The number of piece hashes does not match the data's length.
    #[error("torrent has {got} piece hashes but {total_length} bytes in pieces of {piece_length} need {expected}")]
    PieceCountMismatch {
        /// Hashes present.
        got: usize,
        /// Hashes needed.
        expected: u64,
        /// Sum of the file lengths.
        total_length: u64,
        /// The piece length.
        piece_length: u32,
    },
    /// The files add up to zero bytes.
    #[error("torrent has no data")]
    NoData,
    /// The file lengths add up to more than 2^64 bytes.
    #[error("file lengths overflow")]
    LengthOverflow,
    /// More than [`MAX_FILES`] files.
    #[error("too many files ({0}, at most {MAX_FILES})")]
    TooManyFiles(usize),
    /// More than [`MAX_PIECES`] pieces.
    #[error("too many pieces ({0}, at most {MAX_PIECES})")]
    TooManyPieces(usize),
    /// A file or directory name that could escape the download directory, or is otherwise unusable.
    #[error("unsafe file path {path:?}: {reason}")]
    UnsafePath {
        /// The offending path as found in the torrent (components joined with `/`).
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A v2-only torrent: no v1 `pieces`, which this engine needs.
    #[error("v2-only torrents are not supported (no v1 `pieces` field)")]
    V2Only,
}

/// A parsed .torrent file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metainfo {
    /// SHA-1 of the raw `info` bytes: the torrent's identity.
    pub info_hash: InfoHash,
    /// The parsed `info` dictionary.
    pub info: Info,
    /// The raw bytes of the `info` dictionary, exactly as in the file (served over ut_metadata).
    pub info_bytes: Vec<u8>,
    /// Tracker tiers (BEP 12) from `announce-list`, else `[[announce]]`, else empty; deduplicated.
    pub trackers: Vec<Vec<String>>,
    /// Web seeds (BEP 19 `url-list`), deduplicated.
    pub url_list: Vec<String>,
    /// Free-text comment (`comment.utf-8` preferred).
    pub comment: Option<String>,
    /// The program that made the torrent.
    pub created_by: Option<String>,
    /// Creation time, seconds since the Unix epoch.
    pub creation_date: Option<i64>,
}

/// A bencoded dictionary as `bt_bencode` decodes it.
pub(crate) type Dict = BTreeMap<ByteString, Value>;

/// Captures the `info` value's raw encoding: `bt_bencode` returns the exact bytes of a
/// dictionary when asked for bytes.
#[derive(serde::Deserialize)]
struct InfoSpan<'a> {
    #[serde(borrow, with = "serde_bytes")]
    info: &'a [u8],
}

impl Metainfo {
    /// Parses a .torrent file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Metainfo, MetainfoError> {
        let root = decode_value(bytes)?;
        let Value::Dict(root) = &root else {
            return Err(MetainfoError::NotADictionary);
        };
        let info_value = root.get(&b"info"[..]).ok_or(MetainfoError::MissingField("info"))?;
        // Checked before taking the raw span: for a byte string, `bt_bencode` would return its
        // contents, which could themselves look like a dictionary.
        if !matches!(info_value, Value::Dict(_)) {
            return Err(MetainfoError::WrongType { field: "info", expected: "dictionary" });
        }
        let span: InfoSpan<'_> = bt_bencode::from_slice(bytes).map_err(decode_error)?;
        let info = Info::from_value(info_value)?;
        Ok(Metainfo {
            info_hash: InfoHash(Sha1::digest(span.info).into()),
            info,
            info_bytes: span.info.to_vec(),
            trackers: trackers(root),
            url_list: url_list(root.get(&b"url-list"[..])),
            comment: text_field(root, "comment.utf-8").or_else(|| text_field(root, "comment")),
            created_by: text_field(root, "created by"),
            creation_date: root.get(&b"creation date"[..]).and_then(int_as_i64),
        })
    }
}

/// Structurally checks `bytes`, then decodes them into a `Value`.
pub(crate) fn decode_value(bytes: &[u8]) -> Result<Value, MetainfoError> {
    bencode::check(bytes, bencode::DEFAULT_MAX_DEPTH)?;
    bt_bencode::from_slice(bytes).map_err(decode_error)
}

fn decode_error(e: bt_bencode::Error) -> MetainfoError {
    MetainfoError::Decode { offset: e.byte_offset(), reason: e.kind().to_string() }
}

/// An integer value as i64, if it is one and fits.
pub(crate) fn int_as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Int(bt_bencode::value::Number::Signed(n)) => Some(*n),
        Value::Int(bt_bencode::value::Number::Unsigned(n)) => i64::try_from(*n).ok(),
        _ => None,
    }
}

/// An optional free-text field: lossy UTF-8, ignored when it has the wrong type.
fn text_field(d: &Dict, key: &str) -> Option<String> {
    match d.get(key.as_bytes()) {
        Some(Value::ByteStr(s)) => Some(String::from_utf8_lossy(s).into_owned()),
        _ => None,
    }
}

/// A tracker or web-seed URL worth keeping: UTF-8, `scheme://…`, no whitespace or controls.
fn valid_url(v: &Value) -> Option<String> {
    let s = std::str::from_utf8(v.as_byte_str()?).ok()?.trim();
    let (scheme, rest) = s.split_once("://")?;
    let scheme_ok = !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    let rest_ok = !rest.is_empty() && !rest.chars().any(|c| c.is_whitespace() || c.is_control());
    (scheme_ok && rest_ok).then(|| s.to_string())
}

/// BEP 12 tiers; `announce` alone when there is no usable `announce-list`.
fn trackers(root: &Dict) -> Vec<Vec<String>> {
    let mut seen = HashSet::new();
    let mut tiers = Vec::new();
    if let Some(Value::List(list)) = root.get(&b"announce-list"[..]) {
        for tier in list {
            let Value::List(urls) = tier else { continue };
            let mut kept = Vec::new();
            for url in urls.iter().filter_map(valid_url) {
                if seen.len() < MAX_URLS && seen.insert(url.clone()) {
                    kept.push(url);
                }
            }
            if !kept.is_empty() {
                tiers.push(kept);
            }
        }
    }
    if tiers.is_empty() {
        if let Some(url) = root.get(&b"announce"[..]).and_then(valid_url) {
            tiers.push(vec![url]);
        }
    }
    tiers
}

/// BEP 19 `url-list`: one string or a list of strings.
fn url_list(v: Option<&Value>) -> Vec<String> {
    let candidates: Vec<&Value> = match v {
        Some(Value::List(l)) => l.iter().collect(),
        Some(s @ Value::ByteStr(_)) => vec![s],
        _ => Vec::new(),
    };
    let mut seen = HashSet::new();
    candidates.into_iter().filter_map(valid_url).filter(|u| seen.insert(u.clone())).take(MAX_URLS).collect()
}
