//! Parsing .torrent files (BEP 3): v1 single- and multi-file torrents and the v1 side of hybrid
//! v1+v2 torrents, with trackers (BEP 12), web seeds (BEP 19), private flag (BEP 27) and file
//! attributes (BEP 47).
//!
//! The info-hash is the SHA-1 of the `info` value's bytes exactly as they appear in the file,
//! even when its keys are not sorted. `bt_bencode` hands those bytes over: deserialising a field
//! as `&[u8]` (`serde_bytes`) makes it return the raw encoding of a dictionary instead of
//! decoding it. Every input first passes [`crate::bencode::check`], which keeps `bt_bencode`
//! away from the inputs that make it panic or overflow the stack.

mod error;
mod info;
pub(crate) mod path;
#[cfg(test)]
mod tests;
mod value;

use std::collections::HashSet;

use bt_bencode::Value;
use sha1::{Digest, Sha1};

use crate::types::InfoHash;

pub use error::{MetainfoError, MAX_FILES, MAX_PIECES, MAX_PIECE_LENGTH, MAX_URLS};
pub use info::{FileAttr, FileEntry, Info};
use value::{decode_error, decode_value, int_as_i64, Dict};

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
