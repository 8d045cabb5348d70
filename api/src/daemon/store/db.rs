//! The connection and every statement the store runs. Only the store's thread holds a [`Db`].

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use rand::{Rng, SeedableRng};
use regex::Regex;
use rusqlite::types::Value as Sql;
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, Row};

use super::entry::{Entry, Signable, TorrentFacts, COMMITTED};
use super::query::{SearchParams, SortBy, TextFilter, MAX_WORDS};
use super::schema;
use super::{category, statement};

/// Tribler's window for "recently checked" popular torrents: the last day.
pub const POPULAR_FRESHNESS_SECS: i64 = 24 * 60 * 60;
/// A text search ranks only the newest this many matches (Tribler takes the newest 10,000 and
/// keeps 1,000), so a common word costs no more than a rare one; `total` counts within them.
pub const MAX_MATCHES: i64 = 10_000;
/// Tribler's number of popular torrents considered.
pub const POPULAR_COUNT: i64 = 100;
/// How many completions a prefix gets, and how many names they are drawn from (Tribler's).
const MAX_COMPLETIONS: usize = 5;
const COMPLETION_SOURCES: i64 = 200;

/// The page cache of the connection, in KiB.
const CACHE_KIB: u32 = 128 * 1024;

/// How opening failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The file is not a database or is damaged: it can be moved aside.
    #[error("{0}")]
    Corrupt(rusqlite::Error),
    #[error("{0}")]
    Other(String),
}

impl From<rusqlite::Error> for OpenError {
    fn from(e: rusqlite::Error) -> OpenError {
        if is_corrupt(&e) {
            OpenError::Corrupt(e)
        } else {
            OpenError::Other(e.to_string())
        }
    }
}

/// A page of results.
pub struct Page {
    pub entries: Vec<Entry>,
    /// `(total, max_rowid)` when asked for.
    pub total: Option<(i64, Option<i64>)>,
}

/// The user's key and the source of new entries' ids.
pub struct Signer {
    pub(super) key: SigningKey,
    pub(super) public_key: [u8; 32],
    rng: rand::rngs::StdRng,
}

/// A new entry's id, timestamp and signature.
pub struct Signed {
    id: i64,
    timestamp: u64,
    signature: [u8; 64],
}

impl Signer {
    /// A signer with `key`.
    pub fn new(key: SigningKey) -> Signer {
        let public_key = key.verifying_key().to_bytes();
        Signer { key, public_key, rng: rand::rngs::StdRng::from_os_rng() }
    }

    /// Signs the user's new entry for `facts` made at `now_ms`, with a fresh id (Tribler's ids
    /// are random 63-bit numbers).
    pub fn sign(&mut self, facts: &TorrentFacts, now_ms: u64) -> Signed {
        let id: i64 = self.rng.random_range(1..i64::MAX);
        let signature =
            Signable { public_key: &self.public_key, id, origin_id: 0, timestamp: now_ms, facts }.sign(&self.key);
        Signed { id, timestamp: now_ms, signature }
    }
}

/// The open database and the key that signs new entries.
pub struct Db {
    pub(super) conn: Connection,
    pub(super) signer: Signer,
    path: PathBuf,
}

/// Whether `e` says the database file is damaged (or not a database at all).
pub fn is_corrupt(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase))
}

const ENTRY_COLUMNS: &str = "t.infohash, t.public_key, t.id, t.origin_id, t.status, t.title, t.size, \
     t.category, t.torrent_date, coalesce(h.seeders, 0) AS seeders, coalesce(h.leechers, 0) AS leechers, \
     coalesce(h.last_check, 0) AS last_check, t.tag_processor_version";
/// How many columns [`ENTRY_COLUMNS`] selects: a column after them is at this index.
const ENTRY_COLUMN_COUNT: usize = 13;

fn entry(r: &Row) -> rusqlite::Result<Entry> {
    Ok(Entry {
        infohash: r.get(0)?,
        public_key: r.get(1)?,
        id: r.get(2)?,
        origin_id: r.get(3)?,
        status: r.get(4)?,
        title: r.get(5)?,
        size: r.get(6)?,
        category: r.get(7)?,
        torrent_date: r.get(8)?,
        seeders: r.get(9)?,
        leechers: r.get(10)?,
        last_check: r.get(11)?,
        tag_processor_version: r.get(12)?,
        statements: Vec::new(),
    })
}

impl Db {
    /// Opens (or creates) the database at `path`: WAL journal, schema migrated.
    pub fn open(path: &Path, key: SigningKey) -> Result<Db, OpenError> {
        let mut conn = Connection::open(path)?;
        // WAL: readers never block the writer, and a kill -9 loses no committed transaction.
        // NORMAL sync is safe in WAL mode against process crashes (only a power cut may lose
        // the last transactions, never consistency).
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // 64 MiB of pages (SQLite's default is 2 MiB): the upper levels of the indexes, the
        // full-text index's hot pages and a batch's dirty pages stay in memory, so a search or
        // a burst of adds does not read the same pages again through the kernel.
        conn.pragma_update(None, "cache_size", -(CACHE_KIB as i64))?;
        // Checkpoint every ~40 MiB of WAL rather than every 4 MiB: a page that many commits
        // change is copied back to the database once, not once per commit.
        conn.pragma_update(None, "wal_autocheckpoint", 10_000)?;
        // Statement journals (an insert with its full-text trigger) stay in memory instead of
        // a temporary file written for every add.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        // Searches build their SQL from the parameters; the shapes in use stay prepared.
        conn.set_prepared_statement_cache_capacity(64);
        schema::migrate(&mut conn)?.map_err(OpenError::Other)?;
        // Touch every table so a damaged schema shows now, not on the first search.
        conn.query_row("SELECT count(*) FROM torrent_fts WHERE rowid = 0", [], |_| Ok(()))?;
        Ok(Db { conn, signer: Signer::new(key), path: path.to_path_buf() })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The key that signs new entries.
    pub fn key(&self) -> &SigningKey {
        &self.signer.key
    }

    /// Starts a transaction (the store's thread wraps each batch of jobs in one).
    pub fn begin(&self) -> rusqlite::Result<()> {
        self.conn.execute_batch("BEGIN IMMEDIATE")
    }

    /// The connection, for the statements of sibling modules (the health checker's).
    pub(super) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Commits the transaction of [`Db::begin`], if one is open.
    pub fn commit(&self) -> rusqlite::Result<()> {
        if self.conn.is_autocommit() {
            return Ok(());
        }
        self.conn.execute_batch("COMMIT")
    }

    /// Adds the user's signed entry for a torrent, unless the user has one already. Returns
    /// whether an entry was added.
    #[cfg(test)]
    pub fn record(&mut self, facts: &TorrentFacts, now_ms: u64) -> rusqlite::Result<bool> {
        let signed = self.signer.sign(facts, now_ms);
        // As an older build wrote it: no rules ran over it (the tests' catch-up cases).
        self.insert_row(facts, signed, 0)
    }

    /// Adds the user's entry for a torrent, signed beforehand by [`Signer::sign`] with this
    /// store's key, with our rules' statements about its name, unless the user has an entry
    /// for it already. Returns whether an entry was added.
    pub fn insert(&mut self, facts: &TorrentFacts, signed: Signed, now_secs: i64) -> rusqlite::Result<bool> {
        let added = self.insert_row(facts, signed, super::rules::VERSION)?;
        if added {
            self.rule_statements(&facts.infohash, &facts.title, now_secs)?;
        }
        Ok(added)
    }

    /// Writes an entry's row, marked as seen by version `rules_version` of the rules.
    fn insert_row(&mut self, facts: &TorrentFacts, mut signed: Signed, rules_version: i64) -> rusqlite::Result<bool> {
        let exists = self
            .conn
            .prepare_cached("SELECT 1 FROM torrent WHERE public_key = ?1 AND infohash = ?2")?
            .query_row(params![&self.signer.public_key[..], &facts.infohash[..]], |_| Ok(()))
            .optional()?
            .is_some();
        if exists {
            return Ok(false);
        }
        loop {
            let result = self
                .conn
                .prepare_cached(
                    "INSERT INTO torrent (infohash, public_key, id, origin_id, status, title, size, category, xxx, \
                 torrent_date, tracker_info, timestamp, signature, tag_processor_version) \
                 VALUES (?1, ?2, ?3, 0, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                )?
                .execute(params![
                    &facts.infohash[..],
                    &self.signer.public_key[..],
                    signed.id,
                    COMMITTED,
                    facts.title,
                    i64::try_from(facts.size).unwrap_or(i64::MAX),
                    facts.category,
                    facts.xxx,
                    i64::try_from(facts.torrent_date).unwrap_or(i64::MAX),
                    facts.tracker_info,
                    i64::try_from(signed.timestamp).unwrap_or(i64::MAX),
                    &signed.signature[..],
                    rules_version,
                ]);
            match result {
                Ok(_) => return Ok(true),
                // Ids are random: a clash with one of ours is retried with a new one.
                Err(e) if e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) => {
                    signed = self.signer.sign(facts, signed.timestamp);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// [`Db::record`] for many torrents in one transaction.
    #[cfg(test)]
    pub fn record_many(&mut self, all: &[TorrentFacts], now_ms: u64) -> rusqlite::Result<usize> {
        self.conn.execute_batch("BEGIN")?;
        let mut added = 0;
        for f in all {
            match self.record(f, now_ms) {
                Ok(a) => added += usize::from(a),
                Err(e) => {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    return Err(e);
                }
            }
        }
        self.conn.execute_batch("COMMIT")?;
        Ok(added)
    }

    /// Stores a health check's result for an info-hash. The health checker (issue #15's next
    /// slice) writes through this; until then the tests and the benchmark do.
    #[allow(dead_code)]
    pub fn set_health(&self, infohash: &[u8; 20], seeders: i64, leechers: i64, checked: i64) -> rusqlite::Result<()> {
        self.conn.execute(
            "INSERT INTO health (infohash, seeders, leechers, last_check) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (infohash) DO UPDATE SET seeders = ?2, leechers = ?3, last_check = ?4",
            params![&infohash[..], seeders, leechers, checked],
        )?;
        Ok(())
    }

    /// The filters of `p` as SQL conditions (on `t`) and their values.
    fn filters(p: &SearchParams, sql: &mut Vec<String>, args: &mut Vec<Sql>) {
        if !p.torrents_wanted {
            sql.push("0".into());
        }
        if p.text == TextFilter::Nothing {
            sql.push("0".into());
        }
        if let Some(m) = p.max_rowid {
            sql.push("t.rowid <= ?".into());
            args.push(Sql::Integer(m));
        }
        if let Some(c) = &p.category {
            sql.push("t.category = ?".into());
            args.push(Sql::Text(c.clone()));
        }
        if p.hide_xxx {
            sql.push("t.xxx = 0".into());
        }
        if p.exclude_deleted {
            // 1 = TODELETE in Tribler's status codes.
            sql.push("t.status != 1".into());
        }
        for tag in &p.tags {
            sql.push(statement::TAGGED.into());
            args.push(Sql::Text(tag.clone()));
        }
    }

    /// The ORDER BY of a listing: the asked column, else relevance then health for a text
    /// search, else health for popular torrents, else newest first; the row order breaks ties.
    fn order(p: &SearchParams, health_first: bool) -> String {
        let dir = if p.sort_desc { "DESC" } else { "ASC" };
        let rows = format!("t.rowid {dir}");
        match p.sort_by {
            Some(SortBy::Column(c)) if c == "title" || c == "category" => format!("t.{c} COLLATE NOCASE {dir}, {rows}"),
            Some(SortBy::Column(c)) => format!("t.{c} {dir}, {rows}"),
            Some(SortBy::Health) => format!("seeders {dir}, leechers {dir}, {rows}"),
            Some(SortBy::Constant) => rows,
            None if Self::by_relevance(p) => "f.rank, seeders DESC, leechers DESC, t.rowid DESC".into(),
            None if health_first => "seeders DESC, leechers DESC, last_check DESC, t.rowid DESC".into(),
            None => rows,
        }
    }

    /// Whether the listing is ordered by relevance (a text search with no `sort_by`).
    fn by_relevance(p: &SearchParams) -> bool {
        p.sort_by.is_none() && matches!(p.text, TextFilter::Match(_))
    }

    /// The newest [`MAX_MATCHES`] full-text matches, with their rank only when the order needs
    /// it (bm25 costs as much per row as a join).
    fn matches(ranked: bool) -> String {
        let rank = if ranked { ", rank" } else { "" };
        format!("SELECT rowid{rank} FROM torrent_fts WHERE torrent_fts MATCH ? ORDER BY rowid DESC LIMIT {MAX_MATCHES}")
    }

    /// The tables of a listing: every entry with its health, or only the popular ones; joined
    /// with the newest [`MAX_MATCHES`] full-text matches when there is text.
    fn from_clause(p: &SearchParams, popular: bool) -> String {
        let matches = format!("({}) f", Self::matches(Self::by_relevance(p)));
        let text = matches!(p.text, TextFilter::Match(_));
        match (popular, text) {
            (false, false) => "torrent t LEFT JOIN health h ON h.infohash = t.infohash".into(),
            (false, true) => {
                format!("{matches} JOIN torrent t ON t.rowid = f.rowid LEFT JOIN health h ON h.infohash = t.infohash")
            }
            (true, false) => "popular h JOIN torrent t ON t.infohash = h.infohash".into(),
            (true, true) => {
                format!("popular h JOIN torrent t ON t.infohash = h.infohash JOIN {matches} ON f.rowid = t.rowid")
            }
        }
    }

    /// The `popular` table expression (the healthiest torrents checked since `since`), read
    /// from the `health_popular` index in its order, so only the first few hundred rows are
    /// looked at.
    fn popular_cte(since: i64, args: &mut Vec<Sql>) -> String {
        args.push(Sql::Integer(since));
        format!(
            "popular AS (SELECT infohash, seeders, leechers, last_check FROM health INDEXED BY health_popular \
             WHERE last_check >= ? AND (seeders > 0 OR leechers > 0) \
             ORDER BY seeders DESC, leechers DESC, last_check DESC LIMIT {POPULAR_COUNT})"
        )
    }

    /// One page of entries for `p` (a local search or a listing), with the total if asked.
    /// `popular` limits the entries to the healthiest torrents checked since `now - 1 day`.
    pub fn search(&self, p: &SearchParams, popular: Option<i64>) -> rusqlite::Result<Page> {
        if popular.is_none() && Self::by_relevance(p) {
            let mut page = self.search_by_relevance(p)?;
            self.attach_statements(&mut page.entries, p.hide_xxx)?;
            return Ok(page);
        }
        let mut conds = Vec::new();
        let mut args = Vec::new();
        let with = match popular {
            Some(now) => format!("WITH {} ", Self::popular_cte(now - POPULAR_FRESHNESS_SECS, &mut args)),
            None => String::new(),
        };
        // The text goes to the full-text subquery, which comes before the WHERE.
        if let TextFilter::Match(q) = &p.text {
            args.push(Sql::Text(q.clone()));
        }
        Self::filters(p, &mut conds, &mut args);
        let from = Self::from_clause(p, popular.is_some());
        let cond = if conds.is_empty() { String::new() } else { format!("WHERE {}", conds.join(" AND ")) };
        let (limit, offset) = p.limit_offset();
        let sql = format!(
            "{with}SELECT {ENTRY_COLUMNS} FROM {from} {cond} ORDER BY {} LIMIT {limit} OFFSET {offset}",
            Self::order(p, popular.is_some())
        );
        let mut entries = self
            .conn
            .prepare_cached(&sql)?
            .query_map(rusqlite::params_from_iter(args.iter()), entry)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        self.attach_statements(&mut entries, p.hide_xxx)?;
        let total = if p.include_total {
            // The conditions are on the entry alone: the count needs no health.
            let from = from.replace(" LEFT JOIN health h ON h.infohash = t.infohash", "");
            let count_sql = format!("{with}SELECT count(*) FROM {from} {cond}");
            let total = self
                .conn
                .prepare_cached(&count_sql)?
                .query_row(rusqlite::params_from_iter(args.iter()), |r| r.get(0))?;
            Some((total, self.max_rowid()?))
        } else {
            None
        };
        Ok(Page { entries, total })
    }

    /// Gives each entry of a page its shown statements (without adult tags under `hide_xxx`).
    fn attach_statements(&self, entries: &mut [Entry], hide_xxx: bool) -> rusqlite::Result<()> {
        for e in entries {
            e.statements = self.statements(&data_encoding::HEXLOWER.encode(&e.infohash))?;
            if hide_xxx {
                e.statements.retain(|s| !category::is_xxx(&s.object));
            }
        }
        Ok(())
    }

    /// The newest entry's row id (`max_rowid` of a total).
    fn max_rowid(&self) -> rusqlite::Result<Option<i64>> {
        self.conn.prepare_cached("SELECT max(rowid) FROM torrent")?.query_row([], |r| r.get(0))
    }

    /// A text search in relevance order (rank, then health, then newest), without joining
    /// every match: the matches that pass the filters are ranked on the full-text index alone,
    /// and only those ranked at least as well as the page's last one (ties included, so health
    /// can still order them) are joined with their entry and health. A common word's 10,000
    /// matches thus cost one pass over the index, not 10,000 entry and health lookups. The
    /// total is counted in the same statement, over the same matches.
    fn search_by_relevance(&self, p: &SearchParams) -> rusqlite::Result<Page> {
        let mut args = Vec::new();
        if let TextFilter::Match(q) = &p.text {
            args.push(Sql::Text(q.clone()));
        }
        let mut conds = Vec::new();
        Self::filters(p, &mut conds, &mut args);
        // The matches that pass the filters; without filters, every match.
        let passing = if conds.is_empty() {
            "SELECT rowid, rank FROM f".to_string()
        } else {
            // The filters' columns come from the small `torrent_filter` index, which the planner
            // does not pick by itself over the row id's own b-tree.
            format!(
                "SELECT f.rowid, f.rank FROM f JOIN torrent t INDEXED BY torrent_filter ON t.rowid = f.rowid WHERE {}",
                conds.join(" AND ")
            )
        };
        let (limit, offset) = p.limit_offset();
        // The rank of the page's last entry: nothing ranked worse can be on the page.
        let worst = (limit + offset).max(1) - 1;
        let with = format!(
            "WITH f AS MATERIALIZED ({}), ok AS MATERIALIZED ({passing}), \
             cut AS (SELECT coalesce((SELECT rank FROM ok ORDER BY rank LIMIT 1 OFFSET {worst}), 1e308) AS rank) ",
            Self::matches(true)
        );
        let total_col = if p.include_total { ", (SELECT count(*) FROM ok)" } else { "" };
        let sql = format!(
            "{with}SELECT {ENTRY_COLUMNS}{total_col} FROM ok f JOIN torrent t ON t.rowid = f.rowid \
             LEFT JOIN health h ON h.infohash = t.infohash WHERE f.rank <= (SELECT rank FROM cut) \
             ORDER BY {} LIMIT {limit} OFFSET {offset}",
            Self::order(p, false)
        );
        let mut total = None;
        let entries = self
            .conn
            .prepare_cached(&sql)?
            .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                if p.include_total {
                    total = Some(r.get::<_, i64>(ENTRY_COLUMN_COUNT)?);
                }
                entry(r)
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let total = match (p.include_total, total) {
            (false, _) => None,
            (true, Some(n)) => Some((n, self.max_rowid()?)),
            // An empty page carries no count: count on its own.
            (true, None) => {
                let sql = format!("{with}SELECT count(*) FROM ok");
                let n =
                    self.conn.prepare_cached(&sql)?.query_row(rusqlite::params_from_iter(args.iter()), |r| r.get(0))?;
                Some((n, self.max_rowid()?))
            }
        };
        Ok(Page { entries, total })
    }

    /// Up to five completions of `text` (lower case), Tribler's way: names matching its words
    /// as a prefix, healthiest first, each continued to the end of the word being typed (or
    /// the next word).
    pub fn completions(&self, text: &str) -> rusqlite::Result<Vec<String>> {
        let words: Vec<&str> =
            text.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|w| !w.is_empty()).collect();
        if words.is_empty() || words.len() > MAX_WORDS {
            return Ok(Vec::new());
        }
        let fts = format!("\"{}\"*", words.join(" "));
        let escaped: Vec<String> = words.iter().map(|w| regex::escape(w)).collect();
        let Ok(re) = Regex::new(&format!(r"{}(\W*)((?:[.-]?\w)*)", escaped.join(r"\W+"))) else {
            return Ok(Vec::new());
        };
        let mut stmt = self.conn.prepare(
            "SELECT t.title FROM torrent t LEFT JOIN health h ON h.infohash = t.infohash \
             WHERE t.rowid IN (SELECT rowid FROM torrent_fts WHERE torrent_fts MATCH ?1 ORDER BY rowid DESC LIMIT ?2) \
             ORDER BY coalesce(h.seeders, 0) DESC, t.rowid DESC",
        )?;
        let titles = stmt.query_map(params![fts, COMPLETION_SOURCES], |r| r.get::<_, String>(0))?;
        let ends_in_word = text.chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_');
        let mut out: Vec<String> = Vec::new();
        for title in titles {
            let title = title?.to_lowercase();
            let Some(c) = re.captures(&title) else { continue };
            let gap = c.get(1).map_or("", |m| m.as_str());
            let rest = c.get(2).map_or("", |m| m.as_str());
            let continuation = if ends_in_word && !gap.is_empty() { format!("{gap}{rest}") } else { rest.to_string() };
            let suggestion = format!("{text}{continuation}");
            if !out.contains(&suggestion) {
                out.push(suggestion);
                if out.len() >= MAX_COMPLETIONS {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// `(db_size, num_torrents)`: the database's bytes (pages in use, WAL included) and entries.
    pub fn stats(&self) -> rusqlite::Result<(i64, i64)> {
        let pages: i64 = self.conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let page_size: i64 = self.conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let n: i64 = self.conn.query_row("SELECT count(*) FROM torrent", [], |r| r.get(0))?;
        Ok((pages * page_size, n))
    }
}

#[cfg(test)]
mod tests {
    use super::super::query::SearchParams;
    use super::*;
    use ed25519_dalek::Verifier;

    fn db() -> Db {
        Db::open(Path::new(":memory:"), SigningKey::from_bytes(&[3; 32])).unwrap()
    }

    fn facts(n: u8, title: &str, size: u64, category: &'static str) -> TorrentFacts {
        TorrentFacts {
            infohash: [n; 20],
            title: title.into(),
            size,
            torrent_date: 1_700_000_000 + u64::from(n),
            tracker_info: String::new(),
            category,
            xxx: category == "xxx",
        }
    }

    fn params(q: &[(&str, &str)]) -> SearchParams {
        let pairs: Vec<(String, String)> = q.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        SearchParams::parse(&pairs).unwrap()
    }

    fn names(db: &Db, q: &[(&str, &str)]) -> Vec<String> {
        db.search(&params(q), None).unwrap().entries.into_iter().map(|e| e.title).collect()
    }

    fn sample() -> Db {
        let mut d = db();
        let all = [
            facts(1, "ubuntu-22.04.3-desktop-amd64.iso", 5 << 30, "Compressed"),
            facts(2, "Big Buck Bunny 1080p", 700 << 20, "Video"),
            facts(3, "Bunny Tales audiobook", 90 << 20, "Audio"),
            facts(4, "big.buck.bunny.sample.xxx", 10 << 20, "xxx"),
            facts(5, "debian-12.4.0-amd64-netinst.iso", 600 << 20, "Compressed"),
            facts(6, "Ubuntu Server Guide", 5 << 20, "Document"),
        ];
        assert_eq!(d.record_many(&all, 1).unwrap(), all.len());
        d
    }

    #[test]
    fn record_is_signed_and_once_per_torrent() {
        let mut d = sample();
        assert!(!d.record(&facts(1, "ubuntu-22.04.3-desktop-amd64.iso", 5 << 30, "Compressed"), 2).unwrap());
        let (pk, id, ts, sig): (Vec<u8>, i64, i64, Vec<u8>) = d
            .conn
            .query_row(
                "SELECT public_key, id, timestamp, signature FROM torrent WHERE infohash = ?1",
                [&[1u8; 20][..]],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        let f = facts(1, "ubuntu-22.04.3-desktop-amd64.iso", 5 << 30, "Compressed");
        let pk: [u8; 32] = pk.try_into().unwrap();
        let bytes = Signable { public_key: &pk, id, origin_id: 0, timestamp: ts as u64, facts: &f }.bytes();
        let sig = ed25519_dalek::Signature::from_slice(&sig).unwrap();
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&pk).unwrap();
        assert!(vk.verify(&bytes, &sig).is_ok(), "the stored signature covers the documented bytes");
        assert_eq!(d.stats().unwrap().1, 6);
    }

    #[test]
    fn words_phrases_and_prefixes() {
        let d = sample();
        assert_eq!(names(&d, &[("txt_filter", "ubuntu")]).len(), 2);
        assert_eq!(names(&d, &[("txt_filter", "\"buck bunny\"")]).len(), 2);
        assert_eq!(names(&d, &[("txt_filter", "\"bunny buck\"")]), Vec::<String>::new(), "a phrase keeps its order");
        assert_eq!(names(&d, &[("txt_filter", "bun*")]).len(), 3);
        assert_eq!(names(&d, &[("txt_filter", "bun")]), Vec::<String>::new(), "no prefix without *");
        assert_eq!(names(&d, &[("txt_filter", "\"22.04\" amd64")]), vec!["ubuntu-22.04.3-desktop-amd64.iso"]);
        assert_eq!(names(&d, &[("txt_filter", "*")]), Vec::<String>::new());
    }

    #[test]
    fn relevance_then_health() {
        let mut d = db();
        let all = [
            facts(1, "Alpha Beta", 1, "Other"),
            facts(2, "Alpha Gamma", 1, "Other"),
            facts(3, "Alpha Delta Epsilon Zeta Eta Theta", 1, "Other"),
            facts(4, "Alpha", 1, "Other"),
        ];
        d.record_many(&all, 1).unwrap();
        // Equally relevant names (same length): newest first until health says otherwise.
        assert_eq!(
            names(&d, &[("txt_filter", "alpha")]),
            ["Alpha", "Alpha Gamma", "Alpha Beta", "Alpha Delta Epsilon Zeta Eta Theta"]
        );
        d.set_health(&[1; 20], 7, 0, 10).unwrap();
        d.set_health(&[3; 20], 900, 0, 10).unwrap();
        // Health reorders the equally relevant ones; a long name stays below, however healthy.
        assert_eq!(
            names(&d, &[("txt_filter", "alpha")]),
            ["Alpha", "Alpha Beta", "Alpha Gamma", "Alpha Delta Epsilon Zeta Eta Theta"]
        );
        // sort_by=health puts health first.
        assert_eq!(
            names(&d, &[("txt_filter", "alpha"), ("sort_by", "health")])[..2],
            ["Alpha Delta Epsilon Zeta Eta Theta", "Alpha Beta"]
        );
    }

    #[test]
    fn filters_paging_total_sort() {
        let d = sample();
        assert_eq!(names(&d, &[("category", "Compressed")]).len(), 2);
        assert!(!names(&d, &[("hide_xxx", "1")]).iter().any(|n| n.contains("xxx")));
        assert_eq!(names(&d, &[]).len(), 6);
        assert_eq!(names(&d, &[])[0], "Ubuntu Server Guide", "newest first by default");
        assert_eq!(names(&d, &[("sort_desc", "0")])[0], "ubuntu-22.04.3-desktop-amd64.iso");
        let by_size = names(&d, &[("sort_by", "size"), ("sort_desc", "0")]);
        assert_eq!(by_size.first().unwrap(), "Ubuntu Server Guide");
        assert_eq!(by_size.last().unwrap(), "ubuntu-22.04.3-desktop-amd64.iso");
        let by_name = names(&d, &[("sort_by", "name"), ("sort_desc", "0")]);
        assert_eq!(&by_name[..2], ["Big Buck Bunny 1080p", "big.buck.bunny.sample.xxx"], "names sort without case");
        let page = names(&d, &[("first", "3"), ("last", "4")]);
        assert_eq!(page, vec!["big.buck.bunny.sample.xxx", "Bunny Tales audiobook"]);
        assert_eq!(names(&d, &[("first", "5"), ("last", "2")]), Vec::<String>::new());
        let p = d.search(&params(&[("include_total", "1"), ("last", "2"), ("txt_filter", "bunny")]), None).unwrap();
        assert_eq!((p.entries.len(), p.total), (2, Some((3, Some(6)))));
        assert_eq!(names(&d, &[("max_rowid", "2")]).len(), 2);
        assert_eq!(names(&d, &[("metadata_type", "channel")]).len(), 0);
    }

    #[test]
    fn relevance_pages_match_a_full_sort() {
        // Many equally ranked matches (names of a few lengths), health that reorders the ties,
        // some xxx: every page, filtered or not, is the page of a full sort of every match.
        let mut d = db();
        let all: Vec<TorrentFacts> = (1..=90u8)
            .map(|n| {
                let title = format!("needle {}", "hay ".repeat(usize::from(n % 4)));
                facts(n, &title, 1, if n % 7 == 0 { "xxx" } else { "Other" })
            })
            .collect();
        d.record_many(&all, 1).unwrap();
        for n in (1..=90u8).filter(|n| n % 3 == 0) {
            d.set_health(&[n; 20], i64::from(n % 5), i64::from(n % 2), 1).unwrap();
        }
        let mut full: Vec<(f64, i64, i64, i64, bool, String)> = d
            .conn
            .prepare(
                "SELECT f.rank, coalesce(h.seeders, 0), coalesce(h.leechers, 0), t.rowid, t.xxx, t.title \
                 FROM torrent_fts f JOIN torrent t ON t.rowid = f.rowid LEFT JOIN health h ON h.infohash = t.infohash \
                 WHERE torrent_fts MATCH '\"needle\"'",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        full.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)).then(b.2.cmp(&a.2)).then(b.3.cmp(&a.3)));
        for hide in [false, true] {
            let kept: Vec<&(f64, i64, i64, i64, bool, String)> = full.iter().filter(|e| !(hide && e.4)).collect();
            for (first, last) in [(1, 10), (1, 50), (5, 25), (41, 60), (70, 95), (200, 300)] {
                let (f, l, h) = (first.to_string(), last.to_string(), if hide { "1" } else { "0" });
                let q =
                    [("txt_filter", "needle"), ("first", &f), ("last", &l), ("hide_xxx", h), ("include_total", "1")];
                let page = d.search(&params(&q), None).unwrap();
                // Entry n has row id n and info-hash [n; 20].
                let got: Vec<(i64, String)> =
                    page.entries.iter().map(|e| (i64::from(e.infohash[0]), e.title.clone())).collect();
                let want: Vec<(i64, String)> =
                    kept.iter().skip(first - 1).take(last - first + 1).map(|e| (e.3, e.5.clone())).collect();
                assert_eq!(got, want, "hide_xxx {hide}, {first}..{last}");
                assert_eq!(page.total, Some((kept.len() as i64, Some(90))), "hide_xxx {hide}, {first}..{last}");
            }
        }
    }

    #[test]
    fn hostile_text_never_fails() {
        let d = sample();
        for q in [
            "\"",
            "\"\"\"",
            "a NEAR b",
            "NEAR(a b)",
            "-ubuntu",
            "title:ubuntu",
            "ubuntu OR debian",
            "(",
            "^x",
            "a*b*",
            "{x}",
            "\u{0}",
        ] {
            assert!(d.search(&params(&[("txt_filter", q)]), None).is_ok(), "{q:?}");
        }
        let long = "x".repeat(10_000);
        assert!(d.search(&params(&[("txt_filter", &long)]), None).is_ok());
        assert!(d.completions(&long).is_ok());
        assert!(d.completions("\" * ( NEAR").is_ok());
    }

    #[test]
    fn popular_is_the_recently_checked_healthy_ones() {
        let d = sample();
        let now = 1_800_000_000;
        assert!(d.search(&params(&[]), Some(now)).unwrap().entries.is_empty(), "nothing checked: nothing popular");
        d.set_health(&[1; 20], 5, 2, now - 10).unwrap();
        d.set_health(&[2; 20], 40, 0, now - 100).unwrap();
        d.set_health(&[5; 20], 90, 0, now - 2 * POPULAR_FRESHNESS_SECS).unwrap();
        d.set_health(&[6; 20], 0, 0, now).unwrap();
        let names: Vec<String> =
            d.search(&params(&[]), Some(now)).unwrap().entries.into_iter().map(|e| e.title).collect();
        assert_eq!(names, vec!["Big Buck Bunny 1080p", "ubuntu-22.04.3-desktop-amd64.iso"]);
        let e = &d.search(&params(&[("txt_filter", "ubuntu")]), Some(now)).unwrap().entries[0];
        assert_eq!((e.seeders, e.leechers, e.last_check), (5, 2, now - 10));
    }

    #[test]
    fn completions_continue_the_word() {
        let d = sample();
        // Newest first among equally healthy names; a word runs on over dots and dashes.
        assert_eq!(d.completions("bun").unwrap(), vec!["bunny.sample.xxx", "bunny"]);
        assert_eq!(d.completions("big buck").unwrap(), vec!["big buck.bunny.sample.xxx", "big buck bunny"]);
        assert_eq!(d.completions("ubuntu").unwrap(), vec!["ubuntu server", "ubuntu-22.04.3-desktop-amd64.iso"]);
        d.set_health(&[1; 20], 3, 0, 1).unwrap();
        assert_eq!(d.completions("ubuntu").unwrap()[0], "ubuntu-22.04.3-desktop-amd64.iso", "healthiest first");
        assert_eq!(d.completions("zzz").unwrap(), Vec::<String>::new());
    }
}
