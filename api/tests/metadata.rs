//! The metadata store over real HTTP: local search, completions and popular torrents in both
//! spellings (PyPI `/metadata/...`, release `/search`, `/channels/popular_torrents`),
//! `/statistics/tribler`, hostile search input, a restart, and a corrupt store file.
//!
//! Torrents are made with `shoal create`; entries come from `PUT /downloads` and
//! `GET /torrentinfo`, as a user's would.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{request, start, Daemon, Opts, Resp, TempDir};
use serde_json::{json, Value};

const KEY: &str = "testkey123";

fn daemon(state: &Path) -> Daemon {
    start(Opts { state: Some(state), args: vec!["--api-key", KEY], ..Opts::default() })
}

fn get(d: &Daemon, path: &str) -> Resp {
    request(d, "GET", path, &[("X-Api-Key", KEY)], None)
}

fn ok(d: &Daemon, path: &str) -> Value {
    let r = get(d, path);
    assert_eq!(r.status, 200, "GET {path}: {}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.content_type, "application/json");
    r.json()
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn write(path: &Path, len: usize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, (0..len).map(|i| (i * 7 % 251) as u8).collect::<Vec<_>>()).unwrap();
}

/// `shoal create PATH -o OUT`.
fn make_torrent(path: &Path, out: &Path) -> PathBuf {
    let o = Command::new(env!("CARGO_BIN_EXE_shoal")).arg("create").arg(path).arg("-o").arg(out).output().unwrap();
    assert!(o.status.success(), "shoal create: {}", String::from_utf8_lossy(&o.stderr));
    out.to_path_buf()
}

/// Two torrents: a folder of clips (added as a download) and an ISO image (only looked at
/// with `/torrentinfo`).
fn two_torrents(tmp: &TempDir) -> (PathBuf, PathBuf) {
    let data = tmp.join("data");
    let clips = data.join("Holiday Clips 2023");
    write(&clips.join("beach.mp4"), 300_000);
    write(&clips.join("notes.txt"), 1_000);
    let iso = data.join("single-disk.iso");
    write(&iso, 200_000);
    (make_torrent(&clips, &tmp.join("clips.torrent")), make_torrent(&iso, &tmp.join("iso.torrent")))
}

fn add_both(d: &Daemon, tmp: &TempDir, clips: &Path, iso: &Path) {
    let body = json!({"uri": format!("file:{}", clips.display()), "destination": tmp.join("data")});
    let r = request(d, "PUT", "/downloads", &[("X-Api-Key", KEY)], Some(&serde_json::to_vec(&body).unwrap()));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    ok(d, &format!("/torrentinfo?uri={}", enc(&format!("file:{}", iso.display()))));
}

fn names(v: &Value) -> Vec<&str> {
    v["results"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect()
}

#[test]
fn search_completions_popular_and_statistics() {
    let tmp = TempDir::new();
    let (clips, iso) = two_torrents(&tmp);
    let state = tmp.join("state");
    let d = daemon(&state);
    // An empty store answers with empty lists and Tribler's shapes.
    insta::assert_json_snapshot!("popular_empty_pypi", ok(&d, "/metadata/torrents/popular"));
    insta::assert_json_snapshot!("popular_empty_release", ok(&d, "/channels/popular_torrents"));
    insta::assert_json_snapshot!("search_empty_nototal", ok(&d, "/metadata/search/local?txt_filter=anything"));

    add_both(&d, &tmp, &clips, &iso);

    let p = ok(&d, "/metadata/search/local?txt_filter=%22holiday%22&include_total=1");
    insta::assert_json_snapshot!("search_local_pypi", p, {
        // Ids, keys, hashes and dates change every run (their form is checked below).
        ".results[].id" => "[id]", ".results[].public_key" => "[public_key]",
        ".results[].infohash" => "[infohash]", ".results[].created" => "[created]", ".max_rowid" => "[rowid]",
        ".results[].statements[].subject" => "[infohash]",
    });
    let r = ok(&d, "/search?txt_filter=disk&metadata_type=300&first=1&last=50&include_total=1");
    insta::assert_json_snapshot!("search_release", r, {
        // Ids, keys, hashes and dates change every run (their form is checked below).
        ".results[].id" => "[id]", ".results[].public_key" => "[public_key]",
        ".results[].infohash" => "[infohash]", ".results[].created" => "[created]", ".max_rowid" => "[rowid]",
        ".results[].statements[].subject" => "[infohash]",
    });
    // Both entries are the user's: signed with one key, the one in the state directory.
    for e in [&p["results"][0], &r["results"][0]] {
        assert!(e["id"].as_i64().unwrap() > 0 && e["created"].as_i64().unwrap() > 0, "{e}");
        assert_eq!(e["infohash"].as_str().unwrap().len(), 40, "{e}");
    }
    let pk = p["results"][0]["public_key"].as_str().unwrap();
    assert_eq!((pk.len(), r["results"][0]["public_key"].as_str().unwrap()), (64, pk));
    let key_file = std::fs::metadata(state.join("ed25519.key")).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&key_file.permissions()) & 0o777, 0o600);
    assert!(state.join("sqlite/metadata.db").is_file());

    // Words, prefixes, phrases, category, xxx, paging and totals.
    assert_eq!(names(&ok(&d, "/metadata/search/local?txt_filter=clips")), ["Holiday Clips 2023"]);
    assert_eq!(names(&ok(&d, "/metadata/search/local?txt_filter=hol*")), ["Holiday Clips 2023"]);
    assert_eq!(names(&ok(&d, "/metadata/search/local?txt_filter=hol")), Vec::<&str>::new());
    assert_eq!(names(&ok(&d, "/metadata/search/local?txt_filter=%22clips%20holiday%22")), Vec::<&str>::new());
    assert_eq!(names(&ok(&d, "/metadata/search/local?category=Compressed")), ["single-disk.iso"]);
    assert_eq!(names(&ok(&d, "/metadata/search/local?category=VideoClips&hide_xxx=1")), ["Holiday Clips 2023"]);
    assert_eq!(names(&ok(&d, "/metadata/search/local")), ["single-disk.iso", "Holiday Clips 2023"]);
    assert_eq!(names(&ok(&d, "/metadata/search/local?sort_desc=0")), ["Holiday Clips 2023", "single-disk.iso"]);
    assert_eq!(
        names(&ok(&d, "/metadata/search/local?sort_by=size&sort_desc=1")),
        ["Holiday Clips 2023", "single-disk.iso"]
    );
    let page = ok(&d, "/metadata/search/local?first=2&last=2&include_total=1");
    assert_eq!((names(&page), &page["total"], &page["sort_by"]), (vec!["Holiday Clips 2023"], &json!(2), &json!(null)));
    assert_eq!(ok(&d, "/search?sort_by=health")["sort_by"], "HEALTH");
    assert_eq!(names(&ok(&d, "/search?metadata_type=channel")), Vec::<&str>::new());

    // Completions, both spellings.
    insta::assert_json_snapshot!("completions_pypi", ok(&d, "/metadata/search/completions?q=holi"));
    insta::assert_json_snapshot!("completions_release", ok(&d, "/search/completions?q=single"));
    for path in ["/metadata/search/completions", "/search/completions"] {
        let r = get(&d, path);
        assert_eq!(r.status, 400);
        insta::assert_json_snapshot!("completions_missing", r.json());
    }

    // Popular: nobody has checked these torrents' health, so none is popular (nothing invented).
    assert_eq!(
        ok(&d, "/metadata/torrents/popular?first=1&last=50&hide_xxx=1"),
        json!({"results": [], "first": 1, "last": 50})
    );
    assert_eq!(ok(&d, "/channels/popular_torrents?metadata_type=300&include_total=1")["results"], json!([]));

    let stats = ok(&d, "/statistics/tribler");
    insta::assert_json_snapshot!("statistics_tribler_store", stats, {".tribler_statistics.db_size" => "[db_size]"});
    assert!(stats["tribler_statistics"]["db_size"].as_u64().unwrap() > 0);
    d.shutdown(KEY);
}

#[test]
fn hostile_search_input() {
    let tmp = TempDir::new();
    let (clips, iso) = two_torrents(&tmp);
    let d = daemon(&tmp.join("state"));
    add_both(&d, &tmp, &clips, &iso);
    // FTS syntax is plain text: 200, never a 500 or an SQL error. (10 kB texts are checked in
    // the store's unit tests: the HTTP server refuses request heads over 8 kB, as aiohttp does.)
    let long_word = "x".repeat(7_000);
    for q in [
        "\"",
        "\"holiday",
        "holiday\"",
        "\"\"\"",
        "NEAR(holiday clips)",
        "holiday NEAR clips",
        "-holiday",
        "title:holiday",
        "holiday OR disk",
        "holiday AND",
        "(",
        ")",
        "*",
        "**",
        "^holiday",
        "{holiday}",
        "holiday*clips",
        ":",
        "-",
        "'",
        &long_word,
    ] {
        let r = get(&d, &format!("/metadata/search/local?txt_filter={}", enc(q)));
        assert_eq!(r.status, 200, "{q:?}: {}", String::from_utf8_lossy(&r.body));
        let r = get(&d, &format!("/search/completions?q={}", enc(q)));
        assert_eq!(r.status, 200, "{q:?}");
    }
    assert_eq!(names(&ok(&d, &format!("/search?txt_filter={}", enc("\"holiday")))), ["Holiday Clips 2023"]);
    // Operators are words: `-` does not exclude, `NEAR` must itself appear.
    assert_eq!(names(&ok(&d, &format!("/search?txt_filter={}", enc("-holiday clips:")))), ["Holiday Clips 2023"]);
    assert_eq!(names(&ok(&d, &format!("/search?txt_filter={}", enc("holiday NEAR clips")))), Vec::<&str>::new());
    // Bad integers and booleans: Tribler's 400.
    for q in [
        "first=x",
        "last=1.5",
        "first=-1",
        "sort_desc=maybe",
        "hide_xxx=",
        "max_rowid=abc",
        "first=99999999999999999999",
        "metadata_type=bogus",
    ] {
        for route in ["/metadata/search/local", "/search", "/metadata/torrents/popular", "/channels/popular_torrents"] {
            let r = get(&d, &format!("{route}?{q}"));
            assert_eq!(r.status, 400, "{route}?{q}");
            insta::assert_json_snapshot!("search_bad", r.json());
        }
    }
    // Too many words: refused by name, not cut.
    let many = "word ".repeat(65);
    let r = get(&d, &format!("/metadata/search/local?txt_filter={}", enc(&many)));
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("txt_filter"), "{}", r.json());
    // A parameter without an effect yet is refused by name.
    let r = get(&d, "/search?remote=1");
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("'remote'"), "{}", r.json());
    // Nothing was stored by any of it.
    assert_eq!(ok(&d, "/statistics/tribler")["tribler_statistics"]["num_torrents"], 2);
}

#[test]
fn restart_keeps_entries_and_a_corrupt_store_is_moved_aside() {
    let tmp = TempDir::new();
    let (clips, iso) = two_torrents(&tmp);
    let state = tmp.join("state");
    let d = daemon(&state);
    add_both(&d, &tmp, &clips, &iso);
    let before = ok(&d, "/search?include_total=1");
    assert_eq!(before["total"], 2);
    d.shutdown(KEY);

    let d = daemon(&state);
    let after = ok(&d, "/search?include_total=1");
    assert_eq!(after["results"], before["results"], "same entries, same ids and signatures' keys");
    d.shutdown(KEY);

    // A disk fault: the store file is garbage.
    let db = state.join("sqlite/metadata.db");
    std::fs::write(&db, vec![0x5a; 64 * 1024]).unwrap();
    for side in ["metadata.db-wal", "metadata.db-shm"] {
        let _ = std::fs::remove_file(state.join("sqlite").join(side));
    }
    let d = daemon(&state);
    let lines: Vec<&String> = d.log.iter().filter(|l| l.contains("metadata store")).collect();
    assert_eq!(lines.len(), 1, "one clear log line: {:#?}", d.log);
    assert!(lines[0].contains("damaged") && lines[0].contains("moved it to"), "{}", lines[0]);
    let aside: Vec<_> = std::fs::read_dir(state.join("sqlite"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("metadata.db.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1);
    assert_eq!(
        std::fs::read(aside[0].path()).unwrap(),
        vec![0x5a; 64 * 1024],
        "the damaged file is kept for inspection"
    );
    // A fresh store serves; the download restored from its checkpoint gets its entry back.
    let r = ok(&d, "/search?include_total=1");
    assert_eq!(names(&r), ["Holiday Clips 2023"]);
    assert_eq!(ok(&d, "/statistics/tribler")["tribler_statistics"]["num_torrents"], 1);
    d.shutdown(KEY);
}

/// Polls `look` until `cond` holds, up to the harness timeout.
fn poll<T>(what: &str, mut look: impl FnMut() -> T, cond: impl Fn(&T) -> bool) -> T {
    let deadline = std::time::Instant::now() + common::TIMEOUT;
    loop {
        let v = look();
        if cond(&v) {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
}

#[test]
fn a_magnet_gets_its_entry_when_its_metadata_arrives() {
    let tmp = TempDir::new();
    let (clips, _) = two_torrents(&tmp);
    // A seeds the clips; B adds them by magnet, naming A as its peer (x.pe), on loopback.
    let a = daemon(&tmp.join("state-a"));
    let body = json!({"uri": format!("file:{}", clips.display()), "destination": tmp.join("data")});
    let r = request(&a, "PUT", "/downloads", &[("X-Api-Key", KEY)], Some(&serde_json::to_vec(&body).unwrap()));
    assert_eq!(r.status, 200);
    let ih = r.json()["infohash"].as_str().unwrap().to_string();
    let port = ok(&a, "/settings")["settings"]["libtorrent"]["port"].as_u64().unwrap();

    let b = daemon(&tmp.join("state-b"));
    let magnet = format!("magnet:?xt=urn:btih:{ih}&x.pe=127.0.0.1:{port}");
    let body = json!({"uri": magnet, "destination": tmp.join("out")});
    let r = request(&b, "PUT", "/downloads", &[("X-Api-Key", KEY)], Some(&serde_json::to_vec(&body).unwrap()));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let found =
        poll("the magnet's entry", || ok(&b, "/metadata/search/local?txt_filter=holiday"), |v| !names(v).is_empty());
    let e = &found["results"][0];
    assert_eq!(
        (&e["name"], &e["infohash"], &e["category"]),
        (&json!("Holiday Clips 2023"), &json!(ih), &json!("VideoClips"))
    );
    assert_eq!(e["size"], 301_000);
    a.shutdown(KEY);
    b.shutdown(KEY);
}

/// `PUT /search/remote`, which Tribler's GUI sends with every search: Shoal has no
/// content-discovery peers, so it answers Tribler's shape with no peer (as Tribler does when it
/// knows none) and a fresh request id; bad parameters are a 400 like a local search's.
#[test]
fn remote_search_answers_no_peers() {
    let tmp = TempDir::new();
    let d = daemon(&tmp.join("state"));
    let put = |q: &str| request(&d, "PUT", &format!("/search/remote?{q}"), &[("X-Api-Key", KEY)], None);
    let r = put("txt_filter=%22ubuntu%22&hide_xxx=1&metadata_type=300&exclude_deleted=1");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let first = r.json();
    insta::assert_json_snapshot!("search_remote", first, {".request_uuid" => "[uuid]"});
    let id = first["request_uuid"].as_str().unwrap();
    assert!(id.len() == 36 && id.as_bytes()[14] == b'4', "a version-4 UUID: {id}");
    assert_ne!(put("txt_filter=%22ubuntu%22").json()["request_uuid"], first["request_uuid"], "one id per request");
    let bad = put("first=x");
    assert_eq!(bad.status, 400);
    insta::assert_json_snapshot!("search_bad", bad.json());
}
