//! Knowledge: statements about torrents (tags, content items, Dublin Core facts), Tribler's
//! knowledge graph kept in the metadata store.
//!
//! A statement links a subject (a torrent, by its hex info-hash) to an object (a tag, a
//! content item…) whose resource type is the statement's predicate. Nobody writes a statement
//! directly: peers sign operations on it (add or remove), each with a Lamport clock that counts
//! that peer's operations on that statement. A peer's newer operation replaces its older one
//! and moves the statement's counters; an operation not newer than the stored one is ignored.
//! The user's own operations are authoritative locally (`local_operation`); other statements
//! are shown once their score (adds − removes) reaches 1, and the ones between shown and
//! hidden are the tag suggestions. Our rules' statements are added under the key
//! `auto_generated`, with clock 0 and no signature, as Tribler's rules processor adds them.

use std::collections::BTreeSet;

use rusqlite::{params, OptionalExtension};

use super::db::Db;
use super::rules;
use super::statement::{Operation, Statement, StatementOp, AUTO_GENERATED_KEY, CONTENT_ITEM, TAG, TORRENT};

/// Score from which a statement nobody local decided on is shown (Tribler's `SHOW_THRESHOLD`);
/// scores above `HIDE_THRESHOLD` (−2) and below this are suggestions.
const SHOW_THRESHOLD: i64 = 1;

/// SQL: statement `st` is shown (the user added it, or the user said nothing and its score
/// reaches [`SHOW_THRESHOLD`]).
const SHOWN: &str =
    "(st.local_operation = 1 OR (st.local_operation IS NULL AND st.added_count - st.removed_count >= 1))";

/// What a PATCH changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub added: usize,
    pub removed: usize,
}

impl Db {
    /// The id of resource `(name, type)`, made if new.
    fn resource(&self, name: &str, ty: i64) -> rusqlite::Result<i64> {
        let found = self
            .conn
            .prepare_cached("SELECT id FROM resource WHERE name = ?1 AND type = ?2")?
            .query_row(params![name, ty], |r| r.get(0))
            .optional()?;
        match found {
            Some(id) => Ok(id),
            None => {
                self.conn
                    .prepare_cached("INSERT INTO resource (name, type) VALUES (?1, ?2)")?
                    .execute(params![name, ty])?;
                Ok(self.conn.last_insert_rowid())
            }
        }
    }

    /// The id of the statement linking two resources, made if new.
    fn statement(&self, subject: i64, object: i64) -> rusqlite::Result<i64> {
        let found = self
            .conn
            .prepare_cached("SELECT id FROM statement WHERE subject = ?1 AND object = ?2")?
            .query_row(params![subject, object], |r| r.get(0))
            .optional()?;
        match found {
            Some(id) => Ok(id),
            None => {
                self.conn
                    .prepare_cached("INSERT INTO statement (subject, object) VALUES (?1, ?2)")?
                    .execute(params![subject, object])?;
                Ok(self.conn.last_insert_rowid())
            }
        }
    }

    /// Moves a statement's counters by `increment` for `operation`; the user's operation also
    /// becomes the local decision.
    fn count(&self, statement: i64, operation: i64, increment: i64, local: bool) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE statement SET \
                 local_operation = CASE WHEN ?4 THEN ?2 ELSE local_operation END, \
                 added_count = added_count + CASE WHEN ?2 = 1 THEN ?3 ELSE 0 END, \
                 removed_count = removed_count + CASE WHEN ?2 = 2 THEN ?3 ELSE 0 END \
                 WHERE id = ?1",
            )?
            .execute(params![statement, operation, increment, local])?;
        Ok(())
    }

    /// Applies a signed operation (Tribler's `add_operation`): the creator's first operation on
    /// the statement counts `increment`; a later one with a higher clock replaces it (its count
    /// is taken back); one with a clock not above the stored one is ignored. Returns whether
    /// the operation was applied.
    pub fn add_operation(
        &self,
        op: &StatementOp,
        signature: &[u8],
        local: bool,
        increment: i64,
        now: i64,
    ) -> rusqlite::Result<bool> {
        let subject = self.resource(op.subject, op.subject_type)?;
        let object = self.resource(op.object, op.predicate)?;
        let statement = self.statement(subject, object)?;
        let auto = op.creator == AUTO_GENERATED_KEY;
        let previous: Option<(i64, i64)> = self
            .conn
            .prepare_cached("SELECT operation, clock FROM statement_op WHERE statement = ?1 AND peer = ?2")?
            .query_row(params![statement, op.creator], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        match previous {
            None => {
                self.conn
                    .prepare_cached(
                        "INSERT INTO statement_op (statement, peer, operation, clock, signature, updated_at, auto_generated) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    )?
                    .execute(params![statement, op.creator, op.operation as i64, op.clock, signature, now, auto])?;
            }
            // A message from the past.
            Some((_, clock)) if op.clock <= clock => return Ok(false),
            Some((before, _)) => {
                self.count(statement, before, -increment, local)?;
                self.conn
                    .prepare_cached(
                        "UPDATE statement_op SET operation = ?3, clock = ?4, signature = ?5, updated_at = ?6, \
                         auto_generated = ?7 WHERE statement = ?1 AND peer = ?2",
                    )?
                    .execute(params![statement, op.creator, op.operation as i64, op.clock, signature, now, auto])?;
            }
        }
        self.count(statement, op.operation as i64, increment, local)?;
        Ok(true)
    }

    /// The clock of `creator`'s last operation on a statement, 0 if none.
    fn clock(&self, subject: &str, predicate: i64, object: &str, creator: &[u8]) -> rusqlite::Result<i64> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT op.clock FROM statement_op op JOIN statement st ON st.id = op.statement \
                 JOIN resource s ON s.id = st.subject JOIN resource o ON o.id = st.object \
                 WHERE s.name = ?1 AND s.type = ?2 AND o.name = ?3 AND o.type = ?4 AND op.peer = ?5",
            )?
            .query_row(params![subject, TORRENT, object, predicate, creator], |r| r.get(0))
            .optional()?
            .unwrap_or(0))
    }

    /// The shown statements about a torrent, highest score first.
    pub fn statements(&self, infohash_hex: &str) -> rusqlite::Result<Vec<Statement>> {
        let sql = format!(
            "SELECT o.type, o.name FROM resource s JOIN statement st ON st.subject = s.id \
             JOIN resource o ON o.id = st.object WHERE s.name = ?1 AND s.type = ?2 AND {SHOWN} \
             ORDER BY st.added_count - st.removed_count DESC, st.id"
        );
        self.conn
            .prepare_cached(&sql)?
            .query_map(params![infohash_hex, TORRENT], |r| {
                Ok(Statement { subject: infohash_hex.to_string(), predicate: r.get(0)?, object: r.get(1)? })
            })?
            .collect()
    }

    /// Replaces the user's statements about a torrent with `wanted` (Tribler's PATCH): what is
    /// shown and not wanted gets a signed remove, what is wanted and not shown a signed add,
    /// each with the user's clock on that statement plus one. All or nothing.
    pub fn set_statements(&self, infohash_hex: &str, wanted: &[(i64, String)], now: i64) -> rusqlite::Result<Changes> {
        let old: BTreeSet<(i64, String)> =
            self.statements(infohash_hex)?.into_iter().map(|s| (s.predicate, s.object)).collect();
        let new: BTreeSet<(i64, String)> = wanted.iter().cloned().collect();
        self.conn.execute_batch("SAVEPOINT set_statements")?;
        let result = (|| {
            let mut changes = Changes::default();
            let ops = new
                .difference(&old)
                .map(|s| (s, Operation::Add))
                .chain(old.difference(&new).map(|s| (s, Operation::Remove)));
            for ((predicate, object), operation) in ops {
                let clock = self.clock(infohash_hex, *predicate, object, &self.signer.public_key)? + 1;
                let op = StatementOp {
                    subject_type: TORRENT,
                    subject: infohash_hex,
                    predicate: *predicate,
                    object,
                    operation,
                    clock,
                    creator: &self.signer.public_key,
                };
                let signature = op.sign(&self.signer.key);
                self.add_operation(&op, &signature, true, 1, now)?;
                match operation {
                    Operation::Add => changes.added += 1,
                    Operation::Remove => changes.removed += 1,
                }
            }
            Ok(changes)
        })();
        match result {
            Ok(c) => {
                self.conn.execute_batch("RELEASE set_statements")?;
                Ok(c)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK TO set_statements; RELEASE set_statements");
                Err(e)
            }
        }
    }

    /// Tag suggestions for a torrent (Tribler's): tags the user has not decided on whose
    /// score is between hidden and shown (−1 to 0), that is, tags others added and removed.
    pub fn tag_suggestions(&self, infohash_hex: &str) -> rusqlite::Result<Vec<String>> {
        self.conn
            .prepare_cached(
                "SELECT o.name FROM resource s JOIN statement st ON st.subject = s.id \
                 JOIN resource o ON o.id = st.object WHERE s.name = ?1 AND s.type = ?2 AND o.type = ?3 \
                 AND st.local_operation IS NULL AND st.added_count - st.removed_count BETWEEN -1 AND 0 \
                 ORDER BY st.added_count - st.removed_count DESC, st.id",
            )?
            .query_map(params![infohash_hex, TORRENT, TAG], |r| r.get(0))?
            .collect()
    }

    /// Adds one of our rules' statements (Tribler's `add_auto_generated`).
    fn add_auto_generated(&self, infohash_hex: &str, predicate: i64, object: &str, now: i64) -> rusqlite::Result<bool> {
        let op = StatementOp {
            subject_type: TORRENT,
            subject: infohash_hex,
            predicate,
            object,
            operation: Operation::Add,
            clock: 0,
            creator: AUTO_GENERATED_KEY,
        };
        self.add_operation(&op, &[], false, SHOW_THRESHOLD, now)
    }

    /// Runs our rules over a torrent's name: its general tags and content items become
    /// auto-generated statements, and its entries record the rules' version. Returns how many
    /// statements were new.
    pub fn apply_rules(&self, infohash: &[u8], title: &str, now: i64) -> rusqlite::Result<usize> {
        let added = self.rule_statements(infohash, title, now)?;
        self.conn
            .prepare_cached("UPDATE torrent SET tag_processor_version = ?2 WHERE infohash = ?1")?
            .execute(params![infohash, rules::VERSION])?;
        Ok(added)
    }

    /// Our rules' statements about a torrent's name, without marking its entries: a new entry
    /// is written with the rules' version already (one row write per add, not two).
    pub fn rule_statements(&self, infohash: &[u8], title: &str, now: i64) -> rusqlite::Result<usize> {
        let hex = data_encoding::HEXLOWER.encode(infohash);
        let mut added = 0;
        for tag in rules::general_tags(title) {
            added += usize::from(self.add_auto_generated(&hex, TAG, &tag, now)?);
        }
        for item in rules::content_items(title) {
            added += usize::from(self.add_auto_generated(&hex, CONTENT_ITEM, &item, now)?);
        }
        Ok(added)
    }

    /// Runs the rules over up to `limit` entries after row `after` that an older version of
    /// the rules (or none) processed. Returns the last row seen when there may be more.
    pub fn apply_rules_backlog(&self, after: i64, limit: i64, now: i64) -> rusqlite::Result<Option<i64>> {
        // The file's `user_version` holds the rules version every entry has seen, so a start
        // does not scan a million entries to find none behind.
        let done: i64 = self.conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if after == 0 && done >= rules::VERSION {
            return Ok(None);
        }
        let rows: Vec<(i64, Vec<u8>, String)> = self
            .conn
            .prepare_cached(
                "SELECT rowid, infohash, title FROM torrent WHERE rowid > ?1 AND tag_processor_version < ?2 \
                 ORDER BY rowid LIMIT ?3",
            )?
            .query_map(params![after, rules::VERSION, limit], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (_, infohash, title) in &rows {
            self.apply_rules(infohash, title, now)?;
        }
        if rows.len() as i64 == limit {
            return Ok(rows.last().map(|r| r.0));
        }
        self.conn.execute_batch(&format!("PRAGMA user_version = {}", rules::VERSION))?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{SigningKey, Verifier};
    use std::path::Path;

    const IH: &str = "0101010101010101010101010101010101010101";

    fn db() -> Db {
        Db::open(Path::new(":memory:"), SigningKey::from_bytes(&[3; 32])).unwrap()
    }

    fn tags(d: &Db, ih: &str) -> Vec<(i64, String)> {
        d.statements(ih).unwrap().into_iter().map(|s| (s.predicate, s.object)).collect()
    }

    fn tag(o: &str) -> (i64, String) {
        (TAG, o.to_string())
    }

    fn facts(n: u8, title: &str) -> super::super::entry::TorrentFacts {
        super::super::entry::TorrentFacts {
            infohash: [n; 20],
            title: title.into(),
            size: 1,
            torrent_date: 0,
            tracker_info: String::new(),
            category: "Other",
            xxx: false,
        }
    }

    fn search(d: &Db, q: &[(&str, &str)]) -> Vec<(String, Vec<String>)> {
        let pairs: Vec<(String, String)> = q.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        let p = super::super::query::SearchParams::parse(&pairs).unwrap();
        let page = d.search(&p, None).unwrap();
        page.entries.into_iter().map(|e| (e.title, e.statements.into_iter().map(|s| s.object).collect())).collect()
    }

    #[test]
    fn search_by_tags_is_an_intersection_without_case_and_entries_carry_statements() {
        let mut d = db();
        d.record_many(&[facts(1, "one"), facts(2, "two"), facts(3, "three")], 1).unwrap();
        let hex = |n: u8| data_encoding::HEXLOWER.encode(&[n; 20]);
        d.set_statements(&hex(1), &[tag("linux"), tag("Sample")], 1).unwrap();
        d.set_statements(&hex(2), &[tag("linux")], 1).unwrap();
        d.set_statements(&hex(3), &[tag("porn"), tag("music")], 1).unwrap();
        let names = |q: &[(&str, &str)]| search(&d, q).into_iter().map(|(n, _)| n).collect::<Vec<_>>();
        assert_eq!(names(&[("tags", "linux")]), ["two", "one"]);
        assert_eq!(names(&[("tags", "LINUX"), ("tags", "sample")]), ["one"]);
        assert_eq!(names(&[("tags", "linux"), ("tags", "music")]), Vec::<String>::new(), "no torrent has both");
        assert_eq!(names(&[("tags", "nothing")]), Vec::<String>::new(), "an unknown tag matches nothing");
        assert_eq!(names(&[("tags", "linux"), ("txt_filter", "two")]), ["two"]);
        // A removed tag no longer matches.
        d.set_statements(&hex(2), &[], 2).unwrap();
        assert_eq!(names(&[("tags", "linux")]), ["one"]);
        // Every entry carries its shown statements; hide_xxx hides adult ones.
        let all = search(&d, &[]);
        assert_eq!(all[0], ("three".to_string(), vec!["music".to_string(), "porn".to_string()]));
        assert_eq!(all[2], ("one".to_string(), vec!["Sample".to_string(), "linux".to_string()]));
        assert_eq!(search(&d, &[("hide_xxx", "1")])[0].1, ["music"]);
    }

    #[test]
    fn the_backlog_catches_up_on_entries_the_rules_never_saw() {
        let mut d = db();
        let all: Vec<_> = (1..=5).map(|n| facts(n, &format!("debian-1{n}.0.0-amd64-netinst.iso"))).collect();
        d.record_many(&all, 1).unwrap();
        assert_eq!(d.apply_rules_backlog(0, 2, 1).unwrap(), Some(2));
        assert_eq!(d.apply_rules_backlog(2, 2, 1).unwrap(), Some(4));
        assert_eq!(d.apply_rules_backlog(4, 2, 1).unwrap(), None);
        assert_eq!(d.apply_rules_backlog(0, 2, 1).unwrap(), None, "nothing left");
        let e = &search(&d, &[("txt_filter", "debian")]);
        assert_eq!(e.len(), 5);
        assert!(
            e.iter()
                .all(|(n, s)| s.len() == 2 && s[0] == "iso" && s[1].starts_with("Debian 1") && n.contains(&s[1][7..])),
            "{e:?}"
        );
        assert_eq!(
            d.search(&super::super::query::SearchParams::parse(&[]).unwrap(), None).unwrap().entries[0]
                .tag_processor_version,
            rules::VERSION
        );
    }

    #[test]
    fn the_signed_bytes_are_tribler_s_layout() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let pk = key.verifying_key().to_bytes();
        let op = StatementOp {
            subject_type: TORRENT,
            subject: "ab",
            predicate: TAG,
            object: "été",
            operation: Operation::Remove,
            clock: 7,
            creator: &pk,
        };
        let b = op.bytes();
        let mut want = Vec::new();
        want.extend_from_slice(&102i64.to_be_bytes());
        want.extend_from_slice(&[0, 2, b'a', b'b']);
        want.extend_from_slice(&101i64.to_be_bytes());
        want.extend_from_slice(&[0, 5]);
        want.extend_from_slice("été".as_bytes());
        want.extend_from_slice(&2i64.to_be_bytes());
        want.extend_from_slice(&7i64.to_be_bytes());
        want.extend_from_slice(&pk);
        assert_eq!(b, want);
        let sig = ed25519_dalek::Signature::from_bytes(&op.sign(&key));
        assert!(key.verifying_key().verify(&b, &sig).is_ok());
    }

    #[test]
    fn patch_diffs_into_signed_operations_with_clocks() {
        let d = db();
        let c = d.set_statements(IH, &[tag("linux"), tag("sample")], 1).unwrap();
        assert_eq!(c, Changes { added: 2, removed: 0 });
        assert_eq!(tags(&d, IH), [tag("linux"), tag("sample")]);
        // The same set again changes nothing.
        assert_eq!(d.set_statements(IH, &[tag("sample"), tag("linux")], 2).unwrap(), Changes::default());
        // Dropping one removes it; adding it back is the user's third operation on it.
        assert_eq!(d.set_statements(IH, &[tag("linux")], 3).unwrap(), Changes { added: 0, removed: 1 });
        assert_eq!(tags(&d, IH), [tag("linux")]);
        d.set_statements(IH, &[tag("linux"), tag("sample")], 4).unwrap();
        let (clock, op, sig): (i64, i64, Vec<u8>) = d
            .conn
            .query_row(
                "SELECT op.clock, op.operation, op.signature FROM statement_op op JOIN statement st ON st.id = op.statement \
                 JOIN resource o ON o.id = st.object WHERE o.name = 'sample'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((clock, op), (3, 1));
        // The stored signature covers that operation, with the user's key.
        let signed = StatementOp {
            subject_type: TORRENT,
            subject: IH,
            predicate: TAG,
            object: "sample",
            operation: Operation::Add,
            clock: 3,
            creator: &d.signer.public_key,
        };
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&d.signer.public_key).unwrap();
        assert!(vk.verify(&signed.bytes(), &ed25519_dalek::Signature::from_slice(&sig).unwrap()).is_ok());
        // Counters moved, never piled up: one add each.
        let (added, removed): (i64, i64) = d
            .conn
            .query_row("SELECT sum(added_count), sum(removed_count) FROM statement", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!((added, removed), (2, 0));
    }

    #[test]
    fn an_operation_from_the_past_is_ignored() {
        let d = db();
        let other = [5u8; 32];
        let op = |operation, clock| StatementOp {
            subject_type: TORRENT,
            subject: IH,
            predicate: TAG,
            object: "music",
            operation,
            clock,
            creator: &other,
        };
        assert!(d.add_operation(&op(Operation::Add, 2), &[1], false, 1, 0).unwrap());
        assert!(!d.add_operation(&op(Operation::Remove, 2), &[1], false, 1, 0).unwrap(), "same clock");
        assert!(!d.add_operation(&op(Operation::Remove, 1), &[1], false, 1, 0).unwrap(), "older clock");
        assert_eq!(tags(&d, IH), [tag("music")]);
        // A newer remove from that peer: score 0, nobody local decided: a suggestion.
        assert!(d.add_operation(&op(Operation::Remove, 3), &[1], false, 1, 0).unwrap());
        assert!(tags(&d, IH).is_empty());
        assert_eq!(d.tag_suggestions(IH).unwrap(), ["music"]);
        // Once the user decides, it is no longer a suggestion.
        d.set_statements(IH, &[tag("music")], 1).unwrap();
        assert_eq!(tags(&d, IH), [tag("music")]);
        assert!(d.tag_suggestions(IH).unwrap().is_empty());
    }

    #[test]
    fn rules_statements_are_auto_generated_and_the_user_overrides_them() {
        let d = db();
        let ih = [1u8; 20];
        assert_eq!(d.apply_rules(&ih, "ubuntu-22.04.3-desktop-amd64.iso", 1).unwrap(), 2);
        assert_eq!(d.apply_rules(&ih, "ubuntu-22.04.3-desktop-amd64.iso", 2).unwrap(), 0, "once");
        assert_eq!(tags(&d, IH), [tag("iso"), (CONTENT_ITEM, "Ubuntu 22.04".into())]);
        let (peer, sig, auto): (Vec<u8>, Vec<u8>, bool) = d
            .conn
            .query_row("SELECT peer, signature, auto_generated FROM statement_op LIMIT 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!((peer.as_slice(), sig.len(), auto), (AUTO_GENERATED_KEY, 0, true));
        // The user's editor keeps the content item and drops the tag: the tag is hidden.
        let c = d.set_statements(IH, &[(CONTENT_ITEM, "Ubuntu 22.04".into()), tag("linux")], 3).unwrap();
        assert_eq!(c, Changes { added: 1, removed: 1 });
        assert_eq!(tags(&d, IH), [(CONTENT_ITEM, "Ubuntu 22.04".into()), tag("linux")]);
        assert!(d.tag_suggestions(IH).unwrap().is_empty(), "the user decided on iso");
    }
}
