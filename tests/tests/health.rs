//! Health checks against a real tracker: `shoal daemon` scrapes a loopback opentracker over
//! HTTP and over UDP, for torrents it only knows from its metadata store and for its own
//! downloads, and the swarm's seeders and leechers show up where Tribler's GUI looks for them:
//! the `channel_entity_updated` event, local search results and the popular torrents. The
//! background checker does the same unasked, at the rate `[torrent_checking] interval` sets.
//!
//! The swarm is made of announces the test sends to opentracker itself (a seeder says
//! `left=0`, a leecher does not), so the figures to expect are known exactly.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use shoal_tests::daemon::Daemon;
use shoal_tests::shoal::command;
use shoal_tests::{InfoHash, Opentracker, TestDir};

const KEY: &str = "health-key";

/// Upper bound for a check to be reported (its timeout is 10 s).
const TIMEOUT: Duration = Duration::from_secs(30);

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).proxy(None).build().into()
}

/// `GET path` with the key; asserts 200 and returns the JSON.
fn get(d: &Daemon, path: &str) -> Value {
    let mut r = agent().get(d.url(path)).header("X-Api-Key", KEY).call().unwrap();
    let body = r.body_mut().read_to_string().unwrap();
    assert_eq!(r.status().as_u16(), 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// `method path` with a JSON body and the key; asserts 200.
fn send(d: &Daemon, method: &str, path: &str, body: Value) {
    let req = ureq::http::Request::builder()
        .method(method)
        .uri(d.url(path))
        .header("X-Api-Key", KEY)
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .unwrap();
    let mut r = agent().run(req).unwrap();
    let text = r.body_mut().read_to_string().unwrap();
    assert_eq!(r.status().as_u16(), 200, "{method} {path} {body}: {text}");
}

/// `/events`, read on a thread: its frames arrive on the channel.
fn events(d: &Daemon) -> mpsc::Receiver<Value> {
    let r = agent().get(d.url("/events")).header("X-Api-Key", KEY).call().unwrap();
    let reader: Box<dyn Read + Send> = Box::new(r.into_body().into_reader());
    let (tx, rx) = mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { return };
            let Some(json) = line.strip_prefix("data: ") else { continue };
            if tx.send(serde_json::from_str(json).unwrap()).is_err() {
                return;
            }
        }
    });
    assert_eq!(rx.recv_timeout(TIMEOUT).unwrap()["topic"], "events_start");
    rx
}

/// The next `channel_entity_updated` about `ih` with a check in it (`last_tracker_check` > 0).
fn checked_event(rx: &mpsc::Receiver<Value>, ih: &InfoHash) -> Value {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let v = rx.recv_timeout(left).unwrap_or_else(|e| panic!("no checked health event for {ih}: {e}"));
        let update = &v["args"][0];
        if v["topic"] == "channel_entity_updated" && update["infohash"] == ih.hex() {
            assert_eq!(update["health"], "updated", "{v}");
            if update["last_tracker_check"].as_i64().unwrap() > 0 {
                return update.clone();
            }
        }
    }
}

/// A torrent of a small file under `dir`, announcing to `tracker`.
fn make_torrent(dir: &Path, name: &str, tracker: &str) -> (PathBuf, InfoHash) {
    let data = dir.join(name);
    std::fs::write(&data, name.repeat(3000)).unwrap();
    let out = dir.join(format!("{name}.torrent"));
    let o = command(["create"]).arg(&data).arg("-o").arg(&out).args(["--tracker", tracker]).output().unwrap();
    assert!(o.status.success(), "shoal create: {}", String::from_utf8_lossy(&o.stderr));
    let ih = InfoHash::of_file(&out);
    (out, ih)
}

/// Announces made-up peers to opentracker: `seeders` with nothing left, `leechers` with
/// something left. Each has its own peer id and port.
fn announce_swarm(tracker: &Opentracker, ih: InfoHash, seeders: u16, leechers: u16) {
    for i in 0..seeders + leechers {
        let left = if i < seeders { 0 } else { 1000 };
        let url = format!(
            "http://127.0.0.1:{}/announce?info_hash={}&peer_id=-XX0001-{:012}&port={}&uploaded=0&downloaded=0\
             &left={left}&compact=1&event=started",
            tracker.port(),
            ih.url_encoded(),
            i,
            20000 + i
        );
        let mut r = agent().get(&url).call().unwrap();
        let body = r.body_mut().read_to_vec().unwrap();
        assert!(!body.windows(7).any(|w| w == b"failure"), "{}", String::from_utf8_lossy(&body));
    }
    tracker.wait_swarm(ih, seeders.into(), leechers.into(), TIMEOUT);
}

fn entry_of(results: &Value, ih: &InfoHash) -> Value {
    let all = results["results"].as_array().unwrap();
    all.iter().find(|e| e["infohash"] == ih.hex()).cloned().unwrap_or_else(|| panic!("{ih} not in {results}"))
}

fn figures(v: &Value) -> (i64, i64) {
    (v["num_seeders"].as_i64().unwrap(), v["num_leechers"].as_i64().unwrap())
}

/// A torrent the daemon only looked at (`/torrentinfo`), with an HTTP tracker and with a UDP
/// tracker: the health route's check finds opentracker's figures, sends them on `/events`, and
/// search and popular show them.
#[test]
fn health_route_scrapes_opentracker_over_http_and_udp() {
    let td = TestDir::new("health-route");
    let tracker = Opentracker::start(&td, &[]);
    let d = Daemon::start(&td, "daemon", &td.dir("state"), KEY);
    let rx = events(&d);
    let cases = [("over-http", tracker.http_url(), 3, 1), ("over-udp", tracker.udp_url(), 2, 4)];
    for (name, url, seeders, leechers) in cases {
        let (torrent, ih) = make_torrent(&td.dir("data"), name, &url);
        tracker.allow(ih);
        announce_swarm(&tracker, ih, seeders, leechers);
        let uri = format!("file:{}", torrent.display());
        get(
            &d,
            &format!(
                "/torrentinfo?uri={}",
                percent_encoding::utf8_percent_encode(&uri, percent_encoding::NON_ALPHANUMERIC)
            ),
        );
        // Known but never checked: nothing is made up.
        let before = entry_of(&get(&d, &format!("/metadata/search/local?txt_filter={name}")), &ih);
        assert_eq!((figures(&before), before["last_tracker_check"].clone()), ((0, 0), json!(0)), "{name}");

        assert_eq!(get(&d, &format!("/metadata/torrents/{}/health?timeout=10", ih.hex())), json!({"checking": true}));
        let update = checked_event(&rx, &ih);
        assert_eq!(figures(&update), (seeders.into(), leechers.into()), "{name}: {update}");

        let found = entry_of(&get(&d, &format!("/metadata/search/local?txt_filter={name}")), &ih);
        assert_eq!(figures(&found), (seeders.into(), leechers.into()), "{name}: {found}");
        assert_eq!(found["last_tracker_check"], update["last_tracker_check"]);
        let popular = entry_of(&get(&d, "/metadata/torrents/popular"), &ih);
        assert_eq!(figures(&popular), (seeders.into(), leechers.into()), "{name}: {popular}");
    }
}

/// A download's own torrent is checked by the background checker without anyone asking, once
/// `[torrent_checking] interval` is short; the daemon, seeding it, is one of the seeders.
#[test]
fn background_checker_checks_downloads_at_the_configured_rate() {
    let td = TestDir::new("health-background");
    let tracker = Opentracker::start(&td, &[]);
    let d = Daemon::start(&td, "daemon", &td.dir("state"), KEY);
    let rx = events(&d);
    let data = td.dir("data");
    let (torrent, ih) = make_torrent(&data, "own-download", &tracker.http_url());
    tracker.allow(ih);
    announce_swarm(&tracker, ih, 2, 0);
    send(
        &d,
        "PUT",
        "/downloads",
        json!({"uri": format!("file:{}", torrent.display()), "destination": data, "anon_hops": 0}),
    );
    // The daemon's own announce as a seeder makes three.
    tracker.wait_swarm(ih, 3, 0, TIMEOUT);
    // The default interval (120 s) would not come round within the test: one second does.
    send(&d, "POST", "/settings", json!({"torrent_checking": {"interval": 1}}));
    assert_eq!(get(&d, "/settings")["settings"]["torrent_checking"]["interval"], json!(1));
    let update = checked_event(&rx, &ih);
    assert_eq!(figures(&update), (3, 0), "{update}");
    let found = entry_of(&get(&d, "/metadata/search/local?txt_filter=download"), &ih);
    assert_eq!(figures(&found), (3, 0), "{found}");
}
