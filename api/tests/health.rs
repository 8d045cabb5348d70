//! Health checks over real HTTP: `GET /metadata/torrents/{infohash}/health` in Tribler's shapes
//! and 400s, and what a check does with what trackers say: honest figures are stored, shown in
//! search results and sent on `/events`; lies (more than 2^31 seeders, garbage, another
//! torrent's figures) are never stored.
//!
//! The trackers are tiny fakes started by the test on loopback, each saying one fixed thing
//! (HTTP: a body for every scrape; UDP: a connection id, then fixed figures). Real trackers
//! (opentracker, HTTP and UDP) are in `tests/tests/health.rs`.

mod common;

use std::io::{BufRead, Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::{events, post_settings, request, start, Daemon, Opts, Resp, TempDir};
use serde_json::{json, Value};

const KEY: &str = "healthkey";

fn daemon(state: &Path) -> Daemon {
    start(Opts { state: Some(state), args: vec!["--api-key", KEY], ..Opts::default() })
}

fn get(d: &Daemon, path: &str) -> Resp {
    request(d, "GET", path, &[("X-Api-Key", KEY)], None)
}

fn ok(d: &Daemon, path: &str) -> Value {
    let r = get(d, path);
    assert_eq!(r.status, 200, "GET {path}: {}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// A fake HTTP tracker answering every request with its `body` (set once the torrent's hash
/// is known); it records the request lines.
struct FakeHttp {
    port: u16,
    body: Arc<Mutex<Vec<u8>>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl FakeHttp {
    fn start() -> FakeHttp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let body = Arc::new(Mutex::new(Vec::new()));
        let (seen, answer) = (requests.clone(), body.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).map(|n| n == 1).unwrap_or(false) {
                    head.push(byte[0]);
                }
                let line = String::from_utf8_lossy(&head).lines().next().unwrap_or("").to_string();
                seen.lock().unwrap().push(line);
                let body = answer.lock().unwrap().clone();
                let reply = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                let _ = s.write_all(reply.as_bytes());
                let _ = s.write_all(&body);
            }
        });
        FakeHttp { port, body, requests }
    }

    fn answer(&self, body: Vec<u8>) {
        *self.body.lock().unwrap() = body;
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/announce", self.port)
    }
}

/// A fake UDP tracker: a connection id for every connect, then `entries` (seeders, completed,
/// leechers) for every scrape, whatever was asked.
fn fake_udp(entries: Vec<[u32; 3]>) -> String {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf) else { return };
            if n < 16 {
                continue;
            }
            let action = u32::from_be_bytes(buf[8..12].try_into().unwrap());
            let tid = &buf[12..16];
            let mut out = action.to_be_bytes().to_vec();
            out.extend_from_slice(tid);
            match action {
                0 => out.extend_from_slice(&0x1234_5678_9abc_def0u64.to_be_bytes()),
                2 => entries.iter().flatten().for_each(|v| out.extend_from_slice(&v.to_be_bytes())),
                _ => continue,
            }
            let _ = socket.send_to(&out, from);
        }
    });
    format!("udp://127.0.0.1:{port}/announce")
}

/// A torrent of a small file, with `trackers`; returns its path.
fn make_torrent(tmp: &TempDir, name: &str, trackers: &[String]) -> PathBuf {
    let data = tmp.join(name);
    std::fs::write(&data, name.repeat(5000)).unwrap();
    let out = tmp.join(format!("{name}.torrent"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shoal"));
    cmd.arg("create").arg(&data).arg("-o").arg(&out);
    for t in trackers {
        cmd.args(["--tracker", t]);
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "shoal create: {}", String::from_utf8_lossy(&o.stderr));
    out
}

/// Shows a torrent to the daemon with `/torrentinfo` (it gets a store entry, no download) and
/// returns its info-hash.
fn look_at(d: &Daemon, torrent: &Path) -> String {
    let uri = format!("file:{}", torrent.display());
    let enc = percent_encoding::utf8_percent_encode(&uri, percent_encoding::NON_ALPHANUMERIC).to_string();
    ok(d, &format!("/torrentinfo?uri={enc}"));
    let o = Command::new(env!("CARGO_BIN_EXE_shoal")).arg("info").arg("--json").arg(torrent).output().unwrap();
    let info: Value = serde_json::from_slice(&o.stdout).unwrap();
    info["info_hash"].as_str().unwrap().to_string()
}

/// `/events`, read on a thread: its frames arrive on the channel.
fn event_stream(d: &Daemon) -> mpsc::Receiver<Value> {
    let (resp, sse) = events(d, KEY);
    assert_eq!(resp.status, 200);
    let (tx, rx) = mpsc::channel::<Value>();
    std::thread::spawn(move || {
        // Frames are `data: <one line of JSON>` and a blank line; the stream ends (with an
        // error) when the daemon stops at the end of the test.
        for line in sse.0.lines() {
            let Ok(line) = line else { return };
            let Some(json) = line.strip_prefix("data: ") else { continue };
            if tx.send(serde_json::from_str(json).unwrap()).is_err() {
                return;
            }
        }
    });
    assert_eq!(rx.recv_timeout(common::TIMEOUT).unwrap()["topic"], "events_start");
    rx
}

/// The next `channel_entity_updated` about `ih`, within the harness's timeout.
fn health_event(rx: &mpsc::Receiver<Value>, ih: &str) -> Value {
    let deadline = Instant::now() + common::TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let v = rx.recv_timeout(left).unwrap_or_else(|e| panic!("no health event for {ih}: {e}"));
        if v["topic"] == "channel_entity_updated" && v["args"][0]["infohash"] == ih {
            return v;
        }
    }
}

/// The search result for the torrent named `name`.
fn search_entry(d: &Daemon, name: &str) -> Value {
    let r = ok(d, &format!("/metadata/search/local?txt_filter={name}"));
    r["results"].as_array().unwrap().iter().find(|e| e["name"] == name).cloned().unwrap_or_else(|| panic!("{r}"))
}

fn http_answer(ih: &str, entry: &str) -> Vec<u8> {
    let raw: Vec<u8> = (0..20).map(|i| u8::from_str_radix(&ih[2 * i..2 * i + 2], 16).unwrap()).collect();
    [b"d5:filesd20:".as_slice(), &raw, entry.as_bytes(), b"ee"].concat()
}

#[test]
fn route_shapes_and_refusals() {
    let tmp = TempDir::new();
    let d = daemon(&tmp.join("state"));
    let ih = "0123456789abcdef0123456789abcdef01234567";
    // An info-hash nobody knows: the check starts, finds no tracker, and says so with zeros.
    let rx = event_stream(&d);
    insta::assert_json_snapshot!("health_checking", ok(&d, &format!("/metadata/torrents/{ih}/health")));
    let event = health_event(&rx, ih);
    insta::assert_json_snapshot!("health_event_unchecked", event);

    let bad = |path: &str| {
        let r = get(&d, path);
        assert_eq!(r.status, 400, "{path}");
        r.json()
    };
    insta::assert_json_snapshot!("health_bad_timeout", bad(&format!("/metadata/torrents/{ih}/health?timeout=x")));
    insta::assert_json_snapshot!(
        "health_bad_timeout_range",
        bad(&format!("/metadata/torrents/{ih}/health?timeout=100000"))
    );
    insta::assert_json_snapshot!("health_bad_infohash_short", bad("/metadata/torrents/0123/health"));
    insta::assert_json_snapshot!(
        "health_bad_infohash_hex",
        bad(&format!("/metadata/torrents/{}/health", "zz".repeat(20)))
    );

    // With the checker off, Tribler's answer without one.
    let r = post_settings(&d, KEY, r#"{"torrent_checking": {"enabled": false}}"#);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    insta::assert_json_snapshot!("health_not_checking", ok(&d, &format!("/metadata/torrents/{ih}/health")));
}

#[test]
fn honest_figures_are_stored_searched_and_sent() {
    let tmp = TempDir::new();
    let d = daemon(&tmp.join("state"));
    // Two trackers, one of each kind; the best answer wins (UDP's 9 seeders here). A download
    // knows all its trackers (a store entry keeps the first only, as Tribler's does).
    let http = FakeHttp::start();
    let udp = fake_udp(vec![[9, 40, 1]]);
    let torrent = make_torrent(&tmp, "honest-swarm", &[http.url(), udp]);
    let ih = look_at(&d, &torrent);
    let body = json!({"uri": format!("file:{}", torrent.display()), "destination": tmp.0, "anon_hops": 0});
    let r = request(&d, "PUT", "/downloads", &[("X-Api-Key", KEY)], Some(body.to_string().as_bytes()));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    http.answer(http_answer(&ih, "d8:completei7e10:downloadedi1e10:incompletei3ee"));
    let entry = search_entry(&d, "honest-swarm");
    assert_eq!((entry["num_seeders"].clone(), entry["last_tracker_check"].clone()), (json!(0), json!(0)));

    let rx = event_stream(&d);
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert_eq!(ok(&d, &format!("/metadata/torrents/{ih}/health?timeout=10")), json!({"checking": true}));
    let event = health_event(&rx, &ih);
    let update = &event["args"][0];
    assert_eq!((update["num_seeders"].clone(), update["num_leechers"].clone()), (json!(9), json!(1)), "{event}");
    assert!(update["last_tracker_check"].as_i64().unwrap() >= before, "{event}");
    insta::assert_json_snapshot!("health_event_checked", event, {".args[0].infohash" => "[infohash]", ".args[0].last_tracker_check" => "[now]"});
    let entry = search_entry(&d, "honest-swarm");
    assert_eq!((entry["num_seeders"].clone(), entry["num_leechers"].clone()), (json!(9), json!(1)), "{entry}");
    assert_eq!(entry["last_tracker_check"], update["last_tracker_check"]);
    // The HTTP tracker was scraped by BEP 48's convention.
    let lines = http.requests.lock().unwrap().clone();
    assert!(lines.iter().any(|l| l.starts_with("GET /scrape?info_hash=")), "{lines:?}");
}

#[test]
fn lying_trackers_are_never_believed() {
    let tmp = TempDir::new();
    let d = daemon(&tmp.join("state"));
    let rx = event_stream(&d);
    // Each torrent has one liar; nothing it says may be stored.
    let http_liar = |body: fn(&str) -> Vec<u8>| {
        move || {
            let fake = FakeHttp::start();
            let url = fake.url();
            (url, Box::new(move |ih: &str| fake.answer(body(ih))) as Box<dyn Fn(&str)>)
        }
    };
    let udp_liar =
        |entries: Vec<[u32; 3]>| move || (fake_udp(entries.clone()), Box::new(|_: &str| {}) as Box<dyn Fn(&str)>);
    type Liar = Box<dyn Fn() -> (String, Box<dyn Fn(&str)>)>;
    let cases: Vec<(&str, Liar)> = vec![
        ("http-2pow31", Box::new(http_liar(|ih| http_answer(ih, "d8:completei2147483648e10:incompletei0ee")))),
        ("http-negative", Box::new(http_liar(|ih| http_answer(ih, "d8:completei-5e10:incompletei-1ee")))),
        ("http-garbage", Box::new(http_liar(|_| b"d5:filesd20:\xff\xfe<html>".to_vec()))),
        ("http-not-a-number", Box::new(http_liar(|ih| http_answer(ih, "d8:complete3:lot10:incompletei1ee")))),
        (
            "http-other-torrent",
            Box::new(http_liar(|_| http_answer(&"ff".repeat(20), "d8:completei50e10:incompletei50ee"))),
        ),
        ("udp-2pow31", Box::new(udp_liar(vec![[1 << 31, 0, 0]]))),
        ("udp-two-entries", Box::new(udp_liar(vec![[5, 0, 5], [6, 0, 6]]))),
    ];
    for (name, liar) in cases {
        let (url, set_body) = liar();
        let torrent = make_torrent(&tmp, name, &[url]);
        let ih = look_at(&d, &torrent);
        set_body(&ih);
        assert_eq!(ok(&d, &format!("/metadata/torrents/{ih}/health?timeout=5")), json!({"checking": true}));
        let update = health_event(&rx, &ih)["args"][0].clone();
        assert_eq!(
            (update["num_seeders"].clone(), update["num_leechers"].clone(), update["last_tracker_check"].clone()),
            (json!(0), json!(0), json!(0)),
            "{name}: {update}"
        );
        let entry = search_entry(&d, name);
        assert_eq!((entry["num_seeders"].clone(), entry["last_tracker_check"].clone()), (json!(0), json!(0)), "{name}");
    }
    // The daemon is still there and well.
    assert_eq!(get(&d, "/settings").status, 200);
}

#[test]
fn the_interval_setting_round_trips() {
    let tmp = TempDir::new();
    let d = daemon(&tmp.join("state"));
    assert_eq!(ok(&d, "/settings")["settings"]["torrent_checking"]["interval"], json!(120));
    let r = post_settings(&d, KEY, r#"{"torrent_checking": {"interval": 7}}"#);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(ok(&d, "/settings")["settings"]["torrent_checking"]["interval"], json!(7));
    let r = post_settings(&d, KEY, r#"{"torrent_checking": {"interval": 0}}"#);
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
}
