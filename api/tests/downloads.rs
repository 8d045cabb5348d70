//! `shoal daemon`'s download endpoints over real HTTP (§4, §5, §6.1 of the Tribler 7.13
//! reference): `/downloads` and below, `/torrentinfo`, `/createtorrent`, `/libtorrent/*`,
//! `/statistics/*`, and what survives a restart.
//!
//! No peers: each test writes random data, makes a .torrent of it (`shoal create` or
//! `POST /createtorrent`) and adds it with the folder that already holds the data, so the
//! daemon checks it and seeds. Waiting is polling with a deadline, never a fixed sleep.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{events, post_settings, request, start, Daemon, Opts, Resp, TempDir, TIMEOUT};
use data_encoding::{BASE64, HEXLOWER};
use serde_json::{json, Value};

const KEY: &str = "testkey123";
/// Nothing listens there: the tracker is "Not working".
const TRACKER: &str = "http://127.0.0.1:1/announce";
/// Pause between two looks at a state that is polled.
const POLL: Duration = Duration::from_millis(25);

/// The fields of a download object, in order (without the optional parts).
const FIELDS: [&str; 35] = [
    "name",
    "progress",
    "infohash",
    "speed_down",
    "speed_up",
    "status",
    "status_code",
    "size",
    "eta",
    "num_peers",
    "num_seeds",
    "num_connected_peers",
    "num_connected_seeds",
    "all_time_upload",
    "all_time_download",
    "all_time_ratio",
    "total_up",
    "total_down",
    "ratio",
    "trackers",
    "hops",
    "anon_download",
    "safe_seeding",
    "max_upload_speed",
    "max_download_speed",
    "destination",
    "availability",
    "total_pieces",
    "vod_mode",
    "error",
    "time_added",
    "channel_download",
    "peers",
    "pieces",
    "files",
];

// ---- data and torrents ----

/// Deterministic pseudo-random bytes (xorshift64).
fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// The multi-file torrent's files (inside its `multi/` folder), in the torrent's order.
fn multi_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("readme.txt", b"hello\n".to_vec()),
        ("sub/extra.bin", random(100_000, 2)),
        ("video.mkv", random(3_000_000, 1)),
    ]
}

const MULTI_SIZE: u64 = 3_100_006;

/// Writes `parent/multi/...`; returns the `multi` folder.
fn write_multi(parent: &Path) -> PathBuf {
    let dir = parent.join("multi");
    for (rel, bytes) in multi_files() {
        write(&dir.join(rel), &bytes);
    }
    dir
}

/// Writes a single file `parent/name` of `len` random bytes; returns its path and bytes.
fn write_single(parent: &Path, name: &str, len: usize, seed: u64) -> (PathBuf, Vec<u8>) {
    let bytes = random(len, seed);
    let path = parent.join(name);
    write(&path, &bytes);
    (path, bytes)
}

/// `shoal create PATH -o OUT [--tracker URL]`; returns the torrent file's bytes.
fn make_torrent(path: &Path, out: &Path, tracker: Option<&str>) -> Vec<u8> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shoal"));
    cmd.arg("create").arg(path).arg("-o").arg(out);
    if let Some(t) = tracker {
        cmd.args(["--tracker", t]);
    }
    let o = cmd.output().expect("run shoal create");
    assert!(o.status.success(), "shoal create failed: {}", String::from_utf8_lossy(&o.stderr));
    std::fs::read(out).unwrap()
}

fn file_uri(p: &Path) -> String {
    format!("file:{}", p.display())
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn bdecode(bytes: &[u8]) -> bt_bencode::Value {
    bt_bencode::from_slice(bytes).expect("a bencoded torrent")
}

fn bstr<'a>(v: &'a bt_bencode::Value, key: &str) -> &'a str {
    v.get(key).and_then(|x| x.as_str()).unwrap_or_else(|| panic!("no text {key}"))
}

/// Piece length and piece count of a torrent file.
fn pieces_of(torrent: &[u8]) -> (u64, u64) {
    let t = bdecode(torrent);
    let info = t.get("info").unwrap();
    let plen = info.get("piece length").and_then(|x| x.as_u64()).unwrap();
    let hashes = info.get("pieces").and_then(|x| x.as_byte_str()).unwrap().len() as u64;
    (plen, hashes / 20)
}

/// The have-bitfield of `n` pieces all verified: MSB first, padded to bytes.
fn full_bitfield(n: u64) -> Vec<u8> {
    let mut b = vec![0u8; n.div_ceil(8) as usize];
    for i in 0..n {
        b[(i / 8) as usize] |= 0x80 >> (i % 8);
    }
    b
}

/// Replaces substrings in every string of a JSON value (to take temp paths out of snapshots).
fn scrub(v: &Value, subs: &[(&str, &str)]) -> Value {
    match v {
        Value::String(s) => Value::String(subs.iter().fold(s.clone(), |s, (a, b)| s.replace(a, b))),
        Value::Array(a) => Value::Array(a.iter().map(|x| scrub(x, subs)).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, x)| (k.clone(), scrub(x, subs))).collect()),
        other => other.clone(),
    }
}

// ---- the REST client ----

fn daemon(state: &Path) -> Daemon {
    start(Opts { state: Some(state), args: vec!["--api-key", KEY], ..Opts::default() })
}

fn call(d: &Daemon, method: &str, path: &str, body: Option<&Value>) -> Resp {
    let body = body.map(|b| serde_json::to_vec(b).unwrap());
    request(d, method, path, &[("X-Api-Key", KEY), ("Content-Type", "application/json")], body.as_deref())
}

/// A request with a raw body (or none).
fn call_raw(d: &Daemon, method: &str, path: &str, body: Option<&[u8]>) -> Resp {
    request(d, method, path, &[("X-Api-Key", KEY)], body)
}

fn text(r: &Resp) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// A 200 JSON answer.
fn ok(d: &Daemon, method: &str, path: &str, body: Option<&Value>) -> Value {
    let r = call(d, method, path, body);
    assert_eq!(r.status, 200, "{method} {path}: {}", text(&r));
    assert_eq!(r.content_type, "application/json", "{method} {path}");
    r.json()
}

/// Status and JSON body.
fn answer(d: &Daemon, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let r = call(d, method, path, body);
    (r.status, r.json())
}

/// Asserts Tribler's unhandled-error shape (§1.5) with this exception class.
fn assert_unhandled(r: &Resp, code: &str) {
    assert_eq!(r.status, 500, "{}", text(r));
    let e = &r.json()["error"];
    assert_eq!((&e["handled"], &e["code"]), (&json!(false), &json!(code)), "{e}");
    assert!(e["message"].is_string(), "{e}");
}

fn is_hex40(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// `PUT /downloads` with a JSON body; returns the info-hash.
fn add(d: &Daemon, torrent: &Path, dest: &Path) -> String {
    let r = ok(d, "PUT", "/downloads", Some(&json!({"uri": file_uri(torrent), "destination": dest})));
    assert_eq!(r.as_object().unwrap().keys().collect::<Vec<_>>(), ["started", "infohash"], "{r}");
    assert_eq!(r["started"], json!(true));
    let ih = r["infohash"].as_str().unwrap().to_string();
    assert!(is_hex40(&ih), "{ih}");
    ih
}

/// `GET /downloads` with a query.
fn list(d: &Daemon, query: &str) -> Value {
    ok(d, "GET", &format!("/downloads{query}"), None)
}

/// The one download `ih` (`extra` adds query flags such as `&get_files=1`).
fn download(d: &Daemon, ih: &str, extra: &str) -> Value {
    let body = list(d, &format!("?infohash={ih}{extra}"));
    let all = body["downloads"].as_array().unwrap();
    assert_eq!(all.len(), 1, "infohash={ih} gave {body:#}");
    all[0].clone()
}

/// Polls until `cond` holds of a whole answer, or panics after [`TIMEOUT`].
fn poll<T>(what: &str, mut look: impl FnMut() -> T, cond: impl Fn(&T) -> bool) -> T
where
    T: std::fmt::Debug,
{
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let v = look();
        if cond(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "never {what}; last: {v:#?}");
        std::thread::sleep(POLL);
    }
}

/// Polls download `ih` until `cond` holds of it.
fn wait_for(d: &Daemon, ih: &str, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
    poll(&format!("{what} ({ih})"), || download(d, ih, ""), cond)
}

fn seeding(dl: &Value) -> bool {
    dl["status"] == "SEEDING" && dl["progress"] == 1.0
}

fn wait_seeding(d: &Daemon, ih: &str) -> Value {
    let dl = wait_for(d, ih, "SEEDING with progress 1.0", seeding);
    assert_eq!(dl["status_code"], json!(4));
    dl
}

fn status(dl: &Value) -> (&str, u64) {
    (dl["status"].as_str().unwrap(), dl["status_code"].as_u64().unwrap())
}

fn patch(d: &Daemon, ih: &str, body: Value) -> (u16, Value) {
    answer(d, "PATCH", &format!("/downloads/{ih}"), Some(&body))
}

fn patched(d: &Daemon, ih: &str, body: Value) {
    let r = patch(d, ih, body.clone());
    assert_eq!(r, (200, json!({"modified": true, "infohash": ih})), "PATCH {body}");
}

fn files(d: &Daemon, ih: &str) -> Vec<Value> {
    let r = ok(d, "GET", &format!("/downloads/{ih}/files"), None);
    assert_eq!(r["infohash"], json!(ih));
    r["files"].as_array().unwrap().clone()
}

fn included(files: &[Value]) -> Vec<bool> {
    files.iter().map(|f| f["included"].as_bool().unwrap()).collect()
}

/// The events of `/events`, read by a thread so that a wait can time out.
struct EventLog(mpsc::Receiver<Value>);

impl EventLog {
    fn open(d: &Daemon) -> EventLog {
        let (meta, mut sse) = events(d, KEY);
        assert_eq!(meta.status, 200);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            while let Some(e) = sse.next() {
                if tx.send(e).is_err() {
                    break;
                }
            }
        });
        EventLog(rx)
    }

    fn next(&self) -> Value {
        self.0.recv_timeout(TIMEOUT).expect("no event in time")
    }

    /// Causes an unhandled error (whose `tribler_exception` marks "now" in the stream) and
    /// returns the events before it.
    fn until_marker(&self, d: &Daemon) -> Vec<Value> {
        assert_eq!(post_settings(d, KEY, "{").status, 500);
        let mut out = Vec::new();
        loop {
            let e = self.next();
            if e["topic"] == "tribler_exception" {
                return out;
            }
            out.push(e);
        }
    }
}

fn finished_event(ih: &str, name: &str) -> Value {
    json!({"topic": "torrent_finished", "args": [], "kwargs": {"infohash": ih, "name": name, "hidden": false}})
}

// ---- tests ----

#[test]
fn list_shape_parts_and_filters() {
    let tmp = TempDir::new();
    let data = tmp.join("data");
    write_multi(&data);
    let (single, _) = write_single(&data, "single.iso", 1_500_000, 3);
    let multi_torrent = make_torrent(&data.join("multi"), &tmp.join("multi.torrent"), Some(TRACKER));
    make_torrent(&single, &tmp.join("single.torrent"), None);
    let d = daemon(&tmp.join("state"));

    assert_eq!(list(&d, ""), json!({"downloads": [], "checkpoints": {"total": 0, "loaded": 0, "all_loaded": true}}));
    let multi = add(&d, &tmp.join("multi.torrent"), &data);
    let single = add(&d, &tmp.join("single.torrent"), &data);
    assert_ne!(multi, single);

    // Both seeding and the dead tracker tried: then the whole answer is stable.
    let full = poll(
        "both SEEDING and the tracker Not working",
        || list(&d, "?get_peers=1&get_pieces=1&get_files=1"),
        |body| {
            let all = body["downloads"].as_array().unwrap();
            all.len() == 2 && all.iter().all(seeding) && all[0]["trackers"][0]["status"] == "Not working"
        },
    );
    let all = full["downloads"].as_array().unwrap();
    assert_eq!((&all[0]["infohash"], &all[1]["infohash"]), (&json!(multi), &json!(single)), "insertion order");
    let m = &all[0];
    let keys: Vec<&str> = m.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, FIELDS);
    assert_eq!((m["name"].as_str(), m["size"].as_u64(), status(m)), (Some("multi"), Some(MULTI_SIZE), ("SEEDING", 4)));
    assert_eq!(m["destination"], json!(data.display().to_string()));
    let (_, pieces) = pieces_of(&multi_torrent);
    assert_eq!(m["total_pieces"], json!(pieces));
    assert_eq!(BASE64.decode(m["pieces"].as_str().unwrap().as_bytes()).unwrap(), full_bitfield(pieces));
    assert_eq!(
        m["trackers"],
        json!([
            {"url": TRACKER, "peers": 0, "status": "Not working"},
            {"url": "[DHT]", "peers": 0, "status": "Not working"},
            {"url": "[PeX]", "peers": 0, "status": "Working"},
        ])
    );
    assert_eq!(m["peers"], json!([]));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let added = m["time_added"].as_u64().unwrap();
    assert!(added <= now && added + 600 > now, "time_added {added}, now {now}");
    assert!(m["speed_down"].is_u64() && m["speed_up"].is_u64());
    assert_eq!(all[1]["size"], json!(1_500_000));
    insta::assert_json_snapshot!("seeding_full", full, {
        ".downloads[].infohash" => "[infohash]",
        ".downloads[].time_added" => "[time_added]",
        ".downloads[].destination" => "[destination]",
        ".downloads[].speed_down" => "[speed]",
        ".downloads[].speed_up" => "[speed]",
        ".downloads[].pieces" => "[pieces]",
        ".downloads[].total_pieces" => "[total_pieces]",
    });

    // Without flags: none of the optional parts.
    let plain = download(&d, &multi, "");
    let keys: Vec<&str> = plain.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, FIELDS[..32]);

    // Filters.
    let only = list(&d, &format!("?infohash={multi}"));
    assert_eq!(only["downloads"].as_array().unwrap().len(), 1);
    assert_eq!(only["downloads"][0]["infohash"], json!(multi));
    let others = list(&d, &format!("?excluded={multi}"));
    assert_eq!(others["downloads"].as_array().unwrap().len(), 1);
    assert_eq!(others["downloads"][0]["infohash"], json!(single));
    assert_eq!(list(&d, &format!("?infohash={}", "0".repeat(40)))["downloads"], json!([]));
    d.shutdown(KEY);
}

#[test]
fn add_forms_and_errors() {
    let tmp = TempDir::new();
    let data = tmp.join("data");
    write_multi(&data);
    let (single, _) = write_single(&data, "single.iso", 1_500_000, 3);
    let (anon_src, anon_bytes) = write_single(&tmp.join("src"), "anon.bin", 200_000, 4);
    let (broken_src, _) = write_single(&tmp.join("src2"), "broken.bin", 50_000, 5);
    make_torrent(&data.join("multi"), &tmp.join("multi.torrent"), Some(TRACKER));
    let single_torrent = make_torrent(&single, &tmp.join("single.torrent"), None);
    make_torrent(&anon_src, &tmp.join("anon.torrent"), None);
    make_torrent(&broken_src, &tmp.join("broken.torrent"), None);
    let d = daemon(&tmp.join("state"));
    let tmp_str = tmp.0.display().to_string();

    // Refusals: nothing is added by them.
    let cases = [
        ("no_uri", json!({"destination": data})),
        ("empty_uri", json!({"uri": ""})),
        ("ftp", json!({"uri": "ftp://x", "destination": data})),
        ("missing_file", json!({"uri": file_uri(&tmp.join("missing.torrent")), "destination": data})),
        ("anon_without_safe_seeding", json!({"uri": file_uri(&tmp.join("multi.torrent")), "anon_hops": 1})),
        ("bad_magnet", json!({"uri": "magnet:?xt=urn:btih:not-a-hash", "destination": data})),
    ];
    let mut seen = serde_json::Map::new();
    for (name, body) in cases {
        let (st, answer) = answer(&d, "PUT", "/downloads", Some(&body));
        assert!(answer["error"].is_string(), "{name}: {answer}");
        seen.insert(name.into(), json!({"status": st, "body": scrub(&answer, &[(&tmp_str, "[tmp]")])}));
    }
    let status_of = |name: &str| seen[name]["status"].as_u64().unwrap();
    assert_eq!(seen["no_uri"]["body"], json!({"error": "uri parameter missing"}));
    assert_eq!(seen["ftp"]["body"], json!({"error": "invalid uri"}));
    assert_eq!((status_of("no_uri"), status_of("ftp"), status_of("anon_without_safe_seeding")), (400, 400, 400));
    assert_eq!(
        seen["anon_without_safe_seeding"]["body"],
        json!({"error": "Cannot set anonymous download without safe seeding enabled"})
    );
    assert_eq!((status_of("missing_file"), status_of("bad_magnet")), (500, 400));
    assert!(seen["missing_file"]["body"]["error"].as_str().unwrap().starts_with("cannot read [tmp]/missing.torrent"));
    insta::assert_json_snapshot!("add_errors", seen);
    let r = request(&d, "PUT", "/downloads", &[("X-Api-Key", KEY)], Some(b"{not json"));
    assert_unhandled(&r, "JSONDecodeError");
    assert_eq!(list(&d, "")["downloads"], json!([]));

    // Anonymous: kept, but waits for circuits Shoal does not have; nothing touches its folder.
    let anon_dest = tmp.join("anon-dest");
    std::fs::create_dir_all(&anon_dest).unwrap();
    let r = ok(
        &d,
        "PUT",
        "/downloads",
        Some(&json!({"uri": file_uri(&tmp.join("anon.torrent")), "destination": anon_dest, "anon_hops": 1,
            "safe_seeding": true})),
    );
    let anon = r["infohash"].as_str().unwrap().to_string();
    let check_circuits = |dl: &Value| {
        assert_eq!(status(dl), ("CIRCUITS", 8), "{dl:#}");
        assert_eq!((&dl["progress"], &dl["hops"]), (&json!(0.0), &json!(1)));
        assert_eq!((&dl["anon_download"], &dl["safe_seeding"]), (&json!(true), &json!(true)));
        assert!(!dl["error"].as_str().unwrap().is_empty(), "{dl:#}");
    };
    check_circuits(&wait_for(&d, &anon, "CIRCUITS", |dl| dl["status"] == "CIRCUITS"));

    // JSON body; the same torrent again (both forms) is the same download.
    let multi = add(&d, &tmp.join("multi.torrent"), &data);
    wait_seeding(&d, &multi);
    assert_eq!(add(&d, &tmp.join("multi.torrent"), &tmp.join("elsewhere")), multi);

    // Raw .torrent body, options in the query.
    let raw = |bytes: &[u8], dest: &Path| {
        let path = format!("/downloads?destination={}", enc(&dest.display().to_string()));
        let r =
            request(&d, "PUT", &path, &[("X-Api-Key", KEY), ("Content-Type", "application/x-bittorrent")], Some(bytes));
        assert_eq!(r.status, 200, "{}", text(&r));
        let body = r.json();
        assert_eq!(body["started"], json!(true));
        body["infohash"].as_str().unwrap().to_string()
    };
    let single_ih = raw(&single_torrent, &data);
    assert!(single_ih != multi && is_hex40(&single_ih));
    let dl = wait_seeding(&d, &single_ih);
    assert_eq!((&dl["name"], &dl["destination"]), (&json!("single.iso"), &json!(data.display().to_string())));
    assert_eq!(raw(&std::fs::read(tmp.join("multi.torrent")).unwrap(), &data), multi);

    // A destination that cannot be a directory: stopped on error, with the reason.
    let regular = tmp.join("regular-file");
    write(&regular, b"x");
    let broken = add(&d, &tmp.join("broken.torrent"), &regular.join("sub"));
    let dl = wait_for(&d, &broken, "STOPPED_ON_ERROR", |dl| dl["status"] == "STOPPED_ON_ERROR");
    assert_eq!(status(&dl), ("STOPPED_ON_ERROR", 6));
    assert!(!dl["error"].as_str().unwrap().is_empty(), "{dl:#}");

    // The anonymous one, after all that: still waiting, still nothing in its folder.
    check_circuits(&download(&d, &anon, ""));
    assert_eq!(std::fs::read_dir(&anon_dest).unwrap().count(), 0, "a file appeared under the CIRCUITS download");

    // Going direct brings it into the engine: its data (now there) is checked and seeded.
    write(&anon_dest.join("anon.bin"), &anon_bytes);
    patched(&d, &anon, json!({"anon_hops": 0}));
    let dl = wait_seeding(&d, &anon);
    assert_eq!((&dl["hops"], &dl["anon_download"], &dl["error"]), (&json!(0), &json!(false), &json!("")));
    assert_eq!(list(&d, "")["downloads"].as_array().unwrap().len(), 4);
    d.shutdown(KEY);
}

#[test]
fn patch_state_files_and_vod() {
    let tmp = TempDir::new();
    let data = tmp.join("data");
    let dir = write_multi(&data);
    make_torrent(&dir, &tmp.join("multi.torrent"), Some(TRACKER));
    let d = daemon(&tmp.join("state"));
    let ih = add(&d, &tmp.join("multi.torrent"), &data);
    wait_seeding(&d, &ih);

    patched(&d, &ih, json!({}));
    patched(&d, &ih, json!({"state": "stop"}));
    let dl = wait_for(&d, &ih, "STOPPED", |dl| dl["status"] == "STOPPED");
    assert_eq!(status(&dl), ("STOPPED", 5));
    patched(&d, &ih, json!({"state": "resume"}));
    wait_seeding(&d, &ih);

    // A recheck while stopped finds a damaged piece and leaves the download stopped.
    let video = dir.join("video.mkv");
    let good = std::fs::read(&video).unwrap();
    patched(&d, &ih, json!({"state": "stop"}));
    wait_for(&d, &ih, "STOPPED", |dl| dl["status"] == "STOPPED");
    let mut bad = good.clone();
    bad[0] ^= 0xff;
    std::fs::write(&video, &bad).unwrap();
    patched(&d, &ih, json!({"state": "recheck"}));
    let dl = wait_for(&d, &ih, "STOPPED with a piece missing", |dl| {
        dl["status"] == "STOPPED" && dl["progress"].as_f64().unwrap() < 1.0
    });
    assert!(dl["progress"].as_f64().unwrap() > 0.0, "{dl:#}");
    // Repaired and resumed, it lacks that piece until a recheck (while running) finds it.
    std::fs::write(&video, &good).unwrap();
    patched(&d, &ih, json!({"state": "resume"}));
    let dl = wait_for(&d, &ih, "DOWNLOADING", |dl| dl["status"] == "DOWNLOADING");
    assert_eq!(status(&dl), ("DOWNLOADING", 3));
    assert!(dl["progress"].as_f64().unwrap() < 1.0);
    patched(&d, &ih, json!({"state": "recheck"}));
    wait_seeding(&d, &ih);

    // move_storage.
    let missing = tmp.join("no-such-dir");
    assert_eq!(
        patch(&d, &ih, json!({"state": "move_storage", "dest_dir": missing})),
        (200, json!({"error": format!("Target directory ({}) does not exist", missing.display())}))
    );
    let moved = tmp.join("moved");
    std::fs::create_dir_all(&moved).unwrap();
    patched(&d, &ih, json!({"state": "move_storage", "dest_dir": moved}));
    for (rel, bytes) in multi_files() {
        assert!(!dir.join(rel).exists(), "{rel} is still in the old place");
        assert!(std::fs::read(moved.join("multi").join(rel)).unwrap() == bytes, "{rel} changed in the move");
    }
    let dl = wait_seeding(&d, &ih);
    assert_eq!(dl["destination"], json!(moved.display().to_string()));

    // selected_files.
    assert_eq!(patch(&d, &ih, json!({"selected_files": [0, 3]})), (400, json!({"error": "index out of range"})));
    assert_eq!(included(&files(&d, &ih)), [true, true, true]);
    patched(&d, &ih, json!({"selected_files": [0]}));
    assert_eq!(included(&files(&d, &ih)), [true, false, false]);
    assert_eq!(included(download(&d, &ih, "&get_files=1")["files"].as_array().unwrap()), [true, false, false]);
    patched(&d, &ih, json!({"selected_files": [0, 1, 2]}));
    assert_eq!(included(&files(&d, &ih)), [true, true, true]);

    // Refusals.
    for (body, error) in [
        (json!({"state": "bogus"}), "unknown state parameter"),
        (json!({"anon_hops": 1, "state": "stop"}), "anon_hops must be the only parameter in this request"),
        (json!({"vod_mode": "x"}), "vod_mode must be bool flag"),
        (json!({"vod_mode": true}), "fileindex is necessary to enable vod_mode"),
    ] {
        assert_eq!(patch(&d, &ih, body.clone()), (400, json!({"error": error})), "{body}");
    }
    assert_eq!(status(&download(&d, &ih, "")), ("SEEDING", 4), "a refused PATCH changed the download");

    // Streaming mode.
    assert_eq!(download(&d, &ih, "")["vod_mode"], Value::Null);
    let (st, vod) = patch(&d, &ih, json!({"vod_mode": true, "fileindex": 2}));
    assert_eq!((st, &vod["vod_mode"], &vod["infohash"]), (200, &json!(true), &json!(ih)));
    insta::assert_json_snapshot!("patch_vod_on", vod, {".infohash" => "[infohash]"});
    assert_eq!(download(&d, &ih, "")["vod_mode"], json!(true));

    // Unknown and malformed info-hashes.
    let unknown = "0123456789abcdef".repeat(2) + "01234567";
    let not_found = json!({"error": "this download does not exist"});
    assert_eq!(patch(&d, &unknown, json!({"state": "stop"})), (404, not_found.clone()));
    assert_eq!(answer(&d, "DELETE", &format!("/downloads/{unknown}"), Some(&json!({"remove_data": false}))).0, 404);
    for sub in ["torrent", "files", "stream/0"] {
        assert_eq!(answer(&d, "GET", &format!("/downloads/{unknown}/{sub}"), None), (404, not_found.clone()), "{sub}");
    }
    let r = call(&d, "PATCH", &format!("/downloads/{}", "zz".repeat(20)), Some(&json!({"state": "stop"})));
    assert_unhandled(&r, "binascii.Error");
    assert_unhandled(&call(&d, "GET", &format!("/downloads/{}/files", "zz".repeat(20)), None), "binascii.Error");
    d.shutdown(KEY);
}

#[test]
fn delete_keeps_or_removes_data() {
    let tmp = TempDir::new();
    let data = tmp.join("data");
    let dir = write_multi(&data);
    let data2 = tmp.join("data2");
    let (single, single_bytes) = write_single(&data2, "single.iso", 500_000, 6);
    make_torrent(&dir, &tmp.join("multi.torrent"), None);
    make_torrent(&single, &tmp.join("single.torrent"), None);
    // Not part of any torrent, in the same folders.
    write(&data.join("unrelated.txt"), b"keep me");
    write(&dir.join("notes.txt"), b"mine");
    let state = tmp.join("state");
    let d = daemon(&state);
    let multi = add(&d, &tmp.join("multi.torrent"), &data);
    let single_ih = add(&d, &tmp.join("single.torrent"), &data2);
    wait_seeding(&d, &multi);
    wait_seeding(&d, &single_ih);
    let checkpoints =
        |ih: &str| ["state", "torrent"].map(|ext| state.join("dlcheckpoints").join(format!("{ih}.{ext}")).exists());
    assert_eq!(checkpoints(&multi), [true, true]);
    assert_eq!(checkpoints(&single_ih), [true, true]);

    let path = format!("/downloads/{multi}");
    assert_eq!(answer(&d, "DELETE", &path, Some(&json!({}))), (400, json!({"error": "remove_data parameter missing"})));
    assert_unhandled(&call_raw(&d, "DELETE", &path, None), "JSONDecodeError");
    assert_eq!(list(&d, "")["downloads"].as_array().unwrap().len(), 2, "a refused DELETE removed something");

    // Keep the data.
    assert_eq!(
        answer(&d, "DELETE", &format!("/downloads/{single_ih}"), Some(&json!({"remove_data": false}))),
        (200, json!({"removed": true, "infohash": single_ih}))
    );
    assert!(std::fs::read(&single).unwrap() == single_bytes);
    assert_eq!(checkpoints(&single_ih), [false, false]);
    let left = list(&d, "");
    assert_eq!(left["downloads"].as_array().unwrap().len(), 1);
    assert_eq!(left["downloads"][0]["infohash"], json!(multi));

    // Remove the data: the torrent's files only.
    assert_eq!(
        answer(&d, "DELETE", &path, Some(&json!({"remove_data": true}))),
        (200, json!({"removed": true, "infohash": multi}))
    );
    for (rel, _) in multi_files() {
        assert!(!dir.join(rel).exists(), "{rel} is still there");
    }
    assert!(!dir.join("sub").exists(), "the torrent's emptied folder is still there");
    assert_eq!(std::fs::read(data.join("unrelated.txt")).unwrap(), b"keep me");
    assert_eq!(std::fs::read(dir.join("notes.txt")).unwrap(), b"mine");
    assert_eq!(checkpoints(&multi), [false, false]);
    assert_eq!(list(&d, "")["downloads"], json!([]));
    assert_eq!(answer(&d, "DELETE", &path, Some(&json!({"remove_data": true}))).0, 404);
    d.shutdown(KEY);
    // Nothing written late brings a removed download's checkpoint back.
    let left: Vec<_> =
        std::fs::read_dir(state.join("dlcheckpoints")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "checkpoint files left after both downloads were removed: {left:?}");
}

/// A move, a stop and a delete of the same download sent at once are run one after another by
/// the download list's owner, whatever order they arrive in: the download ends up removed with
/// its files gone from both folders and no checkpoint left or written back later.
#[test]
fn racing_move_stop_and_delete_end_consistently() {
    let tmp = TempDir::new();
    let data = tmp.join("data");
    let dir = write_multi(&data);
    make_torrent(&dir, &tmp.join("multi.torrent"), None);
    let moved = tmp.join("moved");
    std::fs::create_dir_all(&moved).unwrap();
    let state = tmp.join("state");
    let d = daemon(&state);
    let ih = add(&d, &tmp.join("multi.torrent"), &data);
    wait_seeding(&d, &ih);
    let path = format!("/downloads/{ih}");
    let start = std::sync::Barrier::new(3);
    let (moving, stopping, deleting) = std::thread::scope(|s| {
        let moving = s.spawn(|| {
            start.wait();
            patch(&d, &ih, json!({"state": "move_storage", "dest_dir": moved}))
        });
        let stopping = s.spawn(|| {
            start.wait();
            patch(&d, &ih, json!({"state": "stop"}))
        });
        let deleting = s.spawn(|| {
            start.wait();
            answer(&d, "DELETE", &path, Some(&json!({"remove_data": true})))
        });
        (moving.join().unwrap(), stopping.join().unwrap(), deleting.join().unwrap())
    });
    assert_eq!(deleting, (200, json!({"removed": true, "infohash": ih})));
    // Before the delete they succeed, after it the download is unknown.
    for (what, (status, body)) in [("move", moving), ("stop", stopping)] {
        assert!(status == 404 || (status == 200 && body["modified"] == json!(true)), "{what}: {status} {body}");
    }
    for (rel, _) in multi_files() {
        assert!(!dir.join(rel).exists(), "{rel} left in the old folder");
        assert!(!moved.join("multi").join(rel).exists(), "{rel} left in the new folder");
    }
    assert_eq!(list(&d, "")["downloads"], json!([]));
    d.shutdown(KEY);
    let left: Vec<_> =
        std::fs::read_dir(state.join("dlcheckpoints")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "checkpoint files left after the download was removed: {left:?}");
}

#[test]
fn torrent_file_tree_and_stream() {
    let tmp = TempDir::new();
    let data = tmp.join("data");
    let dir = write_multi(&data);
    let torrent = make_torrent(&dir, &tmp.join("multi.torrent"), None);
    let d = daemon(&tmp.join("state"));
    let ih = add(&d, &tmp.join("multi.torrent"), &data);
    wait_seeding(&d, &ih);

    // The torrent file as added.
    let r = call(&d, "GET", &format!("/downloads/{ih}/torrent"), None);
    assert_eq!((r.status, r.content_type.as_str()), (200, "application/x-bittorrent"));
    assert!(r.body == torrent, "the served torrent differs from the added one");
    assert!(r.header("content-disposition").is_some_and(|h| h.contains(&ih)), "{:?}", r.headers);

    // Plain file list: names without the torrent's folder.
    let expected: Vec<Value> = multi_files()
        .iter()
        .enumerate()
        .map(|(i, (rel, bytes))| json!({"index": i, "name": rel, "size": bytes.len(), "included": true, "progress": 1.0}))
        .collect();
    assert_eq!(files(&d, &ih), expected);

    // The tree view: one collapsed root, then the rows under it once expanded.
    let view =
        |start: &str| ok(&d, "GET", &format!("/downloads/{ih}/files?view_start_path={start}&view_size=10"), None);
    assert_eq!(
        view(""),
        json!({"infohash": ih, "query": "", "files": [
            {"index": -1, "name": "multi", "size": MULTI_SIZE, "included": false, "progress": 1.0}
        ]})
    );
    assert_eq!(view("multi")["files"], json!([]));
    assert_eq!(ok(&d, "GET", &format!("/downloads/{ih}/files/expand?path=multi"), None), json!({"path": "multi"}));
    let rows = view("multi");
    let names: Vec<&str> = rows["files"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["multi/sub", "multi/readme.txt", "multi/video.mkv"]);
    insta::assert_json_snapshot!("files_view_after_expand", rows, {".infohash" => "[infohash]"});
    assert_eq!(view("")["files"][0]["index"], json!(-2));

    // Deselecting a folder excludes the files under it; selecting brings them back.
    let sel = |op: &str| ok(&d, "GET", &format!("/downloads/{ih}/files/{op}?path=multi/sub"), None);
    assert_eq!(sel("deselect"), json!({}));
    assert_eq!(included(&files(&d, &ih)), [true, false, true]);
    assert_eq!(sel("select"), json!({}));
    assert_eq!(included(&files(&d, &ih)), [true, true, true]);

    // Streaming a complete file, with ranges.
    let video = &multi_files()[2].1;
    let size = video.len();
    let stream = format!("/downloads/{ih}/stream/2");
    let ranged = |range: &str| request(&d, "GET", &stream, &[("X-Api-Key", KEY), ("Range", range)], None);
    let r = call_raw(&d, "GET", &stream, None);
    assert_eq!((r.status, r.content_type.as_str()), (200, "application/octet-stream"));
    assert!(r.body == *video, "the whole file differs");
    assert_eq!(r.header("content-range"), None);
    for (range, from, to) in
        [("bytes=100-199", 100, 200), ("bytes=100-", 100, size), ("bytes=-10", size - 10, size), ("bytes=0-0", 0, 1)]
    {
        let r = ranged(range);
        assert_eq!(r.status, 206, "{range}");
        assert_eq!(r.header("content-range"), Some(format!("bytes {from}-{}/{size}", to - 1).as_str()), "{range}");
        assert_eq!(r.header("accept-ranges"), Some("bytes"));
        assert_eq!(r.body.len(), to - from, "{range}");
        assert!(r.body == video[from..to], "{range}: wrong bytes");
    }
    let r = ranged(&format!("bytes={size}-"));
    assert_eq!((r.status, r.header("content-range")), (416, Some(format!("bytes */{size}").as_str())));
    // The key in the query, as players pass it; none at all is refused.
    let r = request(&d, "GET", &format!("{stream}?apikey={KEY}"), &[("Range", "bytes=100-199")], None);
    assert_eq!((r.status, r.body.as_slice()), (206, &video[100..200]));
    let r = request(&d, "GET", &stream, &[], None);
    assert_eq!((r.status, r.json()), (401, json!({"error": "Unauthorized access"})));
    assert_eq!(call_raw(&d, "GET", &format!("/downloads/{ih}/stream/0"), None).body, b"hello\n");
    assert_unhandled(&call_raw(&d, "GET", &format!("/downloads/{ih}/stream/3"), None), "NoAvailableStreamError");
    d.shutdown(KEY);
}

#[test]
fn torrentinfo_and_createtorrent() {
    let tmp = TempDir::new();
    let data = tmp.join("data");
    let dir = write_multi(&data);
    let (single, _) = write_single(&data, "single.iso", 700_000, 7);
    let torrent = make_torrent(&dir, &tmp.join("multi.torrent"), Some(TRACKER));
    let d = daemon(&tmp.join("state"));
    let info_of = |uri: &str| answer(&d, "GET", &format!("/torrentinfo?uri={}", enc(uri)), None);

    // /torrentinfo: the torrent as JSON text, hex-encoded.
    let uri = file_uri(&tmp.join("multi.torrent"));
    let (st, r) = info_of(&uri);
    assert_eq!(st, 200, "{r}");
    assert_eq!(r.as_object().unwrap().keys().collect::<Vec<_>>(), ["metainfo", "download_exists"]);
    assert_eq!(r["download_exists"], Value::Null);
    let json_text = HEXLOWER.decode(r["metainfo"].as_str().unwrap().as_bytes()).expect("metainfo is lower-case hex");
    let meta: Value = serde_json::from_slice(&json_text).expect("metainfo is JSON text");
    let info = &meta["info"];
    assert_eq!(info["name"], json!("multi"));
    let listed: Vec<(Value, Value)> =
        info["files"].as_array().unwrap().iter().map(|f| (f["path"].clone(), f["length"].clone())).collect();
    let want: Vec<(Value, Value)> = multi_files()
        .iter()
        .map(|(rel, bytes)| (json!(rel.split('/').collect::<Vec<_>>()), json!(bytes.len())))
        .collect();
    assert_eq!(listed, want);
    let (plen, pieces) = pieces_of(&torrent);
    assert_eq!(info["piece length"], json!(plen));
    let hex = info["pieces"].as_str().unwrap();
    assert!(hex.len() as u64 == pieces * 40 && HEXLOWER.decode(hex.as_bytes()).is_ok(), "pieces is not hex");
    assert_eq!(meta["announce"], json!(TRACKER));
    let ih = add(&d, &tmp.join("multi.torrent"), &data);
    assert_eq!(info_of(&uri).1["download_exists"], json!(true));

    // Its refusals.
    assert_eq!(answer(&d, "GET", "/torrentinfo", None), (400, json!({"error": "uri parameter missing"})));
    assert_eq!(info_of("ftp://x"), (400, json!({"error": "invalid uri"})));
    write(&tmp.join("not-a.torrent"), b"hello, not bencode");
    for bad in [tmp.join("not-a.torrent"), tmp.join("missing.torrent")] {
        let (st, r) = info_of(&file_uri(&bad));
        assert!(st == 500 && r["error"].is_string(), "{}: {st} {r}", bad.display());
    }

    // /createtorrent: several files of one folder, with everything.
    let export = tmp.join("export");
    std::fs::create_dir_all(&export).unwrap();
    let paths: Vec<String> = multi_files().iter().map(|(rel, _)| dir.join(rel).display().to_string()).collect();
    let body = json!({"files": paths, "name": "made", "description": "made by a test",
        "trackers": [TRACKER, "http://127.0.0.1:2/announce"], "export_dir": export});
    let r = call(&d, "POST", "/createtorrent", Some(&body));
    assert_eq!((r.status, r.content_type.as_str()), (200, "text/plain; charset=utf-8"), "{}", text(&r));
    let answer_body = r.json();
    assert_eq!(answer_body.as_object().unwrap().keys().collect::<Vec<_>>(), ["torrent"]);
    let made = BASE64.decode(answer_body["torrent"].as_str().unwrap().as_bytes()).expect("base64");
    let t = bdecode(&made);
    let info = t.get("info").unwrap();
    assert_eq!(bstr(info, "name"), "multi");
    assert_eq!(info.get("files").and_then(|f| f.as_list()).map(Vec::len), Some(3));
    assert_eq!((bstr(&t, "comment"), bstr(&t, "announce")), ("made by a test", TRACKER));
    let tiers = t.get("announce-list").and_then(|l| l.as_list()).map(Vec::len);
    assert_eq!(tiers, Some(2));
    assert!(std::fs::read(export.join("made.torrent")).unwrap() == made, "export_dir/<name>.torrent differs");
    // The same data in the same order: the same pieces as the CLI's torrent.
    assert_eq!(info.get("pieces"), bdecode(&torrent).get("info").unwrap().get("pieces"));

    // ?download=1: added from the files' folder, and seeded.
    let r = call(&d, "POST", "/createtorrent?download=1", Some(&json!({"files": [single]})));
    assert_eq!(r.status, 200, "{}", text(&r));
    let new = poll(
        "the created torrent in the list",
        || list(&d, &format!("?excluded={ih}"))["downloads"].clone(),
        |l| l.as_array().unwrap().len() == 1,
    );
    let created = new[0]["infohash"].as_str().unwrap().to_string();
    let dl = wait_seeding(&d, &created);
    assert_eq!((&dl["name"], &dl["destination"]), (&json!("single.iso"), &json!(data.display().to_string())));

    // Its refusals.
    for body in [json!({}), json!({"files": []})] {
        assert_eq!(
            answer(&d, "POST", "/createtorrent", Some(&body)),
            (400, json!({"error": "files parameter missing"}))
        );
    }
    let nowhere = tmp.join("nowhere.bin");
    assert_eq!(
        answer(&d, "POST", "/createtorrent", Some(&json!({"files": [nowhere]}))),
        (
            500,
            json!({"error": {"handled": true, "code": "OSError",
                "message": format!("Path does not exist: {}", nowhere.display())}})
        )
    );
    d.shutdown(KEY);
}

#[test]
fn tools_shapes_and_rate_setting() {
    let tmp = TempDir::new();
    let data = tmp.join("data");
    let (single, _) = write_single(&data, "single.iso", 300_000, 8);
    make_torrent(&single, &tmp.join("single.torrent"), None);
    let d = daemon(&tmp.join("state"));
    let ih = add(&d, &tmp.join("single.torrent"), &data);
    wait_seeding(&d, &ih);

    let settings = ok(&d, "GET", "/libtorrent/settings", None);
    assert_eq!(settings["hop"], json!(0));
    assert!(settings["settings"]["listen_interfaces"].as_str().is_some_and(|s| !s.is_empty()));
    insta::assert_json_snapshot!("libtorrent_settings", settings, {
        ".settings.listen_interfaces" => "[listen]",
        ".settings.user_agent" => "[user_agent]",
    });
    assert_eq!(ok(&d, "GET", "/libtorrent/settings?hop=1", None), json!({"hop": 1, "settings": {}}));
    let session = ok(&d, "GET", "/libtorrent/session?hop=0", None);
    assert_eq!(session["session"]["ses.num_seeding_torrents"], json!(1));
    insta::assert_json_snapshot!("libtorrent_session", session);
    assert_eq!(ok(&d, "GET", "/libtorrent/session?hop=1", None), json!({"hop": 1, "session": {}}));
    let tribler = ok(&d, "GET", "/statistics/tribler", None);
    assert!(tribler["tribler_statistics"]["db_size"].as_u64().is_some_and(|n| n > 0), "{tribler}");
    assert_eq!(tribler["tribler_statistics"]["num_torrents"], json!(1));
    insta::assert_json_snapshot!("statistics_tribler", tribler, {".tribler_statistics.db_size" => "[db_size]"});
    insta::assert_json_snapshot!("statistics_ipv8", ok(&d, "GET", "/statistics/ipv8", None));

    // The global rate limits show in every download and in the engine's settings.
    let dl = download(&d, &ih, "");
    assert_eq!((&dl["max_download_speed"], &dl["max_upload_speed"]), (&json!(0), &json!(0)));
    let r = post_settings(&d, KEY, r#"{"libtorrent": {"max_download_rate": 12345, "max_upload_rate": 777}}"#);
    assert_eq!((r.status, r.json()), (200, json!({"modified": true})));
    let dl = download(&d, &ih, "");
    assert_eq!((&dl["max_download_speed"], &dl["max_upload_speed"]), (&json!(12345), &json!(777)));
    let s = &ok(&d, "GET", "/libtorrent/settings", None)["settings"];
    assert_eq!((&s["download_rate_limit"], &s["upload_rate_limit"]), (&json!(12345), &json!(777)));
    d.shutdown(KEY);
}

#[test]
fn restart_keeps_downloads_and_finishes_once() {
    let tmp = TempDir::new();
    let data = tmp.join("data");
    let dir = write_multi(&data);
    let (single, _) = write_single(&data, "single.iso", 400_000, 9);
    make_torrent(&dir, &tmp.join("multi.torrent"), Some(TRACKER));
    make_torrent(&single, &tmp.join("single.torrent"), None);
    let state = tmp.join("state");
    let d = daemon(&state);
    let log = EventLog::open(&d);
    assert_eq!(log.next()["topic"], "events_start");

    let multi = add(&d, &tmp.join("multi.torrent"), &data);
    let single_ih = add(&d, &tmp.join("single.torrent"), &data);
    // Complete data: one torrent_finished each.
    let mut finished = Vec::new();
    while finished.len() < 2 {
        let e = log.next();
        if e["topic"] == "torrent_finished" {
            finished.push(e);
        }
    }
    finished.sort_by_key(|e| e["kwargs"]["name"].as_str().unwrap().to_string());
    assert_eq!(finished, [finished_event(&multi, "multi"), finished_event(&single_ih, "single.iso")]);
    let before_multi = wait_seeding(&d, &multi);
    wait_seeding(&d, &single_ih);
    patched(&d, &single_ih, json!({"state": "stop"}));
    let before_single = wait_for(&d, &single_ih, "STOPPED", |dl| dl["status"] == "STOPPED");
    let again: Vec<Value> = log.until_marker(&d).into_iter().filter(|e| e["topic"] == "torrent_finished").collect();
    assert_eq!(again, Vec::<Value>::new(), "torrent_finished more than once");
    d.shutdown(KEY);

    // Restart on the same state: both back, as they were.
    let d = daemon(&state);
    let log = EventLog::open(&d);
    assert_eq!(log.next()["topic"], "events_start");
    let body = poll("all checkpoints loaded", || list(&d, ""), |b| b["checkpoints"]["all_loaded"] == json!(true));
    assert_eq!(body["checkpoints"], json!({"total": 2, "loaded": 2, "all_loaded": true}));
    let after_multi = wait_seeding(&d, &multi);
    let after_single = wait_for(&d, &single_ih, "STOPPED", |dl| dl["status"] == "STOPPED");
    assert_eq!(status(&after_single), ("STOPPED", 5));
    for (before, after) in [(&before_multi, &after_multi), (&before_single, &after_single)] {
        assert_eq!(
            (&after["time_added"], &after["destination"]),
            (&before["time_added"], &before["destination"]),
            "{}",
            after["name"]
        );
    }
    let order: Vec<&Value> = body["downloads"].as_array().unwrap().iter().map(|dl| &dl["infohash"]).collect();
    assert_eq!(order, [&json!(multi), &json!(single_ih)]);
    // Resumed, the stopped one seeds at once, and nothing is announced as finished again.
    patched(&d, &single_ih, json!({"state": "resume"}));
    wait_seeding(&d, &single_ih);
    let again: Vec<Value> = log.until_marker(&d).into_iter().filter(|e| e["topic"] == "torrent_finished").collect();
    assert_eq!(again, Vec::<Value>::new(), "torrent_finished again after a restart");
    d.shutdown(KEY);
}

#[test]
fn a_magnet_without_peers_waits_in_metadata_and_survives_a_restart() {
    let tmp = TempDir::new();
    let dest = tmp.join("dl");
    let state = tmp.join("state");
    let ih = "0123456789abcdef".repeat(2) + "01234567";
    let uri = format!("magnet:?xt=urn:btih:{ih}&dn=Some%20Name&tr=http%3A%2F%2F127.0.0.1%3A1%2Fannounce");
    let d = daemon(&state);
    let added = ok(&d, "PUT", "/downloads", Some(&json!({"uri": uri, "destination": dest})));
    assert_eq!(added, json!({"started": true, "infohash": ih}));
    // Adding it again is the same download.
    assert_eq!(ok(&d, "PUT", "/downloads", Some(&json!({"uri": uri, "destination": dest})))["infohash"], json!(ih));

    let dl = wait_for(&d, &ih, "METADATA", |dl| dl["status"] == "METADATA");
    assert_eq!(status(&dl), ("METADATA", 7));
    assert_eq!((&dl["name"], &dl["size"], &dl["total_pieces"]), (&json!("Some Name"), &json!(0), &json!(0)));
    let full = download(&d, &ih, "&get_pieces=1&get_files=1");
    assert_eq!((&full["pieces"], &full["files"]), (&json!(""), &json!([])));
    assert_eq!(ok(&d, "GET", &format!("/downloads/{ih}/files"), None)["files"], json!([]));
    let view = ok(&d, "GET", &format!("/downloads/{ih}/files?view_start_path=.&view_size=5"), None);
    assert_eq!(view["files"], json!([{"index": -3, "name": "loading...", "size": 0, "included": 0, "progress": 0.0}]));
    let (st, body) = answer(&d, "GET", &format!("/downloads/{ih}/torrent"), None);
    assert_eq!((st, body), (404, json!({"error": "this download does not exist"})));

    // The magnet is kept as resume data and comes back in METADATA.
    d.shutdown(KEY);
    let d = daemon(&state);
    let dl = wait_for(&d, &ih, "METADATA after restart", |dl| dl["status"] == "METADATA");
    assert_eq!(dl["name"], "Some Name");
    assert!(!dest.exists() || std::fs::read_dir(&dest).unwrap().next().is_none(), "nothing is written before metadata");
}

#[test]
fn low_space_is_announced_once_for_a_download_disk() {
    let tmp = TempDir::new();
    let data = tmp.join("data");
    let (single, _) = write_single(&data, "single.iso", 100_000, 3);
    make_torrent(&single, &tmp.join("single.torrent"), None);
    // Every disk is "low" below an absurd threshold (the test's stand-in for a full disk).
    let d = start(Opts {
        state: Some(&tmp.join("state")),
        args: vec!["--api-key", KEY],
        env: vec![("SHOAL_LOW_SPACE_BYTES", u64::MAX.to_string())],
        ..Opts::default()
    });
    let log = EventLog::open(&d);
    assert_eq!(log.next()["topic"], "events_start");
    add(&d, &tmp.join("single.torrent"), &data);
    let low = loop {
        let e = log.next();
        if e["topic"] == "low_space" {
            break e;
        }
    };
    let info = &low["args"][0];
    let (total, used, free) =
        (info["total"].as_u64().unwrap(), info["used"].as_u64().unwrap(), info["free"].as_u64().unwrap());
    assert!(total > 0 && used + free <= total + total / 10, "{low}");
    assert!(
        info["percent"].as_f64().is_some_and(|p| (0.0..=100.0).contains(&p)) && info["time"].as_f64().is_some(),
        "{low}"
    );
    // Once per disk, not at every look.
    let later = log.until_marker(&d);
    assert!(later.iter().all(|e| e["topic"] != "low_space"), "{later:?}");
}

/// Serves `body` to every HTTP GET on a loopback port until the test ends; returns its URL.
fn serve_once_per_request(body: Vec<u8>) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/x.torrent", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            // Read the request head up to its blank line.
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/x-bittorrent\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    url
}

#[test]
fn torrents_are_fetched_from_http_urls() {
    let tmp = TempDir::new();
    let data = tmp.join("data");
    let (single, _) = write_single(&data, "web.iso", 200_000, 11);
    let torrent = make_torrent(&single, &tmp.join("web.torrent"), None);
    let url = serve_once_per_request(torrent.clone());
    let d = daemon(&tmp.join("state"));

    let info = ok(&d, "GET", &format!("/torrentinfo?uri={}", enc(&url)), None);
    let text = HEXLOWER.decode(info["metainfo"].as_str().unwrap().as_bytes()).unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&text).unwrap()["info"]["name"], "web.iso");

    let added = ok(&d, "PUT", "/downloads", Some(&json!({"uri": url, "destination": data})));
    let ih = added["infohash"].as_str().unwrap().to_string();
    wait_seeding(&d, &ih);
    let exported = call(&d, "GET", &format!("/downloads/{ih}/torrent"), None);
    assert_eq!((exported.status, &exported.body), (200, &torrent));

    // A URL nobody answers: Tribler's 500 with a message.
    let (st, body) = answer(&d, "PUT", "/downloads", Some(&json!({"uri": "http://127.0.0.1:1/none.torrent"})));
    assert_eq!(st, 500);
    assert!(body["error"].as_str().unwrap().starts_with("cannot fetch http://127.0.0.1:1/none.torrent"), "{body}");
}

/// Asserts a 400 whose `error` names `field` (issue #14 finding 9: wrong types were ignored).
fn assert_refused(what: &str, (status, answer): (u16, Value), field: &str) {
    let error = answer["error"].as_str().unwrap_or_default();
    assert_eq!(status, 400, "{what}: {answer}");
    assert!(error.contains(field), "{what}: the error does not name {field}: {answer}");
}

#[test]
fn fields_of_the_wrong_type_or_range_are_refused_naming_them() {
    let tmp = TempDir::new();
    let data = tmp.join("data");
    let dir = write_multi(&data);
    let torrent = tmp.join("multi.torrent");
    let bytes = make_torrent(&dir, &torrent, None);
    let d = daemon(&tmp.join("state"));
    let uri = file_uri(&torrent);

    // PUT /downloads, JSON body: each would otherwise add the download.
    let add_cases = [
        ("destination", json!({"uri": uri, "destination": 5})),
        ("destination", json!({"uri": uri, "destination": [data]})),
        ("safe_seeding", json!({"uri": uri, "destination": data, "safe_seeding": "yes"})),
        ("safe_seeding", json!({"uri": uri, "destination": data, "safe_seeding": 2})),
        ("safe_seeding", json!({"uri": uri, "destination": data, "safe_seeding": {}})),
        ("anon_hops", json!({"uri": uri, "destination": data, "anon_hops": -1})),
        ("anon_hops", json!({"uri": uri, "destination": data, "anon_hops": "0"})),
        ("anon_hops", json!({"uri": uri, "destination": data, "anon_hops": 4})),
        ("selected_files", json!({"uri": uri, "destination": data, "selected_files": "0"})),
        ("selected_files", json!({"uri": uri, "destination": data, "selected_files": [-1]})),
        ("uri", json!({"uri": 7, "destination": data})),
        ("destinaton", json!({"uri": uri, "destinaton": data})),
    ];
    for (field, body) in add_cases {
        assert_refused(&format!("PUT {body}"), answer(&d, "PUT", "/downloads", Some(&body)), field);
    }
    // Raw .torrent body, options in the query.
    let dest = enc(&data.display().to_string());
    for (field, query) in [
        ("anon_hops", format!("destination={dest}&anon_hops=-1")),
        ("safe_seeding", format!("destination={dest}&safe_seeding=maybe")),
        ("selected_files", format!("destination={dest}&selected_files=0,x")),
    ] {
        let r = request(
            &d,
            "PUT",
            &format!("/downloads?{query}"),
            &[("X-Api-Key", KEY), ("Content-Type", "application/x-bittorrent")],
            Some(&bytes),
        );
        assert_refused(&format!("PUT ?{query}"), (r.status, r.json()), field);
    }
    assert_eq!(list(&d, "")["downloads"], json!([]), "a refused request added a download");

    // PATCH /downloads/{ih}: nothing of a refused body is applied.
    let ih = add(&d, &torrent, &data);
    wait_seeding(&d, &ih);
    let patch_cases = [
        ("state", json!({"state": 1})),
        ("dest_dir", json!({"state": "move_storage", "dest_dir": 5})),
        ("dest_dir", json!({"dest_dir": data})),
        ("selected_files", json!({"selected_files": "all"})),
        ("selected_files", json!({"selected_files": [0.5]})),
        ("vod_mode", json!({"vod_mode": "yes", "fileindex": 0})),
        ("fileindex", json!({"vod_mode": true, "fileindex": "0"})),
        ("fileindex", json!({"fileindex": 0})),
        ("anon_hops", json!({"anon_hops": -1})),
        ("anon_hops", json!({"anon_hops": null})),
        ("anon_hops", json!({"anon_hops": "1"})),
        ("stat", json!({"stat": "stop"})),
        ("state", json!({"selected_files": [0], "state": "pause"})),
    ];
    for (field, body) in patch_cases {
        assert_refused(&format!("PATCH {body}"), patch(&d, &ih, body.clone()), field);
    }
    assert_eq!(included(&files(&d, &ih)), [true, true, true], "a refused PATCH changed the selection");
    let dl = download(&d, &ih, "");
    assert_eq!((status(&dl), &dl["hops"]), (("SEEDING", 4), &json!(0)), "{dl:#}");
    d.shutdown(KEY);
}

#[test]
fn a_recheck_sees_a_file_deleted_under_a_seeding_download() {
    let tmp = TempDir::new();
    let data = tmp.join("data");
    let dir = write_multi(&data);
    make_torrent(&dir, &tmp.join("multi.torrent"), None);
    let d = daemon(&tmp.join("state"));
    let ih = add(&d, &tmp.join("multi.torrent"), &data);
    wait_seeding(&d, &ih);
    // Read while seeding (the check that made it a seed opened it), then deleted under it.
    std::fs::remove_file(dir.join("video.mkv")).unwrap();
    patched(&d, &ih, json!({"state": "recheck"}));
    let dl = wait_for(&d, &ih, "checked again, with the deleted file missing", |dl| {
        !matches!(dl["status"].as_str(), Some("HASHCHECKING" | "WAITING_FOR_HASHCHECK" | "SEEDING"))
    });
    let progress = dl["progress"].as_f64().unwrap();
    assert!(progress < 1.0, "a recheck still reports {progress} with video.mkv deleted: {dl:#}");
    let files = files(&d, &ih);
    let video = files.iter().find(|f| f["name"].as_str().unwrap().ends_with("video.mkv")).unwrap();
    assert_eq!(video["progress"], json!(0.0), "pieces of the deleted file are still counted: {files:#?}");
    d.shutdown(KEY);
}
