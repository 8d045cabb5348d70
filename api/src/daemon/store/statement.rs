//! Knowledge statements: the resource types and bounds of Tribler's knowledge graph, the
//! signed operations peers send on a statement, and the shown statements entries carry.
//! (The statements' storage and scores are in [`super::knowledge`].)

use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Map, Value};

use super::flavor::Flavor;

/// The shortest and longest object of a statement, in characters (Tribler's bounds).
pub const MIN_RESOURCE_LENGTH: usize = 2;
/// See [`MIN_RESOURCE_LENGTH`].
pub const MAX_RESOURCE_LENGTH: usize = 50;
/// The most statements one request may set for a torrent. Tribler has no bound; the GUI's
/// editor sends a few tags and four metadata fields, so a thousand leaves room for any person
/// and stops a body of ten thousand before anything is signed or stored.
pub const MAX_STATEMENTS: usize = 1_000;

/// Tribler's `ResourceType` of a torrent (a subject).
pub const TORRENT: i64 = 102;
/// Tribler's `ResourceType` of a tag.
pub const TAG: i64 = 101;
/// Tribler's `ResourceType` of a content item ("Ubuntu 22.04").
pub const CONTENT_ITEM: i64 = 103;

/// The creator of the rules' statements, as Tribler names it.
pub const AUTO_GENERATED_KEY: &[u8] = b"auto_generated";

/// SQL for a search's `tags=` filter, one clause per tag, its one parameter the tag: torrent
/// `t` has a shown TAG statement with this object (without case, as Tribler's search).
pub const TAGGED: &str = "t.infohash IN (SELECT unhex(s.name) FROM resource o \
     JOIN statement st ON st.object = o.id JOIN resource s ON s.id = st.subject \
     WHERE o.type = 101 AND lower(o.name) = lower(?) AND s.type = 102 AND \
     (st.local_operation = 1 OR (st.local_operation IS NULL AND st.added_count - st.removed_count >= 1)))";

/// Whether `p` is a predicate a statement may have: Dublin Core's 1–15, TAG or CONTENT_ITEM.
pub fn is_predicate(p: i64) -> bool {
    (1..=15).contains(&p) || p == TAG || p == CONTENT_ITEM
}

/// What an operation does to a statement (Tribler's `Operation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Add = 1,
    Remove = 2,
}

/// One operation on a statement: what gets signed, in the field order of Tribler's
/// `StatementOperation`.
pub struct StatementOp<'a> {
    pub subject_type: i64,
    pub subject: &'a str,
    pub predicate: i64,
    pub object: &'a str,
    pub operation: Operation,
    pub clock: i64,
    pub creator: &'a [u8],
}

impl StatementOp<'_> {
    /// The exact bytes that are signed, as py-ipv8 packs Tribler's payload: `subject_type`
    /// i64, `subject` (u16 length + UTF-8), `predicate` i64, `object` (u16 length + UTF-8),
    /// `operation` i64, `clock` i64, all big-endian, then the creator's public key. Tribler's
    /// key is 74 bytes (`LibNaCLPK:` + Curve25519 key + ed25519 key); ours is the user's
    /// 32-byte ed25519 key, the one that signs the user's entries.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(48 + self.subject.len() + self.object.len() + self.creator.len());
        out.extend_from_slice(&self.subject_type.to_be_bytes());
        for (i, text) in [self.subject, self.object].into_iter().enumerate() {
            if i == 1 {
                out.extend_from_slice(&self.predicate.to_be_bytes());
            }
            // Subjects are 40 hex digits and objects at most 50 characters (≤ 200 bytes).
            out.extend_from_slice(&u16::try_from(text.len()).unwrap_or(u16::MAX).to_be_bytes());
            out.extend_from_slice(text.as_bytes());
        }
        out.extend_from_slice(&(self.operation as i64).to_be_bytes());
        out.extend_from_slice(&self.clock.to_be_bytes());
        out.extend_from_slice(self.creator);
        out
    }

    /// The ed25519 signature of [`StatementOp::bytes`].
    pub fn sign(&self, key: &SigningKey) -> [u8; 64] {
        key.sign(&self.bytes()).to_bytes()
    }
}

/// A shown statement about a torrent, as entries carry it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// The torrent's hex info-hash.
    pub subject: String,
    pub predicate: i64,
    pub object: String,
}

impl Statement {
    /// The statement's JSON object in `flavor`'s field order (the PyPI build's
    /// subject/predicate/object; the release's dataclass order object/predicate/subject).
    pub fn to_json(&self, flavor: Flavor) -> Value {
        let mut m = Map::new();
        m.insert("subject_type".into(), json!(TORRENT));
        let fields =
            [("subject", json!(self.subject)), ("predicate", json!(self.predicate)), ("object", json!(self.object))];
        let ordered: Vec<(&str, Value)> = match flavor {
            Flavor::PyPi => fields.into_iter().collect(),
            Flavor::Release => fields.into_iter().rev().collect(),
        };
        for (k, v) in ordered {
            m.insert(k.into(), v);
        }
        Value::Object(m)
    }
}
