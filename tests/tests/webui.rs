//! The web UI at `/ui` (issue #19).
//!
//! `ui_is_served_with_a_browser_uis_headers` checks the serving over HTTP: the page and its
//! files load without a key, with the security headers a browser UI needs; API answers are
//! never cached; `/` leads to the UI; the daemon prints the sign-in link; the page is light.
//!
//! `the_ui_in_a_real_browser` drives the UI in Debian's chromium over WebDriver
//! (`scripts/webui_browser.py`, selenium from the venv `scripts/test.sh` makes) against a daemon
//! with libtorrent seeders and a tracker, all inside a network namespace of the test's own
//! whose only interface is its loopback: the browser cannot reach anything else. It signs in
//! (and is refused a wrong key), adds a magnet and a dropped .torrent with a file left out,
//! plays a video while it downloads and seeks to 90%, waits for 100%, pauses and resumes, filters
//! and sorts the table, changes settings, removes a download with its data, finds it again by a
//! search (with completions) and adds it in one click, is given a file that is not a torrent,
//! adds a magnet no peer has (stopping the looking, then adding it without its file list), checks
//! item 8 (names on every control, the keyboard, phone width, the dark theme, readable errors),
//! and lives through two daemon restarts (the second with a new key: a 401 asks for it); this side
//! restarts the daemon when asked and then checks the daemon's state.
//!
//! `the_ui_stays_fast_with_1000_downloads` measures the page with 1,000 downloads in the
//! daemon. The browser tests need root, chromium and the venv; without them they are skipped
//! loudly (they fail under CI).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use shoal_tests::daemon::Daemon;
use shoal_tests::proc::Proc;
use shoal_tests::{data, free_port, netns, peers, shoal, tribler_gui, FileSpec, InfoHash, Opentracker, TestDir};

const KEY: &str = "web-ui-test-key";
/// The key of the browser test's daemon after its second restart.
const NEW_KEY: &str = "web-ui-test-key-2";

/// The page's whole transfer must stay below this (issue #19).
const PAGE_BUDGET: usize = 300 * 1024;

/// How long a seeder may take to be ready, and the browser run may take.
const SEEDER_TIMEOUT: Duration = Duration::from_secs(60);
const BROWSER_TIMEOUT: Duration = Duration::from_secs(240);

/// The venv with selenium (made by `scripts/test.sh`).
fn selenium_python() -> PathBuf {
    let venv = std::env::var_os("SHOAL_SELENIUM_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/shoal-tests/selenium-venv"));
    venv.join("bin/python")
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// `GET path` with extra headers, redirects not followed.
fn get(d: &Daemon, path: &str, headers: &[(&str, &str)]) -> Answer {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into();
    let mut req = ureq::http::Request::builder().method("GET").uri(d.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = agent.run(req.body(()).expect("a valid request")).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    let body = resp.body_mut().read_to_vec().unwrap_or_else(|e| panic!("GET {path}: {e}"));
    Answer { status: resp.status().as_u16(), headers, body }
}

/// The UI files a page or module names: `src="/ui/…"`, `href="/ui/…"`, `from "./….js"`.
fn referenced(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (open, prefix) in [("src=\"/ui/", ""), ("href=\"/ui/", ""), ("from \"./", ""), ("import(\"./", "")] {
        let mut rest = text;
        while let Some(at) = rest.find(open) {
            rest = &rest[at + open.len()..];
            if let Some(end) = rest.find('"') {
                out.push(format!("{prefix}{}", &rest[..end]));
            }
        }
    }
    out
}

#[test]
fn ui_is_served_with_a_browser_uis_headers() {
    let td = TestDir::new("webui-serving");
    let mut d = Daemon::start(&td, "daemon", &td.dir("state"), KEY);
    // The log names the UI's address but never the key (the signed-in link goes to a terminal
    // only, and the daemon's output here is a pipe).
    let link = format!("web UI on http://127.0.0.1:{}/ui (sign in with the API key)", d.port());
    d.proc().wait_stderr("log the UI's address", Duration::from_secs(10), |s| s.contains(&link));
    assert!(
        !d.proc().stderr().contains(KEY) && !d.proc().stdout().contains(KEY),
        "the API key is in the daemon's output"
    );

    // `/` leads to the UI, without a key.
    let root = get(&d, "/", &[]);
    assert_eq!((root.status, root.header("location")), (302, Some("/ui")), "GET /");

    // The page: no key needed, and the headers of a browser UI.
    let page = get(&d, "/ui", &[]);
    assert_eq!(page.status, 200, "GET /ui without a key: {}", String::from_utf8_lossy(&page.body));
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    let csp = page.header("content-security-policy").expect("a Content-Security-Policy");
    let directive = |name: &str| csp.split(';').map(str::trim).find(|d| d.starts_with(name)).map(str::to_string);
    assert_eq!(directive("script-src").as_deref(), Some("script-src 'self'"), "no inline script: {csp}");
    assert_eq!(directive("frame-ancestors").as_deref(), Some("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    // The sign-in link holds the key: it must not leak in a Referer.
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    let html = String::from_utf8(page.body.clone()).expect("the page is UTF-8");
    assert!(!html.contains("<script>") && !html.contains(" style="), "no inline script or style in the page");

    // A current copy costs a 304.
    let tag = page.header("etag").expect("an ETag").to_string();
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    assert_eq!(get(&d, "/ui", &[("if-none-match", &tag)]).status, 304);

    // Every file the page loads, and every module those load: served without a key with
    // the right type; all of it within the budget.
    let mut total = page.body.len();
    let mut queue = referenced(&html);
    let mut seen = Vec::new();
    while let Some(name) = queue.pop() {
        if seen.contains(&name) {
            continue;
        }
        let file = get(&d, &format!("/ui/{name}"), &[]);
        assert_eq!(file.status, 200, "GET /ui/{name}");
        let expected = if name.ends_with(".js") { "text/javascript; charset=utf-8" } else { "text/css; charset=utf-8" };
        assert_eq!(file.header("content-type"), Some(expected), "/ui/{name}");
        assert!(file.header("content-security-policy").is_some(), "/ui/{name} has the CSP too");
        total += file.body.len();
        queue.extend(referenced(&String::from_utf8_lossy(&file.body)));
        seen.push(name);
    }
    assert!(seen.iter().any(|n| n == "app.js") && seen.iter().any(|n| n == "style.css"), "{seen:?}");
    assert!(seen.len() >= 8, "the page's modules are found: {seen:?}");
    assert!(total < PAGE_BUDGET, "the page transfers {total} bytes (budget {PAGE_BUDGET}): {seen:?}");
    show(&format!("web UI: {} files, {total} bytes uncompressed\n", seen.len() + 1));

    // Unknown UI files are a 404, not a 401; paths merely starting with /ui are the API's.
    assert_eq!(get(&d, "/ui/nope.js", &[]).status, 404);
    assert_eq!(get(&d, "/uix", &[]).status, 401);

    // The API still needs the key (cookie or header), and its answers are never cached.
    assert_eq!(get(&d, "/downloads", &[]).status, 401);
    let cookie = format!("api_key={KEY}");
    let listed = get(&d, "/downloads", &[("cookie", &cookie)]);
    assert_eq!(listed.status, 200, "the api_key cookie signs API calls");
    assert_eq!(listed.header("cache-control"), Some("no-store"), "GET /downloads");
    assert_eq!(get(&d, "/settings", &[("x-api-key", KEY)]).header("cache-control"), Some("no-store"));
    d.terminate(Duration::from_secs(20));
}

/// Prints `text` even when the test passes.
fn show(text: &str) {
    let _ = std::io::stdout().write_all(text.as_bytes());
}

/// The ffmpeg inside the selenium venv's `imageio-ffmpeg` wheel (installed by `scripts/test.sh`);
/// `Err` says what is missing.
fn ffmpeg(python: &Path) -> Result<PathBuf, String> {
    let out = std::process::Command::new(python)
        .args(["-c", "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        return Err(format!("imageio-ffmpeg is missing from the venv (scripts/test.sh installs it): {why}"));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// A ten-minute WebM (VP8, 128×96, 10 frames/s, 128 kbit/s constant: 9.6 MB) of ffmpeg's test
/// pattern, with a key frame every 5 s and its cues at the end, as an encoder writes them: a seek
/// reads the end of the file, then the pieces at its position.
fn write_webm(ffmpeg: &Path, path: &Path) {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    let out = std::process::Command::new(ffmpeg)
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-f", "lavfi"])
        .args(["-i", "testsrc2=size=128x96:rate=10:duration=600", "-c:v", "libvpx"])
        .args(["-b:v", "128k", "-minrate", "128k", "-maxrate", "128k", "-g", "50"])
        .args(["-deadline", "realtime", "-cpu-used", "16", "-threads", "1"])
        .arg(path)
        .output()
        .expect("run ffmpeg");
    assert!(out.status.success(), "ffmpeg failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// A libtorrent seeder of `torrent` (data in `dir`), its upload held to `rate` bytes/s
/// (0: unlimited), registered with the tracker.
fn seeder(td: &TestDir, tracker: &Opentracker, name: &str, torrent: &Path, dir: &Path, rate: u64) -> Proc {
    let hash = InfoHash::of_file(torrent);
    tracker.allow(hash);
    let mut cmd = peers::script("lt_seed.py");
    cmd.arg("--torrent").arg(torrent).arg("--save-path").arg(dir);
    cmd.args(["--port", &free_port().to_string(), "--upload-rate", &rate.to_string()]);
    let mut p = Proc::spawn(name, cmd, &td.logs(), Duration::from_secs(3));
    p.wait_stdout("print ready", SEEDER_TIMEOUT, |s| s.lines().any(|l| l == "ready"));
    tracker.wait_peers(hash, 1, SEEDER_TIMEOUT);
    p
}

const BROWSER_TEST: &str = "the_ui_in_a_real_browser";

/// `shoal daemon` on a fixed REST port, so that a restarted one is where the page expects it.
fn start_daemon(td: &TestDir, name: &str, state: &Path, port: u16, key: &str) -> Proc {
    let mut cmd = shoal::command(["daemon"]);
    cmd.arg("--state-dir").arg(state).args(["--http-port", &port.to_string(), "--api-key", key]);
    for var in ["TSTATEDIR", "CORE_API_PORT", "CORE_API_KEY"] {
        cmd.env_remove(var);
    }
    cmd.env("SHOAL_LOCAL_ONLY", "1");
    let mut p = Proc::spawn(name, cmd, &td.logs(), Duration::from_secs(10));
    p.wait_stderr("report its REST port", Duration::from_secs(30), |s| s.contains("REST API on"));
    p
}

/// The selenium venv's Python, with this thread in a network namespace of its own (only its
/// loopback); `Err` says what is missing.
fn browser_ready() -> Result<PathBuf, String> {
    let python = selenium_python();
    if !python.exists() {
        return Err(format!("{} is missing (scripts/test.sh makes it)", python.display()));
    }
    for program in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        if !Path::new(program).exists() {
            return Err(format!("{program} is missing (apt-get install chromium chromium-driver)"));
        }
    }
    netns::isolate_this_thread().map_err(|why| format!("needs a network namespace of its own (run as root): {why}"))?;
    assert_eq!(netns::interfaces(), ["lo"], "the test's network namespace must hold only its loopback");
    Ok(python)
}

/// The browser script (`scripts/webui_browser.py`) run by the selenium venv's Python.
fn browser_command(python: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(python);
    cmd.arg(shoal_tests::package_dir().join("scripts/webui_browser.py"));
    cmd.env("PYTHONDONTWRITEBYTECODE", "1").env("PYTHONUNBUFFERED", "1");
    cmd
}

#[test]
fn the_ui_in_a_real_browser() {
    let python = match browser_ready() {
        Ok(python) => python,
        Err(why) => return tribler_gui::missing(BROWSER_TEST, &why),
    };

    let ffmpeg = match ffmpeg(&python) {
        Ok(ffmpeg) => ffmpeg,
        Err(why) => return tribler_gui::missing(BROWSER_TEST, &why),
    };
    let td = TestDir::new("webui-browser");
    let tracker = Opentracker::start(&td, &[]);
    let trackers = [tracker.http_url()];

    // A: a ten-minute video (16 kB/s, 9.6 MB), seeded at 256 KiB/s so that it takes about 40 s:
    // the player and a seek are tested while it downloads. Added by magnet. (A slower seeder
    // makes the engine's request queue, filled before the player asks, delay the first bytes.)
    let media_seed = td.dir("seed-media");
    let video = media_seed.join("pattern.webm");
    write_webm(&ffmpeg, &video);
    let media_torrent = td.join("pattern.torrent");
    shoal::create(&td, &video, &media_torrent, &trackers, 64 * 1024);
    let media_ih = InfoHash::of_file(&media_torrent).hex();
    let _media_seeder = seeder(&td, &tracker, "lt_seed_media", &media_torrent, &media_seed, 256 * 1024);
    let tr = percent_encoding::utf8_percent_encode(&trackers[0], percent_encoding::NON_ALPHANUMERIC);
    let magnet = format!("magnet:?xt=urn:btih:{media_ih}&dn=pattern.webm&tr={tr}");

    // B: two files on piece boundaries, dropped as a .torrent with `skip.bin` left out.
    let bundle_seed = td.dir("seed-bundle");
    let files = [FileSpec::new("keep.bin", 512 * 1024), FileSpec::new("skip.bin", 512 * 1024)];
    let bundle = data::tree(&bundle_seed, "bundle", &files, 19);
    let bundle_torrent = td.join("bundle.torrent");
    shoal::create(&td, &bundle, &bundle_torrent, &trackers, 64 * 1024);
    let bundle_ih = InfoHash::of_file(&bundle_torrent).hex();
    let _bundle_seeder = seeder(&td, &tracker, "lt_seed_bundle", &bundle_torrent, &bundle_seed, 0);

    let state = td.dir("state");
    let port = free_port();
    let mut daemon = start_daemon(&td, "daemon", &state, port, KEY);
    let url = format!("http://127.0.0.1:{port}");
    let dest = td.dir("dropped");
    let magnet_dest = td.dir("magnet");
    let not_a_torrent = td.join("notes.torrent");
    std::fs::write(&not_a_torrent, "these are notes, not a torrent\n").expect("write");
    let shots = td.dir("shots");
    let mut cmd = browser_command(&python);
    cmd.args(["--url", &url, "--key", KEY, "--new-key", NEW_KEY]);
    cmd.args(["--magnet", &magnet, "--magnet-ih", &media_ih, "--magnet-name", "pattern.webm", "--magnet-dest"]);
    cmd.arg(&magnet_dest);
    cmd.arg("--torrent").arg(&bundle_torrent);
    cmd.args(["--torrent-ih", &bundle_ih, "--torrent-name", "bundle", "--skip", "skip.bin", "--dest"]).arg(&dest);
    cmd.arg("--not-a-torrent").arg(&not_a_torrent);
    cmd.arg("--shots").arg(&shots);
    let mut browser = Proc::spawn("webui_browser", cmd, &td.logs(), Duration::from_secs(5));
    // The script asks for the restarts (the page must notice, reconnect, and ask for a new key).
    for (n, (request, key)) in [("restart: same key", KEY), ("restart: new key", NEW_KEY)].into_iter().enumerate() {
        if browser.wait_stdout_or_exit(request, BROWSER_TIMEOUT, |s| s.lines().any(|l| l == request)).is_err() {
            break;
        }
        daemon.terminate(Duration::from_secs(20));
        daemon = start_daemon(&td, &format!("daemon-{}", n + 2), &state, port, key);
    }
    let status = browser.wait_exit(BROWSER_TIMEOUT).unwrap_or_else(|e| panic!("{e}\n{}", browser.logs()));
    show(&browser.stdout());
    let kept = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("webui");
    let _ = std::fs::create_dir_all(&kept);
    for name in ["downloads", "details", "player", "phone", "dark", "failure"] {
        let from = shots.join(format!("{name}.png"));
        if from.exists() && std::fs::copy(&from, kept.join(format!("{name}.png"))).is_ok() {
            show(&format!("screenshot kept: {}\n", kept.join(format!("{name}.png")).display()));
        }
    }
    assert!(status.success(), "the browser run failed ({status}):\n{}\n{}", browser.logs(), daemon.logs());

    // The daemon's side: the setting is in triblerd.conf, the removed download's data is gone,
    // the magnet's file is complete and byte-exact.
    let conf = std::fs::read_to_string(state.join("triblerd.conf")).expect("triblerd.conf");
    let stored = conf.lines().any(|l| l.replace(' ', "") == "max_upload_rate=102400");
    assert!(stored, "the setting persisted in triblerd.conf:\n{conf}");
    assert!(!dest.join("bundle").exists(), "removed with its data");
    data::assert_same_tree(&media_seed, &magnet_dest, data::Compare::default());
    daemon.terminate(Duration::from_secs(20));
}

/// How many downloads the speed test loads.
const MANY: usize = 1000;

const PERF_TEST: &str = "the_ui_stays_fast_with_1000_downloads";

/// A one-piece torrent of its own for download `n` (its data is nowhere: it just waits).
fn tiny_torrent(n: usize) -> Vec<u8> {
    use shoal_tests::Value;
    let mut pieces = [0u8; 20];
    pieces[..8].copy_from_slice(&(n as u64).to_be_bytes());
    let info = Value::dict([
        ("length", Value::Int(16 * 1024)),
        ("name", Value::str(&format!("fixture {n:04} of the speed test.bin"))),
        ("piece length", Value::Int(16 * 1024)),
        ("pieces", Value::Bytes(pieces.to_vec())),
    ]);
    Value::dict([("info", info)]).encode()
}

/// Issue #19's speed figures, measured by the browser's Performance API with 1,000 downloads
/// in the daemon: the first render within 1 s, every update cycle (and every main-thread task)
/// within 100 ms, the page below 300 kB.
#[test]
fn the_ui_stays_fast_with_1000_downloads() {
    let python = match browser_ready() {
        Ok(python) => python,
        Err(why) => return tribler_gui::missing(PERF_TEST, &why),
    };
    let td = TestDir::new("webui-perf");
    let d = Daemon::start(&td, "daemon", &td.dir("state"), KEY);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into();
    let dest = td.dir("fixtures");
    let query = format!("/downloads?destination={}", dest.display());
    for n in 0..MANY {
        let req = ureq::http::Request::builder().method("PUT").uri(d.url(&query)).header("X-Api-Key", KEY);
        let resp = agent.run(req.body(tiny_torrent(n)).expect("a request")).expect("PUT /downloads");
        assert_eq!(resp.status().as_u16(), 200, "PUT /downloads of fixture {n}");
    }
    let mut cmd = browser_command(&python);
    cmd.args(["--url", &d.url(""), "--key", KEY, "--perf", &MANY.to_string(), "--shots"]).arg(td.dir("shots"));
    let mut browser = Proc::spawn("webui_browser", cmd, &td.logs(), Duration::from_secs(5));
    let status = browser.wait_exit(BROWSER_TIMEOUT).unwrap_or_else(|e| panic!("{e}\n{}", browser.logs()));
    show(&browser.stdout());
    assert!(status.success(), "the browser run failed ({status}):\n{}", browser.logs());
    d.terminate(Duration::from_secs(20));
}
