//! Tribler's stock PyPI GUI (7.13.1) as a real client of `shoal daemon`, headless under Xvfb:
//! issue #14 (it stays connected for ten minutes and opens no dialog caused by the event stream)
//! and the first acceptance item of issue #15 (the GUI works against the metadata store).
//!
//! The daemon, the GUI, a loopback opentracker and two seeders (libtorrent and `shoal seed`)
//! run inside a network namespace of the test's own whose only interface is its loopback, so
//! whatever the GUI or the daemon tries (version check, error reports, DHT) cannot leave the
//! machine. The launcher (`scripts/tribler_gui.py`) watches from inside the GUI process, drives
//! the GUI through its own widgets and judges; this test prepares the daemon, runs the GUI,
//! prints the launcher's summary (every route the GUI called, the non-200 ones listed, each
//! flow's outcome) and where the screenshots are, and checks the store afterwards:
//!
//! 1. the GUI starts and loads the Popular page (7.13.1 opens on its downloads page; a click on
//!    "Popular" shows it), with no error dialog and no non-200 request over the whole run;
//! 2. a word typed in its search bar finds the torrent resolved earlier with `/torrentinfo`;
//! 3. a click on that row's health cell makes the daemon scrape the loopback opentracker, and the
//!    row shows the two seeders the tracker reports (after the search is run again: the 7.13.1
//!    GUI does not apply the `channel_entity_updated` event to its table); the reloaded Popular
//!    page then lists the torrent;
//! 4. a tag added with the GUI's tag editor is still on the torrent after a daemon restart.
//!
//! Flows 3 and 4 need `GET /metadata/torrents/{infohash}/health` and `PATCH /knowledge/{infohash}`;
//! while the daemon does not serve them (its Swagger description says which routes it serves)
//! they are skipped with a banner that says so.
//!
//! Duration: `SHOAL_TRIBLER_GUI_SECS` (default 600; the flows take the first minute of it). Needs
//! root and the venv that `scripts/test.sh` creates; without them it is skipped loudly, or fails
//! under `CI`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::{json, Value};
use shoal_tests::daemon::{self, Daemon, SEEDING};
use shoal_tests::shoal::Runtime;
use shoal_tests::tribler_gui::{self, RunOptions, TriblerGui};
use shoal_tests::{data, free_port, netns, peers, shoal, wait_for, InfoHash, Opentracker, Proc, TestDir};

const KEY: &str = "tribler-gui-test-key";

/// How long the daemon may take to hash-check the download's data, and the seeders to announce.
const SEEDING_TIMEOUT: Duration = Duration::from_secs(60);

/// The torrent the GUI searches for, checks and tags: a name no other torrent of the test has.
const SEARCH_FILE: &str = "lighthouse-keepers-logbook-1907.pdf";
const SEARCH_WORD: &str = "lighthouse";

/// The tag typed in the GUI's tag editor.
const TAG: &str = "maritime";

/// The routes flows 3 and 4 need, as the daemon's Swagger description names them.
const HEALTH_ROUTE: (&str, &str) = ("get", "/metadata/torrents/{infohash}/health");
const KNOWLEDGE_ROUTE: (&str, &str) = ("patch", "/knowledge/{infohash}");

const NAME: &str = "tribler_gui_stays_connected_and_opens_no_dialog";

#[test]
fn tribler_gui_stays_connected_and_opens_no_dialog() {
    let gui = match TriblerGui::find() {
        Ok(gui) => gui,
        Err(why) => return tribler_gui::missing(NAME, &why),
    };
    if let Err(why) = netns::isolate_this_thread() {
        return tribler_gui::missing(NAME, &format!("needs a network namespace of its own (run as root): {why}"));
    }
    assert_eq!(netns::interfaces(), ["lo"], "the test's network namespace must hold only its loopback");

    let td = TestDir::new("tribler_gui");
    let state = td.dir("state");
    let mut d = Daemon::start(&td, "daemon", &state, KEY);
    let download = add_seeding_download(&td, &d);
    let swarm = Swarm::start(&td);
    let ih = swarm.infohash.hex();

    // The torrent enters the store the way a user's would: resolved with /torrentinfo. Nobody
    // has checked its health yet, so whatever the GUI shows later comes from its own click.
    call(&d, "GET", &format!("/torrentinfo?uri={}", enc(&format!("file:{}", swarm.torrent.display()))), None);
    let before = search_entry(&d, &ih).unwrap_or_else(|| panic!("/torrentinfo did not put {ih} in the store"));
    assert_eq!(
        (&before["num_seeders"], &before["last_tracker_check"]),
        (&json!(0), &json!(0)),
        "unchecked before the GUI: {before}"
    );

    let served = served_routes(&d);
    let health = served.contains(&route(HEALTH_ROUTE)).then(|| (ih.clone(), Swarm::SEEDERS));
    if health.is_none() {
        skip_flow("health", HEALTH_ROUTE, "branch `health`");
    }
    let tag = served.contains(&route(KNOWLEDGE_ROUTE)).then(|| (TAG.to_string(), ih.clone()));
    if tag.is_none() {
        skip_flow("tag", KNOWLEDGE_ROUTE, "branch `knowledge`");
    }

    let opts = RunOptions {
        duration: tribler_gui::run_duration(),
        expect_infohash: Some(download),
        allow_non_200: Vec::new(),
        search: Some((SEARCH_WORD.to_string(), ih.clone())),
        health: health.clone(),
        tag: tag.clone(),
    };
    let run = gui.run(&td, &d, &opts);
    show(&format!("Tribler GUI against shoal daemon for {:?}:\n{}\n", opts.duration, run.summary));
    let kept_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tribler_gui");
    match tribler_gui::keep_screenshots(&run, &kept_dir) {
        Ok(paths) => show(&format!("screenshots in {}: {paths:?}\n", kept_dir.display())),
        Err(e) => show(&format!("screenshots not kept: {e}\n")),
    }

    assert!(d.proc().try_status().is_none(), "the daemon exited while the GUI used it\n{}", d.proc().logs());
    let report = run.report.unwrap_or_else(|| panic!("the launcher wrote no report ({})\n{}", run.status, run.logs));
    assert!(
        run.status.success(),
        "the GUI did not work against the daemon ({}): {}\n{}",
        run.status,
        report["failures"],
        run.logs
    );
    assert_eq!(report["events"]["events_start"], json!(1), "the GUI connected exactly once: {}", report["events"]);
    let flows = &report["flows"];
    assert_eq!(flows["search"]["name"], json!(SEARCH_FILE), "the search found the torrent: {flows}");
    if health.is_some() {
        assert_eq!(flows["health"]["num_seeders"], json!(Swarm::SEEDERS), "the row shows the seeders: {flows}");
        let after = search_entry(&d, &ih).expect("the entry is still there");
        assert_eq!(after["num_seeders"], json!(Swarm::SEEDERS), "the store keeps the check: {after}");
    }
    drop(swarm);

    // The tag survives a restart of the daemon.
    d.terminate(Duration::from_secs(20));
    let d = Daemon::start(&td, "daemon-2", &state, KEY);
    if tag.is_some() {
        let entry = search_entry(&d, &ih).expect("the entry survives the restart");
        let tagged = entry["statements"]
            .as_array()
            .is_some_and(|st| st.iter().any(|s| s["predicate"] == json!(101) && s["object"] == json!(TAG)));
        assert!(tagged, "the tag {TAG:?} added in the GUI is on the entry after a restart: {entry}");
    }
    d.terminate(Duration::from_secs(20));
}

/// A torrent on a loopback opentracker with two seeders announcing to it: libtorrent and a
/// `shoal seed` process. Dropped, it stops them.
struct Swarm {
    torrent: PathBuf,
    infohash: InfoHash,
    _tracker: Opentracker,
    _seeders: Vec<Proc>,
}

impl Swarm {
    /// How many seeders the tracker reports.
    const SEEDERS: u64 = 2;

    fn start(td: &TestDir) -> Swarm {
        let tracker = Opentracker::start(td, &[]);
        let lt_dir = td.dir("swarm/lt");
        let content = data::single_file(&lt_dir, SEARCH_FILE, 1024 * 1024, 15);
        let torrent = td.join("swarm/lighthouse.torrent");
        shoal::create(td, &content, &torrent, &[tracker.http_url()], 64 * 1024);
        let infohash = InfoHash::of_file(&torrent);
        tracker.allow(infohash);
        let shoal_dir = td.dir("swarm/shoal");
        copy_into(&content, &shoal_dir);

        let lt = peers::lt_seed(td, &torrent, &lt_dir, free_port(), &[]);
        let ours = shoal::seed(td, Runtime::Smol, &torrent, &shoal_dir, free_port(), &[]);
        tracker.wait_swarm(infohash, Self::SEEDERS as i64, 0, SEEDING_TIMEOUT);
        Swarm { torrent, infohash, _tracker: tracker, _seeders: vec![lt, ours] }
    }
}

/// Copies the file `from` into the directory `dir`.
fn copy_into(from: &Path, dir: &Path) {
    let to = dir.join(from.file_name().expect("a file name"));
    std::fs::copy(from, &to).unwrap_or_else(|e| panic!("cannot copy {} to {}: {e}", from.display(), to.display()));
}

/// The search result for `infohash` of a local search for [`SEARCH_WORD`], if any.
fn search_entry(d: &Daemon, infohash: &str) -> Option<Value> {
    let page = call(d, "GET", &format!("/metadata/search/local?txt_filter={SEARCH_WORD}"), None);
    page["results"].as_array()?.iter().find(|e| e["infohash"] == json!(infohash)).cloned()
}

/// `(method, path)` as the Swagger description spells them.
fn route((method, path): (&str, &str)) -> (String, String) {
    (method.to_string(), path.to_string())
}

/// Every `(method, path)` the daemon's Swagger description lists, i.e. every route it serves.
fn served_routes(d: &Daemon) -> Vec<(String, String)> {
    let spec = call(d, "GET", "/docs/swagger.json", None);
    let paths = spec["paths"].as_object().unwrap_or_else(|| panic!("no paths in the Swagger description: {spec}"));
    paths
        .iter()
        .flat_map(|(path, ops)| ops.as_object().into_iter().flatten().map(move |(m, _)| (m.clone(), path.clone())))
        .collect()
}

/// Says loudly that a flow does not run, and why.
fn skip_flow(flow: &str, (method, path): (&str, &str), builder: &str) {
    let banner = "!".repeat(100);
    let text = format!(
        "\n{banner}\n!!! {NAME}: flow `{flow}` SKIPPED: the daemon does not serve {} {path} yet \
         ({builder} builds it)\n{banner}\n",
        method.to_uppercase()
    );
    // Straight to fd 2: the harness captures `eprintln!` of passing tests.
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// Prints `text` even when the test passes (the harness captures `println!` of passing tests):
/// the summary lists the routes the GUI called, their non-200 answers and the flows' outcomes.
fn show(text: &str) {
    let _ = std::io::stdout().write_all(text.as_bytes());
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// Makes a small torrent whose data is already in place, adds it to the daemon and waits until
/// it is seeding; returns its info-hash.
fn add_seeding_download(td: &TestDir, d: &Daemon) -> String {
    let seed = td.dir("seed");
    let content = data::single_file(&seed, "shoal-gui-row.bin", 3 * 1024 * 1024, 14);
    let torrent = td.join("shoal-gui-row.torrent");
    shoal::create(td, &content, &torrent, &[], 256 * 1024);
    let ih = InfoHash::of_file(&torrent).hex();
    let body = json!({"uri": format!("file:{}", torrent.display()), "destination": seed, "anon_hops": 0});
    let answer = call(d, "PUT", "/downloads", Some(&body));
    assert_eq!(answer["infohash"], json!(ih), "PUT /downloads {body}: {answer}");
    let seeding = wait_for("the download to be seeding", SEEDING_TIMEOUT, || {
        let list = call(d, "GET", "/downloads", None);
        let dl = list["downloads"].as_array()?.iter().find(|dl| dl["infohash"] == json!(ih))?.clone();
        (daemon::status(&dl) == SEEDING).then_some(())
    });
    seeding.unwrap_or_else(|e| panic!("{e}: {}", call(d, "GET", "/downloads", None)));
    ih
}

/// `method path` with the key; asserts 200 and returns the JSON answer.
fn call(d: &Daemon, method: &str, path: &str, body: Option<&Value>) -> Value {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(SEEDING_TIMEOUT))
        .build()
        .into();
    let req = ureq::http::Request::builder().method(method).uri(d.url(path)).header("X-Api-Key", d.key());
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut resp =
        agent.run(req.body(body).expect("a valid request")).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    assert_eq!(status, 200, "{method} {path}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"))
}
