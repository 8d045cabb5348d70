//! `shoal daemon`'s download endpoints end to end, against the Tribler 7.13 REST reference
//! (`shared/tribler-api/README.md` §1, §4, §5 and the live samples next to it).
//!
//! Each test starts the real binary on a temp state dir (`--http-port 0`, `SHOAL_LOCAL_ONLY=1`)
//! and drives it over HTTP on loopback; the swarm is python-libtorrent seeders found through a
//! real opentracker, also on loopback. Downloads whose data is already in place (a torrent
//! added with the seeder's own directory as destination) need no peer at all. Nothing sleeps
//! to synchronise: every wait polls the REST API, a log or a process, with a deadline.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::{json, Value};
use shoal_tests::bencode::{decode, Value as Bencode};
use shoal_tests::daemon::{
    assert_download_fields, base64_decode, progress, status, tracker_entry, Daemon, CIRCUITS, DOWNLOADING, SEEDING,
    STATUS_NAMES, STOPPED,
};
use shoal_tests::data::{self, list_files, Compare, FileSpec};
use shoal_tests::peers;
use shoal_tests::wait::wait_for;
use shoal_tests::{assert_same_tree, compare_trees, free_port, InfoHash, Opentracker, Proc, TestDir};

/// The API key every daemon here is started with.
const KEY: &str = "e2e-daemon-key";

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// Upper bound for a transfer or a state change (they take seconds when things work).
const TIMEOUT: Duration = Duration::from_secs(45);

/// Upper bound for one HTTP exchange (a stream read waits for pieces to arrive).
const HTTP_TIMEOUT: Duration = Duration::from_secs(45);

/// How long a daemon may take to exit after `PUT /shutdown` or SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// An info-hash no test adds.
const UNKNOWN: &str = "00000000000000000000000000000000000000aa";

// ---------------------------------------------------------------------------------------------
// HTTP.

/// An HTTP response, read whole.
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}), status {}: {}", self.status, self.text()))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as text, cut to a readable length for failure messages.
    fn text(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        text.chars().take(2000).collect()
    }
}

/// An HTTP client that returns every status as a response; `timeout` bounds a whole exchange.
fn agent(timeout: Option<Duration>) -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).proxy(None).timeout_global(timeout).build().into()
}

/// A client of one daemon's REST API.
struct Api {
    base: String,
    agent: ureq::Agent,
}

impl Api {
    fn new(d: &Daemon) -> Api {
        Api { base: d.url(""), agent: agent(Some(HTTP_TIMEOUT)) }
    }

    /// `method path` with exactly these headers (no key unless given).
    fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<Vec<u8>>) -> Resp {
        let req = ureq::http::Request::builder().method(method).uri(format!("{}{path}", self.base));
        let req = headers.iter().fold(req, |r, (k, v)| r.header(*k, *v));
        let result = match body {
            Some(b) => self.agent.run(req.body(b).expect("valid request")),
            None => self.agent.run(req.body(()).expect("valid request")),
        };
        let mut resp = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = resp
            .body_mut()
            .with_config()
            .limit(256 * MIB)
            .read_to_vec()
            .unwrap_or_else(|e| panic!("{method} {path}: reading the body: {e}"));
        Resp { status, headers, body }
    }

    /// `method path` with the key and an optional JSON body.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        let body = body.map(|b| b.to_string().into_bytes());
        self.send(method, path, &[("X-Api-Key", KEY), ("Content-Type", "application/json")], body)
    }

    fn get(&self, path: &str) -> Resp {
        self.call("GET", path, None)
    }

    /// `method path` with a JSON body; asserts 200 and returns the JSON answer.
    fn ok(&self, method: &str, path: &str, body: &Value) -> Value {
        let r = self.call(method, path, Some(body));
        assert_eq!(r.status, 200, "{method} {path} {body}: {}", r.text());
        r.json()
    }

    /// `GET /downloads<query>`: the download list (after checking the envelope's shape).
    fn downloads(&self, query: &str) -> Vec<Value> {
        let r = self.get(&format!("/downloads{query}"));
        assert_eq!(r.status, 200, "GET /downloads{query}: {}", r.text());
        let body = r.json();
        let cp = &body["checkpoints"];
        assert!(
            cp["total"].is_u64() && cp["loaded"].is_u64() && cp["all_loaded"].is_boolean(),
            "checkpoints must be {{total, loaded, all_loaded}}: {body}"
        );
        body["downloads"].as_array().unwrap_or_else(|| panic!("downloads is not a list: {body}")).clone()
    }

    /// The download `ih` as `GET /downloads` lists it, if it does.
    fn find(&self, ih: &str) -> Option<Value> {
        self.downloads("").into_iter().find(|d| d["infohash"] == ih)
    }

    /// `PUT /downloads` with a JSON body; asserts `{"started": true, "infohash": <hex>}`.
    fn add(&self, body: Value) -> String {
        let answer = self.ok("PUT", "/downloads", &body);
        assert_eq!(answer["started"], json!(true), "PUT /downloads {body}: {answer}");
        let ih = answer["infohash"].as_str().unwrap_or_else(|| panic!("no infohash in {answer}")).to_string();
        assert!(ih.len() == 40 && ih.bytes().all(|b| b.is_ascii_hexdigit()), "bad infohash in {answer}");
        ih
    }

    /// Adds `torrent` (a `file:` URI) to download into `dest`, no anonymity.
    fn add_file(&self, torrent: &Path, dest: &Path) -> String {
        self.add(json!({
            "uri": format!("file:{}", torrent.display()),
            "destination": dest,
            "anon_hops": 0,
            "safe_seeding": 0,
        }))
    }

    /// Polls `GET /downloads` until the download `ih` satisfies `pred`; returns it. Panics with
    /// the states seen if that does not happen within [`TIMEOUT`].
    fn wait(&self, ih: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let mut seen: Vec<String> = Vec::new();
        let mut last = Value::Null;
        let res = wait_for(&format!("download {ih} to be {what}"), TIMEOUT, || {
            let dl = self.find(ih)?;
            let state = format!("{}@{:.3}", dl["status"], dl["progress"]);
            if seen.last() != Some(&state) {
                seen.push(state);
            }
            let done = pred(&dl);
            last = dl;
            done.then(|| last.clone())
        });
        res.unwrap_or_else(|e| panic!("{e}\nstates seen: {}\nlast: {last}", seen.join(" → ")))
    }

    /// Waits until the download `ih` has status `code` (and returns it).
    fn wait_status(&self, ih: &str, code: i64) -> Value {
        self.wait(ih, STATUS_NAMES[code as usize], |dl| status(dl) == code)
    }

    /// `GET /downloads/{ih}/stream/{index}` with the key and an optional `Range` header.
    fn stream(&self, ih: &str, index: usize, range: Option<&str>) -> Resp {
        let path = format!("/downloads/{ih}/stream/{index}");
        match range {
            Some(r) => self.send("GET", &path, &[("X-Api-Key", KEY), ("Range", r)], None),
            None => self.send("GET", &path, &[("X-Api-Key", KEY)], None),
        }
    }
}

/// `PUT /shutdown` and wait for the daemon to exit 0.
fn shutdown(api: &Api, d: Daemon) {
    let r = api.call("PUT", "/shutdown", None);
    assert_eq!((r.status, r.json()), (200, json!({"shutdown": true})));
    d.expect_exit(STOP_TIMEOUT);
}

/// Asserts a handled error: `status` and exactly `{"error": message}`.
fn assert_error(r: &Resp, status: u16, message: &str, what: &str) {
    assert_eq!((r.status, r.json()), (status, json!({ "error": message })), "{what}");
}

// ---------------------------------------------------------------------------------------------
// Torrents, seeders, files.

/// What a torrent holds.
enum Payload {
    /// One file of this size.
    Single(u64),
    /// A directory with these files.
    Tree(Vec<FileSpec>),
}

/// A payload written under the test's `seed/` dir and a torrent of it.
struct Made {
    /// The file or top directory of the payload (under `seed/`).
    content: PathBuf,
    torrent: PathBuf,
    hash: InfoHash,
    /// The info-hash in lowercase hex.
    ih: String,
    /// The torrent's name (the payload's file name).
    name: String,
}

impl Made {
    /// The directory that holds the payload: a download into it finds its data in place.
    fn seed_dir(&self) -> &Path {
        self.content.parent().expect("payloads live in a directory")
    }

    /// `file:<abs path of the .torrent>`
    fn uri(&self) -> String {
        format!("file:{}", self.torrent.display())
    }
}

/// Writes `payload` as `seed/<name>` and makes a v1 torrent of it with libtorrent.
fn make(td: &TestDir, name: &str, payload: Payload, piece_size: u64, trackers: &[String], seed: u64) -> Made {
    let root = td.dir("seed");
    let content = match payload {
        Payload::Single(size) => data::single_file(&root, name, size, seed),
        Payload::Tree(files) => data::tree(&root, name, &files, seed),
    };
    let torrent = td.join(&format!("{name}.torrent"));
    peers::lt_make(td, &content, &torrent, piece_size, trackers, peers::LtKind::V1);
    let hash = InfoHash::of_file(&torrent);
    Made { content, torrent, hash, ih: hash.hex(), name: name.to_string() }
}

/// Starts a libtorrent seeder of `made` (uploading at most `rate` bytes/s, 0 = unlimited),
/// allowed by and announced to `tracker`; returns it and its port once the tracker lists it.
fn lt_seeder(td: &TestDir, made: &Made, tracker: &Opentracker, rate: u64) -> (Proc, u16) {
    tracker.allow(made.hash);
    let port = free_port();
    let mut cmd = peers::script("lt_seed.py");
    cmd.arg("--torrent").arg(&made.torrent);
    cmd.arg("--save-path").arg(made.seed_dir());
    cmd.args(["--port", &port.to_string()]);
    if rate > 0 {
        cmd.args(["--upload-rate", &rate.to_string()]);
    }
    let mut p = Proc::spawn(&format!("lt_seed_{}", made.name), cmd, &td.logs(), Duration::from_secs(3));
    p.wait_stdout("print ready", Duration::from_secs(60), |s| s.lines().any(|l| l == "ready"));
    tracker.wait_peers(made.hash, 1, TIMEOUT);
    (p, port)
}

/// The files of a torrent as `(path inside the torrent, length)`, in torrent order.
fn torrent_files(torrent: &Path) -> Vec<(String, u64)> {
    let meta = decode(&std::fs::read(torrent).expect("read torrent")).expect("our torrents decode");
    let info = meta.get("info").expect("torrent has info");
    let length = |v: &Bencode| v.get("length").and_then(Bencode::as_int).expect("file length") as u64;
    match info.get("files").and_then(Bencode::as_list) {
        Some(files) => files
            .iter()
            .map(|f| {
                let parts = f.get("path").and_then(Bencode::as_list).expect("file path");
                let parts: Vec<&str> = parts.iter().map(|p| p.as_str().expect("UTF-8 path")).collect();
                (parts.join("/"), length(f))
            })
            .collect(),
        None => vec![(info.get("name").and_then(Bencode::as_str).expect("name").to_string(), length(info))],
    }
}

/// The piece length of a torrent.
fn piece_length(torrent: &Path) -> u64 {
    let meta = decode(&std::fs::read(torrent).expect("read torrent")).expect("our torrents decode");
    meta.get("info").and_then(|i| i.get("piece length")).and_then(Bencode::as_int).expect("piece length") as u64
}

/// Flips one byte of a file on disk.
fn flip_byte(path: &Path, offset: u64) {
    let f = std::fs::OpenOptions::new().read(true).write(true).open(path).expect("open file to corrupt");
    let mut b = [0u8];
    f.read_exact_at(&mut b, offset).expect("read byte to corrupt");
    b[0] ^= 0xff;
    f.write_all_at(&b, offset).expect("write corrupted byte");
    f.sync_all().expect("sync corrupted file");
}

/// The regular files under `dir` (none if it does not exist).
fn files_under(dir: &Path) -> Vec<String> {
    if !dir.exists() {
        return Vec::new();
    }
    list_files(dir).unwrap_or_else(|e| panic!("{e}"))
}

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs()
}

// =============================================================================================
// Tests.

/// Requests Tribler refuses, and unknown downloads, get Tribler's status codes and messages;
/// none of them adds, changes or removes anything.
#[test]
fn refused_requests_and_unknown_downloads_get_tribler_errors() {
    let td = TestDir::new("daemon-errors");
    let made = make(&td, "one.bin", Payload::Single(300_001), 32 * KIB, &[], 11);
    let d = Daemon::start(&td, "daemon", &td.dir("state"), KEY);
    let api = Api::new(&d);

    let empty = json!({"downloads": [], "checkpoints": {"total": 0, "loaded": 0, "all_loaded": true}});
    assert_eq!(api.get("/downloads").json(), empty, "a fresh daemon lists nothing");

    // Adding.
    let r = api.call("PUT", "/downloads", Some(&json!({})));
    assert_error(&r, 400, "uri parameter missing", "PUT without uri");
    let r = api.call("PUT", "/downloads", Some(&json!({"destination": td.path()})));
    assert_error(&r, 400, "uri parameter missing", "PUT with a destination but no uri");
    let missing = td.path().join("no-such.torrent");
    let r = api.call("PUT", "/downloads", Some(&json!({"uri": format!("file:{}", missing.display())})));
    assert_eq!(r.status, 500, "PUT of a missing .torrent: {}", r.text());
    let message = r.json()["error"].as_str().map(str::to_string);
    assert!(message.is_some_and(|m| !m.is_empty()), "the error must be a non-empty string: {}", r.text());
    for body in [
        json!({"uri": made.uri(), "anon_hops": 1}),
        json!({"uri": made.uri(), "anon_hops": 1, "safe_seeding": 0}),
        json!({"uri": made.uri(), "anon_hops": 2, "safe_seeding": false, "destination": made.seed_dir()}),
    ] {
        let r = api.call("PUT", "/downloads", Some(&body));
        assert_error(&r, 400, "Cannot set anonymous download without safe seeding enabled", &body.to_string());
    }
    assert_eq!(api.get("/downloads").json(), empty, "a refused PUT added a download");

    // Unknown downloads: 404 everywhere.
    let not_found = "this download does not exist";
    let r = api.call("PATCH", &format!("/downloads/{UNKNOWN}"), Some(&json!({"state": "stop"})));
    assert_error(&r, 404, not_found, "PATCH of an unknown download");
    let r = api.call("DELETE", &format!("/downloads/{UNKNOWN}"), Some(&json!({"remove_data": false})));
    assert_error(&r, 404, not_found, "DELETE of an unknown download");
    assert_error(&api.get(&format!("/downloads/{UNKNOWN}/files")), 404, not_found, "files of an unknown download");
    assert_error(&api.get(&format!("/downloads/{UNKNOWN}/torrent")), 404, not_found, "torrent of an unknown download");
    assert_eq!(api.stream(UNKNOWN, 0, None).status, 404, "stream of an unknown download");

    // A download (its data is in place, so it needs no peer) and the requests it refuses.
    let ih = api.add_file(&made.torrent, made.seed_dir());
    assert_eq!(ih, made.ih, "the infohash of PUT /downloads is the torrent's");
    let path = format!("/downloads/{ih}");
    assert_eq!(api.ok("PATCH", &path, &json!({})), json!({"modified": true, "infohash": ih}), "an empty PATCH");
    let r = api.call("PATCH", &path, Some(&json!({"state": "foo"})));
    assert_error(&r, 400, "unknown state parameter", "PATCH with an unknown state");
    for files in [json!([1]), json!([0, 7])] {
        let r = api.call("PATCH", &path, Some(&json!({ "selected_files": files })));
        assert_error(&r, 400, "index out of range", &format!("selected_files {files} of a 1-file torrent"));
    }
    let nowhere = td.path().join("no-such-dir");
    let r = api.call("PATCH", &path, Some(&json!({"state": "move_storage", "dest_dir": nowhere})));
    let expected = format!("Target directory ({}) does not exist", nowhere.display());
    assert_error(&r, 200, &expected, "move_storage to a missing directory (Tribler answers 200)");
    let r = api.call("PATCH", &path, Some(&json!({"vod_mode": 1})));
    assert_error(&r, 400, "vod_mode must be bool flag", "vod_mode not a bool");
    let r = api.call("PATCH", &path, Some(&json!({"vod_mode": true})));
    assert_error(&r, 400, "fileindex is necessary to enable vod_mode", "vod_mode without fileindex");
    let r = api.call("DELETE", &path, Some(&json!({})));
    assert_error(&r, 400, "remove_data parameter missing", "DELETE without remove_data");

    let dl = api.find(&ih).expect("the refused requests removed the download");
    assert_eq!(dl["destination"], json!(made.seed_dir()), "a refused move_storage changed the destination");
    let files = api.get(&format!("{path}/files")).json();
    assert_eq!(files["files"][0]["included"], json!(true), "a refused selected_files changed the selection: {files}");
    shutdown(&api, d);
}

/// Downloads added as a `file:` URI and as a raw .torrent body are listed with every field of
/// §4.3, in insertion order; the `infohash`/`excluded` filters, `get_pieces`, `get_files`, the
/// files endpoint, the .torrent export and `vod_mode` report what the torrents hold, and
/// `max_*_speed` follow the global rate limits of `POST /settings`.
#[test]
fn download_objects_filters_files_and_torrent_export() {
    let td = TestDir::new("daemon-objects");
    let tree = vec![
        FileSpec::new("video.mkv", 700_001),
        FileSpec::new("readme.txt", 6),
        FileSpec::new("sub/extra.bin", 100_000),
        FileSpec::new("sub/deeper/empty", 0),
    ];
    let a = make(&td, "multi", Payload::Tree(tree), 16 * KIB, &[], 21);
    let b = make(&td, "single.iso", Payload::Single(1_500_000), 256 * KIB, &[], 22);
    let d = Daemon::start(&td, "daemon", &td.dir("state"), KEY);
    let api = Api::new(&d);
    let before = unix_now();

    let ih_a = api.add_file(&a.torrent, a.seed_dir());
    assert_eq!(ih_a, a.ih);
    // A raw .torrent body, options as query parameters.
    let dest = utf8_percent_encode(b.seed_dir().to_str().expect("UTF-8 temp path"), NON_ALPHANUMERIC).to_string();
    let r = api.send(
        "PUT",
        &format!("/downloads?destination={dest}&anon_hops=0&safe_seeding=0"),
        &[("X-Api-Key", KEY), ("Content-Type", "application/x-bittorrent")],
        Some(std::fs::read(&b.torrent).expect("read torrent")),
    );
    assert_eq!((r.status, r.json()), (200, json!({"started": true, "infohash": b.ih})), "PUT of a raw .torrent");
    // Adding again (also as file:///) returns the same download.
    assert_eq!(api.add(json!({"uri": format!("file://{}", a.torrent.display())})), a.ih);
    assert_eq!(api.add_file(&a.torrent, a.seed_dir()), a.ih);

    // The data is in place: both check it and seed.
    api.wait(&a.ih, "SEEDING with progress 1", |dl| status(dl) == SEEDING && progress(dl) == 1.0);
    api.wait(&b.ih, "SEEDING with progress 1", |dl| status(dl) == SEEDING && progress(dl) == 1.0);
    let after = unix_now();

    let all = api.downloads("");
    let order: Vec<&str> = all.iter().filter_map(|dl| dl["infohash"].as_str()).collect();
    assert_eq!(order, [a.ih.as_str(), b.ih.as_str()], "one entry per torrent, in insertion order");
    for (dl, made) in all.iter().zip([&a, &b]) {
        assert_download_fields(dl);
        let files = torrent_files(&made.torrent);
        let size: u64 = files.iter().map(|f| f.1).sum();
        let pieces = size.div_ceil(piece_length(&made.torrent));
        assert_eq!(dl["name"], json!(made.name), "{dl}");
        assert_eq!(dl["size"], json!(size), "{dl}");
        assert_eq!(dl["total_pieces"], json!(pieces), "{dl}");
        assert_eq!(dl["destination"], json!(made.seed_dir()), "{dl}");
        assert_eq!((&dl["hops"], &dl["anon_download"], &dl["safe_seeding"]), (&json!(0), &json!(false), &json!(false)));
        assert_eq!(dl["vod_mode"], Value::Null, "vod_mode is null until streaming is used: {dl}");
        assert_eq!(dl["error"], json!(""), "{dl}");
        let added = dl["time_added"].as_u64().expect("checked above");
        assert!((before.saturating_sub(2)..=after + 2).contains(&added), "time_added {added} is not now: {dl}");
        let urls: Vec<&Value> = dl["trackers"].as_array().expect("checked").iter().map(|t| &t["url"]).collect();
        assert_eq!(urls, [&json!("[DHT]"), &json!("[PeX]")], "a torrent without trackers has only the pseudo ones");
    }

    // Filters.
    let only_a: Vec<Value> = api.downloads(&format!("?infohash={}", a.ih));
    assert_eq!(only_a.len(), 1, "infohash= lists only that download: {only_a:?}");
    assert_eq!(only_a[0]["infohash"], json!(a.ih));
    let but_a = api.downloads(&format!("?excluded={}", a.ih));
    assert_eq!(but_a.len(), 1, "excluded= lists all but that download: {but_a:?}");
    assert_eq!(but_a[0]["infohash"], json!(b.ih));

    // get_pieces: the have-bitfield, MSB first, padded to bytes; all set when seeding.
    for dl in api.downloads("?get_pieces=1") {
        let n = dl["total_pieces"].as_u64().expect("total_pieces") as usize;
        let text = dl["pieces"].as_str().unwrap_or_else(|| panic!("get_pieces=1 gives no pieces string: {dl}"));
        let bits = base64_decode(text).unwrap_or_else(|| panic!("pieces is not base64: {text:?}"));
        assert_eq!(bits.len(), n.div_ceil(8), "pieces holds {n} bits padded to bytes: {text:?}");
        let set: Vec<bool> = (0..bits.len() * 8).map(|i| bits[i / 8] & (0x80 >> (i % 8)) != 0).collect();
        assert!(set[..n].iter().all(|&b| b), "a seeding download has every piece: {text:?}");
        assert!(set[n..].iter().all(|&b| !b), "padding bits must be zero: {text:?}");
    }

    // The files endpoint and get_files=1: path inside the torrent, size, included, progress.
    let files = api.get(&format!("/downloads/{}/files", a.ih));
    assert_eq!(files.status, 200, "{}", files.text());
    let files = files.json();
    assert_eq!(files["infohash"], json!(a.ih));
    let expected: Vec<Value> = torrent_files(&a.torrent)
        .into_iter()
        .enumerate()
        .map(|(i, (name, size))| json!({"index": i, "name": name, "size": size, "included": true, "progress": 1.0}))
        .collect();
    assert_eq!(files["files"], json!(expected), "GET /downloads/{{ih}}/files");
    let inline = api.downloads("?get_files=1");
    assert_eq!(inline[0]["files"], json!(expected), "get_files=1 lists the same files");
    assert_eq!(inline[1]["files"][0]["name"], json!(b.name), "a single-file torrent's file is named after it");

    // The .torrent export.
    let r = api.get(&format!("/downloads/{}/torrent", b.ih));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/x-bittorrent"));
    assert_eq!(InfoHash::of_torrent(&r.body).map(|h| h.hex()), Ok(b.ih.clone()), "the exported torrent's info-hash");

    // vod_mode on and off.
    let on = api.ok("PATCH", &format!("/downloads/{}", a.ih), &json!({"vod_mode": true, "fileindex": 0}));
    assert_eq!((&on["vod_mode"], &on["infohash"]), (&json!(true), &json!(a.ih)), "{on}");
    for f in
        ["vod_prebuffering_progress", "vod_prebuffering_progress_consec", "vod_header_progress", "vod_footer_progress"]
    {
        assert!(on[f].is_number(), "the vod_mode answer has `{f}`: {on}");
    }
    assert!(on["modified"].is_boolean(), "the vod_mode answer has `modified`: {on}");
    assert_eq!(api.find(&a.ih).expect("listed")["vod_mode"], json!(true));
    api.ok("PATCH", &format!("/downloads/{}", a.ih), &json!({"vod_mode": false}));
    assert_eq!(api.find(&a.ih).expect("listed")["vod_mode"], json!(false));

    // max_*_speed repeat the global rate limits.
    let r = api.call(
        "POST",
        "/settings",
        Some(&json!({"libtorrent": {"max_download_rate": 123_456, "max_upload_rate": 654_321}})),
    );
    assert_eq!((r.status, r.json()), (200, json!({"modified": true})));
    for dl in api.downloads("") {
        assert_eq!((&dl["max_download_speed"], &dl["max_upload_speed"]), (&json!(123_456), &json!(654_321)), "{dl}");
    }

    // Nothing of this touched the data.
    assert_same_tree(&a.content, &a.seed_dir().join(&a.name), Compare::default());
    shutdown(&api, d);
}

/// A tracker that has not answered yet is listed as "Not contacted yet" even while its first
/// announce is in flight (Tribler shows the result of the last announce, never an in-flight
/// state), then with a failure status once the connection breaks.
#[test]
fn tracker_status_while_the_first_announce_hangs() {
    let td = TestDir::new("daemon-tracker-hangs");
    // A "tracker" that accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    silent.set_nonblocking(true).expect("nonblocking listener");
    let url = format!("http://127.0.0.1:{}/announce", silent.local_addr().expect("bound").port());
    let made = make(&td, "quiet.bin", Payload::Single(100_000), 16 * KIB, std::slice::from_ref(&url), 131);
    let d = Daemon::start(&td, "daemon", &td.dir("state"), KEY);
    let api = Api::new(&d);
    let ih = api.add_file(&made.torrent, made.seed_dir());

    let conn = wait_for("the daemon to announce to the silent tracker", TIMEOUT, || silent.accept().ok())
        .unwrap_or_else(|e| panic!("{e}"));
    // The announce is in flight for as long as the connection is held open.
    let dl = api.find(&ih).expect("listed");
    let urls: Vec<&Value> = dl["trackers"].as_array().expect("trackers").iter().map(|t| &t["url"]).collect();
    assert_eq!(urls, [&json!(url), &json!("[DHT]"), &json!("[PeX]")], "the torrent's tracker, then the pseudo ones");
    let t = tracker_entry(&dl, &url).expect("listed");
    assert_eq!(t["status"], json!("Not contacted yet"), "a tracker that never answered: {t}");
    assert_download_fields(&dl);

    drop(conn);
    let dl = api.wait(&ih, "showing the tracker as failed", |dl| {
        tracker_entry(dl, &url).is_some_and(|t| t["status"] != "Not contacted yet")
    });
    assert_download_fields(&dl);
    let t = tracker_entry(&dl, &url).expect("listed");
    assert_ne!(t["status"], json!("Working"), "a tracker that closed without answering: {t}");
    shutdown(&api, d);
}

/// The whole life of a download: found through opentracker, fetched from libtorrent into a
/// multi-file tree, seeding, stopped, resumed, re-checked (a byte corrupted on disk is found and
/// fetched again), moved, and removed with its data.
#[test]
fn download_lifecycle_from_libtorrent_seeder() {
    let td = TestDir::new("daemon-lifecycle");
    let tracker = Opentracker::start(&td, &[]);
    let made = make(&td, "payload", Payload::Tree(data::awkward_tree()), 64 * KIB, &[tracker.http_url()], 31);
    let (_seeder, _) = lt_seeder(&td, &made, &tracker, 0);
    let state = td.dir("state");
    let d = Daemon::start(&td, "daemon", &state, KEY);
    let api = Api::new(&d);
    let out = td.dir("out");

    let ih = api.add_file(&made.torrent, &out);
    assert_eq!(ih, made.ih);
    let dl = api.wait(&ih, "SEEDING", |dl| status(dl) == SEEDING);
    assert_download_fields(&dl);
    assert_eq!(progress(&dl), 1.0, "a seeding download is complete: {dl}");
    assert_same_tree(&made.content, &out.join(&made.name), Compare::default());
    let size = dl["size"].as_u64().expect("size");
    assert!(dl["all_time_download"].as_u64() >= Some(size), "all_time_download counts the payload: {dl}");
    assert!(dl["total_down"].as_u64() >= Some(size), "total_down counts at least the payload: {dl}");
    let url = tracker.http_url();
    assert!(tracker_entry(&dl, &url).is_some(), "the torrent's tracker is not listed: {dl}");
    api.wait(&ih, "showing its tracker as Working", |dl| {
        assert_download_fields(dl);
        tracker_entry(dl, &url).is_some_and(|t| t["status"] == "Working")
    });
    assert!(d.checkpoint(&ih).is_file(), "no resume file {}", d.checkpoint(&ih).display());

    // Stop and resume.
    let path = format!("/downloads/{ih}");
    assert_eq!(api.ok("PATCH", &path, &json!({"state": "stop"})), json!({"modified": true, "infohash": ih}));
    let dl = api.wait_status(&ih, STOPPED);
    assert_eq!((&dl["speed_down"], &dl["speed_up"]), (&json!(0), &json!(0)), "a stopped download moves nothing");
    assert_eq!(api.ok("PATCH", &path, &json!({"state": "resume"})), json!({"modified": true, "infohash": ih}));
    let dl = api.wait_status(&ih, SEEDING);
    assert_eq!(progress(&dl), 1.0, "{dl}");

    // Recheck finds a corrupted byte; the piece is fetched again.
    let victim = out.join(&made.name).join("big/part2.dat");
    flip_byte(&victim, 1_500_000);
    assert!(compare_trees(&made.content, &out.join(&made.name), Compare::default()).is_err());
    assert_eq!(api.ok("PATCH", &path, &json!({"state": "recheck"})), json!({"modified": true, "infohash": ih}));
    api.wait(&ih, "SEEDING with progress 1 and the corrupted byte repaired", |dl| {
        status(dl) == SEEDING
            && progress(dl) == 1.0
            && compare_trees(&made.content, &out.join(&made.name), Compare::default()).is_ok()
    });

    // Move.
    let moved = td.dir("moved");
    assert_eq!(
        api.ok("PATCH", &path, &json!({"state": "move_storage", "dest_dir": moved})),
        json!({"modified": true, "infohash": ih})
    );
    api.wait(&ih, "moved: every file under the new directory, none left in the old one", |dl| {
        dl["destination"] == json!(moved)
            && compare_trees(&made.content, &moved.join(&made.name), Compare::default()).is_ok()
            && files_under(&out.join(&made.name)).is_empty()
    });
    api.wait_status(&ih, SEEDING);

    // Remove with the data.
    let r = api.call("DELETE", &path, Some(&json!({"remove_data": true})));
    assert_eq!((r.status, r.json()), (200, json!({"removed": true, "infohash": ih})));
    wait_for("the download to be gone from GET /downloads", TIMEOUT, || api.find(&ih).is_none().then_some(()))
        .unwrap_or_else(|e| panic!("{e}"));
    wait_for("the removed download's files to be deleted", TIMEOUT, || {
        files_under(&moved.join(&made.name)).is_empty().then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", files_under(&moved.join(&made.name))));
    assert!(!d.checkpoint(&ih).exists(), "the removed download's resume file is still there");
    shutdown(&api, d);
}

/// `selected_files` at add time fetches only those files; a PATCH selecting the rest
/// completes the download.
#[test]
fn selected_files_limit_what_is_downloaded() {
    let td = TestDir::new("daemon-selected");
    let tracker = Opentracker::start(&td, &[]);
    // Piece-aligned sizes: no piece holds bytes of two files.
    let piece = 64 * KIB;
    let tree =
        vec![FileSpec::new("a.bin", 8 * piece), FileSpec::new("b.bin", 16 * piece), FileSpec::new("c.bin", 4 * piece)];
    let made = make(&td, "sel", Payload::Tree(tree), piece, &[tracker.http_url()], 41);
    let (_seeder, _) = lt_seeder(&td, &made, &tracker, 0);
    let order = torrent_files(&made.torrent);
    let index_of = |name: &str| order.iter().position(|f| f.0 == name).expect("file in torrent");
    let (ia, ib, ic) = (index_of("a.bin"), index_of("b.bin"), index_of("c.bin"));

    let d = Daemon::start(&td, "daemon", &td.dir("state"), KEY);
    let api = Api::new(&d);
    let out = td.dir("out");
    let ih = api.add(json!({
        "uri": made.uri(),
        "destination": out,
        "selected_files": [ib],
        "anon_hops": 0,
        "safe_seeding": 0,
    }));
    let root = out.join(&made.name);
    let src = &made.content;
    // Tribler reports a download whose wanted files are complete as SEEDING.
    api.wait(&ih, "SEEDING with b.bin complete", |dl| {
        status(dl) == SEEDING && compare_trees(&src.join("b.bin"), &root.join("b.bin"), Compare::default()).is_ok()
    });
    let files = api.get(&format!("/downloads/{ih}/files")).json();
    for (i, f) in files["files"].as_array().expect("files list").iter().enumerate() {
        assert_eq!(f["included"], json!(i == ib), "only b.bin is included: {files}");
    }
    assert_eq!(files["files"][ib]["progress"], json!(1.0), "{files}");
    for name in ["a.bin", "c.bin"] {
        assert!(
            compare_trees(&src.join(name), &root.join(name), Compare::default()).is_err(),
            "{name} was not selected but was downloaded"
        );
    }

    let answer = api.ok("PATCH", &format!("/downloads/{ih}"), &json!({"selected_files": [ia, ib, ic]}));
    assert_eq!(answer, json!({"modified": true, "infohash": ih}));
    api.wait(&ih, "SEEDING with every file", |dl| {
        status(dl) == SEEDING && progress(dl) == 1.0 && compare_trees(src, &root, Compare::default()).is_ok()
    });
    let files = api.get(&format!("/downloads/{ih}/files")).json();
    assert!(files["files"].as_array().expect("files").iter().all(|f| f["included"] == true), "{files}");
    shutdown(&api, d);
}

/// Asserts a `206` answer to `Range: bytes=start-end` of `data`.
fn assert_partial(r: &Resp, data: &[u8], start: usize, end: usize, what: &str) {
    assert_eq!(r.status, 206, "{what}: {}", r.text());
    assert_eq!(r.header("content-range"), Some(format!("bytes {start}-{end}/{}", data.len()).as_str()), "{what}");
    assert_eq!(r.header("accept-ranges"), Some("bytes"), "{what}");
    assert_eq!(r.body.len(), end + 1 - start, "{what}: body length");
    assert!(r.body == data[start..=end], "{what}: the body is not bytes {start}..={end} of the file");
}

/// The stream endpoint of a complete download: the whole file without `Range`, exact slices
/// for `a-b`, `a-` and `-n`, 416 past the end, the key as `?apikey=`, 401 without it.
#[test]
fn stream_serves_byte_ranges_of_a_complete_file() {
    let td = TestDir::new("daemon-stream");
    let tree = vec![FileSpec::new("a.bin", 300_001), FileSpec::new("b.bin", 1_000_003), FileSpec::new("c.txt", 17)];
    let made = make(&td, "media", Payload::Tree(tree), 32 * KIB, &[], 51);
    let d = Daemon::start(&td, "daemon", &td.dir("state"), KEY);
    let api = Api::new(&d);
    let ih = api.add_file(&made.torrent, made.seed_dir());
    api.wait(&ih, "SEEDING", |dl| status(dl) == SEEDING);
    let order = torrent_files(&made.torrent);
    let index_of = |name: &str| order.iter().position(|f| f.0 == name).expect("file in torrent");
    let (ib, ic) = (index_of("b.bin"), index_of("c.txt"));
    let b = std::fs::read(made.content.join("b.bin")).expect("read b.bin");
    let c = std::fs::read(made.content.join("c.txt")).expect("read c.txt");
    let n = b.len();

    let whole = api.stream(&ih, ib, None);
    assert_eq!(whole.status, 200, "no Range: {}", whole.text());
    assert_eq!(whole.header("content-length"), Some(n.to_string().as_str()));
    assert!(whole.body == b, "no Range: the body is not the file");
    let small = api.stream(&ih, ic, None);
    assert!(small.status == 200 && small.body == c, "the file index selects the file: {}", small.text());

    assert_partial(&api.stream(&ih, ib, Some("bytes=100-199")), &b, 100, 199, "bytes=100-199");
    // Across a piece boundary: the first one inside b.bin.
    let piece = piece_length(&made.torrent) as usize;
    let offset: usize = order[..ib].iter().map(|f| f.1 as usize).sum();
    let boundary = (offset / piece + 1) * piece - offset;
    assert!(boundary > 10 && boundary + 10 < n, "the test needs a piece boundary inside b.bin");
    let range = format!("bytes={}-{}", boundary - 10, boundary + 10);
    assert_partial(&api.stream(&ih, ib, Some(&range)), &b, boundary - 10, boundary + 10, &range);
    let range = format!("bytes={}-", n - 10);
    assert_partial(&api.stream(&ih, ib, Some(&range)), &b, n - 10, n - 1, &range);
    assert_partial(&api.stream(&ih, ib, Some("bytes=0-")), &b, 0, n - 1, "bytes=0-");
    assert_partial(&api.stream(&ih, ib, Some("bytes=-500")), &b, n - 500, n - 1, "bytes=-500");
    let range = format!("bytes={}-{}", n - 1, n + 1000);
    assert_partial(&api.stream(&ih, ib, Some(&range)), &b, n - 1, n - 1, "an end past the file is clamped");
    for range in [format!("bytes={n}-"), format!("bytes={}-{}", n + 100, n + 200)] {
        assert_eq!(api.stream(&ih, ib, Some(&range)).status, 416, "{range} starts past the end");
    }

    let path = format!("/downloads/{ih}/stream/{ic}");
    assert_eq!(api.send("GET", &path, &[], None).status, 401, "the stream needs the key");
    let r = api.send("GET", &format!("{path}?apikey={KEY}"), &[], None);
    assert!(r.status == 200 && r.body == c, "?apikey= is enough (players cannot set headers): {}", r.text());
    let r = api.stream(&ih, 99, None);
    assert!(r.status >= 400, "a bad file index is an error, got {}", r.status);
    shutdown(&api, d);
}

/// A range near the end of a file that is still downloading (from a rate-limited seeder) is
/// served exactly, and before the download completes: the daemon fetches those pieces first.
#[test]
fn stream_reads_ahead_of_a_rate_limited_download() {
    let td = TestDir::new("daemon-stream-live");
    let tracker = Opentracker::start(&td, &[]);
    let size = 24 * MIB;
    let made = make(&td, "movie.bin", Payload::Single(size), 256 * KIB, &[tracker.http_url()], 61);
    // 24 MiB at 1.5 MB/s: about 17 s for the whole file.
    let (mut seeder, _) = lt_seeder(&td, &made, &tracker, 1_500_000);
    let d = Daemon::start(&td, "daemon", &td.dir("state"), KEY);
    let api = Api::new(&d);
    let data = std::fs::read(&made.content).expect("read payload");

    let started = Instant::now();
    let ih = api.add_file(&made.torrent, &td.dir("out"));
    let (start, end) = (data.len() - 100_000, data.len() - 1);
    let r = api.stream(&ih, 0, Some(&format!("bytes={start}-{end}")));
    let waited = started.elapsed();
    let dl = api.find(&ih).expect("listed");
    eprintln!("the last 100 kB came after {waited:?}, progress then {:.3}", progress(&dl));
    assert_partial(&r, &data, start, end, "the last 100 kB while downloading");
    assert!(
        progress(&dl) < 1.0,
        "the range came after the download had completed ({waited:?}): the daemon did not fetch it first: {dl}"
    );

    // A range in the middle, still ahead of the download.
    let (start, end) = (data.len() / 2, data.len() / 2 + 300_000);
    let r = api.stream(&ih, 0, Some(&format!("bytes={start}-{end}")));
    assert_partial(&r, &data, start, end, "300 kB in the middle while downloading");
    let dl = api.find(&ih).expect("listed");
    assert!(progress(&dl) < 1.0, "the middle range came after the download completed: {dl}");

    // Cancelled while downloading, with its data: nothing is left.
    let r = api.call("DELETE", &format!("/downloads/{ih}"), Some(&json!({"remove_data": true})));
    assert_eq!((r.status, r.json()), (200, json!({"removed": true, "infohash": ih})));
    assert!(api.find(&ih).is_none(), "a deleted download is still listed");
    wait_for("the cancelled download's file to be deleted", TIMEOUT, || {
        files_under(&td.path().join("out")).is_empty().then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", files_under(&td.path().join("out"))));
    seeder.wait_stderr("see the removed download go", TIMEOUT, seeder_lost_its_peer);
    shutdown(&api, d);
}

/// While downloading from a libtorrent seeder, `GET /downloads?get_peers=1` shows the seeder
/// as a peer, a download speed, the connected seed, and the tracker as working.
#[test]
fn downloading_reports_peers_speed_and_tracker() {
    let td = TestDir::new("daemon-peers");
    let tracker = Opentracker::start(&td, &[]);
    let made = make(&td, "slow.bin", Payload::Single(8 * MIB), 128 * KIB, &[tracker.http_url()], 71);
    // 8 MiB at 1 MB/s: about 8 s.
    let (_seeder, seeder_port) = lt_seeder(&td, &made, &tracker, 1_000_000);
    let d = Daemon::start(&td, "daemon", &td.dir("state"), KEY);
    let api = Api::new(&d);
    let out = td.dir("out");
    let ih = api.add_file(&made.torrent, &out);

    let mut last = Value::Null;
    let query = format!("?get_peers=1&infohash={ih}");
    let seen = wait_for("a DOWNLOADING report with the seeder as a peer and a speed", TIMEOUT, || {
        let dl = api.downloads(&query).into_iter().next()?;
        let peer = dl["peers"].as_array()?.iter().find(|p| p["port"] == seeder_port).cloned();
        let ok = status(&dl) == DOWNLOADING
            && progress(&dl) > 0.0
            && dl["speed_down"].as_u64() > Some(0)
            && peer.as_ref().is_some_and(|p| p["dtotal"].as_u64() > Some(0));
        last = dl.clone();
        ok.then(|| (dl, peer.expect("checked above")))
    });
    let (dl, peer) = seen.unwrap_or_else(|e| panic!("{e}; last: {last}"));
    let files = api.get(&format!("/downloads/{ih}/files")).json();
    let file_progress = files["files"][0]["progress"].as_f64();
    assert!(file_progress.is_some_and(|p| p > 0.0 && p < 1.0), "a file half-way has a partial progress: {files}");
    assert_download_fields(&dl);
    assert!(progress(&dl) < 1.0, "{dl}");
    for f in ["num_seeds", "num_connected_seeds"] {
        assert!(dl[f].as_u64() >= Some(1), "`{f}` must count the connected seeder: {dl}");
    }
    assert!(dl["availability"].as_f64() >= Some(1.0), "a connected seeder is a full copy: {dl}");
    assert!(dl["eta"].as_f64().is_some_and(|e| e > 0.0), "eta of an unfinished download: {dl}");
    let t = tracker_entry(&dl, &tracker.http_url()).unwrap_or_else(|| panic!("tracker not listed: {dl}"));
    assert_eq!(t["status"], json!("Working"), "{t}");

    // The peer object of §4.3.
    for f in ["id", "extended_version", "ip", "direction"] {
        assert!(peer[f].is_string(), "peer `{f}` must be a string: {peer}");
    }
    for f in ["port", "uprate", "downrate", "utotal", "dtotal", "speed", "connection_type"] {
        assert!(peer[f].is_u64(), "peer `{f}` must be a non-negative integer: {peer}");
    }
    for f in
        ["optimistic", "uinterested", "uchoked", "uhasqueries", "uflushed", "dinterested", "dchoked", "snubbed", "seed"]
    {
        assert!(peer[f].is_boolean(), "peer `{f}` must be a bool: {peer}");
    }
    assert!(peer["upload_only"].is_boolean(), "peer `upload_only` must be a bool: {peer}");
    assert_eq!(peer["ip"], json!("127.0.0.1"), "{peer}");
    assert_eq!(peer["direction"], json!("L"), "we connected to the seeder we learnt from the tracker: {peer}");
    assert_eq!(peer["seed"], json!(true), "{peer}");
    assert!(peer["completed"].as_f64().is_some_and(|c| c > 0.99), "the seeder has everything: {peer}");
    assert_eq!(peer["id"].as_str().map(str::len), Some(40), "the peer id in hex: {peer}");
    assert!(peer["extended_version"].as_str().is_some_and(|v| v.contains("libtorrent")), "{peer}");

    api.wait(&ih, "SEEDING", |dl| status(dl) == SEEDING);
    assert_same_tree(&made.content, &out.join(&made.name), Compare::default());
    shutdown(&api, d);
}

/// An anonymous download (no circuits exist in Shoal) is accepted but waits for circuits with
/// an error saying why; it never contacts the swarm nor writes a byte, while a plain download
/// next to it completes from the same kind of seeder.
#[test]
fn anonymous_download_waits_for_circuits_and_never_touches_the_swarm() {
    let td = TestDir::new("daemon-anon");
    let tracker = Opentracker::start(&td, &[]);
    let hidden = make(&td, "hidden.bin", Payload::Single(2 * MIB), 64 * KIB, &[tracker.http_url()], 81);
    let plain = make(&td, "plain.bin", Payload::Single(2 * MIB), 64 * KIB, &[tracker.http_url()], 82);
    let (_s1, _) = lt_seeder(&td, &hidden, &tracker, 0);
    let (_s2, _) = lt_seeder(&td, &plain, &tracker, 0);
    let d = Daemon::start(&td, "daemon", &td.dir("state"), KEY);
    let api = Api::new(&d);
    let anon_out = td.dir("anon-out");

    let ih = api.add(json!({"uri": hidden.uri(), "destination": anon_out, "anon_hops": 1, "safe_seeding": 1}));
    assert_eq!(ih, hidden.ih);
    let check = |dl: &Value| {
        assert_eq!(status(dl), CIRCUITS, "an anonymous download waits for circuits: {dl}");
        let error = dl["error"].as_str().unwrap_or_default().to_lowercase();
        assert!(error.contains("anonym"), "the error must say that anonymity is unavailable: {dl}");
        assert_eq!((&dl["hops"], &dl["anon_download"], &dl["safe_seeding"]), (&json!(1), &json!(true), &json!(true)));
        assert_eq!(progress(dl), 0.0, "{dl}");
        for f in ["all_time_download", "total_down", "num_connected_peers", "num_connected_seeds", "speed_down"] {
            assert_eq!(dl[f], json!(0), "`{f}` of an anonymous download without circuits: {dl}");
        }
    };
    let dl = api.wait(&ih, "CIRCUITS", |dl| status(dl) == CIRCUITS);
    assert_download_fields(&dl);
    check(&dl);

    // A plain download from an equal seeder completes meanwhile.
    let plain_out = td.dir("plain-out");
    let plain_ih = api.add_file(&plain.torrent, &plain_out);
    api.wait(&plain_ih, "SEEDING", |dl| status(dl) == SEEDING);
    assert_same_tree(&plain.content, &plain_out.join(&plain.name), Compare::default());

    check(&api.find(&ih).expect("the anonymous download is still listed"));
    for f in files_under(&anon_out) {
        let bytes = std::fs::read(anon_out.join(&f)).expect("read file");
        assert!(bytes.iter().all(|&b| b == 0), "the anonymous download wrote data to {f}");
    }
    // The tracker knows only the seeder: the daemon never announced the anonymous download.
    assert_eq!(tracker.scrape(hidden.hash), Ok((1, 0)), "the anonymous download was announced to the tracker");
    shutdown(&api, d);
}

/// After `PUT /shutdown` and a restart on the same state directory, downloads come back as
/// they were: a completed one seeds again from disk (its seeder is gone) with its destination,
/// time added and all-time totals; a stopped one stays stopped with its file selection. A
/// download deleted without its data leaves the files and does not come back after SIGTERM and
/// another restart.
#[test]
fn restart_restores_downloads_from_the_state_dir() {
    let td = TestDir::new("daemon-restart");
    let tracker = Opentracker::start(&td, &[]);
    let fetched = make(&td, "fetched.bin", Payload::Single(4 * MIB + 123), 64 * KIB, &[tracker.http_url()], 91);
    let tree = vec![FileSpec::new("one.bin", 200_000), FileSpec::new("two.bin", 300_000), FileSpec::new("three", 5)];
    let parked = make(&td, "parked", Payload::Tree(tree), 32 * KIB, &[], 92);
    let (mut seeder, _) = lt_seeder(&td, &fetched, &tracker, 0);
    let state = td.dir("state");
    let out = td.dir("out");

    let d = Daemon::start(&td, "daemon", &state, KEY);
    let api = Api::new(&d);
    let ih = api.add_file(&fetched.torrent, &out);
    let before = api.wait(&ih, "SEEDING", |dl| status(dl) == SEEDING);
    assert_same_tree(&fetched.content, &out.join(&fetched.name), Compare::default());
    let pih = api.add_file(&parked.torrent, parked.seed_dir());
    api.wait_status(&pih, SEEDING);
    api.ok("PATCH", &format!("/downloads/{pih}"), &json!({"selected_files": [0]}));
    api.ok("PATCH", &format!("/downloads/{pih}"), &json!({"state": "stop"}));
    let parked_before = api.wait_status(&pih, STOPPED);
    seeder.terminate(STOP_TIMEOUT);
    shutdown(&api, d);
    for h in [&ih, &pih] {
        let cp = state.join("dlcheckpoints").join(format!("{h}.state"));
        assert!(cp.is_file(), "no resume file {} after shutdown", cp.display());
    }

    let d = Daemon::start(&td, "daemon", &state, KEY);
    let api = Api::new(&d);
    let body = wait_for("the checkpoints to be loaded", TIMEOUT, || {
        let body = api.get("/downloads").json();
        (body["checkpoints"]["all_loaded"] == true).then_some(body)
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(body["checkpoints"]["total"], json!(2), "{body}");
    assert_eq!(body["checkpoints"]["loaded"], json!(2), "{body}");
    let after = api.wait(&ih, "SEEDING again (from disk: the seeder is gone)", |dl| {
        let code = status(dl);
        assert!(code != DOWNLOADING, "the completed download went back to DOWNLOADING: {dl}");
        let parked = api.find(&pih).expect("the stopped download is back");
        let p = status(&parked);
        assert!(p != DOWNLOADING && p != SEEDING, "the stopped download was resumed by the restart: {parked}");
        code == SEEDING
    });
    assert_download_fields(&after);
    assert_eq!(progress(&after), 1.0, "{after}");
    for f in ["destination", "time_added", "name", "size"] {
        assert_eq!(after[f], before[f], "`{f}` changed across the restart");
    }
    assert!(
        after["all_time_download"].as_u64() >= Some(4 * MIB + 123),
        "all_time_download counts earlier sessions: {after}"
    );
    let parked_after = api.wait_status(&pih, STOPPED);
    assert_eq!(parked_after["destination"], parked_before["destination"]);
    let files = api.get(&format!("/downloads/{pih}/files")).json();
    let included: Vec<&Value> = files["files"].as_array().expect("files").iter().map(|f| &f["included"]).collect();
    assert_eq!(included, [&json!(true), &json!(false), &json!(false)], "the file selection survives a restart");

    // Delete without the data; SIGTERM; restart: it stays deleted, its files stay.
    let r = api.call("DELETE", &format!("/downloads/{ih}"), Some(&json!({"remove_data": false})));
    assert_eq!((r.status, r.json()), (200, json!({"removed": true, "infohash": ih})));
    assert!(api.find(&ih).is_none(), "a deleted download is still listed");
    assert!(!state.join("dlcheckpoints").join(format!("{ih}.state")).exists(), "the resume file is still there");
    d.terminate(STOP_TIMEOUT);
    assert_same_tree(&fetched.content, &out.join(&fetched.name), Compare::default());

    let d = Daemon::start(&td, "daemon", &state, KEY);
    let api = Api::new(&d);
    let parked_again = api.wait_status(&pih, STOPPED);
    assert_eq!(parked_again["destination"], parked_before["destination"]);
    let listed: Vec<Value> = api.downloads("").iter().map(|dl| dl["infohash"].clone()).collect();
    assert_eq!(listed, [json!(pih)], "only the stopped download is back");
    assert_same_tree(&fetched.content, &out.join(&fetched.name), Compare::default());
    shutdown(&api, d);
}

/// Whether the libtorrent seeder's log shows it had the daemon as a peer and, in its latest
/// status line, has no peer any more (it logs `status: peers=N ...` every 2 s).
fn seeder_lost_its_peer(log: &str) -> bool {
    let counts: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split("status: peers=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    counts.iter().any(|&n| n != "0") && counts.last() == Some(&"0")
}

/// A download stopped half-way lets go of its peer and keeps its progress; it stays stopped
/// with that progress across a restart, and once resumed completes without fetching again what
/// it had (all-time download stays about the size of the file).
#[test]
fn stop_in_mid_download_disconnects_and_survives_restart() {
    let td = TestDir::new("daemon-stop-mid");
    let tracker = Opentracker::start(&td, &[]);
    let size = 16 * MIB;
    let made = make(&td, "half.bin", Payload::Single(size), 256 * KIB, &[tracker.http_url()], 121);
    // 16 MiB at 2 MB/s: about 8 s.
    let (mut seeder, _) = lt_seeder(&td, &made, &tracker, 2_000_000);
    let state = td.dir("state");
    let out = td.dir("out");

    let d = Daemon::start(&td, "daemon", &state, KEY);
    let api = Api::new(&d);
    let ih = api.add_file(&made.torrent, &out);
    api.wait(&ih, "between 20% and 60% done", |dl| (0.2..=0.6).contains(&progress(dl)));
    api.ok("PATCH", &format!("/downloads/{ih}"), &json!({"state": "stop"}));
    let stopped = api.wait_status(&ih, STOPPED);
    let at_stop = progress(&stopped);
    assert!(at_stop < 1.0, "{stopped}");
    seeder.wait_stderr("see the stopped daemon go", TIMEOUT, seeder_lost_its_peer);
    let still = api.find(&ih).expect("listed");
    assert_eq!((status(&still), progress(&still)), (STOPPED, at_stop), "a stopped download changed: {still}");
    shutdown(&api, d);

    let d = Daemon::start(&td, "daemon", &state, KEY);
    let api = Api::new(&d);
    let back = api.wait_status(&ih, STOPPED);
    eprintln!("stopped at progress {at_stop:.3}; after the restart {:.3}", progress(&back));
    assert!(
        (progress(&back) - at_stop).abs() < 1e-9,
        "stopped at progress {at_stop}, back after a clean restart with {}: {back}",
        progress(&back)
    );
    assert_eq!(back["destination"], json!(out));
    api.ok("PATCH", &format!("/downloads/{ih}"), &json!({"state": "resume"}));
    let done = api.wait(&ih, "SEEDING", |dl| status(dl) == SEEDING);
    assert_same_tree(&made.content, &out.join(&made.name), Compare::default());
    let fetched = done["all_time_download"].as_u64().unwrap_or(0);
    assert!(
        (size..=size + size / 10).contains(&fetched),
        "all_time_download {fetched} for a {size}-byte file: data was fetched twice or not counted"
    );
    shutdown(&api, d);
}

/// `kill -9` in mid-download, restart on the same state dir: the verified data is kept (the
/// first progress reported once the checkpoint is loaded and checked is well above zero) and
/// the download completes byte-exact.
#[test]
fn kill_9_in_mid_download_resumes_from_verified_data() {
    let td = TestDir::new("daemon-kill9");
    let tracker = Opentracker::start(&td, &[]);
    let size = 24 * MIB;
    let made = make(&td, "big.bin", Payload::Single(size), 256 * KIB, &[tracker.http_url()], 101);
    // 24 MiB at 2 MB/s: about 13 s, so the kill lands mid-way.
    let (_seeder, _) = lt_seeder(&td, &made, &tracker, 2_000_000);
    let state = td.dir("state");
    let out = td.dir("out");

    let d = Daemon::start(&td, "daemon", &state, KEY);
    let api = Api::new(&d);
    let ih = api.add_file(&made.torrent, &out);
    let dl = api.wait(&ih, "between 50% and 85% done", |dl| (0.5..=0.85).contains(&progress(dl)));
    let at_kill = progress(&dl);
    d.kill9();

    let d = Daemon::start(&td, "daemon", &state, KEY);
    let api = Api::new(&d);
    let resumed = api.wait(&ih, "back, checked and DOWNLOADING or SEEDING", |dl| {
        let code = status(dl);
        assert!(code != SEEDING || progress(dl) == 1.0, "SEEDING before complete: {dl}");
        code == DOWNLOADING || code == SEEDING
    });
    let first = progress(&resumed);
    eprintln!("killed at progress {at_kill:.3}; first progress after the restart {first:.3}");
    // At 2 MB/s, 10% of the file is over a second of transfer: far more than one poll interval,
    // and at most a few seconds of progress may be lost.
    assert!(
        first >= 0.1 && first >= at_kill - 0.4,
        "killed at {at_kill:.3}, the restart's first progress was {first:.3}: verified data was thrown away"
    );
    assert_eq!(resumed["destination"], json!(out));
    api.wait(&ih, "SEEDING", |dl| status(dl) == SEEDING);
    assert_same_tree(&made.content, &out.join(&made.name), Compare::default());
    shutdown(&api, d);
}

/// `/events` starts with `events_start`; a download that completes (into a destination that
/// did not exist yet) is announced with `torrent_finished` and exactly its infohash, name and
/// `hidden: false`.
#[test]
fn events_announce_torrent_finished() {
    let td = TestDir::new("daemon-events");
    let tracker = Opentracker::start(&td, &[]);
    let made = make(&td, "done.bin", Payload::Single(3 * MIB + 7), 64 * KIB, &[tracker.http_url()], 111);
    let (_seeder, _) = lt_seeder(&td, &made, &tracker, 0);
    let d = Daemon::start(&td, "daemon", &td.dir("state"), KEY);
    let api = Api::new(&d);
    let events = event_stream(&d);
    let deadline = Instant::now() + TIMEOUT;
    let first = next_event(&events, deadline).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first["topic"], json!("events_start"), "the first event: {first}");

    // A destination that does not exist yet is created (as libtorrent does).
    let out = td.path().join("not/yet/there");
    let ih = api.add_file(&made.torrent, &out);
    let mut topics = Vec::new();
    let finished = loop {
        let e = next_event(&events, deadline).unwrap_or_else(|e| panic!("{e}; topics so far: {topics:?}"));
        topics.push(e["topic"].clone());
        if e["topic"] == "torrent_finished" {
            break e;
        }
    };
    assert_eq!(
        finished["kwargs"],
        json!({"infohash": ih, "name": made.name, "hidden": false}),
        "torrent_finished: {finished}"
    );
    let dl = api.wait(&ih, "SEEDING", |dl| status(dl) == SEEDING);
    assert_eq!(progress(&dl), 1.0);
    assert_same_tree(&made.content, &out.join(&made.name), Compare::default());
    shutdown(&api, d);
}

/// The data frames of `GET /events`, parsed on a thread (`keep_alive` heartbeats are skipped;
/// an SSE comment line is an error, as it is for Tribler's GUI); the channel ends with the stream.
fn event_stream(d: &Daemon) -> mpsc::Receiver<Result<Value, String>> {
    let resp = agent(None).get(d.url("/events")).header("X-Api-Key", d.key()).call().expect("GET /events");
    assert_eq!(resp.status().as_u16(), 200, "GET /events");
    let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert!(ct.starts_with("text/event-stream"), "content-type of /events: {ct}");
    let reader = BufReader::new(resp.into_body().into_reader());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut data = String::new();
        for line in reader.lines() {
            let Ok(line) = line else { return };
            let item = if line.is_empty() {
                if data.is_empty() {
                    continue;
                }
                let parsed: Result<Value, String> =
                    serde_json::from_str(&data).map_err(|e| format!("bad event JSON ({e}): {data}"));
                data.clear();
                if parsed.as_ref().is_ok_and(|v| v["topic"] == "keep_alive") {
                    continue;
                }
                parsed
            } else if let Some(json) = line.strip_prefix("data:") {
                data.push_str(json.trim_start());
                continue;
            } else {
                Err(format!("not an SSE line: {line:?}"))
            };
            if tx.send(item).is_err() {
                return;
            }
        }
    });
    rx
}

/// The next event before `deadline`.
fn next_event(rx: &mpsc::Receiver<Result<Value, String>>, deadline: Instant) -> Result<Value, String> {
    let left = deadline.saturating_duration_since(Instant::now());
    match rx.recv_timeout(left) {
        Ok(item) => item,
        Err(mpsc::RecvTimeoutError::Timeout) => Err("timed out waiting for an event".into()),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err("the event stream ended".into()),
    }
}

#[test]
fn magnet_from_a_libtorrent_seeder_goes_through_metadata_then_downloads() {
    let td = TestDir::new("daemon-magnet");
    let tracker = Opentracker::start(&td, &[]);
    let made = make(&td, "mag", Payload::Tree(data::awkward_tree_without_empty()), 16 * KIB, &[tracker.http_url()], 57);
    let (_seeder, _) = lt_seeder(&td, &made, &tracker, 0);
    let tr = utf8_percent_encode(&tracker.http_url(), NON_ALPHANUMERIC).to_string();
    let magnet = format!("magnet:?xt=urn:btih:{}&dn=mag&tr={tr}", made.ih);

    let d = Daemon::start(&td, "daemon", &td.dir("state"), KEY);
    let api = Api::new(&d);
    // /torrentinfo resolves the magnet from the swarm without adding it.
    let query = utf8_percent_encode(&magnet, NON_ALPHANUMERIC).to_string();
    let info = api.get(&format!("/torrentinfo?uri={query}")).json();
    assert_eq!(info["download_exists"], json!(null), "{info}");
    let hex = info["metainfo"].as_str().expect("metainfo");
    let text: Vec<u8> = (0..hex.len() / 2).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap()).collect();
    let meta: Value = serde_json::from_slice(&text).expect("metainfo is JSON");
    assert_eq!(meta["info"]["name"], json!("mag"));
    assert!(api.get("/downloads").json()["downloads"].as_array().unwrap().is_empty(), "torrentinfo added nothing");

    let out = td.dir("out");
    let ih = api.add(json!({"uri": magnet, "destination": out}));
    assert_eq!(ih, made.ih);
    let dl = api.wait(&ih, "SEEDING", |dl| status(dl) == SEEDING);
    assert!(progress(&dl) == 1.0 && dl["name"] == "mag" && dl["total_pieces"].as_u64() > Some(0), "{dl}");
    compare_trees(&made.content, &out.join("mag"), Compare::default()).expect("byte-exact after a magnet");
    // The torrent built from the metadata has the same info-hash.
    let torrent = api.get(&format!("/downloads/{ih}/torrent")).body;
    assert_eq!(InfoHash::of_torrent(&torrent).unwrap().hex(), made.ih);
}

/// A magnet added before anyone seeds it: DLSTATUS_METADATA, then a libtorrent seeder appears
/// (it finds the daemon through the tracker and connects), the metadata arrives, and the
/// download completes byte-exact.
#[test]
fn a_magnet_waits_in_metadata_until_a_seeder_appears() {
    const METADATA: i64 = 7;
    let td = TestDir::new("daemon-magnet-wait");
    let tracker = Opentracker::start(&td, &[]);
    let made = make(&td, "late", Payload::Single(3 * 1024 * 1024 + 17), 16 * KIB, &[tracker.http_url()], 58);
    tracker.allow(made.hash);
    let tr = utf8_percent_encode(&tracker.http_url(), NON_ALPHANUMERIC).to_string();
    let magnet = format!("magnet:?xt=urn:btih:{}&tr={tr}", made.ih);

    let d = Daemon::start(&td, "daemon", &td.dir("state"), KEY);
    let api = Api::new(&d);
    let out = td.dir("out");
    let ih = api.add(json!({"uri": magnet, "destination": out}));
    let dl = api.wait(&ih, "METADATA", |dl| status(dl) == METADATA);
    assert_eq!((&dl["size"], &dl["total_pieces"], progress(&dl)), (&json!(0), &json!(0), 0.0), "{dl}");
    // The daemon has announced itself; now the seeder comes.
    tracker.wait_peers(made.hash, 1, TIMEOUT);
    let (_seeder, _) = lt_seeder(&td, &made, &tracker, 0);
    let dl = api.wait(&ih, "SEEDING", |dl| status(dl) == SEEDING);
    assert_eq!(dl["name"], json!("late"), "{dl}");
    compare_trees(&made.content, &out.join("late"), Compare::default()).expect("byte-exact after the metadata arrived");
}

/// The resume data the daemon last wrote for `ih` (`None` while there is none).
fn saved_resume(d: &Daemon, ih: &str) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(d.checkpoint(ih)).ok()?).ok()
}

/// Verified pieces in resume data (0 without a bitfield).
fn saved_pieces(resume: &Value) -> u64 {
    let bytes = resume["have"].as_str().and_then(base64_decode).unwrap_or_default();
    bytes.iter().map(|b| u64::from(b.count_ones())).sum()
}

/// Transfer counters survive `kill -9` (issue #14 finding 10). Each kill comes when at least
/// 2 MiB were verified since the last checkpoint: the restart's check finds those pieces on
/// disk and keeps them, so their bytes must still count as downloaded. Every byte of the
/// finished download came from the seeder, so `all_time_download` is at least its size.
#[test]
fn kill_9_keeps_counting_what_was_downloaded() {
    let td = TestDir::new("daemon-kill9-counters");
    let tracker = Opentracker::start(&td, &[]);
    let size = 24 * MIB;
    let piece = 256 * KIB;
    let made = make(&td, "counted.bin", Payload::Single(size), piece, &[tracker.http_url()], 103);
    let (_seeder, _) = lt_seeder(&td, &made, &tracker, 2_000_000);
    let state = td.dir("state");
    let out = td.dir("out");

    let mut d = Daemon::start(&td, "daemon", &state, KEY);
    let ih = Api::new(&d).add_file(&made.torrent, &out);
    for (i, target) in [0.15, 0.4, 0.65].into_iter().enumerate() {
        let api = Api::new(&d);
        api.wait(&ih, &format!("DOWNLOADING past {target}"), |dl| status(dl) == DOWNLOADING && progress(dl) >= target);
        // 2 MiB verified beyond the checkpoint on disk, which is still the latest (read again
        // after the download's progress).
        let ahead = wait_for("2 MiB verified beyond the last checkpoint", TIMEOUT, || {
            let saved = saved_resume(&d, &ih).filter(|r| saved_pieces(r) > 0)?;
            let have = (progress(&api.find(&ih)?) * size as f64) as u64;
            let saved_bytes = saved_pieces(&saved) * piece;
            (have >= saved_bytes + 2 * MIB && saved_resume(&d, &ih).as_ref() == Some(&saved))
                .then_some(have - saved_bytes)
        });
        let ahead = ahead.unwrap_or_else(|e| panic!("{e}\n{}", d.proc().logs()));
        eprintln!("kill {i}: {ahead} bytes verified beyond the checkpoint");
        d.kill9();
        d = Daemon::start(&td, &format!("daemon-{}", i + 2), &state, KEY);
    }
    let api = Api::new(&d);
    let dl = api.wait(&ih, "SEEDING", |dl| status(dl) == SEEDING);
    assert_same_tree(&made.content, &out.join(&made.name), Compare::default());
    let counted = dl["all_time_download"].as_u64().expect("all_time_download");
    eprintln!("all_time_download {counted} of {size} after three kills");
    assert!(counted >= size, "all_time_download is {counted} after three kills of a {size}-byte download");
    shutdown(&api, d);
}
