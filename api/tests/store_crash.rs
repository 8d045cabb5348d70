//! Crash safety of the metadata store (issue #15): `kill -9` during a burst of 10,000 adds,
//! 20 times. The store opens every time, its integrity check passes, and every entry committed
//! before the kill is there; then `shoal daemon` opens it without moving it aside and serves
//! every entry. (A store file that is garbage is moved aside while the daemon keeps serving:
//! `metadata.rs`, `restart_keeps_entries_and_a_corrupt_store_is_moved_aside`.)
//!
//! The inserting process is this test binary run again as `burst_child`, an ignored test that
//! does nothing unless this test starts it. It adds entries through the daemon's own store code
//! (compiled in, as the store benchmark does): `Store::record`, the store's thread and its
//! batched transactions, and prints `committed N` each time `Store::committed` confirms that
//! the first N entries are on disk. The daemon fed through its REST API could not say what it
//! has committed: an add answers before its entry is written, and a search sees entries of the
//! transaction still open.

mod common;

// The daemon's store, compiled here as the daemon compiles it; the daemon-only parts go unused.
#[allow(dead_code, unused_imports)]
#[path = "../src/daemon/store/mod.rs"]
mod store;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;

use common::{request, start, Opts, TempDir};
use store::entry::TorrentFacts;
use store::query::SearchParams;

const KEY: &str = "crashkey";
/// Adds per burst.
const BURST: u32 = 10_000;
/// The child confirms a commit every this many adds.
const STEP: u32 = 250;
const ROUNDS: u32 = 20;

/// Entry `i` of burst `round`: a name its round's search finds, an info-hash of its own.
fn facts(round: u32, i: u32) -> TorrentFacts {
    let mut infohash = [0x5a; 20];
    infohash[..4].copy_from_slice(&round.to_be_bytes());
    infohash[4..8].copy_from_slice(&i.to_be_bytes());
    TorrentFacts {
        infohash,
        title: format!("burst{round} item{i}"),
        size: u64::from(i) + 1,
        torrent_date: 1_700_000_000,
        tracker_info: String::new(),
        category: "Other",
        xxx: false,
    }
}

#[test]
#[ignore = "the inserting process of kill_9_during_bursts_keeps_every_committed_entry, which runs it"]
fn burst_child() {
    let (Ok(state), Ok(round)) = (std::env::var("SHOAL_BURST_STATE"), std::env::var("SHOAL_BURST_ROUND")) else {
        return;
    };
    let round: u32 = round.parse().unwrap();
    let store = store::Store::open(Path::new(&state)).unwrap();
    let mut out = std::io::stdout().lock();
    for i in 0..BURST {
        store.record(facts(round, i));
        if (i + 1) % STEP == 0 {
            futures_lite::future::block_on(store.committed()).unwrap();
            writeln!(out, "committed {}", i + 1).unwrap();
            out.flush().unwrap();
        }
    }
}

/// The indices of burst `round`'s entries in the store, found by the daemon's own search.
fn stored(db: &store::db::Db, round: u32) -> BTreeSet<u32> {
    let q: Vec<(String, String)> =
        [("txt_filter", format!("burst{round}")), ("first", "1".into()), ("last", BURST.to_string())]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
    let page = db.search(&SearchParams::parse(&q).unwrap(), None).unwrap();
    page.entries.iter().map(|e| e.title.strip_prefix(&format!("burst{round} item")).unwrap().parse().unwrap()).collect()
}

#[test]
fn kill_9_during_bursts_keeps_every_committed_entry() {
    let tmp = TempDir::new();
    let state = tmp.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let db_path = store::db_path(&state);
    let mut total = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["burst_child", "--exact", "--ignored", "--nocapture", "--test-threads", "1"])
            .env("SHOAL_BURST_STATE", &state)
            .env("SHOAL_BURST_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line.strip_prefix("committed ") {
                    let _ = tx.send(n.parse::<u32>().unwrap());
                }
            }
        });
        // Kill at a different point of each burst, always within its first half, so the
        // child is in the middle of a transaction when it dies.
        let kill_at = STEP * (1 + (round * 7) % 20);
        let mut committed = 0;
        while committed < kill_at {
            committed = rx.recv_timeout(common::TIMEOUT).expect("the child confirms commits");
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        // Every confirmation written before the kill has been read by now.
        committed = rx.try_iter().last().unwrap_or(committed);

        let check = rusqlite::Connection::open(&db_path).unwrap();
        let integrity: String = check.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(integrity, "ok", "round {round}");
        drop(check);
        let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        let db = match store::db::Db::open(&db_path, key) {
            Ok(db) => db,
            Err(e) => panic!("round {round}: the store does not open after kill -9: {e}"),
        };
        let found = stored(&db, round);
        let all: BTreeSet<u32> = (0..found.len() as u32).collect();
        assert_eq!(found, all, "round {round}: the entries kept are the first ones, each transaction whole");
        assert!(
            found.len() as u32 >= committed,
            "round {round}: {committed} entries were committed before the kill, {} are in the store",
            found.len()
        );
        assert!(found.len() < BURST as usize, "round {round}: the kill came after the burst ended");
        eprintln!("round {round}: killed after {committed} confirmed; {} entries in the store", found.len());
        total += found.len();
    }

    // The daemon opens the store as it is (nothing moved aside) and serves every entry.
    let d = start(Opts { state: Some(&state), args: vec!["--api-key", KEY], ..Opts::default() });
    assert!(!d.log.iter().any(|l| l.contains("metadata store")), "{:#?}", d.log);
    let aside = std::fs::read_dir(state.join("sqlite"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("corrupt"))
        .count();
    assert_eq!(aside, 0, "no store was moved aside");
    let stats = request(&d, "GET", "/statistics/tribler", &[("X-Api-Key", KEY)], None).json();
    assert_eq!(stats["tribler_statistics"]["num_torrents"], total);
    let r = request(&d, "GET", "/search?txt_filter=burst7&include_total=1&last=1", &[("X-Api-Key", KEY)], None);
    assert_eq!(r.status, 200);
    assert!(r.json()["total"].as_u64().unwrap() >= u64::from(STEP));
    d.shutdown(KEY);
}

#[test]
fn a_store_damaged_inside_is_moved_aside_at_the_first_query_that_meets_it() {
    let tmp = TempDir::new();
    let state = tmp.join("state");
    std::fs::create_dir_all(state.join("sqlite")).unwrap();
    let db_path = store::db_path(&state);
    let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
    let mut db = store::db::Db::open(&db_path, key).unwrap();
    db.record_many(&(0..300).map(|i| facts(0, i)).collect::<Vec<_>>(), 1).unwrap();
    // The tag rules have seen every entry, as in a store the daemon wrote: its start then reads
    // no entry.
    let mut after = 0;
    while let Some(last) = db.apply_rules_backlog(after, 100, 1).unwrap() {
        after = last;
    }
    drop(db);
    // A disk fault in the page of the newest entries only: the file still opens (opening reads
    // the schema and the first entries), and the damage shows when a search reaches them.
    let conn = rusqlite::Connection::open(&db_path).unwrap();
    let page_size: u64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
    let leaf: u64 = conn
        .query_row("SELECT max(pageno) FROM dbstat WHERE name = 'torrent' AND pagetype = 'leaf'", [], |r| r.get(0))
        .unwrap();
    drop(conn);
    let mut bytes = std::fs::read(&db_path).unwrap();
    let at = ((leaf - 1) * page_size) as usize;
    bytes[at..at + page_size as usize].fill(0xff);
    std::fs::write(&db_path, &bytes).unwrap();

    let d = start(Opts { state: Some(&state), args: vec!["--api-key", KEY], ..Opts::default() });
    assert!(!d.log.iter().any(|l| l.contains("metadata store")), "the damage is not seen at start: {:#?}", d.log);
    for path in ["/search?txt_filter=burst0&include_total=1", "/metadata/search/local?txt_filter=item299", "/search"] {
        let r = request(&d, "GET", path, &[("X-Api-Key", KEY)], None);
        assert_eq!(r.status, 200, "{path}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["results"], serde_json::json!([]), "{path}: a fresh store");
    }
    let aside: Vec<_> = std::fs::read_dir(state.join("sqlite"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("metadata.db.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "the damaged store is kept aside for inspection");
    assert_eq!(std::fs::read(aside[0].path()).unwrap(), bytes);
    let stats = request(&d, "GET", "/statistics/tribler", &[("X-Api-Key", KEY)], None).json();
    assert_eq!(stats["tribler_statistics"]["num_torrents"], 0);
    d.shutdown(KEY);
}
