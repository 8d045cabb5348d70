//! The store's schema, versioned: each migration runs once, in a transaction, and is recorded
//! in the `migrations` table.

use rusqlite::{Connection, Transaction};

/// Migrations in order; the version of each is its index + 1. Append, never edit.
const MIGRATIONS: &[&str] = &[
    // 1: torrents, their health (by info-hash: shared by every entry of a torrent, and filled by
    // the health checker), and the full-text index over names kept in step by triggers.
    r#"
    CREATE TABLE torrent (
        rowid INTEGER PRIMARY KEY,
        infohash BLOB NOT NULL CHECK (length(infohash) = 20),
        public_key BLOB NOT NULL,
        id INTEGER NOT NULL,
        origin_id INTEGER NOT NULL,
        status INTEGER NOT NULL,
        title TEXT NOT NULL,
        size INTEGER NOT NULL,
        category TEXT NOT NULL,
        xxx INTEGER NOT NULL,
        torrent_date INTEGER NOT NULL,
        tracker_info TEXT NOT NULL,
        timestamp INTEGER NOT NULL,
        signature BLOB NOT NULL,
        UNIQUE (public_key, infohash),
        UNIQUE (public_key, id)
    );
    CREATE INDEX torrent_infohash ON torrent (infohash);
    CREATE TABLE health (
        infohash BLOB PRIMARY KEY,
        seeders INTEGER NOT NULL DEFAULT 0,
        leechers INTEGER NOT NULL DEFAULT 0,
        last_check INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    -- Covers the popular query: the recently checked, with their figures, from the index alone.
    CREATE INDEX health_checked ON health (last_check, seeders, leechers);
    CREATE VIRTUAL TABLE torrent_fts USING fts5 (
        title, content = 'torrent', content_rowid = 'rowid',
        tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3'
    );
    CREATE TRIGGER torrent_fts_insert AFTER INSERT ON torrent BEGIN
        INSERT INTO torrent_fts (rowid, title) VALUES (new.rowid, new.title);
    END;
    CREATE TRIGGER torrent_fts_delete AFTER DELETE ON torrent BEGIN
        INSERT INTO torrent_fts (torrent_fts, rowid, title) VALUES ('delete', old.rowid, old.title);
    END;
    CREATE TRIGGER torrent_fts_update AFTER UPDATE OF title ON torrent BEGIN
        INSERT INTO torrent_fts (torrent_fts, rowid, title) VALUES ('delete', old.rowid, old.title);
        INSERT INTO torrent_fts (rowid, title) VALUES (new.rowid, new.title);
    END;
    "#,
    // 2: knowledge (Tribler's knowledge graph): resources (a torrent's hex info-hash, a tag, a
    // content item…), statements linking a subject to an object with Tribler's counters, and
    // each peer's last signed operation on a statement, with its Lamport clock. Every entry
    // records the version of the rules that extracted its statements.
    r#"
    CREATE TABLE resource (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        type INTEGER NOT NULL,
        UNIQUE (name, type)
    );
    -- Tags are searched without case. Only tags: a torrent's resource (its hex info-hash, one
    -- per entry) is never looked up so, and indexing a random key per add slows every add.
    CREATE INDEX resource_lower ON resource (lower(name)) WHERE type = 101;
    CREATE TABLE statement (
        id INTEGER PRIMARY KEY,
        subject INTEGER NOT NULL REFERENCES resource (id),
        object INTEGER NOT NULL REFERENCES resource (id),
        added_count INTEGER NOT NULL DEFAULT 0,
        removed_count INTEGER NOT NULL DEFAULT 0,
        -- The user's own last operation (1 add, 2 remove), which overrides the counters locally.
        local_operation INTEGER,
        UNIQUE (subject, object)
    );
    CREATE INDEX statement_object ON statement (object);
    CREATE TABLE statement_op (
        id INTEGER PRIMARY KEY,
        statement INTEGER NOT NULL REFERENCES statement (id),
        peer BLOB NOT NULL,
        operation INTEGER NOT NULL,
        clock INTEGER NOT NULL,
        signature BLOB NOT NULL,
        updated_at INTEGER NOT NULL,
        auto_generated INTEGER NOT NULL,
        UNIQUE (statement, peer)
    );
    ALTER TABLE torrent ADD COLUMN tag_processor_version INTEGER NOT NULL DEFAULT 0;
    "#,
    // 3: popular torrents in their order straight from an index, so the first page
    // reads about a hundred rows instead of sorting every torrent checked in the last day; and
    // the columns search filters on, by row id, in an index small enough to stay in the page
    // cache (the table is ten times its size), so filtering 10,000 matches reads no table page.
    // Row ids only grow: adding to this index appends.
    r#"
    CREATE INDEX health_popular ON health (seeders, leechers, last_check);
    CREATE INDEX torrent_filter ON torrent (rowid, xxx, category, status);
    "#,
];

/// The schema version this build writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database up to [`VERSION`]. A database from a newer build is refused rather
/// than misread.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<Result<(), String>> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS migrations (version INTEGER PRIMARY KEY, applied INTEGER NOT NULL)",
    )?;
    let current: i64 = conn.query_row("SELECT coalesce(max(version), 0) FROM migrations", [], |r| r.get(0))?;
    if current > VERSION {
        return Ok(Err(format!("the store has schema version {current}, newer than this build's {VERSION}")));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx: Transaction = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute("INSERT INTO migrations (version, applied) VALUES (?1, unixepoch())", [i as i64 + 1])?;
        tx.commit()?;
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_1_store_gains_knowledge_and_its_entries_catch_up_on_the_rules() {
        let dir = std::env::temp_dir().join(format!("shoal-schema-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("metadata.db");
        let _ = std::fs::remove_file(&path);
        {
            // A store written by the build before knowledge existed: schema 1, one entry.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.execute_batch(
                "CREATE TABLE migrations (version INTEGER PRIMARY KEY, applied INTEGER NOT NULL);
                 INSERT INTO migrations VALUES (1, 0);",
            )
            .unwrap();
            conn.execute(
                "INSERT INTO torrent (infohash, public_key, id, origin_id, status, title, size, category, xxx, \
                 torrent_date, tracker_info, timestamp, signature) \
                 VALUES (?1, x'00', 1, 0, 2, 'debian-12.4.0-amd64-netinst.iso', 1, 'Compressed', 0, 0, '', 0, x'00')",
                [&[7u8; 20][..]],
            )
            .unwrap();
        }
        let d = super::super::db::Db::open(&path, ed25519_dalek::SigningKey::from_bytes(&[1; 32])).unwrap();
        let version: i64 = d.conn.query_row("SELECT max(version) FROM migrations", [], |r| r.get(0)).unwrap();
        assert_eq!(version, VERSION);
        assert_eq!(VERSION, 3);
        let hex = data_encoding::HEXLOWER.encode(&[7u8; 20]);
        assert!(d.statements(&hex).unwrap().is_empty(), "the rules have not run yet");
        assert_eq!(d.apply_rules_backlog(0, 10, 1).unwrap(), None);
        let found: Vec<String> = d.statements(&hex).unwrap().into_iter().map(|s| s.object).collect();
        assert_eq!(found, ["iso", "Debian 12"]);
        drop(d);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
