//! A torrent metadata entry (Tribler's type 300): what the store keeps, what gets signed, and
//! how the REST API shows it.

use data_encoding::HEXLOWER;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Map, Value};
use shoal_core::Metainfo;

use super::category;
use super::flavor::Flavor;
use super::statement::Statement;

/// Tribler's metadata type of a regular torrent.
pub const REGULAR_TORRENT: u16 = 300;
/// Tribler's status of an entry that is final (`COMMITTED`).
pub const COMMITTED: i64 = 2;

/// What a torrent contributes to a new entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TorrentFacts {
    pub infohash: [u8; 20],
    pub title: String,
    pub size: u64,
    /// The torrent's `creation date` (unix s), 0 when it has none.
    pub torrent_date: u64,
    /// The first tracker's announce URL, `""` for a trackerless torrent.
    pub tracker_info: String,
    pub category: &'static str,
    pub xxx: bool,
}

impl TorrentFacts {
    /// The facts of a parsed torrent (category from its files, by our rules).
    pub fn of(meta: &Metainfo) -> TorrentFacts {
        let files: Vec<(String, u64)> =
            meta.info.files.iter().filter(|f| !f.is_pad()).map(|f| (f.path.join("/"), f.length)).collect();
        let category = category::categorize(&meta.info.name, files.iter().map(|(p, l)| (p.as_str(), *l)));
        TorrentFacts {
            infohash: meta.info_hash.0,
            title: meta.info.name.clone(),
            size: meta.info.total_length,
            torrent_date: meta.creation_date.and_then(|d| u64::try_from(d).ok()).unwrap_or(0),
            tracker_info: meta.trackers.iter().flatten().next().cloned().unwrap_or_default(),
            category,
            xxx: category == "xxx",
        }
    }
}

/// The signed part of an entry, in the field order of Tribler's `TorrentMetadataPayload`.
pub struct Signable<'a> {
    pub public_key: &'a [u8; 32],
    pub id: i64,
    pub origin_id: i64,
    pub timestamp: u64,
    pub facts: &'a TorrentFacts,
}

impl Signable<'_> {
    /// The exact bytes that are signed, big-endian as Python's `struct` packs Tribler's payload:
    /// `metadata_type` u16 (300), `reserved_flags` u16 (0), `public_key` (32 bytes, ed25519;
    /// Tribler's is a 74-byte LibNaCL key), `id` u64, `origin_id` u64, `timestamp` u64,
    /// `infohash` (20 bytes), `size` u64, `torrent_date` u32 (saturated), then `title`,
    /// `tags` (the category) and `tracker_info`, each as a u32 length and its UTF-8 bytes.
    pub fn bytes(&self) -> Vec<u8> {
        let f = self.facts;
        let mut out = Vec::with_capacity(128 + f.title.len() + f.tracker_info.len());
        out.extend_from_slice(&REGULAR_TORRENT.to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(self.public_key);
        out.extend_from_slice(&(self.id as u64).to_be_bytes());
        out.extend_from_slice(&(self.origin_id as u64).to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&f.infohash);
        out.extend_from_slice(&f.size.to_be_bytes());
        out.extend_from_slice(&u32::try_from(f.torrent_date).unwrap_or(u32::MAX).to_be_bytes());
        for text in [f.title.as_str(), f.category, f.tracker_info.as_str()] {
            // Names come from parsed torrents, far below 4 GiB; saturate rather than wrap.
            out.extend_from_slice(&u32::try_from(text.len()).unwrap_or(u32::MAX).to_be_bytes());
            out.extend_from_slice(text.as_bytes());
        }
        out
    }

    /// The ed25519 signature of [`Signable::bytes`].
    pub fn sign(&self, key: &SigningKey) -> [u8; 64] {
        key.sign(&self.bytes()).to_bytes()
    }
}

/// An entry as read back for the REST API.
#[derive(Clone, Debug)]
pub struct Entry {
    pub infohash: Vec<u8>,
    pub public_key: Vec<u8>,
    pub id: i64,
    pub origin_id: i64,
    pub status: i64,
    pub title: String,
    pub size: i64,
    pub category: String,
    pub torrent_date: i64,
    pub seeders: i64,
    pub leechers: i64,
    pub last_check: i64,
    /// The version of our rules that extracted the entry's statements (0: not yet).
    pub tag_processor_version: i64,
    /// The shown statements about the torrent.
    pub statements: Vec<Statement>,
}

impl Entry {
    /// The entry's JSON object in `flavor`'s field order, with its `statements`.
    pub fn to_json(&self, flavor: Flavor) -> Value {
        let head = [
            ("type", json!(REGULAR_TORRENT)),
            ("id", json!(self.id)),
            ("origin_id", json!(self.origin_id)),
            ("public_key", json!(HEXLOWER.encode(&self.public_key))),
            ("status", json!(self.status)),
        ];
        let body = [
            ("name", json!(self.title)),
            ("category", json!(self.category)),
            ("infohash", json!(HEXLOWER.encode(&self.infohash))),
            ("size", json!(self.size)),
            ("num_seeders", json!(self.seeders)),
            ("num_leechers", json!(self.leechers)),
            ("last_tracker_check", json!(self.last_check)),
            ("created", json!(self.torrent_date)),
            ("tag_processor_version", json!(self.tag_processor_version)),
        ];
        let mut m = Map::new();
        let fields: Vec<(&str, Value)> = match flavor {
            Flavor::Release => head.into_iter().chain(body).collect(),
            Flavor::PyPi => body.into_iter().chain(head).collect(),
        };
        for (k, v) in fields {
            m.insert(k.to_string(), v);
        }
        m.insert("statements".into(), self.statements.iter().map(|s| s.to_json(flavor)).collect());
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Verifier;

    #[test]
    fn signature_covers_the_documented_bytes() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let pk = key.verifying_key().to_bytes();
        let facts = TorrentFacts {
            infohash: [1; 20],
            title: "ab".into(),
            size: 5,
            torrent_date: 9,
            tracker_info: String::new(),
            category: "Other",
            xxx: false,
        };
        let s = Signable { public_key: &pk, id: 3, origin_id: 0, timestamp: 4, facts: &facts };
        let bytes = s.bytes();
        assert_eq!(&bytes[..4], &[0x01, 0x2c, 0, 0]);
        assert_eq!(bytes.len(), 4 + 32 + 24 + 20 + 8 + 4 + (4 + 2) + (4 + 5) + 4);
        let sig = ed25519_dalek::Signature::from_bytes(&s.sign(&key));
        assert!(key.verifying_key().verify(&bytes, &sig).is_ok());
    }
}
